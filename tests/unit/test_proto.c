/*
 * test_proto.c -- the Kubernetes protobuf decoder (src/api/proto.c).
 *
 * Two kinds of input. Bodies built here, field by field, with a small
 * protobuf encoder, one or more per supported kind, compared with the JSON
 * that kind's Go type prints. And bodies that kubectl 1.32 really sent
 * (the .bin files of data/proto, see its README.md), compared with the JSON
 * beside them. Every prefix of every real body must decode to an error or,
 * where the cut falls between two fields of the envelope (which has no
 * length of its own), to a valid object; never crash or read past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/proto.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- a tiny protobuf encoder -------------------------------------------- */

struct pb {
	uint8_t b[4096];
	size_t n;
};

static void pb_raw(struct pb *p, const void *d, size_t n)
{
	assert_true(p->n + n <= sizeof(p->b));
	memcpy(p->b + p->n, d, n);
	p->n += n;
}

static void pb_varint(struct pb *p, uint64_t v)
{
	uint8_t c;

	do {
		c = v & 0x7f;
		v >>= 7;
		if (v)
			c |= 0x80;
		pb_raw(p, &c, 1);
	} while (v);
}

static void pb_tag(struct pb *p, unsigned field, unsigned wt)
{
	pb_varint(p, (uint64_t)field << 3 | wt);
}

/* field = varint v (int64, int32 sign-extended, bool) */
static void pb_int(struct pb *p, unsigned field, int64_t v)
{
	pb_tag(p, field, 0);
	pb_varint(p, (uint64_t)v);
}

static void pb_bytes(struct pb *p, unsigned field, const void *d, size_t n)
{
	pb_tag(p, field, 2);
	pb_varint(p, n);
	pb_raw(p, d, n);
}

static void pb_str(struct pb *p, unsigned field, const char *s)
{
	pb_bytes(p, field, s, strlen(s));
}

static void pb_msg(struct pb *p, unsigned field, const struct pb *m)
{
	pb_bytes(p, field, m->b, m->n);
}

/* A map<string, string> entry. */
static void pb_kv(struct pb *p, unsigned field, const char *k, const char *v)
{
	struct pb e = {0};

	pb_str(&e, 1, k);
	pb_str(&e, 2, v);
	pb_msg(p, field, &e);
}

/* A meta/v1 Time or MicroTime. */
static void pb_time(struct pb *p, unsigned field, int64_t sec, int32_t nsec)
{
	struct pb t = {0};

	pb_int(&t, 1, sec);
	if (nsec)
		pb_int(&t, 2, nsec);
	pb_msg(p, field, &t);
}

/* An ObjectMeta with just a name, as client-go writes it. */
static void pb_meta(struct pb *p, const char *name)
{
	struct pb m = {0}, empty = {0};

	pb_str(&m, 1, name);
	pb_str(&m, 2, "");
	pb_str(&m, 3, "");
	pb_str(&m, 4, "");
	pb_str(&m, 5, "");
	pb_str(&m, 6, "");
	pb_int(&m, 7, 0);
	pb_msg(&m, 8, &empty);
	pb_msg(p, 1, &m);
}

/* "k8s\0" + runtime.Unknown{typeMeta, raw, "", ""} */
static void pb_body(struct pb *out, const char *api_version, const char *kind,
		    const struct pb *raw)
{
	struct pb tm = {0};

	out->n = 0;
	pb_raw(out, "k8s\0", 4);
	pb_str(&tm, 1, api_version);
	pb_str(&tm, 2, kind);
	pb_msg(out, 1, &tm);
	pb_msg(out, 2, raw);
	pb_str(out, 3, "");
	pb_str(out, 4, "");
}

/* ---- checks ------------------------------------------------------------- */

/* JSON, with ' for " so that the expectations here read easily. */
static json_t *parse(const char *text)
{
	char *t = strdup(text), *q;
	json_error_t je;
	json_t *j;

	assert_non_null(t);
	for (q = t; *q; q++)
		if (*q == '\'')
			*q = '"';
	j = json_loads(t, 0, &je);
	if (!j)
		fail_msg("bad test JSON (%s): %s", je.text, t);
	free(t);
	return j;
}

static void expect_json(const void *d, size_t n, const char *want_text)
{
	char err[256] = "x";
	json_t *got = proto_decode(d, n, err, sizeof(err));
	json_t *want = parse(want_text);
	char *g, *w;

	if (!got)
		fail_msg("decode failed: %s", err);
	if (!json_equal(got, want)) {
		g = json_dumps(got, JSON_SORT_KEYS);
		w = json_dumps(want, JSON_SORT_KEYS);
		fail_msg("got  %s\nwant %s", g, w);
	}
	assert_string_equal(err, "");
	json_decref(got);
	json_decref(want);
}

