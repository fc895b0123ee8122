/*
 * rbac.c -- Kubernetes RBAC evaluation: see rbac.h for what and why.
 *
 * The policy is four red-black trees (Roles, ClusterRoles, RoleBindings,
 * ClusterRoleBindings) keyed by (namespace, name), namespace "" for the
 * cluster kinds, so a namespace's RoleBindings are one contiguous run and
 * every walk is in name order, which makes reasons and rule lists
 * deterministic.
 *
 * Invariants:
 *   - every role's `eff` lists its effective rules: pointers to its own
 *     `rules` for a plain role, to other ClusterRoles' rules for an
 *     aggregated one. aggregate() rebuilds all aggregated `eff` after each
 *     ClusterRole change and before anyone reads them again, so they never
 *     point into a freed role;
 *   - an aggregated `eff` holds no two equal rules (ruleExists in the
 *     aggregation controller).
 */
#include "security/rbac.h"
#include "util/strbuf.h"

#include <bsd/sys/tree.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/selector.h"

/* At most this many missing permissions are listed in an escalation error. */
#define RBAC_MISSING_MAX 256

/*
 * Covers breaks every rule down to (group, resource, verb, name) atoms; a
 * role of 100 groups, resources, verbs and names would be 10^8 of them.
 * Past this many atoms the check refuses instead of burning the CPU. (A
 * user holding "*" on everything never gets here: "*" includes the
 * escalate and bind verbs.)
 */
#define RBAC_ATOMS_MAX (1u << 18)

/* ---- growable strings --------------------------------------------------- */

/* Go's %q of a string (strconv.Quote), for ASCII; other bytes pass. */
static void sb_quote(strbuf *b, const char *s)
{
	static const char esc[] = "\a\b\f\n\r\t\v";
	static const char let[] = "abfnrtv";
	char tmp[8];
	const char *e;

	strbuf_putn(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			strbuf_putn(b, tmp, 2);
		} else if (c && (e = strchr(esc, c))) {
			tmp[0] = '\\';
			tmp[1] = let[e - esc];
			strbuf_putn(b, tmp, 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(tmp, sizeof(tmp), "\\x%02x", c);
			strbuf_puts(b, tmp);
		} else {
			strbuf_putn(b, s, 1);
		}
	}
	strbuf_putn(b, "\"", 1);
}

/* Go's %q of a []string: ["a" "b"]. */
static void sb_quotev(strbuf *b, char *const *v, size_t n)
{
	size_t i;

	strbuf_putn(b, "[", 1);
	for (i = 0; i < n; i++) {
		if (i)
			strbuf_putn(b, " ", 1);
		sb_quote(b, v[i]);
	}
	strbuf_putn(b, "]", 1);
}

/* Copy b to dst (truncated, NUL-terminated) and free it. */
static void sb_out(strbuf *b, char *dst, size_t len)
{
	if (dst && len) {
		if (b->oom)
			snprintf(dst, len, "out of memory");
		else
			snprintf(dst, len, "%s", b->p ? b->p : "");
	}
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static const char *str(const char *s)
{
	return s ? s : "";
}

/* ---- the policy --------------------------------------------------------- */

struct strv {
	char **v;
	size_t n;
};

/* A PolicyRule. */
struct rule {
	struct strv groups, resources, verbs, names, urls;
};

/* A Role or ClusterRole. */
struct role {
	RB_ENTRY(role) link;
	char *ns, *name;
	struct rule *rules;
	size_t nrules;
	json_t *labels; /* ClusterRole metadata.labels, a copy, or NULL */
	json_t *aggr;	/* ClusterRole aggregationRule, a copy, or NULL */
	sel **sels;	/* its clusterRoleSelectors */
	size_t nsels;
	const struct rule **eff; /* effective rules, see the invariants */
	size_t neff;
};

struct subject {
	char *kind, *name, *ns;
};

/* A RoleBinding or ClusterRoleBinding. */
struct binding {
	RB_ENTRY(binding) link;
	char *ns, *name;
	char *ref_group, *ref_kind, *ref_name;
	struct subject *subj;
	size_t nsubj;
};

RB_HEAD(role_tree, role);
RB_HEAD(binding_tree, binding);

struct rbac {
	struct role_tree roles, croles;
	struct binding_tree rbs, crbs;
};

static int role_cmp(const struct role *a, const struct role *b)
{
	int c = strcmp(a->ns, b->ns);

	return c ? c : strcmp(a->name, b->name);
}

static int binding_cmp(const struct binding *a, const struct binding *b)
{
	int c = strcmp(a->ns, b->ns);

	return c ? c : strcmp(a->name, b->name);
}

/* libbsd's RB_GENERATE_STATIC uses a __unused it does not define. */
#define RBAC_TREE_FN __attribute__((unused)) static
RB_PROTOTYPE_INTERNAL(role_tree, role, link, role_cmp, RBAC_TREE_FN)
RB_PROTOTYPE_INTERNAL(binding_tree, binding, link, binding_cmp, RBAC_TREE_FN)
RB_GENERATE_INTERNAL(role_tree, role, link, role_cmp, RBAC_TREE_FN)
RB_GENERATE_INTERNAL(binding_tree, binding, link, binding_cmp, RBAC_TREE_FN)

static void strv_free(struct strv *v)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
}

static void rule_free(struct rule *r)
{
	strv_free(&r->groups);
	strv_free(&r->resources);
	strv_free(&r->verbs);
	strv_free(&r->names);
	strv_free(&r->urls);
}

static void role_free(struct role *ro)
{
	size_t i;

	if (!ro)
		return;
	for (i = 0; i < ro->nrules; i++)
		rule_free(&ro->rules[i]);
	free(ro->rules);
	for (i = 0; i < ro->nsels; i++)
		sel_free(ro->sels[i]);
	free(ro->sels);
	json_decref(ro->labels);
	json_decref(ro->aggr);
	free(ro->eff);
	free(ro->ns);
	free(ro->name);
	free(ro);
}

static void binding_free(struct binding *b)
{
	size_t i;

	if (!b)
		return;
	for (i = 0; i < b->nsubj; i++) {
		free(b->subj[i].kind);
		free(b->subj[i].name);
		free(b->subj[i].ns);
	}
	free(b->subj);
	free(b->ref_group);
	free(b->ref_kind);
	free(b->ref_name);
	free(b->ns);
	free(b->name);
	free(b);
}

rbac *rbac_new(void)
{
	rbac *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	RB_INIT(&r->roles);
	RB_INIT(&r->croles);
	RB_INIT(&r->rbs);
	RB_INIT(&r->crbs);
	return r;
}

static void roles_clear(struct role_tree *t)
{
	struct role *ro;

	while ((ro = RB_MIN(role_tree, t))) {
		RB_REMOVE(role_tree, t, ro);
		role_free(ro);
	}
}

static void bindings_clear(struct binding_tree *t)
{
	struct binding *b;

	while ((b = RB_MIN(binding_tree, t))) {
		RB_REMOVE(binding_tree, t, b);
		binding_free(b);
	}
}

