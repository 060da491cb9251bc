/* codec-bench: speed and size of the cluster codecs on real data.
 *
 *   make -C common/codec codec-bench
 *   common/codec/codec-bench [-m MIB] [-c CLUSTER_SIZE]... [-w]
 *
 * Two corpora are cut into clusters: shared libraries
 * (/usr/lib/x86_64-linux-gnu/lib*.so) and text (/usr/include headers,
 * perl modules, copyright files), MIB MiB of each (default 24).  For each
 * cluster size (default 4K, 64K, 2M) every backend compresses every
 * non-zero cluster into cluster_size - 1 bytes, as QEMU does; a cluster
 * that does not fit counts at full size in the ratio.  Then every
 * decoder reads the payloads written by zlib level 6 (QEMU's encoder,
 * what qemu-img images contain) and by ISA-L.  Each output is compared
 * with the source.  MB/s is uncompressed bytes per second of this
 * thread's CPU time (so other load on the machine matters less), best of
 * 3 runs.
 *
 * -w also inflates every zlib-type payload one byte per call with a
 * 4 KiB window (slow), proving no match reaches back more than 4096
 * bytes.
 */

#include <config.h>

#include <errno.h>
#include <glob.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#ifdef HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include "codec.h"
#include "codec-internal.h"
#include "is-zero.h"

#define RUNS 3

static bool check_window;

struct corpus {
  const char *name;
  unsigned char *data;
  size_t len;
};

static void
load_glob (struct corpus *c, const char *pattern, size_t limit)
{
  glob_t g;
  size_t i;

  if (glob (pattern, 0, NULL, &g) != 0)
    return;
  for (i = 0; i < g.gl_pathc && c->len < limit; ++i) {
    FILE *fp = fopen (g.gl_pathv[i], "r");
    size_t r;

    if (fp == NULL)
      continue;
    while (c->len < limit &&
           (r = fread (c->data + c->len, 1, limit - c->len, fp)) > 0)
      c->len += r;
    fclose (fp);
  }
  globfree (&g);
}

static void
load_corpus (struct corpus *c, const char *name,
             const char *const *patterns, size_t limit)
{
  c->name = name;
  c->data = malloc (limit);
  c->len = 0;
  if (c->data == NULL) {
    perror ("malloc");
    exit (1);
  }
  for (; *patterns && c->len < limit; ++patterns)
    load_glob (c, *patterns, limit);
}

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The clusters of a corpus and their payloads from one encoder. */
struct payloads {
  size_t nclusters, cluster_size;
  const unsigned char **cluster;   /* non-zero source clusters */
  unsigned char **payload;         /* NULL: stored uncompressed */
  size_t *payload_len;
};

typedef ssize_t (*compress_fn) (int level, const void *in, size_t in_len,
                                void *out, size_t out_cap);
typedef int (*decompress_fn) (const void *in, size_t in_len,
                              void *out, size_t out_len);

static ssize_t
codec_zlib (int level, const void *in, size_t in_len, void *out, size_t cap)
{
  return codec_compress (CODEC_ZLIB, level, in, in_len, out, cap);
}

static int
codec_zlib_d (const void *in, size_t in_len, void *out, size_t out_len)
{
  return codec_decompress (CODEC_ZLIB, in, in_len, out, out_len);
}

#ifdef HAVE_LIBDEFLATE
/* libdeflate is measured, not used: it accepts streams zlib (so QEMU)
 * rejects (README.md, test-deflate-quirks).
 */
static struct libdeflate_decompressor *ld;

static int
libdeflate_inflate_cluster (const void *in, size_t in_len,
                            void *out, size_t out_len)
{
  return libdeflate_deflate_decompress (ld, in, in_len, out, out_len, NULL)
    == LIBDEFLATE_SUCCESS ? 0 : -1;
}
#endif

/* Inflate one byte at a time through a 4 KiB window. */
static bool
within_window (const unsigned char *in, size_t in_len,
               const unsigned char *expect, size_t len)
{
  z_stream strm;
  unsigned char byte;
  size_t produced = 0;
  int r = Z_OK;

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
  inflateEnd (&strm);
  return r == Z_STREAM_END && produced == len;
}

