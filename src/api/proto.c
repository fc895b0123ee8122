/*
 * proto.c -- Kubernetes protobuf bodies to JSON (see proto.h).
 *
 * Three parts: a bounds-checked reader of the protobuf wire format, the
 * message tables (one per upstream message, fields by number), and one
 * decoder that walks a table. Field numbers are those of the upstream
 * generated.proto files; JSON names and omitempty flags those of the Go
 * types' json tags.
 *
 * Invariant of the reader: rd.p <= rd.end always, and nothing reads at or
 * past rd.end. Every length read from the input is compared with what is
 * left before it is used.
 */
#include "api/proto.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the message tables ------------------------------------------------- */

enum pkind {
	PK_STRING,
	PK_INT64,
	PK_INT32,
	PK_BOOL,
	PK_MESSAGE,
	PK_MAP,	      /* msg is the entry: key = 1, value = 2 */
	PK_TIME,      /* meta/v1 Time: whole seconds, RFC 3339 */
	PK_MICROTIME, /* meta/v1 MicroTime: 6 fraction digits */
};

#define PF_REPEATED  0x1
#define PF_OMITEMPTY 0x2 /* Go: non-pointer with `json:",omitempty"` */

struct pmsg;

struct pfield {
	unsigned num;
	const char *name;
	enum pkind kind;
	unsigned flags;
	const struct pmsg *msg;
};

/* PM_UNWRAP: the JSON form is the value of the message's only field. */
#define PM_UNWRAP 0x1

struct pmsg {
	const struct pfield *fields;
	size_t nfields;
	unsigned flags;
};

/* clang-format off */
#define S(n, name) {n, name, PK_STRING, 0, NULL}
#define SE(n, name) {n, name, PK_STRING, PF_OMITEMPTY, NULL}
#define SR(n, name) {n, name, PK_STRING, PF_REPEATED, NULL}
#define I64(n, name) {n, name, PK_INT64, 0, NULL}
#define I32(n, name) {n, name, PK_INT32, 0, NULL}
#define I32E(n, name) {n, name, PK_INT32, PF_OMITEMPTY, NULL}
#define B(n, name) {n, name, PK_BOOL, 0, NULL}
#define BE(n, name) {n, name, PK_BOOL, PF_OMITEMPTY, NULL}
#define M(n, name, m) {n, name, PK_MESSAGE, 0, &m}
#define MR(n, name, m) {n, name, PK_MESSAGE, PF_REPEATED, &m}
#define MAP(n, name, m) {n, name, PK_MAP, 0, &m}
#define T(n, name) {n, name, PK_TIME, 0, NULL}
#define MT(n, name) {n, name, PK_MICROTIME, 0, NULL}

#define MSG(var, fl, ...)                                                      \
	static const struct pfield var##_fields[] = {__VA_ARGS__};             \
	static const struct pmsg var = {var##_fields, ARRAY_SIZE(var##_fields), \
					fl}
/* clang-format on */

/* meta/v1.Time and MicroTime are both {seconds = 1, nanos = 2}. */
MSG(timestamp, 0, I64(1, "seconds"), I32(2, "nanos"));

/* map<string, string> entry. */
MSG(string_entry, 0, S(1, "key"), S(2, "value"));

/* k8s.io/apimachinery/pkg/apis/meta/v1 */
MSG(owner_reference, 0, S(1, "kind"), S(3, "name"), S(4, "uid"),
    S(5, "apiVersion"), B(6, "controller"), B(7, "blockOwnerDeletion"));

MSG(object_meta, 0, SE(1, "name"), SE(2, "generateName"), SE(3, "namespace"),
    SE(4, "selfLink"), SE(5, "uid"), SE(6, "resourceVersion"),
    {7, "generation", PK_INT64, PF_OMITEMPTY, NULL}, T(8, "creationTimestamp"),
    T(9, "deletionTimestamp"), I64(10, "deletionGracePeriodSeconds"),
    MAP(11, "labels", string_entry), MAP(12, "annotations", string_entry),
    MR(13, "ownerReferences", owner_reference), SR(14, "finalizers"));

