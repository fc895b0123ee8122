/*
 * test_store_etcd.c -- what only the etcd backend has, against a real etcd
 * (run by tests/unit/etcd-run.sh, which sets SB_TEST_ETCD and, with
 * SB_ETCD_MEMBERS=3, starts a 3-member cluster): store_parse_url; an
 * unreachable etcd gives STORE_EUNAVAIL quickly with the endpoint named;
 * failover past a dead endpoint; a frozen etcd (SIGSTOP) makes requests
 * fail with STORE_EUNAVAIL within the timeout instead of hanging, and the
 * store recovers, its watch without a gap; on a 3-member cluster, killing
 * the member the store talks to moves it to another member while writes
 * go on, and a watcher sees every acknowledged write exactly once, in
 * order; two stores on one etcd see the same revisions and each other's
 * writes.
 *
 * `test_store_etcd bench SECONDS` (with SB_TEST_ETCD set) measures durable
 * puts per second through the backend at 1 and 64 concurrent writers.
 */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define KEY_MIN "\x01"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The PIDs of the etcd members etcd-run.sh started (SB_TEST_ETCD_PIDS). */
static int member_pids(pid_t *pids, int max)
{
	const char *env = getenv("SB_TEST_ETCD_PIDS");
	int n = 0;

	while (env && *env && n < max) {
		char *end;
		long v = strtol(env, &end, 10);

		if (end == env)
			break;
		pids[n++] = (pid_t)v;
		env = *end ? end + 1 : end;
	}
	return n;
}

/* A store on the test etcd with short timeouts (1 s). */
static store *open_etcd(const char *dir, const char *endpoints)
{
	store_options o;

	store_options_init(&o);
	o.history_revisions = 0;
	o.history_seconds = 0;
	o.etcd_timeout_ms = 1000;
	if (endpoints) {
		char err[512] = "";
		store *s = NULL;
		int rc;

		o.etcd_endpoints = endpoints;
		tu_etcd_tls(&o);
		rc = store_open(&o, &s, err, sizeof err);
		if (rc)
			fail_msg("store_open(%s): %s: %s", endpoints,
				 store_strerror(rc), err);
		return s;
	}
	return tu_open_opts(dir, &o);
}

/* ---- fixture ------------------------------------------------------------- */

typedef struct fx {
	char *dir;
	store *s, *s2;
	pid_t stopped; /* a member we froze, to thaw in the teardown */
} fx;

