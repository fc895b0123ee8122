/*
 * test_backup.c -- `signalbox backup` and `signalbox restore` against a
 * store that is being written to.
 *
 * A child process opens the store in DIR and writes continuously from two
 * threads (puts, overwrites, deletes), reporting each acknowledged write to
 * the parent over a pipe. Meanwhile the parent runs the real binary
 * ($SB_BINARY, set by CTest; never through a shell) and checks:
 *
 *   - `signalbox backup --data-dir DIR FILE` exits 0 while the store is
 *     being written, and FILE passes PRAGMA integrity_check;
 *   - `signalbox restore FILE --data-dir DIR` exits non-zero with a message
 *     on stderr while the child holds DIR (STORE_ELOCKED), and the child
 *     keeps writing;
 *   - after the child is killed, everything it acknowledged is in DIR;
 *   - FILE restored into a new directory: integrity_check ok; its revision
 *     R is at least the newest revision acknowledged before the backup
 *     started; its log has no holes; its state equals the original's
 *     range at revision R, and its log equals the original's log up to R
 *     (both opened with automatic compaction off);
 *   - restore of garbage (random bytes, a file with an SQLite header and
 *     garbage after it, a truncated backup, a missing file) exits non-zero
 *     with a message and leaves the target's existing database byte for
 *     byte as it was, and still openable.
 */
#include "../unit/testutil.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define WATCHDOG_SECONDS  300
#define WRITERS		  2
#define KEYS		  200
#define CHILD_MAX_SECONDS 120
#define ACKS_BETWEEN	  1000
#define BACKUPS		  3
#define BACKUP_TIMEOUT_MS 90000
#define CMD_TIMEOUT_MS	  30000

static const char *binary;
static char *src_dir, *dst_dir, *work_dir;
static volatile pid_t child_pid;
static int ack_fd = -1;

/* What the parent knows of the child's acknowledged writes. */
static char last_op[WRITERS][KEYS];
static int64_t last_rev[WRITERS][KEYS];
static int64_t *ack_revs;
static size_t nacks, capacks;
static int64_t max_acked;
static bool child_ready;

static void cleanup(void)
{
	if (child_pid > 0) {
		kill(child_pid, SIGKILL);
		waitpid(child_pid, NULL, 0);
		child_pid = 0;
	}
	if (getenv("SB_KEEP")) {
		fprintf(stderr, "test_backup: left %s %s %s\n",
			src_dir ? src_dir : "", dst_dir ? dst_dir : "",
			work_dir ? work_dir : "");
		return;
	}
	tu_rmrf(src_dir);
	tu_rmrf(dst_dir);
	tu_rmrf(work_dir);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "test_backup: FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	cleanup();
	exit(1);
}

