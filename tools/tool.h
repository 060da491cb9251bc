/* What qcow2-tool's subcommands share (tool.c): the command table,
 * opening an image, the options every subcommand takes, sizes, and
 * JSON output.  The work itself is done by the engine (common/qcow2).
 */
#ifndef QCOW2_TOOL_H
#define QCOW2_TOOL_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "qcow2.h"

/* Exit status of a failed command (qemu-img's). */
#define TOOL_FAILED 1

/* One subcommand: argv[0] is its name; returns the exit status. */
struct tool_command {
  const char *name;
  int (*run) (int argc, char *argv[]);
  const char *usage;            /* its arguments, for --help */
};

/* Print a subcommand's usage line to stderr; returns TOOL_FAILED. */
extern int tool_usage (const char *name);

/* The options shared by subcommands, parsed by tool_parse_options. */
enum tool_output { OUTPUT_HUMAN, OUTPUT_JSON };

struct tool_options {
  enum tool_output output;      /* --output=human|json */
  bool backing_chain;           /* --backing-chain */
  const char *repair;           /* -r leaks|all; NULL = none */
  bool shrink;                  /* --shrink */
  const char *image;            /* the one operand left, if wanted */
  int nr_operands;              /* operands after the image */
  char **operands;
};

/* The options a subcommand accepts, as a string of their letters:
 * o --output, b --backing-chain, r -r, s --shrink.  Unknown options
 * are refused.  Every subcommand takes -f qcow2 (qemu-img's) and
 * --help.  Exactly one image operand is required, followed by up to
 * max_operands more.  Returns 0, or TOOL_FAILED after a message.
 */
extern int tool_parse_options (int argc, char *argv[], const char *accepts,
                               int max_operands, struct tool_options *o);

/* Open an image for a subcommand, reporting any failure. */
enum {
  TOOL_OPEN_WRITABLE = 1,       /* for writing (qcow2_prepare_write) */
  TOOL_OPEN_NO_BACKING = 2,     /* the image (and its data file), not
                                   the layers below */
  TOOL_OPEN_CHECK = 4,          /* for a check (qcow2_options.check) */
  TOOL_OPEN_REPAIR = 8,         /* not read-only, but not prepared for
                                   writing: the repair does that */
};
extern struct qcow2_image *tool_open (const char *filename, unsigned flags);
/* Close, reporting a failure; returns 0 or TOOL_FAILED. */
extern int tool_close (struct qcow2_image *img);

/* A size as qemu-img takes one: digits, then an optional suffix
 * b, k, M, G, T, P, E (powers of 1024).  Returns 0, or -1 after a
 * message naming what.
 */
extern int tool_parse_size (const char *what, const char *s, uint64_t *ret);

/* The bytes a file takes on disk (qemu-img's "disk size"), or -1. */
extern int64_t tool_disk_size (const char *filename);

/* JSON output (json-c): new values, checked; on failure the program
 * exits (out of memory).
 */
extern json_object *tool_json_object (void);
extern json_object *tool_json_array (void);
extern void tool_json_add (json_object *obj, const char *key,
                           json_object *value);
extern void tool_json_add_u64 (json_object *obj, const char *key,
                               uint64_t value);
extern void tool_json_add_bool (json_object *obj, const char *key,
                                bool value);
extern void tool_json_add_string (json_object *obj, const char *key,
                                  const char *value);
extern void tool_json_append (json_object *array, json_object *value);
/* Print to stdout, pretty, and release it. */
extern void tool_json_print (json_object *value);

/* The subcommands (cmd-*.c). */
extern int cmd_info (int argc, char *argv[]);
extern int cmd_map (int argc, char *argv[]);
extern int cmd_check (int argc, char *argv[]);

#endif /* QCOW2_TOOL_H */
