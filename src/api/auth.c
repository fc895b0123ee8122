/*
 * auth.c -- the security boundary in the request path:
 *
 *   authenticate  a verified client certificate (CN = user, O = groups), or
 *                 a bearer token (the --token-auth-file, or a token minted
 *                 by `signalbox token create`, stored only as its SHA-256),
 *                 or nobody: system:anonymous. A bad token is 401.
 *   authorize     Kubernetes RBAC over the roles and bindings in the cache
 *                 (src/security/rbac.c), plus the escalation checks on
 *                 writes of roles and bindings. A denial is 403.
 *   audit         one audit.k8s.io/v1 Event per stage, at the level the
 *                 policy gives, into the hash-chained log
 *                 (src/security/audit.c).
 *
 * It also answers the reviews (SelfSubjectAccessReview and friends), since
 * they are questions to the authorizer.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "api/api_int.h"
#include "security/audit.h"
#include "security/pki.h"
#include "security/rbac.h"
#include "security/token.h"

#define RBAC_PREFIX  "/registry/rbac.authorization.k8s.io/"
#define TOKEN_PREFIX "/registry/auth.signalbox.dev/tokens/"

struct api_auth {
	rbac *rbac;
	token_file *tokens;
	audit_log *audit;
	audit_policy *policy;
};

/* ---- identities ------------------------------------------------------ */

void api_identity_clear(api_identity *id)
{
	free(id->user);
	for (size_t i = 0; i < id->ngroups; i++)
		free(id->groups[i]);
	free(id->groups);
	memset(id, 0, sizeof(*id));
}

/* Set id to user and groups (copied), plus system:authenticated. */
static int identity_set(api_identity *id, const char *user,
			const char *const *groups, size_t n)
{
	api_identity_clear(id);
	id->user = strdup(user);
	id->groups = calloc(n + 2, sizeof(*id->groups)); /* NULL-ended */
	if (!id->user || !id->groups)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(groups[i], "system:authenticated"))
			continue;
		id->groups[id->ngroups] = strdup(groups[i]);
		if (!id->groups[id->ngroups++])
			return -1;
	}
	id->groups[id->ngroups] =
	    strdup(user && strcmp(user, "system:anonymous")
		       ? "system:authenticated"
		       : "system:unauthenticated");
	return id->groups[id->ngroups++] ? 0 : -1;
}

/* A minted token: the object named by the token's hash, not expired. */
static int minted_token(api_req *r, const char *token)
{
	char hash[65], *key, now[32];
	cache_obj *o;
	json_t *obj, *spec, *groups, *g;
	const char *exp, *user;
	const char **gv = NULL;
	size_t i, n = 0;
	int rc = -1;

	token_hash(token, hash);
	if (asprintf(&key, "%s%s", TOKEN_PREFIX, hash) < 0)
		return -1;
	o = cache_get(r->srv->cache, key);
	free(key);
	if (!o)
		return -1;
	obj = cache_obj_parse(o);
	spec = json_object_get(obj, "spec");
	user = json_string_value(json_object_get(spec, "user"));
	exp = json_string_value(json_object_get(spec, "expiresAt"));
	api_now(now);
	/* RFC 3339 in UTC with Z sorts as text. */
	if (!user || (exp && strcmp(exp, now) <= 0))
		goto out;
	/* A mesh peer's credential lives as long as its Peer. */
	if (json_object_get(spec, "peer") &&
	    !api_mesh_credential_valid(r->srv, json_object_get(spec, "peer")))
		goto out;
	groups = json_object_get(spec, "groups");
	gv = calloc(json_array_size(groups) + 1, sizeof(*gv));
	if (!gv)
		goto out;
	json_array_foreach(groups, i, g)
	{
		if (json_is_string(g))
			gv[n++] = json_string_value(g);
	}
	rc = identity_set(&r->id, user, gv, n);
out:
	free(gv);
	json_decref(obj);
	return rc;
}

