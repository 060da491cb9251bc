/* nbdkit luks filter: serve the decrypted payload of a LUKS1 or LUKS2
 * volume held by the layer below.  The format work is in common/luks;
 * this file is the nbdkit glue: parameters, unlocking once per process,
 * offset translation and sector alignment.
 *
 * Writes of whole sectors run in parallel; a write that covers part of
 * a sector must read, decrypt, patch, encrypt and write that sector,
 * and does so holding the write side of a process-wide rwlock, so no
 * other write can slip in between its read and its write
 * (common/luks/sector-write.c).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <nbdkit-filter.h>

#include "cleanup.h"
#include "diag.h"
#include "io-next.h"
#include "kdf-params.h"
#include "keymem.h"
#include "luks.h"
#include "minmax.h"
#include "passphrase-param.h"
#include "rounding.h"
#include "sector-write.h"

/* Parameters.  The passphrase lives in locked memory until the volume
 * is unlocked, and is wiped then.
 */
static char *passphrase;
static size_t passphrase_len;
static int key_slot = -1;
static struct luks_kdf_limits kdf_limits;

/* The unlocked volume, shared by every connection.  A failed unlock is
 * final (unlock_errno): retrying would let any client make the server
 * run a full key derivation per connection.
 */
static pthread_mutex_t unlock_lock = PTHREAD_MUTEX_INITIALIZER;
static struct luks_volume *volume;
static int unlock_errno;

/* Read side: whole-sector writes.  Write side: partial-sector writes
 * (see sector-write.h).
 */
static pthread_rwlock_t rmw_lock;

struct handle {
  uint64_t offset;              /* of the payload in the layer below */
  uint64_t length;              /* of the payload, whole sectors */
  uint32_t sector;              /* sector size */
};

static void
luks_load (void)
{
  diag_set_handlers (nbdkit_verror, nbdkit_vdebug);
  sector_write_lock_init (&rmw_lock);
}

static void
luks_unload (void)
{
  luks_close (volume);
  keymem_free (passphrase);
}

static int
luks_config (nbdkit_next_config *next, nbdkit_backend *nxdata,
             const char *key, const char *value)
{
  int r;

  if (strcmp (key, "passphrase") == 0)
    return passphrase_param (value, &passphrase, &passphrase_len);
  r = kdf_params_config (&kdf_limits, key, value);
  if (r != 0)
    return r == 1 ? 0 : -1;
  if (strcmp (key, "key-slot") == 0) {
    if (nbdkit_parse_int ("key-slot", value, &key_slot) == -1)
      return -1;
    if (key_slot < 0 || key_slot > 31) {
      nbdkit_error ("key-slot must be between 0 and 31");
      return -1;
    }
    return 0;
  }
  return next (nxdata, key, value);
}

static int
luks_config_complete (nbdkit_next_config_complete *next,
                      nbdkit_backend *nxdata)
{
  if (passphrase == NULL) {
    nbdkit_error ("the passphrase parameter is required");
    return -1;
  }
  return next (nxdata);
}

#define luks_config_help \
  "passphrase=<SECRET>     Passphrase (literal, -, +FILE or -FD).\n" \
  "key-slot=<N>            Try only key slot N.\n" \
  kdf_params_help

static void
forget_passphrase (void)
{
  keymem_free (passphrase);
  passphrase = NULL;
  passphrase_len = 0;
}

/* Unlock on the first connection: the key derivation is slow, and the
 * layer below is only reachable from a connection.  An I/O error of
 * the layer below may be passing, so the next connection tries again;
 * any other failure (wrong passphrase, refused header) is remembered.
 */
