/*
 * smap.c -- a hash table from strings to pointers (smap.h).
 */
#include "util/smap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint64_t smap_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

void *smap_get(const smap *m, const char *key)
{
	if (!m->nb)
		return NULL;
	for (smap_ent *e = m->b[smap_hash(key) & (m->nb - 1)]; e; e = e->next)
		if (!strcmp(e->key, key))
			return e->val;
	return NULL;
}

int smap_put(smap *m, const char *key, void *val)
{
	smap_ent *e;
	size_t k;

	if (m->n + 1 > m->nb) {
		size_t nb = m->nb ? m->nb * 2 : 16;
		smap_ent **b = calloc(nb, sizeof(*b));

		if (!b)
			return -ENOMEM;
		for (size_t i = 0; i < m->nb; i++)
			for (smap_ent *x = m->b[i], *nx; x; x = nx) {
				nx = x->next;
				k = smap_hash(x->key) & (nb - 1);
				x->next = b[k];
				b[k] = x;
			}
		free(m->b);
		m->b = b;
		m->nb = nb;
	}
	e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	k = smap_hash(key) & (m->nb - 1);
	e->key = key;
	e->val = val;
	e->next = m->b[k];
	m->b[k] = e;
	m->n++;
	return 0;
}

void smap_del(smap *m, const char *key)
{
	if (!m->nb)
		return;
	for (smap_ent **pp = &m->b[smap_hash(key) & (m->nb - 1)]; *pp;
	     pp = &(*pp)->next)
		if (!strcmp((*pp)->key, key)) {
			smap_ent *e = *pp;

			*pp = e->next;
			free(e);
			m->n--;
			return;
		}
}

void smap_free(smap *m)
{
	for (size_t i = 0; i < m->nb; i++)
		for (smap_ent *e = m->b[i], *nx; e; e = nx) {
			nx = e->next;
			free(e);
		}
	free(m->b);
	memset(m, 0, sizeof(*m));
}

smap_ent *smap_first(const smap *m, size_t *i)
{
	for (*i = 0; *i < m->nb; (*i)++)
		if (m->b[*i])
			return m->b[*i];
	return NULL;
}

smap_ent *smap_next(const smap *m, size_t *i, smap_ent *e)
{
	if (e->next)
		return e->next;
	for ((*i)++; *i < m->nb; (*i)++)
		if (m->b[*i])
			return m->b[*i];
	return NULL;
}
