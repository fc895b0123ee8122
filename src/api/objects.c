/*
 * objects.c -- the verbs on objects of every type: get, list, create,
 * update, patch, delete, deletecollection, and the status and scale
 * subresources.
 *
 * Reads answer from the cache. Writes build the new object from the
 * cache's current one, prepare it (api_prepare: metadata, schema), and
 * commit it with a compare-and-swap on the key's mod_revision. A write
 * without a resourceVersion precondition (a patch, say) that loses a race
 * is retried from the new current object, as kube-apiserver's
 * GuaranteedUpdate does; one with a precondition gets 409 Conflict.
 */
#include <ctype.h>
#include <event2/buffer.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "api/api_int.h"
#include "api/patch.h"
#include "api/proto.h"
#include "api/selector.h"

#define MAX_RETRIES 8

static void dispatch(api_req *r);
static json_t *scale_of(api_req *r, cache_obj *cur);

/* ---- small helpers ------------------------------------------------------ */

static const char *content_type(const api_req *r)
{
	const char *ct = evhttp_find_header(
	    evhttp_request_get_input_headers(r->ev), "Content-Type");

	return ct ? ct : "";
}

static bool ct_is(const api_req *r, const char *want)
{
	return !strncmp(content_type(r), want, strlen(want));
}

static json_t *md(json_t *obj)
{
	json_t *m = json_object_get(obj, "metadata");

	if (!json_is_object(m)) {
		m = json_object();
		json_object_set_new(obj, "metadata", m);
	}
	return m;
}

static const char *md_str(const json_t *obj, const char *k)
{
	return json_string_value(
	    json_object_get(json_object_get(obj, "metadata"), k));
}

void api_version_of(const api_req *r, char *buf, size_t len)
{
	if (*r->type->group)
		snprintf(buf, len, "%s/%s", r->type->group, r->ver->name);
	else
		snprintf(buf, len, "%s", r->ver->name);
}

/* The object's JSON as the client asked for it: the stored bytes, or, if
 * the client asked another version than the stored one, rewritten. Returns
 * a new string (caller frees) in *owned only when rewritten. */
static const char *obj_bytes(const api_req *r, const cache_obj *o, size_t *len,
			     char **owned)
{
	char want[300];
	json_t *j;

	*owned = NULL;
	api_version_of(r, want, sizeof want);
	if (api_stored_as(o, want)) {
		*len = o->len;
		return o->json;
	}
	j = cache_obj_parse(o);
	if (j) {
		json_object_set_new(j, "apiVersion", json_string(want));
		*owned = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	}
	if (!*owned) {
		*len = o->len;
		return o->json;
	}
	*len = strlen(*owned);
	return *owned;
}

bool api_stored_as(const cache_obj *o, const char *api_version)
{
	static const char lead[] = "{\"apiVersion\":\"";
	size_t l = sizeof lead - 1, n = strlen(api_version);

	/* api_prepare puts apiVersion first in every object we store. */
	return o->len > l + n && !strncmp(o->json, lead, l) &&
	       !strncmp(o->json + l, api_version, n) && o->json[l + n] == '"';
}

static void reply_obj(api_req *r, int code, const cache_obj *o)
{
	char *owned;
	size_t len;
	const char *b;

	if (api_wants_table(r)) {
		cache_obj *one = (cache_obj *)o;

		api_reply_json(r, code, api_table(r, &one, 1, NULL, NULL, -1));
		return;
	}
	b = obj_bytes(r, o, &len, &owned);
	api_reply(r, code, "application/json", b, len);
	free(owned);
}

/* Reply with obj (borrowed) after setting its resourceVersion. */
static void reply_json_obj(api_req *r, int code, json_t *obj, int64_t rev)
{
	char rv[24];

	if (rev > 0) {
		snprintf(rv, sizeof rv, "%lld", (long long)rev);
		json_object_set_new(md(obj), "resourceVersion",
				    json_string(rv));
	}
	api_reply_json(r, code, json_incref(obj));
}

/* kube's generateName suffix: 5 characters from a consonant-heavy set. */
void api_name_suffix(char out[6])
{
	static const char alpha[] = "bcdfghjklmnpqrstvwxz2456789";
	unsigned char b[5];

	if (getrandom(b, sizeof b, 0) != sizeof b)
		memset(b, 0, sizeof b);
	for (int i = 0; i < 5; i++)
		out[i] = alpha[b[i] % (sizeof alpha - 1)];
	out[5] = '\0';
}

static bool is_dns_subdomain(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253 || !isalnum((unsigned char)s[0]) ||
	    !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!(islower(c) || isdigit(c) || c == '-' || c == '.'))
			return false;
		if (c == '.' && (!isalnum((unsigned char)s[i - 1]) ||
				 !isalnum((unsigned char)s[i + 1])))
			return false;
	}
	return true;
}

static bool is_dns_label(const char *s)
{
	return is_dns_subdomain(s) && strlen(s) <= 63 && !strchr(s, '.');
}

static void add_cause(json_t *causes, const char *reason, const char *field,
		      const char *msg)
{
	json_array_append_new(causes,
			      json_pack("{s:s, s:s, s:s}", "reason", reason,
					"message", msg, "field", field));
}

/* ---- preparing an object ----------------------------------------------- */

static void check_meta(api_req *r, json_t *obj, json_t *causes)
{
	const char *name = md_str(obj, "name");
	json_t *labels = json_object_get(md(obj), "labels");
	const char *k;
	json_t *v;
	char msg[600], field[400];
	bool label_ns = !strcmp(r->type->plural, "namespaces");

	if (name && !(label_ns ? is_dns_label(name) : is_dns_subdomain(name))) {
		snprintf(msg, sizeof msg,
			 "Invalid value: \"%s\": a lowercase RFC 1123 %s must "
			 "consist of lower case alphanumeric characters%s, "
			 "and must start and end with an alphanumeric "
			 "character",
			 name, label_ns ? "label" : "subdomain",
			 label_ns ? " or '-'" : ", '-' or '.'");
		add_cause(causes, "FieldValueInvalid", "metadata.name", msg);
	}
	if (labels && !json_is_object(labels)) {
		add_cause(causes, "FieldValueTypeInvalid", "metadata.labels",
			  "Invalid value: must be an object of strings");
		return;
	}
	json_object_foreach(labels, k, v)
	{
		if (json_is_string(v))
			continue;
		snprintf(field, sizeof field, "metadata.labels[%s]", k);
		add_cause(causes, "FieldValueTypeInvalid", field,
			  "Invalid value: label values must be strings");
	}
}

