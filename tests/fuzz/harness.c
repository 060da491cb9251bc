/* One fuzzing input through the qcow2 engine.
 *
 * The input is an image file.  It is written to a directory of the
 * process's own and opened by name, as the plugin opens files.  No name
 * recorded in the image is ever opened as it stands: an image that
 * wants an external data file gets another copy of the input, given as
 * data-file=; the backing file is followed only when its name is "b",
 * a third copy of the input beside the image, without a backing file
 * name, and otherwise backing=none.  Legacy AES images
 * (crypt_method 1) get the passphrase "fuzz", since unlocking them
 * costs nothing; LUKS ones (crypt_method 2) get it only in the
 * encrypted mode, whose seeds have cheap key slots (kdf-cap.c refuses
 * dear ones).
 *
 * The work per input is bounded whatever the virtual size says: the
 * first WALK_BYTES of the guest are read in pseudo-random chunks, then
 * a few pseudo-random ranges across the rest and the very end.  The
 * choices come from a PRNG seeded with a hash of the input, so a run is
 * reproducible from the input alone.
 *
 * The tool mode runs what qcow2-tool runs, one after the other on the
 * same file: an open as info's and map's, a map, a check, then a repair
 * or snapshot and resize edits, then the read mode over what they left.
 *
 * Besides the sanitizers the harness checks what it can see itself:
 * block status must tile each range it is asked about, a range it calls
 * "zero" must read as zeroes, a read split in two must give the bytes
 * of the whole read, what a successful write or zero stored must read
 * back, a repair's closing check must be what a check of the repaired
 * image finds, and a clean image must stay clean through edits that
 * succeed.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "byte-order.h"
#include "diag.h"
#include "fuzz-rng.h"
#include "harness.h"
#include "is-zero.h"
#include "minmax.h"
#include "qcow2.h"
#include "qcow2-check.h"
#include "qcow2-edit.h"
#include "qcow2-info.h"

#define WALK_BYTES      (UINT64_C (8) * 1024 * 1024)
#define MAX_CHUNK       (UINT64_C (1024) * 1024)
#define NR_PROBES       12
#define MAX_PROBE       (UINT64_C (128) * 1024)
#define WRITE_LIMIT     (UINT64_C (16) * 1024 * 1024)
#define NR_WRITE_OPS    8
#define L2_CACHE_BYTES  (256 * 1024)

/* Header fields peeked at to choose the options (qcow2.txt "Header"). */
#define HDR_VERSION          4
#define HDR_BACKING_OFFSET   8
#define HDR_BACKING_SIZE    16
#define HDR_CRYPT_METHOD    32
#define HDR_NB_SNAPSHOTS    60
#define HDR_INCOMPATIBLE    72
#define INCOMPAT_DATA_FILE  (UINT64_C (1) << 2)

static int verbose;

static void
quiet (const char *fs, va_list args)
{
}

static void
loud (const char *fs, va_list args)
{
  fprintf (stderr, "qcow2: ");
  vfprintf (stderr, fs, args);
  fputc ('\n', stderr);
}

void
fuzz_qcow2_verbose (int on)
{
  verbose = on;
  diag_set_handlers (verbose ? loud : quiet, verbose > 1 ? loud : NULL);
}

/* The files of one input live in a directory of this process's own
 * (the fuzzers run several processes at once), made on first use and
 * removed at exit: "img" the image, "d" its external data file, "b" its
 * backing file, "p" the image grown past its end (tool mode).
 */
static char workdir[64];

static void
remove_workdir (void)
{
  static const char *const names[] = { "img", "d", "b", "p" };
  char path[128];

  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf (path, sizeof path, "%s/%s", workdir, names[i]);
    unlink (path);
  }
  rmdir (workdir);
}

static int
make_workdir (void)
{
  const char *tmp = getenv ("TMPDIR");

  if (workdir[0])
    return 0;
  snprintf (workdir, sizeof workdir, "%s/fuzz-qcow2.XXXXXX",
            tmp && *tmp && strlen (tmp) < 32 ? tmp : "/tmp");
  if (mkdtemp (workdir) == NULL) {
    perror ("mkdtemp");
    workdir[0] = '\0';
    return -1;
  }
  atexit (remove_workdir);
  return 0;
}

