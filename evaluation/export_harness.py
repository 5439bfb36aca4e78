"""Question files -> the evaluation harnesses researchers already run: VLMEvalKit (custom TSV datasets) and
lmms-eval (a task folder for `--include_path`). No torch; pyarrow only for the lmms-eval parquet files.

VLMEvalKit (checked against open-compass/VLMEvalKit `vlmeval/dataset/__init__.py` `build_dataset`,
`image_base.py`, `image_mcq.py` and `utils/multiple_choice.py`, main branch of 2026-08; and docs/en/Development.md):
  * a dataset name it does not know is read from `$LMUData/{name}.tsv` (pandas `read_csv(sep='\\t')`); a file
    with columns `A` and `B` and `image` is a custom multiple-choice dataset (`CustomMCQDataset`), scored
    without a judge by exact option matching (`--judge exact_matching`), accuracy per `split` and per
    `category` (our task); any other file is a custom VQA dataset (`CustomVQADataset`), which VLMEvalKit
    answers but does not score (its `evaluate` raises NotImplementedError): score its predictions with ours.
  * `index` is an integer unique in the file; `image` the base64 of the image file's bytes, or, for a row
    whose image an earlier row already holds, that row's index (VLMEvalKit's documented way to save space:
    a cell of at most 64 characters is an index);
  * VLMEvalKit builds the multiple-choice prompt itself from `question` and the option columns:
    "Question: {question}\\nOptions:\\nA. ...\\nB. ...\\nPlease select the correct answer from the options
    above. \\n" (`ImageMCQDataset.build_prompt`), so `question` holds the record's question alone (no
    instruction, no options) and `answer` the correct letter. Models see VLMEvalKit's prompt there, not ours:
    that is what makes the numbers comparable with the other VLMEvalKit benchmarks. A record's own prompt
    template (`template`) is not used by VLMEvalKit's MCQ path;
  * the VQA prompt is `question` as written (`ImageBaseDataset.build_prompt`), so an open-ended record's
    `question` cell is our whole prompt (`record_prompt`);
  * a name containing `openended` makes VLMEvalKit treat the dataset as VQA, `mmbench`/`ccbench`/`circular`/
    `mmcr` switch on circular evaluation and `MMMU`/`LEGO`/`MMT`/`MMSci` other special cases: the MCQ file's
    name must contain none of them, the VQA file's name ends in `_openended`.
Run: `LMUData=OUT python run.py --data scenes2real_NAME --model MODEL --judge exact_matching`.

lmms-eval (checked against lmms-eval 0.7.3 from PyPI: `api/task.py` TaskConfig / ConfigurableTask.download,
`api/group.py`, `utils.load_yaml_config`/`import_function`, `tasks/__init__.py` TaskManager): one task per
task family of a question file (`areas`: area9, horizontal, vertical, open; `relations`: left_right,
above_below, depth), a group per question file over its tasks, `utils.py` beside the YAML files
(`!function utils.NAME` is imported relative to the YAML), and the data as parquet
(`dataset_path: parquet`, `dataset_kwargs.data_files` with the parquet's absolute path: datasets resolves a
relative one against the working directory, so a moved folder is exported again). The prompt is the
`prompt` column, built by `record_prompt` at export, so the model sees exactly what `scenes2real evaluate`
sends; `process_results` reads answers with our parser (`evaluation.parse.parse_answer`), so the task needs
scenes2real installed beside lmms-eval. Run: `lmms-eval --include_path OUT --tasks scenes2real_NAME ...`.

Both exports refuse bad input before writing anything (a missing question file, a record's missing image, an
answer that is not one of its options, an out folder that exists and is not empty) and write the whole out
folder under a temporary name, renamed into place at the end. The bytes depend only on the inputs (and, for
lmms-eval, the out folder's absolute path and the pyarrow version).
"""
from __future__ import annotations

import base64
import csv
import io
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path

from blender_scenes.errors import InputError
from blender_scenes.files import staged_folder
from blender_scenes.labels import ALL_TASKS, TASK_FAMILIES
from blender_scenes.prompts import record_prompt
from blender_scenes.questions import QuestionRecord, read_questions, resolve_image
from vlm_train.export import check_names, dataset_name
from vlm_train.images import check_image

