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
 * abort the test program (with the store's message) if it fails. */
store *tu_open(const char *dir);

/* As tu_open, with the caller's options (data_dir is set to dir). */
store *tu_open_opts(const char *dir, store_options *o);

#endif
