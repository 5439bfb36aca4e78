"""A rendered dataset -> a Hugging Face `datasets` folder: parquet shards per config and split in the Hub's
layout (`data/CONFIG/SPLIT-00000-of-0000N.parquet`), the images embedded as the PNG files' own bytes (never
re-encoded), typed columns, and a dataset card (`README.md`) whose YAML header the Hub reads and whose body is
written from the design and from the audit. Optionally uploaded with `huggingface_hub`.

The dataset must pass the audit first (run in-process, without its pictures); the folder is written under a
temporary name and renamed whole. The same dataset gives the same bytes: no clock anywhere, rows in file order.
`datasets` and `huggingface_hub` are imported inside the functions; no torch.
"""
from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blender_scenes.audit.blocks import table_markdown
from blender_scenes.errors import InputError
from blender_scenes.labels import TASK_FAMILIES
from blender_scenes.files import atomic_write_text, staged_folder

LICENSE = "cc-by-4.0"
MAX_SHARD_BYTES = 500 * 2**20   # of PNG bytes per parquet file (the Hub's own default for push_to_hub)
ROW_GROUP_ROWS = 100            # rows per parquet row group: what `datasets` writes for image datasets
#: what `target` and `anchor` hold in our records (annotate.object_fields), with their types
OBJECT_FIELDS: dict[str, str] = {
    "bbox": "float64[]", "category": "string", "shape": "string", "color": "string", "size": "string",
    "material": "string", "cell": "int64[]", "area": "string", "object_id": "int64",
}
RECORD_FIELDS = ("id", "image", "task", "question", "options", "answer", "target", "anchor", "source", "split",
                 "template")
CITATION = """@misc{rizzoli2025synthetic,
  title         = {From Synthetic Scenes to Real Performance: Enhancing Spatial Reasoning in VLMs},
  author        = {Rizzoli, M. and Alghisi, S. and Mousavi, S. M. and Riccardi, G.},
  year          = {2025},
  eprint        = {2511.11440},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2511.11440}
}"""
AREA_RULE = ("A position label is a function of a 2D box and the image size, the same for synthetic objects and "
             "COCO boxes: centre `(cx, cy)` of the box; `col = min(2, floor(3*cx/W))`, "
             "`row = min(2, floor(3*cy/H))`.")
RELATION_RULE = ("Relations between a target box `a` and an anchor box `b` follow the same principle (one function "
                 "beside the area rule): `left_right` only when their x-intervals do not overlap (`left` if "
                 "`a.x + a.w <= b.x`), `above_below` only when their y-intervals do not overlap (`above` if "
                 "`a.y + a.h <= b.y`); `depth` (3D) from a rendered depth pass.")


@dataclass
class Shard:
    config: str
    split: str
    index: int
    count: int
    rows: list[dict]

    @property
    def path(self) -> str:
        return f"data/{self.config}/{self.split}-{self.index:05d}-of-{self.count:05d}.parquet"


def config_of(task: str) -> str:
    for name, tasks in TASK_FAMILIES.items():
        if task in tasks:
            return name
    raise ValueError(f"task {task!r} belongs to no config")   # QuestionRecord allows no other task


# ------------------------------------------------------------------------------------------ inputs

def check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"--out {out}: folder is not empty (expected a new folder for the Hugging Face export)")


def audit(root: Path, progress: bool = False) -> dict:
    """The audit's report of a dataset folder (its JSON form, as `scenes2real audit` writes it), with the design
    and manifest it read; an unreadable dataset is the audit's own InputError. Without the audit's pictures,
    which the card does not use and which take most of its time (about 4 s of 5 on the demo dataset)."""
    from blender_scenes.audit.progress import Phases
    from blender_scenes.audit.run import audit_source
    from blender_scenes.audit.source import open_dataset

    src = open_dataset(root)
    report, _ = audit_source(src, pictures=False, phases=Phases(progress))
    return report | {"_cfg": src.cfg, "_manifest": src.manifest}