static void expect_body(const char *av, const char *kind, const struct pb *raw,
			const char *want)
{
	static struct pb body;

	pb_body(&body, av, kind, raw);
	expect_json(body.b, body.n, want);
}

/* Decoding fails and the message contains each string of ap. */
static void vexpect_err(const void *d, size_t n, va_list ap)
{
	char err[256];
	json_t *got = proto_decode(d, n, err, sizeof(err));
	const char *s;

	if (got)
		fail_msg("decoded to %s", json_dumps(got, 0));
	assert_true(!strncmp(err, "proto: ", 7));
	while ((s = va_arg(ap, const char *)))
		if (!strstr(err, s))
			fail_msg("error '%s' does not say '%s'", err, s);
}

/* Decoding fails with a message holding each string, up to a NULL. */
static void expect_err(const void *d, size_t n, ...)
{
	va_list ap;

	va_start(ap, n);
	vexpect_err(d, n, ap);
	va_end(ap);
}

/* ---- one body per kind -------------------------------------------------- */

static void test_namespace_full(void **state)
{
	struct pb ns = {0}, m = {0}, or = {0}, spec = {0}, st = {0}, c = {0},
		  skip = {0};

	(void)state;
	pb_str(&m, 1, "prod");
	pb_str(&m, 2, "prod-");
	pb_str(&m, 3, "");
	pb_str(&m, 4, "/api/v1/namespaces/prod");
	pb_str(&m, 5, "3f1c2b6a-1111-2222-3333-444455556666");
	pb_str(&m, 6, "42");
	pb_int(&m, 7, 7);
	pb_time(&m, 8, 1700000000, 0);
	pb_time(&m, 9, 1700000600, 999999999); /* Time keeps seconds only */
	pb_int(&m, 10, 30);
	pb_kv(&m, 11, "app", "web");
	pb_kv(&m, 11, "tier", "");
	pb_kv(&m, 12, "example.com/note", "h\xc3\xa9");
	pb_str(& or, 1, "Team");
	pb_str(& or, 3, "blue");
	pb_str(& or, 4, "u-1");
	pb_str(& or, 5, "example.com/v1");
	pb_int(& or, 6, 1);
	pb_int(& or, 7, 0);
	pb_msg(&m, 13, & or);
	pb_str(&m, 14, "a/b");
	pb_str(&m, 14, "c");
	/* managedFields (17) is skipped, as are unknown fields of any type */
	pb_str(&skip, 1, "kubectl");
	pb_msg(&m, 17, &skip);
	pb_int(&m, 99, 5);
	pb_tag(&m, 100, 1);
	pb_raw(&m, "12345678", 8);
	pb_tag(&m, 101, 5);
	pb_raw(&m, "1234", 4);
	pb_msg(&ns, 1, &m);
	pb_str(&spec, 1, "kubernetes");
	pb_msg(&ns, 2, &spec);
	pb_str(&st, 1, "Terminating");
	pb_str(&c, 1, "NamespaceDeletionContentFailure");
	pb_str(&c, 2, "False");
	pb_time(&c, 4, 0, 0);
	pb_str(&c, 5, "");
	pb_str(&c, 6, "");
	pb_msg(&st, 2, &c);
	pb_msg(&ns, 3, &st);
	expect_body(
	    "v1", "Namespace", &ns,
	    "{'apiVersion':'v1','kind':'Namespace',"
	    " 'metadata':{'name':'prod','generateName':'prod-',"
	    "  'selfLink':'/api/v1/namespaces/prod',"
	    "  'uid':'3f1c2b6a-1111-2222-3333-444455556666',"
	    "  'resourceVersion':'42','generation':7,"
	    "  'creationTimestamp':'2023-11-14T22:13:20Z',"
	    "  'deletionTimestamp':'2023-11-14T22:23:20Z',"
	    "  'deletionGracePeriodSeconds':30,"
	    "  'labels':{'app':'web','tier':''},"
	    "  'annotations':{'example.com/note':'h\xc3\xa9'},"
	    "  'ownerReferences':[{'kind':'Team','name':'blue','uid':'u-1',"
	    "   'apiVersion':'example.com/v1','controller':true,"
	    "   'blockOwnerDeletion':false}],"
	    "  'finalizers':['a/b','c']},"
	    " 'spec':{'finalizers':['kubernetes']},"
	    " 'status':{'phase':'Terminating','conditions':[{"
	    "  'type':'NamespaceDeletionContentFailure','status':'False',"
	    "  'lastTransitionTime':'1970-01-01T00:00:00Z'}]}}");
}