static void on_alarm(int sig)
{
	static const char msg[] = "test_backup: FAIL: watchdog: the test did "
				  "not finish in time\n";

	(void)sig;
	if (child_pid > 0)
		kill(child_pid, SIGKILL);
	if (write(2, msg, sizeof msg - 1) < 0) {
		/* nothing to do */
	}
	_exit(1);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *path_join(const char *a, const char *b)
{
	char *p;

	if (asprintf(&p, "%s/%s", a, b) < 0)
		die("out of memory");
	return p;
}

static int open_store(const char *dir, store **s, char *err, size_t errlen)
{
	store_options o;

	store_options_init(&o);
	o.data_dir = dir;
	o.history_revisions = 0;
	o.history_seconds = 0;
	err[0] = '\0';
	*s = NULL;
	return store_open(&o, s, err, errlen);
}

static store *must_open(const char *dir, const char *when)
{
	char err[512];
	store *s;
	int rc = open_store(dir, &s, err, sizeof err);

	if (rc != 0)
		die("%s: store_open(%s): %s: %s", when, dir, store_strerror(rc),
		    err);
	return s;
}

/* ---- the writing child -------------------------------------------------- */

struct writer {
	store *s;
	int fd;
	int id;
	int64_t stop_ms;
};

static int write_full(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	bool exists[KEYS] = {false};
	uint64_t x = 0x9e3779b97f4a7c15ULL * (uint64_t)(w->id + 1);
	static char val[2][4200];
	char key[64], line[128];
	long i;

	for (i = 0; now_ms() < w->stop_ms; i++) {
		int64_t rev = 0, deleted = 0;
		int k, rc, n;
		size_t len;
		char op;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		k = (int)(x % KEYS);
		snprintf(key, sizeof key, "/bk/%d/%03d", w->id, k);
		if (exists[k] && (x >> 20) % 4 == 0) {
			op = 'D';
			rc = store_delete(w->s, key, NULL, &deleted, &rev);
			if (rc == 0 && deleted != 1) {
				fprintf(stderr,
					"child: delete %s deleted %" PRId64
					" keys\n",
					key, deleted);
				_exit(3);
			}
			exists[k] = false;
		} else {
			op = 'P';
			len =
			    (size_t)snprintf(val[w->id], 64, "%s@%ld:", key, i);
			while (len < 64 + (x >> 32) % 4096) {
				val[w->id][len] = (char)('A' + len % 53);
				len++;
			}
			rc = store_put(w->s, key, val[w->id], len, 0, &rev);
			exists[k] = true;
		}
		if (rc != 0) {
			fprintf(stderr, "child: %c %s: %s\n", op, key,
				store_strerror(rc));
			_exit(3);
		}
		n = snprintf(line, sizeof line, "%c %d %d %" PRId64 "\n", op,
			     w->id, k, rev);
		if (write_full(w->fd, line, (size_t)n) != 0)
			_exit(4);
	}
	return NULL;
}

static void child_main(int fd, pid_t parent)
{
	struct writer w[WRITERS];
	pthread_t tid[WRITERS];
	store *s;
	int i;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(5);
	s = tu_open(src_dir);
	if (write_full(fd, "R\n", 2) != 0)
		_exit(4);
	for (i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){s, fd, i,
				       now_ms() + CHILD_MAX_SECONDS * 1000};
		if (pthread_create(&tid[i], NULL, writer_main, &w[i]) != 0)
			_exit(6);
	}
	for (i = 0; i < WRITERS; i++)
		pthread_join(tid[i], NULL);
	store_close(s);
	_exit(0);
}

/* ---- reading the child's acknowledgements -------------------------------- */

static void add_ack(char op, int id, int k, int64_t rev)
{
	if (id < 0 || id >= WRITERS || k < 0 || k >= KEYS || rev < 1)
		die("bad acknowledgement from the child: %c %d %d %" PRId64, op,
		    id, k, rev);
	last_op[id][k] = op;
	last_rev[id][k] = rev;
	if (rev > max_acked)
		max_acked = rev;
	if (nacks == capacks) {
		capacks = capacks ? capacks * 2 : 4096;
		ack_revs = realloc(ack_revs, capacks * sizeof *ack_revs);
		if (!ack_revs)
			die("out of memory");
	}
	ack_revs[nacks++] = rev;
}

/* Read what the child wrote, waiting up to timeout_ms for the first bytes.
 * Returns false at EOF. */
static bool drain_acks(int timeout_ms)
{
	static char buf[1 << 16];
	static size_t len;
	struct pollfd pfd = {.fd = ack_fd, .events = POLLIN};

	if (ack_fd < 0)
		return false;
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return true;
	for (;;) {
		ssize_t r = read(ack_fd, buf + len, sizeof buf - len);
		char *p = buf, *nl;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return true;
		if (r < 0)
			die("read from the child: %s", strerror(errno));
		if (r == 0)
			return false;
		len += (size_t)r;
		while ((nl = memchr(p, '\n', (size_t)(buf + len - p)))) {
			char op;
			int id, k;
			int64_t rev;

			*nl = '\0';
			if (strcmp(p, "R") == 0)
				child_ready = true;
			else if (sscanf(p, "%c %d %d %" SCNd64, &op, &id, &k,
					&rev) == 4 &&
				 (op == 'P' || op == 'D'))
				add_ack(op, id, k, rev);
			else
				die("bad line from the child: \"%s\"", p);
			p = nl + 1;
		}
		len = (size_t)(buf + len - p);
		memmove(buf, p, len);
	}
}

