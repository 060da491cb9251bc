/* Unit test of the overlap index (overlap.c): seeded random additions
 * and removals of metadata ranges against a shadow count per cluster,
 * with every cluster probed after each step.  Clusters sit close
 * together (long probe runs, deletions that shift entries back) and at
 * the top of the host offset range.
 */
#include <config.h>

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "internal.h"
#include "write-state.h"

#define NR_CLUSTERS 4096
#define STEPS       20000

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t
random_below (uint64_t n)
{
  /* xorshift64*: reproducible everywhere. */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * UINT64_C (2685821657736338717) % n;
}

static void
quiet (const char *fs, va_list args)
{
}

/* The clusters under test, in runs of 8: a block at the bottom (cluster
 * 0 is the header), runs at random places (collisions, long probe runs,
 * deletions that shift entries back), and one just below 2^56 bytes.
 */
static uint64_t clusters[NR_CLUSTERS];

static void
choose_clusters (void)
{
  const uint64_t top = MAX_HOST_OFFSET >> 12;

  for (unsigned i = 0; i < NR_CLUSTERS; i += 8) {
    uint64_t base = i < 8 ? 0 : i + 8 >= NR_CLUSTERS ? top - 7
      : 1 + random_below (top - 8);
    for (unsigned k = 0; k < 8; k++)
      clusters[i + k] = base + k;
  }
}

static uint64_t
cluster_at (unsigned i)
{
  return clusters[i];
}

/* Does a one-cluster check of cluster i report an overlap? */
static bool
hit (struct qcow2_image *img, unsigned i)
{
  int r = check_no_overlap (img, cluster_at (i) << 12, 4096);

  img->w->corrupt = false;
  return r == -1;
}

int
main (void)
{
  static unsigned shadow[NR_CLUSTERS];
  struct write_state w;
  struct qcow2_image img;

  diag_set_handlers (quiet, NULL);
  choose_clusters ();
  memset (&img, 0, sizeof img);
  memset (&w, 0, sizeof w);
  img.filename = (char *) "test";
  img.hdr.version = 2;                /* nothing to mark on disk */
  img.cluster_bits = 12;
  img.cluster_size = 4096;
  img.file_size = 4096;
  img.w = &w;
  assert (overlap_index_build (&img) == 0);
  shadow[0] = 1;                      /* the header */

  for (unsigned step = 0; step < STEPS; step++) {
    unsigned i = random_below (NR_CLUSTERS);
    unsigned n = 1 + random_below (8);

    if (i % 8 + n > 8)         /* ranges stay inside a run */
      continue;
    if (random_below (2)) {
      assert (overlap_add (&img, cluster_at (i) << 12, (uint64_t) n << 12) == 0);
      for (unsigned k = i; k < i + n; k++)
        shadow[k]++;
    }
    else {
      /* Remove only what is there, as the engine does. */
      bool all = true;
      for (unsigned k = i; k < i + n; k++)
        all = all && shadow[k] > 0;
      if (!all)
        continue;
      overlap_remove (&img, cluster_at (i) << 12, (uint64_t) n << 12);
      for (unsigned k = i; k < i + n; k++)
        shadow[k]--;
    }
    for (unsigned k = 0; k < NR_CLUSTERS; k += 1 + (step % 7 != 0) * 63)
      assert (hit (&img, k) == (shadow[k] > 0));
  }
  for (unsigned k = 0; k < NR_CLUSTERS; k++)
    assert (hit (&img, k) == (shadow[k] > 0));

  /* A range check finds a hit anywhere in it; a range past the top of
   * the host offsets is cut there.
   */
  assert (overlap_add (&img, UINT64_C (40) << 12, 4096) == 0);
  assert (check_no_overlap (&img, UINT64_C (30) << 12, 11 << 12) == -1);
  w.corrupt = false;
  assert (check_no_overlap (&img, UINT64_C (30) << 12, 10 << 12) == 0);
  assert (check_no_overlap (&img, MAX_HOST_OFFSET + 1, 4096) == 0);
  overlap_index_free (&img);
  printf ("ok: overlap index, %d steps\n", STEPS);
  return 0;
}
