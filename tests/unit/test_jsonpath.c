/*
 * test_jsonpath.c -- the Kubernetes JSONPath dialect: cases from
 * client-go's jsonpath tests (on JSON input), the printer-column paths CRDs
 * use, the quirks we keep, and parse errors with their messages.
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

#include "api/jsonpath.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const char types_doc[] =
    "{\"bools\":[true,false,true,false],\"integers\":[1,2,3,4],"
    "\"floats\":[1.0,2.2,3.3,4.0],"
    "\"strings\":[\"one\",\"two\",\"three\",\"four\"],"
    "\"interfaces\":[true,\"one\",1,1.1],"
    "\"maps\":[{\"name\":\"one\",\"value\":1},{\"name\":\"two\","
    "\"value\":2.02},{\"name\":\"three\",\"value\":3.03},"
    "{\"name\":\"four\",\"value\":4.04}]}";

static const char store_doc[] =
    "{\"Name\":\"jsonpath\","
    "\"Book\":[{\"Category\":\"reference\",\"Author\":\"Nigel Rees\","
    "\"Title\":\"Sayings of the Centurey\",\"Price\":8.95},"
    "{\"Category\":\"fiction\",\"Author\":\"Evelyn Waugh\","
    "\"Title\":\"Sword of Honour\",\"Price\":12.99},"
    "{\"Category\":\"fiction\",\"Author\":\"Herman Melville\","
    "\"Title\":\"Moby Dick\",\"Price\":8.99}],"
    "\"Bicycle\":[{\"Color\":\"red\",\"Price\":19.95,\"IsNew\":true},"
    "{\"Color\":\"green\",\"Price\":20.01,\"IsNew\":false}],"
    "\"Labels\":{\"engieer\":10,\"web/html\":15,\"k8s-app\":20},"
    "\"Employees\":{\"jason\":\"manager\",\"dan\":\"clerk\"}}";

static const char points_doc[] =
    "[{\"id\":\"i1\",\"x\":4,\"y\":-5},{\"id\":\"i2\",\"x\":-2,\"y\":-5,"
    "\"z\":1},{\"id\":\"i3\",\"x\":8,\"y\":3},{\"id\":\"i4\",\"x\":-6,"
    "\"y\":-1},{\"id\":\"i5\",\"x\":0,\"y\":2,\"z\":1},{\"id\":\"i6\","
    "\"x\":1,\"y\":4}]";

static const char nodes_doc[] =
    "{\"kind\":\"List\",\"items\":["
    "{\"kind\":\"None\",\"metadata\":{\"name\":\"127.0.0.1\",\"labels\":"
    "{\"kubernetes.io/hostname\":\"127.0.0.1\"}},\"status\":{\"capacity\":"
    "{\"cpu\":\"4\"},\"ready\":true,\"addresses\":[{\"type\":"
    "\"LegacyHostIP\",\"address\":\"127.0.0.1\"}]}},"
    "{\"kind\":\"None\",\"metadata\":{\"name\":\"127.0.0.2\",\"labels\":"
    "{\"kubernetes.io/hostname\":\"127.0.0.2\"}},\"status\":{\"capacity\":"
    "{\"cpu\":\"8\"},\"ready\":false,\"addresses\":[{\"type\":"
    "\"LegacyHostIP\",\"address\":\"127.0.0.2\"},{\"type\":\"another\","
    "\"address\":\"127.0.0.3\"}]}}],"
    "\"users\":[{\"name\":\"myself\",\"user\":{}},{\"name\":\"e2e\","
    "\"user\":{\"username\":\"admin\",\"password\":\"secret\"}}]}";

/* A custom resource as a printer column sees it. */
static const char cr_doc[] =
    "{\"apiVersion\":\"mesh.signalbox.dev/v1alpha1\",\"kind\":\"Peer\","
    "\"metadata\":{\"name\":\"p1\",\"creationTimestamp\":"
    "\"2024-01-02T03:04:05Z\",\"labels\":{\"app.kubernetes.io/name\":"
    "\"agent\",\"tier\":\"edge\"}},"
    "\"spec\":{\"replicas\":3,\"publicKey\":\"abc=\",\"items\":["
    "{\"name\":\"a\",\"n\":1,\"w\":0.5},{\"name\":\"b\",\"n\":2,\"w\":1.5},"
    "{\"name\":\"c\",\"n\":3}],\"nothing\":null,\"s\":\"ab\","
    "\"key\":{\"with\":{\"dots\":1}},\"key.with.dots\":2},"
    "\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"},"
    "{\"type\":\"Synced\",\"status\":\"False\"}]}}";

