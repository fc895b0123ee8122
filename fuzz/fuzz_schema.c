/*
 * fuzz_schema.c -- libFuzzer target for registry/schema.c. The input is a
 * schema JSON and a document JSON, split at the first NUL or newline: the
 * schema is checked for structure and compiled, the document pruned,
 * defaulted and validated (twice, with and without the flags). Nothing
 * may crash, leak or recurse without bound.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "registry/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *cut = NULL;
	json_t *sj, *doc, *causes, *unknown;
	char err[256];
	schema *s = NULL;

	for (size_t i = 0; i < size; i++)
		if (p[i] == '\0' || p[i] == '\n') {
			cut = p + i;
			break;
		}
	if (!cut)
		return 0;
	sj = json_loadb(p, (size_t)(cut - p), JSON_DECODE_ANY, NULL);
	if (!sj)
		return 0;
	(void)schema_is_structural(sj, err, sizeof(err));
	if (schema_compile(sj, &s, err, sizeof(err)) == 0) {
		json_decref(sj); /* the compiled schema must not need it */
		sj = NULL;
		doc = json_loadb(cut + 1, size - (size_t)(cut - p) - 1,
				 JSON_DECODE_ANY, NULL);
		if (doc) {
			causes = json_array();
			unknown = json_array();
			schema_process(s, doc, 0, causes, unknown);
			schema_process(s, doc,
				       SCHEMA_NO_DEFAULT | SCHEMA_NO_PRUNE,
				       causes, NULL);
			json_decref(causes);
			json_decref(unknown);
			json_decref(doc);
		}
		schema_free(s);
	}
	json_decref(sj);
	return 0;
}
