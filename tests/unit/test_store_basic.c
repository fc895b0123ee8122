/*
 * test_store_basic.c -- the store's key-value half, against store.h:
 * opening and closing, put/get, range over single keys and intervals (with
 * limits and at old revisions), store_prefix_end, transactions (every
 * compare target and operator, both branches, GET ops, prev_kv, one
 * revision per transaction, none for a failed compare), input errors
 * (EDUPKEY, ETOOLARGE, EINVAL), the create/mod/version rules, the
 * convenience wrappers, store_txn_async, concurrent writers (contiguous
 * revisions, linearizable CAS), persistence across reopen and the data
 * directory lock.
 */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

extern char **environ;

/* The smallest key: keys are byte strings without NUL. */
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
	f->dir = tu_tmpdir("basic");
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

static const char *fx_dir(void **state)
{
	return ((fx *)*state)->dir;
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

static int64_t put_str(store *s, const char *key, const char *value)
{
	int64_t rev = -1;

	assert_int_equal(store_put(s, key, value, strlen(value), 0, &rev), 0);
	return rev;
}

static int64_t del_key(store *s, const char *key, const char *end)
{
	int64_t rev = -1, deleted = -1;

	assert_int_equal(store_delete(s, key, end, &deleted, &rev), 0);
	return deleted;
}

/* Get key at revision (0 = latest); returns true and fills *kv (deep
 * copies of key and value, caller frees) when it exists. */
static bool get_at(store *s, const char *key, int64_t rev, store_kv *kv)
{
	store_range_result r;
	bool found;

	assert_int_equal(store_range(s, key, NULL, rev, 0, &r), 0);
	assert_true(r.count <= 1);
	assert_false(r.more);
	found = r.count == 1;
	if (found) {
		assert_string_equal(r.kvs[0].key, key);
		*kv = r.kvs[0];
		kv->key = strdup(r.kvs[0].key);
		kv->value = malloc(r.kvs[0].value_len + 1);
		assert_non_null(kv->key);
		assert_non_null(kv->value);
		memcpy(kv->value, r.kvs[0].value, r.kvs[0].value_len + 1);
	}
	store_range_result_free(&r);
	return found;
}

static void kv_free(store_kv *kv)
{
	free(kv->key);
	free(kv->value);
}

/* Assert that key exists with these fields (value as a C string). */
static void expect_kv(store *s, const char *key, const char *value,
		      int64_t create, int64_t mod, int64_t version)
{
	store_kv kv;

	assert_true(get_at(s, key, 0, &kv));
	assert_int_equal(kv.value_len, strlen(value));
	assert_memory_equal(kv.value, value, kv.value_len);
	assert_int_equal(kv.value[kv.value_len], '\0');
	assert_int_equal(kv.create_revision, create);
	assert_int_equal(kv.mod_revision, mod);
	assert_int_equal(kv.version, version);
	kv_free(&kv);
}

static void expect_absent(store *s, const char *key)
{
	store_kv kv;

	assert_false(get_at(s, key, 0, &kv));
}

/* Range [key, end) at rev and compare the keys to the NULL-terminated
 * list want[]. */
static void expect_keys(store *s, const char *key, const char *end, int64_t rev,
			const char *const *want)
{
	store_range_result r;
	size_t n = 0;

	while (want[n])
		n++;
	assert_int_equal(store_range(s, key, end, rev, 0, &r), 0);
	assert_int_equal(r.count, n);
	assert_false(r.more);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(r.kvs[i].key, want[i]);
	store_range_result_free(&r);
}

static store_op op_put(const char *key, const char *value)
{
	store_op o = {.type = STORE_OP_PUT,
		      .key = key,
		      .value = value,
		      .value_len = value ? strlen(value) : 0};

	return o;
}

static store_op op_del(const char *key, const char *end)
{
	store_op o = {.type = STORE_OP_DELETE, .key = key, .end = end};

	return o;
}

static store_op op_get(const char *key, const char *end)
{
	store_op o = {.type = STORE_OP_GET, .key = key, .end = end};

	return o;
}

/* ---- a small model of the key space, to check range at every revision -- */

#define MKEYS 6
#define MREVS 64

typedef struct mkey {
	bool exists;
	char value[32];
	int64_t create, mod, version;
} mkey;

typedef struct model {
	mkey snap[MREVS + 1][MKEYS]; /* state after each revision */
	mkey cur[MKEYS];
	int64_t rev;
} model;

static const char *const mnames[MKEYS] = {"m/a", "m/b", "m/c",
					  "m/d", "m/e", "m/f"};

static void model_commit(model *m, int64_t rev)
{
	assert_int_equal(rev, m->rev + 1);
	assert_true(rev <= MREVS);
	m->rev = rev;
	memcpy(m->snap[rev], m->cur, sizeof m->cur);
}

static void model_put(model *m, int i, const char *value, int64_t rev)
{
	mkey *k = &m->cur[i];

	if (!k->exists) {
		k->exists = true;
		k->create = rev;
		k->version = 0;
	}
	k->version++;
	k->mod = rev;
	snprintf(k->value, sizeof k->value, "%s", value);
}

static void model_check(store *s, const model *m, int64_t rev)
{
	const mkey *st = m->snap[rev];
	store_range_result r;
	size_t j = 0;

	assert_int_equal(store_range(s, "m/", "m0", rev, 0, &r), 0);
	assert_int_equal(r.revision, rev);
	for (int i = 0; i < MKEYS; i++) {
		if (!st[i].exists)
			continue;
		assert_true(j < r.count);
		assert_string_equal(r.kvs[j].key, mnames[i]);
		assert_int_equal(r.kvs[j].value_len, strlen(st[i].value));
		assert_memory_equal(r.kvs[j].value, st[i].value,
				    r.kvs[j].value_len);
		assert_int_equal(r.kvs[j].create_revision, st[i].create);
		assert_int_equal(r.kvs[j].mod_revision, st[i].mod);
		assert_int_equal(r.kvs[j].version, st[i].version);
		j++;
	}
	assert_int_equal(r.count, j);
	assert_false(r.more);
	store_range_result_free(&r);
}

/* ---- open / close ------------------------------------------------------- */

static void test_open_close_empty(void **state)
{
	store_range_result r;
	store *s;

	s = fx_open(state);
	assert_int_equal(store_revision(s), 0);
	assert_int_equal(store_compact_revision(s), 0);
	assert_true(store_db_size(s) > 0);

	assert_int_equal(store_range(s, KEY_MIN, "", 0, 0, &r), 0);
	assert_int_equal(r.count, 0);
	assert_false(r.more);
	assert_int_equal(r.revision, 0);
	store_range_result_free(&r);

	fx_close(state);
	store_close(NULL); /* documented no-op */

	/* Reopening an empty store gives an empty store. */
	s = fx_open(state);
	assert_int_equal(store_revision(s), 0);
	fx_close(state);
}

static void test_strerror(void **state)
{
	for (int e = 0; e >= STORE_ETOOLARGE; e--) {
		const char *m = store_strerror(e);

		assert_non_null(m);
		assert_true(strlen(m) > 0);
	}
	assert_non_null(store_strerror(-12345));
	assert_non_null(store_strerror(12345));
	/* Distinct codes have distinct names. */
	assert_string_not_equal(store_strerror(STORE_ECOMPACTED),
				store_strerror(STORE_EFUTURE));
}

static void test_open_creates_dir(void **state)
{
	fx *f = *state;
	char err[256] = "";
	store_options o;
	struct stat st;
	char *dir;
	int rc;

	/* data_dir is created (mode 0700) if missing. */
	assert_true(asprintf(&dir, "%s/sub", fx_dir(state)) > 0);
	store_options_init(&o);
	o.data_dir = dir;
	o.history_revisions = 0;
	o.history_seconds = 0;
	rc = store_open(&o, &f->s, err, sizeof err);
	if (rc != 0)
		fail_msg("store_open on a missing dir: %s: %s",
			 store_strerror(rc), err);
	put_str(f->s, "k", "v");
	fx_close(state);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	free(dir);
}

/* ---- put / get -------------------------------------------------------- */

static void test_put_get(void **state)
{
	store_range_result r;
	store_kv kv;
	int64_t rev;
	store *s;

	s = fx_open(state);

	rev = put_str(s, "a", "1");
	assert_int_equal(rev, 1);
	assert_int_equal(store_revision(s), 1);

	assert_int_equal(store_range(s, "a", NULL, 0, 0, &r), 0);
	assert_int_equal(r.count, 1);
	assert_false(r.more);
	assert_int_equal(r.revision, 1);
	assert_string_equal(r.kvs[0].key, "a");
	assert_int_equal(r.kvs[0].value_len, 1);
	assert_memory_equal(r.kvs[0].value, "1", 2); /* with its NUL */
	assert_int_equal(r.kvs[0].create_revision, 1);
	assert_int_equal(r.kvs[0].mod_revision, 1);
	assert_int_equal(r.kvs[0].version, 1);
	assert_int_equal(r.kvs[0].lease, 0);
	store_range_result_free(&r);

	/* Binary value with an embedded NUL. */
	assert_int_equal(store_put(s, "bin", "x\0y\xff", 4, 0, &rev), 0);
	assert_int_equal(rev, 2);
	assert_true(get_at(s, "bin", 0, &kv));
	assert_int_equal(kv.value_len, 4);
	assert_memory_equal(kv.value, "x\0y\xff", 5);
	kv_free(&kv);

	/* Empty value: value_len 0, value is "" (a NUL not counted). */
	assert_int_equal(store_put(s, "empty", "", 0, 0, &rev), 0);
	assert_int_equal(rev, 3);
	assert_true(get_at(s, "empty", 0, &kv));
	assert_int_equal(kv.value_len, 0);
	assert_int_equal(kv.value[0], '\0');
	kv_free(&kv);

	/* A missing key: no kvs, read at the current revision. */
	assert_int_equal(store_range(s, "nope", NULL, 0, 0, &r), 0);
	assert_int_equal(r.count, 0);
	assert_false(r.more);
	assert_int_equal(r.revision, 3);
	store_range_result_free(&r);

	/* Overwrite. */
	rev = put_str(s, "a", "22");
	assert_int_equal(rev, 4);
	expect_kv(s, "a", "22", 1, 4, 2);

	fx_close(state);
}

/* ---- range ---------------------------------------------------------- */

static void test_range_intervals(void **state)
{
	static const char *const keys[] = {"c", "a", "b1", "b", "d", "e", "ba"};
	store *s;

	s = fx_open(state);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		put_str(s, keys[i], keys[i]);

	/* Single key: exactly that key, not its extensions. */
	expect_keys(s, "b", NULL, 0, (const char *const[]){"b", NULL});
	/* [b, d): sorted, end excluded. */
	expect_keys(s, "b", "d", 0,
		    (const char *const[]){"b", "b1", "ba", "c", NULL});
	/* [b1, ba]: bytewise order. */
	expect_keys(s, "b1", "bb", 0, (const char *const[]){"b1", "ba", NULL});
	/* end "" is unbounded. */
	expect_keys(s, "c", "", 0, (const char *const[]){"c", "d", "e", NULL});
	expect_keys(
	    s, KEY_MIN, "", 0,
	    (const char *const[]){"a", "b", "b1", "ba", "c", "d", "e", NULL});
	/* An interval holding no key. */
	expect_keys(s, "f", "", 0, (const char *const[]){NULL});
	expect_keys(s, "b2", "b9", 0, (const char *const[]){NULL});

	fx_close(state);
}

static void test_range_limit_more(void **state)
{
	store_range_result r;
	char key[32];
	store *s;

	s = fx_open(state);
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof key, "k%d", i);
		put_str(s, key, "v");
	}

	static const struct {
		int64_t limit;
		size_t count;
		bool more;
	} cases[] = {{0, 10, false},   {1, 1, true},	{3, 3, true},
		     {9, 9, true},     {10, 10, false}, {11, 10, false},
		     {1000, 10, false}};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		assert_int_equal(
		    store_range(s, "k", "l", 0, cases[c].limit, &r), 0);
		assert_int_equal(r.count, cases[c].count);
		assert_int_equal(r.more, cases[c].more);
		assert_int_equal(r.revision, 10);
		for (size_t i = 0; i < r.count; i++) {
			snprintf(key, sizeof key, "k%zu", i);
			assert_string_equal(r.kvs[i].key, key);
		}
		store_range_result_free(&r);
	}

	/* Limit on an interval that starts mid-way: [k5, "") limit 2. */
	assert_int_equal(store_range(s, "k5", "", 0, 2, &r), 0);
	assert_int_equal(r.count, 2);
	assert_true(r.more);
	assert_string_equal(r.kvs[0].key, "k5");
	assert_string_equal(r.kvs[1].key, "k6");
	store_range_result_free(&r);

	/* Limit at an old revision counts the keys of that revision. */
	del_key(s, "k0", "k5"); /* rev 11 */
	assert_int_equal(store_range(s, "k", "l", 0, 5, &r), 0);
	assert_int_equal(r.count, 5);
	assert_false(r.more);
	assert_string_equal(r.kvs[0].key, "k5");
	store_range_result_free(&r);
	assert_int_equal(store_range(s, "k", "l", 10, 5, &r), 0);
	assert_int_equal(r.count, 5);
	assert_true(r.more);
	assert_string_equal(r.kvs[0].key, "k0");
	assert_int_equal(r.revision, 10);
	store_range_result_free(&r);

	fx_close(state);
}

