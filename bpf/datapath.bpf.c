// SPDX-License-Identifier: GPL-2.0
/* The ovsbpfd datapath: a TC clsact-ingress program attached to every port.
 *
 * parse -> megaflow lookup (exact-match cache, then tuple-space search over
 * the mask table) -> run the flow's action array.  A miss becomes an upcall
 * on the "upcalls" ring buffer and the packet is dropped: userspace decides,
 * installs a flow and re-executes the packet itself.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "datapath.h"

#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define ETH_P_IPV6 0x86DD
#define ETH_HLEN 14
#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ICMPV6 58
#define IPPROTO_SCTP 132
#define IPPROTO_HOPOPTS 0
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_DSTOPTS 60
#define IPV6_MAX_EXT_HEADERS 6

char LICENSE[] SEC("license") = "GPL";

/* ---------------------------------------------------------------- maps */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OVSBPF_MAX_PORTS);
	__type(key, __u32);   /* ifindex */
	__type(value, __u32); /* datapath port number */
} port_by_ifindex SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OVSBPF_MAX_PORTS);
	__type(key, __u32); /* datapath port number */
	__type(value, struct ovsbpf_port);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OVSBPF_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct ovsbpf_port_stats);
} port_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OVSBPF_MAX_MASKS);
	__type(key, __u32);
	__type(value, struct ovsbpf_mask);
} masks SEC(".maps");

/* Not preallocated: a full table would pin ~45 MB for every datapath. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, OVSBPF_MAX_FLOWS);
	__type(key, struct ovsbpf_flow_map_key);
	__type(value, struct ovsbpf_flow);
} flows SEC(".maps");

/* Exact-match cache: full key -> mask slot that matched it last time. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OVSBPF_EMC_ENTRIES);
	__type(key, struct ovsbpf_flow_key);
	__type(value, __u32);
} emc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ovsbpf_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ovsbpf_dp_stats);
} dp_stats SEC(".maps");

/* Meters, by id; each value carries the spin lock its buckets are updated under. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OVSBPF_MAX_METERS);
	__type(key, __u32);
	__type(value, struct ovsbpf_meter);
} meters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, OVSBPF_RINGBUF_BYTES);
} upcalls SEC(".maps");

/* Staging area for one upcall record (too big for the BPF stack). */
struct upcall_buf {
	struct ovsbpf_upcall hdr;
	__u8 data[OVSBPF_UPCALL_DATA_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct upcall_buf);
} upcall_scratch SEC(".maps");

/* ---------------------------------------------------------------- counters */

static __always_inline struct ovsbpf_dp_stats *dp_counters(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&dp_stats, &zero);
}

static __always_inline struct ovsbpf_port_stats *port_counters(__u32 port_no)
{
	return bpf_map_lookup_elem(&port_stats, &port_no);
}

/* The frame length as userspace sees it (a metadata VLAN tag counts). */
static __always_inline __u32 frame_len(struct __sk_buff *skb)
{
	return skb->len + (skb->vlan_present ? 4 : 0);
}

/* ---------------------------------------------------------------- parsing */

static __always_inline void put_be16(__u8 *dst, __u16 host)
{
	dst[0] = host >> 8;
	dst[1] = host & 0xff;
}

static __always_inline int is_ipv6_ext_header(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_FRAGMENT ||
	       nh == IPPROTO_DSTOPTS;
}

/* L4 ports/types, only when the whole fixed L4 header is in the frame. */
static __always_inline void parse_l4(struct __sk_buff *skb, __u32 off, __u8 proto,
				     struct ovsbpf_flow_key *key, __u16 *tcp_flags)
{
	__u8 l4[20];

	if (proto == IPPROTO_TCP) {
		if (bpf_skb_load_bytes(skb, off, l4, 20) < 0)
			return;
		*tcp_flags = ((l4[12] << 8) | l4[13]) & 0x0fff;
	} else if (proto == IPPROTO_UDP) {
		if (bpf_skb_load_bytes(skb, off, l4, 8) < 0)
			return;
	} else if (proto == IPPROTO_SCTP) {
		if (bpf_skb_load_bytes(skb, off, l4, 12) < 0)
			return;
	} else if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		if (bpf_skb_load_bytes(skb, off, l4, 4) < 0)
			return;
		key->tp_src[1] = l4[0];
		key->tp_dst[1] = l4[1];
		return;
	} else {
		return;
	}
	__builtin_memcpy(key->tp_src, &l4[0], 2);
	__builtin_memcpy(key->tp_dst, &l4[2], 2);
}

