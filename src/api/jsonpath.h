/*
 * jsonpath.h -- the Kubernetes JSONPath dialect (k8s.io/client-go/util/
 * jsonpath), as CRD additionalPrinterColumns and `kubectl get -o jsonpath`
 * use it.
 *
 * An expression is parsed once (jp_parse) and evaluated against many
 * documents (jp_eval). What is understood, as in Kubernetes:
 *
 *   .spec.replicas                        fields; `\.` escapes a dot
 *   .metadata.labels.app\.kubernetes\.io/name
 *   .spec.items[0]  [-1]  [1:3]  [::2]  [*]   index, slice, all
 *   .spec.items[*].name  .spec.*              wildcard
 *   ..name                                recursive descent
 *   .status.conditions[?(@.type=="Ready")].status
 *   [?(@.x)]                              existence filter
 *   [?(@.n >= 3)]  == != < > <= >=        on strings, numbers, booleans
 *   ['spec', 'status']  [0,2]             unions
 *   $  @                                  the current object (both)
 *
 * The expression may come with its braces ("{.spec.replicas}", which is
 * then parsed as a kubectl template: text outside braces is literal text,
 * and each {action} adds its values in turn) or without them
 * (".spec.replicas", as a printer column's jsonPath is written; it is
 * parsed as "{" expr "}"). The rule: an expression that contains a '{' is
 * a template. "" (and "{}") yields the document itself.
 *
 * Quirks kept on purpose, because they are Kubernetes':
 *   - ['a.b'] means .a.b (the quoted text is parsed as a path); a key that
 *     contains a dot is written .a\.b or ['a\.b'];
 *   - a missing field gives no value, not an error (AllowMissingKeys, as
 *     the printer uses it);
 *   - an evaluation error (an index out of range, a filter or an index
 *     applied to a non-array, comparing values of different types,
 *     `range`/`end` or another bare identifier) gives no value at all:
 *     jp_eval returns an empty array, where kubectl shows an empty cell.
 *   - ..  yields every non-empty object, array and string below the
 *     current value, in document order, the value itself first.
 *
 * Deviation: an integer and a real compare by value (Kubernetes refuses to
 * compare int64 with float64).
 *
 * Untrusted input: expressions longer than JP_MAX_LEN bytes or nested
 * (filters in filters, unions) deeper than JP_MAX_DEPTH are refused;
 * evaluation does not recurse on the document's depth.
 *
 * Memory: jp_parse allocates; jp_free frees. jp_eval borrows the document
 * and returns a new array that holds a reference to each matched value
 * (so it changes the reference counts of values inside the document: do
 * not evaluate against one document from two threads at once). A parsed
 * jp is not modified by jp_eval; several threads may share it.
 */
#ifndef SIGNALBOX_API_JSONPATH_H
#define SIGNALBOX_API_JSONPATH_H

#include <jansson.h>
#include <stddef.h>

#define JP_MAX_LEN   16384
#define JP_MAX_DEPTH 32

typedef struct jp jp;

/* Prototypes */

/*
 * Parse expr. Returns 0 and a new *out (jp_free), or -EINVAL with the
 * Kubernetes parser's message in err (e.g. "unterminated filter",
 * "unrecognized character in action: U+0025 '%'"), or -ENOMEM. err may be
 * NULL; the message is truncated to errlen.
 */
int jp_parse(const char *expr, jp **out, char *err, size_t errlen);

/*
 * Evaluate p against doc (borrowed; NULL is taken as JSON null). Returns a
 * NEW JSON array of the matched values, in order (the array owns a
 * reference to each); an empty array when nothing matches or evaluation
 * fails; NULL only when out of memory.
 */
json_t *jp_eval(const jp *p, const json_t *doc);

/* Free p. NULL is fine. */
void jp_free(jp *p);

#endif
