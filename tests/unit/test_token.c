/*
 * test_token.c -- bearer tokens (src/security/token.c): the static token
 * file against the rules of kube's tokenfile (Go encoding/csv underneath),
 * minted tokens and their hashes, the Authorization header, and lifetimes.
 * Error and warning messages are checked never to hold a token.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "security/token.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ------------------------------------------------------------- */

static char path[256];

/* Write n bytes of content to a new temporary file (mode 0600) whose name
 * ends in tokens.csv; the name is in path. */
static void write_file_n(const char *content, size_t n)
{
	const char *t = getenv("TMPDIR");
	int fd;

	snprintf(path, sizeof(path), "%s/sb-XXXXXX-tokens.csv", t ? t : "/tmp");
	fd = mkstemps(path, 11);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, n), (ssize_t)n);
	close(fd);
}

static token_file *load_ok(const char *content)
{
	token_file *f = NULL;
	char err[512] = "";
	int r;

	write_file_n(content, strlen(content));
	r = token_file_load(path, &f, err, sizeof(err));
	unlink(path);
	if (r)
		fail_msg("token_file_load: %d %s", r, err);
	assert_non_null(f);
	return f;
}

/* Load content, expect -EINVAL and an error with want after "path:";
 * the message must not contain secret. */
static void load_bad(const char *content, size_t n, const char *want,
		     const char *secret)
{
	token_file *f = (token_file *)1;
	char err[512] = "";

	write_file_n(content, n);
	assert_int_equal(token_file_load(path, &f, err, sizeof(err)), -EINVAL);
	unlink(path);
	assert_null(f);
	if (strncmp(err, path, strlen(path)) ||
	    !strstr(err + strlen(path), want))
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
	if (secret && strstr(err, secret))
		fail_msg("error \"%s\" shows the token", err);
}

#define LOAD_BAD(lit, want, secret) load_bad(lit, sizeof(lit) - 1, want, secret)

static void check_entry(const token_file *f, const char *tok, const char *user,
			const char *uid, size_t ngroups, ...)
{
	const token_entry *e = token_file_find(f, tok);
	va_list ap;
	size_t i;

	if (!e)
		fail_msg("token for %s not found", user);
	assert_string_equal(e->user, user);
	assert_string_equal(e->uid, uid);
	assert_int_equal(e->ngroups, ngroups);
	if (!ngroups)
		assert_null(e->groups);
	va_start(ap, ngroups);
	for (i = 0; i < ngroups; i++)
		assert_string_equal(e->groups[i], va_arg(ap, const char *));
	va_end(ap);
}

/* ---- the token file ------------------------------------------------------ */

static void test_file_basic(void **state)
{
	token_file *f;

	(void)state;
	f = load_ok("tok1,alice,uid1\n"
		    "tok2,bob,uid2,\"system:masters,dev\"\n"
		    "tok3,carol,uid3,ops\n");
	assert_int_equal(token_file_count(f), 3);
	assert_int_equal(token_file_nwarnings(f), 0);
	check_entry(f, "tok1", "alice", "uid1", 0);
	check_entry(f, "tok2", "bob", "uid2", 2, "system:masters", "dev");
	check_entry(f, "tok3", "carol", "uid3", 1, "ops");
	assert_null(token_file_find(f, "tok"));
	assert_null(token_file_find(f, "tok11"));
	assert_null(token_file_find(f, "TOK1"));
	assert_null(token_file_find(f, ""));
	assert_null(token_file_find(f, NULL));
	assert_null(token_file_find(NULL, "tok1"));
	token_file_free(f);
	token_file_free(NULL);
}

/* Blank lines are skipped, "\r\n" is a line end, the last line may lack
 * one; a line of spaces is a record (of one field). */
static void test_file_lines(void **state)
{
	token_file *f;

	(void)state;
	f = load_ok("\n\ntok1,alice,1\r\n\r\n\n\ntok2,bob,2");
	assert_int_equal(token_file_count(f), 2);
	check_entry(f, "tok1", "alice", "1", 0);
	check_entry(f, "tok2", "bob", "2", 0);
	token_file_free(f);
	f = load_ok("");
	assert_int_equal(token_file_count(f), 0);
	token_file_free(f);
	f = load_ok("\n\r\n");
	assert_int_equal(token_file_count(f), 0);
	token_file_free(f);
	/* spaces are kept: kube does not trim */
	f = load_ok(" t , u , i \n");
	check_entry(f, " t ", " u ", " i ", 0);
	token_file_free(f);
	LOAD_BAD("tok1,alice,1\n   \n", ":2: expected at least 3 columns",
		 NULL);
}

