/*
 * bench_store.c -- in-process benchmark of the store (src/store/store.h).
 *
 * Every measurement runs on a fresh store in its own subdirectory of a
 * scratch directory (default: a new directory under /tmp; --dir to choose
 * the parent), which is removed at the end. Each measurement is bounded in
 * time; the whole default run takes well under three minutes on a 2-core
 * machine, --quick takes a few seconds (a smoke test).
 *
 * What is measured (see bench/store/README.md for how to read it):
 *   - the disk's own fdatasync rate (context for everything else);
 *   - durable puts/s with 1 and with 64 writer threads, put latency, and
 *     the group-commit batch size (puts per commit notification);
 *   - store_txn_async puts/s from one thread, 1024 in flight;
 *   - point reads/s (1 and 2 threads) over 100,000 keys;
 *   - time to range a prefix of 10,000 keys;
 *   - watch delivery latency for 1 and 100 watchers;
 *   - startup: store_open and open + read all 100,000 keys, cold and warm;
 *   - steady updates with automatic compaction: puts/s and the db size.
 *
 * Usage: bench_store [--quick] [--dir DIR] [--seconds S] [--keep]
 *                    [--writers N] [--only PHASE,...]
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/store.h"

/* ------------------------------------------------------------------------
 * Configuration
 */

static struct {
	bool quick;
	bool keep;
	const char *parent;	  /* where the scratch directory goes */
	char scratch[PATH_MAX];	  /* the scratch directory itself */
	double phase_s;		  /* duration of each timed phase */
	int nkeys;		  /* keys for reads and startup (power of 10) */
	int range_keys;		  /* keys in the ranged prefix (nkeys / 10) */
	int watch_events;	  /* events per watch round */
	int watchers_big;	  /* watchers in the second watch round */
	int steady_updates;	  /* updates in the steady phase */
	int steady_keys;	  /* over this many keys */
	int64_t steady_history;	  /* history_revisions for the steady phase */
	double steady_deadline_s; /* the steady phase stops after this long */
	int writers;		  /* the "many writers" count */
	const char *only;	  /* comma-separated phases to run, or NULL */
	double fsync_rate;	  /* measured fdatasync/s, 0 if unknown */
} cfg;

