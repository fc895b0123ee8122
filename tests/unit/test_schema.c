/*
 * test_schema.c -- the CRD schema engine (registry/schema.h): one table
 * row per OpenAPI / x-kubernetes keyword with the exact cause
 * kube-apiserver gives; pruning, defaulting, the depth cap, compile errors
 * and the structural check; and the real prometheus-operator CRDs and
 * examples in tests/unit/data (JSON copies of SB_TESTDATA/crds): every
 * schema compiles, every example is accepted, defaults are filled, broken
 * variants are refused with the right field and reason.
 */
/* cmocka.h needs these first */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/schema.h"

/* The YAML originals the JSON copies were made from (see data/README). */
#define TESTDATA_CRDS SB_TESTDATA "/crds"

static char data_dir[4096];

static const char *data_path(const char *rel)
{
	static char buf[8192];

	snprintf(buf, sizeof(buf), "%s/%s", data_dir, rel);
	return buf;
}

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &e);

	if (!j)
		fail_msg("bad test JSON (%s): %s", e.text, text);
	return j;
}

static schema *compile_text(const char *text)
{
	char err[512];
	json_t *j = parse(text);
	schema *s = NULL;
	int rc = schema_compile(j, &s, err, sizeof(err));

	json_decref(j);
	if (rc)
		fail_msg("compile failed (%d): %s", rc, err);
	return s;
}

/* ---- one row per keyword ----------------------------------------------- */

struct kcase {
	const char *name;
	const char *schema; /* the schema of .spec.v */
	const char *value;  /* .spec.v; NULL: absent */
	const char *reason; /* NULL: valid */
	const char *field;
	const char *message;
};

#define OBJ(props) "{\"type\":\"object\",\"properties\":" props "}"
#define OBJR(props, req)                                                       \
	"{\"type\":\"object\",\"properties\":" props ",\"required\":" req "}"
#define VALID NULL, NULL, NULL

