/*
 * priv.h -- the privileged half of the agent (agent.h has the design).
 *
 * priv_run prepares the state directory and the key, takes the WireGuard
 * interface, forks the network-facing half (which drops its privileges
 * and runs agent_net_run) and then serves its requests (ipc.h) one at a
 * time until SIGTERM/SIGINT or the child's end:
 *
 *   CONFIG   decoded and checked (dpc_decode), then enforced: the nft
 *            table (only when its text changed), the WireGuard peers (a
 *            diff against the device), the address and routes
 *   STATUS   the device's listen port and last handshakes
 *   CRED     checked and stored; MAP stored as given
 *   REVOKED  the credential is moved aside
 *
 * A child that dies otherwise is started again, with backoff; the data
 * plane stays as it was meanwhile. On SIGTERM the data plane stays, unless
 * down_on_exit: then the table and interface go, and wireguard-go is
 * stopped by its PID.
 */
#ifndef SIGNALBOX_AGENT_PRIV_H
#define SIGNALBOX_AGENT_PRIV_H

#include "agent/agent.h"

/* Prototypes */

/* The whole agent; returns the process exit status. */
int priv_run(agent_opts *o);

#endif
