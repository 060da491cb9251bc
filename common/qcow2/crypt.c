/* Images with built-in encryption (docs/interop/qcow2.txt: the
 * crypt_method header field and the "Full disk encryption header
 * pointer" extension).
 *
 *   crypt_method 1  QEMU's legacy "AES": AES-128-CBC keyed with the
 *                   passphrase's own bytes, IV = guest offset / 512.
 *   crypt_method 2  LUKS: a LUKS1 header stored in clusters of the image
 *                   (its payload offset is meaningless); the data cipher
 *                   takes its IV from the host offset / 512, so a cluster
 *                   copied elsewhere must be re-encrypted.
 *
 * Both encrypt 512-byte sectors.  A host cluster holds its guest
 * cluster's bytes at the same offsets, so host and guest offsets agree
 * modulo 512 and a run of guest data is encrypted as the sectors that
 * cover it.  Unaligned reads decrypt the partial sectors at their ends
 * on the side.  Unaligned writes read-modify-write them while holding
 * rmw_lock exclusively, so that two writes sharing a sector cannot undo
 * each other; every other write holds it shared (sector_write in
 * common/luks/sector-write.c).
 *
 * Compressed clusters are never encrypted by QEMU ("compression is not
 * supported with encryption"), so the read path refuses them.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "checked-overflow.h"
#include "diag.h"
#include "internal.h"
#include "io.h"
#include "luks.h"
#include "minmax.h"
#include "rounding.h"
#include "sector-write.h"

#define SECTOR 512

/* Bounce buffer for encrypting writes: at most this much per call. */
#define WRITE_CHUNK (1024 * 1024)

struct qcow2_crypt {
  struct luks_volume *luks;     /* crypt_method 2; owns the cipher */
  struct luks_cipher *cipher;   /* the data cipher */
  bool iv_from_host;            /* LUKS: host offset; legacy AES: guest */
  pthread_rwlock_t rmw_lock;
};

static const char *
method_name (uint32_t crypt_method)
{
  return crypt_method == CRYPT_LUKS ? "LUKS" : "AES";
}

/* The extension must name whole clusters after the header cluster,
 * inside the file (QEMU checks the alignment too).
 */
static int
check_luks_area (struct qcow2_image *img)
{
  const struct qcow2_header *h = &img->hdr;

  if (!IS_ALIGNED (h->crypto_offset, img->cluster_size))
    return image_corrupt (img, "the encryption header offset %#" PRIx64
                          " is not a multiple of the cluster size",
                          h->crypto_offset);
  if (h->crypto_offset == 0 || h->crypto_length == 0)
    return image_corrupt (img, "the encryption header extension names an "
                          "empty or misplaced area (%" PRIu64 " bytes at %#"
                          PRIx64 ")", h->crypto_length, h->crypto_offset);
  if (!range_within (h->crypto_offset, h->crypto_length, img->file_size))
    return image_corrupt (img, "the encryption header (%" PRIu64 " bytes at %#"
                          PRIx64 ") lies beyond the end of the file",
                          h->crypto_length, h->crypto_offset);
  return 0;
}

static int
unlock_luks (struct qcow2_image *img, struct qcow2_crypt *c,
             const struct qcow2_options *opts)
{
  const struct luks_open_params params = {
    .header_offset = img->hdr.crypto_offset,
    .length = img->hdr.crypto_length,
    .embedded = true,
    .key_slot = -1,
    .kdf_limits = opts->kdf_limits,
  };

  if (check_luks_area (img) == -1)
    return -1;
  c->luks = luks_open (img->file, &params, opts->passphrase,
                       strlen (opts->passphrase));
  if (c->luks == NULL)
    return -1;
  c->cipher = luks_volume_cipher (c->luks);
  c->iv_from_host = true;
  return 0;
}

static int
unlock_legacy_aes (struct qcow2_image *img, struct qcow2_crypt *c,
                   const char *passphrase)
{
  /* There is nothing to check the passphrase against: a wrong one
   * reads as garbage, as in QEMU.
   */
  c->cipher = luks_cipher_new_qcow_aes (passphrase, strlen (passphrase));
  if (c->cipher == NULL)
    return -1;
  c->iv_from_host = false;
  return 0;
}

int
crypt_open (struct qcow2_image *img, const struct qcow2_options *opts)
{
  const uint32_t method = img->hdr.crypt_method;
  struct qcow2_crypt *c;
  int r;

  if (method == CRYPT_NONE)
    return 0;
  if (opts->passphrase == NULL && opts->metadata_only) {
    diag_debug ("%s: encrypted (%s), opened for its metadata only",
                img->filename, method_name (method));
    return 0;
  }
  if (opts->passphrase == NULL) {
    diag_error ("%s: the image is encrypted (%s): a passphrase is needed "
                "to open it", img->filename, method_name (method));
    errno = EPERM;
    return -1;
  }

  c = calloc (1, sizeof *c);
  if (c == NULL) {
    diag_error ("calloc: %m");
    return -1;
  }
  sector_write_lock_init (&c->rmw_lock);
  r = method == CRYPT_LUKS ? unlock_luks (img, c, opts)
    : unlock_legacy_aes (img, c, opts->passphrase);
  if (r == -1) {
    int e = errno;
    crypt_close (c);
    errno = e;
    return -1;
  }
  diag_debug ("%s: %s encryption unlocked", img->filename,
              method_name (method));
  img->crypt = c;
  return 0;
}

