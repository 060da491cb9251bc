/* Fault injection: the file below the engine fails one read, write,
 * flush or punch, with EIO or ENOSPC, at points spread over a seeded
 * workload (allocating writes, L2 table and refcount growth, zeroes,
 * trims, compressed and FUA writes, flushes) on several kinds of image.
 * At every point:
 *   - the request during which the call failed fails (a failed punch
 *     only leaves space allocated: that request succeeds);
 *   - a failed flush, or a write failing with EIO, is sticky: every
 *     later flush, write and the close fail; other failures may be
 *     either (write-state.h), but once a flush has failed every later
 *     one fails too;
 *   - reads through the engine still give what was acknowledged;
 *   - after the close `qemu-img check` finds nothing but leaks, and
 *     `qemu-img convert` (QEMU is the oracle) shows every byte as the
 *     last successful flush (or the close) left it, or as a request
 *     after that one wrote it.
 * Then the same with every call of that kind failing from that one on,
 * until the faults stop before the close.  The rule checked is
 * write-state.h's.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "byte-order.h"
#include "internal.h"
#include "io.h"
#include "qcow2.h"
#include "seeded-random.h"

#define SIZE (3 * 1024 * 1024)
#define NR_OPS 48
#define NR_GROW_OPS 4
#define MAX_LEN (96 * 1024)
#define PASSPHRASE "fault-test"
/* What the image holds before the workload: a run of bytes at every
 * step (config.prefill long).
 */
#define PREFILL_STEP (SIZE / 16)
#define PREFILL_BYTE 0x5a

/* Calls of these kinds are counted, and one of them can fail. */
enum kind { K_READ, K_WRITE, K_FLUSH, K_PUNCH, NR_KINDS };
static const char *const kind_name[NR_KINDS] = {
  "read", "write", "flush", "punch"
};

struct faults {
  uint64_t calls[NR_KINDS];
  enum kind kind;
  uint64_t nth;                 /* this call of kind fails; 0 = none */
  int err;
  bool persistent;              /* ... and every later one */
  bool stopped;                 /* the faults have stopped */
  bool fired;
  uint64_t before_close[NR_KINDS];
};

struct fault_io {
  struct io io;
  struct io *inner;
  struct faults *f;
};

static bool
fail_now (struct io *io, enum kind k)
{
  struct faults *f = ((struct fault_io *) io)->f;

  uint64_t n = ++f->calls[k];

  if (k != f->kind || f->nth == 0 || f->stopped ||
      (f->persistent ? n < f->nth : n != f->nth))
    return false;
  f->fired = true;
  errno = f->err;
  return true;
}

static struct io *
inner (struct io *io)
{
  return ((struct fault_io *) io)->inner;
}

static int
f_pread (struct io *io, void *buf, size_t count, uint64_t offset)
{
  return fail_now (io, K_READ) ? -1 : io_pread (inner (io), buf, count, offset);
}

static int
f_pwrite (struct io *io, const void *buf, size_t count, uint64_t offset)
{
  return fail_now (io, K_WRITE)
    ? -1 : io_pwrite (inner (io), buf, count, offset);
}

static int
f_flush (struct io *io)
{
  return fail_now (io, K_FLUSH) ? -1 : io_flush (inner (io));
}

static int
f_punch (struct io *io, uint64_t offset, uint64_t count)
{
  return fail_now (io, K_PUNCH) ? -1 : io_punch (inner (io), offset, count);
}

static int64_t
f_size (struct io *io)
{
  return io_size (inner (io));
}

static int
f_truncate (struct io *io, uint64_t size)
{
  return io_truncate (inner (io), size);
}

static int64_t
f_allocated (struct io *io)
{
  return io_allocated (inner (io));
}

static int
f_extent (struct io *io, uint64_t offset, uint64_t count, bool *hole,
          uint64_t *length)
{
  return io_extent (inner (io), offset, count, hole, length);
}

static void
f_close (struct io *io)
{
  io_close (inner (io));
  free (io);
}

static const struct io_ops fault_ops = {
  .pread = f_pread, .pwrite = f_pwrite, .flush = f_flush, .punch = f_punch,
  .size = f_size, .truncate = f_truncate, .allocated = f_allocated,
  .extent = f_extent, .close = f_close,
};

