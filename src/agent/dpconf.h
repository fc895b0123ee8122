/*
 * dpconf.h -- the data-plane configuration: everything the privileged
 * half of the agent needs to make the kernel enforce a network map, and
 * the text form in which it crosses the socketpair between the halves.
 *
 * The network-facing half turns its map (amap.h) into a dpc with
 * dpc_from_amap and sends dpc_encode's text. The privileged half reads it
 * back with dpc_decode, which trusts nothing: every line, key, prefix,
 * endpoint and port is checked again, nothing but the one spelling that
 * dpc_encode writes is taken, and sizes are bounded. Names from the
 * server (peer, rule, route names) never cross: the kernel needs none,
 * and so no server-chosen string reaches a command line or a ruleset.
 *
 * The text, one item a line, fields split by one space, lists by commas,
 * "-" for an empty list:
 *
 *   address 100.64.0.1/10                 the interface address / prefix
 *   forward 0|1                           this peer routes for others
 *   peer KEY ENDPOINTS ALLOWEDIPS         KEY: base64; sorted by key
 *   rule input|forward SOURCES DESTS PORTS
 *                                         PORTS: PROTO:FROM-TO or PROTO:*
 *                                         (PROTO tcp, udp, icmp, any)
 *   route 10.1.0.0/24                     a destination via the interface
 *
 * Ownership: a dpc owns its arrays; dpc_free releases them. Errors: 0,
 * -EINVAL (with the line number and reason in err), -ENOMEM.
 */
#ifndef SIGNALBOX_AGENT_DPCONF_H
#define SIGNALBOX_AGENT_DPCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/addr.h"

struct amap;

/* Bounds dpc_decode enforces. */
#define DPC_MAX_PEERS  100000
#define DPC_MAX_LIST   65536 /* entries of one list */
#define DPC_MAX_RULES  100000
#define DPC_MAX_ROUTES 4096

typedef enum dpc_proto {
	DPC_ANY = 0,
	DPC_TCP,
	DPC_UDP,
	DPC_ICMP,
} dpc_proto; /* the values of amap_proto */

typedef struct dpc_port {
	uint8_t proto;
	uint16_t from, to; /* 0, 0: every port */
} dpc_port;

typedef struct dpc_cidrs {
	addr_cidr *v;
	size_t n;
} dpc_cidrs;

typedef struct dpc_peer {
	uint8_t key[ADDR_KEY_LEN];
	addr_endpoint *endpoints; /* first preferred */
	size_t nendpoints;
	dpc_cidrs allowed;
} dpc_peer;

typedef struct dpc_rule {
	bool forward; /* a forward-chain rule: destinations non-empty */
	dpc_cidrs sources, destinations;
	dpc_port *ports;
	size_t nports;
} dpc_rule;

typedef struct dpc {
	bool has_address;
	uint32_t address;
	uint8_t prefix_len;
	bool forward;
	dpc_peer *peers; /* sorted by key, keys unique */
	size_t npeers;
	dpc_rule *rules;
	size_t nrules;
	dpc_cidrs routes;
} dpc;

/* Prototypes */

void dpc_free(dpc *c);

/* The configuration that enforces map m (network-facing half). Rules
 * without sources match nothing and are left out; peers whose key is the
 * map's own are left out. *out is overwritten (not freed first). */
int dpc_from_amap(const struct amap *m, dpc *out);

/* The text form, a new NUL-terminated string (caller frees); NULL on
 * ENOMEM. */
char *dpc_encode(const dpc *c);

/* Parse and check len bytes of text (privileged half). On success *out
 * holds a new dpc; on error *out is empty. */
int dpc_decode(const char *buf, size_t len, dpc *out, char *err, size_t errlen);

/* The peer with key k, or NULL (binary search). */
const dpc_peer *dpc_peer_find(const dpc *c, const uint8_t k[ADDR_KEY_LEN]);

#endif