static json_t *load(const char *js)
{
	json_error_t je;
	json_t *j = json_loads(js, JSON_DECODE_ANY, &je);

	if (!j)
		fail_msg("bad test JSON %s: %s", js, je.text);
	return j;
}

static const struct {
	const char *expr, *doc, *want;
} eval_cases[] = {
    /* client-go TestTypesInput */
    {"{ .bools }", types_doc, "[[true,false,true,false]]"},
    {"{ .bools[0] }", types_doc, "[true]"},
    {"{ .bools[-1] }", types_doc, "[false]"},
    {"{ .bools[0:2] }", types_doc, "[true,false]"},
    {"{ .bools[:2] }", types_doc, "[true,false]"},
    {"{ .bools[:4:2] }", types_doc, "[true,true]"},
    {"{ .integers[0] }", types_doc, "[1]"},
    {"{ .integers[-2] }", types_doc, "[3]"},
    {"{ .integers[0:2] }", types_doc, "[1,2]"},
    {"{ .integers[:4:2] }", types_doc, "[1,3]"},
    {"{ .floats[-2] }", types_doc, "[3.3]"},
    {"{ .strings[-2] }", types_doc, "[\"three\"]"},
    {"{ .strings[:4:2] }", types_doc, "[\"one\",\"three\"]"},
    {"{ .interfaces[:4:2] }", types_doc, "[true,1]"},
    {"{ .maps[1::2] }", types_doc,
     "[{\"name\":\"two\",\"value\":2.02},{\"name\":\"four\","
     "\"value\":4.04}]"},
    {"{ .maps[::2].name }", types_doc, "[\"one\",\"three\"]"},
    {"{ .maps[-2] }", types_doc, "[{\"name\":\"three\",\"value\":3.03}]"},
    /* client-go TestStructInput, on JSON */
    {"{..}", "[1,2,3]", "[[1,2,3]]"},
    {"{[?(@<5)]}", "[2,6,3,7]", "[2,3]"},
    {"{\"{\"}", "null", "[\"{\"]"},
    {"{[1,3,4]}", "[0,1,2,3,4]", "[1,3,4]"},
    {"{[0:2]}", "[\"Monday\",\"Tudesday\"]", "[\"Monday\",\"Tudesday\"]"},
    {"hello {.Name}", store_doc, "[\"hello \",\"jsonpath\"]"},
    {"{$.Labels.web/html}", store_doc, "[15]"},
    {"{$.Employees.jason}", store_doc, "[\"manager\"]"},
    {"{.Labels.k8s-app}", store_doc, "[20]"},
    {"{.Bicycle[*].Color}", store_doc, "[\"red\",\"green\"]"},
    {"{.Book[*].Author}", store_doc,
     "[\"Nigel Rees\",\"Evelyn Waugh\",\"Herman Melville\"]"},
    {"{..Price}", store_doc, "[8.95,12.99,8.99,19.95,20.01]"},
    {"{...Price}", store_doc, "[8.95,12.99,8.99,19.95,20.01]"},
    {"{.Book[-1:].Title}", store_doc, "[\"Moby Dick\"]"},
    {"{..Book[2].Title}", store_doc, "[\"Moby Dick\"]"},
    {"{.Bicycle[?(@.IsNew==true)].Color}", store_doc, "[\"red\"]"},
    {"{.hello}", store_doc, "[]"},
    {"before-{.hello}after", store_doc, "[\"before-\",\"after\"]"},
    /* client-go TestJSONInput */
    {"{[?(@.z)].id}", points_doc, "[\"i2\",\"i5\"]"},
    {"{[0]['id']}", points_doc, "[\"i1\"]"},
    {"{[?(@.x>0)].id}", points_doc, "[\"i1\",\"i3\",\"i6\"]"},
    {"{[?(@.x>=0)].id}", points_doc, "[\"i1\",\"i3\",\"i5\",\"i6\"]"},
    {"{[?(@.y<=-5)].id}", points_doc, "[\"i1\",\"i2\"]"},
    {"{[?(@.x!=4)].id}", points_doc, "[\"i2\",\"i3\",\"i4\",\"i5\",\"i6\"]"},
    {"{[?(@.x < @.y)].id}", points_doc, "[\"i4\",\"i5\",\"i6\"]"},
    /* client-go TestKubernetes */
    {"{.items[*].status.addresses[*].address}", nodes_doc,
     "[\"127.0.0.1\",\"127.0.0.2\",\"127.0.0.3\"]"},
    {"{.items[*].metadata.name}", nodes_doc, "[\"127.0.0.1\",\"127.0.0.2\"]"},
    {"{.items[*]['metadata.name', 'status.capacity']}", nodes_doc,
     "[\"127.0.0.1\",\"127.0.0.2\",{\"cpu\":\"4\"},{\"cpu\":\"8\"}]"},
    {"{.users[?(@.name==\"e2e\")].user.password}", nodes_doc, "[\"secret\"]"},
    {"{.items[0].metadata.labels.kubernetes\\.io/hostname}", nodes_doc,
     "[\"127.0.0.1\"]"},
    {"{.items[?(@.metadata.labels.kubernetes\\.io/hostname==\"127.0.0.1\")"
     "].kind}",
     nodes_doc, "[\"None\"]"},
    {"{.items[?(@..ready==true)].metadata.name}", nodes_doc, "[\"127.0.0.1\"]"},
    {"{..name}", nodes_doc, "[\"127.0.0.1\",\"127.0.0.2\",\"myself\",\"e2e\"]"},
    {"{.kind}{.users[0].name}", nodes_doc, "[\"List\",\"myself\"]"},
    /* printer columns: no braces */
    {".spec.replicas", cr_doc, "[3]"},
    {".metadata.creationTimestamp", cr_doc, "[\"2024-01-02T03:04:05Z\"]"},
    {".status.conditions[?(@.type==\"Ready\")].status", cr_doc, "[\"True\"]"},
    {".status.conditions[?(@.type=='Synced')].status", cr_doc, "[\"False\"]"},
    {".status.conditions[?(@.type==\"Nope\")].status", cr_doc, "[]"},
    {".spec.items[0].name", cr_doc, "[\"a\"]"},
    {".spec.items[*].name", cr_doc, "[\"a\",\"b\",\"c\"]"},
    {".spec.items[-1].name", cr_doc, "[\"c\"]"},
    {".spec.items[0,2].name", cr_doc, "[\"a\",\"c\"]"},
    {".spec.items[1:].name", cr_doc, "[\"b\",\"c\"]"},
    {".spec.items[?(@.w)].name", cr_doc, "[\"a\",\"b\"]"},
    {".spec.items[?(@.n > 1)].name", cr_doc, "[\"b\",\"c\"]"},
    {".spec.items[?(@.n >= 2)].name", cr_doc, "[\"b\",\"c\"]"},
    {".spec.items[?(@.n <= 2)].name", cr_doc, "[\"a\",\"b\"]"},
    {".spec.items[?(@.n != 2)].name", cr_doc, "[\"a\",\"c\"]"},
    {".spec.items[?(@.name < \"b\")].name", cr_doc, "[\"a\"]"},
    {".spec.items[?(@.name >= 'b')].name", cr_doc, "[\"b\",\"c\"]"},
    /* deviation: an integer and a real compare by value */
    {".spec.items[?(@.n > 1.5)].name", cr_doc, "[\"b\",\"c\"]"},
    {".spec.items[?(@.w < 1)].name", cr_doc, "[\"a\"]"},
    {".metadata.labels.app\\.kubernetes\\.io/name", cr_doc, "[\"agent\"]"},
    {".metadata.labels['app\\.kubernetes\\.io/name']", cr_doc, "[\"agent\"]"},
    {"{.metadata['name', 'labels.tier']}", cr_doc, "[\"p1\",\"edge\"]"},
    /* quirk kept: ['a.b'] is .a.b */
    {".spec['key.with.dots']", cr_doc, "[1]"},
    {".spec.key\\.with\\.dots", cr_doc, "[2]"},
    {"{..replicas}", cr_doc, "[3]"},
    {".spec.nothing", cr_doc, "[null]"},
    {".spec.nothing.x", cr_doc, "[]"},
    {".spec.nothing[0]", cr_doc, "[]"},
    {".spec.missing", cr_doc, "[]"},
    {".spec.missing[0]", cr_doc, "[]"},
    {".spec.missing[?(@.x)]", cr_doc, "[]"},
    {".spec.replicas.x", cr_doc, "[]"},
    /* evaluation errors give nothing at all */
    {".spec.items[5]", cr_doc, "[]"},
    {".spec.items[-4]", cr_doc, "[]"},
    {".spec.items[2:1]", cr_doc, "[]"},
    {".spec.items[::0]", cr_doc, "[]"},
    {".spec.items[::-1]", cr_doc, "[]"},
    {".spec.items[1:1]", cr_doc, "[]"},
    {".spec.replicas[0]", cr_doc, "[]"},
    {".spec[?(@.x)]", cr_doc, "[]"},
    {".spec.nothing[?(@.x)]", cr_doc, "[]"},
    {".status.conditions[?(@.type==7)].status", cr_doc, "[]"},
    /* one element of another type spoils the whole filter, as in k8s */
    {".c[?(@.type==\"Ready\")].status",
     "{\"c\":[{\"type\":\"Ready\",\"status\":\"True\"},{\"type\":7}]}", "[]"},
    {".spec.items[?(@.name == 1)].name", cr_doc, "[]"},
    {".spec.items[?(@ == 1)].name", cr_doc, "[]"},
    {".spec.items[?(@.n < true)].name", cr_doc, "[]"},
    {".spec.items[?(@.n <> 1)].name", cr_doc, "[]"},
    {".spec.items[?(@.n = 1)].name", cr_doc, "[]"},
    {".spec.items[*][?(@.x)]", cr_doc, "[]"},
    {"{range .spec.items[*]}{.name}{end}", cr_doc, "[]"},
    {"{hello}", cr_doc, "[]"},
    {"{.spec.items[0].name}{.spec.items[9]}", cr_doc, "[]"},
    /* literals, @, $, wildcard, recursive descent */
    {"{@}", "{\"a\":1}", "[{\"a\":1}]"},
    {"{$}", "[1]", "[[1]]"},
    {"{'abc'}", "null", "[\"abc\"]"},
    {"{\"a\\tb\\u00e9\\x41\\101\"}", "null", "[\"a\\tb\\u00e9AA\"]"},
    {"{'it\\'s'}", "null", "[\"it's\"]"},
    {"{1}", "null", "[1]"},
    {"{-1.5}", "null", "[-1.5]"},
    {"{true}{false}", "null", "[true,false]"},
    {"{.a.*}", "{\"a\":{\"x\":1}}", "[1]"},
    {"{.a[*]}", "{\"a\":[1,[2]]}", "[1,[2]]"},
    {"{.a.*}", "{\"a\":\"ab\"}", "[97,98]"},
    {"{..}", "{\"a\":\"xy\",\"b\":[],\"c\":{\"d\":[1]}}",
     "[{\"a\":\"xy\",\"b\":[],\"c\":{\"d\":[1]}},\"xy\",{\"d\":[1]},[1]]"},
    {"{..[0]}", "[[1,2],[[3]]]", "[[1,2],1,[3],3]"},
    {"{..[0]}", "{\"a\":[1]}", "[]"},
    {"{.a.b.c}", "{\"a\":{\"b\":{\"c\":\"deep\"}}}", "[\"deep\"]"},
    {"{.a}", "[{\"a\":1}]", "[]"},
    {"{.}", "{\"\":5}", "[5]"},
    {".a", "null", "[]"},
    {"", "{\"a\":1}", "[{\"a\":1}]"},
    {"{}", "{\"a\":1}", "[{\"a\":1}]"},
};

