/*
 * serve.c -- `signalbox serve`: open the store on the data directory, serve
 * the Kubernetes-compatible API on --listen, write DIR/admin.kubeconfig, and
 * run until SIGTERM or SIGINT; then end every watch, close the listener and
 * close the store (every queued write completes first).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/api.h"
#include "cmd/cmd.h"
#include "store/store.h"

static const char serve_usage[] =
    "usage: signalbox serve [--data-dir DIR] [--listen HOST:PORT]\n"
    "                       [--request-timeout S]\n"
    "                       [--history-revisions N] [--history-seconds S]\n"
    "  --data-dir DIR           where the database lives "
    "(default ./signalbox-data)\n"
    "  --listen HOST:PORT       where the API listens "
    "(default 127.0.0.1:6443)\n"
    "  --request-timeout S      a client must send its request within S "
    "seconds (default 60)\n"
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

/* Split HOST:PORT ([v6]:PORT too) into host (static buffer) and port. */
static int parse_listen(const char *s, char *host, size_t hlen, int *port)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long p;

	if (!colon || colon == s)
		goto bad;
	p = strtol(colon + 1, &end, 10);
	if (*end || p < 0 || p > 65535 || colon[1] == '\0')
		goto bad;
	if (s[0] == '[' && colon[-1] == ']')
		snprintf(host, hlen, "%.*s", (int)(colon - s - 2), s + 1);
	else
		snprintf(host, hlen, "%.*s", (int)(colon - s), s);
	*port = (int)p;
	return 0;
bad:
	fprintf(stderr,
		"signalbox serve: --listen wants HOST:PORT (for example "
		"127.0.0.1:6443), not '%s'\n",
		s);
	return -1;
}

/* DIR/admin.kubeconfig, mode 0600, written whole or not at all. */
static int write_kubeconfig(const char *dir, const char *host, int port)
{
	char path[4096], tmp[4200];
	FILE *f;
	int fd;

	snprintf(path, sizeof path, "%s/admin.kubeconfig", dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		fprintf(stderr, "signalbox serve: cannot write %s: %s\n", tmp,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fprintf(f,
		"apiVersion: v1\n"
		"kind: Config\n"
		"clusters:\n"
		"- name: signalbox\n"
		"  cluster:\n"
		"    server: http://%s%s%s:%d\n"
		"contexts:\n"
		"- name: signalbox\n"
		"  context:\n"
		"    cluster: signalbox\n"
		"    user: admin\n"
		"    namespace: default\n"
		"current-context: signalbox\n"
		"users:\n"
		"- name: admin\n"
		"  user: {}\n",
		strchr(host, ':') ? "[" : "", host,
		strchr(host, ':') ? "]" : "", port);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0 ||
	    rename(tmp, path) != 0) {
		fprintf(stderr, "signalbox serve: cannot write %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	fprintf(stderr, "signalbox serve: %s, stopping\n", strsignal(sig));
	api_stop(arg);
}

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"data-dir", required_argument, NULL, 'd'},
	    {"listen", required_argument, NULL, 'l'},
	    {"request-timeout", required_argument, NULL, 't'},
	    {"history-revisions", required_argument, NULL, 'r'},
	    {"history-seconds", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	store_options o;
	api_options ao;
	api_server *api = NULL;
	char err[512] = "", host[256] = "127.0.0.1";
	struct event *sigterm, *sigint;
	struct timespec t0, t1;
	sigset_t set;
	store *s;
	int c, rc, port = 6443;

	store_options_init(&o);
	api_options_init(&ao);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			o.data_dir = optarg;
			break;
		case 'l':
			if (parse_listen(optarg, host, sizeof host, &port))
				return 2;
			break;
		case 't': {
			int64_t secs;

			if (parse_count("--request-timeout", optarg, &secs) ||
			    secs == 0 || secs > 3600) {
				fprintf(stderr,
					"signalbox serve: "
					"--request-timeout wants 1..3600 "
					"seconds\n");
				return 2;
			}
			ao.read_timeout = (int)secs;
			break;
		}
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

	/* Every watch holds a connection: allow as many as we may. */
	{
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		    rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}

	/* The store's threads start with SIGTERM and SIGINT blocked; this
	 * thread takes them through the event loop. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = store_open(&o, &s, err, sizeof err);
	if (rc) {
		fprintf(stderr, "signalbox serve: cannot open the store: %s\n",
			*err ? err : store_strerror(rc));
		return 1;
	}
	ao.listen_host = host;
	ao.listen_port = port;
	if (api_new(s, &ao, &api, err, sizeof err) != 0) {
		fprintf(stderr, "signalbox serve: %s\n", err);
		store_close(s);
		return 1;
	}
	port = api_port(api);
	if (write_kubeconfig(o.data_dir, host, port) != 0) {
		api_free(api);
		store_close(s);
		return 1;
	}
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	sigterm = evsignal_new(api_base(api), SIGTERM, on_signal, api);
	sigint = evsignal_new(api_base(api), SIGINT, on_signal, api);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr,
		"signalbox serve: ready on http://%s:%d in %.0f ms (store %s at "
		"revision %lld); use it with: KUBECONFIG=%s/admin.kubeconfig "
		"kubectl get crd\n",
		host, port,
		(double)(t1.tv_sec - t0.tv_sec) * 1e3 +
			(double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
		o.data_dir, (long long)store_revision(s), o.data_dir);
	api_run(api);
	event_free(sigterm);
	event_free(sigint);
	api_free(api);
	store_close(s);
	fprintf(stderr, "signalbox serve: stopped\n");
	return 0;
}
