/*
 * netmap.c -- the mesh model and incremental network maps (netmap.h).
 *
 * The model: per namespace, the peers, Policies and Routes, and for every
 * Policy and Route the lists of its member peers on each side (from/to,
 * for/via). Each active peer keeps its memberships sorted by owner id, so
 * visible(P,Q) is a merge of two short lists, and P's map is the union of
 * the other sides of P's memberships. Maps are not stored: they are
 * rendered when asked for (a snapshot) or when they changed (a delta).
 *
 * Changes are recorded per peer as "dirty" names (a peer entry, a rule, a
 * rule's source address, a route) or as "full" (send a snapshot). The
 * records only say what may have changed; mesh_flush evaluates each one
 * against the current state, by name. So order and repetition of changes
 * do not matter, and an object deleted and re-made before a flush is seen
 * as it is now. Objects deleted before a flush wait in a graveyard until
 * it, because dirty records may point at them.
 */
#include "mesh/netmap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "api/selector.h"
#include "util/smap.h"
#include "util/strbuf.h"

/* ---- small containers ------------------------------------------------- */

typedef struct pvec {
	void **v;
	size_t n, cap;
} pvec;

static int pvec_push(pvec *a, void *p)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 8;
		void **v = realloc(a->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = p;
	return 0;
}

static void pvec_free(pvec *a)
{
	free(a->v);
	memset(a, 0, sizeof(*a));
}

/* ---- the model -------------------------------------------------------- */

enum { OWN_POLICY, OWN_ROUTE };
/* Sides: a Policy's from (0) and to (1); a Route's for (0) and via (1). */
enum { SIDE_A = 1, SIDE_B = 2 };
/* Rule kinds. */
enum { RULE_IN, RULE_OUT, RULE_ROUTE };

struct mpeer;
struct mns;

typedef struct mlist {
	struct mpeer **v;
	size_t n, cap;
} mlist;

typedef struct mowner {
	int kind;
	uint64_t id;
	char *name;
	struct mns *ns;
	bool dead;
	sel *sa, *sb; /* from/to, for/via */
	mlist side[2];
	/* Policy */
	bool bidi;
	json_t *ports;	  /* normalized [{protocol, from?, to?}] */
	char *ports_text; /* and as JSON text */
	/* Route */
	char dst[20];	      /* "a.b.c.d/n" */
	struct mpeer *router; /* router(R), or NULL */
	char *reported;	      /* the router last given to the sink */
	bool route_dirty;     /* on m->dirty_routes */
	struct mowner *gnext; /* graveyard or dirty-routes link */
	struct mowner *rnext;
	/* The selector index (see "indexes" below): per side, the labels
	 * "k=v" of which its selector requires one, or whether it must be
	 * tried on every peer (all), or neither (it matches nobody). */
	char **ikeys[2];
	size_t nikeys[2];
	bool all[2];
	bool simple[2]; /* the selector is just that: no need to run it */
	uint64_t stamp;
} mowner;

typedef struct mmem {
	mowner *o;
	uint8_t sides;
	uint32_t idx[2]; /* position in o->side[k] */
} mmem;

typedef struct dsrc {
	uint8_t kind;
	mowner *o;
	uint32_t addr;
} dsrc;

typedef struct drule {
	uint8_t kind;
	mowner *o;
} drule;

typedef struct mpeer {
	char *name;
	struct mns *ns;
	size_t ns_idx; /* in ns->all */
	char *key;     /* or NULL */
	uint32_t addr; /* host order */
	bool has_addr;
	json_t *labels;	   /* object (owned) */
	json_t *endpoints; /* array (owned) */
	bool online, expired, deleting, active, dead;
	mmem *mem; /* sorted by o->id */
	size_t nmem, memcap;
	uint64_t serial;
	void *sub;
	uint64_t stamp;
	/* Dirty records since the last flush. */
	bool dirty, full, self;
	pvec dpeers;  /* mpeer* (evaluated by name) */
	pvec droutes; /* mowner* */
	drule *drules;
	size_t ndrules, drules_cap;
	dsrc *dsrcs;
	size_t ndsrcs, dsrcs_cap;
	char *head; /* its map entry's first part (entry_head), or NULL */
	size_t head_len;
	struct mpeer *dnext;
	struct mpeer *anext; /* address index chain */
	struct mpeer *gnext; /* graveyard */
} mpeer;

typedef struct mns {
	char *name;
	char *cidr, *domain;
	smap peers, policies, routes;
	mlist all; /* every peer of the namespace */
	/* address -> peers holding it (normally one) */
	mpeer **abuckets;
	size_t nab, naddr;
	/* Indexes by label: "k=v" -> the active peers with that label, and
	 * -> the owners one of whose selectors requires it; oall: owners with
	 * a selector that names no such label (tried on every peer). */
	smap pidx, oidx;
	pvec oall;
	smap keys; /* public key -> a peer that has it */
} mns;

struct mesh {
	smap nss;
	pvec nslist;
	uint64_t next_id;
	uint64_t stamp;
	mpeer *dirty;	      /* peers with records */
	mowner *dirty_routes; /* routes whose router may have changed */
	mpeer *gpeers;	      /* graveyard */
	mowner *gowners;
};

static int errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int errf(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int mlist_push(mlist *l, mpeer *p, size_t *idx)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		mpeer **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	*idx = l->n;
	l->v[l->n++] = p;
	return 0;
}

/* ---- parsing ---------------------------------------------------------- */

static int parse_ipv4(const char *s, uint32_t *out)
{
	struct in_addr a;
	if (!s || inet_pton(AF_INET, s, &a) != 1)
		return -1;
	*out = ntohl(a.s_addr);
	return 0;
}

/* "a.b.c.d/n" with n in 0..32 and no host bits set. */
int mesh_parse_cidr(const char *s, uint32_t *net, int *len)
{
	char buf[32], *slash, *end;
	long n;
	if (!s || strlen(s) >= sizeof buf)
		return -1;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (!slash)
		return -1;
	*slash = 0;
	n = strtol(slash + 1, &end, 10);
	if (!slash[1] || *end || n < 0 || n > 32 || parse_ipv4(buf, net))
		return -1;
	uint32_t mask = n ? 0xffffffffu << (32 - n) : 0;
	if (*net & ~mask)
		return -1;
	*len = (int)n;
	return 0;
}

