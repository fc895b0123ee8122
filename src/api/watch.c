/*
 * watch.c -- Kubernetes watches: chunked streams of
 * {"type":...,"object":...} lines, fed by the watch cache.
 *
 * resourceVersion semantics, as kube-apiserver's watch cache has them:
 *   unset or "0"  the current state first (synthetic ADDED events), then
 *                 every change;
 *   "N"           every change after N, from the cache's event ring; if the
 *                 ring no longer reaches back to N, one ERROR event with a
 *                 410 Expired Status, and the stream ends.
 * sendInitialEvents=true sends the state first whatever the version, then
 * a BOOKMARK marked "k8s.io/initial-events-end". Selectors turn an object
 * that starts or stops matching into ADDED or DELETED for this watcher.
 *
 * Each event's frame is serialized once (cache_event_frame) and copied to
 * every watcher. Every bookmark period a watcher gets a BOOKMARK if it
 * allows them, or a bare newline otherwise (clients skip blank lines), so
 * that writes to a vanished client fail and the watcher is freed.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

/* A watcher whose client does not read is cut off past this backlog, or
 * when a write cannot drain for this long. */
#define MAX_BACKLOG   (16u << 20)
#define STALL_SECONDS 60

typedef struct watch_stream {
	api_req *r;
	api_server *a;
	cache_watcher *cw;
	api_filter f;
	char *prefix;
	bool bookmarks;
	bool table; /* the client asked for Table objects (kubectl get -w) */
	int64_t sent_rev;
	struct event *timeout;
	struct evhttp_connection *conn;
	LIST_ENTRY(watch_stream) link;
} watch_stream;

static void watch_end(watch_stream *w, bool client_gone)
{
	api_req *r = w->r;

	LIST_REMOVE(w, link);
	cache_unwatch(w->a->cache, w->cw);
	if (w->timeout)
		event_free(w->timeout);
	if (w->conn && !client_gone)
		evhttp_connection_set_closecb(w->conn, NULL, NULL);
	/* A request still on its connection is finished by us; one the
	 * connection gave up (client gone) is freed by evhttp_send_reply_end
	 * when it has no connection, and left to the connection otherwise. */
	if (!client_gone || !evhttp_request_get_connection(r->ev))
		evhttp_send_reply_end(r->ev);
	api_filter_free(&w->f);
	free(w->prefix);
	free(w);
	api_req_finish(r, 200);
}

static void send_bytes(watch_stream *w, const char *b, size_t len)
{
	struct evbuffer *buf = evbuffer_new();
	struct bufferevent *bev =
	    w->conn ? evhttp_connection_get_bufferevent(w->conn) : NULL;

	if (!buf)
		return;
	evbuffer_add(buf, b, len);
	evhttp_send_reply_chunk(w->r->ev, buf);
	evbuffer_free(buf);
	if (bev &&
	    evbuffer_get_length(bufferevent_get_output(bev)) > MAX_BACKLOG) {
		fprintf(stderr,
			"signalbox: watch on %s: the client is not reading; "
			"closing its stream\n",
			w->prefix);
		watch_end(w, false);
	}
}

/* The event type this watcher should see for e, or -1 for none. */
static int event_for(const watch_stream *w, const cache_event *e)
{
	bool now = api_filter_match(&w->f, e->obj);
	bool before = e->prev && api_filter_match(&w->f, e->prev);

	switch (e->type) {
	case CACHE_ADDED:
		return now ? CACHE_ADDED : -1;
	case CACHE_DELETED:
		return before || now ? CACHE_DELETED : -1;
	case CACHE_MODIFIED:
		if (now && before)
			return CACHE_MODIFIED;
		if (now)
			return CACHE_ADDED;
		if (before)
			return CACHE_DELETED;
	}
	return -1;
}

static const char *const type_names[] = {"ADDED", "MODIFIED", "DELETED"};

