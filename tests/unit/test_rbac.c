/*
 * test_rbac.c -- the RBAC evaluator (src/security/rbac.c) against what
 * Kubernetes decides: rule matching (rbac/v1 evaluation_helpers.go),
 * subjects (rule.go appliesTo), the authorization matrix of the bootstrap
 * roles (bootstrappolicy/policy.go), aggregation (clusterroleaggregation
 * controller), escalation prevention (the policybased storages of
 * registry/rbac, Covers) and SelfSubjectRulesReview.
 *
 * JSON in the tables is written with ' for " to stay readable.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "security/rbac.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A JSON value from text where ' stands for ". */
static json_t *js(const char *text)
{
	json_error_t je;
	char *t = strdup(text), *p;
	json_t *j;

	assert_non_null(t);
	for (p = t; *p; p++)
		if (*p == '\'')
			*p = '"';
	j = json_loads(t, JSON_DECODE_ANY, &je);
	if (!j)
		fail_msg("bad test JSON %s: %s", t, je.text);
	free(t);
	return j;
}

/* rbac_set that must succeed. */
static void set(rbac *r, const char *kind, const char *ns, const char *name,
		const char *text)
{
	json_t *j = text ? js(text) : NULL;
	char err[256];
	int rc = rbac_set(r, kind, ns, name, j, err, sizeof(err));

	if (rc)
		fail_msg("rbac_set %s %s/%s: %d %s", kind, ns ? ns : "", name,
			 rc, err);
	json_decref(j);
}

/* A ClusterRoleBinding or RoleBinding of one subject. */
static void bind(rbac *r, const char *ns, const char *name,
		 const char *ref_kind, const char *ref, const char *subj_kind,
		 const char *subj)
{
	char buf[512];

	snprintf(buf, sizeof(buf),
		 "{'roleRef':{'apiGroup':'rbac.authorization.k8s.io',"
		 "'kind':'%s','name':'%s'},'subjects':[{'kind':'%s',"
		 "'name':'%s'}]}",
		 ref_kind, ref, subj_kind, subj);
	set(r, ns ? "RoleBinding" : "ClusterRoleBinding", ns, name, buf);
}

static void load_bootstrap(rbac *r)
{
	json_t *a = rbac_bootstrap(), *o;
	const char *kind, *name;
	char err[256];
	size_t i;

	assert_non_null(a);
	json_array_foreach(a, i, o)
	{
		kind = json_string_value(json_object_get(o, "kind"));
		name = json_string_value(
		    json_object_get(json_object_get(o, "metadata"), "name"));
		assert_int_equal(
		    rbac_set(r, kind, NULL, name, o, err, sizeof(err)), 0);
	}
	json_decref(a);
}

static const char *const authed[] = {"system:authenticated"};

static rbac_attrs res(const char *verb, const char *group, const char *resource,
		      const char *sub, const char *ns, const char *name)
{
	rbac_attrs a = {true, verb, group, resource, sub, name, ns, NULL};

	return a;
}

static rbac_attrs url(const char *verb, const char *path)
{
	rbac_attrs a = {false, verb, NULL, NULL, NULL, NULL, NULL, path};

	return a;
}

/* ---- rule matching --------------------------------------------------------
 */

static const struct {
	const char *rule;
	rbac_attrs a;
	bool want;
} rule_cases[] = {
    /* VerbMatches: "*" or exact, case-sensitive */
    {"{'verbs':['*'],'apiGroups':[''],'resources':['pods']}",
     {true, "deletecollection", "", "pods", "", "", "a", NULL},
     true},
    {"{'verbs':['get'],'apiGroups':[''],'resources':['pods']}",
     {true, "list", "", "pods", "", "", "a", NULL},
     false},
    {"{'verbs':['GET'],'apiGroups':[''],'resources':['pods']}",
     {true, "get", "", "pods", "", "p", "a", NULL},
     false},
    /* APIGroupMatches: "" is the core group, "*" any */
    {"{'verbs':['get'],'apiGroups':[''],'resources':['deployments']}",
     {true, "get", "apps", "deployments", "", "d", "a", NULL},
     false},
    {"{'verbs':['get'],'apiGroups':['*'],'resources':['deployments']}",
     {true, "get", "apps", "deployments", "", "d", "a", NULL},
     true},
    {"{'verbs':['get'],'resources':['pods']}",
     {true, "get", "", "pods", "", "p", "a", NULL},
     false},
    /* ResourceMatches: a plain resource does not cover its subresources */
    {"{'verbs':['get'],'apiGroups':[''],'resources':['pods']}",
     {true, "get", "", "pods", "status", "p", "a", NULL},
     false},
    {"{'verbs':['get'],'apiGroups':[''],'resources':['pods/status']}",
     {true, "get", "", "pods", "status", "p", "a", NULL},
     true},
    {"{'verbs':['get'],'apiGroups':[''],'resources':['pods/status']}",
     {true, "get", "", "pods", "", "p", "a", NULL},
     false},
    {"{'verbs':['get'],'apiGroups':[''],'resources':['*/status']}",
     {true, "get", "", "pods", "status", "p", "a", NULL},
     true},
    {"{'verbs':['get'],'apiGroups':[''],'resources':['*/status']}",
     {true, "get", "", "pods", "", "p", "a", NULL},
     false},
    {"{'verbs':['get'],'apiGroups':[''],'resources':['*/scale']}",
     {true, "get", "", "pods", "status", "p", "a", NULL},
     false},
    {"{'verbs':['get'],'apiGroups':[''],'resources':['*/']}",
     {true, "get", "", "pods", "", "p", "a", NULL},
     false},
    {"{'verbs':['get'],'apiGroups':[''],'resources':['*']}",
     {true, "get", "", "pods", "log", "p", "a", NULL},
     true},
    {"{'verbs':['get'],'apiGroups':[''],'resources':['Pods']}",
     {true, "get", "", "pods", "", "p", "a", NULL},
     false},
    /* ResourceNameMatches: empty = all; a named rule needs a name */
    {"{'verbs':['*'],'apiGroups':[''],'resources':['pods'],"
     "'resourceNames':['p']}",
     {true, "get", "", "pods", "", "p", "a", NULL},
     true},
    {"{'verbs':['*'],'apiGroups':[''],'resources':['pods'],"
     "'resourceNames':['p']}",
     {true, "delete", "", "pods", "", "q", "a", NULL},
     false},
    {"{'verbs':['*'],'apiGroups':[''],'resources':['pods'],"
     "'resourceNames':['p']}",
     {true, "list", "", "pods", "", "", "a", NULL},
     false},
    {"{'verbs':['*'],'apiGroups':[''],'resources':['pods'],"
     "'resourceNames':['p']}",
     {true, "create", "", "pods", "", NULL, "a", NULL},
     false},
    {"{'verbs':['*'],'apiGroups':[''],'resources':['pods'],"
     "'resourceNames':['p']}",
     {true, "deletecollection", "", "pods", "", "", "a", NULL},
     false},
    {"{'verbs':['*'],'apiGroups':[''],'resources':['pods'],"
     "'resourceNames':['p']}",
     {true, "watch", "", "pods", "", "", "a", NULL},
     false},
    /* NonResourceURLMatches: exact, "*", or prefix before trailing '*' */
    {"{'verbs':['get'],'nonResourceURLs':['/healthz']}",
     {false, "get", NULL, NULL, NULL, NULL, NULL, "/healthz"},
     true},
    {"{'verbs':['get'],'nonResourceURLs':['/healthz']}",
     {false, "get", NULL, NULL, NULL, NULL, NULL, "/healthz/"},
     false},
    {"{'verbs':['get'],'nonResourceURLs':['/api/*']}",
     {false, "get", NULL, NULL, NULL, NULL, NULL, "/api/v1"},
     true},
    {"{'verbs':['get'],'nonResourceURLs':['/api/*']}",
     {false, "get", NULL, NULL, NULL, NULL, NULL, "/api/"},
     true},
    {"{'verbs':['get'],'nonResourceURLs':['/api/*']}",
     {false, "get", NULL, NULL, NULL, NULL, NULL, "/api"},
     false},
    {"{'verbs':['get'],'nonResourceURLs':['/api*']}",
     {false, "get", NULL, NULL, NULL, NULL, NULL, "/apis/x"},
     true},
    {"{'verbs':['get'],'nonResourceURLs':['/api**']}",
     {false, "get", NULL, NULL, NULL, NULL, NULL, "/api"},
     true},
    {"{'verbs':['get'],'nonResourceURLs':['*']}",
     {false, "get", NULL, NULL, NULL, NULL, NULL, "/anything"},
     true},
    {"{'verbs':['get'],'nonResourceURLs':['*']}",
     {false, "post", NULL, NULL, NULL, NULL, NULL, "/anything"},
     false},
    /* resource rules and URL rules do not cross */
    {"{'verbs':['*'],'nonResourceURLs':['*']}",
     {true, "get", "", "pods", "", "p", "a", NULL},
     false},
    {"{'verbs':['*'],'apiGroups':['*'],'resources':['*']}",
     {false, "get", NULL, NULL, NULL, NULL, NULL, "/healthz"},
     false},
};