void mesh_format_addr(uint32_t a, char *buf, size_t len, bool slash32)
{
	snprintf(buf, len, slash32 ? "%u.%u.%u.%u/32" : "%u.%u.%u.%u", a >> 24,
		 (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

/* A WireGuard key: base64 of exactly 32 bytes. */
static bool key_valid(const char *k)
{
	unsigned char out[48];
	if (strlen(k) != 44 || k[43] != '=' || k[42] == '=')
		return false;
	return EVP_DecodeBlock(out, (const unsigned char *)k, 44) == 33;
}

/* A DNS name: labels of [a-z0-9-], 1..63 long, not starting or ending with
 * '-', total <= 253. */
static bool dns_valid(const char *s)
{
	size_t n = strlen(s), lab = 0;
	if (!n || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = s[i];
		if (c == '.' || !c) {
			if (!lab || s[i - 1] == '-')
				return false;
			lab = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
		if (!lab && c == '-')
			return false;
		if (++lab > 63)
			return false;
	}
	return true;
}

/* Policy ports to the map's form. */
static json_t *norm_ports(const json_t *ports, char *err, size_t errlen)
{
	json_t *out = json_array(), *p;
	size_t i;
	if (!out)
		return NULL;
	if (!ports || json_is_null(ports))
		return out;
	if (!json_is_array(ports)) {
		errf(err, errlen, "spec.ports: must be a list");
		goto bad;
	}
	json_array_foreach(ports, i, p)
	{
		const json_t *jp = json_object_get(p, "protocol");
		const json_t *jport = json_object_get(p, "port");
		const json_t *jend = json_object_get(p, "endPort");
		const char *proto = "TCP";
		json_t *e;
		if (!json_is_object(p)) {
			errf(err, errlen, "spec.ports[%zu]: must be an object",
			     i);
			goto bad;
		}
		if (jp && !json_is_null(jp)) {
			const char *v = json_string_value(jp);
			static const char *const names[] = {"TCP", "UDP",
							    "ICMP", "any"};
			proto = NULL;
			for (size_t k = 0; v && k < 4; k++)
				if (!strcasecmp(v, names[k]))
					proto = names[k];
			if (!proto) {
				errf(
				    err, errlen,
				    "spec.ports[%zu].protocol: Unsupported "
				    "value: must be one of TCP, UDP, ICMP, any",
				    i);
				goto bad;
			}
		}
		e = json_pack("{ss}", "protocol", proto);
		if (!e || json_array_append_new(out, e))
			goto bad;
		if (jport && !json_is_null(jport)) {
			json_int_t from = json_integer_value(jport), to;
			if (!json_is_integer(jport) || from < 1 ||
			    from > 65535) {
				errf(err, errlen,
				     "spec.ports[%zu].port: Invalid value: "
				     "must be between 1 and 65535",
				     i);
				goto bad;
			}
			if (!strcmp(proto, "ICMP")) {
				errf(err, errlen,
				     "spec.ports[%zu].port: Forbidden: ICMP "
				     "has no ports",
				     i);
				goto bad;
			}
			to = from;
			if (jend && !json_is_null(jend)) {
				to = json_integer_value(jend);
				if (!json_is_integer(jend) || to < from ||
				    to > 65535) {
					errf(err, errlen,
					     "spec.ports[%zu].endPort: Invalid "
					     "value: must be between port and "
					     "65535",
					     i);
					goto bad;
				}
			}
			json_object_set_new(e, "from", json_integer(from));
			json_object_set_new(e, "to", json_integer(to));
		} else if (jend && !json_is_null(jend)) {
			errf(err, errlen,
			     "spec.ports[%zu].endPort: Forbidden: needs port",
			     i);
			goto bad;
		}
	}
	return out;
bad:
	json_decref(out);
	return NULL;
}

static int compile_sel(const json_t *j, const char *field, sel **out, char *err,
		       size_t errlen)
{
	char msg[256];
	int rc =
	    sel_from_json(json_is_null(j) ? NULL : j, out, msg, sizeof msg);
	if (rc == -EINVAL)
		return errf(err, errlen, "%s: %s", field, msg);
	return rc;
}

/* ---- namespaces and lookups ------------------------------------------- */

static mns *ns_get(mesh *m, const char *name, bool create)
{
	mns *n = smap_get(&m->nss, name);
	if (n || !create)
		return n;
	n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strdup(name)))
		goto fail;
	if (smap_put(&m->nss, n->name, n))
		goto fail;
	if (pvec_push(&m->nslist, n)) {
		smap_del(&m->nss, n->name);
		goto fail;
	}
	return n;
fail:
	if (n)
		free(n->name);
	free(n);
	return NULL;
}

static const char *ns_cidr(const mns *n)
{
	return n->cidr ? n->cidr : MESH_DEFAULT_CIDR;
}

static const char *ns_domain(const mns *n)
{
	return n->domain ? n->domain : MESH_DEFAULT_DOMAIN;
}

static mpeer *peer_get(mesh *m, const char *ns, const char *name)
{
	mns *n = ns_get(m, ns, false);
	return n ? smap_get(&n->peers, name) : NULL;
}

static smap *owner_map(mns *n, int kind)
{
	return kind == OWN_POLICY ? &n->policies : &n->routes;
}

/* The address index. */
static size_t abucket(const mns *n, uint32_t a)
{
	return (a * 2654435761u) & (n->nab - 1);
}

static int addr_add(mns *n, mpeer *p)
{
	if (n->naddr + 1 > n->nab) {
		size_t nb = n->nab ? n->nab * 2 : 64;
		mpeer **b = calloc(nb, sizeof(*b));
		if (!b)
			return -ENOMEM;
		size_t old = n->nab;
		mpeer **ob = n->abuckets;
		n->abuckets = b;
		n->nab = nb;
		for (size_t i = 0; i < old; i++)
			for (mpeer *q = ob[i], *nx; q; q = nx) {
				nx = q->anext;
				size_t k = abucket(n, q->addr);
				q->anext = b[k];
				b[k] = q;
			}
		free(ob);
	}
	size_t k = abucket(n, p->addr);
	p->anext = n->abuckets[k];
	n->abuckets[k] = p;
	n->naddr++;
	return 0;
}

static void addr_del(mns *n, mpeer *p)
{
	if (!n->nab)
		return;
	for (mpeer **pp = &n->abuckets[abucket(n, p->addr)]; *pp;
	     pp = &(*pp)->anext)
		if (*pp == p) {
			*pp = p->anext;
			p->anext = NULL;
			n->naddr--;
			return;
		}
}

/* ---- indexes ---------------------------------------------------------- */

/* A peer joining is matched only against the owners whose selectors could
 * select it: those requiring one of its labels, and the few that require
 * none. A Policy or Route (re)selecting looks only at the peers with the
 * label its selector requires (and at its current members). */

typedef struct ibucket {
	char *key;
	pvec v;
} ibucket;

static int ib_add(smap *idx, const char *key, void *x)
{
	ibucket *b = smap_get(idx, key);

	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b || !(b->key = strdup(key)) || smap_put(idx, b->key, b)) {
			if (b)
				free(b->key);
			free(b);
			return -ENOMEM;
		}
	}
	return pvec_push(&b->v, x);
}

static void pvec_remove(pvec *v, void *x)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->v[i] == x) {
			v->v[i] = v->v[--v->n];
			return;
		}
}

static void ib_del(smap *idx, const char *key, void *x)
{
	ibucket *b = smap_get(idx, key);

	if (!b)
		return;
	pvec_remove(&b->v, x);
	if (!b->v.n) {
		smap_del(idx, b->key);
		pvec_free(&b->v);
		free(b->key);
		free(b);
	}
}

static void ib_free(smap *idx)
{
	size_t i;

	for (smap_ent *e = smap_first(idx, &i); e; e = smap_next(idx, &i, e)) {
		ibucket *b = e->val;
		pvec_free(&b->v);
		free(b->key);
		free(b);
	}
	smap_free(idx);
}

static const pvec *ib_get(const smap *idx, const char *key)
{
	ibucket *b = smap_get(idx, key);
	return b ? &b->v : NULL;
}

/* "k=v" for a label into buf; false when it does not fit (no index). */
static bool label_key(char *buf, size_t len, const char *k, const char *v)
{
	return (size_t)snprintf(buf, len, "%s=%s", k, v) < len;
}

/* The labels of which a LabelSelector requires one, as "k=v" strings
 * (a new array of new strings in *out, n of them): its first matchLabels
 * entry, or the values of its first In expression. None (NULL) with *all
 * set when it requires none but matches some (every peer must be tried),
 * or clear when it matches nothing (null). *simple: the selector is that
 * requirement alone. */
static void sel_ikeys(const json_t *j, char ***out, size_t *n, bool *all,
		      bool *simple)
{
	const json_t *ml, *me, *v, *e;
	const char *k;
	char buf[512];
	size_t i;

	*out = NULL;
	*n = 0;
	*all = false;
	*simple = false;
	if (!j || json_is_null(j))
		return;
	ml = json_object_get(j, "matchLabels");
	me = json_object_get(j, "matchExpressions");
	json_object_foreach((json_t *)ml, k, v)
	{
		if (!json_is_string(v) ||
		    !label_key(buf, sizeof buf, k, json_string_value(v)))
			continue;
		if (!(*out = calloc(1, sizeof(char *))) ||
		    !((*out)[0] = strdup(buf))) {
			free(*out);
			*out = NULL;
			break;
		}
		*n = 1;
		*simple = json_object_size(ml) == 1 && !json_array_size(me);
		return;
	}
	json_array_foreach(me, i, e)
	{
		const char *key = json_string_value(json_object_get(e, "key"));
		const char *op =
		    json_string_value(json_object_get(e, "operator"));
		const json_t *vals = json_object_get(e, "values"), *x;
		size_t nv = json_array_size(vals), c = 0, w;

		if (!key || !op || strcmp(op, "In") || !nv ||
		    !(*out = calloc(nv, sizeof(char *))))
			continue;
		json_array_foreach(vals, w, x)
		{
			if (!json_is_string(x) ||
			    !label_key(buf, sizeof buf, key,
				       json_string_value(x)) ||
			    !((*out)[c] = strdup(buf)))
				break;
			c++;
		}
		if (c == nv) {
			*n = nv;
			*simple =
			    !json_object_size(ml) && json_array_size(me) == 1;
			return;
		}
		while (c)
			free((*out)[--c]);
		free(*out);
		*out = NULL;
	}
	*all = true;
}

static void oidx_del(mns *n, mowner *o)
{
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < o->nikeys[k]; i++) {
			ib_del(&n->oidx, o->ikeys[k][i], o);
			free(o->ikeys[k][i]);
		}
		free(o->ikeys[k]);
		o->ikeys[k] = NULL;
		o->nikeys[k] = 0;
	}
	if (o->all[0] || o->all[1])
		pvec_remove(&n->oall, o);
	for (int k = 0; k < 2; k++)
		o->all[k] = o->simple[k] = false;
}

/* Index o under its selectors' JSON (a = from/for, b = to/via). */
static int oidx_add(mns *n, mowner *o, const json_t *a, const json_t *b)
{
	int rc = 0;

	sel_ikeys(a, &o->ikeys[0], &o->nikeys[0], &o->all[0], &o->simple[0]);
	sel_ikeys(b, &o->ikeys[1], &o->nikeys[1], &o->all[1], &o->simple[1]);
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < o->nikeys[k]; i++)
			rc |= ib_add(&n->oidx, o->ikeys[k][i], o);
	if (o->all[0] || o->all[1])
		rc |= pvec_push(&n->oall, o);
	return rc ? -ENOMEM : 0;
}

