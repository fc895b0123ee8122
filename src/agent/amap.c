/*
 * amap.c -- the desired network map and the watch stream's frame parser
 * (amap.h). Untrusted input: every value is checked before the map
 * changes, and a frame is parsed whole into new entries first, then
 * applied, so a bad frame changes nothing.
 *
 * peers, rules and routes are sorted arrays whose element types all start
 * with their name (char *name first), so one set of helpers (ent_*)
 * finds, inserts and removes in all three. The parts' JSON forms (read
 * and written) are in amap_json.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/alog.h"
#include "agent/amap.h"
#include "agent/amap_int.h"

const char *amap_proto_name(amap_proto p)
{
	switch (p) {
	case AMAP_TCP:
		return "TCP";
	case AMAP_UDP:
		return "UDP";
	case AMAP_ICMP:
		return "ICMP";
	default:
		return "any";
	}
}

/* ---- sets of prefixes ------------------------------------------------- */

/* Binary search of a sorted array for key: true and *at its index when
 * found, else false and *at where it would go. cmp(element, key). */
static bool lower_bound(const void *base, size_t n, size_t sz, const void *key,
			int (*cmp)(const void *elem, const void *key),
			size_t *at)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = cmp((const char *)base + mid * sz, key);

		if (!r) {
			*at = mid;
			return true;
		}
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*at = lo;
	return false;
}

static int cidr_key_cmp(const void *elem, const void *key)
{
	return addr_cidr_cmp(elem, key);
}

static bool cidrs_find(const amap_cidrs *s, const addr_cidr *c, size_t *at)
{
	return lower_bound(s->v, s->n, sizeof(*s->v), c, cidr_key_cmp, at);
}