static void test_rule_matching(void **state)
{
	char rule[512], reason[256];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(rule_cases); i++) {
		rbac *r = rbac_new();
		rbac_user u = {"u", NULL, 0};
		bool got;

		assert_non_null(r);
		snprintf(rule, sizeof(rule), "{'rules':[%s]}",
			 rule_cases[i].rule);
		set(r, "ClusterRole", NULL, "r", rule);
		bind(r, NULL, "b", "ClusterRole", "r", "User", "u");
		got = rbac_allowed(r, &u, &rule_cases[i].a, reason,
				   sizeof(reason));
		if (got != rule_cases[i].want)
			fail_msg("rule case %zu (%s): got %d", i,
				 rule_cases[i].rule, got);
		rbac_free(r);
	}
}

/* ---- subjects and reasons ---------------------------------------------------
 */

static const struct {
	const char *ns;	     /* binding namespace, NULL: ClusterRoleBinding */
	const char *subject; /* JSON */
	const char *user;
	const char *group;
	const char *req_ns;
	const char *reason; /* NULL: denied */
} subject_cases[] = {
    {NULL, "{'kind':'User','name':'alice'}", "alice", NULL, "x",
     "RBAC: allowed by ClusterRoleBinding \"b\" of ClusterRole \"r\" to "
     "User \"alice\""},
    {NULL, "{'kind':'User','name':'alice'}", "Alice", NULL, "x", NULL},
    {NULL, "{'kind':'Group','name':'devs'}", "bob", "devs", "x",
     "RBAC: allowed by ClusterRoleBinding \"b\" of ClusterRole \"r\" to "
     "Group \"devs\""},
    {NULL, "{'kind':'Group','name':'devs'}", "devs", NULL, "x", NULL},
    /* a RoleBinding grants in its namespace only */
    {"a", "{'kind':'User','name':'alice'}", "alice", NULL, "a",
     "RBAC: allowed by RoleBinding \"b/a\" of ClusterRole \"r\" to User "
     "\"alice\""},
    {"a", "{'kind':'User','name':'alice'}", "alice", NULL, "b", NULL},
    {"a", "{'kind':'User','name':'alice'}", "alice", NULL, "", NULL},
    /* ServiceAccount: matched on the user name; namespace defaults to
     * the RoleBinding's */
    {"a", "{'kind':'ServiceAccount','name':'sa','namespace':'ci'}",
     "system:serviceaccount:ci:sa", NULL, "a",
     "RBAC: allowed by RoleBinding \"b/a\" of ClusterRole \"r\" to "
     "ServiceAccount \"sa/ci\""},
    {"a", "{'kind':'ServiceAccount','name':'sa'}", "system:serviceaccount:a:sa",
     NULL, "a",
     "RBAC: allowed by RoleBinding \"b/a\" of ClusterRole \"r\" to "
     "ServiceAccount \"sa/a\""},
    {"a", "{'kind':'ServiceAccount','name':'sa'}",
     "system:serviceaccount:ci:sa", NULL, "a", NULL},
    {NULL, "{'kind':'ServiceAccount','name':'sa'}", "system:serviceaccount::sa",
     NULL, "a", NULL},
    {NULL, "{'kind':'ServiceAccount','name':'sa','namespace':'ci'}",
     "system:serviceaccount:ci:sax", NULL, "a", NULL},
    {NULL, "{'kind':'ServiceAccount','name':'sa','namespace':'ci'}",
     "system:serviceaccount:cix:sa", NULL, "a", NULL},
    {NULL, "{'kind':'ServiceAccount','name':'sa','namespace':'ci'}", "sa",
     "system:serviceaccounts:ci", "a", NULL},
    {NULL, "{'kind':'Group','name':'system:serviceaccounts:ci'}",
     "system:serviceaccount:ci:sa", "system:serviceaccounts:ci", "a",
     "RBAC: allowed by ClusterRoleBinding \"b\" of ClusterRole \"r\" to "
     "Group \"system:serviceaccounts:ci\""},
    {NULL, "{'kind':'Robot','name':'alice'}", "alice", NULL, "a", NULL},
    /* Go %q quoting in reasons */
    {NULL, "{'kind':'User','name':'a\\\\\\'b\\n'}", "a\\\"b\n", NULL, "a",
     "RBAC: allowed by ClusterRoleBinding \"b\" of ClusterRole \"r\" to "
     "User \"a\\\\\\\"b\\n\""},
};

static void test_subjects(void **state)
{
	char buf[512], reason[256];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(subject_cases); i++) {
		rbac *r = rbac_new();
		const char *g = subject_cases[i].group;
		rbac_user u = {subject_cases[i].user, &g, g ? 1 : 0};
		rbac_attrs a =
		    res("get", "", "pods", "", subject_cases[i].req_ns, "p");
		bool got;

		set(r, "ClusterRole", NULL, "r",
		    "{'rules':[{'verbs':['get'],'apiGroups':[''],"
		    "'resources':['pods']}]}");
		snprintf(buf, sizeof(buf),
			 "{'roleRef':{'kind':'ClusterRole','name':'r'},"
			 "'subjects':[{'kind':'User','name':'nobody'},%s]}",
			 subject_cases[i].subject);
		set(r,
		    subject_cases[i].ns ? "RoleBinding" : "ClusterRoleBinding",
		    subject_cases[i].ns, "b", buf);
		got = rbac_allowed(r, &u, &a, reason, sizeof(reason));
		if (got != (subject_cases[i].reason != NULL))
			fail_msg("subject case %zu: got %d", i, got);
		assert_string_equal(reason, subject_cases[i].reason
						? subject_cases[i].reason
						: "");
		rbac_free(r);
	}
}

static void test_deny_reasons(void **state)
{
	rbac *r = rbac_new();
	rbac_user u = {"u", NULL, 0};
	rbac_attrs a = res("get", "", "pods", "", "a", "p");
	char reason[256];

	(void)state;
	/* bindings whose role is missing: k8s's lister NotFound, aggregated */
	bind(r, NULL, "b1", "ClusterRole", "gone", "User", "u");
	assert_false(rbac_allowed(r, &u, &a, reason, sizeof(reason)));
	assert_string_equal(
	    reason, "RBAC: clusterrole.rbac.authorization.k8s.io \"gone\" "
		    "not found");
	bind(r, "a", "b2", "Role", "lost", "User", "u");
	bind(r, "a", "b3", "Role", "lost", "User", "u");
	bind(r, "a", "b4", "Pole", "x", "User", "u");
	assert_false(rbac_allowed(r, &u, &a, reason, sizeof(reason)));
	assert_string_equal(
	    reason,
	    "RBAC: [clusterrole.rbac.authorization.k8s.io \"gone\" not found, "
	    "role.rbac.authorization.k8s.io \"lost\" not found, unsupported "
	    "role reference kind: \"Pole\"]");
	/* a binding that allows wins over the errors */
	set(r, "Role", "a", "lost",
	    "{'rules':[{'verbs':['get'],'apiGroups':[''],"
	    "'resources':['pods']}]}");
	assert_true(rbac_allowed(r, &u, &a, reason, sizeof(reason)));
	assert_string_equal(reason, "RBAC: allowed by RoleBinding \"b2/a\" of "
				    "Role \"lost\" to User \"u\"");
	/* a ClusterRoleBinding to a Role never resolves */
	rbac_free(r);
	r = rbac_new();
	bind(r, NULL, "b", "Role", "x", "User", "u");
	assert_false(rbac_allowed(r, &u, &a, reason, sizeof(reason)));
	assert_string_equal(
	    reason, "RBAC: role.rbac.authorization.k8s.io \"x\" not found");
	/* a non-resource request ignores RoleBindings, even given a ns */
	set(r, "ClusterRole", NULL, "urls",
	    "{'rules':[{'verbs':['get'],'nonResourceURLs':['*']}]}");
	bind(r, "a", "urls", "ClusterRole", "urls", "User", "u");
	{
		rbac_attrs na = url("get", "/healthz");

		na.ns = "a";
		assert_false(rbac_allowed(r, &u, &na, NULL, 0));
		bind(r, NULL, "urls", "ClusterRole", "urls", "User", "u");
		assert_true(rbac_allowed(r, &u, &na, NULL, 0));
		set(r, "ClusterRoleBinding", NULL, "urls", NULL);
		set(r, "RoleBinding", "a", "urls", NULL);
	}
	/* nothing bound: k8s gives an empty reason */
	assert_false(rbac_allowed(r, &(rbac_user){"v", NULL, 0}, &a, reason,
				  sizeof(reason)));
	assert_string_equal(reason, "");
	/* truncation */
	assert_false(rbac_allowed(r, &u, &a, reason, 8));
	assert_string_equal(reason, "RBAC: r");
	assert_false(rbac_allowed(r, &u, &a, NULL, 0));
	rbac_free(r);
}

