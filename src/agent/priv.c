/*
 * priv.c -- the privileged half of the agent (priv.h, agent.h).
 *
 * One thread, one loop: a signalfd for SIGTERM, SIGINT and SIGCHLD, and
 * the socketpair to the network-facing child. Requests are served in
 * order; each gets one answer.
 */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/alog.h"
#include "agent/amap.h"
#include "agent/dpconf.h"
#include "agent/ipc.h"
#include "agent/netctl.h"
#include "agent/nftctl.h"
#include "agent/priv.h"
#include "agent/state.h"
#include "util/strbuf.h"

typedef struct priv {
	agent_opts *o;
	wgctl *wg;
	uint8_t key[ADDR_KEY_LEN], pub[ADDR_KEY_LEN];
	char *nft_applied; /* the last table text that nft took */
	int fd;		   /* to the child; -1 when none */
	pid_t child;
	uid_t uid;
	gid_t gid;
	bool drop; /* give the child nobody's uid */
} priv;

/* ---- the child -------------------------------------------------------- */

static void child_main(priv *p, int fd) __attribute__((noreturn));

static void child_main(priv *p, int fd)
{
	sigset_t none;
	int rc;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	alog_setup(p->o->log_level, "net");
	explicit_bzero(p->key, sizeof(p->key));
	if (p->drop) {
		if (setgroups(0, NULL) || setresgid(p->gid, p->gid, p->gid) ||
		    setresuid(p->uid, p->uid, p->uid)) {
			alog(ALOG_ERROR, "cannot drop privileges: %s",
			     strerror(errno));
			_exit(1);
		}
	}
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	prctl(PR_SET_DUMPABLE, 0);
	if (chdir("/"))
		_exit(1);
	rc = agent_net_run(p->o, fd);
	_exit(rc);
}

static int child_start(priv *p)
{
	int sv[2];
	pid_t pid;
	char hello[128], b64[ADDR_KEY_B64_LEN + 1], *buf = NULL, err[256];
	state_cred cred;
	size_t len = 0;
	int r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	if (pid == 0) {
		close(sv[0]);
		child_main(p, sv[1]);
	}
	close(sv[1]);
	p->fd = sv[0];
	p->child = pid;
	addr_key_to_base64(p->pub, b64);
	{
		wgctl_dev dev;
		uint16_t port = p->o->listen_port;

		if (!wgctl_get(p->wg, &dev, err, sizeof(err))) {
			port = dev.listen_port;
			wgctl_dev_free(&dev);
		}
		snprintf(hello, sizeof(hello),
			 "public-key %s\nlisten-port %u\n", b64, port);
	}
	r = ipc_send(p->fd, IPC_HELLO, hello, strlen(hello));
	/* the credential as stored, checked again */
	err[0] = '\0';
	if (!r) {
		int c =
		    state_cred_load(p->o->state_dir, &cred, err, sizeof(err));

		if (!c)
			buf = state_cred_encode(&cred);
		else if (c != -ENOENT)
			alog(ALOG_WARN, "%s; enrolling again", err);
		explicit_bzero(&cred, sizeof(cred));
	}
	if (!r)
		r = ipc_send(p->fd, IPC_CRED, buf, buf ? strlen(buf) : 0);
	if (buf)
		explicit_bzero(buf, strlen(buf));
	free(buf);
	buf = NULL;
	if (!r && state_read(p->o->state_dir, "map.json", IPC_MAX, &buf, &len))
		len = 0;
	if (!r)
		r = ipc_send(p->fd, IPC_MAP, buf, len);
	free(buf);
	if (r)
		alog(ALOG_WARN, "starting the network half: %s", strerror(-r));
	return 0;
}

/* ---- requests --------------------------------------------------------- */

