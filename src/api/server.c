/*
 * server.c -- the listener, request routing, limits, metrics, and the hand
 * back of store completions to the event loop.
 *
 * One event loop. A request is parsed into an api_req, routed, and either
 * answered at once (reads: from the cache) or parked until its store
 * transaction is durable: the store's committer thread queues the
 * completion on done and wakes the loop, which first applies the store's
 * new events to the cache (so the writer's own change is visible) and then
 * runs the completion.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "api/api_int.h"
#include "security/pki.h"

const char *const api_verb_names[VERB_COUNT] = {
    [VERB_NONE] = "",
    [VERB_GET] = "GET",
    [VERB_LIST] = "LIST",
    [VERB_WATCH] = "WATCH",
    [VERB_CREATE] = "POST",
    [VERB_UPDATE] = "PUT",
    [VERB_PATCH] = "PATCH",
    [VERB_DELETE] = "DELETE",
    [VERB_DELETECOLLECTION] = "DELETECOLLECTION",
};

static const double bucket_le[12] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
				     0.05,   0.1,   0.25,   0.5,   1.0,	 5.0};

void api_options_init(api_options *o)
{
	memset(o, 0, sizeof(*o));
	o->listen_host = "127.0.0.1";
	o->listen_port = 6443;
	o->max_body = 3u << 20;
	o->max_inflight = 400;
	o->read_timeout = 60;
	o->bookmark_seconds = 30;
	o->cache_events = 10000;
	o->audit_max_bytes = 100u << 20;
	o->audit_max_backups = 10;
	o->mesh_lease_seconds = 15;
	o->mesh_ephemeral_seconds = 600;
	o->mesh_bootstrap = true;
}

/* ---- small helpers -------------------------------------------------- */

const char *api_query(const api_req *r, const char *name)
{
	return evhttp_find_header(&r->query, name);
}

bool api_query_bool(const api_req *r, const char *name)
{
	const char *v = api_query(r, name);

	/* As Kubernetes converts query booleans: anything but "0" and
	 * "false" (any case) is true; python-kubernetes sends "True". */
	return v && strcmp(v, "0") && strcasecmp(v, "false");
}

char *api_key(const reg_type *t, const char *ns, const char *name)
{
	char *k;

	if (t->namespaced && ns) {
		if (asprintf(&k, "%s%s/%s", t->key_prefix, ns, name) < 0)
			return NULL;
	} else if (asprintf(&k, "%s%s", t->key_prefix, name) < 0)
		return NULL;
	return k;
}

void api_now(char buf[32])
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void api_uuid(char out[37])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	char *p = out;

	if (getrandom(b, sizeof b, 0) != sizeof b)
		memset(b, 0, sizeof b);
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[b[i] >> 4];
		*p++ = hex[b[i] & 15];
	}
	*p = '\0';
}

/* ---- metrics -------------------------------------------------------- */

static void metric_add(api_server *a, const char *verb, const char *resource,
		       int code, double secs)
{
	api_metric *m = NULL;

	for (size_t i = 0; i < a->nmetrics; i++) {
		api_metric *x = &a->metrics[i];

		if (x->code == code && !strcmp(x->verb, verb) &&
		    !strcmp(x->resource, resource)) {
			m = x;
			break;
		}
	}
	if (!m) {
		if (a->nmetrics == a->metrics_cap) {
			size_t nc = a->metrics_cap ? a->metrics_cap * 2 : 64;
			api_metric *p = realloc(a->metrics, nc * sizeof(*p));

			if (!p)
				return;
			a->metrics = p;
			a->metrics_cap = nc;
		}
		m = &a->metrics[a->nmetrics];
		memset(m, 0, sizeof(*m));
		m->verb = strdup(verb);
		m->resource = strdup(resource);
		m->code = code;
		if (!m->verb || !m->resource) {
			free(m->verb);
			free(m->resource);
			return;
		}
		a->nmetrics++;
	}
	m->count++;
	m->seconds += secs;
	for (int i = 0; i < 12; i++)
		if (secs <= bucket_le[i])
			m->buckets[i]++;
}

