/* LUKS2 internals ("LUKS2 On-Disk Format Specification" 1.1.x):
 * the binary headers and the parsed JSON metadata.
 */
#ifndef LUKS2_H
#define LUKS2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Binary header, section 2.1.  Big-endian. */
#define LUKS2_BIN_HDR_SIZE 4096
#define LUKS2_OFF_VERSION 6
#define LUKS2_OFF_HDR_SIZE 8
#define LUKS2_OFF_SEQID 16
#define LUKS2_OFF_CSUM_ALG 72
#define LUKS2_CSUM_ALG_LEN 32
#define LUKS2_OFF_HDR_OFFSET 256
#define LUKS2_OFF_CSUM 448
#define LUKS2_CSUM_LEN 64

#define LUKS2_MAX_KEYSLOTS 32
#define LUKS2_MAX_SALT 128
#define LUKS2_MAX_DIGEST 64
#define LUKS2_CIPHER_LEN 32

/* Metadata text of the chosen header (JSON area, NUL-terminated). */
struct luks2_header {
  char *json;                   /* malloc'd */
  size_t json_area_size;        /* hdr_size - 4096 */
  uint64_t hdr_size;
  uint64_t seqid;
  bool from_secondary;
};

/* Find, verify and choose between the two binary headers. */
extern int luks2_read_header (struct io *io, uint64_t header_offset,
                              uint64_t limit, struct luks2_header *hdr);

enum luks2_kdf { LUKS2_KDF_PBKDF2, LUKS2_KDF_ARGON2I, LUKS2_KDF_ARGON2ID };

struct luks2_keyslot {
  bool present;
  uint32_t key_size;            /* volume key bytes */
  int priority;                 /* 0 ignore, 1 normal, 2 high */
  char area_cipher[LUKS2_CIPHER_LEN], area_mode[LUKS2_CIPHER_LEN];
  uint64_t area_offset, area_size;
  uint32_t area_key_size;
  const struct luks_hash *af_hash;
  uint32_t stripes;
  enum luks2_kdf kdf;
  const struct luks_hash *kdf_hash;     /* pbkdf2 */
  uint32_t iterations;                  /* pbkdf2 */
  uint32_t time, memory, cpus;          /* argon2 */
  uint8_t salt[LUKS2_MAX_SALT];
  size_t salt_len;
};

struct luks2_metadata {
  /* The one crypt segment. */
  uint64_t seg_offset, seg_size;        /* size 0 = "dynamic" */
  uint64_t iv_tweak;
  uint32_t sector_size;
  char cipher[LUKS2_CIPHER_LEN], mode[LUKS2_CIPHER_LEN];

  struct luks2_keyslot keyslots[LUKS2_MAX_KEYSLOTS];

  /* The digest of the segment's volume key. */
  uint32_t digest_keyslots;             /* bit n: keyslot n */
  const struct luks_hash *digest_hash;
  uint32_t digest_iterations;
  uint8_t digest_salt[LUKS2_MAX_SALT];
  size_t digest_salt_len;
  uint8_t digest[LUKS2_MAX_DIGEST];
  size_t digest_len;

  unsigned n_tokens;
  char token_type[64];                  /* of the first token, for messages */
};

/* Parse and check the JSON metadata; refuses unsupported features by
 * name.  limit bounds key areas and the segment start.
 */
extern int luks2_parse_metadata (const struct luks2_header *hdr,
                                 uint64_t header_offset, uint64_t limit,
                                 struct luks2_metadata *md);

#endif /* LUKS2_H */
