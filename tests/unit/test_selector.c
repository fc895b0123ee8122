/*
 * test_selector.c -- label and field selectors against the behaviour of
 * k8s.io/apimachinery/pkg/labels and pkg/fields: what parses, what it
 * prints as, what it matches, and what the error says.
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

#include "api/selector.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static json_t *labels(const char *js)
{
	json_error_t je;
	json_t *j = json_loads(js, 0, &je);

	if (!j)
		fail_msg("bad test JSON %s: %s", js, je.text);
	return j;
}

/* ---- string form: valid selectors and their canonical string ------------ */

static const struct {
	const char *in, *out;
} valid_cases[] = {
    {"", ""},
    {"x=a", "x=a"},
    {"x=a,y=b,z=c", "x=a,y=b,z=c"},
    {"z=c,y=b,x=a", "x=a,y=b,z=c"},
    {"x==a", "x==a"},
    {"x!=a,y=b", "x!=a,y=b"},
    {"x=", "x="},
    {"x= ", "x="},
    {"x=,z= ", "x=,z="},
    {"x= ,z= ", "x=,z="},
    {"!x", "!x"},
    {"x", "x"},
    {" x ", "x"},
    {"x>1", "x>1"},
    {"x<1", "x<1"},
    {"x>1,z<5", "x>1,z<5"},
    {"x>-1", NULL},
    {"x in (a)", "x in (a)"},
    {"x in (b,a)", "x in (a,b)"},
    {"x in (a,a,b)", "x in (a,b)"},
    {"x in ()", "x in ()"},
    {"x in (,a)", "x in (,a)"},
    {"x in (a,)", "x in (,a)"},
    {"x in (a,,b)", "x in (,a,b)"},
    {"x notin (a)", "x notin (a)"},
    {"x  in  ( a , b )", "x in (a,b)"},
    {"x in(a)", "x in (a)"},
    {"x\tin\t(a)", "x in (a)"},
    {"x in (in,notin)", "x in (in,notin)"},
    {"in in (in)", "in in (in)"},
    {"notin=in", "notin=in"},
    {"x=in", "x=in"},
    {"!in", "!in"},
    {"x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"},
    {"example.com/app=web", "example.com/app=web"},
    {"a.b-c_d=e.f-g_h", "a.b-c_d=e.f-g_h"},
    {"x=a,x!=b", "x=a,x!=b"},
    {"x=1,!y", "x=1,!y"},
    {"y,!x", "!x,y"},
};

static void test_parse_valid(void **state)
{
	size_t i;
	char err[1024];

	for (i = 0; i < ARRAY_LEN(valid_cases); i++) {
		sel *s = NULL;
		char *str;
		int rc;

		err[0] = '\0';
		rc = sel_parse(valid_cases[i].in, &s, err, sizeof(err));
		if (valid_cases[i].out == NULL) {
			/* "-1" is no valid label value */
			if (rc != -EINVAL)
				fail_msg("%s: parsed, want an error",
					 valid_cases[i].in);
			continue;
		}
		if (rc)
			fail_msg("%s: %s", valid_cases[i].in, err);
		str = sel_string(s);
		assert_non_null(str);
		if (strcmp(str, valid_cases[i].out))
			fail_msg("%s: prints as '%s', want '%s'",
				 valid_cases[i].in, str, valid_cases[i].out);
		free(str);
		sel_free(s);
	}
}

/* ---- string form: invalid selectors and what the error names ------------ */