MSG(preconditions, 0, S(1, "uid"), S(2, "resourceVersion"));

MSG(delete_options, 0, I64(1, "gracePeriodSeconds"),
    M(2, "preconditions", preconditions), B(3, "orphanDependents"),
    S(4, "propagationPolicy"), SR(5, "dryRun"),
    B(6, "ignoreStoreReadErrorWithClusterBreakingPotential"));

/* Also authorization/v1 FieldSelectorRequirement: the same fields. */
MSG(selector_requirement, 0, S(1, "key"), S(2, "operator"), SR(3, "values"));

MSG(label_selector, 0, MAP(1, "matchLabels", string_entry),
    MR(2, "matchExpressions", selector_requirement));

/* k8s.io/api/core/v1 */
MSG(namespace_spec, 0, SR(1, "finalizers"));

MSG(namespace_condition, 0, S(1, "type"), S(2, "status"),
    T(4, "lastTransitionTime"), SE(5, "reason"), SE(6, "message"));

MSG(namespace_status, 0, SE(1, "phase"),
    MR(2, "conditions", namespace_condition));

MSG(namespace, 0, M(1, "metadata", object_meta), M(2, "spec", namespace_spec),
    M(3, "status", namespace_status));

/* k8s.io/api/coordination/v1: every LeaseSpec field is a Go pointer. */
MSG(lease_spec, 0, S(1, "holderIdentity"), I32(2, "leaseDurationSeconds"),
    MT(3, "acquireTime"), MT(4, "renewTime"), I32(5, "leaseTransitions"),
    S(6, "strategy"), S(7, "preferredHolder"));

MSG(lease, 0, M(1, "metadata", object_meta), M(2, "spec", lease_spec));

/* k8s.io/api/rbac/v1 */
MSG(policy_rule, 0, SR(1, "verbs"), SR(2, "apiGroups"), SR(3, "resources"),
    SR(4, "resourceNames"), SR(5, "nonResourceURLs"));

MSG(aggregation_rule, 0, MR(1, "clusterRoleSelectors", label_selector));

MSG(role, 0, M(1, "metadata", object_meta), MR(2, "rules", policy_rule));

MSG(cluster_role, 0, M(1, "metadata", object_meta), MR(2, "rules", policy_rule),
    M(3, "aggregationRule", aggregation_rule));

MSG(subject, 0, S(1, "kind"), SE(2, "apiGroup"), S(3, "name"),
    SE(4, "namespace"));

MSG(role_ref, 0, S(1, "apiGroup"), S(2, "kind"), S(3, "name"));

/* RoleBinding and ClusterRoleBinding. */
MSG(role_binding, 0, M(1, "metadata", object_meta), MR(2, "subjects", subject),
    M(3, "roleRef", role_ref));

/* k8s.io/api/authorization/v1 */
/* FieldSelectorAttributes and LabelSelectorAttributes. */
MSG(selector_attributes, 0, SE(1, "rawSelector"),
    MR(2, "requirements", selector_requirement));

MSG(resource_attributes, 0, SE(1, "namespace"), SE(2, "verb"), SE(3, "group"),
    SE(4, "version"), SE(5, "resource"), SE(6, "subresource"), SE(7, "name"),
    M(8, "fieldSelector", selector_attributes),
    M(9, "labelSelector", selector_attributes));

MSG(non_resource_attributes, 0, SE(1, "path"), SE(2, "verb"));

/* ExtraValue is a []string in Go and in JSON. */
MSG(extra_value, PM_UNWRAP, SR(1, "items"));

MSG(extra_entry, 0, S(1, "key"), M(2, "value", extra_value));

MSG(self_subject_access_review_spec, 0,
    M(1, "resourceAttributes", resource_attributes),
    M(2, "nonResourceAttributes", non_resource_attributes));

MSG(subject_access_review_spec, 0,
    M(1, "resourceAttributes", resource_attributes),
    M(2, "nonResourceAttributes", non_resource_attributes), SE(3, "user"),
    SR(4, "groups"), MAP(5, "extra", extra_entry), SE(6, "uid"));