/* Write the bytes to workdir/name; the file's path goes in path. */
static int
file_with (const char *name, const uint8_t *data, size_t size,
           char *path, size_t path_len)
{
  size_t done = 0;
  int fd;

  snprintf (path, path_len, "%s/%s", workdir, name);
  fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd == -1) {
    perror (path);
    return -1;
  }
  while (done < size) {
    ssize_t n = write (fd, data + done, size - done);
    if (n <= 0) {
      perror ("write");
      close (fd);
      return -1;
    }
    done += n;
  }
  close (fd);
  return 0;
}

/* The header fields that choose options, or 0 where the input is too
 * short (the engine then refuses it on its own).
 */
struct peek {
  bool backing_b;               /* the backing file name is "b" */
  uint32_t version;
  uint32_t crypt_method;
  uint32_t nb_snapshots;
  uint64_t incompatible;
};

static void
peek_header (const uint8_t *data, size_t size, struct peek *p)
{
  memset (p, 0, sizeof *p);
  if (size >= HDR_NB_SNAPSHOTS + 4) {
    p->version = load_be32 (data + HDR_VERSION);
    p->crypt_method = load_be32 (data + HDR_CRYPT_METHOD);
    p->nb_snapshots = load_be32 (data + HDR_NB_SNAPSHOTS);
  }
  if (p->version >= 3 && size >= HDR_INCOMPATIBLE + 8)
    p->incompatible = load_be64 (data + HDR_INCOMPATIBLE);
  /* qcow2 and qcow v1 keep the name's offset and length here alike. */
  if (size >= HDR_BACKING_SIZE + 4) {
    uint64_t off = load_be64 (data + HDR_BACKING_OFFSET);
    p->backing_b = load_be32 (data + HDR_BACKING_SIZE) == 1 &&
      off < size && data[off] == 'b';
  }
}

/* Block status of one range, checked against the bytes read from it
 * (buf, or NULL if the read failed).
 */
struct extent_check {
  uint64_t start, end;          /* the range asked about */
  uint64_t next;                /* where the next extent must start */
  const unsigned char *buf;
  unsigned calls;
};

static int
check_extent (void *opaque, uint64_t offset, uint64_t length, uint32_t type)
{
  struct extent_check *c = opaque;

  if (offset != c->next || length == 0 ||
      (type & ~(uint32_t) (QCOW2_EXTENT_HOLE | QCOW2_EXTENT_ZERO)) ||
      offset >= c->end) {
    fprintf (stderr, "fuzz: bad extent %#" PRIx64 "+%#" PRIx64 " type %"
             PRIu32 " (expected one at %#" PRIx64 ", range ends at %#"
             PRIx64 ")\n", offset, length, type, c->next, c->end);
    abort ();
  }
  if (c->buf && (type & QCOW2_EXTENT_ZERO) &&
      !is_zero (c->buf + (offset - c->start),
                MIN (offset + length, c->end) - offset)) {
    fprintf (stderr, "fuzz: extent %#" PRIx64 "+%#" PRIx64 " says zero "
             "but does not read as zeroes\n", offset, length);
    abort ();
  }
  c->next = offset + length;
  c->calls++;
  return 0;
}

/* Read [offset, +count) into buf, check its block status, and read it
 * again into buf2 as two requests split at offset + split (0: don't),
 * which must give the same bytes.
 */
static void
check_range (struct qcow2_image *img, unsigned char *buf, unsigned char *buf2,
             uint64_t offset, uint64_t count, uint64_t split)
{
  struct extent_check c = { offset, offset + count, offset, NULL, 0 };

  if (count == 0)
    return;
  if (qcow2_pread (img, buf, count, offset) == 0)
    c.buf = buf;
  if (c.buf && split > 0 && split < count &&
      qcow2_pread (img, buf2, split, offset) == 0 &&
      qcow2_pread (img, buf2 + split, count - split, offset + split) == 0 &&
      memcmp (buf, buf2, count) != 0) {
    fprintf (stderr, "fuzz: %#" PRIx64 "+%#" PRIx64 " reads differently "
             "when split at +%#" PRIx64 "\n", offset, count, split);
    abort ();
  }
  if (qcow2_extents (img, count, offset, false, check_extent, &c) == 0 &&
      c.next < c.end) {
    fprintf (stderr, "fuzz: extents of %#" PRIx64 "+%#" PRIx64 " stop at %#"
             PRIx64 "\n", offset, count, c.next);
    abort ();
  }

  /* req_one: at least the first extent, starting at offset. */
  c.next = offset;
  c.calls = 0;
  if (qcow2_extents (img, count, offset, true, check_extent, &c) == 0 &&
      c.calls == 0) {
    fprintf (stderr, "fuzz: no extent for %#" PRIx64 "+%#" PRIx64
             " with req_one\n", offset, count);
    abort ();
  }
}