/* ---- the authorization matrix
 * ------------------------------------------------ */

/*
 * Users: V bound cluster-wide to view (ClusterRoleBinding), E to edit in
 * namespace a (RoleBinding to ClusterRole edit), A to admin in a, R to
 * cluster-admin (ClusterRoleBinding to the user), M in group
 * system:masters (bootstrap binding), N anonymous (system:unauthenticated).
 * All but N are in system:authenticated.
 */
enum { U_V, U_E, U_A, U_R, U_M, U_N, NUSERS };

static const char *const verbs[8] = {
    "get",    "list",  "watch",	 "create",
    "update", "patch", "delete", "deletecollection"};
/* verbs that carry a name in the request (the others: list, watch,
 * create, deletecollection have none) */
static const bool named[8] = {true, false, false, false,
			      true, true,  true,  false};

#define ALL  "yyyyyyyy"
#define NONE "--------"
#define READ "yyy-----"

/*
 * One row: a resource, and for each user which of the 8 verbs (in the
 * order above) Kubernetes allows. Expectations come from
 * bootstrappolicy/policy.go: view = system:aggregate-to-view (namespaces
 * read, namespaces/status read), edit = view + system:aggregate-to-edit
 * (nothing signalbox serves), admin = edit + system:aggregate-to-admin
 * (roles/rolebindings read-write, create localsubjectaccessreviews); none
 * has leases (coordination.k8s.io is only in system:node,
 * kube-controller-manager...), CRDs, clusterroles or custom resources.
 */
static const struct {
	const char *group, *resource, *sub, *ns, *name;
	bool nsname; /* namespaces: named verbs have ns = name (RequestInfo) */
	const char *want[NUSERS];
} matrix[] = {
    {"coordination.k8s.io",
     "leases",
     "",
     "a",
     "l",
     false,
     {NONE, NONE, NONE, ALL, ALL, NONE}},
    {"coordination.k8s.io",
     "leases",
     "",
     "b",
     "l",
     false,
     {NONE, NONE, NONE, ALL, ALL, NONE}},
    /* namespaces: get a as ns=a name=a; list/watch/create with ns "".
     * The RoleBindings in a let E and A read namespace a only. */
    {"",
     "namespaces",
     "",
     NULL,
     "a",
     true,
     {READ, "y-------", "y-------", ALL, ALL, NONE}},
    {"", "namespaces", "", NULL, "b", true, {READ, NONE, NONE, ALL, ALL, NONE}},
    {"",
     "namespaces",
     "status",
     NULL,
     "a",
     true,
     {READ, "y-------", "y-------", ALL, ALL, NONE}},
    {"apiextensions.k8s.io",
     "customresourcedefinitions",
     "",
     "",
     "w",
     false,
     {NONE, NONE, NONE, ALL, ALL, NONE}},
    {"rbac.authorization.k8s.io",
     "clusterroles",
     "",
     "",
     "view",
     false,
     {NONE, NONE, NONE, ALL, ALL, NONE}},
    {"rbac.authorization.k8s.io",
     "clusterrolebindings",
     "",
     "",
     "x",
     false,
     {NONE, NONE, NONE, ALL, ALL, NONE}},
    {"rbac.authorization.k8s.io",
     "roles",
     "",
     "a",
     "r",
     false,
     {NONE, NONE, ALL, ALL, ALL, NONE}},
    {"rbac.authorization.k8s.io",
     "roles",
     "",
     "b",
     "r",
     false,
     {NONE, NONE, NONE, ALL, ALL, NONE}},
    {"rbac.authorization.k8s.io",
     "rolebindings",
     "",
     "a",
     "rb",
     false,
     {NONE, NONE, ALL, ALL, ALL, NONE}},
    {"rbac.authorization.k8s.io",
     "rolebindings",
     "",
     "b",
     "rb",
     false,
     {NONE, NONE, NONE, ALL, ALL, NONE}},
    /* a custom resource: view/edit/admin only see what some ClusterRole
     * labelled aggregate-to-* grants, and none does */
    {"example.com",
     "widgets",
     "",
     "a",
     "w",
     false,
     {NONE, NONE, NONE, ALL, ALL, NONE}},
    {"example.com",
     "widgets",
     "status",
     "a",
     "w",
     false,
     {NONE, NONE, NONE, ALL, ALL, NONE}},
    {"coordination.k8s.io",
     "leases",
     "status",
     "a",
     "l",
     false,
     {NONE, NONE, NONE, ALL, ALL, NONE}},
    /* system:aggregate-to-admin: create localsubjectaccessreviews */
    {"authorization.k8s.io",
     "localsubjectaccessreviews",
     "",
     "a",
     "",
     false,
     {NONE, NONE, "---y----", ALL, ALL, NONE}},
    /* system:basic-user, bound to system:authenticated */
    {"authorization.k8s.io",
     "selfsubjectaccessreviews",
     "",
     "",
     "",
     false,
     {"---y----", "---y----", "---y----", ALL, ALL, NONE}},
    {"authorization.k8s.io",
     "selfsubjectrulesreviews",
     "",
     "",
     "",
     false,
     {"---y----", "---y----", "---y----", ALL, ALL, NONE}},
};

static const struct {
	const char *verb, *path;
	const char *want; /* per user: y or - */
} url_matrix[] = {
    /* system:discovery: system:authenticated only (since k8s 1.14) */
    {"get", "/api", "yyyyy-"},
    {"get", "/api/v1", "yyyyy-"},
    {"get", "/apis", "yyyyy-"},
    {"get", "/apis/mesh.signalbox.dev/v1alpha1", "yyyyy-"},
    {"get", "/openapi/v2", "yyyyy-"},
    {"get", "/openapi", "yyyyy-"},
    /* system:public-info-viewer: also system:unauthenticated */
    {"get", "/healthz", "yyyyyy"},
    {"get", "/livez", "yyyyyy"},
    {"get", "/readyz", "yyyyyy"},
    {"get", "/version", "yyyyyy"},
    {"get", "/version/", "yyyyyy"},
    /* not prefixes: exact URLs */
    {"get", "/healthz/etcd", "---yy-"},
    {"get", "/version/x", "---yy-"},
    {"get", "/metrics", "---yy-"},
    {"post", "/api", "---yy-"},
    {"put", "/healthz", "---yy-"},
};

static rbac *matrix_policy(void)
{
	rbac *r = rbac_new();

	assert_non_null(r);
	load_bootstrap(r);
	bind(r, NULL, "viewers", "ClusterRole", "view", "User", "viewer");
	bind(r, "a", "editors", "ClusterRole", "edit", "User", "editor");
	bind(r, "a", "admins", "ClusterRole", "admin", "User", "nsadmin");
	bind(r, NULL, "root", "ClusterRole", "cluster-admin", "User", "root");
	return r;
}

static const char *const masters[] = {"system:masters", "system:authenticated"};
static const char *const unauth[] = {"system:unauthenticated"};

static rbac_user matrix_user(int i)
{
	static const char *const names[NUSERS] = {
	    "viewer", "editor", "nsadmin", "root", "m", "system:anonymous"};
	rbac_user u = {names[i], authed, 1};

	if (i == U_M)
		u.groups = masters, u.ngroups = 2;
	if (i == U_N)
		u.groups = unauth;
	return u;
}

