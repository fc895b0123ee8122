/*
 * backup.c -- `signalbox backup --data-dir DIR FILE` and
 * `signalbox restore FILE --data-dir DIR`. Both are thin: the work and its
 * guarantees (a consistent live copy; no restore under a running server)
 * are store_backup and store_restore's.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "store/store.h"

/* Parse "--data-dir DIR" and one positional FILE. */
static int parse(int argc, char **argv, const char *usage, const char **dir,
		 const char **file)
{
	static const struct option opts[] = {
	    {"data-dir", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	*dir = "./signalbox-data";
	*file = NULL;
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			*dir = optarg;
			break;
		case 'h':
			printf("usage: %s\n", usage);
			return 0;
		default:
			fprintf(stderr, "usage: %s\n", usage);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "signalbox %s: expected one FILE\nusage: %s\n",
			argv[0], usage);
		return 2;
	}
	*file = argv[optind];
	return -1;
}

int cmd_backup(int argc, char **argv)
{
	const char *usage = "signalbox backup [--data-dir DIR] FILE";
	const char *dir, *file;
	char err[512] = "";
	int rc = parse(argc, argv, usage, &dir, &file);

	if (rc >= 0)
		return rc;
	rc = store_backup(dir, file, err, sizeof err);
	if (rc) {
		fprintf(stderr, "signalbox backup: %s\n",
			*err ? err : store_strerror(rc));
		return 1;
	}
	printf("signalbox backup: %s written from %s\n", file, dir);
	return 0;
}

int cmd_restore(int argc, char **argv)
{
	const char *usage = "signalbox restore FILE [--data-dir DIR]";
	const char *dir, *file;
	char err[512] = "";
	int rc = parse(argc, argv, usage, &dir, &file);

	if (rc >= 0)
		return rc;
	rc = store_restore(file, dir, err, sizeof err);
	if (rc) {
		fprintf(stderr, "signalbox restore: %s\n",
			*err ? err : store_strerror(rc));
		return 1;
	}
	printf("signalbox restore: %s restored into %s (the previous database, "
	       "if any, is kept as %s/signalbox.db.before-restore)\n",
	       file, dir, dir);
	return 0;
}
