/*
 * test_audit.c -- the audit log: events in kube-apiserver's shape, the
 * hash chain caught in every kind of tampering (by editing real files),
 * rotation, refusing a damaged tail, and the policy's matching rules.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "security/audit.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers --------------------------------------------------------------
 */

static char *tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	char *d;

	if (asprintf(&d, "%s/audit-test-XXXXXX", t ? t : "/tmp") < 0 ||
	    !mkdtemp(d))
		fail_msg("mkdtemp");
	return d;
}

static void rmdir_all(char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char *p;

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.' &&
		    (!e->d_name[1] || !strcmp(e->d_name, "..")))
			continue;
		if (asprintf(&p, "%s/%s", dir, e->d_name) >= 0) {
			unlink(p);
			free(p);
		}
	}
	if (d)
		closedir(d);
	rmdir(dir);
	free(dir);
}

static char *join(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		fail_msg("asprintf");
	return p;
}

/* The lines of a file, each with its newline. */
typedef struct lines {
	char **v;
	size_t n;
} lines;

static lines read_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	lines l = {0};
	char *line = NULL;
	size_t cap = 0;

	assert_non_null(f);
	while (getline(&line, &cap, f) > 0) {
		l.v = realloc(l.v, (l.n + 1) * sizeof(*l.v));
		l.v[l.n++] = strdup(line);
	}
	free(line);
	fclose(f);
	return l;
}

static void write_lines(const char *path, const lines *l)
{
	FILE *f = fopen(path, "w");
	size_t i;

	assert_non_null(f);
	for (i = 0; i < l->n; i++)
		fputs(l->v[i], f);
	fclose(f);
}

