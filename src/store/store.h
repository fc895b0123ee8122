/*
 * store.h -- the revisioned key-value store that signalbox stands on.
 *
 * The model is etcd v3's. The store is a log of changes. Every transaction
 * that writes gets the next global revision, and every key it touches
 * carries three numbers:
 *
 *   create_revision  the revision that created the key (since its last delete)
 *   mod_revision     the revision of its last change
 *   version          how many times it was written since it was created (1..)
 *
 * Writers use compare-and-swap transactions (compare on mod_revision, say,
 * then put or delete). Readers range over a key or a key interval, at the
 * latest revision or at an older one that is still retained. Watchers read
 * the log itself: every event after a start revision, in revision order,
 * with no gaps. compact(R) forgets the history before R. Leases carry a TTL
 * and delete the keys attached to them when they expire.
 *
 * Invariants (the tests break each one on purpose):
 *   1. Revisions are contiguous: revision N+1 is given to the first writing
 *      transaction that commits after revision N. A transaction whose
 *      compares fail, or that fails, writes nothing and takes no revision.
 *   2. A write is acknowledged (store_txn returns, or its callback runs) only
 *      after it is durable on disk. What was acknowledged survives a crash.
 *   3. A watcher sees every event whose revision is >= its start revision and
 *      whose key is in its interval, each once, in (revision, key) order.
 *      It either sees them all or gets STORE_ECOMPACTED; never a gap.
 *   4. Range at revision R returns exactly the keys that existed at R,
 *      for every R from the compact revision to the current one.
 *
 * Backends: "sqlite" (the default, embedded, src/store/sqlite.c) and "etcd"
 * (an etcd v3 cluster through its JSON gateway, src/store/etcd.c; chosen by
 * store_options.etcd_endpoints). Everything in this header is
 * backend-neutral: keys are byte strings without NUL, values are byte
 * strings, revisions are int64. With etcd the revisions are etcd's own: an
 * empty etcd is at revision 1, not 0, and every server on the same etcd sees
 * the same numbers. Invariant 2 there means: committed by etcd's raft quorum
 * (each member fsyncs its log before it answers).
 *
 * Threads: every function here may be called from any thread. store_txn
 * blocks its caller until the write is durable. store_txn_async never
 * blocks; its callback runs on a store thread.
 *
 * Errors: functions return 0 or a negative STORE_E* code; store_strerror()
 * names it. Nothing here calls exit() or aborts on bad input.
 *
 * Memory: results are allocated by the store and freed by the caller through
 * the named *_free function. Input structures (txn, ops, strings) are
 * borrowed for the duration of the call only.
 */
#ifndef SIGNALBOX_STORE_H
#define SIGNALBOX_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes (negative). */
enum {
	STORE_OK = 0,
	STORE_EINVAL = -1, /* bad argument: what is wrong is in the text */
	STORE_ENOMEM = -2, /* out of memory */
	STORE_EIO = -3,	   /* I/O error; earlier acknowledged data is intact */
	STORE_ENOSPC = -4, /* disk full; this write was not stored */
	STORE_EROFS = -5,  /* the database is read-only */
	STORE_ECOMPACTED = -6, /* the revision asked for was compacted */
	STORE_EFUTURE = -7,    /* the revision asked for does not exist yet */
	STORE_ENOLEASE =
	    -8, /* no such lease (never granted, revoked, expired) */
	STORE_ECLOSED = -9, /* the store is closing */
	STORE_ELOCKED =
	    -10, /* the data directory is in use by another process */
	STORE_ECORRUPT = -11,  /* the database failed its integrity check */
	STORE_EUNAVAIL = -12,  /* the backend cannot be reached */
	STORE_EDUPKEY = -13,   /* a transaction writes the same key twice */
	STORE_ETOOLARGE = -14, /* a key or value exceeds the limits below */
};

/* Limits, the same on every backend (etcd's defaults are larger). */
#define STORE_MAX_KEY	4096		  /* bytes */
#define STORE_MAX_VALUE (8 * 1024 * 1024) /* bytes */

