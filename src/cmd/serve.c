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

#include <sys/stat.h>

#include "api/api.h"
#include "cmd/cmd.h"
#include "security/pki.h"
#include "store/store.h"

static const char serve_usage[] =
    "usage: signalbox serve [--data-dir DIR] [--listen HOST:PORT] [OPTIONS]\n"
    "  --data-dir DIR           where the database lives (default "
    "./signalbox-data)\n"
    "  --listen HOST:PORT       where the API listens (default "
    "127.0.0.1:6443)\n"
    "  --request-timeout S      a client must send its request within S "
    "seconds (default 60)\n"
    "  --history-revisions N    keep at most N revisions of history "
    "(default 10000, 0: no limit)\n"
    "  --history-seconds S      keep no history older than S seconds "
    "(default 300, 0: no limit)\n"
    "  --tls-cert-file F, --tls-private-key-file F\n"
    "                           serve with your own certificate (default: "
    "DIR/pki, made on first start)\n"
    "  --tls-san NAME           another name or IP for the serving "
    "certificate (repeatable)\n"
    "  --insecure-http          plain HTTP where everyone is an "
    "administrator: local development only\n"
    "  --token-auth-file F      static bearer tokens (kube-apiserver CSV "
    "format)\n"
    "  --audit-log-path F       the audit log (default DIR/audit/audit.log; "
    "- for none)\n"
    "  --audit-policy-file F    an audit.k8s.io/v1 Policy, written as JSON\n"
    "  --audit-log-maxsize MB, --audit-log-maxbackup N\n"
    "                           rotate the audit log (default 100 MB, 10 "
    "files)\n"
    "  --store URL              etcd://h1:2379,h2:2379 (or etcds://): keep "
    "the state in etcd,\n"
    "                           shared by several replicas (default: SQLite "
    "in DIR)\n"
    "  --etcd-cafile F, --etcd-certfile F, --etcd-keyfile F\n"
    "                           TLS to etcd (etcds://)\n"
    "  --peer-lease-seconds S   a mesh peer is offline S seconds after its "
    "last renewal (default 15)\n"
    "  --ephemeral-peer-timeout S\n"
    "                           delete ephemeral peers offline this long "
    "(default 600)\n";

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

#define MAX_SANS 32

/* The address a local client dials for host. */
static const char *client_host(const char *host)
{
	if (!strcmp(host, "0.0.0.0") || !*host)
		return "127.0.0.1";
	if (!strcmp(host, "::"))
		return "::1";
	return host;
}

/* DIR/pki: the cluster CA, serving and admin certificates, made on first
 * start (pki_ensure), reused after. Plain HTTP is allowed only when asked
 * for, and then loudly. */
