/* What an open image is, as qemu-img info and map report it: the
 * header's fields, the snapshot table, the backing chain, and where
 * each guest range is stored.  Plain C, no nbdkit types (see qcow2.h).
 */
#ifndef QCOW2_INFO_H
#define QCOW2_INFO_H

#include <stdbool.h>
#include <stdint.h>

#include "qcow2.h"

/* One entry of the snapshot table ("Snapshots" in qcow2.txt). */
struct qcow2_snapshot_info {
  char *id;                     /* printable ASCII: others shown as '?' */
  char *name;
  uint64_t l1_offset;
  uint32_t l1_size;
  uint64_t disk_size;           /* the image's size when not recorded */
  uint64_t vm_state_size;
  uint32_t date_sec, date_nsec;
  uint64_t vm_clock_nsec;
  bool has_icount;              /* extra data has the icount field */
  uint64_t icount;
};

struct qcow2_info {
  bool qcow1;                   /* the predecessor format ("qcow") */
  uint32_t version;             /* 2 or 3 (1 for qcow1) */
  uint64_t virtual_size;
  uint64_t cluster_size;
  uint32_t compression_type;    /* 0 zlib, 1 zstd */
  uint32_t crypt_method;        /* 0 none, 1 AES, 2 LUKS */
  const char *backing_file;     /* as recorded; NULL if none */
  const char *backing_format;   /* as recorded; NULL if none */
  const char *data_file;        /* as recorded; NULL if none */
  bool data_file_raw;
  bool lazy_refcounts;
  unsigned refcount_bits;
  bool extended_l2;
  bool corrupt;
  bool dirty;
  bool bitmaps;                 /* the bitmaps extension is in use */
  uint32_t nb_snapshots;
  const struct qcow2_snapshot_info *snapshots;
};

/* Fill *info; its strings and arrays live as long as the image. */
extern void qcow2_get_info (const struct qcow2_image *img,
                            struct qcow2_info *info);

/* The layer below an image, as opened: a qcow2 (or qcow) image, a raw
 * file, or nothing (NULL name).  name is the path it was opened by.
 */
struct qcow2_backing_info {
  const char *name;
  struct qcow2_image *qcow2;    /* NULL for a raw file */
  uint64_t size;
};
extern void qcow2_get_backing (const struct qcow2_image *img,
                               struct qcow2_backing_info *b);

/* The name of a file that an image named `base` records as `name`,
 * as qemu-img shows it: name itself if it is absolute or base has no
 * directory, else name in base's directory.  Returns a new string, or
 * NULL (ENOMEM).
 */
extern char *qcow2_path_combine (const char *base, const char *name);

/* Where the guest's bytes come from, the way qemu-img map sees a
 * backing chain: the first layer, from the top (depth 0), that holds
 * data or zeroes for a range, and where.
 */
struct qcow2_map_extent {
  uint64_t start, length;
  unsigned depth;               /* the layer; for unallocated, the last
                                 * one looked at */
  bool present;                 /* allocated in that layer */
  bool zero;                    /* reads as zeroes */
  bool data;                    /* reads from stored data */
  bool has_offset;              /* stored, uncompressed, unencrypted */
  uint64_t offset;              /* where, in file */
  const char *file;             /* the file of that layer */
};

/* The extent starting at guest offset start, at most length bytes
 * (start + length <= qcow2_size).  Extents are not merged.
 */
extern int qcow2_map_extent (struct qcow2_image *img, uint64_t start,
                             uint64_t length, struct qcow2_map_extent *e);

/* The name the image was opened by. */
extern const char *qcow2_filename (const struct qcow2_image *img);

#endif /* QCOW2_INFO_H */
