/*
 * schema.h -- a CustomResourceDefinition's openAPIV3Schema
 * (apiextensions.k8s.io/v1), enforced on custom resources the way
 * kube-apiserver does it.
 *
 * A schema is compiled once per CRD version (every `pattern` precompiled
 * with PCRE2, every `default` copied and pruned) and then applied to each
 * object written through the API, in kube-apiserver's order:
 *
 *   1. prune: drop fields the schema does not know (not in `properties`,
 *      no `additionalProperties`, no `x-kubernetes-preserve-unknown-fields`).
 *      apiVersion, kind and metadata of the object (and of every
 *      x-kubernetes-embedded-resource) are kept; metadata is not looked at.
 *   2. default: fill `default`s for absent fields and for nulls in fields
 *      that are not `nullable`.
 *   3. validate: every OpenAPI keyword kube-apiserver checks, then
 *      x-kubernetes-list-type and embedded resources. Each failure becomes
 *      one metav1.StatusCause, with Kubernetes' reason, message and field
 *      path ("spec.endpoints[0].port", map keys as "spec.labels[key]").
 *
 * x-kubernetes-validations (CEL) rules are accepted and ignored.
 * A compiled schema is immutable: schema_process may run on it from many
 * threads at once.
 */
#ifndef SIGNALBOX_REGISTRY_SCHEMA_H
#define SIGNALBOX_REGISTRY_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

typedef struct schema schema;

/* Flags of schema_process. */
#define SCHEMA_NO_DEFAULT 0x1u /* skip defaulting (e.g. status updates) */
#define SCHEMA_NO_PRUNE	  0x2u /* skip pruning: unknown fields stay */

/* Nesting deeper than this (in the schema, or in an object where the
 * schema follows it) is refused rather than recursed into. */
#define SCHEMA_MAX_DEPTH 128

/* Prototypes */

/*
 * Compile openapi_v3_schema (borrowed; not referenced after return: what is
 * kept is copied or has its own reference) into *out, which the caller
 * frees with schema_free. Returns 0, -EINVAL with a message in err (naming
 * the schema path, e.g. "openAPIV3Schema.properties[spec].pattern: ...") if
 * the schema is not usable, or -ENOMEM.
 */
int schema_compile(const json_t *openapi_v3_schema, schema **out, char *err,
		   size_t errlen);

/*
 * Prune, default and validate obj (borrowed, modified in place) against s.
 * Appends one cause object {"reason", "message", "field"} (new references,
 * owned by the array) to causes (borrowed JSON array) per failure, and, if
 * unknown (borrowed JSON array) is not NULL, the path of every pruned field
 * as a string (".spec.foo", ".spec.endpoints[0].bar").
 * Returns the number of causes added (0: valid) or -ENOMEM.
 */
int schema_process(const schema *s, json_t *obj, unsigned flags, json_t *causes,
		   json_t *unknown);

/*
 * A light check that openapi_v3_schema (borrowed) is structural enough to
 * serve: `type: object` at the root, and a type on every properties,
 * items and additionalProperties schema unless it has
 * x-kubernetes-int-or-string or x-kubernetes-preserve-unknown-fields.
 * On false, err holds a message naming the path, for a 422.
 */
bool schema_is_structural(const json_t *openapi_v3_schema, char *err,
			  size_t errlen);

/* Free a compiled schema. NULL is fine. */
void schema_free(schema *s);

#endif
