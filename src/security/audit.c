/*
 * audit.c -- the audit log: policy, events, the hash chain, verification.
 * The scheme and its limits are described in audit.h.
 *
 * Invariants of an open audit_log:
 *   - l->seq and l->hash are those of the last line fully written to the
 *     chain (in PATH, or in PATH.1 right after a rotation);
 *   - PATH ends with a newline (a failed write is cut off again);
 *   - the anchor names a record that was fdatasync'ed before it was
 *     written, so it is never ahead of what a crash keeps.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "security/audit.h"

#define HEX_LEN 64
#define ZERO_HASH                                                              \
	"0000000000000000000000000000000000000000000000000000000000000000"
#define HASH_PREFIX "\"" AUDIT_ANN_HASH "\":\""
#define HASH_SUFFIX "\"}}"
#define TAIL_LEN    (sizeof(HASH_PREFIX) - 1 + HEX_LEN + sizeof(HASH_SUFFIX) - 1)
#define ANCHOR_LEN  (20 + 1 + HEX_LEN + 1)
#define SYNC_NSEC   100000000LL
#define ANCHOR_EXT  ".anchor"

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const char *str(const char *s)
{
	return s ? s : "";
}

/* ---- names -------------------------------------------------------------- */

static const char *const level_names[] = {"None", "Metadata", "Request",
					  "RequestResponse"};
static const char *const stage_names[] = {"RequestReceived", "ResponseStarted",
					  "ResponseComplete", "Panic"};

const char *audit_level_name(int level)
{
	if (level < 0 || level > AUDIT_LEVEL_REQUEST_RESPONSE)
		return "None";
	return level_names[level];
}

int audit_level_parse(const char *s)
{
	int i;

	for (i = 0; s && i <= AUDIT_LEVEL_REQUEST_RESPONSE; i++)
		if (!strcmp(s, level_names[i]))
			return i;
	return -1;
}

const char *audit_stage_name(int stage)
{
	int i;

	for (i = 0; i < 4; i++)
		if (stage == 1 << i)
			return stage_names[i];
	return "";
}

int audit_stage_parse(const char *s)
{
	int i;

	for (i = 0; s && i < 4; i++)
		if (!strcmp(s, stage_names[i]))
			return 1 << i;
	return -1;
}

const char *audit_problem_name(audit_problem p)
{
	static const char *const names[] = {"intact",	 "altered",
					    "deleted",	 "reordered",
					    "malformed", "truncated"};

	return (unsigned)p < 6 ? names[p] : "unknown";
}

/* ---- policy ------------------------------------------------------------- */

/* Strings borrowed from the policy's parsed document. */
typedef struct strlist {
	const char **v;
	size_t n;
} strlist;

struct gres {
	const char *group;
	strlist resources, names;
};

struct rule {
	int level;
	strlist users, groups, verbs, namespaces, urls;
	struct gres *res;
	size_t nres;
	unsigned omit; /* the rule's omitStages | the policy's */
};

struct audit_policy {
	json_t *doc; /* owned; every string in rules points into it */
	struct rule *rules;
	size_t n;
	unsigned omit;
};

static bool has(const strlist *l, const char *s)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->v[i], str(s)))
			return true;
	return false;
}

/* Fail unless every key of obj is in known (NULL-terminated). */
static int known_keys(json_t *obj, const char *const *known, const char *at,
		      char *err, size_t errlen)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach(obj, k, v)
	{
		for (i = 0; known[i] && strcmp(known[i], k); i++)
			;
		if (!known[i]) {
			seterr(err, errlen, "%sunknown field \"%s\"", at, k);
			return -EINVAL;
		}
	}
	return 0;
}

static int get_strlist(json_t *obj, const char *key, strlist *out,
		       const char *at, char *err, size_t errlen)
{
	json_t *a = json_object_get(obj, key), *v;
	size_t i;

	out->v = NULL;
	out->n = 0;
	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a)) {
		seterr(err, errlen, "%s%s: must be a list of strings", at, key);
		return -EINVAL;
	}
	if (!json_array_size(a))
		return 0;
	out->v = calloc(json_array_size(a), sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v)) {
			seterr(err, errlen, "%s%s[%zu]: must be a string", at,
			       key, i);
			return -EINVAL;
		}
		out->v[out->n++] = json_string_value(v);
	}
	return 0;
}

static int get_stages(json_t *obj, unsigned *mask, const char *at, char *err,
		      size_t errlen)
{
	strlist l;
	size_t i;
	int rc = get_strlist(obj, "omitStages", &l, at, err, errlen), s;

	for (i = 0; !rc && i < l.n; i++) {
		s = audit_stage_parse(l.v[i]);
		if (s < 0) {
			seterr(err, errlen,
			       "%somitStages[%zu]: unknown stage \"%s\" "
			       "(RequestReceived, ResponseStarted, "
			       "ResponseComplete, Panic)",
			       at, i, l.v[i]);
			rc = -EINVAL;
		} else {
			*mask |= (unsigned)s;
		}
	}
	free(l.v);
	return rc;
}

static int parse_gres(json_t *o, struct gres *g, const char *at, char *err,
		      size_t errlen)
{
	static const char *const known[] = {"group", "resources",
					    "resourceNames", NULL};
	json_t *grp = json_object_get(o, "group");
	int rc;

	if (!json_is_object(o)) {
		seterr(err, errlen, "%s: must be an object", at);
		return -EINVAL;
	}
	if ((rc = known_keys(o, known, at, err, errlen)))
		return rc;
	if (grp && !json_is_string(grp)) {
		seterr(err, errlen, "%sgroup: must be a string", at);
		return -EINVAL;
	}
	g->group = grp ? json_string_value(grp) : "";
	if ((rc =
		 get_strlist(o, "resources", &g->resources, at, err, errlen)) ||
	    (rc = get_strlist(o, "resourceNames", &g->names, at, err, errlen)))
		return rc;
	if (g->names.n && !g->resources.n) {
		seterr(err, errlen,
		       "%sresourceNames: using resourceNames requires at least "
		       "one resource",
		       at);
		return -EINVAL;
	}
	return 0;
}

