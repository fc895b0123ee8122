/*
 * patch.c -- JSON merge patch (RFC 7386) and JSON patch (RFC 6902) over
 * jansson values. See patch.h for the contract.
 *
 * Both start from a deep copy of the document and edit the copy in place,
 * so the caller's document is never touched and a failed JSON patch is
 * simply the copy thrown away.
 *
 * Recursion: the merge walks the patch with an explicit stack on the heap,
 * so its depth is only bounded by memory. The JSON patch code walks
 * pointers iteratively; its only recursive helpers (value_measure,
 * value_equal) stop at PATCH_MAX_DEPTH. Every value a JSON patch inserts is
 * measured first, so the document it builds never nests deeper than
 * PATCH_MAX_DEPTH (or the depth of the original document) and jansson's
 * own recursive copy, compare, dump and free stay within a bounded stack.
 *
 * Known difference from kube-apiserver (evanphx/json-patch v4): a merge
 * patch here follows RFC 7386 exactly, so an array in the patch is copied
 * as it is; evanphx also drops null members of objects inside such an
 * array when the target has no value yet. A JSON patch "test" compares
 * numbers by value (1 equals 1.0), as RFC 6902 section 4.6 says, and a
 * "test" of a path that does not exist fails even when the value is null.
 *
 * Keys are handled as byte strings with a length, so a pointer token or a
 * merge patch member with a NUL byte in it matches only that key. jansson's
 * parser refuses such keys and its json_deep_copy cuts them at the NUL, so
 * a document holding one (built in code) does not survive the copy intact.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/patch.h"

const char *patch_strerror(int code)
{
	switch (code) {
	case PATCH_OK:
		return "success";
	case PATCH_EINVAL:
		return "invalid patch";
	case PATCH_EFAILED:
		return "patch does not apply";
	case PATCH_ENOENT:
		return "no such value";
	case PATCH_ETOOBIG:
		return "patch too large";
	case PATCH_ENOMEM:
		return "out of memory";
	default:
		return "unknown error";
	}
}

/* ---- merge patch ---------------------------------------------------------
 *
 * MergePatch(target, patch) from RFC 7386 section 2, with the recursion
 * turned into a loop: each frame merges one patch object into one target
 * object (owned by the tree being built), one member per step. */

struct merge_frame {
	json_t *target;	     /* borrowed from the result tree */
	const json_t *patch; /* borrowed from the caller's patch */
	void *iter;	     /* next member of patch, NULL when done */
};

static int merge_push(struct merge_frame **st, size_t *n, size_t *cap,
		      json_t *target, const json_t *patch)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct merge_frame *ns = realloc(*st, ncap * sizeof(*ns));

		if (!ns)
			return -1;
		*st = ns;
		*cap = ncap;
	}
	(*st)[*n].target = target;
	(*st)[*n].patch = patch;
	/* jansson's iterators take a non-const object; they do not change it */
	(*st)[*n].iter = json_object_iter((json_t *)patch);
	(*n)++;
	return 0;
}

/* Merge the object patch into the object target. 0, or -1 on OOM (target
 * is then partly merged; the caller throws it away). */
static int merge_into(json_t *target, const json_t *patch)
{
	struct merge_frame *st = NULL;
	size_t n = 0, cap = 0;
	int rc = -1;

	if (merge_push(&st, &n, &cap, target, patch) < 0)
		goto out;
	while (n > 0) {
		struct merge_frame *f = &st[n - 1];
		const char *key;
		size_t klen;
		json_t *v, *child;

		if (!f->iter) {
			n--;
			continue;
		}
		key = json_object_iter_key(f->iter);
		klen = json_object_iter_key_len(f->iter);
		v = json_object_iter_value(f->iter);
		f->iter = json_object_iter_next((json_t *)f->patch, f->iter);

		if (json_is_null(v)) {
			json_object_deln(f->target, key, klen);
			continue;
		}
		if (!json_is_object(v)) {
			/* set_new takes the copy, NULL included */
			if (json_object_setn_new_nocheck(f->target, key, klen,
							 json_deep_copy(v)) < 0)
				goto out;
			continue;
		}
		child = json_object_getn(f->target, key, klen);
		if (!json_is_object(child)) {
			child = json_object();
			if (json_object_setn_new_nocheck(f->target, key, klen,
							 child) < 0)
				goto out;
		}
		/* f is stale once the stack grows */
		if (merge_push(&st, &n, &cap, child, v) < 0)
			goto out;
	}
	rc = 0;
out:
	free(st);
	return rc;
}

