"""What the masks and the depth pass say of a relation scene (issue 13): the answer each relation question must
have, the level its answer balances, and the findings of one scene's pair. The rule is labels.relation_of_boxes /
labels.closer_of on the audit's own mask boxes and median depths (scan.py), never the recorded boxes or the plan.
Of the audit it imports only scan."""
from __future__ import annotations

from collections.abc import Callable

from ..config import DesignFile
from ..labels import closer_of, relation_of_boxes
from ..questions import describe
from ..relations import DEPTH_ROLES, level_name
from .scan import SceneObject, SceneRecord


def object_name(cfg: DesignFile, o: SceneObject) -> str:
    """How a question names this object ('red cube'), from its recorded attributes."""
    attrs = {"size": o.size, "color": o.color, "material": o.material, "shape": o.display}
    return describe({k: v for k, v in attrs.items() if isinstance(v, str)}, cfg.questions.describe)


def measured_role(cfg: DesignFile, rec: SceneRecord, task: str) -> str | None:
    """The pair's relation from the masks (depth: the role of the closer object from the depth pass)."""
    if len(rec.objects) < 2:
        return None
    target, anchor = rec.objects[:2]
    if task == "depth":
        if target.mask_depth is None or anchor.mask_depth is None:
            return None
        closer = closer_of(target.mask_depth, anchor.mask_depth, cfg.depth_margin)
        return None if closer is None else DEPTH_ROLES[closer]
    if target.mask_box is None or anchor.mask_box is None:
        return None
    return relation_of_boxes(target.mask_box, anchor.mask_box, task)


def expected_answer(cfg: DesignFile, rec: SceneRecord, task: str) -> str | None:
    """The answer a relation question of this scene must have: the label, or for depth the closer one's name."""
    role = measured_role(cfg, rec, task)
    if task != "depth" or role is None:
        return role
    return object_name(cfg, rec.objects[DEPTH_ROLES.index(role)])


def answer_level(cfg: DesignFile, rec: SceneRecord, task: str, answer) -> str:
    """The balanced level a recorded answer stands for ('left_right:left', 'depth:target'); depth answers are
    names, read as the role of the object so named."""
    if task == "depth" and len(rec.objects) >= 2:
        names = [object_name(cfg, o) for o in rec.objects[:2]]
        answer = DEPTH_ROLES[names.index(answer)] if answer in names else answer
    return level_name(task, str(answer))


def pair_findings(cfg: DesignFile, rec: SceneRecord, say: Callable[..., None]) -> bool:
    """A relation scene's pair: the planned answer is the measured one, and each recorded median depth is the
    depth pass's. Returns whether all hold."""
    ok = True
    planned = rec.relation if isinstance(rec.relation, dict) else {}
    task = planned.get("task")
    if rec.depth_error:
        say(f"{rec.depth_file}: {rec.depth_error}", "integrity")
        ok = False
    if task == "depth":
        for k, o in enumerate(rec.objects):
            if o.mask_depth is not None and o.depth != o.mask_depth:
                say(f"object {k + 1} ({o.role}): depth {o.depth} but the depth pass gives {o.mask_depth}", "labels")
                ok = False
    if task:
        got = measured_role(cfg, rec, task)
        if got != planned.get("answer"):
            say(f"planned {task} {planned.get('answer')!r}, the masks{' and depth pass' if task == 'depth' else ''} "
                f"give {got!r}", "labels")
            ok = False
    return ok