static int pidx_update(mns *n, mpeer *p, bool add)
{
	const char *k;
	json_t *v;
	char buf[512];
	int rc = 0;

	json_object_foreach(p->labels, k, v)
	{
		if (!json_is_string(v) ||
		    !label_key(buf, sizeof buf, k, json_string_value(v)))
			continue;
		if (add)
			rc |= ib_add(&n->pidx, buf, p);
		else
			ib_del(&n->pidx, buf, p);
	}
	return rc ? -ENOMEM : 0;
}

/* Whether side k of o selects labels: a selector that is just one label
 * is that label's lookup; others run. */
static bool side_match(const mowner *o, int k, const json_t *labels)
{
	if (o->simple[k]) {
		const char *kv = o->ikeys[k][0], *eq = strchr(kv, '=');
		const char *v = json_string_value(
		    json_object_getn(labels, kv, (size_t)(eq - kv)));
		if (!v)
			return false;
		for (size_t i = 0; i < o->nikeys[k]; i++)
			if (!strcmp(v, o->ikeys[k][i] + (eq - kv) + 1))
				return true;
		return false;
	}
	return sel_match(k ? o->sb : o->sa, labels);
}

/* ---- memberships ------------------------------------------------------ */

static mmem *mem_find(const mpeer *p, const mowner *o)
{
	size_t lo = 0, hi = p->nmem;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (p->mem[mid].o->id < o->id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < p->nmem && p->mem[lo].o == o ? &p->mem[lo] : NULL;
}

static uint8_t mem_sides(const mpeer *p, const mowner *o)
{
	const mmem *e = mem_find(p, o);
	return e ? e->sides : 0;
}

/* Put p on side k (0 or 1) of o. */
static int mem_add(mpeer *p, mowner *o, int k)
{
	mmem *e = mem_find(p, o);
	size_t idx;
	if (e && (e->sides & (1 << k)))
		return 0;
	if (mlist_push(&o->side[k], p, &idx))
		return -ENOMEM;
	if (!e) {
		if (p->nmem == p->memcap) {
			size_t cap = p->memcap ? p->memcap * 2 : 4;
			mmem *v = realloc(p->mem, cap * sizeof(*v));
			if (!v) {
				o->side[k].n--;
				return -ENOMEM;
			}
			p->mem = v;
			p->memcap = cap;
		}
		size_t pos = 0;
		while (pos < p->nmem && p->mem[pos].o->id < o->id)
			pos++;
		memmove(&p->mem[pos + 1], &p->mem[pos],
			(p->nmem - pos) * sizeof(*p->mem));
		p->nmem++;
		e = &p->mem[pos];
		memset(e, 0, sizeof(*e));
		e->o = o;
	}
	e->sides |= (uint8_t)(1 << k);
	e->idx[k] = (uint32_t)idx;
	return 0;
}

static void mem_remove(mpeer *p, mowner *o, int k)
{
	mmem *e = mem_find(p, o);
	if (!e || !(e->sides & (1 << k)))
		return;
	mlist *l = &o->side[k];
	size_t i = e->idx[k];
	mpeer *last = l->v[--l->n];
	if (i < l->n) {
		l->v[i] = last;
		mem_find(last, o)->idx[k] = (uint32_t)i;
	}
	e->sides &= (uint8_t) ~(1 << k);
	if (!e->sides) {
		size_t pos = (size_t)(e - p->mem);
		memmove(&p->mem[pos], &p->mem[pos + 1],
			(p->nmem - pos - 1) * sizeof(*p->mem));
		p->nmem--;
	}
}

/* ---- dirty records ---------------------------------------------------- */

static void mark(mesh *m, mpeer *p)
{
	if (!p->dirty) {
		p->dirty = true;
		p->dnext = m->dirty;
		m->dirty = p;
	}
}

static void mark_full(mesh *m, mpeer *p)
{
	if (p->dead)
		return;
	mark(m, p);
	p->full = true;
}

static void mark_self(mesh *m, mpeer *p)
{
	mark(m, p);
	p->self = true;
}

/* Allocation failures of records degrade to a snapshot. */
static void dirty_peer(mesh *m, mpeer *p, mpeer *q)
{
	if (p->dead || p->full || !q || p == q)
		return;
	mark(m, p);
	if (pvec_push(&p->dpeers, q))
		p->full = true;
}

static void dirty_route(mesh *m, mpeer *p, mowner *o)
{
	if (p->dead || p->full)
		return;
	mark(m, p);
	if (pvec_push(&p->droutes, o))
		p->full = true;
}

static void dirty_rule(mesh *m, mpeer *p, int kind, mowner *o)
{
	if (!p || p->dead || p->full)
		return;
	mark(m, p);
	if (p->ndrules == p->drules_cap) {
		size_t cap = p->drules_cap ? p->drules_cap * 2 : 4;
		drule *v = realloc(p->drules, cap * sizeof(*v));
		if (!v) {
			p->full = true;
			return;
		}
		p->drules = v;
		p->drules_cap = cap;
	}
	p->drules[p->ndrules++] = (drule){(uint8_t)kind, o};
}

static void dirty_src(mesh *m, mpeer *p, int kind, mowner *o, uint32_t addr)
{
	if (p->dead || p->full)
		return;
	mark(m, p);
	if (p->ndsrcs == p->dsrcs_cap) {
		size_t cap = p->dsrcs_cap ? p->dsrcs_cap * 2 : 8;
		dsrc *v = realloc(p->dsrcs, cap * sizeof(*v));
		if (!v) {
			p->full = true;
			return;
		}
		p->dsrcs = v;
		p->dsrcs_cap = cap;
	}
	p->dsrcs[p->ndsrcs++] = (dsrc){(uint8_t)kind, o, addr};
}

static void dirty_route_router(mesh *m, mowner *o)
{
	if (!o->route_dirty) {
		o->route_dirty = true;
		o->rnext = m->dirty_routes;
		m->dirty_routes = o;
	}
}

/*
 * Record what q's membership of o on the given sides means for the other
 * members: they see q (or stop seeing it), and their rules from o gain or
 * lose q's address. Called with the sets as they are before a removal and
 * after an addition.
 */
static void touch_member(mesh *m, mpeer *q, mowner *o, uint8_t sides)
{
	if (o->kind == OWN_POLICY) {
		if (sides & SIDE_A)
			for (size_t i = 0; i < o->side[1].n; i++) {
				mpeer *p = o->side[1].v[i];
				if (p == q)
					continue;
				dirty_peer(m, p, q);
				dirty_src(m, p, RULE_IN, o, q->addr);
			}
		if (sides & SIDE_B)
			for (size_t i = 0; i < o->side[0].n; i++) {
				mpeer *p = o->side[0].v[i];
				if (p == q)
					continue;
				dirty_peer(m, p, q);
				if (o->bidi)
					dirty_src(m, p, RULE_OUT, o, q->addr);
			}
	} else {
		if ((sides & SIDE_A) && o->router && o->router != q) {
			dirty_peer(m, o->router, q);
			dirty_src(m, o->router, RULE_ROUTE, o, q->addr);
		}
		if (sides & SIDE_B) {
			dirty_route_router(m, o);
			/* The router itself came or went (or its identity
			 * changed): its entry in every for peer's map. */
			if (o->router == q)
				for (size_t i = 0; i < o->side[0].n; i++) {
					dirty_peer(m, o->side[0].v[i], q);
					dirty_route(m, o->side[0].v[i], o);
				}
		}
	}
}

/* q's entry (endpoints, online, key) changed for everyone who sees it. */
static void touch_entry(mesh *m, mpeer *q)
{
	for (size_t i = 0; i < q->nmem; i++) {
		mowner *o = q->mem[i].o;
		uint8_t s = q->mem[i].sides;
		if (o->kind == OWN_POLICY) {
			if (s & SIDE_A)
				for (size_t j = 0; j < o->side[1].n; j++)
					dirty_peer(m, o->side[1].v[j], q);
			if (s & SIDE_B)
				for (size_t j = 0; j < o->side[0].n; j++)
					dirty_peer(m, o->side[0].v[j], q);
		} else {
			if ((s & SIDE_A) && o->router)
				dirty_peer(m, o->router, q);
			if ((s & SIDE_B) && o->router == q)
				for (size_t j = 0; j < o->side[0].n; j++)
					dirty_peer(m, o->side[0].v[j], q);
		}
	}
}

/* Everything route o means to its members, for the router r: called
 * before and after o or its router changes. */
static void touch_route(mesh *m, mowner *o, mpeer *r)
{
	for (size_t i = 0; i < o->side[0].n; i++) {
		mpeer *p = o->side[0].v[i];
		dirty_route(m, p, o);
		if (r && r != p) {
			dirty_peer(m, p, r);
			dirty_peer(m, r, p);
		}
	}
	if (r)
		dirty_rule(m, r, RULE_ROUTE, o);
	dirty_route_router(m, o);
}

static mpeer *route_pick(const mowner *o)
{
	mpeer *best = NULL;
	for (size_t i = 0; i < o->side[1].n; i++) {
		mpeer *p = o->side[1].v[i];
		if (p->online && (!best || strcmp(p->name, best->name) < 0))
			best = p;
	}
	return best;
}

static void route_update(mesh *m, mowner *o)
{
	mpeer *r = route_pick(o);
	if (r == o->router)
		return;
	touch_route(m, o, o->router);
	o->router = r;
	touch_route(m, o, r);
}

/* Join or leave every Policy and Route of p's namespace that selects it. */
static int join_one(mesh *m, mpeer *p, mowner *o, uint64_t st)
{
	uint8_t s = 0;
	int rc = 0;

	if (o->stamp == st)
		return 0;
	o->stamp = st;
	if (side_match(o, 0, p->labels))
		s |= SIDE_A;
	if (side_match(o, 1, p->labels))
		s |= SIDE_B;
	for (int k = 0; k < 2; k++)
		if ((s & (1 << k)) && mem_add(p, o, k))
			rc = -ENOMEM;
	if (s)
		touch_member(m, p, o, s);
	return rc;
}

/* Join the Policies and Routes that select p: the candidates from the
 * label index, each tried once. */
static int peer_join(mesh *m, mpeer *p)
{
	mns *n = p->ns;
	uint64_t st = ++m->stamp;
	const char *k;
	json_t *v;
	char buf[512];
	int rc = 0;

	json_object_foreach(p->labels, k, v)
	{
		const pvec *c;
		if (!json_is_string(v) ||
		    !label_key(buf, sizeof buf, k, json_string_value(v)) ||
		    !(c = ib_get(&n->oidx, buf)))
			continue;
		for (size_t i = 0; i < c->n; i++)
			rc |= join_one(m, p, c->v[i], st);
	}
	for (size_t i = 0; i < n->oall.n; i++)
		rc |= join_one(m, p, n->oall.v[i], st);
	return rc ? -ENOMEM : 0;
}

static void peer_leave(mesh *m, mpeer *p)
{
	while (p->nmem) {
		mmem e = p->mem[p->nmem - 1];
		touch_member(m, p, e.o, e.sides);
		for (int k = 0; k < 2; k++)
			mem_remove(p, e.o, k);
	}
}

/* Routes whose via side p is on, to re-pick their routers. */
static void peer_routes_update(mesh *m)
{
	for (mowner *o = m->dirty_routes; o; o = o->rnext)
		if (!o->dead)
			route_update(m, o);
}

/* ---- public: setup ---------------------------------------------------- */

mesh *mesh_new(void)
{
	mesh *m = calloc(1, sizeof(*m));
	if (m)
		m->next_id = 1;
	return m;
}

static void peer_free(mpeer *p)
{
	if (!p)
		return;
	free(p->head);
	free(p->name);
	free(p->key);
	json_decref(p->labels);
	json_decref(p->endpoints);
	free(p->mem);
	pvec_free(&p->dpeers);
	pvec_free(&p->droutes);
	free(p->drules);
	free(p->dsrcs);
	free(p);
}

static void owner_free(mowner *o)
{
	if (!o)
		return;
	free(o->name);
	sel_free(o->sa);
	sel_free(o->sb);
	free(o->side[0].v);
	free(o->side[1].v);
	json_decref(o->ports);
	free(o->ports_text);
	free(o->reported);
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < o->nikeys[k]; i++)
			free(o->ikeys[k][i]);
		free(o->ikeys[k]);
	}
	free(o);
}

