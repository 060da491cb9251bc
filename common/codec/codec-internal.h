/* Internal interfaces of the codec library: the per-thread context
 * slots and the individual backends.  Only codec*.c, the unit tests and
 * bench/codec-bench.c include this.
 *
 * Backend functions never print: they return 0 / a length on success
 * and -1 when they reject the input, and the caller (codec-deflate.c,
 * codec-zstd.c) decides what to report.
 */
#ifndef CODEC_INTERNAL_H
#define CODEC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Per-thread contexts (codec-thread.c).  Each backend owns one slot; the
 * context is made by CREATE on the thread's first use and freed by
 * DESTROY when the thread exits (or when the library is unloaded, for
 * the thread doing the unloading).  Returns NULL with errno set if the
 * context cannot be made.
 */
enum codec_slot {
  CODEC_SLOT_ZLIB_INFLATE,
  CODEC_SLOT_ZLIB_DEFLATE,
  CODEC_SLOT_ISAL_INFLATE,
  CODEC_SLOT_ISAL_DEFLATE,
  CODEC_SLOT_ZSTD_DCTX,
  CODEC_SLOT_ZSTD_CCTX,
  CODEC_NR_SLOTS
};

extern void *codec_thread_context (enum codec_slot slot,
                                   void *(*create) (void),
                                   void (*destroy) (void *));

/* The zlib type uses raw deflate with a 4 KiB window (QEMU's
 * deflateInit2 / inflateInit2 with windowBits -12).
 */
#define CODEC_DEFLATE_WINDOW_BITS 12

/* zlib (codec-zlib.c): the reference.  zlib_inflate_cluster accepts
 * exactly what QEMU 7.2's qcow2_zlib_decompress accepts.  Returns 0 or
 * -1 (errno EIO for bad data, ENOMEM if the context cannot be made).
 * zlib_deflate_cluster returns the length, 0 if it does not fit in
 * out_cap, or -1.  Level 1..9 (zlib's scale).
 */
extern int zlib_inflate_cluster (const void *in, size_t in_len,
                                 void *out, size_t out_len);
extern ssize_t zlib_deflate_cluster (int level,
                                     const void *in, size_t in_len,
                                     void *out, size_t out_cap);

/* True if IN is a raw deflate stream of one final block whose header
 * zlib accepts (codec-deflate-header.c): on such a stream ISA-L's
 * inflate and zlib's give the same verdict.
 */
extern bool deflate_is_single_plain_block (const void *in, size_t in_len);

/* ISA-L igzip (codec-isal.c).  isal_inflate_cluster returns 0 if the
 * stream ends (final block) exactly at out_len bytes, -1 otherwise.  isal_deflate_cluster
 * compresses with a 4 KiB history at ISA-L level 0..3; same return
 * values as zlib_deflate_cluster.
 */
extern int isal_inflate_cluster (const void *in, size_t in_len,
                                 void *out, size_t out_len);
extern ssize_t isal_deflate_cluster (int isal_level,
                                     const void *in, size_t in_len,
                                     void *out, size_t out_cap);

/* zstd (codec-zstd.c), behind codec_compress / codec_decompress. */
extern int zstd_decompress_cluster (const void *in, size_t in_len,
                                    void *out, size_t out_len);
extern ssize_t zstd_compress_cluster (int level,
                                      const void *in, size_t in_len,
                                      void *out, size_t out_cap);

/* zlib type (codec-deflate.c), behind codec_compress / codec_decompress. */
extern int deflate_decompress_cluster (const void *in, size_t in_len,
                                       void *out, size_t out_len);
extern ssize_t deflate_compress_cluster (int level,
                                         const void *in, size_t in_len,
                                         void *out, size_t out_cap);
extern const char *deflate_decoder_name (void);
extern const char *deflate_encoder_name (void);

#endif /* CODEC_INTERNAL_H */
