/*
 * store.c -- the backend-neutral half of the store: argument checks, the
 * synchronous and asynchronous request paths, and watchers.
 *
 * A watcher is a cursor into the revision log, not a queue: it remembers
 * the next revision it must deliver and reads events from the in-memory
 * ring, or from the backend's durable history when the ring no longer
 * holds that revision. A slow watcher therefore never holds up a writer
 * and never misses an event; it only fails, with STORE_ECOMPACTED, when
 * compaction has removed history it has not read yet.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_int.h"

const char *store_strerror(int err)
{
	switch (err) {
	case STORE_OK:
		return "success";
	case STORE_EINVAL:
		return "invalid argument";
	case STORE_ENOMEM:
		return "out of memory";
	case STORE_EIO:
		return "input/output error in the database";
	case STORE_ENOSPC:
		return "no space left on the device holding the database";
	case STORE_EROFS:
		return "the database is read-only";
	case STORE_ECOMPACTED:
		return "the requested revision has been compacted";
	case STORE_EFUTURE:
		return "the requested revision is newer than the store";
	case STORE_ENOLEASE:
		return "lease not found";
	case STORE_ECLOSED:
		return "the store is closing";
	case STORE_ELOCKED:
		return "the data directory is in use by another process";
	case STORE_ECORRUPT:
		return "the database is corrupt";
	case STORE_EUNAVAIL:
		return "the store backend is unavailable";
	case STORE_EDUPKEY:
		return "a transaction writes the same key more than once";
	case STORE_ETOOLARGE:
		return "key or value too large";
	}
	return "unknown store error";
}

void store_errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errbuf || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

void store_options_init(store_options *o)
{
	memset(o, 0, sizeof(*o));
	o->data_dir = "./signalbox-data";
	o->history_revisions = 10000;
	o->history_seconds = 300;
	o->ring_events = 8192;
	o->ring_bytes = 4u << 20;
	o->max_batch = 1024;
}

/* ---- automatic compaction's bookkeeping ------------------------------ */

static int64_t mono_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

int store_autocompact_init(store_autocompact *a, int64_t revs, int64_t secs)
{
	memset(a, 0, sizeof(*a));
	a->revs = revs;
	a->secs = secs;
	if (secs > 0) {
		a->cap = (size_t)secs + 2;
		a->samples = calloc(a->cap, sizeof(*a->samples));
		if (!a->samples)
			return STORE_ENOMEM;
	}
	return 0;
}

void store_autocompact_free(store_autocompact *a)
{
	free(a->samples);
	memset(a, 0, sizeof(*a));
}

void store_autocompact_sample(store_autocompact *a, int64_t rev)
{
	int64_t sec = mono_sec();
	struct store_time_sample *last;

	if (!a->cap)
		return;
	if (a->n) {
		last = &a->samples[(a->head + a->n - 1) % a->cap];
		if (last->sec == sec) {
			last->rev = rev;
			return;
		}
	}
	if (a->n == a->cap) {
		a->head = (a->head + 1) % a->cap;
		a->n--;
	}
	a->samples[(a->head + a->n) % a->cap] =
	    (struct store_time_sample){sec, rev};
	a->n++;
}

int64_t store_autocompact_target(const store_autocompact *a, int64_t rev,
				 int64_t compact_rev)
{
	int64_t target = 0, cutoff;

	if (a->revs > 0 && rev - a->revs + 1 > target)
		target = rev - a->revs + 1;
	if (a->secs > 0) {
		cutoff = mono_sec() - a->secs;
		for (size_t i = a->n; i-- > 0;) {
			const struct store_time_sample *t =
			    &a->samples[(a->head + i) % a->cap];

			if (t->sec <= cutoff) {
				if (t->rev > target)
					target = t->rev;
				break;
			}
		}
	}
	return target > compact_rev && target <= rev ? target : 0;
}

/* ---- keys, kvs, events ----------------------------------------------- */

char *store_prefix_end(const char *prefix)
{
	size_t n = strlen(prefix);
	char *end = strdup(prefix);

	if (!end)
		return NULL;
	while (n > 0) {
		unsigned char c = (unsigned char)end[n - 1];

		if (c < 0xff) {
			end[n - 1] = (char)(c + 1);
			end[n] = '\0';
			return end;
		}
		n--;
	}
	end[0] = '\0'; /* no upper bound */
	return end;
}