static void serve_metrics(api_req *r)
{
	api_server *a = r->srv;
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *body;

	evbuffer_add_printf(
	    b, "# HELP apiserver_request_total Requests by verb, resource "
	       "and HTTP code.\n# TYPE apiserver_request_total counter\n");
	for (size_t i = 0; i < a->nmetrics; i++) {
		api_metric *m = &a->metrics[i];

		evbuffer_add_printf(b,
				    "apiserver_request_total{verb=\"%s\","
				    "resource=\"%s\",code=\"%d\"} %llu\n",
				    m->verb, m->resource, m->code,
				    (unsigned long long)m->count);
	}
	evbuffer_add_printf(
	    b, "# HELP apiserver_request_duration_seconds Response "
	       "latency by verb, resource and code.\n"
	       "# TYPE apiserver_request_duration_seconds histogram\n");
	for (size_t i = 0; i < a->nmetrics; i++) {
		api_metric *m = &a->metrics[i];
		const char *lbl = "verb=\"%s\",resource=\"%s\",code=\"%d\"";
		char l[256];

		snprintf(l, sizeof l, lbl, m->verb, m->resource, m->code);
		for (int j = 0; j < 12; j++)
			evbuffer_add_printf(
			    b,
			    "apiserver_request_duration_seconds_bucket{%s,"
			    "le=\"%g\"} %llu\n",
			    l, bucket_le[j], (unsigned long long)m->buckets[j]);
		evbuffer_add_printf(
		    b,
		    "apiserver_request_duration_seconds_bucket{%s,"
		    "le=\"+Inf\"} %llu\n"
		    "apiserver_request_duration_seconds_sum{%s} %.6f\n"
		    "apiserver_request_duration_seconds_count{%s} %llu\n",
		    l, (unsigned long long)m->count, l, m->seconds, l,
		    (unsigned long long)m->count);
	}
	evbuffer_add_printf(
	    b,
	    "# HELP apiserver_registered_watchers Open watch streams.\n"
	    "# TYPE apiserver_registered_watchers gauge\n"
	    "apiserver_registered_watchers %d\n"
	    "# HELP apiserver_current_inflight_requests Requests being "
	    "served, watches excluded.\n"
	    "# TYPE apiserver_current_inflight_requests gauge\n"
	    "apiserver_current_inflight_requests %d\n"
	    "# HELP signalbox_store_revision Newest revision in the "
	    "store.\n# TYPE signalbox_store_revision gauge\n"
	    "signalbox_store_revision %lld\n"
	    "# HELP signalbox_store_compact_revision Revision the store "
	    "is compacted to.\n"
	    "# TYPE signalbox_store_compact_revision gauge\n"
	    "signalbox_store_compact_revision %lld\n"
	    "# HELP signalbox_store_db_size_bytes Database size on disk, "
	    "WAL included.\n# TYPE signalbox_store_db_size_bytes gauge\n"
	    "signalbox_store_db_size_bytes %lld\n"
	    "# HELP signalbox_cache_objects Objects in the watch cache.\n"
	    "# TYPE signalbox_cache_objects gauge\n"
	    "signalbox_cache_objects %zu\n",
	    a->watchers, a->inflight, (long long)store_revision(a->st),
	    (long long)store_compact_revision(a->st),
	    (long long)store_db_size(a->st), cache_count(a->cache));
	len = evbuffer_get_length(b);
	body = malloc(len);
	if (body)
		evbuffer_remove(b, body, len);
	evbuffer_free(b);
	api_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8",
		  body ? body : "", body ? len : 0);
	free(body);
}

/* ---- request lifecycle --------------------------------------------------- */

