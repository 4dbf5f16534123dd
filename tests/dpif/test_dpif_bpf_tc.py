"""Attaching ports touches only our own TC filter (and a clsact we created)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from ovsbpfd.dpif.bpf.libbpf import tc_query_ingress
from ovsbpfd.dpif.bpf.provider import TC_HANDLE, TC_PRIORITY, BpfDpif
from ovsbpfd.dpif.provider import DpifError

FOREIGN_PREF = "49153"


def tc(*args: str) -> str:
    return subprocess.run(["tc", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def veth() -> Iterator[str]:
    name = f"obt{secrets.token_hex(3)}"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"],
                   check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


@pytest.fixture
def dpif() -> Iterator[BpfDpif]:
    pin_root = f"/sys/fs/bpf/ovsbpfd-test-tc-{os.getpid()}-{secrets.token_hex(3)}"
    dp = BpfDpif(pin_root=pin_root)
    try:
        yield dp
    finally:
        try:
            dp.destroy()
        finally:
            shutil.rmtree(pin_root, ignore_errors=True)


def add_foreign_filter(dev: str) -> None:
    tc("qdisc", "add", "dev", dev, "clsact")
    tc("filter", "add", "dev", dev, "ingress", "pref", FOREIGN_PREF, "protocol", "all",
       "u32", "match", "u32", "0", "0", "classid", "1:1")


def test_dpif_bpf_port_del_leaves_foreign_filter(veth: str, dpif: BpfDpif) -> None:
    add_foreign_filter(veth)
    ifindex = socket.if_nametoindex(veth)
    port_no = dpif.port_add(veth, ifindex)
    assert tc_query_ingress(ifindex, TC_HANDLE, TC_PRIORITY) is not None
    shown = tc("filter", "show", "dev", veth, "ingress")
    assert f"pref {FOREIGN_PREF} u32" in shown and "ovsbpf_ingress" in shown

    dpif.port_del(port_no)
    assert tc_query_ingress(ifindex, TC_HANDLE, TC_PRIORITY) is None
    shown = tc("filter", "show", "dev", veth, "ingress")
    assert f"pref {FOREIGN_PREF} u32" in shown and "ovsbpf_ingress" not in shown
    assert "clsact" in tc("qdisc", "show", "dev", veth)  # not ours to remove


def test_dpif_bpf_port_del_removes_clsact_it_created(veth: str, dpif: BpfDpif) -> None:
    ifindex = socket.if_nametoindex(veth)
    port_no = dpif.port_add(veth, ifindex)
    assert "clsact" in tc("qdisc", "show", "dev", veth)
    dpif.port_del(port_no)
    assert "clsact" not in tc("qdisc", "show", "dev", veth)


def test_dpif_bpf_port_del_works_inside_a_running_event_loop(veth: str, dpif: BpfDpif) -> None:
    """The daemon deletes ports from its asyncio loop, where pyroute2's sync API refuses."""
    ifindex = socket.if_nametoindex(veth)
    port_no = dpif.port_add(veth, ifindex)

    async def delete() -> None:
        dpif.port_del(port_no)

    asyncio.run(delete())
    assert dpif.port_list() == []
    assert "clsact" not in tc("qdisc", "show", "dev", veth)


def test_dpif_bpf_port_del_keeps_created_clsact_others_use(veth: str, dpif: BpfDpif) -> None:
    ifindex = socket.if_nametoindex(veth)
    port_no = dpif.port_add(veth, ifindex)
    tc("filter", "add", "dev", veth, "ingress", "pref", FOREIGN_PREF, "protocol", "all",
       "u32", "match", "u32", "0", "0", "classid", "1:1")
    dpif.port_del(port_no)
    assert f"pref {FOREIGN_PREF} u32" in tc("filter", "show", "dev", veth, "ingress")


def test_dpif_bpf_port_add_missing_device_is_enodev(dpif: BpfDpif) -> None:
    with pytest.raises(DpifError) as exc:
        dpif.port_add("nosuchdev", 0x7FFFFFF0)
    assert exc.value.errno == 19  # ENODEV
    assert dpif.port_list() == []


def test_dpif_bpf_port_add_rejects_bad_names(veth: str, dpif: BpfDpif) -> None:
    ifindex = socket.if_nametoindex(veth)
    for bad in ("", "x" * 64):
        with pytest.raises(DpifError):
            dpif.port_add(bad, ifindex)
    assert dpif.port_list() == []
    assert "ovsbpf_ingress" not in tc("filter", "show", "dev", veth, "ingress")
