"""The libbpf binding on a real loaded object: map walks and per-CPU values."""

from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Iterator

import pytest

from ovsbpfd.dpif.bpf.libbpf import BPF_NOEXIST, LibbpfError, num_possible_cpus
from ovsbpfd.dpif.bpf.loader import LoadedDatapath, load_datapath, remove_pins


@pytest.fixture
def loaded() -> Iterator[LoadedDatapath]:
    pin_root = f"/sys/fs/bpf/ovsbpfd-test-lib-{os.getpid()}-{secrets.token_hex(3)}"
    dp = load_datapath(pin_root)
    try:
        yield dp
    finally:
        remove_pins(dp, pin_root)
        dp.close()


def u32(n: int) -> bytes:
    return struct.pack("=I", n)


def test_dpif_bpf_walk_yields_each_key_once_when_entries_vanish(loaded: LoadedDatapath) -> None:
    table = loaded.maps["port_by_ifindex"]
    for n in range(1, 41):
        table.update(u32(n), u32(n))
    walked = []
    for key in table.keys():
        walked.append(key)
        if len(walked) == 10:
            table.delete(key)  # the kernel now restarts the walk from the first key
    assert len(walked) == len(set(walked)) == 40


def test_dpif_bpf_update_flags_and_delete(loaded: LoadedDatapath) -> None:
    table = loaded.maps["port_by_ifindex"]
    table.update(u32(7), u32(1))
    with pytest.raises(LibbpfError) as exc:
        table.update(u32(7), u32(2), BPF_NOEXIST)
    assert exc.value.errno == 17  # EEXIST
    assert table.lookup(u32(7)) == u32(1)
    assert table.delete(u32(7)) and not table.delete(u32(7))
    assert table.lookup(u32(7)) is None


def test_dpif_bpf_percpu_values_one_per_cpu(loaded: LoadedDatapath) -> None:
    stats = loaded.maps["dp_stats"]
    stats.update(u32(0), struct.pack("=QQQ", 1, 2, 3))
    values = stats.percpu_values(u32(0))
    assert len(values) == num_possible_cpus()
    assert all(v == struct.pack("=QQQ", 1, 2, 3) for v in values)
