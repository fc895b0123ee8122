/*
 * schema.c -- openAPIV3Schema enforcement for custom resources: compile,
 * then prune, default and validate, as kube-apiserver does.
 *
 * The compiled form is a tree of struct node, one per schema object, with
 * every keyword decoded and every pattern compiled. Processing walks the
 * object and the tree together, three times (prune, default, validate),
 * keeping the field path of the current value in a string builder; a
 * fourth walk checks x-kubernetes-list-type and embedded resources, as
 * kube-apiserver does after the OpenAPI validation.
 *
 * The messages are kube-openapi's ("spec.x in body should match '^a$'")
 * wrapped the way apimachinery's field.Error.ErrorBody() prints them
 * ("Invalid value: \"b\": spec.x in body should match '^a$'"), values
 * printed as Go's %q and %v would.
 */
#include "registry/schema.h"
#include "util/strbuf.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	TY_OBJECT = 1 << 0,
	TY_ARRAY = 1 << 1,
	TY_STRING = 1 << 2,
	TY_INTEGER = 1 << 3,
	TY_NUMBER = 1 << 4,
	TY_BOOLEAN = 1 << 5,
};

/* Formats kube-apiserver keeps (the rest are stripped before validation):
 * FMT_NONE is "no format", FMT_UNCHECKED a supported format we do not
 * check; the others are checked on strings. */
enum fmt {
	FMT_NONE,
	FMT_UNCHECKED,
	FMT_BYTE,
	FMT_DATE,
	FMT_DATETIME,
	FMT_IPV4,
	FMT_IPV6,
	FMT_CIDR,
	/* checked by a regular expression, in fmt_patterns order */
	FMT_UUID,
	FMT_UUID3,
	FMT_UUID4,
	FMT_UUID5,
	FMT_HEXCOLOR,
	FMT_BSONOBJECTID,
	FMT_MAC,
	FMT_HOSTNAME,
	FMT_COUNT
};
#define FMT_FIRST_RE FMT_UUID

static const char *const fmt_patterns[FMT_COUNT - FMT_FIRST_RE] = {
    "(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
    "(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
    "(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?"
    "[0-9a-f]{12}$",
    "(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?"
    "[0-9a-f]{12}$",
    "^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$",
    "^[0-9a-fA-F]{24}$",
    "^(?:[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}|"
    "[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){7}|"
    "[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){19}|"
    "[0-9A-Fa-f]{4}(?:\\.[0-9A-Fa-f]{4}){2}|"
    "[0-9A-Fa-f]{4}(?:\\.[0-9A-Fa-f]{4}){3}|"
    "[0-9A-Fa-f]{4}(?:\\.[0-9A-Fa-f]{4}){9})$",
    "^([a-zA-Z0-9\\p{S}\\p{L}]((-?[a-zA-Z0-9\\p{S}\\p{L}]{0,62})?)|"
    "([a-zA-Z0-9\\p{S}\\p{L}](([a-zA-Z0-9-\\p{S}\\p{L}]{0,61}"
    "[a-zA-Z0-9\\p{S}\\p{L}])?)(\\.)){1,}([a-zA-Z0-9-\\p{L}]){2,63})$",
};

static const struct {
	const char *name; /* normalized: without '-' */
	enum fmt fmt;
} fmt_names[] = {
    {"byte", FMT_BYTE},
    {"date", FMT_DATE},
    {"datetime", FMT_DATETIME},
    {"ipv4", FMT_IPV4},
    {"ipv6", FMT_IPV6},
    {"cidr", FMT_CIDR},
    {"uuid", FMT_UUID},
    {"uuid3", FMT_UUID3},
    {"uuid4", FMT_UUID4},
    {"uuid5", FMT_UUID5},
    {"hexcolor", FMT_HEXCOLOR},
    {"bsonobjectid", FMT_BSONOBJECTID},
    {"mac", FMT_MAC},
    {"hostname", FMT_HOSTNAME},
    {"uri", FMT_UNCHECKED},
    {"email", FMT_UNCHECKED},
    {"isbn", FMT_UNCHECKED},
    {"isbn10", FMT_UNCHECKED},
    {"isbn13", FMT_UNCHECKED},
    {"creditcard", FMT_UNCHECKED},
    {"ssn", FMT_UNCHECKED},
    {"rgbcolor", FMT_UNCHECKED},
    {"password", FMT_UNCHECKED},
    {"duration", FMT_UNCHECKED},
};

enum addl { ADDL_NONE, ADDL_FALSE, ADDL_TRUE, ADDL_SCHEMA };
enum list_type { LIST_ATOMIC, LIST_SET, LIST_MAP };

struct node;

struct prop {
	char *name;
	struct node *s;
};

struct nodes {
	struct node **v;
	size_t n;
};

struct node {
	unsigned types;	       /* TY_* bits; 0: any */
	const char *type_name; /* as kube-openapi prints it, or NULL */
	char *format;	       /* as written; NULL if stripped */
	enum fmt fmt;
	bool nullable, preserve, embedded, unique;
	bool has_min, has_max, has_mult, excl_min, excl_max;
	double minimum, maximum, multiple_of;
	int64_t min_len, max_len, min_items, max_items, min_props, max_props;
	json_t *def;   /* own deep copy, pruned; or NULL */
	json_t *enumv; /* own deep copy (array); or NULL */
	char *pattern;
	pcre2_code *re;
	struct prop *props; /* sorted by name */
	size_t nprops;
	char **required;
	size_t nrequired;
	enum addl addl;
	struct node *addl_s;
	struct node *items;
	struct nodes all_of, any_of, one_of;
	struct node *not_s;
	enum list_type list_type;
	char **map_keys;
	size_t nmap_keys;
};

struct schema {
	struct node *root;
	pcre2_match_context *mctx;
	pcre2_code *fmt_re[FMT_COUNT - FMT_FIRST_RE];
};

/* ---- string builder ----------------------------------------------------- */

/* ---- Go-style value printing -------------------------------------------- */

/* Go's strconv.Quote for valid UTF-8 (what jansson holds). */
static void go_quote(strbuf *b, const char *s, size_t n)
{
	strbuf_putn(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		switch (ch) {
		case '"':
			strbuf_puts(b, "\\\"");
			break;
		case '\\':
			strbuf_puts(b, "\\\\");
			break;
		case '\a':
			strbuf_puts(b, "\\a");
			break;
		case '\b':
			strbuf_puts(b, "\\b");
			break;
		case '\f':
			strbuf_puts(b, "\\f");
			break;
		case '\n':
			strbuf_puts(b, "\\n");
			break;
		case '\r':
			strbuf_puts(b, "\\r");
			break;
		case '\t':
			strbuf_puts(b, "\\t");
			break;
		case '\v':
			strbuf_puts(b, "\\v");
			break;
		default:
			if (ch < 0x20 || ch == 0x7f)
				strbuf_printf(b, "\\x%02x", ch);
			else
				strbuf_putn(b, (const char *)&ch, 1);
		}
	}
	strbuf_putn(b, "\"", 1);
}

/* Go's %v of a float64: the shortest digits that round-trip, in %e form
 * when the exponent is < -4 or >= 6 (fmt %v: strconv's shortest %g). */
