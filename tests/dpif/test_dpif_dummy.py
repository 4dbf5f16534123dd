"""What only the dummy datapath has: its packet API, its limits, and the factory."""

from __future__ import annotations

import errno
import select

import pytest

from ovsbpfd.dpif import open_dpif
from ovsbpfd.dpif.dummy import MAX_MASKS, DummyDpif
from ovsbpfd.dpif.packet import parse_packet
from ovsbpfd.dpif.packet_build import udp_frame
from ovsbpfd.dpif.provider import DpifError
from ovsbpfd.dpif.types import UPCALL_ACTION, UPCALL_MISS, FlowKey, Output, Userspace

A, B = "02:0d:00:00:00:01", "02:0d:00:00:00:02"
EXACT = FlowKey.all_ones()


def frame(sport: int = 1) -> bytes:
    return udp_frame(A, B, "10.5.0.1", "10.5.0.2", sport, 9, b"data")


def dummy_with_ports(**kw: int) -> tuple[DummyDpif, int, int]:
    dp = DummyDpif(**kw)
    return dp, dp.port_add("p1", 11), dp.port_add("p2", 12)


def test_dpif_dummy_open_dpif_factory() -> None:
    dp = open_dpif("dummy", max_flows=3)
    try:
        assert isinstance(dp, DummyDpif) and dp.type == "dummy" and dp.max_flows == 3
    finally:
        dp.close()
    with pytest.raises(ValueError):
        open_dpif("netlink")


def test_dpif_dummy_port_numbers() -> None:
    dp = DummyDpif(max_ports=4)
    assert dp.port_add("p1", 1) == 1
    assert dp.port_add("p3", 3, port_no=3) == 3
    assert dp.port_add("p2", 2) == 2  # the lowest free number
    for name, ifindex, port_no, code in [
        ("p1", 9, None, errno.EEXIST),  # name taken
        ("px", 1, None, errno.EEXIST),  # ifindex taken
        ("px", 9, 2, errno.EEXIST),  # number taken
        ("px", 9, 0, errno.EINVAL),
        ("px", 9, 4, errno.EINVAL),
        ("px", 9, None, errno.EFBIG),  # 1..3 all used
        ("", 9, None, errno.EINVAL),
        ("px", 0, None, errno.EINVAL),
        ("px", "9", None, errno.EINVAL),
        ("px", 9, "2", errno.EINVAL),
    ]:
        with pytest.raises(DpifError) as exc:
            dp.port_add(name, ifindex, port_no)
        assert exc.value.errno == code, (name, ifindex, port_no)
    assert [(p.port_no, p.name, p.ifindex) for p in dp.port_list()] == [
        (1, "p1", 1), (2, "p2", 2), (3, "p3", 3)]
    dp.port_del(2)
    assert dp.port_add("p2b", 22) == 2
    dp.destroy()
    assert dp.port_list() == []


def test_dpif_dummy_inject_on_unknown_port_is_enoent() -> None:
    dp, _, _ = dummy_with_ports()
    with pytest.raises(DpifError) as exc:
        dp.inject(99, frame())
    assert exc.value.errno == errno.ENOENT
    assert dp.recv() == [] and dp.stats().n_missed == 0
    assert dp.take_output(99) == []


def test_dpif_dummy_runt_frames_are_rx_dropped() -> None:
    dp, p1, _ = dummy_with_ports()
    dp.inject(p1, b"\x02" * 13)
    stats = dp.port_stats(p1)
    assert (stats.rx_packets, stats.rx_dropped) == (1, 1)
    assert dp.recv() == [] and dp.stats().n_missed == 0


def test_dpif_dummy_upcall_queue_overflow_counts_lost() -> None:
    dp, p1, _ = dummy_with_ports(upcall_queue_len=4)
    for sport in range(6):
        dp.inject(p1, frame(sport))
    stats = dp.stats()
    assert (stats.n_missed, stats.n_lost) == (6, 2)
    upcalls = dp.recv()
    assert [u.key.tp_src for u in upcalls] == [0, 1, 2, 3]
    assert all(u.kind == UPCALL_MISS and not u.truncated for u in upcalls)


