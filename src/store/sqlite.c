/*
 * sqlite.c -- the embedded backend: the revision log in one SQLite file.
 *
 * Layout. One table, log(key, rev, type, create_rev, version, lease, value),
 * keyed by (key, rev), holds every change: a put row or a delete tombstone.
 * The state at revision R is, for each key, its newest row with rev <= R,
 * unless that row is a tombstone. An index on rev serves watch history.
 * meta holds the compact revision; lease holds granted leases.
 *
 * Writes. One committer thread owns the write connection. Callers queue
 * requests; the committer takes everything queued (up to max_batch), runs it
 * in one SQLite transaction, commits (WAL, synchronous=FULL: one fsync for
 * the whole group) and only then publishes the events and acknowledges the
 * callers. If the commit fails, every request in the group gets the error
 * and nothing of it is visible: memory state is changed only after COMMIT.
 *
 * Reads. A small pool of read connections serves range and history. WAL
 * lets them run beside the committer. A read at revision R filters rows by
 * rev <= R, so it never sees a newer commit, and it is checked against the
 * compact revision after the query, so rows reclaimed meanwhile are noticed.
 *
 * Compaction. compact(R) first records R (logically compacted: older reads
 * fail at once), then the committer deletes superseded rows below R in
 * chunks between write groups, so that a large compaction never stalls
 * writers. Freed pages are reused, so the file stops growing once history
 * is bounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_int.h"

#define SCHEMA_VERSION 1
#define DB_NAME	       "signalbox.db"
#define LOCK_NAME      "signalbox.lock"
#define MAX_READERS    8
#define COMPACT_CHUNK  2000 /* revisions reclaimed per step */
#define TICK_MS	       200  /* auto-compaction check interval */

enum {
	ST_LATEST,
	ST_LATEST_VALUE,
	ST_INSERT,
	ST_AT_KEY,
	ST_AT_RANGE,
	ST_AT_FROM,
	ST_HISTORY,
	ST_LEASE_INSERT,
	ST_LEASE_DELETE,
	ST_LEASE_KEYS,
	ST_META_SET,
	ST_RECLAIM_SCAN,
	ST_RECLAIM_OLDER,
	ST_RECLAIM_ROW,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_LATEST] = "SELECT rev, type, create_rev, version, lease FROM log "
		  "WHERE key = ?1 ORDER BY rev DESC LIMIT 1",
    [ST_LATEST_VALUE] = "SELECT rev, type, create_rev, version, lease, "
			"value FROM log WHERE key = ?1 "
			"ORDER BY rev DESC LIMIT 1",
    [ST_INSERT] = "INSERT INTO log(key, rev, type, create_rev, version, "
		  "lease, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    /* The three "state at revision ?3" reads: columns key, rev, type,
     * create_rev, version, lease, value. */
    [ST_AT_KEY] = "SELECT key, rev, type, create_rev, version, lease, value "
		  "FROM log WHERE key = ?1 AND rev <= ?3 "
		  "ORDER BY rev DESC LIMIT 1",
    [ST_AT_RANGE] = "SELECT key, MAX(rev), type, create_rev, version, "
		    "lease, value FROM log WHERE key >= ?1 AND key < ?2 "
		    "AND rev <= ?3 GROUP BY key ORDER BY key",
    [ST_AT_FROM] = "SELECT key, MAX(rev), type, create_rev, version, "
		   "lease, value FROM log WHERE key >= ?1 AND rev <= ?3 "
		   "GROUP BY key ORDER BY key",
    [ST_HISTORY] = "SELECT key, rev, type, create_rev, version, lease, "
		   "value FROM log WHERE rev >= ?1 AND rev <= ?2 "
		   "ORDER BY rev, key",
    [ST_LEASE_INSERT] = "INSERT INTO lease(id, ttl) VALUES (?1, ?2)",
    [ST_LEASE_DELETE] = "DELETE FROM lease WHERE id = ?1",
    [ST_LEASE_KEYS] = "SELECT DISTINCT key FROM log "
		      "WHERE lease = ?1 AND lease != 0",
    [ST_META_SET] = "INSERT OR REPLACE INTO meta(name, value) "
		    "VALUES (?1, ?2)",
    /* Reclaiming: each row in a window of revisions below the compact
     * revision supersedes every older row of its key. */
    [ST_RECLAIM_SCAN] = "SELECT key, rev, type FROM log "
			"WHERE rev >= ?1 AND rev < ?2",
    [ST_RECLAIM_OLDER] = "DELETE FROM log WHERE key = ?1 AND rev < ?2",
    [ST_RECLAIM_ROW] = "DELETE FROM log WHERE key = ?1 AND rev = ?2",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS log ("
    " key TEXT NOT NULL, rev INTEGER NOT NULL, type INTEGER NOT NULL,"
    " create_rev INTEGER NOT NULL, version INTEGER NOT NULL,"
    " lease INTEGER NOT NULL, value BLOB,"
    " PRIMARY KEY (key, rev)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS log_rev ON log(rev);"
    "CREATE INDEX IF NOT EXISTS log_lease ON log(lease) WHERE lease != 0;"
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY,"
    " value INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS lease (id INTEGER PRIMARY KEY,"
    " ttl INTEGER NOT NULL);";

#define ROW_PUT	      0
#define ROW_TOMBSTONE 1

typedef struct conn {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	struct conn *next_free;
} conn;

typedef struct lease {
	int64_t id;
	int64_t ttl;
	int64_t expires_ms; /* CLOCK_MONOTONIC; INT64_MAX while revoking */
} lease;

typedef struct sq {
	store *s;
	char *dir;
	char *path;
	int lockfd;
	conn w; /* the committer's connection */

	pthread_t thread;
	pthread_mutex_t mu; /* queue and closing */
	pthread_cond_t cv;
	struct store_req_list queue;
	bool closing;
	size_t max_batch;

	int64_t rev;		  /* committer only: last committed revision */
	int64_t compact_rev;	  /* committer only */
	int64_t reclaimed;	  /* committer only: rows below this are done */
	int64_t reclaim_after_ms; /* committer only: back off after failure */

	pthread_mutex_t lease_mu;
	lease *leases;
	size_t nleases, leases_cap;
	int64_t next_lease_id;

	store_autocompact ac;
	int64_t last_tick_ms;

	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cv;
	conn *pool_free;
	int pool_open;
} sq;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- SQLite plumbing ------------------------------------------------- */

static int map_err(sqlite3 *db, int rc)
{
	int sys = db ? sqlite3_system_errno(db) : 0;

	if (sys == ENOSPC || sys == EDQUOT)
		return STORE_ENOSPC;
	if (sys == EROFS)
		return STORE_EROFS;
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_FULL:
		return STORE_ENOSPC;
	case SQLITE_READONLY:
		return STORE_EROFS;
	case SQLITE_NOMEM:
		return STORE_ENOMEM;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return STORE_ECORRUPT;
	case SQLITE_TOOBIG:
		return STORE_ETOOLARGE;
	default:
		return STORE_EIO;
	}
}