static void free_lines(lines *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static json_t *event(int i, int level)
{
	static const char *const groups[] = {"system:authenticated", "dev",
					     NULL};
	static const char *const ips[] = {"10.0.0.7", NULL};
	char name[32], uri[128];
	audit_attrs a = {
	    .user = "alice",
	    .groups = groups,
	    .verb = "create",
	    .group = "mesh.signalbox.dev",
	    .resource = "peers",
	    .namespace = "ns1",
	    .name = name,
	    .resource_request = true,
	};
	audit_request r = {
	    .attrs = &a,
	    .request_uri = uri,
	    .api_version = "v1alpha1",
	    .source_ips = ips,
	    .user_agent = "kubectl/v1.30.0",
	    .received = {1714557600, 123456789},
	    .code = 201,
	    .decision = "allow",
	    .authz_reason = "RBAC: allowed by ClusterRoleBinding \"x\"",
	};
	struct timespec st = {1714557600, 223456000};
	json_t *obj = json_pack("{s:s, s:{s:s, s:s}}", "kind", "Peer", "spec",
				"publicKey", "pk", "privateKey", "sk");
	json_t *e;

	snprintf(name, sizeof(name), "peer-%d", i);
	snprintf(uri, sizeof(uri),
		 "/apis/mesh.signalbox.dev/v1alpha1/namespaces/ns1/peers?i=%d",
		 i);
	r.request_object = obj;
	r.response_object = obj;
	e = audit_event_new(&r, level, AUDIT_STAGE_RESPONSE_COMPLETE, &st);
	json_decref(obj);
	assert_non_null(e);
	return e;
}

/* Write n events to a new log at path (no rotation). */
static void write_log(const char *path, int n)
{
	char err[512] = "";
	audit_log *l = audit_open(path, 0, 0, err, sizeof(err));
	int i;

	if (!l)
		fail_msg("audit_open: %s", err);
	for (i = 1; i <= n; i++) {
		json_t *e = event(i, AUDIT_LEVEL_METADATA);

		assert_int_equal(audit_write(l, e), 0);
		json_decref(e);
	}
	assert_int_equal(audit_close(l), 0);
}

static audit_verify_result verify1(const char *path)
{
	audit_verify_result r;

	assert_int_equal(audit_verify(&path, 1, &r), 0);
	return r;
}

static void expect(const audit_verify_result *r, audit_problem p,
		   unsigned long line, uint64_t seq)
{
	if (r->problem != p || r->line != line || r->seq != seq)
		fail_msg("expected %s at line %lu seq %llu, got %s at line %lu "
			 "seq %llu: %s",
			 audit_problem_name(p), line, (unsigned long long)seq,
			 audit_problem_name(r->problem), r->line,
			 (unsigned long long)r->seq, r->what);
}

/* ---- the events ------------------------------------------------------------
 */

static void test_event_shape(void **state)
{
	json_t *e = event(1, AUDIT_LEVEL_METADATA), *ann;
	const char *ts;
	char *s;

	(void)state;
	s = json_dumps(e, JSON_COMPACT);
	/* the head of what kube-apiserver writes, in its order */
	assert_true(
	    !strncmp(s,
		     "{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/"
		     "v1\",\"level\":\"Metadata\",\"auditID\":\"",
		     70));
	assert_non_null(strstr(
	    s, "\"stage\":\"ResponseComplete\",\"requestURI\":\"/apis/mesh"));
	assert_non_null(strstr(
	    s, "\"verb\":\"create\",\"user\":{\"username\":\"alice\","
	       "\"groups\":[\"system:authenticated\",\"dev\"]},"
	       "\"sourceIPs\":[\"10.0.0.7\"],\"userAgent\":\"kubectl/v1.30.0\","
	       "\"objectRef\":{\"resource\":\"peers\",\"namespace\":\"ns1\","
	       "\"name\":\"peer-1\",\"apiGroup\":\"mesh.signalbox.dev\","
	       "\"apiVersion\":\"v1alpha1\"},"
	       "\"responseStatus\":{\"metadata\":{},\"code\":201},"
	       "\"requestReceivedTimestamp\":\"2024-05-01T10:00:00.123456Z\","
	       "\"stageTimestamp\":\"2024-05-01T10:00:00.223456Z\""));
	assert_null(json_object_get(e, "requestObject"));
	assert_null(json_object_get(e, "responseObject"));
	ann = json_object_get(e, "annotations");
	assert_string_equal(json_string_value(json_object_get(
				ann, "authorization.k8s.io/decision")),
			    "allow");
	ts = json_string_value(json_object_get(e, "auditID"));
	assert_int_equal(strlen(ts), 36);
	assert_int_equal(ts[14], '4');
	free(s);
	json_decref(e);

	/* Request: the request object, redacted; RequestResponse: both */
	e = event(1, AUDIT_LEVEL_REQUEST);
	assert_non_null(json_object_get(e, "requestObject"));
	assert_null(json_object_get(e, "responseObject"));
	assert_string_equal(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(e, "requestObject"), "spec"),
		"privateKey")),
	    "[REDACTED]");
	json_decref(e);
	e = event(1, AUDIT_LEVEL_REQUEST_RESPONSE);
	assert_non_null(json_object_get(e, "responseObject"));
	json_decref(e);

	/* None records nothing */
	{
		audit_attrs a = {.verb = "get", .path = "/healthz"};
		audit_request r = {
		    .attrs = &a, .request_uri = "/healthz", .code = 200};

		assert_null(audit_event_new(
		    &r, AUDIT_LEVEL_NONE, AUDIT_STAGE_RESPONSE_COMPLETE, NULL));
		e = audit_event_new(&r, AUDIT_LEVEL_METADATA,
				    AUDIT_STAGE_RESPONSE_COMPLETE, NULL);
		assert_null(json_object_get(e, "objectRef"));
		assert_non_null(json_object_get(e, "responseStatus"));
		json_decref(e);
	}
}

static void test_redact(void **state)
{
	json_t *o = json_loads(
	    "{\"metadata\":{\"name\":\"key\",\"token\":\"m\"},"
	    "\"spec\":{\"token\":\"t\",\"publicKey\":\"pub\",\"key\":\"k\","
	    "\"nested\":[{\"adminPassword\":\"p\",\"clientSecret\":\"c\"}],"
	    "\"Password\":7,\"bearerToken\":\"b\",\"keyID\":\"id\"},"
	    "\"status\":{\"token\":\"jwt\",\"expirationTimestamp\":\"x\"}}",
	    0, NULL);
	json_t *exp = json_loads(
	    "{\"metadata\":{\"name\":\"key\",\"token\":\"m\"},"
	    "\"spec\":{\"token\":\"[REDACTED]\",\"publicKey\":\"pub\","
	    "\"key\":\"[REDACTED]\",\"nested\":[{\"adminPassword\":"
	    "\"[REDACTED]\",\"clientSecret\":\"[REDACTED]\"}],"
	    "\"Password\":7,\"bearerToken\":\"[REDACTED]\",\"keyID\":\"id\"},"
	    "\"status\":{\"token\":\"[REDACTED]\",\"expirationTimestamp\":"
	    "\"x\"}}",
	    0, NULL);

	(void)state;
	audit_redact(o);
	assert_true(json_equal(o, exp));
	json_decref(o);
	json_decref(exp);
}

