/*
 * test_netmap.c -- the mesh's network maps (src/mesh/netmap.h) against a
 * brute-force reference computed here, straight from the header's
 * definitions, over random topologies and random operation sequences.
 * Every peer is subscribed, and a client replica per peer, built from
 * mesh_map at subscribe time and then fed only the frames the sink
 * delivers, must equal the reference after every flush: that proves the
 * deltas. Then small readable cases, bad input, and a scale sanity case.
 *
 * The reference does its own label-selector matching (matchLabels and
 * In/NotIn/Exists/DoesNotExist, {} all, null/absent none) and never calls
 * netmap.c internals or src/api/selector.c.
 *
 * Environment: NETMAP_SEED=n runs only the random case of seed n and logs
 * its operations and frames; NETMAP_CASES=n sets how many random cases
 * run (seeds 1000, 1001, ...; 300 by default, 100 under ASan).
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mesh/netmap.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- randomness: splitmix64, one seed per case --------------------------- */

static uint64_t rng;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned rn(unsigned n)
{
	return n ? (unsigned)(rnd() % n) : 0;
}

static bool chance(unsigned pct)
{
	return rn(100) < pct;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- failure reports: the seed and the operations that led there -------- */

static struct {
	bool active; /* inside a random case */
	bool verbose;
	uint64_t seed;
	char **ops;
	size_t nops, cap;
} cur;

static void oplog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void oplog(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	if (!cur.active)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (cur.verbose)
		fprintf(stderr, "  #%zu %s\n", cur.nops, buf);
	if (cur.nops == cur.cap) {
		cur.cap = cur.cap ? 2 * cur.cap : 256;
		cur.ops = realloc(cur.ops, cur.cap * sizeof(*cur.ops));
		if (!cur.ops)
			abort();
	}
	cur.ops[cur.nops++] = strdup(buf);
}

static void oplog_clear(void)
{
	size_t i;

	for (i = 0; i < cur.nops; i++)
		free(cur.ops[i]);
	cur.nops = 0;
}

static void case_fail(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));
static void case_fail(const char *fmt, ...)
{
	static char msg[65536];
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (cur.active) {
		fprintf(stderr,
			"random case seed %" PRIu64
			" (rerun it alone: NETMAP_SEED=%" PRIu64
			"), failed after %zu operations; the last ones:\n",
			cur.seed, cur.seed, cur.nops);
		for (i = cur.nops > 80 ? cur.nops - 80 : 0; i < cur.nops; i++)
			fprintf(stderr, "  #%zu %s\n", i, cur.ops[i]);
	}
	fail_msg("%s", msg);
	abort();
}

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond))                                                   \
			case_fail(__VA_ARGS__);                                \
	} while (0)

/* A compact dump for messages (rotating buffers, valid for 8 calls). */
static const char *D(const json_t *j)
{
	static char *ring[8];
	static unsigned k;
	unsigned s = k++ % 8;

	free(ring[s]);
	ring[s] =
	    j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)
	      : strdup("(absent)");
	return ring[s] ? ring[s] : "(?)";
}

/* JSON from test text where ' stands for " (NULL gives NULL). */
static json_t *jq(const char *text)
{
	json_error_t je;
	json_t *j;
	char *s;
	size_t i;

	if (!text)
		return NULL;
	s = strdup(text);
	for (i = 0; s[i]; i++)
		if (s[i] == '\'')
			s[i] = '"';
	j = json_loads(s, JSON_DECODE_ANY, &je);
	if (!j)
		fail_msg("bad test JSON %s: %s", s, je.text);
	free(s);
	return j;
}

static bool same_str(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return !strcmp(a, b);
}

static void b64(const unsigned char *in, size_t n, char *out)
{
	static const char t[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789+/";
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
			     in[i + 2];

		out[o++] = t[v >> 18];
		out[o++] = t[(v >> 12) & 63];
		out[o++] = t[(v >> 6) & 63];
		out[o++] = t[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		out[o++] = t[v >> 18];
		out[o++] = t[(v >> 12) & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		out[o++] = t[v >> 18];
		out[o++] = t[(v >> 12) & 63];
		out[o++] = t[(v >> 6) & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
}

/* A random WireGuard-shaped key: base64 of 32 bytes (44 characters). */
static void rand_key(char *out)
{
	unsigned char b[32];
	size_t i;

	for (i = 0; i < sizeof(b); i++)
		b[i] = (unsigned char)rnd();
	b64(b, sizeof(b), out);
}

/* A fixed key derived from a name, for the small cases. */
static void name_key(const char *name, char *out)
{
	unsigned char b[32];
	size_t i, n = strlen(name);

	for (i = 0; i < sizeof(b); i++)
		b[i] = (unsigned char)(name[i % n] * 31 + i * 7);
	b64(b, sizeof(b), out);
}

/* ---- canonical maps: every array sorted, but allowedIPs' first element --- */

static char *sort_key(const json_t *v)
{
	const json_t *n = json_object_get(v, "name");

	if (json_is_string(n))
		return strdup(json_string_value(n));
	if (json_is_string(v))
		return strdup(json_string_value(v));
	return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

struct skey {
	char *k;
	json_t *v;
};

static int skey_cmp(const void *a, const void *b)
{
	return strcmp(((const struct skey *)a)->k, ((const struct skey *)b)->k);
}

/* Sort arr's elements from index `from` on, in place. */
static void sort_array(json_t *arr, size_t from)
{
	size_t n = json_array_size(arr), i;
	struct skey *ks;

	if (!json_is_array(arr) || n <= from + 1)
		return;
	ks = calloc(n - from, sizeof(*ks));
	for (i = from; i < n; i++) {
		ks[i - from].v = json_incref(json_array_get(arr, i));
		ks[i - from].k = sort_key(ks[i - from].v);
	}
	qsort(ks, n - from, sizeof(*ks), skey_cmp);
	for (i = from; i < n; i++) {
		json_array_set(arr, i, ks[i - from].v);
		json_decref(ks[i - from].v);
		free(ks[i - from].k);
	}
	free(ks);
}

static json_t *canon(const json_t *m)
{
	json_t *c, *a, *e;
	size_t i;

	if (!m)
		return NULL;
	c = json_deep_copy(m);
	a = json_object_get(c, "peers");
	json_array_foreach(a, i, e)
	{
		sort_array(json_object_get(e, "endpoints"), 0);
		sort_array(json_object_get(e, "allowedIPs"), 1);
	}
	sort_array(a, 0);
	a = json_object_get(c, "rules");
	json_array_foreach(a, i, e)
	{
		sort_array(json_object_get(e, "sources"), 0);
		sort_array(json_object_get(e, "destinations"), 0);
		sort_array(json_object_get(e, "ports"), 0);
	}
	sort_array(a, 0);
	sort_array(json_object_get(c, "routes"), 0);
	return c;
}

/* ---- readable differences between two canonical maps -------------------- */

struct buf {
	char s[32768];
	size_t n;
};

static void bput(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void bput(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (b->n >= sizeof(b->s) - 1)
		return;
	va_start(ap, fmt);
	k = vsnprintf(b->s + b->n, sizeof(b->s) - b->n, fmt, ap);
	va_end(ap);
	if (k > 0)
		b->n += (size_t)k;
	if (b->n >= sizeof(b->s))
		b->n = sizeof(b->s) - 1;
}

static const json_t *find_named(const json_t *arr, const char *name,
				size_t *count)
{
	const json_t *found = NULL;
	size_t i;

	*count = 0;
	for (i = 0; i < json_array_size(arr); i++) {
		const json_t *e = json_array_get(arr, i);
		const char *n = json_string_value(json_object_get(e, "name"));

		if (n && !strcmp(n, name)) {
			if (!found)
				found = e;
			(*count)++;
		}
	}
	return found;
}

static void diff_named(struct buf *b, const char *what, const json_t *e,
		       const json_t *g)
{
	size_t i, cnt;

	if (!json_is_array(g)) {
		bput(b, "  %s: not an array: %s\n", what, D(g));
		return;
	}
	for (i = 0; i < json_array_size(e); i++) {
		const json_t *x = json_array_get(e, i);
		const char *n = json_string_value(json_object_get(x, "name"));
		const json_t *y = find_named(g, n, &cnt);

		if (!y)
			bput(b, "  %s: missing %s, want %s\n", what, n, D(x));
		else if (cnt > 1)
			bput(b, "  %s: %zu entries named %s\n", what, cnt, n);
		else if (!json_equal(x, y))
			bput(b, "  %s[%s]:\n    want %s\n    got  %s\n", what,
			     n, D(x), D(y));
	}
	for (i = 0; i < json_array_size(g); i++) {
		const json_t *y = json_array_get(g, i);
		const char *n = json_string_value(json_object_get(y, "name"));

		if (!n)
			bput(b, "  %s: an entry without a name: %s\n", what,
			     D(y));
		else if (!find_named(e, n, &cnt))
			bput(b, "  %s: unexpected %s\n", what, D(y));
	}
}

static void map_diff(struct buf *b, const json_t *e, const json_t *g)
{
	static const char *const arrays[] = {"peers", "rules", "routes"};
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)g, k, v)
	{
		if (!json_object_get(e, k))
			bput(b, "  unexpected member %s: %s\n", k, D(v));
	}
	json_object_foreach((json_t *)e, k, v)
	{
		if (!json_object_get(g, k))
			bput(b, "  missing member %s\n", k);
	}
	if (!json_equal(json_object_get(e, "self"), json_object_get(g, "self")))
		bput(b, "  self:\n    want %s\n    got  %s\n",
		     D(json_object_get(e, "self")),
		     D(json_object_get(g, "self")));
	for (i = 0; i < ARRAY_LEN(arrays); i++)
		if (json_object_get(g, arrays[i]))
			diff_named(b, arrays[i], json_object_get(e, arrays[i]),
				   json_object_get(g, arrays[i]));
	if (!b->n)
		bput(b, "  (no difference found by name; want %s, got %s)\n",
		     D(e), D(g));
}

/* want: canonical. got: as the module (or a replica) has it. */
static void expect_map(const char *what, const char *ns, const char *name,
		       const json_t *want, const json_t *got_raw)
{
	static struct buf b;
	json_t *got;

	if (!got_raw)
		case_fail("%s of %s/%s: NULL, want %s", what, ns, name,
			  D(want));
	got = canon(got_raw);
	if (json_equal(want, got)) {
		json_decref(got);
		return;
	}
	b.n = 0;
	b.s[0] = '\0';
	map_diff(&b, want, got);
	case_fail("%s of %s/%s differs from the reference:\n%s", what, ns, name,
		  b.s);
}

/* ---- the model: the specs the test fed in, per namespace ---------------- */

struct replica;

typedef struct tpeer {
	char name[24];
	bool exists;
	bool has_key, has_addr;
	char key[64], addr[24];
	json_t *labels;	   /* object, or NULL */
	json_t *endpoints; /* array */
	bool online, expired, deleting;
	/* bookkeeping */
	struct replica *rep; /* our subscription, NULL when none */
	uint64_t serial;     /* mesh_map_serial at the last flush */
	bool fresh;	     /* (re)created since the last flush */
	json_t *prev;	     /* the reference map at the last flush */
} tpeer;

typedef struct tpol {
	char name[24];
	bool exists;
	json_t *from, *to, *ports; /* NULL: absent; json null is kept */
	bool bidi;
} tpol;

typedef struct troute {
	char name[24];
	bool exists;
	char dest[24];
	json_t *via, *forp;
	/* bookkeeping */
	char prev_router[24]; /* router at the last flush, "" none */
	bool deleted;	      /* deleted since the last flush */
	int ncb;	      /* router callbacks in this flush */
	char cb_last[24];     /* the last one's active, "" for NULL */
} troute;

typedef struct tns {
	char name[24];
	int idx;
	bool has_net;
	char cidr[24], domain[48];
	int npeer, npol, nroute;
	tpeer *peers;
	tpol *pols;
	troute *routes;
	/* the reference's tables, rebuilt by ref_build */
	bool *act, *from, *to, *via, *forp;
	int *router; /* per route: a peer index, or -1 */
} tns;

#define FROM(n, x, i)                                                          \
	((n)->from[(size_t)(x) * (size_t)(n)->npeer + (size_t)(i)])
#define TO(n, x, i)  ((n)->to[(size_t)(x) * (size_t)(n)->npeer + (size_t)(i)])
#define VIA(n, r, i) ((n)->via[(size_t)(r) * (size_t)(n)->npeer + (size_t)(i)])
#define FOR(n, r, i) ((n)->forp[(size_t)(r) * (size_t)(n)->npeer + (size_t)(i)])

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p)
		abort();
	return p;
}

static void ns_init(tns *n, int idx, const char *name, int npeer, int npol,
		    int nroute)
{
	static const char *const pfx[] = {"a", "b", "web", "db", "r"};
	size_t np = (size_t)npeer;
	int i;

	memset(n, 0, sizeof(*n));
	snprintf(n->name, sizeof(n->name), "%s", name);
	n->idx = idx;
	n->npeer = npeer;
	n->npol = npol;
	n->nroute = nroute;
	n->peers = xcalloc(np, sizeof(*n->peers));
	n->pols = xcalloc((size_t)npol, sizeof(*n->pols));
	n->routes = xcalloc((size_t)nroute, sizeof(*n->routes));
	/* names whose strcmp order is not their numeric order */
	for (i = 0; i < npeer; i++)
		snprintf(n->peers[i].name, sizeof(n->peers[i].name), "%s-%d",
			 pfx[i % 5], i);
	for (i = 0; i < npol; i++)
		snprintf(n->pols[i].name, sizeof(n->pols[i].name), "pol-%d", i);
	for (i = 0; i < nroute; i++)
		snprintf(n->routes[i].name, sizeof(n->routes[i].name), "rt-%d",
			 i);
	n->act = xcalloc(np, sizeof(bool));
	n->from = xcalloc((size_t)npol * np, sizeof(bool));
	n->to = xcalloc((size_t)npol * np, sizeof(bool));
	n->via = xcalloc((size_t)nroute * np, sizeof(bool));
	n->forp = xcalloc((size_t)nroute * np, sizeof(bool));
	n->router = xcalloc((size_t)nroute, sizeof(int));
}

static void ns_free(tns *n)
{
	int i;

	for (i = 0; i < n->npeer; i++) {
		json_decref(n->peers[i].labels);
		json_decref(n->peers[i].endpoints);
		json_decref(n->peers[i].prev);
	}
	for (i = 0; i < n->npol; i++) {
		json_decref(n->pols[i].from);
		json_decref(n->pols[i].to);
		json_decref(n->pols[i].ports);
	}
	for (i = 0; i < n->nroute; i++) {
		json_decref(n->routes[i].via);
		json_decref(n->routes[i].forp);
	}
	free(n->peers);
	free(n->pols);
	free(n->routes);
	free(n->act);
	free(n->from);
	free(n->to);
	free(n->via);
	free(n->forp);
	free(n->router);
}

/* ---- the reference, from the header's definitions ------------------------ */

static const char *label_of(const json_t *labels, const char *k)
{
	return json_string_value(json_object_get(labels, k));
}

/* metav1.LabelSelector semantics for what the test generates. */
static bool ref_match(const json_t *s, const json_t *labels)
{
	const json_t *ml, *me, *v;
	const char *k;
	size_t i, j;

	if (!json_is_object(s))
		return false; /* absent or null: nothing */
	ml = json_object_get(s, "matchLabels");
	if (json_is_object(ml)) {
		json_object_foreach((json_t *)ml, k, v)
		{
			const char *lv = label_of(labels, k);

			if (!lv || strcmp(lv, json_string_value(v)))
				return false;
		}
	}
	me = json_object_get(s, "matchExpressions");
	for (i = 0; i < json_array_size(me); i++) {
		const json_t *e = json_array_get(me, i);
		const json_t *vals = json_object_get(e, "values");
		const char *key = json_string_value(json_object_get(e, "key"));
		const char *op =
		    json_string_value(json_object_get(e, "operator"));
		const char *lv = label_of(labels, key);
		bool in = false;

		for (j = 0; lv && j < json_array_size(vals); j++)
			if (!strcmp(lv,
				    json_string_value(json_array_get(vals, j))))
				in = true;
		if (!strcmp(op, "In") && !in)
			return false;
		if (!strcmp(op, "NotIn") && in)
			return false;
		if (!strcmp(op, "Exists") && !lv)
			return false;
		if (!strcmp(op, "DoesNotExist") && lv)
			return false;
	}
	return true;
}

static bool peer_active(const tpeer *p)
{
	return p->exists && p->has_key && p->has_addr && !p->expired &&
	       !p->deleting;
}

static void ref_build(tns *n)
{
	int i, x, r;

	for (i = 0; i < n->npeer; i++)
		n->act[i] = peer_active(&n->peers[i]);
	for (x = 0; x < n->npol; x++) {
		const tpol *X = &n->pols[x];

		for (i = 0; i < n->npeer; i++) {
			bool ok = X->exists && n->act[i];
			const json_t *l = n->peers[i].labels;

			FROM(n, x, i) = ok && ref_match(X->from, l);
			TO(n, x, i) = ok && ref_match(X->to, l);
		}
	}
	for (r = 0; r < n->nroute; r++) {
		const troute *R = &n->routes[r];
		int best = -1;

		for (i = 0; i < n->npeer; i++) {
			bool ok = R->exists && n->act[i];
			const json_t *l = n->peers[i].labels;

			VIA(n, r, i) = ok && ref_match(R->via, l);
			FOR(n, r, i) = ok && ref_match(R->forp, l);
			if (VIA(n, r, i) && n->peers[i].online &&
			    (best < 0 ||
			     strcmp(n->peers[i].name, n->peers[best].name) < 0))
				best = i;
		}
		n->router[r] = best;
	}
}

static bool ref_visible(const tns *n, int p, int q)
{
	int x, r;

	if (p == q || !n->act[p] || !n->act[q])
		return false;
	for (x = 0; x < n->npol; x++)
		if ((FROM(n, x, p) && TO(n, x, q)) ||
		    (TO(n, x, p) && FROM(n, x, q)))
			return true;
	for (r = 0; r < n->nroute; r++)
		if ((FOR(n, r, p) && n->router[r] == q) ||
		    (FOR(n, r, q) && n->router[r] == p))
			return true;
	return false;
}

/* "<addr>/32" of the peers in a table row, minus p. */
static json_t *ref_sources(const tns *n, const bool *row, int p)
{
	json_t *a = json_array();
	char buf[40];
	int i;

	for (i = 0; i < n->npeer; i++)
		if (row[i] && i != p) {
			snprintf(buf, sizeof(buf), "%s/32", n->peers[i].addr);
			json_array_append_new(a, json_string(buf));
		}
	return a;
}

/* One Policy port entry as a rule port. */
static json_t *ref_port(const json_t *e)
{
	const char *proto = json_string_value(json_object_get(e, "protocol"));
	const json_t *port = json_object_get(e, "port");
	const json_t *end = json_object_get(e, "endPort");
	json_t *o = json_pack("{s:s}", "protocol", proto ? proto : "TCP");

	if (port) {
		json_object_set_new(o, "from", json_deep_copy(port));
		json_object_set_new(o, "to", json_deep_copy(end ? end : port));
	}
	return o;
}

static json_t *ref_ports(const json_t *ports)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < json_array_size(ports); i++)
		json_array_append_new(a, ref_port(json_array_get(ports, i)));
	return a;
}

