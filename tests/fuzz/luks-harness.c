/* One fuzzing input through the LUKS code (common/luks/).
 *
 * The input is a LUKS1 or LUKS2 volume, read through a struct io over
 * the input's bytes, and unlocked with the passphrase the seeds were
 * made with ("fuzz"), so that the whole unlock path runs: header, key
 * slots or JSON metadata, key derivation (bounded by kdf-cap.c), AF
 * merge, digest check.  A volume that opens has some payload sectors
 * decrypted and encrypted again, which must give back the bytes read.
 *
 * LUKS2 headers carry a checksum over the binary header and the JSON
 * area (LUKS2 spec section 2.1) that nearly every mutation breaks, so
 * the harness recomputes it for each copy it finds before the open,
 * except for one input in eight, which keeps the checksums as they are.
 *
 * Each volume is opened as the luks filter opens it (every key slot),
 * and half the time once more with other parameters.  These choices,
 * and which sectors are checked, come from a PRNG seeded with a hash of
 * the input, so a finding replays from the file alone.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "byte-order.h"
#include "diag.h"
#include "fuzz-rng.h"
#include "harness.h"
#include "kdf.h"
#include "luks.h"
#include "minmax.h"

#define PASSPHRASE      "fuzz"
#define MAX_PAYLOAD_RUN (64 * 1024)

/* LUKS2 binary header fields (LUKS2 spec section 2.1). */
#define L2_OFF_VERSION   6
#define L2_OFF_HDR_SIZE  8
#define L2_OFF_CSUM_ALG  72
#define L2_CSUM_ALG_LEN  32
#define L2_OFF_CSUM      448
#define L2_CSUM_LEN      64
#define L2_MIN_HDR_SIZE  16384
#define L2_MAX_HDR_SIZE  4194304

/* A read-only struct io over the input. */
struct mem_io {
  struct io io;
  const uint8_t *data;
  size_t size;
};

static int
mem_pread (struct io *io, void *buf, size_t count, uint64_t offset)
{
  struct mem_io *m = (struct mem_io *) io;

  if (offset > m->size || count > m->size - offset) {
    diag_error ("%s: read of %zu bytes at %" PRIu64 " past the end (%zu)",
                io->name, count, offset, m->size);
    errno = EIO;
    return -1;
  }
  memcpy (buf, m->data + offset, count);
  return 0;
}

static int
mem_refuse (struct io *io)
{
  diag_error ("%s: read-only", io->name);
  errno = EROFS;
  return -1;
}

static int
mem_pwrite (struct io *io, const void *buf, size_t count, uint64_t offset)
{
  return mem_refuse (io);
}

static int
mem_truncate (struct io *io, uint64_t size)
{
  return mem_refuse (io);
}

static int
mem_flush (struct io *io)
{
  return 0;
}

static int64_t
mem_size (struct io *io)
{
  return ((struct mem_io *) io)->size;
}

static void
mem_close (struct io *io)
{
}

static const struct io_ops mem_ops = {
  .pread = mem_pread,
  .pwrite = mem_pwrite,
  .flush = mem_flush,
  .size = mem_size,
  .truncate = mem_truncate,
  .close = mem_close,
};

/* Give the LUKS2 header copy at rel a valid checksum, if it looks like
 * one (magic, version 2, a power-of-two size that fits, a known
 * checksum algorithm).
 */
static void
fix_luks2_checksum (uint8_t *buf, size_t size, uint64_t rel)
{
  static const uint8_t magic[2][6] = {
    { 'L', 'U', 'K', 'S', 0xba, 0xbe }, { 'S', 'K', 'U', 'L', 0xba, 0xbe },
  };
  char alg[L2_CSUM_ALG_LEN + 1];
  const struct luks_hash *hash;
  uint8_t *h = buf + rel;
  uint64_t hdr_size;

  if (rel > size || size - rel < L2_MIN_HDR_SIZE ||
      memcmp (h, magic[rel != 0], sizeof magic[0]) != 0 ||
      load_be16 (h + L2_OFF_VERSION) != 2)
    return;
  hdr_size = load_be64 (h + L2_OFF_HDR_SIZE);
  if (hdr_size < L2_MIN_HDR_SIZE || hdr_size > L2_MAX_HDR_SIZE ||
      (hdr_size & (hdr_size - 1)) != 0 || hdr_size > size - rel)
    return;
  memcpy (alg, h + L2_OFF_CSUM_ALG, L2_CSUM_ALG_LEN);
  alg[L2_CSUM_ALG_LEN] = '\0';
  hash = luks_hash_find (alg);
  if (hash == NULL)
    return;
  memset (h + L2_OFF_CSUM, 0, L2_CSUM_LEN);
  if (gnutls_hash_fast (hash->digest, h, hdr_size, h + L2_OFF_CSUM) < 0)
    abort ();
}

