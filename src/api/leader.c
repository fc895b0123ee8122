/*
 * leader.c -- which replica runs the controllers.
 *
 * Several `signalbox serve` replicas may share one store (etcd). They
 * serve the API alike, but the controllers (src/api/mesh.c) write only on
 * the leader: the holder of the coordination.k8s.io/v1 Lease
 * default/signalbox-controllers, as kube-controller-manager elects itself.
 *
 * Every RENEW seconds the leader renews the lease (compare-and-swap on its
 * mod revision). A replica that sees the lease unrenewed for its duration
 * takes it over with the same compare-and-swap, so of two contenders one
 * wins. A leader that could not renew for the lease's duration stops
 * leading before anyone else may start (it counts from the time it sent
 * its last successful renewal, which is before the store's own time).
 *
 * Without election (one server on its own SQLite store, which no other
 * process can open) this replica always leads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api_int.h"
#include "util/timefmt.h"

#define LEASE_NS       "default"
#define LEASE_NAME     "signalbox-controllers"
#define LEASE_DURATION 10
#define RENEW	       2

struct api_leader {
	api_server *a;
	bool elect;
	char id[128];
	char *key;
	struct event *timer;
	bool leading;
	bool busy;	/* a write is out */
	double sent;	/* when the write out was sent */
	double renewed; /* when our last successful write was sent */
	void (*on_change)(api_server *a, bool leading);
};

typedef struct lreq {
	api_req r; /* first */
	struct api_leader *l;
} lreq;

static void set_leading(struct api_leader *l, bool on)
{
	if (l->leading == on)
		return;
	l->leading = on;
	fprintf(stderr, "signalbox: %s the controllers (%s)\n",
		on ? "now running" : "no longer running", l->id);
	if (l->on_change)
		l->on_change(l->a, on);
}

static void written(api_req *r, int err, store_txn_result *res)
{
	lreq *q = (lreq *)r;
	struct api_leader *l = q->l;

	l->busy = false;
	if (!err && res && res->succeeded) {
		l->renewed = l->sent;
		set_leading(l, true);
	}
	free(q->r.val);
	free(q);
}

/* Write the lease held by us, over the version at rev (0: create). */
static void claim(struct api_leader *l, json_t *obj, int64_t rev)
{
	lreq *q = calloc(1, sizeof(*q));
	store_cmp cmp = {l->key, rev ? STORE_CMP_MOD : STORE_CMP_CREATE,
			 STORE_CMP_EQ, rev};
	store_op op = {.type = STORE_OP_PUT, .key = l->key};
	store_txn t = {&cmp, 1, &op, 1, NULL, 0};

	if (!q)
		return;
	json_object_del(json_object_get(obj, "metadata"), "resourceVersion");
	q->r.srv = l->a;
	q->l = l;
	q->r.val = json_dumps(obj, JSON_COMPACT);
	if (!q->r.val) {
		free(q);
		return;
	}
	op.value = q->r.val;
	op.value_len = strlen(q->r.val);
	l->busy = true;
	l->sent = time_now();
	api_txn(&q->r, &t, written);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct api_leader *l = arg;
	double now = time_now();
	cache_obj *o;
	json_t *obj, *spec;
	char ts[40], uid[37];

	(void)fd;
	(void)what;
	/* Stop leading before anyone else may start. */
	if (l->leading && now >= l->renewed + LEASE_DURATION - RENEW)
		set_leading(l, false);
	if (l->busy)
		return;
	time_format(now, ts, true);
	o = cache_get(l->a->cache, l->key);
	if (!o) {
		api_uuid(uid);
		obj = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:s},"
				"s:{s:s,s:i,s:s,s:s,s:i}}",
				"apiVersion", "coordination.k8s.io/v1", "kind",
				"Lease", "metadata", "name", LEASE_NAME,
				"namespace", LEASE_NS, "uid", uid,
				"creationTimestamp", ts, "spec",
				"holderIdentity", l->id, "leaseDurationSeconds",
				LEASE_DURATION, "acquireTime", ts, "renewTime",
				ts, "leaseTransitions", 0);
		if (obj)
			claim(l, obj, 0);
		json_decref(obj);
		return;
	}
	obj = cache_obj_parse(o);
	spec = json_object_get(obj, "spec");
	if (!json_is_object(spec)) {
		spec = json_object();
		json_object_set_new(obj, "spec", spec);
	}
	const char *holder =
	    json_string_value(json_object_get(spec, "holderIdentity"));
	double renew =
	    time_parse(json_string_value(json_object_get(spec, "renewTime")));
	json_int_t dur =
	    json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
	if (dur <= 0)
		dur = LEASE_DURATION;
	if (holder && !strcmp(holder, l->id)) {
		if (now - l->renewed >= RENEW) {
			json_object_set_new(spec, "renewTime", json_string(ts));
			claim(l, obj, o->rev);
		}
	} else if (!holder || now >= renew + (double)dur) {
		json_int_t tr = json_integer_value(
		    json_object_get(spec, "leaseTransitions"));
		json_object_set_new(spec, "holderIdentity", json_string(l->id));
		json_object_set_new(spec, "leaseDurationSeconds",
				    json_integer(LEASE_DURATION));
		json_object_set_new(spec, "acquireTime", json_string(ts));
		json_object_set_new(spec, "renewTime", json_string(ts));
		json_object_set_new(spec, "leaseTransitions",
				    json_integer(tr + 1));
		claim(l, obj, o->rev);
	}
	json_decref(obj);
}

int api_leader_start(api_server *a, void (*on_change)(api_server *, bool))
{
	struct api_leader *l = calloc(1, sizeof(*l));
	const reg_type *t =
	    reg_find(a->reg, "coordination.k8s.io", NULL, "leases", NULL);
	char host[64] = "signalbox", rnd[37];
	struct timeval tv = {1, 0};

	if (!l || !t)
		return -1;
	a->leader = l;
	l->a = a;
	l->elect = a->opt.elect;
	l->on_change = on_change;
	gethostname(host, sizeof host - 1);
	api_uuid(rnd);
	snprintf(l->id, sizeof l->id, "%s_%.8s", host, rnd);
	if (!l->elect) {
		l->leading = true;
		return 0;
	}
	l->key = api_key(t, LEASE_NS, LEASE_NAME);
	l->timer = event_new(a->base, -1, EV_PERSIST, on_timer, l);
	if (!l->key || !l->timer)
		return -1;
	event_add(l->timer, &tv);
	on_timer(-1, 0, l);
	return 0;
}

bool api_is_leader(const api_server *a)
{
	return a->leader && a->leader->leading;
}

const char *api_leader_id(const api_server *a)
{
	return a->leader ? a->leader->id : "";
}

void api_leader_free(api_server *a)
{
	struct api_leader *l = a->leader;

	if (!l)
		return;
	if (l->timer)
		event_free(l->timer);
	free(l->key);
	free(l);
	a->leader = NULL;
}
