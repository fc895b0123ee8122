/*
 * test_store_lease.c -- leases, against store.h: grant, ttl, keepalive and
 * revoke; a put on an unknown lease fails with STORE_ENOLEASE and writes
 * nothing; revoke deletes the attached keys in one revision with DELETE
 * events; a lease of 1 s expires (polled with a bounded deadline) and
 * takes its keys with it; keepalives prevent expiry; an expired lease is
 * gone (STORE_ENOLEASE); leases survive a reopen, with their full TTL.
 */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

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
} fx;

static int fx_setup(void **state)
{
	fx *f = calloc(1, sizeof *f);

	if (!f)
		return -1;
	f->dir = tu_tmpdir("lease");
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	fx *f = *state;

	store_close(f->s);
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

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0)
		;
}

static int64_t put_lease(store *s, const char *key, const char *value,
			 int64_t lease)
{
	int64_t rev = -1;

	assert_int_equal(store_put(s, key, value, strlen(value), lease, &rev),
			 0);
	return rev;
}

static int64_t grant(store *s, int64_t ttl)
{
	int64_t id = 0;

	assert_int_equal(store_lease_grant(s, ttl, &id), 0);
	assert_true(id != 0);
	return id;
}

/* The key's lease if it exists, -1 if it does not. */
static int64_t key_lease(store *s, const char *key)
{
	store_range_result r;
	int64_t l = -1;

	assert_int_equal(store_range(s, key, NULL, 0, 0, &r), 0);
	if (r.count == 1)
		l = r.kvs[0].lease;
	store_range_result_free(&r);
	return l;
}

static size_t count_keys(store *s)
{
	store_range_result r;
	size_t n;

	assert_int_equal(store_range(s, KEY_MIN, "", 0, 0, &r), 0);
	n = r.count;
	store_range_result_free(&r);
	return n;
}

/* Poll until key is gone, up to ms; returns the time it took, or -1. */
static int64_t wait_gone(store *s, const char *key, int ms)
{
	int64_t t0 = now_ms();

	while (now_ms() - t0 <= ms) {
		if (key_lease(s, key) < 0)
			return now_ms() - t0;
		sleep_ms(20);
	}
	return -1;
}

/* Read up to want events from w (bounded wait). */
static size_t read_events(store_watch *w, store_event **out, size_t want)
{
	int64_t deadline = now_ms() + 10000;
	size_t got = 0;

	while (got < want && now_ms() < deadline) {
		store_event **evs = NULL;
		size_t n = 0;

		assert_int_equal(
		    store_watch_next(w, 100, want - got, &evs, &n, NULL), 0);
		for (size_t i = 0; i < n && got < want; i++) {
			store_event_ref(evs[i]);
			out[got++] = evs[i];
		}
		store_events_free(evs, n);
	}
	return got;
}

/* ---- tests -------------------------------------------------------------- */

static void test_lease_grant_ttl_revoke(void **state)
{
	store *s = fx_open(state);
	int64_t a, b, rem = -1, granted = -1, ttl = -1;

	a = grant(s, 60);
	b = grant(s, 5);
	assert_true(a != b);

	assert_int_equal(store_lease_ttl(s, a, &rem, &granted), 0);
	assert_int_equal(granted, 60);
	assert_true(rem >= 58 && rem <= 60);
	assert_int_equal(store_lease_ttl(s, b, &rem, &granted), 0);
	assert_int_equal(granted, 5);
	assert_true(rem >= 3 && rem <= 5);
	assert_int_equal(store_lease_ttl(s, a, NULL, NULL), 0);

	assert_int_equal(store_lease_keepalive(s, b, &ttl), 0);
	assert_int_equal(ttl, 5);
	assert_int_equal(store_lease_keepalive(s, b, NULL), 0);

	assert_int_equal(store_lease_revoke(s, b), 0);
	assert_int_equal(store_lease_ttl(s, b, &rem, &granted), STORE_ENOLEASE);
	assert_int_equal(store_lease_keepalive(s, b, &ttl), STORE_ENOLEASE);
	assert_int_equal(store_lease_revoke(s, b), STORE_ENOLEASE);
	/* The other one is untouched. */
	assert_int_equal(store_lease_ttl(s, a, &rem, &granted), 0);
	assert_int_equal(granted, 60);

	/* Never granted. */
	assert_int_equal(store_lease_ttl(s, 987654321, &rem, &granted),
			 STORE_ENOLEASE);
	assert_int_equal(store_lease_keepalive(s, 987654321, &ttl),
			 STORE_ENOLEASE);
	assert_int_equal(store_lease_revoke(s, 987654321), STORE_ENOLEASE);

	/* Many grants: all distinct. */
	{
		int64_t ids[50];

		for (int i = 0; i < 50; i++) {
			ids[i] = grant(s, 30);
			for (int j = 0; j < i; j++)
				assert_true(ids[j] != ids[i]);
			assert_true(ids[i] != a);
		}
	}
}

