/* testutil.c -- see testutil.h. */
#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

store *tu_open_opts(const char *dir, store_options *o)
{
	char err[256] = "";
	store *s = NULL;
	int rc;

	o->data_dir = dir;
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
