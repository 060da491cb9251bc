/* Hand-built deflate streams at the edges of RFC 1951, decoded by
 * codec_decompress and by zlib driven as QEMU 7.2 drives it.  The two
 * must agree on every stream: a fast decoder that accepts what zlib
 * rejects would make us read data from a hostile image where QEMU
 * reports EIO.
 *
 * The fast decoders are also run on their own and their verdicts
 * printed ("ok" = decoded to exactly the cluster), with the header
 * check that decides whether ISA-L may try ("plain"): ISA-L must never
 * say ok where QEMU says EIO on a plain stream.  libdeflate's column
 * shows why it is not used (README.md).
 */

#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#ifdef HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include "codec.h"
#include "codec-internal.h"
#include "diag.h"

static unsigned failures;

static void
quiet (const char *fs, va_list args)
{
}

/* LSB-first bit writer (RFC 1951 3.1.1). */
struct bits {
  unsigned char buf[1 << 16];
  size_t len;
  uint32_t acc;
  unsigned n;
};

static void
put_bits (struct bits *w, uint32_t v, unsigned nbits)
{
  unsigned i;

  for (i = 0; i < nbits; ++i) {
    w->acc |= ((v >> i) & 1) << w->n;
    if (++w->n == 8) {
      assert (w->len < sizeof w->buf);
      w->buf[w->len++] = w->acc;
      w->acc = 0;
      w->n = 0;
    }
  }
}

/* Huffman codes are sent most significant bit first. */
static void
put_code (struct bits *w, uint32_t code, unsigned len)
{
  while (len--)
    put_bits (w, code >> len, 1);
}

static void
finish (struct bits *w)
{
  if (w->n)
    put_bits (w, 0, 8 - w->n);
}

/* Canonical codes from lengths (RFC 1951 3.2.2). */
static void
canonical_codes (const uint8_t *lens, unsigned n, uint32_t *codes)
{
  unsigned bl_count[16] = { 0 }, next[16], i, code = 0;

  for (i = 0; i < n; ++i)
    bl_count[lens[i]]++;
  bl_count[0] = 0;
  for (i = 1; i < 16; ++i) {
    code = (code + bl_count[i - 1]) << 1;
    next[i] = code;
  }
  for (i = 0; i < n; ++i)
    codes[i] = lens[i] ? next[lens[i]]++ : 0;
}

/* A block's codes. */
struct codes {
  uint8_t lit_len[288], dist_len[32];
  uint32_t lit[288], dist[32];
};

