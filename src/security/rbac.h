/*
 * rbac.h -- Kubernetes RBAC (rbac.authorization.k8s.io/v1), evaluation only.
 *
 * This module decides; it does no I/O. The API server feeds it every Role,
 * ClusterRole, RoleBinding and ClusterRoleBinding it stores (rbac_set on each
 * add, update and delete, bootstrap objects included), and asks it:
 *
 *   - rbac_allowed:   may this user do this request?        (the authorizer)
 *   - rbac_may_write: may this user write this RBAC object? (escalation check)
 *   - rbac_rules_for: what may this user do in a namespace? (SelfSubjectRules
 *                     Review)
 *
 * The semantics are those of k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac
 * (RuleAllows, VisitRulesFor, appliesTo), pkg/apis/rbac/v1 helpers
 * (VerbMatches, ResourceMatches, NonResourceURLMatches...), pkg/registry/rbac
 * (the escalation checks of the role and binding storages, Covers and
 * ConfirmNoEscalation) and the clusterrole aggregation controller:
 *
 *   - A rule matches a resource request when its verbs, apiGroups,
 *     resources and resourceNames (empty: any) all match. A resource is
 *     "*", "res", "res/sub", or "*" + "/sub" for that subresource of any
 *     resource. A rule with resourceNames never matches a request without
 *     a name (create, list, watch, deletecollection). nonResourceURLs
 *     match a path exactly, or by prefix when they end in a '*'.
 *   - ClusterRoleBindings grant everywhere, RoleBindings only in their own
 *     namespace (referencing a Role of that namespace or a ClusterRole).
 *     A ServiceAccount subject matches the user name
 *     "system:serviceaccount:NS:NAME" (NS defaults to the binding's); the
 *     groups "system:serviceaccounts[:NS]" are the authenticator's business,
 *     they reach RBAC in rbac_user.groups like any group.
 *   - A ClusterRole with an aggregationRule has exactly the union of the
 *     (effective) rules of the other ClusterRoles whose metadata.labels
 *     match one of its clusterRoleSelectors; its own "rules" are ignored,
 *     as the aggregation controller overwrites them. It is recomputed on
 *     every rbac_set of a ClusterRole, to the least fixed point.
 *
 * Request attributes are those of the apiserver's RequestInfo. Note the
 * Kubernetes rule for namespaces: a request on /api/v1/namespaces/NAME has
 * ns = name = NAME (so a RoleBinding in NAME granting "get namespaces" lets
 * one read that namespace), while a list of namespaces has ns "".
 *
 * Ownership: rbac_set borrows obj and copies what it keeps. Strings and
 * user/attrs structs are borrowed for the duration of each call. Functions
 * returning json_t return a NEW reference the caller json_decref()s.
 *
 * Concurrency: rbac_set modifies; rbac_allowed, rbac_may_write and
 * rbac_rules_for only read (const), so many readers may run at once, but
 * the caller serializes them against rbac_set (e.g. with a rwlock).
 *
 * Label selectors come from api/selector.h (sel_from_json, sel_match):
 * link src/api/selector.c with this file.
 *
 * Messages (reason, err) are truncated to their buffer's length and always
 * NUL-terminated when the length is > 0; the buffer may be NULL.
 */
#ifndef SIGNALBOX_SECURITY_RBAC_H
#define SIGNALBOX_SECURITY_RBAC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define RBAC_GROUP "rbac.authorization.k8s.io"

/* Who asks: the authenticated user. All pointers borrowed. */
typedef struct rbac_user {
	const char *name;
	const char *const *groups; /* e.g. "system:authenticated" */
	size_t ngroups;
} rbac_user;

/*
 * What is asked: the authorizer attributes of one request. NULL strings
 * count as "". For a resource request, group/resource/subresource/name/ns
 * are those of the RequestInfo (ns "" for cluster-scoped resources). For a
 * non-resource request, path is the URL path and verb the lower-case HTTP
 * method (get, post, put, patch, delete); ns is ignored, so only
 * ClusterRoleBindings apply, as in Kubernetes.
 */
typedef struct rbac_attrs {
	bool resource_request;
	const char *verb;
	const char *group;
	const char *resource;
	const char *subresource;
	const char *name;
	const char *ns;
	const char *path;
} rbac_attrs;

typedef struct rbac rbac;

/* Prototypes */

/* A new, empty policy (denies everything). NULL on OOM. Free with
 * rbac_free. */
rbac *rbac_new(void);

