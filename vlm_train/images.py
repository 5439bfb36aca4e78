"""The check that an image file is within the pixel limit (`blender_scenes/images.py`, from its header) and
decodes, run on every record before a model loads (trainer and evaluation runner), so a corrupt, truncated or
huge file stops a job with one line naming the record instead of crashing it mid-epoch or filling the memory.
Imports PIL (and our error type and pixel limit) only."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from blender_scenes.errors import InputError
from blender_scenes.images import DEFAULT_MAX_IMAGE_PIXELS, allow_decoding, header_size, pixel_problem


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


def check_image(image: Path, where: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> None:
    """One InputError `WHERE: field 'image': ...` when a record's image is missing, has more than `max_pixels`
    pixels (read from the header, before anything is decoded), or does not decode."""
    if not image.is_file():
        raise InputError(f"{where}: field 'image': {image} not found (expected an image file, relative to the "
                         f"dataset root or absolute)")
    size = header_size(image)
    problem = pixel_problem(size, max_pixels) if size else None
    if problem:
        raise InputError(f"{where}: field 'image': {image} {problem}")
    allow_decoding(max_pixels)
    problem = image_problem(image)
    if problem:
        raise InputError(f"{where}: field 'image': {image} does not decode as an image ({problem})")