static int do_config(priv *p, const char *body, size_t len, char *err,
		     size_t errlen)
{
	size_t nwg = 0, nnet = 0;
	char *script;
	dpc c;
	int r;

	if ((r = dpc_decode(body, len, &c, err, errlen))) {
		alog(ALOG_ERROR, "refused a configuration: %s", err);
		return r;
	}
	script = nftctl_render(p->o->ifname, &c);
	if (!script) {
		r = -ENOMEM;
		goto out;
	}
	if (!p->nft_applied || strcmp(script, p->nft_applied)) {
		if ((r = nftctl_apply(script, err, errlen))) {
			free(script);
			goto fail;
		}
		free(p->nft_applied);
		p->nft_applied = script;
		alog(ALOG_INFO, "nftables: table for %s replaced (%zu rules)",
		     p->o->ifname, c.nrules);
	} else {
		free(script);
	}
	if ((r = wgctl_apply(p->wg, &c, &nwg, err, errlen)))
		goto fail;
	if ((r = netctl_apply(p->o->ifname, &c, &nnet, err, errlen)))
		goto fail;
	alog(ALOG_INFO,
	     "enforcing %zu peers, %zu rules, %zu routes (%zu peer changes, "
	     "%zu address/route changes)",
	     c.npeers, c.nrules, c.routes.n, nwg, nnet);
	goto out;
fail:
	alog(ALOG_ERROR, "enforcing the map: %s", err);
out:
	dpc_free(&c);
	return r;
}

static char *do_status(priv *p, char *err, size_t errlen)
{
	char b64[ADDR_KEY_B64_LEN + 1];
	strbuf b = {0};
	wgctl_dev dev;

	if (wgctl_get(p->wg, &dev, err, errlen))
		return NULL;
	strbuf_printf(&b, "listen-port %u\n", dev.listen_port);
	for (size_t i = 0; i < dev.npeers; i++) {
		if (!dev.peers[i].last_handshake)
			continue;
		addr_key_to_base64(dev.peers[i].key, b64);
		strbuf_printf(&b, "handshake %s %lld\n", b64,
			      (long long)dev.peers[i].last_handshake);
	}
	wgctl_dev_free(&dev);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p ? b.p : strdup("");
}

/* Serve one request. Returns <0 when the child is gone. */
static int serve_one(priv *p)
{
	char err[1024] = "", *body = NULL, *ans = NULL;
	state_cred cred;
	uint32_t type;
	size_t len;
	int r;

	if ((r = ipc_recv(p->fd, &type, &body, &len)))
		return r;
	switch (type) {
	case IPC_CONFIG:
		r = do_config(p, body, len, err, sizeof(err));
		break;
	case IPC_STATUS:
		ans = do_status(p, err, sizeof(err));
		r = ans ? 0 : -EIO;
		break;
	case IPC_CRED:
		r = state_cred_decode(body, len, &cred, err, sizeof(err));
		if (!r)
			r = state_cred_save(p->o->state_dir, &cred, err,
					    sizeof(err));
		if (!r)
			alog(ALOG_INFO, "enrolled as %s/%s, address %s",
			     cred.ns, cred.peer, cred.address);
		explicit_bzero(&cred, sizeof(cred));
		break;
	case IPC_MAP:
		r = state_write(p->o->state_dir, "map.json", body, len, err,
				sizeof(err));
		break;
	case IPC_REVOKED:
		r = state_cred_revoke(p->o->state_dir);
		alog(ALOG_ERROR,
		     "the credential was revoked; it is kept as "
		     "credential.json.revoked, and a new start needs "
		     "--setup-key");
		break;
	default:
		snprintf(err, sizeof(err), "unknown request %u", type);
		r = -EINVAL;
	}
	if (body)
		explicit_bzero(body, len);
	free(body);
	if (r && !err[0])
		snprintf(err, sizeof(err), "%s", strerror(-r));
	r = r ? ipc_send(p->fd, IPC_ERR, err, strlen(err))
	      : ipc_send(p->fd, IPC_OK, ans, ans ? strlen(ans) : 0);
	free(ans);
	return r;
}

