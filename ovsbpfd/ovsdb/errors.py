"""The OVSDB error object of RFC 7047: {"error": ..., "details": ..., "syntax": ...}."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import ovs.db.error

from .hash_order import ovs_order

_SIZE_EXACTLY_ONE = re.compile(r"\b(set|map) must have 1 to 1 members but")
_PY_UNLIMITED = re.compile(rf"(must have \d+ to )({sys.maxsize}|{1 << 62})( members)")
_FLOAT_MARK = "\x00float:"


def compact_json(value: Any) -> str:
    """Serialise like ovsdb-server does inside error "syntax" members (reals
    printed with 15 significant digits, as OVS's JSON writer does)."""
    text = json.dumps(_mark_floats(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    if "\\u0000float:" not in text:
        return text
    return re.sub(r'"\\u0000float:([^"]*)"', lambda m: f"{float(m.group(1)):.15g}", text)


def _mark_floats(value: Any) -> Any:
    if isinstance(value, float):
        return _FLOAT_MARK + repr(value)
    if isinstance(value, list):
        return [_mark_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: _mark_floats(v) for k, v in value.items()}
    return value


def c_style_message(message: str) -> str:
    """python-ovs's wording of size errors, as ovsdb-server (C) words them
    (its "unlimited" is UINT_MAX; only there, not in a value named)."""
    message = _PY_UNLIMITED.sub(r"\g<1>4294967295\3", message)
    return _SIZE_EXACTLY_ONE.sub(r"\1 must have exactly one member but", message)


class OvsdbError(Exception):
    """An error that ends an operation, reported to the client as an error object."""

    def __init__(self, error: str, details: str | None = None, syntax: Any = None,
                 has_syntax: bool = False) -> None:
        super().__init__(f"{error}: {details}")
        self.error = error
        self.details = details
        self.syntax = syntax
        self.has_syntax = has_syntax or syntax is not None

    @classmethod
    def from_ovs(cls, exc: ovs.db.error.Error) -> OvsdbError:
        """Translate a python-ovs parse error into the wire error object."""
        return cls(exc.tag, c_style_message(exc.msg), exc.json,
                   has_syntax=exc.json is not None or exc.tag == "syntax error")

    def to_text(self) -> str:
        """One line, as OVS's tools print an error: [syntax "S": ]error[: details]."""
        text = self.error if self.details is None else f"{self.error}: {self.details}"
        return f'syntax "{compact_json(self.syntax)}": {text}' if self.has_syntax else text

    def to_json(self) -> dict:
        obj: dict[str, Any] = {"error": self.error}
        if self.has_syntax:
            obj["syntax"] = compact_json(self.syntax)
        if self.details is not None:
            obj["details"] = self.details
        return obj


def syntax_error(syntax: Any, details: str) -> OvsdbError:
    return OvsdbError("syntax error", details, syntax, has_syntax=True)


def raise_unused_members(obj: dict, used: set[str], fail: Any) -> None:
    """ovsdb-server's error for members nobody asked for: the first one (in
    its hash order), and how many others there are."""
    unused = [name for name in ovs_order(list(obj)) if name not in used]
    if len(unused) == 1:
        raise fail(f"Member '{unused[0]}' is present but not allowed here.")
    if unused:
        others = len(unused) - 1
        raise fail(f"Member '{unused[0]}' and {others} other member{'s' if others > 1 else ''}"
                   " are present but not allowed here.")
