"""What a model folder, an image or a question may make the commands do: a checkpoint's own Python files run only
with --trust-remote-code (stdin is never asked), an image over the pixel limit and a prompt longer than the
model's context are refused in one line before any weights load, and `tiny-model` never writes into a folder
that holds something (issue 20, findings 3, 7 and 9)."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from blender_scenes.errors import InputError
from scenes2real.cli import cli
from tests.processes import ROOT
from tests.question_sets import write_question_set

FAMILY = "qwen2_5_vl"
# the checkpoint's own code: importing it writes the marker, as a malicious modeling file could do anything
OWN_CODE = '''import os
from pathlib import Path

from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

Path(os.environ["OWN_CODE_MARKER"]).write_text("the checkpoint's code ran")


class OwnConfig(Qwen2_5_VLConfig):
    model_type = "own_code_vl"


class OwnModel(Qwen2_5_VLForConditionalGeneration):
    config_class = OwnConfig
'''


def own_code_checkpoint(base: Path, folder: Path, model_type: str = "own_code_vl") -> Path:
    """A tiny checkpoint whose config.json maps the Auto classes to its own Python file (`auto_map`)."""
    shutil.copytree(base, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type=model_type, auto_map={"AutoConfig": "own_code.OwnConfig",
                                                   "AutoModelForImageTextToText": "own_code.OwnModel"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "own_code.py").write_text(OWN_CODE)
    return folder


@pytest.fixture
def marker(tmp_path, monkeypatch) -> Path:
    """Where the checkpoint's code would write; transformers copies it into a modules cache kept in tmp_path."""
    path = tmp_path / "MARKER"
    monkeypatch.setenv("OWN_CODE_MARKER", str(path))
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    return path


@pytest.fixture
def questions(tmp_path) -> Path:
    # two records per answer, so `probe --folds 2` gets as far as loading the model
    return write_question_set(tmp_path / "data", "train", ["top left", "top left", "center", "center"])


def one_error_line(code: int, output: str, *expected: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), output
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def run_cli(*args, env: dict, stdin: str = "") -> tuple[int, str]:
    """`scenes2real ...` in its own process, with `stdin` on its standard input."""
    proc = subprocess.Popen([sys.executable, "-m", "scenes2real", *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **env})
    output = proc.communicate(stdin, timeout=300)[0]
    return proc.returncode, output


def invoke(*args, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], input=stdin)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture
def no_weights_load(monkeypatch):
    from transformers import AutoModelForImageTextToText

    def refuse(*args, **kwargs):
        raise AssertionError("model weights were loaded before the inputs were checked")

    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", refuse)


# --- finding 3: a checkpoint's own code ----------------------------------------------------------------------

def test_evaluate_refuses_own_code_without_reading_stdin(tiny_checkpoint, questions, marker, tmp_path):
    """`echo y | scenes2real evaluate` once ran the folder's Python file (transformers asked [y/N] on stdin)."""
    model = own_code_checkpoint(tiny_checkpoint(FAMILY), tmp_path / "own")
    code, output = run_cli("evaluate", "--model", model, "--questions", questions, "--out", tmp_path / "run",
                           env={"OWN_CODE_MARKER": str(marker), "HF_MODULES_CACHE": str(tmp_path / "modules")},
                           stdin="y\n")
    one_error_line(code, output, f"--model {model}: the checkpoint asks to run its own code "
                   "(config.json auto_map); pass --trust-remote-code if you trust it")
    assert not marker.exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["train", "train --dry-run", "probe", "merge-adapter"])
