/*
 * crd.c -- the lifecycle of types and namespaces, driven by the cache's
 * events, as kube-apiserver's apiextensions and namespace controllers do:
 *
 *   a CRD is written   -> its type is served at once (registry), and its
 *                         status gets NamesAccepted and Established;
 *   a CRD is deleted   -> its type is no longer served and its objects are
 *                         deleted;
 *   a namespace is deleted -> every object in it is deleted.
 *
 * The writes go through the store like any client's, so every replica's
 * cache (and every watcher) sees them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

#define CRD_PREFIX "/registry/apiextensions.k8s.io/customresourcedefinitions/"
#define NS_PREFIX  "/registry/core/namespaces/"

static void ignore_result(int err, store_txn_result *res, void *arg)
{
	(void)arg;
	if (err)
		fprintf(stderr, "signalbox: background write failed: %s\n",
			store_strerror(err));
	store_txn_result_delete(res);
}

/* Delete every key in each [prefixes[i], end) in one transaction. */
static void delete_prefixes(api_server *a, char **prefixes, size_t n)
{
	store_op *ops = calloc(n ? n : 1, sizeof(*ops));
	char **ends = calloc(n ? n : 1, sizeof(*ends));
	store_txn t = {NULL, 0, ops, n, NULL, 0};
	size_t i;

	for (i = 0; ops && ends && i < n; i++) {
		ends[i] = store_prefix_end(prefixes[i]);
		ops[i] = (store_op){.type = STORE_OP_DELETE,
				    .key = prefixes[i],
				    .end = ends[i]};
	}
	if (ops && ends && n)
		store_txn_async(a->st, &t, ignore_result, NULL);
	for (i = 0; ends && i < n; i++)
		free(ends[i]);
	free(ends);
	free(ops);
}

static json_t *condition(const char *type, const char *reason, const char *msg,
			 const char *now)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", type, "status",
			 "True", "lastTransitionTime", now, "reason", reason,
			 "message", msg);
}

/* Give a served CRD its status, once. */
static void establish(api_server *a, const cache_obj *o, const reg_type *t)
{
	json_t *crd = cache_obj_parse(o), *st, *names;
	char now[32], *val = NULL;
	const reg_version *sv = reg_storage_version(t);

	if (!crd)
		return;
	st = json_object_get(crd, "status");
	if (json_is_object(st) && json_object_get(st, "acceptedNames") &&
	    json_array_size(json_object_get(st, "conditions")) >= 2)
		goto out;
	api_now(now);
	names = json_deep_copy(
	    json_object_get(json_object_get(crd, "spec"), "names"));
	json_object_set_new(names, "singular", json_string(t->singular));
	json_object_set_new(names, "listKind", json_string(t->list_kind));
	json_object_set_new(
	    crd, "status",
	    json_pack("{s:[o,o], s:o, s:[s]}", "conditions",
		      condition("NamesAccepted", "NoConflicts",
				"no conflicts found", now),
		      condition("Established", "InitialNamesAccepted",
				"the initial names have been accepted", now),
		      "acceptedNames", names, "storedVersions",
		      sv ? sv->name : "v1"));
	json_object_del(json_object_get(crd, "metadata"), "resourceVersion");
	val = json_dumps(crd, JSON_COMPACT);
	if (val) {
		store_cmp cmp = {o->key, STORE_CMP_MOD, STORE_CMP_EQ, o->rev};
		store_op put = {.type = STORE_OP_PUT,
				.key = o->key,
				.value = val,
				.value_len = strlen(val)};
		store_txn txn = {&cmp, 1, &put, 1, NULL, 0};

		store_txn_async(a->st, &txn, ignore_result, NULL);
	}
out:
	free(val);
	json_decref(crd);
}

static void add_type(api_server *a, const cache_obj *o)
{
	json_t *crd = cache_obj_parse(o);
	char err[512];
	const reg_type *t;

	if (!crd)
		return;
	if (reg_add_crd(a->reg, crd, false, err, sizeof err) != 0) {
		fprintf(stderr, "signalbox: CRD %s is not served: %s\n",
			o->name, err);
	} else if ((t = reg_find_crd(a->reg, o->name)) != NULL &&
		   !json_object_get(json_object_get(crd, "metadata"),
				    "deletionTimestamp")) {
		establish(a, o, t);
	}
	json_decref(crd);
}

static void on_crd(cache_event *e, void *arg)
{
	api_server *a = arg;
	const reg_type *t;
	char *prefix;

	if (!e)
		return;
	if (e->type != CACHE_DELETED) {
		add_type(a, e->obj);
		return;
	}
	t = reg_find_crd(a->reg, e->obj->name);
	if (!t || t->builtin)
		return;
	prefix = strdup(t->key_prefix);
	reg_remove_crd(a->reg, e->obj->name);
	if (prefix)
		delete_prefixes(a, &prefix, 1);
	free(prefix);
}

static void on_namespace(cache_event *e, void *arg)
{
	api_server *a = arg;
	char **prefixes;
	size_t n = 0;

	if (!e || e->type != CACHE_DELETED)
		return;
	prefixes = calloc(reg_count(a->reg) + 1, sizeof(*prefixes));
	if (!prefixes)
		return;
	for (size_t i = 0; i < reg_count(a->reg); i++) {
		const reg_type *t = reg_at(a->reg, i);

		if (t->namespaced && asprintf(&prefixes[n], "%s%s/",
					      t->key_prefix, e->obj->name) >= 0)
			n++;
	}
	delete_prefixes(a, prefixes, n);
	for (size_t i = 0; i < n; i++)
		free(prefixes[i]);
	free(prefixes);
}

int api_crd_start(api_server *a)
{
	size_t plen = strlen(CRD_PREFIX);

	for (cache_obj *o = cache_first(a->cache, CRD_PREFIX);
	     o && !strncmp(o->key, CRD_PREFIX, plen);
	     o = cache_next(a->cache, o))
		add_type(a, o);
	if (!cache_watch(a->cache, CRD_PREFIX, on_crd, a) ||
	    !cache_watch(a->cache, NS_PREFIX, on_namespace, a))
		return -1;
	return 0;
}

size_t api_crd_check(api_server *a, const json_t *crd, json_t *causes)
{
	(void)a;
	return reg_check_crd(crd, causes);
}