bool api_authenticate(api_req *r)
{
	struct api_auth *au = r->srv->auth;
	struct evhttp_connection *c = evhttp_request_get_connection(r->ev);
	struct bufferevent *bev =
	    c ? evhttp_connection_get_bufferevent(c) : NULL;
	SSL *ssl =
	    bev && r->srv->ssl_ctx ? bufferevent_openssl_get_ssl(bev) : NULL;
	const char *hdr = evhttp_find_header(
	    evhttp_request_get_input_headers(r->ev), "Authorization");
	char token[TOKEN_BEARER_MAX];
	pki_identity pid;
	int rc;

	rc = token_from_header(hdr, token, sizeof token);
	if (rc == 0) {
		const token_entry *e =
		    au->tokens ? token_file_find(au->tokens, token) : NULL;
		bool ok = e ? identity_set(&r->id, e->user, e->groups,
					   e->ngroups) == 0
			    : minted_token(r, token) == 0;

		explicit_bzero(token, sizeof token);
		if (ok)
			return true;
	}
	if (rc != -ENOENT) {
		/* A bad token, never logged. */
		r->auth_failed = true;
		api_fail(r, 401, "Unauthorized", NULL, "Unauthorized");
		return false;
	}
	if (ssl) {
		rc = pki_peer_identity(ssl, &pid, NULL, 0);
		if (rc == 0) {
			rc = identity_set(&r->id, pid.user,
					  (const char *const *)pid.groups,
					  pid.ngroups);
			pki_identity_free(&pid);
			if (rc == 0)
				return true;
		}
		if (rc != -ENOENT) {
			r->auth_failed = true;
			api_fail(r, 401, "Unauthorized", NULL, "Unauthorized");
			return false;
		}
	}
	if (!r->srv->ssl_ctx) {
		/* --insecure-http: like kube-apiserver's old insecure port,
		 * whoever connects is an administrator (serve warns). */
		static const char *const masters[] = {"system:masters"};

		return identity_set(&r->id, "system:admin", masters, 1) == 0;
	}
	identity_set(&r->id, "system:anonymous", NULL, 0);
	r->id.anonymous = true;
	return true;
}

/* ---- authorization ----------------------------------------------------- */

static const char *const k8s_verbs[VERB_COUNT] = {
    [VERB_GET] = "get",	      [VERB_LIST] = "list",
    [VERB_WATCH] = "watch",   [VERB_CREATE] = "create",
    [VERB_UPDATE] = "update", [VERB_PATCH] = "patch",
    [VERB_DELETE] = "delete", [VERB_DELETECOLLECTION] = "deletecollection",
};

const char *api_k8s_verb(const api_req *r)
{
	static __thread char method[16];
	const char *m;

	if (r->verb != VERB_NONE)
		return k8s_verbs[r->verb];
	switch (r->method) {
	case EVHTTP_REQ_GET:
		m = "get";
		break;
	case EVHTTP_REQ_HEAD:
		m = "head";
		break;
	case EVHTTP_REQ_POST:
		m = "post";
		break;
	case EVHTTP_REQ_PUT:
		m = "put";
		break;
	case EVHTTP_REQ_PATCH:
		m = "patch";
		break;
	case EVHTTP_REQ_DELETE:
		m = "delete";
		break;
	default:
		m = "unknown";
	}
	snprintf(method, sizeof method, "%s", m);
	return method;
}

static void attrs_of(const api_req *r, rbac_attrs *a)
{
	memset(a, 0, sizeof(*a));
	a->verb = api_k8s_verb(r);
	if (r->plural) {
		a->resource_request = true;
		a->group = r->group;
		a->resource = r->plural;
		a->subresource = r->sub;
		a->name = r->name;
		a->ns = r->ns;
		/* As Kubernetes' RequestInfo: a namespace is in itself, so a
		 * RoleBinding there lets its user read it. */
		if (!a->ns && r->name && !*r->group &&
		    !strcmp(r->plural, "namespaces"))
			a->ns = r->name;
	} else {
		a->path = r->path;
		if (!strcmp(a->verb, "head"))
			a->verb = "get";
	}
}