static void require_child_alive(const char *when)
{
	int st;
	pid_t r = waitpid(child_pid, &st, WNOHANG);

	if (r == child_pid) {
		child_pid = 0;
		die("%s: the writing child died (%s %d); see its message "
		    "above",
		    when, WIFEXITED(st) ? "exit" : "signal",
		    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	}
}

/* Wait until the child has acknowledged `more` writes beyond now. */
static void wait_acks(size_t more, const char *when)
{
	size_t target = nacks + more;
	int64_t deadline = now_ms() + 30000;

	while (nacks < target) {
		if (now_ms() > deadline)
			die("%s: the child acknowledged %zu writes in 30 s, "
			    "expected %zu",
			    when, nacks + more - target, more);
		if (!drain_acks(100))
			require_child_alive(when);
	}
}

/* ---- running the binary ------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (!f) {
		*len = 0;
		return NULL;
	}
	for (;;) {
		size_t r;

		if (n + 65536 + 1 > cap) {
			cap = cap ? cap * 2 : 131072;
			buf = realloc(buf, cap);
			if (!buf)
				die("out of memory");
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Run argv (no shell) with stdin from /dev/null, stdout and stderr into
 * files; keep reading the child's acks while waiting. Returns the wait
 * status; *err gets stderr (caller frees). */
static int run(char *const argv[], int timeout_ms, char **err)
{
	char *out_path = path_join(work_dir, "cmd.out");
	char *err_path = path_join(work_dir, "cmd.err");
	posix_spawn_file_actions_t fa;
	int64_t deadline = now_ms() + timeout_ms;
	size_t len;
	pid_t pid;
	int rc, st;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out_path,
					 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, err_path,
					 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		die("posix_spawn %s: %s", argv[0], strerror(rc));
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			break;
		if (r < 0)
			die("waitpid: %s", strerror(errno));
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			die("`%s %s` did not finish in %d ms", argv[0], argv[1],
			    timeout_ms);
		}
		if (ack_fd >= 0) {
			if (!drain_acks(5))
				require_child_alive(argv[1]);
		} else {
			usleep(5000);
		}
	}
	*err = read_file(err_path, &len);
	if (!*err)
		*err = strdup("");
	if (len > 0 && (*err)[len - 1] == '\n')
		(*err)[len - 1] = '\0';
	free(out_path);
	free(err_path);
	return st;
}

static void describe(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exit %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, len, "status %#x", st);
}

static void run_ok(const char *what, const char *a1, const char *a2,
		   const char *a3, const char *a4)
{
	char *argv[] = {(char *)binary, (char *)a1, (char *)a2,
			(char *)a3,	(char *)a4, NULL};
	char *err, how[64];
	int st = run(argv, BACKUP_TIMEOUT_MS, &err);

	describe(st, how, sizeof how);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("%s: `signalbox %s %s %s %s`: %s; stderr: %s", what, a1, a2,
		    a3, a4, how, err);
	printf("%s: ok\n", what);
	free(err);
}

/* The command must exit non-zero (not crash) and say why on stderr. */
static void run_refused(const char *what, const char *a1, const char *a2,
			const char *a3, const char *a4)
{
	char *argv[] = {(char *)binary, (char *)a1, (char *)a2,
			(char *)a3,	(char *)a4, NULL};
	char *err, how[64];
	int st = run(argv, CMD_TIMEOUT_MS, &err);

	describe(st, how, sizeof how);
	if (!WIFEXITED(st))
		die("%s: `signalbox %s %s %s %s` crashed: %s; stderr: %s", what,
		    a1, a2, a3, a4, how, err);
	if (WEXITSTATUS(st) == 0)
		die("%s: `signalbox %s %s %s %s` succeeded; it must be refused",
		    what, a1, a2, a3, a4);
	if (!err[0])
		die("%s: `signalbox %s ...` exited %d without a message on "
		    "stderr",
		    what, a1, WEXITSTATUS(st));
	printf("%s: refused (%s): %s\n", what, how, err);
	free(err);
}