/* ------------------------------------------------------------------------
 * Small helpers
 */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double ns_to_ms(int64_t ns)
{
	return (double)ns / 1e6;
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000,
			      .tv_nsec = ns % 1000000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array; NAN when empty. */
static double pct(const double *v, size_t n, double q)
{
	if (n == 0)
		return NAN;
	double x = q * (double)n;
	size_t r = (size_t)x;
	if ((double)r < x) /* ceil, without needing libm */
		r++;
	if (r < 1)
		r = 1;
	if (r > n)
		r = n;
	return v[r - 1];
}

/* A JSON-like value of exactly 300 bytes, as a Kubernetes object would
 * be. Returns its length. buf must hold at least 512 bytes. */
#define VALUE_LEN 300
static size_t make_value(char *buf, size_t cap, const char *name, uint64_t n)
{
	int len = snprintf(buf, cap,
			   "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
			   "\"metadata\":{\"name\":\"%.60s\",\"namespace\":"
			   "\"bench\",\"uid\":\"%08" PRIx64
			   "-0000-4000-8000-%012" PRIx64 "\",\"labels\":"
			   "{\"app\":\"bench\"}},\"data\":{\"payload\":\"",
			   name, n & 0xffffffffu, n);
	if (len < 0 || (size_t)len >= cap)
		return 0;
	size_t l = (size_t)len;
	while (l < VALUE_LEN - 3 && l + 4 < cap) {
		buf[l] = (char)('a' + (n + l) % 26);
		l++;
	}
	memcpy(buf + l, "\"}}", 4);
	return l + 3;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0)
		fprintf(stderr, "bench_store: remove %s: %s\n", path,
			strerror(errno));
	return 0;
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Remove a phase's store directory, unless --keep. */
static void cleanup(const char *dir)
{
	if (!cfg.keep)
		rm_rf(dir);
}

/* Drop the page cache of every file in dir (posix_fadvise DONTNEED), so
 * the next open reads from the disk. Affects only these files. */
static void drop_dir_cache(const char *dir)
{
	static const char *names[] = {"signalbox.db", "signalbox.db-wal",
				      "signalbox.db-shm"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char p[PATH_MAX];
		if (snprintf(p, sizeof p, "%s/%s", dir, names[i]) >=
		    (int)sizeof p)
			continue;
		int fd = open(p, O_RDONLY);
		if (fd < 0)
			continue;
		fdatasync(fd);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
}

/* ------------------------------------------------------------------------
 * The result table
 */

struct row {
	char name[64];
	double value;
	char unit[12];
	int prec;
	char note[160];
};

static struct row rows[64];
static size_t nrows;

static void add_row(const char *name, double value, const char *unit, int prec,
		    const char *fmt, ...)
{
	if (nrows >= sizeof rows / sizeof rows[0])
		return;
	struct row *r = &rows[nrows++];
	snprintf(r->name, sizeof r->name, "%s", name);
	r->value = value;
	snprintf(r->unit, sizeof r->unit, "%s", unit);
	r->prec = prec;
	r->note[0] = 0;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(r->note, sizeof r->note, fmt, ap);
		va_end(ap);
	}
}

static void add_fail(const char *name, const char *what, int err)
{
	add_row(name, NAN, "-", 0, "FAILED: %s: %s", what, store_strerror(err));
	printf("  FAILED: %s: %s: %s\n", name, what, store_strerror(err));
	fflush(stdout);
}

static void print_table(void)
{
	printf("\n%-44s %12s  %-7s %s\n", "measurement", "value", "unit",
	       "note");
	printf("%-44s %12s  %-7s %s\n",
	       "--------------------------------------------", "------------",
	       "-------", "----");
	for (size_t i = 0; i < nrows; i++) {
		struct row *r = &rows[i];
		char v[32];
		if (isnan(r->value))
			snprintf(v, sizeof v, "n/a");
		else
			snprintf(v, sizeof v, "%.*f", r->prec, r->value);
		printf("%-44s %12s  %-7s %s\n", r->name, v, r->unit, r->note);
	}
}

/* ------------------------------------------------------------------------
 * Stores and commit notifications
 */

static uint64_t g_notifies; /* commit notifications (atomic) */

static void notify_cb(int64_t revision, void *arg)
{
	(void)arg;
	if (revision > 0)
		__atomic_add_fetch(&g_notifies, 1, __ATOMIC_RELAXED);
}

static uint64_t notifies(void)
{
	return __atomic_load_n(&g_notifies, __ATOMIC_RELAXED);
}

static void sub_dir(const char *name, char *out, size_t len)
{
	if (snprintf(out, len, "%s/%s", cfg.scratch, name) >= (int)len)
		fprintf(stderr, "bench_store: path too long\n");
}

static int open_store(const char *dir, int64_t history_revisions,
		      int64_t history_seconds, store **out)
{
	store_options o;
	char err[256] = "";
	store_options_init(&o);
	o.data_dir = dir;
	if (history_revisions >= 0)
		o.history_revisions = history_revisions;
	if (history_seconds >= 0)
		o.history_seconds = history_seconds;
	int rc = store_open(&o, out, err, sizeof err);
	if (rc != 0)
		printf("  store_open(%s): %s: %s\n", dir, store_strerror(rc),
		       err);
	return rc;
}

/* Put n keys fmt % i (i in [0, n)) with multi-put transactions of up to
 * batch puts each, halving the batch if the store refuses it. */
static int bulk_load(store *s, const char *fmt, int n, int batch)
{
	char(*keys)[96] = malloc((size_t)batch * sizeof *keys);
	char(*vals)[512] = malloc((size_t)batch * sizeof *vals);
	store_op *ops = calloc((size_t)batch, sizeof *ops);
	int rc = 0;
	if (!keys || !vals || !ops) {
		rc = STORE_ENOMEM;
		goto out;
	}
	for (int i = 0; i < n;) {
		int k = n - i < batch ? n - i : batch;
		for (int j = 0; j < k; j++) {
			snprintf(keys[j], sizeof keys[j], fmt, i + j);
			ops[j] = (store_op){
			    .type = STORE_OP_PUT,
			    .key = keys[j],
			    .value = vals[j],
			    .value_len = make_value(vals[j], sizeof vals[j],
						    keys[j], (uint64_t)(i + j)),
			};
		}
		store_txn t = {.success = ops, .nsuccess = (size_t)k};
		store_txn_result res;
		rc = store_txn_run(s, &t, &res);
		if (rc == STORE_EINVAL || rc == STORE_ETOOLARGE) {
			if (batch == 1)
				goto out;
			batch /= 2;
			continue;
		}
		if (rc != 0)
			goto out;
		store_txn_result_free(&res);
		i += k;
	}
out:
	free(keys);
	free(vals);
	free(ops);
	return rc;
}

/* ------------------------------------------------------------------------
 * Machine facts
 */

static const char *fs_name(long type)
{
	switch ((unsigned long)type) {
	case 0xEF53:
		return "ext2/3/4";
	case 0x58465342:
		return "xfs";
	case 0x9123683E:
		return "btrfs";
	case 0x01021994:
		return "tmpfs (fsync is free: figures are not durable-disk "
		       "figures)";
	case 0x794c7630:
		return "overlayfs";
	case 0x2FC12FC1:
		return "zfs";
	case 0xF2F52010:
		return "f2fs";
	default:
		return "other";
	}
}

/* fdatasync/s of a 4 KiB overwrite at offset 0, for `seconds`. */
static double measure_fsync(const char *dir, double seconds)
{
	char p[PATH_MAX];
	if (snprintf(p, sizeof p, "%s/fsync-probe", dir) >= (int)sizeof p)
		return 0;
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return 0;
	char buf[4096];
	memset(buf, 'x', sizeof buf);
	/* The first write extends the file; the timed ones overwrite it. */
	if (pwrite(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf ||
	    fsync(fd) != 0) {
		close(fd);
		unlink(p);
		return 0;
	}
	int64_t t0 = now_ns(), end = t0 + (int64_t)(seconds * 1e9), t;
	long n = 0;
	do {
		buf[n % sizeof buf] ^= 1;
		if (pwrite(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf ||
		    fdatasync(fd) != 0)
			break;
		n++;
	} while ((t = now_ns()) < end);
	t = now_ns();
	close(fd);
	unlink(p);
	return (double)n / ((double)(t - t0) / 1e9);
}

static void print_facts(void)
{
	char model[256] = "unknown";
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		char line[512];
		while (fgets(line, sizeof line, f)) {
			if (strncmp(line, "model name", 10) == 0) {
				char *c = strchr(line, ':');
				if (c) {
					c++;
					while (*c == ' ' || *c == '\t')
						c++;
					c[strcspn(c, "\n")] = 0;
					snprintf(model, sizeof model, "%s", c);
				}
				break;
			}
		}
		fclose(f);
	}
	struct utsname u;
	char kernel[512] = "unknown";
	if (uname(&u) == 0)
		snprintf(kernel, sizeof kernel, "%s %s %s", u.sysname,
			 u.release, u.machine);
	char load[128] = "unknown";
	f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fgets(load, sizeof load, f))
			load[strcspn(load, "\n")] = 0;
		fclose(f);
	}
	struct statfs sf;
	const char *fs = "unknown";
	if (statfs(cfg.scratch, &sf) == 0)
		fs = fs_name((long)sf.f_type);
	time_t now = time(NULL);
	char date[64];
	strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));

	printf("bench_store: %s run, %s\n", cfg.quick ? "quick" : "full", date);
	printf("  nproc       %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
	printf("  cpu         %s\n", model);
	printf("  kernel      %s\n", kernel);
	printf("  sqlite      %s\n", sqlite3_libversion());
	printf("  loadavg     %s\n", load);
	printf("  scratch     %s (%s)\n", cfg.scratch, fs);
	fflush(stdout);
	cfg.fsync_rate = measure_fsync(cfg.scratch, cfg.quick ? 0.5 : 1.0);
	printf("  fsync rate  %.0f fdatasync/s (4 KiB pwrite + fdatasync, "
	       "same filesystem)\n",
	       cfg.fsync_rate);
	fflush(stdout);
	add_row("disk fdatasync rate (start)", cfg.fsync_rate, "ops/s", 0,
		"4 KiB overwrite + fdatasync loop, %s",
		cfg.quick ? "0.5 s" : "1 s");
}

