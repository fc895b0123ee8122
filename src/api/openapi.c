/*
 * openapi.c -- /openapi/v3 (and its per-group-version documents) and
 * /openapi/v2, built from the registry: one schema per served kind, named
 * and tagged as kube-apiserver names them (x-kubernetes-group-version-kind),
 * and one path per resource whose PATCH operation lists the fieldValidation
 * and dryRun parameters. That is what kubectl looks for: with it, `kubectl
 * apply` validates on the server (fieldValidation=Strict) and `kubectl
 * explain` finds the schema.
 *
 * The documents are rebuilt only when the registry's generation moves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

#define OBJECT_META "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

/* "com.example.v1.Widget": the group reversed, then version and kind, as
 * kube-apiserver names CRD schemas ("io.k8s.api.core.v1.Namespace" style
 * for the core group). */
static void schema_name(const reg_type *t, const reg_version *v, char *buf,
			size_t len)
{
	char rev[256] = "", *save, *p, grp[256];
	char *parts[32];
	size_t n = 0, off = 0;

	if (!*t->group) {
		snprintf(buf, len, "io.k8s.api.core.%s.%s", v->name, t->kind);
		return;
	}
	snprintf(grp, sizeof grp, "%s", t->group);
	for (p = strtok_r(grp, ".", &save); p && n < 32;
	     p = strtok_r(NULL, ".", &save))
		parts[n++] = p;
	while (n-- > 0 && off < sizeof rev)
		off += (size_t)snprintf(rev + off, sizeof rev - off, "%s%s",
					parts[n], n ? "." : "");
	snprintf(buf, len, "%s.%s.%s", rev, v->name, t->kind);
}

static json_t *gvk(const reg_type *t, const reg_version *v)
{
	return json_pack("[{s:s, s:s, s:s}]", "group", t->group, "version",
			 v->name, "kind", t->kind);
}

static json_t *object_meta_schema(void)
{
	return json_pack(
	    "{s:s, s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s},"
	    " s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s},"
	    " s:{s:s, s:{s:s}}, s:{s:s, s:{s:s}}, s:{s:s, s:{s:s}},"
	    " s:{s:s, s:{s:s, s:b}}}}",
	    "description",
	    "ObjectMeta is metadata that all persisted resources must have.",
	    "type", "object", "properties", "name", "type", "string",
	    "generateName", "type", "string", "namespace", "type", "string",
	    "uid", "type", "string", "resourceVersion", "type", "string",
	    "generation", "type", "integer", "format", "int64",
	    "creationTimestamp", "type", "string", "format", "date-time",
	    "deletionTimestamp", "type", "string", "format", "date-time",
	    "deletionGracePeriodSeconds", "type", "integer", "format", "int64",
	    "labels", "type", "object", "additionalProperties", "type",
	    "string", "annotations", "type", "object", "additionalProperties",
	    "type", "string", "finalizers", "type", "array", "items", "type",
	    "string", "ownerReferences", "type", "array", "items", "type",
	    "object", "x-kubernetes-preserve-unknown-fields", 1);
}

/* The kind's schema for OpenAPI (a new reference): the CRD's
 * openAPIV3Schema with metadata pointing at ObjectMeta. */
static json_t *kind_schema(const reg_type *t, const reg_version *v,
			   const char *ref_prefix)
{
	json_t *s = v->openapi
			? json_deep_copy(v->openapi)
			: json_pack("{s:s, s:b}", "type", "object",
				    "x-kubernetes-preserve-unknown-fields", 1);
	json_t *props = json_object_get(s, "properties");
	char ref[256];

	if (!json_is_object(props)) {
		props = json_object();
		json_object_set_new(s, "properties", props);
	}
	snprintf(ref, sizeof ref, "%s%s", ref_prefix, OBJECT_META);
	json_object_set_new(props, "metadata",
			    json_pack("{s:[{s:s}], s:s}", "allOf", "$ref", ref,
				      "description",
				      "Standard object's metadata."));
	if (!json_object_get(props, "apiVersion"))
		json_object_set_new(props, "apiVersion",
				    json_pack("{s:s}", "type", "string"));
	if (!json_object_get(props, "kind"))
		json_object_set_new(props, "kind",
				    json_pack("{s:s}", "type", "string"));
	json_object_set_new(s, "x-kubernetes-group-version-kind", gvk(t, v));
	return s;
}

