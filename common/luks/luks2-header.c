/* LUKS2 binary headers (LUKS2 spec section 2): two copies, each a
 * 4096-byte binary header followed by its JSON area, hdr_size bytes in
 * all, protected by a checksum over those bytes with the checksum field
 * zeroed.  The secondary copy follows the primary; when the primary is
 * unreadable its size is unknown, so the secondary is looked for at
 * each size the spec allows.  Of two valid copies the higher seqid wins.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "checked-overflow.h"
#include "diag.h"
#include "luks2.h"

/* The allowed values of hdr_size: 16 KiB to 4 MiB, powers of two. */
/* Does a qcow2 image start at offset?  (Its magic "QFI\xfb", qcow2.txt
 * "Header"), to point the operator at the module that reads it.
 */
static bool
qcow2_magic_at (struct io *io, uint64_t offset)
{
  unsigned char magic[4];

  return io_pread_zero_padded (io, magic, sizeof magic, offset) == 0 &&
    memcmp (magic, "QFI\xfb", sizeof magic) == 0;
}

static const uint64_t hdr_sizes[] = {
  16384, 32768, 65536, 131072, 262144, 524288, 1048576, 2097152, 4194304,
};

static bool
is_valid_hdr_size (uint64_t size)
{
  size_t i;

  for (i = 0; i < sizeof hdr_sizes / sizeof hdr_sizes[0]; ++i)
    if (size == hdr_sizes[i])
      return true;
  return false;
}

/* A copy being examined. */
struct candidate {
  uint8_t *buf;                 /* hdr_size bytes */
  uint64_t hdr_size;
  uint64_t seqid;
  char why[160];                /* why it is not valid */
};

static int __attribute__ ((format (printf, 2, 3)))
invalid (struct candidate *c, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  vsnprintf (c->why, sizeof c->why, fs, args);
  va_end (args);
  free (c->buf);
  c->buf = NULL;
  return 0;
}

static int
verify_checksum (struct candidate *c)
{
  uint8_t *field = c->buf + LUKS2_OFF_CSUM;
  uint8_t stored[LUKS2_CSUM_LEN], computed[LUKS2_CSUM_LEN];
  char alg[LUKS2_CSUM_ALG_LEN + 1];
  const struct luks_hash *hash;
  int r;

  memcpy (alg, c->buf + LUKS2_OFF_CSUM_ALG, LUKS2_CSUM_ALG_LEN);
  alg[LUKS2_CSUM_ALG_LEN] = '\0';
  hash = luks_hash_find (alg);
  if (hash == NULL)
    return invalid (c, "checksum algorithm \"%s\" is not supported", alg);

  memcpy (stored, field, sizeof stored);
  memset (field, 0, LUKS2_CSUM_LEN);
  r = gnutls_hash_fast (hash->digest, c->buf, c->hdr_size, computed);
  memcpy (field, stored, sizeof stored);
  if (r < 0)
    return invalid (c, "%s: %s", alg, gnutls_strerror (r));
  if (memcmp (stored, computed, hash->len) != 0)
    return invalid (c, "checksum mismatch");
  return 1;
}

/* Examine the copy at header_offset + rel: 1 = valid, 0 = not (c->why),
 * -1 = I/O error (reported).
 */
static int
examine (struct io *io, uint64_t header_offset, uint64_t rel, uint64_t limit,
         const uint8_t *magic, struct candidate *c)
{
  uint8_t bin[LUKS2_BIN_HDR_SIZE];
  uint64_t at;
  size_t json_size;

  memset (c, 0, sizeof *c);
  if (ADD_OVERFLOW (header_offset, rel, &at) ||
      !range_within (at, sizeof bin, limit))
    return invalid (c, "lies beyond the end of the device");
  if (io_pread (io, bin, sizeof bin, at) == -1)
    return -1;
  if (memcmp (bin, magic, LUKS_MAGIC_LEN) != 0)
    return invalid (c, "no magic");
  if (load_be16 (bin + LUKS2_OFF_VERSION) != 2)
    return invalid (c, "version %" PRIu16, load_be16 (bin + LUKS2_OFF_VERSION));
  c->hdr_size = load_be64 (bin + LUKS2_OFF_HDR_SIZE);
  c->seqid = load_be64 (bin + LUKS2_OFF_SEQID);
  if (!is_valid_hdr_size (c->hdr_size))
    return invalid (c, "invalid header size %" PRIu64, c->hdr_size);
  if (load_be64 (bin + LUKS2_OFF_HDR_OFFSET) != rel)
    return invalid (c, "header offset field %" PRIu64 " should be %" PRIu64,
                    load_be64 (bin + LUKS2_OFF_HDR_OFFSET), rel);
  if (!range_within (at, c->hdr_size, limit))
    return invalid (c, "JSON area lies beyond the end of the device");

  c->buf = malloc (c->hdr_size);
  if (c->buf == NULL) {
    diag_error ("luks: malloc: %m");
    return -1;
  }
  memcpy (c->buf, bin, sizeof bin);
  if (io_pread (io, c->buf + sizeof bin, c->hdr_size - sizeof bin,
                at + sizeof bin) == -1) {
    free (c->buf);
    c->buf = NULL;
    return -1;
  }
  if (verify_checksum (c) == 0)
    return 0;
  json_size = c->hdr_size - LUKS2_BIN_HDR_SIZE;
  if (memchr (c->buf + LUKS2_BIN_HDR_SIZE, '\0', json_size) == NULL)
    return invalid (c, "JSON area is not NUL-terminated");
  return 1;
}

