/*
 * audit.c -- `signalbox audit verify FILE...`: check the hash chain of an
 * audit log (src/security/audit.h) and say, in one or two lines, whether it
 * is intact or where it was first tampered with. Exit 0 intact, 1
 * tampered, 2 bad usage or a file that cannot be read.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cmd.h"
#include "security/audit.h"

static const char usage[] =
    "usage: signalbox audit verify FILE...\n"
    "\n"
    "Check the hash chain of audit log files, oldest first (for example\n"
    "log.2 log.1 log). Given a single FILE, its rotated siblings FILE.1,\n"
    "FILE.2, ... in the same directory are picked up too, oldest (highest\n"
    "number) first. When FILE.anchor exists beside the last file, the log\n"
    "must reach the record it names: without it, deleting the last\n"
    "records cannot be noticed.\n"
    "\n"
    "Exit status: 0 intact, 1 tampered, 2 usage or I/O error.\n";

static const char short_usage[] =
    "usage: signalbox audit verify FILE... (see --help)\n";

struct sibling {
	unsigned long n;
	char *path;
};

static int by_n_desc(const void *a, const void *b)
{
	const struct sibling *x = a, *y = b;

	return x->n < y->n ? 1 : x->n > y->n ? -1 : 0;
}

/* Whether name is base "." digits; the number in *n. */
static int sibling_number(const char *name, const char *base, unsigned long *n)
{
	size_t bl = strlen(base);
	const char *d = name + bl + 1;
	char *end;

	if (strncmp(name, base, bl) || name[bl] != '.' || *d < '1' || *d > '9')
		return 0;
	errno = 0;
	*n = strtoul(d, &end, 10);
	return !*end && !errno;
}

/* file's rotated siblings, oldest first, then file. Caller frees each
 * path and the array. */
static int with_siblings(const char *file, char ***out, size_t *n)
{
	char *dcopy = strdup(file), *bcopy = strdup(file), *dir, *base;
	struct sibling *s = NULL, *ns;
	size_t cnt = 0, i;
	struct dirent *e;
	unsigned long num;
	DIR *d = NULL;
	int rc = -ENOMEM;

	*out = NULL;
	if (!dcopy || !bcopy)
		goto out;
	dir = dirname(dcopy);
	base = basename(bcopy);
	d = opendir(dir);
	while (d && (e = readdir(d))) {
		if (!sibling_number(e->d_name, base, &num))
			continue;
		ns = realloc(s, (cnt + 1) * sizeof(*s));
		if (!ns)
			goto out;
		s = ns;
		s[cnt].n = num;
		if (asprintf(&s[cnt].path, "%s.%lu", file, num) < 0)
			goto out;
		cnt++;
	}
	if (cnt > 1)
		qsort(s, cnt, sizeof(*s), by_n_desc);
	*out = calloc(cnt + 1, sizeof(**out));
	if (!*out)
		goto out;
	for (i = 0; i < cnt; i++) {
		(*out)[i] = s[i].path;
		s[i].path = NULL;
	}
	(*out)[cnt] = strdup(file);
	*n = cnt + 1;
	rc = (*out)[cnt] ? 0 : -ENOMEM;
out:
	for (i = 0; s && i < cnt; i++)
		free(s[i].path);
	free(s);
	if (d)
		closedir(d);
	free(dcopy);
	free(bcopy);
	return rc;
}

static int report(const char *const *paths, size_t n,
		  const audit_verify_result *r)
{
	const char *last = paths[n - 1];

	if (r->problem == AUDIT_INTACT && !r->records) {
		printf("intact: no records in %zu file%s\n", n,
		       n == 1 ? "" : "s");
		return 0;
	}
	if (r->problem == AUDIT_INTACT) {
		printf("intact: %" PRIu64 " records, seq %" PRIu64 "..%" PRIu64
		       " in %zu file%s%s\n",
		       r->records, r->first_seq, r->last_seq, n,
		       n == 1 ? "" : "s",
		       r->records && r->first_seq != 1
			   ? " (older records were rotated away)"
			   : "");
		if (r->anchored)
			printf("anchor %s.anchor matches; last hash %s\n", last,
			       r->last_hash);
		else
			printf("no anchor %s.anchor: deleting the last records "
			       "would go unnoticed; last hash %s\n",
			       last, r->last_hash);
		return 0;
	}
	if (r->line)
		printf("TAMPERED: %s:%lu", paths[r->file], r->line);
	else
		printf("TAMPERED: %s, at the end", paths[r->file]);
	if (r->seq)
		printf(" (seq %" PRIu64 ")", r->seq);
	printf(": %s\n", r->what);
	if (r->records)
		printf("the %" PRIu64 " records before it (seq %" PRIu64
		       "..%" PRIu64 ") are intact\n",
		       r->records, r->first_seq, r->last_seq);
	return 1;
}

static int verify(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	audit_verify_result res;
	char **files = NULL;
	size_t n = 0, i;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return 0;
		}
		fputs(short_usage, stderr);
		return 2;
	}
	if (optind >= argc) {
		fprintf(stderr, "signalbox audit verify: expected FILE\n%s",
			short_usage);
		return 2;
	}
	if (argc - optind == 1) {
		if (with_siblings(argv[optind], &files, &n)) {
			fprintf(stderr,
				"signalbox audit verify: out of memory\n");
			return 2;
		}
		rc = audit_verify((const char *const *)files, n, &res);
	} else {
		n = (size_t)(argc - optind);
		rc = audit_verify((const char *const *)argv + optind, n, &res);
	}
	if (rc)
		fprintf(stderr, "signalbox audit verify: %s\n", res.what);
	else
		rc = report(files ? (const char *const *)files
				  : (const char *const *)argv + optind,
			    n, &res);
	for (i = 0; files && i < n; i++)
		free(files[i]);
	free(files);
	return rc < 0 ? 2 : rc;
}

int cmd_audit(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "verify"))
		return verify(argc - 1, argv + 1);
	if (argc >= 2 &&
	    (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	     !strcmp(argv[1], "help"))) {
		fputs(usage, stdout);
		return 0;
	}
	fputs(short_usage, stderr);
	return 2;
}