static void req_free(api_req *r)
{
	evhttp_clear_headers(&r->query);
	free(r->path);
	free(r->group);
	free(r->version);
	free(r->plural);
	free(r->ns);
	free(r->name);
	free(r->sub);
	free(r->body);
	api_identity_clear(&r->id);
	free(r->authz_reason);
	if (r->secret) {
		explicit_bzero(r->secret, strlen(r->secret));
		free(r->secret);
	}
	free(r->uri);
	free(r->user_agent);
	free(r->peer);
	if (r->key)
		cache_hint_drop(r->srv->cache, r->key, r->val);
	free(r->key);
	free(r->val);
	json_decref(r->obj);
	json_decref(r->aux);
	free(r);
}

void api_req_finish(api_req *r, int code)
{
	api_server *a = r->srv;
	struct timespec now;
	double secs;
	char res[256] = "";

	clock_gettime(CLOCK_MONOTONIC, &now);
	secs = (double)(now.tv_sec - r->start.tv_sec) +
	       (double)(now.tv_nsec - r->start.tv_nsec) / 1e9;
	if (r->plural)
		snprintf(res, sizeof res, "%s%s%s", r->plural,
			 r->sub ? "/" : "", r->sub ? r->sub : "");
	metric_add(a,
		   r->verb			 ? api_verb_names[r->verb]
		   : r->method == EVHTTP_REQ_GET ? "GET"
						 : "OTHER",
		   res, code, secs);
	if (r->auth_failed)
		api_audit(r, "ResponseStarted", code);
	else if (r->id.user)
		api_audit(r, "ResponseComplete", code);
	if (r->long_running)
		a->watchers--;
	else
		a->inflight--;
	req_free(r);
}

void api_reply(api_req *r, int code, const char *content_type, const char *body,
	       size_t len)
{
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);

	evhttp_add_header(h, "Content-Type", content_type);
	evhttp_add_header(h, "Cache-Control", "no-cache, private");
	if (b)
		evbuffer_add(b, body, len);
	evhttp_send_reply(r->ev, code, NULL, b);
	if (b)
		evbuffer_free(b);
	r->resp_body = body;
	r->resp_len = len;
	api_req_finish(r, code);
}

void api_reply_json(api_req *r, int code, json_t *v)
{
	char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;

	json_decref(v);
	if (!s) {
		api_reply(r, 500, "application/json", "{}", 2);
		return;
	}
	api_reply(r, code, "application/json", s, strlen(s));
	free(s);
}

/* ---- store completions ------------------------------------------------- */

/* From a store thread: make the loop run on_wake. An eventfd, so that
 * libevent itself needs no locking (evthread) on the hot path. */
static void wake_loop(api_server *a)
{
	uint64_t one = 1;

	if (write(a->wake_fd, &one, sizeof one) < 0) {
		/* EAGAIN: the counter is already non-zero, a wake is due. */
	}
}

static void on_txn(int err, store_txn_result *res, void *arg)
{
	api_req *r = arg;
	api_server *a = r->srv;

	/* On a store thread: park the result, wake the loop. */
	r->txn_err = err;
	r->txn_res = res;
	pthread_mutex_lock(&a->done_mu);
	STAILQ_INSERT_TAIL(&a->done, r, link);
	pthread_mutex_unlock(&a->done_mu);
	wake_loop(a);
}

void api_txn(api_req *r, const store_txn *t, api_done_fn done)
{
	int rc;

	r->done = done;
	rc = store_txn_async(r->srv->st, t, on_txn, r);
	if (rc)
		done(r, rc, NULL);
}

/* The store's current revision is known (on the loop): serve r now, or
 * park it until the cache reaches that revision. */
static void read_rev_known(api_req *r, int err, store_txn_result *res)
{
	api_server *a = r->srv;

	(void)res;
	if (err) {
		char why[256] = "";

		store_last_error(a->st, why, sizeof why);
		api_fail(r, 503, "ServiceUnavailable", NULL,
			 "the store cannot be read now: %s",
			 *why ? why : store_strerror(err));
		return;
	}
	if (cache_revision(a->cache) >= r->wait_rev) {
		api_objects(r);
		return;
	}
	STAILQ_INSERT_TAIL(&a->waiting, r, link);
}