/* Build a history of puts, overwrites, deletes, range deletes and multi-key
 * transactions, recording the expected state after every revision; then
 * range at every revision and compare (invariant 4). */
static void build_model_history(store *s, model *m)
{
	char val[32];
	int64_t rev;

	memset(m, 0, sizeof *m);
	for (int step = 0; step < 40; step++) {
		int i = (step * 7 + 3) % MKEYS;

		snprintf(val, sizeof val, "v%d", step);
		if (step % 9 == 4) {
			/* Delete one key if it exists, else put it. */
			if (m->cur[i].exists) {
				assert_int_equal(del_key(s, mnames[i], NULL),
						 1);
				rev = store_revision(s);
				memset(&m->cur[i], 0, sizeof m->cur[i]);
			} else {
				rev = put_str(s, mnames[i], val);
				model_put(m, i, val, rev);
			}
		} else if (step % 13 == 12) {
			/* Delete range [m/b, m/e). */
			int64_t n = 0, want = 0;

			for (int j = 1; j < 4; j++)
				want += m->cur[j].exists;
			if (want == 0) {
				rev = put_str(s, mnames[1], val);
				model_put(m, 1, val, rev);
			} else {
				assert_int_equal(
				    store_delete(s, "m/b", "m/e", &n, &rev), 0);
				assert_int_equal(n, want);
				for (int j = 1; j < 4; j++)
					memset(&m->cur[j], 0, sizeof m->cur[j]);
			}
		} else if (step % 5 == 2) {
			/* Two keys in one transaction. */
			int i2 = (i + 1) % MKEYS;
			store_op ops[2] = {op_put(mnames[i], val),
					   op_put(mnames[i2], val)};
			store_txn t = {.success = ops, .nsuccess = 2};
			store_txn_result res;

			assert_int_equal(store_txn_run(s, &t, &res), 0);
			assert_true(res.succeeded);
			rev = res.revision;
			store_txn_result_free(&res);
			model_put(m, i, val, rev);
			model_put(m, i2, val, rev);
		} else {
			rev = put_str(s, mnames[i], val);
			model_put(m, i, val, rev);
		}
		model_commit(m, rev);
	}
}

