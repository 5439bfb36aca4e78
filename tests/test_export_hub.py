"""`scenes2real export DATASET --format hf` (issue 23): a rendered dataset as a Hugging Face `datasets` folder.
Real renders (the demo dataset, a small relations design), loaded back with `datasets.load_dataset` offline:
every record and every image byte; the card parses with huggingface_hub; same dataset, same bytes; an audit
failure and an offline upload are one line each."""
from __future__ import annotations

import glob
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from blender_scenes.batch import run
from blender_scenes.config import load_design
from blender_scenes.errors import InputError
from scenes2real.cli import cli
from tests.test_relations import FLAT
from vlm_train.export_hub import export_hub

datasets = pytest.importorskip("datasets")


def load(folder: Path, cache: Path, config: str | None = None):
    """The export as `datasets` gives it, images as their stored bytes."""
    ds = datasets.load_dataset(str(folder), config, cache_dir=str(cache))
    return {split: d.cast_column("image", datasets.Image(decode=False)) for split, d in ds.items()}


def records(root: Path) -> dict[str, list[dict]]:
    return {p.stem: [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
            for p in sorted((root / "questions").glob("*.jsonl"))}


def assert_same_records(root: Path, loaded: dict) -> None:
    """Every record of every split, in file order, with the same fields and values; the image bytes are the
    PNG file's own, and decode to its pixels."""
    expected = records(root)
    assert sorted(loaded) == sorted(expected)
    for split, rows in expected.items():
        got = loaded[split]
        assert len(got) == len(rows), split
        for record, row in zip(rows, got):
            assert row["image"]["path"] == record["image"]
            png = (root / record["image"]).read_bytes()
            assert row["image"]["bytes"] == png, record["id"]
            for key in ("id", "task", "question", "options", "answer", "target", "source", "split"):
                assert row[key] == record[key], (record["id"], key)
            assert row["anchor"] == record.get("anchor") and row["template"] == record.get("template")
            assert row["conversation"][-1] == {"role": "assistant", "content": record["answer"]}
            assert row["conversation"][0]["content"] == "<image>" + row["prompt"]
        first = got[0]
        pixels = np.asarray(Image.open(io.BytesIO(first["image"]["bytes"])))
        assert np.array_equal(pixels, np.asarray(Image.open(root / rows[0]["image"])))


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def exported(demo_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("hub") / "demo-hf"
    result = CliRunner().invoke(cli, ["export", str(demo_dataset), "--format", "hf", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out)
    return out


def test_export_loads_offline_with_every_record_and_image(demo_dataset, exported, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    loaded = load(exported, tmp_path / "cache")
    assert_same_records(demo_dataset, loaded)
    assert sorted(files(exported)) == ["README.md", *(f"data/areas/{s}-00000-of-00001.parquet"
                                                      for s in ("test", "train", "val"))]
    features = datasets.load_dataset(str(exported), cache_dir=str(tmp_path / "cache"))["train"].features
    assert isinstance(features["image"], datasets.Image)
    assert features["target"]["bbox"] == datasets.List(datasets.Value("float64"))
    assert features["anchor"]["object_id"] == datasets.Value("int64")
    assert features["options"] == datasets.List(datasets.Value("string"))


def test_card_parses_and_names_the_files(demo_dataset, exported):
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(exported / "README.md")
    assert card.data.license == "cc-by-4.0"
    assert card.data.task_categories == ["visual-question-answering"]
    assert card.data.size_categories == ["n<1K"]
    configs = card.data.configs
    assert [c["config_name"] for c in configs] == ["areas"]
    named = set()
    for entry in configs[0]["data_files"]:
        matched = glob.glob(str(exported / entry["path"]))
        assert matched, entry
        named |= {str(Path(m).relative_to(exported)) for m in matched}
    assert named == {f for f in files(exported) if f.endswith(".parquet")}
    text = card.text
    for words in ("labels from pixels **54/54**", "col = min(2, floor(3*cx/W))", "arXiv 2511.11440",
                  'load_dataset("USER/REPO")', "### train", "Position of the correct option", "failures 0"):
        assert words in text, words
    counts = {s: len(r) for s, r in records(demo_dataset).items()}
    assert f"| `areas` | `area9`, `horizontal`, `vertical`, `open` | {counts['train']} | {counts['val']} | " \
           f"{counts['test']} |" in text


def test_same_dataset_same_bytes_and_shards(demo_dataset, exported, tmp_path, monkeypatch):
    """Two exports in small shards: byte-identical files; the shards load as the whole."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a = export_hub(demo_dataset, tmp_path / "a", max_shard_bytes=30_000)
    b = export_hub(demo_dataset, tmp_path / "b", max_shard_bytes=30_000)
    assert files(a) == files(b)
    shards = [f for f in files(a) if f.startswith("data/areas/train-")]
    assert len(shards) > 1 and shards[-1].endswith(f"-of-{len(shards):05d}.parquet")
    assert files(a)["README.md"] == files(exported)["README.md"]
    assert_same_records(demo_dataset, load(a, tmp_path / "cache"))


def test_relations_config(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    design = tmp_path / "design.toml"
    design.write_text(FLAT)
    root = tmp_path / "rel"
    run(load_design(design), root, workers=1, progress=False)
    out = export_hub(root, tmp_path / "rel-hf")
    loaded = load(out, tmp_path / "cache", "relations")
    assert_same_records(root, loaded)
    assert all(row["anchor"] is not None for split in loaded.values() for row in split)
    assert "a.x + a.w <= b.x" in (out / "README.md").read_text()
    assert not (out / "data" / "areas").exists()


def test_audit_failure_is_refused_with_one_line(demo_dataset, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(demo_dataset, bad, ignore=shutil.ignore_patterns("audit"))
    image = sorted((bad / "images" / "val").glob("*.png"))[0]
    image.write_bytes(image.read_bytes()[:100])   # a cut PNG
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["export", str(bad), "--format", "hf", "--out", str(out)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: the audit fails"), result.output
    assert f"images/val/{image.name}" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]   # nothing written, not even a temporary


def test_non_empty_out_is_refused(demo_dataset, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="folder is not empty"):
        export_hub(demo_dataset, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_push_offline_is_one_line_and_the_folder_stays_complete(demo_dataset, exported, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "pushed"
    result = CliRunner().invoke(cli, ["export", str(demo_dataset), "--format", "hf", "--out", str(out),
                                      "--push-to-hub", "someone/demo"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "HF_HUB_OFFLINE" in errors[0] and str(out) in errors[0], result.output
    # complete: the same files as the plain export, the card naming the repo
    plain, pushed = files(exported), files(out)
    assert sorted(plain) == sorted(pushed)
    assert all(plain[f] == pushed[f] for f in plain if f != "README.md")
    assert 'load_dataset("someone/demo")' in pushed["README.md"].decode()
    assert_same_records(demo_dataset, load(out, tmp_path / "cache"))


def test_push_needs_format_hf(demo_dataset, tmp_path):
    result = CliRunner().invoke(cli, ["export", str(demo_dataset / "questions" / "train.jsonl"), "--format", "trl",
                                      "--out", str(tmp_path / "x"), "--push-to-hub", "someone/demo"])
    assert result.exit_code == 2 and "--push-to-hub goes with --format hf" in result.output
