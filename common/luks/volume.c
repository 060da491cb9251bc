/* Opening a LUKS volume of either version, and what an open volume
 * offers: payload geometry and payload encryption.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "checked-overflow.h"
#include "diag.h"
#include "internal.h"
#include "keymem.h"
#include "rounding.h"

/* Where key areas may lie: [header_offset, limit). */
static int
device_limit (struct io *io, const struct luks_open_params *params,
              uint64_t *limit)
{
  int64_t size = io_size (io);

  if (size == -1)
    return -1;
  if (params->length == 0)
    *limit = size;
  else if (!range_within (params->header_offset, params->length, size)) {
    diag_error ("luks: the LUKS area (%" PRIu64 " bytes at offset %" PRIu64
                ") lies beyond the end of %s (%" PRIi64 " bytes)",
                params->length, params->header_offset, io->name, size);
    errno = EINVAL;
    return -1;
  }
  else
    *limit = params->header_offset + params->length;
  if (*limit < params->header_offset) {
    diag_error ("luks: header offset %" PRIu64 " lies beyond the end of %s",
                params->header_offset, io->name);
    errno = EINVAL;
    return -1;
  }
  return 0;
}

/* Which version is at the header offset: 1, 2, or 0 when the magic is
 * missing (a LUKS2 primary header may be damaged; the caller then looks
 * for a secondary header).
 */
static int
probe_version (struct io *io, const struct luks_open_params *params,
               uint64_t limit)
{
  uint8_t start[8];

  if (!range_within (params->header_offset, sizeof start, limit))
    return 0;
  if (io_pread (io, start, sizeof start, params->header_offset) == -1)
    return -1;
  if (memcmp (start, luks_magic, LUKS_MAGIC_LEN) != 0)
    return 0;
  switch (load_be16 (start + LUKS_MAGIC_LEN)) {
  case 1: return 1;
  case 2: return 2;
  default:
    diag_error ("%s: LUKS version %" PRIu16 " is not supported",
                io->name, load_be16 (start + LUKS_MAGIC_LEN));
    errno = ENOTSUP;
    return -1;
  }
}

struct luks_volume *
luks_open (struct io *io, const struct luks_open_params *params,
           const char *passphrase, size_t passphrase_len)
{
  struct luks_volume *v;
  uint64_t limit;
  int version, r;

  if (device_limit (io, params, &limit) == -1)
    return NULL;
  version = probe_version (io, params, limit);
  if (version == -1)
    return NULL;
  if (params->embedded && version != 1) {
    diag_error ("%s: no LUKS1 header at offset %" PRIu64,
                io->name, params->header_offset);
    errno = EINVAL;
    return NULL;
  }

  v = calloc (1, sizeof *v);
  if (v == NULL) {
    diag_error ("luks: calloc: %m");
    return NULL;
  }
  v->header_offset = params->header_offset;
  if (version == 1)
    r = luks1_open (io, params, limit, (const uint8_t *) passphrase,
                    passphrase_len, v);
  else
    r = luks2_open (io, params, limit, (const uint8_t *) passphrase,
                    passphrase_len, v);
  if (r == -1) {
    int e = errno;
    free (v);
    errno = e;
    return NULL;
  }
  return v;
}

void
luks_close (struct luks_volume *v)
{
  if (v == NULL)
    return;
  luks_cipher_free (v->cipher);
  free (v);
}

int
luks_version (const struct luks_volume *v)
{
  return v->version;
}

uint32_t
luks_sector_size (const struct luks_volume *v)
{
  return v->sector_size;
}

struct luks_cipher *
luks_volume_cipher (const struct luks_volume *v)
{
  return v->cipher;
}

int
luks_payload_range (const struct luks_volume *v, uint64_t device_size,
                    uint64_t *offset, uint64_t *length)
{
  uint64_t start, avail;

  if (ADD_OVERFLOW (v->header_offset, v->payload_offset, &start) ||
      start > device_size) {
    diag_error ("luks: the payload offset (%" PRIu64 ") lies beyond the "
                "end of the device (%" PRIu64 " bytes)",
                v->payload_offset, device_size);
    errno = EINVAL;
    return -1;
  }
  avail = device_size - start;
  if (v->payload_length != 0) {
    if (v->payload_length > avail) {
      diag_error ("luks: the device (%" PRIu64 " bytes) is smaller than "
                  "the encrypted segment (%" PRIu64 " bytes at %" PRIu64 ")",
                  device_size, v->payload_length, start);
      errno = EINVAL;
      return -1;
    }
    avail = v->payload_length;
  }
  *offset = start;
  *length = ROUND_DOWN (avail, (uint64_t) v->sector_size);
  return 0;
}

int
luks_encrypt_payload (const struct luks_volume *v, uint64_t pos,
                      void *buf, size_t len)
{
  return luks_cipher_encrypt (v->cipher, v->iv_tweak + pos / LUKS_SECTOR,
                              buf, len);
}

int
luks_decrypt_payload (const struct luks_volume *v, uint64_t pos,
                      void *buf, size_t len)
{
  return luks_cipher_decrypt (v->cipher, v->iv_tweak + pos / LUKS_SECTOR,
                              buf, len);
}