/* Send {"type":T,"object":o} (o stolen) as one line. */
static void send_json_event(watch_stream *w, const char *type, json_t *o)
{
	json_t *ev = json_pack("{s:s, s:o}", "type", type, "object", o);
	char *s = ev ? json_dumps(ev, JSON_COMPACT) : NULL;

	json_decref(ev);
	if (s) {
		send_bytes(w, s, strlen(s));
		send_bytes(w, "\n", 1);
		free(s);
	}
}

/* A table watch gets each object as a one-row Table, with the column
 * definitions every time (kubectl prints the header once while they stay
 * the same). */
static void send_table_event(watch_stream *w, cache_obj *o, int type)
{
	char rv[24];

	snprintf(rv, sizeof rv, "%lld", (long long)o->rev);
	send_json_event(w, type_names[type],
			api_table(w->r, &o, 1, rv, NULL, -1));
}

/* Frames name the apiVersion the object was stored with; a watch on
 * another served version gets its own rewritten frame. */
static void send_event(watch_stream *w, cache_event *e, int type)
{
	const char *const *names = type_names;
	char want[300];
	size_t len;
	const char *f;

	if (w->table) {
		send_table_event(w, e->obj, type);
		w->sent_rev = e->rev;
		return;
	}
	api_version_of(w->r, want, sizeof want);
	f = cache_event_frame(e, (cache_ev_type)type, &len);
	if (api_stored_as(e->obj, want)) {
		send_bytes(w, f, len);
	} else {
		json_t *o = cache_obj_parse(e->obj);

		json_object_set_new(o, "apiVersion", json_string(want));
		send_json_event(w, names[type], o);
	}
	w->sent_rev = e->rev;
}

static void on_event(cache_event *e, void *arg)
{
	watch_stream *w = arg;
	int t;

	if (!e) {
		/* The cache reloaded: this stream missed events. */
		w->cw = NULL;
		watch_end(w, false);
		return;
	}
	t = event_for(w, e);
	if (t >= 0)
		send_event(w, e, t);
}

static void on_close(struct evhttp_connection *conn, void *arg)
{
	(void)conn;
	watch_end(arg, true);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	watch_end(arg, false);
}

static void send_bookmark(watch_stream *w, int64_t rev, bool initial_end)
{
	char av[300], *s;
	json_t *b;

	api_version_of(w->r, av, sizeof av);
	b = json_pack("{s:s, s:{s:s, s:s, s:{s:s, s:n}}}", "type", "BOOKMARK",
		      "object", "kind", w->r->type->kind, "apiVersion", av,
		      "metadata", "resourceVersion", "", "creationTimestamp");
	{
		char rv[24];
		json_t *m =
		    json_object_get(json_object_get(b, "object"), "metadata");

		snprintf(rv, sizeof rv, "%lld", (long long)rev);
		json_object_set_new(m, "resourceVersion", json_string(rv));
		if (initial_end)
			json_object_set_new(
			    m, "annotations",
			    json_pack("{s:s}", "k8s.io/initial-events-end",
				      "true"));
	}
	s = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	if (s) {
		size_t n = strlen(s);
		char *line = realloc(s, n + 2);

		if (line) {
			line[n] = '\n';
			send_bytes(w, line, n + 1);
			free(line);
		} else
			free(s);
	}
}

void api_watch_bookmarks(api_server *a)
{
	watch_stream *w, *nx;

	for (w = LIST_FIRST(&a->watches); w; w = nx) {
		nx = LIST_NEXT(w, link);
		if (w->bookmarks)
			send_bookmark(w, cache_revision(a->cache), false);
		else
			send_bytes(w, "\n", 1);
	}
}

void api_watch_shutdown(api_server *a)
{
	watch_stream *w;

	while ((w = LIST_FIRST(&a->watches)))
		watch_end(w, false);
}

static void send_error(watch_stream *w, int code, const char *reason,
		       const char *msg)
{
	send_json_event(w, "ERROR", api_status(code, reason, msg, NULL));
}