static void test_matrix(void **state)
{
	static const char uname[] = "VEARMN";
	rbac *r = matrix_policy();
	char reason[512];
	size_t i, v;
	int ui;

	(void)state;
	for (i = 0; i < ARRAY_LEN(matrix); i++) {
		for (ui = 0; ui < NUSERS; ui++) {
			rbac_user u = matrix_user(ui);

			for (v = 0; v < 8; v++) {
				const char *name =
				    named[v] ? matrix[i].name : "";
				const char *ns = matrix[i].ns;
				rbac_attrs a;
				bool want = matrix[i].want[ui][v] == 'y', got;

				if (matrix[i].nsname)
					ns = named[v] ? matrix[i].name : "";
				a = res(verbs[v], matrix[i].group,
					matrix[i].resource, matrix[i].sub, ns,
					name);
				got = rbac_allowed(r, &u, &a, reason,
						   sizeof(reason));
				if (got != want)
					fail_msg("%c %s %s.%s/%s ns=%s: got %d "
						 "(%s)",
						 uname[ui], verbs[v],
						 matrix[i].resource,
						 matrix[i].group, matrix[i].sub,
						 ns, got, reason);
			}
		}
	}
	for (i = 0; i < ARRAY_LEN(url_matrix); i++) {
		for (ui = 0; ui < NUSERS; ui++) {
			rbac_user u = matrix_user(ui);
			rbac_attrs a =
			    url(url_matrix[i].verb, url_matrix[i].path);
			bool want = url_matrix[i].want[ui] == 'y';

			if (rbac_allowed(r, &u, &a, reason, sizeof(reason)) !=
			    want)
				fail_msg("%c %s %s: want %d", uname[ui],
					 url_matrix[i].verb, url_matrix[i].path,
					 want);
		}
	}
	/* the reasons name the binding that allowed */
	{
		rbac_user u = matrix_user(U_M);
		rbac_attrs a = res("delete", "", "namespaces", "", "x", "x");

		assert_true(rbac_allowed(r, &u, &a, reason, sizeof(reason)));
		assert_string_equal(
		    reason, "RBAC: allowed by ClusterRoleBinding "
			    "\"cluster-admin\" of ClusterRole "
			    "\"cluster-admin\" to Group \"system:masters\"");
		u = matrix_user(U_E);
		a = res("get", "", "namespaces", "", "a", "a");
		assert_true(rbac_allowed(r, &u, &a, reason, sizeof(reason)));
		assert_string_equal(
		    reason, "RBAC: allowed by RoleBinding \"editors/a\" "
			    "of ClusterRole \"edit\" to User "
			    "\"editor\"");
	}
	rbac_free(r);
}

/* ---- aggregation
 * --------------------------------------------------------------- */

static bool can(const rbac *r, const char *user, const char *verb,
		const char *group, const char *resource, const char *ns)
{
	rbac_user u = {user, authed, 1};
	rbac_attrs a = res(verb, group, resource, "", ns, "x");

	return rbac_allowed(r, &u, &a, NULL, 0);
}

#define WIDGETS_RULES                                                          \
	"'rules':[{'verbs':['get','list','watch'],"                            \
	"'apiGroups':['example.com'],'resources':['widgets']}]"

static void test_aggregation_labels(void **state)
{
	rbac *r = matrix_policy();

	(void)state;
	set(r, "ClusterRole", NULL, "widgets-reader", "{" WIDGETS_RULES "}");
	assert_false(can(r, "viewer", "get", "example.com", "widgets", "a"));
	assert_false(can(r, "nsadmin", "get", "example.com", "widgets", "a"));

	/* labelled aggregate-to-view: view, edit (which aggregates view) and
	 * admin (which aggregates edit) all gain it */
	set(r, "ClusterRole", NULL, "widgets-reader",
	    "{'metadata':{'labels':{'rbac.authorization.k8s.io/"
	    "aggregate-to-view':'true'}}," WIDGETS_RULES "}");
	assert_true(can(r, "viewer", "get", "example.com", "widgets", "b"));
	assert_true(can(r, "editor", "list", "example.com", "widgets", "a"));
	assert_true(can(r, "nsadmin", "watch", "example.com", "widgets", "a"));
	assert_false(can(r, "editor", "get", "example.com", "widgets", "b"));
	assert_false(can(r, "viewer", "create", "example.com", "widgets", "b"));

	/* moved to aggregate-to-edit: view loses it, edit and admin keep it */
	set(r, "ClusterRole", NULL, "widgets-reader",
	    "{'metadata':{'labels':{'rbac.authorization.k8s.io/"
	    "aggregate-to-edit':'true'}}," WIDGETS_RULES "}");
	assert_false(can(r, "viewer", "get", "example.com", "widgets", "a"));
	assert_true(can(r, "editor", "get", "example.com", "widgets", "a"));
	assert_true(can(r, "nsadmin", "get", "example.com", "widgets", "a"));

	/* label value must match exactly */
	set(r, "ClusterRole", NULL, "widgets-reader",
	    "{'metadata':{'labels':{'rbac.authorization.k8s.io/"
	    "aggregate-to-edit':'True'}}," WIDGETS_RULES "}");
	assert_false(can(r, "editor", "get", "example.com", "widgets", "a"));

	/* the view role itself loses its aggregation when replaced without
	 * an aggregationRule: its own (empty) rules count */
	set(r, "ClusterRole", NULL, "widgets-reader",
	    "{'metadata':{'labels':{'rbac.authorization.k8s.io/"
	    "aggregate-to-view':'true'}}," WIDGETS_RULES "}");
	assert_true(can(r, "editor", "get", "example.com", "widgets", "a"));
	set(r, "ClusterRole", NULL, "view",
	    "{'metadata':{'labels':{'rbac.authorization.k8s.io/"
	    "aggregate-to-edit':'true'}}}");
	assert_false(can(r, "viewer", "get", "example.com", "widgets", "a"));
	assert_false(can(r, "editor", "get", "example.com", "widgets", "a"));
	assert_false(can(r, "viewer", "get", "", "namespaces", ""));

	/* deleting the source role removes it everywhere */
	load_bootstrap(r);
	assert_true(can(r, "editor", "get", "example.com", "widgets", "a"));
	set(r, "ClusterRole", NULL, "widgets-reader", NULL);
	assert_false(can(r, "editor", "get", "example.com", "widgets", "a"));
	assert_true(can(r, "viewer", "get", "", "namespaces", ""));
	rbac_free(r);
}

static const struct {
	const char *labels; /* JSON object of the source role's labels */
	bool want;
} expr_cases[] = {
    {"{'tier':'gold'}", true},
    {"{'tier':'silver'}", false},
    {"{'tier':'gold','legacy':'1'}", false}, /* DoesNotExist legacy */
    {"{}", false},
    {"{'tier':'gold','zone':'x'}", true},
    {"{'tier':'gold','zone':'bad'}", false}, /* NotIn */
    {"{'owner':'me'}", true},		     /* second selector: Exists */
};

static void test_aggregation_expressions(void **state)
{
	char buf[512];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(expr_cases); i++) {
		rbac *r = rbac_new();

		set(r, "ClusterRole", NULL, "agg",
		    "{'aggregationRule':{'clusterRoleSelectors':["
		    "{'matchLabels':{'tier':'gold'},'matchExpressions':["
		    "{'key':'legacy','operator':'DoesNotExist'},"
		    "{'key':'zone','operator':'NotIn','values':['bad']}]},"
		    "{'matchExpressions':[{'key':'owner','operator':'Exists'},"
		    "{'key':'tier','operator':'NotIn','values':['gold',"
		    "'silver']}]}]},"
		    "'rules':[{'verbs':['*'],'apiGroups':['*'],"
		    "'resources':['*']}]}");
		bind(r, NULL, "b", "ClusterRole", "agg", "User", "u");
		snprintf(buf, sizeof(buf),
			 "{'metadata':{'labels':%s}," WIDGETS_RULES "}",
			 expr_cases[i].labels);
		set(r, "ClusterRole", NULL, "src", buf);
		/* the aggregated role's own rules ("*") never count */
		assert_false(can(r, "u", "get", "", "pods", "a"));
		if (can(r, "u", "get", "example.com", "widgets", "a") !=
		    expr_cases[i].want)
			fail_msg("expression case %zu: %s", i,
				 expr_cases[i].labels);
		rbac_free(r);
	}
}

static void test_aggregation_cycles(void **state)
{
	rbac *r = rbac_new();

	(void)state;
	/* x aggregates label a and carries b; y aggregates b and carries a;
	 * z carries a. Both end up with z's rules; nothing loops. */
	set(r, "ClusterRole", NULL, "x",
	    "{'metadata':{'labels':{'b':'1'}},'aggregationRule':"
	    "{'clusterRoleSelectors':[{'matchLabels':{'a':'1'}}]}}");
	set(r, "ClusterRole", NULL, "y",
	    "{'metadata':{'labels':{'a':'1'}},'aggregationRule':"
	    "{'clusterRoleSelectors':[{'matchLabels':{'b':'1'}}]}}");
	bind(r, NULL, "bx", "ClusterRole", "x", "User", "ux");
	bind(r, NULL, "by", "ClusterRole", "y", "User", "uy");
	assert_false(can(r, "ux", "get", "example.com", "widgets", "a"));
	set(r, "ClusterRole", NULL, "z",
	    "{'metadata':{'labels':{'a':'1'}}," WIDGETS_RULES "}");
	assert_true(can(r, "ux", "get", "example.com", "widgets", "a"));
	assert_true(can(r, "uy", "get", "example.com", "widgets", "a"));
	/* equal rules from two sources are aggregated once */
	set(r, "ClusterRole", NULL, "z2",
	    "{'metadata':{'labels':{'a':'1'}}," WIDGETS_RULES "}");
	{
		rbac_user u = {"ux", NULL, 0};
		json_t *j = rbac_rules_for(r, &u, "");

		assert_int_equal(
		    json_array_size(json_object_get(j, "resourceRules")), 1);
		json_decref(j);
	}
	set(r, "ClusterRole", NULL, "z2", NULL);
	/* the selector matching nothing at all, and a deletion */
	set(r, "ClusterRole", NULL, "z", NULL);
	assert_false(can(r, "ux", "get", "example.com", "widgets", "a"));
	assert_false(can(r, "uy", "get", "example.com", "widgets", "a"));
	rbac_free(r);
}