static int exec(sqlite3 *db, const char *sql)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : map_err(db, rc);
}

/* The prepared statement id on c, prepared on first use. */
static sqlite3_stmt *stmt(conn *c, int id)
{
	if (!c->st[id] && sqlite3_prepare_v3(c->db, stmt_sql[id], -1,
					     SQLITE_PREPARE_PERSISTENT,
					     &c->st[id], NULL) != SQLITE_OK)
		return NULL;
	return c->st[id];
}

static void conn_close(conn *c)
{
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(c->st[i]);
	sqlite3_close(c->db);
	memset(c, 0, sizeof(*c));
}

static int conn_open(conn *c, const char *path, bool writer, char *errbuf,
		     size_t errlen)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	int rc;

	memset(c, 0, sizeof(*c));
	if (writer)
		flags |= SQLITE_OPEN_CREATE;
	rc = sqlite3_open_v2(path, &c->db, flags, NULL);
	if (rc != SQLITE_OK) {
		store_errf(errbuf, errlen, "cannot open %s: %s", path,
			   c->db ? sqlite3_errmsg(c->db) : "out of memory");
		rc = map_err(c->db, rc);
		goto fail;
	}
	if (writer && sqlite3_db_readonly(c->db, "main") == 1) {
		store_errf(errbuf, errlen,
			   "%s is read-only; signalbox needs to write it",
			   path);
		rc = STORE_EROFS;
		goto fail;
	}
	sqlite3_busy_timeout(c->db, 10000);
	rc = exec(c->db, writer ? "PRAGMA journal_mode=WAL;"
				  "PRAGMA synchronous=FULL;"
				  "PRAGMA journal_size_limit=67108864;"
				  "PRAGMA cache_size=-16384;"
				: "PRAGMA query_only=1;"
				  "PRAGMA cache_size=-4096;");
	if (rc) {
		store_errf(errbuf, errlen, "cannot set up %s: %s", path,
			   sqlite3_errmsg(c->db));
		goto fail;
	}
	return 0;
fail:
	conn_close(c);
	return rc ? rc : STORE_EIO;
}

/* Read one row (columns as in the ST_AT_* statements) into kv. */
static int row_kv(sqlite3_stmt *st, store_kv *kv)
{
	return store_kv_set(
	    kv, (const char *)sqlite3_column_text(st, 0),
	    sqlite3_column_blob(st, 6), (size_t)sqlite3_column_bytes(st, 6),
	    sqlite3_column_int64(st, 3), sqlite3_column_int64(st, 1),
	    sqlite3_column_int64(st, 4), sqlite3_column_int64(st, 5));
}

/* The state of [key, end) at revision rev on c: the live keys, in order,
 * at most limit (0: all); *more if others follow. */
static int query_at(conn *c, const char *key, const char *end, int64_t rev,
		    int64_t limit, store_kv **kvs, size_t *n, bool *more)
{
	int id = !end ? ST_AT_KEY : *end ? ST_AT_RANGE : ST_AT_FROM;
	sqlite3_stmt *st = stmt(c, id);
	size_t cap = 0;
	int rc, err = 0;

	*kvs = NULL;
	*n = 0;
	if (more)
		*more = false;
	if (!st)
		return map_err(c->db, sqlite3_errcode(c->db));
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (id == ST_AT_RANGE)
		sqlite3_bind_text(st, 2, end, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, rev);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_int(st, 2) == ROW_TOMBSTONE)
			continue;
		if (limit && *n == (size_t)limit) {
			if (more)
				*more = true;
			break;
		}
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 8;
			store_kv *p = realloc(*kvs, nc * sizeof(*p));

			if (!p) {
				err = STORE_ENOMEM;
				break;
			}
			*kvs = p;
			cap = nc;
		}
		err = row_kv(st, &(*kvs)[*n]);
		if (err)
			break;
		(*n)++;
	}
	if (!err && rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = map_err(c->db, rc);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (err) {
		for (size_t i = 0; i < *n; i++)
			store_kv_clear(&(*kvs)[i]);
		free(*kvs);
		*kvs = NULL;
		*n = 0;
	}
	return err;
}

/* ---- the reader pool ------------------------------------------------- */

static int pool_get(sq *b, conn **out)
{
	conn *c;
	int rc;

	pthread_mutex_lock(&b->pool_mu);
	while (!b->pool_free && b->pool_open >= MAX_READERS)
		pthread_cond_wait(&b->pool_cv, &b->pool_mu);
	c = b->pool_free;
	if (c) {
		b->pool_free = c->next_free;
		pthread_mutex_unlock(&b->pool_mu);
		*out = c;
		return 0;
	}
	b->pool_open++;
	pthread_mutex_unlock(&b->pool_mu);
	c = malloc(sizeof(*c));
	rc = c ? conn_open(c, b->path, false, NULL, 0) : STORE_ENOMEM;
	if (rc) {
		free(c);
		pthread_mutex_lock(&b->pool_mu);
		b->pool_open--;
		pthread_cond_signal(&b->pool_cv);
		pthread_mutex_unlock(&b->pool_mu);
		return rc;
	}
	*out = c;
	return 0;
}

static void pool_put(sq *b, conn *c)
{
	pthread_mutex_lock(&b->pool_mu);
	c->next_free = b->pool_free;
	b->pool_free = c;
	pthread_cond_signal(&b->pool_cv);
	pthread_mutex_unlock(&b->pool_mu);
}

/* ---- reads ----------------------------------------------------------- */

static int sq_range(void *be, const char *key, const char *end,
		    int64_t revision, int64_t limit, store_range_result *out)
{
	sq *b = be;
	int64_t cur = store_revision(b->s);
	conn *c;
	int rc;

	if (revision == 0)
		revision = cur;
	else if (revision > cur)
		return STORE_EFUTURE;
	if (revision < store_compact_revision(b->s))
		return STORE_ECOMPACTED;
	rc = pool_get(b, &c);
	if (rc)
		return rc;
	rc = query_at(c, key, end, revision, limit, &out->kvs, &out->count,
		      &out->more);
	pool_put(b, c);
	if (rc == 0 && revision < store_compact_revision(b->s)) {
		store_range_result_free(out);
		rc = STORE_ECOMPACTED;
	}
	out->revision = revision;
	return rc;
}