static void forbid(api_req *r)
{
	const char *u = r->id.user ? r->id.user : "system:anonymous";
	char q[256], res[300];

	json_t *d;

	if (!r->plural) {
		api_fail(r, 403, "Forbidden", NULL,
			 "forbidden: User \"%s\" cannot %s path \"%s\"", u,
			 api_k8s_verb(r), r->path);
		return;
	}
	if (*r->group)
		snprintf(q, sizeof q, "%s.%s", r->plural, r->group);
	else
		snprintf(q, sizeof q, "%s", r->plural);
	snprintf(res, sizeof res, "%s%s%s", r->plural, r->sub ? "/" : "",
		 r->sub ? r->sub : "");
	d = json_pack("{s:s, s:s}", "group", r->group, "kind", r->plural);
	if (r->name)
		json_object_set_new(d, "name", json_string(r->name));
	if (r->ns ||
	    (r->name && !*r->group && !strcmp(r->plural, "namespaces")))
		api_fail(
		    r, 403, "Forbidden", d,
		    "%s%s%s%s is forbidden: User \"%s\" cannot %s resource "
		    "\"%s\" in API group \"%s\" in the namespace \"%s\"",
		    q, r->name ? " \"" : "", r->name ? r->name : "",
		    r->name ? "\"" : "", u, api_k8s_verb(r), res, r->group,
		    r->ns ? r->ns : r->name);
	else
		api_fail(
		    r, 403, "Forbidden", d,
		    "%s%s%s%s is forbidden: User \"%s\" cannot %s resource "
		    "\"%s\" in API group \"%s\" at the cluster scope",
		    q, r->name ? " \"" : "", r->name ? r->name : "",
		    r->name ? "\"" : "", u, api_k8s_verb(r), res, r->group);
}

static rbac_user user_of(const api_req *r)
{
	return (rbac_user){r->id.user, (const char *const *)r->id.groups,
			   r->id.ngroups};
}

#define PEER_USER "system:peer:"

/*
 * A mesh peer's credential (user system:peer:<ns>:<name>) may do exactly
 * this, on its own objects, and nothing else (docs/MESH.md): read and watch
 * its network map, read and update its status, read and renew its Lease.
 */
static bool peer_allowed(const api_req *r, const rbac_attrs *a, char *reason,
			 size_t len)
{
	const char *rest = r->id.user + strlen(PEER_USER);
	const char *colon = strchr(rest, ':');
	const char *verb = a->verb;
	bool own_ns, ok = false;
	char lease[300];

	if (!colon || !a->resource_request || !a->ns || !a->name) {
		snprintf(reason, len,
			 "a peer credential only reaches its "
			 "own network map, status and lease");
		return false;
	}
	own_ns = strlen(a->ns) == (size_t)(colon - rest) &&
		 !strncmp(a->ns, rest, (size_t)(colon - rest));
	snprintf(lease, sizeof lease, "peer-%s", colon + 1);
	if (own_ns && !strcmp(a->group, "mesh.signalbox.dev") &&
	    !strcmp(a->resource, "peers") && !strcmp(a->name, colon + 1) &&
	    a->subresource) {
		if (!strcmp(a->subresource, "networkmap"))
			ok = !strcmp(verb, "get") || !strcmp(verb, "watch");
		else if (!strcmp(a->subresource, "status"))
			ok = !strcmp(verb, "get") || !strcmp(verb, "update") ||
			     !strcmp(verb, "patch");
	} else if (own_ns && !strcmp(a->group, "coordination.k8s.io") &&
		   !strcmp(a->resource, "leases") && !a->subresource &&
		   !strcmp(a->name, lease)) {
		ok = !strcmp(verb, "get") || !strcmp(verb, "update") ||
		     !strcmp(verb, "patch");
	}
	snprintf(reason, len, "%s",
		 ok ? "a peer on its own objects"
		    : "a peer credential only reaches its own network map, "
		      "status and lease");
	return ok;
}

