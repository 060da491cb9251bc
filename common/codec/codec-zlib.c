/* zlib backend for zlib-type clusters: the reference behaviour.
 *
 * QEMU 7.2 (block/qcow2-threads.c) inflates a cluster with one
 * inflate(Z_FINISH) call on a fresh raw stream (windowBits -12) and
 * accepts the result when the output buffer is full and inflate said
 * Z_STREAM_END or Z_BUF_ERROR: the compressed length is only known to
 * the sector, so the stream may be cut short or followed by anything
 * once the cluster is complete.  zlib_inflate_cluster does exactly
 * that, reusing one stream per thread (inflateReset is equivalent to a
 * fresh inflateInit2 with the same parameters).
 *
 * Compression uses QEMU's parameters (windowBits -12, memLevel 9), so at
 * level 6 the output is byte-identical to qemu-img's.
 */

#include <config.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <zlib.h>

#include "codec-internal.h"

#define ZLIB_MEM_LEVEL 9        /* QEMU's choice */

/* Inflate. */

static void *
create_inflate_stream (void)
{
  z_stream *strm = calloc (1, sizeof *strm);

  if (strm == NULL)
    return NULL;
  if (inflateInit2 (strm, -CODEC_DEFLATE_WINDOW_BITS) != Z_OK) {
    free (strm);
    errno = ENOMEM;
    return NULL;
  }
  return strm;
}

static void
destroy_inflate_stream (void *p)
{
  inflateEnd (p);
  free (p);
}

int
zlib_inflate_cluster (const void *in, size_t in_len,
                      void *out, size_t out_len)
{
  z_stream *strm;
  int r;

  /* Cluster-sized buffers always fit zlib's 32-bit counters. */
  if (in_len > UINT_MAX || out_len > UINT_MAX) {
    errno = EIO;
    return -1;
  }

  strm = codec_thread_context (CODEC_SLOT_ZLIB_INFLATE,
                               create_inflate_stream, destroy_inflate_stream);
  if (strm == NULL)
    return -1;

  if (inflateReset (strm) != Z_OK) {
    errno = EIO;
    return -1;
  }
  strm->next_in = (Bytef *) in;
  strm->avail_in = in_len;
  strm->next_out = out;
  strm->avail_out = out_len;

  r = inflate (strm, Z_FINISH);
  if ((r == Z_STREAM_END || r == Z_BUF_ERROR) && strm->avail_out == 0)
    return 0;
  errno = EIO;
  return -1;
}

/* Deflate.  The stream is made for the first level a thread asks for
 * and remade when another level is wanted (rare: the level is a setting
 * of the image), so the output is always that of a fresh deflateInit2,
 * as in QEMU.
 */

struct zlib_deflater {
  z_stream strm;
  int level;                    /* 0 = no stream yet */
};

static void *
create_deflater (void)
{
  return calloc (1, sizeof (struct zlib_deflater));
}

static void
destroy_deflater (void *p)
{
  struct zlib_deflater *d = p;

  if (d->level)
    deflateEnd (&d->strm);
  free (d);
}

static int
prepare_deflater (struct zlib_deflater *d, int level)
{
  if (d->level == level)
    return deflateReset (&d->strm) == Z_OK ? 0 : -1;

  if (d->level)
    deflateEnd (&d->strm);
  d->level = 0;
  if (deflateInit2 (&d->strm, level, Z_DEFLATED,
                    -CODEC_DEFLATE_WINDOW_BITS, ZLIB_MEM_LEVEL,
                    Z_DEFAULT_STRATEGY) != Z_OK)
    return -1;
  d->level = level;
  return 0;
}

ssize_t
zlib_deflate_cluster (int level, const void *in, size_t in_len,
                      void *out, size_t out_cap)
{
  struct zlib_deflater *d;
  int r;

  if (in_len > UINT_MAX || level < 1 || level > 9) {
    errno = EINVAL;
    return -1;
  }
  if (out_cap > UINT_MAX)
    out_cap = UINT_MAX;

  d = codec_thread_context (CODEC_SLOT_ZLIB_DEFLATE,
                            create_deflater, destroy_deflater);
  if (d == NULL)
    return -1;
  if (prepare_deflater (d, level) == -1) {
    errno = ENOMEM;
    return -1;
  }

  d->strm.next_in = (Bytef *) in;
  d->strm.avail_in = in_len;
  d->strm.next_out = out;
  d->strm.avail_out = out_cap;

  r = deflate (&d->strm, Z_FINISH);
  if (r == Z_STREAM_END)
    return out_cap - d->strm.avail_out;
  if (r == Z_OK || r == Z_BUF_ERROR)
    return 0;                   /* output full: does not fit */
  errno = EIO;
  return -1;
}
