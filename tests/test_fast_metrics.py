"""FastCocoPanopticMetric and FastCocoMetric (hotcoco, in memory) give
MMDetection's / panopticapi's / pycocotools' numbers to 1e-9 on a generated
COCO-shaped set: 133 classes, crowd regions, VOID pixels, images without
ground truth, empty predictions, a class never predicted."""
import os.path as osp
import sys

import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'tools'))

from bench.coco_eval_data import predictions, write_coco_like_set  # noqa: E402


@pytest.fixture(scope='module')
def coco_set(tmp_path_factory):
    data = write_coco_like_set(str(tmp_path_factory.mktemp('coco')), 60, height=64,
                               width=85, dets=12)
    data['batches'] = list(predictions(data, batch_size=7))
    return data


def _copies(batch):
    """MMDet's panoptic metric writes VOID (0) into the predicted maps it is
    given: each metric gets its own copy."""
    return [dict(s, pred_panoptic_seg=dict(
        sem_seg=s['pred_panoptic_seg']['sem_seg'].clone())) for s in batch]


def _run(metric, meta, batches):
    metric.dataset_meta = meta
    for batch in batches:
        metric.process({}, _copies(batch))
    return metric.evaluate(sum(len(b) for b in batches))


def _assert_same(ref, ours):
    assert list(ref) == list(ours)
    for key in ref:
        if ref[key] != ref[key]:  # NaN: a class without GT or detections
            assert ours[key] != ours[key], key
        else:
            assert abs(ref[key] - ours[key]) <= 1e-9, (key, ref[key], ours[key])


def test_generated_set_has_the_hard_cases(coco_set):
    import json
    with open(coco_set['panoptic_json']) as f:
        pan = json.load(f)
    segs = [s for a in pan['annotations'] for s in a['segments_info']]
    assert len(pan['categories']) == 133
    assert any(s['iscrowd'] for s in segs)
    assert any(not a['segments_info'] for a in pan['annotations'])
    never = coco_set['never']
    pred_labels = set()
    for batch in coco_set['batches']:
        for s in batch:
            pred_labels |= set((s['pred_panoptic_seg']['sem_seg'] % 1000).unique().tolist())
    assert never not in pred_labels and 133 in pred_labels  # VOID predicted
    assert any((s['pred_panoptic_seg']['sem_seg'] % 1000 == 133).all()
               for b in coco_set['batches'] for s in b)  # an empty prediction


@pytest.mark.parametrize('case', ['ann_file', 'ann_file+backend_args', 'dataset',
                                  'dataset, a PNG id unlisted'])
def test_panoptic_equals_mmdet(coco_set, case):
    """With the annotation file or the dataset's segments as GT; through
    mmengine's file backends (the PNGs copied for hotcoco); a segment the
    dataset dropped from segments_info (MMDet's CocoPanopticDataset drops
    those of no area) but whose id the PNG still holds: not VOID, as in
    panopticapi."""
    from m2f_mm.evaluation import CocoPanopticMetric, FastCocoPanopticMetric
    kwargs = dict(seg_prefix=coco_set['seg_prefix'], classwise=True)
    if case.startswith('ann_file'):
        kwargs['ann_file'] = coco_set['panoptic_json']
    if case.endswith('backend_args'):
        kwargs['backend_args'] = dict(backend='local')
    meta, batches = coco_set['dataset_meta'], coco_set['batches']
    if case.endswith('unlisted'):
        batches = [[dict(s, segments_info=s['segments_info'][1:]) for s in b] for b in batches]
    ref = _run(CocoPanopticMetric(**kwargs), meta, batches)
    ours = _run(FastCocoPanopticMetric(**kwargs), meta, batches)
    assert len(ref) == 9 + 3 * 133  # overall / things / stuff and per class
    _assert_same(ref, ours)
    assert 0 < ours['coco_panoptic/PQ'] < 100


def test_panoptic_results_gather_across_processes(coco_set):
    """Results split as two ranks would hold them, then pickled and
    concatenated (what mmengine's collect does), give the same numbers."""
    from m2f_mm.evaluation import FastCocoPanopticMetric
    meta, batches = coco_set['dataset_meta'], coco_set['batches']
    parts = []
    for rank in range(2):
        metric = FastCocoPanopticMetric(seg_prefix=coco_set['seg_prefix'],
                                        ann_file=coco_set['panoptic_json'])
        metric.dataset_meta = meta
        for batch in batches[rank::2]:
            metric.process({}, _copies(batch))
        parts.append(metric)
    whole = _run(FastCocoPanopticMetric(seg_prefix=coco_set['seg_prefix'],
                                        ann_file=coco_set['panoptic_json']), meta, batches)
    # mmengine's collect pickles each rank's results (they are held in Kept)
    import pickle
    gathered = parts[0].compute_metrics(pickle.loads(pickle.dumps(
        parts[0].results + parts[1].results)))
    assert gathered == {k.split('/')[1]: v for k, v in whole.items()}


