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

#endif
