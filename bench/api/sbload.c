/*
 * sbload.c -- the load generator of bench/api: one thread, plain sockets,
 * epoll, HTTP/1.1 keep-alive, closed loop (each connection has one request
 * in flight, like wrk). It speaks to signalbox (Kubernetes API) and to
 * etcd 3.4's v3 JSON gateway.
 *
 *   sbload freeport
 *   sbload load  --port P --mode sb-create|sb-get|etcd-put|etcd-range
 *                --path PATH --conns N (--duration S | --total N)
 *                [--name-prefix X] [--pid PID] [--deadline S]
 *   sbload list  --port P --mode sb|etcd --path PATH|--prefix KEYPREFIX
 *                --expect N --reps R [--deadline S] [--pid PID]
 *   sbload watch --port P --mode sb|etcd --path COLLECTION|--prefix KEYPREFIX
 *                --watchers N --trials T [--deadline S] [--pid PID]
 *
 * Each prints one line of key=value pairs on stdout (parsed by ./run) and
 * any diagnostics on stderr. Every phase stops at --deadline seconds
 * whatever happens, and says so (timed_out=1).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers ---------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static __attribute__((noreturn, format(printf, 1, 2))) void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "sbload: ");
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
static size_t b64(const void *in, size_t n, char *out)
{
	const unsigned char *s = in;
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
	return o;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, size_t n, double p)
{
	size_t k;

	if (!n)
		return 0;
	k = (size_t)(p / 100.0 * n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
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

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static long nofile_limit(void)
{
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	return (long)rl.rlim_cur;
}

/* ---- CPU and memory of the server under test (/proc) ------------------ */

#define MAXTASK 256
typedef struct {
	int n;
	int tid[MAXTASK];
	char comm[MAXTASK][32];
	unsigned long long ticks[MAXTASK];
	unsigned long long total;
	unsigned long long host_busy, host_all; /* /proc/stat, all CPUs */
	unsigned long long host_irq, host_steal;
	double self_cpu; /* seconds of CPU of sbload itself */
	double t;
} cpusnap;

static void host_snap(cpusnap *s)
{
	unsigned long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "r");
	int i;

	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
		for (i = 0; i < 8; i++)
			s->host_all += v[i];
		s->host_busy = s->host_all - v[3] - v[4];
		s->host_irq = v[5] + v[6];
		s->host_steal = v[7];
	}
	fclose(f);
}

/* utime+stime of one /proc stat file; comm copied out. */
static int read_stat(const char *path, char *comm, unsigned long long *ticks)
{
	char buf[1024], *p, *q;
	unsigned long long ut, st;
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strchr(buf, '(');
	q = strrchr(buf, ')');
	if (!p || !q)
		return -1;
	if (comm)
		snprintf(comm, 32, "%.*s", (int)(q - p - 1), p + 1);
	/* after ") ": state(3) ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime(14) stime(15) */
	if (sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
		   &ut, &st) != 2)
		return -1;
	*ticks = ut + st;
	return 0;
}

static void cpu_snap(int pid, cpusnap *s)
{
	char path[320];
	DIR *d;
	struct dirent *e;

	struct rusage ru;

	memset(s, 0, sizeof *s);
	s->t = now_s();
	host_snap(s);
	getrusage(RUSAGE_SELF, &ru);
	s->self_cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		      ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	if (pid <= 0)
		return;
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	read_stat(path, NULL, &s->total);
	snprintf(path, sizeof path, "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return;
	while ((e = readdir(d)) && s->n < MAXTASK) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%s/stat", pid,
			 e->d_name);
		if (read_stat(path, s->comm[s->n], &s->ticks[s->n]) == 0)
			s->tid[s->n++] = atoi(e->d_name);
	}
	closedir(d);
}

static long rss_kb(int pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = atol(line + 6);
	fclose(f);
	return kb;
}