static const char *ns_cidr(const tns *n)
{
	return n->has_net ? n->cidr : MESH_DEFAULT_CIDR;
}

static const char *ns_domain(const tns *n)
{
	return n->has_net ? n->domain : MESH_DEFAULT_DOMAIN;
}

/* P's whole map, canonical. */
static json_t *ref_map(const tns *n, int p)
{
	const tpeer *P = &n->peers[p];
	json_t *peers = json_array(), *rules = json_array();
	json_t *routes = json_array(), *self, *m, *c;
	char buf[160];
	int q, x, r;

	snprintf(buf, sizeof(buf), "%s.%s.%s", P->name, n->name, ns_domain(n));
	self = json_pack("{s:s, s:s, s:o, s:s, s:s, s:o}", "name", P->name,
			 "namespace", n->name, "address",
			 P->has_addr ? json_string(P->addr) : json_null(),
			 "cidr", ns_cidr(n), "dnsName", buf, "publicKey",
			 P->has_key ? json_string(P->key) : json_null());
	if (n->act[p]) {
		for (q = 0; q < n->npeer; q++) {
			const tpeer *Q = &n->peers[q];
			json_t *ai;

			if (!ref_visible(n, p, q))
				continue;
			snprintf(buf, sizeof(buf), "%s/32", Q->addr);
			ai = json_pack("[s]", buf);
			for (r = 0; r < n->nroute; r++)
				if (FOR(n, r, p) && n->router[r] == q)
					json_array_append_new(
					    ai, json_string(n->routes[r].dest));
			snprintf(buf, sizeof(buf), "%s.%s.%s", Q->name, n->name,
				 ns_domain(n));
			json_array_append_new(
			    peers,
			    json_pack("{s:s, s:s, s:O, s:o, s:s, s:b}", "name",
				      Q->name, "publicKey", Q->key, "endpoints",
				      Q->endpoints, "allowedIPs", ai, "dnsName",
				      buf, "online", Q->online));
		}
		for (x = 0; x < n->npol; x++) {
			const tpol *X = &n->pols[x];

			if (TO(n, x, p)) {
				snprintf(buf, sizeof(buf), "policy/%s/in",
					 X->name);
				json_array_append_new(
				    rules,
				    json_pack("{s:s, s:o, s:o}", "name", buf,
					      "sources",
					      ref_sources(n, &FROM(n, x, 0), p),
					      "ports", ref_ports(X->ports)));
			}
			if (X->bidi && FROM(n, x, p)) {
				snprintf(buf, sizeof(buf), "policy/%s/out",
					 X->name);
				json_array_append_new(
				    rules,
				    json_pack("{s:s, s:o, s:o}", "name", buf,
					      "sources",
					      ref_sources(n, &TO(n, x, 0), p),
					      "ports", ref_ports(X->ports)));
			}
		}
		for (r = 0; r < n->nroute; r++) {
			const troute *R = &n->routes[r];

			if (n->router[r] == p) {
				snprintf(buf, sizeof(buf), "route/%s", R->name);
				json_array_append_new(
				    rules,
				    json_pack("{s:s, s:o, s:[s], s:[]}", "name",
					      buf, "sources",
					      ref_sources(n, &FOR(n, r, 0), p),
					      "destinations", R->dest,
					      "ports"));
			}
			if (FOR(n, r, p) && n->router[r] >= 0 &&
			    n->router[r] != p)
				json_array_append_new(
				    routes,
				    json_pack("{s:s, s:s, s:s}", "name",
					      R->name, "destination", R->dest,
					      "via",
					      n->peers[n->router[r]].name));
		}
	}
	m = json_pack("{s:o, s:o, s:o, s:o}", "self", self, "peers", peers,
		      "rules", rules, "routes", routes);
	if (!m)
		abort();
	c = canon(m);
	json_decref(m);
	return c;
}

/* ---- calls with copied arguments (the module must keep its own copies) --- */

static json_t *jcopy(const json_t *j)
{
	return j ? json_deep_copy(j) : NULL;
}

static int peer_set_copied(mesh *m, const mesh_peer_spec *s, char *err,
			   size_t errlen)
{
	char ns[64], name[64], key[128], addr[64];
	mesh_peer_spec t = *s;
	json_t *l = jcopy(s->labels), *e = jcopy(s->endpoints);
	int rc;

	snprintf(ns, sizeof(ns), "%s", s->ns);
	snprintf(name, sizeof(name), "%s", s->name);
	t.ns = ns;
	t.name = name;
	if (s->public_key) {
		snprintf(key, sizeof(key), "%s", s->public_key);
		t.public_key = key;
	}
	if (s->address) {
		snprintf(addr, sizeof(addr), "%s", s->address);
		t.address = addr;
	}
	t.labels = l;
	t.endpoints = e;
	err[0] = '\0';
	rc = mesh_peer_set(m, &t, err, errlen);
	memset(ns, '#', sizeof(ns));
	memset(name, '#', sizeof(name));
	memset(key, '#', sizeof(key));
	memset(addr, '#', sizeof(addr));
	json_decref(l);
	json_decref(e);
	return rc;
}

static int policy_set_copied(mesh *m, const mesh_policy_spec *s, char *err,
			     size_t errlen)
{
	char ns[64], name[64];
	mesh_policy_spec t = *s;
	json_t *f = jcopy(s->from), *to = jcopy(s->to), *p = jcopy(s->ports);
	int rc;

	snprintf(ns, sizeof(ns), "%s", s->ns);
	snprintf(name, sizeof(name), "%s", s->name);
	t.ns = ns;
	t.name = name;
	t.from = f;
	t.to = to;
	t.ports = p;
	err[0] = '\0';
	rc = mesh_policy_set(m, &t, err, errlen);
	memset(ns, '#', sizeof(ns));
	memset(name, '#', sizeof(name));
	json_decref(f);
	json_decref(to);
	json_decref(p);
	return rc;
}

static int route_set_copied(mesh *m, const mesh_route_spec *s, char *err,
			    size_t errlen)
{
	char ns[64], name[64], dest[64];
	mesh_route_spec t = *s;
	json_t *v = jcopy(s->via), *f = jcopy(s->for_peers);
	int rc;

	snprintf(ns, sizeof(ns), "%s", s->ns);
	snprintf(name, sizeof(name), "%s", s->name);
	snprintf(dest, sizeof(dest), "%s", s->destination);
	t.ns = ns;
	t.name = name;
	t.destination = dest;
	t.via = v;
	t.for_peers = f;
	err[0] = '\0';
	rc = mesh_route_set(m, &t, err, errlen);
	memset(ns, '#', sizeof(ns));
	memset(name, '#', sizeof(name));
	memset(dest, '#', sizeof(dest));
	json_decref(v);
	json_decref(f);
	return rc;
}

static int network_set_copied(mesh *m, const char *ns, const char *cidr,
			      const char *domain, char *err, size_t errlen)
{
	char nb[64], cb[64], db[128];
	int rc;

	snprintf(nb, sizeof(nb), "%s", ns);
	snprintf(cb, sizeof(cb), "%s", cidr);
	snprintf(db, sizeof(db), "%s", domain);
	err[0] = '\0';
	rc = mesh_network_set(m, nb, cb, db, err, errlen);
	memset(nb, '#', sizeof(nb));
	memset(cb, '#', sizeof(cb));
	memset(db, '#', sizeof(db));
	return rc;
}

/* ---- client replicas: mesh_map at subscribe time, then the frames ------- */

#define REP_MAGIC 0x7265706c696361ULL

struct ctx;

struct replica {
	uint64_t magic;
	struct ctx *c;
	int ns, slot;
	json_t *map;
	bool dead;  /* the subscription ended (unsubscribed or peer deleted) */
	int frames; /* in the current flush */
	struct replica *next;
};

static bool keys_within(const json_t *o, const char *const *allowed, size_t n,
			const char **bad)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)o, k, v)
	{
		for (i = 0; i < n; i++)
			if (!strcmp(k, allowed[i]))
				break;
		if (i == n) {
			*bad = k;
			return false;
		}
	}
	return true;
}

static int named_index(const json_t *arr, const char *name)
{
	size_t i;

	for (i = 0; i < json_array_size(arr); i++) {
		const char *n = json_string_value(
		    json_object_get(json_array_get(arr, i), "name"));

		if (n && !strcmp(n, name))
			return (int)i;
	}
	return -1;
}

static bool apply_set(json_t *arr, const json_t *set, const char *what,
		      char *err, size_t errlen)
{
	size_t i;

	if (!set)
		return true;
	if (!json_is_array(set)) {
		snprintf(err, errlen, "%s.set is not an array", what);
		return false;
	}
	for (i = 0; i < json_array_size(set); i++) {
		const json_t *e = json_array_get(set, i);
		const char *n = json_string_value(json_object_get(e, "name"));
		int at;

		if (!n) {
			snprintf(err, errlen, "%s.set[%zu] has no name", what,
				 i);
			return false;
		}
		at = named_index(arr, n);
		if (at >= 0)
			json_array_set_new(arr, (size_t)at, json_deep_copy(e));
		else
			json_array_append_new(arr, json_deep_copy(e));
	}
	return true;
}

static bool apply_remove(json_t *arr, const json_t *rm, const char *what,
			 char *err, size_t errlen)
{
	size_t i;

	if (!rm)
		return true;
	if (!json_is_array(rm)) {
		snprintf(err, errlen, "%s.remove is not an array", what);
		return false;
	}
	for (i = 0; i < json_array_size(rm); i++) {
		const char *n = json_string_value(json_array_get(rm, i));
		int at;

		if (!n) {
			snprintf(err, errlen, "%s.remove[%zu] is no string",
				 what, i);
			return false;
		}
		at = named_index(arr, n);
		if (at >= 0)
			json_array_remove(arr, (size_t)at);
	}
	return true;
}

static bool apply_sources(json_t *rules, const json_t *edits, bool add,
			  char *err, size_t errlen)
{
	const char *what = add ? "addSources" : "removeSources";
	size_t i, j, k;

	if (!edits)
		return true;
	if (!json_is_array(edits)) {
		snprintf(err, errlen, "rules.%s is not an array", what);
		return false;
	}
	for (i = 0; i < json_array_size(edits); i++) {
		const json_t *e = json_array_get(edits, i);
		const char *n = json_string_value(json_object_get(e, "name"));
		const json_t *srcs = json_object_get(e, "sources");
		json_t *have;
		int at;

		if (!n || !json_is_array(srcs)) {
			snprintf(err, errlen,
				 "rules.%s[%zu] needs a name "
				 "and sources",
				 what, i);
			return false;
		}
		at = named_index(rules, n);
		if (at < 0) {
			if (!add)
				continue;
			snprintf(err, errlen,
				 "rules.addSources names rule %s, which the "
				 "client does not have",
				 n);
			return false;
		}
		have = json_object_get(json_array_get(rules, (size_t)at),
				       "sources");
		if (!json_is_array(have)) {
			snprintf(err, errlen, "rule %s has no sources", n);
			return false;
		}
		for (j = 0; j < json_array_size(srcs); j++) {
			const json_t *s = json_array_get(srcs, j);

			for (k = 0; k < json_array_size(have); k++)
				if (json_equal(json_array_get(have, k), s))
					break;
			if (add && k == json_array_size(have))
				json_array_append(have, (json_t *)s);
			else if (!add && k < json_array_size(have))
				json_array_remove(have, k);
		}
	}
	return true;
}

static bool apply_part(json_t *map, const json_t *part, const char *what,
		       bool sources, char *err, size_t errlen)
{
	static const char *const allowed[] = {"set", "remove", "addSources",
					      "removeSources"};
	json_t *arr = json_object_get(map, what);
	const char *bad = NULL;

	if (!part)
		return true;
	if (!json_is_object(part)) {
		snprintf(err, errlen, "%s is not an object", what);
		return false;
	}
	if (!keys_within(part, allowed, sources ? 4 : 2, &bad)) {
		snprintf(err, errlen, "unknown member %s.%s", what, bad);
		return false;
	}
	if (!json_is_array(arr)) {
		snprintf(err, errlen, "the client's map has no %s array", what);
		return false;
	}
	if (!apply_set(arr, json_object_get(part, "set"), what, err, errlen) ||
	    !apply_remove(arr, json_object_get(part, "remove"), what, err,
			  errlen))
		return false;
	if (sources &&
	    (!apply_sources(arr, json_object_get(part, "addSources"), true, err,
			    errlen) ||
	     !apply_sources(arr, json_object_get(part, "removeSources"), false,
			    err, errlen)))
		return false;
	return true;
}

/* Apply a frame as docs/MESH.md tells a client to. */
static bool apply_frame(json_t **map, const json_t *f, uint64_t serial,
			bool *snapshot, char *err, size_t errlen)
{
	static const char *const delta_keys[] = {"type",  "serial", "self",
						 "peers", "rules",  "routes"};
	const char *type = json_string_value(json_object_get(f, "type"));
	const json_t *s = json_object_get(f, "serial");
	const char *bad = NULL;

	if (!json_is_integer(s) || (uint64_t)json_integer_value(s) != serial) {
		snprintf(err, errlen, "serial %s, want the flush's %" PRIu64,
			 D(s), serial);
		return false;
	}
	if (type && !strcmp(type, "SNAPSHOT")) {
		const json_t *mp = json_object_get(f, "map");
		const json_t *ms;
		json_t *c;

		*snapshot = true;
		if (!json_is_object(mp)) {
			snprintf(err, errlen, "SNAPSHOT without a map");
			return false;
		}
		ms = json_object_get(mp, "serial");
		if (ms && (!json_is_integer(ms) ||
			   (uint64_t)json_integer_value(ms) != serial)) {
			snprintf(err, errlen,
				 "SNAPSHOT map serial %s, want "
				 "%" PRIu64,
				 D(ms), serial);
			return false;
		}
		/* the GET form may carry these; the map proper does not */
		c = json_deep_copy(mp);
		json_object_del(c, "apiVersion");
		json_object_del(c, "kind");
		json_object_del(c, "serial");
		json_decref(*map);
		*map = c;
		return true;
	}
	if (!type || strcmp(type, "DELTA")) {
		snprintf(err, errlen, "a frame of type %s", type ? type : "?");
		return false;
	}
	*snapshot = false;
	if (!keys_within(f, delta_keys, ARRAY_LEN(delta_keys), &bad)) {
		snprintf(err, errlen, "unknown DELTA member %s", bad);
		return false;
	}
	if (json_object_get(f, "self")) {
		if (!json_is_object(json_object_get(f, "self"))) {
			snprintf(err, errlen, "DELTA self is not an object");
			return false;
		}
		json_object_set_new(*map, "self",
				    json_deep_copy(json_object_get(f, "self")));
	}
	return apply_part(*map, json_object_get(f, "peers"), "peers", false,
			  err, errlen) &&
	       apply_part(*map, json_object_get(f, "rules"), "rules", true, err,
			  errlen) &&
	       apply_part(*map, json_object_get(f, "routes"), "routes", false,
			  err, errlen);
}

/* ---- a random case's state ----------------------------------------------- */

#define MAXNS 3

typedef struct ctx {
	mesh *m;
	int nns;
	tns ns[MAXNS];
	uint64_t serial;
	struct replica *reps; /* every replica ever made, for the end */
	/* the flush in progress */
	size_t frames;
	bool failed;
	char err[8192];
	/* totals */
	size_t nflush, nframes, nsnap, ndelta, nchecked, nops, nbad;
} ctx;

