/* Creating an image, step 1: checking the options, and the backing
 * file (see create.h).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "byte-order.h"
#include "cleanup.h"
#include "create.h"
#include "diag.h"
#include "format.h"
#include "internal.h"
#include "io.h"
#include "rounding.h"

int
create_invalid (const char *what)
{
  diag_error ("%s", what);
  errno = EINVAL;
  return -1;
}

int
create_check_options (const struct qcow2_create_options *o,
                      uint32_t cluster_size, unsigned refcount_bits)
{
  if (o->filename == NULL || *o->filename == '\0')
    return create_invalid ("create: no image file name");
  if (o->version != 2 && o->version != 3)
    return create_invalid ("create: compat must be 0.10 (v2) or 1.1 (v3)");
  if (cluster_size < (1u << MIN_CLUSTER_BITS) ||
      cluster_size > (1u << MAX_CLUSTER_BITS) ||
      !is_power_of_2 (cluster_size))
    return create_invalid ("Cluster size must be a power of two between 512 "
                           "and 2048k");
  if (refcount_bits == 0 || refcount_bits > 64 || !is_power_of_2 (refcount_bits))
    return create_invalid ("Refcount width must be a power of two and may "
                           "not exceed 64 bits");
  if (o->compression_type > 1)
    return create_invalid ("create: compression type must be zlib or zstd");

  if (o->version == 2) {
    if (o->lazy_refcounts)
      return create_invalid ("Lazy refcounts only supported with compatibility "
                             "level 1.1 and above (use compat=1.1 or greater)");
    if (refcount_bits != 16)
      return create_invalid ("Different refcount widths than 16 bits require "
                             "compatibility level 1.1 or above (use "
                             "compat=1.1 or greater)");
    if (o->extended_l2)
      return create_invalid ("Extended L2 entries are only supported with "
                             "compatibility level 1.1 and above (use "
                             "compat=1.1 or greater)");
    if (o->compression_type != 0)
      return create_invalid ("Non-zlib compression type is only supported with "
                             "compatibility level 1.1 and above (use "
                             "compat=1.1 or greater)");
    if (o->data_file)
      return create_invalid ("External data files are only supported with "
                             "compatibility level 1.1 and above (use "
                             "compat=1.1 or greater)");
  }
  if (o->encrypt != QCOW2_ENCRYPT_NONE && o->passphrase == NULL)
    return create_invalid ("create: an encrypted image needs a passphrase");
  if (o->extended_l2 && cluster_size < 16384)
    return create_invalid ("Extended L2 entries are only supported with "
                           "cluster "
                           "sizes of at least 16384 bytes");

  if (o->backing_file == NULL && o->backing_format)
    return create_invalid ("Backing format cannot be used without backing "
                           "file");
  if (o->backing_file && o->backing_format == NULL)
    return create_invalid ("Backing file specified without backing format");
  if (o->backing_file &&
      (*o->backing_file == '\0' || strlen (o->backing_file) > MAX_BACKING_FILE_SIZE))
    return create_invalid ("create: the backing file name must be 1 to 1023 "
                           "bytes long");
  if (o->backing_format && *o->backing_format == '\0')
    return create_invalid ("create: empty backing format");
  if (o->backing_file == NULL && o->size_from_backing)
    return create_invalid ("create: the size is required without a backing "
                           "file");

  if (o->data_file_raw && o->data_file == NULL)
    return create_invalid ("data-file-raw requires data-file");
  if (o->data_file && *o->data_file == '\0')
    return create_invalid ("create: empty data file name");
  if (o->data_file_raw && o->backing_file)
    return create_invalid ("Backing file and data-file-raw cannot be used "
                           "at the same time");
  if (o->backing_file && o->preallocation != QCOW2_PREALLOC_OFF &&
      !o->extended_l2)
    return create_invalid ("Backing file and preallocation can only be used at "
                           "the same time if extended_l2 is on");
  return 0;
}

/* ---------------------------------------------------------------------
 * The backing file, opened the way QEMU would to check it: its name is
 * relative to the directory of the new image.
 */

/* The backing file's virtual size: the file size for raw, the
 * header's size field for qcow2.  Other formats are only checked to
 * exist (the caller opened it).  Sets *size to INVALID when it cannot
 * be known.
 */
int
create_probe_backing (const struct qcow2_create_options *o, struct io *io,
                      uint64_t *size)
{
  unsigned char hdr[HDR_SIZE + 8];
  int64_t len;

  *size = INVALID;
  len = io_size (io);
  if (len == -1)
    return -1;

  if (strcmp (o->backing_format, "raw") == 0)
    *size = len;
  else if (strcmp (o->backing_format, "qcow2") == 0) {
    if (len < (int64_t) sizeof hdr ||
        io_pread (io, hdr, sizeof hdr, 0) == -1 ||
        load_be32 (hdr + HDR_MAGIC) != QCOW2_MAGIC) {
      diag_error ("create: backing file '%s' is not in qcow2 format",
                  o->backing_file);
      errno = EINVAL;
      return -1;
    }
    *size = load_be64 (hdr + HDR_SIZE);
  }
  return 0;
}
