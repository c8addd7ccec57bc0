"""Command-line options the tools that load a model share."""
import argparse


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options`` (e.g. ``load_partial=True``: load a checkpoint
    that covers part of the model) and ``--debug`` (tracebacks instead of
    one-line errors)."""
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. load_partial=True '
                        '(load a checkpoint that covers part of the model)')
    parser.add_argument('--debug', action='store_true',
                        help='full tracebacks instead of one-line errors (also '
                        'M2F_MM_DEBUG=1)')