void rbac_free(rbac *r)
{
	if (!r)
		return;
	roles_clear(&r->roles);
	roles_clear(&r->croles);
	bindings_clear(&r->rbs);
	bindings_clear(&r->crbs);
	free(r);
}

static const struct role *role_get(const struct role_tree *t, const char *ns,
				   const char *name)
{
	struct role key;

	key.ns = (char *)ns;
	key.name = (char *)name;
	return RB_FIND(role_tree, (struct role_tree *)t, &key);
}

/* ---- parsing objects ---------------------------------------------------- */

/* obj[key]: absent or null gives an empty list; else an array of strings. */
static int parse_strv(const json_t *obj, const char *key, const char *where,
		      struct strv *out, char *err, size_t errlen)
{
	const json_t *a = json_object_get(obj, key), *s;
	size_t i;

	out->v = NULL;
	out->n = 0;
	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a))
		return fail(err, errlen, -EINVAL,
			    "%s.%s: must be an array of strings", where, key);
	if (!json_array_size(a))
		return 0;
	out->v = calloc(json_array_size(a), sizeof(char *));
	if (!out->v)
		return -ENOMEM;
	json_array_foreach(a, i, s)
	{
		if (!json_is_string(s)) {
			strv_free(out);
			return fail(err, errlen, -EINVAL,
				    "%s.%s[%zu]: must be a string", where, key,
				    i);
		}
		out->v[i] = strdup(json_string_value(s));
		if (!out->v[i]) {
			strv_free(out);
			return -ENOMEM;
		}
		out->n = i + 1;
	}
	return 0;
}

static int parse_rule(const json_t *j, size_t idx, struct rule *ru, char *err,
		      size_t errlen)
{
	static const char *const keys[] = {"apiGroups", "resources", "verbs",
					   "resourceNames", "nonResourceURLs"};
	struct strv *dst[] = {&ru->groups, &ru->resources, &ru->verbs,
			      &ru->names, &ru->urls};
	char where[32];
	size_t k;
	int rc;

	memset(ru, 0, sizeof(*ru));
	snprintf(where, sizeof(where), "rules[%zu]", idx);
	if (!json_is_object(j))
		return fail(err, errlen, -EINVAL, "%s: must be an object",
			    where);
	for (k = 0; k < 5; k++) {
		rc = parse_strv(j, keys[k], where, dst[k], err, errlen);
		if (rc) {
			rule_free(ru);
			return rc;
		}
	}
	return 0;
}

/* metadata.labels of a ClusterRole: absent, null, or strings only. */
static int parse_labels(const json_t *obj, json_t **out, char *err,
			size_t errlen)
{
	const json_t *l =
	    json_object_get(json_object_get(obj, "metadata"), "labels");
	const char *k;
	json_t *v;

	*out = NULL;
	if (!l || json_is_null(l))
		return 0;
	if (!json_is_object(l))
		return fail(err, errlen, -EINVAL,
			    "metadata.labels: must be an object");
	json_object_foreach((json_t *)l, k, v)
	{
		if (!json_is_string(v))
			return fail(err, errlen, -EINVAL,
				    "metadata.labels.%s: must be a string", k);
	}
	*out = json_deep_copy(l);
	return *out ? 0 : -ENOMEM;
}

static int parse_aggregation(const json_t *obj, struct role *ro, char *err,
			     size_t errlen)
{
	const json_t *ag = json_object_get(obj, "aggregationRule"), *sels, *s;
	char msg[512];
	size_t i;
	int rc;

	if (!ag || json_is_null(ag))
		return 0;
	if (!json_is_object(ag))
		return fail(err, errlen, -EINVAL,
			    "aggregationRule: must be an object");
	sels = json_object_get(ag, "clusterRoleSelectors");
	if (sels && !json_is_null(sels) && !json_is_array(sels))
		return fail(err, errlen, -EINVAL,
			    "aggregationRule.clusterRoleSelectors: must be an "
			    "array");
	ro->aggr = json_deep_copy(ag);
	if (!ro->aggr)
		return -ENOMEM;
	if (!json_array_size(sels))
		return 0;
	ro->sels = calloc(json_array_size(sels), sizeof(sel *));
	if (!ro->sels)
		return -ENOMEM;
	json_array_foreach(sels, i, s)
	{
		if (!json_is_object(s))
			return fail(err, errlen, -EINVAL,
				    "aggregationRule.clusterRoleSelectors[%zu]"
				    ": must be an object",
				    i);
		rc = sel_from_json(s, &ro->sels[i], msg, sizeof(msg));
		if (rc)
			return fail(err, errlen, rc,
				    "aggregationRule.clusterRoleSelectors[%zu]"
				    ": %s",
				    i, msg);
		ro->nsels = i + 1;
	}
	return 0;
}

/* A new role from obj (borrowed); ClusterRoles keep labels and selectors. */
static int parse_role(const json_t *obj, bool cluster, const char *ns,
		      const char *name, struct role **out, char *err,
		      size_t errlen)
{
	const json_t *rules, *j;
	struct role *ro;
	size_t i;
	int rc = -ENOMEM;

	*out = NULL;
	if (!json_is_object(obj))
		return fail(err, errlen, -EINVAL, "object: must be an object");
	ro = calloc(1, sizeof(*ro));
	if (!ro)
		return -ENOMEM;
	ro->ns = strdup(str(ns));
	ro->name = strdup(str(name));
	if (!ro->ns || !ro->name)
		goto out;
	rules = json_object_get(obj, "rules");
	if (rules && !json_is_null(rules) && !json_is_array(rules)) {
		rc = fail(err, errlen, -EINVAL, "rules: must be an array");
		goto out;
	}
	if (json_array_size(rules)) {
		ro->rules = calloc(json_array_size(rules), sizeof(*ro->rules));
		ro->eff = calloc(json_array_size(rules), sizeof(*ro->eff));
		if (!ro->rules || !ro->eff)
			goto out;
	}
	json_array_foreach(rules, i, j)
	{
		rc = parse_rule(j, i, &ro->rules[i], err, errlen);
		if (rc)
			goto out;
		ro->nrules = i + 1;
	}
	if (cluster) {
		rc = parse_labels(obj, &ro->labels, err, errlen);
		if (!rc)
			rc = parse_aggregation(obj, ro, err, errlen);
		if (rc)
			goto out;
	}
	if (!ro->aggr) {
		for (i = 0; i < ro->nrules; i++)
			ro->eff[i] = &ro->rules[i];
		ro->neff = ro->nrules;
	}
	*out = ro;
	ro = NULL;
	rc = 0;
out:
	role_free(ro);
	return rc;
}

/* obj[key] as a new string; absent/null gives "" unless required. */
static int dup_field(const json_t *obj, const char *key, const char *where,
		     bool required, char **out, char *err, size_t errlen)
{
	const json_t *s = json_object_get(obj, key);

	*out = NULL;
	if (!s || json_is_null(s)) {
		if (required)
			return fail(err, errlen, -EINVAL,
				    "%s.%s: Required value", where, key);
		*out = strdup("");
	} else if (!json_is_string(s)) {
		return fail(err, errlen, -EINVAL, "%s.%s: must be a string",
			    where, key);
	} else {
		*out = strdup(json_string_value(s));
	}
	return *out ? 0 : -ENOMEM;
}

