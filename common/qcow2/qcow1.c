/* qcow version 1, the predecessor of qcow2, read-only.
 *
 * There is no written specification; the format is what QEMU's
 * block/qcow.c reads and writes:
 *
 *   header (48 bytes, big-endian): magic "QFI\xfb", version 1,
 *     u64 backing_file_offset, u32 backing_file_size, u32 mtime,
 *     u64 size, u8 cluster_bits (9..16), u8 l2_bits (6..13),
 *     u16 padding, u32 crypt_method (0 none, 1 AES), u64 l1_table_offset
 *   L1 table: ceil(size / 2^(cluster_bits + l2_bits)) u64 entries, each
 *     the byte offset of an L2 table or 0
 *   L2 table: 2^l2_bits u64 entries: 0 unallocated, else the byte
 *     offset of the cluster; bit 63 set means compressed, with the
 *     compressed length in bytes in the cluster_bits bits below it and
 *     the offset in the 63 - cluster_bits bits below that.  Compressed
 *     data is raw deflate (4 KiB window), as in qcow2's zlib type.
 *
 * There are no refcounts, zero clusters or snapshots.  Images are
 * mapped into the same struct qcow2_image as qcow2 ones, so reading,
 * block status and backing files are shared: a compressed entry is
 * re-expressed as a qcow2 compressed cluster descriptor for read.c.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byte-order.h"
#include "checked-overflow.h"
#include "diag.h"
#include "internal.h"
#include "io.h"
#include "minmax.h"
#include "rounding.h"

#define QCOW1_VERSION            1

#define Q1_MAGIC                 0
#define Q1_VERSION               4
#define Q1_BACKING_FILE_OFFSET   8
#define Q1_BACKING_FILE_SIZE    16
#define Q1_SIZE                 24
#define Q1_CLUSTER_BITS         32
#define Q1_L2_BITS              33
#define Q1_CRYPT_METHOD         36
#define Q1_L1_TABLE_OFFSET      40
#define Q1_HEADER_LENGTH        48

#define Q1_COMPRESSED           (UINT64_C (1) << 63)

bool
qcow1_detect (struct io *file, uint64_t file_size)
{
  unsigned char b[8];

  if (file_size < sizeof b || io_pread (file, b, sizeof b, 0) == -1)
    return false;
  return load_be32 (b + Q1_MAGIC) == QCOW2_MAGIC &&
    load_be32 (b + Q1_VERSION) == QCOW1_VERSION;
}

static int
bad_header (struct qcow2_image *img, const char *msg)
{
  diag_error ("%s: invalid qcow version 1 header: %s", img->filename, msg);
  errno = EINVAL;
  return -1;
}

static int
read_backing_name (struct qcow2_image *img, uint64_t offset, uint32_t len)
{
  char *name;

  if (offset == 0)
    return 0;
  if (len == 0 || len > MAX_BACKING_FILE_SIZE)
    return bad_header (img, "backing file name length is 0 or over 1023");
  if (!range_within (offset, len, img->file_size))
    return bad_header (img, "backing file name lies beyond the end of the file");
  name = calloc (1, len + 1);
  if (name == NULL) {
    diag_error ("calloc: %m");
    return -1;
  }
  if (io_pread (img->file, name, len, offset) == -1) {
    free (name);
    return -1;
  }
  if (memchr (name, 0, len) != NULL) {
    free (name);
    return bad_header (img, "backing file name contains a NUL byte");
  }
  img->hdr.backing_file = name;
  return 0;
}

int
qcow1_open (struct qcow2_image *img)
{
  unsigned char b[Q1_HEADER_LENGTH];
  unsigned cluster_bits, l2_bits, shift;
  uint64_t size, l1_offset, l1_entries;
  uint32_t crypt;

  if (img->file_size < Q1_HEADER_LENGTH)
    return bad_header (img, "the file is too short");
  if (io_pread (img->file, b, sizeof b, 0) == -1)
    return -1;
  size = load_be64 (b + Q1_SIZE);
  cluster_bits = b[Q1_CLUSTER_BITS];
  l2_bits = b[Q1_L2_BITS];
  crypt = load_be32 (b + Q1_CRYPT_METHOD);
  l1_offset = load_be64 (b + Q1_L1_TABLE_OFFSET);

  /* QEMU's limits. */
  if (cluster_bits < 9 || cluster_bits > 16)
    return bad_header (img, "cluster size is not between 512 and 64K");
  if (l2_bits < 6 || l2_bits > 13)
    return bad_header (img, "L2 table size is not between 512 and 64K");
  if (size < 2)
    return bad_header (img, "size is less than 2 bytes");
  shift = cluster_bits + l2_bits;
  if (size > UINT64_MAX - (UINT64_C (1) << shift))
    return bad_header (img, "size is too large");
  l1_entries = DIV_ROUND_UP (size, UINT64_C (1) << shift);
  if (l1_entries * 8 > MAX_L1_BYTES)
    return bad_header (img, "L1 table is too large");
  if (!range_within (l1_offset, l1_entries * 8, img->file_size))
    return bad_header (img, "L1 table lies beyond the end of the file");
  /* 1 is AES, served by crypt.c as for qcow2 (IV from the guest offset). */
  if (crypt > CRYPT_AES)
    return bad_header (img, "crypt_method is unknown");

  img->qcow1 = true;
  img->readonly = true;
  img->hdr.version = QCOW1_VERSION;
  img->hdr.cluster_bits = cluster_bits;
  img->hdr.size = size;
  img->hdr.compression_type = 0;     /* zlib type */
  img->hdr.crypt_method = crypt;
  img->cluster_bits = cluster_bits;
  img->cluster_size = UINT64_C (1) << cluster_bits;
  img->extended_l2 = false;
  img->l2_entry_size = 8;
  img->l2_bits = l2_bits;
  img->subcluster_bits = cluster_bits;
  /* QEMU counts whole sectors only. */
  img->size = ROUND_DOWN (size, 512);

  if (read_backing_name (img, load_be64 (b + Q1_BACKING_FILE_OFFSET),
                         load_be32 (b + Q1_BACKING_FILE_SIZE)) == -1 ||
      image_load_l1 (img, l1_offset, l1_entries) == -1)
    return -1;
  return 0;
}

