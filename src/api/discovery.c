/*
 * discovery.c -- /version, /api, /apis, /apis/<group>, and the resource
 * lists /api/v1 and /apis/<group>/<version>, built from the registry.
 *
 * kubectl first asks for aggregated discovery; we answer the plain
 * documents with Content-Type application/json, and client-go then falls
 * back to the per-group-version documents, as it does against older
 * servers.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

/* Kubernetes version priority: GA > beta > alpha, higher numbers first,
 * then anything else alphabetically. Returns <0 if a sorts before b. */
static int version_rank(const char *v, long *major, long *minor)
{
	char *end;

	*major = *minor = 0;
	if (v[0] != 'v' || !isdigit((unsigned char)v[1]))
		return 3;
	*major = strtol(v + 1, &end, 10);
	if (*end == '\0')
		return 0;
	if (!strncmp(end, "beta", 4) && isdigit((unsigned char)end[4])) {
		*minor = strtol(end + 4, &end, 10);
		return *end ? 3 : 1;
	}
	if (!strncmp(end, "alpha", 5) && isdigit((unsigned char)end[5])) {
		*minor = strtol(end + 5, &end, 10);
		return *end ? 3 : 2;
	}
	return 3;
}

static int version_cmp(const void *pa, const void *pb)
{
	const char *a = *(const char *const *)pa, *b = *(const char *const *)pb;
	long am, an, bm, bn;
	int ra = version_rank(a, &am, &an), rb = version_rank(b, &bm, &bn);

	if (ra != rb)
		return ra - rb;
	if (ra == 3)
		return strcmp(a, b);
	if (am != bm)
		return am > bm ? -1 : 1;
	if (an != bn)
		return an > bn ? -1 : 1;
	return 0;
}

/* The served versions of group, sorted by priority (a new array of
 * borrowed strings; *n entries). */
static const char **group_versions(const registry *reg, const char *group,
				   size_t *n)
{
	const char **v = NULL;
	size_t cap = 0;

	*n = 0;
	for (size_t i = 0; i < reg_count(reg); i++) {
		const reg_type *t = reg_at(reg, i);

		if (strcmp(t->group, group))
			continue;
		for (size_t j = 0; j < t->nversions; j++) {
			bool seen = false;

			if (!t->versions[j].served)
				continue;
			for (size_t k = 0; k < *n; k++)
				seen =
				    seen || !strcmp(v[k], t->versions[j].name);
			if (seen)
				continue;
			if (*n == cap) {
				cap = cap ? cap * 2 : 4;
				const char **p = realloc(v, cap * sizeof(*p));
				if (!p)
					return v;
				v = p;
			}
			v[(*n)++] = t->versions[j].name;
		}
	}
	if (*n > 1)
		qsort(v, *n, sizeof(*v), version_cmp);
	return v;
}

static json_t *group_doc(const registry *reg, const char *group)
{
	size_t n;
	const char **v = group_versions(reg, group, &n);
	json_t *versions = json_array(), *g;
	char gv[512];

	for (size_t i = 0; i < n; i++) {
		snprintf(gv, sizeof gv, "%s/%s", group, v[i]);
		json_array_append_new(versions,
				      json_pack("{s:s, s:s}", "groupVersion",
						gv, "version", v[i]));
	}
	g = json_pack("{s:s, s:o}", "name", group, "versions", versions);
	if (n)
		json_object_set(g, "preferredVersion",
				json_array_get(versions, 0));
	free(v);
	return n ? g : (json_decref(g), NULL);
}

static json_t *verbs(const char *const *list)
{
	json_t *a = json_array();

	for (size_t i = 0; list[i]; i++)
		json_array_append_new(a, json_string(list[i]));
	return a;
}

static json_t *str_list(char **s, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(s[i]));
	return a;
}

