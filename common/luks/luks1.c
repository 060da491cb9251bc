/* Opening a LUKS1 volume (LUKS1 spec, "LUKS On-Disk Format
 * Specification" 1.2.3, sections 2 and 3).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "byte-order.h"
#include "checked-overflow.h"
#include "diag.h"
#include "internal.h"
#include "kdf-limits.h"
#include "keymem.h"
#include "luks1.h"

struct luks1_header {
  char cipher[LUKS1_STRING_LEN + 1];
  char mode[LUKS1_STRING_LEN + 1];
  const struct luks_hash *hash;
  uint32_t payload_sector;
  uint32_t key_bytes;
  const uint8_t *mk_digest;
  const uint8_t *mk_salt;
  uint32_t mk_iterations;
  const uint8_t *slots;         /* LUKS1_NUM_KEYSLOTS * 48 bytes */
};

/* A fixed-size string field must be NUL-terminated. */
static int
get_string (const uint8_t *hdr, size_t off, char *out, const char *what)
{
  if (memchr (hdr + off, '\0', LUKS1_STRING_LEN) == NULL) {
    diag_error ("luks: LUKS1 header: %s is not NUL-terminated", what);
    errno = EINVAL;
    return -1;
  }
  strcpy (out, (const char *) hdr + off);
  return 0;
}

static int
parse_header (const uint8_t *hdr, bool embedded, struct luks1_header *h)
{
  char hash_name[LUKS1_STRING_LEN + 1];

  if (get_string (hdr, LUKS1_OFF_CIPHER_NAME, h->cipher, "cipher name") == -1 ||
      get_string (hdr, LUKS1_OFF_CIPHER_MODE, h->mode, "cipher mode") == -1 ||
      get_string (hdr, LUKS1_OFF_HASH_SPEC, hash_name, "hash spec") == -1)
    return -1;
  h->hash = luks_hash_lookup (hash_name);
  if (h->hash == NULL)
    return -1;
  h->payload_sector = load_be32 (hdr + LUKS1_OFF_PAYLOAD_OFFSET);
  h->key_bytes = load_be32 (hdr + LUKS1_OFF_KEY_BYTES);
  h->mk_digest = hdr + LUKS1_OFF_MK_DIGEST;
  h->mk_salt = hdr + LUKS1_OFF_MK_DIGEST_SALT;
  h->mk_iterations = load_be32 (hdr + LUKS1_OFF_MK_DIGEST_ITER);
  h->slots = hdr + LUKS1_OFF_KEYSLOTS;

  if (luks_cipher_check (h->cipher, h->mode, h->key_bytes) == -1)
    return -1;
  if (h->payload_sector == 0 && !embedded) {
    diag_error ("luks: LUKS1 payload offset is 0: volumes with a detached "
                "header are not supported");
    errno = ENOTSUP;
    return -1;
  }
  if (h->mk_iterations == 0) {
    diag_error ("luks: LUKS1 header: master key digest iterations is 0");
    errno = EINVAL;
    return -1;
  }
  return 0;
}

