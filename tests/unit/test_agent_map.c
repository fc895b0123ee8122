/*
 * test_agent_map.c -- the agent's network map (src/agent/amap.c): the
 * invariant that a snapshot and the deltas leading to the same state give
 * equal maps, whatever the order of entries; bad frames change nothing;
 * the stored form reads back equal; RESUMED and DELTA need a map; ports
 * normalise the two spellings (rule protocol, port protocol).
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

#include "agent/amap.h"
#include "agent/dpconf.h"

#define K1 "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define K2 "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
#define K3 "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="
#define K4 "BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ="

#define SELF                                                                   \
	"{\"name\":\"web-1\",\"namespace\":\"default\","                       \
	"\"address\":\"100.64.0.1\",\"cidr\":\"100.64.0.0/10\","               \
	"\"dnsName\":\"web-1.default.mesh.local\",\"publicKey\":\"" K1 "\"}"

static int apply(amap *m, const char *frame, amap_frame_type *t)
{
	amap_frame_type tt;
	uint64_t serial;
	bool changed;
	char err[256];
	int r = amap_apply_frame(m, frame, strlen(frame), t ? t : &tt, &serial,
				 &changed, err, sizeof(err));

	if (r)
		print_message("frame refused: %s\n", err);
	return r;
}

/* The state reached by the deltas below, written as one snapshot with
 * entries in another order than the deltas add them. */
static const char final_snapshot[] =
    "{\"type\":\"SNAPSHOT\",\"serial\":9,\"map\":{\"self\":" SELF ","
    "\"peers\":["
    "{\"name\":\"router-1\",\"publicKey\":\"" K4 "\","
    "\"endpoints\":[\"192.0.2.14:51820\"],"
    "\"allowedIPs\":[\"198.19.77.0/24\",\"100.64.0.4/32\"],\"online\":true},"
    "{\"name\":\"db-1\",\"publicKey\":\"" K2 "\","
    "\"endpoints\":[\"192.0.2.12:51820\",\"192.0.2.12:51820\"],"
    "\"allowedIPs\":[\"100.64.0.2/32\"],\"online\":true}],"
    "\"rules\":["
    "{\"name\":\"policy/web-to-db/out\",\"sources\":[\"100.64.0.2/32\","
    "\"100.64.0.4/32\"],\"protocol\":\"TCP\",\"ports\":[{\"from\":80,"
    "\"to\":80}]},"
    "{\"name\":\"policy/icmp/in\",\"sources\":[\"100.64.0.4/32\"],"
    "\"ports\":[{\"protocol\":\"ICMP\"}]}],"
    "\"routes\":[{\"name\":\"lan\",\"destination\":\"198.19.77.0/24\","
    "\"via\":\"router-1\"}]}}";

static const char *const deltas[] = {
    /* the start */
    "{\"type\":\"SNAPSHOT\",\"serial\":1,\"map\":{\"self\":" SELF ","
    "\"peers\":[{\"name\":\"db-1\",\"publicKey\":\"" K2 "\","
    "\"endpoints\":[\"192.0.2.99:1\"],\"allowedIPs\":[\"100.64.0.2/32\"],"
    "\"online\":false},"
    "{\"name\":\"cache-1\",\"publicKey\":\"" K3 "\",\"endpoints\":[],"
    "\"allowedIPs\":[\"100.64.0.3/32\"],\"online\":true}],"
    "\"rules\":[{\"name\":\"policy/web-to-db/out\",\"sources\":"
    "[\"100.64.0.2/32\",\"100.64.0.3/32\"],\"protocol\":\"TCP\","
    "\"ports\":[{\"from\":80,\"to\":80}]},"
    "{\"name\":\"policy/old/in\",\"sources\":[\"100.64.0.3/32\"],"
    "\"protocol\":\"any\",\"ports\":[]}],"
    "\"routes\":[]}}",
    /* peers: set replaces db-1 (endpoint, online), adds router-1 */
    "{\"type\":\"DELTA\",\"serial\":2,\"peers\":{\"set\":["
    "{\"name\":\"db-1\",\"publicKey\":\"" K2 "\","
    "\"endpoints\":[\"192.0.2.12:51820\"],"
    "\"allowedIPs\":[\"100.64.0.2/32\"],\"online\":true},"
    "{\"name\":\"router-1\",\"publicKey\":\"" K4 "\","
    "\"endpoints\":[\"192.0.2.14:51820\"],"
    "\"allowedIPs\":[\"100.64.0.4/32\"],\"online\":true}]}}",
    /* sources: add router-1's, remove cache-1's (and an absent one) */
    "{\"type\":\"DELTA\",\"serial\":3,\"rules\":{\"addSources\":["
    "{\"name\":\"policy/web-to-db/out\",\"sources\":[\"100.64.0.4/32\"]}],"
    "\"removeSources\":[{\"name\":\"policy/web-to-db/out\",\"sources\":"
    "[\"100.64.0.3/32\",\"100.64.0.77/32\"]},"
    "{\"name\":\"no-such-rule\",\"sources\":[\"100.64.0.3/32\"]}]}}",
    /* remove cache-1 and an absent peer; a new rule, an old one goes */
    "{\"type\":\"DELTA\",\"serial\":4,\"peers\":{\"remove\":[\"cache-1\","
    "\"never-was\"]},\"rules\":{\"set\":[{\"name\":\"policy/icmp/in\","
    "\"sources\":[\"100.64.0.4/32\"],\"protocol\":\"ICMP\","
    "\"ports\":[]}],\"remove\":[\"policy/old/in\"]}}",
    "{\"type\":\"HEARTBEAT\",\"serial\":4}",
    /* a route through router-1, whose allowed IPs grow */
    "{\"type\":\"DELTA\",\"serial\":5,\"routes\":{\"set\":[{\"name\":"
    "\"lan\",\"destination\":\"198.19.77.0/24\",\"via\":\"router-1\"},"
    "{\"name\":\"tmp\",\"destination\":\"198.19.78.0/24\",\"via\":"
    "\"router-1\"}]},\"peers\":{\"set\":[{\"name\":\"router-1\","
    "\"publicKey\":\"" K4 "\",\"endpoints\":[\"192.0.2.14:51820\"],"
    "\"allowedIPs\":[\"100.64.0.4/32\",\"198.19.77.0/24\"],"
    "\"online\":true}]}}",
    "{\"type\":\"DELTA\",\"serial\":9,\"routes\":{\"remove\":[\"tmp\"]},"
    "\"self\":" SELF "}",
};

