"""m2f_mm: Mask2Former as an OpenMMLab component library."""
from .version import __version__, version_info
from .utils import compat  # noqa: F401  (torch 2.13 / mmengine fixes first)
from . import registry  # noqa: F401
from . import models  # noqa: F401,E402
from . import datasets  # noqa: F401,E402
from . import evaluation  # noqa: F401,E402
from . import engine  # noqa: F401,E402

__all__ = ['__version__', 'version_info']