/* Check one slot's fields; *active tells whether it is in use. */
static int
check_slot (const struct luks1_header *h, int i,
            const struct luks_open_params *params, uint64_t limit,
            bool *active, struct luks_keyslot_area *area)
{
  const uint8_t *ks = h->slots + i * LUKS1_KEYSLOT_SIZE;
  uint32_t state = load_be32 (ks + LUKS1_KS_OFF_ACTIVE);
  uint64_t material = load_be32 (ks + LUKS1_KS_OFF_MATERIAL);
  uint32_t stripes = load_be32 (ks + LUKS1_KS_OFF_STRIPES);
  uint64_t start, len;

  if (state == LUKS1_KEY_DISABLED) {
    *active = false;
    return 0;
  }
  if (state != LUKS1_KEY_ENABLED) {
    diag_error ("luks: LUKS1 key slot %d is damaged (state 0x%08" PRIx32 ")",
                i, state);
    errno = EINVAL;
    return -1;
  }
  *active = true;
  if (stripes != LUKS_STRIPES) {
    diag_error ("luks: LUKS1 key slot %d is damaged "
                "(%" PRIu32 " anti-forensic stripes, expected %d)",
                i, stripes, LUKS_STRIPES);
    errno = EINVAL;
    return -1;
  }
  if (load_be32 (ks + LUKS1_KS_OFF_ITERATIONS) == 0) {
    diag_error ("luks: LUKS1 key slot %d is damaged (0 iterations)", i);
    errno = EINVAL;
    return -1;
  }

  len = luks_keyslot_area_length (h->key_bytes, stripes);
  start = material * LUKS_SECTOR;
  if (start < LUKS1_HDR_SIZE) {
    diag_error ("luks: LUKS1 key slot %d: key material overlaps the header",
                i);
    errno = EINVAL;
    return -1;
  }
  if (!params->embedded &&
      !range_within (start, len, (uint64_t) h->payload_sector * LUKS_SECTOR)) {
    diag_error ("luks: LUKS1 key slot %d: key material overlaps the payload",
                i);
    errno = EINVAL;
    return -1;
  }
  if (!range_within (params->header_offset + start, len, limit)) {
    diag_error ("luks: LUKS1 key slot %d: key material (%" PRIu64
                " bytes at header offset %" PRIu64 ") lies beyond the end "
                "of the LUKS area (%" PRIu64 " bytes): is it truncated?",
                i, len, start, limit - params->header_offset);
    errno = EINVAL;
    return -1;
  }

  *area = (struct luks_keyslot_area) {
    .offset = params->header_offset + start,
    .cipher = h->cipher,
    .mode = h->mode,
    .derived_len = h->key_bytes,
    .af_hash = h->hash,
    .stripes = stripes,
    .key_len = h->key_bytes,
  };
  return 0;
}

/* The derivations of every active slot and of the master key digest
 * against the caps, before any is derived; a slot to be tried costs
 * both.
 */
static int
check_kdf_costs (const char *volume, const struct luks1_header *h,
                 const bool *active, const struct luks_open_params *params)
{
  struct luks_kdf_limits lim;
  double digest, slot, total = 0;
  unsigned n = 0;
  char what[32];
  int i;

  luks_kdf_limits_resolve (&params->kdf_limits, &lim);
  if (luks_kdf_check_pbkdf2 (&lim, volume, "LUKS1 master key digest", h->hash,
                             LUKS1_DIGEST_LEN, h->mk_iterations,
                             &digest) == -1)
    return -1;
  for (i = 0; i < LUKS1_NUM_KEYSLOTS; ++i) {
    const uint8_t *ks = h->slots + i * LUKS1_KEYSLOT_SIZE;

    if (!active[i])
      continue;
    snprintf (what, sizeof what, "LUKS1 key slot %d", i);
    if (luks_kdf_check_pbkdf2 (&lim, volume, what, h->hash, h->key_bytes,
                               load_be32 (ks + LUKS1_KS_OFF_ITERATIONS),
                               &slot) == -1)
      return -1;
    if (params->key_slot < 0 || params->key_slot == i) {
      total += slot + digest;
      ++n;
    }
  }
  return luks_kdf_check_total (volume, "LUKS1", n, total);
}

/* Try the passphrase on one slot: 1 = the key is right, 0 = wrong
 * passphrase, -1 = error.
 */
