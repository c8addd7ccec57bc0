"""How far our outputs are from MMDetection's on shared weights."""
import os.path as osp
import sys
from typing import Dict

import torch

from . import REPO


def output_differences(ours, ref, inputs, samples) -> Dict[str, float]:
    """Max abs differences of our outputs from MMDet's on shared weights:
    class and mask logits of all prediction sets (eval), every loss term
    with MMDet's random points replayed into our head (train), and the
    share of panoptic pixels that differ after fusion. In fp32 (no
    autocast), whatever ``--amp`` the timings use."""
    out = {}
    ours.eval()
    ref.eval()
    with torch.no_grad():
        cls_o, mask_o = ours.panoptic_head(ours.extract_feat(inputs), samples)
        cls_r, mask_r = ref.panoptic_head(ref.extract_feat(inputs), samples)
        out['logits'] = max(float((a - b).abs().max()) for a, b in
                            zip(cls_o + mask_o, cls_r + mask_r))
        pan_o = ours.predict(inputs, [s.clone() for s in samples])
        pan_r = ref.predict(inputs, [s.clone() for s in samples])
        differ = sum(int((a.pred_panoptic_seg.sem_seg != b.pred_panoptic_seg.sem_seg).sum())
                     for a, b in zip(pan_o, pan_r))
        out['panoptic_pixels_differ'] = differ / sum(
            a.pred_panoptic_seg.sem_seg.numel() for a in pan_o)
    try:
        sys.path.insert(0, osp.join(REPO, 'tests'))
        from synthetic import losses_with_same_points
    except ImportError:  # the tests folder is not there: no loss check
        return out
    finally:
        sys.path.pop(0)
    ours.train()
    ref.train()
    try:
        with torch.no_grad():
            losses_r, losses_o = losses_with_same_points(ref, ours, inputs, samples)
    finally:
        ours.eval()
        ref.eval()
    out['losses'] = max(abs(float(losses_o[k].sum()) - float(v.sum()))
                        for k, v in losses_r.items())
    out['num_loss_terms'] = len(losses_r)
    return out
