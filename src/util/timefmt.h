/*
 * timefmt.h -- wall-clock time as Kubernetes writes it: RFC 3339 in UTC,
 * with seconds (metav1.Time) or microseconds (metav1.MicroTime, a Lease's
 * renewTime).
 */
#ifndef SIGNALBOX_UTIL_TIMEFMT_H
#define SIGNALBOX_UTIL_TIMEFMT_H

#include <stdbool.h>

/* Now, in seconds since the epoch. */
double time_now(void);

/* "2026-11-26T21:48:22Z" or, with micro, "2026-11-26T21:48:22.123456Z",
 * into buf (at least 40 bytes). */
void time_format(double t, char *buf, bool micro);

/* An RFC 3339 time (a fraction and a "Z" or "+hh:mm"/"-hh:mm" offset are
 * accepted) in seconds since the epoch; 0 when s is NULL or not one. */
double time_parse(const char *s);

#endif
