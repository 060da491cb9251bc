/* A bounded cache of cluster-sized metadata tables: L2 tables and
 * refcount blocks each get one.
 *
 * Tables are kept whole, as the raw big-endian bytes from disk.  A
 * caller pins a table with meta_cache_get and releases it with
 * meta_cache_put.  Only clean, unpinned tables are evicted, least
 * recently used first; if there are none the cache grows past its bound
 * for a moment rather than block, and the next writer writes the dirty
 * tables back (meta_cache_writeback) in the order crash safety needs
 * (see writeback.c), after which the cache shrinks back to its bound.
 * Dirty tables are otherwise kept until a flush, as QEMU keeps them: a
 * working set that fits is never written back for room, however much
 * of it is dirty.  Loading happens outside the cache lock, so
 * misses on different tables proceed in parallel; if two threads load
 * the same table, the second copy is discarded.
 *
 * Table contents are read under the image's metadata lock held shared
 * and changed only with it held exclusively.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "diag.h"
#include "internal.h"
#include "io.h"

struct slot {
  struct meta_table table;      /* first, so a table pointer is a slot */
  struct slot *hash_next;
  struct slot *newer, *older;   /* the use order, most recent first */
  unsigned pins;
  bool dirty;
  bool dropped;                 /* unlinked while pinned: free on last put */
};

struct meta_cache {
  pthread_mutex_t lock;
  uint64_t table_bytes;
  size_t max_slots;
  size_t nr_slots;
  size_t nr_dirty;
  bool starved;                 /* full, and no clean table to evict */
  struct slot *newest, *oldest;
  struct slot **buckets;
  size_t nr_buckets;            /* a power of two */
  uint64_t loads, evictions;    /* reported at destroy (nbdkit -v) */
  const struct qcow2_debug *debug;      /* meta_cache_set_debug */
  const char *file, *what;
};

/* A QCOW2_DEBUG_CACHE message about the table at offset. */
#define cache_debug(c, event, offset)                                   \
  do {                                                                  \
    if ((c)->debug && ((c)->debug->flags & QCOW2_DEBUG_CACHE))          \
      debug_print ((c)->debug, "%s: %s cache %s: table at %#" PRIx64,  \
                   (c)->file, (c)->what, (event), (offset));            \
  } while (0)

void
meta_cache_set_debug (struct meta_cache *c, const struct qcow2_debug *debug,
                      const char *file, const char *what)
{
  c->debug = debug;
  c->file = file;
  c->what = what;
}

static size_t
bucket_of (const struct meta_cache *c, uint64_t offset)
{
  /* Table offsets are cluster-aligned: mix the high bits down. */
  uint64_t h = offset * UINT64_C (0x9e3779b97f4a7c15);

  return (h >> 32) & (c->nr_buckets - 1);
}

struct meta_cache *
meta_cache_create (uint64_t table_bytes, uint64_t max_bytes)
{
  struct meta_cache *c = calloc (1, sizeof *c);
  size_t max_slots = max_bytes / table_bytes;

  if (max_slots < 4)
    max_slots = 4;
  if (c == NULL)
    goto nomem;
  c->table_bytes = table_bytes;
  c->max_slots = max_slots;
  c->nr_buckets = 16;
  while (c->nr_buckets < max_slots)
    c->nr_buckets <<= 1;
  c->buckets = calloc (c->nr_buckets, sizeof *c->buckets);
  if (c->buckets == NULL)
    goto nomem;
  pthread_mutex_init (&c->lock, NULL);
  return c;

 nomem:
  diag_error ("calloc: %m");
  if (c)
    free (c->buckets);
  free (c);
  errno = ENOMEM;
  return NULL;
}

static void
free_slot (struct slot *s)
{
  free (s->table.data);
  free (s);
}

