/* Creating a LUKS1 header (LUKS1 spec section 3.1), laid out as
 * cryptsetup and QEMU do: key material of slot i at 4096 bytes +
 * i * (key area rounded up to 4096), the payload after slot 7's area.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "cleanup.h"
#include "diag.h"
#include "internal.h"
#include "kdf-limits.h"
#include "keymem.h"
#include "luks1.h"
#include "minmax.h"
#include "rounding.h"

struct format {
  const char *cipher, *mode;
  const struct luks_hash *hash;
  uint32_t key_bytes;
  uint64_t slot_stride;         /* bytes between key areas */
  uint64_t length;              /* header + key areas = payload offset */
};

static int
resolve (const struct luks_format_params *p, struct format *f)
{
  uint32_t align = p->payload_alignment ? p->payload_alignment : 4096;

  f->cipher = p->cipher ? p->cipher : "aes";
  f->mode = p->mode ? p->mode : "xts-plain64";
  f->key_bytes = p->key_bytes;
  if (f->key_bytes == 0)
    f->key_bytes = strncmp (f->mode, "xts-", 4) == 0 ? 64 : 32;
  if (strlen (f->cipher) >= LUKS1_STRING_LEN ||
      strlen (f->mode) >= LUKS1_STRING_LEN) {
    diag_error ("luks: cipher name or mode is too long for LUKS1");
    errno = EINVAL;
    return -1;
  }
  if (align % LUKS_SECTOR != 0 || !is_power_of_2 (align)) {
    diag_error ("luks: payload alignment %" PRIu32 " is not a power of 2 "
                "multiple of 512", align);
    errno = EINVAL;
    return -1;
  }
  if (luks_cipher_check (f->cipher, f->mode, f->key_bytes) == -1)
    return -1;
  f->hash = luks_hash_lookup (p->hash ? p->hash : "sha256");
  if (f->hash == NULL)
    return -1;
  f->slot_stride = ROUND_UP ((uint64_t) f->key_bytes * LUKS_STRIPES,
                             (uint64_t) LUKS1_KEY_AREA_ALIGN);
  f->length = ROUND_UP (LUKS1_KEY_AREA_START +
                        LUKS1_NUM_KEYSLOTS * f->slot_stride, (uint64_t) align);
  return 0;
}

int
luks_format_length (const struct luks_format_params *params, uint64_t *length)
{
  struct format f;

  if (resolve (params, &f) == -1)
    return -1;
  *length = f.length;
  return 0;
}

static int
random_bytes (gnutls_rnd_level_t level, void *buf, size_t len)
{
  int r = gnutls_rnd (level, buf, len);

  if (r < 0) {
    diag_error ("luks: random numbers: %s", gnutls_strerror (r));
    errno = EIO;
    return -1;
  }
  return 0;
}

/* A random (version 4) UUID in its text form. */
static int
make_uuid (char out[LUKS1_UUID_LEN])
{
  uint8_t u[16];

  if (random_bytes (GNUTLS_RND_NONCE, u, sizeof u) == -1)
    return -1;
  u[6] = (u[6] & 0x0f) | 0x40;
  u[8] = (u[8] & 0x3f) | 0x80;
  snprintf (out, LUKS1_UUID_LEN,
            "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
            "%02x%02x%02x%02x%02x%02x",
            u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7],
            u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
  return 0;
}

/* Zero the areas of the unused slots (and the gap before the payload),
 * so no stale data from earlier use of the space remains.
 */
static int
zero_unused (struct io *io, uint64_t header_offset, const struct format *f)
{
  uint64_t start = LUKS1_KEY_AREA_START + f->slot_stride;
  uint64_t pos;
  const size_t chunk = 1024 * 1024;
  CLEANUP_FREE char *zero = calloc (1, chunk);

  if (zero == NULL) {
    diag_error ("luks: calloc: %m");
    return -1;
  }
  for (pos = start; pos < f->length; pos += chunk) {
    size_t n = MIN ((uint64_t) chunk, f->length - pos);

    if (io_pwrite (io, zero, n, header_offset + pos) == -1)
      return -1;
  }
  return 0;
}

