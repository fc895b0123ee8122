/*
 * store_int.h -- what the store's generic half (store.c, ring.c) and its
 * backends (sqlite.c, etcd.c) say to each other. Not for use outside
 * src/store/.
 *
 * The split: a backend owns durability and the revision counter. It applies
 * write requests (store_req) in revision order, and after each durable
 * commit it hands the commit's events to store_publish() and then completes
 * the requests with store_req_done(). The generic half owns the in-memory
 * event ring, the watchers, the notify callback and the public API.
 */
#ifndef SIGNALBOX_STORE_INT_H
#define SIGNALBOX_STORE_INT_H

#include <pthread.h>
#include <semaphore.h>
#include <sys/queue.h>

#include "store.h"

/* A write request queued to a backend. */
typedef enum store_req_kind {
	STORE_REQ_TXN,
	STORE_REQ_LEASE_GRANT,	/* arg = ttl seconds; result in out */
	STORE_REQ_LEASE_REVOKE, /* arg = lease id */
	STORE_REQ_COMPACT,	/* arg = revision */
} store_req_kind;

typedef struct store_req {
	store_req_kind kind;
	const store_txn *txn; /* STORE_REQ_TXN: borrowed, or owned copy */
	int64_t arg;
	/* Filled by the backend before store_req_done. */
	int err;
	int64_t out;
	store_txn_result res;
	/* Completion: cb (async) or done (sync, the submitter waits on it). */
	store_txn_cb cb;
	void *cb_arg;
	sem_t done;
	void *copy; /* async: the owned deep copy of the txn, freed at done */
	STAILQ_ENTRY(store_req) link;
} store_req;

STAILQ_HEAD(store_req_list, store_req);

/* Complete r: wake its submitter or run its callback. The backend has set
 * r->err (and r->res or r->out on success). After this r is gone. */
void store_req_done(store_req *r);

/* The event ring: the newest events, in (revision, key) order. */
typedef struct store_ring {
	store_event **ev; /* circular, cap entries */
	size_t cap, head, count;
	size_t bytes, max_bytes;
	/* Every event with revision >= complete_from is in the ring (events
	 * of one revision are evicted together or the revision is marked
	 * incomplete). */
	int64_t complete_from;
} store_ring;

int store_ring_init(store_ring *r, size_t cap, size_t max_bytes,
		    int64_t next_rev);
void store_ring_free(store_ring *r);
/* Append events (taking the caller's references). */
void store_ring_append(store_ring *r, store_event **evs, size_t n);
/* Index (0 = oldest) of the first event with revision >= rev, or count. */
size_t store_ring_find(const store_ring *r, int64_t rev);
store_event *store_ring_at(const store_ring *r, size_t i);

/* Make one event (one allocation, refcount 1). NULL when out of memory. */
store_event *store_event_new(store_event_type type, const char *key,
			     const char *value, size_t value_len,
			     int64_t create_rev, int64_t mod_rev,
			     int64_t version, int64_t lease);

/* Does key fall in [key, end) with store_range's conventions? */
bool store_key_in(const char *k, const char *key, const char *end);

/* Duplicate a kv into dst (deep copy). 0 or STORE_ENOMEM. */
int store_kv_set(store_kv *dst, const char *key, const char *value,
		 size_t value_len, int64_t create_rev, int64_t mod_rev,
		 int64_t version, int64_t lease);
void store_kv_clear(store_kv *kv);

/* What a backend provides. "be" is the backend's own state. */
typedef struct store_backend {
	const char *name;
	int (*range)(void *be, const char *key, const char *end,
		     int64_t revision, int64_t limit, store_range_result *out);
	/* Queue r; the backend calls store_req_done(r) exactly once. */
	int (*submit)(void *be, store_req *r);
	/* Events with from_rev <= revision <= to_rev in [key, end), from
	 * durable history, in (revision, key) order. */
	int (*history)(void *be, const char *key, const char *end,
		       int64_t from_rev, int64_t to_rev, store_event ***evs,
		       size_t *n);
	int (*lease_keepalive)(void *be, int64_t id, int64_t *ttl);
	int (*lease_ttl)(void *be, int64_t id, int64_t *remaining,
			 int64_t *granted);
	int64_t (*db_size)(void *be);
	/* Finish queued requests, stop threads, free. */
	void (*close)(void *be);
	/* Optional (NULL: store_revision, and no message). */
	int (*current_revision)(void *be, int64_t *rev);
	int (*current_revision_async)(void *be, store_rev_cb cb, void *arg);
	void (*last_error)(void *be, char *buf, size_t len);
} store_backend;

struct store {
	int refs; /* store_open's, plus one per open watcher */
	const store_backend *be;
	void *bctx;
	/* Newest published revision and compact revision (atomics). */
	int64_t rev;
	int64_t compact_rev;
	/* The ring, its lock, and the condition watchers wait on. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	store_ring ring;
	bool closing;
	store_notify_fn notify;
	void *notify_arg;
};

/* Called by a backend after a durable commit that produced revision rev
 * (events may be n == 0 for a commit that took no revision: then rev is the
 * unchanged revision). Takes the references in evs and frees the array. */
void store_publish(store *s, store_event **evs, size_t n, int64_t rev);
/* Called by a backend once, before it starts its threads: the revision
 * and compact revision it found. */
void store_set_initial(store *s, int64_t rev, int64_t compact_rev);
/* Called by a backend when the compact revision moves forward. */
void store_set_compact_revision(store *s, int64_t rev);

/* Automatic compaction's bookkeeping, shared by the backends: the newest
 * revision seen in each second (for history_seconds), and the target. */
typedef struct store_autocompact {
	int64_t revs, secs; /* history_revisions, history_seconds */
	struct store_time_sample {
		int64_t sec; /* CLOCK_MONOTONIC seconds */
		int64_t rev; /* newest revision committed by then */
	} * samples;	     /* circular, secs + 2 */
	size_t n, head, cap;
} store_autocompact;

/* 0 or STORE_ENOMEM. */
int store_autocompact_init(store_autocompact *a, int64_t revs, int64_t secs);
void store_autocompact_free(store_autocompact *a);
/* Note that revision rev is committed now. */
void store_autocompact_sample(store_autocompact *a, int64_t rev);
/* The revision to compact to now, at revision rev with compact revision
 * compact_rev (0: none). */
int64_t store_autocompact_target(const store_autocompact *a, int64_t rev,
				 int64_t compact_rev);

/* Backends. */
int store_sqlite_open(store *s, const store_options *o, void **bctx,
		      char *errbuf, size_t errlen);
extern const store_backend store_sqlite_backend;
/* The etcd backend (etcd.c): o->etcd_endpoints is set. */
int store_etcd_open(store *s, const store_options *o, void **bctx, char *errbuf,
		    size_t errlen);
extern const store_backend store_etcd_backend;

/* Write a formatted message into errbuf (if any). */
void store_errf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
