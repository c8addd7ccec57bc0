"""PQ through MMDet's own evaluation code (panopticapi-lite on numpy 2)
equals a value computed by hand on a small case."""
import numpy as np
import pytest
from PIL import Image


def _write(path, ids):
    from panopticapi.utils import id2rgb
    Image.fromarray(id2rgb(ids).astype(np.uint8)).save(path)


def test_pq_small_case_by_hand(tmp_path):
    from mmdet.evaluation.functional import pq_compute_single_core
    gt = np.zeros((4, 8), np.int64)
    gt[:, 0:2] = 1   # thing (category 1), 8 px
    gt[:, 2:4] = 2   # thing (category 1), 8 px: missed by the prediction
    gt[:, 4:8] = 3   # stuff (category 4), 16 px
    pred = np.zeros((4, 8), np.int64)
    pred[:, 0:2] = 10
    pred[0:2, 0] = 0  # 6 px of the first thing: IoU 6/8
    pred[:, 3:8] = 11  # stuff, 20 px over the 16 of its GT: IoU 16/20
    (tmp_path / 'gt').mkdir()
    (tmp_path / 'pred').mkdir()
    _write(tmp_path / 'gt' / 'a.png', gt)
    _write(tmp_path / 'pred' / 'a.png', pred)
    gt_ann = dict(image_id=1, file_name='a.png', segments_info=[
        dict(id=1, category_id=1, iscrowd=0, area=8),
        dict(id=2, category_id=1, iscrowd=0, area=8),
        dict(id=3, category_id=4, iscrowd=0, area=16)])
    pred_ann = dict(image_id=1, file_name='a.png', segments_info=[
        dict(id=10, category_id=1), dict(id=11, category_id=4)])
    categories = {i: dict(id=i, name=str(i), isthing=int(i <= 3))
                  for i in range(1, 7)}
    stat = pq_compute_single_core(0, [(gt_ann, pred_ann)], str(tmp_path / 'gt'),
                                  str(tmp_path / 'pred'), categories)
    # category 1: one match (IoU 0.75) and one miss → PQ = 0.75 / (1 + 0.5)
    # category 4: one match (IoU 0.8)             → PQ = 0.8
    things, _ = stat.pq_average(categories, isthing=True)
    stuff, _ = stat.pq_average(categories, isthing=False)
    everything, per_class = stat.pq_average(categories, isthing=None)
    assert things['pq'] == pytest.approx(0.5)
    assert things['sq'] == pytest.approx(0.75)
    assert things['rq'] == pytest.approx(2 / 3)
    assert stuff['pq'] == pytest.approx(0.8)
    assert everything['pq'] == pytest.approx(0.65)
    assert everything['n'] == 2  # categories absent from both are not counted
