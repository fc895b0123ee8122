/*
 * netmap.h -- the mesh model and its network maps, computed incrementally.
 *
 * The controller feeds this module the mesh's objects as they change
 * (Networks, Peers, Policies, Routes; namespaces are separate meshes) and
 * asks it for each peer's network map: what a peer must know to talk to the
 * mesh and to filter what reaches it. docs/MESH.md shows the JSON forms.
 * This module does no I/O and knows nothing of HTTP or the store; it runs
 * on one thread (the API server's loop) and takes no locks.
 *
 * The semantics, for peers P and Q of one namespace:
 *
 *   active(P)     P has a public key and an address, and is neither expired
 *                 nor being deleted. Only active peers take part: every set
 *                 below holds active peers only.
 *   from(X), to(X)  the peers a Policy X's selectors match (metav1
 *                 LabelSelector: {} matches all, null/absent matches none).
 *   for(R), via(R)  likewise for a Route R.
 *   router(R)     the first peer of via(R), by name (strcmp), that is
 *                 online; none when no such peer exists.
 *   visible(P,Q)  P != Q, and either some Policy X has P in from(X) and Q in
 *                 to(X) or P in to(X) and Q in from(X) (whatever the ports,
 *                 and whether or not X is bidirectional: WireGuard needs
 *                 both ends), or some Route R has P in for(R) and
 *                 Q = router(R), or Q in for(R) and P = router(R).
 *
 * P's map (mesh_map), when P is known:
 *   self     {name, namespace, address (or null), cidr, dnsName,
 *             publicKey (or null)}; dnsName is "<name>.<ns>.<domain>".
 *   peers    one entry per Q with visible(P,Q) (none when P is not active):
 *            {name, publicKey, endpoints (as given), allowedIPs, dnsName,
 *             online}; allowedIPs is "<Q address>/32" followed by the
 *             destination of every Route R with P in for(R) and
 *             router(R) = Q.
 *   rules    (none when P is not active)
 *            "policy/<X>/in"  for every Policy X with P in to(X):
 *                 sources = "<addr>/32" of from(X) minus P;
 *            "policy/<X>/out" for every bidirectional X with P in from(X):
 *                 sources = to(X) minus P;
 *            both with X's ports; and "route/<R>" for every Route R with
 *            router(R) = P: sources = for(R) minus P, destinations =
 *            [R's destination], ports [] (everything).
 *            ports: [{protocol: "TCP"|"UDP"|"ICMP"|"any", from?, to?}];
 *            an empty list allows everything, an entry without from/to
 *            every port of its protocol.
 *   routes   {name, destination, via: router(R)} for every Route R with P
 *            in for(R), router(R) existing and not P.
 * The order of the elements of every array is unspecified (compare as
 * sets), except allowedIPs' first element.
 *
 * Changes and their cost. Every setter records what it may have changed in
 * the maps it affects, and mesh_flush turns those records into one frame
 * per changed map (docs/MESH.md, "Watching it"): a DELTA carrying the
 * current state of just the entries and rule sources that changed, or a
 * SNAPSHOT when the peer itself changed (its labels, address, key, or its
 * namespace's Network). So a peer joining costs O(peers that can see it),
 * plus one selector match per Policy and Route of its namespace; a Policy
 * change costs O(|from| + |to|) plus the frames; nothing is O(N^2) unless
 * the maps themselves are.
 *
 * Errors: functions returning int give 0, -EINVAL for bad input (with a
 * message in err: which field and why), or -ENOMEM. On an error nothing
 * changed. All strings and json_t arguments are borrowed; the module keeps
 * copies.
 */
#ifndef SIGNALBOX_MESH_NETMAP_H
#define SIGNALBOX_MESH_NETMAP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/strbuf.h"

#define MESH_DEFAULT_CIDR   "100.64.0.0/10"
#define MESH_DEFAULT_DOMAIN "mesh.local"

typedef struct mesh mesh;

/* "a.b.c.d/n" (n in 0..32, no host bits) to the network (host order) and
 * n; -1 when s is not one. */
int mesh_parse_cidr(const char *s, uint32_t *net, int *len);
/* An address (host order) as "a.b.c.d", or "a.b.c.d/32" with slash32,
 * into buf (len >= 19). */
void mesh_format_addr(uint32_t a, char *buf, size_t len, bool slash32);

mesh *mesh_new(void);
void mesh_free(mesh *m);

/* A namespace's Network: cidr "a.b.c.d/n", domain a DNS name. Until set
 * (and after mesh_network_del) a namespace has the defaults above. Every
 * map of the namespace gets a SNAPSHOT when either changes. */
int mesh_network_set(mesh *m, const char *ns, const char *cidr,
		     const char *domain, char *err, size_t errlen);
