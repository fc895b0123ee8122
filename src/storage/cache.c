/*
 * cache.c -- see cache.h. Objects live in a red-black tree by key (sorted
 * LIST and continue tokens for free); events in a ring of fixed size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "storage/cache.h"

#define ROOT "/registry/"
#define PAGE 10000

RB_HEAD(cache_tree, cache_obj);

static int obj_cmp(cache_obj *a, cache_obj *b)
{
	return strcmp(a->key, b->key);
}

/* libbsd's RB_GENERATE_STATIC needs a __unused it does not define, so the
 * tree functions are global, named after the tree (cache_tree_RB_*). */
RB_PROTOTYPE(cache_tree, cache_obj, node, obj_cmp)
RB_GENERATE(cache_tree, cache_obj, node, obj_cmp)

/* A writer's hint (cache_hint): borrowed pointers, keyed by store key. */
typedef struct cache_hint_ent {
	const char *key;
	const char *value;
	size_t len;
	const json_t *obj;
	RB_ENTRY(cache_hint_ent) node;
} cache_hint_ent;

RB_HEAD(cache_hints, cache_hint_ent);

static int hint_cmp(cache_hint_ent *a, cache_hint_ent *b)
{
	return strcmp(a->key, b->key);
}

RB_PROTOTYPE(cache_hints, cache_hint_ent, node, hint_cmp)
RB_GENERATE(cache_hints, cache_hint_ent, node, hint_cmp)

struct cache_watcher {
	char *prefix;
	size_t prefix_len;
	cache_watch_fn fn;
	void *arg;
	bool dead;
	TAILQ_ENTRY(cache_watcher) link;
};

TAILQ_HEAD(watcher_list, cache_watcher);

struct cache {
	store *s;
	store_watch *sw;
	struct cache_tree tree; /* ordered: LIST and continue */
	cache_obj **index;	/* by key hash: GET; nbuckets, a power of 2 */
	size_t nbuckets;
	struct cache_hints hints;
	size_t count;
	int64_t rev;
	/* The ring: every event with revision > oldest_after is in it. */
	cache_event **ring;
	size_t cap, head, n;
	int64_t oldest_after;
	struct watcher_list watchers;
	size_t nwatchers;
	int dispatching; /* depth: removal is deferred while > 0 */
	bool has_dead;
	void (*notify)(void *);
	void *notify_arg;
};

/* ---- objects and events --------------------------------------------- */

void cache_obj_ref(cache_obj *o)
{
	o->refs++;
}

void cache_obj_unref(cache_obj *o)
{
	if (!o || --o->refs > 0)
		return;
	free(o->key);
	free(o->name);
	free(o->ns);
	free(o->json);
	json_decref(o->labels);
	free(o);
}

json_t *cache_obj_parse(const cache_obj *o)
{
	return json_loadb(o->json, o->len, 0, NULL);
}

/* Make an object from parsed (borrowed, modified: its resourceVersion is
 * set to rev). NULL if it has no metadata.name or out of memory. */
static cache_obj *obj_make(const char *key, json_t *parsed, int64_t rev,
			   int64_t create_rev)
{
	json_t *md = json_object_get(parsed, "metadata");
	const char *name = json_string_value(json_object_get(md, "name"));
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	json_t *labels = json_object_get(md, "labels");
	char rv[24];
	cache_obj *o;

	if (!json_is_object(md) || !name)
		return NULL;
	snprintf(rv, sizeof rv, "%lld", (long long)rev);
	json_object_set_new(md, "resourceVersion", json_string(rv));
	o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->refs = 1;
	o->key = strdup(key);
	o->name = strdup(name);
	o->ns = ns && *ns ? strdup(ns) : NULL;
	o->json = json_dumps(parsed, JSON_COMPACT);
	o->rev = rev;
	o->create_rev = create_rev;
	if (json_is_object(labels) && json_object_size(labels) > 0)
		o->labels = json_incref(labels);
	if (!o->key || !o->name || (ns && *ns && !o->ns) || !o->json) {
		cache_obj_unref(o);
		return NULL;
	}
	o->len = strlen(o->json);
	return o;
}

/* Splice "resourceVersion":"<rev>" into value, which json_dumps wrote
 * from an object in canonical order: {"apiVersion":"..","kind":"..",
 * "metadata":{...}. Returns a new string, or NULL if value is not in that
 * shape (then the caller parses it). */
