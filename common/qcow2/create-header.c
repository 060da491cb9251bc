/* Creating an image, step 5: cluster 0, the header, its extensions
 * ("Header extensions") and the backing file name (see create.h).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "byte-order.h"
#include "create.h"
#include "diag.h"
#include "format.h"
#include "refcount-format.h"
#include "rounding.h"

/* QEMU writes the feature name table only when clusters are larger than
 * this (checked against qemu-img 7.2: none at 4K, present from 8K).
 */
#define FEATURE_TABLE_MIN_CLUSTER 8192

struct feature {
  uint8_t type, bit;
  const char *name;
};

/* "Feature name table": what QEMU 7.2 writes, in its order. */
static const struct feature feature_names[] = {
  { 0, 0, "dirty bit" },
  { 0, 1, "corrupt bit" },
  { 0, 2, "external data file" },
  { 0, 3, "compression type" },
  { 0, 4, "extended L2 entries" },
  { 1, 0, "lazy refcounts" },
  { 2, 0, "bitmaps" },
  { 2, 1, "raw external data" },
};
#define NR_FEATURES (sizeof feature_names / sizeof feature_names[0])
#define FEATURE_ENTRY_SIZE 48

/* Append one extension at *pos; fails if it does not fit. */
static bool
add_extension (unsigned char *c0, uint64_t cs, uint64_t *pos,
               uint32_t magic, const void *data, uint32_t len)
{
  uint64_t padded = ROUND_UP ((uint64_t) len, 8);

  if (*pos + 8 + padded > cs)
    return false;
  store_be32 (c0 + *pos, magic);
  store_be32 (c0 + *pos + 4, len);
  if (len)
    memcpy (c0 + *pos + 8, data, len);
  *pos += 8 + padded;
  return true;
}

int
create_build_header (const struct qcow2_create_options *o,
                     const struct layout *l, uint64_t size,
                     unsigned refcount_bits, unsigned char *c0)
{
  uint64_t cs = l->cluster_size, pos;
  uint64_t incompat = 0, compat = 0, autoclear = 0;
  bool ok = true;

  store_be32 (c0 + HDR_MAGIC, QCOW2_MAGIC);
  store_be32 (c0 + HDR_VERSION, o->version);
  store_be32 (c0 + HDR_CLUSTER_BITS, l->cluster_bits);
  store_be64 (c0 + HDR_SIZE, size);
  store_be32 (c0 + HDR_CRYPT_METHOD,
              o->encrypt == QCOW2_ENCRYPT_LUKS ? CRYPT_LUKS
              : o->encrypt == QCOW2_ENCRYPT_AES ? CRYPT_AES : CRYPT_NONE);
  store_be32 (c0 + HDR_L1_SIZE, l->l1_size);
  store_be64 (c0 + HDR_L1_TABLE_OFFSET, l->l1_offset);
  store_be64 (c0 + HDR_REFCOUNT_TABLE_OFFSET, l->reftable_offset);
  store_be32 (c0 + HDR_REFCOUNT_TABLE_CLUSTERS,
              reftable_clusters (l->reftable_entries, l->cluster_bits));

  if (o->version == 2)
    pos = HDR_V2_LENGTH;
  else {
    if (o->data_file)
      incompat |= INCOMPAT_DATA_FILE;
    if (o->compression_type != 0)
      incompat |= INCOMPAT_COMPRESSION;
    if (o->extended_l2)
      incompat |= INCOMPAT_EXTL2;
    if (o->lazy_refcounts)
      compat |= COMPAT_LAZY_REFCOUNTS;
    if (o->data_file_raw)
      autoclear |= AUTOCLEAR_DATA_FILE_RAW;
    store_be64 (c0 + HDR_INCOMPATIBLE, incompat);
    store_be64 (c0 + HDR_COMPATIBLE, compat);
    store_be64 (c0 + HDR_AUTOCLEAR, autoclear);
    store_be32 (c0 + HDR_REFCOUNT_ORDER, __builtin_ctz (refcount_bits));
    store_be32 (c0 + HDR_HEADER_LENGTH, HDR_V3_LENGTH);
    c0[HDR_COMPRESSION_TYPE] = o->compression_type;
    pos = HDR_V3_LENGTH;
  }

  if (o->backing_format)
    ok = ok && add_extension (c0, cs, &pos, EXT_BACKING_FORMAT,
                              o->backing_format, strlen (o->backing_format));
  if (o->data_file)
    ok = ok && add_extension (c0, cs, &pos, EXT_DATA_FILE,
                              o->data_file, strlen (o->data_file));
  if (o->encrypt == QCOW2_ENCRYPT_LUKS) {
    unsigned char ptr[16];

    store_be64 (ptr, l->crypto_offset);
    store_be64 (ptr + 8, l->crypto_length);
    ok = ok && add_extension (c0, cs, &pos, EXT_CRYPTO_HEADER, ptr, sizeof ptr);
  }
  if (o->version >= 3 && cs >= FEATURE_TABLE_MIN_CLUSTER) {
    unsigned char table[NR_FEATURES * FEATURE_ENTRY_SIZE];
    size_t i;

    memset (table, 0, sizeof table);
    for (i = 0; i < NR_FEATURES; i++) {
      unsigned char *e = table + i * FEATURE_ENTRY_SIZE;

      e[0] = feature_names[i].type;
      e[1] = feature_names[i].bit;
      memcpy (e + 2, feature_names[i].name, strlen (feature_names[i].name));
    }
    ok = ok && add_extension (c0, cs, &pos, EXT_FEATURE_TABLE,
                              table, sizeof table);
  }
  /* The end marker: eight zero bytes, already there. */
  ok = ok && pos + 8 <= cs;
  pos += 8;

  if (ok && o->backing_file) {
    size_t len = strlen (o->backing_file);

    ok = pos + len <= cs;
    if (ok) {
      store_be64 (c0 + HDR_BACKING_FILE_OFFSET, pos);
      store_be32 (c0 + HDR_BACKING_FILE_SIZE, len);
      memcpy (c0 + pos, o->backing_file, len);
    }
  }
  if (!ok) {
    diag_error ("create: the backing file and data file names do not fit "
                "in the first cluster (%" PRIu64 " bytes); use shorter "
                "names or a larger cluster size", cs);
    errno = ENOSPC;
    return -1;
  }
  return 0;
}
