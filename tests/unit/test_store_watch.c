/*
 * test_store_watch.c -- the store's watch half, against store.h: a watch
 * from 0 sees only new events; a watch resumed from any retained revision
 * sees exactly the suffix of the log (checked for every start revision
 * against a model recorded while writing, with the default ring and with
 * a tiny ring that forces the database fallback, also while writes go on);
 * interval filtering; the shape of DELETE events; the events of one
 * multi-key transaction; STORE_ECOMPACTED at open and for a watcher that
 * fell behind a compaction; timeouts, wake-ups and store_close; progress;
 * store_set_notify; and resuming a watch after the store was reopened.
 */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define KEY_MIN "\x01"

/* ---- fixture: a scratch directory, and the store open on it (if any),
 * both cleaned up by the teardown even when an assertion failed. ---- */

typedef struct fx {
	char *dir;
	store *s;
	store_watch *w[64]; /* watchers still open, closed by the teardown */
} fx;

static fx *cur_fx;

/* store_watch_open and store_watch_close, keeping track of the open
 * watchers so that a failed test does not leak them. */
static int wopen(store *s, const char *key, const char *end, int64_t start,
		 store_watch **out)
{
	int rc = store_watch_open(s, key, end, start, out);

	if (rc == 0) {
		for (size_t i = 0; i < 64; i++)
			if (!cur_fx->w[i]) {
				cur_fx->w[i] = *out;
				break;
			}
	}
	return rc;
}

static void wclose(store_watch *w)
{
	for (size_t i = 0; w && i < 64; i++)
		if (cur_fx->w[i] == w)
			cur_fx->w[i] = NULL;
	store_watch_close(w);
}

static int fx_setup(void **state)
{
	fx *f = calloc(1, sizeof *f);

	if (!f)
		return -1;
	f->dir = tu_tmpdir("watch");
	cur_fx = f;
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	fx *f = *state;

	store_close(f->s);
	for (size_t i = 0; i < 64; i++)
		store_watch_close(f->w[i]);
	cur_fx = NULL;
	tu_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static store *fx_open(void **state)
{
	fx *f = *state;

	assert_null(f->s);
	f->s = tu_open(f->dir);
	return f->s;
}

/* A store with a tiny in-memory ring: most history comes from the db. */
static store *fx_open_small_ring(void **state)
{
	fx *f = *state;
	store_options o;

	assert_null(f->s);
	store_options_init(&o);
	o.history_revisions = 0;
	o.history_seconds = 0;
	o.ring_events = 16;
	o.ring_bytes = 512;
	f->s = tu_open_opts(f->dir, &o);
	return f->s;
}

static void fx_close(void **state)
{
	fx *f = *state;

	store_close(f->s);
	f->s = NULL;
}

/* ---- helpers ------------------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t put_str(store *s, const char *key, const char *value)
{
	int64_t rev = -1;

	assert_int_equal(store_put(s, key, value, strlen(value), 0, &rev), 0);
	return rev;
}

static store_op op_put(const char *key, const char *value)
{
	store_op o = {.type = STORE_OP_PUT,
		      .key = key,
		      .value = value,
		      .value_len = strlen(value)};

	return o;
}

static store_op op_del(const char *key, const char *end)
{
	store_op o = {.type = STORE_OP_DELETE, .key = key, .end = end};

	return o;
}

/* An event as recorded by the model or copied from a watcher. */
typedef struct rec {
	store_event_type type;
	char key[24];
	char value[40];
	size_t value_len;
	int64_t create, mod, version, lease;
} rec;

typedef struct log {
	rec *ev;
	size_t n, cap;
} log_t;

static void log_add(log_t *l, const rec *r)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 256;
		l->ev = realloc(l->ev, l->cap * sizeof *l->ev);
		assert_non_null(l->ev);
	}
	l->ev[l->n++] = *r;
}

static void log_free(log_t *l)
{
	free(l->ev);
	memset(l, 0, sizeof *l);
}

/* Copy a store event into a rec, checking the shape the header promises
 * for each type. */
static void rec_from_event(rec *r, const store_event *e)
{
	memset(r, 0, sizeof *r);
	assert_true(e->type == STORE_EVENT_PUT ||
		    e->type == STORE_EVENT_DELETE);
	r->type = e->type;
	assert_non_null(e->kv.key);
	assert_true(strlen(e->kv.key) < sizeof r->key);
	strcpy(r->key, e->kv.key);
	assert_true(e->kv.value_len < sizeof r->value);
	if (e->kv.value_len) {
		assert_non_null(e->kv.value);
		memcpy(r->value, e->kv.value, e->kv.value_len);
	}
	if (e->kv.value)
		assert_int_equal(e->kv.value[e->kv.value_len], '\0');
	r->value_len = e->kv.value_len;
	r->create = e->kv.create_revision;
	r->mod = e->kv.mod_revision;
	r->version = e->kv.version;
	r->lease = e->kv.lease;
	assert_true(r->mod > 0);
	if (e->type == STORE_EVENT_DELETE) {
		assert_int_equal(r->value_len, 0);
		assert_int_equal(r->create, 0);
		assert_int_equal(r->version, 0);
		assert_int_equal(r->lease, 0);
	} else {
		assert_true(r->create > 0 && r->create <= r->mod);
		assert_true(r->version > 0);
	}
}