/* ---- escalation
 * ------------------------------------------------------------------ */

static const struct {
	const char *user;
	const char *kind, *ns;
	const char *obj;
	const char *err; /* NULL: allowed */
} esc_cases[] = {
    /* editor: can write a Role with a subset of edit in a ... */
    {"editor", "Role", "a",
     "{'metadata':{'name':'r'},'rules':[{'verbs':['get'],"
     "'apiGroups':[''],'resources':['namespaces']}]}",
     NULL},
    /* ... not in b */
    {"editor", "Role", "b",
     "{'metadata':{'name':'r'},'rules':[{'verbs':['get'],"
     "'apiGroups':[''],'resources':['namespaces']}]}",
     "roles.rbac.authorization.k8s.io \"r\" is forbidden: user \"editor\" "
     "(groups=[\"system:authenticated\"]) is attempting to grant RBAC "
     "permissions not currently held:\n{APIGroups:[\"\"], "
     "Resources:[\"namespaces\"], Verbs:[\"get\"]}"},
    /* secrets and nodes: edit has neither; verbs of one resource are
     * compacted, lines sorted */
    {"editor", "Role", "a",
     "{'metadata':{'name':'r'},'rules':[{'verbs':['get','list'],"
     "'apiGroups':[''],'resources':['secrets','nodes']},"
     "{'verbs':['get'],'apiGroups':[''],'resources':['namespaces']}]}",
     "roles.rbac.authorization.k8s.io \"r\" is forbidden: user \"editor\" "
     "(groups=[\"system:authenticated\"]) is attempting to grant RBAC "
     "permissions not currently held:\n"
     "{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\" \"list\"]}\n"
     "{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" "
     "\"list\"]}"},
    /* admin holds roles/rolebindings and localsubjectaccessreviews */
    {"nsadmin", "Role", "a",
     "{'metadata':{'name':'r'},'rules':[{'verbs':['create','get'],"
     "'apiGroups':['rbac.authorization.k8s.io'],'resources':['roles',"
     "'rolebindings']},{'verbs':['create'],'apiGroups':["
     "'authorization.k8s.io'],'resources':['localsubjectaccessreviews']}]}",
     NULL},
    /* resourceNames: a subset of an unnamed grant is covered */
    {"nsadmin", "Role", "a",
     "{'metadata':{'name':'r'},'rules':[{'verbs':['get'],"
     "'apiGroups':['rbac.authorization.k8s.io'],'resources':['roles'],"
     "'resourceNames':['x','y']}]}",
     NULL},
    /* a subresource is not covered by its resource */
    {"nsadmin", "Role", "a",
     "{'metadata':{'name':'r'},'rules':[{'verbs':['get'],"
     "'apiGroups':['rbac.authorization.k8s.io'],"
     "'resources':['roles/status'],'resourceNames':['x']}]}",
     "roles.rbac.authorization.k8s.io \"r\" is forbidden: user \"nsadmin\" "
     "(groups=[\"system:authenticated\"]) is attempting to grant RBAC "
     "permissions not currently held:\n{APIGroups:[\"rbac.authorization."
     "k8s.io\"], Resources:[\"roles/status\"], ResourceNames:[\"x\"], "
     "Verbs:[\"get\"]}"},
    /* "*" verbs are not held by a list of verbs */
    {"nsadmin", "Role", "a",
     "{'metadata':{'name':'r'},'rules':[{'verbs':['*'],"
     "'apiGroups':['rbac.authorization.k8s.io'],'resources':['roles']}]}",
     "roles.rbac.authorization.k8s.io \"r\" is forbidden: user \"nsadmin\" "
     "(groups=[\"system:authenticated\"]) is attempting to grant RBAC "
     "permissions not currently held:\n{APIGroups:[\"rbac.authorization."
     "k8s.io\"], Resources:[\"roles\"], Verbs:[\"*\"]}"},
    /* non-resource URLs: discovery holds "/api/" + "*" */
    {"viewer", "ClusterRole", NULL,
     "{'metadata':{'name':'c'},'rules':[{'verbs':['get'],"
     "'nonResourceURLs':['/api/v1','/apis/*','/healthz','/metrics']}]}",
     "clusterroles.rbac.authorization.k8s.io \"c\" is forbidden: user "
     "\"viewer\" (groups=[\"system:authenticated\"]) is attempting to "
     "grant RBAC permissions not currently held:\n"
     "{NonResourceURLs:[\"/metrics\"], Verbs:[\"get\"]}"},
    /* an empty role escalates nothing */
    {"viewer", "ClusterRole", NULL, "{'metadata':{'name':'c'}}", NULL},
    /* aggregationRule needs full authority, whatever the rules */
    {"viewer", "ClusterRole", NULL,
     "{'metadata':{'name':'c'},'aggregationRule':{'clusterRoleSelectors':"
     "[{'matchLabels':{'x':'y'}}]}}",
     "clusterroles.rbac.authorization.k8s.io \"c\" is forbidden: must have "
     "cluster-admin privileges to use the aggregationRule"},
    {"root", "ClusterRole", NULL,
     "{'metadata':{'name':'c'},'aggregationRule':{'clusterRoleSelectors':"
     "[{'matchLabels':{'x':'y'}}]}}",
     NULL},
    /* system:masters may do anything */
    {"m", "ClusterRole", NULL,
     "{'metadata':{'name':'c'},'rules':[{'verbs':['*'],'apiGroups':['*'],"
     "'resources':['*']}]}",
     NULL},
    /* bindings: hold every permission of the role in the namespace */
    {"nsadmin", "RoleBinding", "a",
     "{'metadata':{'name':'rb'},'roleRef':{'apiGroup':"
     "'rbac.authorization.k8s.io','kind':'ClusterRole','name':'edit'},"
     "'subjects':[{'kind':'User','name':'x'}]}",
     NULL},
    {"nsadmin", "RoleBinding", "a",
     "{'metadata':{'name':'rb'},'roleRef':{'apiGroup':"
     "'rbac.authorization.k8s.io','kind':'ClusterRole','name':'admin'}}",
     NULL},
    {"nsadmin", "RoleBinding", "b",
     "{'metadata':{'name':'rb'},'roleRef':{'apiGroup':"
     "'rbac.authorization.k8s.io','kind':'ClusterRole','name':"
     "'system:basic-user'}}",
     NULL},
    {"editor", "RoleBinding", "a",
     "{'metadata':{'name':'rb'},'roleRef':{'apiGroup':"
     "'rbac.authorization.k8s.io','kind':'ClusterRole','name':'admin'}}",
     "rolebindings.rbac.authorization.k8s.io \"rb\" is forbidden: user "
     "\"editor\" (groups=[\"system:authenticated\"]) is attempting to "
     "grant RBAC permissions not currently held:\n{APIGroups:["
     "\"authorization.k8s.io\"], Resources:[\"localsubjectaccessreviews\"]"
     ", Verbs:[\"create\"]}\n{APIGroups:[\"rbac.authorization.k8s.io\"], "
     "Resources:[\"rolebindings\"], Verbs:[\"get\" \"list\" \"watch\" "
     "\"create\" \"update\" \"patch\" \"delete\" \"deletecollection\"]}\n"
     "{APIGroups:[\"rbac.authorization.k8s.io\"], Resources:[\"roles\"], "
     "Verbs:[\"get\" \"list\" \"watch\" \"create\" \"update\" \"patch\" "
     "\"delete\" \"deletecollection\"]}"},
    {"nsadmin", "RoleBinding", "a",
     "{'metadata':{'name':'rb'},'roleRef':{'apiGroup':"
     "'rbac.authorization.k8s.io','kind':'ClusterRole','name':"
     "'cluster-admin'}}",
     "rolebindings.rbac.authorization.k8s.io \"rb\" is forbidden: user "
     "\"nsadmin\" (groups=[\"system:authenticated\"]) is attempting to "
     "grant RBAC permissions not currently held:\n{APIGroups:[\"*\"], "
     "Resources:[\"*\"], Verbs:[\"*\"]}\n{NonResourceURLs:[\"*\"], "
     "Verbs:[\"*\"]}"},
    /* the bind verb on that very role, in that namespace */
    {"binder", "RoleBinding", "a",
     "{'metadata':{'name':'rb'},'roleRef':{'apiGroup':"
     "'rbac.authorization.k8s.io','kind':'ClusterRole','name':"
     "'cluster-admin'}}",
     NULL},
    {"binder", "RoleBinding", "a",
     "{'metadata':{'name':'rb'},'roleRef':{'apiGroup':"
     "'rbac.authorization.k8s.io','kind':'ClusterRole','name':'admin'}}",
     "rolebindings.rbac.authorization.k8s.io \"rb\" is forbidden: user "
     "\"binder\" (groups=[\"system:authenticated\"]) is attempting to "
     "grant RBAC permissions not currently held:\n"
     "{APIGroups:[\"\"], Resources:[\"namespaces\"], Verbs:[\"list\" "
     "\"watch\"]}\n"
     "{APIGroups:[\"\"], Resources:[\"namespaces/status\"], Verbs:[\"get\" "
     "\"list\" \"watch\"]}\n"
     "{APIGroups:[\"authorization.k8s.io\"], "
     "Resources:[\"localsubjectaccessreviews\"], Verbs:[\"create\"]}\n"
     "{APIGroups:[\"mesh.signalbox.dev\"], Resources:[\"networks\"], "
     "Verbs:[\"get\" \"list\" \"watch\" \"create\" \"update\" \"patch\" \"delete\" \"deletecollection\"]}\n"
     "{APIGroups:[\"mesh.signalbox.dev\"], Resources:[\"peers\"], "
     "Verbs:[\"get\" \"list\" \"watch\" \"create\" \"update\" \"patch\" \"delete\" \"deletecollection\"]}\n"
     "{APIGroups:[\"mesh.signalbox.dev\"], Resources:[\"peers/networkmap\"], "
     "Verbs:[\"get\" \"list\" \"watch\"]}\n"
     "{APIGroups:[\"mesh.signalbox.dev\"], Resources:[\"peers/status\"], "
     "Verbs:[\"get\" \"list\" \"watch\"]}\n"
     "{APIGroups:[\"mesh.signalbox.dev\"], Resources:[\"policies\"], "
     "Verbs:[\"get\" \"list\" \"watch\" \"create\" \"update\" \"patch\" \"delete\" \"deletecollection\"]}\n"
     "{APIGroups:[\"mesh.signalbox.dev\"], Resources:[\"routes\"], "
     "Verbs:[\"get\" \"list\" \"watch\" \"create\" \"update\" \"patch\" \"delete\" \"deletecollection\"]}\n"
     "{APIGroups:[\"mesh.signalbox.dev\"], Resources:[\"setupkeys\"], "
     "Verbs:[\"get\" \"list\" \"watch\" \"create\" \"update\" \"patch\" \"delete\" \"deletecollection\"]}\n"
     "{APIGroups:[\"rbac.authorization.k8s.io\"], "
     "Resources:[\"rolebindings\"], Verbs:[\"get\" \"list\" \"watch\" "
     "\"create\" \"update\" \"patch\" \"delete\" \"deletecollection\"]}\n"
     "{APIGroups:[\"rbac.authorization.k8s.io\"], Resources:[\"roles\"], "
     "Verbs:[\"get\" \"list\" \"watch\" \"create\" \"update\" \"patch\" "
     "\"delete\" \"deletecollection\"]}"},
    {"binder", "ClusterRoleBinding", NULL,
     "{'metadata':{'name':'crb'},'roleRef':{'apiGroup':"
     "'rbac.authorization.k8s.io','kind':'ClusterRole','name':"
     "'cluster-admin'}}",
     "clusterrolebindings.rbac.authorization.k8s.io \"crb\" is forbidden: "
     "user \"binder\" (groups=[\"system:authenticated\"]) is attempting "
     "to grant RBAC permissions not currently held:\n{APIGroups:[\"*\"], "
     "Resources:[\"*\"], Verbs:[\"*\"]}\n{NonResourceURLs:[\"*\"], "
     "Verbs:[\"*\"]}"},
    {"viewer", "ClusterRoleBinding", NULL,
     "{'metadata':{'name':'crb'},'roleRef':{'apiGroup':"
     "'rbac.authorization.k8s.io','kind':'ClusterRole','name':'view'}}",
     NULL},
    /* escalate on roles in a: any Role in a */
    {"escalator", "Role", "a",
     "{'metadata':{'name':'r'},'rules':[{'verbs':['*'],'apiGroups':['*'],"
     "'resources':['*']}]}",
     NULL},
    {"escalator", "Role", "b",
     "{'metadata':{'name':'r'},'rules':[{'verbs':['get'],'apiGroups':[''],"
     "'resources':['secrets']}]}",
     "roles.rbac.authorization.k8s.io \"r\" is forbidden: user "
     "\"escalator\" (groups=[\"system:authenticated\"]) is attempting to "
     "grant RBAC permissions not currently held:\n{APIGroups:[\"\"], "
     "Resources:[\"secrets\"], Verbs:[\"get\"]}"},
    /* "*" + "/status" covers every status subresource, not resources */
    {"statuser", "Role", "a",
     "{'metadata':{'name':'r'},'rules':[{'verbs':['get'],'apiGroups':[''],"
     "'resources':['pods/status','namespaces/status']}]}",
     NULL},
    {"statuser", "Role", "a",
     "{'metadata':{'name':'r'},'rules':[{'verbs':['get'],'apiGroups':[''],"
     "'resources':['pods/status/x','pods']}]}",
     "roles.rbac.authorization.k8s.io \"r\" is forbidden: user "
     "\"statuser\" (groups=[\"system:authenticated\"]) is attempting to "
     "grant RBAC permissions not currently held:\n{APIGroups:[\"\"], "
     "Resources:[\"pods\"], Verbs:[\"get\"]}\n{APIGroups:[\"\"], "
     "Resources:[\"pods/status/x\"], Verbs:[\"get\"]}"},
    /* errors that are not escalations */
    {"nsadmin", "RoleBinding", "a",
     "{'metadata':{'name':'rb'},'roleRef':{'apiGroup':"
     "'rbac.authorization.k8s.io','kind':'ClusterRole','name':'nope'}}",
     "clusterroles.rbac.authorization.k8s.io \"nope\" not found"},
    {"nsadmin", "Role", "a", "{'metadata':{'name':'r'},'rules':[{'verbs':1}]}",
     "rules[0].verbs: must be an array of strings"},
    {"nsadmin", "RoleBinding", "a", "{'metadata':{'name':'rb'}}",
     "roleRef: Required value"},
    {"nsadmin", "Pod", "a", "{}", "unknown kind \"Pod\""},
};