def refuse_failed(root: Path, report: dict) -> None:
    from blender_scenes.audit.findings import Finding

    fails = [Finding(**f) for f in report["findings"] if f["strict"]]
    if fails:
        raise InputError(f"{root}: the audit fails ({len(fails)} failure{'s' * (len(fails) > 1)}), first: "
                         f"{fails[0].line()}; expected a dataset that passes `scenes2real audit {root} --strict`")


def question_files(root: Path) -> list[tuple[str, Path]]:
    from blender_scenes.config import SPLITS

    qdir = root / "questions"
    files = [(s, qdir / f"{s}.jsonl") for s in SPLITS if (qdir / f"{s}.jsonl").is_file()]
    if not files:
        raise InputError(f"{qdir}: no question file (expected questions/{{train,val,test}}.jsonl of a dataset "
                         "rendered by scenes2real)")
    return files


def image_of(root: Path, resolved_root: Path, image: str, where: str) -> Path:
    """A record's image, which must lie inside the dataset `root` (`resolved_root`: it resolved, once for all
    records; paths come from file content)."""
    path = (resolved_root / image).resolve()
    if not path.is_relative_to(resolved_root):
        raise InputError(f"{where}: field 'image': {image!r} lies outside the dataset {root} (expected "
                         "images/SPLIT/ID.png)")
    return path


def rows_of(root: Path) -> dict[tuple[str, str], list[dict]]:
    """Every record of every split as a row (config, split) -> rows, in file order; each image is read when its
    shard is written, so memory holds one shard's images at a time."""
    from blender_scenes.prompts import record_prompt
    from blender_scenes.questions import read_questions

    out: dict[tuple[str, str], list[dict]] = {}
    resolved = root.resolve()   # once: resolve() costs a system call per path component
    for split, path in question_files(root):
        for record in read_questions(path):
            where = f"{path} (id {record.id})"
            image = image_of(root, resolved, record.image, where)
            try:
                size = image.stat().st_size
            except OSError as err:
                raise InputError(f"{where}: field 'image': cannot read {image} ({err.strerror})") from None
            data = record.model_dump(mode="json")
            prompt = record_prompt(record)
            row = {k: data.get(k) for k in RECORD_FIELDS if k != "image"}
            row |= {"image": {"file": image, "size": size, "path": record.image}, "prompt": prompt,
                    "conversation": [{"role": "user", "content": "<image>" + prompt},
                                     {"role": "assistant", "content": record.answer}]}
            row |= {k: v for k, v in data.items() if k not in row and k not in RECORD_FIELDS}   # extra fields
            out.setdefault((config_of(record.task), split), []).append(row)
    return out


# ------------------------------------------------------------------------------------------ features

def _feature(kind: str):
    from datasets import List, Value

    return List(Value(kind[:-2])) if kind.endswith("[]") else Value(kind)


