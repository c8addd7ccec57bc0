"""m2f_mm/patches.py: what ``import m2f_mm`` changes in other libraries (only
torch's checkpoint allow-list, and nothing with M2F_MM_NO_PATCHES=1), and that
each fix does what it claims."""
import glob
import json
import os
import pickle
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from child_env import child_env
from m2f_mm import patches

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Imports the libraries first, records every attribute of the classes and
# modules a fix to them could touch (and the contents of dict attributes, e.g.
# mmengine's file backend registry) and torch's allow-list, imports m2f_mm, and
# prints what differs. With a checkpoint path, also loads it before and after.
SNAPSHOT_SCRIPT = textwrap.dedent('''
    import json, sys
    import torch
    import mmengine.dist.utils, mmengine.fileio.io, mmengine.runner.checkpoint
    import mmengine.fileio.backends.registry_utils as backend_registry
    from mmengine.evaluator import DumpResults
    from mmengine.fileio.backends import LocalBackend
    from mmengine.hooks import CheckpointHook
    from mmengine.logging import HistoryBuffer
    from mmengine.model import MMDistributedDataParallel
    from mmengine.runner import CheckpointLoader, Runner
    from mmengine.visualization import Visualizer
    import mmdet.apis, mmdet.models, mmdet.evaluation
    from mmdet.visualization import DetLocalVisualizer
    import mmseg.apis, mmseg.models, mmseg.evaluation
    from mmseg.visualization import SegLocalVisualizer

    TARGETS = dict(
        CheckpointLoader=CheckpointLoader, LocalBackend=LocalBackend,
        CheckpointHook=CheckpointHook, Runner=Runner, DumpResults=DumpResults,
        HistoryBuffer=HistoryBuffer, DDP=MMDistributedDataParallel,
        Visualizer=Visualizer, DetLocalVisualizer=DetLocalVisualizer,
        SegLocalVisualizer=SegLocalVisualizer,
        dist_utils=mmengine.dist.utils, fileio_io=mmengine.fileio.io,
        runner_checkpoint=mmengine.runner.checkpoint,
        backend_registry=backend_registry, serialization=torch.serialization)

    def snapshot():
        snap = {}
        for name, obj in TARGETS.items():
            for key, value in vars(obj).items():
                snap[f'{name}.{key}'] = value
                if isinstance(value, dict):
                    for k, v in list(value.items()):
                        snap[f'{name}.{key}[{k!r}]'] = v
        return snap

    def describe(g):  # an allow-list entry, by name
        f, name = g if isinstance(g, tuple) else (g, None)
        return f'{f.__module__}.{f.__qualname__}' + (f' as {name}' if name else '')

    def load(path):
        try:
            CheckpointLoader.load_checkpoint(path, map_location='cpu')
            return 'loads'
        except Exception as e:
            return type(e).__name__ + ': ' + str(e).splitlines()[0]

    def allowed():
        return set(map(describe, torch.serialization.get_safe_globals()))

    path = sys.argv[1] if len(sys.argv) > 1 else None
    before, safe_before = snapshot(), allowed()
    loads_before = load(path) if path else None
    import m2f_mm
    after, safe_after = snapshot(), allowed()
    missing = object()
    changed = sorted(k for k in set(before) | set(after)
                     if before.get(k, missing) is not after.get(k, missing))
    result = dict(checked=len(before), changed=changed,
                  safe_globals_added=sorted(safe_after - safe_before),
                  loads_before=loads_before, loads_after=load(path) if path else None)
    from m2f_mm.patches import allow_runner_checkpoint_globals
    allow_runner_checkpoint_globals()  # what our tools do
    result['loads_in_our_tools'] = load(path) if path else None
    print('RESULT ' + json.dumps(result))
''')