/* apiVersion, kind and metadata first, in that order, then the rest as
 * they were: stored objects start with their apiVersion (api_stored_as). */
static void canonical_order(json_t *obj, const char *av, const char *kind)
{
	json_t *copy = json_object(), *m = json_incref(md(obj));
	const char *k;
	json_t *v;

	json_object_set_new(copy, "apiVersion", json_string(av));
	json_object_set_new(copy, "kind", json_string(kind));
	json_object_set_new(copy, "metadata", m);
	json_object_foreach(obj, k, v)
	{
		if (strcmp(k, "apiVersion") && strcmp(k, "kind") &&
		    strcmp(k, "metadata"))
			json_object_set(copy, k, v);
	}
	json_object_clear(obj);
	json_object_update(obj, copy);
	json_decref(copy);
}

size_t api_prepare(api_req *r, json_t *obj, json_t *causes, json_t *unknown)
{
	size_t before = json_array_size(causes);
	char av[300];
	int n;

	api_version_of(r, av, sizeof av);
	canonical_order(obj, av, r->type->kind);
	if (r->type->namespaced && r->ns)
		json_object_set_new(md(obj), "namespace", json_string(r->ns));
	else
		json_object_del(md(obj), "namespace");
	json_object_del(md(obj), "resourceVersion");
	json_object_del(md(obj), "selfLink");
	check_meta(r, obj, causes);
	if (r->ver->schema) {
		n = schema_process(r->ver->schema, obj, 0, causes, unknown);
		if (n < 0)
			add_cause(causes, "InternalError", "",
				  "out of memory while validating");
	}
	if (!strcmp(r->type->crd_name,
		    "customresourcedefinitions.apiextensions.k8s.io"))
		api_crd_check(r->srv, obj, causes);
	return json_array_size(causes) - before;
}

/* Parse the request body as an object. Under fieldValidation=Strict a
 * duplicate field is an error. Sends 400 and returns NULL on failure. */