static void go_float(strbuf *b, double d)
{
	char tmp[64], digits[32];
	int prec, exp, nd = 0;
	const char *p;
	bool neg;

	if (isnan(d)) {
		strbuf_puts(b, "NaN");
		return;
	}
	if (isinf(d)) {
		strbuf_puts(b, d > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (d == 0) {
		strbuf_puts(b, signbit(d) ? "-0" : "0");
		return;
	}
	for (prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	p = tmp;
	neg = *p == '-';
	if (neg)
		p++;
	for (; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	exp = *p == 'e' ? atoi(p + 1) : 0;
	if (neg)
		strbuf_putn(b, "-", 1);
	if (exp < -4 || exp >= 6) {
		strbuf_putn(b, digits, 1);
		if (nd > 1) {
			strbuf_putn(b, ".", 1);
			strbuf_putn(b, digits + 1, (size_t)nd - 1);
		}
		strbuf_printf(b, "e%c%02d", exp < 0 ? '-' : '+', abs(exp));
	} else if (exp < 0) {
		strbuf_puts(b, "0.");
		for (int i = -1; i > exp; i--)
			strbuf_putn(b, "0", 1);
		strbuf_putn(b, digits, (size_t)nd);
	} else {
		for (int i = 0; i <= exp || i < nd; i++) {
			if (i == exp + 1)
				strbuf_putn(b, ".", 1);
			strbuf_putn(b, i < nd ? &digits[i] : "0", 1);
		}
	}
}

/* trunc(3) without libm: values this large are integral already. */
static double trunc_d(double d)
{
	if (!isfinite(d) || fabs(d) >= 4503599627370496.0)
		return d;
	return (double)(long long)d;
}

/* A bound as kube-openapi prints it: for an integer value it checks (and
 * prints) the bound converted to int64, otherwise the float64. */
static bool int_bound(const json_t *x, double bound)
{
	return json_is_integer(x) && fabs(bound) < 9.2e18;
}

static void go_bound(strbuf *b, double bound, const json_t *x)
{
	if (int_bound(x, bound))
		strbuf_printf(b, "%lld", (long long)bound);
	else
		go_float(b, bound);
}

/* A value as field.Error.ErrorBody() prints it (NULL: the empty string). */
static void go_value(strbuf *b, const json_t *v)
{
	char *s;

	if (!v) {
		strbuf_puts(b, "\"\"");
		return;
	}
	switch (json_typeof(v)) {
	case JSON_STRING:
		go_quote(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		strbuf_printf(b, "%lld", (long long)json_integer_value(v));
		break;
	case JSON_REAL:
		go_float(b, json_real_value(v));
		break;
	case JSON_TRUE:
		strbuf_puts(b, "true");
		break;
	case JSON_FALSE:
		strbuf_puts(b, "false");
		break;
	case JSON_NULL:
		strbuf_puts(b, "\"null\"");
		break;
	default:
		s = json_dumps(v,
			       JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		if (!s) {
			b->oom = true;
			return;
		}
		strbuf_puts(b, s);
		free(s);
	}
}

/* ---- compiling ----------------------------------------------------------- */

struct cc {
	struct schema *s;
	strbuf path; /* schema path, for errors */
	char *err;
	size_t errlen;
	int rc;
};

__attribute__((format(printf, 3, 4))) static int
cc_fail(struct cc *c, const char *key, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->err && c->errlen) {
		const char *p = strbuf_str(&c->path);
		size_t n = c->path.len;

		/* keep the message readable for very deep paths */
		if (n > 160)
			snprintf(c->err, c->errlen, "%.60s...%s%s%s: %s", p,
				 p + n - 60, key ? "." : "", key ? key : "",
				 msg);
		else
			snprintf(c->err, c->errlen, "%s%s%s: %s", p,
				 key ? "." : "", key ? key : "", msg);
	}
	c->rc = -EINVAL;
	return -EINVAL;
}

static int cc_oom(struct cc *c)
{
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "out of memory");
	c->rc = -ENOMEM;
	return -ENOMEM;
}

static void node_free(struct node *n);

static void nodes_free(struct nodes *l)
{
	for (size_t i = 0; i < l->n; i++)
		node_free(l->v[i]);
	free(l->v);
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void node_free(struct node *n)
{
	if (!n)
		return;
	free(n->format);
	json_decref(n->def);
	json_decref(n->enumv);
	free(n->pattern);
	pcre2_code_free(n->re);
	for (size_t i = 0; i < n->nprops; i++) {
		free(n->props[i].name);
		node_free(n->props[i].s);
	}
	free(n->props);
	strv_free(n->required, n->nrequired);
	node_free(n->addl_s);
	node_free(n->items);
	nodes_free(&n->all_of);
	nodes_free(&n->any_of);
	nodes_free(&n->one_of);
	node_free(n->not_s);
	strv_free(n->map_keys, n->nmap_keys);
	free(n);
}

static int kw_num(struct cc *c, const json_t *j, const char *k, bool *has,
		  double *v)
{
	json_t *x = json_object_get(j, k);

	*has = false;
	if (!x || json_is_null(x))
		return 0;
	if (!json_is_number(x))
		return cc_fail(c, k, "must be a number");
	*has = true;
	*v = json_number_value(x);
	return 0;
}

static int kw_int(struct cc *c, const json_t *j, const char *k, int64_t *v)
{
	json_t *x = json_object_get(j, k);

	*v = -1;
	if (!x || json_is_null(x))
		return 0;
	if (!json_is_integer(x) || json_integer_value(x) < 0)
		return cc_fail(c, k, "must be a non-negative integer");
	*v = json_integer_value(x);
	return 0;
}

static int kw_bool(struct cc *c, const json_t *j, const char *k, bool *v)
{
	json_t *x = json_object_get(j, k);

	*v = false;
	if (!x || json_is_null(x))
		return 0;
	if (!json_is_boolean(x))
		return cc_fail(c, k, "must be a boolean");
	*v = json_is_true(x);
	return 0;
}

static int kw_str(struct cc *c, const json_t *j, const char *k, const char **v)
{
	json_t *x = json_object_get(j, k);

	*v = NULL;
	if (!x || json_is_null(x))
		return 0;
	if (!json_is_string(x))
		return cc_fail(c, k, "must be a string");
	*v = json_string_value(x);
	return 0;
}

static int kw_strv(struct cc *c, const json_t *j, const char *k, char ***v,
		   size_t *n)
{
	json_t *x = json_object_get(j, k), *e;
	size_t i;

	*v = NULL;
	*n = 0;
	if (!x || json_is_null(x))
		return 0;
	if (!json_is_array(x))
		return cc_fail(c, k, "must be an array of strings");
	if (!json_array_size(x))
		return 0;
	*v = calloc(json_array_size(x), sizeof(**v));
	if (!*v)
		return cc_oom(c);
	json_array_foreach(x, i, e)
	{
		if (!json_is_string(e))
			return cc_fail(c, k, "must be an array of strings");
		(*v)[i] = strdup(json_string_value(e));
		if (!(*v)[i])
			return cc_oom(c);
		(*n)++;
	}
	return 0;
}

static const struct {
	const char *name;
	unsigned bit;
} type_names[] = {
    {"object", TY_OBJECT},   {"array", TY_ARRAY},   {"string", TY_STRING},
    {"integer", TY_INTEGER}, {"number", TY_NUMBER}, {"boolean", TY_BOOLEAN},
};

/* Go's regexp (RE2) has no lookaround and no backreferences; refuse them
 * as kube-apiserver would, rather than run them in PCRE2. */
static const char *re2_unsupported(const char *p)
{
	for (; *p; p++) {
		if (*p == '\\') {
			if (p[1] >= '1' && p[1] <= '9')
				return "backreferences are not supported";
			if (p[1])
				p++;
			continue;
		}
		if (!strncmp(p, "(?=", 3) || !strncmp(p, "(?!", 3) ||
		    !strncmp(p, "(?<=", 4) || !strncmp(p, "(?<!", 4) ||
		    !strncmp(p, "(?>", 3))
			return "lookaround is not supported";
	}
	return NULL;
}

static pcre2_code *re_compile(const char *pat, uint32_t extra, char *msg,
			      size_t msglen)
{
	PCRE2_SIZE off;
	int code;
	pcre2_code *re;

	re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
			   PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | extra, &code,
			   &off, NULL);
	if (!re && msg) {
		PCRE2_UCHAR buf[160];

		pcre2_get_error_message(code, buf, sizeof(buf));
		snprintf(msg, msglen, "%s at offset %zu", (char *)buf,
			 (size_t)off);
	}
	return re;
}

static int compile_node(struct cc *c, const json_t *j, int depth,
			struct node **out);

/* Compile j[key] (if present) as the subschema at path suffix sfx. */
static int compile_child(struct cc *c, const json_t *j, const char *sfx,
			 int depth, struct node **out)
{
	size_t old = c->path.len;
	int rc;

	strbuf_puts(&c->path, sfx);
	rc = compile_node(c, j, depth + 1, out);
	if (rc == 0)
		strbuf_truncate(&c->path, old);
	return rc;
}

static int compile_list(struct cc *c, const json_t *j, const char *k, int depth,
			struct nodes *l)
{
	json_t *x = json_object_get(j, k), *e;
	size_t i;
	char sfx[64];

	if (!x || json_is_null(x))
		return 0;
	if (!json_is_array(x))
		return cc_fail(c, k, "must be an array of schemas");
	l->v = calloc(json_array_size(x) + 1, sizeof(*l->v));
	if (!l->v)
		return cc_oom(c);
	json_array_foreach(x, i, e)
	{
		snprintf(sfx, sizeof(sfx), ".%s[%zu]", k, i);
		/* counted first: a half-built child is freed with the list */
		l->n++;
		if (compile_child(c, e, sfx, depth, &l->v[i]))
			return c->rc;
	}
	return 0;
}

static int prop_cmp(const void *a, const void *b)
{
	return strcmp(((const struct prop *)a)->name,
		      ((const struct prop *)b)->name);
}

static int compile_props(struct cc *c, const json_t *j, int depth,
			 struct node *n)
{
	json_t *x = json_object_get(j, "properties"), *v;
	const char *k;
	strbuf sfx = {0};

	if (!x || json_is_null(x))
		return 0;
	if (!json_is_object(x))
		return cc_fail(c, "properties", "must be an object");
	n->props = calloc(json_object_size(x) + 1, sizeof(*n->props));
	if (!n->props)
		return cc_oom(c);
	json_object_foreach((json_t *)x, k, v)
	{
		struct prop *p = &n->props[n->nprops];

		strbuf_truncate(&sfx, 0);
		strbuf_printf(&sfx, ".properties[%s]", k);
		p->name = strdup(k);
		if (!p->name || sfx.oom) {
			free(p->name);
			free(sfx.p);
			return cc_oom(c);
		}
		n->nprops++;
		if (compile_child(c, v, strbuf_str(&sfx), depth, &p->s)) {
			free(sfx.p);
			return c->rc;
		}
	}
	free(sfx.p);
	if (n->nprops > 1)
		qsort(n->props, n->nprops, sizeof(*n->props), prop_cmp);
	return 0;
}

static int compile_types(struct cc *c, const json_t *j, struct node *n)
{
	const char *t, *f;
	bool ios;

	if (kw_str(c, j, "type", &t) ||
	    kw_bool(c, j, "x-kubernetes-int-or-string", &ios) ||
	    kw_str(c, j, "format", &f))
		return c->rc;
	if (t && *t) {
		for (size_t i = 0; i < sizeof(type_names) / sizeof(*type_names);
		     i++)
			if (!strcmp(t, type_names[i].name)) {
				n->types = type_names[i].bit;
				n->type_name = type_names[i].name;
			}
		if (!n->types)
			return cc_fail(c, "type", "unsupported type \"%s\"", t);
	}
	if (ios) {
		n->types = TY_INTEGER | TY_STRING;
		n->type_name = "integer,string";
	}
	if (f && *f) {
		char norm[32];
		size_t k = 0;

		for (const char *p = f; *p && k < sizeof(norm) - 1; p++)
			if (*p != '-')
				norm[k++] = *p;
		norm[k] = '\0';
		for (size_t i = 0; i < sizeof(fmt_names) / sizeof(*fmt_names);
		     i++)
			if (!strcmp(norm, fmt_names[i].name))
				n->fmt = fmt_names[i].fmt;
		if (n->fmt != FMT_NONE && !(n->format = strdup(f)))
			return cc_oom(c);
	}
	return 0;
}

static int compile_scalars(struct cc *c, const json_t *j, struct node *n)
{
	const char *pat, *lt;
	json_t *x;

	if (kw_bool(c, j, "nullable", &n->nullable) ||
	    kw_bool(c, j, "x-kubernetes-preserve-unknown-fields",
		    &n->preserve) ||
	    kw_bool(c, j, "x-kubernetes-embedded-resource", &n->embedded) ||
	    kw_bool(c, j, "uniqueItems", &n->unique) ||
	    kw_num(c, j, "minimum", &n->has_min, &n->minimum) ||
	    kw_num(c, j, "maximum", &n->has_max, &n->maximum) ||
	    kw_num(c, j, "multipleOf", &n->has_mult, &n->multiple_of) ||
	    kw_bool(c, j, "exclusiveMinimum", &n->excl_min) ||
	    kw_bool(c, j, "exclusiveMaximum", &n->excl_max) ||
	    kw_int(c, j, "minLength", &n->min_len) ||
	    kw_int(c, j, "maxLength", &n->max_len) ||
	    kw_int(c, j, "minItems", &n->min_items) ||
	    kw_int(c, j, "maxItems", &n->max_items) ||
	    kw_int(c, j, "minProperties", &n->min_props) ||
	    kw_int(c, j, "maxProperties", &n->max_props) ||
	    kw_strv(c, j, "required", &n->required, &n->nrequired) ||
	    kw_strv(c, j, "x-kubernetes-list-map-keys", &n->map_keys,
		    &n->nmap_keys) ||
	    kw_str(c, j, "x-kubernetes-list-type", &lt) ||
	    kw_str(c, j, "pattern", &pat))
		return c->rc;
	if (n->has_mult && !(n->multiple_of > 0))
		return cc_fail(c, "multipleOf", "must be positive");
	if (lt && !strcmp(lt, "set"))
		n->list_type = LIST_SET;
	else if (lt && !strcmp(lt, "map"))
		n->list_type = LIST_MAP;
	else if (lt && strcmp(lt, "atomic"))
		return cc_fail(c, "x-kubernetes-list-type",
			       "must be atomic, set or map");
	if (n->list_type == LIST_MAP && !n->nmap_keys)
		return cc_fail(c, "x-kubernetes-list-map-keys",
			       "must not be empty if x-kubernetes-list-type "
			       "is map");
	if (pat) {
		char msg[200];
		const char *why = re2_unsupported(pat);

		if (why)
			return cc_fail(c, "pattern",
				       "invalid regular "
				       "expression \"%s\": %s",
				       pat, why);
		n->re = re_compile(pat, 0, msg, sizeof(msg));
		if (!n->re)
			return cc_fail(c, "pattern",
				       "invalid regular expression \"%s\": %s",
				       pat, msg);
		if (!(n->pattern = strdup(pat)))
			return cc_oom(c);
	}
	x = json_object_get(j, "enum");
	if (x && !json_is_null(x)) {
		if (!json_is_array(x))
			return cc_fail(c, "enum", "must be an array");
		if (json_array_size(x) && !(n->enumv = json_deep_copy(x)))
			return cc_oom(c);
	}
	x = json_object_get(j, "default");
	if (x && !(n->def = json_deep_copy(x)))
		return cc_oom(c);
	return 0;
}

static int compile_node(struct cc *c, const json_t *j, int depth,
			struct node **out)
{
	struct node *n;
	json_t *x;

	*out = NULL;
	if (c->path.oom)
		return cc_oom(c);
	if (!json_is_object(j))
		return cc_fail(c, NULL, "must be a schema object");
	if (depth > SCHEMA_MAX_DEPTH)
		return cc_fail(c, NULL, "nested more than %d levels deep",
			       SCHEMA_MAX_DEPTH);
	n = calloc(1, sizeof(*n));
	if (!n)
		return cc_oom(c);
	*out = n;
	if (json_object_get(j, "$ref"))
		return cc_fail(c, "$ref", "references are not supported");
	if (compile_types(c, j, n) || compile_scalars(c, j, n) ||
	    compile_props(c, j, depth, n) ||
	    compile_list(c, j, "allOf", depth, &n->all_of) ||
	    compile_list(c, j, "anyOf", depth, &n->any_of) ||
	    compile_list(c, j, "oneOf", depth, &n->one_of))
		return c->rc;
	x = json_object_get(j, "not");
	if (x && !json_is_null(x) &&
	    compile_child(c, x, ".not", depth, &n->not_s))
		return c->rc;
	x = json_object_get(j, "items");
	if (json_is_array(x))
		return cc_fail(c, "items", "must be a schema, not an array");
	if (x && !json_is_null(x) &&
	    compile_child(c, x, ".items", depth, &n->items))
		return c->rc;
	x = json_object_get(j, "additionalProperties");
	if (json_is_boolean(x)) {
		n->addl = json_is_true(x) ? ADDL_TRUE : ADDL_FALSE;
	} else if (x && !json_is_null(x)) {
		n->addl = ADDL_SCHEMA;
		if (compile_child(c, x, ".additionalProperties", depth,
				  &n->addl_s))
			return c->rc;
	}
	return 0;
}

/* ---- processing context ------------------------------------------------- */

struct ctx {
	const struct schema *s;
	json_t *causes;	 /* where causes go now */
	json_t *unknown; /* pruned paths, or NULL */
	strbuf path;	 /* field path of the current value */
	int err;
	bool deep_reported;
};

static const char R_REQUIRED[] = "FieldValueRequired";
static const char R_INVALID[] = "FieldValueInvalid";
static const char R_TYPE[] = "FieldValueTypeInvalid";
static const char R_NOT_SUPPORTED[] = "FieldValueNotSupported";
static const char R_DUPLICATE[] = "FieldValueDuplicate";
static const char R_TOO_LONG[] = "FieldValueTooLong";
static const char R_TOO_MANY[] = "FieldValueTooMany";

static size_t path_key(strbuf *p, const char *k)
{
	size_t old = p->len;

	if (old)
		strbuf_putn(p, ".", 1);
	strbuf_puts(p, k);
	return old;
}

static size_t path_index(strbuf *p, size_t i)
{
	size_t old = p->len;

	strbuf_printf(p, "[%zu]", i);
	return old;
}

static size_t path_mapkey(strbuf *p, const char *k)
{
	size_t old = p->len;

	strbuf_putn(p, "[", 1);
	strbuf_puts(p, k);
	strbuf_putn(p, "]", 1);
	return old;
}

/* Append {reason, message, field: the current path}; frees msg. */
static void add_cause(struct ctx *c, const char *reason, strbuf *msg)
{
	json_t *o;

	if (msg->oom || c->path.oom) {
		c->err = -ENOMEM;
		free(msg->p);
		return;
	}
	o = json_pack("{s:s, s:s, s:s}", "reason", reason, "message",
		      strbuf_str(msg), "field", strbuf_str(&c->path));
	free(msg->p);
	if (!o || json_array_append_new(c->causes, o))
		c->err = -ENOMEM;
}

/* "Invalid value: <v>: <path> in body " -- the head of most messages. */
static void msg_invalid(struct ctx *c, strbuf *m, const json_t *v)
{
	strbuf_puts(m, "Invalid value: ");
	go_value(m, v);
	strbuf_printf(m, ": %s in body ", strbuf_str(&c->path));
}

/* kube-openapi's InvalidType: "... must be of type <t>: "<got>"". */
static void fail_type(struct ctx *c, const char *want, const char *got)
{
	strbuf m = {0};

	strbuf_puts(&m, "Invalid value: ");
	go_quote(&m, got, strlen(got));
	strbuf_printf(&m, ": %s in body must be of type %s: ", strbuf_str(&c->path),
		  want);
	go_quote(&m, got, strlen(got));
	add_cause(c, R_TYPE, &m);
}

/* A failed anyOf/oneOf/allOf/not: an error without a field in
 * kube-openapi; reported on the current path. */
static void fail_composite(struct ctx *c, const char *what, const char *tail)
{
	strbuf m = {0};

	strbuf_puts(&m, "Invalid value: \"\": ");
	go_quote(&m, strbuf_str(&c->path), c->path.len);
	strbuf_printf(&m, " %s%s", what, tail);
	add_cause(c, R_INVALID, &m);
}

static bool too_deep(struct ctx *c, int depth)
{
	strbuf m = {0};

	if (depth <= SCHEMA_MAX_DEPTH)
		return false;
	if (!c->deep_reported && c->causes) {
		c->deep_reported = true;
		strbuf_printf(&m,
			  "Invalid value: \"\": nested more than %d "
			  "levels deep",
			  SCHEMA_MAX_DEPTH);
		add_cause(c, R_INVALID, &m);
	}
	return true;
}

static const struct node *find_prop(const struct node *n, const char *k)
{
	struct prop key = {.name = (char *)k}, *p;

	if (!n->nprops)
		return NULL;
	p = bsearch(&key, n->props, n->nprops, sizeof(*n->props), prop_cmp);
	return p ? p->s : NULL;
}

static bool is_meta_key(const char *k)
{
	return !strcmp(k, "apiVersion") || !strcmp(k, "kind") ||
	       !strcmp(k, "metadata");
}

/* apiVersion/kind (strings) and metadata (an object) of a resource are
 * not the schema's to prune. */
static bool keep_meta(const char *k, const json_t *v)
{
	if (!strcmp(k, "apiVersion") || !strcmp(k, "kind"))
		return json_is_string(v);
	if (!strcmp(k, "metadata"))
		return json_is_object(v);
	return false;
}

/* ---- pruning ------------------------------------------------------------- */

static void record_pruned(struct ctx *c, const char *k)
{
	size_t old;
	json_t *s;

	if (!c->unknown)
		return;
	old = path_key(&c->path, k);
	if (c->path.oom) {
		c->err = -ENOMEM;
		return;
	}
	s = json_sprintf(".%s", strbuf_str(&c->path));
	if (!s || json_array_append_new(c->unknown, s))
		c->err = -ENOMEM;
	strbuf_truncate(&c->path, old);
}

static void prune(struct ctx *c, const struct node *n, json_t *x, bool res,
		  int depth);

static void skip_prune(struct ctx *c, const struct node *n, json_t *x, bool res,
		       int depth)
{
	const char *k;
	json_t *v;
	size_t i, old;

	if (!n || too_deep(c, depth))
		return;
	if (json_is_object(x)) {
		json_object_foreach(x, k, v)
		{
			const struct node *p;

			if ((res || n->embedded) && is_meta_key(k))
				continue;
			if ((p = find_prop(n, k))) {
				old = path_key(&c->path, k);
				prune(c, p, v, false, depth + 1);
				strbuf_truncate(&c->path, old);
			} else if (n->addl == ADDL_SCHEMA) {
				old = path_mapkey(&c->path, k);
				prune(c, n->addl_s, v, false, depth + 1);
				strbuf_truncate(&c->path, old);
			}
		}
	} else if (json_is_array(x)) {
		json_array_foreach(x, i, v)
		{
			old = path_index(&c->path, i);
			skip_prune(c, n->items, v, false, depth + 1);
			strbuf_truncate(&c->path, old);
		}
	}
}

static void prune(struct ctx *c, const struct node *n, json_t *x, bool res,
		  int depth)
{
	const char *k;
	json_t *v;
	void *tmp;
	size_t i, old;

	if (too_deep(c, depth))
		return;
	if (n && n->preserve) {
		skip_prune(c, n, x, res, depth);
		return;
	}
	if (json_is_object(x)) {
		json_object_foreach_safe(x, tmp, k, v)
		{
			const struct node *p = NULL;

			if (n && (res || n->embedded) && keep_meta(k, v))
				continue;
			if (n && (p = find_prop(n, k))) {
				old = path_key(&c->path, k);
				prune(c, p, v, false, depth + 1);
				strbuf_truncate(&c->path, old);
			} else if (n && n->addl == ADDL_SCHEMA) {
				old = path_mapkey(&c->path, k);
				prune(c, n->addl_s, v, false, depth + 1);
				strbuf_truncate(&c->path, old);
			} else if (n && n->addl == ADDL_TRUE) {
				continue;
			} else {
				record_pruned(c, k);
				json_object_del(x, k);
			}
		}
	} else if (json_is_array(x)) {
		json_array_foreach(x, i, v)
		{
			old = path_index(&c->path, i);
			prune(c, n ? n->items : NULL, v, false, depth + 1);
			strbuf_truncate(&c->path, old);
		}
	}
}

/* kube-apiserver prunes every default against its own schema once, when
 * the CRD is loaded. */
static int prune_defaults(struct node *n, int depth)
{
	struct ctx c = {0};
	int rc = 0;

	if (!n || depth > SCHEMA_MAX_DEPTH + 1)
		return 0;
	if (n->def) {
		prune(&c, n, n->def, false, 0);
		free(c.path.p);
		if (c.err)
			return c.err;
	}
	for (size_t i = 0; i < n->nprops && !rc; i++)
		rc = prune_defaults(n->props[i].s, depth + 1);
	if (!rc)
		rc = prune_defaults(n->items, depth + 1);
	if (!rc)
		rc = prune_defaults(n->addl_s, depth + 1);
	return rc;
}

/* ---- defaulting ---------------------------------------------------------- */

static bool null_to_default(const struct node *n, const json_t *v)
{
	return json_is_null(v) && n && !n->nullable && n->def;
}

static void apply_defaults(struct ctx *c, const struct node *n, json_t *x,
			   bool res, int depth)
{
	const char *k;
	json_t *v, *cp;
	size_t i;

	if (!n || depth > SCHEMA_MAX_DEPTH)
		return;
	if (json_is_object(x)) {
		bool meta = res || n->embedded;

		for (i = 0; i < n->nprops; i++) {
			const struct prop *p = &n->props[i];

			if (!p->s->def ||
			    (meta && !strcmp(p->name, "metadata")))
				continue;
			v = json_object_get(x, p->name);
			if (v && !(json_is_null(v) && !p->s->nullable))
				continue;
			cp = json_deep_copy(p->s->def);
			if (!cp || json_object_set_new(x, p->name, cp))
				c->err = -ENOMEM;
		}
		json_object_foreach(x, k, v)
		{
			const struct node *p;

			if (meta && !strcmp(k, "metadata"))
				continue;
			if ((p = find_prop(n, k))) {
				apply_defaults(c, p, v, false, depth + 1);
			} else if (n->addl == ADDL_SCHEMA) {
				if (null_to_default(n->addl_s, v)) {
					cp = json_deep_copy(n->addl_s->def);
					if (!cp ||
					    json_object_set_new(x, k, cp))
						c->err = -ENOMEM;
					continue;
				}
				apply_defaults(c, n->addl_s, v, false,
					       depth + 1);
			}
		}
	} else if (json_is_array(x) && n->items) {
		json_array_foreach(x, i, v)
		{
			if (null_to_default(n->items, v)) {
				cp = json_deep_copy(n->items->def);
				if (!cp || json_array_set_new(x, i, cp))
					c->err = -ENOMEM;
				continue;
			}
			apply_defaults(c, n->items, v, false, depth + 1);
		}
	}
}

/* ---- formats ------------------------------------------------------------- */

static bool is_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int num2(const char *s)
{
	return (s[0] - '0') * 10 + (s[1] - '0');
}

/* RFC 3339 full-date, as Go's time.Parse("2006-01-02") takes it. */
static bool fmt_date(const char *s, size_t n)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31};
	int y, m, d;

	if (n != 10 || s[4] != '-' || s[7] != '-' || !is_digits(s, 4) ||
	    !is_digits(s + 5, 2) || !is_digits(s + 8, 2))
		return false;
	y = atoi(s);
	m = num2(s + 5);
	d = num2(s + 8);
	if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return false;
	if (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 || y % 400 == 0)))
		return false;
	return true;
}