static void test_lease_put_unknown(void **state)
{
	store *s = fx_open(state);
	int64_t rev = -1, l, before;

	put_lease(s, "x", "1", 0); /* 1 */
	assert_int_equal(store_put(s, "k", "v", 1, 424242, &rev),
			 STORE_ENOLEASE);
	assert_int_equal(store_revision(s), 1);
	assert_int_equal(key_lease(s, "k"), -1);

	/* A txn with one good and one bad lease: nothing applied. */
	l = grant(s, 30);
	before = store_revision(s);
	{
		store_op ops[2] = {
		    {.type = STORE_OP_PUT,
		     .key = "good",
		     .value = "1",
		     .value_len = 1,
		     .lease = l},
		    {.type = STORE_OP_PUT,
		     .key = "bad",
		     .value = "1",
		     .value_len = 1,
		     .lease = l + 1000003},
		};
		store_txn t = {.success = ops, .nsuccess = 2};
		store_txn_result res;

		assert_int_equal(store_txn_run(s, &t, &res), STORE_ENOLEASE);
	}
	assert_int_equal(store_revision(s), before);
	assert_int_equal(key_lease(s, "good"), -1);
	assert_int_equal(key_lease(s, "bad"), -1);

	/* A revoked lease is unknown too. */
	assert_int_equal(store_lease_revoke(s, l), 0);
	before = store_revision(s);
	assert_int_equal(store_put(s, "k", "v", 1, l, &rev), STORE_ENOLEASE);
	assert_int_equal(store_revision(s), before);
	assert_int_equal(key_lease(s, "k"), -1);
	assert_int_equal(count_keys(s), 1);
}

static void test_lease_revoke_deletes_keys(void **state)
{
	store *s = fx_open(state);
	store_event *ev[8];
	store_watch *w = NULL;
	int64_t l, rev_before, rev;
	store_range_result r;
	size_t n;

	l = grant(s, 60);
	put_lease(s, "a", "1", l);
	put_lease(s, "c", "1", 0);
	put_lease(s, "b", "1", l);
	put_lease(s, "d", "1", l);
	put_lease(s, "d", "2", 0); /* re-put without the lease: detached */
	assert_int_equal(key_lease(s, "a"), l);
	assert_int_equal(key_lease(s, "b"), l);
	assert_int_equal(key_lease(s, "c"), 0);
	assert_int_equal(key_lease(s, "d"), 0);

	assert_int_equal(store_watch_open(s, KEY_MIN, "", 0, &w), 0);
	rev_before = store_revision(s);
	assert_int_equal(store_lease_revoke(s, l), 0);
	rev = store_revision(s);
	/* One revision for all of the lease's keys. */
	assert_int_equal(rev, rev_before + 1);
	assert_int_equal(key_lease(s, "a"), -1);
	assert_int_equal(key_lease(s, "b"), -1);
	assert_int_equal(key_lease(s, "c"), 0);
	assert_int_equal(key_lease(s, "d"), 0);

	/* Two DELETE events, that revision, key order, nothing else. */
	n = read_events(w, ev, 2);
	assert_int_equal(n, 2);
	assert_int_equal(ev[0]->type, STORE_EVENT_DELETE);
	assert_string_equal(ev[0]->kv.key, "a");
	assert_int_equal(ev[0]->kv.mod_revision, rev);
	assert_int_equal(ev[1]->type, STORE_EVENT_DELETE);
	assert_string_equal(ev[1]->kv.key, "b");
	assert_int_equal(ev[1]->kv.mod_revision, rev);
	store_event_unref(ev[0]);
	store_event_unref(ev[1]);
	{
		store_event **evs = NULL;
		size_t m = 0;

		assert_int_equal(store_watch_next(w, 50, 8, &evs, &m, NULL), 0);
		assert_int_equal(m, 0);
		store_events_free(evs, m);
	}

	/* And the history shows the keys at the revision before. */
	assert_int_equal(store_range(s, KEY_MIN, "", rev_before, 0, &r), 0);
	assert_int_equal(r.count, 4);
	store_range_result_free(&r);
	store_watch_close(w);
}

