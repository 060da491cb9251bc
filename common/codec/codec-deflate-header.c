/* Is a raw deflate stream one whose verdict the fast decoder shares
 * with zlib?
 *
 * QEMU reads zlib-type clusters with zlib, so zlib's verdict is the
 * law.  ISA-L's inflate agrees with it on every symbol-level question
 * (invalid literal/length 286-287, distance codes 30-31, distances
 * before the start, truncation: see test-deflate-quirks), but builds
 * decode tables from any code lengths, while zlib (inflate.c, inftrees.c)
 * refuses a dynamic block whose header has
 *   - more than 286 literal/length or 30 distance codes,
 *   - an incomplete or over-subscribed code-length code,
 *   - a "repeat previous" with no previous length, or a repeat running
 *     past the end of the lengths,
 *   - no end-of-block code,
 *   - an over-subscribed or incomplete literal/length or distance code
 *     (except a distance code of a single one-bit codeword).
 *
 * Headers live at the start of each block and finding the later ones
 * means decoding everything before them, so this only accepts a stream
 * that is a single final block - which is what zlib and ISA-L write for
 * clusters of up to 64 KiB, nearly always - with a header zlib accepts.
 * Everything else goes straight to zlib.  (RFC 1951 section 3.2.)
 */

#include <config.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "byte-order.h"
#include "codec-internal.h"

#define MAX_CODE_BITS 15
#define PRECODE_SYMS 19
#define MAX_LITLEN_SENT 286
#define MAX_DIST_SENT 30

/* Little-endian bit reader: codes are packed from the least
 * significant bit of each byte (RFC 1951 3.1.1).
 */
struct bit_reader {
  const unsigned char *p, *end;
  uint64_t buf;
  unsigned nbits;
};

/* Ensure N <= 32 bits are buffered; false past the end of input. */
static inline bool
need_bits (struct bit_reader *r, unsigned n)
{
  if (r->nbits >= n)
    return true;
  if (r->end - r->p >= 8) {     /* whole bytes, as many as fit */
    unsigned bytes = (63 - r->nbits) / 8;
    uint64_t word = load_le64 (r->p) & ((UINT64_C (1) << (8 * bytes)) - 1);

    r->buf |= word << r->nbits;
    r->p += bytes;
    r->nbits += 8 * bytes;
    return true;
  }
  while (r->nbits < n) {
    if (r->p == r->end)
      return false;
    r->buf |= (uint64_t) *r->p++ << r->nbits;
    r->nbits += 8;
  }
  return true;
}

static inline unsigned
take_bits (struct bit_reader *r, unsigned n)
{
  unsigned v = r->buf & ((UINT64_C (1) << n) - 1);

  r->buf >>= n;
  r->nbits -= n;
  return v;
}

/* Next N bits; -1 past the end of input. */
static int
get_bits (struct bit_reader *r, unsigned n)
{
  return need_bits (r, n) ? (int) take_bits (r, n) : -1;
}

/* Codespace left over by LENS[0..n): 0 for a complete code, > 0 for an
 * incomplete one, < 0 for an over-subscribed one.  *USED counts the
 * symbols that have a codeword.
 */
static int32_t
codespace_left (const uint8_t *lens, unsigned n, unsigned *used)
{
  uint16_t count[MAX_CODE_BITS + 1] = { 0 };
  int32_t left = 1;
  unsigned i;

  for (i = 0; i < n; ++i)
    count[lens[i]]++;
  *used = n - count[0];
  for (i = 1; i <= MAX_CODE_BITS; ++i) {
    left = (left << 1) - count[i];
    if (left < 0)
      return left;
  }
  return left;
}

/* The code-length code has codewords of at most 7 bits; a complete one
 * fills a 128-entry table indexed by the next 7 input bits.  Codewords
 * are sent most significant bit first, so each is entered bit-reversed.
 */
#define PRECODE_BITS 7

struct precode_entry {
  uint8_t symbol, len;
};

static void
build_precode_table (struct precode_entry *table, const uint8_t *lens)
{
  uint16_t count[PRECODE_BITS + 1] = { 0 }, next[PRECODE_BITS + 1];
  unsigned sym, len, code = 0;

  for (sym = 0; sym < PRECODE_SYMS; ++sym)
    count[lens[sym]]++;
  count[0] = 0;
  for (len = 1; len <= PRECODE_BITS; ++len) {
    code = (code + count[len - 1]) << 1;
    next[len] = code;
  }
  for (sym = 0; sym < PRECODE_SYMS; ++sym) {
    unsigned rev = 0, i, c;

    if ((len = lens[sym]) == 0)
      continue;
    c = next[len]++;
    for (i = 0; i < len; ++i)
      rev |= ((c >> i) & 1) << (len - 1 - i);
    for (; rev < (1u << PRECODE_BITS); rev += 1u << len)
      table[rev] = (struct precode_entry) { .symbol = sym, .len = len };
  }
}

