/* Parse and validate the qcow2 header and its extensions ("Header",
 * "Header extensions" in qcow2.txt).  The image is hostile: every field
 * is checked here before anything else uses it.
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
#include "cleanup.h"
#include "diag.h"
#include "internal.h"
#include "io.h"
#include "rounding.h"

static int
corrupt (const char *fs, ...) __attribute__ ((format (printf, 1, 2)));

/* Report an invalid header and fail with EINVAL. */
static int
corrupt (const char *fs, ...)
{
  char msg[512];
  va_list args;

  va_start (args, fs);
  vsnprintf (msg, sizeof msg, fs, args);
  va_end (args);
  diag_error ("invalid qcow2 header: %s", msg);
  errno = EINVAL;
  return -1;
}

/* A table of count bytes at offset must be cluster-aligned and lie
 * within the file, clear of the header cluster.
 */
static int
check_table (const char *what, uint64_t offset, uint64_t bytes,
             uint64_t cluster_size, uint64_t file_size)
{
  if (!IS_ALIGNED (offset, cluster_size))
    return corrupt ("%s offset %#" PRIx64 " is not aligned to the cluster size",
                    what, offset);
  if (offset == 0)
    return corrupt ("%s overlaps the header (offset 0)", what);
  if (!range_within (offset, bytes, file_size))
    return corrupt ("%s (offset %#" PRIx64 ", %" PRIu64 " bytes) lies beyond "
                    "the end of the file (%" PRIu64 " bytes)",
                    what, offset, bytes, file_size);
  return 0;
}

static void
decode_fixed_fields (const unsigned char *b, struct qcow2_header *h)
{
  h->version = load_be32 (b + HDR_VERSION);
  h->cluster_bits = load_be32 (b + HDR_CLUSTER_BITS);
  h->size = load_be64 (b + HDR_SIZE);
  h->crypt_method = load_be32 (b + HDR_CRYPT_METHOD);
  h->l1_size = load_be32 (b + HDR_L1_SIZE);
  h->l1_table_offset = load_be64 (b + HDR_L1_TABLE_OFFSET);
  h->refcount_table_offset = load_be64 (b + HDR_REFCOUNT_TABLE_OFFSET);
  h->refcount_table_clusters = load_be32 (b + HDR_REFCOUNT_TABLE_CLUSTERS);
  h->nb_snapshots = load_be32 (b + HDR_NB_SNAPSHOTS);
  h->snapshots_offset = load_be64 (b + HDR_SNAPSHOTS_OFFSET);

  if (h->version >= 3) {
    h->incompatible = load_be64 (b + HDR_INCOMPATIBLE);
    h->compatible = load_be64 (b + HDR_COMPATIBLE);
    h->autoclear = load_be64 (b + HDR_AUTOCLEAR);
    h->refcount_order = load_be32 (b + HDR_REFCOUNT_ORDER);
    h->header_length = load_be32 (b + HDR_HEADER_LENGTH);
    h->compression_type =
      h->header_length > HDR_COMPRESSION_TYPE ? b[HDR_COMPRESSION_TYPE] : 0;
  }
  else {
    /* "Version 2" defaults. */
    h->incompatible = h->compatible = h->autoclear = 0;
    h->refcount_order = 4;
    h->header_length = HDR_V2_LENGTH;
    h->compression_type = 0;
  }
}

/* Find the name of an incompatible feature bit in the feature name
 * table, for a better message.  Returns NULL if the table lacks it.
 */
static const unsigned char *
feature_name (const unsigned char *table, uint32_t len, unsigned bit,
              int *name_len)
{
  for (uint32_t i = 0; i + 48 <= len; i += 48) {
    if (table[i] == 0 /* incompatible */ && table[i + 1] == bit) {
      *name_len = strnlen ((const char *) table + i + 2, 46);
      return table + i + 2;
    }
  }
  return NULL;
}

