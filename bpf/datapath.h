/* Structures and constants shared by the BPF datapath and its userspace.
 *
 * Every struct here has a ctypes mirror in ovsbpfd/dpif/bpf/structs.py and a
 * test compares the two through the object's BTF.  Change both together; the
 * pin directory is versioned from the map definitions, so a changed layout
 * never reuses stale pinned maps.
 */
#ifndef OVSBPF_DATAPATH_H
#define OVSBPF_DATAPATH_H

#include <linux/types.h>
#include <linux/bpf.h> /* struct bpf_spin_lock */

#define OVSBPF_MAX_PORTS 1024       /* datapath port numbers 0..MAX_PORTS-1 */
#define OVSBPF_MAX_MASKS 32         /* tuple-space search width */
#define OVSBPF_MAX_FLOWS 65536      /* megaflow table size */
#define OVSBPF_EMC_ENTRIES 8192     /* exact-match cache (LRU) size */
#define OVSBPF_MAX_ACTIONS 32       /* = types.MAX_ACTIONS */
#define OVSBPF_UPCALL_DATA_MAX 1600 /* packet bytes copied into an upcall */
#define OVSBPF_RINGBUF_BYTES (4 * 1024 * 1024)
#define OVSBPF_NO_OUTPUT 0xffffffffu
#define OVSBPF_PORT_NAME_MAX 63
#define OVSBPF_MAX_SET_ACTIONS 8    /* = types.MAX_SET_ACTIONS; a power of two */
#define OVSBPF_MAX_METERS 4096      /* = meter.MAX_METERS */
#define OVSBPF_METER_MAX_BANDS 4    /* = meter.MAX_METER_BANDS */

#define OVSBPF_VLAN_TAG_PRESENT 0x1000
#define OVSBPF_FRAG_NONE 0
#define OVSBPF_FRAG_FIRST 1
#define OVSBPF_FRAG_LATER 2

/* The parsed packet; byte layout = ovsbpfd/dpif/types.py FLOW_KEY_STRUCT.
 * in_port is host order, everything else network order. */
struct ovsbpf_flow_key {
	__u32 in_port;
	__u8 vlan_tci[2];
	__u8 eth_type[2];
	__u8 eth_src[6];
	__u8 eth_dst[6];
	__u8 nw_proto;
	__u8 nw_tos;
	__u8 nw_ttl;
	__u8 nw_frag;
	__u8 ip_src[16];
	__u8 ip_dst[16];
	__u8 tp_src[2];
	__u8 tp_dst[2];
	__u8 arp_sha[6];
	__u8 arp_tha[6];
};

/* One slot of the mask table; a slot is searched only while in_use. */
struct ovsbpf_mask {
	__u32 in_use;
	struct ovsbpf_flow_key mask;
};

/* Megaflow table key: masked packet key under the mask in slot mask_id. */
struct ovsbpf_flow_map_key {
	__u32 mask_id;
	struct ovsbpf_flow_key key;
};

enum ovsbpf_action_type {
	OVSBPF_ACTION_OUTPUT = 1,    /* arg = datapath port number */
	OVSBPF_ACTION_PUSH_VLAN = 2, /* arg = TCI (host order), tpid = TPID */
	OVSBPF_ACTION_POP_VLAN = 3,
	OVSBPF_ACTION_USERSPACE = 4, /* cookie */
	OVSBPF_ACTION_SET_MASKED = 5, /* tpid = field (enum below), arg = index in sets[] */
	OVSBPF_ACTION_METER = 6,     /* arg = meter id */
};

/* Fields a SET_MASKED action rewrites (the FlowKey field of the same name). */
enum ovsbpf_set_field {
	OVSBPF_SET_ETH_SRC = 1,
	OVSBPF_SET_ETH_DST = 2,
	OVSBPF_SET_IP_SRC = 3, /* IPv4 (first 4 bytes), IPv6, or ARP SPA */
	OVSBPF_SET_IP_DST = 4, /* likewise; ARP TPA */
	OVSBPF_SET_NW_TOS = 5,
	OVSBPF_SET_NW_TTL = 6,
	OVSBPF_SET_TP_SRC = 7,
	OVSBPF_SET_TP_DST = 8,
	OVSBPF_SET_ARP_SHA = 9,
	OVSBPF_SET_ARP_THA = 10,
};

/* Value and mask of one SET_MASKED action, in network order from byte 0 for
 * the field's width (6, 16, 1 or 2 bytes); the rest is zero. */
struct ovsbpf_set_value {
	__u8 value[16];
	__u8 mask[16];
};

struct ovsbpf_action {
	__u16 type;
	__u16 tpid;
	__u32 arg;
	__u64 cookie;
};

/* Megaflow table value.  Stats are updated with atomics by every CPU;
 * final_output is the index of the output that may use bpf_redirect (the
 * last output with no packet-changing action after it), or NO_OUTPUT. */
struct ovsbpf_flow {
	__u64 packets;
	__u64 bytes;
	__u64 used_ns;
	__u32 tcp_flags;
	__u32 n_actions;
	__u32 final_output;
	__u32 pad;
	struct ovsbpf_action actions[OVSBPF_MAX_ACTIONS];
	struct ovsbpf_set_value sets[OVSBPF_MAX_SET_ACTIONS];
};

/* Token-bucket meters (ovsbpfd/dpif/meter.py has the same arithmetic).
 * Buckets count "rate unit x ns": a packet costs 10^9, a bit 10^6 (kbps). */
struct ovsbpf_meter_band {
	__u32 rate;     /* pkts/s or kbit/s */
	__u32 pad;
	__u64 capacity; /* bucket size */
	__u64 fill_ns;  /* idle time that fills an empty bucket */
	__u64 bucket;
	__u64 packets;  /* what this band dropped */
	__u64 bytes;
};

struct ovsbpf_meter {
	struct bpf_spin_lock lock;
	__u32 in_use;
	__u32 kbps;
	__u32 n_bands;
	__u64 last_ns;
	__u64 packets_in;
	__u64 bytes_in;
	struct ovsbpf_meter_band bands[OVSBPF_METER_MAX_BANDS];
};

/* Datapath port table entry, indexed by port number (ifindex 0 = free). */
#define OVSBPF_PORT_F_OWN_CLSACT 1 /* we created the device's clsact qdisc */
struct ovsbpf_port {
	__u32 ifindex;
	__u32 flags;
	char name[OVSBPF_PORT_NAME_MAX + 1]; /* datapath port name, NUL-terminated */
};

/* Per-CPU counters. */
struct ovsbpf_dp_stats {
	__u64 n_hit;
	__u64 n_missed;
	__u64 n_lost;
};

struct ovsbpf_port_stats {
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 rx_dropped;
	__u64 tx_dropped;
};

/* Written by userspace: how many mask slots the search has to scan. */
struct ovsbpf_config {
	__u32 n_mask_slots;
	__u32 pad;
};

enum ovsbpf_upcall_kind {
	OVSBPF_UPCALL_MISS = 0,
	OVSBPF_UPCALL_ACTION = 1,
};

/* Ring buffer record header; data_len packet bytes follow it.  packet_len
 * is the full skb length, larger than data_len for truncated packets. */
struct ovsbpf_upcall {
	__u32 kind;
	__u32 packet_len;
	__u32 data_len;
	__u32 pad;
	__u64 cookie;
	struct ovsbpf_flow_key key;
};

#endif /* OVSBPF_DATAPATH_H */