static int sq_history(void *be, const char *key, const char *end,
		      int64_t from_rev, int64_t to_rev, store_event ***evs,
		      size_t *n)
{
	sq *b = be;
	sqlite3_stmt *st;
	size_t cap = 0;
	conn *c;
	int rc, err = 0;

	*evs = NULL;
	*n = 0;
	err = pool_get(b, &c);
	if (err)
		return err;
	st = stmt(c, ST_HISTORY);
	if (!st) {
		err = map_err(c->db, sqlite3_errcode(c->db));
		pool_put(b, c);
		return err;
	}
	sqlite3_bind_int64(st, 1, from_rev);
	sqlite3_bind_int64(st, 2, to_rev);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);
		bool del = sqlite3_column_int(st, 2) == ROW_TOMBSTONE;
		store_event *e;

		if (!store_key_in(k, key, end))
			continue;
		e = store_event_new(
		    del ? STORE_EVENT_DELETE : STORE_EVENT_PUT, k,
		    sqlite3_column_blob(st, 6),
		    (size_t)sqlite3_column_bytes(st, 6),
		    sqlite3_column_int64(st, 3), sqlite3_column_int64(st, 1),
		    sqlite3_column_int64(st, 4), sqlite3_column_int64(st, 5));
		if (e && *n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			store_event **p = realloc(*evs, nc * sizeof(*p));

			if (p) {
				*evs = p;
				cap = nc;
			} else {
				store_event_unref(e);
				e = NULL;
			}
		}
		if (!e) {
			err = STORE_ENOMEM;
			break;
		}
		(*evs)[(*n)++] = e;
	}
	if (!err && rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = map_err(c->db, rc);
	sqlite3_reset(st);
	pool_put(b, c);
	if (err) {
		store_events_free(*evs, *n);
		*evs = NULL;
		*n = 0;
	}
	return err;
}

static int64_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

static int64_t sq_db_size(void *be)
{
	sq *b = be;
	char wal[PATH_MAX];

	snprintf(wal, sizeof wal, "%s-wal", b->path);
	return file_size(b->path) + file_size(wal);
}

/* ---- leases ------------------------------------------------------------ */

/* With lease_mu held. */
static lease *lease_find(sq *b, int64_t id)
{
	for (size_t i = 0; i < b->nleases; i++)
		if (b->leases[i].id == id)
			return &b->leases[i];
	return NULL;
}

static int lease_add(sq *b, int64_t id, int64_t ttl)
{
	int rc = 0;

	pthread_mutex_lock(&b->lease_mu);
	if (b->nleases == b->leases_cap) {
		size_t nc = b->leases_cap ? b->leases_cap * 2 : 16;
		lease *p = realloc(b->leases, nc * sizeof(*p));

		if (!p)
			rc = STORE_ENOMEM;
		else {
			b->leases = p;
			b->leases_cap = nc;
		}
	}
	if (rc == 0)
		b->leases[b->nleases++] =
		    (lease){id, ttl, now_ms() + ttl * 1000};
	pthread_mutex_unlock(&b->lease_mu);
	return rc;
}

static void lease_remove(sq *b, int64_t id)
{
	lease *l;

	pthread_mutex_lock(&b->lease_mu);
	l = lease_find(b, id);
	if (l)
		*l = b->leases[--b->nleases];
	pthread_mutex_unlock(&b->lease_mu);
}

static bool lease_exists(sq *b, int64_t id)
{
	bool ok;

	pthread_mutex_lock(&b->lease_mu);
	ok = lease_find(b, id) != NULL;
	pthread_mutex_unlock(&b->lease_mu);
	return ok;
}

static int sq_lease_keepalive(void *be, int64_t id, int64_t *ttl)
{
	sq *b = be;
	lease *l;
	int rc = STORE_ENOLEASE;

	pthread_mutex_lock(&b->lease_mu);
	l = lease_find(b, id);
	if (l && l->expires_ms != INT64_MAX && l->expires_ms > now_ms()) {
		l->expires_ms = now_ms() + l->ttl * 1000;
		if (ttl)
			*ttl = l->ttl;
		rc = 0;
	}
	pthread_mutex_unlock(&b->lease_mu);
	return rc;
}

static int sq_lease_ttl(void *be, int64_t id, int64_t *remaining,
			int64_t *granted)
{
	sq *b = be;
	lease *l;
	int rc = STORE_ENOLEASE;

	pthread_mutex_lock(&b->lease_mu);
	l = lease_find(b, id);
	if (l && l->expires_ms != INT64_MAX) {
		int64_t left = l->expires_ms - now_ms();

		if (remaining)
			*remaining = left > 0 ? (left + 999) / 1000 : 0;
		if (granted)
			*granted = l->ttl;
		rc = 0;
	}
	pthread_mutex_unlock(&b->lease_mu);
	return rc;
}

/* ---- the write path -------------------------------------------------- */

/* What one group commit changes in memory, applied only after COMMIT. */
typedef struct batch {
	int64_t rev; /* revision after the requests so far */
	int64_t compact_rev;
	store_event **ev;
	size_t nev, evcap;
	int64_t *granted; /* pairs: id, ttl */
	size_t ngranted, grantcap;
	int64_t *revoked;
	size_t nrevoked, revokecap;
} batch;

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 16;
	while (nc < need)
		nc *= 2;
	void *q = realloc(*p, nc * elem);
	if (!q)
		return STORE_ENOMEM;
	*p = q;
	*cap = nc;
	return 0;
}

static bool batch_revoked(const batch *bt, int64_t id)
{
	for (size_t i = 0; i < bt->nrevoked; i++)
		if (bt->revoked[i] == id)
			return true;
	return false;
}

static int batch_event(batch *bt, store_event_type type, const char *key,
		       const char *value, size_t len, int64_t create,
		       int64_t rev, int64_t version, int64_t lease_id)
{
	store_event *e;

	if (grow((void **)&bt->ev, &bt->evcap, bt->nev + 1, sizeof(*bt->ev)))
		return STORE_ENOMEM;
	e = store_event_new(type, key, value, len, create, rev, version,
			    lease_id);
	if (!e)
		return STORE_ENOMEM;
	bt->ev[bt->nev++] = e;
	return 0;
}

/* The newest row of key (within the open write transaction). */
typedef struct latest {
	bool live; /* exists and is not a tombstone */
	int64_t mod, create, version, lease;
} latest;

