/* What qcow2-tool's subcommands share (see tool.h). */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "checked-overflow.h"
#include "qcow2.h"
#include "qcow2-info.h"
#include "tool.h"

enum {
  OPT_OUTPUT = 256,
  OPT_BACKING_CHAIN,
  OPT_SHRINK,
  OPT_HELP,
};

static const struct option long_options[] = {
  { "output", required_argument, NULL, OPT_OUTPUT },
  { "backing-chain", no_argument, NULL, OPT_BACKING_CHAIN },
  { "shrink", no_argument, NULL, OPT_SHRINK },
  { "help", no_argument, NULL, OPT_HELP },
  { NULL, 0, NULL, 0 },
};

/* The letter of tool_parse_options' accepts string for an option. */
static char
option_letter (int c)
{
  switch (c) {
  case OPT_OUTPUT: return 'o';
  case OPT_BACKING_CHAIN: return 'b';
  case OPT_SHRINK: return 's';
  case 'r': return 'r';
  default: return 0;
  }
}

static int
parse_output (const char *name, const char *arg, enum tool_output *out)
{
  if (strcmp (arg, "human") == 0)
    *out = OUTPUT_HUMAN;
  else if (strcmp (arg, "json") == 0)
    *out = OUTPUT_JSON;
  else {
    fprintf (stderr, "qcow2-tool %s: --output must be human or json, "
             "not '%s'\n", name, arg);
    return TOOL_FAILED;
  }
  return 0;
}

static int
parse_repair (const char *name, const char *arg, const char **repair)
{
  if (strcmp (arg, "leaks") != 0 && strcmp (arg, "all") != 0) {
    fprintf (stderr, "qcow2-tool %s: -r must be leaks or all, not '%s'\n",
             name, arg);
    return TOOL_FAILED;
  }
  *repair = arg;
  return 0;
}

/* qemu-img's -f: only qcow2 is ever right here. */
static int
check_format (const char *name, const char *arg)
{
  if (strcmp (arg, "qcow2") != 0) {
    fprintf (stderr, "qcow2-tool %s: -f %s: only qcow2 images are handled\n",
             name, arg);
    return TOOL_FAILED;
  }
  return 0;
}

static int
parse_one (const char *name, int c, const char *accepts, struct tool_options *o)
{
  char letter = option_letter (c);

  if (c == OPT_HELP) {
    tool_usage (name);
    exit (EXIT_SUCCESS);
  }
  if (c == 'f')
    return check_format (name, optarg);
  if (letter == 0 || strchr (accepts, letter) == NULL)
    return tool_usage (name);
  switch (c) {
  case OPT_OUTPUT: return parse_output (name, optarg, &o->output);
  case OPT_BACKING_CHAIN: o->backing_chain = true; return 0;
  case OPT_SHRINK: o->shrink = true; return 0;
  case 'r': return parse_repair (name, optarg, &o->repair);
  }
  return tool_usage (name);
}

int
tool_parse_options (int argc, char *argv[], const char *accepts,
                    int max_operands, struct tool_options *o)
{
  const char *name = argv[0];
  int c;

  *o = (struct tool_options) { .output = OUTPUT_HUMAN };
  optind = 1;
  /* "+": options stop at the first operand, as resize's -SIZE is one. */
  while ((c = getopt_long (argc, argv, "+f:r:", long_options, NULL)) != -1) {
    if (c == '?' || c == ':')
      return tool_usage (name);
    if (parse_one (name, c, accepts, o) != 0)
      return TOOL_FAILED;
  }
  if (optind >= argc) {
    fprintf (stderr, "qcow2-tool %s: an image is needed\n", name);
    return tool_usage (name);
  }
  o->image = argv[optind++];
  o->nr_operands = argc - optind;
  o->operands = argv + optind;
  if (o->nr_operands > max_operands) {
    fprintf (stderr, "qcow2-tool %s: unexpected argument '%s'\n",
             name, o->operands[max_operands]);
    return tool_usage (name);
  }
  return 0;
}

struct qcow2_image *
tool_open (const char *filename, unsigned flags)
{
  struct qcow2_options opts = {
    .opener = &qcow2_local_files,
    .filename = filename,
    .readonly = !(flags & (TOOL_OPEN_WRITABLE | TOOL_OPEN_REPAIR)),
    .backing = (flags & TOOL_OPEN_NO_BACKING) ? QCOW2_BACKING_SKIP
               : QCOW2_BACKING_AUTO,
    .writable_backing = (flags & TOOL_OPEN_WRITABLE_BACKING) != 0,
    .check = (flags & TOOL_OPEN_CHECK) != 0,
    /* No subcommand here reads guest data: encrypted images need no key. */
    .metadata_only = !(flags & TOOL_OPEN_WRITABLE),
  };
  struct qcow2_image *img;

  if (qcow2_open (&opts, &img) == -1)
    return NULL;
  if ((flags & TOOL_OPEN_WRITABLE) && qcow2_prepare_write (img) == -1) {
    if (errno == EROFS)
      fprintf (stderr, "qcow2-tool: %s: cannot be opened for writing\n",
               filename);
    qcow2_close (img);
    return NULL;
  }
  return img;
}

