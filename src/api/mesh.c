/*
 * mesh.c -- the mesh in the API server: the controllers that keep the
 * mesh model (mesh/netmap.h) in step with the stored objects and write
 * back what they decide, and the endpoints agents use (docs/MESH.md).
 *
 *   model     cache watchers on Networks, Peers, Policies, Routes and the
 *             peers' Leases feed the model; one flush per loop pass turns
 *             its changes into frames for the open map streams.
 *   IPAM      a Peer without an address gets the next free one of its
 *             Network. Each address is claimed by a key of its own
 *             (.../ipamclaims/<ns>/<address>) created in the same
 *             transaction as the address is written, so no address is
 *             ever handed out twice, whichever server writes it.
 *   liveness  a peer is online while its Lease (peer-<name>) is renewed;
 *             the controller writes status.online and lastSeen when that
 *             changes, and deletes ephemeral peers offline for too long.
 *   routes    a Route's router is the first online peer of via; the
 *             controller writes it to status.active.
 *   expiry    a Peer past spec.expiresAt leaves every map, and its
 *             credential stops working.
 *   enrolment POST .../enrollments: setup key in, Peer + address + Lease +
 *             credential out, in one transaction.
 *   maps      GET .../peers/NAME/networkmap, whole or as a stream.
 *
 * Controllers write through the store with compare-and-swap, as any
 * client does, and retry on conflict. Everything here runs on the loop.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_int.h"
#include "api/patch.h"
#include "mesh/netmap.h"
#include "security/token.h"
#include "util/smap.h"
#include "util/strbuf.h"
#include "util/timefmt.h"

#define MESH_GROUP   "mesh.signalbox.dev"
#define MESH_API     MESH_GROUP "/v1alpha1"
#define CLAIMS	     "/registry/" MESH_GROUP "/ipamclaims/"
#define BOOT_MARK    "/signalbox/bootstrap/mesh-default"
#define HEARTBEAT    30.0
#define MAX_TRIES    8
#define ENROL_TRIES  30
#define SERIAL_SLOTS 1000

/* A peer as the controllers track it. */
typedef struct pstate {
	char *id; /* "ns/name": the smap key */
	char *ns, *name;
	char *uid;
	double renew; /* lease renewTime (epoch seconds), 0: never */
	int lease_secs;
	bool online;	  /* status.online as stored */
	double last_seen; /* status.lastSeen as stored */
	double expires;	  /* spec.expiresAt, 0: none */
	bool expired;	  /* fed to the model as expired */
	bool ephemeral, has_addr, deleting;
	uint32_t addr; /* status.address, when has_addr */
	bool ipam_busy, status_busy, gc_busy;
	bool ipam_failed; /* the range is full: said so in a condition */
	struct mstream *streams;
} pstate;

typedef struct mstream {
	api_req *r;
	struct api_mesh *m;
	pstate *p;
	struct evhttp_connection *conn;
	double last_send;
	struct mstream *next; /* p's streams */
} mstream;

struct api_mesh {
	api_server *a;
	mesh *model;
	smap peers;   /* pstate by "ns/name" */
	smap pending; /* addresses being claimed: "ns/a.b.c.d" (owned keys) */
	smap cursors; /* next-fit IPAM cursor per namespace */
	const reg_type *t_net, *t_peer, *t_pol, *t_route, *t_key, *t_lease,
	    *t_token;
	cache_watcher *w[6];
	struct event *flush_ev, *tick;
	struct api_req_list enrol_q; /* enrolments waiting their turn */
	bool enrolling;		     /* one is out */
	uint64_t serial;
	mesh *scratch; /* for validating objects */
};

/* ---- small helpers ------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static json_t *jmeta(const json_t *o)
{
	return json_object_get(o, "metadata");
}

static const char *meta_str(const json_t *o, const char *k)
{
	return jstr(jmeta(o), k);
}

/* ---- controller writes ------------------------------------------------- */

typedef void (*ctl_done_fn)(struct api_mesh *m, bool ok, void *arg);

/* An internal request: the API's write path without a client. */
typedef struct ctl {
	api_req r; /* first: the completion hands it back */
	struct api_mesh *m;
	char *key;
	json_t *patch; /* merge patch, or NULL for a delete */
	char *uid;     /* delete: only the object with this uid */
	int tries;
	ctl_done_fn done;
	void *arg;
} ctl;

static void ctl_free(ctl *c)
{
	free(c->key);
	free(c->uid);
	json_decref(c->patch);
	free(c->r.val);
	free(c);
}

static void ctl_run(ctl *c);

static void ctl_written(api_req *r, int err, store_txn_result *res)
{
	ctl *c = (ctl *)r;
	bool ok = !err && res && res->succeeded;

	free(c->r.val);
	c->r.val = NULL;
	if (!ok && !err && ++c->tries < MAX_TRIES) {
		ctl_run(c); /* lost a race: the cache has the winner now */
		return;
	}
	if (err)
		fprintf(stderr, "signalbox: mesh: writing %s: %s\n", c->key,
			store_strerror(err));
	if (c->done)
		c->done(c->m, ok, c->arg);
	ctl_free(c);
}

static void ctl_run(ctl *c)
{
	api_server *a = c->m->a;
	cache_obj *o = cache_get(a->cache, c->key);
	store_cmp cmp;
	store_op op = {.key = c->key};
	store_txn t = {&cmp, 1, &op, 1, NULL, 0};
	json_t *obj = NULL, *nobj = NULL;

	if (!o)
		goto nothing;
	cmp = (store_cmp){c->key, STORE_CMP_MOD, STORE_CMP_EQ, o->rev};
	obj = cache_obj_parse(o);
	if (c->uid && (!obj || !meta_str(obj, "uid") ||
		       strcmp(meta_str(obj, "uid"), c->uid)))
		goto nothing;
	if (!c->patch) {
		op.type = STORE_OP_DELETE;
	} else {
		nobj = patch_merge(obj, c->patch);
		if (!nobj || json_equal(nobj, obj))
			goto nothing;
		json_object_del(jmeta(nobj), "resourceVersion");
		c->r.val = json_dumps(nobj, JSON_COMPACT);
		if (!c->r.val)
			goto nothing;
		op.type = STORE_OP_PUT;
		op.value = c->r.val;
		op.value_len = strlen(c->r.val);
	}
	json_decref(obj);
	json_decref(nobj);
	api_txn(&c->r, &t, ctl_written);
	return;
nothing:
	json_decref(obj);
	json_decref(nobj);
	if (c->done)
		c->done(c->m, false, c->arg);
	ctl_free(c);
}

static ctl *ctl_new(struct api_mesh *m, const char *key, json_t *patch,
		    const char *uid, ctl_done_fn done, void *arg)
{
	ctl *c = calloc(1, sizeof(*c));
	if (!c || !(c->key = strdup(key)) || (uid && !(c->uid = strdup(uid)))) {
		if (c)
			free(c->key);
		free(c);
		json_decref(patch);
		return NULL;
	}
	c->r.srv = m->a;
	c->m = m;
	c->patch = patch;
	c->done = done;
	c->arg = arg;
	return c;
}

/* Apply a merge patch (stolen) to the object at key, retrying on
 * conflict. done (may be NULL) runs once with whether it was written. */
static void ctl_patch(struct api_mesh *m, const char *key, json_t *patch,
		      ctl_done_fn done, void *arg)
{
	ctl *c = ctl_new(m, key, patch, NULL, done, arg);
	if (c)
		ctl_run(c);
	else if (done)
		done(m, false, arg);
}

/* Delete the object at key (if its uid is uid, when given). */
static void ctl_delete(struct api_mesh *m, const char *key, const char *uid,
		       ctl_done_fn done, void *arg)
{
	ctl *c = ctl_new(m, key, NULL, uid, done, arg);
	if (c)
		ctl_run(c);
	else if (done)
		done(m, false, arg);
}

/* ---- the model's inputs ------------------------------------------------ */

static void schedule_flush(struct api_mesh *m)
{
	event_active(m->flush_ev, EV_TIMEOUT, 0);
}

static cache_obj *ns_network(struct api_mesh *m, const char *ns);
typedef struct cursor cursor;
/* Per namespace: the IPAM cursor and the Network's range, read from the
 * Network once and again only when it changes. */
struct cursor {
	char *ns;
	uint32_t next;
	bool known; /* net, len and cidr are current */
	uint32_t net;
	int len;
	char cidr[32];
};
static void ipam_assign(struct api_mesh *m, pstate *p);

/* The namespace's Network: its oldest one. */
static cursor *cursor_of(struct api_mesh *m, const char *ns);

static void feed_network(struct api_mesh *m, const char *ns)
{
	cache_obj *best = ns_network(m, ns);
	json_t *obj, *spec;
	char err[256];
	cursor *c = cursor_of(m, ns);

	if (c)
		c->known = false; /* read the range again */
	if (!best) {
		mesh_network_del(m->model, ns);
		schedule_flush(m);
		return;
	}
	obj = cache_obj_parse(best);
	spec = json_object_get(obj, "spec");
	if (mesh_network_set(m->model, ns, jstr(spec, "cidr"),
			     jstr(spec, "domain"), err, sizeof err))
		fprintf(stderr, "signalbox: mesh: network %s/%s: %s\n", ns,
			best->name, err);
	json_decref(obj);
	schedule_flush(m);
	if (api_is_leader(m->a)) {
		/* A new range: re-address the peers outside it. */
		size_t i;
		for (smap_ent *e = smap_first(&m->peers, &i); e;
		     e = smap_next(&m->peers, &i, e)) {
			pstate *p = e->val;
			if (!strcmp(p->ns, ns) && p->has_addr)
				ipam_assign(m, p);
		}
	}
}