static void graveyard_empty(mesh *m)
{
	for (mpeer *p = m->gpeers, *nx; p; p = nx) {
		nx = p->gnext;
		peer_free(p);
	}
	m->gpeers = NULL;
	for (mowner *o = m->gowners, *nx; o; o = nx) {
		nx = o->gnext;
		owner_free(o);
	}
	m->gowners = NULL;
}

void mesh_free(mesh *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nslist.n; i++) {
		mns *n = m->nslist.v[i];
		for (size_t j = 0; j < n->all.n; j++)
			peer_free(n->all.v[j]);
		for (int kind = OWN_POLICY; kind <= OWN_ROUTE; kind++) {
			smap *om = owner_map(n, kind);
			for (size_t b = 0; b < om->nb; b++)
				for (smap_ent *e = om->b[b]; e; e = e->next)
					owner_free(e->val);
			smap_free(om);
		}
		smap_free(&n->peers);
		ib_free(&n->pidx);
		ib_free(&n->oidx);
		smap_free(&n->keys);
		pvec_free(&n->oall);
		free(n->all.v);
		free(n->abuckets);
		free(n->name);
		free(n->cidr);
		free(n->domain);
		free(n);
	}
	graveyard_empty(m);
	pvec_free(&m->nslist);
	smap_free(&m->nss);
	free(m);
}

/* ---- public: networks ------------------------------------------------- */

static void ns_all_full(mesh *m, mns *n)
{
	for (size_t i = 0; i < n->all.n; i++) {
		mpeer *p = n->all.v[i];
		free(p->head); /* the domain may have changed */
		p->head = NULL;
		mark_full(m, p);
	}
}

int mesh_network_set(mesh *m, const char *ns, const char *cidr,
		     const char *domain, char *err, size_t errlen)
{
	uint32_t net;
	int len;
	char *c, *d;
	mns *n;
	if (!cidr)
		cidr = MESH_DEFAULT_CIDR;
	if (!domain)
		domain = MESH_DEFAULT_DOMAIN;
	if (mesh_parse_cidr(cidr, &net, &len) || len > 30)
		return errf(err, errlen,
			    "spec.cidr: Invalid value: \"%s\": must be an IPv4 "
			    "network like 100.64.0.0/10, /30 or larger",
			    cidr);
	if (!dns_valid(domain))
		return errf(err, errlen,
			    "spec.domain: Invalid value: \"%s\": must be a "
			    "lowercase DNS name",
			    domain);
	if (!(n = ns_get(m, ns, true)))
		return -ENOMEM;
	if (!strcmp(ns_cidr(n), cidr) && !strcmp(ns_domain(n), domain))
		return 0;
	c = strdup(cidr);
	d = strdup(domain);
	if (!c || !d) {
		free(c);
		free(d);
		return -ENOMEM;
	}
	free(n->cidr);
	free(n->domain);
	n->cidr = c;
	n->domain = d;
	ns_all_full(m, n);
	return 0;
}

void mesh_network_del(mesh *m, const char *ns)
{
	mns *n = ns_get(m, ns, false);
	if (!n || (!n->cidr && !n->domain))
		return;
	free(n->cidr);
	free(n->domain);
	n->cidr = n->domain = NULL;
	ns_all_full(m, n);
}

/* ---- public: peers ---------------------------------------------------- */

int mesh_peer_set(mesh *m, const mesh_peer_spec *s, char *err, size_t errlen)
{
	uint32_t addr = 0;
	json_t *labels = NULL, *eps = NULL;
	char *key = NULL;
	mns *n;
	mpeer *p;
	bool active, identity, entry;

	if (!s->ns || !s->name || !*s->name)
		return errf(err, errlen, "metadata.name: Required value");
	if (s->public_key && !key_valid(s->public_key))
		return errf(err, errlen,
			    "spec.publicKey: Invalid value: must be a "
			    "WireGuard public key (base64 of 32 bytes)");
	if (s->address && parse_ipv4(s->address, &addr))
		return errf(err, errlen,
			    "status.address: Invalid value: \"%s\": must be "
			    "an IPv4 address",
			    s->address);
	if (s->labels && !json_is_object(s->labels))
		return errf(err, errlen, "metadata.labels: must be a map");
	if (s->endpoints && !json_is_null(s->endpoints) &&
	    !json_is_array(s->endpoints))
		return errf(err, errlen, "status.endpoints: must be a list");
	labels = s->labels ? json_deep_copy(s->labels) : json_object();
	eps = s->endpoints && json_is_array(s->endpoints)
		  ? json_deep_copy(s->endpoints)
		  : json_array();
	key = s->public_key ? strdup(s->public_key) : NULL;
	if (!labels || !eps || (s->public_key && !key))
		goto nomem;
	if (!(n = ns_get(m, s->ns, true)))
		goto nomem;
	active = key && s->address && !s->expired && !s->deleting;

	p = smap_get(&n->peers, s->name);
	if (!p) {
		size_t idx;
		if (!(p = calloc(1, sizeof(*p))) ||
		    !(p->name = strdup(s->name)))
			goto nomem_peer;
		p->ns = n;
		if (smap_put(&n->peers, p->name, p))
			goto nomem_peer;
		if (mlist_push(&n->all, p, &idx)) {
			smap_del(&n->peers, p->name);
			goto nomem_peer;
		}
		p->ns_idx = idx;
		identity = true;
		entry = false;
	} else {
		identity = active != p->active ||
			   (active && (addr != p->addr || strcmp(key, p->key) ||
				       !json_equal(labels, p->labels)));
		entry =
		    !json_equal(eps, p->endpoints) || s->online != p->online;
		if (!identity &&
		    ((!!key != !!p->key) || (key && strcmp(key, p->key)) ||
		     (!!s->address != p->has_addr) || addr != p->addr))
			mark_self(m, p); /* an inactive peer's self */
		if (identity && p->active) {
			peer_leave(m, p);
			addr_del(n, p);
			pidx_update(n, p, false);
		}
	}
	if (p->key && smap_get(&n->keys, p->key) == p)
		smap_del(&n->keys, p->key);
	free(p->key);
	json_decref(p->labels);
	json_decref(p->endpoints);
	free(p->head);
	p->head = NULL;
	p->key = key;
	if (key && !smap_get(&n->keys, key))
		smap_put(&n->keys, p->key, p); /* (out of memory: unindexed) */
	p->labels = labels;
	p->endpoints = eps;
	p->addr = addr;
	p->has_addr = s->address != NULL;
	p->expired = s->expired;
	p->deleting = s->deleting;
	if (identity) {
		p->online = s->online;
		p->active = active;
		if (active && (addr_add(n, p) || pidx_update(n, p, true) ||
			       peer_join(m, p)))
			p->full = true; /* out of memory: best effort */
		mark_full(m, p);
	} else if (entry) {
		bool online_changed = s->online != p->online;
		p->online = s->online;
		if (p->active) {
			touch_entry(m, p);
			if (online_changed)
				for (size_t i = 0; i < p->nmem; i++)
					if (p->mem[i].o->kind == OWN_ROUTE &&
					    (p->mem[i].sides & SIDE_B))
						dirty_route_router(m,
								   p->mem[i].o);
		}
	}
	peer_routes_update(m);
	return 0;
nomem_peer:
	if (p)
		free(p->name);
	free(p);
nomem:
	json_decref(labels);
	json_decref(eps);
	free(key);
	return -ENOMEM;
}

