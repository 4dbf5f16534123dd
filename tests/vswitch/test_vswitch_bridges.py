"""Reconciliation: configs in, bridges/ports/devices and Interface status out."""

from __future__ import annotations

import asyncio
import uuid

from ovsbpfd.netdev import internal_peer_name
from ovsbpfd.ofproto.openflow.controller_spec import ControllerSpec
from ovsbpfd.ofproto.openflow.tls import SslSettings
from ovsbpfd.vswitch.bridges import BridgeSet
from ovsbpfd.vswitch.config import BridgeConfig, InterfaceConfig, PortConfig, SwitchConfig
from tests.vswitch.fakes import OFPP_LOCAL, FakeFactory, FakeNetdevs


def iface(name: str, type_: str = "", ofport_request: int | None = None) -> InterfaceConfig:
    return InterfaceConfig(name, uuid.uuid5(uuid.NAMESPACE_OID, "i" + name), type_,
                           ofport_request)


def port(name: str, type_: str = "", tag: int | None = None, trunks: tuple[int, ...] = (),
         ofport_request: int | None = None) -> PortConfig:
    return PortConfig(name, uuid.uuid5(uuid.NAMESPACE_OID, "p" + name),
                      (iface(name, type_, ofport_request),), tag, trunks)


def bridge(name: str, *ports: PortConfig, **kw) -> BridgeConfig:
    local = port(name, "internal")
    return BridgeConfig(name, uuid.uuid5(uuid.NAMESPACE_OID, "b" + name),
                        (local, *ports), **kw)


def config(*bridges: BridgeConfig) -> SwitchConfig:
    return SwitchConfig(bridges=bridges, next_cfg=1)


class World:
    def __init__(self) -> None:
        self.nd = FakeNetdevs()
        self.factory = FakeFactory()
        self.bs = BridgeSet(self.nd, self.factory)

    def apply(self, cfg: SwitchConfig):
        return asyncio.run(self.bs.apply(cfg))

    def core(self, name: str):
        return self.bs.bridges[name].core


def test_add_bridge_creates_local_device_and_port() -> None:
    w = World()
    st = w.apply(config(bridge("br0")))
    assert set(w.bs.bridges) == {"br0"}
    assert "br0" in w.nd.internal and internal_peer_name("br0") in w.nd.devices
    core = w.core("br0")
    assert core.port_names() == {"br0": OFPP_LOCAL}
    # LOCAL is attached through the peer; the host sees br0
    assert core.ports[OFPP_LOCAL].ifindex == w.nd.devices[internal_peer_name("br0")].ifindex
    s = st[iface("br0").uuid]
    assert s.ofport == 65534 and s.error is None
    assert s.ifindex == w.nd.devices["br0"].ifindex
    # datapath_id defaults to the bridge MAC
    assert core.datapath_id == int.from_bytes(w.nd.devices["br0"].mac, "big")


def test_datapath_id_and_fail_mode_from_config() -> None:
    w = World()
    w.apply(config(bridge("br0", datapath_id=0x1234, fail_mode="secure")))
    assert w.core("br0").datapath_id == 0x1234
    assert w.core("br0").fail_mode == "secure"
    w.apply(config(bridge("br0", datapath_id=0x99, fail_mode="standalone")))
    assert w.core("br0").datapath_id == 0x99
    assert w.core("br0").fail_mode == "standalone"
    assert len(w.factory.created) == 1  # updated in place, not rebuilt


def test_system_port_attach_missing_then_appearing() -> None:
    w = World()
    st = w.apply(config(bridge("br0", port("veth1"))))
    s = st[iface("veth1").uuid]
    assert s.ofport == -1
    assert s.error == "could not open network device veth1 (No such device)"
    w.nd.add_system("veth1")
    st = w.apply(config(bridge("br0", port("veth1"))))
    s = st[iface("veth1").uuid]
    assert s.error is None and s.ofport == 1
    assert s.ifindex == w.nd.devices["veth1"].ifindex
    assert s.admin_state == "up" and s.link_state == "up"
    assert s.statistics == {"rx_packets": 3, "tx_packets": 4}
    assert w.core("br0").port_names()["veth1"] == 1


