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
