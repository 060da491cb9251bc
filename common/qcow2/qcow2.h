/* The qcow2 format engine: public interface.
 *
 * Plain C, no nbdkit types: the plugin glue, the unit tests and the
 * fuzzers all link this library alone.  Every function returning int
 * returns 0 on success or -1 with errno set, after reporting the cause
 * once through diag_error.
 *
 * Thread safety: after qcow2_open returns, every call on one image may
 * be made from any number of threads at once.
 */
#ifndef QCOW2_H
#define QCOW2_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "luks.h"               /* struct luks_kdf_limits */

struct qcow2_image;
struct io;

/* Where the engine's files come from: it opens none itself, but asks
 * the caller's opener for the image and for each file the image names
 * (its backing file and its external data file; qcow2 can name no
 * other).  The engine decides whether a file may be opened at all
 * (backing=none) and resolves the names recorded in an image; the
 * opener says what a name means (a local path, a layer of nbdkit) and
 * what may stand behind one (only a regular file or a block device,
 * say).  Files are opened read-only: qcow2_prepare_write calls
 * io_make_writable on the image and its data file.
 */
enum qcow2_file_role {
  QCOW2_FILE_IMAGE,             /* opts->filename */
  QCOW2_FILE_BACKING,
  QCOW2_FILE_DATA,
};

struct qcow2_file_request {
  enum qcow2_file_role role;
  const char *name;             /* as given, or resolved by the engine */
  /* The name as the image records it (name may be resolved from it);
   * NULL where no image named the file: the image itself, a data file
   * the operator gave.
   */
  const char *recorded;
  const char *named_by;         /* the image naming it; NULL for the image */
  bool probe;                   /* a name that may not exist: fail with
                                   ENOENT silently where it does not */
  bool for_writing;             /* a backing file that will be written
                                   (qcow2_commit): else they never are */
};

struct qcow2_opener {
  /* Returns a read-only io, or NULL with errno set after reporting the
   * cause (naming req->named_by where there is one).
   */
  struct io *(*open) (void *opaque, const struct qcow2_file_request *req);
  void *opaque;
};

/* Files on the local file system, under the rules above (libqcow2-local). */
extern const struct qcow2_opener qcow2_local_files;

enum qcow2_backing_mode {
  QCOW2_BACKING_AUTO,           /* follow the chain recorded in the image */
  QCOW2_BACKING_NONE,           /* serve the top image alone */
  QCOW2_BACKING_SKIP,           /* the same, but open the data file the
                                   image names (qcow2-tool: the image is
                                   looked at, not served) */
};

/* Debug messages by category, each turned on alone (the modules map
 * nbdkit's -D qcow2.cache=1 and so on to these bits).  A category that
 * is off costs one test of a word.
 */
#define QCOW2_DEBUG_CACHE (1u << 0)  /* L2 and refcount block caches:
                                        hits, misses, evictions */
#define QCOW2_DEBUG_ALLOC (1u << 1)  /* cluster allocations, copy-on-write,
                                        releases */
#define QCOW2_DEBUG_CODEC (1u << 2)  /* how each kind of cluster is read:
                                        the decoder chosen */

struct qcow2_debug {
  unsigned flags;               /* QCOW2_DEBUG_*; 0 = silent */
  void (*print) (const char *fs, va_list args); /* required with flags */
};

struct qcow2_options {
  const struct qcow2_opener *opener;    /* required */
  const char *filename;
  bool readonly;                /* never write, even if a client asks */
  uint64_t l2_cache_size;       /* bytes; 0 = default (32 MiB) */
  enum qcow2_backing_mode backing;
  const char *data_file;        /* overrides the data file extension; NULL = as recorded */
  const char *snapshot;         /* export this internal snapshot, read-only */
  bool writable_backing;        /* the backing file (not those below it) may
                                   be written: for qcow2_commit */
  const char *passphrase;       /* for encrypted images (and their backing files) */
  unsigned max_chain_depth;     /* 0 = default (16, as QEMU) */
  /* For a check of the image (qcow2-tool check): a snapshot whose L1
   * table is misplaced is left for the check to report, not refused.
   */
  bool check;
  /* Open an encrypted image without its passphrase (qcow2-tool info,
   * map, check): its metadata can be read, its guest data can be
   * neither read nor written (EPERM).
   */
  bool metadata_only;
  /* Caps on the LUKS key derivation of encrypted images; 0s = defaults. */
  struct luks_kdf_limits kdf_limits;
  struct qcow2_debug debug;     /* the whole backing chain shares it */
};

/* Open and validate an image (and its backing chain).  Metadata is read
 * as needed later; nothing is written until the first write request.
 * Every file is opened read-only: qcow2_prepare_write opens the image
 * and its data file again for writing.
 */
extern int qcow2_open (const struct qcow2_options *opts,
                       struct qcow2_image **img_ret);

/* Write back all metadata, clear the dirty bit if we set it, close. */
extern int qcow2_close (struct qcow2_image *img);

/* Guest-visible size in bytes. */
extern uint64_t qcow2_size (const struct qcow2_image *img);
extern uint32_t qcow2_cluster_size (const struct qcow2_image *img);
/* False for a read-only image; true may still turn false when
 * qcow2_prepare_write finds the files cannot be written.
 */
extern bool qcow2_is_writable (const struct qcow2_image *img);
/* Built-in encryption (crypt_method 1 or 2): data is stored in 512-byte
 * sectors, so requests of whole sectors are the efficient ones.
 */
