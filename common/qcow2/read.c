/* Guest reads: split a request into mapped runs and serve each from
 * where it lives (data file, compressed cluster, layer below, zeroes).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "buffer-pool.h"
#include "cluster-cache.h"
#include "codec.h"
#include "diag.h"
#include "internal.h"
#include "io.h"
#include "minmax.h"

/* Buffers for compressed clusters, taken from the image's pools when
 * first needed by a request and given back when it ends.
 */
struct scratch {
  unsigned char *compressed;    /* up to two clusters of input */
  unsigned char *cluster;       /* one decompressed cluster */
};

static void
scratch_release (struct qcow2_image *img, struct scratch *s)
{
  if (img->compressed_pool) {
    buffer_pool_put (img->compressed_pool, s->compressed);
    buffer_pool_put (img->cluster_pool, s->cluster);
  }
}

/* *slot, from pool if the request has none yet. */
static unsigned char *
scratch_take (struct buffer_pool *pool, unsigned char **slot)
{
  if (*slot == NULL && (*slot = buffer_pool_get (pool)) == NULL) {
    diag_error ("malloc: %m");
    errno = ENOMEM;
  }
  return *slot;
}

int
image_read_unallocated (struct qcow2_image *img, void *buf, uint64_t count,
                        uint64_t offset)
{
  const struct backing *b = img->backing;
  uint64_t avail = 0;
  int r = 0;

  if (b && offset < b->size) {
    avail = MIN (count, b->size - offset);
    r = b->qcow2 ? qcow2_pread (b->qcow2, buf, avail, offset)
      : io_pread_zero_padded (b->raw, buf, avail, offset);
  }
  memset ((char *) buf + avail, 0, count - avail);
  return r;
}

/* Decompress the cluster m describes into out (cluster_size bytes). */
static int
decompress_cluster (struct qcow2_image *img, struct scratch *s,
                    const struct mapping *m, uint64_t host, uint64_t len,
                    unsigned char *out)
{
  if (scratch_take (img->compressed_pool, &s->compressed) == NULL ||
      io_pread_zero_padded (img->file, s->compressed, len, host) == -1)
    return -1;
  if (img->hdr.compression_type == 1)
    image_debug (img, QCOW2_DEBUG_CODEC, "%s: codec: guest %#" PRIx64
                 ": compressed cluster, zstd decoder",
                 img->filename, m->cluster_offset);
  else
    image_debug (img, QCOW2_DEBUG_CODEC, "%s: codec: guest %#" PRIx64
                 ": compressed cluster, zlib decoder (%s)",
                 img->filename, m->cluster_offset, codec_inflate_backend ());
  if (codec_decompress (img->hdr.compression_type, s->compressed, len,
                        out, img->cluster_size) == -1) {
    diag_error ("%s: compressed cluster for guest offset %#" PRIx64
                " (host %#" PRIx64 ") cannot be decompressed",
                img->filename, m->cluster_offset, host);
    errno = EIO;
    return -1;
  }
  return 0;
}

/* epoch: of img->cluster_cache, taken before m was mapped. */
static int
read_compressed (struct qcow2_image *img, struct scratch *s, void *buf,
                 uint64_t count, uint64_t offset, const struct mapping *m,
                 uint64_t epoch)
{
  uint64_t host = compressed_host_offset (m->descriptor, img->cluster_bits);
  uint64_t len = compressed_length (m->descriptor, img->cluster_bits);
  uint64_t skip = offset - m->cluster_offset;
  struct cluster_cache *cache = img->cluster_cache;

  /* QEMU never compresses encrypted data: no such cluster is valid. */
  if (img->crypt)
    return image_corrupt (img, "compressed cluster for guest offset %#" PRIx64
                          " in an encrypted image", m->cluster_offset);
  if (host >= img->file_size)
    return image_corrupt (img, "compressed cluster for guest offset %#" PRIx64
                          " starts at %#" PRIx64 ", beyond the end of the file",
                          m->cluster_offset, host);
  /* Whole clusters (sequential reads) go straight into the caller's
   * buffer; only parts of clusters use the cache.
   */
  if (skip == 0 && count == img->cluster_size)
    return decompress_cluster (img, s, m, host, len, buf);

  if (cache && cluster_cache_read (cache, host, len, buf, skip, count)) {
    image_debug (img, QCOW2_DEBUG_CODEC,
                 "%s: codec: guest %#" PRIx64 ": compressed cluster, "
                 "from the decompressed cluster cache",
                 img->filename, m->cluster_offset);
    return 0;
  }
  if (scratch_take (img->cluster_pool, &s->cluster) == NULL ||
      decompress_cluster (img, s, m, host, len, s->cluster) == -1)
    return -1;
  memcpy (buf, s->cluster + skip, count);
  /* Bytes past the end of the file read as zeroes now but may be
   * written by any allocation later (cluster-cache.h).
   */
  if (cache && host + len <= img->file_size)
    cluster_cache_insert (cache, epoch, host, len, &s->cluster);
  return 0;
}

/* QCOW2_DEBUG_CODEC (the caller tests it): how the kinds other than
 * compressed are read.
 */
static void
debug_mapping (struct qcow2_image *img, const struct mapping *m,
               uint64_t offset)
{
  static const char *const how[] = {
    [MAP_UNALLOCATED] = "unallocated, from the backing file or zeroes",
    [MAP_ZERO] = "zero, no read",
    [MAP_DATA] = "data, copied",
    [MAP_COMPRESSED] = NULL,    /* decompress_cluster says which decoder */
  };

  if (how[m->kind])
    debug_print (&img->debug, "%s: codec: guest %#" PRIx64 "+%" PRIu64
                 ": %s%s", img->filename, offset, m->length, how[m->kind],
                 m->kind == MAP_DATA && img->crypt ? " and decrypted" : "");
}

int
qcow2_pread (struct qcow2_image *img, void *buf, uint64_t count,
             uint64_t offset)
{
  struct scratch s = { NULL, NULL };
  unsigned char *p = buf;
  int r = 0;

  while (count > 0 && r == 0) {
    struct mapping m;
    uint64_t epoch = img->cluster_cache
      ? cluster_cache_epoch (img->cluster_cache) : 0;

    r = cluster_map_shared (img, offset, count, &m);
    if (r == -1)
      break;
    if (img->debug.flags & QCOW2_DEBUG_CODEC)
      debug_mapping (img, &m, offset);
    switch (m.kind) {
    case MAP_DATA:
      r = data_read (img, p, m.length, m.host_offset, offset);
      break;
    case MAP_ZERO:
      memset (p, 0, m.length);
      break;
    case MAP_UNALLOCATED:
      r = image_read_unallocated (img, p, m.length, offset);
      break;
    case MAP_COMPRESSED:
      r = read_compressed (img, &s, p, m.length, offset, &m, epoch);
      break;
    }
    p += m.length;
    offset += m.length;
    count -= m.length;
  }
  scratch_release (img, &s);
  return r;
}