static void test_eval(void **state)
{
	char err[512];
	size_t i;

	for (i = 0; i < ARRAY_LEN(eval_cases); i++) {
		json_t *doc = load(eval_cases[i].doc);
		json_t *want = load(eval_cases[i].want), *got;
		jp *p = NULL;
		char *s;

		err[0] = '\0';
		if (jp_parse(eval_cases[i].expr, &p, err, sizeof(err)))
			fail_msg("%s: %s", eval_cases[i].expr, err);
		got = jp_eval(p, doc);
		assert_non_null(got);
		if (!json_equal(got, want)) {
			s = json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT);
			fail_msg("%s: got %s, want %s", eval_cases[i].expr, s,
				 eval_cases[i].want);
		}
		/* evaluating twice gives the same: nothing is consumed */
		json_decref(got);
		got = jp_eval(p, doc);
		assert_true(json_equal(got, want));
		json_decref(got);
		jp_free(p);
		json_decref(want);
		json_decref(doc);
	}
}

static const struct {
	const char *expr, *msg;
} parse_errors[] = {
    {"{.a", "unclosed action"},
    {"{.a\n}", "unclosed action"},
    {".a[", "unterminated array"},
    {".a[0\n]", "unterminated array"},
    {".a[?(@.x", "unterminated filter"},
    {".a[?(@.x)", "unclosed array expect ]"},
    {".a[?(@.x=='a)')", "unclosed array expect ]"},
    {"{\"abc}", "unterminated quoted string"},
    {"{%}", "unrecognized character in action: U+0025 '%'"},
    {"{\t}", "unrecognized character in action: U+0009"},
    {".a[x]", "invalid array index x"},
    {".a[1:2:3:4]", "invalid array index 1:2:3:4"},
    {".a[-]", "array index - is not a number"},
    {".a[99999999999999999999]", "array index 99999999999999999999 is not "
				 "a number"},
    {"{-}", "cannot parse number -"},
    {"{1.2.3}", "cannot parse number 1.2.3"},
    {"{\"\\q\"}", "unquote string \"\\q\" error invalid syntax"},
    {"{'\\\"'}", "error invalid syntax"},
    {"{\"\\ud800\"}", "error invalid syntax"},
    {"{\"\\400\"}", "error invalid syntax"},
    {"{\"\\xff\"}", "invalid UTF-8"},
    {"{....Price}", "invalid multiple recursive descent"},
    {".a[?(@.b==%)]", "unrecognized character in action: U+0025 '%'"},
    {".a[0, x]", "invalid array index x"},
};

