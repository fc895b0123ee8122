/* testutil.c -- see testutil.h. */
#include "testutil.h"

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OFFSET_FILE ".sb-etcd-offset"

static const char *env_or_null(const char *name);

const char *tu_etcd(void)
{
	return env_or_null("SB_TEST_ETCD");
}

static const char *env_or_null(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

void tu_etcd_tls(store_options *o)
{
	o->etcd_ca_file = env_or_null("SB_TEST_ETCD_CA");
	o->etcd_cert_file = env_or_null("SB_TEST_ETCD_CERT");
	o->etcd_key_file = env_or_null("SB_TEST_ETCD_KEY");
}

/* On etcd, skip the cases that test what only the sqlite backend has.
 * cmocka takes one skip pattern per program. */
__attribute__((constructor)) static void tu_etcd_skips(void)
{
	static const struct {
		const char *prog, *pattern, *why;
	} skips[] = {
	    {"test_store_basic", "test_elocked_*",
	     "the data-directory lock is the sqlite backend's; an etcd store "
	     "locks nothing (several servers share one etcd). "
	     "test_open_creates_dir opens a sqlite store by data_dir and "
	     "runs as it is"},
	    {"test_store_lease", "test_lease_survives_reopen",
	     "etcd's leases run in etcd: closing and reopening the store "
	     "does not give them their full TTL again (only a change of "
	     "etcd leader does)"},
	};

	/* SB_TEST_FILTER=pattern runs only the matching cases. */
	if (getenv("SB_TEST_FILTER"))
		cmocka_set_test_filter(getenv("SB_TEST_FILTER"));
	if (!tu_etcd())
		return;
	for (size_t i = 0; i < sizeof skips / sizeof skips[0]; i++) {
		if (strcmp(program_invocation_short_name, skips[i].prog) != 0)
			continue;
		printf("[ SKIPPED  ] %s on etcd: %s\n", skips[i].pattern,
		       skips[i].why);
		cmocka_set_skip_filter(skips[i].pattern);
	}
}

char *tu_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *path;

	if (!base || !*base)
		base = "/tmp";
	if (asprintf(&path, "%s/sb-%s-XXXXXX", base, tag) < 0)
		abort();
	if (!mkdtemp(path)) {
		perror("mkdtemp");
		abort();
	}
	return path;
}

static int rm_one(const char *p, const struct stat *sb, int flag,
		  struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

void tu_rmrf(const char *path)
{
	if (path)
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void die_store(const char *what, const char *dir, int rc,
		      const char *err)
{
	fprintf(stderr, "%s(%s): %s: %s\n", what, dir, store_strerror(rc), err);
	abort();
}

/* Empty the etcd and return its revision then. */
static int64_t etcd_wipe(const char *dir)
{
	char err[512] = "";
	store_options o;
	store *s = NULL;
	int64_t rev;
	int rc;

	store_options_init(&o);
	o.history_revisions = 0;
	o.history_seconds = 0;
	o.etcd_endpoints = tu_etcd();
	tu_etcd_tls(&o);
	rc = store_open(&o, &s, err, sizeof err);
	if (rc)
		die_store("store_open (wiping etcd)", dir, rc, err);
	rc = store_delete(s, "\x01", "", NULL, NULL);
	if (rc)
		die_store("store_delete (wiping etcd)", dir, rc, "");
	rev = store_revision(s);
	store_close(s);
	return rev;
}

/* The revision offset of the etcd store "in" dir: made on first use. */
static int64_t etcd_offset(const char *dir)
{
	long long off = 0;
	char *path;
	FILE *f;

	if (asprintf(&path, "%s/" OFFSET_FILE, dir) < 0)
		abort();
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%lld", &off) != 1)
			abort();
		fclose(f);
	} else {
		off = etcd_wipe(dir);
		f = fopen(path, "w");
		if (!f || fprintf(f, "%lld\n", off) < 0 || fclose(f) != 0) {
			perror(path);
			abort();
		}
	}
	free(path);
	return off;
}

store *tu_open_opts(const char *dir, store_options *o)
{
	char err[512] = "";
	store *s = NULL;
	int rc;

	o->data_dir = dir;
	if (tu_etcd()) {
		o->etcd_endpoints = tu_etcd();
		o->etcd_revision_offset = etcd_offset(dir);
		tu_etcd_tls(o);
	}
	rc = store_open(o, &s, err, sizeof err);
	if (rc != 0) {
		fprintf(stderr, "store_open(%s): %s: %s\n", dir,
			store_strerror(rc), err);
		abort();
	}
	return s;
}

store *tu_open(const char *dir)
{
	store_options o;

	store_options_init(&o);
	o.history_revisions = 0;
	o.history_seconds = 0;
	return tu_open_opts(dir, &o);
}