/* The fsync rate again at the end: the disk is shared, it varies. */
static void fsync_again(void)
{
	double r = measure_fsync(cfg.scratch, cfg.quick ? 0.5 : 1.0);
	printf("- fsync rate again: %.0f fdatasync/s\n", r);
	add_row("disk fdatasync rate (end)", r, "ops/s", 0,
		"same loop after the run; ratios above use the start figure");
}

/* ------------------------------------------------------------------------
 * Durable puts with N writer threads
 */

static int g_stop; /* atomic: timed phases stop when set */

static bool stopped(void)
{
	return __atomic_load_n(&g_stop, __ATOMIC_RELAXED);
}

struct put_worker {
	pthread_t th;
	store *s;
	int id;
	const char *tag;
	pthread_barrier_t *bar;
	uint64_t count;
	double *lat; /* ms */
	size_t nlat, caplat;
	int err;
};

static void *put_thread(void *arg)
{
	struct put_worker *w = arg;
	char key[128], val[512];
	pthread_barrier_wait(w->bar);
	for (uint64_t i = 0; !stopped(); i++) {
		snprintf(key, sizeof key, "/registry/bench/%s/obj-%d-%" PRIu64,
			 w->tag, w->id, i);
		size_t len = make_value(val, sizeof val, key, i);
		int64_t t0 = now_ns();
		int rc = store_put(w->s, key, val, len, 0, NULL);
		int64_t t1 = now_ns();
		if (rc != 0) {
			w->err = rc;
			break;
		}
		w->count++;
		if (w->nlat < w->caplat)
			w->lat[w->nlat++] = ns_to_ms(t1 - t0);
	}
	return NULL;
}

static void bench_puts(int nthreads, const char *tag)
{
	char dir[PATH_MAX], name[64];
	sub_dir(tag, dir, sizeof dir);
	snprintf(name, sizeof name, "durable puts, %d writer%s", nthreads,
		 nthreads == 1 ? "" : "s");
	printf("- %s (%.1f s)\n", name, cfg.phase_s);
	fflush(stdout);

	store *s;
	int rc = open_store(dir, -1, -1, &s);
	if (rc != 0) {
		add_fail(name, "store_open", rc);
		return;
	}
	store_set_notify(s, notify_cb, NULL);

	struct put_worker *w = calloc((size_t)nthreads, sizeof *w);
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, (unsigned)nthreads + 1);
	size_t cap = (size_t)(1 << 20) / (size_t)nthreads;
	__atomic_store_n(&g_stop, 0, __ATOMIC_RELAXED);
	for (int i = 0; i < nthreads; i++) {
		w[i] = (struct put_worker){
		    .s = s, .id = i, .tag = tag, .bar = &bar, .caplat = cap};
		w[i].lat = malloc(cap * sizeof(double));
		pthread_create(&w[i].th, NULL, put_thread, &w[i]);
	}
	pthread_barrier_wait(&bar);
	uint64_t n0 = notifies();
	int64_t rev0 = store_revision(s);
	int64_t t0 = now_ns();
	sleep_ns((int64_t)(cfg.phase_s * 1e9));
	__atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
	uint64_t total = 0;
	size_t nl = 0;
	int err = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(w[i].th, NULL);
		total += w[i].count;
		nl += w[i].nlat;
		if (w[i].err && !err)
			err = w[i].err;
	}
	int64_t t1 = now_ns();
	uint64_t commits = notifies() - n0;
	int64_t rev1 = store_revision(s);
	store_set_notify(s, NULL, NULL);

	double *lat = malloc((nl ? nl : 1) * sizeof(double));
	size_t k = 0;
	for (int i = 0; i < nthreads; i++) {
		memcpy(lat + k, w[i].lat, w[i].nlat * sizeof(double));
		k += w[i].nlat;
		free(w[i].lat);
	}
	qsort(lat, nl, sizeof(double), cmp_double);
	double secs = (double)(t1 - t0) / 1e9;
	double rate = (double)total / secs;

	if (err) {
		add_fail(name, "store_put", err);
	} else {
		add_row(name, rate, "puts/s", 0,
			"%" PRIu64 " puts in %.1f s; %.1fx the fsync rate",
			total, secs,
			cfg.fsync_rate > 0 ? rate / cfg.fsync_rate : NAN);
		char ln[80];
		snprintf(ln, sizeof ln, "  put latency p50, %d writer%s",
			 nthreads, nthreads == 1 ? "" : "s");
		add_row(ln, pct(lat, nl, 0.5), "ms", 2,
			"p99 %.2f ms, max %.2f ms", pct(lat, nl, 0.99),
			pct(lat, nl, 1.0));
		snprintf(ln, sizeof ln, "  group commit batch, %d writer%s",
			 nthreads, nthreads == 1 ? "" : "s");
		if (commits > 0)
			add_row(ln, (double)total / (double)commits, "puts", 1,
				"puts / commit notifications (%" PRIu64
				"); revisions %" PRId64,
				commits, rev1 - rev0);
		else
			add_row(ln, NAN, "puts", 1,
				"not observable (no commit notifications)");
		if (nthreads > 1 && cfg.fsync_rate > 0)
			printf("  puts/s / probe fsync/s = %.1f\n",
			       rate / cfg.fsync_rate);
	}
	printf("  %.0f puts/s, p50 %.2f ms, p99 %.2f ms, %" PRIu64
	       " commit notifications\n",
	       rate, pct(lat, nl, 0.5), pct(lat, nl, 0.99), commits);
	fflush(stdout);
	free(lat);
	free(w);
	pthread_barrier_destroy(&bar);
	store_close(s);
	cleanup(dir);
}

/* ------------------------------------------------------------------------
 * store_txn_async from one thread, bounded in flight
 */

#define ASYNC_INFLIGHT 1024

static struct {
	sem_t sem;
	uint64_t done, errs; /* atomic */
	int first_err;	     /* atomic */
} g_async;

