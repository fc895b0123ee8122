/*
 * cache.h -- the watch cache: every object under /registry/, in memory,
 * kept in step with the store by one store watcher, and a ring of the
 * recent events from which Kubernetes watches start or resume.
 *
 * Reads (GET, LIST, WATCH) are served from here and never touch the store.
 * Each object is kept serialized, with metadata.resourceVersion filled in,
 * so that a GET is a copy of bytes; each event builds its watch frame once,
 * however many watchers receive it.
 *
 * Consistency: the cache applies the store's events in revision order.
 * cache_revision() is the newest revision applied; every object and event
 * up to it is visible. A writer that got revision R from the store calls
 * cache_pump() before answering, so its own write is visible to the next
 * read (the store publishes events before it acknowledges a write).
 *
 * Threads: everything here runs on the API server's event loop thread,
 * except the notify function passed to cache_open, which the store calls
 * on its own thread.
 */
#ifndef SIGNALBOX_CACHE_H
#define SIGNALBOX_CACHE_H

#include <bsd/sys/tree.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* One object, immutable once made; shared by the tree and events. */
typedef struct cache_obj {
	int refs;
	char *key;  /* full store key */
	char *name; /* metadata.name */
	char *ns;   /* metadata.namespace, or NULL */
	char *json; /* serialized object, resourceVersion set */
	size_t len;
	int64_t rev; /* its mod_revision (its resourceVersion) */
	int64_t create_rev;
	const char *labels; /* "k\0v\0k\0v\0...": nlabels pairs */
	size_t nlabels;
	char *strs; /* the one allocation behind key, name, ns, labels */
	RB_ENTRY(cache_obj) node;
	uint64_t hash; /* of key, for the exact-match index */
	struct cache_obj *hnext;
} cache_obj;

/* The value of label key on o, or NULL (borrowed). Its signature fits
 * sel_match_fn's lookup. */
const char *cache_obj_label(const char *key, void *o);

void cache_obj_ref(cache_obj *o);
void cache_obj_unref(cache_obj *o);
/* Parse the object (a new reference; NULL if it does not parse, which
 * cannot happen for an object the cache made). */
json_t *cache_obj_parse(const cache_obj *o);

typedef enum cache_ev_type {
	CACHE_ADDED,
	CACHE_MODIFIED,
	CACHE_DELETED,
} cache_ev_type;

/* One change. obj is the new state; for DELETED, the last state with the
 * delete's resourceVersion. prev is the state before (NULL for ADDED). */
typedef struct cache_event {
	int refs;
	cache_ev_type type;
	int64_t rev;
	cache_obj *obj;
	cache_obj *prev;
	char *frame[3]; /* watch frames by type, built on first use */
	size_t frame_len[3];
} cache_event;

void cache_event_ref(cache_event *e);
void cache_event_unref(cache_event *e);

/* The watch frame `{"type":"<T>","object":<obj>}\n` for type t (a watcher
 * may need another type than e->type: an object that stops matching its
 * selector is DELETED for it). Borrowed; lives as long as e. */
const char *cache_event_frame(cache_event *e, cache_ev_type t, size_t *len);

typedef struct cache cache;

/* Load every object under /registry/ from s, and the recent history (up to
 * ring_events events) into the ring, then follow the store. notify(arg) is
 * called from the store's thread whenever new events wait: it must only
 * wake the loop, which then calls cache_pump(). */
int cache_open(store *s, size_t ring_events, void (*notify)(void *), void *arg,
	       cache **out, char *err, size_t errlen);
void cache_close(cache *c);

/* Apply every event the store has published. Returns 0 or a store error.
 * If the cache fell behind compaction (its loop was stalled for longer than
 * the store keeps history), it calls every watcher's fn with e == NULL
 * ("you missed events: end"), drops them all, and loads afresh. */
int cache_pump(cache *c);

int64_t cache_revision(const cache *c);
size_t cache_count(const cache *c);

/* The object at key (borrowed), or NULL. */
cache_obj *cache_get(cache *c, const char *key);
/* The first object with key >= from, and the one after o (borrowed). */
cache_obj *cache_first(cache *c, const char *from);
cache_obj *cache_next(cache *c, cache_obj *o);

/* A writer on this loop hands the cache the object it is about to store
 * at key, serialized as value (value_len bytes) by json_dumps in canonical
 * order (apiVersion, kind, metadata first; no resourceVersion). When the
 * store's event for key carries exactly these bytes, the cache takes name,
 * namespace and labels from obj and splices the resourceVersion into the
 * bytes, instead of parsing and serializing them again. value and obj are
 * borrowed until cache_hint_drop(c, key, value), which the writer calls
 * once its write completed or failed. */
void cache_hint(cache *c, const char *key, const char *value, size_t value_len,
		const json_t *obj);
void cache_hint_drop(cache *c, const char *key, const char *value);

/* Watchers: fn(e, arg) runs for every event whose key starts with prefix,
 * after the cache applied it. A watcher may remove itself (or another)
 * from inside fn. e == NULL: see cache_pump; the watcher is removed. */
typedef void (*cache_watch_fn)(cache_event *e, void *arg);
typedef struct cache_watcher cache_watcher;
cache_watcher *cache_watch(cache *c, const char *prefix, cache_watch_fn fn,
			   void *arg);
void cache_unwatch(cache *c, cache_watcher *w);
size_t cache_watcher_count(const cache *c);

/* Call fn for every ring event with revision > after and key under prefix,
 * in order. Returns 0, or STORE_ECOMPACTED when the ring no longer reaches
 * back to after, or the store has compacted past it (a Kubernetes watch
 * then gets 410 Expired). */
int cache_replay(cache *c, int64_t after, const char *prefix, cache_watch_fn fn,
		 void *arg);

/* The oldest revision a watch may resume after (see cache_replay). */
int64_t cache_oldest(const cache *c);

#endif