static void test_lease(void **state)
{
	struct pb l = {0}, spec = {0};

	(void)state;
	pb_meta(&l, "signalbox-leader");
	pb_str(&spec, 1, "node-a");
	pb_int(&spec, 2, 15);
	pb_time(&spec, 3, 1700000000, 123456789);
	pb_time(&spec, 4, 1700000010, 0);
	pb_int(&spec, 5, 0); /* a pointer in Go: zero is kept */
	pb_str(&spec, 6, "OldestEmulationVersion");
	pb_str(&spec, 7, "");
	pb_msg(&l, 2, &spec);
	expect_body("coordination.k8s.io/v1", "Lease", &l,
		    "{'apiVersion':'coordination.k8s.io/v1','kind':'Lease',"
		    " 'metadata':{'name':'signalbox-leader',"
		    "  'creationTimestamp':null},"
		    " 'spec':{'holderIdentity':'node-a',"
		    "  'leaseDurationSeconds':15,"
		    "  'acquireTime':'2023-11-14T22:13:20.123456Z',"
		    "  'renewTime':'2023-11-14T22:13:30.000000Z',"
		    "  'leaseTransitions':0,"
		    "  'strategy':'OldestEmulationVersion',"
		    "  'preferredHolder':''}}");
}

static void test_role(void **state)
{
	struct pb r = {0}, rule = {0}, rule2 = {0};

	(void)state;
	pb_meta(&r, "reader");
	pb_str(&rule, 1, "get");
	pb_str(&rule, 1, "list");
	pb_str(&rule, 2, "");
	pb_str(&rule, 2, "apps");
	pb_str(&rule, 3, "pods");
	pb_str(&rule, 3, "deployments/scale");
	pb_str(&rule, 4, "web");
	pb_msg(&r, 2, &rule);
	pb_str(&rule2, 1, "*");
	pb_str(&rule2, 5, "/healthz");
	pb_msg(&r, 2, &rule2);
	expect_body(
	    "rbac.authorization.k8s.io/v1", "Role", &r,
	    "{'apiVersion':'rbac.authorization.k8s.io/v1','kind':'Role',"
	    " 'metadata':{'name':'reader','creationTimestamp':null},"
	    " 'rules':[{'verbs':['get','list'],'apiGroups':['','apps'],"
	    "  'resources':['pods','deployments/scale'],"
	    "  'resourceNames':['web']},"
	    "  {'verbs':['*'],'nonResourceURLs':['/healthz']}]}");
}

static void test_cluster_role_aggregation(void **state)
{
	struct pb r = {0}, agg = {0}, sel = {0}, sel2 = {0}, req = {0};

	(void)state;
	pb_meta(&r, "monitoring");
	pb_kv(&sel, 1, "rbac.example.com/aggregate-to-monitoring", "true");
	pb_msg(&agg, 1, &sel);
	pb_str(&req, 1, "tier");
	pb_str(&req, 2, "In");
	pb_str(&req, 3, "a");
	pb_str(&req, 3, "b");
	pb_msg(&sel2, 2, &req);
	pb_msg(&agg, 1, &sel2);
	pb_msg(&r, 3, &agg);
	expect_body(
	    "rbac.authorization.k8s.io/v1", "ClusterRole", &r,
	    "{'apiVersion':'rbac.authorization.k8s.io/v1',"
	    " 'kind':'ClusterRole',"
	    " 'metadata':{'name':'monitoring','creationTimestamp':null},"
	    " 'aggregationRule':{'clusterRoleSelectors':["
	    "  {'matchLabels':{"
	    "   'rbac.example.com/aggregate-to-monitoring':'true'}},"
	    "  {'matchExpressions':[{'key':'tier','operator':'In',"
	    "   'values':['a','b']}]}]}}");
}

static void test_bindings(void **state)
{
	static const char *const kinds[] = {"RoleBinding",
					    "ClusterRoleBinding"};
	struct pb b = {0}, s1 = {0}, s2 = {0}, ref = {0};
	char want[1024];
	size_t i;

	(void)state;
	pb_meta(&b, "ops");
	pb_str(&s1, 1, "ServiceAccount");
	pb_str(&s1, 2, "");
	pb_str(&s1, 3, "robot");
	pb_str(&s1, 4, "kube-system");
	pb_msg(&b, 2, &s1);
	pb_str(&s2, 1, "User");
	pb_str(&s2, 2, "rbac.authorization.k8s.io");
	pb_str(&s2, 3, "");
	pb_str(&s2, 4, "");
	pb_msg(&b, 2, &s2);
	pb_str(&ref, 1, "");
	pb_str(&ref, 2, "ClusterRole");
	pb_str(&ref, 3, "admin");
	pb_msg(&b, 3, &ref);
	for (i = 0; i < ARRAY_LEN(kinds); i++) {
		snprintf(
		    want, sizeof(want),
		    "{'apiVersion':'rbac.authorization.k8s.io/v1',"
		    " 'kind':'%s',"
		    " 'metadata':{'name':'ops','creationTimestamp':null},"
		    " 'subjects':[{'kind':'ServiceAccount','name':'robot',"
		    "   'namespace':'kube-system'},"
		    "  {'kind':'User',"
		    "   'apiGroup':'rbac.authorization.k8s.io','name':''}],"
		    " 'roleRef':{'apiGroup':'','kind':'ClusterRole',"
		    "  'name':'admin'}}",
		    kinds[i]);
		expect_body("rbac.authorization.k8s.io/v1", kinds[i], &b, want);
	}
}

