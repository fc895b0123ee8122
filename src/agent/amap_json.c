/*
 * amap_json.c -- the JSON forms of the network map's parts (amap.h):
 * self, peers, rules (with their ports normalised), routes and sets of
 * prefixes, read from untrusted frames with every value checked, and
 * written back in the form the reader takes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/alog.h"
#include "agent/amap.h"
#include "agent/amap_int.h"

static int proto_parse(const char *s, uint8_t *out)
{
	if (!strcmp(s, "TCP"))
		*out = AMAP_TCP;
	else if (!strcmp(s, "UDP"))
		*out = AMAP_UDP;
	else if (!strcmp(s, "ICMP"))
		*out = AMAP_ICMP;
	else if (!strcmp(s, "any"))
		*out = AMAP_ANY;
	else
		return -EINVAL;
	return 0;
}

/* An optional array: absent, null or an array is fine (0), anything else
 * is -EINVAL naming what. */
int amap_array_check(const json_t *arr, const char *what, char *err,
		     size_t errlen)
{
	if (!arr || json_is_null(arr) || json_is_array(arr))
		return 0;
	alog_errf(err, errlen, "%s: not an array", what);
	return -EINVAL;
}

/* Parse an array of "a.b.c.d/n" (absent or null: empty) into *s. */
int amap_cidrs_parse(const json_t *arr, const char *what, amap_cidrs *s,
		     char *err, size_t errlen)
{
	const json_t *v;
	size_t i;
	int r;

	if ((r = amap_array_check(arr, what, err, errlen)) ||
	    !json_array_size(arr))
		return r;
	json_array_foreach(arr, i, v)
	{
		addr_cidr c;

		if (!json_is_string(v) ||
		    addr_cidr_parse(json_string_value(v), true, &c)) {
			alog_errf(err, errlen, "%s[%zu]: not an IPv4 prefix",
				  what, i);
			amap_cidrs_free(s);
			return -EINVAL;
		}
		if (amap_cidrs_add(s, &c)) {
			amap_cidrs_free(s);
			return -ENOMEM;
		}
	}
	return 0;
}

json_t *amap_cidrs_json(const amap_cidrs *s)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < s->n; i++) {
		char buf[ADDR_CIDR_MAX];

		addr_cidr_format(&s->v[i], buf);
		json_array_append_new(a, json_string(buf));
	}
	return a;
}

/* A required (or, with opt, optional) string field; NULL when absent. */
static int str_field(const json_t *o, const char *key, bool opt,
		     const char *what, const char **out, char *err,
		     size_t errlen)
{
	const json_t *v = json_object_get(o, key);

	*out = NULL;
	if (!v || json_is_null(v)) {
		if (opt)
			return 0;
		alog_errf(err, errlen, "%s.%s: missing", what, key);
		return -EINVAL;
	}
	if (!json_is_string(v) || strlen(json_string_value(v)) > 1024) {
		alog_errf(err, errlen, "%s.%s: not a string (or too long)",
			  what, key);
		return -EINVAL;
	}
	*out = json_string_value(v);
	return 0;
}

/* An entry: an object with a name; *out is a NEW copy of the name. */
static int name_field(const json_t *o, const char *what, char **out, char *err,
		      size_t errlen)
{
	const char *s;
	int r;

	if (!json_is_object(o)) {
		alog_errf(err, errlen, "%s: not an object", what);
		return -EINVAL;
	}
	if ((r = str_field(o, "name", false, what, &s, err, errlen)))
		return r;
	/* rule names are "policy/X/in", "route/R": object names joined */
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '.' || *p == '/')) {
			alog_errf(err, errlen, "%s.name: bad character", what);
			return -EINVAL;
		}
	if (!*s) {
		alog_errf(err, errlen, "%s.name: empty", what);
		return -EINVAL;
	}
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static char *dup_opt(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

int amap_peer_parse(const json_t *o, const char *what, amap_peer *e, char *err,
		    size_t errlen)
{
	const json_t *eps, *v, *online;
	const char *key, *dns;
	size_t i;
	int r;

	memset(e, 0, sizeof(*e));
	if ((r = name_field(o, what, &e->name, err, errlen)))
		goto fail;
	r = str_field(o, "publicKey", false, what, &key, err, errlen);
	if (!r && addr_key_from_base64(key, e->key)) {
		alog_errf(err, errlen, "%s.publicKey: not a WireGuard key",
			  what);
		r = -EINVAL;
	}
	if (!r)
		r = str_field(o, "dnsName", true, what, &dns, err, errlen);
	if (r)
		goto fail;
	if (dns && !(e->dns_name = strdup(dns))) {
		r = -ENOMEM;
		goto fail;
	}
	online = json_object_get(o, "online");
	e->online = json_is_true(online);
	eps = json_object_get(o, "endpoints");
	if (eps && !json_is_null(eps) && !json_is_array(eps)) {
		alog_errf(err, errlen, "%s.endpoints: not an array", what);
		r = -EINVAL;
		goto fail;
	}
	if (json_array_size(eps)) {
		e->endpoints =
		    calloc(json_array_size(eps), sizeof(*e->endpoints));
		if (!e->endpoints) {
			r = -ENOMEM;
			goto fail;
		}
	}
	/* Endpoints are what other agents reported. One that is not an
	 * address literal cannot be used and is passed over, not an error:
	 * it must not cost the peer its place in the map. */
	json_array_foreach(eps, i, v)
	{
		addr_endpoint ep;
		size_t k;

		if (!json_is_string(v) ||
		    addr_endpoint_parse(json_string_value(v), &ep))
			continue;
		for (k = 0; k < e->nendpoints; k++)
			if (addr_endpoint_eq(&e->endpoints[k], &ep))
				break;
		if (k == e->nendpoints)
			e->endpoints[e->nendpoints++] = ep;
	}
	{
		char w[96];

		snprintf(w, sizeof(w), "%s.allowedIPs", what);
		r = amap_cidrs_parse(json_object_get(o, "allowedIPs"), w,
				     &e->allowed, err, errlen);
	}
	if (r)
		goto fail;
	return 0;
fail:
	amap_peer_free(e);
	return r;
}

static int port_num(const json_t *o, const char *key, uint16_t *out)
{
	const json_t *v = json_object_get(o, key);

	*out = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > 65535)
		return -EINVAL;
	*out = (uint16_t)json_integer_value(v);
	return 0;
}