/* ---- the chain -------------------------------------------------------------
 */

/* The scheme, recomputed here from the header's words alone. */
static void check_scheme(const char *line, const char *prev)
{
	size_t len = strlen(line) - 1; /* newline */
	char *copy = strndup(line, len), *digits, hex[65];
	unsigned char d[32];
	unsigned int dl;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int i;

	assert_int_equal(line[len], '\n');
	assert_string_equal(copy + len - 3, "\"}}");
	digits = copy + len - 3 - 64;
	assert_true(
	    !strncmp(digits - 28, "\"audit.signalbox.dev/hash\":\"", 28));
	memcpy(hex, digits, 64);
	hex[64] = '\0';
	memset(digits, '0', 64);
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	EVP_DigestUpdate(md, prev, 64);
	EVP_DigestUpdate(md, copy, len);
	EVP_DigestFinal_ex(md, d, &dl);
	for (i = 0; i < 32; i++) {
		char b[3];

		snprintf(b, sizeof(b), "%02x", d[i]);
		assert_true(!strncmp(hex + 2 * i, b, 2));
	}
	EVP_MD_CTX_free(md);
	free(copy);
}

static void test_write_verify(void **state)
{
	char *dir = tmpdir(), *path = join(dir, "audit.log");
	char prev[65];
	audit_verify_result r;
	struct stat st;
	lines l;
	size_t i;

	(void)state;
	write_log(path, 20);
	r = verify1(path);
	expect(&r, AUDIT_INTACT, 0, 0);
	assert_int_equal(r.records, 20);
	assert_int_equal(r.first_seq, 1);
	assert_int_equal(r.last_seq, 20);
	assert_true(r.anchored);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	l = read_lines(path);
	assert_int_equal(l.n, 20);
	memset(prev, '0', 64);
	prev[64] = '\0';
	for (i = 0; i < l.n; i++) {
		json_t *j = json_loads(l.v[i], 0, NULL);
		json_t *ann = json_object_get(j, "annotations");
		char seq[24];

		snprintf(seq, sizeof(seq), "%zu", i + 1);
		assert_string_equal(
		    json_string_value(json_object_get(ann, AUDIT_ANN_SEQ)),
		    seq);
		assert_string_equal(
		    json_string_value(json_object_get(ann, AUDIT_ANN_PREV)),
		    prev);
		check_scheme(l.v[i], prev);
		memcpy(prev,
		       json_string_value(json_object_get(ann, AUDIT_ANN_HASH)),
		       65);
		json_decref(j);
	}
	assert_string_equal(prev, r.last_hash);
	free_lines(&l);

	/* reopening continues the chain */
	write_log(path, 5);
	r = verify1(path);
	expect(&r, AUDIT_INTACT, 0, 0);
	assert_int_equal(r.last_seq, 25);
	free(path);
	rmdir_all(dir);
}

static void test_altered(void **state)
{
	char *dir = tmpdir(), *path = join(dir, "audit.log");
	audit_verify_result r;
	lines l;
	char *p;

	(void)state;
	write_log(path, 10);
	l = read_lines(path);
	p = strstr(l.v[4], "alice"); /* line 5 */
	p[4] = 'f';
	write_lines(path, &l);
	r = verify1(path);
	expect(&r, AUDIT_ALTERED, 5, 5);
	assert_int_equal(r.records, 4);
	assert_int_equal(r.last_seq, 4);

	/* the hash digits themselves */
	p[4] = 'e';
	p = strstr(l.v[6], AUDIT_ANN_HASH "\":\"") + strlen(AUDIT_ANN_HASH) + 3;
	*p = *p == 'a' ? 'b' : 'a';
	write_lines(path, &l);
	r = verify1(path);
	expect(&r, AUDIT_ALTERED, 7, 7);

	/* a byte that breaks the JSON */
	*p = *p == 'a' ? 'b' : 'a';
	strstr(l.v[2], "\"verb\"")[0] = ' ';
	write_lines(path, &l);
	r = verify1(path);
	expect(&r, AUDIT_MALFORMED, 3, 0);
	free_lines(&l);
	free(path);
	rmdir_all(dir);
}

