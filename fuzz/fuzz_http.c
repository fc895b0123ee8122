/*
 * fuzz_http.c -- libFuzzer target for the API server's request handling:
 * each input is sent as raw bytes over a loopback TCP connection to a real
 * server (libevent's HTTP parser, our routing, query and body parsing, and
 * the handlers behind them), and the loop runs until the server closes the
 * connection or a short deadline passes. The server must never crash, leak
 * or hang.
 *
 * Seeds (fuzz/corpus/http/) are real requests: discovery, CRUD on
 * namespaces and a CRD, patches, watches with odd parameters.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "store/store.h"

static store *st;
static api_server *srv;
static int port;

static char dir[] = "/tmp/sb-fuzz-http-XXXXXX";

static int rm_one(const char *p, const struct stat *sb, int flag,
		  struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void cleanup(void)
{
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
	char err[512];
	store_options so;
	api_options ao;

	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);
	store_options_init(&so);
	so.data_dir = dir;
	if (store_open(&so, &st, err, sizeof err))
		abort();
	api_options_init(&ao);
	ao.listen_port = 0;
	ao.read_timeout = 1;
	ao.insecure = true; /* the fuzzer speaks plain HTTP */
	if (api_new(st, &ao, &srv, err, sizeof err)) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	port = api_port(srv);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct event_base *base;
	char buf[65536];
	size_t off = 0;
	int64_t deadline;
	int fd;

	if (!srv)
		setup();
	base = api_base(srv);
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return 0;
	connect(fd, (struct sockaddr *)&sa, sizeof sa);
	deadline = now_ms() + 300;
	/* Write the input while running the server's loop, then read what it
	 * answers until it closes or the deadline passes. */
	while (now_ms() < deadline) {
		struct pollfd p = {fd, POLLIN | (off < size ? POLLOUT : 0), 0};
		ssize_t n;

		event_base_loop(base, EVLOOP_NONBLOCK);
		if (poll(&p, 1, 1) <= 0)
			continue;
		if ((p.revents & POLLOUT) && off < size) {
			n = send(fd, data + off, size - off, MSG_NOSIGNAL);
			if (n > 0)
				off += (size_t)n;
			if (off == size)
				shutdown(fd, SHUT_WR);
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = recv(fd, buf, sizeof buf, 0);
			if (n == 0 ||
			    (n < 0 && (p.revents & (POLLHUP | POLLERR))))
				break;
		}
	}
	close(fd);
	/* Let the server notice the close. */
	for (int i = 0; i < 5; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	return 0;
}