struct luks_volume *
luks_format (struct io *io, uint64_t header_offset,
             const struct luks_format_params *params,
             const char *passphrase, size_t passphrase_len)
{
  struct format f;
  struct luks_volume *v = NULL;
  uint8_t hdr[LUKS1_KEY_AREA_START] = { 0 };
  uint8_t *ks, *key = NULL, *derived = NULL;
  uint8_t mk_salt[LUKS1_SALT_LEN], slot_salt[LUKS1_SALT_LEN];
  uint32_t iterations, mk_iterations;
  char uuid[LUKS1_UUID_LEN];
  int i;

  if (resolve (params, &f) == -1)
    return NULL;
  if (f.length / LUKS_SECTOR > UINT32_MAX) {
    errno = EINVAL;
    return NULL;
  }
  iterations = params->iterations;
  if (iterations == 0) {
    /* Measured, so kept under the default cap, which luks_open would
     * otherwise refuse on a much faster machine.
     */
    const struct luks_kdf_limits defaults = { 0 };
    struct luks_kdf_limits lim;

    luks_kdf_limits_resolve (&defaults, &lim);
    iterations = luks_pbkdf2_iterations_for (f.hash, f.key_bytes,
                                             params->iter_time_ms
                                             ? params->iter_time_ms : 2000);
    iterations = MIN (iterations,
                      luks_kdf_pbkdf2_cap (&lim, f.hash, f.key_bytes));
  }
  /* The digest needs less work than a slot: an attacker can only use it
   * after guessing the whole volume key.
   */
  mk_iterations = MAX (iterations / 8, UINT32_C (1000));

  key = keymem_alloc (f.key_bytes);
  derived = keymem_alloc (f.key_bytes);
  if (key == NULL || derived == NULL ||
      random_bytes (GNUTLS_RND_KEY, key, f.key_bytes) == -1 ||
      random_bytes (GNUTLS_RND_RANDOM, mk_salt, sizeof mk_salt) == -1 ||
      random_bytes (GNUTLS_RND_RANDOM, slot_salt, sizeof slot_salt) == -1 ||
      make_uuid (uuid) == -1)
    goto err;

  /* Fixed fields. */
  memcpy (hdr, luks_magic, LUKS_MAGIC_LEN);
  store_be16 (hdr + LUKS1_OFF_VERSION, 1);
  strcpy ((char *) hdr + LUKS1_OFF_CIPHER_NAME, f.cipher);
  strcpy ((char *) hdr + LUKS1_OFF_CIPHER_MODE, f.mode);
  strcpy ((char *) hdr + LUKS1_OFF_HASH_SPEC, f.hash->name);
  store_be32 (hdr + LUKS1_OFF_PAYLOAD_OFFSET, f.length / LUKS_SECTOR);
  store_be32 (hdr + LUKS1_OFF_KEY_BYTES, f.key_bytes);
  memcpy (hdr + LUKS1_OFF_MK_DIGEST_SALT, mk_salt, sizeof mk_salt);
  store_be32 (hdr + LUKS1_OFF_MK_DIGEST_ITER, mk_iterations);
  memcpy (hdr + LUKS1_OFF_UUID, uuid, strlen (uuid));
  if (luks_pbkdf2 (f.hash, key, f.key_bytes, mk_salt, sizeof mk_salt,
                   mk_iterations, hdr + LUKS1_OFF_MK_DIGEST,
                   LUKS1_DIGEST_LEN) == -1)
    goto err;

  /* Key slots: 0 active, the others disabled but laid out. */
  for (i = 0; i < LUKS1_NUM_KEYSLOTS; ++i) {
    ks = hdr + LUKS1_OFF_KEYSLOTS + i * LUKS1_KEYSLOT_SIZE;
    store_be32 (ks + LUKS1_KS_OFF_ACTIVE,
                i == 0 ? LUKS1_KEY_ENABLED : LUKS1_KEY_DISABLED);
    store_be32 (ks + LUKS1_KS_OFF_MATERIAL,
                (LUKS1_KEY_AREA_START + i * f.slot_stride) / LUKS_SECTOR);
    store_be32 (ks + LUKS1_KS_OFF_STRIPES, LUKS_STRIPES);
  }
  ks = hdr + LUKS1_OFF_KEYSLOTS;
  store_be32 (ks + LUKS1_KS_OFF_ITERATIONS, iterations);
  memcpy (ks + LUKS1_KS_OFF_SALT, slot_salt, sizeof slot_salt);

  if (luks_pbkdf2 (f.hash, passphrase, passphrase_len, slot_salt,
                   sizeof slot_salt, iterations, derived, f.key_bytes) == -1)
    goto err;
  {
    struct luks_keyslot_area area = {
      .offset = header_offset + LUKS1_KEY_AREA_START,
      .cipher = f.cipher, .mode = f.mode,
      .derived_len = f.key_bytes,
      .af_hash = f.hash, .stripes = LUKS_STRIPES,
      .key_len = f.key_bytes,
    };
    /* Key material before the header that points at it. */
    if (luks_keyslot_store (io, &area, derived, key) == -1 ||
        zero_unused (io, header_offset, &f) == -1 ||
        io_pwrite (io, hdr, sizeof hdr, header_offset) == -1)
      goto err;
  }

  v = calloc (1, sizeof *v);
  if (v == NULL) {
    diag_error ("luks: calloc: %m");
    goto err;
  }
  v->header_offset = header_offset;
  if (luks1_volume_set (v, f.length, f.cipher, f.mode, key,
                        f.key_bytes) == -1)
    goto err;
  diag_debug ("luks: formatted LUKS1 %s-%s, %" PRIu32 "-bit key, "
              "%" PRIu32 " iterations", f.cipher, f.mode, f.key_bytes * 8,
              iterations);
  keymem_free (key);
  keymem_free (derived);
  return v;

 err:
  free (v);
  keymem_free (key);
  keymem_free (derived);
  return NULL;
}
