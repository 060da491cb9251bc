/* Guest data in host clusters.  Every byte of guest data read from or
 * written to a data cluster passes through here, so this is where
 * encryption (crypt_method 1 and 2, crypt.c) is applied: `host` is where
 * the bytes live, `guest` the guest offset they belong to (QEMU's legacy
 * AES takes its IV from the guest offset, LUKS from the host offset).
 */
#include <config.h>

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

int
data_read (struct qcow2_image *img, void *buf, uint64_t count, uint64_t host,
           uint64_t guest)
{
  if (img->crypt)
    return crypt_read (img, buf, count, host, guest);
  return data_read_plain (img, buf, count, host);
}

int
data_write (struct qcow2_image *img, const void *buf, uint64_t count,
            uint64_t host, uint64_t guest)
{
  if (img->crypt)
    return crypt_write (img, buf, count, host, guest);
  return data_write_plain (img, buf, count, host);
}
