/*
 * test_crash.c -- SIGKILL in the middle of parallel writes, 20 times over.
 *
 * Checks invariants 1 and 2 of store.h across crashes. In each trial a child
 * process opens the store (the data directory persists across trials) and
 * writes unique keys from 8 threads; after each acknowledged store_put it
 * reports "key revision" to the parent over a pipe. The parent kills it with
 * SIGKILL after a random delay (seeded; set SB_SEED to replay a run), and
 * then:
 *
 *   a. PRAGMA integrity_check on DIR/signalbox.db (read-only sqlite3
 *      connection, before the store runs its own recovery) says "ok";
 *   b. the store opens, and every acknowledged key is there with
 *      mod_revision == create_revision == the acknowledged revision,
 *      version 1 and the value written; acknowledged revisions are distinct
 *      and no key (acknowledged or not) carries a torn value;
 *   c. the log has no holes: a watch from the compact revision (or 1) sees
 *      revisions that step by 0 or 1 and end at store_revision;
 *   d. the store closes.
 *
 * One trial in five kills the child 0-30 ms after fork, to crash it during
 * store_open (WAL recovery of the previous crash). The rest kill it 50-600 ms
 * after it has opened the store. The whole test stops itself after 175 s.
 */
#include "../unit/testutil.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TRIALS		  20
#define THREADS		  8
#define MIN_DELAY_MS	  50
#define MAX_DELAY_MS	  600
#define EARLY_MAX_MS	  30
#define READY_TIMEOUT_MS  20000
#define CHILD_MAX_SECONDS 60
#define WATCHDOG_SECONDS  175
#define KEY_MAX		  64
#define VALUE_MAX	  2048

struct ack {
	char key[KEY_MAX];
	int64_t rev;
};

static struct ack *acks;
static size_t nacks, capacks;
static volatile pid_t child_pid;
static char *data_dir;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "test_crash: FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	if (child_pid > 0) {
		kill(child_pid, SIGKILL);
		waitpid(child_pid, NULL, 0);
	}
	if (data_dir && !getenv("SB_KEEP"))
		tu_rmrf(data_dir);
	else if (data_dir)
		fprintf(stderr, "test_crash: data left in %s\n", data_dir);
	exit(1);
}