static void ctx_err(ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ctx_err(ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->failed)
		return;
	c->failed = true;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

static void on_frame(void *sub, const char *ns, const char *name,
		     const json_t *frame, void *arg)
{
	ctx *c = arg;
	struct replica *r = sub;
	const tpeer *p;
	char err[1024];
	bool snap = false;

	c->frames++;
	if (!r || r->magic != REP_MAGIC || r->c != c) {
		ctx_err(c,
			"frame for %s/%s with a subscriber the test never "
			"gave: %s",
			ns, name, D(frame));
		return;
	}
	p = &c->ns[r->ns].peers[r->slot];
	if (r->dead) {
		ctx_err(c,
			"frame for %s/%s to a subscription that ended (the "
			"peer was deleted or unsubscribed): %s",
			ns, name, D(frame));
		return;
	}
	if (strcmp(ns, c->ns[r->ns].name) || strcmp(name, p->name)) {
		ctx_err(c,
			"frame for %s/%s delivered to the subscriber of %s/%s",
			ns, name, c->ns[r->ns].name, p->name);
		return;
	}
	if (cur.verbose)
		oplog("  frame for %s/%s: %s", ns, name, D(frame));
	if (++r->frames > 1)
		ctx_err(c, "a second frame for %s/%s in one flush: %s", ns,
			name, D(frame));
	if (!apply_frame(&r->map, frame, c->serial, &snap, err, sizeof(err)))
		ctx_err(c, "frame for %s/%s: %s: %s", ns, name, err, D(frame));
	if (snap)
		c->nsnap++;
	else
		c->ndelta++;
}

static void on_router(const char *ns, const char *route, const char *active,
		      void *arg)
{
	ctx *c = arg;
	int k, r;

	if (cur.verbose)
		oplog("  router %s/%s -> %s", ns, route,
		      active ? active : "NULL");
	for (k = 0; k < c->nns; k++) {
		tns *n = &c->ns[k];

		if (strcmp(n->name, ns))
			continue;
		for (r = 0; r < n->nroute; r++)
			if (!strcmp(n->routes[r].name, route)) {
				n->routes[r].ncb++;
				snprintf(n->routes[r].cb_last,
					 sizeof(n->routes[r].cb_last), "%s",
					 active ? active : "");
				return;
			}
	}
	ctx_err(c, "router callback for an unknown route %s/%s (active %s)", ns,
		route, active ? active : "NULL");
}

static void subscribe(ctx *c, tns *n, int i)
{
	tpeer *p = &n->peers[i];
	struct replica *r = xcalloc(1, sizeof(*r));
	int rc;

	r->magic = REP_MAGIC;
	r->c = c;
	r->ns = n->idx;
	r->slot = i;
	r->next = c->reps;
	c->reps = r;
	rc = mesh_subscribe(c->m, n->name, p->name, r);
	CHECK(rc == 0, "mesh_subscribe(%s/%s) = %d", n->name, p->name, rc);
	CHECK(mesh_subscriber(c->m, n->name, p->name) == r,
	      "mesh_subscriber(%s/%s) is not what was subscribed", n->name,
	      p->name);
	r->map = mesh_map(c->m, n->name, p->name);
	CHECK(r->map, "mesh_map(%s/%s) = NULL for a known peer", n->name,
	      p->name);
	p->rep = r;
	oplog("subscribe %s/%s", n->name, p->name);
}

static void unsubscribe(ctx *c, tns *n, int i)
{
	tpeer *p = &n->peers[i];
	int rc = mesh_subscribe(c->m, n->name, p->name, NULL);

	oplog("unsubscribe %s/%s", n->name, p->name);
	CHECK(rc == 0, "mesh_subscribe(%s/%s, NULL) = %d", n->name, p->name,
	      rc);
	CHECK(!mesh_subscriber(c->m, n->name, p->name),
	      "mesh_subscriber(%s/%s) after unsubscribing is not NULL", n->name,
	      p->name);
	p->rep->dead = true;
	p->rep = NULL;
}

/* ---- the checks after every flush ---------------------------------------- */

/* Returns whether P's map changed (or was created) in this flush. */
static bool check_peer(ctx *c, tns *n, int i, bool with_sink, size_t *hits,
		       size_t *frames_due)
{
	tpeer *p = &n->peers[i];
	uint64_t S = c->serial, ser;
	json_t *want, *got;
	bool hit, changed;

	if (!p->exists) {
		got = mesh_map(c->m, n->name, p->name);
		CHECK(!got, "mesh_map(%s/%s) of a peer that does not exist: %s",
		      n->name, p->name, D(got));
		ser = mesh_map_serial(c->m, n->name, p->name);
		CHECK(ser == 0,
		      "mesh_map_serial(%s/%s) = %" PRIu64
		      " for a peer that does not exist",
		      n->name, p->name, ser);
		CHECK(!mesh_subscriber(c->m, n->name, p->name),
		      "mesh_subscriber(%s/%s) of a peer that does not exist",
		      n->name, p->name);
		json_decref(p->prev);
		p->prev = NULL;
		p->serial = 0;
		return false;
	}
	want = ref_map(n, i);
	got = mesh_map(c->m, n->name, p->name);
	expect_map("mesh_map", n->name, p->name, want, got);
	json_decref(got);
	if (p->rep)
		expect_map("the client replica (mesh_map at subscribe, then "
			   "the frames)",
			   n->name, p->name, want, p->rep->map);
	CHECK(mesh_subscriber(c->m, n->name, p->name) == p->rep,
	      "mesh_subscriber(%s/%s) is not the test's subscriber", n->name,
	      p->name);
	c->nchecked++;

	ser = mesh_map_serial(c->m, n->name, p->name);
	hit = ser == S;
	changed = p->fresh || !p->prev || !json_equal(p->prev, want);
	CHECK(!changed || hit,
	      "%s/%s: its map %s in the flush of serial %" PRIu64
	      ", but mesh_map_serial is %" PRIu64
	      "\n  before: %s\n  after:  %s",
	      n->name, p->name, p->fresh ? "was created" : "changed", S, ser,
	      D(p->prev), D(want));
	CHECK(hit || ser == p->serial,
	      "%s/%s: mesh_map_serial moved from %" PRIu64 " to %" PRIu64
	      " outside a flush (the flush's serial is %" PRIu64 ")",
	      n->name, p->name, p->serial, ser, S);
	if (with_sink && p->rep)
		CHECK(p->rep->frames == (hit ? 1 : 0),
		      "%s/%s: %d frame(s) in the flush of serial %" PRIu64
		      ", and its mesh_map_serial is %" PRIu64
		      " (map changed: %s)",
		      n->name, p->name, p->rep->frames, S, ser,
		      changed ? "yes" : "no");
	*hits += hit;
	*frames_due += hit && p->rep;
	p->serial = ser;
	p->fresh = false;
	json_decref(p->prev);
	p->prev = want;
	return changed;
}

/* Returns whether the router of r changed since the last flush. */
static bool check_route(ctx *c, tns *n, int r, bool with_sink)
{
	troute *R = &n->routes[r];
	const char *got = mesh_route_router(c->m, n->name, R->name);
	const char *want =
	    R->exists && n->router[r] >= 0 ? n->peers[n->router[r]].name : NULL;
	bool changed = strcmp(R->prev_router, want ? want : "") != 0;

	CHECK(same_str(got, want), "mesh_route_router(%s/%s) = %s, want %s",
	      n->name, R->name, got ? got : "NULL", want ? want : "NULL");
	if (with_sink) {
		if (!R->deleted)
			CHECK(R->ncb == (changed ? 1 : 0),
			      "route %s/%s: router went from %s to %s, and the "
			      "router callback fired %d time(s)",
			      n->name, R->name,
			      R->prev_router[0] ? R->prev_router : "none",
			      want ? want : "none", R->ncb);
		else
			CHECK(R->ncb <= 2 && (!changed || !want || R->ncb),
			      "route %s/%s (deleted, now %s): router went from "
			      "%s to %s, and the router callback fired %d "
			      "time(s)",
			      n->name, R->name,
			      R->exists ? "re-created" : "absent",
			      R->prev_router[0] ? R->prev_router : "none",
			      want ? want : "none", R->ncb);
		if (R->ncb)
			CHECK(!strcmp(R->cb_last, want ? want : ""),
			      "route %s/%s: the router callback said %s, but "
			      "the router is %s",
			      n->name, R->name,
			      R->cb_last[0] ? R->cb_last : "NULL",
			      want ? want : "none");
	}
	snprintf(R->prev_router, sizeof(R->prev_router), "%s",
		 want ? want : "");
	R->deleted = false;
	R->ncb = 0;
	return changed;
}

static size_t count_row(const bool *row, int n)
{
	size_t k = 0;
	int i;

	for (i = 0; i < n; i++)
		k += row[i];
	return k;
}

static void check_flush(ctx *c, size_t ret, bool dirty_before, bool with_sink)
{
	mesh_stats st, want;
	size_t hits = 0, frames_due = 0;
	bool changed = false;
	int k, i, x, r;

	if (c->failed)
		case_fail("in the flush of serial %" PRIu64 ": %s", c->serial,
			  c->err);
	CHECK(!mesh_dirty(c->m), "mesh_dirty() is true right after mesh_flush");
	memset(&want, 0, sizeof(want));
	for (k = 0; k < c->nns; k++) {
		tns *n = &c->ns[k];

		ref_build(n);
		for (i = 0; i < n->npeer; i++) {
			tpeer *p = &n->peers[i];

			if (!with_sink && p->rep) {
				/* no sink: the client would reconnect */
				json_decref(p->rep->map);
				p->rep->map = mesh_map(c->m, n->name, p->name);
			}
			changed |=
			    check_peer(c, n, i, with_sink, &hits, &frames_due);
			want.peers += p->exists;
			want.active_peers += n->act[i];
		}
		for (x = 0; x < n->npol; x++) {
			want.policies += n->pols[x].exists;
			want.memberships +=
			    count_row(&FROM(n, x, 0), n->npeer) +
			    count_row(&TO(n, x, 0), n->npeer);
		}
		for (r = 0; r < n->nroute; r++) {
			want.routes += n->routes[r].exists;
			want.memberships += count_row(&VIA(n, r, 0), n->npeer) +
					    count_row(&FOR(n, r, 0), n->npeer);
			changed |= check_route(c, n, r, with_sink);
		}
	}
	CHECK(ret == hits,
	      "mesh_flush(serial %" PRIu64 ") returned %zu, but %zu maps "
	      "have that serial",
	      c->serial, ret, hits);
	if (with_sink)
		CHECK(c->frames == frames_due,
		      "the flush of serial %" PRIu64 " delivered %zu frames, "
		      "want %zu (the subscribed maps that took its serial)",
		      c->serial, c->frames, frames_due);
	CHECK(!changed || dirty_before,
	      "mesh_dirty() was false before a flush that changed maps or "
	      "routers");
	mesh_get_stats(c->m, &st);
	CHECK(st.peers == want.peers && st.active_peers == want.active_peers &&
		  st.policies == want.policies && st.routes == want.routes &&
		  st.memberships == want.memberships,
	      "mesh_get_stats: peers %zu active %zu policies %zu routes %zu "
	      "memberships %zu; want %zu %zu %zu %zu %zu",
	      st.peers, st.active_peers, st.policies, st.routes, st.memberships,
	      want.peers, want.active_peers, want.policies, want.routes,
	      want.memberships);
	c->nframes += c->frames;
}

static void do_flush(ctx *c)
{
	mesh_sink sink = {on_frame, on_router, c, NULL};
	bool dirty = mesh_dirty(c->m), with_sink = !chance(4);
	struct replica *r;
	size_t ret;

	c->serial += 1 + rn(3);
	for (r = c->reps; r; r = r->next)
		r->frames = 0;
	c->frames = 0;
	c->failed = false;
	oplog("flush serial=%" PRIu64 "%s", c->serial,
	      with_sink ? "" : " (sink NULL)");
	ret = mesh_flush(c->m, c->serial, with_sink ? &sink : NULL);
	c->nflush++;
	check_flush(c, ret, dirty, with_sink);
}

/* ---- random specs ----------------------------------------------------------
 */

static const char *const roles[] = {"web", "db", "app", "router"};
static const char *const envs[] = {"a", "b"};
static const char *const zones[] = {"x", "y"};

static json_t *rand_labels(void)
{
	json_t *l;

	if (chance(8))
		return NULL;
	l = json_object();
	if (chance(85))
		json_object_set_new(l, "role", json_string(roles[rn(4)]));
	if (chance(70))
		json_object_set_new(l, "env", json_string(envs[rn(2)]));
	if (chance(20))
		json_object_set_new(l, "zone", json_string(zones[rn(2)]));
	return l;
}

static const char *rand_value(const char *key)
{
	if (chance(10))
		return "zz"; /* in no alphabet */
	if (!strcmp(key, "role"))
		return roles[rn(4)];
	if (!strcmp(key, "env"))
		return envs[rn(2)];
	return zones[rn(2)];
}

static json_t *rand_selector(void)
{
	static const char *const keys[] = {"role", "env", "zone"};
	static const char *const ops[] = {"In", "NotIn", "Exists",
					  "DoesNotExist"};
	unsigned k = rn(100), i, cnt;
	json_t *s;

	if (k < 10)
		return NULL; /* absent: nothing */
	if (k < 15)
		return json_null(); /* null: nothing */
	if (k < 27)
		return json_object(); /* {}: everything */
	if (k < 30)
		return json_pack("{s:{}}", "matchLabels");
	if (k < 32)
		return json_pack("{s:[]}", "matchExpressions");
	s = json_object();
	if (chance(60)) {
		json_t *ml = json_object();

		cnt = 1 + rn(2);
		for (i = 0; i < cnt; i++) {
			const char *key = keys[rn(2)];

			json_object_set_new(ml, key,
					    json_string(rand_value(key)));
		}
		json_object_set_new(s, "matchLabels", ml);
	}
	if (!json_object_size(s) || chance(45)) {
		json_t *me = json_array();

		cnt = 1 + rn(2);
		for (i = 0; i < cnt; i++) {
			const char *key = keys[rn(3)];
			const char *op = ops[rn(4)];
			json_t *e =
			    json_pack("{s:s, s:s}", "key", key, "operator", op);

			if (op[0] == 'I' || op[0] == 'N') {
				json_t *v = json_pack("[s]", rand_value(key));

				if (chance(40)) {
					const char *w = rand_value(key);

					if (strcmp(w,
						   json_string_value(
						       json_array_get(v, 0))))
						json_array_append_new(
						    v, json_string(w));
				}
				json_object_set_new(e, "values", v);
			}
			json_array_append_new(me, e);
		}
		json_object_set_new(s, "matchExpressions", me);
	}
	return s;
}

static json_t *rand_port_entry(void)
{
	static const char *const protos[] = {NULL, "TCP", "UDP", "ICMP", "any"};
	static const int common[] = {22, 53, 80, 443, 5432, 8080, 1, 65535};
	const char *pr = protos[rn(5)];
	json_t *e = json_object();
	unsigned k;
	int port;

	if (pr)
		json_object_set_new(e, "protocol", json_string(pr));
	if (pr && !strcmp(pr, "ICMP"))
		return e;
	k = rn(100);
	if (k < 25)
		return e;
	port = chance(60) ? common[rn(8)] : 1 + (int)rn(65535);
	json_object_set_new(e, "port", json_integer(port));
	if (k >= 70)
		json_object_set_new(
		    e, "endPort",
		    json_integer(
			chance(20) ? port
				   : port + (int)rn((unsigned)(65536 - port))));
	return e;
}

/* NULL, [], or distinct entries (distinct as rule ports, too). */
static json_t *rand_ports(void)
{
	unsigned k = rn(100), i, cnt;
	json_t *a, *seen;

	if (k < 15)
		return NULL;
	if (k < 25)
		return json_array();
	a = json_array();
	seen = json_array();
	cnt = 1 + rn(3);
	for (i = 0; i < cnt; i++) {
		json_t *e = rand_port_entry(), *norm = ref_port(e);
		size_t j;

		for (j = 0; j < json_array_size(seen); j++)
			if (json_equal(json_array_get(seen, j), norm))
				break;
		if (j < json_array_size(seen)) {
			json_decref(e);
			json_decref(norm);
			continue;
		}
		json_array_append_new(a, e);
		json_array_append_new(seen, norm);
	}
	json_decref(seen);
	return a;
}

static json_t *rand_endpoints(void)
{
	json_t *a = json_array();
	unsigned i, cnt = rn(3);
	char buf[40];

	for (i = 0; i < cnt; i++) {
		snprintf(buf, sizeof(buf), "192.0.2.%u:%u",
			 1 + i * 100 + rn(99), 51820 + rn(3));
		json_array_append_new(a, json_string(buf));
	}
	return a;
}

/* Addresses are unique per slot, and across namespaces. */
static void rand_addr(const tns *n, int i, char *out)
{
	snprintf(out, 24, "100.%d.%d.%u", (64 + n->idx) & 255, i & 255,
		 1 + rn(4));
}

/* Destinations are unique per route slot. */
static void rand_dest(int r, char *out)
{
	if (chance(70))
		snprintf(out, 24, "10.%d.%u.0/24", r + 1, rn(4));
	else
		snprintf(out, 24, "172.%d.0.0/16", 16 + r);
}

/* ---- operations on the mesh and the model ------------------------------- */

static void spec_copy(tpeer *d, const tpeer *s)
{
	memset(d, 0, sizeof(*d));
	d->has_key = s->has_key;
	d->has_addr = s->has_addr;
	memcpy(d->key, s->key, sizeof(d->key));
	memcpy(d->addr, s->addr, sizeof(d->addr));
	d->labels = jcopy(s->labels);
	d->endpoints = jcopy(s->endpoints);
	d->online = s->online;
	d->expired = s->expired;
	d->deleting = s->deleting;
}

static void rand_peer(const tns *n, int i, tpeer *d)
{
	memset(d, 0, sizeof(*d));
	d->has_key = chance(88);
	if (d->has_key)
		rand_key(d->key);
	d->has_addr = chance(88);
	if (d->has_addr)
		rand_addr(n, i, d->addr);
	d->labels = rand_labels();
	d->endpoints = rand_endpoints();
	d->online = chance(75);
	d->expired = chance(8);
	d->deleting = chance(6);
}

static mesh_peer_spec peer_spec(const tns *n, const tpeer *p, const tpeer *s)
{
	mesh_peer_spec ps = {
	    .ns = n->name,
	    .name = p->name,
	    .public_key = s->has_key ? s->key : NULL,
	    .address = s->has_addr ? s->addr : NULL,
	    .labels = s->labels,
	    .endpoints = s->endpoints,
	    .online = s->online,
	    .expired = s->expired,
	    .deleting = s->deleting,
	};

	return ps;
}

/* Set slot i to spec s (whose JSON the model takes). */
static void peer_commit(ctx *c, tns *n, int i, tpeer *s, const char *why)
{
	tpeer *p = &n->peers[i];
	mesh_peer_spec ps = peer_spec(n, p, s);
	char err[512];
	int rc;
	bool was = p->exists;

	oplog("peer_set %s/%s (%s) key=%.8s addr=%s labels=%s endpoints=%s "
	      "online=%d expired=%d deleting=%d",
	      n->name, p->name, why, s->has_key ? s->key : "NULL",
	      s->has_addr ? s->addr : "NULL", D(s->labels), D(s->endpoints),
	      s->online, s->expired, s->deleting);
	rc = peer_set_copied(c->m, &ps, err, sizeof(err));
	CHECK(rc == 0, "mesh_peer_set(%s/%s) = %d: %s", n->name, p->name, rc,
	      err);
	p->has_key = s->has_key;
	p->has_addr = s->has_addr;
	memcpy(p->key, s->key, sizeof(p->key));
	memcpy(p->addr, s->addr, sizeof(p->addr));
	json_decref(p->labels);
	json_decref(p->endpoints);
	p->labels = s->labels;
	p->endpoints = s->endpoints;
	p->online = s->online;
	p->expired = s->expired;
	p->deleting = s->deleting;
	p->exists = true;
	if (!was) {
		p->fresh = true;
		subscribe(c, n, i);
	}
}

static int pick_existing_peer(const tns *n)
{
	int i, start = (int)rn((unsigned)n->npeer);

	for (i = 0; i < n->npeer; i++) {
		int j = (start + i) % n->npeer;

		if (n->peers[j].exists)
			return j;
	}
	return -1;
}

static void op_peer_new(ctx *c, tns *n, int i)
{
	tpeer s;

	rand_peer(n, i, &s);
	peer_commit(c, n, i, &s, n->peers[i].exists ? "replace" : "new");
}

static void op_peer_tweak(ctx *c, tns *n)
{
	int i = pick_existing_peer(n);
	const char *why = "?";
	tpeer s;

	if (i < 0) {
		if (n->npeer)
			op_peer_new(c, n, (int)rn((unsigned)n->npeer));
		return;
	}
	spec_copy(&s, &n->peers[i]);
	switch (rn(9)) {
	case 0:
		json_decref(s.labels);
		s.labels = rand_labels();
		why = "labels";
		break;
	case 1:
		if (!s.labels)
			s.labels = json_object();
		if (chance(50))
			json_object_set_new(s.labels, "role",
					    json_string(roles[rn(4)]));
		else if (chance(50))
			json_object_set_new(s.labels, "env",
					    json_string(envs[rn(2)]));
		else
			json_object_del(s.labels, "env");
		why = "one label";
		break;
	case 2:
		s.has_key = !s.has_key || chance(70);
		if (s.has_key)
			rand_key(s.key);
		why = "key";
		break;
	case 3:
		s.has_addr = !s.has_addr || chance(70);
		if (s.has_addr)
			rand_addr(n, i, s.addr);
		why = "address";
		break;
	case 4:
	case 5:
		s.online = !s.online;
		why = "online";
		break;
	case 6:
		s.expired = !s.expired;
		why = "expiry";
		break;
	case 7:
		s.deleting = !s.deleting;
		why = "deleting";
		break;
	default:
		json_decref(s.endpoints);
		s.endpoints = rand_endpoints();
		why = "endpoints";
		break;
	}
	peer_commit(c, n, i, &s, why);
}

static void op_peer_del(ctx *c, tns *n, int i)
{
	tpeer *p = &n->peers[i];

	oplog("peer_del %s/%s%s", n->name, p->name,
	      p->exists ? "" : " (unknown)");
	mesh_peer_del(c->m, n->name, p->name);
	if (p->exists) {
		if (p->rep)
			p->rep->dead = true;
		p->rep = NULL;
		p->exists = false;
	}
	CHECK(!mesh_subscriber(c->m, n->name, p->name),
	      "mesh_subscriber(%s/%s) after mesh_peer_del", n->name, p->name);
}

static void pol_commit(ctx *c, tns *n, int x, json_t *from, json_t *to,
		       json_t *ports, bool bidi, const char *why)
{
	tpol *X = &n->pols[x];
	mesh_policy_spec s = {n->name, X->name, from, to, ports, bidi};
	char err[512];
	int rc;

	oplog("policy_set %s/%s (%s) from=%s to=%s ports=%s bidirectional=%d",
	      n->name, X->name, why, D(from), D(to), D(ports), bidi);
	rc = policy_set_copied(c->m, &s, err, sizeof(err));
	CHECK(rc == 0, "mesh_policy_set(%s/%s) = %d: %s", n->name, X->name, rc,
	      err);
	json_decref(X->from);
	json_decref(X->to);
	json_decref(X->ports);
	X->from = from;
	X->to = to;
	X->ports = ports;
	X->bidi = bidi;
	X->exists = true;
}

static void op_pol_set(ctx *c, tns *n, int x)
{
	pol_commit(c, n, x, rand_selector(), rand_selector(), rand_ports(),
		   chance(40), n->pols[x].exists ? "replace" : "new");
}

static void op_pol_tweak(ctx *c, tns *n, int x)
{
	tpol *X = &n->pols[x];
	json_t *f, *t, *p;
	bool bidi = X->bidi;

	if (!X->exists) {
		op_pol_set(c, n, x);
		return;
	}
	f = jcopy(X->from);
	t = jcopy(X->to);
	p = jcopy(X->ports);
	switch (rn(4)) {
	case 0:
		json_decref(f);
		f = rand_selector();
		break;
	case 1:
		json_decref(t);
		t = rand_selector();
		break;
	case 2:
		json_decref(p);
		p = rand_ports();
		break;
	default:
		bidi = !bidi;
		break;
	}
	pol_commit(c, n, x, f, t, p, bidi, "tweak");
}

static void op_pol_del(ctx *c, tns *n, int x)
{
	oplog("policy_del %s/%s%s", n->name, n->pols[x].name,
	      n->pols[x].exists ? "" : " (unknown)");
	mesh_policy_del(c->m, n->name, n->pols[x].name);
	n->pols[x].exists = false;
}

static void route_commit(ctx *c, tns *n, int r, const char *dest, json_t *via,
			 json_t *forp, const char *why)
{
	troute *R = &n->routes[r];
	mesh_route_spec s = {n->name, R->name, dest, via, forp};
	char err[512];
	int rc;

	oplog("route_set %s/%s (%s) destination=%s via=%s for=%s", n->name,
	      R->name, why, dest, D(via), D(forp));
	rc = route_set_copied(c->m, &s, err, sizeof(err));
	CHECK(rc == 0, "mesh_route_set(%s/%s) = %d: %s", n->name, R->name, rc,
	      err);
	snprintf(R->dest, sizeof(R->dest), "%s", dest);
	json_decref(R->via);
	json_decref(R->forp);
	R->via = via;
	R->forp = forp;
	R->exists = true;
}

/* Routes select routers by role mostly, so that some have one. */
static json_t *rand_via(void)
{
	if (chance(50))
		return json_pack("{s:{s:s}}", "matchLabels", "role", "router");
	return rand_selector();
}

static void op_route_set(ctx *c, tns *n, int r)
{
	char dest[24];

	rand_dest(r, dest);
	route_commit(c, n, r, dest, rand_via(), rand_selector(),
		     n->routes[r].exists ? "replace" : "new");
}

static void op_route_tweak(ctx *c, tns *n, int r)
{
	troute *R = &n->routes[r];
	json_t *v, *f;
	char dest[24];

	if (!R->exists) {
		op_route_set(c, n, r);
		return;
	}
	snprintf(dest, sizeof(dest), "%s", R->dest);
	v = jcopy(R->via);
	f = jcopy(R->forp);
	switch (rn(3)) {
	case 0:
		json_decref(v);
		v = rand_via();
		break;
	case 1:
		json_decref(f);
		f = rand_selector();
		break;
	default:
		rand_dest(r, dest);
		break;
	}
	route_commit(c, n, r, dest, v, f, "tweak");
}

static void op_route_del(ctx *c, tns *n, int r)
{
	troute *R = &n->routes[r];

	oplog("route_del %s/%s%s", n->name, R->name,
	      R->exists ? "" : " (unknown)");
	mesh_route_del(c->m, n->name, R->name);
	if (R->exists)
		R->deleted = true;
	R->exists = false;
}

static const char *const cidrs[] = {"100.64.0.0/10", "100.0.0.0/8",
				    "100.0.0.0/9", "0.0.0.0/0"};
static const char *const domains[] = {"mesh.local", "corp.example", "m.test",
				      "a-b.example.org"};

static void op_net_set(ctx *c, tns *n)
{
	const char *cidr = cidrs[rn(ARRAY_LEN(cidrs))];
	const char *dom = domains[rn(ARRAY_LEN(domains))];
	char err[512];
	int rc;

	oplog("network_set %s cidr=%s domain=%s", n->name, cidr, dom);
	rc = network_set_copied(c->m, n->name, cidr, dom, err, sizeof(err));
	CHECK(rc == 0, "mesh_network_set(%s, %s, %s) = %d: %s", n->name, cidr,
	      dom, rc, err);
	n->has_net = true;
	snprintf(n->cidr, sizeof(n->cidr), "%s", cidr);
	snprintf(n->domain, sizeof(n->domain), "%s", dom);
}

static void op_net_del(ctx *c, tns *n)
{
	oplog("network_del %s", n->name);
	mesh_network_del(c->m, n->name);
	n->has_net = false;
}

/* ---- bad input -------------------------------------------------------------
 */

static const char *const bad_addrs[] = {"1.2.3", "1.2.3.256", "banana",
					"1.2.3.4/32", "1.2.3.4.5"};

static const char *const bad_selectors[] = {
    "'role=web'",
    "{'matchLabels': {'role': 5}}",
    "{'matchLabels': {'bad key!': 'x'}}",
    "{'matchExpressions': [{'key': 'role', 'operator': 'Bogus', "
    "'values': ['web']}]}",
    "{'matchExpressions': [{'key': 'role', 'operator': 'In', 'values': []}]}",
    "{'matchExpressions': [{'key': 'role', 'operator': 'Exists', "
    "'values': ['web']}]}",
    "{'matchExpressions': 'role'}",
    "[]",
};

static const struct {
	const char *ports, *hint;
} bad_ports[] = {
    {"[{'protocol': 'SCTP'}]", "protocol"},
    {"[{'protocol': 'ICMP', 'port': 8}]", "port"},
    {"[{'port': 0}]", "port"},
    {"[{'port': 65536}]", "port"},
    {"[{'port': 100, 'endPort': 99}]", "port"},
    {"[{'port': 100, 'endPort': 65536}]", "port"},
    {"[{'port': '80'}]", "port"},
    {"[{'protocol': 'UDP', 'port': -1}]", "port"},
    {"[80]", "port"},
    {"{'port': 80}", "port"},
};

static const char *const bad_dests[] = {"10.0.0.0/33", "10.0.0.300/24",
					"banana", "10.0.0.0", "10.0.0.0/-1"};
static const char *const bad_cidrs[] = {"100.64.0.0/33", "banana", "100.64.0.0",
					"300.64.0.0/10"};
static const char *const bad_domains[] = {"bad domain", "a..b", "exa$mple.com"};

/* A malformed key: wrong length, bad characters. */
static void bad_key(char *out)
{
	unsigned char b[33];
	size_t i;

	for (i = 0; i < sizeof(b); i++)
		b[i] = (unsigned char)rnd();
	switch (rn(4)) {
	case 0:
		strcpy(out, "not-a-key");
		break;
	case 1:
		b64(b, 31, out);
		break;
	case 2:
		b64(b, 33, out);
		break;
	default:
		b64(b, 32, out);
		out[5] = '!';
		break;
	}
}

static void check_bad(ctx *c, const char *what, int rc, const char *err,
		      const char *hint, bool dirty)
{
	oplog("BAD %s -> %d: %s", what, rc, err);
	c->nbad++;
	CHECK(rc == -EINVAL, "%s = %d, want -EINVAL (%s)", what, rc, err);
	CHECK(err[0], "%s: -EINVAL without a message", what);
	CHECK(strcasestr(err, hint), "%s: the message \"%s\" does not name %s",
	      what, err, hint);
	CHECK(dirty || !mesh_dirty(c->m),
	      "%s failed, yet the mesh became dirty", what);
}

static void op_bad(ctx *c, tns *n)
{
	bool dirty = mesh_dirty(c->m);
	char what[1024], err[512];
	const char *hint;
	int rc;

	err[0] = '\0';
	switch (rn(4)) {
	case 0: {
		int i = (int)rn((unsigned)n->npeer);
		mesh_peer_spec ps;
		tpeer s;

		if (!n->npeer)
			return;
		rand_peer(n, i, &s);
		if (chance(50)) {
			s.has_key = true;
			bad_key(s.key);
			hint = "key";
		} else {
			s.has_addr = true;
			snprintf(s.addr, sizeof(s.addr), "%s",
				 bad_addrs[rn(ARRAY_LEN(bad_addrs))]);
			hint = "address";
		}
		ps = peer_spec(n, &n->peers[i], &s);
		snprintf(what, sizeof(what),
			 "mesh_peer_set(%s/%s, key %s, address %s)", n->name,
			 n->peers[i].name, s.has_key ? s.key : "NULL",
			 s.has_addr ? s.addr : "NULL");
		rc = peer_set_copied(c->m, &ps, err, sizeof(err));
		json_decref(s.labels);
		json_decref(s.endpoints);
		break;
	}
	case 1: {
		int x = (int)rn((unsigned)n->npol), k = (int)rn(3);
		json_t *f = rand_selector(), *t = rand_selector(),
		       *p = rand_ports();
		mesh_policy_spec s;

		if (!n->npol) {
			json_decref(f);
			json_decref(t);
			json_decref(p);
			return;
		}
		if (k == 0) {
			json_decref(f);
			f = jq(bad_selectors[rn(ARRAY_LEN(bad_selectors))]);
			hint = "from";
		} else if (k == 1) {
			json_decref(t);
			t = jq(bad_selectors[rn(ARRAY_LEN(bad_selectors))]);
			hint = "to";
		} else {
			unsigned b = rn(ARRAY_LEN(bad_ports));

			json_decref(p);
			p = jq(bad_ports[b].ports);
			hint = bad_ports[b].hint;
		}
		s = (mesh_policy_spec){n->name, n->pols[x].name, f, t,
				       p,	chance(50)};
		snprintf(what, sizeof(what),
			 "mesh_policy_set(%s/%s, from %s, to %s, ports %s)",
			 n->name, n->pols[x].name, D(f), D(t), D(p));
		rc = policy_set_copied(c->m, &s, err, sizeof(err));
		json_decref(f);
		json_decref(t);
		json_decref(p);
		break;
	}
	case 2: {
		int r = (int)rn((unsigned)n->nroute), k = (int)rn(3);
		json_t *v = rand_via(), *f = rand_selector();
		mesh_route_spec s;
		char dest[32];

		if (!n->nroute) {
			json_decref(v);
			json_decref(f);
			return;
		}
		rand_dest(r, dest);
		if (k == 0) {
			snprintf(dest, sizeof(dest), "%s",
				 bad_dests[rn(ARRAY_LEN(bad_dests))]);
			hint = "destination";
		} else if (k == 1) {
			json_decref(v);
			v = jq(bad_selectors[rn(ARRAY_LEN(bad_selectors))]);
			hint = "via";
		} else {
			json_decref(f);
			f = jq(bad_selectors[rn(ARRAY_LEN(bad_selectors))]);
			hint = "for";
		}
		s = (mesh_route_spec){n->name, n->routes[r].name, dest, v, f};
		snprintf(what, sizeof(what),
			 "mesh_route_set(%s/%s, destination %s, via %s, for "
			 "%s)",
			 n->name, n->routes[r].name, dest, D(v), D(f));
		rc = route_set_copied(c->m, &s, err, sizeof(err));
		json_decref(v);
		json_decref(f);
		break;
	}
	default: {
		const char *cidr = cidrs[rn(ARRAY_LEN(cidrs))];
		const char *dom = domains[rn(ARRAY_LEN(domains))];

		if (chance(50)) {
			cidr = bad_cidrs[rn(ARRAY_LEN(bad_cidrs))];
			hint = "cidr";
		} else {
			dom = bad_domains[rn(ARRAY_LEN(bad_domains))];
			hint = "domain";
		}
		snprintf(what, sizeof(what), "mesh_network_set(%s, %s, %s)",
			 n->name, cidr, dom);
		rc = network_set_copied(c->m, n->name, cidr, dom, err,
					sizeof(err));
		break;
	}
	}
	check_bad(c, what, rc, err, hint, dirty);
}

static void op_resub(ctx *c, tns *n)
{
	int i = pick_existing_peer(n);

	if (i < 0) {
		/* an unknown peer cannot be subscribed */
		if (n->npeer) {
			tpeer *p = &n->peers[rn((unsigned)n->npeer)];
			int rc = mesh_subscribe(c->m, n->name, p->name, c);

			if (!p->exists)
				CHECK(
				    rc == -ENOENT,
				    "mesh_subscribe(%s/%s) of an unknown peer "
				    "= %d, want -ENOENT",
				    n->name, p->name, rc);
		}
		return;
	}
	if (n->peers[i].rep)
		unsubscribe(c, n, i);
	else
		subscribe(c, n, i);
}

/* Set something again exactly as it is. */
static void op_same(ctx *c, tns *n)
{
	int i = pick_existing_peer(n);

	if (i >= 0 && chance(60)) {
		tpeer s;

		spec_copy(&s, &n->peers[i]);
		peer_commit(c, n, i, &s, "same");
	} else if (n->npol) {
		int x = (int)rn((unsigned)n->npol);

		if (!n->pols[x].exists)
			return;
		pol_commit(c, n, x, jcopy(n->pols[x].from),
			   jcopy(n->pols[x].to), jcopy(n->pols[x].ports),
			   n->pols[x].bidi, "same");
	}
}

static void random_op(ctx *c)
{
	tns *n = &c->ns[rn((unsigned)c->nns)];
	int np = n->npeer, nx = n->npol, nr = n->nroute;
	unsigned w = rn(100);

	c->nops++;
	if (w < 14) {
		if (np)
			op_peer_new(c, n, (int)rn((unsigned)np));
	} else if (w < 38) {
		op_peer_tweak(c, n);
	} else if (w < 45) {
		if (np)
			op_peer_del(c, n, (int)rn((unsigned)np));
	} else if (w < 52) {
		if (nx)
			op_pol_set(c, n, (int)rn((unsigned)nx));
	} else if (w < 59) {
		if (nx)
			op_pol_tweak(c, n, (int)rn((unsigned)nx));
	} else if (w < 62) {
		if (nx)
			op_pol_del(c, n, (int)rn((unsigned)nx));
	} else if (w < 67) {
		if (nr)
			op_route_set(c, n, (int)rn((unsigned)nr));
	} else if (w < 72) {
		if (nr)
			op_route_tweak(c, n, (int)rn((unsigned)nr));
	} else if (w < 74) {
		if (nr)
			op_route_del(c, n, (int)rn((unsigned)nr));
	} else if (w < 77) {
		op_net_set(c, n);
	} else if (w < 78) {
		op_net_del(c, n);
	} else if (w < 83) {
		op_bad(c, n);
	} else if (w < 86) {
		op_resub(c, n);
	} else if (w < 89) {
		op_same(c, n);
	} else {
		/* the commonest change of all: a lease lapses or renews */
		int i = pick_existing_peer(n);
		tpeer s;

		if (i < 0)
			return;
		spec_copy(&s, &n->peers[i]);
		s.online = !s.online;
		peer_commit(c, n, i, &s, "online");
	}
}

/* ---- the random cases ---------------------------------------------------- */

struct totals {
	size_t cases, ops, flushes, frames, snapshots, deltas, checked, bad;
};

static void random_case(uint64_t seed, struct totals *t)
{
	static const char *const nsnames[MAXNS] = {"default", "blue",
						   "green-team"};
	ctx *c = xcalloc(1, sizeof(*c));
	struct replica *r, *next;
	unsigned pct, nops, op;
	int k, i;

	rng = seed;
	cur.active = true;
	cur.seed = seed;
	oplog_clear();
	c->m = mesh_new();
	assert_non_null(c->m);
	c->nns = 1 + (int)rn(MAXNS);
	for (k = 0; k < c->nns; k++)
		ns_init(&c->ns[k], k, nsnames[k], (int)rn(41), (int)rn(11),
			(int)rn(5));
	pct = (unsigned[]){100, 35, 8}[rn(3)];
	nops = 20 + rn(100);
	for (k = 0; k < c->nns; k++)
		oplog("namespace %s: %d peer slots, %d policy slots, %d route "
		      "slots; flush after %u%% of the operations",
		      c->ns[k].name, c->ns[k].npeer, c->ns[k].npol,
		      c->ns[k].nroute, pct);

	/* a first population, then random operations */
	for (k = 0; k < c->nns; k++) {
		tns *n = &c->ns[k];

		for (i = 0; i < n->npeer; i++)
			if (chance(65))
				op_peer_new(c, n, i);
		for (i = 0; i < n->npol; i++)
			if (chance(65))
				op_pol_set(c, n, i);
		for (i = 0; i < n->nroute; i++)
			if (chance(65))
				op_route_set(c, n, i);
		if (chance(30))
			op_net_set(c, n);
		if (chance(pct))
			do_flush(c);
	}
	do_flush(c);
	for (op = 0; op < nops; op++) {
		random_op(c);
		if (chance(pct))
			do_flush(c);
	}
	do_flush(c);
	/* sometimes everybody leaves */
	if (chance(25)) {
		for (k = 0; k < c->nns; k++)
			for (i = 0; i < c->ns[k].npeer; i++) {
				op_peer_del(c, &c->ns[k], i);
				if (chance(30))
					do_flush(c);
			}
		do_flush(c);
	}

	t->cases++;
	t->ops += c->nops;
	t->flushes += c->nflush;
	t->frames += c->nframes;
	t->snapshots += c->nsnap;
	t->deltas += c->ndelta;
	t->checked += c->nchecked;
	t->bad += c->nbad;
	mesh_free(c->m);
	for (k = 0; k < c->nns; k++)
		ns_free(&c->ns[k]);
	for (r = c->reps; r; r = next) {
		next = r->next;
		json_decref(r->map);
		free(r);
	}
	free(c);
	cur.active = false;
	oplog_clear();
}

/* Under ASan a case costs about 6 times more: stay in ctest's 300 s. */
#if defined(__SANITIZE_ADDRESS__)
#define DEFAULT_CASES 100
#else
#define DEFAULT_CASES 300
#endif

static void test_random(void **state)
{
	const char *env_seed = getenv("NETMAP_SEED");
	const char *env_cases = getenv("NETMAP_CASES");
	struct totals t = {0};
	unsigned ncases =
	    env_cases ? (unsigned)strtoul(env_cases, NULL, 0) : DEFAULT_CASES;
	double t0 = now_ms();
	unsigned i;

	if (env_seed) {
		cur.verbose = true;
		random_case(strtoull(env_seed, NULL, 0), &t);
	} else {
		for (i = 0; i < ncases; i++)
			random_case(1000 + i, &t);
	}
	cur.verbose = false;
	print_message("random: %zu cases (seeds %s), %zu operations (%zu bad), "
		      "%zu flushes, %zu maps checked, %zu frames (%zu "
		      "SNAPSHOT, %zu DELTA), %.0f ms\n",
		      t.cases, env_seed ? env_seed : "1000..", t.ops, t.bad,
		      t.flushes, t.checked, t.frames, t.snapshots, t.deltas,
		      now_ms() - t0);
}

/* ---- small cases: helpers -------------------------------------------------
 */

struct rec {
	int nf, nr;
	struct {
		char ns[32], name[32], type[16];
		uint64_t serial;
		bool sub_ok;
	} f[128];
	struct {
		char ns[32], route[32], active[32];
	} r[32];
};

static int subtag; /* the subscriber of the small cases */

static void rec_frame(void *sub, const char *ns, const char *name,
		      const json_t *frame, void *arg)
{
	struct rec *x = arg;

	if (x->nf < (int)ARRAY_LEN(x->f)) {
		snprintf(x->f[x->nf].ns, sizeof(x->f[0].ns), "%s", ns);
		snprintf(x->f[x->nf].name, sizeof(x->f[0].name), "%s", name);
		snprintf(x->f[x->nf].type, sizeof(x->f[0].type), "%s",
			 json_string_value(json_object_get(frame, "type"))
			     ?: "?");
		x->f[x->nf].serial = (uint64_t)json_integer_value(
		    json_object_get(frame, "serial"));
		x->f[x->nf].sub_ok = sub == &subtag;
	}
	x->nf++;
}

static void rec_router(const char *ns, const char *route, const char *active,
		       void *arg)
{
	struct rec *x = arg;

	if (x->nr < (int)ARRAY_LEN(x->r)) {
		snprintf(x->r[x->nr].ns, sizeof(x->r[0].ns), "%s", ns);
		snprintf(x->r[x->nr].route, sizeof(x->r[0].route), "%s", route);
		snprintf(x->r[x->nr].active, sizeof(x->r[0].active), "%s",
			 active ? active : "NULL");
	}
	x->nr++;
}

static size_t flush_rec(mesh *m, uint64_t serial, struct rec *x)
{
	mesh_sink sink = {rec_frame, rec_router, NULL, NULL};
	size_t ret;
	int i;

	memset(x, 0, sizeof(*x));
	sink.arg = x;
	ret = mesh_flush(m, serial, &sink);
	assert_false(mesh_dirty(m));
	for (i = 0; i < x->nf && i < (int)ARRAY_LEN(x->f); i++) {
		if (!x->f[i].sub_ok)
			fail_msg("frame for %s/%s with a foreign subscriber",
				 x->f[i].ns, x->f[i].name);
		if (x->f[i].serial != serial)
			fail_msg("frame for %s/%s carries serial %" PRIu64
				 ", the flush's is %" PRIu64,
				 x->f[i].ns, x->f[i].name, x->f[i].serial,
				 serial);
	}
	return ret;
}

static int frames_for(const struct rec *x, const char *ns, const char *name)
{
	int i, k = 0;

	for (i = 0; i < x->nf && i < (int)ARRAY_LEN(x->f); i++)
		k += !strcmp(x->f[i].ns, ns) && !strcmp(x->f[i].name, name);
	return k;
}

static void expect_frame(const struct rec *x, const char *ns, const char *name)
{
	int k = frames_for(x, ns, name);

	if (k != 1)
		fail_msg("%s/%s: %d frames, want 1 (its map changed)", ns, name,
			 k);
}

static void expect_no_frame(const struct rec *x, const char *ns,
			    const char *name)
{
	int k = frames_for(x, ns, name);

	if (k)
		fail_msg("%s/%s: %d frame(s), want none", ns, name, k);
}

static void add_peer(mesh *m, const char *ns, const char *name,
		     const char *addr, const char *labels, bool online)
{
	char key[64], err[512];
	json_t *l = jq(labels), *e = json_array();
	mesh_peer_spec s = {.ns = ns,
			    .name = name,
			    .public_key = key,
			    .address = addr,
			    .labels = l,
			    .endpoints = e,
			    .online = online};
	int rc;

	name_key(name, key);
	rc = peer_set_copied(m, &s, err, sizeof(err));
	if (rc)
		fail_msg("mesh_peer_set(%s/%s) = %d: %s", ns, name, rc, err);
	json_decref(l);
	json_decref(e);
	assert_int_equal(mesh_subscribe(m, ns, name, &subtag), 0);
}

/* Change one thing of a peer added by add_peer. */
static void set_peer(mesh *m, const char *ns, const char *name,
		     const char *addr, const char *labels, bool online,
		     bool expired, bool deleting, bool key)
{
	char kb[64], err[512];
	json_t *l = jq(labels), *e = json_array();
	mesh_peer_spec s = {.ns = ns,
			    .name = name,
			    .public_key = key ? kb : NULL,
			    .address = addr,
			    .labels = l,
			    .endpoints = e,
			    .online = online,
			    .expired = expired,
			    .deleting = deleting};
	int rc;

	name_key(name, kb);
	rc = peer_set_copied(m, &s, err, sizeof(err));
	if (rc)
		fail_msg("mesh_peer_set(%s/%s) = %d: %s", ns, name, rc, err);
	json_decref(l);
	json_decref(e);
}

static void add_policy(mesh *m, const char *ns, const char *name,
		       const char *from, const char *to, const char *ports,
		       bool bidi)
{
	json_t *f = jq(from), *t = jq(to), *p = jq(ports);
	mesh_policy_spec s = {ns, name, f, t, p, bidi};
	char err[512];
	int rc = policy_set_copied(m, &s, err, sizeof(err));

	if (rc)
		fail_msg("mesh_policy_set(%s/%s) = %d: %s", ns, name, rc, err);
	json_decref(f);
	json_decref(t);
	json_decref(p);
}

static void add_route(mesh *m, const char *ns, const char *name,
		      const char *dest, const char *via, const char *forp)
{
	json_t *v = jq(via), *f = jq(forp);
	mesh_route_spec s = {ns, name, dest, v, f};
	char err[512];
	int rc = route_set_copied(m, &s, err, sizeof(err));

	if (rc)
		fail_msg("mesh_route_set(%s/%s) = %d: %s", ns, name, rc, err);
	json_decref(v);
	json_decref(f);
}

/*
 * The readable part of a map: {"peers": {name: allowedIPs}, "rules":
 * {name: rule without its name}, "routes": {name: route without its name}},
 * arrays sorted (allowedIPs but its first).
 */
static json_t *summarize(const json_t *raw)
{
	static const char *const parts[] = {"peers", "rules", "routes"};
	json_t *m = canon(raw), *s = json_object();
	size_t i, j;

	for (i = 0; i < ARRAY_LEN(parts); i++) {
		json_t *o = json_object(), *a = json_object_get(m, parts[i]);

		for (j = 0; j < json_array_size(a); j++) {
			json_t *e = json_array_get(a, j), *v;
			const char *n =
			    json_string_value(json_object_get(e, "name"));

			if (i == 0) {
				v = json_incref(
				    json_object_get(e, "allowedIPs"));
			} else {
				v = json_deep_copy(e);
				json_object_del(v, "name");
			}
			json_object_set_new(o, n ? n : "?", v);
		}
		json_object_set_new(s, parts[i], o);
	}
	json_decref(m);
	return s;
}

#define NONE "{'peers': {}, 'rules': {}, 'routes': {}}"

/* Sort the arrays of a summary as canon() sorts a map's. */
static json_t *summary_canon(json_t *s)
{
	const char *k;
	json_t *v;

	json_object_foreach(json_object_get(s, "peers"), k, v) sort_array(v, 1);
	json_object_foreach(json_object_get(s, "rules"), k, v)
	{
		sort_array(json_object_get(v, "sources"), 0);
		sort_array(json_object_get(v, "destinations"), 0);
		sort_array(json_object_get(v, "ports"), 0);
	}
	return s;
}

static void expect_summary(mesh *m, const char *ns, const char *name,
			   const char *want_text)
{
	json_t *map = mesh_map(m, ns, name), *got;
	json_t *want = summary_canon(jq(want_text));

	if (!map)
		fail_msg("mesh_map(%s/%s) = NULL", ns, name);
	got = summarize(map);
	if (!json_equal(got, want))
		fail_msg("%s/%s:\n  want %s\n  got  %s\n  (whole map %s)", ns,
			 name, D(want), D(got), D(map));
	json_decref(map);
	json_decref(got);
	json_decref(want);
}

static const char *self_field(mesh *m, const char *ns, const char *name,
			      const char *field)
{
	static char buf[4][128];
	static unsigned k;
	json_t *map = mesh_map(m, ns, name);
	const json_t *v = json_object_get(json_object_get(map, "self"), field);
	char *b = buf[k++ % 4];

	if (!map)
		fail_msg("mesh_map(%s/%s) = NULL", ns, name);
	snprintf(b, sizeof(buf[0]), "%s",
		 json_is_string(v) ? json_string_value(v) : D(v));
	json_decref(map);
	return b;
}

/* ---- small cases ------------------------------------------------------------
 */

/* Every field of a map, for one small mesh. */
static void test_map_fields(void **state)
{
	mesh *m = mesh_new();
	char ka[64], kb[64], err[512];
	json_t *ep = jq("['192.0.2.1:51820', '[2001:db8::1]:51820']"), *want;
	json_t *got;
	mesh_peer_spec c = {.ns = "default", .name = "c"};
	struct rec x;

	add_peer(m, "default", "a", "100.64.0.1", "{'role': 'web'}", true);
	add_peer(m, "default", "b", "100.64.0.2", NULL, false);
	{
		/* a again, with endpoints */
		mesh_peer_spec s = {.ns = "default",
				    .name = "a",
				    .public_key = ka,
				    .address = "100.64.0.1",
				    .endpoints = ep,
				    .online = true};

		name_key("a", ka);
		s.labels = NULL;
		assert_int_equal(peer_set_copied(m, &s, err, sizeof(err)), 0);
	}
	/* c has neither key nor address: it takes no part */
	assert_int_equal(peer_set_copied(m, &c, err, sizeof(err)), 0);
	assert_int_equal(mesh_subscribe(m, "default", "c", &subtag), 0);
	add_policy(m, "default", "allow-all", "{}", "{}", NULL, false);
	assert_true(mesh_dirty(m));
	assert_int_equal(flush_rec(m, 5, &x), 3);
	assert_int_equal(x.nf, 3);
	name_key("a", ka);
	name_key("b", kb);

	want = json_pack(
	    "{s:{s:s, s:s, s:s, s:s, s:s, s:s}, s:[{s:s, s:s, s:[], s:[s], "
	    "s:s, s:b}], s:[{s:s, s:[s], s:[]}], s:[]}",
	    "self", "name", "a", "namespace", "default", "address",
	    "100.64.0.1", "cidr", "100.64.0.0/10", "dnsName",
	    "a.default.mesh.local", "publicKey", ka, "peers", "name", "b",
	    "publicKey", kb, "endpoints", "allowedIPs", "100.64.0.2/32",
	    "dnsName", "b.default.mesh.local", "online", 0, "rules", "name",
	    "policy/allow-all/in", "sources", "100.64.0.2/32", "ports",
	    "routes");
	assert_non_null(want);
	{
		json_t *w = canon(want);

		got = mesh_map(m, "default", "a");
		expect_map("mesh_map", "default", "a", w, got);
		json_decref(got);
		json_decref(w);
	}
	json_decref(want);

	/* b sees a with a's endpoints, as given */
	want = json_pack("{s:s, s:s, s:O, s:[s], s:s, s:b}", "name", "a",
			 "publicKey", ka, "endpoints", ep, "allowedIPs",
			 "100.64.0.1/32", "dnsName", "a.default.mesh.local",
			 "online", 1);
	got = mesh_map(m, "default", "b");
	{
		json_t *cg = canon(got), *cw = json_deep_copy(want);
		json_t *e = json_array_get(json_object_get(cg, "peers"), 0);

		sort_array(json_object_get(cw, "endpoints"), 0);
		if (json_array_size(json_object_get(cg, "peers")) != 1 ||
		    !json_equal(e, cw))
			fail_msg("b's peers: want [%s], got %s", D(cw),
				 D(json_object_get(cg, "peers")));
		json_decref(cg);
		json_decref(cw);
	}
	json_decref(got);
	json_decref(want);

	/* c: self with nulls, nothing else */
	want = jq("{'self': {'name': 'c', 'namespace': 'default', "
		  "'address': null, 'cidr': '100.64.0.0/10', "
		  "'dnsName': 'c.default.mesh.local', 'publicKey': null}, "
		  "'peers': [], 'rules': [], 'routes': []}");
	got = mesh_map(m, "default", "c");
	expect_map("mesh_map", "default", "c", want, got);
	json_decref(got);
	json_decref(want);
	assert_int_equal(mesh_map_serial(m, "default", "a"), 5);
	assert_int_equal(mesh_map_serial(m, "default", "c"), 5);

	/* the Network: every map of the namespace changes */
	assert_int_equal(network_set_copied(m, "default", "10.0.0.0/8",
					    "corp.example", err, sizeof(err)),
			 0);
	assert_true(mesh_dirty(m));
	assert_int_equal(flush_rec(m, 6, &x), 3);
	expect_frame(&x, "default", "a");
	expect_frame(&x, "default", "b");
	expect_frame(&x, "default", "c");
	assert_string_equal(self_field(m, "default", "a", "cidr"),
			    "10.0.0.0/8");
	assert_string_equal(self_field(m, "default", "c", "dnsName"),
			    "c.default.corp.example");
	got = mesh_map(m, "default", "b");
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(got, "peers"), 0), "dnsName")),
	    "a.default.corp.example");
	json_decref(got);
	mesh_network_del(m, "default");
	assert_int_equal(flush_rec(m, 7, &x), 3);
	assert_string_equal(self_field(m, "default", "a", "cidr"),
			    MESH_DEFAULT_CIDR);
	assert_string_equal(self_field(m, "default", "a", "dnsName"),
			    "a.default." MESH_DEFAULT_DOMAIN);
	json_decref(ep);
	mesh_free(m);
}

