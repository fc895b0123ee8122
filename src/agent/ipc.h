/*
 * ipc.h -- the messages between the agent's two halves, over a
 * socketpair (SOCK_STREAM, close-on-exec).
 *
 * A message is a header of two native-endian uint32 (type, body length)
 * and the body. Bodies are text, checked by the receiver: the privileged
 * half reads CONFIG with dpc_decode and CRED with state_cred_decode; a
 * MAP body is stored and given back, never parsed by the privileged half.
 *
 *   priv -> net, at start:  HELLO (public-key, listen-port), CRED (the
 *                           stored credential, empty when none), MAP (the
 *                           stored map frame, empty when none)
 *   net -> priv, requests:  CRED (store a new credential), MAP (store the
 *                           map), CONFIG (enforce it), STATUS (read the
 *                           device), REVOKED (the credential is dead)
 *   priv -> net, answers:   OK (STATUS: its body is the status), or ERR
 *                           with a message
 *
 * Every request gets exactly one answer, in order.
 */
#ifndef SIGNALBOX_AGENT_IPC_H
#define SIGNALBOX_AGENT_IPC_H

#include <stddef.h>
#include <stdint.h>

#define IPC_MAX (40u << 20) /* the largest body */

enum ipc_type {
	IPC_HELLO = 1,
	IPC_CRED,
	IPC_MAP,
	IPC_CONFIG,
	IPC_STATUS,
	IPC_REVOKED,
	IPC_OK,
	IPC_ERR,
};

/* Prototypes */

/* Send one message. 0 or a negative errno (-EPIPE: the other half is
 * gone). */
int ipc_send(int fd, uint32_t type, const void *body, size_t len);

/* Receive one message: *body is NEW (NUL-terminated after len bytes;
 * free it). A body over IPC_MAX is -EMSGSIZE; end of file is -EPIPE. */
int ipc_recv(int fd, uint32_t *type, char **body, size_t *len);

/* Send a request and wait for its answer (OK or ERR); *ans (may be NULL)
 * gets the answer's body, NEW. Returns 0 for OK, -EREMOTEIO for ERR,
 * or the error of sending or receiving. */
int ipc_call(int fd, uint32_t type, const void *body, size_t len, char **ans);

#endif
