/*
 * test_agent_priv.c -- what the privileged half of the agent takes from
 * the other half (src/agent/dpconf.c, state.c): the configuration text
 * reads back exactly as written, and every line that is not in the one
 * spelling dpc_encode writes is refused (bad keys, prefixes with host
 * bits, ports out of range, unsorted or duplicate peers, extra fields,
 * shell or nft syntax, NUL bytes); the credential likewise; and the
 * readers of `ip` output.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/dpconf.h"
#include "agent/netctl.h"
#include "agent/state.h"

#define K1 "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define K2 "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="

static const char good[] =
    "address 100.64.0.1/10\n"
    "forward 1\n"
    "peer " K1 " 192.0.2.11:51820,[2001:db8::1]:51820 100.64.0.1/32,"
    "198.19.77.0/24\n"
    "peer " K2 " - -\n"
    "rule input 100.64.0.2/32,100.64.0.3/32 - tcp:5432-5432,udp:53-53,"
    "icmp:*,any:*\n"
    "rule forward 100.64.0.2/32 198.19.77.0/24 any:*\n"
    "route 198.19.77.0/24\n"
    "route 198.19.78.0/24\n";

static void roundtrip(void **state)
{
	char err[256], *again;
	dpc c;

	(void)state;
	if (dpc_decode(good, strlen(good), &c, err, sizeof(err)))
		fail_msg("%s", err);
	assert_true(c.has_address);
	assert_int_equal(c.address, 0x64400001);
	assert_int_equal(c.prefix_len, 10);
	assert_true(c.forward);
	assert_int_equal(c.npeers, 2);
	assert_int_equal(c.peers[0].nendpoints, 2);
	assert_int_equal(c.peers[1].allowed.n, 0);
	assert_int_equal(c.nrules, 2);
	assert_int_equal(c.rules[0].nports, 4);
	assert_int_equal(c.rules[0].ports[2].proto, DPC_ICMP);
	assert_true(c.rules[1].forward);
	assert_int_equal(c.routes.n, 2);
	again = dpc_encode(&c);
	assert_string_equal(again, good);
	free(again);
	dpc_free(&c);
}

static void refused(void **state)
{
	static const char *const bad[] = {
	    "forward 1", /* no \n */
	    "forward 2\n",
	    "forward 1\nforward 1\n", /* twice */
	    "forward  1\n",	      /* 2 spaces */
	    "forward 1 \n",
	    "forward 1\r\n",
	    "bogus 1\n",
	    "address 100.64.0.1\n",
	    "address 100.64.0.1/33\n",
	    "address 0100.64.0.1/10\n",
	    "address 100.64.0.1/0\n",
	    "peer AAAA - -\n",
	    "peer " K1 "x - -\n",
	    "peer " K1 " - -\nextra\n",
	    "peer " K1 " - - x\n",
	    "peer " K2 " - -\npeer " K1 " - -\n", /* unsorted */
	    "peer " K1 " - -\npeer " K1 " - -\n", /* twice */
	    "peer " K1 " 192.0.2.1 -\n",	  /* no port */
	    "peer " K1 " 192.0.2.1:0 -\n",
	    "peer " K1 " 192.0.2.1:65536 -\n",
	    "peer " K1 " 192.0.2.1:051 -\n",
	    "peer " K1 " host.example:51820 -\n",
	    "peer " K1 " [2001:DB8::1]:1 -\n",		   /* not canonical */
	    "peer " K1 " - 100.64.0.1/10\n",		   /* host bits */
	    "peer " K1 " - 100.64.0.2/32,100.64.0.1/32\n", /* unsorted */
	    "peer " K1 " - 100.64.0.1/32,,100.64.0.2/32\n",
	    "peer " K1 " - 100.64.0.1/32,\n",
	    "peer " K1 " - ,100.64.0.1/32\n",
	    "peer " K1 " - ::/0\n",
	    "rule input - - any:*\n", /* no sources */
	    "rule input 100.64.0.2/32 198.19.77.0/24 any:*\n",
	    "rule forward 100.64.0.2/32 - any:*\n",
	    "rule output 100.64.0.2/32 - any:*\n",
	    "rule input 100.64.0.2/32 - -\n",
	    "rule input 100.64.0.2/32 - tcp:0-1\n",
	    "rule input 100.64.0.2/32 - tcp:80-79\n",
	    "rule input 100.64.0.2/32 - tcp:80\n",
	    "rule input 100.64.0.2/32 - tcp:1-65536\n",
	    "rule input 100.64.0.2/32 - icmp:1-2\n",
	    "rule input 100.64.0.2/32 - sctp:*\n",
	    "rule input 100.64.0.2/32 - tcp:*;drop\n",
	    "rule input 100.64.0.2/32 - tcp:* } ; flush ruleset\n",
	    "route 198.19.77.1/24\n",
	    "route 198.19.77.0/24\nroute 198.19.77.0/24\n",
	    "route $(reboot)\n",
	    "route 198.19.77.0/24 dev eth0\n",
	};
	char err[256];
	dpc c;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r =
		    dpc_decode(bad[i], strlen(bad[i]), &c, err, sizeof(err));

		if (r != -EINVAL)
			fail_msg("taken (%d): %s", r, bad[i]);
		assert_int_equal(c.npeers, 0);
		assert_null(c.peers);
	}
	/* a NUL inside */
	assert_int_equal(dpc_decode("forward 1\n\0route 1.2.3.0/24\n", 28, &c,
				    err, sizeof(err)),
			 -EINVAL);
	/* nothing at all is a valid, empty configuration */
	assert_int_equal(dpc_decode("", 0, &c, err, sizeof(err)), 0);
	dpc_free(&c);
}

