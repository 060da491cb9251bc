/* Anti-forensic split and merge (LUKS1 spec section 2.4).
 *
 * With d_0 = 0 and d_k = H(d_{k-1} xor s_k) for the first stripes - 1
 * stripes, the key is d_{n-1} xor s_n.  H ("diffuse") hashes the block
 * in digest-sized pieces, each prefixed by its big-endian index, and
 * keeps as many bytes of each digest as the piece had.
 */
#include <config.h>

#include <errno.h>
#include <string.h>

#include "af.h"
#include "byte-order.h"
#include "diag.h"
#include "keymem.h"
#include "minmax.h"

static int
diffuse (const struct luks_hash *hash, uint8_t *block, size_t len)
{
  uint8_t digest[64];
  size_t pos;
  uint32_t i;

  for (i = 0, pos = 0; pos < len; ++i, pos += hash->len) {
    size_t n = MIN (hash->len, len - pos);
    gnutls_hash_hd_t h;
    uint8_t index[4];
    int r;

    store_be32 (index, i);
    r = gnutls_hash_init (&h, hash->digest);
    if (r < 0) {
      diag_error ("luks: %s: %s", hash->name, gnutls_strerror (r));
      errno = EIO;
      return -1;
    }
    gnutls_hash (h, index, sizeof index);
    gnutls_hash (h, block + pos, n);
    gnutls_hash_deinit (h, digest);
    memcpy (block + pos, digest, n);
  }
  explicit_bzero (digest, sizeof digest);
  return 0;
}

static void
xor_into (uint8_t *dst, const uint8_t *src, size_t len)
{
  size_t i;

  for (i = 0; i < len; ++i)
    dst[i] ^= src[i];
}

/* d = d_{stripes-1}, the running value before the last stripe. */
static int
af_running_value (const struct luks_hash *hash, const uint8_t *split,
                  size_t key_len, uint32_t stripes, uint8_t *d)
{
  uint32_t k;

  memset (d, 0, key_len);
  for (k = 0; k + 1 < stripes; ++k) {
    xor_into (d, split + (size_t) k * key_len, key_len);
    if (diffuse (hash, d, key_len) == -1)
      return -1;
  }
  return 0;
}

int
luks_af_merge (const struct luks_hash *hash,
               const uint8_t *split, size_t key_len,
               uint32_t stripes, uint8_t *key)
{
  if (stripes == 0) {
    diag_error ("luks: anti-forensic stripes is 0");
    errno = EINVAL;
    return -1;
  }
  if (af_running_value (hash, split, key_len, stripes, key) == -1)
    return -1;
  xor_into (key, split + (size_t) (stripes - 1) * key_len, key_len);
  return 0;
}

int
luks_af_split (const struct luks_hash *hash,
               const uint8_t *key, size_t key_len,
               uint32_t stripes, uint8_t *split)
{
  uint8_t *last;
  int r;

  if (stripes == 0) {
    errno = EINVAL;
    return -1;
  }
  r = gnutls_rnd (GNUTLS_RND_RANDOM, split, (size_t) (stripes - 1) * key_len);
  if (r < 0) {
    diag_error ("luks: random numbers: %s", gnutls_strerror (r));
    errno = EIO;
    return -1;
  }
  last = split + (size_t) (stripes - 1) * key_len;
  if (af_running_value (hash, split, key_len, stripes, last) == -1)
    return -1;
  xor_into (last, key, key_len);
  return 0;
}
