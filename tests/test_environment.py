"""The pinned stack is installed and usable on torch 2.13 / numpy 2."""
import os

import numpy as np
import pytest
import torch


def test_versions():
    import mmcv
    import mmdet
    import mmengine
    import mmseg
    assert mmcv.__version__ == '2.1.0'
    assert mmdet.__version__ == '3.3.0'
    assert mmseg.__version__ == '1.2.2'
    assert mmengine.__version__.startswith('0.10.')


def test_mmcv_ops_are_compiled():
    """MultiScaleDeformableAttention runs on mmcv's compiled extension, not a
    pure-Python stand-in."""
    import mmcv.ops.multi_scale_deform_attn as msda
    from mmcv.ops import MultiScaleDeformableAttention  # noqa: F401
    ext = msda.ext_module
    assert ext.__file__.endswith('.so'), ext.__file__
    assert hasattr(ext, 'ms_deform_attn_forward')
    # and a compiled op actually runs on CPU
    from mmcv.ops import nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    assert keep.tolist() == [0, 2]


def _save_runner_checkpoint(work_dir):
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
                                           by_epoch=False)),
        default_scope='mmengine')
    runner.train()
    return os.path.join(work_dir, 'iter_2.pth')


def test_runner_checkpoint_loads_under_weights_only(tmp_path):
    """torch 2.13 loads with weights_only=True; mmengine 0.10.7's Runner
    checkpoints hold numpy values and HistoryBuffers. m2f_mm allow-lists
    exactly those, so mmengine's loader reads them back."""
    import m2f_mm  # noqa: F401
    from mmengine.runner import CheckpointLoader, load_checkpoint
    path = _save_runner_checkpoint(tmp_path)
    # plain torch.load refuses it: the problem is real
    with pytest.raises(Exception, match='[Ww]eights only load failed'):
        torch.load(path)
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert {'meta', 'state_dict', 'message_hub', 'optimizer'} <= set(ckpt)
    model = torch.nn.Linear(2, 1)
    load_checkpoint(model, path, map_location='cpu',
                    revise_keys=[(r'^fc\.', '')])
    assert torch.equal(model.weight, ckpt['state_dict']['fc.weight'])


class _Evil:
    def __reduce__(self):
        return (os.system, ('true',))


def test_untrusted_globals_still_refused(tmp_path):
    import m2f_mm  # noqa: F401
    from mmengine.runner import CheckpointLoader
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': _Evil()}, path)
    with pytest.raises(Exception, match='[Ww]eights only load failed'):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')


def test_panopticapi_on_numpy2():
    """panopticapi-lite is installed without its numpy<2 pin; its id
    encoding and MMDet's PQ code run on numpy 2."""
    assert int(np.__version__.split('.')[0]) >= 2
    from panopticapi.utils import id2rgb, rgb2id
    ids = np.array([[0, 1], [256, 65536 + 7]], dtype=np.int64)
    assert np.array_equal(rgb2id(id2rgb(ids)), ids)
    from mmdet.evaluation.metrics import CocoPanopticMetric  # noqa: F401


def test_mmengine_local_writes_are_atomic(tmp_path, monkeypatch):
    """Checkpoints and dumped results go through LocalBackend.put; a crash
    mid-write keeps the previous file whole and leaves no partial file."""
    import m2f_mm  # noqa: F401
    import mmengine
    from mmengine.runner.checkpoint import save_checkpoint
    path = tmp_path / 'ckpt.pth'
    save_checkpoint({'state_dict': {'w': torch.ones(3)}}, str(path))
    good = path.read_bytes()

    real_fdopen = os.fdopen

    class HalfWriter:
        """Writes a few bytes, then fails like a full disk."""
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:10])
            raise OSError('disk full')

    monkeypatch.setattr(os, 'fdopen', lambda *a, **k: HalfWriter(real_fdopen(*a, **k)))
    with pytest.raises(OSError, match='disk full'):
        save_checkpoint({'state_dict': {'w': torch.zeros(3)}}, str(path))
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ['ckpt.pth']
    mmengine.dump({'a': 1}, str(tmp_path / 'r.json'))
    assert mmengine.load(str(tmp_path / 'r.json')) == {'a': 1}
