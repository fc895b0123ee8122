/*
 * agent.c -- the network-facing half of the agent (agent.h).
 *
 * Unprivileged, one thread, one libcurl multi handle. Three kinds of
 * request share it: the long watch on the network map, the Lease renewal
 * every leaseDurationSeconds/3, and the Peer status report every ~10 s
 * when it changed. The loop also watches its socketpair to the parent:
 * the parent sends nothing unasked, so anything readable there is its
 * end.
 *
 * Failures: a watch that fails or ends is opened again after a backoff
 * (exponential from 0.5 s to 15 s, with jitter: half of it random), on
 * the next server of --server, resuming from the map's serial. The
 * enforced map stays as it is meanwhile. A bad frame drops the
 * connection and the next one asks for a snapshot. A 401 on any request
 * or a REVOKED frame ends the agent: the credential is dead.
 */
#include <curl/curl.h>
#include <errno.h>
#include <ifaddrs.h>
#include <jansson.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "agent/agent.h"
#include "agent/alog.h"
#include "agent/amap.h"
#include "agent/dpconf.h"
#include "agent/ipc.h"
#include "agent/state.h"
#include "cmd/cmd.h"
#include "util/strbuf.h"

#define MESH_API	"/apis/mesh.signalbox.dev/v1alpha1"
#define LEASE_API	"/apis/coordination.k8s.io/v1"
#define STATUS_EVERY_MS 10000
#define BACKOFF_MIN_MS	500
#define BACKOFF_MAX_MS	15000

typedef struct req {
	CURL *h;
	struct curl_slist *hdr;
	strbuf in;     /* the answer's body (not for the watch) */
	char *payload; /* what was sent (the status report) */
} req;

typedef struct net {
	const agent_opts *o;
	int fd;
	char pub[ADDR_KEY_B64_LEN + 1];
	uint16_t listen_port;
	state_cred cred;
	char auth[STATE_TOKEN_MAX + 32];
	amap map;
	bool resume; /* the map may be resumed with its serial */
	bool dirty;  /* the map changed since the parent last had it */
	CURLM *multi;
	size_t server;
	/* the watch */
	req watch;
	strbuf line, werr;
	bool got_frame, bad_frame, revoked;
	long long next_connect;
	int attempt;
	/* lease and status */
	req lease, status;
	long long next_lease, next_status;
	int lease_failing;     /* renewals failed in a row */
	uint64_t saved_serial; /* of the map the parent stored */
	char *status_sent;     /* the last report the server took */
} net;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long backoff_ms(int attempt)
{
	long long d = BACKOFF_MIN_MS;
	unsigned r = 0;

	while (attempt-- > 0 && d < BACKOFF_MAX_MS)
		d *= 2;
	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	RAND_bytes((unsigned char *)&r, sizeof(r));
	return d / 2 + (long long)(r % (unsigned)(d / 2 + 1));
}

/* ---- HTTP ------------------------------------------------------------- */

static size_t collect(char *p, size_t sz, size_t n, void *arg)
{
	strbuf *b = arg;

	if (b->len + sz * n > (4u << 20))
		return 0;
	strbuf_putn(b, p, sz * n);
	return b->oom ? 0 : sz * n;
}

/* A request to the current server: path, method, JSON body (may be NULL),
 * with the peer's token unless anonymous. */