/* Decode one code-length symbol; -1 past the end of input.  A codeword
 * near the end may need fewer than 7 bits, so look at what is there.
 */
static inline int
decode_precode (struct bit_reader *r, const struct precode_entry *table)
{
  struct precode_entry e;

  need_bits (r, PRECODE_BITS);
  e = table[r->buf & ((1u << PRECODE_BITS) - 1)];
  if (e.len > r->nbits)
    return -1;
  take_bits (r, e.len);
  return e.symbol;
}

/* Read the code lengths of a dynamic block as zlib would; false if zlib
 * would refuse them.
 */
static bool
read_code_lengths (struct bit_reader *r, uint8_t *lens,
                   unsigned nlit, unsigned ndist)
{
  static const uint8_t order[PRECODE_SYMS] = {
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15
  };
  uint8_t pre_lens[PRECODE_SYMS] = { 0 };
  struct precode_entry table[1 << PRECODE_BITS];
  unsigned ncode, i, used;
  int v;

  if ((v = get_bits (r, 4)) == -1)
    return false;
  ncode = v + 4;
  for (i = 0; i < ncode; ++i) {
    if ((v = get_bits (r, 3)) == -1)
      return false;
    pre_lens[order[i]] = v;
  }
  if (codespace_left (pre_lens, PRECODE_SYMS, &used) != 0)
    return false;
  build_precode_table (table, pre_lens);

  i = 0;
  while (i < nlit + ndist) {
    int sym = decode_precode (r, table);
    unsigned repeat;
    uint8_t value = 0;

    if (sym < 0)
      return false;
    if (sym < 16) {
      lens[i++] = sym;
      continue;
    }
    if (sym == 16) {
      if (i == 0 || (v = get_bits (r, 2)) == -1)
        return false;
      value = lens[i - 1];
      repeat = 3 + v;
    }
    else if (sym == 17) {
      if ((v = get_bits (r, 3)) == -1)
        return false;
      repeat = 3 + v;
    }
    else {
      if ((v = get_bits (r, 7)) == -1)
        return false;
      repeat = 11 + v;
    }
    if (i + repeat > nlit + ndist)
      return false;
    memset (&lens[i], value, repeat);
    i += repeat;
  }
  return true;
}

/* A dynamic block's header after BTYPE, checked as zlib checks it;
 * LENS gets the literal/length lengths, then the distance lengths.
 */
static bool
read_dynamic_header (struct bit_reader *r, uint8_t *lens,
                     unsigned *nlit_ret, unsigned *ndist_ret)
{
  unsigned nlit, ndist, used;
  int32_t left;
  int v;

  if ((v = get_bits (r, 5)) == -1)
    return false;
  nlit = v + 257;
  if ((v = get_bits (r, 5)) == -1)
    return false;
  ndist = v + 1;
  if (nlit > MAX_LITLEN_SENT || ndist > MAX_DIST_SENT)
    return false;
  if (!read_code_lengths (r, lens, nlit, ndist))
    return false;
  if (lens[256] == 0)
    return false;
  if (codespace_left (lens, nlit, &used) != 0)
    return false;
  left = codespace_left (lens + nlit, ndist, &used);
  *nlit_ret = nlit;
  *ndist_ret = ndist;
  /* One distance codeword of one bit leaves half the space unused;
   * both zlib and ISA-L accept it and reject the unused codeword.
   */
  return left == 0 || (used == 1 && left == 1 << (MAX_CODE_BITS - 1));
}

bool
deflate_is_single_plain_block (const void *in, size_t in_len)
{
  struct bit_reader r = { .p = in, .end = (const unsigned char *) in + in_len };
  uint8_t lens[MAX_LITLEN_SENT + MAX_DIST_SENT];
  unsigned nlit, ndist;
  int final, type;

  final = get_bits (&r, 1);
  type = get_bits (&r, 2);
  if (final != 1 || type == -1)
    return false;
  if (type == 0 || type == 1)   /* stored or fixed codes: nothing to check */
    return true;
  if (type != 2)
    return false;
  return read_dynamic_header (&r, lens, &nlit, &ndist);
}

/* Multi-block streams (2 MiB clusters; some of 64 KiB).  The header of
 * every block must pass, so the blocks before the last are walked -
 * their symbols decoded without producing output - to find where the
 * next begins.  Anything unusual on the way (an invalid symbol or
 * distance, output past the cluster, the end of input) ends the walk
 * with "no": zlib then decodes and gives the verdict.  RFC 1951 3.2.5
 * (length and distance codes), 3.2.6 (fixed codes).
 */