static pstate *pstate_get(struct api_mesh *m, const char *ns, const char *name,
			  bool create)
{
	char *id;
	pstate *p;

	if (asprintf(&id, "%s/%s", ns, name) < 0)
		return NULL;
	p = smap_get(&m->peers, id);
	if (p || !create) {
		free(id);
		return p;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->ns = strdup(ns)) || !(p->name = strdup(name)) ||
	    smap_put(&m->peers, id, p)) {
		if (p) {
			free(p->ns);
			free(p->name);
		}
		free(p);
		free(id);
		return NULL;
	}
	p->id = id;
	return p;
}

static void stream_send(mstream *s, const char *line, size_t len);
static void stream_end(mstream *s);

static void streams_revoke(pstate *p)
{
	static const char revoked[] = "{\"type\":\"REVOKED\"}\n";
	while (p->streams) {
		mstream *s = p->streams;
		stream_send(s, revoked, sizeof revoked - 1);
		stream_end(s);
	}
}

static void pstate_free(struct api_mesh *m, pstate *p)
{
	streams_revoke(p);
	smap_del(&m->peers, p->id);
	free(p->id);
	free(p->ns);
	free(p->name);
	free(p->uid);
	free(p);
}

/* The lease of p, from the cache. */
static void read_lease(struct api_mesh *m, pstate *p)
{
	char name[300];
	char *key;
	cache_obj *o;
	json_t *obj, *spec;

	snprintf(name, sizeof name, "peer-%s", p->name);
	key = api_key(m->t_lease, p->ns, name);
	o = key ? cache_get(m->a->cache, key) : NULL;
	free(key);
	if (!o)
		return;
	obj = cache_obj_parse(o);
	spec = json_object_get(obj, "spec");
	p->renew = time_parse(jstr(spec, "renewTime"));
	p->lease_secs = (int)json_integer_value(
	    json_object_get(spec, "leaseDurationSeconds"));
	json_decref(obj);
}

static void liveness(struct api_mesh *m, pstate *p, double now);

static void feed_peer(struct api_mesh *m, const json_t *obj)
{
	const json_t *md = jmeta(obj), *spec = json_object_get(obj, "spec"),
		     *st = json_object_get(obj, "status");
	const char *ns = jstr(md, "namespace"), *name = jstr(md, "name"),
		   *uid = jstr(md, "uid");
	double now = time_now();
	mesh_peer_spec ps;
	pstate *p;
	char err[256];

	if (!ns || !name || !(p = pstate_get(m, ns, name, true)))
		return;
	if (p->uid && uid && strcmp(p->uid, uid))
		streams_revoke(p); /* a new peer under the old name */
	if (!p->uid || (uid && strcmp(p->uid, uid))) {
		free(p->uid);
		p->uid = uid ? strdup(uid) : NULL;
		read_lease(m, p);
	}
	p->online = json_is_true(json_object_get(st, "online"));
	p->last_seen = time_parse(jstr(st, "lastSeen"));
	p->expires = time_parse(jstr(spec, "expiresAt"));
	p->expired = p->expires > 0 && now >= p->expires;
	p->ephemeral = json_is_true(json_object_get(spec, "ephemeral"));
	{
		struct in_addr ia;
		const char *as = jstr(st, "address");

		p->has_addr = as && inet_pton(AF_INET, as, &ia) == 1;
		p->addr = p->has_addr ? ntohl(ia.s_addr) : 0;
	}
	p->deleting = json_object_get(md, "deletionTimestamp") != NULL;
	ps = (mesh_peer_spec){
	    .ns = ns,
	    .name = name,
	    .public_key = jstr(spec, "publicKey"),
	    .address = jstr(st, "address"),
	    .labels = json_object_get(md, "labels"),
	    .endpoints = json_object_get(st, "endpoints"),
	    .online = p->online,
	    .expired = p->expired,
	    .deleting = p->deleting,
	};
	if (mesh_peer_set(m->model, &ps, err, sizeof err)) {
		/* A bad key or address (written by hand): out of the mesh. */
		ps.public_key = NULL;
		ps.address = NULL;
		mesh_peer_set(m->model, &ps, NULL, 0);
	}
	if (p->expired)
		streams_revoke(p);
	schedule_flush(m);
	if (api_is_leader(m->a)) {
		if (!p->deleting)
			ipam_assign(m, p); /* none, or outside the range */
		liveness(m, p, now);
	}
}

static void release_peer(struct api_mesh *m, const json_t *obj);
static void sweep(struct api_mesh *m);

static void on_peer(cache_event *e, void *arg)
{
	struct api_mesh *m = arg;
	json_t *obj;

	if (!e)
		return;
	obj = cache_obj_parse(e->obj);
	if (!obj)
		return;
	if (e->type == CACHE_DELETED) {
		pstate *p = pstate_get(m, e->obj->ns, e->obj->name, false);
		mesh_peer_del(m->model, e->obj->ns, e->obj->name);
		if (p)
			pstate_free(m, p);
		if (api_is_leader(m->a))
			release_peer(m, obj);
		schedule_flush(m);
	} else {
		feed_peer(m, obj);
	}
	json_decref(obj);
}

static void feed_policy(struct api_mesh *m, const json_t *obj)
{
	const json_t *spec = json_object_get(obj, "spec");
	mesh_policy_spec ps = {
	    .ns = meta_str(obj, "namespace"),
	    .name = meta_str(obj, "name"),
	    .from = json_object_get(spec, "from"),
	    .to = json_object_get(spec, "to"),
	    .ports = json_object_get(spec, "ports"),
	    .bidirectional =
		json_is_true(json_object_get(spec, "bidirectional")),
	};
	char err[256];

	if (!ps.ns || !ps.name)
		return;
	if (mesh_policy_set(m->model, &ps, err, sizeof err)) {
		/* Cannot happen for an object admission checked; a policy
		 * that does not compile allows nothing. */
		fprintf(stderr, "signalbox: mesh: policy %s/%s: %s\n", ps.ns,
			ps.name, err);
		mesh_policy_del(m->model, ps.ns, ps.name);
	}
	schedule_flush(m);
}

static void feed_route(struct api_mesh *m, const json_t *obj)
{
	const json_t *spec = json_object_get(obj, "spec");
	mesh_route_spec rs = {
	    .ns = meta_str(obj, "namespace"),
	    .name = meta_str(obj, "name"),
	    .destination = jstr(spec, "destination"),
	    .via = json_object_get(spec, "via"),
	    .for_peers = json_object_get(spec, "for"),
	};
	char err[256];

	if (!rs.ns || !rs.name)
		return;
	if (mesh_route_set(m->model, &rs, err, sizeof err)) {
		fprintf(stderr, "signalbox: mesh: route %s/%s: %s\n", rs.ns,
			rs.name, err);
		mesh_route_del(m->model, rs.ns, rs.name);
	}
	schedule_flush(m);
}

static void on_object(cache_event *e, void *arg, int kind)
{
	struct api_mesh *m = arg;
	json_t *obj;

	if (!e || !e->obj->ns)
		return;
	if (kind == 0) {
		feed_network(m, e->obj->ns);
		return;
	}
	if (e->type == CACHE_DELETED) {
		if (kind == 1)
			mesh_policy_del(m->model, e->obj->ns, e->obj->name);
		else
			mesh_route_del(m->model, e->obj->ns, e->obj->name);
		schedule_flush(m);
		return;
	}
	obj = cache_obj_parse(e->obj);
	if (obj && kind == 1)
		feed_policy(m, obj);
	else if (obj)
		feed_route(m, obj);
	json_decref(obj);
}

static void on_network(cache_event *e, void *arg)
{
	on_object(e, arg, 0);
}

static void on_policy(cache_event *e, void *arg)
{
	on_object(e, arg, 1);
}

static void on_route(cache_event *e, void *arg)
{
	on_object(e, arg, 2);
}

static void on_lease(cache_event *e, void *arg)
{
	struct api_mesh *m = arg;
	pstate *p;

	if (!e || !e->obj->ns || strncmp(e->obj->name, "peer-", 5))
		return;
	p = pstate_get(m, e->obj->ns, e->obj->name + 5, false);
	if (!p)
		return;
	if (e->type == CACHE_DELETED) {
		p->renew = 0;
	} else {
		json_t *obj = cache_obj_parse(e->obj),
		       *spec = json_object_get(obj, "spec");
		p->renew = time_parse(jstr(spec, "renewTime"));
		p->lease_secs = (int)json_integer_value(
		    json_object_get(spec, "leaseDurationSeconds"));
		json_decref(obj);
	}
	if (api_is_leader(m->a))
		liveness(m, p, time_now());
}