static void test_subject_access_review(void **state)
{
	static const char *const kinds[] = {"SubjectAccessReview",
					    "LocalSubjectAccessReview"};
	struct pb r = {0}, spec = {0}, ra = {0}, fs = {0}, ls = {0}, req = {0},
		  e1 = {0}, ev = {0}, e2 = {0}, st = {0};
	char want[2048];
	size_t i;

	(void)state;
	pb_meta(&r, "");
	pb_str(&ra, 1, "default");
	pb_str(&ra, 2, "list");
	pb_str(&ra, 3, "");
	pb_str(&ra, 4, "v1");
	pb_str(&ra, 5, "pods");
	pb_str(&ra, 6, "");
	pb_str(&ra, 7, "");
	pb_str(&fs, 1, "spec.nodeName=n1");
	pb_msg(&ra, 8, &fs);
	pb_str(&req, 1, "app");
	pb_str(&req, 2, "Exists");
	pb_msg(&ls, 2, &req);
	pb_msg(&ra, 9, &ls);
	pb_msg(&spec, 1, &ra);
	pb_str(&spec, 3, "alice");
	pb_str(&spec, 4, "devs");
	pb_str(&spec, 4, "system:authenticated");
	pb_str(&e1, 1, "scopes");
	pb_str(&ev, 1, "read");
	pb_str(&ev, 1, "write");
	pb_msg(&e1, 2, &ev);
	pb_msg(&spec, 5, &e1);
	pb_str(&e2, 1, "empty"); /* no value: an empty list */
	pb_msg(&spec, 5, &e2);
	pb_str(&spec, 6, "uid-1");
	pb_msg(&r, 2, &spec);
	pb_int(&st, 1, 1);
	pb_str(&st, 2, "RBAC: allowed by ClusterRoleBinding");
	pb_str(&st, 3, "");
	pb_int(&st, 4, 0);
	pb_msg(&r, 3, &st);
	for (i = 0; i < ARRAY_LEN(kinds); i++) {
		snprintf(
		    want, sizeof(want),
		    "{'apiVersion':'authorization.k8s.io/v1','kind':'%s',"
		    " 'metadata':{'creationTimestamp':null},"
		    " 'spec':{'resourceAttributes':{'namespace':'default',"
		    "   'verb':'list','version':'v1','resource':'pods',"
		    "   'fieldSelector':{'rawSelector':'spec.nodeName=n1'},"
		    "   'labelSelector':{'requirements':[{'key':'app',"
		    "    'operator':'Exists'}]}},"
		    "  'user':'alice','groups':['devs','system:authenticated'],"
		    "  'extra':{'scopes':['read','write'],'empty':[]},"
		    "  'uid':'uid-1'},"
		    " 'status':{'allowed':true,"
		    "  'reason':'RBAC: allowed by ClusterRoleBinding'}}",
		    kinds[i]);
		expect_body("authorization.k8s.io/v1", kinds[i], &r, want);
	}
}

static void test_self_subject_access_review(void **state)
{
	struct pb r = {0}, spec = {0}, nra = {0};

	(void)state;
	pb_str(&nra, 1, "/metrics");
	pb_str(&nra, 2, "get");
	pb_msg(&spec, 2, &nra);
	pb_msg(&r, 2, &spec);
	expect_body("authorization.k8s.io/v1", "SelfSubjectAccessReview", &r,
		    "{'apiVersion':'authorization.k8s.io/v1',"
		    " 'kind':'SelfSubjectAccessReview',"
		    " 'spec':{'nonResourceAttributes':{'path':'/metrics',"
		    "  'verb':'get'}}}");
}

