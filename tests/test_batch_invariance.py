"""An image's panoptic, instance and semantic results do not depend on the
padding of the batch it is predicted in: two images of different sizes and
aspect ratios, each alone (padded to a multiple of 32) and together (padded
to the larger). The head's outputs are given: inside an image's valid cells
they are the same, in the padding they differ (as a network's would).

MMSegmentation pads a test image by its test_cfg, never by its batch
companions (the images of an MMSeg test batch have one size), so its
results are batch-invariant as they are and stay equal to MMSeg's.

The network itself still sees the padding (GroupNorm statistics, attention
over the whole map, normalised position embeddings), in MMDetection as
here; what is tested is that post-processing crops each image's valid
region before resizing instead of blending the padding into its border."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmengine.structures import PixelData

from m2f_mm.models.heads import hosts
from m2f_mm.models.heads.fusion import Mask2FormerFusionHead
from m2f_mm.models.utils.targets import ClassCounts

Q, K, STRIDE = 12, 5, 4  # queries, classes (3 things + 2 stuff), mask stride
# (img_shape, ori_shape): landscape and portrait, resized from other sizes
IMAGES = [((50, 70), (100, 140)), ((90, 60), (45, 30))]


def _pad32(n):
    return math.ceil(n / 32) * 32


def _head_outputs(seed):
    """Per image: class logits (Q, K+1) and mask logits on a 24×24 grid of
    stride-4 cells (the batch's), only the valid cells meaningful."""
    g = torch.Generator().manual_seed(seed)
    outs = []
    for _ in IMAGES:
        cls = torch.randn(Q, K + 1, generator=g) * 4
        masks = F.interpolate(torch.randn(1, Q, 6, 6, generator=g) * 6, size=(24, 24),
                              mode='bilinear', align_corners=False)[0]
        outs.append((cls, masks))
    return outs


def _padded(outs, indices, pad_hw, seed):
    """The batch of ``indices`` as the head returns it when padded to
    ``pad_hw``: valid cells from ``outs``, padding cells random."""
    g = torch.Generator().manual_seed(seed)
    h, w = pad_hw[0] // STRIDE, pad_hw[1] // STRIDE
    cls = torch.stack([outs[i][0] for i in indices])
    masks = torch.randn(len(indices), Q, h, w, generator=g) * 10  # the padding
    for b, i in enumerate(indices):
        vh, vw = (math.ceil(s / STRIDE) for s in IMAGES[i][0])
        masks[b, :, :vh, :vw] = outs[i][1][:, :vh, :vw]
    return cls, masks


def _samples(indices, pad_hw):
    samples = []
    for i in indices:
        img_shape, ori_shape = IMAGES[i]
        samples.append(DetDataSample(metainfo=dict(
            img_id=i, img_shape=img_shape, ori_shape=ori_shape,
            batch_input_shape=pad_hw, pad_shape=pad_hw)))
    return samples


def _mmdet_results(outs, indices, pad_hw, seed, upsample=hosts.mmdet_predictions):
    fusion = Mask2FormerFusionHead(test_cfg=dict(
        panoptic_on=True, instance_on=True, semantic_on=True, max_per_image=20,
        object_mask_thr=0.5, iou_thr=0.5))
    fusion.configure(ClassCounts(3, 2))
    cls, masks = _padded(outs, indices, pad_hw, seed)
    samples = _samples(indices, pad_hw)
    cls, masks = upsample(cls, masks, samples)
    return fusion.predict(cls, masks, samples, rescale=True)


def _alone_and_batched(upsample=hosts.mmdet_predictions):
    outs = _head_outputs(0)
    batch_hw = tuple(_pad32(max(img[0][d] for img in IMAGES)) for d in (0, 1))
    batched = _mmdet_results(outs, [0, 1], batch_hw, seed=1, upsample=upsample)
    alone = [_mmdet_results(outs, [i], tuple(_pad32(s) for s in IMAGES[i][0]),
                            seed=2 + i, upsample=upsample)[0] for i in range(2)]
    return alone, batched


def _same(a, b):
    pan = torch.equal(a['pan_results'].sem_seg, b['pan_results'].sem_seg)
    sem = torch.equal(a['sem_results'].sem_seg, b['sem_results'].sem_seg)
    ia, ib = a['ins_results'], b['ins_results']
    ins = (torch.equal(ia.labels, ib.labels) and torch.equal(ia.masks, ib.masks)
           and torch.equal(ia.scores, ib.scores))
    return pan, ins, sem


def test_mmdet_results_do_not_depend_on_batch_padding():
    alone, batched = _alone_and_batched()
    for i in range(2):
        assert alone[i]['pan_results'].sem_seg.shape[-2:] == IMAGES[i][1]
        assert (alone[i]['pan_results'].sem_seg != K).any()  # segments found
        assert len(alone[i]['ins_results']) > 0
        assert _same(alone[i], batched[i]) == (True, True, True), i


def test_resizing_the_padded_map_would_not_be_invariant():
    """Control: MMDet's way (resize the whole padded map, then crop) gives
    other results for the same image in the two batches."""
    def resize_whole(cls, masks, samples):
        shape = samples[0].metainfo['batch_input_shape']
        return cls, F.interpolate(masks, size=shape, mode='bilinear',
                                  align_corners=False)

    alone, batched = _alone_and_batched(resize_whole)
    assert not all(all(_same(alone[i], batched[i])) for i in range(2))


def test_without_padding_the_upsampling_is_the_plain_resize():
    """No cell beyond the images: exactly MMDet's interpolation (parity)."""
    masks = torch.randn(2, Q, 16, 24)
    out = hosts.upsample_valid(masks, [(64, 96), (61, 93)], (64, 96))
    assert torch.equal(out, F.interpolate(masks, size=(64, 96), mode='bilinear',
                                          align_corners=False))
