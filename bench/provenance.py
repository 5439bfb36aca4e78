"""What every bench result records beside its figures: the command that made it, its seed, the versions of
what it ran on, and the machine (cores, CPU model, load average: the development machine may be shared)."""
from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("scenes2real", "bpy", "numpy", "opencv-python-headless", "pycocotools", "torch", "transformers", "peft")


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def provenance(seed: int | None = None) -> dict:
    return {"command": " ".join(["python", *sys.argv]), "seed": seed,
            "versions": {"python": platform.python_version(), **{p: _version(p) for p in PACKAGES}},
            "machine": {"cores": os.cpu_count(), "cpu": _cpu_model(),
                        "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}}