/* On a store thread: the revision, back to the loop. */
static void on_read_rev(int err, int64_t rev, void *arg)
{
	api_req *r = arg;
	api_server *a = r->srv;

	r->wait_rev = rev;
	r->txn_err = err;
	r->txn_res = NULL;
	r->done = read_rev_known;
	pthread_mutex_lock(&a->done_mu);
	STAILQ_INSERT_TAIL(&a->done, r, link);
	pthread_mutex_unlock(&a->done_mu);
	wake_loop(a);
}

bool api_read_ready(api_req *r)
{
	api_server *a = r->srv;
	int rc;

	if (!a->opt.consistent_reads || r->waited)
		return true;
	/* Ask the store for its revision without blocking the loop; the
	 * read runs again (r->waited) once the cache has caught up. */
	r->waited = true;
	rc = store_current_revision_async(a->st, on_read_rev, r);
	if (rc) {
		api_fail(r, 503, "ServiceUnavailable", NULL,
			 "the store cannot be read now: %s",
			 store_strerror(rc));
		return false;
	}
	return false;
}

/* Run the reads whose revision the cache has reached. */
static void run_waiting(api_server *a)
{
	struct api_req_list later;
	api_req *r;

	STAILQ_INIT(&later);
	while ((r = STAILQ_FIRST(&a->waiting))) {
		STAILQ_REMOVE_HEAD(&a->waiting, link);
		if (cache_revision(a->cache) >= r->wait_rev)
			api_objects(r);
		else
			STAILQ_INSERT_TAIL(&later, r, link);
	}
	STAILQ_INIT(&a->waiting);
	STAILQ_CONCAT(&a->waiting, &later);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	api_server *a = arg;
	struct api_req_list list;
	api_req *r;
	int rc;

	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof n) < 0) {
		/* EAGAIN: nothing pending; pump anyway, it is cheap. */
	}
	rc = cache_pump(a->cache);
	if (rc)
		fprintf(stderr, "signalbox: cache: %s\n", store_strerror(rc));
	if (!STAILQ_EMPTY(&a->waiting))
		run_waiting(a);
	pthread_mutex_lock(&a->done_mu);
	list = a->done;
	STAILQ_INIT(&a->done);
	pthread_mutex_unlock(&a->done_mu);
	if (STAILQ_EMPTY(&list))
		return;
	/* The store acknowledged after publishing: pump once more so that
	 * every completion below is already visible in the cache. */
	cache_pump(a->cache);
	while ((r = STAILQ_FIRST(&list))) {
		store_txn_result *res = r->txn_res;
		int err = r->txn_err;

		STAILQ_REMOVE_HEAD(&list, link);
		r->txn_res = NULL;
		r->done(r, err, res);
		store_txn_result_delete(res);
	}
}

static void wake_from_thread(void *arg)
{
	wake_loop(arg);
}

/* ---- routing --------------------------------------------------------------
 */

/* Split path into at most max segments (pointers into a copy in *buf). */
static size_t split(const char *path, char **buf, char **seg, size_t max)
{
	size_t n = 0;
	char *save, *p;

	*buf = strdup(path);
	if (!*buf)
		return 0;
	for (p = strtok_r(*buf, "/", &save); p && n < max;
	     p = strtok_r(NULL, "/", &save))
		seg[n++] = p;
	return p ? max + 1 : n; /* max + 1: too many */
}

/* Parse /api/v1/... and /apis/g/v/... into r's resource fields. Returns
 * false when the path is not a resource path. */
