/* qcow2 on-disk format: constants and entry decoding.
 *
 * The normative text is docs/interop/qcow2.txt in QEMU's sources; the
 * section names in comments below refer to it.  All fields are
 * big-endian.  Nothing here trusts its input: decoders only extract
 * bits, and the callers validate the results against the image.
 */
#ifndef QCOW2_FORMAT_H
#define QCOW2_FORMAT_H

#include <stdbool.h>
#include <stdint.h>

#define QCOW2_MAGIC 0x514649fbU         /* "QFI\xfb" */

/* "Header": byte offsets of the fields. */
#define HDR_MAGIC                 0
#define HDR_VERSION               4
#define HDR_BACKING_FILE_OFFSET   8
#define HDR_BACKING_FILE_SIZE    16
#define HDR_CLUSTER_BITS         20
#define HDR_SIZE                 24
#define HDR_CRYPT_METHOD         32
#define HDR_L1_SIZE              36
#define HDR_L1_TABLE_OFFSET      40
#define HDR_REFCOUNT_TABLE_OFFSET 48
#define HDR_REFCOUNT_TABLE_CLUSTERS 56
#define HDR_NB_SNAPSHOTS         60
#define HDR_SNAPSHOTS_OFFSET     64
#define HDR_INCOMPATIBLE         72
#define HDR_COMPATIBLE           80
#define HDR_AUTOCLEAR            88
#define HDR_REFCOUNT_ORDER       96
#define HDR_HEADER_LENGTH       100
#define HDR_COMPRESSION_TYPE    104

#define HDR_V2_LENGTH            72
#define HDR_V3_MIN_LENGTH       104
#define HDR_V3_LENGTH           112     /* what QEMU 7.2 writes */

#define MIN_CLUSTER_BITS          9
#define MAX_CLUSTER_BITS         21
#define MAX_BACKING_FILE_SIZE  1023
#define MAX_SNAPSHOTS         65536
#define MAX_L1_BYTES         (32 * 1024 * 1024)     /* QEMU's limit */
#define MAX_REFTABLE_BYTES    (8 * 1024 * 1024)     /* QEMU's limit */
#define MAX_HOST_OFFSET      ((UINT64_C (1) << 56) - 1)

/* "Header": feature bits. */
#define INCOMPAT_DIRTY           (UINT64_C (1) << 0)
#define INCOMPAT_CORRUPT         (UINT64_C (1) << 1)
#define INCOMPAT_DATA_FILE       (UINT64_C (1) << 2)
#define INCOMPAT_COMPRESSION     (UINT64_C (1) << 3)
#define INCOMPAT_EXTL2           (UINT64_C (1) << 4)
#define INCOMPAT_KNOWN           (UINT64_C (0x1f))

#define COMPAT_LAZY_REFCOUNTS    (UINT64_C (1) << 0)

#define AUTOCLEAR_BITMAPS        (UINT64_C (1) << 0)
#define AUTOCLEAR_DATA_FILE_RAW  (UINT64_C (1) << 1)

enum qcow2_crypt_method {
  CRYPT_NONE = 0,
  CRYPT_AES = 1,
  CRYPT_LUKS = 2,
};

/* "Header extensions". */
#define EXT_END                  0x00000000U
#define EXT_BACKING_FORMAT       0xe2792acaU
#define EXT_FEATURE_TABLE        0x6803f857U
#define EXT_BITMAPS              0x23852875U
#define EXT_CRYPTO_HEADER        0x0537be77U
#define EXT_DATA_FILE            0x44415441U

/* "Cluster mapping": L1 entries. */
#define L1E_OFFSET_MASK          UINT64_C (0x00fffffffffffe00)
#define L1E_RESERVED_MASK        UINT64_C (0x7f000000000001ff)
#define ENTRY_COPIED             (UINT64_C (1) << 63)

/* "Cluster mapping": standard L2 entries. */
#define L2E_COMPRESSED           (UINT64_C (1) << 62)
#define L2E_ZERO                 (UINT64_C (1) << 0)
#define L2E_OFFSET_MASK          UINT64_C (0x00fffffffffffe00)
#define L2E_RESERVED_MASK        UINT64_C (0x3f000000000001fe)

/* "Extended L2 Entries": the bitmap word. */
#define SUBCLUSTERS_PER_CLUSTER  32
#define SC_ALLOC_MASK            UINT64_C (0x00000000ffffffff)
#define SC_ZERO_SHIFT            32

/* "Refcount table": entries point at refcount blocks. */
#define REFT_OFFSET_MASK         UINT64_C (0xfffffffffffffe00)
#define REFT_RESERVED_MASK       UINT64_C (0x00000000000001ff)

/* "Compressed Clusters Descriptor": for cluster_bits c, the host offset
 * takes the low 70 - c bits, and the count of additional 512-byte
 * sectors the next c - 8 bits.
 */
static inline unsigned
compressed_offset_bits (unsigned cluster_bits)
{
  return 70 - cluster_bits;
}

static inline uint64_t
compressed_host_offset (uint64_t entry, unsigned cluster_bits)
{
  return entry & ((UINT64_C (1) << compressed_offset_bits (cluster_bits)) - 1);
}

/* Bytes to read for a compressed cluster: (n + 1) sectors from the start
 * of the sector holding host_offset.  May run past the end of the file.
 */
static inline uint64_t
compressed_length (uint64_t entry, unsigned cluster_bits)
{
  unsigned x = compressed_offset_bits (cluster_bits);
  uint64_t nsectors = (entry >> x) & ((UINT64_C (1) << (cluster_bits - 8)) - 1);
  uint64_t host = compressed_host_offset (entry, cluster_bits);

  return (nsectors + 1) * 512 - (host & 511);
}

/* Build a descriptor (the inverse of the two functions above). */
static inline uint64_t
compressed_descriptor (uint64_t host_offset, uint64_t length,
                       unsigned cluster_bits)
{
  uint64_t last_sector = (host_offset + length - 1) / 512;
  uint64_t nsectors = last_sector - host_offset / 512;

  return L2E_COMPRESSED | host_offset
    | (nsectors << compressed_offset_bits (cluster_bits));
}

#endif /* QCOW2_FORMAT_H */
