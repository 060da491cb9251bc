/* A bounded free list of equal-sized heap buffers.
 *
 * Every read of a compressed cluster needs an input buffer of two
 * clusters and often a cluster to decompress into.  Taking them from
 * malloc per request costs page faults and arena locks that showed up
 * as a tenth of a 4 KiB random-read profile: the allocator hands the
 * memory back to the kernel between requests.  The pool keeps a
 * bounded number of them for the next request instead; it never
 * allocates more than requests in flight ask for.
 */
#ifndef QCOW2_BUFFER_POOL_H
#define QCOW2_BUFFER_POOL_H

#include <stddef.h>

struct buffer_pool;

/* Buffers kept between uses, whatever max_bytes allows. */
#define BUFFER_POOL_MIN_KEPT 2
#define BUFFER_POOL_MAX_KEPT 64

/* Buffers of size bytes; between uses it keeps as many as fit in
 * max_bytes, but at least BUFFER_POOL_MIN_KEPT and at most
 * BUFFER_POOL_MAX_KEPT.  NULL on ENOMEM.
 */
extern struct buffer_pool *buffer_pool_create (size_t size, size_t max_bytes);
extern void buffer_pool_destroy (struct buffer_pool *p);

/* A kept buffer, else a new one from malloc (contents undefined).
 * NULL with errno ENOMEM.
 */
extern void *buffer_pool_get (struct buffer_pool *p);

/* Give buf back (NULL is ignored): kept if the pool has room, else
 * freed.  buf must be a malloc'd block of at least size bytes.
 */
extern void buffer_pool_put (struct buffer_pool *p, void *buf);

/* How many buffers are kept now (for tests). */
extern size_t buffer_pool_kept (struct buffer_pool *p);

#endif /* QCOW2_BUFFER_POOL_H */