static void rec_equal(const rec *got, const rec *want, size_t i)
{
	if (got->type != want->type || strcmp(got->key, want->key) != 0 ||
	    got->mod != want->mod)
		fail_msg("event %zu: got %s %s @%lld, want %s %s @%lld", i,
			 got->type == STORE_EVENT_PUT ? "PUT" : "DELETE",
			 got->key, (long long)got->mod,
			 want->type == STORE_EVENT_PUT ? "PUT" : "DELETE",
			 want->key, (long long)want->mod);
	assert_int_equal(got->value_len, want->value_len);
	assert_memory_equal(got->value, want->value, want->value_len);
	assert_int_equal(got->create, want->create);
	assert_int_equal(got->version, want->version);
	assert_int_equal(got->lease, want->lease);
}

/* Read from w until want events arrived (or 20 s passed), appending them
 * to got, max at a time. Checks that events come in (revision, key) order,
 * that progress never goes back and covers what was delivered (all but
 * possibly the last revision, whose events a small max may split), and,
 * when exp (the events expected from here on) is given, that progress
 * stays below the next event not yet delivered. Returns the number read. */
static size_t collect_exp(store_watch *w, size_t want, log_t *got, size_t max,
			  const log_t *exp)
{
	int64_t deadline = now_ms() + 20000, last_progress = -1;
	size_t start = got->n;

	while (got->n - start < want && now_ms() < deadline) {
		store_event **evs = NULL;
		int64_t progress = -1;
		size_t n = 0;

		assert_int_equal(
		    store_watch_next(w, 200, max, &evs, &n, &progress), 0);
		if (n > max)
			fail_msg(
			    "store_watch_next(max %zu) returned %zu events",
			    max, n);
		assert_true(progress >= last_progress);
		last_progress = progress;
		for (size_t i = 0; i < n; i++) {
			rec r;

			rec_from_event(&r, evs[i]);
			if (got->n > 0) {
				const rec *p = &got->ev[got->n - 1];

				if (p->mod > r.mod ||
				    (p->mod == r.mod &&
				     strcmp(p->key, r.key) >= 0))
					fail_msg("not in (revision, key) "
						 "order: %s@%lld, then "
						 "%s@%lld",
						 p->key, (long long)p->mod,
						 r.key, (long long)r.mod);
			}
			log_add(got, &r);
		}
		store_events_free(evs, n);
		if (got->n > 0)
			assert_true(progress >= got->ev[got->n - 1].mod - 1);
		if (exp && got->n - start < exp->n) {
			int64_t next = exp->ev[got->n - start].mod;

			if (progress >= next)
				fail_msg("progress %lld but the event at %lld "
					 "was not delivered yet",
					 (long long)progress, (long long)next);
		}
	}
	return got->n - start;
}

static size_t collect(store_watch *w, size_t want, log_t *got, size_t max)
{
	return collect_exp(w, want, got, max, NULL);
}

/* No further event arrives within a short wait. */
static void expect_quiet(store_watch *w, int ms)
{
	store_event **evs = NULL;
	size_t n = 99;

	assert_int_equal(store_watch_next(w, ms, 16, &evs, &n, NULL), 0);
	if (n) {
		rec r;

		rec_from_event(&r, evs[0]);
		fail_msg("unexpected event %s@%lld", r.key, (long long)r.mod);
	}
	store_events_free(evs, n);
}

/* Open a watch, collect exactly the events of want with mod >= from and
 * key in [key, end), compare, and check nothing else comes. */
static void check_suffix(store *s, const log_t *want, const char *key,
			 const char *end, int64_t from, size_t max)
{
	log_t exp = {0}, got = {0};
	store_watch *w = NULL;

	for (size_t i = 0; i < want->n; i++) {
		const rec *r = &want->ev[i];
		bool in = strcmp(r->key, key) >= 0 &&
			  (end ? (!*end || strcmp(r->key, end) < 0)
			       : strcmp(r->key, key) == 0);

		if (r->mod >= from && in)
			log_add(&exp, r);
	}
	assert_int_equal(wopen(s, key, end, from, &w), 0);
	assert_non_null(w);
	collect_exp(w, exp.n, &got, max, &exp);
	if (got.n != exp.n)
		fail_msg("watch from %lld: got %zu events, want %zu",
			 (long long)from, got.n, exp.n);
	for (size_t i = 0; i < exp.n; i++)
		rec_equal(&got.ev[i], &exp.ev[i], i);
	expect_quiet(w, 20);
	wclose(w);
	log_free(&exp);
	log_free(&got);
}

/* ---- a model of a small key space, recording the event log ------------ */

#define NK 8

typedef struct mstate {
	bool exists;
	char value[40];
	int64_t create, version;
} mstate;

typedef struct wmodel {
	mstate k[NK];
	log_t log;
	int64_t rev;
	uint32_t rnd;
} wmodel;

static const char *const knames[NK] = {"w/a", "w/b", "w/c", "w/d",
				       "w/e", "w/f", "w/g", "w/h"};

static uint32_t rnd(wmodel *m)
{
	m->rnd = m->rnd * 1103515245u + 12345u;
	return (m->rnd >> 16) & 0x7fff;
}

static void m_put(wmodel *m, int i, const char *val, int64_t rev, rec *out)
{
	mstate *k = &m->k[i];

	if (!k->exists) {
		k->exists = true;
		k->create = rev;
		k->version = 0;
	}
	k->version++;
	snprintf(k->value, sizeof k->value, "%s", val);
	memset(out, 0, sizeof *out);
	out->type = STORE_EVENT_PUT;
	strcpy(out->key, knames[i]);
	strcpy(out->value, val);
	out->value_len = strlen(val);
	out->create = k->create;
	out->mod = rev;
	out->version = k->version;
}