static void snapshot_equals_deltas(void **state)
{
	amap a, b;
	size_t i;

	(void)state;
	amap_init(&a);
	amap_init(&b);
	for (i = 0; i < sizeof(deltas) / sizeof(deltas[0]); i++)
		assert_int_equal(apply(&a, deltas[i], NULL), 0);
	assert_int_equal(apply(&b, final_snapshot, NULL), 0);
	assert_true(amap_equal(&a, &b));
	assert_int_equal(a.serial, 9);
	assert_int_equal(a.npeers, 2);
	assert_non_null(amap_peer_find(&a, "router-1"));
	assert_null(amap_peer_find(&a, "cache-1"));
	assert_int_equal(amap_peer_find(&a, "db-1")->nendpoints, 1);
	assert_int_equal(amap_rule_find(&a, "policy/web-to-db/out")->sources.n,
			 2);

	/* and so are the configurations made from them */
	{
		dpc ca, cb;
		char *ta, *tb;

		assert_int_equal(dpc_from_amap(&a, &ca), 0);
		assert_int_equal(dpc_from_amap(&b, &cb), 0);
		ta = dpc_encode(&ca);
		tb = dpc_encode(&cb);
		assert_string_equal(ta, tb);
		free(ta);
		free(tb);
		dpc_free(&ca);
		dpc_free(&cb);
	}
	amap_clear(&a);
	amap_clear(&b);
}

/* Each delta alone moves the map by what it says: one step off is not
 * equal. */
static void deltas_are_not_ignored(void **state)
{
	amap a, b;
	size_t i, n = sizeof(deltas) / sizeof(deltas[0]);

	(void)state;
	amap_init(&b);
	assert_int_equal(apply(&b, final_snapshot, NULL), 0);
	for (size_t skip = 1; skip < n; skip++) {
		if (strstr(deltas[skip], "HEARTBEAT"))
			continue;
		amap_init(&a);
		for (i = 0; i < n; i++)
			if (i != skip)
				assert_int_equal(apply(&a, deltas[i], NULL), 0);
		assert_false(amap_equal(&a, &b));
		amap_clear(&a);
	}
	amap_clear(&b);
}