/* strfmt's IsDateTime: a date, 'T', hh:mm:ss[.frac], then Z or +hh:mm. */
static bool fmt_datetime(const char *s, size_t n)
{
	const char *t = s + 11, *e = s + n;

	if (n < 20 || !fmt_date(s, 10) || (s[10] != 'T' && s[10] != 't'))
		return false;
	if (t[2] != ':' || t[5] != ':' || !is_digits(t, 2) ||
	    !is_digits(t + 3, 2) || !is_digits(t + 6, 2))
		return false;
	if (num2(t) > 23 || num2(t + 3) > 59 || num2(t + 6) > 59)
		return false;
	t += 8;
	if (t < e && *t == '.') {
		const char *f = ++t;

		while (t < e && *t >= '0' && *t <= '9')
			t++;
		if (t == f)
			return false;
	}
	if (e - t == 1)
		return *t == 'Z' || *t == 'z';
	return e - t == 6 && (*t == '+' || *t == '-') && t[3] == ':' &&
	       is_digits(t + 1, 2) && is_digits(t + 4, 2);
}

/* Go's base64.StdEncoding.DecodeString (which skips \r and \n). */
static bool fmt_byte(const char *s, size_t n)
{
	size_t len = 0, pad = 0;

	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (ch == '\r' || ch == '\n')
			continue;
		if (ch == '=') {
			pad++;
		} else if (pad || !((ch >= 'A' && ch <= 'Z') ||
				    (ch >= 'a' && ch <= 'z') ||
				    (ch >= '0' && ch <= '9') || ch == '+' ||
				    ch == '/')) {
			return false;
		}
		len++;
	}
	return len % 4 == 0 && pad <= 2;
}

