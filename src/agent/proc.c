/*
 * proc.c -- fork/exec of helper programs (proc.h): one poll loop feeds
 * standard input and drains standard output and error together, so a
 * large ruleset or a large dump cannot deadlock on a full pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/proc.h"

#define OUT_MAX (64u << 20)

/* In the child, before exec: default signals, nothing blocked. */
static void child_signals(void)
{
	sigset_t none;
	int s;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 4096;
		char *b;

		while (c < *len + n + 1)
			c *= 2;
		if (c > OUT_MAX)
			return -E2BIG;
		b = realloc(*buf, c);
		if (!b)
			return -ENOMEM;
		*buf = b;
		*cap = c;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

int proc_run(char *const argv[], const char *in, size_t inlen, char **out,
	     char *err, size_t errlen)
{
	int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
	char *obuf = NULL, ebuf[1024];
	size_t olen = 0, ocap = 0, elen = 0, inoff = 0;
	long long deadline = now_ms() + PROC_TIMEOUT_MS;
	int status, r = 0;
	bool timed_out = false;
	pid_t pid;

	if (out)
		*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) ||
	    pipe2(perr, O_CLOEXEC)) {
		r = -errno;
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto out;
	}
	if (pid == 0) {
		child_signals();
		dup2(pin[0], 0);
		dup2(pout[1], 1);
		dup2(perr[1], 2);
		execvp(argv[0], argv);
		dprintf(2, "cannot run %s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	pin[0] = pout[1] = perr[1] = -1;
	if (!in || !inlen) {
		close(pin[1]);
		pin[1] = -1;
	} else {
		fcntl(pin[1], F_SETFL, O_NONBLOCK);
	}
	while (pout[0] >= 0 || perr[0] >= 0) {
		struct pollfd p[3];
		int np = 0, left = (int)(deadline - now_ms());
		char buf[8192];
		ssize_t n;

		if (left <= 0) {
			kill(pid, SIGKILL);
			timed_out = true;
			break;
		}
		if (pin[1] >= 0)
			p[np++] = (struct pollfd){pin[1], POLLOUT, 0};
		if (pout[0] >= 0)
			p[np++] = (struct pollfd){pout[0], POLLIN, 0};
		if (perr[0] >= 0)
			p[np++] = (struct pollfd){perr[0], POLLIN, 0};
		if (poll(p, (nfds_t)np, left) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < np; i++) {
			if (!p[i].revents)
				continue;
			if (p[i].fd == pin[1]) {
				n = write(pin[1], in + inoff, inlen - inoff);
				if (n > 0)
					inoff += (size_t)n;
				if ((n < 0 && errno != EAGAIN) ||
				    inoff == inlen) {
					close(pin[1]);
					pin[1] = -1;
				}
				continue;
			}
			n = read(p[i].fd, buf, sizeof(buf));
			if (n <= 0 && !(n < 0 && errno == EINTR)) {
				close(p[i].fd);
				if (p[i].fd == pout[0])
					pout[0] = -1;
				else
					perr[0] = -1;
				continue;
			}
			if (n > 0 && p[i].fd == pout[0] && out &&
			    append(&obuf, &olen, &ocap, buf, (size_t)n)) {
				kill(pid, SIGKILL);
			} else if (n > 0 && p[i].fd == perr[0] &&
				   elen < sizeof(ebuf) - 1) {
				size_t k = (size_t)n;

				if (k > sizeof(ebuf) - 1 - elen)
					k = sizeof(ebuf) - 1 - elen;
				memcpy(ebuf + elen, buf, k);
				elen += k;
			}
		}
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			status = -1;
			break;
		}
	ebuf[elen] = '\0';
	while (elen && (ebuf[elen - 1] == '\n' || ebuf[elen - 1] == ' '))
		ebuf[--elen] = '\0';
	if (err && errlen)
		snprintf(err, errlen, "%s", ebuf);
	if (timed_out)
		r = -ETIMEDOUT;
	else if (status == -1 || !WIFEXITED(status))
		r = -EINTR;
	else
		r = WEXITSTATUS(status);
	if (out && r >= 0) {
		*out = obuf ? obuf : strdup("");
		obuf = NULL;
		if (!*out)
			r = -ENOMEM;
	}
out:
	for (int i = 0; i < 2; i++) {
		if (pin[i] >= 0)
			close(pin[i]);
		if (pout[i] >= 0)
			close(pout[i]);
		if (perr[i] >= 0)
			close(perr[i]);
	}
	free(obuf);
	return r;
}

pid_t proc_spawn(char *const argv[], const char *logpath)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		return -errno;
	if (pid)
		return pid;
	child_signals();
	setsid();
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0 && fd != 0) {
		dup2(fd, 0);
		close(fd);
	}
	fd = open(logpath ? logpath : "/dev/null",
		  O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	execvp(argv[0], argv);
	_exit(127);
}
