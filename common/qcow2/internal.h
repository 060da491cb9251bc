/* The qcow2 engine's internal state, shared by its source files. */
#ifndef QCOW2_INTERNAL_H
#define QCOW2_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "format.h"
#include "qcow2.h"
#include "qcow2-info.h"

struct io;
struct meta_cache;

/* The header after validation (header.c).  Only fields that passed
 * every check in header_parse are stored here.
 */
struct qcow2_header {
  uint32_t version;
  uint32_t cluster_bits;
  uint64_t size;
  uint32_t crypt_method;
  uint32_t l1_size;
  uint64_t l1_table_offset;
  uint64_t refcount_table_offset;
  uint32_t refcount_table_clusters;
  uint32_t nb_snapshots;
  uint64_t snapshots_offset;
  uint64_t incompatible;
  uint64_t compatible;
  uint64_t autoclear;
  uint32_t refcount_order;
  uint32_t header_length;
  uint32_t compression_type;

  /* From cluster 0 beyond the fixed header. */
  char *backing_file;           /* NULL if none */
  char *backing_format;         /* NULL if not recorded */
  char *data_file;              /* NULL if not recorded */
  uint64_t crypto_offset;       /* EXT_CRYPTO_HEADER, 0 if absent */
  uint64_t crypto_length;
};

/* What one guest range maps to (cluster-map.c). */
enum map_kind {
  MAP_UNALLOCATED,              /* read from the backing file, or zeroes */
  MAP_ZERO,                     /* reads as zeroes */
  MAP_DATA,                     /* at host_offset in the data file */
  MAP_COMPRESSED,               /* one compressed cluster */
};

struct mapping {
  enum map_kind kind;
  uint64_t length;              /* bytes from the requested offset */
  uint64_t host_offset;         /* MAP_DATA: where the requested offset is */
  uint64_t descriptor;          /* MAP_COMPRESSED: the raw L2 entry */
  uint64_t cluster_offset;      /* MAP_COMPRESSED: guest offset of the cluster */
};

/* The layer below an image: another qcow2 image or a raw file. */
struct backing {
  struct qcow2_image *qcow2;
  struct io *raw;
  uint64_t size;
};

/* The images opened so far on the way down a backing chain, top first
 * (backing.c): for loop detection and the depth limit.
 */
struct chain_link {
  const struct chain_link *above;
  bool identified;              /* dev and ino are known (io_identify) */
  uint64_t dev, ino;
  unsigned depth;               /* 0 for the top image */
};

/* The locks of an image, and how they nest (never the other way):
 *
 *   meta_lock (below): shared to read L1 and L2 tables, exclusive to
 *   change any metadata or *w.  Never held across guest data I/O.
 *   Inside it, or alone, three leaf locks (nothing else is taken while
 *   one is held):
 *     - w->inflight_lock (write-state.h): inflight_gen, and the
 *       inflight_done wake-ups; inflight_wait drops meta_lock to sleep;
 *     - each meta_cache's lock (meta-cache.c; l2_cache and
 *       w->refblock_cache): its index, pins and dirty marks; tables
 *       are loaded from the file outside it;
 *     - each cluster_cache shard's lock (cluster-cache.c): its entries.
 *
 *   crypt->rmw_lock (crypt.c), taken by guest data writes only, so
 *   never together with meta_lock: exclusive to read-modify-write a
 *   partial sector, shared for whole sectors.  Inside it, or alone, the
 *   LUKS cipher's leaf lock over its per-thread handles
 *   (common/luks/sector-cipher.c).
 */
struct qcow2_image {
  struct io *file;              /* the qcow2 file */
  struct io *data;              /* guest data: == file unless external */
  struct qcow2_header hdr;
  char *filename;
  bool qcow1;                   /* the predecessor format (qcow1.c) */

  /* Derived geometry. */
  unsigned cluster_bits;
  uint64_t cluster_size;
  bool extended_l2;
  unsigned l2_entry_size;       /* 8, or 16 with extended L2 */
  unsigned l2_bits;             /* log2 of entries per L2 table */
  unsigned subcluster_bits;     /* == cluster_bits without extended L2 */
  uint64_t size;                /* guest size */

  /* The active L1 table (or a snapshot's), host byte order.  Entries
   * are validated when used, not here.
   */
  uint64_t *l1;
  uint32_t l1_size;

  struct meta_cache *l2_cache;
  struct cluster_cache *cluster_cache;  /* decompressed clusters; NULL if
                                         * encrypted (cluster-cache.h) */
  /* Reused buffers for compressed reads (buffer-pool.h): input of two
   * clusters, and decompressed clusters (which the cluster cache swaps
   * with its own).  NULL if encrypted, like cluster_cache.
   */
  struct buffer_pool *compressed_pool, *cluster_pool;
  struct backing *backing;      /* NULL: unallocated reads as zeroes */
  struct qcow2_crypt *crypt;    /* NULL unless encrypted (crypt.c) */