static char *splice_rv(const char *value, size_t len, int64_t rev,
		       size_t *outlen)
{
	static const char *const lead[] = {
	    "{\"apiVersion\":\"", "\",\"kind\":\"", "\",\"metadata\":{"};
	const char *p = value, *end = value + len;
	char rv[48], *out;
	size_t at, rl;

	for (int i = 0; i < 3; i++) {
		size_t l = strlen(lead[i]);

		if ((size_t)(end - p) < l || memcmp(p, lead[i], l))
			return NULL;
		p += l;
		if (i == 2)
			break;
		/* A plain string: no escapes, so the next quote ends it. */
		while (p < end && *p != '"' && *p != '\\')
			p++;
		if (p >= end || *p != '"')
			return NULL;
	}
	at = (size_t)(p - value);
	rl = (size_t)snprintf(rv, sizeof rv, "\"resourceVersion\":\"%lld\"%s",
			      (long long)rev, p < end && *p == '}' ? "" : ",");
	out = malloc(len + rl + 1);
	if (!out)
		return NULL;
	memcpy(out, value, at);
	memcpy(out + at, rv, rl);
	memcpy(out + at + rl, value + at, len - at);
	out[len + rl] = '\0';
	*outlen = len + rl;
	return out;
}

/* The object for a PUT of our own writer, from its hint; NULL when there
 * is no usable hint. */
static cache_obj *obj_from_hint(cache *c, const store_event *se)
{
	cache_hint_ent probe = {.key = se->kv.key}, *h;
	const json_t *md, *labels;
	const char *name, *ns;
	cache_obj *o;

	h = RB_FIND(cache_hints, &c->hints, &probe);
	if (!h || h->len != se->kv.value_len ||
	    memcmp(h->value, se->kv.value, h->len))
		return NULL;
	md = json_object_get(h->obj, "metadata");
	name = json_string_value(json_object_get(md, "name"));
	ns = json_string_value(json_object_get(md, "namespace"));
	labels = json_object_get(md, "labels");
	if (!name)
		return NULL;
	o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->refs = 1;
	o->key = strdup(se->kv.key);
	o->name = strdup(name);
	o->ns = ns && *ns ? strdup(ns) : NULL;
	o->json = splice_rv(se->kv.value, se->kv.value_len, se->kv.mod_revision,
			    &o->len);
	o->rev = se->kv.mod_revision;
	o->create_rev = se->kv.create_revision;
	if (json_is_object(labels) && json_object_size(labels) > 0)
		o->labels = json_deep_copy(labels);
	if (!o->key || !o->name || (ns && *ns && !o->ns) || !o->json) {
		cache_obj_unref(o);
		return NULL;
	}
	return o;
}

void cache_hint(cache *c, const char *key, const char *value, size_t value_len,
		const json_t *obj)
{
	cache_hint_ent *h = calloc(1, sizeof(*h)), *old;

	if (!h)
		return;
	*h = (cache_hint_ent){
	    .key = key, .value = value, .len = value_len, .obj = obj};
	old = RB_INSERT(cache_hints, &c->hints, h);
	if (old) {
		/* A newer write of the same key: it wins. */
		old->key = key;
		old->value = value;
		old->len = value_len;
		old->obj = obj;
		free(h);
	}
}

void cache_hint_drop(cache *c, const char *key, const char *value)
{
	cache_hint_ent probe = {.key = key}, *h;

	h = RB_FIND(cache_hints, &c->hints, &probe);
	if (h && h->value == value) {
		RB_REMOVE(cache_hints, &c->hints, h);
		free(h);
	}
}

void cache_event_ref(cache_event *e)
{
	e->refs++;
}

void cache_event_unref(cache_event *e)
{
	if (!e || --e->refs > 0)
		return;
	cache_obj_unref(e->obj);
	cache_obj_unref(e->prev);
	for (int i = 0; i < 3; i++)
		free(e->frame[i]);
	free(e);
}

static const char *const type_names[] = {"ADDED", "MODIFIED", "DELETED"};

const char *cache_event_frame(cache_event *e, cache_ev_type t, size_t *len)
{
	if (!e->frame[t]) {
		const char *pre = "{\"type\":\"";
		const char *mid = "\",\"object\":";
		size_t tl = strlen(type_names[t]);
		size_t n = strlen(pre) + tl + strlen(mid) + e->obj->len + 2;
		char *f = malloc(n + 1), *p;

		if (!f) {
			*len = 0;
			return "";
		}
		p = f;
		p = stpcpy(p, pre);
		p = stpcpy(p, type_names[t]);
		p = stpcpy(p, mid);
		memcpy(p, e->obj->json, e->obj->len);
		p += e->obj->len;
		*p++ = '}';
		*p++ = '\n';
		*p = '\0';
		e->frame[t] = f;
		e->frame_len[t] = n;
	}
	*len = e->frame_len[t];
	return e->frame[t];
}