static int check_urls(const strlist *urls, const char *at, char *err,
		      size_t errlen)
{
	size_t i, len;

	for (i = 0; i < urls->n; i++) {
		const char *u = urls->v[i];

		len = strlen(u);
		if (!strcmp(u, "*"))
			continue;
		if (u[0] != '/') {
			seterr(err, errlen,
			       "%snonResourceURLs[%zu]: \"%s\": non-resource "
			       "URL rules must begin with a '/' character",
			       at, i, u);
			return -EINVAL;
		}
		if (memchr(u, '*', len - 1)) {
			seterr(err, errlen,
			       "%snonResourceURLs[%zu]: \"%s\": non-resource "
			       "URL wildcards '*' must be the final character "
			       "of the rule",
			       at, i, u);
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_rule(json_t *o, struct rule *r, size_t idx, char *err,
		      size_t errlen)
{
	static const char *const known[] = {"level",
					    "users",
					    "userGroups",
					    "verbs",
					    "resources",
					    "namespaces",
					    "nonResourceURLs",
					    "omitStages",
					    "omitManagedFields",
					    NULL};
	json_t *res = json_object_get(o, "resources"), *v;
	char at[64], at2[96];
	size_t i;
	int rc;

	snprintf(at, sizeof(at), "rules[%zu].", idx);
	if (!json_is_object(o)) {
		seterr(err, errlen, "rules[%zu]: must be an object", idx);
		return -EINVAL;
	}
	if ((rc = known_keys(o, known, at, err, errlen)))
		return rc;
	r->level =
	    audit_level_parse(json_string_value(json_object_get(o, "level")));
	if (r->level < 0) {
		seterr(err, errlen,
		       "%slevel: must be None, Metadata, Request or "
		       "RequestResponse",
		       at);
		return -EINVAL;
	}
	if ((rc = get_strlist(o, "users", &r->users, at, err, errlen)) ||
	    (rc = get_strlist(o, "userGroups", &r->groups, at, err, errlen)) ||
	    (rc = get_strlist(o, "verbs", &r->verbs, at, err, errlen)) ||
	    (rc = get_strlist(o, "namespaces", &r->namespaces, at, err,
			      errlen)) ||
	    (rc = get_strlist(o, "nonResourceURLs", &r->urls, at, err,
			      errlen)) ||
	    (rc = get_stages(o, &r->omit, at, err, errlen)) ||
	    (rc = check_urls(&r->urls, at, err, errlen)))
		return rc;
	if (res && !json_is_null(res) && !json_is_array(res)) {
		seterr(err, errlen, "%sresources: must be a list", at);
		return -EINVAL;
	}
	if (json_array_size(res)) {
		r->res = calloc(json_array_size(res), sizeof(*r->res));
		if (!r->res)
			return -ENOMEM;
	}
	json_array_foreach(res, i, v)
	{
		snprintf(at2, sizeof(at2), "%sresources[%zu].", at, i);
		rc = parse_gres(v, &r->res[r->nres++], at2, err, errlen);
		if (rc)
			return rc;
	}
	if (r->urls.n && (r->nres || r->namespaces.n)) {
		seterr(err, errlen,
		       "%snonResourceURLs: rules cannot apply to both regular "
		       "resources and non-resource URLs",
		       at);
		return -EINVAL;
	}
	return 0;
}

void audit_policy_free(audit_policy *p)
{
	size_t i, j;

	if (!p)
		return;
	for (i = 0; i < p->n; i++) {
		struct rule *r = &p->rules[i];

		free(r->users.v);
		free(r->groups.v);
		free(r->verbs.v);
		free(r->namespaces.v);
		free(r->urls.v);
		for (j = 0; j < r->nres; j++) {
			free(r->res[j].resources.v);
			free(r->res[j].names.v);
		}
		free(r->res);
	}
	free(p->rules);
	json_decref(p->doc);
	free(p);
}

static int parse_policy(audit_policy *p, char *err, size_t errlen)
{
	static const char *const known[] = {
	    "apiVersion",	 "kind", "metadata", "rules", "omitStages",
	    "omitManagedFields", NULL};
	json_t *kind = json_object_get(p->doc, "kind");
	json_t *ver = json_object_get(p->doc, "apiVersion");
	json_t *rules = json_object_get(p->doc, "rules"), *v;
	size_t i;
	int rc;

	if (!json_is_object(p->doc)) {
		seterr(err, errlen, "the policy must be a JSON object");
		return -EINVAL;
	}
	if ((rc = known_keys(p->doc, known, "", err, errlen)))
		return rc;
	if (kind && (!json_is_string(kind) ||
		     strcmp(json_string_value(kind), "Policy"))) {
		seterr(err, errlen, "kind: must be \"Policy\"");
		return -EINVAL;
	}
	if (ver && (!json_is_string(ver) ||
		    strcmp(json_string_value(ver), "audit.k8s.io/v1"))) {
		seterr(err, errlen, "apiVersion: must be \"audit.k8s.io/v1\"");
		return -EINVAL;
	}
	if (rules && !json_is_null(rules) && !json_is_array(rules)) {
		seterr(err, errlen, "rules: must be a list");
		return -EINVAL;
	}
	if ((rc = get_stages(p->doc, &p->omit, "", err, errlen)))
		return rc;
	if (json_array_size(rules)) {
		p->rules = calloc(json_array_size(rules), sizeof(*p->rules));
		if (!p->rules)
			return -ENOMEM;
	}
	json_array_foreach(rules, i, v)
	{
		rc = parse_rule(v, &p->rules[p->n++], i, err, errlen);
		if (rc)
			return rc;
		p->rules[i].omit |= p->omit;
	}
	return 0;
}

int audit_policy_parse(const char *text, size_t len, audit_policy **out,
		       char *err, size_t errlen)
{
	audit_policy *p;
	json_error_t je;
	int rc;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!p->doc) {
		seterr(err, errlen,
		       "the policy file must be JSON (YAML is not supported): "
		       "line %d: %s",
		       je.line > 0 ? je.line : 1, je.text);
		free(p);
		return -EINVAL;
	}
	rc = parse_policy(p, err, errlen);
	if (rc) {
		if (rc == -ENOMEM)
			seterr(err, errlen, "out of memory");
		audit_policy_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

/* Read a whole file (at most max bytes) into a new NUL-terminated buffer. */
static int slurp(const char *path, size_t max, char **out, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n = 0, cap = 0, r;
	int rc = 0;

	*out = NULL;
	if (!f)
		return -errno;
	do {
		if (n + 4096 + 1 > cap) {
			char *nb;

			cap = cap ? 2 * cap : 8192;
			nb = realloc(buf, cap);
			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nb;
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (n > max) {
			rc = -EFBIG;
			goto out;
		}
	} while (r > 0);
	if (ferror(f)) {
		rc = -EIO;
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
out:
	free(buf);
	fclose(f);
	return rc;
}

int audit_policy_load(const char *path, audit_policy **out, char *err,
		      size_t errlen)
{
	char *text, msg[400] = "";
	size_t len;
	int rc;

	*out = NULL;
	rc = slurp(path, 16u << 20, &text, &len);
	if (rc) {
		seterr(err, errlen, "audit policy %s: %s", path, strerror(-rc));
		return rc;
	}
	rc = audit_policy_parse(text, len, out, msg, sizeof(msg));
	if (rc)
		seterr(err, errlen, "audit policy %s: %s", path, msg);
	free(text);
	return rc;
}

static bool path_matches(const char *path, const char *spec)
{
	size_t n = strlen(spec);

	if (!strcmp(spec, "*") || !strcmp(spec, path))
		return true;
	while (n && spec[n - 1] == '*')
		n--;
	return n < strlen(spec) && !strncmp(path, spec, n);
}

static bool gres_matches(const struct gres *g, const audit_attrs *a)
{
	const char *res = str(a->resource), *sub = str(a->subresource);
	size_t i, rl = strlen(res);

	if (strcmp(g->group, str(a->group)))
		return false;
	if (!g->resources.n)
		return true;
	if (g->names.n && !has(&g->names, a->name))
		return false;
	for (i = 0; i < g->resources.n; i++) {
		const char *r = g->resources.v[i];
		size_t n = strlen(r);

		if (!strcmp(r, "*"))
			return true;
		if (*sub) {
			if (!strncmp(r, res, rl) && r[rl] == '/' &&
			    !strcmp(r + rl + 1, sub))
				return true;
			if (!strncmp(r, "*/", 2) && !strcmp(r + 2, sub))
				return true;
		} else if (!strcmp(r, res)) {
			return true;
		}
		if (n >= 2 && !strcmp(r + n - 2, "/*") && n - 2 == rl &&
		    !strncmp(r, res, rl))
			return true;
	}
	return false;
}

static bool rule_matches(const struct rule *r, const audit_attrs *a)
{
	const char *const *g;
	size_t i;
	bool ok;

	if (r->users.n && !has(&r->users, a->user))
		return false;
	if (r->groups.n) {
		ok = false;
		for (g = a->groups; g && *g && !ok; g++)
			ok = has(&r->groups, *g);
		if (!ok)
			return false;
	}
	if (r->verbs.n && !has(&r->verbs, a->verb))
		return false;
	if (r->namespaces.n || r->nres) {
		if (!a->resource_request)
			return false;
		if (r->namespaces.n && !has(&r->namespaces, a->namespace))
			return false;
		for (i = 0; i < r->nres; i++)
			if (gres_matches(&r->res[i], a))
				return true;
		return !r->nres;
	}
	if (r->urls.n) {
		if (a->resource_request)
			return false;
		for (i = 0; i < r->urls.n; i++)
			if (path_matches(str(a->path), r->urls.v[i]))
				return true;
		return false;
	}
	return true;
}

static const struct rule *policy_rule(const audit_policy *p,
				      const audit_attrs *a)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (rule_matches(&p->rules[i], a))
			return &p->rules[i];
	return NULL;
}

int audit_policy_level(const audit_policy *p, const audit_attrs *a)
{
	const struct rule *r;

	if (!p)
		return AUDIT_LEVEL_METADATA;
	r = policy_rule(p, a);
	return r ? r->level : AUDIT_LEVEL_NONE;
}

unsigned audit_policy_omit_stages(const audit_policy *p, const audit_attrs *a)
{
	const struct rule *r;

	if (!p)
		return 0;
	r = policy_rule(p, a);
	return r ? r->omit : p->omit;
}

/* ---- events ------------------------------------------------------------- */

void audit_new_id(char buf[37])
{
	unsigned char b[16];
	size_t i;
	char *o = buf;

	if (RAND_bytes(b, sizeof(b)) != 1) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		for (i = 0; i < sizeof(b); i++)
			b[i] = (unsigned char)((ts.tv_nsec >> (i % 4 * 8)) ^
					       (ts.tv_sec >> (i % 8)) ^
					       (unsigned)random());
	}
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	for (i = 0; i < sizeof(b); i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*o++ = '-';
		o += sprintf(o, "%02x", b[i]);
	}
	*o = '\0';
}

/* metav1.MicroTime: RFC 3339 in UTC with microseconds. */
static json_t *microtime(const struct timespec *ts)
{
	char buf[64];
	struct tm tm;
	size_t n;

	gmtime_r(&ts->tv_sec, &tm);
	n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%06ldZ", ts->tv_nsec / 1000);
	return json_string(buf);
}

/* Set key to a new string when s is set and non-empty (Go's omitempty). */
static int set_str(json_t *o, const char *key, const char *s)
{
	return s && *s ? json_object_set_new(o, key, json_string(s)) : 0;
}

static json_t *strarray(const char *const *v)
{
	json_t *a = json_array();

	for (; a && v && *v; v++)
		if (json_array_append_new(a, json_string(*v))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static bool secret_name(const char *k)
{
	static const char *const exact[] = {"token", "key", "password",
					    "secret"};
	static const char *const suffix[] = {"token", "password", "secret",
					     "privatekey"};
	size_t i, n = strlen(k), m;

	for (i = 0; i < 4; i++)
		if (!strcasecmp(k, exact[i]))
			return true;
	for (i = 0; i < 4; i++) {
		m = strlen(suffix[i]);
		if (n >= m && !strcasecmp(k + n - m, suffix[i]))
			return true;
	}
	return false;
}

/* Redact below root. Iterative over an explicit stack: no recursion on
 * untrusted depth. -ENOMEM when it could not finish. */
static int redact_tree(json_t *root)
{
	json_t **stack = NULL, *v, *e;
	size_t n = 0, cap = 0, i;
	const char *k;
	void *tmp;

	for (v = root; v; v = n ? stack[--n] : NULL) {
		size_t want = n + (json_is_object(v) ? json_object_size(v)
						     : json_array_size(v));

		if (want > cap) {
			cap = want * 2 + 16;
			tmp = realloc(stack, cap * sizeof(*stack));
			if (!tmp) {
				free(stack);
				return -ENOMEM;
			}
			stack = tmp;
		}
		if (json_is_object(v)) {
			json_object_foreach(v, k, e)
			{
				if (json_is_string(e) && secret_name(k))
					json_string_set(e, "[REDACTED]");
				else if (json_is_object(e) || json_is_array(e))
					stack[n++] = e;
			}
		} else if (json_is_array(v)) {
			json_array_foreach(v, i, e)
			{
				if (json_is_object(e) || json_is_array(e))
					stack[n++] = e;
			}
		}
	}
	free(stack);
	return 0;
}

void audit_redact(json_t *obj)
{
	if (!json_is_object(obj))
		return;
	/* fail closed: what could not be searched is not recorded */
	if (redact_tree(json_object_get(obj, "spec")))
		json_object_set_new(obj, "spec", json_string("[REDACTED]"));
	if (redact_tree(json_object_get(obj, "status")))
		json_object_set_new(obj, "status", json_string("[REDACTED]"));
}

static json_t *redacted_copy(const json_t *o)
{
	json_t *c = json_deep_copy(o);

	audit_redact(c);
	return c;
}

/* metav1.Status, as the apiserver fills responseStatus. */
static int add_status(json_t *e, const audit_request *r)
{
	json_t *st;
	int rc = 0;

	if (!r->code)
		return 0;
	st = json_object();
	rc |= json_object_set_new(e, "responseStatus", st);
	rc |= json_object_set_new(st, "metadata", json_object());
	rc |= set_str(st, "status", r->status);
	rc |= set_str(st, "message", r->message);
	rc |= set_str(st, "reason", r->reason);
	rc |= json_object_set_new(st, "code", json_integer(r->code));
	return rc;
}

/* objectRef, responseStatus, requestObject, responseObject: the objects
 * only for resource requests. */
static int event_objects(json_t *e, const audit_request *r, int level,
			 int stage)
{
	const audit_attrs *a = r->attrs;
	json_t *ref;
	int rc = 0;

	if (!a->resource_request)
		return add_status(e, r);
	ref = json_object();
	rc |= json_object_set_new(e, "objectRef", ref);
	rc |= set_str(ref, "resource", a->resource);
	rc |= set_str(ref, "namespace", a->namespace);
	rc |= set_str(ref, "name", a->name);
	rc |= set_str(ref, "apiGroup", a->group);
	rc |= set_str(ref, "apiVersion", r->api_version);
	rc |= set_str(ref, "subresource", a->subresource);
	rc |= add_status(e, r);
	if (level >= AUDIT_LEVEL_REQUEST && r->request_object)
		rc |= json_object_set_new(e, "requestObject",
					  redacted_copy(r->request_object));
	if (level >= AUDIT_LEVEL_REQUEST_RESPONSE && r->response_object &&
	    stage == AUDIT_STAGE_RESPONSE_COMPLETE)
		rc |= json_object_set_new(e, "responseObject",
					  redacted_copy(r->response_object));
	return rc;
}

json_t *audit_event_new(const audit_request *r, int level, int stage,
			const struct timespec *stage_time)
{
	static const audit_attrs none;
	audit_request rr = *r;
	json_t *e, *u, *ann;
	struct timespec now;
	char id[37];
	int rc = 0;

	if (level <= AUDIT_LEVEL_NONE || level > AUDIT_LEVEL_REQUEST_RESPONSE ||
	    !*audit_stage_name(stage))
		return NULL;
	if (!rr.attrs)
		rr.attrs = &none;
	if (!stage_time) {
		clock_gettime(CLOCK_REALTIME, &now);
		stage_time = &now;
	}
	if (!rr.received.tv_sec && !rr.received.tv_nsec)
		rr.received = *stage_time;
	if (!rr.audit_id) {
		audit_new_id(id);
		rr.audit_id = id;
	}
	e = json_object();
	u = json_object();
	ann = json_object();
	if (!e || !u || !ann)
		goto fail;
	rc |= json_object_set_new(e, "kind", json_string("Event"));
	rc |= json_object_set_new(e, "apiVersion",
				  json_string("audit.k8s.io/v1"));
	rc |= json_object_set_new(e, "level",
				  json_string(audit_level_name(level)));
	rc |= json_object_set_new(e, "auditID", json_string(rr.audit_id));
	rc |= json_object_set_new(e, "stage",
				  json_string(audit_stage_name(stage)));
	rc |= json_object_set_new(e, "requestURI",
				  json_string(str(rr.request_uri)));
	rc |= json_object_set_new(e, "verb", json_string(str(rr.attrs->verb)));
	rc |= set_str(u, "username", rr.attrs->user);
	if (rr.attrs->groups && *rr.attrs->groups)
		rc |= json_object_set_new(u, "groups",
					  strarray(rr.attrs->groups));
	rc |= json_object_set(e, "user", u);
	if (rr.source_ips && *rr.source_ips)
		rc |= json_object_set_new(e, "sourceIPs",
					  strarray(rr.source_ips));
	rc |= set_str(e, "userAgent", rr.user_agent);
	rc |= event_objects(e, &rr, level, stage);
	rc |= json_object_set_new(e, "requestReceivedTimestamp",
				  microtime(&rr.received));
	rc |= json_object_set_new(e, "stageTimestamp", microtime(stage_time));
	rc |= set_str(ann, "authorization.k8s.io/decision", rr.decision);
	rc |= set_str(ann, "authorization.k8s.io/reason", rr.authz_reason);
	if (json_object_size(ann))
		rc |= json_object_set(e, "annotations", ann);
	if (rc)
		goto fail;
	json_decref(u);
	json_decref(ann);
	return e;
fail:
	json_decref(e);
	json_decref(u);
	json_decref(ann);
	return NULL;
}

/* ---- records ------------------------------------------------------------ */

struct rec {
	uint64_t seq;
	char prev[HEX_LEN + 1];
	char hash[HEX_LEN + 1];
};

static bool is_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool parse_seq(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s || *s == '0' || strlen(s) > 20)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return true;
}

/* The last member of object o, or NULL. jansson keeps insertion order. */
static const char *last_key(json_t *o, json_t **val)
{
	const char *k = NULL;
	void *it;

	for (it = json_object_iter(o); it; it = json_object_iter_next(o, it)) {
		k = json_object_iter_key(it);
		*val = json_object_iter_value(it);
	}
	return k;
}

/* Whether line[0..len) ends with the hash member and two braces. */
static bool has_tail(const char *line, size_t len)
{
	const char *tail;

	if (len < TAIL_LEN + 2)
		return false;
	tail = line + len - TAIL_LEN;
	return !memcmp(tail, HASH_PREFIX, sizeof(HASH_PREFIX) - 1) &&
	       !memcmp(line + len - 3, HASH_SUFFIX, 3) &&
	       is_hex(tail + sizeof(HASH_PREFIX) - 1, HEX_LEN);
}

/*
 * Check that line[0..len) (no newline) is a record line: ends with the hash
 * member, is a JSON object whose last member is "annotations" whose last
 * member is the hash, with a valid seq and prev. Fills r, or says why not.
 */
static int rec_parse(const char *line, size_t len, struct rec *r, char *why,
		     size_t whylen)
{
	const char *tail, *k;
	json_t *j = NULL, *ann = NULL, *v = NULL;
	json_error_t je;
	int rc = -1;

	if (!has_tail(line, len)) {
		seterr(why, whylen,
		       "does not end with the \"" AUDIT_ANN_HASH
		       "\" annotation");
		return -1;
	}
	tail = line + len - TAIL_LEN;
	memcpy(r->hash, tail + sizeof(HASH_PREFIX) - 1, HEX_LEN);
	r->hash[HEX_LEN] = '\0';
	j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		seterr(why, whylen, "not JSON: column %d: %s", je.column,
		       je.text);
		return -1;
	}
	k = last_key(j, &ann);
	if (!json_is_object(j) || !k || strcmp(k, "annotations") ||
	    !json_is_object(ann)) {
		seterr(why, whylen, "\"annotations\" is not the last member");
		goto out;
	}
	k = last_key(ann, &v);
	if (!k || strcmp(k, AUDIT_ANN_HASH) ||
	    strcmp(str(json_string_value(v)), r->hash)) {
		seterr(why, whylen, "the hash is not the last annotation");
		goto out;
	}
	if (!parse_seq(json_string_value(json_object_get(ann, AUDIT_ANN_SEQ)),
		       &r->seq)) {
		seterr(why, whylen, "no valid \"" AUDIT_ANN_SEQ "\"");
		goto out;
	}
	v = json_object_get(ann, AUDIT_ANN_PREV);
	if (!json_is_string(v) || json_string_length(v) != HEX_LEN ||
	    !is_hex(json_string_value(v), HEX_LEN)) {
		seterr(why, whylen, "no valid \"" AUDIT_ANN_PREV "\"");
		goto out;
	}
	memcpy(r->prev, json_string_value(v), HEX_LEN + 1);
	rc = 0;
out:
	json_decref(j);
	return rc;
}

static void to_hex(const unsigned char *d, char *out)
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 32; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[HEX_LEN] = '\0';
}

/*
 * The hash of line[0..len) after prev, with the hash digits zeroed while
 * hashing (line is restored). out gets 65 bytes.
 */
static int rec_hash(EVP_MD_CTX *md, const char *prev, char *line, size_t len,
		    char *out)
{
	char *digits = line + len - TAIL_LEN + sizeof(HASH_PREFIX) - 1;
	char saved[HEX_LEN];
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl;
	int ok;

	memcpy(saved, digits, HEX_LEN);
	memset(digits, '0', HEX_LEN);
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
	     EVP_DigestUpdate(md, prev, HEX_LEN) &&
	     EVP_DigestUpdate(md, line, len) && EVP_DigestFinal_ex(md, d, &dl);
	memcpy(digits, saved, HEX_LEN);
	if (!ok)
		return -EIO;
	to_hex(d, out);
	return 0;
}

/* Parse an anchor file's text. */
static bool anchor_parse(const char *buf, size_t n, struct rec *a)
{
	size_t i;

	if (n != ANCHOR_LEN || buf[20] != ' ' || buf[ANCHOR_LEN - 1] != '\n' ||
	    !is_hex(buf + 21, HEX_LEN))
		return false;
	a->seq = 0;
	for (i = 0; i < 20; i++) {
		if (buf[i] < '0' || buf[i] > '9' ||
		    a->seq > (UINT64_MAX - 9) / 10)
			return false;
		a->seq = a->seq * 10 + (uint64_t)(buf[i] - '0');
	}
	memcpy(a->hash, buf + 21, HEX_LEN);
	a->hash[HEX_LEN] = '\0';
	return true;
}

/* Read path's anchor. 0 and *found = false when absent or empty. */
static int anchor_read(const char *path, struct rec *a, bool *found)
{
	char *buf;
	size_t n;
	int rc;

	*found = false;
	rc = slurp(path, 4096, &buf, &n);
	if (rc == -ENOENT)
		return 0;
	if (rc == -EFBIG)
		return -EINVAL;
	if (rc)
		return rc;
	if (n) {
		*found = true;
		if (!anchor_parse(buf, n, a))
			rc = -EINVAL;
	}
	free(buf);
	return rc;
}

static char *anchor_path(const char *path)
{
	char *p;

	if (asprintf(&p, "%s" ANCHOR_EXT, path) < 0)
		return NULL;
	return p;
}

/* ---- writing ------------------------------------------------------------ */

struct audit_log {
	char *path, *apath;
	int fd, afd;
	size_t size, max_bytes;
	int max_backups;
	uint64_t seq;
	char hash[HEX_LEN + 1];
	bool dirty;
	struct timespec last_sync; /* CLOCK_MONOTONIC */
	EVP_MD_CTX *md;
	char *buf; /* the line being written */
	size_t len, cap;
};

static int write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void fsync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd;

	if (!copy)
		return;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(copy);
}

/* Where the line that ends at end (the offset of its newline) starts; a
 * negative errno on a read error. Stops looking past AUDIT_MAX_LINE. */
static off_t line_start(int fd, off_t end)
{
	char chunk[4096];
	off_t pos = end, n, i;
	ssize_t r;

	while (pos > 0 && end - pos <= (off_t)AUDIT_MAX_LINE) {
		n = pos < (off_t)sizeof(chunk) ? pos : (off_t)sizeof(chunk);
		r = pread(fd, chunk, (size_t)n, pos - n);
		if (r != (ssize_t)n)
			return r < 0 ? -errno : -EIO;
		for (i = n; i > 0; i--)
			if (chunk[i - 1] == '\n')
				return pos - n + i;
		pos -= n;
	}
	return pos;
}

/*
 * The last record of path, checked: *found false when the file is missing
 * or empty; an error (with the reason) when its last line is cut short or
 * is not a good record.
 */
static int tail_of(const char *path, EVP_MD_CTX *md, struct rec *r, bool *found,
		   char *err, size_t errlen)
{
	char why[300], hash[HEX_LEN + 1], *line = NULL, c;
	off_t end, start;
	size_t len;
	struct stat st;
	int fd, rc = 0;

	*found = false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		rc = -errno;
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) || st.st_size == 0)
		goto out;
	end = st.st_size - 1;
	if (pread(fd, &c, 1, end) != 1 || c != '\n') {
		seterr(err, errlen,
		       "%s: the last line is cut short (no newline at the "
		       "end): the file was truncated or a write was torn",
		       path);
		rc = -EBADMSG;
		goto out;
	}
	start = line_start(fd, end);
	if (start < 0) {
		rc = (int)start;
		seterr(err, errlen, "%s: %s", path, strerror(-rc));
		goto out;
	}
	len = (size_t)(end - start);
	line = malloc(len + 1);
	if (!line) {
		rc = -ENOMEM;
		goto out;
	}
	if (len > AUDIT_MAX_LINE ||
	    pread(fd, line, len, start) != (ssize_t)len) {
		seterr(err, errlen, "%s: cannot read the last line", path);
		rc = -EBADMSG;
		goto out;
	}
	if (rec_parse(line, len, r, why, sizeof(why))) {
		seterr(err, errlen,
		       "%s: the last line is not an audit record: %s", path,
		       why);
		rc = -EBADMSG;
		goto out;
	}
	if ((rc = rec_hash(md, r->prev, line, len, hash)))
		goto out;
	if (strcmp(hash, r->hash)) {
		seterr(err, errlen,
		       "%s: the last record (seq %" PRIu64 ") was altered: "
		       "its hash does not match its content",
		       path, r->seq);
		rc = -EBADMSG;
		goto out;
	}
	*found = true;
out:
	free(line);
	close(fd);
	return rc;
}

