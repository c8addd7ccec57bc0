"""Files written whole or not at all."""
import os
import uuid
from typing import Callable


def atomic_write(filepath, write: Callable, mode: str = 'wb',
                 encoding=None) -> None:
    """Call ``write(f)`` on a new file next to ``filepath`` and rename it over
    ``filepath`` once written and synced: on any error the old file (or none)
    remains, and no partial file."""
    filepath = os.fspath(filepath)
    directory = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f'.{os.path.basename(filepath)}.'
                                  f'{uuid.uuid4().hex[:8]}.part')
    try:
        with open(tmp, mode.replace('w', 'x'), encoding=encoding) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