static int get_latest(sq *b, const char *key, latest *l, store_kv *prev)
{
	sqlite3_stmt *st = stmt(&b->w, prev ? ST_LATEST_VALUE : ST_LATEST);
	int rc;

	memset(l, 0, sizeof(*l));
	if (!st)
		return map_err(b->w.db, sqlite3_errcode(b->w.db));
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_int(st, 1) == ROW_PUT) {
		l->live = true;
		l->mod = sqlite3_column_int64(st, 0);
		l->create = sqlite3_column_int64(st, 2);
		l->version = sqlite3_column_int64(st, 3);
		l->lease = sqlite3_column_int64(st, 4);
		if (prev)
			rc = store_kv_set(prev, key, sqlite3_column_blob(st, 5),
					  (size_t)sqlite3_column_bytes(st, 5),
					  l->create, l->mod, l->version,
					  l->lease)
				 ? STORE_ENOMEM
				 : SQLITE_DONE;
	}
	sqlite3_reset(st);
	if (rc == STORE_ENOMEM)
		return rc;
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : map_err(b->w.db, rc);
}

static int insert_row(sq *b, const char *key, int64_t rev, int type,
		      int64_t create, int64_t version, int64_t lease_id,
		      const char *value, size_t len)
{
	sqlite3_stmt *st = stmt(&b->w, ST_INSERT);
	int rc;

	if (!st)
		return map_err(b->w.db, sqlite3_errcode(b->w.db));
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, rev);
	sqlite3_bind_int(st, 3, type);
	sqlite3_bind_int64(st, 4, create);
	sqlite3_bind_int64(st, 5, version);
	sqlite3_bind_int64(st, 6, lease_id);
	if (type == ROW_PUT)
		sqlite3_bind_blob(st, 7, len ? value : "", (int)len,
				  SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 7);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : map_err(b->w.db, rc);
}

static bool cmp_holds(const store_cmp *c, const latest *l)
{
	int64_t v = c->target == STORE_CMP_MOD	    ? l->mod
		    : c->target == STORE_CMP_CREATE ? l->create
						    : l->version;

	switch (c->op) {
	case STORE_CMP_EQ:
		return v == c->value;
	case STORE_CMP_NE:
		return v != c->value;
	case STORE_CMP_LT:
		return v < c->value;
	case STORE_CMP_GT:
		return v > c->value;
	}
	return false;
}

static int op_put(sq *b, batch *bt, const store_op *o, int64_t rev,
		  store_op_result *res)
{
	store_kv prev;
	latest l;
	int rc;

	memset(&prev, 0, sizeof(prev));
	rc = get_latest(b, o->key, &l, o->prev_kv ? &prev : NULL);
	if (rc)
		return rc;
	if (o->prev_kv && l.live) {
		res->kvs = malloc(sizeof(store_kv));
		if (!res->kvs) {
			store_kv_clear(&prev);
			return STORE_ENOMEM;
		}
		res->kvs[0] = prev;
		res->count = 1;
	}
	rc = insert_row(b, o->key, rev, ROW_PUT, l.live ? l.create : rev,
			l.live ? l.version + 1 : 1, o->lease, o->value,
			o->value_len);
	if (rc == 0)
		rc = batch_event(bt, STORE_EVENT_PUT, o->key, o->value,
				 o->value_len, l.live ? l.create : rev, rev,
				 l.live ? l.version + 1 : 1, o->lease);
	return rc;
}

/* Delete every live key of kvs[0..n) at rev. */
static int delete_keys(sq *b, batch *bt, store_kv *kvs, size_t n, int64_t rev)
{
	for (size_t i = 0; i < n; i++) {
		int rc = insert_row(b, kvs[i].key, rev, ROW_TOMBSTONE, 0, 0, 0,
				    NULL, 0);

		if (rc == 0)
			rc = batch_event(bt, STORE_EVENT_DELETE, kvs[i].key,
					 NULL, 0, 0, rev, 0, 0);
		if (rc)
			return rc;
	}
	return 0;
}

static int op_delete(sq *b, batch *bt, const store_op *o, int64_t rev,
		     store_op_result *res)
{
	int rc = query_at(&b->w, o->key, o->end, INT64_MAX, 0, &res->kvs,
			  &res->count, NULL);

	if (rc)
		return rc;
	res->deleted = (int64_t)res->count;
	rc = delete_keys(b, bt, res->kvs, res->count, rev);
	if (!o->prev_kv) {
		for (size_t i = 0; i < res->count; i++)
			store_kv_clear(&res->kvs[i]);
		free(res->kvs);
		res->kvs = NULL;
		res->count = 0;
	}
	return rc;
}

static int event_key_cmp(const void *a, const void *b)
{
	const store_event *x = *(store_event *const *)a;
	const store_event *y = *(store_event *const *)b;

	return strcmp(x->kv.key, y->kv.key);
}

/* The events of one revision go out in key order (invariant 3), as the
 * database gives them back: sort those added since index from. */
static void sort_events(batch *bt, size_t from)
{
	if (bt->nev - from > 1)
		qsort(bt->ev + from, bt->nev - from, sizeof(*bt->ev),
		      event_key_cmp);
}

/* Apply one transaction inside the open SQL transaction. Returns 0, a
 * request-level error (STORE_ENOLEASE: nothing written) or an SQL error
 * that fails the whole group. */
static int apply_txn(sq *b, batch *bt, const store_txn *t,
		     store_txn_result *res)
{
	const store_op *ops;
	size_t nops;
	int64_t rev = bt->rev + 1;
	size_t first_event = bt->nev;
	bool wrote = false;
	int rc;

	res->succeeded = true;
	for (size_t i = 0; i < t->ncmps && res->succeeded; i++) {
		latest l;

		rc = get_latest(b, t->cmps[i].key, &l, NULL);
		if (rc)
			return rc;
		res->succeeded = cmp_holds(&t->cmps[i], &l);
	}
	ops = res->succeeded ? t->success : t->failure;
	nops = res->succeeded ? t->nsuccess : t->nfailure;
	for (size_t i = 0; i < nops; i++)
		if (ops[i].type == STORE_OP_PUT && ops[i].lease &&
		    (!lease_exists(b, ops[i].lease) ||
		     batch_revoked(bt, ops[i].lease)))
			return STORE_ENOLEASE;
	if (nops) {
		res->results = calloc(nops, sizeof(*res->results));
		if (!res->results)
			return STORE_ENOMEM;
		res->nresults = nops;
	}
	for (size_t i = 0; i < nops; i++) {
		store_op_result *r = &res->results[i];

		switch (ops[i].type) {
		case STORE_OP_GET:
			rc = query_at(&b->w, ops[i].key, ops[i].end, INT64_MAX,
				      0, &r->kvs, &r->count, NULL);
			break;
		case STORE_OP_PUT:
			rc = op_put(b, bt, &ops[i], rev, r);
			wrote = true;
			break;
		case STORE_OP_DELETE:
			rc = op_delete(b, bt, &ops[i], rev, r);
			wrote = wrote || r->deleted > 0;
			break;
		default:
			rc = STORE_EINVAL;
		}
		if (rc)
			return rc;
	}
	if (wrote)
		bt->rev = rev;
	res->revision = bt->rev;
	sort_events(bt, first_event);
	return 0;
}