static bool fmt_ip(const char *s, size_t n, int want)
{
	unsigned char buf[16];
	char tmp[64];

	if (n == 0 || n >= sizeof(tmp) || memchr(s, '\0', n))
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (want == 4)
		return strchr(tmp, '.') && (inet_pton(AF_INET, tmp, buf) == 1 ||
					    inet_pton(AF_INET6, tmp, buf) == 1);
	return strchr(tmp, ':') && inet_pton(AF_INET6, tmp, buf) == 1;
}

static bool fmt_cidr(const char *s, size_t n)
{
	const char *slash = memchr(s, '/', n);
	size_t plen;
	bool v6;
	int bits;

	if (!slash)
		return false;
	plen = n - (size_t)(slash + 1 - s);
	if (plen == 0 || plen > 3 || !is_digits(slash + 1, plen) ||
	    (plen > 1 && slash[1] == '0'))
		return false;
	bits = atoi(slash + 1);
	v6 = memchr(s, ':', (size_t)(slash - s)) != NULL;
	if (bits > (v6 ? 128 : 32))
		return false;
	return v6 ? fmt_ip(s, (size_t)(slash - s), 6)
		  : fmt_ip(s, (size_t)(slash - s), 4);
}

static bool re_match(struct ctx *c, const pcre2_code *re, const char *s,
		     size_t n)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	int rc;

	if (!md) {
		c->err = -ENOMEM;
		return true;
	}
	rc = pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, md, c->s->mctx);
	pcre2_match_data_free(md);
	return rc >= 0;
}

