/*
 * ring.c -- the in-memory watch history: the newest events, bounded by a
 * count and by the bytes of their keys and values.
 *
 * Invariant: every event with revision >= complete_from is in the ring, in
 * (revision, key) order. Evicting an event of revision r moves complete_from
 * past r, so a revision that is only partly in memory is read back from the
 * database instead. The caller (store.c) holds the store's lock.
 */
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

static size_t event_bytes(const store_event *e)
{
	return sizeof(*e) + strlen(e->kv.key) + e->kv.value_len;
}

int store_ring_init(store_ring *r, size_t cap, size_t max_bytes,
		    int64_t next_rev)
{
	memset(r, 0, sizeof(*r));
	if (cap == 0)
		cap = 1;
	r->ev = calloc(cap, sizeof(*r->ev));
	if (!r->ev)
		return STORE_ENOMEM;
	r->cap = cap;
	r->max_bytes = max_bytes;
	r->complete_from = next_rev;
	return 0;
}

void store_ring_free(store_ring *r)
{
	for (size_t i = 0; i < r->count; i++)
		store_event_unref(store_ring_at(r, i));
	free(r->ev);
	memset(r, 0, sizeof(*r));
}

store_event *store_ring_at(const store_ring *r, size_t i)
{
	return r->ev[(r->head + i) % r->cap];
}

static void evict_oldest(store_ring *r)
{
	store_event *e = r->ev[r->head];

	r->ev[r->head] = NULL;
	r->head = (r->head + 1) % r->cap;
	r->count--;
	r->bytes -= event_bytes(e);
	if (e->kv.mod_revision + 1 > r->complete_from)
		r->complete_from = e->kv.mod_revision + 1;
	store_event_unref(e);
}

void store_ring_append(store_ring *r, store_event **evs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t b = event_bytes(evs[i]);

		while (r->count > 0 &&
		       (r->count == r->cap || r->bytes + b > r->max_bytes))
			evict_oldest(r);
		r->ev[(r->head + r->count) % r->cap] = evs[i];
		r->count++;
		r->bytes += b;
	}
	/* An event larger than max_bytes alone stays until the next one. */
}

size_t store_ring_find(const store_ring *r, int64_t rev)
{
	size_t lo = 0, hi = r->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (store_ring_at(r, mid)->kv.mod_revision < rev)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}