void mesh_peer_del(mesh *m, const char *ns, const char *name)
{
	mns *n = ns_get(m, ns, false);
	mpeer *p = n ? smap_get(&n->peers, name) : NULL;
	if (!p)
		return;
	if (p->active) {
		peer_leave(m, p);
		addr_del(n, p);
		pidx_update(n, p, false);
	}
	if (p->key && smap_get(&n->keys, p->key) == p)
		smap_del(&n->keys, p->key);
	smap_del(&n->peers, p->name);
	mpeer *last = n->all.v[--n->all.n];
	if (p->ns_idx < n->all.n) {
		n->all.v[p->ns_idx] = last;
		last->ns_idx = p->ns_idx;
	}
	p->dead = true;
	p->active = false;
	p->sub = NULL;
	p->gnext = m->gpeers;
	m->gpeers = p;
	peer_routes_update(m);
}

/* ---- public: policies and routes -------------------------------------- */

static mowner *owner_new(mesh *m, mns *n, int kind, const char *name)
{
	mowner *o = calloc(1, sizeof(*o));
	if (!o || !(o->name = strdup(name))) {
		free(o);
		return NULL;
	}
	o->kind = kind;
	o->id = m->next_id++;
	o->ns = n;
	if (smap_put(owner_map(n, kind), o->name, o)) {
		free(o->name);
		free(o);
		return NULL;
	}
	return o;
}

/*
 * Re-select o's members with its (new) selectors: the peers whose
 * membership changes get a snapshot, and the members they gain or lose see
 * them come or go.
 */
/*
 * What q's own map loses or gains with its membership of o on the given
 * sides (the other side's peers, o's rules, o's route): called with the
 * sets before a removal and after an addition, as touch_member.
 */
static void touch_own(mesh *m, mpeer *q, mowner *o, uint8_t sides)
{
	if (!sides)
		return;
	if (o->kind == OWN_POLICY) {
		if (sides & SIDE_A) {
			for (size_t i = 0; i < o->side[1].n; i++)
				dirty_peer(m, q, o->side[1].v[i]);
			dirty_rule(m, q, RULE_OUT, o);
		}
		if (sides & SIDE_B) {
			for (size_t i = 0; i < o->side[0].n; i++)
				dirty_peer(m, q, o->side[0].v[i]);
			dirty_rule(m, q, RULE_IN, o);
		}
	} else if (sides & SIDE_A) {
		dirty_route(m, q, o);
		dirty_peer(m, q, o->router);
	}
}

static void owner_reselect(mesh *m, mowner *o)
{
	mns *n = o->ns;
	pvec changed = {0};
	uint8_t *olds = NULL, *news = NULL;
	size_t nc = 0;

	/* Pass 1: find the changes, and touch with the old sets. The
	 * candidates: the members, and the peers with the labels the
	 * selectors require (every peer for a selector that requires none). */
	pvec cand = {0};
	uint64_t st = ++m->stamp;
	bool every = !o->dead && (o->all[0] || o->all[1]);
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < o->side[k].n; i++)
			if (o->side[k].v[i]->stamp != st) {
				o->side[k].v[i]->stamp = st;
				if (pvec_push(&cand, o->side[k].v[i]))
					every = true;
			}
	for (int k = 0; k < 2 && !every && !o->dead; k++)
		for (size_t x = 0; x < o->nikeys[k]; x++) {
			const pvec *l = ib_get(&n->pidx, o->ikeys[k][x]);
			for (size_t i = 0; l && i < l->n; i++) {
				mpeer *p = l->v[i];
				if (p->stamp != st) {
					p->stamp = st;
					if (pvec_push(&cand, p))
						every = true;
				}
			}
		}
	size_t ncand = every ? n->all.n : cand.n;
	for (size_t i = 0; i < ncand; i++) {
		mpeer *p = every ? n->all.v[i] : cand.v[i];
		if (!p->active)
			continue;
		uint8_t was = mem_sides(p, o), now = 0;
		if (!o->dead) {
			if (side_match(o, 0, p->labels))
				now |= SIDE_A;
			if (side_match(o, 1, p->labels))
				now |= SIDE_B;
		}
		if (was == now)
			continue;
		if (pvec_push(&changed, p)) {
			ns_all_full(m, n); /* out of memory: everyone */
			continue;
		}
	}
	nc = changed.n;
	olds = calloc(nc + 1, 1);
	news = calloc(nc + 1, 1);
	if (!olds || !news) {
		ns_all_full(m, n);
		nc = 0;
	}
	for (size_t i = 0; i < nc; i++) {
		mpeer *p = changed.v[i];
		olds[i] = mem_sides(p, o);
		if (!o->dead) {
			news[i] |= side_match(o, 0, p->labels) ? SIDE_A : 0;
			news[i] |= side_match(o, 1, p->labels) ? SIDE_B : 0;
		}
		touch_member(m, p, o, olds[i] & ~news[i]);
		touch_own(m, p, o, olds[i] & ~news[i]);
	}
	/* Pass 2: update the sets. */
	for (size_t i = 0; i < nc; i++) {
		mpeer *p = changed.v[i];
		for (int k = 0; k < 2; k++) {
			bool was = olds[i] & (1 << k), now = news[i] & (1 << k);
			if (was && !now)
				mem_remove(p, o, k);
			else if (!was && now && mem_add(p, o, k))
				ns_all_full(m, n);
		}
	}
	/* Pass 3: touch with the new sets. */
	for (size_t i = 0; i < nc; i++) {
		touch_member(m, changed.v[i], o, news[i] & ~olds[i]);
		touch_own(m, changed.v[i], o, news[i] & ~olds[i]);
	}
	free(olds);
	free(news);
	pvec_free(&changed);
	pvec_free(&cand);
}

int mesh_policy_set(mesh *m, const mesh_policy_spec *s, char *err,
		    size_t errlen)
{
	sel *sa = NULL, *sb = NULL;
	json_t *ports = NULL;
	mns *n;
	mowner *o;
	int rc;

	if (err && errlen)
		*err = 0;
	if (!s->ns || !s->name || !*s->name)
		return errf(err, errlen, "metadata.name: Required value");
	if ((rc = compile_sel(s->from, "spec.from", &sa, err, errlen)) ||
	    (rc = compile_sel(s->to, "spec.to", &sb, err, errlen)))
		goto fail;
	if (!(ports = norm_ports(s->ports, err, errlen))) {
		rc = err && *err ? -EINVAL : -ENOMEM;
		goto fail;
	}
	rc = -ENOMEM;
	if (!(n = ns_get(m, s->ns, true)))
		goto fail;
	o = smap_get(&n->policies, s->name);
	if (!o && !(o = owner_new(m, n, OWN_POLICY, s->name)))
		goto fail;
	bool rules_changed = o->bidi != s->bidirectional || !o->ports ||
			     !json_equal(o->ports, ports);
	sel_free(o->sa);
	sel_free(o->sb);
	json_decref(o->ports);
	free(o->ports_text);
	o->sa = sa;
	o->sb = sb;
	o->ports = ports;
	o->ports_text = json_dumps(ports, JSON_COMPACT);
	if (rules_changed) {
		/* Every member's rules from o change (bidirectional also
		 * adds or drops the reverse rule and its sources). */
		for (size_t i = 0; i < o->side[1].n; i++)
			dirty_rule(m, o->side[1].v[i], RULE_IN, o);
		for (size_t i = 0; i < o->side[0].n; i++)
			dirty_rule(m, o->side[0].v[i], RULE_OUT, o);
	}
	o->bidi = s->bidirectional;
	if (rules_changed) {
		for (size_t i = 0; i < o->side[0].n; i++)
			dirty_rule(m, o->side[0].v[i], RULE_OUT, o);
	}
	oidx_del(n, o);
	if (oidx_add(n, o, s->from, s->to))
		ns_all_full(m, n);
	owner_reselect(m, o);
	peer_routes_update(m);
	return 0;
fail:
	sel_free(sa);
	sel_free(sb);
	json_decref(ports);
	return rc;
}