/* Find where the chain stands: the tail of path, else of path.1. */
static int chain_tail(audit_log *l, char *err, size_t errlen)
{
	struct rec r, a;
	bool found, anchored;
	char *p1 = NULL;
	int rc;

	rc = tail_of(l->path, l->md, &r, &found, err, errlen);
	if (!rc && !found) {
		if (asprintf(&p1, "%s.1", l->path) < 0)
			return -ENOMEM;
		rc = tail_of(p1, l->md, &r, &found, err, errlen);
		free(p1);
	}
	if (rc)
		return rc;
	l->seq = found ? r.seq : 0;
	memcpy(l->hash, found ? r.hash : ZERO_HASH, HEX_LEN + 1);
	rc = anchor_read(l->apath, &a, &anchored);
	if (rc) {
		seterr(err, errlen, "%s: %s", l->apath,
		       rc == -EINVAL ? "damaged anchor file" : strerror(-rc));
		return rc == -EINVAL ? -EBADMSG : rc;
	}
	if (anchored && l->seq < a.seq) {
		seterr(err, errlen,
		       "%s ends at seq %" PRIu64 " but its anchor %s names "
		       "seq %" PRIu64 ": records were deleted from the end",
		       l->path, l->seq, l->apath, a.seq);
		return -EBADMSG;
	}
	if (anchored && l->seq == a.seq && strcmp(l->hash, a.hash)) {
		seterr(err, errlen,
		       "%s: the last record (seq %" PRIu64 ") has another "
		       "hash than its anchor %s names: the log was rewritten",
		       l->path, l->seq, l->apath);
		return -EBADMSG;
	}
	return 0;
}

