/*
 * wgctl.c -- the WireGuard device: wireguard-go over UAPI, or the kernel
 * module through `wg` (wgctl.h). Privileged half only; everything it is
 * given was checked by dpc_decode.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/alog.h"
#include "agent/proc.h"
#include "agent/wgctl.h"
#include "util/strbuf.h"

struct wgctl {
	char ifname[16];
	wgctl_mode mode; /* KERNEL or USERSPACE */
	char state_dir[PATH_MAX / 2];
	uint8_t key[ADDR_KEY_LEN];
	uint16_t listen_port;
	pid_t go_pid;  /* wireguard-go, ours or recorded; 0: unknown */
	bool go_child; /* started by this process (reap it) */
};

/* ---- reading the device ----------------------------------------------- */

void wgctl_dev_free(wgctl_dev *dev)
{
	for (size_t i = 0; i < dev->npeers; i++)
		free(dev->peers[i].allowed.v);
	free(dev->peers);
	memset(dev, 0, sizeof(*dev));
}

static int peer_cmp(const void *a, const void *b)
{
	return memcmp(((const wgctl_peer *)a)->key,
		      ((const wgctl_peer *)b)->key, ADDR_KEY_LEN);
}

static int cidr_cmp(const void *a, const void *b)
{
	return addr_cidr_cmp(a, b);
}

static wgctl_peer *dev_add_peer(wgctl_dev *dev)
{
	wgctl_peer *p = realloc(dev->peers, (dev->npeers + 1) * sizeof(*p));

	if (!p)
		return NULL;
	dev->peers = p;
	p = &dev->peers[dev->npeers++];
	memset(p, 0, sizeof(*p));
	return p;
}

