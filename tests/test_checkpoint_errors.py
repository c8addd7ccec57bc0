"""A user's mistakes get one line (issue 24): every tool reads checkpoints
with m2f_mm.utils.checkpoint and its inputs with m2f_mm.utils.images; a
truncated, foreign, code-running or not-this-model's checkpoint, and an input
that is not an image, end the tool with one line naming the file, a non-zero
exit and no traceback (``--debug`` / ``M2F_MM_DEBUG=1`` keep it)."""
import os
import subprocess
import sys

import pytest
import torch

from child_env import child_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(REPO, 'configs/quickstart/mask2former_r18_toy-panoptic.py')
sys.path.insert(0, os.path.join(REPO, 'tools'))
TRACEBACK_HINT = '(traceback: --debug or M2F_MM_DEBUG=1)'
PARTIAL = '--cfg-options load_partial=True'


class _RunsCode:
    """Unpickling this would run ``touch marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def _quickstart_model(**head):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(QUICKSTART)
    cfg.model.panoptic_head.update(head)  # the fusion head follows the head
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    return MODELS.build(cfg.model), cfg


@pytest.fixture(scope='module')
def ckpts(tmp_path_factory):
    """The checkpoint files of each case, and where the code-running pickle
    would leave its mark."""
    from mmdet.models.backbones import ResNet
    d = tmp_path_factory.mktemp('ckpts')
    model, cfg = _quickstart_model()
    good = d / 'good.pth'
    torch.save({'state_dict': model.state_dict(),
                'meta': dict(dataset_meta=dict(cfg.metainfo))}, good)
    data = good.read_bytes()
    (d / 'truncated.pth').write_bytes(data[:len(data) // 2])
    (d / 'notes.pth').write_text('these are my notes, not weights\n')
    (d / 'empty.pth').write_bytes(b'')
    torch.save({'state_dict': ResNet(depth=18).state_dict()}, d / 'other.pth')
    torch.save({'state_dict': _RunsCode(d / 'pwned')}, d / 'evil.pth')
    torch.save([1, 2, 3], d / 'list.pth')
    wider, _ = _quickstart_model(num_stuff_classes=4)  # fine-tuning's source
    torch.save({'state_dict': wider.state_dict()}, d / 'seven_classes.pth')
    return d


def _exit_line(excinfo) -> str:
    """The message of a SystemExit raised with a string (Python prints it
    and exits with status 1)."""
    code = excinfo.value.code
    assert isinstance(code, str), f'exit code {code!r}, expected a message'
    assert '\n' not in code, code
    return code


# ----------------------------------------------------------- the loader itself
@pytest.mark.parametrize('name, line', [
    ('absent.pth', 'absent.pth: no such file'),
    ('empty.pth', 'empty.pth: empty file (0 bytes), not a checkpoint'),
    ('truncated.pth', 'truncated.pth: truncated or damaged checkpoint (PytorchStreamReader '
                      'failed reading zip archive: failed finding central directory)'),
    ('notes.pth', "notes.pth: not a PyTorch checkpoint (neither a zip archive nor a "
                  "pickle; it starts with b'these ar')"),
    ('evil.pth', 'evil.pth: refusing to load posix.system: a checkpoint holds tensors '
                 'and plain data, not code (nothing was run)'),
    ('list.pth', 'list.pth: holds a list, not a checkpoint'),
])
def test_read_checkpoint_names_the_file_in_one_line(ckpts, name, line):
    from m2f_mm.utils.checkpoint import read_checkpoint
    from m2f_mm.utils.errors import CheckpointError
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(str(ckpts / name))
    assert str(e.value).startswith(str(ckpts / line.split(':')[0]))
    assert line in str(e.value) and '\n' not in str(e.value)
    assert not (ckpts / 'pwned').exists(), 'the pickle ran code'


# ------------------------------------------------------- tools/test.py, train.py
@pytest.fixture(scope='module')
def toy_opts(tmp_path_factory):
    from make_toy_dataset import make_toy_dataset
    root = str(tmp_path_factory.mktemp('toy')) + '/'
    make_toy_dataset(root, num_train=4, num_val=2, size=64, seed=0)
    opts = [f'{split}_dataloader.{k}' for split in ('train', 'val', 'test')
            for k in (f'dataset.data_root={root}', 'num_workers=0',
                      'persistent_workers=False')]
    for split in ('val', 'test'):
        opts += [f'{split}_evaluator.0.ann_file={root}annotations/panoptic_val.json',
                 f'{split}_evaluator.0.seg_prefix={root}annotations/panoptic_val/',
                 f'{split}_evaluator.1.ann_file={root}annotations/instances_val.json']
    return opts


def _test_tool(ckpt, work, opts, *extra):
    import test as test_tool
    return test_tool.main([QUICKSTART, str(ckpt), '--work-dir', str(work),
                           '--cfg-options'] + opts + list(extra))


def _metrics_written(work) -> bool:
    return any(f.endswith('.json') for _, _, fs in os.walk(work) for f in fs)


def test_test_tool_refuses_another_models_checkpoint(ckpts, toy_opts, tmp_path):
    """No key of the checkpoint fits: one line with the count and the first
    missing / unexpected key, and no metrics of a random model."""
    with pytest.raises(SystemExit) as e:
        _test_tool(ckpts / 'other.pth', tmp_path, toy_opts)
    line = _exit_line(e)
    assert line.startswith(f'test.py: {ckpts / "other.pth"}: does not cover the model: '
                           'holds 0 of its ')
    assert ('weights (first missing: backbone.conv1.weight; first unexpected: '
            'conv1.weight)') in line
    assert PARTIAL in line and line.endswith(TRACEBACK_HINT)
    assert not _metrics_written(tmp_path)


@pytest.mark.parametrize('name, problem', [
    ('truncated.pth', 'truncated or damaged checkpoint'),
    ('notes.pth', 'not a PyTorch checkpoint'),
    ('evil.pth', 'refusing to load posix.system'),
])
def test_test_tool_unreadable_checkpoint_is_one_line(ckpts, toy_opts, tmp_path,
                                                     name, problem):
    with pytest.raises(SystemExit) as e:
        _test_tool(ckpts / name, tmp_path, toy_opts)
    assert _exit_line(e).startswith(f'test.py: {ckpts / name}: {problem}')
    assert not (ckpts / 'pwned').exists()
    assert not _metrics_written(tmp_path)


def test_partial_loading_on_purpose(ckpts, toy_opts, tmp_path):
    """A checkpoint with another class count (fine-tuning's case) is refused
    with the option named, and evaluated with it."""
    with pytest.raises(SystemExit) as e:
        _test_tool(ckpts / 'seven_classes.pth', tmp_path / 'a', toy_opts)
    line = _exit_line(e)
    assert ('first of another shape: panoptic_head.transformer_decoder.cls_embed.weight '
            '8x128 vs 7x128') in line and PARTIAL in line
    metrics = _test_tool(ckpts / 'seven_classes.pth', tmp_path / 'b', toy_opts,
                         'load_partial=True')
    assert 'coco_panoptic/PQ' in metrics


def test_train_load_from_checks_the_checkpoint(ckpts, toy_opts, tmp_path):
    import train as train_tool
    with pytest.raises(SystemExit) as e:
        train_tool.main([QUICKSTART, '--work-dir', str(tmp_path), '--cfg-options']
                        + toy_opts + [f'load_from={ckpts / "other.pth"}',
                                      'train_cfg.max_iters=1'])
    assert _exit_line(e).startswith(f'train.py: {ckpts / "other.pth"}: does not cover '
                                    'the model: holds 0 of its ')
    with pytest.raises(SystemExit) as e:
        train_tool.main([QUICKSTART, '--work-dir', str(tmp_path), '--resume',
                         str(ckpts / 'truncated.pth'), '--cfg-options'] + toy_opts)
    assert _exit_line(e).startswith(f'train.py: {ckpts / "truncated.pth"}: truncated')


def test_train_unreadable_pretrained_backbone_is_one_line(ckpts, tmp_path):
    """The backbone's ``init_cfg`` Pretrained file goes through the same
    reader before anything is built."""
    import train as train_tool
    with pytest.raises(SystemExit) as e:
        train_tool.main([os.path.join(
            REPO, 'configs/quickstart/mask2former_r18-toyshapes_toy-panoptic.py'),
            '--work-dir', str(tmp_path / 'w'), '--cfg-options',
            f'model.backbone.init_cfg.checkpoint={ckpts / "evil.pth"}'])
    assert _exit_line(e).startswith(
        f'train.py: {ckpts / "evil.pth"}: refusing to load posix.system')
    assert not (ckpts / 'pwned').exists() and not (tmp_path / 'w').exists()


def test_debug_keeps_the_traceback(ckpts, toy_opts, tmp_path):
    from m2f_mm.utils.errors import CheckpointError
    import test as test_tool
    with pytest.raises(CheckpointError, match='does not cover the model'):
        test_tool.main([QUICKSTART, str(ckpts / 'other.pth'), '--work-dir',
                        str(tmp_path), '--debug', '--cfg-options'] + toy_opts)


# ------------------------------------- export, analyze, convert: the same loader
def test_export_and_analyze_refuse_in_one_line(ckpts, tmp_path):
    import analyze_things
    import export_onnx
    with pytest.raises(SystemExit) as e:
        export_onnx.main([QUICKSTART, str(ckpts / 'other.pth'),
                          '--out', str(tmp_path / 'm.onnx')])
    line = _exit_line(e)
    assert line.startswith(f'export_onnx.py: {ckpts / "other.pth"}: does not cover')
    assert PARTIAL in line and not (tmp_path / 'm.onnx').exists()
    with pytest.raises(SystemExit) as e:
        analyze_things.main([QUICKSTART, str(ckpts / 'evil.pth')])
    assert _exit_line(e).startswith(
        f'analyze_things.py: {ckpts / "evil.pth"}: refusing to load posix.system')


def test_partial_model_from_config_keeps_what_fits(ckpts):
    """``load_partial=True``: the class layers keep their init, the rest is
    the checkpoint's."""
    from m2f_mm.deploy import build_model_from_config
    model, cfg = _quickstart_model()
    cfg.load_partial = True
    built, _ = build_model_from_config(cfg, str(ckpts / 'seven_classes.pth'))
    wider = torch.load(ckpts / 'seven_classes.pth', weights_only=True)['state_dict']
    own = built.state_dict()
    assert torch.equal(own['backbone.conv1.weight'], wider['backbone.conv1.weight'])
    key = 'panoptic_head.transformer_decoder.cls_embed.weight'
    assert own[key].shape[0] == 7 and wider[key].shape[0] == 8


def test_backbone_only_pretrained_init_still_loads(ckpts):
    """A backbone ``init_cfg`` with a prefix is partial by design and goes
    through mmengine's initialiser, not the check."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(QUICKSTART)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', prefix='backbone.',
                                       checkpoint=str(ckpts / 'good.pth'))
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    model.init_weights()
    good = torch.load(ckpts / 'good.pth', weights_only=True)['state_dict']
    assert torch.equal(model.backbone.conv1.weight, good['backbone.conv1.weight'])


def test_convert_truncated_is_one_line(ckpts, tmp_path):
    import convert_checkpoint
    with pytest.raises(SystemExit) as e:
        convert_checkpoint.main(['mmdet', str(ckpts / 'truncated.pth'),
                                 str(tmp_path / 'out.pth')])
    assert _exit_line(e) == (
        f'convert_checkpoint: {ckpts / "truncated.pth"}: truncated or damaged '
        'checkpoint (PytorchStreamReader failed reading zip archive: failed '
        'finding central directory)')


def test_convert_code_pickle_exits_1_without_traceback(ckpts, tmp_path):
    """As a process: status 1, one line on stderr, nothing ran; with
    M2F_MM_DEBUG=1 the traceback."""
    cmd = [sys.executable, os.path.join(REPO, 'tools/convert_checkpoint.py'), 'mmdet',
           str(ckpts / 'evil.pth'), str(tmp_path / 'out.pth')]
    proc = subprocess.run(cmd, env=child_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()
             and 'Warning' not in line and 'warn' not in line]
    assert lines[-1] == (f'convert_checkpoint: {ckpts / "evil.pth"}: refusing to load '
                         'posix.system: a checkpoint holds tensors and plain data, '
                         'not code (nothing was run)'), proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not (ckpts / 'pwned').exists() and not (tmp_path / 'out.pth').exists()
    proc = subprocess.run(cmd, env=child_env(M2F_MM_DEBUG='1'), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1 and 'Traceback' in proc.stderr
    assert not (ckpts / 'pwned').exists()


# -------------------------------------------------- demo.py / onnx_infer.py inputs
@pytest.fixture(scope='module')
def images(tmp_path_factory):
    import numpy as np
    from PIL import Image
    d = tmp_path_factory.mktemp('images')
    (d / 'empty').mkdir()
    mixed = d / 'mixed'
    mixed.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(mixed / 'a.png')
    (mixed / 'b.jpg').write_text('not an image')
    (mixed / 'readme.txt').write_text('ignored: no image extension')
    (d / 'empty' / 'notes.txt').write_text('no images here')
    return d


@pytest.mark.parametrize('tool', ['demo', 'onnx_infer'])
@pytest.mark.parametrize('inputs, line', [
    ('mixed/b.jpg', 'mixed/b.jpg: not an image (no decoder could read it)'),
    ('absent.jpg', 'absent.jpg: no such file or folder'),
    ('empty', 'empty: no images in this folder (looked for .jpg, '),
])
def test_unreadable_input_is_one_line(images, ckpts, tool, inputs, line):
    """Checked before any model is built (onnx_infer's model file is never
    read here)."""
    module = __import__(tool)
    model = ([QUICKSTART, str(ckpts / 'good.pth')] if tool == 'demo'
             else [str(ckpts / 'good.pth')])
    with pytest.raises(SystemExit) as e:
        module.main([str(images / inputs)] + model)
    assert _exit_line(e).startswith(f'{tool}.py: {images / line}')


def test_demo_processes_the_readable_images_of_a_folder(images, ckpts, tmp_path):
    """In a folder, the image that decodes is segmented, the one that does
    not is named in one line, and the status is 1."""
    cmd = [sys.executable, os.path.join(REPO, 'tools/demo.py'), str(images / 'mixed'),
           QUICKSTART, str(ckpts / 'good.pth'), '--out-dir', str(tmp_path)]
    proc = subprocess.run(cmd, env=child_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    bad = f'demo.py: {images / "mixed/b.jpg"}: not an image (no decoder could read it)'
    assert bad in proc.stderr.splitlines() and 'Traceback' not in proc.stderr
    assert (tmp_path / 'vis' / 'a.png').stat().st_size > 0
    assert 'wrote overlays of 1 image(s)' in proc.stdout


def test_demo_refuses_another_models_checkpoint(images, ckpts, tmp_path):
    import demo
    with pytest.raises(SystemExit) as e:
        demo.main([str(images / 'mixed/a.png'), QUICKSTART, str(ckpts / 'other.pth'),
                   '--out-dir', str(tmp_path)])
    line = _exit_line(e)
    assert line.startswith(f'demo.py: {ckpts / "other.pth"}: does not cover the model')
    assert PARTIAL in line and not (tmp_path / 'vis').exists()
