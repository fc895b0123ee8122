/*
 * test_agent_nft.c -- the agent's nftables table (src/agent/nftctl.c):
 * the ruleset text for a map, rule by rule (sources as sets, protocols,
 * port ranges, ICMP, forward rules), the table's name, and -- where nft
 * and root are at hand -- that nft's own parser takes it (`nft -c`,
 * which checks without changing anything).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/amap.h"
#include "agent/dpconf.h"
#include "agent/nftctl.h"
#include "agent/proc.h"

#define K1 "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define K2 "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="

/* A map as the server sends it; its rules come out as the table below. */
static const char map_frame[] =
    "{\"type\":\"SNAPSHOT\",\"serial\":7,\"map\":{\"self\":{\"name\":"
    "\"db-1\",\"namespace\":\"default\",\"address\":\"100.64.0.2\","
    "\"cidr\":\"100.64.0.0/10\",\"publicKey\":\"" K1 "\"},"
    "\"peers\":[{\"name\":\"web-1\",\"publicKey\":\"" K2 "\","
    "\"endpoints\":[\"192.0.2.11:51820\"],\"allowedIPs\":"
    "[\"100.64.0.1/32\"],\"online\":true}],"
    "\"rules\":["
    "{\"name\":\"policy/web-to-db/in\",\"sources\":[\"100.64.0.1/32\","
    "\"100.64.0.5/32\"],\"protocol\":\"TCP\",\"ports\":[{\"from\":5432,"
    "\"to\":5432},{\"from\":8000,\"to\":8080}]},"
    "{\"name\":\"policy/ping/in\",\"sources\":[\"100.64.0.0/10\"],"
    "\"protocol\":\"ICMP\",\"ports\":[]},"
    "{\"name\":\"policy/dns/in\",\"sources\":[\"100.64.0.9/32\"],"
    "\"ports\":[{\"protocol\":\"UDP\",\"from\":53}, {\"protocol\":\"any\","
    "\"from\":7000,\"to\":7001}]},"
    "{\"name\":\"policy/nobody/in\",\"sources\":[],\"protocol\":\"any\"},"
    "{\"name\":\"route/lan\",\"sources\":[\"100.64.0.1/32\"],"
    "\"destinations\":[\"198.19.77.0/24\"],\"protocol\":\"any\","
    "\"ports\":[]}],"
    "\"routes\":[]}}";

static const char want[] =
    "table inet signalbox_sb_wg0\n"
    "delete table inet signalbox_sb_wg0\n"
    "table inet signalbox_sb_wg0 {\n"
    "\tset r0_src {\n\t\ttype ipv4_addr\n\t\tflags interval\n"
    "\t\telements = { 100.64.0.9/32 }\n\t}\n"
    "\tset r1_src {\n\t\ttype ipv4_addr\n\t\tflags interval\n"
    "\t\telements = { 100.64.0.0/10 }\n\t}\n"
    "\tset r2_src {\n\t\ttype ipv4_addr\n\t\tflags interval\n"
    "\t\telements = { 100.64.0.1/32, 100.64.0.5/32 }\n\t}\n"
    "\tset r3_src {\n\t\ttype ipv4_addr\n\t\tflags interval\n"
    "\t\telements = { 100.64.0.1/32 }\n\t}\n"
    "\tset r3_dst {\n\t\ttype ipv4_addr\n\t\tflags interval\n"
    "\t\telements = { 198.19.77.0/24 }\n\t}\n"
    "\tchain input {\n"
    "\t\ttype filter hook input priority filter; policy accept;\n"
    "\t\tiifname != \"sb-wg0\" return\n"
    "\t\tct state established,related accept\n"
    "\t\tip saddr @r0_src meta l4proto { tcp, udp } th dport 7000-7001 "
    "accept\n"
    "\t\tip saddr @r0_src udp dport 53 accept\n"
    "\t\tip saddr @r1_src meta l4proto icmp accept\n"
    "\t\tip saddr @r2_src tcp dport 5432 accept\n"
    "\t\tip saddr @r2_src tcp dport 8000-8080 accept\n"
    "\t\tip saddr @r3_src ip daddr @r3_dst accept\n"
    "\t\tcounter drop\n"
    "\t}\n"
    "\tchain forward {\n"
    "\t\ttype filter hook forward priority filter; policy accept;\n"
    "\t\tiifname != \"sb-wg0\" return\n"
    "\t\tct state established,related accept\n"
    "\t\tip saddr @r3_src ip daddr @r3_dst accept\n"
    "\t\tcounter drop\n"
    "\t}\n"
    "}\n";

static char *render(const char *frame)
{
	amap m;
	amap_frame_type t;
	uint64_t serial;
	char err[256], *s;
	dpc c;

	amap_init(&m);
	if (amap_apply_frame(&m, frame, strlen(frame), &t, &serial, NULL, err,
			     sizeof(err)))
		fail_msg("frame: %s", err);
	assert_int_equal(dpc_from_amap(&m, &c), 0);
	s = nftctl_render("sb-wg0", &c);
	dpc_free(&c);
	amap_clear(&m);
	return s;
}

static void ruleset_for_a_map(void **state)
{
	char *s = render(map_frame);

	(void)state;
	assert_non_null(s);
	if (strcmp(s, want))
		fail_msg("got:\n%s", s);
	free(s);
}

static void empty_map_drops_all(void **state)
{
	char *s = render("{\"type\":\"SNAPSHOT\",\"serial\":1,\"map\":{"
			 "\"self\":{\"name\":\"a\",\"namespace\":\"b\"}}}");

	(void)state;
	assert_non_null(strstr(s, "\tchain input {\n"
				  "\t\ttype filter hook input priority filter; "
				  "policy accept;\n"
				  "\t\tiifname != \"sb-wg0\" return\n"
				  "\t\tct state established,related accept\n"
				  "\t\tcounter drop\n"));
	assert_null(strstr(s, "set "));
	free(s);
}

static void table_name(void **state)
{
	char n[64];

	(void)state;
	nftctl_table_name("wg0", n, sizeof(n));
	assert_string_equal(n, "signalbox_wg0");
	nftctl_table_name("sb-a.1", n, sizeof(n));
	assert_string_equal(n, "signalbox_sb_a_1");
}

/* nft's parser in check mode: only as root with nft installed. */
static void nft_accepts_it(void **state)
{
	char *argv[] = {"nft", "-c", "-f", "-", NULL}, err[1024];
	char *s;
	int r;

	(void)state;
	if (geteuid() != 0 ||
	    (access("/usr/sbin/nft", X_OK) && access("/sbin/nft", X_OK))) {
		print_message("skipped: needs root and nft\n");
		skip();
	}
	s = render(map_frame);
	r = proc_run(argv, s, strlen(s), NULL, err, sizeof(err));
	if (r)
		fail_msg("nft -c: %d %s", r, err);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ruleset_for_a_map),
	    cmocka_unit_test(empty_map_drops_all),
	    cmocka_unit_test(table_name),
	    cmocka_unit_test(nft_accepts_it),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