/* An address was freed: the peers that found their range full try again. */
static void on_claim(cache_event *e, void *arg)
{
	struct api_mesh *m = arg;
	size_t i;

	if (!e || e->type != CACHE_DELETED || !e->obj->ns ||
	    !api_is_leader(m->a))
		return;
	for (smap_ent *x = smap_first(&m->peers, &i); x;
	     x = smap_next(&m->peers, &i, x)) {
		pstate *p = x->val;
		if (p->ipam_failed && !strcmp(p->ns, e->obj->ns)) {
			p->ipam_failed = false;
			ipam_assign(m, p);
		}
	}
}

/* ---- flush: frames to streams, routers to status ------------------------ */

static void sink_frame(void *sub, const char *ns, const char *name,
		       const char *line, size_t len, void *arg)
{
	pstate *p = sub;

	(void)ns;
	(void)name;
	(void)arg;
	for (mstream *st = p->streams, *nx; st; st = nx) {
		nx = st->next;
		stream_send(st, line, len);
	}
}

static void sink_router(const char *ns, const char *route, const char *active,
			void *arg)
{
	struct api_mesh *m = arg;
	char *key;

	if (!api_is_leader(m->a))
		return;
	key = api_key(m->t_route, ns, route);
	if (!key)
		return;
	ctl_patch(m, key,
		  json_pack("{s:{s:o}}", "status", "active",
			    active ? json_string(active) : json_null()),
		  NULL, NULL);
	free(key);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct api_mesh *m = arg;
	mesh_sink sink = {NULL, sink_router, m, sink_frame};
	uint64_t rev = (uint64_t)cache_revision(m->a->cache);

	(void)fd;
	(void)what;
	if (!mesh_dirty(m->model))
		return;
	/* Serials are revision * 1000 + a count of flushes at that revision
	 * (a map can change without a write: a peer expires). They grow
	 * across restarts too: a server starts at its revision's last slot,
	 * above anything an earlier run could have given at that revision. */
	uint64_t cand = rev * SERIAL_SLOTS;
	if (!m->serial)
		cand += SERIAL_SLOTS - 1;
	else if (cand <= m->serial)
		cand = m->serial + 1;
	if (mesh_flush(m->model, cand, &sink))
		m->serial = cand;
	else if (!m->serial)
		m->serial = cand;
}

/* ---- IPAM ---------------------------------------------------------------- */

static char *claim_key(const char *ns, uint32_t a)
{
	char s[16], *k;
	mesh_format_addr(a, s, sizeof s, false);
	return asprintf(&k, "%s%s/%s", CLAIMS, ns, s) < 0 ? NULL : k;
}

/* The namespace's Network (its oldest), or NULL. Borrowed. */
static cache_obj *ns_network(struct api_mesh *m, const char *ns)
{
	char *prefix;
	cache_obj *best = NULL;

	if (asprintf(&prefix, "%s%s/", m->t_net->key_prefix, ns) < 0)
		return NULL;
	for (cache_obj *o = cache_first(m->a->cache, prefix);
	     o && !strncmp(o->key, prefix, strlen(prefix));
	     o = cache_next(m->a->cache, o))
		if (!best || o->create_rev < best->create_rev)
			best = o;
	free(prefix);
	return best;
}

/* A string of the namespace's Network spec into buf, or dflt. */
static const char *ns_setting(struct api_mesh *m, const char *ns,
			      const char *field, const char *dflt, char *buf,
			      size_t len)
{
	cache_obj *o = ns_network(m, ns);
	json_t *obj = o ? cache_obj_parse(o) : NULL;
	const char *v = jstr(json_object_get(obj, "spec"), field);
	const char *out = dflt;

	if (v && strlen(v) < len) {
		strcpy(buf, v);
		out = buf;
	}
	json_decref(obj);
	return out;
}

/* The namespace's cursor, made on first use. */
static cursor *cursor_of(struct api_mesh *m, const char *ns)
{
	cursor *c = smap_get(&m->cursors, ns);

	if (c)
		return c;
	c = calloc(1, sizeof(*c));
	if (!c || !(c->ns = strdup(ns)) || smap_put(&m->cursors, c->ns, c)) {
		if (c)
			free(c->ns);
		free(c);
		return NULL;
	}
	return c;
}

/* The namespace's range: its Network's, or the default. */
static void ns_range(struct api_mesh *m, const char *ns, uint32_t *net,
		     int *len, const char **cidr)
{
	static char buf[32];
	cursor *c = cursor_of(m, ns);

	if (c && c->known) {
		*net = c->net;
		*len = c->len;
		*cidr = c->cidr;
		return;
	}
	*cidr = ns_setting(m, ns, "cidr", MESH_DEFAULT_CIDR, buf, sizeof buf);
	if (mesh_parse_cidr(*cidr, net, len) || *len > 30) {
		*cidr = MESH_DEFAULT_CIDR;
		mesh_parse_cidr(*cidr, net, len);
	}
	if (c) {
		c->known = true;
		c->net = *net;
		c->len = *len;
		snprintf(c->cidr, sizeof c->cidr, "%s", *cidr);
		*cidr = c->cidr;
	}
}

/* Pick a free address of ns's range: next fit after the last one given,
 * skipping claimed and pending ones. -1 when the range is full. */
static int ipam_pick(struct api_mesh *m, const char *ns, uint32_t *out,
		     const char **cidr)
{
	uint32_t net, first, last, size;
	int len;
	cursor *c;

	ns_range(m, ns, &net, &len, cidr);
	if (!(c = cursor_of(m, ns)))
		return -1;
	size = len == 0 ? 0xffffffffu : (1u << (32 - len));
	first = net + 1;
	last = net + size - 2;
	for (uint64_t i = 0; i <= (uint64_t)(last - first); i++) {
		uint32_t a = c->next;
		char *k, pk[300], s[16];

		if (a < first || a > last)
			a = first;
		c->next = a == last ? first : a + 1;
		k = claim_key(ns, a);
		if (!k)
			return -1;
		mesh_format_addr(a, s, sizeof s, false);
		snprintf(pk, sizeof pk, "%s/%s", ns, s);
		bool taken =
		    cache_get(m->a->cache, k) || smap_get(&m->pending, pk);
		free(k);
		if (!taken) {
			*out = a;
			return 0;
		}
	}
	return -1;
}

static void pending_set(struct api_mesh *m, const char *ns, uint32_t a, bool on)
{
	char s[16], *pk;
	mesh_format_addr(a, s, sizeof s, false);
	if (asprintf(&pk, "%s/%s", ns, s) < 0)
		return;
	if (on) {
		if (smap_put(&m->pending, pk, pk))
			free(pk);
		return;
	}
	char *old = smap_get(&m->pending, pk);
	if (old) {
		smap_del(&m->pending, pk);
		free(old);
	}
	free(pk);
}

/* An address claim: whose it is, and the name of the peer's credential
 * (its token's hash, when enrolment made one), so that deleting the peer
 * deletes that credential without a search. */
static json_t *claim_obj(const char *ns, uint32_t a, const char *peer,
			 const char *uid, const char *token)
{
	char s[16];
	mesh_format_addr(a, s, sizeof s, false);
	return json_pack("{s:{s:s,s:s},s:s,s:s*,s:s*}", "metadata", "name", s,
			 "namespace", ns, "peer", peer, "uid", uid, "token",
			 token);
}

typedef struct ipam_op {
	api_req r; /* first */
	struct api_mesh *m;
	char *id;
	uint32_t addr;
	char *ns;
	char *vals[2];
} ipam_op;

static void ipam_done(api_req *r, int err, store_txn_result *res)
{
	ipam_op *op = (ipam_op *)r;
	pstate *p = smap_get(&op->m->peers, op->id);

	pending_set(op->m, op->ns, op->addr, false);
	if (p)
		p->ipam_busy = false;
	if (err)
		fprintf(stderr, "signalbox: mesh: allocating an address: %s\n",
			store_strerror(err));
	else if (!res->succeeded && p && !p->has_addr)
		ipam_assign(op->m, p); /* lost a race: again */
	free(op->id);
	free(op->ns);
	free(op->vals[0]);
	free(op->vals[1]);
	free(op);
}

static void ipam_exhausted(struct api_mesh *m, pstate *p, const char *cidr)
{
	char *key, now[32], msg[300];

	if (p->ipam_failed)
		return;
	p->ipam_failed = true;
	fprintf(stderr,
		"signalbox: mesh: no free address in %s for peer %s/%s\n", cidr,
		p->ns, p->name);
	key = api_key(m->t_peer, p->ns, p->name);
	if (!key)
		return;
	api_now(now);
	snprintf(msg, sizeof msg,
		 "the network %s of namespace %s has no free address left; "
		 "delete unused peers or make the Network's cidr larger",
		 cidr, p->ns);
	ctl_patch(m, key,
		  json_pack("{s:{s:[{s:s,s:s,s:s,s:s,s:s}]}}", "status",
			    "conditions", "type", "AddressAllocated", "status",
			    "False", "reason", "RangeExhausted", "message", msg,
			    "lastTransitionTime", now),
		  NULL, NULL);
	free(key);
}

/* Give p (a Peer without an address) the next free address: write it to
 * status.address and create its claim, in one transaction that fails if
 * the Peer changed or the address was claimed meanwhile. */
