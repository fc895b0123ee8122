/*
 * api_int.h -- what the API server's files share. Not for use outside
 * src/api/.
 *
 *   server.c     listener, routing, limits, metrics, async completions
 *   status.c     Status objects (errors) and JSON replies
 *   discovery.c  /version, /api, /apis, resource lists
 *   openapi.c    /openapi/v2 and /openapi/v3
 *   objects.c    create, get, list, update, patch, delete, deletecollection
 *   watch.c      watch streams
 *   table.c      as=Table output with printer columns
 *   crd.c        CRD lifecycle: registering types, conditions
 */
#ifndef SIGNALBOX_API_INT_H
#define SIGNALBOX_API_INT_H

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <sys/queue.h>
#include <sys/time.h>
#include <time.h>

#include "api/api.h"
#include "api/selector.h"
#include "registry/registry.h"
#include "storage/cache.h"

/* The verb of a request, for routing, metrics and (later) authorization. */
typedef enum api_verb {
	VERB_NONE,
	VERB_GET,
	VERB_LIST,
	VERB_WATCH,
	VERB_CREATE,
	VERB_UPDATE,
	VERB_PATCH,
	VERB_DELETE,
	VERB_DELETECOLLECTION,
	VERB_COUNT
} api_verb;

extern const char *const api_verb_names[VERB_COUNT];

typedef struct api_req api_req;

/* Who is asking (auth.c). groups ends with system:authenticated or
 * system:unauthenticated. */
typedef struct api_identity {
	char *user;
	char **groups;
	size_t ngroups;
	bool anonymous;
} api_identity;

/* A store transaction's completion, handed back to the loop. */
typedef void (*api_done_fn)(api_req *r, int err, store_txn_result *res);

struct api_req {
	api_server *srv;
	struct evhttp_request *ev;
	api_verb verb;
	char *path;		/* decoded path, no query */
	struct evkeyvalq query; /* decoded query parameters */
	struct timespec start;
	bool long_running; /* a watch: not counted in flight */
	/* The resource addressed, when it is one. */
	const reg_type *type;
	const reg_version *ver;
	char *group, *version, *plural, *ns, *name, *sub;
	/* Body, read on arrival (NULL if none). */
	char *body;
	size_t body_len;
	/* Write path state. */
	api_done_fn done;
	json_t *obj; /* the object being written (owned) */
	char *key;   /* its store key (owned), while a write is out */
	char *val;   /* its serialized value (owned), idem */
	json_t *aux; /* handler's scratch (owned) */
	int retries;
	bool generated;	   /* create: the name came from generateName */
	bool dry_run_body; /* DeleteOptions said dryRun: ["All"] */
	bool reply_scale;  /* a scale write: answer with the Scale */
	char *secret;	   /* a new SetupKey's secret, for the answer */
	int64_t wait_rev;  /* a consistent read waits for the cache to reach */
	bool waited;	   /* it did */
	/* Copied on arrival: the audit record is written after evhttp may
	 * have freed ev (a watch whose client went away). */
	enum evhttp_cmd_type method;
	char *uri;	       /* as sent, with the query */
	char *user_agent;      /* or NULL */
	char *peer;	       /* client address, or NULL */
	api_identity id;       /* set by api_authenticate */
	bool auth_failed;      /* 401: audited at ResponseStarted */
	const char *resp_body; /* the reply, during api_req_finish */
	size_t resp_len;
	bool allowed;		 /* the authorizer's decision */
	char *authz_reason;	 /* and its reason (owned) */
	struct timeval received; /* wall clock, for audit */
	char audit_id[37];
	int txn_err;		   /* set on the store thread */
	store_txn_result *txn_res; /* idem; freed after done runs */
	STAILQ_ENTRY(api_req) link;
};

STAILQ_HEAD(api_req_list, api_req);

/* Metrics: request counts and latency by verb, resource, code. */
typedef struct api_metric {
	char *verb;
	char *resource;
	int code;
	uint64_t count;
	double seconds;
	uint64_t buckets[12];
} api_metric;

