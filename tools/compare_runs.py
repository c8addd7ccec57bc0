"""Do two training runs repeat bit for bit? Compares the last checkpoints
of two work dirs (each one's ``last_checkpoint`` file names it) tensor by
tensor, and their ``results.md`` (tools/quickstart.py writes it) where both
have one.

    python tools/compare_runs.py WORK_DIR_A WORK_DIR_B

Prints one line per part and exits 0 when everything is equal, 1 when
something differs, 2 when a work dir lacks a checkpoint.
"""
import argparse
import os.path as osp
import sys

import torch


def last_checkpoint(work_dir: str) -> str:
    marker = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        raise FileNotFoundError(f'compare_runs: {work_dir} has no last_checkpoint '
                                '(did its training finish?)')
    with open(marker) as f:
        path = f.read().strip()
    if not osp.isfile(path):
        raise FileNotFoundError(f'compare_runs: {marker} names {path}, which does not exist')
    return path


def compare_state_dicts(a: dict, b: dict) -> dict:
    """Names only in one, names whose tensors differ, and the largest
    absolute difference among floating tensors of the same shape."""
    only = sorted(set(a) ^ set(b))
    differ, largest = [], 0.0
    for name in sorted(set(a) & set(b)):
        x, y = a[name], b[name]
        if x.shape == y.shape and x.dtype == y.dtype and torch.equal(x, y):
            continue
        differ.append(name)
        if x.shape == y.shape and x.is_floating_point() and y.is_floating_point():
            largest = max(largest, float((x.double() - y.double()).abs().max()))
    return dict(only=only, differ=differ, largest=largest, total=len(set(a) | set(b)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('work_dirs', nargs=2, metavar='WORK_DIR')
    args = parser.parse_args(argv)
    try:
        paths = [last_checkpoint(w) for w in args.work_dirs]
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 2
    states = [torch.load(p, map_location='cpu', weights_only=False)['state_dict']
              for p in paths]
    cmp = compare_state_dicts(*states)
    same = not cmp['only'] and not cmp['differ']
    if same:
        print(f'weights: bit for bit equal, all {cmp["total"]} tensors ({paths[0]} and {paths[1]})')
    else:
        print(f'weights: {len(cmp["differ"])} of {cmp["total"]} tensors differ (largest '
              f'|diff| {cmp["largest"]:.3g}, first {cmp["differ"][:3]}), '
              f'{len(cmp["only"])} in one run only {cmp["only"][:3]}')
    results = [osp.join(w, 'results.md') for w in args.work_dirs]
    if all(osp.isfile(r) for r in results):
        texts = []
        for r in results:
            with open(r) as f:  # the first line names the run's own checkpoint
                texts.append([line for line in f if not line.startswith('checkpoint:')])
        equal = texts[0] == texts[1]
        same &= equal
        print('results.md: ' + ('the same tables' if equal else 'the tables differ'))
    print('the runs repeat bit for bit' if same else 'the runs do not repeat bit for bit')
    return 0 if same else 1


if __name__ == '__main__':
    sys.exit(main())