static void test_self_subject_rules_review(void **state)
{
	struct pb r = {0}, spec = {0}, st = {0}, rr = {0}, nrr = {0};

	(void)state;
	pb_meta(&r, "");
	pb_str(&spec, 1, "dev");
	pb_msg(&r, 2, &spec);
	pb_str(&rr, 1, "get");
	pb_str(&rr, 2, "");
	pb_str(&rr, 3, "pods");
	pb_str(&rr, 4, "p1");
	pb_msg(&st, 1, &rr);
	pb_str(&nrr, 1, "get");
	pb_str(&nrr, 2, "/api");
	pb_msg(&st, 2, &nrr);
	pb_int(&st, 3, 1);
	pb_str(&st, 4, "webhook: no opinion");
	pb_msg(&r, 3, &st);
	expect_body("authorization.k8s.io/v1", "SelfSubjectRulesReview", &r,
		    "{'apiVersion':'authorization.k8s.io/v1',"
		    " 'kind':'SelfSubjectRulesReview',"
		    " 'metadata':{'creationTimestamp':null},"
		    " 'spec':{'namespace':'dev'},"
		    " 'status':{'resourceRules':[{'verbs':['get'],"
		    "   'apiGroups':[''],'resources':['pods'],"
		    "   'resourceNames':['p1']}],"
		    "  'nonResourceRules':[{'verbs':['get'],"
		    "   'nonResourceURLs':['/api']}],"
		    "  'incomplete':true,"
		    "  'evaluationError':'webhook: no opinion'}}");
}

static void test_scale(void **state)
{
	struct pb s = {0}, spec = {0}, st = {0};

	(void)state;
	pb_meta(&s, "web");
	pb_int(&spec, 1, 5);
	pb_msg(&s, 2, &spec);
	pb_int(&st, 1, 0); /* ScaleStatus.replicas has no omitempty */
	pb_str(&st, 2, "app=web");
	pb_msg(&s, 3, &st);
	expect_body("autoscaling/v1", "Scale", &s,
		    "{'apiVersion':'autoscaling/v1','kind':'Scale',"
		    " 'metadata':{'name':'web','creationTimestamp':null},"
		    " 'spec':{'replicas':5},"
		    " 'status':{'replicas':0,'selector':'app=web'}}");

	/* ScaleSpec.replicas has: a zero is left out */
	memset(&s, 0, sizeof(s));
	memset(&spec, 0, sizeof(spec));
	pb_int(&spec, 1, 0);
	pb_msg(&s, 2, &spec);
	expect_body("autoscaling/v1", "Scale", &s,
		    "{'apiVersion':'autoscaling/v1','kind':'Scale',"
		    " 'spec':{}}");
}

static void test_delete_options(void **state)
{
	static const char *const gvs[] = {"meta.k8s.io/v1", "v1",
					  "rbac.authorization.k8s.io/v1",
					  "coordination.k8s.io/v1"};
	struct pb d = {0}, pre = {0};
	char want[512];
	size_t i;

	(void)state;
	pb_int(&d, 1, 0);
	pb_str(&pre, 1, "u-1");
	pb_str(&pre, 2, "17");
	pb_msg(&d, 2, &pre);
	pb_int(&d, 3, 0);
	pb_str(&d, 4, "Foreground");
	pb_str(&d, 5, "All");
	pb_int(&d, 6, 1);
	for (i = 0; i < ARRAY_LEN(gvs); i++) {
		snprintf(
		    want, sizeof(want),
		    "{'apiVersion':'%s','kind':'DeleteOptions',"
		    " 'gracePeriodSeconds':0,"
		    " 'preconditions':{'uid':'u-1','resourceVersion':'17'},"
		    " 'orphanDependents':false,"
		    " 'propagationPolicy':'Foreground','dryRun':['All'],"
		    " 'ignoreStoreReadErrorWithClusterBreakingPotential':"
		    "  true}",
		    gvs[i]);
		expect_body(gvs[i], "DeleteOptions", &d, want);
	}
}

/* ---- protobuf semantics ------------------------------------------------- */