def test_dpif_dummy_output_queue_overflow_counts_tx_dropped() -> None:
    dp, p1, p2 = dummy_with_ports(output_queue_len=2)
    dp.flow_put(parse_packet(frame(), p1), EXACT, [Output(p2)])
    for _ in range(3):
        dp.inject(p1, frame())
    assert len(dp.take_output(p2)) == 2
    stats = dp.port_stats(p2)
    assert (stats.tx_packets, stats.tx_dropped) == (2, 1)
    assert dp.flow_dump()[0].stats.packets == 3


def test_dpif_dummy_flow_table_full_is_efbig() -> None:
    dp, p1, p2 = dummy_with_ports(max_flows=2)
    keys = [parse_packet(frame(s), p1) for s in range(3)]
    dp.flow_put(keys[0], EXACT, [Output(p2)])
    dp.flow_put(keys[1], EXACT, [Output(p2)])
    with pytest.raises(DpifError) as exc:
        dp.flow_put(keys[2], EXACT, [Output(p2)])
    assert exc.value.errno == errno.EFBIG
    dp.flow_put(keys[1], EXACT, [])  # modifying an existing flow still works
    assert dp.stats().n_flows == 2


def test_dpif_dummy_output_to_missing_port_is_dropped() -> None:
    dp, p1, p2 = dummy_with_ports()
    dp.flow_put(parse_packet(frame(), p1), EXACT, [Output(p2), Output(77)])
    dp.port_del(p2)
    dp.inject(p1, frame())
    assert dp.take_output(p2) == [] and dp.take_output(77) == []
    assert dp.flow_dump()[0].stats.packets == 1


def test_dpif_dummy_execute_userspace_gives_action_upcall() -> None:
    dp, _, p2 = dummy_with_ports()
    dp.execute(frame(), [Userspace(cookie=5), Output(p2)])
    (upcall,) = dp.recv()
    assert (upcall.kind, upcall.cookie, upcall.packet) == (UPCALL_ACTION, 5, frame())
    assert dp.take_output(p2) == [frame()]


def test_dpif_dummy_eventfd_tracks_queue_and_closes() -> None:
    dp, p1, _ = dummy_with_ports()
    fd = dp.upcall_fd()
    dp.inject(p1, frame(1))
    dp.inject(p1, frame(2))
    assert select.select([fd], [], [], 0)[0] == [fd]
    assert len(dp.recv(max_batch=1)) == 1
    assert select.select([fd], [], [], 0)[0] == [fd]
    assert len(dp.recv()) == 1
    assert select.select([fd], [], [], 0)[0] == []
    dp.close()
    with pytest.raises(DpifError) as exc:
        dp.upcall_fd()
    assert exc.value.errno == errno.EBADF


def test_dpif_dummy_lookup_scans_every_mask() -> None:
    dp, p1, p2 = dummy_with_ports()
    key = parse_packet(frame(), p1)
    for bit in range(MAX_MASKS - 1):
        mask = FlowKey(in_port=0xFFFFFFFF, ip_dst=(1 << (bit + 8)).to_bytes(16, "big"))
        dp.flow_put(key.replace(in_port=0), mask, [])  # in_port 0 never matches p1
    dp.flow_put(key, FlowKey(in_port=0xFFFFFFFF, tp_src=0xFFFF), [Output(p2)])
    dp.inject(p1, frame())
    assert dp.take_output(p2) == [frame()]
    assert dp.stats().n_masks == MAX_MASKS


def test_dpif_dummy_rejects_non_bytes_packets() -> None:
    dp, p1, p2 = dummy_with_ports()
    for call in (lambda: dp.inject(p1, 64), lambda: dp.execute("frame", [Output(p2)])):
        with pytest.raises(DpifError) as exc:
            call()  # type: ignore[no-untyped-call]
        assert exc.value.errno == errno.EINVAL
    assert dp.port_stats(p1).rx_packets == 0 and dp.take_output(p2) == []