static void test_range_old_revisions(void **state)
{
	store_range_result r;
	model *m = calloc(1, sizeof *m);
	store *s;

	assert_non_null(m);
	s = fx_open(state);
	build_model_history(s, m);
	assert_int_equal(store_revision(s), m->rev);

	for (int64_t rev = 1; rev <= m->rev; rev++)
		model_check(s, m, rev);
	/* 0 is the latest. */
	assert_int_equal(store_range(s, "m/", "m0", 0, 0, &r), 0);
	assert_int_equal(r.revision, m->rev);
	store_range_result_free(&r);

	/* Beyond the current revision. */
	assert_int_equal(store_range(s, "m/", "m0", m->rev + 1, 0, &r),
			 STORE_EFUTURE);
	assert_int_equal(store_range(s, "m/a", NULL, m->rev + 100, 0, &r),
			 STORE_EFUTURE);

	/* Below the compact revision. */
	assert_int_equal(store_compact(s, 20), 0);
	assert_int_equal(store_range(s, "m/", "m0", 19, 0, &r),
			 STORE_ECOMPACTED);
	assert_int_equal(store_range(s, "m/a", NULL, 1, 0, &r),
			 STORE_ECOMPACTED);
	for (int64_t rev = 20; rev <= m->rev; rev++)
		model_check(s, m, rev);

	fx_close(state);
	free(m);
}

static void test_prefix_end(void **state)
{
	static const struct {
		const char *prefix, *end;
	} cases[] = {
	    {"abc", "abd"},	{"a", "b"},	    {"a\xff", "b"},
	    {"a\xff\xff", "b"}, {"\xff", ""},	    {"\xff\xff\xff", ""},
	    {"", ""},		{"a\xfe", "a\xff"}, {"/reg/", "/reg0"},
	    {"z\x01", "z\x02"},
	};
	char *end;
	store *s;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		end = store_prefix_end(cases[i].prefix);
		assert_non_null(end);
		assert_string_equal(end, cases[i].end);
		free(end);
	}

	/* And in use: every key starting with "ab", none other. */
	s = fx_open(state);
	put_str(s, "aa", "x");
	put_str(s, "ab", "x");
	put_str(s, "ab\xff", "x");
	put_str(s, "abc", "x");
	put_str(s, "abz", "x");
	put_str(s, "ac", "x");
	end = store_prefix_end("ab");
	expect_keys(s, "ab", end, 0,
		    (const char *const[]){"ab", "abc", "abz", "ab\xff", NULL});
	free(end);
	fx_close(state);
}

/* ---- transactions ------------------------------------------------------ */

/* Run one txn of one compare; success GETs "k", failure GETs "other". Check
 * which branch ran, that it wrote nothing, and return whether it held. */
static bool cmp_holds(store *s, const char *key, store_cmp_target target,
		      store_cmp_op op, int64_t value)
{
	store_cmp c = {.key = key, .target = target, .op = op, .value = value};
	store_op yes = op_get("k", NULL), no = op_get("other", NULL);
	store_txn t = {.cmps = &c,
		       .ncmps = 1,
		       .success = &yes,
		       .nsuccess = 1,
		       .failure = &no,
		       .nfailure = 1};
	int64_t before = store_revision(s);
	store_txn_result res;
	bool ok;

	assert_int_equal(store_txn_run(s, &t, &res), 0);
	ok = res.succeeded;
	assert_int_equal(res.nresults, 1);
	assert_int_equal(res.results[0].count, 1);
	assert_string_equal(res.results[0].kvs[0].key, ok ? "k" : "other");
	assert_int_equal(res.revision, before);
	assert_int_equal(store_revision(s), before);
	store_txn_result_free(&res);
	return ok;
}

static void test_txn_compares(void **state)
{
	store_cmp_target targets[] = {STORE_CMP_MOD, STORE_CMP_CREATE,
				      STORE_CMP_VERSION};
	int64_t actual[3];
	store *s;

	s = fx_open(state);
	put_str(s, "other", "o1"); /* 1 */
	put_str(s, "k", "k1");	   /* 2 */
	put_str(s, "other", "o2"); /* 3 */
	put_str(s, "k", "k2");	   /* 4 */
	put_str(s, "k", "k3");	   /* 5 */
	expect_kv(s, "k", "k3", 2, 5, 3);
	actual[0] = 5; /* mod */
	actual[1] = 2; /* create */
	actual[2] = 3; /* version */

	/* "target OP value": LT holds when the key's number < value. */
	static const struct {
		store_cmp_op op;
		const char *name;
		bool holds[3]; /* at value = actual - 1, actual, actual + 1 */
	} truth[] = {
	    {STORE_CMP_EQ, "EQ", {false, true, false}},
	    {STORE_CMP_NE, "NE", {true, false, true}},
	    {STORE_CMP_LT, "LT", {false, false, true}},
	    {STORE_CMP_GT, "GT", {true, false, false}},
	};
	static const char *const tname[3] = {"MOD", "CREATE", "VERSION"};

	for (int t = 0; t < 3; t++) {
		for (int o = 0; o < 4; o++) {
			for (int d = -1; d <= 1; d++) {
				int64_t v = actual[t] + d;
				bool got = cmp_holds(s, "k", targets[t],
						     truth[o].op, v);

				if (got != truth[o].holds[d + 1])
					fail_msg("%s(k) = %lld %s %lld: got "
						 "%d, want %d",
						 tname[t], (long long)actual[t],
						 truth[o].name, (long long)v,
						 got, truth[o].holds[d + 1]);
			}
		}
		/* A missing key compares as 0 on every target. */
		assert_true(
		    cmp_holds(s, "missing", targets[t], STORE_CMP_EQ, 0));
		assert_false(
		    cmp_holds(s, "missing", targets[t], STORE_CMP_GT, 0));
		assert_true(
		    cmp_holds(s, "missing", targets[t], STORE_CMP_LT, 1));
		assert_true(
		    cmp_holds(s, "missing", targets[t], STORE_CMP_NE, 5));
	}

	/* Several compares: all must hold. */
	{
		store_cmp c[3] = {
		    {.key = "k",
		     .target = STORE_CMP_MOD,
		     .op = STORE_CMP_EQ,
		     .value = 5},
		    {.key = "k",
		     .target = STORE_CMP_VERSION,
		     .op = STORE_CMP_EQ,
		     .value = 3},
		    {.key = "other",
		     .target = STORE_CMP_MOD,
		     .op = STORE_CMP_EQ,
		     .value = 3},
		};
		store_op g = op_get("k", NULL);
		store_txn t = {
		    .cmps = c, .ncmps = 3, .success = &g, .nsuccess = 1};
		store_txn_result res;

		assert_int_equal(store_txn_run(s, &t, &res), 0);
		assert_true(res.succeeded);
		assert_int_equal(res.nresults, 1);
		store_txn_result_free(&res);

		c[2].value = 1; /* the last one fails */
		assert_int_equal(store_txn_run(s, &t, &res), 0);
		assert_false(res.succeeded);
		assert_int_equal(res.nresults, 0); /* empty failure branch */
		store_txn_result_free(&res);
	}

	fx_close(state);
}