static void ipam_assign(struct api_mesh *m, pstate *p)
{
	char *key = NULL, *ckey = NULL;
	const char *cidr;
	cache_obj *o;
	json_t *obj = NULL, *claim = NULL;
	uint32_t a;
	ipam_op *op = NULL;
	char s[16];

	char *oldkey = NULL;
	cache_obj *oldclaim = NULL;

	if (p->ipam_busy || p->deleting)
		return;
	if (p->has_addr) {
		/* Keep an address inside the Network's range; one outside
		 * (the cidr changed) is replaced. */
		uint32_t net;
		int len;
		const char *c;
		ns_range(m, p->ns, &net, &len, &c);
		uint32_t mask = len ? 0xffffffffu << (32 - len) : 0;
		if ((p->addr & mask) == net)
			return;
		oldkey = claim_key(p->ns, p->addr);
		oldclaim = oldkey ? cache_get(m->a->cache, oldkey) : NULL;
	}
	key = api_key(m->t_peer, p->ns, p->name);
	o = key ? cache_get(m->a->cache, key) : NULL;
	if (!o)
		goto out;
	if (ipam_pick(m, p->ns, &a, &cidr)) {
		ipam_exhausted(m, p, cidr);
		goto out;
	}
	p->ipam_failed = false;
	mesh_format_addr(a, s, sizeof s, false);
	obj = cache_obj_parse(o);
	if (!obj || !(ckey = claim_key(p->ns, a)))
		goto out;
	json_t *st = json_object_get(obj, "status");
	if (!json_is_object(st)) {
		st = json_object();
		json_object_set_new(obj, "status", st);
	}
	json_object_set_new(st, "address", json_string(s));
	json_object_del(st, "conditions");
	json_object_del(jmeta(obj), "resourceVersion");
	/* A replaced address keeps the credential's name. */
	json_t *oc = oldclaim ? cache_obj_parse(oldclaim) : NULL;
	claim = claim_obj(p->ns, a, p->name, p->uid, jstr(oc, "token"));
	json_decref(oc);
	op = calloc(1, sizeof(*op));
	if (!op || !claim)
		goto out;
	op->r.srv = m->a;
	op->m = m;
	op->addr = a;
	op->id = strdup(p->id);
	op->ns = strdup(p->ns);
	op->vals[0] = json_dumps(obj, JSON_COMPACT);
	op->vals[1] = json_dumps(claim, JSON_COMPACT);
	if (!op->id || !op->ns || !op->vals[0] || !op->vals[1]) {
		free(op->id);
		free(op->ns);
		free(op->vals[0]);
		free(op->vals[1]);
		free(op);
		goto out;
	}
	store_cmp cmps[3] = {{key, STORE_CMP_MOD, STORE_CMP_EQ, o->rev},
			     {ckey, STORE_CMP_CREATE, STORE_CMP_EQ, 0},
			     {oldkey, STORE_CMP_MOD, STORE_CMP_EQ,
			      oldclaim ? oldclaim->rev : 0}};
	store_op ops[3] = {
	    {.type = STORE_OP_PUT,
	     .key = key,
	     .value = op->vals[0],
	     .value_len = strlen(op->vals[0])},
	    {.type = STORE_OP_PUT,
	     .key = ckey,
	     .value = op->vals[1],
	     .value_len = strlen(op->vals[1])},
	    {.type = STORE_OP_DELETE, .key = oldkey},
	};
	/* A replaced address frees its claim in the same transaction. */
	size_t n = oldclaim ? 3 : 2;
	store_txn t = {cmps, n, ops, n, NULL, 0};
	p->ipam_busy = true;
	pending_set(m, p->ns, a, true);
	api_txn(&op->r, &t, ipam_done);
out:
	json_decref(obj);
	json_decref(claim);
	free(key);
	free(ckey);
	free(oldkey);
}

/* A Peer is gone: free its address, and delete its Lease and credential
 * (which stopped working the moment the Peer went: auth checks that its
 * Peer exists). */
static void release_peer(struct api_mesh *m, const json_t *obj)
{
	const char *ns = meta_str(obj, "namespace"),
		   *name = meta_str(obj, "name"), *uid = meta_str(obj, "uid");
	const char *addr = jstr(json_object_get(obj, "status"), "address");
	char lname[300], *key, *tok = NULL;
	struct in_addr ia;

	if (!ns || !name)
		return;
	if (addr && inet_pton(AF_INET, addr, &ia) == 1 &&
	    (key = claim_key(ns, ntohl(ia.s_addr)))) {
		cache_obj *c = cache_get(m->a->cache, key);
		json_t *cl = c ? cache_obj_parse(c) : NULL;
		/* Only this peer's claim. */
		if (cl && uid && jstr(cl, "uid") &&
		    !strcmp(jstr(cl, "uid"), uid)) {
			ctl_delete(m, key, NULL, NULL, NULL);
			tok = jstr(cl, "token")
				  ? api_key(m->t_token, NULL, jstr(cl, "token"))
				  : NULL;
		}
		json_decref(cl);
		free(key);
	}
	snprintf(lname, sizeof lname, "peer-%s", name);
	if ((key = api_key(m->t_lease, ns, lname))) {
		ctl_delete(m, key, NULL, NULL, NULL);
		free(key);
	}
	/* Its credential (a peer without a claim has none to find here;
	 * the leader's sweep removes any left over). */
	if (tok)
		ctl_delete(m, tok, NULL, NULL, NULL);
	free(tok);
}

/* ---- liveness, expiry, ephemeral peers --------------------------------- */

static void status_done(struct api_mesh *m, bool ok, void *arg)
{
	pstate *p = smap_get(&m->peers, arg);
	(void)ok;
	if (p)
		p->status_busy = false;
	free(arg);
}

static void gc_done(struct api_mesh *m, bool ok, void *arg)
{
	pstate *p = smap_get(&m->peers, arg);
	(void)ok;
	if (p)
		p->gc_busy = false;
	free(arg);
}

/* Bring status.online and lastSeen in line with the lease. */
static void liveness(struct api_mesh *m, pstate *p, double now)
{
	int secs =
	    p->lease_secs > 0 ? p->lease_secs : m->a->opt.mesh_lease_seconds;
	bool alive = p->renew > 0 && now < p->renew + secs;
	char *key, seen[40];

	if (p->status_busy || p->deleting)
		return;
	/* While online, lastSeen moves at most once a minute. */
	if (alive == p->online &&
	    (!alive || p->renew - p->last_seen < 60 || p->renew <= 0))
		return;
	key = api_key(m->t_peer, p->ns, p->name);
	if (!key)
		return;
	time_format(p->renew > 0 ? p->renew : now, seen, false);
	p->status_busy = true;
	ctl_patch(m, key,
		  json_pack("{s:{s:b,s:s}}", "status", "online", alive,
			    "lastSeen", seen),
		  status_done, strdup(p->id));
	free(key);
}

