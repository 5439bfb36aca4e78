"""Validation errors in plain words: a pydantic `ValidationError` becomes one line naming the field, what was
expected and what was given (`field 'factors.colors.red': expected [R, G, B], three integers 0-255, got [255, 0]`),
an unknown key with the closest known one, and a JSON syntax error with its place in the file. What a value
should be is read from the model's types; a field whose meaning the type cannot say declares it once with
`Annotated[..., Expected("...")]`. Imports nothing of ours: every floor can use it."""
from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

import annotated_types as at
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

_LINE_BREAKS = re.compile("[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")   # what str.splitlines splits on
_FIELD_FIRST = re.compile(r"([\w.\[\]]+): (.+)", re.S)   # a whole-record check naming its field: "grid: ..."


@dataclass(frozen=True)
class Expected:
    """What a value should be, in its domain's words, for messages about it or about any item of it (a tuple's
    item is reported as the whole tuple): `Annotated[tuple[int, int, int], Expected("[R, G, B], ...")]`."""
    text: str


@dataclass(frozen=True)
class Problem:
    """The one error reported: the field (`''` for the whole record) and what is wrong with it."""
    field: str
    message: str

    def line(self, where: str) -> str:
        """`WHERE: field 'F': MESSAGE` on one line (names from the file may hold line breaks)."""
        return one_line(f"{where}: field '{self.field}': {self.message}" if self.field else f"{where}: {self.message}")


def one_line(text: str) -> str:
    """`text` with its line breaks (a colour called "re<newline>d") written as escapes."""
    return _LINE_BREAKS.sub(lambda m: repr(m.group())[1:-1], text)


def shown(value) -> str:
    """A value as a message shows it: its repr, cut at 60 characters."""
    try:
        text = repr(value)
    except ValueError:   # an int too long for Python to write out
        return "a huge integer"
    except RecursionError:
        return "a value nested too deeply"
    return text if len(text) <= 60 else text[:57] + "..."


# -- types as a walk along an error's loc --------------------------------------------------------------------

_Node = tuple[Any, tuple]   # (a type without Annotated or None, the metadata gathered from its Annotated layers)
_ANY: _Node = (Any, ())
_ABSENT = object()


def _is_union(tp) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _node(tp, meta: tuple = ()) -> _Node:
    """`tp` unwrapped: Annotated layers become metadata (a FieldInfo's constraints too); `X | None` is X (None
    only means the key is unset)."""
    while True:
        if typing.get_origin(tp) is Annotated:
            base, *extra = typing.get_args(tp)
            for m in extra:
                meta += tuple(m.metadata) if isinstance(m, FieldInfo) else (m,)
            tp = base
        elif _is_union(tp) and sum(a is not type(None) for a in typing.get_args(tp)) == 1:
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        else:
            return tp, meta


