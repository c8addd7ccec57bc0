"""TF32 as one switch: env_cfg.tf32 in a config, --tf32 on|off in the tools."""
import os
import sys

import pytest
import torch

from m2f_mm.utils.tf32 import apply_tf32, tf32_option

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tools'))
CONFIG = os.path.join(REPO, 'configs/quickstart/mask2former_r18_toy-panoptic.py')



def test_apply_tf32(restore_tf32):
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True
    assert apply_tf32(None) == ("TF32 (PyTorch's defaults): matmul False, "
                                'cuDNN convolutions True')
    assert apply_tf32(True) == 'TF32 (on): matmul True, cuDNN convolutions True'
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert apply_tf32(False) == 'TF32 (off): matmul False, cuDNN convolutions False'
    with pytest.raises(ValueError, match="env_cfg.tf32 must be True, False or None, got 'on'"):
        apply_tf32('on')
    assert [tf32_option(v) for v in (None, 'on', 'off')] == [None, True, False]


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_tools_put_the_switch_into_env_cfg(tool, tmp_path):
    module = __import__(tool)
    ckpt = tmp_path / 'x.pth'
    ckpt.write_bytes(b'')
    argv = [CONFIG] + ([str(ckpt)] if tool == 'test' else [])
    cfg = module.build_cfg(module.parse_args(argv))
    assert cfg.env_cfg.tf32 is None  # the configs' default: PyTorch's
    cfg = module.build_cfg(module.parse_args(argv + ['--tf32', 'off']))
    assert cfg.env_cfg.tf32 is False
    assert 'cudnn_benchmark' in cfg.env_cfg  # MMDet's env_cfg keys are kept
    cfg = module.build_cfg(module.parse_args(argv + ['--tf32', 'on']))
    assert cfg.env_cfg.tf32 is True