def test_mask_and_box_ap_equal_mmdet(coco_set):
    from mmdet.evaluation.metrics import CocoMetric

    from m2f_mm.evaluation import FastCocoMetric
    meta = dict(classes=coco_set['dataset_meta']['thing_classes'])
    kwargs = dict(ann_file=coco_set['instances_json'], metric=['bbox', 'segm'],
                  classwise=True)
    ref = _run(CocoMetric(**kwargs), meta, coco_set['batches'])
    ours = _run(FastCocoMetric(**kwargs), meta, coco_set['batches'])
    assert 'coco/segm_mAP' in ours and 'coco/bbox_mAP_l' in ours
    _assert_same(ref, ours)


@pytest.mark.parametrize('items', [['mAP', 'AR@100', 'AR_s@1000', 'AR_l@1000'], []])
def test_metric_items_equal_mmdet(coco_set, items):
    """MMDet accepts all twelve COCOeval names (the AR ones too); an empty
    list gives no keys."""
    from mmdet.evaluation.metrics import CocoMetric

    from m2f_mm.evaluation import FastCocoMetric
    meta = dict(classes=coco_set['dataset_meta']['thing_classes'])
    kwargs = dict(ann_file=coco_set['instances_json'], metric=['bbox', 'segm'],
                  metric_items=items)
    ref = _run(CocoMetric(**kwargs), meta, coco_set['batches'])
    ours = _run(FastCocoMetric(**kwargs), meta, coco_set['batches'])
    assert len(ours) == 2 * len(items)
    _assert_same(ref, ours)


def test_box_sizes_in_float64_as_mmdet(tmp_path):
    """x2 - x1 of float32 boxes taken in float64, as MMDet's xyxy2xywh: a box
    32.0000015 wide in float64 is 32.0 in float32, which would move it from
    'medium' to 'small'."""
    import json

    import torch
    from mmdet.evaluation.metrics import CocoMetric

    from m2f_mm.evaluation import FastCocoMetric
    x1, x2 = np.float32(0.7151893377304077), np.float32(32.71519088745117)
    assert float(x2 - x1) == 32.0 and float(x2) - float(x1) > 32.0
    gt = dict(images=[dict(id=1, width=200, height=200, file_name='a.jpg')],
              categories=[dict(id=1, name='a')],
              annotations=[dict(id=1, image_id=1, category_id=1, iscrowd=0, area=100.,
                                bbox=[100, 100, 10, 10])])
    (tmp_path / 'gt.json').write_text(json.dumps(gt))
    boxes = torch.tensor([[float(x1), 0, float(x2), 32], [100, 100, 110, 110]])
    sample = dict(img_id=1, ori_shape=(200, 200), pred_instances=dict(
        bboxes=boxes, scores=torch.tensor([0.9, 0.5]), labels=torch.tensor([0, 0])))
    results = []
    for cls in (CocoMetric, FastCocoMetric):
        metric = cls(ann_file=str(tmp_path / 'gt.json'), metric='bbox')
        metric.dataset_meta = dict(classes=('a',))
        metric.process({}, [sample])
        results.append(metric.evaluate(1))
    assert results[0]['coco/bbox_mAP_s'] == 1.0
    _assert_same(*results)


def test_all_twelve_mask_ap_stats_equal_pycocotools(coco_set, tmp_path):
    """Unrounded: hotcoco's 12 COCOeval stats against pycocotools'."""
    import copy

    import hotcoco
    from mmdet.evaluation.metrics import CocoMetric
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from m2f_mm.evaluation.fast_coco_metric import _detections
    metric = CocoMetric(ann_file=coco_set['instances_json'], metric='segm')
    metric.dataset_meta = dict(classes=coco_set['dataset_meta']['thing_classes'])
    for batch in coco_set['batches']:
        metric.process({}, batch)
    preds = [p for _, p in metric.results]
    cat_ids = metric._coco_api.get_cat_ids(cat_names=metric.dataset_meta['classes'])
    dets = _detections(preds, cat_ids, 'segm')
    stats = []
    for coco, cocoeval in ((COCO, COCOeval), (hotcoco.COCO, hotcoco.COCOeval)):
        gt = coco(coco_set['instances_json'])
        # pycocotools' loadRes adds a box to each dict, and a box makes the
        # area the box's: each library gets its own copy
        own = copy.deepcopy(dets)
        dt = gt.loadRes(own) if coco is COCO else gt.load_res(own)
        ev = cocoeval(gt, dt, 'segm')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        stats.append(np.asarray(ev.stats, np.float64))
    assert len(stats[1]) == 12
    np.testing.assert_allclose(stats[1], stats[0], rtol=0, atol=1e-9)
    assert stats[0][0] > 0


