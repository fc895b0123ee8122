/*
 * amap.h -- the agent's desired network map, and the parser of the frames
 * of its watch stream (docs/MESH.md, "The network map", "Watching it").
 *
 * This is the one parser of untrusted server input in the agent, so it
 * runs in the unprivileged, network-facing process only, and it has a
 * fuzzer (fuzz/fuzz_agentmap.c). A frame is checked whole before it
 * touches the map: a bad frame leaves the map as it was.
 *
 * The map is kept in a canonical form, so that two maps can be compared
 * and a map built by a snapshot and one built by deltas are equal when
 * they describe the same thing:
 *   - peers, rules and routes are arrays sorted by name, names unique;
 *   - addresses are parsed (addr.h); sets of prefixes (allowedIPs,
 *     sources, destinations) are sorted and without duplicates, host bits
 *     cleared; endpoints keep their order (the first is preferred) but
 *     lose duplicates;
 *   - a rule's ports are normalised to a sorted list of (protocol, from,
 *     to): the rule's "protocol" applies to ports without one of their
 *     own (netmap.h gives each port its protocol; MESH.md the rule), a
 *     port without from/to means every port of its protocol, no ports
 *     means every port of the rule's protocol ("any" when absent).
 *
 * Ownership: an amap owns everything it points to. Strings passed in are
 * borrowed. Errors: -EINVAL for a bad frame (with the reason, naming the
 * field, in err), -EPROTO for a frame that is well-formed but cannot
 * apply (a DELTA or RESUMED without a map, a RESUMED for another serial),
 * -ENOMEM. After -ENOMEM the map may be half-changed: clear it and ask for
 * a snapshot.
 */
#ifndef SIGNALBOX_AGENT_AMAP_H
#define SIGNALBOX_AGENT_AMAP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/addr.h"

/* The longest frame line the agent takes. */
#define AMAP_FRAME_MAX (32u << 20)

typedef enum amap_proto {
	AMAP_ANY = 0,
	AMAP_TCP,
	AMAP_UDP,
	AMAP_ICMP,
} amap_proto;

typedef struct amap_port {
	uint8_t proto;	   /* amap_proto */
	uint16_t from, to; /* 0, 0: every port (and always so for ICMP) */
} amap_port;

/* A sorted set of prefixes without duplicates. */
typedef struct amap_cidrs {
	addr_cidr *v;
	size_t n;
} amap_cidrs;

typedef struct amap_self {
	char *name, *ns, *dns_name; /* may be NULL, except name and ns */
	bool has_address, has_key;
	uint32_t address;
	addr_cidr cidr;
	uint8_t key[ADDR_KEY_LEN];
} amap_self;

typedef struct amap_peer {
	char *name, *dns_name; /* dns_name may be NULL */
	uint8_t key[ADDR_KEY_LEN];
	addr_endpoint *endpoints;
	size_t nendpoints;
	amap_cidrs allowed;
	bool online;
} amap_peer;

typedef struct amap_rule {
	char *name;
	amap_cidrs sources, destinations; /* destinations: a forward rule */
	amap_port *ports;
	size_t nports; /* at least one after normalising */
} amap_rule;

typedef struct amap_route {
	char *name, *via;
	addr_cidr destination;
} amap_route;

typedef struct amap {
	bool valid; /* a SNAPSHOT has been applied */
	uint64_t serial;
	amap_self self;
	amap_peer *peers;
	size_t npeers;
	amap_rule *rules;
	size_t nrules;
	amap_route *routes;
	size_t nroutes;
} amap;

typedef enum amap_frame_type {
	AMAP_FRAME_SNAPSHOT = 1,
	AMAP_FRAME_DELTA,
	AMAP_FRAME_RESUMED,
	AMAP_FRAME_HEARTBEAT,
	AMAP_FRAME_REVOKED,
} amap_frame_type;

/* Prototypes */

/* Zero-initialise an amap (amap m = {0}) or amap_init; amap_clear frees
 * what it holds and leaves it empty and not valid. */
void amap_init(amap *m);
void amap_clear(amap *m);

/*
 * Apply one frame of the watch stream: len bytes of JSON (one line, not
 * NUL-terminated; at most AMAP_FRAME_MAX). *type gets its type and
 * *serial its serial (0 for REVOKED). A SNAPSHOT replaces the map; a
 * DELTA edits it; RESUMED checks the serial; HEARTBEAT and REVOKED leave it
 * alone. *changed (may be NULL) says whether the map now differs.
 */
int amap_apply_frame(amap *m, const char *buf, size_t len,
		     amap_frame_type *type, uint64_t *serial, bool *changed,
		     char *err, size_t errlen);

/* Replace m with the map object map (the answer of a plain GET of the
 * network map, or a SNAPSHOT's "map") with the given serial. */
int amap_load(amap *m, const json_t *map, uint64_t serial, char *err,
	      size_t errlen);

/* The map as a SNAPSHOT frame (one line of compact JSON, no newline), a
 * new string the caller frees; NULL when m is not valid or on ENOMEM.
 * amap_apply_frame of it gives an equal map. */
char *amap_to_frame(const amap *m);

bool amap_equal(const amap *a, const amap *b);

/* Lookups by name (borrowed, valid until the map changes), NULL if none. */
const amap_peer *amap_peer_find(const amap *m, const char *name);
const amap_rule *amap_rule_find(const amap *m, const char *name);

/* "TCP", "UDP", "ICMP", "any". */
const char *amap_proto_name(amap_proto p);

#endif