/* Enrolment carries its own credential, the setup key: anyone may try. */
static bool is_enrolment(const rbac_attrs *a)
{
	return a->resource_request && !strcmp(a->verb, "create") &&
	       !strcmp(a->group, "mesh.signalbox.dev") &&
	       !strcmp(a->resource, "enrollments") && !a->subresource;
}

bool api_authorize(api_req *r)
{
	rbac_attrs a;
	rbac_user u = user_of(r);
	char reason[512] = "";

	attrs_of(r, &a);
	if (r->id.user && !strncmp(r->id.user, PEER_USER, strlen(PEER_USER))) {
		r->allowed = peer_allowed(r, &a, reason, sizeof reason);
	} else if (is_enrolment(&a)) {
		r->allowed = true;
		snprintf(reason, sizeof reason,
			 "enrolment: the setup key is the credential");
	} else if (r->id.anonymous) {
		/* The rule, stricter than Kubernetes' default: without
		 * credentials only the health endpoints answer. */
		r->allowed =
		    !a.resource_request &&
		    (!strcmp(r->path, "/livez") || !strcmp(r->path, "/readyz"));
		snprintf(reason, sizeof reason, "%s",
			 r->allowed ? "public health endpoint"
				    : "anonymous requests may only reach "
				      "/livez and /readyz");
	} else {
		r->allowed = rbac_allowed(r->srv->auth->rbac, &u, &a, reason,
					  sizeof reason);
	}
	free(r->authz_reason);
	r->authz_reason = strdup(reason);
	if (r->allowed)
		return true;
	forbid(r); /* finishes (frees) r */
	return false;
}

bool api_authorize_write(api_req *r, const json_t *obj)
{
	rbac_user u = user_of(r);
	char err[2048];

	if (!r->type || strcmp(r->type->group, "rbac.authorization.k8s.io"))
		return true;
	if (rbac_may_write(r->srv->auth->rbac, &u, r->type->kind, r->ns, obj,
			   err, sizeof err))
		return true;
	api_fail(r, 403, "Forbidden", api_details(r, r->name), "%s", err);
	return false;
}

/* ---- reviews ------------------------------------------------------------- */

static void review_access(api_req *r, json_t *obj, bool self)
{
	json_t *spec = json_object_get(obj, "spec");
	json_t *ra = json_object_get(spec, "resourceAttributes");
	json_t *nra = json_object_get(spec, "nonResourceAttributes");
	rbac_attrs a;
	rbac_user u = user_of(r);
	api_identity other = {0};
	char reason[512] = "";
	bool allowed;

	if (!self) {
		const char **gv;
		json_t *g, *groups = json_object_get(spec, "groups");
		size_t i, n = 0;

		gv = calloc(json_array_size(groups) + 1, sizeof(*gv));
		json_array_foreach(groups, i, g)
		{
			if (gv && json_is_string(g))
				gv[n++] = json_string_value(g);
		}
		identity_set(&other,
			     json_string_value(json_object_get(spec, "user"))
				 ?: "",
			     gv, n);
		free(gv);
		u = (rbac_user){other.user, (const char *const *)other.groups,
				other.ngroups};
	}
	memset(&a, 0, sizeof a);
#define S(o, k) json_string_value(json_object_get(o, k))
	if (ra) {
		a.resource_request = true;
		a.verb = S(ra, "verb") ?: "";
		a.group = S(ra, "group") ?: "";
		a.resource = S(ra, "resource") ?: "";
		a.subresource = S(ra, "subresource") && *S(ra, "subresource")
				    ? S(ra, "subresource")
				    : NULL;
		a.name = S(ra, "name") && *S(ra, "name") ? S(ra, "name") : NULL;
		a.ns = S(ra, "namespace") && *S(ra, "namespace")
			   ? S(ra, "namespace")
			   : r->ns;
	} else {
		a.verb = S(nra, "verb") ?: "";
		a.path = S(nra, "path") ?: "";
	}
#undef S
	allowed =
	    rbac_allowed(r->srv->auth->rbac, &u, &a, reason, sizeof reason);
	api_identity_clear(&other);
	json_object_set_new(
	    obj, "status",
	    json_pack("{s:b, s:s}", "allowed", allowed, "reason", reason));
	api_reply_json(r, 201, json_incref(obj));
}

