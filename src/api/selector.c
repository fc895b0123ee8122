/*
 * selector.c -- label selectors (sel_*) and field selectors (fsel_*).
 *
 * The label selector parser follows the shape of the one in
 * k8s.io/apimachinery/pkg/labels, because its corner cases are part of the
 * API: the whole string is first cut into tokens, then a parser with one
 * token of lookahead builds the requirements. "in" and "notin" are keywords
 * only where an operator may stand; as a key or a value they are plain
 * identifiers. A set of values is kept sorted and without duplicates, and
 * the requirements are sorted by key, so that equal selectors print equal.
 *
 * Validation messages are built with the same words and the same field
 * paths as the Go code ("values[0][app]: Invalid value: ..."), and several
 * of them are joined the way an aggregated field.ErrorList prints.
 */
#include "api/selector.h"
#include "util/strbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growing string ---------------------------------------------------- */

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len, i;
	uint32_t c;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (len > n)
		return 0;
	c = s[0] & (0x3f >> (len - 1));
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
	    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return 0;
	return len;
}

/* Append s as Go's %q prints it (strconv.Quote, near enough). */
static void buf_quote(strbuf *b, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, k;
	char tmp[8];

	strbuf_putc(b, '"');
	while (i < n) {
		unsigned char c = u[i];

		switch (c) {
		case '"':
			strbuf_puts(b, "\\\"");
			break;
		case '\\':
			strbuf_puts(b, "\\\\");
			break;
		case '\a':
			strbuf_puts(b, "\\a");
			break;
		case '\b':
			strbuf_puts(b, "\\b");
			break;
		case '\f':
			strbuf_puts(b, "\\f");
			break;
		case '\n':
			strbuf_puts(b, "\\n");
			break;
		case '\r':
			strbuf_puts(b, "\\r");
			break;
		case '\t':
			strbuf_puts(b, "\\t");
			break;
		case '\v':
			strbuf_puts(b, "\\v");
			break;
		default:
			if (c >= 0x20 && c < 0x7f) {
				strbuf_putc(b, (char)c);
			} else if (c >= 0x80 && (k = utf8_seq(u + i, n - i))) {
				strbuf_putn(b, s + i, k);
				i += k;
				continue;
			} else {
				snprintf(tmp, sizeof(tmp), "\\x%02x", c);
				strbuf_puts(b, tmp);
			}
		}
		i++;
	}
	strbuf_putc(b, '"');
}

/* Write msg to err (may be NULL), truncated. */
static void set_err(char *err, size_t errlen, const char *msg)
{
	if (!err || !errlen)
		return;
	snprintf(err, errlen, "%s", msg ? msg : "out of memory");
}

static void set_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- validation of label keys and values (k8s util/validation) ---------- */

#define QNAME_FMT "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
#define QNAME_MSG                                                              \
	"must consist of alphanumeric characters, '-', '_' or '.', and must "  \
	"start and end with an alphanumeric character (e.g. 'MyName',  or "    \
	"'my.name',  or '123-abc', regex used for validation is '" QNAME_FMT   \
	"')"
#define DNS_LABEL_FMT "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
#define DNS_SUB_MSG                                                            \
	"a lowercase RFC 1123 subdomain must consist of lower case "           \
	"alphanumeric characters, '-' or '.', and must start and end with "    \
	"an alphanumeric character (e.g. 'example.com', regex used for "       \
	"validation is '" DNS_LABEL_FMT "(\\." DNS_LABEL_FMT ")*')"
#define LABEL_VALUE_MSG                                                        \
	"a valid label must be an empty string or consist of alphanumeric "    \
	"characters, '-', '_' or '.', and must start and end with an "         \
	"alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "         \
	"'12345', regex used for validation is '(" QNAME_FMT ")?')"
#define QNAME_MAX	63
#define LABEL_VALUE_MAX 63
#define DNS_SUB_MAX	253

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])? over s[0..n) */
static bool qname_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
		return false;
	for (i = 1; i + 1 < n; i++)
		if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' &&
		    s[i] != '.')
			return false;
	return true;
}

/* RFC 1123 subdomain: dot-separated lowercase DNS labels. */
static bool dns_subdomain_ok(const char *s, size_t n)
{
	size_t i, start = 0;

	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		/* label s[start..i) */
		if (i == start)
			return false;
		for (size_t j = start; j < i; j++) {
			char c = s[j];
			bool an =
			    (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

			if (!an && (c != '-' || j == start || j == i - 1))
				return false;
		}
		start = i + 1;
	}
	return true;
}

/* Append "; " between messages. */
static void msg_add(strbuf *b, const char *m)
{
	if (b->len)
		strbuf_puts(b, "; ");
	strbuf_puts(b, m);
}

