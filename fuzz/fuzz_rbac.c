/*
 * fuzz_rbac.c -- libFuzzer target for the RBAC evaluator
 * (src/security/rbac.c).
 *
 * The input is a JSON array, read element by element:
 *   - "bootstrap": load rbac_bootstrap();
 *   - an object with "kind": rbac_set of it (kind, metadata.namespace,
 *     metadata.name), removed instead when it has "delete": true;
 *   - an object with "verb": request attributes (resource request unless
 *     it has "path"), evaluated at the end;
 *   - an object with "user": a user {"user": name, "groups": [...]}.
 * Then every request is decided for every user (plus an anonymous user
 * and a system:masters member), the rules of every user are listed in
 * every namespace asked about, and every RBAC object is checked with
 * rbac_may_write. Checked invariants: members of system:masters may write
 * any object of a known kind; an allow always carries its reason; the
 * rules listed are JSON of the documented shape.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "security/rbac.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_USERS  8
#define MAX_GROUPS 8

struct fuser {
	rbac_user u;
	const char *groups[MAX_GROUPS];
};

static const char *sget(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static void load_bootstrap(rbac *r)
{
	json_t *a = rbac_bootstrap(), *o;
	char err[256];
	size_t i;

	if (!a)
		abort();
	json_array_foreach(a, i, o)
	{
		if (rbac_set(r, sget(o, "kind"), NULL,
			     sget(json_object_get(o, "metadata"), "name"), o,
			     err, sizeof(err)))
			abort();
	}
	json_decref(a);
}

static void add_user(struct fuser *users, size_t *n, const json_t *o)
{
	struct fuser *f;
	const json_t *g;
	size_t i;

	if (*n == MAX_USERS)
		return;
	f = &users[(*n)++];
	memset(f, 0, sizeof(*f));
	f->u.name = sget(o, "user");
	f->u.groups = f->groups;
	json_array_foreach(json_object_get(o, "groups"), i, g)
	{
		if (f->u.ngroups == MAX_GROUPS)
			break;
		/* a NULL group (non-string) is allowed by the API */
		f->groups[f->u.ngroups++] = json_string_value(g);
	}
}

static rbac_attrs attrs_of(const json_t *o)
{
	rbac_attrs a;

	a.resource_request = !json_object_get(o, "path");
	a.verb = sget(o, "verb");
	a.group = sget(o, "group");
	a.resource = sget(o, "resource");
	a.subresource = sget(o, "subresource");
	a.name = sget(o, "name");
	a.ns = sget(o, "namespace");
	a.path = sget(o, "path");
	return a;
}

static void check_rules(const json_t *j)
{
	const json_t *rr, *nr;

	if (!j)
		return; /* OOM only */
	rr = json_object_get(j, "resourceRules");
	nr = json_object_get(j, "nonResourceRules");
	if (!json_is_array(rr) || !json_is_array(nr) ||
	    !json_is_boolean(json_object_get(j, "incomplete")))
		abort();
}

static void evaluate(const rbac *r, const json_t *in, struct fuser *users,
		     size_t nusers)
{
	static const char *const mg[] = {"system:masters",
					 "system:authenticated"};
	static const char *const ag[] = {"system:unauthenticated"};
	rbac_user fixed[2] = {{"m", mg, 2}, {"system:anonymous", ag, 1}};
	const rbac_user *all[MAX_USERS + 2];
	char reason[256], err[1024];
	const json_t *o, *md;
	size_t i, k, n = 0;
	json_t *rules;

	for (k = 0; k < nusers; k++)
		all[n++] = &users[k].u;
	all[n++] = &fixed[0];
	all[n++] = &fixed[1];
	json_array_foreach(in, i, o)
	{
		if (json_object_get(o, "verb")) {
			rbac_attrs a = attrs_of(o);

			for (k = 0; k < n; k++) {
				bool ok = rbac_allowed(r, all[k], &a, reason,
						       sizeof(reason));

				if (strlen(reason) >= sizeof(reason))
					abort();
				if (ok &&
				    strncmp(reason, "RBAC: allowed by ", 17))
					abort();
				rules = rbac_rules_for(r, all[k], a.ns);
				check_rules(rules);
				json_decref(rules);
			}
		} else if (json_object_get(o, "kind")) {
			const char *kind = sget(o, "kind");

			md = json_object_get(o, "metadata");
			for (k = 0; k < n; k++) {
				bool ok = rbac_may_write(r, all[k], kind,
							 sget(md, "namespace"),
							 o, err, sizeof(err));

				if (all[k] == &fixed[0] && kind &&
				    (!strcmp(kind, "Role") ||
				     !strcmp(kind, "ClusterRole") ||
				     !strcmp(kind, "RoleBinding") ||
				     !strcmp(kind, "ClusterRoleBinding")) &&
				    !ok)
					abort();
			}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuser users[MAX_USERS];
	size_t nusers = 0, i;
	json_t *in, *o, *md;
	char err[256];
	rbac *r;

	in = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
	if (!json_is_array(in)) {
		json_decref(in);
		return 0;
	}
	r = rbac_new();
	if (!r)
		abort();
	json_array_foreach(in, i, o)
	{
		if (json_is_string(o) &&
		    !strcmp(json_string_value(o), "bootstrap")) {
			load_bootstrap(r);
		} else if (json_object_get(o, "kind")) {
			md = json_object_get(o, "metadata");
			rbac_set(r, sget(o, "kind"), sget(md, "namespace"),
				 sget(md, "name"),
				 json_is_true(json_object_get(o, "delete"))
				     ? NULL
				     : o,
				 err, sizeof(err));
		} else if (json_object_get(o, "user")) {
			add_user(users, &nusers, o);
		}
	}
	evaluate(r, in, users, nusers);
	rbac_free(r);
	json_decref(in);
	return 0;
}
