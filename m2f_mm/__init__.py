"""m2f_mm: Mask2Former as an OpenMMLab component library."""
from .version import __version__, version_info
from . import registry  # noqa: F401
from . import patches  # noqa: F401,E402
from . import models  # noqa: F401,E402
from . import datasets  # noqa: F401,E402
from . import evaluation  # noqa: F401,E402
from . import engine  # noqa: F401,E402

# torch's checkpoint allow-list for MMDet's/MMSeg's own tools; nothing else is
# changed outside m2f_mm. M2F_MM_NO_PATCHES=1 skips it (README, patches.py).
patches.apply_on_import()

__all__ = ['__version__', 'version_info']
