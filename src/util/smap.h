/*
 * smap.h -- a hash table from strings to pointers (chained, growing by
 * doubling). The key is borrowed: it must live as long as its entry, so it
 * is normally a string inside the value itself.
 *
 * Zero-initialise (smap m = {0}); free with smap_free, which frees the
 * table, not the values. Single-threaded.
 */
#ifndef SIGNALBOX_UTIL_SMAP_H
#define SIGNALBOX_UTIL_SMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct smap_ent {
	const char *key;
	void *val;
	struct smap_ent *next;
} smap_ent;

typedef struct smap {
	smap_ent **b;
	size_t nb, n;
} smap;

/* The value at key, or NULL. */
void *smap_get(const smap *m, const char *key);
/* Add key (no check for a duplicate: the caller looks first). 0 or
 * -ENOMEM. */
int smap_put(smap *m, const char *key, void *val);
/* Remove key's entry, if any. */
void smap_del(smap *m, const char *key);
void smap_free(smap *m);

/* Iterate: for (smap_ent *e = smap_first(m, &i); e; e = smap_next(m, &i, e)) */
smap_ent *smap_first(const smap *m, size_t *i);
smap_ent *smap_next(const smap *m, size_t *i, smap_ent *e);

uint64_t smap_hash(const char *s);

#endif