static int fx_setup(void **state)
{
	fx *f = calloc(1, sizeof *f);

	if (!f)
		return -1;
	f->dir = tu_tmpdir("etcd");
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	fx *f = *state;

	if (f->stopped)
		kill(f->stopped, SIGCONT);
	store_close(f->s);
	store_close(f->s2);
	tu_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static int64_t put_str(store *s, const char *key, const char *value)
{
	int64_t rev = -1;

	assert_int_equal(store_put(s, key, value, strlen(value), 0, &rev), 0);
	return rev;
}

/* ---- store_parse_url ---------------------------------------------------- */

static void test_parse_url(void **state)
{
	static const char *const good[] = {
	    "etcd://h1:2379,h2:2379,h3:2379",
	    "etcd://localhost",
	    "etcds://etcd.example.org:2379",
	    "etcd://127.0.0.1:2379/",
	    "etcd://[::1]:2379,[fd00::1]",
	    "http://127.0.0.1:2379,https://10.0.0.2:2379",
	    "https://a-b_c.example:1",
	};
	static const char *const bad[] = {
	    "",
	    "127.0.0.1:2379",
	    "sqlite:///var/lib/x",
	    "etcd://",
	    "etcd://h1:2379,",
	    "etcd://h1:0",
	    "etcd://h1:65536",
	    "etcd://h1:23x9",
	    "etcd://h1:2379/path",
	    "etcd://user@h1:2379",
	    "etcd://[::1",
	    "etcd://h1:",
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		store_options o;

		store_options_init(&o);
		err[0] = '\0';
		if (store_parse_url(good[i], &o, err, sizeof err) != 0)
			fail_msg("\"%s\" refused: %s", good[i], err);
		assert_ptr_equal(o.etcd_endpoints, good[i]);
		/* Nothing else changes. */
		assert_string_equal(o.data_dir, "./signalbox-data");
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		store_options o;

		store_options_init(&o);
		err[0] = '\0';
		if (store_parse_url(bad[i], &o, err, sizeof err) !=
		    STORE_EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_true(strlen(err) > 0);
		assert_null(o.etcd_endpoints);
	}
	/* The message names the part that is wrong. */
	{
		store_options o;

		store_options_init(&o);
		assert_int_equal(
		    store_parse_url("etcd://good:1,b@d:2", &o, err, sizeof err),
		    STORE_EINVAL);
		assert_non_null(strstr(err, "b@d:2"));
	}
}

/* ---- unreachable, failover ---------------------------------------------- */

/* A loopback port nothing listens on (bound, then closed). */
static int dead_port(void)
{
	return 1; /* port 1 on 127.0.0.1: never an etcd here */
}

static void test_unreachable(void **state)
{
	char eps[128], err[512] = "";
	store_options o;
	store *s = NULL;
	int64_t t0;
	int rc;

	(void)state;
	snprintf(eps, sizeof eps, "etcd://127.0.0.1:%d", dead_port());
	store_options_init(&o);
	o.etcd_endpoints = eps;
	o.etcd_timeout_ms = 1000;
	t0 = now_ms();
	rc = store_open(&o, &s, err, sizeof err);
	assert_int_equal(rc, STORE_EUNAVAIL);
	assert_null(s);
	assert_true(now_ms() - t0 < 5000);
	/* The message names the endpoint. */
	if (!strstr(err, "127.0.0.1:1"))
		fail_msg("message does not name the endpoint: %s", err);
}

static void test_failover_dead_first(void **state)
{
	fx *f = *state;
	char eps[1024], msg[512];
	store_range_result r;

	snprintf(eps, sizeof eps, "http://127.0.0.1:%d,%s", dead_port(),
		 tu_etcd());
	f->s = open_etcd(NULL, eps);
	put_str(f->s, "failover/a", "1");
	assert_int_equal(store_range(f->s, "failover/a", NULL, 0, 0, &r), 0);
	assert_int_equal(r.count, 1);
	store_range_result_free(&r);
	store_last_error(f->s, msg, sizeof msg);
	/* It got past the dead one; the store no longer reports errors once
	 * open, or reports the dead endpoint. */
	assert_true(msg[0] == '\0' || strstr(msg, "127.0.0.1:1"));
	assert_int_equal(
	    store_delete(f->s, "failover/", "failover0", NULL, NULL), 0);
}

/* With https and client-cert-auth (SB_ETCD_TLS=1): no client certificate,
 * or not trusting the members' CA, is refused with the reason. */
static void test_tls_refused(void **state)
{
	char err[512];
	store_options o;
	store *s = NULL;

	(void)state;
	if (!getenv("SB_TEST_ETCD_CA") || !*getenv("SB_TEST_ETCD_CA")) {
		print_message("tls: needs SB_ETCD_TLS=1; skipped\n");
		skip();
	}
	store_options_init(&o);
	o.etcd_endpoints = tu_etcd();
	o.etcd_timeout_ms = 1000;
	tu_etcd_tls(&o);
	o.etcd_cert_file = NULL; /* no client certificate */
	o.etcd_key_file = NULL;
	err[0] = '\0';
	assert_int_equal(store_open(&o, &s, err, sizeof err), STORE_EUNAVAIL);
	assert_non_null(strstr(err, "https://127.0.0.1"));
	tu_etcd_tls(&o);
	o.etcd_ca_file = NULL; /* the system's CAs: the test CA is not one */
	err[0] = '\0';
	assert_int_equal(store_open(&o, &s, err, sizeof err), STORE_EUNAVAIL);
	assert_non_null(strstr(err, "https://127.0.0.1"));
	assert_null(s);
}

/* ---- a frozen etcd ------------------------------------------------------- */

static void test_frozen_etcd(void **state)
{
	fx *f = *state;
	pid_t pids[8];
	store_watch *w = NULL;
	store_event **evs = NULL;
	int64_t t0, rev, last;
	char msg[512];
	int rc, n = member_pids(pids, 8);

	if (n != 1) {
		print_message("frozen etcd: needs the one-member etcd of "
			      "etcd-run.sh; skipped\n");
		skip();
	}
	f->s = open_etcd(f->dir, NULL);
	rev = put_str(f->s, "frozen/a", "1");
	assert_int_equal(store_watch_open(f->s, KEY_MIN, "", rev, &w), 0);

	/* Frozen: a write fails within about the timeout, never hangs. */
	assert_int_equal(kill(pids[0], SIGSTOP), 0);
	f->stopped = pids[0];
	t0 = now_ms();
	rc = store_put(f->s, "frozen/b", "2", 1, 0, NULL);
	assert_int_equal(rc, STORE_EUNAVAIL);
	assert_true(now_ms() - t0 < 4000);
	store_last_error(f->s, msg, sizeof msg);
	assert_non_null(strstr(msg, "127.0.0.1"));
	{
		store_range_result r;

		t0 = now_ms();
		assert_int_equal(store_range(f->s, "frozen/a", NULL, 0, 0, &r),
				 STORE_EUNAVAIL);
		assert_true(now_ms() - t0 < 4000);
	}

	/* Thawed: it works again, and the watch goes on without a gap (the
	 * write that timed out may have been applied: its outcome was
	 * unknown, so its event may show up, once). */
	assert_int_equal(kill(pids[0], SIGCONT), 0);
	f->stopped = 0;
	t0 = now_ms();
	do {
		rc = store_put(f->s, "frozen/c", "3", 1, 0, &rev);
	} while (rc == STORE_EUNAVAIL && now_ms() - t0 < 10000);
	assert_int_equal(rc, 0);
	last = 0;
	while (last < rev) {
		size_t m = 0;

		assert_int_equal(store_watch_next(w, 5000, 16, &evs, &m, NULL),
				 0);
		if (m == 0)
			fail_msg("watch stuck at %lld, want %lld",
				 (long long)last, (long long)rev);
		for (size_t i = 0; i < m; i++) {
			/* One key per revision here: contiguous. */
			if (last)
				assert_int_equal(evs[i]->kv.mod_revision,
						 last + 1);
			last = evs[i]->kv.mod_revision;
		}
		store_events_free(evs, m);
	}
	assert_int_equal(last, rev);
	store_watch_close(w);
}

/* ---- store_current_revision_async --------------------------------------- */

typedef struct revs_seen {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int calls, errs;
	int64_t min_rev;
} revs_seen;

static void rev_cb(int err, int64_t rev, void *arg)
{
	revs_seen *r = arg;

	pthread_mutex_lock(&r->mu);
	r->calls++;
	if (err)
		r->errs++;
	else if (r->min_rev < 0 || rev < r->min_rev)
		r->min_rev = rev;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void test_current_revision_async(void **state)
{
	fx *f = *state;
	revs_seen r = {.min_rev = -1};
	int64_t rev, t0;
	int n = 1000;

	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	f->s = open_etcd(f->dir, NULL);
	f->s2 = open_etcd(f->dir, NULL);
	/* Written through another store: this one may not have seen it
	 * yet, but every answer asked for afterwards is at least it. */
	rev = put_str(f->s2, "rev/a", "1");
	t0 = now_ms();
	for (int i = 0; i < n; i++)
		assert_int_equal(store_current_revision_async(f->s, rev_cb, &r),
				 0);
	pthread_mutex_lock(&r.mu);
	while (r.calls < n && now_ms() - t0 < 10000) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&r.cv, &r.mu, &ts);
	}
	assert_int_equal(r.calls, n);
	assert_int_equal(r.errs, 0);
	assert_true(r.min_rev >= rev);
	pthread_mutex_unlock(&r.mu);
	/* Shared requests: 1000 answers in far less than 1000 round trips
	 * would take on a loaded machine. */
	print_message("1000 current-revision reads answered in %lld ms\n",
		      (long long)(now_ms() - t0));

	/* Callers still waiting at close are answered, once. */
	r.calls = 0;
	for (int i = 0; i < 50; i++)
		assert_int_equal(store_current_revision_async(f->s, rev_cb, &r),
				 0);
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(r.calls, 50);
	pthread_cond_destroy(&r.cv);
	pthread_mutex_destroy(&r.mu);
}

/* ---- two stores, one etcd ----------------------------------------------- */

static void test_two_stores(void **state)
{
	fx *f = *state;
	store_watch *w = NULL;
	store_event **evs = NULL;
	int64_t rev, cur = 0;
	size_t n = 0;
	bool ok;

	f->s = open_etcd(f->dir, NULL);
	f->s2 = open_etcd(f->dir, NULL); /* same offset: same etcd */
	assert_int_equal(store_watch_open(f->s, "two/", "two0", 0, &w), 0);
	rev = put_str(f->s2, "two/x", "from s2");
	/* s sees s2's write as an event with the same revision. */
	assert_int_equal(store_watch_next(w, 5000, 4, &evs, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_string_equal(evs[0]->kv.key, "two/x");
	assert_int_equal(evs[0]->kv.mod_revision, rev);
	store_events_free(evs, n);
	/* A CAS on s with s2's revision holds; a stale one does not. */
	assert_int_equal(store_cas(f->s, "two/x", "s", 1, rev, &ok, NULL), 0);
	assert_true(ok);
	assert_int_equal(store_cas(f->s2, "two/x", "t", 1, rev, &ok, NULL), 0);
	assert_false(ok);
	/* The current revision, asked of etcd, is what both see. */
	assert_int_equal(store_current_revision(f->s2, &cur), 0);
	assert_int_equal(cur, rev + 1);
	store_watch_close(w);
}

/* ---- a member dies under load (3-member cluster) --------------------------
 */

typedef struct loader {
	store *s;
	pthread_mutex_t mu;
	int64_t *acked; /* revisions of acknowledged writes */
	size_t nacked, cap;
	int unavail, other;
	bool stop;
} loader;

static void *loader_main(void *p)
{
	loader *l = p;
	char key[32];

	for (int i = 0;; i++) {
		int64_t rev = 0;
		int rc;

		pthread_mutex_lock(&l->mu);
		if (l->stop) {
			pthread_mutex_unlock(&l->mu);
			break;
		}
		pthread_mutex_unlock(&l->mu);
		snprintf(key, sizeof key, "load/%05d", i);
		rc = store_put(l->s, key, "v", 1, 0, &rev);
		pthread_mutex_lock(&l->mu);
		if (rc == 0) {
			if (l->nacked == l->cap) {
				l->cap = l->cap ? 2 * l->cap : 1024;
				l->acked =
				    realloc(l->acked, l->cap * sizeof(int64_t));
				if (!l->acked)
					abort();
			}
			l->acked[l->nacked++] = rev;
		} else if (rc == STORE_EUNAVAIL) {
			l->unavail++;
		} else {
			l->other++;
		}
		pthread_mutex_unlock(&l->mu);
	}
	return NULL;
}

static void test_member_dies(void **state)
{
	fx *f = *state;
	loader l = {0};
	pthread_t th;
	pid_t pids[8];
	store_watch *w = NULL;
	int64_t start, t0, last = 0, seen = 0;
	size_t before;
	int n = member_pids(pids, 8);

	if (n < 3) {
		print_message("member dies: needs SB_ETCD_MEMBERS=3; "
			      "skipped\n");
		skip();
	}
	f->s = open_etcd(f->dir, NULL);
	l.s = f->s;
	pthread_mutex_init(&l.mu, NULL);
	start = store_revision(f->s) + 1;
	assert_int_equal(store_watch_open(f->s, "load/", "load0", start, &w),
			 0);
	assert_int_equal(pthread_create(&th, NULL, loader_main, &l), 0);
	usleep(500000);
	/* The store talks to the first endpoint: kill that member. */
	assert_int_equal(kill(pids[0], SIGKILL), 0);
	pthread_mutex_lock(&l.mu);
	before = l.nacked;
	pthread_mutex_unlock(&l.mu);
	/* Writes go on through the others within a few seconds. */
	t0 = now_ms();
	for (;;) {
		size_t now_acked;

		usleep(100000);
		pthread_mutex_lock(&l.mu);
		now_acked = l.nacked;
		pthread_mutex_unlock(&l.mu);
		if (now_acked > before + 50)
			break;
		if (now_ms() - t0 > 15000)
			fail_msg("no writes for 15 s after a member died");
	}
	print_message("writes resumed %lld ms after the member died\n",
		      (long long)(now_ms() - t0));
	pthread_mutex_lock(&l.mu);
	l.stop = true;
	pthread_mutex_unlock(&l.mu);
	pthread_join(th, NULL);
	assert_int_equal(l.other, 0);

	/* The watcher sees every acknowledged write exactly once, in
	 * revision order (one event per revision here). */
	while (seen < (int64_t)l.nacked) {
		store_event **evs = NULL;
		size_t m = 0;

		assert_int_equal(store_watch_next(w, 5000, 256, &evs, &m, NULL),
				 0);
		if (m == 0)
			break;
		for (size_t i = 0; i < m; i++) {
			int64_t r = evs[i]->kv.mod_revision;

			assert_true(r > last);
			last = r;
			/* Acknowledged writes are in order in acked[]. */
			if (seen < (int64_t)l.nacked && l.acked[seen] == r)
				seen++;
			else if (seen < (int64_t)l.nacked && l.acked[seen] < r)
				fail_msg("acknowledged write at %lld never "
					 "came as an event",
					 (long long)l.acked[seen]);
		}
		store_events_free(evs, m);
	}
	assert_int_equal(seen, (int64_t)l.nacked);
	print_message("%zu writes acknowledged, %d unavailable\n", l.nacked,
		      l.unavail);
	store_watch_close(w);
	free(l.acked);
	pthread_mutex_destroy(&l.mu);
}

/* ---- bench ------------------------------------------------------------------
 */

typedef struct bench_arg {
	store *s;
	int id;
	bool cas; /* create with a compare, as the API server does */
	int nw;
	int64_t deadline;
	long puts, errs;
} bench_arg;

static void *bench_main(void *p)
{
	bench_arg *a = p;
	char key[64], val[256];

	memset(val, 'v', sizeof val);
	while (now_ms() < a->deadline) {
		bool ok = true;
		int rc;

		snprintf(key, sizeof key, "bench/%s/%d/%03d/%08ld",
			 a->cas ? "cas" : "put", a->nw, a->id, a->puts);
		if (a->cas)
			rc =
			    store_cas(a->s, key, val, sizeof val, 0, &ok, NULL);
		else
			rc = store_put(a->s, key, val, sizeof val, 0, NULL);
		if (rc == 0 && ok)
			a->puts++;
		else
			a->errs++;
	}
	return NULL;
}

typedef struct window {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int inflight;
	long done, errs;
} window;

static void window_cb(int err, store_txn_result *res, void *arg)
{
	window *w = arg;

	store_txn_result_delete(res);
	pthread_mutex_lock(&w->mu);
	w->inflight--;
	if (err)
		w->errs++;
	else
		w->done++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* One thread keeping nw async puts in flight, as the API server does. */
static void bench_async(store *s, int nw, int seconds)
{
	window w = {.inflight = 0};
	int64_t t0 = now_ms(), i = 0;
	char key[64], val[256];

	memset(val, 'v', sizeof val);
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	while (now_ms() - t0 < seconds * 1000) {
		store_op op = {.type = STORE_OP_PUT,
			       .key = key,
			       .value = val,
			       .value_len = sizeof val};
		store_txn t = {.success = &op, .nsuccess = 1};

		pthread_mutex_lock(&w.mu);
		while (w.inflight >= nw)
			pthread_cond_wait(&w.cv, &w.mu);
		w.inflight++;
		pthread_mutex_unlock(&w.mu);
		snprintf(key, sizeof key, "bench/async/%08lld", (long long)i++);
		if (store_txn_async(s, &t, window_cb, &w) != 0) {
			pthread_mutex_lock(&w.mu);
			w.inflight--;
			w.errs++;
			pthread_mutex_unlock(&w.mu);
		}
	}
	pthread_mutex_lock(&w.mu);
	while (w.inflight > 0)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	printf("etcd backend: %2d async in flight: %ld durable puts in %.1f s "
	       "= %.0f puts/s (%ld errors)\n",
	       nw, w.done, (now_ms() - t0) / 1000.0,
	       w.done * 1000.0 / (double)(now_ms() - t0), w.errs);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
}

static int bench(int seconds)
{
	static const int writers[] = {1, 8, 64, -1, -64};
	char *dir = tu_tmpdir("bench");
	store *s = open_etcd(dir, NULL);

	for (size_t w = 0; w < sizeof writers / sizeof writers[0]; w++) {
		bool cas = writers[w] < 0;
		int nw = cas ? -writers[w] : writers[w];
		bench_arg *a = calloc((size_t)nw, sizeof *a);
		pthread_t *th = calloc((size_t)nw, sizeof *th);
		long puts = 0, errs = 0;
		int64_t t0 = now_ms();

		for (int i = 0; i < nw; i++) {
			a[i] = (bench_arg){.s = s,
					   .id = i,
					   .cas = cas,
					   .nw = nw,
					   .deadline = t0 + seconds * 1000};
			pthread_create(&th[i], NULL, bench_main, &a[i]);
		}
		for (int i = 0; i < nw; i++) {
			pthread_join(th[i], NULL);
			puts += a[i].puts;
			errs += a[i].errs;
		}
		printf("etcd backend: %2d writers, %s: %ld durable writes in "
		       "%.1f s = %.0f/s (%ld errors)\n",
		       nw, cas ? "create-if-absent txn" : "store_put", puts,
		       (now_ms() - t0) / 1000.0,
		       puts * 1000.0 / (double)(now_ms() - t0), errs);
		free(a);
		free(th);
	}
	bench_async(s, 64, seconds);
	store_close(s);
	tu_rmrf(dir);
	free(dir);
	return 0;
}

int main(int argc, char **argv)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_parse_url),		 T(test_unreachable),
	    T(test_failover_dead_first), T(test_two_stores),
	    T(test_frozen_etcd),	 T(test_member_dies),
	    T(test_tls_refused),	 T(test_current_revision_async),
	};
#undef T

	if (!tu_etcd()) {
		fprintf(stderr,
			"%s: set SB_TEST_ETCD (run it through "
			"tests/unit/etcd-run.sh)\n",
			argv[0]);
		return 1;
	}
	if (argc == 3 && strcmp(argv[1], "bench") == 0)
		return bench(atoi(argv[2]));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
