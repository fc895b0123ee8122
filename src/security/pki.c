/*
 * pki.c -- the cluster CA, its certificates, the TLS server context and
 * the identity of a client certificate (see pki.h).
 *
 * Files are the source of truth: pki_ensure looks at what the directory
 * holds, keeps every file that is still fit, and makes the rest. It writes
 * a key before its certificate, each atomically, so a crash between the two
 * leaves a certificate that does not match its key, which the next start
 * sees as unfit and makes again. The CA is the one thing never made over an
 * existing file: clients trust it, and every issued certificate hangs off
 * it.
 *
 * Names for the serving certificate come from the command line, so the
 * subjectAltName extension is built from GENERAL_NAME values and never from
 * an OpenSSL config string, where a comma in a name would add another one.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "security/pki.h"

/* A leaf that expires sooner than this is made again. */
#define RENEW_BEFORE (30L * 86400)
/* Certificates start this long in the past, for clocks a little behind. */
#define BACKDATE 300L

enum cert_kind { KIND_CA, KIND_SERVER, KIND_CLIENT };

/* One subjectAltName: an IP address (GEN_IPADD) or a DNS name (GEN_DNS). */
struct san {
	int type;
	unsigned char ip[16];
	int iplen;
	char dns[254];
};

struct san_list {
	struct san *v;
	size_t n;
};

struct cert_spec {
	enum cert_kind kind;
	const char *cn;
	const char *const *orgs;
	size_t norgs;
	int days;
	const struct san_list *sans; /* KIND_SERVER only */
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* "what: <OpenSSL's last error>", and the error queue emptied. */
static void ossl_err(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char buf[256];

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "unknown OpenSSL error");
	ERR_clear_error();
	seterr(err, errlen, "%s: %s", what, buf);
}

/* ---- files --------------------------------------------------------------- */

static int mkdir_p(const char *dir, char *err, size_t errlen)
{
	char buf[PATH_MAX];
	size_t i, n = strlen(dir);

	if (n == 0 || n >= sizeof(buf)) {
		seterr(err, errlen, "%s: bad directory name", dir);
		return -EINVAL;
	}
	memcpy(buf, dir, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
			int e = errno;

			seterr(err, errlen, "%s: mkdir: %s", buf, strerror(e));
			return -e;
		}
		buf[i] = i < n ? '/' : '\0';
	}
	return 0;
}

static int join(char *out, size_t outlen, const char *dir, const char *name,
		char *err, size_t errlen)
{
	if ((size_t)snprintf(out, outlen, "%s/%s", dir, name) >= outlen) {
		seterr(err, errlen, "%s/%s: path too long", dir, name);
		return -ENAMETOOLONG;
	}
	return 0;
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* Write data to dir/name atomically with mode: a temporary file in dir,
 * fsync, rename over name, fsync of dir. */
static int write_atomic(const char *dir, const char *name, const char *data,
			size_t len, mode_t mode, char *err, size_t errlen)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	int fd = -1, dfd = -1, ret = 0;
	size_t off = 0;

	if (join(path, sizeof(path), dir, name, err, errlen))
		return -ENAMETOOLONG;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name) >=
	    sizeof(tmp)) {
		seterr(err, errlen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
	if (fd < 0) {
		ret = -errno;
		seterr(err, errlen, "%s: %s", tmp, strerror(errno));
		return ret;
	}
	if (fchmod(fd, mode) < 0)
		goto fail;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto fail;
		off += (size_t)w;
	}
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		ret = -errno;
		seterr(err, errlen, "%s: fsync: %s", dir, strerror(errno));
	}
	if (dfd >= 0)
		close(dfd);
	return ret;
fail:
	ret = -errno;
	seterr(err, errlen, "%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return ret;
}

/* A NEW NUL-terminated copy of what a memory BIO holds, cleansing the BIO
 * (it may hold a key). */
static char *bio_string(BIO *b)
{
	char *data, *s;
	long n = BIO_get_mem_data(b, &data);

	if (n < 0)
		return NULL;
	s = malloc((size_t)n + 1);
	if (s) {
		memcpy(s, data, (size_t)n);
		s[n] = '\0';
	}
	OPENSSL_cleanse(data, (size_t)n);
	return s;
}

static char *cert_pem(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *s = NULL;

	if (b && PEM_write_bio_X509(b, x))
		s = bio_string(b);
	BIO_free(b);
	return s;
}