def _snapshot_import(no_patches: bool, checkpoint=None) -> dict:
    env = child_env()
    env.pop(patches.NO_PATCHES_ENV, None)
    if no_patches:
        env[patches.NO_PATCHES_ENV] = '1'
    cmd = [sys.executable, '-c', SNAPSHOT_SCRIPT] + ([checkpoint] if checkpoint else [])
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT ')][-1]
    return json.loads(line[len('RESULT '):])


def _save_runner_checkpoint(work_dir, backend_args=None):
    """A checkpoint as mmengine's Runner writes it: numpy values and
    HistoryBuffers besides the tensors."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Tiny(BaseModel):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 1)

        def forward(self, inputs, labels=None, mode='loss'):
            out = self.fc(torch.stack(inputs)).squeeze(1)
            return dict(loss=(out - torch.stack(labels)).pow(2).mean())

    class Data(torch.utils.data.Dataset):
        metainfo = dict(classes=('a', 'b'))

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return dict(inputs=torch.ones(2) * i, labels=torch.tensor(1.0))

    runner = Runner(
        model=Tiny(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=Data(), batch_size=2,
                              sampler=dict(type='DefaultSampler', shuffle=False)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2,
                                           by_epoch=False, backend_args=backend_args)),
        default_scope='mmengine')
    runner.train()
    return os.path.join(work_dir, 'iter_2.pth')


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory):
    """Saved by a Runner whose CheckpointHook selects our atomic backend; the
    files it wrote through that backend are recorded."""
    written = []
    put = patches.AtomicLocalBackend.put

    def spy(self, obj, filepath):
        written.append(os.path.basename(filepath))
        return put(self, obj, filepath)

    patches.AtomicLocalBackend.put = spy
    try:
        path = _save_runner_checkpoint(tmp_path_factory.mktemp('runner'),
                                       patches.ATOMIC_BACKEND_ARGS)
    finally:
        patches.AtomicLocalBackend.put = put
    return path, written


@pytest.mark.parametrize('no_patches', [True, False])
def test_import_changes_nothing_but_the_allow_list(no_patches, runner_checkpoint):
    """In a fresh process: ``import m2f_mm`` replaces no attribute of
    mmengine's/MMDet's/MMSeg's classes and modules (it only adds our own file
    backend name to mmengine's registry). With M2F_MM_NO_PATCHES=1 torch's
    allow-list stays as it was too, so a Runner checkpoint does not load until
    a tool of ours allows it; without, import allows it."""
    result = _snapshot_import(no_patches, runner_checkpoint[0])
    assert result['checked'] > 500
    assert result['changed'] == [  # one dict, seen from two modules
        "backend_registry.backends['m2f_mm_atomic_local']",
        "fileio_io.backends['m2f_mm_atomic_local']"]
    assert result['loads_in_our_tools'] == 'loads'
    if no_patches:
        assert result['safe_globals_added'] == []
        assert 'Weights only load failed' in result['loads_before']
        assert result['loads_after'] != 'loads'
    else:
        expected = patches.runner_checkpoint_globals()
        assert len(result['safe_globals_added']) == len(expected)
        assert ('m2f_mm.patches._history_buffer_method as builtins.getattr'
                in result['safe_globals_added'])
        assert result['loads_after'] == 'loads'


def test_disabled_by_environment(monkeypatch):
    for value, disabled in (('1', True), ('yes', True), ('0', False), ('', False)):
        monkeypatch.setenv(patches.NO_PATCHES_ENV, value)
        assert patches.patches_disabled() is disabled
    monkeypatch.delenv(patches.NO_PATCHES_ENV)
    assert not patches.patches_disabled()


def test_runner_checkpoint_loads_and_was_written_atomically(runner_checkpoint):
    """torch 2.13 loads with weights_only=True; mmengine 0.10.7's Runner
    checkpoints hold numpy values and HistoryBuffers. With those allow-listed
    mmengine's loader reads them back. CheckpointHook's ``backend_args`` put
    the checkpoint through our atomic backend."""
    from mmengine.runner import CheckpointLoader, load_checkpoint
    path, written = runner_checkpoint
    assert written == ['iter_2.pth']
    patches.allow_runner_checkpoint_globals()
    patches.allow_runner_checkpoint_globals()  # idempotent
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert {'meta', 'state_dict', 'message_hub', 'optimizer'} <= set(ckpt)
    model = torch.nn.Linear(2, 1)
    load_checkpoint(model, path, map_location='cpu', revise_keys=[(r'^fc\.', '')])
    assert torch.equal(model.weight, ckpt['state_dict']['fc.weight'])
    with open(os.path.join(os.path.dirname(path), 'last_checkpoint')) as f:
        assert f.read() == path
    assert not glob.glob(os.path.join(os.path.dirname(path), '.*.part'))


class _Evil:
    def __reduce__(self):
        return (os.system, ('true',))


class _SneakyGetattr:
    """getattr is allowed only for HistoryBuffer's statistics methods."""
    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return (getattr, (HistoryBuffer, '__init__'))


