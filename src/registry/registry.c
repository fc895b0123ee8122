/*
 * registry.c -- see registry.h. Types are kept in an array: built-ins
 * first, then custom types sorted by CRD name. There are tens of types, not
 * thousands, so lookups scan.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "registry/registry.h"

struct registry {
	reg_type **types;
	size_t n, cap;
	uint64_t generation;
};

/* builtin.c */
extern const char *const reg_builtin_crds[];

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* ---- checking a CRD ---------------------------------------------------- */

static void cause(json_t *causes, const char *reason, const char *field,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void cause(json_t *causes, const char *reason, const char *field,
		  const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_array_append_new(causes,
			      json_pack("{s:s, s:s, s:s}", "reason", reason,
					"message", msg, "field", field));
}

/* RFC 1123 DNS label (lower-case alphanumerics and '-', <= 63). */
static bool dns_label(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]) ||
	    !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) ||
		      isdigit((unsigned char)s[i]) || s[i] == '-'))
			return false;
	return true;
}

/* RFC 1123 DNS subdomain: dot-separated labels, <= 253. */
static bool dns_subdomain(const char *s)
{
	char buf[256], *save, *part;

	if (strlen(s) == 0 || strlen(s) > 253)
		return false;
	snprintf(buf, sizeof buf, "%s", s);
	if (buf[0] == '.' || buf[strlen(buf) - 1] == '.' || strstr(buf, ".."))
		return false;
	for (part = strtok_r(buf, ".", &save); part;
	     part = strtok_r(NULL, ".", &save))
		if (!dns_label(part))
			return false;
	return true;
}

static void check_names(const json_t *spec, bool builtin, json_t *causes)
{
	const json_t *names = json_object_get(spec, "names");
	const char *plural = jstr(names, "plural");
	const char *kind = jstr(names, "kind");
	const char *singular = jstr(names, "singular");

	if (!plural || !*plural)
		cause(causes, "FieldValueRequired", "spec.names.plural",
		      "Required value");
	else if (!dns_label(plural))
		cause(causes, "FieldValueInvalid", "spec.names.plural",
		      "Invalid value: \"%s\": a lowercase RFC 1123 label must "
		      "consist of lower case alphanumeric characters or '-'",
		      plural);
	if (singular && *singular && !dns_label(singular))
		cause(causes, "FieldValueInvalid", "spec.names.singular",
		      "Invalid value: \"%s\": a lowercase RFC 1123 label must "
		      "consist of lower case alphanumeric characters or '-'",
		      singular);
	if (!kind || !*kind)
		cause(causes, "FieldValueRequired", "spec.names.kind",
		      "Required value");
	else if (!builtin && !isupper((unsigned char)kind[0]) &&
		 !islower((unsigned char)kind[0]))
		cause(causes, "FieldValueInvalid", "spec.names.kind",
		      "Invalid value: \"%s\": must start with a letter", kind);
}

static void check_versions(const json_t *spec, bool builtin, json_t *causes)
{
	const json_t *versions = json_object_get(spec, "versions");
	size_t i, storage = 0;
	json_t *v;
	char field[128], err[512];

	if (!json_is_array(versions) || json_array_size(versions) == 0) {
		cause(causes, "FieldValueRequired", "spec.versions",
		      "Required value: must have exactly one version marked "
		      "as storage version");
		return;
	}
	json_array_foreach(versions, i, v)
	{
		const char *name = jstr(v, "name");
		const json_t *sch = json_object_get(
		    json_object_get(v, "schema"), "openAPIV3Schema");

		if (!name || !dns_label(name)) {
			snprintf(field, sizeof field, "spec.versions[%zu].name",
				 i);
			cause(causes, "FieldValueInvalid", field,
			      "Invalid value: \"%s\": a DNS-1035 label must "
			      "consist of lower case alphanumeric characters "
			      "or '-'",
			      name ? name : "");
		}
		for (size_t j = 0; name && j < i; j++)
			if (!strcmp(name ? name : "",
				    jstr(json_array_get(versions, j), "name")
					?: "")) {
				snprintf(field, sizeof field,
					 "spec.versions[%zu].name", i);
				cause(causes, "FieldValueDuplicate", field,
				      "Duplicate value: \"%s\"", name);
			}
		if (json_is_true(json_object_get(v, "storage")))
			storage++;
		snprintf(field, sizeof field,
			 "spec.versions[%zu].schema.openAPIV3Schema", i);
		if (!sch && !builtin) {
			cause(causes, "FieldValueRequired", field,
			      "Required value: schemas are required");
			continue;
		}
		if (sch && !schema_is_structural(sch, err, sizeof err))
			cause(causes, "FieldValueInvalid", field, "%s", err);
	}
	if (storage != 1)
		cause(causes, "FieldValueInvalid", "spec.versions",
		      "Invalid value: %zu: must have exactly one version "
		      "marked as storage version",
		      storage);
}