static const struct kcase kcases[] = {
    {"type integer", "{\"type\":\"integer\"}", "\"x\"", "FieldValueTypeInvalid",
     "spec.v",
     "Invalid value: \"string\": spec.v in body must be of type integer: "
     "\"string\""},
    {"integer accepts 3.0", "{\"type\":\"integer\"}", "3.0", VALID},
    {"integer refuses 3.5", "{\"type\":\"integer\"}", "3.5",
     "FieldValueTypeInvalid", "spec.v",
     "Invalid value: \"number\": spec.v in body must be of type integer: "
     "\"number\""},
    {"number accepts integers", "{\"type\":\"number\"}", "3", VALID},
    {"type boolean", "{\"type\":\"boolean\"}", "1", "FieldValueTypeInvalid",
     "spec.v",
     "Invalid value: \"integer\": spec.v in body must be of type boolean: "
     "\"integer\""},
    {"type array", "{\"type\":\"array\"}", "{}", "FieldValueTypeInvalid",
     "spec.v",
     "Invalid value: \"object\": spec.v in body must be of type array: "
     "\"object\""},
    {"type object", "{\"type\":\"object\"}", "[]", "FieldValueTypeInvalid",
     "spec.v",
     "Invalid value: \"array\": spec.v in body must be of type object: "
     "\"array\""},
    {"null not nullable", "{\"type\":\"string\"}", "null",
     "FieldValueTypeInvalid", "spec.v",
     "Invalid value: \"null\": spec.v in body must be of type string: "
     "\"null\""},
    {"nullable", "{\"type\":\"string\",\"nullable\":true}", "null", VALID},
    {"enum", "{\"type\":\"string\",\"enum\":[\"a\",\"b\"]}", "\"c\"",
     "FieldValueNotSupported", "spec.v",
     "Unsupported value: \"c\": supported values: \"a\", \"b\""},
    {"enum ok", "{\"type\":\"string\",\"enum\":[\"a\",\"b\"]}", "\"b\"", VALID},
    {"enum numbers", "{\"type\":\"integer\",\"enum\":[1,2]}", "3",
     "FieldValueNotSupported", "spec.v",
     "Unsupported value: 3: supported values: \"1\", \"2\""},
    {"enum number by value", "{\"type\":\"number\",\"enum\":[1,2.5]}", "1.0",
     VALID},
    {"pattern", "{\"type\":\"string\",\"pattern\":\"^a$\"}", "\"b\"",
     "FieldValueInvalid", "spec.v",
     "Invalid value: \"b\": spec.v in body should match '^a$'"},
    {"pattern $ is end of text", "{\"type\":\"string\",\"pattern\":\"^a$\"}",
     "\"a\\n\"", "FieldValueInvalid", "spec.v", NULL},
    {"pattern (?i)",
     "{\"type\":\"string\",\"pattern\":\"^(?i)(abort|warn)?$\"}", "\"ABORT\"",
     VALID},
    {"pattern unanchored", "{\"type\":\"string\",\"pattern\":\"b+\"}",
     "\"abbc\"", VALID},
    {"minimum", "{\"type\":\"integer\",\"minimum\":1}", "0",
     "FieldValueInvalid", "spec.v",
     "Invalid value: 0: spec.v in body should be greater than or equal to "
     "1"},
    {"minimum ok", "{\"type\":\"integer\",\"minimum\":1}", "1", VALID},
    {"exclusiveMinimum",
     "{\"type\":\"number\",\"minimum\":1,\"exclusiveMinimum\":true}", "1",
     "FieldValueInvalid", "spec.v",
     "Invalid value: 1: spec.v in body should be greater than 1"},
    {"maximum", "{\"type\":\"number\",\"maximum\":2.5}", "3.5",
     "FieldValueInvalid", "spec.v",
     "Invalid value: 3.5: spec.v in body should be less than or equal to "
     "2.5"},
    {"exclusiveMaximum",
     "{\"type\":\"integer\",\"maximum\":10,\"exclusiveMaximum\":true}", "10",
     "FieldValueInvalid", "spec.v",
     "Invalid value: 10: spec.v in body should be less than 10"},
    {"multipleOf", "{\"type\":\"integer\",\"multipleOf\":3}", "10",
     "FieldValueInvalid", "spec.v",
     "Invalid value: 10: spec.v in body should be a multiple of 3"},
    {"multipleOf float", "{\"type\":\"number\",\"multipleOf\":0.5}", "1.5",
     VALID},
    {"maxLength counts characters", "{\"type\":\"string\",\"maxLength\":5}",
     "\"h\\u00e9llo\"", VALID},
    {"maxLength", "{\"type\":\"string\",\"maxLength\":5}", "\"h\\u00e9llo!\"",
     "FieldValueTooLong", "spec.v", "Too long: may not be longer than 5"},
    {"minLength", "{\"type\":\"string\",\"minLength\":2}", "\"\\u00e9\"",
     "FieldValueInvalid", "spec.v",
     "Invalid value: \"\xc3\xa9\": spec.v in body should be at least 2 "
     "chars long"},
    {"minItems", "{\"type\":\"array\",\"minItems\":1}", "[]",
     "FieldValueInvalid", "spec.v",
     "Invalid value: 0: spec.v in body should have at least 1 items"},
    {"maxItems", "{\"type\":\"array\",\"maxItems\":2}", "[1,2,3]",
     "FieldValueTooMany", "spec.v", "Too many: 3: must have at most 2 items"},
    {"uniqueItems", "{\"type\":\"array\",\"uniqueItems\":true}",
     "[1,{\"a\":1},{\"a\":1}]", "FieldValueInvalid", "spec.v",
     "Invalid value: \"\": spec.v in body shouldn't contain duplicates"},
    {"minProperties",
     "{\"type\":\"object\",\"minProperties\":1,"
     "\"additionalProperties\":{\"type\":\"string\"}}",
     "{}", "FieldValueInvalid", "spec.v",
     "Invalid value: 0: spec.v in body should have at least 1 properties"},
    {"maxProperties",
     "{\"type\":\"object\",\"maxProperties\":1,"
     "\"additionalProperties\":{\"type\":\"string\"}}",
     "{\"a\":\"x\",\"b\":\"y\"}", "FieldValueTooMany", "spec.v",
     "Too many: 2: must have at most 1 items"},
    {"items", "{\"type\":\"array\",\"items\":{\"type\":\"string\"}}",
     "[\"a\",2]", "FieldValueTypeInvalid", "spec.v[1]",
     "Invalid value: \"integer\": spec.v[1] in body must be of type "
     "string: \"integer\""},
    {"additionalProperties schema",
     "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}",
     "{\"app\":\"x\",\"tier\":1}", "FieldValueTypeInvalid", "spec.v[tier]",
     "Invalid value: \"integer\": spec.v[tier] in body must be of type "
     "string: \"integer\""},
    {"anyOf", "{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\"}]}",
     "true", "FieldValueInvalid", "spec.v",
     "Invalid value: \"\": \"spec.v\" must validate at least one schema "
     "(anyOf)"},
    {"anyOf ok", "{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\"}]}",
     "\"x\"", VALID},
    {"oneOf none", "{\"oneOf\":[{\"minimum\":5},{\"maximum\":1}]}", "3",
     "FieldValueInvalid", "spec.v",
     "Invalid value: \"\": \"spec.v\" must validate one and only one "
     "schema (oneOf). Found none valid"},
    {"oneOf two", "{\"oneOf\":[{\"minimum\":1},{\"maximum\":5}]}", "3",
     "FieldValueInvalid", "spec.v",
     "Invalid value: \"\": \"spec.v\" must validate one and only one "
     "schema (oneOf). Found 2 valid alternatives"},
    {"oneOf ok", "{\"oneOf\":[{\"minimum\":5},{\"maximum\":1}]}", "7", VALID},
    {"allOf", "{\"allOf\":[{\"minimum\":5},{\"maximum\":10}]}", "11",
     "FieldValueInvalid", "spec.v",
     "Invalid value: 11: spec.v in body should be less than or equal to "
     "10"},
    {"not", "{\"type\":\"string\",\"not\":{\"enum\":[\"x\"]}}", "\"x\"",
     "FieldValueInvalid", "spec.v",
     "Invalid value: \"\": \"spec.v\" must not validate the schema (not)"},
    {"int-or-string int", "{\"x-kubernetes-int-or-string\":true}", "5", VALID},
    {"int-or-string string",
     "{\"x-kubernetes-int-or-string\":true,\"anyOf\":[{\"type\":"
     "\"integer\"},{\"type\":\"string\"}]}",
     "\"5%\"", VALID},
    {"int-or-string bool", "{\"x-kubernetes-int-or-string\":true}", "true",
     "FieldValueTypeInvalid", "spec.v",
     "Invalid value: \"boolean\": spec.v in body must be of type "
     "integer,string: \"boolean\""},
    {"format date-time", "{\"type\":\"string\",\"format\":\"date-time\"}",
     "\"2024-02-30T10:00:00Z\"", "FieldValueTypeInvalid", "spec.v",
     "Invalid value: \"2024-02-30T10:00:00Z\": spec.v in body must be of "
     "type date-time: \"2024-02-30T10:00:00Z\""},
    {"format date-time ok", "{\"type\":\"string\",\"format\":\"date-time\"}",
     "\"2024-02-29T10:00:00.123+02:00\"", VALID},
    {"format byte", "{\"type\":\"string\",\"format\":\"byte\"}",
     "\"not base64!\"", "FieldValueTypeInvalid", "spec.v", NULL},
    {"format byte ok", "{\"type\":\"string\",\"format\":\"byte\"}",
     "\"aGVsbG8=\"", VALID},
    {"format date", "{\"type\":\"string\",\"format\":\"date\"}",
     "\"2023-13-01\"", "FieldValueTypeInvalid", "spec.v", NULL},
    {"format int32 is documentation",
     "{\"type\":\"integer\",\"format\":\"int32\"}", "9999999999", VALID},
    {"format unknown is documentation",
     "{\"type\":\"string\",\"format\":\"k8s-name\"}", "\"Not A Name\"", VALID},
    {"format uuid", "{\"type\":\"string\",\"format\":\"uuid\"}", "\"123\"",
     "FieldValueTypeInvalid", "spec.v", NULL},
    {"format ipv4", "{\"type\":\"string\",\"format\":\"ipv4\"}",
     "\"10.0.0.256\"", "FieldValueTypeInvalid", "spec.v", NULL},
    {"format cidr ok", "{\"type\":\"string\",\"format\":\"cidr\"}",
     "\"10.0.0.0/8\"", VALID},
    {"list-type set",
     "{\"type\":\"array\",\"x-kubernetes-list-type\":\"set\","
     "\"items\":{\"type\":\"string\"}}",
     "[\"a\",\"b\",\"a\",\"a\"]", "FieldValueDuplicate", "spec.v[2]",
     "Duplicate value: \"a\""},
    {"list-type map",
     "{\"type\":\"array\",\"x-kubernetes-list-type\":\"map\","
     "\"x-kubernetes-list-map-keys\":[\"name\"],\"items\":{\"type\":"
     "\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"v\":{"
     "\"type\":\"integer\"}}}}",
     "[{\"name\":\"a\",\"v\":1},{\"name\":\"b\"},{\"name\":\"a\",\"v\":2}]",
     "FieldValueDuplicate", "spec.v[2]", "Duplicate value: {\"name\":\"a\"}"},
    {"list-type map needs objects",
     "{\"type\":\"array\",\"x-kubernetes-list-type\":\"map\","
     "\"x-kubernetes-list-map-keys\":[\"name\"]}",
     "[1]", "FieldValueInvalid", "spec.v[0]",
     "Invalid value: 1: must be an object for an array of list-type map"},
    {"list-type atomic",
     "{\"type\":\"array\",\"x-kubernetes-list-type\":"
     "\"atomic\"}",
     "[1,1]", VALID},
    {"map-type is documentation",
     "{\"type\":\"object\",\"x-kubernetes-map-type\":\"atomic\","
     "\"additionalProperties\":{\"type\":\"string\"}}",
     "{\"a\":\"b\"}", VALID},
    {"CEL rules are ignored",
     "{\"type\":\"integer\",\"x-kubernetes-validations\":[{\"rule\":"
     "\"self > 100\"}]}",
     "1", VALID},
    {"embedded resource kind",
     "{\"type\":\"object\",\"x-kubernetes-embedded-resource\":true,"
     "\"x-kubernetes-preserve-unknown-fields\":true}",
     "{\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"x\"}}",
     "FieldValueRequired", "spec.v.kind", "Required value: must not be empty"},
    {"embedded resource ok",
     "{\"type\":\"object\",\"x-kubernetes-embedded-resource\":true,"
     "\"properties\":{\"spec\":{\"type\":\"object\"}}}",
     "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":"
     "\"x\"},\"spec\":{}}",
     VALID},
    {"embedded resource apiVersion",
     "{\"type\":\"object\",\"x-kubernetes-embedded-resource\":true,"
     "\"x-kubernetes-preserve-unknown-fields\":true}",
     "{\"apiVersion\":\"a/b/c\",\"kind\":\"K\"}", "FieldValueInvalid",
     "spec.v.apiVersion",
     "Invalid value: \"a/b/c\": unexpected GroupVersion string: a/b/c"},

};