static json_t *param(const char *name, const char *desc)
{
	return json_pack("{s:s, s:s, s:s, s:{s:s}, s:b}", "name", name, "in",
			 "query", "description", desc, "schema", "type",
			 "string", "uniqueItems", 1);
}

static json_t *op(const reg_type *t, const reg_version *v, const char *id,
		  const char *ref, bool body, bool patch)
{
	json_t *g = gvk(t, v);
	json_t *o = json_pack(
	    "{s:s, s:O, s:{s:{s:s, s:{s:{s:{s:s}}}}}}", "operationId", id,
	    "x-kubernetes-group-version-kind", json_array_get(g, 0),
	    "responses", "200", "description", "OK", "content",
	    "application/json", "schema", "$ref", ref);
	json_t *params = json_array();

	json_decref(g);
	json_array_append_new(params,
			      param("dryRun", "When present, indicates that "
					      "modifications should not be "
					      "persisted."));
	json_array_append_new(
	    params, param("fieldValidation",
			  "Ignore, Warn or Strict: how the server treats "
			  "unknown or duplicate fields."));
	json_object_set_new(o, "parameters", params);
	if (body)
		json_object_set_new(
		    o, "requestBody",
		    json_pack("{s:{s:{s:{s:s}}}, s:b}", "content",
			      patch ? "application/merge-patch+json"
				    : "application/json",
			      "schema", "$ref", ref, "required", 1));
	return o;
}

static void add_paths(json_t *paths, const reg_type *t, const reg_version *v,
		      const char *ref)
{
	char base[512], item[600], id[300];

	if (*t->group)
		snprintf(
		    base, sizeof base, "/apis/%s/%s/%s%s", t->group, v->name,
		    t->namespaced ? "namespaces/{namespace}/" : "", t->plural);
	else
		snprintf(base, sizeof base, "/api/%s/%s%s", v->name,
			 t->namespaced ? "namespaces/{namespace}/" : "",
			 t->plural);
	snprintf(item, sizeof item, "%s/{name}", base);
	snprintf(id, sizeof id, "create%s", t->kind);
	json_object_set_new(paths, base,
			    json_pack("{s:o, s:o}", "post",
				      op(t, v, id, ref, true, false), "get",
				      op(t, v, "list", ref, false, false)));
	snprintf(id, sizeof id, "patch%s", t->kind);
	json_object_set_new(
	    paths, item,
	    json_pack("{s:o, s:o, s:o, s:o}", "get",
		      op(t, v, "read", ref, false, false), "put",
		      op(t, v, "replace", ref, true, false), "patch",
		      op(t, v, id, ref, true, true), "delete",
		      op(t, v, "delete", ref, false, false)));
}

/* The OpenAPI v3 document of one group/version (a new reference). */
static json_t *v3_doc(const registry *reg, const char *group,
		      const char *version)
{
	json_t *schemas = json_object(), *paths = json_object();
	char name[512], ref[600];

	json_object_set_new(schemas, OBJECT_META, object_meta_schema());
	for (size_t i = 0; i < reg_count(reg); i++) {
		const reg_type *t = reg_at(reg, i);
		const reg_version *v = NULL;

		if (strcmp(t->group, group) ||
		    reg_find(reg, group, version, t->plural, &v) != t)
			continue;
		schema_name(t, v, name, sizeof name);
		snprintf(ref, sizeof ref, "#/components/schemas/%s", name);
		json_object_set_new(schemas, name,
				    kind_schema(t, v, "#/components/schemas/"));
		add_paths(paths, t, v, ref);
	}
	return json_pack("{s:s, s:{s:s, s:s}, s:o, s:{s:o}}", "openapi",
			 "3.0.0", "info", "title", "Kubernetes", "version",
			 "v1.32.0", "paths", paths, "components", "schemas",
			 schemas);
}