static char *key_pem(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_secmem());
	char *s = NULL;

	if (b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL))
		s = bio_string(b);
	BIO_free(b);
	return s;
}

static X509 *load_cert(const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	ERR_clear_error();
	return x;
}

/* The key at path; one readable by others is made 0600 first. */
static EVP_PKEY *load_key(const char *path)
{
	struct stat st;
	EVP_PKEY *k;
	BIO *b;

	if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077))
		chmod(path, 0600);
	b = BIO_new_file(path, "r");
	k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	ERR_clear_error();
	return k;
}

/* Write key (0600) then certificate (0644) of a pair. */
static int write_pair(const char *dir, const char *crtname, const char *keyname,
		      X509 *x, EVP_PKEY *k, char *err, size_t errlen)
{
	char *kp = k ? key_pem(k) : NULL, *cp = cert_pem(x);
	int ret;

	if ((k && !kp) || !cp) {
		ret = -ENOMEM;
		ossl_err(err, errlen, "encoding PEM");
		goto out;
	}
	if (kp) {
		ret = write_atomic(dir, keyname, kp, strlen(kp), 0600, err,
				   errlen);
		if (ret)
			goto out;
	}
	ret = write_atomic(dir, crtname, cp, strlen(cp), 0644, err, errlen);
out:
	if (kp)
		OPENSSL_cleanse(kp, strlen(kp));
	free(kp);
	free(cp);
	return ret;
}

/* ---- names --------------------------------------------------------------- */

static bool valid_dns(const char *s)
{
	size_t n = strlen(s), label = 0, i;

	if (n == 0 || n > 253)
		return false;
	if (s[0] == '*') {
		if (s[1] != '.' || !s[2])
			return false;
		s += 2;
	}
	for (i = 0; s[i]; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)c) && c != '-')
			return false;
		if (c == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && s[i - 1] != '-';
}

static bool san_equal(const struct san *a, const struct san *b)
{
	if (a->type != b->type)
		return false;
	if (a->type == GEN_IPADD)
		return a->iplen == b->iplen && !memcmp(a->ip, b->ip, a->iplen);
	return !strcasecmp(a->dns, b->dns);
}

/* Add name to l unless it is there already; -EINVAL for a bad name. */
static int san_add(struct san_list *l, const char *name)
{
	struct san s = {0};
	size_t i;

	if (inet_pton(AF_INET, name, s.ip) == 1) {
		static const unsigned char any4[4];

		if (!memcmp(s.ip, any4, 4))
			return 0;
		s.type = GEN_IPADD;
		s.iplen = 4;
	} else if (inet_pton(AF_INET6, name, s.ip) == 1) {
		static const unsigned char any6[16];

		if (!memcmp(s.ip, any6, 16))
			return 0;
		s.type = GEN_IPADD;
		s.iplen = 16;
	} else if (valid_dns(name)) {
		s.type = GEN_DNS;
		for (i = 0; name[i]; i++)
			s.dns[i] = (char)tolower((unsigned char)name[i]);
	} else {
		return -EINVAL;
	}
	for (i = 0; i < l->n; i++)
		if (san_equal(&l->v[i], &s))
			return 0;
	l->v[l->n++] = s;
	return 0;
}

static int san_list_make(struct san_list *l, const char *const *sans,
			 size_t nsans, char *err, size_t errlen)
{
	static const char *const always[] = {"127.0.0.1", "::1", "localhost"};
	size_t i;

	l->n = 0;
	l->v = calloc(nsans + 3, sizeof(*l->v));
	if (!l->v) {
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < 3; i++)
		san_add(l, always[i]);
	for (i = 0; i < nsans; i++) {
		if (!sans[i] || san_add(l, sans[i])) {
			seterr(
			    err, errlen,
			    "--tls-san \"%.80s\": not an IP address or a DNS "
			    "name",
			    sans[i] ? sans[i] : "(null)");
			return -EINVAL;
		}
	}
	return 0;
}

