"""Integrity, label and split-hygiene checks of scanned scenes against the plan, the COCO annotations and the
question records. Each check returns findings; none raises on bad data (bad data is what it reports)."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections import defaultdict
from pathlib import Path

from ..errors import InputError
from ..labels import label_of_box
from ..plan import SceneSpec
from ..questions import read_questions
from .findings import Finding
from .source import Source

ATTRS = ("shape", "color", "size", "material")


def scene_findings(src: Source, scans: dict[str, list[dict]]) -> tuple[list[Finding], dict]:
    """Files exist and decode at the declared size; each record matches the plan; each object's mask gives
    the recorded box, pixel count and area; each target's answers equal the labels of its mask's box.
    Returns findings and per-split label statistics."""
    cfg = src.cfg
    W, H = cfg.image.width, cfg.image.height
    out: list[Finding] = []
    stats: dict[str, dict] = {}
    for split, rows in scans.items():
        planned = {s.id: s for s in src.planned.get(split, [])}
        st = stats.setdefault(split, {"targets": 0, "verified_ids": set(), "objects": 0, "objects_verified": 0,
                                      "background_share_max": None})
        for r in rows:
            def f(msg, kind="integrity", file=r["scene_file"], split=split):
                out.append(Finding(kind, split, file, msg))
            spec = planned.get(r["id"])
            if spec is None:
                f(f"scene {r['id']} is not in the plan of this dataset's config and job")
            if not r["scene_exists"]:
                f("missing scene JSON" + (" (its image exists)" if r["image"]["exists"] else ""))
            elif r["error"]:
                f(r["error"])
            img = r["image"]
            if not img["exists"]:
                f("missing image", file=r["image_file"])
            elif not img["decodes"]:
                f("image does not decode (cv2.imread)", file=r["image_file"])
            elif img["shape"] != [H, W]:
                f(f"image is {img['shape'][1]}x{img['shape'][0]}, the config declares {W}x{H}", file=r["image_file"])
            rec = r["record"]
            if rec is None:
                continue
            _record_findings(rec, r, split, spec, W, H, f, st, cfg.render.min_visible)
    return out, stats


def _record_findings(rec, r, split, spec: SceneSpec | None, W, H, f, st, min_visible) -> None:
    if rec["split"] != split or rec["id"] != r["id"]:
        f(f"record says split {rec['split']!r}, id {rec['id']!r}; its file is in {split}/ as {r['id']}")
    if rec["image"] != f"images/{split}/{r['id']}.png":
        f(f"field 'image' is {rec['image']!r}, expected 'images/{split}/{r['id']}.png'")
    if (rec["width"], rec["height"]) != (W, H):
        f(f"fields width/height are {rec['width']}x{rec['height']}, the config declares {W}x{H}")
    objs = rec["objects"]
    if spec is not None:
        if len(objs) != len(spec.objects):
            f(f"{len(objs)} objects, the plan has {len(spec.objects)}")
        for k, (o, p) in enumerate(zip(objs, spec.objects)):
            for key in ("role", *ATTRS):
                if o.get(key) != getattr(p, key):
                    f(f"object {k + 1} ({o.get('role')}) {key} {o.get(key)!r} differs from the plan "
                      f"{getattr(p, key)!r}")
            if list(o.get("planned_cell") or []) != list(p.cell):
                f(f"object {k + 1} planned_cell {o.get('planned_cell')} differs from the plan {list(p.cell)}")
            if o.get("area") != p.area:
                f(f"object {k + 1} area {o.get('area')!r} differs from the planned area {p.area!r}", "labels")
        if rec.get("subset") != spec.subset:
            f(f"subset {rec.get('subset')!r} differs from the plan {spec.subset!r}")
    for k, o in enumerate(objs):
        is_target = k == 0
        ok = _object_ok(o, k, W, H, f, min_visible)
        if is_target:
            for q in rec["questions"]:
                want = label_of_box(o["mask_box"], W, H, q["task"]) if o.get("mask_box") else None
                if q["answer"] != want:
                    ok = False
                    f(f"question {q['id']}: answer {q['answer']!r}, the target's mask gives {want!r}", "labels")
            st["targets"] += 1
            if ok:
                st["verified_ids"].add(rec["id"])
        st["objects"] += 1
        st["objects_verified"] += ok
        share = o.get("background_share")
        if share is not None:
            prev = st["background_share_max"]
            st["background_share_max"] = share if prev is None else max(prev, share)


# a flat object's mask may hold anti-aliased edge pixels that blend to the background exactly; more than this
# share of background-coloured pixels means the mask does not cover the drawn shape
BACKGROUND_SHARE_LIMIT = 0.05


def _object_ok(o, k, W, H, f, min_visible) -> bool:
    name = f"object {k + 1} ({o.get('role')}, {o.get('color')} {o.get('shape')})"
    if o.get("mask_error"):
        f(f"{name}: segmentation does not decode ({o['mask_error']})", "labels")
        return False
    ok = True
    if o["mask_shape"] != [H, W]:
        f(f"{name}: mask is {o['mask_shape'][1]}x{o['mask_shape'][0]}, the image {W}x{H}", "labels")
        ok = False
    if o["mask_pixels"] != o.get("visible_pixels"):
        f(f"{name}: visible_pixels {o.get('visible_pixels')} but its mask has {o['mask_pixels']}", "labels")
        ok = False
    if o["mask_box"] is None:
        f(f"{name}: empty mask (not visible)", "labels")
        return False
    if [float(v) for v in (o.get("bbox") or [])] != o["mask_box"]:
        f(f"{name}: bbox {o.get('bbox')} but its mask's box is {o['mask_box']}", "labels")
        ok = False
    if o.get("area") != o["mask_area"]:
        f(f"{name}: area {o.get('area')!r} but its mask's box lies in {o['mask_area']!r}", "labels")
        ok = False
    share = o.get("visible_share")
    if isinstance(share, (int, float)) and share < min_visible - 1e-4:
        f(f"{name}: visible share {share:.3f} below render.min_visible {min_visible}", "labels")
        ok = False
    bg = o.get("background_share")
    if bg is not None and bg > BACKGROUND_SHARE_LIMIT:
        f(f"{name}: {100 * bg:.1f}% of its mask shows the background colour in the image", "labels")
        ok = False
    return ok


def _targets_by_scene(scans: dict[str, list[dict]]) -> dict[tuple[str, str], dict]:
    return {(s, r["id"]): r["record"] for s, rows in scans.items() for r in rows if r["record"]}


def question_findings(src: Source, scans: dict[str, list[dict]]) -> tuple[list[Finding], dict[str, list], set]:
    """questions/{split}.jsonl against the scene JSON: same questions, answers, options, boxes; every answer
    equal to the label of the target's mask. Returns findings and the records read per split."""
    W, H = src.cfg.image.width, src.cfg.image.height
    out: list[Finding] = []
    records: dict[str, list] = {}
    wrong: set = set()   # (split, scene id) whose target has a wrong answer in the question file
    recs = _targets_by_scene(scans)
    for split in scans:
        rel = f"questions/{split}.jsonl"
        path = src.layout.questions(split)
        expected = {q["id"]: (rec, q) for (s, _), rec in recs.items() if s == split for q in rec["questions"]}
        try:
            qs = read_questions(path)
        except InputError as err:
            out.append(Finding("integrity", split, rel, str(err).removeprefix(f"{path}").lstrip(": ")))
            records[split] = []
            continue
        records[split] = qs
        seen = set()
        for line, q in enumerate(qs, 1):
            where = f"{rel}:{line}"
            if q.id in seen:
                out.append(Finding("integrity", split, where, f"question {q.id} appears twice"))
            seen.add(q.id)
            if q.id not in expected:
                out.append(Finding("integrity", split, where, f"question {q.id} is in no scene JSON of {split}"))
                continue
            rec, sq = expected[q.id]
            target = rec["objects"][0]
            want = label_of_box(target["mask_box"], W, H, q.task) if target.get("mask_box") else None
            if q.answer != sq["answer"] or q.answer != want:
                wrong.add((split, rec["id"]))
                out.append(Finding("labels", split, where, f"question {q.id}: answer {q.answer!r}; the scene JSON "
                                   f"says {sq['answer']!r}, the target's mask gives {want!r}"))
            if q.task != sq["task"] or q.options != sq["options"]:
                out.append(Finding("integrity", split, where,
                                   f"question {q.id}: task/options differ from the scene JSON"))
            if q.image != rec["image"]:
                out.append(Finding("integrity", split, where, f"question {q.id}: image {q.image!r}, the scene JSON "
                                   f"says {rec['image']!r}"))
            if [float(v) for v in q.target.get("bbox") or []] != [float(v) for v in target.get("bbox") or []]:
                out.append(Finding("integrity", split, where, f"question {q.id}: target.bbox {q.target.get('bbox')} "
                                   f"differs from the scene JSON {target.get('bbox')}"))
            for key in ATTRS:
                if key in q.target and q.target[key] != target.get(key):
                    out.append(Finding("integrity", split, where, f"question {q.id}: target.{key} "
                                       f"{q.target[key]!r} differs from the scene JSON {target.get(key)!r}"))
            if q.options and q.answer not in q.options:
                out.append(Finding("labels", split, where,
                                   f"question {q.id}: answer {q.answer!r} is not among its options"))
        missing = sorted(set(expected) - seen)
        if missing:
            out.append(Finding("integrity", split, rel, f"{len(missing)} question(s) of the scene JSON missing, "
                               f"e.g. {', '.join(missing[:3])}"))
    return out, records, wrong