/* Print server_cpu=..% and the busiest threads (name/tid:percent). */
static void cpu_report(int pid, const cpusnap *a, const cpusnap *b)
{
	double hz = (double)sysconf(_SC_CLK_TCK), dt = b->t - a->t;
	struct {
		double pct;
		int i;
	} top[MAXTASK];
	int n = 0, i, j;
	struct rusage ru;

	if (pid > 0 && dt > 0) {
		printf(" server_cpu_pct=%.0f",
		       (b->total - a->total) / hz / dt * 100);
		for (i = 0; i < b->n; i++) {
			unsigned long long before = 0;
			for (j = 0; j < a->n; j++)
				if (a->tid[j] == b->tid[i])
					before = a->ticks[j];
			top[n].pct = (b->ticks[i] - before) / hz / dt * 100;
			top[n].i = i;
			n++;
		}
		for (i = 0; i < n; i++)
			for (j = i + 1; j < n; j++)
				if (top[j].pct > top[i].pct) {
					double p = top[i].pct;
					int k = top[i].i;
					top[i] = top[j];
					top[j].pct = p;
					top[j].i = k;
				}
		printf(" server_threads=");
		for (i = 0; i < n && i < 4; i++)
			printf("%s%s/%d:%.0f%%", i ? "," : "",
			       b->tid[top[i].i] == pid ? "main"
						       : b->comm[top[i].i],
			       b->tid[top[i].i], top[i].pct);
		printf(" server_nthreads=%d server_rss_kb=%ld", b->n,
		       rss_kb(pid));
	}
	if (b->host_all > a->host_all && dt > 0) {
		double all = (double)(b->host_all - a->host_all) /
			     (sysconf(_SC_NPROCESSORS_ONLN) * 100.0);
		double host = (b->host_busy - a->host_busy) / all;
		double irq = (b->host_irq - a->host_irq) / all;
		double steal = (b->host_steal - a->host_steal) / all;
		double self = (b->self_cpu - a->self_cpu) / dt * 100;
		double srv = pid > 0 ? (b->total - a->total) / hz / dt * 100 : 0;
		double oth = host - irq - steal - self - srv;
		printf(" host_busy_pct=%.0f irq_pct=%.0f steal_pct=%.0f "
		       "client_cpu_pct=%.0f others_cpu_pct=%.0f",
		       host, irq, steal, self, oth > 0 ? oth : 0);
	}
	getrusage(RUSAGE_SELF, &ru);
	printf(" client_cpu_s=%.2f",
	       ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
}

static int quickack; /* --quickack 1: ACK every segment at once */

/* ---- options ------------------------------------------------------------ */

static struct {
	int port;
	const char *mode;
	const char *path;
	const char *prefix;
	const char *name_prefix;
	int conns;
	double duration;
	long total;
	double deadline;
	int pid;
	long expect;
	int reps;
	int watchers;
	int trials;
	int value_size;
	const char *get_name;
} opt = {.conns = 1, .deadline = 60, .reps = 5, .trials = 5,
	 .value_size = 300, .name_prefix = "x"};

static void parse_opts(int argc, char **argv)
{
	int i;

	for (i = 2; i < argc; i++) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			die("option %s wants a value", k);
		i++;
		if (!strcmp(k, "--port"))
			opt.port = atoi(v);
		else if (!strcmp(k, "--mode"))
			opt.mode = v;
		else if (!strcmp(k, "--path"))
			opt.path = v;
		else if (!strcmp(k, "--prefix"))
			opt.prefix = v;
		else if (!strcmp(k, "--name-prefix"))
			opt.name_prefix = v;
		else if (!strcmp(k, "--get-name"))
			opt.get_name = v;
		else if (!strcmp(k, "--conns"))
			opt.conns = atoi(v);
		else if (!strcmp(k, "--duration"))
			opt.duration = atof(v);
		else if (!strcmp(k, "--total"))
			opt.total = atol(v);
		else if (!strcmp(k, "--deadline"))
			opt.deadline = atof(v);
		else if (!strcmp(k, "--pid"))
			opt.pid = atoi(v);
		else if (!strcmp(k, "--expect"))
			opt.expect = atol(v);
		else if (!strcmp(k, "--reps"))
			opt.reps = atoi(v);
		else if (!strcmp(k, "--watchers"))
			opt.watchers = atoi(v);
		else if (!strcmp(k, "--trials"))
			opt.trials = atoi(v);
		else if (!strcmp(k, "--quickack"))
			quickack = atoi(v);
		else if (!strcmp(k, "--value-size"))
			opt.value_size = atoi(v);
		else
			die("unknown option %s", k);
	}
	if (opt.port <= 0)
		die("--port is required");
	if (!opt.mode)
		die("--mode is required");
}