/* ---- the ring ---------------------------------------------------------- */

static cache_event *ring_at(const cache *c, size_t i)
{
	return c->ring[(c->head + i) % c->cap];
}

static void ring_push(cache *c, cache_event *e)
{
	if (c->n == c->cap) {
		cache_event *old = c->ring[c->head];

		c->head = (c->head + 1) % c->cap;
		c->n--;
		/* Part of old's revision may be gone now. */
		if (old->rev > c->oldest_after)
			c->oldest_after = old->rev;
		cache_event_unref(old);
	}
	c->ring[(c->head + c->n) % c->cap] = e;
	c->n++;
}

int64_t cache_oldest(const cache *c)
{
	return c->oldest_after;
}

int cache_replay(cache *c, int64_t after, const char *prefix, cache_watch_fn fn,
		 void *arg)
{
	size_t lo = 0, hi = c->n, plen = strlen(prefix);

	if (after < c->oldest_after)
		return STORE_ECOMPACTED;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ring_at(c, mid)->rev <= after)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < c->n; i++) {
		cache_event *e = ring_at(c, i);

		if (!strncmp(e->obj->key, prefix, plen))
			fn(e, arg);
	}
	return 0;
}

/* ---- watchers ---------------------------------------------------------- */

cache_watcher *cache_watch(cache *c, const char *prefix, cache_watch_fn fn,
			   void *arg)
{
	cache_watcher *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->prefix = strdup(prefix);
	if (!w->prefix) {
		free(w);
		return NULL;
	}
	w->prefix_len = strlen(prefix);
	w->fn = fn;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&c->watchers, w, link);
	c->nwatchers++;
	return w;
}

static void watcher_free(cache *c, cache_watcher *w)
{
	TAILQ_REMOVE(&c->watchers, w, link);
	c->nwatchers--;
	free(w->prefix);
	free(w);
}

void cache_unwatch(cache *c, cache_watcher *w)
{
	if (!w)
		return;
	if (c->dispatching) {
		w->dead = true;
		c->has_dead = true;
		return;
	}
	watcher_free(c, w);
}

size_t cache_watcher_count(const cache *c)
{
	return c->nwatchers;
}

static void dispatch(cache *c, cache_event *e)
{
	cache_watcher *w, *nx;

	c->dispatching++;
	TAILQ_FOREACH(w, &c->watchers, link)
	{
		if (!w->dead && !strncmp(e->obj->key, w->prefix, w->prefix_len))
			w->fn(e, w->arg);
	}
	if (--c->dispatching == 0 && c->has_dead) {
		for (w = TAILQ_FIRST(&c->watchers); w; w = nx) {
			nx = TAILQ_NEXT(w, link);
			if (w->dead)
				watcher_free(c, w);
		}
		c->has_dead = false;
	}
}

/* ---- the exact-match index ------------------------------------------------
 */

static uint64_t key_hash(const char *k)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * 1099511628211ull;
	return h;
}

static cache_obj *idx_find(const cache *c, const char *key)
{
	uint64_t h = key_hash(key);

	for (cache_obj *o = c->index[h & (c->nbuckets - 1)]; o; o = o->hnext)
		if (o->hash == h && !strcmp(o->key, key))
			return o;
	return NULL;
}

static void idx_remove(cache *c, cache_obj *o)
{
	cache_obj **p = &c->index[o->hash & (c->nbuckets - 1)];

	while (*p && *p != o)
		p = &(*p)->hnext;
	if (*p)
		*p = o->hnext;
	o->hnext = NULL;
}

static void idx_insert(cache *c, cache_obj *o)
{
	size_t b;

	if (c->count + 1 > c->nbuckets) {
		size_t n = c->nbuckets * 2;
		cache_obj **nb = calloc(n, sizeof(*nb));

		if (nb) {
			for (size_t i = 0; i < c->nbuckets; i++) {
				cache_obj *x = c->index[i], *nx;

				for (; x; x = nx) {
					nx = x->hnext;
					x->hnext = nb[x->hash & (n - 1)];
					nb[x->hash & (n - 1)] = x;
				}
			}
			free(c->index);
			c->index = nb;
			c->nbuckets = n;
		}
	}
	o->hash = key_hash(o->key);
	b = o->hash & (c->nbuckets - 1);
	o->hnext = c->index[b];
	c->index[b] = o;
}