int
tool_close (struct qcow2_image *img)
{
  return qcow2_close (img) == -1 ? TOOL_FAILED : 0;
}

static int
size_shift (char suffix, unsigned *shift)
{
  static const char suffixes[] = "bkmgtpe";
  const char *p = strchr (suffixes, suffix | 0x20);

  if (suffix == '\0' || p == NULL)
    return -1;
  *shift = (p - suffixes) * 10;
  return 0;
}

int
tool_parse_size (const char *what, const char *s, uint64_t *ret)
{
  char *end;
  unsigned long long n;
  unsigned shift = 0;

  errno = 0;
  if (s[0] < '0' || s[0] > '9')
    goto bad;
  n = strtoull (s, &end, 10);
  if (errno == ERANGE)
    goto too_large;
  if (*end != '\0' && (size_shift (*end, &shift) == -1 || end[1] != '\0'))
    goto bad;
  if (shift && n > (UINT64_MAX >> shift))
    goto too_large;
  *ret = (uint64_t) n << shift;
  return 0;

 bad:
  fprintf (stderr, "qcow2-tool: %s '%s' is not a size (digits with an "
           "optional suffix k, M, G, T, P, E)\n", what, s);
  return -1;
 too_large:
  fprintf (stderr, "qcow2-tool: %s '%s' is too large\n", what, s);
  return -1;
}

int64_t
tool_disk_size (const char *filename)
{
  struct stat st;

  if (stat (filename, &st) == -1)
    return -1;
  return (int64_t) st.st_blocks * 512;
}

static json_object *
checked (json_object *v)
{
  if (v == NULL) {
    fprintf (stderr, "qcow2-tool: out of memory\n");
    exit (TOOL_FAILED);
  }
  return v;
}

json_object *
tool_json_object (void)
{
  return checked (json_object_new_object ());
}

json_object *
tool_json_array (void)
{
  return checked (json_object_new_array ());
}

void
tool_json_add (json_object *obj, const char *key, json_object *value)
{
  if (json_object_object_add (obj, key, value) != 0)
    checked (NULL);
}

void
tool_json_add_u64 (json_object *obj, const char *key, uint64_t value)
{
  tool_json_add (obj, key, checked (json_object_new_uint64 (value)));
}

void
tool_json_add_bool (json_object *obj, const char *key, bool value)
{
  tool_json_add (obj, key, checked (json_object_new_boolean (value)));
}

void
tool_json_add_string (json_object *obj, const char *key, const char *value)
{
  tool_json_add (obj, key, checked (json_object_new_string (value)));
}

void
tool_json_append (json_object *array, json_object *value)
{
  if (json_object_array_add (array, value) != 0)
    checked (NULL);
}

void
tool_json_print (json_object *value)
{
  printf ("%s\n", json_object_to_json_string_ext (value,
                                                   JSON_C_TO_STRING_PRETTY |
                                                   JSON_C_TO_STRING_SPACED |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put (value);
}

/* qemu-img's sizes for people: three significant digits of the largest
 * power of 1024 that leaves at least 0.9765625 (1000/1024).
 */
void
tool_human_size (uint64_t bytes, char *buf, size_t len)
{
  static const char *const prefix[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
  int e = 0, i;

  frexp (bytes / (1000.0 / 1024.0), &e);
  i = e > 0 ? (e - 1) / 10 : 0;
  snprintf (buf, len, "%0.3g %sB", (double) bytes / (double) (UINT64_C (1) << (i * 10)),
            prefix[i]);
}

static void
print_snapshot_line (const struct qcow2_snapshot_info *sn)
{
  char size[32], date[32] = "", clock[32], icount[32] = "";
  time_t t = sn->date_sec;
  struct tm tm;
  uint64_t secs = sn->vm_clock_nsec / 1000000000;

  tool_human_size (sn->vm_state_size, size, sizeof size);
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

void
tool_print_snapshot_list (const struct qcow2_info *in)
{
  printf ("Snapshot list:\n%-10s%-17s%8s%20s%13s%11s\n",
          "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
  for (uint32_t i = 0; i < in->nb_snapshots; i++)
    print_snapshot_line (&in->snapshots[i]);
}