def _model(tp) -> type[BaseModel] | None:
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields by the key a file spells them with."""
    return {fi.alias or name: fi for name, fi in model.model_fields.items()}


def _branch(tp, label: str) -> _Node:
    """The member of a union that pydantic names `label` in a loc ("literal['a','b']", "dict[str,float]",
    "int", a model's class name)."""
    for member in typing.get_args(tp):
        m_tp = _node(member)[0]
        origin = typing.get_origin(m_tp)
        name = getattr(origin, "__name__", None) or getattr(origin, "_name", None)
        tag = f"{name.lower()}[" if name else getattr(m_tp, "__name__", "")
        if tag and (label == tag or label.startswith(tag)):
            return _node(member)
    return _ANY


def _child(node: _Node, key) -> _Node:
    tp, _ = node
    if (model := _model(tp)) is not None:
        fi = _fields(model).get(key)
        return _node(fi.annotation, tuple(fi.metadata)) if fi is not None else _ANY
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is dict and args:
        return _node(args[0] if key == "[key]" else args[1])
    if origin in (list, set, frozenset) and args:
        return _node(args[0])
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return _node(args[0])
        return _node(args[key]) if isinstance(key, int) and 0 <= key < len(args) else _ANY
    return _ANY


@dataclass
class _Error:
    """One pydantic error, with its loc split into the keys of the file and the types met along them."""
    raw: dict
    path: list            # the loc without pydantic's union member labels
    nodes: list           # nodes[i]: the type at path[:i] (nodes[0]: the model)
    union_at: int | None  # len(path) where the loc first entered a union member, else None


def _walk(model: type[BaseModel], raw: dict) -> _Error:
    node = _node(model)
    path, nodes, union_at = [], [node], None
    inner = [node]   # the types walked through: a union's member where `nodes` keeps the union (its words)
    for part in raw["loc"]:
        if _is_union(node[0]):   # pydantic names the member it tried
            union_at = len(path) if union_at is None else union_at
            node = inner[-1] = _branch(node[0], str(part))
            continue
        # a table's key that failed: pydantic names it after the key, so its type is the table's key type
        node = _child(inner[-2], part) if part == "[key]" and len(inner) > 1 else _child(node, part)
        path.append(part)
        nodes.append(node)
        inner.append(node)
    return _Error(raw, path, nodes, union_at)


def _value_at(data, path: list):
    try:
        for key in path:
            if key == "[key]":
                return _ABSENT
            if isinstance(data, dict) and key in data or isinstance(data, (list, tuple)) and isinstance(key, int):
                data = data[key]
            else:
                return _ABSENT
        return data
    except (IndexError, TypeError):
        return _ABSENT


def dotted(path: list) -> str:
    """`design.subsets[0].split` from ('design', 'subsets', 0, 'split')."""
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


# -- what a type expects, in words ---------------------------------------------------------------------------

def _number(x) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() and abs(x) < 1e15 else str(x)


def _bounds(meta: tuple) -> str:
    """' from 16 to 8192', ' of at least 1', ' greater than 0 and less than 1', or ''."""
    b = {}
    for m in meta:
        for name in ("ge", "gt", "le", "lt"):
            if getattr(m, name, None) is not None and isinstance(m, (at.Ge, at.Gt, at.Le, at.Lt, at.Interval)):
                b[name] = _number(getattr(m, name))
    if "ge" in b and "le" in b:
        return f" from {b['ge']} to {b['le']}"
    words = {"ge": "at least", "gt": "greater than", "le": "at most", "lt": "less than"}
    phrase = " and ".join(f"{words[k]} {v}" for k, v in b.items())
    return (" of " if phrase.startswith("at ") else " ") + phrase if phrase else ""


def _least_length(meta: tuple) -> int:
    return max((m.min_length for m in meta if isinstance(m, at.MinLen)), default=0)


def _alternatives(values) -> str:
    """"'a', 'b' or 'c'"."""
    shown_values = [repr(v) for v in values]
    return shown_values[0] if len(shown_values) == 1 else f"{', '.join(shown_values[:-1])} or {shown_values[-1]}"


_NOUNS = {bool: ("true or false", "true/false values"), int: ("an integer", "integers"),
          float: ("a number", "numbers"), str: ("a string", "strings")}


def _plural(node: _Node, table: str) -> str:
    tp, _ = node
    if typing.get_origin(tp) is Literal:
        return f"values from {_alternatives(typing.get_args(tp))}"
    if _model(tp) is not None:
        return table.split(" ", 1)[1] + "s"
    return _NOUNS[tp][1] if tp in _NOUNS else "values"


def expectation(node: _Node, table: str = "a table") -> str:
    """What a value of this type should be: its `Expected` text, else words made from the type ("an integer
    from 3 to 99", "'flat' or '3d'", "a non-empty list of strings"). `table`: what the format calls a mapping."""
    tp, meta = node
    marked = next((m.text for m in meta if isinstance(m, Expected)), None)
    if marked is not None:
        return marked
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    non_empty = "a non-empty " if _least_length(meta) else "a "
    if _is_union(tp):
        return " or ".join(expectation(_node(a), table) for a in args if a is not type(None))
    if origin is Literal:
        return _alternatives(args)
    if tp in (int, float):
        return _NOUNS[tp][0] + _bounds(meta)
    if tp is str:
        return "a non-empty string" if _least_length(meta) else "a string"
    if tp in _NOUNS:
        return _NOUNS[tp][0]
    if _model(tp) is not None or origin is dict and not args:
        return table
    if origin is dict:
        mapping = f"a non-empty {table.split(' ', 1)[1]}" if _least_length(meta) else table
        return mapping if _node(args[1])[0] is Any else f"{mapping} of {_plural(_node(args[1]), table)}"
    if origin in (list, set, frozenset):
        return f"{non_empty}list of {_plural(_node(args[0]), table)}" if args else f"{non_empty}list"
    if origin is tuple and args and args[-1] is not Ellipsis:
        items = {_plural(_node(a), table) for a in args}
        return f"a list of {len(args)} {items.pop() if len(items) == 1 else 'values'}"
    if origin is tuple:
        return f"{non_empty}list"
    return "a value" if tp is Any else f"a value of type {getattr(tp, '__name__', tp)}"


def _literal_values(node: _Node) -> list:
    """The strings a Literal (or a union holding Literals) allows: candidates for "did you mean"."""
    tp, _ = node
    if typing.get_origin(tp) is Literal:
        return [v for v in typing.get_args(tp) if isinstance(v, str)]
    if _is_union(tp):
        return [v for a in typing.get_args(tp) for v in _literal_values(_node(a))]
    return []


def _did_you_mean(word, candidates) -> str:
    """' (did you mean 'cycles'?)' for the closest candidate (the same word in another case first), or ''."""
    if not isinstance(word, str):
        return ""
    candidates = [c for c in candidates if isinstance(c, str)]
    close = [c for c in candidates if c.casefold() == word.casefold()] or difflib.get_close_matches(word, candidates, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- one error, chosen and said ------------------------------------------------------------------------------

def _misspelt(e: _Error, data) -> Problem | None:
    """A missing key beside an unknown one that is close to it: the unknown key is the typo to report."""
    if e.raw["type"] != "missing" or not e.path or not isinstance(e.path[-1], str):
        return None
    parent = _model(e.nodes[-2][0])
    present = _value_at(data, e.path[:-1])
    if parent is None or not isinstance(present, dict):
        return None
    unknown = [k for k in present if isinstance(k, str) and k not in _fields(parent)]
    close = difflib.get_close_matches(e.path[-1], unknown, n=1)
    return Problem(dotted([*e.path[:-1], close[0]]), f"unknown key (did you mean {e.path[-1]!r}?)") if close else None


def _unknown_key(e: _Error, data) -> Problem:
    parent = _model(e.nodes[-2][0])
    present = _value_at(data, e.path[:-1])
    known = [k for k in _fields(parent) if not (isinstance(present, dict) and k in present)] if parent else []
    return Problem(dotted(e.path), "unknown key" + _did_you_mean(e.path[-1], known))


def _chosen(errors: list[_Error], data) -> _Error | Problem:
    """Unknown keys first (a misspelt table also leaves its required key missing); else the first error, or, in
    a union, the error of the member that read furthest (all at the union itself: the union is reported)."""
    for e in errors:
        if e.raw["type"] == "extra_forbidden" and e.union_at is None:
            return _unknown_key(e, data)
    for e in errors:
        if (problem := _misspelt(e, data)) is not None:
            return problem
    first = errors[0]
    if first.union_at is None:
        return first
    at_union = first.path[:first.union_at]
    members = [e for e in errors if e.union_at == first.union_at and e.path[:first.union_at] == at_union]
    deepest = max(members, key=lambda e: len(e.path))
    if len(deepest.path) > len(at_union):
        return deepest
    return _Error({**first.raw, "type": "union"}, at_union, first.nodes[:len(at_union) + 1], None)


def _said(e: _Error, data, table: str) -> Problem:
    kind, path, nodes = e.raw["type"], list(e.path), list(e.nodes)
    if path and path[-1] == "[key]":   # a key of a table: one of fixed names (a split's fractions), or a string
        key, allowed = path[-2] if len(path) > 1 else None, _literal_values(nodes[-1])
        if not allowed:
            return Problem(dotted(path[:-1]), f"expected a key that is {expectation(nodes[-1], table)}, got {shown(key)}")
        return Problem(dotted(path[:-1]), "unknown key" + (_did_you_mean(key, allowed) or
                                                            f"; expected {_alternatives(allowed)}"))
    if kind in ("value_error", "assertion_error"):   # our own validators' words, already plain
        message = re.sub(r"^(Value error|Assertion failed), ", "", e.raw["msg"])
        if not path and (m := _FIELD_FIRST.fullmatch(message)):
            return Problem(m[1], m[2])
        return Problem(dotted(path), message)
    if kind == "missing" and path and isinstance(path[-1], str):
        return Problem(dotted(path), f"missing (expected {expectation(nodes[-1], table)})")
    if path and isinstance(path[-1], int) and typing.get_origin(nodes[-2][0]) is tuple:
        path, nodes = path[:-1], nodes[:-1]   # an item of a fixed-length list (a colour): the list is the value
    value = _value_at(data, path)
    if value is _ABSENT:
        value = e.raw.get("input")
    expected = expectation(nodes[-1], table)
    if kind == "finite_number":
        expected = expected.replace("a number", "a finite number", 1)
    return Problem(dotted(path), f"expected {expected}, got {shown(value)}" + _did_you_mean(value, _literal_values(
        nodes[-1])))


def explain(err: ValidationError, model: type[BaseModel], data: Any = _ABSENT, table: str = "a table") -> Problem:
    """The one problem to report of a validation of `data` as `model`: the field and, in plain words, what
    is wrong. `data`: what was validated (a value is shown from it); `table`: what the format calls a mapping
    ("a table" in TOML, "an object" in JSON)."""
    errors = [_walk(model, e) for e in err.errors()]
    chosen = _chosen(errors, data)
    return chosen if isinstance(chosen, Problem) else _said(chosen, data, table)


def option_error(err: ValidationError, model: type[BaseModel]) -> str:
    """The one line for options validated as keyword arguments of `model`: `--lora-r: expected an integer of
    at least 1, got 0`."""
    problem = explain(err, model)
    first = err.errors()[0]
    option = "--" + re.split(r"[.\[]", problem.field or str(first["loc"][0] if first["loc"] else "?"))[0]
    message = problem.message
    if first["type"] in ("value_error", "assertion_error") and "input" in first:
        message += f" (got {shown(first['input'])})"
    return one_line(f"{option.replace('_', '-')}: {message}")


# -- JSON syntax errors, placed in the file ------------------------------------------------------------------

_JSON_AT = re.compile(r"(.*) at line (\d+) column (\d+)", re.S)
_JSON_WORDS = {"expected ident": "expected true, false or null", "trailing characters": "more text after the value",
               "key must be a string": "expected a key in double quotes", "expected value": "expected a value",
               "trailing comma": "a comma before a closing bracket"}


def json_position(text: str, error: str) -> tuple[int, int, str]:
    """(line, column, reason) of pydantic's `json_invalid` error (`ctx['error']`) in `text`: 1-based, the
    column counted in characters (the parser counts bytes), and an error at the end of the text placed just
    after its last character (the parser puts it past the final newline)."""
    m = _JSON_AT.fullmatch(error)
    if not m:
        return 1, 1, error.replace("`", "'")
    reason, line, column = m[1], int(m[2]), int(m[3])
    reason = re.sub(r" after (object value|list element)$", "", reason)
    reason = _JSON_WORDS.get(reason, reason.replace("EOF while parsing", "ended inside")).replace("`", "'")
    lines = text.split("\n")
    if reason.startswith("ended inside") or line > len(lines):
        kept = text.rstrip().split("\n")
        return len(kept), len(kept[-1]) + 1, reason
    before = lines[line - 1].encode("utf-8", "surrogatepass")[:max(column - 1, 0)].decode("utf-8", "ignore")
    if m[1] == "expected ident":   # the parser stops after a misspelt word (`tru`): point at its start
        before = before.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return line, len(before) + 1, reason