/* Whether every name of want is among x's subjectAltNames. */
static bool cert_has_sans(X509 *x, const struct san_list *want)
{
	GENERAL_NAMES *gens =
	    X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	size_t i;
	int j;
	bool ok = true;

	for (i = 0; ok && i < want->n; i++) {
		const struct san *w = &want->v[i];
		bool found = false;

		for (j = 0; !found && j < sk_GENERAL_NAME_num(gens); j++) {
			const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, j);
			const ASN1_STRING *s;
			int len;

			if (g->type != w->type)
				continue;
			s = w->type == GEN_IPADD ? g->d.iPAddress
						 : g->d.dNSName;
			len = ASN1_STRING_length(s);
			if (w->type == GEN_IPADD)
				found = len == w->iplen &&
					!memcmp(ASN1_STRING_get0_data(s), w->ip,
						len);
			else
				found =
				    (size_t)len == strlen(w->dns) &&
				    !strncasecmp(
					(const char *)ASN1_STRING_get0_data(s),
					w->dns, len);
		}
		ok = found;
	}
	GENERAL_NAMES_free(gens);
	return ok;
}

static GENERAL_NAMES *san_ext(const struct san_list *l)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	size_t i;

	if (!gens)
		return NULL;
	for (i = 0; i < l->n; i++) {
		GENERAL_NAME *g = GENERAL_NAME_new();
		ASN1_STRING *s = l->v[i].type == GEN_IPADD
				     ? ASN1_OCTET_STRING_new()
				     : ASN1_IA5STRING_new();
		int ok;

		if (l->v[i].type == GEN_IPADD)
			ok = s && ASN1_OCTET_STRING_set(s, l->v[i].ip,
							l->v[i].iplen);
		else
			ok = s && ASN1_STRING_set(s, l->v[i].dns, -1);
		if (!g || !ok) {
			GENERAL_NAME_free(g);
			ASN1_STRING_free(s);
			goto fail;
		}
		GENERAL_NAME_set0_value(g, l->v[i].type, s);
		if (!sk_GENERAL_NAME_push(gens, g)) {
			GENERAL_NAME_free(g);
			goto fail;
		}
	}
	return gens;
fail:
	GENERAL_NAMES_free(gens);
	return NULL;
}

/* ---- making certificates ------------------------------------------------- */

static EVP_PKEY *new_key(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* A positive serial of 128 random bits (RFC 5280: at most 20 octets). */
static int set_serial(X509 *x)
{
	unsigned char b[16];
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return 0;
	b[0] &= 0x7f;
	b[0] |= 0x40; /* never zero, always 16 octets */
	bn = BN_bin2bn(b, sizeof(b), NULL);
	ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok;
}

static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v3, nid, value);
	int ok = e && X509_add_ext(x, e, -1);

	X509_EXTENSION_free(e);
	return ok;
}

static int set_names(X509 *x, const struct cert_spec *s, X509 *ca)
{
	X509_NAME *n = X509_NAME_new();
	size_t i;
	int ok = n != NULL;

	for (i = 0; ok && i < s->norgs; i++)
		ok = X509_NAME_add_entry_by_NID(
		    n, NID_organizationName, MBSTRING_UTF8,
		    (const unsigned char *)s->orgs[i], -1, -1, 0);
	ok = ok && X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8,
					      (const unsigned char *)s->cn, -1,
					      -1, 0);
	ok = ok && X509_set_subject_name(x, n);
	ok = ok && X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : n);
	X509_NAME_free(n);
	return ok;
}

static int set_extensions(X509 *x, const struct cert_spec *s, X509 *ca)
{
	X509V3_CTX v3;
	GENERAL_NAMES *gens;
	int ok;

	X509V3_set_ctx(&v3, ca ? ca : x, x, NULL, NULL, 0);
	if (s->kind == KIND_CA)
		return add_ext(x, &v3, NID_basic_constraints,
			       "critical,CA:TRUE,pathlen:0") &&
		       add_ext(x, &v3, NID_key_usage,
			       "critical,keyCertSign,cRLSign") &&
		       add_ext(x, &v3, NID_subject_key_identifier, "hash");
	ok = add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") &&
	     add_ext(x, &v3, NID_key_usage, "critical,digitalSignature") &&
	     add_ext(x, &v3, NID_ext_key_usage,
		     s->kind == KIND_SERVER ? "serverAuth" : "clientAuth") &&
	     add_ext(x, &v3, NID_subject_key_identifier, "hash") &&
	     add_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
	if (!ok || s->kind != KIND_SERVER)
		return ok;
	gens = san_ext(s->sans);
	ok = gens && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
				       X509V3_ADD_DEFAULT) == 1;
	GENERAL_NAMES_free(gens);
	return ok;
}

