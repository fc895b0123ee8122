/*
 * api.h -- the Kubernetes-compatible API server.
 *
 * One libevent event loop serves every request: discovery, OpenAPI, the
 * resources of every registered type, watches, health and metrics. Reads
 * come from the watch cache (storage/cache.h); writes are compare-and-swap
 * transactions on the store, completed asynchronously: the store's thread
 * hands each acknowledgement back to the loop, which answers the client.
 */
#ifndef SIGNALBOX_API_H
#define SIGNALBOX_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct api_options {
	const char *listen_host; /* default 127.0.0.1 */
	int listen_port;	 /* default 6443; 0 picks a free port */
	size_t max_body;	 /* bytes; default 3 MiB (413 beyond) */
	int max_inflight;	 /* non-watch requests; default 400 (429) */
	int read_timeout;     /* seconds for a request to arrive; default 60 */
	int bookmark_seconds; /* watch heartbeat period; default 30 */
	size_t cache_events;  /* watch cache ring; default 10000 */
	/* TLS: the serving certificate and key, and the CA that signs
	 * client certificates (NULL: no client certificate login). With
	 * insecure set, plain HTTP instead (local development only). */
	const char *tls_cert_file;
	const char *tls_key_file;
	const char *client_ca_file;
	bool insecure;
	const char *token_auth_file; /* kube-apiserver static token CSV */
	const char *audit_log_path;  /* NULL: no audit log */
	const char *audit_policy_file;
	size_t audit_max_bytes; /* rotate past this; default 100 MiB */
	int audit_max_backups;	/* rotated files kept; default 10 */
	/* The mesh (docs/MESH.md). */
	int mesh_lease_seconds;	    /* a peer's lease; default 15 */
	int mesh_ephemeral_seconds; /* ephemeral peers offline; default 600 */
	bool mesh_bootstrap; /* default Network + allow-all; default true */
	/* Elect the replica that runs the controllers (several servers on
	 * one etcd); off: this server always runs them. */
	bool elect;
	/* Serve a GET or LIST only once the cache has caught up with the
	 * store's current revision (replicas on etcd), as kube-apiserver's
	 * consistent reads from its watch cache. */
	bool consistent_reads;
} api_options;

void api_options_init(api_options *o);

typedef struct api_server api_server;

/* Create the server on store s (borrowed; must outlive the server): load
 * the cache, bind the listener. *out owns the server. The actual port is in
 * api_port() (when listen_port was 0). Errors: -1 with a message. */
int api_new(store *s, const api_options *o, api_server **out, char *err,
	    size_t errlen);
int api_port(const api_server *a);

/* Run the loop until api_stop() (safe from a signal handler's thread via
 * the loop, or from another thread). Returns 0. */
int api_run(api_server *a);
void api_stop(api_server *a);

/* The event loop, to add signal events to it. */
struct event_base *api_base(api_server *a);

/* Close every connection and free. */
void api_free(api_server *a);

#endif