/* Read (and ask the block status of) a bounded part of the guest. */
static void
walk_guest (struct qcow2_image *img, struct rng *r, uint64_t walk_bytes,
            unsigned nr_probes)
{
  const uint64_t size = qcow2_size (img);
  const uint64_t walk_end = MIN (size, walk_bytes);
  unsigned char *buf = malloc (MAX (MAX_CHUNK, MAX_PROBE));
  unsigned char *buf2 = malloc (MAX (MAX_CHUNK, MAX_PROBE));
  uint64_t offset = 0;

  if (buf == NULL || buf2 == NULL)
    abort ();

  while (offset < walk_end) {
    uint64_t len = 1 + rng_below (r, MAX_CHUNK);

    if (rng_below (r, 2))       /* half the time whole sectors */
      len = (len + 511) & ~UINT64_C (511);
    len = MIN (len, walk_end - offset);
    check_range (img, buf, buf2, offset, len, rng_below (r, len));
    offset += len;
  }

  for (unsigned i = 0; size > walk_end && i < nr_probes; i++) {
    uint64_t off = walk_end + rng_below (r, size - walk_end);
    uint64_t len = 1 + rng_below (r, MAX_PROBE);

    len = MIN (len, size - off);
    check_range (img, buf, buf2, off, len, rng_below (r, len));
  }
  if (size > 0) {
    uint64_t len = MIN (size, 1 + rng_below (r, MAX_PROBE));
    check_range (img, buf, buf2, size - len, len, rng_below (r, len));
  }
  free (buf);
  free (buf2);
}

/* Whether LUKS images get the passphrase (FUZZ_ENCRYPTED). */
static bool unlock_luks;

static void
init_options (struct qcow2_options *o, const char *path, bool readonly,
              const struct peek *p, const char *data_path,
              uint64_t l2_cache_size)
{
  memset (o, 0, sizeof *o);
  o->opener = &qcow2_local_files;
  o->filename = path;
  o->readonly = readonly;
  o->l2_cache_size = l2_cache_size;
  o->backing = p->backing_b ? QCOW2_BACKING_AUTO : QCOW2_BACKING_NONE;
  if (p->incompatible & INCOMPAT_DATA_FILE)
    o->data_file = data_path;
  if (p->crypt_method == 1 || (p->crypt_method == 2 && unlock_luks))
    o->passphrase = "fuzz";
  fuzz_kdf_limits (&o->kdf_limits);
}

static void
run_read (const char *path, const struct peek *p, const char *data_path,
          struct rng *r, uint64_t walk_bytes)
{
  struct qcow2_options o;
  struct qcow2_image *img;

  /* Sometimes the smallest cache (4 tables), so tables are evicted. */
  init_options (&o, path, true, p, data_path,
                rng_below (r, 2) ? 1 : L2_CACHE_BYTES);
  if (qcow2_open (&o, &img) == 0) {
    walk_guest (img, r, walk_bytes, NR_PROBES);
    qcow2_close (img);
  }

  /* The first snapshot (IDs start at "1"), if there is a table. */
  if (p->nb_snapshots > 0) {
    o.snapshot = "1";
    if (qcow2_open (&o, &img) == 0) {
      walk_guest (img, r, walk_bytes / 4, NR_PROBES / 4);
      qcow2_close (img);
    }
  }
}

/* After a write (want: its bytes) or a zero (want NULL) succeeded, the
 * range must read back as such.
 */
