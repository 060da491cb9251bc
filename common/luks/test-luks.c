/* Unit tests for common/luks.
 *
 * Sector ciphers are checked against known answers computed with an
 * independent implementation (python3-cryptography, i.e. OpenSSL): the
 * SHA-256 of the ciphertext of a fixed pattern.  PBKDF2 against RFC 6070.
 * Header creation (luks_format) is checked by reopening the result at an
 * offset, as qcow2 embeds it; interoperability with qemu-img is proved
 * by tests/test-luks-lib.bats.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "byte-order.h"
#include "io.h"
#include "kdf.h"
#include "kdf-limits.h"
#include "luks.h"

static int failures;

#define CHECK(cond) \
  do { \
    if (!(cond)) { \
      fprintf (stderr, "%s:%d: FAIL: %s\n", __FILE__, __LINE__, #cond); \
      failures++; \
    } \
  } while (0)

static void
pattern (uint8_t *buf, size_t len)
{
  size_t i;

  for (i = 0; i < len; ++i)
    buf[i] = (i * 7 + 3) & 255;
}

static void
sha256_hex (const void *buf, size_t len, char out[65])
{
  uint8_t d[32];
  int i;

  gnutls_hash_fast (GNUTLS_DIG_SHA256, buf, len, d);
  for (i = 0; i < 32; ++i)
    sprintf (out + 2 * i, "%02x", d[i]);
}

/* Encrypt the pattern, compare with the known answer, decrypt back. */
static void
known_answer (const char *what, struct luks_cipher *c, size_t len,
              uint64_t iv_sector, const char *expected)
{
  uint8_t *buf = malloc (len), *orig = malloc (len);
  char hex[65];

  CHECK (c != NULL);
  if (c == NULL)
    goto out;
  pattern (orig, len);
  memcpy (buf, orig, len);
  CHECK (luks_cipher_encrypt (c, iv_sector, buf, len) == 0);
  sha256_hex (buf, len, hex);
  if (strcmp (hex, expected) != 0) {
    fprintf (stderr, "FAIL: %s: ciphertext sha256 %s, expected %s\n",
             what, hex, expected);
    failures++;
  }
  CHECK (luks_cipher_decrypt (c, iv_sector, buf, len) == 0);
  CHECK (memcmp (buf, orig, len) == 0);
 out:
  luks_cipher_free (c);
  free (buf);
  free (orig);
}

static void
test_ciphers (void)
{
  uint8_t k64[64], k32[32];
  int i;

  for (i = 0; i < 64; ++i)
    k64[i] = i;
  for (i = 0; i < 32; ++i)
    k32[i] = 100 + i;

  known_answer ("aes-xts-plain64 512",
                luks_cipher_new ("aes", "xts-plain64", k64, 64, 512), 1024, 5,
                "1b1b92b4f8aff3c89429dfc890e0a1cfb324a1733b0ec3ed4f4bf8c869a4f673");
  /* 4096-byte sectors: the tweak still counts 512-byte units. */
  known_answer ("aes-xts-plain64 4096",
                luks_cipher_new ("aes", "xts-plain64", k64, 64, 4096), 8192, 16,
                "34cd0beca5617de8fb5d3fab0c56039921dd1cab1ab59f97add24c09ca95d5f7");
  known_answer ("aes-xts-plain64 128-bit",
                luks_cipher_new ("aes", "xts-plain64", k32, 32, 512), 1024, 7,
                "1619f63b4f801dfa9d6a0289f8b0e2d1825a76b184a3a46bf5d12de3dc4f5621");
  known_answer ("aes-cbc-essiv:sha256",
                luks_cipher_new ("aes", "cbc-essiv:sha256", k32, 32, 512),
                1024, 3,
                "808954d208721aaadf8f8626c2b728fc1f4b83f696ad7f9c50c28bb015755b89");
  known_answer ("aes-cbc-plain64",
                luks_cipher_new ("aes", "cbc-plain64", k32, 32, 512),
                1024, (UINT64_C (1) << 32) + 1,
                "cf44b463968ed823901aab1d6e38facfe28b8e0a1c084ce2963160d04e76572c");
  /* plain truncates the sector number to 32 bits. */
  known_answer ("aes-cbc-plain",
                luks_cipher_new ("aes", "cbc-plain", k32, 32, 512),
                1024, (UINT64_C (1) << 32) + 1,
                "a59e61592618e72f7b578a58e61e2abfbfe03f32054503599025d49005a7d262");
  /* (c) qcow2 legacy AES: key zero-padded or cut to 16 bytes. */
  known_answer ("qcow aes short",
                luks_cipher_new_qcow_aes ("foo", 3), 1024, 9,
                "2c7659084ac45ce2ff5ebe32e37d13f968ba7a0b6f0f2f01eb0cf17c65e18846");
  known_answer ("qcow aes long",
                luks_cipher_new_qcow_aes ("0123456789abcdefXYZ", 19), 1024, 9,
                "c4a971ee8c702bde3375a075199aad4564594487f3f2928ddade001c4effbbc5");

  /* Refusals name the cipher. */
  CHECK (luks_cipher_new ("serpent", "xts-plain64", k64, 64, 512) == NULL);
  CHECK (errno == ENOTSUP);
  CHECK (luks_cipher_new ("aes", "xts-benbi", k64, 64, 512) == NULL);
  CHECK (luks_cipher_new ("aes", "xts-plain64", k64, 48, 512) == NULL);
  CHECK (luks_cipher_new ("aes", "xts-plain64", k64, 64, 1000) == NULL);
}

