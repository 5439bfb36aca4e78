"""One writer per output: the lock every writing command holds on its output folder or file for its whole run.
The bottom floor: imports nothing of ours but the error type and the file helpers.

The lock of `OUT` is the folder `.OUT.lock/` beside it (never inside, so a command that needs a new, empty
folder can still lock it). Each writer registers a holder file `HOST-PID.json` there, created atomically
(O_EXCL), holding host, pid, the process's start time, command, start time and job. Admission (look at the
holders, then register) happens under a short `fcntl` lock on `.OUT.lock/gate`, which the kernel releases when
its process dies, so no crash can leave the gate shut. A holder whose process is dead on this host is taken
over (one `note:` line); another host's holder cannot be checked and is refused with the way to clear it.
Writers that give the same `job` (the shards of one render job, the ranks of one torchrun job) share the lock.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import psutil

from .errors import InputError
from .files import remove_dead_temporaries

_GATE = "gate"
_held: dict[Path, int] = {}   # lock folders this process holds -> nesting depth (a command calling another)


def lock_folder(target: str | Path) -> Path:
    """`.NAME.lock/` beside `target`, resolved (symlinks and `..` too) so every spelling of a path is one lock."""
    target = Path(target).expanduser().resolve()
    return target.with_name(f".{target.name}.lock")


def _process_started(pid: int) -> float | None:
    """When the process `pid` started; None when there is none, or only its zombie (dead, not yet reaped)."""
    try:
        process = psutil.Process(pid)
        return None if process.status() == psutil.STATUS_ZOMBIE else process.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None


def _alive(holder: dict) -> bool:
    """Whether a same-host holder's process still runs: its pid exists *and* started when the holder says
    (a reused pid is another process)."""
    try:
        started = _process_started(int(holder.get("pid", -1)))
    except (TypeError, ValueError, psutil.AccessDenied):
        return True   # not ours to judge (a malformed pid, another user's process): refused, named in the message
    if started is None:
        return False
    return holder.get("unreadable") or abs(started - float(holder.get("pid_started") or 0)) < 1.0


def _me(command: str, job: str | None) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_started": _process_started(os.getpid()),
            "command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "job": job}


def _read_holders(folder: Path) -> list[tuple[Path, dict]]:
    holders = []
    for path in sorted(folder.glob("*.json")):
        try:
            holders.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except FileNotFoundError:    # released while we listed
            continue
        except (ValueError, UnicodeDecodeError):
            # written in one call under the gate right after its O_EXCL create, so unreadable means its writer
            # was killed in that instant: known by its name HOST-PID, it is alive until its pid is gone
            host, _, pid = path.stem.rpartition("-")
            holders.append((path, {"host": host, "pid": pid, "command": "?", "started": "?", "job": None,
                                   "unreadable": True}))
    return holders


@contextmanager
def _gate(folder: Path) -> Iterator[None]:
    """The admission gate: an exclusive fcntl lock on `folder/gate`, held for milliseconds."""
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(folder / _GATE, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:    # the last holder removed the folder between our mkdir and open
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:    # the gate we locked must still be the one at that path (a releaser may have removed it)
                same = os.stat(folder / _GATE).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield
                return
        finally:
            os.close(fd)


def _describe(holder: dict) -> str:
    return (f"{holder.get('command', '?')} (pid {holder.get('pid')} on {holder.get('host')}, "
            f"started {holder.get('started')})")


def acquire(target: str | Path, command: str, job: str | None = None,
            note: Callable[[str], None] | None = None) -> Path | None:
    """Register this process as a writer of `target`; returns its holder file (None when this process already
    holds the lock). Raises InputError naming the live holder when another writer (of another job) has it."""
    folder = lock_folder(target)
    if folder in _held:
        _held[folder] += 1
        return None
    note = note or (lambda line: print(line, file=sys.stderr, flush=True))
    me = _me(command, job)
    host = me["host"]
    with _gate(folder):
        for path, holder in _read_holders(folder):
            if holder.get("host") == host and str(holder.get("pid")) == str(me["pid"]):
                path.unlink(missing_ok=True)   # our own pid's leftover from a process of the past
            elif holder.get("host") == host and not _alive(holder):
                path.unlink(missing_ok=True)
                note(f"note: {target}: taking over the lock of a writer that is gone: {_describe(holder)}")
            elif job is not None and holder.get("job") == job:
                continue   # one job, several processes
            elif holder.get("host") == host:
                raise InputError(f"{target}: in use by another writer: {_describe(holder)}; wait for it to end "
                                 f"or choose another output")
            else:
                raise InputError(f"{target}: in use by another writer on another host: {_describe(holder)}; "
                                 f"if that job is gone, remove {path} and run again")
        mine = folder / f"{host}-{me['pid']}.json"
        fd = os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(me) + "\n")
        except OSError as err:   # a full disk: no lock, nothing left behind, the file named
            mine.unlink(missing_ok=True)
            raise OSError(err.errno, err.strerror, str(mine)) from None
    _held[folder] = 1
    return mine


def release(target: str | Path) -> None:
    """Unregister this process; the lock folder goes when its last holder does."""
    folder = lock_folder(target)
    if folder not in _held:
        return
    _held[folder] -= 1
    if _held[folder]:
        return
    del _held[folder]
    with _gate(folder):
        (folder / f"{socket.gethostname()}-{os.getpid()}.json").unlink(missing_ok=True)
        if not any(folder.glob("*.json")):
            (folder / _GATE).unlink(missing_ok=True)   # under the gate: a waiter then sees another inode
            try:
                folder.rmdir()
            except OSError:
                pass


@contextmanager
def output_lock(target: str | Path, command: str, job: str | None = None) -> Iterator[None]:
    """Hold the lock of `target` for the block (see the module docstring), after removing what dead writers on
    this host left half-written beside it or at its top (`.NAME.HOST-PID.tmp`). Folders above `target` that the
    lock had to create are removed again if the command left them empty (a refused command leaves nothing)."""
    created = _missing_parents(lock_folder(target))
    acquire(target, command, job)
    try:
        path = Path(target)
        remove_dead_temporaries(path.parent, prefix=f".{path.name}.")
        remove_dead_temporaries(path)
        yield
    except OSError as err:
        if err.filename is None:   # a failed write() names no file: name the output it was writing
            raise OSError(err.errno, err.strerror, str(target)) from None
        raise
    finally:
        release(target)
        for folder in created:   # deepest first; one that holds anything (the output) stays
            try:
                folder.rmdir()
            except OSError:
                break


def _missing_parents(folder: Path) -> list[Path]:
    """The folders above `folder` that do not exist yet, deepest first."""
    missing = []
    for parent in folder.parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


def distributed_job() -> str | None:
    """The job key of a torchrun / accelerate launch (its ranks share one output), None in a plain run."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    return "dist:" + ":".join(os.environ.get(k, "") for k in ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT"))
