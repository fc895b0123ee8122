/*
 * table.c -- server-side printing: a meta.k8s.io/v1 Table, with a Name
 * column and the type's additionalPrinterColumns, the way kube-apiserver's
 * CRD table convertor fills the cells (first JSONPath result; dates as
 * ages; missing values as null).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_int.h"

bool api_wants_table(const api_req *r)
{
	const char *acc = evhttp_find_header(
	    evhttp_request_get_input_headers(r->ev), "Accept");

	return acc && strstr(acc, "as=Table") && strstr(acc, "g=meta.k8s.io");
}

/* k8s.io/apimachinery/pkg/util/duration.HumanDuration. */
static void human_duration(long long s, char *buf, size_t len)
{
	long long m = s / 60, h = s / 3600, d = h / 24, y = d / 365;

	if (s < -1)
		snprintf(buf, len, "<invalid>");
	else if (s < 0)
		snprintf(buf, len, "0s");
	else if (s < 120)
		snprintf(buf, len, "%llds", s);
	else if (m < 10)
		s % 60 ? snprintf(buf, len, "%lldm%llds", m, s % 60)
		       : snprintf(buf, len, "%lldm", m);
	else if (h < 3)
		snprintf(buf, len, "%lldm", m);
	else if (h < 8)
		m % 60 ? snprintf(buf, len, "%lldh%lldm", h, m % 60)
		       : snprintf(buf, len, "%lldh", h);
	else if (h < 48)
		snprintf(buf, len, "%lldh", h);
	else if (h < 24 * 8)
		h % 24 ? snprintf(buf, len, "%lldd%lldh", d, h % 24)
		       : snprintf(buf, len, "%lldd", d);
	else if (y < 2)
		snprintf(buf, len, "%lldd", d);
	else if (y < 8)
		snprintf(buf, len, "%lldy%lldd", y, d % 365);
	else
		snprintf(buf, len, "%lldy", y);
}

static json_t *date_cell(const json_t *v)
{
	struct tm tm;
	char buf[32];
	const char *s = json_string_value(v);

	memset(&tm, 0, sizeof tm);
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return json_null();
	human_duration((long long)(time(NULL) - timegm(&tm)), buf, sizeof buf);
	return json_string(buf);
}

static json_t *cell(const reg_column *c, json_t *obj)
{
	json_t *res = c->path ? jp_eval(c->path, obj) : NULL, *v, *out;

	v = json_array_get(res, 0);
	if (!v || json_is_null(v))
		out = json_null();
	else if (!strcmp(c->type, "date"))
		out = date_cell(v);
	else if (!strcmp(c->type, "integer"))
		out = json_is_number(v)
			  ? json_integer((json_int_t)json_number_value(v))
			  : json_null();
	else if (!strcmp(c->type, "number"))
		out = json_is_number(v) ? json_real(json_number_value(v))
					: json_null();
	else if (!strcmp(c->type, "boolean"))
		out = json_is_boolean(v) ? json_incref(v) : json_null();
	else if (json_is_string(v))
		out = json_incref(v);
	else {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

		out = s ? json_string(s) : json_null();
		free(s);
	}
	json_decref(res);
	return out;
}

json_t *api_table(api_req *r, cache_obj **objs, size_t n, const char *rv,
		  const char *cont, int64_t remaining)
{
	const reg_version *v = r->ver;
	const char *inc = api_query(r, "includeObject");
	bool full = inc && !strcmp(inc, "Object");
	bool none = inc && !strcmp(inc, "None");
	json_t *cols = json_array(), *rows = json_array(), *t, *meta;

	json_array_append_new(
	    cols, json_pack("{s:s, s:s, s:s, s:s, s:i}", "name", "Name", "type",
			    "string", "format", "name", "description",
			    "Name must be unique within a namespace.",
			    "priority", 0));
	for (size_t i = 0; i < v->ncols; i++) {
		const reg_column *c = &v->cols[i];

		json_array_append_new(
		    cols, json_pack("{s:s, s:s, s:s, s:s, s:i}", "name",
				    c->name, "type", c->type, "format",
				    c->format ? c->format : "", "description",
				    c->description ? c->description : "",
				    "priority", c->priority));
	}
	for (size_t i = 0; i < n; i++) {
		json_t *obj = cache_obj_parse(objs[i]), *cells, *row;

		if (!obj)
			continue;
		cells = json_pack("[s]", objs[i]->name);
		for (size_t j = 0; j < v->ncols; j++)
			json_array_append_new(cells, cell(&v->cols[j], obj));
		row = json_pack("{s:o}", "cells", cells);
		if (full)
			json_object_set(row, "object", obj);
		else if (!none)
			json_object_set_new(
			    row, "object",
			    json_pack("{s:s, s:s, s:O}", "kind",
				      "PartialObjectMetadata", "apiVersion",
				      "meta.k8s.io/v1", "metadata",
				      json_object_get(obj, "metadata")));
		json_array_append_new(rows, row);
		json_decref(obj);
	}
	meta = json_object();
	if (rv)
		json_object_set_new(meta, "resourceVersion", json_string(rv));
	if (cont)
		json_object_set_new(meta, "continue", json_string(cont));
	if (remaining >= 0)
		json_object_set_new(meta, "remainingItemCount",
				    json_integer(remaining));
	t = json_pack("{s:s, s:s, s:o, s:o, s:o}", "kind", "Table",
		      "apiVersion", "meta.k8s.io/v1", "metadata", meta,
		      "columnDefinitions", cols, "rows", rows);
	return t;
}