static int parse_binding(const json_t *obj, const char *ns, const char *name,
			 struct binding **out, char *err, size_t errlen)
{
	const json_t *ref, *subs, *j;
	struct binding *b;
	char where[40];
	size_t i;
	int rc = -ENOMEM;

	*out = NULL;
	if (!json_is_object(obj))
		return fail(err, errlen, -EINVAL, "object: must be an object");
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->ns = strdup(str(ns));
	b->name = strdup(str(name));
	if (!b->ns || !b->name)
		goto out;
	ref = json_object_get(obj, "roleRef");
	if (!json_is_object(ref)) {
		rc = fail(err, errlen, -EINVAL, "roleRef: %s",
			  ref ? "must be an object" : "Required value");
		goto out;
	}
	rc = dup_field(ref, "apiGroup", "roleRef", false, &b->ref_group, err,
		       errlen);
	if (!rc)
		rc = dup_field(ref, "kind", "roleRef", true, &b->ref_kind, err,
			       errlen);
	if (!rc)
		rc = dup_field(ref, "name", "roleRef", true, &b->ref_name, err,
			       errlen);
	if (rc)
		goto out;
	subs = json_object_get(obj, "subjects");
	if (subs && !json_is_null(subs) && !json_is_array(subs)) {
		rc = fail(err, errlen, -EINVAL, "subjects: must be an array");
		goto out;
	}
	if (json_array_size(subs)) {
		b->subj = calloc(json_array_size(subs), sizeof(*b->subj));
		if (!b->subj)
			goto out;
	}
	json_array_foreach(subs, i, j)
	{
		struct subject *s = &b->subj[i];

		b->nsubj = i + 1;
		snprintf(where, sizeof(where), "subjects[%zu]", i);
		if (!json_is_object(j)) {
			rc = fail(err, errlen, -EINVAL, "%s: must be an object",
				  where);
			goto out;
		}
		rc = dup_field(j, "kind", where, true, &s->kind, err, errlen);
		if (!rc)
			rc = dup_field(j, "name", where, true, &s->name, err,
				       errlen);
		if (!rc)
			rc = dup_field(j, "namespace", where, false, &s->ns,
				       err, errlen);
		if (rc)
			goto out;
	}
	*out = b;
	b = NULL;
	rc = 0;
out:
	binding_free(b);
	return rc;
}

/* ---- rule matching (rbac/v1 evaluation_helpers.go) ---------------------- */

static bool has(const struct strv *v, const char *s)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		if (!strcmp(v->v[i], s))
			return true;
	return false;
}

static bool verb_matches(const struct rule *ru, const char *verb)
{
	return has(&ru->verbs, "*") || has(&ru->verbs, verb);
}

static bool group_matches(const struct rule *ru, const char *group)
{
	return has(&ru->groups, "*") || has(&ru->groups, group);
}

/* combined is "res" or "res/sub"; sub is "" or the subresource. */
static bool resource_matches(const struct rule *ru, const char *combined,
			     const char *sub)
{
	size_t i, sl = strlen(sub);

	for (i = 0; i < ru->resources.n; i++) {
		const char *r = ru->resources.v[i];

		if (!strcmp(r, "*") || !strcmp(r, combined))
			return true;
		if (sl && !strncmp(r, "*/", 2) && !strcmp(r + 2, sub))
			return true;
	}
	return false;
}

static bool name_matches(const struct rule *ru, const char *name)
{
	return !ru->names.n || has(&ru->names, name);
}

/* "/a*" covers every path starting with "/a" (all trailing '*' trimmed). */
static bool url_covers(const char *rule, const char *path)
{
	size_t n = strlen(rule);

	if (!strcmp(rule, path))
		return true;
	if (!n || rule[n - 1] != '*')
		return false;
	while (n && rule[n - 1] == '*')
		n--;
	return !strncmp(rule, path, n);
}

static bool url_matches(const struct rule *ru, const char *path)
{
	size_t i;

	for (i = 0; i < ru->urls.n; i++)
		if (!strcmp(ru->urls.v[i], "*") ||
		    url_covers(ru->urls.v[i], path))
			return true;
	return false;
}

static bool rule_allows(const rbac_attrs *a, const struct rule *ru,
			const char *combined)
{
	if (!verb_matches(ru, str(a->verb)))
		return false;
	if (!a->resource_request)
		return url_matches(ru, str(a->path));
	return group_matches(ru, str(a->group)) &&
	       resource_matches(ru, combined, str(a->subresource)) &&
	       name_matches(ru, str(a->name));
}

/* ---- resolving the user's rules (rule.go VisitRulesFor) ----------------- */

static bool has_group(const rbac_user *u, const char *g)
{
	size_t i;

	for (i = 0; u && i < u->ngroups; i++)
		if (u->groups[i] && !strcmp(u->groups[i], g))
			return true;
	return false;
}

static bool subject_applies(const struct subject *s, const rbac_user *u,
			    const char *ns)
{
	static const char pfx[] = "system:serviceaccount:";
	const char *user = u ? str(u->name) : "", *sans;
	size_t n;

	if (!strcmp(s->kind, "User"))
		return !strcmp(user, s->name);
	if (!strcmp(s->kind, "Group"))
		return has_group(u, s->name);
	if (strcmp(s->kind, "ServiceAccount"))
		return false;
	sans = s->ns[0] ? s->ns : ns;
	if (!sans[0] || strncmp(user, pfx, sizeof(pfx) - 1))
		return false;
	user += sizeof(pfx) - 1;
	n = strlen(sans);
	if (strncmp(user, sans, n) || user[n] != ':')
		return false;
	return !strcmp(user + n + 1, s->name);
}

/* Where a rule came from, for the reason of an allow. */
struct source {
	const struct binding *b;
	const struct subject *s;
};

/* Return false to stop. rule is NULL when err is set. */
typedef bool (*visit_fn)(void *arg, const struct source *src,
			 const struct rule *rule, const char *err);

/* The rules of roleRef, or NULL with a not-found message. k8s's informer
 * listers say "clusterrole.rbac...", its registry "clusterroles.rbac...". */
static const struct role *ref_role(const rbac *r, const struct binding *b,
				   bool plural, char *err, size_t errlen)
{
	const struct role *ro = NULL;
	const char *res;
	strbuf m = {0};

	if (!strcmp(b->ref_kind, "Role")) {
		ro = role_get(&r->roles, b->ns, b->ref_name);
		res = plural ? "roles" : "role";
	} else if (!strcmp(b->ref_kind, "ClusterRole")) {
		ro = role_get(&r->croles, "", b->ref_name);
		res = plural ? "clusterroles" : "clusterrole";
	} else {
		strbuf_puts(&m, "unsupported role reference kind: ");
		sb_quote(&m, b->ref_kind);
		sb_out(&m, err, errlen);
		return NULL;
	}
	if (!ro) {
		strbuf_puts(&m, res);
		strbuf_puts(&m, "." RBAC_GROUP " ");
		sb_quote(&m, b->ref_name);
		strbuf_puts(&m, " not found");
		sb_out(&m, err, errlen);
	}
	return ro;
}

