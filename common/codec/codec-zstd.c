/* zstd-type clusters (qcow2 compression_type 1).
 *
 * A cluster is one plain zstd frame: content size in the header, no
 * checksum, no length prefix (QEMU: ZSTD_compressStream2 with
 * ZSTD_e_end at the default level 3).  Because the stored length is only
 * known to the sector, QEMU 7.2 reads by streaming until the cluster is
 * full, continuing into a following frame if the first one is short,
 * and then ignores the bytes left over.  It fails when a call makes no
 * progress, on any zstd error, and when the cluster fills before the
 * frame being decoded has ended.  zstd_decompress_cluster follows those
 * rules exactly.
 */

#include <config.h>

#include <errno.h>

#include <zstd.h>
#include <zstd_errors.h>

#include "codec-internal.h"
#include "diag.h"

/* Per-thread contexts (codec_thread_context).  zstd's constructors
 * fail without setting errno.
 */
static void *
enomem_if_null (void *ctx)
{
  if (ctx == NULL)
    errno = ENOMEM;
  return ctx;
}

static void *
create_dctx (void)
{
  return enomem_if_null (ZSTD_createDCtx ());
}

static void *
create_cctx (void)
{
  return enomem_if_null (ZSTD_createCCtx ());
}

static void
destroy_dctx (void *p)
{
  ZSTD_freeDCtx (p);
}

static void
destroy_cctx (void *p)
{
  ZSTD_freeCCtx (p);
}

/* Decompression. */

/* Returns 0 if the payload fills the cluster as QEMU requires. */
static int
stream_into_cluster (ZSTD_DCtx *dctx, const void *in, size_t in_len,
                     void *out, size_t out_len)
{
  ZSTD_inBuffer input = { .src = in, .size = in_len, .pos = 0 };
  ZSTD_outBuffer output = { .dst = out, .size = out_len, .pos = 0 };
  size_t r = 0;

  while (output.pos < output.size) {
    size_t in_before = input.pos, out_before = output.pos;

    r = ZSTD_decompressStream (dctx, &output, &input);
    if (ZSTD_isError (r))
      return -1;
    if (input.pos == in_before && output.pos == out_before)
      return -1;                /* no progress: input ran out */
  }

  /* Full, but the frame has not ended: it holds more than a cluster. */
  return r == 0 ? 0 : -1;
}

int
zstd_decompress_cluster (const void *in, size_t in_len,
                         void *out, size_t out_len)
{
  ZSTD_DCtx *dctx;

  dctx = codec_thread_context (CODEC_SLOT_ZSTD_DCTX, create_dctx, destroy_dctx);
  if (dctx == NULL) {
    diag_error ("cannot set up zstd decompression: out of memory");
    errno = EIO;
    return -1;
  }

  /* Drop any half-decoded frame left by a failed cluster; parameters
   * stay at their defaults, as in QEMU's fresh context.
   */
  ZSTD_DCtx_reset (dctx, ZSTD_reset_session_only);

  if (stream_into_cluster (dctx, in, in_len, out, out_len) == -1) {
    diag_error ("zstd-compressed cluster is corrupt or does not decode "
                "to exactly the cluster size (%zu bytes)", out_len);
    errno = EIO;
    return -1;
  }
  return 0;
}

/* Compression. */

/* QEMU writes level 3 (ZSTD_CLEVEL_DEFAULT).  On 64 KiB clusters of
 * /usr data level 2 costs ~1.5x less CPU for ~1.5 % more output (see
 * README.md), the same trade as ISA-L for the zlib type; 3 and above
 * stay available through compression-level.
 */
#define ZSTD_DEFAULT_LEVEL 2

ssize_t
zstd_compress_cluster (int level, const void *in, size_t in_len,
                       void *out, size_t out_cap)
{
  ZSTD_CCtx *cctx;
  size_t r;

  if (level <= 0)               /* -1: ours; 0: zstd's own convention */
    level = ZSTD_DEFAULT_LEVEL;
  if (level < 1 || level > ZSTD_maxCLevel ()) {
    diag_error ("zstd compression level %d is out of range (1-%d)",
                level, ZSTD_maxCLevel ());
    errno = EINVAL;
    return -1;
  }

  cctx = codec_thread_context (CODEC_SLOT_ZSTD_CCTX, create_cctx, destroy_cctx);
  if (cctx == NULL) {
    diag_error ("cannot set up zstd compression: out of memory");
    return -1;
  }

  /* Parameters persist in the context, so set all of them every time.
   * ZSTD_compress2 writes the content size (the whole input is known)
   * and, by default, no checksum.
   */
  ZSTD_CCtx_reset (cctx, ZSTD_reset_session_and_parameters);
  if (ZSTD_isError (ZSTD_CCtx_setParameter (cctx, ZSTD_c_compressionLevel,
                                            level)) ||
      ZSTD_isError (ZSTD_CCtx_setParameter (cctx, ZSTD_c_checksumFlag, 0)) ||
      ZSTD_isError (ZSTD_CCtx_setParameter (cctx, ZSTD_c_contentSizeFlag,
                                            1))) {
    diag_error ("cannot set zstd compression parameters");
    errno = EIO;
    return -1;
  }

  r = ZSTD_compress2 (cctx, out, out_cap, in, in_len);
  if (!ZSTD_isError (r))
    return r;
  if (ZSTD_getErrorCode (r) == ZSTD_error_dstSize_tooSmall)
    return 0;                   /* does not fit */
  diag_error ("zstd compression failed: %s", ZSTD_getErrorName (r));
  errno = EIO;
  return -1;
}