static const struct {
	const char *in, *msg;
} invalid_cases[] = {
    {"x=a||y=b", "unable to parse requirement: values[0][x]: Invalid "
		 "value: \"a||y\""},
    {"x==a==b", "found '==', expected: ',' or 'end of string'"},
    {"!x=a", "found '=', expected: ',' or 'end of string'"},
    {"x<a", "values[0]: Invalid value: \"a\": for 'Gt', 'Lt' "
	    "operators, the value must be an integer"},
    {"x>1.1", "the value must be an integer"},
    {"x>", "the value must be an integer"},
    {"x in (a b)", "unable to parse requirement: found 'b', expected: "
		   "',' or ')'"},
    {"x in (a", "found '', expected: ',' or ')'"},
    {"x in a", "found 'a' expected: '('"},
    {"x in (=)", "found '=', expected: ',', ')' or identifier"},
    {"x in (a,=)", "found '=', expected: ',', or identifier"},
    {"x (a)", "found '(', expected: in, notin, =, ==, !=, gt, lt"},
    {"x=a,", "found '', expected: identifier after ','"},
    {",x=a", "found ',', expected: !, identifier, or 'end of string'"},
    {"=a", "found '=', expected: !, identifier, or 'end of string'"},
    {"!!x", "found '!', expected: identifier"},
    {"x=(a)", "found '(', expected: identifier"},
    {"x=a b", "found 'b', expected: ',' or 'end of string'"},
    {"app=bad value!", "found 'value', expected: ',' or 'end of string'"},
    {"app=bad#value",
     "unable to parse requirement: values[0][app]: Invalid value: "
     "\"bad#value\": a valid label must be an empty string or consist "
     "of alphanumeric characters, '-', '_' or '.', and must start and "
     "end with an alphanumeric character (e.g. 'MyValue',  or "
     "'my_value',  or '12345', regex used for validation is "
     "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"},
    {"x=-a", "values[0][x]: Invalid value: \"-a\""},
    {"x in (a,-b,c.)", "[values[0][x]: Invalid value: \"-b\""},
    {"x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "must be no more than 63 characters"},
    {"a/b/c=d", "<nil>: Invalid value: \"a/b/c\": a qualified name must "
		"consist of alphanumeric characters"},
    {"/a", "<nil>: Invalid value: \"/a\": prefix part must be non-empty"},
    {"a/", "name part must be non-empty; name part must consist of"},
    {"Example.com/a", "prefix part a lowercase RFC 1123 subdomain must "
		      "consist of lower case alphanumeric characters"},
    {"-x", "<nil>: Invalid value: \"-x\": name part must consist of "
	   "alphanumeric characters, '-', '_' or '.', and must start and "
	   "end with an alphanumeric character (e.g. 'MyName',  or "
	   "'my.name',  or '123-abc', regex used for validation is "
	   "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"},
    {"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
     "name part must be no more than 63 characters"},
    {"x=\"a\"", "Invalid value: \"\\\"a\\\"\""},
    {"\xc3\xa9=a", "<nil>: Invalid value: \"\xc3\xa9\""},
    {"\x01=a", "<nil>: Invalid value: \"\\x01\""},
    {"x>99999999999999999999", "the value must be an integer"},
};

static void test_parse_invalid(void **state)
{
	size_t i;
	char err[2048];

	for (i = 0; i < ARRAY_LEN(invalid_cases); i++) {
		sel *s = (sel *)1;
		int rc;

		err[0] = '\0';
		rc = sel_parse(invalid_cases[i].in, &s, err, sizeof(err));
		if (rc != -EINVAL)
			fail_msg("%s: rc %d, want -EINVAL", invalid_cases[i].in,
				 rc);
		assert_null(s);
		if (!strstr(err, invalid_cases[i].msg))
			fail_msg("%s: error '%s' lacks '%s'",
				 invalid_cases[i].in, err,
				 invalid_cases[i].msg);
	}
}

static void test_parse_null_and_limits(void **state)
{
	char err[256], *big, *str;
	sel *s = NULL;

	assert_int_equal(sel_parse(NULL, &s, err, sizeof(err)), 0);
	assert_true(sel_empty(s));
	assert_true(sel_match(s, NULL));
	str = sel_string(s);
	assert_string_equal(str, "");
	free(str);
	sel_free(s);

	/* err may be NULL, or tiny */
	assert_int_equal(sel_parse("x in (", &s, NULL, 0), -EINVAL);
	assert_int_equal(sel_parse("x in (", &s, err, 4), -EINVAL);
	assert_int_equal(strlen(err), 3);

	big = malloc(SEL_MAX_LEN + 2);
	assert_non_null(big);
	memset(big, 'a', SEL_MAX_LEN + 1);
	big[SEL_MAX_LEN + 1] = '\0';
	assert_int_equal(sel_parse(big, &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "longer than"));
	/* many requirements are fine below the limit */
	for (size_t i = 0; i + 2 < SEL_MAX_LEN; i += 2) {
		big[i] = 'a';
		big[i + 1] = ',';
	}
	big[SEL_MAX_LEN - 1] = 'a';
	big[SEL_MAX_LEN] = '\0';
	assert_int_equal(sel_parse(big, &s, err, sizeof(err)), 0);
	assert_false(sel_empty(s));
	sel_free(s);
	free(big);
}

/* ---- matching -------------------------------------------------------------
 */

static const struct {
	const char *sel, *labels;
	bool match;
} match_cases[] = {
    {"", "{}", true},
    {"", "{\"x\":\"y\"}", true},
    {"x=y", "{\"x\":\"y\"}", true},
    {"x==y", "{\"x\":\"y\"}", true},
    {"x=z", "{\"x\":\"y\"}", false},
    {"x=y", "{}", false},
    {"x=", "{\"x\":\"\"}", true},
    {"x=", "{}", false},
    {"x!=y", "{\"x\":\"z\"}", true},
    {"x!=y", "{\"x\":\"y\"}", false},
    {"x!=y", "{}", true},
    {"x", "{\"x\":\"\"}", true},
    {"x", "{\"y\":\"x\"}", false},
    {"!x", "{\"x\":\"z\"}", false},
    {"!x", "{\"y\":\"z\"}", true},
    {"x in (y,z)", "{\"x\":\"z\"}", true},
    {"x in (y,z)", "{\"x\":\"w\"}", false},
    {"x in (y,z)", "{}", false},
    {"x in ()", "{\"x\":\"\"}", true},
    {"x notin (y,z)", "{\"x\":\"z\"}", false},
    {"x notin (y,z)", "{\"x\":\"w\"}", true},
    {"x notin (y,z)", "{}", true},
    {"x>1", "{\"x\":\"2\"}", true},
    {"x>1", "{\"x\":\"1\"}", false},
    {"x>1", "{\"x\":\"abc\"}", false},
    {"x>1", "{}", false},
    {"x<1", "{\"x\":\"0\"}", true},
    {"x<1", "{\"x\":\"-5\"}", true},
    {"x<1", "{\"x\":\"1\"}", false},
    {"x>0", "{\"x\":\"+7\"}", true},
    {"x=y,a=b", "{\"x\":\"y\",\"a\":\"b\"}", true},
    {"x=y,a=b", "{\"x\":\"y\",\"a\":\"c\"}", false},
    {"x=y,!z", "{\"x\":\"y\",\"z\":\"\"}", false},
    {"x=a,x!=b", "{\"x\":\"a\"}", true},
    {"example.com/app in (web,api)", "{\"example.com/app\":\"api\"}", true},
    /* a label that is not a string counts as absent */
    {"x", "{\"x\":1}", false},
    {"!x", "{\"x\":1}", true},
    {"x!=1", "{\"x\":1}", true},
};

static void test_match(void **state)
{
	size_t i;
	char err[512];

	for (i = 0; i < ARRAY_LEN(match_cases); i++) {
		json_t *l = labels(match_cases[i].labels);
		sel *s = NULL, *s2 = NULL;
		char *str;

		if (sel_parse(match_cases[i].sel, &s, err, sizeof(err)))
			fail_msg("%s: %s", match_cases[i].sel, err);
		if (sel_match(s, l) != match_cases[i].match)
			fail_msg("'%s' on %s: want %d", match_cases[i].sel,
				 match_cases[i].labels, match_cases[i].match);
		/* the canonical string matches the same way */
		str = sel_string(s);
		assert_int_equal(sel_parse(str, &s2, err, sizeof(err)), 0);
		assert_int_equal(sel_match(s2, l), match_cases[i].match);
		free(str);
		sel_free(s2);
		sel_free(s);
		json_decref(l);
	}
}

static void test_match_null_labels(void **state)
{
	sel *s = NULL;
	json_t *notobj = json_string("x");

	assert_int_equal(sel_parse("!x,y notin (a)", &s, NULL, 0), 0);
	assert_true(sel_match(s, NULL));
	assert_true(sel_match(s, notobj));
	sel_free(s);
	assert_int_equal(sel_parse("x", &s, NULL, 0), 0);
	assert_false(sel_match(s, NULL));
	sel_free(s);
	assert_false(sel_match(NULL, NULL));
	json_decref(notobj);
}

/* ---- the metav1.LabelSelector form --------------------------------------- */

static const struct {
	const char *json, *str; /* str NULL: an error containing msg */
	const char *msg;
} json_cases[] = {
    {"{}", "", NULL},
    {"{\"matchLabels\":{}}", "", NULL},
    {"{\"matchLabels\":null,\"matchExpressions\":null}", "", NULL},
    {"{\"matchLabels\":{\"b\":\"2\",\"a\":\"1\"}}", "a=1,b=2", NULL},
    {"{\"matchLabels\":{\"a\":\"\"}}", "a=", NULL},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\","
     "\"values\":[\"y\",\"x\"]}]}",
     "a in (x,y)", NULL},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"NotIn\","
     "\"values\":[\"x\"]}]}",
     "a notin (x)", NULL},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\"}]}", "a",
     NULL},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":"
     "\"DoesNotExist\",\"values\":[]}]}",
     "!a", NULL},
    {"{\"matchLabels\":{\"z\":\"1\"},\"matchExpressions\":[{\"key\":\"a\","
     "\"operator\":\"Exists\"}]}",
     "a,z=1", NULL},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\","
     "\"values\":[]}]}",
     NULL,
     "values: Invalid value: []string(nil): for 'in', 'notin' "
     "operators, values set can't be empty"},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"NotIn\"}]}", NULL,
     "values set can't be empty"},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\","
     "\"values\":[\"x\"]}]}",
     NULL,
     "values: Invalid value: []string{\"x\"}: values set must be empty "
     "for exists and does not exist"},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Gt\","
     "\"values\":[\"1\"]}]}",
     NULL, "\"Gt\" is not a valid label selector operator"},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"in\","
     "\"values\":[\"1\"]}]}",
     NULL, "\"in\" is not a valid label selector operator"},
    {"{\"matchLabels\":{\"a b\":\"x\"}}", NULL,
     "key: Invalid value: \"a b\": name part must consist of"},
    {"{\"matchLabels\":{\"a\":\"x y\"}}", NULL,
     "values[0][a]: Invalid value: \"x y\": a valid label must be"},
    {"{\"matchExpressions\":[{\"key\":\"-a\",\"operator\":\"In\","
     "\"values\":[\"-x\"]}]}",
     NULL, "[key: Invalid value: \"-a\""},
    {"{\"matchExpressions\":[{\"key\":\"-a\",\"operator\":\"In\","
     "\"values\":[\"-x\"]}]}",
     NULL, ", values[0][-a]: Invalid value: \"-x\""},
    {"{\"matchLabels\":{\"a\":1}}", NULL, "must be a string"},
    {"{\"matchLabels\":[]}", NULL, "matchLabels: must be an object"},
    {"{\"matchExpressions\":{}}", NULL, "matchExpressions: must be an array"},
    {"{\"matchExpressions\":[1]}", NULL, "matchExpressions[0]: must be"},
    {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\","
     "\"values\":[1]}]}",
     NULL, "matchExpressions[0].values: must be an array of strings"},
    {"[]", NULL, "must be an object"},
};

