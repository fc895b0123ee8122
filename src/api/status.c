/*
 * status.c -- errors as Kubernetes Status objects, worded as kube-apiserver
 * words them, because kubectl prints the message as it comes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/api_int.h"

json_t *api_status(int code, const char *reason, const char *message,
		   json_t *details)
{
	json_t *s =
	    json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:i}", "kind", "Status",
		      "apiVersion", "v1", "metadata", "status",
		      code < 400 ? "Success" : "Failure", "message", message,
		      "reason", reason, "code", code);

	if (s && details)
		json_object_set_new(s, "details", details);
	else
		json_decref(details);
	return s;
}

void api_qualified(const reg_type *t, char *buf, size_t len)
{
	if (t && *t->group)
		snprintf(buf, len, "%s.%s", t->plural, t->group);
	else
		snprintf(buf, len, "%s", t ? t->plural : "");
}

json_t *api_details(const api_req *r, const char *name)
{
	json_t *d = json_object();

	if (name)
		json_object_set_new(d, "name", json_string(name));
	if (r->type) {
		json_object_set_new(d, "group", json_string(r->type->group));
		json_object_set_new(d, "kind", json_string(r->type->plural));
	}
	return d;
}

void api_fail(api_req *r, int code, const char *reason, json_t *details,
	      const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	api_reply_json(r, code, api_status(code, reason, msg, details));
}

void api_fail_notfound(api_req *r)
{
	char q[256];

	api_qualified(r->type, q, sizeof q);
	api_fail(r, 404, "NotFound", api_details(r, r->name),
		 "%s \"%s\" not found", q, r->name ? r->name : "");
}

void api_fail_invalid(api_req *r, const char *name, json_t *causes)
{
	char msg[4096];
	size_t n = json_array_size(causes), i, off;
	json_t *c, *d;

	off = (size_t)snprintf(
	    msg, sizeof msg, "%s%s%s \"%s\" is invalid: %s",
	    r->type ? r->type->kind : "", r->type && *r->type->group ? "." : "",
	    r->type ? r->type->group : "", name ? name : "", n > 1 ? "[" : "");
	json_array_foreach(causes, i, c)
	{
		const char *f = json_string_value(json_object_get(c, "field"));
		const char *m =
		    json_string_value(json_object_get(c, "message"));

		if (off >= sizeof msg)
			break;
		off += (size_t)snprintf(msg + off, sizeof msg - off, "%s%s%s%s",
					i ? ", " : "", f ? f : "",
					f && *f ? ": " : "", m ? m : "");
	}
	if (n > 1 && off < sizeof msg)
		snprintf(msg + off, sizeof msg - off, "]");
	d = json_object();
	if (name)
		json_object_set_new(d, "name", json_string(name));
	if (r->type) {
		json_object_set_new(d, "group", json_string(r->type->group));
		json_object_set_new(d, "kind", json_string(r->type->kind));
	}
	json_object_set(d, "causes", causes);
	api_reply_json(r, 422, api_status(422, "Invalid", msg, d));
}