void
meta_cache_destroy (struct meta_cache *c)
{
  if (c == NULL)
    return;
  diag_debug ("metadata cache of %zu tables of %" PRIu64 " bytes: "
              "%" PRIu64 " loaded, %" PRIu64 " evicted",
              c->max_slots, c->table_bytes, c->loads, c->evictions);
  for (size_t i = 0; i < c->nr_buckets; i++) {
    struct slot *s = c->buckets[i], *next;
    for (; s; s = next) {
      next = s->hash_next;
      free_slot (s);
    }
  }
  pthread_mutex_destroy (&c->lock);
  free (c->buckets);
  free (c);
}

static struct slot *
find (struct meta_cache *c, uint64_t offset)
{
  struct slot *s;

  for (s = c->buckets[bucket_of (c, offset)]; s; s = s->hash_next)
    if (s->table.offset == offset)
      return s;
  return NULL;
}

static void
lru_remove (struct meta_cache *c, struct slot *s)
{
  if (s->newer)
    s->newer->older = s->older;
  else
    c->newest = s->older;
  if (s->older)
    s->older->newer = s->newer;
  else
    c->oldest = s->newer;
  s->newer = s->older = NULL;
}

static void
lru_push_newest (struct meta_cache *c, struct slot *s)
{
  s->older = c->newest;
  s->newer = NULL;
  if (c->newest)
    c->newest->newer = s;
  else
    c->oldest = s;
  c->newest = s;
}

static void
unlink_slot (struct meta_cache *c, struct slot *victim)
{
  struct slot **pp = &c->buckets[bucket_of (c, victim->table.offset)];

  while (*pp != victim)
    pp = &(*pp)->hash_next;
  *pp = victim->hash_next;
  lru_remove (c, victim);
  c->nr_slots--;
  if (victim->dirty)
    c->nr_dirty--;
}

/* Evict the least recently used clean, unpinned table, if any: from
 * the old end of the use order, where one usually is.
 */
static bool
evict_one (struct meta_cache *c)
{
  struct slot *victim = c->oldest;

  while (victim && (victim->pins || victim->dirty))
    victim = victim->newer;
  if (victim == NULL)
    return false;
  cache_debug (c, "eviction", victim->table.offset);
  unlink_slot (c, victim);
  free_slot (victim);
  c->evictions++;
  return true;
}

static void
insert (struct meta_cache *c, struct slot *s)
{
  size_t b = bucket_of (c, s->table.offset);

  /* Back to the bound after it was passed, as far as clean tables go. */
  while (c->nr_slots >= c->max_slots)
    if (!evict_one (c)) {
      c->starved = true;
      break;
    }
  s->hash_next = c->buckets[b];
  c->buckets[b] = s;
  c->nr_slots++;
  s->pins = 1;
  lru_push_newest (c, s);
}

static struct slot *
pin_existing (struct meta_cache *c, uint64_t offset)
{
  struct slot *s = find (c, offset);

  if (s) {
    s->pins++;
    lru_remove (c, s);
    lru_push_newest (c, s);
  }
  return s;
}

static struct slot *
new_slot (struct meta_cache *c, uint64_t offset)
{
  struct slot *s = calloc (1, sizeof *s);

  if (s == NULL || (s->table.data = malloc (c->table_bytes)) == NULL) {
    diag_error ("malloc: %m");
    free (s);
    errno = ENOMEM;
    return NULL;
  }
  s->table.offset = offset;
  return s;
}

int
meta_cache_get (struct meta_cache *c, struct io *file, uint64_t offset,
                struct meta_table **t)
{
  struct slot *s, *loaded;

  {
    SCOPED_LOCK (&c->lock);
    s = pin_existing (c, offset);
  }
  if (s) {
    cache_debug (c, "hit", offset);
    *t = &s->table;
    return 0;
  }

  cache_debug (c, "miss", offset);
  loaded = new_slot (c, offset);
  if (loaded == NULL)
    return -1;
  if (io_pread (file, loaded->table.data, c->table_bytes, offset) == -1) {
    free_slot (loaded);
    return -1;
  }

