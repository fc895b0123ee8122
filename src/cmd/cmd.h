/*
 * cmd.h -- the signalbox subcommands. main.c picks one by name; each takes
 * the arguments after its name and returns the process exit status
 * (0 ok, 1 failure, 2 bad usage). They print errors to stderr themselves.
 */
#ifndef SIGNALBOX_CMD_H
#define SIGNALBOX_CMD_H

#define SIGNALBOX_VERSION "0.1.0"

/* serve.c */
int cmd_serve(int argc, char **argv);

/* backup.c */
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);

/* token.c */
int cmd_token(int argc, char **argv);

/* audit.c */
int cmd_audit(int argc, char **argv);

/* agent.c (src/agent/ does the work) */
int cmd_agent(int argc, char **argv);

/* kubeconfig.c: the admin kubeconfig serve writes, read back by the
 * commands that call the API. */
typedef struct kubeconfig {
	char *server;	/* https://host:port */
	char *ca_pem;	/* may be NULL */
	char *cert_pem; /* may be NULL */
	char *key_pem;	/* may be NULL */
} kubeconfig;
/* Write path (mode 0600, atomically) for server, with the CA and client
 * certificate and key files inlined (cert and key may be NULL). */
int kubeconfig_write(const char *path, const char *server, const char *ca,
		     const char *cert, const char *key);
int kubeconfig_read(const char *path, kubeconfig *kc);
void kubeconfig_free(kubeconfig *kc);

#endif