struct api_server {
	api_options opt;
	store *st;
	cache *cache;
	registry *reg;
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *sock;
	int port;
	int wake_fd;	    /* eventfd written from store threads */
	struct event *wake; /* reads wake_fd on the loop */
	pthread_mutex_t done_mu;
	struct api_req_list done;    /* completed store requests */
	struct api_req_list waiting; /* reads waiting for the cache (loop) */
	int inflight;
	int watchers;
	api_metric *metrics;
	size_t nmetrics, metrics_cap;
	/* Cached documents, rebuilt when the registry generation moves. */
	uint64_t docs_gen;
	json_t *openapi_v2;
	json_t *openapi_v3_paths;
	struct api_auth *auth;	   /* auth.c */
	struct api_mesh *mesh;	   /* mesh.c */
	struct api_leader *leader; /* leader.c */
	SSL_CTX *ssl_ctx;	   /* NULL: plain HTTP (--insecure-http) */
	/* Open watch streams, to end them at shutdown. */
	LIST_HEAD(, watch_stream) watches;
	struct event *bookmark_timer;
	struct event *flush_timer;
};

/* ---- server.c ---- */
const char *api_query(const api_req *r, const char *name);
bool api_query_bool(const api_req *r, const char *name);
/* Send a reply and finish r (frees it). body is copied. */
void api_reply(api_req *r, int code, const char *content_type, const char *body,
	       size_t len);
/* Send a JSON value (stolen) with code, and finish r. */
void api_reply_json(api_req *r, int code, json_t *v);
/* Record metrics and free r (after a reply or at the end of a stream). */
void api_req_finish(api_req *r, int code);
/* Submit a store transaction; done runs on the loop once it is durable. */
void api_txn(api_req *r, const store_txn *t, api_done_fn done);
/* The key of an object: prefix + [ns/]name. Caller frees. */
char *api_key(const reg_type *t, const char *ns, const char *name);
/* RFC 3339 timestamp of now, UTC, seconds. */
void api_now(char buf[32]);

/* A random UUID (v4) in out. */
void api_uuid(char out[37]);
/* Store obj (borrowed) at key unless the key exists, synchronously: for
 * objects the server makes at start. 0 or a store error. */
int api_store_create(api_server *a, const char *key, json_t *obj);

/* A consistent read (opt.consistent_reads): true when r may be served
 * now; false when it was parked until the cache reaches the store's
 * current revision (then api_objects(r) runs again) or failed (503). */
bool api_read_ready(api_req *r);

/* ---- status.c ---- */
/* Send a Status failure: e.g. (404, "NotFound", message, details or NULL
 * (stolen)). */