/* A NEW certificate for key as s says, signed by ca/cakey (or self-signed
 * when ca is NULL). */
static X509 *make_cert(const struct cert_spec *s, EVP_PKEY *key, X509 *ca,
		       EVP_PKEY *cakey, char *err, size_t errlen)
{
	X509 *x = X509_new();

	if (!x || !X509_set_version(x, X509_VERSION_3) || !set_serial(x) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), s->days, 0, NULL) ||
	    !X509_set_pubkey(x, key)) {
		ossl_err(err, errlen, "making a certificate");
		goto fail;
	}
	if (!set_names(x, s, ca)) {
		ossl_err(err, errlen, "certificate subject");
		goto fail;
	}
	if (!set_extensions(x, s, ca)) {
		ossl_err(err, errlen, "certificate extensions");
		goto fail;
	}
	if (X509_sign(x, ca ? cakey : key, EVP_sha256()) <= 0) {
		ossl_err(err, errlen, "signing a certificate");
		goto fail;
	}
	return x;
fail:
	X509_free(x);
	return NULL;
}

/* ---- the CA and the leaves ----------------------------------------------- */

static bool expired_by(X509 *x, long seconds_from_now)
{
	time_t t = time(NULL) + seconds_from_now;

	return X509_cmp_time(X509_get0_notAfter(x), &t) <= 0;
}

/* Load the CA of dir, or make it when dir has none. A CA key without its
 * certificate gets a new self-signed certificate; a certificate without
 * its key, or one that does not match, is an error. */
static int ca_ensure(const char *dir, bool create, X509 **cap, EVP_PKEY **keyp,
		     char *err, size_t errlen)
{
	char crt[PATH_MAX], key[PATH_MAX], cn[64];
	struct cert_spec spec = {.kind = KIND_CA, .days = PKI_CA_DAYS};
	bool have_crt, have_key;
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	int ret = -EINVAL;

	if (join(crt, sizeof(crt), dir, PKI_CA_CRT, err, errlen) ||
	    join(key, sizeof(key), dir, PKI_CA_KEY, err, errlen))
		return -ENAMETOOLONG;
	have_crt = exists(crt);
	have_key = exists(key);
	if (have_key && !(k = load_key(key))) {
		seterr(err, errlen, "%s: not a PEM private key", key);
		goto fail;
	}
	if (have_crt && !(x = load_cert(crt))) {
		seterr(err, errlen, "%s: not a PEM certificate", crt);
		goto fail;
	}
	if (have_crt && !have_key) {
		seterr(err, errlen,
		       "%s is missing, so %s cannot sign: restore the key, or "
		       "move both aside to make a new CA (clients must then "
		       "trust the new one)",
		       key, crt);
		ret = create ? -EINVAL : -ENOENT;
		goto fail;
	}
	if (!have_crt && !create) {
		seterr(err, errlen, "%s: no cluster CA here", crt);
		ret = -ENOENT;
		goto fail;
	}
	if (x) {
		if (X509_check_private_key(x, k) != 1) {
			ERR_clear_error();
			seterr(err, errlen, "%s does not match %s", key, crt);
			goto fail;
		}
		if (expired_by(x, 0)) {
			seterr(err, errlen,
			       "%s has expired: move the directory aside to "
			       "make a new CA (clients must then trust it)",
			       crt);
			goto fail;
		}
		goto done;
	}
	if (!k && !(k = new_key())) {
		ossl_err(err, errlen, "generating the CA key");
		ret = -ENOMEM;
		goto fail;
	}
	snprintf(cn, sizeof(cn), "signalbox-ca@%lld", (long long)time(NULL));
	spec.cn = cn;
	x = make_cert(&spec, k, NULL, NULL, err, errlen);
	if (!x)
		goto fail;
	ret = write_pair(dir, PKI_CA_CRT, PKI_CA_KEY, x, have_key ? NULL : k,
			 err, errlen);
	if (ret)
		goto fail;
done:
	*cap = x;
	*keyp = k;
	return 0;
fail:
	X509_free(x);
	EVP_PKEY_free(k);
	return ret;
}