def test_configs_use_the_fast_metrics():
    from mmengine.config import Config
    for name, types in [
            ('quickstart/mask2former_r18-toyshapes_toy-panoptic.py',
             ['m2f_mm.FastCocoPanopticMetric', 'm2f_mm.FastCocoMetric']),
            ('_base_/datasets/coco_panoptic_lsj.py',
             ['m2f_mm.FastCocoPanopticMetric', 'm2f_mm.FastCocoMetric']),
            ('_base_/datasets/coco_instance_lsj.py', ['m2f_mm.FastCocoMetric']),
            ('quickstart/mask2former_r18_toy-panoptic-interleaved.py',
             ['m2f_mm.FastCocoPanopticMetric', 'm2f_mm.FastCocoMetric']),
            *[(f'_base_/datasets/{name}.py', ['m2f_mm.FastCocoPanopticMetric'])
              for name in ('cityscapes_panoptic', 'ade20k_panoptic', 'mapillary_panoptic')],
            *[(f'_base_/datasets/{name}.py', ['m2f_mm.FastCocoMetric'])
              for name in ('cityscapes_instance', 'ade20k_instance')]]:
        cfg = Config.fromfile(osp.join(REPO, 'configs', name))
        for evaluators in (cfg.val_evaluator, cfg.test_evaluator):
            evaluators = evaluators if isinstance(evaluators, list) else [evaluators]
            assert [e['type'] for e in evaluators][:len(types)] == types, name


def test_quickstart_evaluators_on_the_toy_set(tmp_path):
    """The quickstart config's test_evaluator (fast metrics) against the same
    entries with MMDet's types, on a small toy val set and predictions made
    from its ground truth (shifted, some classes swapped): the same keys and
    values."""
    import importlib.util
    import json

    import torch
    from mmdet.registry import METRICS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from PIL import Image

    import m2f_mm  # noqa: F401  (registers the metrics)
    from m2f_mm.datasets.toy import TOY_PANOPTIC_METAINFO
    spec = importlib.util.spec_from_file_location(
        'make_toy_dataset', osp.join(REPO, 'tools', 'make_toy_dataset.py'))
    mtd = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mtd)
    root = str(tmp_path / 'toy')
    mtd.make_toy_dataset(root, num_train=1, num_val=12, size=64, seed=3)
    with open(osp.join(root, 'annotations', 'panoptic_val.json')) as f:
        pan = json.load(f)
    cat2label = {c['id']: i for i, c in enumerate(pan['categories'])}
    rng = np.random.RandomState(0)
    batch = []
    for img, ann in zip(pan['images'], pan['annotations']):
        rgb = np.asarray(Image.open(osp.join(root, 'annotations', 'panoptic_val',
                                             ann['file_name'])), np.int64)
        ids = np.roll(rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2], 2, 1)
        pred = np.full(ids.shape, 6, np.int64)  # VOID
        masks, labels = [], []
        for s in ann['segments_info']:
            label = cat2label[s['category_id']]
            if label < 3 and rng.rand() < 0.3:
                label = rng.randint(3)
            pred[ids == s['id']] = label + s['id'] * 1000
            if label < 3:
                masks.append(torch.from_numpy(ids == s['id']))
                labels.append(label)
        masks = torch.stack(masks) if masks else torch.zeros((0,) + ids.shape, dtype=torch.bool)
        batch.append(dict(
            img_id=img['id'], img_path=osp.join(root, 'val', img['file_name']),
            ori_shape=ids.shape, pred_panoptic_seg=dict(sem_seg=torch.from_numpy(pred[None])),
            pred_instances=dict(masks=masks, labels=torch.tensor(labels, dtype=torch.long),
                                scores=torch.from_numpy(rng.rand(len(labels))),
                                bboxes=torch.zeros((len(labels), 4)))))
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'quickstart',
                                   'mask2former_r18-toyshapes_toy-panoptic.py'))
    init_default_scope('mmdet')
    mmdet_types = {'m2f_mm.FastCocoPanopticMetric': 'm2f_mm.CocoPanopticMetric',
                   'm2f_mm.FastCocoMetric': 'CocoMetric'}
    for entry in cfg.test_evaluator[:2]:
        entry = {k: v.replace(cfg.data_root, root + '/') if isinstance(v, str) else v
                 for k, v in entry.items()}
        meta = dict(TOY_PANOPTIC_METAINFO)
        if 'Panoptic' not in entry['type']:
            meta = dict(classes=meta['thing_classes'])
        ours = _run(METRICS.build(entry), meta, [batch])
        ref = _run(METRICS.build(dict(entry, type=mmdet_types[entry['type']])), meta, [batch])
        _assert_same(ref, ours)
        assert 'coco_panoptic/PQ_circle' in ours or 'coco/circle_precision' in ours