  /* Write state (refcount.c, write.c, writeback.c), all guarded by
   * meta_lock held exclusively.
   */
  struct write_state *w;        /* NULL until qcow2_prepare_write */

  /* Readers hold it shared while they look at L1/L2; metadata updates
   * hold it exclusively.  Data I/O runs outside it.
   */
  pthread_rwlock_t meta_lock;

  /* The snapshot table (snapshot.c): every snapshot's L1 table, for
   * repair and the overlap check, and what qcow2_get_info reports.
   */
  struct qcow2_snapshot_info *snapshots;
  uint64_t snapshot_table_bytes;

  bool metadata_preallocated;   /* see prealloc.c */
  int compression_level;        /* QCOW2_COMPRESSED writes; 0 = default */

  uint64_t file_size;           /* cached length of file */
  uint64_t data_size;           /* cached length of data */
  bool readonly;
  struct qcow2_debug debug;     /* opts->debug (image_debug) */
  char *exported_snapshot;      /* 'ID "NAME"' under snapshot= */
  char *description;            /* describe.c */
};

/* header.c */
extern int header_parse (struct io *file, uint64_t file_size,
                         struct qcow2_header *h);
extern void header_free (struct qcow2_header *h);

/* foreign.c: what a file without the qcow2 magic is instead, as one
 * phrase for the refusal (NULL if it cannot be read: the read failure
 * was reported).
 */
extern const char *foreign_format (struct io *file, uint64_t file_size);

/* debug.c: a message of category flag (QCOW2_DEBUG_*), if it is on;
 * the test is inline so that an unused category costs nothing more.
 */
extern void debug_print (const struct qcow2_debug *d, const char *fs, ...)
  __attribute__ ((format (printf, 2, 3)));
#define image_debug(img, flag, ...)                                     \
  do {                                                                  \
    if ((img)->debug.flags & (flag))                                    \
      debug_print (&(img)->debug, __VA_ARGS__);                         \
  } while (0)

/* describe.c: set img->description (qcow2_description). */
extern int image_describe (struct qcow2_image *img);

/* meta-cache.c: bounded caches of cluster-sized metadata tables (L2
 * tables, refcount blocks), raw on-disk bytes.
 */
struct meta_table {
  uint64_t offset;              /* host offset of the table */
  unsigned char *data;          /* one cluster, big-endian entries */
};
extern struct meta_cache *meta_cache_create (uint64_t table_bytes,
                                             uint64_t max_bytes);
extern void meta_cache_destroy (struct meta_cache *c);
/* Report hits, misses and evictions under QCOW2_DEBUG_CACHE, as "FILE:
 * WHAT cache ..." (both strings must outlive the cache).
 */
extern void meta_cache_set_debug (struct meta_cache *c,
                                  const struct qcow2_debug *debug,
                                  const char *file, const char *what);
/* Pin the table at offset, loading it from file on a miss. */
extern int meta_cache_get (struct meta_cache *c, struct io *file,
                           uint64_t offset, struct meta_table **t);
/* Pin a new, zeroed, dirty table for a freshly allocated cluster. */
extern int meta_cache_get_new (struct meta_cache *c, uint64_t offset,
                               struct meta_table **t);
extern void meta_cache_put (struct meta_cache *c, struct meta_table *t);
extern void meta_cache_mark_dirty (struct meta_cache *c, struct meta_table *t);
extern size_t meta_cache_nr_dirty (struct meta_cache *c);
/* Has a table found no clean one to evict since the last writeback? */
extern bool meta_cache_over_budget (struct meta_cache *c);
/* Write every dirty table back to file (no sync). */
extern int meta_cache_writeback (struct meta_cache *c, struct io *file);
/* Forget a table (it was freed or moved). */
extern void meta_cache_drop (struct meta_cache *c, uint64_t offset);

/* cluster-map.c */
/* One decoded, validated L2 entry. */
struct l2_entry {
  enum map_kind kind;           /* for the whole cluster, before subclusters */
  bool has_host;                /* a host cluster is allocated */
  uint64_t host;                /* its offset */
  uint64_t raw;                 /* the first word as on disk */
  uint32_t alloc_bits;          /* extended L2 only */
  uint32_t zero_bits;
};
extern int l2_decode (struct qcow2_image *img, const struct meta_table *t,
                      uint64_t index, struct l2_entry *d);
extern int cluster_map (struct qcow2_image *img, uint64_t offset,
                        uint64_t max_len, struct mapping *m);
/* The same, taking meta_lock shared for it. */
extern int cluster_map_shared (struct qcow2_image *img, uint64_t offset,
                               uint64_t max_len, struct mapping *m);
/* Validate an L1 entry; returns the L2 table offset (0 = none) or -1. */
extern int64_t l1_entry_l2_offset (struct qcow2_image *img, uint32_t index);
/* The same for entry e of any L1 table (a snapshot's). */
extern int64_t l1_entry_check (struct qcow2_image *img, uint64_t e,
                               uint32_t index);