def test_every_command_refuses_own_code_with_y_on_stdin(command, tiny_checkpoint, questions, marker, tmp_path):
    model = own_code_checkpoint(tiny_checkpoint(FAMILY), tmp_path / "own")
    out = tmp_path / "out"
    args = {"train": ["train", "--train", questions],
            "train --dry-run": ["train", "--train", questions, "--dry-run"],
            "probe": ["probe", "--questions", questions, "--task", "area9", "--folds", 2],
            "merge-adapter": ["merge-adapter", "--adapter", tmp_path]}[command]
    if command == "merge-adapter":
        (tmp_path / "adapter_config.json").write_text("{}")
    code, output = invoke(*args, "--model", model, "--out", out, stdin="y\ny\ny\n")
    one_error_line(code, output, f"--model {model}", "own code", "--trust-remote-code")
    assert not marker.exists()


def test_trust_remote_code_reaches_transformers(tiny_checkpoint, questions, marker, tmp_path):
    model = own_code_checkpoint(tiny_checkpoint(FAMILY), tmp_path / "own")
    run = tmp_path / "run"
    code, output = run_cli("evaluate", "--model", model, "--questions", questions, "--out", run,
                           "--trust-remote-code",
                           env={"OWN_CODE_MARKER": str(marker), "HF_MODULES_CACHE": str(tmp_path / "modules")})
    assert code == 0, output
    assert marker.exists()
    assert json.loads((run / "run.json").read_text())["trust_remote_code"] is True


def test_a_config_with_a_native_type_loads_natively(tiny_checkpoint, marker, tmp_path):
    """An `auto_map` beside a model type transformers knows needs none of the folder's code: accepted, not run."""
    from vlm_train.checkpoint import check_model

    model = own_code_checkpoint(tiny_checkpoint(FAMILY), tmp_path / "own", model_type=FAMILY)
    assert check_model(str(model)).model_type == FAMILY
    assert not marker.exists()


def test_the_trainer_records_the_choice(tiny_checkpoint, questions, tmp_path):
    out = tmp_path / "run"
    code, output = invoke("train", "--model", tiny_checkpoint(FAMILY), "--train", questions, "--out", out,
                          "--epochs", 1, "--lora-r", 2)
    assert code == 0, output
    config = json.loads((out / "train_config.json").read_text())
    assert config["trust_remote_code"] is False and config["max_image_pixels"] == 50_000_000


# --- finding 7: the pixel limit ------------------------------------------------------------------------------

def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header says width x height, with almost no pixel data: it costs nothing to write, and only a
    decode would find it short (a 20000 x 20000 image would take 1.2 GB to draw here)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture
def huge(questions) -> tuple[Path, str]:
    """The question set with its second image replaced by a 20000 x 20000 PNG (400 megapixels)."""
    png_header_only(questions.parent.parent / "images" / "train" / "0001.png", 20_000, 20_000)
    return questions, json.loads(questions.read_text().splitlines()[1])["id"]


def test_the_header_is_read_without_decoding(tmp_path):
    from PIL import Image

    from blender_scenes.images import header_size, pixel_problem

    before = Image.MAX_IMAGE_PIXELS
    assert header_size(png_header_only(tmp_path / "x.png", 20_000, 20_000)) == (20_000, 20_000)
    assert Image.MAX_IMAGE_PIXELS == before
    assert header_size(tmp_path / "none.png") is None
    assert pixel_problem((12_000, 12_000)).startswith("is 12000x12000 pixels (144 megapixels), over the limit "
                                                      "of 50 megapixels")
    assert pixel_problem((7680, 4320)) is None   # an 8K frame


@pytest.mark.parametrize("command", ["train", "evaluate", "probe"])
def test_an_image_over_the_limit_is_one_line(command, huge, tiny_checkpoint, tmp_path, no_weights_load):
    questions, record_id = huge
    train_file = "--train" if command == "train" else "--questions"
    code, output = invoke(command, "--model", tiny_checkpoint(FAMILY), train_file, questions,
                          "--out", tmp_path / "out")
    one_error_line(code, output, f"'{record_id}'", "0001.png", "20000x20000", "400 megapixels",
                   "limit of 50 megapixels", "--max-image-pixels")
    assert not (tmp_path / "out").exists()