/* validation.IsQualifiedName: messages appended to b; true when valid. */
static bool check_qualified_name(const char *k, strbuf *b)
{
	const char *slash = strchr(k, '/'), *name = k;
	size_t start = b->len;
	char tmp[64];

	if (slash) {
		size_t plen = (size_t)(slash - k);

		if (strchr(slash + 1, '/')) {
			msg_add(b, "a qualified name " QNAME_MSG
				   " with an optional DNS subdomain prefix and "
				   "'/' (e.g. 'example.com/MyName')");
			return false;
		}
		if (plen == 0) {
			msg_add(b, "prefix part must be non-empty");
		} else {
			if (plen > DNS_SUB_MAX) {
				snprintf(tmp, sizeof(tmp),
					 "prefix part must be no more than %d "
					 "characters",
					 DNS_SUB_MAX);
				msg_add(b, tmp);
			}
			if (!dns_subdomain_ok(k, plen))
				msg_add(b, "prefix part " DNS_SUB_MSG);
		}
		name = slash + 1;
	}
	if (!*name) {
		msg_add(b, "name part must be non-empty");
	} else if (strlen(name) > QNAME_MAX) {
		snprintf(tmp, sizeof(tmp),
			 "name part must be no more than %d characters",
			 QNAME_MAX);
		msg_add(b, tmp);
	}
	if (!qname_ok(name, strlen(name)))
		msg_add(b, "name part " QNAME_MSG);
	return b->len == start;
}

/* validation.IsValidLabelValue. */
static bool check_label_value(const char *v, strbuf *b)
{
	size_t n = strlen(v), start = b->len;
	char tmp[64];

	if (n > LABEL_VALUE_MAX) {
		snprintf(tmp, sizeof(tmp), "must be no more than %d characters",
			 LABEL_VALUE_MAX);
		msg_add(b, tmp);
	}
	if (n && !qname_ok(v, n))
		msg_add(b, LABEL_VALUE_MSG);
	return b->len == start;
}

