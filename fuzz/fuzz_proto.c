/*
 * fuzz_proto.c -- libFuzzer target for the Kubernetes protobuf decoder
 * (src/api/proto.c).
 *
 * The input is decoded as a whole body, and again behind the "k8s\0" magic
 * and a valid envelope for each known kind, so that the fuzzer reaches the
 * message tables without first having to guess an apiVersion and a kind.
 * Whatever decodes must be a JSON object with string apiVersion and kind
 * that dumps and parses back equal; whatever fails must say why.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const gvks[][2] = {
    {"v1", "Namespace"},
    {"coordination.k8s.io/v1", "Lease"},
    {"rbac.authorization.k8s.io/v1", "Role"},
    {"rbac.authorization.k8s.io/v1", "ClusterRole"},
    {"rbac.authorization.k8s.io/v1", "RoleBinding"},
    {"authorization.k8s.io/v1", "SelfSubjectAccessReview"},
    {"authorization.k8s.io/v1", "SubjectAccessReview"},
    {"authorization.k8s.io/v1", "SelfSubjectRulesReview"},
    {"autoscaling/v1", "Scale"},
    {"meta.k8s.io/v1", "DeleteOptions"},
};
#define NGVKS (sizeof(gvks) / sizeof(gvks[0]))

static void check(const uint8_t *data, size_t size)
{
	char err[256];
	json_t *j, *back;
	char *text;

	err[0] = '\0';
	j = proto_decode(data, size, err, sizeof(err));
	if (!j) {
		if (strncmp(err, "proto: ", 7)) {
			fprintf(stderr, "failed without a message: '%s'\n",
				err);
			abort();
		}
		return;
	}
	if (!json_is_object(j) ||
	    !json_is_string(json_object_get(j, "apiVersion")) ||
	    !json_is_string(json_object_get(j, "kind")))
		abort();
	text = json_dumps(j, JSON_COMPACT);
	if (!text) {
		fprintf(stderr, "decoded JSON does not dump\n");
		abort();
	}
	back = json_loads(text, 0, NULL);
	if (!back || !json_equal(j, back)) {
		fprintf(stderr, "'%s' does not parse back equal\n", text);
		abort();
	}
	json_decref(back);
	free(text);
	json_decref(j);
}

/* The tag and length of field num, n bytes long, at p; returns its end. */
static uint8_t *put_len(uint8_t *p, unsigned num, size_t n)
{
	*p++ = (uint8_t)(num << 3 | 2);
	while (n >= 0x80) {
		*p++ = (uint8_t)(n | 0x80);
		n >>= 7;
	}
	*p++ = (uint8_t)n;
	return p;
}

static uint8_t *put_str(uint8_t *p, unsigned num, const char *s)
{
	p = put_len(p, num, strlen(s));
	memcpy(p, s, strlen(s));
	return p + strlen(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t tm[128], *body, *p;
	size_t k, tn;

	check(data, size);
	if (size < 1 || size > 1 << 20)
		return 0;
	/* the first byte picks a kind; the rest is that kind's raw message */
	k = data[0] % NGVKS;
	p = put_str(tm, 1, gvks[k][0]);
	p = put_str(p, 2, gvks[k][1]);
	tn = (size_t)(p - tm);
	body = malloc(PROTO_MAGIC_LEN + 3 + tn + 4 + size);
	if (!body)
		return 0;
	memcpy(body, PROTO_MAGIC, PROTO_MAGIC_LEN);
	p = put_len(body + PROTO_MAGIC_LEN, 1, tn);
	memcpy(p, tm, tn);
	p = put_len(p + tn, 2, size - 1);
	memcpy(p, data + 1, size - 1);
	check(body, (size_t)(p + size - 1 - body));
	free(body);
	return 0;
}