static void test_txn_branches(void **state)
{
	store_cmp c = {.key = "k",
		       .target = STORE_CMP_VERSION,
		       .op = STORE_CMP_EQ,
		       .value = 0};
	store_op succ[2] = {op_put("k", "created"), op_put("s", "1")};
	store_op fail[2] = {op_put("f", "1"), op_get("k", NULL)};
	store_txn t = {.cmps = &c,
		       .ncmps = 1,
		       .success = succ,
		       .nsuccess = 2,
		       .failure = fail,
		       .nfailure = 2};
	store_txn_result res;
	store *s;

	s = fx_open(state);

	/* First run: "k" does not exist, the success branch runs. */
	assert_int_equal(store_txn_run(s, &t, &res), 0);
	assert_true(res.succeeded);
	assert_int_equal(res.revision, 1);
	assert_int_equal(res.nresults, 2);
	store_txn_result_free(&res);
	expect_kv(s, "k", "created", 1, 1, 1);
	expect_kv(s, "s", "1", 1, 1, 1);
	expect_absent(s, "f");

	/* Second run: the failure branch runs, and since it writes, it takes
	 * the next revision; its GET sees "k". */
	assert_int_equal(store_txn_run(s, &t, &res), 0);
	assert_false(res.succeeded);
	assert_int_equal(res.revision, 2);
	assert_int_equal(res.nresults, 2);
	assert_int_equal(res.results[1].count, 1);
	assert_string_equal(res.results[1].kvs[0].key, "k");
	assert_int_equal(res.results[1].kvs[0].value_len, 7);
	assert_memory_equal(res.results[1].kvs[0].value, "created", 7);
	store_txn_result_free(&res);
	expect_kv(s, "f", "1", 2, 2, 1);
	expect_kv(s, "k", "created", 1, 1, 1);
	assert_int_equal(store_revision(s), 2);

	fx_close(state);
}

static void test_failed_compare_takes_no_revision(void **state)
{
	store_cmp c = {.key = "k",
		       .target = STORE_CMP_MOD,
		       .op = STORE_CMP_EQ,
		       .value = 999};
	store_op succ = op_put("k", "never");
	store_op fail_get = op_get("k", NULL);
	store_txn t = {.cmps = &c, .ncmps = 1, .success = &succ, .nsuccess = 1};
	store_txn_result res;
	store *s;

	s = fx_open(state);
	put_str(s, "k", "v1"); /* 1 */
	put_str(s, "j", "v1"); /* 2 */

	/* Failure branch empty. */
	assert_int_equal(store_txn_run(s, &t, &res), 0);
	assert_false(res.succeeded);
	assert_int_equal(res.revision, 2);
	assert_int_equal(res.nresults, 0);
	store_txn_result_free(&res);
	assert_int_equal(store_revision(s), 2);

	/* Failure branch that only reads. */
	t.failure = &fail_get;
	t.nfailure = 1;
	assert_int_equal(store_txn_run(s, &t, &res), 0);
	assert_false(res.succeeded);
	assert_int_equal(res.revision, 2);
	assert_int_equal(res.nresults, 1);
	assert_int_equal(res.results[0].count, 1);
	store_txn_result_free(&res);
	assert_int_equal(store_revision(s), 2);
	expect_kv(s, "k", "v1", 1, 1, 1);

	/* A txn with no compares and no ops is fine and writes nothing. */
	{
		store_txn empty = {0};

		assert_int_equal(store_txn_run(s, &empty, &res), 0);
		assert_true(res.succeeded);
		assert_int_equal(res.nresults, 0);
		assert_int_equal(res.revision, 2);
		store_txn_result_free(&res);
	}
	/* A read-only txn takes no revision either. */
	{
		store_op g = op_get(KEY_MIN, "");
		store_txn ro = {.success = &g, .nsuccess = 1};

		assert_int_equal(store_txn_run(s, &ro, &res), 0);
		assert_true(res.succeeded);
		assert_int_equal(res.revision, 2);
		assert_int_equal(res.results[0].count, 2);
		store_txn_result_free(&res);
	}

	/* The next write gets exactly the next revision: no hole. */
	assert_int_equal(put_str(s, "k", "v2"), 3);
	expect_kv(s, "k", "v2", 1, 3, 2);

	fx_close(state);
}

static void test_txn_get_ops(void **state)
{
	store_op ops[3] = {op_get("a", NULL), op_get("b", "d"),
			   op_get("zzz", NULL)};
	store_txn t = {.success = ops, .nsuccess = 3};
	store_txn_result res;
	store *s;

	s = fx_open(state);
	put_str(s, "a", "A");
	put_str(s, "b", "B");
	put_str(s, "c", "C");
	put_str(s, "d", "D");
	put_str(s, "a", "A2");

	assert_int_equal(store_txn_run(s, &t, &res), 0);
	assert_true(res.succeeded);
	assert_int_equal(res.revision, 5);
	assert_int_equal(res.nresults, 3);
	assert_int_equal(res.results[0].count, 1);
	assert_string_equal(res.results[0].kvs[0].key, "a");
	assert_int_equal(res.results[0].kvs[0].value_len, 2);
	assert_memory_equal(res.results[0].kvs[0].value, "A2", 3);
	assert_int_equal(res.results[0].kvs[0].create_revision, 1);
	assert_int_equal(res.results[0].kvs[0].mod_revision, 5);
	assert_int_equal(res.results[0].kvs[0].version, 2);
	assert_int_equal(res.results[1].count, 2);
	assert_string_equal(res.results[1].kvs[0].key, "b");
	assert_string_equal(res.results[1].kvs[1].key, "c");
	assert_int_equal(res.results[2].count, 0);
	store_txn_result_free(&res);

	fx_close(state);
}

