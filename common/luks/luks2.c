/* Opening a LUKS2 volume: choose a header, parse its metadata, then try
 * the passphrase on the keyslots the segment's digest names, highest
 * priority first (LUKS2 spec sections 2 and 3).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "internal.h"
#include "kdf-limits.h"
#include "keymem.h"
#include "luks2.h"

static int
derive (const struct luks2_keyslot *k, const uint8_t *pass, size_t pass_len,
        uint8_t *derived)
{
  switch (k->kdf) {
  case LUKS2_KDF_PBKDF2:
    return luks_pbkdf2 (k->kdf_hash, pass, pass_len, k->salt, k->salt_len,
                        k->iterations, derived, k->area_key_size);
  case LUKS2_KDF_ARGON2I:
  case LUKS2_KDF_ARGON2ID:
    return luks_argon2 (k->kdf == LUKS2_KDF_ARGON2I
                        ? LUKS_ARGON2I : LUKS_ARGON2ID,
                        pass, pass_len, k->salt, k->salt_len,
                        k->time, k->memory, k->cpus,
                        derived, k->area_key_size);
  }
  abort ();
}

/* 1 = unlocked (key filled), 0 = wrong passphrase, -1 = error. */
static int
try_keyslot (struct io *io, uint64_t header_offset,
             const struct luks2_metadata *md, int id,
             const uint8_t *pass, size_t pass_len, uint8_t *key)
{
  const struct luks2_keyslot *k = &md->keyslots[id];
  struct luks_keyslot_area area = {
    .offset = header_offset + k->area_offset,
    .cipher = k->area_cipher,
    .mode = k->area_mode,
    .derived_len = k->area_key_size,
    .af_hash = k->af_hash,
    .stripes = k->stripes,
    .key_len = k->key_size,
  };
  uint8_t digest[LUKS2_MAX_DIGEST];
  uint8_t *derived;
  int r = -1;

  derived = keymem_alloc (k->area_key_size);
  if (derived == NULL)
    return -1;
  if (derive (k, pass, pass_len, derived) == -1 ||
      luks_keyslot_unlock (io, &area, derived, key) == -1 ||
      luks_pbkdf2 (md->digest_hash, key, k->key_size,
                   md->digest_salt, md->digest_salt_len,
                   md->digest_iterations, digest, md->digest_len) == -1)
    goto out;
  r = luks_digest_equal (digest, md->digest, md->digest_len);
  diag_debug ("luks: LUKS2 keyslot %d %s", id,
              r ? "unlocked" : "does not match the passphrase");
 out:
  keymem_free (derived);
  return r;
}

/* Keyslots worth trying: named by the digest, of the right key size,
 * and not "ignore" priority unless asked for by number.
 */
static uint32_t
candidates (const struct luks2_metadata *md, int key_slot, size_t key_len)
{
  uint32_t mask = 0;
  int id;

  for (id = 0; id < LUKS2_MAX_KEYSLOTS; ++id) {
    const struct luks2_keyslot *k = &md->keyslots[id];

    if (!k->present || !(md->digest_keyslots & (UINT32_C (1) << id)) ||
        k->key_size != key_len)
      continue;
    if (key_slot >= 0 ? id != key_slot : k->priority == 0)
      continue;
    mask |= UINT32_C (1) << id;
  }
  return mask;
}

static int
check_keyslot_kdf (const struct luks_kdf_limits *lim, const char *volume,
                   int id, const struct luks2_keyslot *k, double *share)
{
  char what[32];

  snprintf (what, sizeof what, "LUKS2 keyslot %d", id);
  if (k->kdf == LUKS2_KDF_PBKDF2)
    return luks_kdf_check_pbkdf2 (lim, volume, what, k->kdf_hash,
                                  k->area_key_size, k->iterations, share);
  return luks_kdf_check_argon2 (lim, volume, what,
                                k->kdf == LUKS2_KDF_ARGON2I
                                ? "argon2i" : "argon2id",
                                k->time, k->memory, k->cpus, share);
}

/* The derivations of every keyslot and of the digest against the caps,
 * before any is derived; a keyslot to be tried costs both.
 */
static int
check_kdf_costs (const char *volume, const struct luks2_metadata *md,
                 const struct luks_open_params *params, size_t key_len)
{
  uint32_t mask = candidates (md, params->key_slot, key_len);
  struct luks_kdf_limits lim;
  double digest, slot, total = 0;
  unsigned n = 0;
  int id;

  luks_kdf_limits_resolve (&params->kdf_limits, &lim);
  if (luks_kdf_check_pbkdf2 (&lim, volume, "LUKS2 volume key digest",
                             md->digest_hash, md->digest_len,
                             md->digest_iterations, &digest) == -1)
    return -1;
  for (id = 0; id < LUKS2_MAX_KEYSLOTS; ++id) {
    if (!md->keyslots[id].present)
      continue;
    if (check_keyslot_kdf (&lim, volume, id, &md->keyslots[id], &slot) == -1)
      return -1;
    if (mask & (UINT32_C (1) << id)) {
      total += slot + digest;
      ++n;
    }
  }
  return luks_kdf_check_total (volume, "LUKS2", n, total);
}