static bool visit_binding(const rbac *r, const struct binding *b,
			  const rbac_user *u, bool plural, visit_fn fn,
			  void *arg)
{
	const struct role *ro;
	struct source src = {b, NULL};
	char err[512];
	size_t i;

	for (i = 0; i < b->nsubj; i++) {
		if (subject_applies(&b->subj[i], u, b->ns)) {
			src.s = &b->subj[i];
			break;
		}
	}
	if (!src.s)
		return true;
	ro = ref_role(r, b, plural, err, sizeof(err));
	if (!ro)
		return fn(arg, NULL, NULL, err);
	for (i = 0; i < ro->neff; i++)
		if (!fn(arg, &src, ro->eff[i], NULL))
			return false;
	return true;
}

/* Every rule u holds in ns: ClusterRoleBindings, then ns's RoleBindings. */
static void visit_rules(const rbac *r, const rbac_user *u, const char *ns,
			bool plural, visit_fn fn, void *arg)
{
	struct binding *b, key;

	RB_FOREACH(b, binding_tree, (struct binding_tree *)&r->crbs)
	if (!visit_binding(r, b, u, plural, fn, arg))
		return;
	if (!ns || !ns[0])
		return;
	key.ns = (char *)ns;
	key.name = (char *)"";
	for (b = RB_NFIND(binding_tree, (struct binding_tree *)&r->rbs, &key);
	     b && !strcmp(b->ns, ns); b = RB_NEXT(binding_tree, NULL, b))
		if (!visit_binding(r, b, u, plural, fn, arg))
			return;
}

/* Resolution errors, deduplicated, printed as utilerrors.NewAggregate. */
struct errlist {
	char **v;
	size_t n;
	bool oom;
};

static void errs_add(struct errlist *e, const char *msg)
{
	char **nv;
	size_t i;

	for (i = 0; i < e->n; i++)
		if (!strcmp(e->v[i], msg))
			return;
	nv = realloc(e->v, (e->n + 1) * sizeof(*nv));
	if (!nv || !(nv[e->n] = strdup(msg))) {
		if (nv)
			e->v = nv;
		e->oom = true;
		return;
	}
	e->v = nv;
	e->n++;
}

static void errs_print(const struct errlist *e, strbuf *b)
{
	size_t i;

	if (e->n == 1) {
		strbuf_puts(b, e->v[0]);
		return;
	}
	strbuf_puts(b, "[");
	for (i = 0; i < e->n; i++) {
		if (i)
			strbuf_puts(b, ", ");
		strbuf_puts(b, e->v[i]);
	}
	strbuf_puts(b, "]");
}

static void errs_free(struct errlist *e)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		free(e->v[i]);
	free(e->v);
	memset(e, 0, sizeof(*e));
}

/* ---- the authorizer (rbac.go) ------------------------------------------- */

struct authz {
	const rbac_attrs *a;
	const char *combined;
	/* the allowing binding: a copy, the visitor's source is on its stack */
	struct source src;
	bool found;
	struct errlist errs;
};

static bool authz_visit(void *arg, const struct source *src,
			const struct rule *rule, const char *err)
{
	struct authz *z = arg;

	if (rule && rule_allows(z->a, rule, z->combined)) {
		z->src = *src;
		z->found = true;
		return false;
	}
	if (err)
		errs_add(&z->errs, err);
	return true;
}

static void describe(strbuf *m, const struct source *src)
{
	const struct binding *b = src->b;
	const struct subject *s = src->s;
	strbuf t = {0};

	if (b->ns[0]) {
		strbuf_puts(&t, b->name);
		strbuf_puts(&t, "/");
		strbuf_puts(&t, b->ns);
		strbuf_puts(m, "RoleBinding ");
	} else {
		strbuf_puts(&t, b->name);
		strbuf_puts(m, "ClusterRoleBinding ");
	}
	sb_quote(m, t.p ? t.p : "");
	strbuf_puts(m, " of ");
	strbuf_puts(m, b->ref_kind);
	strbuf_puts(m, " ");
	sb_quote(m, b->ref_name);
	strbuf_puts(m, " to ");
	strbuf_puts(m, s->kind);
	strbuf_puts(m, " ");
	t.len = 0;
	strbuf_puts(&t, s->name);
	if (!strcmp(s->kind, "ServiceAccount")) {
		strbuf_puts(&t, "/");
		strbuf_puts(&t, s->ns[0] ? s->ns : b->ns);
	}
	sb_quote(m, t.p ? t.p : "");
	if (t.oom)
		m->oom = true;
	free(t.p);
}

static bool allowed(const rbac *r, const rbac_user *u, const rbac_attrs *a,
		    strbuf *reason)
{
	struct authz z = {.a = a};
	strbuf comb = {0};
	bool ok;

	strbuf_puts(&comb, str(a->resource));
	if (a->subresource && a->subresource[0]) {
		strbuf_puts(&comb, "/");
		strbuf_puts(&comb, a->subresource);
	}
	z.combined = comb.p ? comb.p : "";
	/* a non-resource request has no namespace: RoleBindings never apply */
	if (!comb.oom && r)
		visit_rules(r, u, a->resource_request ? a->ns : NULL, false,
			    authz_visit, &z);
	ok = z.found;
	if (ok) {
		strbuf_puts(reason, "RBAC: allowed by ");
		describe(reason, &z.src);
	} else if (z.errs.n) {
		strbuf_puts(reason, "RBAC: ");
		errs_print(&z.errs, reason);
	}
	errs_free(&z.errs);
	free(comb.p);
	return ok;
}

bool rbac_allowed(const rbac *r, const rbac_user *u, const rbac_attrs *a,
		  char *reason, size_t len)
{
	strbuf m = {0};
	bool ok = a && allowed(r, u, a, &m);

	sb_out(&m, reason, len);
	return ok;
}

/* ---- rbac_set and aggregation ------------------------------------------- */

struct rlist {
	const struct rule **v;
	size_t n, cap;
};

static bool strv_eq(const struct strv *a, const struct strv *b)
{
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]))
			return false;
	return true;
}

static bool rule_eq(const struct rule *a, const struct rule *b)
{
	return a == b ||
	       (strv_eq(&a->groups, &b->groups) &&
		strv_eq(&a->resources, &b->resources) &&
		strv_eq(&a->verbs, &b->verbs) &&
		strv_eq(&a->names, &b->names) && strv_eq(&a->urls, &b->urls));
}

/* Append ru unless an equal rule is there (or dedup is false). */
static int rlist_add(struct rlist *l, const struct rule *ru, bool dedup)
{
	const struct rule **nv;
	size_t i;

	for (i = 0; dedup && i < l->n; i++)
		if (rule_eq(l->v[i], ru))
			return 0;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		nv = realloc(l->v, l->cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		l->v = nv;
	}
	l->v[l->n++] = ru;
	return 0;
}