static void
fix_luks2_checksums (uint8_t *buf, size_t size)
{
  /* The primary at 0, the secondary at any size the spec allows. */
  fix_luks2_checksum (buf, size, 0);
  for (uint64_t rel = L2_MIN_HDR_SIZE; rel <= L2_MAX_HDR_SIZE; rel *= 2)
    fix_luks2_checksum (buf, size, rel);
}

/* Decrypt count bytes of payload at pos and encrypt them again: the
 * result must be the ciphertext read.
 */
static void
round_trip (struct luks_volume *v, struct io *io, uint64_t start,
            uint64_t pos, size_t count)
{
  uint8_t *orig = malloc (count), *buf = malloc (count);

  if (orig == NULL || buf == NULL)
    abort ();
  if (io_pread (io, orig, count, start + pos) == 0) {
    memcpy (buf, orig, count);
    if (luks_decrypt_payload (v, pos, buf, count) == 0 &&
        luks_encrypt_payload (v, pos, buf, count) == 0 &&
        memcmp (buf, orig, count) != 0) {
      fprintf (stderr, "fuzz: payload %#" PRIx64 "+%#zx does not encrypt "
               "back to what it decrypted from\n", pos, count);
      abort ();
    }
  }
  free (orig);
  free (buf);
}

static void
check_payload (struct luks_volume *v, struct io *io, size_t size,
               struct rng *r)
{
  const uint32_t ss = luks_sector_size (v);
  uint64_t start, length, run;

  if (luks_version (v) != 1 && luks_version (v) != 2) {
    fprintf (stderr, "fuzz: LUKS version %d\n", luks_version (v));
    abort ();
  }
  if (ss != 512 && ss != 1024 && ss != 2048 && ss != 4096) {
    fprintf (stderr, "fuzz: sector size %" PRIu32 "\n", ss);
    abort ();
  }
  if (luks_payload_range (v, size, &start, &length) == -1 || length == 0)
    return;
  if (start > size || length > size - start || length % ss != 0) {
    fprintf (stderr, "fuzz: payload %#" PRIx64 "+%#" PRIx64 " does not fit "
             "the device (%zu bytes, sectors of %" PRIu32 ")\n",
             start, length, size, ss);
    abort ();
  }
  run = MIN (length, (uint64_t) MAX_PAYLOAD_RUN);
  round_trip (v, io, start, 0, run);
  if (length > ss)
    round_trip (v, io, start,
                (length / ss - 1 - rng_below (r, length / ss)) * ss, ss);
}

/* Open the volume with params; if it opens, check its payload. */
static void
open_volume (struct mem_io *m, const struct luks_open_params *params,
             struct rng *r)
{
  struct luks_volume *v;

  v = luks_open (&m->io, params, PASSPHRASE, strlen (PASSPHRASE));
  if (v) {
    if (!params->embedded)
      check_payload (v, &m->io, m->size, r);
    luks_close (v);
  }
}

int
fuzz_luks_one (const uint8_t *data, size_t size)
{
  struct rng r;
  uint8_t *buf = malloc (size ? size : 1);
  struct mem_io m;
  struct luks_open_params params = { .key_slot = -1 };

  if (buf == NULL)
    return -1;
  rng_seed (&r, data, size);
  memcpy (buf, data, size);
  fuzz_kdf_limits (&params.kdf_limits);
  if (rng_below (&r, 8) != 0)
    fix_luks2_checksums (buf, size);
  m = (struct mem_io) {
    .io = { .ops = &mem_ops, .name = "fuzz-volume", .readonly = true },
    .data = buf,
    .size = size,
  };

  /* As the luks filter opens a volume: every slot, the whole device. */
  open_volume (&m, &params, &r);

  /* Half the time again, with other parameters: the LUKS area given
   * as the whole input, embedded as the qcow2 engine opens its LUKS1
   * header, one key slot (or one that cannot exist).
   */
  if (rng_below (&r, 2)) {
    params.length = rng_below (&r, 2) ? size : 0;
    params.embedded = rng_below (&r, 4) == 0;
    if (rng_below (&r, 2))
      params.key_slot = (int) rng_below (&r, 34) - 1;
    open_volume (&m, &params, &r);
  }
  free (buf);
  return 0;
}
