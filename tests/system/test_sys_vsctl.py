"""Stock ovs-vsctl / ovs-appctl against the real ovsbpfd process.

Every ovs-vsctl here runs WITHOUT --no-wait, so it waits for the daemon to
apply the change and set cur_cfg; each must still return within seconds.
Names are unique per test process: the root namespace is shared.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.daemon_proc import Daemon
from tests.system.netns import Host, run, unique_name

pytestmark = pytest.mark.system

PROMPT = 5.0  # seconds an ovs-vsctl may take


def timed_vsctl(daemon: Daemon, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    start = time.monotonic()
    result = daemon.vsctl(*args, check=check)
    elapsed = time.monotonic() - start
    assert elapsed < PROMPT, f"ovs-vsctl {' '.join(args)} took {elapsed:.1f}s"
    return result


def get(daemon: Daemon, table: str, record: str, column: str) -> str:
    return daemon.vsctl("get", table, record, column).stdout.strip()


def db_dump(daemon: Daemon) -> str:
    """Every user-visible column of the tables the tests touch."""
    out = []
    for table in ("Open_vSwitch", "Bridge", "Port", "Interface", "Controller"):
        text = daemon.vsctl("--columns=_uuid,name,ports,interfaces,other_config,tag,"
                            "trunks,type,target,bridges,external_ids"
                            if table != "Controller" else "--columns=_uuid,target",
                            "list", table, check=False).stdout
        out.append(text)
    return "\n".join(out)


class Veth:
    """A veth pair in the root namespace (no addresses), removed on close."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.peer = name + "p"
        run("ip", "link", "add", name, "type", "veth", "peer", "name", self.peer)
        run("sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=1")
        run("sysctl", "-qw", f"net.ipv6.conf.{self.peer}.disable_ipv6=1")
        run("ip", "link", "set", name, "up")
        run("ip", "link", "set", self.peer, "up")

    def ifindex(self) -> int:
        return int(Path(f"/sys/class/net/{self.name}/ifindex").read_text())

    def close(self) -> None:
        run("ip", "link", "del", self.name, check=False)


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


@pytest.fixture(scope="module")
def dummy_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path_factory.mktemp("vsctl"), datapath="dummy")
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop(cleanup=True)


@pytest.fixture
def names(dummy_daemon: Daemon) -> Iterator[dict[str, str]]:
    """Unique bridge/port names; bridges left by the test are deleted after it."""
    n = {key: unique_name(prefix, i) for i, (key, prefix) in enumerate(
        [("br", "bvs"), ("br2", "bvt"), ("veth", "vvs"), ("veth2", "vvt"),
         ("int", "ivs"), ("missing", "mvs")])}
    yield n
    for key in ("br", "br2"):
        dummy_daemon.vsctl("--if-exists", "del-br", n[key], check=False)


def test_init_addbr_addport_and_queries(dummy_daemon: Daemon, names: dict[str, str]) -> None:
    d, br = dummy_daemon, names["br"]
    veth = Veth(names["veth"])
    try:
        timed_vsctl(d, "init")
        timed_vsctl(d, "add-br", br)
        assert timed_vsctl(d, "br-exists", br).returncode == 0
        assert d.vsctl("br-exists", names["br2"], check=False).returncode == 2
        assert br in timed_vsctl(d, "list-br").stdout.split()
        timed_vsctl(d, "add-port", br, veth.name)
        assert timed_vsctl(d, "list-ports", br).stdout.split() == [veth.name]
        assert timed_vsctl(d, "port-to-br", veth.name).stdout.strip() == br
        assert timed_vsctl(d, "iface-to-br", veth.name).stdout.strip() == br
        # the daemon filled in status before acknowledging the change
        assert int(get(d, "Interface", veth.name, "ofport")) >= 1
        assert int(get(d, "Interface", veth.name, "ifindex")) == veth.ifindex()
        assert get(d, "Interface", veth.name, "link_state") == "up"
        assert get(d, "Interface", br, "ofport") == "65534"
        assert re.fullmatch(r'"[0-9a-f]{16}"', get(d, "Bridge", br, "datapath_id"))
        show = timed_vsctl(d, "show").stdout
        assert f"Bridge {br}" in show and f"Port {veth.name}" in show
        assert get(d, "Open_vSwitch", ".", "cur_cfg") == get(d, "Open_vSwitch", ".", "next_cfg")
        # the bridge's LOCAL port is a real device the host can address
        assert link_exists(br)
        timed_vsctl(d, "del-port", br, veth.name)
        assert timed_vsctl(d, "list-ports", br).stdout.split() == []
        assert link_exists(veth.name)  # not ours: stays
        timed_vsctl(d, "del-br", br)
        assert br not in d.vsctl("list-br").stdout.split()
        assert not link_exists(br)
    finally:
        veth.close()