static void four_peers(mesh *m)
{
	add_peer(m, "t", "web-1", "100.64.0.1", "{'role': 'web', 'env': 'a'}",
		 true);
	add_peer(m, "t", "web-2", "100.64.0.2", "{'role': 'web', 'env': 'b'}",
		 true);
	add_peer(m, "t", "db-1", "100.64.0.3", "{'role': 'db', 'env': 'a'}",
		 true);
	add_peer(m, "t", "app-1", "100.64.0.4", NULL, true);
}

static const char *const four[] = {"web-1", "web-2", "db-1", "app-1"};

static const struct {
	const char *from, *to;
	const char *want[4]; /* web-1, web-2, db-1, app-1 */
} selector_cases[] = {
    {"{'matchLabels': {'role': 'web'}}",
     "{'matchLabels': {'role': 'db'}}",
     {"{'peers': {'db-1': ['100.64.0.3/32']}, 'rules': {}, 'routes': {}}",
      "{'peers': {'db-1': ['100.64.0.3/32']}, 'rules': {}, 'routes': {}}",
      "{'peers': {'web-1': ['100.64.0.1/32'], 'web-2': ['100.64.0.2/32']},"
      " 'rules': {'policy/p/in': {'sources': ['100.64.0.1/32', "
      "'100.64.0.2/32'], 'ports': []}}, 'routes': {}}",
      NONE}},
    /* In, and NotIn (which a peer without the label satisfies) */
    {"{'matchExpressions': [{'key': 'env', 'operator': 'In', 'values': "
     "['a']}]}",
     "{'matchExpressions': [{'key': 'role', 'operator': 'NotIn', "
     "'values': ['web']}]}",
     {"{'peers': {'db-1': ['100.64.0.3/32'], 'app-1': ['100.64.0.4/32']},"
      " 'rules': {}, 'routes': {}}",
      NONE,
      "{'peers': {'web-1': ['100.64.0.1/32'], 'app-1': ['100.64.0.4/32']},"
      " 'rules': {'policy/p/in': {'sources': ['100.64.0.1/32'], 'ports': "
      "[]}}, 'routes': {}}",
      "{'peers': {'web-1': ['100.64.0.1/32'], 'db-1': ['100.64.0.3/32']}, "
      "'rules': {'policy/p/in': {'sources': ['100.64.0.1/32', "
      "'100.64.0.3/32'], 'ports': []}}, 'routes': {}}"}},
    /* DoesNotExist, Exists */
    {"{'matchExpressions': [{'key': 'env', 'operator': 'DoesNotExist'}]}",
     "{'matchExpressions': [{'key': 'role', 'operator': 'Exists'}]}",
     {"{'peers': {'app-1': ['100.64.0.4/32']}, 'rules': {'policy/p/in': "
      "{'sources': ['100.64.0.4/32'], 'ports': []}}, 'routes': {}}",
      "{'peers': {'app-1': ['100.64.0.4/32']}, 'rules': {'policy/p/in': "
      "{'sources': ['100.64.0.4/32'], 'ports': []}}, 'routes': {}}",
      "{'peers': {'app-1': ['100.64.0.4/32']}, 'rules': {'policy/p/in': "
      "{'sources': ['100.64.0.4/32'], 'ports': []}}, 'routes': {}}",
      "{'peers': {'web-1': ['100.64.0.1/32'], 'web-2': ['100.64.0.2/32'], "
      "'db-1': ['100.64.0.3/32']}, 'rules': {}, 'routes': {}}"}},
    /* matchLabels and matchExpressions together: both must hold */
    {"{'matchLabels': {'role': 'web'}, 'matchExpressions': [{'key': 'env', "
     "'operator': 'In', 'values': ['b', 'c']}]}",
     "{'matchLabels': {'role': 'db'}}",
     {NONE,
      "{'peers': {'db-1': ['100.64.0.3/32']}, 'rules': {}, 'routes': "
      "{}}",
      "{'peers': {'web-2': ['100.64.0.2/32']}, 'rules': {'policy/p/in': "
      "{'sources': ['100.64.0.2/32'], 'ports': []}}, 'routes': {}}",
      NONE}},
    /* {} is everybody: every peer gets an in-rule from the others */
    {"{}",
     "{}",
     {"{'peers': {'web-2': ['100.64.0.2/32'], 'db-1': ['100.64.0.3/32'], "
      "'app-1': ['100.64.0.4/32']}, 'rules': {'policy/p/in': {'sources': "
      "['100.64.0.2/32', '100.64.0.3/32', '100.64.0.4/32'], 'ports': []}}, "
      "'routes': {}}",
      "{'peers': {'web-1': ['100.64.0.1/32'], 'db-1': ['100.64.0.3/32'], "
      "'app-1': ['100.64.0.4/32']}, 'rules': {'policy/p/in': {'sources': "
      "['100.64.0.1/32', '100.64.0.3/32', '100.64.0.4/32'], 'ports': []}}, "
      "'routes': {}}",
      "{'peers': {'web-1': ['100.64.0.1/32'], 'web-2': ['100.64.0.2/32'], "
      "'app-1': ['100.64.0.4/32']}, 'rules': {'policy/p/in': {'sources': "
      "['100.64.0.1/32', '100.64.0.2/32', '100.64.0.4/32'], 'ports': []}}, "
      "'routes': {}}",
      "{'peers': {'web-1': ['100.64.0.1/32'], 'web-2': ['100.64.0.2/32'], "
      "'db-1': ['100.64.0.3/32']}, 'rules': {'policy/p/in': {'sources': "
      "['100.64.0.1/32', '100.64.0.2/32', '100.64.0.3/32'], 'ports': []}}, "
      "'routes': {}}"}},
    /* null matches nobody: no rule anywhere */
    {"{}", "null", {NONE, NONE, NONE, NONE}},
    /* absent (NULL) matches nobody: the rule exists, with no source */
    {NULL,
     "{'matchLabels': {'role': 'db'}}",
     {NONE, NONE,
      "{'peers': {}, 'rules': {'policy/p/in': {'sources': [], 'ports': "
      "[]}}, 'routes': {}}",
      NONE}},
};

