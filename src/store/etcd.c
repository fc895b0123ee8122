/*
 * etcd.c -- the etcd backend: the store kept in an etcd v3 cluster, spoken
 * to through etcd's JSON gateway (/v3/...) with libcurl.
 *
 * Revisions are etcd's. A store_txn is one etcd txn: compares on
 * mod_revision, create_revision or version, then the ops of one branch.
 * Leases are etcd leases; compaction is etcd's.
 *
 * Threads.
 *   - The I/O thread drives one curl multi handle. It sends every write
 *     request (txn, lease grant and revoke, compact) over a small pool of
 *     keep-alive connections, many in flight at once, and it reads the one
 *     watch stream over the whole key space that feeds store_publish.
 *   - The maintenance thread compacts automatically (history_revisions,
 *     history_seconds, as sqlite does) and notices compactions made by
 *     other servers sharing the etcd.
 *   - Reads (range, history, lease TTL and keepalive, status) run in the
 *     caller's thread on pooled easy handles (one keep-alive connection
 *     each).
 *
 * The write path keeps the store's invariant: a write's events are
 * published before the write is acknowledged. When etcd answers a request
 * with header revision R, the request waits until the watch has published
 * every event up to R (at once if it has), and only then completes. Events
 * arrive as etcd sends them: one watch response holds whole revisions
 * (fragmentation is off), and each revision is published on its own, its
 * events sorted by key. A broken watch stream is reopened from the last
 * published revision + 1, on the next endpoint if the member is gone; a
 * stream that stays silent while writes wait for it is reopened too.
 *
 * Requests. A txn of one unconditional put or delete goes to /v3/kv/put or
 * /v3/kv/deleterange (the gateway decodes those about twice as fast as a
 * txn); everything else is one /v3/kv/txn. At most MAX_CONNS requests are
 * out at once, each on its own keep-alive connection; the rest queue in
 * the I/O thread, so a request's timeout counts from when it is sent.
 * store_current_revision_async callers share reads: one read goes out at a
 * time, and answers every caller that asked before it was sent.
 *
 * History (events older than the store's ring) is read with a watch that
 * starts in the past. etcd serves such a watch only at its next sync (up to
 * 100 ms later), so the last window read is kept and serves the repeated
 * calls of a watcher catching up.
 *
 * Failover: every request goes to the current endpoint. One that cannot be
 * connected to moves the current endpoint on and is retried there (it was
 * never sent). A request that was sent but got no answer (timeout, a member
 * dying mid-answer) is retried only if it is a read; a write fails with
 * STORE_EUNAVAIL (its outcome is unknown; store.h says so).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "store_int.h"

#define DEFAULT_TIMEOUT_MS 5000
#define CONNECT_TIMEOUT_MS 2000
#define MAX_CONNS	   64	/* write connections of the I/O thread */
#define MAX_POOL	   16	/* idle read handles kept */
#define TICK_MS		   200	/* auto-compaction check interval */
#define PROBE_MS	   2000 /* check for compactions by others */
#define WATCH_STALL_MS	   3000 /* a write waiting this long restarts it */
#define HISTORY_TIMEOUT_MS 30000
#define HCACHE_BYTES	   (4 << 20) /* history window kept */

/* "\0": as a range end, every key from the start key on. */
#define B64_NUL "AA=="

/* ---- small pieces ------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct buf {
	char *p;
	size_t n, cap;
	bool oom;
} buf;

static void buf_free(buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static size_t buf_write(char *data, size_t size, size_t nmemb, void *arg)
{
	buf *b = arg;
	size_t len = size * nmemb;

	if (b->n + len + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 4096;
		char *p;

		while (nc < b->n + len + 1)
			nc *= 2;
		p = realloc(b->p, nc);
		if (!p) {
			b->oom = true;
			return 0;
		}
		b->p = p;
		b->cap = nc;
	}
	memcpy(b->p + b->n, data, len);
	b->n += len;
	b->p[b->n] = '\0';
	return len;
}

/* Base64 of n bytes at p; NULL when out of memory. */
static char *b64enc(const void *p, size_t n)
{
	char *o = malloc(4 * ((n + 2) / 3) + 1);

	if (o)
		EVP_EncodeBlock((unsigned char *)o, p, (int)n);
	return o;
}

/* Decode base64 s (NULL: empty) into a new NUL-terminated buffer. */
static int b64dec(const char *s, char **out, size_t *len)
{
	size_t n = s ? strlen(s) : 0, pad = 0;
	int r = 0;

	*out = malloc(n / 4 * 3 + 1);
	if (!*out)
		return STORE_ENOMEM;
	if (n % 4)
		goto bad;
	if (n) {
		r = EVP_DecodeBlock((unsigned char *)*out,
				    (const unsigned char *)s, (int)n);
		if (r < 0)
			goto bad;
		pad = (s[n - 1] == '=') + (s[n - 2] == '=');
	}
	*len = (size_t)r - pad;
	(*out)[*len] = '\0';
	return 0;
bad:
	free(*out);
	*out = NULL;
	return STORE_EIO;
}

/* An int64 field of a gateway object: etcd sends them as strings. */
static int64_t jint(const json_t *o, const char *name)
{
	const json_t *v = json_object_get(o, name);

	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	if (json_is_integer(v))
		return json_integer_value(v);
	return 0;
}

static int64_t header_rev(const json_t *o)
{
	return jint(json_object_get(o, "header"), "revision");
}

/* Take ownership of a malloc'd base64 string into a JSON string. */
static json_t *jb64(const void *p, size_t n)
{
	char *e = b64enc(p, n);
	json_t *j;

	if (!e)
		return NULL;
	j = json_string_nocheck(e);
	free(e);
	return j;
}

/* ---- endpoints --------------------------------------------------- */

/* Parse one endpoint (scheme already split off) "host[:port][/]" into
 * "scheme://host:port". */
