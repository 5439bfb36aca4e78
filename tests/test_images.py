"""vlm_train/images.py through `train` and `evaluate`: an image that does not decode (random bytes, a truncated
PNG or JPEG) stops either command before any model loads, with one `error:` line naming the record and file."""
from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner
from PIL import Image

from scenes2real.cli import cli
from tests.question_sets import write_question_set
from vlm_train.images import image_problem


def _spoil(path, kind: str) -> None:
    """Overwrite an image with a file that exists but does not decode."""
    if kind == "random bytes":
        path.write_bytes(bytes(range(256)) * 4)
        return
    buffer = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").save(buffer, format="PNG" if kind == "truncated png" else "JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


@pytest.fixture(params=["random bytes", "truncated png", "truncated jpeg"])
def spoilt(request, tmp_path):
    """A question file whose second record's image does not decode; returns (file, record id, image path)."""
    path = write_question_set(tmp_path / "data", "train", ["top left", "center", "bottom right"])
    image = tmp_path / "data" / "images" / "train" / "0001.png"
    _spoil(image, request.param)
    return path, json.loads(path.read_text().splitlines()[1])["id"], image


@pytest.fixture
def no_model_loads(monkeypatch):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    def refuse(*args, **kwargs):
        raise AssertionError("a model or processor was loaded before the images were checked")

    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", refuse)
    monkeypatch.setattr(AutoProcessor, "from_pretrained", refuse)


def _one_error_line(result, record_id: str, image) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert f"'{record_id}'" in lines[0] and str(image) in lines[0] and "does not decode" in lines[0], lines[0]


def test_good_images_decode_and_spoilt_ones_are_named(spoilt, tmp_path):
    _, _, image = spoilt
    assert image_problem(image) is not None
    assert image_problem(tmp_path / "data" / "images" / "train" / "0000.png") is None


def test_train_refuses_an_image_that_does_not_decode(spoilt, tiny_checkpoint, tmp_path, no_model_loads):
    path, record_id, image = spoilt
    model = tiny_checkpoint("qwen2_5_vl")
    for extra in ([], ["--dry-run"]):
        result = CliRunner().invoke(cli, ["train", "--model", str(model), "--train", str(path),
                                          "--out", str(tmp_path / "run"), *extra])
        _one_error_line(result, record_id, image)
        assert not (tmp_path / "run").exists()


def test_evaluate_refuses_an_image_that_does_not_decode(spoilt, tiny_checkpoint, tmp_path, no_model_loads):
    path, record_id, image = spoilt
    result = CliRunner().invoke(cli, ["evaluate", "--model", str(tiny_checkpoint("qwen2_5_vl")),
                                      "--questions", str(path), "--out", str(tmp_path / "eval")])
    _one_error_line(result, record_id, image)
    assert not (tmp_path / "eval").exists()