static void
fixed_codes (struct codes *c)
{
  unsigned i;

  for (i = 0; i < 288; ++i)
    c->lit_len[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
  for (i = 0; i < 32; ++i)
    c->dist_len[i] = 5;
  canonical_codes (c->lit_len, 288, c->lit);
  canonical_codes (c->dist_len, 32, c->dist);
}

static void
put_lit (struct bits *w, const struct codes *c, unsigned sym)
{
  put_code (w, c->lit[sym], c->lit_len[sym]);
}

/* Code-length alphabet order (RFC 1951 3.2.7). */
static const uint8_t clen_order[19] = {
  16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15
};

/* A complete code-length code: symbols 0-12 get 4 bits, 13-18 5 bits. */
static void
precode (uint8_t *lens, uint32_t *codes)
{
  unsigned i;

  for (i = 0; i < 19; ++i)
    lens[i] = i <= 12 ? 4 : 5;
  canonical_codes (lens, 19, codes);
}

/* Dynamic block header.  NLIT/NDIST are the counts sent, which may be
 * out of range; LENS holds NLIT + NDIST lengths, sent one symbol each
 * unless SEQ (code-length symbols, with extra bits, ended by -1) is
 * given to send instead.
 */
static void
dynamic_header (struct bits *w, bool final, unsigned nlit, unsigned ndist,
                const uint8_t *lens, const int *seq, struct codes *c)
{
  uint8_t pl[19];
  uint32_t pc[19];
  unsigned i;

  put_bits (w, final, 1);
  put_bits (w, 2, 2);
  put_bits (w, nlit - 257, 5);
  put_bits (w, ndist - 1, 5);
  put_bits (w, 19 - 4, 4);
  precode (pl, pc);
  for (i = 0; i < 19; ++i)
    put_bits (w, pl[clen_order[i]], 3);
  if (seq) {
    for (i = 0; seq[i] >= 0; i += 2) {
      put_code (w, pc[seq[i]], pl[seq[i]]);
      if (seq[i] == 16) put_bits (w, seq[i + 1], 2);
      if (seq[i] == 17) put_bits (w, seq[i + 1], 3);
      if (seq[i] == 18) put_bits (w, seq[i + 1], 7);
    }
  }
  else {
    for (i = 0; i < nlit + ndist; ++i)
      put_code (w, pc[lens[i]], pl[lens[i]]);
  }
  memset (c, 0, sizeof *c);
  memcpy (c->lit_len, lens, nlit < 288 ? nlit : 288);
  memcpy (c->dist_len, lens + nlit, ndist < 32 ? ndist : 32);
  canonical_codes (c->lit_len, 288, c->lit);
  canonical_codes (c->dist_len, 32, c->dist);
}

/* Fixed-code block: 'a', then N copies via length 3 / distance 1
 * matches, then whatever the caller adds.
 */
static size_t
fixed_run (struct bits *w, const struct codes *c, size_t n)
{
  size_t out = 1;

  put_lit (w, c, 'a');
  for (; n >= 3; n -= 3, out += 3) {
    put_lit (w, c, 257);                      /* length 3 */
    put_code (w, c->dist[0], c->dist_len[0]); /* distance 1 */
  }
  return out;
}

struct verdicts {
  int qemu, ours;
  bool plain;
#ifdef HAVE_LIBDEFLATE
  int libdeflate;
#endif
#ifdef HAVE_ISAL
  int isal;
#endif
};

#ifdef HAVE_LIBDEFLATE
static struct libdeflate_decompressor *ld;

/* Succeeds only on a stream that ends at exactly OUT_LEN bytes. */
static int
libdeflate_inflate (const void *in, size_t in_len, void *out, size_t out_len)
{
  return libdeflate_deflate_decompress (ld, in, in_len, out, out_len, NULL)
    == LIBDEFLATE_SUCCESS ? 0 : -1;
}
#endif

static unsigned char out1[1 << 17], out2[1 << 17];

/* QEMU 7.2 qcow2_zlib_decompress. */
static int
qemu_inflate (const void *in, size_t in_len, void *out, size_t out_len)
{
  z_stream s;
  int r;

  memset (&s, 0, sizeof s);
  assert (inflateInit2 (&s, -12) == Z_OK);
  s.next_in = (Bytef *) in;
  s.avail_in = in_len;
  s.next_out = out;
  s.avail_out = out_len;
  r = inflate (&s, Z_FINISH);
  r = (r == Z_STREAM_END || r == Z_BUF_ERROR) && s.avail_out == 0 ? 0 : -1;
  inflateEnd (&s);
  return r;
}

/* Decode W's stream followed by PAD zero bytes (what a sector-rounded
 * read adds) into OUT_LEN bytes every way.
 */
static void
check_padded (const char *name, struct bits *w, size_t pad, size_t out_len)
{
  struct verdicts v;

  finish (w);
  memset (w->buf + w->len, 0, pad);
  w->len += pad;
  assert (out_len <= sizeof out1);

  v.qemu = qemu_inflate (w->buf, w->len, out1, out_len);
  v.ours = codec_decompress (CODEC_ZLIB, w->buf, w->len, out2, out_len);
  v.plain = deflate_is_single_plain_block (w->buf, w->len);
  printf ("%-34s qemu %-4s ours %-4s %-6s", name,
          v.qemu ? "EIO" : "ok", v.ours ? "EIO" : "ok",
          v.plain ? "plain" : "");
#ifdef HAVE_ISAL
  v.isal = isal_inflate_cluster (w->buf, w->len, out2, out_len);
  printf (" isa-l %-3s", v.isal ? "-" : "ok");
  if (v.plain && v.isal == 0 && v.qemu != 0) {
    printf ("\nFAIL: %s: plain, and ISA-L accepts what QEMU rejects", name);
    failures++;
  }
#endif
#ifdef HAVE_LIBDEFLATE
  v.libdeflate = libdeflate_inflate (w->buf, w->len, out2, out_len);
  printf (" libdeflate %-3s", v.libdeflate ? "-" : "ok");
#endif
  putchar ('\n');

  if (v.ours != v.qemu) {
    printf ("FAIL: %s: we say %s, QEMU says %s\n", name,
            v.ours ? "EIO" : "ok", v.qemu ? "EIO" : "ok");
    failures++;
  }
  else if (v.ours == 0) {
    codec_decompress (CODEC_ZLIB, w->buf, w->len, out2, out_len);
    if (memcmp (out1, out2, out_len) != 0) {
      printf ("FAIL: %s: data differs from QEMU's\n", name);
      failures++;
    }
  }
  memset (w, 0, sizeof *w);
}

static void
check (const char *name, struct bits *w, size_t out_len)
{
  check_padded (name, w, 64, out_len);
}

static struct bits w;

int
main (void)
{
  struct codes fixed, c;
  uint8_t lens[320];
  size_t n;

  diag_set_handlers (quiet, NULL);
  fixed_codes (&fixed);
#ifdef HAVE_LIBDEFLATE
  ld = libdeflate_alloc_decompressor ();
  assert (ld);
#endif

  /* Sanity: a plain fixed block, final. */
  put_bits (&w, 1, 1); put_bits (&w, 1, 2);
  n = fixed_run (&w, &fixed, 300);
  put_lit (&w, &fixed, 256);
  check ("fixed block", &w, n);

  /* Fixed code, litlen symbols 286 and 287: invalid in RFC 1951. */
  put_bits (&w, 1, 1); put_bits (&w, 1, 2);
  n = fixed_run (&w, &fixed, 0);
  put_lit (&w, &fixed, 286);
  put_code (&w, fixed.dist[0], 5);
  put_lit (&w, &fixed, 256);
  check ("fixed litlen 286", &w, n + 258);

  put_bits (&w, 1, 1); put_bits (&w, 1, 2);
  n = fixed_run (&w, &fixed, 0);
  put_lit (&w, &fixed, 287);
  put_code (&w, fixed.dist[0], 5);
  put_lit (&w, &fixed, 256);
  check ("fixed litlen 287", &w, n + 258);

  /* Fixed code, distance symbols 30 and 31 after 24577+ bytes. */
  put_bits (&w, 1, 1); put_bits (&w, 1, 2);
  n = fixed_run (&w, &fixed, 24600);
  put_lit (&w, &fixed, 257);
  put_code (&w, fixed.dist[30], 5);
  put_bits (&w, 0, 13);
  put_lit (&w, &fixed, 256);
  check ("fixed distance 30", &w, n + 3);

  put_bits (&w, 1, 1); put_bits (&w, 1, 2);
  n = fixed_run (&w, &fixed, 24600);
  put_lit (&w, &fixed, 257);
  put_code (&w, fixed.dist[31], 5);
  put_bits (&w, 0, 13);
  put_lit (&w, &fixed, 256);
  check ("fixed distance 31", &w, n + 3);

  /* Dynamic: 'a' and EOB of one bit each, distance 0 of one bit. */
#define SIMPLE_LENS(nlit, ndist)                            \
  memset (lens, 0, sizeof lens);                            \
  lens['a'] = 1; lens[256] = 1; lens[(nlit)] = 1

  SIMPLE_LENS (257, 1);
  dynamic_header (&w, true, 257, 1, lens, NULL, &c);
  put_lit (&w, &c, 'a'); put_lit (&w, &c, 'a'); put_lit (&w, &c, 256);
  check ("dynamic, sane", &w, 2);

  SIMPLE_LENS (287, 1);
  dynamic_header (&w, true, 287, 1, lens, NULL, &c);
  put_lit (&w, &c, 'a'); put_lit (&w, &c, 'a'); put_lit (&w, &c, 256);
  check ("dynamic HLIT 287", &w, 2);

  SIMPLE_LENS (288, 1);
  dynamic_header (&w, true, 288, 1, lens, NULL, &c);
  put_lit (&w, &c, 'a'); put_lit (&w, &c, 'a'); put_lit (&w, &c, 256);
  check ("dynamic HLIT 288", &w, 2);

  SIMPLE_LENS (257, 31);
  dynamic_header (&w, true, 257, 31, lens, NULL, &c);
  put_lit (&w, &c, 'a'); put_lit (&w, &c, 'a'); put_lit (&w, &c, 256);
  check ("dynamic HDIST 31", &w, 2);

  SIMPLE_LENS (257, 32);
  dynamic_header (&w, true, 257, 32, lens, NULL, &c);
  put_lit (&w, &c, 'a'); put_lit (&w, &c, 'a'); put_lit (&w, &c, 256);
  check ("dynamic HDIST 32", &w, 2);

  /* Empty distance code, then a match that needs it. */
  memset (lens, 0, sizeof lens);
  lens['a'] = 1; lens[256] = 2; lens[257] = 2;
  dynamic_header (&w, true, 258, 1, lens, NULL, &c);
  put_lit (&w, &c, 'a'); put_lit (&w, &c, 257); put_bits (&w, 0, 1);
  put_lit (&w, &c, 256);
  check ("dynamic, empty distance code used", &w, 4);

  /* One distance code of one bit ('0'): allowed; sending '1' is not. */
  lens[258 + 0] = 1;
  dynamic_header (&w, true, 258, 1, lens, NULL, &c);
  put_lit (&w, &c, 'a'); put_lit (&w, &c, 257); put_bits (&w, 0, 1);
  put_lit (&w, &c, 256);
  check ("dynamic, single distance codeword", &w, 4);

  dynamic_header (&w, true, 258, 1, lens, NULL, &c);
  put_lit (&w, &c, 'a'); put_lit (&w, &c, 257); put_bits (&w, 1, 1);
  put_lit (&w, &c, 256);
  check ("dynamic, unused distance codeword", &w, 4);

  /* Incomplete distance code with longer codes: two of 2 bits. */
  lens[258 + 0] = 2; lens[258 + 1] = 2;
  dynamic_header (&w, true, 258, 2, lens, NULL, &c);
  put_lit (&w, &c, 'a'); put_lit (&w, &c, 257);
  put_code (&w, c.dist[0], 2); put_lit (&w, &c, 256);
  check ("dynamic, incomplete distance code", &w, 4);

  /* Over-subscribed distance code: three of 1 bit. */
  lens[258 + 0] = 1; lens[258 + 1] = 1; lens[258 + 2] = 1;
  dynamic_header (&w, true, 258, 3, lens, NULL, &c);
  put_lit (&w, &c, 'a'); put_lit (&w, &c, 257);
  put_bits (&w, 0, 1); put_lit (&w, &c, 256);
  check ("dynamic, oversubscribed distances", &w, 4);

  /* Incomplete literal/length code: three codes of 2 bits. */
  memset (lens, 0, sizeof lens);
  lens['a'] = 2; lens[256] = 2; lens[257] = 2; lens[258] = 1;
  dynamic_header (&w, true, 258, 1, lens, NULL, &c);
  put_lit (&w, &c, 'a'); put_lit (&w, &c, 'a'); put_lit (&w, &c, 256);
  check ("dynamic, incomplete litlen code", &w, 2);

  /* A block whose only code is end-of-block (one bit), then data. */
  memset (lens, 0, sizeof lens);
  lens[256] = 1; lens[257] = 1;
  dynamic_header (&w, false, 257, 1, lens, NULL, &c);
  put_lit (&w, &c, 256);
  put_bits (&w, 1, 1); put_bits (&w, 1, 2);
  n = fixed_run (&w, &fixed, 30);
  put_lit (&w, &fixed, 256);
  check ("dynamic, only end-of-block", &w, n);

  /* Distance farther back than the data so far. */
  put_bits (&w, 1, 1); put_bits (&w, 1, 2);
  n = fixed_run (&w, &fixed, 30);
  put_lit (&w, &fixed, 257);
  put_code (&w, fixed.dist[10], 5);           /* 33.. */
  put_bits (&w, 0, 4);
  put_lit (&w, &fixed, 256);
  check ("distance before the start", &w, n + 3);

  /* Distance beyond 4 KiB but within the cluster: QEMU reads it. */
  put_bits (&w, 1, 1); put_bits (&w, 1, 2);
  n = fixed_run (&w, &fixed, 9000);
  put_lit (&w, &fixed, 257);
  put_code (&w, fixed.dist[26], 5);           /* 8193.. */
  put_bits (&w, 0, 12);
  put_lit (&w, &fixed, 256);
  check ("distance 8193 (past the window)", &w, n + 3);

  /* Code lengths: a repeat running past HLIT + HDIST. */
  {
    /* 97 zeroes, '1' for 'a', 158 zeroes, '1' for EOB, then "repeat
     * previous 3 times" where only the one distance length remains.
     */
    static const int seq[] = {
      18, 97 - 11, 1, 0, 18, 138 - 11, 18, 20 - 11, 1, 0, 16, 0, -1
    };
    SIMPLE_LENS (257, 1);
    dynamic_header (&w, true, 257, 1, lens, seq, &c);
    put_lit (&w, &c, 'a'); put_lit (&w, &c, 'a'); put_lit (&w, &c, 256);
    check ("dynamic, length repeat overrun", &w, 2);

    /* The same lengths sent without the overrun: fine. */
    {
      static const int ok_seq[] = {
        18, 97 - 11, 1, 0, 18, 138 - 11, 18, 20 - 11, 1, 0, 1, 0, -1
      };
      dynamic_header (&w, true, 257, 1, lens, ok_seq, &c);
      put_lit (&w, &c, 'a'); put_lit (&w, &c, 'a'); put_lit (&w, &c, 256);
      check ("dynamic, length repeats", &w, 2);
    }
  }

  /* Code lengths: "repeat previous" as the very first symbol. */
  {
    static const int seq[] = { 16, 0, -1 };
    SIMPLE_LENS (257, 1);
    dynamic_header (&w, true, 257, 1, lens, seq, &c);
    check ("dynamic, repeat with no previous", &w, 2);
  }

  /* No end-of-block code in a block that fills the cluster. */
  memset (lens, 0, sizeof lens);
  lens['a'] = 1; lens['b'] = 1; lens[257] = 1;
  dynamic_header (&w, false, 257, 1, lens, NULL, &c);
  put_lit (&w, &c, 'a'); put_lit (&w, &c, 'b');
  check ("dynamic, no end-of-block code", &w, 2);

  /* Cluster full, then a bad block header: zlib reads on and fails. */
  put_bits (&w, 0, 1); put_bits (&w, 1, 2);
  n = fixed_run (&w, &fixed, 60);
  put_lit (&w, &fixed, 256);
  put_bits (&w, 1, 1); put_bits (&w, 3, 2);   /* block type 3 */
  check ("full, then block type 3", &w, n);

  /* Cluster full, then end of input in a non-final block: fine... */
  put_bits (&w, 0, 1); put_bits (&w, 1, 2);
  n = fixed_run (&w, &fixed, 60);
  check_padded ("full, block not ended", &w, 0, n);

  /* ...but zero padding reads as end-of-block, then a stored block
   * with LEN 0 NLEN 0: bad.
   */
  put_bits (&w, 0, 1); put_bits (&w, 1, 2);
  n = fixed_run (&w, &fixed, 60);
  check ("full, block not ended, zeroes", &w, n);

  /* Truncated just before the last literal's final bits. */
  put_bits (&w, 1, 1); put_bits (&w, 1, 2);
  n = fixed_run (&w, &fixed, 60);
  put_lit (&w, &fixed, 0);                    /* 8 zero bits */
  put_lit (&w, &fixed, 0);
  put_lit (&w, &fixed, 256);
  finish (&w);
  w.len -= 2;
  check_padded ("truncated in the last literals", &w, 0, n + 2);

  /* Cluster full, the next symbol is an invalid length code. */
  put_bits (&w, 1, 1); put_bits (&w, 1, 2);
  n = fixed_run (&w, &fixed, 60);
  put_lit (&w, &fixed, 286);
  put_code (&w, fixed.dist[0], 5);
  check ("full, then litlen 286", &w, n);

  /* Cluster full, the next match has distance symbol 30. */
  put_bits (&w, 1, 1); put_bits (&w, 1, 2);
  n = fixed_run (&w, &fixed, 60);
  put_lit (&w, &fixed, 257);
  put_code (&w, fixed.dist[30], 5);
  check ("full, then distance 30", &w, n);

  /* Cluster full, the next match reaches before the start. */
  put_bits (&w, 1, 1); put_bits (&w, 1, 2);
  n = fixed_run (&w, &fixed, 60);
  put_lit (&w, &fixed, 257);
  put_code (&w, fixed.dist[29], 5);
  put_bits (&w, 0, 13);
  check ("full, then distance too far", &w, n);

  /* A stored block whose length check fails. */
  put_bits (&w, 1, 1); put_bits (&w, 0, 2);
  finish (&w);
  put_bits (&w, 4, 16); put_bits (&w, 0x1234, 16);
  put_bits (&w, 0x64636261, 32);
  check ("stored, LEN != ~NLEN", &w, 4);

#ifdef HAVE_LIBDEFLATE
  libdeflate_free_decompressor (ld);
#endif
  if (failures) {
    printf ("%u streams decoded differently from QEMU\n", failures);
    return 1;
  }
  printf ("all streams decoded as QEMU decodes them\n");
  return 0;
}