/* ---- connections and the HTTP/1.1 response parser -------------------------- */

typedef struct conn {
	int fd;
	int idx;
	char *rb; /* received bytes not yet consumed */
	size_t rlen, rcap;
	char *wb; /* request bytes not yet written */
	size_t wlen, woff;
	double t_sent;
	bool busy; /* a request is in flight */
	/* parser state for the response at the head of rb */
	size_t hdr_end; /* 0 while the header is incomplete */
	int status;
	long clen; /* -1: chunked */
	size_t cpos; /* chunked: offset of the next chunk-size line */
	size_t body_bytes;
	/* watch state */
	bool established;
	bool got;
	double t_got;
	char tail[256];
	size_t tail_len;
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

static void conn_reset_parser(conn *c)
{
	c->hdr_end = 0;
	c->status = 0;
	c->clen = 0;
	c->cpos = 0;
	c->body_bytes = 0;
}

static void conn_close(conn *c)
{
	if (c->fd >= 0) {
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

/* Write what is pending; arm EPOLLOUT if the socket is full. 0 ok, -1 error. */
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
		if (quickack) {
			int one = 1;
			setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one,
				   sizeof one);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return total ? total : -1;
			return 0; /* reset: treat as EOF */
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
	size_t nl = strlen(n), i;

	for (i = 0; i + nl <= hl; i++)
		if (!strncasecmp(h + i, n, nl))
			return h + i;
	return NULL;
}

/*
 * Is a whole response at the head of rb? 1: yes, *used = its length;
 * 0: need more; -1: malformed.
 */
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
			/* last chunk; no trailers expected: "0\r\n\r\n" */
			size_t fin = (size_t)(eol - c->rb) + 2;
			if (c->rlen < fin + 2)
				return 0;
			if (memcmp(c->rb + fin, "\r\n", 2)) {
				char *t = memmem(c->rb + fin, c->rlen - fin,
						 "\r\n\r\n", 4);
				if (!t)
					return 0;
				*used = (size_t)(t - c->rb) + 4;
			} else
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

/* The body of the response at the head of rb (chunked: raw, with framing). */
static const char *resp_body(const conn *c)
{
	return c->rb + c->hdr_end;
}

/* ---- requests ------------------------------------------------------------------ */

static char *value_text; /* ~value_size bytes of JSON-ish payload */
static int last_body_len; /* the body of the last request built */

static void make_value(void)
{
	/* A spec that makes the whole object about value_size bytes. */
	size_t n = (size_t)opt.value_size;
	value_text = xmalloc(n + 1);
	memset(value_text, 'x', n);
	value_text[n] = '\0';
}

/*
 * Build one request into buf. seq makes names unique. Returns its length.
 */
static size_t build_request(char *buf, size_t cap, const char *mode, long seq)
{
	char body[4096], name[128], key[256];
	int bl = 0, n;

	if (!strcmp(mode, "sb-create")) {
		/* about 300 bytes of JSON in total */
		snprintf(name, sizeof name, "%s-%09ld", opt.name_prefix, seq);
		bl = snprintf(
			body, sizeof body,
			"{\"apiVersion\":\"bench.signalbox.dev/v1\","
			"\"kind\":\"Widget\",\"metadata\":{\"name\":\"%s\","
			"\"labels\":{\"app\":\"bench\",\"tier\":\"load\"}},"
			"\"spec\":{\"color\":\"blue\",\"size\":42,"
			"\"owner\":\"team-a\",\"zone\":\"eu-west-1a\","
			"\"description\":\"a small object for the API "
			"benchmark, padded to about 300 bytes of JSON "
			"..............\"}}",
			name);
		n = snprintf(buf, cap,
			     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			     "Content-Type: application/json\r\n"
			     "Content-Length: %d\r\n\r\n%s",
			     opt.path, bl, body);
	} else if (!strcmp(mode, "sb-get")) {
		n = snprintf(buf, cap,
			     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			     "Accept: application/json\r\n\r\n",
			     opt.path);
	} else if (!strcmp(mode, "etcd-put")) {
		char kb[512], vb[4096];
		snprintf(key, sizeof key, "%s%s-%09ld", opt.prefix,
			 opt.name_prefix, seq);
		b64(key, strlen(key), kb);
		b64(value_text, strlen(value_text), vb);
		bl = snprintf(body, sizeof body,
			      "{\"key\":\"%s\",\"value\":\"%s\"}", kb, vb);
		n = snprintf(buf, cap,
			     "POST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			     "Content-Type: application/json\r\n"
			     "Content-Length: %d\r\n\r\n%s",
			     bl, body);
	} else if (!strcmp(mode, "etcd-range")) {
		char kb[512];
		b64(opt.prefix, strlen(opt.prefix), kb);
		bl = snprintf(body, sizeof body, "{\"key\":\"%s\"}", kb);
		n = snprintf(buf, cap,
			     "POST /v3/kv/range HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			     "Content-Type: application/json\r\n"
			     "Content-Length: %d\r\n\r\n%s",
			     bl, body);
	} else
		die("unknown mode %s", mode);
	if (n < 0 || (size_t)n >= cap)
		die("request too long");
	last_body_len = bl;
	return (size_t)n;
}

/* ---- load: closed-loop throughput -------------------------------------------------- */

static int cmd_load(void)
{
	conn *cs;
	char req[8192];
	long seq = 0, done = 0, errors = 0, resets = 0, timed_out = 0;
	int i, first_err_printed = 0;
	double t0, tend, tdead;
	dvec lat = {0};
	cpusnap s0, s1;
	struct epoll_event evs[256];
	long status_hist[6] = {0};

	if (!opt.path && strncmp(opt.mode, "etcd", 4))
		die("--path is required");
	if (!opt.prefix && !strncmp(opt.mode, "etcd", 4))
		die("--prefix is required");
	make_value();
	raise_nofile();
	epfd = epoll_create1(EPOLL_CLOEXEC);
	cs = calloc((size_t)opt.conns, sizeof(conn));
	for (i = 0; i < opt.conns; i++)
		conn_open(&cs[i], i);
	cpu_snap(opt.pid, &s0);
	t0 = now_s();
	tend = opt.duration > 0 ? t0 + opt.duration : 1e300;
	tdead = t0 + opt.deadline;
	for (i = 0; i < opt.conns; i++) {
		if (opt.total && seq >= opt.total)
			break;
		size_t n = build_request(req, sizeof req, opt.mode, seq++);
		conn_send(&cs[i], req, n);
	}
	for (;;) {
		int nev, busy = 0;
		double t = now_s();
		for (i = 0; i < opt.conns; i++)
			busy += cs[i].busy;
		if (!busy)
			break;
		if (t > tdead) {
			timed_out = 1;
			break;
		}
		nev = epoll_wait(epfd, evs, 256, 100);
		for (i = 0; i < nev; i++) {
			conn *c = evs[i].data.ptr;
			ssize_t r;
			size_t used;
			int pr;
			if (evs[i].events & EPOLLOUT)
				if (conn_flush(c) != 0)
					die("send: %s", strerror(errno));
			if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
				continue;
			r = conn_read(c);
			if (r == 0) {
				/* the server closed: count, reconnect, go on */
				int idx = c->idx;
				resets++;
				if (resets <= 3)
					fprintf(stderr,
						"sbload: connection %d closed "
						"by the server (%ld so far)\n",
						idx, resets);
				conn_close(c);
				conn_open(c, idx);
				c->busy = false;
				if (now_s() < tend &&
				    (!opt.total || seq < opt.total)) {
					size_t n = build_request(
						req, sizeof req, opt.mode, seq++);
					conn_send(c, req, n);
				}
				continue;
			}
			while ((pr = http_parse(c, &used)) == 1) {
				double tn = now_s();
				int st = c->status;
				if (st >= 100 && st < 600)
					status_hist[st / 100]++;
				if (st < 200 || st >= 300) {
					errors++;
					if (first_err_printed < 3) {
						first_err_printed++;
						fprintf(stderr,
							"sbload: %s got HTTP %d: "
							"%.300s\n",
							opt.mode, st,
							resp_body(c));
					}
				}
				dvec_push(&lat, tn - c->t_sent);
				done++;
				conn_consume(c, used);
				c->busy = false;
				if (tn < tend && tn < tdead &&
				    (!opt.total || seq < opt.total)) {
					size_t n = build_request(
						req, sizeof req, opt.mode, seq++);
					conn_send(c, req, n);
				}
			}
			if (pr < 0)
				die("malformed response: %.200s", c->rb);
		}
	}
	t0 = now_s() - t0;
	cpu_snap(opt.pid, &s1);
	qsort(lat.v, lat.n, sizeof(double), cmp_double);
	printf("mode=%s conns=%d requests=%ld secs=%.3f rate=%.0f "
	       "p50_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%ld resets=%ld "
	       "s2xx=%ld s4xx=%ld s5xx=%ld timed_out=%ld body_bytes=%d",
	       opt.mode, opt.conns, done, t0, done / t0,
	       pct(lat.v, lat.n, 50) * 1e3, pct(lat.v, lat.n, 99) * 1e3,
	       lat.n ? lat.v[lat.n - 1] * 1e3 : 0, errors, resets,
	       status_hist[2], status_hist[4], status_hist[5], timed_out,
	       last_body_len);
	cpu_report(opt.pid, &s0, &s1);
	printf("\n");
	for (i = 0; i < opt.conns; i++)
		conn_close(&cs[i]);
	free(cs);
	return errors || timed_out ? 1 : 0;
}

/* ---- list: time full lists ------------------------------------------------------- */

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

static int cmd_list(void)
{
	conn c;
	char req[2048];
	const char *marker;
	dvec t = {0};
	double tdead = now_s() + opt.deadline;
	int rep, n, bad = 0, timed_out = 0;
	size_t items = 0, bytes = 0;
	cpusnap s0, s1;
	struct epoll_event ev;

	epfd = epoll_create1(EPOLL_CLOEXEC);
	conn_open(&c, 0);
	if (!strcmp(opt.mode, "sb")) {
		if (!opt.path)
			die("--path is required");
		n = snprintf(req, sizeof req,
			     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			     "Accept: application/json\r\n\r\n",
			     opt.path);
		/* each item has its own metadata with a uid */
		marker = "\"uid\":";
	} else {
		char kb[512], eb[512], end[256];
		size_t pl;
		if (!opt.prefix)
			die("--prefix is required");
		pl = strlen(opt.prefix);
		memcpy(end, opt.prefix, pl + 1);
		end[pl - 1]++; /* range_end: the prefix plus one */
		b64(opt.prefix, pl, kb);
		b64(end, pl, eb);
		char body[1200];
		int bl = snprintf(body, sizeof body,
				  "{\"key\":\"%s\",\"range_end\":\"%s\"}", kb,
				  eb);
		n = snprintf(req, sizeof req,
			     "POST /v3/kv/range HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			     "Content-Type: application/json\r\n"
			     "Content-Length: %d\r\n\r\n%s",
			     bl, body);
		marker = "\"create_revision\":";
	}
	cpu_snap(opt.pid, &s0);
	for (rep = 0; rep < opt.reps && now_s() < tdead; rep++) {
		size_t used;
		int pr = 0;
		conn_send(&c, req, (size_t)n);
		while (now_s() < tdead) {
			ssize_t r;
			if (epoll_wait(epfd, &ev, 1, 100) < 1)
				continue;
			if (ev.events & EPOLLOUT)
				conn_flush(&c);
			r = conn_read(&c);
			if (r == 0)
				die("list: the server closed the connection");
			if ((pr = http_parse(&c, &used)) != 0)
				break;
		}
		if (pr != 1) {
			timed_out = pr == 0;
			if (pr < 0)
				die("list: malformed response");
			break;
		}
		dvec_push(&t, now_s() - c.t_sent);
		if (c.status != 200) {
			bad++;
			fprintf(stderr, "sbload: list got HTTP %d: %.300s\n",
				c.status, resp_body(&c));
		}
		items = count_marker(resp_body(&c), used - c.hdr_end, marker);
		bytes = c.body_bytes;
		if (opt.expect && (long)items != opt.expect) {
			bad++;
			fprintf(stderr,
				"sbload: list returned %zu objects, not %ld\n",
				items, opt.expect);
		}
		conn_consume(&c, used);
		c.busy = false;
	}
	cpu_snap(opt.pid, &s1);
	qsort(t.v, t.n, sizeof(double), cmp_double);
	{
		double med = pct(t.v, t.n, 50);
		printf("mode=list-%s reps=%zu items=%zu bytes=%zu "
		       "median_ms=%.2f min_ms=%.2f max_ms=%.2f "
		       "objects_per_s=%.0f errors=%d timed_out=%d",
		       opt.mode, t.n, items, bytes, med * 1e3,
		       t.n ? t.v[0] * 1e3 : 0, t.n ? t.v[t.n - 1] * 1e3 : 0,
		       med > 0 ? items / med : 0, bad, timed_out);
	}
	cpu_report(opt.pid, &s0, &s1);
	printf("\n");
	conn_close(&c);
	return bad || timed_out ? 1 : 0;
}

/* ---- watch: one event to N watchers -------------------------------------------- */

static int cmd_watch(void)
{
	int N = opt.watchers, i, trial, missing_total = 0, timed_out = 0;
	conn *ws, wr;
	char req[4096], wreq[8192];
	int rl, pending = 0, opened = 0, established = 0;
	struct epoll_event evs[1024];
	double tdead = now_s() + opt.deadline, tsetup;
	dvec deliv = {0}, last = {0}, ack = {0};
	cpusnap s0, s1;
	bool sb = !strcmp(opt.mode, "sb");
	char rv[64] = "";
	const int max_pending = 128;

	raise_nofile();
	if (nofile_limit() < N + 64)
		die("RLIMIT_NOFILE is %ld; %d watchers need %d", nofile_limit(),
		    N, N + 64);
	make_value();
	epfd = epoll_create1(EPOLL_CLOEXEC);
	ws = calloc((size_t)N, sizeof(conn));
	if (!ws)
		die("out of memory");

	/* The writer; for signalbox also the current resourceVersion. */
	conn_open(&wr, -1);
	if (sb) {
		size_t used;
		int pr = 0;
		char *p;
		if (!opt.path)
			die("--path is required");
		rl = snprintf(req, sizeof req,
			      "GET %s?limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			      "Accept: application/json\r\n\r\n",
			      opt.path);
		conn_send(&wr, req, (size_t)rl);
		while (now_s() < tdead) {
			struct epoll_event ev;
			if (epoll_wait(epfd, &ev, 1, 100) < 1)
				continue;
			if (conn_read(&wr) == 0)
				die("watch: the server closed the connection");
			if ((pr = http_parse(&wr, &used)) != 0)
				break;
		}
		if (pr != 1 || wr.status != 200)
			die("watch: cannot list %s (HTTP %d)", opt.path,
			    wr.status);
		/* The list's own metadata comes first: {"kind":..,
		 * "metadata":{"resourceVersion":"N"...} */
		p = strstr(resp_body(&wr), "\"resourceVersion\":\"");
		if (!p)
			die("watch: no resourceVersion in the list");
		p += 19;
		snprintf(rv, sizeof rv, "%.*s", (int)strcspn(p, "\""), p);
		conn_consume(&wr, used);
		wr.busy = false;
		rl = snprintf(req, sizeof req,
			      "GET %s?watch=true&resourceVersion=%s "
			      "HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			      "Accept: application/json\r\n\r\n",
			      opt.path, rv);
	} else {
		char kb[512], eb[512], end[256], body[1200];
		size_t pl;
		int bl;
		if (!opt.prefix)
			die("--prefix is required");
		pl = strlen(opt.prefix);
		memcpy(end, opt.prefix, pl + 1);
		end[pl - 1]++;
		b64(opt.prefix, pl, kb);
		b64(end, pl, eb);
		bl = snprintf(body, sizeof body,
			      "{\"create_request\":{\"key\":\"%s\","
			      "\"range_end\":\"%s\"}}",
			      kb, eb);
		rl = snprintf(req, sizeof req,
			      "POST /v3/watch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			      "Content-Type: application/json\r\n"
			      "Content-Length: %d\r\n\r\n%s",
			      bl, body);
	}

	/* Open the watchers, at most max_pending not yet established. */
	tsetup = now_s();
	while (established < N && now_s() < tdead) {
		int nev;
		while (opened < N && pending < max_pending) {
			conn_open(&ws[opened], opened);
			conn_send(&ws[opened], req, (size_t)rl);
			opened++;
			pending++;
		}
		nev = epoll_wait(epfd, evs, 1024, 100);
		for (i = 0; i < nev; i++) {
			conn *c = evs[i].data.ptr;
			ssize_t r;
			if (c == &wr)
				continue;
			if (evs[i].events & EPOLLOUT)
				conn_flush(c);
			r = conn_read(c);
			if (r == 0)
				die("watch: watcher %d was closed by the "
				    "server during setup after %d were "
				    "established: %.300s",
				    c->idx, established, c->rb ? c->rb : "");
			if (r < 0 || c->established)
				continue;
			c->rb[c->rlen] = '\0';
			if (!memmem(c->rb, c->rlen, "\r\n\r\n", 4))
				continue;
			if (strncmp(c->rb, "HTTP/1.1 200", 12))
				die("watch: watcher %d got %.300s", c->idx,
				    c->rb);
			/* etcd: wait for the "created" message */
			if (!sb && !strstr(c->rb, "\"created\":true"))
				continue;
			c->established = true;
			c->rlen = 0;
			established++;
			pending--;
		}
	}
	tsetup = now_s() - tsetup;
	if (established < N) {
		printf("mode=watch-%s watchers=%d established=%d "
		       "setup_s=%.2f timed_out=1\n",
		       opt.mode, N, established, tsetup);
		return 1;
	}
	/* let the server settle after the connection storm */
	usleep(200000);

	cpu_snap(opt.pid, &s0);
	for (trial = 0; trial < opt.trials; trial++) {
		char name[128], marker[600], body[4096];
		int bl, got = 0;
		double t0, tlim, tack = 0;
		size_t ml;
		if (now_s() > tdead) {
			timed_out = 1;
			break;
		}
		/* drain whatever came between trials (bookmarks, newlines) */
		for (;;) {
			int nev = epoll_wait(epfd, evs, 1024, 0);
			if (nev <= 0)
				break;
			for (i = 0; i < nev; i++) {
				conn *c = evs[i].data.ptr;
				if (conn_read(c) == 0 && c != &wr)
					die("watch: watcher %d closed by the "
					    "server between trials",
					    c->idx);
				if (c != &wr)
					c->rlen = 0;
			}
		}
		for (i = 0; i < N; i++) {
			ws[i].got = false;
			ws[i].tail_len = 0;
		}
		snprintf(name, sizeof name, "%s-%d-%ld", opt.name_prefix,
			 trial, (long)getpid());
		if (sb) {
			bl = snprintf(
				body, sizeof body,
				"{\"apiVersion\":\"bench.signalbox.dev/v1\","
				"\"kind\":\"Widget\",\"metadata\":{\"name\":"
				"\"%s\"},\"spec\":{\"description\":\"%.200s\"}}",
				name, value_text);
			rl = snprintf(wreq, sizeof wreq,
				      "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				      "Content-Type: application/json\r\n"
				      "Content-Length: %d\r\n\r\n%s",
				      opt.path, bl, body);
			snprintf(marker, sizeof marker, "\"name\":\"%s\"",
				 name);
		} else {
			char key[256], kb[512], vb[1024];
			snprintf(key, sizeof key, "%s%s", opt.prefix, name);
			b64(key, strlen(key), kb);
			b64(value_text, strlen(value_text), vb);
			bl = snprintf(body, sizeof body,
				      "{\"key\":\"%s\",\"value\":\"%s\"}", kb,
				      vb);
			rl = snprintf(wreq, sizeof wreq,
				      "POST /v3/kv/put HTTP/1.1\r\nHost: "
				      "127.0.0.1\r\nContent-Type: "
				      "application/json\r\n"
				      "Content-Length: %d\r\n\r\n%s",
				      bl, body);
			snprintf(marker, sizeof marker, "\"%s\"", kb);
		}
		ml = strlen(marker);
		t0 = now_s();
		conn_send(&wr, wreq, (size_t)rl);
		tlim = t0 + 10; /* per trial */
		while ((got < N || wr.busy) && now_s() < tlim &&
		       now_s() < tdead) {
			int nev = epoll_wait(epfd, evs, 1024, 50);
			for (i = 0; i < nev; i++) {
				conn *c = evs[i].data.ptr;
				ssize_t r;
				double tn;
				char *hay;
				size_t hl;
				if (evs[i].events & EPOLLOUT)
					conn_flush(c);
				r = conn_read(c);
				tn = now_s();
				if (c == &wr) {
					size_t used;
					if (r == 0)
						die("watch: the writer was "
						    "closed by the server");
					if (http_parse(c, &used) == 1) {
						if (c->status < 200 ||
						    c->status >= 300)
							fprintf(stderr,
								"sbload: write "
								"got HTTP %d: "
								"%.300s\n",
								c->status,
								resp_body(c));
						tack = tn - t0;
						conn_consume(c, used);
						c->busy = false;
					}
					continue;
				}
				if (r == 0)
					die("watch: watcher %d closed by the "
					    "server during trial %d",
					    c->idx, trial);
				if (r < 0 || c->got) {
					c->rlen = 0;
					continue;
				}
				/* search tail + new bytes for the marker */
				hl = c->tail_len + c->rlen;
				hay = xmalloc(hl + 1);
				memcpy(hay, c->tail, c->tail_len);
				memcpy(hay + c->tail_len, c->rb, c->rlen);
				if (memmem(hay, hl, marker, ml)) {
					c->got = true;
					c->t_got = tn - t0;
					dvec_push(&deliv, tn - t0);
					got++;
				} else {
					size_t keep = hl < sizeof c->tail
							      ? hl
							      : sizeof c->tail;
					memcpy(c->tail, hay + hl - keep, keep);
					c->tail_len = keep;
				}
				free(hay);
				c->rlen = 0;
			}
		}
		if (got < N) {
			missing_total += N - got;
			fprintf(stderr,
				"sbload: trial %d: %d of %d watchers did not "
				"get the event in 10 s\n",
				trial, N - got, N);
			dvec_push(&last, 10.0);
		} else {
			double mx = 0;
			for (i = 0; i < N; i++)
				if (ws[i].t_got > mx)
					mx = ws[i].t_got;
			dvec_push(&last, mx);
		}
		dvec_push(&ack, tack);
		usleep(100000);
	}
	cpu_snap(opt.pid, &s1);
	qsort(deliv.v, deliv.n, sizeof(double), cmp_double);
	qsort(last.v, last.n, sizeof(double), cmp_double);
	qsort(ack.v, ack.n, sizeof(double), cmp_double);
	printf("mode=watch-%s watchers=%d trials=%zu setup_s=%.2f "
	       "deliveries=%zu missing=%d "
	       "deliv_p50_ms=%.2f deliv_p99_ms=%.2f deliv_max_ms=%.2f "
	       "last_p50_ms=%.2f last_p99_ms=%.2f last_max_ms=%.2f "
	       "ack_p50_ms=%.2f timed_out=%d",
	       opt.mode, N, last.n, tsetup, deliv.n, missing_total,
	       pct(deliv.v, deliv.n, 50) * 1e3, pct(deliv.v, deliv.n, 99) * 1e3,
	       deliv.n ? deliv.v[deliv.n - 1] * 1e3 : 0,
	       pct(last.v, last.n, 50) * 1e3, pct(last.v, last.n, 99) * 1e3,
	       last.n ? last.v[last.n - 1] * 1e3 : 0,
	       pct(ack.v, ack.n, 50) * 1e3, timed_out);
	cpu_report(opt.pid, &s0, &s1);
	printf("\n");
	fflush(stdout);
	for (i = 0; i < N; i++)
		if (ws[i].fd > 0 || i < opened)
			conn_close(&ws[i]);
	conn_close(&wr);
	free(ws);
	return missing_total || timed_out ? 1 : 0;
}

/* ---- main ------------------------------------------------------------------------ */

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
		die("usage: sbload freeport|load|list|watch [options]");
	if (!strcmp(argv[1], "freeport"))
		return cmd_freeport();
	parse_opts(argc, argv);
	if (!strcmp(argv[1], "load"))
		return cmd_load();
	if (!strcmp(argv[1], "list"))
		return cmd_list();
	if (!strcmp(argv[1], "watch"))
		return cmd_watch();
	die("unknown command %s", argv[1]);
	return 2;
}
