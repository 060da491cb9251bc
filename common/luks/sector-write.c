/* Writing a byte range through a sector cipher (see sector-write.h). */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "diag.h"
#include "minmax.h"
#include "rounding.h"
#include "sector-write.h"

void
sector_write_lock_init (pthread_rwlock_t *lock)
{
  pthread_rwlockattr_t attr;

  pthread_rwlockattr_init (&attr);
  pthread_rwlockattr_setkind_np (&attr,
                                 PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init (lock, &attr);
  pthread_rwlockattr_destroy (&attr);
}

static void *
bounce_alloc (size_t size)
{
  void *p = malloc (size);

  if (p == NULL)
    diag_error ("malloc: %m");
  return p;
}

/* Part of one sector (offset and offset + count in the same sector):
 * read-modify-write, exclusively.
 */
static int
write_partial (pthread_rwlock_t *lock, const struct sector_writer *w,
               const char *data, uint32_t count, uint64_t offset)
{
  uint64_t start = ROUND_DOWN (offset, (uint64_t) w->sector);
  CLEANUP_FREE char *sector = bounce_alloc (w->sector);
  int r;

  if (sector == NULL)
    return -1;
  pthread_rwlock_wrlock (lock);
  r = w->read_sector (w->opaque, sector, start);
  if (r == 0) {
    if (data)
      memcpy (sector + (offset - start), data, count);
    else
      memset (sector + (offset - start), 0, count);
    r = w->write_sectors (w->opaque, sector, w->sector, start);
  }
  pthread_rwlock_unlock (lock);
  return r;
}

/* Whole sectors, shared, in pieces of at most one bounce buffer. */
static int
write_whole (pthread_rwlock_t *lock, const struct sector_writer *w,
             const char *data, uint64_t count, uint64_t offset)
{
  size_t chunk = MIN (count, (uint64_t) w->chunk);
  CLEANUP_FREE char *buf = NULL;
  int r = 0;

  if (data == NULL)
    chunk = MIN (chunk, (size_t) SECTOR_WRITE_ZERO_CHUNK);
  buf = bounce_alloc (chunk);
  if (buf == NULL)
    return -1;
  pthread_rwlock_rdlock (lock);
  while (count > 0 && r == 0) {
    size_t n = MIN (count, (uint64_t) chunk);

    if (data) {
      memcpy (buf, data, n);
      data += n;
    }
    else
      memset (buf, 0, n);
    r = w->write_sectors (w->opaque, buf, n, offset);
    offset += n;
    count -= n;
  }
  pthread_rwlock_unlock (lock);
  return r;
}

int
sector_write (pthread_rwlock_t *lock, const struct sector_writer *w,
              const void *buf, uint64_t count, uint64_t offset)
{
  const char *data = buf;

  /* A partial head sector, whole sectors, a partial tail sector. */
  while (count > 0) {
    uint32_t head = offset & (w->sector - 1);
    uint64_t n;
    int r;

    if (head != 0 || count < w->sector) {
      n = MIN (count, (uint64_t) w->sector - head);
      r = write_partial (lock, w, data, n, offset);
    }
    else {
      n = ROUND_DOWN (count, (uint64_t) w->sector);
      r = write_whole (lock, w, data, n, offset);
    }
    if (r == -1)
      return -1;
    offset += n;
    count -= n;
    if (data)
      data += n;
  }
  return 0;
}