static void async_cb(int err, store_txn_result *res, void *arg)
{
	(void)arg;
	if (err != 0) {
		__atomic_add_fetch(&g_async.errs, 1, __ATOMIC_RELAXED);
		int zero = 0;
		__atomic_compare_exchange_n(&g_async.first_err, &zero, err,
					    false, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED);
	} else {
		store_txn_result_delete(res);
		__atomic_add_fetch(&g_async.done, 1, __ATOMIC_RELAXED);
	}
	sem_post(&g_async.sem);
}

static bool sem_wait_ms(sem_t *sem, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	while (sem_timedwait(sem, &ts) != 0) {
		if (errno != EINTR)
			return false;
	}
	return true;
}

static void bench_async(void)
{
	const char *name = "async puts, 1 thread, 1024 in flight";
	char dir[PATH_MAX];
	sub_dir("async", dir, sizeof dir);
	printf("- %s (%.1f s)\n", name, cfg.phase_s);
	fflush(stdout);

	store *s;
	int rc = open_store(dir, -1, -1, &s);
	if (rc != 0) {
		add_fail(name, "store_open", rc);
		return;
	}
	store_set_notify(s, notify_cb, NULL);
	sem_init(&g_async.sem, 0, ASYNC_INFLIGHT);
	g_async.done = g_async.errs = 0;
	g_async.first_err = 0;

	char key[128], val[512];
	uint64_t submitted = 0;
	int submit_err = 0;
	bool hung = false;
	uint64_t n0 = notifies();
	int64_t t0 = now_ns(), end = t0 + (int64_t)(cfg.phase_s * 1e9);
	while (now_ns() < end) {
		if (!sem_wait_ms(&g_async.sem, 10000)) {
			hung = true;
			break;
		}
		snprintf(key, sizeof key, "/registry/bench/async/obj-%" PRIu64,
			 submitted);
		store_op op = {.type = STORE_OP_PUT,
			       .key = key,
			       .value = val,
			       .value_len =
				   make_value(val, sizeof val, key, submitted)};
		store_txn t = {.success = &op, .nsuccess = 1};
		rc = store_txn_async(s, &t, async_cb, NULL);
		if (rc != 0) {
			sem_post(&g_async.sem);
			submit_err = rc;
			break;
		}
		submitted++;
	}
	/* Wait for every callback: take back all the tokens. */
	int got = 0;
	if (!hung)
		for (; got < ASYNC_INFLIGHT; got++)
			if (!sem_wait_ms(&g_async.sem, 10000)) {
				hung = true;
				break;
			}
	int64_t t1 = now_ns();
	uint64_t commits = notifies() - n0;
	double secs = (double)(t1 - t0) / 1e9;
	uint64_t done = __atomic_load_n(&g_async.done, __ATOMIC_RELAXED);
	uint64_t errs = __atomic_load_n(&g_async.errs, __ATOMIC_RELAXED);
	store_set_notify(s, NULL, NULL);

	if (hung)
		add_fail(name, "callbacks stopped arriving (10 s)", STORE_EIO);
	else if (submit_err)
		add_fail(name, "store_txn_async", submit_err);
	else if (errs)
		add_fail(name, "callback error", g_async.first_err);
	else
		add_row(name, (double)done / secs, "puts/s", 0,
			"%" PRIu64 " puts in %.1f s; %.1f puts per commit "
			"notification",
			done, secs,
			commits ? (double)done / (double)commits : NAN);
	printf("  %.0f puts/s (%" PRIu64 " submitted, %" PRIu64
	       " done, %" PRIu64 " failed)\n",
	       (double)done / secs, submitted, done, errs);
	fflush(stdout);
	store_close(s); /* fails whatever is still pending (if hung) */
	if (!hung)
		sem_destroy(&g_async.sem);
	cleanup(dir);
}

/* ------------------------------------------------------------------------
 * Point reads, prefix range, startup -- one store of nkeys keys
 */

#define KEY_FMT "/registry/bench/ns/obj-%06d"

struct read_worker {
	pthread_t th;
	store *s;
	uint64_t seed, count, misses;
	pthread_barrier_t *bar;
	int err;
};

static void *read_thread(void *arg)
{
	struct read_worker *w = arg;
	char key[96];
	pthread_barrier_wait(w->bar);
	while (!stopped()) {
		int i = (int)(xorshift(&w->seed) % (uint64_t)cfg.nkeys);
		snprintf(key, sizeof key, KEY_FMT, i);
		store_range_result r;
		int rc = store_range(w->s, key, NULL, 0, 0, &r);
		if (rc != 0) {
			w->err = rc;
			break;
		}
		if (r.count != 1)
			w->misses++;
		store_range_result_free(&r);
		w->count++;
	}
	return NULL;
}

static void bench_reads(store *s, int nthreads)
{
	char name[64];
	snprintf(name, sizeof name, "point reads, %d thread%s", nthreads,
		 nthreads == 1 ? "" : "s");
	printf("- %s (%.1f s)\n", name, cfg.phase_s);
	fflush(stdout);
	struct read_worker w[8];
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, (unsigned)nthreads + 1);
	__atomic_store_n(&g_stop, 0, __ATOMIC_RELAXED);
	for (int i = 0; i < nthreads; i++) {
		w[i] = (struct read_worker){.s = s,
					    .seed = 0x9E3779B97F4A7C15ull *
						    (uint64_t)(i + 1),
					    .bar = &bar};
		pthread_create(&w[i].th, NULL, read_thread, &w[i]);
	}
	pthread_barrier_wait(&bar);
	int64_t t0 = now_ns();
	sleep_ns((int64_t)(cfg.phase_s * 1e9));
	__atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
	uint64_t total = 0, misses = 0;
	int err = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(w[i].th, NULL);
		total += w[i].count;
		misses += w[i].misses;
		if (w[i].err && !err)
			err = w[i].err;
	}
	int64_t t1 = now_ns();
	pthread_barrier_destroy(&bar);
	double rate = (double)total / ((double)(t1 - t0) / 1e9);
	if (err)
		add_fail(name, "store_range", err);
	else
		add_row(
		    name, rate, "reads/s", 0,
		    "store_range of 1 key at the latest revision, %d keys%s",
		    cfg.nkeys, misses ? " (SOME KEYS MISSING)" : "");
	printf("  %.0f reads/s%s\n", rate, misses ? ", some keys missing" : "");
	fflush(stdout);
}

