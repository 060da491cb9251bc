/* ISA-L igzip backend for zlib-type clusters.
 *
 * Compression: one-shot (stateless) raw deflate with hist_bits = 12, so
 * no match reaches back more than 4096 bytes and QEMU's 4 KiB-window
 * inflate can read every cluster (test-codec proves it on varied data
 * with a streaming zlib inflate that enforces the window).
 *
 * Decompression: one-shot raw inflate with the default (32 KiB) history.
 * It must not be limited to 4 KiB: QEMU inflates a cluster in one call,
 * where zlib checks distances only against the output produced so far,
 * so it accepts longer references and so must we.  A stream that does
 * not end exactly at out_len is left to zlib (codec-deflate.c).
 */

#include <config.h>

#ifdef HAVE_ISAL

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <isa-l/igzip_lib.h>

#include "codec-internal.h"

/* Inflate. */

static void *
create_inflate_state (void)
{
  return malloc (sizeof (struct inflate_state));
}

int
isal_inflate_cluster (const void *in, size_t in_len,
                      void *out, size_t out_len)
{
  struct inflate_state *state;

  if (in_len > UINT32_MAX || out_len > UINT32_MAX) {
    errno = EIO;
    return -1;
  }

  state = codec_thread_context (CODEC_SLOT_ISAL_INFLATE,
                                create_inflate_state, free);
  if (state == NULL)
    return -1;

  isal_inflate_init (state);
  state->crc_flag = ISAL_DEFLATE;
  state->hist_bits = 0;         /* full 32 KiB: see above */
  state->next_in = (uint8_t *) in;
  state->avail_in = in_len;
  state->next_out = out;
  state->avail_out = out_len;

  if (isal_inflate_stateless (state) == ISAL_DECOMP_OK &&
      state->total_out == out_len)
    return 0;
  errno = EIO;
  return -1;
}

/* Deflate.  The level buffer is sized for level 3, the largest, so one
 * allocation serves every level.
 */

#define LEVEL_BUF_SIZE ISAL_DEF_LVL3_DEFAULT
_Static_assert (ISAL_DEF_LVL3_DEFAULT >= ISAL_DEF_LVL2_DEFAULT &&
                ISAL_DEF_LVL3_DEFAULT >= ISAL_DEF_LVL1_DEFAULT,
                "level 3 needs the largest level buffer");

struct isal_deflater {
  struct isal_zstream stream;
  uint8_t level_buf[LEVEL_BUF_SIZE];
};

static void *
create_deflater (void)
{
  return malloc (sizeof (struct isal_deflater));
}

ssize_t
isal_deflate_cluster (int isal_level, const void *in, size_t in_len,
                      void *out, size_t out_cap)
{
  struct isal_deflater *d;
  struct isal_zstream *s;
  int r;

  if (in_len > UINT32_MAX ||
      isal_level < ISAL_DEF_MIN_LEVEL || isal_level > ISAL_DEF_MAX_LEVEL) {
    errno = EINVAL;
    return -1;
  }
  if (out_cap > UINT32_MAX)
    out_cap = UINT32_MAX;

  d = codec_thread_context (CODEC_SLOT_ISAL_DEFLATE, create_deflater, free);
  if (d == NULL)
    return -1;
  s = &d->stream;

  isal_deflate_stateless_init (s);
  s->level = isal_level;
  s->level_buf = d->level_buf;
  s->level_buf_size = sizeof d->level_buf;
  s->hist_bits = CODEC_DEFLATE_WINDOW_BITS;
  s->gzip_flag = IGZIP_DEFLATE;
  s->flush = NO_FLUSH;
  s->end_of_stream = 1;
  s->next_in = (uint8_t *) in;
  s->avail_in = in_len;
  s->next_out = out;
  s->avail_out = out_cap;

  r = isal_deflate_stateless (s);
  if (r == COMP_OK)
    return s->total_out;
  if (r == STATELESS_OVERFLOW)
    return 0;                   /* does not fit */
  errno = EIO;
  return -1;
}

#endif /* HAVE_ISAL */
