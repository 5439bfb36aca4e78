"""A finding: one failed check, named by kind, split and file, with a one-line message. Imports nothing of ours."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

KINDS = ("integrity", "labels", "hygiene", "balance")


@dataclass(frozen=True)
class Finding:
    kind: str            # one of KINDS
    split: str | None
    file: str | None     # path relative to the dataset root
    message: str
    strict: bool = True  # False: reported only (e.g. balance of a partial split), never fails --strict

    def line(self) -> str:
        where = f"{self.file}: " if self.file else (f"{self.split}: " if self.split else "")
        return f"[{self.kind}] {where}{self.message}"

    def to_json(self) -> dict:
        return asdict(self)


def reader_message(err: Exception, path: Path) -> str:
    """A reader's one-line error less the file name it starts with: the finding names the file itself."""
    return str(err).removeprefix(f"{path}").lstrip(": ")
