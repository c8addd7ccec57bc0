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