static int
check_incompatible_bits (const struct qcow2_header *h,
                         const unsigned char *features, uint32_t features_len)
{
  uint64_t unknown = h->incompatible & ~INCOMPAT_KNOWN;

  if (unknown == 0)
    return 0;
  for (unsigned bit = 0; bit < 64; bit++) {
    const unsigned char *name;
    int name_len;

    if (!(unknown & (UINT64_C (1) << bit)))
      continue;
    name = features ? feature_name (features, features_len, bit, &name_len) : NULL;
    if (name)
      diag_error ("qcow2 image uses unsupported incompatible feature bit %u (%.*s)",
                  bit, name_len, name);
    else
      diag_error ("qcow2 image uses unsupported incompatible feature bit %u",
                  bit);
    errno = ENOTSUP;
    return -1;
  }
  return 0;
}

static int
copy_string (const unsigned char *p, uint32_t len, const char *what,
             char **ret)
{
  if (memchr (p, 0, len) != NULL)
    return corrupt ("%s contains a NUL byte", what);
  *ret = strndup ((const char *) p, len);
  if (*ret == NULL) {
    diag_error ("strndup: %m");
    return -1;
  }
  return 0;
}

/* Walk the header extensions in [start, end) of cluster 0. */
static int
parse_extensions (const unsigned char *c0, uint32_t start, uint32_t end,
                  struct qcow2_header *h,
                  const unsigned char **features, uint32_t *features_len)
{
  uint32_t off = start;

  while (off < end) {
    uint32_t magic, len;
    const unsigned char *data;

    if (end - off < 8)
      return corrupt ("header extension at offset %" PRIu32 " is truncated",
                      off);
    magic = load_be32 (c0 + off);
    len = load_be32 (c0 + off + 4);
    if (magic == EXT_END)
      return 0;
    if (len > end - off - 8)
      return corrupt ("header extension %#" PRIx32 " (length %" PRIu32
                      ") runs past the end of the header area", magic, len);
    data = c0 + off + 8;

    switch (magic) {
    case EXT_BACKING_FORMAT:
      if (h->backing_format == NULL &&
          copy_string (data, len, "backing format name", &h->backing_format) == -1)
        return -1;
      break;
    case EXT_DATA_FILE:
      if (h->data_file == NULL &&
          copy_string (data, len, "external data file name", &h->data_file) == -1)
        return -1;
      break;
    case EXT_CRYPTO_HEADER:
      if (len != 16)
        return corrupt ("encryption header extension has length %" PRIu32
                        ", expected 16", len);
      h->crypto_offset = load_be64 (data);
      h->crypto_length = load_be64 (data + 8);
      break;
    case EXT_FEATURE_TABLE:
      *features = data;
      *features_len = len;
      break;
    case EXT_BITMAPS:
      /* Not read: the bitmaps are consistent only while autoclear bit
       * 0 is set ("Bitmaps extension"), and a writer clears it before
       * its first write (writeback.c), as the autoclear rule says.
       */
      break;
    default:
      /* Unknown extensions are kept as they are on disk. */
      break;
    }
    off += 8 + ROUND_UP (len, 8);
  }
  return 0;
}

static int
check_version_and_geometry (const struct qcow2_header *h)
{
  if (h->version != 2 && h->version != 3)
    return corrupt ("version %" PRIu32 " is not supported (only 2 and 3)",
                    h->version);
  if (h->cluster_bits < MIN_CLUSTER_BITS || h->cluster_bits > MAX_CLUSTER_BITS)
    return corrupt ("cluster_bits %" PRIu32 " is out of range (%d to %d)",
                    h->cluster_bits, MIN_CLUSTER_BITS, MAX_CLUSTER_BITS);
  if (h->version >= 3) {
    if (h->header_length < HDR_V3_MIN_LENGTH || h->header_length % 8 != 0)
      return corrupt ("header_length %" PRIu32 " is invalid (must be a "
                      "multiple of 8 and at least %d)",
                      h->header_length, HDR_V3_MIN_LENGTH);
    if (h->header_length > (UINT64_C (1) << h->cluster_bits))
      return corrupt ("header_length %" PRIu32 " is larger than a cluster",
                      h->header_length);
  }
  if (h->refcount_order > 6)
    return corrupt ("refcount_order %" PRIu32 " is out of range (0 to 6)",
                    h->refcount_order);
  return 0;
}