static void test_from_json(void **state)
{
	size_t i;
	char err[1024];

	for (i = 0; i < ARRAY_LEN(json_cases); i++) {
		json_t *j = labels(json_cases[i].json);
		sel *s = NULL;
		int rc;

		err[0] = '\0';
		rc = sel_from_json(j, &s, err, sizeof(err));
		if (json_cases[i].str) {
			char *str;

			if (rc)
				fail_msg("%s: %s", json_cases[i].json, err);
			str = sel_string(s);
			if (strcmp(str, json_cases[i].str))
				fail_msg("%s: prints '%s', want '%s'",
					 json_cases[i].json, str,
					 json_cases[i].str);
			free(str);
		} else {
			if (rc != -EINVAL)
				fail_msg("%s: rc %d", json_cases[i].json, rc);
			assert_null(s);
			if (!strstr(err, json_cases[i].msg))
				fail_msg("%s: error '%s' lacks '%s'",
					 json_cases[i].json, err,
					 json_cases[i].msg);
		}
		sel_free(s);
		json_decref(j);
	}
}

static void test_from_json_nothing_everything(void **state)
{
	json_t *l = labels("{\"a\":\"1\"}"), *empty = json_object();
	json_t *jnull = json_null();
	sel *s = NULL;
	char *str;

	/* no selector at all: matches nothing */
	assert_int_equal(sel_from_json(NULL, &s, NULL, 0), 0);
	assert_false(sel_empty(s));
	assert_false(sel_match(s, l));
	assert_false(sel_match(s, NULL));
	str = sel_string(s);
	assert_string_equal(str, "");
	free(str);
	sel_free(s);
	assert_int_equal(sel_from_json(jnull, &s, NULL, 0), 0);
	assert_false(sel_match(s, l));
	sel_free(s);

	/* {}: matches everything */
	assert_int_equal(sel_from_json(empty, &s, NULL, 0), 0);
	assert_true(sel_empty(s));
	assert_true(sel_match(s, l));
	assert_true(sel_match(s, NULL));
	sel_free(s);
	json_decref(empty);
	json_decref(l);
}

