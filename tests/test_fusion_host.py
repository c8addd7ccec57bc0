"""Inference fusion without per-segment host round trips: the panoptic map
and the instance boxes equal MMDetection's (its loop over the segments and
its ``mask2bbox`` loop over the masks), with a few host synchronisations
per image instead of several per segment and per mask on CUDA."""
import pytest
import torch
from mmdet.models.seg_heads.panoptic_fusion_heads import MaskFormerFusionHead
from mmdet.structures.mask import mask2bbox

from m2f_mm.models.heads.fusion import instance_fusion, mask_boxes, panoptic_fusion
from test_host_syncs import HostSyncs

THINGS, STUFF = 4, 3
CLASSES = THINGS + STUFF


def _inputs(seed, q=30, h=24, w=32):
    g = torch.Generator().manual_seed(seed)
    cls = torch.randn(q, CLASSES + 1, generator=g) * 4
    # soft masks: pixels are often won by a query whose probability there is
    # below 0.5 (what filter_low_score drops)
    masks = torch.randn(q, h, w, generator=g) - 1.0
    masks[:2] += 1.0  # two queries cover more
    masks[2:4] = -20  # two are empty
    return cls, masks


def _mmdet(cls, masks, object_thr=0.8, iou_thr=0.8, filter_low=False):
    head = MaskFormerFusionHead(
        num_things_classes=THINGS, num_stuff_classes=STUFF,
        test_cfg=dict(object_mask_thr=object_thr, iou_thr=iou_thr,
                      filter_low_score=filter_low))
    return head.panoptic_postprocess(cls, masks).sem_seg[0]


CASES = [(0.8, 0.8, False), (0.5, 0.2, False), (0.0, 0.1, True),
         (1.0, 0.3, False), (0.3, 0.05, True), (0.3, 0.05, False)]


@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('iou_thr,object_thr,filter_low', CASES)
def test_panoptic_fusion_equals_mmdets(seed, iou_thr, object_thr, filter_low):
    cls, masks = _inputs(seed)
    ref = _mmdet(cls, masks, object_thr, iou_thr, filter_low)
    ours = panoptic_fusion(cls, masks, CLASSES, THINGS, object_thr, iou_thr, filter_low)
    assert ours.dtype == ref.dtype == torch.int32
    assert torch.equal(ours, ref)


def test_the_cases_exercise_the_fusion():
    """The inputs above are not trivial: several segments per map, and
    filter_low_score changes maps."""
    segments, filtered = [], 0
    for seed in range(6):
        cls, masks = _inputs(seed)
        segments.append(len(torch.unique(_mmdet(cls, masks, 0.05, 0.3))))
        filtered += not torch.equal(_mmdet(cls, masks, 0.05, 0.0, True),
                                    _mmdet(cls, masks, 0.05, 0.0, False))
    assert min(segments) >= 4, segments
    assert filtered >= 3


@pytest.mark.parametrize('iou_thr', [0.8, 0.81])
def test_panoptic_fusion_at_the_iou_boundary(iou_thr):
    """A thing whose own mask is 5 pixels, 4 of them won: 4/5 = 0.8 is kept
    at iou_thr 0.8 and dropped just above."""
    masks = torch.tensor([[[5., 5, 5, 5, 5, -5]],  # the thing
                          [[-5., -5, -5, -5, 8, 8]]])  # a stuff segment
    cls = torch.full((2, CLASSES + 1), -10.0)
    cls[0, 0] = cls[1, THINGS + 1] = 10.0
    ours = panoptic_fusion(cls, masks, CLASSES, THINGS, 0.8, iou_thr)
    assert torch.equal(ours, _mmdet(cls, masks, 0.8, iou_thr))
    thing = 0 + 1 * 1000  # label 0, instance 1
    assert ours[0].tolist() == ([thing] * 4 if iou_thr == 0.8 else [CLASSES] * 4) \
        + [THINGS + 1] * 2


def test_panoptic_fusion_nothing_kept_is_void():
    cls, masks = _inputs(0)
    cls[:, -1] = 100.0  # every query says "no object"
    out = panoptic_fusion(cls, masks, CLASSES, THINGS)
    assert out.shape == masks.shape[1:] and out.eq(CLASSES).all()


def test_mask_boxes_equal_mmdets_mask2bbox():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(12, 20, 28, generator=g) > 0.97
    masks[0] = False  # empty
    masks[1] = True  # full
    masks[2] = False
    masks[2, 19, 27] = True  # one pixel in the corner
    masks[3] = False
    masks[3, 0, 5:9] = True  # one row
    ours = mask_boxes(masks)
    assert ours.dtype == torch.float32
    assert torch.equal(ours, mask2bbox(masks))
    assert mask_boxes(masks[:0]).shape == (0, 4)


def test_fusion_makes_a_few_host_round_trips():
    """On CUDA every counted call waits for the GPU. MMDet's loops make a
    few per segment and per mask; ours a few per image."""
    g = torch.Generator().manual_seed(1)
    cls = torch.randn(100, CLASSES + 1, generator=g) * 4
    masks = torch.randn(100, 24, 32, generator=g) * 3
    counter = HostSyncs()
    with counter:
        pan = panoptic_fusion(cls, masks, CLASSES, THINGS, 0.3, 0.0)
        inst = instance_fusion(cls, masks, CLASSES, THINGS)
    print('host round-trip calls:', counter.calls)
    assert len(torch.unique(pan)) > 10 and len(inst) > 20  # work was done
    # which queries are kept; which top-k pairs are things; distinct queries
    assert sorted(counter.calls) == ['nonzero', 'nonzero', 'unique'], counter.calls

    # the loop replaced: host reads per mask (nonzero, item), seen by the
    # profiler (a TorchFunctionMode does not see those inside new_tensor)
    from torch.profiler import profile

    def host_reads(fn):
        with profile() as prof:
            fn()
        return sum(e.name in ('aten::nonzero', 'aten::_local_scalar_dense')
                   for e in prof.events())
    assert host_reads(lambda: mask2bbox(masks > 0)) >= 2 * len(masks)
    assert host_reads(lambda: mask_boxes(masks > 0)) == 0
