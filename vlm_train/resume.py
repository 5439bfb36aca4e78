"""Which Trainer checkpoint a run resumes from, and whether a failed save was a full disk. A checkpoint cut
short by a kill or a full disk is named and removed; `--resume` takes the newest complete one. No torch: the
files are checked by their formats (safetensors header, zip directory, trainer_state.json)."""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Callable

from blender_scenes.files import atomic_write_json

# --- checkpoints a run can resume from ----------------------------------------------------------------------

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")   # the Trainer's folder names (transformers.trainer_utils)


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file is not whole (missing, header cut, shorter or longer than its header says)."""
    try:
        with path.open("rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(size)) if 0 < size < 1 << 27 else None
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except FileNotFoundError:
        return f"no {path.name}"
    except (OSError, ValueError, TypeError, KeyError, AttributeError, IndexError):
        return f"{path.name} is cut short"
    return None if path.stat().st_size == 8 + size + end else f"{path.name} is cut short"


def _zip_problem(path: Path) -> str | None:
    """torch.save writes a zip archive whose directory comes last: a file cut short has none."""
    try:
        with zipfile.ZipFile(path):
            return None
    except FileNotFoundError:
        return f"no {path.name}"
    except (OSError, zipfile.BadZipFile):
        return f"{path.name} is cut short"


def _weights_problem(folder: Path) -> str | None:
    """The adapter's or the model's weights: present and whole (every shard of a sharded checkpoint)."""
    for name in ("adapter_model.safetensors", "model.safetensors"):
        if (folder / name).exists():
            return safetensors_problem(folder / name)
    index = folder / "model.safetensors.index.json"
    if index.exists():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError):
            return f"{index.name} is cut short"
        return next((p for p in (safetensors_problem(folder / s) for s in shards) if p), None)
    for name in ("adapter_model.bin", "pytorch_model.bin"):
        if (folder / name).exists():
            return _zip_problem(folder / name)
    return "no weights"


def checkpoint_problem(folder: Path) -> str | None:
    """Why a Trainer checkpoint cannot be resumed from, or None when it is complete. The Trainer writes the
    weights, then the optimizer, scheduler and random states, and `trainer_state.json` last
    (`Trainer._save_checkpoint`): complete means that file whole, and the weights, optimizer and scheduler
    whole (a kill while an older checkpoint was being rotated away leaves any of them missing)."""
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no trainer_state.json"
    except (OSError, ValueError):
        return "trainer_state.json is cut short"
    if not (isinstance(state, dict) and "global_step" in state):
        return "trainer_state.json is not a Trainer state"
    return (_weights_problem(folder) or _zip_problem(folder / "optimizer.pt")
            or _zip_problem(folder / "scheduler.pt"))


def resume_point(checkpoints: Path, note: Callable[[str], None] = _note) -> str | None:
    """The newest complete checkpoint in `checkpoints`, or None (training starts from the beginning). Every
    incomplete one is named in one line and removed (by the main process), so neither the Trainer's resume nor
    its rotation of old checkpoints trips over it."""
    folders = sorted((p for p in checkpoints.glob("checkpoint-*") if p.is_dir() and _CHECKPOINT.match(p.name)),
                     key=lambda p: int(_CHECKPOINT.match(p.name)[1]))
    main = int(os.environ.get("RANK", "0")) == 0
    newest = None
    for folder in folders:
        problem = checkpoint_problem(folder)
        if problem is None:
            newest = folder
        elif main:
            shutil.rmtree(folder, ignore_errors=True)
            note(f"note: --resume: {folder} is incomplete ({problem}): removed")
    if newest is None:
        if main:
            note(f"note: --resume: no complete checkpoint in {checkpoints}: training starts from the beginning")
        return None
    if main:
        _relocate_best(newest, checkpoints)
    return str(newest)


def _relocate_best(checkpoint: Path, checkpoints: Path) -> None:
    """A run folder copied elsewhere (to a larger disk) keeps the old path of its best checkpoint in the
    Trainer's state; point it at the copy so the best weights are found at the end."""
    path = checkpoint / "trainer_state.json"
    state = json.loads(path.read_text(encoding="utf-8"))
    best = state.get("best_model_checkpoint")
    if best and not Path(best).is_dir() and (checkpoints / Path(best).name).is_dir():
        state["best_model_checkpoint"] = str(checkpoints / Path(best).name)
        atomic_write_json(path, state, indent=2)


# --- a full disk --------------------------------------------------------------------------------------------

_NO_SPACE_TEXT = ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122")


def disk_full(err: BaseException, folder: Path) -> bool:
    """Whether a failed save was a full disk: an OSError says so; safetensors and the tokenizers say it in their
    message; torch's zip writer says only that a write failed ('file write failed', 'unexpected pos'), so
    there the disk is asked (the file it cut short holds what was written: a full disk has no room left)."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if any(text in str(err) for text in _NO_SPACE_TEXT):
        return True
    frames = []
    tb = err.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    if isinstance(err, RuntimeError) and any(f.endswith(os.path.join("torch", "serialization.py")) for f in frames):
        try:
            return shutil.disk_usage(folder).free < 1 << 20
        except OSError:
            return False
    return False


def being_written(out: Path) -> Path:
    """The folder a failed save was writing: the newest checkpoint if it is incomplete, else the run folder."""
    folders = [p for p in (out / "checkpoints").glob("checkpoint-*") if _CHECKPOINT.match(p.name)]
    newest = max(folders, key=lambda p: int(_CHECKPOINT.match(p.name)[1]), default=None)
    return newest if newest is not None and checkpoint_problem(newest) else out