static void test_from_json_match(void **state)
{
	json_t *j = labels("{\"matchLabels\":{\"role\":\"db\"},"
			   "\"matchExpressions\":["
			   "{\"key\":\"env\",\"operator\":\"In\","
			   "\"values\":[\"prod\",\"staging\"]},"
			   "{\"key\":\"canary\",\"operator\":\"DoesNotExist\"},"
			   "{\"key\":\"tier\",\"operator\":\"NotIn\","
			   "\"values\":[\"x\"]}]}");
	json_t *l1 = labels("{\"role\":\"db\",\"env\":\"prod\"}");
	json_t *l2 = labels("{\"role\":\"db\",\"env\":\"dev\"}");
	json_t *l3 =
	    labels("{\"role\":\"db\",\"env\":\"prod\",\"canary\":\"\"}");
	json_t *l4 =
	    labels("{\"role\":\"db\",\"env\":\"staging\",\"tier\":\"x\"}");
	sel *s = NULL;
	char err[256];

	assert_int_equal(sel_from_json(j, &s, err, sizeof(err)), 0);
	assert_true(sel_match(s, l1));
	assert_false(sel_match(s, l2));
	assert_false(sel_match(s, l3));
	assert_false(sel_match(s, l4));
	sel_free(s);
	json_decref(j);
	json_decref(l1);
	json_decref(l2);
	json_decref(l3);
	json_decref(l4);
}