def test_netdev_disappearing_detaches_and_reattaches_with_same_ofport() -> None:
    w = World()
    w.nd.add_system("a1")
    w.nd.add_system("a2")
    cfg = config(bridge("br0", port("a1"), port("a2")))
    w.apply(cfg)
    assert w.core("br0").port_names() == {"br0": OFPP_LOCAL, "a1": 1, "a2": 2}
    w.nd.remove("a1")
    st = w.apply(cfg)
    assert "a1" not in w.core("br0").port_names()
    assert st[iface("a1").uuid].ofport == -1
    w.nd.add_system("a1")  # new ifindex
    st = w.apply(cfg)
    assert w.core("br0").port_names()["a1"] == 1
    assert w.core("br0").ports[1].ifindex == w.nd.devices["a1"].ifindex


def test_link_state_changes_are_pushed() -> None:
    w = World()
    w.nd.add_system("a1")
    cfg = config(bridge("br0", port("a1")))
    w.apply(cfg)
    assert w.core("br0").ports[1].state == (True, True)
    w.nd.set_state("a1", admin_up=True, link_up=False)
    st = w.apply(cfg)
    assert w.core("br0").ports[1].state == (False, True)
    assert st[iface("a1").uuid].link_state == "down"


def test_ofport_request_and_vlan() -> None:
    w = World()
    w.nd.add_system("a1")
    w.nd.add_system("a2")
    w.apply(config(bridge("br0", port("a1", ofport_request=7), port("a2", tag=10))))
    core = w.core("br0")
    assert core.port_names()["a1"] == 7
    assert core.ports[core.port_names()["a2"]].vlan == (10, ())
    # change the request: the port is renumbered; change VLAN to a trunk
    w.apply(config(bridge("br0", port("a1", ofport_request=9), port("a2", trunks=(20, 30)))))
    assert core.port_names()["a1"] == 9
    assert core.ports[core.port_names()["a2"]].vlan == (None, (20, 30))


def test_ofport_request_conflict_gets_another_number() -> None:
    w = World()
    w.nd.add_system("a1")
    w.nd.add_system("a2")
    st = w.apply(config(bridge("br0", port("a1", ofport_request=5),
                               port("a2", ofport_request=5))))
    ofports = sorted(st[iface(n).uuid].ofport for n in ("a1", "a2"))
    assert ofports[1] == 5 and ofports[0] not in (5, -1)
    core = w.core("br0")
    before = dict(core.ports)
    w.apply(config(bridge("br0", port("a1", ofport_request=5), port("a2", ofport_request=5))))
    assert all(core.ports[k] is before[k] for k in before)  # no re-attach each pass
    assert all(st[iface(n).uuid].error is None for n in ("a1", "a2"))


def test_internal_port_created_and_deleted() -> None:
    w = World()
    st = w.apply(config(bridge("br0", port("in1", "internal"))))
    assert "in1" in w.nd.internal
    s = st[iface("in1").uuid]
    assert s.ofport == 1 and s.ifindex == w.nd.devices["in1"].ifindex
    assert w.core("br0").ports[1].ifindex == w.nd.devices[internal_peer_name("in1")].ifindex
    w.apply(config(bridge("br0")))
    assert "in1" not in w.nd.devices and internal_peer_name("in1") not in w.nd.devices
    assert w.core("br0").port_names() == {"br0": OFPP_LOCAL}


def test_internal_name_taken_by_foreign_device() -> None:
    w = World()
    w.nd.add_system("in1")  # somebody else's device
    st = w.apply(config(bridge("br0", port("in1", "internal"))))
    assert st[iface("in1").uuid].error == (
        "could not add network device in1 to ofproto (File exists)")
    w.apply(config())
    assert "in1" in w.nd.devices  # not ours: never deleted


def test_unsupported_type() -> None:
    w = World()
    st = w.apply(config(bridge("br0", port("vx0", "vxlan"))))
    assert st[iface("vx0").uuid].error == "vx0: unsupported interface type"
    assert st[iface("vx0").uuid].ofport == -1


