import pytest
from click.testing import CliRunner

from blender_scenes.config import load_design, load_preset, preset_names
from scenes2real.cli import cli
from blender_scenes.errors import InputError

GOOD = """
name = "tiny"
[factors]
shapes = ["square", "circle"]
sizes = { large = 0.8 }
[factors.colors]
red = [255, 0, 0]
"""


def test_every_preset_validates():
    assert set(preset_names()) >= {"civet", "civet-distractors", "clevr", "solid", "demo"}
    for name in preset_names():
        assert load_preset(name).name == name


def test_yaml_and_toml_read_the_same(tmp_path):
    (tmp_path / "d.toml").write_text(GOOD)
    (tmp_path / "d.yaml").write_text("name: tiny\nfactors:\n  shapes: [square, circle]\n  sizes: {large: 0.8}\n"
                                     "  colors: {red: [255, 0, 0]}\n")
    assert load_design(tmp_path / "d.toml") == load_design(tmp_path / "d.yaml")


@pytest.mark.parametrize("text, field, words", [
    ("colour = 3\n" + GOOD, "colour", "unknown key"),
    (GOOD + "[render]\nenginee = 'cycles'\n", "render.enginee", "unknown key"),
    (GOOD.replace("[255, 0, 0]", "[300, 0, 0]"), "factors.colors.red", "three integers 0-255, got [300, 0, 0]"),
    (GOOD + "[design]\nkind = 'random'\n", "design.kind", "'exhaustive' or 'balanced'"),
    (GOOD + "[design]\nkind = 'balanced'\n", "design", "needs 'scenes'"),
    (GOOD + "[[design.subsets]]\nname = 'a'\ncolors = ['purple']\n", "design.subsets[0].colors", "unknown level 'purple'"),
    (GOOD + "[grid]\nrows = 8\n", "grid", "multiples of 3"),
    (GOOD + "[splits]\nfractions = { train = 0.5, val = 0.2 }\n", "splits.fractions", "sum to 1"),
    (GOOD + "[questions]\ntasks = ['diagonal']\n", "questions.tasks[0]", "'area9'"),
    (GOOD + "[questions]\ndescribe = ['color']\n", "questions.describe", "include 'shape'"),
])
def test_bad_config_names_file_and_field(tmp_path, text, field, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_design(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: field '{field}'"), msg
    assert words in msg and "\n" not in msg


def test_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_design(tmp_path / "missing.toml")
    (tmp_path / "broken.toml").write_text("name = \n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_design(tmp_path / "broken.toml")
    (tmp_path / "d.json").write_text("{}")
    with pytest.raises(InputError, match="unknown config format"):
        load_design(tmp_path / "d.json")


def test_cli_prints_one_line_and_exits_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(GOOD + "[render]\nengine = 'povray'\n")
    res = CliRunner().invoke(cli, ["plan", str(path)])
    assert res.exit_code == 2
    assert res.output.strip() == (f"error: {path}: field 'render.engine': expected 'workbench', 'cycles' or "
                                  "'eevee', got 'povray'")
    res = CliRunner().invoke(cli, ["plan", "--preset", "nope"])
    assert res.exit_code == 2 and "unknown preset 'nope'" in res.output
