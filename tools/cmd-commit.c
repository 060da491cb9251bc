/* qcow2-tool commit: write an image's data into its backing file and
 * empty it, as qemu-img commit does.
 */
#include <config.h>

#include <stdio.h>

#include "qcow2-edit.h"
#include "tool.h"

int
cmd_commit (int argc, char *argv[])
{
  struct qcow2_image *img;
  struct tool_options o;
  int r;

  if (tool_parse_options (argc, argv, "", 0, &o) != 0)
    return TOOL_FAILED;
  img = tool_open (o.image, TOOL_OPEN_WRITABLE | TOOL_OPEN_WRITABLE_BACKING);
  if (img == NULL)
    return TOOL_FAILED;
  r = qcow2_commit (img);
  if (tool_close (img) != 0 || r == -1)
    return TOOL_FAILED;
  printf ("Image committed.\n");
  return 0;
}
