/* Hashes and key derivation for LUKS: PBKDF2 over any HMAC gnutls
 * offers, and argon2i / argon2id (LUKS2) through libargon2.
 */
#ifndef LUKS_KDF_H
#define LUKS_KDF_H

#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

/* A LUKS hash name ("sha256", "ripemd160", ...) and gnutls's ids. */
struct luks_hash {
  const char *name;
  gnutls_mac_algorithm_t mac;
  gnutls_digest_algorithm_t digest;
  size_t len;                   /* digest length in bytes */
  /* PBKDF2 time per hash-sized block of output, SHA-256 = 16
   * (measured, see kdf.c): what the iteration caps scale by.
   */
  unsigned cost;
};

/* NULL, with a message naming it, if the hash is not supported. */
extern const struct luks_hash *luks_hash_lookup (const char *name);
/* The same without a message. */
extern const struct luks_hash *luks_hash_find (const char *name);

extern int luks_pbkdf2 (const struct luks_hash *hash,
                        const void *pass, size_t pass_len,
                        const uint8_t *salt, size_t salt_len,
                        uint32_t iterations, uint8_t *out, size_t out_len);

enum luks_argon2_type { LUKS_ARGON2I, LUKS_ARGON2ID };

/* memory_kib, time and threads as in the LUKS2 "kdf" object. */
extern int luks_argon2 (enum luks_argon2_type type,
                        const void *pass, size_t pass_len,
                        const uint8_t *salt, size_t salt_len,
                        uint32_t time, uint32_t memory_kib, uint32_t threads,
                        uint8_t *out, size_t out_len);

/* PBKDF2 iterations that take about ms milliseconds here (at least
 * 1000, the LUKS1 minimum).
 */
extern uint32_t luks_pbkdf2_iterations_for (const struct luks_hash *hash,
                                            size_t out_len, uint32_t ms);

#endif /* LUKS_KDF_H */