static void m_del(wmodel *m, int i, int64_t rev, rec *out)
{
	memset(&m->k[i], 0, sizeof m->k[i]);
	memset(out, 0, sizeof *out);
	out->type = STORE_EVENT_DELETE;
	strcpy(out->key, knames[i]);
	out->mod = rev;
}

/* Write one revision of a random kind and record its events. */
static void m_step(store *s, wmodel *m)
{
	int kind = rnd(m) % 10, i = rnd(m) % NK;
	char val[40];
	rec r;

	snprintf(val, sizeof val, "v%lld-%d", (long long)m->rev + 1,
		 (int)rnd(m));
	if (kind < 5 || (kind < 7 && !m->k[i].exists)) {
		/* One put. */
		int64_t rev = put_str(s, knames[i], val);

		assert_int_equal(rev, m->rev + 1);
		m_put(m, i, val, rev, &r);
		log_add(&m->log, &r);
	} else if (kind < 7) {
		/* Delete one existing key. */
		int64_t n, rev;

		assert_int_equal(store_delete(s, knames[i], NULL, &n, &rev), 0);
		assert_int_equal(n, 1);
		assert_int_equal(rev, m->rev + 1);
		m_del(m, i, rev, &r);
		log_add(&m->log, &r);
	} else if (kind < 9) {
		/* A txn over three keys given in descending order: put on
		 * the first two, put or delete (if it exists) on the third.
		 * Events must come in key order. */
		int a = (i + 2) % NK, b = (i + 1) % NK, c = i;
		int idx[3], t;
		bool del_c = m->k[c].exists && (rnd(m) & 1);
		store_op ops[3];
		store_txn txn = {.success = ops, .nsuccess = 3};
		store_txn_result res;

		/* Sort a, b, c descending for the op list. */
		idx[0] = a;
		idx[1] = b;
		idx[2] = c;
		for (int x = 0; x < 3; x++)
			for (int y = x + 1; y < 3; y++)
				if (idx[y] > idx[x]) {
					t = idx[x];
					idx[x] = idx[y];
					idx[y] = t;
				}
		for (int x = 0; x < 3; x++)
			ops[x] = (idx[x] == c && del_c)
				     ? op_del(knames[c], NULL)
				     : op_put(knames[idx[x]], val);
		assert_int_equal(store_txn_run(s, &txn, &res), 0);
		assert_true(res.succeeded);
		assert_int_equal(res.revision, m->rev + 1);
		store_txn_result_free(&res);
		for (int x = 2; x >= 0; x--) {
			if (idx[x] == c && del_c)
				m_del(m, c, m->rev + 1, &r);
			else
				m_put(m, idx[x], val, m->rev + 1, &r);
			log_add(&m->log, &r);
		}
	} else {
		/* Delete a range [knames[lo], knames[lo + 3]) holding at
		 * least one key (else put). */
		int lo = i % (NK - 3), cnt = 0;
		int64_t n, rev;

		for (int x = lo; x < lo + 3; x++)
			cnt += m->k[x].exists;
		if (!cnt) {
			rev = put_str(s, knames[lo], val);
			m_put(m, lo, val, rev, &r);
			log_add(&m->log, &r);
		} else {
			assert_int_equal(store_delete(s, knames[lo],
						      knames[lo + 3], &n, &rev),
					 0);
			assert_int_equal(n, cnt);
			for (int x = lo; x < lo + 3; x++) {
				if (!m->k[x].exists)
					continue;
				m_del(m, x, rev, &r);
				log_add(&m->log, &r);
			}
		}
		assert_int_equal(rev, m->rev + 1);
	}
	m->rev++;
	assert_int_equal(store_revision(s), m->rev);
}

/* ---- tests -------------------------------------------------------------- */

static void test_watch_from_zero(void **state)
{
	store *s = fx_open(state);
	store_watch *w = NULL;
	log_t got = {0};

	put_str(s, "a", "1");
	put_str(s, "b", "2");
	put_str(s, "a", "3");
	assert_int_equal(wopen(s, KEY_MIN, "", 0, &w), 0);
	expect_quiet(w, 0);
	expect_quiet(w, 50);

	put_str(s, "c", "4"); /* 4 */
	put_str(s, "a", "5"); /* 5 */
	assert_int_equal(collect(w, 2, &got, 16), 2);
	assert_string_equal(got.ev[0].key, "c");
	assert_int_equal(got.ev[0].mod, 4);
	assert_int_equal(got.ev[0].create, 4);
	assert_int_equal(got.ev[0].version, 1);
	assert_string_equal(got.ev[1].key, "a");
	assert_int_equal(got.ev[1].mod, 5);
	assert_int_equal(got.ev[1].create, 1);
	assert_int_equal(got.ev[1].version, 3);
	assert_memory_equal(got.ev[1].value, "5", 2);
	expect_quiet(w, 50);

	wclose(w);
	wclose(NULL);
	log_free(&got);
}

static void test_watch_future_start(void **state)
{
	store *s = fx_open(state);
	store_watch *w = NULL;
	log_t got = {0};

	put_str(s, "a", "1"); /* 1 */
	/* Starting beyond the current revision is allowed. */
	assert_int_equal(wopen(s, KEY_MIN, "", 4, &w), 0);
	put_str(s, "a", "2"); /* 2 */
	put_str(s, "a", "3"); /* 3 */
	expect_quiet(w, 50);
	put_str(s, "a", "4"); /* 4 */
	put_str(s, "a", "5"); /* 5 */
	assert_int_equal(collect(w, 2, &got, 16), 2);
	assert_int_equal(got.ev[0].mod, 4);
	assert_int_equal(got.ev[1].mod, 5);
	expect_quiet(w, 20);
	wclose(w);
	log_free(&got);
}

