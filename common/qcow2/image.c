/* Opening and closing an image: the file, the header, the L1 table,
 * the L2 cache and the layers below.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buffer-pool.h"
#include "byte-order.h"
#include "cluster-cache.h"
#include "diag.h"
#include "internal.h"
#include "io.h"
#include "write-state.h"

#define DEFAULT_L2_CACHE_SIZE (32 * 1024 * 1024)
/* Decompressed clusters kept per image (LIMITS in the plugin manual). */
#define CLUSTER_CACHE_BYTES (16 * 1024 * 1024)
/* Bytes of buffers each pool of compressed reads keeps per image,
 * within buffer-pool.h's bounds on their number (LIMITS).
 */
#define READ_POOL_BYTES (8 * 1024 * 1024)

void
image_report_corrupt (const struct qcow2_image *img, const char *consequence,
                      const char *fs, va_list args)
{
  char msg[512];

  vsnprintf (msg, sizeof msg, fs, args);
  diag_error ("%s: qcow2 image is corrupt: %s%s", img->filename, msg,
              consequence);
}

int
image_corrupt (struct qcow2_image *img, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  image_report_corrupt (img, "", fs, args);
  va_end (args);
  errno = EIO;
  return -1;
}

static void
set_geometry (struct qcow2_image *img)
{
  const struct qcow2_header *h = &img->hdr;

  img->cluster_bits = h->cluster_bits;
  img->cluster_size = UINT64_C (1) << h->cluster_bits;
  img->extended_l2 = (h->incompatible & INCOMPAT_EXTL2) != 0;
  img->l2_entry_size = img->extended_l2 ? 16 : 8;
  img->l2_bits = h->cluster_bits - (img->extended_l2 ? 4 : 3);
  img->subcluster_bits = img->extended_l2 ? h->cluster_bits - 5 : h->cluster_bits;
  img->size = h->size;
}

/* Load an L1 table (validated for position by header_parse or the
 * snapshot table; entries are checked when used).
 */
int
image_load_l1 (struct qcow2_image *img, uint64_t offset, uint32_t size)
{
  img->l1_size = size;
  img->l1 = calloc (size ? size : 1, sizeof (uint64_t));
  if (img->l1 == NULL) {
    diag_error ("calloc: %m");
    return -1;
  }
  if (size == 0)
    return 0;
  if (io_pread (img->file, img->l1, (uint64_t) size * 8, offset) == -1)
    return -1;
  for (uint32_t i = 0; i < size; i++)
    img->l1[i] = load_be64 (&img->l1[i]);
  return 0;
}

/* The decompressed-cluster cache and the buffer pools of compressed
 * reads.
 */
static int
compressed_read_state_create (struct qcow2_image *img)
{
  img->cluster_cache = cluster_cache_create (img->cluster_size,
                                             CLUSTER_CACHE_BYTES);
  img->compressed_pool = buffer_pool_create (2 * img->cluster_size,
                                             READ_POOL_BYTES);
  img->cluster_pool = buffer_pool_create (img->cluster_size, READ_POOL_BYTES);
  if (img->cluster_cache == NULL || img->compressed_pool == NULL ||
      img->cluster_pool == NULL) {
    diag_error ("malloc: %m");
    errno = ENOMEM;
    return -1;
  }
  return 0;
}

int
qcow2_open (const struct qcow2_options *opts, struct qcow2_image **img_ret)
{
  return image_open (opts, NULL, NULL, img_ret);
}

/* file: the image, opened by the image above (backing.c), or NULL to
 * open opts->filename; the image owns it from here on.
 */
int
image_open (const struct qcow2_options *opts, const struct chain_link *above,
            struct io *file, struct qcow2_image **img_ret)
{
  struct qcow2_image *img = calloc (1, sizeof *img);
  pthread_rwlockattr_t attr;
  int64_t size;