static void test_deleted(void **state)
{
	char *dir = tmpdir(), *path = join(dir, "audit.log");
	audit_verify_result r;
	lines l;

	(void)state;
	write_log(path, 10);
	l = read_lines(path);
	free(l.v[4]);
	memmove(&l.v[4], &l.v[5], 5 * sizeof(*l.v));
	l.n--;
	write_lines(path, &l);
	r = verify1(path);
	expect(&r, AUDIT_DELETED, 5, 6);
	assert_non_null(strstr(r.what, "records 5..5 are missing"));
	free_lines(&l);
	free(path);
	rmdir_all(dir);
}

static void test_reordered(void **state)
{
	char *dir = tmpdir(), *path = join(dir, "audit.log");
	audit_verify_result r;
	lines l;
	char *t;

	(void)state;
	write_log(path, 10);
	l = read_lines(path);
	t = l.v[3];
	l.v[3] = l.v[4];
	l.v[4] = t;
	write_lines(path, &l);
	r = verify1(path);
	expect(&r, AUDIT_REORDERED, 4, 5);
	assert_int_equal(r.records, 3);

	/* a record moved far back (a duplicate) */
	t = l.v[4];
	l.v[4] = l.v[3];
	l.v[3] = t;
	free(l.v[8]);
	l.v[8] = strdup(l.v[1]);
	write_lines(path, &l);
	r = verify1(path);
	expect(&r, AUDIT_REORDERED, 9, 2);
	free_lines(&l);
	free(path);
	rmdir_all(dir);
}

static void test_truncated(void **state)
{
	char *dir = tmpdir(), *path = join(dir, "audit.log");
	char *anchor = join(dir, "audit.log.anchor");
	audit_verify_result r;
	lines l;

	(void)state;
	write_log(path, 10);
	l = read_lines(path);
	l.n -= 3;
	write_lines(path, &l);
	l.n += 3;
	r = verify1(path);
	expect(&r, AUDIT_TRUNCATED, 0, 8);
	assert_non_null(strstr(r.what, "records 8..10 were deleted"));

	/* the documented limit: without the anchor the shorter chain is
	 * a valid chain */
	unlink(anchor);
	r = verify1(path);
	expect(&r, AUDIT_INTACT, 0, 0);
	assert_false(r.anchored);
	assert_int_equal(r.last_seq, 7);

	/* a line cut in the middle shows even without the anchor */
	l.v[6][strlen(l.v[6]) / 2] = '\0';
	l.n = 7;
	write_lines(path, &l);
	l.n = 10;
	r = verify1(path);
	expect(&r, AUDIT_TRUNCATED, 7, 0);
	free_lines(&l);
	free(anchor);
	free(path);
	rmdir_all(dir);
}

