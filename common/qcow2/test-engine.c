/* Unit test of the engine through its public interface: seeded random
 * writes, zeroes and discards against a shadow copy, for many image
 * geometries, with flushes and a reopen; plus the refcount entry
 * packing of every width.  Interoperability with QEMU is proven by the
 * bats tests; this one runs the engine alone, under the sanitizers.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "io.h"
#include "refcount-format.h"
#include "qcow2.h"
#include "seeded-random.h"

#define SIZE (6 * 1024 * 1024 + 4096 + 512)   /* not a cluster multiple */

static uint64_t rng;

static uint64_t
random_below (uint64_t n)
{
  return test_random_below (&rng, n);
}

/* "Refcount table": entries narrower than a byte are packed least
 * significant bit first, wider ones are big-endian.
 */
static void
test_refcount_packing (void)
{
  const unsigned char b[8] = { 0xe4, 0x21, 0x00, 0x05, 0x12, 0x34, 0x56, 0x78 };

  assert (refblock_get (b, 0, 0) == 0);         /* 0xe4 = 11100100 */
  assert (refblock_get (b, 2, 0) == 1);
  assert (refblock_get (b, 7, 0) == 1);
  assert (refblock_get (b, 8, 0) == 1);         /* 0x21 bit 0 */
  assert (refblock_get (b, 0, 1) == 0);         /* 2-bit: 00 01 10 11 */
  assert (refblock_get (b, 1, 1) == 1);
  assert (refblock_get (b, 2, 1) == 2);
  assert (refblock_get (b, 3, 1) == 3);
  assert (refblock_get (b, 2, 2) == 1);         /* 0x21: low nibble 1 */
  assert (refblock_get (b, 3, 2) == 2);
  assert (refblock_get (b, 3, 3) == 5);
  assert (refblock_get (b, 1, 4) == 5);         /* 0x0005 */
  assert (refblock_get (b, 1, 5) == 0x12345678);
  assert (refblock_get (b, 0, 6) == 0xe421000512345678ULL);
}

static void
check_equal (struct qcow2_image *img, const unsigned char *shadow)
{
  unsigned char *buf = malloc (SIZE);

  assert (buf);
  assert (qcow2_pread (img, buf, SIZE, 0) == 0);
  for (uint64_t i = 0; i < SIZE; i++)
    if (buf[i] != shadow[i]) {
      fprintf (stderr, "mismatch at byte %" PRIu64 ": %d != %d\n",
               i, buf[i], shadow[i]);
      abort ();
    }
  free (buf);
}

static void
random_ops (struct qcow2_image *img, unsigned char *shadow, unsigned nr)
{
  unsigned char *data = malloc (1024 * 1024);

  assert (data);
  for (unsigned op = 0; op < nr; op++) {
    uint64_t len = 1 + random_below (random_below (4) ? 70000 : 1024 * 1024);
    uint64_t off = random_below (SIZE - len + 1);
    unsigned kind = random_below (10);

    if (random_below (2))
      off &= ~UINT64_C (511);
    if (kind < 6) {
      unsigned char fill = random_below (256);
      for (uint64_t i = 0; i < len; i++)
        data[i] = fill + i * 13;
      assert (qcow2_pwrite (img, data, len, off, 0) == 0);
      memcpy (shadow + off, data, len);
    }
    else if (kind < 8) {
      assert (qcow2_zero (img, len, off, kind == 6 ? QCOW2_MAY_TRIM : 0) == 0);
      memset (shadow + off, 0, len);
    }
    else if (kind == 8) {
      /* Discarded bytes are unspecified: learn what they read as. */
      assert (qcow2_trim (img, len, off, 0) == 0);
      assert (qcow2_pread (img, shadow + off, len, off) == 0);
    }
    else
      assert (qcow2_flush (img) == 0);
  }
  free (data);
}

