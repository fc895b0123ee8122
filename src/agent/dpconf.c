/*
 * dpconf.c -- the data-plane configuration and its text form (dpconf.h).
 * dpc_from_amap and dpc_encode run in the network-facing half;
 * dpc_decode is the privileged half's strict reader of what the other
 * half sends.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/alog.h"
#include "agent/amap.h"
#include "agent/dpconf.h"
#include "util/strbuf.h"

static void cidrs_free(dpc_cidrs *s)
{
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

static void peer_free(dpc_peer *p)
{
	free(p->endpoints);
	cidrs_free(&p->allowed);
}

static void rule_free(dpc_rule *r)
{
	cidrs_free(&r->sources);
	cidrs_free(&r->destinations);
	free(r->ports);
}

void dpc_free(dpc *c)
{
	size_t i;

	for (i = 0; i < c->npeers; i++)
		peer_free(&c->peers[i]);
	free(c->peers);
	for (i = 0; i < c->nrules; i++)
		rule_free(&c->rules[i]);
	free(c->rules);
	cidrs_free(&c->routes);
	memset(c, 0, sizeof(*c));
}

static int key_cmp(const void *a, const void *b)
{
	return memcmp(((const dpc_peer *)a)->key, ((const dpc_peer *)b)->key,
		      ADDR_KEY_LEN);
}

const dpc_peer *dpc_peer_find(const dpc *c, const uint8_t k[ADDR_KEY_LEN])
{
	dpc_peer probe;

	memcpy(probe.key, k, ADDR_KEY_LEN);
	if (!c->npeers)
		return NULL;
	return bsearch(&probe, c->peers, c->npeers, sizeof(*c->peers), key_cmp);
}

/* ---- from a map ------------------------------------------------------- */

static int cidrs_copy(dpc_cidrs *d, const amap_cidrs *s)
{
	d->n = 0;
	d->v = NULL;
	if (!s->n)
		return 0;
	d->v = malloc(s->n * sizeof(*d->v));
	if (!d->v)
		return -ENOMEM;
	memcpy(d->v, s->v, s->n * sizeof(*d->v));
	d->n = s->n;
	return 0;
}

int dpc_from_amap(const amap *m, dpc *out)
{
	dpc c;
	size_t i, k;

	memset(&c, 0, sizeof(c));
	c.has_address = m->self.has_address;
	c.address = m->self.address;
	c.prefix_len = m->self.cidr.len;
	c.peers = calloc(m->npeers ? m->npeers : 1, sizeof(*c.peers));
	c.rules = calloc(m->nrules ? m->nrules : 1, sizeof(*c.rules));
	c.routes.v = calloc(m->nroutes ? m->nroutes : 1, sizeof(addr_cidr));
	if (!c.peers || !c.rules || !c.routes.v)
		goto oom;
	for (i = 0; i < m->npeers; i++) {
		const amap_peer *p = &m->peers[i];
		dpc_peer *d = &c.peers[c.npeers];

		if (m->self.has_key &&
		    !memcmp(p->key, m->self.key, ADDR_KEY_LEN))
			continue;
		memcpy(d->key, p->key, ADDR_KEY_LEN);
		if (p->nendpoints) {
			d->endpoints =
			    malloc(p->nendpoints * sizeof(*d->endpoints));
			if (!d->endpoints)
				goto oom;
			memcpy(d->endpoints, p->endpoints,
			       p->nendpoints * sizeof(*d->endpoints));
			d->nendpoints = p->nendpoints;
		}
		c.npeers++;
		if (cidrs_copy(&d->allowed, &p->allowed))
			goto oom;
	}
	/* sorted by key; of two entries with one key, one is kept */
	qsort(c.peers, c.npeers, sizeof(*c.peers), key_cmp);
	for (i = 1, k = c.npeers ? 1 : 0; i < c.npeers; i++) {
		if (!key_cmp(&c.peers[i], &c.peers[k - 1]))
			peer_free(&c.peers[i]);
		else
			c.peers[k++] = c.peers[i];
	}
	c.npeers = k;
	for (i = 0; i < m->nrules; i++) {
		const amap_rule *r = &m->rules[i];
		dpc_rule *d = &c.rules[c.nrules];

		if (!r->sources.n)
			continue;
		d->forward = r->destinations.n > 0;
		c.nrules++;
		if (cidrs_copy(&d->sources, &r->sources) ||
		    cidrs_copy(&d->destinations, &r->destinations))
			goto oom;
		d->ports = malloc(r->nports * sizeof(*d->ports));
		if (!d->ports)
			goto oom;
		for (k = 0; k < r->nports; k++)
			d->ports[k] =
			    (dpc_port){r->ports[k].proto, r->ports[k].from,
				       r->ports[k].to};
		d->nports = r->nports;
		if (d->forward)
			c.forward = true;
	}
	for (i = 0; i < m->nroutes; i++) {
		for (k = 0; k < c.routes.n; k++)
			if (!addr_cidr_cmp(&c.routes.v[k],
					   &m->routes[i].destination))
				break;
		if (k == c.routes.n)
			c.routes.v[c.routes.n++] = m->routes[i].destination;
	}
	*out = c;
	return 0;
oom:
	dpc_free(&c);
	return -ENOMEM;
}