/* Resume from every revision 1..N+1 over the whole key space, a single
 * key and an interval, with max 1 (one event at a time) and 1000. */
static void resume_every_revision(store *s, int nrev)
{
	wmodel *m = calloc(1, sizeof *m);

	assert_non_null(m);
	m->rnd = 12345;
	for (int i = 0; i < nrev; i++)
		m_step(s, m);
	for (int64_t from = 1; from <= m->rev + 1; from++) {
		check_suffix(s, &m->log, KEY_MIN, "", from, 1000);
		check_suffix(s, &m->log, "w/c", "w/f", from, 1000);
		check_suffix(s, &m->log, "w/d", NULL, from, 1000);
	}
	check_suffix(s, &m->log, KEY_MIN, "", 1, 1);
	check_suffix(s, &m->log, KEY_MIN, "", 1, 7);
	log_free(&m->log);
	free(m);
}

static void test_watch_resume_every_revision(void **state)
{
	resume_every_revision(fx_open(state), 120);
}

static void test_watch_resume_small_ring(void **state)
{
	/* 16 events in memory: almost every start is older than the ring
	 * and is served from the database. */
	resume_every_revision(fx_open_small_ring(state), 200);
}

typedef struct bg_writer {
	store *s;
	int n;
	int errs;
} bg_writer;

static void *bg_writer_main(void *p)
{
	bg_writer *b = p;
	char key[32], val[32];

	for (int i = 0; i < b->n; i++) {
		snprintf(key, sizeof key, "bg/%03d", i % 50);
		snprintf(val, sizeof val, "live-%d", i);
		if (store_put(b->s, key, val, strlen(val), 0, NULL) != 0)
			b->errs++;
	}
	return NULL;
}

/* A watcher catching up from the database while writes go on must cross
 * from the database to the ring without a gap or a duplicate. */
static void test_watch_catch_up_while_writing(void **state)
{
	store *s = fx_open_small_ring(state);
	bg_writer b = {.s = s, .n = 400};
	store_watch *w = NULL;
	log_t got = {0};
	char key[32];
	pthread_t th;

	for (int i = 0; i < 300; i++) {
		snprintf(key, sizeof key, "old/%03d", i % 40);
		put_str(s, key, "some value that takes up ring bytes");
	}
	assert_int_equal(wopen(s, KEY_MIN, "", 1, &w), 0);
	assert_int_equal(pthread_create(&th, NULL, bg_writer_main, &b), 0);
	/* Read slowly at first (small batches) so the two overlap. */
	collect(w, 700, &got, 5);
	pthread_join(th, NULL);
	assert_int_equal(b.errs, 0);
	assert_int_equal(store_revision(s), 700);
	assert_int_equal(got.n, 700);
	/* One event per revision here: revisions 1..700 exactly. */
	for (size_t i = 0; i < got.n; i++)
		assert_int_equal(got.ev[i].mod, (int64_t)i + 1);
	expect_quiet(w, 20);
	wclose(w);
	log_free(&got);
}

static void test_watch_interval(void **state)
{
	store *s = fx_open(state);
	static const char *const keys[] = {"a", "b", "ba", "bz", "b\xff", "c"};
	char *pend = store_prefix_end("b");
	log_t all = {0};
	store_watch *w[5];

	/* Open every watcher first, then write. */
	assert_int_equal(wopen(s, "b", NULL, 0, &w[0]), 0);
	assert_int_equal(wopen(s, "b", "c", 0, &w[1]), 0);
	assert_int_equal(wopen(s, "b", pend, 0, &w[2]), 0);
	assert_int_equal(wopen(s, "ba", "", 0, &w[3]), 0);
	assert_int_equal(wopen(s, "bb", "bz", 0, &w[4]), 0);
	for (int round = 0; round < 2; round++)
		for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
			rec r = {.type = STORE_EVENT_PUT};

			r.mod = put_str(s, keys[i], "v");
			strcpy(r.key, keys[i]);
			strcpy(r.value, "v");
			r.value_len = 1;
			r.create = round ? r.mod - 6 : r.mod;
			r.version = round + 1;
			log_add(&all, &r);
		}

	{
		/* Each watcher, against the same log filtered. */
		static const struct {
			const char *key, *end;
		} iv[5] = {{"b", NULL},
			   {"b", "c"},
			   {"b", NULL},
			   {"ba", ""},
			   {"bb", "bz"}};

		for (int j = 0; j < 5; j++) {
			const char *end = j == 2 ? pend : iv[j].end;
			log_t exp = {0}, got = {0};

			for (size_t i = 0; i < all.n; i++) {
				const char *k = all.ev[i].key;
				bool in = strcmp(k, iv[j].key) >= 0 &&
					  (end ? (!*end || strcmp(k, end) < 0)
					       : strcmp(k, iv[j].key) == 0);

				if (in)
					log_add(&exp, &all.ev[i]);
			}
			collect(w[j], exp.n, &got, 100);
			assert_int_equal(got.n, exp.n);
			for (size_t i = 0; i < exp.n; i++)
				rec_equal(&got.ev[i], &exp.ev[i], i);
			expect_quiet(w[j], 20);
			wclose(w[j]);
			log_free(&exp);
			log_free(&got);
		}
	}
	/* The spot checks the filter above is right. */
	assert_int_equal(all.n, 12);
	free(pend);
	log_free(&all);
}

