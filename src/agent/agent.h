/*
 * agent.h -- `signalbox agent`: the data plane of one machine.
 *
 * The agent runs as two processes, in the spirit of OpenBSD's privilege
 * separation:
 *
 *   priv (priv.h)  the parent, root. It holds the WireGuard private key
 *                  and the state directory, and it alone changes the
 *                  kernel: the WireGuard device (wgctl.h), the address and
 *                  routes (netctl.h), the nftables table (nftctl.h). It
 *                  parses nothing from the network: it takes small text
 *                  messages from its child (ipc.h) and checks every value
 *                  in them again (dpconf.h, state.h).
 *   net (this)     the child, which gives up root (to nobody, no new
 *                  privileges) before it reads a byte from the network.
 *                  It speaks HTTPS to the control plane with libcurl:
 *                  enrolment, the watch on its network map (parsed by
 *                  amap.h), lease renewals and status reports; it turns
 *                  the map into a data-plane configuration and asks the
 *                  parent to enforce it.
 *
 * A compromise of the parser gains an unprivileged process that can only
 * ask the parent for a configuration the parent would take from a valid
 * map anyway: no key, no file, no command line.
 */
#ifndef SIGNALBOX_AGENT_AGENT_H
#define SIGNALBOX_AGENT_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/wgctl.h"

#define AGENT_MAX_SERVERS 8

/* Exit statuses besides 0 and 1. */
#define AGENT_EXIT_USAGE   2 /* bad options, or enrolment refused */
#define AGENT_EXIT_REVOKED 3 /* the credential was revoked */

typedef struct agent_opts {
	const char *servers[AGENT_MAX_SERVERS]; /* https://host:port */
	size_t nservers;
	const char *ca_file, *setup_key, *ifname, *state_dir, *endpoint;
	const char *hostname; /* for enrolment; default gethostname */
	uint16_t listen_port; /* 0: the device chooses */
	wgctl_mode wg_mode;
	bool down_on_exit;
	int log_level;
	char *ca_pem; /* the CA file's contents, read before the split */
} agent_opts;

/* Prototypes */

/*
 * The network-facing half: runs until the credential is revoked (returns
 * AGENT_EXIT_REVOKED), enrolment is refused (AGENT_EXIT_USAGE) or the
 * parent goes away (1). fd is its end of the socketpair. Called in the
 * child after it dropped its privileges.
 */
int agent_net_run(const agent_opts *o, int fd);

#endif
