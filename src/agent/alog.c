/*
 * alog.c -- the agent's log lines (alog.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "agent/alog.h"

static int alog_max = ALOG_INFO;
static const char *alog_role = "agent";
static const char *const names[] = {"error", "warn", "info", "debug"};

int alog_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

void alog_setup(int level, const char *role)
{
	alog_max = level;
	alog_role = role;
}

void alog(int level, const char *fmt, ...)
{
	char line[2048], ts[32];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int n;

	if (level > alog_max)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s.%03ldZ %s agent[%s]: ", ts,
		     (long)tv.tv_usec / 1000, names[level & 3], alog_role);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* one write per line, so the halves' lines do not interleave */
	fprintf(stderr, "%s\n", line);
	fflush(stderr);
}

void alog_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
