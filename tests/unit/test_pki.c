/*
 * test_pki.c -- the cluster PKI (src/security/pki.c): what pki_ensure
 * writes and keeps, the certificates read back with OpenSSL, and real TLS
 * handshakes over a socketpair between a client SSL and pki_server_ctx.
 *
 * A client certificate from another CA completes the handshake (as in
 * kube-apiserver, so the API can answer 401 with a Status) and
 * pki_peer_identity refuses it with -EACCES; no certificate is -ENOENT.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "security/pki.h"

/* ---- helpers ------------------------------------------------------------- */

static char *tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	char *p;

	if (asprintf(&p, "%s/sb-pki-XXXXXX", t ? t : "/tmp") < 0 || !mkdtemp(p))
		fail_msg("mkdtemp: %s", strerror(errno));
	return p;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static void rmrf(char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

static char *path_of(const char *dir, const char *name)
{
	static char buf[4][512];
	static int k;
	char *p = buf[k++ & 3];

	snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
	return p;
}

static X509 *read_cert(const char *dir, const char *name)
{
	FILE *f = fopen(path_of(dir, name), "r");
	X509 *x;

	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

static X509 *cert_from_pem(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

	BIO_free(b);
	assert_non_null(x);
	return x;
}

static EVP_PKEY *key_from_pem(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);

	BIO_free(b);
	assert_non_null(k);
	return k;
}

static char *serial_of(X509 *x)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *hex = BN_bn2hex(bn);
	char *s = strdup(hex);

	OPENSSL_free(hex);
	BN_free(bn);
	return s;
}

static char *file_serial(const char *dir, const char *name)
{
	X509 *x = read_cert(dir, name);
	char *s = serial_of(x);

	X509_free(x);
	return s;
}

static mode_t mode_of(const char *dir, const char *name)
{
	struct stat st;

	assert_int_equal(stat(path_of(dir, name), &st), 0);
	return st.st_mode & 07777;
}

static void ensure(const char *dir, const char *const *sans, size_t n,
		   bool *reissued)
{
	char err[512] = "";
	int r = pki_ensure(dir, sans, n, reissued, err, sizeof(err));

	if (r)
		fail_msg("pki_ensure: %d %s", r, err);
}

/* Whether x has the SAN: an IP (given as text) or a DNS name. */
static bool has_san(X509 *x, const char *name)
{
	return X509_check_ip_asc(x, name, 0) == 1 ||
	       X509_check_host(x, name, 0, X509_CHECK_FLAG_NO_WILDCARDS,
			       NULL) == 1;
}

static char *subject_field(X509 *x, int nid, int which)
{
	X509_NAME *n = X509_get_subject_name(x);
	int i = -1, k = 0;
	unsigned char *u;
	char *s;

	while ((i = X509_NAME_get_index_by_NID(n, nid, i)) >= 0) {
		if (k++ != which)
			continue;
		assert_true(ASN1_STRING_to_UTF8(
				&u, X509_NAME_ENTRY_get_data(
					X509_NAME_get_entry(n, i))) >= 0);
		s = strdup((char *)u);
		OPENSSL_free(u);
		return s;
	}
	return NULL;
}

/* ---- pki_ensure ---------------------------------------------------------- */

static const char *const some_sans[] = {"10.0.0.5", "API.Example.com",
					"fd00::1", "0.0.0.0"};

static void check_key(const char *dir, const char *name)
{
	FILE *f = fopen(path_of(dir, name), "r");
	EVP_PKEY *k;
	char group[64];
	size_t len;

	assert_non_null(f);
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(k);
	assert_int_equal(EVP_PKEY_get_base_id(k), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_group_name(k, group, sizeof(group), &len),
			 1);
	assert_string_equal(group, "prime256v1");
	EVP_PKEY_free(k);
	assert_int_equal(mode_of(dir, name), 0600);
}

static void check_common(X509 *x, X509 *ca)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);

	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
	assert_true(BN_num_bits(bn) > 120 && BN_num_bits(bn) <= 127);
	assert_false(BN_is_negative(bn));
	BN_free(bn);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(ca)), 1);
	assert_int_equal(X509_check_issued(ca, x), X509_V_OK);
}