static void
test_pbkdf2 (void)
{
  /* RFC 6070 test vector 3 and its SHA-256 counterpart. */
  static const uint8_t sha1_4096[20] = {
    0x4b, 0x00, 0x79, 0x01, 0xb7, 0x65, 0x48, 0x9a, 0xbe, 0xad,
    0x49, 0xd9, 0x26, 0xf7, 0x21, 0xd0, 0x65, 0xa4, 0x29, 0xc1,
  };
  uint8_t out[32];
  char hex[65];
  const struct luks_hash *h;
  int i;

  h = luks_hash_lookup ("sha1");
  CHECK (h != NULL);
  CHECK (luks_pbkdf2 (h, "password", 8, (const uint8_t *) "salt", 4, 4096,
                      out, 20) == 0);
  CHECK (memcmp (out, sha1_4096, 20) == 0);
  h = luks_hash_lookup ("sha256");
  CHECK (luks_pbkdf2 (h, "password", 8, (const uint8_t *) "salt", 4, 4096,
                      out, 32) == 0);
  for (i = 0; i < 32; ++i)
    sprintf (hex + 2 * i, "%02x", out[i]);
  CHECK (strcmp (hex, "c5e478d59288c841aa530db6845c4c8d"
                 "962893a001ce4e11a4963873aa98134a") == 0);
  CHECK (luks_hash_lookup ("whirlpool") == NULL);
}

/* (b) thread safety: many threads, one cipher, each its own handles. */
struct thread_arg {
  struct luks_cipher *c;
  uint64_t iv;
  uint8_t buf[16384];
  uint8_t expected[16384];
};

static void *
thread_main (void *argp)
{
  struct thread_arg *a = argp;
  int i;

  for (i = 0; i < 50; ++i) {
    pattern (a->buf, sizeof a->buf);
    if (luks_cipher_encrypt (a->c, a->iv, a->buf, sizeof a->buf) == -1)
      return NULL;
  }
  return a;
}

static void
test_threads (void)
{
  enum { N = 4 };
  uint8_t key[64];
  struct thread_arg *args = calloc (N, sizeof *args);
  pthread_t t[N];
  struct luks_cipher *c;
  int i;

  memset (key, 0x5a, 32);
  memset (key + 32, 0xa5, 32);
  c = luks_cipher_new ("aes", "xts-plain64", key, sizeof key, 512);
  CHECK (c != NULL);
  for (i = 0; i < N; ++i) {
    args[i].c = c;
    args[i].iv = i * 1000;
    pattern (args[i].expected, sizeof args[i].expected);
    CHECK (luks_cipher_encrypt (c, args[i].iv, args[i].expected,
                                sizeof args[i].expected) == 0);
  }
  for (i = 0; i < N; ++i)
    pthread_create (&t[i], NULL, thread_main, &args[i]);
  for (i = 0; i < N; ++i) {
    void *ret;
    pthread_join (t[i], &ret);
    CHECK (ret == &args[i]);
    CHECK (memcmp (args[i].buf, args[i].expected, sizeof args[i].buf) == 0);
  }
  luks_cipher_free (c);
  free (args);
}