static void
cut_clusters (struct payloads *p, const struct corpus *c, size_t cs)
{
  size_t off, n = 0;

  p->cluster_size = cs;
  p->cluster = malloc (sizeof *p->cluster * (c->len / cs + 1));
  for (off = 0; off + cs <= c->len; off += cs)
    if (!is_zero (c->data + off, cs))
      p->cluster[n++] = c->data + off;
  p->nclusters = n;
  p->payload = calloc (n, sizeof *p->payload);
  p->payload_len = calloc (n, sizeof *p->payload_len);
}

static void
free_payloads (struct payloads *p)
{
  size_t i;

  for (i = 0; i < p->nclusters; ++i)
    free (p->payload[i]);
  free (p->payload);
  free (p->payload_len);
  free (p->cluster);
}

static void
report (const struct corpus *c, size_t cs, const char *what,
        size_t bytes, double secs, double ratio)
{
  printf ("%-5s %7zu  %-22s %8.1f MB/s", c->name, cs, what, bytes / secs / 1e6);
  if (ratio > 0)
    printf ("  %6.2f%%", ratio * 100);
  putchar ('\n');
  fflush (stdout);
}

/* Compress every cluster; keep the payloads in P.  Returns false if a
 * backend failed.
 */
static bool
run_compress (const struct corpus *c, struct payloads *p, const char *what,
              compress_fn fn, int level)
{
  size_t cs = p->cluster_size, i, stored = 0;
  unsigned char *buf = malloc (cs);
  double best = 1e99;
  int run;
  bool ok = true;

  for (run = 0; run < RUNS; ++run) {
    double t = now ();

    stored = 0;
    for (i = 0; i < p->nclusters; ++i) {
      ssize_t n = fn (level, p->cluster[i], cs, buf, cs - 1);

      if (n < 0) {
        fprintf (stderr, "%s: compression failed\n", what);
        ok = false;
        n = 0;
      }
      if (run == 0) {
        free (p->payload[i]);
        p->payload[i] = NULL;
        p->payload_len[i] = n;
        if (n > 0) {
          p->payload[i] = malloc (n);
          memcpy (p->payload[i], buf, n);
        }
      }
      stored += n > 0 ? (size_t) n : cs;
    }
    t = now () - t;
    if (t < best)
      best = t;
  }
  report (c, cs, what, p->nclusters * cs, best,
          (double) stored / (p->nclusters * cs));

  if (check_window && fn != zstd_compress_cluster) {
    for (i = 0; i < p->nclusters; ++i)
      if (p->payload[i] &&
          !within_window (p->payload[i], p->payload_len[i], p->cluster[i], cs)) {
        fprintf (stderr, "%s: cluster %zu refers back past 4 KiB\n", what, i);
        ok = false;
      }
  }
  free (buf);
  return ok;
}

static bool
run_decompress (const struct corpus *c, const struct payloads *p,
                const char *what, decompress_fn fn)
{
  size_t cs = p->cluster_size, i, bytes = 0, bad = 0;
  unsigned char *buf = malloc (cs);
  double best = 1e99;
  int run;

  for (run = 0; run < RUNS; ++run) {
    double t = now ();

    bytes = 0;
    for (i = 0; i < p->nclusters; ++i) {
      if (p->payload[i] == NULL)
        continue;
      if (fn (p->payload[i], p->payload_len[i], buf, cs) != 0 ||
          (run == 0 && memcmp (buf, p->cluster[i], cs) != 0))
        bad++;
      bytes += cs;
    }
    t = now () - t;
    if (t < best)
      best = t;
  }
  report (c, cs, what, bytes, best, 0);
  free (buf);
  if (bad)
    fprintf (stderr, "%s: %zu clusters decoded wrongly\n", what, bad);
  return bad == 0;
}