json_t *patch_merge(const json_t *doc, const json_t *patch)
{
	json_t *out;

	if (!patch)
		return doc ? json_deep_copy(doc) : json_null();
	if (!json_is_object(patch))
		return json_deep_copy(patch);
	out = json_is_object(doc) ? json_deep_copy(doc) : json_object();
	if (!out)
		return NULL;
	if (merge_into(out, patch) < 0) {
		json_decref(out);
		return NULL;
	}
	return out;
}

/* ---- JSON pointers (RFC 6901) -------------------------------------------
 *
 * A pointer is a byte range (JSON strings may hold NUL bytes): empty, or
 * '/'-separated reference tokens in which "~1" means '/' and "~0" '~'. */

static bool ptr_valid(const char *p, size_t len)
{
	size_t i;

	if (len == 0)
		return true;
	if (p[0] != '/')
		return false;
	for (i = 1; i < len; i++) {
		if (p[i] != '~')
			continue;
		if (i + 1 >= len || (p[i + 1] != '0' && p[i + 1] != '1'))
			return false;
		i++;
	}
	return true;
}

/* Reference tokens in a valid pointer. */
static size_t ptr_ntok(const char *p, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++)
		n += p[i] == '/';
	return n;
}

/* Decode the token after the '/' at p[*pos] into buf (which has room for
 * len bytes) and move *pos to the next '/' or to len. Returns the decoded
 * length. The pointer must be valid. */
static size_t ptr_token(const char *p, size_t len, size_t *pos, char *buf)
{
	size_t i = *pos + 1, n = 0;

	while (i < len && p[i] != '/') {
		if (p[i] == '~') {
			buf[n++] = p[i + 1] == '0' ? '~' : '/';
			i += 2;
		} else {
			buf[n++] = p[i++];
		}
	}
	*pos = i;
	return n;
}

/* An array index: "0", or digits without a leading zero. 0 and *idx, or
 * -1 ("-" included: it names the element after the last). */