MSG(subject_access_review_status, 0, B(1, "allowed"), SE(2, "reason"),
    SE(3, "evaluationError"), BE(4, "denied"));

MSG(self_subject_access_review, 0, M(1, "metadata", object_meta),
    M(2, "spec", self_subject_access_review_spec),
    M(3, "status", subject_access_review_status));

/* SubjectAccessReview and LocalSubjectAccessReview. */
MSG(subject_access_review, 0, M(1, "metadata", object_meta),
    M(2, "spec", subject_access_review_spec),
    M(3, "status", subject_access_review_status));

MSG(self_subject_rules_review_spec, 0, SE(1, "namespace"));

MSG(resource_rule, 0, SR(1, "verbs"), SR(2, "apiGroups"), SR(3, "resources"),
    SR(4, "resourceNames"));

MSG(non_resource_rule, 0, SR(1, "verbs"), SR(2, "nonResourceURLs"));

MSG(subject_rules_review_status, 0, MR(1, "resourceRules", resource_rule),
    MR(2, "nonResourceRules", non_resource_rule), B(3, "incomplete"),
    SE(4, "evaluationError"));

MSG(self_subject_rules_review, 0, M(1, "metadata", object_meta),
    M(2, "spec", self_subject_rules_review_spec),
    M(3, "status", subject_rules_review_status));

/* k8s.io/api/autoscaling/v1 */
MSG(scale_spec, 0, I32E(1, "replicas"));

MSG(scale_status, 0, I32(1, "replicas"), SE(2, "selector"));

MSG(scale, 0, M(1, "metadata", object_meta), M(2, "spec", scale_spec),
    M(3, "status", scale_status));

/* The kinds a body may carry. */
static const struct {
	const char *api_version, *kind;
	const struct pmsg *msg;
} kinds[] = {
    {"v1", "Namespace", &namespace},
    {"coordination.k8s.io/v1", "Lease", &lease},
    {"rbac.authorization.k8s.io/v1", "Role", &role},
    {"rbac.authorization.k8s.io/v1", "ClusterRole", &cluster_role},
    {"rbac.authorization.k8s.io/v1", "RoleBinding", &role_binding},
    {"rbac.authorization.k8s.io/v1", "ClusterRoleBinding", &role_binding},
    {"authorization.k8s.io/v1", "SelfSubjectAccessReview",
     &self_subject_access_review},
    {"authorization.k8s.io/v1", "SubjectAccessReview", &subject_access_review},
    {"authorization.k8s.io/v1", "LocalSubjectAccessReview",
     &subject_access_review},
    {"authorization.k8s.io/v1", "SelfSubjectRulesReview",
     &self_subject_rules_review},
    {"autoscaling/v1", "Scale", &scale},
    {"meta.k8s.io/v1", "DeleteOptions", &delete_options},
};

/*
 * The message for apiVersion and kind, or NULL. DeleteOptions is
 * registered in every group version (metav1.AddToGroupVersion), so a
 * typed client sends it under its own group's apiVersion.
 */
static const struct pmsg *find_kind(const char *api_version, const char *kind)
{
	bool known_gv = false;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(kinds); i++) {
		if (strcmp(kinds[i].api_version, api_version))
			continue;
		known_gv = true;
		if (!strcmp(kinds[i].kind, kind))
			return kinds[i].msg;
	}
	if (known_gv && !strcmp(kind, "DeleteOptions"))
		return &delete_options;
	return NULL;
}

/* ---- errors ------------------------------------------------------------- */

struct ctx {
	const uint8_t *start; /* of the whole body, for byte offsets */
	char *err;
	size_t errlen;
	const char *path[PROTO_MAX_DEPTH + 1]; /* JSON names, outermost first */
	int npath;
	bool failed; /* fail() was called: err holds the reason */
};

