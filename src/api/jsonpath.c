/*
 * jsonpath.c -- parse and evaluate Kubernetes JSONPath expressions.
 *
 * The parser reads the expression the way client-go's does, because its
 * quirks are the dialect: it scans a template, and inside each {action} it
 * builds a flat list of steps (field, index or slice, filter, wildcard,
 * recursive descent, union, literal). A union member, a quoted dict key
 * and each side of a filter are parsed again as actions of their own; that
 * nesting is the only recursion, and JP_MAX_DEPTH bounds it.
 *
 * Evaluation threads a list of values through the steps of a list: each
 * step maps the current values to the next ones. Values are jansson
 * references; a vector owns one reference per entry.
 */
#include "api/jsonpath.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind {
	N_LIST,	     /* kids: steps applied in turn */
	N_TEXT,	     /* lit: a string */
	N_FIELD,     /* name */
	N_WILDCARD,  /* .* */
	N_RECURSIVE, /* .. */
	N_ARRAY,     /* params: [start:end:step] */
	N_FILTER,    /* left, right (lists), op */
	N_INT,	     /* lit */
	N_FLOAT,     /* lit */
	N_BOOL,	     /* lit */
	N_UNION,     /* kids: lists, results concatenated */
	N_IDENT,     /* name: always an evaluation error */
};

enum fop { F_EXISTS, F_LT, F_GT, F_EQ, F_NE, F_LE, F_GE, F_BAD };

struct param {
	bool known, derived;
	int64_t v;
};

struct node {
	enum kind kind;
	struct node **kids;
	size_t nkids, capkids;
	char *name;
	json_t *lit;
	struct param params[3];
	struct node *left, *right;
	enum fop op;
};

struct jp {
	struct node *root;
};

/* ---- nodes ----------------------------------------------------------------
 */

static void node_free(struct node *n)
{
	size_t i;

	if (!n)
		return;
	for (i = 0; i < n->nkids; i++)
		node_free(n->kids[i]);
	free(n->kids);
	free(n->name);
	json_decref(n->lit);
	node_free(n->left);
	node_free(n->right);
	free(n);
}

static struct node *node_new(enum kind k)
{
	struct node *n = calloc(1, sizeof(*n));

	if (n)
		n->kind = k;
	return n;
}

/* Append kid to list (takes it, frees it on failure). */
static int node_add(struct node *list, struct node *kid)
{
	if (!kid)
		return -ENOMEM;
	if (list->nkids == list->capkids) {
		size_t nc = list->capkids ? list->capkids * 2 : 4;
		struct node **k = realloc(list->kids, nc * sizeof(*k));

		if (!k) {
			node_free(kid);
			return -ENOMEM;
		}
		list->kids = k;
		list->capkids = nc;
	}
	list->kids[list->nkids++] = kid;
	return 0;
}

static struct node *node_lit(enum kind k, json_t *lit)
{
	struct node *n;

	if (!lit)
		return NULL;
	n = node_new(k);
	if (!n) {
		json_decref(lit);
		return NULL;
	}
	n->lit = lit;
	return n;
}

/* ---- the parser -----------------------------------------------------------
 */

struct parser {
	const char *in;
	size_t len, pos;
	int depth;
	char *err;
	size_t errlen;
};