/* A static string naming err. Never NULL. */
const char *store_strerror(int err);

/* -------------------------------------------------------------------------
 * Opening and closing
 */

typedef struct store store;

typedef struct store_options {
	/* Where the sqlite backend keeps signalbox.db and its lock file.
	 * Created (mode 0700) if missing. Borrowed during store_open. */
	const char *data_dir;
	/* History kept by automatic compaction: at most history_revisions
	 * revisions, and nothing older than history_seconds. 0 disables that
	 * limit; both 0 disables automatic compaction.
	 * Defaults: 10000 revisions, 300 seconds. */
	int64_t history_revisions;
	int64_t history_seconds;
	/* In-memory watch history: the newest events up to this many, and up
	 * to this many bytes of keys and values. Older events are read back
	 * from the database. Defaults: 8192 events, 4 MiB. */
	size_t ring_events;
	size_t ring_bytes;
	/* Most transactions committed in one group commit. Default 1024. */
	size_t max_batch;

	/* The etcd backend. When etcd_endpoints is set (non-empty), the store
	 * lives in that etcd cluster and data_dir is not used. A comma-
	 * separated list of client URLs, "http://h1:2379,https://h2:2379",
	 * or the etcd://h1:2379,h2:2379 (http) and etcds://... (https) forms
	 * of store_parse_url; a missing port is 2379. Requests go to one
	 * endpoint and move to the next when it cannot be reached. The etcd
	 * members must allow requests of STORE_MAX_VALUE plus some
	 * (--max-request-bytes=10485760 or more) and transactions of as many
	 * operations as signalbox writes at once (--max-txn-ops=1024): past
	 * those limits writes fail with STORE_ETOOLARGE. Borrowed during
	 * store_open. */
	const char *etcd_endpoints;
	/* https only, all optional (PEM files, borrowed during store_open):
	 * the CA that signed the members' certificates (default: the system's
	 * CAs), and a client certificate and its key for client-cert-auth. */
	const char *etcd_ca_file;
	const char *etcd_cert_file;
	const char *etcd_key_file;
	/* Longest wait for one etcd request, in ms (default 5000); an etcd
	 * that does not answer in time gives STORE_EUNAVAIL, never a hang. */
	int etcd_timeout_ms;
	/* For the test suites only; leave it 0. The store shows etcd's
	 * revisions minus this (and adds it to the revisions it is given), so
	 * that tests which count revisions from 0 can run on an etcd that has
	 * been used before (after deleting every key). Keys written at or
	 * below this etcd revision must not exist. */
	int64_t etcd_revision_offset;
} store_options;

/* Fill o with the defaults above (data_dir = "./signalbox-data", no etcd). */
void store_options_init(store_options *o);

/* Point o at the store that url names, for `signalbox serve --store URL`:
 *   etcd://host1:2379,host2:2379   an etcd cluster over http
 *   etcds://host1:2379,host2:2379  the same over https (TLS files in o)
 *   http://h1:2379,https://h2:2379 etcd client URLs as they are
 * Hosts are names, IPv4 addresses or [IPv6] addresses; the port defaults to
 * 2379. On success o->etcd_endpoints = url: url is borrowed and must stay
 * valid until store_open returns. Nothing else in o changes. Errors:
 * STORE_EINVAL, with what is wrong (and which part) in err. */
int store_parse_url(const char *url, store_options *o, char *err,
		    size_t errlen);

/* Open (creating if needed) the store. On success *out owns the store and
 * the data directory is locked against other processes (STORE_ELOCKED).
 * Opening is O(1) in the number of keys: no table is loaded.
 * errbuf, if not NULL, receives a sentence saying what went wrong.
 * etcd: nothing is locked (several servers may share one etcd); an etcd
 * that no endpoint answers for gives STORE_EUNAVAIL, with the endpoints and
 * the reason in errbuf. */
int store_open(const store_options *o, store **out, char *errbuf,
	       size_t errlen);

/* Stop the store's threads, fail pending requests with STORE_ECLOSED, wake
 * watchers with STORE_ECLOSED and free everything. Open watchers must still
 * be closed by their owners, before or after. NULL is a no-op. */