static int req_init(net *a, req *r, const char *method, const char *path,
		    const char *ctype, const char *body, bool anonymous)
{
	struct curl_blob ca;
	char url[4096];

	memset(r, 0, sizeof(*r));
	r->h = curl_easy_init();
	if (!r->h)
		return -ENOMEM;
	snprintf(url, sizeof(url), "%s%s", a->o->servers[a->server], path);
	curl_easy_setopt(r->h, CURLOPT_URL, url);
	curl_easy_setopt(r->h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(r->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(r->h, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(r->h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(r->h, CURLOPT_USERAGENT,
			 "signalbox-agent/" SIGNALBOX_VERSION);
	if (a->o->ca_pem) {
		ca = (struct curl_blob){a->o->ca_pem, strlen(a->o->ca_pem),
					CURL_BLOB_COPY};
		curl_easy_setopt(r->h, CURLOPT_CAINFO_BLOB, &ca);
	}
	if (!anonymous)
		r->hdr = curl_slist_append(r->hdr, a->auth);
	if (body) {
		char ct[128];

		snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
		r->hdr = curl_slist_append(r->hdr, ct);
		curl_easy_setopt(r->h, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(r->h, CURLOPT_HTTPHEADER, r->hdr);
	curl_easy_setopt(r->h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(r->h, CURLOPT_WRITEDATA, &r->in);
	curl_easy_setopt(r->h, CURLOPT_TIMEOUT_MS, 15000L);
	curl_easy_setopt(r->h, CURLOPT_PRIVATE, r);
	return 0;
}

static void req_free(net *a, req *r)
{
	if (r->h) {
		if (a && a->multi)
			curl_multi_remove_handle(a->multi, r->h);
		curl_easy_cleanup(r->h);
	}
	curl_slist_free_all(r->hdr);
	if (r->in.p)
		explicit_bzero(r->in.p, r->in.len);
	free(r->in.p);
	free(r->payload);
	memset(r, 0, sizeof(*r));
}

/* The message of a Kubernetes Status answer, or the body's start. */
static void status_message(const char *body, char *out, size_t n)
{
	json_t *j = body ? json_loads(body, 0, NULL) : NULL;
	const char *m = json_string_value(json_object_get(j, "message"));

	snprintf(out, n, "%s", m ? m : (body && *body ? body : "no answer"));
	json_decref(j);
	for (char *p = out; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

/* ---- the parent ------------------------------------------------------- */

/* Hand a changed map to the parent to enforce (when dirty), and to store
 * (when its content or its serial moved: a stored serial that lags makes
 * the next start get a snapshot instead of RESUMED). */
static int push_config(net *a)
{
	char *text, *ans = NULL, *frame;
	dpc c;
	int r;

	if (a->dirty) {
		if ((r = dpc_from_amap(&a->map, &c)))
			return r;
		text = dpc_encode(&c);
		dpc_free(&c);
		if (!text)
			return -ENOMEM;
		r = ipc_call(a->fd, IPC_CONFIG, text, strlen(text), &ans);
		free(text);
		if (r == -EREMOTEIO)
			alog(ALOG_ERROR,
			     "the privileged half refused the map: %s", ans);
		free(ans);
		if (r && r != -EREMOTEIO)
			return r;
		a->dirty = false;
	}
	frame = amap_to_frame(&a->map);
	if (frame) {
		r = ipc_call(a->fd, IPC_MAP, frame, strlen(frame), NULL);
		free(frame);
		if (r && r != -EREMOTEIO)
			return r;
		a->saved_serial = a->map.serial;
	}
	return 0;
}

/* ---- enrolment -------------------------------------------------------- */

/* This machine's endpoints: --endpoint, else every IPv4 address of an
 * interface that is up, not loopback, not the mesh's, with the port. */
static json_t *endpoints_json(net *a)
{
	json_t *arr = json_array();
	struct ifaddrs *ifa, *i;

	if (a->o->endpoint) {
		json_array_append_new(arr, json_string(a->o->endpoint));
		return arr;
	}
	if (!a->listen_port || getifaddrs(&ifa))
		return arr;
	for (i = ifa; i; i = i->ifa_next) {
		char ip[16], ep[32];
		uint32_t v;

		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
		    !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK) ||
		    !strcmp(i->ifa_name, a->o->ifname))
			continue;
		v = ntohl(((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr);
		addr_ip4_format(v, ip);
		snprintf(ep, sizeof(ep), "%s:%u", ip, a->listen_port);
		json_array_append_new(arr, json_string(ep));
	}
	freeifaddrs(ifa);
	return arr;
}

static int cred_from_answer(net *a, const char *body, char *err, size_t n)
{
	json_t *j = json_loads(body, 0, NULL),
	       *s = json_object_get(j, "status");
	const char *f[6] = {"peer", "namespace", "address",
			    "cidr", "token",	 "lease"};
	char *dst[6] = {a->cred.peer, a->cred.ns,    a->cred.address,
			a->cred.cidr, a->cred.token, a->cred.lease};
	size_t cap[6] = {sizeof(a->cred.peer),	  sizeof(a->cred.ns),
			 sizeof(a->cred.address), sizeof(a->cred.cidr),
			 sizeof(a->cred.token),	  sizeof(a->cred.lease)};
	const json_t *d = json_object_get(s, "leaseDurationSeconds");
	char *text;
	int r = -EPROTO;

	for (int i = 0; i < 6; i++) {
		const char *v = json_string_value(json_object_get(s, f[i]));

		if (!v || strlen(v) >= cap[i]) {
			snprintf(err, n,
				 "the enrolment answer has no status.%s", f[i]);
			goto out;
		}
		strcpy(dst[i], v);
	}
	if (!json_is_integer(d)) {
		snprintf(err, n,
			 "the enrolment answer has no "
			 "status.leaseDurationSeconds");
		goto out;
	}
	a->cred.lease_seconds = (int)json_integer_value(d);
	/* checked here as the parent will: a bad answer is refused now */
	text = state_cred_encode(&a->cred);
	if (!text) {
		r = -ENOMEM;
		goto out;
	}
	r = state_cred_decode(text, strlen(text), &a->cred, err, n);
	if (!r) {
		r = ipc_call(a->fd, IPC_CRED, text, strlen(text), NULL);
		if (r)
			snprintf(err, n, "storing the credential: %s",
				 strerror(-r));
	}
	explicit_bzero(text, strlen(text));
	free(text);
out:
	json_decref(j);
	return r;
}

static int enrol(net *a)
{
	char host[256] = "", msg[512];
	int attempt = 0;

	if (!a->o->setup_key) {
		alog(ALOG_ERROR,
		     "not enrolled yet (no credential in %s): "
		     "--setup-key is needed the first time",
		     a->o->state_dir);
		return AGENT_EXIT_USAGE;
	}
	if (a->o->hostname)
		snprintf(host, sizeof(host), "%s", a->o->hostname);
	else
		gethostname(host, sizeof(host) - 1);
	for (;; attempt++) {
		json_t *o = json_pack(
		    "{s:s, s:s, s:{s:s, s:s, s:s, s:o, s:s}}", "apiVersion",
		    "mesh.signalbox.dev/v1alpha1", "kind", "Enrollment", "spec",
		    "setupKey", a->o->setup_key, "publicKey", a->pub,
		    "hostname", host, "endpoints", endpoints_json(a),
		    "agentVersion", SIGNALBOX_VERSION);
		char *body = json_dumps(o, JSON_COMPACT);
		long code = 0;
		req r;
		CURLcode cc;

		json_decref(o);
		if (!body || req_init(a, &r, "POST", MESH_API "/enrollments",
				      "application/json", body, true)) {
			free(body);
			return 1;
		}
		cc = curl_easy_perform(r.h);
		curl_easy_getinfo(r.h, CURLINFO_RESPONSE_CODE, &code);
		explicit_bzero(body, strlen(body));
		free(body);
		if (cc == CURLE_OK && code == 201) {
			int rc = cred_from_answer(a, strbuf_str(&r.in), msg,
						  sizeof(msg));

			req_free(NULL, &r);
			if (rc) {
				alog(ALOG_ERROR, "enrolment: %s", msg);
				return 1;
			}
			return 0;
		}
		if (cc == CURLE_OK && code >= 400 && code < 500 &&
		    code != 429) {
			status_message(strbuf_str(&r.in), msg, sizeof(msg));
			alog(ALOG_ERROR,
			     "enrolment refused by %s (HTTP %ld): %s",
			     a->o->servers[a->server], code, msg);
			req_free(NULL, &r);
			return AGENT_EXIT_USAGE;
		}
		alog(ALOG_WARN, "enrolment at %s failed: %s",
		     a->o->servers[a->server],
		     cc != CURLE_OK ? curl_easy_strerror(cc) : "server error");
		req_free(NULL, &r);
		a->server = (a->server + 1) % a->o->nservers;
		usleep((useconds_t)backoff_ms(attempt) * 1000);
	}
}

/* ---- the watch -------------------------------------------------------- */

static void frame(net *a, const char *p, size_t n)
{
	amap_frame_type t = 0;
	uint64_t serial;
	bool changed;
	char err[256];
	int r;

	r = amap_apply_frame(&a->map, p, n, &t, &serial, &changed, err,
			     sizeof(err));
	if (r) {
		alog(ALOG_ERROR,
		     "bad frame from %s: %s; reconnecting for a "
		     "snapshot",
		     a->o->servers[a->server], err);
		if (r == -ENOMEM) {
			amap_clear(&a->map);
			a->dirty = false;
		}
		a->bad_frame = true;
		a->resume = false;
		return;
	}
	if (!a->got_frame) {
		a->got_frame = true;
		a->attempt = 0;
		alog(ALOG_INFO, "watching the map at %s (%s, serial %llu)",
		     a->o->servers[a->server],
		     t == AMAP_FRAME_RESUMED ? "resumed" : "snapshot",
		     (unsigned long long)serial);
	}
	switch (t) {
	case AMAP_FRAME_REVOKED:
		a->revoked = true;
		break;
	case AMAP_FRAME_SNAPSHOT:
	case AMAP_FRAME_DELTA:
		a->resume = true;
		if (changed)
			a->dirty = true;
		alog(ALOG_DEBUG, "%s serial %llu%s",
		     t == AMAP_FRAME_SNAPSHOT ? "SNAPSHOT" : "DELTA",
		     (unsigned long long)serial, changed ? "" : " (no change)");
		break;
	default:
		break;
	}
}

static size_t watch_write(char *p, size_t sz, size_t n, void *arg)
{
	net *a = arg;
	size_t len = sz * n, start = 0;
	long code = 0;

	curl_easy_getinfo(a->watch.h, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200) {
		if (a->werr.len < 4096)
			strbuf_putn(&a->werr, p, len);
		return len;
	}
	strbuf_putn(&a->line, p, len);
	if (a->line.oom)
		return 0;
	for (size_t i = 0; i < a->line.len; i++) {
		if (a->line.p[i] != '\n')
			continue;
		if (i > start)
			frame(a, a->line.p + start, i - start);
		start = i + 1;
		if (a->revoked || a->bad_frame)
			return 0;
	}
	memmove(a->line.p, a->line.p + start, a->line.len - start);
	strbuf_truncate(&a->line, a->line.len - start);
	if (a->line.len > AMAP_FRAME_MAX) {
		alog(ALOG_ERROR, "a frame longer than %u bytes",
		     AMAP_FRAME_MAX);
		a->bad_frame = true;
		a->resume = false;
		return 0;
	}
	return len;
}

static void watch_start(net *a)
{
	char path[1024];
	int n;

	n = snprintf(path, sizeof(path),
		     MESH_API "/namespaces/%s/peers/%s/networkmap?watch=true",
		     a->cred.ns, a->cred.peer);
	if (a->resume && a->map.valid)
		snprintf(path + n, sizeof(path) - (size_t)n, "&serial=%llu",
			 (unsigned long long)a->map.serial);
	else
		/* not resuming: the first frame must be a SNAPSHOT. The map
		 * keeps its content (it is what the kernel enforces) but a
		 * DELTA or RESUMED cannot apply to it any more. */
		a->map.valid = false;
	if (req_init(a, &a->watch, "GET", path, NULL, NULL, false)) {
		a->next_connect = now_ms() + 1000;
		return;
	}
	strbuf_truncate(&a->line, 0);
	strbuf_truncate(&a->werr, 0);
	a->got_frame = a->bad_frame = false;
	curl_easy_setopt(a->watch.h, CURLOPT_TIMEOUT_MS, 0L);
	curl_easy_setopt(a->watch.h, CURLOPT_WRITEFUNCTION, watch_write);
	curl_easy_setopt(a->watch.h, CURLOPT_WRITEDATA, a);
	/* heartbeats come every 30 s: silence for 75 s is a dead server */
	curl_easy_setopt(a->watch.h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(a->watch.h, CURLOPT_LOW_SPEED_TIME, 75L);
	curl_easy_setopt(a->watch.h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(a->watch.h, CURLOPT_TCP_KEEPIDLE, 10L);
	curl_easy_setopt(a->watch.h, CURLOPT_TCP_KEEPINTVL, 5L);
	curl_multi_add_handle(a->multi, a->watch.h);
	alog(ALOG_DEBUG, "GET %s%s", a->o->servers[a->server], path);
}

static void watch_done(net *a, CURLcode cc)
{
	char msg[512];
	long code = 0;

	curl_easy_getinfo(a->watch.h, CURLINFO_RESPONSE_CODE, &code);
	if (code == 401) {
		a->revoked = true;
	} else if (a->revoked || a->bad_frame) {
		/* said already */
	} else if (code && code != 200) {
		status_message(strbuf_str(&a->werr), msg, sizeof(msg));
		alog(ALOG_WARN, "watch at %s: HTTP %ld: %s",
		     a->o->servers[a->server], code, msg);
	} else {
		alog(ALOG_WARN, "watch at %s ended: %s; keeping the last map",
		     a->o->servers[a->server],
		     cc == CURLE_OK ? "closed by the server"
				    : curl_easy_strerror(cc));
	}
	req_free(a, &a->watch);
	if (!a->got_frame || a->bad_frame)
		a->server = (a->server + 1) % a->o->nservers;
	a->next_connect = now_ms() + backoff_ms(a->attempt++);
}

/* ---- lease and status ------------------------------------------------- */

static void lease_start(net *a)
{
	char path[1024], body[128], ts[64];
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(body, sizeof(body), "{\"spec\":{\"renewTime\":\"%s.%06ldZ\"}}",
		 ts, now.tv_nsec / 1000);
	snprintf(path, sizeof(path), LEASE_API "/namespaces/%s/leases/%s",
		 a->cred.ns, a->cred.lease);
	if (req_init(a, &a->lease, "PATCH", path,
		     "application/merge-patch+json", body, false)) {
		a->next_lease = now_ms() + 1000;
		return;
	}
	curl_easy_setopt(a->lease.h, CURLOPT_COPYPOSTFIELDS, body);
	curl_multi_add_handle(a->multi, a->lease.h);
}

static void lease_done(net *a, CURLcode cc)
{
	long code = 0, every = a->cred.lease_seconds * 1000L / 3;
	char msg[512];

	curl_easy_getinfo(a->lease.h, CURLINFO_RESPONSE_CODE, &code);
	if (code == 401) {
		a->revoked = true;
	} else if (cc != CURLE_OK || code != 200) {
		status_message(strbuf_str(&a->lease.in), msg, sizeof(msg));
		/* said once, not every second while the server is away */
		if (!a->lease_failing++)
			alog(ALOG_WARN,
			     "renewing the lease %s: %s; retrying every second",
			     a->cred.lease,
			     cc != CURLE_OK ? curl_easy_strerror(cc) : msg);
		every = 1000;
	} else if (a->lease_failing) {
		alog(ALOG_INFO, "lease %s renewed again after %d failures",
		     a->cred.lease, a->lease_failing);
		a->lease_failing = 0;
	}
	req_free(a, &a->lease);
	a->next_lease = now_ms() + (every > 500 ? every : 500);
}

/* The peer named by key k in the map, or NULL. */
static const char *peer_by_key(const amap *m, const uint8_t k[ADDR_KEY_LEN])
{
	for (size_t i = 0; i < m->npeers; i++)
		if (!memcmp(m->peers[i].key, k, ADDR_KEY_LEN))
			return m->peers[i].name;
	return NULL;
}

/* The status report from the parent's answer ("listen-port N",
 * "handshake KEY SECONDS" lines). NEW string. */
static char *status_report(net *a, const char *ans)
{
	json_t *hs = json_array(), *o;
	const char *line = ans, *nl;
	char *s;

	for (; line && *line; line = nl ? nl + 1 : NULL) {
		char key[64], ts[32];
		long long secs;
		unsigned port;
		uint8_t k[ADDR_KEY_LEN];
		const char *name;

		nl = strchr(line, '\n');
		if (sscanf(line, "listen-port %u", &port) == 1 &&
		    port < 65536) {
			a->listen_port = (uint16_t)port;
			continue;
		}
		if (sscanf(line, "handshake %60s %lld", key, &secs) != 2 ||
		    addr_key_from_base64(key, k) ||
		    !(name = peer_by_key(&a->map, k)))
			continue;
		time_t t = (time_t)secs;
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_array_append_new(hs, json_pack("{s:s, s:s}", "peer", name,
						    "lastHandshake", ts));
	}
	o = json_pack("{s:{s:o, s:s, s:o}}", "status", "endpoints",
		      endpoints_json(a), "agentVersion", SIGNALBOX_VERSION,
		      "handshakes", hs);
	s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	return s;
}

static int status_start(net *a)
{
	char path[1024], *ans = NULL, *body;
	int r;

	a->next_status = now_ms() + STATUS_EVERY_MS;
	r = ipc_call(a->fd, IPC_STATUS, NULL, 0, &ans);
	if (r == -EREMOTEIO) {
		alog(ALOG_WARN, "reading the device: %s", ans);
		free(ans);
		return 0;
	}
	if (r)
		return r;
	body = status_report(a, ans);
	free(ans);
	if (!body)
		return 0;
	if (a->status_sent && !strcmp(body, a->status_sent)) {
		free(body);
		return 0;
	}
	snprintf(path, sizeof(path), MESH_API "/namespaces/%s/peers/%s/status",
		 a->cred.ns, a->cred.peer);
	if (req_init(a, &a->status, "PATCH", path,
		     "application/merge-patch+json", body, false)) {
		free(body);
		return 0;
	}
	a->status.payload = body;
	curl_multi_add_handle(a->multi, a->status.h);
	return 0;
}

static void status_done(net *a, CURLcode cc)
{
	long code = 0;
	char msg[512];

	curl_easy_getinfo(a->status.h, CURLINFO_RESPONSE_CODE, &code);
	if (code == 401) {
		a->revoked = true;
	} else if (cc == CURLE_OK && code == 200) {
		free(a->status_sent);
		a->status_sent = a->status.payload;
		a->status.payload = NULL;
	} else {
		status_message(strbuf_str(&a->status.in), msg, sizeof(msg));
		alog(ALOG_WARN, "reporting the status: %s",
		     cc != CURLE_OK ? curl_easy_strerror(cc) : msg);
	}
	req_free(a, &a->status);
}

/* ---- start and loop --------------------------------------------------- */

/* HELLO, CRED and MAP from the parent. */
static int receive_start(net *a)
{
	char *body = NULL, err[256];
	uint32_t t;
	size_t len;
	int r;

	if ((r = ipc_recv(a->fd, &t, &body, &len)) || t != IPC_HELLO ||
	    sscanf(body, "public-key %44s listen-port %hu", a->pub,
		   &a->listen_port) != 2) {
		free(body);
		return r ? r : -EPROTO;
	}
	free(body);
	if ((r = ipc_recv(a->fd, &t, &body, &len)) || t != IPC_CRED) {
		free(body);
		return r ? r : -EPROTO;
	}
	if (len && state_cred_decode(body, len, &a->cred, err, sizeof(err)))
		alog(ALOG_WARN, "the stored credential: %s", err);
	explicit_bzero(body, len);
	free(body);
	if ((r = ipc_recv(a->fd, &t, &body, &len)) || t != IPC_MAP) {
		free(body);
		return r ? r : -EPROTO;
	}
	if (len) {
		amap_frame_type ft;
		uint64_t serial;

		if (amap_apply_frame(&a->map, body, len, &ft, &serial, NULL,
				     err, sizeof(err)) ||
		    ft != AMAP_FRAME_SNAPSHOT) {
			alog(ALOG_WARN, "the stored map: %s; starting without",
			     err);
			amap_clear(&a->map);
		} else {
			a->resume = true;
			a->dirty = true;
			a->saved_serial = a->map.serial;
		}
	}
	free(body);
	return 0;
}

static int loop(net *a)
{
	for (;;) {
		struct curl_waitfd wfd = {a->fd, CURL_WAIT_POLLIN, 0};
		long long now = now_ms(), next;
		CURLMsg *m;
		int running, left, timeout;

		if (!a->watch.h && now >= a->next_connect)
			watch_start(a);
		if (!a->lease.h && now >= a->next_lease)
			lease_start(a);
		if (!a->status.h && now >= a->next_status && status_start(a))
			return 1;
		curl_multi_perform(a->multi, &running);
		while ((m = curl_multi_info_read(a->multi, &left))) {
			req *r = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
					  (char **)&r);
			if (r == &a->watch)
				watch_done(a, m->data.result);
			else if (r == &a->lease)
				lease_done(a, m->data.result);
			else if (r == &a->status)
				status_done(a, m->data.result);
		}
		if (a->map.valid &&
		    (a->dirty || a->map.serial != a->saved_serial) &&
		    push_config(a))
			return 1;
		if (a->revoked) {
			alog(ALOG_ERROR,
			     "the server revoked this peer's credential (%s/%s "
			     "was deleted or expired); stopping. The data "
			     "plane stays as it was; enrol again with "
			     "--setup-key",
			     a->cred.ns, a->cred.peer);
			ipc_call(a->fd, IPC_REVOKED, NULL, 0, NULL);
			return AGENT_EXIT_REVOKED;
		}
		now = now_ms();
		next = a->next_lease;
		if (!a->watch.h && a->next_connect < next)
			next = a->next_connect;
		if (a->next_status < next)
			next = a->next_status;
		timeout = next <= now ? 0 : (int)(next - now);
		if (timeout > 1000)
			timeout = 1000;
		curl_multi_poll(a->multi, &wfd, 1, timeout, NULL);
		if (wfd.revents) {
			alog(ALOG_INFO,
			     "the privileged half is gone; stopping");
			return 1;
		}
	}
}

int agent_net_run(const agent_opts *o, int fd)
{
	net a;
	int rc = 1;

	memset(&a, 0, sizeof(a));
	a.o = o;
	a.fd = fd;
	amap_init(&a.map);
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return 1;
	if (receive_start(&a)) {
		alog(ALOG_ERROR, "no start message from the privileged half");
		goto out;
	}
	if (!a.cred.peer[0] && (rc = enrol(&a)) != 0)
		goto out;
	rc = 1;
	snprintf(a.auth, sizeof(a.auth), "Authorization: Bearer %s",
		 a.cred.token);
	a.multi = curl_multi_init();
	if (!a.multi)
		goto out;
	alog(ALOG_INFO, "peer %s/%s, address %s, %zu server(s)", a.cred.ns,
	     a.cred.peer, a.cred.address, o->nservers);
	if (a.dirty && push_config(&a))
		goto out;
	rc = loop(&a);
out:
	req_free(&a, &a.watch);
	req_free(&a, &a.lease);
	req_free(&a, &a.status);
	if (a.multi)
		curl_multi_cleanup(a.multi);
	explicit_bzero(&a.cred, sizeof(a.cred));
	explicit_bzero(a.auth, sizeof(a.auth));
	free(a.line.p);
	free(a.werr.p);
	free(a.status_sent);
	amap_clear(&a.map);
	curl_global_cleanup();
	return rc;
}