/* Codewords of up to FAST_BITS bits are found by one lookup of the next
 * FAST_BITS input bits; longer ones (rare) bit by bit.
 */
#define FAST_BITS 12

struct huffman {
  struct { uint16_t symbol; uint8_t len; } fast[1 << FAST_BITS];
  uint16_t count[MAX_CODE_BITS + 1];
  uint16_t sorted[MAX_LITLEN_SENT + 2];   /* by length, then symbol */
};

static void
build_huffman (struct huffman *h, const uint8_t *lens, unsigned n)
{
  uint16_t offs[MAX_CODE_BITS + 2], next[MAX_CODE_BITS + 1];
  unsigned sym, len, code = 0;

  memset (h->count, 0, sizeof h->count);
  memset (h->fast, 0, sizeof h->fast);
  for (sym = 0; sym < n; ++sym)
    h->count[lens[sym]]++;
  h->count[0] = 0;
  offs[1] = 0;
  for (len = 1; len <= MAX_CODE_BITS; ++len) {
    offs[len + 1] = offs[len] + h->count[len];
    code = (code + h->count[len - 1]) << 1;
    next[len] = code;
  }
  for (sym = 0; sym < n; ++sym) {
    unsigned rev = 0, i, c;

    if ((len = lens[sym]) == 0)
      continue;
    h->sorted[offs[len]++] = sym;
    c = next[len]++;
    if (len > FAST_BITS)
      continue;
    for (i = 0; i < len; ++i)
      rev |= ((c >> i) & 1) << (len - 1 - i);
    for (; rev < (1u << FAST_BITS); rev += 1u << len) {
      h->fast[rev].symbol = sym;
      h->fast[rev].len = len;
    }
  }
}

/* The next symbol; -1 for an unused codeword or the end of input. */
static inline int
decode_symbol (struct bit_reader *r, const struct huffman *h)
{
  unsigned code = 0, first = 0, index = 0, len;

  need_bits (r, MAX_CODE_BITS);
  len = h->fast[r->buf & ((1u << FAST_BITS) - 1)].len;
  if (len && len <= r->nbits) {
    int sym = h->fast[r->buf & ((1u << FAST_BITS) - 1)].symbol;

    take_bits (r, len);
    return sym;
  }
  /* Canonical codes, most significant bit first. */
  for (len = 1; len <= MAX_CODE_BITS; ++len) {
    int bit = get_bits (r, 1);

    if (bit == -1)
      return -1;
    code |= bit;
    if (code - first < h->count[len])
      return h->sorted[index + code - first];
    index += h->count[len];
    first = (first + h->count[len]) << 1;
    code <<= 1;
  }
  return -1;
}

static const uint16_t length_base[29] = {
  3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
  35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258
};
static const uint8_t length_extra[29] = {
  0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
  3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0
};
static const uint16_t dist_base[30] = {
  1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
  257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
  8193, 12289, 16385, 24577
};
static const uint8_t dist_extra[30] = {
  0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
  7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13
};

/* One symbol from a bit buffer holding at least MAX_CODE_BITS bits
 * (the fast walk below): the table, else the canonical code bit by bit.
 */
static inline int
lookup_symbol (uint64_t *buf, unsigned *nbits, const struct huffman *h)
{
  unsigned i = *buf & ((1u << FAST_BITS) - 1), len = h->fast[i].len;
  unsigned code = 0, first = 0, index = 0;

  if (len) {
    *buf >>= len;
    *nbits -= len;
    return h->fast[i].symbol;
  }
  for (len = 1; len <= MAX_CODE_BITS; ++len) {
    code |= *buf & 1;
    *buf >>= 1;
    if (code - first < h->count[len]) {
      *nbits -= len;
      return h->sorted[index + code - first];
    }
    index += h->count[len];
    first = (first + h->count[len]) << 1;
    code <<= 1;
  }
  return -1;
}

/* One literal or length/distance pair, read carefully near the end of
 * input.  1 = go on, 0 = end of block, -1 = stop the walk.
 */
static int
walk_one (struct bit_reader *r, const struct huffman *lit,
          const struct huffman *dist, size_t *out, size_t out_len)
{
  int sym = decode_symbol (r, lit), v;
  size_t before = *out;

  if (sym < 0)
    return -1;
  if (sym < 256)
    return ++*out > out_len ? -1 : 1;
  if (sym == 256)
    return 0;
  sym -= 257;
  if (sym >= 29 || (v = get_bits (r, length_extra[sym])) == -1)
    return -1;
  *out += length_base[sym] + v;
  sym = decode_symbol (r, dist);
  if (sym < 0 || sym >= 30 || (v = get_bits (r, dist_extra[sym])) == -1)
    return -1;
  if ((size_t) dist_base[sym] + v > before || *out > out_len)
    return -1;                  /* before the start, or too long */
  return 1;
}