json_t *api_parse_body(api_req *r, bool strict)
{
	json_error_t e;
	json_t *j;

	if (proto_is_content_type(content_type(r))) {
		/* kubectl's typed clients (create namespace, create role...)
		 * send Kubernetes protobuf. */
		char perr[512];

		j = proto_decode(r->body, r->body_len, perr, sizeof perr);
		if (!j)
			api_fail(r, 400, "BadRequest", NULL,
				 "the protobuf request body could not be "
				 "decoded: %s",
				 perr);
		return j;
	}
	if (*content_type(r) && !ct_is(r, "application/json") &&
	    !ct_is(r, "*/*")) {
		api_fail(r, 415, "UnsupportedMediaType", NULL,
			 "the body of the request was in an unknown format - "
			 "accepted media types include: application/json, "
			 "application/vnd.kubernetes.protobuf");
		return NULL;
	}
	if (!r->body || !r->body_len) {
		api_fail(r, 400, "BadRequest", NULL,
			 "the request body is empty: send a JSON object");
		return NULL;
	}
	j = json_loadb(r->body, r->body_len,
		       strict ? JSON_REJECT_DUPLICATES : 0, &e);
	if (!j) {
		if (strict && strstr(e.text, "duplicate"))
			api_fail(r, 400, "BadRequest", NULL,
				 "strict decoding error: %s", e.text);
		else
			api_fail(r, 400, "BadRequest", NULL,
				 "the request body is not valid JSON: line "
				 "%d, column %d: %s",
				 e.line, e.column, e.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		api_fail(r, 400, "BadRequest", NULL,
			 "the request body must be a JSON object");
		return NULL;
	}
	return j;
}

typedef enum { FV_STRICT, FV_WARN, FV_IGNORE } field_validation;

static field_validation fv_mode(const api_req *r)
{
	const char *v = api_query(r, "fieldValidation");

	if (v && !strcmp(v, "Strict"))
		return FV_STRICT;
	if (v && !strcmp(v, "Ignore"))
		return FV_IGNORE;
	return FV_WARN;
}

/* Apply fieldValidation to the pruned fields: Strict refuses (sends 400
 * and returns false), Warn adds Warning headers. */
static bool field_check(api_req *r, json_t *unknown)
{
	field_validation m = fv_mode(r);
	char msg[2048];
	size_t i, off = 0;
	json_t *u;

	if (json_array_size(unknown) == 0 || m == FV_IGNORE)
		return true;
	if (m == FV_WARN) {
		json_array_foreach(unknown, i, u)
		{
			snprintf(msg, sizeof msg,
				 "299 - \"unknown field \\\"%s\\\"\"",
				 json_string_value(u) + 1);
			evhttp_add_header(
			    evhttp_request_get_output_headers(r->ev), "Warning",
			    msg);
		}
		return true;
	}
	off = (size_t)snprintf(msg, sizeof msg, "strict decoding error: ");
	json_array_foreach(unknown, i, u)
	{
		if (off < sizeof msg)
			off += (size_t)snprintf(msg + off, sizeof msg - off,
						"%sunknown field \"%s\"",
						i ? ", " : "",
						json_string_value(u) + 1);
	}
	api_fail(r, 400, "BadRequest", NULL, "%s", msg);
	return false;
}

static bool dry_run(const api_req *r)
{
	const char *d = api_query(r, "dryRun");

	return (d && !strcmp(d, "All")) || r->dry_run_body;
}

/* Does the namespace of r exist? Sends 404 if not. */
static bool ns_exists(api_req *r)
{
	const reg_type *nst;
	char *key;
	bool ok;

	if (!r->type->namespaced || !r->ns)
		return true;
	nst = reg_find(r->srv->reg, "", "v1", "namespaces", NULL);
	key = api_key(nst, NULL, r->ns);
	ok = key && cache_get(r->srv->cache, key);
	free(key);
	if (!ok)
		api_fail(r, 404, "NotFound",
			 json_pack("{s:s, s:s}", "name", r->ns, "kind",
				   "namespaces"),
			 "namespaces \"%s\" not found", r->ns);
	return ok;
}

/* ---- reads -------------------------------------------------------------- */

static char *req_key(api_req *r, const char *name)
{
	return api_key(r->type, r->ns, name);
}

static void do_get(api_req *r)
{
	char *key = req_key(r, r->name);
	cache_obj *o = key ? cache_get(r->srv->cache, key) : NULL;

	free(key);
	if (!o) {
		api_fail_notfound(r);
		return;
	}
	reply_obj(r, 200, o);
}

static const char *field_of(const char *field, void *arg)
{
	const cache_obj *o = arg;

	if (!strcmp(field, "metadata.name"))
		return o->name;
	if (!strcmp(field, "metadata.namespace"))
		return o->ns ? o->ns : "";
	return NULL;
}

bool api_filter_match(const api_filter *f, const cache_obj *o)
{
	if (f->labels && !sel_match_fn(f->labels, cache_obj_label, (void *)o))
		return false;
	if (f->fields && !fsel_match(f->fields, field_of, (void *)o))
		return false;
	return true;
}

/* Parse labelSelector and fieldSelector; sends 400 and returns false. */
bool api_filter_parse(api_req *r, api_filter *f)
{
	static const char *const fields[] = {"metadata.name",
					     "metadata.namespace", NULL};
	const char *ls = api_query(r, "labelSelector");
	const char *fs = api_query(r, "fieldSelector");
	char err[512];

	memset(f, 0, sizeof(*f));
	if (ls && *ls && sel_parse(ls, &f->labels, err, sizeof err)) {
		api_fail(r, 400, "BadRequest", NULL,
			 "unable to parse requirement: %s", err);
		return false;
	}
	if (fs && *fs &&
	    (fsel_parse(fs, &f->fields, err, sizeof err) ||
	     fsel_check_fields(f->fields, fields, err, sizeof err))) {
		sel_free(f->labels);
		fsel_free(f->fields);
		f->labels = NULL;
		f->fields = NULL;
		api_fail(r, 400, "BadRequest", NULL, "%s", err);
		return false;
	}
	return true;
}

void api_filter_free(api_filter *f)
{
	sel_free(f->labels);
	fsel_free(f->fields);
}

/* Continue tokens: base64 of {"v":"meta.k8s.io/v1","rv":N,"start":KEY}. */
static char *continue_token(int64_t rv, const char *start)
{
	json_t *j = json_pack("{s:s, s:I, s:s}", "v", "meta.k8s.io/v1", "rv",
			      (json_int_t)rv, "start", start);
	char *s = json_dumps(j, JSON_COMPACT), *out = NULL;
	size_t n;

	json_decref(j);
	if (!s)
		return NULL;
	n = strlen(s);
	out = malloc(4 * ((n + 2) / 3) + 1);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, (unsigned char *)s,
				(int)n);
	free(s);
	return out;
}

static char *continue_start(const char *token, const char *prefix)
{
	size_t n = strlen(token);
	unsigned char *raw = malloc(n + 1);
	json_t *j = NULL;
	char *start = NULL;
	int len;

	if (!raw)
		return NULL;
	len = EVP_DecodeBlock(raw, (const unsigned char *)token, (int)n);
	if (len > 0) {
		while (len > 0 && raw[len - 1] == '\0')
			len--;
		j = json_loadb((char *)raw, (size_t)len, 0, NULL);
	}
	free(raw);
	const char *s = json_string_value(json_object_get(j, "start"));
	if (s && !strncmp(s, prefix, strlen(prefix)))
		start = strdup(s);
	json_decref(j);
	return start;
}

static void do_list(api_req *r)
{
	api_server *a = r->srv;
	const char *lim = api_query(r, "limit");
	const char *cont = api_query(r, "continue");
	long long limit = lim ? atoll(lim) : 0;
	char *prefix = NULL, *start = NULL, *next = NULL, rv[24], av[300];
	api_filter f;
	cache_obj *o, **objs = NULL;
	size_t n = 0, cap = 0;
	bool table = api_wants_table(r);
	struct evbuffer *b;

	if (!api_filter_parse(r, &f))
		return;
	if (r->ns) {
		if (asprintf(&prefix, "%s%s/", r->type->key_prefix, r->ns) < 0)
			prefix = NULL;
	} else
		prefix = strdup(r->type->key_prefix);
	if (prefix && cont && *cont) {
		start = continue_start(cont, prefix);
		if (!start) {
			free(prefix);
			api_filter_free(&f);
			api_fail(r, 410, "Expired", NULL,
				 "the provided continue parameter is too old "
				 "to display a consistent list result. You "
				 "can start a new list without the continue "
				 "parameter.");
			return;
		}
	}
	snprintf(rv, sizeof rv, "%lld", (long long)cache_revision(a->cache));
	for (o = prefix ? cache_first(a->cache, start ? start : prefix) : NULL;
	     o && !strncmp(o->key, prefix, strlen(prefix));
	     o = cache_next(a->cache, o)) {
		if (!api_filter_match(&f, o))
			continue;
		if (limit > 0 && n == (size_t)limit) {
			next = continue_token(cache_revision(a->cache), o->key);
			break;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			cache_obj **p = realloc(objs, cap * sizeof(*p));
			if (!p)
				break;
			objs = p;
		}
		objs[n++] = o;
	}
	api_filter_free(&f);
	if (table) {
		api_reply_json(r, 200, api_table(r, objs, n, rv, next, -1));
		goto out;
	}
	api_version_of(r, av, sizeof av);
	b = evbuffer_new();
	evbuffer_add_printf(b,
			    "{\"kind\":\"%s\",\"apiVersion\":\"%s\","
			    "\"metadata\":{\"resourceVersion\":\"%s\"",
			    r->type->list_kind, av, rv);
	if (next)
		evbuffer_add_printf(b, ",\"continue\":\"%s\"", next);
	evbuffer_add(b, "},\"items\":[", 11);
	for (size_t i = 0; i < n; i++) {
		char *owned;
		size_t len;
		const char *bytes = obj_bytes(r, objs[i], &len, &owned);

		if (i)
			evbuffer_add(b, ",", 1);
		evbuffer_add(b, bytes, len);
		free(owned);
	}
	evbuffer_add(b, "]}", 2);
	{
		struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);

		evhttp_add_header(h, "Content-Type", "application/json");
		evhttp_send_reply(r->ev, 200, NULL, b);
		evbuffer_free(b);
		api_req_finish(r, 200);
	}