/* Free r and everything it holds. NULL is fine. */
void rbac_free(rbac *r);

/*
 * Add or replace (same kind, ns, name) a Role, ClusterRole, RoleBinding or
 * ClusterRoleBinding, or remove it when obj is NULL (removing an absent
 * object is not an error). kind is the object's kind; ns must be set for
 * Role and RoleBinding and NULL or "" for the cluster kinds; name is the
 * object's metadata.name. obj is borrowed: the fields that matter (rules,
 * metadata.labels, aggregationRule, roleRef, subjects) are copied.
 *
 * Returns 0; -EINVAL with a message naming the field (e.g.
 * "rules[0].verbs[1]: must be a string") when the object has the wrong
 * shape, leaving any previous object in place; or -ENOMEM. Only the shape
 * is checked here: the full validation of the API (verbs non-empty, roleRef
 * immutable...) belongs to the API layer.
 */
int rbac_set(rbac *r, const char *kind, const char *ns, const char *name,
	     const json_t *obj, char *err, size_t errlen);

/*
 * Decide whether u may do a. On allow, reason gets e.g.
 *   RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole
 *   "cluster-admin" to Group "system:masters"
 * On deny, as in Kubernetes, reason is "" unless a binding could not be
 * resolved, e.g.
 *   RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found
 * (the API server appends it to its 403 message when non-empty).
 */
bool rbac_allowed(const rbac *r, const rbac_user *u, const rbac_attrs *a,
		  char *reason, size_t len);

/*
 * Escalation prevention: may u create or update the RBAC object obj
 * (borrowed) of the given kind in ns ("" or NULL for cluster kinds)? This
 * is only the extra check of k8s's RBAC storage; the ordinary "may u
 * create/update roles" authorization is rbac_allowed's.
 *
 *   - members of system:masters always may;
 *   - Role/ClusterRole: allowed when u holds the "escalate" verb on
 *     roles/clusterroles (name: the object's when it already exists here,
 *     i.e. an update, else "" as for a create), otherwise u must already
 *     hold every permission of its rules in ns (ConfirmNoEscalation);
 *     setting or changing an aggregationRule needs full authority (* on
 *     everything and on every URL);
 *   - RoleBinding/ClusterRoleBinding: allowed when u holds "bind" on the
 *     referenced role (name = roleRef.name) in ns, otherwise u must hold
 *     every permission of the referenced role in ns.
 *
 * On false, err gets k8s's message, e.g.
 *   roles.rbac.authorization.k8s.io "r" is forbidden: user "alice"
 *   (groups=["g"]) is attempting to grant RBAC permissions not currently
 *   held:\n{APIGroups:[""], Resources:["pods"], Verbs:["get"]}
 * or, for a malformed object or unknown roleRef, the matching error.
 * Unlike Kubernetes, rules that break down into more than 262144
 * (apiGroup, resource, verb, resourceName) combinations are refused ("too
 * many permissions to check"), and at most 256 missing lines are listed.
 */
bool rbac_may_write(const rbac *r, const rbac_user *u, const char *kind,
		    const char *ns, const json_t *obj, char *err,
		    size_t errlen);

/*
 * The rules u has in ns (ns "" or NULL: cluster-wide bindings only), as the
 * status of a SelfSubjectRulesReview: a NEW object
 *   {"resourceRules": [{"verbs", "apiGroups", "resources",
 *                       "resourceNames"}...],
 *    "nonResourceRules": [{"verbs", "nonResourceURLs"}...],
 *    "incomplete": false}
 * with "incomplete": true and "evaluationError" when a binding could not be
 * resolved. NULL on OOM.
 */
json_t *rbac_rules_for(const rbac *r, const rbac_user *u, const char *ns);

/*
 * The bootstrap policy: a NEW array of full objects (apiVersion
 * rbac.authorization.k8s.io/v1, kind, metadata with name, labels and the
 * "rbac.authorization.kubernetes.io/autoupdate": "true" annotation):
 * ClusterRoles cluster-admin, admin, edit, view (aggregated),
 * system:aggregate-to-{admin,edit,view} (k8s's rules, restricted to the
 * resources signalbox serves), system:discovery, system:basic-user,
 * system:public-info-viewer, and the ClusterRoleBindings cluster-admin
 * (system:masters), system:discovery and system:basic-user
 * (system:authenticated), system:public-info-viewer (system:authenticated,
 * system:unauthenticated). NULL on OOM.
 */
json_t *rbac_bootstrap(void);

#endif
