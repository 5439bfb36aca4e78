"""Checks of each scanned scene against the plan and its own pixels: its files exist and decode at the declared
size, its record matches the plan, each object's mask gives the recorded box, pixel count and area, and each
target's answers equal the labels of its mask's box (relation scenes: the relation of the target's and anchor's
mask boxes, or of their median depths in the depth pass). Bad data is reported as findings, never raised. Of the
audit it imports only scan, source, findings and relation_checks."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import DesignFile
from ..labels import RELATION_TASKS, label_of_box
from ..plan import SceneSpec
from .findings import Finding
from .relation_checks import expected_answer, pair_findings
from .scan import ATTRS, SceneObject, SceneRecord, SceneScan
from .source import Source

# a flat object's mask may hold anti-aliased edge pixels that blend to the background exactly; more than this
# share of background-coloured pixels means the mask does not cover the drawn shape
BACKGROUND_SHARE_LIMIT = 0.05

Say = Callable[..., None]   # say(message, kind="integrity", file=<the scene file>): one finding


@dataclass
class LabelStats:
    """Per split: targets whose every label the pixels confirm, and objects whose mask agrees with the record."""
    targets: int = 0
    verified_ids: set[str] = field(default_factory=set)   # record ids of the verified targets
    objects: int = 0
    objects_verified: int = 0
    background_share_max: float | None = None

    def count_object(self, obj: SceneObject, ok: bool) -> None:
        self.objects += 1
        self.objects_verified += ok
        share = obj.background_share
        if share is not None:
            prev = self.background_share_max
            self.background_share_max = share if prev is None else max(prev, share)

    def verified(self, wrong: set[str]) -> int:
        """Verified targets, less those another file (questions, COCO) labels otherwise."""
        return len(self.verified_ids - wrong)

    def to_json(self, verified: int) -> dict:
        return {"targets": self.targets, "verified": verified,
                "share": verified / self.targets if self.targets else None,
                "objects": self.objects, "objects_verified": self.objects_verified,
                "background_share_max": self.background_share_max}


@dataclass
class SceneCheck:
    findings: list[Finding]
    stats: dict[str, LabelStats]   # per split


def check_scenes(src: Source, scans: dict[str, list[SceneScan]]) -> SceneCheck:
    """Every scanned scene's files, record and masks; per split label statistics."""
    W, H = src.cfg.image.width, src.cfg.image.height
    out: list[Finding] = []
    stats: dict[str, LabelStats] = {}
    for split, found in scans.items():
        planned = {s.id: s for s in src.planned.get(split, [])}
        st = stats.setdefault(split, LabelStats())
        for scan in found:
            def say(msg, kind="integrity", file=scan.scene_file, split=split):
                out.append(Finding(kind, split, file, msg))
            spec = planned.get(scan.id)
            if spec is None:
                say(f"scene {scan.id} is not in the plan of this dataset's config and job")
            _file_findings(scan, W, H, say)
            if scan.record is None:
                continue
            rec = scan.record
            _record_findings(rec, scan, split, W, H, say)
            if spec is not None:
                _plan_findings(rec, spec, say)
            _label_findings(rec, W, H, say, st, src.cfg)
    return SceneCheck(out, stats)


def _file_findings(scan: SceneScan, W: int, H: int, say: Say) -> None:
    """The scene JSON and the image exist, the JSON reads, the image decodes at the declared size."""
    if not scan.scene_exists:
        say("missing scene JSON" + (" (its image exists)" if scan.image.exists else ""))
    elif scan.error:
        say(scan.error)
    img = scan.image
    if not img.exists:
        say("missing image", file=scan.image_file)
    elif not img.decodes:
        say("image does not decode (cv2.imread)", file=scan.image_file)
    elif img.shape != [H, W]:
        say(f"image is {img.shape[1]}x{img.shape[0]}, the config declares {W}x{H}", file=scan.image_file)


def _record_findings(rec: SceneRecord, scan: SceneScan, split: str, W: int, H: int, say: Say) -> None:
    """The record names its own file, image and size."""
    if rec.split != split or rec.id != scan.id:
        say(f"record says split {rec.split!r}, id {rec.id!r}; its file is in {split}/ as {scan.id}")
    if rec.image != f"images/{split}/{scan.id}.png":
        say(f"field 'image' is {rec.image!r}, expected 'images/{split}/{scan.id}.png'")
    if (rec.width, rec.height) != (W, H):
        say(f"fields width/height are {rec.width}x{rec.height}, the config declares {W}x{H}")