static struct io *
wrap (struct io *io, struct faults *f)
{
  struct fault_io *w = calloc (1, sizeof *w);

  assert (w);
  w->io = *io;
  w->io.ops = &fault_ops;
  w->inner = io;
  w->f = f;
  return &w->io;
}

/* Put the failing io under an open image (and its data file). */
static void
wrap_image (struct qcow2_image *img, struct faults *f)
{
  bool same = img->data == img->file;

  img->file = wrap (img->file, f);
  img->data = same ? img->file : wrap (img->data, f);
}

/* The workload, the same from the same seed. */

static uint64_t rng;

static uint64_t
random_below (uint64_t n)
{
  return test_random_below (&rng, n);
}

enum op_kind { OP_WRITE, OP_ZERO, OP_TRIM, OP_FLUSH, OP_READ };

struct op {
  enum op_kind kind;
  uint64_t off, len;
  unsigned flags;
  unsigned char pattern;
};

/* Byte i of the guest as op writes it. */
static unsigned char
op_byte (const struct op *o, uint64_t i)
{
  if (o->kind != OP_WRITE)
    return 0;
  return o->pattern + (i >> 9) * 7 + ((i & 7) == 0);
}

static void
make_ops (struct op *ops, uint64_t seed, bool compress)
{
  rng = seed * UINT64_C (0x9e3779b97f4a7c15) + 1;
  for (unsigned i = 0; i < NR_OPS; i++) {
    struct op *o = &ops[i];
    unsigned r = random_below (20);

    o->len = 1 + random_below (random_below (3) ? 16384 : MAX_LEN);
    o->off = random_below (SIZE - o->len + 1);
    if (random_below (2))
      o->off &= ~UINT64_C (4095);
    o->flags = 0;
    o->pattern = 1 + random_below (255);
    if (r < 12) {
      o->kind = OP_WRITE;
      if (random_below (10) == 0)
        o->flags |= QCOW2_FUA;
      if (compress && random_below (4) == 0)
        o->flags |= QCOW2_COMPRESSED;
    }
    else if (r < 14) {
      o->kind = OP_ZERO;
      o->flags = random_below (3) ? QCOW2_MAY_TRIM : 0;
    }
    else if (r < 16)
      o->kind = OP_TRIM;
    else if (r < 18)
      o->kind = OP_FLUSH;
    else
      o->kind = OP_READ;
  }
  /* At the end the image grows, whatever failed before. */
  for (unsigned i = NR_OPS - NR_GROW_OPS; i < NR_OPS; i++) {
    ops[i].kind = OP_WRITE;
    ops[i].off = SIZE / 2 + (i - (NR_OPS - NR_GROW_OPS)) * MAX_LEN;
    ops[i].len = MAX_LEN;
    ops[i].flags = 0;
  }
}

/* What the guest may see.  cur: as acknowledged (undef where a failed
 * request left it unknown); dur: as the last successful flush left it;
 * since: the requests after that flush, any of which may have landed.
 */
struct model {
  unsigned char cur[SIZE], cur_undef[SIZE];
  unsigned char dur[SIZE], dur_undef[SIZE];
  const struct op *since[NR_OPS];
  unsigned nr_since;
};

static void
model_durable (struct model *m)
{
  memcpy (m->dur, m->cur, SIZE);
  memcpy (m->dur_undef, m->cur_undef, SIZE);
  m->nr_since = 0;
}

static void
model_apply (struct model *m, const struct op *o, int r,
             const unsigned char *trimmed)
{
  m->since[m->nr_since++] = o;
  if (r == -1) {
    memset (m->cur_undef + o->off, 1, o->len);
    return;
  }
  for (uint64_t i = 0; i < o->len; i++)
    m->cur[o->off + i] = trimmed ? trimmed[i] : op_byte (o, o->off + i);
  memset (m->cur_undef + o->off, 0, o->len);
  if (o->flags & QCOW2_FUA)
    model_durable (m);
}

