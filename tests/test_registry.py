"""Our registries are children of mmengine's roots: configs in the m2f_mm,
mmdet and mmseg scopes build our parts, and nested parts resolve."""
import pytest
from mmengine.registry import DefaultScope

import m2f_mm.registry as reg
from m2f_mm.registry import DATASETS, METRICS, MODELS, TASK_UTILS, TRANSFORMS

# one registered object per registry of ours, as (registry, config)
CASES = {
    'MODELS': (MODELS, dict(type='MSDeformAttnPixelDecoder',
                            in_channels=[8, 16, 32, 64], feat_channels=32,
                            out_channels=32, num_layers=1, num_heads=4,
                            ffn_dims=32, norm_cfg=dict(type='GN', num_groups=8))),
    'TASK_UTILS': (TASK_UTILS, dict(type='PointHungarianAssigner', cls_weight=1.0)),
    'TRANSFORMS': (TRANSFORMS, dict(type='BuildMaskTargets', num_things_classes=2,
                                    num_stuff_classes=1)),
    'DATASETS': (DATASETS, dict(type='CocoPanopticDataset', ann_file='none.json',
                                data_prefix=dict(img='img/', seg='seg/'),
                                lazy_init=True)),
    'METRICS': (METRICS, dict(type='SemSegIoUMetric')),
}


def _root_registry(name):
    import mmdet.registry  # noqa: F401  (scopes register themselves)
    import mmseg.registry  # noqa: F401
    import mmengine.registry as root
    return getattr(root, name)


@pytest.mark.parametrize('scope', ['m2f_mm', 'mmdet', 'mmseg'])
@pytest.mark.parametrize('name', sorted(CASES))
def test_build_in_every_scope(scope, name):
    registry, cfg = CASES[name]
    cfg = dict(cfg, type='m2f_mm.' + cfg['type'])
    with DefaultScope.overwrite_default_scope(scope):
        obj = _root_registry(name).build(cfg)
    assert type(obj).__name__ == cfg['type'].split('.')[1]
    assert type(obj).__module__.startswith('m2f_mm.')


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_nested_parts_resolve_in_foreign_scope(scope):
    """The head builds its pixel decoder and assigner from bare names of
    ours even when the caller's default scope is mmdet or mmseg."""
    import mmdet.registry  # noqa: F401
    import mmseg.registry  # noqa: F401
    from mmengine.registry import MODELS as ROOT
    head = dict(type='m2f_mm.Mask2FormerHead', in_channels=[8, 16, 32, 64],
                feat_channels=32, mask_channels=32, num_things_classes=2,
                num_stuff_classes=1, num_queries=4,
                pixel_decoder=dict(type='MSDeformAttnPixelDecoder', num_layers=1,
                                   num_heads=4, ffn_dims=32,
                                   norm_cfg=dict(type='GN', num_groups=8)),
                transformer_decoder=dict(num_layers=3, num_heads=4, ffn_dims=32),
                train_cfg=dict(assigner=dict(type='PointHungarianAssigner'),
                               num_points=16))
    with DefaultScope.overwrite_default_scope(scope):
        obj = ROOT.build(head)
    assert type(obj.pixel_decoder).__name__ == 'MSDeformAttnPixelDecoder'
    assert type(obj.criterion.assigner).__name__ == 'PointHungarianAssigner'
    assert obj.criterion.num_points == 16


def test_foreign_bare_names_still_resolve():
    """A bare name we do not register keeps resolving in the caller's scope."""
    import mmdet.registry  # noqa: F401
    with DefaultScope.overwrite_default_scope('mmdet'):
        obj = reg.build(dict(type='ResNet', depth=18), MODELS)
    assert type(obj).__module__.startswith('mmdet.')


def test_registries_are_children_of_mmengine_roots():
    import mmengine.registry as root
    for name in ('MODELS', 'TASK_UTILS', 'TRANSFORMS', 'DATASETS', 'METRICS',
                 'VISUALIZERS'):
        ours = getattr(reg, name)
        assert ours.scope == 'm2f_mm'
        assert ours.parent is getattr(root, name)
        assert getattr(root, name).children['m2f_mm'] is ours