/* IPv4 needs version 4, IHL >= 5 and the whole IHL*4 header in the frame. */
static __always_inline void parse_ipv4(struct __sk_buff *skb, __u32 off,
				       struct ovsbpf_flow_key *key, __u16 *tcp_flags)
{
	__u8 ip[20];
	__u32 hlen;
	__u16 frag;

	if (bpf_skb_load_bytes(skb, off, ip, 20) < 0)
		return;
	hlen = (ip[0] & 0x0f) * 4;
	if ((ip[0] >> 4) != 4 || hlen < 20 || off + hlen > skb->len)
		return;
	key->nw_tos = ip[1];
	key->nw_ttl = ip[8];
	key->nw_proto = ip[9];
	__builtin_memcpy(key->ip_src, &ip[12], 4);
	__builtin_memcpy(key->ip_dst, &ip[16], 4);
	frag = ((ip[6] << 8) | ip[7]) & 0x3fff;
	if (frag & 0x1fff)
		key->nw_frag = OVSBPF_FRAG_LATER;
	else if (frag)
		key->nw_frag = OVSBPF_FRAG_FIRST;
	if (key->nw_frag != OVSBPF_FRAG_LATER)
		parse_l4(skb, off + hlen, ip[9], key, tcp_flags);
}

/* IPv6: skip up to IPV6_MAX_EXT_HEADERS extension headers; nw_proto is the
 * next-header value where the walk stopped, L4 only if it stopped at one. */
static __always_inline void parse_ipv6(struct __sk_buff *skb, __u32 off,
				       struct ovsbpf_flow_key *key, __u16 *tcp_flags)
{
	__u32 pos = off + 40, len = skb->len, hdr_len;
	int l4_ok = 1;
	__u8 ip[40];
	__u8 ext[4];
	__u16 frag;
	__u8 nh;

	if (bpf_skb_load_bytes(skb, off, ip, 40) < 0)
		return;
	if ((ip[0] >> 4) != 6)
		return;
	key->nw_tos = ((ip[0] & 0x0f) << 4) | (ip[1] >> 4);
	key->nw_ttl = ip[7];
	__builtin_memcpy(key->ip_src, &ip[8], 16);
	__builtin_memcpy(key->ip_dst, &ip[24], 16);
	nh = ip[6];
	for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
		if (!is_ipv6_ext_header(nh))
			break;
		if (pos + 8 > len || bpf_skb_load_bytes(skb, pos, ext, 4) < 0) {
			l4_ok = 0;
			break;
		}
		if (nh == IPPROTO_FRAGMENT) {
			frag = (ext[2] << 8) | ext[3];
			if (frag & 0xfff8) {
				nh = ext[0];
				key->nw_frag = OVSBPF_FRAG_LATER;
				l4_ok = 0;
				break;
			}
			key->nw_frag = (frag & 1) ? OVSBPF_FRAG_FIRST : OVSBPF_FRAG_NONE;
			hdr_len = 8;
		} else {
			hdr_len = (ext[1] + 1) * 8;
			if (pos + hdr_len > len) {
				l4_ok = 0;
				break;
			}
		}
		nh = ext[0];
		pos += hdr_len;
	}
	if (is_ipv6_ext_header(nh))
		l4_ok = 0;
	key->nw_proto = nh;
	if (l4_ok)
		parse_l4(skb, pos, nh, key, tcp_flags);
}

/* Ethernet/IPv4 ARP only (htype 1, ptype 0x0800, hlen 6, plen 4). */
static __always_inline void parse_arp(struct __sk_buff *skb, __u32 off,
				      struct ovsbpf_flow_key *key)
{
	__u8 arp[28];

	if (bpf_skb_load_bytes(skb, off, arp, 28) < 0)
		return;
	if (arp[0] != 0 || arp[1] != 1 || arp[2] != 0x08 || arp[3] != 0 ||
	    arp[4] != 6 || arp[5] != 4)
		return;
	key->nw_proto = arp[7];
	__builtin_memcpy(key->arp_sha, &arp[8], 6);
	__builtin_memcpy(key->ip_src, &arp[14], 4);
	__builtin_memcpy(key->arp_tha, &arp[18], 6);
	__builtin_memcpy(key->ip_dst, &arp[24], 4);
}

/* Fill key (in_port already set, rest zero) by the rules of
 * ovsbpfd/dpif/packet.py.  Ingress has usually moved the outer VLAN tag
 * into skb metadata; an in-band tag is parsed the same way. */
