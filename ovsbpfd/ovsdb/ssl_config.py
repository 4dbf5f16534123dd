"""The key, certificate and CA of the server's ssl:/pssl: remotes, named by
file or by a db:DB,TABLE,COLUMN reference.

Open vSwitch's ovs-ctl starts ovsdb-server with
``--private-key=db:Open_vSwitch,SSL,private_key`` (and the same for the
certificate and the CA), so that ``ovs-vsctl set-ssl`` configures the
manager connections.  What this module does, as ovsdb-server does:

- a db: reference names the first non-empty string of that column in any row
  of the table, and is looked up again for every new connection, so set-ssl
  works before or after set-manager;
- until a key, a certificate and a CA are all named, pssl: remotes listen but
  refuse each connection, and ssl: remotes fail each attempt with "Protocol
  not available" and keep retrying;
- a reference that stops naming a file (del-ssl) keeps the last one;
- a file whose modification time changes is read again, so a rotated
  certificate serves the next connection; files that fail to load leave the
  last good ones in use.

CA bootstrap (``--bootstrap-ca-cert`` with a missing file) is not supported:
such a CA file counts as missing until it exists.
"""

from __future__ import annotations

import errno
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .database import Database

log = logging.getLogger(__name__)

DB_PREFIX = "db:"
ROLES = ("Private key", "Certificate", "CA certificate")

# A database by name, or None if the server has no such database.
DatabaseLookup = Callable[[str], "Database | None"]


class SslConfigError(ValueError):
    """A db: reference that is malformed or names no string column."""


class SslNotConfigured(OSError):
    """No usable key, certificate and CA yet: ENOPROTOOPT, the error
    ovsdb-server's ssl: remotes report in that state."""

    def __init__(self, detail: str) -> None:
        super().__init__(errno.ENOPROTOOPT, os.strerror(errno.ENOPROTOOPT))
        self.detail = detail


@dataclass(frozen=True)
class DbColumnRef:
    """db:DB,TABLE,COLUMN: a string column whose value is a file name."""

    db: str
    table: str
    column: str

    @classmethod
    def parse(cls, spec: str) -> DbColumnRef | None:
        """The reference spec names, or None when spec is a plain file name."""
        if not spec.startswith(DB_PREFIX):
            return None
        parts = spec[len(DB_PREFIX):].split(",")
        if len(parts) != 3 or not all(parts):
            raise SslConfigError(f'"{spec}": expected db:DB,TABLE,COLUMN')
        return cls(*parts)

    def __str__(self) -> str:
        return f"{DB_PREFIX}{self.db},{self.table},{self.column}"

    def resolve(self, lookup: DatabaseLookup) -> str | None:
        """The first non-empty string in the column, in any row; None if none."""
        db = lookup(self.db)
        if db is None:
            raise SslConfigError(f'"{self}": no database named {self.db}')
        ts = db.schema.parsed.tables.get(self.table)
        if ts is None:
            raise SslConfigError(f'"{self}": no table named {self.table}')
        column = ts.columns.get(self.column)
        if column is None:
            raise SslConfigError(f'"{self}": table "{self.table}" has no column "{self.column}"')
        if column.type.key.type.to_string() != "string" or column.type.value is not None:
            raise SslConfigError(f'"{self}": type of table "{self.table}" column '
                                 f'"{self.column}" is not string or set of strings')
        for row in db.tables[self.table].values():
            for atom in row.data[self.column].values:
                if atom.value:
                    return atom.value
        return None


def _file_stamp(path: str) -> tuple[int, int, int] | None:
    """What tells that a file changed: mtime, inode and size (None if absent)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino, st.st_size


def _build_context(key: str, cert: str, ca: str, server_side: bool) -> ssl.SSLContext:
    """Show our certificate and require a peer signed by the CA.  OVS checks
    peers against the CA only, never their host names."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    return ctx


