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
  struct qcow2_options o = { .filename = path };
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

int
main (void)
{
  char dir[] = "/tmp/test-engine.XXXXXX";

  rng = 0x2545f4914f6cdd1dULL;
  test_refcount_packing ();
  assert (mkdtemp (dir));
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
