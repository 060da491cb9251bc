/* A small cache of decompressed clusters, per image.
 *
 * A 4 KiB read of a compressed cluster otherwise decompresses the whole
 * cluster (up to 2 MiB) every time; QEMU keeps the last one per image.
 * Many threads read at once, so this keeps a few entries in shards,
 * each with its own mutex: a hit holds one shard's lock for a copy of
 * the bytes asked for, and there is no image-wide lock.
 *
 * Key: the compressed cluster's host offset and length, both from its
 * L2 descriptor (qcow2.txt "Compressed Clusters Descriptor").  Never
 * stale, because the bytes in a host range only change when
 *   - the range is allocated again for compressed data: the allocator
 *     (compressed-write.c) calls cluster_cache_invalidate for the new
 *     bytes first, which drops every entry overlapping them, so a new
 *     cluster at a freed offset never finds the old one's entry; frees
 *     themselves (rewrite, discard, zero) need nothing, as no live L2
 *     entry names freed space;
 *   - a reader that mapped the old descriptor is still decompressing
 *     when the space is freed and reused: each reader takes the epoch
 *     before it maps, and its insert is refused if any invalidation
 *     happened since;
 *   - the range reaches past the end of the file (read as zeroes, later
 *     written by any allocation): such clusters are never cached.
 */
#ifndef QCOW2_CLUSTER_CACHE_H
#define QCOW2_CLUSTER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cluster_cache;

/* At most max_bytes of clusters, and at least one entry per shard.
 * Buffers are allocated as entries fill.  NULL on ENOMEM.
 */
extern struct cluster_cache *cluster_cache_create (size_t cluster_size,
                                                   size_t max_bytes);
extern void cluster_cache_destroy (struct cluster_cache *c);
/* Bytes the cache may hold (entries * cluster_size). */
extern size_t cluster_cache_capacity (const struct cluster_cache *c);

/* Take before mapping the guest offset; pass to cluster_cache_insert. */
extern uint64_t cluster_cache_epoch (struct cluster_cache *c);

/* Copy count bytes from offset skip of the cached cluster (host, len)
 * to buf; false if it is not cached.
 */
extern bool cluster_cache_read (struct cluster_cache *c, uint64_t host,
                                uint64_t len, void *buf, size_t skip,
                                size_t count);

/* Offer the decompressed cluster in *cluster (malloc'd, cluster_size
 * bytes).  If taken, *cluster is swapped with the evicted entry's
 * buffer (NULL if the entry was empty); the caller frees what it gets
 * back.  Refused (nothing changes) if an invalidation happened since
 * epoch.
 */
extern void cluster_cache_insert (struct cluster_cache *c, uint64_t epoch,
                                  uint64_t host, uint64_t len,
                                  unsigned char **cluster);

/* Drop every entry whose compressed bytes overlap [host, host + len),
 * and refuse inserts by readers that started before.
 */
extern void cluster_cache_invalidate (struct cluster_cache *c, uint64_t host,
                                      uint64_t len);

#endif /* QCOW2_CLUSTER_CACHE_H */
