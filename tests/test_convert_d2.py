"""The paper's detectron2 checkpoints in our model, checked against outputs
the original code wrote (``shared/fixtures/d2``, see its README): converted
tiny R-50 and Swin models reproduce all 10 prediction sets, every key of the
full-size COCO-panoptic layouts lands on our configs' weights with their
shapes, and a pickle that would run code is refused."""
import json
import os
import pickle
import sys

import numpy as np
import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.environ.get('M2F_MM_D2_FIXTURES',
                          os.path.join(os.path.dirname(REPO), 'shared', 'fixtures', 'd2'))
if not os.path.isdir(FIXTURES):
    FIXTURES = '/work/shared/fixtures/d2'
sys.path.insert(0, os.path.join(REPO, 'tools'))

from m2f_mm.converters import load_d2_pickle  # noqa: E402
from m2f_mm.converters.backbones import (merge_norm_to_unfold,  # noqa: E402
                                         merge_reduction_to_unfold, rebuild_relative_index)
from m2f_mm.converters.d2 import convert_d2_state_dict, d2_architecture  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.isdir(FIXTURES),
                                reason=f'd2 fixtures not found at {FIXTURES}')
# max abs differences measured here, printed at the end of the tiny tests
MEASURED = {}


def fixture(name):
    return os.path.join(FIXTURES, name)


def run_tool(*args):
    """tools/convert_checkpoint.py in-process: (exit message or None, stdout)."""
    from convert_checkpoint import main
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        return str(e.code), None
    return None, 'ok'


def build_from_config(path):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    import m2f_mm  # noqa: F401
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return cfg, MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """Both tiny checkpoints through the command line, once."""
    out = {}
    root = tmp_path_factory.mktemp('d2')
    for name in ('r50_tiny', 'swin_tiny'):
        dst, cfg = root / f'{name}.pth', root / f'{name}.py'
        err, _ = run_tool('d2', fixture(f'{name}.pkl'), dst, '--config-out', cfg,
                          '--dataset', 'coco-panoptic', '--num-things', '3')
        assert err is None, err
        out[name] = (dst, cfg)
    return out


@pytest.mark.parametrize('name', ['r50_tiny', 'swin_tiny'])
def test_tiny_checkpoint_reproduces_the_original(converted, name):
    """Converted weights, the written config, strict loading, the fixture's
    normalised input straight into backbone + head: every one of the 10
    prediction sets' class and mask logits within 1e-4."""
    from mmengine.runner import load_checkpoint
    dst, cfg_path = converted[name]
    cfg, model = build_from_config(cfg_path)
    load_checkpoint(model, str(dst), map_location='cpu', strict=True)
    model.eval()
    io = np.load(fixture('tiny_io.npz'))
    x = torch.from_numpy(io['input'])
    with torch.no_grad():
        cls, masks = model.panoptic_head(model.backbone(x), None)
    ref_cls, ref_masks = io[f'{name}_logits'], io[f'{name}_masks']
    assert len(cls) == len(masks) == ref_cls.shape[0] == 10
    worst = 0.0
    for s in range(10):
        assert cls[s].shape == ref_cls[s].shape and masks[s].shape == ref_masks[s].shape
        d_cls = (cls[s] - torch.from_numpy(ref_cls[s])).abs().max().item()
        d_mask = (masks[s] - torch.from_numpy(ref_masks[s])).abs().max().item()
        assert d_cls <= 1e-4 and d_mask <= 1e-4, (s, d_cls, d_mask)
        worst = max(worst, d_cls, d_mask)
    MEASURED[name] = worst
    print(f'\n{name}: max abs difference over 10 sets {worst:.2e}')


def test_written_config_states_the_architecture(converted):
    """The config says what the checkpoint is: classes and their split,
    queries, widths, window and pretrain size, input normalisation."""
    arch = json.load(open(fixture('tiny_arch.json')))
    cfg, model = build_from_config(converted['swin_tiny'][1])
    head, bb = cfg.model.panoptic_head, cfg.model.backbone
    assert (head.num_things_classes, head.num_stuff_classes) == (3, 2)
    # counts stated once, in the head; the fusion head follows it
    assert 'num_things_classes' not in cfg.model.panoptic_fusion_head
    assert model.panoptic_fusion_head.num_things_classes == 3
    assert head.num_queries == arch['queries'] and head.feat_channels == arch['hidden']
    assert head.transformer_decoder == dict(num_layers=9, num_heads=4, ffn_dims=64)
    assert head.pixel_decoder.num_heads == 4 and head.pixel_decoder.ffn_dims == 64
    sw = arch['swin']
    assert bb.type == 'SwinTransformer' and bb.embed_dims == sw['embed']
    assert list(bb.depths) == sw['depths'] and list(bb.num_heads) == sw['heads']
    assert bb.window_size == sw['window'] and bb.pretrain_img_size == sw['pretrain']
    assert bb.init_cfg is None
    assert list(cfg.model.data_preprocessor.mean) == arch['pixel_mean']
    assert list(cfg.model.data_preprocessor.std) == arch['pixel_std']
    assert cfg.model.data_preprocessor.bgr_to_rgb  # images load as BGR; weights want RGB
    assert head.no_object_weight == pytest.approx(0.1)
    names = cfg.test_dataloader.dataset.metainfo
    assert len(names['thing_classes']) == 3 and len(names['stuff_classes']) == 2
    r50, _ = build_from_config(converted['r50_tiny'][1])
    bb = r50.model.backbone
    assert (bb.type, bb.depth, bb.stem_channels, bb.base_channels, bb.style) == \
        ('ResNet', 50, arch['r50']['stem'], arch['r50']['bottleneck'], 'pytorch')