static __always_inline void parse_packet(struct __sk_buff *skb, struct ovsbpf_flow_key *key,
					 __u16 *tcp_flags)
{
	__u8 eth[ETH_HLEN];
	__u8 tag[4];
	__u32 off = ETH_HLEN;
	__u16 proto;

	if (bpf_skb_load_bytes(skb, 0, eth, ETH_HLEN) < 0)
		return;
	__builtin_memcpy(key->eth_dst, &eth[0], 6);
	__builtin_memcpy(key->eth_src, &eth[6], 6);
	proto = (eth[12] << 8) | eth[13];
	if (skb->vlan_present) {
		put_be16(key->vlan_tci, (skb->vlan_tci & 0xffff) | OVSBPF_VLAN_TAG_PRESENT);
	} else if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
		if (bpf_skb_load_bytes(skb, off, tag, 4) < 0) {
			put_be16(key->eth_type, proto);
			return;
		}
		put_be16(key->vlan_tci, ((tag[0] << 8) | tag[1]) | OVSBPF_VLAN_TAG_PRESENT);
		proto = (tag[2] << 8) | tag[3];
		off += 4;
	}
	put_be16(key->eth_type, proto);

	if (proto == ETH_P_IP)
		parse_ipv4(skb, off, key, tcp_flags);
	else if (proto == ETH_P_IPV6)
		parse_ipv6(skb, off, key, tcp_flags);
	else if (proto == ETH_P_ARP)
		parse_arp(skb, off, key);
}

/* ---------------------------------------------------------------- lookup */

static __always_inline struct ovsbpf_flow *
lookup_in_slot(__u32 mask_id, const struct ovsbpf_flow_key *key, struct ovsbpf_flow_map_key *fk)
{
	struct ovsbpf_mask *slot = bpf_map_lookup_elem(&masks, &mask_id);
	const __u32 *k = (const __u32 *)key;
	__u32 *out = (__u32 *)&fk->key;
	const __u32 *m;

	if (!slot || !slot->in_use)
		return 0;
	m = (const __u32 *)&slot->mask;
#pragma unroll
	for (int i = 0; i < (int)(sizeof(*key) / 4); i++)
		out[i] = k[i] & m[i];
	fk->mask_id = mask_id;
	return bpf_map_lookup_elem(&flows, fk);
}

/* One tuple-space search.  It lives on the program's stack so that the
 * bpf_loop callback below (verified once, rather than once per mask slot as
 * an unrolled loop would be) can work on it. */
struct search {
	struct ovsbpf_flow_key key;
	struct ovsbpf_flow_map_key fk; /* key of the matching flow, once found */
	__u32 found;
};

static long search_slot(__u32 mask_id, void *data)
{
	struct search *s = data;

	if (!lookup_in_slot(mask_id, &s->key, &s->fk))
		return 0;
	s->found = 1;
	return 1; /* stop: the first matching slot wins */
}

/* The exact-match cache remembers which mask slot a key matched last time;
 * a stale hint only costs the full search. */
static __always_inline struct ovsbpf_flow *lookup_flow(struct search *s)
{
	__u32 zero = 0, n_slots = OVSBPF_MAX_MASKS;
	struct ovsbpf_config *cfg;
	struct ovsbpf_flow *flow;
	__u32 *hint;

	hint = bpf_map_lookup_elem(&emc, &s->key);
	if (hint) {
		flow = lookup_in_slot(*hint, &s->key, &s->fk);
		if (flow)
			return flow;
	}
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (cfg && cfg->n_mask_slots < OVSBPF_MAX_MASKS)
		n_slots = cfg->n_mask_slots;
	s->found = 0;
	bpf_loop(n_slots, search_slot, s, 0);
	if (!s->found)
		return 0;
	flow = bpf_map_lookup_elem(&flows, &s->fk);
	if (flow)
		bpf_map_update_elem(&emc, &s->key, &s->fk.mask_id, BPF_ANY);
	return flow;
}

/* ---------------------------------------------------------------- upcalls */

/* Copy the packet (with its metadata VLAN tag put back in band) behind an
 * upcall header onto the ring buffer.  Returns 0 if queued. */
static __noinline int emit_upcall(struct __sk_buff *skb, const struct ovsbpf_flow_key *key,
				  __u32 kind, __u64 cookie)
{
	__u32 zero = 0, total, n, tail;
	struct upcall_buf *buf;
	int tagged = skb->vlan_present;

	buf = bpf_map_lookup_elem(&upcall_scratch, &zero);
	if (!buf)
		return -1;
	total = frame_len(skb);
	n = total;
	if (n > OVSBPF_UPCALL_DATA_MAX)
		n = OVSBPF_UPCALL_DATA_MAX;
	if (n < 1)
		return -1;
	buf->hdr.kind = kind;
	buf->hdr.packet_len = total;
	buf->hdr.data_len = n;
	buf->hdr.pad = 0;
	buf->hdr.cookie = cookie;
	__builtin_memcpy(&buf->hdr.key, key, sizeof(*key));
	if (tagged) {
		if (bpf_skb_load_bytes(skb, 0, buf->data, 12) < 0)
			return -1;
		put_be16(&buf->data[12], bpf_ntohs(skb->vlan_proto));
		put_be16(&buf->data[14], skb->vlan_tci);
		tail = n - 16;
		if (tail > OVSBPF_UPCALL_DATA_MAX - 16 || tail < 1)
			return -1;
		if (bpf_skb_load_bytes(skb, 12, &buf->data[16], tail) < 0)
			return -1;
	} else {
		if (n > OVSBPF_UPCALL_DATA_MAX || n < 1)
			return -1;
		if (bpf_skb_load_bytes(skb, 0, buf->data, n) < 0)
			return -1;
	}
	n += sizeof(buf->hdr);
	if (n > sizeof(*buf))
		return -1;
	return bpf_ringbuf_output(&upcalls, buf, n, 0);
}

