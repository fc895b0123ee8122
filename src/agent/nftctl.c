/*
 * nftctl.c -- render and apply the agent's nftables table (nftctl.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/nftctl.h"
#include "agent/proc.h"
#include "util/strbuf.h"

void nftctl_table_name(const char *ifname, char *out, size_t n)
{
	size_t i, k = (size_t)snprintf(out, n, "signalbox_");

	for (i = 0; ifname[i] && k + 1 < n; i++)
		out[k++] = isalnum((unsigned char)ifname[i]) ? ifname[i] : '_';
	out[k < n ? k : n - 1] = '\0';
}

static void put_set(strbuf *b, const char *name, const dpc_cidrs *s)
{
	char buf[ADDR_CIDR_MAX];

	strbuf_printf(b,
		      "\tset %s {\n\t\ttype ipv4_addr\n\t\tflags interval\n"
		      "\t\telements = { ",
		      name);
	for (size_t i = 0; i < s->n; i++) {
		addr_cidr_format(&s->v[i], buf);
		strbuf_printf(b, "%s%s", i ? ", " : "", buf);
	}
	strbuf_puts(b, " }\n\t}\n");
}

/* The match of one port entry, "" for everything. */
static void put_port(strbuf *b, const dpc_port *p)
{
	static const char *const l4[] = {NULL, "tcp", "udp", "icmp"};

	if (p->proto == DPC_ANY) {
		if (p->from)
			strbuf_puts(b, "meta l4proto { tcp, udp } th dport ");
		else
			return;
	} else if (p->proto == DPC_ICMP || !p->from) {
		strbuf_printf(b, "meta l4proto %s ", l4[p->proto & 3]);
		return;
	} else {
		strbuf_printf(b, "%s dport ", l4[p->proto & 3]);
	}
	if (p->from == p->to)
		strbuf_printf(b, "%u ", p->from);
	else
		strbuf_printf(b, "%u-%u ", p->from, p->to);
}

static void put_chain(strbuf *b, const char *ifname, const dpc *c, bool forward)
{
	strbuf_printf(
	    b,
	    "\tchain %s {\n"
	    "\t\ttype filter hook %s priority filter; policy accept;\n"
	    "\t\tiifname != \"%s\" return\n"
	    "\t\tct state established,related accept\n",
	    forward ? "forward" : "input", forward ? "forward" : "input",
	    ifname);
	for (size_t i = 0; i < c->nrules; i++) {
		const dpc_rule *r = &c->rules[i];

		if (forward && !r->forward)
			continue;
		for (size_t k = 0; k < r->nports; k++) {
			strbuf_printf(b, "\t\tip saddr @r%zu_src ", i);
			if (r->forward)
				strbuf_printf(b, "ip daddr @r%zu_dst ", i);
			put_port(b, &r->ports[k]);
			strbuf_puts(b, "accept\n");
		}
	}
	strbuf_puts(b, "\t\tcounter drop\n\t}\n");
}

char *nftctl_render(const char *ifname, const dpc *c)
{
	char table[64], name[32];
	strbuf b = {0};

	nftctl_table_name(ifname, table, sizeof(table));
	strbuf_printf(&b, "table inet %s\ndelete table inet %s\n", table,
		      table);
	strbuf_printf(&b, "table inet %s {\n", table);
	for (size_t i = 0; i < c->nrules; i++) {
		snprintf(name, sizeof(name), "r%zu_src", i);
		put_set(&b, name, &c->rules[i].sources);
		if (c->rules[i].forward) {
			snprintf(name, sizeof(name), "r%zu_dst", i);
			put_set(&b, name, &c->rules[i].destinations);
		}
	}
	put_chain(&b, ifname, c, false);
	put_chain(&b, ifname, c, true);
	strbuf_puts(&b, "}\n");
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

int nftctl_apply(const char *script, char *err, size_t errlen)
{
	char *argv[] = {"nft", "-f", "-", NULL}, msg[1024];
	int r = proc_run(argv, script, strlen(script), NULL, msg, sizeof(msg));

	if (r) {
		snprintf(err, errlen, "nft -f -: %s",
			 r < 0 ? strerror(-r) : msg);
		return r < 0 ? r : -EIO;
	}
	return 0;
}

int nftctl_delete(const char *ifname, char *err, size_t errlen)
{
	char table[64], script[160];

	nftctl_table_name(ifname, table, sizeof(table));
	/* add-then-delete: no error when it was not there */
	snprintf(script, sizeof(script),
		 "table inet %s\ndelete table inet %s\n", table, table);
	return nftctl_apply(script, err, errlen);
}