static void test_keywords(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(kcases) / sizeof(*kcases); i++) {
		const struct kcase *k = &kcases[i];
		char text[4096];
		json_t *doc, *causes = json_array(), *c0;
		schema *s;
		int n;

		if (!k->value)
			continue;
		snprintf(text, sizeof(text),
			 OBJ("{\"spec\":" OBJ("{\"v\":%s}") "}"), k->schema);
		s = compile_text(text);
		snprintf(text, sizeof(text), "{\"spec\":{\"v\":%s}}", k->value);
		doc = parse(text);
		n = schema_process(s, doc, 0, causes, NULL);
		if (!k->reason) {
			if (n != 0) {
				char *d = json_dumps(causes, 0);

				fail_msg("%s: want valid, got %s", k->name, d);
			}
		} else {
			if (n < 1)
				fail_msg("%s: want %s, got valid", k->name,
					 k->reason);
			c0 = json_array_get(causes, 0);
			if (strcmp(k->reason, json_string_value(json_object_get(
						  c0, "reason"))) ||
			    strcmp(k->field, json_string_value(json_object_get(
						 c0, "field"))) ||
			    (k->message &&
			     strcmp(k->message,
				    json_string_value(
					json_object_get(c0, "message"))))) {
				char *d = json_dumps(causes, 0);

				fail_msg("%s: got %s", k->name, d);
			}
		}
		assert_int_equal(n, (int)json_array_size(causes));
		json_decref(doc);
		json_decref(causes);
		schema_free(s);
	}
}