static __always_inline void upcall(struct __sk_buff *skb, const struct ovsbpf_flow_key *key,
				   __u32 kind, __u64 cookie, struct ovsbpf_dp_stats *dps)
{
	if (emit_upcall(skb, key, kind, cookie) != 0 && dps)
		dps->n_lost++;
}

/* ---------------------------------------------------------------- actions */

/* Output to a port that does not exist is a silent drop, like the dummy. */
static __always_inline void output(struct __sk_buff *skb, __u32 port_no, int final, int *verdict)
{
	struct ovsbpf_port *port = bpf_map_lookup_elem(&ports, &port_no);
	struct ovsbpf_port_stats *ps;
	__u32 len = frame_len(skb);

	if (!port || !port->ifindex)
		return;
	ps = port_counters(port_no);
	if (final) {
		bpf_redirect(port->ifindex, 0);
		*verdict = TC_ACT_REDIRECT;
	} else if (bpf_clone_redirect(skb, port->ifindex, 0) != 0) {
		if (ps)
			ps->tx_dropped++;
		return;
	}
	if (ps) {
		ps->tx_packets++;
		ps->tx_bytes += len;
	}
}

/* ---------------------------------------------------------------- set-field
 * Rewrite masked bits of one field and fix the checksums covering it, by
 * the rules of ovsbpfd/dpif/packet.py set_masked (the conformance tests
 * compare the two byte for byte).  Offsets are found again here, the way
 * parse_packet finds them, because earlier actions may have pushed or popped
 * a tag.  Stores inside the IP packet that no checksum helper accounts for
 * use BPF_F_RECOMPUTE_CSUM so a CHECKSUM_COMPLETE skb stays consistent. */

#define SCTP_CRC32C_POLY 0x82F63B78u

static __always_inline void merge_bytes(__u8 *dst, const __u8 *old, const __u8 *value,
					const __u8 *mask, int n)
{
#pragma unroll
	for (int i = 0; i < 16; i++)
		if (i < n)
			dst[i] = (old[i] & ~mask[i]) | (value[i] & mask[i]);
}

/* L3 offset and ethertype after at most one tag (in metadata or in band). */
static __always_inline int locate_l3(struct __sk_buff *skb, __u32 *l3, __u16 *eth_type)
{
	__u8 hdr[4];
	__u16 proto;
	__u32 off = ETH_HLEN;

	if (bpf_skb_load_bytes(skb, 12, hdr, 2) < 0)
		return -1;
	proto = (hdr[0] << 8) | hdr[1];
	if (!skb->vlan_present && (proto == ETH_P_8021Q || proto == ETH_P_8021AD)) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, hdr, 4) < 0)
			return -1;
		proto = (hdr[2] << 8) | hdr[3];
		off += 4;
	}
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD)
		return -1; /* a second tag: the parser reads no L3 either */
	*l3 = off;
	*eth_type = proto;
	return 0;
}

static __always_inline __u32 l4_min_len(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return 20;
	case IPPROTO_UDP:
		return 8;
	case IPPROTO_SCTP:
		return 12;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return 4;
	}
	return 0;
}

/* Where an IPv6 packet's L4 header is (walked as parse_ipv6 walks):
 * (offset << 8) | protocol, or -1 if there is none.  Global: verified once. */
__noinline int ovsbpf_ipv6_l4(struct __sk_buff *skb, __u32 l3, __u32 first_nh)
{
	__u32 pos = l3 + 40, len = skb->len, hdr_len;
	__u8 ext[4];
	__u8 nh = first_nh;

	for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
		if (!is_ipv6_ext_header(nh))
			break;
		if (pos + 8 > len || bpf_skb_load_bytes(skb, pos, ext, 4) < 0)
			return -1;
		if (nh == IPPROTO_FRAGMENT) {
			if (((ext[2] << 8) | ext[3]) & 0xfff8)
				return -1; /* later fragment */
			hdr_len = 8;
		} else {
			hdr_len = (ext[1] + 1) * 8;
			if (pos + hdr_len > len)
				return -1;
		}
		nh = ext[0];
		pos += hdr_len;
	}
	if (is_ipv6_ext_header(nh) || pos > 0xffff)
		return -1;
	return (int)((pos << 8) | nh);
}