static void test_watch_delete_events(void **state)
{
	store *s = fx_open(state);
	store_watch *w = NULL;
	int64_t n, rev;
	log_t got = {0};

	put_str(s, "d/a", "1"); /* 1 */
	put_str(s, "d/b", "2"); /* 2 */
	put_str(s, "d/c", "3"); /* 3 */
	put_str(s, "e", "4");	/* 4 */
	assert_int_equal(wopen(s, KEY_MIN, "", 0, &w), 0);

	assert_int_equal(store_delete(s, "d/b", NULL, &n, &rev), 0);
	assert_int_equal(rev, 5);
	assert_int_equal(collect(w, 1, &got, 16), 1);
	assert_int_equal(got.ev[0].type, STORE_EVENT_DELETE);
	assert_string_equal(got.ev[0].key, "d/b");
	assert_int_equal(got.ev[0].mod, 5);
	/* (create, version, lease == 0 and an empty value: rec_from_event) */

	/* A range delete: one DELETE per key, one revision, key order. */
	assert_int_equal(store_delete(s, "d/", "d0", &n, &rev), 0);
	assert_int_equal(n, 2);
	assert_int_equal(rev, 6);
	assert_int_equal(collect(w, 2, &got, 16), 2);
	assert_int_equal(got.ev[1].type, STORE_EVENT_DELETE);
	assert_string_equal(got.ev[1].key, "d/a");
	assert_int_equal(got.ev[1].mod, 6);
	assert_int_equal(got.ev[2].type, STORE_EVENT_DELETE);
	assert_string_equal(got.ev[2].key, "d/c");
	assert_int_equal(got.ev[2].mod, 6);

	/* Deleting what is not there emits nothing. */
	assert_int_equal(store_delete(s, "d/", "d0", &n, NULL), 0);
	assert_int_equal(n, 0);
	expect_quiet(w, 50);

	/* Put after delete: a fresh key (create = mod, version 1). */
	rev = put_str(s, "d/b", "new");
	assert_int_equal(collect(w, 1, &got, 16), 1);
	assert_int_equal(got.ev[3].mod, rev);
	assert_int_equal(got.ev[3].type, STORE_EVENT_PUT);
	assert_int_equal(got.ev[3].create, got.ev[3].mod);
	assert_int_equal(got.ev[3].version, 1);

	wclose(w);
	log_free(&got);
}

static void test_watch_txn_events(void **state)
{
	store *s = fx_open(state);
	store_op ops[4] = {op_put("t/c", "C"), op_put("t/a", "A"),
			   op_del("t/d", NULL), op_put("t/b", "B")};
	store_txn t = {.success = ops, .nsuccess = 4};
	store_txn_result res;
	store_watch *w = NULL;
	log_t got = {0};

	put_str(s, "t/d", "D");	 /* 1 */
	put_str(s, "t/b", "B0"); /* 2 */
	assert_int_equal(wopen(s, "t/", "t0", 0, &w), 0);
	assert_int_equal(store_txn_run(s, &t, &res), 0);
	assert_int_equal(res.revision, 3);
	store_txn_result_free(&res);

	assert_int_equal(collect(w, 4, &got, 16), 4);
	assert_string_equal(got.ev[0].key, "t/a");
	assert_string_equal(got.ev[1].key, "t/b");
	assert_string_equal(got.ev[2].key, "t/c");
	assert_string_equal(got.ev[3].key, "t/d");
	for (int i = 0; i < 4; i++)
		assert_int_equal(got.ev[i].mod, 3);
	assert_int_equal(got.ev[0].type, STORE_EVENT_PUT);
	assert_int_equal(got.ev[1].type, STORE_EVENT_PUT);
	assert_int_equal(got.ev[1].create, 2);
	assert_int_equal(got.ev[1].version, 2);
	assert_int_equal(got.ev[2].type, STORE_EVENT_PUT);
	assert_int_equal(got.ev[3].type, STORE_EVENT_DELETE);
	expect_quiet(w, 20);

	/* Read one at a time: a max of 1 splits a revision's events over
	 * calls without losing or repeating any. */
	wclose(w);
	log_free(&got);
	assert_int_equal(wopen(s, "t/", "t0", 3, &w), 0);
	assert_int_equal(collect(w, 4, &got, 1), 4);
	assert_string_equal(got.ev[0].key, "t/a");
	assert_string_equal(got.ev[3].key, "t/d");
	expect_quiet(w, 20);
	wclose(w);
	log_free(&got);
}

static void test_watch_compacted_at_open(void **state)
{
	store *s = fx_open(state);
	store_watch *w = NULL;
	log_t got = {0};
	char val[16];

	for (int i = 1; i <= 20; i++) {
		snprintf(val, sizeof val, "%d", i);
		put_str(s, "k", val);
	}
	assert_int_equal(store_compact(s, 10), 0);

	assert_int_equal(wopen(s, "k", NULL, 9, &w), STORE_ECOMPACTED);
	w = NULL;
	assert_int_equal(wopen(s, KEY_MIN, "", 1, &w), STORE_ECOMPACTED);

	/* From the compact revision itself: revisions 10..20. */
	w = NULL;
	assert_int_equal(wopen(s, "k", NULL, 10, &w), 0);
	assert_int_equal(collect(w, 11, &got, 100), 11);
	for (int i = 0; i < 11; i++) {
		assert_int_equal(got.ev[i].mod, 10 + i);
		assert_int_equal(got.ev[i].version, 10 + i);
		assert_int_equal(got.ev[i].create, 1);
	}
	expect_quiet(w, 20);
	wclose(w);

	/* From 0 after a compaction: fine. */
	assert_int_equal(wopen(s, "k", NULL, 0, &w), 0);
	put_str(s, "k", "21");
	log_free(&got);
	assert_int_equal(collect(w, 1, &got, 100), 1);
	assert_int_equal(got.ev[0].mod, 21);
	wclose(w);
	log_free(&got);
}