static void test_file_columns(void **state)
{
	token_file *f;

	(void)state;
	LOAD_BAD("tok1,alice,1\nSECRETX,bob\n",
		 ":2: expected at least 3 columns (token, user name, uid), "
		 "found 2",
		 "SECRETX");
	LOAD_BAD("SECRETX\n", ":1: expected at least 3 columns", "SECRETX");
	/* extra columns are ignored; groups are the 4th */
	f = load_ok("t,u,i,g,extra,more\n");
	check_entry(f, "t", "u", "i", 1, "g");
	token_file_free(f);
	/* as kube's strings.Split: an empty 4th column is one empty group */
	f = load_ok("t,u,i,\nt2,u2,i2,\"a,,b,\"\n");
	check_entry(f, "t", "u", "i", 1, "");
	check_entry(f, "t2", "u2", "i2", 4, "a", "", "b", "");
	token_file_free(f);
	/* an empty uid is allowed; an empty user is not (a deviation) */
	f = load_ok("t,u,\n");
	check_entry(f, "t", "u", "", 0);
	token_file_free(f);
	LOAD_BAD("a,b,c\nSECRETX,,uid\n", ":2: empty user name", "SECRETX");
}

static void test_file_quotes(void **state)
{
	token_file *f;

	(void)state;
	f = load_ok("\"a,b\",\"us\"\"er\",\"\",\"g1,g2\"\n"
		    "\"\"\"q\"\"\",u2,i2\n");
	check_entry(f, "a,b", "us\"er", "", 2, "g1", "g2");
	check_entry(f, "\"q\"", "u2", "i2", 0);
	token_file_free(f);
	/* a quoted field may span lines; line numbers keep counting */
	f = load_ok("\"multi\nline\",u,i,\"g1,\ng2\"\r\nt2,u2,i2\n");
	check_entry(f, "multi\nline", "u", "i", 2, "g1", "\ng2");
	check_entry(f, "t2", "u2", "i2", 0);
	token_file_free(f);
	LOAD_BAD("\"multi\nline\",u,i\nt2,u2,i2\n\nSECRETX\n",
		 ":5: expected at least 3 columns", "SECRETX");
	/* a quote inside a field that is not quoted */
	LOAD_BAD("ok,u,i\nSECRET\"X,u,i\n", ":2: bare \" in a field", "SECRET");
	/* text after a closing quote */
	LOAD_BAD("\"SECRETX\"y,u,i\n", ":1: extraneous or missing \"",
		 "SECRETX");
	/* no closing quote */
	LOAD_BAD("a,b,c\n\"SECRETX,u,i\n",
		 ":2: a quoted field has no "
		 "closing quote",
		 "SECRETX");
	/* a quote that does not open the field */
	LOAD_BAD("a, \"b\",c\n", ":1: bare \"", NULL);
	/* a quoted last field closed at the end of the file */
	f = load_ok("t,u,\"i\"");
	check_entry(f, "t", "u", "i", 0);
	token_file_free(f);
}

static void test_file_duplicates(void **state)
{
	token_file *f;
	const char *w;

	(void)state;
	f = load_ok("SECRETDUP,alice,1\n"
		    "other,carol,3\n"
		    "SECRETDUP,bob,2,g\n"
		    ",nobody,0\n"
		    "SECRETDUP,dave,4\n");
	assert_int_equal(token_file_count(f), 2);
	check_entry(f, "SECRETDUP", "dave", "4", 0);
	check_entry(f, "other", "carol", "3", 0);
	assert_int_equal(token_file_nwarnings(f), 3);
	/* in line order */
	w = token_file_warning(f, 0);
	assert_non_null(strstr(w, ":3: duplicate token (also on line 1)"));
	w = token_file_warning(f, 1);
	assert_non_null(strstr(w, ":4: empty token"));
	w = token_file_warning(f, 2);
	assert_non_null(strstr(w, ":5: duplicate token (also on line 3)"));
	assert_null(token_file_warning(f, 3));
	for (size_t i = 0; i < token_file_nwarnings(f); i++)
		assert_null(strstr(token_file_warning(f, i), "SECRETDUP"));
	token_file_free(f);
}