static int meta_set(sq *b, const char *name, int64_t value)
{
	sqlite3_stmt *st = stmt(&b->w, ST_META_SET);
	int rc;

	if (!st)
		return map_err(b->w.db, sqlite3_errcode(b->w.db));
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, value);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : map_err(b->w.db, rc);
}

/* Run a one-parameter write statement. */
static int exec_id(sq *b, int id, int64_t a1, int64_t a2)
{
	sqlite3_stmt *st = stmt(&b->w, id);
	int rc;

	if (!st)
		return map_err(b->w.db, sqlite3_errcode(b->w.db));
	sqlite3_bind_int64(st, 1, a1);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, a2);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : map_err(b->w.db, rc);
}

static int apply_grant(sq *b, batch *bt, store_req *r)
{
	int64_t id = b->next_lease_id + (int64_t)bt->ngranted;
	int rc;

	if (grow((void **)&bt->granted, &bt->grantcap, 2 * (bt->ngranted + 1),
		 sizeof(int64_t)))
		return STORE_ENOMEM;
	rc = exec_id(b, ST_LEASE_INSERT, id, r->arg);
	if (rc)
		return rc;
	bt->granted[2 * bt->ngranted] = id;
	bt->granted[2 * bt->ngranted + 1] = r->arg;
	bt->ngranted++;
	r->out = id;
	return 0;
}

/* Delete the keys whose newest row is attached to lease id, in one
 * revision, and forget the lease. */
static int apply_revoke(sq *b, batch *bt, store_req *r)
{
	sqlite3_stmt *st = stmt(&b->w, ST_LEASE_KEYS);
	int64_t rev = bt->rev + 1;
	int64_t deleted = 0;
	size_t first_event = bt->nev;
	int rc = 0, step;

	if (!lease_exists(b, r->arg) || batch_revoked(bt, r->arg)) {
		r->err = STORE_ENOLEASE;
		return 0;
	}
	if (!st)
		return map_err(b->w.db, sqlite3_errcode(b->w.db));
	if (grow((void **)&bt->revoked, &bt->revokecap, bt->nrevoked + 1,
		 sizeof(int64_t)))
		return STORE_ENOMEM;
	sqlite3_bind_int64(st, 1, r->arg);
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		char *key = strdup((const char *)sqlite3_column_text(st, 0));
		latest l;

		rc = key ? get_latest(b, key, &l, NULL) : STORE_ENOMEM;
		if (rc == 0 && l.live && l.lease == r->arg) {
			rc = insert_row(b, key, rev, ROW_TOMBSTONE, 0, 0, 0,
					NULL, 0);
			if (rc == 0)
				rc = batch_event(bt, STORE_EVENT_DELETE, key,
						 NULL, 0, 0, rev, 0, 0);
			deleted++;
		}
		free(key);
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = map_err(b->w.db, step);
	sqlite3_reset(st);
	if (rc == 0)
		rc = exec_id(b, ST_LEASE_DELETE, r->arg, 0);
	if (rc)
		return rc;
	bt->revoked[bt->nrevoked++] = r->arg;
	if (deleted)
		bt->rev = rev;
	sort_events(bt, first_event);
	return 0;
}

static int apply_compact(sq *b, batch *bt, store_req *r)
{
	if (r->arg > bt->rev) {
		r->err = STORE_EFUTURE;
		return 0;
	}
	if (r->arg <= bt->compact_rev) {
		r->err = STORE_ECOMPACTED;
		return 0;
	}
	bt->compact_rev = r->arg;
	return meta_set(b, "compact_rev", r->arg);
}

static int apply_req(sq *b, batch *bt, store_req *r)
{
	int rc;

	r->err = 0;
	switch (r->kind) {
	case STORE_REQ_TXN:
		rc = apply_txn(b, bt, r->txn, &r->res);
		if (rc == STORE_ENOLEASE) {
			store_txn_result_free(&r->res);
			r->err = rc;
			rc = 0;
		}
		return rc;
	case STORE_REQ_LEASE_GRANT:
		return apply_grant(b, bt, r);
	case STORE_REQ_LEASE_REVOKE:
		return apply_revoke(b, bt, r);
	case STORE_REQ_COMPACT:
		return apply_compact(b, bt, r);
	}
	r->err = STORE_EINVAL;
	return 0;
}

/* Run one group commit over reqs and complete each of them. */
static void run_batch(sq *b, struct store_req_list *reqs)
{
	batch bt;
	store_req *r, *nx;
	int rc;

	memset(&bt, 0, sizeof(bt));
	bt.rev = b->rev;
	bt.compact_rev = b->compact_rev;
	rc = exec(b->w.db, "BEGIN IMMEDIATE");
	STAILQ_FOREACH(r, reqs, link)
	{
		if (rc)
			break;
		rc = apply_req(b, &bt, r);
	}
	if (rc == 0)
		rc = exec(b->w.db, "COMMIT");
	if (rc) {
		if (!sqlite3_get_autocommit(b->w.db))
			exec(b->w.db, "ROLLBACK");
		STAILQ_FOREACH(r, reqs, link)
		{
			store_txn_result_free(&r->res);
			r->err = rc;
		}
		for (size_t i = 0; i < bt.nev; i++)
			store_event_unref(bt.ev[i]);
		free(bt.ev);
	} else {
		for (size_t i = 0; i < bt.ngranted; i++)
			lease_add(b, bt.granted[2 * i], bt.granted[2 * i + 1]);
		b->next_lease_id += (int64_t)bt.ngranted;
		for (size_t i = 0; i < bt.nrevoked; i++)
			lease_remove(b, bt.revoked[i]);
		if (bt.compact_rev > b->compact_rev) {
			b->compact_rev = bt.compact_rev;
			store_set_compact_revision(b->s, bt.compact_rev);
		}
		b->rev = bt.rev;
		store_autocompact_sample(&b->ac, bt.rev);
		store_publish(b->s, bt.ev, bt.nev, bt.rev);
	}
	free(bt.granted);
	free(bt.revoked);
	for (r = STAILQ_FIRST(reqs); r; r = nx) {
		nx = STAILQ_NEXT(r, link);
		store_req_done(r);
	}
}

