"""SSL files named by db:DB,TABLE,COLUMN references (ovsbpfd/ovsdb/ssl_config.py):
how a reference resolves, and what contexts SslFiles gives as the SSL row
comes, changes, goes, and as its files are rotated on disk."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ovsbpfd.ovsdb.database import Database
from ovsbpfd.ovsdb.execution import Executor
from ovsbpfd.ovsdb.schema import Schema, schema_path
from ovsbpfd.ovsdb.ssl_config import DbColumnRef, SslConfigError, SslFiles, SslNotConfigured
from tests.ofproto.openflow.of_pki import KeyPair, Pki, make_pki

from .helpers import ovsbpfd_server, stop_process, wait_for_socket

KEY = "db:Open_vSwitch,SSL,private_key"
CERT = "db:Open_vSwitch,SSL,certificate"
CA = "db:Open_vSwitch,SSL,ca_cert"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def db() -> Database:
    database = Database(Schema.from_file(schema_path()))
    transact(database, {"op": "insert", "table": "Open_vSwitch", "row": {}})
    return database


def transact(db: Database, *ops: dict) -> None:
    outcome = Executor(db, set()).run(list(ops))
    assert all(r is not None and "error" not in r for r in outcome.results), outcome.results
    db.apply(outcome.changes)


def set_ssl(db: Database, key: str, cert: str, ca: str) -> None:
    """What `ovs-vsctl set-ssl KEY CERT CA` does: a new SSL row, referenced."""
    transact(db,
             {"op": "insert", "table": "SSL", "uuid-name": "s",
              "row": {"private_key": key, "certificate": cert, "ca_cert": ca}},
             {"op": "update", "table": "Open_vSwitch", "where": [],
              "row": {"ssl": ["named-uuid", "s"]}})


def del_ssl(db: Database) -> None:
    """`ovs-vsctl del-ssl`: the row loses its reference and is collected."""
    transact(db, {"op": "update", "table": "Open_vSwitch", "where": [],
                  "row": {"ssl": ["set", []]}})
    assert not db.tables["SSL"]


def lookup_in(db: Database):
    return lambda name: db if name == db.name else None


def db_ssl_files(db: Database) -> SslFiles:
    files = SslFiles(KEY, CERT, CA)
    files.bind(lookup_in(db))
    return files


def client_ctx(pair: KeyPair) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_cert_chain(pair.cert, pair.key)
    ctx.load_verify_locations(pair.ca)
    return ctx


def handshake(files: SslFiles, client: KeyPair) -> str:
    """A TLS exchange on loopback between files.server_context() and a client
    with `client`'s certificate: the server's reply, or the client's error."""

    async def run() -> str:
        class Greeter(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(b"hello")
                transport.close()

        server = await asyncio.get_running_loop().create_server(
            Greeter, "127.0.0.1", 0, ssl=files.server_context())
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                           ssl=client_ctx(client))
            data = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return data.decode() or "closed"
        except (OSError, ssl.SSLError) as e:
            return f"refused: {type(e).__name__}"
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(run())


def ca_subject(ctx: ssl.SSLContext) -> str:
    (ca,) = ctx.get_ca_certs()
    return dict(pair[0] for pair in ca["subject"])["commonName"]


# --- parsing and resolving references -----------------------------------------
def test_ovsdb_ssl_plain_file_names_are_not_references() -> None:
    assert DbColumnRef.parse("/etc/openvswitch/key.pem") is None
    assert DbColumnRef.parse(KEY) == DbColumnRef("Open_vSwitch", "SSL", "private_key")
    assert str(DbColumnRef.parse(KEY)) == KEY


@pytest.mark.parametrize("spec", ["db:", "db:Open_vSwitch,SSL", "db:Open_vSwitch,,ca_cert",
                                  "db:a,b,c,d"])
def test_ovsdb_ssl_malformed_reference(spec: str) -> None:
    with pytest.raises(SslConfigError):
        DbColumnRef.parse(spec)


def test_ovsdb_ssl_reference_resolves_to_the_rows_value(db: Database) -> None:
    ref = DbColumnRef("Open_vSwitch", "SSL", "certificate")
    assert ref.resolve(lookup_in(db)) is None  # no SSL row yet
    set_ssl(db, "/k", "", "/ca")
    assert ref.resolve(lookup_in(db)) is None  # an empty string names nothing
    set_ssl(db, "/k", "/c", "/ca")
    assert ref.resolve(lookup_in(db)) == "/c"
    assert DbColumnRef("Open_vSwitch", "SSL", "ca_cert").resolve(lookup_in(db)) == "/ca"


