"""Small MMSegmentation 1.2 / m2f_mm semantic Mask2Former pairs built from
equivalent configs (``mmseg.EncoderDecoder`` with MMSeg's ``Mask2FormerHead``
or with ours), and tiny semantic data samples (CPU, small shapes)."""
import copy

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.structures import PixelData

from reference_models import BACKBONE, mmdet_cfg, ours_cfg

SEG_BACKBONE = dict(BACKBONE, type='mmseg.ResNet')


def seg_preprocessor(size=(64, 64)):
    return dict(type='mmseg.SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                seg_pad_val=255, size=size, test_cfg=dict(size_divisor=32))


def mmseg_cfg(num_classes=4, num_queries=10, feat=64, num_points=128, num_layers=9,
              size=(64, 64), test_cfg=None):
    """MMSeg's own Mask2Former: its head subclasses MMDet's, so the head
    config is MMDet's minus the thing/stuff split."""
    det = mmdet_cfg(num_things=0, num_stuff=num_classes, num_queries=num_queries,
                    feat=feat, num_points=num_points, num_layers=num_layers)
    head = copy.deepcopy(det.panoptic_head.to_dict())
    head.pop('num_things_classes')
    head.pop('num_stuff_classes')
    head.update(type='mmseg.Mask2FormerHead', num_classes=num_classes,
                align_corners=False, train_cfg=det.train_cfg.to_dict())
    return ConfigDict(type='mmseg.EncoderDecoder',
                      data_preprocessor=seg_preprocessor(size),
                      backbone=SEG_BACKBONE, decode_head=head, train_cfg=dict(),
                      test_cfg=test_cfg or dict(mode='whole'))


def seg_head_cfg(num_classes=4, num_queries=10, feat=64, num_points=128,
                 num_layers=9):
    """Our head as MMSeg's ``decode_head``: the panoptic head's config with
    ``num_classes`` alone and the training settings inside."""
    det = ours_cfg(num_things=0, num_stuff=num_classes, num_queries=num_queries,
                   feat=feat, num_points=num_points, num_layers=num_layers)
    head = copy.deepcopy(det.panoptic_head.to_dict())
    head.pop('num_things_classes')
    head.pop('num_stuff_classes')
    head.update(num_classes=num_classes, align_corners=False,
                train_cfg=det.train_cfg.to_dict())
    return head


def ours_seg_cfg(num_classes=4, size=(64, 64), test_cfg=None, **kwargs):
    return ConfigDict(type='mmseg.EncoderDecoder',
                      data_preprocessor=seg_preprocessor(size),
                      backbone=SEG_BACKBONE,
                      decode_head=seg_head_cfg(num_classes, **kwargs),
                      train_cfg=dict(), test_cfg=test_cfg or dict(mode='whole'))


def build_seg_pair(seed=0, **kwargs):
    """MMSeg's model and ours with MMSeg's weights converted into ours."""
    from mmseg.registry import MODELS
    from m2f_mm.converters import convert_mmdet_state_dict
    torch.manual_seed(seed)
    ref = MODELS.build(mmseg_cfg(**kwargs))
    ref.init_weights()
    ours = MODELS.build(ours_seg_cfg(**kwargs))
    missing, unexpected = ours.load_state_dict(
        convert_mmdet_state_dict(ref.state_dict()), strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    return ref.eval(), ours.eval()


def make_seg_sample(h, w, num_classes=4, seed=0, ignore_border=4):
    """A ``SegDataSample`` of random rectangles of ``num_classes`` classes
    over class 0, with a void (255) border, as PackSegInputs packs it."""
    from mmseg.structures import SegDataSample
    rng = np.random.RandomState(seed)
    sem = np.zeros((h, w), dtype=np.int64)
    for k in range(1, num_classes):
        y0, x0 = rng.randint(0, h // 2), rng.randint(0, w // 2)
        sem[y0:y0 + rng.randint(4, h // 2), x0:x0 + rng.randint(4, w // 2)] = k
    if ignore_border:
        sem[:ignore_border] = 255
    sample = SegDataSample(metainfo=dict(
        img_shape=(h, w), ori_shape=(h, w), img_path=f'img_{seed}.jpg',
        seg_map_path=f'seg_{seed}.png'))
    sample.gt_sem_seg = PixelData(data=torch.from_numpy(sem)[None])
    return sample