static void test_selectors(void **state)
{
	size_t c, i;

	for (c = 0; c < ARRAY_LEN(selector_cases); c++) {
		mesh *m = mesh_new();
		struct rec x;

		four_peers(m);
		add_policy(m, "t", "p", selector_cases[c].from,
			   selector_cases[c].to, NULL, false);
		flush_rec(m, 1, &x);
		for (i = 0; i < 4; i++)
			expect_summary(m, "t", four[i],
				       selector_cases[c].want[i]);
		mesh_free(m);
	}
}

static const struct {
	const char *in, *out;
} port_cases[] = {
    {NULL, "[]"},
    {"[]", "[]"},
    {"[{'port': 5432}]", "[{'protocol': 'TCP', 'from': 5432, 'to': 5432}]"},
    {"[{'protocol': 'TCP', 'port': 5432, 'endPort': 5432}]",
     "[{'protocol': 'TCP', 'from': 5432, 'to': 5432}]"},
    {"[{'protocol': 'UDP', 'port': 1000, 'endPort': 2000}]",
     "[{'protocol': 'UDP', 'from': 1000, 'to': 2000}]"},
    {"[{'protocol': 'ICMP'}]", "[{'protocol': 'ICMP'}]"},
    {"[{'protocol': 'any', 'port': 53}]",
     "[{'protocol': 'any', 'from': 53, 'to': 53}]"},
    {"[{'protocol': 'UDP'}]", "[{'protocol': 'UDP'}]"},
    {"[{}]", "[{'protocol': 'TCP'}]"},
    {"[{'protocol': 'any'}]", "[{'protocol': 'any'}]"},
    {"[{'protocol': 'TCP', 'port': 1, 'endPort': 65535}]",
     "[{'protocol': 'TCP', 'from': 1, 'to': 65535}]"},
    {"[{'port': 80}, {'protocol': 'UDP', 'port': 53}, {'protocol': "
     "'ICMP'}]",
     "[{'protocol': 'TCP', 'from': 80, 'to': 80}, {'protocol': 'UDP', "
     "'from': 53, 'to': 53}, {'protocol': 'ICMP'}]"},
};