def test_may_exist_and_if_exists(dummy_daemon: Daemon, names: dict[str, str]) -> None:
    d, br = dummy_daemon, names["br"]
    veth = Veth(names["veth"])
    try:
        timed_vsctl(d, "add-br", br)
        timed_vsctl(d, "--may-exist", "add-br", br)
        timed_vsctl(d, "add-port", br, veth.name)
        timed_vsctl(d, "--may-exist", "add-port", br, veth.name)
        assert d.vsctl("list-ports", br).stdout.split() == [veth.name]
        timed_vsctl(d, "--if-exists", "del-port", br, "nonexistent0")
        timed_vsctl(d, "--if-exists", "del-br", names["br2"])
        timed_vsctl(d, "del-port", veth.name)
        timed_vsctl(d, "--if-exists", "del-port", veth.name)
        timed_vsctl(d, "del-br", br)
        timed_vsctl(d, "--if-exists", "del-br", br)
    finally:
        veth.close()


def test_set_get_list_find_clear_add_remove(dummy_daemon: Daemon, names: dict[str, str]) -> None:
    d, br = dummy_daemon, names["br"]
    veth = Veth(names["veth"])
    try:
        timed_vsctl(d, "add-br", br)
        timed_vsctl(d, "add-port", br, veth.name)
        # Bridge
        timed_vsctl(d, "set", "Bridge", br, "other_config:datapath-id=00000000000000ab")
        assert get(d, "Bridge", br, "datapath_id") == '"00000000000000ab"'
        timed_vsctl(d, "set", "Bridge", br, "external_ids:owner=test")
        assert get(d, "Bridge", br, "external_ids:owner") == "test"
        timed_vsctl(d, "remove", "Bridge", br, "external_ids", "owner")
        assert get(d, "Bridge", br, "external_ids") == "{}"
        timed_vsctl(d, "set", "Bridge", br, "fail_mode=secure")
        assert get(d, "Bridge", br, "fail_mode") == "secure"
        timed_vsctl(d, "clear", "Bridge", br, "fail_mode")
        assert get(d, "Bridge", br, "fail_mode") == "[]"
        # Port
        timed_vsctl(d, "set", "Port", veth.name, "tag=10")
        assert get(d, "Port", veth.name, "tag") == "10"
        timed_vsctl(d, "clear", "Port", veth.name, "tag")
        timed_vsctl(d, "add", "Port", veth.name, "trunks", "20", "30")
        assert get(d, "Port", veth.name, "trunks") == "[20, 30]"
        timed_vsctl(d, "remove", "Port", veth.name, "trunks", "20")
        assert get(d, "Port", veth.name, "trunks") == "[30]"
        found = timed_vsctl(d, "--bare", "--columns=name", "find", "Port", "trunks=30").stdout
        assert found.split() == [veth.name]
        # Interface
        timed_vsctl(d, "set", "Interface", veth.name, "ofport_request=7")
        assert get(d, "Interface", veth.name, "ofport") == "7"
        listed = timed_vsctl(d, "--columns=name,ofport,error", "list", "Interface",
                             veth.name).stdout
        assert re.search(r"ofport\s*:\s*7", listed), listed
        found = timed_vsctl(d, "--bare", "--columns=name", "find", "Interface",
                            "ofport=7").stdout
        assert found.split() == [veth.name]
        # Controller (loopback port nobody listens on)
        timed_vsctl(d, "set-controller", br, "tcp:127.0.0.1:1")
        assert d.vsctl("get-controller", br).stdout.strip() == "tcp:127.0.0.1:1"
        ctl = d.vsctl("--bare", "--columns=_uuid", "find", "Controller",
                      'target="tcp:127.0.0.1:1"').stdout.split()[0]
        assert get(d, "Controller", ctl, "target") == '"tcp:127.0.0.1:1"'
        timed_vsctl(d, "set", "Controller", ctl, "max_backoff=2000")
        assert get(d, "Controller", ctl, "max_backoff") == "2000"
        assert get(d, "Controller", ctl, "is_connected") == "false"
        timed_vsctl(d, "del-controller", br)
        assert d.vsctl("list", "Controller").stdout.strip() == ""
    finally:
        veth.close()


