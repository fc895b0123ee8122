/*
 * patch.h -- the two patch formats a PATCH request may carry, applied to a
 * JSON document the way kube-apiserver applies them.
 *
 *   application/merge-patch+json  RFC 7386 JSON merge patch: patch_merge()
 *   application/json-patch+json   RFC 6902 JSON patch:       patch_json()
 *
 * Both work on jansson values and never modify their inputs: the result is
 * a new document, so a failed patch leaves the stored object untouched and
 * the caller decides what to write back.
 *
 * Strategic merge patch (application/strategic-merge-patch+json) is not
 * here, on purpose. It needs the Go struct tags of the built-in types
 * (patchStrategy, patchMergeKey) to know that, say, containers merge by
 * "name". Custom resources have no such tags, so kube-apiserver refuses a
 * strategic merge patch on them with 415 Unsupported Media Type, and the API
 * layer does the same. kubectl falls back to a merge patch on that answer.
 *
 * Patches come from untrusted clients. Nothing here crashes or recurses
 * without bound on hostile input: the nesting of anything this module
 * builds is capped at PATCH_MAX_DEPTH, a JSON patch has at most
 * PATCH_MAX_OPS operations, and the data its copy (and deepening move)
 * operations may duplicate or walk is capped at PATCH_MAX_COPY_BYTES. Parse
 * patch bodies with JSON_REJECT_DUPLICATES: RFC 6902 A.13 requires an
 * operation with two "op" members to be refused, and jansson would
 * otherwise keep the last one silently.
 *
 * Errors: 0 or a negative PATCH_E* code, with a message in the caller's
 * buffer that says what was wrong and where: the operation's index and its
 * path, in the words of evanphx/json-patch (which kubectl users see from
 * kube-apiserver), e.g.
 *   op 1: remove operation does not apply: doc is missing path:
 *   "/spec/foo": missing value
 *
 * Memory: every json_t argument is borrowed. Results are new references the
 * caller owns (json_decref), except patch_json_pointer_get, which returns a
 * reference borrowed from its doc.
 */
#ifndef SIGNALBOX_PATCH_H
#define SIGNALBOX_PATCH_H

#include <stddef.h>

#include <jansson.h>

enum {
	PATCH_OK = 0,
	PATCH_EINVAL = -1,  /* the patch itself is malformed: answer 400 */
	PATCH_EFAILED = -2, /* a well-formed operation does not apply: 422 */
	PATCH_ENOENT = -3,  /* patch_json_pointer_get: no value there */
	PATCH_ETOOBIG = -4, /* a limit below was exceeded: 413 */
	PATCH_ENOMEM = -5,  /* out of memory */
};

/* kube-apiserver's maxJSONPatchOperations. */
#define PATCH_MAX_OPS 10000
/* Nesting of arrays and objects, as jansson's parser counts it: a result
 * can always be dumped and parsed again. */
#define PATCH_MAX_DEPTH 2048
/* About how much JSON text the copy operations of one patch may duplicate
 * in total (moves that take a value deeper are charged too: they must
 * measure it). kube-apiserver caps copies at 3 MiB (JSONPatchMaxCopyBytes)
 * for the same reason: copying a copy doubles it. */
#define PATCH_MAX_COPY_BYTES (3 * 1024 * 1024)

/* Prototypes */

/* RFC 7386: apply the merge patch to doc. null members delete, object
 * members merge recursively, anything else replaces; a patch that is not an
 * object replaces the whole document. doc may be NULL (no document).
 * Returns a NEW document; doc and patch are borrowed. NULL only on OOM. */
json_t *patch_merge(const json_t *doc, const json_t *patch);

/* RFC 6902: apply the operations (add, remove, replace, move, copy, test)
 * in order to a copy of doc. On success returns 0 and stores a NEW document
 * in *out. On failure returns PATCH_EINVAL (ops is malformed: not an array,
 * an operation that is not an object, "op" missing or unknown, "path" or
 * "from" missing, not a string or not a JSON pointer, "value" missing for
 * add, replace or test; or doc is NULL), PATCH_EFAILED (an operation cannot
 * apply: its path does not exist, an array index is out of range, a test does
 * not match, a move into its own child), PATCH_ETOOBIG or PATCH_ENOMEM, leaves
 * *out NULL and writes the reason into err (if err is not NULL and errlen > 0).
 * doc and ops are borrowed. */
int patch_json(const json_t *doc, const json_t *ops, json_t **out, char *err,
	       size_t errlen);

/* RFC 6901: find the value the pointer names in doc ("" is doc itself, ~1
 * stands for '/' and ~0 for '~' in a token; "-" never names a value).
 * Returns 0 and a BORROWED reference into doc in *out_borrowed,
 * PATCH_ENOENT if there is no value there, or PATCH_EINVAL if pointer is
 * not a JSON pointer. *out_borrowed is NULL on failure. */
int patch_json_pointer_get(const json_t *doc, const char *pointer,
			   json_t **out_borrowed);

/* A static name for a PATCH_E* code. */
const char *patch_strerror(int code);

#endif
