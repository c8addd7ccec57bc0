"""Check a dataset through a config's pipeline before training on it.

    python tools/check_dataset.py CONFIG [--split train|val|test] [--show-dir DIR]

Loads every sample of the split through the configured pipeline (progress on
stderr) and prints, per problem, the file and image: unknown category ids,
missing or unreadable images and PNGs, label maps whose size differs from
the image, labels out of range, images without a segment; then how many
segments the training crop emptied and a per-class histogram of segments and
pixels. Exits 1 when something would stop training, 0 otherwise.
``--show-dir`` writes the ground truth after the pipeline (what the model
sees) over each image.
"""
import argparse

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Check a dataset for training')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train',
                        help='which dataloader\'s dataset to check (default: train)')
    parser.add_argument('--show-dir', help='write ground-truth overlays after '
                        'the pipeline here')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the random augmentations')
    parser.add_argument('--max-listed', type=int, default=20,
                        help='problems listed per kind (default: 20)')
    parser.add_argument('--no-progress', action='store_true',
                        help='no progress bar')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    parser.add_argument('--debug', action='store_true',
                        help='stop at the first error with its traceback (also '
                        'M2F_MM_DEBUG=1)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import m2f_mm  # noqa: F401  (the m2f_mm scope)
    from mmengine.registry import init_default_scope

    from m2f_mm.datasets.class_counts import head_counts_from_cfg
    from m2f_mm.datasets.dataset_check import check_dataset, format_report
    from m2f_mm.utils.errors import debug_enabled
    from m2f_mm.utils.runner import load_config, run_or_exit
    cfg = load_config(args.config, 'check_dataset.py', args.cfg_options)
    loader = cfg.get(f'{args.split}_dataloader')
    if not loader or 'dataset' not in loader:
        raise SystemExit(f'check_dataset.py: {args.config} has no '
                         f'{args.split}_dataloader.dataset')
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if debug_enabled(args.debug):  # the first error stops with its traceback
        from mmengine.registry import DATASETS

        from m2f_mm.datasets.class_counts import apply_class_counts
        dataset = DATASETS.build(loader.dataset)
        counts = head_counts_from_cfg(cfg.get('model'))
        if counts is not None:
            apply_class_counts(dataset, *counts)
        for i in range(len(dataset)):
            dataset.pipeline(dataset.get_data_info(i))
    report = run_or_exit(lambda: check_dataset(
        dict(loader.dataset), show_dir=args.show_dir, progress=not args.no_progress,
        seed=args.seed, model_counts=head_counts_from_cfg(cfg.get('model'))),
        'check_dataset.py')
    print(f'{args.config}, {args.split} split:')
    print(format_report(report, args.max_listed))
    if args.show_dir:
        print(f'overlays written to {args.show_dir}')
    return 1 if report.stops_training else 0


if __name__ == '__main__':
    raise SystemExit(main())
