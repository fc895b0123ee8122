/*
 * test_fault.c -- the store under a full disk and a read-only database.
 *
 * Needs root (mount(2)); without it the test is skipped (exit 77), except
 * under CI=true, where a skip is a failure.
 *
 * Full disk (a 4 MiB tmpfs):
 *   - writes of 16 KiB values until one fails; it must fail with
 *     STORE_ENOSPC ("disk full; this write was not stored"), not crash, and
 *     take no revision (invariant 1);
 *   - every acknowledged write reads back, on the open store and after
 *     close and reopen on the still-full disk;
 *   - after the tmpfs is grown to 64 MiB (MS_REMOUNT), writes succeed
 *     again on the open store, with the next revision (no hole);
 *   - after close and reopen everything acknowledged is there, the log has
 *     no holes and PRAGMA integrity_check says "ok".
 *
 * Read-only database:
 *   - through a read-only bind mount of a data directory, store_open either
 *     refuses with STORE_EROFS and a message, or opens, serves reads and
 *     refuses writes with STORE_EROFS; the data is intact;
 *   - with the database file immutable (chattr +i; skipped if the file
 *     system does not support it) the same holds;
 *   - afterwards the directory works normally again.
 *
 * Every mount and the immutable flag are undone on every exit path
 * (atexit and fatal signals); scratch directories are removed.
 */
#include "../unit/testutil.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define WATCHDOG_SECONDS 600
#define BIG_VALUE	 (16 * 1024)
#define MAX_FILL	 100000
#define MAX_MOUNTS	 8

struct ack {
	char key[64];
	int64_t rev;
	size_t len;
};

static char base_buf[4096], *base;
static char mounts[MAX_MOUNTS][4096];
static int nmounts;
static char immutable[4096];

/* ---- cleanup ------------------------------------------------------------ */

static void set_immutable(const char *path, bool on)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), flags = 0;

	if (fd < 0)
		return;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
		if (on)
			flags |= FS_IMMUTABLE_FL;
		else
			flags &= ~FS_IMMUTABLE_FL;
		ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
	close(fd);
}

static void cleanup(void)
{
	if (immutable[0]) {
		set_immutable(immutable, false);
		immutable[0] = '\0';
	}
	while (nmounts > 0) {
		nmounts--;
		if (umount2(mounts[nmounts], MNT_DETACH) != 0)
			fprintf(stderr, "test_fault: umount %s: %s\n",
				mounts[nmounts], strerror(errno));
	}
	if (base) {
		tu_rmrf(base);
		base = NULL;
	}
}

static void on_fatal(int sig)
{
	static const char msg[] = "test_fault: FAIL: fatal signal or watchdog; "
				  "cleaning up\n";

	if (write(2, msg, sizeof msg - 1) < 0) {
		/* nothing to do */
	}
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "test_fault: FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1); /* atexit runs cleanup() */
}

static void skip(const char *why)
{
	const char *ci = getenv("CI");

	if (ci && strcmp(ci, "true") == 0) {
		fprintf(stderr,
			"test_fault: FAIL: cannot run (%s), and under "
			"CI=true a skip is a failure\n",
			why);
		exit(1);
	}
	fprintf(stderr, "test_fault: SKIP: %s\n", why);
	exit(77);
}

static void do_mount(const char *src, const char *dst, const char *type,
		     unsigned long flags, const char *data)
{
	if (nmounts == MAX_MOUNTS)
		die("too many mounts");
	if (mount(src, dst, type, flags, data) != 0) {
		int e = errno;

		if (e == EPERM && nmounts == 0)
			skip("mount(2) is not permitted here (need "
			     "CAP_SYS_ADMIN)");
		die("mount %s on %s (%s, %s): %s", src ? src : "-", dst,
		    type ? type : "-", data ? data : "-", strerror(e));
	}
	snprintf(mounts[nmounts++], sizeof mounts[0], "%s", dst);
}

static void do_umount(const char *dst)
{
	int i;

	if (umount2(dst, 0) != 0)
		die("umount %s: %s", dst, strerror(errno));
	for (i = nmounts - 1; i >= 0; i--) {
		if (strcmp(mounts[i], dst) == 0) {
			memmove(mounts[i], mounts[i + 1],
				(size_t)(nmounts - i - 1) * sizeof mounts[0]);
			nmounts--;
			break;
		}
	}
}

static char *path_join(const char *a, const char *b)
{
	char *p;

	if (asprintf(&p, "%s/%s", a, b) < 0)
		die("out of memory");
	return p;
}

/* ---- store helpers ------------------------------------------------------ */

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

