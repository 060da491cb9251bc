/* Cluster compression codecs: dispatch on the image's compression type.
 * The backends live in codec-deflate.c (zlib type) and codec-zstd.c.
 */

#include <config.h>

#include <errno.h>

#include "codec.h"
#include "codec-internal.h"
#include "diag.h"

int
codec_decompress (enum codec_type type,
                  const void *in, size_t in_len,
                  void *out, size_t out_len)
{
  switch (type) {
  case CODEC_ZLIB:
    return deflate_decompress_cluster (in, in_len, out, out_len);
  case CODEC_ZSTD:
    return zstd_decompress_cluster (in, in_len, out, out_len);
  }
  diag_error ("unknown compression type %d", (int) type);
  errno = EIO;
  return -1;
}

ssize_t
codec_compress (enum codec_type type, int level,
                const void *in, size_t in_len,
                void *out, size_t out_cap)
{
  switch (type) {
  case CODEC_ZLIB:
    return deflate_compress_cluster (level, in, in_len, out, out_cap);
  case CODEC_ZSTD:
    return zstd_compress_cluster (level, in, in_len, out, out_cap);
  }
  diag_error ("unknown compression type %d", (int) type);
  errno = EINVAL;
  return -1;
}

const char *
codec_inflate_backend (void)
{
  return deflate_decoder_name ();
}

const char *
codec_deflate_backend (void)
{
  return deflate_encoder_name ();
}
