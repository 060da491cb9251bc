/* qcow2-tool snapshot: list, create, delete and apply internal
 * snapshots, with qemu-img snapshot's options (one of -l, -c NAME,
 * -d NAME, -a NAME; -l when none is given).
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2-edit.h"
#include "qcow2-info.h"
#include "tool.h"

struct snapshot_op {
  char op;                      /* l, c, d or a */
  const char *name;
};

/* Copy argv to rest without the operation, which goes to *op (the
 * shared parser does the rest); returns the new argc, or -1 after a
 * message.
 */
static int
take_operation (int argc, char *argv[], struct snapshot_op *op, char **rest)
{
  int k = 0;

  rest[k++] = argv[0];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];

    if (strcmp (a, "--") == 0) {
      while (i < argc)
        rest[k++] = argv[i++];
      break;
    }
    if (a[0] != '-' || a[1] == '\0' || strchr ("lcda", a[1]) == NULL) {
      rest[k++] = argv[i];
      continue;
    }
    if (op->op) {
      fprintf (stderr, "qcow2-tool snapshot: only one of -l, -c, -d, -a "
               "may be given\n");
      return -1;
    }
    op->op = a[1];
    if (op->op == 'l') {
      if (a[2] == '\0')
        continue;
      fprintf (stderr, "qcow2-tool snapshot: -l takes no argument\n");
      return -1;
    }
    op->name = a[2] ? a + 2 : i + 1 < argc ? argv[++i] : NULL;
    if (op->name == NULL) {
      fprintf (stderr, "qcow2-tool snapshot: -%c needs a snapshot name\n",
               op->op);
      return -1;
    }
  }
  rest[k] = NULL;
  if (op->op == 0)
    op->op = 'l';
  return k;
}

static int
list (const char *image)
{
  struct qcow2_image *img = tool_open (image, TOOL_OPEN_NO_BACKING);
  struct qcow2_info in;

  if (img == NULL)
    return TOOL_FAILED;
  qcow2_get_info (img, &in);
  /* Nothing at all without snapshots, as qemu-img. */
  if (in.nb_snapshots)
    tool_print_snapshot_list (&in);
  return tool_close (img);
}

static int
edit (const char *image, const struct snapshot_op *op)
{
  struct qcow2_image *img = tool_open (image, TOOL_OPEN_WRITABLE |
                                       TOOL_OPEN_NO_BACKING);
  int r;

  if (img == NULL)
    return TOOL_FAILED;
  switch (op->op) {
  case 'c': r = qcow2_snapshot_create (img, op->name); break;
  case 'd': r = qcow2_snapshot_delete (img, op->name); break;
  default:  r = qcow2_snapshot_apply (img, op->name); break;
  }
  if (tool_close (img) != 0)
    r = -1;
  return r == -1 ? TOOL_FAILED : 0;
}

int
cmd_snapshot (int argc, char *argv[])
{
  struct snapshot_op op = { 0 };
  struct tool_options o;
  char **rest = calloc (argc + 1, sizeof *rest);
  int n = rest ? take_operation (argc, argv, &op, rest) : -1;

  if (n == -1) {
    free (rest);
    return tool_usage (argv[0]);
  }
  if (tool_parse_options (n, rest, "", 0, &o) != 0) {
    free (rest);
    return TOOL_FAILED;
  }
  free (rest);
  return op.op == 'l' ? list (o.image) : edit (o.image, &op);
}