static int perr(struct parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int perr(struct parser *p, const char *fmt, ...)
{
	va_list ap;

	if (p->err && p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->err, p->errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int poom(struct parser *p)
{
	if (p->err && p->errlen)
		snprintf(p->err, p->errlen, "out of memory");
	return -ENOMEM;
}

static bool starts(const struct parser *p, const char *s)
{
	size_t n = strlen(s);

	return p->len - p->pos >= n && !memcmp(p->in + p->pos, s, n);
}

/* The byte at pos, or -1 at the end. */
static int peekc(const struct parser *p)
{
	return p->pos < p->len ? (unsigned char)p->in[p->pos] : -1;
}

static bool is_space(int c)
{
	return c == ' ' || c == '\t';
}

static bool is_eol(int c)
{
	return c == '\r' || c == '\n';
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* Letters, digits and '_'; any non-ASCII byte counts as a letter. */
static bool is_alnum_(int c)
{
	return c == '_' || is_digit(c) || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || c >= 0x80;
}

static bool is_terminator(int c)
{
	if (c < 0 || is_space(c) || is_eol(c))
		return true;
	return strchr(".,[]$@{}", c) != NULL;
}

static int parse_template(const char *s, size_t n, int depth,
			  struct node **root, char *err, size_t errlen);

/* Parse "{" text "}" and return its first action, a list. */
static int parse_action(struct parser *p, const char *text, size_t n,
			struct node **out)
{
	struct node *root = NULL;
	char *s;
	int rc;

	*out = NULL;
	s = malloc(n + 3);
	if (!s)
		return poom(p);
	s[0] = '{';
	memcpy(s + 1, text, n);
	s[n + 1] = '}';
	s[n + 2] = '\0';
	rc = parse_template(s, n + 2, p->depth + 1, &root, p->err, p->errlen);
	free(s);
	if (rc)
		return rc;
	/* The template starts with '{', so its first node is that action. */
	*out = root->kids[0];
	root->kids[0] = NULL;
	node_free(root);
	return 0;
}

/* Go's strconv.Atoi for 64-bit int. */
static bool atoi64(const char *s, size_t n, int64_t *out)
{
	uint64_t v = 0, lim;
	bool neg = false;
	size_t i = 0;

	if (n && (s[0] == '+' || s[0] == '-'))
		neg = s[i++] == '-';
	if (i == n)
		return false;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		if (v > (lim - (uint64_t)(s[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

static int parse_number(struct parser *p, struct node *cur)
{
	size_t start = p->pos;
	char buf[64], *end;
	int64_t iv;
	double d;
	size_t n;

	if (peekc(p) == '+' || peekc(p) == '-')
		p->pos++;
	while (peekc(p) == '.' || is_digit(peekc(p)))
		p->pos++;
	n = p->pos - start;
	if (atoi64(p->in + start, n, &iv))
		return node_add(cur, node_lit(N_INT, json_integer(iv)));
	if (n < sizeof(buf)) {
		memcpy(buf, p->in + start, n);
		buf[n] = '\0';
		d = strtod(buf, &end);
		if (end != buf && !*end && isfinite(d))
			return node_add(cur, node_lit(N_FLOAT, json_real(d)));
	}
	return perr(p, "cannot parse number %.*s", (int)(n > 64 ? 64 : n),
		    p->in + start);
}

static int parse_identifier(struct parser *p, struct node *cur)
{
	size_t start = p->pos, n;
	struct node *id;

	while (!is_terminator(peekc(p)))
		p->pos++;
	n = p->pos - start;
	if (n == 4 && !memcmp(p->in + start, "true", 4))
		return node_add(cur, node_lit(N_BOOL, json_true()));
	if (n == 5 && !memcmp(p->in + start, "false", 5))
		return node_add(cur, node_lit(N_BOOL, json_false()));
	id = node_new(N_IDENT);
	if (id && !(id->name = strndup(p->in + start, n))) {
		free(id);
		id = NULL;
	}
	return node_add(cur, id) ? poom(p) : 0;
}

/* A field name up to the next unescaped terminator; backslashes dropped. */
static int parse_field(struct parser *p, struct node *cur)
{
	size_t start = p->pos, o = 0, i;
	struct node *f;
	int c;

	for (;;) {
		c = peekc(p);
		if (c == '\\') {
			p->pos += p->pos + 1 < p->len ? 2 : 1;
			continue;
		}
		if (is_terminator(c))
			break;
		p->pos++;
	}
	if (p->pos - start == 1 && p->in[start] == '*')
		return node_add(cur, node_new(N_WILDCARD)) ? poom(p) : 0;
	f = node_new(N_FIELD);
	if (!f || !(f->name = malloc(p->pos - start + 1))) {
		free(f);
		return poom(p);
	}
	for (i = start; i < p->pos; i++)
		if (p->in[i] != '\\')
			f->name[o++] = p->in[i];
	f->name[o] = '\0';
	return node_add(cur, f) ? poom(p) : 0;
}

static int parse_recursive(struct parser *p, struct node *cur)
{
	if (cur->nkids && cur->kids[cur->nkids - 1]->kind == N_RECURSIVE)
		return perr(p, "invalid multiple recursive descent");
	p->pos += 2;
	if (node_add(cur, node_new(N_RECURSIVE)))
		return poom(p);
	if (is_alnum_(peekc(p)))
		return parse_field(p, cur);
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static size_t put_utf8(char *o, uint32_t r)
{
	if (r < 0x80) {
		o[0] = (char)r;
		return 1;
	}
	if (r < 0x800) {
		o[0] = (char)(0xc0 | (r >> 6));
		o[1] = (char)(0x80 | (r & 0x3f));
		return 2;
	}
	if (r < 0x10000) {
		o[0] = (char)(0xe0 | (r >> 12));
		o[1] = (char)(0x80 | ((r >> 6) & 0x3f));
		o[2] = (char)(0x80 | (r & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (r >> 18));
	o[1] = (char)(0x80 | ((r >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((r >> 6) & 0x3f));
	o[3] = (char)(0x80 | (r & 0x3f));
	return 4;
}

/*
 * Go's strconv.UnquoteChar rules over s[0..n) (the text between the quotes)
 * into o (room for 4*n bytes); returns the length or -1 on a syntax error.
 */
static long unquote(const char *s, size_t n, char quote, char *o)
{
	size_t i = 0, len = 0;

	while (i < n) {
		int c = (unsigned char)s[i++], k, d;
		uint32_t r = 0;

		if (c == quote)
			return -1;
		if (c != '\\') {
			o[len++] = (char)c;
			continue;
		}
		if (i == n)
			return -1;
		c = (unsigned char)s[i++];
		switch (c) {
		case 'a':
			o[len++] = '\a';
			break;
		case 'b':
			o[len++] = '\b';
			break;
		case 'f':
			o[len++] = '\f';
			break;
		case 'n':
			o[len++] = '\n';
			break;
		case 'r':
			o[len++] = '\r';
			break;
		case 't':
			o[len++] = '\t';
			break;
		case 'v':
			o[len++] = '\v';
			break;
		case '\\':
			o[len++] = '\\';
			break;
		case '\'':
		case '"':
			if (c != quote)
				return -1;
			o[len++] = (char)c;
			break;
		case 'x':
		case 'u':
		case 'U':
			k = c == 'x' ? 2 : c == 'u' ? 4 : 8;
			if (n - i < (size_t)k)
				return -1;
			for (; k > 0; k--) {
				if ((d = hexval((unsigned char)s[i++])) < 0)
					return -1;
				r = (r << 4) | (uint32_t)d;
			}
			if (c == 'x') {
				o[len++] = (char)r;
				break;
			}
			if (r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff))
				return -1;
			len += put_utf8(o + len, r);
			break;
		case '0':
		case '1':
		case '2':
		case '3':
		case '4':
		case '5':
		case '6':
		case '7':
			r = (uint32_t)(c - '0');
			if (n - i < 2)
				return -1;
			for (k = 0; k < 2; k++) {
				d = (unsigned char)s[i++];
				if (d < '0' || d > '7')
					return -1;
				r = (r << 3) | (uint32_t)(d - '0');
			}
			if (r > 255)
				return -1;
			o[len++] = (char)r;
			break;
		default:
			return -1;
		}
	}
	return (long)len;
}

static int parse_quote(struct parser *p, struct node *cur, char q)
{
	size_t start = p->pos - 1; /* at the opening quote */
	json_t *str;
	char *o;
	long n;
	int c;

	for (;;) {
		c = peekc(p);
		if (c < 0 || c == '\n')
			return perr(p, "unterminated quoted string");
		p->pos++;
		if (c == q && p->in[p->pos - 2] != '\\')
			break;
	}
	o = malloc(4 * (p->pos - start) + 1);
	if (!o)
		return poom(p);
	n = unquote(p->in + start + 1, p->pos - start - 2, q, o);
	if (n < 0) {
		free(o);
		return perr(p, "unquote string %.*s error invalid syntax",
			    (int)(p->pos - start > 256 ? 256 : p->pos - start),
			    p->in + start);
	}
	str = json_stringn(o, (size_t)n);
	free(o);
	if (!str)
		return perr(p, "unquote string %.*s error invalid UTF-8",
			    (int)(p->pos - start > 256 ? 256 : p->pos - start),
			    p->in + start);
	return node_add(cur, node_lit(N_TEXT, str)) ? poom(p) : 0;
}

/* ^(-?[0-9]*)(:-?[0-9]*)?(:-?[0-9]*)?$ : the three groups as spans. */
static bool match_slice(const char *s, size_t n, size_t start[3], size_t len[3])
{
	size_t i = 0, g;

	for (g = 0; g < 3; g++) {
		start[g] = i;
		len[g] = 0;
		if (g > 0) {
			if (i == n || s[i] != ':')
				continue;
			i++;
		}
		if (i < n && s[i] == '-')
			i++;
		while (i < n && is_digit(s[i]))
			i++;
		len[g] = i - start[g];
	}
	return i == n;
}

static int parse_union(struct parser *p, struct node *cur, const char *text,
		       size_t n)
{
	struct node *u = node_new(N_UNION), *list;
	size_t i = 0, j, a, b;
	char *part;
	int rc;

	if (!u)
		return poom(p);
	while (i <= n) {
		for (j = i; j < n && text[j] != ','; j++)
			;
		a = i;
		b = j;
		while (a < b && text[a] == ' ')
			a++;
		while (b > a && text[b - 1] == ' ')
			b--;
		part = malloc(b - a + 3);
		if (!part) {
			node_free(u);
			return poom(p);
		}
		part[0] = '[';
		memcpy(part + 1, text + a, b - a);
		part[b - a + 1] = ']';
		part[b - a + 2] = '\0';
		rc = parse_action(p, part, b - a + 2, &list);
		free(part);
		if (!rc && node_add(u, list))
			rc = poom(p);
		if (rc) {
			node_free(u);
			return rc;
		}
		i = j + 1;
	}
	return node_add(cur, u) ? poom(p) : 0;
}

static int parse_array(struct parser *p, struct node *cur)
{
	size_t start = p->pos, n, i, gs[3], gl[3];
	const char *text = p->in + start;
	struct node *a, *list;
	int rc;

	for (;;) {
		int c = peekc(p);

		if (c < 0 || c == '\n')
			return perr(p, "unterminated array");
		p->pos++;
		if (c == ']')
			break;
	}
	n = p->pos - start - 1;
	if (n == 1 && text[0] == '*')
		text = ":";
	if (memchr(text, ',', n))
		return parse_union(p, cur, text, n);
	if (n >= 2 && text[0] == '\'' && text[n - 1] == '\'' &&
	    !memchr(text + 1, '\'', n - 2)) {
		/* ['a.b'] is .a.b */
		char *f = malloc(n);

		if (!f)
			return poom(p);
		f[0] = '.';
		memcpy(f + 1, text + 1, n - 2);
		rc = parse_action(p, f, n - 1, &list);
		free(f);
		if (rc)
			return rc;
		for (i = 0; i < list->nkids && !rc; i++) {
			rc = node_add(cur, list->kids[i]);
			list->kids[i] = NULL;
		}
		node_free(list);
		return rc ? poom(p) : 0;
	}
	if (!match_slice(text, n, gs, gl))
		return perr(p, "invalid array index %.*s",
			    (int)(n > 256 ? 256 : n), text);
	a = node_new(N_ARRAY);
	if (!a)
		return poom(p);
	for (i = 0; i < 3; i++) {
		const char *v = text + gs[i];
		size_t vl = gl[i];

		if (vl == 0) {
			if (i == 1) {
				a->params[1].known = true;
				a->params[1].derived = true;
				a->params[1].v =
				    (int64_t)((uint64_t)a->params[0].v + 1);
			}
			continue;
		}
		if (i > 0) {
			v++;
			vl--;
			if (vl == 0)
				continue;
		}
		a->params[i].known = true;
		if (!atoi64(v, vl, &a->params[i].v)) {
			node_free(a);
			return perr(p, "array index %.*s is not a number",
				    (int)(vl > 64 ? 64 : vl), v);
		}
	}
	return node_add(cur, a) ? poom(p) : 0;
}

static enum fop filter_op(const char *s, size_t n)
{
	static const struct {
		const char *s;
		enum fop op;
	} ops[] = {
	    {"<", F_LT},  {">", F_GT},	{"==", F_EQ},
	    {"!=", F_NE}, {"<=", F_LE}, {">=", F_GE},
	};
	size_t i;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strlen(ops[i].s) == n && !memcmp(ops[i].s, s, n))
			return ops[i].op;
	return F_BAD;
}

static bool is_opchar(char c)
{
	return c == '!' || c == '<' || c == '>' || c == '=';
}

static int parse_filter(struct parser *p, struct node *cur)
{
	bool begin = false, end = false;
	size_t start, n, l, o;
	const char *text;
	struct node *f;
	int c, pair = 0, rc;

	p->pos += 3;
	start = p->pos;
	for (;;) {
		c = peekc(p);
		if (c < 0 || c == '\n')
			return perr(p, "unterminated filter");
		p->pos++;
		if (c == '"' || c == '\'') {
			if (!begin) {
				begin = true;
				pair = c;
			} else if (p->in[p->pos - 2] != '\\' && c == pair) {
				end = true;
			}
		} else if (c == ')' && begin == end) {
			break;
		}
	}
	if (peekc(p) != ']')
		return perr(p, "unclosed array expect ]");
	p->pos++;
	text = p->in + start;
	n = p->pos - start - 2;
	f = node_new(N_FILTER);
	if (!f)
		return poom(p);
	/* ^([^!<>=]+)([!<>=]+)(.+?)$ */
	for (l = 0; l < n && !is_opchar(text[l]); l++)
		;
	for (o = l; o < n && is_opchar(text[o]); o++)
		;
	if (o == n && o - l > 1)
		o--; /* the right side takes at least one byte */
	if (l == 0 || o == l || o == n) {
		f->op = F_EXISTS;
		rc = parse_action(p, text, n, &f->left);
		if (!rc && !(f->right = node_new(N_LIST)))
			rc = poom(p);
	} else {
		f->op = filter_op(text + l, o - l);
		rc = parse_action(p, text, l, &f->left);
		if (!rc)
			rc = parse_action(p, text + o, n - o, &f->right);
	}
	if (rc) {
		node_free(f);
		return rc;
	}
	return node_add(cur, f) ? poom(p) : 0;
}

/* Inside {...}: steps into cur until the closing brace. */
static int parse_inside(struct parser *p, struct node *cur)
{
	int c, rc;

	for (;;) {
		if (starts(p, "}")) {
			p->pos++;
			return 0;
		}
		if (starts(p, "[?("))
			rc = parse_filter(p, cur);
		else if (starts(p, ".."))
			rc = parse_recursive(p, cur);
		else {
			c = peekc(p);
			if (c < 0 || is_eol(c))
				return perr(p, "unclosed action");
			p->pos++;
			if (c == ' ' || c == '@' || c == '$') {
				rc = 0;
			} else if (c == '[') {
				rc = parse_array(p, cur);
			} else if (c == '"' || c == '\'') {
				rc = parse_quote(p, cur, (char)c);
			} else if (c == '.') {
				rc = parse_field(p, cur);
			} else if (c == '+' || c == '-' || is_digit(c)) {
				p->pos--;
				rc = parse_number(p, cur);
			} else if (is_alnum_(c)) {
				p->pos--;
				rc = parse_identifier(p, cur);
			} else if (isprint(c)) {
				rc = perr(p,
					  "unrecognized character in action: "
					  "U+%04X '%c'",
					  c, c);
			} else {
				rc = perr(p,
					  "unrecognized character in action: "
					  "U+%04X",
					  c);
			}
		}
		if (rc)
			return rc;
	}
}

static int parse_template(const char *s, size_t n, int depth,
			  struct node **root, char *err, size_t errlen)
{
	struct parser p = {
	    .in = s, .len = n, .depth = depth, .err = err, .errlen = errlen};
	struct node *list;
	size_t text;
	int rc = 0;

	*root = NULL;
	if (depth > JP_MAX_DEPTH)
		return perr(&p, "expression nested deeper than %d",
			    JP_MAX_DEPTH);
	if (!(*root = node_new(N_LIST)))
		return poom(&p);
	while (p.pos < p.len && !rc) {
		const char *brace = memchr(s + p.pos, '{', p.len - p.pos);

		text = brace ? (size_t)(brace - s) : p.len;
		if (text > p.pos) {
			json_t *t = json_stringn(s + p.pos, text - p.pos);

			if (!t) {
				rc = perr(&p, "text is not valid UTF-8");
				break;
			}
			if (node_add(*root, node_lit(N_TEXT, t))) {
				rc = poom(&p);
				break;
			}
		}
		p.pos = text;
		if (!brace)
			break;
		p.pos++;
		if (!(list = node_new(N_LIST)) || node_add(*root, list)) {
			rc = poom(&p);
			break;
		}
		rc = parse_inside(&p, list);
	}
	if (rc) {
		node_free(*root);
		*root = NULL;
	}
	return rc;
}

int jp_parse(const char *expr, jp **out, char *err, size_t errlen)
{
	struct node *root = NULL;
	size_t n;
	char *s;
	int rc;

	*out = NULL;
	if (!expr)
		expr = "";
	n = strnlen(expr, JP_MAX_LEN + 1);
	if (n > JP_MAX_LEN) {
		if (err && errlen)
			snprintf(err, errlen,
				 "JSONPath expression is longer than %d bytes",
				 JP_MAX_LEN);
		return -EINVAL;
	}
	if (memchr(expr, '{', n)) {
		rc = parse_template(expr, n, 0, &root, err, errlen);
	} else {
		s = malloc(n + 3);
		if (!s) {
			if (err && errlen)
				snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		s[0] = '{';
		memcpy(s + 1, expr, n);
		s[n + 1] = '}';
		s[n + 2] = '\0';
		rc = parse_template(s, n + 2, 0, &root, err, errlen);
		free(s);
	}
	if (rc)
		return rc;
	*out = calloc(1, sizeof(**out));
	if (!*out) {
		node_free(root);
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	(*out)->root = root;
	return 0;
}

void jp_free(jp *p)
{
	if (!p)
		return;
	node_free(p->root);
	free(p);
}

/* ---- evaluation -----------------------------------------------------------
 */

/* An evaluation error: the whole result is empty. */
#define EVAL_ERR (-EINVAL)

struct vec {
	json_t **v;
	size_t n, cap;
};

static void vec_free(struct vec *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		json_decref(a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

/* Append a new reference to j (NULL means OOM upstream). */
static int vec_add(struct vec *a, json_t *j)
{
	if (!j)
		return -ENOMEM;
	if (a->n == a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 8;
		json_t **v = realloc(a->v, nc * sizeof(*v));

		if (!v)
			return -ENOMEM;
		a->v = v;
		a->cap = nc;
	}
	a->v[a->n++] = json_incref(j);
	return 0;
}

/* Append j and drop the caller's reference to it. */
static int vec_add_new(struct vec *a, json_t *j)
{
	int rc = vec_add(a, j);

	json_decref(j);
	return rc;
}

static int vec_copy(struct vec *dst, const struct vec *src)
{
	size_t i;
	int rc;

	for (i = 0; i < src->n; i++)
		if ((rc = vec_add(dst, src->v[i])))
			return rc;
	return 0;
}

static int walk(const struct node *n, const struct vec *in, struct vec *out);

/*
 * The steps of a list in turn. On an evaluation error, out holds the input
 * of the step that failed, as client-go returns it (the existence filter
 * looks at that).
 */
static int eval_list(const struct node *list, const struct vec *in,
		     struct vec *out)
{
	struct vec cur = {0}, next = {0};
	size_t i;
	int rc;

	if ((rc = vec_copy(&cur, in)))
		goto out;
	for (i = 0; i < list->nkids; i++) {
		rc = walk(list->kids[i], &cur, &next);
		if (rc) {
			vec_free(&next);
			break;
		}
		vec_free(&cur);
		cur = next;
		next = (struct vec){0};
	}
out:
	*out = cur;
	return rc;
}

static int eval_field(const struct node *n, const struct vec *in,
		      struct vec *out)
{
	size_t i;
	int rc;

	for (i = 0; i < in->n; i++) {
		json_t *v = json_is_object(in->v[i])
				? json_object_get(in->v[i], n->name)
				: NULL;

		if (v && (rc = vec_add(out, v)))
			return rc;
	}
	return 0;
}

static int eval_array(const struct node *n, const struct vec *in,
		      struct vec *out)
{
	int64_t len, p0, p1, step, i;
	size_t k;
	int rc;

	for (k = 0; k < in->n; k++) {
		const json_t *a = in->v[k];

		if (json_is_null(a))
			continue;
		if (!json_is_array(a))
			return EVAL_ERR;
		len = (int64_t)json_array_size(a);
		p0 = n->params[0].known ? n->params[0].v : 0;
		if (p0 < 0)
			p0 += len;
		p1 = n->params[1].known ? n->params[1].v : len;
		if (p1 < 0 || (p1 == 0 && n->params[1].derived))
			p1 += len;
		if (p1 == p0)
			return 0; /* client-go stops here, with what it has */
		if (p0 >= len || p0 < 0 || p1 > len || p1 < 0 || p0 > p1)
			return EVAL_ERR;
		step = 1;
		if (n->params[2].known) {
			if (n->params[2].v <= 0)
				return EVAL_ERR;
			step = n->params[2].v;
		}
		for (i = p0; i < p1;) {
			if ((rc = vec_add(out, json_array_get(a, (size_t)i))))
				return rc;
			if (p1 - i <= step)
				break;
			i += step;
		}
	}
	return 0;
}

/* The children of v, as .* and .. see them: a string's are its bytes. */
static int children(const json_t *v, struct vec *out)
{
	const char *key, *s;
	json_t *x;
	size_t i, n;
	int rc;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key,
				    x) if ((rc = vec_add(out, x))) return rc;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i,
				   x) if ((rc = vec_add(out, x))) return rc;
	} else if (json_is_string(v)) {
		s = json_string_value(v);
		n = json_string_length(v);
		for (i = 0; i < n; i++)
			if ((rc = vec_add_new(
				 out, json_integer((unsigned char)s[i]))))
				return rc;
	}
	return 0;
}

static bool has_children(const json_t *v)
{
	if (json_is_object(v))
		return json_object_size(v) > 0;
	if (json_is_array(v))
		return json_array_size(v) > 0;
	if (json_is_string(v))
		return json_string_length(v) > 0;
	return false;
}

/* Every value with children, in pre-order; iterative. */
static int eval_recursive(const struct vec *in, struct vec *out)
{
	struct vec stack = {0};
	size_t i;
	int rc = 0;

	for (i = in->n; i-- > 0;)
		if ((rc = vec_add(&stack, in->v[i])))
			goto out;
	while (stack.n) {
		json_t *v = stack.v[--stack.n], *x;
		size_t j, n;

		if (has_children(v) && !json_is_string(v)) {
			rc = vec_add(out, v);
			/* push the children, last first */
			n = json_is_array(v) ? json_array_size(v)
					     : json_object_size(v);
			if (!rc && json_is_array(v)) {
				for (j = n; j-- > 0 && !rc;)
					rc = vec_add(&stack,
						     json_array_get(v, j));
			} else if (!rc) {
				size_t base = stack.n;
				const char *key;

				json_object_foreach(v, key, x)
				{
					if ((rc = vec_add(&stack, x)))
						break;
				}
				/* reverse what was pushed */
				for (j = 0; !rc && j < (stack.n - base) / 2;
				     j++) {
					json_t *t = stack.v[base + j];

					stack.v[base + j] =
					    stack.v[stack.n - 1 - j];
					stack.v[stack.n - 1 - j] = t;
				}
			}
		} else if (has_children(v)) {
			rc = vec_add(out,
				     v); /* a string: its bytes are leaves */
		}
		json_decref(v);
		if (rc)
			goto out;
	}
out:
	vec_free(&stack);
	return rc;
}

/* ---- filters: the comparisons of text/template ----------------------------
 */

enum vkind { K_BAD, K_BOOL, K_INT, K_REAL, K_STR };

static enum vkind vkind(const json_t *v)
{
	if (json_is_boolean(v))
		return K_BOOL;
	if (json_is_integer(v))
		return K_INT;
	if (json_is_real(v))
		return K_REAL;
	if (json_is_string(v))
		return K_STR;
	return K_BAD;
}

static int cmp_str(const json_t *a, const json_t *b)
{
	size_t la = json_string_length(a), lb = json_string_length(b);
	int c = memcmp(json_string_value(a), json_string_value(b),
		       la < lb ? la : lb);

	if (c)
		return c < 0 ? -1 : 1;
	return la < lb ? -1 : la > lb;
}

/* Integers compare exactly; an integer and a real compare as doubles. */
static int cmp_num(const json_t *a, const json_t *b)
{
	double x, y;

	if (json_is_integer(a) && json_is_integer(b)) {
		json_int_t i = json_integer_value(a), j = json_integer_value(b);

		return i < j ? -1 : i > j;
	}
	x = json_number_value(a);
	y = json_number_value(b);
	return x < y ? -1 : x > y;
}

/* Whether a and b are equal; EVAL_ERR when they cannot be compared. */
static int t_eq(const json_t *a, const json_t *b, bool *res)
{
	enum vkind ka = vkind(a), kb = vkind(b);
	bool num =
	    (ka == K_INT || ka == K_REAL) && (kb == K_INT || kb == K_REAL);

	if (ka == K_BAD || kb == K_BAD || (ka != kb && !num))
		return EVAL_ERR;
	if (num)
		*res = cmp_num(a, b) == 0;
	else if (ka == K_BOOL)
		*res = json_is_true(a) == json_is_true(b);
	else
		*res = cmp_str(a, b) == 0;
	return 0;
}

static int t_lt(const json_t *a, const json_t *b, bool *res)
{
	enum vkind ka = vkind(a), kb = vkind(b);
	bool num =
	    (ka == K_INT || ka == K_REAL) && (kb == K_INT || kb == K_REAL);

	if (ka == K_BAD || kb == K_BAD || ka == K_BOOL || kb == K_BOOL ||
	    (ka != kb && !num))
		return EVAL_ERR;
	*res = num ? cmp_num(a, b) < 0 : cmp_str(a, b) < 0;
	return 0;
}

static int compare(enum fop op, const json_t *a, const json_t *b, bool *pass)
{
	bool lt = false, eq = false;
	int rc = 0;

	switch (op) {
	case F_EQ:
	case F_NE:
		rc = t_eq(a, b, &eq);
		*pass = op == F_EQ ? eq : !eq;
		break;
	case F_LT:
	case F_GE:
		rc = t_lt(a, b, &lt);
		*pass = op == F_LT ? lt : !lt;
		break;
	case F_LE:
	case F_GT:
		rc = t_lt(a, b, &lt);
		if (!rc && !lt)
			rc = t_eq(a, b, &eq);
		*pass = op == F_LE ? (lt || eq) : !(lt || eq);
		break;
	default:
		rc = EVAL_ERR;
	}
	return rc;
}

/* One side of a comparison: exactly one value, or skip (1), or error. */
static int one_side(const struct node *list, json_t *elem, json_t **val)
{
	struct vec one = {0}, r = {0};
	int rc;

	*val = NULL;
	if ((rc = vec_add(&one, elem)))
		return rc;
	rc = eval_list(list, &one, &r);
	vec_free(&one);
	if (!rc && r.n == 1)
		*val = json_incref(r.v[0]);
	else if (!rc)
		rc = r.n == 0 ? 1 : EVAL_ERR;
	vec_free(&r);
	return rc;
}

static int eval_filter(const struct node *n, const struct vec *in,
		       struct vec *out)
{
	json_t *elem, *l, *r;
	size_t k, i;
	bool pass;
	int rc;

	for (k = 0; k < in->n; k++) {
		if (!json_is_array(in->v[k]))
			return EVAL_ERR;
		json_array_foreach(in->v[k], i, elem)
		{
			if (n->op == F_EXISTS) {
				struct vec one = {0}, res = {0};

				rc = vec_add(&one, elem);
				if (!rc)
					rc = eval_list(n->left, &one, &res);
				pass = res.n > 0;
				vec_free(&one);
				vec_free(&res);
				if (rc == -ENOMEM)
					return rc;
				if (pass && (rc = vec_add(out, elem)))
					return rc;
				continue;
			}
			rc = one_side(n->left, elem, &l);
			if (rc == 1)
				continue;
			if (rc)
				return rc;
			rc = one_side(n->right, elem, &r);
			if (rc) {
				json_decref(l);
				if (rc == 1)
					continue;
				return rc;
			}
			rc = compare(n->op, l, r, &pass);
			json_decref(l);
			json_decref(r);
			if (rc)
				return rc;
			if (pass && (rc = vec_add(out, elem)))
				return rc;
		}
	}
	return 0;
}

static int walk(const struct node *n, const struct vec *in, struct vec *out)
{
	struct vec tmp;
	size_t i;
	int rc = 0;

	switch (n->kind) {
	case N_LIST:
		rc = eval_list(n, in, out);
		if (rc)
			vec_free(out);
		return rc;
	case N_TEXT:
		return vec_add(out, n->lit);
	case N_FIELD:
		return eval_field(n, in, out);
	case N_WILDCARD:
		for (i = 0; i < in->n && !rc; i++)
			rc = children(in->v[i], out);
		return rc;
	case N_RECURSIVE:
		return eval_recursive(in, out);
	case N_ARRAY:
		return eval_array(n, in, out);
	case N_FILTER:
		return eval_filter(n, in, out);
	case N_INT:
	case N_FLOAT:
	case N_BOOL:
		for (i = 0; i < in->n && !rc; i++)
			rc = vec_add(out, n->lit);
		return rc;
	case N_UNION:
		for (i = 0; i < n->nkids && !rc; i++) {
			rc = eval_list(n->kids[i], in, &tmp);
			if (!rc)
				rc = vec_copy(out, &tmp);
			vec_free(&tmp);
		}
		return rc;
	case N_IDENT:
		return EVAL_ERR;
	}
	return EVAL_ERR;
}

json_t *jp_eval(const jp *p, const json_t *doc)
{
	struct vec in = {0}, res = {0};
	json_t *arr = json_array();
	size_t i, j;
	int rc = 0;

	if (!arr || !p)
		return arr;
	if (!doc)
		doc = json_null();
	if (vec_add(&in, (json_t *)doc)) {
		json_decref(arr);
		return NULL;
	}
	for (i = 0; i < p->root->nkids && !rc; i++) {
		rc = walk(p->root->kids[i], &in, &res);
		for (j = 0; !rc && j < res.n; j++)
			if (json_array_append(arr, res.v[j]))
				rc = -ENOMEM;
		vec_free(&res);
	}
	vec_free(&in);
	if (rc == -ENOMEM) {
		json_decref(arr);
		return NULL;
	}
	if (rc)
		json_array_clear(arr);
	return arr;
}