/* A watcher that has read nothing while 300 revisions went by and the
 * store was compacted to 250 must not skip from its position to 250: it
 * gets STORE_ECOMPACTED (possibly after a gap-free run of events it had
 * already been given), and stays dead. A caught-up watcher is unhurt. */
static void test_watch_falls_behind_compaction(void **state)
{
	store *s = fx_open_small_ring(state);
	store_watch *slow = NULL, *fast = NULL;
	int64_t deadline, next = 1;
	bool compacted = false;
	log_t got = {0};
	char val[16];
	int rc;

	assert_int_equal(wopen(s, KEY_MIN, "", 0, &slow), 0);
	for (int i = 1; i <= 300; i++) {
		snprintf(val, sizeof val, "%d", i);
		put_str(s, "k", val);
	}
	assert_int_equal(wopen(s, KEY_MIN, "", 0, &fast), 0);
	assert_int_equal(store_compact(s, 250), 0);
	assert_int_equal(store_compact_revision(s), 250);

	deadline = now_ms() + 20000;
	while (!compacted && now_ms() < deadline) {
		store_event **evs = NULL;
		size_t n = 0;

		rc = store_watch_next(slow, 100, 8, &evs, &n, NULL);
		if (rc == STORE_ECOMPACTED) {
			compacted = true;
			break;
		}
		assert_int_equal(rc, 0);
		for (size_t i = 0; i < n; i++) {
			/* One event per revision: a gap is a bug. */
			assert_int_equal(evs[i]->kv.mod_revision, next);
			next++;
		}
		store_events_free(evs, n);
		if (next > 300)
			break;
	}
	if (!compacted)
		fail_msg("a watcher behind compact revision 250 never got "
			 "STORE_ECOMPACTED (it delivered revisions 1..%lld)",
			 (long long)next - 1);
	/* It must not have delivered the compacted history in full. */
	assert_true(next < 250);
	/* Dead for good. */
	{
		store_event **evs = NULL;
		size_t n = 0;

		assert_int_equal(store_watch_next(slow, 0, 8, &evs, &n, NULL),
				 STORE_ECOMPACTED);
	}
	wclose(slow);

	/* The caught-up watcher goes on. */
	put_str(s, "k", "301");
	assert_int_equal(collect(fast, 1, &got, 8), 1);
	assert_int_equal(got.ev[0].mod, 301);
	wclose(fast);
	log_free(&got);
}

static void test_watch_timeouts(void **state)
{
	store *s = fx_open(state);
	store_event **evs = NULL;
	store_watch *w = NULL;
	int64_t t0, dt;
	size_t n = 99;

	put_str(s, "a", "1");
	assert_int_equal(wopen(s, KEY_MIN, "", 0, &w), 0);

	/* 0: don't wait. */
	t0 = now_ms();
	assert_int_equal(store_watch_next(w, 0, 16, &evs, &n, NULL), 0);
	dt = now_ms() - t0;
	assert_int_equal(n, 0);
	store_events_free(evs, n);
	assert_true(dt < 1000);

	/* Positive: waits about that long, then n = 0. */
	n = 99;
	t0 = now_ms();
	assert_int_equal(store_watch_next(w, 300, 16, &evs, &n, NULL), 0);
	dt = now_ms() - t0;
	assert_int_equal(n, 0);
	store_events_free(evs, n);
	if (dt < 250 || dt > 5000)
		fail_msg("timeout 300 ms returned after %lld ms",
			 (long long)dt);

	/* Writes outside the interval don't end the wait with events. */
	wclose(w);
	assert_int_equal(wopen(s, "only", NULL, 0, &w), 0);
	put_str(s, "other", "x");
	n = 99;
	assert_int_equal(store_watch_next(w, 100, 16, &evs, &n, NULL), 0);
	assert_int_equal(n, 0);
	store_events_free(evs, n);
	wclose(w);
}

typedef struct waiter {
	store_watch *w;
	int timeout_ms;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int rc;
	size_t n;
	int64_t mod;
	int64_t elapsed;
} waiter;

static void *waiter_main(void *p)
{
	waiter *a = p;
	store_event **evs = NULL;
	int64_t t0 = now_ms();
	size_t n = 0;
	int rc;

	rc = store_watch_next(a->w, a->timeout_ms, 16, &evs, &n, NULL);
	pthread_mutex_lock(&a->mu);
	a->rc = rc;
	a->n = n;
	a->mod = (rc == 0 && n > 0) ? evs[0]->kv.mod_revision : 0;
	a->elapsed = now_ms() - t0;
	a->done = true;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	if (rc == 0)
		store_events_free(evs, n);
	return NULL;
}

/* Wait up to ms for the waiter thread to finish; true if it did. */
static bool waiter_wait(waiter *a, int ms)
{
	struct timespec dl;
	bool done;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&a->mu);
	while (!a->done)
		if (pthread_cond_timedwait(&a->cv, &a->mu, &dl) == ETIMEDOUT)
			break;
	done = a->done;
	pthread_mutex_unlock(&a->mu);
	return done;
}