out:
	free(objs);
	free(prefix);
	free(start);
	free(next);
}

/* ---- writes ----------------------------------------------------------------
 */

/* After a write the client gets the object as stored: the cache already
 * holds it (the loop applies the store's events before completions). */
static void on_written(api_req *r, int err, store_txn_result *res)
{
	char q[256];
	cache_obj *o;

	if (r->key) {
		cache_hint_drop(r->srv->cache, r->key, r->val);
		free(r->val);
		r->val = NULL;
	}
	api_qualified(r->type, q, sizeof q);
	if (err) {
		api_fail(r,
			 err == STORE_ENOSPC || err == STORE_EROFS ? 507 : 500,
			 "InternalError", NULL,
			 "the store could not write %s \"%s\": %s", q,
			 md_str(r->obj, "name") ?: "", store_strerror(err));
		return;
	}
	if (!res->succeeded) {
		if (r->verb == VERB_CREATE && r->generated &&
		    r->retries < MAX_RETRIES) {
			/* A generated name that was taken: another name. */
			r->retries++;
			json_decref(r->obj);
			r->obj = NULL;
			free(r->key);
			r->key = NULL;
			dispatch(r);
			return;
		}
		if (r->verb == VERB_CREATE) {
			api_fail(r, 409, "AlreadyExists",
				 api_details(r, md_str(r->obj, "name")),
				 "%s \"%s\" already exists", q,
				 md_str(r->obj, "name") ?: "");
			return;
		}
		/* Lost a race without a precondition: do it again. */
		if (!json_is_true(json_object_get(r->aux, "precondition")) &&
		    r->retries < MAX_RETRIES) {
			r->retries++;
			json_decref(r->obj);
			r->obj = NULL;
			free(r->key);
			r->key = NULL;
			dispatch(r);
			return;
		}
		api_fail(r, 409, "Conflict", api_details(r, r->name),
			 "Operation cannot be fulfilled on %s \"%s\": the "
			 "object has been modified; please apply your changes "
			 "to the latest version and try again",
			 q, r->name ? r->name : "");
		return;
	}
	if (json_is_true(json_object_get(r->aux, "deleted"))) {
		reply_json_obj(r, 200, r->obj, 0);
		return;
	}
	o = r->key ? cache_get(r->srv->cache, r->key) : NULL;
	if (r->reply_scale && o) {
		api_reply_json(r, 200, scale_of(r, o));
		return;
	}
	if (o && o->rev == res->revision && r->secret &&
	    r->verb == VERB_CREATE && !api_wants_table(r)) {
		/* A new SetupKey: its secret, this once. */
		json_t *full = cache_obj_parse(o);
		json_t *st = json_object_get(full, "status");

		if (json_is_object(st))
			json_object_set_new(st, "key", json_string(r->secret));
		api_reply_json(r, 201, full);
	} else if (o && o->rev == res->revision)
		reply_obj(r, r->verb == VERB_CREATE ? 201 : 200, o);
	else
		reply_json_obj(r, r->verb == VERB_CREATE ? 201 : 200, r->obj,
			       res->revision);
}

/* Commit obj (stolen into r->obj) at key: if expect_mod is 0 the key must
 * not exist; otherwise its mod_revision must equal expect_mod. With del,
 * delete the key instead of writing it. */
static void commit(api_req *r, const char *key, json_t *obj, int64_t expect_mod,
		   bool precondition, bool del)
{
	store_cmp cmp = {key, expect_mod ? STORE_CMP_MOD : STORE_CMP_CREATE,
			 STORE_CMP_EQ, expect_mod};
	store_op op = {.type = del ? STORE_OP_DELETE : STORE_OP_PUT,
		       .key = key};
	store_txn t = {&cmp, 1, &op, 1, NULL, 0};

	json_decref(r->obj);
	r->obj = obj;
	json_decref(r->aux);
	r->aux = json_pack("{s:b, s:b}", "precondition", precondition,
			   "deleted", del);
	free(r->key);
	free(r->val);
	r->val = NULL;
	r->key = strdup(key);
	if (!r->key) {
		api_fail(r, 500, "InternalError", NULL, "out of memory");
		return;
	}
	if (!del) {
		json_object_del(md(obj), "resourceVersion");
		r->val = json_dumps(obj, JSON_COMPACT);
		if (!r->val) {
			api_fail(r, 500, "InternalError", NULL,
				 "out of memory");
			return;
		}
		op.value = r->val;
		op.value_len = strlen(r->val);
		cache_hint(r->srv->cache, r->key, r->val, op.value_len, obj);
	}
	api_txn(r, &t, on_written);
}