/* Whether the pair crt/key in dir is fit for s: present, matching, issued
 * by ca, for purpose, not expiring within RENEW_BEFORE, and (a server)
 * naming every SAN of s. */
static bool leaf_fit(const char *crt, const char *key,
		     const struct cert_spec *s, X509 *ca)
{
	X509 *x = load_cert(crt);
	EVP_PKEY *k = x ? load_key(key) : NULL, *capub = X509_get0_pubkey(ca);
	int purpose = s->kind == KIND_SERVER ? X509_PURPOSE_SSL_SERVER
					     : X509_PURPOSE_SSL_CLIENT;
	bool ok = x && k && X509_check_private_key(x, k) == 1 &&
		  X509_check_issued(ca, x) == X509_V_OK &&
		  X509_verify(x, capub) == 1 &&
		  X509_check_purpose(x, purpose, 0) == 1 &&
		  !expired_by(x, RENEW_BEFORE) &&
		  (s->kind != KIND_SERVER || cert_has_sans(x, s->sans));

	ERR_clear_error();
	X509_free(x);
	EVP_PKEY_free(k);
	return ok;
}

/* Keep dir's crtname/keyname when fit, else make them; *replaced when a
 * certificate was there before. */
static int leaf_ensure(const char *dir, const char *crtname,
		       const char *keyname, const struct cert_spec *s, X509 *ca,
		       EVP_PKEY *cakey, bool *replaced, char *err,
		       size_t errlen)
{
	char crt[PATH_MAX], key[PATH_MAX];
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	int ret;

	if (join(crt, sizeof(crt), dir, crtname, err, errlen) ||
	    join(key, sizeof(key), dir, keyname, err, errlen))
		return -ENAMETOOLONG;
	if (leaf_fit(crt, key, s, ca))
		return 0;
	*replaced = exists(crt);
	k = new_key();
	if (!k) {
		ossl_err(err, errlen, "generating a key");
		return -ENOMEM;
	}
	x = make_cert(s, k, ca, cakey, err, errlen);
	ret =
	    x ? write_pair(dir, crtname, keyname, x, k, err, errlen) : -EINVAL;
	X509_free(x);
	EVP_PKEY_free(k);
	return ret;
}