static void bad_frames_change_nothing(void **state)
{
	static const char *const bad[] = {
	    "",
	    "[]",
	    "{\"type\":\"DELTA\"}",
	    "{\"type\":\"DELTA\",\"serial\":-1}",
	    "{\"type\":\"WHAT\",\"serial\":3}",
	    /* a good set, then a bad key later in the same frame */
	    "{\"type\":\"DELTA\",\"serial\":3,\"peers\":{\"set\":[{\"name\":"
	    "\"x\",\"publicKey\":\"" K3 "\"},{\"name\":\"y\",\"publicKey\":"
	    "\"AAAA\"}]}}",
	    "{\"type\":\"DELTA\",\"serial\":3,\"rules\":{\"set\":[{\"name\":"
	    "\"r\",\"sources\":[\"100.64.0.300/32\"]}]}}",
	    "{\"type\":\"DELTA\",\"serial\":3,\"rules\":{\"set\":[{\"name\":"
	    "\"r\",\"sources\":[],\"ports\":[{\"from\":90,\"to\":80}]}]}}",
	    "{\"type\":\"DELTA\",\"serial\":3,\"rules\":{\"set\":[{\"name\":"
	    "\"r\",\"ports\":[{\"from\":0}]}]}}",
	    "{\"type\":\"DELTA\",\"serial\":3,\"rules\":{\"set\":[{\"name\":"
	    "\"r\",\"protocol\":\"SCTP\"}]}}",
	    "{\"type\":\"DELTA\",\"serial\":3,\"peers\":{\"remove\":[1]}}",
	    "{\"type\":\"DELTA\",\"serial\":3,\"peers\":{\"set\":[{\"name\":"
	    "\"a b\",\"publicKey\":\"" K3 "\"}]}}",
	    "{\"type\":\"DELTA\",\"serial\":3,\"routes\":{\"set\":[{\"name\":"
	    "\"r\",\"destination\":\"10.0.0.0/33\",\"via\":\"x\"}]}}",
	    "{\"type\":\"DELTA\",\"serial\":3,\"self\":{\"name\":\"x\"}}",
	    "{\"type\":\"DELTA\",\"serial\":3,\"type\":\"SNAPSHOT\"}",
	    "{\"type\":\"RESUMED\",\"serial\":2}",
	    "{\"type\":\"SNAPSHOT\",\"serial\":3,\"map\":{\"peers\":[]}}",
	};
	amap a, before;
	amap_frame_type t;

	(void)state;
	amap_init(&a);
	amap_init(&before);
	assert_int_equal(apply(&a, deltas[0], NULL), 0);
	assert_int_equal(apply(&before, deltas[0], NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = apply(&a, bad[i], &t);

		if (!r)
			fail_msg("accepted: %s", bad[i]);
		assert_true(r == -EINVAL || r == -EPROTO);
		assert_true(amap_equal(&a, &before));
		assert_int_equal(a.serial, 1);
	}
	amap_clear(&a);
	amap_clear(&before);
}

static void resumed_and_delta_need_a_map(void **state)
{
	amap a;
	amap_frame_type t;

	(void)state;
	amap_init(&a);
	assert_int_equal(apply(&a, "{\"type\":\"DELTA\",\"serial\":2}", &t),
			 -EPROTO);
	assert_int_equal(apply(&a, "{\"type\":\"RESUMED\",\"serial\":1}", &t),
			 -EPROTO);
	assert_int_equal(apply(&a, deltas[0], &t), 0);
	assert_int_equal(t, AMAP_FRAME_SNAPSHOT);
	assert_int_equal(apply(&a, "{\"type\":\"RESUMED\",\"serial\":1}", &t),
			 0);
	assert_int_equal(t, AMAP_FRAME_RESUMED);
	assert_int_equal(apply(&a, "{\"type\":\"REVOKED\"}", &t), 0);
	assert_int_equal(t, AMAP_FRAME_REVOKED);
	assert_true(a.valid);
	amap_clear(&a);
}

static void stored_form_reads_back_equal(void **state)
{
	amap a, b;
	char *s;

	(void)state;
	amap_init(&a);
	amap_init(&b);
	assert_int_equal(apply(&a, final_snapshot, NULL), 0);
	s = amap_to_frame(&a);
	assert_non_null(s);
	assert_int_equal(apply(&b, s, NULL), 0);
	assert_true(amap_equal(&a, &b));
	assert_int_equal(b.serial, 9);
	free(s);
	amap_clear(&a);
	amap_clear(&b);
}

static void ports_normalise(void **state)
{
	/* the rule's protocol (MESH.md) and each port's (netmap.h) */
	static const char a_frame[] =
	    "{\"type\":\"SNAPSHOT\",\"serial\":1,\"map\":{\"self\":" SELF ","
	    "\"rules\":[{\"name\":\"r\",\"sources\":[\"100.64.0.2/32\"],"
	    "\"protocol\":\"TCP\",\"ports\":[{\"from\":5432,\"to\":5432},"
	    "{\"from\":22}]}]}}";
	static const char b_frame[] =
	    "{\"type\":\"SNAPSHOT\",\"serial\":1,\"map\":{\"self\":" SELF ","
	    "\"rules\":[{\"name\":\"r\",\"sources\":[\"100.64.0.2/32\"],"
	    "\"ports\":[{\"protocol\":\"TCP\",\"from\":22,\"to\":22},"
	    "{\"protocol\":\"TCP\",\"from\":5432}]}]}}";
	amap a, b;
	const amap_rule *r;

	(void)state;
	amap_init(&a);
	amap_init(&b);
	assert_int_equal(apply(&a, a_frame, NULL), 0);
	assert_int_equal(apply(&b, b_frame, NULL), 0);
	assert_true(amap_equal(&a, &b));
	r = amap_rule_find(&a, "r");
	assert_int_equal(r->nports, 2);
	assert_int_equal(r->ports[0].proto, AMAP_TCP);
	assert_int_equal(r->ports[0].from, 22);
	assert_int_equal(r->ports[1].to, 5432);
	amap_clear(&a);
	amap_clear(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(snapshot_equals_deltas),
	    cmocka_unit_test(deltas_are_not_ignored),
	    cmocka_unit_test(bad_frames_change_nothing),
	    cmocka_unit_test(resumed_and_delta_need_a_map),
	    cmocka_unit_test(stored_form_reads_back_equal),
	    cmocka_unit_test(ports_normalise),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