size_t reg_check_crd(const json_t *crd, json_t *causes)
{
	size_t before = json_array_size(causes);
	const json_t *spec = json_object_get(crd, "spec");
	const char *group = jstr(spec, "group");
	const char *scope = jstr(spec, "scope");
	const char *name = jstr(json_object_get(crd, "metadata"), "name");
	const char *plural = jstr(json_object_get(spec, "names"), "plural");
	char want[512];

	if (!json_is_object(spec)) {
		cause(causes, "FieldValueRequired", "spec", "Required value");
		return json_array_size(causes) - before;
	}
	if (!group || !*group)
		cause(causes, "FieldValueRequired", "spec.group",
		      "Required value");
	else if (!dns_subdomain(group) || !strchr(group, '.'))
		cause(causes, "FieldValueInvalid", "spec.group",
		      "Invalid value: \"%s\": should be a domain with at least "
		      "one dot",
		      group);
	if (!scope || (strcmp(scope, "Namespaced") && strcmp(scope, "Cluster")))
		cause(causes, "FieldValueNotSupported", "spec.scope",
		      "Unsupported value: \"%s\": supported values: "
		      "\"Cluster\", \"Namespaced\"",
		      scope ? scope : "");
	check_names(spec, false, causes);
	snprintf(want, sizeof want, "%s.%s", plural ? plural : "",
		 group ? group : "");
	if (name && plural && group && strcmp(name, want))
		cause(causes, "FieldValueInvalid", "metadata.name",
		      "Invalid value: \"%s\": must be spec.names.plural+\".\"+"
		      "spec.group",
		      name);
	check_versions(spec, false, causes);
	return json_array_size(causes) - before;
}

/* ---- building a type ---------------------------------------------------- */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void version_free(reg_version *v)
{
	free(v->name);
	json_decref(v->openapi);
	schema_free(v->schema);
	free(v->scale_spec_path);
	free(v->scale_status_path);
	free(v->scale_selector_path);
	for (size_t i = 0; i < v->ncols; i++) {
		free(v->cols[i].name);
		free(v->cols[i].type);
		free(v->cols[i].format);
		free(v->cols[i].description);
		free(v->cols[i].json_path);
		jp_free(v->cols[i].path);
	}
	free(v->cols);
}

static void type_free(reg_type *t)
{
	if (!t)
		return;
	free(t->group);
	free(t->plural);
	free(t->singular);
	free(t->kind);
	free(t->list_kind);
	for (size_t i = 0; i < t->nshort; i++)
		free(t->short_names[i]);
	free(t->short_names);
	for (size_t i = 0; i < t->ncategories; i++)
		free(t->categories[i]);
	free(t->categories);
	for (size_t i = 0; i < t->nversions; i++)
		version_free(&t->versions[i]);
	free(t->versions);
	free(t->crd_name);
	free(t->key_prefix);
	json_decref(t->crd);
	free(t);
}

static char **str_array(const json_t *a, size_t *n)
{
	size_t i;
	json_t *v;
	char **out;

	*n = 0;
	if (!json_is_array(a) || json_array_size(a) == 0)
		return NULL;
	out = calloc(json_array_size(a), sizeof(*out));
	if (!out)
		return NULL;
	json_array_foreach(a, i, v)
	{
		if (json_is_string(v))
			out[(*n)++] = strdup(json_string_value(v));
	}
	return out;
}