void store_close(store *s);

/* The newest committed revision (0 for an empty store) and the compact
 * revision (reads and watches below it fail with STORE_ECOMPACTED). */
int64_t store_revision(store *s);
int64_t store_compact_revision(store *s);

/* Size of the database files in bytes (database + WAL), for metrics.
 * etcd: the size of a member's database file (dbSize) as asked every 2 s
 * in the background (never waits for etcd). */
int64_t store_db_size(store *s);

/* The backend's newest revision, asked of it now (with etcd this waits
 * for an answer, up to etcd_timeout_ms): a linearizable read of the
 * cluster's revision, which may be ahead of
 * store_revision() while the events in between are still on their way (a
 * server that has seen everything up to it can serve a consistent read).
 * sqlite: store_revision(). Errors: STORE_EUNAVAIL. */
int store_current_revision(store *s, int64_t *rev);

/* As store_current_revision, without blocking: cb runs once, on a store
 * thread (sqlite: at once, on the caller's thread), with 0 and the
 * revision or with an error. The revision is read after the call, so a
 * server that serves a read once store_revision() has reached it reads
 * consistently. Calls made while one etcd request is out share the next
 * one: a server may ask for every read it serves. cb must not block.
 * Returns 0 (cb will run) or an error such as STORE_ECLOSED (it will
 * not). */
typedef void (*store_rev_cb)(int err, int64_t rev, void *arg);
int store_current_revision_async(store *s, store_rev_cb cb, void *arg);

/* The backend's last error in words (which etcd endpoint failed, and how),
 * into buf; "" if there was none. For logs and health checks. */
void store_last_error(store *s, char *buf, size_t len);

/* -------------------------------------------------------------------------
 * Keys and values
 */

typedef struct store_kv {
	char *key;   /* NUL-terminated */
	char *value; /* value_len bytes, then a NUL not counted */
	size_t value_len;
	int64_t create_revision;
	int64_t mod_revision;
	int64_t version;
	int64_t lease; /* 0 = none */
} store_kv;

/* Return a newly allocated end key for "every key starting with prefix":
 * the prefix with its last byte incremented (etcd's range_end), or "" (no
 * upper bound) when prefix is empty or all 0xff. Caller frees; NULL only
 * when out of memory. */
char *store_prefix_end(const char *prefix);

/* -------------------------------------------------------------------------
 * Range
 *
 * The interval is [key, end): end == NULL means the single key; end == ""
 * means every key >= key. revision 0 means the latest. limit 0 means no
 * limit; otherwise at most limit keys, and more says whether others follow.
 */

typedef struct store_range_result {
	store_kv *kvs; /* count entries, sorted by key */
	size_t count;
	bool more;
	int64_t revision; /* the revision the range was read at */
} store_range_result;

/* On success fills *out; free it with store_range_result_free. Errors:
 * STORE_ECOMPACTED (revision < compact revision), STORE_EFUTURE. */
int store_range(store *s, const char *key, const char *end, int64_t revision,
		int64_t limit, store_range_result *out);
void store_range_result_free(store_range_result *r);

/* -------------------------------------------------------------------------
 * Transactions: if every compare holds, run the success ops, otherwise the
 * failure ops. All writes of one transaction share one revision.
 */

typedef enum store_cmp_target {
	STORE_CMP_MOD,	   /* mod_revision (0 if the key does not exist) */
	STORE_CMP_CREATE,  /* create_revision (0 if it does not exist) */
	STORE_CMP_VERSION, /* version (0 if it does not exist) */
} store_cmp_target;

typedef enum store_cmp_op {
	STORE_CMP_EQ,
	STORE_CMP_NE,
	STORE_CMP_LT,
	STORE_CMP_GT,
} store_cmp_op;

typedef struct store_cmp {
	const char *key;
	store_cmp_target target;
	store_cmp_op op;
	int64_t value;
} store_cmp;