/* One pass of the aggregation controller over role a. */
static int aggregate_one(rbac *r, struct role *a, bool *changed)
{
	struct rlist l = {0};
	struct role *c;
	size_t i, j;

	for (i = 0; i < a->nsels; i++) {
		RB_FOREACH(c, role_tree, &r->croles)
		{
			if (c == a || !sel_match(a->sels[i], c->labels))
				continue;
			for (j = 0; j < c->neff; j++) {
				if (rlist_add(&l, c->eff[j], true)) {
					free(l.v);
					return -ENOMEM;
				}
			}
		}
	}
	if (l.n != a->neff)
		*changed = true;
	free(a->eff);
	a->eff = l.v;
	a->neff = l.n;
	return 0;
}

/*
 * Recompute every aggregated ClusterRole, to the least fixed point: start
 * empty and repeat until nothing grows. Each pass can only add rules, and
 * a chain of aggregations is at most as long as there are aggregated
 * roles, so nagg + 1 passes suffice.
 */
static int aggregate(rbac *r)
{
	struct role *a;
	size_t nagg = 0, pass;
	bool changed = true;
	int rc;

	RB_FOREACH(a, role_tree, &r->croles)
	{
		if (!a->aggr)
			continue;
		free(a->eff);
		a->eff = NULL;
		a->neff = 0;
		nagg++;
	}
	for (pass = 0; changed && pass <= nagg; pass++) {
		changed = false;
		RB_FOREACH(a, role_tree, &r->croles)
		{
			if (!a->aggr)
				continue;
			rc = aggregate_one(r, a, &changed);
			if (rc)
				return rc;
		}
	}
	return 0;
}

enum rbac_kind { K_ROLE, K_CROLE, K_RB, K_CRB, K_BAD };

static enum rbac_kind kind_of(const char *kind)
{
	static const char *const names[] = {
	    "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"};
	int i;

	for (i = 0; i < K_BAD; i++)
		if (kind && !strcmp(kind, names[i]))
			return (enum rbac_kind)i;
	return K_BAD;
}

static const char *const plural_of[] = {"roles", "clusterroles", "rolebindings",
					"clusterrolebindings"};

int rbac_set(rbac *r, const char *kind, const char *ns, const char *name,
	     const json_t *obj, char *err, size_t errlen)
{
	enum rbac_kind k = kind_of(kind);
	struct role_tree *rt;
	struct binding_tree *bt;
	struct role *ro = NULL, *oldr, rkey;
	struct binding *b = NULL, *oldb, bkey;
	bool cluster = k == K_CROLE || k == K_CRB;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (k == K_BAD)
		return fail(err, errlen, -EINVAL, "unknown kind \"%s\"",
			    str(kind));
	if (!name || !name[0])
		return fail(err, errlen, -EINVAL,
			    "metadata.name: Required value");
	if (cluster && ns && ns[0])
		return fail(err, errlen, -EINVAL,
			    "%s is cluster-scoped: namespace must be empty",
			    kind);
	if (!cluster && (!ns || !ns[0]))
		return fail(err, errlen, -EINVAL,
			    "metadata.namespace: Required value");
	if (k == K_ROLE || k == K_CROLE) {
		rt = k == K_ROLE ? &r->roles : &r->croles;
		if (obj) {
			rc = parse_role(obj, cluster, ns, name, &ro, err,
					errlen);
			if (rc)
				return rc;
		}
		rkey.ns = (char *)str(ns);
		rkey.name = (char *)name;
		oldr = RB_FIND(role_tree, rt, &rkey);
		if (oldr)
			RB_REMOVE(role_tree, rt, oldr);
		if (ro)
			RB_INSERT(role_tree, rt, ro);
		rc = k == K_CROLE ? aggregate(r) : 0;
		role_free(oldr);
		return rc;
	}
	bt = k == K_RB ? &r->rbs : &r->crbs;
	if (obj) {
		rc = parse_binding(obj, ns, name, &b, err, errlen);
		if (rc)
			return rc;
	}
	bkey.ns = (char *)str(ns);
	bkey.name = (char *)name;
	oldb = RB_FIND(binding_tree, bt, &bkey);
	if (oldb)
		RB_REMOVE(binding_tree, bt, oldb);
	if (b)
		RB_INSERT(binding_tree, bt, b);
	binding_free(oldb);
	return 0;
}

/* ---- escalation (validation.ConfirmNoEscalation, Covers) ---------------- */

struct collect {
	struct rlist rules;
	struct errlist errs;
	bool oom;
};

static bool collect_visit(void *arg, const struct source *src,
			  const struct rule *rule, const char *err)
{
	struct collect *c = arg;

	(void)src;
	if (rule && rlist_add(&c->rules, rule, false))
		c->oom = true;
	if (err)
		errs_add(&c->errs, err);
	return true;
}

/* One atom of BreakdownRule: one group, resource, verb, name; or url, verb. */
struct atom {
	const char *group, *resource, *name, *url, *verb;
};

static bool resource_covers(const struct strv *owner, const char *res)
{
	const char *slash;
	size_t i;

	if (has(owner, "*") || has(owner, res))
		return true;
	slash = strchr(res, '/');
	if (!slash)
		return false;
	for (i = 0; i < owner->n; i++)
		if (!strncmp(owner->v[i], "*/", 2) &&
		    !strcmp(owner->v[i] + 2, slash + 1))
			return true;
	return false;
}

/* ruleCovers(owner, atom) of policy_comparator.go. */
static bool rule_covers(const struct rule *o, const struct atom *s)
{
	size_t i;

	if (!has(&o->verbs, "*") && !has(&o->verbs, s->verb))
		return false;
	if (s->url) {
		if (o->names.n)
			return false;
		for (i = 0; i < o->urls.n; i++)
			if (url_covers(o->urls.v[i], s->url))
				return true;
		return false;
	}
	if (!has(&o->groups, "*") && !has(&o->groups, s->group))
		return false;
	if (!resource_covers(&o->resources, s->resource))
		return false;
	if (!s->name)
		return !o->names.n;
	return !o->names.n || has(&o->names, s->name);
}

/* A line of the message: CompactRules merges the verbs of atoms with the
 * same group, resource and name. */
struct missing {
	struct atom a;
	const char **verbs;
	size_t nverbs;
};

struct cover {
	const struct rlist *owner;
	struct missing *miss;
	size_t nmiss, more;
	bool oom;
};

static size_t mul_sat(size_t a, size_t b)
{
	if (a && b > RBAC_ATOMS_MAX / a)
		return RBAC_ATOMS_MAX + 1;
	return a * b;
}

/* How many atoms cover_rule will check for ru, saturating. */
static size_t atoms_of(const struct rule *ru)
{
	size_t n = mul_sat(mul_sat(ru->groups.n, ru->resources.n),
			   mul_sat(ru->verbs.n, ru->names.n ? ru->names.n : 1));

	return n + mul_sat(ru->urls.n, ru->verbs.n);
}