static void test_ports(void **state)
{
	mesh *m = mesh_new();
	uint64_t serial = 1;
	struct rec x;
	size_t c;

	four_peers(m);
	for (c = 0; c < ARRAY_LEN(port_cases); c++) {
		char want[1024];

		add_policy(m, "t", "p", "{'matchLabels': {'role': 'web'}}",
			   "{'matchLabels': {'role': 'db'}}", port_cases[c].in,
			   false);
		flush_rec(m, serial++, &x);
		if (c && strcmp(port_cases[c].out, port_cases[c - 1].out))
			expect_frame(&x, "t", "db-1");
		snprintf(want, sizeof(want),
			 "{'peers': {'web-1': ['100.64.0.1/32'], 'web-2': "
			 "['100.64.0.2/32']}, 'rules': {'policy/p/in': "
			 "{'sources': ['100.64.0.1/32', '100.64.0.2/32'], "
			 "'ports': %s}}, 'routes': {}}",
			 port_cases[c].out);
		expect_summary(m, "t", "db-1", want);
		/* the ports change no peer list */
		expect_summary(
		    m, "t", "web-1",
		    "{'peers': {'db-1': ['100.64.0.3/32']}, 'rules': "
		    "{}, 'routes': {}}");
	}
	mesh_free(m);
}

static void test_bidirectional(void **state)
{
	mesh *m = mesh_new();
	struct rec x;

	four_peers(m);
	add_policy(m, "t", "p", "{'matchLabels': {'role': 'web'}}",
		   "{'matchLabels': {'role': 'db'}}", "[{'port': 5432}]", true);
	flush_rec(m, 1, &x);
	expect_summary(
	    m, "t", "db-1",
	    "{'peers': {'web-1': ['100.64.0.1/32'], 'web-2': "
	    "['100.64.0.2/32']}, 'rules': {'policy/p/in': {'sources': "
	    "['100.64.0.1/32', '100.64.0.2/32'], 'ports': [{'protocol': 'TCP', "
	    "'from': 5432, 'to': 5432}]}}, 'routes': {}}");
	expect_summary(m, "t", "web-1",
		       "{'peers': {'db-1': ['100.64.0.3/32']}, 'rules': "
		       "{'policy/p/out': {'sources': ['100.64.0.3/32'], "
		       "'ports': [{'protocol': 'TCP', 'from': 5432, 'to': "
		       "5432}]}}, 'routes': {}}");
	expect_summary(m, "t", "app-1", NONE);

	/* one way only: web-1 loses its rule, keeps the peer */
	add_policy(m, "t", "p", "{'matchLabels': {'role': 'web'}}",
		   "{'matchLabels': {'role': 'db'}}", "[{'port': 5432}]",
		   false);
	flush_rec(m, 2, &x);
	expect_frame(&x, "t", "web-1");
	expect_frame(&x, "t", "web-2");
	expect_summary(m, "t", "web-1",
		       "{'peers': {'db-1': ['100.64.0.3/32']}, 'rules': {}, "
		       "'routes': {}}");
	assert_int_equal(mesh_map_serial(m, "t", "web-1"), 2);
	mesh_policy_del(m, "t", "p");

	/* a peer in both from and to: in and out, without itself */
	add_policy(m, "t", "q", "{'matchLabels': {'env': 'a'}}", "{}", NULL,
		   true);
	flush_rec(m, 3, &x);
	expect_summary(
	    m, "t", "web-1",
	    "{'peers': {'web-2': ['100.64.0.2/32'], 'db-1': ['100.64.0.3/32'], "
	    "'app-1': ['100.64.0.4/32']}, 'rules': {'policy/q/in': {'sources': "
	    "['100.64.0.3/32'], 'ports': []}, 'policy/q/out': {'sources': "
	    "['100.64.0.2/32', '100.64.0.3/32', '100.64.0.4/32'], 'ports': "
	    "[]}}, 'routes': {}}");
	expect_summary(m, "t", "web-2",
		       "{'peers': {'web-1': ['100.64.0.1/32'], 'db-1': "
		       "['100.64.0.3/32']}, 'rules': {'policy/q/in': "
		       "{'sources': ['100.64.0.1/32', '100.64.0.3/32'], "
		       "'ports': []}}, 'routes': {}}");
	mesh_free(m);
}

