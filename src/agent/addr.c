/*
 * addr.c -- strict parsers and formatters for the agent's value types
 * (addr.h). inet_pton does the address literals; what it accepts in
 * dotted-quad form is exactly the canonical spelling.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "agent/addr.h"

int addr_ip4_parse(const char *s, uint32_t *out)
{
	struct in_addr a;

	if (!s || strlen(s) > 15 || inet_pton(AF_INET, s, &a) != 1)
		return -EINVAL;
	*out = ntohl(a.s_addr);
	return 0;
}

void addr_ip4_format(uint32_t ip, char out[16])
{
	snprintf(out, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255,
		 (ip >> 8) & 255, ip & 255);
}

static uint32_t mask_of(uint8_t len)
{
	return len ? 0xffffffffu << (32 - len) : 0;
}

int addr_cidr_parse(const char *s, bool mask_host, addr_cidr *out)
{
	char ip[16];
	const char *slash;
	uint32_t a;
	size_t n;
	int len = 0;

	if (!s)
		return -EINVAL;
	slash = strchr(s, '/');
	if (!slash || (n = (size_t)(slash - s)) >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, s, n);
	ip[n] = '\0';
	if (addr_ip4_parse(ip, &a))
		return -EINVAL;
	s = slash + 1;
	/* 0..32, no sign, no leading zero */
	if (!isdigit((unsigned char)s[0]) || (s[0] == '0' && s[1]) ||
	    (s[1] && (!isdigit((unsigned char)s[1]) || s[2])))
		return -EINVAL;
	len = atoi(s);
	if (len > 32)
		return -EINVAL;
	if ((a & ~mask_of((uint8_t)len)) && !mask_host)
		return -EINVAL;
	out->ip = a & mask_of((uint8_t)len);
	out->len = (uint8_t)len;
	return 0;
}

void addr_cidr_format(const addr_cidr *c, char out[ADDR_CIDR_MAX])
{
	char ip[16];

	addr_ip4_format(c->ip, ip);
	snprintf(out, ADDR_CIDR_MAX, "%s/%u", ip, c->len);
}

bool addr_cidr_contains(const addr_cidr *c, uint32_t ip)
{
	return (ip & mask_of(c->len)) == c->ip;
}

int addr_cidr_cmp(const addr_cidr *a, const addr_cidr *b)
{
	if (a->ip != b->ip)
		return a->ip < b->ip ? -1 : 1;
	return (int)a->len - (int)b->len;
}

bool addr_cidrs_equal(const addr_cidr *a, size_t na, const addr_cidr *b,
		      size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (addr_cidr_cmp(&a[i], &b[i]))
			return false;
	return true;
}

/* A port: 1..65535, decimal, no sign or leading zero. */
static int port_parse(const char *s, uint16_t *out)
{
	unsigned long v = 0;
	size_t i;

	if (!s[0] || s[0] == '0' || strlen(s) > 5)
		return -EINVAL;
	for (i = 0; s[i]; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

int addr_endpoint_parse(const char *s, addr_endpoint *out)
{
	char host[48];
	const char *colon, *start = s;
	addr_endpoint e = {0};
	size_t n;

	if (!s || strlen(s) >= ADDR_ENDPOINT_MAX)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		start = s + 1;
		n = (size_t)(close - start);
		colon = close + 1;
		e.family = AF_INET6;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		n = (size_t)(colon - s);
		e.family = AF_INET;
	}
	if (n == 0 || n >= sizeof(host))
		return -EINVAL;
	memcpy(host, start, n);
	host[n] = '\0';
	if (inet_pton(e.family, host, e.ip) != 1)
		return -EINVAL;
	if (port_parse(colon + 1, &e.port))
		return -EINVAL;
	*out = e;
	return 0;
}

void addr_endpoint_format(const addr_endpoint *e, char out[ADDR_ENDPOINT_MAX])
{
	char host[INET6_ADDRSTRLEN];

	inet_ntop(e->family, e->ip, host, sizeof(host));
	if (e->family == AF_INET6)
		snprintf(out, ADDR_ENDPOINT_MAX, "[%s]:%u", host, e->port);
	else
		snprintf(out, ADDR_ENDPOINT_MAX, "%s:%u", host, e->port);
}

bool addr_endpoint_eq(const addr_endpoint *a, const addr_endpoint *b)
{
	size_t n = a->family == AF_INET6 ? 16 : 4;

	return a->family == b->family && a->port == b->port &&
	       !memcmp(a->ip, b->ip, n);
}

int addr_key_from_base64(const char *s, uint8_t out[ADDR_KEY_LEN])
{
	unsigned char raw[36];
	char again[ADDR_KEY_B64_LEN + 1];
	size_t i;

	if (!s || strlen(s) != ADDR_KEY_B64_LEN || s[43] != '=')
		return -EINVAL;
	for (i = 0; i < 43; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '/')
			return -EINVAL;
	if (EVP_DecodeBlock(raw, (const unsigned char *)s, 44) != 33)
		return -EINVAL;
	/* the canonical spelling only: the unused low bits are zero */
	addr_key_to_base64(raw, again);
	if (strcmp(again, s))
		return -EINVAL;
	memcpy(out, raw, ADDR_KEY_LEN);
	return 0;
}

void addr_key_to_base64(const uint8_t k[ADDR_KEY_LEN],
			char out[ADDR_KEY_B64_LEN + 1])
{
	EVP_EncodeBlock((unsigned char *)out, k, ADDR_KEY_LEN);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int addr_key_from_hex(const char *s, uint8_t out[ADDR_KEY_LEN])
{
	uint8_t k[ADDR_KEY_LEN];
	size_t i;

	if (!s || strlen(s) != ADDR_KEY_HEX_LEN)
		return -EINVAL;
	for (i = 0; i < ADDR_KEY_LEN; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		k[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(out, k, ADDR_KEY_LEN);
	return 0;
}

void addr_key_to_hex(const uint8_t k[ADDR_KEY_LEN],
		     char out[ADDR_KEY_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < ADDR_KEY_LEN; i++) {
		out[2 * i] = digits[k[i] >> 4];
		out[2 * i + 1] = digits[k[i] & 15];
	}
	out[ADDR_KEY_HEX_LEN] = '\0';
}

static bool label_ok(const char *s, size_t n)
{
	size_t i;

	if (n < 1 || n > 63 || !isalnum((unsigned char)s[0]) ||
	    !isalnum((unsigned char)s[n - 1]))
		return false;
	for (i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) ||
		      isdigit((unsigned char)s[i]) || s[i] == '-'))
			return false;
	return true;
}

bool addr_dns_label_ok(const char *s)
{
	return s && label_ok(s, strlen(s));
}

bool addr_object_name_ok(const char *s)
{
	const char *dot;

	if (!s || !*s || strlen(s) > ADDR_NAME_MAX)
		return false;
	while ((dot = strchr(s, '.'))) {
		if (!label_ok(s, (size_t)(dot - s)))
			return false;
		s = dot + 1;
	}
	return label_ok(s, strlen(s));
}

bool addr_ifname_ok(const char *s)
{
	size_t i, n = s ? strlen(s) : 0;

	if (n < 1 || n > 15 || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '.' && s[i] != '-')
			return false;
	return true;
}
