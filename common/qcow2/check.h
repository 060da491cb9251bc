/* What the check (check.c) and its repair (check-repair.c) share. */
#ifndef QCOW2_CHECK_INTERNAL_H
#define QCOW2_CHECK_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"
#include "qcow2-check.h"

struct check {
  struct qcow2_image *img;
  struct qcow2_check_result *r;
  bool data_file;               /* guest data lives elsewhere */

  /* The references counted, one per host cluster; grows for
   * references just past the end of the file.
   */
  uint64_t *counts;
  uint64_t nr_counts;
  uint64_t file_clusters;
  uint64_t max;                 /* the largest refcount the width holds */

  /* The stored refcounts: the table, and one block read at a time. */
  uint64_t *reftable;
  uint64_t reftable_entries;
  unsigned rb_bits;
  unsigned char *block;
  uint64_t block_offset;        /* of block; 0 = none read */

  unsigned char *l2;            /* one L2 table */

  /* For the repair: the refcount structures themselves are wrong (a
   * refcount block misplaced, or not referenced exactly once), or a
   * cluster in use has no refcount at all; and how many corruptions
   * were COPIED flags alone.
   */
  bool rebuild_refblocks;
  bool unrefcounted;
  uint64_t copied_corruptions;
};

/* Walk the image and compare (qcow2_check); c keeps the counts.  Call
 * check_free after, whatever it returns.
 */
extern int check_run (struct check *c, struct qcow2_image *img,
                      struct qcow2_check_result *r);
extern void check_free (struct check *c);

/* The stored refcount of a cluster, as on disk: 0 past the table or
 * without a block.  -1 for a block that cannot be read.
 */
extern int stored_refcount (struct check *c, uint64_t cluster,
                            uint64_t *value);

/* What an L2 entry is, in the terms of "Cluster mapping". */
enum entry_type { E_UNALLOCATED, E_NORMAL, E_ZERO_PLAIN, E_ZERO_ALLOC,
                  E_COMPRESSED };
extern enum entry_type entry_type (const struct check *c, uint64_t e);

#endif /* QCOW2_CHECK_INTERNAL_H */