class SslFiles:
    """--private-key, --certificate and --ca-cert (or --bootstrap-ca-cert) as
    ovsdb-server takes them: file names or db: references, read live."""

    def __init__(self, private_key: str | None = None, certificate: str | None = None,
                 ca_cert: str | None = None, bootstrap_ca_cert: bool = False) -> None:
        self.specs = (private_key, certificate, ca_cert)
        self.refs = tuple(DbColumnRef.parse(s) if s else None for s in self.specs)
        self.bootstrap_ca_cert = bootstrap_ca_cert
        self._lookup: DatabaseLookup | None = None
        # The file names in use: plain names at once, db: ones once found.
        self._names: list[str | None] = [None if ref else spec
                                         for spec, ref in zip(self.specs, self.refs, strict=True)]
        self._tried: dict[bool, tuple] = {}  # side -> what the last build read
        self._good: dict[bool, ssl.SSLContext] = {}  # side -> last context that loaded
        self._front: ssl.SSLContext | None = None
        self._last_report: str | None = None

    def bind(self, lookup: DatabaseLookup) -> None:
        """Where db: references are looked up (the server's databases)."""
        self._lookup = lookup

    def names(self) -> tuple[str | None, str | None, str | None]:
        """The key, certificate and CA file names to use now."""
        for i, ref in enumerate(self.refs):
            if ref is None or self._lookup is None:
                continue
            try:
                name = ref.resolve(self._lookup)
            except SslConfigError as e:
                self._report(str(e))
                continue
            if name is not None:
                self._names[i] = name
        key, cert, ca = self._names
        return key, cert, ca

    def context(self, server_side: bool) -> ssl.SSLContext:
        """A context for a new connection from the current files; raises
        SslNotConfigured when there is none."""
        names = self.names()
        missing = [f"{role} must be configured to use SSL"
                   for role, name in zip(ROLES, names, strict=True) if not name]
        if missing:
            self._report("; ".join(missing))
            raise SslNotConfigured("; ".join(missing))
        key, cert, ca = (str(n) for n in names)
        stamp = (key, cert, ca, _file_stamp(key), _file_stamp(cert), _file_stamp(ca))
        if self._tried.get(server_side) != stamp:
            self._tried[server_side] = stamp
            try:
                self._good[server_side] = _build_context(key, cert, ca, server_side)
                self._last_report = None
            except (OSError, ssl.SSLError, ValueError) as e:
                hint = ""
                if self.bootstrap_ca_cert and stamp[5] is None:
                    hint = f" (CA certificate {ca} is missing; bootstrapping it is not supported)"
                self._report(f"cannot load SSL files {key}, {cert}, {ca}: {e}{hint}")
        ctx = self._good.get(server_side)
        if ctx is None:
            raise SslNotConfigured("SSL files could not be loaded")
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """For one connection attempt of an ssl: remote."""
        return self.context(server_side=False)

    def server_context(self) -> ssl.SSLContext:
        """For a pssl: listener, usable before SSL is configured: each
        handshake switches to the context of the files current then, or is
        refused when there are none."""
        if self._front is None:
            front = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            front.minimum_version = ssl.TLSVersion.TLSv1_2
            front.verify_mode = ssl.CERT_REQUIRED
            front.sni_callback = self._pick_server_context
            self._front = front
        return self._front

    def _pick_server_context(self, conn: ssl.SSLObject, _server_name: str | None,
                             _front: ssl.SSLContext) -> int | None:
        """Called by OpenSSL for every ClientHello, SNI or not."""
        try:
            conn.context = self.context(server_side=True)
        except SslNotConfigured:
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        except Exception:  # an exception here would only print; refuse instead
            log.exception("choosing the SSL context failed")
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        return None

    def _report(self, problem: str) -> None:
        """Log a problem once, not once per connection attempt."""
        if problem != self._last_report:
            self._last_report = problem
            log.error("%s", problem)
