/* Unit tests for the codec library.
 *
 * The oracle is always an independent decoder: zlib driven exactly as
 * QEMU 7.2 drives it (one fresh inflate(Z_FINISH) per cluster) and libzstd
 * driven as QEMU drives it (a fresh DCtx, stream until the cluster is
 * full).  The 4 KiB-window rule is checked by a second zlib inflate that
 * produces one byte per call, which forces every back-reference through
 * zlib's 4 KiB window, so any match reaching farther fails.
 */

#include <config.h>

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "codec.h"
#include "codec-internal.h"
#include "diag.h"

#define MIN_CLUSTER_BITS 9
#define MAX_CLUSTER_BITS 21
#define MAX_CLUSTER (1 << MAX_CLUSTER_BITS)

static unsigned failures;

/* Mutants per payload in test_corrupt: MUTANTS=100000 for a deep run. */
static size_t mutants = 300;

#define CHECK(cond, ...)                                         \
  do {                                                           \
    if (!(cond)) {                                               \
      fprintf (stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf (stderr, __VA_ARGS__);                             \
      fputc ('\n', stderr);                                      \
      failures++;                                                \
    }                                                            \
  } while (0)

/* Diagnostics: counted, and printed only when VERBOSE is set. */
static unsigned diag_errors;
static bool verbose;

static void
count_error (const char *fs, va_list args)
{
  diag_errors++;
  if (verbose) {
    vfprintf (stderr, fs, args);
    fputc ('\n', stderr);
  }
}

/* Deterministic data. */

static uint64_t rng_state = 0x9e3779b97f4a7c15;

static uint64_t
rng (void)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void
fill_random (unsigned char *p, size_t n)
{
  size_t i;

  for (i = 0; i < n; ++i)
    p[i] = rng ();
}

/* Words from a small vocabulary: compresses like prose (about 3:1). */
static void
fill_text (unsigned char *p, size_t n)
{
  static const char *const words[] = {
    "the", "cluster", "of", "qcow2", "image", "and", "a", "refcount",
    "table", "is", "written", "before", "L2", "entry", "compressed",
    "with", "deflate", "zstd", "window", "QEMU", "reads", "it", "back",
    "sector", "offset", "to", "header", "snapshot", "in", "for",
  };
  const size_t nwords = sizeof words / sizeof words[0];
  size_t i = 0;

  while (i < n) {
    const char *w = words[rng () % nwords];
    size_t len = strlen (w);

    while (*w && i < n)
      p[i++] = *w++;
    if (i < n)
      p[i++] = rng () % 11 == 0 ? '\n' : ' ';
    (void) len;
  }
}

/* Small alphabet, no long matches: exercises the Huffman coder. */
static void
fill_low_entropy (unsigned char *p, size_t n)
{
  size_t i;

  for (i = 0; i < n; ++i)
    p[i] = "aabbbcdd"[rng () % 8];
}

/* Low-entropy data in which 256-byte records recur at DISTANCE (more
 * than 4 KiB): an encoder with a larger window would love to refer back
 * to them.
 */
static void
fill_far_repeats (unsigned char *p, size_t n, size_t distance)
{
  size_t i;

  fill_low_entropy (p, n);
  for (i = distance; i + 256 <= n; i += 512)
    memcpy (p + i, p + i - distance, 256);
}

/* This very program: real machine code and tables. */
static void
fill_elf (unsigned char *p, size_t n)
{
  FILE *fp = fopen ("/proc/self/exe", "r");
  size_t got = 0, r;

  if (fp) {
    while (got < n && (r = fread (p + got, 1, n - got, fp)) > 0)
      got += r;
    fclose (fp);
  }
  /* Wrap around if the binary is smaller than the cluster. */
  for (r = got; got > 0 && r < n; ++r)
    p[r] = p[r - got];
  if (got == 0)
    fill_text (p, n);
}

enum data_kind { TEXT, FAR_REPEATS, LOW_ENTROPY, ELF, ZEROES, NR_KINDS };
static const char *const kind_name[] = {
  "text", "far-repeats", "low-entropy", "elf", "zeroes"
};

static void
fill (enum data_kind kind, unsigned char *p, size_t n)
{
  switch (kind) {
  case TEXT: fill_text (p, n); break;
  case FAR_REPEATS: fill_far_repeats (p, n, 4096 + 1 + rng () % 8192); break;
  case LOW_ENTROPY: fill_low_entropy (p, n); break;
  case ELF: fill_elf (p, n); break;
  case ZEROES: memset (p, 0, n); break;
  case NR_KINDS: abort ();
  }
}

/* Oracles. */

/* QEMU 7.2 qcow2_zlib_decompress, on a fresh stream. */
static int
qemu_zlib_inflate (const void *in, size_t in_len, void *out, size_t out_len)
{
  z_stream strm;
  int r;

  memset (&strm, 0, sizeof strm);
  strm.next_in = (Bytef *) in;
  strm.avail_in = in_len;
  strm.next_out = out;
  strm.avail_out = out_len;
  if (inflateInit2 (&strm, -12) != Z_OK)
    abort ();
  r = inflate (&strm, Z_FINISH);
  r = (r == Z_STREAM_END || r == Z_BUF_ERROR) && strm.avail_out == 0 ? 0 : -1;
  inflateEnd (&strm);
  return r;
}

/* QEMU 7.2 qcow2_zstd_decompress, on a fresh context. */
static int
qemu_zstd_decompress (const void *in, size_t in_len, void *out, size_t out_len)
{
  ZSTD_DCtx *dctx = ZSTD_createDCtx ();
  ZSTD_inBuffer input = { in, in_len, 0 };
  ZSTD_outBuffer output = { out, out_len, 0 };
  size_t r = 0;
  int ret = 0;

  while (output.pos < output.size) {
    size_t last_in = input.pos, last_out = output.pos;

    r = ZSTD_decompressStream (dctx, &output, &input);
    if (ZSTD_isError (r)) {
      ret = -1;
      break;
    }
    if (last_in >= input.pos && last_out >= output.pos) {
      ret = -1;
      break;
    }
  }
  if (r > 0)
    ret = -1;
  ZSTD_freeDCtx (dctx);
  return ret;
}

static int
qemu_decompress (enum codec_type type, const void *in, size_t in_len,
                 void *out, size_t out_len)
{
  return type == CODEC_ZLIB
    ? qemu_zlib_inflate (in, in_len, out, out_len)
    : qemu_zstd_decompress (in, in_len, out, out_len);
}

/* Inflate one byte per call with a 4 KiB window: fails on any match
 * farther back than 4096 bytes.  Returns 0 if the stream ends with
 * exactly EXPECT's bytes.
 */
static int
window_limited_inflate (const void *in, size_t in_len,
                        const unsigned char *expect, size_t len)
{
  z_stream strm;
  unsigned char byte;
  size_t produced = 0;
  int r = Z_OK, ret = -1;

  memset (&strm, 0, sizeof strm);
  if (inflateInit2 (&strm, -12) != Z_OK)
    abort ();
  strm.next_in = (Bytef *) in;
  strm.avail_in = in_len;
  while (r == Z_OK) {
    strm.next_out = &byte;
    strm.avail_out = 1;
    r = inflate (&strm, Z_NO_FLUSH);
    if (strm.avail_out == 0) {
      if (produced >= len || byte != expect[produced])
        break;
      produced++;
    }
  }
  if (r == Z_STREAM_END && produced == len)
    ret = 0;
  inflateEnd (&strm);
  return ret;
}

/* Buffers shared by the single-threaded tests. */
static unsigned char *data, *payload, *payload2, *out, *ref;

static const char *
type_name (enum codec_type type)
{
  return type == CODEC_ZLIB ? "zlib" : "zstd";
}

/* Compress DATA[0..len) and check every reader gets it back. */
static ssize_t
round_trip (enum codec_type type, int level, enum data_kind kind, size_t len,
            bool check_window)
{
  ssize_t n;

  n = codec_compress (type, level, data, len, payload, len - 1);
  CHECK (n >= 0, "%s level %d %s %zu: compress failed",
         type_name (type), level, kind_name[kind], len);
  if (n <= 0)
    return n;
  CHECK ((size_t) n < len, "overlong result");

  memset (out, 0xa5, len);
  CHECK (codec_decompress (type, payload, n, out, len) == 0,
         "%s level %d %s %zu: decompress failed",
         type_name (type), level, kind_name[kind], len);
  CHECK (memcmp (out, data, len) == 0, "%s level %d %s %zu: data differs",
         type_name (type), level, kind_name[kind], len);

  CHECK (qemu_decompress (type, payload, n, ref, len) == 0 &&
         memcmp (ref, data, len) == 0,
         "%s level %d %s %zu: QEMU's way of reading fails",
         type_name (type), level, kind_name[kind], len);

  if (type == CODEC_ZLIB && check_window)
    CHECK (window_limited_inflate (payload, n, data, len) == 0,
           "level %d %s %zu: a match reaches past the 4 KiB window",
           level, kind_name[kind], len);
  return n;
}

/* Every cluster size, both types, default level. */
static void
test_cluster_sizes (void)
{
  unsigned bits;
  enum data_kind kind;
  enum codec_type type;

  for (bits = MIN_CLUSTER_BITS; bits <= MAX_CLUSTER_BITS; ++bits) {
    size_t len = (size_t) 1 << bits;

    for (kind = 0; kind < NR_KINDS; ++kind) {
      /* Keep the slow byte-at-a-time check to one kind at 2 MiB. */
      bool window = bits < MAX_CLUSTER_BITS || kind == FAR_REPEATS;

      fill (kind, data, len);
      for (type = CODEC_ZLIB; type <= CODEC_ZSTD; ++type)
        CHECK (round_trip (type, -1, kind, len, window) > 0,
               "%s %s %zu did not compress",
               type_name (type), kind_name[kind], len);
    }
  }
}

/* Every zlib level (ISA-L and zlib backends) keeps to the window, on
 * data full of tempting long-distance matches and on real code.
 */
static void
test_levels_and_window (void)
{
  static const size_t sizes[] = { 4096, 65536, 1 << 20 };
  static const enum data_kind kinds[] = { FAR_REPEATS, ELF, TEXT };
  size_t s, k;
  int level;

  for (s = 0; s < sizeof sizes / sizeof sizes[0]; ++s)
    for (k = 0; k < sizeof kinds / sizeof kinds[0]; ++k) {
      fill (kinds[k], data, sizes[s]);
      for (level = 0; level <= 9; ++level) {
        if (sizes[s] > 65536 && level > 3 && level != 6)
          continue;             /* slow zlib levels: once is enough */
        round_trip (CODEC_ZLIB, level, kinds[k], sizes[s], true);
      }
      round_trip (CODEC_ZSTD, 1, kinds[k], sizes[s], false);
      round_trip (CODEC_ZSTD, 19, kinds[k], sizes[s], false);
    }

  /* The window check itself must catch a 32 KiB-window stream that
   * uses far matches, or it proves nothing.
   */
  {
    z_stream strm;
    size_t len = 65536;
    int r;

    fill_far_repeats (data, len, 8192);
    memset (&strm, 0, sizeof strm);
    assert (deflateInit2 (&strm, 6, Z_DEFLATED, -15, 9,
                          Z_DEFAULT_STRATEGY) == Z_OK);
    strm.next_in = data;
    strm.avail_in = len;
    strm.next_out = payload;
    strm.avail_out = len;
    r = deflate (&strm, Z_FINISH);
    assert (r == Z_STREAM_END);
    CHECK (window_limited_inflate (payload, strm.total_out, data, len) == -1,
           "window check accepts a 32 KiB-window stream");
    /* ...which QEMU (one inflate call) and we still read. */
    CHECK (codec_decompress (CODEC_ZLIB, payload, strm.total_out,
                             out, len) == 0 &&
           memcmp (out, data, len) == 0,
           "far references within the cluster are rejected");
    deflateEnd (&strm);
  }

  /* zlib level 6 is QEMU's encoder: same bytes as a fresh deflate. */
  {
    z_stream strm;
    size_t len = 65536;
    ssize_t n;

    fill_text (data, len);
    n = codec_compress (CODEC_ZLIB, 6, data, len, payload, len - 1);
    memset (&strm, 0, sizeof strm);
    assert (deflateInit2 (&strm, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
                          Z_DEFAULT_STRATEGY) == Z_OK);
    strm.next_in = data;
    strm.avail_in = len;
    strm.next_out = payload2;
    strm.avail_out = len - 1;
    assert (deflate (&strm, Z_FINISH) == Z_STREAM_END);
    CHECK (n == (ssize_t) strm.total_out &&
           memcmp (payload, payload2, n) == 0,
           "level 6 output differs from QEMU's");
    deflateEnd (&strm);
  }

  /* Out-of-range levels are refused with a message. */
  diag_errors = 0;
  errno = 0;
  CHECK (codec_compress (CODEC_ZLIB, 10, data, 4096, payload, 4095) == -1 &&
         errno == EINVAL, "zlib level 10 accepted");
  CHECK (codec_compress (CODEC_ZSTD, 99, data, 4096, payload, 4095) == -1 &&
         errno == EINVAL, "zstd level 99 accepted");
  CHECK (diag_errors == 2, "expected one message per refusal");
}

/* Random data does not fit in cluster_size - 1 bytes: 0, not an error. */
static void
test_incompressible (void)
{
  static const size_t sizes[] = { 512, 4096, 65536, MAX_CLUSTER };
  size_t s;
  int level;
  enum codec_type type;

  for (s = 0; s < sizeof sizes / sizeof sizes[0]; ++s) {
    fill_random (data, sizes[s]);
    for (type = CODEC_ZLIB; type <= CODEC_ZSTD; ++type)
      for (level = -1; level <= 9; level += 4)
        CHECK (codec_compress (type, level, data, sizes[s],
                               payload, sizes[s] - 1) == 0,
               "%s level %d: random %zu bytes 'compressed'",
               type_name (type), level, sizes[s]);
  }

  /* Tiny output buffer: does not fit either. */
  fill_text (data, 65536);
  CHECK (codec_compress (CODEC_ZLIB, -1, data, 65536, payload, 16) == 0,
         "zlib fit 64K of text into 16 bytes");
  CHECK (codec_compress (CODEC_ZSTD, -1, data, 65536, payload, 16) == 0,
         "zstd fit 64K of text into 16 bytes");
}

/* Decode IN both ways and require the same verdict and data.  Returns
 * our result.
 */
static int
same_as_qemu (enum codec_type type, const void *in, size_t in_len,
              size_t len, const char *what)
{
  int ours, theirs;
  unsigned before = diag_errors;

  errno = 0;
  ours = codec_decompress (type, in, in_len, out, len);
  if (ours == -1) {
    CHECK (errno == EIO, "%s %s: errno %d, not EIO",
           type_name (type), what, errno);
    CHECK (diag_errors == before + 1, "%s %s: %u messages, not 1",
           type_name (type), what, diag_errors - before);
  }
  theirs = qemu_decompress (type, in, in_len, ref, len);
  CHECK (ours == theirs, "%s %s: we say %d, QEMU says %d",
         type_name (type), what, ours, theirs);
  if (ours == 0 && theirs == 0)
    CHECK (memcmp (out, ref, len) == 0, "%s %s: data differs from QEMU's",
           type_name (type), what);
  return ours;
}

/* payload2 = payload[0 .. n) with 1-3 bits flipped or bytes
 * overwritten.
 */
static void
mutate (size_t n)
{
  size_t j, nflips = 1 + rng () % 3;

  memcpy (payload2, payload, n);
  for (j = 0; j < nflips; ++j) {
    size_t pos = rng () % n;

    if (rng () & 1)
      payload2[pos] ^= 1 << (rng () % 8);
    else
      payload2[pos] = rng ();
  }
}

/* Corrupt payloads: never crash, EIO with one message, and accept or
 * reject exactly what QEMU accepts or rejects.
 */
static void
test_corrupt (void)
{
  static const size_t sizes[] = { 512, 4096, 65536 };
  unsigned rejected = 0, total = 0;
  size_t s, i;
  enum codec_type type;
  enum data_kind kind;
  char what[64];

  for (s = 0; s < sizeof sizes / sizeof sizes[0]; ++s) {
    size_t len = sizes[s];

    for (type = CODEC_ZLIB; type <= CODEC_ZSTD; ++type)
      for (kind = TEXT; kind <= ELF; ++kind) {
        ssize_t n;

        fill (kind, data, len);
        n = codec_compress (type, -1, data, len, payload, len - 1);
        if (n <= 0)
          continue;

        /* Truncated: never enough for the cluster. */
        for (i = 0; i < 8; ++i) {
          size_t cut = (size_t) n * i / 8;

          snprintf (what, sizeof what, "%zu cut to %zu", len, cut);
          CHECK (same_as_qemu (type, payload, cut, len, what) == -1,
                 "%s %s accepted", type_name (type), what);
        }

        /* Bit flips and overwritten bytes. */
        for (i = 0; i < mutants; ++i) {
          mutate (n);
          snprintf (what, sizeof what, "%zu %s mutant %zu",
                    len, kind_name[kind], i);
          total++;
          rejected += same_as_qemu (type, payload2, n, len, what) == -1;
        }
      }

    /* Garbage, and the other type's payload. */
    for (type = CODEC_ZLIB; type <= CODEC_ZSTD; ++type) {
      enum codec_type other = type == CODEC_ZLIB ? CODEC_ZSTD : CODEC_ZLIB;
      ssize_t n;

      for (i = 0; i < 50; ++i) {
        fill_random (payload2, len);
        snprintf (what, sizeof what, "%zu random garbage %zu", len, i);
        same_as_qemu (type, payload2, len, len, what);
      }
      fill_text (data, len);
      n = codec_compress (other, -1, data, len, payload, len - 1);
      assert (n > 0);
      snprintf (what, sizeof what, "%zu holding %s data",
                len, type_name (other));
      CHECK (same_as_qemu (type, payload, n, len, what) == -1,
             "%s %s accepted", type_name (type), what);

      CHECK (same_as_qemu (type, payload, 0, len, "empty") == -1,
             "%s: empty payload accepted", type_name (type));
    }
  }
  /* Sanity of the mutation test itself: most mutants must be bad. */
  CHECK (rejected > total / 2, "only %u of %u mutants rejected",
         rejected, total);
}

/* zlib raw deflate (4 KiB window) with chosen parameters: streams of
 * many blocks.  flush_at > 0: a Z_FULL_FLUSH there, and the level
 * changed, so that stored, fixed and dynamic blocks mix.
 */
static size_t
zlib_multi_block (const unsigned char *in, size_t len, int level,
                  int mem_level, int strategy, size_t flush_at)
{
  z_stream z;
  size_t n;

  memset (&z, 0, sizeof z);
  if (deflateInit2 (&z, level, Z_DEFLATED, -12, mem_level, strategy) != Z_OK)
    abort ();
  z.next_out = payload;
  z.avail_out = 2 * MAX_CLUSTER;
  z.next_in = (Bytef *) in;
  if (flush_at) {
    z.avail_in = flush_at;
    if (deflate (&z, Z_FULL_FLUSH) != Z_OK ||
        deflateParams (&z, level ? 0 : 6, Z_DEFAULT_STRATEGY) != Z_OK)
      abort ();
  }
  z.avail_in = len - flush_at;
  if (deflate (&z, Z_FINISH) != Z_STREAM_END)
    abort ();
  n = z.total_out;
  deflateEnd (&z);
  return n;
}

/* Multi-block streams (2 MiB clusters, some smaller ones) and their
 * mutants get QEMU's verdict and bytes.  (They go to zlib: ISA-L would
 * need every block's header checked, and walking the blocks to find
 * them costs as much as zlib's decode - README.md.)
 */
static void
test_multi_block_corrupt (void)
{
  static const struct {
    size_t len;
    int level, mem_level, strategy;
    size_t flush_at;
    const char *name;
  } shapes[] = {
    { 65536, 6, 1, Z_DEFAULT_STRATEGY, 0, "dynamic blocks" },
    { 65536, 6, 1, Z_FIXED, 0, "fixed blocks" },
    { 65536, 6, 1, Z_DEFAULT_STRATEGY, 20000, "dynamic then stored" },
    { 65536, 0, 1, Z_DEFAULT_STRATEGY, 30000, "stored then dynamic" },
    { 65536, 1, 2, Z_HUFFMAN_ONLY, 0, "literal-only blocks" },
    { MAX_CLUSTER, 6, 9, Z_DEFAULT_STRATEGY, 0, "qemu-img 2M" },
  };
  unsigned rejected = 0, total = 0;
  enum data_kind kind;
  char what[96];

  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
    for (kind = TEXT; kind <= ELF; ++kind) {
      size_t len = shapes[s].len, n, nmut, i;

      fill (kind, data, len);
      n = zlib_multi_block (data, len, shapes[s].level, shapes[s].mem_level,
                            shapes[s].strategy, shapes[s].flush_at);
      if ((payload[0] & 1) != 0)  /* BFINAL: a single block after all */
        continue;
      snprintf (what, sizeof what, "%s %s", shapes[s].name, kind_name[kind]);
      CHECK (same_as_qemu (CODEC_ZLIB, payload, n, len, what) == 0,
             "%s: rejected", what);
      CHECK (memcmp (out, data, len) == 0, "%s: wrong data", what);

      nmut = len > 65536 ? mutants / 10 + 1 : mutants;
      for (i = 0; i < nmut; ++i) {
        mutate (n);
        snprintf (what, sizeof what, "%s %s mutant %zu",
                  shapes[s].name, kind_name[kind], i);
        total++;
        rejected += same_as_qemu (CODEC_ZLIB, payload2, n, len, what) == -1;
      }
    }
  /* Flips in stored and literal-only blocks often still decode. */
  CHECK (total > 0 && rejected > total / 5,
         "only %u of %u multi-block mutants rejected", rejected, total);
}

/* Trailing bytes after the stream are ignored (QEMU reads whole sectors,
 * and past EOF reads as zero).
 */
static void
test_trailing_bytes (void)
{
  size_t len = 65536;
  enum codec_type type;
  ssize_t n;

  fill_text (data, len);
  for (type = CODEC_ZLIB; type <= CODEC_ZSTD; ++type) {
    n = codec_compress (type, -1, data, len, payload, len - 1);
    assert (n > 0);
    fill_random (payload + n, 1000);
    CHECK (same_as_qemu (type, payload, n + 1000, len, "garbage tail") == 0,
           "%s: trailing garbage rejected", type_name (type));
    CHECK (memcmp (out, data, len) == 0, "trailing garbage changed data");
    memset (payload + n, 0, 511);
    CHECK (same_as_qemu (type, payload, n + 511, len, "zero tail") == 0,
           "%s: trailing zeroes rejected", type_name (type));
  }
}

/* Streams of unusual shape, zlib type. */
static void
test_zlib_stream_shapes (void)
{
  size_t len = 65536;
  z_stream strm;
  size_t n;

  fill_text (data, 2 * len);

  /* Fills the cluster but has no final block (sync flush): QEMU gets
   * Z_BUF_ERROR with a full buffer and accepts it.
   */
  memset (&strm, 0, sizeof strm);
  assert (deflateInit2 (&strm, 6, Z_DEFLATED, -12, 9,
                        Z_DEFAULT_STRATEGY) == Z_OK);
  strm.next_in = data;
  strm.avail_in = len;
  strm.next_out = payload;
  strm.avail_out = 2 * len;
  assert (deflate (&strm, Z_SYNC_FLUSH) == Z_OK);
  n = strm.total_out;
  deflateEnd (&strm);
  CHECK (same_as_qemu (CODEC_ZLIB, payload, n, len, "no final block") == 0,
         "unterminated stream rejected");
  CHECK (memcmp (out, data, len) == 0, "unterminated stream: data differs");

  /* Decodes to more than a cluster: QEMU keeps the first cluster. */
  memset (&strm, 0, sizeof strm);
  assert (deflateInit2 (&strm, 6, Z_DEFLATED, -12, 9,
                        Z_DEFAULT_STRATEGY) == Z_OK);
  strm.next_in = data;
  strm.avail_in = 2 * len;
  strm.next_out = payload;
  strm.avail_out = 2 * len;
  assert (deflate (&strm, Z_FINISH) == Z_STREAM_END);
  n = strm.total_out;
  deflateEnd (&strm);
  CHECK (same_as_qemu (CODEC_ZLIB, payload, n, len, "two clusters' worth")
         == 0, "overlong stream rejected");

  /* Decodes to less than a cluster: EIO. */
  CHECK (same_as_qemu (CODEC_ZLIB, payload, n, 4 * len, "short stream")
         == -1, "short stream accepted");

  /* A stored (uncompressed) block. */
  memset (&strm, 0, sizeof strm);
  assert (deflateInit2 (&strm, 0, Z_DEFLATED, -12, 9,
                        Z_DEFAULT_STRATEGY) == Z_OK);
  strm.next_in = data;
  strm.avail_in = 4096;
  strm.next_out = payload;
  strm.avail_out = 8192;
  assert (deflate (&strm, Z_FINISH) == Z_STREAM_END);
  n = strm.total_out;
  deflateEnd (&strm);
  CHECK (same_as_qemu (CODEC_ZLIB, payload, n, 4096, "stored block") == 0,
         "stored block rejected");
}

/* Streams of unusual shape, zstd type. */
static void
test_zstd_stream_shapes (void)
{
  size_t len = 65536, n, n2;
  ZSTD_CCtx *cctx = ZSTD_createCCtx ();

  fill_text (data, 2 * len);

  /* Two frames of half a cluster each: QEMU continues into the second. */
  n = ZSTD_compressCCtx (cctx, payload, len, data, len / 2, 3);
  n2 = ZSTD_compressCCtx (cctx, payload + n, len, data + len / 2, len / 2, 3);
  assert (!ZSTD_isError (n) && !ZSTD_isError (n2));
  CHECK (same_as_qemu (CODEC_ZSTD, payload, n + n2, len, "two frames") == 0,
         "two frames rejected");
  CHECK (memcmp (out, data, len) == 0, "two frames: data differs");

  /* A frame of more than a cluster: EIO. */
  n = ZSTD_compressCCtx (cctx, payload, 2 * len, data, 2 * len, 3);
  assert (!ZSTD_isError (n));
  CHECK (same_as_qemu (CODEC_ZSTD, payload, n, len, "long frame") == -1,
         "overlong frame accepted");

  /* A frame of less than a cluster: EIO. */
  CHECK (same_as_qemu (CODEC_ZSTD, payload, n, 4 * len, "short frame") == -1,
         "short frame accepted");

  /* With a checksum, and with no content size: still one frame. */
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_checksumFlag, 1);
  n = ZSTD_compress2 (cctx, payload, 2 * len, data, len);
  assert (!ZSTD_isError (n));
  CHECK (same_as_qemu (CODEC_ZSTD, payload, n, len, "checksum") == 0,
         "frame with checksum rejected");
  payload[n - 1] ^= 1;
  CHECK (same_as_qemu (CODEC_ZSTD, payload, n, len, "bad checksum") == -1,
         "bad checksum accepted");
  ZSTD_freeCCtx (cctx);

  /* Our frames carry the content size and no checksum, like QEMU's. */
  {
    ssize_t r = codec_compress (CODEC_ZSTD, -1, data, len, payload, len - 1);

    assert (r > 5);
    /* Frame_Header_Descriptor bit 2 is Content_Checksum_flag (RFC 8878). */
    CHECK (ZSTD_getFrameContentSize (payload, r) == len &&
           (payload[4] & 4) == 0,
           "frame header: content size %llu, descriptor 0x%02x",
           (unsigned long long) ZSTD_getFrameContentSize (payload, r),
           payload[4]);
  }
}

