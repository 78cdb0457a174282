"""JSONPath as check authors write it, and the one rule for "is this a number".

Part of the definitions: a check's JSONPath properties and numeric targets are checked
at load with exactly the rules the assertion engine (app/execution/assertions.py) runs them by.
JSONPath is jsonpath-ng's extended dialect, with ``.length`` read as JavaScript does and
``=~`` filters searching with RE2.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from functools import lru_cache
from typing import Any

from jsonpath_ng import DatumInContext, Fields, JSONPath
from jsonpath_ng.ext.filter import Expression
from jsonpath_ng.ext.parser import parse as parse_json_path
from jsonpath_ng.ext.string import Sub

from app.definitions import patterns

# A JSONPath nested deeper than this is refused at load: jsonpath-ng evaluates nodes
# recursively, and nothing a check needs comes near it.
MAX_JSON_PATH_DEPTH = 200
# A real numeric literal, as JSON and JavaScript's Number() read one (with an optional
# sign and surrounding blanks). float() also reads "nan", "inf", "1_000" and digits of
# other scripts; none of those is a number here.
_NUMBER_LITERAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Checkly's primer picks the last element with the script subscript [(@.length-1)],
# which jsonpath-ng does not parse; it means the same as the index [-1].
_FROM_END = re.compile(r"\[\s*\(\s*@\.length\s*-\s*([1-9][0-9]*)\s*\)\s*\]")


class _Length(Fields):
    """``.length``: the length of an array or a string, as in JavaScript.

    On an object it stays the member named ``length``; on anything else it selects
    nothing.
    """

    def find(self, datum: Any) -> list[DatumInContext]:
        datum = DatumInContext.wrap(datum)
        if isinstance(datum.value, list | str):
            return [
                DatumInContext(
                    len(datum.value), path=Fields._compliant_constructor("length"), context=datum
                )
            ]
        return super().find(datum)


class _Re2Expression(Expression):
    """A filter comparison whose regex operator ``=~`` searches with RE2.

    jsonpath-ng evaluates ``=~`` with Python's backtracking ``re``; every other
    operator is left to it.
    """

    def __init__(self, target: JSONPath, op: str, value: str) -> None:
        super().__init__(target, op, value)
        self.pattern = patterns.compile_pattern(value)

    def find(self, datum: Any) -> list[DatumInContext]:
        if self.op != "=~":
            return list(super().find(datum))  # type: ignore[no-untyped-call]
        found = self.target.find(DatumInContext.wrap(datum))
        return [
            match
            for match in found
            if isinstance(match.value, str) and self.pattern.search(match.value) is not None
        ]


def _replacement(node: Any) -> Any:
    """What ``node`` becomes in an assertion's JSONPath; raises ``ValueError``."""
    if isinstance(node, Expression) and node.op == "=~":
        if not isinstance(node.value, str):
            raise ValueError(f"the regex filter =~ takes a quoted pattern, not {node.value!r}")
        try:
            return _Re2Expression(node.target, node.op, node.value)
        except patterns.PatternError as exc:
            raise ValueError(f"the regex filter =~ {node.value!r} is {exc}") from None
    if isinstance(node, Sub):
        raise ValueError("the `sub()` operator is not supported in assertions")
    if type(node) is Fields and tuple(node.fields) == ("length",):
        return _Length._compliant_constructor("length")
    return node


def _rewrite(root: JSONPath) -> JSONPath:
    """``root`` with each node replaced as ``_replacement`` says, walked without recursion."""
    root = _replacement(root)
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_PATH_DEPTH:
            raise ValueError(f"it nests more than {MAX_JSON_PATH_DEPTH} levels deep")
        for name, value in list(vars(node).items()):
            if isinstance(value, JSONPath):
                new = _replacement(value)
                setattr(node, name, new)
                stack.append((new, depth + 1))
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    if isinstance(item, JSONPath):
                        value[index] = new = _replacement(item)
                        stack.append((new, depth + 1))
                    elif isinstance(item, tuple):  # sort keys: (path, reverse)
                        parts = tuple(_replacement(part) for part in item)
                        value[index] = parts
                        stack.extend((p, depth + 1) for p in parts if isinstance(p, JSONPath))
    return root


@lru_cache(maxsize=4096)
def compile_json_path(expression: str) -> JSONPath:
    """A compiled JSONPath; raises ``ValueError`` with a readable message."""
    try:
        parsed = parse_json_path(_FROM_END.sub(r"[-\1]", expression))
        return _rewrite(parsed)
    except Exception as exc:  # noqa: BLE001 - jsonpath-ng raises bare Exceptions too
        raise ValueError(f"property {expression!r} is not a valid JSONPath: {exc}") from None


def as_number(value: Any) -> Decimal | None:
    """The exact numeric value of a number or a numeric literal; None for anything else.

    The one rule for "is this a number" (a definition's numeric target is one too).
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # repr is the shortest text that reads back as this float: 0.1 stays 0.1.
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER_LITERAL.fullmatch(text):
            try:
                number = Decimal(text)
            except ArithmeticError:  # an exponent beyond what Decimal holds: text, then
                return None
            return number if number.is_finite() else None
    return None