static int peer_add_allowed(wgctl_peer *p, const char *s)
{
	addr_cidr c, *v;

	/* IPv6 allowed IPs are not the agent's: they are ignored here and
	 * so replaced on the next change of this peer */
	if (addr_cidr_parse(s, true, &c))
		return strchr(s, ':') ? 0 : -EINVAL;
	v = realloc(p->allowed.v, (p->allowed.n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	p->allowed.v = v;
	v[p->allowed.n++] = c;
	return 0;
}

static void dev_sort(wgctl_dev *dev)
{
	if (dev->npeers)
		qsort(dev->peers, dev->npeers, sizeof(*dev->peers), peer_cmp);
	for (size_t i = 0; i < dev->npeers; i++)
		if (dev->peers[i].allowed.n)
			qsort(dev->peers[i].allowed.v, dev->peers[i].allowed.n,
			      sizeof(addr_cidr), cidr_cmp);
}

int wgctl_uapi_parse(const char *text, wgctl_dev *dev)
{
	wgctl_peer *p = NULL;
	const char *line = text, *nl;
	int r = 0;

	memset(dev, 0, sizeof(*dev));
	for (; *line && !r; line = nl ? nl + 1 : line + strlen(line)) {
		char k[64], v[256];
		const char *eq;
		size_t kn, vn;

		nl = strchr(line, '\n');
		vn = nl ? (size_t)(nl - line) : strlen(line);
		if (!vn)
			break;
		eq = memchr(line, '=', vn);
		if (!eq || (kn = (size_t)(eq - line)) >= sizeof(k) ||
		    vn - kn - 1 >= sizeof(v)) {
			r = -EINVAL;
			break;
		}
		memcpy(k, line, kn);
		k[kn] = '\0';
		vn -= kn + 1;
		memcpy(v, eq + 1, vn);
		v[vn] = '\0';
		if (!strcmp(k, "private_key")) {
			r = addr_key_from_hex(v, dev->private_key);
			dev->has_private_key = !r;
		} else if (!strcmp(k, "listen_port")) {
			dev->listen_port = (uint16_t)strtoul(v, NULL, 10);
		} else if (!strcmp(k, "public_key")) {
			p = dev_add_peer(dev);
			r = p ? addr_key_from_hex(v, p->key) : -ENOMEM;
		} else if (!strcmp(k, "errno")) {
			if (strcmp(v, "0"))
				r = -EIO;
		} else if (!p) {
			continue; /* fwmark and what may come */
		} else if (!strcmp(k, "endpoint")) {
			p->has_endpoint = !addr_endpoint_parse(v, &p->endpoint);
		} else if (!strcmp(k, "allowed_ip")) {
			r = peer_add_allowed(p, v);
		} else if (!strcmp(k, "last_handshake_time_sec")) {
			p->last_handshake = strtoll(v, NULL, 10);
		} else if (!strcmp(k, "persistent_keepalive_interval")) {
			p->keepalive = (uint16_t)strtoul(v, NULL, 10);
		}
	}
	if (r) {
		wgctl_dev_free(dev);
		return r;
	}
	dev_sort(dev);
	return 0;
}

int wgctl_dump_parse(const char *text, wgctl_dev *dev)
{
	const char *line = text, *nl;
	bool first = true;
	int r = 0;

	memset(dev, 0, sizeof(*dev));
	for (; *line && !r;
	     line = nl ? nl + 1 : line + strlen(line), first = false) {
		char buf[8192], *f[9], *save = NULL, *tok;
		size_t n = 0, len;

		nl = strchr(line, '\n');
		len = nl ? (size_t)(nl - line) : strlen(line);
		if (!len)
			continue;
		if (len >= sizeof(buf)) {
			r = -EINVAL;
			break;
		}
		memcpy(buf, line, len);
		buf[len] = '\0';
		for (tok = strtok_r(buf, "\t", &save); tok && n < 9;
		     tok = strtok_r(NULL, "\t", &save))
			f[n++] = tok;
		if (first) {
			/* private-key public-key listen-port fwmark */
			if (n < 3) {
				r = -EINVAL;
				break;
			}
			dev->has_private_key =
			    !addr_key_from_base64(f[0], dev->private_key);
			dev->listen_port = (uint16_t)strtoul(f[2], NULL, 10);
			continue;
		}
		/* public-key psk endpoint allowed-ips handshake rx tx ka */
		if (n < 8) {
			r = -EINVAL;
			break;
		}
		wgctl_peer *p = dev_add_peer(dev);

		if (!p || addr_key_from_base64(f[0], p->key)) {
			r = p ? -EINVAL : -ENOMEM;
			break;
		}
		p->has_endpoint = !addr_endpoint_parse(f[2], &p->endpoint);
		if (strcmp(f[3], "(none)")) {
			char *s2 = NULL;

			for (tok = strtok_r(f[3], ",", &s2); tok && !r;
			     tok = strtok_r(NULL, ",", &s2))
				r = peer_add_allowed(p, tok);
		}
		p->last_handshake = strtoll(f[4], NULL, 10);
		p->keepalive = (uint16_t)strtoul(f[7], NULL, 10);
	}
	if (r) {
		wgctl_dev_free(dev);
		return r;
	}
	dev_sort(dev);
	return 0;
}

/* ---- the diff --------------------------------------------------------- */

static const wgctl_peer *dev_find(const wgctl_dev *dev,
				  const uint8_t k[ADDR_KEY_LEN])
{
	wgctl_peer probe;

	if (!dev->npeers)
		return NULL;
	memcpy(probe.key, k, ADDR_KEY_LEN);
	return bsearch(&probe, dev->peers, dev->npeers, sizeof(*dev->peers),
		       peer_cmp);
}

static bool cidrs_same(const dpc_cidrs *a, const dpc_cidrs *b)
{
	return addr_cidrs_equal(a->v, a->n, b->v, b->n);
}

void wgctl_diff_free(wgctl_diff *d)
{
	free(d->ops);
	memset(d, 0, sizeof(*d));
}

bool wgctl_diff_empty(const wgctl_diff *d)
{
	return !d->set_private_key && !d->listen_port && !d->nops;
}

int wgctl_make_diff(const wgctl_dev *cur, const uint8_t key[ADDR_KEY_LEN],
		    uint16_t listen_port, const dpc *want, wgctl_diff *d)
{
	size_t i, k;

	memset(d, 0, sizeof(*d));
	if (key && (!cur->has_private_key ||
		    memcmp(cur->private_key, key, ADDR_KEY_LEN))) {
		d->set_private_key = true;
		memcpy(d->private_key, key, ADDR_KEY_LEN);
	}
	if (listen_port && cur->listen_port != listen_port)
		d->listen_port = listen_port;
	d->ops = calloc(cur->npeers + want->npeers + 1, sizeof(*d->ops));
	if (!d->ops)
		return -ENOMEM;
	for (i = 0; i < cur->npeers; i++) {
		if (dpc_peer_find(want, cur->peers[i].key))
			continue;
		memcpy(d->ops[d->nops].key, cur->peers[i].key, ADDR_KEY_LEN);
		d->ops[d->nops++].remove = true;
	}
	for (i = 0; i < want->npeers; i++) {
		const dpc_peer *w = &want->peers[i];
		const wgctl_peer *c = dev_find(cur, w->key);
		wgctl_op *op = &d->ops[d->nops];

		memcpy(op->key, w->key, ADDR_KEY_LEN);
		if (!c) {
			op->add = true;
			op->endpoint = w->nendpoints ? &w->endpoints[0] : NULL;
			op->allowed = &w->allowed;
			d->nops++;
			continue;
		}
		if (!cidrs_same(&c->allowed, &w->allowed))
			op->allowed = &w->allowed;
		for (k = 0; k < w->nendpoints; k++)
			if (c->has_endpoint &&
			    addr_endpoint_eq(&c->endpoint, &w->endpoints[k]))
				break;
		if (w->nendpoints && k == w->nendpoints)
			op->endpoint = &w->endpoints[0];
		if (op->allowed || op->endpoint)
			d->nops++;
	}
	return 0;
}

char *wgctl_uapi_text(const wgctl_diff *d)
{
	char hex[ADDR_KEY_HEX_LEN + 1], buf[ADDR_ENDPOINT_MAX];
	strbuf b = {0};

	strbuf_puts(&b, "set=1\n");
	if (d->set_private_key) {
		addr_key_to_hex(d->private_key, hex);
		strbuf_printf(&b, "private_key=%s\n", hex);
	}
	if (d->listen_port)
		strbuf_printf(&b, "listen_port=%u\n", d->listen_port);
	for (size_t i = 0; i < d->nops; i++) {
		const wgctl_op *op = &d->ops[i];

		addr_key_to_hex(op->key, hex);
		strbuf_printf(&b, "public_key=%s\n", hex);
		if (op->remove) {
			strbuf_puts(&b, "remove=true\n");
			continue;
		}
		if (!op->add)
			strbuf_puts(&b, "update_only=true\n");
		if (op->endpoint) {
			addr_endpoint_format(op->endpoint, buf);
			strbuf_printf(&b, "endpoint=%s\n", buf);
		}
		if (op->add)
			strbuf_printf(&b, "persistent_keepalive_interval=%d\n",
				      WGCTL_KEEPALIVE);
		if (op->allowed) {
			strbuf_puts(&b, "replace_allowed_ips=true\n");
			for (size_t k = 0; k < op->allowed->n; k++) {
				addr_cidr_format(&op->allowed->v[k], buf);
				strbuf_printf(&b, "allowed_ip=%s\n", buf);
			}
		}
	}
	strbuf_putc(&b, '\n');
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

void wgctl_argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **a = argv; *a; a++)
		free(*a);
	free(argv);
}

char **wgctl_wg_argv(const char *ifname, const wgctl_diff *d)
{
	size_t cap = 8 + d->nops * 10, n = 0;
	char **v = calloc(cap, sizeof(*v)), b64[ADDR_KEY_B64_LEN + 1],
	     buf[ADDR_ENDPOINT_MAX];
	bool oom = false;

#define ARG(s)                                                                 \
	do {                                                                   \
		if (!oom && !(v[n++] = strdup(s)))                             \
			oom = true;                                            \
	} while (0)
	if (!v)
		return NULL;
	ARG("wg");
	ARG("set");
	ARG(ifname);
	if (d->set_private_key) {
		ARG("private-key");
		ARG("/dev/stdin");
	}
	if (d->listen_port) {
		snprintf(buf, sizeof(buf), "%u", d->listen_port);
		ARG("listen-port");
		ARG(buf);
	}
	for (size_t i = 0; i < d->nops; i++) {
		const wgctl_op *op = &d->ops[i];

		addr_key_to_base64(op->key, b64);
		ARG("peer");
		ARG(b64);
		if (op->remove) {
			ARG("remove");
			continue;
		}
		if (op->endpoint) {
			addr_endpoint_format(op->endpoint, buf);
			ARG("endpoint");
			ARG(buf);
		}
		if (op->add) {
			snprintf(buf, sizeof(buf), "%d", WGCTL_KEEPALIVE);
			ARG("persistent-keepalive");
			ARG(buf);
		}
		if (op->allowed) {
			strbuf s = {0};

			for (size_t k = 0; k < op->allowed->n; k++) {
				addr_cidr_format(&op->allowed->v[k], buf);
				if (k)
					strbuf_putc(&s, ',');
				strbuf_puts(&s, buf);
			}
			ARG("allowed-ips");
			ARG(strbuf_str(&s));
			oom |= s.oom;
			free(s.p);
		}
	}
#undef ARG
	if (oom) {
		wgctl_argv_free(v);
		return NULL;
	}
	return v;
}

/* ---- userspace: the UAPI socket --------------------------------------- */

static void sock_path(const wgctl *w, char *out, size_t n)
{
	snprintf(out, n, "%s/%s.sock", WGCTL_SOCKET_DIR, w->ifname);
}

static int uapi_connect(const wgctl *w)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {5, 0};
	int fd;

	sock_path(w, sa.sun_path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

/* Send req, read the answer up to the empty line; *ans NEW. */
static int uapi_call(const wgctl *w, const char *req, char **ans)
{
	size_t len = 0, cap = 0, off = 0, reqlen = strlen(req);
	char *buf = NULL;
	int fd = uapi_connect(w), r = 0;

	*ans = NULL;
	if (fd < 0)
		return fd;
	while (off < reqlen) {
		ssize_t n = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		off += (size_t)n;
	}
	for (;;) {
		ssize_t n;

		if (len + 4097 > cap) {
			char *b = realloc(buf, cap = cap ? 2 * cap : 8192);

			if (!b || cap > (64u << 20)) {
				free(b ? b : buf);
				buf = NULL;
				r = -ENOMEM;
				goto out;
			}
			buf = b;
		}
		n = recv(fd, buf + len, 4096, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EPIPE;
			goto out;
		}
		len += (size_t)n;
		buf[len] = '\0';
		if ((len == 1 && buf[0] == '\n') ||
		    (len >= 2 && !strcmp(buf + len - 2, "\n\n")))
			break;
	}
	*ans = buf;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return r;
}

static int uapi_errno(const char *ans)
{
	const char *e = strstr(ans, "errno=");

	if (!e)
		return -EPROTO;
	return atoi(e + 6) ? -EIO : 0;
}

/* ---- kernel: wg and ip ------------------------------------------------ */

static int run(char *const argv[], const char *in, size_t inlen, char **out,
	       char *err, size_t errlen)
{
	char msg[512];
	int r = proc_run(argv, in, inlen, out, msg, sizeof(msg));

	if (r) {
		alog_errf(err, errlen, "%s %s: %s", argv[0], argv[1],
			  r < 0 ? strerror(-r) : msg);
		if (out) {
			free(*out);
			*out = NULL;
		}
		return r < 0 ? r : -EIO;
	}
	return 0;
}

static bool link_exists(const char *ifname)
{
	char path[64];

	snprintf(path, sizeof(path), "/sys/class/net/%s", ifname);
	return access(path, F_OK) == 0;
}

/* Write d to the device: UAPI "set=1", or `wg set` with the private key
 * on its standard input. */
static int diff_write(wgctl *w, const wgctl_diff *d, char *err, size_t errlen)
{
	char b64[ADDR_KEY_B64_LEN + 2];
	int r;

	if (w->mode == WGCTL_USERSPACE) {
		char *req = wgctl_uapi_text(d), *ans = NULL;

		r = req ? uapi_call(w, req, &ans) : -ENOMEM;
		if (!r)
			r = uapi_errno(ans);
		if (r)
			alog_errf(err, errlen, "%s: UAPI set: %s", w->ifname,
				  strerror(-r));
		if (req)
			explicit_bzero(req, strlen(req));
		free(req);
		free(ans);
		return r;
	}
	char **argv = wgctl_wg_argv(w->ifname, d);

	addr_key_to_base64(w->key, b64);
	strcat(b64, "\n");
	r = argv ? run(argv, b64, strlen(b64), NULL, err, errlen) : -ENOMEM;
	explicit_bzero(b64, sizeof(b64));
	wgctl_argv_free(argv);
	return r;
}

/* ---- the interface ---------------------------------------------------- */

static void pid_path(const wgctl *w, char *out, size_t n)
{
	snprintf(out, n, "%s/wireguard-go.pid", w->state_dir);
}

static pid_t pid_read(const wgctl *w)
{
	char path[PATH_MAX], buf[32] = "";
	FILE *f;
	long v;

	pid_path(w, path, sizeof(path));
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	v = strtol(buf, NULL, 10);
	return v > 1 ? (pid_t)v : 0;
}

static int pid_write(const wgctl *w, pid_t pid)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	FILE *f;

	pid_path(w, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	fprintf(f, "%d\n", (int)pid);
	if (fclose(f) || rename(tmp, path))
		return -errno;
	return 0;
}

static int start_userspace(wgctl *w, char *err, size_t errlen)
{
	char log[PATH_MAX], *argv[] = {"wireguard-go", "-f", w->ifname, NULL};
	pid_t pid;
	int i, fd;

	mkdir(WGCTL_SOCKET_DIR, 0755);
	snprintf(log, sizeof(log), "%s/wireguard-go.log", w->state_dir);
	pid = proc_spawn(argv, log);
	if (pid < 0) {
		alog_errf(err, errlen, "starting wireguard-go: %s",
			  strerror(-pid));
		return (int)pid;
	}
	w->go_pid = pid;
	w->go_child = true;
	pid_write(w, pid);
	for (i = 0; i < 100; i++) {
		int st;

		if ((fd = uapi_connect(w)) >= 0) {
			close(fd);
			return 0;
		}
		if (waitpid(pid, &st, WNOHANG) == pid) {
			w->go_pid = 0;
			alog_errf(err, errlen,
				  "wireguard-go -f %s exited (see %s)",
				  w->ifname, log);
			return -EIO;
		}
		usleep(50000);
	}
	alog_errf(err, errlen, "wireguard-go -f %s: no UAPI socket after 5 s",
		  w->ifname);
	return -ETIMEDOUT;
}

/* Make or find the device; w->mode is resolved here. */
static int take_device(wgctl *w, wgctl_mode want, char *err, size_t errlen)
{
	char *add[] = {"ip",   "link",	    "add", w->ifname,
		       "type", "wireguard", NULL};
	int fd = uapi_connect(w);

	if (fd >= 0) {
		close(fd);
		w->mode = WGCTL_USERSPACE;
		w->go_pid = pid_read(w);
		return 0;
	}
	if (link_exists(w->ifname)) {
		if (want == WGCTL_USERSPACE) {
			alog_errf(err, errlen,
				  "%s exists but has no UAPI socket: not a "
				  "wireguard-go interface",
				  w->ifname);
			return -EEXIST;
		}
		w->mode = WGCTL_KERNEL;
		return 0;
	}
	if (want != WGCTL_USERSPACE && !run(add, NULL, 0, NULL, err, errlen)) {
		w->mode = WGCTL_KERNEL;
		return 0;
	}
	if (want == WGCTL_KERNEL)
		return -EIO;
	w->mode = WGCTL_USERSPACE;
	return start_userspace(w, err, errlen);
}

int wgctl_open(const char *ifname, wgctl_mode mode, const char *state_dir,
	       const uint8_t private_key[ADDR_KEY_LEN], uint16_t listen_port,
	       wgctl **out, char *err, size_t errlen)
{
	wgctl *w;
	dpc none;
	int r;

	*out = NULL;
	if (!addr_ifname_ok(ifname) ||
	    strlen(state_dir) >= sizeof(w->state_dir)) {
		alog_errf(err, errlen, "bad interface name or state directory");
		return -EINVAL;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	snprintf(w->ifname, sizeof(w->ifname), "%s", ifname);
	snprintf(w->state_dir, sizeof(w->state_dir), "%s", state_dir);
	memcpy(w->key, private_key, ADDR_KEY_LEN);
	w->listen_port = listen_port;
	if ((r = take_device(w, mode, err, errlen)))
		goto fail;
	/* the key and port now; the peers come with the first map. An
	 * interface reused after a restart keeps its peers meanwhile. */
	{
		wgctl_dev cur;
		wgctl_diff d;

		memset(&none, 0, sizeof(none));
		if ((r = wgctl_get(w, &cur, err, errlen)))
			goto fail;
		r = wgctl_make_diff(&cur, w->key, w->listen_port, &none, &d);
		wgctl_dev_free(&cur);
		if (r)
			goto fail;
		/* keep the peers: only the key and the port */
		d.nops = 0;
		if (!wgctl_diff_empty(&d))
			r = diff_write(w, &d, err, errlen);
		wgctl_diff_free(&d);
		if (r) {
			alog_errf(err, errlen,
				  "%s: setting the key and port: %s", w->ifname,
				  strerror(-r));
			goto fail;
		}
	}
	*out = w;
	return 0;
fail:
	explicit_bzero(w->key, sizeof(w->key));
	free(w);
	return r;
}

void wgctl_close(wgctl *w)
{
	if (!w)
		return;
	explicit_bzero(w->key, sizeof(w->key));
	free(w);
}

wgctl_mode wgctl_backend(const wgctl *w)
{
	return w->mode;
}

int wgctl_get(wgctl *w, wgctl_dev *dev, char *err, size_t errlen)
{
	char *ans = NULL;
	int r;

	memset(dev, 0, sizeof(*dev));
	if (w->mode == WGCTL_USERSPACE) {
		r = uapi_call(w, "get=1\n\n", &ans);
		if (r) {
			alog_errf(err, errlen, "%s: UAPI get: %s", w->ifname,
				  strerror(-r));
			return r;
		}
		r = wgctl_uapi_parse(ans, dev);
	} else {
		char *argv[] = {"wg", "show", w->ifname, "dump", NULL};

		if ((r = run(argv, NULL, 0, &ans, err, errlen)))
			return r;
		r = wgctl_dump_parse(ans, dev);
	}
	if (ans)
		explicit_bzero(ans, strlen(ans));
	free(ans);
	if (r)
		alog_errf(err, errlen, "%s: cannot read the device: %s",
			  w->ifname, strerror(-r));
	return r;
}

/* wireguard-go gone (killed, crashed): start it again. */
static int revive(wgctl *w, char *err, size_t errlen)
{
	int fd;

	if (w->mode != WGCTL_USERSPACE)
		return 0;
	if ((fd = uapi_connect(w)) >= 0) {
		close(fd);
		return 0;
	}
	if (w->go_child && w->go_pid > 0)
		waitpid(w->go_pid, NULL, WNOHANG);
	return start_userspace(w, err, errlen);
}

int wgctl_apply(wgctl *w, const dpc *want, size_t *nchanges, char *err,
		size_t errlen)
{
	wgctl_dev cur;
	wgctl_diff d;
	int r;

	if (nchanges)
		*nchanges = 0;
	if ((r = revive(w, err, errlen)))
		return r;
	if ((r = wgctl_get(w, &cur, err, errlen)))
		return r;
	r = wgctl_make_diff(&cur, w->key, w->listen_port, want, &d);
	wgctl_dev_free(&cur);
	if (r)
		return r;
	if (nchanges)
		*nchanges = d.nops;
	if (wgctl_diff_empty(&d))
		goto out;
	r = diff_write(w, &d, err, errlen);
out:
	wgctl_diff_free(&d);
	return r;
}

int wgctl_down(wgctl *w, char *err, size_t errlen)
{
	char *del[] = {"ip", "link", "del", w->ifname, NULL};
	char path[PATH_MAX];
	pid_t pid = w->go_pid ? w->go_pid : pid_read(w);
	int r = 0;

	if (w->mode == WGCTL_USERSPACE && pid > 0) {
		/* only the process we recorded, and only if it still is
		 * wireguard-go */
		char comm[64] = "", cpath[64];
		FILE *f;

		snprintf(cpath, sizeof(cpath), "/proc/%d/comm", (int)pid);
		if ((f = fopen(cpath, "re"))) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = '\0';
			fclose(f);
		}
		if (!strncmp(comm, "wireguard-go", 12)) {
			kill(pid, SIGTERM);
			for (int i = 0; i < 100 && !kill(pid, 0); i++) {
				if (w->go_child &&
				    waitpid(pid, NULL, WNOHANG) == pid)
					break;
				usleep(20000);
			}
		}
		pid_path(w, path, sizeof(path));
		unlink(path);
	}
	if (link_exists(w->ifname))
		r = run(del, NULL, 0, NULL, err, errlen);
	return r;
}