static void
expect_reads (struct qcow2_image *img, unsigned char *tmp,
              const unsigned char *want, uint64_t off, uint64_t len,
              const char *what)
{
  if (qcow2_pread (img, tmp, len, off) == -1)
    return;
  if (want ? memcmp (tmp, want, len) != 0 : !is_zero (tmp, len)) {
    uint64_t i = 0;

    while (i < len && tmp[i] == (want ? want[i] : 0))
      i++;
    fprintf (stderr, "fuzz: %#" PRIx64 "+%#" PRIx64 " does not read back "
             "as the %s that succeeded there (first at %#" PRIx64 ")\n",
             off, len, what, off + i);
    abort ();
  }
}

/* A few writes, zeroes, trims and flushes at pseudo-random places. */
static void
mutate_guest (struct qcow2_image *img, struct rng *r)
{
  const uint64_t size = qcow2_size (img);
  const uint64_t cs = qcow2_cluster_size (img);
  const uint64_t limit = MIN (size, WRITE_LIMIT);
  const uint64_t max_len = 2 * cs + 4096;
  bool compressed = qcow2_enable_compressed_writes (img, 0) == 0;
  unsigned char *buf, *tmp;

  if (limit == 0)
    return;
  buf = malloc (max_len);
  tmp = malloc (max_len);
  if (buf == NULL || tmp == NULL)
    abort ();

  for (unsigned i = 0; i < NR_WRITE_OPS; i++) {
    unsigned op = rng_below (r, 7);
    uint64_t off = rng_below (r, limit);
    uint64_t len = 1 + rng_below (r, max_len);
    unsigned flags = rng_below (r, 4) == 0 ? QCOW2_FUA : 0;

    /* Often the first clusters of the first two L2 tables, where the
     * seeds keep data and where crafted entries point elsewhere.
     */
    if (rng_below (r, 3) == 0) {
      off = rng_below (r, 2) * (cs * cs / 8) + rng_below (r, 4) * cs;
      off = MIN (off, limit - 1);
    }
    if (rng_below (r, 2)) {     /* often whole clusters */
      off &= ~(cs - 1);
      len = cs * (1 + rng_below (r, 2));
    }
    len = MIN (len, size - off);
    memset (buf, 0xa5 ^ i, len);

    if (verbose > 1)
      fprintf (stderr, "fuzz: op %u at %#" PRIx64 "+%#" PRIx64 " flags %#x\n",
               op, off, len, flags);
    switch (op) {
    case 0: case 1:
      if (qcow2_pwrite (img, buf, len, off, flags) == 0)
        expect_reads (img, tmp, buf, off, len, "write");
      break;
    case 2:
      if (qcow2_zero (img, len, off, flags
                      | (rng_below (r, 2) ? QCOW2_MAY_TRIM : 0)
                      | (rng_below (r, 4) == 0 ? QCOW2_FAST_ZERO : 0)) == 0)
        expect_reads (img, tmp, NULL, off, len, "zero");
      break;
    case 3:
      qcow2_trim (img, len, off, flags);
      break;
    case 4:
      if (compressed &&
          qcow2_pwrite (img, buf, len, off, flags | QCOW2_COMPRESSED) == 0)
        expect_reads (img, tmp, buf, off, len, "compressed write");
      break;
    case 5:
      qcow2_flush (img);
      break;
    case 6:
      qcow2_pread (img, buf, len, off);
      break;
    }
  }
  free (buf);
  free (tmp);
}

static void
run_write (const char *path, const struct peek *p, const char *data_path,
           struct rng *r)
{
  struct qcow2_options o;
  struct qcow2_image *img;

  init_options (&o, path, false, p, data_path,
                rng_below (r, 2) ? 1 : L2_CACHE_BYTES);
  if (qcow2_open (&o, &img) == -1)
    return;
  if (qcow2_prepare_write (img) == 0)
    mutate_guest (img, r);
  qcow2_close (img);

  /* Whatever the writes left behind must open (or be refused) cleanly. */
  run_read (path, p, data_path, r, WALK_BYTES / 4);
}

/* ---------------------------------------------------------------- */
/* Tool mode: the operations of qcow2-tool. */