static __always_inline int ipv6_l4(struct __sk_buff *skb, __u32 l3, __u8 first_nh, __u8 *proto,
				   __u32 *l4)
{
	int found = ovsbpf_ipv6_l4(skb, l3, first_nh);

	if (found < 0)
		return -1;
	*proto = found & 0xff;
	*l4 = (__u32)found >> 8;
	return 0;
}

struct crc_shift {
	__u32 crc;
};

static long crc_zero_byte(__u32 index, void *data)
{
	struct crc_shift *c = data;
	__u32 crc = c->crc;

#pragma unroll
	for (int bit = 0; bit < 8; bit++)
		crc = (crc >> 1) ^ (SCTP_CRC32C_POLY & -(crc & 1));
	c->crc = crc;
	return 0;
}

/* SCTP: after the first 4 bytes (the ports) changed by xor ``delta``, the
 * CRC32c changes by the plain CRC of delta followed by the rest of the
 * packet as zeros (CRCs are affine).  Global: verified once. */
__noinline int ovsbpf_fix_sctp_crc(struct __sk_buff *skb, __u32 l4, __u32 end, __u32 delta)
{
	struct crc_shift c = { .crc = 0 };
	__u32 stored;

	if (end > skb->len)
		end = skb->len;
	if (end < l4 + 12 || end - l4 > 0xffff)
		return 0;
	for (int i = 0; i < 4; i++) {
		c.crc ^= (delta >> (8 * i)) & 0xff;
		crc_zero_byte(0, &c);
	}
	bpf_loop(end - l4 - 4, crc_zero_byte, &c, 0);
	if (bpf_skb_load_bytes(skb, l4 + 8, &stored, 4) < 0)
		return 0;
	stored ^= c.crc; /* stored little-endian, like the CRC register */
	return bpf_skb_store_bytes(skb, l4 + 8, &stored, 4, BPF_F_RECOMPUTE_CSUM);
}

/* tp_src/tp_dst of TCP, UDP or SCTP at l4; ``end`` is where the IP payload ends. */
static __always_inline int set_port(struct __sk_buff *skb, __u32 l4, __u32 end, __u8 proto,
				    __u32 field, const struct ovsbpf_set_value *sv)
{
	__u32 at = l4 + (field == OVSBPF_SET_TP_SRC ? 0 : 2);
	__u32 old4, new4;
	__u16 from, to;
	__u8 *o = (__u8 *)&from, *n = (__u8 *)&to;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_SCTP)
		return 0;
	if (l4 + l4_min_len(proto) > skb->len)
		return 0;
	if (bpf_skb_load_bytes(skb, at, &from, 2) < 0)
		return 0;
	n[0] = (o[0] & ~sv->mask[0]) | (sv->value[0] & sv->mask[0]);
	n[1] = (o[1] & ~sv->mask[1]) | (sv->value[1] & sv->mask[1]);
	if (to == from)
		return 0;
	if (proto == IPPROTO_SCTP) {
		if (bpf_skb_load_bytes(skb, l4, &old4, 4) < 0)
			return 0;
		bpf_skb_store_bytes(skb, at, &to, 2, BPF_F_RECOMPUTE_CSUM);
		if (bpf_skb_load_bytes(skb, l4, &new4, 4) < 0)
			return 0;
		ovsbpf_fix_sctp_crc(skb, l4, end, old4 ^ new4);
		return 0;
	}
	bpf_skb_store_bytes(skb, at, &to, 2, 0);
	if (proto == IPPROTO_TCP)
		bpf_l4_csum_replace(skb, l4 + 16, from, to, 2);
	else
		bpf_l4_csum_replace(skb, l4 + 6, from, to, 2 | BPF_F_MARK_MANGLED_0);
	return 0;
}

/* The L4 checksum after an address of the pseudo-header changed by ``diff``
 * (bpf_csum_diff), or from ``from`` to ``to`` (4 bytes) when diff_mode is 0. */