static void
run_config (const char *dir, uint32_t cluster_size, unsigned version,
            unsigned refcount_bits, bool extended_l2, bool lazy)
{
  char path[4096];
  struct qcow2_create_options c = {
    .size = SIZE, .cluster_size = cluster_size, .version = version,
    .refcount_bits = refcount_bits, .extended_l2 = extended_l2,
    .lazy_refcounts = lazy,
  };
  struct qcow2_options o = { .opener = &qcow2_local_files, .filename = path };
  struct qcow2_image *img;
  unsigned char *shadow = calloc (1, SIZE);

  assert (shadow);
  snprintf (path, sizeof path, "%s/c%u-v%u-r%u-x%d-l%d.qcow2", dir,
            cluster_size, version, refcount_bits, extended_l2, lazy);
  c.filename = path;
  assert (qcow2_create (&c) == 0);

  assert (qcow2_open (&o, &img) == 0);
  assert (qcow2_size (img) == SIZE);
  assert (qcow2_prepare_write (img) == 0);
  random_ops (img, shadow, 150);
  check_equal (img, shadow);
  assert (qcow2_close (img) == 0);

  /* Everything survives a close and reopen. */
  o.readonly = true;
  assert (qcow2_open (&o, &img) == 0);
  check_equal (img, shadow);
  assert (qcow2_pwrite (img, shadow, 1, 0, 0) == -1 && errno == EROFS);
  assert (qcow2_close (img) == 0);

  unlink (path);
  free (shadow);
  printf ("ok: cluster %" PRIu32 ", v%u, %u-bit refcounts%s%s\n",
          cluster_size, version, refcount_bits,
          extended_l2 ? ", extended L2" : "", lazy ? ", lazy" : "");
}

/* The seam (qcow2.h, "Where the engine's files come from"): images in
 * memory, made and opened through an opener that records what the
 * engine asks for.  Nothing here is a file.
 */
struct mem_file {
  const char *name;
  unsigned char *bytes;
  uint64_t size;
};

struct mem_io {
  struct io io;
  struct mem_file *f;
};

static int
mem_pread (struct io *io, void *buf, size_t count, uint64_t offset)
{
  struct mem_file *f = ((struct mem_io *) io)->f;

  if (offset > f->size || count > f->size - offset) {
    errno = EIO;
    return -1;
  }
  memcpy (buf, f->bytes + offset, count);
  return 0;
}

static int
mem_truncate (struct io *io, uint64_t size)
{
  struct mem_file *f = ((struct mem_io *) io)->f;

  f->bytes = realloc (f->bytes, size ? size : 1);
  assert (f->bytes);
  if (size > f->size)
    memset (f->bytes + f->size, 0, size - f->size);
  f->size = size;
  return 0;
}

static int
mem_pwrite (struct io *io, const void *buf, size_t count, uint64_t offset)
{
  struct mem_file *f = ((struct mem_io *) io)->f;

  if (offset + count > f->size)
    mem_truncate (io, offset + count);
  memcpy (f->bytes + offset, buf, count);
  return 0;
}

static int
mem_flush (struct io *io)
{
  return 0;
}

static int64_t
mem_size (struct io *io)
{
  return ((struct mem_io *) io)->f->size;
}

static void
mem_close (struct io *io)
{
  free (io);
}

static const struct io_ops mem_ops = {
  .pread = mem_pread, .pwrite = mem_pwrite, .flush = mem_flush,
  .size = mem_size, .truncate = mem_truncate, .close = mem_close,
};

static struct io *
mem_view (struct mem_file *f)
{
  struct mem_io *m = calloc (1, sizeof *m);

  assert (m);
  m->io.ops = &mem_ops;
  m->io.name = f->name;
  m->f = f;
  return &m->io;
}

struct mem_opener {
  struct mem_file *files;
  size_t nr_files;
  char log[256];                /* "role:name<named_by>;" per request */
};

static struct io *
mem_open (void *opaque, const struct qcow2_file_request *req)
{
  struct mem_opener *o = opaque;
  size_t len = strlen (o->log);

  snprintf (o->log + len, sizeof o->log - len, "%d:%s<%s>;", req->role,
            req->name, req->named_by ? req->named_by : "");
  for (size_t i = 0; i < o->nr_files; i++)
    if (strcmp (o->files[i].name, req->name) == 0)
      return mem_view (&o->files[i]);
  errno = ENOENT;
  return NULL;
}

