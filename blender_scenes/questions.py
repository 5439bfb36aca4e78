"""Question records (DESIGN.md), balanced option orders, and JSONL I/O.

The prompt a record becomes is built in `prompts.py`; a record's own template is checked against it when the
file is read. No bpy or torch.
"""
from __future__ import annotations

import functools
import itertools
import json
import os
import random
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import InputError
from .files import temporary_name
from .labels import LABELS, MC_POSITIONS
from .messages import explain, json_position, one_line, shown
from .prompts import template_problem

Task = Literal["area9", "horizontal", "vertical", "open", "left_right", "above_below", "depth", "mc"]
#: the public benchmarks whose released files become question records (evaluation/benchmarks.py)
Benchmark = Literal["vsr", "cvbench", "whatsup", "blink"]
#: where a record's question comes from: our renders, COCO boxes, or a public benchmark's released files
Source = Literal["synthetic", "coco", Benchmark]


class QuestionRecord(BaseModel):
    """One question about one target object (and, for a relation task, one anchor object); one JSON object
    per line in `questions/{split}.jsonl`. `target` and `anchor` hold the same keys (bbox, category,
    attributes, object or annotation id); area records have no `anchor` key at all."""

    model_config = ConfigDict(extra="allow")

    id: str
    image: str
    task: Task
    question: str
    options: list[str] = Field(default_factory=list)
    answer: str
    target: dict[str, Any] = Field(default_factory=dict)
    source: Source = "synthetic"
    split: str = "test"
    template: str | None = None   # the design's prompt template, stored only when not the default
    anchor: dict[str, Any] | None = None   # relation tasks only: the object the target is placed against


def describe(attributes: dict[str, str], order: Iterable[str]) -> str:
    """'red star' from {'color': 'red', 'shape': 'star'} and the order ('color', 'shape')."""
    return " ".join(attributes[k] for k in order if attributes.get(k))


def question_text(description: str) -> str:
    return f"Where is the {description}?"


def relation_question_text(task: str, target: str, anchor: str) -> str:
    """The question of a relation task. For `depth` the two names are said in the order of the options
    (`relation_options`), so balancing the correct option balances which name is said first."""
    if task in ("left_right", "above_below"):
        return f"Where is the {target} relative to the {anchor}?"
    if task == "depth":
        return f"Which is closer to the camera, the {target} or the {anchor}?"
    raise ValueError(f"unknown relation task {task!r}; expected left_right, above_below or depth")


def options_with_answer(task: str, answer: str, correct_index: int, rng: random.Random) -> list[str]:
    """The task's labels in a shuffled order with `answer` at `correct_index` (open task: no options)."""
    if task == "open":
        return []
    others = [label for label in LABELS[task] if label != answer]
    rng.shuffle(others)
    others.insert(correct_index, answer)
    return others


@functools.cache
def _shuffle_steps(length: int) -> tuple[tuple[int, int, int], ...]:
    """(i, n, bits) of each step of `shuffle` on a list of this length: i = n-1 .. 1, n = i + 1 and the bits
    of n, worked out once per length."""
    return tuple((i, i + 1, (i + 1).bit_length()) for i in range(length - 1, 0, -1))


def shuffle(items: list, rng: random.Random) -> None:
    """`rng.shuffle(items)`, in place, with the same `getrandbits` calls and so the same order (CPython 3.11's
    Random.shuffle draws j for i = n-1 .. 1 by _randbelow_with_getrandbits(i + 1)), at a third of the cost:
    millions of option lists are shuffled for a COCO train file (tests/test_questions_jsonl.py checks it
    against rng.shuffle)."""
    getrandbits = rng.getrandbits
    for i, n, bits in _shuffle_steps(len(items)):
        j = getrandbits(bits)
        while j >= n:
            j = getrandbits(bits)
        items[i], items[j] = items[j], items[i]