/* The rule's ports, normalised (amap.h). */
static int ports_parse(const json_t *o, const char *what, amap_rule *e,
		       char *err, size_t errlen)
{
	const json_t *ports = json_object_get(o, "ports"), *v;
	const char *ps;
	uint8_t rproto = AMAP_ANY;
	size_t i, n;

	if (str_field(o, "protocol", true, what, &ps, err, errlen))
		return -EINVAL;
	if (ps && proto_parse(ps, &rproto)) {
		alog_errf(err, errlen, "%s.protocol: not TCP, UDP, ICMP or any",
			  what);
		return -EINVAL;
	}
	if (ports && !json_is_null(ports) && !json_is_array(ports)) {
		alog_errf(err, errlen, "%s.ports: not an array", what);
		return -EINVAL;
	}
	n = json_array_size(ports);
	e->ports = calloc(n ? n : 1, sizeof(*e->ports));
	if (!e->ports)
		return -ENOMEM;
	if (!n) {
		e->ports[0] = (amap_port){rproto, 0, 0};
		e->nports = 1;
		return 0;
	}
	json_array_foreach(ports, i, v)
	{
		amap_port p = {rproto, 0, 0};

		if (!json_is_object(v) ||
		    str_field(v, "protocol", true, what, &ps, err, errlen) ||
		    (ps && proto_parse(ps, &p.proto)) ||
		    port_num(v, "from", &p.from) || port_num(v, "to", &p.to) ||
		    (!p.from && p.to) || (p.to && p.to < p.from)) {
			alog_errf(
			    err, errlen,
			    "%s.ports[%zu]: want {protocol, from, to} with "
			    "1 <= from <= to <= 65535",
			    what, i);
			return -EINVAL;
		}
		if (p.from && !p.to)
			p.to = p.from;
		if (p.proto == AMAP_ICMP)
			p.from = p.to = 0;
		e->ports[e->nports++] = p;
	}
	qsort(e->ports, e->nports, sizeof(*e->ports), amap_port_cmp);
	/* unique */
	for (i = 1, n = 1; i < e->nports; i++)
		if (amap_port_cmp(&e->ports[i], &e->ports[n - 1]))
			e->ports[n++] = e->ports[i];
	e->nports = n;
	return 0;
}

int amap_rule_parse(const json_t *o, const char *what, amap_rule *e, char *err,
		    size_t errlen)
{
	char w[96];
	int r;

	memset(e, 0, sizeof(*e));
	if ((r = name_field(o, what, &e->name, err, errlen)))
		goto fail;
	snprintf(w, sizeof(w), "%s.sources", what);
	if ((r = amap_cidrs_parse(json_object_get(o, "sources"), w, &e->sources,
				  err, errlen)))
		goto fail;
	snprintf(w, sizeof(w), "%s.destinations", what);
	if ((r = amap_cidrs_parse(json_object_get(o, "destinations"), w,
				  &e->destinations, err, errlen)))
		goto fail;
	if ((r = ports_parse(o, what, e, err, errlen)))
		goto fail;
	return 0;
fail:
	amap_rule_free(e);
	return r;
}

int amap_route_parse(const json_t *o, const char *what, amap_route *e,
		     char *err, size_t errlen)
{
	const char *dest, *via;
	int r;

	memset(e, 0, sizeof(*e));
	if ((r = name_field(o, what, &e->name, err, errlen)))
		goto fail;
	r = str_field(o, "destination", false, what, &dest, err, errlen);
	if (!r && addr_cidr_parse(dest, true, &e->destination)) {
		alog_errf(err, errlen, "%s.destination: not an IPv4 prefix",
			  what);
		r = -EINVAL;
	}
	if (!r)
		r = str_field(o, "via", false, what, &via, err, errlen);
	if (r)
		goto fail;
	if (!(e->via = strdup(via))) {
		r = -ENOMEM;
		goto fail;
	}
	return 0;
fail:
	amap_route_free(e);
	return r;
}

