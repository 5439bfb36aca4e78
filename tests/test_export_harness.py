"""evaluation/export_harness.py: VLMEvalKit TSVs that read back to the records (letters, base64 images, shared
images as row indexes), lmms-eval task folders whose hooks give our prompt and our parser's scores, the same
bytes on every export, and bad input refused before anything is written. The real lmms-eval, where installed,
loads the folder and runs a whole evaluation with a stand-in model."""
from __future__ import annotations

import base64
import csv
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from blender_scenes.errors import InputError
from blender_scenes.prompts import record_prompt
from blender_scenes.questions import read_questions, resolve_image
from evaluation.export_harness import LETTERS, export_lmms_eval, export_vlmevalkit, harness_name
from evaluation.parse import parse_answer
from tests.question_sets import write_question_set, write_relation_set


@pytest.fixture(scope="module")
def question_files(tmp_path_factory) -> list[Path]:
    """An area file (area9 records, a horizontal record sharing an image, an open record with a template) and a
    COCO relation file (left_right, above_below: two questions per image)."""
    root = tmp_path_factory.mktemp("harness")
    areas = write_question_set(root / "demo", "test", ["top left", "center", "bottom right", "center left"])
    rows = [json.loads(line) for line in areas.read_text().splitlines()]
    rows.append({**rows[1], "id": "h-1", "task": "horizontal", "options": ["right", "center", "left"],
                 "answer": "center"})
    rows.append({**rows[0], "id": "open-0", "task": "open", "options": [], "answer": "top left",
                 "template": "Q: {question}\tA:"})
    areas.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return [areas, write_relation_set(root / "rel")]


def _tsv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_vlmevalkit_tsv_reads_back_to_the_records(question_files, tmp_path):
    summary = export_vlmevalkit(question_files, tmp_path / "vlm")
    names = sorted(p.name for p in (tmp_path / "vlm").iterdir())
    assert names == ["scenes2real_demo_test.tsv", "scenes2real_demo_test_openended.tsv", "scenes2real_rel_train.tsv"]
    assert summary["datasets"]["scenes2real_demo_test"] == {"questions": str(question_files[0]),
                                                            "multiple_choice": 5, "open": 1}
    for path in question_files:
        records = read_questions(path)
        name = harness_name(path)
        rows = _tsv(tmp_path / "vlm" / f"{name}.tsv")
        open_file = tmp_path / "vlm" / f"{name}_openended.tsv"
        open_rows = _tsv(open_file) if open_file.exists() else []
        by_index = {int(r["index"]): r for r in rows + open_rows}
        assert sorted(by_index) == list(range(len(records)))   # every record once
        letters = [k for k in rows[0] if len(k) == 1 and k in LETTERS]
        assert letters == list(LETTERS[:max(len(r.options) for r in records)])
        for index, record in enumerate(records):
            row = by_index[index]
            assert (row["id"], row["category"], row["split"]) == (record.id, record.task, record.split)
            image = row["image"] if len(row["image"]) > 64 else by_index[int(row["image"])]["image"]
            assert base64.b64decode(image) == resolve_image(record, path).read_bytes()
            if record.options:
                assert row["question"] == record.question   # VLMEvalKit adds the options and instruction itself
                assert [row[k] for k in letters if row[k]] == record.options
                assert row[row["answer"]] == record.answer
            else:
                assert row["question"] == record_prompt(record) and row["answer"] == record.answer
    # relation questions share their images: later rows name the first row holding the image
    rel = _tsv(tmp_path / "vlm" / "scenes2real_rel_train.tsv")
    assert sum(len(r["image"]) <= 64 for r in rel) == 3