def balanced_indices(n: int, k: int, rng: random.Random) -> list[int]:
    """n correct-option positions in 0..k-1, each used n/k times (within 1), in a shuffled order."""
    out: list[int] = []
    while len(out) < n:
        block = list(range(k))
        shuffle(block, rng)
        out.extend(block)
    return out[:n]


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line, streamed to a temporary name and renamed into place (atomic), so a
    million-line file never sits in memory and a failure mid-way leaves nothing behind."""
    write_lines(path, (json.dumps(r, ensure_ascii=False) for r in rows))


def write_lines(path: Path, lines: Iterable[str]) -> None:
    """`write_jsonl` for lines already encoded (each without its newline): streamed, atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            lines = iter(lines)
            while batch := list(itertools.islice(lines, 4096)):  # one write per batch: fewer calls
                batch.append("")
                fh.write("\n".join(batch))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def read_questions(path: str | Path) -> list[QuestionRecord]:
    """Read and validate a question file; errors name the file, the line and the field."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected a question file, *.jsonl)")
    records: list[QuestionRecord] = []
    problems = functools.cache(template_problem)   # a file holds one or two templates, on many lines
    # bytes that are not UTF-8 become lone surrogates, which the validator refuses on their line
    with path.open(encoding="utf-8", errors="surrogateescape") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = QuestionRecord.model_validate_json(line)
            except ValidationError as err:
                raise InputError(_record_error(err, line, f"{path}:{lineno}")) from None
            if record.task == "mc":   # the options are the record's own: 2-10 different ones, the answer among them
                problem = mc_problem(record.options, record.answer)
                if problem:
                    raise InputError(f"{path}:{lineno}: {problem}")
            if record.template is not None:   # checked before any model loads (train, evaluate, export, probe)
                problem = problems(record.template, bool(record.options))
                if problem:
                    raise InputError(f"{path}:{lineno}: field 'template': {problem}")
            records.append(record)
    return records


def _record_error(err: ValidationError, line: str, where: str) -> str:
    """The one line for a question line that is no valid record: a JSON syntax error at its column in the
    file (`q.jsonl:2:17: ...`), else the field and what it expects."""
    e = err.errors()[0]
    if e["type"] == "string_unicode" and not e["loc"]:
        return f"{where}: not UTF-8 text (expected a question record, one JSON object per line)"
    if e["type"] == "json_invalid":
        _, column, reason = json_position(line, e.get("ctx", {}).get("error", e["msg"]))
        return one_line(f"{where}:{column}: not valid JSON ({reason}): expected a question record, one JSON "
                        "object per line")
    if e["type"] == "model_type":
        return f"{where}: expected a question record (one JSON object per line), got {one_line(shown(e['input']))}"
    try:   # the values, to show the one at fault as written
        data = json.loads(line)
    except (ValueError, RecursionError):
        data = None
    return explain(err, QuestionRecord, data, table="an object").line(where)


def mc_problem(options: list[str], answer: str) -> str | None:
    """What is wrong with a multiple-choice (`mc`) record's options and answer (field, expectation), or None."""
    if not 2 <= len(options) <= len(MC_POSITIONS):
        return f"field 'options': expected 2 to {len(MC_POSITIONS)} options for task 'mc', got {len(options)}"
    folded = [" ".join(o.lower().split()) for o in options]
    if len(set(folded)) != len(folded) or not all(folded):
        return f"field 'options': expected different, non-empty options, got {options!r}"
    if answer not in options:
        return f"field 'answer': {answer!r} is not one of its options {options!r}"
    return None


def dataset_root(questions_path: str | Path) -> Path:
    """The dataset root of a question file, where its relative image paths start: the folder above `questions/`
    for our datasets, else the file's own folder (resolved)."""
    qdir = Path(questions_path).resolve().parent
    return qdir.parent if qdir.name == "questions" else qdir


def resolve_image(record: QuestionRecord, questions_path: str | Path) -> Path:
    """A record's image path: absolute as given, else relative to the dataset root of its file."""
    image = Path(record.image)
    return image if image.is_absolute() else dataset_root(questions_path) / image