static void on_alarm(int sig)
{
	static const char msg[] =
	    "test_crash: FAIL: watchdog: the test did not finish in time\n";

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

/* splitmix64: small, seedable, reproducible. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* The value written for key: derived from the key, 16..1515 bytes. */
static size_t value_for(const char *key, char *buf)
{
	uint64_t h = fnv1a(key);
	size_t len = 16 + h % 1500, i;
	int n;

	n = snprintf(buf, VALUE_MAX, "%s|", key);
	for (i = (size_t)n; i < len; i++)
		buf[i] = (char)('a' + (h + i * 31) % 26);
	buf[len] = '\0';
	return len;
}

/* ---- the child ---------------------------------------------------------- */

struct writer {
	store *s;
	int fd;
	int trial;
	int thread;
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
	char key[KEY_MAX], val[VALUE_MAX], line[KEY_MAX + 32];
	long seq;

	for (seq = 0; now_ms() < w->stop_ms; seq++) {
		int64_t rev = 0;
		size_t len;
		int rc, n;

		snprintf(key, sizeof key, "/crash/%02d/%d/%07ld", w->trial,
			 w->thread, seq);
		len = value_for(key, val);
		rc = store_put(w->s, key, val, len, 0, &rev);
		if (rc != 0) {
			fprintf(stderr, "child: store_put(%s): %s\n", key,
				store_strerror(rc));
			_exit(3);
		}
		n = snprintf(line, sizeof line, "%s %" PRId64 "\n", key, rev);
		if (write_full(w->fd, line, (size_t)n) != 0)
			_exit(4);
	}
	return NULL;
}

static void child_main(int trial, int fd, pid_t parent)
{
	struct writer w[THREADS];
	pthread_t tid[THREADS];
	store_options o;
	store *s = NULL;
	char err[256] = "";
	int i, rc;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(5);
	store_options_init(&o);
	o.data_dir = data_dir;
	o.history_revisions = 0;
	o.history_seconds = 0;
	rc = store_open(&o, &s, err, sizeof err);
	if (rc != 0) {
		fprintf(stderr, "child: store_open(%s): %s: %s\n", data_dir,
			store_strerror(rc), err);
		_exit(2);
	}
	if (write_full(fd, "R\n", 2) != 0)
		_exit(4);
	for (i = 0; i < THREADS; i++) {
		w[i] = (struct writer){s, fd, trial, i,
				       now_ms() + CHILD_MAX_SECONDS * 1000};
		if (pthread_create(&tid[i], NULL, writer_main, &w[i]) != 0)
			_exit(6);
	}
	for (i = 0; i < THREADS; i++)
		pthread_join(tid[i], NULL);
	store_close(s);
	_exit(0);
}

/* ---- the parent --------------------------------------------------------- */

static void add_ack(const char *key, int64_t rev)
{
	if (nacks == capacks) {
		capacks = capacks ? capacks * 2 : 4096;
		acks = realloc(acks, capacks * sizeof *acks);
		if (!acks)
			die("out of memory");
	}
	snprintf(acks[nacks].key, KEY_MAX, "%s", key);
	acks[nacks].rev = rev;
	nacks++;
}

/* Parse the complete lines in buf[0..*len), keep the rest. */
static void parse_lines(char *buf, size_t *len, bool *ready)
{
	char *p = buf, *nl;

	while ((nl = memchr(p, '\n', (size_t)(buf + *len - p)))) {
		char key[KEY_MAX];
		int64_t rev;

		*nl = '\0';
		if (strcmp(p, "R") == 0)
			*ready = true;
		else if (sscanf(p, "%63s %" SCNd64, key, &rev) == 2)
			add_ack(key, rev);
		else
			die("bad line from child: \"%s\"", p);
		p = nl + 1;
	}
	*len = (size_t)(buf + *len - p);
	memmove(buf, p, *len);
}

/* Read what is there (wait up to timeout_ms). Returns false on EOF. */
static bool read_acks(int fd, char *buf, size_t *len, size_t cap,
		      int timeout_ms, bool *ready)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	ssize_t r;

	if (timeout_ms < 0)
		timeout_ms = 0;
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return true;
	for (;;) {
		r = read(fd, buf + *len, cap - *len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return true;
		if (r < 0)
			die("read from child pipe: %s", strerror(errno));
		if (r == 0)
			return false;
		*len += (size_t)r;
		parse_lines(buf, len, ready);
	}
}

static void integrity_check(const char *dir, int trial)
{
	char path[4096], *msg = NULL;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc, rows = 0;
	bool ok = false;

	snprintf(path, sizeof path, "%s/signalbox.db", dir);
	if (access(path, F_OK) != 0)
		die("trial %d: %s does not exist after the crash", trial, path);
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK)
		die("trial %d: sqlite3_open_v2(%s): %s", trial, path,
		    db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	sqlite3_busy_timeout(db, 10000);
	rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
	if (rc != SQLITE_OK)
		die("trial %d: PRAGMA integrity_check on %s: %s", trial, path,
		    sqlite3_errmsg(db));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);

		rows++;
		if (rows == 1 && t && strcmp(t, "ok") == 0)
			ok = true;
		else if (!msg && t)
			msg = strdup(t);
	}
	if (rc != SQLITE_DONE)
		die("trial %d: PRAGMA integrity_check on %s: %s", trial, path,
		    sqlite3_errmsg(db));
	if (!ok || rows != 1)
		die("trial %d: PRAGMA integrity_check on %s: \"%s\"", trial,
		    path, msg ? msg : "(no rows)");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static const store_kv *find_kv(const store_range_result *r, const char *key)
{
	size_t lo = 0, hi = r->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(r->kvs[mid].key, key);

		if (c == 0)
			return &r->kvs[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* b: every acknowledged key (of every trial so far) is there, as written. */
static void check_acks(store *s, int trial, size_t trial_first)
{
	char val[VALUE_MAX];
	store_range_result r;
	int64_t head = store_revision(s), *revs;
	size_t i, n;
	char *end;
	int rc;

	end = store_prefix_end("/crash/");
	if (!end)
		die("out of memory");
	rc = store_range(s, "/crash/", end, 0, 0, &r);
	free(end);
	if (rc != 0)
		die("trial %d: store_range(/crash/): %s", trial,
		    store_strerror(rc));
	if (r.revision != head)
		die("trial %d: range read at revision %" PRId64
		    ", store_revision says %" PRId64,
		    trial, r.revision, head);
	/* No key, acknowledged or not, may hold a torn or foreign value. */
	for (i = 0; i < r.count; i++) {
		const store_kv *kv = &r.kvs[i];
		size_t len = value_for(kv->key, val);

		if (kv->value_len != len || memcmp(kv->value, val, len) != 0)
			die("trial %d: key %s has a wrong value (%zu bytes, "
			    "expected %zu)",
			    trial, kv->key, kv->value_len, len);
		if (kv->version != 1 || kv->create_revision != kv->mod_revision)
			die("trial %d: key %s written once has version %" PRId64
			    ", create_revision %" PRId64
			    ", mod_revision %" PRId64,
			    trial, kv->key, kv->version, kv->create_revision,
			    kv->mod_revision);
		if (kv->mod_revision < 1 || kv->mod_revision > head)
			die("trial %d: key %s has mod_revision %" PRId64
			    " outside [1, %" PRId64 "]",
			    trial, kv->key, kv->mod_revision, head);
	}
	for (i = 0; i < nacks; i++) {
		const store_kv *kv = find_kv(&r, acks[i].key);

		if (!kv)
			die("trial %d: acknowledged key %s (revision %" PRId64
			    ") is missing after the crash (store revision "
			    "%" PRId64 ")",
			    trial, acks[i].key, acks[i].rev, head);
		if (kv->mod_revision != acks[i].rev)
			die("trial %d: acknowledged key %s: mod_revision "
			    "%" PRId64 ", acknowledged as %" PRId64,
			    trial, acks[i].key, kv->mod_revision, acks[i].rev);
	}
	store_range_result_free(&r);

	/* The revisions acknowledged in this trial are distinct. */
	n = nacks - trial_first;
	revs = malloc((n ? n : 1) * sizeof *revs);
	if (!revs)
		die("out of memory");
	for (i = 0; i < n; i++)
		revs[i] = acks[trial_first + i].rev;
	qsort(revs, n, sizeof *revs, cmp_i64);
	for (i = 1; i < n; i++)
		if (revs[i] == revs[i - 1])
			die("trial %d: two acknowledged puts got revision "
			    "%" PRId64,
			    trial, revs[i]);
	free(revs);
}

/* c: the log from the compact revision (or 1) to the head has no holes. */
static void check_log(store *s, int trial)
{
	int64_t head = store_revision(s), crev = store_compact_revision(s);
	int64_t start = crev > 0 ? crev : 1, last = start - 1;
	store_watch *w = NULL;
	size_t events = 0;
	int rc;

	if (head == 0)
		return;
	rc = store_watch_open(s, "/", "", start, &w);
	if (rc != 0)
		die("trial %d: store_watch_open(from %" PRId64 "): %s", trial,
		    start, store_strerror(rc));
	while (last < head) {
		store_event **evs = NULL;
		size_t n = 0, i;

		rc = store_watch_next(w, 10000, 8192, &evs, &n, NULL);
		if (rc != 0)
			die("trial %d: store_watch_next after revision "
			    "%" PRId64 ": %s",
			    trial, last, store_strerror(rc));
		if (n == 0)
			die("trial %d: the watch from %" PRId64
			    " stalled at revision %" PRId64 " (head %" PRId64
			    ") for 10 s",
			    trial, start, last, head);
		for (i = 0; i < n; i++) {
			int64_t r = evs[i]->kv.mod_revision;

			if (events == 0 && r != start)
				die("trial %d: the watch from %" PRId64
				    " began at revision %" PRId64,
				    trial, start, r);
			if (events > 0 && r != last && r != last + 1)
				die("trial %d: hole in the log: revision "
				    "%" PRId64 " follows %" PRId64,
				    trial, r, last);
			last = r;
			events++;
		}
		store_events_free(evs, n);
	}
	store_watch_close(w);
	if (last != head)
		die("trial %d: the log ends at revision %" PRId64
		    ", store_revision is %" PRId64,
		    trial, last, head);
}

static int64_t verify(int trial, size_t trial_first, int64_t prev_head)
{
	store_options o;
	store *s = NULL;
	char err[256] = "";
	int64_t head;
	int rc;

	integrity_check(data_dir, trial);
	store_options_init(&o);
	o.data_dir = data_dir;
	o.history_revisions = 0;
	o.history_seconds = 0;
	rc = store_open(&o, &s, err, sizeof err);
	if (rc != 0)
		die("trial %d: store_open after the crash: %s: %s", trial,
		    store_strerror(rc), err);
	head = store_revision(s);
	if (head < prev_head)
		die("trial %d: store revision went back from %" PRId64
		    " to %" PRId64,
		    trial, prev_head, head);
	check_acks(s, trial, trial_first);
	check_log(s, trial);
	store_close(s);
	return head;
}

static void run_trial(int trial, int64_t *head)
{
	static char buf[1 << 16];
	size_t len = 0, first = nacks;
	bool early = trial % 5 == 4, ready = false, open = true;
	int64_t delay, t0, deadline, ready_at = -1;
	int p[2], st;
	pid_t pid;

	delay =
	    early ? (int64_t)(rng_next() % (EARLY_MAX_MS + 1))
		  : MIN_DELAY_MS + (int64_t)(rng_next() %
					     (MAX_DELAY_MS - MIN_DELAY_MS + 1));
	if (pipe2(p, O_CLOEXEC) != 0)
		die("pipe: %s", strerror(errno));
	fflush(NULL);
	t0 = now_ms();
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		close(p[0]);
		child_main(trial, p[1], getppid());
		_exit(0);
	}
	child_pid = pid;
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);

	/* Early trials count from fork, the others from "store open". */
	deadline = early ? t0 + delay : t0 + READY_TIMEOUT_MS;
	while (open) {
		int64_t now = now_ms();

		if (!early && ready && ready_at < 0) {
			ready_at = now;
			deadline = ready_at + delay;
		}
		if (now >= deadline)
			break;
		open = read_acks(p[0], buf, &len, sizeof buf,
				 (int)(deadline - now), &ready);
	}
	if (!early && !ready && open)
		die("trial %d: the child did not open the store in %d ms",
		    trial, READY_TIMEOUT_MS);
	kill(pid, SIGKILL);
	if (waitpid(pid, &st, 0) != pid)
		die("waitpid: %s", strerror(errno));
	child_pid = 0;
	/* Drain what the child wrote before it died. */
	fcntl(p[0], F_SETFL, 0);
	while (read_acks(p[0], buf, &len, sizeof buf, 1000, &ready))
		;
	close(p[0]);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		die("trial %d: the child ended by itself (%s %d) before it was "
		    "killed; see its message above",
		    trial, WIFEXITED(st) ? "exit" : "signal",
		    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));

	*head = verify(trial, first, *head);
	printf("trial %2d: %-5s delay %3" PRId64 " ms: %5zu acks, "
	       "revision %" PRId64 "\n",
	       trial, early ? "early" : "", delay, nacks - first, *head);
	fflush(stdout);
}

int main(void)
{
	const char *seed_env = getenv("SB_SEED");
	uint64_t seed;
	int64_t head = 0, t0 = now_ms();
	int trial;

	seed = seed_env ? strtoull(seed_env, NULL, 0)
			: (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	rng_state = seed;
	printf("test_crash: seed %" PRIu64 " (SB_SEED=%" PRIu64 " to replay)\n",
	       seed, seed);
	signal(SIGALRM, on_alarm);
	signal(SIGPIPE, SIG_IGN);
	alarm(WATCHDOG_SECONDS);
	data_dir = tu_tmpdir("crash");
	printf("test_crash: data dir %s\n", data_dir);

	for (trial = 0; trial < TRIALS; trial++)
		run_trial(trial, &head);

	alarm(0);
	if (nacks == 0)
		die("no write was acknowledged in %d trials", TRIALS);
	printf("test_crash: PASS: %d trials, %zu acknowledged writes, "
	       "revision %" PRId64 ", %.1f s\n",
	       TRIALS, nacks, head, (double)(now_ms() - t0) / 1000.0);
	tu_rmrf(data_dir);
	free(data_dir);
	free(acks);
	return 0;
}