static void housekeeping(struct api_mesh *m, pstate *p, double now)
{
	char *key;

	if (p->expires > 0 && !p->expired && now >= p->expires) {
		/* Expired: feed the peer again; the model drops it. */
		key = api_key(m->t_peer, p->ns, p->name);
		cache_obj *o = key ? cache_get(m->a->cache, key) : NULL;
		json_t *obj = o ? cache_obj_parse(o) : NULL;
		free(key);
		if (obj)
			feed_peer(m, obj);
		json_decref(obj);
	}
	if (!api_is_leader(m->a))
		return;
	liveness(m, p, now);
	if (!p->has_addr && !p->deleting && !p->ipam_failed)
		ipam_assign(m, p);
	/* Offline since its lease lapsed: its last renewal (or, never
	 * renewed, its last sighting) plus the lease's duration. */
	int secs =
	    p->lease_secs > 0 ? p->lease_secs : m->a->opt.mesh_lease_seconds;
	double seen = p->renew > 0 ? p->renew : p->last_seen;
	double off = seen > 0 ? seen + secs : 0;
	if (p->ephemeral && !p->online && !p->gc_busy && !p->deleting &&
	    off > 0 && now - off >= m->a->opt.mesh_ephemeral_seconds) {
		key = api_key(m->t_peer, p->ns, p->name);
		if (key) {
			fprintf(stderr,
				"signalbox: mesh: deleting ephemeral peer %s, "
				"offline for %.0f s\n",
				p->id, now - off);
			p->gc_busy = true;
			ctl_delete(m, key, p->uid, gc_done, strdup(p->id));
			free(key);
		}
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct api_mesh *m = arg;
	double now = time_now();
	size_t i;
	/* Collect first: housekeeping may free or add states. */
	size_t n = m->peers.n, k = 0;
	char **ids = calloc(n + 1, sizeof(*ids));

	(void)fd;
	(void)what;
	if (!ids)
		return;
	for (smap_ent *e = smap_first(&m->peers, &i); e && k < n;
	     e = smap_next(&m->peers, &i, e))
		ids[k++] = strdup(e->key);
	for (size_t j = 0; j < k; j++) {
		pstate *p = ids[j] ? smap_get(&m->peers, ids[j]) : NULL;
		if (p) {
			housekeeping(m, p, now);
			for (mstream *s = p->streams, *nx; s; s = nx) {
				nx = s->next;
				if (now - s->last_send >= HEARTBEAT) {
					char hb[64];
					int len = snprintf(
					    hb, sizeof hb,
					    "{\"type\":\"HEARTBEAT\","
					    "\"serial\":%llu}\n",
					    (unsigned long long)mesh_map_serial(
						m->model, p->ns, p->name));
					stream_send(s, hb, (size_t)len);
				}
			}
		}
		free(ids[j]);
	}
	free(ids);
}

/* ---- the map endpoint --------------------------------------------------- */

static void stream_end(mstream *s)
{
	api_req *r = s->r;
	pstate *p = s->p;

	for (mstream **pp = &p->streams; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	if (!p->streams)
		mesh_subscribe(s->m->model, p->ns, p->name, NULL);
	/* As watch.c: a request still on its connection is finished here;
	 * one whose client went away (s->conn cleared by the close callback)
	 * is freed by evhttp_send_reply_end when it has no connection, and
	 * by its connection otherwise. */
	bool gone = !s->conn;
	if (s->conn)
		evhttp_connection_set_closecb(s->conn, NULL, NULL);
	if (!gone || !evhttp_request_get_connection(r->ev))
		evhttp_send_reply_end(r->ev);
	free(s);
	api_req_finish(r, 200);
}

static void stream_send(mstream *s, const char *line, size_t len)
{
	struct evbuffer *b = evbuffer_new();
	struct bufferevent *bev =
	    s->conn ? evhttp_connection_get_bufferevent(s->conn) : NULL;

	if (!b)
		return;
	evbuffer_add(b, line, len);
	if (len && line[len - 1] != '\n')
		evbuffer_add(b, "\n", 1);
	evhttp_send_reply_chunk(s->r->ev, b);
	evbuffer_free(b);
	s->last_send = time_now();
	if (bev &&
	    evbuffer_get_length(bufferevent_get_output(bev)) > (64u << 20)) {
		fprintf(stderr,
			"signalbox: mesh: map stream of %s is not read; "
			"closing it\n",
			s->p->id);
		stream_end(s);
	}
}

static void on_stream_close(struct evhttp_connection *c, void *arg)
{
	mstream *s = arg;
	(void)c;
	s->conn = NULL;
	stream_end(s);
}

void api_mesh_networkmap(api_req *r)
{
	struct api_mesh *m = r->srv->mesh;
	pstate *p;
	mstream *s;
	strbuf b = {0};
	const char *serial = api_query(r, "serial");
	uint64_t cur;

	if (r->verb != VERB_GET) {
		api_fail(r, 405, "MethodNotAllowed", NULL,
			 "peers/networkmap only supports get and watch");
		return;
	}
	on_flush(-1, 0, m); /* answer with every change so far */
	p = pstate_get(m, r->ns, r->name, false);
	if (!p || p->expired || !mesh_map_serial(m->model, r->ns, r->name)) {
		api_fail(r, 404, "NotFound", api_details(r, r->name),
			 "peers.%s \"%s\" not found%s", MESH_GROUP, r->name,
			 p && p->expired ? " (it expired)" : "");
		return;
	}
	cur = mesh_map_serial(m->model, r->ns, r->name);
	/* The map is written as text straight from the model. */
	if (!api_query_bool(r, "watch")) {
		strbuf mt = {0};
		if (mesh_map_text(m->model, r->ns, r->name, &mt) || mt.oom) {
			free(mt.p);
			api_fail(r, 500, "InternalError", NULL,
				 "out of memory");
			return;
		}
		/* {"apiVersion", "kind", "serial", then the map's fields. */
		strbuf_printf(&b,
			      "{\"apiVersion\":\"%s\",\"kind\":\"NetworkMap\","
			      "\"serial\":%llu,",
			      MESH_API, (unsigned long long)cur);
		strbuf_putn(&b, mt.p + 1, mt.len - 1);
		free(mt.p);
		if (b.oom) {
			free(b.p);
			api_fail(r, 500, "InternalError", NULL,
				 "out of memory");
			return;
		}
		api_reply(r, 200, "application/json", b.p, b.len);
		free(b.p);
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		api_fail(r, 500, "InternalError", NULL, "out of memory");
		return;
	}
	s->r = r;
	s->m = m;
	s->p = p;
	r->long_running = true;
	r->srv->inflight--;
	r->srv->watchers++;
	evhttp_add_header(evhttp_request_get_output_headers(r->ev),
			  "Content-Type", "application/json");
	evhttp_add_header(evhttp_request_get_output_headers(r->ev),
			  "Cache-Control", "no-cache, private");
	evhttp_send_reply_start(r->ev, 200, "OK");
	api_audit(r, "ResponseStarted", 200);
	s->conn = evhttp_request_get_connection(r->ev);
	if (s->conn) {
		struct timeval wtv = {60, 0};
		evhttp_connection_set_closecb(s->conn, on_stream_close, s);
		bufferevent_set_timeouts(
		    evhttp_connection_get_bufferevent(s->conn), NULL, &wtv);
	}
	s->next = p->streams;
	p->streams = s;
	mesh_subscribe(m->model, r->ns, r->name, p);
	if (serial && *serial && strtoull(serial, NULL, 10) == cur) {
		strbuf_printf(&b, "{\"type\":\"RESUMED\",\"serial\":%llu}",
			      (unsigned long long)cur);
	} else {
		strbuf_printf(&b,
			      "{\"type\":\"SNAPSHOT\",\"serial\":%llu,"
			      "\"map\":",
			      (unsigned long long)cur);
		mesh_map_text(m->model, r->ns, r->name, &b);
		strbuf_putc(&b, '}');
	}
	if (!b.oom)
		stream_send(s, b.p, b.len);
	free(b.p);
}

/* ---- enrolment ------------------------------------------------------------
 */

/* hostname -> a DNS label (lowercase letters, digits, '-'), at most 50. */
static void peer_name_of(const char *host, char out[64])
{
	size_t n = 0;
	for (const char *c = host; *c && n < 50; c++) {
		char ch = *c;
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (ch == '.')
			break; /* the short name */
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
			ch = '-';
		if (ch == '-' && (n == 0 || out[n - 1] == '-'))
			continue;
		out[n++] = ch;
	}
	while (n && out[n - 1] == '-')
		n--;
	if (!n) {
		strcpy(out, "peer");
		return;
	}
	out[n] = 0;
}

/* The setup key object whose secret is secret, or NULL. Every key is
 * compared (in constant time each), so timing says nothing of which. */
static cache_obj *find_setup_key(struct api_mesh *m, const char *secret)
{
	cache_obj *found = NULL;
	const char *pre = m->t_key->key_prefix;

	for (cache_obj *o = cache_first(m->a->cache, pre);
	     o && !strncmp(o->key, pre, strlen(pre));
	     o = cache_next(m->a->cache, o)) {
		json_t *obj = cache_obj_parse(o);
		const char *h = jstr(json_object_get(obj, "status"), "hash");
		if (h && token_hash_match(secret, h) && !found)
			found = o;
		json_decref(obj);
	}
	return found;
}

typedef struct enrol {
	api_req *r;
	char *vals[5];
	char *keys[5];
	uint32_t addr;
	char ns[256];
	json_t *answer;
} enrol;

static void enrol_free(enrol *e)
{
	for (int i = 0; i < 5; i++) {
		free(e->vals[i]);
		free(e->keys[i]);
	}
	json_decref(e->answer);
	free(e);
}

static bool enrol_try(api_req *r);
static void enrol_pump(struct api_mesh *m);

static void enrol_done(api_req *r, int err, store_txn_result *res)
{
	enrol *e = (enrol *)r->aux;
	struct api_mesh *m = r->srv->mesh;

	r->aux = NULL;
	pending_set(m, e->ns, e->addr, false);
	if (err) {
		enrol_free(e);
		api_fail(r, 500, "InternalError", NULL,
			 "the store could not write the enrolment: %s",
			 store_strerror(err));
	} else if (!res->succeeded) {
		/* Another server's enrolment (or a client) used the key, the
		 * name or the address first: look again at what the cache
		 * has now. */
		enrol_free(e);
		if (++r->retries < ENROL_TRIES) {
			if (enrol_try(r))
				return;
		} else {
			api_fail(r, 409, "Conflict", NULL,
				 "the enrolment kept conflicting with "
				 "others; try again");
		}
	} else {
		json_t *ans = json_incref(e->answer);
		enrol_free(e);
		api_reply_json(r, 201, ans);
	}
	m->enrolling = false;
	enrol_pump(m);
}

/* Enrolments run one at a time on a server: each changes its setup key's
 * use count with a compare-and-swap, so concurrent ones would only make
 * each other retry. The others wait in line. */
static void enrol_pump(struct api_mesh *m)
{
	api_req *r;

	while (!m->enrolling && (r = STAILQ_FIRST(&m->enrol_q))) {
		STAILQ_REMOVE_HEAD(&m->enrol_q, link);
		m->enrolling = enrol_try(r);
	}
}

static bool enrol_try(api_req *r)
{
	struct api_mesh *m = r->srv->mesh;
	json_t *obj = r->obj, *spec = json_object_get(obj, "spec");
	const char *secret = jstr(spec, "setupKey"),
		   *pub = jstr(spec, "publicKey"),
		   *host = jstr(spec, "hostname");
	json_t *eps = json_object_get(spec, "endpoints");
	cache_obj *ko;
	json_t *key = NULL, *kspec, *kst, *causes;
	char name[64], try[80], suffix[6], now[32], renew[40], uid[37],
	    tuid[37], lname[100], s[16], token[TOKEN_MAX], hash[65];
	const char *ns, *cidr;
	enrol *e = NULL;
	uint32_t a;
	char err[256];
	double t = time_now();

	causes = json_array();
	if (!secret || !*secret)
		json_array_append_new(
		    causes,
		    json_pack("{s:s,s:s,s:s}", "reason", "FieldValueRequired",
			      "field", "spec.setupKey", "message",
			      "Required value: the setup key"));
	mesh_peer_spec ps = {.ns = "-", .name = "-", .public_key = pub};
	if (!pub || mesh_peer_set(m->scratch, &ps, err, sizeof err))
		json_array_append_new(
		    causes,
		    json_pack("{s:s,s:s,s:s}", "reason", "FieldValueInvalid",
			      "field", "spec.publicKey", "message",
			      "Invalid value: must be a WireGuard public key "
			      "(base64 of 32 bytes)"));
	mesh_peer_del(m->scratch, "-", "-");
	if (!host || !*host)
		json_array_append_new(
		    causes,
		    json_pack("{s:s,s:s,s:s}", "reason", "FieldValueRequired",
			      "field", "spec.hostname", "message",
			      "Required value: the machine's name"));
	if (eps && !json_is_array(eps))
		json_array_append_new(
		    causes,
		    json_pack("{s:s,s:s,s:s}", "reason", "FieldValueInvalid",
			      "field", "spec.endpoints", "message",
			      "Invalid value: must be a list of "
			      "host:port strings"));
	if (json_array_size(causes)) {
		api_fail_invalid(r, NULL, causes);
		json_decref(causes);
		return false;
	}
	json_decref(causes);

	ko = find_setup_key(m, secret);
	if (ko) {
		key = cache_obj_parse(ko);
		kspec = json_object_get(key, "spec");
		kst = json_object_get(key, "status");
	}
	if (!ko || !key) {
		api_fail(r, 401, "Unauthorized", NULL,
			 "the setup key is not valid: no SetupKey has it "
			 "(ask your administrator for a new one)");
		goto out;
	}
	ns = ko->ns;
	double exp = time_parse(jstr(kst, "expiresAt"));
	json_int_t used = json_integer_value(json_object_get(kst, "used"));
	json_int_t limit =
	    json_integer_value(json_object_get(kspec, "usageLimit"));
	bool reusable = json_is_true(json_object_get(kspec, "reusable"));
	if (exp > 0 && t >= exp) {
		api_fail(r, 401, "Unauthorized", NULL,
			 "the setup key %s/%s expired at %s", ns, ko->name,
			 jstr(kst, "expiresAt"));
		goto out;
	}
	if ((!reusable && used >= 1) ||
	    (reusable && limit > 0 && used >= limit)) {
		api_fail(r, 401, "Unauthorized", NULL,
			 "the setup key %s/%s is used up (%lld of %lld uses)",
			 ns, ko->name, (long long)used,
			 (long long)(reusable ? limit : 1));
		goto out;
	}
	/* One peer per public key in a namespace. */
	const char *holder = mesh_peer_by_key(m->model, ns, pub);
	if (holder) {
		api_fail(r, 409, "AlreadyExists", NULL,
			 "a peer with this public key is already enrolled in "
			 "namespace %s as %s; use its credential, or delete it "
			 "first",
			 ns, holder);
		goto out;
	}
	/* The name: the hostname, or with a suffix when it is taken. */
	peer_name_of(host, name);
	snprintf(try, sizeof try, "%s", name);
	for (int i = 0;; i++) {
		char *k = api_key(m->t_peer, ns, try);
		bool taken = k && cache_get(m->a->cache, k);
		free(k);
		if (!taken)
			break;
		if (i == 10) {
			api_fail(r, 409, "AlreadyExists", NULL,
				 "no free peer name for host %s", host);
			goto out;
		}
		api_name_suffix(suffix);
		snprintf(try, sizeof try, "%s-%s", name, suffix);
	}
	if (ipam_pick(m, ns, &a, &cidr)) {
		api_fail(r, 507, "InsufficientStorage", NULL,
			 "the network %s of namespace %s has no free address "
			 "left; delete unused peers or make the Network's "
			 "cidr larger",
			 cidr, ns);
		goto out;
	}
	mesh_format_addr(a, s, sizeof s, false);
	if (token_generate(token, sizeof token))
		goto oom;
	token_hash(token, hash);
	api_now(now);
	time_format(t, renew, true);
	api_uuid(uid);
	api_uuid(tuid);
	snprintf(lname, sizeof lname, "peer-%s", try);

	e = calloc(1, sizeof(*e));
	if (!e)
		goto oom;
	snprintf(e->ns, sizeof e->ns, "%s", ns);
	e->addr = a;
	json_t *labels = json_object_get(kspec, "peerLabels");
	json_t *peer = json_pack(
	    "{s:s,s:s,s:{s:s,s:s,s:s,s:s,s:I,s:O*},s:{s:s,s:b},"
	    "s:{s:s,s:O*,s:s*,s:b,s:s}}",
	    "apiVersion", MESH_API, "kind", "Peer", "metadata", "name", try,
	    "namespace", ns, "uid", uid, "creationTimestamp", now, "generation",
	    (json_int_t)1, "labels", json_is_object(labels) ? labels : NULL,
	    "spec", "publicKey", pub, "ephemeral",
	    json_is_true(json_object_get(kspec, "ephemeral")), "status",
	    "address", s, "endpoints", json_is_array(eps) ? eps : NULL,
	    "agentVersion", jstr(spec, "agentVersion"), "online", 1, "lastSeen",
	    now);
	json_t *lease =
	    json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:s},s:{s:s,s:i,s:s,s:s}}",
		      "apiVersion", "coordination.k8s.io/v1", "kind", "Lease",
		      "metadata", "name", lname, "namespace", ns, "uid", tuid,
		      "creationTimestamp", now, "spec", "holderIdentity", try,
		      "leaseDurationSeconds", m->a->opt.mesh_lease_seconds,
		      "renewTime", renew, "acquireTime", renew);
	char user[400];
	snprintf(user, sizeof user, "system:peer:%s:%s", ns, try);
	api_uuid(tuid);
	json_t *tok = json_pack(
	    "{s:s,s:s,s:{s:s,s:s,s:s},s:{s:s,s:[s],s:{s:s,s:s,s:s},s:s}}",
	    "apiVersion", "auth.signalbox.dev/v1", "kind", "Token", "metadata",
	    "name", hash, "uid", tuid, "creationTimestamp", now, "spec", "user",
	    user, "groups", "system:peers", "peer", "namespace", ns, "name",
	    try, "uid", uid, "description", "mesh peer credential");
	json_t *claim = claim_obj(ns, a, try, uid, hash);
	json_t *nkey = json_deep_copy(key);
	json_t *nkst = json_object_get(nkey, "status");
	json_object_set_new(nkst, "used", json_integer(used + 1));
	json_object_del(jmeta(nkey), "resourceVersion");
	json_t *objs[5] = {peer, lease, tok, claim, nkey};
	e->keys[0] = api_key(m->t_peer, ns, try);
	e->keys[1] = api_key(m->t_lease, ns, lname);
	e->keys[2] = api_key(m->t_token, NULL, hash);
	e->keys[3] = claim_key(ns, a);
	e->keys[4] = strdup(ko->key);
	bool ok = true;
	for (int i = 0; i < 5; i++) {
		e->vals[i] = objs[i] ? json_dumps(objs[i], JSON_COMPACT) : NULL;
		ok = ok && e->vals[i] && e->keys[i];
		json_decref(objs[i]);
	}
	char dombuf[256];
	const char *domain = ns_setting(m, ns, "domain", MESH_DEFAULT_DOMAIN,
					dombuf, sizeof dombuf);
	e->answer = json_pack(
	    "{s:s,s:s,s:{},s:{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i}}", "apiVersion",
	    MESH_API, "kind", "Enrollment", "metadata", "status", "peer", try,
	    "namespace", ns, "address", s, "cidr", cidr, "domain", domain,
	    "token", token, "lease", lname, "leaseDurationSeconds",
	    m->a->opt.mesh_lease_seconds);
	explicit_bzero(token, sizeof token);
	if (e->answer) {
		/* The request's spec, but its secret. */
		json_t *echo = json_deep_copy(spec);
		json_object_del(echo, "setupKey");
		json_object_set_new(e->answer, "spec", echo);
	}
	if (!ok || !e->answer) {
		enrol_free(e);
		goto oom;
	}
	store_cmp cmps[5];
	store_op ops[5];
	for (int i = 0; i < 5; i++) {
		cmps[i] =
		    (store_cmp){e->keys[i], STORE_CMP_CREATE, STORE_CMP_EQ, 0};
		ops[i] = (store_op){.type = STORE_OP_PUT,
				    .key = e->keys[i],
				    .value = e->vals[i],
				    .value_len = strlen(e->vals[i])};
	}
	cmps[4] = (store_cmp){e->keys[4], STORE_CMP_MOD, STORE_CMP_EQ, ko->rev};
	store_txn txn = {cmps, 5, ops, 5, NULL, 0};
	pending_set(m, ns, a, true);
	r->aux = (json_t *)e; /* not JSON: enrol_done takes it back */
	api_txn(r, &txn, enrol_done);
	json_decref(key);
	return true;