static void test_rotation(void **state)
{
	char *dir = tmpdir(), *path = join(dir, "audit.log");
	char *p1 = join(dir, "audit.log.1"), *p2 = join(dir, "audit.log.2");
	char *p3 = join(dir, "audit.log.3"), err[512] = "";
	const char *files[3] = {p2, p1, path};
	audit_verify_result r;
	audit_log *log;
	lines a, b;
	int n = 0;

	(void)state;
	log = audit_open(path, 4000, 5, err, sizeof(err));
	assert_non_null(log);
	while (access(p2, F_OK)) {
		json_t *e = event(++n, AUDIT_LEVEL_METADATA);

		assert_int_equal(audit_write(log, e), 0);
		json_decref(e);
	}
	json_t *e = event(++n, AUDIT_LEVEL_METADATA);
	assert_int_equal(audit_write(log, e), 0);
	json_decref(e);
	assert_int_equal(audit_close(log), 0);
	assert_int_not_equal(access(p3, F_OK), 0);

	assert_int_equal(audit_verify(files, 3, &r), 0);
	expect(&r, AUDIT_INTACT, 0, 0);
	assert_int_equal(r.records, n);
	assert_int_equal(r.first_seq, 1);
	assert_true(r.anchored);

	/* the new file's first prev is the old file's last hash */
	a = read_lines(p1);
	b = read_lines(path);
	{
		json_t *x = json_loads(a.v[a.n - 1], 0, NULL);
		json_t *y = json_loads(b.v[0], 0, NULL);

		assert_string_equal(
		    json_string_value(json_object_get(
			json_object_get(x, "annotations"), AUDIT_ANN_HASH)),
		    json_string_value(json_object_get(
			json_object_get(y, "annotations"), AUDIT_ANN_PREV)));
		json_decref(x);
		json_decref(y);
	}

	/* the wrong order, or a rotated file missing */
	{
		const char *wrong[3] = {p1, p2, path};
		const char *gap[2] = {p2, path};

		assert_int_equal(audit_verify(wrong, 3, &r), 0);
		assert_int_not_equal(r.problem, AUDIT_INTACT);
		assert_int_equal(r.file, 1);
		assert_int_equal(r.line, 1);
		assert_int_equal(audit_verify(gap, 2, &r), 0);
		expect(&r, AUDIT_DELETED, 1, b.n ? r.seq : 0);
		assert_int_equal(r.file, 1);
	}
	free_lines(&a);
	free_lines(&b);

	/* keep 2 backups: the oldest records go, the chain stays whole */
	log = audit_open(path, 4000, 2, err, sizeof(err));
	assert_non_null(log);
	for (int i = 0; i < 60; i++) {
		e = event(++n, AUDIT_LEVEL_METADATA);
		assert_int_equal(audit_write(log, e), 0);
		json_decref(e);
	}
	assert_int_equal(audit_last_seq(log), n);
	assert_int_equal(audit_close(log), 0);
	assert_int_equal(audit_verify(files, 3, &r), 0);
	expect(&r, AUDIT_INTACT, 0, 0);
	assert_true(r.first_seq > 1);
	assert_int_equal(r.last_seq, n);

	/* a crash between the renames and the new file: open continues
	 * from PATH.1 */
	unlink(p2);
	rename(p1, p2);
	rename(path, p1);
	log = audit_open(path, 4000, 2, err, sizeof(err));
	assert_non_null(log);
	e = event(++n, AUDIT_LEVEL_METADATA);
	assert_int_equal(audit_write(log, e), 0);
	json_decref(e);
	assert_int_equal(audit_close(log), 0);
	assert_int_equal(audit_verify(files, 3, &r), 0);
	expect(&r, AUDIT_INTACT, 0, 0);
	assert_int_equal(r.last_seq, n);

	free(p1);
	free(p2);
	free(p3);
	free(path);
	rmdir_all(dir);
}

static void refuse(const char *path, const char *msg)
{
	char err[1024] = "";
	audit_log *l = audit_open(path, 0, 0, err, sizeof(err));

	if (l)
		fail_msg("audit_open accepted a damaged tail (%s)", msg);
	if (!strstr(err, msg))
		fail_msg("expected \"%s\" in \"%s\"", msg, err);
	assert_non_null(strstr(err, "refusing to continue the chain"));
}

static void test_damaged_tail(void **state)
{
	char *dir = tmpdir(), *path = join(dir, "audit.log");
	char *anchor = join(dir, "audit.log.anchor");
	lines l;
	FILE *f;

	(void)state;
	write_log(path, 5);
	l = read_lines(path);

	f = fopen(path, "a");
	fputs("{\"kind\":\"Event\"}\n", f);
	fclose(f);
	refuse(path, "the last line is not an audit record");

	f = fopen(path, "a");
	fputs("{\"kind\":", f);
	fclose(f);
	refuse(path, "the last line is cut short");

	strstr(l.v[4], "alice")[0] = 'A';
	write_lines(path, &l);
	refuse(path, "was altered");

	strstr(l.v[4], "Alice")[0] = 'a';
	l.n = 4;
	write_lines(path, &l);
	refuse(path, "its anchor");

	/* with the anchor gone the shorter chain continues: the limit */
	unlink(anchor);
	write_log(path, 1);
	l.n = 5;
	free_lines(&l);
	l = read_lines(path);
	assert_int_equal(l.n, 5);
	free_lines(&l);
	free(anchor);
	free(path);
	rmdir_all(dir);
}

/* ---- the policy ------------------------------------------------------------
 */