static int
ensure_unlocked (nbdkit_next *next)
{
  SCOPED_LOCK (&unlock_lock);
  struct luks_open_params params = {
    .key_slot = key_slot,
    .kdf_limits = kdf_limits,
  };
  struct io_next io;

  if (volume)
    return 0;
  if (unlock_errno) {
    nbdkit_debug ("luks: unlock already failed: not deriving again");
    nbdkit_error ("luks: %s (when the first client connected): "
                  "restart nbdkit to try again",
                  unlock_errno == EPERM
                  ? "the passphrase does not unlock the volume"
                  : "the volume was refused");
    errno = unlock_errno;
    return -1;
  }
  nbdkit_debug ("luks: unlocking the volume");
  if (io_next_init (&io, next, "luks") == -1)
    return -1;
  volume = luks_open (&io.io, &params, passphrase, passphrase_len);
  if (volume == NULL) {
    if (errno != EIO) {
      unlock_errno = errno ? errno : EINVAL;
      forget_passphrase ();
    }
    return -1;
  }
  forget_passphrase ();
  return 0;
}

static void *
luks_filter_open (nbdkit_next_open *next, nbdkit_context *nxdata,
           int readonly, const char *exportname, int is_tls)
{
  struct handle *h;

  if (next (nxdata, readonly, exportname) == -1)
    return NULL;
  h = calloc (1, sizeof *h);
  if (h == NULL) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  return h;
}

static void
luks_close_handle (void *handle)
{
  free (handle);
}

static int
luks_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct handle *h = handle;
  int64_t size;

  if (ensure_unlocked (next) == -1)
    return -1;
  size = next->get_size (next);
  if (size == -1)
    return -1;
  h->sector = luks_sector_size (volume);
  return luks_payload_range (volume, size, &h->offset, &h->length);
}

static int64_t
luks_get_size (nbdkit_next *next, void *handle)
{
  struct handle *h = handle;

  return h->length;
}

static int
luks_block_size (nbdkit_next *next, void *handle,
                 uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
  struct handle *h = handle;

  if (next->block_size (next, minimum, preferred, maximum) == -1)
    return -1;
  if (*minimum == 0) {          /* the layer below states nothing */
    *preferred = 4096;
    *maximum = 0xffffffff;
  }
  *minimum = MAX (*minimum, h->sector);
  *preferred = MAX (*preferred, *minimum);
  if (*maximum != 0xffffffff)
    *maximum = MAX (ROUND_DOWN (*maximum, *minimum), *preferred);
  return 0;
}

/* Zeroes are written encrypted, never trimmed below (which would read
 * back as garbage after decryption); the export is fully allocated.
 */
static int
luks_can_trim (nbdkit_next *next, void *handle)
{
  return 0;
}

static int
luks_can_zero (nbdkit_next *next, void *handle)
{
  return NBDKIT_ZERO_NATIVE;
}

static int
luks_can_fast_zero (nbdkit_next *next, void *handle)
{
  return 0;
}

static int
luks_can_extents (nbdkit_next *next, void *handle)
{
  return 1;
}

/* Read whole sectors [start, start + len) of the payload, decrypted. */
static int
read_sectors (nbdkit_next *next, struct handle *h, void *buf,
              uint32_t len, uint64_t start, int *err)
{
  if (next->pread (next, buf, len, h->offset + start, 0, err) == -1)
    return -1;
  if (luks_decrypt_payload (volume, start, buf, len) == -1) {
    *err = errno;
    return -1;
  }
  return 0;
}

/* Encrypt whole sectors in buf (modified) and write them. */
static int
write_sectors (nbdkit_next *next, struct handle *h, void *buf,
               uint32_t len, uint64_t start, uint32_t flags, int *err)
{
  if (luks_encrypt_payload (volume, start, buf, len) == -1) {
    *err = errno;
    return -1;
  }
  return next->pwrite (next, buf, len, h->offset + start, flags, err);
}