static void do_create(api_req *r)
{
	json_t *obj, *causes, *unknown;
	const char *name, *gen, *bns;
	char *key, nm[300], suffix[6], uid[37], now[32], av[300];

	if (!ns_exists(r))
		return;
	obj = api_parse_body(r, fv_mode(r) == FV_STRICT);
	if (!obj)
		return;
	api_version_of(r, av, sizeof av);
	if (json_is_string(json_object_get(obj, "apiVersion")) &&
	    strcmp(json_string_value(json_object_get(obj, "apiVersion")), av)) {
		api_fail(r, 400, "BadRequest", NULL,
			 "the API version in the data (%s) does not match the "
			 "expected API version (%s)",
			 json_string_value(json_object_get(obj, "apiVersion")),
			 av);
		json_decref(obj);
		return;
	}
	bns = md_str(obj, "namespace");
	if (r->type->namespaced && bns && *bns && strcmp(bns, r->ns)) {
		api_fail(r, 400, "BadRequest", NULL,
			 "the namespace of the provided object does not match "
			 "the namespace sent on the request");
		json_decref(obj);
		return;
	}
	name = md_str(obj, "name");
	gen = md_str(obj, "generateName");
	bool generated = (!name || !*name) && gen && *gen;

	if (generated) {
		api_name_suffix(suffix);
		snprintf(nm, sizeof nm, "%s%s", gen, suffix);
		json_object_set_new(md(obj), "name", json_string(nm));
	}
	causes = json_array();
	unknown = json_array();
	if (!md_str(obj, "name") || !*md_str(obj, "name"))
		add_cause(causes, "FieldValueRequired", "metadata.name",
			  "Required value: name or generateName is required");
	api_uuid(uid);
	api_now(now);
	json_object_set_new(md(obj), "uid", json_string(uid));
	json_object_set_new(md(obj), "creationTimestamp", json_string(now));
	json_object_set_new(md(obj), "generation", json_integer(1));
	json_object_del(md(obj), "deletionTimestamp");
	if (r->ver->status)
		json_object_del(obj, "status");
	if (!*r->type->group && !strcmp(r->type->plural, "namespaces")) {
		/* The namespace strategy: Active, finalized by "kubernetes". */
		json_object_set_new(obj, "status",
				    json_pack("{s:s}", "phase", "Active"));
		if (!json_is_object(json_object_get(obj, "spec")))
			json_object_set_new(obj, "spec", json_object());
		json_object_set_new(json_object_get(obj, "spec"), "finalizers",
				    json_pack("[s]", "kubernetes"));
	}
	api_prepare(r, obj, causes, unknown);
	if (!json_array_size(causes))
		api_mesh_admit(r, obj, NULL, causes);
	if (json_array_size(causes)) {
		api_fail_invalid(r, md_str(obj, "name"), causes);
		goto out;
	}
	if (!field_check(r, unknown) || !api_authorize_write(r, obj))
		goto out;
	if (dry_run(r)) {
		api_reply_json(r, 201, json_incref(obj));
		goto out;
	}
	key = req_key(r, md_str(obj, "name"));
	if (cache_get(r->srv->cache, key) && generated &&
	    r->retries < MAX_RETRIES) {
		r->retries++;
		free(key);
		json_decref(obj);
		json_decref(causes);
		json_decref(unknown);
		do_create(r);
		return;
	}
	if (cache_get(r->srv->cache, key)) {
		char q[256];

		api_qualified(r->type, q, sizeof q);
		api_fail(r, 409, "AlreadyExists",
			 api_details(r, md_str(obj, "name")),
			 "%s \"%s\" already exists", q, md_str(obj, "name"));
		free(key);
		goto out;
	}
	r->generated = generated;
	commit(r, key, json_incref(obj), 0, true, false);
	free(key);
out:
	json_decref(obj);
	json_decref(causes);
	json_decref(unknown);
}

/* Everything but metadata and status: a change bumps generation. */
static bool spec_equal(json_t *a, json_t *b)
{
	json_t *x = json_copy(a), *y = json_copy(b);
	bool eq;

	json_object_del(x, "metadata");
	json_object_del(x, "status");
	json_object_del(y, "metadata");
	json_object_del(y, "status");
	eq = json_equal(x, y);
	json_decref(x);
	json_decref(y);
	return eq;
}

/* Carry over from old what a client may not change, per subresource. */
static void carry_over(api_req *r, json_t *old, json_t *obj)
{
	static const char *const keep[] = {"uid",
					   "creationTimestamp",
					   "generation",
					   "deletionTimestamp",
					   "deletionGracePeriodSeconds",
					   NULL};
	json_t *om = md(old), *nm = md(obj);

	for (size_t i = 0; keep[i]; i++) {
		json_t *v = json_object_get(om, keep[i]);

		if (v)
			json_object_set(nm, keep[i], v);
		else
			json_object_del(nm, keep[i]);
	}
	if (r->sub && !strcmp(r->sub, "status")) {
		/* Only status changes through /status. */
		json_t *st = json_object_get(obj, "status");
		json_t *copy = json_deep_copy(old);

		if (st)
			json_object_set(copy, "status", st);
		else
			json_object_del(copy, "status");
		json_object_clear(obj);
		json_object_update(obj, copy);
		json_decref(copy);
	} else if (r->ver->status) {
		json_t *st = json_object_get(old, "status");

		if (st)
			json_object_set(obj, "status", st);
		else
			json_object_del(obj, "status");
	}
	if (!spec_equal(old, obj))
		json_object_set_new(
		    nm, "generation",
		    json_integer(
			json_integer_value(json_object_get(om, "generation")) +
			1));
}