static void credential(void **state)
{
	state_cred c, back;
	char err[256], *text;
	static const char *const bad[] = {
	    "peer web-1\nnamespace default\naddress 100.64.0.1\ncidr "
	    "100.64.0.0/10\ntoken sb_abcdefgh\nlease peer-web-1\n"
	    "lease-seconds 0\n",
	    "peer Web_1\nnamespace default\naddress 100.64.0.1\ncidr "
	    "100.64.0.0/10\ntoken sb_abcdefgh\nlease peer-web-1\n"
	    "lease-seconds 15\n",
	    "peer web-1\nnamespace default\naddress 10.0.0.1\ncidr "
	    "100.64.0.0/10\ntoken sb_abcdefgh\nlease peer-web-1\n"
	    "lease-seconds 15\n",
	    "peer web-1\nnamespace default\naddress 100.64.0.1\ncidr "
	    "100.64.0.0/10\ntoken sb_abc\"defgh\nlease peer-web-1\n"
	    "lease-seconds 15\n",
	    "peer web-1\nnamespace default\naddress 100.64.0.1\ncidr "
	    "100.64.0.0/10\ntoken sb_abcdefgh\nlease peer-web-1\n"
	    "lease-seconds 15\nextra 1\n",
	    "namespace default\npeer web-1\naddress 100.64.0.1\ncidr "
	    "100.64.0.0/10\ntoken sb_abcdefgh\nlease peer-web-1\n"
	    "lease-seconds 15\n",
	};

	(void)state;
	memset(&c, 0, sizeof(c));
	strcpy(c.peer, "web-1");
	strcpy(c.ns, "default");
	strcpy(c.address, "100.64.0.1");
	strcpy(c.cidr, "100.64.0.0/10");
	strcpy(c.token, "sb_Zm9vYmFyYmF6cXV4LWFiY2RlZmdoaWprbG1ub3A");
	strcpy(c.lease, "peer-web-1");
	c.lease_seconds = 15;
	text = state_cred_encode(&c);
	if (state_cred_decode(text, strlen(text), &back, err, sizeof(err)))
		fail_msg("%s", err);
	assert_memory_equal(&c, &back, sizeof(c));
	free(text);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (state_cred_decode(bad[i], strlen(bad[i]), &back, err,
				      sizeof(err)) != -EINVAL)
			fail_msg("taken: %s", bad[i]);
}

static void ip_output(void **state)
{
	static const char addrs[] =
	    "5: sb-a    inet 100.64.0.1/10 scope global sb-a\\       "
	    "valid_lft forever preferred_lft forever\n"
	    "5: sb-a    inet 100.64.9.9/32 scope global sb-a\\       "
	    "valid_lft forever preferred_lft forever\n";
	static const char routes[] = "198.19.77.0/24 scope link \n"
				     "100.64.7.7 scope link \n";
	addr_cidr *v;
	size_t n;

	(void)state;
	assert_int_equal(netctl_parse_addrs(addrs, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].ip, 0x64400001); /* host bits kept */
	assert_int_equal(v[0].len, 10);
	free(v);
	assert_int_equal(netctl_parse_routes(routes, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[1].len, 32);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(roundtrip),
	    cmocka_unit_test(refused),
	    cmocka_unit_test(credential),
	    cmocka_unit_test(ip_output),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