static void test_parse_errors(void **state)
{
	char err[512];
	size_t i;

	for (i = 0; i < ARRAY_LEN(parse_errors); i++) {
		jp *p = (jp *)1;

		err[0] = '\0';
		if (jp_parse(parse_errors[i].expr, &p, err, sizeof(err)) !=
		    -EINVAL)
			fail_msg("%s: parsed", parse_errors[i].expr);
		assert_null(p);
		if (!strstr(err, parse_errors[i].msg))
			fail_msg("%s: error '%s' lacks '%s'",
				 parse_errors[i].expr, err,
				 parse_errors[i].msg);
	}
}

static void test_limits_and_null(void **state)
{
	char err[128], *big;
	json_t *r;
	jp *p = NULL;

	big = malloc(JP_MAX_LEN + 2);
	assert_non_null(big);
	memset(big, 'a', JP_MAX_LEN + 1);
	big[0] = '.';
	big[JP_MAX_LEN + 1] = '\0';
	assert_int_equal(jp_parse(big, &p, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "longer than"));
	big[JP_MAX_LEN] = '\0';
	assert_int_equal(jp_parse(big, &p, err, sizeof(err)), 0);
	jp_free(p);
	free(big);

	/* err may be NULL */
	assert_int_equal(jp_parse("{", &p, NULL, 0), -EINVAL);
	assert_int_equal(jp_parse(NULL, &p, NULL, 0), 0);
	r = jp_eval(p, NULL);
	assert_int_equal(json_array_size(r), 1);
	json_decref(r);
	jp_free(p);
	jp_free(NULL);

	/* a NULL document is JSON null */
	assert_int_equal(jp_parse("{@}", &p, NULL, 0), 0);
	r = jp_eval(p, NULL);
	assert_int_equal(json_array_size(r), 1);
	assert_true(json_is_null(json_array_get(r, 0)));
	json_decref(r);
	jp_free(p);
}

