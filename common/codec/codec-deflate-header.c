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

bool
deflate_is_single_plain_block (const void *in, size_t in_len)
{
  struct bit_reader r = { .p = in, .end = (const unsigned char *) in + in_len };
  uint8_t lens[MAX_LITLEN_SENT + MAX_DIST_SENT];
  unsigned nlit, ndist, used;
  int final, type, v;
  int32_t left;

  final = get_bits (&r, 1);
  type = get_bits (&r, 2);
  if (final != 1 || type == -1)
    return false;
  if (type == 0 || type == 1)   /* stored or fixed codes: nothing to check */
    return true;
  if (type != 2)
    return false;

  if ((v = get_bits (&r, 5)) == -1)
    return false;
  nlit = v + 257;
  if ((v = get_bits (&r, 5)) == -1)
    return false;
  ndist = v + 1;
  if (nlit > MAX_LITLEN_SENT || ndist > MAX_DIST_SENT)
    return false;
  if (!read_code_lengths (&r, lens, nlit, ndist))
    return false;
  if (lens[256] == 0)
    return false;
  if (codespace_left (lens, nlit, &used) != 0)
    return false;
  left = codespace_left (lens + nlit, ndist, &used);
  /* One distance codeword of one bit leaves half the space unused;
   * both zlib and ISA-L accept it and reject the unused codeword.
   */
  return left == 0 || (used == 1 && left == 1 << (MAX_CODE_BITS - 1));
}