static void test_prev_kv(void **state)
{
	store_txn_result res;
	store *s;

	s = fx_open(state);
	put_str(s, "a", "old"); /* 1 */
	put_str(s, "b", "B");	/* 2 */
	put_str(s, "c", "C");	/* 3 */

	/* PUT with prev_kv over an existing key. */
	{
		store_op o = op_put("a", "new");
		store_txn t = {.success = &o, .nsuccess = 1};

		o.prev_kv = true;
		assert_int_equal(store_txn_run(s, &t, &res), 0);
		assert_int_equal(res.revision, 4);
		assert_int_equal(res.nresults, 1);
		assert_int_equal(res.results[0].count, 1);
		assert_string_equal(res.results[0].kvs[0].key, "a");
		assert_int_equal(res.results[0].kvs[0].value_len, 3);
		assert_memory_equal(res.results[0].kvs[0].value, "old", 4);
		assert_int_equal(res.results[0].kvs[0].mod_revision, 1);
		assert_int_equal(res.results[0].kvs[0].version, 1);
		store_txn_result_free(&res);
	}
	/* PUT with prev_kv over a new key: nothing. */
	{
		store_op o = op_put("n", "x");
		store_txn t = {.success = &o, .nsuccess = 1};

		o.prev_kv = true;
		assert_int_equal(store_txn_run(s, &t, &res), 0);
		assert_int_equal(res.nresults, 1);
		assert_int_equal(res.results[0].count, 0);
		store_txn_result_free(&res);
	}
	/* PUT without prev_kv: nothing, even over an existing key. */
	{
		store_op o = op_put("a", "newer");
		store_txn t = {.success = &o, .nsuccess = 1};

		assert_int_equal(store_txn_run(s, &t, &res), 0);
		assert_int_equal(res.nresults, 1);
		assert_int_equal(res.results[0].count, 0);
		store_txn_result_free(&res);
	}
	/* DELETE range with prev_kv: the deleted keys with their values. */
	{
		store_op o = op_del("b", "d");
		store_txn t = {.success = &o, .nsuccess = 1};

		o.prev_kv = true;
		assert_int_equal(store_txn_run(s, &t, &res), 0);
		assert_int_equal(res.revision, 7);
		assert_int_equal(res.nresults, 1);
		assert_int_equal(res.results[0].deleted, 2);
		assert_int_equal(res.results[0].count, 2);
		assert_string_equal(res.results[0].kvs[0].key, "b");
		assert_memory_equal(res.results[0].kvs[0].value, "B", 2);
		assert_int_equal(res.results[0].kvs[0].mod_revision, 2);
		assert_string_equal(res.results[0].kvs[1].key, "c");
		assert_memory_equal(res.results[0].kvs[1].value, "C", 2);
		assert_int_equal(res.results[0].kvs[1].mod_revision, 3);
		store_txn_result_free(&res);
	}
	/* DELETE without prev_kv: the count only. */
	{
		store_op o = op_del("a", NULL);
		store_txn t = {.success = &o, .nsuccess = 1};

		assert_int_equal(store_txn_run(s, &t, &res), 0);
		assert_int_equal(res.results[0].deleted, 1);
		assert_int_equal(res.results[0].count, 0);
		store_txn_result_free(&res);
	}
	expect_keys(s, KEY_MIN, "", 0, (const char *const[]){"n", NULL});

	fx_close(state);
}

static void test_multi_op_one_revision(void **state)
{
	store_op ops[4] = {op_put("x", "1"), op_put("y", "2"),
			   op_del("z", NULL), op_put("w", "3")};
	store_txn t = {.success = ops, .nsuccess = 4};
	store_txn_result res;
	store *s;

	s = fx_open(state);
	put_str(s, "z", "0"); /* 1 */
	put_str(s, "y", "0"); /* 2 */

	assert_int_equal(store_txn_run(s, &t, &res), 0);
	assert_true(res.succeeded);
	assert_int_equal(res.revision, 3);
	assert_int_equal(res.nresults, 4);
	assert_int_equal(res.results[2].deleted, 1);
	store_txn_result_free(&res);
	assert_int_equal(store_revision(s), 3);

	expect_kv(s, "x", "1", 3, 3, 1);
	expect_kv(s, "y", "2", 2, 3, 2);
	expect_kv(s, "w", "3", 3, 3, 1);
	expect_absent(s, "z");
	/* And the revision before shows none of it. */
	expect_keys(s, KEY_MIN, "", 2, (const char *const[]){"y", "z", NULL});

	fx_close(state);
}

/* ---- input errors ------------------------------------------------------ */

/* Run t, expect error err, and check nothing changed. */
static void expect_txn_err(store *s, const store_txn *t, int err)
{
	int64_t before = store_revision(s);
	store_txn_result res;

	memset(&res, 0, sizeof res);
	assert_int_equal(store_txn_run(s, t, &res), err);
	assert_int_equal(store_revision(s), before);
}

static void test_edupkey(void **state)
{
	store *s;

	s = fx_open(state);
	put_str(s, "b", "orig"); /* 1 */

	{
		store_op ops[3] = {op_put("a", "1"), op_put("c", "x"),
				   op_put("a", "2")};
		store_txn t = {.success = ops, .nsuccess = 3};

		expect_txn_err(s, &t, STORE_EDUPKEY);
	}
	{
		store_op ops[2] = {op_put("b", "new"), op_del("b", NULL)};
		store_txn t = {.success = ops, .nsuccess = 2};

		expect_txn_err(s, &t, STORE_EDUPKEY);
	}
	{
		store_op ops[2] = {op_del("b", NULL), op_put("b", "new")};
		store_txn t = {.success = ops, .nsuccess = 2};

		expect_txn_err(s, &t, STORE_EDUPKEY);
	}
	expect_absent(s, "a");
	expect_absent(s, "c");
	expect_kv(s, "b", "orig", 1, 1, 1);

	/* The same key in the two branches is written once: fine. */
	{
		store_op succ = op_put("a", "s"), fail = op_put("a", "f");
		store_txn t = {.success = &succ,
			       .nsuccess = 1,
			       .failure = &fail,
			       .nfailure = 1};
		store_txn_result res;

		assert_int_equal(store_txn_run(s, &t, &res), 0);
		assert_true(res.succeeded);
		assert_int_equal(res.revision, 2);
		store_txn_result_free(&res);
		expect_kv(s, "a", "s", 2, 2, 1);
	}

	fx_close(state);
}

static void test_etoolarge(void **state)
{
	char *key = malloc(STORE_MAX_KEY + 2);
	char *val = malloc(STORE_MAX_VALUE + 1);
	store_kv kv;
	int64_t rev;
	store *s;

	assert_non_null(key);
	assert_non_null(val);
	s = fx_open(state);

	memset(key, 'k', STORE_MAX_KEY + 1);
	key[STORE_MAX_KEY + 1] = '\0';
	assert_int_equal(store_put(s, key, "v", 1, 0, &rev), STORE_ETOOLARGE);
	assert_int_equal(store_revision(s), 0);

	key[STORE_MAX_KEY] = '\0'; /* exactly the limit: accepted */
	assert_int_equal(store_put(s, key, "v", 1, 0, &rev), 0);
	assert_int_equal(rev, 1);
	assert_true(get_at(s, key, 0, &kv));
	assert_int_equal(strlen(kv.key), STORE_MAX_KEY);
	kv_free(&kv);

	for (size_t i = 0; i < STORE_MAX_VALUE + 1; i++)
		val[i] = (char)(i * 31 + 7);
	assert_int_equal(store_put(s, "big", val, STORE_MAX_VALUE + 1, 0, &rev),
			 STORE_ETOOLARGE);
	assert_int_equal(store_revision(s), 1);
	expect_absent(s, "big");

	/* A too large value in a multi-op txn: nothing of it applied. */
	{
		store_op ops[2] = {op_put("small", "x"), op_put("big", NULL)};
		store_txn t = {.success = ops, .nsuccess = 2};

		ops[1].value = val;
		ops[1].value_len = STORE_MAX_VALUE + 1;
		expect_txn_err(s, &t, STORE_ETOOLARGE);
		expect_absent(s, "small");
	}

	/* Exactly the limit: stored and read back intact. */
	assert_int_equal(store_put(s, "big", val, STORE_MAX_VALUE, 0, &rev), 0);
	assert_int_equal(rev, 2);
	assert_true(get_at(s, "big", 0, &kv));
	assert_int_equal(kv.value_len, STORE_MAX_VALUE);
	assert_memory_equal(kv.value, val, STORE_MAX_VALUE);
	kv_free(&kv);

	fx_close(state);
	free(key);
	free(val);
}

