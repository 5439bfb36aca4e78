"""The scene design config: factors and levels, the design, distractors, splits, questions, image and
renderer settings. Read from TOML or YAML and validated strictly (unknown keys and values are errors
that name the file and the field). Presets ship in `presets/`. No bpy here."""
from __future__ import annotations

import hashlib
import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from .assets import asset_folder, check_design
from .errors import InputError
from .labels import DEPTH_MARGIN, RELATION_TASKS
from .messages import Expected, explain, one_line, shown
from .prompts import DEFAULT_OPEN_TEMPLATE, DEFAULT_TEMPLATE, template_problem
from .relations import relation_levels

FACTORS = ("shape", "color", "size", "material")
SPLITS = ("train", "val", "test")

# Bounds that keep `plan` (pure Python, all in memory) quick and small for any design that passes: the number
# of scenes planned, of attribute combinations (balanced designs enumerate them), the grid (distractors scan
# its cells; relation designs pair them up, a search that grows with the cube of the cells), and the least
# cell and flat object in pixels (a flat plus of 2.5 px rendered no pixel to measure; every shape of 3 px did,
# at every sub-pixel phase tried).
MAX_SCENES = 1_000_000      # about 40 s and 1 GB of plan
MAX_OBJECTS = 4_000_000     # targets, anchors and distractors of all scenes
MAX_COMBINATIONS = 100_000
MAX_GRID = 99
MAX_RELATION_CELLS = 324   # e.g. 18 x 18
MIN_CELL_PX = 4
MIN_FLAT_OBJECT_PX = 3
MAX_SEED = 2**63 - 1   # what a TOML integer holds


# a colour, sRGB: a message about it or any of its numbers says what `Expected` says (blender_scenes/messages.py)
Channel = Annotated[int, Field(ge=0, le=255)]
RGB = Annotated[tuple[Channel, Channel, Channel], Expected("[R, G, B], three integers 0-255")]


class Strict(BaseModel):
    # inf and nan (TOML and YAML write both) are refused in every float field
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ImageConfig(Strict):
    width: int = Field(336, ge=16, le=8192)
    height: int = Field(336, ge=16, le=8192)
    background: RGB = (0, 0, 0)  # flat style only


class RenderConfig(Strict):
    style: Literal["flat", "3d"] = "flat"
    engine: Literal["workbench", "cycles", "eevee"] = "workbench"
    samples: int = Field(16, ge=1, le=4096)   # Cycles/EEVEE samples; Workbench anti-aliasing samples
    device: Literal["cpu", "gpu"] = "cpu"
    composite: bool = True   # flat style: render each object appearance once and composite (exact, see README)
    min_visible: float = Field(0.6, ge=0.0, le=1.0)   # least visible share of an object (3d occlusion)
    margin_px: int = Field(1, ge=0, le=1024)   # objects must keep this distance from the image border
    workers_restart_every: int = Field(300, ge=1)


class CameraConfig(Strict):
    """3d style: a perspective camera looking at the ground's origin."""
    elevation: float = Field(50.0, gt=5.0, le=90.0)   # degrees above the ground
    azimuth: float = 0.0
    distance: float = Field(14.0, gt=0.0)
    lens: float = Field(35.0, gt=1.0)   # mm, 36 mm sensor


class GridConfig(Strict):
    rows: int = Field(9, ge=3, le=MAX_GRID)
    cols: int = Field(9, ge=3, le=MAX_GRID)

    @model_validator(mode="after")
    def _thirds(self):
        if self.rows % 3 or self.cols % 3:
            raise ValueError("rows and cols must be multiples of 3 (each area is a block of cells)")
        return self


class MaterialConfig(Strict):
    metallic: float = Field(0.0, ge=0.0, le=1.0)
    roughness: float = Field(0.5, ge=0.0, le=1.0)


class FactorsConfig(Strict):
    shapes: list[str] = Field(min_length=1)
    colors: dict[str, RGB] = Field(min_length=1)   # name -> sRGB 0..255
    sizes: dict[str, float] = Field(min_length=1)   # flat: share of a cell; 3d: longest side in metres
    materials: dict[str, MaterialConfig] = Field(default_factory=dict)

    @field_validator("sizes")
    @classmethod
    def _positive(cls, v):
        for name, s in v.items():
            if s <= 0:
                raise ValueError(f"size {name!r}: expected a positive number, got {s}")
        return v

    @field_validator("shapes")
    @classmethod
    def _unique(cls, v):
        if len(set(v)) != len(v):
            raise ValueError("shapes: each shape once")
        return v