typedef enum store_op_type {
	STORE_OP_GET,	 /* read key (or [key, end)) at the txn's revision */
	STORE_OP_PUT,	 /* write key = value */
	STORE_OP_DELETE, /* delete key (or every key in [key, end)) */
} store_op_type;

typedef struct store_op {
	store_op_type type;
	const char *key;
	const char *end;   /* GET and DELETE: interval end, as in store_range */
	const char *value; /* PUT: value_len bytes */
	size_t value_len;
	int64_t lease; /* PUT: attach to this lease (0 = none) */
	bool prev_kv;  /* PUT, DELETE: return the previous key-values */
} store_op;

typedef struct store_txn {
	const store_cmp *cmps;
	size_t ncmps;
	const store_op *success;
	size_t nsuccess;
	const store_op *failure;
	size_t nfailure;
} store_txn;

typedef struct store_op_result {
	/* GET: the keys read. PUT with prev_kv: the previous value, if any.
	 * DELETE with prev_kv: the deleted keys. */
	store_kv *kvs;
	size_t count;
	int64_t deleted; /* DELETE: how many keys were deleted */
} store_op_result;

typedef struct store_txn_result {
	bool succeeded;		  /* the compares held */
	int64_t revision;	  /* this txn's revision if it wrote, else
				     the store's revision when it ran */
	store_op_result *results; /* one per op of the branch that ran */
	size_t nresults;
} store_txn_result;

/* Run t and wait until it is durable. (The function is store_txn_run
 * because store_txn names the type.) On success (return 0, whether or not
 * the compares held) fills *out; free with store_txn_result_free.
 * Errors: STORE_EINVAL (bad key, empty op list is fine), STORE_EDUPKEY,
 * STORE_ETOOLARGE, STORE_ENOLEASE, STORE_ENOSPC, STORE_EROFS, STORE_EIO,
 * STORE_ECLOSED. On error nothing of t was applied, with one exception on
 * etcd: STORE_EUNAVAIL after the request reached etcd (a timeout, a member
 * that died while answering) means the outcome is unknown; if t was
 * applied, its events are published as usual. Callers retry with a
 * compare, as with any conflict. */
int store_txn_run(store *s, const store_txn *t, store_txn_result *out);

/* As store_txn_run, without blocking: t is copied, and cb runs once on a store
 * thread when t is durable or has failed. res is NULL when err != 0;
 * otherwise cb owns res (heap-allocated) and frees it with
 * store_txn_result_delete, at once or later on another thread. cb must
 * not block for long: it delays the next group commit. Returns 0 if queued
 * (cb will run), or an error (cb will not run). */
typedef void (*store_txn_cb)(int err, store_txn_result *res, void *arg);
int store_txn_async(store *s, const store_txn *t, store_txn_cb cb, void *arg);

/* Free what a result holds (not r itself: for results filled by
 * store_txn_run into the caller's struct). */
void store_txn_result_free(store_txn_result *r);
/* Free a heap result handed to a store_txn_async callback, and r itself.
 * NULL is fine. */
void store_txn_result_delete(store_txn_result *r);

/* Convenience wrappers over store_txn_run. */

/* Put key=value unconditionally. *rev (may be NULL) gets its revision. */
int store_put(store *s, const char *key, const char *value, size_t len,
	      int64_t lease, int64_t *rev);
/* Put only if the key's mod_revision equals expect_mod (0: must not exist).
 * Returns 0 and sets *ok; *rev (may be NULL) gets the new revision when ok,
 * or the key's current mod_revision when not. */
int store_cas(store *s, const char *key, const char *value, size_t len,
	      int64_t expect_mod, bool *ok, int64_t *rev);
/* Delete key (end as in store_range). *deleted and *rev may be NULL. */
int store_delete(store *s, const char *key, const char *end, int64_t *deleted,
		 int64_t *rev);

/* -------------------------------------------------------------------------
 * Compaction
 */

/* Forget history before revision: afterwards range at a revision below it
 * and watches starting below it fail with STORE_ECOMPACTED; range at
 * revision itself still works. The space is reclaimed in the background.
 * Errors: STORE_EFUTURE; STORE_ECOMPACTED if already compacted past it. */