static void bench_range(store *s)
{
	/* KEY_FMT pads to 6 digits and range_keys is nkeys / 10 (a power of
	 * 10): the keys numbered range_keys .. 2*range_keys-1 share a prefix,
	 * e.g. obj-01 for 10,000 of 100,000. */
	char num[16], prefix[96], name[64];
	snprintf(num, sizeof num, "%06d", cfg.range_keys);
	int digits = 6;
	for (int r = cfg.range_keys; r > 1; r /= 10)
		digits--;
	snprintf(prefix, sizeof prefix, "/registry/bench/ns/obj-%.*s", digits,
		 num);
	snprintf(name, sizeof name, "prefix range of %d keys", cfg.range_keys);
	char *end = store_prefix_end(prefix);
	printf("- %s (%s)\n", name, prefix);
	fflush(stdout);

	double ms[64];
	int n = 0, maxn = cfg.quick ? 5 : 15;
	int64_t deadline = now_ns() + (int64_t)(cfg.quick ? 1e9 : 4e9);
	size_t count = 0;
	int err = 0;
	while (n < maxn && (n < 3 || now_ns() < deadline)) {
		store_range_result r;
		int64_t t0 = now_ns();
		int rc = store_range(s, prefix, end, 0, 0, &r);
		int64_t t1 = now_ns();
		if (rc != 0) {
			err = rc;
			break;
		}
		count = r.count;
		store_range_result_free(&r);
		ms[n++] = ns_to_ms(t1 - t0);
	}
	free(end);
	if (err) {
		add_fail(name, "store_range", err);
		return;
	}
	qsort(ms, (size_t)n, sizeof(double), cmp_double);
	add_row(name, pct(ms, (size_t)n, 0.5), "ms", 2,
		"median of %d; min %.2f, max %.2f ms; %zu keys returned%s", n,
		ms[0], ms[n - 1], count,
		count == (size_t)cfg.range_keys ? "" : " (WRONG COUNT)");
	printf("  median %.2f ms over %d runs, %zu keys\n",
	       pct(ms, (size_t)n, 0.5), n, count);
	fflush(stdout);
}

/* Range every key under /registry/ at the latest revision, in one call
 * (limit 0) or in pages of `page`. Returns the key count or a negative
 * error. */
static int64_t read_all(store *s, int64_t page)
{
	const char *prefix = "/registry/";
	char *end = store_prefix_end(prefix);
	if (!end)
		return STORE_ENOMEM;
	char start[STORE_MAX_KEY + 2];
	snprintf(start, sizeof start, "%s", prefix);
	int64_t total = 0, rev = 0;
	for (;;) {
		store_range_result r;
		int rc = store_range(s, start, end, rev, page, &r);
		if (rc != 0) {
			free(end);
			return rc;
		}
		total += (int64_t)r.count;
		rev = r.revision; /* later pages read the same revision */
		bool more = r.more && r.count > 0;
		if (more) {
			/* Keys are byte strings without NUL, so the smallest
			 * key after K is K followed by byte 0x01. */
			const char *last = r.kvs[r.count - 1].key;
			size_t l = strlen(last);
			if (l + 2 > sizeof start) {
				more = false;
			} else {
				memcpy(start, last, l);
				start[l] = '\x01';
				start[l + 1] = 0;
			}
		}
		store_range_result_free(&r);
		if (!more)
			break;
	}
	free(end);
	return total;
}

/* Open the store in dir and read everything; fills the times in ms. */
static int timed_open_read(const char *dir, int64_t page, double *open_ms,
			   double *read_ms, int64_t *count)
{
	store *s;
	int64_t t0 = now_ns();
	int rc = open_store(dir, -1, -1, &s);
	int64_t t1 = now_ns();
	if (rc != 0)
		return rc;
	int64_t n = read_all(s, page);
	int64_t t2 = now_ns();
	store_close(s);
	if (n < 0)
		return (int)n;
	*open_ms = ns_to_ms(t1 - t0);
	*read_ms = ns_to_ms(t2 - t1);
	*count = n;
	return 0;
}

static void bench_keyspace(void)
{
	char dir[PATH_MAX], name[64];
	sub_dir("keyspace", dir, sizeof dir);
	store *s;
	int rc = open_store(dir, -1, -1, &s);
	if (rc != 0) {
		add_fail("bulk load", "store_open", rc);
		return;
	}

	snprintf(name, sizeof name, "bulk load of %d keys", cfg.nkeys);
	printf("- %s (1000 puts per txn)\n", name);
	fflush(stdout);
	int64_t t0 = now_ns();
	rc = bulk_load(s, KEY_FMT, cfg.nkeys, 1000);
	int64_t t1 = now_ns();
	if (rc != 0) {
		add_fail(name, "store_txn", rc);
		store_close(s);
		cleanup(dir);
		return;
	}
	double secs = (double)(t1 - t0) / 1e9;
	add_row(name, (double)cfg.nkeys / secs, "keys/s", 0,
		"txns of 1000 puts; %.2f s; db %.1f MiB", secs,
		(double)store_db_size(s) / 1048576.0);
	printf("  %.2f s\n", secs);

	bench_reads(s, 1);
	bench_reads(s, 2);
	bench_range(s);
	store_close(s);

	/* Startup. Cold: the page cache of the db files is dropped first. */
	printf("- startup with %d keys\n", cfg.nkeys);
	fflush(stdout);
	double open_ms, read_ms, wopen_ms, wread_ms, popen_ms, pread_ms;
	int64_t count, wcount, pcount;
	drop_dir_cache(dir);
	rc = timed_open_read(dir, 0, &open_ms, &read_ms, &count);
	if (rc == 0)
		rc = timed_open_read(dir, 0, &wopen_ms, &wread_ms, &wcount);
	if (rc == 0)
		rc = timed_open_read(dir, 10000, &popen_ms, &pread_ms, &pcount);
	if (rc != 0) {
		add_fail("startup", "open/range", rc);
	} else {
		const char *ok = count == cfg.nkeys ? "" : " (WRONG COUNT)";
		add_row("startup: store_open (cold cache)", open_ms, "ms", 2,
			"page cache of the db files dropped (fadvise)");
		snprintf(name, sizeof name,
			 "startup: open + read all %dk (cold)",
			 cfg.nkeys / 1000);
		add_row(name, open_ms + read_ms, "ms", 1,
			"one store_range, limit 0; %" PRId64
			" keys%s; goal <= 1000 ms",
			count, ok);
		snprintf(name, sizeof name,
			 "startup: open + read all %dk (warm)",
			 cfg.nkeys / 1000);
		add_row(name, wopen_ms + wread_ms, "ms", 1,
			"open %.2f ms + range %.1f ms", wopen_ms, wread_ms);
		snprintf(name, sizeof name,
			 "startup: open + read all %dk (paged)",
			 cfg.nkeys / 1000);
		add_row(name, popen_ms + pread_ms, "ms", 1,
			"warm; pages of 10,000 at one revision; %" PRId64
			" keys%s",
			pcount, pcount == cfg.nkeys ? "" : " (WRONG COUNT)");
		printf(
		    "  cold: open %.2f ms, read %.1f ms; warm: open %.2f ms, "
		    "read %.1f ms; paged: read %.1f ms\n",
		    open_ms, read_ms, wopen_ms, wread_ms, pread_ms);
	}
	fflush(stdout);
	cleanup(dir);
}