/* strconv.ParseInt(s, 10, 64) */
static bool parse_int64(const char *s, int64_t *out)
{
	bool neg = false;
	uint64_t v = 0, lim;

	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if (!*s)
		return false;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		if (v > (lim - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (neg)
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	else
		*out = (int64_t)v;
	return true;
}

/* ---- requirements ---------------------------------------------------------
 *
 * Invariant: a built requirement passed NewRequirement's checks, so Gt/Lt
 * hold exactly one integer value and In/NotIn at least one value.
 */

enum sel_op {
	OP_IN,
	OP_NOTIN,
	OP_EQ,
	OP_DEQ,
	OP_NEQ,
	OP_EXISTS,
	OP_NOTEXISTS,
	OP_GT,
	OP_LT,
};

struct req {
	char *key;
	enum sel_op op;
	char **vals;
	size_t nvals;
	int64_t num;  /* OP_GT, OP_LT: the value */
	size_t order; /* for a stable sort */
};

struct sel {
	bool nothing; /* sel_from_json(NULL): matches no labels */
	size_t n;
	struct req *reqs;
};

static void req_clear(struct req *r)
{
	size_t i;

	free(r->key);
	for (i = 0; i < r->nvals; i++)
		free(r->vals[i]);
	free(r->vals);
}

void sel_free(sel *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->n; i++)
		req_clear(&s->reqs[i]);
	free(s->reqs);
	free(s);
}

/*
 * An aggregated error list (field.ErrorList.ToAggregate): each message
 * once; one prints bare, several print as "[a, b]".
 */
struct errlist {
	char *msgs[8]; /* NewRequirement reports at most a few */
	size_t n;
	bool oom;
};

static void errs_add(struct errlist *e, strbuf *msg)
{
	size_t i;

	if (msg->oom || !msg->p) {
		e->oom = true;
		return;
	}
	for (i = 0; i < e->n; i++)
		if (!strcmp(e->msgs[i], msg->p))
			return;
	if (e->n == sizeof(e->msgs) / sizeof(e->msgs[0]))
		return;
	if (!(e->msgs[e->n] = strdup(msg->p)))
		e->oom = true;
	else
		e->n++;
}

/* The joined message into b, and the list emptied. */
static void errs_join(struct errlist *e, strbuf *b)
{
	size_t i;

	if (e->n > 1)
		strbuf_putc(b, '[');
	for (i = 0; i < e->n; i++) {
		if (i)
			strbuf_puts(b, ", ");
		strbuf_puts(b, e->msgs[i]);
		free(e->msgs[i]);
	}
	if (e->n > 1)
		strbuf_putc(b, ']');
	if (e->oom)
		b->oom = true;
	e->n = 0;
}

/* Finish the list into err; returns -EINVAL, or -ENOMEM. */
static int errs_finish(struct errlist *e, char *err, size_t errlen)
{
	strbuf b = {0};
	int rc;

	errs_join(e, &b);
	rc = b.oom ? -ENOMEM : -EINVAL;
	set_err(err, errlen, b.oom ? NULL : b.p);
	free(b.p);
	return rc;
}

/* Go's %#v of a []string; nil when vals is NULL. */
static void buf_gostrings(strbuf *b, char **vals, size_t n, bool nil)
{
	size_t i;

	if (nil) {
		strbuf_puts(b, "[]string(nil)");
		return;
	}
	strbuf_puts(b, "[]string{");
	for (i = 0; i < n; i++) {
		if (i)
			strbuf_puts(b, ", ");
		buf_quote(b, vals[i]);
	}
	strbuf_putc(b, '}');
}

/*
 * labels.NewRequirement: check key, operator and values (borrowed) and
 * fill r (copies). Errors are added to e; returns 0, -EINVAL or -ENOMEM.
 * check_key is false when the parser has checked the key already.
 */
static int req_init(struct req *r, const char *key, enum sel_op op, char **vals,
		    size_t nvals, bool vals_nil, bool check_key,
		    struct errlist *e)
{
	strbuf m = {0}, msgs = {0};
	size_t i, before = e->n;
	const char *detail = NULL;

	memset(r, 0, sizeof(*r));
	if (check_key && !check_qualified_name(key, &msgs)) {
		strbuf_puts(&m, "key: Invalid value: ");
		buf_quote(&m, key);
		strbuf_puts(&m, ": ");
		strbuf_putn(&m, msgs.p, msgs.len);
		errs_add(e, &m);
	}
	switch (op) {
	case OP_IN:
	case OP_NOTIN:
		if (nvals == 0)
			detail = "for 'in', 'notin' operators, values set "
				 "can't be empty";
		break;
	case OP_EQ:
	case OP_DEQ:
	case OP_NEQ:
		if (nvals != 1)
			detail = "exact-match compatibility requires one "
				 "single value";
		break;
	case OP_EXISTS:
	case OP_NOTEXISTS:
		if (nvals != 0)
			detail = "values set must be empty for exists and "
				 "does not exist";
		break;
	case OP_GT:
	case OP_LT:
		if (nvals != 1)
			detail = "for 'Gt', 'Lt' operators, exactly one value "
				 "is required";
		break;
	}
	if (detail) {
		m.len = 0;
		strbuf_puts(&m, "values: Invalid value: ");
		buf_gostrings(&m, vals, nvals, vals_nil);
		strbuf_puts(&m, ": ");
		strbuf_puts(&m, detail);
		errs_add(e, &m);
	}
	if (op == OP_GT || op == OP_LT) {
		for (i = 0; i < nvals; i++) {
			if (parse_int64(vals[i], &r->num))
				continue;
			char tmp[48];

			m.len = 0;
			snprintf(tmp, sizeof(tmp),
				 "values[%zu]: Invalid value: ", i);
			strbuf_puts(&m, tmp);
			buf_quote(&m, vals[i]);
			strbuf_puts(&m, ": for 'Gt', 'Lt' operators, the value "
					"must be an integer");
			errs_add(e, &m);
		}
	}
	for (i = 0; i < nvals; i++) {
		char tmp[48];

		msgs.len = 0;
		if (msgs.p)
			msgs.p[0] = '\0';
		if (check_label_value(vals[i], &msgs))
			continue;
		m.len = 0;
		snprintf(tmp, sizeof(tmp), "values[%zu][", i);
		strbuf_puts(&m, tmp);
		strbuf_puts(&m, key);
		strbuf_puts(&m, "]: Invalid value: ");
		buf_quote(&m, vals[i]);
		strbuf_puts(&m, ": ");
		strbuf_putn(&m, msgs.p, msgs.len);
		errs_add(e, &m);
	}
	free(m.p);
	free(msgs.p);
	if (m.oom || msgs.oom)
		e->oom = true;
	if (e->oom)
		return -ENOMEM;
	if (e->n != before)
		return -EINVAL;

	r->op = op;
	r->key = strdup(key);
	r->vals = calloc(nvals ? nvals : 1, sizeof(char *));
	if (!r->key || !r->vals)
		goto oom;
	for (i = 0; i < nvals; i++) {
		r->vals[i] = strdup(vals[i]);
		if (!r->vals[i])
			goto oom;
		r->nvals++;
	}
	return 0;
oom:
	req_clear(r);
	memset(r, 0, sizeof(*r));
	e->oom = true;
	return -ENOMEM;
}

static int req_cmp(const void *a, const void *b)
{
	const struct req *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Append r to s (takes r's contents). */
static int sel_push(sel *s, size_t *cap, struct req *r)
{
	if (s->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 4;
		struct req *p = realloc(s->reqs, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->reqs = p;
		*cap = nc;
	}
	r->order = s->n;
	s->reqs[s->n++] = *r;
	return 0;
}

/* ---- the lexer ----------------------------------------------------------- */

enum tok {
	T_EOS,
	T_CPAR,
	T_COMMA,
	T_NOT,
	T_DEQ,
	T_EQ,
	T_GT,
	T_ID,
	T_IN,
	T_LT,
	T_NEQ,
	T_NOTIN,
	T_OPAR,
};

struct token {
	enum tok t;
	char *lit; /* NUL-terminated copy */
};

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_special(char c)
{
	return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' ||
	       c == '>' || c == '<';
}

/* The next token at *pp; lit is a new string. */
static int lex_one(const char **pp, struct token *tk)
{
	const char *p = *pp, *start;
	size_t n;

	while (is_ws(*p))
		p++;
	start = p;
	if (!*p) {
		tk->t = T_EOS;
	} else if (is_special(*p)) {
		if ((p[0] == '!' || p[0] == '=') && p[1] == '=') {
			tk->t = p[0] == '!' ? T_NEQ : T_DEQ;
			p += 2;
		} else {
			switch (*p) {
			case '=':
				tk->t = T_EQ;
				break;
			case '!':
				tk->t = T_NOT;
				break;
			case '(':
				tk->t = T_OPAR;
				break;
			case ')':
				tk->t = T_CPAR;
				break;
			case ',':
				tk->t = T_COMMA;
				break;
			case '>':
				tk->t = T_GT;
				break;
			default:
				tk->t = T_LT;
				break;
			}
			p++;
		}
	} else {
		while (*p && !is_special(*p) && !is_ws(*p))
			p++;
		n = (size_t)(p - start);
		tk->t = T_ID;
		if (n == 2 && !memcmp(start, "in", 2))
			tk->t = T_IN;
		else if (n == 5 && !memcmp(start, "notin", 5))
			tk->t = T_NOTIN;
	}
	tk->lit = strndup(start, (size_t)(p - start));
	*pp = p;
	return tk->lit ? 0 : -ENOMEM;
}

/* ---- the parser ---------------------------------------------------------- */

struct parser {
	struct token *toks;
	size_t ntoks, pos;
	strbuf err; /* the message, when a step fails */
};

/* In a value context, "in" and "notin" are identifiers. */
static enum tok look(struct parser *p, bool values, const char **lit)
{
	enum tok t = p->toks[p->pos].t;

	if (lit)
		*lit = p->toks[p->pos].lit;
	if (values && (t == T_IN || t == T_NOTIN))
		t = T_ID;
	return t;
}

static enum tok consume(struct parser *p, bool values, const char **lit)
{
	enum tok t = look(p, values, lit);

	/* the last token is always T_EOS; never step past it */
	if (p->pos + 1 < p->ntoks)
		p->pos++;
	return t;
}

static int perr(struct parser *p, const char *found, const char *expected)
{
	strbuf_puts(&p->err, "found '");
	strbuf_puts(&p->err, found);
	strbuf_puts(&p->err, expected);
	return p->err.oom ? -ENOMEM : -EINVAL;
}

/* A sorted set of strings (borrowed pointers). */
struct strset {
	const char **v;
	size_t n, cap;
};

static int set_add(struct strset *s, const char *v)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], v))
			return 0;
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 4;
		const char **p = realloc(s->v, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->v = p;
		s->cap = nc;
	}
	s->v[s->n++] = v;
	return 0;
}

