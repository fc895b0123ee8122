/*
 * netctl.h -- the interface's address, link state and routes, and IPv4
 * forwarding (privileged half only), with `ip` and /proc/sys.
 *
 * The routes the agent owns are those on its interface with protocol
 * "static"; those it reads back, and it adds and removes only the
 * difference to the map's, so a restarted agent cleans up after itself
 * without touching anything else. The interface gets exactly one IPv4
 * address, the map's with the network's prefix length. Forwarding is
 * turned on when the map makes this peer a router, and left as it is
 * otherwise (something else may need it).
 */
#ifndef SIGNALBOX_AGENT_NETCTL_H
#define SIGNALBOX_AGENT_NETCTL_H

#include <stddef.h>

#include "agent/dpconf.h"

/* Prototypes */

/* Bring ifname up and make its address, routes and forwarding those of c.
 * *nchanges (may be NULL) counts what was changed. 0 or a negative errno
 * with the failing command's message in err. */
int netctl_apply(const char *ifname, const dpc *c, size_t *nchanges, char *err,
		 size_t errlen);

/* Parse `ip -4 -o addr show dev IF` into prefixes (address with its
 * length, host bits kept in ip); NEW array. Pure, for tests. */
int netctl_parse_addrs(const char *text, addr_cidr **out, size_t *n);
/* Parse `ip -4 -o route show dev IF proto static`: the destinations. */
int netctl_parse_routes(const char *text, addr_cidr **out, size_t *n);

#endif
