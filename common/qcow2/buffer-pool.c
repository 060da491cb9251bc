/* Bounded free list of buffers: see buffer-pool.h.  A mutex around a
 * stack of pointers; it is held only to push or pop one.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "buffer-pool.h"
#include "cleanup.h"
#include "minmax.h"

struct buffer_pool {
  pthread_mutex_t lock;
  size_t size;
  size_t max_free;
  size_t nr_free;
  void *free[];                 /* max_free slots, nr_free used */
};

struct buffer_pool *
buffer_pool_create (size_t size, size_t max_bytes)
{
  size_t fit = size ? max_bytes / size : BUFFER_POOL_MAX_KEPT;
  size_t max_free = MIN (fit, (size_t) BUFFER_POOL_MAX_KEPT);
  struct buffer_pool *p;

  max_free = MAX (max_free, (size_t) BUFFER_POOL_MIN_KEPT);
  p = malloc (sizeof *p + max_free * sizeof (void *));
  if (p == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  pthread_mutex_init (&p->lock, NULL);
  p->size = size;
  p->max_free = max_free;
  p->nr_free = 0;
  return p;
}

void
buffer_pool_destroy (struct buffer_pool *p)
{
  if (p == NULL)
    return;
  while (p->nr_free > 0)
    free (p->free[--p->nr_free]);
  pthread_mutex_destroy (&p->lock);
  free (p);
}

void *
buffer_pool_get (struct buffer_pool *p)
{
  void *buf = NULL;

  {
    SCOPED_LOCK (&p->lock);
    if (p->nr_free > 0)
      buf = p->free[--p->nr_free];
  }
  if (buf == NULL && (buf = malloc (p->size)) == NULL)
    errno = ENOMEM;
  return buf;
}

void
buffer_pool_put (struct buffer_pool *p, void *buf)
{
  if (buf == NULL)
    return;
  {
    SCOPED_LOCK (&p->lock);
    if (p->nr_free < p->max_free) {
      p->free[p->nr_free++] = buf;
      return;
    }
  }
  free (buf);
}

size_t
buffer_pool_kept (struct buffer_pool *p)
{
  SCOPED_LOCK (&p->lock);
  return p->nr_free;
}
