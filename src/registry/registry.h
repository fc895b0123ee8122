/*
 * registry.h -- the types the API serves, each described the way a
 * CustomResourceDefinition describes one.
 *
 * Every type, built-in or custom, enters through reg_add_crd() from a CRD
 * object (apiextensions.k8s.io/v1). The built-in types (Namespace,
 * CustomResourceDefinition, Lease, and later RBAC and the mesh kinds) are
 * CRD documents compiled into the binary (builtin.c), so they go through
 * exactly the code path a user's CRD does: names, scope, versions, schema
 * (validate, default, prune) and printer columns.
 *
 * The registry is used from the API server's event loop only: no locking.
 */
#ifndef SIGNALBOX_REGISTRY_H
#define SIGNALBOX_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/jsonpath.h"
#include "registry/schema.h"

typedef struct reg_column {
	char *name;
	char *type;	   /* integer, number, string, boolean, date */
	char *format;	   /* may be NULL */
	char *description; /* may be NULL */
	int priority;	   /* 0: shown by default; >0: only with -o wide */
	char *json_path;
	jp *path; /* compiled json_path; NULL if it did not compile */
} reg_column;

typedef struct reg_version {
	char *name; /* "v1", "v1alpha1" ... */
	bool served;
	bool storage;
	json_t *openapi; /* the version's openAPIV3Schema (owned), or NULL */
	schema *schema;	 /* compiled from openapi, or NULL: accept anything */
	bool status;	 /* has the status subresource */
	/* The scale subresource: NULL when absent. */
	char *scale_spec_path;	 /* e.g. ".spec.replicas" */
	char *scale_status_path; /* e.g. ".status.replicas" */
	char *scale_selector_path;
	reg_column *cols;
	size_t ncols;
} reg_version;

typedef struct reg_type {
	char *group; /* "" for the core group */
	char *plural;
	char *singular;
	char *kind;
	char *list_kind;
	char **short_names; /* nshort entries */
	size_t nshort;
	char **categories;
	size_t ncategories;
	bool namespaced;
	reg_version *versions; /* nversions, in the CRD's order */
	size_t nversions;
	char *crd_name;	  /* "<plural>.<group>" */
	bool builtin;	  /* compiled in; its CRD object is not stored */
	bool create_only; /* a review: answered on create, never stored */
	char *key_prefix; /* "/registry/<group or core>/<plural>/" */
	json_t *crd;	  /* the CRD object it came from (owned) */
} reg_type;

typedef struct registry registry;

/* A new registry holding the built-in types. NULL on failure (with a
 * message in err: a built-in definition that does not compile is a bug). */
registry *reg_new(char *err, size_t errlen);
void reg_free(registry *r);

/* Check a CRD object (borrowed) for what kube-apiserver requires: names,
 * scope, versions (exactly one storage version), schemas that compile.
 * Appends one Kubernetes cause {reason, message, field} per problem to
 * causes (borrowed array). Returns the number of causes added. */
size_t reg_check_crd(const json_t *crd, json_t *causes);

/* Add (or replace, by CRD name) the type described by crd (borrowed; the
 * registry keeps its own reference). The CRD must pass reg_check_crd.
 * Returns 0, or -1 with a message in err. */
int reg_add_crd(registry *r, const json_t *crd, bool builtin, char *err,
		size_t errlen);

/* Remove the type added from the CRD named crd_name ("<plural>.<group>").
 * Built-in types cannot be removed. */
void reg_remove_crd(registry *r, const char *crd_name);

/* The type serving group/version/plural, with the version in *v (may be
 * NULL). version NULL matches any served version. NULL if not served. */
const reg_type *reg_find(const registry *r, const char *group,
			 const char *version, const char *plural,
			 const reg_version **v);

/* The type with this CRD name, or NULL. */
const reg_type *reg_find_crd(const registry *r, const char *crd_name);

/* The type whose key_prefix starts key, or NULL. */
const reg_type *reg_find_key(const registry *r, const char *key);

/* Iterate: the i-th type, i < reg_count(r). Order is stable between
 * changes: built-ins first, then by CRD name. */
size_t reg_count(const registry *r);
const reg_type *reg_at(const registry *r, size_t i);

/* The storage version of t. */
const reg_version *reg_storage_version(const reg_type *t);

/* Bumped on every add or remove: lets discovery and OpenAPI documents be
 * cached and rebuilt only when the set of types changes. */
uint64_t reg_generation(const registry *r);

#endif