static void expect_causes(const char *sch, const char *doc_text, unsigned flags,
			  const char *want_causes)
{
	schema *s = compile_text(sch);
	json_t *doc = parse(doc_text), *causes = json_array();
	json_t *want = parse(want_causes);
	int n = schema_process(s, doc, flags, causes, NULL);

	if (!json_equal(causes, want)) {
		char *d = json_dumps(causes, 0);

		fail_msg("causes for %s: %s", doc_text, d);
	}
	assert_int_equal(n, (int)json_array_size(want));
	json_decref(doc);
	json_decref(causes);
	json_decref(want);
	schema_free(s);
}

static void test_required_and_paths(void **state)
{
	(void)state;
	expect_causes(
	    OBJR("{\"spec\":" OBJR(
		     "{\"a\":{\"type\":\"string\"},\"eps\":{"
		     "\"type\":\"array\",\"items\":" OBJR("{\"port\":{\"type\":"
							  "\"integer\"}}",
							  "[\"port\"]") "}}",
		     "[\"a\"]") "}",
		 "[\"spec\"]"),
	    "{\"spec\":{\"eps\":[{\"port\":1},{}]}}", 0,
	    "[{\"reason\":\"FieldValueRequired\",\"message\":\"Required "
	    "value\",\"field\":\"spec.eps[1].port\"},"
	    "{\"reason\":\"FieldValueRequired\",\"message\":\"Required "
	    "value\",\"field\":\"spec.a\"}]");
	expect_causes(OBJR("{\"spec\":{\"type\":\"object\"}}", "[\"spec\"]"),
		      "{\"apiVersion\":\"a/v1\",\"kind\":\"K\"}", 0,
		      "[{\"reason\":\"FieldValueRequired\",\"message\":"
		      "\"Required value\",\"field\":\"spec\"}]");
	/* additionalProperties: false only matters when not pruning */
	expect_causes(OBJ("{\"spec\":{\"type\":\"object\",\"properties\":{},"
			  "\"additionalProperties\":false}}"),
		      "{\"spec\":{\"x\":1}}", SCHEMA_NO_PRUNE,
		      "[{\"reason\":\"FieldValueInvalid\",\"message\":"
		      "\"Invalid value: \\\"x\\\": spec.x in body is a "
		      "forbidden property\",\"field\":\"spec\"}]");
}

/* ---- pruning ------------------------------------------------------------ */

static void process_expect(const char *sch, const char *in, unsigned flags,
			   const char *out, const char *unknown_want)
{
	schema *s = compile_text(sch);
	json_t *doc = parse(in), *want = parse(out), *causes = json_array();
	json_t *unknown = json_array(), *uwant = parse(unknown_want);
	int n = schema_process(s, doc, flags, causes, unknown);

	if (n != 0) {
		char *d = json_dumps(causes, 0);

		fail_msg("%s: causes %s", in, d);
	}
	if (!json_equal(doc, want)) {
		char *d = json_dumps(doc, JSON_SORT_KEYS);

		fail_msg("%s became %s", in, d);
	}
	if (!json_equal(unknown, uwant)) {
		char *d = json_dumps(unknown, 0);

		fail_msg("%s: unknown %s", in, d);
	}
	json_decref(doc);
	json_decref(want);
	json_decref(causes);
	json_decref(unknown);
	json_decref(uwant);
	schema_free(s);
}

static const char prune_schema[] = OBJ("{\"spec\":" OBJ(
    "{\"a\":{\"type\":\"string\"},"
    "\"list\":{\"type\":\"array\",\"items\":" OBJ(
	"{\"x\":{\"type\":\"integer\"}}") "},"
					  "\"free\":{\"type\":\"object\","
					  "\"x-kubernetes-preserve-unknown-"
					  "fields\":true,"
					  "\"properties\":{\"known\":" OBJ(
					      "{\"k\":{\"type\":\"string\"}"
					      "}") "}},"
						   "\"labels\":{\"type\":"
						   "\"object\","
						   "\"additionalProperties"
						   "\":" OBJ(
						       "{\"v\":{\"type\":"
						       "\"string\"}}") "},"
								       "\"a"
								       "ny"
								       "\":"
								       "{\""
								       "typ"
								       "e\""
								       ":\""
								       "obj"
								       "ect"
								       "\","
								       "\"a"
								       "ddi"
								       "tio"
								       "nal"
								       "Pro"
								       "per"
								       "tie"
								       "s\""
								       ":tr"
								       "ue}"
								       ","
								       "\"t"
								       "mpl"
								       "\":"
								       "{\""
								       "typ"
								       "e\""
								       ":\""
								       "obj"
								       "ect"
								       "\","
								       "\"x"
								       "-ku"
								       "ber"
								       "net"
								       "es-"
								       "emb"
								       "edd"
								       "ed-"
								       "res"
								       "our"
								       "ce"
								       "\":"
								       "tru"
								       "e,"
								       "\"p"
								       "rop"
								       "ert"
								       "ies"
								       "\":"
								       "{"
								       "\"s"
								       "pec"
								       "\":"
								       "{\""
								       "typ"
								       "e\""
								       ":\""
								       "obj"
								       "ect"
								       "\"}"
								       "}}"
								       "}") "}");

