"""evaluation/viewer through `scenes2real view`: the static page of a dataset, a question file and a run, opened
in headless Chromium (skipped where it is not installed): the DOM holds the items a filter in the URL hash
selects (counted here in Python from the records), masks decode to pycocotools' areas, the screenshot shows the
boxes; the same input gives the same bytes; paging over many chunks; bad input is one line."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from blender_scenes.questions import read_questions
from evaluation.viewer.build import CHUNK, PAGE
from scenes2real.cli import cli

TARGET_RGB = (255, 0, 255)       # viewer.js ROLE_COLORS.target
DISTRACTOR_RGB = (255, 212, 0)   # ROLE_COLORS.distractor
FLAGS = ["--headless", "--disable-gpu", "--no-sandbox", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> str:
    found = _chromium()
    if not found:
        pytest.skip("chromium is not installed")
    return found


def view(*args) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["view", *map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def build(*args) -> str:
    code, output = view(*args)
    assert code == 0, output
    return output


def dump_dom(browser: str, page: Path, fragment: str = "") -> str:
    """The page's DOM once its scripts ran (virtual time lets the chunk scripts and images load)."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                               "--dump-dom", page.as_uri() + fragment], capture_output=True, text=True, timeout=120)
    assert 'data-matches="' in done.stdout, done.stderr[-2000:]
    return done.stdout


def screenshot(browser: str, page: Path, shot: Path, fragment: str = "", size: str = "1200,900") -> np.ndarray:
    from PIL import Image

    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                        f"--screenshot={shot}", f"--window-size={size}", page.as_uri() + fragment],
                       capture_output=True, timeout=120)
    return np.asarray(Image.open(shot).convert("RGB")).astype(int)


def shown_ids(dom: str) -> list[str]:
    return [html.unescape(i) for i in re.findall(r'<article class="item[^"]*" data-id="([^"]*)"', dom)]


def status(dom: str) -> dict[str, int]:
    tag = re.search(r'<span id="status"[^>]*>', dom).group(0)
    return {k: int(v) for k, v in re.findall(r'data-(\w+)="(\d+)"', tag)}


def pixels_of(shot: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 40) -> int:
    return int((np.abs(shot - np.array(rgb)).max(axis=2) <= tolerance).sum())


def dataset_records(root: Path) -> list:
    return [r for split in ("train", "val", "test") for r in read_questions(root / "questions" / f"{split}.jsonl")]