static int
check_features (const struct qcow2_header *h)
{
  if (h->crypt_method > CRYPT_LUKS)
    return corrupt ("crypt_method %" PRIu32 " is unknown", h->crypt_method);
  if (h->compression_type > 1)
    return corrupt ("compression_type %" PRIu32 " is unknown",
                    h->compression_type);
  if ((h->compression_type != 0) != !!(h->incompatible & INCOMPAT_COMPRESSION))
    return corrupt ("compression_type %" PRIu32 " does not agree with the "
                    "compression type feature bit", h->compression_type);
  if ((h->incompatible & INCOMPAT_EXTL2) && h->cluster_bits < 14)
    return corrupt ("extended L2 entries need clusters of at least 16 KiB "
                    "(cluster_bits is %" PRIu32 ")", h->cluster_bits);
  if (h->crypt_method == CRYPT_LUKS && h->crypto_offset == 0)
    return corrupt ("crypt_method is LUKS but the encryption header "
                    "extension is missing");
  return 0;
}

/* The L1 table must have room for the whole virtual disk ("Cluster
 * mapping": each L1 entry covers one L2 table's worth of clusters).
 */
static int
check_l1_covers_size (const struct qcow2_header *h, uint64_t file_size)
{
  uint64_t cluster_size = UINT64_C (1) << h->cluster_bits;
  unsigned entry_bits = (h->incompatible & INCOMPAT_EXTL2) ? 4 : 3;
  unsigned l2_bits = h->cluster_bits - entry_bits;
  unsigned shift = h->cluster_bits + l2_bits;
  uint64_t needed;

  /* size / 2^shift rounded up, without overflowing size + 2^shift. */
  needed = (h->size >> shift) + ((h->size & ((UINT64_C (1) << shift) - 1)) != 0);
  if (needed > h->l1_size)
    return corrupt ("L1 table is too small: l1_size %" PRIu32 " but the "
                    "virtual size %" PRIu64 " needs %" PRIu64 " entries",
                    h->l1_size, h->size, needed);
  if ((uint64_t) h->l1_size * 8 > MAX_L1_BYTES)
    return corrupt ("l1_size %" PRIu32 " is too large", h->l1_size);
  if (h->l1_size > 0 &&
      check_table ("L1 table", h->l1_table_offset, (uint64_t) h->l1_size * 8,
                   cluster_size, file_size) == -1)
    return -1;
  return 0;
}

static int
check_tables (const struct qcow2_header *h, uint64_t file_size)
{
  uint64_t cluster_size = UINT64_C (1) << h->cluster_bits;
  uint64_t reftable_bytes;

  if (check_l1_covers_size (h, file_size) == -1)
    return -1;

  if (h->refcount_table_clusters == 0)
    return corrupt ("refcount_table_clusters is 0");
  reftable_bytes = (uint64_t) h->refcount_table_clusters << h->cluster_bits;
  if (reftable_bytes > MAX_REFTABLE_BYTES)
    return corrupt ("refcount table is too large (%" PRIu32 " clusters)",
                    h->refcount_table_clusters);
  if (check_table ("refcount table", h->refcount_table_offset, reftable_bytes,
                   cluster_size, file_size) == -1)
    return -1;

  if (h->nb_snapshots > MAX_SNAPSHOTS)
    return corrupt ("nb_snapshots %" PRIu32 " is too large (at most %d)",
                    h->nb_snapshots, MAX_SNAPSHOTS);
  /* Each snapshot table entry is at least 40 bytes. */
  if (h->nb_snapshots > 0 &&
      check_table ("snapshot table", h->snapshots_offset,
                   (uint64_t) h->nb_snapshots * 40, cluster_size, file_size) == -1)
    return -1;
  return 0;
}

