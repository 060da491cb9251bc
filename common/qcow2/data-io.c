/* Guest data in host clusters.  Every byte of guest data read from or
 * written to a data cluster passes through here, so this is where
 * encryption (crypt_method 1 and 2, crypt.c) is applied: `host` is where
 * the bytes live, `guest` the guest offset they belong to (QEMU's legacy
 * AES takes its IV from the guest offset, LUKS from the host offset).
 */
#include <config.h>

#include <errno.h>

#include "diag.h"
#include "internal.h"
#include "io.h"

int
data_read_plain (struct qcow2_image *img, void *buf, uint64_t count,
                 uint64_t host)
{
  /* The last cluster of a file may be partly beyond its end (and an
   * external data file may be short): that part reads as zeroes.
   */
  if (host + count > img->data_size)
    return io_pread_zero_padded (img->data, buf, count, host);
  return io_pread (img->data, buf, count, host);
}

int
data_write_plain (struct qcow2_image *img, const void *buf, uint64_t count,
                  uint64_t host)
{
  return io_pwrite (img->data, buf, count, host);
}

/* An encrypted image opened without its key (metadata_only in
 * qcow2_options): the stored bytes are not the guest's.
 */
static int
no_key (struct qcow2_image *img)
{
  if (img->crypt || img->hdr.crypt_method == CRYPT_NONE)
    return 0;
  diag_error ("%s: the image is encrypted and was opened without its "
              "passphrase: its data cannot be read or written",
              img->filename);
  errno = EPERM;
  return -1;
}

int
data_read (struct qcow2_image *img, void *buf, uint64_t count, uint64_t host,
           uint64_t guest)
{
  if (img->crypt)
    return crypt_read (img, buf, count, host, guest);
  if (no_key (img) == -1)
    return -1;
  return data_read_plain (img, buf, count, host);
}

int
data_write (struct qcow2_image *img, const void *buf, uint64_t count,
            uint64_t host, uint64_t guest)
{
  if (img->crypt)
    return crypt_write (img, buf, count, host, guest);
  if (no_key (img) == -1)
    return -1;
  return data_write_plain (img, buf, count, host);
}
