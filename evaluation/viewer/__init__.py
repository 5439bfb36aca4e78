"""A static HTML viewer of a rendered dataset, a question file or an evaluation run (`scenes2real view`): the
builder is `build.py`; the page itself (page.html, viewer.js, viewer.css) is package data, copied as is."""
from __future__ import annotations

from .build import build_viewer

__all__ = ["build_viewer"]