static bool same(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static void cover_atom(struct cover *c, const struct atom *s)
{
	struct missing *m = NULL;
	const char **nv;
	size_t i;

	for (i = 0; i < c->owner->n; i++)
		if (rule_covers(c->owner->v[i], s))
			return;
	for (i = 0; !s->url && i < c->nmiss; i++) {
		m = &c->miss[i];
		if (!m->a.url && same(m->a.group, s->group) &&
		    same(m->a.resource, s->resource) &&
		    same(m->a.name, s->name))
			break;
		m = NULL;
	}
	if (!m) {
		if (c->nmiss == RBAC_MISSING_MAX) {
			c->more++;
			return;
		}
		m = &c->miss[c->nmiss++];
		m->a = *s;
	}
	for (i = 0; i < m->nverbs; i++)
		if (!strcmp(m->verbs[i], s->verb))
			return;
	nv = realloc(m->verbs, (m->nverbs + 1) * sizeof(*nv));
	if (!nv) {
		c->oom = true;
		return;
	}
	m->verbs = nv;
	m->verbs[m->nverbs++] = s->verb;
}

static void cover_rule(struct cover *c, const struct rule *ru)
{
	struct atom s = {0};
	size_t g, r, v, n;

	for (g = 0; g < ru->groups.n; g++) {
		s.group = ru->groups.v[g];
		for (r = 0; r < ru->resources.n; r++) {
			s.resource = ru->resources.v[r];
			for (v = 0; v < ru->verbs.n; v++) {
				s.verb = ru->verbs.v[v];
				s.name = NULL;
				if (!ru->names.n)
					cover_atom(c, &s);
				for (n = 0; n < ru->names.n; n++) {
					s.name = ru->names.v[n];
					cover_atom(c, &s);
				}
			}
		}
	}
	memset(&s, 0, sizeof(s));
	for (r = 0; r < ru->urls.n; r++) {
		s.url = ru->urls.v[r];
		for (v = 0; v < ru->verbs.n; v++) {
			s.verb = ru->verbs.v[v];
			cover_atom(c, &s);
		}
	}
}

/* rbacv1helpers.CompactString of one missing line. */
static char *compact_string(const struct missing *m)
{
	strbuf b = {0};
	char *one[1];

	strbuf_puts(&b, "{");
	if (m->a.url) {
		one[0] = (char *)m->a.url;
		strbuf_puts(&b, "NonResourceURLs:");
		sb_quotev(&b, one, 1);
	} else {
		one[0] = (char *)m->a.group;
		strbuf_puts(&b, "APIGroups:");
		sb_quotev(&b, one, 1);
		one[0] = (char *)m->a.resource;
		strbuf_puts(&b, ", Resources:");
		sb_quotev(&b, one, 1);
		if (m->a.name) {
			one[0] = (char *)m->a.name;
			strbuf_puts(&b, ", ResourceNames:");
			sb_quotev(&b, one, 1);
		}
	}
	strbuf_puts(&b, ", Verbs:");
	sb_quotev(&b, (char *const *)m->verbs, m->nverbs);
	strbuf_puts(&b, "}");
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

static int strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted, deduplicated lines of the missing permissions. */
static void print_missing(strbuf *m, struct cover *c)
{
	char **lines = calloc(c->nmiss + 1, sizeof(char *));
	size_t i, n = 0;
	char tail[64];

	if (!lines) {
		m->oom = true;
		return;
	}
	for (i = 0; i < c->nmiss; i++) {
		lines[i] = compact_string(&c->miss[i]);
		if (!lines[i])
			m->oom = true;
	}
	if (!m->oom) {
		qsort(lines, c->nmiss, sizeof(char *), strp_cmp);
		for (i = 0; i < c->nmiss; i++) {
			if (i && !strcmp(lines[i], lines[i - 1]))
				continue;
			if (n++)
				strbuf_puts(m, "\n");
			strbuf_puts(m, lines[i]);
		}
		if (c->more) {
			snprintf(tail, sizeof(tail), "\n... and %zu more",
				 c->more);
			strbuf_puts(m, tail);
		}
	}
	for (i = 0; i < c->nmiss; i++)
		free(lines[i]);
	free(lines);
}

static void user_desc(strbuf *m, const rbac_user *u)
{
	size_t i;

	strbuf_puts(m, "user ");
	sb_quote(m, u ? str(u->name) : "");
	strbuf_puts(m, " (groups=[");
	for (i = 0; u && i < u->ngroups; i++) {
		if (i)
			strbuf_puts(m, " ");
		sb_quote(m, str(u->groups[i]));
	}
	strbuf_puts(m, "])");
}

/*
 * ConfirmNoEscalation: 0 when the rules u holds in ns cover every rule of
 * want; else -EACCES with k8s's message in m (prefixed by the caller's
 * "... is forbidden: "); -E2BIG (message in m) past RBAC_ATOMS_MAX;
 * -ENOMEM on OOM.
 */
static int confirm_no_escalation(const rbac *r, const rbac_user *u,
				 const char *ns, const struct rule *const *want,
				 size_t nwant, strbuf *m)
{
	struct collect col = {{0}, {0}, false};
	struct cover c = {0};
	size_t i, atoms = 0;
	int rc = 0;

	visit_rules(r, u, ns, true, collect_visit, &col);
	c.owner = &col.rules;
	c.miss = calloc(RBAC_MISSING_MAX, sizeof(*c.miss));
	if (col.oom || col.errs.oom || !c.miss) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < nwant && atoms <= RBAC_ATOMS_MAX; i++)
		atoms += atoms_of(want[i]);
	if (atoms > RBAC_ATOMS_MAX) {
		strbuf_puts(
		    m, "too many permissions to check for escalation (more "
		       "than 262144 apiGroup/resource/verb/resourceName "
		       "combinations): split the rules");
		rc = -E2BIG;
		goto out;
	}
	for (i = 0; i < nwant && !c.oom; i++)
		cover_rule(&c, want[i]);
	if (c.oom) {
		rc = -ENOMEM;
		goto out;
	}
	if (!c.nmiss && !c.more)
		goto out;
	user_desc(m, u);
	strbuf_puts(m, " is attempting to grant RBAC permissions not currently "
		       "held:\n");
	print_missing(m, &c);
	if (col.errs.n) {
		strbuf_puts(m, "; resolution errors: [");
		errs_print(&col.errs, m);
		strbuf_puts(m, "]");
	}
	rc = m->oom ? -ENOMEM : -EACCES;
out:
	for (i = 0; c.miss && i < c.nmiss; i++)
		free(c.miss[i].verbs);
	free(c.miss);
	free(col.rules.v);
	errs_free(&col.errs);
	return rc;
}

static bool is_master(const rbac_user *u)
{
	return has_group(u, "system:masters");
}

/* Does u hold verb on the role resource res/name in ns (escalate, bind)? */
static bool holds(const rbac *r, const rbac_user *u, const char *verb,
		  const char *group, const char *res, const char *name,
		  const char *ns)
{
	rbac_attrs a = {true, verb, group, res, "", name, ns, ""};
	strbuf m = {0};
	bool ok = allowed(r, u, &a, &m);

	free(m.p);
	return ok;
}

/* Full authority: * on *.* and on every URL, as for aggregationRule. */
static int confirm_full_authority(const rbac *r, const rbac_user *u, strbuf *m)
{
	static char *star[] = {"*"};
	static const struct rule all[2] = {
	    {{star, 1}, {star, 1}, {star, 1}, {NULL, 0}, {NULL, 0}},
	    {{NULL, 0}, {NULL, 0}, {star, 1}, {NULL, 0}, {star, 1}},
	};
	const struct rule *want[2] = {&all[0], &all[1]};

	return confirm_no_escalation(r, u, "", want, 2, m);
}

static bool aggr_changed(const struct role *old, const struct role *nw)
{
	if (!nw->nsels)
		return false;
	return !old || !old->aggr || !json_equal(old->aggr, nw->aggr);
}

static int may_write_role(const rbac *r, const rbac_user *u, bool cluster,
			  const char *ns, const char *name, const json_t *obj,
			  strbuf *m)
{
	const struct role *old;
	struct role *ro;
	const struct rule **want = NULL;
	char err[512];
	size_t i;
	int rc;

	rc = parse_role(obj, cluster, ns, name, &ro, err, sizeof(err));
	if (rc) {
		strbuf_puts(m, err);
		return rc;
	}
	old = role_get(cluster ? &r->croles : &r->roles, ns, name);
	if (holds(r, u, "escalate", RBAC_GROUP,
		  cluster ? "clusterroles" : "roles", old ? name : "", ns))
		goto out;
	want = calloc(ro->nrules + 1, sizeof(*want));
	if (!want) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < ro->nrules; i++)
		want[i] = &ro->rules[i];
	rc = confirm_no_escalation(r, u, ns, want, ro->nrules, m);
	if (rc || !cluster || !aggr_changed(old, ro))
		goto out;
	rc = confirm_full_authority(r, u, m);
	if (rc == -EACCES) {
		m->len = 0;
		strbuf_puts(m, "must have cluster-admin privileges to use the "
			       "aggregationRule");
	}
out:
	free(want);
	role_free(ro);
	return rc;
}