oom:
	api_fail(r, 500, "InternalError", NULL, "out of memory");
out:
	json_decref(key);
	return false;
}

void api_mesh_enroll(api_req *r)
{
	struct api_mesh *m = r->srv->mesh;
	json_t *obj;

	if (r->verb != VERB_CREATE) {
		api_fail(r, 405, "MethodNotAllowed", NULL,
			 "enrollments only supports create");
		return;
	}
	obj = api_parse_body(r, false);
	if (!obj)
		return;
	if (!json_is_object(json_object_get(obj, "spec"))) {
		json_decref(obj);
		api_fail(r, 400, "BadRequest", NULL,
			 "an Enrollment needs a spec with setupKey, publicKey "
			 "and hostname");
		return;
	}
	json_decref(r->obj);
	r->obj = obj;
	r->retries = 0;
	STAILQ_INSERT_TAIL(&m->enrol_q, r, link);
	enrol_pump(m);
}

/* ---- admission ------------------------------------------------------------
 */

static void cause(json_t *causes, const char *field, const char *msg);

/* A model's "field: message" error as a cause. */
static void cause_from(json_t *causes, char *err)
{
	char *colon = strchr(err, ':');

	if (colon && colon[1] == ' ') {
		*colon = 0;
		cause(causes, err, colon + 2);
	} else {
		cause(causes, "spec", err);
	}
}