SplitSpec = Annotated[Literal["train", "val", "test"] | dict[Literal["train", "val", "test"], float],
                      Expected("a split ('train', 'val' or 'test') or a table of fractions by split")]


class SubsetConfig(Strict):
    """A part of the design: a Cartesian product over some levels of each factor (all levels when a
    factor is not named), sent to one split or divided between splits by fractions."""
    name: str
    shapes: list[str] | None = None
    colors: list[str] | None = None
    sizes: list[str] | None = None
    materials: list[str] | None = None
    split: SplitSpec | None = None   # default: the design's splits.fractions


class DesignConfig(Strict):
    kind: Literal["exhaustive", "balanced"] = "exhaustive"
    repeat: int = Field(1, ge=1, le=1000)      # exhaustive: every combination this many times
    scenes: int | None = Field(None, ge=1, le=MAX_SCENES)   # balanced: how many scenes in all
    subsets: list[SubsetConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _kind(self):
        if self.kind == "balanced" and self.scenes is None:
            raise ValueError("a balanced design needs 'scenes' (how many scenes in all)")
        if self.kind == "exhaustive" and self.scenes is not None:
            raise ValueError("'scenes' is for balanced designs; an exhaustive design uses 'repeat'")
        names = [s.name for s in self.subsets]
        if len(set(names)) != len(names):
            raise ValueError("subset names must be unique")
        return self


class DistractorConfig(Strict):
    count: int = Field(0, ge=0, le=20)
    variations: int = Field(1, ge=1, le=100)   # each target combination rendered this many times with other distractors


class SplitsConfig(Strict):
    fractions: dict[Literal["train", "val", "test"], float] = Field(default_factory=lambda: {"train": 0.8, "val": 0.2})
    # factors whose level combinations must never occur in two splits (e.g. ["shape", "color"])
    heldout: list[Literal["shape", "color", "size", "material"]] = Field(default_factory=list)

    @field_validator("fractions")
    @classmethod
    def _sum(cls, v):
        if any(f < 0 for f in v.values()) or abs(sum(v.values()) - 1.0) > 1e-9:
            raise ValueError(f"fractions must be >= 0 and sum to 1, got {dict(v)}")
        return v


class QuestionsConfig(Strict):
    tasks: list[Literal["area9", "horizontal", "vertical", "open", "left_right", "above_below", "depth"]] = Field(
        default_factory=lambda: ["area9"])
    describe: list[Literal["size", "color", "material", "shape"]] = Field(default_factory=lambda: ["color", "shape"])
    template: str = DEFAULT_TEMPLATE
    open_template: str = DEFAULT_OPEN_TEMPLATE
    # depth: the two median depths must differ by this share of the farther one (None: labels.DEPTH_MARGIN)
    depth_margin: float | None = Field(None, gt=0.0, lt=1.0)

    @field_validator("tasks")
    @classmethod
    def _one_kind(cls, v):
        relations = [t for t in v if t in RELATION_TASKS]
        if len(set(v)) != len(v):
            raise ValueError("each task once")
        if relations and len(relations) != len(v):
            raise ValueError("relation tasks (left_right, above_below, depth) and area tasks (area9, horizontal, "
                             "vertical, open) cannot be mixed in one design: a relation scene is planned for its pair")
        return v

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        # depth_margin unset is left out of dumps: the hash and records of designs written before relations
        # existed stay the same bytes
        d = handler(self)
        if d.get("depth_margin") is None:
            d.pop("depth_margin", None)
        return d

    @field_validator("describe")
    @classmethod
    def _shape_named(cls, v):
        if "shape" not in v:
            raise ValueError("describe must include 'shape' (the noun of the question)")
        order = ["size", "color", "material", "shape"]
        return sorted(set(v), key=order.index)

    @field_validator("template", "open_template")
    @classmethod
    def _placeholders(cls, v, info):
        # checked here, when the design is read: a template the prompt builder cannot fill would otherwise
        # pass render and audit and fail in export, train or evaluate
        problem = template_problem(v, with_options=info.field_name == "template")
        if problem:
            raise ValueError(problem)
        return v


class DesignFile(Strict):
    """A whole design config file."""
    name: str
    description: str = ""
    seed: int = Field(0, ge=-MAX_SEED, le=MAX_SEED)
    image: ImageConfig = ImageConfig()
    render: RenderConfig = RenderConfig()
    camera: CameraConfig = CameraConfig()
    grid: GridConfig = GridConfig()
    factors: FactorsConfig
    design: DesignConfig = DesignConfig()
    distractors: DistractorConfig = DistractorConfig()
    splits: SplitsConfig = SplitsConfig()
    questions: QuestionsConfig = QuestionsConfig()
    assets: str | None = None   # a user asset folder (absolute once loaded), searched before the shipped library
    _digest: str | None = PrivateAttr(None)
    _json: dict | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _consistent(self):
        levels = {"shapes": self.factors.shapes, "colors": list(self.factors.colors),
                  "sizes": list(self.factors.sizes), "materials": list(self.factors.materials)}
        for i, sub in enumerate(self.design.subsets):
            for key, allowed in levels.items():
                for level in getattr(sub, key) or []:
                    if level not in allowed:
                        raise ValueError(f"design.subsets[{i}].{key}: unknown level {level!r}; "
                                         f"expected one of {', '.join(allowed) or '(none declared)'}")
            if isinstance(sub.split, dict) and abs(sum(sub.split.values()) - 1.0) > 1e-9:
                raise ValueError(f"design.subsets[{i}].split: fractions must sum to 1")
        if self.render.style == "flat" and self.factors.materials:
            raise ValueError("factors.materials: flat scenes have no materials (use render.style = '3d')")
        if "depth" in self.questions.tasks and self.render.style != "3d":
            raise ValueError("questions.tasks: 'depth' needs a depth pass, only 3d designs have one "
                             "(use render.style = '3d')")
        if self.questions.depth_margin is not None and "depth" not in self.questions.tasks:
            raise ValueError("questions.depth_margin: set only for designs that ask 'depth'")
        if "material" in self.questions.describe and not self.factors.materials:
            raise ValueError("questions.describe: 'material' named but factors.materials is empty")
        self._check_sizes()
        return self

    def _check_sizes(self) -> None:
        """The bounds of MAX_SCENES and the others above: what the planner and the renderer can do with."""
        grid, image = self.grid, self.image
        cell_w, cell_h = image.width / grid.cols, image.height / grid.rows
        if min(cell_w, cell_h) < MIN_CELL_PX:
            field = "grid.cols" if cell_w < cell_h else "grid.rows"
            raise ValueError(f"{field}: a {grid.rows}x{grid.cols} grid on a {image.width}x{image.height} image "
                             f"makes cells of {cell_w:.3g}x{cell_h:.3g} px; expected cells of at least "
                             f"{MIN_CELL_PX} px (fewer rows and cols, or a larger image)")
        if self.render.style == "flat":
            for name, size in self.factors.sizes.items():
                if size > 1:
                    raise ValueError(f"factors.sizes: size {name!r} = {size}: a flat size is a share of a cell; "
                                     "expected at most 1")
                if size * min(cell_w, cell_h) < MIN_FLAT_OBJECT_PX:
                    raise ValueError(f"factors.sizes: size {name!r} = {size} of a {min(cell_w, cell_h):.3g} px "
                                     f"cell is {size * min(cell_w, cell_h):.3g} px; expected objects of at least "
                                     f"{MIN_FLAT_OBJECT_PX} px")
        cells = grid.rows * grid.cols
        if self.relations and cells > MAX_RELATION_CELLS:
            raise ValueError(f"grid: a relation design pairs every two cells; a {grid.rows}x{grid.cols} grid has "
                             f"{cells} cells, expected at most {MAX_RELATION_CELLS} (e.g. 18 x 18)")
        # each distractor takes a free cell: outside the target's area, or apart from the pair of a relation
        free = cells - 2 if self.relations else cells - cells // 9
        if self.distractors.count > free:
            raise ValueError(f"distractors.count: {self.distractors.count} distractors need as many free cells; "
                             f"a {grid.rows}x{grid.cols} grid has {free}, expected count <= {free}")
        f = self.factors
        combinations = len(f.shapes) * len(f.colors) * len(f.sizes) * max(1, len(f.materials))
        if combinations > MAX_COMBINATIONS:
            raise ValueError(f"factors: {combinations} combinations of shape, colour, size and material; expected "
                             f"at most {MAX_COMBINATIONS}")
        per_subset = []   # each subset's product of levels, as the planner forms it (a level named twice, twice)
        for i, sub in enumerate(self.design.subsets or [SubsetConfig(name="all")]):
            n = 1
            for own, declared in ((sub.shapes, f.shapes), (sub.colors, f.colors), (sub.sizes, f.sizes),
                                  (sub.materials, f.materials)):
                n *= max(1, len(own or declared))
            if n > MAX_COMBINATIONS:
                raise ValueError(f"design.subsets[{i}]: {n} combinations of levels; expected at most "
                                 f"{MAX_COMBINATIONS}")
            per_subset.append(n)
        if self.design.kind == "balanced":
            scenes = self.design.scenes * self.distractors.variations
            product = "scenes x distractors.variations"
        else:
            per_combination = len(relation_levels(self.questions.tasks)) if self.relations else cells
            scenes = sum(per_subset) * per_combination * self.design.repeat * self.distractors.variations
            product = (f"combinations x {'relation answers' if self.relations else 'grid cells'} x repeat x "
                       "distractors.variations")
        if scenes > MAX_SCENES:
            raise ValueError(f"design: {scenes} scenes planned ({product}); expected at most {MAX_SCENES}")
        objects = scenes * (1 + self.relations + self.distractors.count)
        if objects > MAX_OBJECTS:
            raise ValueError(f"distractors.count: {scenes} scenes of {objects // scenes} objects are {objects} "
                             f"objects planned; expected at most {MAX_OBJECTS}")

    @property
    def relations(self) -> bool:
        """Whether this design asks about pairs of objects (relation tasks) instead of one object's area."""
        return any(t in RELATION_TASKS for t in self.questions.tasks)

    @property
    def depth_margin(self) -> float:
        m = self.questions.depth_margin
        return DEPTH_MARGIN if m is None else m

    def to_json(self) -> dict:
        """`model_dump(mode="json")`, made once (a frozen config; it is stamped on every scene record): read it,
        never change it."""
        if self._json is None:
            self._json = self.model_dump(mode="json")
        return self._json

    def digest(self) -> str:
        """Hash of the validated config (stable key order), stored in the manifest. The asset folder's
        location is left out: a dataset moved to another machine keeps its identity."""
        if self._digest is None:   # frozen config: compute once (it is stamped on every scene)
            blob = json.dumps(self.model_dump(mode="json", exclude={"assets"}), sort_keys=True).encode()
            self._digest = hashlib.sha256(blob).hexdigest()[:16]
        return self._digest


def parse_design(data: dict, source: str, assets: str | Path | None = None, base: Path | None = None) -> DesignFile:
    """Validate a design. Its asset folder is `assets` (--assets) if given, else its own `assets` key (relative
    to `base`, the design file's folder), else $SCENES2REAL_ASSETS; stored absolute."""
    own = data.get("assets")
    if own is not None and (not isinstance(own, str) or "\0" in own):
        raise InputError(one_line(f"{source}: field 'assets': expected the path of an asset folder, "
                                   f"got {shown(own)}"))
    if own is not None and base is not None:
        own = str(base / own)
    data = {**data, "assets": asset_folder(assets, own)}
    try:
        cfg = DesignFile.model_validate(data)
    except ValidationError as err:
        raise InputError(explain(err, DesignFile, data).line(source)) from None
    try:
        check_design(cfg, source)   # shapes are asset names: known, of the style's kind, textured ones uncrossed
    except InputError as err:
        raise InputError(one_line(str(err))) from None
    return cfg


def load_design(path: str | Path, assets: str | Path | None = None) -> DesignFile:
    """Read a TOML or YAML design file; every problem becomes one InputError line naming file and field."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected a design config, .toml or .yaml)")
    if path.suffix not in (".toml", ".yaml", ".yml"):
        raise InputError(f"{path}: unknown config format {path.suffix!r} (expected .toml, .yaml or .yml)")
    kind = path.suffix[1:].upper()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason}); expected a {kind} design config") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        first = (str(err).splitlines() or ["?"])[0]
        raise InputError(one_line(f"{path}: not valid {kind}: {first}")) from None
    except RecursionError:
        raise InputError(f"{path}: not valid {kind}: nested too deeply") from None
    except ValueError as err:   # YAML: an integer of more than 4300 digits
        raise InputError(f"{path}: not valid {kind}: {str(err).split(':')[0]}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a table of settings at the top level")
    return parse_design(data, str(path), assets, base=path.resolve().parent)


def preset_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in resources.files("blender_scenes.presets").iterdir()
                  if p.name.endswith(".toml"))


def load_preset(name: str, assets: str | Path | None = None) -> DesignFile:
    if name not in preset_names():
        raise InputError(f"unknown preset {name!r}; expected one of {', '.join(preset_names())}")
    ref = resources.files("blender_scenes.presets") / f"{name}.toml"
    return parse_design(tomllib.loads(ref.read_text(encoding="utf-8")), f"preset {name}", assets)


def load_config_or_preset(config: str | None, preset: str | None, assets: str | None = None) -> DesignFile:
    if bool(config) == bool(preset):
        raise InputError("give a design config file or --preset NAME (exactly one)")
    return load_design(config, assets) if config else load_preset(preset, assets)