def _inferred(values: list) -> Any:
    """The `datasets` feature pyarrow infers for values we have no declared type for (extra fields)."""
    import pyarrow as pa
    from datasets.features.features import generate_from_arrow_type

    try:
        return generate_from_arrow_type(pa.array(values).type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as err:
        raise InputError(f"a field holds values of mixed types ({err}); expected one type per field") from None


def features_of(rows: list[dict]):
    """The typed columns: the record's fields (target/anchor as structs of their boxes and attributes, anchor
    null for area tasks), the image, the prompt and the conversation; extra keys typed from their values."""
    from datasets import Features, Image, List, Value

    objects = [o for r in rows for o in (r["target"], r["anchor"]) if o]
    extra_keys = sorted({k for o in objects for k in o} - set(OBJECT_FIELDS))
    obj = {k: _feature(t) for k, t in OBJECT_FIELDS.items()}
    obj |= {k: _inferred([o.get(k) for o in objects]) for k in extra_keys}
    features = {
        "id": Value("string"), "image": Image(), "task": Value("string"), "question": Value("string"),
        "options": List(Value("string")), "answer": Value("string"), "target": obj, "anchor": obj,
        "source": Value("string"), "split": Value("string"), "template": Value("string"),
        "prompt": Value("string"),
        "conversation": List({"role": Value("string"), "content": Value("string")}),
    }
    extra = sorted({k for r in rows for k in r} - set(features))
    features |= {k: _inferred([r.get(k) for r in rows]) for k in extra}
    return Features(features)


def _object_row(o: dict | None, keys) -> dict | None:
    return None if o is None else {k: o.get(k) for k in keys}


def shards_of(rows: dict[tuple[str, str], list[dict]], max_shard_bytes: int) -> list[Shard]:
    """Rows cut into shards of at most `max_shard_bytes` of PNG bytes (at least one row each), in order."""
    shards = []
    for (config, split), items in rows.items():
        total = sum(r["image"]["size"] for r in items)
        count = max(1, min(len(items), math.ceil(total / max_shard_bytes)))
        size = math.ceil(len(items) / count)
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        shards += [Shard(config, split, i, len(chunks), chunk) for i, chunk in enumerate(chunks)]
    return shards


def _png(image: dict) -> dict:
    """The image cell: the file's bytes as they are (decoded only by whoever reads the dataset)."""
    try:
        return {"bytes": image["file"].read_bytes(), "path": image["path"]}
    except OSError as err:
        raise InputError(f"{image['file']}: cannot read ({err.strerror}); expected the PNG the record names") from None


def write_parquet(rows: list[dict], features, path: Path) -> None:
    """One parquet file through `datasets` (its schema metadata, content-defined chunking and page index, as
    `push_to_hub` writes), `ROW_GROUP_ROWS` rows per row group."""
    import datasets
    from datasets import Dataset

    keys = {k: list(features[k]) for k in ("target", "anchor")}
    rows = [{k: _object_row(r[k], keys[k]) if k in keys else _png(r[k]) if k == "image" else r.get(k)
             for k in features} for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        Dataset.from_list(rows, features=features).to_parquet(str(path), batch_size=ROW_GROUP_ROWS)
    finally:
        if bars:
            datasets.enable_progress_bars()


# ------------------------------------------------------------------------------------------ the card

def size_category(n: int) -> str:
    """The Hub's size category of `n` rows."""
    names = ["n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B"]
    return names[min(len(names) - 1, max(0, len(str(n)) - 3))] if n >= 1000 else names[0]


def card_header(shards: list[Shard], n_rows: int, name: str) -> str:
    import yaml

    configs: dict[str, dict[str, list[str]]] = {}
    for s in shards:
        configs.setdefault(s.config, {}).setdefault(s.split, [])
    header = {
        "license": LICENSE, "language": ["en"], "task_categories": ["visual-question-answering"],
        "tags": ["synthetic", "spatial-reasoning", "blender", "scenes2real"],
        "pretty_name": name, "size_categories": [size_category(n_rows)],
        "configs": [{"config_name": c, **({"default": True} if i == 0 else {}),
                     "data_files": [{"split": sp, "path": f"data/{c}/{sp}-*.parquet"} for sp in splits]}
                    for i, (c, splits) in enumerate(configs.items())],
    }
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=1000) + "---\n"


def _ratio(x) -> str:
    return "-" if x is None else f"{x:.3g}"


def _design_lines(cfg, manifest: dict) -> list[str]:
    f = cfg.factors
    rows = [["shape", ", ".join(f.shapes)],
            ["colour", ", ".join(f"{k} {tuple(v)}" for k, v in f.colors.items())],
            ["size", ", ".join(f"{k} ({v:g} of a cell)" for k, v in f.sizes.items())]]
    if f.materials:
        rows.append(["material", ", ".join(f.materials)])
    rows += [["position", f"{cfg.grid.rows}x{cfg.grid.cols} placement grid; answers are the nine areas "
                          "(3x3 blocks of cells)"],
             ["distractors", f"{cfg.distractors.count} per scene"
                             + (f", {cfg.distractors.variations} variations" if cfg.distractors.variations > 1
                                else "")]]
    lines = ["## Design", "", cfg.description or "", "",
             f"- design `{cfg.name}`, config hash `{manifest.get('config_hash')}`, seed {cfg.seed}; "
             f"{cfg.design.kind} design" + (f", repeated {cfg.design.repeat} times" if cfg.design.repeat > 1 else ""),
             f"- rendering: {cfg.render.style} ({cfg.render.engine}), {cfg.image.width}x{cfg.image.height} px PNG, "
             f"rendered with scenes2real {manifest.get('versions', {}).get('scenes2real', '?')} and Blender (bpy) "
             f"{manifest.get('versions', {}).get('bpy', '?')}",
             f"- split fractions: {', '.join(f'{k} {v:g}' for k, v in cfg.splits.fractions.items())}"
             + (f"; held-out combinations of {', '.join(cfg.splits.heldout)} appear only in test"
                if cfg.splits.heldout else ""),
             f"- tasks: {', '.join(f'`{t}`' for t in cfg.questions.tasks)}; objects named by "
             f"{' + '.join(cfg.questions.describe)}", "",
             "Factors and levels:", "", table_markdown(["factor", "levels"], rows)]
    return lines


def _split_lines(split: str, summary: dict) -> list[str]:
    from blender_scenes.labels import AREAS

    out = [f"### {split}", ""]
    targets = summary["counts"]["targets"]
    if "area" in targets:
        areas = targets["area"]
        grid = [[areas["counts"].get(AREAS[3 * r + c], 0) for c in range(3)] for r in range(3)]
        out += [f"Target areas (ratio max/min {_ratio(areas.get('ratio'))}):", "",
                table_markdown(["", "left", "center", "right"],
                           [[name, *grid[i]] for i, name in enumerate(("top", "center", "bottom"))])]
    factor_rows = [[k, ", ".join(f"{lv}: {n}" for lv, n in v["counts"].items()), _ratio(v.get("ratio"))]
                   for k, v in targets.items() if k not in ("area", "cell")]
    out += ["Targets per factor level:", "", table_markdown(["factor", "counts", "max/min"], factor_rows)]
    answers = summary["answers"]
    out += ["Answers per task:", "",
            table_markdown(["task", "answers", "max/min"],
                       [[f"`{t}`", ", ".join(f"{a}: {n}" for a, n in e["answers"].items()), _ratio(e.get("ratio"))]
                        for t, e in answers.items()])]
    positions = [[f"`{t}`", ", ".join(f"{i}: {n}" for i, n in e["option_index"].items() if i != "-1"),
                  _ratio(e["option_index_figures"].get("ratio"))]
                 for t, e in answers.items() if "option_index" in e]
    if positions:
        out += ["Position of the correct option (0 = first):", "",
                table_markdown(["task", "positions", "max/min"], positions)]
    return out


def card_body(report: dict, shards: list[Shard], rows: dict[tuple[str, str], list[dict]],
              repo: str | None) -> str:
    cfg, manifest = report["_cfg"], report["_manifest"]
    head = report["headline"]
    configs = list(dict.fromkeys(s.config for s in shards))
    splits = list(dict.fromkeys(s.split for s in shards))
    lines = [f"# {cfg.name}: balanced synthetic scenes for spatial reasoning", "",
             "Rendered with scenes2real's Blender pipeline: every question asks "
             "where an object is (or where it is relative to another), and every answer is measured from the "
             "rendered pixels. The design crosses its factors in balance, so no position, shape, colour, size or "
             "option order is favoured.", ""]
    lines += ["## Contents", "",
              table_markdown(["config", "tasks", *splits],
                         [[f"`{c}`", ", ".join(f"`{t}`" for t in TASK_FAMILIES[c]
                                               if any(r["task"] == t for sp in splits for r in rows.get((c, sp), []))),
                           *(len(rows.get((c, sp), [])) for sp in splits)] for c in configs])]
    per_task = Counter((r["split"], r["task"]) for items in rows.values() for r in items)
    tasks = list(dict.fromkeys(t for (_, t) in per_task))
    lines += ["Scenes (images) and questions per split:", "",
              table_markdown(["split", "scenes", *(f"`{t}`" for t in tasks), "questions"],
                         [[sp, report["splits"][sp]["scenes_read"], *(per_task[sp, t] for t in tasks),
                           sum(per_task[sp, t] for t in tasks)] for sp in splits])]
    lines += _design_lines(cfg, manifest)
    rule = AREA_RULE + " The nine area names, row-major: top left, top center, top right, center left, center, " \
        "center right, bottom left, bottom center, bottom right; horizontal `left, center, right` (from col), " \
        "vertical `top, center, bottom` (from row)."
    lines += ["## Labels", "", "The one geometry rule of scenes2real (its design contract; `blender_scenes/labels.py`):",
              "",
              f"> {rule}", ""]
    if "relations" in configs:
        lines += [f"> {RELATION_RULE}", ""]
    lines += ["Every object's box is the box of its visible pixels in an object-index pass of the render, never "
              "the planned position.", ""]
    objects = sum(report["splits"][sp]["labels"].get("objects", 0) for sp in report["splits"])
    objects_ok = sum(report["splits"][sp]["labels"].get("objects_verified", 0) for sp in report["splits"])
    lines += ["## Verification", "",
              f"Audited with `scenes2real audit` before export: labels from pixels **{head['labels_verified']}/"
              f"{head['targets']}** targets ({objects_ok}/{objects} objects): every object's mask decoded again, "
              "its box and area recomputed, and every answer in the questions, scene records and COCO file "
              "checked against it; " + ("relation answers recomputed from the two masks; " if "relations" in
                                        configs else "")
              + f"{head['images']} images decoded; held-out leaks {head['heldout_leaks']}; "
              f"groups of identical images {head['identical_image_groups']}; worst enforced balance ratio "
              f"{_ratio(head['worst_enforced_ratio'])}; failures {head['failures']}.", ""]
    partial = report.get("partial_splits") or []
    if partial:
        lines += [f"Partial splits (rendered with a limit; their balance is reported, not enforced): "
                  f"{', '.join(partial)}.", ""]
    lines += ["## Balance per split", "",
              "Counts recounted from the files by the audit; max/min is the ratio of the largest to the smallest "
              "count (1 = exactly equal).", ""]
    for sp in splits:
        lines += _split_lines(sp, report["splits"][sp])
    lines += ["## Fields", "", table_markdown(["column", "type", "what"], [
        ["id", "string", "question id (`SCENE-TASK`)"],
        ["image", "Image", "the rendered PNG, its bytes exactly as written by the renderer; `path` is "
                           "`images/SPLIT/SCENE.png` in the source dataset"],
        ["task", "string", ", ".join(f"`{t}`" for t in tasks)],
        ["question", "string", "the question without instruction or options"],
        ["options", "list of strings", "shuffled options (balanced position of the answer); empty = open-ended"],
        ["answer", "string", "the correct option"],
        ["target", "struct", "the object asked about: bbox [x, y, w, h] in pixels (visible pixels), category, "
                             "shape, color, size, material, cell [row, col], area, object_id"],
        ["anchor", "struct or null", "relation tasks: the object the target is placed against (same keys); "
                                     "null for area tasks"],
        ["source", "string", "`synthetic`"], ["split", "string", ", ".join(splits)],
        ["template", "string or null", "the prompt template, only where the design sets one"],
        ["prompt", "string", "the exact text a model is asked (scenes2real's prompt builder)"],
        ["conversation", "list of {role, content}", "the prompt after an `<image>` placeholder, then the "
                                                    "answer (LLaMA-Factory's sharegpt form)"]])]
    name = repo or "USER/REPO"
    default = configs[0]
    lines += ["## Loading", "", "```python", "from datasets import load_dataset", "",
              f'ds = load_dataset("{name}")' + (f'                # the `{default}` config' if len(configs) > 1
                                                 else ""),
              *(f'ds = load_dataset("{name}", "{c}")' for c in configs),
              'ds = load_dataset("path/to/this/folder")  # a local copy, offline', "```", "",
              "`ds[SPLIT][i][\"image\"]` is a PIL image; `ds[SPLIT].cast_column(\"image\", Image(decode=False))` "
              "gives the PNG bytes.", ""]
    assets = "" if cfg.render.style == "flat" else (" The 3D objects come from scenes2real's asset library, each under "
                                                     "its own licence (listed in the library's `manifest.toml`).")
    lines += ["## Licence", "", f"{LICENSE.upper()}.{assets}", ""]
    lines += ["## Citation", "", "The study these stimuli follow (Rizzoli et al., arXiv 2511.11440):", "",
              "```bibtex", CITATION, "```", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ export

def export_hub(dataset: str | Path, out: str | Path, max_shard_bytes: int = MAX_SHARD_BYTES,
               repo: str | None = None, progress: bool = False) -> Path:
    """Audit `dataset` and write its Hugging Face folder to `out` (new or empty), renamed into place whole;
    returns it. `repo` only names the dataset in the card's loading example; `progress` shows the audit's
    bars on stderr (most of the export's time)."""
    root, out = Path(dataset), Path(out)
    try:
        import datasets  # noqa: F401
    except ImportError:
        raise InputError("--format hf needs the `datasets` package (pip install 'scenes2real[hub]')") from None
    if not (root / "manifest.json").is_file():
        raise InputError(f"{root}: no manifest.json (expected a dataset folder rendered by scenes2real)")
    check_out(out)
    report = audit(root, progress)
    refuse_failed(root, report)
    rows = rows_of(root)
    if not rows:
        raise InputError(f"{root / 'questions'}: no question records (expected a rendered dataset's questions)")
    shards = shards_of(rows, max_shard_bytes)
    n_rows = sum(len(v) for v in rows.values())
    card = card_header(shards, n_rows, f"scenes2real {report['design']}") + "\n" + card_body(report, shards, rows,
                                                                                             repo)
    features = {c: features_of([r for (cc, _), items in rows.items() if cc == c for r in items])
                for c in dict.fromkeys(s.config for s in shards)}
    with staged_folder(out) as staging:
        for shard in shards:
            write_parquet(shard.rows, features[shard.config], staging / shard.path)
        atomic_write_text(staging / "README.md", card)
    return out


def push(folder: str | Path, repo: str) -> str:
    """Upload an exported folder to the Hub as dataset `repo` (created if missing); the URL of the commit.
    Offline, without a token or on any Hub error: one-line InputError; the folder is left as it is."""
    where = f"--push-to-hub {repo}"
    try:
        import huggingface_hub
        from huggingface_hub import HfApi, constants
    except ImportError:
        raise PushError(f"{where}: needs the `huggingface_hub` package (pip install huggingface_hub); the export "
                        f"is complete in {folder}") from None
    offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    if offline or constants.is_offline_mode():   # the constant is read once, when huggingface_hub is imported
        raise PushError(f"{where}: HF_HUB_OFFLINE is set, nothing uploaded; the export is complete in {folder}: "
                        f"upload it later with `hf upload {repo} {folder} --repo-type dataset`")
    if huggingface_hub.get_token() is None:
        raise PushError(f"{where}: no Hugging Face token (run `hf auth login` or set HF_TOKEN), nothing uploaded; "
                        f"the export is complete in {folder}")
    api = HfApi()
    try:
        api.create_repo(repo, repo_type="dataset", exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="dataset",
                                 commit_message="scenes2real export --format hf")
    except Exception as err:   # network, auth, validation: whatever the Hub answers, one line
        text = " ".join(str(err).split())[:300]
        raise PushError(f"{where}: upload failed ({type(err).__name__}: {text}); the export is complete in "
                        f"{folder}") from None
    return str(getattr(info, "commit_url", info))


class PushError(Exception):
    """The upload failed after the folder was written: one line, exit 1 (the export itself succeeded)."""
