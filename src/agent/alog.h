/*
 * alog.h -- the agent's log: one line per event on standard error, with
 * the time, the level and which half of the agent speaks ("priv" or
 * "net"). Both halves share the one stderr.
 */
#ifndef SIGNALBOX_AGENT_ALOG_H
#define SIGNALBOX_AGENT_ALOG_H

#include <stddef.h>

enum { ALOG_ERROR = 0, ALOG_WARN, ALOG_INFO, ALOG_DEBUG };

/* Prototypes */

/* "error", "warn", "info" or "debug" into the level; -1 if none. */
int alog_level_parse(const char *s);
/* Set the level and the name of the speaking half (borrowed, static). */
void alog_setup(int level, const char *role);
void alog(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Format a message into err (errlen bytes; nothing when err is NULL): the
 * error text the agent's modules hand their callers. */
void alog_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