static void test_ensure_creates(void **state)
{
	char *dir = tmpdir();
	char *sub;
	bool reissued = true;
	X509 *ca, *srv, *adm;
	time_t in9y = time(NULL) + 9L * 365 * 86400;
	time_t in300d = time(NULL) + 300L * 86400;
	time_t in400d = time(NULL) + 400L * 86400;
	char *s;

	(void)state;
	assert_true(asprintf(&sub, "%s/a/pki", dir) > 0);
	ensure(sub, some_sans, 4, &reissued);
	assert_false(reissued);
	assert_int_equal(mode_of(sub, ""), 0700);
	check_key(sub, PKI_CA_KEY);
	check_key(sub, PKI_SERVER_KEY);
	check_key(sub, PKI_ADMIN_KEY);
	assert_int_equal(mode_of(sub, PKI_CA_CRT), 0644);
	assert_int_equal(mode_of(sub, PKI_SERVER_CRT), 0644);
	assert_int_equal(mode_of(sub, PKI_ADMIN_CRT), 0644);

	/* the CA: self-signed, CA:TRUE critical, keyCertSign + cRLSign,
	 * about 10 years */
	ca = read_cert(sub, PKI_CA_CRT);
	check_common(ca, ca);
	assert_int_equal(X509_check_ca(ca), 1);
	assert_true(X509_get_extension_flags(ca) & EXFLAG_CA);
	assert_int_equal(X509_get_key_usage(ca),
			 KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	assert_int_equal(
	    X509_EXTENSION_get_critical(X509_get_ext(
		ca, X509_get_ext_by_NID(ca, NID_basic_constraints, -1))),
	    1);
	assert_true(X509_cmp_time(X509_get0_notAfter(ca), &in9y) > 0);
	s = subject_field(ca, NID_commonName, 0);
	assert_true(!strncmp(s, "signalbox-ca@", 13));
	free(s);

	/* the server: serverAuth, not a CA, the SANs, one year */
	srv = read_cert(sub, PKI_SERVER_CRT);
	check_common(srv, ca);
	assert_int_equal(X509_check_ca(srv), 0);
	assert_int_equal(X509_get_extended_key_usage(srv), XKU_SSL_SERVER);
	assert_int_equal(X509_get_key_usage(srv), KU_DIGITAL_SIGNATURE);
	assert_true(has_san(srv, "127.0.0.1"));
	assert_true(has_san(srv, "::1"));
	assert_true(has_san(srv, "localhost"));
	assert_true(has_san(srv, "10.0.0.5"));
	assert_true(has_san(srv, "fd00::1"));
	assert_true(has_san(srv, "api.example.com"));
	assert_false(has_san(srv, "0.0.0.0"));
	assert_false(has_san(srv, "10.0.0.6"));
	assert_true(X509_cmp_time(X509_get0_notAfter(srv), &in300d) > 0);
	assert_true(X509_cmp_time(X509_get0_notAfter(srv), &in400d) < 0);

	/* the admin: CN admin, O system:masters, clientAuth */
	adm = read_cert(sub, PKI_ADMIN_CRT);
	check_common(adm, ca);
	assert_int_equal(X509_get_extended_key_usage(adm), XKU_SSL_CLIENT);
	s = subject_field(adm, NID_commonName, 0);
	assert_string_equal(s, "admin");
	free(s);
	s = subject_field(adm, NID_organizationName, 0);
	assert_string_equal(s, "system:masters");
	free(s);
	assert_null(subject_field(adm, NID_organizationName, 1));
	assert_int_equal(X509_check_purpose(adm, X509_PURPOSE_SSL_CLIENT, 0),
			 1);
	assert_int_not_equal(
	    X509_check_purpose(adm, X509_PURPOSE_SSL_SERVER, 0), 1);

	X509_free(ca);
	X509_free(srv);
	X509_free(adm);
	free(sub);
	rmrf(dir);
}

static void test_ensure_reuses(void **state)
{
	static const char *const names[] = {PKI_CA_CRT, PKI_SERVER_CRT,
					    PKI_ADMIN_CRT};
	char *dir = tmpdir(), *before[3];
	bool reissued = true;
	size_t i;

	(void)state;
	ensure(dir, some_sans, 3, NULL);
	for (i = 0; i < 3; i++)
		before[i] = file_serial(dir, names[i]);
	/* the same names, fewer names, or a name in another case */
	ensure(dir, some_sans, 3, &reissued);
	assert_false(reissued);
	ensure(dir, some_sans, 1, &reissued);
	assert_false(reissued);
	ensure(dir, (const char *const[]){"api.EXAMPLE.com"}, 1, &reissued);
	assert_false(reissued);
	for (i = 0; i < 3; i++) {
		char *now = file_serial(dir, names[i]);

		assert_string_equal(before[i], now);
		free(now);
		free(before[i]);
	}
	rmrf(dir);
}

static void test_ensure_reissues(void **state)
{
	static const char *const more[] = {"10.0.0.5", "new.example.com"};
	char *dir = tmpdir(), *ca0, *srv0, *adm0, *s;
	bool reissued = false;
	X509 *x;

	(void)state;
	ensure(dir, some_sans, 1, NULL);
	ca0 = file_serial(dir, PKI_CA_CRT);
	srv0 = file_serial(dir, PKI_SERVER_CRT);
	adm0 = file_serial(dir, PKI_ADMIN_CRT);

	/* a new name: the server certificate is made again, nothing else */
	ensure(dir, more, 2, &reissued);
	assert_true(reissued);
	s = file_serial(dir, PKI_SERVER_CRT);
	assert_string_not_equal(s, srv0);
	free(s);
	s = file_serial(dir, PKI_CA_CRT);
	assert_string_equal(s, ca0);
	free(s);
	s = file_serial(dir, PKI_ADMIN_CRT);
	assert_string_equal(s, adm0);
	free(s);
	x = read_cert(dir, PKI_SERVER_CRT);
	assert_true(has_san(x, "new.example.com"));
	assert_true(has_san(x, "10.0.0.5"));
	X509_free(x);
	ensure(dir, more, 2, &reissued);
	assert_false(reissued);

	/* a key that does not match (a crash between key and certificate) */
	assert_int_equal(
	    rename(path_of(dir, PKI_ADMIN_KEY), path_of(dir, PKI_SERVER_KEY)),
	    0);
	ensure(dir, more, 2, &reissued);
	assert_true(reissued);
	assert_int_equal(mode_of(dir, PKI_ADMIN_KEY), 0600);
	s = file_serial(dir, PKI_ADMIN_CRT);
	assert_string_not_equal(s, adm0);
	free(s);

	/* a key left readable by others is made 0600 again */
	assert_int_equal(chmod(path_of(dir, PKI_SERVER_KEY), 0644), 0);
	ensure(dir, more, 2, &reissued);
	assert_false(reissued);
	assert_int_equal(mode_of(dir, PKI_SERVER_KEY), 0600);

	free(ca0);
	free(srv0);
	free(adm0);
	rmrf(dir);
}

static void test_ensure_ca_cases(void **state)
{
	char *dir = tmpdir(), err[512] = "", *ca0, *s;
	X509 *ca, *srv;
	int r;

	(void)state;
	ensure(dir, NULL, 0, NULL);
	ca0 = file_serial(dir, PKI_CA_CRT);

	/* the key without its certificate: a new CA certificate for the
	 * same key, and the leaves are made again under it */
	assert_int_equal(unlink(path_of(dir, PKI_CA_CRT)), 0);
	ensure(dir, NULL, 0, NULL);
	s = file_serial(dir, PKI_CA_CRT);
	assert_string_not_equal(s, ca0);
	free(s);
	ca = read_cert(dir, PKI_CA_CRT);
	srv = read_cert(dir, PKI_SERVER_CRT);
	assert_int_equal(X509_check_issued(ca, srv), X509_V_OK);
	X509_free(ca);
	X509_free(srv);

	/* the certificate without its key: refused, never replaced */
	assert_int_equal(unlink(path_of(dir, PKI_CA_KEY)), 0);
	r = pki_ensure(dir, NULL, 0, NULL, err, sizeof(err));
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(err, "ca.key is missing"));
	assert_int_equal(access(path_of(dir, PKI_CA_KEY), F_OK), -1);

	/* a certificate that is not one */
	assert_int_equal(unlink(path_of(dir, PKI_CA_CRT)), 0);
	ensure(dir, NULL, 0, NULL);
	{
		int fd = open(path_of(dir, PKI_CA_CRT), O_WRONLY | O_TRUNC);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, "junk\n", 5), 5);
		close(fd);
	}
	r = pki_ensure(dir, NULL, 0, NULL, err, sizeof(err));
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(err, "not a PEM certificate"));
	free(ca0);
	rmrf(dir);
}

