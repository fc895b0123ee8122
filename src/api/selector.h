/*
 * selector.h -- Kubernetes label selectors and field selectors.
 *
 * A label selector picks objects by their metadata.labels. It comes in two
 * forms, and both end up as the same `sel`:
 *
 *   - the string form of the labelSelector query parameter, parsed by
 *     sel_parse:  "app=web,tier!=db,env in (prod,staging),!canary,gen>3"
 *   - the metav1.LabelSelector object of a Policy, Route or Deployment-like
 *     spec, converted by sel_from_json:
 *       {"matchLabels": {"app": "web"},
 *        "matchExpressions": [{"key": "env", "operator": "In",
 *                              "values": ["prod"]}]}
 *
 * A selector is a conjunction of requirements, each one a key, an operator
 * and a set of values. The semantics, the validation of keys and values and
 * the error messages are those of k8s.io/apimachinery/pkg/labels and
 * metav1.LabelSelectorAsSelector, so what kubectl accepts we accept and what
 * the apiserver refuses we refuse with the same words:
 *
 *   unable to parse requirement: values[0][app]: Invalid value: "a b": a
 *   valid label must be an empty string or consist of ...
 *
 * A field selector (the fieldSelector query parameter) is simpler: a
 * conjunction of `field=value`, `field==value` and `field!=value` terms, as
 * in k8s.io/apimachinery/pkg/fields. A value may contain `\,`, `\=` and
 * `\\` escapes. Which field names a resource supports is the caller's
 * business (fsel_check_fields).
 *
 * Untrusted input: both parsers run in time linear in the input (plus a
 * sort of each requirement's values), never recurse, and refuse an input
 * longer than SEL_MAX_LEN bytes. Input stops at the first NUL.
 *
 * Errors: the functions that can fail return 0 or a negative errno
 * (-EINVAL for bad input, -ENOMEM), and write a message (truncated to
 * errlen, always NUL-terminated when errlen > 0) to err, which may be NULL.
 *
 * Memory: the parsers allocate the selector; the caller frees it with
 * sel_free / fsel_free. Every json_t argument is borrowed; nothing here
 * keeps a reference after it returns. A selector is immutable once built,
 * so several threads may match against one selector at once.
 */
#ifndef SIGNALBOX_API_SELECTOR_H
#define SIGNALBOX_API_SELECTOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The longest selector string either parser accepts, in bytes. */
#define SEL_MAX_LEN (64 * 1024)

typedef struct sel sel;
typedef struct fsel fsel;

/* Prototypes */

/*
 * Parse the string form of a label selector. NULL and "" give the selector
 * that matches everything. On success *out is a new selector (caller frees
 * with sel_free) and 0 is returned; on error *out is NULL.
 */
int sel_parse(const char *text, sel **out, char *err, size_t errlen);

/*
 * Convert a metav1.LabelSelector object (borrowed). As in Kubernetes:
 *   - NULL or JSON null (no selector at all) gives a selector that matches
 *     NOTHING;
 *   - {} (no matchLabels, no matchExpressions) matches EVERYTHING;
 *   - In/NotIn need at least one value, Exists/DoesNotExist none, and the
 *     keys and values must be valid label keys and values.
 */
int sel_from_json(const json_t *label_selector, sel **out, char *err,
		  size_t errlen);

/*
 * Whether the labels (borrowed JSON object of string values; NULL or a
 * non-object counts as no labels) satisfy every requirement of s. A label
 * whose value is not a string counts as absent. A NULL s matches nothing.
 */
bool sel_match(const sel *s, const json_t *labels);

/* As sel_match, with the labels behind a lookup: get(key, arg) returns the
 * value of label key (borrowed) or NULL when there is none. */
bool sel_match_fn(const sel *s, const char *(*get)(const char *key, void *arg),
		  void *arg);

/* Whether s places no restriction (matches everything). The nothing
 * selector of sel_from_json(NULL) is not empty. */
bool sel_empty(const sel *s);

/*
 * The canonical string form: requirements sorted by key, set values
 * sorted, as labels.Selector.String() prints it. sel_parse of the result
 * gives an equivalent selector. The everything and nothing selectors both
 * print as "". Returns a new string the caller frees, NULL on OOM.
 */
char *sel_string(const sel *s);

/* Free s. NULL is fine. */
void sel_free(sel *s);

/*
 * Parse a field selector. NULL and "" give the selector that matches
 * everything. On success *out is a new selector (fsel_free) and 0 is
 * returned; on error *out is NULL and the message is Kubernetes', e.g.
 * "invalid selector: 'a'; can't understand 'a'".
 */
int fsel_parse(const char *text, fsel **out, char *err, size_t errlen);

/*
 * Check that every field f names is in supported (a NULL-terminated list of
 * field names, borrowed). Returns 0, or -EINVAL with the message
 * "field label not supported: <name>" for the first one that is not.
 */
int fsel_check_fields(const fsel *f, const char *const *supported, char *err,
		      size_t errlen);

/*
 * Whether an object satisfies every term of f. get(field, arg) returns the
 * object's value for the field (a string that must stay valid until the
 * next call of get or until fsel_match returns), or NULL when the object
 * has no such field, which is taken as "". A NULL f matches everything.
 */
bool fsel_match(const fsel *f, const char *(*get)(const char *field, void *arg),
		void *arg);

/* Whether f places no restriction. */
bool fsel_empty(const fsel *f);

/* The canonical string form (terms sorted, values escaped), new string the
 * caller frees, NULL on OOM. */
char *fsel_string(const fsel *f);

/* Free f. NULL is fine. */
void fsel_free(fsel *f);

#endif