static int parse_index(const char *tok, size_t len, size_t *idx)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 19 || (tok[0] == '0' && len > 1))
		return -1;
	for (i = 0; i < len; i++) {
		if (tok[i] < '0' || tok[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(tok[i] - '0');
	}
	if (v > SIZE_MAX)
		return -1;
	*idx = (size_t)v;
	return 0;
}

/* The value token names inside container c (borrowed), or NULL. */
static json_t *child_get(const json_t *c, const char *tok, size_t toklen)
{
	size_t i;

	if (json_is_object(c))
		return json_object_getn(c, tok, toklen);
	if (json_is_array(c) && parse_index(tok, toklen, &i) == 0)
		return json_array_get(c, i);
	return NULL;
}

/* Where a pointer leads: the container that holds (or would hold) the
 * value, and the last token. */
struct loc {
	json_t *parent; /* borrowed; NULL when the pointer is "" (the root) */
	char *tok;	/* the last token, decoded; malloc'd, loc_free */
	size_t toklen;
	size_t ntok; /* reference tokens in the pointer */
};

static void loc_free(struct loc *l)
{
	free(l->tok);
	l->tok = NULL;
}

/* Follow every token of the (valid) pointer but the last, from root.
 * 0: l->parent is an array or object (or NULL for ""); PATCH_EFAILED: a
 * token on the way names nothing, or the parent is a scalar; PATCH_ENOMEM.
 * The caller calls loc_free in every case. */
static int loc_find(json_t *root, const char *p, size_t len, struct loc *l)
{
	json_t *cur = root;
	size_t pos = 0;

	memset(l, 0, sizeof(*l));
	if (len == 0)
		return 0;
	l->tok = malloc(len);
	if (!l->tok)
		return PATCH_ENOMEM;
	for (;;) {
		l->toklen = ptr_token(p, len, &pos, l->tok);
		l->ntok++;
		if (pos >= len)
			break;
		cur = child_get(cur, l->tok, l->toklen);
		if (!cur)
			return PATCH_EFAILED;
	}
	if (!json_is_object(cur) && !json_is_array(cur))
		return PATCH_EFAILED;
	l->parent = cur;
	return 0;
}

/* The value at l (borrowed), or NULL. */
static json_t *loc_get(json_t *root, const struct loc *l)
{
	if (!l->parent)
		return root;
	return child_get(l->parent, l->tok, l->toklen);
}

int patch_json_pointer_get(const json_t *doc, const char *pointer,
			   json_t **out_borrowed)
{
	struct loc l;
	size_t len;
	int rc;

	*out_borrowed = NULL;
	if (!pointer)
		return PATCH_EINVAL;
	len = strlen(pointer);
	if (!ptr_valid(pointer, len))
		return PATCH_EINVAL;
	if (!doc)
		return PATCH_ENOENT;
	/* loc_find only reads through its root; the result is borrowed */
	rc = loc_find((json_t *)doc, pointer, len, &l);
	if (rc == 0)
		*out_borrowed = loc_get((json_t *)doc, &l);
	loc_free(&l);
	if (rc == PATCH_EFAILED || (rc == 0 && !*out_borrowed))
		return PATCH_ENOENT;
	return rc;
}

/* ---- values --------------------------------------------------------------*/

/* Nesting depth of v (0 for a scalar, 1 for [] or {}), counting at most
 * limit + 1 levels: more than limit means too deep. Adds about the size of
 * v's compact JSON text to *size, as far as it looked. Recurses at most
 * limit + 1 times. */
static size_t value_measure(const json_t *v, size_t limit, size_t *size)
{
	size_t d = 0, cd, i;
	void *it;

	switch (json_typeof(v)) {
	case JSON_ARRAY:
		*size += 2 + json_array_size(v);
		if (limit == 0)
			return 1;
		for (i = 0; i < json_array_size(v); i++) {
			cd = value_measure(json_array_get(v, i), limit - 1,
					   size);
			if (cd > d)
				d = cd;
			if (d >= limit)
				break;
		}
		return d + 1;
	case JSON_OBJECT:
		*size += 2;
		if (limit == 0)
			return 1;
		for (it = json_object_iter((json_t *)v); it;
		     it = json_object_iter_next((json_t *)v, it)) {
			*size += json_object_iter_key_len(it) + 4;
			cd = value_measure(json_object_iter_value(it),
					   limit - 1, size);
			if (cd > d)
				d = cd;
			if (d >= limit)
				break;
		}
		return d + 1;
	case JSON_STRING:
		*size += json_string_length(v) + 2;
		return 0;
	default:
		*size += 8; /* a number, true, false or null */
		return 0;
	}
}

/* Integers and reals compare by value: 1 and 1.0 are equal, 2^53 + 1 and
 * 2^53 are not. */
static bool number_equal(const json_t *a, const json_t *b)
{
	const json_t *i, *r;
	double d;

	if (json_is_integer(a) && json_is_integer(b))
		return json_integer_value(a) == json_integer_value(b);
	if (json_is_real(a) && json_is_real(b))
		return json_real_value(a) == json_real_value(b);
	i = json_is_integer(a) ? a : b;
	r = json_is_integer(a) ? b : a;
	d = json_real_value(r);
	if (!(d >= -0x1p63 && d < 0x1p63))
		return false;
	return (double)(json_int_t)d == d &&
	       (json_int_t)d == json_integer_value(i);
}

/* RFC 6902 section 4.6 equality, giving up (unequal) below PATCH_MAX_DEPTH
 * levels. */
static bool value_equal(const json_t *a, const json_t *b, size_t depth)
{
	size_t i;
	void *it;

	if (depth > PATCH_MAX_DEPTH)
		return false;
	if (json_is_number(a) && json_is_number(b))
		return number_equal(a, b);
	if (json_typeof(a) != json_typeof(b))
		return false;
	switch (json_typeof(a)) {
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
		       memcmp(json_string_value(a), json_string_value(b),
			      json_string_length(a)) == 0;
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return false;
		for (i = 0; i < json_array_size(a); i++)
			if (!value_equal(json_array_get(a, i),
					 json_array_get(b, i), depth + 1))
				return false;
		return true;
	case JSON_OBJECT:
		if (json_object_size(a) != json_object_size(b))
			return false;
		for (it = json_object_iter((json_t *)a); it;
		     it = json_object_iter_next((json_t *)a, it)) {
			json_t *bv =
			    json_object_getn(b, json_object_iter_key(it),
					     json_object_iter_key_len(it));

			if (!bv || !value_equal(json_object_iter_value(it), bv,
						depth + 1))
				return false;
		}
		return true;
	default:
		return true; /* true, false, null */
	}
}

/* ---- JSON patch (RFC 6902) ---------------------------------------------*/

enum op_kind { OP_ADD, OP_REMOVE, OP_REPLACE, OP_MOVE, OP_COPY, OP_TEST };

static const char *const op_names[] = {
    [OP_ADD] = "add",	[OP_REMOVE] = "remove", [OP_REPLACE] = "replace",
    [OP_MOVE] = "move", [OP_COPY] = "copy",	[OP_TEST] = "test",
};

/* One operation, its members borrowed from the caller's patch. */
struct op {
	size_t idx;
	enum op_kind kind;
	const char *path, *from; /* not NUL-terminated in general */
	size_t pathlen, fromlen;
	const json_t *value;
};

struct apply {
	char *err;
	size_t errlen;
	size_t budget; /* bytes copy and move may still touch */
};

static int fail(struct apply *a, size_t idx, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Write "op <idx>: <message>" into the error buffer; returns code. */
static int fail(struct apply *a, size_t idx, int code, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!a->err || a->errlen == 0)
		return code;
	n = snprintf(a->err, a->errlen, "op %zu: ", idx);
	if (n < 0 || (size_t)n >= a->errlen)
		return code;
	va_start(ap, fmt);
	vsnprintf(a->err + n, a->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return code;
}

/* printf arguments for a byte range that may be long or hold NULs */
#define PR(s, len) (int)((len) > 512 ? 512 : (len)), (s)

/* Read a pointer member ("path" or "from") of operation o. */
static int op_pointer(struct apply *a, const struct op *o, const json_t *jo,
		      const char *name, const char **p, size_t *len)
{
	const json_t *v = json_object_get(jo, name);

	if (!v)
		return fail(a, o->idx, PATCH_EINVAL,
			    "invalid %s operation: missing \"%s\"",
			    op_names[o->kind], name);
	if (!json_is_string(v))
		return fail(a, o->idx, PATCH_EINVAL,
			    "invalid %s operation: \"%s\" must be a string",
			    op_names[o->kind], name);
	*p = json_string_value(v);
	*len = json_string_length(v);
	if (!ptr_valid(*p, *len))
		return fail(a, o->idx, PATCH_EINVAL,
			    "invalid %s operation: \"%s\" is not a JSON "
			    "pointer: \"%.*s\" (want \"\" or \"/a/b\", with ~0 "
			    "for '~' and ~1 for '/')",
			    op_names[o->kind], name, PR(*p, *len));
	return 0;
}

/* Check and decode operation idx of the patch. */
static int op_parse(struct apply *a, const json_t *jo, size_t idx, struct op *o)
{
	const json_t *jk;
	const char *k;
	size_t i, klen;
	int rc;

	memset(o, 0, sizeof(*o));
	o->idx = idx;
	if (!json_is_object(jo))
		return fail(a, idx, PATCH_EINVAL,
			    "invalid operation: an operation must be an "
			    "object, like {\"op\":\"add\",\"path\":\"/a\","
			    "\"value\":1}");
	jk = json_object_get(jo, "op");
	if (!jk)
		return fail(a, idx, PATCH_EINVAL,
			    "invalid operation: missing \"op\"");
	if (!json_is_string(jk))
		return fail(a, idx, PATCH_EINVAL,
			    "invalid operation: \"op\" must be a string");
	k = json_string_value(jk);
	klen = json_string_length(jk);
	for (i = 0; i < sizeof(op_names) / sizeof(op_names[0]); i++)
		if (strlen(op_names[i]) == klen &&
		    memcmp(op_names[i], k, klen) == 0)
			break;
	if (i == sizeof(op_names) / sizeof(op_names[0]))
		return fail(a, idx, PATCH_EINVAL,
			    "invalid operation: unsupported operation \"%.*s\" "
			    "(want add, remove, replace, move, copy or test)",
			    PR(k, klen));
	o->kind = (enum op_kind)i;

	rc = op_pointer(a, o, jo, "path", &o->path, &o->pathlen);
	if (rc)
		return rc;
	if (o->kind == OP_MOVE || o->kind == OP_COPY) {
		rc = op_pointer(a, o, jo, "from", &o->from, &o->fromlen);
		if (rc)
			return rc;
	}
	if (o->kind == OP_ADD || o->kind == OP_REPLACE || o->kind == OP_TEST) {
		o->value = json_object_get(jo, "value");
		if (!o->value)
			return fail(a, idx, PATCH_EINVAL,
				    "invalid %s operation: missing \"value\"",
				    op_names[o->kind]);
	}
	return 0;
}

/* Put v (stolen) where l points: replace the root, set an object member,
 * or insert into an array (at an index <= its size, or "-" to append).
 * 0, PATCH_EFAILED (a bad array index) or PATCH_ENOMEM. */
static int loc_insert(json_t **root, const struct loc *l, json_t *v)
{
	size_t i;

	if (!v)
		return PATCH_ENOMEM;
	if (!l->parent) {
		json_decref(*root);
		*root = v;
		return 0;
	}
	if (json_is_object(l->parent))
		return json_object_setn_new_nocheck(l->parent, l->tok,
						    l->toklen, v) < 0
			   ? PATCH_ENOMEM
			   : 0;
	if (l->toklen == 1 && l->tok[0] == '-')
		return json_array_append_new(l->parent, v) < 0 ? PATCH_ENOMEM
							       : 0;
	if (parse_index(l->tok, l->toklen, &i) < 0 ||
	    i > json_array_size(l->parent)) {
		json_decref(v);
		return PATCH_EFAILED;
	}
	return json_array_insert_new(l->parent, i, v) < 0 ? PATCH_ENOMEM : 0;
}

/* Remove the (existing, non-root) value at l. */
static void loc_remove(const struct loc *l)
{
	size_t i;

	if (json_is_object(l->parent))
		json_object_deln(l->parent, l->tok, l->toklen);
	else if (parse_index(l->tok, l->toklen, &i) == 0)
		json_array_remove(l->parent, i);
}

/* May a value of this shape go ntok tokens below the root? */
static int check_depth(struct apply *a, const struct op *o, size_t ntok,
		       const json_t *v, size_t *size)
{
	size_t d;

	if (ntok > PATCH_MAX_DEPTH)
		d = 1;
	else
		d = value_measure(v, PATCH_MAX_DEPTH - ntok, size);
	if (ntok + d > PATCH_MAX_DEPTH)
		return fail(a, o->idx, PATCH_ETOOBIG,
			    "%s operation does not apply: the value at path "
			    "%.*s would nest deeper than %d levels",
			    op_names[o->kind], PR(o->path, o->pathlen),
			    PATCH_MAX_DEPTH);
	return 0;
}

/* Charge size bytes to the copy budget. */
static int charge(struct apply *a, const struct op *o, size_t size)
{
	if (size > a->budget)
		return fail(a, o->idx, PATCH_ETOOBIG,
			    "%s operation does not apply: the patch copies "
			    "more than %d bytes of JSON in total",
			    op_names[o->kind], PATCH_MAX_COPY_BYTES);
	a->budget -= size;
	return 0;
}

/* Insert v (stolen) at o's path, with the messages of add, move and copy.
 * v's depth has been checked against the path already. */
static int op_insert(struct apply *a, const struct op *o, json_t **root,
		     json_t *v, const struct loc *l, int found)
{
	const char *n = op_names[o->kind];
	int rc;

	if (found == PATCH_ENOMEM) {
		json_decref(v);
		return found;
	}
	if (found) {
		json_decref(v);
		if (o->kind == OP_ADD)
			return fail(a, o->idx, PATCH_EFAILED,
				    "add operation does not apply: doc is "
				    "missing path: \"%.*s\": missing value",
				    PR(o->path, o->pathlen));
		return fail(a, o->idx, PATCH_EFAILED,
			    "%s operation does not apply: doc is missing "
			    "destination path: %.*s: missing value",
			    n, PR(o->path, o->pathlen));
	}
	rc = loc_insert(root, l, v);
	if (rc == PATCH_EFAILED)
		return fail(a, o->idx, rc,
			    "error in %s for path: '%.*s': Unable to access "
			    "invalid index: %.*s: invalid index referenced",
			    n, PR(o->path, o->pathlen), PR(l->tok, l->toklen));
	return rc;
}

static int op_add(struct apply *a, const struct op *o, json_t **root)
{
	struct loc l;
	size_t size = 0;
	int rc, found;

	found = loc_find(*root, o->path, o->pathlen, &l);
	rc = found ? 0 : check_depth(a, o, l.ntok, o->value, &size);
	if (rc == 0)
		rc = op_insert(a, o, root, json_deep_copy(o->value), &l, found);
	loc_free(&l);
	return rc;
}

static int op_remove(struct apply *a, const struct op *o, json_t **root)
{
	struct loc l;
	int rc;

	rc = loc_find(*root, o->path, o->pathlen, &l);
	if (rc == 0 && !l.parent)
		rc = fail(a, o->idx, PATCH_EFAILED,
			  "remove operation does not apply: path \"\" is the "
			  "whole document, which cannot be removed");
	else if (rc == PATCH_EFAILED || (rc == 0 && !loc_get(*root, &l)))
		rc = fail(a, o->idx, PATCH_EFAILED,
			  "remove operation does not apply: doc is missing "
			  "path: \"%.*s\": missing value",
			  PR(o->path, o->pathlen));
	else if (rc == 0)
		loc_remove(&l);
	loc_free(&l);
	return rc;
}

static int op_replace(struct apply *a, const struct op *o, json_t **root)
{
	struct loc l;
	size_t size = 0;
	int rc;

	rc = loc_find(*root, o->path, o->pathlen, &l);
	if (rc == PATCH_EFAILED || (rc == 0 && !loc_get(*root, &l)))
		rc = fail(a, o->idx, PATCH_EFAILED,
			  "replace operation does not apply: doc is missing "
			  "path: %.*s: missing value",
			  PR(o->path, o->pathlen));
	if (rc == 0)
		rc = check_depth(a, o, l.ntok, o->value, &size);
	if (rc == 0) {
		/* an existing object member or array element: remove it and
		 * insert the value at the same index */
		if (l.parent)
			loc_remove(&l);
		rc = loc_insert(root, &l, json_deep_copy(o->value));
	}
	loc_free(&l);
	return rc;
}

/* Find the value at o's "from" for move and copy (borrowed, in *v). */
static int op_from(struct apply *a, const struct op *o, json_t *root,
		   struct loc *l, json_t **v)
{
	int rc;

	*v = NULL;
	rc = loc_find(root, o->from, o->fromlen, l);
	if (rc == 0)
		*v = loc_get(root, l);
	if (rc == PATCH_EFAILED || (rc == 0 && !*v))
		return fail(a, o->idx, PATCH_EFAILED,
			    o->kind == OP_COPY
				? "%s operation does not apply: doc is "
				  "missing from path: \"%.*s\": missing value"
				: "%s operation does not apply: doc is "
				  "missing from path: %.*s: missing value",
			    op_names[o->kind], PR(o->from, o->fromlen));
	return rc;
}

static int op_move(struct apply *a, const struct op *o, json_t **root)
{
	struct loc from, to = {0};
	json_t *v;
	size_t size = 0, ntok;
	int rc, found;

	rc = op_from(a, o, *root, &from, &v);
	if (rc)
		goto out;
	if (o->fromlen == o->pathlen &&
	    memcmp(o->from, o->path, o->pathlen) == 0)
		goto out; /* to where it is */
	if (o->pathlen > o->fromlen && o->path[o->fromlen] == '/' &&
	    memcmp(o->from, o->path, o->fromlen) == 0) {
		rc = fail(a, o->idx, PATCH_EFAILED,
			  "move operation does not apply: \"from\" %.*s is a "
			  "prefix of \"path\" %.*s: a value cannot be moved "
			  "into one of its children",
			  PR(o->from, o->fromlen), PR(o->path, o->pathlen));
		goto out;
	}
	/* from.parent is set: "" is a prefix of every other path. Deeper
	 * than it was, the value must still fit under PATCH_MAX_DEPTH. */
	ntok = ptr_ntok(o->path, o->pathlen);
	if (ntok > from.ntok) {
		rc = check_depth(a, o, ntok, v, &size);
		if (rc == 0)
			rc = charge(a, o, size);
		if (rc)
			goto out;
	}
	json_incref(v);
	loc_remove(&from);
	found = loc_find(*root, o->path, o->pathlen, &to);
	rc = op_insert(a, o, root, v, &to, found);
out:
	loc_free(&from);
	loc_free(&to);
	return rc;
}

static int op_copy(struct apply *a, const struct op *o, json_t **root)
{
	struct loc from, to = {0};
	json_t *v;
	size_t size = 0;
	int rc, found;

	rc = op_from(a, o, *root, &from, &v);
	if (rc)
		goto out;
	rc = check_depth(a, o, ptr_ntok(o->path, o->pathlen), v, &size);
	if (rc == 0)
		rc = charge(a, o, size);
	if (rc)
		goto out;
	/* copy before looking up the destination: it may be inside v */
	v = json_deep_copy(v);
	if (!v) {
		rc = PATCH_ENOMEM;
		goto out;
	}
	found = loc_find(*root, o->path, o->pathlen, &to);
	rc = op_insert(a, o, root, v, &to, found);
out:
	loc_free(&from);
	loc_free(&to);
	return rc;
}

static int op_test(struct apply *a, const struct op *o, json_t **root)
{
	struct loc l;
	json_t *v = NULL;
	int rc;

	rc = loc_find(*root, o->path, o->pathlen, &l);
	if (rc == 0)
		v = loc_get(*root, &l);
	if (rc == PATCH_EFAILED || (rc == 0 && !v))
		rc = fail(a, o->idx, PATCH_EFAILED,
			  "test operation does not apply: doc is missing "
			  "path: %.*s: missing value",
			  PR(o->path, o->pathlen));
	else if (rc == 0 && !value_equal(v, o->value, 0))
		rc = fail(a, o->idx, PATCH_EFAILED,
			  "testing value %.*s failed: test failed",
			  PR(o->path, o->pathlen));
	loc_free(&l);
	return rc;
}

static int (*const op_apply[])(struct apply *, const struct op *, json_t **) = {
    [OP_ADD] = op_add,	 [OP_REMOVE] = op_remove, [OP_REPLACE] = op_replace,
    [OP_MOVE] = op_move, [OP_COPY] = op_copy,	  [OP_TEST] = op_test,
};

int patch_json(const json_t *doc, const json_t *ops, json_t **out, char *err,
	       size_t errlen)
{
	struct apply a = {
	    .err = err, .errlen = errlen, .budget = PATCH_MAX_COPY_BYTES};
	struct op o;
	json_t *root = NULL;
	size_t i, n;
	int rc;

	*out = NULL;
	if (err && errlen > 0)
		err[0] = '\0';
	if (!json_is_array(ops)) {
		if (err && errlen > 0)
			snprintf(err, errlen,
				 "invalid JSON patch: want an array of "
				 "operations, like [{\"op\":\"add\",\"path\":"
				 "\"/a\",\"value\":1}]");
		return PATCH_EINVAL;
	}
	n = json_array_size(ops);
	if (n > PATCH_MAX_OPS) {
		if (err && errlen > 0)
			snprintf(err, errlen,
				 "The allowed maximum operations in a JSON "
				 "patch is %d, got %zu",
				 PATCH_MAX_OPS, n);
		return PATCH_ETOOBIG;
	}
	/* a malformed operation anywhere is a bad request, even if an
	 * earlier one would fail to apply */
	for (i = 0; i < n; i++) {
		rc = op_parse(&a, json_array_get(ops, i), i, &o);
		if (rc)
			return rc;
	}
	if (!doc) {
		if (err && errlen > 0)
			snprintf(err, errlen, "no document to patch");
		return PATCH_EINVAL;
	}
	root = json_deep_copy(doc);
	if (!root)
		return PATCH_ENOMEM;
	for (i = 0; i < n; i++) {
		op_parse(&a, json_array_get(ops, i), i, &o);
		rc = op_apply[o.kind](&a, &o, &root);
		if (rc)
			goto err;
	}
	*out = root;
	return 0;
err:
	if (rc == PATCH_ENOMEM)
		fail(&a, i, rc, "out of memory");
	json_decref(root);
	return rc;
}