static void test_einval(void **state)
{
	int64_t rev = 0, n = 0;
	bool ok;
	store *s;

	s = fx_open(state);
	put_str(s, "k", "v");

	assert_int_equal(store_put(s, "", "v", 1, 0, &rev), STORE_EINVAL);
	assert_int_equal(store_cas(s, "", "v", 1, 0, &ok, &rev), STORE_EINVAL);
	assert_int_equal(store_delete(s, "", NULL, &n, &rev), STORE_EINVAL);
	{
		store_op ops[2] = {op_put("fine", "1"), op_put("", "2")};
		store_txn t = {.success = ops, .nsuccess = 2};

		expect_txn_err(s, &t, STORE_EINVAL);
		ops[1].key = NULL;
		expect_txn_err(s, &t, STORE_EINVAL);
		ops[1] = op_put("fine2", "2");
		ops[1].type = (store_op_type)99;
		expect_txn_err(s, &t, STORE_EINVAL);
	}
	{
		store_cmp c = {.key = "",
			       .target = STORE_CMP_MOD,
			       .op = STORE_CMP_EQ,
			       .value = 0};
		store_op o = op_put("fine", "1");
		store_txn t = {
		    .cmps = &c, .ncmps = 1, .success = &o, .nsuccess = 1};

		expect_txn_err(s, &t, STORE_EINVAL);
		c.key = "k";
		c.op = (store_cmp_op)42;
		expect_txn_err(s, &t, STORE_EINVAL);
		c.op = STORE_CMP_EQ;
		c.target = (store_cmp_target)42;
		expect_txn_err(s, &t, STORE_EINVAL);
	}
	expect_absent(s, "fine");
	expect_absent(s, "fine2");
	assert_int_equal(store_revision(s), 1);

	fx_close(state);
}

/* ---- revision rules ------------------------------------------------- */

static void test_revision_rules(void **state)
{
	store_kv kv;
	store *s;

	s = fx_open(state);
	assert_int_equal(put_str(s, "k", "a"), 1);
	expect_kv(s, "k", "a", 1, 1, 1);
	assert_int_equal(put_str(s, "k", "b"), 2);
	expect_kv(s, "k", "b", 1, 2, 2);
	assert_int_equal(put_str(s, "j", "x"), 3);
	assert_int_equal(put_str(s, "k", "c"), 4);
	expect_kv(s, "k", "c", 1, 4, 3);
	/* Other keys don't touch k's numbers. */
	expect_kv(s, "j", "x", 3, 3, 1);

	assert_int_equal(del_key(s, "k", NULL), 1); /* 5 */
	assert_int_equal(store_revision(s), 5);
	expect_absent(s, "k");

	/* Recreated: create = mod = the new revision, version starts over. */
	assert_int_equal(put_str(s, "k", "d"), 6);
	expect_kv(s, "k", "d", 6, 6, 1);
	assert_int_equal(put_str(s, "k", "e"), 7);
	expect_kv(s, "k", "e", 6, 7, 2);

	/* The old incarnation is still readable at its revisions. */
	assert_true(get_at(s, "k", 4, &kv));
	assert_int_equal(kv.create_revision, 1);
	assert_int_equal(kv.mod_revision, 4);
	assert_int_equal(kv.version, 3);
	assert_memory_equal(kv.value, "c", 2);
	kv_free(&kv);
	assert_false(get_at(s, "k", 5, &kv));
	assert_true(get_at(s, "k", 6, &kv));
	assert_int_equal(kv.create_revision, 6);
	assert_int_equal(kv.version, 1);
	kv_free(&kv);

	fx_close(state);
}

static void test_delete_range_counts(void **state)
{
	int64_t n, rev;
	store *s;

	s = fx_open(state);
	put_str(s, "a", "1");
	put_str(s, "b", "1");
	put_str(s, "b2", "1");
	put_str(s, "c", "1");
	put_str(s, "d", "1"); /* 5 */

	assert_int_equal(store_delete(s, "b", "d", &n, &rev), 0);
	assert_int_equal(n, 3);
	assert_int_equal(rev, 6);
	expect_keys(s, KEY_MIN, "", 0, (const char *const[]){"a", "d", NULL});

	/* Single key that exists. */
	assert_int_equal(store_delete(s, "d", NULL, &n, &rev), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rev, 7);

	/* Nothing there: 0 deleted. */
	assert_int_equal(store_delete(s, "zz", NULL, &n, NULL), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_delete(s, "b", "c", &n, NULL), 0);
	assert_int_equal(n, 0);

	/* Unbounded end. */
	put_str(s, "x", "1");
	put_str(s, "y", "1");
	assert_int_equal(store_delete(s, KEY_MIN, "", &n, NULL), 0);
	assert_int_equal(n, 3);
	expect_keys(s, KEY_MIN, "", 0, (const char *const[]){NULL});

	/* NULL out-pointers are allowed. */
	put_str(s, "x", "2");
	assert_int_equal(store_delete(s, "x", NULL, NULL, NULL), 0);
	expect_absent(s, "x");

	fx_close(state);
}

static void test_wrappers(void **state)
{
	int64_t rev, n;
	bool ok;
	store *s;

	s = fx_open(state);

	assert_int_equal(store_put(s, "p", "1", 1, 0, NULL), 0); /* 1 */
	assert_int_equal(store_put(s, "p", "2", 1, 0, &rev), 0);
	assert_int_equal(rev, 2);

	/* cas with 0: create only if absent. */
	ok = false;
	assert_int_equal(store_cas(s, "c", "v1", 2, 0, &ok, &rev), 0);
	assert_true(ok);
	assert_int_equal(rev, 3);
	expect_kv(s, "c", "v1", 3, 3, 1);

	ok = true;
	assert_int_equal(store_cas(s, "c", "v2", 2, 0, &ok, &rev), 0);
	assert_false(ok);
	assert_int_equal(rev, 3); /* the key's current mod_revision */
	assert_int_equal(store_revision(s), 3);

	put_str(s, "other", "x"); /* 4 */

	/* cas on the right mod_revision. */
	assert_int_equal(store_cas(s, "c", "v2", 2, 3, &ok, &rev), 0);
	assert_true(ok);
	assert_int_equal(rev, 5);
	expect_kv(s, "c", "v2", 3, 5, 2);

	/* cas on a stale one: not done, no revision taken. */
	assert_int_equal(store_cas(s, "c", "v3", 2, 3, &ok, &rev), 0);
	assert_false(ok);
	assert_int_equal(rev, 5);
	assert_int_equal(store_revision(s), 5);
	expect_kv(s, "c", "v2", 3, 5, 2);

	/* cas expecting a mod on a missing key: fails, *rev is 0. */
	assert_int_equal(store_cas(s, "missing", "v", 1, 5, &ok, &rev), 0);
	assert_false(ok);
	assert_int_equal(rev, 0);
	expect_absent(s, "missing");

	/* cas with NULL rev. */
	assert_int_equal(store_cas(s, "c", "v3", 2, 5, &ok, NULL), 0);
	assert_true(ok);
	assert_int_equal(store_revision(s), 6);

	assert_int_equal(store_delete(s, "c", NULL, &n, &rev), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rev, 7);

	/* After a delete, cas with 0 creates again. */
	assert_int_equal(store_cas(s, "c", "v4", 2, 0, &ok, &rev), 0);
	assert_true(ok);
	assert_int_equal(rev, 8);
	expect_kv(s, "c", "v4", 8, 8, 1);

	fx_close(state);
}