/* Write "proto: <what> at byte N in a.b.c" to err; returns -1. */
static int fail(struct ctx *c, const uint8_t *at, const char *fmt, ...)
{
	size_t n;
	va_list ap;
	int i, k;

	c->failed = true;
	if (!c->err || !c->errlen)
		return -1;
	k = snprintf(c->err, c->errlen, "proto: ");
	n = (size_t)k < c->errlen ? (size_t)k : c->errlen - 1;
	va_start(ap, fmt);
	k = vsnprintf(c->err + n, c->errlen - n, fmt, ap);
	va_end(ap);
	n += k < 0 ? 0 : (size_t)k;
	if (at && n < c->errlen) {
		k = snprintf(c->err + n, c->errlen - n, " at byte %zu",
			     (size_t)(at - c->start));
		n += k < 0 ? 0 : (size_t)k;
	}
	for (i = 0; i < c->npath && n < c->errlen; i++) {
		k = snprintf(c->err + n, c->errlen - n, "%s%s",
			     i ? "." : " in ", c->path[i]);
		n += k < 0 ? 0 : (size_t)k;
	}
	return -1;
}

/* ---- the wire format ---------------------------------------------------- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

struct rd {
	const uint8_t *p, *end;
};

/* 0, or -1 if the input ends inside it, or -2 if it runs past 10 bytes. */
static int rd_varint(struct rd *r, uint64_t *v)
{
	uint64_t x = 0;
	unsigned shift;

	for (shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end)
			return -1;
		x |= (uint64_t)(*r->p & 0x7f) << shift;
		if (!(*r->p++ & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -2;
}

/* fail() for an rd_varint error rc. */
static int varint_fail(struct ctx *c, const uint8_t *at, int rc,
		       const char *what)
{
	if (rc == -2)
		return fail(c, at, "%s: varint longer than 10 bytes", what);
	return fail(c, at, "truncated %s", what);
}

/* One field's header and value: a varint in *v, or bytes in *val. */
struct pbfield {
	const uint8_t *at; /* the tag */
	uint64_t num;
	unsigned wt;
	uint64_t v;
	struct rd val;
};

/* Read the next field's tag from r. 0, or -1 with err written. */
static int rd_tag(struct ctx *c, struct rd *r, struct pbfield *f)
{
	uint64_t tag;
	int rc;

	f->at = r->p;
	rc = rd_varint(r, &tag);
	if (rc)
		return varint_fail(c, f->at, rc, "field tag");
	f->num = tag >> 3;
	f->wt = tag & 7;
	if (f->num == 0 || f->num > 0x1fffffff)
		return fail(c, f->at, "invalid field number %llu",
			    (unsigned long long)f->num);
	return 0;
}

/* Read the value of the field whose tag rd_tag read. */
static int rd_value(struct ctx *c, struct rd *r, struct pbfield *f)
{
	uint64_t len;
	int rc;

	switch (f->wt) {
	case WT_VARINT:
		rc = rd_varint(r, &f->v);
		return rc ? varint_fail(c, f->at, rc, "field") : 0;
	case WT_I64:
	case WT_I32:
		len = f->wt == WT_I64 ? 8 : 4;
		break;
	case WT_LEN:
		rc = rd_varint(r, &len);
		if (rc)
			return varint_fail(c, f->at, rc, "field");
		break;
	default:
		return fail(c, f->at, "unsupported wire type %u", f->wt);
	}
	if (len > (uint64_t)(r->end - r->p))
		return fail(c, f->at, "truncated field");
	f->val.p = r->p;
	f->val.end = r->p + len;
	r->p += len;
	return 0;
}

/* ---- values ------------------------------------------------------------- */

/* True if s[0..n) is UTF-8 as RFC 3629 has it, without NUL. */
static bool valid_utf8(const uint8_t *s, size_t n)
{
	size_t i = 0, k, len;
	uint32_t cp;

	while (i < n) {
		uint8_t b = s[i];

		if (b == 0)
			return false;
		if (b < 0x80) {
			i++;
			continue;
		}
		if (b >= 0xc2 && b <= 0xdf)
			len = 2, cp = b & 0x1f;
		else if (b >= 0xe0 && b <= 0xef)
			len = 3, cp = b & 0x0f;
		else if (b >= 0xf0 && b <= 0xf4)
			len = 4, cp = b & 0x07;
		else
			return false;
		if (n - i < len)
			return false;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

static json_t *string_value(struct ctx *c, const struct pbfield *f)
{
	size_t n = (size_t)(f->val.end - f->val.p);

	if (!valid_utf8(f->val.p, n)) {
		fail(c, f->at, "string is not UTF-8 or contains NUL");
		return NULL;
	}
	return json_stringn((const char *)f->val.p, n);
}

static int decode_msg(struct ctx *c, struct rd *r, const struct pmsg *m,
		      json_t *obj, int depth);

/* Seconds from 0001-01-01 to 9999-12-31, as Timestamp allows. */
#define TS_MIN (-62135596800LL)
#define TS_MAX 253402300799LL

/* Time and MicroTime as Go's metav1 MarshalJSON prints them. */
static json_t *time_value(struct ctx *c, const struct pbfield *f, bool micro,
			  int depth)
{
	json_t *ts = json_object(), *out = NULL;
	struct rd r = f->val;
	long long sec;
	long nsec;
	struct tm tm;
	time_t t;
	char buf[96];
	int n;

	/* Go leaves the zero time out of Timestamp: an empty message */
	if (r.p == r.end) {
		out = json_null();
		goto out;
	}
	if (!ts || decode_msg(c, &r, &timestamp, ts, depth + 1))
		goto out;
	sec = json_integer_value(json_object_get(ts, "seconds"));
	nsec = (long)json_integer_value(json_object_get(ts, "nanos"));
	if (sec < TS_MIN || sec > TS_MAX || nsec < 0 || nsec > 999999999) {
		fail(c, f->at, "time %llds %ldns out of range", sec, nsec);
		goto out;
	}
	/* Go's Time keeps only seconds from protobuf; the zero time is null */
	if (!micro)
		nsec = 0;
	if (sec == TS_MIN && nsec == 0) {
		out = json_null();
		goto out;
	}
	t = (time_t)sec;
	if (!gmtime_r(&t, &tm)) {
		fail(c, f->at, "time %llds out of range", sec);
		goto out;
	}
	n = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec);
	if (micro)
		snprintf(buf + n, sizeof(buf) - n, ".%06ldZ", nsec / 1000);
	else
		snprintf(buf + n, sizeof(buf) - n, "Z");
	out = json_string(buf);
out:
	json_decref(ts);
	return out;
}

/* A map entry: key = 1, value = 2; either may be absent. */
static int map_entry(struct ctx *c, const struct pfield *fd,
		     const struct pbfield *f, json_t *obj, int depth)
{
	json_t *e = json_object(), *map, *key, *val;
	struct rd r = f->val;
	int rc = -1;

	if (!e || decode_msg(c, &r, fd->msg, e, depth + 1))
		goto out;
	key = json_object_get(e, "key");
	val = json_object_get(e, "value");
	if (val)
		json_incref(val);
	else if (fd->msg->fields[1].kind == PK_STRING)
		val = json_string("");
	else
		val = json_array(); /* an entry without its ExtraValue */
	map = json_object_get(obj, fd->name);
	if (!map && json_object_set_new(obj, fd->name, json_object()) == 0)
		map = json_object_get(obj, fd->name);
	if (!map) {
		json_decref(val);
		val = NULL;
	}
	/* the _new setter takes val, even when it fails */
	if (!val ||
	    json_object_setn_new(map, key ? json_string_value(key) : "",
				 key ? json_string_length(key) : 0, val)) {
		fail(c, f->at, "out of memory");
		goto out;
	}
	rc = 0;
out:
	json_decref(e);
	return rc;
}

/* A nested message, merged into the one already there as protobuf does. */
static json_t *message_value(struct ctx *c, const struct pfield *fd,
			     const struct pbfield *f, json_t *obj, int depth)
{
	json_t *v = NULL, *inner;
	struct rd r = f->val;

	if (!(fd->flags & PF_REPEATED) && !(fd->msg->flags & PM_UNWRAP))
		v = json_incref(json_object_get(obj, fd->name));
	if (!v)
		v = json_object();
	if (!v) {
		fail(c, f->at, "out of memory");
		return NULL;
	}
	if (decode_msg(c, &r, fd->msg, v, depth + 1)) {
		json_decref(v);
		return NULL;
	}
	if (fd->msg->flags & PM_UNWRAP) {
		inner = json_object_get(v, fd->msg->fields[0].name);
		inner = inner ? json_incref(inner) : json_array();
		json_decref(v);
		v = inner;
	}
	return v;
}

static bool is_zero(const json_t *v)
{
	return (json_is_string(v) && !json_string_length(v)) ||
	       (json_is_integer(v) && !json_integer_value(v)) ||
	       json_is_false(v);
}

/* Decode one occurrence of field fd into obj. */
static int decode_field(struct ctx *c, const struct pfield *fd,
			const struct pbfield *f, json_t *obj, int depth)
{
	bool varint =
	    fd->kind == PK_INT64 || fd->kind == PK_INT32 || fd->kind == PK_BOOL;
	json_t *v = NULL, *arr;

	if (f->wt != (varint ? WT_VARINT : WT_LEN))
		return fail(c, f->at, "wire type %u for field %u, want %u",
			    f->wt, fd->num, varint ? WT_VARINT : WT_LEN);
	switch (fd->kind) {
	case PK_STRING:
		v = string_value(c, f);
		break;
	case PK_INT64:
		v = json_integer((json_int_t)(int64_t)f->v);
		break;
	case PK_INT32:
		v = json_integer((int32_t)(uint32_t)f->v);
		break;
	case PK_BOOL:
		v = json_boolean(f->v != 0);
		break;
	case PK_MESSAGE:
		v = message_value(c, fd, f, obj, depth);
		break;
	case PK_MAP:
		return map_entry(c, fd, f, obj, depth);
	case PK_TIME:
	case PK_MICROTIME:
		v = time_value(c, f, fd->kind == PK_MICROTIME, depth);
		break;
	}
	if (!v)
		return c->failed ? -1 : fail(c, f->at, "out of memory");
	if (fd->flags & PF_REPEATED) {
		arr = json_object_get(obj, fd->name);
		if (!arr) {
			arr = json_array();
			if (json_object_set_new(obj, fd->name, arr))
				arr = NULL;
		}
		if (!arr || json_array_append_new(arr, v))
			return fail(c, f->at, "out of memory");
		return 0;
	}
	if ((fd->flags & PF_OMITEMPTY) && is_zero(v)) {
		json_decref(v);
		json_object_del(obj, fd->name); /* the last occurrence wins */
		return 0;
	}
	if (json_object_set_new(obj, fd->name, v))
		return fail(c, f->at, "out of memory");
	return 0;
}

/* Decode the fields in r by table m into obj; unknown fields are skipped. */
static int decode_msg(struct ctx *c, struct rd *r, const struct pmsg *m,
		      json_t *obj, int depth)
{
	struct pbfield f;
	size_t i;

	if (depth > PROTO_MAX_DEPTH)
		return fail(c, r->p, "nested deeper than %d", PROTO_MAX_DEPTH);
	while (r->p < r->end) {
		c->npath = depth;
		if (rd_tag(c, r, &f))
			return -1;
		for (i = 0; i < m->nfields; i++)
			if (m->fields[i].num == f.num)
				break;
		if (i < m->nfields) {
			c->path[depth] = m->fields[i].name;
			c->npath = depth + 1;
		}
		if (rd_value(c, r, &f))
			return -1;
		if (i < m->nfields &&
		    decode_field(c, &m->fields[i], &f, obj, depth))
			return -1;
	}
	c->npath = depth;
	return 0;
}

/* ---- the envelope ------------------------------------------------------- */

/* runtime.TypeMeta (not meta/v1's, whose numbers are the other way round) */
MSG(type_meta, 0, S(1, "apiVersion"), S(2, "kind"));

/*
 * Read the runtime.Unknown in r: typeMeta into tm, raw into *raw (left
 * {NULL, NULL} when absent). Fields 3 and 4 may only be empty or, for the
 * content type, protobuf's: nothing else is ever sent.
 */
static int read_envelope(struct ctx *c, struct rd *r, json_t *tm,
			 struct rd *raw)
{
	static const size_t ctlen = sizeof(PROTO_CONTENT_TYPE) - 1;
	struct pbfield f;
	size_t n;

	while (r->p < r->end) {
		if (rd_tag(c, r, &f) || rd_value(c, r, &f))
			return -1;
		if (f.num > 4)
			continue;
		if (f.wt != WT_LEN)
			return fail(c, f.at,
				    "wire type %u for runtime.Unknown field "
				    "%u, want 2",
				    f.wt, (unsigned)f.num);
		n = (size_t)(f.val.end - f.val.p);
		if (f.num == 1) {
			c->path[0] = "typeMeta";
			if (decode_msg(c, &f.val, &type_meta, tm, 1))
				return -1;
		} else if (f.num == 2) {
			*raw = f.val;
		} else if (n && !(f.num == 4 && n == ctlen &&
				  !memcmp(f.val.p, PROTO_CONTENT_TYPE, n))) {
			return fail(
			    c, f.at, "unsupported %s \"%.*s\"",
			    f.num == 3 ? "contentEncoding" : "contentType",
			    (int)(n > 64 ? 64 : n), (const char *)f.val.p);
		}
	}
	c->npath = 0;
	return 0;
}

json_t *proto_decode(const void *data, size_t size, char *err, size_t errlen)
{
	struct ctx c = {.start = data, .err = err, .errlen = errlen};
	struct rd r = {data, (const uint8_t *)data + size}, raw = {NULL, NULL};
	json_t *out = NULL, *tm = NULL, *av, *kind;
	const struct pmsg *m;

	if (err && errlen)
		err[0] = '\0';
	if (size < PROTO_MAGIC_LEN ||
	    memcmp(data, PROTO_MAGIC, PROTO_MAGIC_LEN)) {
		fail(&c, NULL,
		     "bad magic: a Kubernetes protobuf body starts "
		     "with \"k8s\\0\"");
		return NULL;
	}
	r.p += PROTO_MAGIC_LEN;
	tm = json_object();
	if (!tm) {
		fail(&c, NULL, "out of memory");
		return NULL;
	}
	if (read_envelope(&c, &r, tm, &raw))
		goto out;
	av = json_object_get(tm, "apiVersion");
	kind = json_object_get(tm, "kind");
	if (!json_string_length(av) || !json_string_length(kind)) {
		fail(&c, NULL, "missing %s in typeMeta",
		     !json_string_length(av) ? "apiVersion" : "kind");
		goto out;
	}
	m = find_kind(json_string_value(av), json_string_value(kind));
	if (!m) {
		fail(&c, NULL, "unknown kind \"%s\" for apiVersion \"%s\"",
		     json_string_value(kind), json_string_value(av));
		goto out;
	}
	out = json_object();
	if (!out || json_object_set(out, "apiVersion", av) ||
	    json_object_set(out, "kind", kind))
		fail(&c, NULL, "out of memory");
	else if (raw.p)
		decode_msg(&c, &raw, m, out, 0);
	if (c.failed) {
		json_decref(out);
		out = NULL;
	}
out:
	json_decref(tm);
	return out;
}

bool proto_is_content_type(const char *content_type)
{
	size_t n = strlen(PROTO_CONTENT_TYPE);
	const char *p;

	if (!content_type)
		return false;
	while (*content_type == ' ' || *content_type == '\t')
		content_type++;
	if (strncasecmp(content_type, PROTO_CONTENT_TYPE, n))
		return false;
	for (p = content_type + n; *p == ' ' || *p == '\t'; p++)
		;
	return *p == '\0' || *p == ';';
}