def test_delete_bridge_removes_only_what_it_created() -> None:
    w = World()
    w.nd.add_system("a1")
    w.apply(config(bridge("br0", port("a1"), port("in1", "internal"))))
    core = w.core("br0")
    w.apply(config())
    assert core.destroyed and core.ports == {}
    assert set(w.nd.devices) == {"a1"}
    assert w.bs.bridges == {}


def test_port_moves_between_bridges() -> None:
    w = World()
    w.nd.add_system("a1")
    w.apply(config(bridge("br0", port("a1")), bridge("br1")))
    w.apply(config(bridge("br0"), bridge("br1", port("a1"))))
    assert "a1" not in w.core("br0").port_names()
    assert w.core("br1").port_names()["a1"] == 1


def test_controllers_and_status() -> None:
    w = World()
    ctl = uuid.uuid4()
    spec = ControllerSpec.from_db("tcp:127.0.0.1:6653")
    w.apply(config(bridge("br0", controllers=((ctl, spec),))))
    connmgr = w.bs.bridges["br0"].connmgr
    assert connmgr.targets == ["tcp:127.0.0.1:6653"]
    st = w.bs.controller_status()[ctl]
    assert st.is_connected is False and st.role is None
    assert st.status == {"state": "BACKOFF"}
    # New settings for the same target reach the connection manager.
    slower = ControllerSpec.from_db("tcp:127.0.0.1:6653", inactivity_probe_ms=30000)
    w.apply(config(bridge("br0", controllers=((ctl, slower),))))
    assert connmgr.specs == [slower]
    w.apply(config(bridge("br0")))
    assert connmgr.targets == []


def test_protocols_and_ssl_reach_the_connection_manager() -> None:
    w = World()
    ssl = SslSettings("/k.pem", "/c.pem", "/ca.pem")
    w.apply(SwitchConfig(bridges=(bridge("br0", protocols=("OpenFlow13",)),), ssl=ssl))
    connmgr = w.bs.bridges["br0"].connmgr
    assert connmgr.protocols == ["OpenFlow13"] and connmgr.ssl == ssl
    w.apply(config(bridge("br0", protocols=("OpenFlow10", "OpenFlow14"))))
    assert connmgr.protocols == ["OpenFlow10", "OpenFlow14"] and connmgr.ssl is None


def test_port_mod_down_takes_the_netdev_down_and_the_state_follows() -> None:
    w = World()
    w.nd.add_system("a1")
    w.apply(config(bridge("br0", port("a1"))))
    hook = w.bs.bridges["br0"].connmgr.port_admin_hook
    asyncio.run(hook(1, False))
    assert not w.nd.devices["a1"].admin_up
    assert w.core("br0").ports[1].state == (False, False)  # LINK_DOWN follows at once
    st = w.apply(config(bridge("br0", port("a1"))))[iface("a1").uuid]
    assert st.admin_state == "down" and st.link_state == "down"
    asyncio.run(hook(1, True))
    assert w.nd.devices["a1"].admin_up and w.core("br0").ports[1].state == (True, True)
    asyncio.run(hook(OFPP_LOCAL, True))  # the bridge's own device
    assert w.nd.devices["br0"].admin_up
    asyncio.run(hook(77, False))  # no such port: nothing happens
    assert w.nd.devices["a1"].admin_up


def test_stale_internal_devices_swept_on_first_apply() -> None:
    w = World()
    asyncio.run(w.nd.create_internal("old0"))
    asyncio.run(w.nd.create_internal("in1"))
    w.apply(config(bridge("br0", port("in1", "internal"))))
    assert "old0" not in w.nd.devices
    assert "in1" in w.nd.devices


def test_destroy_all_and_close() -> None:
    w = World()
    w.apply(config(bridge("br0", port("in1", "internal"))))
    connmgr = w.bs.bridges["br0"].connmgr
    asyncio.run(w.bs.close())
    assert connmgr.stopped and "in1" in w.nd.devices  # close keeps devices
    asyncio.run(w.bs.destroy_all())
    assert w.nd.devices == {} and w.bs.bridges == {}
