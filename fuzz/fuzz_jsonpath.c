/*
 * fuzz_jsonpath.c -- libFuzzer target for the JSONPath parser and
 * evaluator (src/api/jsonpath.c).
 *
 * The input is "<expression>\n<JSON document>": everything before the first
 * newline is the expression (up to a NUL, as a C string), the rest the
 * document. The expression is parsed and, when it parses, evaluated against
 * the document (or against null when the document is not JSON).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/jsonpath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t elen = nl ? (size_t)(nl - data) : size;
	json_t *doc = NULL, *r;
	char err[256], *expr;
	jp *p = NULL;

	expr = malloc(elen + 1);
	if (!expr)
		return 0;
	memcpy(expr, data, elen);
	expr[elen] = '\0';
	if (nl)
		doc = json_loadb((const char *)nl + 1, size - elen - 1,
				 JSON_DECODE_ANY, NULL);
	if (jp_parse(expr, &p, err, sizeof(err)) == 0) {
		r = jp_eval(p, doc);
		if (r && !json_is_array(r))
			abort();
		json_decref(r);
		jp_free(p);
	} else if (!err[0]) {
		abort(); /* an error always says something */
	}
	json_decref(doc);
	free(expr);
	return 0;
}