static void test_namespace_isolation(void **state)
{
	mesh *m = mesh_new();
	char err[512];
	struct rec x;
	json_t *map;

	add_peer(m, "blue", "a", "100.64.0.1", "{'role': 'web'}", true);
	add_peer(m, "blue", "b", "100.64.0.2", "{'role': 'db'}", true);
	add_peer(m, "green", "a", "100.64.1.1", "{'role': 'web'}", true);
	add_peer(m, "green", "b", "100.64.1.2", "{'role': 'db'}", true);
	add_policy(m, "blue", "all", "{}", "{}", NULL, false);
	add_route(m, "green", "lan", "10.1.0.0/24", "{}", "{}");
	flush_rec(m, 1, &x);
	expect_summary(m, "blue", "a",
		       "{'peers': {'b': ['100.64.0.2/32']}, 'rules': "
		       "{'policy/all/in': {'sources': ['100.64.0.2/32'], "
		       "'ports': []}}, 'routes': {}}");
	/* green: a is the router (first by name), b reaches the LAN via a */
	expect_summary(m, "green", "b",
		       "{'peers': {'a': ['100.64.1.1/32', '10.1.0.0/24']}, "
		       "'rules': {}, 'routes': {'lan': {'destination': "
		       "'10.1.0.0/24', 'via': 'a'}}}");
	expect_summary(m, "green", "a",
		       "{'peers': {'b': ['100.64.1.2/32']}, 'rules': "
		       "{'route/lan': {'sources': ['100.64.1.2/32'], "
		       "'destinations': ['10.1.0.0/24'], 'ports': []}}, "
		       "'routes': {}}");
	assert_string_equal(mesh_route_router(m, "green", "lan"), "a");
	assert_null(mesh_route_router(m, "blue", "lan"));
	assert_int_equal(x.nr, 1);
	assert_string_equal(x.r[0].ns, "green");
	assert_string_equal(x.r[0].active, "a");

	/* a Network in blue changes blue's maps only */
	assert_int_equal(network_set_copied(m, "blue", "100.64.0.0/16",
					    "blue.example", err, sizeof(err)),
			 0);
	flush_rec(m, 2, &x);
	expect_frame(&x, "blue", "a");
	expect_frame(&x, "blue", "b");
	assert_string_equal(self_field(m, "blue", "a", "dnsName"),
			    "a.blue.blue.example");
	assert_string_equal(self_field(m, "green", "a", "dnsName"),
			    "a.green.mesh.local");
	assert_string_equal(self_field(m, "green", "a", "cidr"),
			    "100.64.0.0/10");
	assert_int_equal(mesh_map_serial(m, "green", "a"), 1);

	/* a policy in green: green's peers see each other, blue unchanged */
	add_policy(m, "green", "all", "{}", "{}", NULL, false);
	flush_rec(m, 3, &x);
	expect_frame(&x, "green", "a");
	expect_frame(&x, "green", "b");
	expect_summary(m, "blue", "a",
		       "{'peers': {'b': ['100.64.0.2/32']}, 'rules': "
		       "{'policy/all/in': {'sources': ['100.64.0.2/32'], "
		       "'ports': []}}, 'routes': {}}");
	expect_summary(m, "green", "a",
		       "{'peers': {'b': ['100.64.1.2/32']}, 'rules': "
		       "{'policy/all/in': {'sources': ['100.64.1.2/32'], "
		       "'ports': []}, 'route/lan': {'sources': "
		       "['100.64.1.2/32'], 'destinations': ['10.1.0.0/24'], "
		       "'ports': []}}, 'routes': {}}");
	/* deleting blue's b leaves green's b alone */
	mesh_peer_del(m, "blue", "b");
	flush_rec(m, 4, &x);
	expect_no_frame(&x, "blue", "b");
	assert_null(mesh_map(m, "blue", "b"));
	map = mesh_map(m, "green", "b");
	assert_non_null(map);
	json_decref(map);
	expect_summary(m, "blue", "a",
		       "{'peers': {}, 'rules': {'policy/all/in': {'sources': "
		       "[], 'ports': []}}, 'routes': {}}");
	mesh_free(m);
}

static void expect_router_event(const struct rec *x, const char *ns,
				const char *route, const char *active)
{
	if (x->nr != 1 || strcmp(x->r[0].ns, ns) ||
	    strcmp(x->r[0].route, route) || strcmp(x->r[0].active, active))
		fail_msg("want exactly one router callback %s/%s -> %s, got %d "
			 "(first %s/%s -> %s)",
			 ns, route, active, x->nr, x->nr ? x->r[0].ns : "",
			 x->nr ? x->r[0].route : "",
			 x->nr ? x->r[0].active : "");
}

static void test_routes_failover(void **state)
{
	static const char *const via = "{'matchLabels': {'role': 'router'}}";
	static const char *const forp = "{'matchLabels': {'role': 'web'}}";
	mesh *m = mesh_new();
	struct rec x;
	int i;

	add_peer(m, "d", "r-9", "100.64.0.9", "{'role': 'router'}", true);
	add_peer(m, "d", "r-10", "100.64.0.10", "{'role': 'router'}", false);
	add_peer(m, "d", "w-1", "100.64.0.21", "{'role': 'web'}", true);
	add_peer(m, "d", "w-2", "100.64.0.22", "{'role': 'web'}", true);
	add_peer(m, "d", "x-1", "100.64.0.30", "{'role': 'db'}", true);
	add_route(m, "d", "lan", "10.1.0.0/24", via, forp);
	flush_rec(m, 1, &x);
	expect_router_event(&x, "d", "lan", "r-9");
	assert_string_equal(mesh_route_router(m, "d", "lan"), "r-9");
	expect_summary(m, "d", "w-1",
		       "{'peers': {'r-9': ['100.64.0.9/32', '10.1.0.0/24']}, "
		       "'rules': {}, 'routes': {'lan': {'destination': "
		       "'10.1.0.0/24', 'via': 'r-9'}}}");
	expect_summary(m, "d", "r-9",
		       "{'peers': {'w-1': ['100.64.0.21/32'], 'w-2': "
		       "['100.64.0.22/32']}, 'rules': {'route/lan': "
		       "{'sources': ['100.64.0.21/32', '100.64.0.22/32'], "
		       "'destinations': ['10.1.0.0/24'], 'ports': []}}, "
		       "'routes': {}}");
	expect_summary(m, "d", "r-10", NONE);
	expect_summary(m, "d", "x-1", NONE);

	/* r-10 comes online: first by strcmp ("r-10" < "r-9") */
	set_peer(m, "d", "r-10", "100.64.0.10", "{'role': 'router'}", true,
		 false, false, true);
	flush_rec(m, 2, &x);
	expect_router_event(&x, "d", "lan", "r-10");
	for (i = 0; i < 4; i++)
		expect_frame(&x, "d",
			     (const char *[]){"r-9", "r-10", "w-1", "w-2"}[i]);
	expect_summary(m, "d", "w-2",
		       "{'peers': {'r-10': ['100.64.0.10/32', '10.1.0.0/24']}, "
		       "'rules': {}, 'routes': {'lan': {'destination': "
		       "'10.1.0.0/24', 'via': 'r-10'}}}");
	expect_summary(m, "d", "r-9", NONE);

	/* the router goes offline: the next by name takes over */
	set_peer(m, "d", "r-10", "100.64.0.10", "{'role': 'router'}", false,
		 false, false, true);
	flush_rec(m, 3, &x);
	expect_router_event(&x, "d", "lan", "r-9");
	expect_frame(&x, "d", "w-1");
	expect_frame(&x, "d", "w-2");
	expect_summary(m, "d", "w-1",
		       "{'peers': {'r-9': ['100.64.0.9/32', '10.1.0.0/24']}, "
		       "'rules': {}, 'routes': {'lan': {'destination': "
		       "'10.1.0.0/24', 'via': 'r-9'}}}");

	/* and that one too: no router, nothing routed */
	set_peer(m, "d", "r-9", "100.64.0.9", "{'role': 'router'}", false,
		 false, false, true);
	flush_rec(m, 4, &x);
	expect_router_event(&x, "d", "lan", "NULL");
	assert_null(mesh_route_router(m, "d", "lan"));
	expect_summary(m, "d", "w-1", NONE);
	expect_summary(m, "d", "r-9", NONE);

	/* a router that is not active does not route, online or not */
	set_peer(m, "d", "r-9", "100.64.0.9", "{'role': 'router'}", true, true,
		 false, true);
	flush_rec(m, 5, &x);
	assert_int_equal(x.nr, 0);
	assert_null(mesh_route_router(m, "d", "lan"));

	/* back, and a second route through the same router */
	set_peer(m, "d", "r-10", "100.64.0.10", "{'role': 'router'}", true,
		 false, false, true);
	add_route(m, "d", "dc", "10.9.0.0/16", via, forp);
	flush_rec(m, 6, &x);
	assert_int_equal(x.nr, 2);
	assert_string_equal(mesh_route_router(m, "d", "dc"), "r-10");
	expect_summary(m, "d", "w-1",
		       "{'peers': {'r-10': ['100.64.0.10/32', '10.1.0.0/24', "
		       "'10.9.0.0/16']}, 'rules': {}, 'routes': {'lan': "
		       "{'destination': '10.1.0.0/24', 'via': 'r-10'}, 'dc': "
		       "{'destination': '10.9.0.0/16', 'via': 'r-10'}}}");

	/* a new destination reaches the router's rule and every for-peer */
	add_route(m, "d", "lan", "10.2.0.0/16", via, forp);
	flush_rec(m, 7, &x);
	assert_int_equal(x.nr, 0);
	expect_frame(&x, "d", "w-1");
	expect_frame(&x, "d", "w-2");
	expect_frame(&x, "d", "r-10");
	expect_summary(m, "d", "r-10",
		       "{'peers': {'w-1': ['100.64.0.21/32'], 'w-2': "
		       "['100.64.0.22/32']}, 'rules': {'route/lan': "
		       "{'sources': ['100.64.0.21/32', '100.64.0.22/32'], "
		       "'destinations': ['10.2.0.0/16'], 'ports': []}, "
		       "'route/dc': {'sources': ['100.64.0.21/32', "
		       "'100.64.0.22/32'], 'destinations': ['10.9.0.0/16'], "
		       "'ports': []}}, 'routes': {}}");

	/* a for-peer leaving the selector loses the route */
	set_peer(m, "d", "w-2", "100.64.0.22", "{'role': 'db'}", true, false,
		 false, true);
	flush_rec(m, 8, &x);
	expect_frame(&x, "d", "w-2");
	expect_frame(&x, "d", "r-10");
	expect_summary(m, "d", "w-2", NONE);

	/* the route goes */
	mesh_route_del(m, "d", "dc");
	mesh_route_del(m, "d", "lan");
	flush_rec(m, 9, &x);
	for (i = 0; i < x.nr; i++)
		assert_string_equal(x.r[i].active, "NULL");
	assert_null(mesh_route_router(m, "d", "lan"));
	expect_summary(m, "d", "w-1", NONE);
	expect_summary(m, "d", "r-10", NONE);
	mesh_free(m);
}

/* The router's own key or address changes, and it stays the router. */
static void test_router_identity(void **state)
{
	mesh *m = mesh_new();
	struct rec x;
	json_t *map;
	char key[64];

	add_peer(m, "d", "r-1", "100.64.0.1", "{'role': 'router'}", true);
	add_peer(m, "d", "w-1", "100.64.0.21", "{'role': 'web'}", true);
	add_route(m, "d", "lan", "10.1.0.0/24",
		  "{'matchLabels': {'role': 'router'}}",
		  "{'matchLabels': {'role': 'web'}}");
	flush_rec(m, 1, &x);
	assert_string_equal(mesh_route_router(m, "d", "lan"), "r-1");

	/* a new key: w-1's entry of r-1 changes */
	{
		char err[512];
		json_t *l = jq("{'role': 'router'}"), *e = json_array();
		mesh_peer_spec s = {.ns = "d",
				    .name = "r-1",
				    .public_key = key,
				    .address = "100.64.0.1",
				    .labels = l,
				    .endpoints = e,
				    .online = true};

		name_key("r-1 again", key);
		assert_int_equal(peer_set_copied(m, &s, err, sizeof(err)), 0);
		json_decref(l);
		json_decref(e);
	}
	flush_rec(m, 2, &x);
	assert_string_equal(mesh_route_router(m, "d", "lan"), "r-1");
	map = mesh_map(m, "d", "w-1");
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(map, "peers"), 0), "publicKey")),
	    key);
	json_decref(map);
	expect_frame(&x, "d", "w-1");
	assert_int_equal(mesh_map_serial(m, "d", "w-1"), 2);

	/* a new address: w-1's allowedIPs of r-1 change */
	set_peer(m, "d", "r-1", "100.64.0.9", "{'role': 'router'}", true, false,
		 false, true);
	flush_rec(m, 3, &x);
	expect_summary(m, "d", "w-1",
		       "{'peers': {'r-1': ['100.64.0.9/32', '10.1.0.0/24']}, "
		       "'rules': {}, 'routes': {'lan': {'destination': "
		       "'10.1.0.0/24', 'via': 'r-1'}}}");
	expect_frame(&x, "d", "w-1");
	mesh_free(m);
}

static void test_expiry_deleting(void **state)
{
	static const char *const two =
	    "{'peers': {'b': ['100.64.0.2/32']}, 'rules': {'policy/all/in': "
	    "{'sources': ['100.64.0.2/32'], 'ports': []}}, 'routes': {}}";
	static const char *const three =
	    "{'peers': {'b': ['100.64.0.2/32'], 'c': ['100.64.0.3/32']}, "
	    "'rules': {'policy/all/in': {'sources': ['100.64.0.2/32', "
	    "'100.64.0.3/32'], 'ports': []}}, 'routes': {}}";
	mesh *m = mesh_new();
	struct rec x;

	add_peer(m, "e", "a", "100.64.0.1", NULL, true);
	add_peer(m, "e", "b", "100.64.0.2", NULL, true);
	add_peer(m, "e", "c", "100.64.0.3", NULL, true);
	add_policy(m, "e", "all", "{}", "{}", NULL, false);
	flush_rec(m, 1, &x);
	expect_summary(m, "e", "a", three);

	/* expired: gone from the others, an empty map of its own */
	set_peer(m, "e", "c", "100.64.0.3", NULL, true, true, false, true);
	flush_rec(m, 2, &x);
	expect_frame(&x, "e", "a");
	expect_frame(&x, "e", "b");
	expect_frame(&x, "e", "c");
	expect_summary(m, "e", "a", two);
	expect_summary(m, "e", "c", NONE);
	assert_string_equal(self_field(m, "e", "c", "address"), "100.64.0.3");

	/* renewed */
	set_peer(m, "e", "c", "100.64.0.3", NULL, true, false, false, true);
	flush_rec(m, 3, &x);
	expect_frame(&x, "e", "c");
	expect_summary(m, "e", "a", three);

	/* being deleted */
	set_peer(m, "e", "c", "100.64.0.3", NULL, true, false, true, true);
	flush_rec(m, 4, &x);
	expect_summary(m, "e", "a", two);
	expect_summary(m, "e", "c", NONE);

	/* no key */
	set_peer(m, "e", "c", "100.64.0.3", NULL, true, false, false, false);
	flush_rec(m, 5, &x);
	expect_summary(m, "e", "a", two);
	expect_summary(m, "e", "c", NONE);
	assert_string_equal(self_field(m, "e", "c", "publicKey"), "null");

	/* no address */
	set_peer(m, "e", "c", NULL, NULL, true, false, false, true);
	flush_rec(m, 6, &x);
	expect_summary(m, "e", "a", two);
	expect_summary(m, "e", "c", NONE);
	assert_string_equal(self_field(m, "e", "c", "address"), "null");

	/* offline is still active: it stays in the maps */
	set_peer(m, "e", "c", "100.64.0.3", NULL, false, false, false, true);
	flush_rec(m, 7, &x);
	expect_summary(m, "e", "a", three);
	mesh_free(m);
}

static void test_peer_del(void **state)
{
	mesh *m = mesh_new();
	struct rec x;

	add_peer(m, "d", "a", "100.64.0.1", NULL, true);
	add_peer(m, "d", "b", "100.64.0.2", NULL, true);
	add_peer(m, "d", "c", "100.64.0.3", NULL, true);
	add_policy(m, "d", "all", "{}", "{}", NULL, true);
	assert_int_equal(flush_rec(m, 1, &x), 3);

	mesh_peer_del(m, "d", "c");
	assert_null(mesh_map(m, "d", "c"));
	assert_null(mesh_subscriber(m, "d", "c"));
	assert_int_equal(mesh_map_serial(m, "d", "c"), 0);
	assert_true(mesh_dirty(m));
	assert_int_equal(flush_rec(m, 2, &x), 2);
	expect_frame(&x, "d", "a");
	expect_frame(&x, "d", "b");
	expect_no_frame(&x, "d", "c");
	expect_summary(m, "d", "a",
		       "{'peers': {'b': ['100.64.0.2/32']}, 'rules': "
		       "{'policy/all/in': {'sources': ['100.64.0.2/32'], "
		       "'ports': []}, 'policy/all/out': {'sources': "
		       "['100.64.0.2/32'], 'ports': []}}, 'routes': {}}");
	assert_int_equal(mesh_subscribe(m, "d", "c", &subtag), -ENOENT);

	/* unknown: nothing happens */
	mesh_peer_del(m, "d", "zzz");
	mesh_peer_del(m, "nowhere", "a");
	mesh_policy_del(m, "d", "zzz");
	mesh_route_del(m, "d", "zzz");
	assert_false(mesh_dirty(m));
	assert_int_equal(flush_rec(m, 3, &x), 0);
	assert_int_equal(x.nf, 0);

	/* back again: a new peer, whose subscriber was forgotten */
	set_peer(m, "d", "c", "100.64.0.3", NULL, true, false, false, true);
	assert_null(mesh_subscriber(m, "d", "c"));
	assert_int_equal(flush_rec(m, 4, &x), 3);
	expect_no_frame(&x, "d", "c");
	assert_int_equal(mesh_map_serial(m, "d", "c"), 4);

	/* everybody goes */
	mesh_peer_del(m, "d", "a");
	mesh_peer_del(m, "d", "b");
	mesh_peer_del(m, "d", "c");
	flush_rec(m, 5, &x);
	assert_int_equal(x.nf, 0);
	mesh_free(m);
}