def _plan_findings(rec: SceneRecord, spec: SceneSpec, say: Say) -> None:
    """The record's objects and subset are the planned ones."""
    objs = rec.objects
    if len(objs) != len(spec.objects):
        say(f"{len(objs)} objects, the plan has {len(spec.objects)}")
    for k, (o, p) in enumerate(zip(objs, spec.objects)):
        for key in ("role", *ATTRS):
            if getattr(o, key) != getattr(p, key):
                say(f"object {k + 1} ({o.role}) {key} {getattr(o, key)!r} differs from the plan {getattr(p, key)!r}")
        if list(o.planned_cell or []) != list(p.cell):
            say(f"object {k + 1} planned_cell {o.planned_cell} differs from the plan {list(p.cell)}")
        if o.area != p.area and not spec.relation:   # relation scenes promise their relation, not areas
            say(f"object {k + 1} area {o.area!r} differs from the planned area {p.area!r}", "labels")
    if rec.relation != spec.relation:
        say(f"relation {rec.relation} differs from the plan {spec.relation}")
    if rec.subset != spec.subset:
        say(f"subset {rec.subset!r} differs from the plan {spec.subset!r}")


def _label_findings(rec: SceneRecord, W: int, H: int, say: Say, st: LabelStats, cfg: DesignFile) -> None:
    """Every object's mask agrees with its record; the target's answers are the labels of its mask's box, a
    relation's the relation of the two masks (depth: of their median depths in the depth pass)."""
    pair_ok = pair_findings(cfg, rec, say) if rec.relation else True
    for k, o in enumerate(rec.objects):
        ok = _object_ok(o, k, W, H, say, cfg.render.min_visible)
        if k == 0:   # the target
            ok = ok and pair_ok
            for q in rec.questions:
                if q.task in RELATION_TASKS:
                    want = expected_answer(cfg, rec, q.task)
                    whose = "the depth pass gives" if q.task == "depth" else "the two masks give"
                else:
                    want = label_of_box(o.mask_box, W, H, q.task) if o.mask_box else None
                    whose = "the target's mask gives"
                if q.answer != want:
                    ok = False
                    say(f"question {q.id}: answer {q.answer!r}, {whose} {want!r}", "labels")
            st.targets += 1
            if ok:
                st.verified_ids.add(rec.id)
        st.count_object(o, ok)


def _object_ok(o: SceneObject, k: int, W: int, H: int, say: Say, min_visible: float) -> bool:
    name = f"object {k + 1} ({o.role}, {o.color} {o.shape})"
    if o.mask_error:
        say(f"{name}: segmentation does not decode ({o.mask_error})", "labels")
        return False
    ok = True
    if o.mask_shape != [H, W]:
        say(f"{name}: mask is {o.mask_shape[1]}x{o.mask_shape[0]}, the image {W}x{H}", "labels")
        ok = False
    if o.mask_pixels != o.visible_pixels:
        say(f"{name}: visible_pixels {o.visible_pixels} but its mask has {o.mask_pixels}", "labels")
        ok = False
    if o.mask_box is None:
        say(f"{name}: empty mask (not visible)", "labels")
        return False
    if [float(v) for v in (o.bbox or [])] != o.mask_box:
        say(f"{name}: bbox {o.bbox} but its mask's box is {o.mask_box}", "labels")
        ok = False
    if o.area != o.mask_area:
        say(f"{name}: area {o.area!r} but its mask's box lies in {o.mask_area!r}", "labels")
        ok = False
    share = o.visible_share
    if isinstance(share, (int, float)) and share < min_visible - 1e-4:
        say(f"{name}: visible share {share:.3f} below render.min_visible {min_visible}", "labels")
        ok = False
    bg = o.background_share
    if bg is not None and bg > BACKGROUND_SHARE_LIMIT:
        say(f"{name}: {100 * bg:.1f}% of its mask shows the background colour in the image", "labels")
        ok = False
    return ok
