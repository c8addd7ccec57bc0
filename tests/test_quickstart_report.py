"""The quickstart's report tools: training curves, overlays, per-class
metrics (fast: tiny fake inputs)."""
import json
import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'tools'))


def _write_scalars(work_dir, stamp, rows):
    path = osp.join(work_dir, stamp, 'vis_data', 'scalars.json')
    os.makedirs(osp.dirname(path))
    with open(path, 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in rows)
    return path


def test_plot_curves_reads_the_training_run(tmp_path):
    from plot_curves import find_scalars, main, read_scalars
    train = _write_scalars(tmp_path, '20260101_000000', [
        dict(loss=50.0, iter=10, step=10), dict(loss=20.0, iter=20, step=20),
        # logged by epoch (0), as mmengine does by default
        {'coco_panoptic/PQ': 40.0, 'coco/segm_mAP': 0.3, 'sem_seg/mIoU': 60.0,
         'coco/segm_mAP_l': -1.0, 'step': 0}])
    # a later test run in the same work dir logs metrics but no loss
    _write_scalars(tmp_path, '20260101_000100', [{'coco_panoptic/PQ': 1.0, 'step': 0}])
    assert find_scalars(str(tmp_path)) == train
    loss, val = read_scalars(train)
    assert loss == [(10, 50.0), (20, 20.0)]
    assert val['coco_panoptic/PQ'] == [(20, 40.0)]
    assert val['coco/segm_mAP'] == [(20, 30.0)]  # fraction → percent
    main([str(tmp_path)])
    with Image.open(tmp_path / 'curves.png') as im:
        assert im.width >= 800
    with pytest.raises(SystemExit, match='no .*scalars.json'):
        main([str(tmp_path / 'empty')])


def test_draw_overlays_side_by_side_and_grid(tmp_path):
    from draw_overlays import draw_overlays, pred_segments
    ids = np.zeros((32, 40), np.int64)
    ids[:, :20], ids[:, 20:], ids[8:16, 8:16] = 4, 5, 1  # two stuff, one thing
    (tmp_path / 'pan').mkdir()
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'pan' / 'a.png')
    Image.fromarray(np.full((32, 40, 3), 90, np.uint8)).save(tmp_path / 'a.png')
    cats = [dict(id=1, name='circle', isthing=1, color=[220, 20, 60]),
            dict(id=4, name='sky', isthing=0, color=[135, 190, 235]),
            dict(id=5, name='grass', isthing=0, color=[70, 150, 60])]
    ann = dict(annotations=[dict(image_id=7, file_name='a.png', segments_info=[
        dict(id=i, category_id=i) for i in (1, 4, 5)])], categories=cats)
    with open(tmp_path / 'pan.json', 'w') as f:
        json.dump(ann, f)
    pan = np.full((1, 32, 40), 1, np.int64)  # label 1 = sky (stuff)
    pan[0, 8:16, 8:16] = 0 + 1000  # circle, instance 1
    pan[0, :2] = 3  # void (3 classes)
    assert sorted(lbl for _, lbl in pred_segments(pan[0], 3)) == [0, 1]
    preds = [dict(img_id=7, img_path=str(tmp_path / 'a.png'),
                  pred_panoptic_seg=dict(sem_seg=torch.from_numpy(pan)))]
    paths, grid = draw_overlays(preds, str(tmp_path / 'pan.json'),
                                str(tmp_path / 'pan'), str(tmp_path / 'out'),
                                width=512)
    assert [osp.basename(p) for p in paths] == ['a.png']
    with Image.open(paths[0]) as im:
        assert im.width >= 2 * 512 and im.height > 512 * 32 / 40
    assert osp.isfile(grid)


def test_semseg_iou_per_class():
    from m2f_mm.evaluation import SemSegIoUMetric
    metric = SemSegIoUMetric(classwise=True)
    metric.dataset_meta = dict(classes=('a', 'b', 'c'))
    pred = torch.tensor([[0, 0, 1, 1]])
    gt = torch.tensor([[0, 1, 1, 1]])
    metric.process({}, [dict(pred_sem_seg=dict(sem_seg=pred),
                             gt_sem_seg=dict(sem_seg=gt))])
    out = metric.compute_metrics(metric.results)
    assert out['IoU_a'] == 50.0 and out['IoU_b'] == pytest.approx(66.67)
    assert np.isnan(out['IoU_c'])  # in neither map
    assert 'mIoU' in out


def test_panoptic_metric_per_class(tmp_path):
    from mmdet.evaluation.functional import pq_compute_single_core
    from m2f_mm.evaluation import CocoPanopticMetric
    from panopticapi.utils import id2rgb
    gt = np.zeros((4, 8), np.int64)
    gt[:, :4], gt[:, 4:] = 1, 2  # segment 1 a thing, segment 2 stuff
    pred = gt.copy()
    pred[:, 3] = 2  # the thing loses a column: IoU 12/16, stuff 16/20
    for name, ids in (('gt', gt), ('pred', pred)):
        (tmp_path / name).mkdir()
        Image.fromarray(id2rgb(ids).astype(np.uint8)).save(tmp_path / name / 'a.png')
    # without an ann_file the metric keys categories by label (0, 1, ...)
    segs = [dict(id=1, category_id=0, iscrowd=0, area=16),
            dict(id=2, category_id=1, iscrowd=0, area=16)]
    categories = {0: dict(id=0, name='circle', isthing=1),
                  1: dict(id=1, name='sky', isthing=0)}
    stat = pq_compute_single_core(
        0, [(dict(image_id=1, file_name='a.png', segments_info=segs),
             dict(image_id=1, file_name='a.png',  # it writes areas into these
                  segments_info=[dict(s) for s in segs]))],
        str(tmp_path / 'gt'), str(tmp_path / 'pred'), categories)
    metric = CocoPanopticMetric(classwise=True)
    metric.dataset_meta = dict(classes=('circle', 'sky'), thing_classes=('circle',),
                               stuff_classes=('sky',))
    out = metric.compute_metrics([stat])
    assert out['PQ_circle'] == pytest.approx(75.0)
    assert out['PQ_sky'] == pytest.approx(80.0)
    assert out['RQ_sky'] == pytest.approx(100.0)
    assert out['PQ'] == pytest.approx(77.5)


def test_batch_per_process_keeps_eight_images_per_iteration():
    """The quickstart config's schedule is 8 images per iteration (2 CPU
    processes x 4); one process (a GPU) takes 8, not 4."""
    from mmengine.config import Config
    from quickstart import CONFIG, batch_per_process
    cfg = Config.fromfile(osp.join(REPO, CONFIG))
    assert 2 * cfg.train_dataloader.batch_size == 8  # what the 2-process run used
    assert [batch_per_process(n) for n in (1, 2, 4, 8)] == [8, 4, 2, 1]
    assert batch_per_process(3) == 3 and batch_per_process(16) == 1
    with pytest.raises(ValueError, match='--nproc must be 1 or more, got 0'):
        batch_per_process(0)
