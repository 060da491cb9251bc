/* LUKS1 / LUKS2 volumes and sector ciphers.
 *
 * Plain C, no nbdkit types: the luks filter uses it over nbdkit's next
 * layer, and the qcow2 engine uses it for images with built-in
 * encryption (crypt_method 1 and 2).
 *
 * Errors are reported once through diag_error, then the function
 * returns -1 (or NULL) with errno set.  Nothing secret is ever passed
 * to diag_error or diag_debug.
 *
 * Specs: LUKS1 "LUKS On-Disk Format Specification" version 1.2.3,
 * LUKS2 "LUKS2 On-Disk Format Specification" version 1.1.x, both from
 * the cryptsetup project; the sector IV conventions are dm-crypt's.
 */
#ifndef LUKS_H
#define LUKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io.h"

/* ---------------------------------------------------------------- */
/* Sector ciphers: data encryption with a fixed key.
 *
 * A sector cipher encrypts or decrypts buffers of consecutive sectors in
 * place.  The IV of each sector is derived (plain, plain64, essiv, ...)
 * from its sector number, which, as in dm-crypt, always counts 512-byte
 * units: with 4096-byte sectors the IV steps by 8 from one sector to the
 * next.  The caller passes the IV number of the first sector of the
 * buffer.
 *
 * Thread-safe: each thread lazily gets its own gnutls cipher handles,
 * reused for every later call from that thread.
 */
struct luks_cipher;

/* cipher: "aes", "camellia"; mode: "xts-plain64", "cbc-essiv:sha256",
 * "cbc-plain64", "cbc-plain", ...; key_len in bytes; sector_size 512 or
 * 4096.  Unsupported combinations are refused with a message naming them.
 */
extern struct luks_cipher *luks_cipher_new (const char *cipher,
                                            const char *mode,
                                            const uint8_t *key, size_t key_len,
                                            uint32_t sector_size);

/* qcow2 crypt_method 1 (legacy "AES"): AES-128-CBC, the key is the
 * passphrase's bytes zero-padded or cut to 16, IV = plain64 of the guest
 * offset / 512, 512-byte sectors.
 */
extern struct luks_cipher *luks_cipher_new_qcow_aes (const char *passphrase,
                                                     size_t passphrase_len);

extern void luks_cipher_free (struct luks_cipher *c);

extern uint32_t luks_cipher_sector_size (const struct luks_cipher *c);

/* len must be a multiple of the sector size. */
extern int luks_cipher_encrypt (struct luks_cipher *c, uint64_t iv_sector,
                                void *buf, size_t len);
extern int luks_cipher_decrypt (struct luks_cipher *c, uint64_t iv_sector,
                                void *buf, size_t len);

/* ---------------------------------------------------------------- */
/* Unlocked volumes. */
struct luks_volume;

/* Caps on the key derivation a header asks for, checked for every key
 * slot and digest before anything is derived (a crafted header could
 * otherwise make unlocking take hours).  0 in a field means the
 * default below.
 *
 * PBKDF2 cost grows with the hash and with the number of hash-sized
 * blocks of output, so max_iterations counts iterations of SHA-256
 * deriving a 64-byte key (aes-xts-plain64 with a 512-bit key, the
 * default of cryptsetup and qemu-img); other hashes and lengths get the
 * cap that costs the same time.  Argon2 cost grows with time x memory,
 * so max_time counts passes over 1 GiB; less memory allows
 * proportionally more passes.  All the slots one passphrase is tried
 * on may together cost at most LUKS_KDF_TOTAL_SLOTS slots at the caps.
 */
struct luks_kdf_limits {
  uint64_t max_iterations;      /* PBKDF2, see above */
  uint64_t max_time;            /* argon2 passes over 1 GiB */
  uint64_t max_memory;          /* argon2 memory, bytes */
  uint64_t max_parallel;        /* argon2 threads ("cpus") */
};

/* Measured (kdf-limits.c explains the figures). */
#define LUKS_KDF_DEFAULT_MAX_ITERATIONS UINT64_C (100000000)
#define LUKS_KDF_DEFAULT_MAX_TIME 32
#define LUKS_KDF_DEFAULT_MAX_MEMORY (UINT64_C (1) << 30)
#define LUKS_KDF_DEFAULT_MAX_PARALLEL 8
#define LUKS_KDF_TOTAL_SLOTS 4

struct luks_open_params {
  /* Where the header starts in the io.  Key-slot areas and the payload
   * offset are relative to it.
   */
  uint64_t header_offset;
  /* Bytes from header_offset that belong to the LUKS data (key areas
   * must lie inside); 0 means up to the end of the io.
   */
  uint64_t length;
  /* A LUKS1 header embedded in a qcow2 image (crypt_method 2): only
   * LUKS1 is accepted and the payload offset is ignored.
   */
  bool embedded;
  /* Try only this key slot; -1 tries all active slots. */
  int key_slot;
  struct luks_kdf_limits kdf_limits;
};

/* Read and check the header, derive the volume key from the passphrase.
 * Expensive (PBKDF2/argon2): do it once per process.
 */
extern struct luks_volume *luks_open (struct io *io,
                                      const struct luks_open_params *params,
                                      const char *passphrase,
                                      size_t passphrase_len);

extern void luks_close (struct luks_volume *v);

/* 1 or 2. */
extern int luks_version (const struct luks_volume *v);

/* The payload (encrypted data) area, for a device of device_size bytes:
 * *offset is the absolute byte offset in the io, *length is rounded down
 * to the sector size.  Fails if the device is too small.
 * Not meaningful for embedded headers.
 */
extern int luks_payload_range (const struct luks_volume *v,
                               uint64_t device_size,
                               uint64_t *offset, uint64_t *length);

extern uint32_t luks_sector_size (const struct luks_volume *v);

/* The data cipher (owned by the volume).  For qcow2 crypt_method 2 the
 * IV sector is the host offset / 512.
 */
extern struct luks_cipher *luks_volume_cipher (const struct luks_volume *v);

/* Encrypt/decrypt payload bytes at payload-relative offset pos (a
 * multiple of the sector size): applies the IV tweak of the segment.
 */
extern int luks_encrypt_payload (const struct luks_volume *v, uint64_t pos,
                                 void *buf, size_t len);
extern int luks_decrypt_payload (const struct luks_volume *v, uint64_t pos,
                                 void *buf, size_t len);

/* ---------------------------------------------------------------- */
/* Creating a LUKS1 header. */
struct luks_format_params {
  const char *cipher;           /* NULL: "aes" */
  const char *mode;             /* NULL: "xts-plain64" */
  uint32_t key_bytes;           /* 0: 64 for xts, 32 otherwise */
  const char *hash;             /* NULL: "sha256" */
  /* PBKDF2 iterations of key slot 0; 0 means benchmark for
   * iter_time_ms (0: 2000 ms) as QEMU and cryptsetup do.
   */
  uint32_t iterations;
  uint32_t iter_time_ms;
  /* The payload offset is rounded up to this (bytes, multiple of 512;
   * 0: 4096).
   */
  uint32_t payload_alignment;
};

/* Bytes the header and its eight key-slot areas take, which is also the
 * payload offset written in the header.
 */
extern int luks_format_length (const struct luks_format_params *params,
                               uint64_t *length);

/* Write a new LUKS1 header at header_offset with one active key slot
 * (slot 0) for the passphrase; return the unlocked volume.
 */
extern struct luks_volume *luks_format (struct io *io, uint64_t header_offset,
                                        const struct luks_format_params *params,
                                        const char *passphrase,
                                        size_t passphrase_len);

#endif /* LUKS_H */