/* Finish an update or patch: obj is the client's new object (stolen). */
static void update_with(api_req *r, cache_obj *cur, json_t *obj,
			bool precondition, int64_t expect)
{
	json_t *old = cache_obj_parse(cur), *causes = json_array(),
	       *unknown = json_array();
	json_t *fin;
	char *key = NULL;
	bool del = false;

	if (!old) {
		api_fail(r, 500, "InternalError", NULL, "corrupt object");
		goto out;
	}
	carry_over(r, old, obj);
	api_prepare(r, obj, causes, unknown);
	if (!json_array_size(causes))
		api_mesh_admit(r, obj, old, causes);
	if (json_array_size(causes)) {
		api_fail_invalid(r, r->name, causes);
		goto out;
	}
	if (!field_check(r, unknown) || !api_authorize_write(r, obj))
		goto out;
	json_object_set_new(md(old), "resourceVersion", json_string(""));
	json_object_set_new(md(obj), "resourceVersion", json_string(""));
	if (json_equal(old, obj)) {
		/* Nothing changed: no write, the same resourceVersion. */
		if (r->reply_scale)
			api_reply_json(r, 200, scale_of(r, cur));
		else
			reply_obj(r, 200, cur);
		goto out;
	}
	fin = json_object_get(md(obj), "finalizers");
	if (json_object_get(md(obj), "deletionTimestamp") &&
	    json_array_size(fin) == 0)
		del = true;
	if (dry_run(r)) {
		reply_json_obj(r, 200, obj, cur->rev);
		goto out;
	}
	key = strdup(cur->key);
	commit(r, key, json_incref(obj), expect ? expect : cur->rev,
	       precondition, del);
out:
	free(key);
	json_decref(obj);
	json_decref(old);
	json_decref(causes);
	json_decref(unknown);
}

static cache_obj *current(api_req *r)
{
	char *key = req_key(r, r->name);
	cache_obj *o = key ? cache_get(r->srv->cache, key) : NULL;

	free(key);
	if (!o)
		api_fail_notfound(r);
	return o;
}

static int64_t rv_of(const json_t *obj)
{
	const char *rv = md_str(obj, "resourceVersion");

	return rv && *rv ? atoll(rv) : 0;
}

static void do_update(api_req *r)
{
	cache_obj *cur;
	json_t *obj;
	const char *name;
	int64_t rv;

	obj = api_parse_body(r, fv_mode(r) == FV_STRICT);
	if (!obj)
		return;
	name = md_str(obj, "name");
	if (!name || strcmp(name, r->name)) {
		api_fail(r, 400, "BadRequest", NULL,
			 "the name of the object (%s) does not match the name "
			 "on the URL (%s)",
			 name ? name : "", r->name);
		json_decref(obj);
		return;
	}
	cur = current(r);
	if (!cur) {
		json_decref(obj);
		return;
	}
	rv = rv_of(obj);
	if (rv && rv != cur->rev) {
		char q[256];

		api_qualified(r->type, q, sizeof q);
		api_fail(r, 409, "Conflict", api_details(r, r->name),
			 "Operation cannot be fulfilled on %s \"%s\": the "
			 "object has been modified; please apply your changes "
			 "to the latest version and try again",
			 q, r->name);
		json_decref(obj);
		return;
	}
	update_with(r, cur, obj, rv != 0, rv);
}

/* Strategic merge patch directives ($patch, $retainKeys,
 * $setElementOrder/...) removed, for built-in types where we treat a
 * strategic merge patch as a merge patch. */
static void strip_directives(json_t *j)
{
	const char *k;
	json_t *v;
	void *tmp;

	if (json_is_array(j)) {
		size_t i;

		json_array_foreach(j, i, v) strip_directives(v);
		return;
	}
	json_object_foreach_safe(j, tmp, k, v)
	{
		if (k[0] == '$')
			json_object_del(j, k);
		else
			strip_directives(v);
	}
}

static void do_patch(api_req *r)
{
	cache_obj *cur = current(r);
	json_t *old, *p, *obj = NULL;
	json_error_t e;
	char err[512];
	int64_t rv;
	int rc;

	if (!cur)
		return;
	if (!ct_is(r, "application/merge-patch+json") &&
	    !ct_is(r, "application/json-patch+json") &&
	    !(ct_is(r, "application/strategic-merge-patch+json") &&
	      r->type->builtin)) {
		api_fail(r, 415, "UnsupportedMediaType", NULL,
			 "the body of the request was in an unknown format - "
			 "accepted media types include: "
			 "application/json-patch+json, "
			 "application/merge-patch+json");
		return;
	}
	p = json_loadb(r->body ? r->body : "", r->body_len, JSON_DECODE_ANY,
		       &e);
	if (!p) {
		api_fail(r, 400, "BadRequest", NULL,
			 "the patch is not valid JSON: %s", e.text);
		return;
	}
	old = cache_obj_parse(cur);
	if (ct_is(r, "application/json-patch+json")) {
		rc = patch_json(old, p, &obj, err, sizeof err);
		if (rc) {
			if (rc == PATCH_EINVAL)
				api_fail(r, 400, "BadRequest", NULL, "%s", err);
			else
				api_fail(r, 422, "Invalid", NULL, "%s", err);
			goto out;
		}
	} else {
		if (ct_is(r, "application/strategic-merge-patch+json"))
			strip_directives(p);
		obj = patch_merge(old, p);
	}
	if (!json_is_object(obj)) {
		api_fail(r, 422, "Invalid", NULL,
			 "the patch result is not an object");
		json_decref(obj);
		goto out;
	}
	/* A resourceVersion the patch sets is a precondition. */
	rv = rv_of(p) ? rv_of(obj) : 0;
	if (rv && rv != cur->rev) {
		char q[256];

		api_qualified(r->type, q, sizeof q);
		api_fail(r, 409, "Conflict", api_details(r, r->name),
			 "Operation cannot be fulfilled on %s \"%s\": the "
			 "object has been modified; please apply your changes "
			 "to the latest version and try again",
			 q, r->name);
		json_decref(obj);
		goto out;
	}
	update_with(r, cur, obj, rv != 0, rv);
out:
	json_decref(p);
	json_decref(old);
}

/* ---- delete
 * ------------------------------------------------------------------ */

