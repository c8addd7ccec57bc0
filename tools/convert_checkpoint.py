"""Convert another implementation's Mask2Former checkpoint to m2f_mm's layout.

    python tools/convert_checkpoint.py mmdet SRC.pth DST.pth
    python tools/convert_checkpoint.py mmseg SRC.pth DST.pth
    python tools/convert_checkpoint.py d2 model_final.pkl DST.pth --config-out DST.py
    python tools/convert_checkpoint.py hf HF_DIR DST.pth --config-out DST.py

d2: a detectron2 model-zoo checkpoint of the paper (``.pkl``, read with an
allow-list that admits only containers, numbers, strings and numpy arrays,
or a detectron2 ``.pth``). hf: a ``save_pretrained`` folder of
``Mask2FormerForUniversalSegmentation`` (``config.json`` + safetensors or
``pytorch_model.bin``). For both, ``--config-out`` writes a config that
builds the checkpoint's architecture (classes, queries, backbone widths,
window size) on the dataset's config; ``--dataset`` picks that dataset when
the class count does not (COCO, ADE20K, Cityscapes, Mapillary Vistas: panoptic,
instance, semantic) and ``--num-things`` splits a panoptic model's classes.
Cityscapes, ADE20K and Mapillary panoptic models number things and stuff as
the dataset does; their classifier rows are moved things first and the config's
metainfo maps each label to its dataset category id (``--thing-ids`` does the
same for another dataset).

mmdet/mmseg: SRC is a ``.pth`` holding ``state_dict`` (as MMDet/MMSeg save them) or a bare
state dict. ``--head-prefix decode_head.`` moves an MMDet model's head into
an MMSeg EncoderDecoder's layout (and ``panoptic_head.`` the other way). DST holds ``state_dict`` (and SRC's ``meta``) and loads with
``tools/test.py --checkpoint`` / mmengine's ``load_checkpoint``.
"""
import argparse
import sys

import torch


def convert_file(source: str, src: str, dst: str, head_prefix: str = None) -> int:
    from m2f_mm.converters import convert_mmdet_state_dict
    from m2f_mm.converters.common import save_atomic
    from m2f_mm.utils.checkpoint import read_checkpoint
    if source not in ('mmdet', 'mmseg'):
        raise ValueError(f'unknown source {source!r}: expected mmdet or mmseg')
    # one line for a missing, truncated or code-running file (nothing runs)
    ckpt = read_checkpoint(src)
    state = ckpt.get('state_dict', ckpt)
    if not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f'{src}: holds no tensors under state_dict')
    heads = [k for k in state if k.startswith(('panoptic_head.', 'decode_head.'))]
    if not heads:
        raise ValueError(f'{src}: no Mask2Former head weights (keys starting '
                         'with panoptic_head. or decode_head.)')
    out = dict(state_dict=convert_mmdet_state_dict(state, head_prefix=head_prefix),
               meta=dict(ckpt.get('meta', {}), converted_from=source))
    save_atomic(out, dst)  # a failed run leaves no half-written file
    return len(out['state_dict'])


def convert_external(source: str, src: str, dst: str, config_out: str = None,
                     dataset: str = None, num_things: int = None,
                     thing_ids: list = None) -> dict:
    """d2 / hf checkpoints; see :mod:`m2f_mm.converters`."""
    if source == 'd2':
        from m2f_mm.converters.d2 import convert_d2_checkpoint as convert
    else:
        from m2f_mm.converters.hf import convert_hf_checkpoint as convert
    return convert(src, dst, config_out=config_out, dataset=dataset,
                   num_things=num_things, thing_ids=thing_ids)


# the converter's datasets (m2f_mm/converters/arch.py DATASETS), listed
# here so that --help needs no import of torch-heavy modules
DATASET_NAMES = ('coco-panoptic', 'coco-instance', 'ade20k-semantic', 'ade20k-panoptic',
                 'ade20k-instance', 'cityscapes-semantic', 'cityscapes-panoptic',
                 'cityscapes-instance', 'mapillary-semantic', 'mapillary-panoptic')


def _int_list(text: str) -> list:
    try:
        return [int(v) for v in text.split(',') if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r}: expected indices like 11,12,13')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('source', choices=['mmdet', 'mmseg', 'd2', 'hf'])
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument('--head-prefix', choices=['panoptic_head.', 'decode_head.'],
                        help='put the head under this prefix (decode_head. for an '
                        'MMSeg EncoderDecoder, panoptic_head. for MMDet)')
    parser.add_argument('--config-out', help='d2/hf: write a config for the '
                        'converted model here')
    parser.add_argument('--dataset', help='d2/hf: one of ' + ', '.join(DATASET_NAMES)
                        + ' (default: from the class count; 150, 19 and 65 '
                        'classes default to the semantic dataset)')
    parser.add_argument('--num-things', type=int,
                        help='d2/hf panoptic: how many of the classes (the first '
                        'ones) are things')
    parser.add_argument('--thing-ids', type=_int_list,
                        help='d2/hf panoptic: the source\'s thing classes by index '
                        '(e.g. 11,12,13), where things and stuff interleave; '
                        'they are moved first (not needed for the datasets above)')
    parser.add_argument('--debug', action='store_true',
                        help='full tracebacks instead of one-line errors (also '
                        'M2F_MM_DEBUG=1)')
    args = parser.parse_args(argv)
    external = args.source in ('d2', 'hf')
    if not external and (args.config_out or args.dataset or args.num_things is not None
                         or args.thing_ids is not None):
        parser.error('--config-out, --dataset, --num-things and --thing-ids are for '
                     'd2 and hf')
    try:
        if external:
            summary = convert_external(args.source, args.src, args.dst, args.config_out,
                                       args.dataset, args.num_things, args.thing_ids)
            n = summary['num_keys']
        else:
            n = convert_file(args.source, args.src, args.dst, args.head_prefix)
    except (ValueError, FileNotFoundError) as e:  # our errors are one line
        from m2f_mm.utils.errors import debug_enabled
        if debug_enabled(args.debug):
            raise
        sys.exit(f'convert_checkpoint: {e}')
    print(f'converted {n} tensors from {args.src} ({args.source}) to {args.dst}'
          + (f'; config: {args.config_out}' if external and args.config_out else ''))


if __name__ == '__main__':
    main()
