/*
 * fuzz_agentmap.c -- libFuzzer target for the agent's network map frames
 * (src/agent/amap.c), the one parser of untrusted server input in the
 * agent.
 *
 * The input is one frame, applied to a fresh map and to a map that holds
 * a snapshot already (so DELTA and RESUMED frames reach their code).
 * Checked:
 *   - a refused frame leaves the map equal to what it was;
 *   - an accepted map reads back equal from its stored form;
 *   - the configuration made from any accepted map is one the privileged
 *     half takes (dpc_decode of dpc_encode succeeds and writes the same
 *     text again): the network half can never produce what the other
 *     half refuses, nor anything it would read differently.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/amap.h"
#include "agent/dpconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char base[] =
    "{\"type\":\"SNAPSHOT\",\"serial\":5,\"map\":{\"self\":{\"name\":"
    "\"web-1\",\"namespace\":\"default\",\"address\":\"100.64.0.1\","
    "\"cidr\":\"100.64.0.0/10\",\"publicKey\":"
    "\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"},"
    "\"peers\":[{\"name\":\"db-1\",\"publicKey\":"
    "\"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\",\"endpoints\":"
    "[\"192.0.2.12:51820\"],\"allowedIPs\":[\"100.64.0.2/32\"],"
    "\"online\":true}],"
    "\"rules\":[{\"name\":\"policy/a/in\",\"sources\":[\"100.64.0.2/32\"],"
    "\"protocol\":\"TCP\",\"ports\":[{\"from\":5432,\"to\":5432}]}],"
    "\"routes\":[{\"name\":\"lan\",\"destination\":\"198.19.77.0/24\","
    "\"via\":\"db-1\"}]}}";

static void load(amap *m, const char *s)
{
	amap_frame_type t;
	uint64_t serial;

	amap_init(m);
	if (s && amap_apply_frame(m, s, strlen(s), &t, &serial, NULL, NULL, 0))
		abort();
}

static void check_valid(const amap *m)
{
	char *frame, *text, *again, err[256];
	amap back;
	dpc c, d;

	if (!m->valid)
		return;
	frame = amap_to_frame(m);
	if (!frame)
		abort();
	load(&back, frame);
	if (!amap_equal(m, &back))
		abort();
	amap_clear(&back);
	free(frame);
	if (dpc_from_amap(m, &c))
		abort();
	text = dpc_encode(&c);
	if (!text)
		abort();
	if (dpc_decode(text, strlen(text), &d, err, sizeof(err))) {
		fprintf(stderr, "refused by the privileged side: %s\n%s\n", err,
			text);
		abort();
	}
	again = dpc_encode(&d);
	if (!again || strcmp(text, again))
		abort();
	free(again);
	free(text);
	dpc_free(&c);
	dpc_free(&d);
}

static void one(const char *start, const uint8_t *data, size_t size)
{
	amap m, before;
	amap_frame_type t;
	uint64_t serial;
	bool changed;
	char err[256];
	int r;

	load(&m, start);
	load(&before, start);
	r = amap_apply_frame(&m, (const char *)data, size, &t, &serial,
			     &changed, err, sizeof(err));
	if (r) {
		if (r != -EINVAL && r != -EPROTO)
			abort();
		if (!amap_equal(&m, &before) || !err[0])
			abort();
	} else {
		if (t < AMAP_FRAME_SNAPSHOT || t > AMAP_FRAME_REVOKED)
			abort();
		if (changed == amap_equal(&m, &before))
			abort();
		check_valid(&m);
	}
	amap_clear(&m);
	amap_clear(&before);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (1u << 20))
		return 0;
	one(NULL, data, size);
	one(base, data, size);
	return 0;
}