@pytest.fixture(scope="module")
def dataset_view(demo_dataset, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("views") / "dataset"
    return out, build(demo_dataset, "--out", out)


def test_dataset_view_holds_every_question_and_the_hash_filters_them(browser, demo_dataset, dataset_view):
    out, output = dataset_view
    records = dataset_records(demo_dataset)
    assert output.strip().splitlines()[-1] == f"view: {out / 'index.html'} ({len(records)} items; open it in a browser)"
    assert sorted(p.name for p in (out / "data").iterdir()) == \
        [f"{k:04d}.js" for k in range(-(-len(records) // CHUNK))] + ["index.js"]

    dom = dump_dom(browser, out / "index.html")
    assert status(dom)["matches"] == len(records)
    assert shown_ids(dom) == [r.id for r in records[:PAGE]]
    first = records[0]
    assert html.escape(first.question) in dom and f"<b>{html.escape(first.answer)}</b>" in dom

    def selected(**want):
        return [r.id for r in records if all(
            (r.target.get(k) if k in ("shape", "color", "size", "area") else getattr(r, k)) == v
            for k, v in want.items())]

    for fragment, want in [("#split=test&task=area9", dict(split="test", task="area9")),
                           ("#area=top%20right&task=vertical", dict(area="top right", task="vertical")),
                           ("#shape=circle&color=red&size=large", dict(shape="circle", color="red", size="large")),
                           ("#split=val&answer=left", dict(split="val", answer="left"))]:
        expected = selected(**want)
        assert 0 < len(expected) < len(records), fragment
        dom = dump_dom(browser, out / "index.html", fragment)
        assert status(dom)["matches"] == len(expected), fragment
        assert shown_ids(dom) == expected[:PAGE], fragment
    assert status(dump_dom(browser, out / "index.html", "#split=nosuch"))["matches"] == 0


def test_masks_decode_to_the_coco_areas(browser, demo_dataset, dataset_view):
    """viewer.js decodes the COCO RLE strings itself: per picture it counts the mask pixels it painted, which
    must be the annotations' areas as pycocotools computes them."""
    from pycocotools import mask as mask_utils

    out, _ = dataset_view
    coco = json.loads((demo_dataset / "annotations" / "test.json").read_text())
    area = {}
    for ann in coco["annotations"]:
        name = next(i["file_name"] for i in coco["images"] if i["id"] == ann["image_id"])
        area[name] = area.get(name, 0) + int(mask_utils.area(ann["segmentation"]))
    records = [r for r in read_questions(demo_dataset / "questions" / "test.jsonl") if r.task == "area9"]
    dom = dump_dom(browser, out / "index.html", "#split=test&task=area9&masks=1")
    painted = [int(a) for a in re.findall(r'data-mask-area="(\d+)"', dom)]
    assert painted == [area[r.image] for r in records]
    assert all(a > 0 for a in painted)


def test_screenshot_shows_the_pictures_with_their_boxes(browser, dataset_view, tmp_path):
    out, _ = dataset_view
    shot = screenshot(browser, out / "index.html", tmp_path / "shot.png", "#split=test")
    assert shot.std() > 20, "blank page"
    # 4 cards in view, each with a magenta target box and a yellow distractor box of ~30 px sides at 2-3 px
    assert pixels_of(shot, TARGET_RGB) > 400
    assert pixels_of(shot, DISTRACTOR_RGB) > 400


def test_question_file_view_with_copied_images_can_move(browser, demo_dataset, tmp_path):
    questions = demo_dataset / "questions" / "test.jsonl"
    n = len(read_questions(questions))
    build(questions, "--out", tmp_path / "linked")
    build(questions, "--out", tmp_path / "copied", "--copy-images")
    assert sorted(p.name for p in (tmp_path / "copied" / "images" / "test").iterdir()) == \
        sorted(p.name for p in (demo_dataset / "images" / "test").iterdir())
    moved = tmp_path / "elsewhere" / "deeper"
    moved.parent.mkdir()
    for name in ("linked", "copied"):
        (tmp_path / name).rename(moved.with_name(name))
    # an image drawn is a canvas that got its mask count; one not found is a line saying so
    dom = dump_dom(browser, moved.with_name("copied") / "index.html", "#split=test")
    assert status(dom)["matches"] == n and dom.count("data-mask-area=") == min(n, PAGE)
    dom = dump_dom(browser, moved.with_name("linked") / "index.html")
    assert dom.count("data-mask-area=") == 0 and dom.count("image not found") == min(n, PAGE)


def test_run_view_shows_the_model_answers_and_filters_the_errors(browser, demo_dataset, tiny_checkpoint, tmp_path):
    questions = demo_dataset / "questions" / "test.jsonl"
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["evaluate", "--model", str(tiny_checkpoint("qwen2_5_vl")), "--questions",
                                      str(questions), "--out", str(run), "--limit", "8", "--max-new-tokens", "6",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    # the tiny model's answers are noise: give half of the rows the right answer and let `score` re-parse them
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    for i, row in enumerate(rows):
        if i % 2 == 0:
            row["raw"] = f"It is {row['answer']}."
    (run / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(cli, ["score", str(run), "--questions", str(questions), "--bootstrap", "10"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    errors = [r["id"] for r in rows if not r["correct"]]
    assert 0 < len(errors) < len(rows)

    out = tmp_path / "view"
    assert build(run, "--out", out).strip().endswith(f"({len(rows)} items; open it in a browser)")
    dom = dump_dom(browser, out / "index.html")
    assert shown_ids(dom) == [r["id"] for r in rows]
    assert html.escape(json.dumps(rows[1]["raw"], ensure_ascii=False), quote=False) in dom
    assert dom.count('class="verdict correct"') == len(rows) - len(errors)
    dom = dump_dom(browser, out / "index.html", "#errors=1")
    assert shown_ids(dom) == errors
    assert 'class="verdict correct"' not in dom
    dom = dump_dom(browser, out / "index.html", "#errors=1&task=area9")
    assert shown_ids(dom) == [r["id"] for r in rows if not r["correct"] and r["task"] == "area9"]


def test_same_input_gives_the_same_bytes(demo_dataset, tmp_path):
    out = tmp_path / "view"

    def contents():
        return {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    build(demo_dataset, "--out", out)
    first = contents()
    build(demo_dataset, "--out", out)   # an earlier viewer is replaced whole
    assert contents() == first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".view.")], "staging left behind"


def test_many_records_are_paged_over_chunks(browser, demo_dataset, tmp_path):
    """2,500 records: 25 chunks; page 2 and a filtered page 3 (whose items lie in several chunks) show the
    right records, loading only the chunks they need."""
    base = read_questions(demo_dataset / "questions" / "test.jsonl")
    lines = []
    for i in range(2500):   # the demo's records again and again, under new ids, their images by absolute path
        record = base[i % len(base)]
        lines.append(json.dumps({**record.model_dump(exclude_none=True), "id": f"q{i:05d}",
                                 "image": str(demo_dataset / record.image)}))
    questions = tmp_path / "many.jsonl"
    questions.write_text("\n".join(lines) + "\n")
    records = read_questions(questions)
    out = tmp_path / "view"
    build(questions, "--out", out)
    assert len(list((out / "data").glob("[0-9]*.js"))) == 2500 // CHUNK

    dom = dump_dom(browser, out / "index.html", "#page=2")
    assert shown_ids(dom) == [r.id for r in records[PAGE:2 * PAGE]]
    assert status(dom) == {"matches": 2500, "page": 2, "pages": 2500 // PAGE, "shown": PAGE}
    horizontal = [r.id for r in records if r.task == "horizontal"]
    dom = dump_dom(browser, out / "index.html", "#task=horizontal&page=3")
    assert shown_ids(dom) == horizontal[2 * PAGE:3 * PAGE]
    assert len({int(i[1:]) // CHUNK for i in shown_ids(dom)}) > 1
    last = -(-len(horizontal) // PAGE)
    dom = dump_dom(browser, out / "index.html", f"#task=horizontal&page={last}")
    assert shown_ids(dom) == horizontal[(last - 1) * PAGE:]


def test_bad_input_is_one_line(demo_dataset, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "predictions.jsonl").write_text('{"id": "a", "raw": "left"}\n')
    cases = [
        ([tmp_path / "nosuch", "--out", tmp_path / "v"], "not found"),
        ([tmp_path / "empty", "--out", tmp_path / "v"], "not a dataset, question file or run"),
        ([tmp_path / "notes.txt", "--out", tmp_path / "v"], "not a dataset, question file or run"),
        ([tmp_path / "bad.jsonl", "--out", tmp_path / "v"], "bad.jsonl:1"),
        ([run, "--out", tmp_path / "v"], "field 'questions'"),
        ([demo_dataset, "--out", tmp_path / "full"], "not empty"),
        ([demo_dataset, "--out", demo_dataset], "holds the input"),
        ([demo_dataset / "questions" / "test.jsonl", "--out", tmp_path / "v", "--questions", tmp_path / "bad.jsonl"],
         "only for a run folder"),
    ]
    for args, words in cases:
        code, output = view(*args)
        assert code == 2, (args, output)
        assert len(output.strip().splitlines()) == 1 and output.startswith("error: ") and words in output, output
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine\n" and not (tmp_path / "v").exists()
