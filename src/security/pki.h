/*
 * pki.h -- the cluster's certificates, the TLS server context, and the
 * identity of a client certificate.
 *
 * On first start `signalbox serve` makes a small PKI in one directory:
 *
 *   ca.crt, ca.key          the cluster CA (CN "signalbox-ca@<unix time>",
 *                           10 years): basicConstraints critical CA:TRUE,
 *                           pathlen 0; keyUsage critical keyCertSign, cRLSign
 *   server.crt, server.key  the serving certificate (CN "signalbox", 1
 *                           year): EKU serverAuth, SANs 127.0.0.1, ::1,
 *                           localhost and every name asked for
 *   admin.crt, admin.key    a client certificate (CN "admin", O
 *                           "system:masters", 1 year): EKU clientAuth
 *
 * Keys are EC P-256, signatures ECDSA with SHA-256, serials 128 random bits.
 * Every file is written atomically (a temporary file, fsync, rename, fsync
 * of the directory), keys with mode 0600, certificates 0644. Later starts
 * reuse what is there; a leaf is made again only when it is missing, does
 * not match its key, was not signed by the CA, expires within 30 days, or
 * (server.crt) lacks a name now asked for. The CA is never replaced: a CA
 * certificate without its key is an error, not a reason to make a new CA.
 *
 * Client certificates follow kube-apiserver's x509 authenticator: a
 * certificate that chains to the CA and allows clientAuth authenticates,
 * its (last) Common Name is the user and every Organization is a group. A
 * client that presents a bad certificate still completes the handshake, so
 * that the API can answer 401 with a Status, as kube does; see
 * pki_peer_identity.
 */
#ifndef SIGNALBOX_SECURITY_PKI_H
#define SIGNALBOX_SECURITY_PKI_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

/* File names inside the PKI directory. */
#define PKI_CA_CRT     "ca.crt"
#define PKI_CA_KEY     "ca.key"
#define PKI_SERVER_CRT "server.crt"
#define PKI_SERVER_KEY "server.key"
#define PKI_ADMIN_CRT  "admin.crt"
#define PKI_ADMIN_KEY  "admin.key"

#define PKI_CA_DAYS   3650
#define PKI_LEAF_DAYS 365

/* The identity in a client certificate. All strings are NEW and owned by
 * the struct; free them with pki_identity_free. */
typedef struct pki_identity {
	char *user;    /* the subject's Common Name, never empty */
	char **groups; /* every Organization of the subject, in order */
	size_t ngroups;
} pki_identity;

/* Prototypes */

/*
 * Make sure dir (created 0700 if missing, parents too) holds the CA, the
 * server and the admin certificates and keys described above, making what
 * is missing or unfit. sans are the extra names of the serving certificate:
 * an IPv4 or IPv6 address becomes an IP SAN, anything else a DNS name (a
 * leading "*." is allowed); the unspecified addresses 0.0.0.0 and :: are
 * skipped (the caller adds the host's names when it listens on them). When
 * an existing server.crt was replaced, *reissued is set (reissued may be
 * NULL). Concurrent callers on one dir are serialized by a lock file.
 * Returns 0, or a negative errno with a message in err: -EINVAL for a bad
 * name or an unusable file (the message names it), the errno of a failed
 * system call otherwise.
 */
int pki_ensure(const char *dir, const char *const *sans, size_t nsans,
	       bool *reissued, char *err, size_t errlen);

/*
 * Issue a client certificate signed by the CA in dir: CN user, one O per
 * group, EKU clientAuth, valid for days (1..3650) from now. *cert_pem and
 * *key_pem are NEW NUL-terminated PEM strings (the caller frees them; the
 * key is unencrypted). Returns 0, -EINVAL (a bad argument, an unusable
 * CA), -ENOENT (dir holds no CA, or not its key) or another negative errno,
 * with a message in err.
 */
int pki_issue_client(const char *dir, const char *user,
		     const char *const *groups, size_t ngroups, int days,
		     char **cert_pem, char **key_pem, char *err, size_t errlen);

/*
 * A NEW server SSL_CTX (free with SSL_CTX_free): TLS 1.2 and 1.3 only,
 * forward-secret AEAD ciphers, no renegotiation, no compression.
 * cert_file is PEM, the leaf first and then any intermediates; key_file
 * must match it. When ca_file is not NULL the server asks for (but does not
 * require) a client certificate and verifies it against ca_file; a failed
 * verification does not abort the handshake but is recorded for
 * pki_peer_identity. NULL on failure, with a message in err.
 */
SSL_CTX *pki_server_ctx(const char *cert_file, const char *key_file,
			const char *ca_file, char *err, size_t errlen);

/*
 * The identity of the client certificate on an established server-side
 * ssl. Returns 0 and fills *id (free with pki_identity_free);
 * -ENOENT when the client sent no certificate (try other authenticators);
 * -EACCES when it sent one that did not verify (a foreign CA, expired, not
 * for clientAuth, ...) or that names no user: answer 401, whatever else the
 * request carries; -ENOMEM. err (may be NULL) gets the reason, which names
 * no part of the certificate.
 */
int pki_peer_identity(SSL *ssl, pki_identity *id, char *err, size_t errlen);

/*
 * The identity in a certificate given as untrusted bytes, PEM (the first
 * CERTIFICATE block) or else DER, WITHOUT verifying it: for tooling, tests
 * and the fuzzer. Returns 0 and fills *id, -EINVAL when the bytes are no
 * certificate or name no user (a missing or empty Common Name, or a name
 * with a NUL byte in it), -ENOMEM; with a message in err.
 */
int pki_cert_identity(const char *pem, size_t len, pki_identity *id, char *err,
		      size_t errlen);

/* Free the strings of id and zero it. NULL and a zeroed id are fine. */
void pki_identity_free(pki_identity *id);

#endif