/* Decode one L2 entry into kind and host offset (or descriptor). */
static int
decode (struct qcow2_image *img, uint64_t e, uint64_t guest,
        struct mapping *m, uint64_t *host)
{
  const unsigned size_shift = 63 - img->cluster_bits;

  *host = 0;
  if (e == 0) {
    m->kind = MAP_UNALLOCATED;
    return 0;
  }
  if (e & Q1_COMPRESSED) {
    uint64_t off = e & ((UINT64_C (1) << size_shift) - 1);
    uint64_t len = (e >> size_shift) & (img->cluster_size - 1);

    if (len == 0 || off >= img->file_size)
      return image_corrupt (img, "compressed cluster for guest offset %#"
                            PRIx64 " (entry %#" PRIx64 ") is invalid or "
                            "beyond the end of the file", guest, e);
    m->kind = MAP_COMPRESSED;
    m->descriptor = compressed_descriptor (off, len, img->cluster_bits);
    m->cluster_offset = guest;
    return 0;
  }
  if (e >= img->file_size)
    return image_corrupt (img, "data cluster offset %#" PRIx64 " for guest "
                          "offset %#" PRIx64 " is beyond the end of the file",
                          e, guest);
  m->kind = MAP_DATA;
  *host = e;
  return 0;
}

/* The run that starts at offset, from the pinned L2 table t: offset
 * and max_len stay inside the table.  A compressed cluster is a run of
 * its own; other kinds extend while the kind stays the same and data
 * stays contiguous in the file.
 */
static int
map_in_table (struct qcow2_image *img, const struct meta_table *t,
              uint64_t offset, uint64_t max_len, struct mapping *m)
{
  const uint64_t cluster_start = ROUND_DOWN (offset, img->cluster_size);
  uint64_t index = (offset >> img->cluster_bits) & ((UINT64_C (1) << img->l2_bits) - 1);
  uint64_t pos, host;

  if (decode (img, load_be64 (t->data + index * 8), cluster_start,
              m, &host) == -1)
    return -1;
  m->host_offset = host + (offset - cluster_start);

  pos = cluster_start + img->cluster_size;
  while (m->kind != MAP_COMPRESSED && pos < offset + max_len) {
    struct mapping next;
    uint64_t next_host;

    index++;
    if (decode (img, load_be64 (t->data + index * 8), pos,
                &next, &next_host) == -1)
      return -1;
    if (next.kind != m->kind ||
        (m->kind == MAP_DATA && next_host != host + (pos - cluster_start)))
      break;
    pos += img->cluster_size;
  }
  m->length = MIN (pos, offset + max_len) - offset;
  return 0;
}

int
qcow1_cluster_map (struct qcow2_image *img, uint64_t offset,
                   uint64_t max_len, struct mapping *m)
{
  const unsigned table_shift = img->l2_bits + img->cluster_bits;
  const uint64_t l1_index = offset >> table_shift;
  const uint64_t table_bytes = UINT64_C (8) << img->l2_bits;
  uint64_t l2_offset;
  struct meta_table *t;
  int r;

  max_len = MIN (max_len, ((l1_index + 1) << table_shift) - offset);
  m->length = max_len;
  m->kind = MAP_UNALLOCATED;
  if (l1_index >= img->l1_size)
    return 0;
  l2_offset = img->l1[l1_index];
  if (l2_offset == 0)
    return 0;
  if (!range_within (l2_offset, table_bytes, img->file_size))
    return image_corrupt (img, "L2 table offset %#" PRIx64 " in L1 entry %"
                          PRIu64 " is beyond the end of the file",
                          l2_offset, l1_index);
  if (meta_cache_get (img->l2_cache, img->file, l2_offset, &t) == -1)
    return -1;
  r = map_in_table (img, t, offset, max_len, m);
  meta_cache_put (img->l2_cache, t);
  return r;
}
