"""A small OpenFlow 1.3 learning switch for os-ken 3.x (``osken-manager``).

The system tests run it against ovsbpfd.  It installs a table-miss flow that
sends packets to the controller, learns source MACs from each PACKET_IN,
installs a FLOW_MOD once the destination is known and forwards the packet
with a PACKET_OUT.  Each of those messages is logged on one line starting
with ``PACKET_IN``, ``FLOW_MOD`` or ``PACKET_OUT`` so a test can see them.
"""

from __future__ import annotations

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib.packet import ethernet, packet
from os_ken.ofproto import ofproto_v1_3

LEARNED_PRIORITY = 10
IDLE_TIMEOUT = 60


class LearningSwitch(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mac_to_port: dict[int, dict[str, int]] = {}

    def _flow_mod(self, datapath, priority: int, match, actions, idle: int = 0) -> None:
        parser = datapath.ofproto_parser
        inst = [parser.OFPInstructionActions(datapath.ofproto.OFPIT_APPLY_ACTIONS, actions)]
        datapath.send_msg(parser.OFPFlowMod(datapath=datapath, priority=priority, match=match,
                                            instructions=inst, idle_timeout=idle))
        self.logger.info("FLOW_MOD dpid=%016x priority=%d match=%s actions=%s",
                         datapath.id, priority, match, actions)

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features(self, ev) -> None:
        datapath = ev.msg.datapath
        ofp, parser = datapath.ofproto, datapath.ofproto_parser
        self.logger.info("FEATURES dpid=%016x n_tables=%d", datapath.id, ev.msg.n_tables)
        # Table miss: everything unknown goes to the controller, whole packets.
        self._flow_mod(datapath, 0, parser.OFPMatch(),
                       [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)])

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev) -> None:
        msg = ev.msg
        datapath = msg.datapath
        ofp, parser = datapath.ofproto, datapath.ofproto_parser
        in_port = msg.match["in_port"]
        eth = packet.Packet(msg.data).get_protocol(ethernet.ethernet)
        if eth is None:
            return
        self.logger.info("PACKET_IN dpid=%016x in_port=%d src=%s dst=%s reason=%d",
                         datapath.id, in_port, eth.src, eth.dst, msg.reason)
        table = self.mac_to_port.setdefault(datapath.id, {})
        table[eth.src] = in_port
        out_port = table.get(eth.dst, ofp.OFPP_FLOOD)
        actions = [parser.OFPActionOutput(out_port)]
        if out_port != ofp.OFPP_FLOOD:
            match = parser.OFPMatch(in_port=in_port, eth_dst=eth.dst, eth_src=eth.src)
            self._flow_mod(datapath, LEARNED_PRIORITY, match, actions, IDLE_TIMEOUT)
        datapath.send_msg(parser.OFPPacketOut(datapath=datapath, buffer_id=ofp.OFP_NO_BUFFER,
                                              in_port=in_port, actions=actions,
                                              data=msg.data))
        self.logger.info("PACKET_OUT dpid=%016x in_port=%d out_port=%s", datapath.id, in_port,
                         "FLOOD" if out_port == ofp.OFPP_FLOOD else out_port)
