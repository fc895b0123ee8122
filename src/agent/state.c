/*
 * state.c -- the state directory: key, credential, map (state.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "agent/alog.h"
#include "agent/state.h"
#include "util/strbuf.h"

int state_dir_prepare(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) && errno != EEXIST) {
		alog_errf(err, errlen, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
		alog_errf(err, errlen, "%s: not a directory", dir);
		return -ENOTDIR;
	}
	if (st.st_mode & 022) {
		alog_errf(err, errlen,
			  "%s: writable by others (mode %03o); make it 0700",
			  dir, (unsigned)(st.st_mode & 0777));
		return -EPERM;
	}
	return 0;
}

int state_write(const char *dir, const char *name, const void *buf, size_t len,
		char *err, size_t errlen)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	size_t off = 0;
	int fd, r = 0;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >=
		(int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >=
		(int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	fchmod(fd, 0600);
	while (off < len) {
		ssize_t w = write(fd, (const char *)buf + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			r = -errno;
			break;
		}
		off += (size_t)w;
	}
	if (!r && fsync(fd))
		r = -errno;
	if (close(fd) && !r)
		r = -errno;
	if (!r && rename(tmp, path))
		r = -errno;
out:
	if (r) {
		unlink(tmp);
		alog_errf(err, errlen, "writing %s: %s", path, strerror(-r));
	}
	return r;
}

int state_read(const char *dir, const char *name, size_t max, char **buf,
	       size_t *len)
{
	char path[PATH_MAX], *b;
	struct stat st;
	size_t off = 0;
	int fd, r = 0;

	*buf = NULL;
	*len = 0;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || (size_t)st.st_size > max) {
		close(fd);
		return -EFBIG;
	}
	b = malloc((size_t)st.st_size + 1);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, b + off, (size_t)st.st_size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		off += (size_t)n;
	}
	close(fd);
	if (r) {
		free(b);
		return r;
	}
	b[off] = '\0';
	*buf = b;
	*len = off;
	return 0;
}

/* ---- the key ---------------------------------------------------------- */

int state_key_public(const uint8_t priv[ADDR_KEY_LEN],
		     uint8_t pub[ADDR_KEY_LEN])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv,
						   ADDR_KEY_LEN);
	size_t n = ADDR_KEY_LEN;
	int r = 0;

	if (!k || EVP_PKEY_get_raw_public_key(k, pub, &n) != 1 ||
	    n != ADDR_KEY_LEN)
		r = -EINVAL;
	EVP_PKEY_free(k);
	return r;
}

static int key_generate(uint8_t priv[ADDR_KEY_LEN])
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL);
	EVP_PKEY *k = NULL;
	size_t n = ADDR_KEY_LEN;
	int r = -EIO;

	if (ctx && EVP_PKEY_keygen_init(ctx) == 1 &&
	    EVP_PKEY_keygen(ctx, &k) == 1 &&
	    EVP_PKEY_get_raw_private_key(k, priv, &n) == 1 &&
	    n == ADDR_KEY_LEN) {
		/* clamped, as `wg genkey` writes it */
		priv[0] &= 248;
		priv[31] &= 127;
		priv[31] |= 64;
		r = 0;
	}
	EVP_PKEY_free(k);
	EVP_PKEY_CTX_free(ctx);
	return r;
}

int state_key_load(const char *dir, uint8_t priv[ADDR_KEY_LEN],
		   uint8_t pub[ADDR_KEY_LEN], bool *created, char *err,
		   size_t errlen)
{
	char b64[ADDR_KEY_B64_LEN + 2], *buf = NULL;
	size_t len;
	int r;

	*created = false;
	r = state_read(dir, "private.key", 256, &buf, &len);
	if (r == -ENOENT) {
		if ((r = key_generate(priv))) {
			alog_errf(err, errlen,
				  "generating an X25519 key failed");
			return r;
		}
		addr_key_to_base64(priv, b64);
		strcat(b64, "\n");
		r = state_write(dir, "private.key", b64, strlen(b64), err,
				errlen);
		explicit_bzero(b64, sizeof(b64));
		if (r)
			return r;
		*created = true;
	} else if (r) {
		alog_errf(err, errlen, "%s/private.key: %s", dir, strerror(-r));
		return r;
	} else {
		while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
			buf[--len] = '\0';
		r = addr_key_from_base64(buf, priv);
		explicit_bzero(buf, len);
		free(buf);
		if (r) {
			alog_errf(err, errlen,
				  "%s/private.key: not a base64 WireGuard key",
				  dir);
			return r;
		}
	}
	if ((r = state_key_public(priv, pub)))
		alog_errf(err, errlen, "deriving the public key failed");
	return r;
}

/* ---- the credential --------------------------------------------------- */

static bool token_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 8 || n >= STATE_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr("._~+/=-", s[i])))
			return false;
	return true;
}

/* Check every field; err names the first bad one. */
static int cred_check(const state_cred *c, char *err, size_t errlen)
{
	uint32_t ip;
	addr_cidr net;

	if (!addr_object_name_ok(c->peer) || strlen(c->peer) > 63)
		alog_errf(err, errlen, "credential: bad peer name");
	else if (!addr_dns_label_ok(c->ns))
		alog_errf(err, errlen, "credential: bad namespace");
	else if (addr_ip4_parse(c->address, &ip))
		alog_errf(err, errlen, "credential: bad address");
	else if (addr_cidr_parse(c->cidr, false, &net) ||
		 !addr_cidr_contains(&net, ip))
		alog_errf(err, errlen, "credential: bad cidr");
	else if (!token_ok(c->token))
		alog_errf(err, errlen, "credential: bad token");
	else if (!addr_object_name_ok(c->lease))
		alog_errf(err, errlen, "credential: bad lease name");
	else if (c->lease_seconds < 1 || c->lease_seconds > 86400)
		alog_errf(err, errlen, "credential: bad lease duration");
	else
		return 0;
	return -EINVAL;
}