static void owner_del(mesh *m, mowner *o)
{
	mns *n = o->ns;
	o->dead = true;
	if (o->kind == OWN_ROUTE) {
		touch_route(m, o, o->router);
		o->router = NULL;
	}
	oidx_del(n, o);
	owner_reselect(m, o);
	smap_del(owner_map(n, o->kind), o->name);
	o->gnext = m->gowners;
	m->gowners = o;
}

void mesh_policy_del(mesh *m, const char *ns, const char *name)
{
	mns *n = ns_get(m, ns, false);
	mowner *o = n ? smap_get(&n->policies, name) : NULL;
	if (o) {
		owner_del(m, o);
		peer_routes_update(m);
	}
}

int mesh_route_set(mesh *m, const mesh_route_spec *s, char *err, size_t errlen)
{
	sel *sa = NULL, *sb = NULL;
	uint32_t net;
	int len, rc;
	mns *n;
	mowner *o;

	if (!s->ns || !s->name || !*s->name)
		return errf(err, errlen, "metadata.name: Required value");
	if (mesh_parse_cidr(s->destination, &net, &len))
		return errf(err, errlen,
			    "spec.destination: Invalid value: \"%s\": must be "
			    "an IPv4 network like 10.1.0.0/24 (no host bits)",
			    s->destination ? s->destination : "");
	if ((rc = compile_sel(s->for_peers, "spec.for", &sa, err, errlen)) ||
	    (rc = compile_sel(s->via, "spec.via", &sb, err, errlen)))
		goto fail;
	rc = -ENOMEM;
	if (!(n = ns_get(m, s->ns, true)))
		goto fail;
	o = smap_get(&n->routes, s->name);
	if (!o && !(o = owner_new(m, n, OWN_ROUTE, s->name)))
		goto fail;
	touch_route(m, o, o->router);
	sel_free(o->sa);
	sel_free(o->sb);
	o->sa = sa;
	o->sb = sb;
	snprintf(o->dst, sizeof o->dst, "%s", s->destination);
	oidx_del(n, o);
	if (oidx_add(n, o, s->for_peers, s->via))
		ns_all_full(m, n);
	owner_reselect(m, o);
	o->router = route_pick(o);
	touch_route(m, o, o->router);
	peer_routes_update(m);
	return 0;
fail:
	sel_free(sa);
	sel_free(sb);
	return rc;
}

void mesh_route_del(mesh *m, const char *ns, const char *name)
{
	mns *n = ns_get(m, ns, false);
	mowner *o = n ? smap_get(&n->routes, name) : NULL;
	if (o) {
		owner_del(m, o);
		peer_routes_update(m);
	}
}

const char *mesh_route_router(mesh *m, const char *ns, const char *name)
{
	mns *n = ns_get(m, ns, false);
	mowner *o = n ? smap_get(&n->routes, name) : NULL;
	return o && o->router ? o->router->name : NULL;
}

/* ---- rendering -------------------------------------------------------- */

static bool visible(const mpeer *p, const mpeer *q)
{
	size_t i = 0, j = 0;
	if (p == q || !p->active || !q->active)
		return false;
	while (i < p->nmem && j < q->nmem) {
		const mmem *a = &p->mem[i], *b = &q->mem[j];
		if (a->o->id < b->o->id) {
			i++;
			continue;
		}
		if (a->o->id > b->o->id) {
			j++;
			continue;
		}
		if (a->o->kind == OWN_POLICY) {
			if (((a->sides & SIDE_A) && (b->sides & SIDE_B)) ||
			    ((a->sides & SIDE_B) && (b->sides & SIDE_A)))
				return true;
		} else if (((a->sides & SIDE_A) && a->o->router == q) ||
			   ((b->sides & SIDE_A) && a->o->router == p)) {
			return true;
		}
		i++;
		j++;
	}
	return false;
}

static bool rule_exists(const mpeer *p, int kind, const mowner *o)
{
	uint8_t s;
	if (!o || !p->active)
		return false;
	s = mem_sides(p, o);
	switch (kind) {
	case RULE_IN:
		return o->kind == OWN_POLICY && (s & SIDE_B);
	case RULE_OUT:
		return o->kind == OWN_POLICY && o->bidi && (s & SIDE_A);
	default:
		return o->kind == OWN_ROUTE && o->router == p;
	}
}

static const mlist *rule_side(int kind, const mowner *o)
{
	return kind == RULE_OUT ? &o->side[1] : &o->side[0];
}

/* A JSON string, quoted and escaped. */
static void put_jstr(strbuf *b, const char *s)
{
	strbuf_putc(b, '"');
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			strbuf_putc(b, '\\');
			strbuf_putc(b, (char)c);
		} else if (c < 0x20) {
			strbuf_printf(b, "\\u%04x", c);
		} else {
			strbuf_putc(b, (char)c);
		}
	}
	strbuf_putc(b, '"');
}

static void put_addr(strbuf *b, uint32_t a, bool slash32)
{
	char s[24];
	mesh_format_addr(a, s, sizeof s, slash32);
	strbuf_puts(b, s);
}

static void put_dns(strbuf *b, const mpeer *p)
{
	strbuf_putc(b, '"');
	strbuf_puts(b, p->name);
	strbuf_putc(b, '.');
	strbuf_puts(b, p->ns->name);
	strbuf_putc(b, '.');
	strbuf_puts(b, ns_domain(p->ns));
	strbuf_putc(b, '"');
}

/* Parse what a renderer wrote (a new reference; NULL when out of memory). */
static json_t *parsed(strbuf *b)
{
	json_t *j = b->oom ? NULL : json_loadb(b->p, b->len, 0, NULL);
	free(b->p);
	return j;
}

static void text_self(strbuf *b, const mpeer *p)
{
	strbuf_puts(b, "{\"name\":");
	put_jstr(b, p->name);
	strbuf_puts(b, ",\"namespace\":");
	put_jstr(b, p->ns->name);
	strbuf_puts(b, ",\"address\":");
	if (p->has_addr) {
		strbuf_putc(b, '"');
		put_addr(b, p->addr, false);
		strbuf_putc(b, '"');
	} else {
		strbuf_puts(b, "null");
	}
	strbuf_puts(b, ",\"cidr\":");
	put_jstr(b, ns_cidr(p->ns));
	strbuf_puts(b, ",\"dnsName\":");
	put_dns(b, p);
	strbuf_puts(b, ",\"publicKey\":");
	if (p->key)
		put_jstr(b, p->key);
	else
		strbuf_puts(b, "null");
	strbuf_putc(b, '}');
}

/* q's entry up to its first allowed IP: the same in every map, so made
 * once and kept until q (or its namespace's domain) changes. */
static const char *entry_head(mpeer *q, size_t *len)
{
	if (!q->head) {
		strbuf b = {0};
		char *eps = json_dumps(q->endpoints, JSON_COMPACT);
		strbuf_puts(&b, "{\"name\":");
		put_jstr(&b, q->name);
		strbuf_puts(&b, ",\"publicKey\":");
		put_jstr(&b, q->key);
		strbuf_puts(&b, ",\"endpoints\":");
		strbuf_puts(&b, eps ? eps : "[]");
		strbuf_puts(&b, ",\"dnsName\":");
		put_dns(&b, q);
		strbuf_puts(&b, q->online ? ",\"online\":true"
					  : ",\"online\":false");
		strbuf_puts(&b, ",\"allowedIPs\":[\"");
		put_addr(&b, q->addr, true);
		strbuf_putc(&b, '"');
		free(eps);
		if (b.oom) {
			free(b.p);
			*len = 0;
			return NULL;
		}
		q->head = b.p;
		q->head_len = b.len;
	}
	*len = q->head_len;
	return q->head;
}