static int lock_dir(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int fd;

	if (join(path, sizeof(path), dir, ".pki.lock", err, errlen))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		int e = errno;

		seterr(err, errlen, "%s: %s", path, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	return fd;
}

int pki_ensure(const char *dir, const char *const *sans, size_t nsans,
	       bool *reissued, char *err, size_t errlen)
{
	static const char *const admin_orgs[] = {"system:masters"};
	struct san_list l = {0};
	struct cert_spec server = {.kind = KIND_SERVER,
				   .cn = "signalbox",
				   .days = PKI_LEAF_DAYS,
				   .sans = &l};
	struct cert_spec admin = {.kind = KIND_CLIENT,
				  .cn = "admin",
				  .orgs = admin_orgs,
				  .norgs = 1,
				  .days = PKI_LEAF_DAYS};
	bool replaced = false, ignored = false;
	EVP_PKEY *cakey = NULL;
	X509 *ca = NULL;
	int lock = -1, ret;

	ret = san_list_make(&l, sans, nsans, err, errlen);
	if (ret)
		goto out;
	ret = mkdir_p(dir, err, errlen);
	if (ret)
		goto out;
	ret = lock = lock_dir(dir, err, errlen);
	if (ret < 0)
		goto out;
	ret = ca_ensure(dir, true, &ca, &cakey, err, errlen);
	if (ret)
		goto out;
	ret = leaf_ensure(dir, PKI_SERVER_CRT, PKI_SERVER_KEY, &server, ca,
			  cakey, &replaced, err, errlen);
	if (ret)
		goto out;
	ret = leaf_ensure(dir, PKI_ADMIN_CRT, PKI_ADMIN_KEY, &admin, ca, cakey,
			  &ignored, err, errlen);
out:
	if (reissued)
		*reissued = replaced;
	if (lock >= 0)
		close(lock);
	X509_free(ca);
	EVP_PKEY_free(cakey);
	free(l.v);
	return ret;
}

int pki_issue_client(const char *dir, const char *user,
		     const char *const *groups, size_t ngroups, int days,
		     char **cert_out, char **key_out, char *err, size_t errlen)
{
	struct cert_spec s = {.kind = KIND_CLIENT,
			      .cn = user,
			      .orgs = groups,
			      .norgs = ngroups,
			      .days = days};
	EVP_PKEY *cakey = NULL, *k = NULL;
	X509 *ca = NULL, *x = NULL;
	size_t i;
	int ret;

	*cert_out = *key_out = NULL;
	if (!user || !*user) {
		seterr(err, errlen, "a client certificate needs a user name");
		return -EINVAL;
	}
	for (i = 0; i < ngroups; i++) {
		if (!groups[i] || !*groups[i]) {
			seterr(err, errlen, "group %zu is empty", i + 1);
			return -EINVAL;
		}
	}
	if (days < 1 || days > PKI_CA_DAYS) {
		seterr(err, errlen, "validity of %d days: give 1 to %d", days,
		       PKI_CA_DAYS);
		return -EINVAL;
	}
	ret = ca_ensure(dir, false, &ca, &cakey, err, errlen);
	if (ret)
		return ret;
	ret = -ENOMEM;
	k = new_key();
	if (!k) {
		ossl_err(err, errlen, "generating a key");
		goto out;
	}
	ret = -EINVAL;
	x = make_cert(&s, k, ca, cakey, err, errlen);
	if (!x)
		goto out;
	ret = -ENOMEM;
	*cert_out = cert_pem(x);
	*key_out = key_pem(k);
	if (!*cert_out || !*key_out) {
		seterr(err, errlen, "out of memory");
		free(*cert_out);
		free(*key_out);
		*cert_out = *key_out = NULL;
		goto out;
	}
	ret = 0;
out:
	X509_free(x);
	EVP_PKEY_free(k);
	X509_free(ca);
	EVP_PKEY_free(cakey);
	return ret;
}

/* ---- TLS ----------------------------------------------------------------- */

/* TLS 1.2 suites: ECDHE and AEAD only (TLS 1.3's defaults are all fine). */
#define TLS12_CIPHERS                                                          \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

static int verify_idx = -1;
static pthread_once_t verify_once = PTHREAD_ONCE_INIT;

static void verify_init(void)
{
	verify_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/*
 * Let the handshake finish whatever the client certificate is, and remember
 * the first failure on the SSL: pki_peer_identity refuses the certificate
 * then, and the API answers 401 rather than a bare TLS alert.
 */
static int verify_cb(int ok, X509_STORE_CTX *ctx)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
	    ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	int e = X509_STORE_CTX_get_error(ctx);

	if (!ok && ssl && !SSL_get_ex_data(ssl, verify_idx))
		SSL_set_ex_data(
		    ssl, verify_idx,
		    (void *)(intptr_t)(e ? e : X509_V_ERR_UNSPECIFIED));
	return 1;
}

/* Speak HTTP/1.1 when the client offers it; h2 is not served. */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned int i = 0;

	(void)ssl;
	(void)arg;
	while (i < inlen) {
		unsigned int n = in[i];

		if (i + 1 + n > inlen)
			break;
		if (n == 8 && !memcmp(in + i + 1, "http/1.1", 8)) {
			*out = in + i + 1;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + n;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

static int ctx_client_ca(SSL_CTX *ctx, const char *ca_file, char *err,
			 size_t errlen)
{
	STACK_OF(X509_NAME) * names;

	if (pthread_once(&verify_once, verify_init) || verify_idx < 0) {
		seterr(err, errlen, "SSL ex_data index unavailable");
		return -ENOMEM;
	}
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		ossl_err(err, errlen, ca_file);
		return -EINVAL;
	}
	names = SSL_load_client_CA_file(ca_file);
	if (!names) {
		ossl_err(err, errlen, ca_file);
		return -EINVAL;
	}
	SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
	SSL_CTX_set_verify_depth(ctx, 4);
	return 0;
}

SSL_CTX *pki_server_ctx(const char *cert_file, const char *key_file,
			const char *ca_file, char *err, size_t errlen)
{
	static const unsigned char sid[] = "signalbox";
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx) {
		ossl_err(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
				     SSL_OP_CIPHER_SERVER_PREFERENCE |
				     SSL_OP_NO_COMPRESSION);
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) ||
	    !SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") ||
	    !SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1)) {
		ossl_err(err, errlen, "TLS settings");
		goto fail;
	}
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		ossl_err(err, errlen, cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		ossl_err(err, errlen, key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		seterr(err, errlen, "%s does not match %s", key_file,
		       cert_file);
		goto fail;
	}
	if (ca_file && ctx_client_ca(ctx, ca_file, err, errlen))
		goto fail;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* ---- identity ------------------------------------------------------------ */

void pki_identity_free(pki_identity *id)
{
	size_t i;

	if (!id)
		return;
	free(id->user);
	for (i = 0; id->groups && i < id->ngroups; i++)
		free(id->groups[i]);
	free(id->groups);
	memset(id, 0, sizeof(*id));
}

/* A NEW UTF-8 copy of an entry's value; NULL for one that does not convert
 * or holds a NUL byte ("admin\0x" must not pass for "admin"). */
static char *entry_utf8(const X509_NAME_ENTRY *e)
{
	unsigned char *u = NULL;
	int n = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(e));
	char *s;

	if (n < 0) {
		ERR_clear_error();
		return NULL;
	}
	if (memchr(u, '\0', (size_t)n)) {
		OPENSSL_free(u);
		return NULL;
	}
	s = strndup((const char *)u, (size_t)n);
	OPENSSL_free(u);
	return s;
}