static void test_prune(void **state)
{
	(void)state;
	process_expect(
	    prune_schema,
	    "{\"apiVersion\":\"a/v1\",\"kind\":\"K\",\"metadata\":{\"name\":"
	    "\"n\",\"whatever\":1},\"status\":{},\"spec\":{\"a\":\"s\","
	    "\"foo\":1,\"list\":[{\"x\":1,\"y\":2}],\"free\":{\"any\":{"
	    "\"thing\":1},\"known\":{\"k\":\"v\",\"drop\":1}},\"labels\":{"
	    "\"l1\":{\"v\":\"x\",\"w\":1}},\"any\":{\"deep\":{\"er\":1}},"
	    "\"tmpl\":{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{"
	    "\"name\":\"p\"},\"spec\":{},\"bogus\":1}}}",
	    0,
	    "{\"apiVersion\":\"a/v1\",\"kind\":\"K\",\"metadata\":{\"name\":"
	    "\"n\",\"whatever\":1},\"spec\":{\"a\":\"s\","
	    "\"list\":[{\"x\":1}],\"free\":{\"any\":{\"thing\":1},"
	    "\"known\":{\"k\":\"v\"}},\"labels\":{\"l1\":{\"v\":\"x\"}},"
	    "\"any\":{\"deep\":{\"er\":1}},\"tmpl\":{\"apiVersion\":\"v1\","
	    "\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},\"spec\":{}}}}",
	    "[\".status\",\".spec.foo\",\".spec.list[0].y\","
	    "\".spec.free.known.drop\",\".spec.labels[l1].w\","
	    "\".spec.tmpl.bogus\"]");
	/* SCHEMA_NO_PRUNE keeps them */
	process_expect(prune_schema, "{\"spec\":{\"foo\":1}}", SCHEMA_NO_PRUNE,
		       "{\"spec\":{\"foo\":1}}", "[]");
	/* a root that preserves unknown fields */
	process_expect("{\"type\":\"object\","
		       "\"x-kubernetes-preserve-unknown-fields\":true}",
		       "{\"a\":{\"b\":[1,{\"c\":2}]}}", 0,
		       "{\"a\":{\"b\":[1,{\"c\":2}]}}", "[]");
}

/* ---- defaulting ---------------------------------------------------------- */

static const char default_schema[] = OBJ("{\"spec\":" OBJ(
    "{\"replicas\":{\"type\":\"integer\",\"default\":1},"
    "\"mode\":{\"type\":\"string\",\"default\":\"on\"},"
    "\"opt\":{\"type\":\"string\",\"nullable\":true,"
    "\"default\":\"d\"},"
    "\"tls\":{\"type\":\"object\",\"default\":{\"junk\":1},"
    "\"properties\":{\"ca\":{\"type\":\"string\",\"default\":"
    "\"ca.crt\"}}},"
    "\"eps\":{\"type\":\"array\",\"items\":" OBJ(
	"{\"action\":{\"type\":\"string\","
	"\"default\":\"replace\"}}") "},"
				     "\"m\":{\"type\":\"object\","
				     "\"additionalProperties\":{"
				     "\"type\":\"string\",\"default\":"
				     "\"x\"}}}") "}");

static void test_default(void **state)
{
	(void)state;
	/* absent and null (non-nullable) fields get their default; the
	 * tls default is pruned ("junk") then defaulted inside ("ca") */
	process_expect(
	    default_schema,
	    "{\"spec\":{\"mode\":null,\"opt\":null,\"eps\":[{},"
	    "{\"action\":\"keep\"}],\"m\":{\"a\":null,\"b\":\"y\"}}}",
	    0,
	    "{\"spec\":{\"replicas\":1,\"mode\":\"on\",\"opt\":null,"
	    "\"tls\":{\"ca\":\"ca.crt\"},\"eps\":[{\"action\":"
	    "\"replace\"},{\"action\":\"keep\"}],\"m\":{\"a\":\"x\","
	    "\"b\":\"y\"}}}",
	    "[]");
	/* SCHEMA_NO_DEFAULT leaves the object alone (and the missing
	 * defaults do not make it invalid) */
	process_expect(default_schema, "{\"spec\":{}}", SCHEMA_NO_DEFAULT,
		       "{\"spec\":{}}", "[]");
	/* a default that does not validate is reported like user input */
	expect_causes(OBJ("{\"n\":{\"type\":\"integer\",\"minimum\":5,"
			  "\"default\":1}}"),
		      "{}", 0,
		      "[{\"reason\":\"FieldValueInvalid\",\"message\":"
		      "\"Invalid value: 1: n in body should be greater than or "
		      "equal to 5\",\"field\":\"n\"}]");
}