static __always_inline void fix_l4_pseudo(struct __sk_buff *skb, __u32 l4, __u8 proto,
					  __be32 from, __be32 to, int size)
{
	if (l4 + l4_min_len(proto) > skb->len)
		return;
	if (proto == IPPROTO_TCP)
		bpf_l4_csum_replace(skb, l4 + 16, from, to, BPF_F_PSEUDO_HDR | size);
	else if (proto == IPPROTO_UDP)
		bpf_l4_csum_replace(skb, l4 + 6, from, to,
				    BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | size);
	else if (proto == IPPROTO_ICMPV6 && size == 0)
		bpf_l4_csum_replace(skb, l4 + 2, from, to, BPF_F_PSEUDO_HDR);
}

__noinline int ovsbpf_set_ipv4(struct __sk_buff *skb, __u32 l3, __u32 field,
			       const struct ovsbpf_set_value *sv)
{
	__u32 hlen, l4, frag, word;
	__be32 from, to;
	__u16 wfrom, wto;
	__u8 ip[20];

	if (!sv || bpf_skb_load_bytes(skb, l3, ip, 20) < 0)
		return 0;
	hlen = (ip[0] & 0x0f) * 4;
	if ((ip[0] >> 4) != 4 || hlen < 20 || l3 + hlen > skb->len)
		return 0;
	l4 = l3 + hlen;
	frag = ((ip[6] << 8) | ip[7]) & 0x1fff;
	switch (field) {
	case OVSBPF_SET_IP_SRC:
	case OVSBPF_SET_IP_DST:
		if (field == OVSBPF_SET_IP_SRC)
			__builtin_memcpy(&from, &ip[12], 4);
		else
			__builtin_memcpy(&from, &ip[16], 4);
		merge_bytes((__u8 *)&to, (__u8 *)&from, sv->value, sv->mask, 4);
		if (to == from)
			return 0;
		bpf_skb_store_bytes(skb, l3 + (field == OVSBPF_SET_IP_SRC ? 12 : 16), &to, 4, 0);
		bpf_l3_csum_replace(skb, l3 + 10, from, to, 4);
		if (!frag && (ip[9] == IPPROTO_TCP || ip[9] == IPPROTO_UDP))
			fix_l4_pseudo(skb, l4, ip[9], from, to, 4);
		return 0;
	case OVSBPF_SET_NW_TOS:
	case OVSBPF_SET_NW_TTL:
		word = field == OVSBPF_SET_NW_TOS ? 0 : 8; /* the 16-bit word holding it */
		if (field == OVSBPF_SET_NW_TOS) {
			__builtin_memcpy(&wfrom, &ip[0], 2);
			ip[1] = (ip[1] & ~sv->mask[0]) | (sv->value[0] & sv->mask[0]);
			__builtin_memcpy(&wto, &ip[0], 2);
		} else {
			__builtin_memcpy(&wfrom, &ip[8], 2);
			ip[8] = (ip[8] & ~sv->mask[0]) | (sv->value[0] & sv->mask[0]);
			__builtin_memcpy(&wto, &ip[8], 2);
		}
		if (wto == wfrom)
			return 0;
		bpf_skb_store_bytes(skb, l3 + word, &wto, 2, 0);
		bpf_l3_csum_replace(skb, l3 + 10, wfrom, wto, 2);
		return 0;
	case OVSBPF_SET_TP_SRC:
	case OVSBPF_SET_TP_DST:
		if (frag)
			return 0;
		return set_port(skb, l4, l3 + ((ip[2] << 8) | ip[3]), ip[9], field, sv);
	}
	return 0;
}

__noinline int ovsbpf_set_ipv6(struct __sk_buff *skb, __u32 l3, __u32 field,
			       const struct ovsbpf_set_value *sv)
{
	__u32 old[4], new[4], l4, end;
	__u8 ip[8], tclass, proto;
	__s64 diff;

	if (!sv || bpf_skb_load_bytes(skb, l3, ip, 8) < 0 || (ip[0] >> 4) != 6 ||
	    l3 + 40 > skb->len)
		return 0;
	end = l3 + 40 + ((ip[4] << 8) | ip[5]);
	switch (field) {
	case OVSBPF_SET_IP_SRC:
	case OVSBPF_SET_IP_DST:
		if (bpf_skb_load_bytes(skb, l3 + (field == OVSBPF_SET_IP_SRC ? 8 : 24), old, 16) < 0)
			return 0;
		merge_bytes((__u8 *)new, (__u8 *)old, sv->value, sv->mask, 16);
		if (old[0] == new[0] && old[1] == new[1] && old[2] == new[2] && old[3] == new[3])
			return 0;
		bpf_skb_store_bytes(skb, l3 + (field == OVSBPF_SET_IP_SRC ? 8 : 24), new, 16,
				    BPF_F_RECOMPUTE_CSUM);
		if (ipv6_l4(skb, l3, ip[6], &proto, &l4) < 0)
			return 0;
		diff = bpf_csum_diff(old, 16, new, 16, 0);
		if (diff >= 0)
			fix_l4_pseudo(skb, l4, proto, 0, (__u32)diff, 0);
		return 0;
	case OVSBPF_SET_NW_TOS:
		tclass = ((ip[0] & 0x0f) << 4) | (ip[1] >> 4);
		tclass = (tclass & ~sv->mask[0]) | (sv->value[0] & sv->mask[0]);
		ip[0] = (ip[0] & 0xf0) | (tclass >> 4);
		ip[1] = (ip[1] & 0x0f) | ((tclass & 0x0f) << 4);
		bpf_skb_store_bytes(skb, l3, ip, 2, BPF_F_RECOMPUTE_CSUM);
		return 0;
	case OVSBPF_SET_NW_TTL:
		ip[7] = (ip[7] & ~sv->mask[0]) | (sv->value[0] & sv->mask[0]);
		bpf_skb_store_bytes(skb, l3 + 7, &ip[7], 1, BPF_F_RECOMPUTE_CSUM);
		return 0;
	case OVSBPF_SET_TP_SRC:
	case OVSBPF_SET_TP_DST:
		if (ipv6_l4(skb, l3, ip[6], &proto, &l4) < 0)
			return 0;
		return set_port(skb, l4, end, proto, field, sv);
	}
	return 0;
}

