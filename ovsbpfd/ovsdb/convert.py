"""Converting a database's contents to a new schema (the "convert" method
that `ovsdb-client convert` sends, and a server started with a newer schema
than its file's).

The rules are ovsdb-server's: every row keeps its uuid; tables and columns
the new schema lacks are dropped; new columns take their defaults; every kept
value is re-read under its new type, so a value that no longer fits (out of a
new range, not in a new enum, too many elements) fails the whole conversion
with the error a transaction writing it would get; and the result passes the
commit checks of the new schema (references, garbage collection of rows no
longer referenced, weak references, indexes).
"""

from __future__ import annotations

import logging
import re
import shutil
import uuid
from typing import Any

import ovs.db.error

from .database import Database, Row, default_data
from .datum_json import datum_from_json, datum_to_json
from .errors import OvsdbError, c_style_message
from .schema import Schema
from .storage import Storage
from .transaction import Transaction

log = logging.getLogger(__name__)

_VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")


def parse_new_schema(schema_json: Any, db_name: str) -> Schema:
    """The schema a conversion of database db_name asks for; OvsdbError (as
    ovsdb-server words it) if it does not parse or names another database."""
    if not isinstance(schema_json, dict):
        raise OvsdbError("syntax error", "Parsing database schema failed: Object expected.")
    version = schema_json.get("version")
    if isinstance(version, str) and not _VERSION.fullmatch(version):
        # python-ovs words this one differently from ovsdb-server.
        raise OvsdbError("syntax error", f'schema version "{version}" not in format x.y.z',
                         schema_json, has_syntax=True)
    try:
        schema = Schema.from_json(schema_json)
    except ovs.db.error.Error as e:
        # A schema error names its JSON only when it has one.
        raise OvsdbError(e.tag, c_style_message(e.msg), e.json,
                         has_syntax=e.json is not None) from None
    if schema.name != db_name:
        raise OvsdbError("invalid parameters", f"new schema name ({schema.name}) does not "
                         f"match database name ({db_name})")
    return schema


def convert_database(src: Database, schema: Schema) -> Database:
    """A new database holding src's rows under schema (see the module's
    docstring); src is left as it was.  Raises OvsdbError."""
    dst = Database(schema)
    txn = Transaction(dst)
    for table_name, rows in src.tables.items():
        ts = schema.parsed.tables.get(table_name)
        if ts is None:
            continue
        for row in rows.values():
            data = default_data(ts)
            for name, datum in row.data.items():
                col = ts.columns.get(name)
                if col is None:
                    continue
                try:
                    data[name] = datum_from_json(col.type, datum_to_json(datum))
                except ovs.db.error.Error as e:
                    raise OvsdbError.from_ovs(e) from None
            txn.insert(table_name, Row(row.uuid, uuid.uuid4(), data))
    dst.apply(txn.check())
    return dst


def upgrade_file(path: str, schema: Schema) -> str | None:
    """Convert the database file at path to schema if its own schema differs
    (a newer ovsbpfd, or a file another Open vSwitch made), as ovs-ctl does
    before it starts ovsdb-server: the file is first copied to
    PATH.backupVERSION-CKSUM.  Returns the backup's path, or None when the
    file needed nothing.  OvsdbError if the contents do not fit the schema;
    the file is then left as it was."""
    storage = Storage(path)
    try:
        db = storage.load()
        if db.schema.canonical_json() == schema.canonical_json():
            return None
        old = db.schema.parsed
        cksum = str(db.schema.json.get("cksum", "")).split(" ")[0]
        backup = f"{path}.backup{old.version}-{cksum}"
        converted = convert_database(db, schema)
        shutil.copy2(path, backup)
        log.warning("backed up database %s to %s; converting it from schema version %s "
                    "to %s", path, backup, old.version, schema.parsed.version)
        storage.replace(converted, "converted by ovsbpfd")
        return backup
    finally:
        storage.close()
