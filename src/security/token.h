/*
 * token.h -- bearer tokens: the static token file, minted tokens, and the
 * Authorization header.
 *
 * Two kinds of bearer token authenticate a request:
 *
 *  - tokens listed in a --token-auth-file, in kube-apiserver's static token
 *    CSV format (k8s.io/apiserver/pkg/authentication/token/tokenfile):
 *
 *        token,user,uid[,"group1,group2,..."]
 *
 *    read with the rules of Go's encoding/csv as kube uses it: fields split
 *    on commas, a field that starts with '"' is quoted ("" is a quote inside
 *    it, and it may hold commas and newlines), blank lines are skipped, a
 *    record needs at least 3 fields and may have more (extra ones are
 *    ignored), a record with an empty token is skipped with a warning, and
 *    of two records with the same token the later one wins, with a warning.
 *    The fourth field is split on commas into the groups, as kube does.
 *    Two deviations, both refusals of files kube would take: an empty user
 *    name and a NUL byte are errors.
 *
 *  - tokens minted by `signalbox token create`: "sb_" and 43 base64url
 *    characters (32 random bytes). The token is printed once; only its
 *    SHA-256 (token_hash) is stored.
 *
 * A token is a secret. No function here puts one in an error or warning
 * message, and the token file keeps only the SHA-256 of each token, so a
 * lookup compares digests in constant time and a memory dump of the table
 * does not give the tokens away.
 */
#ifndef SIGNALBOX_SECURITY_TOKEN_H
#define SIGNALBOX_SECURITY_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room for a minted token and its NUL: "sb_" + 43 characters + 1. */
#define TOKEN_MAX 48

/* The longest bearer token accepted, with its NUL, from a header or from the
 * token file. Longer ones are refused (the file) or unauthenticated (the
 * header). */
#define TOKEN_BEARER_MAX 4096

/* The prefix of every minted token. */
#define TOKEN_MINTED_PREFIX "sb_"

/* Prototypes */

/*
 * Write a new random token ("sb_" + 43 base64url characters, from 32 bytes
 * of RAND_bytes) into out, which holds len >= TOKEN_MAX bytes. Returns 0,
 * -ENOBUFS when len is too small, or -EIO when the random generator fails.
 */
int token_generate(char *out, size_t len);

/* The lowercase hex SHA-256 of the NUL-terminated token, into out (64
 * characters and a NUL). This is the form minted tokens are stored in. */
void token_hash(const char *token, char out[65]);

/* Whether token hashes to hash_hex (as token_hash writes it), compared in
 * constant time. False for a hash_hex that is not 64 lowercase hex digits. */
bool token_hash_match(const char *token, const char *hash_hex);

/* ---- the static token file ---------------------------------------------- */

typedef struct token_file token_file;

/* One user of the token file. The strings belong to the token_file and live
 * until token_file_free. */
typedef struct token_entry {
	const char *user;
	const char *uid;
	const char *const *groups; /* ngroups strings; NULL when none */
	size_t ngroups;
} token_entry;

/*
 * Read the token file at path. On success *out is a NEW token_file (free it
 * with token_file_free) and 0 is returned. On failure *out is NULL and the
 * return is a negative errno with a message in err naming the path and the
 * line, e.g. "tokens.csv:3: expected at least 3 columns (token, user name,
 * uid), found 2" (-EINVAL for bad content; the errno of open/read
 * otherwise). The message never holds a token.
 */
int token_file_load(const char *path, token_file **out, char *err,
		    size_t errlen);

/* What load noticed but let pass: records with an empty token, duplicate
 * tokens, a file readable by other users. Messages are "path:line: ..." and
 * belong to f. i < token_file_nwarnings(f). */
size_t token_file_nwarnings(const token_file *f);
const char *token_file_warning(const token_file *f, size_t i);

/* The number of distinct tokens in f. */
size_t token_file_count(const token_file *f);

/*
 * The entry of token (NUL-terminated), or NULL when it is not in f (or token
 * is NULL or empty). The time taken does not depend on the token's value or
 * on which entry matches: every entry's digest is compared. The entry
 * belongs to f.
 */
const token_entry *token_file_find(const token_file *f, const char *token);

/* Free f and all its entries. NULL is fine. */
void token_file_free(token_file *f);

/* ---- requests ------------------------------------------------------------ */

/*
 * The bearer token in an Authorization header value, as kube's bearertoken
 * authenticator reads it: surrounding white space trimmed, then split on
 * single spaces; the scheme "Bearer" matches in any case and the token is
 * the second part (a third part is ignored). The token is copied into out
 * (outlen bytes, TOKEN_BEARER_MAX is enough). Returns 0; -ENOENT when there
 * is no bearer credential at all (authorization NULL or empty, or another
 * scheme): try the next authenticator; -EINVAL for "Bearer" with an empty
 * token and -E2BIG for a token that does not fit out: answer 401.
 */
int token_from_header(const char *authorization, char *out, size_t outlen);

/*
 * A lifetime such as 24h, 30m, 90s, 1h30m or 7d (d, days of 24 hours, is an
 * extension to Go's time.ParseDuration) into seconds. Each part is a decimal
 * integer and a unit (d, h, m, s); parts add up and may come in any order. A
 * bare "0" is zero (callers decide what zero means). Returns 0, or -EINVAL
 * (bad syntax) or -ERANGE (beyond 100 years) with a message in err.
 */
int token_parse_ttl(const char *s, int64_t *seconds, char *err, size_t errlen);

#endif