static void do_delete(api_req *r)
{
	cache_obj *cur = current(r);
	json_t *obj, *opts = NULL, *fin;
	int64_t pre = 0;
	char now[32], *key;

	if (!cur)
		return;
	if (!strcmp(r->type->plural, "namespaces") && !*r->type->group &&
	    (!strcmp(r->name, "default") || !strncmp(r->name, "kube-", 5))) {
		api_fail(r, 403, "Forbidden", api_details(r, r->name),
			 "namespaces \"%s\" is forbidden: this namespace may "
			 "not be deleted",
			 r->name);
		return;
	}
	if (r->body_len)
		opts = json_loadb(r->body, r->body_len, 0, NULL);
	{
		const char *p = json_string_value(json_object_get(
		    json_object_get(opts, "preconditions"), "resourceVersion"));
		json_t *dr = json_object_get(opts, "dryRun");
		size_t i;
		json_t *v;

		pre = p ? atoll(p) : 0;
		/* DeleteOptions may carry dryRun: ["All"]. */
		json_array_foreach(dr, i, v)
		{
			if (!strcmp(json_string_value(v) ?: "", "All"))
				r->dry_run_body = true;
		}
	}
	json_decref(opts);
	obj = cache_obj_parse(cur);
	if (pre && pre != cur->rev) {
		char q[256];

		api_qualified(r->type, q, sizeof q);
		api_fail(r, 409, "Conflict", api_details(r, r->name),
			 "Operation cannot be fulfilled on %s \"%s\": the "
			 "precondition failed: the resourceVersion in the "
			 "precondition (%lld) does not match the "
			 "resourceVersion in record (%lld). The object might "
			 "have been modified",
			 q, r->name, (long long)pre, (long long)cur->rev);
		json_decref(obj);
		return;
	}
	fin = json_object_get(md(obj), "finalizers");
	if (dry_run(r)) {
		reply_obj(r, 200, cur);
		json_decref(obj);
		return;
	}
	key = strdup(cur->key);
	if (json_array_size(fin) > 0) {
		/* Finalizers: mark, and leave the deletion to whoever owns
		 * them. Marking twice changes nothing. */
		if (!json_object_get(md(obj), "deletionTimestamp")) {
			api_now(now);
			json_object_set_new(md(obj), "deletionTimestamp",
					    json_string(now));
			json_object_set_new(md(obj),
					    "deletionGracePeriodSeconds",
					    json_integer(0));
			/* As kube-apiserver's markAsDeleting. */
			json_object_set_new(
			    md(obj), "generation",
			    json_integer(json_integer_value(json_object_get(
					     md(obj), "generation")) +
					 1));
			commit(r, key, obj, cur->rev, pre != 0, false);
		} else {
			reply_obj(r, 200, cur);
			json_decref(obj);
		}
	} else {
		commit(r, key, obj, cur->rev, pre != 0, true);
	}
	free(key);
}

/* Delete every listed object in one transaction; the reply lists them. */
static void do_deletecollection(api_req *r)
{
	api_server *a = r->srv;
	api_filter f;
	char *prefix = NULL;
	cache_obj *o;
	store_cmp *cmps = NULL;
	store_op *ops = NULL;
	size_t n = 0, cap = 0;
	json_t *items = json_array(), *list;
	char av[300];

	if (!api_filter_parse(r, &f))
		return;
	if (r->ns) {
		if (asprintf(&prefix, "%s%s/", r->type->key_prefix, r->ns) < 0)
			prefix = NULL;
	} else
		prefix = strdup(r->type->key_prefix);
	for (o = prefix ? cache_first(a->cache, prefix) : NULL;
	     o && !strncmp(o->key, prefix, strlen(prefix));
	     o = cache_next(a->cache, o)) {
		if (!api_filter_match(&f, o))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			store_cmp *c2 = realloc(cmps, cap * sizeof(*c2));
			if (c2)
				cmps = c2;
			store_op *o2 = realloc(ops, cap * sizeof(*o2));
			if (o2)
				ops = o2;
			if (!c2 || !o2)
				break;
		}
		cmps[n] =
		    (store_cmp){o->key, STORE_CMP_MOD, STORE_CMP_EQ, o->rev};
		ops[n] = (store_op){.type = STORE_OP_DELETE, .key = o->key};
		json_array_append_new(items, cache_obj_parse(o));
		n++;
	}
	api_filter_free(&f);
	api_version_of(r, av, sizeof av);
	list = json_pack("{s:s, s:s, s:{}, s:o}", "kind", r->type->list_kind,
			 "apiVersion", av, "metadata", "items", items);
	if (n == 0 || dry_run(r)) {
		api_reply_json(r, 200, list);
	} else {
		store_txn t = {cmps, n, ops, n, NULL, 0};

		json_decref(r->obj);
		r->obj = list;
		json_decref(r->aux);
		r->aux = json_pack("{s:b, s:b}", "precondition", false,
				   "deleted", true);
		api_txn(r, &t, on_written);
	}
	free(cmps);
	free(ops);
	free(prefix);
}

/* ---- scale
 * --------------------------------------------------------------------- */

/* Get the value at a simple ".a.b.c" path (borrowed), or NULL. */
static json_t *path_get(json_t *obj, const char *path)
{
	char *buf = strdup(path ? path : ""), *save, *p;
	json_t *cur = obj;

	for (p = strtok_r(buf, ".", &save); p && cur;
	     p = strtok_r(NULL, ".", &save))
		cur = json_object_get(cur, p);
	free(buf);
	return cur;
}

static void path_set(json_t *obj, const char *path, json_t *v)
{
	char *buf = strdup(path ? path : ""), *save, *p, *nx;
	json_t *cur = obj;

	p = strtok_r(buf, ".", &save);
	while (p) {
		nx = strtok_r(NULL, ".", &save);
		if (!nx) {
			json_object_set(cur, p, v);
			break;
		}
		if (!json_is_object(json_object_get(cur, p)))
			json_object_set_new(cur, p, json_object());
		cur = json_object_get(cur, p);
		p = nx;
	}
	free(buf);
}