/* Look for the secondary copy, given what is known of the primary. */
static int
find_secondary (struct io *io, uint64_t header_offset, uint64_t limit,
                const struct candidate *primary, bool primary_ok,
                struct candidate *c)
{
  char first_why[sizeof c->why] = "not found";
  size_t i;
  int r;

  if (primary_ok)
    return examine (io, header_offset, primary->hdr_size, limit,
                    luks2_magic_2nd, c);
  for (i = 0; i < sizeof hdr_sizes / sizeof hdr_sizes[0]; ++i) {
    r = examine (io, header_offset, hdr_sizes[i], limit, luks2_magic_2nd, c);
    if (r != 0)
      return r;
    /* Remember why a copy that had the magic was rejected. */
    if (strcmp (c->why, "no magic") != 0 &&
        strcmp (c->why, "lies beyond the end of the device") != 0 &&
        strcmp (first_why, "not found") == 0)
      strcpy (first_why, c->why);
  }
  strcpy (c->why, first_why);
  return 0;
}

static void
take (struct candidate *c, bool secondary, struct luks2_header *hdr)
{
  hdr->hdr_size = c->hdr_size;
  hdr->seqid = c->seqid;
  hdr->json_area_size = c->hdr_size - LUKS2_BIN_HDR_SIZE;
  /* Move the JSON text to the start of the buffer. */
  memmove (c->buf, c->buf + LUKS2_BIN_HDR_SIZE, hdr->json_area_size);
  hdr->json = (char *) c->buf;
  hdr->from_secondary = secondary;
  c->buf = NULL;
}

int
luks2_read_header (struct io *io, uint64_t header_offset, uint64_t limit,
                   struct luks2_header *hdr)
{
  struct candidate p, s;
  int p_ok, s_ok;

  p_ok = examine (io, header_offset, 0, limit, luks_magic, &p);
  if (p_ok == -1)
    return -1;
  s_ok = find_secondary (io, header_offset, limit, &p, p_ok, &s);
  if (s_ok == -1) {
    free (p.buf);
    return -1;
  }

  if (!p_ok && !s_ok) {
    if (strcmp (p.why, "no magic") == 0 && strcmp (s.why, "not found") == 0)
      diag_error ("%s: not a LUKS volume (no LUKS header at offset %"
                  PRIu64 ")%s", io->name, header_offset,
                  qcow2_magic_at (io, header_offset)
                  ? "; this is a qcow2 image: use the qcow2 plugin or "
                  "the qcow2 filter" : "");
    else
      diag_error ("%s: both LUKS2 headers are damaged "
                  "(primary: %s; secondary: %s)", io->name, p.why, s.why);
    errno = EINVAL;
    return -1;
  }
  if (p_ok && s_ok) {
    if (s.seqid > p.seqid) {
      diag_debug ("luks: LUKS2 secondary header is newer (seqid %" PRIu64
                  " > %" PRIu64 "); using it", s.seqid, p.seqid);
      take (&s, true, hdr);
    }
    else
      take (&p, false, hdr);
  }
  else if (p_ok) {
    diag_debug ("luks: LUKS2 secondary header is damaged (%s); "
                "using the primary", s.why);
    take (&p, false, hdr);
  }
  else {
    diag_debug ("luks: LUKS2 primary header is damaged (%s); "
                "using the secondary", p.why);
    take (&s, true, hdr);
  }
  free (p.buf);
  free (s.buf);
  return 0;
}