static int load_columns(reg_version *rv, const json_t *cols, char *err,
			size_t errlen)
{
	size_t i;
	json_t *c;

	if (!json_is_array(cols) || json_array_size(cols) == 0) {
		/* kube-apiserver's default: Age. */
		cols = json_pack("[{s:s, s:s, s:s}]", "name", "Age", "type",
				 "date", "jsonPath",
				 ".metadata.creationTimestamp");
	} else {
		json_incref((json_t *)cols);
	}
	rv->cols = calloc(json_array_size(cols), sizeof(*rv->cols));
	if (!rv->cols) {
		json_decref((json_t *)cols);
		return -1;
	}
	json_array_foreach(cols, i, c)
	{
		reg_column *col = &rv->cols[rv->ncols++];
		char perr[256];

		col->name = dup_or_null(jstr(c, "name"));
		col->type = dup_or_null(jstr(c, "type"));
		col->format = dup_or_null(jstr(c, "format"));
		col->description = dup_or_null(jstr(c, "description"));
		col->priority =
		    (int)json_integer_value(json_object_get(c, "priority"));
		col->json_path = dup_or_null(jstr(c, "jsonPath"));
		if (col->json_path &&
		    jp_parse(col->json_path, &col->path, perr, sizeof perr)) {
			snprintf(err, errlen,
				 "additionalPrinterColumns[%zu].jsonPath: %s",
				 i, perr);
			json_decref((json_t *)cols);
			return -1;
		}
	}
	json_decref((json_t *)cols);
	return 0;
}

static int load_version(reg_version *rv, const json_t *v, char *err,
			size_t errlen)
{
	const json_t *sub = json_object_get(v, "subresources");
	const json_t *scale = json_object_get(sub, "scale");
	json_t *sch =
	    json_object_get(json_object_get(v, "schema"), "openAPIV3Schema");
	char serr[512];

	rv->name = strdup(jstr(v, "name"));
	rv->served = json_is_true(json_object_get(v, "served"));
	rv->storage = json_is_true(json_object_get(v, "storage"));
	rv->status = json_object_get(sub, "status") != NULL;
	if (scale) {
		rv->scale_spec_path =
		    dup_or_null(jstr(scale, "specReplicasPath"));
		rv->scale_status_path =
		    dup_or_null(jstr(scale, "statusReplicasPath"));
		rv->scale_selector_path =
		    dup_or_null(jstr(scale, "labelSelectorPath"));
	}
	if (sch) {
		rv->openapi = json_deep_copy(sch);
		if (schema_compile(sch, &rv->schema, serr, sizeof serr)) {
			snprintf(err, errlen, "version %s: openAPIV3Schema: %s",
				 rv->name, serr);
			return -1;
		}
	}
	return load_columns(rv, json_object_get(v, "additionalPrinterColumns"),
			    err, errlen);
}

static reg_type *type_from_crd(const json_t *crd, bool builtin, char *err,
			       size_t errlen)
{
	const json_t *spec = json_object_get(crd, "spec");
	const json_t *names = json_object_get(spec, "names");
	const json_t *versions = json_object_get(spec, "versions");
	reg_type *t = calloc(1, sizeof(*t));
	size_t i;
	json_t *v;

	if (!t)
		return NULL;
	t->builtin = builtin;
	t->crd = json_deep_copy(crd);
	t->group = strdup(jstr(spec, "group") ?: "");
	t->plural = strdup(jstr(names, "plural") ?: "");
	t->kind = strdup(jstr(names, "kind") ?: "");
	if (jstr(names, "singular") && *jstr(names, "singular"))
		t->singular = strdup(jstr(names, "singular"));
	else {
		t->singular = strdup(t->kind);
		for (char *p = t->singular; p && *p; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	if (jstr(names, "listKind"))
		t->list_kind = strdup(jstr(names, "listKind"));
	else if (asprintf(&t->list_kind, "%sList", t->kind) < 0)
		t->list_kind = NULL;
	t->short_names =
	    str_array(json_object_get(names, "shortNames"), &t->nshort);
	t->categories =
	    str_array(json_object_get(names, "categories"), &t->ncategories);
	t->namespaced = !strcmp(jstr(spec, "scope") ?: "", "Namespaced");
	t->create_only = builtin &&
			 !strcmp(jstr(json_object_get(json_object_get(crd, "metadata"),
						      "annotations"),
				      "signalbox.dev/verbs")
					 ?: "",
				 "create");
	if (asprintf(&t->crd_name, "%s%s%s", t->plural, *t->group ? "." : "",
		     t->group) < 0)
		t->crd_name = NULL;
	if (asprintf(&t->key_prefix, "/registry/%s/%s/",
		     *t->group ? t->group : "core", t->plural) < 0)
		t->key_prefix = NULL;
	t->versions =
	    calloc(json_array_size(versions) + 1, sizeof(*t->versions));
	if (!t->crd || !t->group || !t->plural || !t->kind || !t->singular ||
	    !t->list_kind || !t->crd_name || !t->key_prefix || !t->versions) {
		snprintf(err, errlen, "out of memory");
		type_free(t);
		return NULL;
	}
	json_array_foreach(versions, i, v)
	{
		t->nversions++;
		if (load_version(&t->versions[i], v, err, errlen)) {
			type_free(t);
			return NULL;
		}
	}
	return t;
}

/* ---- the registry ------------------------------------------------------- */

registry *reg_new(char *err, size_t errlen)
{
	registry *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	for (size_t i = 0; reg_builtin_crds[i]; i++) {
		char *text = strdup(reg_builtin_crds[i]), e[512];
		json_error_t jerr;
		json_t *crd;
		int rc;

		for (char *p = text; p && *p; p++)
			if (*p == '\'')
				*p = '"';
		crd = text ? json_loads(text, 0, &jerr) : NULL;
		free(text);
		if (!crd) {
			snprintf(err, errlen, "built-in type %zu: line %d: %s",
				 i, jerr.line, jerr.text);
			reg_free(r);
			return NULL;
		}
		rc = reg_add_crd(r, crd, true, e, sizeof e);
		json_decref(crd);
		if (rc) {
			snprintf(err, errlen, "built-in type %zu: %s", i, e);
			reg_free(r);
			return NULL;
		}
	}
	return r;
}

void reg_free(registry *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		type_free(r->types[i]);
	free(r->types);
	free(r);
}

static ssize_t find_index(const registry *r, const char *crd_name)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->types[i]->crd_name, crd_name))
			return (ssize_t)i;
	return -1;
}