def load_coco(path: Path):
    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(io.StringIO()):   # pycocotools prints progress
        return COCO(str(path))


def coco_findings(src: Source, scans: dict[str, list[dict]]) -> tuple[list[Finding], dict, set]:
    """annotations/{split}.json loads in pycocotools and holds the scene JSON's images and objects: boxes,
    masks (same RLE), pixel areas, categories, colours, sizes and area labels."""
    out: list[Finding] = []
    cocos = {}
    wrong: set = set()   # (split, scene id) whose target's COCO area label differs from its mask's
    recs = _targets_by_scene(scans)
    for split in scans:
        rel = f"annotations/{split}.json"
        path = src.layout.annotations(split)
        if not path.is_file():
            out.append(Finding("integrity", split, rel, "file not found"))
            continue
        try:
            coco = load_coco(path)
            cats = {c["id"]: c for c in coco.loadCats(coco.getCatIds())}
        except Exception as err:   # noqa: BLE001  any unreadable COCO file is a finding
            out.append(Finding("integrity", split, rel, f"does not load in pycocotools: {type(err).__name__}: "
                               f"{str(err).splitlines()[0][:160] if str(err) else ''}"))
            continue
        cocos[split] = coco
        by_file = {img["file_name"]: img for img in coco.dataset.get("images", [])}
        scene_images = set()
        for (s, sid), rec in recs.items():
            if s != split:
                continue
            scene_images.add(rec["image"])
            img = by_file.get(rec["image"])
            if img is None:
                out.append(Finding("integrity", split, rel, f"no image entry for {rec['image']} (scene {sid})"))
                continue
            if (img.get("width"), img.get("height")) != (rec["width"], rec["height"]):
                out.append(Finding("integrity", split, rel, f"image {rec['image']}: size differs from the scene JSON"))
            anns = sorted(coco.imgToAnns.get(img["id"], []), key=lambda a: a["id"])
            if len(anns) != len(rec["objects"]):
                out.append(Finding("integrity", split, rel, f"image {rec['image']}: {len(anns)} annotations, "
                                   f"the scene JSON has {len(rec['objects'])} objects"))
                continue
            for a, o in zip(anns, rec["objects"]):
                seg = hashlib.blake2b(json.dumps(a.get("segmentation"), sort_keys=True).encode(),
                                      digest_size=8).hexdigest()
                cat = cats.get(a.get("category_id"), {})
                diffs = [k for k, ok in (
                    ("bbox", [float(v) for v in a.get("bbox") or []] == [float(v) for v in o.get("bbox") or []]),
                    ("segmentation", seg == o["seg_digest"]),
                    ("area", a.get("area") == o.get("visible_pixels")),
                    ("category", cat.get("shape", cat.get("name")) == o.get("shape")),
                    ("color", a.get("color") == o.get("color")),
                    ("size", a.get("size") == o.get("size")),
                    ("material", a.get("material") == o.get("material")),
                    ("area_label", a.get("area_label") == o.get("mask_area")),
                ) if not ok]
                if "area_label" in diffs and o.get("role") == "target":
                    wrong.add((split, sid))
                if diffs:
                    out.append(Finding("labels" if "area_label" in diffs else "integrity", split, rel,
                                       f"annotation {a['id']} ({rec['image']}): {', '.join(diffs)} differ from the "
                                       f"scene JSON / its mask"))
        extra = sorted(set(by_file) - scene_images)
        if extra:
            out.append(Finding("integrity", split, rel, f"{len(extra)} image entr(y/ies) without a readable scene "
                               f"JSON, e.g. {extra[0]}"))
    return out, cocos, wrong