def test_vlmevalkit_tsv_loads_as_vlmevalkit_reads_it(question_files, tmp_path):
    pandas = pytest.importorskip("pandas")
    export_vlmevalkit(question_files, tmp_path / "vlm")
    data = pandas.read_csv(tmp_path / "vlm" / "scenes2real_demo_test.tsv", sep="\t")   # VLMEvalKit's `load`
    assert "A" in data and "B" in data and "image" in data   # -> CustomMCQDataset
    assert pandas.isna(data.loc[data["category"] == "horizontal", "D"]).all()   # empty cells are no options
    openended = pandas.read_csv(tmp_path / "vlm" / "scenes2real_demo_test_openended.tsv", sep="\t")
    assert "A" not in openended and openended["question"].tolist() == ["Q: Where is the red square?\tA:"]


def _load_utils(folder: Path):
    spec = importlib.util.spec_from_file_location("utils", folder / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!function", lambda loader, node: ("function", loader.construct_scalar(node)))


def _docs(parquet: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(parquet).to_pylist()


def test_lmms_eval_folder_gives_our_prompt_and_our_scores(question_files, tmp_path):
    out = tmp_path / "lmms"
    summary = export_lmms_eval(question_files, out)
    assert summary["groups"] == {"scenes2real_demo_test": ["scenes2real_demo_test_areas"],
                                 "scenes2real_rel_train": ["scenes2real_rel_train_relations"]}
    utils = _load_utils(out)
    for path, task in [(question_files[0], "scenes2real_demo_test_areas"),
                       (question_files[1], "scenes2real_rel_train_relations")]:
        config = yaml.load((out / f"{task}.yaml").read_text(), Loader=_Loader)
        assert config["task"] == task and config["dataset_path"] == "parquet"
        assert config["output_type"] == "generate_until" and config["test_split"] == "test"
        assert config["process_results"] == ("function", "utils.process_results")
        parquet = Path(config["dataset_kwargs"]["data_files"]["test"])
        assert parquet == (out / "data" / f"{task}.parquet").resolve()
        metrics = {m["metric"] for m in config["metric_list"]}
        records = read_questions(path)
        assert metrics == {"accuracy", "unparseable"} | {f"{r.task}_accuracy" for r in records}
        docs = _docs(parquet)
        assert [d["id"] for d in docs] == [r.id for r in records]
        for doc, record in zip(docs, records):
            assert utils.doc_to_text(doc) == record_prompt(record)
            assert utils.doc_to_target(doc) == record.answer
            image = utils.doc_to_visual(doc)[0]
            assert image.mode == "RGB" and doc["image"]["bytes"] == resolve_image(record, path).read_bytes()
            for raw in (record.answer.upper(), "I cannot tell", "bottom", "top right"):
                parsed = parse_answer(raw, record.task, record.options)
                correct = float(parsed == record.answer)
                assert utils.process_results(doc, [raw]) == {"accuracy": correct, f"{record.task}_accuracy": correct,
                                                             "unparseable": float(parsed is None)}
    group = yaml.safe_load((out / "scenes2real_demo_test.yaml").read_text())
    assert group["task"] == ["scenes2real_demo_test_areas"] and group["aggregate_metric_list"][0]["metric"] == "accuracy"


def test_lmms_eval_parquet_decodes_with_datasets(question_files, tmp_path):
    datasets = pytest.importorskip("datasets")
    export_lmms_eval(question_files[:1], tmp_path / "lmms")
    parquet = tmp_path / "lmms" / "data" / "scenes2real_demo_test_areas.parquet"
    ds = datasets.load_dataset("parquet", data_files={"test": str(parquet)}, cache_dir=str(tmp_path / "cache"))["test"]
    utils = _load_utils(tmp_path / "lmms")
    doc = ds[0]
    assert not isinstance(doc["image"], dict)   # the Image feature: a PIL image
    assert utils.doc_to_visual(doc)[0].size == doc["image"].size
    assert doc["options"] == read_questions(question_files[0])[0].options


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("export", [export_vlmevalkit, export_lmms_eval])
def test_same_bytes_every_time_and_nothing_left_beside(export, question_files, tmp_path):
    export(question_files, tmp_path / "out")
    first = _tree(tmp_path / "out")
    (tmp_path / "out").rename(tmp_path / "first")
    (tmp_path / "out").mkdir()   # an empty folder is fine
    export(question_files, tmp_path / "out")
    assert _tree(tmp_path / "out") == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "out"]


@pytest.mark.parametrize("export", [export_vlmevalkit, export_lmms_eval])
def test_bad_input_is_one_line_and_writes_nothing(export, question_files, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"missing\.jsonl: file not found"):
        export([question_files[0], tmp_path / "missing.jsonl"], out)
    assert not out.exists()

    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="folder exists and is not empty"):
        export(question_files, out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]

    broken = write_question_set(tmp_path / "broken", "test", ["center", "top left"])
    (tmp_path / "broken" / "images" / "test" / "0001.png").unlink()
    with pytest.raises(InputError) as err:
        export([broken], tmp_path / "new")
    message = str(err.value)
    assert "\n" not in message and "test-1" in message and "field 'image'" in message and "0001.png" in message
    assert not (tmp_path / "new").exists()

    wrong = write_question_set(tmp_path / "wrong", "test", ["center"])
    rows = [json.loads(line) for line in wrong.read_text().splitlines()]
    wrong.write_text(json.dumps({**rows[0], "options": ["left", "right"], "answer": "center"}) + "\n")
    with pytest.raises(InputError, match="field 'answer'"):
        export([wrong], tmp_path / "new")

    with pytest.raises(InputError, match="both export as"):
        export([question_files[0], question_files[0]], tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_vlmevalkit_refuses_names_it_reads_as_other_benchmarks(tmp_path):
    questions = write_question_set(tmp_path / "circular_demo", "test", ["center"])
    with pytest.raises(InputError, match="circular evaluation"):
        export_vlmevalkit([questions], tmp_path / "out")


def test_real_lmms_eval_runs_the_folder(question_files, tmp_path, monkeypatch):
    """lmms-eval's own TaskManager loads the folder through --include_path and its evaluator scores a stand-in
    model's answers with our parser (skipped where lmms-eval is not installed)."""
    pytest.importorskip("lmms_eval")
    from lmms_eval.api.model import lmms
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    export_lmms_eval(question_files, tmp_path / "lmms")

    class Answers(lmms):   # the right answer (upper case) for even docs, a refusal for odd ones
        def loglikelihood(self, requests):
            raise NotImplementedError

        def generate_until_multi_round(self, requests):
            raise NotImplementedError

        def generate_until(self, requests):
            out = []
            for request in requests:
                context, _, doc_to_visual, doc_id, task, split = request.args
                doc = self.task_dict[task][split][doc_id]
                assert context == doc["prompt"] and doc_to_visual(doc)[0].mode == "RGB"
                out.append(doc["answer"].upper() if doc_id % 2 == 0 else "I cannot tell")
            return out

    results = simple_evaluate(model=Answers(), tasks=["scenes2real_demo_test", "scenes2real_rel_train"],
                              task_manager=TaskManager(include_path=str(tmp_path / "lmms")), bootstrap_iters=0,
                              log_samples=False)["results"]
    assert results["scenes2real_demo_test_areas"]["accuracy,none"] == 0.5
    assert results["scenes2real_rel_train_relations"]["unparseable,none"] == 0.5
    assert results["scenes2real_rel_train"]["accuracy,none"] == 0.5


@pytest.mark.parametrize("fmt", ["vlmevalkit", "lmms-eval"])
def test_the_export_command_writes_the_harness_files(fmt, question_files, tmp_path):
    from click.testing import CliRunner

    from scenes2real.cli import cli

    out = tmp_path / fmt
    result = CliRunner().invoke(cli, ["export", *map(str, question_files), "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["format"] == fmt and all(Path(f).is_file() for f in summary["files"])
    assert summary["command"].startswith("lmms-eval --include_path" if fmt == "lmms-eval" else "")
