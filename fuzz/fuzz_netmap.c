/*
 * fuzz_netmap.c -- libFuzzer target for the mesh model (src/mesh/netmap.c):
 * its parsers of object fields (CIDRs, addresses, keys, ports, selectors)
 * and its incremental bookkeeping.
 *
 * The input is a JSON array of operations, each an object whose "op" is
 * network, peer, policy, route, del-peer, del-policy, del-route, del-network
 * or flush, with the fields of the matching mesh_*_spec. After the
 * operations every known map is rendered, and each must hold: no peer sees
 * itself, and every allowedIPs list starts with a /32.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/netmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_frame(void *sub, const char *ns, const char *name,
		     const json_t *frame, void *arg)
{
	char *s = json_dumps(frame, JSON_COMPACT);

	(void)sub;
	(void)ns;
	(void)name;
	(void)arg;
	if (!s)
		abort();
	free(s);
}

static void on_router(const char *ns, const char *route, const char *active,
		      void *arg)
{
	(void)ns;
	(void)route;
	(void)active;
	(void)arg;
}

static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void check_map(mesh *m, const char *ns, const char *name)
{
	json_t *map = mesh_map(m, ns, name), *p;
	size_t i;

	if (!map)
		return;
	json_array_foreach(json_object_get(map, "peers"), i, p)
	{
		const char *pn = str(p, "name");
		const char *ip = json_string_value(
		    json_array_get(json_object_get(p, "allowedIPs"), 0));

		if (!pn || !strcmp(pn, name))
			abort(); /* a peer never sees itself */
		if (!ip || strlen(ip) < 3 || strcmp(ip + strlen(ip) - 3, "/32"))
			abort();
	}
	json_decref(map);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *ops = json_loadb((const char *)data, size, 0, NULL), *op;
	mesh *m;
	mesh_sink sink = {on_frame, on_router, NULL, NULL};
	uint64_t serial = 0;
	char err[256];
	size_t i;
	int sub = 1;

	if (!json_is_array(ops) || json_array_size(ops) > 200) {
		json_decref(ops);
		return 0;
	}
	m = mesh_new();
	if (!m)
		abort();
	json_array_foreach(ops, i, op)
	{
		const char *kind = str(op, "op"), *ns = str(op, "ns"),
			   *name = str(op, "name");

		if (!kind || !ns || !name)
			continue;
		if (!strcmp(kind, "network")) {
			mesh_network_set(m, ns, str(op, "cidr"),
					 str(op, "domain"), err, sizeof err);
		} else if (!strcmp(kind, "peer")) {
			mesh_peer_spec ps = {
			    .ns = ns,
			    .name = name,
			    .public_key = str(op, "key"),
			    .address = str(op, "address"),
			    .labels = json_object_get(op, "labels"),
			    .endpoints = json_object_get(op, "endpoints"),
			    .online = json_is_true(json_object_get(op, "online")),
			    .expired =
				json_is_true(json_object_get(op, "expired")),
			    .deleting =
				json_is_true(json_object_get(op, "deleting")),
			};
			if (mesh_peer_set(m, &ps, err, sizeof err) == 0)
				mesh_subscribe(m, ns, name, &sub);
		} else if (!strcmp(kind, "policy")) {
			mesh_policy_spec ps = {
			    .ns = ns,
			    .name = name,
			    .from = json_object_get(op, "from"),
			    .to = json_object_get(op, "to"),
			    .ports = json_object_get(op, "ports"),
			    .bidirectional =
				json_is_true(json_object_get(op, "bidi")),
			};
			mesh_policy_set(m, &ps, err, sizeof err);
		} else if (!strcmp(kind, "route")) {
			mesh_route_spec rs = {
			    .ns = ns,
			    .name = name,
			    .destination = str(op, "destination"),
			    .via = json_object_get(op, "via"),
			    .for_peers = json_object_get(op, "for"),
			};
			mesh_route_set(m, &rs, err, sizeof err);
		} else if (!strcmp(kind, "del-peer")) {
			mesh_peer_del(m, ns, name);
		} else if (!strcmp(kind, "del-policy")) {
			mesh_policy_del(m, ns, name);
		} else if (!strcmp(kind, "del-route")) {
			mesh_route_del(m, ns, name);
		} else if (!strcmp(kind, "del-network")) {
			mesh_network_del(m, ns);
		} else if (!strcmp(kind, "flush")) {
			mesh_flush(m, ++serial, &sink);
		}
	}
	mesh_flush(m, ++serial, &sink);
	json_array_foreach(ops, i, op)
	{
		if (str(op, "ns") && str(op, "name"))
			check_map(m, str(op, "ns"), str(op, "name"));
	}
	mesh_free(m);
	json_decref(ops);
	return 0;
}
