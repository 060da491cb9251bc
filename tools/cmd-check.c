/* qcow2-tool check: qemu-img check's counts, output and exit status.
 *
 *   0  no problem found
 *   1  the check could not run to its end (or the image not be opened)
 *   2  corruptions (whether or not leaks too)
 *   3  leaks only
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "qcow2-check.h"
#include "tool.h"

#define CHECK_CORRUPT 2
#define CHECK_LEAKS 3

/* qemu-img leaves a count out of its JSON when it is zero. */
static void
add_nonzero (json_object *o, const char *key, uint64_t value)
{
  if (value)
    tool_json_add_u64 (o, key, value);
}

static void
print_json (const char *filename, const struct qcow2_check_result *r)
{
  json_object *o = tool_json_object ();

  tool_json_add_string (o, "filename", filename);
  tool_json_add_string (o, "format", "qcow2");
  tool_json_add_u64 (o, "check-errors", r->check_errors);
  add_nonzero (o, "corruptions", r->corruptions);
  add_nonzero (o, "leaks", r->leaks);
  add_nonzero (o, "corruptions-fixed", r->corruptions_fixed);
  add_nonzero (o, "leaks-fixed", r->leaks_fixed);
  add_nonzero (o, "image-end-offset", r->image_end_offset);
  add_nonzero (o, "total-clusters", r->total_clusters);
  add_nonzero (o, "allocated-clusters", r->allocated_clusters);
  add_nonzero (o, "fragmented-clusters", r->fragmented_clusters);
  add_nonzero (o, "compressed-clusters", r->compressed_clusters);
  tool_json_print (o);
}

static void
print_human (const struct qcow2_check_result *r)
{
  if (!(r->corruptions || r->leaks || r->check_errors))
    printf ("No errors were found on the image.\n");
  if (r->corruptions)
    printf ("\n%" PRIu64 " errors were found on the image.\n"
            "Data may be corrupted, or further writes to the image may "
            "corrupt it.\n", r->corruptions);
  if (r->leaks)
    printf ("\n%" PRIu64 " leaked clusters were found on the image.\n"
            "This means waste of disk space, but no harm to data.\n",
            r->leaks);
  if (r->check_errors)
    printf ("\n%" PRIu64 " internal errors have occurred during the check.\n",
            r->check_errors);
  if (r->total_clusters && r->allocated_clusters)
    printf ("%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, %0.2f%% fragmented, "
            "%0.2f%% compressed clusters\n",
            r->allocated_clusters, r->total_clusters,
            r->allocated_clusters * 100.0 / r->total_clusters,
            r->fragmented_clusters * 100.0 / r->allocated_clusters,
            r->compressed_clusters * 100.0 / r->allocated_clusters);
  if (r->image_end_offset)
    printf ("Image end offset: %" PRIu64 "\n", r->image_end_offset);
}

static int
exit_status (const struct qcow2_check_result *r)
{
  if (r->check_errors) {
    fprintf (stderr, "qcow2-tool check: Check failed\n");
    return TOOL_FAILED;
  }
  if (r->corruptions)
    return CHECK_CORRUPT;
  return r->leaks ? CHECK_LEAKS : 0;
}

static unsigned
fix_flags (const char *repair)
{
  if (repair == NULL)
    return 0;
  if (strcmp (repair, "leaks") == 0)
    return QCOW2_FIX_LEAKS;
  return QCOW2_FIX_LEAKS | QCOW2_FIX_ERRORS;
}

int
cmd_check (int argc, char *argv[])
{
  struct tool_options o;
  struct qcow2_check_result r;
  struct qcow2_image *img;
  unsigned fix;
  int ret;

  if (tool_parse_options (argc, argv, "or", 0, &o) != 0)
    return TOOL_FAILED;
  fix = fix_flags (o.repair);
  img = tool_open (o.image, TOOL_OPEN_NO_BACKING | TOOL_OPEN_CHECK |
                   (fix ? TOOL_OPEN_REPAIR : 0));
  if (img == NULL)
    return TOOL_FAILED;
  ret = fix ? qcow2_check_repair (img, fix, &r) : qcow2_check (img, &r);
  if (tool_close (img) != 0)
    return TOOL_FAILED;
  /* A refusal has said why; a check that could not finish says so. */
  if (ret == -1) {
    if (r.check_errors)
      fprintf (stderr, "qcow2-tool check: Check failed\n");
    return TOOL_FAILED;
  }
  if (o.output == OUTPUT_HUMAN && (r.corruptions_fixed || r.leaks_fixed))
    printf ("The following inconsistencies were found and repaired:\n\n"
            "    %" PRIu64 " leaked clusters\n"
            "    %" PRIu64 " corruptions\n\n"
            "Double checking the fixed image now...\n",
            r.leaks_fixed, r.corruptions_fixed);
  if (o.output == OUTPUT_JSON)
    print_json (o.image, &r);
  else
    print_human (&r);
  return exit_status (&r);
}