/* The options the tool opens an image with (tools/tool.c). */
static void
init_tool_options (struct qcow2_options *o, const char *path, bool readonly,
                   bool check, const struct peek *p, const char *data_path)
{
  init_options (o, path, readonly, p, data_path, L2_CACHE_BYTES);
  o->check = check;
  if (check)
    o->backing = QCOW2_BACKING_SKIP;
  o->metadata_only = readonly || check;
}

/* qcow2-tool check: 0 with *res filled when the check ran to its end. */
static int
check_image (const char *path, const struct peek *p, const char *data_path,
             struct qcow2_check_result *res)
{
  struct qcow2_options o;
  struct qcow2_image *img;
  int r;

  init_tool_options (&o, path, true, true, p, data_path);
  if (qcow2_open (&o, &img) == -1)
    return -1;
  r = qcow2_check (img, res);
  qcow2_close (img);
  return r;
}

/* qcow2-tool map: the first extents.  (info only prints what the
 * open parsed.)
 */
static void
map_extents (const char *path, const struct peek *p, const char *data_path)
{
  struct qcow2_options o;
  struct qcow2_image *img;
  uint64_t start = 0, size;

  init_tool_options (&o, path, true, false, p, data_path);
  if (qcow2_open (&o, &img) == -1)
    return;
  size = qcow2_size (img);
  for (unsigned i = 0; i < 64 && start < size; i++) {
    struct qcow2_map_extent e;

    if (qcow2_map_extent (img, start, MIN (size - start, WALK_BYTES), &e) == -1)
      break;
    if (e.start != start || e.length == 0 || e.length > size - start) {
      fprintf (stderr, "fuzz: map extent %#" PRIx64 "+%#" PRIx64
               " asked for one at %#" PRIx64 "\n", e.start, e.length, start);
      abort ();
    }
    start += e.length;
  }
  qcow2_close (img);
}

/* qcow2-tool check -r: what the repair's closing check found must be
 * what a check of the repaired image finds.
 */
static void
repair_image (const char *path, const struct peek *p, const char *data_path,
              struct rng *r)
{
  struct qcow2_options o;
  struct qcow2_image *img;
  struct qcow2_check_result res, again;
  unsigned fix = 1 + rng_below (r, 3);
  int ret;

  init_tool_options (&o, path, false, true, p, data_path);
  if (qcow2_open (&o, &img) == -1)
    return;
  ret = qcow2_check_repair (img, fix, &res);
  if (qcow2_close (img) == -1 || ret == -1)
    return;
  if (check_image (path, p, data_path, &again) == 0 &&
      (again.corruptions != res.corruptions || again.leaks != res.leaks)) {
    fprintf (stderr, "fuzz: repair (fix %u) ended with %" PRIu64
             " corruptions and %" PRIu64 " leaks, a check then finds %"
             PRIu64 " and %" PRIu64 "\n", fix, res.corruptions, res.leaks,
             again.corruptions, again.leaks);
    abort ();
  }
}

/* A few snapshot and resize edits, as qcow2-tool snapshot and resize;
 * returns how many succeeded.
 */
static unsigned
edit_image (const char *path, const struct peek *p, const char *data_path,
            struct rng *r)
{
  struct qcow2_options o;
  struct qcow2_image *img;
  unsigned done = 0;

  init_tool_options (&o, path, false, false, p, data_path);
  if (qcow2_open (&o, &img) == -1)
    return 0;
  if (qcow2_prepare_write (img) == -1) {
    qcow2_close (img);
    return 0;
  }
  for (unsigned i = 0; i < 4; i++) {
    const uint64_t size = qcow2_size (img);
    int ret = -1;

    const unsigned op = rng_below (r, 5);

    if (verbose > 1)
      fprintf (stderr, "fuzz: edit %u: %s\n", i,
               (const char *[]) { "snapshot -c", "snapshot -d", "snapshot -a",
                                  "grow", "shrink" }[op]);
    switch (op) {
    case 0:
      ret = qcow2_snapshot_create (img, rng_below (r, 2) ? "a" : "b");
      break;
    case 1:
      ret = qcow2_snapshot_delete (img, rng_below (r, 2) ? "a" : "b");
      break;
    case 2:
      ret = qcow2_snapshot_apply (img, rng_below (r, 2) ? "1" : "a");
      break;
    case 3:                     /* grow by up to 64 MiB */
      ret = qcow2_resize (img, size + 512 * (1 + rng_below (r, 131072)),
                          false);
      break;
    case 4:                     /* shrink, sometimes discarding */
      ret = qcow2_resize (img, ((size >> 9) / 512 * rng_below (r, 512)) << 9,
                          rng_below (r, 2));
      break;
    }
    if (verbose > 1)
      fprintf (stderr, "fuzz: edit %u: %s (size %#" PRIx64 " -> %#" PRIx64
               ")\n", i, ret == 0 ? "done" : "failed", size, qcow2_size (img));
    done += ret == 0;
  }
  if (qcow2_close (img) == -1)
    return 0;
  return done;
}