/* Threads each get their own contexts (ASan/TSan would complain about
 * sharing) and free them on exit (LSan would complain about leaks).
 */
#define NR_THREADS 4

static void *
thread_main (void *arg)
{
  uintptr_t id = (uintptr_t) arg;
  size_t len = 65536;
  unsigned char *d = malloc (len), *p = malloc (len), *o = malloc (len);
  uintptr_t bad = 0;
  int i;

  assert (d && p && o);
  for (i = 0; i < 20; ++i) {
    enum codec_type type = (i + id) & 1 ? CODEC_ZSTD : CODEC_ZLIB;
    int level = type == CODEC_ZLIB ? (int) (1 + (i + id) % 9) : -1;
    size_t j;
    ssize_t n;

    for (j = 0; j < len; ++j)
      d[j] = "abcdefgh"[(j * (id + 1) + i) % 8 ^ (j >> 10) % 3];
    n = codec_compress (type, level, d, len, p, len - 1);
    if (n <= 0 || codec_decompress (type, p, n, o, len) != 0 ||
        memcmp (o, d, len) != 0)
      bad++;
  }
  free (d);
  free (p);
  free (o);
  return (void *) bad;
}

static void
test_threads (void)
{
  pthread_t t[NR_THREADS];
  uintptr_t i;
  void *bad;

  for (i = 0; i < NR_THREADS; ++i)
    assert (pthread_create (&t[i], NULL, thread_main, (void *) i) == 0);
  for (i = 0; i < NR_THREADS; ++i) {
    assert (pthread_join (t[i], &bad) == 0);
    CHECK (bad == NULL, "thread %u: %u bad round trips",
           (unsigned) i, (unsigned) (uintptr_t) bad);
  }
}

int
main (void)
{
  verbose = getenv ("VERBOSE") != NULL;
  if (getenv ("MUTANTS"))
    mutants = strtoul (getenv ("MUTANTS"), NULL, 0);
  diag_set_handlers (count_error, NULL);

  data = malloc (2 * MAX_CLUSTER);
  payload = malloc (2 * MAX_CLUSTER);
  payload2 = malloc (2 * MAX_CLUSTER);
  out = malloc (4 * MAX_CLUSTER);
  ref = malloc (4 * MAX_CLUSTER);
  assert (data && payload && payload2 && out && ref);

  printf ("backends: zlib decoder %s, zlib encoder %s\n",
          codec_inflate_backend (), codec_deflate_backend ());

  test_cluster_sizes ();
  test_levels_and_window ();
  test_incompressible ();
  test_corrupt ();
  test_multi_block_corrupt ();
  test_trailing_bytes ();
  test_zlib_stream_shapes ();
  test_zstd_stream_shapes ();
  test_threads ();

  free (data);
  free (payload);
  free (payload2);
  free (out);
  free (ref);

  if (failures) {
    printf ("%u checks failed\n", failures);
    return 1;
  }
  printf ("all codec checks passed\n");
  return 0;
}
