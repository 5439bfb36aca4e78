"""Checks of annotations/{split}.json against the scene records: it loads through the project's one COCO
reader (blender_scenes.cocofile) and holds the records' images and objects: boxes, masks (the same RLE), pixel
areas, categories, colours, sizes and area labels. Bad data is reported as findings, never raised. Of the
audit it imports only scan, source and findings."""
from __future__ import annotations

from dataclasses import dataclass

from pycocotools.coco import COCO

from ..cocofile import load_instances
from ..errors import InputError
from .findings import Finding, reader_message
from .scan import SceneObject, SceneScan, records_of, segmentation_digest
from .source import Source


@dataclass
class CocoCheck:
    findings: list[Finding]
    indexes: dict[str, COCO]       # per split, the files that loaded
    wrong: set[tuple[str, str]]    # (split, scene id) whose target's COCO area label differs from its mask's


def check_coco(src: Source, scans: dict[str, list[SceneScan]]) -> CocoCheck:
    """Each split's COCO file against the scene records of that split."""
    check = CocoCheck([], {}, set())
    for split in scans:
        rel = f"annotations/{split}.json"
        path = src.layout.annotations(split)
        if not path.is_file():
            check.findings.append(Finding("integrity", split, rel, "file not found"))
            continue
        try:
            coco = load_instances(path, keep_masks=True)   # masks kept: their RLE is compared with the records'
        except InputError as err:
            check.findings.append(Finding("integrity", split, rel, f"does not load: {reader_message(err, path)}"))
            continue
        check.indexes[split] = coco
        cats = {c["id"]: c for c in coco.loadCats(coco.getCatIds())}
        _check_file(coco, cats, records_of(scans, split), split, rel, check)
    return check


def _check_file(coco: COCO, cats: dict, scenes: list[tuple[str, SceneScan]], split: str, rel: str,
                check: CocoCheck) -> None:
    """Every scene record of the split has its image entry and annotations; no image entry is left over."""
    def say(kind: str, message: str) -> None:
        check.findings.append(Finding(kind, split, rel, message))

    by_file = {img["file_name"]: img for img in coco.dataset.get("images", [])}
    scene_images = set()
    for _, scan in scenes:
        rec = scan.record
        scene_images.add(rec.image)
        img = by_file.get(rec.image)
        if img is None:
            say("integrity", f"no image entry for {rec.image} (scene {scan.id})")
            continue
        if (img.get("width"), img.get("height")) != (rec.width, rec.height):
            say("integrity", f"image {rec.image}: size differs from the scene JSON")
        anns = sorted(coco.imgToAnns.get(img["id"], []), key=lambda a: a["id"])
        if len(anns) != len(rec.objects):
            say("integrity", f"image {rec.image}: {len(anns)} annotations, the scene JSON has {len(rec.objects)} "
                "objects")
            continue
        for a, o in zip(anns, rec.objects):
            diffs = _annotation_diffs(a, o, cats)
            if "area_label" in diffs and o.role == "target":
                check.wrong.add((split, scan.id))
            if diffs:
                say("labels" if "area_label" in diffs else "integrity",
                    f"annotation {a['id']} ({rec.image}): {', '.join(diffs)} differ from the scene JSON / its mask")
    extra = sorted(set(by_file) - scene_images)
    if extra:
        say("integrity", f"{len(extra)} image entr(y/ies) without a readable scene JSON, e.g. {extra[0]}")


def _annotation_diffs(a: dict, o: SceneObject, cats: dict) -> list[str]:
    """The fields of one annotation that differ from its object in the scene record (or from its mask)."""
    cat = cats.get(a.get("category_id"), {})
    same = {
        "bbox": [float(v) for v in a.get("bbox") or []] == [float(v) for v in o.bbox or []],
        "segmentation": segmentation_digest(a.get("segmentation")) == o.seg_digest,
        "area": a.get("area") == o.visible_pixels,
        "category": cat.get("shape", cat.get("name")) == o.shape,
        "color": a.get("color") == o.color,
        "size": a.get("size") == o.size,
        "material": a.get("material") == o.material,
        "area_label": a.get("area_label") == o.mask_area,
    }
    return [k for k, ok in same.items() if not ok]
