/*
 * fuzz_selector.c -- libFuzzer target for the label and field selector
 * parsers (src/api/selector.c).
 *
 * The input is tried as a label selector string, as a field selector and,
 * when it is JSON, as a metav1.LabelSelector. Whatever parses is matched
 * against a few fixed objects, printed, and parsed again: the printed form
 * must parse, print the same, and match the same objects.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/selector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const label_sets[] = {
    "{}",
    "{\"a\":\"1\",\"b\":\"x\"}",
    "{\"x\":\"y\",\"a\":\"-3\",\"in\":\"notin\"}",
    "{\"a\":\"\",\"example.com/b\":\"v.1\",\"c\":\"10\"}",
    "{\"x\":\"\",\"y\":\"z\",\"a\":\"x\",\"notin\":\"in\",\"b\":\"2\"}",
};
#define NSETS (sizeof(label_sets) / sizeof(label_sets[0]))

static json_t *sets[NSETS];

static void init(void)
{
	size_t i;

	if (sets[0])
		return;
	for (i = 0; i < NSETS; i++) {
		sets[i] = json_loads(label_sets[i], 0, NULL);
		if (!sets[i])
			abort();
	}
}

static const char *field_get(const char *field, void *arg)
{
	size_t k = (size_t)(uintptr_t)arg;

	if (!strcmp(field, "metadata.name"))
		return k ? "a" : "b,=\\";
	if (!strcmp(field, "a"))
		return k ? "" : "1";
	if (!strcmp(field, "x"))
		return "y";
	return NULL;
}

/*
 * s prints, and the print parses to a selector that behaves the same. A
 * selector from the string form also reprints the same (one from JSON may
 * not: its value lists keep duplicates). The nothing selector prints as ""
 * like the everything selector, so it has no round trip.
 */
static void check_label_roundtrip(const sel *s, int from_string)
{
	char err[512], *str, *str2;
	sel *s2 = NULL;
	size_t i;

	for (i = 0; i < NSETS; i++)
		(void)sel_match(s, sets[i]);
	(void)sel_empty(s);
	str = sel_string(s);
	if (!str)
		return; /* OOM */
	if (!str[0] && !sel_empty(s)) {
		for (i = 0; i < NSETS; i++)
			if (sel_match(s, sets[i]))
				abort();
		free(str);
		return;
	}
	if (sel_parse(str, &s2, err, sizeof(err))) {
		fprintf(stderr, "canonical '%s' does not parse: %s\n", str,
			err);
		abort();
	}
	for (i = 0; i < NSETS; i++)
		if (sel_match(s, sets[i]) != sel_match(s2, sets[i])) {
			fprintf(stderr, "'%s' matches set %zu differently\n",
				str, i);
			abort();
		}
	str2 = sel_string(s2);
	if (from_string && str2 && strcmp(str, str2)) {
		fprintf(stderr, "'%s' reprints as '%s'\n", str, str2);
		abort();
	}
	free(str2);
	free(str);
	sel_free(s2);
}

static void check_field_roundtrip(const fsel *f)
{
	char err[512], *str, *str2;
	fsel *f2 = NULL;
	size_t k;
	static const char *const supported[] = {"metadata.name", "a", NULL};

	(void)fsel_check_fields(f, supported, err, sizeof(err));
	str = fsel_string(f);
	if (!str)
		return;
	if (fsel_parse(str, &f2, err, sizeof(err))) {
		fprintf(stderr, "canonical '%s' does not parse: %s\n", str,
			err);
		abort();
	}
	for (k = 0; k < 2; k++)
		if (fsel_match(f, field_get, (void *)(uintptr_t)k) !=
		    fsel_match(f2, field_get, (void *)(uintptr_t)k)) {
			fprintf(stderr, "field '%s' matches differently\n",
				str);
			abort();
		}
	/*
	 * As in k8s, terms keep the order of their sorted source text, and
	 * "a==b" prints as "a=b", so the first print may reorder; from then
	 * on the print is stable.
	 */
	str2 = fsel_string(f2);
	if (str2) {
		fsel *f3 = NULL;
		char *str3 = NULL;

		if (fsel_parse(str2, &f3, err, sizeof(err)))
			abort();
		str3 = fsel_string(f3);
		if (str3 && strcmp(str2, str3)) {
			fprintf(stderr, "field '%s' reprints as '%s'\n", str2,
				str3);
			abort();
		}
		free(str3);
		fsel_free(f3);
	}
	free(str2);
	free(str);
	fsel_free(f2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], *text;
	json_t *j;
	fsel *f = NULL;
	sel *s = NULL;

	init();
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	if (sel_parse(text, &s, err, sizeof(err)) == 0) {
		check_label_roundtrip(s, 1);
		sel_free(s);
	}
	if (fsel_parse(text, &f, err, sizeof(err)) == 0) {
		check_field_roundtrip(f);
		fsel_free(f);
	}
	j = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
	if (j) {
		if (sel_from_json(j, &s, err, sizeof(err)) == 0) {
			check_label_roundtrip(s, 0);
			sel_free(s);
		}
		json_decref(j);
	}
	free(text);
	return 0;
}