int store_compact(store *s, int64_t revision);

/* -------------------------------------------------------------------------
 * Leases. A lease is granted with a TTL in seconds; keys put with it are
 * deleted (in one revision) when it is revoked or expires. Keepalives live
 * in memory, as in etcd: after a restart every lease has its full TTL.
 * etcd: leases are etcd's. Their ids are etcd's, the granted TTL may be
 * raised to etcd's minimum (1.5 election timeouts), and they keep running
 * while signalbox restarts; only a change of etcd leader renews them.
 */

int store_lease_grant(store *s, int64_t ttl_seconds, int64_t *id);
int store_lease_revoke(store *s, int64_t id);
/* Renew: the lease expires ttl seconds from now. *ttl may be NULL. */
int store_lease_keepalive(store *s, int64_t id, int64_t *ttl);
/* Seconds left (*remaining) and the granted TTL (*granted); may be NULL. */
int store_lease_ttl(store *s, int64_t id, int64_t *remaining, int64_t *granted);

/* -------------------------------------------------------------------------
 * Watch
 *
 * Events are immutable and reference-counted: one event is shared by every
 * watcher that receives it. A DELETE event's kv has the key and, as
 * mod_revision, the revision of the delete; its other fields are 0 and its
 * value is empty.
 */

typedef enum store_event_type {
	STORE_EVENT_PUT,
	STORE_EVENT_DELETE,
} store_event_type;

typedef struct store_event {
	store_event_type type;
	store_kv kv;
	int refs; /* private: use store_event_ref / store_event_unref */
} store_event;

void store_event_ref(store_event *e);
void store_event_unref(store_event *e);

typedef struct store_watch store_watch;

/* Watch [key, end) (end as in store_range) from start_revision (0: from the
 * next revision). Errors: STORE_ECOMPACTED if start_revision is below the
 * compact revision; STORE_EFUTURE is not an error here: a watch may start
 * in the future. On success *out is owned by the caller. */
int store_watch_open(store *s, const char *key, const char *end,
		     int64_t start_revision, store_watch **out);

/* Take the next events, at most max, waiting up to timeout_ms (0: don't
 * wait; -1: forever). A small max may split the events of one revision
 * across calls. On return 0, *evs holds *n events (possibly 0 on timeout);
 * the caller owns the array and one reference on each event: release both
 * with store_events_free. *progress (may be NULL) gets the revision up to
 * which this watcher has seen everything (every event of it and of each
 * revision before it), for bookmarks.
 * Errors: STORE_ECOMPACTED (the watcher fell behind compaction; it is dead,
 * reopen from a fresh range), STORE_ECLOSED, STORE_EIO. */
int store_watch_next(store_watch *w, int timeout_ms, size_t max,
		     store_event ***evs, size_t *n, int64_t *progress);
void store_events_free(store_event **evs, size_t n);

/* Close a watcher; NULL is a no-op. Safe after store_close. */
void store_watch_close(store_watch *w);

/* Called on a store thread after each commit with the new revision, and
 * with STORE_ECLOSED as revision when the store closes. For event loops:
 * the function must only signal (write an eventfd, say), never block.
 * One per store; NULL to remove. */
typedef void (*store_notify_fn)(int64_t revision, void *arg);
void store_set_notify(store *s, store_notify_fn fn, void *arg);

/* -------------------------------------------------------------------------
 * Backup and restore (sqlite backend; the server may be running). With
 * etcd, use etcd's own snapshots (etcdctl snapshot save/restore).
 */

/* Copy the database in data_dir to file, consistently, while the store may
 * be open in another process. The copy is checked with integrity_check. */
int store_backup(const char *data_dir, const char *file, char *errbuf,
		 size_t errlen);
/* Replace the database in data_dir with file. Refuses (STORE_ELOCKED) while
 * a server holds data_dir, and refuses a file that fails integrity_check. */
int store_restore(const char *file, const char *data_dir, char *errbuf,
		  size_t errlen);

#endif
