"""The OVSDB error object of RFC 7047: {"error": ..., "details": ..., "syntax": ...}."""

from __future__ import annotations

import json
from typing import Any

import ovs.db.error


def compact_json(value: Any) -> str:
    """Serialise like ovsdb-server does inside error "syntax" members."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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
        return cls(exc.tag, exc.msg, exc.json, has_syntax=exc.json is not None)

    def to_json(self) -> dict:
        obj: dict[str, Any] = {"error": self.error}
        if self.has_syntax:
            obj["syntax"] = compact_json(self.syntax)
        if self.details is not None:
            obj["details"] = self.details
        return obj


def syntax_error(syntax: Any, details: str) -> OvsdbError:
    return OvsdbError("syntax error", details, syntax, has_syntax=True)
