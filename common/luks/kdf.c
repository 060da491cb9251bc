/* PBKDF2 (RFC 8018) via gnutls, argon2 (RFC 9106) via libargon2. */
#include <config.h>

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#ifdef HAVE_ARGON2
#include <argon2.h>
#endif

#include "diag.h"
#include "kdf.h"

/* The names cryptsetup writes in LUKS headers.  SHA-3 is missing
 * because gnutls has no HMAC for it; whirlpool because gnutls lacks it.
 *
 * cost: PBKDF2 blocks per second through gnutls on an AMD EPYC with
 * SHA extensions (one thread, 2026), relative to SHA-256 = 16, rounded
 * up: sha1 8.2 M/s, sha224 7.5, sha256 7.2, sha384 2.2, sha512 2.1,
 * stribog256 0.46, stribog512 0.34.  gnutls refuses PBKDF2 with
 * ripemd160 here; cryptsetup's own benchmark puts it at a third of
 * SHA-256 per block.  Without SHA extensions SHA-256 is the slower
 * side, so these weights only err towards lower caps for the others.
 */
static const struct luks_hash hashes[] = {
  { "sha1",       GNUTLS_MAC_SHA1,         GNUTLS_DIG_SHA1,         20,  16 },
  { "sha224",     GNUTLS_MAC_SHA224,       GNUTLS_DIG_SHA224,       28,  16 },
  { "sha256",     GNUTLS_MAC_SHA256,       GNUTLS_DIG_SHA256,       32,  16 },
  { "sha384",     GNUTLS_MAC_SHA384,       GNUTLS_DIG_SHA384,       48,  56 },
  { "sha512",     GNUTLS_MAC_SHA512,       GNUTLS_DIG_SHA512,       64,  56 },
  { "ripemd160",  GNUTLS_MAC_RMD160,       GNUTLS_DIG_RMD160,       20,  48 },
  { "stribog256", GNUTLS_MAC_STREEBOG_256, GNUTLS_DIG_STREEBOG_256, 32, 256 },
  { "stribog512", GNUTLS_MAC_STREEBOG_512, GNUTLS_DIG_STREEBOG_512, 64, 352 },
};

const struct luks_hash *
luks_hash_find (const char *name)
{
  size_t i;

  for (i = 0; i < sizeof hashes / sizeof hashes[0]; ++i)
    if (strcasecmp (name, hashes[i].name) == 0)
      return &hashes[i];
  return NULL;
}

const struct luks_hash *
luks_hash_lookup (const char *name)
{
  const struct luks_hash *h = luks_hash_find (name);

  if (h)
    return h;
  diag_error ("luks: hash \"%s\" is not supported", name);
  errno = ENOTSUP;
  return NULL;
}

int
luks_pbkdf2 (const struct luks_hash *hash,
             const void *pass, size_t pass_len,
             const uint8_t *salt, size_t salt_len,
             uint32_t iterations, uint8_t *out, size_t out_len)
{
  gnutls_datum_t key = { .data = (void *) pass, .size = pass_len };
  gnutls_datum_t s = { .data = (void *) salt, .size = salt_len };
  int r;

  if (iterations == 0) {
    diag_error ("luks: PBKDF2 iteration count is 0");
    errno = EINVAL;
    return -1;
  }
  r = gnutls_pbkdf2 (hash->mac, &key, &s, iterations, out, out_len);
  if (r < 0) {
    diag_error ("luks: PBKDF2-%s: %s", hash->name, gnutls_strerror (r));
    errno = EIO;
    return -1;
  }
  return 0;
}

int
luks_argon2 (enum luks_argon2_type type,
             const void *pass, size_t pass_len,
             const uint8_t *salt, size_t salt_len,
             uint32_t time, uint32_t memory_kib, uint32_t threads,
             uint8_t *out, size_t out_len)
{
#ifdef HAVE_ARGON2
  int r;

  if (type == LUKS_ARGON2I)
    r = argon2i_hash_raw (time, memory_kib, threads, pass, pass_len,
                          salt, salt_len, out, out_len);
  else
    r = argon2id_hash_raw (time, memory_kib, threads, pass, pass_len,
                           salt, salt_len, out, out_len);
  if (r != ARGON2_OK) {
    diag_error ("luks: argon2: %s", argon2_error_message (r));
    errno = r == ARGON2_MEMORY_ALLOCATION_ERROR ? ENOMEM : EINVAL;
    return -1;
  }
  return 0;
#else
  diag_error ("luks: argon2 key slots need libargon2, "
              "which this build does not have");
  errno = ENOTSUP;
  return -1;
#endif
}

static double
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

uint32_t
luks_pbkdf2_iterations_for (const struct luks_hash *hash,
                            size_t out_len, uint32_t ms)
{
  /* Time a growing trial until it is long enough to measure. */
  const uint8_t salt[32] = { 0 };
  uint8_t out[64];
  uint32_t trial = 1000;
  double elapsed = 0, total;

  if (out_len > sizeof out)
    out_len = sizeof out;
  for (;;) {
    double start = now_ms ();

    if (luks_pbkdf2 (hash, "benchmark", 9, salt, sizeof salt, trial,
                     out, out_len) == -1)
      return 1000;
    elapsed = now_ms () - start;
    if (elapsed >= 50 || trial >= (1u << 30))
      break;
    trial *= 2;
  }
  total = trial * (ms / (elapsed > 0 ? elapsed : 1));
  if (total < 1000)
    return 1000;
  if (total > UINT32_MAX)
    return UINT32_MAX;
  return total;
}