static int
try_slot (struct io *io, const struct luks1_header *h, int i,
          const struct luks_keyslot_area *area,
          const uint8_t *pass, size_t pass_len, uint8_t *key)
{
  const uint8_t *ks = h->slots + i * LUKS1_KEYSLOT_SIZE;
  uint8_t digest[LUKS1_DIGEST_LEN];
  uint8_t *derived;
  int r = -1;

  derived = keymem_alloc (h->key_bytes);
  if (derived == NULL)
    return -1;
  if (luks_pbkdf2 (h->hash, pass, pass_len, ks + LUKS1_KS_OFF_SALT,
                   LUKS1_SALT_LEN, load_be32 (ks + LUKS1_KS_OFF_ITERATIONS),
                   derived, h->key_bytes) == -1 ||
      luks_keyslot_unlock (io, area, derived, key) == -1 ||
      luks_pbkdf2 (h->hash, key, h->key_bytes, h->mk_salt, LUKS1_SALT_LEN,
                   h->mk_iterations, digest, sizeof digest) == -1)
    goto out;
  r = luks_digest_equal (digest, h->mk_digest, sizeof digest);
  diag_debug ("luks: LUKS1 key slot %d %s", i,
              r ? "unlocked" : "does not match the passphrase");
 out:
  keymem_free (derived);
  return r;
}

int
luks1_volume_set (struct luks_volume *v, uint64_t payload_offset,
                  const char *cipher, const char *mode,
                  const uint8_t *key, uint32_t key_bytes)
{
  v->version = 1;
  v->payload_offset = payload_offset;
  v->payload_length = 0;
  v->iv_tweak = 0;
  v->sector_size = LUKS_SECTOR;
  v->cipher = luks_cipher_new (cipher, mode, key, key_bytes, LUKS_SECTOR);
  return v->cipher ? 0 : -1;
}

int
luks1_open (struct io *io, const struct luks_open_params *params,
            uint64_t limit, const uint8_t *pass, size_t pass_len,
            struct luks_volume *v)
{
  uint8_t hdr[LUKS1_HDR_SIZE];
  struct luks1_header h;
  struct luks_keyslot_area areas[LUKS1_NUM_KEYSLOTS];
  bool active[LUKS1_NUM_KEYSLOTS];
  uint8_t *key = NULL;
  int i, r, found = -1, n_active = 0;

  if (io_pread (io, hdr, sizeof hdr, params->header_offset) == -1 ||
      parse_header (hdr, params->embedded, &h) == -1)
    return -1;

  if (params->key_slot >= LUKS1_NUM_KEYSLOTS) {
    diag_error ("luks: key slot %d does not exist (LUKS1 has %d)",
                params->key_slot, LUKS1_NUM_KEYSLOTS);
    errno = EINVAL;
    return -1;
  }
  for (i = 0; i < LUKS1_NUM_KEYSLOTS; ++i) {
    if (check_slot (&h, i, params, limit, &active[i], &areas[i]) == -1)
      return -1;
    n_active += active[i];
  }
  if (params->key_slot >= 0 && !active[params->key_slot]) {
    diag_error ("luks: key slot %d is not active", params->key_slot);
    errno = EINVAL;
    return -1;
  }
  if (n_active == 0) {
    diag_error ("luks: LUKS1 volume has no active key slot");
    errno = EINVAL;
    return -1;
  }
  if (check_kdf_costs (io->name, &h, active, params) == -1)
    return -1;

  key = keymem_alloc (h.key_bytes);
  if (key == NULL)
    return -1;
  for (i = 0; i < LUKS1_NUM_KEYSLOTS && found < 0; ++i) {
    if (!active[i] || (params->key_slot >= 0 && i != params->key_slot))
      continue;
    r = try_slot (io, &h, i, &areas[i], pass, pass_len, key);
    if (r == -1)
      goto err;
    if (r == 1)
      found = i;
  }
  if (found < 0) {
    if (params->key_slot >= 0)
      diag_error ("%s: the passphrase does not unlock key slot %d",
                  io->name, params->key_slot);
    else
      diag_error ("%s: the passphrase does not unlock any key slot",
                  io->name);
    errno = EPERM;
    goto err;
  }

  if (luks1_volume_set (v, (uint64_t) h.payload_sector * LUKS_SECTOR,
                        h.cipher, h.mode, key, h.key_bytes) == -1)
    goto err;
  diag_debug ("luks: LUKS1 %s-%s, %" PRIu32 "-bit key, unlocked with "
              "key slot %d", h.cipher, h.mode, h.key_bytes * 8, found);
  keymem_free (key);
  return 0;

 err:
  keymem_free (key);
  return -1;
}
