/* Decompressed-cluster cache: see cluster-cache.h for why it is never
 * stale.  Entries are spread over shards by host offset; each shard is
 * a short array searched linearly and evicted in round-robin order
 * (random 4K reads have no locality a smarter policy could use, and
 * sequential ones hit the newest entry).
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cluster-cache.h"
#include "minmax.h"

#define NR_SHARDS 8
#define MAX_PER_SHARD 32        /* keeps the linear search short */

struct entry {
  uint64_t host, len;           /* key; len == 0: empty */
  unsigned char *data;
};

struct shard {
  pthread_mutex_t lock;
  unsigned next_victim;
  struct entry *e;
};

struct cluster_cache {
  size_t cluster_size;
  unsigned per_shard;
  _Atomic uint64_t epoch;
  struct shard shard[NR_SHARDS];
};

struct cluster_cache *
cluster_cache_create (size_t cluster_size, size_t max_bytes)
{
  struct cluster_cache *c = calloc (1, sizeof *c);
  size_t entries = max_bytes / cluster_size / NR_SHARDS;
  size_t per_shard = entries < 1 ? 1 : entries;

  if (c == NULL)
    return NULL;
  c->cluster_size = cluster_size;
  c->per_shard = MIN (per_shard, (size_t) MAX_PER_SHARD);
  for (unsigned i = 0; i < NR_SHARDS; i++) {
    c->shard[i].e = calloc (c->per_shard, sizeof (struct entry));
    if (c->shard[i].e == NULL) {
      cluster_cache_destroy (c);
      errno = ENOMEM;
      return NULL;
    }
    pthread_mutex_init (&c->shard[i].lock, NULL);
  }
  return c;
}

void
cluster_cache_destroy (struct cluster_cache *c)
{
  if (c == NULL)
    return;
  for (unsigned i = 0; i < NR_SHARDS; i++) {
    if (c->shard[i].e == NULL)
      continue;
    for (unsigned j = 0; j < c->per_shard; j++)
      free (c->shard[i].e[j].data);
    free (c->shard[i].e);
    pthread_mutex_destroy (&c->shard[i].lock);
  }
  free (c);
}

size_t
cluster_cache_capacity (const struct cluster_cache *c)
{
  return (size_t) NR_SHARDS * c->per_shard * c->cluster_size;
}

uint64_t
cluster_cache_epoch (struct cluster_cache *c)
{
  return atomic_load (&c->epoch);
}

/* Compressed clusters start at byte granularity: mix the offset so
 * neighbours land in different shards.
 */
static struct shard *
shard_of (struct cluster_cache *c, uint64_t host)
{
  uint64_t h = host * UINT64_C (0x9e3779b97f4a7c15);

  return &c->shard[h >> 61];
}

static struct entry *
find (struct cluster_cache *c, struct shard *s, uint64_t host, uint64_t len)
{
  for (unsigned j = 0; j < c->per_shard; j++)
    if (s->e[j].len == len && s->e[j].host == host)
      return &s->e[j];
  return NULL;
}

bool
cluster_cache_read (struct cluster_cache *c, uint64_t host, uint64_t len,
                    void *buf, size_t skip, size_t count)
{
  struct shard *s = shard_of (c, host);
  struct entry *e;

  if (len == 0)
    return false;
  pthread_mutex_lock (&s->lock);
  e = find (c, s, host, len);
  if (e)
    memcpy (buf, e->data + skip, count);
  pthread_mutex_unlock (&s->lock);
  return e != NULL;
}

void
cluster_cache_insert (struct cluster_cache *c, uint64_t epoch,
                      uint64_t host, uint64_t len, unsigned char **cluster)
{
  struct shard *s = shard_of (c, host);
  struct entry *e;
  unsigned char *old;

  if (len == 0)
    return;
  pthread_mutex_lock (&s->lock);
  /* Checked under the shard lock: an invalidation bumps the epoch
   * before it takes the shard locks, so it either sees this entry
   * or makes this test fail.
   */
  if (atomic_load (&c->epoch) == epoch && find (c, s, host, len) == NULL) {
    e = &s->e[s->next_victim];
    s->next_victim = (s->next_victim + 1) % c->per_shard;
    old = e->data;
    e->data = *cluster;
    e->host = host;
    e->len = len;
    *cluster = old;
  }
  pthread_mutex_unlock (&s->lock);
}

void
cluster_cache_invalidate (struct cluster_cache *c, uint64_t host, uint64_t len)
{
  atomic_fetch_add (&c->epoch, 1);
  for (unsigned i = 0; i < NR_SHARDS; i++) {
    struct shard *s = &c->shard[i];

    pthread_mutex_lock (&s->lock);
    for (unsigned j = 0; j < c->per_shard; j++) {
      struct entry *e = &s->e[j];

      if (e->len && e->host < host + len && host < e->host + e->len)
        e->len = 0;
    }
    pthread_mutex_unlock (&s->lock);
  }
}
