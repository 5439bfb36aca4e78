"""Writing files so that a killed or failing writer never leaves a half-written file that looks complete:
a temporary name beside the target, then an atomic rename. The bottom floor: imports nothing of ours."""
from __future__ import annotations

import json
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import InputError


_writing: set[Path] = set()   # this process's temporaries not yet renamed (see `remove_own_temporaries`)


def temporary_name(path: Path) -> Path:
    """`.NAME.HOST-PID.tmp` beside `path`: names the writer, so writers on several machines sharing one
    folder (a job array) never collide, and a leftover is recognisable as such."""
    return path.with_name(f".{path.name}.{socket.gethostname()}-{os.getpid()}.tmp")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_temporaries(folder: Path, prefix: str = ".") -> list[Path]:
    """Remove what writers on this host that are gone left half-written in `folder` (files or folders named
    `PREFIX...HOST-PID.tmp`, see `temporary_name`); the paths removed. Writers on other hosts are left alone:
    their pids cannot be checked from here."""
    host = socket.gethostname()
    removed = []
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    marker = f".{host}-"
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp") and marker in name):
            continue
        pid = name[:-len(".tmp")].rsplit(marker, 1)[1]
        if not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    tmp = temporary_name(path)
    _writing.add(tmp)   # before it exists: a process ended at any point below can still remove it
    try:
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
        except FileNotFoundError:   # the folder is made on the first write into it, not checked at every write
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(data)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename is None:   # a failed write() names no file: name the one being written
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        _writing.discard(tmp)


def remove_own_temporaries() -> None:
    """Remove the temporaries this process is writing: for a process that must end at once with `os._exit`
    (a render worker on SIGTERM), where no `except` or `finally` runs."""
    for tmp in list(_writing):
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = None) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False) + "\n")


def scratch_base() -> Path:
    """Where renderers keep scratch files: $SCENES2REAL_SCRATCH (e.g. a node-local disk where /dev/shm is small),
    else /dev/shm, else /tmp."""
    return Path(os.environ.get("SCENES2REAL_SCRATCH") or ("/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"))


def read_json(path: str | Path, expected: str) -> Any:
    """A JSON file's content; a missing or malformed file is one InputError naming it and what was expected."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (expected {expected})") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err}); expected {expected}") from None


def replace_folder(staging: Path, target: Path) -> None:
    """Put a whole folder in `target`'s place: the old one is renamed aside before the new one is renamed in, so
    `target` is either the old folder or the new one, and removed only then."""
    if not target.exists():
        staging.rename(target)
        return
    old = temporary_name(target.with_name(f"{target.name}.old"))
    target.rename(old)
    staging.rename(target)
    shutil.rmtree(old)


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A folder written under a temporary name beside `target` (`.NAME.HOST-PID.tmp`) and put in its place whole
    when the block ends (`replace_folder`); removed if the block fails. What a dead writer left is removed first."""
    target = Path(target)
    remove_dead_temporaries(target.parent, prefix=f".{target.name}.")
    staging = temporary_name(target)
    try:
        yield staging
        replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