char *state_cred_encode(const state_cred *c)
{
	strbuf b = {0};

	strbuf_printf(&b,
		      "peer %s\nnamespace %s\naddress %s\ncidr %s\ntoken %s\n"
		      "lease %s\nlease-seconds %d\n",
		      c->peer, c->ns, c->address, c->cidr, c->token, c->lease,
		      c->lease_seconds);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* Copy a "key value\n" line's value into dst (cap bytes). */
static int cred_field(const char **p, const char *end, const char *key,
		      char *dst, size_t cap)
{
	size_t kn = strlen(key), vn;
	const char *nl;

	if ((size_t)(end - *p) <= kn + 1 || memcmp(*p, key, kn) ||
	    (*p)[kn] != ' ')
		return -EINVAL;
	*p += kn + 1;
	nl = memchr(*p, '\n', (size_t)(end - *p));
	if (!nl || (vn = (size_t)(nl - *p)) == 0 || vn >= cap)
		return -EINVAL;
	memcpy(dst, *p, vn);
	dst[vn] = '\0';
	if (strchr(dst, ' ') || strchr(dst, '\0') != dst + vn)
		return -EINVAL;
	*p = nl + 1;
	return 0;
}

int state_cred_decode(const char *buf, size_t len, state_cred *c, char *err,
		      size_t errlen)
{
	const char *p = buf, *end = buf + len;
	char secs[8];
	state_cred t;

	memset(&t, 0, sizeof(t));
	if (cred_field(&p, end, "peer", t.peer, sizeof(t.peer)) ||
	    cred_field(&p, end, "namespace", t.ns, sizeof(t.ns)) ||
	    cred_field(&p, end, "address", t.address, sizeof(t.address)) ||
	    cred_field(&p, end, "cidr", t.cidr, sizeof(t.cidr)) ||
	    cred_field(&p, end, "token", t.token, sizeof(t.token)) ||
	    cred_field(&p, end, "lease", t.lease, sizeof(t.lease)) ||
	    cred_field(&p, end, "lease-seconds", secs, sizeof(secs)) ||
	    p != end) {
		alog_errf(err, errlen, "credential: malformed");
		explicit_bzero(&t, sizeof(t));
		return -EINVAL;
	}
	for (const char *s = secs; *s; s++)
		if (*s < '0' || *s > '9' || (s == secs && *s == '0'))
			t.lease_seconds = -1;
	if (!t.lease_seconds)
		t.lease_seconds = atoi(secs);
	if (cred_check(&t, err, errlen)) {
		explicit_bzero(&t, sizeof(t));
		return -EINVAL;
	}
	*c = t;
	explicit_bzero(&t, sizeof(t));
	return 0;
}

int state_cred_save(const char *dir, const state_cred *c, char *err,
		    size_t errlen)
{
	json_t *o;
	char *s;
	int r;

	if (cred_check(c, err, errlen))
		return -EINVAL;
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "peer", c->peer,
		      "namespace", c->ns, "address", c->address, "cidr",
		      c->cidr, "token", c->token, "lease", c->lease,
		      "leaseDurationSeconds", c->lease_seconds);
	s = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
	json_decref(o);
	if (!s)
		return -ENOMEM;
	r = state_write(dir, "credential.json", s, strlen(s), err, errlen);
	explicit_bzero(s, strlen(s));
	free(s);
	return r;
}

static int copy_str(const json_t *o, const char *key, char *dst, size_t cap)
{
	const char *v = json_string_value(json_object_get(o, key));

	if (!v || strlen(v) >= cap)
		return -EINVAL;
	strcpy(dst, v);
	return 0;
}

int state_cred_load(const char *dir, state_cred *c, char *err, size_t errlen)
{
	char *buf = NULL;
	json_t *o;
	size_t len;
	int r;

	memset(c, 0, sizeof(*c));
	r = state_read(dir, "credential.json", 64 * 1024, &buf, &len);
	if (r) {
		if (r != -ENOENT)
			alog_errf(err, errlen, "%s/credential.json: %s", dir,
				  strerror(-r));
		return r;
	}
	o = json_loadb(buf, len, 0, NULL);
	explicit_bzero(buf, len);
	free(buf);
	if (!o || copy_str(o, "peer", c->peer, sizeof(c->peer)) ||
	    copy_str(o, "namespace", c->ns, sizeof(c->ns)) ||
	    copy_str(o, "address", c->address, sizeof(c->address)) ||
	    copy_str(o, "cidr", c->cidr, sizeof(c->cidr)) ||
	    copy_str(o, "token", c->token, sizeof(c->token)) ||
	    copy_str(o, "lease", c->lease, sizeof(c->lease)) ||
	    !json_is_integer(json_object_get(o, "leaseDurationSeconds"))) {
		json_decref(o);
		alog_errf(err, errlen, "%s/credential.json: malformed", dir);
		return -EINVAL;
	}
	c->lease_seconds =
	    (int)json_integer_value(json_object_get(o, "leaseDurationSeconds"));
	json_decref(o);
	if ((r = cred_check(c, err, errlen)))
		memset(c, 0, sizeof(*c));
	return r;
}

int state_cred_revoke(const char *dir)
{
	char a[PATH_MAX], b[PATH_MAX + 16];

	snprintf(a, sizeof(a), "%s/credential.json", dir);
	snprintf(b, sizeof(b), "%s/credential.json.revoked", dir);
	if (rename(a, b) && errno != ENOENT)
		return -errno;
	snprintf(a, sizeof(a), "%s/map.json", dir);
	unlink(a);
	return 0;
}