static int may_write_binding(const rbac *r, const rbac_user *u, const char *ns,
			     const char *name, const json_t *obj, strbuf *m)
{
	struct binding *b;
	const struct role *ro;
	const char *res = NULL;
	char err[512];
	int rc;

	rc = parse_binding(obj, ns, name, &b, err, sizeof(err));
	if (rc) {
		strbuf_puts(m, err);
		return rc;
	}
	if (!strcmp(b->ref_kind, "ClusterRole"))
		res = "clusterroles";
	else if (!strcmp(b->ref_kind, "Role"))
		res = "roles";
	if (res && holds(r, u, "bind", b->ref_group, res, b->ref_name, ns))
		goto out;
	ro = ref_role(r, b, true, err, sizeof(err));
	if (!ro) {
		strbuf_puts(m, err);
		rc = -ENOENT;
		goto out;
	}
	rc = confirm_no_escalation(r, u, ns, ro->eff, ro->neff, m);
out:
	binding_free(b);
	return rc;
}

bool rbac_may_write(const rbac *r, const rbac_user *u, const char *kind,
		    const char *ns, const json_t *obj, char *err, size_t errlen)
{
	enum rbac_kind k = kind_of(kind);
	strbuf m = {0}, out = {0};
	const char *name;
	int rc;

	if (k == K_BAD) {
		fail(err, errlen, -EINVAL, "unknown kind \"%s\"", str(kind));
		return false;
	}
	if (err && errlen)
		err[0] = '\0';
	if (is_master(u))
		return true;
	if (k == K_CROLE || k == K_CRB)
		ns = "";
	name = json_string_value(
	    json_object_get(json_object_get(obj, "metadata"), "name"));
	name = str(name);
	if (k == K_ROLE || k == K_CROLE)
		rc = may_write_role(r, u, k == K_CROLE, str(ns), name, obj, &m);
	else
		rc = may_write_binding(r, u, str(ns), name, obj, &m);
	if (rc == -EACCES || rc == -E2BIG) {
		strbuf_puts(&out, plural_of[k]);
		strbuf_puts(&out, "." RBAC_GROUP " ");
		sb_quote(&out, name);
		strbuf_puts(&out, " is forbidden: ");
		if (m.p)
			strbuf_puts(&out, m.p);
		free(m.p);
		sb_out(&out, err, errlen);
	} else if (rc == -ENOMEM) {
		free(m.p);
		fail(err, errlen, rc, "out of memory");
	} else {
		sb_out(&m, err, errlen);
	}
	return rc == 0;
}

/* ---- SelfSubjectRulesReview --------------------------------------------- */