static void cause(json_t *causes, const char *field, const char *msg)
{
	json_array_append_new(causes, json_pack("{s:s,s:s,s:s}", "reason",
						"FieldValueInvalid", "field",
						field, "message", msg));
}

/* "24h", "30m", "1h30m", "90s" to seconds; -1 when it is not one. */
static long parse_ttl(const char *s)
{
	long total = 0;
	while (s && *s) {
		char *end;
		long v = strtol(s, &end, 10);
		if (end == s || v < 0)
			return -1;
		switch (*end) {
		case 'h':
			total += v * 3600;
			break;
		case 'm':
			total += v * 60;
			break;
		case 's':
			total += v;
			break;
		default:
			return -1;
		}
		s = end + 1;
	}
	return s ? total : -1;
}

size_t api_mesh_admit(api_req *r, json_t *obj, const json_t *old,
		      json_t *causes)
{
	struct api_mesh *m = r->srv->mesh;
	size_t before = json_array_size(causes);
	const char *kind = r->type->kind;
	json_t *spec = json_object_get(obj, "spec");
	char err[300];

	if (!m || strcmp(r->type->group, MESH_GROUP))
		return 0;
	if (!strcmp(kind, "Network")) {
		if (mesh_network_set(m->scratch, "-", jstr(spec, "cidr"),
				     jstr(spec, "domain"), err, sizeof err)) {
			cause_from(causes, err);
		}
		mesh_network_del(m->scratch, "-");
	} else if (!strcmp(kind, "Policy")) {
		mesh_policy_spec ps = {
		    .ns = "-",
		    .name = "-",
		    .from = json_object_get(spec, "from"),
		    .to = json_object_get(spec, "to"),
		    .ports = json_object_get(spec, "ports"),
		};
		if (mesh_policy_set(m->scratch, &ps, err, sizeof err)) {
			cause_from(causes, err);
		}
		mesh_policy_del(m->scratch, "-", "-");
	} else if (!strcmp(kind, "Route")) {
		mesh_route_spec rs = {
		    .ns = "-",
		    .name = "-",
		    .destination = jstr(spec, "destination"),
		    .via = json_object_get(spec, "via"),
		    .for_peers = json_object_get(spec, "for"),
		};
		if (mesh_route_set(m->scratch, &rs, err, sizeof err)) {
			cause_from(causes, err);
		}
		mesh_route_del(m->scratch, "-", "-");
	} else if (!strcmp(kind, "Peer")) {
		json_t *st = json_object_get(obj, "status");
		const json_t *ost = json_object_get(old, "status");

		/* The address is the IPAM controller's to give (a peer that
		 * wrote one could take another's); online and lastSeen follow
		 * the Lease. Whoever writes a Peer keeps them as stored. */
		if (old) {
			const char *oa = jstr(ost, "address"),
				   *na = jstr(st, "address");
			if ((oa || na) && (!oa || !na || strcmp(oa, na)))
				cause(causes, "status.address",
				      "Forbidden: the address is allocated by "
				      "signalbox and cannot be changed");
			if (!json_is_object(st) && json_is_object(ost)) {
				st = json_object();
				json_object_set_new(obj, "status", st);
			}
			static const char *const keep[] = {"online",
							   "lastSeen"};
			for (int k = 0; k < 2 && json_is_object(st); k++) {
				json_t *v = json_object_get(ost, keep[k]);
				if (v)
					json_object_set(st, keep[k], v);
				else
					json_object_del(st, keep[k]);
			}
		}
		mesh_peer_spec ps = {.ns = "-",
				     .name = "-",
				     .public_key = jstr(spec, "publicKey"),
				     .address = jstr(st, "address")};
		if (mesh_peer_set(m->scratch, &ps, err, sizeof err)) {
			cause_from(causes, err);
		}
		mesh_peer_del(m->scratch, "-", "-");
	} else if (!strcmp(kind, "SetupKey")) {
		const char *ttl = jstr(spec, "ttl");
		if (ttl && parse_ttl(ttl) < 0)
			cause(causes, "spec.ttl",
			      "Invalid value: a duration like 24h, 30m, 1h30m "
			      "or 90s");
		if (ttl && jstr(spec, "expiresAt"))
			cause(causes, "spec",
			      "Invalid value: give expiresAt or ttl, not both");
		if (json_array_size(causes) == before &&
		    r->verb == VERB_CREATE) {
			/* The secret: shown once in the answer, stored as a
			 * hash. */
			char tok[TOKEN_MAX], secret[TOKEN_MAX + 2], hash[65],
			    exp[40], prefix[16];
			json_t *st = json_object();
			if (token_generate(tok, sizeof tok) || !st) {
				json_decref(st);
				cause(causes, "status", "cannot make a secret");
				return json_array_size(causes) - before;
			}
			snprintf(secret, sizeof secret, "sbk_%s", tok + 3);
			explicit_bzero(tok, sizeof tok);
			token_hash(secret, hash);
			snprintf(prefix, sizeof prefix, "%.8s", secret);
			json_object_set_new(st, "hash", json_string(hash));
			json_object_set_new(st, "prefix", json_string(prefix));
			json_object_set_new(st, "used", json_integer(0));
			if (ttl) {
				time_format(time_now() + (double)parse_ttl(ttl),
					    exp, false);
				json_object_set_new(st, "expiresAt",
						    json_string(exp));
			} else if (jstr(spec, "expiresAt")) {
				json_object_set(
				    st, "expiresAt",
				    json_object_get(spec, "expiresAt"));
			}
			json_object_set_new(obj, "status", st);
			free(r->secret);
			r->secret = strdup(secret);
			explicit_bzero(secret, sizeof secret);
		}
	}
	return json_array_size(causes) - before;
}

/* ---- credentials ------------------------------------------------------------
 */

bool api_mesh_credential_valid(api_server *a, const json_t *peer)
{
	struct api_mesh *m = a->mesh;
	const char *ns = jstr(peer, "namespace"), *name = jstr(peer, "name"),
		   *uid = jstr(peer, "uid");
	pstate *p;

	if (!m || !ns || !name || !uid)
		return false;
	p = pstate_get(m, ns, name, false);
	return p && p->uid && !strcmp(p->uid, uid) && !p->expired &&
	       !p->deleting;
}

/* ---- start and stop ----------------------------------------------------- */

static void feed_all(struct api_mesh *m, const reg_type *t,
		     void (*fn)(struct api_mesh *, const json_t *))
{
	const char *pre = t->key_prefix;
	for (cache_obj *o = cache_first(m->a->cache, pre);
	     o && !strncmp(o->key, pre, strlen(pre));
	     o = cache_next(m->a->cache, o)) {
		json_t *obj = cache_obj_parse(o);
		if (obj)
			fn(m, obj);
		json_decref(obj);
	}
}

static void feed_network_obj(struct api_mesh *m, const json_t *obj)
{
	const char *ns = meta_str(obj, "namespace");
	if (ns)
		feed_network(m, ns);
}

/* On the first start ever: a Network and an allow-all Policy in the
 * default namespace, as NetBird starts an account. */