/* ---- field selectors ------------------------------------------------------
 */

static const struct {
	const char *in, *out;
} fsel_valid[] = {
    {"", ""},
    {",", ""},
    {"metadata.name=foo", "metadata.name=foo"},
    {"metadata.name==foo", "metadata.name=foo"},
    {"metadata.name!=foo", "metadata.name!=foo"},
    {"b=2,a=1", "a=1,b=2"},
    {"a=", "a="},
    {"=a", "=a"},
    {"a=b\\,c", "a=b\\,c"},
    {"a=b\\=c", "a=b\\=c"},
    {"a=b\\\\c", "a=b\\\\c"},
    {"a==b", "a=b"},
    {"a!=", "a!="},
    {"a=!b", "a=!b"},
    {"a!b=c", "a!b=c"},
    {" a = b ", " a = b "},
};

static const struct {
	const char *in, *msg;
} fsel_invalid[] = {
    {"a", "invalid selector: 'a'; can't understand 'a'"},
    {"a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"},
    {"a=b=c", "invalid field selector: unescaped character in value: 61"},
    {"a==b=c", "unescaped character in value: 61"},
    {"a=\\x", "invalid field selector: invalid escape sequence: \\x"},
    {"a=b\\", "invalid field selector: invalid escape sequence: \\"},
    {"a=\\\xc3\xa9", "invalid escape sequence: \\\xc3\xa9"},
};

static void test_fsel_parse(void **state)
{
	size_t i;
	char err[512];

	for (i = 0; i < ARRAY_LEN(fsel_valid); i++) {
		fsel *f = NULL;
		char *str;

		if (fsel_parse(fsel_valid[i].in, &f, err, sizeof(err)))
			fail_msg("%s: %s", fsel_valid[i].in, err);
		str = fsel_string(f);
		if (strcmp(str, fsel_valid[i].out))
			fail_msg("%s: prints '%s', want '%s'", fsel_valid[i].in,
				 str, fsel_valid[i].out);
		assert_int_equal(fsel_empty(f), fsel_valid[i].out[0] == '\0');
		free(str);
		fsel_free(f);
	}
	for (i = 0; i < ARRAY_LEN(fsel_invalid); i++) {
		fsel *f = (fsel *)1;

		err[0] = '\0';
		if (fsel_parse(fsel_invalid[i].in, &f, err, sizeof(err)) !=
		    -EINVAL)
			fail_msg("%s: parsed", fsel_invalid[i].in);
		assert_null(f);
		if (strcmp(err, fsel_invalid[i].msg) &&
		    !strstr(err, fsel_invalid[i].msg))
			fail_msg("%s: error '%s', want '%s'",
				 fsel_invalid[i].in, err, fsel_invalid[i].msg);
	}
}

