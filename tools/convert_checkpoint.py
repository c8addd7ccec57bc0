"""Convert another implementation's Mask2Former checkpoint to m2f_mm's layout.

    python tools/convert_checkpoint.py mmdet SRC.pth DST.pth
    python tools/convert_checkpoint.py mmseg SRC.pth DST.pth

SRC is a ``.pth`` holding ``state_dict`` (as MMDet/MMSeg save them) or a bare
state dict. ``--head-prefix decode_head.`` moves an MMDet model's head into
an MMSeg EncoderDecoder's layout (and ``panoptic_head.`` the other way). DST holds ``state_dict`` (and SRC's ``meta``) and loads with
``tools/test.py --checkpoint`` / mmengine's ``load_checkpoint``.
"""
import argparse
import os
import sys
import tempfile

import torch


def convert_file(source: str, src: str, dst: str, head_prefix: str = None) -> int:
    from m2f_mm.converters import convert_mmdet_state_dict
    from m2f_mm.patches import safe_checkpoint_context
    if source not in ('mmdet', 'mmseg'):
        raise ValueError(f'unknown source {source!r}: expected mmdet or mmseg')
    if not os.path.isfile(src):
        raise FileNotFoundError(f'{src}: no such checkpoint')
    with safe_checkpoint_context():
        ckpt = torch.load(src, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise ValueError(f'{src}: expected a dict, got {type(ckpt).__name__}')
    state = ckpt.get('state_dict', ckpt)
    if not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f'{src}: holds no tensors under state_dict')
    heads = [k for k in state if k.startswith(('panoptic_head.', 'decode_head.'))]
    if not heads:
        raise ValueError(f'{src}: no Mask2Former head weights (keys starting '
                         'with panoptic_head. or decode_head.)')
    out = dict(state_dict=convert_mmdet_state_dict(state, head_prefix=head_prefix),
               meta=dict(ckpt.get('meta', {}), converted_from=source))
    # write next to DST, then rename: a failed run leaves no half-written file
    dst_dir = os.path.dirname(os.path.abspath(dst))
    os.makedirs(dst_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix='.pth.part', dir=dst_dir)
    os.close(fd)
    try:
        torch.save(out, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return len(out['state_dict'])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('source', choices=['mmdet', 'mmseg'])
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument('--head-prefix', choices=['panoptic_head.', 'decode_head.'],
                        help='put the head under this prefix (decode_head. for an '
                        'MMSeg EncoderDecoder, panoptic_head. for MMDet)')
    args = parser.parse_args(argv)
    try:
        n = convert_file(args.source, args.src, args.dst, args.head_prefix)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f'convert_checkpoint: {e}')
    print(f'converted {n} tensors from {args.src} ({args.source}) to {args.dst}')


if __name__ == '__main__':
    main()