int amap_self_parse(const json_t *o, amap_self *s, char *err, size_t errlen)
{
	const char *name, *ns, *addr, *cidr, *dns, *key;
	bool oom = false;
	int r;

	memset(s, 0, sizeof(*s));
	if (!json_is_object(o)) {
		alog_errf(err, errlen, "self: not an object");
		return -EINVAL;
	}
	if ((r = str_field(o, "name", false, "self", &name, err, errlen)) ||
	    (r = str_field(o, "namespace", false, "self", &ns, err, errlen)) ||
	    (r = str_field(o, "address", true, "self", &addr, err, errlen)) ||
	    (r = str_field(o, "cidr", true, "self", &cidr, err, errlen)) ||
	    (r = str_field(o, "dnsName", true, "self", &dns, err, errlen)) ||
	    (r = str_field(o, "publicKey", true, "self", &key, err, errlen)))
		return r;
	if (!addr_object_name_ok(name) || !addr_dns_label_ok(ns)) {
		alog_errf(err, errlen, "self: bad name or namespace");
		return -EINVAL;
	}
	if (addr && addr_ip4_parse(addr, &s->address)) {
		alog_errf(err, errlen, "self.address: not an IPv4 address");
		return -EINVAL;
	}
	s->has_address = addr != NULL;
	if (cidr ? addr_cidr_parse(cidr, true, &s->cidr)
		 : addr_cidr_parse("100.64.0.0/10", false, &s->cidr)) {
		alog_errf(err, errlen, "self.cidr: not an IPv4 prefix");
		return -EINVAL;
	}
	if (key && addr_key_from_base64(key, s->key)) {
		alog_errf(err, errlen, "self.publicKey: not a WireGuard key");
		return -EINVAL;
	}
	s->has_key = key != NULL;
	s->name = dup_opt(name, &oom);
	s->ns = dup_opt(ns, &oom);
	s->dns_name = dup_opt(dns, &oom);
	if (oom) {
		amap_self_free(s);
		return -ENOMEM;
	}
	return 0;
}

json_t *amap_self_json(const amap_self *s)
{
	json_t *o = json_object();
	char buf[ADDR_CIDR_MAX], k[ADDR_KEY_B64_LEN + 1];

	json_object_set_new(o, "name", json_string(s->name));
	json_object_set_new(o, "namespace", json_string(s->ns));
	if (s->has_address) {
		addr_ip4_format(s->address, buf);
		json_object_set_new(o, "address", json_string(buf));
	}
	addr_cidr_format(&s->cidr, buf);
	json_object_set_new(o, "cidr", json_string(buf));
	if (s->dns_name)
		json_object_set_new(o, "dnsName", json_string(s->dns_name));
	if (s->has_key) {
		addr_key_to_base64(s->key, k);
		json_object_set_new(o, "publicKey", json_string(k));
	}
	return o;
}

json_t *amap_peer_json(const amap_peer *p)
{
	char k[ADDR_KEY_B64_LEN + 1], ep[ADDR_ENDPOINT_MAX];
	json_t *o = json_object(), *eps = json_array();

	addr_key_to_base64(p->key, k);
	for (size_t i = 0; i < p->nendpoints; i++) {
		addr_endpoint_format(&p->endpoints[i], ep);
		json_array_append_new(eps, json_string(ep));
	}
	json_object_set_new(o, "name", json_string(p->name));
	json_object_set_new(o, "publicKey", json_string(k));
	json_object_set_new(o, "endpoints", eps);
	json_object_set_new(o, "allowedIPs", amap_cidrs_json(&p->allowed));
	if (p->dns_name)
		json_object_set_new(o, "dnsName", json_string(p->dns_name));
	json_object_set_new(o, "online", json_boolean(p->online));
	return o;
}

json_t *amap_rule_json(const amap_rule *r)
{
	json_t *o = json_object(), *ports = json_array();

	for (size_t i = 0; i < r->nports; i++) {
		json_t *p = json_pack("{s:s}", "protocol",
				      amap_proto_name(r->ports[i].proto));

		if (r->ports[i].from) {
			json_object_set_new(p, "from",
					    json_integer(r->ports[i].from));
			json_object_set_new(p, "to",
					    json_integer(r->ports[i].to));
		}
		json_array_append_new(ports, p);
	}
	json_object_set_new(o, "name", json_string(r->name));
	json_object_set_new(o, "sources", amap_cidrs_json(&r->sources));
	if (r->destinations.n)
		json_object_set_new(o, "destinations",
				    amap_cidrs_json(&r->destinations));
	json_object_set_new(o, "ports", ports);
	return o;
}

json_t *amap_route_json(const amap_route *r)
{
	char buf[ADDR_CIDR_MAX];

	addr_cidr_format(&r->destination, buf);
	return json_pack("{s:s, s:s, s:s}", "name", r->name, "destination", buf,
			 "via", r->via);
}