@pytest.mark.parametrize('payload', [_Evil, _SneakyGetattr])
def test_untrusted_globals_still_refused(payload, tmp_path):
    from mmengine.runner import CheckpointLoader
    patches.allow_runner_checkpoint_globals()
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': payload()}, path)
    with pytest.raises(Exception, match='[Ww]eights only load failed'):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    with pytest.raises(Exception, match='[Ww]eights only load failed'):
        torch.load(path)


def _full_disk(fd):
    """Stands in for os.fsync: the data was written, then the disk is full."""
    assert os.fstat(fd).st_size > 0
    raise OSError('disk full')


def test_atomic_backend_keeps_the_old_file_on_a_failed_write(tmp_path, monkeypatch):
    """A save that fails after writing part of the data (a full disk) leaves
    the previous checkpoint whole and no partial file."""
    import mmengine
    from mmengine.runner.checkpoint import save_checkpoint
    path = tmp_path / 'ckpt.pth'
    save_checkpoint({'state_dict': {'w': torch.ones(3)}}, str(path),
                    backend_args=patches.ATOMIC_BACKEND_ARGS)
    good = path.read_bytes()

    monkeypatch.setattr(os, 'fsync', _full_disk)
    with pytest.raises(OSError, match='disk full'):
        save_checkpoint({'state_dict': {'w': torch.zeros(3)}}, str(path),
                        backend_args=patches.ATOMIC_BACKEND_ARGS)
    with pytest.raises(OSError, match='disk full'):  # text files too
        mmengine.dump({'a': 1}, str(tmp_path / 'r.json'),
                      backend_args=patches.ATOMIC_BACKEND_ARGS)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ['ckpt.pth']
    mmengine.dump({'a': 1}, str(tmp_path / 'sub' / 'r.json'),
                  backend_args=patches.ATOMIC_BACKEND_ARGS)
    assert mmengine.load(str(tmp_path / 'sub' / 'r.json')) == {'a': 1}
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_dump_results(tmp_path, monkeypatch):
    """tools/test.py --out: results are dumped whole or not at all."""
    from m2f_mm.registry import METRICS
    out = tmp_path / 'preds.pkl'
    metric = METRICS.build(dict(type='m2f_mm.AtomicDumpResults', out_file_path=str(out)))
    results = [dict(a=np.arange(3)), dict(b=torch.ones(2))]
    assert metric.compute_metrics(results) == {}
    loaded = pickle.loads(out.read_bytes())
    assert np.array_equal(loaded[0]['a'], np.arange(3))
    monkeypatch.setattr(os, 'fsync', _full_disk)
    failing = METRICS.build(dict(type='m2f_mm.AtomicDumpResults',
                                 out_file_path=str(tmp_path / 'x.pkl')))
    with pytest.raises(OSError, match='disk full'):
        failing.compute_metrics(results)
    assert sorted(os.listdir(tmp_path)) == ['preds.pkl']