static void add_gv(json_t *paths, const reg_type *t, const reg_version *v)
{
	char key[512], url[600];

	if (*t->group)
		snprintf(key, sizeof key, "apis/%s/%s", t->group, v->name);
	else
		snprintf(key, sizeof key, "api/%s", v->name);
	snprintf(url, sizeof url, "/openapi/v3/%s?hash=%llx", key,
		 (unsigned long long)0);
	json_object_set_new(paths, key,
			    json_pack("{s:s}", "serverRelativeURL", url));
}

static json_t *v3_root(api_server *a)
{
	json_t *paths = json_object();
	const registry *reg = a->reg;

	for (size_t i = 0; i < reg_count(reg); i++) {
		const reg_type *t = reg_at(reg, i);

		for (size_t j = 0; j < t->nversions; j++)
			if (t->versions[j].served)
				add_gv(paths, t, &t->versions[j]);
	}
	/* The hash changes with the registry, so clients refetch. */
	{
		const char *k;
		json_t *v;
		char url[700];

		json_object_foreach(paths, k, v)
		{
			snprintf(url, sizeof url, "/openapi/v3/%s?hash=%016llx",
				 k, (unsigned long long)reg_generation(reg));
			json_object_set_new(v, "serverRelativeURL",
					    json_string(url));
		}
	}
	return json_pack("{s:o}", "paths", paths);
}

static json_t *v2_doc(api_server *a)
{
	json_t *defs = json_object(), *paths = json_object();
	const registry *reg = a->reg;
	char name[512];

	json_object_set_new(defs, OBJECT_META, object_meta_schema());
	for (size_t i = 0; i < reg_count(reg); i++) {
		const reg_type *t = reg_at(reg, i);

		for (size_t j = 0; j < t->nversions; j++) {
			const reg_version *v = &t->versions[j];

			if (!v->served)
				continue;
			schema_name(t, v, name, sizeof name);
			json_object_set_new(
			    defs, name, kind_schema(t, v, "#/definitions/"));
		}
	}
	return json_pack("{s:s, s:{s:s, s:s}, s:o, s:o}", "swagger", "2.0",
			 "info", "title", "Kubernetes", "version", "v1.32.0",
			 "paths", paths, "definitions", defs);
}

bool api_openapi(api_req *r)
{
	const char *p = r->path;
	const char *acc = evhttp_find_header(
	    evhttp_request_get_input_headers(r->ev), "Accept");

	if (!strcmp(p, "/openapi/v2")) {
		if (acc && strstr(acc, "protobuf") && !strstr(acc, "json")) {
			api_fail(r, 406, "NotAcceptable", NULL,
				 "only application/json is served for "
				 "/openapi/v2");
			return true;
		}
		api_reply_json(r, 200, v2_doc(r->srv));
		return true;
	}
	if (!strcmp(p, "/openapi/v3") || !strcmp(p, "/openapi/v3/")) {
		api_reply_json(r, 200, v3_root(r->srv));
		return true;
	}
	if (!strncmp(p, "/openapi/v3/api/", 16)) {
		api_reply_json(r, 200, v3_doc(r->srv->reg, "", p + 16));
		return true;
	}
	if (!strncmp(p, "/openapi/v3/apis/", 17)) {
		char grp[256], ver[64];

		if (sscanf(p + 17, "%255[^/]/%63s", grp, ver) == 2) {
			api_reply_json(r, 200, v3_doc(r->srv->reg, grp, ver));
			return true;
		}
	}
	return false;
}
