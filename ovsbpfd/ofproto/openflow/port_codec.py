"""ofp_port (64 bytes) and ofp_port_stats (112 bytes) <-> the shared records."""

from __future__ import annotations

import struct

from ovsbpfd.ofproto.openflow.reader import Reader
from ovsbpfd.ofproto.types import OfPort, OfPortStats

OFP_PORT = struct.Struct("!I4x6s2x16sIIIIIIII")
OFP_PORT_STATS = struct.Struct("!I4x12QII")
OFP_MAX_PORT_NAME_LEN = 16


def encode_port(port: OfPort) -> bytes:
    name = port.name.encode("utf-8", "replace")[:OFP_MAX_PORT_NAME_LEN - 1]
    return OFP_PORT.pack(port.port_no, bytes(port.hw_addr[:6]).ljust(6, b"\0"), name,
                         port.config, port.state, port.curr, port.advertised,
                         port.supported, port.peer, port.curr_speed, port.max_speed)


def decode_port(reader: Reader) -> OfPort:
    (port_no, hw_addr, name, config, state, curr, advertised, supported, peer,
     curr_speed, max_speed) = reader.unpack(OFP_PORT)
    return OfPort(port_no, name.split(b"\0", 1)[0].decode("utf-8", "replace"), hw_addr,
                  config, state, curr, advertised, supported, peer, curr_speed, max_speed)


def encode_port_stats(st: OfPortStats) -> bytes:
    # rx_frame_err, rx_over_err, rx_crc_err and collisions are not counted.
    return OFP_PORT_STATS.pack(st.port_no, st.rx_packets, st.tx_packets, st.rx_bytes,
                               st.tx_bytes, st.rx_dropped, st.tx_dropped, st.rx_errors,
                               st.tx_errors, 0, 0, 0, 0, st.duration_sec, st.duration_nsec)


def decode_port_stats(reader: Reader) -> OfPortStats:
    v = reader.unpack(OFP_PORT_STATS)
    return OfPortStats(port_no=v[0], rx_packets=v[1], tx_packets=v[2], rx_bytes=v[3],
                       tx_bytes=v[4], rx_dropped=v[5], tx_dropped=v[6], rx_errors=v[7],
                       tx_errors=v[8], duration_sec=v[13], duration_nsec=v[14])