static bool parse_resource(api_req *r)
{
	char *buf, *seg[10];
	size_t n = split(r->path, &buf, seg, 9), i;
	bool ok = false;

	if (n < 3 || n > 9)
		goto out;
	if (!strcmp(seg[0], "api")) {
		r->group = strdup("");
		r->version = strdup(seg[1]);
		i = 2;
	} else if (!strcmp(seg[0], "apis") && n >= 4) {
		r->group = strdup(seg[1]);
		r->version = strdup(seg[2]);
		i = 3;
	} else
		goto out;
	/* namespaces/<ns>/<plural>/... when <plural> is namespaced. */
	if (n - i >= 3 && !strcmp(seg[i], "namespaces")) {
		const reg_type *t = reg_find(r->srv->reg, r->group, r->version,
					     seg[i + 2], NULL);

		if (t && t->namespaced) {
			r->ns = strdup(seg[i + 1]);
			i += 2;
		}
	}
	r->plural = strdup(seg[i++]);
	if (i < n)
		r->name = strdup(seg[i++]);
	if (i < n)
		r->sub = strdup(seg[i++]);
	ok = i == n;
out:
	free(buf);
	return ok;
}

/* Authenticate, authorize (on the path's attributes, before anything
 * says whether the resource exists), audit, then hand to the handler. */
static void route(api_req *r)
{
	const char *p = r->path;
	bool resource = parse_resource(r);

	if (resource)
		api_set_verb(r);
	if (!api_authenticate(r) || !api_authorize(r))
		return;
	api_audit(r, "RequestReceived", 0);
	if (!strcmp(p, "/livez") || !strcmp(p, "/readyz") ||
	    !strcmp(p, "/healthz")) {
		api_reply(r, 200, "text/plain; charset=utf-8", "ok", 2);
		return;
	}
	if (!strcmp(p, "/metrics")) {
		serve_metrics(r);
		return;
	}
	if (api_discovery(r) || api_openapi(r))
		return;
	if (resource) {
		if (api_classify(r))
			api_objects(r);
		return;
	}
	api_fail(r, 404, "NotFound", NULL,
		 "the server could not find the requested resource");
}

/* Small responses go out at once: without TCP_NODELAY, Nagle and delayed
 * ACKs add 40 ms to a response that spans several segments. */