@pytest.mark.parametrize("ref, message", [
    (DbColumnRef("Nope", "SSL", "ca_cert"), "no database named Nope"),
    (DbColumnRef("Open_vSwitch", "Nope", "ca_cert"), "no table named Nope"),
    (DbColumnRef("Open_vSwitch", "SSL", "nope"), 'has no column "nope"'),
    (DbColumnRef("Open_vSwitch", "SSL", "bootstrap_ca_cert"), "not string"),
    (DbColumnRef("Open_vSwitch", "SSL", "external_ids"), "not string"),
])
def test_ovsdb_ssl_reference_to_no_string_column(db: Database, ref: DbColumnRef,
                                                 message: str) -> None:
    with pytest.raises(SslConfigError, match=message):
        ref.resolve(lookup_in(db))


# --- SslFiles over the database -------------------------------------------------
def test_ovsdb_ssl_not_configured_until_set_ssl(db: Database, pki: Pki) -> None:
    files = db_ssl_files(db)
    with pytest.raises(SslNotConfigured) as caught:
        files.client_context()
    assert caught.value.errno == errno.ENOPROTOOPT
    assert "Private key must be configured" in caught.value.detail
    assert handshake(files, pki.controller).startswith("refused")

    set_ssl(db, pki.switch.key, pki.switch.cert, pki.switch.ca)
    assert handshake(files, pki.controller) == "hello"
    assert handshake(files, pki.rogue) != "hello"  # another CA's client
    assert ca_subject(files.client_context()) == "ca"


def test_ovsdb_ssl_set_ssl_again_switches_files(db: Database, pki: Pki) -> None:
    files = db_ssl_files(db)
    set_ssl(db, pki.switch.key, pki.switch.cert, pki.switch.ca)
    assert handshake(files, pki.controller) == "hello"
    set_ssl(db, pki.rogue.key, pki.rogue.cert, pki.rogue.ca)
    assert handshake(files, pki.rogue) == "hello"
    assert handshake(files, pki.controller) != "hello"


def test_ovsdb_ssl_del_ssl_keeps_the_files_in_use(db: Database, pki: Pki) -> None:
    """As ovsdb-server: a reference that stops naming a file changes nothing."""
    files = db_ssl_files(db)
    set_ssl(db, pki.switch.key, pki.switch.cert, pki.switch.ca)
    assert handshake(files, pki.controller) == "hello"
    del_ssl(db)
    assert files.names() == (pki.switch.key, pki.switch.cert, pki.switch.ca)
    assert handshake(files, pki.controller) == "hello"


def test_ovsdb_ssl_rotated_files_serve_new_connections(db: Database, pki: Pki,
                                                       tmp_path: Path) -> None:
    paths = {name: str(tmp_path / name) for name in ("key", "cert", "ca")}

    def install(pair: KeyPair) -> None:
        for name, src in (("key", pair.key), ("cert", pair.cert), ("ca", pair.ca)):
            shutil.copy(src, paths[name] + ".new")
            Path(paths[name] + ".new").replace(paths[name])

    install(pki.switch)
    files = db_ssl_files(db)
    set_ssl(db, paths["key"], paths["cert"], paths["ca"])
    assert handshake(files, pki.controller) == "hello"
    install(pki.rogue)  # same names in the database, new contents on disk
    assert handshake(files, pki.rogue) == "hello"
    assert handshake(files, pki.controller) != "hello"
    assert ca_subject(files.client_context()) == "rogue-ca"


def test_ovsdb_ssl_files_that_fail_to_load_keep_the_last_good(db: Database, pki: Pki,
                                                              caplog) -> None:
    files = db_ssl_files(db)
    set_ssl(db, pki.switch.key, pki.switch.cert, pki.switch.ca)
    assert handshake(files, pki.controller) == "hello"
    with caplog.at_level(logging.ERROR, logger="ovsbpfd.ovsdb.ssl_config"):
        set_ssl(db, pki.rogue.key, pki.switch.cert, pki.switch.ca)  # key of another cert
        assert handshake(files, pki.controller) == "hello"
    assert "cannot load SSL files" in caplog.text


def test_ovsdb_ssl_files_that_never_loaded_refuse(db: Database, tmp_path: Path,
                                                  caplog) -> None:
    files = SslFiles(KEY, CERT, CA, bootstrap_ca_cert=True)
    files.bind(lookup_in(db))
    missing = str(tmp_path / "missing.pem")
    set_ssl(db, missing, missing, missing)
    with caplog.at_level(logging.ERROR, logger="ovsbpfd.ovsdb.ssl_config"):
        with pytest.raises(SslNotConfigured):
            files.client_context()
    assert "bootstrapping it is not supported" in caplog.text


def test_ovsdb_ssl_bad_reference_is_logged_not_fatal(db: Database, caplog) -> None:
    files = SslFiles("db:Open_vSwitch,Nope,private_key", CERT, CA)
    files.bind(lookup_in(db))
    with caplog.at_level(logging.ERROR, logger="ovsbpfd.ovsdb.ssl_config"):
        assert files.names() == (None, None, None)
    assert "no table named Nope" in caplog.text


