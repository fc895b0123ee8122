/*
 * amap_int.h -- what amap.c (the map, its deltas, its frames) and
 * amap_json.c (the JSON forms of its parts) share. Not part of amap.h:
 * nothing outside these two files uses it.
 *
 * The parsers check everything and, on error, leave nothing allocated in
 * the entry and return -EINVAL (err names the field under what) or
 * -ENOMEM. An entry parsed is owned by the caller and freed with its
 * *_free. The *_json writers return a new reference (NULL on ENOMEM).
 */
#ifndef SIGNALBOX_AGENT_AMAP_INT_H
#define SIGNALBOX_AGENT_AMAP_INT_H

#include <jansson.h>

#include "agent/amap.h"

/* amap.c */
int amap_cidrs_add(amap_cidrs *s, const addr_cidr *c);
void amap_cidrs_free(amap_cidrs *s);
void amap_peer_free(void *p);  /* amap_peer */
void amap_rule_free(void *p);  /* amap_rule */
void amap_route_free(void *p); /* amap_route */
void amap_self_free(amap_self *s);
int amap_port_cmp(const void *a, const void *b); /* amap_port, for qsort */

/* amap_json.c */
/* An optional array: absent, null or an array is 0, anything else
 * -EINVAL naming what. */
int amap_array_check(const json_t *arr, const char *what, char *err,
		     size_t errlen);
/* An array of "a.b.c.d/n" (absent or null: empty) into *s. */
int amap_cidrs_parse(const json_t *arr, const char *what, amap_cidrs *s,
		     char *err, size_t errlen);
int amap_peer_parse(const json_t *o, const char *what, amap_peer *e, char *err,
		    size_t errlen);
int amap_rule_parse(const json_t *o, const char *what, amap_rule *e, char *err,
		    size_t errlen);
int amap_route_parse(const json_t *o, const char *what, amap_route *e,
		     char *err, size_t errlen);
int amap_self_parse(const json_t *o, amap_self *s, char *err, size_t errlen);
json_t *amap_cidrs_json(const amap_cidrs *s);
json_t *amap_self_json(const amap_self *s);
json_t *amap_peer_json(const amap_peer *p);
json_t *amap_rule_json(const amap_rule *r);
json_t *amap_route_json(const amap_route *r);

#endif