static void test_ensure_bad_names(void **state)
{
	static const char *const bad[] = {
	    "a,IP:1.2.3.4", "",	      "-a.com",	      "a..com", "a.com.", "*",
	    "a b",	    "x*.com", "1.2.3.4:6443", "[::1]"};
	char *dir = tmpdir(), err[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(
		    pki_ensure(dir, &bad[i], 1, NULL, err, sizeof(err)),
		    -EINVAL);
		assert_non_null(strstr(err, "not an IP address"));
	}
	/* nothing was written for a bad name */
	assert_int_equal(access(path_of(dir, PKI_CA_CRT), F_OK), -1);
	ensure(dir, (const char *const[]){"*.example.com", "a-b.c"}, 2, NULL);
	rmrf(dir);
}

static void test_issue_client(void **state)
{
	static const char *const groups[] = {"dev", "ops", "system:masters"};
	char *dir = tmpdir(), err[512] = "", *crt = NULL, *key = NULL;
	pki_identity id;
	X509 *x, *ca;
	EVP_PKEY *k;

	(void)state;
	/* no CA yet */
	assert_int_equal(pki_issue_client(dir, "alice", groups, 3, 30, &crt,
					  &key, err, sizeof(err)),
			 -ENOENT);
	assert_null(crt);
	ensure(dir, NULL, 0, NULL);
	assert_int_equal(pki_issue_client(dir, "", NULL, 0, 30, &crt, &key, err,
					  sizeof(err)),
			 -EINVAL);
	assert_int_equal(pki_issue_client(dir, "alice", NULL, 0, 0, &crt, &key,
					  err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(pki_issue_client(dir, "alice", groups, 3, 30, &crt,
					  &key, err, sizeof(err)),
			 0);
	x = cert_from_pem(crt);
	k = key_from_pem(key);
	ca = read_cert(dir, PKI_CA_CRT);
	assert_int_equal(X509_check_private_key(x, k), 1);
	check_common(x, ca);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_CLIENT);
	assert_int_equal(
	    pki_cert_identity(crt, strlen(crt), &id, err, sizeof(err)), 0);
	assert_string_equal(id.user, "alice");
	assert_int_equal(id.ngroups, 3);
	assert_string_equal(id.groups[0], "dev");
	assert_string_equal(id.groups[1], "ops");
	assert_string_equal(id.groups[2], "system:masters");
	pki_identity_free(&id);
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(k);
	free(crt);
	free(key);
	rmrf(dir);
}

/* ---- pki_cert_identity --------------------------------------------------- */

/* A self-signed certificate whose subject has the given entries, as DER. */
static unsigned char *der_with_subject(const int *nids, const char **vals,
				       const int *lens, size_t n, int *derlen)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	unsigned char *der = NULL;
	size_t i;

	for (i = 0; i < n; i++)
		assert_int_equal(
		    X509_NAME_add_entry_by_NID(name, nids[i], MBSTRING_ASC,
					       (const unsigned char *)vals[i],
					       lens[i], -1, 0),
		    1);
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, name);
	X509_set_pubkey(x, k);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	*derlen = i2d_X509(x, &der);
	assert_true(*derlen > 0);
	X509_NAME_free(name);
	X509_free(x);
	EVP_PKEY_free(k);
	return der;
}