static int parse_hostport(const char *scheme, const char *p, size_t n,
			  char **out, char *err, size_t errlen)
{
	size_t h = 0, hn;
	const char *host = p;
	long port = 2379;

	if (n && p[n - 1] == '/')
		n--;
	if (n && p[0] == '[') {
		while (h < n && p[h] != ']')
			h++;
		if (h == n || h == 1)
			goto bad;
		h++;
	} else {
		while (h < n && p[h] != ':') {
			char c = p[h];

			if (!(c == '.' || c == '-' || c == '_' ||
			      (c >= '0' && c <= '9') ||
			      (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
				goto bad;
			h++;
		}
		if (h == 0)
			goto bad;
	}
	hn = h;
	if (h < n) {
		char *end;

		if (p[h] != ':' || h + 1 == n)
			goto bad;
		errno = 0;
		port = strtol(p + h + 1, &end, 10);
		if (end != p + n || errno || port < 1 || port > 65535)
			goto bad;
	}
	if (asprintf(out, "%s://%.*s:%ld", scheme, (int)hn, host, port) < 0) {
		*out = NULL;
		return STORE_ENOMEM;
	}
	return 0;
bad:
	store_errf(err, errlen,
		   "bad etcd endpoint \"%.*s\": want host, host:port or "
		   "[ipv6]:port",
		   (int)n, p);
	return STORE_EINVAL;
}

/* Split list (the forms store_parse_url accepts) into "scheme://host:port"
 * strings. On success *eps (n entries) is the caller's. */
static int parse_endpoints(const char *list, char ***eps, size_t *n, char *err,
			   size_t errlen)
{
	static const struct {
		const char *prefix, *scheme;
	} schemes[] = {{"etcd://", "http"},
		       {"etcds://", "https"},
		       {"http://", "http"},
		       {"https://", "https"}};
	const char *scheme = NULL, *p = list;
	size_t cap = 0;
	int rc = 0;

	*eps = NULL;
	*n = 0;
	while (rc == 0) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char *ep = NULL;

		while (len && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		for (size_t i = 0; i < sizeof schemes / sizeof schemes[0];
		     i++) {
			size_t pl = strlen(schemes[i].prefix);

			if (len >= pl &&
			    strncmp(p, schemes[i].prefix, pl) == 0) {
				scheme = schemes[i].scheme;
				p += pl;
				len -= pl;
				break;
			}
		}
		if (!scheme) {
			store_errf(err, errlen,
				   "\"%s\" names no store: use etcd://host:port"
				   "[,host:port...], etcds://... or "
				   "http(s)://host:port[,...]",
				   list);
			rc = STORE_EINVAL;
			break;
		}
		rc = parse_hostport(scheme, p, len, &ep, err, errlen);
		if (rc == 0 && *n == cap) {
			size_t nc = cap ? cap * 2 : 4;
			char **q = realloc(*eps, nc * sizeof(*q));

			if (!q) {
				free(ep);
				rc = STORE_ENOMEM;
			} else {
				*eps = q;
				cap = nc;
			}
		}
		if (rc == 0)
			(*eps)[(*n)++] = ep;
		if (!comma)
			break;
		p = comma + 1;
	}
	if (rc) {
		for (size_t i = 0; i < *n; i++)
			free((*eps)[i]);
		free(*eps);
		*eps = NULL;
		*n = 0;
	}
	return rc;
}

int store_parse_url(const char *url, store_options *o, char *err, size_t errlen)
{
	char **eps;
	size_t n;
	int rc;

	if (!url || !*url) {
		store_errf(err, errlen, "empty store URL");
		return STORE_EINVAL;
	}
	rc = parse_endpoints(url, &eps, &n, err, errlen);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++)
		free(eps[i]);
	free(eps);
	o->etcd_endpoints = url;
	return 0;
}

/* ---- the backend's state ----------------------------------------- */

/* A caller of store_current_revision_async. */
typedef struct revwait {
	store_rev_cb cb;
	void *arg;
	struct revwait *next;
} revwait;

/* A request on its way through the I/O thread: a store_req, or (r NULL)
 * the read of the current revision for the callers in revs. */
typedef struct ereq {
	store_req *r;
	revwait *revs;
	CURL *h;
	char *body;
	size_t body_len;
	buf resp;
	int ep;	   /* endpoint it was sent to */
	int tries; /* endpoints tried */
	char errbuf[CURL_ERROR_SIZE];
	int64_t wait_rev; /* etcd revision the watch must reach */
	int64_t wait_since;
	const char *path;      /* /v3/... */
	LIST_ENTRY(ereq) link; /* in flight */
} ereq;

typedef struct etcd {
	store *s;
	char **eps;
	size_t neps;
	int cur_ep; /* atomic */
	char *ca_file, *cert_file, *key_file;
	long timeout_ms;
	int64_t off; /* etcd_revision_offset */
	struct curl_slist *hdrs;

	/* Idle easy handles for calls made in callers' threads. */
	pthread_mutex_t pool_mu;
	CURL *pool[MAX_POOL];
	size_t npool;

	/* The I/O thread. */
	pthread_t io;
	bool io_started;
	CURLM *multi;
	pthread_mutex_t mu; /* queue, closing, lasterr */
	struct store_req_list queue;
	bool closing;
	char lasterr[512];
	LIST_HEAD(, ereq) inflight; /* I/O thread only, and the rest below */
	size_t ninflight, max_conns;
	struct store_req_list pending; /* taken from queue, not sent yet */
	revwait *revq;	   /* under mu: asked since the last read went out */
	bool rev_inflight; /* a read of the current revision is out */
	ereq **waiting;	   /* min-heap on wait_rev */
	size_t nwaiting, waitcap;
	int64_t pub; /* newest etcd revision published (atomic for readers) */
	CURL *wh;    /* the watch stream, NULL while down */
	buf wbuf;
	int wep;
	int64_t wstart;	     /* etcd revision the next stream starts from */
	int64_t wretry_at;   /* ms: when to reopen it */
	int64_t wbackoff;    /* ms */
	int64_t wrestart_at; /* last stall restart */
	char werr[CURL_ERROR_SIZE];
	char *wbody;

	/* The maintenance thread. */
	pthread_t maint;
	bool maint_started;
	pthread_cond_t cv; /* with mu: wakes it (closing, probe) */
	bool probe_now;
	store_autocompact ac;
	int64_t compact_e; /* etcd compact revision known (atomic) */

	int64_t dbsize; /* as last asked, under mu */

	/* The last history window read: every event of store revisions
	 * [hc_from, hc_to]. */
	pthread_mutex_t hc_mu;
	store_event **hc;
	size_t hc_n;
	int64_t hc_from, hc_to;
} etcd;

static int64_t to_etcd(const etcd *b, int64_t rev)
{
	return rev > 0 ? rev + b->off : rev;
}

static int64_t from_etcd(const etcd *b, int64_t rev)
{
	return rev > b->off ? rev - b->off : 0;
}

static void set_err(etcd *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_err(etcd *b, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&b->mu);
	va_start(ap, fmt);
	vsnprintf(b->lasterr, sizeof b->lasterr, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&b->mu);
}

static int cur_ep(etcd *b)
{
	return __atomic_load_n(&b->cur_ep, __ATOMIC_ACQUIRE);
}

/* Endpoint ep failed: move on to the next one (unless another thread
 * already did). */
static void next_ep(etcd *b, int ep)
{
	int want = ep;

	__atomic_compare_exchange_n(&b->cur_ep, &want,
				    (int)((size_t)(ep + 1) % b->neps), false,
				    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static void note_compact(etcd *b, int64_t crev_e)
{
	int64_t old = __atomic_load_n(&b->compact_e, __ATOMIC_ACQUIRE);

	while (crev_e > old &&
	       !__atomic_compare_exchange_n(&b->compact_e, &old, crev_e, false,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
	if (crev_e > b->off)
		store_set_compact_revision(b->s, from_etcd(b, crev_e));
}

/* ---- HTTP calls -------------------------------------------------- */

static void setup_handle(etcd *b, CURL *h, int ep, const char *path,
			 const char *body, size_t len, buf *resp, char *errbuf,
			 long timeout_ms)
{
	char url[512];

	snprintf(url, sizeof url, "%s%s", b->eps[ep], path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 5L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 2L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, b->hdrs);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 timeout_ms && timeout_ms < CONNECT_TIMEOUT_MS
			     ? timeout_ms
			     : (long)CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 0L);
	if (b->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, b->ca_file);
	if (b->cert_file)
		curl_easy_setopt(h, CURLOPT_SSLCERT, b->cert_file);
	if (b->key_file)
		curl_easy_setopt(h, CURLOPT_SSLKEY, b->key_file);
	errbuf[0] = '\0';
}

/* The store error for an etcd error message. */
static int map_etcd_error(const char *msg, int64_t code)
{
	static const struct {
		const char *text;
		int err;
	} map[] = {
	    {"requested lease not found", STORE_ENOLEASE},
	    {"required revision has been compacted", STORE_ECOMPACTED},
	    {"required revision is a future revision", STORE_EFUTURE},
	    {"request is too large", STORE_ETOOLARGE},
	    {"too many operations in txn", STORE_ETOOLARGE},
	    {"duplicate key given in txn", STORE_EDUPKEY},
	    {"database space exceeded", STORE_ENOSPC},
	    {"no leader", STORE_EUNAVAIL},
	    {"leader changed", STORE_EUNAVAIL},
	    {"timed out", STORE_EUNAVAIL},
	    {"not capable", STORE_EUNAVAIL},
	    {"unhealthy cluster", STORE_EUNAVAIL},
	    {"stopped", STORE_EUNAVAIL},
	};

	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strstr(msg, map[i].text))
			return map[i].err;
	if (code == 14) /* gRPC UNAVAILABLE */
		return STORE_EUNAVAIL;
	return STORE_EIO;
}

/* Is a curl error one where nothing reached etcd? */
static bool not_sent(CURLcode cc)
{
	return cc == CURLE_COULDNT_CONNECT ||
	       cc == CURLE_COULDNT_RESOLVE_HOST ||
	       cc == CURLE_SSL_CONNECT_ERROR;
}

/* Judge a finished HTTP call: 0 and *out (the parsed answer, the
 * caller's), or a store error with the reason noted. */
static int call_result(etcd *b, int ep, const char *path, CURLcode cc,
		       const char *errbuf, long status, buf *resp, json_t **out)
{
	json_error_t jerr;
	json_t *j;
	int rc;

	*out = NULL;
	if (resp->oom)
		return STORE_ENOMEM;
	if (cc != CURLE_OK) {
		set_err(b, "etcd %s%s: %s", b->eps[ep], path,
			errbuf[0] ? errbuf : curl_easy_strerror(cc));
		return cc == CURLE_OUT_OF_MEMORY ? STORE_ENOMEM
						 : STORE_EUNAVAIL;
	}
	j = json_loadb(resp->p ? resp->p : "", resp->n, 0, &jerr);
	if (!j || !json_is_object(j)) {
		set_err(b, "etcd %s%s: HTTP %ld, not an etcd answer: %.80s",
			b->eps[ep], path, status, resp->p ? resp->p : "");
		json_decref(j);
		return status >= 500 ? STORE_EUNAVAIL : STORE_EIO;
	}
	if (status != 200 || json_object_get(j, "error")) {
		const char *msg =
		    json_string_value(json_object_get(j, "error"));

		if (!msg)
			msg = json_string_value(json_object_get(
			    json_object_get(j, "error"), "message"));
		if (!msg)
			msg = "unknown error";
		rc = map_etcd_error(msg, jint(j, "code"));
		set_err(b, "etcd %s%s: %s", b->eps[ep], path, msg);
		json_decref(j);
		return rc;
	}
	*out = j;
	return 0;
}

static CURL *pool_get(etcd *b)
{
	CURL *h = NULL;

	pthread_mutex_lock(&b->pool_mu);
	if (b->npool)
		h = b->pool[--b->npool];
	pthread_mutex_unlock(&b->pool_mu);
	return h ? h : curl_easy_init();
}

static void pool_put(etcd *b, CURL *h)
{
	pthread_mutex_lock(&b->pool_mu);
	if (b->npool < MAX_POOL) {
		b->pool[b->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&b->pool_mu);
	if (h)
		curl_easy_cleanup(h);
}

/* POST req (taken) to path on the current endpoint, failing over, in the
 * calling thread. A read (idempotent) is retried on the next endpoint
 * whatever went wrong in transport; a write only if it was never sent. */
static int ecall(etcd *b, const char *path, json_t *req, bool idempotent,
		 json_t **out)
{
	char errbuf[CURL_ERROR_SIZE];
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	int rc = STORE_EUNAVAIL;
	CURL *h;

	*out = NULL;
	json_decref(req);
	if (!body)
		return STORE_ENOMEM;
	h = pool_get(b);
	if (!h) {
		free(body);
		return STORE_ENOMEM;
	}
	for (size_t tries = 0; tries < b->neps; tries++) {
		int ep = cur_ep(b);
		buf resp = {0};
		long status = 0;
		CURLcode cc;

		setup_handle(b, h, ep, path, body, strlen(body), &resp, errbuf,
			     b->timeout_ms);
		cc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		rc = call_result(b, ep, path, cc, errbuf, status, &resp, out);
		buf_free(&resp);
		if (rc != STORE_EUNAVAIL)
			break;
		next_ep(b, ep);
		if (!idempotent && !not_sent(cc))
			break;
	}
	pool_put(b, h);
	free(body);
	return rc;
}

/* ---- key-values and events from JSON ----------------------------- */

static int kv_from_json(etcd *b, const json_t *j, store_kv *kv)
{
	size_t klen;
	int rc;

	memset(kv, 0, sizeof(*kv));
	rc = b64dec(json_string_value(json_object_get(j, "key")), &kv->key,
		    &klen);
	if (rc == 0)
		rc = b64dec(json_string_value(json_object_get(j, "value")),
			    &kv->value, &kv->value_len);
	if (rc) {
		store_kv_clear(kv);
		return rc;
	}
	kv->create_revision = from_etcd(b, jint(j, "create_revision"));
	kv->mod_revision = from_etcd(b, jint(j, "mod_revision"));
	kv->version = jint(j, "version");
	kv->lease = jint(j, "lease");
	return 0;
}

/* The kvs of a JSON array (may be NULL) into *kvs, *n. */
static int kvs_from_json(etcd *b, const json_t *arr, store_kv **kvs, size_t *n)
{
	size_t cnt = json_array_size(arr);
	int rc = 0;

	*kvs = NULL;
	*n = 0;
	if (!cnt)
		return 0;
	*kvs = calloc(cnt, sizeof(**kvs));
	if (!*kvs)
		return STORE_ENOMEM;
	for (size_t i = 0; i < cnt && rc == 0; i++) {
		rc = kv_from_json(b, json_array_get(arr, i), &(*kvs)[i]);
		if (rc == 0)
			(*n)++;
	}
	if (rc) {
		for (size_t i = 0; i < *n; i++)
			store_kv_clear(&(*kvs)[i]);
		free(*kvs);
		*kvs = NULL;
		*n = 0;
	}
	return rc;
}

static store_event *event_from_json(etcd *b, const json_t *ev)
{
	const json_t *kv = json_object_get(ev, "kv");
	const char *type = json_string_value(json_object_get(ev, "type"));
	bool del = type && strcmp(type, "DELETE") == 0;
	store_event *e = NULL;
	char *key = NULL, *val = NULL;
	size_t klen, vlen = 0;

	if (b64dec(json_string_value(json_object_get(kv, "key")), &key,
		   &klen) == 0 &&
	    (del || b64dec(json_string_value(json_object_get(kv, "value")),
			   &val, &vlen) == 0))
		e = store_event_new(
		    del ? STORE_EVENT_DELETE : STORE_EVENT_PUT, key, val, vlen,
		    del ? 0 : from_etcd(b, jint(kv, "create_revision")),
		    from_etcd(b, jint(kv, "mod_revision")),
		    del ? 0 : jint(kv, "version"), del ? 0 : jint(kv, "lease"));
	free(key);
	free(val);
	return e;
}

static int event_key_cmp(const void *a, const void *b)
{
	const store_event *x = *(store_event *const *)a;
	const store_event *y = *(store_event *const *)b;

	return strcmp(x->kv.key, y->kv.key);
}

/* The events of a watch response, in (revision, key) order. */
static int events_from_json(etcd *b, const json_t *arr, store_event ***evs,
			    size_t *n)
{
	size_t cnt = json_array_size(arr), i, j;

	*n = 0;
	*evs = cnt ? malloc(cnt * sizeof(**evs)) : NULL;
	if (cnt && !*evs)
		return STORE_ENOMEM;
	for (i = 0; i < cnt; i++) {
		store_event *e = event_from_json(b, json_array_get(arr, i));

		if (!e) {
			store_events_free(*evs, *n);
			*evs = NULL;
			*n = 0;
			return STORE_ENOMEM;
		}
		(*evs)[(*n)++] = e;
	}
	/* etcd sends a txn's events in op order: sort each revision. */
	for (i = 0; i < cnt; i = j) {
		for (j = i + 1; j < cnt && (*evs)[j]->kv.mod_revision ==
					       (*evs)[i]->kv.mod_revision;
		     j++)
			;
		if (j - i > 1)
			qsort(*evs + i, j - i, sizeof(**evs), event_key_cmp);
	}
	return 0;
}

/* ---- building requests ------------------------------------------- */

/* Set "key" and, for an interval, "range_end" on o. */
static int set_interval(json_t *o, const char *key, const char *end)
{
	if (json_object_set_new(o, "key", jb64(key, strlen(key))))
		return STORE_ENOMEM;
	if (end && json_object_set_new(o, "range_end",
				       *end ? jb64(end, strlen(end))
					    : json_string(B64_NUL)))
		return STORE_ENOMEM;
	return 0;
}

static json_t *op_json(etcd *b, const store_op *o)
{
	json_t *in = json_object(), *out = json_object();
	const char *name = NULL;
	int rc = in && out ? 0 : STORE_ENOMEM;

	if (rc == 0)
		rc = set_interval(in, o->key,
				  o->type == STORE_OP_PUT ? NULL : o->end);
	switch (o->type) {
	case STORE_OP_GET:
		name = "request_range";
		break;
	case STORE_OP_PUT:
		name = "request_put";
		if (rc == 0 && json_object_set_new(
				   in, "value", jb64(o->value, o->value_len)))
			rc = STORE_ENOMEM;
		if (rc == 0 && o->lease &&
		    json_object_set_new(in, "lease", json_integer(o->lease)))
			rc = STORE_ENOMEM;
		break;
	case STORE_OP_DELETE:
		name = "request_delete_range";
		break;
	}
	if (rc == 0 && o->prev_kv && o->type != STORE_OP_GET &&
	    json_object_set_new(in, "prev_kv", json_true()))
		rc = STORE_ENOMEM;
	if (rc == 0 && json_object_set_new(out, name, in) == 0)
		return out;
	json_decref(out);
	return NULL;
}

static json_t *ops_json(etcd *b, const store_op *ops, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, op_json(b, &ops[i]))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *cmp_json(etcd *b, const store_cmp *c)
{
	static const char *const target[] = {"MOD", "CREATE", "VERSION"};
	static const char *const field[] = {"mod_revision", "create_revision",
					    "version"};
	static const char *const result[] = {"EQUAL", "NOT_EQUAL", "LESS",
					     "GREATER"};
	int64_t v =
	    c->target == STORE_CMP_VERSION ? c->value : to_etcd(b, c->value);
	json_t *o = json_object();

	if (o && set_interval(o, c->key, NULL) == 0 &&
	    json_object_set_new(o, "target", json_string(target[c->target])) ==
		0 &&
	    json_object_set_new(o, "result", json_string(result[c->op])) == 0 &&
	    json_object_set_new(o, field[c->target], json_integer(v)) == 0)
		return o;
	json_decref(o);
	return NULL;
}

static json_t *txn_json(etcd *b, const store_txn *t)
{
	json_t *o = json_object(), *cmps = json_array();

	for (size_t i = 0; cmps && i < t->ncmps; i++)
		if (json_array_append_new(cmps, cmp_json(b, &t->cmps[i]))) {
			json_decref(cmps);
			cmps = NULL;
		}
	if (o && cmps && json_object_set_new(o, "compare", cmps) == 0 &&
	    json_object_set_new(o, "success",
				ops_json(b, t->success, t->nsuccess)) == 0 &&
	    json_object_set_new(o, "failure",
				ops_json(b, t->failure, t->nfailure)) == 0)
		return o;
	if (!o)
		json_decref(cmps);
	json_decref(o);
	return NULL;
}

/* A txn that is one unconditional put or delete. */
static bool single_write(const store_txn *t)
{
	return t->ncmps == 0 && t->nsuccess == 1 &&
	       t->success[0].type != STORE_OP_GET;
}

/* The path and body of a queued request; the body is the caller's. */
static int req_body(etcd *b, const store_req *r, const char **path, char **body)
{
	json_t *j = NULL;

	switch (r->kind) {
	case STORE_REQ_TXN:
		*path = "/v3/kv/txn";
		if (single_write(r->txn)) {
			/* The gateway decodes a plain put or delete at about
			 * twice the rate of a txn holding one. */
			json_t *op = op_json(b, &r->txn->success[0]);
			const char *k =
			    op ? json_object_iter_key(json_object_iter(op))
			       : "";

			*path = strcmp(k, "request_put") == 0
				    ? "/v3/kv/put"
				    : "/v3/kv/deleterange";
			j = json_incref(json_object_get(op, k));
			json_decref(op);
		} else {
			j = txn_json(b, r->txn);
		}
		break;
	case STORE_REQ_LEASE_GRANT:
		*path = "/v3/lease/grant";
		j = json_pack("{sI}", "TTL", (json_int_t)r->arg);
		break;
	case STORE_REQ_LEASE_REVOKE:
		*path = "/v3/lease/revoke";
		j = json_pack("{sI}", "ID", (json_int_t)r->arg);
		break;
	case STORE_REQ_COMPACT:
		*path = "/v3/kv/compaction";
		j = json_pack("{sIsb}", "revision",
			      (json_int_t)to_etcd(b, r->arg), "physical", 0);
		break;
	default:
		return STORE_EINVAL;
	}
	*body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return *body ? 0 : STORE_ENOMEM;
}

/* Fill r->res from a txn answer. */
static int txn_result(etcd *b, const store_txn *t, const json_t *j,
		      store_txn_result *res)
{
	const json_t *resps = json_object_get(j, "responses");
	const store_op *ops;
	bool wrote = false;
	size_t nops;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	res->succeeded = json_is_true(json_object_get(j, "succeeded"));
	ops = res->succeeded ? t->success : t->failure;
	nops = res->succeeded ? t->nsuccess : t->nfailure;
	if (json_array_size(resps) != nops)
		return STORE_EIO;
	if (nops) {
		res->results = calloc(nops, sizeof(*res->results));
		if (!res->results)
			return STORE_ENOMEM;
		res->nresults = nops;
	}
	for (size_t i = 0; i < nops && rc == 0; i++) {
		const json_t *e = json_array_get(resps, i), *x;
		store_op_result * or = &res->results[i];

		switch (ops[i].type) {
		case STORE_OP_GET:
			x = json_object_get(e, "response_range");
			rc = kvs_from_json(b, json_object_get(x, "kvs"),
					   & or->kvs, & or->count);
			break;
		case STORE_OP_PUT:
			wrote = true;
			x = json_object_get(json_object_get(e, "response_put"),
					    "prev_kv");
			if (x && ops[i].prev_kv) {
				or->kvs = calloc(1, sizeof(* or->kvs));
				rc = or->kvs ? kv_from_json(b, x, or->kvs)
					     : STORE_ENOMEM;
				or->count = rc == 0;
			}
			break;
		case STORE_OP_DELETE:
			x = json_object_get(e, "response_delete_range");
			or->deleted = jint(x, "deleted");
			wrote = wrote || or->deleted > 0;
			if (ops[i].prev_kv)
				rc = kvs_from_json(
				    b, json_object_get(x, "prev_kvs"),
				    & or->kvs, & or->count);
			break;
		}
	}
	(void)wrote; /* the header revision is the txn's own when it wrote */
	res->revision = from_etcd(b, header_rev(j));
	if (rc)
		store_txn_result_free(res);
	return rc;
}

/* ---- the I/O thread: requests ------------------------------------ */

static void heap_push(etcd *b, ereq *e)
{
	size_t i;

	if (b->nwaiting == b->waitcap) {
		size_t nc = b->waitcap ? b->waitcap * 2 : 64;
		ereq **p = realloc(b->waiting, nc * sizeof(*p));

		if (!p) {
			/* Cannot wait: complete now (rare; memory is gone). */
			e->r->err = STORE_ENOMEM;
			store_txn_result_free(&e->r->res);
			store_req_done(e->r);
			free(e);
			return;
		}
		b->waiting = p;
		b->waitcap = nc;
	}
	i = b->nwaiting++;
	while (i > 0 && b->waiting[(i - 1) / 2]->wait_rev > e->wait_rev) {
		b->waiting[i] = b->waiting[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	b->waiting[i] = e;
}

static ereq *heap_pop(etcd *b)
{
	ereq *top = b->waiting[0], *last = b->waiting[--b->nwaiting];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= b->nwaiting)
			break;
		if (c + 1 < b->nwaiting &&
		    b->waiting[c + 1]->wait_rev < b->waiting[c]->wait_rev)
			c++;
		if (last->wait_rev <= b->waiting[c]->wait_rev)
			break;
		b->waiting[i] = b->waiting[c];
		i = c;
	}
	if (b->nwaiting)
		b->waiting[i] = last;
	return top;
}

/* Complete the requests whose revision the watch has published. */
static void complete_waiting(etcd *b)
{
	while (b->nwaiting && b->waiting[0]->wait_rev <= b->pub) {
		ereq *e = heap_pop(b);

		store_req_done(e->r);
		free(e);
	}
}

static void ereq_free(etcd *b, ereq *e)
{
	if (e->h) {
		curl_multi_remove_handle(b->multi, e->h);
		curl_easy_cleanup(e->h);
	}
	free(e->body);
	buf_free(&e->resp);
	free(e);
}

static int ereq_send(etcd *b, ereq *e)
{
	if (!e->h)
		e->h = curl_easy_init();
	if (!e->h)
		return STORE_ENOMEM;
	buf_free(&e->resp);
	e->ep = cur_ep(b);
	e->tries++;
	setup_handle(b, e->h, e->ep, e->path, e->body, e->body_len, &e->resp,
		     e->errbuf, b->timeout_ms);
	curl_easy_setopt(e->h, CURLOPT_PRIVATE, e);
	if (curl_multi_add_handle(b->multi, e->h) != CURLM_OK)
		return STORE_ENOMEM;
	LIST_INSERT_HEAD(&b->inflight, e, link);
	b->ninflight++;
	return 0;
}

/* Start a queued request. */
static void ereq_start(etcd *b, store_req *r)
{
	ereq *e = calloc(1, sizeof(*e));
	int rc;

	if (!e) {
		r->err = STORE_ENOMEM;
		store_req_done(r);
		return;
	}
	e->r = r;
	rc = req_body(b, r, &e->path, &e->body);
	if (rc == 0) {
		e->body_len = strlen(e->body);
		rc = ereq_send(b, e);
	}
	if (rc) {
		r->err = rc;
		ereq_free(b, e);
		store_req_done(r);
	}
}

/* Answer the callers of a read of the current revision, and free it. */
static void revs_done(etcd *b, ereq *e, int err, int64_t rev_e)
{
	revwait *w = e->revs, *nx;

	for (; w; w = nx) {
		nx = w->next;
		w->cb(err, err ? 0 : from_etcd(b, rev_e), w->arg);
		free(w);
	}
	b->rev_inflight = false;
	if (e->h)
		curl_easy_cleanup(e->h);
	free(e->body);
	buf_free(&e->resp);
	free(e);
}

/* Send one read of the current revision for every caller in revs. */
static void revs_start(etcd *b, revwait *revs)
{
	static const char body[] =
	    "{\"key\":\"" B64_NUL "\",\"count_only\":true}";
	ereq *e = calloc(1, sizeof(*e));

	b->rev_inflight = true;
	if (!e) {
		for (revwait *w = revs, *nx; w; w = nx) {
			nx = w->next;
			w->cb(STORE_ENOMEM, 0, w->arg);
			free(w);
		}
		b->rev_inflight = false;
		return;
	}
	e->revs = revs;
	e->path = "/v3/kv/range";
	e->body = strdup(body);
	e->body_len = sizeof body - 1;
	if (!e->body || ereq_send(b, e) != 0)
		revs_done(b, e, STORE_ENOMEM, 0);
}

/* A request's HTTP call is over. */
static void ereq_finished(etcd *b, ereq *e, CURLcode cc)
{
	store_req *r = e->r;
	long status = 0;
	json_t *j = NULL;
	int rc;

	LIST_REMOVE(e, link);
	b->ninflight--;
	curl_easy_getinfo(e->h, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(b->multi, e->h);
	rc =
	    call_result(b, e->ep, e->path, cc, e->errbuf, status, &e->resp, &j);
	if (rc == STORE_EUNAVAIL) {
		next_ep(b, e->ep);
		if ((!r || not_sent(cc)) && (size_t)e->tries < b->neps &&
		    ereq_send(b, e) == 0)
			return;
	}
	if (!r) {
		revs_done(b, e, rc, rc == 0 ? header_rev(j) : 0);
		json_decref(j);
		return;
	}
	r->err = rc;
	if (rc == 0) {
		switch (r->kind) {
		case STORE_REQ_TXN:
			if (single_write(r->txn)) {
				/* As the answer of a txn holding it. */
				json_t *t = json_pack(
				    "{sbsO?s[{sO}]}", "succeeded", 1, "header",
				    json_object_get(j, "header"), "responses",
				    r->txn->success[0].type == STORE_OP_PUT
					? "response_put"
					: "response_delete_range",
				    j);

				json_decref(j);
				j = t;
			}
			r->err = j ? txn_result(b, r->txn, j, &r->res)
				   : STORE_ENOMEM;
			break;
		case STORE_REQ_LEASE_GRANT:
			r->out = jint(j, "ID");
			if (!r->out)
				r->err = STORE_EIO;
			break;
		case STORE_REQ_LEASE_REVOKE:
			break;
		case STORE_REQ_COMPACT:
			note_compact(b, to_etcd(b, r->arg));
			break;
		}
	}
	e->wait_rev =
	    r->err == 0 && r->kind != STORE_REQ_COMPACT ? header_rev(j) : 0;
	json_decref(j);
	curl_easy_cleanup(e->h);
	e->h = NULL;
	free(e->body);
	e->body = NULL;
	buf_free(&e->resp);
	if (e->wait_rev > b->pub) {
		e->wait_since = now_ms();
		heap_push(b, e);
		return;
	}
	store_req_done(r);
	free(e);
}

/* ---- the I/O thread: the watch stream ---------------------------- */

/* Publish the events of one watch response, a revision at a time. */
static void publish_events(etcd *b, const json_t *arr)
{
	store_event **evs;
	size_t n, i, j;

	if (events_from_json(b, arr, &evs, &n) != 0) {
		/* Out of memory: drop the stream and read these again. */
		set_err(b, "out of memory reading the etcd watch");
		return;
	}
	for (i = 0; i < n; i = j) {
		int64_t rev = evs[i]->kv.mod_revision;
		store_event **grp;

		for (j = i + 1; j < n && evs[j]->kv.mod_revision == rev; j++)
			;
		if (to_etcd(b, rev) <= b->pub) {
			/* Published already (never expected: the stream
			 * starts after pub); publishing twice would break
			 * the ring. */
			for (size_t k = i; k < j; k++)
				store_event_unref(evs[k]);
			continue;
		}
		grp = malloc((j - i) * sizeof(*grp));
		if (!grp) {
			/* The rest is lost for us: restart from here. */
			for (size_t k = i; k < n; k++)
				store_event_unref(evs[k]);
			break;
		}
		memcpy(grp, evs + i, (j - i) * sizeof(*grp));
		store_publish(b->s, grp, j - i, rev);
		__atomic_store_n(&b->pub, to_etcd(b, rev), __ATOMIC_RELEASE);
		b->wstart = b->pub + 1;
	}
	free(evs);
}

static void watch_stop(etcd *b)
{
	if (!b->wh)
		return;
	curl_multi_remove_handle(b->multi, b->wh);
	curl_easy_cleanup(b->wh);
	b->wh = NULL;
	buf_free(&b->wbuf);
	free(b->wbody);
	b->wbody = NULL;
}

/* One line of the stream: a WatchResponse, or an error. Returns false if
 * the stream must be dropped (and reopened from b->wstart). */
static bool watch_line(etcd *b, const char *line, size_t len)
{
	json_t *j = json_loadb(line, len, 0, NULL), *res;
	bool keep = true;

	if (!j)
		return len == 0;
	res = json_object_get(j, "result");
	if (!res) {
		const char *msg = json_string_value(
		    json_object_get(json_object_get(j, "error"), "message"));

		set_err(b, "etcd %s/v3/watch: %s", b->eps[b->wep],
			msg ? msg : "error");
		keep = false;
	} else if (jint(res, "compact_revision") > 0) {
		/* We fell behind a compaction (down too long): what lies
		 * between is lost; watchers there get STORE_ECOMPACTED. */
		int64_t c = jint(res, "compact_revision");

		note_compact(b, c);
		if (b->wstart < c)
			b->wstart = c;
		if (c - 1 > b->pub) {
			/* Move on past the lost revisions, with no events, so
			 * that writes waiting for them complete. */
			store_publish(b->s, NULL, 0, from_etcd(b, c - 1));
			__atomic_store_n(&b->pub, c - 1, __ATOMIC_RELEASE);
			complete_waiting(b);
		}
		keep = false;
	} else if (json_is_true(json_object_get(res, "canceled"))) {
		keep = false;
	} else {
		b->wbackoff = 0;
		publish_events(b, json_object_get(res, "events"));
		complete_waiting(b);
	}
	json_decref(j);
	return keep;
}

static size_t watch_write(char *data, size_t size, size_t nmemb, void *arg)
{
	etcd *b = arg;
	size_t len = size * nmemb, start = 0;

	if (buf_write(data, size, nmemb, &b->wbuf) != len)
		return 0;
	for (size_t i = b->wbuf.n - len; i < b->wbuf.n; i++) {
		if (b->wbuf.p[i] != '\n')
			continue;
		if (!watch_line(b, b->wbuf.p + start, i - start))
			return 0; /* abort the transfer: reopened later */
		start = i + 1;
	}
	memmove(b->wbuf.p, b->wbuf.p + start, b->wbuf.n - start);
	b->wbuf.n -= start;
	return len;
}

static void watch_start(etcd *b)
{
	json_t *j = json_pack("{s{sssssI}}", "create_request", "key", B64_NUL,
			      "range_end", B64_NUL, "start_revision",
			      (json_int_t)b->wstart);

	b->wbody = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	b->wh = curl_easy_init();
	if (!b->wbody || !b->wh) {
		watch_stop(b);
		b->wretry_at = now_ms() + 100;
		return;
	}
	b->wep = cur_ep(b);
	setup_handle(b, b->wh, b->wep, "/v3/watch", b->wbody, strlen(b->wbody),
		     &b->wbuf, b->werr, 0);
	curl_easy_setopt(b->wh, CURLOPT_WRITEFUNCTION, watch_write);
	curl_easy_setopt(b->wh, CURLOPT_WRITEDATA, b);
	if (curl_multi_add_handle(b->multi, b->wh) != CURLM_OK) {
		watch_stop(b);
		b->wretry_at = now_ms() + 100;
	}
}

static void watch_finished(etcd *b, CURLcode cc)
{
	long status = 0;

	curl_easy_getinfo(b->wh, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK && cc != CURLE_WRITE_ERROR) {
		set_err(b, "etcd %s/v3/watch: %s", b->eps[b->wep],
			b->werr[0] ? b->werr : curl_easy_strerror(cc));
		next_ep(b, b->wep);
	} else if (status != 200) {
		set_err(b, "etcd %s/v3/watch: HTTP %ld", b->eps[b->wep],
			status);
		next_ep(b, b->wep);
	}
	watch_stop(b);
	b->wretry_at = now_ms() + b->wbackoff;
	b->wbackoff = b->wbackoff ? b->wbackoff * 2 : 50;
	if (b->wbackoff > 1000)
		b->wbackoff = 1000;
}

/* Writes waiting long for their events: the stream may be stuck (a
 * member cut off from the cluster keeps it open and silent). */
static void watch_check_stall(etcd *b)
{
	int64_t now = now_ms();

	/* Writes whose events do not come at all (etcd gone for good after
	 * it applied them): fail them rather than wait forever. Their outcome
	 * is unknown to the caller (store.h: STORE_EUNAVAIL); if the events
	 * come later, they are published then. */
	while (b->nwaiting &&
	       now - b->waiting[0]->wait_since > 4 * b->timeout_ms) {
		ereq *e = heap_pop(b);

		set_err(b,
			"etcd %s/v3/watch: the events of revision %lld did "
			"not arrive within %ld ms",
			b->eps[b->wep], (long long)e->wait_rev,
			4 * b->timeout_ms);
		store_txn_result_free(&e->r->res);
		e->r->err = STORE_EUNAVAIL;
		store_req_done(e->r);
		free(e);
	}
	if (!b->wh || !b->nwaiting ||
	    now - b->waiting[0]->wait_since < WATCH_STALL_MS ||
	    now - b->wrestart_at < WATCH_STALL_MS)
		return;
	set_err(b,
		"etcd %s/v3/watch: no events for %d ms while writes "
		"wait; reopening the watch",
		b->eps[b->wep], WATCH_STALL_MS);
	b->wrestart_at = now;
	watch_stop(b);
	next_ep(b, b->wep);
	b->wretry_at = now;
}

/* ---- the I/O thread ---------------------------------------------- */

static void fail_all(etcd *b, struct store_req_list *reqs)
{
	store_req *r;

	while ((r = STAILQ_FIRST(reqs))) {
		STAILQ_REMOVE_HEAD(reqs, link);
		r->err = STORE_ECLOSED;
		store_req_done(r);
	}
}

static void *io_main(void *arg)
{
	etcd *b = arg;
	int64_t close_deadline = 0;
	revwait *unasked;

	for (;;) {
		store_req *r;
		CURLMsg *msg;
		int running, left;
		bool closing;

		revwait *revs = NULL;

		pthread_mutex_lock(&b->mu);
		STAILQ_CONCAT(&b->pending, &b->queue);
		closing = b->closing;
		if (!b->rev_inflight) {
			revs = b->revq;
			b->revq = NULL;
		}
		pthread_mutex_unlock(&b->mu);
		if (revs)
			revs_start(b, revs);
		/* No more at once than there are connections: a request's
		 * timeout then counts from when it is sent. */
		while (b->ninflight < b->max_conns &&
		       (r = STAILQ_FIRST(&b->pending))) {
			STAILQ_REMOVE_HEAD(&b->pending, link);
			ereq_start(b, r);
		}
		if (closing && !close_deadline)
			close_deadline = now_ms() + b->timeout_ms + 1000;
		if (closing && ((LIST_EMPTY(&b->inflight) && !b->nwaiting &&
				 STAILQ_EMPTY(&b->pending) && !revs) ||
				now_ms() > close_deadline))
			break;
		if (!b->wh && now_ms() >= b->wretry_at)
			watch_start(b);
		curl_multi_perform(b->multi, &running);
		while ((msg = curl_multi_info_read(b->multi, &left))) {
			ereq *e = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			if (msg->easy_handle == b->wh) {
				watch_finished(b, msg->data.result);
				continue;
			}
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  (char **)&e);
			ereq_finished(b, e, msg->data.result);
		}
		watch_check_stall(b);
		curl_multi_poll(b->multi, NULL, 0, b->wh ? 100 : 20, NULL);
	}
	/* Closing: whatever is left fails. */
	for (size_t i = 0; i < b->nwaiting; i++) {
		ereq *e = b->waiting[i];

		store_txn_result_free(&e->r->res);
		e->r->err = STORE_ECLOSED;
		store_req_done(e->r);
		free(e);
	}
	b->nwaiting = 0;
	while (!LIST_EMPTY(&b->inflight)) {
		ereq *e = LIST_FIRST(&b->inflight);

		LIST_REMOVE(e, link);
		curl_multi_remove_handle(b->multi, e->h);
		if (!e->r) {
			revs_done(b, e, STORE_ECLOSED, 0);
			continue;
		}
		e->r->err = STORE_ECLOSED;
		store_req_done(e->r);
		ereq_free(b, e);
	}
	watch_stop(b);
	pthread_mutex_lock(&b->mu);
	STAILQ_CONCAT(&b->pending, &b->queue);
	pthread_mutex_unlock(&b->mu);
	fail_all(b, &b->pending);
	pthread_mutex_lock(&b->mu);
	unasked = b->revq;
	b->revq = NULL;
	pthread_mutex_unlock(&b->mu);
	for (revwait *nx; unasked; unasked = nx) {
		nx = unasked->next;
		unasked->cb(STORE_ECLOSED, 0, unasked->arg);
		free(unasked);
	}
	return NULL;
}

static int e_submit(void *be, store_req *r)
{
	etcd *b = be;
	int rc = 0;

	pthread_mutex_lock(&b->mu);
	if (b->closing) {
		rc = STORE_ECLOSED;
	} else {
		STAILQ_INSERT_TAIL(&b->queue, r, link);
		curl_multi_wakeup(b->multi); /* never blocks */
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

/* ---- reads, in the caller's thread ------------------------------- */

static void wake_probe(etcd *b)
{
	pthread_mutex_lock(&b->mu);
	b->probe_now = true;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static int e_range(void *be, const char *key, const char *end, int64_t revision,
		   int64_t limit, store_range_result *out)
{
	etcd *b = be;
	json_t *req = json_object(), *j = NULL;
	int rc = req ? set_interval(req, key, end) : STORE_ENOMEM;

	if (rc == 0 && revision &&
	    json_object_set_new(req, "revision",
				json_integer(to_etcd(b, revision))))
		rc = STORE_ENOMEM;
	if (rc == 0 && limit &&
	    json_object_set_new(req, "limit", json_integer(limit)))
		rc = STORE_ENOMEM;
	if (rc) {
		json_decref(req);
		return rc;
	}
	rc = ecall(b, "/v3/kv/range", req, true, &j);
	if (rc == STORE_ECOMPACTED)
		wake_probe(b);
	if (rc == 0)
		rc = kvs_from_json(b, json_object_get(j, "kvs"), &out->kvs,
				   &out->count);
	if (rc == 0) {
		out->more = json_is_true(json_object_get(j, "more"));
		out->revision =
		    revision ? revision : from_etcd(b, header_rev(j));
	}
	json_decref(j);
	return rc;
}

/* Is [key, end) empty of every key? A helper for compaction probes:
 * range one key that cannot exist ("\0") at etcd revision rev_e. */
static int probe_rev(etcd *b, int64_t rev_e, int64_t *head)
{
	json_t *j = NULL;
	int rc = ecall(b, "/v3/kv/range",
		       json_pack("{sssbsI}", "key", B64_NUL, "count_only", 1,
				 "revision", (json_int_t)rev_e),
		       true, &j);

	if (rc == 0 && head)
		*head = header_rev(j);
	json_decref(j);
	return rc;
}

static int e_current_revision_async(void *be, store_rev_cb cb, void *arg)
{
	etcd *b = be;
	revwait *w = malloc(sizeof(*w));
	int rc = 0;

	if (!w)
		return STORE_ENOMEM;
	w->cb = cb;
	w->arg = arg;
	pthread_mutex_lock(&b->mu);
	if (b->closing) {
		rc = STORE_ECLOSED;
		free(w);
	} else {
		w->next = b->revq;
		b->revq = w;
		curl_multi_wakeup(b->multi);
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int e_current_revision(void *be, int64_t *rev)
{
	etcd *b = be;
	int64_t head = 0;
	int rc = probe_rev(b, 0, &head);

	if (rc == 0)
		*rev = from_etcd(b, head);
	return rc;
}

/* What a history read collects from its watch stream. */
typedef struct hist {
	etcd *b;
	int64_t from_e, to_e;
	buf line;
	store_event **evs;
	size_t n, cap;
	bool done;
	int err;
} hist;

static int hist_cmp(const void *a, const void *b)
{
	const store_event *x = *(store_event *const *)a;
	const store_event *y = *(store_event *const *)b;

	if (x->kv.mod_revision != y->kv.mod_revision)
		return x->kv.mod_revision < y->kv.mod_revision ? -1 : 1;
	return strcmp(x->kv.key, y->kv.key);
}

static int hist_events(hist *h, const json_t *arr)
{
	etcd *b = h->b;

	for (size_t i = 0; i < json_array_size(arr); i++) {
		const json_t *ev = json_array_get(arr, i);
		int64_t rev = jint(json_object_get(ev, "kv"), "mod_revision");
		store_event *e;

		if (rev >= h->to_e)
			h->done = true;
		if (rev > h->to_e || rev < h->from_e)
			continue;
		e = event_from_json(b, ev);
		if (!e)
			return STORE_ENOMEM;
		if (h->n == h->cap) {
			size_t nc = h->cap ? h->cap * 2 : 64;
			store_event **p = realloc(h->evs, nc * sizeof(*p));

			if (!p) {
				store_event_unref(e);
				return STORE_ENOMEM;
			}
			h->evs = p;
			h->cap = nc;
		}
		h->evs[h->n++] = e;
	}
	return 0;
}

static size_t hist_write(char *data, size_t size, size_t nmemb, void *arg)
{
	hist *h = arg;
	size_t len = size * nmemb, start = 0;

	if (buf_write(data, size, nmemb, &h->line) != len) {
		h->err = STORE_ENOMEM;
		return 0;
	}
	for (size_t i = h->line.n - len; i < h->line.n && !h->done; i++) {
		json_t *j, *res;

		if (h->line.p[i] != '\n')
			continue;
		j = json_loadb(h->line.p + start, i - start, 0, NULL);
		start = i + 1;
		res = json_object_get(j, "result");
		if (!res) {
			h->err = STORE_EIO;
			h->done = true;
		} else if (jint(res, "compact_revision") > 0) {
			note_compact(h->b, jint(res, "compact_revision"));
			h->err = STORE_ECOMPACTED;
			h->done = true;
		} else if (json_is_true(json_object_get(res, "canceled"))) {
			h->err = STORE_EIO;
			h->done = true;
		} else {
			h->err = hist_events(h, json_object_get(res, "events"));
			h->done = h->done || h->err;
		}
		json_decref(j);
	}
	if (h->done)
		return 0; /* enough: end the stream */
	memmove(h->line.p, h->line.p + start, h->line.n - start);
	h->line.n -= start;
	return len;
}

/* Read every event of etcd revisions [from_e, to_e] (the whole key space)
 * into *evs, *n, in (revision, key) order: an etcd watch from from_e, read
 * until to_e (every etcd revision has an event, so the stream reaches it),
 * then dropped. */
static int fetch_history(etcd *b, int64_t from_e, int64_t to_e,
			 store_event ***evs, size_t *n)
{
	char errbuf[CURL_ERROR_SIZE];
	json_t *req;
	char *body;
	hist h;
	int rc = STORE_EUNAVAIL;
	CURL *c;

	req = json_pack("{s{sssssI}}", "create_request", "key", B64_NUL,
			"range_end", B64_NUL, "start_revision",
			(json_int_t)from_e);
	body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	c = body ? pool_get(b) : NULL;
	if (!c) {
		free(body);
		return STORE_ENOMEM;
	}
	for (size_t tries = 0; tries < b->neps; tries++) {
		int ep = cur_ep(b);
		CURLcode cc;

		memset(&h, 0, sizeof(h));
		h.b = b;
		h.from_e = from_e;
		h.to_e = to_e;
		setup_handle(b, c, ep, "/v3/watch", body, strlen(body), NULL,
			     errbuf, HISTORY_TIMEOUT_MS);
		/* A member that stops sending is given up on sooner. */
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
				 b->timeout_ms / 1000 + 1);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hist_write);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &h);
		cc = curl_easy_perform(c);
		buf_free(&h.line);
		if (h.done) {
			rc = h.err;
		} else {
			rc = cc == CURLE_OUT_OF_MEMORY ? STORE_ENOMEM
						       : STORE_EUNAVAIL;
			set_err(b, "etcd %s/v3/watch (history): %s", b->eps[ep],
				cc == CURLE_OK ? "the stream ended early"
				: errbuf[0]    ? errbuf
					       : curl_easy_strerror(cc));
			next_ep(b, ep);
		}
		if (rc == 0)
			break;
		store_events_free(h.evs, h.n);
		h.evs = NULL;
		h.n = 0;
		if (rc != STORE_EUNAVAIL)
			break;
	}
	pool_put(b, c);
	free(body);
	if (rc == 0) {
		qsort(h.evs, h.n, sizeof(*h.evs), hist_cmp);
		*evs = h.evs;
		*n = h.n;
	}
	return rc;
}

/* The events of all[] at store revisions [from_s, to_s] in [key, end),
 * with a reference each, into a new array. */
static int pick_events(store_event **all, size_t nall, int64_t from_s,
		       int64_t to_s, const char *key, const char *end,
		       store_event ***evs, size_t *n)
{
	size_t cap = 0;

	*evs = NULL;
	*n = 0;
	for (size_t i = 0; i < nall; i++) {
		store_event *e = all[i];

		if (e->kv.mod_revision < from_s || e->kv.mod_revision > to_s ||
		    !store_key_in(e->kv.key, key, end))
			continue;
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			store_event **p = realloc(*evs, nc * sizeof(*p));

			if (!p) {
				store_events_free(*evs, *n);
				*evs = NULL;
				*n = 0;
				return STORE_ENOMEM;
			}
			*evs = p;
			cap = nc;
		}
		store_event_ref(e);
		(*evs)[(*n)++] = e;
	}
	return 0;
}

/* Events of [from_rev, to_rev] in [key, end). etcd makes a watch that
 * starts in the past wait for its next sync (up to 100 ms), and watchers
 * catching up call this again and again over the same revisions, so the
 * last window read (every key) is kept while it is small. History never
 * changes; compaction only forgets it, which store.c checks after the
 * call. */
static int e_history(void *be, const char *key, const char *end,
		     int64_t from_rev, int64_t to_rev, store_event ***evs,
		     size_t *n)
{
	etcd *b = be;
	store_event **all = NULL;
	size_t nall = 0, bytes = 0;
	int rc;

	*evs = NULL;
	*n = 0;
	if (to_rev < from_rev)
		return 0;
	pthread_mutex_lock(&b->hc_mu);
	if (b->hc_n && from_rev >= b->hc_from && to_rev <= b->hc_to) {
		rc = pick_events(b->hc, b->hc_n, from_rev, to_rev, key, end,
				 evs, n);
		pthread_mutex_unlock(&b->hc_mu);
		return rc;
	}
	pthread_mutex_unlock(&b->hc_mu);

	rc = fetch_history(b, to_etcd(b, from_rev), to_etcd(b, to_rev), &all,
			   &nall);
	if (rc == 0)
		rc = pick_events(all, nall, from_rev, to_rev, key, end, evs, n);
	for (size_t i = 0; i < nall; i++)
		bytes += strlen(all[i]->kv.key) + all[i]->kv.value_len + 64;
	if (rc == 0 && nall && bytes <= HCACHE_BYTES) {
		pthread_mutex_lock(&b->hc_mu);
		store_events_free(b->hc, b->hc_n);
		b->hc = all;
		b->hc_n = nall;
		b->hc_from = from_rev;
		b->hc_to = to_rev;
		pthread_mutex_unlock(&b->hc_mu);
	} else {
		store_events_free(all, nall);
	}
	return rc;
}

static int e_lease_keepalive(void *be, int64_t id, int64_t *ttl)
{
	etcd *b = be;
	json_t *j = NULL;
	int64_t t;
	int rc;

	if (id <= 0)
		return STORE_ENOLEASE;
	rc = ecall(b, "/v3/lease/keepalive",
		   json_pack("{sI}", "ID", (json_int_t)id), true, &j);
	if (rc == 0) {
		t = jint(json_object_get(j, "result"), "TTL");
		if (t <= 0)
			rc = STORE_ENOLEASE;
		else if (ttl)
			*ttl = t;
	}
	json_decref(j);
	return rc;
}

static int e_lease_ttl(void *be, int64_t id, int64_t *remaining,
		       int64_t *granted)
{
	etcd *b = be;
	json_t *j = NULL;
	int rc;

	if (id <= 0)
		return STORE_ENOLEASE;
	rc = ecall(b, "/v3/lease/timetolive",
		   json_pack("{sI}", "ID", (json_int_t)id), true, &j);
	if (rc == 0 && jint(j, "TTL") < 0)
		rc = STORE_ENOLEASE;
	if (rc == 0) {
		if (remaining)
			*remaining = jint(j, "TTL");
		if (granted)
			*granted = jint(j, "grantedTTL");
	}
	json_decref(j);
	return rc;
}

/* Ask a member for its database size (the maintenance thread does, every
 * PROBE_MS): store_db_size is called from event loops and must not wait. */
static void refresh_db_size(etcd *b)
{
	json_t *j = NULL;

	if (ecall(b, "/v3/maintenance/status", json_object(), true, &j) == 0) {
		pthread_mutex_lock(&b->mu);
		b->dbsize = jint(j, "dbSize");
		pthread_mutex_unlock(&b->mu);
	}
	json_decref(j);
}

static int64_t e_db_size(void *be)
{
	etcd *b = be;
	int64_t size;

	pthread_mutex_lock(&b->mu);
	size = b->dbsize;
	pthread_mutex_unlock(&b->mu);
	return size;
}

static void e_last_error(void *be, char *out, size_t len)
{
	etcd *b = be;

	pthread_mutex_lock(&b->mu);
	snprintf(out, len, "%s", b->lasterr);
	pthread_mutex_unlock(&b->mu);
}

/* ---- the maintenance thread: compaction -------------------------- */

/* Find the compact revision when it may have moved past what we know:
 * the smallest etcd revision that can still be read. */
static void probe_compact(etcd *b)
{
	int64_t lo = __atomic_load_n(&b->compact_e, __ATOMIC_ACQUIRE);
	int64_t hi = __atomic_load_n(&b->pub, __ATOMIC_ACQUIRE);
	int rc;

	if (lo < 1)
		lo = 1;
	if (lo >= hi)
		return;
	rc = probe_rev(b, lo, NULL);
	if (rc != STORE_ECOMPACTED)
		return; /* readable (nothing new), or etcd cannot tell now */
	/* lo is compacted, hi is readable: narrow down. */
	while (lo + 1 < hi) {
		int64_t mid = lo + (hi - lo) / 2;

		rc = probe_rev(b, mid, NULL);
		if (rc == 0)
			hi = mid;
		else if (rc == STORE_ECOMPACTED)
			lo = mid;
		else
			return;
	}
	note_compact(b, hi);
}

static void *maint_main(void *arg)
{
	etcd *b = arg;
	int64_t last_probe = now_ms();

	pthread_mutex_lock(&b->mu);
	while (!b->closing) {
		struct timespec ts;
		int64_t rev, target;
		bool probe;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!b->probe_now)
			pthread_cond_timedwait(&b->cv, &b->mu, &ts);
		if (b->closing)
			break;
		probe = b->probe_now || now_ms() - last_probe >= PROBE_MS;
		b->probe_now = false;
		pthread_mutex_unlock(&b->mu);

		rev = from_etcd(b, __atomic_load_n(&b->pub, __ATOMIC_ACQUIRE));
		store_autocompact_sample(&b->ac, rev);
		target = store_autocompact_target(&b->ac, rev,
						  store_compact_revision(b->s));
		if (target) {
			json_t *j = NULL;
			int rc = ecall(b, "/v3/kv/compaction",
				       json_pack("{sIsb}", "revision",
						 (json_int_t)to_etcd(b, target),
						 "physical", 0),
				       false, &j);

			json_decref(j);
			if (rc == 0)
				note_compact(b, to_etcd(b, target));
			else if (rc == STORE_ECOMPACTED)
				probe = true;
		}
		if (probe) {
			probe_compact(b);
			refresh_db_size(b);
			last_probe = now_ms();
		}
		pthread_mutex_lock(&b->mu);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

/* ---- open and close ---------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_ALL);
}

static void e_free(etcd *b)
{
	pthread_mutex_lock(&b->pool_mu);
	while (b->npool)
		curl_easy_cleanup(b->pool[--b->npool]);
	pthread_mutex_unlock(&b->pool_mu);
	if (b->multi)
		curl_multi_cleanup(b->multi);
	curl_slist_free_all(b->hdrs);
	for (size_t i = 0; i < b->neps; i++)
		free(b->eps[i]);
	free(b->eps);
	free(b->ca_file);
	free(b->cert_file);
	free(b->key_file);
	free(b->waiting);
	store_autocompact_free(&b->ac);
	store_events_free(b->hc, b->hc_n);
	pthread_mutex_destroy(&b->hc_mu);
	pthread_mutex_destroy(&b->pool_mu);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	free(b);
}

static void e_close(void *be)
{
	etcd *b = be;

	pthread_mutex_lock(&b->mu);
	b->closing = true;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	if (b->io_started) {
		curl_multi_wakeup(b->multi);
		pthread_join(b->io, NULL);
	}
	if (b->maint_started)
		pthread_join(b->maint, NULL);
	e_free(b);
}

static char *dup_opt(const char *p, int *rc)
{
	char *d = p && *p ? strdup(p) : NULL;

	if (p && *p && !d)
		*rc = STORE_ENOMEM;
	return d;
}

int store_etcd_open(store *s, const store_options *o, void **bctx, char *errbuf,
		    size_t errlen)
{
	pthread_condattr_t ca;
	int64_t head = 0;
	etcd *b;
	int rc = 0;

	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		store_errf(errbuf, errlen, "cannot initialise libcurl: %s",
			   curl_easy_strerror(curl_init_rc));
		return STORE_EIO;
	}
	if (o->etcd_revision_offset < 0 || o->etcd_timeout_ms < 0) {
		store_errf(errbuf, errlen,
			   "etcd_revision_offset and "
			   "etcd_timeout_ms must not be "
			   "negative");
		return STORE_EINVAL;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return STORE_ENOMEM;
	b->s = s;
	pthread_mutex_init(&b->pool_mu, NULL);
	pthread_mutex_init(&b->hc_mu, NULL);
	pthread_mutex_init(&b->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cv, &ca);
	pthread_condattr_destroy(&ca);
	STAILQ_INIT(&b->queue);
	STAILQ_INIT(&b->pending);
	LIST_INIT(&b->inflight);
	b->timeout_ms =
	    o->etcd_timeout_ms ? o->etcd_timeout_ms : DEFAULT_TIMEOUT_MS;
	b->off = o->etcd_revision_offset;
	rc = parse_endpoints(o->etcd_endpoints, &b->eps, &b->neps, errbuf,
			     errlen);
	if (rc)
		goto fail;
	b->ca_file = dup_opt(o->etcd_ca_file, &rc);
	b->cert_file = dup_opt(o->etcd_cert_file, &rc);
	b->key_file = dup_opt(o->etcd_key_file, &rc);
	b->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	if (b->hdrs)
		b->hdrs = curl_slist_append(b->hdrs, "Expect:");
	b->multi = curl_multi_init();
	if (rc == 0 && (!b->hdrs || !b->multi ||
			store_autocompact_init(&b->ac, o->history_revisions,
					       o->history_seconds)))
		rc = STORE_ENOMEM;
	if (rc)
		goto fail;
	b->max_conns = MAX_CONNS;
	curl_multi_setopt(b->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  (long)b->max_conns);
	curl_multi_setopt(b->multi, CURLMOPT_MAXCONNECTS,
			  (long)b->max_conns + 4);

	/* First contact: the revision to start from. */
	rc = probe_rev(b, 0, &head);
	if (rc) {
		store_errf(errbuf, errlen, "cannot use etcd at %s: %s (%s)",
			   o->etcd_endpoints, store_strerror(rc), b->lasterr);
		goto fail;
	}
	if (head < b->off) {
		store_errf(errbuf, errlen,
			   "etcd_revision_offset %lld is beyond etcd's "
			   "revision %lld",
			   (long long)b->off, (long long)head);
		rc = STORE_EINVAL;
		goto fail;
	}
	b->pub = head;
	b->wstart = head + 1;
	probe_compact(b);
	refresh_db_size(b);
	store_set_initial(
	    s, from_etcd(b, head),
	    from_etcd(b, b->compact_e > b->off ? b->compact_e : 0));
	store_autocompact_sample(&b->ac, from_etcd(b, head));
	b->lasterr[0] = '\0';
	if (pthread_create(&b->io, NULL, io_main, b) != 0) {
		rc = STORE_ENOMEM;
		goto fail;
	}
	b->io_started = true;
	if (pthread_create(&b->maint, NULL, maint_main, b) != 0) {
		rc = STORE_ENOMEM;
		e_close(b);
		store_errf(errbuf, errlen, "cannot start the store's threads");
		return rc;
	}
	b->maint_started = true;
	*bctx = b;
	return 0;
fail:
	if (rc == STORE_ENOMEM)
		store_errf(errbuf, errlen, "out of memory");
	e_free(b);
	return rc;
}

const store_backend store_etcd_backend = {
    .name = "etcd",
    .range = e_range,
    .submit = e_submit,
    .history = e_history,
    .lease_keepalive = e_lease_keepalive,
    .lease_ttl = e_lease_ttl,
    .db_size = e_db_size,
    .close = e_close,
    .current_revision = e_current_revision,
    .current_revision_async = e_current_revision_async,
    .last_error = e_last_error,
};