/* The identity in x's subject, as kube's x509 authenticator reads it: the
 * last CN is the user, every O a group. */
static int identity_of(X509 *x, pki_identity *id, char *err, size_t errlen)
{
	const X509_NAME *n = X509_get_subject_name(x);
	int i, count = X509_NAME_entry_count(n);
	pki_identity r = {0};

	r.groups = calloc((size_t)count + 1, sizeof(*r.groups));
	if (!r.groups)
		goto nomem;
	for (i = 0; i < count; i++) {
		const X509_NAME_ENTRY *e = X509_NAME_get_entry(n, i);
		int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
		char *v;

		if (nid != NID_commonName && nid != NID_organizationName)
			continue;
		v = entry_utf8(e);
		if (!v) {
			seterr(err, errlen,
			       "the certificate's subject has a name that is "
			       "not valid text");
			pki_identity_free(&r);
			return -EINVAL;
		}
		if (nid == NID_commonName) {
			free(r.user);
			r.user = v;
		} else {
			r.groups[r.ngroups++] = v;
		}
	}
	if (!r.user || !*r.user) {
		seterr(err, errlen, "the certificate names no user (no CN)");
		pki_identity_free(&r);
		return -EINVAL;
	}
	*id = r;
	return 0;
nomem:
	seterr(err, errlen, "out of memory");
	return -ENOMEM;
}

int pki_peer_identity(SSL *ssl, pki_identity *id, char *err, size_t errlen)
{
	X509 *x = SSL_get0_peer_certificate(ssl);
	intptr_t first = 0;
	long vr;
	int r;

	memset(id, 0, sizeof(*id));
	if (!x) {
		seterr(err, errlen, "no client certificate");
		return -ENOENT;
	}
	if (!(SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER)) {
		seterr(err, errlen,
		       "client certificates are not verified here");
		return -EACCES;
	}
	vr = SSL_get_verify_result(ssl);
	if (verify_idx >= 0)
		first = (intptr_t)SSL_get_ex_data(ssl, verify_idx);
	if (vr != X509_V_OK || first) {
		seterr(err, errlen, "client certificate refused: %s",
		       X509_verify_cert_error_string(
			   vr != X509_V_OK ? vr : (long)first));
		return -EACCES;
	}
	r = identity_of(x, id, err, errlen);
	return r == -EINVAL ? -EACCES : r;
}

int pki_cert_identity(const char *pem, size_t len, pki_identity *id, char *err,
		      size_t errlen)
{
	const unsigned char *p = (const unsigned char *)pem;
	X509 *x = NULL;
	BIO *b;
	int ret;

	memset(id, 0, sizeof(*id));
	if (!pem || len > INT_MAX) {
		seterr(err, errlen, "no certificate");
		return -EINVAL;
	}
	b = BIO_new_mem_buf(pem, (int)len);
	if (!b) {
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!x)
		x = d2i_X509(NULL, &p, (long)len);
	ERR_clear_error();
	if (!x) {
		seterr(err, errlen, "not a PEM or DER certificate");
		return -EINVAL;
	}
	ret = identity_of(x, id, err, errlen);
	X509_free(x);
	return ret;
}