def _configs():
    return sorted(glob.glob(os.path.join(REPO, 'configs', '*.py')) +
                  glob.glob(os.path.join(REPO, 'configs', 'quickstart', '*.py')))


@pytest.mark.parametrize('config', _configs(), ids=os.path.basename)
def test_configs_select_the_fixes(config):
    """Every config writes checkpoints through the atomic backend, and the
    MMDet-hosted ones draw with our visualizer, also under MMDet's/MMSeg's
    own tools (they import m2f_mm through custom_imports)."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    assert 'm2f_mm' in cfg.custom_imports.imports
    assert cfg.default_hooks.checkpoint.backend_args == patches.ATOMIC_BACKEND_ARGS
    if cfg.default_scope == 'mmdet':
        assert cfg.visualizer.type == 'm2f_mm.DetLocalVisualizer'


def test_empty_panoptic_prediction_draws():
    """MMDet 3.3's visualizer fails on a panoptic prediction without segments
    (all VOID); ours, built from a config in MMDet's scope, draws the image."""
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer as MMDetVisualizer
    from mmengine.registry import VISUALIZERS, DefaultScope
    from mmengine.structures import PixelData
    image = np.full((16, 20, 3), 7, np.uint8)
    sample = DetDataSample()
    sample.pred_panoptic_seg = PixelData(sem_seg=torch.full((1, 16, 20), 3))  # VOID
    meta = dict(classes=('a', 'b', 'c'), palette=[(255, 0, 0), (0, 255, 0), (0, 0, 255)])

    mmdet_vis = MMDetVisualizer(name='test_patches_mmdet')
    mmdet_vis.dataset_meta = meta
    with pytest.raises(ValueError):  # the upstream problem is real
        mmdet_vis.add_datasample('x', image, sample, draw_gt=False)

    with DefaultScope.overwrite_default_scope('mmdet'):
        ours = VISUALIZERS.build(dict(type='m2f_mm.DetLocalVisualizer',
                                      name='test_patches_ours'))
    assert isinstance(ours, patches.DetLocalVisualizer)
    ours.dataset_meta = meta
    ours.add_datasample('x', image, sample, draw_gt=False)
    assert np.array_equal(ours.get_image(), image)
    # a prediction with a segment is still drawn by MMDet's code
    sample.pred_panoptic_seg = PixelData(sem_seg=torch.cat(
        [torch.full((1, 16, 10), 3), torch.full((1, 16, 10), 1)], dim=2))
    ours.add_datasample('x', image, sample, draw_gt=False)
    assert not np.array_equal(ours.get_image(), image)


CPU_DIST_SCRIPT = textwrap.dedent('''
    import torch
    from mmengine.config import Config
    from m2f_mm.patches import setup_cpu_distributed
    cfg = Config(dict(launcher='pytorch',
                      env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=60))))
    setup_cpu_distributed(cfg)
    assert torch.distributed.get_backend() == 'gloo'
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel',
                                         device_ids=None)
    setup_cpu_distributed(cfg)  # a second call changes nothing
    torch.distributed.destroy_process_group()
    print('OK')
''')


@pytest.mark.skipif(torch.cuda.is_available(), reason='the fix is for CPU-only torch')
def test_cpu_distributed_uses_gloo():
    """mmengine's launcher calls torch.cuda.set_device; our tools start the
    process group first, with gloo for the configs' nccl. (Two processes
    training: tests/test_tools.py.)"""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = child_env(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1',
                    MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    proc = subprocess.run([sys.executable, '-c', CPU_DIST_SCRIPT], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and 'OK' in proc.stdout, proc.stderr[-3000:]


def test_setup_cpu_distributed_leaves_non_distributed_configs_alone():
    from mmengine.config import Config
    cfg = Config(dict(launcher='none'))
    patches.setup_cpu_distributed(cfg)
    assert 'model_wrapper_cfg' not in cfg
    assert not torch.distributed.is_initialized()