/* ---- the loop --------------------------------------------------------- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void child_stop(priv *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	if (p->child > 0) {
		kill(p->child, SIGTERM);
		for (int i = 0; i < 100; i++) {
			if (waitpid(p->child, NULL, WNOHANG) == p->child)
				break;
			usleep(20000);
			if (i == 99) {
				kill(p->child, SIGKILL);
				waitpid(p->child, NULL, 0);
			}
		}
	}
	p->child = 0;
}

static int setup(priv *p, char *err, size_t errlen)
{
	struct passwd *pw;
	bool created;
	int r;

	if ((r = state_dir_prepare(p->o->state_dir, err, errlen)) ||
	    (r = state_key_load(p->o->state_dir, p->key, p->pub, &created, err,
				errlen)))
		return r;
	if (created)
		alog(ALOG_INFO, "made a new WireGuard key in %s/private.key",
		     p->o->state_dir);
	if ((r = wgctl_open(p->o->ifname, p->o->wg_mode, p->o->state_dir,
			    p->key, p->o->listen_port, &p->wg, err, errlen)))
		return r;
	alog(ALOG_INFO, "interface %s (%s)", p->o->ifname,
	     wgctl_backend(p->wg) == WGCTL_KERNEL ? "kernel" : "wireguard-go");
	if (geteuid() == 0) {
		pw = getpwnam("nobody");
		if (!pw) {
			snprintf(err, errlen,
				 "no user 'nobody' to run the network half as");
			return -ENOENT;
		}
		p->uid = pw->pw_uid;
		p->gid = pw->pw_gid;
		p->drop = true;
	}
	return 0;
}

static void teardown(priv *p)
{
	char err[512];

	if (nftctl_delete(p->o->ifname, err, sizeof(err)))
		alog(ALOG_WARN, "%s", err);
	if (wgctl_down(p->wg, err, sizeof(err)))
		alog(ALOG_WARN, "%s", err);
	alog(ALOG_INFO, "removed the table and the interface %s", p->o->ifname);
}

int priv_run(agent_opts *o)
{
	priv p = {.o = o, .fd = -1};
	char err[1024] = "";
	sigset_t set;
	int sfd = -1, rc = 1, backoff = 500;
	long long restart_at = 0;
	bool stop = false;

	alog_setup(o->log_level, "priv");
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0 || setup(&p, err, sizeof(err))) {
		alog(ALOG_ERROR, "%s", sfd < 0 ? strerror(errno) : err);
		goto out;
	}
	if (child_start(&p)) {
		alog(ALOG_ERROR, "cannot start the network half");
		goto out;
	}
	while (!stop) {
		struct pollfd pf[2] = {{sfd, POLLIN, 0}, {p.fd, POLLIN, 0}};
		int timeout = -1;

		if (p.fd < 0 && restart_at) {
			long long left = restart_at - now_ms();

			if (left <= 0) {
				restart_at = 0;
				alog(ALOG_INFO,
				     "starting the network half again");
				child_start(&p);
				continue;
			}
			timeout = (int)left;
		}
		if (poll(pf, p.fd >= 0 ? 2 : 1, timeout) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[0].revents) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
				alog(ALOG_INFO, "signal %u: stopping",
				     si.ssi_signo);
				rc = 0;
				stop = true;
				continue;
			}
			/* SIGCHLD: the child, or a wireguard-go we started */
			for (;;) {
				int st;
				pid_t w = waitpid(-1, &st, WNOHANG);

				if (w <= 0)
					break;
				if (w != p.child)
					continue;
				p.child = 0;
				if (p.fd >= 0)
					close(p.fd);
				p.fd = -1;
				if (WIFEXITED(st) &&
				    (WEXITSTATUS(st) == AGENT_EXIT_REVOKED ||
				     WEXITSTATUS(st) == AGENT_EXIT_USAGE)) {
					rc = WEXITSTATUS(st);
					stop = true;
					break;
				}
				alog(ALOG_WARN,
				     "the network half ended (status %d); the "
				     "data plane stays as it is",
				     st);
				restart_at = now_ms() + backoff;
				backoff = backoff < 30000 ? backoff * 2 : 30000;
			}
			continue;
		}
		if (p.fd >= 0 && pf[1].revents) {
			if (serve_one(&p) < 0) {
				/* gone: SIGCHLD follows and decides */
				close(p.fd);
				p.fd = -1;
			} else {
				backoff = 500;
			}
		}
	}
	child_stop(&p);
	if (o->down_on_exit && p.wg)
		teardown(&p);
out:
	explicit_bzero(p.key, sizeof(p.key));
	wgctl_close(p.wg);
	free(p.nft_applied);
	if (sfd >= 0)
		close(sfd);
	return rc;
}