static int strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "(" values ")" */
static int parse_values(struct parser *p, struct strset *set)
{
	const char *lit, *lit2;
	enum tok t;
	int rc;

	if (consume(p, true, &lit) != T_OPAR)
		return perr(p, lit, "' expected: '('");
	t = look(p, true, &lit);
	if (t == T_CPAR) {
		consume(p, true, NULL);
		return set_add(set, "");
	}
	if (t != T_ID && t != T_COMMA)
		return perr(p, lit, "', expected: ',', ')' or identifier");
	for (;;) {
		t = consume(p, true, &lit);
		if (t == T_ID) {
			if ((rc = set_add(set, lit)))
				return rc;
			t = look(p, true, &lit2);
			if (t == T_COMMA)
				continue;
			if (t == T_CPAR)
				break;
			return perr(p, lit2, "', expected: ',' or ')'");
		} else if (t == T_COMMA) {
			if (set->n == 0 && (rc = set_add(set, "")))
				return rc;
			t = look(p, true, NULL);
			if (t == T_CPAR) {
				if ((rc = set_add(set, "")))
					return rc;
				break;
			}
			if (t == T_COMMA) {
				consume(p, true, NULL);
				if ((rc = set_add(set, "")))
					return rc;
			}
		} else {
			return perr(p, lit, "', expected: ',', or identifier");
		}
	}
	if (consume(p, true, &lit) != T_CPAR)
		return perr(p, lit, "', expected: ')'");
	return 0;
}