/* ---- checks ------------------------------------------------------------- */

static void integrity_check(const char *path, const char *when)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	const char *t;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK)
		die("%s: sqlite3_open_v2(%s): %s", when, path,
		    db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	sqlite3_busy_timeout(db, 10000);
	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) !=
	    SQLITE_OK)
		die("%s: integrity_check on %s: %s", when, path,
		    sqlite3_errmsg(db));
	rc = sqlite3_step(st);
	t = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
	if (!t || strcmp(t, "ok") != 0)
		die("%s: integrity_check on %s: %s", when, path,
		    t ? t : sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Every event from revision 1 (or the compact revision) to `to`, checking
 * there are no holes. */
static store_event **read_log(store *s, int64_t to, size_t *count,
			      const char *when)
{
	int64_t crev = store_compact_revision(s);
	int64_t start = crev > 0 ? crev : 1, last = start - 1;
	store_event **all = NULL;
	size_t n_all = 0, cap = 0;
	store_watch *w = NULL;
	int rc;

	*count = 0;
	if (to < start)
		return NULL;
	rc = store_watch_open(s, "/", "", start, &w);
	if (rc != 0)
		die("%s: store_watch_open(%" PRId64 "): %s", when, start,
		    store_strerror(rc));
	while (last < to) {
		store_event **evs = NULL;
		size_t n = 0, i;

		rc = store_watch_next(w, 10000, 1024, &evs, &n, NULL);
		if (rc != 0)
			die("%s: store_watch_next: %s", when,
			    store_strerror(rc));
		if (n == 0)
			die("%s: the watch stalled at revision %" PRId64
			    " (expected up to %" PRId64 ")",
			    when, last, to);
		for (i = 0; i < n; i++) {
			int64_t r = evs[i]->kv.mod_revision;

			if ((n_all == 0 && r != start) ||
			    (n_all > 0 && r != last && r != last + 1))
				die("%s: hole in the log: revision %" PRId64
				    " follows %" PRId64,
				    when, r, last);
			last = r;
			if (r > to)
				continue;
			if (n_all == cap) {
				cap = cap ? cap * 2 : 4096;
				all = realloc(all, cap * sizeof *all);
				if (!all)
					die("out of memory");
			}
			store_event_ref(evs[i]);
			all[n_all++] = evs[i];
		}
		store_events_free(evs, n);
	}
	store_watch_close(w);
	*count = n_all;
	return all;
}

static bool kv_equal(const store_kv *a, const store_kv *b)
{
	return strcmp(a->key, b->key) == 0 && a->value_len == b->value_len &&
	       memcmp(a->value, b->value, a->value_len) == 0 &&
	       a->create_revision == b->create_revision &&
	       a->mod_revision == b->mod_revision && a->version == b->version &&
	       a->lease == b->lease;
}

static void compare_ranges(store *orig, store *restored, int64_t rev)
{
	store_range_result a, b;
	size_t i;
	int rc;

	rc = store_range(orig, "/", "", rev, 0, &a);
	if (rc != 0)
		die("range on the original at revision %" PRId64 ": %s", rev,
		    store_strerror(rc));
	rc = store_range(restored, "/", "", 0, 0, &b);
	if (rc != 0)
		die("range on the restored store: %s", store_strerror(rc));
	if (b.revision != rev)
		die("the restored store's range is at revision %" PRId64
		    ", its store_revision is %" PRId64,
		    b.revision, rev);
	if (a.count != b.count)
		die("at revision %" PRId64 " the original has %zu keys, the "
		    "restored store %zu",
		    rev, a.count, b.count);
	for (i = 0; i < a.count; i++)
		if (!kv_equal(&a.kvs[i], &b.kvs[i]))
			die("at revision %" PRId64
			    " key #%zu differs: original "
			    "%s mod %" PRId64 " ver %" PRId64
			    ", restored %s mod %" PRId64 " ver %" PRId64,
			    rev, i, a.kvs[i].key, a.kvs[i].mod_revision,
			    a.kvs[i].version, b.kvs[i].key,
			    b.kvs[i].mod_revision, b.kvs[i].version);
	printf("restored state equals the original at revision %" PRId64
	       " (%zu keys)\n",
	       rev, a.count);
	store_range_result_free(&a);
	store_range_result_free(&b);
}

static void compare_logs(store *orig, store *restored, int64_t rev)
{
	size_t na, nb, i;
	store_event **a = read_log(orig, rev, &na, "original log");
	store_event **b = read_log(restored, rev, &nb, "restored log");

	if (na != nb)
		die("up to revision %" PRId64 " the original log has %zu "
		    "events, the restored one %zu",
		    rev, na, nb);
	for (i = 0; i < na; i++)
		if (a[i]->type != b[i]->type || !kv_equal(&a[i]->kv, &b[i]->kv))
			die("event #%zu differs: original %s %s@%" PRId64
			    ", restored %s %s@%" PRId64,
			    i, a[i]->type == STORE_EVENT_PUT ? "PUT" : "DELETE",
			    a[i]->kv.key, a[i]->kv.mod_revision,
			    b[i]->type == STORE_EVENT_PUT ? "PUT" : "DELETE",
			    b[i]->kv.key, b[i]->kv.mod_revision);
	for (i = 0; i < na; i++) {
		store_event_unref(a[i]);
		store_event_unref(b[i]);
	}
	free(a);
	free(b);
	printf("restored log equals the original up to revision %" PRId64
	       " (%zu events)\n",
	       rev, na);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Everything the child acknowledged is in the original store. Each writer
 * thread writes sequentially, so per thread at most one key may differ from
 * its last acknowledged write: the key of the write in flight when the
 * child was killed, which may have committed without being acknowledged.
 * That write, if it left a key, has a revision above every one the thread
 * had acknowledged. */
static void check_original(store *s)
{
	int64_t head = store_revision(s);
	char key[64];
	size_t i;
	int t, k;

	if (head < max_acked)
		die("original store at revision %" PRId64 ", but %" PRId64
		    " was acknowledged",
		    head, max_acked);
	qsort(ack_revs, nacks, sizeof *ack_revs, cmp_i64);
	for (i = 1; i < nacks; i++)
		if (ack_revs[i] == ack_revs[i - 1])
			die("two acknowledged writes got revision %" PRId64,
			    ack_revs[i]);
	for (t = 0; t < WRITERS; t++) {
		int64_t thread_max = 0;
		int differ = -1;

		for (k = 0; k < KEYS; k++)
			if (last_rev[t][k] > thread_max)
				thread_max = last_rev[t][k];
		for (k = 0; k < KEYS; k++) {
			store_range_result r;
			bool same;
			int rc;

			if (!last_op[t][k])
				continue;
			snprintf(key, sizeof key, "/bk/%d/%03d", t, k);
			rc = store_range(s, key, NULL, 0, 0, &r);
			if (rc != 0)
				die("range %s: %s", key, store_strerror(rc));
			if (last_op[t][k] == 'P')
				same = r.count == 1 &&
				       r.kvs[0].mod_revision == last_rev[t][k];
			else
				same = r.count == 0;
			if (!same && r.count == 1 &&
			    r.kvs[0].mod_revision <= thread_max)
				die("original: %s, last %s at revision %" PRId64
				    " (acknowledged), has mod_revision "
				    "%" PRId64,
				    key,
				    last_op[t][k] == 'P' ? "put" : "deleted",
				    last_rev[t][k], r.kvs[0].mod_revision);
			if (!same && differ >= 0)
				die("original: keys %03d and %03d of writer %d "
				    "both differ from their last acknowledged "
				    "write (%c at %" PRId64 ", %c at %" PRId64
				    "); only the one write in flight may",
				    differ, k, t, last_op[t][differ],
				    last_rev[t][differ], last_op[t][k],
				    last_rev[t][k]);
			if (!same)
				differ = k;
			store_range_result_free(&r);
		}
	}
}

/* ---- garbage restores ---------------------------------------------------- */

static void write_bytes(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
		die("write %s: %s", path, strerror(errno));
}

static void garbage_restores(const char *target, const char *backup,
			     int64_t rev)
{
	char *db = path_join(target, "signalbox.db");
	char *junk = path_join(work_dir, "junk.db");
	char *missing = path_join(work_dir, "no-such-file.db");
	size_t db_len, bk_len, after_len, i;
	char *before = read_file(db, &db_len), *bk, *after, *buf;
	uint64_t x = 88172645463325252ULL;
	store *s;
	int c;

	if (!before || db_len == 0)
		die("the restored database %s is missing or empty", db);
	bk = read_file(backup, &bk_len);
	if (!bk || bk_len < 2048)
		die("the backup %s is missing or tiny (%zu bytes)", backup,
		    bk_len);
	buf = malloc(bk_len);
	if (!buf)
		die("out of memory");

	for (c = 0; c < 4; c++) {
		const char *what, *file = junk;
		size_t n = bk_len;

		switch (c) {
		case 0:
			what = "restore of random bytes";
			for (i = 0; i < n; i++) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				buf[i] = (char)x;
			}
			break;
		case 1:
			what = "restore of an SQLite header with garbage after";
			memcpy(buf, bk, 100);
			for (i = 100; i < n; i++)
				buf[i] = (char)(i * 7 + 3);
			break;
		case 2:
			what = "restore of a truncated backup";
			n = bk_len / 2;
			memcpy(buf, bk, n);
			break;
		default:
			what = "restore of a missing file";
			file = missing;
			break;
		}
		if (file == junk)
			write_bytes(junk, buf, n);
		run_refused(what, "restore", file, "--data-dir", target);
		after = read_file(db, &after_len);
		if (!after || after_len != db_len ||
		    memcmp(after, before, db_len) != 0)
			die("%s: the target's database %s changed (%zu bytes "
			    "before, %zu after)",
			    what, db, db_len, after_len);
		free(after);
	}

	s = must_open(target, "after the garbage restores");
	if (store_revision(s) != rev)
		die("after the garbage restores the target is at revision "
		    "%" PRId64 ", was %" PRId64,
		    store_revision(s), rev);
	store_close(s);
	integrity_check(db, "after the garbage restores");
	free(buf);
	free(bk);
	free(before);
	free(missing);
	free(junk);
	free(db);
}

/* Restore backup `i` into a new directory and compare it with the original
 * (which no one writes to any more). Returns the restored directory. */
static char *restore_and_compare(store *orig, const char *backup, int i,
				 int64_t acked_before, int64_t *rev_out)
{
	char name[32], *dir, *db, what[64];
	store *restored;
	int64_t rev;

	snprintf(name, sizeof name, "r%d", i);
	dir = path_join(dst_dir, name);
	if (mkdir(dir, 0700) != 0)
		die("mkdir %s: %s", dir, strerror(errno));
	snprintf(what, sizeof what, "restore of backup %d into a new directory",
		 i);
	run_ok(what, "restore", backup, "--data-dir", dir);
	db = path_join(dir, "signalbox.db");
	integrity_check(db, "the restored database");

	restored = must_open(dir, "the restored store");
	rev = store_revision(restored);
	printf("backup %d: restored revision %" PRId64 ", acknowledged before "
	       "it began %" PRId64 ", original %" PRId64 "\n",
	       i, rev, acked_before, store_revision(orig));
	if (rev < acked_before)
		die("backup %d: the restored store is at revision %" PRId64
		    ", but %" PRId64 " was acknowledged before the backup "
		    "started",
		    i, rev, acked_before);
	if (rev > store_revision(orig))
		die("backup %d: the restored store is at revision %" PRId64
		    ", beyond the original's %" PRId64,
		    i, rev, store_revision(orig));
	if (store_compact_revision(restored) != store_compact_revision(orig))
		die("backup %d: compact revision: restored %" PRId64
		    ", original %" PRId64,
		    i, store_compact_revision(restored),
		    store_compact_revision(orig));
	compare_ranges(orig, restored, rev);
	compare_logs(orig, restored, rev);
	store_close(restored);
	integrity_check(db, "the restored database after use");
	free(db);
	*rev_out = rev;
	return dir;
}

int main(void)
{
	char *backup[BACKUPS], *dir, name[32];
	int64_t acked_before[BACKUPS], rev;
	store *orig;
	int p[2], st, i;
	size_t n_before;

	binary = getenv("SB_BINARY");
	if (!binary || !*binary) {
		fprintf(stderr,
			"test_backup: FAIL: SB_BINARY is not set (CTest "
			"sets it to the signalbox binary)\n");
		return 1;
	}
	if (access(binary, X_OK) != 0) {
		fprintf(stderr, "test_backup: FAIL: SB_BINARY=%s: %s\n", binary,
			strerror(errno));
		return 1;
	}
	signal(SIGALRM, on_alarm);
	signal(SIGPIPE, SIG_IGN);
	alarm(WATCHDOG_SECONDS);
	src_dir = tu_tmpdir("backup-src");
	dst_dir = tu_tmpdir("backup-dst");
	work_dir = tu_tmpdir("backup-work");

	/* The writer. */
	if (pipe2(p, O_CLOEXEC) != 0)
		die("pipe: %s", strerror(errno));
	fflush(NULL);
	child_pid = fork();
	if (child_pid < 0)
		die("fork: %s", strerror(errno));
	if (child_pid == 0) {
		close(p[0]);
		child_main(p[1], getppid());
		_exit(0);
	}
	close(p[1]);
	ack_fd = p[0];
	fcntl(ack_fd, F_SETFL, O_NONBLOCK);

	/* Backups while it writes. */
	for (i = 0; i < BACKUPS; i++) {
		char what[64];

		wait_acks(ACKS_BETWEEN, "before a backup");
		if (!child_ready)
			die("acknowledgements before the child said it was "
			    "ready");
		snprintf(name, sizeof name, "backup-%d.db", i);
		backup[i] = path_join(work_dir, name);
		acked_before[i] = max_acked;
		n_before = nacks;
		snprintf(what, sizeof what, "backup %d while writing", i);
		run_ok(what, "backup", "--data-dir", src_dir, backup[i]);
		require_child_alive("after a backup");
		printf("backup %d: %zu writes acknowledged during it\n", i,
		       nacks - n_before);
		integrity_check(backup[i], "the backup file");
	}

	/* Restore into the locked directory is refused, and the writer goes
	 * on. */
	run_refused("restore into a directory in use", "restore", backup[0],
		    "--data-dir", src_dir);
	wait_acks(20, "after the refused restore");
	require_child_alive("after the refused restore");

	kill(child_pid, SIGKILL);
	waitpid(child_pid, &st, 0);
	child_pid = 0;
	fcntl(ack_fd, F_SETFL, 0);
	while (drain_acks(1000))
		;
	close(ack_fd);
	ack_fd = -1;
	printf("writer: %zu acknowledged writes, newest revision %" PRId64 "\n",
	       nacks, max_acked);

	orig = must_open(src_dir, "the original after the writer died");
	check_original(orig);
	dir = NULL;
	for (i = BACKUPS - 1; i >= 0; i--) {
		int64_t r;

		free(dir);
		dir = restore_and_compare(orig, backup[i], i, acked_before[i],
					  &r);
		if (i == 0)
			rev = r;
	}
	store_close(orig);

	garbage_restores(dir, backup[0], rev);

	alarm(0);
	cleanup();
	free(dir);
	for (i = 0; i < BACKUPS; i++)
		free(backup[i]);
	free(ack_revs);
	printf("test_backup: PASS\n");
	return 0;
}
