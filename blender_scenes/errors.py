"""The exception type for bad input (and its one special case), at the bottom floor so every package can raise it. Inner code
raises it; only the CLI turns it into a one-line message and a non-zero exit."""


class InputError(ValueError):
    """Bad input: the message names the file, the field and what was expected."""


class PlacementError(InputError):
    """A 3D scene the design's sizes and camera cannot place: a design problem, so one `error:` line (fix the
    design and render it into a new folder). Defined here, bpy-free, because a worker's exception is unpickled
    in the parent: a class from the renderer's module would import bpy there (and crash it at exit)."""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP (the CLI installs handlers that raise it; SIGINT raises KeyboardInterrupt): a
    BaseException like KeyboardInterrupt, so `except Exception` never swallows it and every `finally` runs
    (workers stopped, scratch and half-written files removed, locks released)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