static int parse_requirement(struct parser *p, struct req *r)
{
	struct strset set = {0};
	struct errlist e = {0};
	strbuf msgs = {0};
	const char *lit, *key;
	enum sel_op op = OP_EXISTS;
	bool unary = false;
	enum tok t;
	int rc;

	t = consume(p, true, &lit);
	if (t == T_NOT) {
		op = OP_NOTEXISTS;
		unary = true;
		t = consume(p, true, &lit);
	}
	if (t != T_ID)
		return perr(p, lit, "', expected: identifier");
	key = lit;
	if (!check_qualified_name(key, &msgs) || msgs.oom) {
		strbuf_puts(&p->err, "<nil>: Invalid value: ");
		buf_quote(&p->err, key);
		strbuf_puts(&p->err, ": ");
		strbuf_putn(&p->err, msgs.p, msgs.len);
		rc = msgs.oom || p->err.oom ? -ENOMEM : -EINVAL;
		free(msgs.p);
		return rc;
	}
	free(msgs.p);
	t = look(p, true, NULL);
	if (t == T_EOS || t == T_COMMA)
		unary = true;
	if (!unary) {
		t = consume(p, false, &lit);
		switch (t) {
		case T_IN:
			op = OP_IN;
			break;
		case T_NOTIN:
			op = OP_NOTIN;
			break;
		case T_EQ:
			op = OP_EQ;
			break;
		case T_DEQ:
			op = OP_DEQ;
			break;
		case T_NEQ:
			op = OP_NEQ;
			break;
		case T_GT:
			op = OP_GT;
			break;
		case T_LT:
			op = OP_LT;
			break;
		default:
			return perr(p, lit,
				    "', expected: in, notin, =, ==, "
				    "!=, gt, lt");
		}
		if (op == OP_IN || op == OP_NOTIN) {
			rc = parse_values(p, &set);
		} else {
			rc = 0;
			t = look(p, true, NULL);
			if (t == T_EOS || t == T_COMMA)
				rc = set_add(&set, "");
			else if (consume(p, true, &lit) == T_ID)
				rc = set_add(&set, lit);
			else
				rc = perr(p, lit, "', expected: identifier");
		}
		if (rc) {
			free(set.v);
			return rc;
		}
	}
	if (set.n > 1)
		qsort(set.v, set.n, sizeof(*set.v), strp_cmp);
	rc = req_init(r, key, op, (char **)set.v, set.n, false, false, &e);
	free(set.v);
	if (rc) {
		/* req_init's message goes into p->err */
		errs_join(&e, &p->err);
		return p->err.oom ? -ENOMEM : -EINVAL;
	}
	return 0;
}

static int parse_all(struct parser *p, sel *s)
{
	const char *lit;
	size_t cap = 0;
	struct req r;
	enum tok t;
	int rc;

	for (;;) {
		t = look(p, true, &lit);
		if (t == T_EOS)
			return 0;
		if (t != T_ID && t != T_NOT)
			return perr(p, lit,
				    "', expected: !, identifier, or "
				    "'end of string'");
		rc = parse_requirement(p, &r);
		if (rc) {
			if (rc == -EINVAL) {
				/* prefix the message */
				strbuf m = {0};

				strbuf_puts(&m,
					    "unable to parse requirement: ");
				strbuf_putn(&m, p->err.p ? p->err.p : "",
					    p->err.len);
				free(p->err.p);
				p->err = m;
				if (m.oom)
					return -ENOMEM;
			}
			return rc;
		}
		if (sel_push(s, &cap, &r)) {
			req_clear(&r);
			return -ENOMEM;
		}
		t = consume(p, true, &lit);
		if (t == T_EOS)
			return 0;
		if (t != T_COMMA)
			return perr(p, lit,
				    "', expected: ',' or 'end of "
				    "string'");
		t = look(p, true, &lit);
		if (t != T_ID && t != T_NOT)
			return perr(p, lit,
				    "', expected: identifier after ','");
	}
}

