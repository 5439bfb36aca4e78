"""matplotlib set up once for the whole project: `pyplot()` selects the Agg backend (pictures written to
files, never a window) and returns `matplotlib.pyplot`. matplotlib is imported inside it, not at the top,
because it is heavy: importing this module (and so the CLI) stays fast. `png_bytes(fig, dpi)`: a figure as
PNG bytes that depend on what is drawn only. Imports nothing of ours."""
from __future__ import annotations


def pyplot():
    """`matplotlib.pyplot` with the Agg backend selected; call it where a figure is drawn."""
    import matplotlib  # heavy: imported on first use only (see the module docstring)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig, dpi: int) -> bytes:
    """The figure as PNG bytes, then closed. Without matplotlib's "Software" text chunk (its version) and with
    no date chunk, the same figure drawn by the same matplotlib gives the same bytes."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    pyplot().close(fig)
    return buffer.getvalue()