void
crypt_close (struct qcow2_crypt *c)
{
  if (c == NULL)
    return;
  if (c->luks)
    luks_close (c->luks);       /* frees the cipher and wipes its key */
  else
    luks_cipher_free (c->cipher);
  pthread_rwlock_destroy (&c->rmw_lock);
  free (c);
}

bool
qcow2_is_encrypted (const struct qcow2_image *img)
{
  return img->crypt != NULL;
}

/* The IV number of the sector at host (guest), both sector-aligned. */
static uint64_t
iv_sector (const struct qcow2_crypt *c, uint64_t host, uint64_t guest)
{
  return (c->iv_from_host ? host : guest) / SECTOR;
}

/* Read and decrypt whole sectors. */
static int
read_sectors (struct qcow2_image *img, void *buf, uint64_t count,
              uint64_t host, uint64_t guest)
{
  const struct qcow2_crypt *c = img->crypt;

  if (data_read_plain (img, buf, count, host) == -1)
    return -1;
  if (luks_cipher_decrypt (c->cipher, iv_sector (c, host, guest),
                           buf, count) == -1) {
    errno = EIO;
    return -1;
  }
  return 0;
}

int
crypt_read (struct qcow2_image *img, void *buf, uint64_t count,
            uint64_t host, uint64_t guest)
{
  unsigned char *p = buf;
  unsigned char sector[SECTOR];

  assert (((host ^ guest) & (SECTOR - 1)) == 0);
  while (count > 0) {
    uint32_t skip = host & (SECTOR - 1);
    uint64_t n;

    if (skip == 0 && count >= SECTOR) {
      /* The aligned middle: decrypted in the caller's buffer. */
      n = ROUND_DOWN (count, SECTOR);
      if (read_sectors (img, p, n, host, guest) == -1)
        return -1;
    }
    else {
      n = MIN (count, (uint64_t) SECTOR - skip);
      if (read_sectors (img, sector, SECTOR, host - skip, guest - skip) == -1)
        return -1;
      memcpy (p, sector + skip, n);
    }
    p += n;
    host += n;
    guest += n;
    count -= n;
  }
  return 0;
}

/* Encrypt whole sectors in buf (which is clobbered) and write them. */
static int
write_sectors (struct qcow2_image *img, void *buf, uint64_t count,
               uint64_t host, uint64_t guest)
{
  const struct qcow2_crypt *c = img->crypt;

  if (luks_cipher_encrypt (c->cipher, iv_sector (c, host, guest),
                           buf, count) == -1) {
    errno = EIO;
    return -1;
  }
  return data_write_plain (img, buf, count, host);
}

/* What sector_write needs for one crypt_write: offsets are host
 * offsets, and guest = host + guest_minus_host.
 */
struct write_request {
  struct qcow2_image *img;
  uint64_t guest_minus_host;
};

/* The sector at host, decrypted.  It may belong to a cluster just
 * allocated past the end of the file and not written yet (copy-on-write
 * writes the new data and the copied head and tail separately): what it
 * held does not matter then, as the rest of it is written next.
 */
static int
rmw_read_sector (void *opaque, void *buf, uint64_t host)
{
  const struct write_request *rq = opaque;
  const struct qcow2_crypt *c = rq->img->crypt;

  if (io_pread_zero_padded (rq->img->data, buf, SECTOR, host) == -1)
    return -1;
  if (luks_cipher_decrypt (c->cipher,
                           iv_sector (c, host, host + rq->guest_minus_host),
                           buf, SECTOR) == -1) {
    errno = EIO;
    return -1;
  }
  return 0;
}

static int
rmw_write_sectors (void *opaque, void *buf, size_t len, uint64_t host)
{
  const struct write_request *rq = opaque;

  return write_sectors (rq->img, buf, len, host, host + rq->guest_minus_host);
}

int
crypt_write (struct qcow2_image *img, const void *buf, uint64_t count,
             uint64_t host, uint64_t guest)
{
  struct qcow2_crypt *c = img->crypt;
  struct write_request rq = { .img = img, .guest_minus_host = guest - host };
  const struct sector_writer w = {
    .sector = SECTOR,
    .chunk = WRITE_CHUNK,
    .read_sector = rmw_read_sector,
    .write_sectors = rmw_write_sectors,
    .opaque = &rq,
  };

  assert (((host ^ guest) & (SECTOR - 1)) == 0);
  return sector_write (&c->rmw_lock, &w, buf, count, host);
}
