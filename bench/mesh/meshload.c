/*
 * meshload.c -- the load client of bench/mesh: one thread, plain sockets,
 * epoll, HTTP/1.1 keep-alive (the style of bench/api/sbload.c). It builds a
 * mesh through the API, fetches every peer's network map, and holds a watch
 * stream on every map while one peer joins and while policies change.
 *
 *   meshload freeport
 *   meshload load   --port P [topology] [--conns C] [--pid PID]
 *   meshload maps   --port P [topology] [--conns C] [--pid PID]
 *   meshload first  --port P [--deadline S]
 *   meshload watch  --port P [topology] [--watchers N] [--pid PID]
 *
 * topology: --peers N (10000) --groups G (500) --tiers T (10)
 *           --policies K (1000) --ns NAMESPACE (default)
 *
 * The topology is a pure function of those numbers, so every command
 * knows what every map must hold:
 *   peer i      "p%05d", labels group=g(i*G/N), tier=t(i*T/N) (so a group
 *               lies within one tier), a fixed WireGuard key, an endpoint;
 *   policy j    "pol-%04d": from group g(j%G) to 1-3 other groups (a
 *               pseudo-random pick), TCP/UDP ports, every 4th one
 *               bidirectional.
 * visible(P,Q) holds when a policy has P on one side and Q on the other, so
 * a peer sees the peers of the groups its group has a policy with.
 *
 * load   deletes the bootstrap allow-all policy, creates the peers and the
 *        policies (C connections, closed loop), waits until the IPAM
 *        controller gave every peer an address, then sets every peer's
 *        status.endpoints (as an agent would).
 * maps   GETs every peer's networkmap (C connections) and checks the number
 *        of peers in each against the topology.
 * first  tries GET of p00000's map every millisecond until it gets a 200
 *        and prints the wall-clock time (CLOCK_REALTIME) of that answer.
 * watch  opens ?watch=true on N maps (default all) and waits for every
 *        SNAPSHOT, then measures three changes, each from the moment the
 *        request is sent until every affected stream (computed from the
 *        topology) has received its frame:
 *          policy  create Policy bench-change, bidirectional, from one
 *                  group (N/G peers) to one tier (N/T peers): every member
 *                  gets a rule policy/bench-change/...;
 *          patch   merge-patch pol-0001's `to` to another tier: the old
 *                  and new `to` members and the `from` members change;
 *          join    POST an enrolment with a setup key whose peerLabels put
 *                  the new peer in group g123: every map that can see it
 *                  gets a DELTA with it.
 *        join is last, so the new peer's lease does not lapse during the
 *        other phases.
 *
 * Each command prints key=value lines on stdout (the first word of a line
 * names it; parsed by ./run), diagnostics on stderr, and stops at
 * --deadline seconds whatever happens (timed_out=1).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define API "/apis/mesh.signalbox.dev/v1alpha1"

/* ---- small helpers ---------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static __attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt,
								...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "meshload: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p)
		die("out of memory");
	return p;
}

static void *xcalloc(size_t n, size_t s)
{
	void *p = calloc(n ? n : 1, s);

	if (!p)
		die("out of memory");
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p)
		die("out of memory");
	return p;
}

static const char b64c[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding; out must hold 4*ceil(n/3)+1 bytes. */
static void b64(const unsigned char *s, size_t n, char *out)
{
	size_t o = 0, i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = s[i] << 16 | s[i + 1] << 8 | s[i + 2];
		out[o++] = b64c[v >> 18 & 63];
		out[o++] = b64c[v >> 12 & 63];
		out[o++] = b64c[v >> 6 & 63];
		out[o++] = b64c[v & 63];
	}
	if (i < n) {
		uint32_t v = s[i] << 16 | (i + 1 < n ? s[i + 1] << 8 : 0);
		out[o++] = b64c[v >> 18 & 63];
		out[o++] = b64c[v >> 12 & 63];
		out[o++] = i + 1 < n ? b64c[v >> 6 & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
}

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A WireGuard public key (base64 of 32 bytes) that is a function of seed. */
static void wg_key(uint64_t seed, char out[48])
{
	unsigned char k[32];
	uint64_t x = seed * 7919 + 17;

	for (int i = 0; i < 4; i++) {
		uint64_t v = splitmix(&x);
		memcpy(k + 8 * i, &v, 8);
	}
	b64(k, 32, out);
}

typedef struct {
	double *v;
	size_t n, cap;
} dvec;

static void dvec_push(dvec *d, double x)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 4096;
		d->v = xrealloc(d->v, d->cap * sizeof(double));
	}
	d->v[d->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void dvec_sort(dvec *d)
{
	if (d->n)
		qsort(d->v, d->n, sizeof(double), cmp_double);
}

/* Nearest-rank percentile of a sorted dvec. */
static double pct(const dvec *d, double p)
{
	size_t k;

	if (!d->n)
		return 0;
	k = (size_t)(p / 100.0 * d->n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > d->n)
		k = d->n;
	return d->v[k - 1];
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* VmRSS and VmHWM (kB) of pid; -1 when unknown. */
static void mem_kb(int pid, long *rss, long *hwm)
{
	char path[64], line[256];
	FILE *f;

	*rss = *hwm = -1;
	if (pid <= 0)
		return;
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		if (!strncmp(line, "VmRSS:", 6))
			*rss = atol(line + 6);
		else if (!strncmp(line, "VmHWM:", 6))
			*hwm = atol(line + 6);
	}
	fclose(f);
}

/* utime+stime of a process, in seconds; -1 when unknown. */
static double cpu_s(int pid)
{
	char path[64], buf[1024], *q;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	q = strrchr(buf, ')');
	if (!q || sscanf(q + 2,
			 "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
			 "%llu",
			 &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ---- options ------------------------------------------------------------ */

static struct {
	int port;
	int peers, groups, tiers, policies;
	int conns;
	int watchers;
	double deadline;
	int pid;
	const char *ns;
	int join_group;
} opt = {.peers = 10000,
	 .groups = 500,
	 .tiers = 10,
	 .policies = 1000,
	 .conns = 64,
	 .watchers = -1,
	 .deadline = 120,
	 .ns = "default",
	 .join_group = 123};

static void parse_opts(int argc, char **argv)
{
	for (int i = 2; i < argc; i++) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			die("option %s wants a value", k);
		i++;
		if (!strcmp(k, "--port"))
			opt.port = atoi(v);
		else if (!strcmp(k, "--peers"))
			opt.peers = atoi(v);
		else if (!strcmp(k, "--groups"))
			opt.groups = atoi(v);
		else if (!strcmp(k, "--tiers"))
			opt.tiers = atoi(v);
		else if (!strcmp(k, "--policies"))
			opt.policies = atoi(v);
		else if (!strcmp(k, "--conns"))
			opt.conns = atoi(v);
		else if (!strcmp(k, "--watchers"))
			opt.watchers = atoi(v);
		else if (!strcmp(k, "--deadline"))
			opt.deadline = atof(v);
		else if (!strcmp(k, "--pid"))
			opt.pid = atoi(v);
		else if (!strcmp(k, "--ns"))
			opt.ns = v;
		else if (!strcmp(k, "--join-group"))
			opt.join_group = atoi(v);
		else
			die("unknown option %s", k);
	}
	if (opt.port <= 0)
		die("--port is required");
	if (opt.peers < 1 || opt.groups < 2 || opt.tiers < 2 ||
	    opt.groups > opt.peers || opt.tiers > opt.groups ||
	    opt.policies < 2 || opt.conns < 1)
		die("bad topology or --conns");
	if (opt.watchers < 0 || opt.watchers > opt.peers)
		opt.watchers = opt.peers;
	if (opt.join_group >= opt.groups)
		opt.join_group = opt.groups / 2;
}

/* ---- the topology ------------------------------------------------------- */

enum { SEL_GROUPS, SEL_TIER };

typedef struct side {
	int kind;
	int n;	  /* SEL_GROUPS: how many groups */
	int v[3]; /* group numbers, or the tier */
} side;

typedef struct policy {
	char name[32];
	side from, to;
	bool bidi;
	int ports; /* 0: TCP 443, 1: TCP 5432, 2: UDP 53 + TCP 8000-8100 */
} policy;

static policy *pols;
static int npols;

static int group_of(int i)
{
	return (int)((long)i * opt.groups / opt.peers);
}

static int tier_of(int i)
{
	return (int)((long)i * opt.tiers / opt.peers);
}

/* The tier of group g's peers (a group lies within one tier). */
static int tier_of_group(int g)
{
	long first = ((long)g * opt.peers + opt.groups - 1) / opt.groups;
	return tier_of((int)first);
}

static bool side_has(const side *s, int g, int t)
{
	if (s->kind == SEL_TIER)
		return s->v[0] == t;
	for (int k = 0; k < s->n; k++)
		if (s->v[k] == g)
			return true;
	return false;
}

static void topo_build(void)
{
	npols = opt.policies;
	pols = xcalloc((size_t)npols + 1, sizeof(policy));
	for (int j = 0; j < npols; j++) {
		policy *p = &pols[j];
		uint64_t x = (uint64_t)j * 1000003 + 11;
		snprintf(p->name, sizeof p->name, "pol-%04d", j);
		p->from.kind = p->to.kind = SEL_GROUPS;
		p->from.n = 1;
		p->from.v[0] = j % opt.groups;
		p->to.n = 1 + (int)(splitmix(&x) % 3);
		for (int k = 0; k < p->to.n; k++) {
			int g;
			bool dup;
			do {
				g = (int)(splitmix(&x) % (uint64_t)opt.groups);
				dup = g == p->from.v[0];
				for (int l = 0; l < k; l++)
					dup = dup || p->to.v[l] == g;
			} while (dup);
			p->to.v[k] = g;
		}
		p->bidi = j % 4 == 0;
		p->ports = j % 3;
	}
}

static int side_json(const side *s, char *buf, size_t cap)
{
	if (s->kind == SEL_TIER)
		return snprintf(
		    buf, cap, "{\"matchLabels\":{\"tier\":\"t%d\"}}", s->v[0]);
	if (s->n == 1)
		return snprintf(
		    buf, cap, "{\"matchLabels\":{\"group\":\"g%d\"}}", s->v[0]);
	int n = snprintf(buf, cap,
			 "{\"matchExpressions\":[{\"key\":\"group\","
			 "\"operator\":\"In\",\"values\":[");
	for (int k = 0; k < s->n; k++)
		n += snprintf(buf + n, cap - (size_t)n, "%s\"g%d\"",
			      k ? "," : "", s->v[k]);
	n += snprintf(buf + n, cap - (size_t)n, "]}]}");
	return n;
}

static const char *ports_json(int k)
{
	static const char *p[] = {
	    "[{\"protocol\":\"TCP\",\"port\":443}]",
	    "[{\"protocol\":\"TCP\",\"port\":5432}]",
	    "[{\"protocol\":\"UDP\",\"port\":53},{\"protocol\":\"TCP\","
	    "\"port\":8000,\"endPort\":8100}]",
	};
	return p[k];
}

static int policy_json(const policy *p, char *buf, size_t cap)
{
	char f[256], t[256];

	side_json(&p->from, f, sizeof f);
	side_json(&p->to, t, sizeof t);
	return snprintf(buf, cap,
			"{\"apiVersion\":\"mesh.signalbox.dev/v1alpha1\","
			"\"kind\":\"Policy\",\"metadata\":{\"name\":\"%s\"},"
			"\"spec\":{\"from\":%s,\"to\":%s,\"ports\":%s,"
			"\"bidirectional\":%s}}",
			p->name, f, t, ports_json(p->ports),
			p->bidi ? "true" : "false");
}

/* vis[g*G+h]: a peer of group g sees the peers of group h (all policies
 * are of groups; the phases of watch change that and use peer_sees). */
static unsigned char *group_vis(void)
{
	unsigned char *vis =
	    xcalloc((size_t)opt.groups * (size_t)opt.groups, 1);

	for (int j = 0; j < npols; j++) {
		const policy *p = &pols[j];
		if (p->from.kind != SEL_GROUPS || p->to.kind != SEL_GROUPS)
			die("group_vis: policy %s is not of groups", p->name);
		for (int a = 0; a < p->from.n; a++)
			for (int b = 0; b < p->to.n; b++) {
				int f = p->from.v[a], t = p->to.v[b];
				vis[(size_t)f * opt.groups + t] = 1;
				vis[(size_t)t * opt.groups + f] = 1;
			}
	}
	return vis;
}

static int group_size(int g)
{
	long lo = ((long)g * opt.peers + opt.groups - 1) / opt.groups;
	long hi = ((long)(g + 1) * opt.peers + opt.groups - 1) / opt.groups;
	return (int)(hi - lo);
}

/* ---- connections and the HTTP/1.1 response parser ---------------------- */

typedef struct conn {
	int fd;
	int idx;
	char *rb; /* received bytes not yet consumed */
	size_t rlen, rcap;
	char *wb; /* request bytes not yet written */
	size_t wlen, woff;
	double t_sent;
	bool busy;
	long job; /* the request in flight (batch) */
	/* parser state for the response at the head of rb */
	size_t hdr_end;
	int status;
	long clen; /* -1: chunked */
	size_t cpos;
	size_t body_bytes;
} conn;

static int epfd;

static int connect_to(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static void conn_reset_parser(conn *c)
{
	c->hdr_end = 0;
	c->status = 0;
	c->clen = 0;
	c->cpos = 0;
	c->body_bytes = 0;
}

static void conn_open(conn *c, int idx)
{
	struct epoll_event ev = {.events = EPOLLIN};

	memset(c, 0, sizeof *c);
	c->idx = idx;
	c->fd = connect_to(opt.port);
	if (c->fd < 0)
		die("connect to 127.0.0.1:%d: %s", opt.port, strerror(errno));
	ev.data.ptr = c;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
		die("epoll_ctl: %s", strerror(errno));
}

static void conn_close(conn *c)
{
	if (c->fd > 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	free(c->rb);
	free(c->wb);
	c->rb = c->wb = NULL;
	c->rlen = c->rcap = c->wlen = c->woff = 0;
	conn_reset_parser(c);
}

/* Write what is pending; arm EPOLLOUT if the socket is full. */
static int conn_flush(conn *c)
{
	struct epoll_event ev = {.events = EPOLLIN};

	while (c->woff < c->wlen) {
		ssize_t n = send(c->fd, c->wb + c->woff, c->wlen - c->woff,
				 MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				ev.events = EPOLLIN | EPOLLOUT;
				ev.data.ptr = c;
				epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
				return 0;
			}
			return -1;
		}
		c->woff += (size_t)n;
	}
	c->wlen = c->woff = 0;
	ev.data.ptr = c;
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
	return 0;
}

static void conn_send(conn *c, const char *req, size_t len)
{
	c->wb = xrealloc(c->wb, len);
	memcpy(c->wb, req, len);
	c->wlen = len;
	c->woff = 0;
	c->t_sent = now_s();
	c->busy = true;
	if (conn_flush(c) != 0)
		die("send: %s", strerror(errno));
}

/* Read what is there. Returns bytes read, 0 on EOF, -1 on EAGAIN. */
static ssize_t conn_read(conn *c)
{
	ssize_t n, total = 0;

	for (;;) {
		if (c->rcap - c->rlen < 65536) {
			c->rcap = c->rcap ? c->rcap * 2 : 131072;
			while (c->rcap - c->rlen < 65536)
				c->rcap *= 2;
			c->rb = xrealloc(c->rb, c->rcap + 1);
		}
		n = recv(c->fd, c->rb + c->rlen, c->rcap - c->rlen, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return total ? total : -1;
			return total ? total : 0; /* reset: EOF */
		}
		if (n == 0)
			return total ? total : 0;
		c->rlen += (size_t)n;
		total += n;
		if ((size_t)n < 65536)
			return total;
	}
}

static const char *memcasestr(const char *h, size_t hl, const char *n)
{
	size_t nl = strlen(n);

	for (size_t i = 0; i + nl <= hl; i++)
		if (!strncasecmp(h + i, n, nl))
			return h + i;
	return NULL;
}

/* A whole response at the head of rb? 1: yes (*used = its length);
 * 0: need more; -1: malformed. The body is not de-chunked. */
static int http_parse(conn *c, size_t *used)
{
	if (!c->hdr_end) {
		char *e, *p;
		c->rb[c->rlen] = '\0';
		e = memmem(c->rb, c->rlen, "\r\n\r\n", 4);
		if (!e)
			return 0;
		c->hdr_end = (size_t)(e - c->rb) + 4;
		if (strncmp(c->rb, "HTTP/1.", 7) || c->rlen < 12)
			return -1;
		c->status = atoi(c->rb + 9);
		p = (char *)memcasestr(c->rb, c->hdr_end,
				       "\r\nTransfer-Encoding: chunked");
		if (p) {
			c->clen = -1;
			c->cpos = c->hdr_end;
		} else {
			p = (char *)memcasestr(c->rb, c->hdr_end,
					       "\r\nContent-Length:");
			c->clen = p ? atol(p + 17) : 0;
		}
	}
	if (c->clen >= 0) {
		if (c->rlen < c->hdr_end + (size_t)c->clen)
			return 0;
		c->body_bytes = (size_t)c->clen;
		*used = c->hdr_end + (size_t)c->clen;
		return 1;
	}
	for (;;) {
		char *line = c->rb + c->cpos, *eol, *end;
		unsigned long sz;
		if (c->cpos >= c->rlen)
			return 0;
		eol = memmem(line, c->rlen - c->cpos, "\r\n", 2);
		if (!eol)
			return 0;
		sz = strtoul(line, &end, 16);
		if (end == line)
			return -1;
		if (sz == 0) {
			size_t fin = (size_t)(eol - c->rb) + 2;
			if (c->rlen < fin + 2)
				return 0;
			*used = fin + 2;
			return 1;
		}
		if (c->rlen < (size_t)(eol - c->rb) + 2 + sz + 2)
			return 0;
		c->body_bytes += sz;
		c->cpos = (size_t)(eol - c->rb) + 2 + sz + 2;
	}
}

static void conn_consume(conn *c, size_t used)
{
	memmove(c->rb, c->rb + used, c->rlen - used);
	c->rlen -= used;
	conn_reset_parser(c);
}

static const char *resp_body(const conn *c)
{
	return c->rb + c->hdr_end;
}

static size_t count_marker(const char *s, size_t n, const char *m)
{
	size_t ml = strlen(m), k = 0;
	const char *p = s, *e = s + n;

	while ((p = memmem(p, (size_t)(e - p), m, ml))) {
		k++;
		p += ml;
	}
	return k;
}

static int build_req(char *buf, size_t cap, const char *method,
		     const char *path, const char *ctype, const char *body)
{
	int n;

	if (body)
		n = snprintf(
		    buf, cap,
		    "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		    "Accept: application/json\r\n"
		    "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n%s",
		    method, path, ctype, strlen(body), body);
	else
		n = snprintf(buf, cap,
			     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			     "Accept: application/json\r\n\r\n",
			     method, path);
	if (n < 0 || (size_t)n >= cap)
		die("request too long");
	return n;
}

/* One request on its own connection, waited for. Returns the status;
 * *out (if given) gets a copy of the body (caller frees). */
static int http_once(const char *method, const char *path, const char *ctype,
		     const char *body, char **out, double timeout)
{
	conn c;
	char req[16384];
	int n = build_req(req, sizeof req, method, path, ctype, body), pr = 0,
	    st;
	double tlim = now_s() + timeout;
	size_t used = 0;
	int saved = epfd;

	epfd = epoll_create1(EPOLL_CLOEXEC);
	conn_open(&c, -1);
	conn_send(&c, req, (size_t)n);
	while (now_s() < tlim) {
		struct epoll_event ev;
		ssize_t r;
		if (epoll_wait(epfd, &ev, 1, 50) < 1)
			continue;
		if (ev.events & EPOLLOUT)
			conn_flush(&c);
		r = conn_read(&c);
		if ((pr = http_parse(&c, &used)) != 0)
			break;
		if (r == 0)
			die("%s %s: the server closed the connection", method,
			    path);
	}
	if (pr != 1)
		die("%s %s: no answer in %.0f s", method, path, timeout);
	st = c.status;
	if (out) {
		size_t bl = used - c.hdr_end;
		*out = xmalloc(bl + 1);
		memcpy(*out, resp_body(&c), bl);
		(*out)[bl] = '\0';
	}
	conn_close(&c);
	close(epfd);
	epfd = saved;
	return st;
}

/* ---- batch: closed loop over C connections ------------------------------ */

/* Build request number i into buf; returns its length. */
typedef size_t (*gen_fn)(long i, char *buf, size_t cap);
/* A complete response to request i (status in c->status). */
typedef void (*resp_fn)(long i, conn *c, size_t used);

typedef struct batch {
	double secs;
	long done, errors, resets;
	dvec lat;
	bool timed_out;
	size_t bytes;
} batch;

static void batch_run(long total, int conns, gen_fn gen, resp_fn on_resp,
		      double deadline, const char *what, batch *b)
{
	static char req[16384];
	conn *cs;
	long next = 0;
	int first_err = 0;
	double t0 = now_s(), tdead = t0 + deadline;
	struct epoll_event evs[256];

	memset(b, 0, sizeof *b);
	if (conns > total)
		conns = (int)(total > 0 ? total : 1);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	cs = xcalloc((size_t)conns, sizeof(conn));
	for (int i = 0; i < conns; i++) {
		conn_open(&cs[i], i);
		if (next < total) {
			cs[i].job = next;
			conn_send(&cs[i], req, gen(next++, req, sizeof req));
		}
	}
	for (;;) {
		int busy = 0, nev;
		for (int i = 0; i < conns; i++)
			busy += cs[i].busy;
		if (!busy)
			break;
		if (now_s() > tdead) {
			b->timed_out = true;
			break;
		}
		nev = epoll_wait(epfd, evs, 256, 100);
		for (int e = 0; e < nev; e++) {
			conn *c = evs[e].data.ptr;
			ssize_t r;
			size_t used;
			int pr;
			if (evs[e].events & EPOLLOUT)
				if (conn_flush(c) != 0)
					die("send: %s", strerror(errno));
			if (!(evs[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
				continue;
			r = conn_read(c);
			while ((pr = http_parse(c, &used)) == 1) {
				double tn = now_s();
				if (c->status < 200 || c->status >= 300) {
					b->errors++;
					if (first_err++ < 3)
						fprintf(stderr,
							"meshload: %s #%ld got "
							"HTTP %d: %.300s\n",
							what, c->job, c->status,
							resp_body(c));
				}
				b->bytes += c->body_bytes;
				dvec_push(&b->lat, tn - c->t_sent);
				if (on_resp)
					on_resp(c->job, c, used);
				b->done++;
				conn_consume(c, used);
				c->busy = false;
				if (next < total && tn < tdead) {
					c->job = next;
					conn_send(c, req,
						  gen(next++, req, sizeof req));
				}
			}
			if (pr < 0)
				die("%s: malformed response: %.200s", what,
				    c->rb);
			if (r == 0) {
				/* closed by the server: again, same job */
				int idx = c->idx;
				long job = c->job;
				bool was_busy = c->busy;
				if (++b->resets <= 3)
					fprintf(stderr,
						"meshload: %s: connection %d "
						"closed by the server\n",
						what, idx);
				conn_close(c);
				conn_open(c, idx);
				if (was_busy) {
					c->job = job;
					conn_send(c, req,
						  gen(job, req, sizeof req));
				}
			}
		}
	}
	b->secs = now_s() - t0;
	dvec_sort(&b->lat);
	for (int i = 0; i < conns; i++)
		conn_close(&cs[i]);
	free(cs);
	close(epfd);
}

static void print_batch(const char *label, const batch *b)
{
	printf("%s_n=%ld %s_s=%.3f %s_rate=%.0f %s_p50_ms=%.2f "
	       "%s_p99_ms=%.2f %s_max_ms=%.2f %s_errors=%ld",
	       label, b->done, label, b->secs, label,
	       b->secs > 0 ? b->done / b->secs : 0, label,
	       pct(&b->lat, 50) * 1e3, label, pct(&b->lat, 99) * 1e3, label,
	       b->lat.n ? b->lat.v[b->lat.n - 1] * 1e3 : 0, label, b->errors);
	if (b->timed_out)
		printf(" %s_timed_out=1", label);
}

/* ---- load: build the mesh ----------------------------------------------- */

static size_t gen_peer(long i, char *buf, size_t cap)
{
	char body[1024], path[256], key[48];

	wg_key((uint64_t)i, key);
	snprintf(body, sizeof body,
		 "{\"apiVersion\":\"mesh.signalbox.dev/v1alpha1\","
		 "\"kind\":\"Peer\",\"metadata\":{\"name\":\"p%05ld\","
		 "\"labels\":{\"group\":\"g%d\",\"tier\":\"t%d\"}},"
		 "\"spec\":{\"publicKey\":\"%s\"}}",
		 i, group_of((int)i), tier_of((int)i), key);
	snprintf(path, sizeof path, API "/namespaces/%s/peers", opt.ns);
	return (size_t)build_req(buf, cap, "POST", path, "application/json",
				 body);
}

static size_t gen_policy(long j, char *buf, size_t cap)
{
	char body[2048], path[256];

	policy_json(&pols[j], body, sizeof body);
	snprintf(path, sizeof path, API "/namespaces/%s/policies", opt.ns);
	return (size_t)build_req(buf, cap, "POST", path, "application/json",
				 body);
}

static size_t gen_endpoints(long i, char *buf, size_t cap)
{
	char body[512], path[256];

	snprintf(body, sizeof body,
		 "{\"status\":{\"endpoints\":[\"198.51.%ld.%ld:51820\"],"
		 "\"agentVersion\":\"0.1.0\"}}",
		 (i >> 8) & 255, i & 255);
	snprintf(path, sizeof path, API "/namespaces/%s/peers/p%05ld/status",
		 opt.ns, i);
	return (size_t)build_req(buf, cap, "PATCH", path,
				 "application/merge-patch+json", body);
}

static int cmd_load(void)
{
	batch bp, bo, be;
	char path[256], *body = NULL;
	double t0 = now_s(), tdead = t0 + opt.deadline, ta, tw;
	long rss, hwm;
	size_t have = 0;
	int st, polls = 0;

	topo_build();
	snprintf(path, sizeof path, API "/namespaces/%s/policies/allow-all",
		 opt.ns);
	st = http_once("DELETE", path, NULL, NULL, NULL, 10);
	if (st != 200 && st != 404)
		die("DELETE allow-all: HTTP %d", st);

	batch_run(opt.peers, opt.conns, gen_peer, NULL, opt.deadline, "peer",
		  &bp);
	batch_run(npols, opt.conns, gen_policy, NULL, tdead - now_s(), "policy",
		  &bo);

	/* The IPAM controller gives addresses asynchronously. */
	ta = now_s();
	snprintf(path, sizeof path, API "/namespaces/%s/peers", opt.ns);
	while (now_s() < tdead) {
		free(body);
		body = NULL;
		st = http_once("GET", path, NULL, NULL, &body, 30);
		polls++;
		if (st != 200)
			die("LIST peers: HTTP %d", st);
		have = count_marker(body, strlen(body), "\"address\":\"");
		if ((long)have >= opt.peers)
			break;
		usleep(100000);
	}
	free(body);
	tw = now_s() - ta;

	batch_run(opt.peers, opt.conns, gen_endpoints, NULL, tdead - now_s(),
		  "endpoints", &be);
	mem_kb(opt.pid, &rss, &hwm);
	printf("load peers=%d groups=%d tiers=%d policies=%d conns=%d ",
	       opt.peers, opt.groups, opt.tiers, npols, opt.conns);
	print_batch("peer", &bp);
	printf(" ");
	print_batch("policy", &bo);
	printf(" ");
	print_batch("endpoints", &be);
	printf(" addressed=%zu addr_wait_s=%.3f addr_polls=%d total_s=%.3f "
	       "rss_kb=%ld hwm_kb=%ld server_cpu_s=%.2f\n",
	       have, tw, polls, now_s() - t0, rss, hwm, cpu_s(opt.pid));
	return bp.errors || bo.errors || be.errors || (long)have < opt.peers;
}

/* ---- maps: fetch every map ---------------------------------------------- */

static int *want_peers; /* per peer: expected entries in its map */
static long map_mismatch, map_not_ok;
static dvec map_bytes, map_npeers;
static char map_first_bad[512];

static size_t gen_map(long i, char *buf, size_t cap)
{
	char path[256];

	snprintf(path, sizeof path,
		 API "/namespaces/%s/peers/p%05ld/networkmap", opt.ns, i);
	return (size_t)build_req(buf, cap, "GET", path, NULL, NULL);
}

static void on_map(long i, conn *c, size_t used)
{
	size_t bl = used - c->hdr_end;
	long got;

	if (c->status != 200) {
		map_not_ok++;
		return;
	}
	got = (long)count_marker(resp_body(c), bl, "\"allowedIPs\":");
	dvec_push(&map_bytes, (double)c->body_bytes);
	dvec_push(&map_npeers, (double)got);
	if (got != want_peers[i]) {
		if (!map_mismatch)
			snprintf(map_first_bad, sizeof map_first_bad,
				 "p%05ld has %ld peers, not %d", i, got,
				 want_peers[i]);
		map_mismatch++;
	}
}

static int cmd_maps(void)
{
	batch b;
	unsigned char *vis;
	double c0 = cpu_s(opt.pid), s0 = self_cpu_s(), c1;
	long rss, hwm;
	double sum = 0;

	topo_build();
	vis = group_vis();
	want_peers = xcalloc((size_t)opt.peers, sizeof(int));
	for (int i = 0; i < opt.peers; i++) {
		int g = group_of(i), n = 0;
		for (int h = 0; h < opt.groups; h++)
			if (vis[(size_t)g * opt.groups + h])
				n += group_size(h) - (h == g);
		want_peers[i] = n;
	}
	batch_run(opt.peers, opt.conns, gen_map, on_map, opt.deadline, "map",
		  &b);
	c1 = cpu_s(opt.pid);
	mem_kb(opt.pid, &rss, &hwm);
	dvec_sort(&map_bytes);
	dvec_sort(&map_npeers);
	for (size_t k = 0; k < map_bytes.n; k++)
		sum += map_bytes.v[k];
	printf("maps conns=%d ", opt.conns);
	print_batch("get", &b);
	printf(" bytes=%.0f map_bytes_min=%.0f map_bytes_p50=%.0f "
	       "map_bytes_max=%.0f map_peers_min=%.0f map_peers_p50=%.0f "
	       "map_peers_max=%.0f mismatches=%ld not_ok=%ld server_cpu_s=%.2f "
	       "client_cpu_s=%.2f rss_kb=%ld hwm_kb=%ld\n",
	       sum, map_bytes.n ? map_bytes.v[0] : 0, pct(&map_bytes, 50),
	       map_bytes.n ? map_bytes.v[map_bytes.n - 1] : 0,
	       map_npeers.n ? map_npeers.v[0] : 0, pct(&map_npeers, 50),
	       map_npeers.n ? map_npeers.v[map_npeers.n - 1] : 0, map_mismatch,
	       map_not_ok, c0 >= 0 && c1 >= 0 ? c1 - c0 : -1, self_cpu_s() - s0,
	       rss, hwm);
	if (map_mismatch)
		fprintf(stderr,
			"meshload: %ld maps differ from the topology; "
			"first: %s\n",
			map_mismatch, map_first_bad);
	return b.errors || b.timed_out || map_mismatch || map_not_ok;
}

/* ---- first: the first map served after a start --------------------------- */

static int cmd_first(void)
{
	char req[1024], path[256];
	double tdead = now_s() + opt.deadline, t_listen = 0;
	long tries = 0;
	int n;

	snprintf(path, sizeof path,
		 API "/namespaces/%s/peers/p00000/networkmap", opt.ns);
	n = build_req(req, sizeof req, "GET", path, NULL, NULL);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	while (now_s() < tdead) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_port = htons((uint16_t)opt.port)};
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		conn c;
		size_t used;
		int pr = 0;

		tries++;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
			if (fd >= 0)
				close(fd);
			usleep(1000);
			continue;
		}
		if (!t_listen)
			t_listen = wall_s();
		close(fd);
		conn_open(&c, 0);
		conn_send(&c, req, (size_t)n);
		while (now_s() < tdead) {
			struct epoll_event ev;
			ssize_t r;
			if (epoll_wait(epfd, &ev, 1, 50) < 1)
				continue;
			r = conn_read(&c);
			if ((pr = http_parse(&c, &used)) != 0 || r == 0)
				break;
		}
		if (pr == 1 && c.status == 200) {
			double t = wall_s();
			long rss, hwm;
			mem_kb(opt.pid, &rss, &hwm);
			printf("first t_listen=%.6f t_first_map=%.6f tries=%ld "
			       "map_bytes=%zu server_cpu_s=%.2f rss_kb=%ld\n",
			       t_listen, t, tries, c.body_bytes, cpu_s(opt.pid),
			       rss);
			conn_close(&c);
			return 0;
		}
		conn_close(&c);
		usleep(1000);
	}
	printf("first timed_out=1 tries=%ld\n", tries);
	return 1;
}

/* ---- watch: streams on every map ------------------------------------------
 */

/* What the stream parser reports per stream. */
typedef struct wstream {
	conn c;
	int peer;
	bool hdr_done, snap;
	/* chunked framing */
	int cst; /* 0: size line, 1: data, 2: CRLF after data */
	size_t cleft;
	char szbuf[24];
	int szlen;
	/* the current line */
	char head[48];
	size_t headlen;
	char tail[64];
	size_t taillen, linelen;
	bool marker;
	/* per phase */
	double t_frame, t_marker;
	int frames, psnaps;
	size_t fbytes;
	bool expected;
	bool closed;
} wstream;

static wstream *ws;
static int nws, snaps_done, streams_closed;
static size_t snap_bytes;
static bool phase_on;
static char marker[128];
static size_t marker_len;
static double phase_t0;
static long heartbeats;

/* A line (one frame) is complete. */
static void line_done(wstream *w)
{
	double t = now_s();
	bool hb, snap;

	w->head[w->headlen] = '\0';
	hb = strstr(w->head, "\"HEARTBEAT\"") != NULL;
	snap = strstr(w->head, "\"SNAPSHOT\"") != NULL;
	if (hb)
		heartbeats++;
	if (snap && !w->snap) {
		w->snap = true;
		snaps_done++;
		snap_bytes += w->linelen;
	} else if (phase_on && !hb && w->linelen > 1) {
		if (!w->frames)
			w->t_frame = t - phase_t0;
		w->frames++;
		w->psnaps += snap;
		w->fbytes += w->linelen;
		if (w->marker && !w->t_marker)
			w->t_marker = t - phase_t0;
	}
	w->headlen = w->taillen = w->linelen = 0;
	w->marker = false;
}

/* Bytes of frame text (no chunk framing). */
static void line_bytes(wstream *w, const char *s, size_t n)
{
	while (n) {
		const char *nl = memchr(s, '\n', n);
		size_t k = nl ? (size_t)(nl - s) : n;

		if (w->headlen < sizeof w->head - 1) {
			size_t h = sizeof w->head - 1 - w->headlen;
			if (h > k)
				h = k;
			memcpy(w->head + w->headlen, s, h);
			w->headlen += h;
		}
		if (phase_on && marker_len && !w->marker && k) {
			/* across the boundary, then within */
			char buf[256];
			size_t a = w->taillen, b = k < 128 ? k : 128;
			memcpy(buf, w->tail, a);
			memcpy(buf + a, s, b);
			if (memmem(buf, a + b, marker, marker_len) ||
			    memmem(s, k, marker, marker_len))
				w->marker = true;
		}
		if (k >= sizeof w->tail) {
			memcpy(w->tail, s + k - sizeof w->tail, sizeof w->tail);
			w->taillen = sizeof w->tail;
		} else {
			size_t keep = w->taillen + k > sizeof w->tail
					  ? sizeof w->tail - k
					  : w->taillen;
			memmove(w->tail, w->tail + w->taillen - keep, keep);
			memcpy(w->tail + keep, s, k);
			w->taillen = keep + k;
		}
		w->linelen += k;
		if (!nl)
			return;
		line_done(w);
		s += k + 1;
		n -= k + 1;
	}
}

/* Bytes of the chunked body. */
static void chunk_bytes(wstream *w, const char *s, size_t n)
{
	while (n) {
		if (w->cst == 0) {
			char ch = *s++;
			n--;
			if (ch == '\n') {
				w->szbuf[w->szlen] = '\0';
				w->cleft = strtoul(w->szbuf, NULL, 16);
				w->szlen = 0;
				w->cst = w->cleft ? 1 : 3;
			} else if (ch != '\r' &&
				   w->szlen < (int)sizeof w->szbuf - 1) {
				w->szbuf[w->szlen++] = ch;
			}
		} else if (w->cst == 1) {
			size_t k = n < w->cleft ? n : w->cleft;
			line_bytes(w, s, k);
			s += k;
			n -= k;
			w->cleft -= k;
			if (!w->cleft)
				w->cst = 2;
		} else if (w->cst == 2) {
			if (*s == '\n')
				w->cst = 0;
			s++;
			n--;
		} else { /* after the last chunk */
			s++;
			n--;
		}
	}
}

static void stream_input(wstream *w)
{
	ssize_t r;

	r = conn_read(&w->c);
	if (r == 0) {
		if (!w->closed) {
			w->closed = true;
			streams_closed++;
			if (streams_closed <= 3)
				fprintf(stderr,
					"meshload: stream of p%05d closed by "
					"the server\n",
					w->peer);
		}
		epoll_ctl(epfd, EPOLL_CTL_DEL, w->c.fd, NULL);
		return;
	}
	if (r < 0)
		return;
	if (!w->hdr_done) {
		char *e;
		w->c.rb[w->c.rlen] = '\0';
		e = memmem(w->c.rb, w->c.rlen, "\r\n\r\n", 4);
		if (!e)
			return;
		if (strncmp(w->c.rb, "HTTP/1.1 200", 12))
			die("watch of p%05d: %.300s", w->peer, w->c.rb);
		w->hdr_done = true;
		e += 4;
		chunk_bytes(w, e, w->c.rlen - (size_t)(e - w->c.rb));
	} else {
		chunk_bytes(w, w->c.rb, w->c.rlen);
	}
	w->c.rlen = 0;
}

/* The writer's request and its answer. */
static conn wr;
static bool wr_done;
static int wr_status;
static double wr_t;
static char wr_body[2048];

static void writer_input(void)
{
	size_t used;
	ssize_t r = conn_read(&wr);

	if (http_parse(&wr, &used) == 1) {
		wr_done = true;
		wr_status = wr.status;
		wr_t = now_s() - phase_t0;
		snprintf(wr_body, sizeof wr_body, "%.*s",
			 (int)(used - wr.hdr_end), resp_body(&wr));
		conn_consume(&wr, used);
		wr.busy = false;
	} else if (r == 0) {
		die("the writer's connection was closed by the server");
	}
}

/* Process events until done() or the time limit. */
static void pump(double until, bool (*done)(void))
{
	static struct epoll_event evs[1024];

	while (now_s() < until && !(done && done())) {
		int nev = epoll_wait(epfd, evs, 1024, 20);
		for (int i = 0; i < nev; i++) {
			conn *c = evs[i].data.ptr;
			if (evs[i].events & EPOLLOUT)
				conn_flush(c);
			if (c == &wr)
				writer_input();
			else
				stream_input((wstream *)c);
		}
	}
}

static bool all_snaps(void)
{
	return snaps_done + streams_closed >= nws;
}

static int phase_marker_needed; /* 1: expected streams must see marker */

static bool phase_complete(void)
{
	if (!wr_done)
		return false;
	for (int i = 0; i < nws; i++) {
		wstream *w = &ws[i];
		if (!w->expected || w->closed)
			continue;
		if (phase_marker_needed ? !w->t_marker : !w->frames)
			return false;
	}
	return true;
}

/* Send one request and measure until every expected stream has its
 * frame (plus a grace period for the unexpected ones). */
static void phase_run(const char *label, const char *method, const char *path,
		      const char *ctype, const char *body, bool need_marker,
		      double limit)
{
	static char req[16384];
	dvec lat = {0};
	long expected = 0, got = 0, missing = 0, unexpected = 0, frames_exp = 0,
	     snaps_exp = 0;
	size_t bytes_exp = 0;
	double c0 = cpu_s(opt.pid), c1, tdone, last = 0;
	int n = build_req(req, sizeof req, method, path, ctype, body);
	long rss, hwm;

	for (int i = 0; i < nws; i++) {
		ws[i].t_frame = ws[i].t_marker = 0;
		ws[i].frames = ws[i].psnaps = 0;
		ws[i].fbytes = 0;
		expected += ws[i].expected && !ws[i].closed;
	}
	wr_done = false;
	wr_status = 0;
	phase_marker_needed = need_marker;
	phase_on = true;
	phase_t0 = now_s();
	conn_send(&wr, req, (size_t)n);
	pump(phase_t0 + limit, phase_complete);
	tdone = now_s() - phase_t0;
	/* frames that should not come: give them 500 ms */
	pump(now_s() + 0.5, NULL);
	phase_on = false;
	c1 = cpu_s(opt.pid);
	for (int i = 0; i < nws; i++) {
		wstream *w = &ws[i];
		double t = need_marker ? w->t_marker : w->t_frame;
		if (!w->expected) {
			unexpected += w->frames > 0;
			continue;
		}
		if (w->closed)
			continue;
		if (!w->frames || (need_marker && !w->t_marker)) {
			missing++;
			continue;
		}
		got++;
		frames_exp += w->frames;
		snaps_exp += w->psnaps;
		bytes_exp += w->fbytes;
		dvec_push(&lat, t);
		if (t > last)
			last = t;
	}
	dvec_sort(&lat);
	mem_kb(opt.pid, &rss, &hwm);
	printf("%s expected=%ld got=%ld missing=%ld unexpected=%ld "
	       "p50_ms=%.2f p99_ms=%.2f max_ms=%.2f http_status=%d "
	       "http_ms=%.2f done_ms=%.2f frames=%ld snapshots=%ld "
	       "frame_bytes_avg=%.0f "
	       "server_cpu_s=%.3f rss_kb=%ld hwm_kb=%ld marker=%s\n",
	       label, expected, got, missing, unexpected, pct(&lat, 50) * 1e3,
	       pct(&lat, 99) * 1e3, last * 1e3, wr_status, wr_t * 1e3,
	       tdone * 1e3, frames_exp, snaps_exp,
	       frames_exp ? (double)bytes_exp / frames_exp : 0,
	       c0 >= 0 && c1 >= 0 ? c1 - c0 : -1, rss, hwm,
	       need_marker ? marker : "-");
	if (wr_status < 200 || wr_status >= 300)
		fprintf(stderr, "meshload: %s: HTTP %d: %.300s\n", label,
			wr_status, wr_body);
	free(lat.v);
}

static int cmd_watch(void)
{
	char path[512], body[4096], req[1024], *ans = NULL, *p;
	double t0, tdead = now_s() + opt.deadline, tsnap;
	int opened = 0, pending = 0, st;
	const int max_pending = 128;
	long rss, hwm;
	double c0;

	raise_nofile();
	topo_build();
	nws = opt.watchers;
	ws = xcalloc((size_t)nws, sizeof(wstream));

	/* The setup key first (it changes no map). */
	int jg = opt.join_group, jt = tier_of_group(jg);
	snprintf(path, sizeof path, API "/namespaces/%s/setupkeys", opt.ns);
	snprintf(body, sizeof body,
		 "{\"apiVersion\":\"mesh.signalbox.dev/v1alpha1\","
		 "\"kind\":\"SetupKey\",\"metadata\":{\"name\":"
		 "\"bench-join-%d\"},\"spec\":{\"reusable\":true,"
		 "\"peerLabels\":{\"group\":\"g%d\",\"tier\":\"t%d\"}}}",
		 (int)getpid(), jg, jt);
	st = http_once("POST", path, "application/json", body, &ans, 10);
	if (st != 201 || !(p = strstr(ans, "\"key\":\"sbk_")))
		die("cannot create a setup key: HTTP %d %.300s", st, ans);
	char skey[128];
	p += 7;
	snprintf(skey, sizeof skey, "%.*s", (int)strcspn(p, "\""), p);
	free(ans);

	/* Open the streams, at most max_pending waiting for headers. */
	epfd = epoll_create1(EPOLL_CLOEXEC);
	c0 = cpu_s(opt.pid);
	t0 = now_s();
	while (!all_snaps() && now_s() < tdead) {
		while (opened < nws && pending < max_pending) {
			wstream *w = &ws[opened];
			int n;
			snprintf(path, sizeof path,
				 API "/namespaces/%s/peers/p%05d/networkmap"
				     "?watch=true",
				 opt.ns, opened);
			n = build_req(req, sizeof req, "GET", path, NULL, NULL);
			conn_open(&w->c, opened);
			w->peer = opened;
			conn_send(&w->c, req, (size_t)n);
			opened++;
			pending++;
		}
		pump(now_s() + 0.02, NULL);
		pending = 0;
		for (int i = 0; i < opened; i++)
			pending += !ws[i].snap && !ws[i].closed;
	}
	tsnap = now_s() - t0;
	mem_kb(opt.pid, &rss, &hwm);
	printf("snap streams=%d snapshots=%d closed=%d secs=%.3f "
	       "bytes=%zu server_cpu_s=%.2f rss_kb=%ld hwm_kb=%ld\n",
	       nws, snaps_done, streams_closed, tsnap, snap_bytes,
	       cpu_s(opt.pid) - c0, rss, hwm);
	if (!all_snaps())
		die("only %d of %d snapshots in time", snaps_done, nws);

	/* Quiet: nothing should arrive now. */
	{
		long fr = 0;
		phase_on = true;
		marker_len = 0;
		phase_t0 = now_s();
		for (int i = 0; i < nws; i++)
			ws[i].frames = 0;
		pump(now_s() + 1.0, NULL);
		phase_on = false;
		for (int i = 0; i < nws; i++)
			fr += ws[i].frames;
		printf("quiet secs=1 frames=%ld heartbeats=%ld\n", fr,
		       heartbeats);
	}
	conn_open(&wr, -1);

	/* policy: from group gX to tier tY, bidirectional. */
	{
		int gx = opt.groups / 5,
		    ty = (tier_of_group(gx) + 5) % opt.tiers;
		policy *np = &pols[npols];
		memset(np, 0, sizeof *np);
		snprintf(np->name, sizeof np->name, "bench-change");
		np->from.kind = SEL_GROUPS;
		np->from.n = 1;
		np->from.v[0] = gx;
		np->to.kind = SEL_TIER;
		np->to.v[0] = ty;
		np->bidi = true;
		policy_json(np, body, sizeof body);
		for (int i = 0; i < nws; i++) {
			int g = group_of(i), t = tier_of(i);
			ws[i].expected = side_has(&np->from, g, t) ||
					 side_has(&np->to, g, t);
		}
		snprintf(marker, sizeof marker, "policy/bench-change/");
		marker_len = strlen(marker);
		snprintf(path, sizeof path, API "/namespaces/%s/policies",
			 opt.ns);
		phase_run("policy", "POST", path, "application/json", body,
			  true, 30);
		npols++; /* it stays */
	}
	pump(now_s() + 1.0, NULL);

	/* patch: pol-0001's `to` becomes tier tZ. */
	{
		policy *pp = &pols[1];
		side old = pp->to;
		int tz = (tier_of_group(pp->from.v[0]) + 3) % opt.tiers;
		char sj[256];
		pp->to.kind = SEL_TIER;
		pp->to.n = 1;
		pp->to.v[0] = tz;
		for (int i = 0; i < nws; i++) {
			int g = group_of(i), t = tier_of(i);
			bool a = side_has(&old, g, t),
			     b = side_has(&pp->to, g, t);
			ws[i].expected = side_has(&pp->from, g, t) || a != b;
		}
		/* A merge patch merges objects: null out the old forms. */
		snprintf(sj, sizeof sj,
			 "{\"matchLabels\":{\"group\":null,\"tier\":\"t%d\"},"
			 "\"matchExpressions\":null}",
			 tz);
		snprintf(body, sizeof body, "{\"spec\":{\"to\":%s}}", sj);
		snprintf(path, sizeof path, API "/namespaces/%s/policies/%s",
			 opt.ns, pp->name);
		marker_len = 0;
		phase_run("patch", "PATCH", path,
			  "application/merge-patch+json", body, false, 30);
	}
	pump(now_s() + 1.0, NULL);

	/* join: an enrolment into group jg (tier jt). */
	{
		unsigned char k[32];
		char key[48], host[64];
		if (getrandom(k, sizeof k, 0) != sizeof k)
			die("getrandom: %s", strerror(errno));
		b64(k, sizeof k, key);
		snprintf(host, sizeof host, "bench-join-%d", (int)getpid());
		for (int i = 0; i < nws; i++) {
			int g = group_of(i), t = tier_of(i);
			bool vis = false;
			for (int j = 0; j < npols && !vis; j++) {
				const policy *pp = &pols[j];
				vis = (side_has(&pp->from, jg, jt) &&
				       side_has(&pp->to, g, t)) ||
				      (side_has(&pp->to, jg, jt) &&
				       side_has(&pp->from, g, t));
			}
			ws[i].expected = vis;
		}
		snprintf(body, sizeof body,
			 "{\"apiVersion\":\"mesh.signalbox.dev/v1alpha1\","
			 "\"kind\":\"Enrollment\",\"spec\":{\"setupKey\":"
			 "\"%s\",\"publicKey\":\"%s\",\"hostname\":\"%s\","
			 "\"endpoints\":[\"192.0.2.1:51820\"],"
			 "\"agentVersion\":\"0.1.0\"}}",
			 skey, key, host);
		snprintf(marker, sizeof marker, "\"name\":\"%s\"", host);
		marker_len = strlen(marker);
		phase_run("join", "POST", API "/enrollments",
			  "application/json", body, true, 30);
	}
	printf("watchend heartbeats=%ld closed=%d\n", heartbeats,
	       streams_closed);
	for (int i = 0; i < nws; i++)
		conn_close(&ws[i].c);
	conn_close(&wr);
	return streams_closed ? 1 : 0;
}

/* ---- main ------------------------------------------------------------------
 */

static int cmd_freeport(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
		die("freeport: %s", strerror(errno));
	printf("%d\n", ntohs(sa.sin_port));
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		die("usage: meshload freeport|load|maps|first|watch [options]");
	if (!strcmp(argv[1], "freeport"))
		return cmd_freeport();
	parse_opts(argc, argv);
	if (!strcmp(argv[1], "load"))
		return cmd_load();
	if (!strcmp(argv[1], "maps"))
		return cmd_maps();
	if (!strcmp(argv[1], "first"))
		return cmd_first();
	if (!strcmp(argv[1], "watch"))
		return cmd_watch();
	die("unknown command %s", argv[1]);
	return 2;
}