/* ---- background work: lease expiry, compaction -------------------------- */

static void internal_done(int err, store_txn_result *res, void *arg)
{
	(void)err;
	(void)arg;
	store_txn_result_delete(res);
}

static store_req *internal_req(store_req_kind kind, int64_t arg)
{
	store_req *r = calloc(1, sizeof(*r));

	if (r) {
		r->kind = kind;
		r->arg = arg;
		r->cb = internal_done;
	}
	return r;
}

/* Queue revokes for expired leases; return ms until the next expiry. */
static int64_t expire_leases(sq *b, struct store_req_list *out)
{
	int64_t now = now_ms(), next = INT64_MAX;

	pthread_mutex_lock(&b->lease_mu);
	for (size_t i = 0; i < b->nleases; i++) {
		lease *l = &b->leases[i];
		store_req *r;

		if (l->expires_ms == INT64_MAX)
			continue;
		if (l->expires_ms > now) {
			if (l->expires_ms - now < next)
				next = l->expires_ms - now;
			continue;
		}
		r = internal_req(STORE_REQ_LEASE_REVOKE, l->id);
		if (!r)
			break;
		l->expires_ms = INT64_MAX; /* being revoked */
		STAILQ_INSERT_TAIL(out, r, link);
	}
	pthread_mutex_unlock(&b->lease_mu);
	return next;
}

/* One row of a reclaim window. */
typedef struct reclaim_row {
	char *key;
	int64_t rev;
	bool tombstone;
} reclaim_row;

static int reclaim_delete(sq *b, int id, const reclaim_row *r)
{
	sqlite3_stmt *st = stmt(&b->w, id);
	int rc;

	if (!st)
		return map_err(b->w.db, sqlite3_errcode(b->w.db));
	sqlite3_bind_text(st, 1, r->key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, r->rev);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : map_err(b->w.db, rc);
}

/* Read the rows of revisions [lo, hi) into *rows. */
static int reclaim_scan(sq *b, int64_t lo, int64_t hi, reclaim_row **rows,
			size_t *n)
{
	sqlite3_stmt *st = stmt(&b->w, ST_RECLAIM_SCAN);
	size_t cap = 0;
	int rc = 0, step;

	*rows = NULL;
	*n = 0;
	if (!st)
		return map_err(b->w.db, sqlite3_errcode(b->w.db));
	sqlite3_bind_int64(st, 1, lo);
	sqlite3_bind_int64(st, 2, hi);
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		reclaim_row *r;

		rc = grow((void **)rows, &cap, *n + 1, sizeof(**rows));
		if (rc)
			break;
		r = &(*rows)[*n];
		r->key = strdup((const char *)sqlite3_column_text(st, 0));
		r->rev = sqlite3_column_int64(st, 1);
		r->tombstone = sqlite3_column_int(st, 2) == ROW_TOMBSTONE;
		if (!r->key)
			rc = STORE_ENOMEM;
		else
			(*n)++;
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = map_err(b->w.db, step);
	sqlite3_reset(st);
	return rc;
}

/* Reclaim one window of compacted history: every row at a revision in
 * [reclaimed, hi), hi <= compact_rev, supersedes the older rows of its key,
 * and a tombstone there is itself no longer needed. Rows at the compact
 * revision are left for the next window, so range at it still works. */
static void reclaim_step(sq *b)
{
	int64_t hi = b->reclaimed + COMPACT_CHUNK;
	reclaim_row *rows = NULL;
	size_t n = 0;
	int rc;

	if (hi > b->compact_rev)
		hi = b->compact_rev;
	rc = exec(b->w.db, "BEGIN IMMEDIATE");
	if (rc == 0)
		rc = reclaim_scan(b, b->reclaimed, hi, &rows, &n);
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = reclaim_delete(b, ST_RECLAIM_OLDER, &rows[i]);
		if (rc == 0 && rows[i].tombstone)
			rc = reclaim_delete(b, ST_RECLAIM_ROW, &rows[i]);
	}
	for (size_t i = 0; i < n; i++)
		free(rows[i].key);
	free(rows);
	if (rc == 0)
		rc = meta_set(b, "reclaimed", hi);
	if (rc == 0)
		rc = exec(b->w.db, "COMMIT");
	if (rc == 0) {
		b->reclaimed = hi;
		return;
	}
	/* Out of space, say: try again in a while; nothing is lost. */
	if (!sqlite3_get_autocommit(b->w.db))
		exec(b->w.db, "ROLLBACK");
	b->reclaim_after_ms = now_ms() + TICK_MS;
}

static bool reclaim_due(const sq *b)
{
	return b->reclaimed < b->compact_rev && now_ms() >= b->reclaim_after_ms;
}

static void *committer(void *arg)
{
	sq *b = arg;
	struct store_req_list reqs;

	for (;;) {
		int64_t wait_ms, now = now_ms();
		size_t n = 0;
		store_req *r;

		STAILQ_INIT(&reqs);
		wait_ms = expire_leases(b, &reqs);
		if (now - b->last_tick_ms >= TICK_MS) {
			int64_t target = store_autocompact_target(
			    &b->ac, b->rev, b->compact_rev);

			b->last_tick_ms = now;
			if (target && (r = internal_req(STORE_REQ_COMPACT,
							target)) != NULL)
				STAILQ_INSERT_TAIL(&reqs, r, link);
		}
		if (wait_ms > TICK_MS)
			wait_ms = TICK_MS;
		if (reclaim_due(b))
			wait_ms = 0;

		pthread_mutex_lock(&b->mu);
		if (STAILQ_EMPTY(&b->queue) && STAILQ_EMPTY(&reqs) &&
		    !b->closing && wait_ms > 0) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += wait_ms / 1000;
			ts.tv_nsec += (wait_ms % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&b->cv, &b->mu, &ts);
		}
		while (n < b->max_batch && (r = STAILQ_FIRST(&b->queue))) {
			STAILQ_REMOVE_HEAD(&b->queue, link);
			STAILQ_INSERT_TAIL(&reqs, r, link);
			n++;
		}
		bool stop = b->closing && STAILQ_EMPTY(&b->queue) &&
			    STAILQ_EMPTY(&reqs);
		pthread_mutex_unlock(&b->mu);
		if (stop)
			break;
		if (!STAILQ_EMPTY(&reqs))
			run_batch(b, &reqs);
		/* One window of reclaiming per round, between write groups,
		 * so that it keeps up under steady writes. */
		if (reclaim_due(b))
			reclaim_step(b);
	}
	return NULL;
}

