"""Shapes of JSON documents and the one-line check against them.

A stored file may be edited by hand or cut short: what is wrong with it is one line naming
the field (``stats.p50_ms: expected a number, got 'fast'``), never a TypeError deep in a
report.  Only the fields readers use are described; each may be absent or null (not
measured), but a present value has its type.  Items of lists and free-keyed objects may not
be null.  Shared by the record (agent) and run.json (harness), so standard library only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

NUMBER = (int, float)
POSITIVE = (float, int)  # a number above 0 (latencies divide); its own tuple, told apart by id


@dataclass(frozen=True)
class Each:
    """A JSON object with free keys whose values all have ``shape``."""

    shape: Any


@dataclass(frozen=True)
class ListOf:
    """A JSON array of ``shape`` items (exactly ``length`` of them when given)."""

    shape: Any
    length: Optional[int] = None


_KINDS = {
    str: "a string",
    NUMBER: "a number",
    POSITIVE: "a number above 0",
    int: "an integer",
    bool: "true or false",
    dict: "an object",
    (str, dict): "a string or an object",
}


def show(value: Any) -> str:
    """A wrong value in an error message: its repr, or its kind for a container."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _leaf_ok(value: Any, shape: Any) -> bool:
    """``value`` is of the type ``shape`` names; a number is finite (an integer within 64
    bits, as numpy takes it), a POSITIVE one above 0."""
    if shape is object:
        return True
    if not isinstance(value, shape) or (isinstance(value, bool) and shape is not bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63 and (shape is not POSITIVE or value > 0)
    if isinstance(value, float):
        return math.isfinite(value) and (shape is not POSITIVE or value > 0)
    return True


def shape_error(value: Any, shape: Any, where: str = "") -> Optional[str]:
    """Why ``value`` does not have ``shape`` (``stats.p50_ms: expected a number, got
    'fast'``), or None."""

    def wrong(kind: str) -> str:
        return "%sexpected %s, got %s" % (where + ": " if where else "", kind, show(value))

    def inner(key: Any) -> str:
        return "%s.%s" % (where, key) if where else str(key)

    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return wrong("an object")
        items = [(inner(k), value[k], sub) for k, sub in shape.items() if value.get(k) is not None]
    elif isinstance(shape, Each):
        if not isinstance(value, dict):
            return wrong("an object")
        items = [(inner(k), v, shape.shape) for k, v in value.items()]
    elif isinstance(shape, ListOf):
        if not isinstance(value, list) or len(value) != (shape.length or len(value)):
            return wrong("a list" if shape.length is None else "a list of %d" % shape.length)
        if (
            shape.shape is int
            and set(map(type, value)) <= {int}
            and -(2**63) <= min(value, default=0)
            and max(value, default=0) < 2**63
        ):
            return None  # 100 000 samples at C speed
        if not isinstance(shape.shape, (dict, Each, ListOf)):
            bad = next((i for i, v in enumerate(value) if not _leaf_ok(v, shape.shape)), None)
            return (
                None
                if bad is None
                else shape_error(value[bad], shape.shape, "%s[%d]" % (where, bad))
            )
        items = [("%s[%d]" % (where, i), v, shape.shape) for i, v in enumerate(value)]
    else:
        return None if _leaf_ok(value, shape) else wrong(_KINDS[shape])
    return next((why for w, v, sub in items for why in [shape_error(v, sub, w)] if why), None)
