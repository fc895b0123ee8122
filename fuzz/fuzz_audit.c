/*
 * fuzz_audit.c -- libFuzzer target for the audit log's readers of
 * untrusted input (src/security/audit.c): the policy parser and the
 * verifier, which reads whatever is in the log files.
 *
 * The input is
 *   - parsed as a policy; what parses is matched against a few requests;
 *   - written out as a log (split in two rotated files at a line boundary
 *     near the middle; whatever follows a line "#anchor" becomes the
 *     anchor file) and verified, as one file and as two;
 *   - when the verifier calls the log intact, audit_open must accept it,
 *     and after one more record the log must still verify intact, one
 *     seq further.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "security/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256], p_one[300], p_old[300], p_new[300], p_anchor[300],
    p_new_anchor[300], p_one1[300];

static void cleanup(void)
{
	const char *const files[] = {p_one, p_one1, p_anchor,
				     p_old, p_new,  p_new_anchor};
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink(files[i]);
	rmdir(dir);
}

static void init(void)
{
	const char *base = access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm";

	if (dir[0])
		return;
	snprintf(dir, sizeof(dir), "%s/fuzz-audit-XXXXXX", base);
	if (!mkdtemp(dir))
		abort();
	snprintf(p_one, sizeof(p_one), "%s/log", dir);
	snprintf(p_one1, sizeof(p_one1), "%s/log.1", dir);
	snprintf(p_anchor, sizeof(p_anchor), "%s/log.anchor", dir);
	snprintf(p_old, sizeof(p_old), "%s/two.1", dir);
	snprintf(p_new, sizeof(p_new), "%s/two", dir);
	snprintf(p_new_anchor, sizeof(p_new_anchor), "%s/two.anchor", dir);
	atexit(cleanup);
}

static void put(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		abort();
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w <= 0)
			abort();
		p += w;
		n -= (size_t)w;
	}
	close(fd);
}

static void policy(const uint8_t *data, size_t size)
{
	static const char *const groups[] = {"system:nodes", "dev", NULL};
	static const audit_attrs attrs[] = {
	    {.user = "alice",
	     .groups = groups,
	     .verb = "get",
	     .resource = "pods",
	     .namespace = "a",
	     .name = "p",
	     .resource_request = true},
	    {.user = "system:kube-proxy",
	     .verb = "watch",
	     .group = "apps",
	     .resource = "deployments",
	     .subresource = "scale",
	     .resource_request = true},
	    {.user = "bob", .verb = "get", .path = "/healthz/ready"},
	    {0},
	};
	audit_policy *p = NULL;
	char err[512];
	size_t i;

	if (audit_policy_parse((const char *)data, size, &p, err,
			       sizeof(err))) {
		if (p || !err[0])
			abort();
		return;
	}
	for (i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
		int lv = audit_policy_level(p, &attrs[i]);

		if (lv < AUDIT_LEVEL_NONE ||
		    lv > AUDIT_LEVEL_REQUEST_RESPONSE ||
		    audit_policy_omit_stages(p, &attrs[i]) > 15)
			abort();
	}
	audit_policy_free(p);
}

/* After an intact verdict: open, append, verify again. */
static void append_one(uint64_t last_seq)
{
	static const char *const one[] = {p_one};
	audit_attrs a = {.user = "u", .verb = "get", .path = "/x"};
	audit_request r = {.attrs = &a, .request_uri = "/x", .code = 200};
	audit_verify_result res;
	char err[1024];
	audit_log *l = audit_open(p_one, 0, 0, err, sizeof(err));
	json_t *e;

	if (!l) {
		fprintf(stderr, "intact log refused: %s\n", err);
		abort();
	}
	e = audit_event_new(&r, AUDIT_LEVEL_METADATA,
			    AUDIT_STAGE_RESPONSE_COMPLETE, NULL);
	if (!e || audit_write(l, e) || audit_close(l))
		abort();
	json_decref(e);
	if (audit_verify(one, 1, &res) || res.problem != AUDIT_INTACT ||
	    res.last_seq != last_seq + 1) {
		fprintf(stderr, "after append: %s %s\n",
			audit_problem_name(res.problem), res.what);
		abort();
	}
}

static void logs(const uint8_t *data, size_t size)
{
	static const char *const one[] = {p_one};
	static const char *const two[] = {p_old, p_new};
	static const char mark[] = "\n#anchor\n";
	const uint8_t *anchor = memmem(data, size, mark, sizeof(mark) - 1);
	size_t logn = anchor ? (size_t)(anchor - data) + 1 : size, half;
	audit_verify_result res;
	int rc;

	unlink(p_anchor);
	unlink(p_new_anchor);
	unlink(p_one1);
	put(p_one, data, logn);
	if (anchor) {
		anchor += sizeof(mark) - 1;
		put(p_anchor, anchor, size - (size_t)(anchor - data));
		put(p_new_anchor, anchor, size - (size_t)(anchor - data));
	}
	rc = audit_verify(one, 1, &res);
	if (rc && rc != -ENOMEM && rc != -EIO)
		abort();
	if (!rc && res.problem == AUDIT_INTACT)
		append_one(res.last_seq);

	for (half = logn / 2; half < logn && data[half] != '\n'; half++)
		;
	half = half < logn ? half + 1 : logn;
	put(p_old, data, half);
	put(p_new, data + half, logn - half);
	rc = audit_verify(two, 2, &res);
	if (rc && rc != -ENOMEM && rc != -EIO)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init();
	policy(data, size);
	logs(data, size);
	return 0;
}