int reg_add_crd(registry *r, const json_t *crd, bool builtin, char *err,
		size_t errlen)
{
	reg_type *t = type_from_crd(crd, builtin, err, errlen);
	ssize_t at;
	size_t pos;

	if (!t)
		return -1;
	at = find_index(r, t->crd_name);
	if (at >= 0) {
		if (r->types[at]->builtin && !builtin) {
			snprintf(err, errlen, "%s is a built-in type",
				 t->crd_name);
			type_free(t);
			return -1;
		}
		type_free(r->types[at]);
		r->types[at] = t;
		r->generation++;
		return 0;
	}
	if (r->n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 16;
		reg_type **p = realloc(r->types, nc * sizeof(*p));

		if (!p) {
			type_free(t);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		r->types = p;
		r->cap = nc;
	}
	/* Built-ins first in definition order, then customs by name. */
	for (pos = 0; pos < r->n; pos++) {
		if (builtin) {
			if (!r->types[pos]->builtin)
				break;
		} else if (!r->types[pos]->builtin &&
			   strcmp(r->types[pos]->crd_name, t->crd_name) > 0)
			break;
	}
	memmove(&r->types[pos + 1], &r->types[pos],
		(r->n - pos) * sizeof(*r->types));
	r->types[pos] = t;
	r->n++;
	r->generation++;
	return 0;
}

void reg_remove_crd(registry *r, const char *crd_name)
{
	ssize_t at = find_index(r, crd_name);

	if (at < 0 || r->types[at]->builtin)
		return;
	type_free(r->types[at]);
	memmove(&r->types[at], &r->types[at + 1],
		(r->n - (size_t)at - 1) * sizeof(*r->types));
	r->n--;
	r->generation++;
}

const reg_type *reg_find(const registry *r, const char *group,
			 const char *version, const char *plural,
			 const reg_version **v)
{
	for (size_t i = 0; i < r->n; i++) {
		reg_type *t = r->types[i];

		if (strcmp(t->group, group) || strcmp(t->plural, plural))
			continue;
		for (size_t j = 0; j < t->nversions; j++) {
			if (!t->versions[j].served)
				continue;
			if (version && strcmp(t->versions[j].name, version))
				continue;
			if (v)
				*v = &t->versions[j];
			return t;
		}
	}
	return NULL;
}

const reg_type *reg_find_crd(const registry *r, const char *crd_name)
{
	ssize_t at = find_index(r, crd_name);

	return at < 0 ? NULL : r->types[at];
}

const reg_type *reg_find_key(const registry *r, const char *key)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strncmp(key, r->types[i]->key_prefix,
			     strlen(r->types[i]->key_prefix)))
			return r->types[i];
	return NULL;
}

size_t reg_count(const registry *r)
{
	return r->n;
}

const reg_type *reg_at(const registry *r, size_t i)
{
	return i < r->n ? r->types[i] : NULL;
}

const reg_version *reg_storage_version(const reg_type *t)
{
	for (size_t i = 0; i < t->nversions; i++)
		if (t->versions[i].storage)
			return &t->versions[i];
	return t->nversions ? &t->versions[0] : NULL;
}

uint64_t reg_generation(const registry *r)
{
	return r->generation;
}