/* ---- limits, compile errors, structural check ---------------------------- */

static void test_depth(void **state)
{
	const int depth = 1000;
	char *text = malloc((size_t)depth * 2 + 64), *p;
	schema *s = compile_text(OBJ("{\"a\":{\"type\":\"array\"}}"));
	json_t *doc, *causes = json_array();
	json_error_t e;
	int n;

	(void)state;
	p = text + sprintf(text, "{\"a\":");
	for (int i = 0; i < depth; i++)
		*p++ = '[';
	for (int i = 0; i < depth; i++)
		*p++ = ']';
	strcpy(p, "}");
	doc = json_loads(text, 0, &e);
	assert_non_null(doc);
	n = schema_process(s, doc, 0, causes, NULL);
	assert_int_equal(n, 1);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(causes, 0), "message")),
			    "Invalid value: \"\": nested more than 128 levels "
			    "deep");
	json_decref(doc);
	json_decref(causes);
	schema_free(s);
	free(text);
}

static void expect_compile_error(const char *text, const char *want)
{
	char err[512];
	json_t *j = parse(text);
	schema *s = (schema *)1;
	int rc = schema_compile(j, &s, err, sizeof(err));

	json_decref(j);
	assert_int_equal(rc, -EINVAL);
	assert_null(s);
	if (!strstr(err, want))
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void test_compile_errors(void **state)
{
	char *deep = malloc(200 * 40 + 64), *p = deep;

	(void)state;
	expect_compile_error(
	    OBJ("{\"spec\":" OBJ("{\"x\":{\"type\":\"string\",\"pattern\":"
				 "\"(a\"}}") "}"),
	    "openAPIV3Schema.properties[spec].properties[x].pattern: "
	    "invalid regular expression \"(a\"");
	expect_compile_error(OBJ("{\"x\":{\"type\":\"string\",\"pattern\":"
				 "\"a(?=b)\"}}"),
			     "lookaround is not supported");
	expect_compile_error(OBJ("{\"x\":{\"type\":\"strin\"}}"),
			     "properties[x].type: unsupported type");
	expect_compile_error(OBJ("{\"x\":{\"type\":\"integer\",\"minimum\":"
				 "\"1\"}}"),
			     "properties[x].minimum: must be a number");
	for (int i = 0; i < 200; i++)
		p += sprintf(p, "{\"type\":\"array\",\"items\":");
	p += sprintf(p, "{\"type\":\"string\"}");
	for (int i = 0; i < 200; i++)
		*p++ = '}';
	*p = '\0';
	expect_compile_error(deep, "nested more than 128 levels deep");
	free(deep);
}

static void test_structural(void **state)
{
	char err[512];
	json_t *j;

	(void)state;
	j = parse(
	    OBJ("{\"spec\":" OBJ("{\"port\":{\"x-kubernetes-int-or-"
				 "string\":true},\"raw\":{\"x-kubernetes-"
				 "preserve-unknown-fields\":true}}") "}"));
	assert_true(schema_is_structural(j, err, sizeof(err)));
	json_decref(j);
	j = parse(
	    OBJ("{\"spec\":" OBJ("{\"port\":{\"description\":\"p\"}}") "}"));
	assert_false(schema_is_structural(j, err, sizeof(err)));
	assert_string_equal(err,
			    "openAPIV3Schema.properties[spec].properties["
			    "port].type: Required value: must not be empty "
			    "for specified object fields");
	json_decref(j);
	j = parse("{\"type\":\"array\",\"items\":{\"type\":\"string\"}}");
	assert_false(schema_is_structural(j, err, sizeof(err)));
	assert_string_equal(err, "openAPIV3Schema.type: Invalid value: "
				 "\"array\": must be object at the root");
	json_decref(j);
	j = parse(OBJ("{\"l\":{\"type\":\"array\",\"items\":{}}}"));
	assert_false(schema_is_structural(j, err, sizeof(err)));
	assert_string_equal(err, "openAPIV3Schema.properties[l].items.type: "
				 "Required value: must not be empty for "
				 "specified array items");
	json_decref(j);
}

/* ---- the real CRDs --------------------------------------------------------
 */

static const char *const crd_files[] = {
    "crds/monitoring.coreos.com_podmonitors.json",
    "crds/monitoring.coreos.com_probes.json",
    "crds/monitoring.coreos.com_prometheusrules.json",
    "crds/monitoring.coreos.com_servicemonitors.json",
};
#define NCRDS (sizeof(crd_files) / sizeof(*crd_files))

static const char *const example_files[] = {
    "examples/example-app-pod-monitor.json",
    "examples/example-app-service-monitor.json",
    "examples/prometheus-example-rules.json",
};

struct crds {
	char kind[NCRDS][64];
	schema *s[NCRDS];
};

static json_t *load(const char *rel)
{
	json_error_t e;
	json_t *j = json_load_file(data_path(rel), 0, &e);

	if (!j)
		fail_msg("%s: %s (convert %s again, see data/README.md)",
			 data_path(rel), e.text, TESTDATA_CRDS);
	return j;
}

static int crds_setup(void **state)
{
	struct crds *c = calloc(1, sizeof(*c));

	for (size_t i = 0; i < NCRDS; i++) {
		json_t *crd = load(crd_files[i]), *sch;
		char err[512];

		sch = json_object_get(
		    json_object_get(
			json_array_get(
			    json_object_get(json_object_get(crd, "spec"),
					    "versions"),
			    0),
			"schema"),
		    "openAPIV3Schema");
		snprintf(
		    c->kind[i], sizeof(c->kind[i]), "%s",
		    json_string_value(json_object_get(
			json_object_get(json_object_get(crd, "spec"), "names"),
			"kind")));
		if (!schema_is_structural(sch, err, sizeof(err)))
			fail_msg("%s: not structural: %s", crd_files[i], err);
		if (schema_compile(sch, &c->s[i], err, sizeof(err)))
			fail_msg("%s: %s", crd_files[i], err);
		json_decref(crd); /* the schema must not borrow it */
	}
	*state = c;
	return 0;
}

static int crds_teardown(void **state)
{
	struct crds *c = *state;

	for (size_t i = 0; i < NCRDS; i++)
		schema_free(c->s[i]);
	free(c);
	return 0;
}

static const schema *crd_for(struct crds *c, const char *kind)
{
	for (size_t i = 0; i < NCRDS; i++)
		if (!strcmp(c->kind[i], kind))
			return c->s[i];
	fail_msg("no CRD for kind %s", kind);
	return NULL;
}

static void test_crd_examples(void **state)
{
	struct crds *c = *state;

	for (size_t i = 0; i < sizeof(example_files) / sizeof(*example_files);
	     i++) {
		json_t *ex = load(example_files[i]), *causes = json_array();
		json_t *unknown = json_array();
		const char *kind =
		    json_string_value(json_object_get(ex, "kind"));
		int n =
		    schema_process(crd_for(c, kind), ex, 0, causes, unknown);

		if (n != 0 || json_array_size(unknown)) {
			char *d = json_dumps(causes, 0),
			     *u = json_dumps(unknown, 0);

			fail_msg("%s: causes %s unknown %s", example_files[i],
				 d, u);
		}
		json_decref(ex);
		json_decref(causes);
		json_decref(unknown);
	}
}

static json_t *example(const char *kind_file)
{
	return load(kind_file);
}

static void test_crd_defaults(void **state)
{
	struct crds *c = *state;
	json_t *sm = example("examples/example-app-service-monitor.json");
	json_t *causes = json_array(), *ep, *probe;

	/* relabelings[].action defaults to replace; a secret key ref's name
	 * to "" */
	ep = json_array_get(
	    json_object_get(json_object_get(sm, "spec"), "endpoints"), 0);
	json_object_set_new(ep, "relabelings",
			    parse("[{\"sourceLabels\":[\"__name__\"]},"
				  "{\"action\":\"keep\"}]"));
	json_object_set_new(ep, "basicAuth",
			    parse("{\"username\":{\"key\":\"user\"}}"));
	assert_int_equal(
	    schema_process(crd_for(c, "ServiceMonitor"), sm, 0, causes, NULL),
	    0);
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(ep, "relabelings"), 0),
		"action")),
	    "replace");
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(ep, "relabelings"), 1),
		"action")),
	    "keep");
	assert_string_equal(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(ep, "basicAuth"), "username"),
		"name")),
	    "");
	json_decref(sm);

	/* a Probe's prober.path defaults to /probe */
	probe = parse("{\"apiVersion\":\"monitoring.coreos.com/v1\",\"kind\":"
		      "\"Probe\",\"metadata\":{\"name\":\"p\"},\"spec\":{"
		      "\"prober\":{\"url\":\"blackbox:9115\"},"
		      "\"metricRelabelings\":[{}]}}");
	assert_int_equal(
	    schema_process(crd_for(c, "Probe"), probe, 0, causes, NULL), 0);
	assert_string_equal(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(probe, "spec"), "prober"),
		"path")),
	    "/probe");
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(json_object_get(probe, "spec"),
					       "metricRelabelings"),
			       0),
		"action")),
	    "replace");
	json_decref(probe);
	json_decref(causes);
}

