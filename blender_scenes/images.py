"""The pixel limit of an input image, read from its header without decoding it: the trainer and the evaluation
runner (through `vlm_train/images.py`) and the audit of question files refuse an image over the limit before it
costs gigabytes of memory. The bottom floor: imports PIL only (inside the functions, so importing this is cheap).

Why 50 megapixels by default: VLM processors shrink every image to a few megapixels at most (Qwen2.5-VL's
`max_pixels` is 12.8 MP; LLaVA-OneVision and Idefics3 tile to about 2 MP), and the largest photos of common
benchmarks are 8K frames (7680 x 4320, 33 MP) and 48-50 MP phone sensors. A 50 MP RGB image decodes to 150 MB,
so even a batch of them fits in memory; a 12000 x 12000 PNG (144 MP, 432 MB decoded, several GB once a
processor converts it to float) or a decompression bomb does not get that far. `--max-image-pixels` raises it.
"""
from __future__ import annotations

import threading
from pathlib import Path

DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
OPTION = "--max-image-pixels"

_pil_limit = threading.Lock()   # guards PIL's process-wide bomb limit while a header is read without it


def header_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the image file's header (nothing is decoded), or None when it is not an image PIL
    identifies. PIL's own decompression-bomb check is off for this read: it would raise on the very files whose
    size we want to name."""
    from PIL import Image

    with _pil_limit:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            with Image.open(path) as image:
                return image.size
        except (OSError, SyntaxError, ValueError):
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.3g} megapixels" if pixels >= 1_000_000 else f"{pixels} pixels"


def pixel_problem(size: tuple[int, int], limit: int = DEFAULT_MAX_IMAGE_PIXELS) -> str | None:
    """Why an image of `size` is refused (one clause, without the file: the caller names it), or None."""
    width, height = size
    if width * height <= limit:
        return None
    return (f"is {width}x{height} pixels ({megapixels(width * height)}), over the limit of {megapixels(limit)} "
            f"(expected a smaller image, or a larger {OPTION})")


def allow_decoding(limit: int) -> None:
    """Let PIL decode every image the limit admits: its own bomb check warns above `MAX_IMAGE_PIXELS` and
    refuses above twice that, so it is raised to `limit` when the user raised ours past it (never lowered,
    and left off when someone turned it off)."""
    from PIL import Image

    with _pil_limit:
        if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
            Image.MAX_IMAGE_PIXELS = limit