static void test_escalation(void **state)
{
	rbac *r = matrix_policy();
	char err[2048];
	size_t i;

	(void)state;
	/* binder: may bind cluster-admin in a, and read namespaces there */
	set(r, "Role", "a", "binder",
	    "{'rules':[{'verbs':['bind'],'apiGroups':["
	    "'rbac.authorization.k8s.io'],'resources':['clusterroles'],"
	    "'resourceNames':['cluster-admin']},{'verbs':['get'],"
	    "'apiGroups':[''],'resources':['namespaces']}]}");
	bind(r, "a", "binder", "Role", "binder", "User", "binder");
	set(r, "Role", "a", "escalator",
	    "{'rules':[{'verbs':['escalate'],'apiGroups':["
	    "'rbac.authorization.k8s.io'],'resources':['roles']}]}");
	bind(r, "a", "escalator", "Role", "escalator", "User", "escalator");
	set(r, "Role", "a", "statuser",
	    "{'rules':[{'verbs':['get'],'apiGroups':[''],"
	    "'resources':['*/status']}]}");
	bind(r, "a", "statuser", "Role", "statuser", "User", "statuser");
	for (i = 0; i < ARRAY_LEN(esc_cases); i++) {
		json_t *o = js(esc_cases[i].obj);
		rbac_user u = matrix_user(U_V);
		bool got;

		u.name = esc_cases[i].user;
		if (!strcmp(u.name, "m"))
			u = matrix_user(U_M);
		got = rbac_may_write(r, &u, esc_cases[i].kind, esc_cases[i].ns,
				     o, err, sizeof(err));
		json_decref(o);
		if (got != !esc_cases[i].err)
			fail_msg("escalation case %zu: got %d: %s", i, got,
				 err);
		assert_string_equal(err,
				    esc_cases[i].err ? esc_cases[i].err : "");
	}
	rbac_free(r);
}