bool store_key_in(const char *k, const char *key, const char *end)
{
	if (!end)
		return strcmp(k, key) == 0;
	if (strcmp(k, key) < 0)
		return false;
	return end[0] == '\0' || strcmp(k, end) < 0;
}

int store_kv_set(store_kv *dst, const char *key, const char *value,
		 size_t value_len, int64_t create_rev, int64_t mod_rev,
		 int64_t version, int64_t lease)
{
	memset(dst, 0, sizeof(*dst));
	dst->key = strdup(key);
	dst->value = malloc(value_len + 1);
	if (!dst->key || !dst->value) {
		store_kv_clear(dst);
		return STORE_ENOMEM;
	}
	if (value_len)
		memcpy(dst->value, value, value_len);
	dst->value[value_len] = '\0';
	dst->value_len = value_len;
	dst->create_revision = create_rev;
	dst->mod_revision = mod_rev;
	dst->version = version;
	dst->lease = lease;
	return 0;
}

void store_kv_clear(store_kv *kv)
{
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

store_event *store_event_new(store_event_type type, const char *key,
			     const char *value, size_t value_len,
			     int64_t create_rev, int64_t mod_rev,
			     int64_t version, int64_t lease)
{
	size_t klen = strlen(key);
	store_event *e = malloc(sizeof(*e) + klen + 1 + value_len + 1);

	if (!e)
		return NULL;
	e->type = type;
	e->refs = 1;
	e->kv.key = (char *)(e + 1);
	memcpy(e->kv.key, key, klen + 1);
	e->kv.value = e->kv.key + klen + 1;
	if (value_len)
		memcpy(e->kv.value, value, value_len);
	e->kv.value[value_len] = '\0';
	e->kv.value_len = value_len;
	e->kv.create_revision = create_rev;
	e->kv.mod_revision = mod_rev;
	e->kv.version = version;
	e->kv.lease = lease;
	return e;
}

void store_event_ref(store_event *e)
{
	__atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
}

void store_event_unref(store_event *e)
{
	if (e && __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(e);
}

void store_events_free(store_event **evs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_event_unref(evs[i]);
	free(evs);
}

void store_range_result_free(store_range_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->count; i++)
		store_kv_clear(&r->kvs[i]);
	free(r->kvs);
	memset(r, 0, sizeof(*r));
}

void store_txn_result_delete(store_txn_result *r)
{
	store_txn_result_free(r);
	free(r);
}

void store_txn_result_free(store_txn_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nresults; i++) {
		store_op_result *o = &r->results[i];

		for (size_t j = 0; j < o->count; j++)
			store_kv_clear(&o->kvs[j]);
		free(o->kvs);
	}
	free(r->results);
	memset(r, 0, sizeof(*r));
}

/* ---- open, close, state ---------------------------------------------- */

