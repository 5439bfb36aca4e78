"""One place that sets matplotlib up: the Agg backend, imported on first use (heavy; the CLI stays fast)."""


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