/* The backing file name lives in cluster 0 after the extensions. */
static int
read_backing_name (const unsigned char *c0, uint64_t cluster_size,
                   uint64_t offset, uint32_t size, struct qcow2_header *h)
{
  if (offset == 0)
    return 0;
  if (size == 0)
    return corrupt ("backing_file_offset is set but backing_file_size is 0");
  if (size > MAX_BACKING_FILE_SIZE)
    return corrupt ("backing_file_size %" PRIu32 " is too large (at most %d)",
                    size, MAX_BACKING_FILE_SIZE);
  if (offset < h->header_length || !range_within (offset, size, cluster_size))
    return corrupt ("backing file name (offset %" PRIu64 ", %" PRIu32
                    " bytes) is not inside the header cluster", offset, size);
  return copy_string (c0 + offset, size, "backing file name", &h->backing_file);
}

int
header_parse (struct io *file, uint64_t file_size, struct qcow2_header *h)
{
  unsigned char fixed[HDR_V3_LENGTH] = { 0 };
  CLEANUP_FREE unsigned char *c0 = NULL;
  const unsigned char *features = NULL;
  uint32_t features_len = 0, ext_end;
  uint64_t cluster_size, backing_offset, c0_len;
  uint32_t backing_size;

  memset (h, 0, sizeof *h);
  if (file_size < HDR_V2_LENGTH) {
    diag_error ("%s: file is too short (%" PRIu64 " bytes) to be a qcow2 image",
                file->name, file_size);
    errno = EINVAL;
    return -1;
  }
  if (io_pread (file, fixed, file_size < sizeof fixed ? file_size : sizeof fixed,
                0) == -1)
    return -1;
  if (load_be32 (fixed + HDR_MAGIC) != QCOW2_MAGIC) {
    const char *what = foreign_format (file, file_size);

    diag_error ("%s: not a qcow2 image (bad magic)%s%s", file->name,
                what ? "; " : "", what ? what : "");
    errno = EINVAL;
    return -1;
  }
  decode_fixed_fields (fixed, h);
  /* Otherwise the missing bytes would read as header_length 0. */
  if (h->version == 3 && file_size < HDR_V3_MIN_LENGTH) {
    diag_error ("%s: file is too short (%" PRIu64 " bytes) for a version 3 "
                "qcow2 header", file->name, file_size);
    errno = EINVAL;
    return -1;
  }
  if (check_version_and_geometry (h) == -1)
    return -1;
  if (h->version >= 3 && file_size < h->header_length)
    return corrupt ("header_length %" PRIu32 " runs past the end of the file",
                    h->header_length);

  /* Read the whole header cluster (or what the file has of it). */
  cluster_size = UINT64_C (1) << h->cluster_bits;
  c0_len = file_size < cluster_size ? file_size : cluster_size;
  c0 = calloc (1, cluster_size);
  if (c0 == NULL) {
    diag_error ("calloc: %m");
    return -1;
  }
  if (io_pread (file, c0, c0_len, 0) == -1)
    return -1;

  backing_offset = load_be64 (c0 + HDR_BACKING_FILE_OFFSET);
  backing_size = load_be32 (c0 + HDR_BACKING_FILE_SIZE);
  ext_end = backing_offset > h->header_length && backing_offset < c0_len
    ? backing_offset : c0_len;
  /* Extensions exist in version 2 images too, after the 72-byte header. */
  if (parse_extensions (c0, h->header_length, ext_end, h,
                        &features, &features_len) == -1)
    goto fail;
  if (check_incompatible_bits (h, features, features_len) == -1 ||
      check_features (h) == -1 ||
      check_tables (h, file_size) == -1 ||
      read_backing_name (c0, c0_len, backing_offset, backing_size, h) == -1)
    goto fail;
  return 0;

 fail:
  header_free (h);
  return -1;
}

void
header_free (struct qcow2_header *h)
{
  free (h->backing_file);
  free (h->backing_format);
  free (h->data_file);
  h->backing_file = h->backing_format = h->data_file = NULL;
}
