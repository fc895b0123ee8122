/*
 * test_patch.c -- src/api/patch.h against its RFCs and against the patches
 * kubectl sends:
 *   - merge patch: every example of RFC 7386 (section 3 and appendix A),
 *     kubectl label/annotate/patch --type merge on metadata, inputs left
 *     unchanged, NULL arguments;
 *   - JSON patch: every example of RFC 6902 appendix A (errors included),
 *     array index rules, ~0/~1 escapes, every malformed-patch case
 *     (PATCH_EINVAL) and every does-not-apply case (PATCH_EFAILED) with the
 *     op index and path in the message, atomicity, and the limits
 *     (PATCH_ETOOBIG);
 *   - every allocation failing in turn (PATCH_ENOMEM or NULL, no leak);
 *   - JSON pointers: every example of RFC 6901 section 5, and names with
 *     NUL bytes in them.
 *
 * The tables write JSON with single quotes for readability; jload() turns
 * them into double quotes (no case needs a literal apostrophe).
 */
/* cmocka.h needs these first */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/patch.h"

/* Parse single-quoted JSON (any value, duplicate keys refused). NULL when
 * it does not parse. New reference. */
static json_t *jload(const char *s)
{
	char *buf = strdup(s);
	json_error_t e;
	json_t *v;
	char *p;

	assert_non_null(buf);
	for (p = buf; *p; p++)
		if (*p == '\'')
			*p = '"';
	v = json_loads(buf, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
	free(buf);
	return v;
}

/* As jload, but the text must parse. */
static json_t *jmust(const char *s)
{
	json_t *v = jload(s);

	if (!v)
		fail_msg("test JSON does not parse: %s", s);
	return v;
}

static char *jdump(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

/* ---- merge patch ---------------------------------------------------------*/

struct merge_case {
	const char *name, *doc, *patch, *want;
};

static const struct merge_case merge_cases[] = {
    /* RFC 7386 section 3 */
    {"rfc7386 s3",
     "{'title':'Goodbye!','author':{'givenName':'John','familyName':"
     "'Doe'},'tags':['example','sample'],'content':'This will be "
     "unchanged'}",
     "{'title':'Hello!','phoneNumber':'+01-123-456-7890','author':"
     "{'familyName':null},'tags':['example']}",
     "{'title':'Hello!','author':{'givenName':'John'},'tags':['example'],"
     "'content':'This will be unchanged','phoneNumber':'+01-123-456-7890'}"},
    /* RFC 7386 appendix A, in order */
    {"rfc7386 A1", "{'a':'b'}", "{'a':'c'}", "{'a':'c'}"},
    {"rfc7386 A2", "{'a':'b'}", "{'b':'c'}", "{'a':'b','b':'c'}"},
    {"rfc7386 A3", "{'a':'b'}", "{'a':null}", "{}"},
    {"rfc7386 A4", "{'a':'b','b':'c'}", "{'a':null}", "{'b':'c'}"},
    {"rfc7386 A5", "{'a':['b']}", "{'a':'c'}", "{'a':'c'}"},
    {"rfc7386 A6", "{'a':'c'}", "{'a':['b']}", "{'a':['b']}"},
    {"rfc7386 A7", "{'a':{'b':'c'}}", "{'a':{'b':'d','c':null}}",
     "{'a':{'b':'d'}}"},
    {"rfc7386 A8", "{'a':[{'b':'c'}]}", "{'a':[1]}", "{'a':[1]}"},
    {"rfc7386 A9", "['a','b']", "['c','d']", "['c','d']"},
    {"rfc7386 A10", "{'a':'b'}", "['c']", "['c']"},
    {"rfc7386 A11", "{'a':'foo'}", "null", "null"},
    {"rfc7386 A12", "{'a':'foo'}", "'bar'", "'bar'"},
    {"rfc7386 A13", "{'e':null}", "{'a':1}", "{'e':null,'a':1}"},
    {"rfc7386 A14", "[1,2]", "{'a':'b','c':null}", "{'a':'b'}"},
    {"rfc7386 A15", "{}", "{'a':{'bb':{'ccc':null}}}", "{'a':{'bb':{}}}"},

    /* kubectl label pod p a=b */
    {"label add", "{'metadata':{'name':'p','labels':{'x':'y'}}}",
     "{'metadata':{'labels':{'a':'b'}}}",
     "{'metadata':{'name':'p','labels':{'x':'y','a':'b'}}}"},
    /* kubectl label pod p a- */
    {"label remove", "{'metadata':{'name':'p','labels':{'a':'b','x':'y'}}}",
     "{'metadata':{'labels':{'a':null}}}",
     "{'metadata':{'name':'p','labels':{'x':'y'}}}"},
    /* first label: metadata.labels does not exist yet */
    {"label first", "{'metadata':{'name':'p'}}",
     "{'metadata':{'labels':{'a':'b'}}}",
     "{'metadata':{'name':'p','labels':{'a':'b'}}}"},
    /* removing a label that is not there is a no-op */
    {"label remove absent", "{'metadata':{'name':'p'}}",
     "{'metadata':{'labels':{'a':null}}}",
     "{'metadata':{'name':'p','labels':{}}}"},
    /* kubectl label --overwrite */
    {"label overwrite", "{'metadata':{'labels':{'a':'b'}}}",
     "{'metadata':{'labels':{'a':'c'}}}", "{'metadata':{'labels':{'a':'c'}}}"},
    /* kubectl annotate, keys with '/' and '.' */
    {"annotate", "{'metadata':{'annotations':{'k':'v'}}}",
     "{'metadata':{'annotations':{'example.com/owner':'team-a','k':null}}}",
     "{'metadata':{'annotations':{'example.com/owner':'team-a'}}}"},
    /* kubectl patch --type merge -p '{"spec":{"replicas":3}}' */
    {"spec field", "{'spec':{'replicas':1,'template':{'x':1}}}",
     "{'spec':{'replicas':3}}", "{'spec':{'replicas':3,'template':{'x':1}}}"},
    /* lists replace: finalizers */
    {"finalizers replace", "{'metadata':{'finalizers':['a','b']}}",
     "{'metadata':{'finalizers':['b']}}", "{'metadata':{'finalizers':['b']}}"},
    {"finalizers clear", "{'metadata':{'finalizers':['a']}}",
     "{'metadata':{'finalizers':null}}", "{'metadata':{}}"},
    /* arrays are copied as they are, nulls inside them included */
    {"array keeps nulls", "{}", "{'a':[null,{'b':null}]}",
     "{'a':[null,{'b':null}]}"},
    /* an object replaces a scalar and is merged into {} */
    {"object over scalar", "{'a':1}", "{'a':{'b':{'c':null,'d':1}}}",
     "{'a':{'b':{'d':1}}}"},
    {"empty patch", "{'a':{'b':[1,2]}}", "{}", "{'a':{'b':[1,2]}}"},
    {"scalar doc", "3", "{'a':1}", "{'a':1}"},
    {"deep merge", "{'a':{'b':{'c':{'d':1,'e':2}}}}",
     "{'a':{'b':{'c':{'d':null,'f':3}}}}", "{'a':{'b':{'c':{'e':2,'f':3}}}}"},
};

static void test_merge_table(void **state)
{
	size_t i, bad = 0;

	(void)state;
	for (i = 0; i < sizeof(merge_cases) / sizeof(merge_cases[0]); i++) {
		const struct merge_case *c = &merge_cases[i];
		json_t *doc = jmust(c->doc), *patch = jmust(c->patch);
		json_t *want = jmust(c->want), *got;
		char *before_doc = jdump(doc), *before_patch = jdump(patch);
		char *after_doc, *after_patch;

		got = patch_merge(doc, patch);
		assert_non_null(got);
		if (!json_equal(got, want)) {
			char *g = jdump(got);

			print_error("merge case %s: got %s\n", c->name, g);
			free(g);
			bad++;
		}
		/* doc and patch are borrowed and unchanged */
		after_doc = jdump(doc);
		after_patch = jdump(patch);
		if (strcmp(before_doc, after_doc) ||
		    strcmp(before_patch, after_patch)) {
			print_error("merge case %s: input changed\n", c->name);
			bad++;
		}
		/* applying it again changes nothing */
		json_decref(want);
		want = patch_merge(got, patch);
		assert_non_null(want);
		if (!json_equal(got, want)) {
			print_error("merge case %s: not idempotent\n", c->name);
			bad++;
		}
		free(before_doc);
		free(before_patch);
		free(after_doc);
		free(after_patch);
		json_decref(doc);
		json_decref(patch);
		json_decref(want);
		json_decref(got);
	}
	assert_int_equal(bad, 0);
}

/* The result shares nothing with the inputs: changing it leaves them be. */
static void test_merge_result_is_new(void **state)
{
	json_t *doc = jmust("{'a':{'b':[1]},'c':{'d':1}}");
	json_t *patch = jmust("{'c':{'e':[2]}}");
	json_t *got = patch_merge(doc, patch);
	json_t *want = jmust("{'a':{'b':[1]},'c':{'d':1}}");

	(void)state;
	assert_non_null(got);
	json_array_append_new(json_object_get(json_object_get(got, "a"), "b"),
			      json_integer(9));
	json_array_append_new(json_object_get(json_object_get(got, "c"), "e"),
			      json_integer(9));
	assert_true(json_equal(doc, want));
	json_decref(want);
	want = jmust("{'c':{'e':[2]}}");
	assert_true(json_equal(patch, want));
	json_decref(want);
	json_decref(got);
	json_decref(doc);
	json_decref(patch);
}

static void test_merge_null_args(void **state)
{
	json_t *doc = jmust("{'a':1}"), *patch = jmust("{'b':2}"), *got;
	json_t *want = jmust("{'b':2}");

	(void)state;
	got = patch_merge(NULL, patch); /* no document: as if {} */
	assert_true(json_equal(got, want));
	json_decref(got);
	got = patch_merge(doc, NULL); /* no patch: the document */
	assert_true(json_equal(got, doc));
	json_decref(got);
	got = patch_merge(NULL, NULL);
	assert_true(json_is_null(got));
	json_decref(got);
	json_decref(want);
	json_decref(doc);
	json_decref(patch);
}

/* A patch nested far deeper than anything the parser accepts is merged
 * without recursion. */
static void test_merge_deep(void **state)
{
	enum { DEPTH = 100000 };
	json_t *patch = json_object(), *doc = json_object(), *cur, *got;
	size_t i, n = 0;

	(void)state;
	cur = patch;
	for (i = 0; i < DEPTH; i++) {
		json_t *o = json_object();

		json_object_set_new(cur, "a", o);
		cur = o;
	}
	json_object_set_new(cur, "leaf", json_true());
	got = patch_merge(doc, patch);
	assert_non_null(got);
	for (cur = got; json_object_get(cur, "a");
	     cur = json_object_get(cur, "a"))
		n++;
	assert_int_equal(n, DEPTH);
	assert_true(json_is_true(json_object_get(cur, "leaf")));
	/* jansson frees recursively; unwind by hand to spare the stack */
	for (i = 0; i < 2; i++) {
		json_t *root = i ? patch : got;

		while (json_object_get(root, "a")) {
			json_t *child = json_incref(json_object_get(root, "a"));

			json_object_del(root, "a");
			json_decref(root);
			root = child;
		}
		json_decref(root);
	}
	json_decref(doc);
}

/* ---- JSON patch ----------------------------------------------------------*/

struct jp_case {
	const char *name, *doc, *ops;
	int rc;
	const char *want; /* the result (rc == 0) or a part of the message */
};

static const struct jp_case jp_cases[] = {
    /* RFC 6902 appendix A, in order (A.13 is test_json_a13) */
    {"A.1 add member", "{'foo':'bar'}",
     "[{'op':'add','path':'/baz','value':'qux'}]", 0,
     "{'baz':'qux','foo':'bar'}"},
    {"A.2 add element", "{'foo':['bar','baz']}",
     "[{'op':'add','path':'/foo/1','value':'qux'}]", 0,
     "{'foo':['bar','qux','baz']}"},
    {"A.3 remove member", "{'baz':'qux','foo':'bar'}",
     "[{'op':'remove','path':'/baz'}]", 0, "{'foo':'bar'}"},
    {"A.4 remove element", "{'foo':['bar','qux','baz']}",
     "[{'op':'remove','path':'/foo/1'}]", 0, "{'foo':['bar','baz']}"},
    {"A.5 replace", "{'baz':'qux','foo':'bar'}",
     "[{'op':'replace','path':'/baz','value':'boo'}]", 0,
     "{'baz':'boo','foo':'bar'}"},
    {"A.6 move",
     "{'foo':{'bar':'baz','waldo':'fred'},'qux':{'corge':"
     "'grault'}}",
     "[{'op':'move','from':'/foo/waldo','path':'/qux/thud'}]", 0,
     "{'foo':{'bar':'baz'},'qux':{'corge':'grault','thud':'fred'}}"},
    {"A.7 move element", "{'foo':['all','grass','cows','eat']}",
     "[{'op':'move','from':'/foo/1','path':'/foo/3'}]", 0,
     "{'foo':['all','cows','eat','grass']}"},
    {"A.8 test ok", "{'baz':'qux','foo':['a',2,'c']}",
     "[{'op':'test','path':'/baz','value':'qux'},"
     "{'op':'test','path':'/foo/1','value':2}]",
     0, "{'baz':'qux','foo':['a',2,'c']}"},
    {"A.9 test error", "{'baz':'qux'}",
     "[{'op':'test','path':'/baz','value':'bar'}]", PATCH_EFAILED,
     "op 0: testing value /baz failed: test failed"},
    {"A.10 add nested", "{'foo':'bar'}",
     "[{'op':'add','path':'/child','value':{'grandchild':{}}}]", 0,
     "{'foo':'bar','child':{'grandchild':{}}}"},
    {"A.11 unknown members", "{'foo':'bar'}",
     "[{'op':'add','path':'/baz','value':'qux','xyz':123}]", 0,
     "{'foo':'bar','baz':'qux'}"},
    {"A.12 add to nonexistent", "{'foo':'bar'}",
     "[{'op':'add','path':'/baz/bat','value':'qux'}]", PATCH_EFAILED,
     "op 0: add operation does not apply: doc is missing path: "
     "\"/baz/bat\": missing value"},
    {"A.14 escape ordering", "{'/':9,'~1':10}",
     "[{'op':'test','path':'/~01','value':10}]", 0, "{'/':9,'~1':10}"},
    {"A.15 string vs number", "{'/':9,'~1':10}",
     "[{'op':'test','path':'/~01','value':'10'}]", PATCH_EFAILED,
     "testing value /~01 failed: test failed"},
    {"A.16 add array value", "{'foo':['bar']}",
     "[{'op':'add','path':'/foo/-','value':['abc','def']}]", 0,
     "{'foo':['bar',['abc','def']]}"},

    /* add */
    {"add root", "{'a':1}", "[{'op':'add','path':'','value':[1]}]", 0, "[1]"},
    {"add replaces member", "{'a':1}", "[{'op':'add','path':'/a','value':2}]",
     0, "{'a':2}"},
    {"add at length", "[1,2]", "[{'op':'add','path':'/2','value':3}]", 0,
     "[1,2,3]"},
    {"add at 0", "[1,2]", "[{'op':'add','path':'/0','value':0}]", 0, "[0,1,2]"},
    {"add past length", "[1,2]", "[{'op':'add','path':'/3','value':3}]",
     PATCH_EFAILED,
     "op 0: error in add for path: '/3': Unable to access invalid "
     "index: 3: invalid index referenced"},
    {"add leading zero", "[1,2]", "[{'op':'add','path':'/01','value':3}]",
     PATCH_EFAILED, "invalid index: 01"},
    {"add negative", "[1,2]", "[{'op':'add','path':'/-1','value':3}]",
     PATCH_EFAILED, "invalid index"},
    {"add non-numeric", "[1]", "[{'op':'add','path':'/x','value':3}]",
     PATCH_EFAILED, "invalid index"},
    {"add null value", "{}", "[{'op':'add','path':'/a','value':null}]", 0,
     "{'a':null}"},
    {"add below scalar", "{'a':1}", "[{'op':'add','path':'/a/b','value':3}]",
     PATCH_EFAILED, "doc is missing path: \"/a/b\""},
    {"add empty key", "{}", "[{'op':'add','path':'/','value':1}]", 0, "{'':1}"},
    {"add to nested array end", "{'a':{'b':[]}}",
     "[{'op':'add','path':'/a/b/-','value':{'c':1}}]", 0,
     "{'a':{'b':[{'c':1}]}}"},
    {"add via index", "{'a':[{'b':1},{'b':2}]}",
     "[{'op':'add','path':'/a/1/c','value':3}]", 0,
     "{'a':[{'b':1},{'b':2,'c':3}]}"},
    {"add via dash", "{'a':[{'b':1}]}",
     "[{'op':'add','path':'/a/-/c','value':3}]", PATCH_EFAILED,
     "doc is missing path: \"/a/-/c\""},

    /* remove */
    {"remove missing", "{'spec':{}}",
     "[{'op':'test','path':'/spec','value':{}},"
     "{'op':'remove','path':'/spec/foo'}]",
     PATCH_EFAILED,
     "op 1: remove operation does not apply: doc is missing path: "
     "\"/spec/foo\": missing value"},
    {"remove dash", "[1]", "[{'op':'remove','path':'/-'}]", PATCH_EFAILED,
     "doc is missing path: \"/-\""},
    {"remove past end", "[1]", "[{'op':'remove','path':'/1'}]", PATCH_EFAILED,
     "doc is missing path: \"/1\""},
    {"remove root", "{}", "[{'op':'remove','path':''}]", PATCH_EFAILED,
     "whole document"},
    {"remove last", "[1,2,3]", "[{'op':'remove','path':'/2'}]", 0, "[1,2]"},
    {"remove ignores value", "{'a':1}",
     "[{'op':'remove','path':'/a','value':7}]", 0, "{}"},

    /* replace */
    {"replace missing", "{'a':1}", "[{'op':'replace','path':'/b','value':2}]",
     PATCH_EFAILED,
     "op 0: replace operation does not apply: doc is missing path: /b: "
     "missing value"},
    {"replace element", "[1,2,3]", "[{'op':'replace','path':'/1','value':'x'}]",
     0, "[1,'x',3]"},
    {"replace at length", "[1]", "[{'op':'replace','path':'/1','value':2}]",
     PATCH_EFAILED, "doc is missing path: /1"},
    {"replace root", "{'a':1}", "[{'op':'replace','path':'','value':'s'}]", 0,
     "'s'"},

    /* move */
    {"move into child", "{'a':{'b':1}}",
     "[{'op':'move','from':'/a','path':'/a/c'}]", PATCH_EFAILED,
     "op 0: move operation does not apply: \"from\" /a is a prefix of "
     "\"path\" /a/c"},
    {"move root into child", "{'a':{}}",
     "[{'op':'move','from':'','path':'/a/b'}]", PATCH_EFAILED,
     "is a prefix of"},
    {"move to sibling prefix", "{'a':1,'ab':{}}",
     "[{'op':'move','from':'/a','path':'/ab/x'}]", 0, "{'ab':{'x':1}}"},
    {"move to itself", "{'a':1}", "[{'op':'move','from':'/a','path':'/a'}]", 0,
     "{'a':1}"},
    {"move root to root", "{'a':1}", "[{'op':'move','from':'','path':''}]", 0,
     "{'a':1}"},
    {"move missing from", "{'a':1}", "[{'op':'move','from':'/b','path':'/c'}]",
     PATCH_EFAILED,
     "op 0: move operation does not apply: doc is missing from path: /b: "
     "missing value"},
    {"move missing destination", "{'a':1}",
     "[{'op':'move','from':'/a','path':'/x/y'}]", PATCH_EFAILED,
     "move operation does not apply: doc is missing destination path: "
     "/x/y"},
    {"move up", "{'a':{'b':{'c':1}}}",
     "[{'op':'move','from':'/a/b','path':'/b'}]", 0, "{'a':{},'b':{'c':1}}"},
    {"move to end", "[1,2,3]", "[{'op':'move','from':'/0','path':'/-'}]", 0,
     "[2,3,1]"},
    /* after the remove the array has 2 elements: /3 is past its end */
    {"move past end", "[1,2,3]", "[{'op':'move','from':'/0','path':'/3'}]",
     PATCH_EFAILED, "invalid index"},
    {"move replaces", "{'a':1,'b':2}",
     "[{'op':'move','from':'/a','path':'/b'}]", 0, "{'b':1}"},

    /* copy */
    {"copy", "{'a':{'b':1}}", "[{'op':'copy','from':'/a','path':'/c'}]", 0,
     "{'a':{'b':1},'c':{'b':1}}"},
    {"copy into itself", "{'a':{'b':1}}",
     "[{'op':'copy','from':'/a','path':'/a/c'}]", 0,
     "{'a':{'b':1,'c':{'b':1}}}"},
    {"copy root", "{'a':1}", "[{'op':'copy','from':'','path':'/b'}]", 0,
     "{'a':1,'b':{'a':1}}"},
    {"copy missing from", "{}", "[{'op':'copy','from':'/x','path':'/y'}]",
     PATCH_EFAILED,
     "op 0: copy operation does not apply: doc is missing from path: "
     "\"/x\": missing value"},
    {"copy missing destination", "{'x':1}",
     "[{'op':'copy','from':'/x','path':'/y/z'}]", PATCH_EFAILED,
     "copy operation does not apply: doc is missing destination path: "
     "/y/z"},
    {"copy then edit", "{'a':{'b':1}}",
     "[{'op':'copy','from':'/a','path':'/c'},"
     "{'op':'replace','path':'/c/b','value':2}]",
     0, "{'a':{'b':1},'c':{'b':2}}"},

    /* test */
    {"test int and real", "{'a':1}", "[{'op':'test','path':'/a','value':1.0}]",
     0, "{'a':1}"},
    {"test big ints", "{'a':9007199254740993}",
     "[{'op':'test','path':'/a','value':9007199254740992.0}]", PATCH_EFAILED,
     "test failed"},
    {"test object order", "{'a':{'x':1,'y':[1,{'z':null}]}}",
     "[{'op':'test','path':'/a','value':{'y':[1,{'z':null}],'x':1}}]", 0,
     "{'a':{'x':1,'y':[1,{'z':null}]}}"},
    {"test array order", "{'a':[1,2]}",
     "[{'op':'test','path':'/a','value':[2,1]}]", PATCH_EFAILED,
     "testing value /a failed"},
    {"test extra member", "{'a':{'x':1}}",
     "[{'op':'test','path':'/a','value':{'x':1,'y':2}}]", PATCH_EFAILED,
     "test failed"},
    {"test reals", "{'a':[1.5,-0.0]}",
     "[{'op':'test','path':'/a','value':[1.5,0.0]}]", 0, "{'a':[1.5,0.0]}"},
    {"test other key", "{'a':{'x':1}}",
     "[{'op':'test','path':'/a','value':{'y':1}}]", PATCH_EFAILED,
     "test failed"},
    {"test null", "{'a':null}", "[{'op':'test','path':'/a','value':null}]", 0,
     "{'a':null}"},
    {"test missing", "{}", "[{'op':'test','path':'/a','value':null}]",
     PATCH_EFAILED,
     "op 0: test operation does not apply: doc is missing path: /a"},
    {"test root", "[1,'a']", "[{'op':'test','path':'','value':[1,'a']}]", 0,
     "[1,'a']"},
    {"test true false", "{'a':true}",
     "[{'op':'test','path':'/a','value':false}]", PATCH_EFAILED, "test failed"},

    /* escapes */
    {"escape ~1 add", "{'metadata':{'labels':{}}}",
     "[{'op':'add','path':'/metadata/labels/app.kubernetes.io~1name',"
     "'value':'web'}]",
     0, "{'metadata':{'labels':{'app.kubernetes.io/name':'web'}}}"},
    {"escape ~0 remove", "{'m~n':1,'m/n':2}",
     "[{'op':'remove','path':'/m~0n'}]", 0, "{'m/n':2}"},
    {"escape ~01 is ~1", "{'~1':1,'/':2}", "[{'op':'remove','path':'/~01'}]", 0,
     "{'/':2}"},
    {"escape ~10 is /0", "{'/0':1,'~0':2}", "[{'op':'remove','path':'/~10'}]",
     0, "{'~0':2}"},

    /* kubectl patch --type json */
    {"k8s replace replicas", "{'spec':{'replicas':1}}",
     "[{'op':'replace','path':'/spec/replicas','value':3}]", 0,
     "{'spec':{'replicas':3}}"},
    {"k8s add finalizer", "{'metadata':{'finalizers':['a.example.com/x']}}",
     "[{'op':'add','path':'/metadata/finalizers/-','value':'b'}]", 0,
     "{'metadata':{'finalizers':['a.example.com/x','b']}}"},
    {"k8s remove annotation",
     "{'metadata':{'annotations':{'example.com/a':'1','b':'2'}}}",
     "[{'op':'remove','path':'/metadata/annotations/example.com~1a'}]", 0,
     "{'metadata':{'annotations':{'b':'2'}}}"},
    {"k8s test resourceVersion", "{'metadata':{'resourceVersion':'7'}}",
     "[{'op':'test','path':'/metadata/resourceVersion','value':'6'},"
     "{'op':'replace','path':'/metadata/resourceVersion','value':'8'}]",
     PATCH_EFAILED,
     "op 0: testing value /metadata/resourceVersion failed: test failed"},
    {"k8s missing spec field", "{'spec':{}}",
     "[{'op':'replace','path':'/spec/x','value':1}]", PATCH_EFAILED,
     "replace operation does not apply: doc is missing path: /spec/x"},
    {"empty patch", "{'a':1}", "[]", 0, "{'a':1}"},

    /* malformed patches: 400 */
    {"not an array", "{}", "{'op':'add','path':'/a','value':1}", PATCH_EINVAL,
     "want an array of operations"},
    {"op not an object", "{}", "[{'op':'test','path':'','value':{}},1]",
     PATCH_EINVAL, "op 1: invalid operation: an operation must be an object"},
    {"op missing", "{}", "[{'path':'/a','value':1}]", PATCH_EINVAL,
     "op 0: invalid operation: missing \"op\""},
    {"op not a string", "{}", "[{'op':1,'path':'/a'}]", PATCH_EINVAL,
     "\"op\" must be a string"},
    {"op unknown", "{}", "[{'op':'frob','path':'/a'}]", PATCH_EINVAL,
     "op 0: invalid operation: unsupported operation \"frob\""},
    {"op case", "{}", "[{'op':'ADD','path':'/a','value':1}]", PATCH_EINVAL,
     "unsupported operation \"ADD\""},
    {"path missing", "{}", "[{'op':'remove'}]", PATCH_EINVAL,
     "op 0: invalid remove operation: missing \"path\""},
    {"path not a string", "{}", "[{'op':'add','path':1,'value':1}]",
     PATCH_EINVAL, "invalid add operation: \"path\" must be a string"},
    {"path no slash", "{'a':1}", "[{'op':'remove','path':'a'}]", PATCH_EINVAL,
     "\"path\" is not a JSON pointer: \"a\""},
    {"path bad escape", "{}", "[{'op':'add','path':'/a~2','value':1}]",
     PATCH_EINVAL, "is not a JSON pointer"},
    {"path trailing tilde", "{}", "[{'op':'add','path':'/a~','value':1}]",
     PATCH_EINVAL, "is not a JSON pointer"},
    {"value missing add", "{}", "[{'op':'add','path':'/a'}]", PATCH_EINVAL,
     "op 0: invalid add operation: missing \"value\""},
    {"value missing replace", "{'a':1}", "[{'op':'replace','path':'/a'}]",
     PATCH_EINVAL, "invalid replace operation: missing \"value\""},
    {"value missing test", "{'a':1}", "[{'op':'test','path':'/a'}]",
     PATCH_EINVAL, "invalid test operation: missing \"value\""},
    {"from missing move", "{'a':1}", "[{'op':'move','path':'/b'}]",
     PATCH_EINVAL, "invalid move operation: missing \"from\""},
    {"from missing copy", "{'a':1}", "[{'op':'copy','path':'/b'}]",
     PATCH_EINVAL, "invalid copy operation: missing \"from\""},
    {"from not a pointer", "{'a':1}", "[{'op':'copy','from':'a','path':'/b'}]",
     PATCH_EINVAL, "\"from\" is not a JSON pointer"},
    /* a malformed op is reported even after one that would fail */
    {"malformed after failing", "{}",
     "[{'op':'remove','path':'/x'},{'op':'add','path':'/a'}]", PATCH_EINVAL,
     "op 1: invalid add operation: missing \"value\""},
};

static void test_json_table(void **state)
{
	size_t i, bad = 0;

	(void)state;
	for (i = 0; i < sizeof(jp_cases) / sizeof(jp_cases[0]); i++) {
		const struct jp_case *c = &jp_cases[i];
		json_t *doc = jmust(c->doc), *ops = jmust(c->ops), *got = NULL;
		char *before = jdump(doc), *after;
		char err[512];
		int rc;

		memset(err, 'x', sizeof(err));
		rc = patch_json(doc, ops, &got, err, sizeof(err));
		if (rc != c->rc) {
			print_error("json case %s: rc %d (%s), want %d\n",
				    c->name, rc, err, c->rc);
			bad++;
		} else if (rc == 0) {
			json_t *want = jmust(c->want);

			if (!json_equal(got, want)) {
				char *g = jdump(got);

				print_error("json case %s: got %s\n", c->name,
					    g);
				free(g);
				bad++;
			}
			json_decref(want);
		} else {
			if (got) {
				print_error("json case %s: out set on error\n",
					    c->name);
				bad++;
			}
			if (!strstr(err, c->want)) {
				print_error("json case %s: message \"%s\", "
					    "want \"%s\"\n",
					    c->name, err, c->want);
				bad++;
			}
		}
		after = jdump(doc);
		if (strcmp(before, after)) {
			print_error("json case %s: doc changed\n", c->name);
			bad++;
		}
		free(before);
		free(after);
		json_decref(got);
		json_decref(doc);
		json_decref(ops);
	}
	assert_int_equal(bad, 0);
}

/* RFC 6902 A.13: an operation with two "op" members is an error. jansson
 * keeps the last one unless told to refuse duplicates, which is how the
 * API layer parses patch bodies. */
static void test_json_a13(void **state)
{
	const char *ops = "[{'op':'add','path':'/baz','value':'qux',"
			  "'op':'remove'}]";

	(void)state;
	assert_null(jload(ops));
}

/* On failure nothing is returned, even after operations that applied; the
 * result shares nothing with doc or ops. */
static void test_json_atomic(void **state)
{
	json_t *doc = jmust("{'a':{'b':[1]}}");
	json_t *ops = jmust("[{'op':'add','path':'/a/b/-','value':2},"
			    "{'op':'add','path':'/c','value':{'d':[]}},"
			    "{'op':'remove','path':'/nope'}]");
	json_t *ok = jmust("[{'op':'add','path':'/c','value':{'d':[]}}]");
	json_t *want = jmust("{'a':{'b':[1]}}"), *got = (json_t *)1;
	char err[256];

	(void)state;
	assert_int_equal(patch_json(doc, ops, &got, err, sizeof(err)),
			 PATCH_EFAILED);
	assert_null(got);
	assert_string_equal(err, "op 2: remove operation does not apply: doc "
				 "is missing path: \"/nope\": missing value");
	assert_true(json_equal(doc, want));

	assert_int_equal(patch_json(doc, ok, &got, err, sizeof(err)), 0);
	json_array_append_new(json_object_get(json_object_get(got, "c"), "d"),
			      json_integer(1));
	json_array_append_new(json_object_get(json_object_get(got, "a"), "b"),
			      json_integer(1));
	assert_true(json_equal(doc, want));
	json_decref(want);
	want = jmust("[{'op':'add','path':'/c','value':{'d':[]}}]");
	assert_true(json_equal(ok, want));
	json_decref(want);
	json_decref(got);
	json_decref(ok);
	json_decref(ops);
	json_decref(doc);
}

/* err may be NULL or tiny; a tiny buffer is truncated, not overrun. */
static void test_json_err_buffer(void **state)
{
	json_t *doc = jmust("{}"),
	       *ops = jmust("[{'op':'remove','path':'/x'}]");
	json_t *got;
	char small[8];

	(void)state;
	assert_int_equal(patch_json(doc, ops, &got, NULL, 0), PATCH_EFAILED);
	memset(small, 'x', sizeof(small));
	assert_int_equal(patch_json(doc, ops, &got, small, 1), PATCH_EFAILED);
	assert_int_equal(small[0], '\0');
	assert_int_equal(small[1], 'x');
	assert_int_equal(patch_json(doc, ops, &got, small, sizeof(small)),
			 PATCH_EFAILED);
	assert_string_equal(small, "op 0: r");
	assert_int_equal(patch_json(NULL, ops, &got, small, sizeof(small)),
			 PATCH_EINVAL);
	assert_null(got);
	json_decref(ops);
	json_decref(doc);
}

static void test_json_limits(void **state)
{
	json_t *doc = jmust("{'a':[]}"), *ops = json_array(), *deep, *got;
	char err[256];
	size_t i;

	(void)state;
	/* kube-apiserver's limit on the number of operations */
	for (i = 0; i <= PATCH_MAX_OPS; i++)
		json_array_append_new(ops, jmust("{'op':'test','path':'',"
						 "'value':{'a':[]}}"));
	assert_int_equal(patch_json(doc, ops, &got, err, sizeof(err)),
			 PATCH_ETOOBIG);
	assert_non_null(strstr(err, "maximum operations"));
	json_array_remove(ops, 0);
	assert_int_equal(patch_json(doc, ops, &got, err, sizeof(err)), 0);
	json_decref(got);
	json_array_clear(ops);

	/* a value that would nest too deep: PATCH_MAX_DEPTH - 1 arrays at
	 * /a/0 (two levels down) is one too many */
	deep = json_array();
	for (i = 1; i < PATCH_MAX_DEPTH - 1; i++) {
		json_t *outer = json_array();

		json_array_append_new(outer, deep);
		deep = outer;
	}
	json_array_append_new(ops, json_pack("{s:s, s:s, s:o}", "op", "add",
					     "path", "/a/0", "value", deep));
	assert_int_equal(patch_json(doc, ops, &got, err, sizeof(err)),
			 PATCH_ETOOBIG);
	assert_non_null(strstr(err, "op 0: add operation does not apply: the "
				    "value at path /a/0 would nest deeper"));
	/* one level up it fits */
	json_object_set_new(json_array_get(ops, 0), "path", json_string("/a"));
	assert_int_equal(patch_json(doc, ops, &got, err, sizeof(err)), 0);
	json_decref(got);
	json_array_clear(ops);

	/* copies that double the document each time run out of budget */
	json_decref(doc);
	doc = jmust("{'a':[1,2,3,4,5,6,7,8]}");
	for (i = 0; i < 40; i++)
		json_array_append_new(ops, jmust("{'op':'copy','from':'/a',"
						 "'path':'/a/-'}"));
	assert_int_equal(patch_json(doc, ops, &got, err, sizeof(err)),
			 PATCH_ETOOBIG);
	assert_non_null(strstr(err, "copy operation does not apply"));
	assert_null(got);

	/* one big string copied many times: the budget counts bytes */
	json_array_clear(ops);
	json_decref(doc);
	{
		char *big = malloc(100 * 1024);

		assert_non_null(big);
		memset(big, 'a', 100 * 1024);
		doc = json_pack("{s:s#, s:[]}", "s", big, (size_t)(100 * 1024),
				"c");
		free(big);
	}
	for (i = 0; i < 29; i++)
		json_array_append_new(ops, jmust("{'op':'copy','from':'/s',"
						 "'path':'/c/-'}"));
	assert_int_equal(patch_json(doc, ops, &got, err, sizeof(err)), 0);
	json_decref(got);
	json_array_append_new(ops, jmust("{'op':'copy','from':'/s',"
					 "'path':'/c/-'}"));
	json_array_append_new(ops, jmust("{'op':'copy','from':'/s',"
					 "'path':'/c/-'}"));
	assert_int_equal(patch_json(doc, ops, &got, err, sizeof(err)),
			 PATCH_ETOOBIG);
	assert_non_null(strstr(err, "op 30: copy operation does not apply: "
				    "the patch copies more than"));

	/* moving a value deeper and back: bounded by the same budget */
	json_array_clear(ops);
	json_decref(doc);
	doc = jmust("{'a':{'x':{}},'b':[]}");
	for (i = 0; i < 100; i++) {
		json_array_append_new(ops, jmust("{'op':'move','from':'/a',"
						 "'path':'/a2'}"));
		json_array_append_new(ops, jmust("{'op':'move','from':'/a2',"
						 "'path':'/a'}"));
	}
	assert_int_equal(patch_json(doc, ops, &got, err, sizeof(err)), 0);
	json_decref(got);
	json_decref(ops);
	json_decref(doc);
}

/* Moving a chain below itself again and again would double its depth each
 * time; the depth check stops it. */
static void test_json_move_depth(void **state)
{
	json_t *doc = json_object(), *ops = json_array(), *got, *c;
	char err[256];
	size_t i;

	(void)state;
	/* /a and /b: chains of 1500 objects {"n":{"n":...}} */
	for (i = 0; i < 2; i++) {
		json_t *chain = json_object(), *cur = chain;
		size_t k;

		for (k = 1; k < 1500; k++) {
			c = json_object();
			json_object_set_new(cur, "n", c);
			cur = c;
		}
		json_object_set_new(doc, i ? "b" : "a", chain);
	}
	/* /b, 1500 deep, to the bottom of /a: 3000 levels */
	{
		size_t len = 2 + 2 * 1499 + 2 + 1;
		char *path = malloc(len), *p = path;

		assert_non_null(path);
		p += sprintf(p, "/a");
		for (i = 1; i < 1500; i++)
			p += sprintf(p, "/n");
		sprintf(p, "/b");
		json_array_append_new(ops,
				      json_pack("{s:s, s:s, s:s}", "op", "move",
						"from", "/b", "path", path));
		free(path);
	}
	assert_int_equal(patch_json(doc, ops, &got, err, sizeof(err)),
			 PATCH_ETOOBIG);
	assert_non_null(strstr(err, "op 0: move operation does not apply: the "
				    "value at path /a/n/n"));
	json_decref(ops);
	json_decref(doc);
}

/* jansson's parser refuses NUL bytes in keys (and json_deep_copy cuts a
 * key at one), so documents never have them; but a patch may still name
 * one: a key built in code, or a pointer parsed with JSON_ALLOW_NUL. Such a
 * name must not be cut at the NUL and hit "a". */
static void test_nul_keys(void **state)
{
	json_t *doc = jmust("{'a':1}"), *patch = json_object(), *ops, *got;
	char err[256];

	(void)state;
	json_object_setn_new(patch, "a\0b", 3, json_null());
	got = patch_merge(doc, patch);
	assert_true(json_equal(got, doc));
	json_decref(got);

	ops = json_pack("[{s:s, s:s%}]", "op", "remove", "path", "/a\0b",
			(size_t)4);
	assert_non_null(ops);
	assert_int_equal(patch_json(doc, ops, &got, err, sizeof(err)),
			 PATCH_EFAILED);
	assert_null(got);
	json_object_set_new(json_array_get(ops, 0), "path", json_string("/a"));
	assert_int_equal(patch_json(doc, ops, &got, err, sizeof(err)), 0);
	assert_int_equal(json_object_size(got), 0);
	json_decref(got);
	json_decref(ops);
	json_decref(patch);
	json_decref(doc);
}

/* ---- out of memory: fail the n-th allocation, for every n ---------------*/

static long allocs_left = -1; /* -1: never fail */

static void *failing_malloc(size_t n)
{
	if (allocs_left == 0)
		return NULL;
	if (allocs_left > 0)
		allocs_left--;
	return malloc(n);
}

static void test_oom(void **state)
{
	json_t *doc = jmust("{'metadata':{'name':'p','labels':{'a':'b'}},"
			    "'spec':{'x':[1,2,{'y':'z'}]}}");
	json_t *patch = jmust("{'metadata':{'labels':{'a':null,'c':'d'},"
			      "'annotations':{'k':'v'}},'spec':{'x':[3]}}");
	json_t *ops = jmust("[{'op':'add','path':'/metadata/labels/c',"
			    "'value':{'d':[1,2]}},"
			    "{'op':'copy','from':'/spec','path':'/s2'},"
			    "{'op':'move','from':'/s2/x/2','path':'/y'},"
			    "{'op':'replace','path':'/spec/x/0','value':[0]},"
			    "{'op':'test','path':'/y','value':{'y':'z'}},"
			    "{'op':'remove','path':'/metadata/name'}]");
	json_t *want_merge = patch_merge(doc, patch), *want_json, *got;
	char err[256];
	long n;
	int rc;

	(void)state;
	assert_int_equal(patch_json(doc, ops, &want_json, err, sizeof(err)), 0);
	json_set_alloc_funcs(failing_malloc, free);
	for (n = 0;; n++) {
		allocs_left = n;
		got = patch_merge(doc, patch);
		allocs_left = -1;
		if (got)
			break;
	}
	assert_true(n > 0);
	assert_true(json_equal(got, want_merge));
	json_decref(got);
	for (n = 0;; n++) {
		allocs_left = n;
		rc = patch_json(doc, ops, &got, err, sizeof(err));
		allocs_left = -1;
		if (rc == 0)
			break;
		assert_int_equal(rc, PATCH_ENOMEM);
		assert_null(got);
	}
	assert_true(n > 0);
	assert_true(json_equal(got, want_json));
	json_decref(got);
	json_set_alloc_funcs(malloc, free);
	json_decref(want_json);
	json_decref(want_merge);
	json_decref(ops);
	json_decref(patch);
	json_decref(doc);
}

/* ---- JSON pointers -------------------------------------------------------*/

static void test_pointer_rfc6901(void **state)
{
	static const struct {
		const char *ptr, *want;
	} cases[] = {
	    {"", NULL}, /* the whole document */
	    {"/foo", "['bar','baz']"},
	    {"/foo/0", "'bar'"},
	    {"/", "0"},
	    {"/a~1b", "1"},
	    {"/c%d", "2"},
	    {"/e^f", "3"},
	    {"/g|h", "4"},
	    {"/i\\j", "5"},
	    {"/k\"l", "6"},
	    {"/ ", "7"},
	    {"/m~0n", "8"},
	};
	json_t *doc = jmust("{'foo':['bar','baz'],'':0,'a/b':1,'c%d':2,"
			    "'e^f':3,'g|h':4,'i\\\\j':5,'k\\\"l':6,' ':7,"
			    "'m~n':8}");
	json_t *got, *want;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(
		    patch_json_pointer_get(doc, cases[i].ptr, &got), 0);
		want = cases[i].want ? jmust(cases[i].want) : json_incref(doc);
		if (!json_equal(got, want))
			fail_msg("pointer %s", cases[i].ptr);
		json_decref(want);
	}
	json_decref(doc);
}

static void test_pointer_errors(void **state)
{
	static const struct {
		const char *ptr;
		int rc;
	} cases[] = {
	    {"/foo/2", PATCH_ENOENT},
	    {"/foo/-", PATCH_ENOENT},
	    {"/foo/01", PATCH_ENOENT},
	    {"/foo/-1", PATCH_ENOENT},
	    {"/foo/0/x", PATCH_ENOENT},
	    {"/nope", PATCH_ENOENT},
	    {"/nope/x", PATCH_ENOENT},
	    {"/n/x", PATCH_ENOENT},
	    {"/foo/99999999999999999999", PATCH_ENOENT},
	    {"foo", PATCH_EINVAL},
	    {"/m~2n", PATCH_EINVAL},
	    {"/a~", PATCH_EINVAL},
	    {"#/foo", PATCH_EINVAL},
	    {NULL, PATCH_EINVAL},
	};
	json_t *doc = jmust("{'foo':['bar','baz'],'n':null}"), *got;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		got = (json_t *)1;
		if (patch_json_pointer_get(doc, cases[i].ptr, &got) !=
		    cases[i].rc)
			fail_msg("pointer %s",
				 cases[i].ptr ? cases[i].ptr : "NULL");
		assert_null(got);
	}
	assert_int_equal(patch_json_pointer_get(NULL, "", &got), PATCH_ENOENT);
	assert_string_equal(patch_strerror(PATCH_EFAILED),
			    "patch does not apply");
	json_decref(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_merge_table),
	    cmocka_unit_test(test_merge_result_is_new),
	    cmocka_unit_test(test_merge_null_args),
	    cmocka_unit_test(test_merge_deep),
	    cmocka_unit_test(test_json_table),
	    cmocka_unit_test(test_json_a13),
	    cmocka_unit_test(test_json_atomic),
	    cmocka_unit_test(test_json_err_buffer),
	    cmocka_unit_test(test_json_limits),
	    cmocka_unit_test(test_json_move_depth),
	    cmocka_unit_test(test_nul_keys),
	    cmocka_unit_test(test_oom),
	    cmocka_unit_test(test_pointer_rfc6901),
	    cmocka_unit_test(test_pointer_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