/* An empty temporary file (name is its template), already unlinked. */
static struct io *
temp_io (char *name)
{
  int fd = mkstemp (name);
  struct io *io;

  CHECK (fd >= 0);
  unlink (name);
  io = io_fd_wrap (fd, name, false);
  CHECK (io != NULL);
  return io;
}

/* (d) then (a): format a header inside a file at an offset, as qcow2
 * does, and open it again.
 */
static void
test_format_embedded (void)
{
  char name[] = "/tmp/test-luks.XXXXXX";
  const uint64_t at = 65536;
  struct luks_format_params fp = { .iterations = 1000 };
  struct luks_open_params op = { .header_offset = at, .embedded = true,
                                 .key_slot = -1 };
  struct luks_volume *v, *w;
  uint64_t len;
  uint8_t a[4096], b[4096];
  struct io *io;

  io = temp_io (name);

  CHECK (luks_format_length (&fp, &len) == 0);
  CHECK (len == 4040 * 512);    /* what qemu-img makes for aes-xts-plain64 */
  v = luks_format (io, at, &fp, "secret", 6);
  CHECK (v != NULL);
  op.length = len;
  w = luks_open (io, &op, "secret", 6);
  CHECK (w != NULL);
  if (v && w) {
    CHECK (luks_version (w) == 1);
    pattern (a, sizeof a);
    memcpy (b, a, sizeof b);
    /* Both volumes have the same key: encrypt with one, decrypt with
     * the other, with a host-offset IV.
     */
    CHECK (luks_cipher_encrypt (luks_volume_cipher (v), 123456, a,
                                sizeof a) == 0);
    CHECK (memcmp (a, b, sizeof a) != 0);
    CHECK (luks_cipher_decrypt (luks_volume_cipher (w), 123456, a,
                                sizeof a) == 0);
    CHECK (memcmp (a, b, sizeof a) == 0);
  }
  luks_close (w);

  /* A wrong passphrase, the wrong slot, a header cut short. */
  CHECK (luks_open (io, &op, "wrong", 5) == NULL);
  CHECK (errno == EPERM);
  op.key_slot = 1;
  CHECK (luks_open (io, &op, "secret", 6) == NULL);
  op.key_slot = -1;
  op.length = 8192;
  CHECK (luks_open (io, &op, "secret", 6) == NULL);
  op.length = len;
  op.header_offset = 0;
  CHECK (luks_open (io, &op, "secret", 6) == NULL);

  luks_close (v);
  io_close (io);
}

/* The caps on key derivation, one bound at a time, with the defaults
 * and raised.
 */