static void test_file_many(void **state)
{
	size_t n = 2000, i, cap = n * 80, len = 0;
	char *buf = malloc(cap), tok[32], user[32];
	token_file *f;

	(void)state;
	/* every token twice: the second line (user "new-i") wins */
	for (i = 0; i < 2 * n; i++)
		len += (size_t)snprintf(buf + len, cap - len,
					"tok-%zu,%s-%zu,%zu\n", i % n,
					i < n ? "old" : "new", i % n, i);
	f = load_ok(buf);
	assert_int_equal(token_file_count(f), n);
	assert_int_equal(token_file_nwarnings(f), n);
	for (i = 0; i < n; i++) {
		const token_entry *e;

		snprintf(tok, sizeof(tok), "tok-%zu", i);
		snprintf(user, sizeof(user), "new-%zu", i);
		e = token_file_find(f, tok);
		assert_non_null(e);
		assert_string_equal(e->user, user);
	}
	assert_null(token_file_find(f, "tok-2000"));
	token_file_free(f);
	free(buf);
}

static void test_file_errors(void **state)
{
	token_file *f = (token_file *)1;
	char err[512] = "";

	(void)state;
	assert_int_equal(
	    token_file_load("/nonexistent/tokens.csv", &f, err, sizeof(err)),
	    -ENOENT);
	assert_null(f);
	assert_non_null(strstr(err, "/nonexistent/tokens.csv"));
	LOAD_BAD("a,b,c\nd,e\0f,g\n", ":2: NUL byte", NULL);
	{
		static char big[TOKEN_BEARER_MAX + 16];

		memset(big, 'A', TOKEN_BEARER_MAX);
		memcpy(big + TOKEN_BEARER_MAX, ",u,i\n", 5);
		load_bad(big, TOKEN_BEARER_MAX + 5, ":1: token longer than",
			 "AAAA");
	}
}

static void test_file_mode_warning(void **state)
{
	token_file *f = NULL;
	char err[256];

	(void)state;
	write_file_n("t,u,i\n", 6);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(token_file_load(path, &f, err, sizeof(err)), 0);
	unlink(path);
	assert_int_equal(token_file_nwarnings(f), 1);
	assert_non_null(strstr(token_file_warning(f, 0), "chmod 600"));
	token_file_free(f);
}

/* ---- minted tokens ------------------------------------------------------- */

static void test_generate(void **state)
{
	char a[TOKEN_MAX], b[TOKEN_MAX], small[TOKEN_MAX - 1];
	size_t i;

	(void)state;
	assert_int_equal(token_generate(a, sizeof(a)), 0);
	assert_int_equal(token_generate(b, sizeof(b)), 0);
	assert_int_equal(strlen(a), 3 + 43);
	assert_memory_equal(a, "sb_", 3);
	for (i = 3; a[i]; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "abcdefghijklmnopqrstuvwxyz0123456789-_",
				       a[i]));
	assert_string_not_equal(a, b);
	assert_int_equal(token_generate(small, sizeof(small)), -ENOBUFS);
}

static void test_hash(void **state)
{
	char h[65], t[TOKEN_MAX];

	(void)state;
	token_hash("abc", h);
	assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223"
			       "b00361a396177a9cb410ff61f20015ad");
	assert_true(token_hash_match("abc", h));
	assert_false(token_hash_match("abd", h));
	assert_false(token_hash_match("abc", "ba7816bf"));
	assert_false(token_hash_match("abc", NULL));
	h[0] = 'B';
	assert_false(token_hash_match("abc", h));
	assert_int_equal(token_generate(t, sizeof(t)), 0);
	token_hash(t, h);
	assert_true(token_hash_match(t, h));
	assert_null(strstr(h, t + 3));
}

/* ---- the Authorization header -------------------------------------------- */

