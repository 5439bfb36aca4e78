"""Running `scenes2real` in this process (click's CliRunner), for tests that read what a command printed; a
command in a process of its own is tests/processes.py."""
from __future__ import annotations

from click.testing import CliRunner, Result

from scenes2real.cli import cli


def invoke(*args) -> Result:
    """`scenes2real ARGS` (each made a string), whatever its exit status."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def run_in_process(*args) -> Result:
    """`scenes2real ARGS`, asserting exit status 0; an exception other than the command's exit is raised."""
    result = invoke(*args)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result