/* ------------------------------------------------------------------------
 * Watch delivery latency
 */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int nwatchers, nevents;
	int64_t *t0; /* per event: stamp before store_put (atomic) */
	int *got;    /* per event: watchers that have it (under mu) */
	double *lat; /* [watcher * nevents + event], ms; NAN = not seen */
	int err;     /* first store_watch_next error (under mu) */
} g_watch;

struct watch_worker {
	pthread_t th;
	store_watch *w;
	int id;
};

static void *watch_thread(void *arg)
{
	struct watch_worker *ww = arg;
	int idx[256];
	while (!stopped()) {
		store_event **evs;
		size_t n;
		int rc = store_watch_next(ww->w, 100, 256, &evs, &n, NULL);
		int64_t t = now_ns();
		if (rc != 0) {
			pthread_mutex_lock(&g_watch.mu);
			if (!g_watch.err)
				g_watch.err = rc;
			pthread_cond_broadcast(&g_watch.cv);
			pthread_mutex_unlock(&g_watch.mu);
			break;
		}
		size_t k = 0;
		for (size_t i = 0; i < n && i < 256; i++) {
			const char *dash = strrchr(evs[i]->kv.key, '-');
			int e = dash ? atoi(dash + 1) : -1;
			if (e < 0 || e >= g_watch.nevents)
				continue;
			int64_t t0 =
			    __atomic_load_n(&g_watch.t0[e], __ATOMIC_ACQUIRE);
			g_watch.lat[(size_t)ww->id * (size_t)g_watch.nevents +
				    (size_t)e] = ns_to_ms(t - t0);
			idx[k++] = e;
		}
		store_events_free(evs, n);
		if (k) {
			pthread_mutex_lock(&g_watch.mu);
			for (size_t i = 0; i < k; i++)
				if (++g_watch.got[idx[i]] == g_watch.nwatchers)
					pthread_cond_broadcast(&g_watch.cv);
			pthread_mutex_unlock(&g_watch.mu);
		}
	}
	return NULL;
}

static void bench_watch_round(store *s, int nw, int round)
{
	char name[64];
	snprintf(name, sizeof name, "watch latency p50, %d watcher%s", nw,
		 nw == 1 ? "" : "s");
	int ne = cfg.watch_events;
	printf("- watch delivery, %d watcher%s, %d events\n", nw,
	       nw == 1 ? "" : "s", ne);
	fflush(stdout);

	char prefix[64];
	snprintf(prefix, sizeof prefix, "/registry/bench/watch/r%d/", round);
	char *end = store_prefix_end(prefix);
	g_watch.nwatchers = nw;
	g_watch.nevents = ne;
	g_watch.t0 = calloc((size_t)ne, sizeof(int64_t));
	g_watch.got = calloc((size_t)ne, sizeof(int));
	g_watch.lat = malloc((size_t)nw * (size_t)ne * sizeof(double));
	g_watch.err = 0;
	for (size_t i = 0; i < (size_t)nw * (size_t)ne; i++)
		g_watch.lat[i] = NAN;
	struct watch_worker *ww = calloc((size_t)nw, sizeof *ww);
	int rc = 0, opened = 0;
	for (; opened < nw; opened++) {
		ww[opened].id = opened;
		rc = store_watch_open(s, prefix, end, 0, &ww[opened].w);
		if (rc != 0)
			break;
	}
	if (rc != 0) {
		add_fail(name, "store_watch_open", rc);
		goto out;
	}
	__atomic_store_n(&g_stop, 0, __ATOMIC_RELAXED);
	for (int i = 0; i < nw; i++)
		pthread_create(&ww[i].th, NULL, watch_thread, &ww[i]);
	sleep_ns(50 * 1000000); /* let them block in store_watch_next */

	char key[128], val[512];
	int missed = 0, werr = 0;
	double *last = malloc((size_t)ne * sizeof(double));
	for (int e = 0; e < ne; e++) {
		snprintf(key, sizeof key, "%sobj-%d", prefix, e);
		size_t len = make_value(val, sizeof val, key, (uint64_t)e);
		__atomic_store_n(&g_watch.t0[e], now_ns(), __ATOMIC_RELEASE);
		rc = store_put(s, key, val, len, 0, NULL);
		if (rc != 0) {
			werr = rc;
			break;
		}
		/* Wait until every watcher has it (at most 5 s). */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 5;
		pthread_mutex_lock(&g_watch.mu);
		while (g_watch.got[e] < nw && !g_watch.err)
			if (pthread_cond_timedwait(&g_watch.cv, &g_watch.mu,
						   &ts) == ETIMEDOUT)
				break;
		if (g_watch.got[e] < nw)
			missed++;
		pthread_mutex_unlock(&g_watch.mu);
		if (g_watch.err)
			break;
	}
	__atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < nw; i++)
		pthread_join(ww[i].th, NULL);

	/* Every delivery, and per event the slowest watcher. */
	size_t nl = 0, nlast = 0;
	double *all = malloc((size_t)nw * (size_t)ne * sizeof(double));
	for (int e = 0; e < ne; e++) {
		double mx = NAN;
		bool complete = true;
		for (int i = 0; i < nw; i++) {
			double v =
			    g_watch.lat[(size_t)i * (size_t)ne + (size_t)e];
			if (isnan(v)) {
				complete = false;
				continue;
			}
			all[nl++] = v;
			if (isnan(mx) || v > mx)
				mx = v;
		}
		if (complete)
			last[nlast++] = mx;
	}
	qsort(all, nl, sizeof(double), cmp_double);
	qsort(last, nlast, sizeof(double), cmp_double);
	if (werr) {
		add_fail(name, "store_put", werr);
	} else if (g_watch.err) {
		add_fail(name, "store_watch_next", g_watch.err);
	} else {
		char n2[64];
		add_row(name, pct(all, nl, 0.5), "ms", 2,
			"%zu deliveries (%d events x %d); put+fsync included%s",
			nl, ne, nw, missed ? "; SOME EVENTS MISSED" : "");
		snprintf(n2, sizeof n2, "watch latency p99, %d watcher%s", nw,
			 nw == 1 ? "" : "s");
		add_row(n2, pct(all, nl, 0.99), "ms", 2,
			"slowest watcher per event: p50 %.2f, p99 %.2f ms",
			pct(last, nlast, 0.5), pct(last, nlast, 0.99));
		snprintf(n2, sizeof n2, "watch latency max, %d watcher%s", nw,
			 nw == 1 ? "" : "s");
		add_row(n2, pct(all, nl, 1.0), "ms", 2,
			"%d events not delivered to every watcher in 5 s",
			missed);
	}
	printf("  p50 %.2f ms, p99 %.2f ms, max %.2f ms; all watchers: "
	       "p50 %.2f, p99 %.2f ms; %d missed\n",
	       pct(all, nl, 0.5), pct(all, nl, 0.99), pct(all, nl, 1.0),
	       pct(last, nlast, 0.5), pct(last, nlast, 0.99), missed);
	fflush(stdout);
	free(all);
	free(last);
