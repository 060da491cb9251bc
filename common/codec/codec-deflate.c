/* zlib-type clusters (qcow2 compression_type 0): raw deflate with a
 * 4 KiB window, as QEMU writes and reads them (codec.h).
 *
 * This file is the policy: which backend decodes and which encodes.
 *
 * Reading must accept exactly what QEMU 7.2 accepts, and QEMU uses zlib
 * (codec-zlib.c).  ISA-L decodes about twice as fast (README.md), and
 * agrees with zlib on every stream that is a single final block with a
 * header zlib accepts (codec-deflate-header.c) - nearly every cluster of
 * up to 64 KiB.  So such a stream goes to ISA-L first; anything ISA-L
 * does not decode to exactly the cluster size (a stream cut short, one
 * that fills the cluster and goes on, bad data) and every other stream
 * goes to zlib, whose verdict is QEMU's.
 *
 * Writing: ISA-L, when built in, is many times faster than zlib for a
 * few percent of size; zlib serves the levels ISA-L does not reach.
 */

#include <config.h>

#include <errno.h>

#include "codec-internal.h"
#include "diag.h"

/* Decompression. */

int
deflate_decompress_cluster (const void *in, size_t in_len,
                            void *out, size_t out_len)
{
#ifdef HAVE_ISAL
  if (deflate_is_single_plain_block (in, in_len) &&
      isal_inflate_cluster (in, in_len, out, out_len) == 0)
    return 0;
#endif
  if (zlib_inflate_cluster (in, in_len, out, out_len) == 0)
    return 0;

  if (errno == EIO)
    diag_error ("zlib-compressed cluster is corrupt or shorter than "
                "the cluster size (%zu bytes)", out_len);
  else
    diag_error ("cannot set up zlib decompression: out of memory");
  errno = EIO;
  return -1;
}

const char *
deflate_decoder_name (void)
{
#ifdef HAVE_ISAL
  return "isa-l+zlib";
#else
  return "zlib";
#endif
}

/* Compression levels.  The caller speaks zlib's scale, 1 (fastest) to
 * 9 (smallest); -1 means the default.  With ISA-L:
 *
 *   default   ISA-L level 3 (4-16x zlib -6's speed, 5-8% larger output)
 *   1 .. 3    ISA-L level 1 .. 3
 *   4 .. 9    zlib 4 .. 9 (6 gives QEMU's exact bytes)
 *
 * Without ISA-L every level is zlib's, and the default is 6, QEMU's.
 * Level 0 (store) is not useful for a compressed cluster: it means 1.
 */
#define ZLIB_DEFAULT_LEVEL 6
#define ISAL_DEFAULT_LEVEL 3

ssize_t
deflate_compress_cluster (int level, const void *in, size_t in_len,
                          void *out, size_t out_cap)
{
  ssize_t r;

  if (level > 9) {
    diag_error ("zlib compression level %d is out of range (1-9)", level);
    errno = EINVAL;
    return -1;
  }
  if (level == 0)
    level = 1;

#ifdef HAVE_ISAL
  if (level < 0)
    r = isal_deflate_cluster (ISAL_DEFAULT_LEVEL, in, in_len, out, out_cap);
  else if (level <= 3)
    r = isal_deflate_cluster (level, in, in_len, out, out_cap);
  else
#endif
    r = zlib_deflate_cluster (level < 0 ? ZLIB_DEFAULT_LEVEL : level,
                              in, in_len, out, out_cap);

  if (r == -1)
    diag_error ("zlib compression failed (%s)",
                errno == ENOMEM ? "out of memory" : "internal error");
  return r;
}

const char *
deflate_encoder_name (void)
{
#ifdef HAVE_ISAL
  return "isa-l";
#else
  return "zlib";
#endif
}
