/* Cluster compression codecs for qcow2: the header's compression_type
 * (docs/interop/qcow2.txt, "Additional fields (version 3 and higher)"),
 * 0 zlib, 1 zstd.  Decoding stops once a whole cluster is produced
 * ("Cluster mapping": the Compressed Clusters Descriptor).  The spec
 * names the algorithms only; QEMU 7.2, which we match, stores zlib-type
 * clusters as raw deflate (no zlib header) with a 4 KiB window, so a
 * writer must keep back-references within 4096 bytes (a reader must
 * accept what QEMU's one zlib call does: codec-zlib.c), and zstd-type
 * clusters as one plain frame (codec-zstd.c).
 *
 * Contexts are kept per thread and reused; nothing is allocated per
 * cluster after a thread's first call.
 */
#ifndef CODEC_H
#define CODEC_H

#include <stddef.h>
#include <sys/types.h>

/* Values are the qcow2 header's compression_type field. */
enum codec_type {
  CODEC_ZLIB = 0,
  CODEC_ZSTD = 1,
};

/* Decompress one cluster: produce exactly out_len bytes from in.  Input
 * past the end of the compressed stream is ignored.  Returns 0, or -1
 * with errno = EIO and a message if the payload is corrupt or does not
 * yield a full cluster.
 */
extern int codec_decompress (enum codec_type type,
                             const void *in, size_t in_len,
                             void *out, size_t out_len);

/* Compress in_len bytes into out (capacity out_cap).  level < 0 selects
 * the default; zlib type 1..9 (1-3 are ISA-L's levels when built in,
 * default ISA-L 3, else zlib 6 like QEMU), zstd 1..22 (default 3, 0 also
 * means default).  Returns the compressed length, 0 if the result would
 * not fit in out_cap (the caller stores the data uncompressed), or -1
 * with errno set on failure.  zlib-type output never refers back more
 * than 4096 bytes, so QEMU can read it.
 */
extern ssize_t codec_compress (enum codec_type type, int level,
                               const void *in, size_t in_len,
                               void *out, size_t out_cap);

/* Human-readable names of the zlib-type implementations built in, for
 * --dump-plugin: the decoder is "isa-l+zlib" or "zlib", the encoder
 * "isa-l" or "zlib" (see README.md for what each does).
 */
extern const char *codec_inflate_backend (void);
extern const char *codec_deflate_backend (void);

#endif /* CODEC_H */