static void fill_value(const char *key, char *buf, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; key[i]; i++)
		h = (h ^ (unsigned char)key[i]) * 0x100000001b3ULL;
	for (i = 0; i < len; i++) {
		h ^= h << 13;
		h ^= h >> 7;
		h ^= h << 17;
		buf[i] = (char)(h & 0xff);
	}
}

static struct ack *acks;
static size_t nacks, capacks;

static void add_ack(const char *key, int64_t rev, size_t len)
{
	if (nacks == capacks) {
		capacks = capacks ? capacks * 2 : 1024;
		acks = realloc(acks, capacks * sizeof *acks);
		if (!acks)
			die("out of memory");
	}
	snprintf(acks[nacks].key, sizeof acks[0].key, "%s", key);
	acks[nacks].rev = rev;
	acks[nacks].len = len;
	nacks++;
}

static void verify_acks(store *s, const char *when)
{
	char *want = malloc(BIG_VALUE);
	size_t i;

	if (!want)
		die("out of memory");
	for (i = 0; i < nacks; i++) {
		store_range_result r;
		int rc = store_range(s, acks[i].key, NULL, 0, 0, &r);

		if (rc != 0)
			die("%s: store_range(%s): %s", when, acks[i].key,
			    store_strerror(rc));
		if (r.count != 1)
			die("%s: acknowledged key %s (revision %" PRId64
			    ") is missing",
			    when, acks[i].key, acks[i].rev);
		fill_value(acks[i].key, want, acks[i].len);
		if (r.kvs[0].mod_revision != acks[i].rev)
			die("%s: key %s has mod_revision %" PRId64
			    ", acknowledged as %" PRId64,
			    when, acks[i].key, r.kvs[0].mod_revision,
			    acks[i].rev);
		if (r.kvs[0].value_len != acks[i].len ||
		    memcmp(r.kvs[0].value, want, acks[i].len) != 0)
			die("%s: key %s has a wrong value (%zu bytes, "
			    "expected %zu)",
			    when, acks[i].key, r.kvs[0].value_len, acks[i].len);
		store_range_result_free(&r);
	}
	free(want);
}

/* The log from the compact revision (or 1) to the head has no holes. */
static void check_log(store *s, const char *when)
{
	int64_t head = store_revision(s), crev = store_compact_revision(s);
	int64_t start = crev > 0 ? crev : 1, last = start - 1;
	store_watch *w = NULL;
	int rc;

	if (head == 0)
		return;
	rc = store_watch_open(s, "/", "", start, &w);
	if (rc != 0)
		die("%s: store_watch_open(%" PRId64 "): %s", when, start,
		    store_strerror(rc));
	while (last < head) {
		store_event **evs = NULL;
		size_t n = 0, i;

		rc = store_watch_next(w, 10000, 1024, &evs, &n, NULL);
		if (rc != 0)
			die("%s: store_watch_next: %s", when,
			    store_strerror(rc));
		if (n == 0)
			die("%s: the watch stalled at revision %" PRId64
			    " (head %" PRId64 ")",
			    when, last, head);
		for (i = 0; i < n; i++) {
			int64_t r = evs[i]->kv.mod_revision;

			if (r != last && r != last + 1)
				die("%s: hole in the log: revision %" PRId64
				    " follows %" PRId64,
				    when, r, last);
			last = r;
		}
		store_events_free(evs, n);
	}
	store_watch_close(w);
	if (last != head)
		die("%s: the log ends at %" PRId64
		    ", store_revision is %" PRId64,
		    when, last, head);
}

static void integrity_check(const char *dir, const char *when)
{
	char *path = path_join(dir, "signalbox.db");
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
	free(path);
}

/* ---- (a) full disk ------------------------------------------------------ */

/* Put 16 KiB values until one fails. It must fail with STORE_ENOSPC and
 * take no revision. Returns how many writes were acknowledged. */
static size_t fill_until_full(store *s, const char *tag, int *seq)
{
	char *val = malloc(BIG_VALUE), key[64];
	size_t ok = 0;
	int i;

	if (!val)
		die("out of memory");
	for (i = 0; i < MAX_FILL; i++) {
		int64_t before = store_revision(s), rev = 0;
		int rc;

		snprintf(key, sizeof key, "/full/%06d", (*seq)++);
		fill_value(key, val, BIG_VALUE);
		rc = store_put(s, key, val, BIG_VALUE, 0, &rev);
		if (rc == 0) {
			if (rev != before + 1)
				die("%s: put %s got revision %" PRId64
				    ", expected %" PRId64,
				    tag, key, rev, before + 1);
			add_ack(key, rev, BIG_VALUE);
			ok++;
			continue;
		}
		if (rc != STORE_ENOSPC)
			die("%s: on a full disk store_put(%s) returned %d "
			    "(%s); expected STORE_ENOSPC (SQLite reports "
			    "ENOSPC as SQLITE_FULL)",
			    tag, key, rc, store_strerror(rc));
		if (store_revision(s) != before)
			die("%s: the failed put moved the revision from "
			    "%" PRId64 " to %" PRId64,
			    tag, before, store_revision(s));
		printf("%s: %zu writes acknowledged, then STORE_ENOSPC at "
		       "revision %" PRId64 "\n",
		       tag, ok, before);
		free(val);
		return ok;
	}
	die("%s: %d writes of %d bytes and the 4 MiB disk never filled", tag,
	    MAX_FILL, BIG_VALUE);
	return 0;
}

