/*
 * proc.h -- running the privileged half's helper programs (ip, nft, wg,
 * wireguard-go) without a shell.
 *
 * Arguments go to execvp as they are, so nothing in them is ever parsed
 * by a shell; the privileged half builds them from checked values only.
 * A child gets the default signal mask and dispositions (the privileged
 * half blocks signals for its signalfd) and none of the caller's file
 * descriptors but 0, 1 and 2 (everything else the agent opens is
 * close-on-exec).
 */
#ifndef SIGNALBOX_AGENT_PROC_H
#define SIGNALBOX_AGENT_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* How long proc_run lets a program run before it is killed. */
#define PROC_TIMEOUT_MS 30000

/* Prototypes */

/*
 * Run argv[0] (looked up in PATH) with argv, feed it in (inlen bytes; in
 * may be NULL) on standard input and wait for it. *out (may be NULL) gets
 * its standard output, a new NUL-terminated string the caller frees. The
 * first part of its standard error goes into err (may be NULL).
 * Returns its exit status (0..255), or a negative errno: it could not be
 * started, or it was killed (-ETIMEDOUT after PROC_TIMEOUT_MS, -EINTR for
 * another signal).
 */
int proc_run(char *const argv[], const char *in, size_t inlen, char **out,
	     char *err, size_t errlen);

/*
 * Start argv[0] (PATH lookup) as a daemon of its own: a new session,
 * standard input from /dev/null, standard output and error appended to
 * logpath (or /dev/null when NULL). Returns its PID, or a negative errno.
 * The caller reaps it (waitpid) if it exits while the caller runs.
 */
pid_t proc_spawn(char *const argv[], const char *logpath);

#endif