static void test_watch_wakeup(void **state)
{
	store *s = fx_open(state);
	waiter a = {.timeout_ms = 30000};
	pthread_t th;

	pthread_mutex_init(&a.mu, NULL);
	pthread_cond_init(&a.cv, NULL);
	assert_int_equal(wopen(s, "k", NULL, 0, &a.w), 0);
	assert_int_equal(pthread_create(&th, NULL, waiter_main, &a), 0);
	/* Still waiting after a while (it has nothing to return). */
	assert_false(waiter_wait(&a, 200));
	/* A write wakes it long before its timeout. */
	assert_int_equal(put_str(s, "k", "v"), 1);
	assert_true(waiter_wait(&a, 10000));
	pthread_join(th, NULL);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.mod, 1);
	assert_true(a.elapsed < 20000);
	wclose(a.w);
	pthread_cond_destroy(&a.cv);
	pthread_mutex_destroy(&a.mu);
}

static void test_watch_close_wakes(void **state)
{
	fx *f = *state;
	waiter a = {.timeout_ms = -1};
	pthread_t th;

	fx_open(state);
	pthread_mutex_init(&a.mu, NULL);
	pthread_cond_init(&a.cv, NULL);
	assert_int_equal(wopen(f->s, "k", NULL, 0, &a.w), 0);
	assert_int_equal(pthread_create(&th, NULL, waiter_main, &a), 0);
	assert_false(waiter_wait(&a, 200));
	/* Closing the store wakes a watcher blocked forever. */
	fx_close(state);
	if (!waiter_wait(&a, 10000))
		fail_msg("store_close did not wake a blocked watcher");
	pthread_join(th, NULL);
	assert_int_equal(a.rc, STORE_ECLOSED);
	/* Closing the watcher after the store is safe. */
	wclose(a.w);
	pthread_cond_destroy(&a.cv);
	pthread_mutex_destroy(&a.mu);
}

/* Call store_watch_next until progress reaches want (bounded). */
static int64_t progress_reach(store_watch *w, int64_t want, log_t *got)
{
	int64_t deadline = now_ms() + 10000, progress = -1, last = -1;

	while (now_ms() < deadline) {
		store_event **evs = NULL;
		size_t n = 0;

		assert_int_equal(
		    store_watch_next(w, 50, 64, &evs, &n, &progress), 0);
		assert_true(progress >= last);
		last = progress;
		for (size_t i = 0; i < n; i++) {
			rec r;

			rec_from_event(&r, evs[i]);
			log_add(got, &r);
			assert_true(progress >= r.mod);
		}
		store_events_free(evs, n);
		if (progress >= want)
			break;
	}
	return progress;
}

static void test_watch_progress(void **state)
{
	store *s = fx_open(state);
	store_watch *w = NULL, *w2 = NULL;
	log_t got = {0};
	int64_t p;

	for (int i = 0; i < 5; i++)
		put_str(s, "b", "x"); /* 1..5 */
	/* From 0 at revision 5: it has seen everything up to 5. */
	assert_int_equal(wopen(s, "a", NULL, 0, &w), 0);
	p = progress_reach(w, 5, &got);
	assert_int_equal(p, 5);
	assert_int_equal(got.n, 0);

	/* Revisions outside the interval move progress too: nothing in
	 * "a" was missed up to the newest revision. */
	for (int i = 0; i < 5; i++)
		put_str(s, "b", "y"); /* 6..10 */
	p = progress_reach(w, 10, &got);
	assert_int_equal(p, 10);
	assert_int_equal(got.n, 0);

	/* An event in the interval: progress at least its revision, and
	 * never beyond the store's revision. */
	put_str(s, "a", "z"); /* 11 */
	p = progress_reach(w, 11, &got);
	assert_int_equal(p, 11);
	assert_int_equal(got.n, 1);
	assert_int_equal(got.ev[0].mod, 11);
	assert_true(p <= store_revision(s));

	/* A watcher from 3 has not seen 3 yet before reading: its progress
	 * stays below 3 until it has been given the events of 3. */
	assert_int_equal(wopen(s, "b", NULL, 3, &w2), 0);
	{
		store_event **evs = NULL;
		size_t n = 0;

		assert_int_equal(store_watch_next(w2, 1000, 1, &evs, &n, &p),
				 0);
		assert_int_equal(n, 1);
		assert_int_equal(evs[0]->kv.mod_revision, 3);
		/* Given exactly revision 3 (its only event): seen up to
		 * 3 (or, conservatively, 2), certainly not 4. */
		assert_true(p >= 2 && p <= 3);
		store_events_free(evs, n);
	}
	wclose(w2);
	wclose(w);
	log_free(&got);
}

/* ---- notify ----------------------------------------------------------- */

typedef struct notes {
	pthread_mutex_t mu;
	int64_t revs[4096];
	size_t n;
	bool bad_order;
} notes;

static void note_fn(int64_t revision, void *arg)
{
	notes *no = arg;

	pthread_mutex_lock(&no->mu);
	if (no->n > 0 && revision != STORE_ECLOSED &&
	    revision <= no->revs[no->n - 1])
		no->bad_order = true;
	if (no->n < sizeof no->revs / sizeof no->revs[0])
		no->revs[no->n++] = revision;
	pthread_mutex_unlock(&no->mu);
}

static int64_t notes_last(notes *no)
{
	int64_t r;

	pthread_mutex_lock(&no->mu);
	r = no->n ? no->revs[no->n - 1] : 0;
	pthread_mutex_unlock(&no->mu);
	return r;
}