void mesh_network_del(mesh *m, const char *ns);

typedef struct mesh_peer_spec {
	const char *ns, *name;	 /* required */
	const char *public_key;	 /* base64 of 32 bytes, or NULL */
	const char *address;	 /* dotted IPv4, or NULL (not allocated) */
	const json_t *labels;	 /* object of strings, or NULL */
	const json_t *endpoints; /* array of "host:port" strings, or NULL */
	bool online;
	bool expired;  /* past spec.expiresAt */
	bool deleting; /* has a deletionTimestamp */
} mesh_peer_spec;

/* Add or replace a peer. A bad public key or address is -EINVAL. */
int mesh_peer_set(mesh *m, const mesh_peer_spec *p, char *err, size_t errlen);
/* The name of a peer of ns with this public key (borrowed, valid until the
 * next change), or NULL. */
const char *mesh_peer_by_key(mesh *m, const char *ns, const char *key);

/* Remove a peer (no-op when unknown). Its own map is dropped: no frame is
 * emitted for it (the caller ends its stream). */
void mesh_peer_del(mesh *m, const char *ns, const char *name);

typedef struct mesh_policy_spec {
	const char *ns, *name;
	const json_t *from, *to; /* metav1.LabelSelector, or NULL: none */
	/* [{"protocol": "TCP"|"UDP"|"ICMP"|"any" (default TCP),
	 *   "port": 1-65535, "endPort": port-65535}] or NULL/[]: every
	 * port of every protocol. ICMP takes no port. */
	const json_t *ports;
	bool bidirectional;
} mesh_policy_spec;

int mesh_policy_set(mesh *m, const mesh_policy_spec *p, char *err,
		    size_t errlen);
void mesh_policy_del(mesh *m, const char *ns, const char *name);

typedef struct mesh_route_spec {
	const char *ns, *name;
	const char *destination;       /* "a.b.c.d/n" */
	const json_t *via, *for_peers; /* LabelSelectors, NULL: none */
} mesh_route_spec;

int mesh_route_set(mesh *m, const mesh_route_spec *r, char *err, size_t errlen);
void mesh_route_del(mesh *m, const char *ns, const char *name);

/* The name of router(R) (borrowed, valid until the next change), or NULL
 * when R is unknown or has no router. */
const char *mesh_route_router(mesh *m, const char *ns, const char *name);

/* P's whole map (docs/MESH.md, without apiVersion/kind/serial), a new
 * reference; NULL when P is unknown. */
json_t *mesh_map(mesh *m, const char *ns, const char *name);

/* The same as JSON text appended to out (what a server sends: no parse
 * tree is built). 0, -ENOENT when P is unknown, or -ENOMEM. */
int mesh_map_text(mesh *m, const char *ns, const char *name, strbuf *out);

/* The serial of P's map: the serial of the last mesh_flush that changed
 * it. 0 when P is unknown. */
uint64_t mesh_map_serial(mesh *m, const char *ns, const char *name);

/* Watching: one opaque subscriber per peer (the caller's, e.g. a list of
 * streams). Set it to NULL to stop. Returns -ENOENT when P is unknown. A
 * deleted peer's subscriber is forgotten with it. */
int mesh_subscribe(mesh *m, const char *ns, const char *name, void *sub);
void *mesh_subscriber(mesh *m, const char *ns, const char *name);

typedef struct mesh_sink {
	/* A changed map with a subscriber: frame is a DELTA or SNAPSHOT
	 * (docs/MESH.md) carrying serial (borrowed; valid during the call). */
	void (*frame)(void *sub, const char *ns, const char *name,
		      const json_t *frame, void *arg);
	/* router(R) changed (active NULL: it has none now). */
	void (*router)(const char *ns, const char *route, const char *active,
		       void *arg);
	void *arg;
	/* If set, used instead of frame: the frame as one line of JSON text
	 * (no newline), len bytes, borrowed during the call. */
	void (*frame_text)(void *sub, const char *ns, const char *name,
			   const char *line, size_t len, void *arg);
} mesh_sink;

/* Turn the changes since the last flush into frames and router changes.
 * Every map that changed takes serial (which must grow between flushes).
 * sink may be NULL (the changes are then only counted in the serials).
 * Returns the number of maps that changed. */
size_t mesh_flush(mesh *m, uint64_t serial, const mesh_sink *sink);

/* Whether a flush has work. */
bool mesh_dirty(const mesh *m);

/* Counters, for metrics and benchmarks. */
typedef struct mesh_stats {
	size_t namespaces, peers, active_peers, policies, routes;
	size_t memberships; /* sum of |from|+|to|+|for|+|via| */
} mesh_stats;
void mesh_get_stats(const mesh *m, mesh_stats *st);

#endif