void api_fail(api_req *r, int code, const char *reason, json_t *details,
	      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void api_fail_notfound(api_req *r);
void api_fail_invalid(api_req *r, const char *name, json_t *causes);
json_t *api_status(int code, const char *reason, const char *message,
		   json_t *details);
json_t *api_details(const api_req *r, const char *name);
/* "<plural>.<group>" or "<plural>" for the core group. */
void api_qualified(const reg_type *t, char *buf, size_t len);

/* ---- discovery.c ---- */
bool api_discovery(api_req *r);

/* ---- openapi.c ---- */
bool api_openapi(api_req *r);

/* ---- objects.c ---- */
/* r's verb from its method, name and ?watch. */
void api_set_verb(api_req *r);
/* Find r's type; sends 404 and returns false if there is none. */
bool api_classify(api_req *r);
void api_objects(api_req *r);
/* The request body as a JSON object (JSON or Kubernetes protobuf); sends
 * 400/415 and returns NULL on failure. */
json_t *api_parse_body(api_req *r, bool strict);
/* Bring an object into the form stored: apiVersion and kind of t/v,
 * metadata defaults (uid, creationTimestamp, generation, namespace),
 * schema defaulting and pruning, validation. Adds causes; returns their
 * count. unknown (may be NULL) collects pruned field paths. */
size_t api_prepare(api_req *r, json_t *obj, json_t *causes, json_t *unknown);

/* kube's generateName suffix: 5 random characters and a NUL. */
void api_name_suffix(char out[6]);

/* List and watch filters: labelSelector and fieldSelector. */
typedef struct api_filter {
	sel *labels;
	fsel *fields;
} api_filter;
/* Parse r's selectors; on error sends 400 and returns false. */
bool api_filter_parse(api_req *r, api_filter *f);
void api_filter_free(api_filter *f);
bool api_filter_match(const api_filter *f, const cache_obj *o);
/* Is o stored with this apiVersion (so its bytes serve as they are)? */
bool api_stored_as(const cache_obj *o, const char *api_version);
/* The apiVersion r asked for ("g/v" or "v1"). */
void api_version_of(const api_req *r, char *buf, size_t len);

/* ---- watch.c ---- */
void api_watch(api_req *r);
void api_watch_shutdown(api_server *a);
void api_watch_bookmarks(api_server *a);

/* ---- table.c ---- */
bool api_wants_table(const api_req *r);
json_t *api_table(api_req *r, cache_obj **objs, size_t n, const char *rv,
		  const char *cont, int64_t remaining);

/* ---- auth.c ---- */
int api_auth_start(api_server *a, char *err, size_t errlen);
void api_auth_free(api_server *a);
/* Make the audit records written so far durable (a 1 s timer). */
void api_auth_flush(api_server *a);
void api_identity_clear(api_identity *id);
/* Set r->id from its certificate or token; 401 and false on bad ones. */
bool api_authenticate(api_req *r);
/* RBAC on r (classified or not); 403 and false when denied. */
bool api_authorize(api_req *r);
/* Escalation checks on writes of roles and bindings; 403 and false. */
bool api_authorize_write(api_req *r, const json_t *obj);
/* The Kubernetes verb of r ("get", "list", ... or the HTTP method). */
const char *api_k8s_verb(const api_req *r);
void api_review(api_req *r);
/* Record r at stage ("RequestReceived", "ResponseComplete", ...). */
void api_audit(api_req *r, const char *stage, int code);

/* ---- mesh.c ---- */
/* Load the mesh objects into the model, follow them, run the
 * controllers; bootstrap the default mesh on the first start. */
int api_mesh_start(api_server *a, char *err, size_t errlen);
/* End the map streams (shutdown). */
void api_mesh_stop(api_server *a);
void api_mesh_free(api_server *a);
/* POST .../enrollments. */
void api_mesh_enroll(api_req *r);
/* GET .../peers/NAME/networkmap[?watch=true&serial=N]. */
void api_mesh_networkmap(api_req *r);
/* Semantic checks of a mesh object being written (old: its stored form,
 * NULL on create), beyond its schema; a Peer's controller-owned status
 * (address, online, lastSeen) is kept; for a new SetupKey, its secret
 * (into status, and r->secret). Adds causes; returns their count. */
size_t api_mesh_admit(api_req *r, json_t *obj, const json_t *old,
		      json_t *causes);
/* Whether a peer credential's peer (Token spec.peer: namespace, name,
 * uid) exists, is not expired and not being deleted. */
bool api_mesh_credential_valid(api_server *a, const json_t *peer);

/* ---- leader.c ---- */
/* Start electing (or, without opt.elect, lead at once). on_change runs
 * when this replica starts or stops leading. */
int api_leader_start(api_server *a, void (*on_change)(api_server *, bool));
bool api_is_leader(const api_server *a);
const char *api_leader_id(const api_server *a);
void api_leader_free(api_server *a);
/* mesh.c: leadership moved (reconcile what only the leader writes). */
void api_mesh_on_leader(api_server *a, bool leading);

/* ---- crd.c ---- */
/* Follow CRD events: register types, set Established/NamesAccepted. */
int api_crd_start(api_server *a);
/* Check a CRD being written; adds causes. */
size_t api_crd_check(api_server *a, const json_t *crd, json_t *causes);

#endif