static void test_semantics(void **state)
{
	struct pb ns = {0}, m = {0}, m2 = {0}, e = {0}, l = {0}, spec = {0};

	(void)state;
	/* the last occurrence of a field wins, an omitempty zero included */
	pb_str(&m, 1, "first");
	pb_str(&m, 1, "second");
	pb_str(&m, 3, "ns");
	pb_str(&m, 3, "");
	pb_int(&m, 10, -5);		 /* a negative int64: 10 varint bytes */
	pb_time(&m, 8, -62135596800, 0); /* Go's zero time: null */
	pb_kv(&m, 11, "a", "1");
	pb_kv(&m, 11, "a", "2"); /* a repeated map key: the last wins */
	pb_str(&e, 2, "no-key");
	pb_msg(&m, 11, &e);
	memset(&e, 0, sizeof(e));
	pb_str(&e, 1, "no-value");
	pb_msg(&m, 11, &e);
	pb_msg(&ns, 1, &m);
	/* a message field seen twice is merged, as proto2 does */
	pb_str(&m2, 5, "uid-9");
	pb_msg(&ns, 1, &m2);
	expect_body("v1", "Namespace", &ns,
		    "{'apiVersion':'v1','kind':'Namespace',"
		    " 'metadata':{'name':'second','uid':'uid-9',"
		    "  'deletionGracePeriodSeconds':-5,"
		    "  'creationTimestamp':null,"
		    "  'labels':{'a':'2','':'no-key','no-value':''}}}");

	/* a negative int32 comes sign-extended to 64 bits */
	pb_int(&spec, 2, -1);
	pb_int(&spec, 5, 0x100000007LL); /* int32 keeps the low 32 bits */
	pb_time(&spec, 3, 0, 0);	 /* seconds 0 is the epoch */
	pb_msg(&l, 2, &spec);
	expect_body("coordination.k8s.io/v1", "Lease", &l,
		    "{'apiVersion':'coordination.k8s.io/v1','kind':'Lease',"
		    " 'spec':{'leaseDurationSeconds':-1,'leaseTransitions':7,"
		    "  'acquireTime':'1970-01-01T00:00:00.000000Z'}}");
}

static void test_envelope(void **state)
{
	struct pb b = {0}, tm = {0}, raw = {0};

	(void)state;
	pb_meta(&raw, "x");
	/* no raw at all: an object with nothing but its type */
	pb_raw(&b, "k8s\0", 4);
	pb_str(&tm, 1, "v1");
	pb_str(&tm, 2, "Namespace");
	pb_msg(&b, 1, &tm);
	expect_json(b.b, b.n, "{'apiVersion':'v1','kind':'Namespace'}");
	/* fields in any order, contentType may name protobuf, unknown
	 * envelope fields are skipped */
	b.n = 0;
	pb_raw(&b, "k8s\0", 4);
	pb_str(&b, 4, PROTO_CONTENT_TYPE);
	pb_msg(&b, 2, &raw);
	pb_int(&b, 9, 1);
	pb_msg(&b, 1, &tm);
	expect_json(b.b, b.n,
		    "{'apiVersion':'v1','kind':'Namespace',"
		    " 'metadata':{'name':'x','creationTimestamp':null}}");
}

/* ---- errors ------------------------------------------------------------- */

/* A Namespace whose raw message is raw; decoding fails as expect_err. */
static void expect_raw_err(const struct pb *raw, ...)
{
	static struct pb b;
	va_list ap;

	pb_body(&b, "v1", "Namespace", raw);
	va_start(ap, raw);
	vexpect_err(b.b, b.n, ap);
	va_end(ap);
}

/* The same, for a raw message {metadata: meta}. */
static void expect_meta_err(const struct pb *meta, const char *what,
			    const char *where)
{
	struct pb raw = {0};

	pb_msg(&raw, 1, meta);
	expect_raw_err(&raw, what, where, NULL);
}

static void test_errors_envelope(void **state)
{
	struct pb b = {0}, raw = {0}, tm = {0};

	(void)state;
	expect_err("", 0, "bad magic", NULL);
	expect_err("k8s", 3, "bad magic", NULL);
	expect_err("k8s\1\n\0", 6, "bad magic", NULL);
	expect_err("{\"kind\":\"Namespace\"}", 20, "bad magic", NULL);
	expect_err("k8s\0", 4, "missing apiVersion", NULL);

	pb_body(&b, "v1", "Pod", &raw);
	expect_err(b.b, b.n, "unknown kind \"Pod\" for apiVersion \"v1\"",
		   NULL);
	pb_body(&b, "example.com/v1", "DeleteOptions", &raw);
	expect_err(b.b, b.n, "unknown kind \"DeleteOptions\"", NULL);
	pb_body(&b, "v1", "", &raw);
	expect_err(b.b, b.n, "missing kind", NULL);

	b.n = 0;
	pb_raw(&b, "k8s\0", 4);
	pb_str(&tm, 1, "v1");
	pb_str(&tm, 2, "Namespace");
	pb_msg(&b, 1, &tm);
	pb_str(&b, 3, "gzip");
	expect_err(b.b, b.n, "unsupported contentEncoding \"gzip\"", NULL);
	b.n -= 6;
	pb_str(&b, 4, "application/json");
	expect_err(b.b, b.n, "unsupported contentType", NULL);
	b.n -= 18;
	pb_int(&b, 2, 1);
	expect_err(b.b, b.n, "wire type 0 for runtime.Unknown field 2", NULL);
	b.n -= 2;
	pb_int(&b, 1, 1);
	expect_err(b.b, b.n, "wire type 0 for runtime.Unknown field 1", NULL);
	b.n -= 2;
	pb_raw(&b, "\x0a\x01\x0a", 3);
	expect_err(b.b, b.n, "truncated field", "in typeMeta.apiVersion", NULL);
}