static int
unlock (struct io *io, const struct luks_open_params *params,
        const struct luks2_metadata *md, size_t key_len,
        const uint8_t *pass, size_t pass_len, uint8_t *key)
{
  uint32_t mask = candidates (md, params->key_slot, key_len);
  int prio, id, r;

  if (mask == 0) {
    if (params->key_slot >= 0)
      diag_error ("luks: LUKS2 keyslot %d does not exist or does not hold "
                  "the volume key", params->key_slot);
    else
      diag_error ("luks: LUKS2 volume has no usable keyslot");
    errno = EINVAL;
    return -1;
  }
  for (prio = 2; prio >= 0; --prio)
    for (id = 0; id < LUKS2_MAX_KEYSLOTS; ++id) {
      if (!(mask & (UINT32_C (1) << id)) || md->keyslots[id].priority != prio)
        continue;
      r = try_keyslot (io, params->header_offset, md, id, pass, pass_len, key);
      if (r != 0)
        return r == 1 ? id : -1;
    }

  if (md->n_tokens > 0)
    diag_error ("%s: the passphrase does not unlock any keyslot (the "
                "volume also has %u token(s), e.g. \"%s\", which cannot "
                "be used here)", io->name, md->n_tokens, md->token_type);
  else if (params->key_slot >= 0)
    diag_error ("%s: the passphrase does not unlock keyslot %d",
                io->name, params->key_slot);
  else
    diag_error ("%s: the passphrase does not unlock any keyslot", io->name);
  errno = EPERM;
  return -1;
}

/* The volume key length: that of the keyslots the digest names. */
static int
volume_key_length (const struct luks2_metadata *md, size_t *key_len)
{
  int id;

  for (id = 0; id < LUKS2_MAX_KEYSLOTS; ++id)
    if (md->keyslots[id].present &&
        (md->digest_keyslots & (UINT32_C (1) << id))) {
      *key_len = md->keyslots[id].key_size;
      return 0;
    }
  diag_error ("luks: LUKS2 volume has no keyslot for its data segment");
  errno = EINVAL;
  return -1;
}

int
luks2_open (struct io *io, const struct luks_open_params *params,
            uint64_t limit, const uint8_t *pass, size_t pass_len,
            struct luks_volume *v)
{
  struct luks2_header hdr = { NULL };
  struct luks2_metadata *md;
  uint8_t *key = NULL;
  size_t key_len;
  int slot, r = -1;

  md = malloc (sizeof *md);
  if (md == NULL) {
    diag_error ("luks: malloc: %m");
    return -1;
  }
  if (luks2_read_header (io, params->header_offset, limit, &hdr) == -1 ||
      luks2_parse_metadata (&hdr, params->header_offset, limit, md) == -1 ||
      volume_key_length (md, &key_len) == -1 ||
      luks_cipher_check (md->cipher, md->mode, key_len) == -1)
    goto out;
  if (params->key_slot >= LUKS2_MAX_KEYSLOTS) {
    diag_error ("luks: key slot %d does not exist (LUKS2 has %d)",
                params->key_slot, LUKS2_MAX_KEYSLOTS);
    errno = EINVAL;
    goto out;
  }
  if (check_kdf_costs (io->name, md, params, key_len) == -1)
    goto out;

  key = keymem_alloc (key_len);
  if (key == NULL)
    goto out;
  slot = unlock (io, params, md, key_len, pass, pass_len, key);
  if (slot == -1)
    goto out;

  v->version = 2;
  v->payload_offset = md->seg_offset;
  v->payload_length = md->seg_size;
  v->iv_tweak = md->iv_tweak;
  v->sector_size = md->sector_size;
  v->cipher = luks_cipher_new (md->cipher, md->mode, key, key_len,
                               md->sector_size);
  if (v->cipher == NULL)
    goto out;
  diag_debug ("luks: LUKS2 %s-%s, %zu-bit key, %" PRIu32 "-byte sectors, "
              "unlocked with keyslot %d%s", md->cipher, md->mode, key_len * 8,
              md->sector_size, slot,
              hdr.from_secondary ? " (secondary header)" : "");
  r = 0;
 out:
  keymem_free (key);
  free (hdr.json);
  free (md);
  return r;
}
