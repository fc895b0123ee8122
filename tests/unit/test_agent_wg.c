/*
 * test_agent_wg.c -- the WireGuard diff (src/agent/wgctl.c): from the
 * device as wireguard-go's UAPI describes it to the desired peers, only
 * what changed is written (a peer that did not change is not named at
 * all, so its session survives); the UAPI request and the `wg set` argv
 * say exactly that; the UAPI and `wg show dump` readers.
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
#include "agent/wgctl.h"

#define K1 "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define K2 "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
#define K3 "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="
#define K4 "BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ="
#define H1 "0101010101010101010101010101010101010101010101010101010101010101"
#define H2 "0202020202020202020202020202020202020202020202020202020202020202"
#define H3 "0303030303030303030303030303030303030303030303030303030303030303"
#define H4 "0404040404040404040404040404040404040404040404040404040404040404"
#define H5 "0505050505050505050505050505050505050505050505050505050505050505"

/* wireguard-go's answer to get=1: private key 05..., peers 02 and 03 */
static const char uapi_get[] =
    "private_key=" H5 "\n"
    "listen_port=51820\n"
    "public_key=" H2 "\n"
    "preshared_key=0000000000000000000000000000000000000000000000000000000000"
    "000000\n"
    "protocol_version=1\n"
    "endpoint=192.0.2.12:51820\n"
    "last_handshake_time_sec=1700000000\n"
    "last_handshake_time_nsec=5\n"
    "tx_bytes=1\n"
    "rx_bytes=2\n"
    "persistent_keepalive_interval=25\n"
    "allowed_ip=100.64.0.2/32\n"
    "public_key=" H3 "\n"
    "endpoint=192.0.2.13:51820\n"
    "last_handshake_time_sec=0\n"
    "last_handshake_time_nsec=0\n"
    "persistent_keepalive_interval=25\n"
    "allowed_ip=198.19.77.0/24\n"
    "allowed_ip=100.64.0.3/32\n"
    "errno=0\n";

static uint8_t key5[32];

static void desired(const char *text, dpc *c)
{
	char err[256];

	if (dpc_decode(text, strlen(text), c, err, sizeof(err)))
		fail_msg("dpc_decode: %s", err);
}

static char *diff_text(const char *want)
{
	wgctl_dev dev;
	wgctl_diff d;
	dpc c;
	char *s;

	assert_int_equal(wgctl_uapi_parse(uapi_get, &dev), 0);
	desired(want, &c);
	assert_int_equal(wgctl_make_diff(&dev, key5, 51820, &c, &d), 0);
	s = wgctl_uapi_text(&d);
	wgctl_diff_free(&d);
	dpc_free(&c);
	wgctl_dev_free(&dev);
	return s;
}

static void uapi_parse(void **state)
{
	wgctl_dev dev;

	(void)state;
	assert_int_equal(wgctl_uapi_parse(uapi_get, &dev), 0);
	assert_true(dev.has_private_key);
	assert_memory_equal(dev.private_key, key5, 32);
	assert_int_equal(dev.listen_port, 51820);
	assert_int_equal(dev.npeers, 2);
	assert_int_equal(dev.peers[0].key[0], 2);
	assert_int_equal(dev.peers[0].last_handshake, 1700000000);
	assert_true(dev.peers[1].has_endpoint);
	/* sorted: 100.64.0.3/32 before 198.19.77.0/24 */
	assert_int_equal(dev.peers[1].allowed.n, 2);
	assert_int_equal(dev.peers[1].allowed.v[0].ip, 0x64400003);
	wgctl_dev_free(&dev);
	assert_int_equal(wgctl_uapi_parse("errno=1\n", &dev), -EIO);
	assert_int_equal(wgctl_uapi_parse("public_key=zz\n", &dev), -EINVAL);
}

static void nothing_changed_nothing_written(void **state)
{
	/* same peers; allowed IPs in another order; peer 3 has two
	 * endpoints and the device uses the second: all stays */
	char *s = diff_text("forward 0\n"
			    "peer " K2 " 192.0.2.12:51820 100.64.0.2/32\n"
			    "peer " K3 " 192.0.2.99:1,192.0.2.13:51820 "
			    "100.64.0.3/32,198.19.77.0/24\n");

	(void)state;
	assert_string_equal(s, "set=1\n\n");
	free(s);
}

static void only_what_changed(void **state)
{
	/* 2: endpoint moved; 3: gone; 4: new; key and port the same */
	char *s = diff_text("forward 0\n"
			    "peer " K2 " 192.0.2.22:51820 100.64.0.2/32\n"
			    "peer " K4 " 192.0.2.14:51820 "
			    "100.64.0.4/32,198.19.77.0/24\n");

	(void)state;
	assert_string_equal(s, "set=1\n"
			       "public_key=" H3 "\n"
			       "remove=true\n"
			       "public_key=" H2 "\n"
			       "update_only=true\n"
			       "endpoint=192.0.2.22:51820\n"
			       "public_key=" H4 "\n"
			       "endpoint=192.0.2.14:51820\n"
			       "persistent_keepalive_interval=25\n"
			       "replace_allowed_ips=true\n"
			       "allowed_ip=100.64.0.4/32\n"
			       "allowed_ip=198.19.77.0/24\n"
			       "\n");
	free(s);
}

