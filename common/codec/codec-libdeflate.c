/* libdeflate backend: the fast path for reading zlib-type clusters.
 *
 * libdeflate decodes a whole buffer and succeeds only when the stream
 * ends (final block) with exactly out_len bytes.  Anything else - a
 * stream that fills the cluster and goes on, or stops without a final
 * block, or bad data - is reported as -1 so the caller can ask zlib,
 * whose verdict is QEMU's.
 */

#include <config.h>

#ifdef HAVE_LIBDEFLATE

#include <errno.h>
#include <libdeflate.h>

#include "codec-internal.h"

static void *
create_decompressor (void)
{
  struct libdeflate_decompressor *d = libdeflate_alloc_decompressor ();

  if (d == NULL)
    errno = ENOMEM;
  return d;
}

static void
destroy_decompressor (void *p)
{
  libdeflate_free_decompressor (p);
}

int
libdeflate_inflate_cluster (const void *in, size_t in_len,
                            void *out, size_t out_len)
{
  struct libdeflate_decompressor *d;

  d = codec_thread_context (CODEC_SLOT_LIBDEFLATE,
                            create_decompressor, destroy_decompressor);
  if (d == NULL)
    return -1;

  /* A NULL actual_out_nbytes makes anything but exactly out_len bytes
   * an error (LIBDEFLATE_SHORT_OUTPUT).
   */
  if (libdeflate_deflate_decompress (d, in, in_len, out, out_len,
                                     NULL) == LIBDEFLATE_SUCCESS)
    return 0;
  errno = EIO;
  return -1;
}

#endif /* HAVE_LIBDEFLATE */