def test_ovsdb_ssl_plain_file_names_need_no_database(pki: Pki) -> None:
    files = SslFiles(pki.switch.key, pki.switch.cert, pki.switch.ca)
    assert handshake(files, pki.controller) == "hello"
    assert handshake(files, pki.rogue) != "hello"


# --- beside Debian's ovsdb-server -------------------------------------------------
REF_SSL_OPTIONS = [f"--private-key={KEY}", f"--certificate={CERT}", f"--bootstrap-ca-cert={CA}"]
MANAGERS = "db:Open_vSwitch,Open_vSwitch,manager_options"


@contextlib.contextmanager
def reference_server(tmp: Path) -> Iterator[str]:
    """Debian's ovsdb-server started as ovs-ctl starts it (by hand, by pid)."""
    sock, db = str(tmp / "ref.sock"), str(tmp / "ref.db")
    subprocess.run(["ovsdb-tool", "create", db, schema_path()], check=True)
    proc = subprocess.Popen(
        ["ovsdb-server", f"--remote=punix:{sock}", f"--remote={MANAGERS}", *REF_SSL_OPTIONS,
         f"--unixctl={tmp}/ref.ctl", "--no-chdir", f"--log-file={tmp}/ref.log", db],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_socket(sock, proc)
        yield sock
    finally:
        stop_process(proc)


class Side:
    """One server of the comparison, driven with ovs-vsctl."""

    def __init__(self, sock: str) -> None:
        self.sock = sock
        self.port = free_port()

    def vsctl(self, *args: str) -> str:
        return subprocess.run(["ovs-vsctl", f"--db=unix:{self.sock}", "--no-wait",
                               "--timeout=10", *args],
                              capture_output=True, text=True, check=True).stdout

    def manager(self) -> tuple[bool, dict[str, str]]:
        out = json.loads(self.vsctl("--format=json", "--columns=is_connected,status",
                                    "list", "Manager"))
        ((is_connected, status),) = out["data"]
        return is_connected, dict(status[1])

    def shape(self) -> tuple[bool, dict[str, str]]:
        """The Manager row with our own port and the seconds left out."""
        is_connected, status = self.manager()
        for key in ("sec_since_connect", "sec_since_disconnect"):
            if key in status and status[key] != "0":
                status[key] = "N"
        if status.get("bound_port") == str(self.port):
            status["bound_port"] = "PORT"
        return is_connected, status

    def list_dbs(self, pair: KeyPair) -> int:
        return subprocess.run(
            ["ovsdb-client", "--timeout=3", f"--private-key={pair.key}",
             f"--certificate={pair.cert}", f"--ca-cert={pair.ca}", "list-dbs",
             f"ssl:127.0.0.1:{self.port}"], capture_output=True, timeout=10).returncode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_both(sides: list[Side], predicate: Callable[[Side], bool], timeout: float,
              what: str) -> None:
    deadline = time.monotonic() + timeout
    while not all(predicate(side) for side in sides):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_ovsdb_ssl_manager_status_as_ovsdb_server(tmp_path: Path, pki: Pki) -> None:
    """pssl: and ssl: managers before and after set-ssl: the same Manager rows
    (ovsdb-server writes them every 2.5 s) and the same clients let in."""
    from tests.system.test_sys_manager_ssl import TlsManager

    far_end = TlsManager(pki.controller)
    extra = ["--remote", MANAGERS, *REF_SSL_OPTIONS]
    try:
        with reference_server(tmp_path) as ref_sock, \
                ovsbpfd_server(str(tmp_path), extra=extra) as (our_sock, _proc):
            sides = [Side(ref_sock), Side(our_sock)]
            for side in sides:
                side.vsctl("init")
                side.vsctl("set-manager", f"pssl:{side.port}:127.0.0.1")
            wait_both(sides, lambda s: "bound_port" in s.manager()[1], 10, "listeners")
            ref, ours = sides
            assert ours.shape() == ref.shape() == (False, {
                "bound_port": "PORT", "sec_since_connect": "0", "sec_since_disconnect": "0"})
            assert [s.list_dbs(pki.controller) for s in sides] == [1, 1]

            for side in sides:
                side.vsctl("set-manager", f"ssl:127.0.0.1:{far_end.port}")
            wait_both(sides, lambda s: s.manager()[1].get("state") == "BACKOFF", 10,
                      "BACKOFF")
            assert ours.shape() == ref.shape() == (False, {"state": "BACKOFF"})
            assert far_end.peers == []

            for side in sides:
                side.vsctl("set-ssl", pki.switch.key, pki.switch.cert, pki.switch.ca)
            wait_both(sides, lambda s: s.manager()[0], 25, "both connected")
            assert ours.shape()[1].keys() == ref.shape()[1].keys() == {
                "state", "sec_since_connect"}
            assert ours.manager()[1]["state"] == ref.manager()[1]["state"] == "ACTIVE"
            assert far_end.peers == ["switch", "switch"]
    finally:
        far_end.close()