int sel_parse(const char *text, sel **out, char *err, size_t errlen)
{
	struct parser p = {0};
	const char *cur;
	size_t cap = 0, i, len;
	sel *s = NULL;
	int rc;

	*out = NULL;
	if (!text)
		text = "";
	len = strnlen(text, SEL_MAX_LEN + 1);
	if (len > SEL_MAX_LEN) {
		set_errf(err, errlen, "label selector is longer than %d bytes",
			 SEL_MAX_LEN);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto oom;
	cur = text;
	for (;;) {
		if (p.ntoks == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct token *t = realloc(p.toks, nc * sizeof(*t));

			if (!t)
				goto oom;
			p.toks = t;
			cap = nc;
		}
		if (lex_one(&cur, &p.toks[p.ntoks]))
			goto oom;
		if (p.toks[p.ntoks++].t == T_EOS)
			break;
	}
	rc = parse_all(&p, s);
	if (rc == -ENOMEM || p.err.oom)
		goto oom;
	if (rc) {
		set_err(err, errlen, p.err.p ? p.err.p : "invalid selector");
		goto out;
	}
	if (s->n > 1)
		qsort(s->reqs, s->n, sizeof(*s->reqs), req_cmp);
	*out = s;
	s = NULL;
	rc = 0;
	goto out;
oom:
	set_err(err, errlen, NULL);
	rc = -ENOMEM;
out:
	for (i = 0; i < p.ntoks; i++)
		free(p.toks[i].lit);
	free(p.toks);
	free(p.err.p);
	sel_free(s);
	return rc;
}

/* ---- the metav1.LabelSelector form --------------------------------------- */

/* The strings of a JSON array (borrowed), or -EINVAL if one is not. */
static int json_strings(const json_t *arr, const char ***out, size_t *n)
{
	size_t i;

	*out = NULL;
	*n = 0;
	if (!arr || json_is_null(arr))
		return 0;
	if (!json_is_array(arr))
		return -EINVAL;
	*n = json_array_size(arr);
	*out = calloc(*n ? *n : 1, sizeof(char *));
	if (!*out)
		return -ENOMEM;
	for (i = 0; i < *n; i++) {
		const json_t *v = json_array_get(arr, i);

		if (!json_is_string(v))
			return -EINVAL;
		(*out)[i] = json_string_value(v);
	}
	return 0;
}

static int from_expression(const json_t *x, size_t idx, struct req *r,
			   struct errlist *e, char *err, size_t errlen)
{
	const json_t *jkey = json_object_get(x, "key");
	const json_t *jop = json_object_get(x, "operator");
	const char *key = "", *opname = "", **vals = NULL;
	enum sel_op op;
	size_t n = 0;
	int rc;

	if (jkey && !json_is_string(jkey)) {
		set_errf(err, errlen,
			 "matchExpressions[%zu].key: must be a "
			 "string",
			 idx);
		return -EINVAL;
	}
	if (jop && !json_is_string(jop)) {
		set_errf(err, errlen,
			 "matchExpressions[%zu].operator: must be "
			 "a string",
			 idx);
		return -EINVAL;
	}
	if (jkey)
		key = json_string_value(jkey);
	if (jop)
		opname = json_string_value(jop);
	if (!strcmp(opname, "In")) {
		op = OP_IN;
	} else if (!strcmp(opname, "NotIn")) {
		op = OP_NOTIN;
	} else if (!strcmp(opname, "Exists")) {
		op = OP_EXISTS;
	} else if (!strcmp(opname, "DoesNotExist")) {
		op = OP_NOTEXISTS;
	} else {
		strbuf m = {0};

		buf_quote(&m, opname);
		strbuf_puts(&m, " is not a valid label selector operator");
		set_err(err, errlen, m.oom ? NULL : m.p);
		free(m.p);
		return m.oom ? -ENOMEM : -EINVAL;
	}
	rc = json_strings(json_object_get(x, "values"), &vals, &n);
	if (rc == -EINVAL)
		set_errf(err, errlen,
			 "matchExpressions[%zu].values: must be "
			 "an array of strings",
			 idx);
	if (rc == -ENOMEM)
		set_err(err, errlen, NULL);
	if (!rc) {
		rc = req_init(r, key, op, (char **)vals, n, n == 0, true, e);
		if (rc)
			rc = errs_finish(e, err, errlen);
	}
	free(vals);
	return rc;
}

int sel_from_json(const json_t *ls, sel **out, char *err, size_t errlen)
{
	const json_t *ml, *me, *v;
	size_t cap = 0, i;
	const char *k;
	struct req r;
	sel *s;
	int rc = 0;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s) {
		set_err(err, errlen, NULL);
		return -ENOMEM;
	}
	if (!ls || json_is_null(ls)) {
		s->nothing = true;
		*out = s;
		return 0;
	}
	if (!json_is_object(ls)) {
		set_err(err, errlen, "label selector: must be an object");
		rc = -EINVAL;
		goto fail;
	}
	ml = json_object_get(ls, "matchLabels");
	me = json_object_get(ls, "matchExpressions");
	if (ml && !json_is_null(ml) && !json_is_object(ml)) {
		set_err(err, errlen, "matchLabels: must be an object");
		rc = -EINVAL;
		goto fail;
	}
	if (me && !json_is_null(me) && !json_is_array(me)) {
		set_err(err, errlen, "matchExpressions: must be an array");
		rc = -EINVAL;
		goto fail;
	}
	if (json_is_object(ml)) {
		json_object_foreach((json_t *)ml, k, v)
		{
			struct errlist e = {0};
			const char *val;

			if (!json_is_string(v)) {
				set_errf(
				    err, errlen,
				    "matchLabels: the value of %.200s must "
				    "be a string",
				    k);
				rc = -EINVAL;
				goto fail;
			}
			val = json_string_value(v);
			rc = req_init(&r, k, OP_EQ, (char **)&val, 1, false,
				      true, &e);
			if (rc) {
				rc = errs_finish(&e, err, errlen);
				goto fail;
			}
			if ((rc = sel_push(s, &cap, &r))) {
				req_clear(&r);
				set_err(err, errlen, NULL);
				goto fail;
			}
		}
	}
	for (i = 0; json_is_array(me) && i < json_array_size(me); i++) {
		struct errlist e = {0};
		const json_t *x = json_array_get(me, i);

		if (!json_is_object(x)) {
			set_errf(err, errlen,
				 "matchExpressions[%zu]: must be an object", i);
			rc = -EINVAL;
			goto fail;
		}
		if ((rc = from_expression(x, i, &r, &e, err, errlen)))
			goto fail;
		if ((rc = sel_push(s, &cap, &r))) {
			req_clear(&r);
			set_err(err, errlen, NULL);
			goto fail;
		}
	}
	if (s->n > 1)
		qsort(s->reqs, s->n, sizeof(*s->reqs), req_cmp);
	*out = s;
	return 0;
fail:
	sel_free(s);
	return rc;
}

