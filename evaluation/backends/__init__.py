"""Backends: what turns prompts + images into raw answers, one module per backend, registered in `BACKENDS`.

Everything else of a run is shared and lives in `evaluation/runner.py`: reading and checking the question
records, the prompt builder (`blender_scenes.prompts.record_prompt`), resume by id, shards, `predictions.jsonl`,
`run.json`, parsing and metrics. A backend only answers, so a run folder holds the same files whichever one
answered it, and `score` / `compare` treat them alike.

A backend is made from the run's settings and used in three steps, cheapest first, so that a bad input stops a
run before anything heavy happens:
1. `check(todo)`: what can be checked before any weights load or any question is sent (prompt lengths against
   the model's context; the server is reachable, the key accepted, the model served);
2. `start()`: load the model (or nothing); returns the fields it adds to `run.json` (environment, generation);
3. `answer(todo)`: yields lists of `Answer`s as they are ready, in any order (the runner writes each list as
   it comes and puts `predictions.jsonl` in question order at the end). An answer that failed for good carries
   `error` (its row is kept and counted, and a re-run retries it); a failure no retry can fix (a wrong model, a
   refused key) raises InputError and stops the run.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Protocol

from blender_scenes.questions import QuestionRecord

# name -> "module:class"; imported only when chosen (the transformers backend imports torch)
BACKENDS: dict[str, str] = {
    "transformers": "evaluation.backends.transformers_backend:TransformersBackend",
    "openai": "evaluation.backends.openai_backend:OpenAIBackend",
}


@dataclass(frozen=True)
class Question:
    """One question as every backend receives it: the record, its image file and the prompt text."""
    record: QuestionRecord
    image: Path
    prompt: str


class Answer(NamedTuple):
    question: Question
    raw: str | None          # the model's text, stripped; None when the question failed
    error: str | None = None


class Backend(Protocol):
    def check(self, todo: list[Question]) -> None: ...

    def start(self) -> dict[str, Any]: ...

    def answer(self, todo: list[Question]) -> Iterator[list[Answer]]: ...


def make_backend(settings) -> Backend:
    """The backend named by `settings.backend`, made from the run's settings."""
    module_name, class_name = BACKENDS[settings.backend].split(":")
    return getattr(importlib.import_module(module_name), class_name)(settings)
