/*
 * addr.h -- the agent's small value types, parsed strictly: IPv4 prefixes,
 * UDP endpoints, WireGuard keys and the names the control plane gives.
 *
 * Both halves of the agent use these: the network-facing half to check a
 * map from the server, the privileged half to check again every value the
 * other half sends it (it trusts nothing that crossed the socketpair). So
 * every parser here refuses anything that is not the one canonical
 * spelling, and every formatter writes that spelling back.
 *
 * Errors: parsers return 0 or -EINVAL and leave *out untouched on error.
 * No function allocates.
 */
#ifndef SIGNALBOX_AGENT_ADDR_H
#define SIGNALBOX_AGENT_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADDR_KEY_LEN	  32
#define ADDR_KEY_B64_LEN  44 /* without the NUL */
#define ADDR_KEY_HEX_LEN  64
#define ADDR_CIDR_MAX	  24 /* "255.255.255.255/32" and a NUL, with room */
#define ADDR_ENDPOINT_MAX 64 /* "[v6%scope]:65535" and a NUL, with room */
#define ADDR_NAME_MAX	  253

/* An IPv4 prefix; ip in host byte order, host bits cleared. */
typedef struct addr_cidr {
	uint32_t ip;
	uint8_t len; /* 0..32 */
} addr_cidr;

/* A UDP endpoint: an IPv4 or IPv6 literal and a port 1..65535. */
typedef struct addr_endpoint {
	int family; /* AF_INET or AF_INET6 */
	uint8_t ip[16];
	uint16_t port;
} addr_endpoint;

/* Prototypes */

/* "a.b.c.d" (no leading zeros) into host order. */
int addr_ip4_parse(const char *s, uint32_t *out);
void addr_ip4_format(uint32_t ip, char out[16]);

/* "a.b.c.d/n". With host bits set it is -EINVAL unless mask_host, when
 * they are cleared ("100.64.0.1/10" is the prefix 100.64.0.0/10). */
int addr_cidr_parse(const char *s, bool mask_host, addr_cidr *out);
void addr_cidr_format(const addr_cidr *c, char out[ADDR_CIDR_MAX]);
/* Whether ip lies inside c. */
bool addr_cidr_contains(const addr_cidr *c, uint32_t ip);
/* Order for sorting (ip, then len). */
int addr_cidr_cmp(const addr_cidr *a, const addr_cidr *b);
/* Whether two arrays of prefixes are equal, element by element (not with
 * memcmp: the struct has padding). */
bool addr_cidrs_equal(const addr_cidr *a, size_t na, const addr_cidr *b,
		      size_t nb);

/* "a.b.c.d:port" or "[v6]:port". */
int addr_endpoint_parse(const char *s, addr_endpoint *out);
void addr_endpoint_format(const addr_endpoint *e, char out[ADDR_ENDPOINT_MAX]);
bool addr_endpoint_eq(const addr_endpoint *a, const addr_endpoint *b);

/* WireGuard keys: standard base64 of 32 bytes (44 characters with one
 * '=') or 64 lowercase hex digits (the UAPI form). */
int addr_key_from_base64(const char *s, uint8_t out[ADDR_KEY_LEN]);
void addr_key_to_base64(const uint8_t k[ADDR_KEY_LEN],
			char out[ADDR_KEY_B64_LEN + 1]);
int addr_key_from_hex(const char *s, uint8_t out[ADDR_KEY_LEN]);
void addr_key_to_hex(const uint8_t k[ADDR_KEY_LEN],
		     char out[ADDR_KEY_HEX_LEN + 1]);

/* A DNS-1123 label: 1..63 of [a-z0-9-], alphanumeric at both ends. The
 * names of peers and namespaces are such labels. */
bool addr_dns_label_ok(const char *s);
/* A Kubernetes object name (DNS-1123 subdomain, ≤ 253). */
bool addr_object_name_ok(const char *s);
/* A network interface name: 1..15 of [A-Za-z0-9_.-], not "." or "..". */
bool addr_ifname_ok(const char *s);

#endif