static void test_full_disk(void)
{
	char *disk = path_join(base, "disk"), *dir = path_join(disk, "data");
	char *val = malloc(BIG_VALUE), key[64];
	store *s;
	int seq = 0, i;

	if (!val)
		die("out of memory");
	if (mkdir(disk, 0700) != 0)
		die("mkdir %s: %s", disk, strerror(errno));
	do_mount("tmpfs", disk, "tmpfs", MS_NOSUID | MS_NODEV,
		 "size=4m,mode=0700");

	s = must_open(dir, "full disk: first open");
	if (fill_until_full(s, "full disk", &seq) == 0)
		die("full disk: not one write fit in 4 MiB");
	verify_acks(s, "full disk: open store after ENOSPC");
	/* A few more attempts on the full disk: each stores or fails
	 * cleanly with STORE_ENOSPC. */
	fill_until_full(s, "full disk, again", &seq);
	store_close(s);

	s = must_open(dir, "full disk: reopen while the disk is full");
	verify_acks(s, "full disk: reopened on the full disk");
	fill_until_full(s, "full disk, after reopen", &seq);

	/* Make room and write on the same open store. */
	do_mount(NULL, disk, NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV,
		 "size=64m,mode=0700");
	nmounts--; /* the remount is the same mount */
	for (i = 0; i < 20; i++) {
		int64_t before = store_revision(s), rev = 0;
		int rc;

		snprintf(key, sizeof key, "/full/%06d", seq++);
		fill_value(key, val, BIG_VALUE);
		rc = store_put(s, key, val, BIG_VALUE, 0, &rev);
		if (rc != 0)
			die("full disk: after making room, write %d on the "
			    "open store failed: %s",
			    i, store_strerror(rc));
		if (rev != before + 1)
			die("full disk: after making room, put got revision "
			    "%" PRId64 ", expected %" PRId64,
			    rev, before + 1);
		add_ack(key, rev, BIG_VALUE);
	}
	verify_acks(s, "full disk: after making room");
	check_log(s, "full disk: after making room");
	store_close(s);

	s = must_open(dir, "full disk: reopen after making room");
	verify_acks(s, "full disk: reopened after making room");
	check_log(s, "full disk: reopened after making room");
	if (store_revision(s) != acks[nacks - 1].rev)
		die("full disk: revision %" PRId64
		    " after reopen, last acknowledged %" PRId64,
		    store_revision(s), acks[nacks - 1].rev);
	for (i = 0; i < 5; i++) {
		int rc;

		snprintf(key, sizeof key, "/full/%06d", seq++);
		fill_value(key, val, 100);
		rc = store_put(s, key, val, 100, 0, NULL);
		if (rc != 0)
			die("full disk: write after reopen failed: %s",
			    store_strerror(rc));
	}
	store_close(s);
	integrity_check(dir, "full disk");
	printf("full disk: ok (%zu acknowledged writes verified)\n", nacks);

	do_umount(disk);
	free(val);
	free(dir);
	free(disk);
	nacks = 0;
}

/* ---- (b) read-only ------------------------------------------------------ */

#define RO_KEYS 50

static void ro_write_keys(const char *dir)
{
	store *s = must_open(dir, "read-only: setup");
	char key[64], val[100];
	int i;

	for (i = 0; i < RO_KEYS; i++) {
		int64_t rev;
		int rc;

		snprintf(key, sizeof key, "/ro/%03d", i);
		fill_value(key, val, sizeof val);
		rc = store_put(s, key, val, sizeof val, 0, &rev);
		if (rc != 0)
			die("read-only: setup put: %s", store_strerror(rc));
		add_ack(key, rev, sizeof val);
	}
	store_close(s);
}

/* Open dir, which is read-only one way or another, and check the store
 * behaves: a clean STORE_EROFS from open, or reads work and writes fail
 * with STORE_EROFS. */
