/*
 * agent.c -- `signalbox agent`: options, then the two halves of the agent
 * (src/agent/agent.h has the design: a privileged parent that alone
 * changes the kernel, an unprivileged child that alone talks to the
 * network).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/addr.h"
#include "agent/agent.h"
#include "agent/alog.h"
#include "agent/priv.h"
#include "agent/state.h"
#include "cmd/cmd.h"

static const char agent_usage[] =
    "usage: signalbox agent --server URL[,URL...] --ca-file FILE "
    "--interface NAME\n"
    "                       --state-dir DIR [--setup-key KEY] [OPTIONS]\n"
    "  --server URL[,URL]   the control plane (https://HOST:PORT); several: "
    "fail over\n"
    "  --ca-file FILE       the cluster CA that signs the server's "
    "certificate\n"
    "  --setup-key KEY      enrol with this key (only the first time)\n"
    "  --interface NAME     the WireGuard interface to own\n"
    "  --state-dir DIR      key, credential and last map (made 0700)\n"
    "  --hostname NAME      the name to enrol with (default: the host "
    "name)\n"
    "  --listen-port N      WireGuard's UDP port (default: any free)\n"
    "  --endpoint HOST:PORT the endpoint to advertise (default: this "
    "machine's\n"
    "                       addresses with the listen port)\n"
    "  --wireguard auto|kernel|userspace  the backend (default auto)\n"
    "  --down-on-exit       on SIGTERM remove the table and interface "
    "(default: leave\n"
    "                       the data plane as it is)\n"
    "  --log-level error|warn|info|debug (default info)\n"
    "Exit status: 0 stopped by a signal, 1 failure, 2 bad usage or "
    "enrolment refused,\n"
    "3 the credential was revoked.\n";

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f)
		return NULL;
	do {
		if (len + 4096 + 1 > cap) {
			char *b = realloc(buf, cap = cap ? cap * 2 : 8192);

			if (!b || cap > (1u << 20)) {
				free(b ? b : buf);
				fclose(f);
				return NULL;
			}
			buf = b;
		}
		n = fread(buf + len, 1, 4096, f);
		len += n;
	} while (n);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

static int split_servers(agent_opts *o, char *list)
{
	char *save = NULL, *s;

	for (s = strtok_r(list, ",", &save); s;
	     s = strtok_r(NULL, ",", &save)) {
		if (o->nservers == AGENT_MAX_SERVERS ||
		    strncmp(s, "https://", 8) || strlen(s) > 512)
			return -EINVAL;
		/* no trailing slash: paths are appended */
		if (s[strlen(s) - 1] == '/')
			s[strlen(s) - 1] = '\0';
		o->servers[o->nservers++] = s;
	}
	return o->nservers ? 0 : -EINVAL;
}

static int usage_error(const char *msg)
{
	fprintf(stderr, "signalbox agent: %s\n%s", msg, agent_usage);
	return AGENT_EXIT_USAGE;
}

int cmd_agent(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"server", required_argument, NULL, 's'},
	    {"ca-file", required_argument, NULL, 'c'},
	    {"setup-key", required_argument, NULL, 'k'},
	    {"interface", required_argument, NULL, 'i'},
	    {"state-dir", required_argument, NULL, 'd'},
	    {"hostname", required_argument, NULL, 'H'},
	    {"listen-port", required_argument, NULL, 'p'},
	    {"endpoint", required_argument, NULL, 'e'},
	    {"wireguard", required_argument, NULL, 'w'},
	    {"down-on-exit", no_argument, NULL, 'D'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	agent_opts o = {.log_level = ALOG_INFO};
	char *servers = NULL;
	addr_endpoint ep;
	int c, rc;
	long v;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			servers = optarg;
			break;
		case 'c':
			o.ca_file = optarg;
			break;
		case 'k':
			o.setup_key = optarg;
			break;
		case 'i':
			o.ifname = optarg;
			break;
		case 'd':
			o.state_dir = optarg;
			break;
		case 'H':
			o.hostname = optarg;
			break;
		case 'p':
			v = strtol(optarg, NULL, 10);
			if (v < 1 || v > 65535)
				return usage_error("--listen-port: 1-65535");
			o.listen_port = (uint16_t)v;
			break;
		case 'e':
			if (addr_endpoint_parse(optarg, &ep))
				return usage_error(
				    "--endpoint: want IP:PORT or [IPv6]:PORT");
			o.endpoint = optarg;
			break;
		case 'w':
			if (!strcmp(optarg, "auto"))
				o.wg_mode = WGCTL_AUTO;
			else if (!strcmp(optarg, "kernel"))
				o.wg_mode = WGCTL_KERNEL;
			else if (!strcmp(optarg, "userspace"))
				o.wg_mode = WGCTL_USERSPACE;
			else
				return usage_error(
				    "--wireguard: auto, kernel or userspace");
			break;
		case 'D':
			o.down_on_exit = true;
			break;
		case 'l':
			if ((o.log_level = alog_level_parse(optarg)) < 0)
				return usage_error(
				    "--log-level: error, warn, info or debug");
			break;
		case 'h':
			fputs(agent_usage, stdout);
			return 0;
		default:
			fputs(agent_usage, stderr);
			return AGENT_EXIT_USAGE;
		}
	}
	if (optind != argc)
		return usage_error("unexpected arguments");
	if (!servers || split_servers(&o, servers))
		return usage_error("--server: one or more https:// URLs, "
				   "comma-separated");
	if (!o.ca_file || !o.ifname || !o.state_dir)
		return usage_error(
		    "--ca-file, --interface and --state-dir are required");
	if (!addr_ifname_ok(o.ifname))
		return usage_error("--interface: 1-15 of A-Z a-z 0-9 _ . -");
	if (o.setup_key && (!*o.setup_key || strlen(o.setup_key) > 1024))
		return usage_error("--setup-key: empty or too long");
	o.ca_pem = read_file(o.ca_file);
	if (!o.ca_pem) {
		fprintf(stderr, "signalbox agent: --ca-file %s: %s\n",
			o.ca_file, strerror(errno ? errno : EINVAL));
		return 1;
	}
	if (geteuid() != 0)
		fprintf(stderr, "signalbox agent: not root: changing the "
				"network will likely fail\n");
	rc = priv_run(&o);
	free(o.ca_pem);
	return rc;
}