/* ---- matching and printing ----------------------------------------------- */

static bool has_value(const struct req *r, const char *v)
{
	size_t i;

	for (i = 0; i < r->nvals; i++)
		if (!strcmp(r->vals[i], v))
			return true;
	return false;
}

static bool req_match(const struct req *r, const char *v)
{
	int64_t n;

	switch (r->op) {
	case OP_IN:
	case OP_EQ:
	case OP_DEQ:
		return v && has_value(r, v);
	case OP_NOTIN:
	case OP_NEQ:
		return !v || !has_value(r, v);
	case OP_EXISTS:
		return v != NULL;
	case OP_NOTEXISTS:
		return v == NULL;
	case OP_GT:
	case OP_LT:
		if (!v || !parse_int64(v, &n))
			return false;
		return r->op == OP_GT ? n > r->num : n < r->num;
	}
	return false;
}

bool sel_match_fn(const sel *s, const char *(*get)(const char *key, void *arg),
		  void *arg)
{
	size_t i;

	if (!s || s->nothing)
		return false;
	for (i = 0; i < s->n; i++)
		if (!req_match(&s->reqs[i], get(s->reqs[i].key, arg)))
			return false;
	return true;
}

/* A label's value in a JSON labels object (non-strings count as absent). */
static const char *json_label(const char *key, void *arg)
{
	const json_t *jv = json_object_get(arg, key);

	return json_is_string(jv) ? json_string_value(jv) : NULL;
}

bool sel_match(const sel *s, const json_t *labels)
{
	if (!json_is_object(labels))
		labels = NULL;
	return sel_match_fn(s, json_label, (void *)labels);
}

bool sel_empty(const sel *s)
{
	return s && !s->nothing && s->n == 0;
}

static void req_print(strbuf *b, const struct req *r)
{
	static const char *const ops[] = {
	    [OP_IN] = " in (", [OP_NOTIN] = " notin (", [OP_EQ] = "=",
	    [OP_DEQ] = "==",   [OP_NEQ] = "!=",		[OP_GT] = ">",
	    [OP_LT] = "<",
	};
	char **sorted = r->vals;
	size_t i;

	if (r->op == OP_NOTEXISTS)
		strbuf_putc(b, '!');
	strbuf_puts(b, r->key);
	if (r->op == OP_EXISTS || r->op == OP_NOTEXISTS)
		return;
	strbuf_puts(b, ops[r->op]);
	if (r->nvals > 1) {
		sorted = malloc(r->nvals * sizeof(*sorted));
		if (!sorted) {
			b->oom = true;
			return;
		}
		memcpy(sorted, r->vals, r->nvals * sizeof(*sorted));
		qsort(sorted, r->nvals, sizeof(*sorted), strp_cmp);
	}
	for (i = 0; i < r->nvals; i++) {
		if (i)
			strbuf_putc(b, ',');
		strbuf_puts(b, sorted[i]);
	}
	if (sorted != r->vals)
		free(sorted);
	if (r->op == OP_IN || r->op == OP_NOTIN)
		strbuf_putc(b, ')');
}

char *sel_string(const sel *s)
{
	strbuf b = {0};
	size_t i;

	strbuf_putn(&b, "", 0);
	for (i = 0; s && !s->nothing && i < s->n; i++) {
		if (i)
			strbuf_putc(&b, ',');
		req_print(&b, &s->reqs[i]);
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* ---- field selectors (k8s.io/apimachinery/pkg/fields) -------------------- */

struct fterm {
	char *field;
	char *value;
	bool neq;
};

struct fsel {
	size_t n;
	struct fterm *t;
};

void fsel_free(fsel *f)
{
	size_t i;

	if (!f)
		return;
	for (i = 0; i < f->n; i++) {
		free(f->t[i].field);
		free(f->t[i].value);
	}
	free(f->t);
	free(f);
}

/* fields.UnescapeValue of s[0..n) into a new string; errors into b. */
static int unescape_value(const char *s, size_t n, char **out, strbuf *b)
{
	char *v = malloc(n + 1), tmp[96];
	size_t i, o = 0, k;

	*out = NULL;
	if (!v)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '\\') {
			if (i + 1 == n) {
				strbuf_puts(b,
					    "invalid field selector: invalid "
					    "escape sequence: \\");
				goto bad;
			}
			c = s[++i];
			if (c == '\\' || c == ',' || c == '=') {
				v[o++] = c;
				continue;
			}
			strbuf_puts(b, "invalid field selector: invalid escape "
				       "sequence: \\");
			k = utf8_seq((const unsigned char *)s + i, n - i);
			if (k)
				strbuf_putn(b, s + i, k);
			else
				strbuf_puts(b, "\xef\xbf\xbd");
			goto bad;
		}
		if (c == ',' || c == '=') {
			snprintf(tmp, sizeof(tmp),
				 "invalid field selector: unescaped character "
				 "in value: %d",
				 c);
			strbuf_puts(b, tmp);
			goto bad;
		}
		v[o++] = c;
	}
	v[o] = '\0';
	*out = v;
	return 0;
bad:
	free(v);
	return b->oom ? -ENOMEM : -EINVAL;
}

