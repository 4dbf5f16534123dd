"""Database schemas: the packaged vswitch schema and the built-in _Server schema.

Parsing and type checking come from python-ovs (ovs.db.schema); this module only
keeps the original JSON next to the parsed schema, because clients compare the
text they get from get_schema (including "cksum") with what the server stores.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import ovs.db.schema

SERVER_DB_NAME = "_Server"

# The _Server database describes the databases a server holds (OVS extension,
# documented in ovsdb-server(7)).  Clients such as ovs-vsctl monitor it to learn
# whether a database is connected and, for clusters, who leads.
SERVER_SCHEMA_JSON: dict = {
    "name": SERVER_DB_NAME,
    "version": "1.2.0",
    "cksum": "3009684573 744",
    "tables": {
        "Database": {
            "columns": {
                "name": {"type": "string"},
                "model": {
                    "type": {
                        "key": {
                            "type": "string",
                            "enum": ["set", ["clustered", "relay", "standalone"]],
                        }
                    }
                },
                "connected": {"type": "boolean"},
                "leader": {"type": "boolean"},
                "schema": {"type": {"key": "string", "min": 0}},
                "sid": {"type": {"key": "uuid", "min": 0}},
                "cid": {"type": {"key": "uuid", "min": 0}},
                "index": {"type": {"key": "integer", "min": 0}},
            }
        }
    },
}


def schema_path() -> str:
    """Path of the vswitch schema shipped inside the package."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(here, "schemas", "vswitch.ovsschema")


@dataclass
class Schema:
    """A parsed schema together with the JSON it was parsed from."""

    parsed: ovs.db.schema.DbSchema
    json: dict
    _canonical: dict | None = None
    _canonical_encoded: bytes | None = None

    @property
    def name(self) -> str:
        return self.parsed.name

    @classmethod
    def from_json(cls, schema_json: dict) -> Schema:
        parsed = ovs.db.schema.DbSchema.from_json(schema_json, allow_extensions=True)
        return cls(parsed, schema_json)

    @classmethod
    def from_file(cls, path: str) -> Schema:
        with open(path, encoding="utf-8") as f:
            return cls.from_json(json.load(f))

    def to_json(self) -> dict:
        """The schema as stored (what the log's first record holds)."""
        return self.json

    def canonical_json(self) -> dict:
        """The schema as ovsdb-server's get_schema returns it: re-serialised from
        its parsed form (defaults dropped, enums sorted), keeping "cksum"."""
        if self._canonical is None:
            canonical = self.parsed.to_json()
            if "cksum" in self.json:
                canonical["cksum"] = self.json["cksum"]
            self._canonical = canonical
        return self._canonical


    def canonical_encoded(self) -> bytes:
        """canonical_json() encoded, once: every ovs-vsctl run asks for it."""
        if self._canonical_encoded is None:
            self._canonical_encoded = json.dumps(
                self.canonical_json(), separators=(",", ":"), ensure_ascii=False).encode()
        return self._canonical_encoded


def server_schema() -> Schema:
    return Schema.from_json(SERVER_SCHEMA_JSON)
