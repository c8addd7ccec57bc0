"""The environment of the tests' child processes."""
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_env(**extra) -> dict:
    """``os.environ`` with this checkout first on ``PYTHONPATH`` (kept after
    it: an environment whose packages come from PYTHONPATH keeps them) and
    ``extra`` set."""
    path = os.pathsep.join(filter(None, [REPO, os.environ.get('PYTHONPATH')]))
    return dict(os.environ, PYTHONPATH=path, **extra)