out:
	for (int i = 0; i < opened; i++)
		store_watch_close(ww[i].w);
	free(ww);
	free(end);
	free(g_watch.t0);
	free(g_watch.got);
	free(g_watch.lat);
}

static void bench_watch(void)
{
	char dir[PATH_MAX];
	sub_dir("watch", dir, sizeof dir);
	store *s;
	int rc = open_store(dir, -1, -1, &s);
	if (rc != 0) {
		add_fail("watch latency", "store_open", rc);
		return;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&g_watch.mu, NULL);
	pthread_cond_init(&g_watch.cv, &ca);
	pthread_condattr_destroy(&ca);
	bench_watch_round(s, 1, 1);
	bench_watch_round(s, cfg.watchers_big, 2);
	pthread_cond_destroy(&g_watch.cv);
	pthread_mutex_destroy(&g_watch.mu);
	store_close(s);
	cleanup(dir);
}

/* ------------------------------------------------------------------------
 * Steady updates with automatic compaction
 */

static struct {
	store *s;
	int64_t next; /* atomic: the next update number */
	int64_t done; /* atomic */
	int64_t total;
	int err; /* atomic: the first error */
} g_steady;

static void *steady_thread(void *arg)
{
	(void)arg;
	char key[128], val[512];
	while (!stopped()) {
		int64_t i =
		    __atomic_fetch_add(&g_steady.next, 1, __ATOMIC_RELAXED);
		if (i >= g_steady.total)
			break;
		snprintf(key, sizeof key, "/registry/bench/steady/obj-%06d",
			 (int)(i % cfg.steady_keys));
		size_t len = make_value(val, sizeof val, key, (uint64_t)i);
		int rc = store_put(g_steady.s, key, val, len, 0, NULL);
		if (rc != 0) {
			int zero = 0;
			__atomic_compare_exchange_n(&g_steady.err, &zero, rc,
						    false, __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED);
			break;
		}
		__atomic_add_fetch(&g_steady.done, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void bench_steady(void)
{
	char dir[PATH_MAX], name[64];
	sub_dir("steady", dir, sizeof dir);
	snprintf(name, sizeof name, "steady updates, %d writer%s", cfg.writers,
		 cfg.writers == 1 ? "" : "s");
	printf("- steady updates: %d over %d keys, %d writer(s), "
	       "history_revisions %" PRId64 ", at most %.0f s\n",
	       cfg.steady_updates, cfg.steady_keys, cfg.writers,
	       cfg.steady_history, cfg.steady_deadline_s);
	fflush(stdout);
	store *s;
	int rc = open_store(dir, cfg.steady_history, 0, &s);
	if (rc != 0) {
		add_fail(name, "store_open", rc);
		return;
	}
	rc = bulk_load(s, "/registry/bench/steady/obj-%06d", cfg.steady_keys,
		       1000);
	if (rc != 0) {
		add_fail(name, "bulk load", rc);
		store_close(s);
		cleanup(dir);
		return;
	}
	int64_t size0 = store_db_size(s);
	g_steady.s = s;
	g_steady.next = g_steady.done = 0;
	g_steady.total = cfg.steady_updates;
	g_steady.err = 0;
	__atomic_store_n(&g_stop, 0, __ATOMIC_RELAXED);

	int nw = cfg.writers;
	pthread_t *th = calloc((size_t)nw, sizeof *th);
	int64_t t0 = now_ns();
	int64_t deadline = t0 + (int64_t)(cfg.steady_deadline_s * 1e9);
	for (int i = 0; i < nw; i++)
		pthread_create(&th[i], NULL, steady_thread, NULL);

	/* Sample the size; remember it at every 10% of progress. */
	int64_t maxsize = size0, at[11] = {0};
	int next_decile = 1;
	at[0] = size0;
	bool timed_out = false;
	for (;;) {
		sleep_ns(100 * 1000000);
		int64_t done =
		    __atomic_load_n(&g_steady.done, __ATOMIC_RELAXED);
		int64_t sz = store_db_size(s);
		if (sz > maxsize)
			maxsize = sz;
		while (next_decile <= 10 &&
		       done * 10 >= (int64_t)next_decile * g_steady.total)
			at[next_decile++] = sz;
		if (done >= g_steady.total ||
		    __atomic_load_n(&g_steady.err, __ATOMIC_RELAXED))
			break;
		if (now_ns() >= deadline) {
			timed_out = true;
			break;
		}
	}
	__atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < nw; i++)
		pthread_join(th[i], NULL);
	int64_t t1 = now_ns();
	free(th);
	int64_t done = __atomic_load_n(&g_steady.done, __ATOMIC_RELAXED);
	int64_t final = store_db_size(s);
	if (final > maxsize)
		maxsize = final;
	int64_t rev = store_revision(s), crev = store_compact_revision(s);
	double secs = (double)(t1 - t0) / 1e9;
	int err = __atomic_load_n(&g_steady.err, __ATOMIC_RELAXED);

	printf("  db size (MiB) at 0%%..100%% of the updates:");
	for (int d = 0; d < next_decile; d++)
		printf(" %.1f", (double)at[d] / 1048576.0);
	printf("\n  revision %" PRId64 ", compact revision %" PRId64
	       ", %.0f puts/s%s\n",
	       rev, crev, (double)done / secs,
	       timed_out ? " (stopped at the deadline)" : "");
	fflush(stdout);

	if (err) {
		add_fail(name, "store_put", err);
	} else {
		add_row(name, (double)done / secs, "puts/s", 0,
			"%" PRId64 " updates over %d keys in %.1f s%s", done,
			cfg.steady_keys, secs,
			timed_out ? " (deadline hit)" : "");
		add_row("  db size after initial load",
			(double)size0 / 1048576.0, "MiB", 1, "%d keys",
			cfg.steady_keys);
		add_row("  db size at 50% of the updates",
			next_decile > 5 ? (double)at[5] / 1048576.0 : NAN,
			"MiB", 1, NULL);
		add_row("  db size at the end", (double) final / 1048576.0,
			"MiB", 1,
			"max seen %.1f MiB; db + WAL; end / 50%% = %.2f "
			"(bounded: about 1)",
			(double)maxsize / 1048576.0,
			next_decile > 5 && at[5] > 0
			    ? (double) final / (double)at[5]
			    : NAN);
		add_row("  history kept (revision - compact rev)",
			(double)(rev - crev), "revs", 0,
			"history_revisions %" PRId64
			"; compact revision %" PRId64,
			cfg.steady_history, crev);
	}
	store_close(s);
	cleanup(dir);
}

/* ------------------------------------------------------------------------
 * main
 */

static bool want(const char *phase)
{
	if (!cfg.only)
		return true;
	size_t l = strlen(phase);
	for (const char *p = cfg.only; *p;) {
		size_t n = strcspn(p, ",");
		if (n == l && strncmp(p, phase, l) == 0)
			return true;
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: bench_store [--quick] [--dir DIR] [--seconds S] [--keep]\n"
	    "                   [--writers N] [--only PHASE,...]\n"
	    "  --quick      small sizes and short phases (a smoke test)\n"
	    "  --dir DIR    make the scratch directory inside DIR "
	    "(default /tmp)\n"
	    "  --seconds S  length of each timed phase (default 3, quick "
	    "0.5)\n"
	    "  --keep       do not remove the scratch directory\n"
	    "  --writers N  writer threads for the many-writer phases "
	    "(default 64)\n"
	    "  --only LIST  run only these phases: put1, putN, async,\n"
	    "               keyspace (reads, range, startup), watch, steady\n");
}

int main(int argc, char **argv)
{
	cfg.parent = "/tmp";
	double seconds = 0;
	int writers = 64;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			cfg.quick = true;
		} else if (strcmp(argv[i], "--keep") == 0) {
			cfg.keep = true;
		} else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			cfg.parent = argv[++i];
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			seconds = atof(argv[++i]);
			if (seconds <= 0) {
				usage(stderr);
				return 2;
			}
		} else if (strcmp(argv[i], "--writers") == 0 && i + 1 < argc) {
			writers = atoi(argv[++i]);
			if (writers < 1 || writers > 4096) {
				usage(stderr);
				return 2;
			}
		} else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			cfg.only = argv[++i];
		} else if (strcmp(argv[i], "-h") == 0 ||
			   strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (cfg.quick) {
		cfg.phase_s = 0.5;
		cfg.nkeys = 10000;
		cfg.watch_events = 50;
		cfg.watchers_big = 100;
		cfg.steady_updates = 20000;
		cfg.steady_deadline_s = 20;
	} else {
		cfg.phase_s = 3;
		cfg.nkeys = 100000;
		cfg.watch_events = 200;
		cfg.watchers_big = 100;
		cfg.steady_updates = 200000;
		cfg.steady_deadline_s = 60;
	}
	if (seconds > 0)
		cfg.phase_s = seconds;
	cfg.range_keys = cfg.nkeys / 10;
	cfg.steady_keys = 1000;
	cfg.steady_history = 10000;
	cfg.writers = writers;

	snprintf(cfg.scratch, sizeof cfg.scratch, "%s/bench_store.XXXXXX",
		 cfg.parent);
	if (!mkdtemp(cfg.scratch)) {
		fprintf(stderr, "bench_store: mkdtemp %s: %s\n", cfg.scratch,
			strerror(errno));
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	int64_t t0 = now_ns();
	print_facts();
	printf("\n");

	if (want("put1"))
		bench_puts(1, "put1");
	if (want("putN"))
		bench_puts(cfg.writers, "putN");
	if (want("async"))
		bench_async();
	if (want("keyspace"))
		bench_keyspace();
	if (want("watch"))
		bench_watch();
	if (want("steady"))
		bench_steady();
	fsync_again();

	double total = (double)(now_ns() - t0) / 1e9;
	print_table();
	char load[128] = "unknown";
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fgets(load, sizeof load, f))
			load[strcspn(load, "\n")] = 0;
		fclose(f);
	}
	printf("\ntotal %.0f s; loadavg at the end %s\n", total, load);

	if (cfg.keep)
		printf("scratch directory kept: %s\n", cfg.scratch);
	else
		rm_rf(cfg.scratch);
	for (size_t i = 0; i < nrows; i++)
		if (strncmp(rows[i].note, "FAILED", 6) == 0)
			return 1;
	return 0;
}