/* ---- text ------------------------------------------------------------- */

static const char *const proto_names[] = {"any", "tcp", "udp", "icmp"};

static void put_cidrs(strbuf *b, const dpc_cidrs *s)
{
	char buf[ADDR_CIDR_MAX];

	if (!s->n)
		strbuf_putc(b, '-');
	for (size_t i = 0; i < s->n; i++) {
		addr_cidr_format(&s->v[i], buf);
		if (i)
			strbuf_putc(b, ',');
		strbuf_puts(b, buf);
	}
}

char *dpc_encode(const dpc *c)
{
	char buf[ADDR_ENDPOINT_MAX], ip[16], key[ADDR_KEY_B64_LEN + 1];
	strbuf b = {0};
	size_t i, k;

	if (c->has_address) {
		addr_ip4_format(c->address, ip);
		strbuf_printf(&b, "address %s/%u\n", ip, c->prefix_len);
	}
	strbuf_printf(&b, "forward %d\n", c->forward ? 1 : 0);
	for (i = 0; i < c->npeers; i++) {
		const dpc_peer *p = &c->peers[i];

		addr_key_to_base64(p->key, key);
		strbuf_printf(&b, "peer %s ", key);
		if (!p->nendpoints)
			strbuf_putc(&b, '-');
		for (k = 0; k < p->nendpoints; k++) {
			addr_endpoint_format(&p->endpoints[k], buf);
			if (k)
				strbuf_putc(&b, ',');
			strbuf_puts(&b, buf);
		}
		strbuf_putc(&b, ' ');
		put_cidrs(&b, &p->allowed);
		strbuf_putc(&b, '\n');
	}
	for (i = 0; i < c->nrules; i++) {
		const dpc_rule *r = &c->rules[i];

		strbuf_printf(&b, "rule %s ", r->forward ? "forward" : "input");
		put_cidrs(&b, &r->sources);
		strbuf_putc(&b, ' ');
		put_cidrs(&b, &r->destinations);
		strbuf_putc(&b, ' ');
		for (k = 0; k < r->nports; k++) {
			const dpc_port *p = &r->ports[k];

			if (k)
				strbuf_putc(&b, ',');
			if (p->from)
				strbuf_printf(&b, "%s:%u-%u",
					      proto_names[p->proto & 3],
					      p->from, p->to);
			else
				strbuf_printf(&b, "%s:*",
					      proto_names[p->proto & 3]);
		}
		strbuf_putc(&b, '\n');
	}
	for (i = 0; i < c->routes.n; i++) {
		addr_cidr_format(&c->routes.v[i], buf);
		strbuf_printf(&b, "route %s\n", buf);
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	if (!b.p)
		return strdup("");
	return b.p;
}

/* The reader: fields of one line, split in place. */
#define MAX_FIELDS 6

static int split(char *line, char **f, size_t max)
{
	size_t n = 0;
	char *p = line;

	for (;;) {
		if (n == max || !*p || *p == ' ')
			return -1; /* too many, or an empty field */
		f[n++] = p;
		p = strchr(p, ' ');
		if (!p)
			return (int)n;
		*p++ = '\0';
	}
}

/* Count the comma-separated items of s ("-": none); -1 when too many or
 * one is empty. */
static long list_len(const char *s)
{
	long n = 1;

	if (!strcmp(s, "-"))
		return 0;
	for (const char *p = s; *p; p++)
		if (*p == ',') {
			if (p == s || p[1] == ',' || !p[1])
				return -1;
			if (++n > DPC_MAX_LIST)
				return -1;
		}
	return n;
}

/* Next item of a list into item (at most cap-1 characters). */
static int next_item(const char **s, char *item, size_t cap)
{
	const char *comma = strchr(*s, ',');
	size_t n = comma ? (size_t)(comma - *s) : strlen(*s);

	if (!n || n >= cap)
		return -EINVAL;
	memcpy(item, *s, n);
	item[n] = '\0';
	*s += n + (comma ? 1 : 0);
	return 0;
}

/* A list of prefixes: strict (no host bits), sorted, unique. */
static int cidrs_read(const char *s, dpc_cidrs *out)
{
	long n = list_len(s);
	char item[ADDR_CIDR_MAX];

	out->v = NULL;
	out->n = 0;
	if (n < 0)
		return -EINVAL;
	if (!n)
		return 0;
	out->v = malloc((size_t)n * sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	while (out->n < (size_t)n) {
		addr_cidr *c = &out->v[out->n];

		if (next_item(&s, item, sizeof(item)) ||
		    addr_cidr_parse(item, false, c) ||
		    (out->n && addr_cidr_cmp(&out->v[out->n - 1], c) >= 0)) {
			cidrs_free(out);
			return -EINVAL;
		}
		out->n++;
	}
	return 0;
}

static int endpoints_read(const char *s, dpc_peer *p)
{
	long n = list_len(s);
	char item[ADDR_ENDPOINT_MAX];

	if (n < 0 || n > 64)
		return -EINVAL;
	if (!n)
		return 0;
	p->endpoints = calloc((size_t)n, sizeof(*p->endpoints));
	if (!p->endpoints)
		return -ENOMEM;
	while (p->nendpoints < (size_t)n) {
		char again[ADDR_ENDPOINT_MAX];
		addr_endpoint *e = &p->endpoints[p->nendpoints];

		if (next_item(&s, item, sizeof(item)) ||
		    addr_endpoint_parse(item, e))
			return -EINVAL;
		addr_endpoint_format(e, again);
		if (strcmp(again, item))
			return -EINVAL;
		p->nendpoints++;
	}
	return 0;
}

static int num_read(const char *s, size_t n, uint16_t *out)
{
	unsigned v = 0;

	if (!n || n > 5 || s[0] == '0')
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

static int ports_read(const char *s, dpc_rule *r)
{
	long n = list_len(s);
	char item[24];

	if (n <= 0)
		return -EINVAL;
	r->ports = calloc((size_t)n, sizeof(*r->ports));
	if (!r->ports)
		return -ENOMEM;
	while (r->nports < (size_t)n) {
		dpc_port *p = &r->ports[r->nports];
		char *colon, *dash;
		size_t k;

		if (next_item(&s, item, sizeof(item)) ||
		    !(colon = strchr(item, ':')))
			return -EINVAL;
		*colon = '\0';
		for (k = 0; k < 4; k++)
			if (!strcmp(item, proto_names[k]))
				break;
		if (k == 4)
			return -EINVAL;
		p->proto = (uint8_t)k;
		if (!strcmp(colon + 1, "*")) {
			p->from = p->to = 0;
		} else {
			if (p->proto == DPC_ICMP ||
			    !(dash = strchr(colon + 1, '-')) ||
			    num_read(colon + 1, (size_t)(dash - colon - 1),
				     &p->from) ||
			    num_read(dash + 1, strlen(dash + 1), &p->to) ||
			    p->to < p->from)
				return -EINVAL;
		}
		r->nports++;
	}
	return 0;
}

/* Room for element n of *v, doubling at powers of two. */
static int grow(void **v, size_t n, size_t sz)
{
	void *p;

	if (n & (n - 1))
		return 0;
	p = realloc(*v, (n ? 2 * n : 1) * sz);
	if (!p)
		return -ENOMEM;
	*v = p;
	return 0;
}

static int line_read(char *line, dpc *c, bool *seen_addr, bool *seen_fwd)
{
	char *f[MAX_FIELDS] = {0};
	int n = split(line, f, MAX_FIELDS);
	int r;

	if (n < 2)
		return -EINVAL;
	if (!strcmp(f[0], "address") && n == 2 && !*seen_addr) {
		char *slash = strchr(f[1], '/');
		addr_cidr pfx;

		if (!slash || addr_cidr_parse(f[1], true, &pfx))
			return -EINVAL;
		*slash = '\0';
		if (addr_ip4_parse(f[1], &c->address) || pfx.len == 0)
			return -EINVAL;
		c->prefix_len = pfx.len;
		c->has_address = *seen_addr = true;
		return 0;
	}
	if (!strcmp(f[0], "forward") && n == 2 && !*seen_fwd) {
		if (strcmp(f[1], "0") && strcmp(f[1], "1"))
			return -EINVAL;
		c->forward = f[1][0] == '1';
		*seen_fwd = true;
		return 0;
	}
	if (!strcmp(f[0], "peer") && n == 4) {
		dpc_peer *p;

		if (c->npeers >= DPC_MAX_PEERS)
			return -E2BIG;
		if (grow((void **)&c->peers, c->npeers, sizeof(*p)))
			return -ENOMEM;
		p = &c->peers[c->npeers];
		memset(p, 0, sizeof(*p));
		if (addr_key_from_base64(f[1], p->key))
			return -EINVAL;
		c->npeers++;
		if ((r = endpoints_read(f[2], p)) ||
		    (r = cidrs_read(f[3], &p->allowed)))
			return r;
		/* sorted by key, unique */
		if (c->npeers > 1 && key_cmp(&c->peers[c->npeers - 2], p) >= 0)
			return -EINVAL;
		return 0;
	}
	if (!strcmp(f[0], "rule") && n == 5) {
		dpc_rule *p;

		if (c->nrules >= DPC_MAX_RULES)
			return -E2BIG;
		if (grow((void **)&c->rules, c->nrules, sizeof(*p)))
			return -ENOMEM;
		p = &c->rules[c->nrules];
		memset(p, 0, sizeof(*p));
		if (strcmp(f[1], "input") && strcmp(f[1], "forward"))
			return -EINVAL;
		p->forward = f[1][0] == 'f';
		c->nrules++;
		if ((r = cidrs_read(f[2], &p->sources)) ||
		    (r = cidrs_read(f[3], &p->destinations)) ||
		    (r = ports_read(f[4], p)))
			return r;
		/* a forward rule has destinations, an input rule none; both
		 * have sources */
		if (!p->sources.n || p->forward != (p->destinations.n > 0))
			return -EINVAL;
		return 0;
	}
	if (!strcmp(f[0], "route") && n == 2) {
		addr_cidr d, *v;

		if (addr_cidr_parse(f[1], false, &d))
			return -EINVAL;
		if (c->routes.n >= DPC_MAX_ROUTES)
			return -E2BIG;
		for (size_t i = 0; i < c->routes.n; i++)
			if (!addr_cidr_cmp(&c->routes.v[i], &d))
				return -EINVAL;
		v = realloc(c->routes.v, (c->routes.n + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->routes.v = v;
		v[c->routes.n++] = d;
		return 0;
	}
	return -EINVAL;
}

int dpc_decode(const char *buf, size_t len, dpc *out, char *err, size_t errlen)
{
	bool seen_addr = false, seen_fwd = false;
	char *text, *line, *nl;
	size_t lineno = 0;
	dpc c;
	int r = 0;

	memset(&c, 0, sizeof(c));
	memset(out, 0, sizeof(*out));
	if (memchr(buf, '\0', len) || (len && buf[len - 1] != '\n')) {
		alog_errf(err, errlen,
			  "config: a NUL byte or no final newline");
		return -EINVAL;
	}
	text = malloc(len + 1);
	if (!text)
		return -ENOMEM;
	memcpy(text, buf, len);
	text[len] = '\0';
	for (line = text; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		*nl = '\0';
		lineno++;
		if ((r = line_read(line, &c, &seen_addr, &seen_fwd))) {
			alog_errf(err, errlen, "config line %zu: %s", lineno,
				  r == -ENOMEM	? "out of memory"
				  : r == -E2BIG ? "too many entries"
						: "malformed");
			if (r == -E2BIG)
				r = -EINVAL;
			break;
		}
	}
	free(text);
	if (r) {
		dpc_free(&c);
		return r;
	}
	*out = c;
	return 0;
}
