/* qcow2-tool resize: change an image's virtual size, with qemu-img
 * resize's syntax: SIZE, +SIZE (grow by) or -SIZE (shrink by).
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>

#include "qcow2-edit.h"
#include "tool.h"

/* The new size from SIZE, +SIZE or -SIZE. */
static int
new_size (const char *arg, uint64_t now, uint64_t *size)
{
  uint64_t n;

  if (tool_parse_size ("size", arg + (arg[0] == '+' || arg[0] == '-'),
                       &n) == -1)
    return -1;
  if (arg[0] == '-' && n > now) {
    fprintf (stderr, "qcow2-tool resize: cannot shrink by %s: the image "
             "has %" PRIu64 " bytes\n", arg, now);
    return -1;
  }
  if (arg[0] == '+' && n > UINT64_MAX - now) {
    fprintf (stderr, "qcow2-tool resize: %s is too large\n", arg);
    return -1;
  }
  *size = arg[0] == '-' ? now - n : arg[0] == '+' ? now + n : n;
  return 0;
}

int
cmd_resize (int argc, char *argv[])
{
  struct qcow2_image *img;
  struct tool_options o;
  uint64_t size;
  int r;

  if (tool_parse_options (argc, argv, "s", 1, &o) != 0)
    return TOOL_FAILED;
  if (o.nr_operands != 1) {
    fprintf (stderr, "qcow2-tool resize: a size is needed\n");
    return tool_usage (argv[0]);
  }
  img = tool_open (o.image, TOOL_OPEN_WRITABLE);
  if (img == NULL)
    return TOOL_FAILED;
  r = new_size (o.operands[0], qcow2_size (img), &size);
  if (r == 0)
    r = qcow2_resize (img, size, o.shrink);
  if (tool_close (img) != 0 || r == -1)
    return TOOL_FAILED;
  printf ("Image resized.\n");
  return 0;
}
