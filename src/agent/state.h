/*
 * state.h -- the agent's state directory (privileged half only).
 *
 *   private.key     the WireGuard private key, base64 (as `wg genkey`
 *                   writes it), made here with OpenSSL's X25519; 0600;
 *                   never sent anywhere: the network-facing half gets
 *                   only the public key
 *   credential.json the enrolment answer: peer, namespace, address,
 *                   cidr, token, lease, leaseDurationSeconds; 0600
 *   map.json        the last network map as a SNAPSHOT frame, with its
 *                   serial; opaque here (the network-facing half wrote
 *                   and reads it). The serial lives with the map it
 *                   belongs to: a serial without its map cannot resume.
 *   wireguard-go.pid, wireguard-go.log (wgctl.h)
 *
 * Every file is written to a temporary name, synced and renamed over
 * the old one, mode 0600, so a crash leaves the old or the new file,
 * never a torn one. The directory is made 0700 when missing.
 *
 * The credential crosses the socketpair as text, "key value" a line, in
 * the order of the struct; state_cred_decode checks every field.
 * Errors: 0 or a negative errno, with a message in err.
 */
#ifndef SIGNALBOX_AGENT_STATE_H
#define SIGNALBOX_AGENT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/addr.h"

#define STATE_TOKEN_MAX 4096

typedef struct state_cred {
	char peer[64], ns[64];
	char address[16];	     /* dotted IPv4 */
	char cidr[ADDR_CIDR_MAX];    /* the network */
	char token[STATE_TOKEN_MAX]; /* the bearer token */
	char lease[ADDR_NAME_MAX + 1];
	int lease_seconds; /* 1..86400 */
} state_cred;

/* Prototypes */

/* Make dir (0700) if missing; refuse one that others can write. */
int state_dir_prepare(const char *dir, char *err, size_t errlen);

/* Load private.key, or make and store a new one when there is none.
 * pub gets the public key. *created says which. */
int state_key_load(const char *dir, uint8_t priv[ADDR_KEY_LEN],
		   uint8_t pub[ADDR_KEY_LEN], bool *created, char *err,
		   size_t errlen);
/* The X25519 public key of priv. */
int state_key_public(const uint8_t priv[ADDR_KEY_LEN],
		     uint8_t pub[ADDR_KEY_LEN]);

/* Write len bytes to dir/name atomically, mode 0600. */
int state_write(const char *dir, const char *name, const void *buf, size_t len,
		char *err, size_t errlen);
/* Read dir/name (at most max bytes): *buf NEW, NUL-terminated. -ENOENT
 * when it does not exist. */
int state_read(const char *dir, const char *name, size_t max, char **buf,
	       size_t *len);

/* The credential: as text for the socketpair, checked back; and as
 * credential.json. state_cred_load gives -ENOENT when there is none. */
char *state_cred_encode(const state_cred *c);
int state_cred_decode(const char *buf, size_t len, state_cred *c, char *err,
		      size_t errlen);
int state_cred_save(const char *dir, const state_cred *c, char *err,
		    size_t errlen);
int state_cred_load(const char *dir, state_cred *c, char *err, size_t errlen);
/* Move credential.json aside (credential.json.revoked) and drop map.json:
 * the next start enrols again. */
int state_cred_revoke(const char *dir);

#endif