struct broken {
	const char *file;
	const char *path;  /* where to put value: "spec.endpoints.0.port" */
	const char *value; /* JSON; NULL: delete */
	const char *reason;
	const char *field;
};

static const struct broken broken[] = {
    {"examples/example-app-service-monitor.json", "spec/endpoints/0/port", "5",
     "FieldValueTypeInvalid", "spec.endpoints[0].port"},
    {"examples/example-app-service-monitor.json", "spec/endpoints/0/scheme",
     "\"ftp\"", "FieldValueNotSupported", "spec.endpoints[0].scheme"},
    {"examples/example-app-service-monitor.json", "spec/endpoints/0/interval",
     "\"5 minutes\"", "FieldValueInvalid", "spec.endpoints[0].interval"},
    {"examples/example-app-service-monitor.json", "spec/selector", NULL,
     "FieldValueRequired", "spec.selector"},
    {"examples/example-app-service-monitor.json", "spec/sampleLimit", "-1",
     "FieldValueInvalid", "spec.sampleLimit"},
    {"examples/example-app-service-monitor.json", "spec/scrapeProtocols",
     "[\"PrometheusProto\",\"PrometheusProto\"]", "FieldValueDuplicate",
     "spec.scrapeProtocols[1]"},
    {"examples/example-app-pod-monitor.json", "spec/podMetricsEndpoints/0/port",
     "{}", "FieldValueTypeInvalid", "spec.podMetricsEndpoints[0].port"},
    {"examples/example-app-pod-monitor.json", "spec/selector/matchLabels",
     "{\"app\":5}", "FieldValueTypeInvalid", "spec.selector.matchLabels[app]"},
    {"examples/prometheus-example-rules.json", "spec/groups/0/name", "\"\"",
     "FieldValueInvalid", "spec.groups[0].name"},
    {"examples/prometheus-example-rules.json", "spec/groups/0/name", NULL,
     "FieldValueRequired", "spec.groups[0].name"},
    {"examples/prometheus-example-rules.json",
     "spec/groups/0/partial_response_strategy", "\"maybe\"",
     "FieldValueInvalid", "spec.groups[0].partial_response_strategy"},
    {"examples/prometheus-example-rules.json", "spec/groups/0/rules/0/expr",
     "true", "FieldValueTypeInvalid", "spec.groups[0].rules[0].expr"},
    {"examples/prometheus-example-rules.json", "spec/groups/1",
     "{\"name\":\"./example.rules\",\"rules\":[]}", "FieldValueDuplicate",
     "spec.groups[1]"},
};