audit_log *audit_open(const char *path, size_t max_bytes, int max_backups,
		      char *err, size_t errlen)
{
	audit_log *l = calloc(1, sizeof(*l));
	struct stat st;
	int rc = -ENOMEM;

	if (!l)
		goto fail;
	l->fd = l->afd = -1;
	l->max_bytes = max_bytes;
	l->max_backups = max_backups < 0 ? 0 : max_backups;
	l->path = strdup(path);
	l->apath = anchor_path(path);
	l->md = EVP_MD_CTX_new();
	if (!l->path || !l->apath || !l->md)
		goto fail;
	rc = chain_tail(l, err, errlen);
	if (rc) {
		if (rc == -EBADMSG && err && errlen > strlen(err) + 1)
			strncat(err,
				"; refusing to continue the chain (check with "
				"`signalbox audit verify`; move the log and "
				"its .anchor aside to start a new chain)",
				errlen - strlen(err) - 1);
		goto fail;
	}
	l->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	l->afd = open(l->apath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (l->fd < 0 || l->afd < 0 || fstat(l->fd, &st)) {
		rc = -errno;
		seterr(err, errlen, "%s: %s", l->fd < 0 ? path : l->apath,
		       strerror(errno));
		goto fail;
	}
	fchmod(l->fd, 0600);
	fchmod(l->afd, 0600);
	l->size = (size_t)st.st_size;
	fsync_dir(path);
	clock_gettime(CLOCK_MONOTONIC, &l->last_sync);
	return l;
fail:
	if (rc == -ENOMEM)
		seterr(err, errlen, "out of memory");
	audit_close(l);
	errno = -rc;
	return NULL;
}

uint64_t audit_last_seq(const audit_log *l)
{
	return l->seq;
}

int audit_flush(audit_log *l)
{
	char a[ANCHOR_LEN + 1];

	if (!l->dirty)
		return 0;
	if (l->fd >= 0 && fdatasync(l->fd))
		return -errno;
	clock_gettime(CLOCK_MONOTONIC, &l->last_sync);
	l->dirty = false;
	snprintf(a, sizeof(a), "%020" PRIu64 " %s\n", l->seq, l->hash);
	if (pwrite(l->afd, a, ANCHOR_LEN, 0) != ANCHOR_LEN || fdatasync(l->afd))
		return -EIO;
	return 0;
}

/* Open PATH again after a rotation failed half-way. */
static int reopen(audit_log *l)
{
	struct stat st;

	l->fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (l->fd < 0)
		return -errno;
	if (fstat(l->fd, &st))
		return -errno;
	l->size = (size_t)st.st_size;
	return 0;
}

/* PATH.N-1 -> PATH.N, ..., PATH -> PATH.1, then a new PATH. */
static int rotate(audit_log *l)
{
	char *from = NULL, *to = NULL;
	int i, rc = audit_flush(l);

	if (rc)
		return rc;
	close(l->fd);
	l->fd = -1;
	for (i = l->max_backups; i >= 1 && !rc; i--) {
		if (i == 1)
			from = strdup(l->path);
		else if (asprintf(&from, "%s.%d", l->path, i - 1) < 0)
			from = NULL;
		if (asprintf(&to, "%s.%d", l->path, i) < 0)
			to = NULL;
		if (!from || !to)
			rc = -ENOMEM;
		else if (rename(from, to) && errno != ENOENT)
			rc = -errno;
		free(from);
		free(to);
		from = to = NULL;
	}
	if (!rc && !l->max_backups && unlink(l->path) && errno != ENOENT)
		rc = -errno;
	if (rc || (rc = reopen(l)))
		return rc;
	fsync_dir(l->path);
	return 0;
}

static int buf_add(const char *p, size_t n, void *arg)
{
	audit_log *l = arg;

	if (l->len + n + 2 > l->cap) {
		size_t cap = (l->len + n + 2) * 2;
		char *b = realloc(l->buf, cap);

		if (!b)
			return -1;
		l->buf = b;
		l->cap = cap;
	}
	memcpy(l->buf + l->len, p, n);
	l->len += n;
	return 0;
}

/* Give event a fresh annotations member, last, ending with the chain keys.
 * *old gets the previous one (a reference) to put back on failure. */
static int chain_annotations(audit_log *l, json_t *event, json_t **old)
{
	json_t *ann = json_object(), *v;
	char seq[24];
	const char *k;
	int rc = 0;

	*old = json_incref(json_object_get(event, "annotations"));
	if (!ann)
		return -ENOMEM;
	if (json_is_object(*old)) {
		json_object_foreach(*old, k, v)
		{
			if (strcmp(k, AUDIT_ANN_SEQ) &&
			    strcmp(k, AUDIT_ANN_PREV) &&
			    strcmp(k, AUDIT_ANN_HASH))
				rc |= json_object_set(ann, k, v);
		}
	}
	snprintf(seq, sizeof(seq), "%" PRIu64, l->seq + 1);
	rc |= json_object_set_new(ann, AUDIT_ANN_SEQ, json_string(seq));
	rc |= json_object_set_new(ann, AUDIT_ANN_PREV, json_string(l->hash));
	rc |= json_object_set_new(ann, AUDIT_ANN_HASH, json_string(ZERO_HASH));
	json_object_del(event, "annotations");
	rc |= json_object_set_new(event, "annotations", ann);
	return rc ? -ENOMEM : 0;
}

static void restore_annotations(json_t *event, json_t *old)
{
	json_object_del(event, "annotations");
	if (old)
		json_object_set_new(event, "annotations", old);
}

static long long elapsed_ns(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) * 1000000000LL +
	       (now.tv_nsec - since->tv_nsec);
}