static const char policy_json[] =
    "{\"apiVersion\":\"audit.k8s.io/v1\",\"kind\":\"Policy\","
    " \"omitStages\":[\"RequestReceived\"],"
    " \"rules\":["
    /* 0 */ "{\"level\":\"None\",\"users\":[\"system:kube-proxy\"],"
    "   \"verbs\":[\"watch\"]},"
    /* 1 */ "{\"level\":\"Metadata\",\"resources\":[{\"group\":\"\","
    "   \"resources\":[\"secrets\",\"configmaps\"]}]},"
    /* 2 */ "{\"level\":\"None\",\"userGroups\":[\"system:nodes\"],"
    "   \"verbs\":[\"get\"],\"resources\":[{\"group\":\"\","
    "   \"resources\":[\"nodes/status\"]}]},"
    /* 3 */ "{\"level\":\"RequestResponse\",\"resources\":[{\"group\":"
    "   \"mesh.signalbox.dev\",\"resources\":[\"peers\"],"
    "   \"resourceNames\":[\"gateway\"]}]},"
    /* 4 */ "{\"level\":\"Request\",\"resources\":[{\"group\":"
    "   \"mesh.signalbox.dev\",\"resources\":[\"*/status\"]}],"
    "   \"omitStages\":[\"ResponseStarted\"]},"
    /* 5 */ "{\"level\":\"None\",\"nonResourceURLs\":[\"/healthz*\","
    "   \"/version\"]},"
    /* 6 */ "{\"level\":\"Metadata\",\"namespaces\":[\"kube-system\"]},"
    /* 7 */ "{\"level\":\"Request\",\"resources\":[{\"group\":"
    "   \"rbac.authorization.k8s.io\"}]},"
    /* 8 */ "{\"level\":\"RequestResponse\",\"resources\":[{\"group\":"
    "   \"apps\",\"resources\":[\"deployments/*\"]}],"
    "   \"namespaces\":[\"prod\",\"\"]},"
    /* 9 */ "{\"level\":\"Metadata\",\"verbs\":[\"create\",\"delete\"]}"
    "]}";