def _meta_state(keys_json):
    shapes = json.load(open(fixture(keys_json)))
    return {k: torch.empty(v, device='meta',
                           dtype=torch.long if k.endswith('relative_position_index')
                           else torch.float32)
            for k, v in shapes.items()}


@pytest.mark.parametrize('keys_json,config,num_queries', [
    ('keys_r50_coco_panoptic.json', 'mask2former_r50_coco-panoptic.py', 100),
    ('keys_swinl_coco_panoptic.json', 'mask2former_swin-l_coco-panoptic.py', 200),
])
def test_full_size_layout_fits_our_config(keys_json, config, num_queries):
    """Every key of the official full-size checkpoint is converted, and the
    result has exactly the keys and shapes of our config's model (built
    with random init, backbone init_cfg=None)."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    from m2f_mm.converters.arch import build_config, model_state_shapes
    from m2f_mm.converters.common import check_against
    state = _meta_state(keys_json)
    out = convert_d2_state_dict(state, keys_json)
    cfg = Config.fromfile(os.path.join(REPO, 'configs', config))
    cfg.model.backbone.init_cfg = None
    init_default_scope('mmdet')
    ours = MODELS.build(cfg.model).state_dict()
    check_against(out, {k: v.shape for k, v in ours.items()}, keys_json)
    assert len(out) == len(ours)
    n_source = len(state) - 1  # criterion.empty_weight goes into the config
    print(f'\n{keys_json}: {len(state)} keys in, {n_source} converted '
          f'({len(out)} ours with the BN counters)')
    # the architecture read from the weights writes a config of the same model
    arch = d2_architecture(state, keys_json)
    assert arch.num_queries == num_queries and arch.num_classes == 133
    written = build_config(arch, 'coco-panoptic')
    assert model_state_shapes(written) == {k: tuple(v.shape) for k, v in ours.items()}


def test_swin_relative_index_is_rebuilt_equal():
    raw = load_d2_pickle(fixture('swin_tiny.pkl'))['model']
    key = 'backbone.layers.0.blocks.0.attn.relative_position_index'
    assert torch.equal(rebuild_relative_index(torch.from_numpy(raw[key])),
                       torch.from_numpy(raw[key]))


def test_patch_merging_order_matches_mmdet_swin_converter():
    """Our permutation of PatchMerging's channels equals the one in MMDet's
    converter of the original Swin weights."""
    from mmdet.models.backbones.swin import swin_converter
    g = torch.Generator().manual_seed(0)
    reduction = torch.randn(8, 16, generator=g)
    norm = torch.randn(16, generator=g)
    ref = swin_converter({'layers.0.downsample.reduction.weight': reduction,
                          'layers.0.downsample.norm.weight': norm})
    assert torch.equal(merge_reduction_to_unfold(reduction),
                       ref['backbone.stages.0.downsample.reduction.weight'])
    assert torch.equal(merge_norm_to_unfold(norm), ref['backbone.stages.0.downsample.norm.weight'])


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


class _Evaluates:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f'open({self.marker!r}, "w").close()',))


@pytest.mark.parametrize('payload', [_RunsCode, _Evaluates])
def test_pickle_that_would_run_code_is_refused(tmp_path, payload):
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'model_final.pkl'
    with open(evil, 'wb') as f:
        pickle.dump({'model': {'backbone.stem.conv1.weight': payload(marker)}}, f)
    err, _ = run_tool('d2', evil, tmp_path / 'out.pth')
    assert err is not None and '\n' not in err, err
    assert err.startswith('convert_checkpoint: ') and 'refusing to load' in err
    assert ('system' in err) or ('eval' in err)
    assert not marker.exists(), 'the pickle ran code'
    assert not (tmp_path / 'out.pth').exists()


def test_pickle_of_plain_data_and_arrays_loads(tmp_path):
    path = tmp_path / 'ok.pkl'
    data = {'model': {'w': np.arange(6, dtype=np.float32).reshape(2, 3),
                      'i': np.arange(3)}, '__author__': 'x', 'n': 3, 'l': [1.5, (2, 'a')]}
    for protocol in (2, 4):
        with open(path, 'wb') as f:
            pickle.dump(data, f, protocol=protocol)
        got = load_d2_pickle(str(path))
        assert np.array_equal(got['model']['w'], data['model']['w'])
        assert got['l'] == [1.5, (2, 'a')]


def _tiny_state():
    raw = load_d2_pickle(fixture('r50_tiny.pkl'))['model']
    return {k: torch.from_numpy(v) for k, v in raw.items()}


def _save_pkl(state, path):
    with open(path, 'wb') as f:
        pickle.dump({'model': {k: v.numpy() for k, v in state.items()}}, f)


def test_leftover_key_is_named_in_one_line(tmp_path):
    state = _tiny_state()
    state['sem_seg_head.predictor.unexpected_proj.weight'] = torch.zeros(2, 2)
    _save_pkl(state, tmp_path / 'x.pkl')
    err, _ = run_tool('d2', tmp_path / 'x.pkl', tmp_path / 'out.pth',
                      '--dataset', 'coco-panoptic', '--num-things', '3')
    assert err is not None and '\n' not in err
    assert '1 key(s) left unconverted: sem_seg_head.predictor.unexpected_proj.weight' in err
    assert not (tmp_path / 'out.pth').exists()


def test_shape_mismatch_is_named_in_one_line(tmp_path):
    state = _tiny_state()
    # 11 query embeddings for 10 queries
    state['sem_seg_head.predictor.query_embed.weight'] = torch.zeros(11, 32)
    _save_pkl(state, tmp_path / 'x.pkl')
    err, _ = run_tool('d2', tmp_path / 'x.pkl', tmp_path / 'out.pth',
                      '--dataset', 'coco-panoptic', '--num-things', '3')
    assert err is not None and '\n' not in err
    assert ('shape mismatch(es): panoptic_head.transformer_decoder.query_embed.weight '
            '[11, 32] vs ours [10, 32]') in err
    assert not (tmp_path / 'out.pth').exists()


def test_unknown_class_count_needs_a_dataset(tmp_path):
    err, _ = run_tool('d2', fixture('r50_tiny.pkl'), tmp_path / 'out.pth')
    assert err is not None and '\n' not in err and '--dataset' in err


def test_metafile_maps_each_checkpoint_to_a_config_of_its_architecture():
    """configs/metafile.yml: every official checkpoint points at a config
    that exists and builds the checkpoint's backbone, query count (read
    from the checkpoint's name: R50/R101, swin tiny/small/base/large, 200
    queries for Swin-L except the semantic ones) and classes (the dataset's,
    from the config's name), and its command names the dataset where the
    class count does not."""
    import yaml
    from mmengine.config import Config
    from m2f_mm.converters.arch import _BY_CLASSES, DATASETS
    meta = yaml.safe_load(open(os.path.join(REPO, 'configs', 'metafile.yml')))
    assert len(meta['Models']) >= 47
    swin = dict(tiny=(96, 7), small=(96, 7), base=(128, 12), large=(192, 12))
    seen = {}
    for m in meta['Models']:
        url = m['Weights']
        assert url.startswith('https://dl.fbaipublicfiles.com/maskformer/mask2former/')
        assert url.endswith('.pkl') and m['Converted From']['Weights'] == url
        path = os.path.join(REPO, m['Config'])
        cfg = seen.get(path) or Config.fromfile(path)
        seen[path] = cfg
        head = cfg.model.get('panoptic_head') or cfg.model.decode_head
        bb = cfg.model.backbone
        name = url.split('/')[-2]
        if '_R50_' in name or '_R101_' in name:
            assert bb.type == 'ResNet' and bb.depth == (50 if '_R50_' in name else 101), name
        else:
            size = name.split('_')[2]
            assert (bb.embed_dims, bb.window_size) == swin[size], name
        semantic = '/semantic/' in url
        large = 'swin_large' in name and (not semantic or '/coco/' in url)
        assert head.num_queries == (200 if large else 100), url
        dataset = m['Config'].split('_')[-1][:-3].replace('-640', '')
        spec = DATASETS[dataset]
        if spec['task'] == 'semantic':
            assert head.num_classes == spec['classes'], url
        else:
            assert (head.num_things_classes, head.num_stuff_classes) == (
                spec['things'], spec['classes'] - spec['things']), url
        command = m['Converted From']['Command']
        if _BY_CLASSES[spec['classes']] != dataset:
            assert f'--dataset {dataset}' in command, url


def test_detectron2_pth_reads_like_the_pkl(tmp_path):
    """A checkpoint saved by detectron2's trainer (torch tensors under
    'model', plus trainer state) converts to the same weights as the pkl."""
    state = _tiny_state()
    torch.save({'model': state, 'iteration': 10, 'optimizer': {}},
               tmp_path / 'model_final.pth')
    for name, src in (('pkl', fixture('r50_tiny.pkl')), ('pth', tmp_path / 'model_final.pth')):
        err, _ = run_tool('d2', src, tmp_path / f'{name}.pth', '--dataset', 'coco-panoptic',
                          '--num-things', '3')
        assert err is None, err
    a = torch.load(tmp_path / 'pkl.pth', weights_only=True)['state_dict']
    b = torch.load(tmp_path / 'pth.pth', weights_only=True)['state_dict']
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