int amap_cidrs_add(amap_cidrs *s, const addr_cidr *c)
{
	addr_cidr *v;
	size_t at;

	if (cidrs_find(s, c, &at))
		return 0;
	v = realloc(s->v, (s->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->v = v;
	memmove(&v[at + 1], &v[at], (s->n - at) * sizeof(*v));
	v[at] = *c;
	s->n++;
	return 0;
}

static void cidrs_del(amap_cidrs *s, const addr_cidr *c)
{
	size_t at;

	if (!cidrs_find(s, c, &at))
		return;
	memmove(&s->v[at], &s->v[at + 1], (s->n - at - 1) * sizeof(*s->v));
	s->n--;
}

void amap_cidrs_free(amap_cidrs *s)
{
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

static bool cidrs_eq(const amap_cidrs *a, const amap_cidrs *b)
{
	return addr_cidrs_equal(a->v, a->n, b->v, b->n);
}

/* ---- small field readers ---------------------------------------------- */

/* ---- entries: peers, rules, routes ------------------------------------ */

void amap_peer_free(void *p)
{
	amap_peer *e = p;

	free(e->name);
	free(e->dns_name);
	free(e->endpoints);
	amap_cidrs_free(&e->allowed);
	memset(e, 0, sizeof(*e));
}

void amap_rule_free(void *p)
{
	amap_rule *e = p;

	free(e->name);
	amap_cidrs_free(&e->sources);
	amap_cidrs_free(&e->destinations);
	free(e->ports);
	memset(e, 0, sizeof(*e));
}

void amap_route_free(void *p)
{
	amap_route *e = p;

	free(e->name);
	free(e->via);
	memset(e, 0, sizeof(*e));
}

void amap_self_free(amap_self *s)
{
	free(s->name);
	free(s->ns);
	free(s->dns_name);
	memset(s, 0, sizeof(*s));
}

int amap_port_cmp(const void *a, const void *b)
{
	const amap_port *x = a, *y = b;

	if (x->proto != y->proto)
		return (int)x->proto - (int)y->proto;
	if (x->from != y->from)
		return (int)x->from - (int)y->from;
	return (int)x->to - (int)y->to;
}

/* The sorted-by-name arrays. Every element type starts with char *name. */
static int name_key_cmp(const void *elem, const void *key)
{
	return strcmp(*(char *const *)elem, key);
}

static bool ent_find(const void *arr, size_t n, size_t sz, const char *name,
		     size_t *at)
{
	return lower_bound(arr, n, sz, name, name_key_cmp, at);
}

/* Put *e (taken: its contents move into the array) in place of the entry
 * of that name, or add it. */
static int ent_put(void **arr, size_t *n, size_t sz, void *e,
		   void (*freefn)(void *))
{
	const char *name = *(char **)e;
	size_t at;
	char *v;

	if (ent_find(*arr, *n, sz, name, &at)) {
		freefn((char *)*arr + at * sz);
		memcpy((char *)*arr + at * sz, e, sz);
		return 0;
	}
	v = realloc(*arr, (*n + 1) * sz);
	if (!v)
		return -ENOMEM;
	*arr = v;
	memmove(v + (at + 1) * sz, v + at * sz, (*n - at) * sz);
	memcpy(v + at * sz, e, sz);
	(*n)++;
	return 0;
}

static bool ent_del(void *arr, size_t *n, size_t sz, const char *name,
		    void (*freefn)(void *))
{
	size_t at;

	if (!ent_find(arr, *n, sz, name, &at))
		return false;
	freefn((char *)arr + at * sz);
	memmove((char *)arr + at * sz, (char *)arr + (at + 1) * sz,
		(*n - at - 1) * sz);
	(*n)--;
	return true;
}

static void ents_free(void *arr, size_t n, size_t sz, void (*freefn)(void *))
{
	for (size_t i = 0; i < n; i++)
		freefn((char *)arr + i * sz);
	free(arr);
}

/* ---- equality --------------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static bool self_eq(const amap_self *a, const amap_self *b)
{
	return str_eq(a->name, b->name) && str_eq(a->ns, b->ns) &&
	       str_eq(a->dns_name, b->dns_name) &&
	       a->has_address == b->has_address &&
	       (!a->has_address || a->address == b->address) &&
	       !addr_cidr_cmp(&a->cidr, &b->cidr) && a->has_key == b->has_key &&
	       (!a->has_key || !memcmp(a->key, b->key, ADDR_KEY_LEN));
}

static bool peer_eq(const amap_peer *a, const amap_peer *b)
{
	size_t i;

	if (!str_eq(a->name, b->name) || !str_eq(a->dns_name, b->dns_name) ||
	    memcmp(a->key, b->key, ADDR_KEY_LEN) || a->online != b->online ||
	    a->nendpoints != b->nendpoints ||
	    !cidrs_eq(&a->allowed, &b->allowed))
		return false;
	for (i = 0; i < a->nendpoints; i++)
		if (!addr_endpoint_eq(&a->endpoints[i], &b->endpoints[i]))
			return false;
	return true;
}

static bool ports_eq(const amap_rule *a, const amap_rule *b)
{
	if (a->nports != b->nports)
		return false;
	for (size_t i = 0; i < a->nports; i++)
		if (amap_port_cmp(&a->ports[i], &b->ports[i]))
			return false;
	return true;
}

static bool rule_eq(const amap_rule *a, const amap_rule *b)
{
	return str_eq(a->name, b->name) && cidrs_eq(&a->sources, &b->sources) &&
	       cidrs_eq(&a->destinations, &b->destinations) && ports_eq(a, b);
}

static bool route_eq(const amap_route *a, const amap_route *b)
{
	return str_eq(a->name, b->name) && str_eq(a->via, b->via) &&
	       !addr_cidr_cmp(&a->destination, &b->destination);
}

static bool peer_eq_v(const void *a, const void *b)
{
	return peer_eq(a, b);
}

static bool rule_eq_v(const void *a, const void *b)
{
	return rule_eq(a, b);
}

static bool route_eq_v(const void *a, const void *b)
{
	return route_eq(a, b);
}

bool amap_equal(const amap *a, const amap *b)
{
	size_t i;

	if (a->valid != b->valid || !self_eq(&a->self, &b->self) ||
	    a->npeers != b->npeers || a->nrules != b->nrules ||
	    a->nroutes != b->nroutes)
		return false;
	for (i = 0; i < a->npeers; i++)
		if (!peer_eq(&a->peers[i], &b->peers[i]))
			return false;
	for (i = 0; i < a->nrules; i++)
		if (!rule_eq(&a->rules[i], &b->rules[i]))
			return false;
	for (i = 0; i < a->nroutes; i++)
		if (!route_eq(&a->routes[i], &b->routes[i]))
			return false;
	return true;
}

/* ---- the map ---------------------------------------------------------- */

void amap_init(amap *m)
{
	memset(m, 0, sizeof(*m));
}

void amap_clear(amap *m)
{
	amap_self_free(&m->self);
	ents_free(m->peers, m->npeers, sizeof(amap_peer), amap_peer_free);
	ents_free(m->rules, m->nrules, sizeof(amap_rule), amap_rule_free);
	ents_free(m->routes, m->nroutes, sizeof(amap_route), amap_route_free);
	amap_init(m);
}

const amap_peer *amap_peer_find(const amap *m, const char *name)
{
	size_t at;

	return ent_find(m->peers, m->npeers, sizeof(amap_peer), name, &at)
		   ? &m->peers[at]
		   : NULL;
}

const amap_rule *amap_rule_find(const amap *m, const char *name)
{
	size_t at;

	return ent_find(m->rules, m->nrules, sizeof(amap_rule), name, &at)
		   ? &m->rules[at]
		   : NULL;
}

/* The parsed content of one "set" array: n entries of size sz. */
typedef struct entlist {
	void *v;
	size_t n, sz;
	void (*freefn)(void *);
	bool (*eqfn)(const void *, const void *);
} entlist;

static void entlist_free(entlist *l)
{
	if (l->v)
		ents_free(l->v, l->n, l->sz, l->freefn);
	l->v = NULL;
	l->n = 0;
}

typedef int (*ent_parse_fn)(const json_t *o, const char *what, void *e,
			    char *err, size_t errlen);

static int peer_parse_v(const json_t *o, const char *what, void *e, char *err,
			size_t errlen)
{
	return amap_peer_parse(o, what, e, err, errlen);
}

static int rule_parse_v(const json_t *o, const char *what, void *e, char *err,
			size_t errlen)
{
	return amap_rule_parse(o, what, e, err, errlen);
}

static int route_parse_v(const json_t *o, const char *what, void *e, char *err,
			 size_t errlen)
{
	return amap_route_parse(o, what, e, err, errlen);
}

/* Parse an array of entries (absent: none) into l (l->sz and l->freefn
 * set by the caller). */
static int entlist_parse(const json_t *arr, const char *what, ent_parse_fn fn,
			 entlist *l, char *err, size_t errlen)
{
	const json_t *v;
	size_t i;
	int r;

	if ((r = amap_array_check(arr, what, err, errlen)) ||
	    !json_array_size(arr))
		return r;
	l->v = calloc(json_array_size(arr), l->sz);
	if (!l->v)
		return -ENOMEM;
	json_array_foreach(arr, i, v)
	{
		char w[64];

		snprintf(w, sizeof(w), "%s[%zu]", what, i);
		if ((r = fn(v, w, (char *)l->v + l->n * l->sz, err, errlen))) {
			entlist_free(l);
			return r;
		}
		l->n++;
	}
	return 0;
}

/* Move every entry of l into the array (*arr, *n); l ends empty. A name
 * twice in l: the later wins. */
static int entlist_put(entlist *l, void **arr, size_t *n, bool *changed)
{
	size_t i, at;
	int r = 0;

	for (i = 0; i < l->n; i++) {
		void *e = (char *)l->v + i * l->sz;
		const char *name = *(char **)e;

		if (r) {
			l->freefn(e);
			continue;
		}
		if (!ent_find(*arr, *n, l->sz, name, &at) ||
		    !l->eqfn(e, (char *)*arr + at * l->sz))
			*changed = true;
		if ((r = ent_put(arr, n, l->sz, e, l->freefn)))
			l->freefn(e);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
	return r;
}

/* The names of a "remove" array: strings (absent: none). */
static int names_check(const json_t *arr, const char *what, char *err,
		       size_t errlen)
{
	const json_t *v;
	size_t i;
	int r;

	if ((r = amap_array_check(arr, what, err, errlen)) ||
	    !json_array_size(arr))
		return r;
	for (i = 0; i < json_array_size(arr); i++) {
		v = json_array_get(arr, i);
		if (!json_is_string(v)) {
			alog_errf(err, errlen, "%s[%zu]: not a string", what,
				  i);
			return -EINVAL;
		}
	}
	return 0;
}

static void names_del(const json_t *arr, void *base, size_t *n, size_t sz,
		      void (*freefn)(void *), bool *changed)
{
	const json_t *v;
	size_t i;

	for (i = 0; i < json_array_size(arr); i++) {
		v = json_array_get(arr, i);
		if (ent_del(base, n, sz, json_string_value(v), freefn))
			*changed = true;
	}
}

static int load_parts(const json_t *map, amap *t, char *err, size_t errlen)
{
	entlist p = {NULL, 0, sizeof(amap_peer), amap_peer_free, peer_eq_v};
	entlist r = {NULL, 0, sizeof(amap_rule), amap_rule_free, rule_eq_v};
	entlist o = {NULL, 0, sizeof(amap_route), amap_route_free, route_eq_v};
	bool ch = false;
	int rc;

	if (!json_is_object(map)) {
		alog_errf(err, errlen, "map: not an object");
		return -EINVAL;
	}
	if ((rc = amap_self_parse(json_object_get(map, "self"), &t->self, err,
				  errlen)))
		return rc;
	if ((rc = entlist_parse(json_object_get(map, "peers"), "peers",
				peer_parse_v, &p, err, errlen)) ||
	    (rc = entlist_parse(json_object_get(map, "rules"), "rules",
				rule_parse_v, &r, err, errlen)) ||
	    (rc = entlist_parse(json_object_get(map, "routes"), "routes",
				route_parse_v, &o, err, errlen)))
		goto out;
	if ((rc = entlist_put(&p, (void **)&t->peers, &t->npeers, &ch)) ||
	    (rc = entlist_put(&r, (void **)&t->rules, &t->nrules, &ch)) ||
	    (rc = entlist_put(&o, (void **)&t->routes, &t->nroutes, &ch)))
		goto out;
out:
	entlist_free(&p);
	entlist_free(&r);
	entlist_free(&o);
	return rc;
}

int amap_load(amap *m, const json_t *map, uint64_t serial, char *err,
	      size_t errlen)
{
	amap t;
	int r;

	amap_init(&t);
	if ((r = load_parts(map, &t, err, errlen))) {
		amap_clear(&t);
		return r;
	}
	t.valid = true;
	t.serial = serial;
	amap_clear(m);
	*m = t;
	return 0;
}

/* {"name": R, "sources": [...]} lists of a rules delta, parsed. */
typedef struct srcedit {
	const char *name; /* borrowed from the frame */
	amap_cidrs set;
} srcedit;

static void srcedits_free(srcedit *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		amap_cidrs_free(&v[i].set);
	free(v);
}

static int srcedits_parse(const json_t *arr, const char *what, srcedit **out,
			  size_t *nout, char *err, size_t errlen)
{
	const json_t *v;
	srcedit *s;
	size_t i;
	int r;

	*out = NULL;
	*nout = 0;
	if ((r = amap_array_check(arr, what, err, errlen)) ||
	    !json_array_size(arr))
		return r;
	s = calloc(json_array_size(arr), sizeof(*s));
	if (!s)
		return -ENOMEM;
	json_array_foreach(arr, i, v)
	{
		char w[64];

		snprintf(w, sizeof(w), "%s[%zu]", what, i);
		if (!json_is_object(v) ||
		    !json_is_string(json_object_get(v, "name"))) {
			alog_errf(err, errlen, "%s: want {name, sources}", w);
			srcedits_free(s, i);
			return -EINVAL;
		}
		s[i].name = json_string_value(json_object_get(v, "name"));
		if ((r = amap_cidrs_parse(json_object_get(v, "sources"), w,
					  &s[i].set, err, errlen))) {
			srcedits_free(s, i);
			return r;
		}
	}
	*out = s;
	*nout = json_array_size(arr);
	return 0;
}

/* The parsed DELTA, before it is applied. */
typedef struct delta {
	bool has_self;
	amap_self self;
	entlist peers, rules, routes;
	const json_t *peers_rm, *rules_rm, *routes_rm;
	srcedit *add, *del;
	size_t nadd, ndel;
} delta;

static void delta_free(delta *d)
{
	amap_self_free(&d->self);
	entlist_free(&d->peers);
	entlist_free(&d->rules);
	entlist_free(&d->routes);
	srcedits_free(d->add, d->nadd);
	srcedits_free(d->del, d->ndel);
}

static int section(const json_t *f, const char *key, const json_t **out,
		   char *err, size_t errlen)
{
	*out = json_object_get(f, key);
	if (*out && !json_is_null(*out) && !json_is_object(*out)) {
		alog_errf(err, errlen, "%s: not an object", key);
		return -EINVAL;
	}
	return 0;
}

static int delta_parse(const json_t *f, delta *d, char *err, size_t errlen)
{
	const json_t *self = json_object_get(f, "self"), *p, *r, *o;
	int rc;

	if (self && !json_is_null(self)) {
		if ((rc = amap_self_parse(self, &d->self, err, errlen)))
			return rc;
		d->has_self = true;
	}
	if ((rc = section(f, "peers", &p, err, errlen)) ||
	    (rc = section(f, "rules", &r, err, errlen)) ||
	    (rc = section(f, "routes", &o, err, errlen)))
		return rc;
	d->peers_rm = json_object_get(p, "remove");
	d->rules_rm = json_object_get(r, "remove");
	d->routes_rm = json_object_get(o, "remove");
	if ((rc = entlist_parse(json_object_get(p, "set"), "peers.set",
				peer_parse_v, &d->peers, err, errlen)) ||
	    (rc = names_check(d->peers_rm, "peers.remove", err, errlen)) ||
	    (rc = entlist_parse(json_object_get(r, "set"), "rules.set",
				rule_parse_v, &d->rules, err, errlen)) ||
	    (rc = names_check(d->rules_rm, "rules.remove", err, errlen)) ||
	    (rc = srcedits_parse(json_object_get(r, "addSources"),
				 "rules.addSources", &d->add, &d->nadd, err,
				 errlen)) ||
	    (rc = srcedits_parse(json_object_get(r, "removeSources"),
				 "rules.removeSources", &d->del, &d->ndel, err,
				 errlen)) ||
	    (rc = entlist_parse(json_object_get(o, "set"), "routes.set",
				route_parse_v, &d->routes, err, errlen)) ||
	    (rc = names_check(d->routes_rm, "routes.remove", err, errlen)))
		return rc;
	return 0;
}

/* Apply a parsed delta, in the order of docs/MESH.md: self; peers set,
 * remove; rules set, remove, addSources, removeSources; routes set,
 * remove. Only ENOMEM can fail here. */
static int delta_apply(amap *m, delta *d, bool *changed)
{
	size_t i, k, at;
	int r;

	if (d->has_self) {
		if (!self_eq(&m->self, &d->self))
			*changed = true;
		amap_self_free(&m->self);
		m->self = d->self;
		memset(&d->self, 0, sizeof(d->self));
	}
	if ((r = entlist_put(&d->peers, (void **)&m->peers, &m->npeers,
			     changed)))
		return r;
	names_del(d->peers_rm, m->peers, &m->npeers, sizeof(amap_peer),
		  amap_peer_free, changed);
	if ((r = entlist_put(&d->rules, (void **)&m->rules, &m->nrules,
			     changed)))
		return r;
	names_del(d->rules_rm, m->rules, &m->nrules, sizeof(amap_rule),
		  amap_rule_free, changed);
	for (i = 0; i < d->nadd; i++) {
		if (!ent_find(m->rules, m->nrules, sizeof(amap_rule),
			      d->add[i].name, &at))
			continue;
		for (k = 0; k < d->add[i].set.n; k++) {
			size_t before = m->rules[at].sources.n;

			if ((r = amap_cidrs_add(&m->rules[at].sources,
						&d->add[i].set.v[k])))
				return r;
			if (m->rules[at].sources.n != before)
				*changed = true;
		}
	}
	for (i = 0; i < d->ndel; i++) {
		if (!ent_find(m->rules, m->nrules, sizeof(amap_rule),
			      d->del[i].name, &at))
			continue;
		for (k = 0; k < d->del[i].set.n; k++) {
			size_t before = m->rules[at].sources.n;

			cidrs_del(&m->rules[at].sources, &d->del[i].set.v[k]);
			if (m->rules[at].sources.n != before)
				*changed = true;
		}
	}
	if ((r = entlist_put(&d->routes, (void **)&m->routes, &m->nroutes,
			     changed)))
		return r;
	names_del(d->routes_rm, m->routes, &m->nroutes, sizeof(amap_route),
		  amap_route_free, changed);
	return 0;
}

static int serial_get(const json_t *f, uint64_t *out, char *err, size_t errlen)
{
	const json_t *v = json_object_get(f, "serial");

	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		alog_errf(err, errlen, "serial: not a non-negative integer");
		return -EINVAL;
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

int amap_apply_frame(amap *m, const char *buf, size_t len,
		     amap_frame_type *type, uint64_t *serial, bool *changed,
		     char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *f = NULL;
	const char *t;
	bool ch = false;
	delta d;
	int r = -EINVAL;

	memset(&d, 0, sizeof(d));
	d.peers =
	    (entlist){NULL, 0, sizeof(amap_peer), amap_peer_free, peer_eq_v};
	d.rules =
	    (entlist){NULL, 0, sizeof(amap_rule), amap_rule_free, rule_eq_v};
	d.routes =
	    (entlist){NULL, 0, sizeof(amap_route), amap_route_free, route_eq_v};
	*serial = 0;
	if (changed)
		*changed = false;
	if (len > AMAP_FRAME_MAX) {
		alog_errf(err, errlen, "frame: longer than %u bytes",
			  AMAP_FRAME_MAX);
		return -EINVAL;
	}
	f = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!f) {
		alog_errf(err, errlen, "frame: not JSON: %s at %d", jerr.text,
			  jerr.position);
		return -EINVAL;
	}
	t = json_string_value(json_object_get(f, "type"));
	if (!json_is_object(f) || !t) {
		alog_errf(err, errlen, "frame: not an object with a type");
		goto out;
	}
	if (!strcmp(t, "REVOKED")) {
		*type = AMAP_FRAME_REVOKED;
		r = 0;
		goto out;
	}
	if ((r = serial_get(f, serial, err, errlen)))
		goto out;
	if (!strcmp(t, "SNAPSHOT")) {
		amap old = *m;

		*type = AMAP_FRAME_SNAPSHOT;
		amap_init(m);
		r = amap_load(m, json_object_get(f, "map"), *serial, err,
			      errlen);
		if (r) {
			*m = old;
			goto out;
		}
		ch = !amap_equal(&old, m);
		amap_clear(&old);
	} else if (!strcmp(t, "DELTA")) {
		*type = AMAP_FRAME_DELTA;
		if (!m->valid) {
			alog_errf(err, errlen, "DELTA without a map");
			r = -EPROTO;
			goto out;
		}
		if ((r = delta_parse(f, &d, err, errlen)))
			goto out;
		if ((r = delta_apply(m, &d, &ch)))
			goto out;
		m->serial = *serial;
	} else if (!strcmp(t, "RESUMED")) {
		*type = AMAP_FRAME_RESUMED;
		if (!m->valid || m->serial != *serial) {
			alog_errf(err, errlen,
				  "RESUMED at serial %llu, the map has %s",
				  (unsigned long long)*serial,
				  m->valid ? "another" : "none");
			r = -EPROTO;
			goto out;
		}
	} else if (!strcmp(t, "HEARTBEAT")) {
		*type = AMAP_FRAME_HEARTBEAT;
	} else {
		alog_errf(err, errlen, "frame: unknown type");
		r = -EINVAL;
		goto out;
	}
	r = 0;
out:
	if (changed)
		*changed = ch;
	delta_free(&d);
	json_decref(f);
	return r;
}

/* ---- back to JSON ----------------------------------------------------- */

char *amap_to_frame(const amap *m)
{
	json_t *map, *peers, *rules, *routes, *f;
	char *s = NULL;
	size_t i;

	if (!m->valid)
		return NULL;
	peers = json_array();
	rules = json_array();
	routes = json_array();
	for (i = 0; i < m->npeers; i++)
		json_array_append_new(peers, amap_peer_json(&m->peers[i]));
	for (i = 0; i < m->nrules; i++)
		json_array_append_new(rules, amap_rule_json(&m->rules[i]));
	for (i = 0; i < m->nroutes; i++)
		json_array_append_new(routes, amap_route_json(&m->routes[i]));
	map =
	    json_pack("{s:o, s:o, s:o, s:o}", "self", amap_self_json(&m->self),
		      "peers", peers, "rules", rules, "routes", routes);
	f = json_pack("{s:s, s:I, s:o}", "type", "SNAPSHOT", "serial",
		      (json_int_t)m->serial, "map", map);
	if (f)
		s = json_dumps(f, JSON_COMPACT);
	json_decref(f);
	return s;
}