def hygiene_findings(src: Source, scans: dict[str, list[dict]], questions: dict[str, list],
                     cocos: dict) -> tuple[list[Finding], dict]:
    """Held-out combinations absent from train/val (scene JSON, question targets and COCO annotations), no
    image path in two splits, no identical pixels in two splits; identical images listed."""
    out: list[Finding] = []
    held = list(src.cfg.splits.heldout)
    info: dict = {"heldout_factors": held, "heldout_combinations": [], "leaks": 0, "duplicate_groups": []}
    recs = _targets_by_scene(scans)
    if held:
        combos = {tuple(getattr(s.target, k) for k in held) for s in _all_planned_test(src)}
        combos |= {tuple(rec["objects"][0].get(k) for k in held) for (s, _), rec in recs.items() if s == "test"}
        info["heldout_combinations"] = sorted([list(map(str, c)) for c in combos])

        def leak(split, file, what, attrs):
            combo = tuple(attrs.get(k) for k in held)
            if combo in combos:
                info["leaks"] += 1
                desc = ", ".join(f"{k}={v}" for k, v in zip(held, combo))
                out.append(Finding("hygiene", split, file, f"held-out combination {desc} (a test combination) "
                                   f"leaks into {split}: {what}"))
        for (split, sid), rec in recs.items():
            if split == "test":
                continue
            for k, o in enumerate(rec["objects"]):
                leak(split, f"scenes/{split}/{sid}.json", f"object {k + 1} ({o.get('role')})", o)
        for split, qs in questions.items():
            if split == "test":
                continue
            for line, q in enumerate(qs, 1):
                if all(k in q.target for k in held):
                    leak(split, f"questions/{split}.jsonl:{line}", f"question {q.id} target", q.target)
        for split, coco in cocos.items():
            if split == "test":
                continue
            cats = {c["id"]: c for c in coco.dataset.get("categories", [])}
            for a in coco.dataset.get("annotations", []):
                attrs = {**a, "shape": cats.get(a.get("category_id"), {}).get("shape")}
                leak(split, f"annotations/{split}.json", f"annotation {a.get('id')}", attrs)
    # the same image path in two splits
    where: dict[str, set] = defaultdict(set)
    for (split, _), rec in recs.items():
        where[rec["image"]].add(split)
    for split, qs in questions.items():
        for q in qs:
            where[q.image].add(split)
    for split, coco in cocos.items():
        for img in coco.dataset.get("images", []):
            where[img.get("file_name")].add(split)
    for image, splits in sorted(where.items()):
        if len(splits) > 1:
            out.append(Finding("hygiene", None, image, f"image referenced by {len(splits)} splits: "
                               f"{', '.join(sorted(splits))}"))
    # identical pixels
    groups: dict[str, list] = defaultdict(list)
    for split, rows in scans.items():
        for r in rows:
            if r["image"]["hash"]:
                groups[r["image"]["hash"]].append((split, r["image_file"]))
    for members in groups.values():
        if len(members) > 1:
            splits = sorted({s for s, _ in members})
            info["duplicate_groups"].append({"splits": splits, "images": [p for _, p in members]})
            if len(splits) > 1:
                out.append(Finding("hygiene", None, members[0][1], f"identical pixels in {len(splits)} splits: "
                                   f"{', '.join(p for _, p in members[:4])}"))
    return out, info


def _all_planned_test(src: Source) -> list[SceneSpec]:
    return [s for s in src.scenes if s.split == "test"]
