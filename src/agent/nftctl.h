/*
 * nftctl.h -- the agent's nftables table (privileged half only).
 *
 * The agent owns one table, `table inet signalbox_IFACE`, and never
 * touches another. It holds two base chains, both accepting anything not
 * from the WireGuard interface (other tables and their chains decide
 * that), and for packets from it:
 *
 *   input    established/related flows; then exactly the map's rules, each
 *            source list an nft set; then drop.
 *   forward  likewise, for the rules with destinations (this peer routes
 *            for others); then drop.
 *
 * A rule with destinations is also put in the input chain (matching its
 * destinations), for a routed prefix that is an address of this machine.
 *
 * The whole table is replaced in one `nft -f -` transaction (add, delete,
 * define), so there is no moment without a filter, and conntrack entries
 * of established flows survive it.
 */
#ifndef SIGNALBOX_AGENT_NFTCTL_H
#define SIGNALBOX_AGENT_NFTCTL_H

#include <stddef.h>

#include "agent/dpconf.h"

/* Prototypes */

/* The table's name for ifname ("signalbox_" and the name with every
 * character that is not alphanumeric made '_'), into out (≥ 32 bytes). */
void nftctl_table_name(const char *ifname, char *out, size_t n);

/* The script that replaces the table with the rules of c: a NEW string,
 * NULL on ENOMEM. Pure; ifname was checked (addr_ifname_ok). */
char *nftctl_render(const char *ifname, const dpc *c);

/* Run script through `nft -f -`. 0, or a negative errno with nft's
 * message in err. */
int nftctl_apply(const char *script, char *err, size_t errlen);

/* Delete the table if it exists. */
int nftctl_delete(const char *ifname, char *err, size_t errlen);

#endif