static void
test_kdf_limits (void)
{
  const struct luks_kdf_limits none = { 0 };
  const struct luks_kdf_limits raised = {
    .max_iterations = UINT64_MAX, .max_time = 1000,
    .max_memory = UINT64_C (4) << 30, .max_parallel = 16,
  };
  const struct luks_hash *sha256 = luks_hash_find ("sha256");
  const struct luks_hash *sha1 = luks_hash_find ("sha1");
  const struct luks_hash *stribog = luks_hash_find ("stribog512");
  struct luks_kdf_limits lim, big;
  double share;

  luks_kdf_limits_resolve (&none, &lim);
  luks_kdf_limits_resolve (&raised, &big);
  CHECK (lim.max_iterations == 100000000);
  CHECK (lim.max_time == 32);
  CHECK (lim.max_memory == UINT64_C (1) << 30);
  CHECK (lim.max_parallel == 8);

  /* PBKDF2: the reference, a one-block key, more blocks, a slow hash. */
  CHECK (luks_kdf_check_pbkdf2 (&lim, "v", "t", sha256, 64, 100000000,
                                &share) == 0);
  CHECK (share == 1.0);
  CHECK (luks_kdf_check_pbkdf2 (&lim, "v", "t", sha256, 64, 100000001,
                                &share) == -1);
  CHECK (errno == EINVAL);
  CHECK (luks_kdf_check_pbkdf2 (&lim, "v", "t", sha256, 32, 200000000,
                                &share) == 0);
  CHECK (luks_kdf_check_pbkdf2 (&lim, "v", "t", sha256, 32, 200000001,
                                &share) == -1);
  CHECK (luks_kdf_check_pbkdf2 (&lim, "v", "t", sha1, 64, 50000000, &share) == 0);
  CHECK (luks_kdf_check_pbkdf2 (&lim, "v", "t", sha1, 64, 50000001, &share) == -1);
  CHECK (luks_kdf_pbkdf2_cap (&lim, stribog, 64) == 9090909);
  CHECK (luks_kdf_check_pbkdf2 (&lim, "v", "t", stribog, 64, 9090910,
                                &share) == -1);
  CHECK (luks_kdf_check_pbkdf2 (&big, "v", "t", stribog, 64, UINT32_MAX,
                                &share) == 0);

  /* argon2: memory, threads, passes (scaled by memory). */
  CHECK (luks_kdf_check_argon2 (&lim, "v", "t", "argon2id", 32, 1048576, 8,
                                &share) == 0);
  CHECK (share == 1.0);
  CHECK (luks_kdf_check_argon2 (&lim, "v", "t", "argon2id", 1, 1048577, 1,
                                &share) == -1);
  CHECK (errno == EINVAL);
  CHECK (luks_kdf_check_argon2 (&lim, "v", "t", "argon2id", 1, 1024, 9,
                                &share) == -1);
  CHECK (luks_kdf_check_argon2 (&lim, "v", "t", "argon2i", 33, 1048576, 1,
                                &share) == -1);
  CHECK (luks_kdf_check_argon2 (&lim, "v", "t", "argon2i", 512, 65536, 1,
                                &share) == 0);
  CHECK (luks_kdf_check_argon2 (&lim, "v", "t", "argon2i", 513, 65536, 1,
                                &share) == -1);
  CHECK (luks_kdf_check_argon2 (&big, "v", "t", "argon2i", 1000, 4194304 / 4, 16,
                                &share) == 0);

  /* The sum over the slots to be tried. */
  CHECK (luks_kdf_check_total ("v", "LUKS1", 8, 4.0) == 0);
  CHECK (luks_kdf_check_total ("v", "LUKS1", 8, 4.01) == -1);
  CHECK (errno == EINVAL);
}

/* The caps through luks_open: a slot and the master key digest over
 * them are refused before any derivation (the counts written here
 * would take hours), and a raised cap admits the volume.
 */
static void
test_kdf_caps_open (void)
{
  char name[] = "/tmp/test-luks.XXXXXX";
  struct luks_format_params fp = { .iterations = 20000 };
  struct luks_open_params op = { .embedded = true, .key_slot = -1 };
  struct luks_volume *v;
  uint8_t be[4];
  uint64_t len;
  struct io *io;

  io = temp_io (name);
  CHECK (luks_format_length (&fp, &len) == 0);
  op.length = len;
  luks_close (luks_format (io, 0, &fp, "secret", 6));

  op.kdf_limits.max_iterations = 19999;
  CHECK (luks_open (io, &op, "secret", 6) == NULL);
  CHECK (errno == EINVAL);
  op.kdf_limits.max_iterations = 20000;
  v = luks_open (io, &op, "secret", 6);
  CHECK (v != NULL);
  luks_close (v);

  /* Slot 0's iterations (LUKS1 spec section 2.1: key slot at 208,
   * iterations at +4), then the master key digest's (at 164).
   */
  op.kdf_limits.max_iterations = 0;
  store_be32 (be, UINT32_MAX);
  CHECK (io_pwrite (io, be, 4, 208 + 4) == 0);
  CHECK (luks_open (io, &op, "secret", 6) == NULL);
  CHECK (errno == EINVAL);
  store_be32 (be, 20000);
  CHECK (io_pwrite (io, be, 4, 208 + 4) == 0);
  store_be32 (be, UINT32_MAX);
  CHECK (io_pwrite (io, be, 4, 164) == 0);
  CHECK (luks_open (io, &op, "secret", 6) == NULL);
  CHECK (errno == EINVAL);

  io_close (io);
}

int
main (void)
{
  test_ciphers ();
  test_pbkdf2 ();
  test_threads ();
  test_format_embedded ();
  test_kdf_limits ();
  test_kdf_caps_open ();
  if (failures) {
    fprintf (stderr, "test-luks: %d failure(s)\n", failures);
    return 1;
  }
  printf ("test-luks: all tests passed\n");
  return 0;
}
