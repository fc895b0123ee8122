/*
 * serve.c -- `signalbox serve`: open the store on the data directory and
 * run until SIGTERM or SIGINT, then close it cleanly (every queued write
 * completes first).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "store/store.h"

static const char serve_usage[] =
	"usage: signalbox serve [--data-dir DIR] [--history-revisions N]\n"
	"                       [--history-seconds S]\n"
	"  --data-dir DIR           where the database lives "
	"(default ./signalbox-data)\n"
	"  --history-revisions N    keep at most N revisions of history "
	"(default 10000, 0: no limit)\n"
	"  --history-seconds S      keep no history older than S seconds "
	"(default 300, 0: no limit)\n";

/* Parse a non-negative integer option or say what is wrong. */
static int parse_count(const char *opt, const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < 0) {
		fprintf(stderr,
			"signalbox serve: %s wants a whole number >= 0, "
			"not '%s'\n",
			opt, s);
		return -1;
	}
	*out = v;
	return 0;
}

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{"data-dir", required_argument, NULL, 'd'},
		{"history-revisions", required_argument, NULL, 'r'},
		{"history-seconds", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	store_options o;
	char err[512] = "";
	sigset_t set;
	store *s;
	int c, sig, rc;

	store_options_init(&o);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			o.data_dir = optarg;
			break;
		case 'r':
			if (parse_count("--history-revisions", optarg,
					&o.history_revisions))
				return 2;
			break;
		case 's':
			if (parse_count("--history-seconds", optarg,
					&o.history_seconds))
				return 2;
			break;
		case 'h':
			fputs(serve_usage, stdout);
			return 0;
		default:
			fputs(serve_usage, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "signalbox serve: unexpected argument '%s'\n%s",
			argv[optind], serve_usage);
		return 2;
	}

	/* Signals are taken synchronously by this thread; the store's
	 * threads inherit the mask and never see them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	rc = store_open(&o, &s, err, sizeof err);
	if (rc) {
		fprintf(stderr, "signalbox serve: cannot open the store: %s\n",
			*err ? err : store_strerror(rc));
		return 1;
	}
	fprintf(stderr,
		"signalbox serve: ready: store %s at revision %lld "
		"(compacted to %lld)\n",
		o.data_dir, (long long)store_revision(s),
		(long long)store_compact_revision(s));
	sigwait(&set, &sig);
	fprintf(stderr, "signalbox serve: %s, stopping\n", strsignal(sig));
	store_close(s);
	fprintf(stderr, "signalbox serve: stopped\n");
	return 0;
}
