"""The one answer parser: a model's free text -> a label of the task, or None (unparseable).

Deterministic and table-tested (tests/test_parse.py). How it reads an answer:

1. An option marker alone ("B", "(2)", "Option 3", "Answer: c") picks that option (letters a.., numbers 1..)
   when the question had options; a marker before text ("B) top left") must agree with the text.
2. Otherwise the text is cut into *phrases*: runs of position words (top/upper, bottom/lower, left, right,
   center/centre/middle/central/mid) joined only by filler words ("the", "of", "side", "corner", ...).
   Sentence punctuation and any other word end a phrase. So "center left" is one phrase, never "center".
   "right" as an intensifier ("right in the middle", "right at the top") is not a position word.
3. Each phrase names a set of the nine areas: "top left" -> {top left}; "middle" -> {center};
   "left" -> the left column; "top" -> the top row. Word order does not matter ("left top" = "top left").
   Two different words on one axis ("top ... bottom") or a third word ("top left center") -> no area.
4. The sets of all phrases are intersected, then projected onto the task's labels (horizontal keeps the
   column, vertical the row). Exactly one label -> that label; none or several -> None.
   So a horizontal question answered "top left" reads "left"; an area9 question answered "top" is None
   (a row is not an area); "top left and center" is None (two different areas); refusals are None.
5. Relation tasks read direction words anywhere in the answer: `left_right` "left" / "to the left" /
   "on the left of" (and "right"), `above_below` "above" / "over" / "on top of" / "higher" (and "below" /
   "under" / "beneath" / "lower"). `depth` reads the one option (an object's name, plural allowed) the
   answer names, or an option marker. Words of both directions, both names, a negation ("not", "can't",
   "neither") or, for depth, a word of distance ("farther", "behind") make the answer None: a model that
   hedges or refuses is not given the benefit of the doubt.
6. `mc` (a benchmark's own options): an answer that is one option (any case and punctuation) is that option,
   even when it reads like a marker ("3" among counts); then markers as in 1 ("(B)", "B.", "Option 2"); then,
   for a yes/no or true/false pair, the polarity of the first word ("Yes, it is" / "False."); else the one
   option the answer contains (longest options first). Two options named, or none, is None.
"""
from __future__ import annotations

import re

from blender_scenes.labels import ALL_TASKS, AREAS, label_of_area

_VERTICAL = {"top": "top", "upper": "top", "uppermost": "top", "topmost": "top",
             "bottom": "bottom", "lower": "bottom", "lowermost": "bottom", "bottommost": "bottom"}
_HORIZONTAL = {"left": "left", "leftmost": "left", "lefthand": "left",
               "right": "right", "rightmost": "right", "righthand": "right"}
_CENTER = {"center", "centre", "middle", "central", "centrally", "mid", "centered", "centred", "centermost"}
# Words that may sit inside one position phrase ("top of the left side", "middle-left corner").
_FILLER = {"the", "of", "in", "on", "at", "to", "side", "sides", "corner", "part", "portion", "area",
           "region", "section", "half", "third", "hand", "edge", "quadrant", "cell", "square", "most"}

_AFTER_INTENSIFIER = {"in", "at", "on", "by", "near", "next", "above", "below"}
_BEFORE_POSITIONAL_RIGHT = {"the", "to", "on", "at", "far"}

_ROWS = {"top": 0, "center": 1, "bottom": 2}
_COLS = {"left": 0, "center": 1, "right": 2}

_TOKEN = re.compile(r"[a-z]+|[.;!?\n]")
_MARKER_ONLY = re.compile(
    r"^\W*(?:(?:the\s+)?(?:correct\s+)?(?:option|choice|answer)(?:\s+is)?\s*[:#]?\s*)?"
    r"\(?\s*([a-z]|\d{1,2})\s*\)?\W*$")
_MARKER_LEAD = re.compile(r"^\W*(?:option\s+)?\(?([a-z]|\d{1,2})\s*[).:]\s+(.+)$", re.S)