static void text_entry(strbuf *b, const mpeer *p, mpeer *q)
{
	size_t len;
	const char *h = entry_head(q, &len);

	if (!h) {
		b->oom = true;
		return;
	}
	strbuf_putn(b, h, len);
	for (size_t i = 0; i < p->nmem; i++) {
		const mowner *r = p->mem[i].o;
		if (r->kind == OWN_ROUTE && (p->mem[i].sides & SIDE_A) &&
		    r->router == q) {
			strbuf_puts(b, ",\"");
			strbuf_puts(b, r->dst);
			strbuf_putc(b, '"');
		}
	}
	strbuf_puts(b, "]}");
}

static void put_rule_name(strbuf *b, int kind, const char *owner)
{
	strbuf_puts(b, kind == RULE_ROUTE ? "\"route/" : "\"policy/");
	strbuf_puts(b, owner);
	if (kind != RULE_ROUTE)
		strbuf_puts(b, kind == RULE_IN ? "/in" : "/out");
	strbuf_putc(b, '"');
}

static void text_rule(strbuf *b, const mpeer *p, int kind, const mowner *o)
{
	const mlist *l = rule_side(kind, o);
	bool first = true;

	strbuf_puts(b, "{\"name\":");
	put_rule_name(b, kind, o->name);
	strbuf_puts(b, ",\"sources\":[");
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i] == p)
			continue;
		strbuf_puts(b, first ? "\"" : ",\"");
		put_addr(b, l->v[i]->addr, true);
		strbuf_putc(b, '"');
		first = false;
	}
	strbuf_putc(b, ']');
	if (kind == RULE_ROUTE) {
		strbuf_puts(b, ",\"destinations\":[\"");
		strbuf_puts(b, o->dst);
		strbuf_puts(b, "\"],\"ports\":[]}");
	} else {
		strbuf_puts(b, ",\"ports\":");
		strbuf_puts(b, o->ports_text ? o->ports_text : "[]");
		strbuf_putc(b, '}');
	}
}

static void text_route(strbuf *b, const mowner *o)
{
	strbuf_puts(b, "{\"name\":");
	put_jstr(b, o->name);
	strbuf_puts(b, ",\"destination\":\"");
	strbuf_puts(b, o->dst);
	strbuf_puts(b, "\",\"via\":");
	put_jstr(b, o->router->name);
	strbuf_putc(b, '}');
}

static bool route_applies(const mpeer *p, const mowner *o)
{
	return o && p->active && o->router && o->router != p &&
	       (mem_sides(p, o) & SIDE_A);
}

/* P's whole map as JSON text: self, peers, rules, routes. */
static void text_map(strbuf *b, mesh *m, mpeer *p)
{
	uint64_t st = ++m->stamp;
	bool first = true;

	p->stamp = st;
	strbuf_puts(b, "{\"self\":");
	text_self(b, p);
	strbuf_puts(b, ",\"peers\":[");
	for (size_t i = 0; i < p->nmem; i++) {
		const mowner *o = p->mem[i].o;
		uint8_t s = p->mem[i].sides;
		const mlist *lists[2] = {NULL, NULL};
		if (o->kind == OWN_POLICY) {
			if (s & SIDE_A)
				lists[0] = &o->side[1];
			if (s & SIDE_B)
				lists[1] = &o->side[0];
		} else {
			if ((s & SIDE_A) && o->router && o->router != p &&
			    o->router->stamp != st) {
				o->router->stamp = st;
				if (!first)
					strbuf_putc(b, ',');
				text_entry(b, p, o->router);
				first = false;
			}
			if ((s & SIDE_B) && o->router == p)
				lists[0] = &o->side[0];
		}
		for (int k = 0; k < 2; k++)
			for (size_t j = 0; lists[k] && j < lists[k]->n; j++) {
				mpeer *q = lists[k]->v[j];
				if (q->stamp == st)
					continue;
				q->stamp = st;
				if (!first)
					strbuf_putc(b, ',');
				text_entry(b, p, q);
				first = false;
			}
	}
	strbuf_puts(b, "],\"rules\":[");
	first = true;
	for (size_t i = 0; i < p->nmem; i++) {
		const mowner *o = p->mem[i].o;
		uint8_t s = p->mem[i].sides;
		int kinds[2] = {-1, -1};
		if (o->kind == OWN_POLICY) {
			if (s & SIDE_B)
				kinds[0] = RULE_IN;
			if ((s & SIDE_A) && o->bidi)
				kinds[1] = RULE_OUT;
		} else if ((s & SIDE_B) && o->router == p) {
			kinds[0] = RULE_ROUTE;
		}
		for (int k = 0; k < 2; k++) {
			if (kinds[k] < 0)
				continue;
			if (!first)
				strbuf_putc(b, ',');
			text_rule(b, p, kinds[k], o);
			first = false;
		}
	}
	strbuf_puts(b, "],\"routes\":[");
	first = true;
	for (size_t i = 0; i < p->nmem; i++) {
		const mowner *o = p->mem[i].o;
		if (o->kind == OWN_ROUTE && route_applies(p, o)) {
			if (!first)
				strbuf_putc(b, ',');
			text_route(b, o);
			first = false;
		}
	}
	strbuf_puts(b, "]}");
}

static json_t *render_map(mesh *m, mpeer *p)
{
	strbuf b = {0};
	text_map(&b, m, p);
	return parsed(&b);
}

json_t *mesh_map(mesh *m, const char *ns, const char *name)
{
	mpeer *p = peer_get(m, ns, name);
	return p ? render_map(m, p) : NULL;
}

int mesh_map_text(mesh *m, const char *ns, const char *name, strbuf *out)
{
	mpeer *p = peer_get(m, ns, name);

	if (!p)
		return -ENOENT;
	text_map(out, m, p);
	return out->oom ? -ENOMEM : 0;
}

const char *mesh_peer_by_key(mesh *m, const char *ns, const char *key)
{
	mns *n = ns_get(m, ns, false);
	mpeer *p = n && key ? smap_get(&n->keys, key) : NULL;
	return p ? p->name : NULL;
}

uint64_t mesh_map_serial(mesh *m, const char *ns, const char *name)
{
	mpeer *p = peer_get(m, ns, name);
	return p ? p->serial : 0;
}

int mesh_subscribe(mesh *m, const char *ns, const char *name, void *sub)
{
	mpeer *p = peer_get(m, ns, name);
	if (!p)
		return -ENOENT;
	p->sub = sub;
	return 0;
}

void *mesh_subscriber(mesh *m, const char *ns, const char *name)
{
	mpeer *p = peer_get(m, ns, name);
	return p ? p->sub : NULL;
}

/* ---- flush ------------------------------------------------------------ */

static int cmp_peer_name(const void *a, const void *b)
{
	const mpeer *x = *(mpeer *const *)a, *y = *(mpeer *const *)b;
	return strcmp(x->name, y->name);
}

static int cmp_owner_name(const void *a, const void *b)
{
	const mowner *x = *(mowner *const *)a, *y = *(mowner *const *)b;
	return strcmp(x->name, y->name);
}

static int cmp_drule(const void *a, const void *b)
{
	const drule *x = a, *y = b;
	if (x->kind != y->kind)
		return x->kind - y->kind;
	return strcmp(x->o->name, y->o->name);
}

