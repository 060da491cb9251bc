/* qcow2-tool map: where each guest range of an image and its backing
 * chain is stored, as qemu-img map prints it.  The engine gives one
 * extent at a time (qcow2_map_extent); neighbours that say the same
 * (same layer, same flags, offsets that follow on) are merged into one
 * line, as qemu-img merges them.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "qcow2-info.h"
#include "tool.h"

struct map_output {
  enum tool_output format;
  json_object *list;
  struct qcow2_map_extent cur;  /* being merged; length 0 = none */
};

static bool
mergeable (const struct qcow2_map_extent *a, const struct qcow2_map_extent *b)
{
  return a->depth == b->depth && a->present == b->present &&
    a->zero == b->zero && a->data == b->data &&
    a->has_offset == b->has_offset &&
    (!a->has_offset || a->offset + a->length == b->offset) &&
    (a->file == b->file || (a->file && b->file && strcmp (a->file, b->file) == 0));
}

static int
emit (struct map_output *out, const struct qcow2_map_extent *e)
{
  if (out->format == OUTPUT_JSON) {
    json_object *o = tool_json_object ();

    tool_json_add_u64 (o, "start", e->start);
    tool_json_add_u64 (o, "length", e->length);
    tool_json_add_u64 (o, "depth", e->depth);
    tool_json_add_bool (o, "present", e->present);
    tool_json_add_bool (o, "zero", e->zero);
    tool_json_add_bool (o, "data", e->data);
    if (e->has_offset)
      tool_json_add_u64 (o, "offset", e->offset);
    tool_json_append (out->list, o);
    return 0;
  }
  /* The human form lists stored data only, and needs its offset. */
  if (e->data && !e->has_offset) {
    fprintf (stderr, "qcow2-tool map: the image has compressed or encrypted "
             "clusters: use --output=json\n");
    return -1;
  }
  if (e->data && !e->zero)
    printf ("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n",
            e->start, e->length, e->offset, e->file);
  return 0;
}

static int
add (struct map_output *out, const struct qcow2_map_extent *e)
{
  if (out->cur.length && mergeable (&out->cur, e)) {
    out->cur.length += e->length;
    return 0;
  }
  if (out->cur.length && emit (out, &out->cur) == -1)
    return -1;
  out->cur = *e;
  return 0;
}

static int
map_image (struct qcow2_image *img, struct map_output *out)
{
  const uint64_t size = qcow2_size (img);
  uint64_t offset = 0;

  if (out->format == OUTPUT_HUMAN)
    printf ("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
  while (offset < size) {
    struct qcow2_map_extent e;

    if (qcow2_map_extent (img, offset, size - offset, &e) == -1 ||
        add (out, &e) == -1)
      return -1;
    offset += e.length;
  }
  if (out->cur.length && emit (out, &out->cur) == -1)
    return -1;
  return 0;
}

int
cmd_map (int argc, char *argv[])
{
  struct tool_options o;
  struct map_output out = { .list = NULL };
  struct qcow2_image *img;
  int r;

  if (tool_parse_options (argc, argv, "o", 0, &o) != 0)
    return TOOL_FAILED;
  img = tool_open (o.image, 0);
  if (img == NULL)
    return TOOL_FAILED;
  out.format = o.output;
  if (out.format == OUTPUT_JSON)
    out.list = tool_json_array ();
  r = map_image (img, &out);
  if (out.list && r == 0)
    tool_json_print (out.list);
  else if (out.list)
    json_object_put (out.list);
  if (tool_close (img) != 0 || r == -1)
    return TOOL_FAILED;
  return 0;
}
