"""Checks of questions/{split}.jsonl against the scene records: the same questions, answers, options, images,
boxes and target (and anchor) attributes, and every answer equal to the label of the target's mask (relations: what
the two masks or the depth pass give). Bad data is reported as findings, never raised. Of the audit it imports only
scan, source, findings and relation_checks."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import DesignFile
from ..errors import InputError
from ..labels import RELATION_TASKS, label_of_box
from ..questions import QuestionRecord, read_questions
from .findings import Finding, reader_message
from .relation_checks import expected_answer
from .scan import ATTRS, SceneQuestion, SceneRecord, SceneScan, records_of
from .source import Source


@dataclass
class QuestionCheck:
    findings: list[Finding]
    records: dict[str, list[QuestionRecord]]   # per split, as read ([] when the file does not read)
    wrong: set[tuple[str, str]]                # (split, record id) whose target has a wrong answer in the file


def check_questions(src: Source, scans: dict[str, list[SceneScan]]) -> QuestionCheck:
    """Each split's question file against the scene records of that split."""
    check = QuestionCheck([], {}, set())
    for split in scans:
        rel = f"questions/{split}.jsonl"
        path = src.layout.questions(split)
        try:
            qs = read_questions(path)
        except InputError as err:
            check.findings.append(Finding("integrity", split, rel, reader_message(err, path)))
            check.records[split] = []
            continue
        check.records[split] = qs
        expected = {q.id: (scan.record, q) for _, scan in records_of(scans, split) for q in scan.record.questions}
        seen: set = set()
        for line, q in enumerate(qs, 1):
            where = f"{rel}:{line}"
            if q.id in seen:
                check.findings.append(Finding("integrity", split, where, f"question {q.id} appears twice"))
            seen.add(q.id)
            if q.id not in expected:
                check.findings.append(Finding("integrity", split, where, f"question {q.id} is in no scene JSON of "
                                              f"{split}"))
                continue
            rec, sq = expected[q.id]
            _compare_question(q, rec, sq, split, where, src.cfg, check)
        missing = sorted(set(expected) - seen)
        if missing:
            check.findings.append(Finding("integrity", split, rel, f"{len(missing)} question(s) of the scene JSON "
                                          f"missing, e.g. {', '.join(missing[:3])}"))
    return check


def _compare_question(q: QuestionRecord, rec: SceneRecord, sq: SceneQuestion, split: str, where: str,
                      cfg: DesignFile, check: QuestionCheck) -> None:
    """One record of the question file against the scene record that holds the same question."""
    def say(kind: str, message: str) -> None:
        check.findings.append(Finding(kind, split, where, f"question {q.id}: {message}"))

    W, H = cfg.image.width, cfg.image.height
    target = rec.objects[0]
    if q.task in RELATION_TASKS:
        want, whose = expected_answer(cfg, rec, q.task), "the masks give"
    else:
        want = label_of_box(target.mask_box, W, H, q.task) if target.mask_box else None
        whose = "the target's mask gives"
    if q.answer != sq.answer or q.answer != want:
        check.wrong.add((split, rec.id))
        say("labels", f"answer {q.answer!r}; the scene JSON says {sq.answer!r}, {whose} {want!r}")
    if q.task in RELATION_TASKS:
        anchor = rec.objects[1] if len(rec.objects) > 1 else None
        box = [float(v) for v in (anchor.bbox or [])] if anchor else None
        if q.anchor is None or [float(v) for v in q.anchor.get("bbox") or []] != box:
            say("integrity", f"anchor.bbox {(q.anchor or {}).get('bbox')} differs from the scene JSON {box}")
    if q.task != sq.task or q.options != sq.options:
        say("integrity", "task/options differ from the scene JSON")
    if q.image != rec.image:
        say("integrity", f"image {q.image!r}, the scene JSON says {rec.image!r}")
    if [float(v) for v in q.target.get("bbox") or []] != [float(v) for v in target.bbox or []]:
        say("integrity", f"target.bbox {q.target.get('bbox')} differs from the scene JSON {target.bbox}")
    for key in ATTRS:
        if key in q.target and q.target[key] != getattr(target, key):
            say("integrity", f"target.{key} {q.target[key]!r} differs from the scene JSON {getattr(target, key)!r}")
    if q.options and q.answer not in q.options:
        say("labels", f"answer {q.answer!r} is not among its options")