static bool fmt_ok(struct ctx *c, enum fmt f, const char *s, size_t n)
{
	switch (f) {
	case FMT_BYTE:
		return fmt_byte(s, n);
	case FMT_DATE:
		return fmt_date(s, n);
	case FMT_DATETIME:
		return fmt_datetime(s, n);
	case FMT_IPV4:
		return fmt_ip(s, n, 4);
	case FMT_IPV6:
		return fmt_ip(s, n, 6);
	case FMT_CIDR:
		return fmt_cidr(s, n);
	case FMT_HOSTNAME:
		if (n > 255)
			return false;
		/* fall through */
	default:
		if (f >= FMT_FIRST_RE && f < FMT_COUNT)
			return re_match(c, c->s->fmt_re[f - FMT_FIRST_RE], s,
					n);
		return true;
	}
}

/* ---- validation ---------------------------------------------------------- */

static void validate(struct ctx *c, const struct node *n, const json_t *x,
		     bool res, int depth);

static const char *json_type_name(const json_t *x)
{
	switch (json_typeof(x)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	default:
		return "null";
	}
}

static unsigned json_type_bit(const json_t *x)
{
	switch (json_typeof(x)) {
	case JSON_OBJECT:
		return TY_OBJECT;
	case JSON_ARRAY:
		return TY_ARRAY;
	case JSON_STRING:
		return TY_STRING;
	case JSON_INTEGER:
		return TY_INTEGER;
	case JSON_REAL:
		return TY_NUMBER;
	case JSON_TRUE:
	case JSON_FALSE:
		return TY_BOOLEAN;
	default:
		return 0;
	}
}

/* swag.IsFloat64AJSONInteger */
static bool is_json_integer(double d)
{
	return isfinite(d) && fabs(d) <= 9007199254740992.0 && d == trunc_d(d);
}

/* kube-openapi's typeValidator, quirks included. */
static void check_type(struct ctx *c, const struct node *n, const json_t *x)
{
	bool has_fmt = n->fmt != FMT_NONE, str_or_arr, contains, float_int;
	bool int_float;

	if (!n->types && !has_fmt)
		return;
	if (json_is_null(x)) {
		if (n->types && !n->nullable)
			fail_type(c, n->type_name, "null");
		return;
	}
	str_or_arr = json_is_string(x) || json_is_array(x);
	contains = n->types & json_type_bit(x);
	float_int = json_is_real(x) && (n->types & TY_INTEGER) &&
		    is_json_integer(json_real_value(x));
	int_float = json_is_integer(x) && (n->types & TY_NUMBER);
	if (!str_or_arr && has_fmt && !(contains || float_int || int_float)) {
		fail_type(c, n->format,
			  json_is_integer(x) ? "int64"
			  : json_is_real(x)  ? "float64"
					     : "");
		return;
	}
	if (!(n->types & (TY_NUMBER | TY_INTEGER)) && has_fmt && str_or_arr)
		return;
	if (!(contains || float_int || int_float))
		fail_type(c, n->type_name ? n->type_name : "",
			  json_type_name(x));
}