def test_max_image_pixels_moves_the_limit(questions, tiny_checkpoint, tmp_path, no_weights_load, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)   # raised below; restored after
    png_header_only(questions.parent.parent / "images" / "train" / "0001.png", 8000, 8000)
    model = tiny_checkpoint(FAMILY)
    code, output = invoke("evaluate", "--model", model, "--questions", questions, "--out", tmp_path / "a")
    one_error_line(code, output, "'train-1'", "8000x8000", "64 megapixels")
    # raised past it: its pixel count passes, and the decode finds it short
    code, output = invoke("evaluate", "--model", model, "--questions", questions, "--out", tmp_path / "a",
                          "--max-image-pixels", 70_000_000)
    one_error_line(code, output, "'train-1'", "does not decode")
    # lowered below the 56 x 56 images of the first record
    code, output = invoke("train", "--model", model, "--train", questions, "--out", tmp_path / "b", "--dry-run",
                          "--max-image-pixels", 1000)
    one_error_line(code, output, "record 1", "56x56", "--max-image-pixels")


def test_the_audit_names_an_image_over_the_limit(huge):
    from blender_scenes.audit.questionfile import summarize_questions

    questions, record_id = huge
    result = CliRunner().invoke(cli, ["audit", str(questions), "--strict"])
    assert result.exit_code == 1, result.output
    line = next(line for line in result.output.splitlines() if "megapixels" in line)
    assert f"question {record_id}" in line and "20000x20000" in line and "--max-image-pixels" in line
    findings = [f for f in summarize_questions(questions).findings if "megapixels" in f.message]
    assert len(findings) == 1 and findings[0].kind == "integrity"
    assert not [f for f in summarize_questions(questions, 400_000_000).findings if "megapixels" in f.message]


# --- finding 7: the context length ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["train", "evaluate", "probe"])
def test_a_prompt_longer_than_the_context_is_refused(command, questions, tiny_checkpoint, tmp_path,
                                                     no_weights_load):
    rows = [json.loads(line) for line in questions.read_text().splitlines()]
    rows[2]["question"] = ("Where is the red square? " * 4000)[:100_000]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    train_file = "--train" if command == "train" else "--questions"
    extra = ["--folds", 2] if command == "probe" else []
    code, output = invoke(command, "--model", tiny_checkpoint(FAMILY), train_file, questions,
                          "--out", tmp_path / "out", *extra)
    line = one_error_line(code, output, f"'{rows[2]['id']}'", "longer than the model's context of 4096 tokens",
                          "max_position_embeddings")
    assert int(line.split(" is ")[1].split(" tokens")[0]) > 4096
    assert not (tmp_path / "out").exists()


# --- finding 9: tiny-model into a folder that holds something ------------------------------------------------

def test_tiny_model_refuses_a_folder_that_holds_something(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "tokenizer_config.json").write_text('{"mine": true}')
    code, output = invoke("tiny-model", FAMILY, "--out", adapter)
    one_error_line(code, output, f"--out {adapter}: folder is not empty")
    assert sorted(p.name for p in adapter.iterdir()) == ["adapter_config.json", "tokenizer_config.json"]
    assert (adapter / "tokenizer_config.json").read_text() == '{"mine": true}'


def test_tiny_model_is_renamed_in_whole(tmp_path):
    from vlm_train.tiny import write_tiny_model

    (tmp_path / "empty").mkdir()
    write_tiny_model(FAMILY, tmp_path / "empty")   # an empty folder is a new folder
    assert (tmp_path / "empty" / "model.safetensors").is_file()
    with pytest.raises(InputError, match="not empty"):
        write_tiny_model(FAMILY, tmp_path / "empty", seed=1)
    before = (tmp_path / "empty" / "model.safetensors").read_bytes()
    write_tiny_model(FAMILY, tmp_path / "empty", seed=1, replace=True)
    assert (tmp_path / "empty" / "model.safetensors").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]   # no staging folder left beside it