extern bool qcow2_is_encrypted (const struct qcow2_image *img);

/* One line describing the image, for .export_description and debug. */
extern const char *qcow2_description (const struct qcow2_image *img);

/* Request flags. */
#define QCOW2_FUA        (1u << 0)   /* durable on return */
#define QCOW2_MAY_TRIM   (1u << 1)   /* zero: the space may be released */
#define QCOW2_COMPRESSED (1u << 2)   /* pwrite: store as compressed clusters;
                                        zero: so is any data it writes */
#define QCOW2_FAST_ZERO  (1u << 3)   /* zero: fail with ENOTSUP rather than write */

/* Get ready for writing (called when a writable client connects):
 * opens the files for writing, repairs a dirty image, clears stale
 * autoclear bits, sets the dirty bit for lazy refcounts.  Fails with
 * EROFS on a read-only image, and on one whose files cannot be opened
 * for writing (only reported as debug: qcow2_is_writable is false
 * from then on).
 */
extern int qcow2_prepare_write (struct qcow2_image *img);

/* Check that the image can take QCOW2_COMPRESSED writes (not with an
 * external data file or encryption, as QEMU) and choose the codec level
 * for them (0 = the codec library's default, see codec.h).  Optional:
 * such writes work without it, at the default level.
 */
extern int qcow2_enable_compressed_writes (struct qcow2_image *img,
                                           int level);

extern int qcow2_pread (struct qcow2_image *img, void *buf,
                        uint64_t count, uint64_t offset);
extern int qcow2_pwrite (struct qcow2_image *img, const void *buf,
                         uint64_t count, uint64_t offset, unsigned flags);
extern int qcow2_zero (struct qcow2_image *img,
                       uint64_t count, uint64_t offset, unsigned flags);
extern int qcow2_trim (struct qcow2_image *img,
                       uint64_t count, uint64_t offset, unsigned flags);
extern int qcow2_flush (struct qcow2_image *img);

/* Block status.  Types use NBD's bits so the glue passes them through. */
#define QCOW2_EXTENT_HOLE 1u         /* not allocated: reads from nowhere */
#define QCOW2_EXTENT_ZERO 2u         /* reads as zeroes */

typedef int (*qcow2_extent_fn) (void *opaque, uint64_t offset,
                                uint64_t length, uint32_t type);

/* Report the extents of [offset, offset + count), in order, merging
 * adjacent equal runs; stops early (successfully) after the first
 * extent when req_one is set.  The callback returns -1 to abort.
 */
extern int qcow2_extents (struct qcow2_image *img, uint64_t count,
                          uint64_t offset, bool req_one,
                          qcow2_extent_fn fn, void *opaque);

/* Making a new image (create*.c): the file `qemu-img create -f qcow2`
 * makes for the same options, byte for byte.
 */
enum qcow2_preallocation {
  QCOW2_PREALLOC_OFF,
  QCOW2_PREALLOC_METADATA,      /* every L2 table and data cluster */
  QCOW2_PREALLOC_FALLOC,        /* ... and the file system allocates them */
  QCOW2_PREALLOC_FULL,          /* the same (the data is zero either way) */
};

enum qcow2_encryption {
  QCOW2_ENCRYPT_NONE,
  QCOW2_ENCRYPT_LUKS,           /* crypt_method 2: LUKS1 aes-xts-plain64 */
  QCOW2_ENCRYPT_AES,            /* crypt_method 1: legacy, insecure */
};

struct qcow2_create_options {
  const char *filename;
  uint64_t size;                /* virtual size, rounded up to 512 */
  bool size_from_backing;       /* no size: the backing file's (raw, qcow2) */
  uint32_t cluster_size;        /* 0 = 64K */
  unsigned version;             /* 2 (compat=0.10) or 3; 0 = 3 */
  unsigned compression_type;    /* header value: 0 zlib, 1 zstd */
  bool extended_l2;
  unsigned refcount_bits;       /* 0 = 16 */
  bool lazy_refcounts;
  const char *backing_file;     /* stored as given; relative to the image */
  const char *backing_format;   /* required with backing_file */
  const char *data_file;        /* created (must not exist); stored as given */
  bool data_file_raw;
  enum qcow2_preallocation preallocation;
  /* Encryption (qemu-img's encrypt.format): the passphrase is required
   * with it.  LUKS key slot 0 gets PBKDF2 iterations measured to take
   * encrypt_iter_time ms (0 = 2000, as QEMU).
   */
  enum qcow2_encryption encrypt;
  const char *passphrase;
  uint32_t encrypt_iter_time;
};

/* The options alone, as qcow2_create_on checks them first. */
extern int qcow2_create_check (const struct qcow2_create_options *opts);

/* The files of a new image, opened by the caller. */
struct qcow2_create_files {
  struct io *image;             /* empty, writable */
  struct io *data;              /* with opts->data_file: empty, writable */
  struct io *backing;           /* with opts->backing_file: for its size */
};

/* Write a new image into f->image (opts->filename and the other names
 * are only recorded, never opened), and size f->data.
 */
extern int qcow2_create_on (const struct qcow2_create_options *opts,
                            const struct qcow2_create_files *f);

/* The same for local paths (libqcow2-local): creates opts->filename
 * and the data file, which must not exist, opens the backing file from
 * the new image's directory, and leaves nothing behind on failure.
 */
extern int qcow2_create (const struct qcow2_create_options *opts);

#endif /* QCOW2_H */
