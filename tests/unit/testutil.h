/*
 * testutil.h -- small helpers shared by the store's tests: scratch
 * directories that are always removed, and opening a store on one.
 */
#ifndef SIGNALBOX_TESTUTIL_H
#define SIGNALBOX_TESTUTIL_H

#include "store/store.h"

/* A new empty directory under $TMPDIR (or /tmp), named after tag. Caller
 * frees the string and removes the directory with tu_rmrf. Aborts the test
 * program if it cannot be made. */
char *tu_tmpdir(const char *tag);

/* Remove path and everything below it. Quiet if it does not exist. */
void tu_rmrf(const char *path);

/* Open a store on dir with the defaults, automatic compaction off, and
 * abort the test program (with the store's message) if it fails.
 *
 * With SB_TEST_ETCD set to etcd client URLs (tests/unit/etcd-run.sh sets
 * it), the store is an etcd-backed one instead. The first open for a dir
 * empties the etcd (deletes every key) and records etcd's revision then in
 * dir as the store's etcd_revision_offset, so the tests' revision numbers
 * (1 for the first write, ...) hold; reopening the same dir finds the same
 * data and offset, as reopening a sqlite data directory would. The suites'
 * sqlite-only cases are skipped then, each with the reason printed. */
store *tu_open(const char *dir);

/* As tu_open, with the caller's options (data_dir is set to dir). */
store *tu_open_opts(const char *dir, store_options *o);

/* The etcd client URLs the tests run against (SB_TEST_ETCD), or NULL when
 * they run on sqlite. */
const char *tu_etcd(void);

/* Set o's etcd TLS files from SB_TEST_ETCD_CA, _CERT and _KEY (when
 * etcd-run.sh runs etcd with https). */
void tu_etcd_tls(store_options *o);

#endif