static int cmp_dsrc(const void *a, const void *b)
{
	const dsrc *x = a, *y = b;
	int c;
	if (x->kind != y->kind)
		return x->kind - y->kind;
	if ((c = strcmp(x->o->name, y->o->name)))
		return c;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* The current owner named like o (o itself, or the one that replaced
 * it), or NULL. */
static mowner *owner_now(mowner *o)
{
	return smap_get(owner_map(o->ns, o->kind), o->name);
}

/* Whether some live member of rule (kind, o) of p holds addr. */
static bool addr_in_rule(const mpeer *p, int kind, const mowner *o,
			 uint32_t addr)
{
	const mns *n = p->ns;
	int k = kind == RULE_OUT ? 1 : 0;
	if (!n->nab)
		return false;
	for (const mpeer *q = n->abuckets[abucket(n, addr)]; q; q = q->anext)
		if (q->addr == addr && q != p && q->active &&
		    (mem_sides(q, o) & (1 << k)))
			return true;
	return false;
}

/* The lists of a DELTA being written: one growing text per (section, op).
 * An empty list is left out of the frame. */
enum { L_PSET, L_PREM, L_RSET, L_RREM, L_RADD, L_RDEL, L_TSET, L_TREM, NL };

typedef struct dtext {
	strbuf l[NL];
} dtext;

/* Start the next element of list i: a comma after the first. */
static strbuf *dt_next(dtext *d, int i)
{
	if (d->l[i].len)
		strbuf_putc(&d->l[i], ',');
	return &d->l[i];
}

/* Write {"<sec>":{"<op>":[...],...}} parts of list range [from, to). */
static void dt_section(strbuf *b, dtext *d, const char *sec, int from, int to,
		       const char *const *ops)
{
	bool any = false;

	for (int i = from; i < to; i++)
		any = any || d->l[i].len;
	if (!any)
		return;
	strbuf_printf(b, ",\"%s\":{", sec);
	bool first = true;
	for (int i = from; i < to; i++) {
		if (!d->l[i].len)
			continue;
		strbuf_printf(b, "%s\"%s\":[", first ? "" : ",", ops[i - from]);
		strbuf_putn(b, d->l[i].p, d->l[i].len);
		strbuf_putc(b, ']');
		first = false;
	}
	strbuf_putc(b, '}');
}

/* The DELTA for p's records, as text into b ({"type":"DELTA","serial":N,
 * ...}); false when they came to nothing (b is then left empty). */
static bool render_delta(mpeer *p, uint64_t serial, strbuf *b)
{
	static const char *const set_rem[] = {"set", "remove"};
	static const char *const rule_ops[] = {"set", "remove", "addSources",
					       "removeSources"};
	dtext d;
	mns *n = p->ns;
	size_t i, j;
	bool oom = false;

	memset(&d, 0, sizeof d);
	if (p->dpeers.n)
		qsort(p->dpeers.v, p->dpeers.n, sizeof(void *), cmp_peer_name);
	for (i = 0; i < p->dpeers.n; i++) {
		const mpeer *q = p->dpeers.v[i];
		if (i && !strcmp(q->name, ((mpeer *)p->dpeers.v[i - 1])->name))
			continue;
		mpeer *now = smap_get(&n->peers, q->name);
		if (now && visible(p, now))
			text_entry(dt_next(&d, L_PSET), p, now);
		else
			put_jstr(dt_next(&d, L_PREM), q->name);
	}

	if (p->ndrules)
		qsort(p->drules, p->ndrules, sizeof(*p->drules), cmp_drule);
	for (i = 0; i < p->ndrules; i++) {
		if (i && !cmp_drule(&p->drules[i], &p->drules[i - 1]))
			continue;
		mowner *o = owner_now(p->drules[i].o);
		int kind = p->drules[i].kind;
		if (rule_exists(p, kind, o))
			text_rule(dt_next(&d, L_RSET), p, kind, o);
		else
			put_rule_name(dt_next(&d, L_RREM), kind,
				      p->drules[i].o->name);
	}

	if (p->ndsrcs)
		qsort(p->dsrcs, p->ndsrcs, sizeof(*p->dsrcs), cmp_dsrc);
	for (i = 0; i < p->ndsrcs; i = j) {
		const dsrc *s = &p->dsrcs[i];
		drule key = {s->kind, s->o};
		strbuf add = {0}, rem = {0};
		/* One rule: [i, j). */
		for (j = i + 1; j < p->ndsrcs && p->dsrcs[j].kind == s->kind &&
				!strcmp(p->dsrcs[j].o->name, s->o->name);
		     j++)
			;
		mowner *o = owner_now(s->o);
		if (!rule_exists(p, s->kind, o) ||
		    (p->ndrules && bsearch(&key, p->drules, p->ndrules,
					   sizeof(*p->drules), cmp_drule)))
			continue;
		for (size_t k = i; k < j; k++) {
			if (k > i && p->dsrcs[k].addr == p->dsrcs[k - 1].addr)
				continue;
			strbuf *l =
			    addr_in_rule(p, s->kind, o, p->dsrcs[k].addr)
				? &add
				: &rem;
			strbuf_puts(l, l->len ? ",\"" : "\"");
			put_addr(l, p->dsrcs[k].addr, true);
			strbuf_putc(l, '"');
		}
		for (int w = 0; w < 2; w++) {
			strbuf *l = w ? &rem : &add;
			if (!l->len)
				continue;
			strbuf *out = dt_next(&d, w ? L_RDEL : L_RADD);
			strbuf_puts(out, "{\"name\":");
			put_rule_name(out, s->kind, o->name);
			strbuf_puts(out, ",\"sources\":[");
			strbuf_putn(out, l->p, l->len);
			strbuf_puts(out, "]}");
			oom = oom || l->oom;
		}
		free(add.p);
		free(rem.p);
	}

	if (p->droutes.n)
		qsort(p->droutes.v, p->droutes.n, sizeof(void *),
		      cmp_owner_name);
	for (i = 0; i < p->droutes.n; i++) {
		const mowner *r = p->droutes.v[i];
		if (i &&
		    !strcmp(r->name, ((mowner *)p->droutes.v[i - 1])->name))
			continue;
		const mowner *o = owner_now((mowner *)r);
		if (route_applies(p, o))
			text_route(dt_next(&d, L_TSET), o);
		else
			put_jstr(dt_next(&d, L_TREM), r->name);
	}

	bool any = p->self;
	for (int k = 0; k < NL; k++) {
		any = any || d.l[k].len;
		oom = oom || d.l[k].oom;
	}
	if (any) {
		strbuf_printf(b, "{\"type\":\"DELTA\",\"serial\":%llu",
			      (unsigned long long)serial);
		if (p->self) {
			strbuf_puts(b, ",\"self\":");
			text_self(b, p);
		}
		dt_section(b, &d, "peers", L_PSET, L_PREM + 1, set_rem);
		dt_section(b, &d, "rules", L_RSET, L_RDEL + 1, rule_ops);
		dt_section(b, &d, "routes", L_TSET, L_TREM + 1, set_rem);
		strbuf_putc(b, '}');
		b->oom = b->oom || oom;
	}
	for (int k = 0; k < NL; k++)
		free(d.l[k].p);
	return any;
}

static void peer_clean(mpeer *p)
{
	p->dirty = p->full = p->self = false;
	p->dpeers.n = p->droutes.n = 0;
	p->ndrules = p->ndsrcs = 0;
	p->dnext = NULL;
}

/* Hand a frame (the text in b) to the sink, as text or parsed. */
static void emit(const mesh_sink *sink, mpeer *p, strbuf *b)
{
	if (b->oom)
		return;
	if (sink->frame_text) {
		sink->frame_text(p->sub, p->ns->name, p->name, b->p, b->len,
				 sink->arg);
		return;
	}
	json_t *j = json_loadb(b->p, b->len, 0, NULL);
	if (j)
		sink->frame(p->sub, p->ns->name, p->name, j, sink->arg);
	json_decref(j);
}

size_t mesh_flush(mesh *m, uint64_t serial, const mesh_sink *sink)
{
	size_t changed = 0;
	mpeer *list;
	bool tell = sink && (sink->frame || sink->frame_text);

	peer_routes_update(m);
	list = m->dirty;
	m->dirty = NULL;
	for (mpeer *p = list, *nx; p; p = nx) {
		nx = p->dnext;
		if (p->dead) {
			peer_clean(p);
			continue;
		}
		if (!p->sub || !tell) {
			/* Nobody to tell: count it changed, conservatively. */
			p->serial = serial;
			changed++;
			peer_clean(p);
			continue;
		}
		if (p->full) {
			strbuf b = {0};
			p->serial = serial;
			changed++;
			peer_clean(p);
			strbuf_printf(&b,
				      "{\"type\":\"SNAPSHOT\",\"serial\":%llu,"
				      "\"map\":",
				      (unsigned long long)serial);
			text_map(&b, m, p);
			strbuf_putc(&b, '}');
			emit(sink, p, &b);
			free(b.p);
			continue;
		}
		strbuf b = {0};
		bool any = render_delta(p, serial, &b);
		peer_clean(p);
		if (any) {
			p->serial = serial;
			changed++;
			emit(sink, p, &b);
		}
		free(b.p);
	}
	for (mowner *o = m->dirty_routes, *nx; o; o = nx) {
		nx = o->rnext;
		o->rnext = NULL;
		o->route_dirty = false;
		if (o->dead)
			continue;
		const char *now = o->router ? o->router->name : NULL;
		if ((now == NULL) != (o->reported == NULL) ||
		    (now && strcmp(now, o->reported))) {
			free(o->reported);
			o->reported = now ? strdup(now) : NULL;
			if (sink && sink->router)
				sink->router(o->ns->name, o->name, now,
					     sink->arg);
		}
	}
	m->dirty_routes = NULL;
	graveyard_empty(m);
	return changed;
}

bool mesh_dirty(const mesh *m)
{
	return m->dirty || m->dirty_routes || m->gpeers || m->gowners;
}

void mesh_get_stats(const mesh *m, mesh_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->namespaces = m->nslist.n;
	for (size_t i = 0; i < m->nslist.n; i++) {
		const mns *n = m->nslist.v[i];
		st->peers += n->all.n;
		for (size_t j = 0; j < n->all.n; j++)
			st->active_peers += n->all.v[j]->active;
		st->policies += n->policies.n;
		st->routes += n->routes.n;
		for (int kind = OWN_POLICY; kind <= OWN_ROUTE; kind++) {
			const smap *om =
			    kind == OWN_POLICY ? &n->policies : &n->routes;
			for (size_t b = 0; b < om->nb; b++)
				for (smap_ent *e = om->b[b]; e; e = e->next) {
					const mowner *o = e->val;
					st->memberships +=
					    o->side[0].n + o->side[1].n;
				}
		}
	}
}