static int sq_submit(void *be, store_req *r)
{
	sq *b = be;
	int rc = 0;

	pthread_mutex_lock(&b->mu);
	if (b->closing)
		rc = STORE_ECLOSED;
	else {
		STAILQ_INSERT_TAIL(&b->queue, r, link);
		pthread_cond_signal(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

/* ---- open and close ---------------------------------------------------- */

static void sq_free(sq *b)
{
	while (b->pool_free) {
		conn *c = b->pool_free;

		b->pool_free = c->next_free;
		conn_close(c);
		free(c);
	}
	if (b->w.db)
		conn_close(&b->w);
	if (b->lockfd >= 0)
		close(b->lockfd);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->lease_mu);
	pthread_mutex_destroy(&b->pool_mu);
	pthread_cond_destroy(&b->pool_cv);
	free(b->leases);
	store_autocompact_free(&b->ac);
	free(b->dir);
	free(b->path);
	free(b);
}

static void sq_close(void *be)
{
	sq *b = be;

	pthread_mutex_lock(&b->mu);
	b->closing = true;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	pthread_join(b->thread, NULL);
	sq_free(b);
}

/* Take the data directory's lock file; fd in *fd. */
static int lock_dir(const char *dir, int *fd, char *errbuf, size_t errlen)
{
	char path[PATH_MAX];

	snprintf(path, sizeof path, "%s/%s", dir, LOCK_NAME);
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd < 0 && errno == EROFS) {
		store_errf(errbuf, errlen,
			   "%s is on a read-only file system; signalbox needs "
			   "to write there",
			   dir);
		return STORE_EROFS;
	}
	if (*fd < 0) {
		store_errf(errbuf, errlen, "cannot open %s: %s", path,
			   strerror(errno));
		return errno == ENOSPC ? STORE_ENOSPC : STORE_EIO;
	}
	if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;

		close(*fd);
		*fd = -1;
		store_errf(errbuf, errlen,
			   "%s is in use by another signalbox process (%s); "
			   "stop it first",
			   dir, strerror(e));
		return e == EWOULDBLOCK ? STORE_ELOCKED : STORE_EIO;
	}
	return 0;
}

static int make_dir(const char *dir, char *errbuf, size_t errlen)
{
	if (mkdir(dir, 0700) == 0 || errno == EEXIST)
		return 0;
	store_errf(errbuf, errlen, "cannot create data directory %s: %s", dir,
		   strerror(errno));
	return errno == EROFS ? STORE_EROFS : STORE_EIO;
}

static int64_t query_int(sqlite3 *db, const char *sql, int64_t dflt)
{
	sqlite3_stmt *st;
	int64_t v = dflt;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return dflt;
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int load_leases(sq *b)
{
	sqlite3_stmt *st;
	int rc = 0;

	if (sqlite3_prepare_v2(b->w.db, "SELECT id, ttl FROM lease", -1, &st,
			       NULL) != SQLITE_OK)
		return map_err(b->w.db, sqlite3_errcode(b->w.db));
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
		rc = lease_add(b, sqlite3_column_int64(st, 0),
			       sqlite3_column_int64(st, 1));
	sqlite3_finalize(st);
	b->next_lease_id =
	    query_int(b->w.db, "SELECT MAX(id) FROM lease", 0) + 1;
	return rc;
}

/* Create the schema, check its version, read the revisions. */
static int init_db(sq *b, char *errbuf, size_t errlen)
{
	int64_t ver;
	int rc;

	rc = exec(b->w.db, "BEGIN IMMEDIATE");
	if (rc == 0)
		rc = exec(b->w.db, schema_sql);
	if (rc == 0) {
		ver = query_int(
		    b->w.db, "SELECT value FROM meta WHERE name = 'schema'", 0);
		if (ver > SCHEMA_VERSION) {
			store_errf(errbuf, errlen,
				   "%s has schema version %lld, newer than "
				   "this signalbox (%d); upgrade signalbox",
				   b->path, (long long)ver, SCHEMA_VERSION);
			exec(b->w.db, "ROLLBACK");
			return STORE_EINVAL;
		}
		rc = meta_set(b, "schema", SCHEMA_VERSION);
	}
	if (rc == 0)
		rc = exec(b->w.db, "COMMIT");
	if (rc) {
		store_errf(errbuf, errlen, "cannot initialise %s: %s", b->path,
			   sqlite3_errmsg(b->w.db));
		if (!sqlite3_get_autocommit(b->w.db))
			exec(b->w.db, "ROLLBACK");
		return rc;
	}
	b->rev = query_int(b->w.db, "SELECT MAX(rev) FROM log", 0);
	b->compact_rev = query_int(
	    b->w.db, "SELECT value FROM meta WHERE name = 'compact_rev'", 0);
	b->reclaimed = query_int(
	    b->w.db, "SELECT value FROM meta WHERE name = 'reclaimed'", 0);
	if (b->reclaimed < b->compact_rev) {
		int64_t lo = query_int(b->w.db, "SELECT MIN(rev) FROM log", 0);

		if (lo > b->reclaimed)
			b->reclaimed = lo;
	}
	return load_leases(b);
}

static void sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

int store_sqlite_open(store *s, const store_options *o, void **bctx,
		      char *errbuf, size_t errlen)
{
	pthread_condattr_t ca;
	sq *b;
	int rc;

	b = calloc(1, sizeof(*b));
	if (!b)
		return STORE_ENOMEM;
	b->s = s;
	b->lockfd = -1;
	b->max_batch = o->max_batch ? o->max_batch : 1024;
	STAILQ_INIT(&b->queue);
	pthread_mutex_init(&b->mu, NULL);
	pthread_mutex_init(&b->lease_mu, NULL);
	pthread_mutex_init(&b->pool_mu, NULL);
	pthread_cond_init(&b->pool_cv, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cv, &ca);
	pthread_condattr_destroy(&ca);

	b->dir = strdup(o->data_dir);
	if (!b->dir || asprintf(&b->path, "%s/%s", o->data_dir, DB_NAME) < 0) {
		b->path = NULL;
		rc = STORE_ENOMEM;
		goto fail;
	}
	if (store_autocompact_init(&b->ac, o->history_revisions,
				   o->history_seconds)) {
		rc = STORE_ENOMEM;
		goto fail;
	}
	rc = make_dir(b->dir, errbuf, errlen);
	if (rc == 0)
		rc = lock_dir(b->dir, &b->lockfd, errbuf, errlen);
	if (rc == 0)
		rc = conn_open(&b->w, b->path, true, errbuf, errlen);
	if (rc == 0)
		rc = init_db(b, errbuf, errlen);
	if (rc)
		goto fail;
	sync_dir(b->dir);
	store_set_initial(s, b->rev, b->compact_rev);
	store_autocompact_sample(&b->ac, b->rev);
	b->last_tick_ms = now_ms();
	if (pthread_create(&b->thread, NULL, committer, b) != 0) {
		store_errf(errbuf, errlen, "cannot start the store thread");
		rc = STORE_ENOMEM;
		goto fail;
	}
	*bctx = b;
	return 0;
fail:
	sq_free(b);
	return rc;
}

const store_backend store_sqlite_backend = {
    .name = "sqlite",
    .range = sq_range,
    .submit = sq_submit,
    .history = sq_history,
    .lease_keepalive = sq_lease_keepalive,
    .lease_ttl = sq_lease_ttl,
    .db_size = sq_db_size,
    .close = sq_close,
};

/* ---- backup and restore ---------------------------------------------------
 */

/* Copy database src into dst (both open) with the online backup API, in one
 * step: the source is read in one read transaction, so the copy is a
 * consistent snapshot even while another process writes. */
static int copy_db(sqlite3 *dst, sqlite3 *src)
{
	sqlite3_backup *bk = sqlite3_backup_init(dst, "main", src, "main");
	int rc;

	if (!bk)
		return map_err(dst, sqlite3_errcode(dst));
	rc = sqlite3_backup_step(bk, -1);
	sqlite3_backup_finish(bk);
	return rc == SQLITE_DONE ? 0 : map_err(dst, rc);
}

/* integrity_check and our schema; message in errbuf. */
static int check_db(sqlite3 *db, const char *what, char *errbuf, size_t errlen)
{
	sqlite3_stmt *st;
	int rc = STORE_ECORRUPT;

	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) ==
	    SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW &&
		    strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0)
			rc = 0;
		sqlite3_finalize(st);
	}
	if (rc) {
		store_errf(errbuf, errlen,
			   "%s failed its integrity check (%s); it is not a "
			   "usable signalbox database",
			   what, sqlite3_errmsg(db));
		return rc;
	}
	if (query_int(db, "SELECT value FROM meta WHERE name = 'schema'", -1) <
	    1) {
		store_errf(errbuf, errlen,
			   "%s is an SQLite database, but not a signalbox "
			   "one (no schema version)",
			   what);
		return STORE_EINVAL;
	}
	return 0;
}