def _phrase_areas(words: list[str]) -> set[str]:
    """The areas one phrase can name (empty when the phrase contradicts itself)."""
    rows = {_VERTICAL[w] for w in words if w in _VERTICAL}
    cols = {_HORIZONTAL[w] for w in words if w in _HORIZONTAL}
    center = any(w in _CENTER for w in words)
    if len(rows) > 1 or len(cols) > 1 or (rows and cols and center):
        return set()
    if center and not rows and not cols:
        return {"center"}
    if center:  # the centre word names the other axis: "top center", "center left"
        (rows if cols else cols).add("center")
    row_ids = [_ROWS[r] for r in rows] or [0, 1, 2]
    col_ids = [_COLS[c] for c in cols] or [0, 1, 2]
    return {AREAS[3 * r + c] for r in row_ids for c in col_ids}


def _is_intensifier(tokens: list[str], i: int) -> bool:
    """'right' as in "right in the middle" / "right at the top": not after "the"/"to"/"on", not inside
    a phrase, and followed by a preposition. "on the right in the corner" keeps its 'right'."""
    return (tokens[i] == "right" and i + 1 < len(tokens) and tokens[i + 1] in _AFTER_INTENSIFIER
            and (i == 0 or tokens[i - 1] not in _BEFORE_POSITIONAL_RIGHT))


def _phrases(text: str) -> list[list[str]]:
    """Runs of position words, joined only by fillers; other words and sentence ends cut a run."""
    phrases: list[list[str]] = []
    current: list[str] = []
    tokens = _TOKEN.findall(text.lower())
    for i, token in enumerate(tokens):
        if token in _VERTICAL or token in _HORIZONTAL or token in _CENTER:
            if not current and _is_intensifier(tokens, i):
                continue
            current.append(token)
        elif token in _FILLER:
            continue
        elif current:
            phrases.append(current)
            current = []
    if current:
        phrases.append(current)
    return phrases


# Direction words of the 2D relation tasks ("on top of" reads through "top").
_RELATION_WORDS = {
    "left_right": {"left": "left", "leftmost": "left", "lefthand": "left", "leftward": "left",
                   "right": "right", "rightmost": "right", "righthand": "right", "rightward": "right"},
    "above_below": {"above": "above", "over": "above", "top": "above", "atop": "above", "higher": "above",
                    "upper": "above", "below": "below", "under": "below", "beneath": "below",
                    "underneath": "below", "lower": "below", "bottom": "below"},
}
# A negated or refused relation ("not to the left", "I can't tell", "neither") says no direction.
_NEGATION = re.compile(r"\b(?:not|no|neither|nor|cannot|unable|impossible|unclear|unsure)\b|n['’]t\b")
# Depth answers name the closer object; naming one as farther inverts the answer, so it is not read.
_DISTANCE = re.compile(r"\b(?:farther|further|farthest|furthest|behind)\b")


def _relation_label(text: str, task: str) -> str | None:
    """The one direction the answer's words name, or None (none, both, or a negation)."""
    if _NEGATION.search(text):
        return None
    words = _RELATION_WORDS[task]
    tokens = _TOKEN.findall(text)
    found = {words[t] for i, t in enumerate(tokens) if t in words and not _is_intensifier(tokens, i)}
    return found.pop() if len(found) == 1 else None


def _depth_label(text: str, options: list[str] | None) -> str | None:
    """The one option (object name) the answer names; a name inside a longer named option ("dog" in
    "hot dog") does not count on its own."""
    if not options or _NEGATION.search(text) or _DISTANCE.search(text):
        return None
    taken: list[tuple[int, int]] = []
    named = set()
    for option in sorted(set(options), key=len, reverse=True):
        pattern = r"\b" + r"[\s_-]+".join(map(re.escape, option.lower().split())) + r"(?:e?s)?\b"
        for match in re.finditer(pattern, text):
            if not any(start < match.end() and match.start() < end for start, end in taken):
                taken.append(match.span())
                named.add(option)
    return named.pop() if len(named) == 1 else None