void api_review(api_req *r)
{
	json_t *obj;
	rbac_user u = user_of(r);
	char av[300];

	if (r->verb != VERB_CREATE) {
		api_fail(r, 405, "MethodNotAllowed", NULL,
			 "%s only supports create", r->type->plural);
		return;
	}
	obj = api_parse_body(r, false);
	if (!obj)
		return;
	api_version_of(r, av, sizeof av);
	json_object_set_new(obj, "apiVersion", json_string(av));
	json_object_set_new(obj, "kind", json_string(r->type->kind));
	if (!strcmp(r->type->kind, "SelfSubjectRulesReview")) {
		const char *ns = json_string_value(
		    json_object_get(json_object_get(obj, "spec"), "namespace"));
		json_t *rules = rbac_rules_for(r->srv->auth->rbac, &u, ns);

		json_object_set_new(obj, "status", rules);
		api_reply_json(r, 201, obj);
		return;
	}
	review_access(r, obj,
		      !strcmp(r->type->kind, "SelfSubjectAccessReview"));
	json_decref(obj);
}

/* ---- audit ------------------------------------------------------------------
 */

static int stage_bit(const char *stage)
{
	return audit_stage_parse(stage);
}

void api_audit(api_req *r, const char *stage, int code)
{
	struct api_auth *au = r->srv->auth;
	audit_attrs aa;
	audit_request ar;
	rbac_attrs ra;
	const char *ips[2] = {r->peer, NULL};
	json_t *ev, *req = NULL, *resp = NULL;
	int level, bit = stage_bit(stage);

	if (!au || !au->audit || bit <= 0)
		return;
	attrs_of(r, &ra);
	memset(&aa, 0, sizeof aa);
	aa.user = r->id.user;
	aa.groups = (const char *const *)r->id.groups;
	aa.verb = ra.verb;
	aa.resource_request = ra.resource_request;
	aa.group = ra.group;
	aa.resource = ra.resource;
	aa.subresource = ra.subresource;
	aa.namespace = ra.ns;
	aa.name = ra.name;
	aa.path = r->path;
	level = audit_policy_level(au->policy, &aa);
	if (level == AUDIT_LEVEL_NONE ||
	    (audit_policy_omit_stages(au->policy, &aa) & (unsigned)bit))
		return;
	memset(&ar, 0, sizeof ar);
	ar.attrs = &aa;
	ar.audit_id = r->audit_id;
	ar.request_uri = r->uri;
	ar.api_version = r->version;
	ar.source_ips = r->peer ? ips : NULL;
	ar.user_agent = r->user_agent;
	ar.received.tv_sec = r->received.tv_sec;
	ar.received.tv_nsec = (long)r->received.tv_usec * 1000;
	ar.code = code;
	ar.status = code ? (code < 400 ? "Success" : "Failure") : NULL;
	ar.decision = r->allowed ? "allow" : "forbid";
	ar.authz_reason = r->authz_reason;
	if (level >= AUDIT_LEVEL_REQUEST && r->body && r->body_len && r->plural)
		req = json_loadb(r->body, r->body_len, 0, NULL);
	ar.request_object = req;
	if (level >= AUDIT_LEVEL_REQUEST_RESPONSE && r->resp_body &&
	    r->resp_len && r->plural)
		resp = json_loadb(r->resp_body, r->resp_len, 0, NULL);
	ar.response_object = resp;
	ev = audit_event_new(&ar, level, bit, NULL);
	if (ev && audit_write(au->audit, ev) != 0)
		fprintf(stderr, "signalbox: cannot write the audit log\n");
	json_decref(ev);
	json_decref(req);
	json_decref(resp);
}

/* ---- set up ---------------------------------------------------------------
 */

