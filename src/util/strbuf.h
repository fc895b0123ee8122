/*
 * strbuf.h -- a growing, always NUL-terminated string, for building
 * messages and paths. Out of memory is sticky: appends after a failed one
 * do nothing and oom stays set, so a caller checks once at the end.
 *
 * Zero-initialise (strbuf b = {0}); the caller frees b.p with free().
 */
#ifndef SIGNALBOX_UTIL_STRBUF_H
#define SIGNALBOX_UTIL_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct strbuf {
	char *p; /* NULL until the first append */
	size_t len, cap;
	bool oom;
} strbuf;

void strbuf_putn(strbuf *b, const char *s, size_t n);
void strbuf_puts(strbuf *b, const char *s);
void strbuf_putc(strbuf *b, char c);
void strbuf_printf(strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The text so far ("" before any append); borrowed. */
const char *strbuf_str(const strbuf *b);
/* Cut back to len bytes (len <= b->len). */
void strbuf_truncate(strbuf *b, size_t len);

#endif
