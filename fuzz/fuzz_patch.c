/*
 * fuzz_patch.c -- libFuzzer target for src/api/patch.c.
 *
 * Input: a document and a patch, as JSON text, separated by the first
 * newline. Both are parsed with jansson (any value, NUL bytes allowed in
 * strings) and the patch is applied as a merge patch and as a JSON patch;
 * then the roles are swapped, since either half may be the interesting one.
 *
 * Besides "no crash, no leak, no sanitizer report", it checks:
 *   - inputs are borrowed: doc and patch are unchanged afterwards;
 *   - merge with {} gives doc back (or {} when doc is not an object);
 *   - merge is idempotent: merging the patch into the result again
 *     changes nothing;
 *   - patch_json returns 0 exactly when it returns a document, and its
 *     error text is a terminated string;
 *   - a JSON patch result can be dumped and parsed again to an equal value
 *     (it never nests deeper than jansson's parser allows);
 *   - a JSON patch whose only operation is {"op":"test","path":"",
 *     "value":R} succeeds on R.
 *
 * Seeds: fuzz/corpus/patch/. Run:
 *   fuzz_patch -max_total_time=60 fuzz/corpus/patch
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/patch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL)

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			abort();                                               \
	} while (0)

static void check_merge(const json_t *doc, const json_t *patch)
{
	json_t *empty = json_object(), *once, *twice, *same;

	once = patch_merge(doc, patch);
	CHECK(once);
	twice = patch_merge(once, patch);
	CHECK(twice);
	CHECK(json_equal(once, twice));

	same = patch_merge(doc, empty);
	CHECK(same);
	if (json_is_object(doc))
		CHECK(json_equal(same, doc));
	else
		CHECK(json_equal(same, empty));

	json_decref(same);
	json_decref(twice);
	json_decref(once);
	json_decref(empty);
}

/* The result can be written out and read back. */
static void check_roundtrip(const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	json_error_t e;
	json_t *back;

	CHECK(s);
	back = json_loads(s, FLAGS, &e);
	CHECK(back);
	CHECK(json_equal(back, v));
	json_decref(back);
	free(s);
}

static void check_json(const json_t *doc, const json_t *ops)
{
	json_t *out = (json_t *)1, *test;
	char err[256];
	int rc;

	memset(err, 'x', sizeof(err));
	rc = patch_json(doc, ops, &out, err, sizeof(err));
	CHECK(memchr(err, '\0', sizeof(err)));
	CHECK(rc == 0 || rc == PATCH_EINVAL || rc == PATCH_EFAILED ||
	      rc == PATCH_ETOOBIG);
	CHECK((rc == 0) == (out != NULL));
	if (rc != 0)
		return;
	check_roundtrip(out);

	/* the result tests equal to itself */
	test = json_pack("[{s:s, s:s, s:O}]", "op", "test", "path", "", "value",
			 out);
	CHECK(test);
	json_decref(out);
	/* out lives on inside test */
	out = json_object_get(json_array_get(test, 0), "value");
	{
		json_t *again = NULL;

		CHECK(patch_json(out, test, &again, NULL, 0) == 0);
		CHECK(json_equal(again, out));
		json_decref(again);
	}
	json_decref(test);
}

static void check_pointer(const json_t *doc, const json_t *ptr)
{
	json_t *got;
	int rc;

	if (!json_is_string(ptr))
		return;
	rc = patch_json_pointer_get(doc, json_string_value(ptr), &got);
	CHECK(rc == 0 || rc == PATCH_ENOENT || rc == PATCH_EINVAL);
	CHECK((rc == 0) == (got != NULL));
}

static void run(const json_t *doc, const json_t *patch)
{
	json_t *doc0 = json_deep_copy(doc), *patch0 = json_deep_copy(patch);

	CHECK(doc0 && patch0);
	check_merge(doc, patch);
	check_json(doc, patch);
	check_pointer(doc, patch);
	CHECK(json_equal(doc, doc0));
	CHECK(json_equal(patch, patch0));
	json_decref(doc0);
	json_decref(patch0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	json_error_t e;
	json_t *doc, *patch;
	size_t dlen;

	if (!nl)
		return 0;
	dlen = (size_t)(nl - data);
	doc = json_loadb((const char *)data, dlen, FLAGS, &e);
	patch = json_loadb((const char *)nl + 1, size - dlen - 1, FLAGS, &e);
	if (doc && patch) {
		run(doc, patch);
		run(patch, doc);
	}
	json_decref(doc);
	json_decref(patch);
	return 0;
}
