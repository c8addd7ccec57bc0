import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests' shared helpers

import m2f_mm  # noqa: E402,F401  (registers the m2f_mm scope)


@pytest.fixture(autouse=True, scope='session')
def _quiet_mmengine_logger():
    """mmengine prints every parameter's init at INFO; keep test logs short."""
    import logging
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    yield


@pytest.fixture(autouse=True)
def _fresh_visualizer():
    """mmengine keeps one visualizer per name per process and our configs
    name theirs 'visualizer': without this, a Runner built by a later test
    logs (scalars.json) into the work dir of an earlier test's Runner."""
    yield
    from mmengine.visualization import Visualizer
    classes = [Visualizer]
    while classes:
        cls = classes.pop()
        cls._instance_dict.pop('visualizer', None)
        classes += cls.__subclasses__()


@pytest.fixture
def restore_tf32():
    """Put PyTorch's TF32 flags back as they were after the test."""
    import torch
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