static void test_escalation_details(void **state)
{
	rbac *r = matrix_policy();
	rbac_user u = matrix_user(U_E);
	char err[1024];
	json_t *o;

	(void)state;
	/* escalate restricted by name works for updates only: on a create
	 * the request has no name */
	set(r, "Role", "a", "esc-named",
	    "{'rules':[{'verbs':['escalate'],'apiGroups':["
	    "'rbac.authorization.k8s.io'],'resources':['roles'],"
	    "'resourceNames':['target']}]}");
	bind(r, "a", "esc-named", "Role", "esc-named", "User", "editor");
	o = js("{'metadata':{'name':'target'},'rules':[{'verbs':['get'],"
	       "'apiGroups':[''],'resources':['secrets']}]}");
	assert_false(rbac_may_write(r, &u, "Role", "a", o, err, sizeof(err)));
	set(r, "Role", "a", "target", "{'rules':[]}");
	assert_true(rbac_may_write(r, &u, "Role", "a", o, err, sizeof(err)));
	json_decref(o);

	/* resolution errors are reported after the missing rules */
	bind(r, "a", "broken", "ClusterRole", "gone", "User", "editor");
	o = js("{'metadata':{'name':'x'},'rules':[{'verbs':['get'],"
	       "'apiGroups':[''],'resources':['pods']}]}");
	assert_false(rbac_may_write(r, &u, "Role", "a", o, err, sizeof(err)));
	assert_string_equal(
	    err, "roles.rbac.authorization.k8s.io \"x\" is forbidden: user "
		 "\"editor\" (groups=[\"system:authenticated\"]) is attempting "
		 "to grant RBAC permissions not currently held:\n"
		 "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"get\"]}; "
		 "resolution errors: [clusterroles.rbac.authorization.k8s.io "
		 "\"gone\" not found]");
	json_decref(o);

	/* changing an existing aggregationRule needs full authority, keeping
	 * it does not (edit holds nothing, so an empty rule list is fine) */
	set(r, "ClusterRole", NULL, "agg",
	    "{'aggregationRule':{'clusterRoleSelectors':[{'matchLabels':"
	    "{'k':'v'}}]}}");
	o = js("{'metadata':{'name':'agg'},'aggregationRule':"
	       "{'clusterRoleSelectors':[{'matchLabels':{'k':'v'}}]}}");
	assert_true(
	    rbac_may_write(r, &u, "ClusterRole", NULL, o, err, sizeof(err)));
	json_decref(o);
	o = js("{'metadata':{'name':'agg'},'aggregationRule':"
	       "{'clusterRoleSelectors':[{'matchLabels':{'k':'w'}}]}}");
	assert_false(
	    rbac_may_write(r, &u, "ClusterRole", NULL, o, err, sizeof(err)));
	json_decref(o);
	rbac_free(r);
}

/* A role with g groups, r resources and v verbs, as a new JSON object. */
static json_t *wide_role(size_t g, size_t r, size_t v)
{
	json_t *rule = json_object(), *a;
	const char *keys[3] = {"apiGroups", "resources", "verbs"};
	size_t n[3] = {g, r, v}, k, i;
	char buf[32];

	for (k = 0; k < 3; k++) {
		a = json_array();
		for (i = 0; i < n[k]; i++) {
			snprintf(buf, sizeof(buf), "x%zu", i);
			json_array_append_new(a, json_string(buf));
		}
		json_object_set_new(rule, keys[k], a);
	}
	return json_pack("{s:{s:s},s:[o]}", "metadata", "name", "wide", "rules",
			 rule);
}

static void test_escalation_limit(void **state)
{
	static char big[1 << 17];
	rbac *r = matrix_policy();
	rbac_user ed = matrix_user(U_E), root = matrix_user(U_R);
	json_t *o = wide_role(100, 100, 30);
	char err[512];

	(void)state;
	/* 300000 atoms: refused rather than checked one by one ... */
	assert_false(rbac_may_write(r, &ed, "Role", "a", o, err, sizeof(err)));
	assert_string_equal(
	    err, "roles.rbac.authorization.k8s.io \"wide\" is forbidden: too "
		 "many permissions to check for escalation (more than 262144 "
		 "apiGroup/resource/verb/resourceName combinations): split the "
		 "rules");
	/* ... cluster-admin holds escalate, so it is never checked */
	assert_true(rbac_may_write(r, &root, "Role", "a", o, err, sizeof(err)));
	json_decref(o);
	/* under the limit every atom is checked; verbs are compacted */
	o = wide_role(10, 10, 10);
	assert_false(rbac_may_write(r, &ed, "Role", "a", o, big, sizeof(big)));
	assert_non_null(strstr(big,
			       "\n{APIGroups:[\"x0\"], Resources:[\"x0\"], "
			       "Verbs:[\"x0\" \"x1\" \"x2\""));
	json_decref(o);
	/* 1600 missing lines of 2 verbs: 256 listed, the other atoms counted */
	o = wide_role(40, 40, 2);
	assert_false(rbac_may_write(r, &ed, "Role", "a", o, big, sizeof(big)));
	assert_non_null(strstr(big, "\n... and 2688 more"));
	json_decref(o);
	rbac_free(r);
}

/* ---- rbac_set
 * ------------------------------------------------------------------- */

static const struct {
	const char *kind, *ns, *name, *obj;
	int rc;
	const char *err;
} set_cases[] = {
    {"Role", "a", "r", "{}", 0, ""},
    {"Role", "a", "r", "{'rules':null}", 0, ""},
    {"Role", "a", "r", "{'rules':{}}", -EINVAL, "rules: must be an array"},
    {"Role", "a", "r", "{'rules':[1]}", -EINVAL, "rules[0]: must be an object"},
    {"Role", "a", "r", "{'rules':[{},{'verbs':['a',2]}]}", -EINVAL,
     "rules[1].verbs[1]: must be a string"},
    {"Role", "a", "r", "{'rules':[{'nonResourceURLs':'x'}]}", -EINVAL,
     "rules[0].nonResourceURLs: must be an array of strings"},
    {"Role", "a", "r", "[]", -EINVAL, "object: must be an object"},
    {"Role", NULL, "r", "{}", -EINVAL, "metadata.namespace: Required value"},
    {"Role", "a", "", "{}", -EINVAL, "metadata.name: Required value"},
    {"ClusterRole", "a", "r", "{}", -EINVAL,
     "ClusterRole is cluster-scoped: namespace must be empty"},
    {"ClusterRole", "", "r", "{'metadata':{'labels':{'a':1}}}", -EINVAL,
     "metadata.labels.a: must be a string"},
    {"ClusterRole", "", "r", "{'metadata':{'labels':[]}}", -EINVAL,
     "metadata.labels: must be an object"},
    {"ClusterRole", "", "r", "{'aggregationRule':[]}", -EINVAL,
     "aggregationRule: must be an object"},
    {"ClusterRole", "", "r",
     "{'aggregationRule':{'clusterRoleSelectors':[{'matchExpressions':"
     "[{'key':'k','operator':'In'}]}]}}",
     -EINVAL, "aggregationRule.clusterRoleSelectors[0]: "},
    {"ClusterRole", "", "r",
     "{'aggregationRule':{'clusterRoleSelectors':[null]}}", -EINVAL,
     "aggregationRule.clusterRoleSelectors[0]: must be an object"},
    {"ClusterRole", "", "r", "{'aggregationRule':{}}", 0, ""},
    {"RoleBinding", "a", "b", "{}", -EINVAL, "roleRef: Required value"},
    {"RoleBinding", "a", "b", "{'roleRef':{'kind':'Role'}}", -EINVAL,
     "roleRef.name: Required value"},
    {"RoleBinding", "a", "b", "{'roleRef':{'kind':'Role','name':'r'}}", 0, ""},
    {"ClusterRoleBinding", NULL, "b",
     "{'roleRef':{'kind':'ClusterRole','name':'r'},'subjects':[{'kind':"
     "'User'}]}",
     -EINVAL, "subjects[0].name: Required value"},
    {"ClusterRoleBinding", NULL, "b",
     "{'roleRef':{'kind':'ClusterRole','name':'r'},'subjects':[{'kind':"
     "'User','name':'u','namespace':3}]}",
     -EINVAL, "subjects[0].namespace: must be a string"},
    {"ClusterRoleBinding", NULL, "b",
     "{'roleRef':{'kind':'ClusterRole','name':'r'},'subjects':{}}", -EINVAL,
     "subjects: must be an array"},
    {"Secret", "a", "b", "{}", -EINVAL, "unknown kind \"Secret\""},
};

static void test_set_shapes(void **state)
{
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(set_cases); i++) {
		rbac *r = rbac_new();
		json_t *o = js(set_cases[i].obj);
		int rc = rbac_set(r, set_cases[i].kind, set_cases[i].ns,
				  set_cases[i].name, o, err, sizeof(err));

		if (rc != set_cases[i].rc ||
		    strncmp(err, set_cases[i].err, strlen(set_cases[i].err)))
			fail_msg("set case %zu: %d %s", i, rc, err);
		json_decref(o);
		rbac_free(r);
	}
}

