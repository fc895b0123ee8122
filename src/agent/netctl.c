/*
 * netctl.c -- address, routes, link and forwarding with `ip` (netctl.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/netctl.h"
#include "agent/proc.h"

static int run(char *const argv[], char **out, char *err, size_t errlen)
{
	char msg[512];
	int r = proc_run(argv, NULL, 0, out, msg, sizeof(msg));

	if (r) {
		snprintf(err, errlen, "%s %s %s %s: %s", argv[0], argv[1],
			 argv[2], argv[3] ? argv[3] : "",
			 r < 0 ? strerror(-r) : msg);
		if (out) {
			free(*out);
			*out = NULL;
		}
		return r < 0 ? r : -EIO;
	}
	return 0;
}

static int push(addr_cidr **v, size_t *n, const addr_cidr *c)
{
	addr_cidr *p = realloc(*v, (*n + 1) * sizeof(*p));

	if (!p)
		return -ENOMEM;
	*v = p;
	p[(*n)++] = *c;
	return 0;
}

int netctl_parse_addrs(const char *text, addr_cidr **out, size_t *n)
{
	const char *p = text;

	*out = NULL;
	*n = 0;
	/* "3: wg0    inet 100.64.0.1/10 scope global wg0\ ..." */
	while ((p = strstr(p, " inet "))) {
		char buf[ADDR_CIDR_MAX], ipbuf[16];
		size_t k = 0;
		addr_cidr c;
		char *slash;

		p += 6;
		while (*p && *p != ' ' && *p != '\n' && k + 1 < sizeof(buf))
			buf[k++] = *p++;
		buf[k] = '\0';
		if (addr_cidr_parse(buf, true, &c) ||
		    !(slash = strchr(buf, '/')))
			continue;
		snprintf(ipbuf, sizeof(ipbuf), "%.*s", (int)(slash - buf), buf);
		if (addr_ip4_parse(ipbuf, &c.ip))
			continue;
		if (push(out, n, &c)) {
			free(*out);
			*out = NULL;
			*n = 0;
			return -ENOMEM;
		}
	}
	return 0;
}

int netctl_parse_routes(const char *text, addr_cidr **out, size_t *n)
{
	const char *line = text, *nl;

	*out = NULL;
	*n = 0;
	for (; *line; line = nl ? nl + 1 : line + strlen(line)) {
		char buf[ADDR_CIDR_MAX];
		size_t k = 0;
		addr_cidr c;

		nl = strchr(line, '\n');
		while (line[k] && line[k] != ' ' && line[k] != '\n' &&
		       k + 4 < sizeof(buf)) {
			buf[k] = line[k];
			k++;
		}
		buf[k] = '\0';
		if (!strchr(buf, '/'))
			strcat(buf, "/32");
		if (addr_cidr_parse(buf, false, &c))
			continue; /* "default", "broadcast ..." */
		if (push(out, n, &c)) {
			free(*out);
			*out = NULL;
			*n = 0;
			return -ENOMEM;
		}
	}
	return 0;
}

static int sync_address(const char *ifname, const dpc *c, size_t *nch,
			char *err, size_t errlen)
{
	char *show[] = {"ip",	"-4",  "-o",	       "addr",
			"show", "dev", (char *)ifname, NULL};
	char *out = NULL, want[ADDR_CIDR_MAX], ip[16], buf[ADDR_CIDR_MAX];
	addr_cidr *have = NULL;
	bool present = false;
	size_t n = 0, i;
	int r;

	if ((r = run(show, &out, err, errlen)))
		return r;
	r = netctl_parse_addrs(out, &have, &n);
	free(out);
	if (r)
		return r;
	addr_ip4_format(c->address, ip);
	snprintf(want, sizeof(want), "%s/%u", ip, c->prefix_len);
	for (i = 0; i < n && !r; i++) {
		char hip[16];

		addr_ip4_format(have[i].ip, hip);
		snprintf(buf, sizeof(buf), "%s/%u", hip, have[i].len);
		if (c->has_address && !strcmp(buf, want)) {
			present = true;
			continue;
		}
		char *del[] = {"ip",  "addr",	      "del", buf,
			       "dev", (char *)ifname, NULL};

		r = run(del, NULL, err, errlen);
		(*nch)++;
	}
	free(have);
	if (!r && c->has_address && !present) {
		char *add[] = {"ip",  "addr",	      "add", want,
			       "dev", (char *)ifname, NULL};

		r = run(add, NULL, err, errlen);
		(*nch)++;
	}
	return r;
}

static bool has_cidr(const addr_cidr *v, size_t n, const addr_cidr *c)
{
	for (size_t i = 0; i < n; i++)
		if (!addr_cidr_cmp(&v[i], c))
			return true;
	return false;
}

static int sync_routes(const char *ifname, const dpc *c, size_t *nch, char *err,
		       size_t errlen)
{
	char *show[] = {"ip",  "-4",	       "-o",	"route",  "show",
			"dev", (char *)ifname, "proto", "static", NULL};
	char *out = NULL, buf[ADDR_CIDR_MAX];
	addr_cidr *have = NULL;
	size_t n = 0, i;
	int r;

	if ((r = run(show, &out, err, errlen)))
		return r;
	r = netctl_parse_routes(out, &have, &n);
	free(out);
	for (i = 0; i < n && !r; i++) {
		if (has_cidr(c->routes.v, c->routes.n, &have[i]))
			continue;
		addr_cidr_format(&have[i], buf);
		char *del[] = {"ip",	       "route", "del",	  buf, "dev",
			       (char *)ifname, "proto", "static", NULL};

		r = run(del, NULL, err, errlen);
		(*nch)++;
	}
	for (i = 0; i < c->routes.n && !r; i++) {
		if (has_cidr(have, n, &c->routes.v[i]))
			continue;
		addr_cidr_format(&c->routes.v[i], buf);
		char *add[] = {"ip",	       "route", "replace", buf, "dev",
			       (char *)ifname, "proto", "static",  NULL};

		r = run(add, NULL, err, errlen);
		(*nch)++;
	}
	free(have);
	return r;
}

static int enable_forwarding(size_t *nch, char *err, size_t errlen)
{
	const char *path = "/proc/sys/net/ipv4/ip_forward";
	char cur = '0';
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0 || read(fd, &cur, 1) != 1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	if (cur != '1') {
		if (pwrite(fd, "1\n", 2, 0) != 2) {
			int e = errno;

			snprintf(err, errlen, "enabling %s: %s", path,
				 strerror(e));
			close(fd);
			return -e;
		}
		(*nch)++;
	}
	close(fd);
	return 0;
}

int netctl_apply(const char *ifname, const dpc *c, size_t *nchanges, char *err,
		 size_t errlen)
{
	char *up[] = {"ip", "link", "set", (char *)ifname, "up", NULL};
	size_t nch = 0;
	int r;

	if (nchanges)
		*nchanges = 0;
	if ((r = run(up, NULL, err, errlen)) ||
	    (r = sync_address(ifname, c, &nch, err, errlen)) ||
	    (r = sync_routes(ifname, c, &nch, err, errlen)))
		goto out;
	if (c->forward)
		r = enable_forwarding(&nch, err, errlen);
out:
	if (nchanges)
		*nchanges = nch;
	return r;
}