static void test_header(void **state)
{
	static const struct {
		const char *in;
		int ret;
		const char *tok;
	} cases[] = {
	    {"Bearer abc", 0, "abc"},
	    {"bearer abc", 0, "abc"},
	    {"BEARER abc", 0, "abc"},
	    {"  Bearer abc \t\r\n", 0, "abc"},
	    {"Bearer abc def", 0, "abc"},
	    {"Bearer sb_x-Y_z", 0, "sb_x-Y_z"},
	    {"Bearer a,b=\"c\"", 0, "a,b=\"c\""},
	    {"Bearer  abc", -EINVAL, NULL},
	    {"Bearer", -ENOENT, NULL},
	    {"Bearer   ", -ENOENT, NULL},
	    {"Bearer\tabc", -ENOENT, NULL},
	    {"Bearerabc", -ENOENT, NULL},
	    {"Basic YWxhZGRpbjpvcGVuc2VzYW1l", -ENOENT, NULL},
	    {"Bear abc", -ENOENT, NULL},
	    {"", -ENOENT, NULL},
	    {NULL, -ENOENT, NULL},
	};
	char out[TOKEN_BEARER_MAX], small[4];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(cases); i++) {
		int r = token_from_header(cases[i].in, out, sizeof(out));

		if (r != cases[i].ret)
			fail_msg("\"%s\": %d, want %d",
				 cases[i].in ? cases[i].in : "(null)", r,
				 cases[i].ret);
		if (cases[i].tok)
			assert_string_equal(out, cases[i].tok);
	}
	assert_int_equal(token_from_header("Bearer abc", small, sizeof(small)),
			 0);
	assert_string_equal(small, "abc");
	assert_int_equal(token_from_header("Bearer abcd", small, sizeof(small)),
			 -E2BIG);
}

/* ---- lifetimes ----------------------------------------------------------- */

static void test_ttl(void **state)
{
	static const struct {
		const char *in;
		int64_t secs;
	} ok[] = {
	    {"24h", 86400},
	    {"30m", 1800},
	    {"90s", 90},
	    {"1h30m", 5400},
	    {"7d", 604800},
	    {"0", 0},
	    {"0s", 0},
	    {"1d12h", 129600},
	    {"30m1h", 5400},
	    {"1h1h", 7200},
	    {"36600d", 36600LL * 86400},
	};
	static const struct {
		const char *in;
		int ret;
		const char *msg;
	} bad[] = {
	    {"", -EINVAL, "empty"},
	    {"h", -EINVAL, "expected a number"},
	    {"24", -EINVAL, "missing unit"},
	    {"1.5h", -EINVAL, "unknown unit"},
	    {"-1h", -EINVAL, "expected a number"},
	    {"+1h", -EINVAL, "expected a number"},
	    {"1ms", -EINVAL, "milliseconds"},
	    {"1w", -EINVAL, "unknown unit \"w\""},
	    {"1h 30m", -EINVAL, "expected a number"},
	    {" 1h", -EINVAL, "expected a number"},
	    {"1h30", -EINVAL, "missing unit"},
	    {"36601d", -ERANGE, "too long"},
	    {"99999999999999999999999h", -ERANGE, "too long"},
	    {"9223372036854775807s", -ERANGE, "too long"},
	};
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(ok); i++) {
		int64_t s = -1;

		err[0] = '\0';
		if (token_parse_ttl(ok[i].in, &s, err, sizeof(err)))
			fail_msg("\"%s\": %s", ok[i].in, err);
		assert_int_equal(s, ok[i].secs);
	}
	for (i = 0; i < ARRAY_LEN(bad); i++) {
		int64_t s = -1;
		int r;

		err[0] = '\0';
		r = token_parse_ttl(bad[i].in, &s, err, sizeof(err));
		if (r != bad[i].ret || !strstr(err, bad[i].msg))
			fail_msg("\"%s\": %d \"%s\", want %d \"%s\"", bad[i].in,
				 r, err, bad[i].ret, bad[i].msg);
		assert_int_equal(s, -1);
	}
	assert_int_equal(token_parse_ttl(NULL, &(int64_t){0}, NULL, 0),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_file_basic),
	    cmocka_unit_test(test_file_lines),
	    cmocka_unit_test(test_file_columns),
	    cmocka_unit_test(test_file_quotes),
	    cmocka_unit_test(test_file_duplicates),
	    cmocka_unit_test(test_file_many),
	    cmocka_unit_test(test_file_errors),
	    cmocka_unit_test(test_file_mode_warning),
	    cmocka_unit_test(test_generate),
	    cmocka_unit_test(test_hash),
	    cmocka_unit_test(test_header),
	    cmocka_unit_test(test_ttl),
	};

	return cmocka_run_group_tests_name("token", tests, NULL, NULL);
}