/* Refcounts may claim clusters past the end of the file, which a check
 * does not see until an edit grows the file over them; the image counts
 * as clean only when a copy with the file grown by PAST_END_PAD checks
 * clean too.
 */
#define PAST_END_PAD (UINT64_C (64) * 1024 * 1024)

static bool
checks_clean (const char *path, const struct peek *p, const char *data_path,
              const uint8_t *data, size_t size)
{
  struct qcow2_check_result res;
  char padded[128];

  if (check_image (path, p, data_path, &res) == -1 ||
      res.corruptions || res.leaks ||
      file_with ("p", data, size, padded, sizeof padded) == -1 ||
      truncate (padded, size + PAST_END_PAD) == -1)
    return false;
  return check_image (padded, p, data_path, &res) == 0 &&
    res.corruptions == 0 && res.leaks == 0;
}

/* The image at path holds the input's bytes (data, size). */
static void
run_tool (const char *path, const struct peek *p, const char *data_path,
          struct rng *r, const uint8_t *data, size_t size)
{
  struct qcow2_check_result after;
  bool clean;

  map_extents (path, p, data_path);
  clean = checks_clean (path, p, data_path, data, size);
  if (rng_below (r, 2))
    repair_image (path, p, data_path, r);
  else if (edit_image (path, p, data_path, r) > 0 && clean &&
           check_image (path, p, data_path, &after) == 0 &&
           (after.corruptions || after.leaks)) {
    fprintf (stderr, "fuzz: a clean image has %" PRIu64 " corruptions and %"
             PRIu64 " leaks after edits that succeeded\n",
             after.corruptions, after.leaks);
    abort ();
  }
  /* Whatever the tool left behind must open (or be refused) cleanly. */
  run_read (path, p, data_path, r, WALK_BYTES / 4);
}

int
fuzz_qcow2_one (const uint8_t *data, size_t size, enum fuzz_mode mode)
{
  char path[128], data_path[128], backing_path[128];
  struct peek p;
  struct rng r;

  diag_set_handlers (verbose ? loud : quiet, verbose > 1 ? loud : NULL);
  peek_header (data, size, &p);
  rng_seed (&r, data, size);

  if (make_workdir () == -1 ||
      file_with ("img", data, size, path, sizeof path) == -1)
    return -1;
  /* Another copy of the input serves as the external data file, and
   * one with no backing file name (offset 0) as the backing file: raw,
   * or the same image again as the layer below.
   */
  if ((p.incompatible & INCOMPAT_DATA_FILE) &&
      file_with ("d", data, size, data_path, sizeof data_path) == -1)
    return -1;
  if (p.backing_b) {
    uint8_t *copy = malloc (size);
    int ret;

    if (copy == NULL)
      abort ();
    memcpy (copy, data, size);
    store_be64 (copy + HDR_BACKING_OFFSET, 0);
    ret = file_with ("b", copy, size, backing_path, sizeof backing_path);
    free (copy);
    if (ret == -1)
      return -1;
  }

  unlock_luks = mode == FUZZ_ENCRYPTED;
  switch (mode) {
  case FUZZ_READ:
    run_read (path, &p, data_path, &r, WALK_BYTES);
    break;
  case FUZZ_ENCRYPTED:
    run_read (path, &p, data_path, &r, WALK_BYTES / 4);
    run_write (path, &p, data_path, &r);
    break;
  case FUZZ_WRITE:
    run_write (path, &p, data_path, &r);
    break;
  case FUZZ_TOOL:
    run_tool (path, &p, data_path, &r, data, size);
    break;
  }
  return 0;
}