def test_missing_netdev_keeps_row_with_error(dummy_daemon: Daemon, names: dict[str, str]
                                             ) -> None:
    d, br, missing = dummy_daemon, names["br"], names["missing"]
    timed_vsctl(d, "add-br", br)
    result = timed_vsctl(d, "add-port", br, missing)
    assert f"Error detected while setting up '{missing}'" in result.stderr
    assert "could not open network device" in result.stderr
    assert missing in d.vsctl("list-ports", br).stdout.split()
    assert get(d, "Interface", missing, "ofport") == "-1"
    assert get(d, "Interface", missing, "error") == (
        f'"could not open network device {missing} (No such device)"')
    # the netdev appears later: the daemon attaches it by itself
    veth = Veth(missing)
    try:
        deadline = time.monotonic() + 5
        while get(d, "Interface", missing, "ofport") == "-1":
            assert time.monotonic() < deadline, "netdev was not attached when it appeared"
            time.sleep(0.1)
        assert get(d, "Interface", missing, "error") == "[]"
    finally:
        veth.close()


def test_bad_input_changes_nothing(dummy_daemon: Daemon, names: dict[str, str]) -> None:
    d, br = dummy_daemon, names["br"]
    timed_vsctl(d, "add-br", br)
    before = db_dump(d)
    r = d.vsctl("list", "NoSuchTable", check=False)
    assert r.returncode != 0 and 'unknown table "NoSuchTable"' in r.stderr
    r = d.vsctl("get", "Bridge", br, "no_such_column", check=False)
    assert r.returncode != 0 and "does not contain a column" in r.stderr
    r = d.vsctl("set", "Bridge", br, "no_such_column=1", check=False)
    assert r.returncode != 0 and "does not contain a column" in r.stderr
    r = d.vsctl("add-br", br, check=False)
    assert r.returncode != 0
    assert f"cannot create a bridge named {br} because a bridge named {br} already exists" in (
        r.stderr)
    r = d.vsctl("set", "Port", br, "tag=abc", check=False)
    assert r.returncode != 0
    assert db_dump(d) == before
    assert d.appctl("version").returncode == 0  # daemon still there


def test_internal_port_is_a_host_device(dummy_daemon: Daemon, names: dict[str, str]) -> None:
    d, br, internal = dummy_daemon, names["br"], names["int"]
    timed_vsctl(d, "add-br", br)
    timed_vsctl(d, "add-port", br, internal, "--", "set", "Interface", internal,
                "type=internal")
    assert link_exists(internal)
    ifindex = int(Path(f"/sys/class/net/{internal}/ifindex").read_text())
    assert int(get(d, "Interface", internal, "ifindex")) == ifindex
    mac = Path(f"/sys/class/net/{internal}/address").read_text().strip()
    assert get(d, "Interface", internal, "mac_in_use") == f'"{mac}"'
    run("ip", "link", "set", internal, "up")  # a real device (traffic: test_sys_forwarding)
    timed_vsctl(d, "del-port", br, internal)
    assert not link_exists(internal)