static void nodelay(struct evhttp_request *ev)
{
	struct evhttp_connection *c = evhttp_request_get_connection(ev);
	struct bufferevent *bev =
	    c ? evhttp_connection_get_bufferevent(c) : NULL;
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
	int one = 1;

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void on_request(struct evhttp_request *ev, void *arg)
{
	api_server *a = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
	const char *raw = evhttp_uri_get_path(uri);
	const char *q = evhttp_uri_get_query(uri);
	struct evbuffer *in = evhttp_request_get_input_buffer(ev);
	api_req *r = calloc(1, sizeof(*r));

	if (!r) {
		evhttp_send_error(ev, 503, "out of memory");
		return;
	}
	r->srv = a;
	r->ev = ev;
	TAILQ_INIT(&r->query);
	gettimeofday(&r->received, NULL);
	api_uuid(r->audit_id);
	r->method = evhttp_request_get_command(ev);
	r->uri = strdup(evhttp_request_get_uri(ev));
	{
		const char *ua = evhttp_find_header(
		    evhttp_request_get_input_headers(ev), "User-Agent");
		struct evhttp_connection *c = evhttp_request_get_connection(ev);
		char *peer = NULL;
		ev_uint16_t port = 0;

		r->user_agent = ua ? strdup(ua) : NULL;
		if (c)
			evhttp_connection_get_peer(c, &peer, &port);
		r->peer = peer ? strdup(peer) : NULL;
	}
	nodelay(ev);
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	a->inflight++;
	r->path = evhttp_uridecode(raw && *raw ? raw : "/", 0, NULL);
	if (!r->path || (q && evhttp_parse_query_str(q, &r->query) != 0)) {
		api_fail(r, 400, "BadRequest", NULL,
			 "the request URL could not be parsed");
		return;
	}
	if (a->inflight > a->opt.max_inflight) {
		evhttp_add_header(evhttp_request_get_output_headers(ev),
				  "Retry-After", "1");
		api_fail(r, 429, "TooManyRequests", NULL,
			 "too many requests, please try again later");
		return;
	}
	r->body_len = evbuffer_get_length(in);
	if (r->body_len) {
		r->body = malloc(r->body_len + 1);
		if (!r->body) {
			api_fail(r, 500, "InternalError", NULL,
				 "out of memory");
			return;
		}
		evbuffer_remove(in, r->body, r->body_len);
		r->body[r->body_len] = '\0';
	}
	route(r);
}

/* ---- set up ---------------------------------------------------------- */

/* Every connection speaks TLS: a plain HTTP request fails the handshake
 * and the connection is closed. */
static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
	api_server *a = arg;
	SSL *ssl = SSL_new(a->ssl_ctx);
	struct bufferevent *bev;

	if (!ssl)
		return NULL;
	bev = bufferevent_openssl_socket_new(
	    base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

int api_store_create(api_server *a, const char *key, json_t *obj)
{
	store_cmp cmp = {key, STORE_CMP_CREATE, STORE_CMP_EQ, 0};
	store_op put = {.type = STORE_OP_PUT, .key = key};
	store_txn txn = {&cmp, 1, &put, 1, NULL, 0};
	store_txn_result res;
	char *val = json_dumps(obj, JSON_COMPACT);
	int rc;

	if (!val)
		return STORE_ENOMEM;
	put.value = val;
	put.value_len = strlen(val);
	rc = store_txn_run(a->st, &txn, &res);
	if (rc == 0)
		store_txn_result_free(&res);
	free(val);
	return rc;
}

static int ensure_default_namespace(api_server *a)
{
	const reg_type *t = reg_find(a->reg, "", "v1", "namespaces", NULL);
	char *key = api_key(t, NULL, "default");
	char now[32], uid[37];
	json_t *ns;
	int rc;

	if (!key)
		return STORE_ENOMEM;
	api_now(now);
	api_uuid(uid);
	ns = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:I}, s:{s:[s]}, s:{s:s}}",
		       "apiVersion", "v1", "kind", "Namespace", "metadata",
		       "name", "default", "uid", uid, "creationTimestamp", now,
		       "generation", (json_int_t)1, "spec", "finalizers",
		       "kubernetes", "status", "phase", "Active");
	rc = ns ? api_store_create(a, key, ns) : STORE_ENOMEM;
	json_decref(ns);
	free(key);
	return rc;
}

static void on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	api_auth_flush(arg);
}

static void on_bookmark_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	api_watch_bookmarks(arg);
}