struct span {
	const char *p;
	size_t n;
};

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	size_t n = x->n < y->n ? x->n : y->n;
	int c = memcmp(x->p, y->p, n);

	if (c)
		return c;
	return x->n < y->n ? -1 : x->n > y->n;
}

/* Split a term at its first operator: != == = (tried in that order). */
static bool split_term(struct span t, size_t *oppos, size_t *oplen, bool *neq)
{
	size_t i;

	for (i = 0; i < t.n; i++) {
		if (t.p[i] == '!' && i + 1 < t.n && t.p[i + 1] == '=') {
			*neq = true;
			*oplen = 2;
		} else if (t.p[i] == '=') {
			*neq = false;
			*oplen = i + 1 < t.n && t.p[i + 1] == '=' ? 2 : 1;
		} else {
			continue;
		}
		*oppos = i;
		return true;
	}
	return false;
}

int fsel_parse(const char *text, fsel **out, char *err, size_t errlen)
{
	struct span *parts = NULL;
	size_t n = 0, i, start = 0, len;
	strbuf b = {0};
	bool slash = false;
	fsel *f = NULL;
	int rc = -ENOMEM;

	*out = NULL;
	if (!text)
		text = "";
	len = strnlen(text, SEL_MAX_LEN + 1);
	if (len > SEL_MAX_LEN) {
		set_errf(err, errlen, "field selector is longer than %d bytes",
			 SEL_MAX_LEN);
		return -EINVAL;
	}
	f = calloc(1, sizeof(*f));
	/* at most one term per byte, plus one */
	parts = calloc(len + 1, sizeof(*parts));
	if (!f || !parts)
		goto oom;
	for (i = 0; len && i <= len; i++) {
		if (i < len && slash) {
			slash = false;
		} else if (i < len && text[i] == '\\') {
			slash = true;
		} else if (i == len || text[i] == ',') {
			parts[n].p = text + start;
			parts[n++].n = i - start;
			start = i + 1;
		}
	}
	if (n > 1)
		qsort(parts, n, sizeof(*parts), span_cmp);
	f->t = calloc(n ? n : 1, sizeof(*f->t));
	if (!f->t)
		goto oom;
	for (i = 0; i < n; i++) {
		struct fterm *t = &f->t[f->n];
		size_t op, oplen;

		if (!parts[i].n)
			continue;
		if (!split_term(parts[i], &op, &oplen, &t->neq)) {
			set_errf(err, errlen,
				 "invalid selector: '%s'; can't understand "
				 "'%.*s'",
				 text, (int)parts[i].n, parts[i].p);
			rc = -EINVAL;
			goto out;
		}
		t->field = strndup(parts[i].p, op);
		if (!t->field)
			goto oom;
		f->n++;
		rc = unescape_value(parts[i].p + op + oplen,
				    parts[i].n - op - oplen, &t->value, &b);
		if (rc == -EINVAL) {
			set_err(err, errlen, b.p);
			goto out;
		}
		if (rc)
			goto oom;
	}
	*out = f;
	f = NULL;
	rc = 0;
	goto out;
oom:
	set_err(err, errlen, NULL);
	rc = -ENOMEM;
out:
	free(b.p);
	free(parts);
	fsel_free(f);
	return rc;
}

int fsel_check_fields(const fsel *f, const char *const *supported, char *err,
		      size_t errlen)
{
	size_t i, j;

	for (i = 0; f && i < f->n; i++) {
		bool ok = false;

		for (j = 0; supported && supported[j] && !ok; j++)
			ok = !strcmp(supported[j], f->t[i].field);
		if (!ok) {
			set_errf(err, errlen, "field label not supported: %s",
				 f->t[i].field);
			return -EINVAL;
		}
	}
	return 0;
}

bool fsel_match(const fsel *f, const char *(*get)(const char *field, void *arg),
		void *arg)
{
	size_t i;

	for (i = 0; f && i < f->n; i++) {
		const char *v = get(f->t[i].field, arg);
		bool eq = !strcmp(v ? v : "", f->t[i].value);

		if (eq == f->t[i].neq)
			return false;
	}
	return true;
}

bool fsel_empty(const fsel *f)
{
	return !f || f->n == 0;
}

char *fsel_string(const fsel *f)
{
	strbuf b = {0};
	size_t i;
	const char *v;

	strbuf_putn(&b, "", 0);
	for (i = 0; f && i < f->n; i++) {
		if (i)
			strbuf_putc(&b, ',');
		strbuf_puts(&b, f->t[i].field);
		strbuf_puts(&b, f->t[i].neq ? "!=" : "=");
		for (v = f->t[i].value; *v; v++) {
			if (*v == '\\' || *v == ',' || *v == '=')
				strbuf_putc(&b, '\\');
			strbuf_putc(&b, *v);
		}
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