static json_t *strv_json(const struct strv *v)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < v->n; i++) {
		if (json_array_append_new(a, json_string(v->v[i]))) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static int put_strv(json_t *o, const char *key, const struct strv *v,
		    bool always)
{
	if (!v->n && !always)
		return 0;
	return json_object_set_new(o, key, strv_json(v));
}

static int rule_json(json_t *res, json_t *nonres, const struct rule *ru)
{
	json_t *o;
	int rc = 0;

	if (ru->resources.n) {
		o = json_object();
		if (!o || json_array_append_new(res, o))
			return -1;
		rc |= put_strv(o, "verbs", &ru->verbs, true);
		rc |= put_strv(o, "apiGroups", &ru->groups, false);
		rc |= put_strv(o, "resources", &ru->resources, false);
		rc |= put_strv(o, "resourceNames", &ru->names, false);
	}
	if (ru->urls.n) {
		o = json_object();
		if (!o || json_array_append_new(nonres, o))
			return -1;
		rc |= put_strv(o, "verbs", &ru->verbs, true);
		rc |= put_strv(o, "nonResourceURLs", &ru->urls, false);
	}
	return rc;
}

json_t *rbac_rules_for(const rbac *r, const rbac_user *u, const char *ns)
{
	struct collect col = {{0}, {0}, false};
	json_t *out, *res, *nonres;
	strbuf e = {0};
	size_t i;
	int rc = 0;

	if (r)
		visit_rules(r, u, ns, false, collect_visit, &col);
	res = json_array();
	nonres = json_array();
	out =
	    json_pack("{s:o,s:o,s:b}", "resourceRules", res, "nonResourceRules",
		      nonres, "incomplete", col.errs.n > 0);
	if (!out || col.oom || col.errs.oom)
		goto fail;
	for (i = 0; i < col.rules.n && !rc; i++)
		rc = rule_json(res, nonres, col.rules.v[i]);
	if (rc)
		goto fail;
	if (col.errs.n) {
		errs_print(&col.errs, &e);
		if (e.oom || json_object_set_new(out, "evaluationError",
						 json_string(e.p)))
			goto fail;
	}
	goto done;
fail:
	json_decref(out);
	out = NULL;
done:
	free(e.p);
	free(col.rules.v);
	errs_free(&col.errs);
	return out;
}

/* ---- the bootstrap policy (bootstrappolicy/policy.go) ------------------- */

/* Comma-separated lists; NULL for an absent field, "" for [""]. */
struct brule {
	const char *verbs, *groups, *resources, *urls;
};

struct brole {
	const char *name;
	const char *label;  /* aggregate-to-X label it carries, or NULL */
	const char *select; /* aggregate-to-X label it aggregates, or NULL */
	const struct brule *rules;
};

#define AGG	  "rbac.authorization.k8s.io/aggregate-to-"
#define READ	  "get,list,watch"
#define READWRITE "get,list,watch,create,update,patch,delete,deletecollection"
#define DISCOVERY_URLS                                                         \
	"/livez,/readyz,/healthz,/version,/version/,/openapi,/openapi/*,"      \
	"/api,/api/*,/apis,/apis/*"

static const struct brule all_rules[] = {
    {"*", "*", "*", NULL},
    {"*", NULL, NULL, "*"},
    {NULL, NULL, NULL, NULL},
};
static const struct brule discovery_rules[] = {
    {"get", NULL, NULL, DISCOVERY_URLS},
    {NULL, NULL, NULL, NULL},
};
static const struct brule basic_user_rules[] = {
    {"create", "authorization.k8s.io",
     "selfsubjectaccessreviews,selfsubjectrulesreviews", NULL},
    {NULL, NULL, NULL, NULL},
};
static const struct brule public_info_rules[] = {
    {"get", NULL, NULL, "/livez,/readyz,/healthz,/version,/version/"},
    {NULL, NULL, NULL, NULL},
};
/* Of k8s's system:aggregate-to-admin, all of which signalbox serves. */
static const struct brule to_admin_rules[] = {
    {"create", "authorization.k8s.io", "localsubjectaccessreviews", NULL},
    {READWRITE, RBAC_GROUP, "roles,rolebindings", NULL},
    {NULL, NULL, NULL, NULL},
};
/* k8s's system:aggregate-to-edit touches none of signalbox's resources;
 * editors run the mesh. */
static const struct brule to_edit_rules[] = {
    {READWRITE, "mesh.signalbox.dev",
     "networks,peers,policies,routes,setupkeys", NULL},
    {NULL, NULL, NULL, NULL},
};
/* Of k8s's system:aggregate-to-view: namespaces; and the mesh but its
 * setup keys (as view leaves out Secrets). */
static const struct brule to_view_rules[] = {
    {READ, "", "namespaces/status", NULL},
    {READ, "", "namespaces", NULL},
    {READ, "mesh.signalbox.dev",
     "networks,peers,peers/status,peers/networkmap,policies,routes", NULL},
    {NULL, NULL, NULL, NULL},
};

static const struct brole boot_roles[] = {
    {"cluster-admin", NULL, NULL, all_rules},
    {"system:discovery", NULL, NULL, discovery_rules},
    {"system:basic-user", NULL, NULL, basic_user_rules},
    {"system:public-info-viewer", NULL, NULL, public_info_rules},
    {"admin", NULL, AGG "admin", NULL},
    {"edit", AGG "admin", AGG "edit", NULL},
    {"view", AGG "edit", AGG "view", NULL},
    {"system:aggregate-to-admin", AGG "admin", NULL, to_admin_rules},
    {"system:aggregate-to-edit", AGG "edit", NULL, to_edit_rules},
    {"system:aggregate-to-view", AGG "view", NULL, to_view_rules},
};

static const struct {
	const char *name, *groups;
} boot_bindings[] = {
    {"cluster-admin", "system:masters"},
    {"system:discovery", "system:authenticated"},
    {"system:basic-user", "system:authenticated"},
    {"system:public-info-viewer",
     "system:authenticated,system:unauthenticated"},
};

/* "a,b" as a new JSON array of strings ("" gives [""]). */
static json_t *split(const char *list)
{
	json_t *a = json_array();
	const char *p = list, *c;

	while (a) {
		c = strchr(p, ',');
		if (json_array_append_new(
			a, json_stringn(p, c ? (size_t)(c - p) : strlen(p)))) {
			json_decref(a);
			return NULL;
		}
		if (!c)
			break;
		p = c + 1;
	}
	return a;
}

static json_t *boot_meta(const char *kind, const char *name)
{
	return json_pack("{s:s,s:s,s:{s:s,s:{s:s},s:{s:s}}}", "apiVersion",
			 RBAC_GROUP "/v1", "kind", kind, "metadata", "name",
			 name, "labels", "kubernetes.io/bootstrapping",
			 "rbac-defaults", "annotations",
			 "rbac.authorization.kubernetes.io/autoupdate", "true");
}

static json_t *boot_role(const struct brole *br)
{
	json_t *o = boot_meta("ClusterRole", br->name), *rules, *ru;
	const struct brule *b;
	int rc = 0;

	rules = json_array();
	if (!o || !rules || json_object_set_new(o, "rules", rules))
		goto fail;
	if (br->label)
		rc |= json_object_set_new(
		    json_object_get(json_object_get(o, "metadata"), "labels"),
		    br->label, json_string("true"));
	if (br->select)
		rc |= json_object_set_new(
		    o, "aggregationRule",
		    json_pack("{s:[{s:{s:s}}]}", "clusterRoleSelectors",
			      "matchLabels", br->select, "true"));
	for (b = br->rules; b && b->verbs; b++) {
		ru = json_pack("{s:o}", "verbs", split(b->verbs));
		rc |= json_array_append_new(rules, ru);
		if (!ru)
			goto fail;
		if (b->groups)
			rc |= json_object_set_new(ru, "apiGroups",
						  split(b->groups));
		if (b->resources)
			rc |= json_object_set_new(ru, "resources",
						  split(b->resources));
		if (b->urls)
			rc |= json_object_set_new(ru, "nonResourceURLs",
						  split(b->urls));
	}
	if (!rc)
		return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *boot_binding(const char *name, const char *groups)
{
	json_t *o = boot_meta("ClusterRoleBinding", name), *subs, *g;
	size_t i;

	subs = split(groups);
	if (!o || !subs)
		goto fail;
	json_array_foreach(subs, i, g)
	{
		if (json_array_set_new(subs, i,
				       json_pack("{s:s,s:s,s:s}", "apiGroup",
						 RBAC_GROUP, "kind", "Group",
						 "name", json_string_value(g))))
			goto fail;
	}
	if (json_object_set_new(o, "subjects", subs)) {
		subs = NULL;
		goto fail;
	}
	subs = NULL;
	if (json_object_set_new(o, "roleRef",
				json_pack("{s:s,s:s,s:s}", "apiGroup",
					  RBAC_GROUP, "kind", "ClusterRole",
					  "name", name)))
		goto fail;
	return o;
fail:
	json_decref(subs);
	json_decref(o);
	return NULL;
}

json_t *rbac_bootstrap(void)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < sizeof(boot_roles) / sizeof(boot_roles[0]); i++)
		if (json_array_append_new(a, boot_role(&boot_roles[i])))
			goto fail;
	for (i = 0; a && i < sizeof(boot_bindings) / sizeof(boot_bindings[0]);
	     i++)
		if (json_array_append_new(
			a, boot_binding(boot_bindings[i].name,
					boot_bindings[i].groups)))
			goto fail;
	return a;
fail:
	json_decref(a);
	return NULL;
}
