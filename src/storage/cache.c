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
	free(o->strs);
	free(o->json);
	free(o);
}

json_t *cache_obj_parse(const cache_obj *o)
{
	return json_loadb(o->json, o->len, 0, NULL);
}

const char *cache_obj_label(const char *key, void *arg)
{
	const cache_obj *o = arg;
	const char *p = o->labels;

	for (size_t i = 0; i < o->nlabels; i++) {
		const char *v = p + strlen(p) + 1;

		if (!strcmp(p, key))
			return v;
		p = v + strlen(v) + 1;
	}
	return NULL;
}

/* Fill o's key, name, namespace and labels (from metadata md, borrowed)
 * into one allocation. 0, or -1 when out of memory. */
static int obj_strings(cache_obj *o, const char *key, const json_t *md)
{
	const char *name = json_string_value(json_object_get(md, "name"));
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	const json_t *labels = json_object_get(md, "labels");
	size_t kl = strlen(key), nl = strlen(name), sl = ns && *ns ? strlen(ns) : 0;
	size_t total = kl + nl + sl + 3, n = 0;
	const char *k;
	json_t *v;
	char *p;

	json_object_foreach((json_t *)labels, k, v)
	{
		if (json_is_string(v))
			total += strlen(k) + strlen(json_string_value(v)) + 2;
	}
	o->strs = malloc(total);
	if (!o->strs)
		return -1;
	p = o->strs;
	o->key = p;
	p = (char *)memcpy(p, key, kl + 1) + kl + 1;
	o->name = p;
	p = (char *)memcpy(p, name, nl + 1) + nl + 1;
	o->ns = NULL;
	if (sl) {
		o->ns = p;
		p = (char *)memcpy(p, ns, sl + 1) + sl + 1;
	}
	o->labels = p;
	json_object_foreach((json_t *)labels, k, v)
	{
		const char *val = json_string_value(v);

		if (!val)
			continue;
		p = stpcpy(p, k) + 1;
		p = stpcpy(p, val) + 1;
		n++;
	}
	o->nlabels = n;
	return 0;
}

static char *splice_rv(const char *value, size_t len, int64_t rev,
		       size_t *outlen);

/* Make an object from parsed (borrowed; it may be modified). When the
 * stored bytes (value, may be NULL) are in our canonical form the
 * resourceVersion is spliced into them; otherwise parsed gets it and is
 * serialized. NULL if it has no metadata.name or out of memory. */
static cache_obj *obj_make(const char *key, json_t *parsed, const char *value,
			   size_t value_len, int64_t rev, int64_t create_rev)
{
	json_t *md = json_object_get(parsed, "metadata");
	const char *name = json_string_value(json_object_get(md, "name"));
	char rv[24];
	cache_obj *o;

	if (!json_is_object(md) || !name)
		return NULL;
	o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->refs = 1;
	o->rev = rev;
	o->create_rev = create_rev;
	if (value && !json_object_get(md, "resourceVersion"))
		o->json = splice_rv(value, value_len, rev, &o->len);
	if (!o->json) {
		snprintf(rv, sizeof rv, "%lld", (long long)rev);
		json_object_set_new(md, "resourceVersion", json_string(rv));
		o->json = json_dumps(parsed, JSON_COMPACT);
		o->len = o->json ? strlen(o->json) : 0;
	}
	if (obj_strings(o, key, md) || !o->json) {
		cache_obj_unref(o);
		return NULL;
	}
	return o;
}

/* Where the metadata object of value starts ('{') and ends (one past
 * '}'), when value is in the canonical form our writers store:
 * {"apiVersion":"<plain>","kind":"<plain>","metadata":{...},...}.
 * Returns 0, or -1 when value is not in that form. */