static void
test_opener (void)
{
  struct mem_file files[] = { { .name = "base" }, { .name = "./base" },
                              { .name = "top" } };
  struct mem_opener mo = { .files = files, .nr_files = 3 };
  struct qcow2_opener opener = { .open = mem_open, .opaque = &mo };
  struct qcow2_create_options c = { .filename = "base", .size = 1 << 20 };
  struct qcow2_create_files cf = { .image = mem_view (&files[0]) };
  struct qcow2_options o = { .opener = &opener, .filename = "base" };
  struct qcow2_image *img;
  unsigned char buf[4096], want[4096];

  /* A base image with data, in memory. */
  assert (qcow2_create_on (&c, &cf) == 0);
  io_close (cf.image);
  assert (qcow2_open (&o, &img) == 0);
  assert (qcow2_prepare_write (img) == 0);
  memset (want, 0xa5, sizeof want);
  assert (qcow2_pwrite (img, want, sizeof want, 65536, 0) == 0);
  assert (qcow2_close (img) == 0);
  assert (strcmp (mo.log, "0:base<>;") == 0);

  /* An overlay naming it: the engine asks for the name resolved from
   * the overlay's directory, on the overlay's behalf.
   */
  files[1].bytes = files[0].bytes;
  files[1].size = files[0].size;
  c = (struct qcow2_create_options) {
    .filename = "top", .size_from_backing = true,
    .backing_file = "base", .backing_format = "qcow2",
  };
  cf.image = mem_view (&files[2]);
  cf.backing = mem_view (&files[1]);
  assert (qcow2_create_on (&c, &cf) == 0);
  io_close (cf.image);
  io_close (cf.backing);
  mo.log[0] = '\0';
  o.filename = "top";
  o.readonly = true;
  assert (qcow2_open (&o, &img) == 0);
  assert (strcmp (mo.log, "0:top<>;1:./base<top>;") == 0);
  assert (qcow2_size (img) == 1 << 20);
  assert (qcow2_pread (img, buf, sizeof buf, 65536) == 0);
  assert (memcmp (buf, want, sizeof buf) == 0);
  assert (qcow2_close (img) == 0);

  /* backing=none asks for nothing but the image. */
  mo.log[0] = '\0';
  o.backing = QCOW2_BACKING_NONE;
  assert (qcow2_open (&o, &img) == 0);
  assert (strcmp (mo.log, "0:top<>;") == 0);
  assert (qcow2_pread (img, buf, sizeof buf, 65536) == 0);
  assert (buf[0] == 0 && memcmp (buf, buf + 1, sizeof buf - 1) == 0);
  assert (qcow2_close (img) == 0);

  free (files[0].bytes);
  free (files[2].bytes);
  printf ("ok: images in memory, through an opener\n");
}

/* An encrypted image opened without its passphrase for its metadata
 * (qcow2_options.metadata_only): no guest byte goes in or out.
 */
static void
test_metadata_only (const char *dir)
{
  char path[4096];
  struct qcow2_create_options c = {
    .filename = path, .size = 1 << 20, .encrypt = QCOW2_ENCRYPT_LUKS,
    .passphrase = "secret", .encrypt_iter_time = 10,
  };
  struct qcow2_options o = {
    .opener = &qcow2_local_files, .filename = path, .passphrase = "secret",
  };
  struct qcow2_image *img;
  unsigned char buf[512] = { 1 };

  snprintf (path, sizeof path, "%s/encrypted.qcow2", dir);
  assert (qcow2_create (&c) == 0);
  assert (qcow2_open (&o, &img) == 0);
  assert (qcow2_prepare_write (img) == 0);
  assert (qcow2_pwrite (img, buf, sizeof buf, 0, 0) == 0);
  assert (qcow2_close (img) == 0);

  o.passphrase = NULL;
  assert (qcow2_open (&o, &img) == -1 && errno == EPERM);
  o.metadata_only = true;
  assert (qcow2_open (&o, &img) == 0);
  assert (qcow2_pread (img, buf, sizeof buf, 0) == -1 && errno == EPERM);
  assert (qcow2_prepare_write (img) == -1 && errno == EPERM);
  assert (qcow2_close (img) == 0);
  unlink (path);
  printf ("ok: an encrypted image opened for its metadata only\n");
}

int
main (void)
{
  char dir[] = "/tmp/test-engine.XXXXXX";

  rng = 0x2545f4914f6cdd1dULL;
  test_refcount_packing ();
  test_opener ();
  assert (mkdtemp (dir));
  test_metadata_only (dir);
  run_config (dir, 65536, 3, 16, false, false);
  run_config (dir, 512, 3, 1, false, false);
  run_config (dir, 512, 3, 64, false, false);
  run_config (dir, 4096, 2, 16, false, false);
  run_config (dir, 2 * 1024 * 1024, 3, 8, false, false);
  run_config (dir, 65536, 3, 2, true, false);
  run_config (dir, 16384, 3, 32, true, true);
  run_config (dir, 65536, 3, 4, false, true);
  rmdir (dir);
  return 0;
}
