"""``torch.compile`` of a model's network: the backbone, the neck and the
Mask2Former head's forward (pixel decoder → Transformer decoder).

mmengine's Runner, given ``compile=True``, compiles ``model.train_step`` as
a whole: the data preprocessor, the Hungarian matching (scipy) and the
losses break the graph many times, and testing is not compiled at all.
Here the config's ``compile`` (``True`` or ``torch.compile``'s keyword
arguments as a dict) compiles each network module in place
(``nn.Module.compile``: state-dict keys unchanged) for training and
testing alike; the network traces with no graph break, and the rest runs
eagerly.
"""
from typing import Dict, List, Optional, Union

from torch import nn

HEAD_NAMES = ('panoptic_head', 'decode_head')


def compile_options(value: Union[bool, Dict, None]) -> Optional[Dict]:
    """``torch.compile`` keyword arguments from a config's ``compile``; None
    when it is off."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, dict):
        return dict(value)
    raise ValueError(f'compile must be True, False or a dict of torch.compile '
                     f'arguments, got {value!r}')


def compile_network(model: nn.Module, options: Dict) -> List[str]:
    """Compile ``model``'s backbone, neck and head in place (once; a model
    wrapper such as DDP is looked through).

    Args:
        model: an MMDet detector or MMSeg segmentor (or its wrapper).
        options: ``torch.compile`` keyword arguments.

    Returns:
        The names of the modules compiled.
    """
    model = getattr(model, 'module', model)
    names = [n for n in ('backbone', 'neck') + HEAD_NAMES
             if isinstance(getattr(model, n, None), nn.Module)]
    for name in names:
        module = getattr(model, name)
        if not getattr(module, '_m2f_compiled', False):
            module.compile(**options)
            module._m2f_compiled = True
    return names
