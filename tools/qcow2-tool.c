/* qcow2-tool: the image operations of qemu-img, on the qcow2 engine of
 * common/qcow2, without QEMU.  This file only finds the subcommand and
 * routes the engine's messages; each subcommand is one cmd-*.c file.
 */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "tool.h"

static const struct tool_command commands[] = {
  { "info", cmd_info, "[--output=human|json] [--backing-chain] IMAGE" },
  { "map", cmd_map, "[--output=human|json] IMAGE" },
  { "check", cmd_check, "[-r leaks|all] [--output=human|json] IMAGE" },
};
#define NR_COMMANDS (sizeof commands / sizeof commands[0])

static void
print_error (const char *fs, va_list args)
{
  fputs ("qcow2-tool: ", stderr);
  vfprintf (stderr, fs, args);
  fputc ('\n', stderr);
}

static void
print_debug (const char *fs, va_list args)
{
  fputs ("qcow2-tool: debug: ", stderr);
  vfprintf (stderr, fs, args);
  fputc ('\n', stderr);
}

static const struct tool_command *
find_command (const char *name)
{
  for (size_t i = 0; i < NR_COMMANDS; i++)
    if (strcmp (commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

int
tool_usage (const char *name)
{
  const struct tool_command *c = find_command (name);

  if (c)
    fprintf (stderr, "usage: qcow2-tool %s %s\n", c->name, c->usage);
  return TOOL_FAILED;
}

static void
usage (FILE *f)
{
  fprintf (f, "usage: qcow2-tool [-v] COMMAND [OPTIONS] IMAGE ...\n"
           "Commands:\n");
  for (size_t i = 0; i < NR_COMMANDS; i++)
    fprintf (f, "  %s %s\n", commands[i].name, commands[i].usage);
  fprintf (f, "See qcow2-tool(1).\n");
}

int
main (int argc, char *argv[])
{
  const struct tool_command *c;
  int i = 1;

  diag_set_handlers (print_error, NULL);
  if (i < argc && strcmp (argv[i], "-v") == 0) {
    diag_set_handlers (print_error, print_debug);
    i++;
  }
  if (i >= argc) {
    usage (stderr);
    return TOOL_FAILED;
  }
  if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0) {
    usage (stdout);
    return EXIT_SUCCESS;
  }
  if (strcmp (argv[i], "--version") == 0) {
    printf ("qcow2-tool %s\n", PACKAGE_VERSION);
    return EXIT_SUCCESS;
  }
  c = find_command (argv[i]);
  if (c == NULL) {
    fprintf (stderr, "qcow2-tool: unknown command '%s'\n", argv[i]);
    usage (stderr);
    return TOOL_FAILED;
  }
  return c->run (argc - i, argv + i);
}
