from .assigners import *  # noqa: F401,F403
from .decoders import *  # noqa: F401,F403
from .detectors import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .pixel_decoders import *  # noqa: F401,F403