struct obj {
	const char *name, *ns, *phase;
};

static const char *obj_get(const char *field, void *arg)
{
	const struct obj *o = arg;

	if (!strcmp(field, "metadata.name"))
		return o->name;
	if (!strcmp(field, "metadata.namespace"))
		return o->ns;
	if (!strcmp(field, "status.phase"))
		return o->phase;
	return NULL;
}

static const struct {
	const char *sel;
	struct obj o;
	bool match;
} fsel_match_cases[] = {
    {"", {"a", "b", NULL}, true},
    {"metadata.name=a", {"a", "b", NULL}, true},
    {"metadata.name=b", {"a", "b", NULL}, false},
    {"metadata.name!=b", {"a", "b", NULL}, true},
    {"metadata.name!=a", {"a", "b", NULL}, false},
    {"metadata.name=a,metadata.namespace=b", {"a", "b", NULL}, true},
    {"metadata.name=a,metadata.namespace=c", {"a", "b", NULL}, false},
    {"status.phase=", {"a", "b", NULL}, true},
    {"status.phase!=", {"a", "b", NULL}, false},
    {"status.phase=Running", {"a", "b", "Running"}, true},
    {"metadata.name=x\\,y", {"x,y", "b", NULL}, true},
    {"metadata.name=x\\=y", {"x=y", "b", NULL}, true},
    {"metadata.name=x\\\\y", {"x\\y", "b", NULL}, true},
    {"unknown=", {"a", "b", NULL}, true},
};

static void test_fsel_match(void **state)
{
	size_t i;
	char err[256];

	for (i = 0; i < ARRAY_LEN(fsel_match_cases); i++) {
		fsel *f = NULL;
		struct obj o = fsel_match_cases[i].o;

		if (fsel_parse(fsel_match_cases[i].sel, &f, err, sizeof(err)))
			fail_msg("%s: %s", fsel_match_cases[i].sel, err);
		if (fsel_match(f, obj_get, &o) != fsel_match_cases[i].match)
			fail_msg("%s: want %d", fsel_match_cases[i].sel,
				 fsel_match_cases[i].match);
		fsel_free(f);
	}
	assert_true(fsel_match(NULL, obj_get, NULL));
}

static void test_fsel_check_fields(void **state)
{
	static const char *const supported[] = {"metadata.name",
						"metadata.namespace", NULL};
	char err[256];
	fsel *f = NULL;

	assert_int_equal(fsel_parse("metadata.name=a,metadata.namespace!=b", &f,
				    err, sizeof(err)),
			 0);
	assert_int_equal(fsel_check_fields(f, supported, err, sizeof(err)), 0);
	fsel_free(f);

	assert_int_equal(
	    fsel_parse("metadata.name=a,spec.nodeName=n", &f, err, sizeof(err)),
	    0);
	assert_int_equal(fsel_check_fields(f, supported, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "field label not supported: spec.nodeName");
	assert_int_equal(fsel_check_fields(f, NULL, err, sizeof(err)), -EINVAL);
	fsel_free(f);

	assert_int_equal(fsel_parse("", &f, err, sizeof(err)), 0);
	assert_int_equal(fsel_check_fields(f, supported, err, sizeof(err)), 0);
	fsel_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_valid),
	    cmocka_unit_test(test_parse_invalid),
	    cmocka_unit_test(test_parse_null_and_limits),
	    cmocka_unit_test(test_match),
	    cmocka_unit_test(test_match_null_labels),
	    cmocka_unit_test(test_from_json),
	    cmocka_unit_test(test_from_json_nothing_everything),
	    cmocka_unit_test(test_from_json_match),
	    cmocka_unit_test(test_fsel_parse),
	    cmocka_unit_test(test_fsel_match),
	    cmocka_unit_test(test_fsel_check_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