/* Ethernet/IPv4 ARP: SHA at 8, SPA at 14, THA at 18, TPA at 24. */
static __always_inline int set_arp(struct __sk_buff *skb, __u32 l3, __u32 field,
				   const struct ovsbpf_set_value *sv)
{
	__u8 arp[28], out[6];

	if (bpf_skb_load_bytes(skb, l3, arp, 28) < 0)
		return 0;
	if (arp[0] != 0 || arp[1] != 1 || arp[2] != 0x08 || arp[3] != 0 || arp[4] != 6 ||
	    arp[5] != 4)
		return 0;
	switch (field) {
	case OVSBPF_SET_ARP_SHA:
		merge_bytes(out, &arp[8], sv->value, sv->mask, 6);
		return bpf_skb_store_bytes(skb, l3 + 8, out, 6, BPF_F_RECOMPUTE_CSUM);
	case OVSBPF_SET_IP_SRC:
		merge_bytes(out, &arp[14], sv->value, sv->mask, 4);
		return bpf_skb_store_bytes(skb, l3 + 14, out, 4, BPF_F_RECOMPUTE_CSUM);
	case OVSBPF_SET_ARP_THA:
		merge_bytes(out, &arp[18], sv->value, sv->mask, 6);
		return bpf_skb_store_bytes(skb, l3 + 18, out, 6, BPF_F_RECOMPUTE_CSUM);
	case OVSBPF_SET_IP_DST:
		merge_bytes(out, &arp[24], sv->value, sv->mask, 4);
		return bpf_skb_store_bytes(skb, l3 + 24, out, 4, BPF_F_RECOMPUTE_CSUM);
	}
	return 0;
}

/* One SET_MASKED action.  A global function: verified once, not once per
 * action slot. */
__noinline int ovsbpf_set_masked(struct __sk_buff *skb, __u32 field,
				 const struct ovsbpf_set_value *sv)
{
	__u8 old[6], new[6];
	__u16 eth_type;
	__u32 l3, at;

	if (!sv)
		return 0;
	if (field == OVSBPF_SET_ETH_SRC || field == OVSBPF_SET_ETH_DST) {
		at = field == OVSBPF_SET_ETH_SRC ? 6 : 0;
		if (bpf_skb_load_bytes(skb, at, old, 6) < 0)
			return 0;
		merge_bytes(new, old, sv->value, sv->mask, 6);
		return bpf_skb_store_bytes(skb, at, new, 6, 0);
	}
	if (locate_l3(skb, &l3, &eth_type) < 0)
		return 0;
	if (eth_type == ETH_P_IP)
		return ovsbpf_set_ipv4(skb, l3, field, sv);
	if (eth_type == ETH_P_IPV6)
		return ovsbpf_set_ipv6(skb, l3, field, sv);
	if (eth_type == ETH_P_ARP)
		return set_arp(skb, l3, field, sv);
	return 0;
}

/* ---------------------------------------------------------------- meters */

/* Account one packet of ``len`` bytes on meter ``meter_id`` (see
 * ovsbpfd/dpif/meter.py); 1 if a drop band takes it.  A meter that is not set
 * lets everything through. */