static void route_moves_between_peers(void **state)
{
	/* the route's prefix leaves 3 for 2: both get their new list, and
	 * nothing else is said about them */
	char *s = diff_text("forward 0\n"
			    "peer " K2 " 192.0.2.12:51820 "
			    "100.64.0.2/32,198.19.77.0/24\n"
			    "peer " K3 " 192.0.2.13:51820 100.64.0.3/32\n");

	(void)state;
	assert_string_equal(s, "set=1\n"
			       "public_key=" H2 "\n"
			       "update_only=true\n"
			       "replace_allowed_ips=true\n"
			       "allowed_ip=100.64.0.2/32\n"
			       "allowed_ip=198.19.77.0/24\n"
			       "public_key=" H3 "\n"
			       "update_only=true\n"
			       "replace_allowed_ips=true\n"
			       "allowed_ip=100.64.0.3/32\n"
			       "\n");
	free(s);
}

static void key_and_port(void **state)
{
	wgctl_dev dev;
	wgctl_diff d;
	uint8_t k1[32];
	dpc c;
	char *s, **argv;

	(void)state;
	memset(k1, 1, sizeof(k1));
	assert_int_equal(wgctl_uapi_parse(uapi_get, &dev), 0);
	desired("forward 0\n"
		"peer " K2 " - 100.64.0.2/32\n"
		"peer " K3 " 192.0.2.13:51820 100.64.0.3/32,198.19.77.0/24\n",
		&c);
	assert_int_equal(wgctl_make_diff(&dev, k1, 4000, &c, &d), 0);
	s = wgctl_uapi_text(&d);
	assert_string_equal(s, "set=1\nprivate_key=" H1 "\n"
			       "listen_port=4000\n\n");
	free(s);
	argv = wgctl_wg_argv("wg0", &d);
	assert_string_equal(argv[0], "wg");
	assert_string_equal(argv[3], "private-key");
	assert_string_equal(argv[4], "/dev/stdin");
	assert_string_equal(argv[6], "4000");
	assert_null(argv[7]);
	wgctl_argv_free(argv);
	wgctl_diff_free(&d);
	dpc_free(&c);
	wgctl_dev_free(&dev);
}

static void wg_argv(void **state)
{
	wgctl_dev dev;
	wgctl_diff d;
	dpc c;
	char **argv, joined[2048] = "";

	(void)state;
	assert_int_equal(wgctl_uapi_parse(uapi_get, &dev), 0);
	desired("forward 0\n"
		"peer " K2 " 192.0.2.12:51820 100.64.0.2/32\n"
		"peer " K4 " [2001:db8::4]:51820 100.64.0.4/32\n",
		&c);
	assert_int_equal(wgctl_make_diff(&dev, key5, 0, &c, &d), 0);
	argv = wgctl_wg_argv("wg0", &d);
	for (char **a = argv; *a; a++) {
		strcat(joined, *a);
		strcat(joined, " ");
	}
	assert_string_equal(
	    joined, "wg set wg0 peer " K3 " remove peer " K4
		    " endpoint [2001:db8::4]:51820 "
		    "persistent-keepalive 25 allowed-ips 100.64.0.4/32 ");
	wgctl_argv_free(argv);
	wgctl_diff_free(&d);
	dpc_free(&c);
	wgctl_dev_free(&dev);
}

static void dump_parse(void **state)
{
	static const char dump[] =
	    "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=\t" K1
	    "\t51820\toff\n" K2 "\t(none)\t192.0.2.12:51820\t100.64.0.2/32,"
	    "198.19.77.0/24\t1700000000\t10\t20\t25\n" K3
	    "\t(none)\t(none)\t(none)\t0\t0\t0\toff\n";
	wgctl_dev dev;

	(void)state;
	assert_int_equal(wgctl_dump_parse(dump, &dev), 0);
	assert_memory_equal(dev.private_key, key5, 32);
	assert_int_equal(dev.listen_port, 51820);
	assert_int_equal(dev.npeers, 2);
	assert_int_equal(dev.peers[0].allowed.n, 2);
	assert_int_equal(dev.peers[0].last_handshake, 1700000000);
	assert_false(dev.peers[1].has_endpoint);
	assert_int_equal(dev.peers[1].allowed.n, 0);
	wgctl_dev_free(&dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(uapi_parse),
	    cmocka_unit_test(nothing_changed_nothing_written),
	    cmocka_unit_test(only_what_changed),
	    cmocka_unit_test(route_moves_between_peers),
	    cmocka_unit_test(key_and_port),
	    cmocka_unit_test(wg_argv),
	    cmocka_unit_test(dump_parse),
	};

	memset(key5, 5, sizeof(key5));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
