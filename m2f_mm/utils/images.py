"""The inputs of tools/demo.py and tools/onnx_infer.py: an image file or a
folder of images, each decoded once before any model is built, so that a
missing path, an empty folder or a file that is not an image is one line
(:class:`~m2f_mm.utils.errors.InputError`) instead of an ``AssertionError``
from inside MMDetection's / MMSegmentation's inferencer."""
import os
import sys
from typing import List, Optional, Tuple

from .errors import InputError

# what MMDetection's and MMSegmentation's inferencers pick from a folder
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                  '.tiff', '.webp')


def image_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be read as an image (None when it can): decoded
    with mmcv as the inferencers decode it."""
    import mmcv
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as e:
        return f'not readable ({e.strerror or type(e).__name__})'
    if not data:
        return 'empty file (0 bytes), not an image'
    try:
        img = mmcv.imfrombytes(data)
    except Exception as e:  # noqa: BLE001 - decoders raise many kinds
        return f'not an image ({str(e).splitlines()[0] if str(e) else type(e).__name__})'
    if img is None:
        return 'not an image (no decoder could read it)'
    return None


def list_images(inputs: str) -> Tuple[List[str], List[str]]:
    """The images of ``inputs`` and one line per file that is not one.

    Args:
        inputs: an image file, or a folder whose files with an image
            extension (:data:`IMG_EXTENSIONS`, any case) are read, in name
            order; its other files are ignored, as the inferencers do.

    Returns:
        tuple: (paths that decode, ``'<path>: <problem>'`` for the others).

    Raises:
        InputError: ``inputs`` does not exist, or is a folder without images.
    """
    if not os.path.exists(inputs):
        raise InputError(f'{inputs}: no such file or folder')
    if os.path.isdir(inputs):
        files = sorted(os.path.join(inputs, name) for name in os.listdir(inputs)
                       if name.lower().endswith(IMG_EXTENSIONS)
                       and os.path.isfile(os.path.join(inputs, name)))
        if not files:
            raise InputError(f'{inputs}: no images in this folder (looked for '
                             f'{", ".join(IMG_EXTENSIONS)})')
    else:
        files = [inputs]
    good, bad = [], []
    for path in files:
        problem = image_problem(path)
        if problem is None:
            good.append(path)
        else:
            bad.append(f'{path}: {problem}')
    return good, bad


def images_or_exit(inputs: str, tool: str) -> Tuple[List[str], bool]:
    """:func:`list_images` for a tool: prints each unreadable file as one
    line ``'<tool>: <path>: <problem>'`` on stderr and raises
    :class:`~m2f_mm.utils.errors.InputError` when nothing is left to run on.

    Returns:
        tuple: (the readable images, whether any input was not readable: the
        tool then exits with status 1 after processing the others).
    """
    good, bad = list_images(inputs)
    if not good and len(bad) == 1:
        raise InputError(bad[0])
    for line in bad:
        print(f'{tool}: {line}', file=sys.stderr)
    if not good:
        raise InputError(f'{inputs}: none of its {len(bad)} images could be read '
                         '(named above)')
    return good, bool(bad)
