/*
 * ipc.c -- framing of the messages between the agent's halves (ipc.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/ipc.h"

static int full_write(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == ECONNRESET ? -EPIPE : -errno;
		}
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

static int full_read(int fd, void *p, size_t n)
{
	while (n) {
		ssize_t r = read(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == ECONNRESET ? -EPIPE : -errno;
		if (r == 0)
			return -EPIPE;
		p = (char *)p + r;
		n -= (size_t)r;
	}
	return 0;
}

int ipc_send(int fd, uint32_t type, const void *body, size_t len)
{
	uint32_t h[2] = {type, (uint32_t)len};
	int r;

	if (len > IPC_MAX)
		return -EMSGSIZE;
	if ((r = full_write(fd, h, sizeof(h))))
		return r;
	return len ? full_write(fd, body, len) : 0;
}

int ipc_recv(int fd, uint32_t *type, char **body, size_t *len)
{
	uint32_t h[2];
	char *b;
	int r;

	*body = NULL;
	*len = 0;
	if ((r = full_read(fd, h, sizeof(h))))
		return r;
	if (h[1] > IPC_MAX)
		return -EMSGSIZE;
	b = malloc((size_t)h[1] + 1);
	if (!b)
		return -ENOMEM;
	if ((r = full_read(fd, b, h[1]))) {
		free(b);
		return r;
	}
	b[h[1]] = '\0';
	*type = h[0];
	*body = b;
	*len = h[1];
	return 0;
}

int ipc_call(int fd, uint32_t type, const void *body, size_t len, char **ans)
{
	uint32_t t;
	char *b;
	size_t n;
	int r;

	if (ans)
		*ans = NULL;
	if ((r = ipc_send(fd, type, body, len)) ||
	    (r = ipc_recv(fd, &t, &b, &n)))
		return r;
	if (t != IPC_OK && t != IPC_ERR) {
		free(b);
		return -EPROTO;
	}
	if (ans)
		*ans = b;
	else
		free(b);
	return t == IPC_OK ? 0 : -EREMOTEIO;
}