static void test_notify(void **state)
{
	fx *f = *state;
	notes *no = calloc(1, sizeof *no);
	int64_t deadline;
	store *s;

	assert_non_null(no);
	pthread_mutex_init(&no->mu, NULL);
	s = fx_open(state);
	store_set_notify(s, note_fn, no);
	for (int i = 0; i < 30; i++)
		put_str(s, "k", "v");
	/* The last commit is notified (soon, on a store thread). */
	deadline = now_ms() + 10000;
	while (notes_last(no) < 30 && now_ms() < deadline)
		usleep(5000);
	pthread_mutex_lock(&no->mu);
	assert_true(no->n >= 1);
	assert_false(no->bad_order);
	assert_int_equal(no->revs[no->n - 1], 30);
	for (size_t i = 0; i < no->n; i++)
		assert_true(no->revs[i] >= 1 && no->revs[i] <= 30);
	pthread_mutex_unlock(&no->mu);

	/* Removed: later commits are not notified. */
	store_set_notify(s, NULL, NULL);
	put_str(s, "k", "v"); /* 31 */
	put_str(s, "k", "v"); /* 32 */
	usleep(100000);	      /* give a wrong late call the chance to show */
	assert_true(notes_last(no) <= 30);

	/* Set again: notified again, and at close with STORE_ECLOSED. */
	store_set_notify(s, note_fn, no);
	put_str(s, "k", "v"); /* 33 */
	deadline = now_ms() + 10000;
	while (notes_last(no) < 33 && now_ms() < deadline)
		usleep(5000);
	assert_int_equal(notes_last(no), 33);
	store_close(s);
	f->s = NULL;
	pthread_mutex_lock(&no->mu);
	assert_int_equal(no->revs[no->n - 1], STORE_ECLOSED);
	assert_false(no->bad_order);
	pthread_mutex_unlock(&no->mu);

	pthread_mutex_destroy(&no->mu);
	free(no);
}

/* ---- reopen ---------------------------------------------------------- */

static void test_watch_after_reopen(void **state)
{
	wmodel *m = calloc(1, sizeof *m);
	store_watch *w = NULL;
	log_t got = {0};
	store *s;

	assert_non_null(m);
	m->rnd = 777;
	s = fx_open(state);
	for (int i = 0; i < 40; i++)
		m_step(s, m);
	fx_close(state);

	s = fx_open(state);
	assert_int_equal(store_revision(s), 40);
	/* Every start revision written before the close. */
	for (int64_t from = 1; from <= 41; from++)
		check_suffix(s, &m->log, KEY_MIN, "", from, 1000);

	/* A watcher from 30 first catches up, then follows new writes. */
	assert_int_equal(wopen(s, KEY_MIN, "", 30, &w), 0);
	for (int i = 0; i < 10; i++)
		m_step(s, m);
	{
		size_t want = 0, j = 0;

		for (size_t i = 0; i < m->log.n; i++)
			want += m->log.ev[i].mod >= 30;
		assert_int_equal(collect(w, want, &got, 1000), want);
		for (size_t i = 0; i < m->log.n; i++) {
			if (m->log.ev[i].mod < 30)
				continue;
			rec_equal(&got.ev[j], &m->log.ev[i], j);
			j++;
		}
	}
	expect_quiet(w, 20);
	wclose(w);
	log_free(&got);
	log_free(&m->log);
	free(m);
}

/* ---- events are shared and reference-counted -------------------------- */

static void test_event_refs(void **state)
{
	store *s = fx_open(state);
	store_watch *w1 = NULL, *w2 = NULL;
	store_event **e1 = NULL, **e2 = NULL;
	store_event *kept;
	size_t n1 = 0, n2 = 0;

	assert_int_equal(wopen(s, KEY_MIN, "", 0, &w1), 0);
	assert_int_equal(wopen(s, "k", NULL, 0, &w2), 0);
	put_str(s, "k", "shared");
	assert_int_equal(store_watch_next(w1, 5000, 4, &e1, &n1, NULL), 0);
	assert_int_equal(store_watch_next(w2, 5000, 4, &e2, &n2, NULL), 0);
	assert_int_equal(n1, 1);
	assert_int_equal(n2, 1);
	assert_string_equal(e1[0]->kv.key, "k");
	assert_string_equal(e2[0]->kv.key, "k");

	/* Keep one past store_events_free, the watcher and the store. */
	kept = e1[0];
	store_event_ref(kept);
	store_events_free(e1, n1);
	store_events_free(e2, n2);
	wclose(w1);
	wclose(w2);
	fx_close(state);
	assert_string_equal(kept->kv.key, "k");
	assert_int_equal(kept->kv.value_len, 6);
	assert_memory_equal(kept->kv.value, "shared", 6);
	store_event_unref(kept);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_watch_from_zero),
	    T(test_watch_future_start),
	    T(test_watch_resume_every_revision),
	    T(test_watch_resume_small_ring),
	    T(test_watch_catch_up_while_writing),
	    T(test_watch_interval),
	    T(test_watch_delete_events),
	    T(test_watch_txn_events),
	    T(test_watch_compacted_at_open),
	    T(test_watch_falls_behind_compaction),
	    T(test_watch_timeouts),
	    T(test_watch_wakeup),
	    T(test_watch_close_wakes),
	    T(test_watch_progress),
	    T(test_notify),
	    T(test_watch_after_reopen),
	    T(test_event_refs),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