static void test_lease_expiry(void **state)
{
	store *s = fx_open(state);
	store_event *ev[4];
	store_watch *w = NULL;
	int64_t l, t0, took, rem = -1, ttl = -1;

	t0 = now_ms();
	l = grant(s, 1);
	put_lease(s, "e1", "v", l);
	put_lease(s, "e2", "v", l);
	put_lease(s, "keep", "v", 0);
	assert_int_equal(store_watch_open(s, KEY_MIN, "", 0, &w), 0);
	/* Not gone early: it is there well before its TTL could end. */
	if (now_ms() - t0 < 500)
		assert_int_equal(key_lease(s, "e1"), l);

	/* Gone within about 3 s of the grant (TTL 1 s plus the checker's
	 * period); polled, with a generous bound. */
	took = wait_gone(s, "e1", 4000);
	if (took < 0)
		fail_msg("a 1 s lease's key still there after 4 s");
	assert_true(now_ms() - t0 >= 900);
	assert_int_equal(key_lease(s, "e2"), -1);
	assert_int_equal(key_lease(s, "keep"), 0);

	/* Both deletes, as events, in one revision. */
	assert_int_equal(read_events(w, ev, 2), 2);
	assert_int_equal(ev[0]->type, STORE_EVENT_DELETE);
	assert_int_equal(ev[1]->type, STORE_EVENT_DELETE);
	assert_string_equal(ev[0]->kv.key, "e1");
	assert_string_equal(ev[1]->kv.key, "e2");
	assert_int_equal(ev[0]->kv.mod_revision, ev[1]->kv.mod_revision);
	assert_int_equal(ev[0]->kv.mod_revision, store_revision(s));
	store_event_unref(ev[0]);
	store_event_unref(ev[1]);
	store_watch_close(w);

	/* The lease is gone. */
	assert_int_equal(store_lease_keepalive(s, l, &ttl), STORE_ENOLEASE);
	assert_int_equal(store_lease_ttl(s, l, &rem, NULL), STORE_ENOLEASE);
	assert_int_equal(store_lease_revoke(s, l), STORE_ENOLEASE);
	assert_int_equal(store_put(s, "e1", "v", 1, l, NULL), STORE_ENOLEASE);
}

static void test_lease_keepalive_prevents_expiry(void **state)
{
	store *s = fx_open(state);
	int64_t l, t0, ttl = -1, rem = -1, granted = -1;

	l = grant(s, 2);
	put_lease(s, "alive", "v", l);
	/* Renew every 250 ms for 4.5 s: more than twice the TTL. */
	t0 = now_ms();
	while (now_ms() - t0 < 4500) {
		assert_int_equal(store_lease_keepalive(s, l, &ttl), 0);
		assert_int_equal(ttl, 2);
		assert_int_equal(key_lease(s, "alive"), l);
		sleep_ms(250);
	}
	assert_int_equal(store_lease_ttl(s, l, &rem, &granted), 0);
	assert_int_equal(granted, 2);
	assert_true(rem >= 1 && rem <= 2);
	assert_int_equal(key_lease(s, "alive"), l);

	/* Stop renewing: it expires. */
	if (wait_gone(s, "alive", 6000) < 0)
		fail_msg("lease key still there 6 s after the last keepalive");
	assert_int_equal(store_lease_keepalive(s, l, &ttl), STORE_ENOLEASE);
}

static void test_lease_survives_reopen(void **state)
{
	store *s = fx_open(state);
	int64_t l, short_l, l2, rem = -1, granted = -1, before;

	l = grant(s, 30);
	short_l = grant(s, 3);
	put_lease(s, "a", "1", l);
	put_lease(s, "b", "1", short_l);
	fx_close(state);

	/* Down for 2 s: after the restart short_l has its full 3 s again
	 * (keepalives are in memory), not 1 s. */
	sleep_ms(2000);
	s = fx_open(state);
	assert_int_equal(store_lease_ttl(s, short_l, &rem, &granted), 0);
	assert_int_equal(granted, 3);
	assert_true(rem >= 2 && rem <= 3);
	assert_int_equal(store_lease_ttl(s, l, &rem, &granted), 0);
	assert_int_equal(granted, 30);
	assert_true(rem >= 28 && rem <= 30);
	assert_int_equal(key_lease(s, "a"), l);
	assert_int_equal(key_lease(s, "b"), short_l);

	/* New grants don't reuse a live lease's id. */
	l2 = grant(s, 30);
	assert_true(l2 != l && l2 != short_l);

	/* Still attached: revoking deletes the key. */
	before = store_revision(s);
	assert_int_equal(store_lease_revoke(s, l), 0);
	assert_int_equal(key_lease(s, "a"), -1);
	assert_int_equal(store_revision(s), before + 1);

	/* And still expiring after the restart. */
	if (wait_gone(s, "b", 6000) < 0)
		fail_msg("key of a 3 s lease still there 6 s after reopen");
	assert_int_equal(store_lease_ttl(s, short_l, &rem, &granted),
			 STORE_ENOLEASE);

	/* Revoked and expired leases stay gone across another reopen. */
	fx_close(state);
	s = fx_open(state);
	assert_int_equal(store_lease_ttl(s, l, &rem, &granted), STORE_ENOLEASE);
	assert_int_equal(store_lease_ttl(s, short_l, &rem, &granted),
			 STORE_ENOLEASE);
	assert_int_equal(store_lease_ttl(s, l2, &rem, &granted), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_lease_grant_ttl_revoke),
	    T(test_lease_put_unknown),
	    T(test_lease_revoke_deletes_keys),
	    T(test_lease_expiry),
	    T(test_lease_keepalive_prevents_expiry),
	    T(test_lease_survives_reopen),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