  if (img == NULL || (img->filename = strdup (opts->filename)) == NULL) {
    diag_error ("calloc: %m");
    free (img);
    io_close (file);
    return -1;
  }
  pthread_rwlockattr_init (&attr);
  pthread_rwlockattr_setkind_np (&attr,
                                 PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init (&img->meta_lock, &attr);
  pthread_rwlockattr_destroy (&attr);

  /* Read-only until qcow2_prepare_write: under nbdkit -r nothing is
   * ever opened for writing.
   */
  img->file = file ? file
    : named_file_open (img, opts, QCOW2_FILE_IMAGE, opts->filename, NULL,
                       false);
  if (img->file == NULL)
    goto fail;
  img->data = img->file;
  img->readonly = opts->readonly;
  img->debug = opts->debug;
  size = io_size (img->file);
  if (size == -1)
    goto fail;
  img->file_size = img->data_size = size;

  if (qcow1_detect (img->file, img->file_size)) {
    /* These two only refuse data-file= and snapshot= for qcow v1. */
    if (qcow1_open (img) == -1 ||
        crypt_open (img, opts) == -1 ||
        data_file_open (img, opts) == -1 ||
        snapshot_open (img, opts) == -1)
      goto fail;
  }
  else {
    if (header_parse (img->file, img->file_size, &img->hdr) == -1)
      goto fail;
    set_geometry (img);
    if (image_load_l1 (img, img->hdr.l1_table_offset, img->hdr.l1_size) == -1 ||
        data_file_open (img, opts) == -1 ||
        crypt_open (img, opts) == -1 ||
        snapshot_open (img, opts) == -1 ||
        detect_metadata_preallocation (img) == -1)
      goto fail;
  }
  if (backing_open (img, opts, above) == -1 ||
      image_describe (img) == -1)
    goto fail;
  /* An L2 table is one cluster in qcow2, 8 << l2_bits bytes in qcow1. */
  img->l2_cache = meta_cache_create ((uint64_t) img->l2_entry_size << img->l2_bits,
                                     opts->l2_cache_size ? opts->l2_cache_size
                                     : DEFAULT_L2_CACHE_SIZE);
  if (img->l2_cache == NULL)
    goto fail;
  meta_cache_set_debug (img->l2_cache, &img->debug, img->filename, "L2");
  if (img->crypt == NULL && compressed_read_state_create (img) == -1)
    goto fail;
  *img_ret = img;
  return 0;

 fail:
  {
    int e = errno;
    qcow2_close (img);
    errno = e;
  }
  return -1;
}

int
qcow2_close (struct qcow2_image *img)
{
  int r;

  if (img == NULL)
    return 0;
  r = write_finish (img);
  backing_close (img->backing);
  meta_cache_destroy (img->l2_cache);
  cluster_cache_destroy (img->cluster_cache);
  buffer_pool_destroy (img->compressed_pool);
  buffer_pool_destroy (img->cluster_pool);
  crypt_close (img->crypt);
  if (img->data != img->file)
    io_close (img->data);
  io_close (img->file);
  header_free (&img->hdr);
  pthread_rwlock_destroy (&img->meta_lock);
  free (img->l1);
  snapshots_free (img->snapshots, img->hdr.nb_snapshots);
  free (img->exported_snapshot);
  free (img->description);
  free (img->filename);
  free (img);
  return r;
}

int
image_open_for_writing (struct qcow2_image *img)
{
  if (io_make_writable (img->file) == 0 &&
      (img->data == img->file || io_make_writable (img->data) == 0))
    return 0;
  if (errno == EROFS) {
    diag_debug ("%s: the image or its data file cannot be opened for "
                "writing: serving it read-only", img->filename);
    img->readonly = true;
  }
  return -1;
}

uint64_t
qcow2_size (const struct qcow2_image *img)
{
  return img->size;
}

uint32_t
qcow2_cluster_size (const struct qcow2_image *img)
{
  return img->cluster_size;
}

bool
qcow2_is_writable (const struct qcow2_image *img)
{
  return !img->readonly;
}

const char *
qcow2_description (const struct qcow2_image *img)
{
  return img->description;
}