/* ---- store_txn_async -------------------------------------------------- */

#define NASYNC 64

typedef struct async_state {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int calls;
	int errs[NASYNC + 1];
	int64_t revs[NASYNC + 1];
	bool succeeded[NASYNC + 1];
	bool res_null[NASYNC + 1];
	int ncalls[NASYNC + 1];
} async_state;

typedef struct async_arg {
	async_state *st;
	int idx;
} async_arg;

static void async_cb(int err, store_txn_result *res, void *arg)
{
	async_arg *a = arg;
	async_state *st = a->st;

	pthread_mutex_lock(&st->mu);
	st->errs[a->idx] = err;
	st->res_null[a->idx] = res == NULL;
	if (res) {
		st->revs[a->idx] = res->revision;
		st->succeeded[a->idx] = res->succeeded;
		store_txn_result_delete(res);
	}
	st->ncalls[a->idx]++;
	st->calls++;
	pthread_cond_broadcast(&st->cv);
	pthread_mutex_unlock(&st->mu);
}

/* Wait until st->calls >= want, up to 20 s. */
static bool async_wait(async_state *st, int want)
{
	struct timespec dl;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 20;
	pthread_mutex_lock(&st->mu);
	while (st->calls < want) {
		if (pthread_cond_timedwait(&st->cv, &st->mu, &dl) == ETIMEDOUT)
			break;
	}
	ok = st->calls >= want;
	pthread_mutex_unlock(&st->mu);
	return ok;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void test_txn_async(void **state)
{
	async_state *st = calloc(1, sizeof *st);
	async_arg args[NASYNC + 1];
	int64_t sorted[NASYNC];
	char key[32], val[32];
	int queued_bad;
	store *s;

	assert_non_null(st);
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	s = fx_open(state);

	/* The txn and its strings are borrowed only during the call: build
	 * them in a stack buffer that is overwritten right after. */
	for (int i = 0; i < NASYNC; i++) {
		store_op o;
		store_txn t;

		snprintf(key, sizeof key, "async/%02d", i);
		snprintf(val, sizeof val, "value-%d", i);
		o = op_put(key, val);
		t = (store_txn){.success = &o, .nsuccess = 1};
		args[i].st = st;
		args[i].idx = i;
		assert_int_equal(store_txn_async(s, &t, async_cb, &args[i]), 0);
		memset(key, 'X', sizeof key - 1);
		memset(val, 'Y', sizeof val - 1);
		memset(&o, 0xA5, sizeof o);
	}
	assert_true(async_wait(st, NASYNC));

	pthread_mutex_lock(&st->mu);
	for (int i = 0; i < NASYNC; i++) {
		assert_int_equal(st->ncalls[i], 1);
		assert_int_equal(st->errs[i], 0);
		assert_false(st->res_null[i]);
		assert_true(st->succeeded[i]);
		sorted[i] = st->revs[i];
	}
	pthread_mutex_unlock(&st->mu);
	qsort(sorted, NASYNC, sizeof sorted[0], cmp_i64);
	for (int i = 0; i < NASYNC; i++)
		assert_int_equal(sorted[i], i + 1);
	assert_int_equal(store_revision(s), NASYNC);

	/* The callback ran after the write was durable and visible. */
	for (int i = 0; i < NASYNC; i++) {
		store_kv kv;

		snprintf(key, sizeof key, "async/%02d", i);
		snprintf(val, sizeof val, "value-%d", i);
		assert_true(get_at(s, key, 0, &kv));
		assert_int_equal(kv.value_len, strlen(val));
		assert_memory_equal(kv.value, val, kv.value_len);
		assert_int_equal(kv.mod_revision, st->revs[i]);
		kv_free(&kv);
	}

	/* A bad txn: either refused now (cb never runs) or cb runs once
	 * with err != 0 and res == NULL. */
	{
		store_op ops[2] = {op_put("d", "1"), op_put("d", "2")};
		store_txn t = {.success = ops, .nsuccess = 2};
		int rc;

		args[NASYNC].st = st;
		args[NASYNC].idx = NASYNC;
		rc = store_txn_async(s, &t, async_cb, &args[NASYNC]);
		queued_bad = rc == 0;
		if (!queued_bad) {
			assert_int_equal(rc, STORE_EDUPKEY);
		} else {
			assert_true(async_wait(st, NASYNC + 1));
			pthread_mutex_lock(&st->mu);
			assert_int_equal(st->ncalls[NASYNC], 1);
			assert_int_equal(st->errs[NASYNC], STORE_EDUPKEY);
			assert_true(st->res_null[NASYNC]);
			pthread_mutex_unlock(&st->mu);
		}
		assert_int_equal(store_revision(s), NASYNC);
		expect_absent(s, "d");
	}

	fx_close(state);
	/* No callback ran twice, and none ran after close. */
	pthread_mutex_lock(&st->mu);
	assert_int_equal(st->calls, NASYNC + queued_bad);
	pthread_mutex_unlock(&st->mu);

	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
	free(st);
}

/* ---- concurrency ------------------------------------------------------ */

#define NTHREADS 8
#define NPUTS	 150

typedef struct writer_arg {
	store *s;
	int id;
	int64_t revs[NPUTS];
	int errs;
} writer_arg;

static void *writer_main(void *p)
{
	writer_arg *a = p;
	char key[32], val[32];

	for (int i = 0; i < NPUTS; i++) {
		snprintf(key, sizeof key, "w%d/%03d", a->id, i);
		snprintf(val, sizeof val, "%d.%d", a->id, i);
		if (store_put(a->s, key, val, strlen(val), 0, &a->revs[i]) != 0)
			a->errs++;
	}
	return NULL;
}

static void test_concurrent_writers(void **state)
{
	writer_arg *args = calloc(NTHREADS, sizeof *args);
	int64_t *all = calloc(NTHREADS * NPUTS, sizeof *all);
	pthread_t th[NTHREADS];
	store_range_result r;
	store *s;

	assert_non_null(args);
	assert_non_null(all);
	s = fx_open(state);
	for (int t = 0; t < NTHREADS; t++) {
		args[t].s = s;
		args[t].id = t;
		assert_int_equal(
		    pthread_create(&th[t], NULL, writer_main, &args[t]), 0);
	}
	for (int t = 0; t < NTHREADS; t++)
		pthread_join(th[t], NULL);

	for (int t = 0; t < NTHREADS; t++) {
		assert_int_equal(args[t].errs, 0);
		/* One thread's sequential writes get increasing revisions. */
		for (int i = 1; i < NPUTS; i++)
			assert_true(args[t].revs[i] > args[t].revs[i - 1]);
		memcpy(all + t * NPUTS, args[t].revs, sizeof args[t].revs);
	}
	/* Together: exactly 1..N, no duplicates, no holes. */
	qsort(all, NTHREADS * NPUTS, sizeof all[0], cmp_i64);
	for (int i = 0; i < NTHREADS * NPUTS; i++)
		assert_int_equal(all[i], i + 1);
	assert_int_equal(store_revision(s), NTHREADS * NPUTS);

	/* Every key carries the revision its put returned. */
	assert_int_equal(store_range(s, "w", "x", 0, 0, &r), 0);
	assert_int_equal(r.count, NTHREADS * NPUTS);
	for (size_t i = 0; i < r.count; i++) {
		int t, k;

		assert_int_equal(sscanf(r.kvs[i].key, "w%d/%d", &t, &k), 2);
		assert_int_equal(r.kvs[i].mod_revision, args[t].revs[k]);
		assert_int_equal(r.kvs[i].create_revision, args[t].revs[k]);
	}
	store_range_result_free(&r);

	fx_close(state);
	free(args);
	free(all);
}

#define NINCR 40

typedef struct incr_arg {
	store *s;
	int errs;
	int retries;
} incr_arg;

/* Increment the counter "ctr" NINCR times with a read + CAS loop. */
static void *incr_main(void *p)
{
	incr_arg *a = p;

	for (int i = 0; i < NINCR; i++) {
		for (;;) {
			store_range_result r;
			int64_t mod = 0, v = 0, rev;
			char buf[32];
			bool ok;

			if (store_range(a->s, "ctr", NULL, 0, 0, &r) != 0) {
				a->errs++;
				return NULL;
			}
			if (r.count == 1) {
				mod = r.kvs[0].mod_revision;
				v = strtoll(r.kvs[0].value, NULL, 10);
			}
			store_range_result_free(&r);
			snprintf(buf, sizeof buf, "%lld", (long long)(v + 1));
			if (store_cas(a->s, "ctr", buf, strlen(buf), mod, &ok,
				      &rev) != 0) {
				a->errs++;
				return NULL;
			}
			if (ok)
				break;
			a->retries++;
		}
	}
	return NULL;
}

static void test_concurrent_cas_counter(void **state)
{
	incr_arg args[NTHREADS];
	pthread_t th[NTHREADS];
	char want[32];
	store *s;

	s = fx_open(state);
	for (int t = 0; t < NTHREADS; t++) {
		args[t] = (incr_arg){.s = s};
		assert_int_equal(
		    pthread_create(&th[t], NULL, incr_main, &args[t]), 0);
	}
	for (int t = 0; t < NTHREADS; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(args[t].errs, 0);
	}
	/* No lost update: every successful CAS was one increment, and only
	 * successful ones took a revision. */
	snprintf(want, sizeof want, "%d", NTHREADS * NINCR);
	expect_kv(s, "ctr", want, 1, NTHREADS * NINCR, NTHREADS * NINCR);
	assert_int_equal(store_revision(s), NTHREADS * NINCR);

	fx_close(state);
}

/* ---- persistence and locking ------------------------------------------- */

static void test_persist_reopen(void **state)
{
	model *m = calloc(1, sizeof *m);
	store *s;

	assert_non_null(m);
	s = fx_open(state);
	build_model_history(s, m);
	fx_close(state);

	s = fx_open(state);
	assert_int_equal(store_revision(s), m->rev);
	assert_int_equal(store_compact_revision(s), 0);
	/* Latest state and every old revision came back. */
	for (int64_t rev = 1; rev <= m->rev; rev++)
		model_check(s, m, rev);

	/* Counting goes on from where it was. */
	assert_int_equal(put_str(s, "m/a", "after"), m->rev + 1);
	fx_close(state);

	s = fx_open(state);
	assert_int_equal(store_revision(s), m->rev + 1);
	{
		store_kv kv;

		assert_true(get_at(s, "m/a", 0, &kv));
		assert_memory_equal(kv.value, "after", 6);
		assert_int_equal(kv.mod_revision, m->rev + 1);
		if (m->cur[0].exists) {
			assert_int_equal(kv.create_revision, m->cur[0].create);
			assert_int_equal(kv.version, m->cur[0].version + 1);
		} else {
			assert_int_equal(kv.create_revision, m->rev + 1);
			assert_int_equal(kv.version, 1);
		}
		kv_free(&kv);
	}
	fx_close(state);

	free(m);
}

/* Re-executed as a child: "try-open DIR" exits with -store_open()'s code. */
static int child_try_open(const char *dir)
{
	store_options o;
	store *s = NULL;
	char err[256] = "";
	int rc;

	store_options_init(&o);
	o.data_dir = dir;
	o.history_revisions = 0;
	o.history_seconds = 0;
	rc = store_open(&o, &s, err, sizeof err);
	if (rc == 0)
		store_close(s);
	return -rc;
}

static int run_child_open(const char *dir)
{
	char *argv[] = {"test_store_basic", "try-open", (char *)dir, NULL};
	int status;
	pid_t pid;

	assert_int_equal(
	    posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return -WEXITSTATUS(status);
}

static void test_elocked_other_process(void **state)
{
	const char *dir = fx_dir(state);
	store *s;

	s = fx_open(state);
	put_str(s, "k", "v");
	assert_int_equal(run_child_open(dir), STORE_ELOCKED);
	/* The refused open did not hurt the holder. */
	expect_kv(s, "k", "v", 1, 1, 1);
	assert_int_equal(put_str(s, "k", "w"), 2);
	fx_close(state);

	/* Free again once closed. */
	assert_int_equal(run_child_open(dir), 0);
}

static void test_elocked_same_process(void **state)
{
	const char *dir = fx_dir(state);
	store_options o;
	store *s, *s2 = NULL;
	char err[256] = "";

	s = fx_open(state);
	put_str(s, "k", "v");

	store_options_init(&o);
	o.data_dir = dir;
	o.history_revisions = 0;
	o.history_seconds = 0;
	assert_int_equal(store_open(&o, &s2, err, sizeof err), STORE_ELOCKED);
	assert_true(strlen(err) > 0);
	if (s2)
		fail_msg("store_open failed but set *out");

	/* The first store still works and still holds the lock. */
	assert_int_equal(put_str(s, "k", "w"), 2);
	assert_int_equal(run_child_open(dir), STORE_ELOCKED);
	fx_close(state);

	/* After close the directory can be opened again. */
	s = fx_open(state);
	expect_kv(s, "k", "w", 1, 2, 2);
	fx_close(state);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_close_empty, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_strerror, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_open_creates_dir, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_put_get, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_range_intervals, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_range_limit_more, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_range_old_revisions, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_prefix_end, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_txn_compares, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_txn_branches, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(
		test_failed_compare_takes_no_revision, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_txn_get_ops, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_prev_kv, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_multi_op_one_revision,
					    fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_edupkey, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_etoolarge, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_einval, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_revision_rules, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_delete_range_counts, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_wrappers, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_txn_async, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_writers, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_cas_counter,
					    fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_persist_reopen, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_elocked_other_process,
					    fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_elocked_same_process, fx_setup,
					    fx_teardown),
	};

	if (argc == 3 && strcmp(argv[1], "try-open") == 0)
		return child_try_open(argv[2]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