int store_open(const store_options *o, store **out, char *errbuf, size_t errlen)
{
	store_options def;
	bool etcd;
	store *s;
	int rc;

	*out = NULL;
	if (!o) {
		store_options_init(&def);
		o = &def;
	}
	etcd = o->etcd_endpoints && *o->etcd_endpoints;
	if (!etcd && (!o->data_dir || !*o->data_dir)) {
		store_errf(errbuf, errlen, "no data directory given");
		return STORE_EINVAL;
	}
	if (o->history_revisions < 0 || o->history_seconds < 0) {
		store_errf(errbuf, errlen,
			   "history limits must be 0 (off) or positive");
		return STORE_EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return STORE_ENOMEM;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);

	s->refs = 1;
	rc = store_ring_init(&s->ring, o->ring_events ? o->ring_events : 8192,
			     o->ring_bytes ? o->ring_bytes : (4u << 20), 1);
	if (rc != 0)
		goto fail;
	s->be = etcd ? &store_etcd_backend : &store_sqlite_backend;
	rc = etcd ? store_etcd_open(s, o, &s->bctx, errbuf, errlen)
		  : store_sqlite_open(s, o, &s->bctx, errbuf, errlen);
	if (rc != 0) {
		store_ring_free(&s->ring);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
	return rc;
}

/* The store's memory lives until store_close and every watcher are done. */
static void store_unref(store *s)
{
	if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	store_ring_free(&s->ring);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

void store_close(store *s)
{
	store_notify_fn fn;
	void *arg;

	if (!s)
		return;
	s->be->close(s->bctx); /* completes everything queued */
	s->bctx = NULL;
	pthread_mutex_lock(&s->mu);
	s->closing = true;
	pthread_cond_broadcast(&s->cv);
	fn = s->notify;
	arg = s->notify_arg;
	pthread_mutex_unlock(&s->mu);
	if (fn)
		fn(STORE_ECLOSED, arg);
	store_unref(s);
}

int64_t store_revision(store *s)
{
	return __atomic_load_n(&s->rev, __ATOMIC_ACQUIRE);
}

int64_t store_compact_revision(store *s)
{
	return __atomic_load_n(&s->compact_rev, __ATOMIC_ACQUIRE);
}

int64_t store_db_size(store *s)
{
	return s->be->db_size(s->bctx);
}

int store_current_revision(store *s, int64_t *rev)
{
	if (s->be->current_revision)
		return s->be->current_revision(s->bctx, rev);
	*rev = store_revision(s);
	return 0;
}

int store_current_revision_async(store *s, store_rev_cb cb, void *arg)
{
	int64_t rev = 0;
	int rc;

	if (!cb)
		return STORE_EINVAL;
	if (s->be->current_revision_async)
		return s->be->current_revision_async(s->bctx, cb, arg);
	rc = store_current_revision(s, &rev);
	cb(rc, rev, arg);
	return 0;
}

void store_last_error(store *s, char *buf, size_t len)
{
	if (len == 0)
		return;
	buf[0] = '\0';
	if (s->be->last_error)
		s->be->last_error(s->bctx, buf, len);
}

void store_set_notify(store *s, store_notify_fn fn, void *arg)
{
	pthread_mutex_lock(&s->mu);
	s->notify = fn;
	s->notify_arg = arg;
	pthread_mutex_unlock(&s->mu);
}

void store_publish(store *s, store_event **evs, size_t n, int64_t rev)
{
	store_notify_fn fn;
	void *arg;

	pthread_mutex_lock(&s->mu);
	store_ring_append(&s->ring, evs, n);
	__atomic_store_n(&s->rev, rev, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&s->cv);
	fn = s->notify;
	arg = s->notify_arg;
	pthread_mutex_unlock(&s->mu);
	free(evs);
	if (fn && n > 0)
		fn(rev, arg);
}

void store_set_initial(store *s, int64_t rev, int64_t compact_rev)
{
	pthread_mutex_lock(&s->mu);
	__atomic_store_n(&s->rev, rev, __ATOMIC_RELEASE);
	__atomic_store_n(&s->compact_rev, compact_rev, __ATOMIC_RELEASE);
	s->ring.complete_from = rev + 1;
	pthread_mutex_unlock(&s->mu);
}

void store_set_compact_revision(store *s, int64_t rev)
{
	pthread_mutex_lock(&s->mu);
	if (rev > s->compact_rev)
		__atomic_store_n(&s->compact_rev, rev, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* ---- argument checks -------------------------------------------------- */

static int check_key(const char *key, bool may_be_empty)
{
	size_t n;

	if (!key)
		return STORE_EINVAL;
	n = strlen(key);
	if (n == 0 && !may_be_empty)
		return STORE_EINVAL;
	return n > STORE_MAX_KEY ? STORE_ETOOLARGE : 0;
}

static int check_interval(const char *key, const char *end)
{
	int rc = check_key(key, end != NULL);

	if (rc == 0 && end)
		rc = check_key(end, true);
	if (rc == 0 && end && *end && strcmp(key, end) >= 0)
		rc = STORE_EINVAL; /* empty interval: etcd refuses it too */
	return rc;
}

/* Two intervals (end as in store_range) overlap. */
static bool overlap(const char *k1, const char *e1, const char *k2,
		    const char *e2)
{
	if (!e1)
		return store_key_in(k1, k2, e2);
	if (!e2)
		return store_key_in(k2, k1, e1);
	/* [k1,e1) and [k2,e2): overlap unless one ends before the other
	 * starts ("" = unbounded). */
	if (*e1 && strcmp(e1, k2) <= 0)
		return false;
	if (*e2 && strcmp(e2, k1) <= 0)
		return false;
	return true;
}

static int check_ops(const store_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const store_op *o = &ops[i];
		int rc;

		switch (o->type) {
		case STORE_OP_PUT:
			rc = check_key(o->key, false);
			if (rc)
				return rc;
			if (o->value_len > STORE_MAX_VALUE)
				return STORE_ETOOLARGE;
			if (o->value_len && !o->value)
				return STORE_EINVAL;
			if (o->lease < 0)
				return STORE_EINVAL;
			break;
		case STORE_OP_GET:
		case STORE_OP_DELETE:
			rc = check_interval(o->key, o->end);
			if (rc)
				return rc;
			break;
		default:
			return STORE_EINVAL;
		}
		/* A put may not meet another write of this branch. */
		for (size_t j = 0; j < i; j++) {
			const store_op *p = &ops[j];

			if (o->type == STORE_OP_GET || p->type == STORE_OP_GET)
				continue;
			if (o->type == STORE_OP_DELETE &&
			    p->type == STORE_OP_DELETE)
				continue;
			if (overlap(o->key,
				    o->type == STORE_OP_PUT ? NULL : o->end,
				    p->key,
				    p->type == STORE_OP_PUT ? NULL : p->end))
				return STORE_EDUPKEY;
		}
	}
	return 0;
}

static int check_txn(const store_txn *t)
{
	int rc;

	if (!t || (t->ncmps && !t->cmps) || (t->nsuccess && !t->success) ||
	    (t->nfailure && !t->failure))
		return STORE_EINVAL;
	for (size_t i = 0; i < t->ncmps; i++) {
		const store_cmp *c = &t->cmps[i];

		rc = check_key(c->key, false);
		if (rc)
			return rc;
		if ((unsigned)c->target > STORE_CMP_VERSION ||
		    (unsigned)c->op > STORE_CMP_GT)
			return STORE_EINVAL;
	}
	rc = check_ops(t->success, t->nsuccess);
	if (rc == 0)
		rc = check_ops(t->failure, t->nfailure);
	return rc;
}

/* ---- requests ----------------------------------------------------------- */

static int submit_wait(store *s, store_req *r)
{
	int rc;

	sem_init(&r->done, 0, 0);
	rc = s->be->submit(s->bctx, r);
	if (rc == 0) {
		while (sem_wait(&r->done) != 0 && errno == EINTR)
			;
		rc = r->err;
	}
	sem_destroy(&r->done);
	return rc;
}

void store_req_done(store_req *r)
{
	store_txn_result *res = NULL;

	if (!r->cb) {
		sem_post(&r->done);
		return;
	}
	if (r->err == 0) {
		res = malloc(sizeof(*res));
		if (res)
			*res = r->res;
		else {
			store_txn_result_free(&r->res);
			r->err = STORE_ENOMEM;
		}
	}
	r->cb(r->err, res, r->cb_arg);
	free(r->copy);
	free(r);
}

int store_txn_run(store *s, const store_txn *t, store_txn_result *out)
{
	store_req r;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = check_txn(t);
	if (rc)
		return rc;
	memset(&r, 0, sizeof(r));
	r.kind = STORE_REQ_TXN;
	r.txn = t;
	rc = submit_wait(s, &r);
	if (rc == 0)
		*out = r.res;
	return rc;
}

/* Space for one copied string (NULL stays NULL). */
static size_t str_space(const char *p)
{
	return p ? strlen(p) + 1 : 0;
}

static const char *str_copy(char **pos, const char *p, size_t len)
{
	char *d;

	if (!p)
		return NULL;
	d = *pos;
	memcpy(d, p, len);
	*pos += len;
	return d;
}

static size_t ops_space(const store_op *ops, size_t n)
{
	size_t sz = 0;

	for (size_t i = 0; i < n; i++)
		sz += str_space(ops[i].key) + str_space(ops[i].end) +
		      (ops[i].type == STORE_OP_PUT ? ops[i].value_len : 0);
	return sz;
}

static void ops_copy(store_op *dst, const store_op *src, size_t n, char **pos)
{
	for (size_t i = 0; i < n; i++) {
		dst[i] = src[i];
		dst[i].key = str_copy(pos, src[i].key, str_space(src[i].key));
		dst[i].end = str_copy(pos, src[i].end, str_space(src[i].end));
		if (src[i].type == STORE_OP_PUT && src[i].value_len)
			dst[i].value =
			    str_copy(pos, src[i].value, src[i].value_len);
		else
			dst[i].value = "";
	}
}

/* One allocation holding a deep copy of t: the txn, its arrays, strings. */
static store_txn *txn_copy(const store_txn *t)
{
	size_t sz = sizeof(store_txn) + t->ncmps * sizeof(store_cmp) +
		    (t->nsuccess + t->nfailure) * sizeof(store_op);
	size_t hdr = sz;
	store_txn *c;
	store_cmp *cmps;
	store_op *succ, *fail;
	char *pos;

	for (size_t i = 0; i < t->ncmps; i++)
		sz += str_space(t->cmps[i].key);
	sz += ops_space(t->success, t->nsuccess);
	sz += ops_space(t->failure, t->nfailure);
	c = malloc(sz);
	if (!c)
		return NULL;
	cmps = (store_cmp *)(c + 1);
	succ = (store_op *)(cmps + t->ncmps);
	fail = succ + t->nsuccess;
	pos = (char *)c + hdr;
	for (size_t i = 0; i < t->ncmps; i++) {
		cmps[i] = t->cmps[i];
		cmps[i].key =
		    str_copy(&pos, t->cmps[i].key, str_space(t->cmps[i].key));
	}
	ops_copy(succ, t->success, t->nsuccess, &pos);
	ops_copy(fail, t->failure, t->nfailure, &pos);
	*c = (store_txn){cmps, t->ncmps, succ, t->nsuccess, fail, t->nfailure};
	return c;
}

int store_txn_async(store *s, const store_txn *t, store_txn_cb cb, void *arg)
{
	store_req *r;
	int rc;

	if (!cb)
		return STORE_EINVAL;
	rc = check_txn(t);
	if (rc)
		return rc;
	r = calloc(1, sizeof(*r));
	if (!r)
		return STORE_ENOMEM;
	r->copy = txn_copy(t);
	if (!r->copy) {
		free(r);
		return STORE_ENOMEM;
	}
	r->kind = STORE_REQ_TXN;
	r->txn = r->copy;
	r->cb = cb;
	r->cb_arg = arg;
	rc = s->be->submit(s->bctx, r);
	if (rc) {
		free(r->copy);
		free(r);
	}
	return rc;
}

static int simple_req(store *s, store_req_kind kind, int64_t arg, int64_t *out)
{
	store_req r;
	int rc;

	memset(&r, 0, sizeof(r));
	r.kind = kind;
	r.arg = arg;
	rc = submit_wait(s, &r);
	if (rc == 0 && out)
		*out = r.out;
	return rc;
}

/* ---- convenience wrappers --------------------------------------------- */

int store_put(store *s, const char *key, const char *value, size_t len,
	      int64_t lease, int64_t *rev)
{
	store_op op = {.type = STORE_OP_PUT,
		       .key = key,
		       .value = value,
		       .value_len = len,
		       .lease = lease};
	store_txn t = {.success = &op, .nsuccess = 1};
	store_txn_result res;
	int rc = store_txn_run(s, &t, &res);

	if (rc == 0 && rev)
		*rev = res.revision;
	store_txn_result_free(&res);
	return rc;
}

int store_cas(store *s, const char *key, const char *value, size_t len,
	      int64_t expect_mod, bool *ok, int64_t *rev)
{
	store_cmp cmp = {key, STORE_CMP_MOD, STORE_CMP_EQ, expect_mod};
	store_op put = {
	    .type = STORE_OP_PUT, .key = key, .value = value, .value_len = len};
	store_op get = {.type = STORE_OP_GET, .key = key};
	store_txn t = {&cmp, 1, &put, 1, &get, 1};
	store_txn_result res;
	int rc = store_txn_run(s, &t, &res);

	if (rc == 0) {
		*ok = res.succeeded;
		if (rev) {
			if (res.succeeded)
				*rev = res.revision;
			else if (res.nresults == 1 && res.results[0].count == 1)
				*rev = res.results[0].kvs[0].mod_revision;
			else
				*rev = 0;
		}
	}
	store_txn_result_free(&res);
	return rc;
}

int store_delete(store *s, const char *key, const char *end, int64_t *deleted,
		 int64_t *rev)
{
	store_op op = {.type = STORE_OP_DELETE, .key = key, .end = end};
	store_txn t = {.success = &op, .nsuccess = 1};
	store_txn_result res;
	int rc = store_txn_run(s, &t, &res);

	if (rc == 0) {
		if (deleted)
			*deleted = res.results[0].deleted;
		if (rev)
			*rev = res.revision;
	}
	store_txn_result_free(&res);
	return rc;
}

int store_range(store *s, const char *key, const char *end, int64_t revision,
		int64_t limit, store_range_result *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = check_interval(key, end);
	if (rc)
		return rc;
	if (revision < 0 || limit < 0)
		return STORE_EINVAL;
	return s->be->range(s->bctx, key, end, revision, limit, out);
}

int store_compact(store *s, int64_t revision)
{
	if (revision <= 0)
		return STORE_EINVAL;
	return simple_req(s, STORE_REQ_COMPACT, revision, NULL);
}

int store_lease_grant(store *s, int64_t ttl_seconds, int64_t *id)
{
	if (ttl_seconds <= 0 || !id)
		return STORE_EINVAL;
	return simple_req(s, STORE_REQ_LEASE_GRANT, ttl_seconds, id);
}

int store_lease_revoke(store *s, int64_t id)
{
	if (id <= 0)
		return STORE_ENOLEASE;
	return simple_req(s, STORE_REQ_LEASE_REVOKE, id, NULL);
}

int store_lease_keepalive(store *s, int64_t id, int64_t *ttl)
{
	return s->be->lease_keepalive(s->bctx, id, ttl);
}

int store_lease_ttl(store *s, int64_t id, int64_t *remaining, int64_t *granted)
{
	return s->be->lease_ttl(s->bctx, id, remaining, granted);
}

/* ---- watchers ------------------------------------------------------------ */

struct store_watch {
	store *s;
	char *key;
	char *end;    /* NULL: the single key */
	int64_t next; /* every event below this revision was delivered, */
	size_t skip;  /* and this many matching events of next */
	int err;      /* sticky error once dead */
};

int store_watch_open(store *s, const char *key, const char *end,
		     int64_t start_revision, store_watch **out)
{
	store_watch *w;
	int rc;

	*out = NULL;
	rc = check_interval(key, end);
	if (rc)
		return rc;
	if (start_revision < 0)
		return STORE_EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return STORE_ENOMEM;
	w->key = strdup(key);
	w->end = end ? strdup(end) : NULL;
	if (!w->key || (end && !w->end)) {
		store_watch_close(w);
		return STORE_ENOMEM;
	}
	pthread_mutex_lock(&s->mu);
	w->next = start_revision ? start_revision : store_revision(s) + 1;
	if (s->closing)
		rc = STORE_ECLOSED;
	else if (w->next < s->compact_rev)
		rc = STORE_ECOMPACTED;
	if (rc == 0) {
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
		w->s = s;
	}
	pthread_mutex_unlock(&s->mu);
	if (rc) {
		store_watch_close(w);
		return rc;
	}
	*out = w;
	return 0;
}

void store_watch_close(store_watch *w)
{
	if (!w)
		return;
	if (w->s)
		store_unref(w->s);
	free(w->key);
	free(w->end);
	free(w);
}

/* Grow *evs to hold one more. */
static int push_event(store_event ***evs, size_t *n, size_t *cap,
		      store_event *e)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		store_event **p = realloc(*evs, nc * sizeof(*p));

		if (!p)
			return STORE_ENOMEM;
		*evs = p;
		*cap = nc;
	}
	(*evs)[(*n)++] = e;
	return 0;
}

/* Offer the next matching event e (in (revision, key) order, revision >=
 * w->next) to the watcher. The cursor is (next, skip): every revision below
 * next is delivered, and so are the first skip matching events of next.
 * Returns 1 when the caller's batch is full (e not taken), 0 when e was
 * taken or had been delivered before, or STORE_ENOMEM. */
static int deliver(store_watch *w, store_event *e, size_t max,
		   store_event ***evs, size_t *n, size_t *cap, size_t *seen)
{
	int64_t rev = e->kv.mod_revision;

	if (rev == w->next && (*seen)++ < w->skip)
		return 0; /* sent in an earlier batch */
	if (*n >= max)
		return 1;
	if (push_event(evs, n, cap, e))
		return STORE_ENOMEM;
	store_event_ref(e);
	if (rev != w->next) {
		w->next = rev;
		w->skip = 0;
		*seen = 1;
	}
	w->skip++;
	return 0;
}

/* With s->mu held: take matching ring events from the cursor on. */
static int take_from_ring(store_watch *w, size_t max, store_event ***evs,
			  size_t *n, size_t *cap)
{
	store_ring *r = &w->s->ring;
	size_t i = store_ring_find(r, w->next), seen = 0;
	int rc = 0;

	for (; i < r->count && rc == 0; i++) {
		store_event *e = store_ring_at(r, i);

		if (store_key_in(e->kv.key, w->key, w->end))
			rc = deliver(w, e, max, evs, n, cap, &seen);
	}
	if (rc == 1)
		return 0;
	if (rc == 0) {
		w->next = store_revision(w->s) + 1;
		w->skip = 0;
	}
	return rc;
}

/* Without the lock: read revisions [w->next, to] from the backend. */
static int take_from_history(store_watch *w, int64_t to, size_t max,
			     store_event ***evs, size_t *n, size_t *cap)
{
	store *s = w->s;
	store_event **h = NULL;
	size_t hn = 0, i, seen = 0;
	int64_t next = w->next, skip = (int64_t)w->skip;
	int rc;

	rc = s->be->history(s->bctx, w->key, w->end, w->next, to, &h, &hn);
	/* Rows may have been reclaimed while we read: trust the result only
	 * if the compact revision did not pass our start meanwhile. */
	if (rc == 0 && store_compact_revision(s) > w->next)
		rc = STORE_ECOMPACTED;
	for (i = 0; i < hn && rc == 0; i++)
		rc = deliver(w, h[i], max, evs, n, cap, &seen);
	for (i = 0; i < hn; i++)
		store_event_unref(h[i]);
	free(h);
	if (rc == 0) {
		w->next = to + 1;
		w->skip = 0;
	} else if (rc == 1) {
		rc = 0;
	} else {
		/* Undo: what was pushed is dropped by the caller. */
		w->next = next;
		w->skip = (size_t)skip;
	}
	return rc;
}

/* The most revisions read back from the database per call. */
#define HISTORY_CHUNK 1000

int store_watch_next(store_watch *w, int timeout_ms, size_t max,
		     store_event ***evs, size_t *n, int64_t *progress)
{
	store *s = w->s;
	struct timespec deadline;
	size_t cap = 0;
	int rc = 0;

	*evs = NULL;
	*n = 0;
	if (max == 0)
		max = 1;
	if (w->err)
		return w->err;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	if (timeout_ms > 0) {
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&s->mu);
	for (;;) {
		if (s->closing) {
			rc = STORE_ECLOSED;
			break;
		}
		if (w->next < s->compact_rev) {
			rc = STORE_ECOMPACTED;
			break;
		}
		if (w->next <= store_revision(s)) {
			if (w->next >= s->ring.complete_from) {
				rc = take_from_ring(w, max, evs, n, &cap);
			} else {
				int64_t to = s->ring.complete_from - 1;

				if (to - w->next >= HISTORY_CHUNK)
					to = w->next + HISTORY_CHUNK - 1;
				pthread_mutex_unlock(&s->mu);
				rc =
				    take_from_history(w, to, max, evs, n, &cap);
				pthread_mutex_lock(&s->mu);
			}
			if (rc || *n >= max)
				break;
			continue; /* more may be ready, or nothing matched */
		}
		if (*n > 0 || timeout_ms == 0)
			break;
		if (timeout_ms < 0)
			pthread_cond_wait(&s->cv, &s->mu);
		else if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) ==
			 ETIMEDOUT)
			break;
	}
	if (progress)
		*progress = w->next - 1;
	pthread_mutex_unlock(&s->mu);
	if (rc) {
		store_events_free(*evs, *n);
		*evs = NULL;
		*n = 0;
		if (rc == STORE_ECOMPACTED || rc == STORE_ECLOSED)
			w->err = rc;
	}
	return rc;
}