/* Walk one block's symbols up to its end-of-block; *out counts the
 * bytes it produces, at most out_len.  While 8 bytes of input remain,
 * the bit buffer is refilled to 56 or more bits once per symbol, enough
 * for a length (15 + 5 bits) and a distance (15 + 13), and kept in
 * locals; the rest goes through walk_one.
 */
static bool
walk_codes (struct bit_reader *r, const struct huffman *lit,
            const struct huffman *dist, size_t *out, size_t out_len)
{
  uint64_t buf = r->buf;
  unsigned nbits = r->nbits;
  const unsigned char *p = r->p;
  size_t o = *out;
  bool ok = false;

  while (r->end - p >= 8) {
    int sym;
    size_t before = o;
    unsigned e, d;

    /* Bits above nbits may hold the start of the next byte; the next
     * refill ORs in the same bits, and they are masked off below.
     */
    buf |= load_le64 (p) << nbits;
    p += (63 - nbits) >> 3;
    nbits |= 56;

    sym = lookup_symbol (&buf, &nbits, lit);
    if (sym < 256) {
      if (sym < 0 || ++o > out_len)
        goto out;
      continue;
    }
    if (sym == 256) {
      ok = true;
      goto out;
    }
    sym -= 257;
    if (sym >= 29)
      goto out;
    e = length_extra[sym];
    o += length_base[sym] + (buf & ((1u << e) - 1));
    buf >>= e;
    nbits -= e;
    sym = lookup_symbol (&buf, &nbits, dist);
    if (sym < 0 || sym >= 30)
      goto out;
    e = dist_extra[sym];
    d = dist_base[sym] + (buf & ((1u << e) - 1));
    buf >>= e;
    nbits -= e;
    if (d > before || o > out_len)
      goto out;                 /* before the start, or too long */
  }
  r->buf = buf & ((UINT64_C (1) << nbits) - 1);
  r->nbits = nbits;
  r->p = p;
  *out = o;
  for (;;) {
    int v = walk_one (r, lit, dist, out, out_len);

    if (v <= 0)
      return v == 0;
  }

 out:
  r->buf = buf & ((UINT64_C (1) << nbits) - 1);
  r->nbits = nbits;
  r->p = p;
  *out = o;
  return ok;
}

/* A stored block (after BTYPE): LEN, its complement, LEN bytes. */
static bool
walk_stored (struct bit_reader *r, size_t *out, size_t out_len)
{
  int len, nlen;

  take_bits (r, r->nbits % 8);  /* to the byte boundary */
  if ((len = get_bits (r, 16)) == -1 || (nlen = get_bits (r, 16)) == -1 ||
      (len ^ nlen) != 0xffff)
    return false;
  *out += len;
  if (*out > out_len)
    return false;
  for (; len > 0 && r->nbits >= 8; --len)
    take_bits (r, 8);
  if (r->end - r->p < len)
    return false;
  r->p += len;
  return true;
}

static void
fixed_lengths (uint8_t *lens)
{
  memset (lens, 8, 144);
  memset (lens + 144, 9, 256 - 144);
  memset (lens + 256, 7, 280 - 256);
  memset (lens + 280, 8, 288 - 280);
  memset (lens + 288, 5, 32);
}

bool
deflate_headers_plain (const void *in, size_t in_len, size_t out_len)
{
  struct bit_reader r = { .p = in, .end = (const unsigned char *) in + in_len };
  uint8_t lens[288 + 32];
  struct huffman lit, dist;     /* ~10 KiB of stack */
  size_t out = 0;
  int final;

  if (deflate_is_single_plain_block (in, in_len))
    return true;
  while ((final = get_bits (&r, 1)) == 0) {
    int type = get_bits (&r, 2);
    unsigned nlit = 288, ndist = 32;

    if (type == 0) {
      if (!walk_stored (&r, &out, out_len))
        return false;
      continue;
    }
    if (type == 1)
      fixed_lengths (lens);
    else if (type != 2 || !read_dynamic_header (&r, lens, &nlit, &ndist))
      return false;
    build_huffman (&lit, lens, nlit);
    build_huffman (&dist, lens + nlit, ndist);
    if (!walk_codes (&r, &lit, &dist, &out, out_len))
      return false;
  }
  /* The final block: its header is the last to check. */
  if (final == 1) {
    int type = get_bits (&r, 2);
    unsigned nlit, ndist;

    return type == 0 || type == 1 ||
      (type == 2 && read_dynamic_header (&r, lens, &nlit, &ndist));
  }
  return false;
}