__noinline int ovsbpf_meter(__u32 meter_id, __u32 len)
{
	__u32 exceeded = OVSBPF_METER_MAX_BANDS, best_rate = 0, n_bands;
	__u64 now = bpf_ktime_get_ns(), elapsed = 0, cost;
	struct ovsbpf_meter *m;

	m = bpf_map_lookup_elem(&meters, &meter_id);
	if (!m)
		return 0;
	bpf_spin_lock(&m->lock);
	if (!m->in_use) {
		bpf_spin_unlock(&m->lock);
		return 0;
	}
	if (now > m->last_ns) {
		elapsed = now - m->last_ns;
		m->last_ns = now;
	}
	m->packets_in++;
	m->bytes_in += len;
	cost = m->kbps ? (__u64)len * 8 * 1000000 : 1000000000;
	n_bands = m->n_bands;
	for (__u32 i = 0; i < OVSBPF_METER_MAX_BANDS; i++) {
		struct ovsbpf_meter_band *band = &m->bands[i];

		if (i >= n_bands)
			break;
		if (elapsed >= band->fill_ns) {
			band->bucket = band->capacity;
		} else {
			band->bucket += elapsed * band->rate;
			if (band->bucket > band->capacity)
				band->bucket = band->capacity;
		}
		if (band->bucket >= cost) {
			band->bucket -= cost;
		} else if (exceeded == OVSBPF_METER_MAX_BANDS || band->rate > best_rate) {
			exceeded = i;
			best_rate = band->rate;
		}
	}
	if (exceeded < OVSBPF_METER_MAX_BANDS) {
		m->bands[exceeded].packets++;
		m->bands[exceeded].bytes += len;
	}
	bpf_spin_unlock(&m->lock);
	return exceeded < OVSBPF_METER_MAX_BANDS;
}

static __always_inline int run_actions(struct __sk_buff *skb, struct ovsbpf_flow *flow,
				       const struct ovsbpf_flow_key *key,
				       struct ovsbpf_dp_stats *dps)
{
	__u32 n_actions = flow->n_actions, final = flow->final_output;
	int verdict = TC_ACT_SHOT;

	for (__u32 i = 0; i < OVSBPF_MAX_ACTIONS; i++) {
		struct ovsbpf_action *act;

		if (i >= n_actions)
			break;
		act = &flow->actions[i];
		switch (act->type) {
		case OVSBPF_ACTION_OUTPUT:
			output(skb, act->arg, i == final, &verdict);
			break;
		case OVSBPF_ACTION_PUSH_VLAN:
			bpf_skb_vlan_push(skb, bpf_htons(act->tpid), act->arg & 0xffff);
			break;
		case OVSBPF_ACTION_POP_VLAN:
			bpf_skb_vlan_pop(skb);
			break;
		case OVSBPF_ACTION_USERSPACE:
			upcall(skb, key, OVSBPF_UPCALL_ACTION, act->cookie, dps);
			break;
		case OVSBPF_ACTION_SET_MASKED:
			ovsbpf_set_masked(skb, act->tpid,
					  &flow->sets[act->arg & (OVSBPF_MAX_SET_ACTIONS - 1)]);
			break;
		case OVSBPF_ACTION_METER:
			if (ovsbpf_meter(act->arg, frame_len(skb)))
				return verdict; /* dropped: what was output already stays */
			break;
		default:
			break;
		}
	}
	return verdict;
}

/* ---------------------------------------------------------------- entry */

SEC("tc")
int ovsbpf_ingress(struct __sk_buff *skb)
{
	struct search s = {};
	struct ovsbpf_port_stats *ps;
	struct ovsbpf_dp_stats *dps;
	struct ovsbpf_flow *flow;
	__u32 ifindex = skb->ifindex;
	__u16 tcp_flags = 0;
	__u32 *port_no;

	port_no = bpf_map_lookup_elem(&port_by_ifindex, &ifindex);
	if (!port_no)
		return TC_ACT_OK;
	s.key.in_port = *port_no;
	ps = port_counters(s.key.in_port);
	if (ps) {
		ps->rx_packets++;
		ps->rx_bytes += frame_len(skb);
	}
	dps = dp_counters();
	parse_packet(skb, &s.key, &tcp_flags);
	if (s.key.nw_frag != OVSBPF_FRAG_NONE)
		tcp_flags = 0;

	flow = lookup_flow(&s);
	if (!flow) {
		if (dps)
			dps->n_missed++;
		upcall(skb, &s.key, OVSBPF_UPCALL_MISS, 0, dps);
		return TC_ACT_SHOT;
	}
	if (dps)
		dps->n_hit++;
	__sync_fetch_and_add(&flow->packets, 1);
	__sync_fetch_and_add(&flow->bytes, frame_len(skb));
	flow->used_ns = bpf_ktime_get_ns();
	if (tcp_flags)
		__sync_fetch_and_or(&flow->tcp_flags, tcp_flags);
	return run_actions(skb, flow, &s.key, dps);
}
