/* qcow2-tool info: what qemu-img info prints about an image, and with
 * --output=json the same fields under the same names.
 */
#include <config.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qcow2-info.h"
#include "tool.h"

static const char *
compat_name (const struct qcow2_info *in)
{
  return in->version >= 3 ? "1.1" : "0.10";
}

static const char *
compression_name (const struct qcow2_info *in)
{
  return in->compression_type == 1 ? "zstd" : "zlib";
}

/* qemu-img's sizes for people: three significant digits of the largest
 * power of 1024 that leaves at least 0.9765625 (1000/1024).
 */
static void
human_size (uint64_t bytes, char *buf, size_t len)
{
  static const char *const prefix[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
  int e = 0, i;

  frexp (bytes / (1000.0 / 1024.0), &e);
  i = e > 0 ? (e - 1) / 10 : 0;
  snprintf (buf, len, "%0.3g %sB", (double) bytes / (double) (UINT64_C (1) << (i * 10)),
            prefix[i]);
}

/* The bytes the image file takes on disk (qemu-img does not count an
 * external data file).
 */
static int64_t
actual_size (const struct qcow2_image *img)
{
  return tool_disk_size (qcow2_filename (img));
}

/* Snapshot fields as qemu-img splits them. */
static json_object *
snapshot_json (const struct qcow2_snapshot_info *sn)
{
  json_object *o = tool_json_object ();

  tool_json_add_string (o, "id", sn->id);
  tool_json_add_string (o, "name", sn->name);
  tool_json_add_u64 (o, "vm-state-size", sn->vm_state_size);
  tool_json_add_u64 (o, "date-sec", sn->date_sec);
  tool_json_add_u64 (o, "date-nsec", sn->date_nsec);
  tool_json_add_u64 (o, "vm-clock-sec", sn->vm_clock_nsec / 1000000000);
  tool_json_add_u64 (o, "vm-clock-nsec", sn->vm_clock_nsec % 1000000000);
  if (sn->has_icount)
    tool_json_add_u64 (o, "icount", sn->icount);
  return o;
}

static json_object *
format_specific_json (const struct qcow2_info *in)
{
  json_object *fs = tool_json_object (), *d = tool_json_object ();

  tool_json_add_string (d, "compat", compat_name (in));
  tool_json_add_string (d, "compression-type", compression_name (in));
  if (in->version >= 3)
    tool_json_add_bool (d, "lazy-refcounts", in->lazy_refcounts);
  tool_json_add_u64 (d, "refcount-bits", in->refcount_bits);
  if (in->version >= 3) {
    tool_json_add_bool (d, "corrupt", in->corrupt);
    tool_json_add_bool (d, "extended-l2", in->extended_l2);
  }
  if (in->data_file) {
    tool_json_add_string (d, "data-file", in->data_file);
    tool_json_add_bool (d, "data-file-raw", in->data_file_raw);
  }
  tool_json_add_string (fs, "type", "qcow2");
  tool_json_add (fs, "data", d);
  return fs;
}

/* The name of the image below one named name, as qemu-img shows it. */
static char *
backing_name (const char *name, const struct qcow2_info *in)
{
  char *path = in->backing_file ? qcow2_path_combine (name, in->backing_file)
    : NULL;

  if (in->backing_file && path == NULL) {
    fprintf (stderr, "qcow2-tool: out of memory\n");
    exit (TOOL_FAILED);
  }
  return path;
}

static json_object *
qcow2_json (const struct qcow2_image *img, const char *name)
{
  struct qcow2_info in;
  json_object *o = tool_json_object ();
  int64_t actual;
  char *below;

  qcow2_get_info (img, &in);
  below = backing_name (name, &in);
  tool_json_add_string (o, "filename", name);
  tool_json_add_string (o, "format", in.qcow1 ? "qcow" : "qcow2");
  tool_json_add_u64 (o, "virtual-size", in.virtual_size);
  if ((actual = actual_size (img)) >= 0)
    tool_json_add_u64 (o, "actual-size", actual);
  tool_json_add_u64 (o, "cluster-size", in.cluster_size);
  tool_json_add_bool (o, "dirty-flag", in.dirty);
  if (in.crypt_method)
    tool_json_add_bool (o, "encrypted", true);
  if (in.backing_file) {
    tool_json_add_string (o, "backing-filename", in.backing_file);
    tool_json_add_string (o, "full-backing-filename", below);
  }
  if (in.backing_format)
    tool_json_add_string (o, "backing-filename-format", in.backing_format);
  if (in.nb_snapshots) {
    json_object *a = tool_json_array ();

    for (uint32_t i = 0; i < in.nb_snapshots; i++)
      tool_json_append (a, snapshot_json (&in.snapshots[i]));
    tool_json_add (o, "snapshots", a);
  }
  if (!in.qcow1)
    tool_json_add (o, "format-specific", format_specific_json (&in));
  free (below);
  return o;
}

/* A raw file below the chain: qemu-img knows only its size. */
static json_object *
raw_json (const struct qcow2_backing_info *b, const char *name)
{
  json_object *o = tool_json_object ();
  int64_t actual = tool_disk_size (b->name);

  tool_json_add_string (o, "filename", name);
  tool_json_add_string (o, "format", "raw");
  tool_json_add_u64 (o, "virtual-size", b->size);
  if (actual >= 0)
    tool_json_add_u64 (o, "actual-size", actual);
  tool_json_add_bool (o, "dirty-flag", false);
  return o;
}

static void
print_snapshot_line (const struct qcow2_snapshot_info *sn)
{
  char size[32], date[32] = "", clock[32], icount[32] = "";
  time_t t = sn->date_sec;
  struct tm tm;
  uint64_t secs = sn->vm_clock_nsec / 1000000000;

  human_size (sn->vm_state_size, size, sizeof size);
  if (localtime_r (&t, &tm))
    strftime (date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
  snprintf (clock, sizeof clock, "%02" PRIu64 ":%02u:%02u.%03u",
            secs / 3600, (unsigned) (secs / 60 % 60), (unsigned) (secs % 60),
            (unsigned) (sn->vm_clock_nsec / 1000000 % 1000));
  if (sn->has_icount)
    snprintf (icount, sizeof icount, "%" PRIu64, sn->icount);
  printf ("%-9s %-16s %8s%20s%13s%11s\n", sn->id, sn->name, size, date,
          clock, icount);
}

static void
print_format_specific (const struct qcow2_info *in)
{
  printf ("Format specific information:\n"
          "    compat: %s\n"
          "    compression type: %s\n", compat_name (in), compression_name (in));
  if (in->version >= 3)
    printf ("    lazy refcounts: %s\n", in->lazy_refcounts ? "true" : "false");
  printf ("    refcount bits: %u\n", in->refcount_bits);
  if (in->version >= 3)
    printf ("    corrupt: %s\n"
            "    extended l2: %s\n", in->corrupt ? "true" : "false",
            in->extended_l2 ? "true" : "false");
  if (in->data_file)
    printf ("    data file: %s\n"
            "    data file raw: %s\n", in->data_file,
            in->data_file_raw ? "true" : "false");
}

static void
print_size_line (const char *what, uint64_t bytes, bool exact)
{
  char buf[32];

  human_size (bytes, buf, sizeof buf);
  if (exact)
    printf ("%s: %s (%" PRIu64 " bytes)\n", what, buf, bytes);
  else
    printf ("%s: %s\n", what, buf);
}

static void
print_qcow2 (const struct qcow2_image *img, const char *name)
{
  struct qcow2_info in;
  int64_t actual;
  char *below;

  qcow2_get_info (img, &in);
  below = backing_name (name, &in);
  printf ("image: %s\nfile format: %s\n", name,
          in.qcow1 ? "qcow" : "qcow2");
  print_size_line ("virtual size", in.virtual_size, true);
  actual = actual_size (img);
  if (actual >= 0)
    print_size_line ("disk size", actual, false);
  printf ("cluster_size: %" PRIu64 "\n", in.cluster_size);
  if (in.crypt_method)
    printf ("encrypted: yes\n");
  if (in.backing_file && strcmp (below, in.backing_file) != 0)
    printf ("backing file: %s (actual path: %s)\n", in.backing_file, below);
  else if (in.backing_file)
    printf ("backing file: %s\n", in.backing_file);
  if (in.backing_format)
    printf ("backing file format: %s\n", in.backing_format);
  if (in.dirty)
    printf ("cleanly shut down: no\n");
  if (in.nb_snapshots) {
    printf ("Snapshot list:\n%-10s%-17s%8s%20s%13s%11s\n",
            "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
    for (uint32_t i = 0; i < in.nb_snapshots; i++)
      print_snapshot_line (&in.snapshots[i]);
  }
  if (!in.qcow1)
    print_format_specific (&in);
  free (below);
}

static void
print_raw (const struct qcow2_backing_info *b, const char *name)
{
  int64_t actual = tool_disk_size (b->name);

  printf ("image: %s\nfile format: raw\n", name);
  print_size_line ("virtual size", b->size, true);
  if (actual >= 0)
    print_size_line ("disk size", actual, false);
}

/* One image, or with --backing-chain every image below it too. */
static void
report (const struct qcow2_image *img, const struct tool_options *o)
{
  json_object *list = o->backing_chain && o->output == OUTPUT_JSON
    ? tool_json_array () : NULL;
  struct qcow2_backing_info b = { .qcow2 = (struct qcow2_image *) img };
  char *name = strdup (o->image);

  while (name) {
    struct qcow2_info in;
    char *next = NULL;

    if (b.qcow2 && list)
      tool_json_append (list, qcow2_json (b.qcow2, name));
    else if (b.qcow2 && o->output == OUTPUT_JSON)
      tool_json_print (qcow2_json (b.qcow2, name));
    else if (b.qcow2)
      print_qcow2 (b.qcow2, name);
    else if (o->output == OUTPUT_JSON)
      tool_json_append (list, raw_json (&b, name));
    else
      print_raw (&b, name);
    if (o->backing_chain && b.qcow2) {
      qcow2_get_info (b.qcow2, &in);
      next = backing_name (name, &in);
      qcow2_get_backing (b.qcow2, &b);
      if (b.name == NULL) {
        free (next);
        next = NULL;
      }
    }
    free (name);
    name = next;
    if (name && o->output == OUTPUT_HUMAN)
      printf ("\n");
  }
  if (list)
    tool_json_print (list);
}

int
cmd_info (int argc, char *argv[])
{
  struct tool_options o;
  struct qcow2_image *img;

  if (tool_parse_options (argc, argv, "ob", 0, &o) != 0)
    return TOOL_FAILED;
  /* The chain is opened only to be shown (qemu-img info opens it too). */
  img = tool_open (o.image, o.backing_chain ? 0 : TOOL_OPEN_NO_BACKING);
  if (img == NULL)
    return TOOL_FAILED;
  report (img, &o);
  return tool_close (img);
}