int audit_write(audit_log *l, json_t *event)
{
	char hash[HEX_LEN + 1];
	json_t *old = NULL;
	int rc;

	if (!json_is_object(event))
		return -EINVAL;
	if (l->seq == UINT64_MAX)
		return -EOVERFLOW;
	rc = chain_annotations(l, event, &old);
	l->len = 0;
	if (!rc && json_dump_callback(event, buf_add, l, JSON_COMPACT))
		rc = -ENOMEM;
	if (!rc && l->len + 1 > AUDIT_MAX_LINE)
		rc = -EMSGSIZE;
	if (rc)
		goto fail;
	if ((rc = rec_hash(l->md, l->hash, l->buf, l->len, hash)))
		goto fail;
	memcpy(l->buf + l->len - TAIL_LEN + sizeof(HASH_PREFIX) - 1, hash,
	       HEX_LEN);
	l->buf[l->len++] = '\n';
	if (l->fd < 0)
		rc = reopen(l);
	else if (l->max_bytes && l->size && l->size + l->len > l->max_bytes)
		rc = rotate(l);
	if (rc)
		goto fail;
	rc = write_all(l->fd, l->buf, l->len);
	if (rc) {
		if (ftruncate(l->fd, (off_t)l->size))
			rc = -EIO;
		goto fail;
	}
	l->size += l->len;
	l->seq++;
	memcpy(l->hash, hash, HEX_LEN + 1);
	l->dirty = true;
	json_object_set_new(json_object_get(event, "annotations"),
			    AUDIT_ANN_HASH, json_string(hash));
	json_decref(old);
	if (elapsed_ns(&l->last_sync) >= SYNC_NSEC)
		return audit_flush(l);
	return 0;
fail:
	restore_annotations(event, old);
	return rc;
}

