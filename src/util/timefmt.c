/*
 * timefmt.c -- RFC 3339 times (timefmt.h).
 */
#include "util/timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double time_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void time_format(double t, char *buf, bool micro)
{
	time_t s = (time_t)t;
	struct tm tm;
	char b[32];

	gmtime_r(&s, &tm);
	if (!micro) {
		strftime(buf, 40, "%Y-%m-%dT%H:%M:%SZ", &tm);
		return;
	}
	strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, 40, "%s.%06ldZ", b, (long)((t - (double)s) * 1e6));
}

double time_parse(const char *s)
{
	struct tm tm;
	const char *p;
	double frac = 0;
	long off = 0;

	if (!s)
		return 0;
	memset(&tm, 0, sizeof tm);
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return 0;
	if (*p == '.') {
		char *end;

		frac = strtod(p, &end);
		p = end;
	}
	if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 +
		      ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
		if (*p == '+')
			off = -off;
	} else if (strcmp(p, "Z") && strcmp(p, "z")) {
		return 0;
	}
	return (double)timegm(&tm) + frac + (double)off;
}
