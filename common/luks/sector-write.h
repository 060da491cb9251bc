/* Writing a byte range through a sector cipher, for the luks filter
 * and the qcow2 engine's encrypted images alike.
 *
 * Whole sectors are copied to a bounce buffer (the caller's data stays
 * as it is), encrypted and written.  A sector written in part is read,
 * decrypted, patched, encrypted and written back, holding the lock
 * exclusively, so that no other write of that sector can slip in
 * between its read and its write; whole sectors hold it shared.  The
 * lock prefers writers, so that a partial write is not starved by a
 * stream of aligned ones.
 */
#ifndef LUKS_SECTOR_WRITE_H
#define LUKS_SECTOR_WRITE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Zeroes are encrypted from a bounce buffer of at most this size. */
#define SECTOR_WRITE_ZERO_CHUNK (1024 * 1024)

struct sector_writer {
  uint32_t sector;              /* sector size, a power of two */
  size_t chunk;                 /* largest write_sectors, a multiple of sector */
  /* Read the sector at offset, decrypted, into buf. */
  int (*read_sector) (void *opaque, void *buf, uint64_t offset);
  /* Encrypt len bytes of whole sectors in buf (changed) and write them
   * at offset.
   */
  int (*write_sectors) (void *opaque, void *buf, size_t len, uint64_t offset);
  void *opaque;
};

extern void sector_write_lock_init (pthread_rwlock_t *lock);

/* Write count bytes of data (NULL: zeroes) at offset: a partial head
 * sector, whole sectors, a partial tail sector.  0, or -1 with errno
 * set and the cause reported.
 */
extern int sector_write (pthread_rwlock_t *lock,
                         const struct sector_writer *w, const void *data,
                         uint64_t count, uint64_t offset);

#endif /* LUKS_SECTOR_WRITE_H */
