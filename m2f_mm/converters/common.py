"""What every converter shares: applying a table of key rules, checking the
result against the target model's keys and shapes, and writing atomically.

A rule is ``(pattern, target, transform)``:

- ``pattern`` must match the whole source key (``re.fullmatch``);
- ``target`` is our key as an ``re`` template (``\\1``, ``\\g<name>``) or a
  function of the match (for arithmetic on indices), a tuple of those when
  one source key gives several of ours, or ``None`` to drop the key;
- ``transform`` maps the value (a tuple of values for a tuple target), or is
  a :class:`Pack` that concatenates several source keys into one of ours;
  ``None`` copies the value.

The first matching rule wins. Keys that no rule matches are collected and
reported in one line, never silently passed through.
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from m2f_mm.utils.fileio import atomic_write
from .loading import ConversionError

Target = Union[str, Callable[[re.Match], str]]
Rule = Tuple[str, Union[None, Target, Tuple[Target, ...]], Optional[Callable]]


class Pack:
    """Concatenate along dim 0 the source keys that map to one target; the
    part a key supplies is the rule pattern's group ``part``, e.g. HF's
    separate query/key/value into a packed ``qkv``."""

    def __init__(self, *order: str) -> None:
        self.order = order


def _names(keys: Sequence[str], limit: int = 4) -> str:
    keys = list(keys)
    shown = ', '.join(keys[:limit])
    return shown + (f' and {len(keys) - limit} more' if len(keys) > limit else '')


def _expand(target: Target, m: re.Match) -> str:
    return target(m) if callable(target) else m.expand(target)


def apply_rules(state: Dict[str, Tensor], rules: Sequence[Rule], where: str
                ) -> 'OrderedDict[str, Tensor]':
    """Convert every key of ``state`` with ``rules``; raise a one-line
    :class:`ConversionError` naming the keys no rule matched or packs left
    incomplete."""
    compiled = [(re.compile(p), t, f) for p, t, f in rules]
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    packs: Dict[str, Tuple[Pack, Dict[str, Tensor]]] = {}
    leftover: List[str] = []
    for key, value in state.items():
        for pattern, target, transform in compiled:
            m = pattern.fullmatch(key)
            if m is not None:
                break
        else:
            leftover.append(key)
            continue
        if target is None:
            continue
        if isinstance(transform, Pack):
            new_key = _expand(target, m)
            packs.setdefault(new_key, (transform, {}))[1][m.group('part')] = value
            out[new_key] = None  # keeps the source order; filled below
        elif isinstance(target, tuple):
            for new_key, new_value in zip((_expand(t, m) for t in target),
                                          transform(value)):
                out[new_key] = new_value
        else:
            out[_expand(target, m)] = value if transform is None else transform(value)
    if leftover:
        raise ConversionError(f'{where}: {len(leftover)} key(s) left unconverted: '
                              f'{_names(leftover)}')
    for new_key, (pack, parts) in packs.items():
        missing = [p for p in pack.order if p not in parts]
        if missing:
            raise ConversionError(f'{where}: {new_key} needs parts {missing} '
                                  f'that the checkpoint lacks')
        out[new_key] = torch.cat([parts[p] for p in pack.order])
    return out


def check_against(converted: Dict[str, Tensor], expected: Dict[str, Sequence[int]],
                  where: str) -> None:
    """Raise a one-line :class:`ConversionError` unless ``converted`` has
    exactly the keys of ``expected`` (our model's state dict: name → shape),
    each with its shape."""
    missing = [k for k in expected if k not in converted]
    extra = [k for k in converted if k not in expected]
    wrong = [f'{k} {list(converted[k].shape)} vs ours {list(expected[k])}'
             for k in converted
             if k in expected and tuple(converted[k].shape) != tuple(expected[k])]
    problems = []
    if wrong:
        problems.append(f'{len(wrong)} shape mismatch(es): {_names(wrong, 3)}')
    if extra:
        problems.append(f'{len(extra)} converted key(s) not in our model: {_names(extra)}')
    if missing:
        problems.append(f'{len(missing)} key(s) of our model not provided: '
                        f'{_names(missing)}')
    if problems:
        raise ConversionError(f'{where}: ' + '; '.join(problems))


def save_atomic(obj, dst: str) -> None:
    """``torch.save`` to a temporary file beside ``dst``, then rename it over:
    a failed run leaves no half-written checkpoint."""
    atomic_write(dst, lambda f: torch.save(obj, f), 'wb')


def write_text_atomic(text: str, dst: str) -> None:
    """The same for a text file (the written config)."""
    atomic_write(dst, lambda f: f.write(text), 'w', encoding='utf-8')