  SCOPED_LOCK (&c->lock);
  s = pin_existing (c, offset);
  if (s)
    free_slot (loaded);         /* another thread won the race */
  else {
    s = loaded;
    insert (c, s);
    c->loads++;
  }
  *t = &s->table;
  return 0;
}

int
meta_cache_get_new (struct meta_cache *c, uint64_t offset,
                    struct meta_table **t)
{
  struct slot *s = new_slot (c, offset);

  if (s == NULL)
    return -1;
  memset (s->table.data, 0, c->table_bytes);

  SCOPED_LOCK (&c->lock);
  {
    struct slot *old = find (c, offset);
    if (old) {                  /* a stale copy of a freed table */
      unlink_slot (c, old);
      if (old->pins == 0)
        free_slot (old);
      else
        old->dropped = true;
    }
  }
  insert (c, s);
  s->dirty = true;
  c->nr_dirty++;
  *t = &s->table;
  return 0;
}

void
meta_cache_put (struct meta_cache *c, struct meta_table *t)
{
  struct slot *s = (struct slot *) t;

  SCOPED_LOCK (&c->lock);
  if (--s->pins == 0 && s->dropped)
    free_slot (s);
}

void
meta_cache_mark_dirty (struct meta_cache *c, struct meta_table *t)
{
  struct slot *s = (struct slot *) t;

  SCOPED_LOCK (&c->lock);
  if (!s->dirty) {
    s->dirty = true;
    c->nr_dirty++;
  }
}

size_t
meta_cache_nr_dirty (struct meta_cache *c)
{
  SCOPED_LOCK (&c->lock);
  return c->nr_dirty;
}

bool
meta_cache_over_budget (struct meta_cache *c)
{
  SCOPED_LOCK (&c->lock);
  return c->starved;
}

static int
compare_offsets (const void *a, const void *b)
{
  const struct slot *x = *(struct slot *const *) a;
  const struct slot *y = *(struct slot *const *) b;

  return x->table.offset < y->table.offset ? -1
    : x->table.offset > y->table.offset;
}

/* The dirty tables, in order of their offsets in the file, so that
 * writeback goes through it once, front to back.  *nr set; NULL if
 * there are none or after reporting ENOMEM.
 */
static struct slot **
dirty_by_offset (struct meta_cache *c, size_t *nr)
{
  struct slot **v;

  *nr = 0;
  if (c->nr_dirty == 0)
    return NULL;
  v = malloc (c->nr_dirty * sizeof *v);
  if (v == NULL) {
    diag_error ("malloc: %m");
    errno = ENOMEM;
    return NULL;
  }
  for (struct slot *s = c->newest; s; s = s->older)
    if (s->dirty)
      v[(*nr)++] = s;
  qsort (v, *nr, sizeof *v, compare_offsets);
  return v;
}

/* Write every dirty table.  The caller holds the metadata lock
 * exclusively, so no table changes underneath; tables stay cached.
 */
int
meta_cache_writeback (struct meta_cache *c, struct io *file)
{
  struct slot **dirty;
  size_t nr;
  int r = 0;

  {
    SCOPED_LOCK (&c->lock);
    dirty = dirty_by_offset (c, &nr);
    if (dirty == NULL && c->nr_dirty > 0)
      return -1;
  }
  for (size_t i = 0; i < nr && r == 0; i++) {
    struct slot *s = dirty[i];

    r = io_pwrite (file, s->table.data, c->table_bytes, s->table.offset);
    if (r == 0) {
      SCOPED_LOCK (&c->lock);
      s->dirty = false;
      c->nr_dirty--;
    }
  }
  free (dirty);
  if (r == 0) {
    SCOPED_LOCK (&c->lock);
    c->starved = false;
  }
  return r;
}

void
meta_cache_drop (struct meta_cache *c, uint64_t offset)
{
  struct slot *s;

  SCOPED_LOCK (&c->lock);
  s = find (c, offset);
  if (s == NULL)
    return;
  unlink_slot (c, s);
  if (s->pins == 0)
    free_slot (s);
  else
    s->dropped = true;
}