static int meta_span(const char *value, size_t len, size_t *ms, size_t *me)
{
	static const char *const lead[] = {
	    "{\"apiVersion\":\"", "\",\"kind\":\"", "\",\"metadata\":"};
	const char *p = value, *end = value + len;
	int depth = 0;
	bool str = false;

	for (int i = 0; i < 3; i++) {
		size_t l = strlen(lead[i]);

		if ((size_t)(end - p) < l || memcmp(p, lead[i], l))
			return -1;
		p += l;
		if (i == 2)
			break;
		/* A plain string: no escapes, so the next quote ends it. */
		while (p < end && *p != '"' && *p != '\\')
			p++;
		if (p >= end || *p != '"')
			return -1;
	}
	if (p >= end || *p != '{')
		return -1;
	*ms = (size_t)(p - value);
	for (; p < end; p++) {
		if (str) {
			if (*p == '\\')
				p++;
			else if (*p == '"')
				str = false;
		} else if (*p == '"') {
			str = true;
		} else if (*p == '{') {
			depth++;
		} else if (*p == '}' && --depth == 0) {
			*me = (size_t)(p - value) + 1;
			return 0;
		}
	}
	return -1;
}

/* Splice "resourceVersion":"<rev>" into value at the start of its
 * metadata (at ms, from meta_span). Returns a new string. */
static char *splice_at(const char *value, size_t len, size_t ms, int64_t rev,
		       size_t *outlen)
{
	size_t at = ms + 1, rl;
	char rv[48], *out;

	rl = (size_t)snprintf(rv, sizeof rv, "\"resourceVersion\":\"%lld\"%s",
			      (long long)rev, value[at] == '}' ? "" : ",");
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

static char *splice_rv(const char *value, size_t len, int64_t rev,
		       size_t *outlen)
{
	size_t ms, me;

	if (meta_span(value, len, &ms, &me))
		return NULL;
	return splice_at(value, len, ms, rev, outlen);
}

/* The object for stored bytes in canonical form: only the metadata is
 * parsed, and the resourceVersion is spliced in. NULL otherwise. */
static cache_obj *obj_from_canonical(const store_event *se)
{
	const char *v = se->kv.value;
	size_t len = se->kv.value_len, ms, me;
	json_t *md;
	cache_obj *o = NULL;

	if (meta_span(v, len, &ms, &me))
		return NULL;
	md = json_loadb(v + ms, me - ms, 0, NULL);
	if (json_is_object(md) && json_is_string(json_object_get(md, "name")) &&
	    !json_object_get(md, "resourceVersion")) {
		o = calloc(1, sizeof(*o));
		if (o) {
			o->refs = 1;
			o->rev = se->kv.mod_revision;
			o->create_rev = se->kv.create_revision;
			o->json = splice_at(v, len, ms, o->rev, &o->len);
			if (!o->json || obj_strings(o, se->kv.key, md)) {
				cache_obj_unref(o);
				o = NULL;
			}
		}
	}
	json_decref(md);
	return o;
}

/* The object for a PUT of our own writer, from its hint; NULL when there
 * is no usable hint. */
static cache_obj *obj_from_hint(cache *c, const store_event *se)
{
	cache_hint_ent probe = {.key = se->kv.key}, *h;
	const json_t *md;
	const char *name;
	cache_obj *o;

	h = RB_FIND(cache_hints, &c->hints, &probe);
	if (!h || h->len != se->kv.value_len ||
	    memcmp(h->value, se->kv.value, h->len))
		return NULL;
	md = json_object_get(h->obj, "metadata");
	name = json_string_value(json_object_get(md, "name"));
	if (!name)
		return NULL;
	o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->refs = 1;
	o->json = splice_rv(se->kv.value, se->kv.value_len, se->kv.mod_revision,
			    &o->len);
	o->rev = se->kv.mod_revision;
	o->create_rev = se->kv.create_revision;
	if (obj_strings(o, se->kv.key, md) || !o->json) {
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
		if (!o)
			o = obj_from_canonical(se);
		if (!o) {
			parsed =
			    json_loadb(se->kv.value, se->kv.value_len, 0, NULL);
			if (parsed)
				o = obj_make(se->kv.key, parsed,
					     se->kv.value, se->kv.value_len,
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
				o = obj_make(old->key, parsed, NULL, 0,
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
			break;
	}
	/* A resourceVersion the store has compacted is expired for watches
	 * too, even while the ring still holds events after it. */
	if (store_compact_revision(c->s) - 1 > c->oldest_after)
		c->oldest_after = store_compact_revision(c->s) - 1;
	return 0;
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
