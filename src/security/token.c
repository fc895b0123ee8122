/*
 * token.c -- bearer tokens: the static token file, minted tokens, and the
 * Authorization header (see token.h).
 *
 * The token file is read whole, "\r\n" turned into "\n", and cut into
 * records by a small state machine that follows Go's encoding/csv (the
 * reader kube-apiserver uses) with its defaults: no comments, no trimming,
 * strict quotes. Each record becomes an entry keyed by the SHA-256 of its
 * token; the token itself is not kept. Entries are then sorted by digest so
 * that duplicates sit side by side and the later line of each wins.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "security/token.h"

/* The largest token file read: far beyond any real one. */
#define TOKEN_FILE_MAX (64u << 20)

struct tf_entry {
	unsigned char digest[SHA256_DIGEST_LENGTH];
	unsigned line;
	char *user;
	char *uid;
	char **groups;
	token_entry pub; /* points into the fields above */
};

/* A warning before it is formatted: sorted by line at the end. */
struct tf_warn {
	unsigned line;
	unsigned other; /* the earlier line of a duplicate, else 0 */
};

struct token_file {
	struct tf_entry *entries;
	size_t nentries;
	char **warnings;
	size_t nwarnings;
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

/* ---- minted tokens ------------------------------------------------------- */

int token_generate(char *out, size_t len)
{
	unsigned char raw[32];
	char b64[48];
	size_t i, n;

	if (len < TOKEN_MAX)
		return -ENOBUFS;
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	EVP_EncodeBlock((unsigned char *)b64, raw, sizeof(raw));
	OPENSSL_cleanse(raw, sizeof(raw));
	memcpy(out, TOKEN_MINTED_PREFIX, strlen(TOKEN_MINTED_PREFIX));
	n = strlen(TOKEN_MINTED_PREFIX);
	for (i = 0; b64[i] && b64[i] != '='; i++) {
		char c = b64[i];

		out[n++] = c == '+' ? '-' : c == '/' ? '_' : c;
	}
	out[n] = '\0';
	OPENSSL_cleanse(b64, sizeof(b64));
	return 0;
}

static void digest_of(const char *token, unsigned char d[SHA256_DIGEST_LENGTH])
{
	SHA256((const unsigned char *)token, strlen(token), d);
}

void token_hash(const char *token, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[SHA256_DIGEST_LENGTH];
	size_t i;

	digest_of(token, d);
	for (i = 0; i < sizeof(d); i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[64] = '\0';
}

bool token_hash_match(const char *token, const char *hash_hex)
{
	char mine[65];
	size_t i;

	if (!token || !hash_hex || strlen(hash_hex) != 64)
		return false;
	for (i = 0; i < 64; i++)
		if (!isdigit((unsigned char)hash_hex[i]) &&
		    (hash_hex[i] < 'a' || hash_hex[i] > 'f'))
			return false;
	token_hash(token, mine);
	return CRYPTO_memcmp(mine, hash_hex, 64) == 0;
}

/* ---- reading the token file ---------------------------------------------- */

/* The file's bytes, with "\r\n" as "\n" and a final lone "\r" dropped, as
 * Go's csv.Reader.readLine does. A NUL byte is an error (-EINVAL). */
static int read_all(const char *path, char **out, size_t *outlen,
		    bool *loose_mode, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0, cap = 0, i, j;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	*loose_mode = S_ISREG(st.st_mode) && (st.st_mode & 077);
	for (;;) {
		ssize_t r;

		if (cap - n < 4096) {
			char *nb;

			if (cap >= TOKEN_FILE_MAX) {
				ret = -EFBIG;
				seterr(err, errlen, "%s: larger than %u MiB",
				       path, TOKEN_FILE_MAX >> 20);
				goto out;
			}
			cap = cap ? 2 * cap : 65536;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				ret = -ENOMEM;
				seterr(err, errlen, "%s: out of memory", path);
				goto out;
			}
			buf = nb;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			seterr(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (!buf) {
		buf = malloc(1);
		if (!buf) {
			ret = -ENOMEM;
			seterr(err, errlen, "%s: out of memory", path);
			goto out;
		}
	}
	for (i = j = 0; i < n; i++) {
		if (buf[i] == '\0') {
			unsigned line = 1;
			size_t k;

			for (k = 0; k < j; k++)
				line += buf[k] == '\n';
			ret = -EINVAL;
			seterr(err, errlen, "%s:%u: NUL byte in the file", path,
			       line);
			goto out;
		}
		if (buf[i] == '\r' && i + 1 < n && buf[i + 1] == '\n')
			continue;
		buf[j++] = buf[i];
	}
	if (j && buf[j - 1] == '\r')
		j--;
	buf[j] = '\0';
	*out = buf;
	*outlen = j;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return ret;
}

/* The fields of one record: pointers into a scratch copy. */
struct record {
	char **f;
	size_t n, cap;
	unsigned line;
};

/* A growing byte buffer for the fields of one record. */
struct sbuf {
	char *p;
	size_t n, cap;
};

static int sbuf_put(struct sbuf *s, const char *p, size_t n)
{
	if (s->n + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 256;
		char *np;

		while (cap < s->n + n + 1)
			cap *= 2;
		np = realloc(s->p, cap);
		if (!np)
			return -ENOMEM;
		s->p = np;
		s->cap = cap;
	}
	memcpy(s->p + s->n, p, n);
	s->n += n;
	s->p[s->n] = '\0';
	return 0;
}

/*
 * Parse the record at b[*pos]: fields go into s, NUL-separated, and their
 * offsets into offs (nf of them). Blank lines before it are skipped. Returns
 * 1 for a record, 0 at the end of input, or -EINVAL/-ENOMEM with a message
 * (never quoting the content: a field may be a token).
 */
static int next_record(const char *b, size_t n, size_t *pos, unsigned *line,
		       struct sbuf *s, size_t **offs, size_t *nf,
		       size_t *offcap, unsigned *recline, const char *path,
		       char *err, size_t errlen)
{
	size_t p = *pos;

	while (p < n && b[p] == '\n') {
		p++;
		(*line)++;
	}
	if (p >= n) {
		*pos = p;
		return 0;
	}
	*recline = *line;
	s->n = 0;
	*nf = 0;
	for (;;) {
		bool end = false;

		if (*nf == *offcap) {
			size_t cap = *offcap ? 2 * *offcap : 8;
			size_t *no = realloc(*offs, cap * sizeof(*no));

			if (!no)
				goto nomem;
			*offs = no;
			*offcap = cap;
		}
		(*offs)[(*nf)++] = s->n;
		if (p < n && b[p] == '"') {
			p++;
			for (;;) {
				if (p >= n) {
					seterr(err, errlen,
					       "%s:%u: a quoted field has no "
					       "closing quote",
					       path, *recline);
					return -EINVAL;
				}
				if (b[p] != '"') {
					if (b[p] == '\n')
						(*line)++;
					if (sbuf_put(s, b + p, 1))
						goto nomem;
					p++;
					continue;
				}
				if (p + 1 < n && b[p + 1] == '"') {
					if (sbuf_put(s, "\"", 1))
						goto nomem;
					p += 2;
					continue;
				}
				p++;
				if (p >= n || b[p] == '\n') {
					end = true;
				} else if (b[p] == ',') {
					p++;
				} else {
					seterr(err, errlen,
					       "%s:%u: extraneous or missing "
					       "\" in a quoted field",
					       path, *line);
					return -EINVAL;
				}
				break;
			}
		} else {
			size_t q = p;

			while (q < n && b[q] != ',' && b[q] != '\n') {
				if (b[q] == '"') {
					seterr(err, errlen,
					       "%s:%u: bare \" in a field that "
					       "is not quoted (quote the whole "
					       "field and double the quote)",
					       path, *line);
					return -EINVAL;
				}
				q++;
			}
			if (sbuf_put(s, b + p, q - p))
				goto nomem;
			if (q < n && b[q] == ',') {
				p = q + 1;
			} else {
				p = q;
				end = true;
			}
		}
		if (sbuf_put(s, "", 1)) /* the field's NUL */
			goto nomem;
		if (end)
			break;
	}
	if (p < n && b[p] == '\n') {
		p++;
		(*line)++;
	}
	*pos = p;
	return 1;
nomem:
	seterr(err, errlen, "%s: out of memory", path);
	return -ENOMEM;
}

static void entry_clear(struct tf_entry *e)
{
	size_t i;

	free(e->user);
	free(e->uid);
	for (i = 0; e->groups && i < e->pub.ngroups; i++)
		free(e->groups[i]);
	free(e->groups);
	memset(e, 0, sizeof(*e));
}

/* The groups of kube's strings.Split(field, ","): empty parts included. */
static int split_groups(const char *field, struct tf_entry *e)
{
	size_t n = 1, i;
	const char *p;

	for (p = field; *p; p++)
		n += *p == ',';
	e->groups = calloc(n, sizeof(*e->groups));
	if (!e->groups)
		return -ENOMEM;
	e->pub.ngroups = n;
	for (i = 0, p = field; i < n; i++) {
		size_t len = strcspn(p, ",");

		e->groups[i] = strndup(p, len);
		if (!e->groups[i])
			return -ENOMEM;
		p += len + (p[len] == ',');
	}
	return 0;
}

static int entry_fill(struct tf_entry *e, const char *const *f, size_t nf,
		      unsigned line)
{
	e->line = line;
	digest_of(f[0], e->digest);
	e->user = strdup(f[1]);
	e->uid = strdup(f[2]);
	if (!e->user || !e->uid)
		return -ENOMEM;
	if (nf >= 4 && split_groups(f[3], e))
		return -ENOMEM;
	e->pub.user = e->user;
	e->pub.uid = e->uid;
	e->pub.groups = (const char *const *)e->groups;
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct tf_entry *x = a, *y = b;
	int c = memcmp(x->digest, y->digest, sizeof(x->digest));

	if (c)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

static int warn_cmp(const void *a, const void *b)
{
	const struct tf_warn *x = a, *y = b;

	return x->line < y->line ? -1 : x->line > y->line;
}

static int warn_add(struct tf_warn **w, size_t *n, size_t *cap, unsigned line,
		    unsigned other)
{
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 8;
		struct tf_warn *nw = realloc(*w, nc * sizeof(*nw));

		if (!nw)
			return -ENOMEM;
		*w = nw;
		*cap = nc;
	}
	(*w)[*n].line = line;
	(*w)[*n].other = other;
	(*n)++;
	return 0;
}

/* Sort by digest, keep the last line of each run of duplicates, and note
 * the dropped lines as warnings. */
static int dedupe(token_file *f, struct tf_warn **w, size_t *nw, size_t *wcap)
{
	size_t i, j = 0;

	if (!f->nentries)
		return 0;
	qsort(f->entries, f->nentries, sizeof(*f->entries), entry_cmp);
	for (i = 0; i < f->nentries; i++) {
		struct tf_entry *e = &f->entries[i];

		if (i + 1 < f->nentries &&
		    !memcmp(e->digest, e[1].digest, sizeof(e->digest))) {
			if (warn_add(w, nw, wcap, e[1].line, e->line))
				return -ENOMEM;
			entry_clear(e);
			continue;
		}
		f->entries[j++] = *e;
	}
	f->nentries = j;
	return 0;
}

static int format_warnings(token_file *f, const char *path, bool loose,
			   struct tf_warn *w, size_t nw)
{
	size_t i;

	f->warnings = calloc(nw + 1, sizeof(*f->warnings));
	if (!f->warnings)
		return -ENOMEM;
	if (loose &&
	    asprintf(&f->warnings[f->nwarnings++],
		     "%s: readable by other users; chmod 600 it", path) < 0)
		goto nomem;
	if (nw)
		qsort(w, nw, sizeof(*w), warn_cmp);
	for (i = 0; i < nw; i++) {
		int r;

		if (w[i].other)
			r = asprintf(&f->warnings[f->nwarnings],
				     "%s:%u: duplicate token (also on line "
				     "%u); line %u wins",
				     path, w[i].line, w[i].other, w[i].line);
		else
			r = asprintf(&f->warnings[f->nwarnings],
				     "%s:%u: empty token; record skipped", path,
				     w[i].line);
		if (r < 0)
			goto nomem;
		f->nwarnings++;
	}
	return 0;
nomem:
	f->warnings[f->nwarnings] = NULL;
	return -ENOMEM;
}

/* Check one record and add its entry. Returns 0 or -EINVAL/-ENOMEM. */
static int add_record(token_file *f, size_t *cap, const char *const *fld,
		      size_t nf, unsigned line, struct tf_warn **w, size_t *nw,
		      size_t *wcap, const char *path, char *err, size_t errlen)
{
	struct tf_entry *e;

	if (nf < 3) {
		seterr(err, errlen,
		       "%s:%u: expected at least 3 columns (token, user name, "
		       "uid), found %zu",
		       path, line, nf);
		return -EINVAL;
	}
	if (!fld[0][0])
		return warn_add(w, nw, wcap, line, 0) ? -ENOMEM : 0;
	if (strlen(fld[0]) >= TOKEN_BEARER_MAX) {
		seterr(err, errlen, "%s:%u: token longer than %d bytes", path,
		       line, TOKEN_BEARER_MAX - 1);
		return -EINVAL;
	}
	if (!fld[1][0]) {
		seterr(err, errlen, "%s:%u: empty user name (column 2)", path,
		       line);
		return -EINVAL;
	}
	if (f->nentries == *cap) {
		size_t nc = *cap ? 2 * *cap : 16;
		struct tf_entry *ne =
		    realloc(f->entries, nc * sizeof(*f->entries));

		if (!ne)
			goto nomem;
		f->entries = ne;
		*cap = nc;
	}
	e = &f->entries[f->nentries++];
	memset(e, 0, sizeof(*e));
	if (entry_fill(e, fld, nf, line))
		goto nomem;
	return 0;
nomem:
	seterr(err, errlen, "%s: out of memory", path);
	return -ENOMEM;
}

static int parse_file(token_file *f, const char *b, size_t n, const char *path,
		      bool loose, char *err, size_t errlen)
{
	struct sbuf s = {0};
	size_t *offs = NULL, offcap = 0, nf, pos = 0, cap = 0, nw = 0, wcap = 0;
	const char **fld = NULL;
	struct tf_warn *w = NULL;
	unsigned line = 1, recline = 0;
	int ret;

	for (;;) {
		size_t i;

		ret = next_record(b, n, &pos, &line, &s, &offs, &nf, &offcap,
				  &recline, path, err, errlen);
		if (ret <= 0)
			break;
		free(fld);
		fld = malloc(nf * sizeof(*fld));
		if (!fld) {
			ret = -ENOMEM;
			break;
		}
		for (i = 0; i < nf; i++)
			fld[i] = s.p + offs[i];
		ret = add_record(f, &cap, fld, nf, recline, &w, &nw, &wcap,
				 path, err, errlen);
		if (ret)
			break;
	}
	if (!ret)
		ret = dedupe(f, &w, &nw, &wcap);
	if (!ret)
		ret = format_warnings(f, path, loose, w, nw);
	if (ret == -ENOMEM)
		seterr(err, errlen, "%s: out of memory", path);
	if (s.p)
		OPENSSL_cleanse(s.p, s.cap);
	free(s.p);
	free(offs);
	free(fld);
	free(w);
	return ret;
}

int token_file_load(const char *path, token_file **out, char *err,
		    size_t errlen)
{
	token_file *f = NULL;
	char *buf = NULL;
	size_t n = 0;
	bool loose = false;
	int ret;

	*out = NULL;
	ret = read_all(path, &buf, &n, &loose, err, errlen);
	if (ret)
		return ret;
	f = calloc(1, sizeof(*f));
	if (!f) {
		ret = -ENOMEM;
		seterr(err, errlen, "%s: out of memory", path);
		goto out;
	}
	ret = parse_file(f, buf, n, path, loose, err, errlen);
	if (ret)
		goto out;
	*out = f;
	f = NULL;
out:
	token_file_free(f);
	OPENSSL_cleanse(buf, n);
	free(buf);
	return ret;
}

size_t token_file_nwarnings(const token_file *f)
{
	return f ? f->nwarnings : 0;
}

const char *token_file_warning(const token_file *f, size_t i)
{
	return f && i < f->nwarnings ? f->warnings[i] : NULL;
}

size_t token_file_count(const token_file *f)
{
	return f ? f->nentries : 0;
}

const token_entry *token_file_find(const token_file *f, const char *token)
{
	unsigned char d[SHA256_DIGEST_LENGTH];
	size_t i, idx = 0, found = 0;

	if (!f || !token || !*token)
		return NULL;
	digest_of(token, d);
	for (i = 0; i < f->nentries; i++) {
		/* all ones when equal, else zero: no branch on the result */
		size_t m =
		    (size_t)0 - (size_t)(CRYPTO_memcmp(d, f->entries[i].digest,
						       sizeof(d)) == 0);

		idx = (idx & ~m) | (i & m);
		found |= m;
	}
	OPENSSL_cleanse(d, sizeof(d));
	return found ? &f->entries[idx].pub : NULL;
}

void token_file_free(token_file *f)
{
	size_t i;

	if (!f)
		return;
	for (i = 0; i < f->nentries; i++)
		entry_clear(&f->entries[i]);
	free(f->entries);
	for (i = 0; f->warnings && i < f->nwarnings; i++)
		free(f->warnings[i]);
	free(f->warnings);
	free(f);
}

/* ---- requests ------------------------------------------------------------ */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	       c == '\f';
}

int token_from_header(const char *authorization, char *out, size_t outlen)
{
	const char *p, *end, *sp, *tok, *tend;

	if (!authorization)
		return -ENOENT;
	p = authorization;
	end = p + strlen(p);
	while (p < end && is_space(*p))
		p++;
	while (end > p && is_space(end[-1]))
		end--;
	sp = memchr(p, ' ', (size_t)(end - p));
	if (!sp)
		return -ENOENT;
	if (sp - p != 6 || strncasecmp(p, "bearer", 6))
		return -ENOENT;
	tok = sp + 1;
	tend = memchr(tok, ' ', (size_t)(end - tok));
	if (!tend)
		tend = end;
	if (tend == tok)
		return -EINVAL;
	if ((size_t)(tend - tok) >= outlen)
		return -E2BIG;
	memcpy(out, tok, (size_t)(tend - tok));
	out[tend - tok] = '\0';
	return 0;
}

int token_parse_ttl(const char *s, int64_t *seconds, char *err, size_t errlen)
{
	static const int64_t limit = 100LL * 366 * 86400;
	const char *p = s;
	int64_t total = 0;

	if (!s || !*s) {
		seterr(err, errlen,
		       "empty duration: give one like 24h, 30m, "
		       "1h30m or 7d");
		return -EINVAL;
	}
	if (!strcmp(s, "0")) {
		*seconds = 0;
		return 0;
	}
	while (*p) {
		int64_t v = 0, unit;

		if (!isdigit((unsigned char)*p)) {
			seterr(err, errlen,
			       "invalid duration \"%.32s\": expected a number "
			       "at \"%.16s\" (like 24h, 30m, 1h30m or 7d)",
			       s, p);
			return -EINVAL;
		}
		while (isdigit((unsigned char)*p)) {
			v = v * 10 + (*p++ - '0');
			if (v > limit) {
				seterr(err, errlen,
				       "duration \"%.32s\" is too long (at "
				       "most 100 years)",
				       s);
				return -ERANGE;
			}
		}
		switch (*p) {
		case 'd':
			unit = 86400;
			break;
		case 'h':
			unit = 3600;
			break;
		case 'm':
			unit = 60;
			break;
		case 's':
			unit = 1;
			break;
		case '\0':
			seterr(err, errlen,
			       "invalid duration \"%.32s\": missing unit (d, "
			       "h, m or s) after the last number",
			       s);
			return -EINVAL;
		default:
			seterr(err, errlen,
			       "invalid duration \"%.32s\": unknown unit "
			       "\"%c\" (use d, h, m or s, as in 24h or 1h30m)",
			       s, isprint((unsigned char)*p) ? *p : '?');
			return -EINVAL;
		}
		p++;
		if (p[-1] == 'm' && *p == 's') {
			seterr(err, errlen,
			       "invalid duration \"%.32s\": milliseconds are "
			       "not supported; use whole seconds",
			       s);
			return -EINVAL;
		}
		total += v * unit;
		if (total > limit) {
			seterr(err, errlen,
			       "duration \"%.32s\" is too long (at most 100 "
			       "years)",
			       s);
			return -ERANGE;
		}
	}
	*seconds = total;
	return 0;
}