/* image.c: report corruption found in metadata; returns -1, errno EIO. */
extern int image_corrupt (struct qcow2_image *img, const char *fs, ...)
  __attribute__ ((format (printf, 2, 3)));
/* The message alone, with what follows from it ("" or "; ..."). */
extern void image_report_corrupt (const struct qcow2_image *img,
                                  const char *consequence,
                                  const char *fs, va_list args)
  __attribute__ ((format (printf, 3, 0)));

/* image.c: open one image of a chain (qcow2_open opens the top). */
extern int image_open (const struct qcow2_options *opts,
                       const struct chain_link *above, struct io *file,
                       struct qcow2_image **img_ret);
/* Open the image's files for writing (they are opened read-only). */
extern int image_open_for_writing (struct qcow2_image *img);
extern int image_load_l1 (struct qcow2_image *img, uint64_t offset,
                          uint32_t size);

/* backing.c: open the layer below, as the image and options say. */
extern int backing_open (struct qcow2_image *img,
                         const struct qcow2_options *opts,
                         const struct chain_link *above);
extern void backing_close (struct backing *b);
/* Extents of a raw backing file: data, or holes that read as zeroes. */
extern int backing_raw_extents (const struct backing *b, uint64_t offset,
                                uint64_t length, qcow2_extent_fn fn,
                                void *opaque);
/* A file named by an image: relative names are taken from dir. */
extern char *resolve_name (const char *dir, const char *name);
extern char *image_dir (const struct qcow2_image *img);

/* named-file.c: the image and the files it names, as the operator's
 * options allow, through opts->opener.
 */
enum file_policy {
  FILE_OPEN,                    /* open it */
  FILE_SKIP,                    /* do without it (backing=none) */
  FILE_REFUSE,                  /* refuse the image (reported) */
};
/* The directory of a file, which relative names it records are taken
 * from: "." for a bare name.
 */
extern char *named_file_dir (const char *path);
extern enum file_policy named_file_policy (const struct qcow2_image *img,
                                           const struct qcow2_options *opts,
                                           enum qcow2_file_role role);
/* Open name (read-only) for img; probe: see qcow2_file_request. */
extern struct io *named_file_open (const struct qcow2_image *img,
                                   const struct qcow2_options *opts,
                                   enum qcow2_file_role role,
                                   const char *name, const char *recorded,
                                   bool probe);

/* datafile.c: the external data file ("data_file" extension). */
extern int data_file_open (struct qcow2_image *img,
                           const struct qcow2_options *opts);

/* snapshot.c: parse the snapshot table; switch to opts->snapshot. */
extern int snapshot_open (struct qcow2_image *img,
                          const struct qcow2_options *opts);
extern void snapshots_free (struct qcow2_snapshot_info *sn, uint32_t n);

/* qcow1.c: the predecessor format, served by the same read path. */
extern bool qcow1_detect (struct io *file, uint64_t file_size);
extern int qcow1_open (struct qcow2_image *img);
extern int qcow1_cluster_map (struct qcow2_image *img, uint64_t offset,
                              uint64_t max_len, struct mapping *m);

/* prealloc.c: does the image look "metadata preallocated" to QEMU? */
extern int detect_metadata_preallocation (struct qcow2_image *img);

/* data-io.c: guest data in host clusters (the place for encryption). */
extern int data_read (struct qcow2_image *img, void *buf, uint64_t count,
                      uint64_t host, uint64_t guest);
extern int data_write (struct qcow2_image *img, const void *buf,
                       uint64_t count, uint64_t host, uint64_t guest);
/* The bytes as stored, encrypted or not. */
extern int data_read_plain (struct qcow2_image *img, void *buf,
                            uint64_t count, uint64_t host);
extern int data_write_plain (struct qcow2_image *img, const void *buf,
                             uint64_t count, uint64_t host);

/* crypt.c: built-in encryption.  crypt_open unlocks an encrypted image
 * (sets img->crypt); crypt_read/crypt_write take any byte range.
 */
struct qcow2_crypt;
extern int crypt_open (struct qcow2_image *img,
                       const struct qcow2_options *opts);
extern void crypt_close (struct qcow2_crypt *c);
extern int crypt_read (struct qcow2_image *img, void *buf, uint64_t count,
                       uint64_t host, uint64_t guest);
extern int crypt_write (struct qcow2_image *img, const void *buf,
                        uint64_t count, uint64_t host, uint64_t guest);

/* read.c */
extern int image_read_unallocated (struct qcow2_image *img, void *buf,
                                   uint64_t count, uint64_t offset);

static inline uint64_t
l2_entries_per_table (const struct qcow2_image *img)
{
  return UINT64_C (1) << img->l2_bits;
}

/* Guest bytes covered by one L2 table. */
static inline uint64_t
l2_coverage (const struct qcow2_image *img)
{
  return UINT64_C (1) << (img->l2_bits + img->cluster_bits);
}

#endif /* QCOW2_INTERNAL_H */