int audit_close(audit_log *l)
{
	int rc;

	if (!l)
		return 0;
	rc = l->afd >= 0 ? audit_flush(l) : 0;
	if (l->fd >= 0)
		close(l->fd);
	if (l->afd >= 0)
		close(l->afd);
	EVP_MD_CTX_free(l->md);
	free(l->buf);
	free(l->path);
	free(l->apath);
	free(l);
	return rc;
}

/* ---- verification ------------------------------------------------------- */

struct verifier {
	audit_verify_result *res;
	const char *const *paths;
	EVP_MD_CTX *md;
	bool have;		/* a record has been accepted */
	uint64_t next;		/* the seq expected next */
	char hash[HEX_LEN + 1]; /* the last accepted record's hash */
	struct rec anchor;
	bool anchor_seen; /* the anchor's seq was met and matched */
	/* after a gap: look for the missing seqs [lo, hi] further on */
	bool looking;
	uint64_t lo, hi;
};

static int problem(struct verifier *v, audit_problem p, size_t file,
		   unsigned long line, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int problem(struct verifier *v, audit_problem p, size_t file,
		   unsigned long line, uint64_t seq, const char *fmt, ...)
{
	va_list ap;

	v->res->problem = p;
	v->res->file = file;
	v->res->line = line;
	v->res->seq = seq;
	va_start(ap, fmt);
	vsnprintf(v->res->what, sizeof(v->res->what), fmt, ap);
	va_end(ap);
	return 1;
}

/* Check one line; 1 when it is the first problem. */
static int check_line(struct verifier *v, size_t file, unsigned long ln,
		      char *line, size_t len, bool eof)
{
	audit_verify_result *res = v->res;
	char why[300], hash[HEX_LEN + 1];
	struct rec r;

	if (len && line[len - 1] == '\n')
		len--;
	else if (eof)
		return problem(v, AUDIT_TRUNCATED, file, ln, 0,
			       "the last line is cut short (no newline): the "
			       "file was truncated or a write was torn");
	if (rec_parse(line, len, &r, why, sizeof(why)))
		return problem(v, AUDIT_MALFORMED, file, ln, 0,
			       "not an audit record: %s", why);
	if (r.seq == 1 && strcmp(r.prev, ZERO_HASH))
		return problem(v, AUDIT_MALFORMED, file, ln, r.seq,
			       "not an audit record: seq 1 with a prev hash");
	if (rec_hash(v->md, r.prev, line, len, hash))
		return problem(v, AUDIT_MALFORMED, file, ln, r.seq,
			       "cannot hash");
	if (strcmp(hash, r.hash))
		return problem(v, AUDIT_ALTERED, file, ln, r.seq,
			       "altered: the record's hash does not match its "
			       "content");
	if (v->have && r.seq < v->next)
		return problem(v, AUDIT_REORDERED, file, ln, r.seq,
			       "reordered: seq %" PRIu64 " comes after seq "
			       "%" PRIu64,
			       r.seq, v->next - 1);
	if (v->have && r.seq > v->next) {
		v->looking = true;
		v->lo = v->next;
		v->hi = r.seq - 1;
		return problem(v, AUDIT_DELETED, file, ln, r.seq,
			       "deleted: seq %" PRIu64 " follows seq %" PRIu64
			       ": records %" PRIu64 "..%" PRIu64 " are missing",
			       r.seq, v->next - 1, v->next, r.seq - 1);
	}
	if (v->have && strcmp(r.prev, v->hash))
		return problem(v, AUDIT_DELETED, file, ln, r.seq,
			       "deleted: prev is not the hash of the record "
			       "before (seq %" PRIu64
			       " was replaced or records "
			       "were removed)",
			       v->next - 1);
	if (res->anchored && r.seq == v->anchor.seq) {
		if (strcmp(r.hash, v->anchor.hash))
			return problem(v, AUDIT_ALTERED, file, ln, r.seq,
				       "altered: the record's hash differs "
				       "from the anchor's: the log was "
				       "rewritten up to here");
		v->anchor_seen = true;
	}
	if (!v->have)
		res->first_seq = r.seq;
	v->have = true;
	v->next = r.seq + 1;
	memcpy(v->hash, r.hash, HEX_LEN + 1);
	res->records++;
	res->last_seq = r.seq;
	memcpy(res->last_hash, r.hash, HEX_LEN + 1);
	return 0;
}

/* After a gap, a missing seq further on means the records were moved. */
static int look_line(struct verifier *v, size_t file, unsigned long ln,
		     char *line, size_t len)
{
	char why[300];
	struct rec r;

	if (len && line[len - 1] == '\n')
		len--;
	if (rec_parse(line, len, &r, why, sizeof(why)) || r.seq < v->lo ||
	    r.seq > v->hi)
		return 0;
	v->res->problem = AUDIT_REORDERED;
	snprintf(v->res->what, sizeof(v->res->what),
		 "reordered: seq %" PRIu64 " comes before seq %" PRIu64
		 " (which is at %s:%lu)",
		 v->res->seq, r.seq, v->paths[file], ln);
	v->looking = false;
	return 1;
}

static int verify_file(struct verifier *v, size_t file)
{
	const char *path = v->paths[file];
	FILE *f = fopen(path, "re");
	unsigned long ln = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	if (!f) {
		rc = -errno;
		snprintf(v->res->what, sizeof(v->res->what), "%s: %s", path,
			 strerror(errno));
		return rc;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		ln++;
		if (v->looking) {
			if (look_line(v, file, ln, line, (size_t)n))
				break;
			continue;
		}
		if (v->res->problem != AUDIT_INTACT)
			break;
		if ((size_t)n > AUDIT_MAX_LINE) {
			problem(v, AUDIT_MALFORMED, file, ln, 0,
				"not an audit record: longer than %u bytes",
				AUDIT_MAX_LINE);
			break;
		}
		if (check_line(v, file, ln, line, (size_t)n, feof(f)) &&
		    !v->looking)
			break;
	}
	if (ferror(f) && !v->res->problem) {
		rc = -EIO;
		snprintf(v->res->what, sizeof(v->res->what), "%s: read error",
			 path);
	}
	free(line);
	fclose(f);
	return rc;
}

int audit_verify(const char *const *paths, size_t n, audit_verify_result *res)
{
	struct verifier v = {.res = res, .paths = paths};
	char *ap = NULL;
	size_t i;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	if (!n) {
		snprintf(res->what, sizeof(res->what), "no files to verify");
		return -EINVAL;
	}
	v.md = EVP_MD_CTX_new();
	ap = anchor_path(paths[n - 1]);
	if (!v.md || !ap) {
		rc = -ENOMEM;
		snprintf(res->what, sizeof(res->what), "out of memory");
		goto out;
	}
	rc = anchor_read(ap, &v.anchor, &res->anchored);
	if (rc == -EINVAL) {
		rc = 0;
		res->anchored = false;
		problem(&v, AUDIT_MALFORMED, n - 1, 0, 0,
			"the anchor file %s is damaged", ap);
		goto out;
	} else if (rc) {
		snprintf(res->what, sizeof(res->what), "%s: %s", ap,
			 strerror(-rc));
		goto out;
	}
	for (i = 0; i < n && !rc; i++) {
		if (res->problem && !v.looking)
			break;
		rc = verify_file(&v, i);
	}
	if (rc || res->problem)
		goto out;
	if (res->anchored && res->last_seq < v.anchor.seq)
		problem(&v, AUDIT_TRUNCATED, n - 1, 0, res->last_seq + 1,
			"truncated: the log ends at seq %" PRIu64
			" but its anchor names seq %" PRIu64
			": records %" PRIu64 "..%" PRIu64
			" were deleted from the end",
			res->last_seq, v.anchor.seq, res->last_seq + 1,
			v.anchor.seq);
out:
	free(ap);
	EVP_MD_CTX_free(v.md);
	return rc;
}