static void on_rbac(cache_event *e, void *arg)
{
	api_server *a = arg;
	const char *rest;
	char kind[64] = "", err[256];
	json_t *obj;

	if (!e)
		return;
	/* /registry/rbac.authorization.k8s.io/<plural>/... */
	rest = e->obj->key + strlen(RBAC_PREFIX);
	if (!strncmp(rest, "roles/", 6))
		strcpy(kind, "Role");
	else if (!strncmp(rest, "clusterroles/", 13))
		strcpy(kind, "ClusterRole");
	else if (!strncmp(rest, "rolebindings/", 13))
		strcpy(kind, "RoleBinding");
	else if (!strncmp(rest, "clusterrolebindings/", 20))
		strcpy(kind, "ClusterRoleBinding");
	else
		return;
	obj = e->type == CACHE_DELETED ? NULL : cache_obj_parse(e->obj);
	if (rbac_set(a->auth->rbac, kind, e->obj->ns, e->obj->name, obj, err,
		     sizeof err))
		fprintf(stderr, "signalbox: RBAC: %s %s: %s\n", kind,
			e->obj->name, err);
	json_decref(obj);
}

/* Store each bootstrap object that does not exist yet. */
static int bootstrap(api_server *a)
{
	json_t *objs = rbac_bootstrap(), *o;
	size_t i;
	int rc = 0;

	json_array_foreach(objs, i, o)
	{
		const char *kind =
		    json_string_value(json_object_get(o, "kind"));
		const char *name = json_string_value(
		    json_object_get(json_object_get(o, "metadata"), "name"));
		const reg_type *t = reg_find(
		    a->reg, "rbac.authorization.k8s.io", "v1",
		    !strcmp(kind, "ClusterRole") ? "clusterroles"
						 : "clusterrolebindings",
		    NULL);
		char *key = t ? api_key(t, NULL, name) : NULL, now[32], uid[37];

		if (!key) {
			rc = -1;
			break;
		}
		api_now(now);
		api_uuid(uid);
		json_object_set_new(json_object_get(o, "metadata"),
				    "creationTimestamp", json_string(now));
		json_object_set_new(json_object_get(o, "metadata"), "uid",
				    json_string(uid));
		rc = api_store_create(a, key, o);
		free(key);
		if (rc)
			break;
	}
	json_decref(objs);
	return rc;
}

int api_auth_start(api_server *a, char *err, size_t errlen)
{
	struct api_auth *au = calloc(1, sizeof(*au));
	const api_options *o = &a->opt;
	size_t plen = strlen(RBAC_PREFIX);

	if (!au)
		return -1;
	a->auth = au;
	au->rbac = rbac_new();
	if (!au->rbac)
		return -1;
	if (o->token_auth_file &&
	    token_file_load(o->token_auth_file, &au->tokens, err, errlen))
		return -1;
	if (o->audit_policy_file &&
	    audit_policy_load(o->audit_policy_file, &au->policy, err, errlen))
		return -1;
	if (o->audit_log_path) {
		au->audit = audit_open(o->audit_log_path, o->audit_max_bytes,
				       o->audit_max_backups, err, errlen);
		if (!au->audit)
			return -1;
	}
	if (bootstrap(a)) {
		snprintf(err, errlen, "cannot store the bootstrap RBAC roles");
		return -1;
	}
	cache_pump(a->cache);
	for (cache_obj *c = cache_first(a->cache, RBAC_PREFIX);
	     c && !strncmp(c->key, RBAC_PREFIX, plen);
	     c = cache_next(a->cache, c)) {
		cache_event e = {.type = CACHE_ADDED, .obj = c};

		on_rbac(&e, a);
	}
	if (!cache_watch(a->cache, RBAC_PREFIX, on_rbac, a)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

void api_auth_flush(api_server *a)
{
	if (a->auth && a->auth->audit)
		audit_flush(a->auth->audit);
}

void api_auth_free(api_server *a)
{
	struct api_auth *au = a->auth;

	if (!au)
		return;
	rbac_free(au->rbac);
	token_file_free(au->tokens);
	if (au->audit)
		audit_close(au->audit);
	audit_policy_free(au->policy);
	free(au);
	a->auth = NULL;
}