/* Set (or delete) the value at a '/'-separated path of keys and indexes. */
static void poke(json_t *doc, const char *path, const char *value)
{
	char buf[256], *save = NULL, *tok, *next;
	json_t *cur = doc;

	snprintf(buf, sizeof(buf), "%s", path);
	tok = strtok_r(buf, "/", &save);
	while ((next = strtok_r(NULL, "/", &save))) {
		cur = json_is_array(cur) ? json_array_get(cur, atoi(tok))
					 : json_object_get(cur, tok);
		assert_non_null(cur);
		tok = next;
	}
	if (json_is_array(cur)) {
		size_t i = (size_t)atoi(tok);

		if (i == json_array_size(cur))
			json_array_append_new(cur, parse(value));
		else
			json_array_set_new(cur, i, parse(value));
	} else if (value) {
		json_object_set_new(cur, tok, parse(value));
	} else {
		json_object_del(cur, tok);
	}
}

static void test_crd_broken(void **state)
{
	struct crds *c = *state;

	for (size_t i = 0; i < sizeof(broken) / sizeof(*broken); i++) {
		const struct broken *b = &broken[i];
		json_t *ex = load(b->file), *causes = json_array(), *c0;
		int n;

		poke(ex, b->path, b->value);
		n = schema_process(
		    crd_for(c, json_string_value(json_object_get(ex, "kind"))),
		    ex, 0, causes, NULL);
		c0 = json_array_get(causes, 0);
		if (n < 1 ||
		    strcmp(json_string_value(json_object_get(c0, "reason")),
			   b->reason) ||
		    strcmp(json_string_value(json_object_get(c0, "field")),
			   b->field)) {
			char *d = json_dumps(causes, 0);

			fail_msg("%s %s=%s: got %s", b->file, b->path,
				 b->value ? b->value : "(deleted)", d);
		}
		json_decref(ex);
		json_decref(causes);
	}
}

static void test_crd_unknown(void **state)
{
	struct crds *c = *state;
	json_t *ex = load("examples/example-app-service-monitor.json");
	json_t *causes = json_array(), *unknown = json_array();

	poke(ex, "spec/foo", "{\"bar\":1}");
	poke(ex, "spec/endpoints/0/color", "\"red\"");
	poke(ex, "extra", "1");
	assert_int_equal(schema_process(crd_for(c, "ServiceMonitor"), ex, 0,
					causes, unknown),
			 0);
	assert_null(json_object_get(json_object_get(ex, "spec"), "foo"));
	assert_null(json_object_get(ex, "extra"));
	assert_non_null(json_object_get(ex, "metadata"));
	{
		json_t *want = parse("[\".extra\",\".spec.foo\","
				     "\".spec.endpoints[0].color\"]");
		size_t found = 0, i, j;
		json_t *u, *w;

		assert_int_equal(json_array_size(unknown), 3);
		json_array_foreach(unknown, i, u) json_array_foreach(want, j, w)
		    found += json_equal(u, w);
		assert_int_equal(found, 3);
		json_decref(want);
	}
	json_decref(ex);
	json_decref(causes);
	json_decref(unknown);
}

int main(void)
{
	const char *slash = strrchr(__FILE__, '/');
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keywords),
	    cmocka_unit_test(test_required_and_paths),
	    cmocka_unit_test(test_prune),
	    cmocka_unit_test(test_default),
	    cmocka_unit_test(test_depth),
	    cmocka_unit_test(test_compile_errors),
	    cmocka_unit_test(test_structural),
	    cmocka_unit_test_setup_teardown(test_crd_examples, crds_setup,
					    crds_teardown),
	    cmocka_unit_test_setup_teardown(test_crd_defaults, crds_setup,
					    crds_teardown),
	    cmocka_unit_test_setup_teardown(test_crd_broken, crds_setup,
					    crds_teardown),
	    cmocka_unit_test_setup_teardown(test_crd_unknown, crds_setup,
					    crds_teardown),
	};

	/* the JSON copies live next to this file, in data/ */
	snprintf(data_dir, sizeof(data_dir), "%.*s/data",
		 slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
