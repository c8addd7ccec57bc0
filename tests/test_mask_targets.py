"""BuildMaskTargets builds in the dataloader workers exactly the targets
MMDet 3.3's and MMSeg 1.2's heads derive internally, and drops what a crop
emptied."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from m2f_mm.datasets.transforms import BuildMaskTargets
from m2f_mm.models.heads.hosts import targets_from_samples
from synthetic import make_sample

register_all_modules(init_default_scope=False)
H, W = 48, 64


def _mmdet_head_targets(sample, num_things, num_stuff):
    """MMDet's own code path: MaskFormerHead.preprocess_gt."""
    from mmdet.models.dense_heads import MaskFormerHead
    fake = SimpleNamespace(num_things_classes=num_things,
                           num_stuff_classes=num_stuff)
    sem = [sample.gt_sem_seg] if 'gt_sem_seg' in sample else [None]
    return MaskFormerHead.preprocess_gt(fake, [sample.gt_instances], sem)[0]


@pytest.mark.parametrize('with_sem', [True, False], ids=['panoptic', 'instance'])
@pytest.mark.parametrize('seed', range(4))
def test_equals_mmdet_head_targets(with_sem, seed):
    sample = make_sample(H, W, num_things=seed, seed=seed, with_sem=with_sem)
    num_stuff = 2 if with_sem else 0
    ref = _mmdet_head_targets(sample, 3, num_stuff)
    out = BuildMaskTargets(num_things_classes=3, num_stuff_classes=num_stuff,
                           min_area=0).transform(dict(data_samples=sample))
    seg = out['data_samples'].gt_segments
    assert torch.equal(seg.labels, ref.labels.long())
    assert torch.equal(seg.masks, ref.masks.bool())
    assert seg.masks.dtype == torch.bool


@pytest.mark.parametrize('ignore_all', [False, True])
def test_equals_mmseg_head_targets(ignore_all):
    from mmseg.models.decode_heads import Mask2FormerHead as MMSegHead
    rng = np.random.RandomState(0)
    sem = rng.choice([0, 2, 3, 255], size=(H, W))
    if ignore_all:
        sem[:] = 255
    sample = SegDataSample(metainfo=dict(img_path='a.png'))
    sample.gt_sem_seg = PixelData(data=torch.from_numpy(sem)[None])
    ref = MMSegHead._seg_data_to_instance_data(
        SimpleNamespace(ignore_index=255), [sample])[0][0]
    out = BuildMaskTargets(num_classes=4, min_area=0).transform(
        dict(data_samples=sample))['data_samples'].gt_segments
    assert torch.equal(out.labels, ref.labels.long())
    assert torch.equal(out.masks, ref.masks.bool())
    assert len(out.labels) == (0 if ignore_all else 3)


def test_semantic_label_out_of_range_names_value_and_file():
    sample = SegDataSample(metainfo=dict(img_path='img_7.jpg'))
    sample.gt_sem_seg = PixelData(data=torch.full((1, 4, 4), 9))
    with pytest.raises(ValueError, match=r'^img_7.jpg: gt_sem_seg: label 9 is outside \[0, 4\)'):
        BuildMaskTargets(num_classes=4).transform(dict(data_samples=sample))


def test_needs_packed_targets():
    with pytest.raises(ValueError, match='after PackDetInputs'):
        BuildMaskTargets(num_classes=4).transform(dict(data_samples=DetDataSample()))


def _lsj_results(seed):
    """A loaded MMDet panoptic sample (as LoadPanopticAnnotations leaves it)
    with boxes spanning the image but pixels in a corner, so a crop can keep
    a thing's box (MMDet keeps it) while emptying its mask."""
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    masks = np.zeros((3, H, W), np.uint8)
    masks[0, :4, :4] = 1          # top-left corner only
    masks[1, -4:, -4:] = 1        # bottom-right corner only
    masks[2, 20:28, 28:36] = 1    # centre
    seg = np.full((H, W), 3, np.uint8)
    seg[H // 2:] = 4
    for label, m in zip([0, 1, 2], masks):
        seg[m.astype(bool)] = label
    return dict(
        img=np.random.RandomState(seed).randint(0, 255, (H, W, 3)).astype(np.uint8),
        img_shape=(H, W), ori_shape=(H, W), img_path=f'lsj_{seed}.png',
        gt_bboxes=HorizontalBoxes(torch.tensor([[0., 0., W, H]] * 3)),
        gt_bboxes_labels=np.array([0, 1, 2]), gt_ignore_flags=np.zeros(3, bool),
        gt_masks=BitmapMasks(masks, H, W), gt_seg_map=seg)


def test_crop_that_empties_a_thing_leaves_no_target():
    from mmdet.datasets.transforms import PackDetInputs, RandomCrop
    crop = RandomCrop(crop_size=(24, 24), crop_type='absolute',
                      recompute_bbox=True, allow_negative_crop=True)
    pack = PackDetInputs()
    build = BuildMaskTargets(num_things_classes=3, num_stuff_classes=2)
    emptied = 0
    for seed in range(6):
        np.random.seed(seed)
        out = build(pack(crop(_lsj_results(seed))))
        sample = out['data_samples']
        thing_areas = sample.gt_instances.masks.masks.reshape(
            len(sample.gt_instances), -1).sum(1)
        emptied += int((thing_areas == 0).sum())  # MMDet keeps these
        seg = sample.gt_segments
        assert (seg.masks.flatten(1).sum(1) > 0).all()
        things = seg.labels < 3
        assert int(things.sum()) == int((thing_areas > 0).sum())
    assert emptied > 0, 'the crops should have emptied some thing masks'


def test_head_prefers_transform_targets_and_trains_on_empty_image():
    """An image left with no target after the transform still trains."""
    from mmdet.registry import MODELS
    from reference_models import ours_cfg
    torch.manual_seed(0)
    model = MODELS.build(ours_cfg()).train()
    build = BuildMaskTargets(num_things_classes=3, num_stuff_classes=2)
    samples = [make_sample(64, 64, seed=1), make_sample(64, 64, seed=2, empty=True)]
    for s in samples:  # as the dataloader workers would
        build.transform(dict(data_samples=s))
    head = model.panoptic_head
    labels, masks = targets_from_samples(samples[:1], head.counts, head.ignore_index)[0]
    assert torch.equal(labels, samples[0].gt_segments.labels)
    assert len(samples[1].gt_segments) == 0
    losses = model.loss(torch.randn(2, 3, 64, 64), samples)
    assert torch.isfinite(sum(losses.values()))
