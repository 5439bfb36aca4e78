"""matplotlib set up once for the whole project: `pyplot()` selects the Agg backend (pictures written to
files, never a window) and returns `matplotlib.pyplot`. matplotlib is imported inside it, not at the top,
because it is heavy: importing this module (and so the CLI) stays fast. Imports nothing of ours."""
from __future__ import annotations


def pyplot():
    """`matplotlib.pyplot` with the Agg backend selected; call it where a figure is drawn."""
    import matplotlib  # heavy: imported on first use only (see the module docstring)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