static int
luks_pread (nbdkit_next *next, void *handle, void *buf,
            uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;
  uint64_t start = ROUND_DOWN (offset, (uint64_t) h->sector);
  uint64_t end = ROUND_UP (offset + count, (uint64_t) h->sector);
  CLEANUP_FREE char *bounce = NULL;

  if (start == offset && end == offset + count)
    return read_sectors (next, h, buf, count, offset, err);

  bounce = malloc (end - start);
  if (bounce == NULL) {
    *err = errno;
    nbdkit_error ("malloc: %m");
    return -1;
  }
  if (read_sectors (next, h, bounce, end - start, start, err) == -1)
    return -1;
  memcpy (buf, bounce + (offset - start), count);
  return 0;
}

/* What sector_write needs for one request. */
struct write_request {
  nbdkit_next *next;
  struct handle *h;
  uint32_t flags;
  int err;
};

static int
rmw_read_sector (void *opaque, void *buf, uint64_t offset)
{
  struct write_request *rq = opaque;

  if (read_sectors (rq->next, rq->h, buf, rq->h->sector, offset,
                    &rq->err) == -1) {
    errno = rq->err;
    return -1;
  }
  return 0;
}

static int
rmw_write_sectors (void *opaque, void *buf, size_t len, uint64_t offset)
{
  struct write_request *rq = opaque;

  if (write_sectors (rq->next, rq->h, buf, len, offset, rq->flags,
                     &rq->err) == -1) {
    errno = rq->err;
    return -1;
  }
  return 0;
}

/* Write count bytes at offset (data NULL = zeroes), whole sectors in
 * one request (count is 32 bits).
 */
static int
write_range (nbdkit_next *next, struct handle *h, const char *data,
             uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  struct write_request rq = {
    .next = next, .h = h, .flags = flags & NBDKIT_FLAG_FUA,
  };
  const struct sector_writer w = {
    .sector = h->sector,
    .chunk = ROUND_UP ((size_t) count, h->sector),
    .read_sector = rmw_read_sector,
    .write_sectors = rmw_write_sectors,
    .opaque = &rq,
  };

  if (sector_write (&rmw_lock, &w, data, count, offset) == -1) {
    *err = rq.err ? rq.err : errno;
    return -1;
  }
  return 0;
}

static int
luks_pwrite (nbdkit_next *next, void *handle, const void *buf,
             uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  return write_range (next, handle, buf, count, offset, flags, err);
}

static int
luks_zero (nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
           uint32_t flags, int *err)
{
  return write_range (next, handle, NULL, count, offset, flags, err);
}

static int
luks_extents (nbdkit_next *next, void *handle, uint32_t count,
              uint64_t offset, uint32_t flags,
              struct nbdkit_extents *extents, int *err)
{
  /* Every byte of the payload is data: holes below decrypt to noise. */
  if (nbdkit_add_extent (extents, offset, count, 0) == -1) {
    *err = errno;
    return -1;
  }
  return 0;
}

static int
luks_cache (nbdkit_next *next, void *handle, uint32_t count,
            uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;
  uint64_t start = ROUND_DOWN (offset, (uint64_t) h->sector);
  uint64_t end = ROUND_UP (offset + count, (uint64_t) h->sector);

  return next->cache (next, end - start, h->offset + start, flags, err);
}

static struct nbdkit_filter filter = {
  .name = "luks2",
  .longname = "nbdkit luks2 filter (LUKS1 and LUKS2)",
  .load = luks_load,
  .unload = luks_unload,
  .config = luks_config,
  .config_complete = luks_config_complete,
  .config_help = luks_config_help,
  .open = luks_filter_open,
  .close = luks_close_handle,
  .prepare = luks_prepare,
  .get_size = luks_get_size,
  .block_size = luks_block_size,
  .can_trim = luks_can_trim,
  .can_zero = luks_can_zero,
  .can_fast_zero = luks_can_fast_zero,
  .can_extents = luks_can_extents,
  .pread = luks_pread,
  .pwrite = luks_pwrite,
  .zero = luks_zero,
  .extents = luks_extents,
  .cache = luks_cache,
};

NBDKIT_REGISTER_FILTER (filter)