static int bootstrap(struct api_mesh *m)
{
	char now[32], uid[37], *key;
	json_t *o;
	int rc = 0;
	store_range_result rr;

	if (store_range(m->a->st, BOOT_MARK, NULL, 0, 1, &rr) == 0) {
		bool done = rr.count > 0;
		store_range_result_free(&rr);
		if (done)
			return 0;
	}
	api_now(now);
	api_uuid(uid);
	o = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:s,s:I},s:{s:s,s:s}}",
		      "apiVersion", MESH_API, "kind", "Network", "metadata",
		      "name", "default", "namespace", "default", "uid", uid,
		      "creationTimestamp", now, "generation", (json_int_t)1,
		      "spec", "cidr", MESH_DEFAULT_CIDR, "domain",
		      MESH_DEFAULT_DOMAIN);
	key = api_key(m->t_net, "default", "default");
	rc = o && key ? api_store_create(m->a, key, o) : STORE_ENOMEM;
	free(key);
	json_decref(o);
	if (rc)
		return rc;
	api_uuid(uid);
	o = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:s,s:I},s:{s:{},s:{},s:[],"
		      "s:b}}",
		      "apiVersion", MESH_API, "kind", "Policy", "metadata",
		      "name", "allow-all", "namespace", "default", "uid", uid,
		      "creationTimestamp", now, "generation", (json_int_t)1,
		      "spec", "from", "to", "ports", "bidirectional", 1);
	key = api_key(m->t_pol, "default", "allow-all");
	rc = o && key ? api_store_create(m->a, key, o) : STORE_ENOMEM;
	free(key);
	json_decref(o);
	if (rc)
		return rc;
	o = json_pack("{s:s}", "created", now);
	rc = o ? api_store_create(m->a, BOOT_MARK, o) : STORE_ENOMEM;
	json_decref(o);
	return rc;
}

int api_mesh_start(api_server *a, char *err, size_t errlen)
{
	struct api_mesh *m = calloc(1, sizeof(*m));
	struct timeval one = {1, 0};
	int rc;

	if (!m)
		return -1;
	a->mesh = m;
	m->a = a;
	STAILQ_INIT(&m->enrol_q);
	m->model = mesh_new();
	m->scratch = mesh_new();
	m->t_net = reg_find(a->reg, MESH_GROUP, NULL, "networks", NULL);
	m->t_peer = reg_find(a->reg, MESH_GROUP, NULL, "peers", NULL);
	m->t_pol = reg_find(a->reg, MESH_GROUP, NULL, "policies", NULL);
	m->t_route = reg_find(a->reg, MESH_GROUP, NULL, "routes", NULL);
	m->t_key = reg_find(a->reg, MESH_GROUP, NULL, "setupkeys", NULL);
	m->t_lease =
	    reg_find(a->reg, "coordination.k8s.io", NULL, "leases", NULL);
	m->t_token =
	    reg_find(a->reg, "auth.signalbox.dev", NULL, "tokens", NULL);
	m->flush_ev = event_new(a->base, -1, 0, on_flush, m);
	m->tick = event_new(a->base, -1, EV_PERSIST, on_tick, m);
	if (!m->model || !m->scratch || !m->t_net || !m->t_peer || !m->t_pol ||
	    !m->t_route || !m->t_key || !m->t_lease || !m->t_token ||
	    !m->flush_ev || !m->tick) {
		snprintf(err, errlen, "cannot set up the mesh controllers");
		return -1;
	}
	if (a->opt.mesh_bootstrap && (rc = bootstrap(m))) {
		snprintf(err, errlen, "cannot create the default mesh: %s",
			 store_strerror(rc));
		return -1;
	}
	cache_pump(a->cache);
	feed_all(m, m->t_net, feed_network_obj);
	feed_all(m, m->t_pol, feed_policy);
	feed_all(m, m->t_route, feed_route);
	feed_all(m, m->t_peer, feed_peer);
	m->w[0] = cache_watch(a->cache, m->t_net->key_prefix, on_network, m);
	m->w[1] = cache_watch(a->cache, m->t_pol->key_prefix, on_policy, m);
	m->w[2] = cache_watch(a->cache, m->t_route->key_prefix, on_route, m);
	m->w[3] = cache_watch(a->cache, m->t_peer->key_prefix, on_peer, m);
	m->w[4] = cache_watch(a->cache, m->t_lease->key_prefix, on_lease, m);
	m->w[5] = cache_watch(a->cache, CLAIMS, on_claim, m);
	on_flush(-1, 0, m);
	if (api_is_leader(a))
		sweep(m);
	event_add(m->tick, &one);
	return 0;
}

/* Whether the peer ns/name exists with this uid (uid NULL: any). */
static bool peer_alive(struct api_mesh *m, const char *ns, const char *name,
		       const char *uid)
{
	pstate *p = ns && name ? pstate_get(m, ns, name, false) : NULL;
	return p && (!uid || (p->uid && !strcmp(p->uid, uid)));
}

/*
 * What a Peer leaves behind when it is deleted (its address claim, its
 * Lease, its credentials) is removed by the leader when it sees the
 * deletion. A deletion while no replica led (or before a crash) leaves
 * them: the new leader sweeps what belongs to no peer.
 */
static void sweep(struct api_mesh *m)
{
	cache *c = m->a->cache;
	const char *pre = CLAIMS;

	for (cache_obj *o = cache_first(c, pre);
	     o && !strncmp(o->key, pre, strlen(pre)); o = cache_next(c, o)) {
		json_t *cl = cache_obj_parse(o);
		if (cl &&
		    !peer_alive(m, o->ns, jstr(cl, "peer"), jstr(cl, "uid"))) {
			fprintf(stderr,
				"signalbox: mesh: freeing %s/%s, claimed by "
				"a peer that is gone\n",
				o->ns, o->name);
			ctl_delete(m, o->key, NULL, NULL, NULL);
		}
		json_decref(cl);
	}
	pre = m->t_lease->key_prefix;
	for (cache_obj *o = cache_first(c, pre);
	     o && !strncmp(o->key, pre, strlen(pre)); o = cache_next(c, o))
		if (o->ns && !strncmp(o->name, "peer-", 5) &&
		    !peer_alive(m, o->ns, o->name + 5, NULL)) {
			json_t *l = cache_obj_parse(o);
			/* Only the leases enrolment made (holder = peer). */
			const char *h =
			    jstr(json_object_get(l, "spec"), "holderIdentity");
			if (h && !strcmp(h, o->name + 5))
				ctl_delete(m, o->key, NULL, NULL, NULL);
			json_decref(l);
		}
	pre = m->t_token->key_prefix;
	for (cache_obj *o = cache_first(c, pre);
	     o && !strncmp(o->key, pre, strlen(pre)); o = cache_next(c, o)) {
		json_t *t = cache_obj_parse(o);
		const json_t *pp =
		    json_object_get(json_object_get(t, "spec"), "peer");
		if (pp && !peer_alive(m, jstr(pp, "namespace"),
				      jstr(pp, "name"), jstr(pp, "uid")))
			ctl_delete(m, o->key, NULL, NULL, NULL);
		json_decref(t);
	}
}

/* Leadership moved here: write the routers the model has (a former
 * leader may have died between a change and its write). */
void api_mesh_on_leader(api_server *a, bool leading)
{
	struct api_mesh *m = a->mesh;
	const char *pre;

	if (!m || !leading)
		return;
	pre = m->t_route->key_prefix;
	for (cache_obj *o = cache_first(a->cache, pre);
	     o && !strncmp(o->key, pre, strlen(pre));
	     o = cache_next(a->cache, o)) {
		json_t *obj = cache_obj_parse(o);
		const char *cur =
		    jstr(json_object_get(obj, "status"), "active");
		const char *want = mesh_route_router(m->model, o->ns, o->name);
		if ((cur == NULL) != (want == NULL) ||
		    (cur && strcmp(cur, want)))
			sink_router(o->ns, o->name, want, m);
		json_decref(obj);
	}
	sweep(m);
}

void api_mesh_stop(api_server *a)
{
	struct api_mesh *m = a->mesh;
	size_t i;

	if (!m)
		return;
	for (smap_ent *e = smap_first(&m->peers, &i); e;
	     e = smap_next(&m->peers, &i, e)) {
		pstate *p = e->val;
		while (p->streams)
			stream_end(p->streams);
	}
	while (!STAILQ_EMPTY(&m->enrol_q)) {
		api_req *r = STAILQ_FIRST(&m->enrol_q);
		STAILQ_REMOVE_HEAD(&m->enrol_q, link);
		api_fail(r, 503, "ServiceUnavailable", NULL,
			 "the server is shutting down; enrol again");
	}
}

void api_mesh_free(api_server *a)
{
	struct api_mesh *m = a->mesh;
	size_t i;

	if (!m)
		return;
	api_mesh_stop(a);
	for (int k = 0; k < 6; k++)
		if (m->w[k])
			cache_unwatch(a->cache, m->w[k]);
	for (smap_ent *e = smap_first(&m->peers, &i); e;
	     e = smap_next(&m->peers, &i, e)) {
		pstate *p = e->val;
		free(p->id);
		free(p->ns);
		free(p->name);
		free(p->uid);
		free(p);
	}
	smap_free(&m->peers);
	for (smap_ent *e = smap_first(&m->pending, &i); e;
	     e = smap_next(&m->pending, &i, e))
		free(e->val);
	smap_free(&m->pending);
	for (smap_ent *e = smap_first(&m->cursors, &i); e;
	     e = smap_next(&m->cursors, &i, e)) {
		cursor *c = e->val;
		free(c->ns);
		free(c);
	}
	smap_free(&m->cursors);
	if (m->flush_ev)
		event_free(m->flush_ev);
	if (m->tick)
		event_free(m->tick);
	mesh_free(m->model);
	mesh_free(m->scratch);
	free(m);
	a->mesh = NULL;
}