static void test_serials(void **state)
{
	mesh *m = mesh_new();
	json_t *l;
	struct rec x;

	assert_null(mesh_map(m, "s", "a"));
	assert_int_equal(mesh_map_serial(m, "s", "a"), 0);
	assert_int_equal(mesh_subscribe(m, "s", "a", &subtag), -ENOENT);
	assert_null(mesh_subscriber(m, "s", "a"));
	assert_null(mesh_route_router(m, "s", "r"));
	assert_false(mesh_dirty(m));
	assert_int_equal(flush_rec(m, 1, &x), 0);

	add_peer(m, "s", "a", "100.64.0.1", NULL, true);
	add_peer(m, "s", "b", "100.64.0.2", NULL, true);
	add_policy(m, "s", "all", "{}", "{}", NULL, false);
	assert_ptr_equal(mesh_subscriber(m, "s", "a"), &subtag);
	assert_int_equal(flush_rec(m, 10, &x), 2);
	assert_int_equal(mesh_map_serial(m, "s", "a"), 10);
	assert_int_equal(mesh_map_serial(m, "s", "b"), 10);
	assert_int_equal(x.nf, 2);
	assert_string_equal(x.f[0].type, "SNAPSHOT");

	/* nothing to do */
	assert_int_equal(flush_rec(m, 11, &x), 0);
	assert_int_equal(x.nf, 0);
	assert_int_equal(mesh_map_serial(m, "s", "a"), 10);

	/* b goes offline: a's entry of b changes */
	set_peer(m, "s", "b", "100.64.0.2", NULL, false, false, false, true);
	assert_true(mesh_dirty(m));
	flush_rec(m, 12, &x);
	expect_frame(&x, "s", "a");
	assert_int_equal(mesh_map_serial(m, "s", "a"), 12);

	/* unsubscribed: no frame, the serial still moves */
	assert_int_equal(mesh_subscribe(m, "s", "a", NULL), 0);
	assert_null(mesh_subscriber(m, "s", "a"));
	l = jq("{'role': 'x'}");
	{
		char key[64], err[512];
		json_t *ep = jq("['192.0.2.9:1']");
		mesh_peer_spec s = {.ns = "s",
				    .name = "b",
				    .public_key = key,
				    .address = "100.64.0.2",
				    .labels = l,
				    .endpoints = ep};

		name_key("b", key);
		assert_int_equal(peer_set_copied(m, &s, err, sizeof(err)), 0);
		json_decref(ep);
	}
	json_decref(l);
	assert_true(flush_rec(m, 13, &x) >= 1);
	expect_no_frame(&x, "s", "a");
	assert_int_equal(mesh_map_serial(m, "s", "a"), 13);
	mesh_free(m);
}

/* A NULL sink: the changes only move the serials. */
static void test_null_sink(void **state)
{
	mesh *m = mesh_new();
	struct rec x;

	add_peer(m, "n", "a", "100.64.0.1", NULL, true);
	add_peer(m, "n", "b", "100.64.0.2", NULL, true);
	add_policy(m, "n", "all", "{}", "{}", NULL, false);
	assert_int_equal(mesh_flush(m, 1, NULL), 2);
	assert_int_equal(mesh_map_serial(m, "n", "a"), 1);
	/* a is subscribed and its map changes (b goes offline) */
	set_peer(m, "n", "b", "100.64.0.2", NULL, false, false, false, true);
	assert_true(mesh_flush(m, 2, NULL) >= 1);
	assert_false(mesh_dirty(m));
	assert_int_equal(mesh_map_serial(m, "n", "a"), 2);
	/* the changes were consumed */
	assert_int_equal(flush_rec(m, 3, &x), 0);
	assert_int_equal(x.nf, 0);
	mesh_free(m);
}

/* ---- bad input: -EINVAL, a message naming the field, nothing changed --- */

static void snapshot_maps(mesh *m, json_t **maps)
{
	static const char *const names[] = {"a", "b"};
	size_t i;

	for (i = 0; i < 2; i++)
		maps[i] = mesh_map(m, "v", names[i]);
}

static void expect_unchanged(mesh *m, json_t **before, const char *what)
{
	static uint64_t serial = 100;
	json_t *now[2];
	struct rec x;
	size_t i;

	if (mesh_dirty(m))
		fail_msg("%s failed, yet mesh_dirty() is true", what);
	snapshot_maps(m, now);
	for (i = 0; i < 2; i++) {
		if (!json_equal(before[i], now[i]))
			fail_msg("%s failed, yet a map changed:\n  before %s\n"
				 "  after  %s",
				 what, D(before[i]), D(now[i]));
		json_decref(now[i]);
	}
	if (!same_str(mesh_route_router(m, "v", "lan"), "b"))
		fail_msg("%s failed, yet the router changed", what);
	if (flush_rec(m, serial++, &x) != 0 || x.nf || x.nr)
		fail_msg("%s failed, yet a flush found changes", what);
}

static void expect_einval(int rc, const char *err, const char *hint,
			  const char *what)
{
	if (rc != -EINVAL)
		fail_msg("%s = %d, want -EINVAL", what, rc);
	if (!err[0])
		fail_msg("%s: -EINVAL without a message", what);
	if (!strcasestr(err, hint))
		fail_msg("%s: message \"%s\" does not name %s", what, err,
			 hint);
}

static void test_bad_input(void **state)
{
	mesh *m = mesh_new();
	json_t *before[2];
	char err[512], what[512], key[64];
	struct rec x;
	size_t i, j;

	add_peer(m, "v", "a", "100.64.0.1", "{'role': 'web'}", true);
	add_peer(m, "v", "b", "100.64.0.2", "{'role': 'router'}", true);
	add_policy(m, "v", "p", "{}", "{}", "[{'port': 80}]", true);
	add_route(m, "v", "lan", "10.1.0.0/24",
		  "{'matchLabels': {'role': 'router'}}", "{}");
	assert_int_equal(network_set_copied(m, "v", "100.64.0.0/10",
					    "mesh.local", err, sizeof(err)),
			 0);
	flush_rec(m, 1, &x);
	snapshot_maps(m, before);
	rng = 7;

	/* peers: a replacement of a, and a new peer c */
	for (j = 0; j < 2; j++) {
		const char *name = j ? "c" : "a";
		mesh_peer_spec s = {.ns = "v",
				    .name = name,
				    .public_key = key,
				    .address = "100.64.0.9",
				    .online = true};

		for (i = 0; i < 8; i++) {
			bad_key(key);
			snprintf(what, sizeof(what),
				 "mesh_peer_set(v/%s, key %s)", name, key);
			expect_einval(peer_set_copied(m, &s, err, sizeof(err)),
				      err, "key", what);
			expect_unchanged(m, before, what);
		}
		name_key(name, key);
		for (i = 0; i < ARRAY_LEN(bad_addrs); i++) {
			s.address = bad_addrs[i];
			snprintf(what, sizeof(what),
				 "mesh_peer_set(v/%s, address %s)", name,
				 bad_addrs[i]);
			expect_einval(peer_set_copied(m, &s, err, sizeof(err)),
				      err, "address", what);
			expect_unchanged(m, before, what);
		}
		if (j)
			assert_null(mesh_map(m, "v", "c"));
	}

	/* policies: a replacement of p, and a new policy q */
	for (j = 0; j < 2; j++) {
		const char *name = j ? "q" : "p";

		for (i = 0; i < ARRAY_LEN(bad_selectors); i++) {
			json_t *bad = jq(bad_selectors[i]), *all = jq("{}");
			mesh_policy_spec s = {"v", name, bad, all, NULL, false};

			snprintf(what, sizeof(what),
				 "mesh_policy_set(v/%s, from %s)", name,
				 bad_selectors[i]);
			expect_einval(
			    policy_set_copied(m, &s, err, sizeof(err)), err,
			    "from", what);
			expect_unchanged(m, before, what);
			s.from = all;
			s.to = bad;
			snprintf(what, sizeof(what),
				 "mesh_policy_set(v/%s, to %s)", name,
				 bad_selectors[i]);
			expect_einval(
			    policy_set_copied(m, &s, err, sizeof(err)), err,
			    "to", what);
			expect_unchanged(m, before, what);
			json_decref(bad);
			json_decref(all);
		}
		for (i = 0; i < ARRAY_LEN(bad_ports); i++) {
			json_t *p = jq(bad_ports[i].ports), *all = jq("{}");
			mesh_policy_spec s = {"v", name, all, all, p, true};

			snprintf(what, sizeof(what),
				 "mesh_policy_set(v/%s, ports %s)", name,
				 bad_ports[i].ports);
			expect_einval(
			    policy_set_copied(m, &s, err, sizeof(err)), err,
			    bad_ports[i].hint, what);
			expect_unchanged(m, before, what);
			json_decref(p);
			json_decref(all);
		}
	}

	/* routes: a replacement of lan, and a new route dc */
	for (j = 0; j < 2; j++) {
		const char *name = j ? "dc" : "lan";
		json_t *all = jq("{}");

		for (i = 0; i < ARRAY_LEN(bad_dests); i++) {
			mesh_route_spec s = {"v", name, bad_dests[i], all, all};

			snprintf(what, sizeof(what),
				 "mesh_route_set(v/%s, destination %s)", name,
				 bad_dests[i]);
			expect_einval(route_set_copied(m, &s, err, sizeof(err)),
				      err, "destination", what);
			expect_unchanged(m, before, what);
		}
		for (i = 0; i < ARRAY_LEN(bad_selectors); i++) {
			json_t *bad = jq(bad_selectors[i]);
			mesh_route_spec s = {"v", name, "10.3.0.0/16", bad,
					     all};

			snprintf(what, sizeof(what),
				 "mesh_route_set(v/%s, via %s)", name,
				 bad_selectors[i]);
			expect_einval(route_set_copied(m, &s, err, sizeof(err)),
				      err, "via", what);
			expect_unchanged(m, before, what);
			s.via = all;
			s.for_peers = bad;
			snprintf(what, sizeof(what),
				 "mesh_route_set(v/%s, for %s)", name,
				 bad_selectors[i]);
			expect_einval(route_set_copied(m, &s, err, sizeof(err)),
				      err, "for", what);
			expect_unchanged(m, before, what);
			json_decref(bad);
		}
		json_decref(all);
	}

	/* networks: v has one; w has none */
	for (j = 0; j < 2; j++) {
		const char *ns = j ? "w" : "v";

		for (i = 0; i < ARRAY_LEN(bad_cidrs); i++) {
			snprintf(what, sizeof(what),
				 "mesh_network_set(%s, %s, mesh.local)", ns,
				 bad_cidrs[i]);
			expect_einval(network_set_copied(m, ns, bad_cidrs[i],
							 "mesh.local", err,
							 sizeof(err)),
				      err, "cidr", what);
			expect_unchanged(m, before, what);
		}
		for (i = 0; i < ARRAY_LEN(bad_domains); i++) {
			snprintf(what, sizeof(what),
				 "mesh_network_set(%s, 10.0.0.0/8, %s)", ns,
				 bad_domains[i]);
			expect_einval(network_set_copied(m, ns, "10.0.0.0/8",
							 bad_domains[i], err,
							 sizeof(err)),
				      err, "domain", what);
			expect_unchanged(m, before, what);
		}
	}
	json_decref(before[0]);
	json_decref(before[1]);
	mesh_free(m);
}

/* ---- scale: a join costs the peers that can see it ---------------------- */

static void count_frame(void *sub, const char *ns, const char *name,
			const json_t *frame, void *arg)
{
	(*(int *)sub)++;
	(*(size_t *)arg)++;
}

static void test_scale(void **state)
{
	enum { N = 5000, G = 250, X = 500 };
	mesh_sink sink = {count_frame, NULL, NULL, NULL};
	size_t frames = 0, ret, want, seen = 0, hi;
	double t0, t1, t2, t3, t4, t5, t6;
	mesh_stats st;
	char err[512];
	json_t *map, *ref;
	tns n;
	mesh *m;
	int *cnt, i, q, x;

	sink.arg = &frames;
	rng = 42;
	ns_init(&n, 0, "default", N + 1, X, 0);
	cnt = xcalloc(N + 1, sizeof(int));
	m = mesh_new();
	t0 = now_ms();
	for (i = 0; i <= N; i++) {
		tpeer *p = &n.peers[i];
		char g[16];

		snprintf(p->name, sizeof(p->name), i == N ? "n-new" : "n-%04d",
			 i);
		snprintf(g, sizeof(g), "g%d", i == N ? 17 : i % G);
		p->has_key = p->has_addr = true;
		rand_key(p->key);
		snprintf(p->addr, sizeof(p->addr), "100.%d.%d.%d",
			 64 + (i >> 16), (i >> 8) & 255, i & 255);
		p->labels = json_pack("{s:s}", "group", g);
		p->endpoints = json_array();
		p->online = true;
	}
	for (x = 0; x < X; x++) {
		tpol *P = &n.pols[x];
		char f[16], t[16];

		snprintf(f, sizeof(f), "g%d", x % G);
		snprintf(t, sizeof(t), "g%d", (x * 7 + 3) % G);
		P->from = json_pack("{s:{s:s}}", "matchLabels", "group", f);
		P->to = json_pack("{s:{s:s}}", "matchLabels", "group", t);
		P->ports = json_pack("[{s:i}]", "port", 443);
		P->bidi = x % 3 == 0;
		P->exists = true;
	}
	for (i = 0; i < N; i++) {
		tpeer *p = &n.peers[i];
		mesh_peer_spec s = peer_spec(&n, p, p);

		p->exists = true;
		assert_int_equal(mesh_peer_set(m, &s, err, sizeof(err)), 0);
		assert_int_equal(mesh_subscribe(m, "default", p->name, &cnt[i]),
				 0);
	}
	for (x = 0; x < X; x++) {
		tpol *P = &n.pols[x];
		mesh_policy_spec s = {"default", P->name,  P->from,
				      P->to,	 P->ports, P->bidi};

		assert_int_equal(mesh_policy_set(m, &s, err, sizeof(err)), 0);
	}
	t1 = now_ms();
	ret = mesh_flush(m, 1, &sink);
	t2 = now_ms();
	assert_int_equal(ret, N);
	assert_int_equal(frames, N);

	/* one peer joins */
	memset(cnt, 0, (N + 1) * sizeof(int));
	frames = 0;
	{
		tpeer *p = &n.peers[N];
		mesh_peer_spec s = peer_spec(&n, p, p);

		p->exists = true;
		t3 = now_ms();
		assert_int_equal(mesh_peer_set(m, &s, err, sizeof(err)), 0);
		assert_int_equal(mesh_subscribe(m, "default", p->name, &cnt[N]),
				 0);
		ret = mesh_flush(m, 2, &sink);
		t4 = now_ms();
	}
	ref_build(&n);
	for (q = 0; q <= N; q++) {
		int w = q == N || ref_visible(&n, N, q);

		seen += q != N && w;
		if (cnt[q] != w)
			fail_msg("join: %s got %d frame(s), want %d (%s)",
				 n.peers[q].name, cnt[q], w,
				 w ? "it sees the new peer"
				   : "its map did not change");
	}
	want = seen + 1;
	assert_int_equal(frames, want);
	assert_int_equal(ret, want);
	ref = ref_map(&n, N);
	map = mesh_map(m, "default", "n-new");
	expect_map("mesh_map", "default", "n-new", ref, map);
	json_decref(map);
	json_decref(ref);
	for (q = 0; q < N && !ref_visible(&n, N, q); q++)
		;
	if (q < N) {
		ref = ref_map(&n, q);
		map = mesh_map(m, "default", n.peers[q].name);
		expect_map("mesh_map", "default", n.peers[q].name, ref, map);
		json_decref(map);
		json_decref(ref);
	}

	/* one policy's ports change: the maps with its rules change */
	memset(cnt, 0, (N + 1) * sizeof(int));
	frames = 0;
	x = 17;
	json_decref(n.pols[x].ports);
	n.pols[x].ports = json_pack("[{s:i}]", "port", 8443);
	{
		tpol *P = &n.pols[x];
		mesh_policy_spec s = {"default", P->name,  P->from,
				      P->to,	 P->ports, P->bidi};

		t5 = now_ms();
		assert_int_equal(mesh_policy_set(m, &s, err, sizeof(err)), 0);
		ret = mesh_flush(m, 3, &sink);
		t6 = now_ms();
	}
	want = 0;
	hi = 0;
	for (q = 0; q <= N; q++) {
		bool w = TO(&n, x, q) || (n.pols[x].bidi && FROM(&n, x, q));

		want += w;
		hi += TO(&n, x, q) || FROM(&n, x, q);
		if (w && cnt[q] != 1)
			fail_msg("policy change: %s got %d frames, want 1",
				 n.peers[q].name, cnt[q]);
	}
	if (frames < want || frames > hi)
		fail_msg("policy change: %zu frames, want between %zu (the "
			 "maps with its rules) and %zu (|from|+|to|)",
			 frames, want, hi);
	assert_int_equal(ret, frames);
	mesh_get_stats(m, &st);
	assert_int_equal(st.peers, N + 1);
	assert_int_equal(st.active_peers, N + 1);
	assert_int_equal(st.policies, X);

	print_message("scale: %d peers in %d groups, %d policies: set-up %.0f "
		      "ms, first flush %.0f ms (%d frames); one join %.2f ms "
		      "-> %zu frames (%zu peers see it); one policy's ports "
		      "%.2f ms -> %zu frames\n",
		      N, G, X, t1 - t0, t2 - t1, N, t4 - t3, seen + 1, seen,
		      t6 - t5, frames);
	mesh_free(m);
	ns_free(&n);
	free(cnt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_map_fields),
	    cmocka_unit_test(test_selectors),
	    cmocka_unit_test(test_ports),
	    cmocka_unit_test(test_bidirectional),
	    cmocka_unit_test(test_namespace_isolation),
	    cmocka_unit_test(test_routes_failover),
	    cmocka_unit_test(test_router_identity),
	    cmocka_unit_test(test_expiry_deleting),
	    cmocka_unit_test(test_peer_del),
	    cmocka_unit_test(test_serials),
	    cmocka_unit_test(test_null_sink),
	    cmocka_unit_test(test_bad_input),
	    cmocka_unit_test(test_random),
	    cmocka_unit_test(test_scale),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