static void test_cert_identity(void **state)
{
	char err[512];
	pki_identity id;
	unsigned char *der;
	int len;

	(void)state;
	/* several CNs: the last is the user (Go's pkix.Name does the same);
	 * every O is a group, in order; other attributes are ignored */
	{
		int nids[] = {NID_organizationName, NID_commonName,
			      NID_organizationalUnitName, NID_commonName,
			      NID_organizationName};
		const char *vals[] = {"g1", "first", "ou", "second", "g2"};
		int lens[] = {-1, -1, -1, -1, -1};

		der = der_with_subject(nids, vals, lens, 5, &len);
		assert_int_equal(pki_cert_identity((char *)der, (size_t)len,
						   &id, err, sizeof(err)),
				 0);
		assert_string_equal(id.user, "second");
		assert_int_equal(id.ngroups, 2);
		assert_string_equal(id.groups[0], "g1");
		assert_string_equal(id.groups[1], "g2");
		pki_identity_free(&id);
		assert_null(id.user);
		OPENSSL_free(der);
	}
	/* a NUL inside the CN must not pass for "admin" */
	{
		int nids[] = {NID_commonName};
		const char *vals[] = {"admin\0evil"};
		int lens[] = {10};

		der = der_with_subject(nids, vals, lens, 1, &len);
		assert_int_equal(pki_cert_identity((char *)der, (size_t)len,
						   &id, err, sizeof(err)),
				 -EINVAL);
		assert_null(id.user);
		OPENSSL_free(der);
	}
	/* no CN: no user */
	{
		int nids[] = {NID_organizationName};
		const char *vals[] = {"system:masters"};
		int lens[] = {-1};

		der = der_with_subject(nids, vals, lens, 1, &len);
		assert_int_equal(pki_cert_identity((char *)der, (size_t)len,
						   &id, err, sizeof(err)),
				 -EINVAL);
		assert_non_null(strstr(err, "no user"));
		OPENSSL_free(der);
	}
	assert_int_equal(pki_cert_identity("junk", 4, &id, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(pki_cert_identity("", 0, &id, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(pki_cert_identity("-----BEGIN CERTIFICATE-----\nAAAA\n"
					   "-----END CERTIFICATE-----\n",
					   56, &id, err, sizeof(err)),
			 -EINVAL);
}

/* ---- TLS ----------------------------------------------------------------- */

struct pair {
	SSL *s, *c;
	int fd[2];
};

/* Run both ends of a handshake over a socketpair until each is done or
 * fails. Returns 0 when both succeeded. */
static int handshake(SSL_CTX *sctx, SSL_CTX *cctx, struct pair *p)
{
	bool sdone = false, cdone = false, sfail = false, cfail = false;
	int i;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
	fcntl(p->fd[0], F_SETFL, O_NONBLOCK);
	fcntl(p->fd[1], F_SETFL, O_NONBLOCK);
	p->s = SSL_new(sctx);
	p->c = SSL_new(cctx);
	SSL_set_fd(p->s, p->fd[0]);
	SSL_set_fd(p->c, p->fd[1]);
	SSL_set1_host(p->c, "localhost");
	for (i = 0; i < 1000 && !(sdone && cdone) && !sfail && !cfail; i++) {
		if (!sdone) {
			int r = SSL_accept(p->s);
			int e = SSL_get_error(p->s, r);

			if (r == 1)
				sdone = true;
			else if (e != SSL_ERROR_WANT_READ &&
				 e != SSL_ERROR_WANT_WRITE)
				sfail = true;
		}
		if (!cdone) {
			int r = SSL_connect(p->c);
			int e = SSL_get_error(p->c, r);

			if (r == 1)
				cdone = true;
			else if (e != SSL_ERROR_WANT_READ &&
				 e != SSL_ERROR_WANT_WRITE)
				cfail = true;
		}
	}
	ERR_clear_error();
	return sdone && cdone ? 0 : -1;
}

static void pair_free(struct pair *p)
{
	SSL_free(p->s);
	SSL_free(p->c);
	close(p->fd[0]);
	close(p->fd[1]);
}

/* A client context trusting dir's CA, with cert/key files of dir (or
 * none when crt is NULL), speaking only version v (0: any). */
static SSL_CTX *client_ctx(const char *dir, const char *crt, const char *key,
			   int v)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());

	assert_non_null(c);
	assert_int_equal(
	    SSL_CTX_load_verify_locations(c, path_of(dir, PKI_CA_CRT), NULL),
	    1);
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	if (crt) {
		assert_int_equal(
		    SSL_CTX_use_certificate_file(c, crt, SSL_FILETYPE_PEM), 1);
		assert_int_equal(
		    SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM), 1);
	}
	if (v) {
		SSL_CTX_set_security_level(c, 0);
		SSL_CTX_set_min_proto_version(c, v);
		SSL_CTX_set_max_proto_version(c, v);
		if (v < TLS1_2_VERSION)
			SSL_CTX_set_cipher_list(c, "DEFAULT:@SECLEVEL=0");
	}
	return c;
}

static SSL_CTX *server_ctx(const char *dir, bool client_auth)
{
	char err[512] = "";
	SSL_CTX *s = pki_server_ctx(
	    path_of(dir, PKI_SERVER_CRT), path_of(dir, PKI_SERVER_KEY),
	    client_auth ? path_of(dir, PKI_CA_CRT) : NULL, err, sizeof(err));

	if (!s)
		fail_msg("pki_server_ctx: %s", err);
	return s;
}

struct tls_env {
	char *dir, *other;
	SSL_CTX *sctx;
};

static int tls_setup(void **state)
{
	struct tls_env *e = calloc(1, sizeof(*e));

	e->dir = tmpdir();
	e->other = tmpdir();
	ensure(e->dir, NULL, 0, NULL);
	ensure(e->other, NULL, 0, NULL);
	e->sctx = server_ctx(e->dir, true);
	*state = e;
	return 0;
}

static int tls_teardown(void **state)
{
	struct tls_env *e = *state;

	SSL_CTX_free(e->sctx);
	rmrf(e->dir);
	rmrf(e->other);
	free(e);
	return 0;
}

static void admin_handshake(struct tls_env *e, int version)
{
	SSL_CTX *c = client_ctx(e->dir, path_of(e->dir, PKI_ADMIN_CRT),
				path_of(e->dir, PKI_ADMIN_KEY), version);
	struct pair p;
	pki_identity id;
	char err[256];

	assert_int_equal(handshake(e->sctx, c, &p), 0);
	assert_int_equal(SSL_version(p.s), version);
	/* the client checked the server's name against its SANs */
	assert_int_equal(SSL_get_verify_result(p.c), X509_V_OK);
	assert_int_equal(pki_peer_identity(p.s, &id, err, sizeof(err)), 0);
	assert_string_equal(id.user, "admin");
	assert_int_equal(id.ngroups, 1);
	assert_string_equal(id.groups[0], "system:masters");
	pki_identity_free(&id);
	pair_free(&p);
	SSL_CTX_free(c);
}

static void test_tls_admin_13(void **state)
{
	admin_handshake(*state, TLS1_3_VERSION);
}

static void test_tls_admin_12(void **state)
{
	admin_handshake(*state, TLS1_2_VERSION);
}

static void test_tls_no_client_cert(void **state)
{
	struct tls_env *e = *state;
	SSL_CTX *c = client_ctx(e->dir, NULL, NULL, 0);
	struct pair p;
	pki_identity id;
	char err[256];

	assert_int_equal(handshake(e->sctx, c, &p), 0);
	assert_int_equal(pki_peer_identity(p.s, &id, err, sizeof(err)),
			 -ENOENT);
	assert_null(id.user);
	pair_free(&p);
	SSL_CTX_free(c);
}

/* A certificate from another CA: the handshake completes (so the API can
 * answer 401) and pki_peer_identity refuses it. */
static void test_tls_foreign_ca(void **state)
{
	struct tls_env *e = *state;
	SSL_CTX *c = client_ctx(e->dir, path_of(e->other, PKI_ADMIN_CRT),
				path_of(e->other, PKI_ADMIN_KEY), 0);
	struct pair p;
	pki_identity id;
	char err[256] = "";

	assert_int_equal(handshake(e->sctx, c, &p), 0);
	assert_int_equal(pki_peer_identity(p.s, &id, err, sizeof(err)),
			 -EACCES);
	assert_null(id.user);
	assert_non_null(strstr(err, "refused"));
	assert_null(strstr(err, "admin")); /* names nothing from the cert */
	pair_free(&p);
	SSL_CTX_free(c);
}

/* The server's own certificate (serverAuth only) is no client cert. */
static void test_tls_wrong_purpose(void **state)
{
	struct tls_env *e = *state;
	SSL_CTX *c = client_ctx(e->dir, path_of(e->dir, PKI_SERVER_CRT),
				path_of(e->dir, PKI_SERVER_KEY), 0);
	struct pair p;
	pki_identity id;
	char err[256] = "";

	assert_int_equal(handshake(e->sctx, c, &p), 0);
	assert_int_equal(pki_peer_identity(p.s, &id, err, sizeof(err)),
			 -EACCES);
	assert_non_null(strstr(err, "purpose"));
	pair_free(&p);
	SSL_CTX_free(c);
}

static void test_tls_issued_client(void **state)
{
	static const char *const groups[] = {"dev", "ops"};
	struct tls_env *e = *state;
	char err[512] = "", *crt, *key;
	SSL_CTX *c = client_ctx(e->dir, NULL, NULL, 0);
	X509 *x;
	EVP_PKEY *k;
	struct pair p;
	pki_identity id;

	assert_int_equal(pki_issue_client(e->dir, "bob", groups, 2, 1, &crt,
					  &key, err, sizeof(err)),
			 0);
	x = cert_from_pem(crt);
	k = key_from_pem(key);
	assert_int_equal(SSL_CTX_use_certificate(c, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(c, k), 1);
	assert_int_equal(handshake(e->sctx, c, &p), 0);
	assert_int_equal(pki_peer_identity(p.s, &id, err, sizeof(err)), 0);
	assert_string_equal(id.user, "bob");
	assert_int_equal(id.ngroups, 2);
	assert_string_equal(id.groups[0], "dev");
	assert_string_equal(id.groups[1], "ops");
	pki_identity_free(&id);
	pair_free(&p);
	SSL_CTX_free(c);
	X509_free(x);
	EVP_PKEY_free(k);
	free(crt);
	free(key);
}

static void test_tls_old_versions_refused(void **state)
{
	struct tls_env *e = *state;
	int v[] = {TLS1_1_VERSION, TLS1_VERSION};
	size_t i;

	for (i = 0; i < 2; i++) {
		SSL_CTX *c = client_ctx(e->dir, NULL, NULL, v[i]);
		struct pair p;

		assert_int_equal(handshake(e->sctx, c, &p), -1);
		pair_free(&p);
		SSL_CTX_free(c);
	}
}

/* Without a CA file no certificate is asked for: -ENOENT. */
static void test_tls_no_client_auth(void **state)
{
	struct tls_env *e = *state;
	SSL_CTX *s = server_ctx(e->dir, false);
	SSL_CTX *c = client_ctx(e->dir, path_of(e->dir, PKI_ADMIN_CRT),
				path_of(e->dir, PKI_ADMIN_KEY), 0);
	struct pair p;
	pki_identity id;

	assert_int_equal(handshake(s, c, &p), 0);
	assert_int_equal(pki_peer_identity(p.s, &id, NULL, 0), -ENOENT);
	pair_free(&p);
	SSL_CTX_free(c);
	SSL_CTX_free(s);
}

/* ALPN: http/1.1 is chosen; a client that offers only h2 gets none. */
static void test_tls_alpn(void **state)
{
	struct tls_env *e = *state;
	static const unsigned char both[] = "\x02h2\x08http/1.1";
	static const unsigned char h2[] = "\x02h2";
	const unsigned char *sel;
	unsigned int len;
	SSL_CTX *c = client_ctx(e->dir, NULL, NULL, 0);
	struct pair p;

	SSL_CTX_set_alpn_protos(c, both, sizeof(both) - 1);
	assert_int_equal(handshake(e->sctx, c, &p), 0);
	SSL_get0_alpn_selected(p.c, &sel, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(sel, "http/1.1", 8);
	pair_free(&p);
	SSL_CTX_set_alpn_protos(c, h2, sizeof(h2) - 1);
	assert_int_equal(handshake(e->sctx, c, &p), 0);
	SSL_get0_alpn_selected(p.c, &sel, &len);
	assert_int_equal(len, 0);
	pair_free(&p);
	SSL_CTX_free(c);
}

/* --tls-cert-file with a certificate of the user's own: RSA, with the
 * cluster CA still verifying client certificates. */
static void test_tls_user_rsa_cert(void **state)
{
	struct tls_env *e = *state;
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	char crt[512], key[512], err[512] = "";
	int v[] = {TLS1_2_VERSION, TLS1_3_VERSION};
	FILE *f;
	SSL_CTX *s;
	size_t i;

	assert_non_null(k);
	X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_ASC,
				   (const unsigned char *)"localhost", -1, -1,
				   0);
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	X509_set_pubkey(x, k);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	snprintf(crt, sizeof(crt), "%s", path_of(e->other, "user.crt"));
	snprintf(key, sizeof(key), "%s", path_of(e->other, "user.key"));
	f = fopen(crt, "w");
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(key, "w");
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	s = pki_server_ctx(crt, key, path_of(e->dir, PKI_CA_CRT), err,
			   sizeof(err));
	if (!s)
		fail_msg("pki_server_ctx: %s", err);
	for (i = 0; i < 2; i++) {
		SSL_CTX *c = SSL_CTX_new(TLS_client_method());
		struct pair p;
		pki_identity id;

		SSL_CTX_set_min_proto_version(c, v[i]);
		SSL_CTX_set_max_proto_version(c, v[i]);
		assert_int_equal(
		    SSL_CTX_use_certificate_file(
			c, path_of(e->dir, PKI_ADMIN_CRT), SSL_FILETYPE_PEM),
		    1);
		assert_int_equal(
		    SSL_CTX_use_PrivateKey_file(
			c, path_of(e->dir, PKI_ADMIN_KEY), SSL_FILETYPE_PEM),
		    1);
		assert_int_equal(handshake(s, c, &p), 0);
		assert_int_equal(SSL_version(p.s), v[i]);
		assert_int_equal(pki_peer_identity(p.s, &id, NULL, 0), 0);
		assert_string_equal(id.user, "admin");
		pki_identity_free(&id);
		pair_free(&p);
		SSL_CTX_free(c);
	}
	SSL_CTX_free(s);
	X509_NAME_free(n);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void test_server_ctx_errors(void **state)
{
	struct tls_env *e = *state;
	char err[512] = "";

	assert_null(pki_server_ctx(path_of(e->dir, PKI_SERVER_CRT),
				   path_of(e->other, PKI_SERVER_KEY), NULL, err,
				   sizeof(err)));
	assert_non_null(strstr(err, "server.key"));
	err[0] = '\0';
	assert_null(pki_server_ctx(path_of(e->dir, "missing.crt"),
				   path_of(e->dir, PKI_SERVER_KEY), NULL, err,
				   sizeof(err)));
	assert_non_null(strstr(err, "missing.crt"));
	err[0] = '\0';
	assert_null(pki_server_ctx(
	    path_of(e->dir, PKI_SERVER_CRT), path_of(e->dir, PKI_SERVER_KEY),
	    path_of(e->dir, "missing-ca.crt"), err, sizeof(err)));
	assert_non_null(strstr(err, "missing-ca.crt"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ensure_creates),
	    cmocka_unit_test(test_ensure_reuses),
	    cmocka_unit_test(test_ensure_reissues),
	    cmocka_unit_test(test_ensure_ca_cases),
	    cmocka_unit_test(test_ensure_bad_names),
	    cmocka_unit_test(test_issue_client),
	    cmocka_unit_test(test_cert_identity),
	};
	const struct CMUnitTest tls_tests[] = {
	    cmocka_unit_test(test_tls_admin_13),
	    cmocka_unit_test(test_tls_admin_12),
	    cmocka_unit_test(test_tls_no_client_cert),
	    cmocka_unit_test(test_tls_foreign_ca),
	    cmocka_unit_test(test_tls_wrong_purpose),
	    cmocka_unit_test(test_tls_issued_client),
	    cmocka_unit_test(test_tls_old_versions_refused),
	    cmocka_unit_test(test_tls_no_client_auth),
	    cmocka_unit_test(test_tls_alpn),
	    cmocka_unit_test(test_tls_user_rsa_cert),
	    cmocka_unit_test(test_server_ctx_errors),
	};
	int r = cmocka_run_group_tests_name("pki", tests, NULL, NULL);

	return r | cmocka_run_group_tests_name("tls", tls_tests, tls_setup,
					       tls_teardown);
}