static void test_set_replace_remove(void **state)
{
	rbac *r = rbac_new();
	char err[128];
	json_t *bad = js("{'rules':7}");

	(void)state;
	set(r, "Role", "a", "r",
	    "{'rules':[{'verbs':['get'],'apiGroups':[''],"
	    "'resources':['pods']}]}");
	bind(r, "a", "b", "Role", "r", "User", "u");
	assert_true(can(r, "u", "get", "", "pods", "a"));
	/* a bad replacement leaves the old object */
	assert_int_equal(rbac_set(r, "Role", "a", "r", bad, err, sizeof(err)),
			 -EINVAL);
	assert_true(can(r, "u", "get", "", "pods", "a"));
	/* replace the binding's subject */
	bind(r, "a", "b", "Role", "r", "User", "v");
	assert_false(can(r, "u", "get", "", "pods", "a"));
	assert_true(can(r, "v", "get", "", "pods", "a"));
	/* a Role of the same name in another namespace is another role */
	set(r, "Role", "b", "r", NULL);
	assert_true(can(r, "v", "get", "", "pods", "a"));
	set(r, "Role", "a", "r", NULL);
	assert_false(can(r, "v", "get", "", "pods", "a"));
	set(r, "RoleBinding", "a", "b", NULL);
	set(r, "RoleBinding", "a", "never", NULL);
	rbac_free(r);
	rbac_free(NULL);
	json_decref(bad);
}

/* ---- SelfSubjectRulesReview
 * ------------------------------------------------------ */

static void test_rules_for(void **state)
{
	rbac *r = matrix_policy();
	rbac_user u = matrix_user(U_E);
	json_t *j, *want;

	(void)state;
	j = rbac_rules_for(r, &u, "a");
	assert_non_null(j);
	/* ClusterRoleBindings first (basic-user, discovery,
	 * public-info-viewer), then edit's own rules (the mesh) and those it
	 * aggregates (view's) */
	want = js(
	    "{'resourceRules':["
	    "{'verbs':['create'],'apiGroups':['authorization.k8s.io'],"
	    "'resources':['selfsubjectaccessreviews','selfsubjectrulesreviews']"
	    "},"
	    "{'verbs':['get','list','watch','create','update','patch','delete',"
	    "'deletecollection'],'apiGroups':['mesh.signalbox.dev'],"
	    "'resources':['networks','peers','policies','routes','setupkeys']},"
	    "{'verbs':['get','list','watch'],'apiGroups':[''],"
	    "'resources':['namespaces/status']},"
	    "{'verbs':['get','list','watch'],'apiGroups':[''],"
	    "'resources':['namespaces']},"
	    "{'verbs':['get','list','watch'],'apiGroups':['mesh.signalbox.dev'],"
	    "'resources':['networks','peers','peers/status','peers/networkmap',"
	    "'policies','routes']}],"
	    "'nonResourceRules':["
	    "{'verbs':['get'],'nonResourceURLs':['/livez','/readyz','/healthz',"
	    "'/version','/version/','/openapi','/openapi/*','/api','/api/*',"
	    "'/apis','/apis/*']},"
	    "{'verbs':['get'],'nonResourceURLs':['/livez','/readyz','/healthz',"
	    "'/version','/version/']}],"
	    "'incomplete':false}");
	if (!json_equal(j, want)) {
		char *s = json_dumps(j, JSON_INDENT(1));

		fail_msg("rules_for: %s", s);
	}
	json_decref(j);
	json_decref(want);

	/* in b the RoleBinding does not count */
	j = rbac_rules_for(r, &u, "b");
	assert_int_equal(json_array_size(json_object_get(j, "resourceRules")),
			 1);
	json_decref(j);

	/* resourceNames and a missing role */
	set(r, "Role", "b", "named",
	    "{'rules':[{'verbs':['get'],'apiGroups':[''],'resources':['pods'],"
	    "'resourceNames':['p']}]}");
	bind(r, "b", "named", "Role", "named", "User", "editor");
	bind(r, "b", "zbroken", "Role", "gone", "User", "editor");
	j = rbac_rules_for(r, &u, "b");
	want = js("{'verbs':['get'],'apiGroups':[''],'resources':['pods'],"
		  "'resourceNames':['p']}");
	assert_true(json_equal(
	    json_array_get(json_object_get(j, "resourceRules"), 1), want));
	assert_true(json_is_true(json_object_get(j, "incomplete")));
	assert_string_equal(
	    json_string_value(json_object_get(j, "evaluationError")),
	    "role.rbac.authorization.k8s.io \"gone\" not found");
	json_decref(j);
	json_decref(want);
	rbac_free(r);
}

/* ---- bootstrap
 * ------------------------------------------------------------------- */

static void test_bootstrap(void **state)
{
	static const char *const names[] = {
	    "ClusterRole/cluster-admin",
	    "ClusterRole/system:discovery",
	    "ClusterRole/system:basic-user",
	    "ClusterRole/system:public-info-viewer",
	    "ClusterRole/admin",
	    "ClusterRole/edit",
	    "ClusterRole/view",
	    "ClusterRole/system:aggregate-to-admin",
	    "ClusterRole/system:aggregate-to-edit",
	    "ClusterRole/system:aggregate-to-view",
	    "ClusterRoleBinding/cluster-admin",
	    "ClusterRoleBinding/system:discovery",
	    "ClusterRoleBinding/system:basic-user",
	    "ClusterRoleBinding/system:public-info-viewer",
	};
	json_t *a = rbac_bootstrap(), *o, *want;
	char buf[128];
	size_t i;

	(void)state;
	assert_non_null(a);
	assert_int_equal(json_array_size(a), ARRAY_LEN(names));
	json_array_foreach(a, i, o)
	{
		json_t *md = json_object_get(o, "metadata");

		snprintf(buf, sizeof(buf), "%s/%s",
			 json_string_value(json_object_get(o, "kind")),
			 json_string_value(json_object_get(md, "name")));
		assert_string_equal(buf, names[i]);
		assert_string_equal(
		    json_string_value(json_object_get(o, "apiVersion")),
		    "rbac.authorization.k8s.io/v1");
		assert_string_equal(
		    json_string_value(json_object_get(
			json_object_get(md, "annotations"),
			"rbac.authorization.kubernetes.io/autoupdate")),
		    "true");
		assert_string_equal(json_string_value(json_object_get(
					json_object_get(md, "labels"),
					"kubernetes.io/bootstrapping")),
				    "rbac-defaults");
	}
	/* edit: labelled to admin, aggregating aggregate-to-edit */
	want = js("{'apiVersion':'rbac.authorization.k8s.io/v1',"
		  "'kind':'ClusterRole','metadata':{'name':'edit','labels':{"
		  "'kubernetes.io/bootstrapping':'rbac-defaults',"
		  "'rbac.authorization.k8s.io/aggregate-to-admin':'true'},"
		  "'annotations':{'rbac.authorization.kubernetes.io/"
		  "autoupdate':'true'}},'rules':[],'aggregationRule':{"
		  "'clusterRoleSelectors':[{'matchLabels':{"
		  "'rbac.authorization.k8s.io/aggregate-to-edit':'true'}}]}}");
	assert_true(json_equal(json_array_get(a, 5), want));
	json_decref(want);
	want = js("{'apiVersion':'rbac.authorization.k8s.io/v1',"
		  "'kind':'ClusterRoleBinding','metadata':{'name':"
		  "'system:public-info-viewer','labels':{"
		  "'kubernetes.io/bootstrapping':'rbac-defaults'},"
		  "'annotations':{'rbac.authorization.kubernetes.io/"
		  "autoupdate':'true'}},'subjects':[{'apiGroup':"
		  "'rbac.authorization.k8s.io','kind':'Group','name':"
		  "'system:authenticated'},{'apiGroup':"
		  "'rbac.authorization.k8s.io','kind':'Group','name':"
		  "'system:unauthenticated'}],'roleRef':{'apiGroup':"
		  "'rbac.authorization.k8s.io','kind':'ClusterRole','name':"
		  "'system:public-info-viewer'}}");
	assert_true(json_equal(json_array_get(a, 13), want));
	json_decref(want);
	json_decref(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rule_matching),
	    cmocka_unit_test(test_subjects),
	    cmocka_unit_test(test_deny_reasons),
	    cmocka_unit_test(test_matrix),
	    cmocka_unit_test(test_aggregation_labels),
	    cmocka_unit_test(test_aggregation_expressions),
	    cmocka_unit_test(test_aggregation_cycles),
	    cmocka_unit_test(test_escalation),
	    cmocka_unit_test(test_escalation_details),
	    cmocka_unit_test(test_escalation_limit),
	    cmocka_unit_test(test_set_shapes),
	    cmocka_unit_test(test_set_replace_remove),
	    cmocka_unit_test(test_rules_for),
	    cmocka_unit_test(test_bootstrap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