static json_t *scale_of(api_req *r, cache_obj *cur)
{
	json_t *obj = cache_obj_parse(cur), *s;
	json_t *spec = path_get(obj, r->ver->scale_spec_path);
	json_t *st = path_get(obj, r->ver->scale_status_path);
	json_t *lsel = r->ver->scale_selector_path
			   ? path_get(obj, r->ver->scale_selector_path)
			   : NULL;
	char rv[24];

	snprintf(rv, sizeof rv, "%lld", (long long)cur->rev);
	s = json_pack("{s:s, s:s, s:{s:s, s:s?, s:s, s:s?}, s:{s:I}, s:{s:I}}",
		      "kind", "Scale", "apiVersion", "autoscaling/v1",
		      "metadata", "name", cur->name, "namespace", cur->ns,
		      "resourceVersion", rv, "uid", md_str(obj, "uid"), "spec",
		      "replicas", (json_int_t)json_integer_value(spec),
		      "status", "replicas", (json_int_t)json_integer_value(st));
	if (json_is_string(lsel))
		json_object_set(json_object_get(s, "status"), "selector", lsel);
	json_decref(obj);
	return s;
}

static void do_scale(api_req *r)
{
	cache_obj *cur = current(r);
	json_t *in, *obj, *p = NULL;
	json_error_t e;

	if (!cur)
		return;
	if (r->verb == VERB_GET) {
		api_reply_json(r, 200, scale_of(r, cur));
		return;
	}
	if (r->verb == VERB_PATCH) {
		json_t *base = scale_of(r, cur);

		p = json_loadb(r->body ? r->body : "", r->body_len, 0, &e);
		if (ct_is(r, "application/json-patch+json")) {
			char err[256];

			if (!p || patch_json(base, p, &in, err, sizeof err))
				in = NULL;
		} else
			in = p ? patch_merge(base, p) : NULL;
		json_decref(base);
		json_decref(p);
	} else
		in = json_loadb(r->body ? r->body : "", r->body_len, 0, &e);
	if (!json_is_integer(path_get(in, ".spec.replicas"))) {
		json_decref(in);
		api_fail(r, 400, "BadRequest", NULL,
			 "a Scale object with an integer spec.replicas is "
			 "required");
		return;
	}
	obj = cache_obj_parse(cur);
	path_set(obj, r->ver->scale_spec_path, path_get(in, ".spec.replicas"));
	json_decref(in);
	free(r->sub);
	r->sub = NULL; /* write the main resource, answer with a Scale */
	r->reply_scale = true;
	update_with(r, cur, obj, false, 0);
}

/* ---- routing
 * ----------------------------------------------------------------------- */

static void dispatch(api_req *r)
{
	switch (r->verb) {
	case VERB_GET:
		do_get(r);
		break;
	case VERB_LIST:
		do_list(r);
		break;
	case VERB_WATCH:
		api_watch(r);
		break;
	case VERB_CREATE:
		do_create(r);
		break;
	case VERB_UPDATE:
		do_update(r);
		break;
	case VERB_PATCH:
		do_patch(r);
		break;
	case VERB_DELETE:
		do_delete(r);
		break;
	case VERB_DELETECOLLECTION:
		do_deletecollection(r);
		break;
	default:
		api_fail(r, 405, "MethodNotAllowed", NULL,
			 "the server does not allow this method on the "
			 "requested resource");
	}
}

void api_set_verb(api_req *r)
{
	bool named = r->name != NULL;

	switch (evhttp_request_get_command(r->ev)) {
	case EVHTTP_REQ_GET:
	case EVHTTP_REQ_HEAD:
		r->verb = named			       ? VERB_GET
			  : api_query_bool(r, "watch") ? VERB_WATCH
						       : VERB_LIST;
		break;
	case EVHTTP_REQ_POST:
		r->verb = named ? VERB_NONE : VERB_CREATE;
		break;
	case EVHTTP_REQ_PUT:
		r->verb = named ? VERB_UPDATE : VERB_NONE;
		break;
	case EVHTTP_REQ_PATCH:
		r->verb = named ? VERB_PATCH : VERB_NONE;
		break;
	case EVHTTP_REQ_DELETE:
		r->verb = named ? VERB_DELETE : VERB_DELETECOLLECTION;
		break;
	default:
		r->verb = VERB_NONE;
	}
}

bool api_classify(api_req *r)
{
	bool named = r->name != NULL;

	r->type =
	    reg_find(r->srv->reg, r->group, r->version, r->plural, &r->ver);
	if (!r->type ||
	    (r->sub && strcmp(r->sub, "status") && strcmp(r->sub, "scale") &&
	     !(!strcmp(r->sub, "networkmap") &&
	       !strcmp(r->type->group, "mesh.signalbox.dev") &&
	       !strcmp(r->type->plural, "peers"))) ||
	    (r->sub && !strcmp(r->sub, "status") && !r->ver->status) ||
	    (r->sub && !strcmp(r->sub, "scale") && !r->ver->scale_spec_path) ||
	    (named && r->type->namespaced && !r->ns) ||
	    (r->verb == VERB_CREATE && r->type->namespaced && !r->ns &&
	     !r->type->create_only)) {
		r->type = NULL;
		api_fail(r, 404, "NotFound", NULL,
			 "the server could not find the requested resource");
		return false;
	}
	return true;
}

void api_objects(api_req *r)
{
	if ((r->verb == VERB_GET || r->verb == VERB_LIST) && !api_read_ready(r))
		return;
	if (r->type->create_only) {
		if (!strcmp(r->type->plural, "enrollments"))
			api_mesh_enroll(r);
		else
			api_review(r);
		return;
	}
	if (r->sub && !strcmp(r->sub, "networkmap")) {
		api_mesh_networkmap(r);
		return;
	}
	if (r->sub && !strcmp(r->sub, "scale") &&
	    (r->verb == VERB_GET || r->verb == VERB_UPDATE ||
	     r->verb == VERB_PATCH)) {
		do_scale(r);
		return;
	}
	r->retries = 0;
	dispatch(r);
}