static bool
bench_cluster_size (const struct corpus *c, size_t cs)
{
  struct payloads zlib6 = { 0 }, isal = { 0 }, other = { 0 }, zstd = { 0 };
  bool ok = true;
  int level;
  char what[64];

  cut_clusters (&zlib6, c, cs);
  cut_clusters (&other, c, cs);
  cut_clusters (&isal, c, cs);
  cut_clusters (&zstd, c, cs);

  ok &= run_compress (c, &zlib6, "compress zlib-6 (QEMU)", zlib_deflate_cluster, 6);
  for (level = 1; level <= 9; level += 8) {
    snprintf (what, sizeof what, "compress zlib-%d", level);
    ok &= run_compress (c, &other, what, zlib_deflate_cluster, level);
  }
#ifdef HAVE_ISAL
  for (level = 0; level <= 2; ++level) {
    snprintf (what, sizeof what, "compress isa-l-%d", level);
    ok &= run_compress (c, &other, what, isal_deflate_cluster, level);
  }
  ok &= run_compress (c, &isal, "compress isa-l-3", isal_deflate_cluster, 3);
#endif
  ok &= run_compress (c, &other, "compress codec default", codec_zlib, -1);
  ok &= run_compress (c, &other, "compress zstd-1", zstd_compress_cluster, 1);
  ok &= run_compress (c, &zstd, "compress zstd-3 (QEMU)", zstd_compress_cluster, 3);

  ok &= run_decompress (c, &zlib6, "inflate zlib", zlib_inflate_cluster);
#ifdef HAVE_LIBDEFLATE
  ok &= run_decompress (c, &zlib6, "inflate libdeflate",
                        libdeflate_inflate_cluster);
#endif
#ifdef HAVE_ISAL
  ok &= run_decompress (c, &zlib6, "inflate isa-l", isal_inflate_cluster);
#endif
  ok &= run_decompress (c, &zlib6, "inflate codec", codec_zlib_d);
#ifdef HAVE_ISAL
  ok &= run_decompress (c, &isal, "inflate(isal3) zlib", zlib_inflate_cluster);
#ifdef HAVE_LIBDEFLATE
  ok &= run_decompress (c, &isal, "inflate(isal3) libdefl",
                        libdeflate_inflate_cluster);
#endif
  ok &= run_decompress (c, &isal, "inflate(isal3) isa-l", isal_inflate_cluster);
  ok &= run_decompress (c, &isal, "inflate(isal3) codec", codec_zlib_d);
#endif
  ok &= run_decompress (c, &zstd, "decompress zstd", zstd_decompress_cluster);

  free_payloads (&zlib6);
  free_payloads (&other);
  free_payloads (&isal);
  free_payloads (&zstd);
  return ok;
}

int
main (int argc, char *argv[])
{
  static const char *const bin_patterns[] = {
    "/usr/lib/x86_64-linux-gnu/*.so*", "/usr/lib/*/*.so*", NULL
  };
  static const char *const text_patterns[] = {
    "/usr/include/*.h", "/usr/include/*/*.h", "/usr/include/*/*/*.h",
    "/usr/share/perl/*/*.pm", "/usr/share/perl/*/*/*.pm",
    "/usr/share/doc/*/copyright", NULL
  };
  size_t sizes[16], nsizes = 0, i, mib = 24;
  struct corpus corpora[2];
  bool ok = true;
  int opt, k;

  while ((opt = getopt (argc, argv, "c:m:w")) != -1) {
    switch (opt) {
    case 'c':
      if (nsizes < 16)
        sizes[nsizes++] = strtoul (optarg, NULL, 0);
      break;
    case 'm':
      mib = strtoul (optarg, NULL, 0);
      break;
    case 'w':
      check_window = true;
      break;
    default:
      fprintf (stderr, "usage: codec-bench [-m MIB] [-c CLUSTER_SIZE]... [-w]\n");
      exit (2);
    }
  }
  if (nsizes == 0) {
    sizes[nsizes++] = 4096;
    sizes[nsizes++] = 65536;
    sizes[nsizes++] = 2 << 20;
  }

#ifdef HAVE_LIBDEFLATE
  ld = libdeflate_alloc_decompressor ();
#endif
  load_corpus (&corpora[0], "bin", bin_patterns, mib << 20);
  load_corpus (&corpora[1], "text", text_patterns, mib << 20);
  printf ("zlib decoder %s, encoder %s; corpora: bin %zu MiB, text %zu MiB\n",
          codec_inflate_backend (), codec_deflate_backend (),
          corpora[0].len >> 20, corpora[1].len >> 20);
  printf ("%-5s %7s  %-22s %13s  %s\n",
          "data", "cluster", "operation", "speed", "size");

  for (k = 0; k < 2; ++k)
    for (i = 0; i < nsizes; ++i)
      ok &= bench_cluster_size (&corpora[k], sizes[i]);

  for (k = 0; k < 2; ++k)
    free (corpora[k].data);
  if (!ok) {
    fprintf (stderr, "codec-bench: errors (see above)\n");
    return 1;
  }
  return 0;
}