static void ro_check(const char *dir, const char *tag)
{
	char err[512], val[100];
	store *s;
	int64_t head, rev = 0;
	int rc = open_store(dir, &s, err, sizeof err);

	if (rc != 0) {
		if (rc != STORE_EROFS)
			die("%s: store_open returned %d (%s: %s); expected "
			    "success or STORE_EROFS",
			    tag, rc, store_strerror(rc), err);
		if (!err[0])
			die("%s: store_open failed with STORE_EROFS but left "
			    "errbuf empty",
			    tag);
		printf("%s: store_open refused cleanly: %s: %s\n", tag,
		       store_strerror(rc), err);
		return;
	}
	verify_acks(s, tag);
	head = store_revision(s);
	fill_value("/ro/new", val, sizeof val);
	rc = store_put(s, "/ro/new", val, sizeof val, 0, &rev);
	if (rc != STORE_EROFS)
		die("%s: store_put on a read-only database returned %d (%s); "
		    "expected STORE_EROFS",
		    tag, rc, store_strerror(rc));
	rc = store_delete(s, "/ro/000", NULL, NULL, NULL);
	if (rc != STORE_EROFS)
		die("%s: store_delete on a read-only database returned %d "
		    "(%s); expected STORE_EROFS",
		    tag, rc, store_strerror(rc));
	if (store_revision(s) != head)
		die("%s: failed writes moved the revision from %" PRId64
		    " to %" PRId64,
		    tag, head, store_revision(s));
	verify_acks(s, tag);
	store_close(s);
	printf("%s: opened read-only; reads work, writes get "
	       "STORE_EROFS\n",
	       tag);
}

static void ro_after(const char *dir, const char *tag)
{
	static int calls;
	store *s = must_open(dir, tag);
	char val[100], key[64];
	int64_t head = store_revision(s), rev = 0;
	int rc;

	verify_acks(s, tag);
	snprintf(key, sizeof key, "/ro/after/%d", calls++);
	fill_value(key, val, sizeof val);
	rc = store_put(s, key, val, sizeof val, 0, &rev);
	if (rc != 0)
		die("%s: write failed: %s", tag, store_strerror(rc));
	if (rev != head + 1)
		die("%s: write got revision %" PRId64 ", expected %" PRId64,
		    tag, rev, head + 1);
	add_ack(key, rev, sizeof val);
	verify_acks(s, tag);
	check_log(s, tag);
	store_close(s);
	integrity_check(dir, tag);
}

static void test_read_only(void)
{
	char *real = path_join(base, "ro-real"), *view = path_join(base, "ro");
	char *probe = path_join(view, "probe"), *db;
	int fd, flags = 0;

	if (mkdir(real, 0700) != 0 || mkdir(view, 0700) != 0)
		die("mkdir: %s", strerror(errno));
	ro_write_keys(real);

	/* A read-only bind mount of the data directory. */
	do_mount(real, view, NULL, MS_BIND, NULL);
	do_mount(NULL, view, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL);
	nmounts--; /* the remount is the same mount */
	fd = open(probe, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0 || errno != EROFS)
		die("read-only bind mount %s is writable", view);
	ro_check(view, "read-only bind mount");
	do_umount(view);
	ro_after(real, "read-only: the directory after unmounting");

	/* The database file itself immutable, the directory writable. */
	db = path_join(real, "signalbox.db");
	fd = open(db, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open %s: %s", db, strerror(errno));
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
		printf("read-only: chattr +i not supported here (%s); "
		       "skipping that case\n",
		       strerror(errno));
		close(fd);
	} else {
		snprintf(immutable, sizeof immutable, "%s", db);
		flags |= FS_IMMUTABLE_FL;
		if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0) {
			printf("read-only: chattr +i failed (%s); skipping "
			       "that case\n",
			       strerror(errno));
			immutable[0] = '\0';
			close(fd);
		} else {
			close(fd);
			ro_check(real, "immutable database file");
			set_immutable(db, false);
			immutable[0] = '\0';
			ro_after(real, "read-only: the file after chattr -i");
		}
	}
	free(db);
	free(probe);
	free(view);
	free(real);
	nacks = 0;
}

int main(void)
{
	if (geteuid() != 0)
		skip("needs root to mount tmpfs and read-only bind mounts");
	signal(SIGABRT, on_fatal);
	signal(SIGSEGV, on_fatal);
	signal(SIGBUS, on_fatal);
	signal(SIGTERM, on_fatal);
	signal(SIGINT, on_fatal);
	signal(SIGALRM, on_fatal);
	signal(SIGPIPE, SIG_IGN);
	alarm(WATCHDOG_SECONDS);
	base = tu_tmpdir("fault");
	snprintf(base_buf, sizeof base_buf, "%s", base);
	free(base);
	base = base_buf;
	atexit(cleanup);

	test_full_disk();
	test_read_only();

	free(acks);
	printf("test_fault: PASS\n");
	return 0;
}
