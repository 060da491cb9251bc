/* Serialising the refcount structures ("Host cluster management" and
 * "Refcount table" in qcow2.txt), for the engine that updates them
 * (refcount.c) and for the one that makes new images (create-*.c).
 *
 * Inline: refblock_get and refblock_set run once per cluster counted.
 */
#ifndef QCOW2_REFCOUNT_FORMAT_H
#define QCOW2_REFCOUNT_FORMAT_H

#include <stdint.h>

#include "byte-order.h"

/* The refcount table and the L1 table are arrays of 64-bit offsets. */
#define TABLE_ENTRY_SIZE 8

/* log2 of the entries in one refcount block: a cluster of
 * 2^refcount_order-bit entries.
 */
static inline unsigned
refblock_bits (unsigned cluster_bits, unsigned refcount_order)
{
  return cluster_bits + 3 - refcount_order;
}

/* The largest refcount an entry of 2^refcount_order bits holds. */
static inline uint64_t
refcount_max (unsigned refcount_order)
{
  return refcount_order == 6 ? UINT64_MAX
    : (UINT64_C (1) << (1u << refcount_order)) - 1;
}

/* Entry i of a refcount block.  Entries narrower than a byte are packed
 * least significant bit first; wider ones are big-endian.
 */
static inline uint64_t
refblock_get (const unsigned char *block, uint64_t i, unsigned order)
{
  switch (order) {
  case 0: case 1: case 2: {
    unsigned bits = 1u << order;
    uint64_t bit = i * bits;
    return (block[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
  }
  case 3: return block[i];
  case 4: return load_be16 (block + i * 2);
  case 5: return load_be32 (block + i * 4);
  default: return load_be64 (block + i * 8);
  }
}

static inline void
refblock_set (unsigned char *block, uint64_t i, unsigned order,
              uint64_t value)
{
  switch (order) {
  case 0: case 1: case 2: {
    unsigned bits = 1u << order;
    uint64_t bit = i * bits;
    unsigned mask = ((1u << bits) - 1) << (bit % 8);
    block[bit / 8] = (block[bit / 8] & ~mask) | ((value << (bit % 8)) & mask);
    break;
  }
  case 3: block[i] = value; break;
  case 4: store_be16 (block + i * 2, value); break;
  case 5: store_be32 (block + i * 4, value); break;
  default: store_be64 (block + i * 8, value); break;
  }
}

/* A refcount table of `entries` entries fills this many clusters
 * (refcount_table_clusters in the header); tables are whole clusters.
 */
static inline uint64_t
reftable_clusters (uint64_t entries, unsigned cluster_bits)
{
  return (entries * TABLE_ENTRY_SIZE) >> cluster_bits;
}

/* At least `entries` entries, in whole clusters. */
static inline uint64_t
reftable_round_entries (uint64_t entries, unsigned cluster_bits)
{
  uint64_t per_cluster = (UINT64_C (1) << cluster_bits) / TABLE_ENTRY_SIZE;

  return (entries + per_cluster - 1) / per_cluster * per_cluster;
}

/* The on-disk form of a refcount table or an L1 table: n big-endian
 * offsets; flags are added to every entry that is not 0 (an L1 table's
 * COPIED bit, for a new image).
 */
static inline void
table_store (unsigned char *buf, const uint64_t *entries, uint64_t n,
             uint64_t flags)
{
  for (uint64_t i = 0; i < n; i++)
    store_be64 (buf + i * TABLE_ENTRY_SIZE,
                entries[i] ? entries[i] | flags : 0);
}

#endif /* QCOW2_REFCOUNT_FORMAT_H */