/* Validate x against sub into a fresh array of causes (new reference). */
static json_t *validate_sub(struct ctx *c, const struct node *sub,
			    const json_t *x, bool res, int depth)
{
	json_t *saved = c->causes, *tmp = json_array();

	if (!tmp) {
		c->err = -ENOMEM;
		return NULL;
	}
	c->causes = tmp;
	validate(c, sub, x, res, depth + 1);
	c->causes = saved;
	return tmp;
}

static void merge_causes(struct ctx *c, json_t *from)
{
	if (from && json_array_extend(c->causes, from))
		c->err = -ENOMEM;
}

static void check_any_of(struct ctx *c, const struct node *n, const json_t *x,
			 bool res, int depth)
{
	json_t *best = NULL, *r;
	bool ok = false;

	for (size_t i = 0; i < n->any_of.n && !c->err; i++) {
		r = validate_sub(c, n->any_of.v[i], x, res, depth);
		if (r && json_array_size(r) == 0) {
			ok = true;
			json_decref(r);
			json_decref(best);
			best = NULL;
			break;
		}
		if (!best ||
		    (r && json_array_size(r) < json_array_size(best))) {
			json_decref(best);
			best = r;
		} else {
			json_decref(r);
		}
	}
	if (!ok)
		fail_composite(c, "must validate at least one schema (anyOf)",
			       "");
	merge_causes(c, best);
	json_decref(best);
}

static void check_one_of(struct ctx *c, const struct node *n, const json_t *x,
			 bool res, int depth)
{
	json_t *best = NULL, *r;
	size_t valid = 0;
	char tail[64];

	for (size_t i = 0; i < n->one_of.n && !c->err; i++) {
		r = validate_sub(c, n->one_of.v[i], x, res, depth);
		if (r && json_array_size(r) == 0) {
			valid++;
			json_decref(best);
			best = NULL;
			json_decref(r);
			continue;
		}
		if (!valid && (!best || (r && json_array_size(r) <
						  json_array_size(best)))) {
			json_decref(best);
			best = r;
		} else {
			json_decref(r);
		}
	}
	if (valid != 1) {
		if (valid == 0)
			snprintf(tail, sizeof(tail), "Found none valid");
		else
			snprintf(tail, sizeof(tail),
				 "Found %zu valid alternatives", valid);
		fail_composite(
		    c, "must validate one and only one schema (oneOf). ", tail);
		merge_causes(c, best);
	}
	json_decref(best);
}

static void check_composition(struct ctx *c, const struct node *n,
			      const json_t *x, bool res, int depth)
{
	json_t *r;

	if (n->any_of.n)
		check_any_of(c, n, x, res, depth);
	if (n->one_of.n)
		check_one_of(c, n, x, res, depth);
	if (n->all_of.n) {
		size_t valid = 0;

		for (size_t i = 0; i < n->all_of.n && !c->err; i++) {
			r = validate_sub(c, n->all_of.v[i], x, res, depth);
			if (r && json_array_size(r) == 0)
				valid++;
			merge_causes(c, r);
			json_decref(r);
		}
		if (valid != n->all_of.n)
			fail_composite(c,
				       "must validate all the schemas (allOf)",
				       valid ? "" : ". None validated");
	}
	if (n->not_s) {
		r = validate_sub(c, n->not_s, x, res, depth);
		if (r && json_array_size(r) == 0)
			fail_composite(c, "must not validate the schema (not)",
				       "");
		json_decref(r);
	}
}

static size_t utf8_count(const char *s, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			k++;
	return k;
}

static void check_string(struct ctx *c, const struct node *n, const json_t *x)
{
	const char *s = json_string_value(x);
	size_t len = json_string_length(x), chars = utf8_count(s, len);
	strbuf m = {0};

	if (n->max_len >= 0 && chars > (uint64_t)n->max_len) {
		strbuf_printf(&m, "Too long: may not be longer than %lld",
			  (long long)n->max_len);
		add_cause(c, R_TOO_LONG, &m);
	} else if (n->min_len >= 0 && chars < (uint64_t)n->min_len) {
		msg_invalid(c, &m, x);
		strbuf_printf(&m, "should be at least %lld chars long",
			  (long long)n->min_len);
		add_cause(c, R_INVALID, &m);
	} else if (n->re && !re_match(c, n->re, s, len)) {
		msg_invalid(c, &m, x);
		strbuf_printf(&m, "should match '%s'", n->pattern);
		add_cause(c, R_INVALID, &m);
	}
	if (n->fmt > FMT_UNCHECKED && !fmt_ok(c, n->fmt, s, len)) {
		m = (strbuf){0};
		msg_invalid(c, &m, x);
		strbuf_printf(&m, "must be of type %s: ", n->format);
		go_quote(&m, s, len);
		add_cause(c, R_TYPE, &m);
	}
}

/* Compare x with a bound: <0, 0, >0 (kube-openapi's native types). */
static int num_cmp(const json_t *x, double bound)
{
	if (int_bound(x, bound)) {
		long long v = json_integer_value(x), b = (long long)bound;

		return (v > b) - (v < b);
	}
	return (json_number_value(x) > bound) - (json_number_value(x) < bound);
}

static void check_number(struct ctx *c, const struct node *n, const json_t *x)
{
	strbuf m = {0};
	bool bad;
	int cmp;

	if (n->has_mult) {
		double f = n->multiple_of;

		if (json_is_integer(x) && f == trunc_d(f) && f < 9.2e18)
			bad = json_integer_value(x) % (long long)f != 0;
		else if (json_is_integer(x) && f < 9.2e18)
			bad =
			    !is_json_integer((double)json_integer_value(x) / f);
		else
			bad = !is_json_integer(json_number_value(x) / f);
		if (bad) {
			msg_invalid(c, &m, x);
			strbuf_puts(&m, "should be a multiple of ");
			go_bound(&m, f, x);
			add_cause(c, R_INVALID, &m);
		}
	}
	if (n->has_min) {
		cmp = num_cmp(x, n->minimum);
		if (n->excl_min ? cmp <= 0 : cmp < 0) {
			m = (strbuf){0};
			msg_invalid(c, &m, x);
			strbuf_puts(&m, n->excl_min ? "should be greater than "
						: "should be greater than or "
						  "equal to ");
			go_bound(&m, n->minimum, x);
			add_cause(c, R_INVALID, &m);
		}
	}
	if (n->has_max) {
		cmp = num_cmp(x, n->maximum);
		if (n->excl_max ? cmp >= 0 : cmp > 0) {
			m = (strbuf){0};
			msg_invalid(c, &m, x);
			strbuf_puts(&m, n->excl_max ? "should be less than "
						: "should be less than or "
						  "equal to ");
			go_bound(&m, n->maximum, x);
			add_cause(c, R_INVALID, &m);
		}
	}
}