static void test_errors_wire(void **state)
{
	struct pb raw = {0}, m = {0};

	(void)state;
	/* metadata.name as a varint; the error names the byte of its tag */
	pb_int(&m, 1, 3);
	pb_msg(&raw, 1, &m);
	expect_raw_err(&raw, "wire type 0 for field 1, want 2", "byte 25",
		       "in metadata.name", NULL);

	/* a message longer than its container */
	raw.n = 0;
	pb_raw(&raw, "\x0a\x04\x0a\x09t1", 6);
	expect_raw_err(&raw, "truncated field", "in metadata.name", NULL);

	/* group wire types, field number 0, an 11-byte varint */
	raw.n = 0;
	pb_tag(&raw, 7, 3);
	expect_raw_err(&raw, "unsupported wire type 3", NULL);
	raw.n = 0;
	pb_raw(&raw, "\x02\x00", 2);
	expect_raw_err(&raw, "invalid field number 0", NULL);
	raw.n = 0;
	pb_tag(&raw, 99, 0);
	pb_raw(&raw, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
	expect_raw_err(&raw, "varint longer than 10 bytes", NULL);
}

static void test_errors_values(void **state)
{
	/* not UTF-8, a NUL, overlong, a surrogate, past U+10FFFF */
	static const struct {
		const char *s;
		size_t n;
	} bad[] = {{"\xff", 1},
		   {"a\0b", 3},
		   {"\xc0\x80", 2},
		   {"\xed\xa0\x80", 3},
		   {"\xf4\x90\x80\x80", 4}};
	/* times outside 0001..9999, nanos outside a second */
	static const int64_t times[][2] = {
	    {-62135596801, 0}, {253402300800, 0}, {0, -1}, {0, 1000000000}};
	struct pb m = {0}, kv = {0};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(bad); i++) {
		m.n = 0;
		pb_bytes(&m, 1, bad[i].s, bad[i].n);
		expect_meta_err(&m, "not UTF-8", "in metadata.name");
	}
	m.n = 0;
	pb_bytes(&kv, 1, "\xfe", 1);
	pb_msg(&m, 11, &kv);
	expect_meta_err(&m, "not UTF-8", "in metadata.labels.key");
	for (i = 0; i < ARRAY_LEN(times); i++) {
		m.n = 0;
		pb_time(&m, 8, times[i][0], (int32_t)times[i][1]);
		expect_meta_err(&m, "out of range",
				"in metadata.creationTimestamp");
	}
}

/* A short err buffer is cut and terminated; no buffer at all is fine. */
static void test_errors_buffer(void **state)
{
	char err[16];

	(void)state;
	assert_null(proto_decode("nope", 4, err, sizeof(err)));
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_null(proto_decode("nope", 4, NULL, 0));
	err[0] = 'x';
	assert_null(proto_decode("nope", 4, err, 0));
	assert_int_equal(err[0], 'x');
	assert_null(proto_decode("nope", 4, err, 1));
	assert_int_equal(err[0], '\0');
}

static void test_content_type(void **state)
{
	(void)state;
	assert_true(
	    proto_is_content_type("application/vnd.kubernetes.protobuf"));
	assert_true(
	    proto_is_content_type("Application/VND.Kubernetes.Protobuf"));
	assert_true(proto_is_content_type(
	    "application/vnd.kubernetes.protobuf; charset=utf-8"));
	assert_true(proto_is_content_type(
	    " application/vnd.kubernetes.protobuf ;stream=watch"));
	assert_false(proto_is_content_type(NULL));
	assert_false(proto_is_content_type(""));
	assert_false(proto_is_content_type("application/json"));
	assert_false(
	    proto_is_content_type("application/vnd.kubernetes.protobufx"));
	assert_false(proto_is_content_type("application/vnd.kubernetes.proto"));
	assert_false(proto_is_content_type(
	    "application/vnd.kubernetes.protobuf,application/json"));
}

/* ---- what kubectl sent -------------------------------------------------- */

/* Captured as data/proto/README.md says. */
static const char *const vectors[] = {
    "namespace",
    "role",
    "role-resourcenames",
    "rolebinding",
    "rolebinding-serviceaccount",
    "clusterrole",
    "clusterrole-aggregation",
    "clusterrolebinding",
    "selfsubjectaccessreview",
    "selfsubjectaccessreview-nonresource",
    "selfsubjectaccessreview-subresource",
    "selfsubjectrulesreview",
};