PREFIX = "scenes2real"
LETTERS = string.ascii_uppercase
#: strings pandas' read_csv turns into NaN by default (VLMEvalKit reads TSVs with its defaults)
_PANDAS_NA = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
              "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
#: dataset names VLMEvalKit reads as something else than a plain custom MCQ dataset (see the docstring)
_VLMEVALKIT_SPECIAL = {"openended": "a VQA dataset", "mmbench": "circular evaluation", "ccbench": "circular evaluation",
                       "circular": "circular evaluation", "mmcr": "circular evaluation"}
_VLMEVALKIT_SPECIAL_CASED = {"MMMU": "MMMU's answer preprocessing", "LEGO": "LEGO's prompt",
                             "MMT": "MMT's report", "MMSci": "MMSci's report"}
GENERATION_KWARGS = {"max_new_tokens": 16, "temperature": 0, "do_sample": False}   # as `scenes2real evaluate`


@dataclass(frozen=True)
class _Item:
    """One question record with its position in its file and its image file."""
    index: int
    record: QuestionRecord
    image: Path


@dataclass(frozen=True)
class _Source:
    path: Path
    name: str          # the harness's name of this question file: scenes2real_{dataset}_{stem}
    items: list[_Item]


def harness_name(questions: Path) -> str:
    """`scenes2real_demo_test` for `demo/questions/test.jsonl`: the prefix keeps names apart from the harnesses'
    own benchmarks, characters other than letters, digits and `_` become `_`."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", dataset_name(questions)).strip("_") or "questions"
    return name if name.lower().startswith(PREFIX) else f"{PREFIX}_{name}"


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: not a folder (expected a new or empty folder for the export)")
    if out.is_dir() and any(out.iterdir()):
        raise InputError(f"{out}: folder exists and is not empty (expected a new or empty folder for the export; "
                         "choose another --out or remove it)")


def _load(questions: list[str | Path], out: Path) -> list[_Source]:
    """Every question file read and checked (records, images, answers) before anything is written."""
    if not questions:
        raise InputError("no question files given (expected at least one *.jsonl)")
    _check_out(out)
    sources: list[_Source] = []
    checked: set[Path] = set()   # a scene's image serves several questions: decoded once
    check_names([Path(q) for q in questions], out, harness_name)
    for path in map(Path, questions):
        name = harness_name(path)
        records = read_questions(path)
        if not records:
            raise InputError(f"{path}: no question records (expected at least one JSON object per line)")
        items, ids = [], set()
        for index, record in enumerate(records):
            where = f"{path}: question {record.id!r}"
            if record.id in ids:
                raise InputError(f"{where}: field 'id': appears twice (expected unique ids)")
            ids.add(record.id)
            if record.options and record.answer not in record.options:
                raise InputError(f"{where}: field 'answer': {record.answer!r} is not one of its options "
                                 f"{record.options!r}")
            if len(record.options) > len(LETTERS):
                raise InputError(f"{where}: field 'options': {len(record.options)} options (expected at most "
                                 f"{len(LETTERS)}, one letter each)")
            image = resolve_image(record, path)
            if image not in checked:
                check_image(image, where)
                checked.add(image)
            items.append(_Item(index, record, image))
        sources.append(_Source(path, name, items))
    return sources


# ---------------------------------------------------------------------------------------------------- VLMEvalKit

def _check_vlmevalkit_name(source: _Source) -> None:
    for word, meaning in _VLMEVALKIT_SPECIAL.items():
        if word in source.name.lower():
            raise InputError(f"{source.path}: exports as {source.name!r}, which contains {word!r}: VLMEvalKit reads "
                             f"such a dataset as {meaning} (expected a dataset folder and file name without it)")
    for word, meaning in _VLMEVALKIT_SPECIAL_CASED.items():
        if word in source.name:
            raise InputError(f"{source.path}: exports as {source.name!r}, which contains {word!r}: VLMEvalKit applies "
                             f"{meaning} to such a dataset (expected a dataset folder and file name without it)")


def _check_cells(source: _Source, item: _Item, mcq: bool) -> None:
    """Text that pandas would read back as a missing value (VLMEvalKit loads TSVs with read_csv's defaults)."""
    record = item.record
    cells = {"answer": record.answer, "question": record.question if mcq else record_prompt(record)}
    cells.update({f"options[{i}]": option for i, option in enumerate(record.options)})
    for field, text in cells.items():
        if text.strip() in _PANDAS_NA:
            raise InputError(f"{source.path}: question {record.id!r}: field {field!r}: {text!r} reads back as a "
                             "missing value in VLMEvalKit (pandas); expected other text")


def _tsv(header: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _image_cells(items: list[_Item]) -> list[str]:
    """Base64 of each image file's bytes; a row whose image an earlier row of the same file holds gets that
    row's index instead."""
    first: dict[Path, int] = {}
    cells = []
    for item in items:
        key = item.image.resolve()
        if key in first:
            cells.append(str(first[key]))
        else:
            first[key] = item.index
            cell = base64.b64encode(item.image.read_bytes()).decode("ascii")
            if len(cell) <= 64:   # VLMEvalKit reads a cell this short as another row's index
                raise InputError(f"{item.image}: {len(cell)} characters of base64 (expected an image file of more "
                                 "than 48 bytes: VLMEvalKit reads a shorter cell as a row index)")
            cells.append(cell)
    return cells


def vlmevalkit_tables(source: _Source) -> dict[str, bytes]:
    """`{file name: TSV bytes}` of one question file: the multiple-choice records (`NAME.tsv`) and the
    open-ended ones (`NAME_openended.tsv`), each file only when it has records."""
    mcq = [item for item in source.items if item.record.options]
    vqa = [item for item in source.items if not item.record.options]
    tables = {}
    if mcq:
        n_options = max(2, *(len(item.record.options) for item in mcq))
        letters = list(LETTERS[:n_options])
        rows = []
        for item, image in zip(mcq, _image_cells(mcq)):
            _check_cells(source, item, mcq=True)
            record = item.record
            options = record.options + [""] * (n_options - len(record.options))
            rows.append([str(item.index), image, record.question, *options,
                         LETTERS[record.options.index(record.answer)], record.task, record.split, record.id])
        tables[f"{source.name}.tsv"] = _tsv(["index", "image", "question", *letters, "answer", "category", "split",
                                             "id"], rows)
    if vqa:
        rows = []
        for item, image in zip(vqa, _image_cells(vqa)):
            _check_cells(source, item, mcq=False)
            record = item.record
            rows.append([str(item.index), image, record_prompt(record), record.answer, record.task, record.split,
                         record.id])
        tables[f"{source.name}_openended.tsv"] = _tsv(["index", "image", "question", "answer", "category", "split",
                                                       "id"], rows)
    return tables


def export_vlmevalkit(questions: list[Path], out: Path) -> dict:
    """Write VLMEvalKit custom datasets into `out` (a new or empty folder): per question file
    `scenes2real_{dataset}_{stem}.tsv` (multiple choice, scored by VLMEvalKit) and, when the file has open-ended
    records, `..._openended.tsv` (VLMEvalKit answers it; score with ours). Returns a summary:
    `{"format", "out", "files", "datasets": {name: {"questions", "multiple_choice", "open"}}, "command"}`."""
    out = Path(out)
    sources = _load(questions, out)
    for source in sources:
        _check_vlmevalkit_name(source)
    tables: dict[str, bytes] = {}
    datasets = {}
    for source in sources:
        tables.update(vlmevalkit_tables(source))
        n_open = sum(not item.record.options for item in source.items)
        datasets[source.name] = {"questions": str(source.path), "multiple_choice": len(source.items) - n_open,
                                 "open": n_open}
    with staged_folder(out) as staging:
        staging.mkdir(parents=True)
        for name, data in tables.items():
            (staging / name).write_bytes(data)
    names = " ".join(name[:-len(".tsv")] for name in tables)
    return {"format": "vlmevalkit", "out": str(out), "files": [str(out / name) for name in tables],
            "datasets": datasets,
            "command": f"LMUData={out.resolve()} python run.py --data {names} --model MODEL --judge exact_matching"}


# ------------------------------------------------------------------------------------------------------ lmms-eval

LMMS_UTILS = '''"""lmms-eval hooks of a scenes2real task folder (written by `scenes2real export --format lmms-eval`).

The prompt is the `prompt` column, built by scenes2real's prompt builder at export, so a model sees exactly
what `scenes2real evaluate` sends it. Answers are read by scenes2real's own parser, so this task needs the
scenes2real package installed beside lmms-eval (`pip install scenes2real`).
"""
import io

from PIL import Image

try:
    from evaluation.parse import parse_answer
except ImportError as err:   # at task load, before any model runs
    raise ImportError("the scenes2real lmms-eval tasks score answers with scenes2real's parser: install "
                      "scenes2real beside lmms-eval (pip install scenes2real)") from err


def doc_to_visual(doc, lmms_eval_specific_kwargs=None):
    """The question's image, RGB (a PIL image from the datasets Image feature, or the raw parquet struct)."""
    image = doc["image"]
    if isinstance(image, dict):
        image = Image.open(io.BytesIO(image["bytes"]))
    return [image.convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    """scenes2real's prompt for the record, as built at export (pre/post prompts are not added: the prompt is
    the one the model is trained and evaluated with)."""
    return doc["prompt"]


def doc_to_target(doc):
    return doc["answer"]


def score(doc, raw):
    """The parsed label of a raw answer and whether it is the record's answer (as scenes2real's prediction rows)."""
    parsed = parse_answer(raw or "", doc["task"], list(doc["options"] or []))
    return parsed, parsed == doc["answer"]


def process_results(doc, results):
    """Accuracy over the task, accuracy of the record's own question task, and whether the answer was
    unparseable (counted wrong, never dropped)."""
    raw = results[0] if results else ""
    parsed, correct = score(doc, raw)
    return {"accuracy": float(correct), doc["task"] + "_accuracy": float(correct),
            "unparseable": float(parsed is None)}
'''


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def _task_yaml(task: str, parquet: Path, tasks: list[str]) -> str:
    metrics = [("accuracy", "true")] + [(f"{t}_accuracy", "true") for t in tasks] + [("unparseable", "false")]
    lines = [f"task: {_q(task)}",
             "dataset_path: parquet",
             "dataset_kwargs:",
             "  data_files:",
             f"    test: {_q(str(parquet))}",
             "test_split: test",
             "output_type: generate_until",
             "doc_to_visual: !function utils.doc_to_visual",
             "doc_to_text: !function utils.doc_to_text",
             "doc_to_target: !function utils.doc_to_target",
             "process_results: !function utils.process_results",
             "generation_kwargs:",
             *(f"  {key}: {json.dumps(value)}" for key, value in GENERATION_KWARGS.items()),
             "metric_list:"]
    for metric, higher in metrics:
        lines += [f"  - metric: {metric}", "    aggregation: mean", f"    higher_is_better: {higher}"]
    lines += ["metadata:", "  version: 1.0", f"  scenes2real_tasks: {_q(', '.join(tasks))}"]
    return "\n".join(lines) + "\n"


def _group_yaml(group: str, tasks: list[str]) -> str:
    lines = [f"group: {_q(group)}", "task:", *(f"  - {_q(t)}" for t in tasks),
             "aggregate_metric_list:", "  - metric: accuracy", "    aggregation: mean", "    weight_by_size: true",
             "metadata:", "  version: 1.0"]
    return "\n".join(lines) + "\n"


def _parquet(items: list[_Item]) -> bytes:
    """The docs of one task as parquet: an `image` column in the datasets Image layout (struct of bytes and
    path, with the schema metadata that makes `datasets` decode it to PIL), the record's fields, and the prompt."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = {"id": {"dtype": "string", "_type": "Value"}, "image": {"_type": "Image"},
                "task": {"dtype": "string", "_type": "Value"}, "question": {"dtype": "string", "_type": "Value"},
                "options": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"},
                "answer": {"dtype": "string", "_type": "Value"}, "prompt": {"dtype": "string", "_type": "Value"},
                "split": {"dtype": "string", "_type": "Value"}, "source": {"dtype": "string", "_type": "Value"},
                "index": {"dtype": "int64", "_type": "Value"}, "record": {"dtype": "string", "_type": "Value"}}
    records = [item.record for item in items]
    schema = pa.schema([("id", pa.string()), ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("task", pa.string()), ("question", pa.string()), ("options", pa.list_(pa.string())),
                        ("answer", pa.string()), ("prompt", pa.string()), ("split", pa.string()),
                        ("source", pa.string()), ("index", pa.int64()), ("record", pa.string())],
                       metadata={"huggingface": json.dumps({"info": {"features": features}})})
    table = pa.table({
        "id": [r.id for r in records],
        "image": [{"bytes": item.image.read_bytes(), "path": item.image.name} for item in items],
        "task": [r.task for r in records], "question": [r.question for r in records],
        "options": [list(r.options) for r in records], "answer": [r.answer for r in records],
        "prompt": [record_prompt(r) for r in records], "split": [r.split for r in records],
        "source": [r.source for r in records], "index": [item.index for item in items],
        "record": [r.model_dump_json(exclude_none=True) for r in records],
    }, schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=256, write_statistics=False)
    return buffer.getvalue()


def _readme(groups: dict[str, list[str]], out: Path) -> str:
    names = ",".join(groups)
    lines = ["# scenes2real tasks for lmms-eval", "",
             "Written by `scenes2real export --format lmms-eval`. Needs scenes2real installed beside lmms-eval (its",
             "answer parser scores the answers). The YAML files name the parquet files by absolute path: export",
             "again rather than moving this folder.", "",
             f"    lmms-eval --include_path {out} --tasks {names} --model MODEL --model_args ...", ""]
    for group, tasks in groups.items():
        lines.append(f"- `{group}` (group): " + ", ".join(f"`{t}`" for t in tasks))
    return "\n".join(lines) + "\n"


def export_lmms_eval(questions: list[Path], out: Path) -> dict:
    """Write an lmms-eval task folder into `out` (a new or empty folder): per question file a group
    `scenes2real_{dataset}_{stem}` over one task per task family present (`..._areas`, `..._relations`), their
    parquet data under `data/`, and `utils.py`. Returns a summary: `{"format", "out", "files", "groups":
    {group: [task, ...]}, "tasks": {task: {"questions", "tasks", "records"}}, "command"}`."""
    out = Path(out)
    sources = _load(questions, out)
    final = out.resolve()
    files: dict[str, bytes] = {"utils.py": LMMS_UTILS.encode("utf-8")}
    groups: dict[str, list[str]] = {}
    tasks: dict[str, dict] = {}
    for source in sources:
        members = []
        for family, family_tasks in TASK_FAMILIES.items():
            items = [item for item in source.items if item.record.task in family_tasks]
            if not items:
                continue
            task = f"{source.name}_{family}"
            present = [t for t in ALL_TASKS if any(item.record.task == t for item in items)]
            files[f"data/{task}.parquet"] = _parquet(items)
            files[f"{task}.yaml"] = _task_yaml(task, final / "data" / f"{task}.parquet", present).encode("utf-8")
            members.append(task)
            tasks[task] = {"questions": str(source.path), "tasks": present, "records": len(items)}
        files[f"{source.name}.yaml"] = _group_yaml(source.name, members).encode("utf-8")
        groups[source.name] = members
    files["README.md"] = _readme(groups, final).encode("utf-8")
    with staged_folder(out) as staging:
        (staging / "data").mkdir(parents=True)
        for name, data in files.items():
            (staging / name).write_bytes(data)
    return {"format": "lmms-eval", "out": str(out), "files": [str(out / name) for name in files],
            "groups": groups, "tasks": tasks,
            "command": f"lmms-eval --include_path {final} --tasks {','.join(groups)} --model MODEL"}
