"""`scenes2real`: one click group for every job, the top floor. Each module of this package holds the
commands of one area (`scenes`, `assets`, `audit`, `evaluation`, `training`); a command only parses its
options, calls one library function and prints. Here, and nowhere else, failures become one `error:` line:
bad input (`InputError`, exit 2), a full disk (exit 1), and SIGTERM / SIGHUP / SIGINT (exit 128 + the signal,
after every `finally` below the command has run)."""
from __future__ import annotations

import contextlib
import errno
import signal
import sys
import threading

import click

from blender_scenes.errors import InputError, Interrupted

from . import assets, audit, evaluation, scenes, training, view

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def _signals_raise():
    """SIGTERM and SIGHUP raise `Interrupted` while a command runs (a cluster's time limit, a closed terminal),
    so that cleanup runs as for Ctrl-C; the previous handlers come back after (the CLI also runs in-process)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        with _signals_raise():
            return self._invoke(ctx)

    def _invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InputError as err:   # one line, whatever the input put in the message
            click.echo("error: " + str(err).replace("\r", "\\r").replace("\n", "\\n"), err=True)
            ctx.exit(2)
        except OSError as err:
            if err.errno not in _NO_SPACE:
                raise
            where = err.filename or "the output"
            click.echo(f"error: {where}: {err.strerror or 'no space left on device'}; what was finished is kept: "
                       "free space and run the command again (with --resume where it has one)", err=True)
            ctx.exit(1)
        except (Interrupted, KeyboardInterrupt) as err:
            signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
            click.echo(f"error: stopped by {signal.Signals(signum).name}; what was finished is kept: run the "
                       "command again (with --resume where it has one)", err=True)
            ctx.exit(128 + signum)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="scenes2real")
def cli() -> None:
    """Balanced synthetic scenes for VLM fine-tuning, and the measurement of transfer to real photos."""


for _module in (scenes, assets, audit, evaluation, training, view):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    cli(prog_name="scenes2real")


if __name__ == "__main__":
    sys.exit(main())