static bool has_duplicates(const json_t *x)
{
	size_t n = json_array_size(x);

	for (size_t i = 1; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (json_equal(json_array_get(x, i),
				       json_array_get(x, j)))
				return true;
	return false;
}

static void check_array(struct ctx *c, const struct node *n, const json_t *x,
			int depth)
{
	size_t size = json_array_size(x), i, old;
	strbuf m = {0};
	json_t *v;

	if (n->items) {
		json_array_foreach(x, i, v)
		{
			old = path_index(&c->path, i);
			validate(c, n->items, v, false, depth + 1);
			strbuf_truncate(&c->path, old);
		}
	}
	if (n->min_items >= 0 && size < (uint64_t)n->min_items) {
		strbuf_printf(&m,
			  "Invalid value: %zu: %s in body should have at "
			  "least %lld items",
			  size, strbuf_str(&c->path), (long long)n->min_items);
		add_cause(c, R_INVALID, &m);
	}
	if (n->max_items >= 0 && size > (uint64_t)n->max_items) {
		m = (strbuf){0};
		strbuf_printf(&m, "Too many: %zu: must have at most %lld items",
			  size, (long long)n->max_items);
		add_cause(c, R_TOO_MANY, &m);
	}
	if (n->unique && has_duplicates(x)) {
		m = (strbuf){0};
		msg_invalid(c, &m, NULL);
		strbuf_puts(&m, "shouldn't contain duplicates");
		add_cause(c, R_INVALID, &m);
	}
}

/* Go's enum check: numbers compare by value, the rest deeply; null never
 * matches. */
static bool enum_equal(const json_t *e, const json_t *x)
{
	if (json_is_null(x) || json_is_null(e))
		return false;
	if (json_is_number(e) && json_is_number(x)) {
		if (json_is_integer(e) && json_is_integer(x))
			return json_integer_value(e) == json_integer_value(x);
		return json_number_value(e) == json_number_value(x);
	}
	return json_equal(e, x);
}

static void check_enum(struct ctx *c, const struct node *n, const json_t *x)
{
	strbuf m = {0};
	json_t *e;
	size_t i;

	if (!n->enumv)
		return;
	json_array_foreach(n->enumv, i, e) if (enum_equal(e, x)) return;
	strbuf_puts(&m, "Unsupported value: ");
	go_value(&m, x);
	strbuf_puts(&m, ": supported values: ");
	json_array_foreach(n->enumv, i, e)
	{
		if (i)
			strbuf_puts(&m, ", ");
		if (json_is_string(e)) {
			go_quote(&m, json_string_value(e),
				 json_string_length(e));
		} else {
			strbuf js = {0};

			if (json_is_real(e))
				go_float(&js, json_real_value(e));
			else if (json_is_integer(e))
				strbuf_printf(&js, "%lld",
					  (long long)json_integer_value(e));
			else
				go_value(&js, json_is_null(e) ? NULL : e);
			if (json_is_null(e))
				strbuf_truncate(&js, 0), strbuf_puts(&js, "null");
			go_quote(&m, strbuf_str(&js), js.len);
			m.oom |= js.oom;
			free(js.p);
		}
	}
	add_cause(c, R_NOT_SUPPORTED, &m);
}

static void check_object(struct ctx *c, const struct node *n, const json_t *x,
			 bool res, int depth)
{
	bool meta = res || n->embedded;
	size_t nkeys = json_object_size(x), old;
	strbuf m = {0};
	const char *k;
	json_t *v;

	if (n->min_props >= 0 && nkeys < (uint64_t)n->min_props) {
		strbuf_printf(&m,
			  "Invalid value: %zu: %s in body should have at "
			  "least %lld properties",
			  nkeys, strbuf_str(&c->path), (long long)n->min_props);
		add_cause(c, R_INVALID, &m);
		return;
	}
	if (n->max_props >= 0 && nkeys > (uint64_t)n->max_props) {
		strbuf_printf(&m, "Too many: %zu: must have at most %lld items",
			  nkeys, (long long)n->max_props);
		add_cause(c, R_TOO_MANY, &m);
		return;
	}
	json_object_foreach((json_t *)x, k, v)
	{
		if (find_prop(n, k) || (meta && is_meta_key(k)))
			continue;
		if (n->addl == ADDL_FALSE) {
			m = (strbuf){0};
			strbuf_puts(&m, "Invalid value: ");
			go_quote(&m, k, strlen(k));
			strbuf_printf(&m, ": %s.%s in body is a forbidden property",
				  strbuf_str(&c->path), k);
			add_cause(c, R_INVALID, &m);
		} else if (n->addl == ADDL_SCHEMA) {
			old = path_mapkey(&c->path, k);
			validate(c, n->addl_s, v, false, depth + 1);
			strbuf_truncate(&c->path, old);
		}
	}
	for (size_t i = 0; i < n->nprops; i++) {
		const struct prop *p = &n->props[i];

		if (meta && !strcmp(p->name, "metadata"))
			continue;
		if (!(v = json_object_get(x, p->name)))
			continue;
		old = path_key(&c->path, p->name);
		validate(c, p->s, v, false, depth + 1);
		strbuf_truncate(&c->path, old);
	}
	for (size_t i = 0; i < n->nrequired; i++) {
		const char *r = n->required[i];

		if ((meta && !strcmp(r, "metadata")) || json_object_get(x, r))
			continue;
		old = path_key(&c->path, r);
		m = (strbuf){0};
		strbuf_puts(&m, "Required value");
		add_cause(c, R_REQUIRED, &m);
		strbuf_truncate(&c->path, old);
	}
}

static void validate(struct ctx *c, const struct node *n, const json_t *x,
		     bool res, int depth)
{
	if (!n || c->err || too_deep(c, depth))
		return;
	check_type(c, n, x);
	if (json_is_null(x)) {
		check_enum(c, n, x);
		return;
	}
	check_composition(c, n, x, res, depth);
	if (json_is_string(x))
		check_string(c, n, x);
	if (json_is_number(x))
		check_number(c, n, x);
	if (json_is_array(x))
		check_array(c, n, x, depth);
	check_enum(c, n, x);
	if (json_is_object(x))
		check_object(c, n, x, res, depth);
}

/* ---- x-kubernetes-list-type, embedded resources ---------------------------
 */

static void fail_at_index(struct ctx *c, size_t i, const char *reason,
			  strbuf *m)
{
	size_t old = path_index(&c->path, i);

	add_cause(c, reason, m);
	strbuf_truncate(&c->path, old);
}

/* The key of a list-type=map item: each key field's value, its default,
 * or null (unspecified). Returns a new reference, or NULL on OOM. */
static json_t *map_item_key(const struct node *n, const json_t *item)
{
	json_t *keys = json_array(), *v;

	for (size_t k = 0; keys && k < n->nmap_keys; k++) {
		const struct node *ks =
		    n->items ? find_prop(n->items, n->map_keys[k]) : NULL;

		v = json_is_object(item) ? json_object_get(item, n->map_keys[k])
					 : NULL;
		if (!v && ks && ks->def)
			v = ks->def;
		if (json_array_append(keys, v ? v : json_null())) {
			json_decref(keys);
			return NULL;
		}
	}
	return keys;
}

static void check_list_map(struct ctx *c, const struct node *n, const json_t *x)
{
	size_t size = json_array_size(x), i, j;
	json_t **keys, *v;
	strbuf m = {0};

	json_array_foreach(x, i, v)
	{
		if (json_is_null(v) || json_is_object(v))
			continue;
		strbuf_puts(&m, "Invalid value: ");
		go_value(&m, v);
		strbuf_puts(&m,
			": must be an object for an array of list-type map");
		fail_at_index(c, i, R_INVALID, &m);
		return;
	}
	if (size <= 1)
		return;
	keys = calloc(size, sizeof(*keys));
	if (!keys) {
		c->err = -ENOMEM;
		return;
	}
	for (i = 0; i < size && !c->err; i++) {
		size_t seen = 0;

		if (!(keys[i] = map_item_key(n, json_array_get(x, i)))) {
			c->err = -ENOMEM;
			break;
		}
		for (j = 0; j < i; j++)
			seen += json_equal(keys[i], keys[j]);
		if (seen != 1)
			continue;
		/* the second item with this key: Duplicate value: {k: v} */
		v = json_object();
		for (size_t k = 0; v && k < n->nmap_keys; k++) {
			json_t *kv = json_object_get(json_array_get(x, i),
						     n->map_keys[k]);

			json_object_set(v, n->map_keys[k],
					kv ? kv : json_null());
		}
		m = (strbuf){0};
		strbuf_puts(&m, "Duplicate value: ");
		if (!v)
			m.oom = true;
		else
			go_value(&m, v);
		json_decref(v);
		fail_at_index(c, i, R_DUPLICATE, &m);
	}
	for (i = 0; i < size; i++)
		json_decref(keys[i]);
	free(keys);
}

static void check_list_set(struct ctx *c, const json_t *x)
{
	size_t size = json_array_size(x);
	strbuf m;

	for (size_t i = 1; i < size && !c->err; i++) {
		size_t seen = 0;

		for (size_t j = 0; j < i; j++)
			seen += json_equal(json_array_get(x, i),
					   json_array_get(x, j));
		if (seen != 1)
			continue;
		m = (strbuf){0};
		strbuf_puts(&m, "Duplicate value: ");
		go_value(&m, json_array_get(x, i));
		fail_at_index(c, i, R_DUPLICATE, &m);
	}
}

static void embedded_field(struct ctx *c, const json_t *x, const char *k)
{
	json_t *v = json_object_get(x, k);
	size_t old = path_key(&c->path, k);
	strbuf m = {0};
	const char *s;

	if (!v) {
		strbuf_puts(&m, "Required value: must not be empty");
		add_cause(c, R_REQUIRED, &m);
	} else if (!json_is_string(v)) {
		strbuf_puts(&m, "Invalid value: ");
		go_value(&m, v);
		strbuf_puts(&m, ": must be a string");
		add_cause(c, R_INVALID, &m);
	} else if (!*(s = json_string_value(v))) {
		strbuf_puts(&m, "Invalid value: \"\": must not be empty");
		add_cause(c, R_INVALID, &m);
	} else if (!strcmp(k, "apiVersion") && strchr(s, '/') &&
		   strchr(s, '/') != strrchr(s, '/')) {
		strbuf_puts(&m, "Invalid value: ");
		go_value(&m, v);
		strbuf_printf(&m, ": unexpected GroupVersion string: %s", s);
		add_cause(c, R_INVALID, &m);
	}
	strbuf_truncate(&c->path, old);
}

static void validate_ext(struct ctx *c, const struct node *n, const json_t *x,
			 bool res, int depth)
{
	const char *k;
	json_t *v;
	size_t i, old;

	if (!n || c->err || depth > SCHEMA_MAX_DEPTH)
		return;
	if (json_is_object(x)) {
		bool meta = res || n->embedded;

		if (n->embedded && !res) {
			embedded_field(c, x, "apiVersion");
			embedded_field(c, x, "kind");
		}
		json_object_foreach((json_t *)x, k, v)
		{
			const struct node *p = find_prop(n, k);

			if (meta && is_meta_key(k))
				continue;
			if (p) {
				old = path_key(&c->path, k);
				validate_ext(c, p, v, false, depth + 1);
			} else if (n->addl == ADDL_SCHEMA) {
				old = path_mapkey(&c->path, k);
				validate_ext(c, n->addl_s, v, false, depth + 1);
			} else {
				continue;
			}
			strbuf_truncate(&c->path, old);
		}
	} else if (json_is_array(x)) {
		if (n->list_type == LIST_SET)
			check_list_set(c, x);
		else if (n->list_type == LIST_MAP)
			check_list_map(c, n, x);
		json_array_foreach(x, i, v)
		{
			old = path_index(&c->path, i);
			validate_ext(c, n->items, v, false, depth + 1);
			strbuf_truncate(&c->path, old);
		}
	}
}

/* ---- public -------------------------------------------------------------- */

void schema_free(schema *s)
{
	if (!s)
		return;
	node_free(s->root);
	pcre2_match_context_free(s->mctx);
	for (size_t i = 0; i < FMT_COUNT - FMT_FIRST_RE; i++)
		pcre2_code_free(s->fmt_re[i]);
	free(s);
}

int schema_compile(const json_t *openapi_v3_schema, schema **out, char *err,
		   size_t errlen)
{
	struct cc c = {.err = err, .errlen = errlen};
	struct schema *s;
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	s = calloc(1, sizeof(*s));
	if (!s)
		return cc_oom(&c);
	c.s = s;
	/* RE2 runs in linear time; bound PCRE2's backtracking instead. */
	s->mctx = pcre2_match_context_create(NULL);
	if (!s->mctx) {
		rc = cc_oom(&c);
		goto out;
	}
	pcre2_set_match_limit(s->mctx, 1000000);
	pcre2_set_depth_limit(s->mctx, 10000);
	for (size_t i = 0; i < FMT_COUNT - FMT_FIRST_RE; i++) {
		uint32_t ucp = i + FMT_FIRST_RE == FMT_HOSTNAME ? PCRE2_UCP : 0;

		s->fmt_re[i] = re_compile(fmt_patterns[i], ucp, NULL, 0);
		if (!s->fmt_re[i]) {
			rc = cc_oom(&c);
			goto out;
		}
	}
	strbuf_puts(&c.path, "openAPIV3Schema");
	rc = compile_node(&c, openapi_v3_schema, 0, &s->root);
	if (!rc && (rc = prune_defaults(s->root, 0)))
		cc_oom(&c);
out:
	free(c.path.p);
	if (rc) {
		schema_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

int schema_process(const schema *s, json_t *obj, unsigned flags, json_t *causes,
		   json_t *unknown)
{
	struct ctx c = {.s = s, .causes = causes, .unknown = unknown};
	size_t before = json_array_size(causes);

	if (!(flags & SCHEMA_NO_PRUNE))
		prune(&c, s->root, obj, true, 0);
	if (!(flags & SCHEMA_NO_DEFAULT) && !c.err)
		apply_defaults(&c, s->root, obj, true, 0);
	if (!c.err)
		validate(&c, s->root, obj, true, 0);
	if (!c.err)
		validate_ext(&c, s->root, obj, true, 0);
	free(c.path.p);
	if (c.err)
		return c.err;
	return (int)(json_array_size(causes) - before);
}

/* ---- structural check -----------------------------------------------------
 */

static bool structural(const json_t *j, strbuf *path, const char *what,
		       int depth, char *err, size_t errlen);

static bool structural_child(const json_t *j, strbuf *path, const char *sfx,
			     const char *what, int depth, char *err,
			     size_t errlen)
{
	size_t old = path->len;
	bool ok;

	strbuf_puts(path, sfx);
	ok = structural(j, path, what, depth + 1, err, errlen);
	if (ok)
		strbuf_truncate(path, old);
	return ok;
}

static bool structural(const json_t *j, strbuf *path, const char *what,
		       int depth, char *err, size_t errlen)
{
	json_t *t, *x, *v;
	const char *k;
	strbuf sfx = {0};
	bool ok = true;

	if (depth > SCHEMA_MAX_DEPTH) {
		snprintf(err, errlen,
			 "%s: Invalid value: nested more than %d "
			 "levels deep",
			 strbuf_str(path), SCHEMA_MAX_DEPTH);
		return false;
	}
	if (!json_is_object(j)) {
		snprintf(err, errlen,
			 "%s: Invalid value: must be a schema "
			 "object",
			 strbuf_str(path));
		return false;
	}
	t = json_object_get(j, "type");
	if (what && (!json_is_string(t) || !*json_string_value(t)) &&
	    !json_is_true(json_object_get(j, "x-kubernetes-int-or-string")) &&
	    !json_is_true(
		json_object_get(j, "x-kubernetes-preserve-unknown-fields"))) {
		snprintf(err, errlen,
			 "%s.type: Required value: must not be "
			 "empty for specified %s",
			 strbuf_str(path), what);
		return false;
	}
	x = json_object_get(j, "properties");
	if (json_is_object(x)) {
		json_object_foreach(x, k, v)
		{
			strbuf_truncate(&sfx, 0);
			strbuf_printf(&sfx, ".properties[%s]", k);
			ok = structural_child(v, path, strbuf_str(&sfx),
					      "object fields", depth, err,
					      errlen);
			if (!ok)
				break;
		}
	}
	free(sfx.p);
	if (ok && (x = json_object_get(j, "items")) && !json_is_null(x))
		ok = structural_child(x, path, ".items", "array items", depth,
				      err, errlen);
	if (ok &&
	    json_is_object(x = json_object_get(j, "additionalProperties")))
		ok = structural_child(x, path, ".additionalProperties",
				      "object fields", depth, err, errlen);
	return ok;
}

bool schema_is_structural(const json_t *openapi_v3_schema, char *err,
			  size_t errlen)
{
	strbuf path = {0};
	char dummy[1];
	json_t *t;
	bool ok;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (!json_is_object(openapi_v3_schema)) {
		snprintf(err, errlen,
			 "openAPIV3Schema: Required value: must "
			 "be a schema object");
		return false;
	}
	t = json_object_get(openapi_v3_schema, "type");
	if (!json_is_string(t) || strcmp(json_string_value(t), "object")) {
		if (!json_is_string(t) || !*json_string_value(t))
			snprintf(err, errlen,
				 "openAPIV3Schema.type: Required "
				 "value: must be object at the root");
		else
			snprintf(err, errlen,
				 "openAPIV3Schema.type: Invalid "
				 "value: \"%s\": must be object at "
				 "the root",
				 json_string_value(t));
		return false;
	}
	strbuf_puts(&path, "openAPIV3Schema");
	if (path.oom) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	ok = structural(openapi_v3_schema, &path, NULL, 0, err, errlen);
	free(path.p);
	return ok;
}
