/*
 * wgctl.h -- the WireGuard device of the agent (privileged half only).
 *
 * Two backends behind one interface:
 *   - userspace: wireguard-go, started here as `wireguard-go -f IFACE` in
 *     a session of its own (its PID in STATE_DIR/wireguard-go.pid), and
 *     driven over its UAPI socket /var/run/wireguard/IFACE.sock with the
 *     "get=1" / "set=1" protocol (keys in hex);
 *   - kernel: the wireguard module, made with `ip link add IFACE type
 *     wireguard` and driven with `wg set` / `wg show IFACE dump`.
 * An interface or socket that already exists is reused, so a restarted
 * agent picks up its data plane where it was.
 *
 * Reconciling is a diff: wgctl_diff compares the device as read with the
 * desired peers and yields only the changes (peers to add or remove;
 * for a peer that stays, its allowed IPs when they differ as a set, its
 * endpoint when the current one is not among the desired), so a peer that
 * did not change keeps its session. The diff is pure (no I/O) and has a
 * renderer for each backend: wgctl_uapi_text and wgctl_wg_argv.
 *
 * Errors are negative errno values with a message in err.
 */
#ifndef SIGNALBOX_AGENT_WGCTL_H
#define SIGNALBOX_AGENT_WGCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/addr.h"
#include "agent/dpconf.h"

#define WGCTL_SOCKET_DIR "/var/run/wireguard"
#define WGCTL_KEEPALIVE	 25

typedef enum wgctl_mode {
	WGCTL_AUTO = 0,
	WGCTL_KERNEL,
	WGCTL_USERSPACE,
} wgctl_mode;

/* A peer as the device has it. */
typedef struct wgctl_peer {
	uint8_t key[ADDR_KEY_LEN];
	bool has_endpoint;
	addr_endpoint endpoint;
	dpc_cidrs allowed;	/* sorted */
	int64_t last_handshake; /* seconds since the epoch; 0: never */
	uint16_t keepalive;
} wgctl_peer;

/* The device as read. */
typedef struct wgctl_dev {
	bool has_private_key;
	uint8_t private_key[ADDR_KEY_LEN];
	uint16_t listen_port;
	wgctl_peer *peers; /* sorted by key */
	size_t npeers;
} wgctl_dev;

/* One change of the diff. Pointers are borrowed from the desired dpc. */
typedef struct wgctl_op {
	uint8_t key[ADDR_KEY_LEN];
	bool remove;		       /* remove the peer; nothing else */
	bool add;		       /* a new peer (else update only) */
	const addr_endpoint *endpoint; /* set it; NULL: leave */
	const dpc_cidrs *allowed;      /* replace with these; NULL: leave */
} wgctl_op;

typedef struct wgctl_diff {
	bool set_private_key;
	uint8_t private_key[ADDR_KEY_LEN];
	uint16_t listen_port; /* 0: leave */
	wgctl_op *ops;
	size_t nops;
} wgctl_diff;

typedef struct wgctl wgctl;

/* Prototypes */

/*
 * Take the interface ifname: reuse it when it exists, else make it (mode
 * AUTO: the kernel module when `ip link add` works, else wireguard-go).
 * The private key and listen port (0: let the device choose) are set.
 * state_dir holds wireguard-go.pid and wireguard-go.log. *out is NEW;
 * wgctl_close frees it and leaves the device alone.
 */
int wgctl_open(const char *ifname, wgctl_mode mode, const char *state_dir,
	       const uint8_t private_key[ADDR_KEY_LEN], uint16_t listen_port,
	       wgctl **out, char *err, size_t errlen);
void wgctl_close(wgctl *w);
/* The backend in use (KERNEL or USERSPACE). */
wgctl_mode wgctl_backend(const wgctl *w);

/* Read the device into *dev (NEW contents; wgctl_dev_free). */
int wgctl_get(wgctl *w, wgctl_dev *dev, char *err, size_t errlen);
void wgctl_dev_free(wgctl_dev *dev);

/* Make the device's peers those of want (and the key and port): read,
 * diff, write the changes. *nchanges (may be NULL) gets the number of
 * peer changes. If wireguard-go went away, it is started again. */
int wgctl_apply(wgctl *w, const dpc *want, size_t *nchanges, char *err,
		size_t errlen);

/* Remove the interface; stop wireguard-go by its recorded PID. */
int wgctl_down(wgctl *w, char *err, size_t errlen);

/* ---- pure parts, for tests ------------------------------------------- */

/* Parse a UAPI "get=1" answer (up to and without the final empty line). */
int wgctl_uapi_parse(const char *text, wgctl_dev *dev);
/* Parse `wg show IFACE dump`. */
int wgctl_dump_parse(const char *text, wgctl_dev *dev);

/* The changes that take cur to want with the given key and listen port
 * (0: leave). d is NEW (wgctl_diff_free). */
int wgctl_make_diff(const wgctl_dev *cur, const uint8_t key[ADDR_KEY_LEN],
		    uint16_t listen_port, const dpc *want, wgctl_diff *d);
void wgctl_diff_free(wgctl_diff *d);
/* Whether the diff changes anything. */
bool wgctl_diff_empty(const wgctl_diff *d);

/* The UAPI "set=1" request for d, ending in the empty line; NEW string. */
char *wgctl_uapi_text(const wgctl_diff *d);
/* The argv of `wg set IFACE ...` for d (the private key, if any, read from
 * /dev/stdin); NEW NULL-terminated vector, free with wgctl_argv_free. */
char **wgctl_wg_argv(const char *ifname, const wgctl_diff *d);
void wgctl_argv_free(char **argv);

#endif