static void test_policy_table(void **state)
{
	static const char *const nodes[] = {"system:nodes",
					    "system:authenticated", NULL};
	static const char *const devs[] = {"dev", NULL};
	static const struct {
		audit_attrs a;
		int level;
		unsigned omit;
	} cases[] = {
	    /* users + verbs: both must match */
	    {{.user = "system:kube-proxy",
	      .verb = "watch",
	      .resource = "endpoints",
	      .resource_request = true},
	     AUDIT_LEVEL_NONE,
	     1},
	    {{.user = "system:kube-proxy",
	      .verb = "create",
	      .resource = "secrets",
	      .resource_request = true},
	     AUDIT_LEVEL_METADATA,
	     1},
	    /* first match wins: secrets are Metadata even for a create */
	    {{.user = "bob",
	      .verb = "create",
	      .resource = "secrets",
	      .namespace = "kube-system",
	      .resource_request = true},
	     AUDIT_LEVEL_METADATA,
	     1},
	    /* groups, and resource/subresource */
	    {{.user = "node1",
	      .groups = nodes,
	      .verb = "get",
	      .resource = "nodes",
	      .subresource = "status",
	      .resource_request = true},
	     AUDIT_LEVEL_NONE,
	     1},
	    {{.user = "node1",
	      .groups = devs,
	      .verb = "get",
	      .resource = "nodes",
	      .subresource = "status",
	      .resource_request = true},
	     AUDIT_LEVEL_NONE,
	     1},
	    {{.user = "node1",
	      .groups = nodes,
	      .verb = "get",
	      .resource = "nodes",
	      .resource_request = true},
	     AUDIT_LEVEL_NONE,
	     1},
	    /* resourceNames */
	    {{.user = "u",
	      .verb = "update",
	      .group = "mesh.signalbox.dev",
	      .resource = "peers",
	      .name = "gateway",
	      .namespace = "a",
	      .resource_request = true},
	     AUDIT_LEVEL_REQUEST_RESPONSE,
	     1},
	    {{.user = "u",
	      .verb = "update",
	      .group = "mesh.signalbox.dev",
	      .resource = "peers",
	      .name = "laptop",
	      .namespace = "a",
	      .resource_request = true},
	     AUDIT_LEVEL_NONE,
	     1},
	    /* the group must match too */
	    {{.user = "u",
	      .verb = "update",
	      .resource = "peers",
	      .name = "gateway",
	      .resource_request = true},
	     AUDIT_LEVEL_NONE,
	     1},
	    /* any resource's status, and the rule's omitStages join the
	       policy's */
	    {{.user = "u",
	      .verb = "patch",
	      .group = "mesh.signalbox.dev",
	      .resource = "routes",
	      .subresource = "status",
	      .resource_request = true},
	     AUDIT_LEVEL_REQUEST,
	     3},
	    {{.user = "u",
	      .verb = "patch",
	      .group = "mesh.signalbox.dev",
	      .resource = "routes",
	      .resource_request = true},
	     AUDIT_LEVEL_NONE,
	     1},
	    /* nonResourceURLs: prefix with *, exact; never for resources */
	    {{.user = "u", .verb = "get", .path = "/healthz/ready"},
	     AUDIT_LEVEL_NONE,
	     1},
	    {{.user = "u", .verb = "get", .path = "/version"},
	     AUDIT_LEVEL_NONE,
	     1},
	    {{.user = "u", .verb = "get", .path = "/version/x"},
	     AUDIT_LEVEL_NONE,
	     1},
	    {{.user = "u", .verb = "create", .path = "/version/x"},
	     AUDIT_LEVEL_METADATA,
	     1},
	    {{.user = "u",
	      .verb = "create",
	      .path = "/healthz",
	      .resource = "x",
	      .resource_request = true},
	     AUDIT_LEVEL_METADATA,
	     1},
	    /* namespaces: never for non-resource requests */
	    {{.user = "u",
	      .verb = "list",
	      .resource = "leases",
	      .namespace = "kube-system",
	      .resource_request = true},
	     AUDIT_LEVEL_METADATA,
	     1},
	    {{.user = "u",
	      .verb = "list",
	      .path = "/api",
	      .namespace = "kube-system"},
	     AUDIT_LEVEL_NONE,
	     1},
	    /* a group with no resources: all of its resources */
	    {{.user = "u",
	      .verb = "list",
	      .group = "rbac.authorization.k8s.io",
	      .resource = "roles",
	      .resource_request = true},
	     AUDIT_LEVEL_REQUEST,
	     1},
	    /* every subresource of deployments, in prod or cluster-wide */
	    {{.user = "u",
	      .verb = "update",
	      .group = "apps",
	      .resource = "deployments",
	      .subresource = "scale",
	      .namespace = "prod",
	      .resource_request = true},
	     AUDIT_LEVEL_REQUEST_RESPONSE,
	     1},
	    {{.user = "u",
	      .verb = "update",
	      .group = "apps",
	      .resource = "deployments",
	      .subresource = "scale",
	      .resource_request = true},
	     AUDIT_LEVEL_REQUEST_RESPONSE,
	     1},
	    {{.user = "u",
	      .verb = "update",
	      .group = "apps",
	      .resource = "deployments",
	      .subresource = "scale",
	      .namespace = "dev",
	      .resource_request = true},
	     AUDIT_LEVEL_NONE,
	     1},
	    /* no rule: None, with the policy's omitStages */
	    {{.user = "u",
	      .verb = "get",
	      .resource = "pods",
	      .resource_request = true},
	     AUDIT_LEVEL_NONE,
	     1},
	};
	audit_policy *p = NULL;
	char err[256];
	size_t i;

	(void)state;
	if (audit_policy_parse(policy_json, strlen(policy_json), &p, err,
			       sizeof(err)))
		fail_msg("%s", err);
	for (i = 0; i < ARRAY_LEN(cases); i++) {
		int lv = audit_policy_level(p, &cases[i].a);
		unsigned om = audit_policy_omit_stages(p, &cases[i].a);

		if (lv != cases[i].level || om != cases[i].omit)
			fail_msg("case %zu: level %s omit %u, want %s omit %u",
				 i, audit_level_name(lv), om,
				 audit_level_name(cases[i].level),
				 cases[i].omit);
	}
	audit_policy_free(p);

	/* no policy: Metadata for everything, nothing omitted */
	assert_int_equal(audit_policy_level(NULL, &cases[0].a),
			 AUDIT_LEVEL_METADATA);
	assert_int_equal(audit_policy_omit_stages(NULL, &cases[0].a), 0);
}