def test_unixctl_commands(dummy_daemon: Daemon, names: dict[str, str]) -> None:
    d, br = dummy_daemon, names["br"]
    timed_vsctl(d, "add-br", br)
    assert d.appctl("version").stdout.startswith("ovsbpfd (Open vSwitch)")
    # by name, through the pidfile, as `ovs-appctl -t ovsbpfd` users do
    r = subprocess.run(["ovs-appctl", "-t", "ovsbpfd", "version"], env=d.env,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "ovsbpfd" in r.stdout
    r = subprocess.run(["ovs-appctl", "-t", "ovsdb-server", "version"], env=d.env,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert "missed:" in d.appctl("dpctl/show").stdout
    d.appctl("dpctl/dump-flows")
    d.appctl("dpctl/dump-flows", "-m")
    assert "MAC" in d.appctl("fdb/show", br).stdout
    r = d.appctl("fdb/show", "nosuchbr", check=False)
    assert r.returncode == 2 and "no such bridge" in r.stderr
    assert "vswitch" in d.appctl("vlog/list").stdout
    d.appctl("vlog/set", "vswitch:file:dbg")
    r = d.appctl("vlog/set", "bogus:dbg", check=False)
    assert r.returncode == 2
    assert "bridges:" in d.appctl("memory/show").stdout
    r = d.appctl("no/such/command", check=False)
    assert r.returncode == 2 and "is not a valid command" in r.stderr
    r = d.appctl("exit", "--bogus", check=False)
    assert r.returncode == 2
    assert d.appctl("version").returncode == 0


# ------------------------------------------------------------ process lifecycle


def test_sigterm_exits_zero_and_db_survives_restart(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, datapath="dummy")
    br, veth = unique_name("bvr", 1), Veth(unique_name("vvr", 1))
    try:
        daemon.start()
        assert (daemon.dbdir / "conf.db").exists()
        daemon.vsctl("add-br", br)
        daemon.vsctl("add-port", br, veth.name, "--", "set", "Interface", veth.name,
                     "ofport_request=5")
        ctl = daemon.ctl_path()
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=20) == 0
        assert not ctl.exists()
        assert not (daemon.rundir / "ovsbpfd.pid").exists()
        assert not (daemon.rundir / "ovsdb-server.pid").exists()

        daemon.start()  # same dbdir: the database is reloaded
        assert br in daemon.vsctl("list-br").stdout.split()
        assert daemon.vsctl("list-ports", br).stdout.split() == [veth.name]
        deadline = time.monotonic() + 5
        while get(daemon, "Interface", veth.name, "ofport") != "5":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert link_exists(br)
        daemon.vsctl("del-br", br)
    finally:
        daemon.stop(cleanup=True)
        veth.close()
        run("ip", "link", "del", br, check=False)


def test_second_instance_refuses_same_rundir(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, datapath="dummy")
    try:
        daemon.start()
        r = subprocess.run(
            ["python3", "-m", "ovsbpfd", "--rundir", str(daemon.rundir), "--dbdir",
             str(daemon.dbdir), "--datapath", "dummy"],
            env=daemon.env, capture_output=True, text=True, timeout=20, cwd=os.getcwd())
        assert r.returncode == 1 and "already running" in r.stderr
        assert daemon.appctl("version").returncode == 0
    finally:
        daemon.stop(cleanup=True)


# ------------------------------------------------------------ bpf datapath


FOREIGN_PREF = 49000


def tc_ingress(dev: str) -> str:
    return run("tc", "filter", "show", "dev", dev, "ingress", check=False).stdout


def test_bpf_ports_removed_exactly(tmp_path: Path) -> None:
    """Deleting ports/bridges removes our filters and devices, nothing else."""
    daemon = Daemon(tmp_path, datapath="bpf")
    br = unique_name("bvb", 1)
    internal = unique_name("ivb", 1)
    veth = Veth(unique_name("vvb", 1))
    veth2 = Veth(unique_name("vvb", 2))
    try:
        daemon.start()
        timed_vsctl(daemon, "add-br", br)
        timed_vsctl(daemon, "add-port", br, veth.name)
        timed_vsctl(daemon, "add-port", br, veth2.name)
        timed_vsctl(daemon, "add-port", br, internal, "--", "set", "Interface", internal,
                    "type=internal")
        assert "bpf" in tc_ingress(veth.name)
        assert int(get(daemon, "Interface", veth.name, "ofport")) >= 1
        ours = tc_ingress(veth.name)
        # a foreign filter (classic BPF that never matches) on the same hook
        # must survive our removal
        run("tc", "filter", "add", "dev", veth.name, "ingress", "pref", str(FOREIGN_PREF),
            "protocol", "all", "bpf", "bytecode", "1,6 0 0 0,")
        timed_vsctl(daemon, "del-port", br, veth.name)
        filters = tc_ingress(veth.name)
        assert "bytecode" in filters, filters
        assert all(f"pref {FOREIGN_PREF} " in line
                   for line in filters.splitlines() if line.startswith("filter")), (
            f"before:\n{ours}\nafter:\n{filters}")
        assert link_exists(veth.name)
        assert link_exists(internal)
        timed_vsctl(daemon, "del-br", br)
        assert not link_exists(internal) and not link_exists(br)
        assert "bpf" not in tc_ingress(veth2.name)
        assert link_exists(veth2.name)
    finally:
        daemon.stop(cleanup=True)
        veth.close()
        veth2.close()
        for name in (br, internal):
            run("ip", "link", "del", name, check=False)


def test_bpf_restart_keeps_forwarding_and_readopts_ports(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, datapath="bpf")
    br = unique_name("bvk", 1)
    hosts = [Host(unique_name("nsk", i), unique_name("vvk", i), f"10.252.0.{i}")
             for i in (1, 2)]
    try:
        daemon.start()
        for host in hosts:
            host.create()
        daemon.vsctl("add-br", br)
        for host in hosts:
            daemon.vsctl("add-port", br, host.port)
        ofports = [get(daemon, "Interface", h.port, "ofport") for h in hosts]
        assert hosts[0].ping(hosts[1].ip_addr, count=2), daemon.log_text()
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=20) == 0
        # the pinned datapath forwards with the daemon gone
        assert "bpf" in tc_ingress(hosts[0].port)
        assert hosts[0].ping(hosts[1].ip_addr, count=2)
        daemon.start()
        deadline = time.monotonic() + 5
        while [get(daemon, "Interface", h.port, "ofport") for h in hosts] != ofports:
            assert time.monotonic() < deadline, daemon.log_text()
            time.sleep(0.1)
        assert all(get(daemon, "Interface", h.port, "error") == "[]" for h in hosts)
        assert hosts[0].ping(hosts[1].ip_addr, count=2), daemon.log_text()
    finally:
        daemon.stop(cleanup=True)
        for host in hosts:
            host.close()
        run("ip", "link", "del", br, check=False)
