/* Key-slot areas, common to LUKS1 and LUKS2: the volume key is AF-split
 * into stripes, and the stripes are encrypted with a key derived from
 * the passphrase (LUKS1 spec sections 2.4 and 3.2; LUKS2 "keyslots").
 */
#include <config.h>

#include <errno.h>
#include <string.h>

#include "af.h"
#include "diag.h"
#include "internal.h"
#include "keymem.h"
#include "rounding.h"

const uint8_t luks_magic[LUKS_MAGIC_LEN] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };
const uint8_t luks2_magic_2nd[LUKS_MAGIC_LEN] = { 'S', 'K', 'U', 'L', 0xba, 0xbe };

size_t
luks_keyslot_area_length (size_t key_len, uint32_t stripes)
{
  /* Callers bound key_len <= 64 and stripes == 4000: no overflow. */
  return ROUND_UP (key_len * stripes, (size_t) LUKS_SECTOR);
}

int
luks_split_cipher_spec (const char *spec, char *cipher, size_t cipher_size,
                        char *mode, size_t mode_size)
{
  const char *dash = strchr (spec, '-');

  if (dash == NULL || dash == spec ||
      (size_t) (dash - spec) >= cipher_size ||
      strlen (dash + 1) >= mode_size) {
    diag_error ("luks: encryption \"%s\" is not supported", spec);
    errno = ENOTSUP;
    return -1;
  }
  memcpy (cipher, spec, dash - spec);
  cipher[dash - spec] = '\0';
  strcpy (mode, dash + 1);
  return 0;
}

static struct luks_cipher *
area_cipher (const struct luks_keyslot_area *area, const uint8_t *derived)
{
  return luks_cipher_new (area->cipher, area->mode, derived,
                          area->derived_len, LUKS_SECTOR);
}

int
luks_keyslot_unlock (struct io *io, const struct luks_keyslot_area *area,
                     const uint8_t *derived, uint8_t *key)
{
  size_t len = luks_keyslot_area_length (area->key_len, area->stripes);
  struct luks_cipher *c = NULL;
  uint8_t *split;
  int r = -1;

  split = keymem_alloc (len);
  if (split == NULL)
    return -1;
  if (io_pread (io, split, len, area->offset) == -1)
    goto out;
  c = area_cipher (area, derived);
  if (c == NULL || luks_cipher_decrypt (c, 0, split, len) == -1)
    goto out;
  r = luks_af_merge (area->af_hash, split, area->key_len, area->stripes, key);
 out:
  luks_cipher_free (c);
  keymem_free (split);
  return r;
}

int
luks_keyslot_store (struct io *io, const struct luks_keyslot_area *area,
                    const uint8_t *derived, const uint8_t *key)
{
  size_t len = luks_keyslot_area_length (area->key_len, area->stripes);
  struct luks_cipher *c = NULL;
  uint8_t *split;
  int r = -1;

  split = keymem_alloc (len);   /* zeroed, so the sector padding is 0 */
  if (split == NULL)
    return -1;
  if (luks_af_split (area->af_hash, key, area->key_len, area->stripes,
                     split) == -1)
    goto out;
  c = area_cipher (area, derived);
  if (c == NULL || luks_cipher_encrypt (c, 0, split, len) == -1)
    goto out;
  r = io_pwrite (io, split, len, area->offset);
 out:
  luks_cipher_free (c);
  keymem_free (split);
  return r;
}

bool
luks_digest_equal (const uint8_t *a, const uint8_t *b, size_t len)
{
  uint8_t diff = 0;
  size_t i;

  for (i = 0; i < len; ++i)
    diff |= a[i] ^ b[i];
  return diff == 0;
}