# true/false pairs of options: an answer's first word says which ("Yes, the cat is...", "false.")
_POSITIVE, _NEGATIVE = {"yes", "true", "correct", "right"}, {"no", "false", "incorrect", "wrong"}
_FIRST_WORD = re.compile(r"^\W*([a-z]+)")


def _fold(text: str) -> str:
    """Lower case, one space between words, no surrounding punctuation: how options and answers are compared."""
    return " ".join(re.sub(r"[^\w\s'-]", " ", text.lower()).split())


def _mc_label(text: str, options: list[str] | None) -> str | None:
    """The option a multiple-choice answer names: the whole answer is one option; or, for a yes/no (true/false)
    pair, the first word's polarity; or the one option whose words the answer contains (longest first, a
    shorter option inside a longer named one not counted). Several options named -> None."""
    if not options:
        return None
    folded = {_fold(option): option for option in options}
    answer = _fold(text)
    if answer in folded:
        return folded[answer]
    polar = {key: option for key, option in folded.items() if key in _POSITIVE | _NEGATIVE}
    if len(polar) == 2 and len(options) == 2:
        first = _FIRST_WORD.match(text.lower())
        word = first.group(1) if first else ""
        for key, option in polar.items():
            if (word in _POSITIVE and key in _POSITIVE) or (word in _NEGATIVE and key in _NEGATIVE):
                return option
        return None
    taken: list[tuple[int, int]] = []
    named = set()
    for key in sorted(folded, key=len, reverse=True):
        if not key:
            continue
        for match in re.finditer(r"(?<![\w'-])" + re.escape(key) + r"(?![\w'-])", answer):
            if not any(start < match.end() and match.start() < end for start, end in taken):
                taken.append(match.span())
                named.add(folded[key])
    return named.pop() if len(named) == 1 else None


def _text_label(text: str, task: str, options: list[str] | None = None) -> str | None:
    if task == "mc":
        return _mc_label(text, options)
    if task == "depth":
        return _depth_label(text, options)
    if task in _RELATION_WORDS:
        return _relation_label(text, task)
    return _area_label(text, task)


def _area_label(text: str, task: str) -> str | None:
    phrases = _phrases(text)
    if not phrases:
        return None
    areas = set(AREAS)
    for words in phrases:
        areas &= _phrase_areas(words)
    labels = {label_of_area(a, task) for a in areas}
    return labels.pop() if len(labels) == 1 else None


def _option_at(marker: str, options: list[str] | None) -> str | None:
    if not options:
        return None
    index = int(marker) - 1 if marker.isdigit() else ord(marker) - ord("a")
    return options[index] if 0 <= index < len(options) else None


def parse_answer(text: str, task: str, options: list[str] | None = None) -> str | None:
    """A label of `task` (one of `LABELS[task]`; for `depth` one of `options`, the objects' names) read from
    a model's answer, or None if it names none."""
    if task not in ALL_TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(ALL_TASKS)}")
    if not text or not text.strip():
        return None
    lowered = text.strip().lower()
    if task == "mc" and options and _fold(text) in {_fold(o) for o in options}:
        return _mc_label(text, options)   # an option that reads like a marker ("3" of a count) is that option
    marker = _MARKER_ONLY.match(lowered)
    if marker:
        return _from_option(_option_at(marker.group(1), options), task, options)
    lead = _MARKER_LEAD.match(lowered)
    if lead and options:
        by_marker = _from_option(_option_at(lead.group(1), options), task, options)
        by_text = _text_label(lead.group(2), task, options)
        if by_text is None or by_marker is None:
            return by_text or by_marker
        return by_text if by_text == by_marker else None
    return _text_label(lowered, task, options)


def _from_option(option: str | None, task: str, options: list[str] | None) -> str | None:
    """An option's text read as an answer (options are labels, or names for depth; parsing keeps odd option
    lists safe)."""
    return None if option is None else _text_label(option.lower(), task, options)