/* data/proto/ beside this file, or $SB_PROTO_DATA. */
static const char *data_path(const char *name, const char *ext)
{
	static char buf[4096];
	const char *dir = getenv("SB_PROTO_DATA"), *slash;

	if (dir)
		snprintf(buf, sizeof(buf), "%s/%s%s", dir, name, ext);
	else {
		slash = strrchr(__FILE__, '/');
		snprintf(buf, sizeof(buf), "%.*sdata/proto/%s%s",
			 slash ? (int)(slash - __FILE__ + 1) : 0, __FILE__,
			 name, ext);
	}
	return buf;
}

static uint8_t *read_file(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	uint8_t *d = NULL;
	long n = 0;

	if (!f)
		fail_msg("cannot open %s (set SB_PROTO_DATA)", path);
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) || !(d = malloc((size_t)n + 1)) ||
	    fread(d, 1, (size_t)n, f) != (size_t)n)
		fail_msg("cannot read %s", path);
	fclose(f);
	*size = (size_t)n;
	return d;
}

static void test_kubectl_vectors(void **state)
{
	size_t i, n, jn;
	uint8_t *bin;
	char *js;

	(void)state;
	for (i = 0; i < ARRAY_LEN(vectors); i++) {
		bin = read_file(data_path(vectors[i], ".bin"), &n);
		js = (char *)read_file(data_path(vectors[i], ".json"), &jn);
		js[jn] = '\0';
		print_message("%s\n", vectors[i]);
		expect_json(bin, n, js);
		free(js);
		free(bin);
	}
}

/*
 * Every prefix of every vector, each in a buffer of its own size so that
 * the sanitizers see a read past the end. A prefix that ends between two
 * fields of the envelope is a shorter valid envelope (it has no length);
 * it decodes, and once past raw, to the whole object. Any other prefix
 * cuts a length-delimited field and is an error.
 */
static void test_truncated(void **state)
{
	size_t i, n, jn, len, cut, ends[16], nends, k;
	json_t *want, *got;
	uint8_t *bin, *buf;
	char err[256], *js;

	(void)state;
	for (i = 0; i < ARRAY_LEN(vectors); i++) {
		bin = read_file(data_path(vectors[i], ".bin"), &n);
		js = (char *)read_file(data_path(vectors[i], ".json"), &jn);
		js[jn] = '\0';
		want = parse(js);
		/* the envelope's field ends: every field is length-delimited
		 * and every length here fits in two varint bytes */
		nends = 0;
		for (k = 4; k < n && nends < ARRAY_LEN(ends);) {
			len = bin[k + 1] & 0x7f;
			if (bin[k + 1] & 0x80)
				len |= (size_t)bin[k + 2] << 7, k++;
			k += 2 + len;
			ends[nends++] = k;
		}
		assert_int_equal(ends[nends - 1], n);
		for (cut = 0; cut < n; cut++) {
			bool boundary = cut == 4;

			for (k = 0; k < nends; k++)
				boundary |= cut == ends[k];
			buf = malloc(cut ? cut : 1);
			memcpy(buf, bin, cut);
			err[0] = '\0';
			got = proto_decode(buf, cut, err, sizeof(err));
			if (!boundary) {
				if (got || strncmp(err, "proto: ", 7))
					fail_msg("%s cut at %zu: no error",
						 vectors[i], cut);
			} else if (cut == 4) {
				if (got || !strstr(err, "missing apiVersion"))
					fail_msg("%s cut at %zu: %s",
						 vectors[i], cut, err);
			} else if (!got) {
				fail_msg("%s cut at %zu: %s", vectors[i], cut,
					 err);
			} else if (cut >= ends[1] && !json_equal(got, want)) {
				fail_msg("%s cut at %zu: not the object",
					 vectors[i], cut);
			}
			json_decref(got);
			/* and the same with no room for a message */
			got = proto_decode(buf, cut, NULL, 0);
			json_decref(got);
			free(buf);
		}
		json_decref(want);
		free(js);
		free(bin);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_namespace_full),
	    cmocka_unit_test(test_lease),
	    cmocka_unit_test(test_role),
	    cmocka_unit_test(test_cluster_role_aggregation),
	    cmocka_unit_test(test_bindings),
	    cmocka_unit_test(test_subject_access_review),
	    cmocka_unit_test(test_self_subject_access_review),
	    cmocka_unit_test(test_self_subject_rules_review),
	    cmocka_unit_test(test_scale),
	    cmocka_unit_test(test_delete_options),
	    cmocka_unit_test(test_semantics),
	    cmocka_unit_test(test_envelope),
	    cmocka_unit_test(test_errors_envelope),
	    cmocka_unit_test(test_errors_wire),
	    cmocka_unit_test(test_errors_values),
	    cmocka_unit_test(test_errors_buffer),
	    cmocka_unit_test(test_content_type),
	    cmocka_unit_test(test_kubectl_vectors),
	    cmocka_unit_test(test_truncated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