static json_t *resource_list(const registry *reg, const char *group,
			     const char *version)
{
	static const char *const all[] = {
	    "create", "delete", "deletecollection",
	    "get",    "list",	"patch",
	    "update", "watch",	NULL};
	static const char *const sub[] = {"get", "patch", "update", NULL};
	json_t *res = json_array();
	char gv[512];

	for (size_t i = 0; i < reg_count(reg); i++) {
		const reg_type *t = reg_at(reg, i);
		const reg_version *v = NULL;
		char sn[300];
		json_t *r;

		if (strcmp(t->group, group) ||
		    reg_find(reg, group, version, t->plural, &v) != t)
			continue;
		r = json_pack("{s:s, s:s, s:b, s:s, s:o}", "name", t->plural,
			      "singularName", t->singular, "namespaced",
			      t->namespaced, "kind", t->kind, "verbs",
			      verbs(all));
		if (t->nshort)
			json_object_set_new(
			    r, "shortNames",
			    str_list(t->short_names, t->nshort));
		if (t->ncategories)
			json_object_set_new(
			    r, "categories",
			    str_list(t->categories, t->ncategories));
		json_array_append_new(res, r);
		if (v->status) {
			snprintf(sn, sizeof sn, "%s/status", t->plural);
			json_array_append_new(
			    res, json_pack("{s:s, s:s, s:b, s:s, s:o}", "name",
					   sn, "singularName", "", "namespaced",
					   t->namespaced, "kind", t->kind,
					   "verbs", verbs(sub)));
		}
		if (v->scale_spec_path) {
			snprintf(sn, sizeof sn, "%s/scale", t->plural);
			json_array_append_new(
			    res,
			    json_pack("{s:s, s:s, s:b, s:s, s:s, s:s, s:o}",
				      "name", sn, "singularName", "",
				      "namespaced", t->namespaced, "group",
				      "autoscaling", "version", "v1", "kind",
				      "Scale", "verbs", verbs(sub)));
		}
	}
	if (json_array_size(res) == 0) {
		json_decref(res);
		return NULL;
	}
	if (*group)
		snprintf(gv, sizeof gv, "%s/%s", group, version);
	else
		snprintf(gv, sizeof gv, "%s", version);
	return json_pack("{s:s, s:s, s:s, s:o}", "kind", "APIResourceList",
			 "apiVersion", "v1", "groupVersion", gv, "resources",
			 res);
}

static void serve_version(api_req *r)
{
	api_reply_json(
	    r, 200,
	    json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "major",
		      "1", "minor", "32", "gitVersion", "v1.32.0+signalbox",
		      "gitCommit", "", "gitTreeState", "clean", "buildDate",
		      __DATE__, "goVersion", "none (signalbox is written in C)",
		      "compiler", "gcc", "platform", "linux/amd64"));
}

static void serve_apis(api_req *r)
{
	const registry *reg = r->srv->reg;
	json_t *groups = json_array();

	for (size_t i = 0; i < reg_count(reg); i++) {
		const reg_type *t = reg_at(reg, i);
		bool seen = false;
		json_t *g;

		if (!*t->group)
			continue;
		for (size_t j = 0; j < i; j++)
			seen = seen || !strcmp(reg_at(reg, j)->group, t->group);
		if (seen)
			continue;
		g = group_doc(reg, t->group);
		if (g)
			json_array_append_new(groups, g);
	}
	api_reply_json(r, 200,
		       json_pack("{s:s, s:s, s:o}", "kind", "APIGroupList",
				 "apiVersion", "v1", "groups", groups));
}

bool api_discovery(api_req *r)
{
	const registry *reg = r->srv->reg;
	char *buf, *seg[4], *save, *p;
	size_t n = 0;
	json_t *doc = NULL;
	bool handled = true;

	if (!strcmp(r->path, "/version") || !strcmp(r->path, "/version/")) {
		serve_version(r);
		return true;
	}
	buf = strdup(r->path);
	if (!buf)
		return false;
	for (p = strtok_r(buf, "/", &save); p && n < 4;
	     p = strtok_r(NULL, "/", &save))
		seg[n++] = p;
	if (p || n == 0) {
		free(buf);
		return false;
	}
	if (!strcmp(seg[0], "api") && n == 1) {
		doc = json_pack("{s:s, s:[s], s:[{s:s, s:s}]}", "kind",
				"APIVersions", "versions", "v1",
				"serverAddressByClientCIDRs", "clientCIDR",
				"0.0.0.0/0", "serverAddress", "");
	} else if (!strcmp(seg[0], "api") && n == 2) {
		doc = resource_list(reg, "", seg[1]);
	} else if (!strcmp(seg[0], "apis") && n == 1) {
		free(buf);
		serve_apis(r);
		return true;
	} else if (!strcmp(seg[0], "apis") && n == 2) {
		doc = group_doc(reg, seg[1]);
		if (doc) {
			json_object_set_new(doc, "kind",
					    json_string("APIGroup"));
			json_object_set_new(doc, "apiVersion",
					    json_string("v1"));
		}
	} else if (!strcmp(seg[0], "apis") && n == 3) {
		doc = resource_list(reg, seg[1], seg[2]);
	} else {
		handled = false;
	}
	if (handled && doc)
		api_reply_json(r, 200, doc);
	else if (handled)
		api_fail(r, 404, "NotFound", NULL,
			 "the server could not find the requested resource");
	free(buf);
	return handled;
}