static int open_plain(const char *path, int flags, sqlite3 **db, char *errbuf,
		      size_t errlen)
{
	int rc = sqlite3_open_v2(path, db, flags, NULL);

	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(*db, 10000);
		return 0;
	}
	store_errf(errbuf, errlen, "cannot open %s: %s", path,
		   *db ? sqlite3_errmsg(*db) : "out of memory");
	rc = map_err(*db, rc);
	sqlite3_close(*db);
	*db = NULL;
	return rc;
}

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0 || fsync(fd) != 0)
		rc = STORE_EIO;
	if (fd >= 0)
		close(fd);
	return rc;
}

int store_backup(const char *data_dir, const char *file, char *errbuf,
		 size_t errlen)
{
	char src_path[PATH_MAX], tmp[PATH_MAX], *dir, *slash;
	sqlite3 *src = NULL, *dst = NULL;
	struct stat st;
	int rc;

	snprintf(src_path, sizeof src_path, "%s/%s", data_dir, DB_NAME);
	if (stat(src_path, &st) != 0) {
		store_errf(errbuf, errlen, "no signalbox database in %s (%s)",
			   data_dir, strerror(errno));
		return STORE_EINVAL;
	}
	snprintf(tmp, sizeof tmp, "%s.tmp-%d", file, (int)getpid());
	unlink(tmp);
	rc = open_plain(src_path, SQLITE_OPEN_READWRITE, &src, errbuf, errlen);
	if (rc == 0)
		rc = open_plain(tmp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
				&dst, errbuf, errlen);
	if (rc)
		goto out;
	rc = copy_db(dst, src);
	if (rc) {
		store_errf(errbuf, errlen, "copying %s to %s failed: %s",
			   src_path, tmp, sqlite3_errmsg(dst));
		goto out;
	}
	/* One self-contained file, not WAL. */
	rc = exec(dst, "PRAGMA journal_mode=DELETE");
	if (rc == 0)
		rc = check_db(dst, tmp, errbuf, errlen);
	if (rc)
		goto out;
	sqlite3_close(dst);
	dst = NULL;
	if (fsync_path(tmp) != 0 || rename(tmp, file) != 0) {
		store_errf(errbuf, errlen, "cannot write %s: %s", file,
			   strerror(errno));
		rc = STORE_EIO;
		goto out;
	}
	dir = strdup(file);
	if (dir) {
		slash = strrchr(dir, '/');
		if (slash)
			*(slash == dir ? slash + 1 : slash) = '\0';
		sync_dir(slash ? dir : ".");
		free(dir);
	}
out:
	sqlite3_close(dst);
	sqlite3_close(src);
	if (rc)
		unlink(tmp);
	return rc;
}

int store_restore(const char *file, const char *data_dir, char *errbuf,
		  size_t errlen)
{
	char path[PATH_MAX], keep[PATH_MAX];
	sqlite3 *src = NULL, *dst = NULL;
	struct stat st;
	int lockfd = -1, rc;

	rc = open_plain(file, SQLITE_OPEN_READONLY, &src, errbuf, errlen);
	if (rc == 0)
		rc = check_db(src, file, errbuf, errlen);
	if (rc == 0)
		rc = make_dir(data_dir, errbuf, errlen);
	if (rc == 0)
		rc = lock_dir(data_dir, &lockfd, errbuf, errlen);
	if (rc)
		goto out;
	snprintf(path, sizeof path, "%s/%s", data_dir, DB_NAME);
	if (stat(path, &st) == 0) {
		/* Keep what was there, in case the restore was a mistake. */
		snprintf(keep, sizeof keep, "%s/%s.before-restore", data_dir,
			 DB_NAME);
		rc = store_backup(data_dir, keep, errbuf, errlen);
		if (rc)
			goto out;
	}
	rc = open_plain(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &dst,
			errbuf, errlen);
	if (rc == 0)
		rc = exec(dst, "PRAGMA journal_mode=WAL");
	if (rc == 0) {
		rc = copy_db(dst, src);
		if (rc)
			store_errf(errbuf, errlen,
				   "restoring into %s failed: %s", path,
				   sqlite3_errmsg(dst));
	}
	if (rc == 0)
		rc = check_db(dst, path, errbuf, errlen);
out:
	sqlite3_close(dst);
	sqlite3_close(src);
	if (lockfd >= 0)
		close(lockfd);
	return rc;
}