/* The current state, as ADDED events. */
static void send_state(watch_stream *w)
{
	cache *c = w->a->cache;
	size_t plen = strlen(w->prefix);

	for (cache_obj *o = cache_first(c, w->prefix);
	     o && !strncmp(o->key, w->prefix, plen); o = cache_next(c, o)) {
		cache_event e = {
		    .refs = 1, .type = CACHE_ADDED, .rev = o->rev, .obj = o};
		size_t len;
		const char *f;

		if (!api_filter_match(&w->f, o))
			continue;
		if (w->table) {
			send_table_event(w, o, CACHE_ADDED);
			continue;
		}
		f = cache_event_frame(&e, CACHE_ADDED, &len);
		send_bytes(w, f, len);
		free(e.frame[CACHE_ADDED]);
	}
	w->sent_rev = cache_revision(c);
}

void api_watch(api_req *r)
{
	api_server *a = r->srv;
	const char *rvs = api_query(r, "resourceVersion");
	const char *tos = api_query(r, "timeoutSeconds");
	int64_t rv = rvs && *rvs ? atoll(rvs) : 0;
	bool initial = api_query_bool(r, "sendInitialEvents");
	watch_stream *w;
	struct evkeyvalq *h;

	if (rvs && *rvs && strcmp(rvs, "0") && rv <= 0) {
		api_fail(r, 400, "BadRequest", NULL,
			 "invalid resource version: %s", rvs);
		return;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		api_fail(r, 500, "InternalError", NULL, "out of memory");
		return;
	}
	if (!api_filter_parse(r, &w->f)) {
		free(w);
		return;
	}
	w->r = r;
	w->a = a;
	w->bookmarks = api_query_bool(r, "allowWatchBookmarks");
	w->table = api_wants_table(r);
	if (r->ns) {
		if (asprintf(&w->prefix, "%s%s/", r->type->key_prefix, r->ns) <
		    0)
			w->prefix = NULL;
	} else
		w->prefix = strdup(r->type->key_prefix);
	if (!w->prefix) {
		api_filter_free(&w->f);
		free(w);
		api_fail(r, 500, "InternalError", NULL, "out of memory");
		return;
	}
	/* From here on the request is a long-running stream. */
	r->long_running = true;
	a->inflight--;
	a->watchers++;
	LIST_INSERT_HEAD(&a->watches, w, link);
	h = evhttp_request_get_output_headers(r->ev);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-cache, private");
	evhttp_send_reply_start(r->ev, 200, "OK");
	api_audit(r, "ResponseStarted", 200);
	w->conn = evhttp_request_get_connection(r->ev);
	if (w->conn) {
		/* A watch may sit idle for long: no read timeout, but a write
		 * that cannot drain for a while means the client is gone. */
		struct timeval wtv = {STALL_SECONDS, 0};

		evhttp_connection_set_closecb(w->conn, on_close, w);
		bufferevent_set_timeouts(
		    evhttp_connection_get_bufferevent(w->conn), NULL, &wtv);
	}

	if (rv == 0 || initial) {
		send_state(w);
		if (initial && w->bookmarks)
			send_bookmark(w, cache_revision(a->cache), true);
	} else if (cache_replay(a->cache, rv, w->prefix, on_event, w) != 0) {
		char msg[128];

		snprintf(msg, sizeof msg,
			 "too old resource version: %lld (%lld)", (long long)rv,
			 (long long)cache_oldest(a->cache) + 1);
		send_error(w, 410, "Expired", msg);
		watch_end(w, false);
		return;
	}
	w->cw = cache_watch(a->cache, w->prefix, on_event, w);
	if (tos && atoi(tos) > 0) {
		struct timeval tv = {atoi(tos), 0};

		w->timeout = evtimer_new(a->base, on_timeout, w);
		if (w->timeout)
			evtimer_add(w->timeout, &tv);
	}
}
