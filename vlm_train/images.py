"""The check that an image file decodes, run on every record before a model loads (trainer and evaluation
runner), so a corrupt or truncated file stops a job with one line naming the record instead of crashing it
mid-epoch. Imports PIL (and our error type) only."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from blender_scenes.errors import InputError


def image_problem(path: Path) -> str | None:
    """Why `path` does not decode as an image, or None when it does. A full decode (`load`), not `verify()`:
    verify reads only a PNG's chunk checksums and a JPEG's headers, so a truncated JPEG would pass it."""
    try:
        with Image.open(path) as image:
            image.load()
    # PIL reports malformed files as OSError (UnidentifiedImageError included), SyntaxError or ValueError
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return None


def check_image(image: Path, where: str) -> None:
    """One InputError `WHERE: field 'image': ...` when a record's image is missing or does not decode."""
    if not image.is_file():
        raise InputError(f"{where}: field 'image': {image} not found (expected an image file, relative to the "
                         f"dataset root or absolute)")
    problem = image_problem(image)
    if problem:
        raise InputError(f"{where}: field 'image': {image} does not decode as an image ({problem})")