static void test_policy_errors(void **state)
{
	static const struct {
		const char *text, *msg;
	} cases[] = {
	    {"apiVersion: audit.k8s.io/v1\nkind: Policy\n",
	     "the policy file must be JSON (YAML is not supported): line 1: "},
	    {"{\"rules\":[\n{\"level\":\"Metadata\"},\n]}",
	     "the policy file must be JSON (YAML is not supported): line 3: "},
	    {"{\"kind\":\"Polcy\"}", "kind: must be \"Policy\""},
	    {"{\"apiVersion\":\"audit.k8s.io/v1beta1\"}",
	     "apiVersion: must be \"audit.k8s.io/v1\""},
	    {"{\"rules\":[{\"level\":\"Everything\"}]}",
	     "rules[0].level: must be None, Metadata, Request or "
	     "RequestResponse"},
	    {"{\"rules\":[{\"level\":\"None\"},{\"level\":\"None\","
	     "\"usrs\":[\"a\"]}]}",
	     "rules[1].unknown field \"usrs\""},
	    {"{\"rules\":[{\"level\":\"None\",\"verbs\":\"get\"}]}",
	     "rules[0].verbs: must be a list of strings"},
	    {"{\"rules\":[{\"level\":\"None\",\"resources\":[{\"group\":\"\","
	     "\"resourceNames\":[\"x\"]}]}]}",
	     "rules[0].resources[0].resourceNames: using resourceNames "
	     "requires at least one resource"},
	    {"{\"rules\":[{\"level\":\"None\",\"namespaces\":[\"a\"],"
	     "\"nonResourceURLs\":[\"/x\"]}]}",
	     "rules cannot apply to both regular resources and non-resource "
	     "URLs"},
	    {"{\"rules\":[{\"level\":\"None\",\"nonResourceURLs\":[\"x\"]}]}",
	     "must begin with a '/'"},
	    {"{\"rules\":[{\"level\":\"None\",\"nonResourceURLs\":[\"/*/"
	     "x\"]}]}",
	     "must be the final character"},
	    {"{\"omitStages\":[\"Done\"]}", "omitStages[0]: unknown stage"},
	};
	audit_policy *p;
	char err[512];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(cases); i++) {
		err[0] = '\0';
		if (!audit_policy_parse(cases[i].text, strlen(cases[i].text),
					&p, err, sizeof(err)))
			fail_msg("case %zu parsed", i);
		assert_null(p);
		if (!strstr(err, cases[i].msg))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err,
				 cases[i].msg);
	}
	/* load from a file, and a missing one */
	{
		char *dir = tmpdir(), *path = join(dir, "policy.json");
		FILE *f = fopen(path, "w");

		fputs(policy_json, f);
		fclose(f);
		assert_int_equal(audit_policy_load(path, &p, err, sizeof(err)),
				 0);
		audit_policy_free(p);
		unlink(path);
		assert_int_equal(audit_policy_load(path, &p, err, sizeof(err)),
				 -ENOENT);
		assert_non_null(strstr(err, "policy.json"));
		free(path);
		rmdir_all(dir);
	}
}

/* The caller cannot forge the chain keys; its other annotations stay. */
static void test_write_annotations(void **state)
{
	char *dir = tmpdir(), *path = join(dir, "audit.log"), err[256];
	audit_log *l = audit_open(path, 0, 0, err, sizeof(err));
	json_t *e = json_pack("{s:s, s:{s:s, s:s}, s:s}", "kind", "Event",
			      "annotations", AUDIT_ANN_SEQ, "999", "x", "y",
			      "verb", "get");
	json_t *ann;
	audit_verify_result r;
	lines ls;

	(void)state;
	assert_non_null(l);
	assert_int_equal(audit_write(l, e), 0);
	ann = json_object_get(e, "annotations");
	assert_string_equal(json_string_value(json_object_get(ann, "x")), "y");
	assert_string_equal(
	    json_string_value(json_object_get(ann, AUDIT_ANN_SEQ)), "1");
	assert_int_equal(
	    strlen(json_string_value(json_object_get(ann, AUDIT_ANN_HASH))),
	    64);
	assert_int_equal(audit_write(l, json_object_get(e, "verb")), -EINVAL);
	assert_int_equal(audit_last_seq(l), 1);
	assert_int_equal(audit_close(l), 0);
	ls = read_lines(path);
	assert_int_equal(ls.n, 1);
	assert_true(!strncmp(ls.v[0],
			     "{\"kind\":\"Event\",\"verb\":\"get\","
			     "\"annotations\":{\"x\":\"y\",",
			     45));
	free_lines(&ls);
	r = verify1(path);
	expect(&r, AUDIT_INTACT, 0, 0);
	json_decref(e);
	free(path);
	rmdir_all(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_event_shape),
	    cmocka_unit_test(test_redact),
	    cmocka_unit_test(test_write_verify),
	    cmocka_unit_test(test_write_annotations),
	    cmocka_unit_test(test_altered),
	    cmocka_unit_test(test_deleted),
	    cmocka_unit_test(test_reordered),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_rotation),
	    cmocka_unit_test(test_damaged_tail),
	    cmocka_unit_test(test_policy_table),
	    cmocka_unit_test(test_policy_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