int api_new(store *s, const api_options *o, api_server **out, char *err,
	    size_t errlen)
{
	api_server *a = calloc(1, sizeof(*a));
	struct timeval tv;
	int rc;

	*out = NULL;
	if (!a)
		return -1;
	a->wake_fd = -1;
	a->opt = *o;
	a->st = s;
	STAILQ_INIT(&a->done);
	STAILQ_INIT(&a->waiting);
	LIST_INIT(&a->watches);
	pthread_mutex_init(&a->done_mu, NULL);
	a->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	a->base = event_base_new();
	a->reg = reg_new(err, errlen);
	if (!a->base || !a->reg)
		goto fail;
	if (a->wake_fd < 0)
		goto fail;
	a->wake =
	    event_new(a->base, a->wake_fd, EV_READ | EV_PERSIST, on_wake, a);
	if (a->wake)
		event_add(a->wake, NULL);
	a->bookmark_timer =
	    event_new(a->base, -1, EV_PERSIST, on_bookmark_timer, a);
	if (!a->wake || !a->bookmark_timer)
		goto fail;
	rc = ensure_default_namespace(a);
	if (rc) {
		snprintf(err, errlen, "cannot create namespace default: %s",
			 store_strerror(rc));
		goto fail;
	}
	rc = cache_open(s, o->cache_events, wake_from_thread, a, &a->cache, err,
			errlen);
	if (rc)
		goto fail;
	if (api_crd_start(a)) {
		snprintf(err, errlen, "cannot register the stored CRDs");
		goto fail;
	}
	if (api_auth_start(a, err, errlen))
		goto fail;
	if (api_leader_start(a, api_mesh_on_leader)) {
		snprintf(err, errlen, "cannot start the leader election");
		goto fail;
	}
	if (api_mesh_start(a, err, errlen))
		goto fail;
	if (!o->insecure) {
		a->ssl_ctx = pki_server_ctx(o->tls_cert_file, o->tls_key_file,
					    o->client_ca_file, err, errlen);
		if (!a->ssl_ctx)
			goto fail;
	}
	a->http = evhttp_new(a->base);
	if (!a->http)
		goto fail;
	evhttp_set_max_body_size(a->http, (ev_ssize_t)o->max_body);
	evhttp_set_max_headers_size(a->http, 64 * 1024);
	evhttp_set_timeout(a->http, o->read_timeout);
	evhttp_set_allowed_methods(a->http,
				   EVHTTP_REQ_GET | EVHTTP_REQ_POST |
				       EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH |
				       EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
	evhttp_set_default_content_type(a->http, "application/json");
	evhttp_set_gencb(a->http, on_request, a);
	if (a->ssl_ctx)
		evhttp_set_bevcb(a->http, tls_bev, a);
	a->sock = evhttp_bind_socket_with_handle(a->http, o->listen_host,
						 (ev_uint16_t)o->listen_port);
	if (!a->sock) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s",
			 o->listen_host, o->listen_port, strerror(errno));
		goto fail;
	}
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		evutil_socket_t fd = evhttp_bound_socket_get_fd(a->sock);

		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
			a->port =
			    ntohs(ss.ss_family == AF_INET6
				      ? ((struct sockaddr_in6 *)&ss)->sin6_port
				      : ((struct sockaddr_in *)&ss)->sin_port);
	}
	tv.tv_sec = o->bookmark_seconds > 0 ? o->bookmark_seconds : 30;
	tv.tv_usec = 0;
	event_add(a->bookmark_timer, &tv);
	a->flush_timer = event_new(a->base, -1, EV_PERSIST, on_flush_timer, a);
	if (a->flush_timer) {
		tv.tv_sec = 1;
		event_add(a->flush_timer, &tv);
	}
	*out = a;
	return 0;
fail:
	if (!*err)
		snprintf(err, errlen, "cannot set up the API server");
	api_free(a);
	return -1;
}

int api_port(const api_server *a)
{
	return a->port;
}

struct event_base *api_base(api_server *a)
{
	return a->base;
}

int api_run(api_server *a)
{
	event_base_dispatch(a->base);
	return 0;
}

void api_stop(api_server *a)
{
	struct timeval flush = {0, 200000};

	/* Stop accepting, end every watch with its final chunk, and give the
	 * loop a moment to write what is pending before it exits. */
	if (a->sock) {
		evhttp_del_accept_socket(a->http, a->sock);
		a->sock = NULL;
	}
	api_watch_shutdown(a);
	api_mesh_stop(a);
	event_base_loopexit(a->base, &flush);
}

void api_free(api_server *a)
{
	if (!a)
		return;
	if (a->base)
		api_watch_shutdown(a);
	api_mesh_free(a);
	api_leader_free(a);
	if (a->http)
		evhttp_free(a->http);
	api_auth_free(a);
	cache_close(a->cache);
	if (a->ssl_ctx)
		SSL_CTX_free(a->ssl_ctx);
	if (a->wake)
		event_free(a->wake);
	if (a->wake_fd >= 0)
		close(a->wake_fd);
	if (a->bookmark_timer)
		event_free(a->bookmark_timer);
	if (a->flush_timer)
		event_free(a->flush_timer);
	reg_free(a->reg);
	json_decref(a->openapi_v2);
	json_decref(a->openapi_v3_paths);
	for (size_t i = 0; i < a->nmetrics; i++) {
		free(a->metrics[i].verb);
		free(a->metrics[i].resource);
	}
	free(a->metrics);
	if (a->base)
		event_base_free(a->base);
	pthread_mutex_destroy(&a->done_mu);
	free(a);
}