/* The result holds its own references: it outlives the document. */
static void test_references(void **state)
{
	json_t *doc = load("{\"a\":{\"b\":[1,2]}}"), *r;
	jp *p = NULL;

	assert_int_equal(jp_parse(".a.b", &p, NULL, 0), 0);
	r = jp_eval(p, doc);
	json_decref(doc);
	assert_int_equal(json_array_size(r), 1);
	assert_int_equal(json_array_size(json_array_get(r, 0)), 2);
	json_decref(r);
	jp_free(p);
}

/* A deep document does not make evaluation recurse. */
static void test_deep_document(void **state)
{
	enum { DEPTH = 100000 };
	json_t **chain = malloc(DEPTH * sizeof(*chain)), *r;
	jp *p = NULL;
	int i;

	assert_non_null(chain);
	chain[0] = json_array();
	for (i = 1; i < DEPTH; i++) {
		chain[i] = json_array();
		json_array_append_new(chain[i - 1], chain[i]);
	}
	json_array_append_new(chain[DEPTH - 1], json_string("bottom"));
	assert_int_equal(jp_parse("{..}", &p, NULL, 0), 0);
	r = jp_eval(p, chain[0]);
	/* every array, then the string at the bottom */
	assert_int_equal(json_array_size(r), DEPTH + 1);
	assert_string_equal(json_string_value(json_array_get(r, DEPTH)),
			    "bottom");
	json_decref(r);
	jp_free(p);
	/* jansson frees recursively: take the chain apart from the bottom */
	for (i = DEPTH - 1; i >= 0; i--)
		json_array_clear(chain[i]);
	json_decref(chain[0]);
	free(chain);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_eval),
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_limits_and_null),
	    cmocka_unit_test(test_references),
	    cmocka_unit_test(test_deep_document),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
