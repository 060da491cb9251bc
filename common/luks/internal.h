/* Shared between the files of common/luks; not part of the API. */
#ifndef LUKS_INTERNAL_H
#define LUKS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io.h"
#include "kdf.h"
#include "luks.h"

#define LUKS_MAGIC_LEN 6
extern const uint8_t luks_magic[LUKS_MAGIC_LEN];        /* LUKS\xba\xbe */
extern const uint8_t luks2_magic_2nd[LUKS_MAGIC_LEN];   /* SKUL\xba\xbe */

#define LUKS_SECTOR 512         /* key areas are always in 512-byte sectors */
#define LUKS_STRIPES 4000       /* the only AF stripe count in use */
#define LUKS_MAX_KEY_BYTES 64   /* the largest key gnutls ciphers take */

struct luks_volume {
  int version;
  uint64_t header_offset;       /* absolute, in the io */
  uint64_t payload_offset;      /* bytes, relative to the header */
  uint64_t payload_length;      /* bytes; 0 = up to the end of the device */
  uint64_t iv_tweak;            /* IV of the first payload sector (512 units) */
  uint32_t sector_size;
  struct luks_cipher *cipher;
};

/* Check that "cipher"/"mode" with key_len bytes is supported, so that
 * an unusable volume is refused before the costly key derivation.
 */
extern int luks_cipher_check (const char *cipher, const char *mode,
                              size_t key_len);

/* Split "aes-xts-plain64" into "aes" and "xts-plain64". */
extern int luks_split_cipher_spec (const char *spec,
                                   char *cipher, size_t cipher_size,
                                   char *mode, size_t mode_size);

/* A key slot's area: stripes * key_len bytes of AF-split key, encrypted
 * with cipher/mode under the derived key (512-byte sectors, IVs from 0).
 */
struct luks_keyslot_area {
  uint64_t offset;              /* absolute, in the io */
  const char *cipher, *mode;
  size_t derived_len;           /* key size of the area cipher */
  const struct luks_hash *af_hash;
  uint32_t stripes;
  size_t key_len;               /* volume key length */
};

extern size_t luks_keyslot_area_length (size_t key_len, uint32_t stripes);

/* Recover the volume key candidate (key_len bytes into key). */
extern int luks_keyslot_unlock (struct io *io,
                                const struct luks_keyslot_area *area,
                                const uint8_t *derived, uint8_t *key);

/* AF-split and encrypt the volume key, write the area. */
extern int luks_keyslot_store (struct io *io,
                               const struct luks_keyslot_area *area,
                               const uint8_t *derived, const uint8_t *key);

/* Constant-time comparison of digests. */
extern bool luks_digest_equal (const uint8_t *a, const uint8_t *b, size_t len);

/* The two formats, called by luks_open (volume.c) only.  They fill in
 * *v (version, offsets, cipher); key areas may lie in
 * [header_offset, limit), which luks_open has checked against the io.
 */
extern int luks1_open (struct io *io, const struct luks_open_params *params,
                       uint64_t limit, const uint8_t *pass, size_t pass_len,
                       struct luks_volume *v);
/* A LUKS1 volume's payload and data cipher (512-byte sectors, IVs from
 * the payload's first sector), for luks1_open and luks_format.
 */
extern int luks1_volume_set (struct luks_volume *v, uint64_t payload_offset,
                             const char *cipher, const char *mode,
                             const uint8_t *key, uint32_t key_bytes);
extern int luks2_open (struct io *io, const struct luks_open_params *params,
                       uint64_t limit, const uint8_t *pass, size_t pass_len,
                       struct luks_volume *v);

#endif /* LUKS_INTERNAL_H */