/* ---- applying store events --------------------------------------------- */

static void tree_put(cache *c, cache_obj *o, cache_obj **old)
{
	*old = idx_find(c, o->key);
	if (*old) {
		RB_REMOVE(cache_tree, &c->tree, *old);
		idx_remove(c, *old);
		c->count--;
	}
	idx_insert(c, o);
	c->count++;
	RB_INSERT(cache_tree, &c->tree, o);
}

/* Apply one store event; with record, also make a cache event for the
 * ring and the watchers. */
static void apply(cache *c, const store_event *se, bool record)
{
	cache_obj *o = NULL, *old = NULL;
	cache_event *e;
	json_t *parsed;

	if (se->type == STORE_EVENT_PUT) {
		o = record ? obj_from_hint(c, se) : NULL;
		if (!o) {
			parsed =
			    json_loadb(se->kv.value, se->kv.value_len, 0, NULL);
			if (parsed)
				o = obj_make(se->kv.key, parsed,
					     se->kv.mod_revision,
					     se->kv.create_revision);
			json_decref(parsed);
		}
		if (!o) {
			fprintf(stderr,
				"signalbox: cache: %s at revision %lld is not "
				"a valid object; ignored\n",
				se->kv.key, (long long)se->kv.mod_revision);
			return;
		}
		tree_put(c, o, &old);
	} else {
		old = idx_find(c, se->kv.key);
		if (!old)
			return;
		RB_REMOVE(cache_tree, &c->tree, old);
		idx_remove(c, old);
		c->count--;
		if (record) {
			parsed = cache_obj_parse(old);
			if (parsed)
				o = obj_make(old->key, parsed,
					     se->kv.mod_revision,
					     old->create_rev);
			json_decref(parsed);
		}
		if (!o) {
			cache_obj_unref(old);
			return;
		}
	}
	if (!record) {
		cache_obj_unref(old);
		return;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		cache_obj_unref(old);
		return;
	}
	e->refs = 1;
	e->rev = se->kv.mod_revision;
	e->type = se->type == STORE_EVENT_DELETE ? CACHE_DELETED
		  : old				 ? CACHE_MODIFIED
						 : CACHE_ADDED;
	if (e->type == CACHE_DELETED) {
		e->obj = o; /* the tree never held it */
	} else {
		e->obj = o;
		cache_obj_ref(o); /* the tree's reference stays */
	}
	e->prev = old; /* the tree's old reference moves here */
	ring_push(c, e);
	dispatch(c, e);
}

static int load(cache *c, char *err, size_t errlen);

/* The cache fell behind compaction: end every watcher (fn with NULL) and
 * load afresh. */
static int reload(cache *c)
{
	cache_watcher *w;
	char err[256];

	c->dispatching++;
	TAILQ_FOREACH(w, &c->watchers, link)
	{
		if (!w->dead)
			w->fn(NULL, w->arg);
	}
	c->dispatching--;
	while ((w = TAILQ_FIRST(&c->watchers)))
		watcher_free(c, w);
	c->has_dead = false;
	for (size_t i = 0; i < c->n; i++)
		cache_event_unref(ring_at(c, i));
	c->n = 0;
	c->head = 0;
	fprintf(stderr, "signalbox: cache fell behind compaction; reloading\n");
	return load(c, err, sizeof err);
}

int cache_pump(cache *c)
{
	for (;;) {
		store_event **evs;
		size_t n;
		int64_t progress;
		int rc = store_watch_next(c->sw, 0, 1024, &evs, &n, &progress);

		if (rc == STORE_ECOMPACTED && c->dispatching == 0)
			rc = reload(c);
		if (rc)
			return rc;
		for (size_t i = 0; i < n; i++)
			apply(c, evs[i], true);
		store_events_free(evs, n);
		if (progress > c->rev)
			c->rev = progress;
		if (n == 0)
			return 0;
	}
}

/* ---- open, close, reads ----------------------------------------------------
 */