static int setup_security(const store_options *o, api_options *ao,
			  const char *host, const char **sans, size_t nsans,
			  char *pki, size_t len)
{
	char err[512];
	bool reissued = false;

	snprintf(pki, len, "%s/pki", o->data_dir);
	if (ao->insecure) {
		fprintf(stderr,
			"signalbox serve: WARNING: --insecure-http: serving "
			"plain HTTP with no authentication or encryption. "
			"Anyone who can reach %s may do anything. For local "
			"development only.\n",
			host);
		return 0;
	}
	if ((ao->tls_cert_file == NULL) != (ao->tls_key_file == NULL)) {
		fprintf(stderr, "signalbox serve: --tls-cert-file and "
				"--tls-private-key-file go together\n");
		return -1;
	}
	sans[nsans++] = host;
	if (mkdir(pki, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "signalbox serve: cannot create %s: %s\n", pki,
			strerror(errno));
		return -1;
	}
	if (pki_ensure(pki, sans, nsans, &reissued, err, sizeof err) != 0) {
		fprintf(stderr, "signalbox serve: %s\n", err);
		return -1;
	}
	if (reissued)
		fprintf(stderr,
			"signalbox serve: reissued %s/server.crt for "
			"new names\n",
			pki);
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
	    {"tls-cert-file", required_argument, NULL, 'C'},
	    {"tls-private-key-file", required_argument, NULL, 'K'},
	    {"tls-san", required_argument, NULL, 'S'},
	    {"insecure-http", no_argument, NULL, 'I'},
	    {"token-auth-file", required_argument, NULL, 'T'},
	    {"audit-log-path", required_argument, NULL, 'A'},
	    {"audit-policy-file", required_argument, NULL, 'P'},
	    {"audit-log-maxsize", required_argument, NULL, 'M'},
	    {"audit-log-maxbackup", required_argument, NULL, 'B'},
	    {"history-revisions", required_argument, NULL, 'r'},
	    {"history-seconds", required_argument, NULL, 's'},
	    {"peer-lease-seconds", required_argument, NULL, 'L'},
	    {"store", required_argument, NULL, 'X'},
	    {"etcd-cafile", required_argument, NULL, 'Y'},
	    {"etcd-certfile", required_argument, NULL, 'Z'},
	    {"etcd-keyfile", required_argument, NULL, 'W'},
	    {"ephemeral-peer-timeout", required_argument, NULL, 'E'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	store_options o;
	api_options ao;
	api_server *api = NULL;
	char err[512] = "", host[256] = "127.0.0.1";
	struct event *sigterm, *sigint;
	struct timespec t0, t1;
	const char *sans[MAX_SANS], *audit_path = NULL;
	size_t nsans = 0;
	char pki[4096], cert[4200], key[4200], ca[4200], admin_cert[4200],
	    admin_key[4200], url[600], audit_default[4200], kcpath[4200];
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
		case 'C':
			ao.tls_cert_file = optarg;
			break;
		case 'K':
			ao.tls_key_file = optarg;
			break;
		case 'S':
			if (nsans < MAX_SANS)
				sans[nsans++] = optarg;
			break;
		case 'I':
			ao.insecure = true;
			break;
		case 'T':
			ao.token_auth_file = optarg;
			break;
		case 'A':
			audit_path = optarg;
			break;
		case 'P':
			ao.audit_policy_file = optarg;
			break;
		case 'M':
		case 'B': {
			int64_t v;

			if (parse_count(c == 'M' ? "--audit-log-maxsize"
						 : "--audit-log-maxbackup",
					optarg, &v))
				return 2;
			if (c == 'M')
				ao.audit_max_bytes = (size_t)v << 20;
			else
				ao.audit_max_backups = (int)v;
			break;
		}
		case 'X':
			if (store_parse_url(optarg, &o, err, sizeof err)) {
				fprintf(stderr,
					"signalbox serve: --store: %s\n", err);
				return 2;
			}
			ao.elect = true;
			ao.consistent_reads = true;
			break;
		case 'Y':
			o.etcd_ca_file = optarg;
			break;
		case 'Z':
			o.etcd_cert_file = optarg;
			break;
		case 'W':
			o.etcd_key_file = optarg;
			break;
		case 'L':
		case 'E': {
			int64_t v;

			if (parse_count(c == 'L' ? "--peer-lease-seconds"
						 : "--ephemeral-peer-timeout",
					optarg, &v) ||
			    v < 1 || v > 86400 * 30) {
				fprintf(stderr,
					"signalbox serve: --%s wants 1 "
					"to 2592000 seconds\n",
					c == 'L' ? "peer-lease-seconds"
						 : "ephemeral-peer-timeout");
				return 2;
			}
			if (c == 'L')
				ao.mesh_lease_seconds = (int)v;
			else
				ao.mesh_ephemeral_seconds = (int)v;
			break;
		}
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
	if (o.etcd_endpoints && mkdir(o.data_dir, 0700) != 0 &&
	    errno != EEXIST) {
		fprintf(stderr, "signalbox serve: cannot create %s: %s\n",
			o.data_dir, strerror(errno));
		return 1;
	}
	rc = store_open(&o, &s, err, sizeof err);
	if (rc) {
		fprintf(stderr, "signalbox serve: cannot open the store: %s\n",
			*err ? err : store_strerror(rc));
		return 1;
	}
	ao.listen_host = host;
	ao.listen_port = port;
	if (setup_security(&o, &ao, host, sans, nsans, pki, sizeof pki) != 0) {
		store_close(s);
		return 1;
	}
	snprintf(ca, sizeof ca, "%s/ca.crt", pki);
	snprintf(cert, sizeof cert, "%s/server.crt", pki);
	snprintf(key, sizeof key, "%s/server.key", pki);
	snprintf(admin_cert, sizeof admin_cert, "%s/admin.crt", pki);
	snprintf(admin_key, sizeof admin_key, "%s/admin.key", pki);
	if (!ao.tls_cert_file) {
		ao.tls_cert_file = cert;
		ao.tls_key_file = key;
	}
	ao.client_ca_file = ca;
	snprintf(audit_default, sizeof audit_default, "%s/audit", o.data_dir);
	if (!audit_path && mkdir(audit_default, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "signalbox serve: cannot create %s: %s\n",
			audit_default, strerror(errno));
		store_close(s);
		return 1;
	}
	snprintf(audit_default, sizeof audit_default, "%s/audit/audit.log",
		 o.data_dir);
	ao.audit_log_path = audit_path
				? (strcmp(audit_path, "-") ? audit_path : NULL)
				: audit_default;
	if (api_new(s, &ao, &api, err, sizeof err) != 0) {
		fprintf(stderr, "signalbox serve: %s\n", err);
		store_close(s);
		return 1;
	}
	port = api_port(api);
	snprintf(url, sizeof url, "%s://%s%s%s:%d",
		 ao.insecure ? "http" : "https",
		 strchr(client_host(host), ':') ? "[" : "", client_host(host),
		 strchr(client_host(host), ':') ? "]" : "", port);
	snprintf(kcpath, sizeof kcpath, "%s/admin.kubeconfig", o.data_dir);
	if (kubeconfig_write(kcpath, url,
			     ao.insecure		? NULL
			     : ao.tls_cert_file == cert ? ca
							: ao.tls_cert_file,
			     ao.insecure ? NULL : admin_cert,
			     ao.insecure ? NULL : admin_key) != 0) {
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
		"signalbox serve: ready on %s in %.0f ms (store %s at "
		"revision %lld); use it with: KUBECONFIG=%s/admin.kubeconfig "
		"kubectl get crd\n",
		url,
		(double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
		o.etcd_endpoints ? o.etcd_endpoints : o.data_dir,
		(long long)store_revision(s), o.data_dir);
	api_run(api);
	event_free(sigterm);
	event_free(sigint);
	api_free(api);
	store_close(s);
	fprintf(stderr, "signalbox serve: stopped\n");
	return 0;
}