/* Byte i as the image shows it after the close is allowed. */
static bool
model_allows (const struct model *m, uint64_t i, unsigned char v)
{
  if (m->dur_undef[i] || m->dur[i] == v)
    return true;
  for (unsigned k = 0; k < m->nr_since; k++) {
    const struct op *o = m->since[k];
    if (o->kind != OP_FLUSH && o->kind != OP_READ &&
        i >= o->off && i < o->off + o->len && op_byte (o, i) == v)
      return true;
  }
  return false;
}

/* One kind of image. */
struct config {
  const char *name;
  struct qcow2_create_options c;
  bool compress;                /* some writes are QCOW2_COMPRESSED */
  bool data_file;
  unsigned points;              /* failure points per kind and errno */
  uint64_t prefill;             /* 0 = 4 KiB */
  bool grows_reftable;          /* checked: the workload grows it */
  bool every_enospc_write;      /* every write fails once with ENOSPC */
};

static uint64_t
prefill_len (const struct config *cf)
{
  return cf->prefill ? cf->prefill : 4096;
}

static char dir[64];
static char pristine[4096], pristine_data[4096], image[4096], data[4096];
static bool have_qemu;
static unsigned nr_points, nr_sticky;

static void
copy_file (const char *from, const char *to)
{
  static char buf[65536];
  int in = open (from, O_RDONLY), out;
  ssize_t n;

  assert (in >= 0);
  out = open (to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert (out >= 0);
  while ((n = read (in, buf, sizeof buf)) > 0)
    assert (write (out, buf, n) == n);
  assert (n == 0);
  close (in);
  close (out);
}

/* Run a command (no shell), output discarded; its exit status.
 * posix_spawn, not fork: copying a sanitizer build's mappings for
 * every one of a thousand qemu-img runs would cost minutes.
 */
static int
run (char *const argv[])
{
  posix_spawn_file_actions_t fa;
  pid_t pid;
  int status;

  assert (posix_spawn_file_actions_init (&fa) == 0);
  assert (posix_spawn_file_actions_addopen (&fa, 1, "/dev/null", O_WRONLY, 0)
          == 0);
  assert (posix_spawn_file_actions_adddup2 (&fa, 1, 2) == 0);
  if (posix_spawnp (&pid, argv[0], &fa, NULL, argv, environ) != 0)
    status = 127 << 8;
  else
    assert (waitpid (pid, &status, 0) == pid);
  posix_spawn_file_actions_destroy (&fa);
  return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

/* qemu-img's view of the image: check, then the guest bytes. */
static void
qemu_oracle (const struct config *cf, const struct model *m,
             const char *what)
{
  char opts[8192], raw[4096];
  char secret[] = "secret,id=s0,data=" PASSPHRASE;
  unsigned char *buf;
  int st, fd;

  if (!have_qemu)
    return;
  snprintf (opts, sizeof opts, "driver=qcow2,file.filename=%s%s", image,
            cf->c.encrypt ? ",encrypt.key-secret=s0" : "");
  snprintf (raw, sizeof raw, "%s/guest.raw", dir);
  {
    char *check[] = { "qemu-img", "check", "--object", secret,
                      "--image-opts", opts, NULL };
    st = run (check);
    if (st != 0 && st != 3) {
      fprintf (stderr, "%s: qemu-img check %s: exit status %d\n",
               what, image, st);
      exit (1);
    }
  }
  {
    char *convert[] = { "qemu-img", "convert", "--object", secret,
                        "--image-opts", opts, "-O", "raw", raw, NULL };
    st = run (convert);
    if (st != 0) {
      fprintf (stderr, "%s: qemu-img convert: exit status %d\n", what, st);
      exit (1);
    }
  }
  buf = malloc (SIZE);
  assert (buf);
  fd = open (raw, O_RDONLY);
  assert (fd >= 0 && pread (fd, buf, SIZE, 0) == SIZE);
  close (fd);
  unlink (raw);
  for (uint64_t i = 0; i < SIZE; i++)
    if (!model_allows (m, i, buf[i])) {
      fprintf (stderr, "%s: guest byte %" PRIu64 " reads %#x after the "
               "close; the last successful flush left %#x\n",
               what, i, buf[i], m->dur[i]);
      exit (1);
    }
  free (buf);
}

/* The engine still gives what was acknowledged. */
static void
check_reads (struct qcow2_image *img, const struct model *m, const char *what)
{
  unsigned char *buf = malloc (SIZE);

  assert (buf);
  if (qcow2_pread (img, buf, SIZE, 0) == -1) {
    fprintf (stderr, "%s: reading the image failed after the fault\n", what);
    exit (1);
  }
  for (uint64_t i = 0; i < SIZE; i++)
    if (!m->cur_undef[i] && buf[i] != m->cur[i]) {
      fprintf (stderr, "%s: guest byte %" PRIu64 " reads %#x, acknowledged "
               "%#x\n", what, i, buf[i], m->cur[i]);
      exit (1);
    }
  free (buf);
}

static int
do_op (struct qcow2_image *img, const struct op *o, unsigned char *scratch,
       const struct model *m, bool *trimmed)
{
  *trimmed = false;
  switch (o->kind) {
  case OP_WRITE:
    for (uint64_t i = 0; i < o->len; i++)
      scratch[i] = op_byte (o, o->off + i);
    return qcow2_pwrite (img, scratch, o->len, o->off, o->flags);
  case OP_ZERO:
    return qcow2_zero (img, o->len, o->off, o->flags);
  case OP_TRIM:
    /* Trimmed bytes are unspecified: learn what they read as. */
    if (qcow2_trim (img, o->len, o->off, 0) == -1)
      return -1;
    *trimmed = true;
    return qcow2_pread (img, scratch, o->len, o->off);
  case OP_FLUSH:
    return qcow2_flush (img);
  case OP_READ:
    if (qcow2_pread (img, scratch, o->len, o->off) == -1)
      return -1;
    for (uint64_t i = 0; i < o->len; i++)
      assert (m->cur_undef[o->off + i] || scratch[i] == m->cur[o->off + i]);
    return 0;
  }
  abort ();
}

/* Once a call has failed and the faults have stopped: is the image
 * failed for good?  Returns whether it is.
 */
static bool
check_after_fault (struct qcow2_image *img, const struct faults *f,
                   struct model *m, const char *what)
{
  bool sticky = qcow2_flush (img) == -1;

  if (sticky)
    assert (errno == EIO || errno == ENOSPC);
  else
    model_durable (m);
  if (!sticky && (f->kind == K_FLUSH ||
                  (f->kind == K_WRITE && f->err == EIO))) {
    fprintf (stderr, "%s: a flush after it succeeded\n", what);
    exit (1);
  }
  if (sticky && f->kind == K_PUNCH) {
    fprintf (stderr, "%s: a failed punch made the image fail\n", what);
    exit (1);
  }
  check_reads (img, m, what);
  return sticky;
}

/* The workload with one call failing (f->nth = 0: none, to count). */
static void
run_point (const struct config *cf, const struct op *ops, struct faults *f,
           struct model *m, unsigned char *scratch)
{
  /* A small L2 cache: tables are evicted and read again. */
  struct qcow2_options o = {
    .opener = &qcow2_local_files, .filename = image, .passphrase = PASSPHRASE,
    .l2_cache_size = 4 * (cf->c.cluster_size ? cf->c.cluster_size : 65536),
  };
  struct qcow2_image *img;
  char what[256];
  int fired_at = -1, sticky = -1, r;

  snprintf (what, sizeof what, "%s: %s %" PRIu64 "%s fails with %s",
            cf->name, kind_name[f->kind], f->nth,
            f->persistent ? " and every later one" : "", strerror (f->err));
  copy_file (pristine, image);
  if (cf->data_file)
    copy_file (pristine_data, data);
  memset (m, 0, sizeof *m);
  for (uint64_t off = 0; off < SIZE; off += PREFILL_STEP)
    memset (m->cur + off, PREFILL_BYTE, prefill_len (cf));
  model_durable (m);
  assert (qcow2_open (&o, &img) == 0);
  assert (qcow2_prepare_write (img) == 0);
  wrap_image (img, f);

  for (unsigned i = 0; i < NR_OPS; i++) {
    const struct op *op = &ops[i];
    bool trimmed;
    bool before = f->fired;

    r = do_op (img, op, scratch, m, &trimmed);
    if (f->fired && !before) {
      fired_at = i;
      /* Only a failed punch is not the request's failure. */
      if ((r == -1) != (f->kind != K_PUNCH)) {
        fprintf (stderr, "%s: op %u returned %d\n", what, i, r);
        exit (1);
      }
    }
    else if (r == -1 && sticky != 1 && !(f->persistent && before)) {
      fprintf (stderr, "%s: op %u (kind %d) failed with no fault\n",
               what, i, op->kind);
      exit (1);
    }
    else if (r == 0 && sticky == 1 && op->kind != OP_READ) {
      fprintf (stderr, "%s: op %u (kind %d) succeeded after a sticky "
               "error\n", what, i, op->kind);
      exit (1);
    }
    if (op->kind == OP_FLUSH && r == 0)
      model_durable (m);
    else if (op->kind != OP_FLUSH && op->kind != OP_READ)
      model_apply (m, op, r, trimmed ? scratch : NULL);

    /* Right after a single fault: is the image failed for good? */
    if (fired_at == (int) i && !f->persistent)
      sticky = check_after_fault (img, f, m, what);
  }
  /* Persistent faults stop here; a single one may still come in the
   * close's write-back.
   */
  f->stopped = f->persistent;
  memcpy (f->before_close, f->calls, sizeof f->calls);
  if (f->persistent && f->fired)
    sticky = check_after_fault (img, f, m, what);
  if (sticky == 1)
    assert (qcow2_flush (img) == -1);
  {
    bool before = f->fired;

    r = qcow2_close (img);
    if (f->fired && !before)    /* in the close's own write-back */
      sticky = f->kind != K_PUNCH;
  }
  if ((r == -1) != (sticky == 1)) {
    fprintf (stderr, "%s: close returned %d\n", what, r);
    exit (1);
  }
  if (r == 0)
    model_durable (m);
  if (f->nth) {
    nr_points++;
    nr_sticky += sticky == 1;
    qemu_oracle (cf, m, what);
  }
}

/* Data in every L2 table's range, so that the workload reads tables
 * and refcount blocks from the file, rewrites in place and frees.
 */
static void
prefill (const struct config *cf)
{
  struct qcow2_options o = {
    .opener = &qcow2_local_files, .filename = pristine, .passphrase = PASSPHRASE,
  };
  struct qcow2_image *img;
  unsigned char *buf = malloc (prefill_len (cf));

  assert (buf);
  memset (buf, PREFILL_BYTE, prefill_len (cf));
  assert (qcow2_open (&o, &img) == 0);
  assert (qcow2_prepare_write (img) == 0);
  for (uint64_t off = 0; off < SIZE; off += PREFILL_STEP)
    assert (qcow2_pwrite (img, buf, prefill_len (cf), off, 0) == 0);
  assert (qcow2_close (img) == 0);
  free (buf);
}

/* The header's refcount_table_clusters. */
static uint32_t
reftable_clusters (const char *file)
{
  unsigned char b[4];
  int fd = open (file, O_RDONLY);

  assert (fd >= 0 && pread (fd, b, 4, 56) == 4);
  close (fd);
  return load_be32 (b);
}

static void
run_config (const struct config *cf, uint64_t seed)
{
  static struct model m;
  static struct op ops[NR_OPS];
  unsigned char *scratch = malloc (MAX_LEN);
  struct qcow2_create_options c = cf->c;
  struct faults count = { .nth = 0 };
  static const int errs[] = { EIO, ENOSPC };
  unsigned before = nr_points, before_sticky = nr_sticky;

  assert (scratch);
  snprintf (pristine, sizeof pristine, "%s/pristine.qcow2", dir);
  snprintf (pristine_data, sizeof pristine_data, "%s/pristine.data", dir);
  snprintf (image, sizeof image, "%s/image.qcow2", dir);
  snprintf (data, sizeof data, "%s/image.data", dir);
  c.filename = pristine;
  c.size = SIZE;
  c.passphrase = PASSPHRASE;
  /* The pristine copy names the data file of the working copy. */
  if (cf->data_file)
    c.data_file = data;
  assert (qcow2_create (&c) == 0);
  prefill (cf);
  if (cf->data_file)
    copy_file (data, pristine_data);
  make_ops (ops, seed, cf->compress);

  /* Count the calls of a run without faults. */
  run_point (cf, ops, &count, &m, scratch);
  if (cf->grows_reftable)
    assert (reftable_clusters (image) > reftable_clusters (pristine));
  for (enum kind k = 0; k < NR_KINDS; k++)
    for (unsigned e = 0; e < 2; e++) {
      uint64_t n = count.calls[k];
      unsigned points = n < cf->points ? n : cf->points;

      if (k == K_READ && errs[e] == ENOSPC)
        continue;
      rng = seed * 1000 + k * 16 + e + 1;
      bool every = cf->every_enospc_write && k == K_WRITE &&
        errs[e] == ENOSPC;

      if (every)
        points = n;
      for (unsigned p = 0; p < points; p++) {
        /* The first and the last call, then spread at random. */
        uint64_t nth = every ? p + 1 : p == 0 ? 1 : p == 1 ? n
          : 1 + random_below (n);
        struct faults f = { .kind = k, .nth = nth, .err = errs[e] };

        run_point (cf, ops, &f, &m, scratch);
        assert (f.fired);
      }
      /* Failing from a call on until the workload ends. */
      for (unsigned p = 0;
           p < (cf->points + 3) / 4 && count.before_close[k]; p++) {
        struct faults f = {
          .kind = k, .err = errs[e], .persistent = true,
          .nth = 1 + random_below (count.before_close[k]),
        };

        run_point (cf, ops, &f, &m, scratch);
        assert (f.fired);
      }
    }
  printf ("ok: %s: %u failure points (%u sticky); calls: %" PRIu64
          " reads, %" PRIu64 " writes, %" PRIu64 " flushes, %" PRIu64
          " punches\n", cf->name, nr_points - before, nr_sticky - before_sticky,
          count.calls[K_READ], count.calls[K_WRITE], count.calls[K_FLUSH],
          count.calls[K_PUNCH]);
  fflush (stdout);
  unlink (pristine);
  unlink (image);
  if (cf->data_file) {
    unlink (pristine_data);
    unlink (data);
  }
  free (scratch);
}

int
main (void)
{
  static const struct config configs[] = {
    /* Small clusters, 64-bit refcounts, the file near the 2 MiB one
     * refcount table cluster covers: the workload grows the table.
     */
    { .name = "512 B clusters, 64-bit refcounts",
      .c = { .cluster_size = 512, .refcount_bits = 64 },
      .compress = true, .points = 24, .prefill = 121 * 1024,
      .grows_reftable = true, .every_enospc_write = true },
    { .name = "4 KiB clusters, v2",
      .c = { .cluster_size = 4096, .version = 2 },
      .compress = true, .points = 12 },
    { .name = "lazy refcounts",
      .c = { .cluster_size = 4096, .lazy_refcounts = true },
      .compress = true, .points = 12 },
    { .name = "extended L2",
      .c = { .cluster_size = 16384, .extended_l2 = true },
      .compress = true, .points = 12 },
    { .name = "external data file", .c = { .cluster_size = 4096 },
      .data_file = true, .points = 12 },
    { .name = "LUKS encrypted",
      .c = { .cluster_size = 4096, .encrypt = QCOW2_ENCRYPT_LUKS,
             .encrypt_iter_time = 10 },
      .points = 6 },
  };
  char *version[] = { "qemu-img", "--version", NULL };

  /* Thousands of fdatasyncs: on a tmpfs where there is one. */
  snprintf (dir, sizeof dir, "/dev/shm/test-faults.XXXXXX");
  if (mkdtemp (dir) == NULL) {
    snprintf (dir, sizeof dir, "/tmp/test-faults.XXXXXX");
    assert (mkdtemp (dir));
  }
  have_qemu = run (version) == 0;
  if (!have_qemu)
    printf ("qemu-img not found: the images are not checked with it\n");
  for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
    run_config (&configs[i], 1 + i);
  printf ("%u failure points, %u of them sticky\n", nr_points, nr_sticky);
  rmdir (dir);
  return 0;
}