/* Load the state at revision at into the tree. */
static int load_at(cache *c, int64_t at)
{
	char *end = store_prefix_end(ROOT), *from = strdup(ROOT);
	int rc = end && from ? 0 : STORE_ENOMEM;

	while (rc == 0) {
		store_range_result r;

		rc = store_range(c->s, from, end, at, PAGE, &r);
		if (rc)
			break;
		for (size_t i = 0; i < r.count; i++) {
			store_event se = {.type = STORE_EVENT_PUT,
					  .kv = r.kvs[i]};

			apply(c, &se, false);
		}
		if (!r.more || r.count == 0) {
			store_range_result_free(&r);
			break;
		}
		free(from);
		if (asprintf(&from, "%s\x01", r.kvs[r.count - 1].key) < 0) {
			from = NULL;
			rc = STORE_ENOMEM;
		}
		store_range_result_free(&r);
	}
	free(end);
	free(from);
	return rc;
}

static void clear_tree(cache *c)
{
	cache_obj *o, *nx;

	for (o = RB_MIN(cache_tree, &c->tree); o; o = nx) {
		nx = RB_NEXT(cache_tree, &c->tree, o);
		RB_REMOVE(cache_tree, &c->tree, o);
		cache_obj_unref(o);
	}
	memset(c->index, 0, c->nbuckets * sizeof(*c->index));
	c->count = 0;
}

/* Load the state at a recent revision S and replay the store's history
 * after S, so that the ring reaches back ring-capacity events, as far as
 * the store's history allows. */
static int load(cache *c, char *err, size_t errlen)
{
	char *end = store_prefix_end(ROOT);
	int rc = STORE_ECOMPACTED;

	for (int tries = 0; tries < 5 && rc == STORE_ECOMPACTED; tries++) {
		int64_t cur = store_revision(c->s);
		int64_t start = cur - (int64_t)c->cap;

		if (start < store_compact_revision(c->s))
			start = store_compact_revision(c->s);
		if (start < 0)
			start = 0;
		clear_tree(c);
		store_watch_close(c->sw);
		c->sw = NULL;
		rc = start > 0 ? load_at(c, start) : 0;
		if (rc == 0)
			rc = store_watch_open(c->s, ROOT, end, start + 1,
					      &c->sw);
		if (rc == 0) {
			c->rev = start;
			c->oldest_after = start;
			rc = cache_pump(c);
		}
	}
	free(end);
	if (rc)
		snprintf(err, errlen,
			 "cannot load the cache from the store: %s",
			 store_strerror(rc));
	return rc;
}

static void on_store_notify(int64_t revision, void *arg)
{
	cache *c = arg;

	(void)revision;
	c->notify(c->notify_arg);
}

int cache_open(store *s, size_t ring_events, void (*notify)(void *), void *arg,
	       cache **out, char *err, size_t errlen)
{
	cache *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (!c)
		return STORE_ENOMEM;
	c->s = s;
	c->cap = ring_events ? ring_events : 10000;
	c->ring = calloc(c->cap, sizeof(*c->ring));
	c->nbuckets = 1024;
	c->index = calloc(c->nbuckets, sizeof(*c->index));
	RB_INIT(&c->tree);
	RB_INIT(&c->hints);
	TAILQ_INIT(&c->watchers);
	if (!c->ring || !c->index) {
		free(c->ring);
		free(c->index);
		free(c);
		return STORE_ENOMEM;
	}
	rc = load(c, err, errlen);
	if (rc) {
		cache_close(c);
		return rc;
	}
	c->notify = notify;
	c->notify_arg = arg;
	if (notify)
		store_set_notify(s, on_store_notify, c);
	*out = c;
	return 0;
}

void cache_close(cache *c)
{
	cache_watcher *w;

	if (!c)
		return;
	if (c->s)
		store_set_notify(c->s, NULL, NULL);
	while ((w = TAILQ_FIRST(&c->watchers)))
		watcher_free(c, w);
	while (!RB_EMPTY(&c->hints)) {
		cache_hint_ent *h = RB_MIN(cache_hints, &c->hints);

		RB_REMOVE(cache_hints, &c->hints, h);
		free(h);
	}
	for (size_t i = 0; i < c->n; i++)
		cache_event_unref(ring_at(c, i));
	free(c->ring);
	clear_tree(c);
	free(c->index);
	store_watch_close(c->sw);
	free(c);
}

int64_t cache_revision(const cache *c)
{
	return c->rev;
}

size_t cache_count(const cache *c)
{
	return c->count;
}

cache_obj *cache_get(cache *c, const char *key)
{
	return idx_find(c, key);
}

cache_obj *cache_first(cache *c, const char *from)
{
	cache_obj probe = {.key = (char *)from};

	return RB_NFIND(cache_tree, &c->tree, &probe);
}

cache_obj *cache_next(cache *c, cache_obj *o)
{
	return RB_NEXT(cache_tree, &c->tree, o);
}
