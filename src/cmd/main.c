/*
 * main.c -- the signalbox binary: one executable, a subcommand per verb.
 */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
} commands[] = {
    {"serve", cmd_serve, "run the control plane on a data directory"},
    {"backup", cmd_backup, "copy a data directory's database, live"},
    {"restore", cmd_restore, "put a backup back into a data directory"},
    {"token", cmd_token, "create or revoke a bearer token"},
    {"audit", cmd_audit, "verify the audit log's hash chain"},
    {"agent", cmd_agent, "join this machine to a mesh and enforce its map"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: signalbox COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "  %-9s %s\n", "version", "print the version");
	fprintf(f, "\n'signalbox COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("signalbox %s\n", SIGNALBOX_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "signalbox: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
