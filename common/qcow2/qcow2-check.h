/* Checking an image's metadata, as qemu-img check does: every table is
 * walked, every reference to a host cluster counted, and the counts
 * compared with the stored refcounts.  Plain C, no nbdkit types (see
 * qcow2.h).
 */
#ifndef QCOW2_CHECK_H
#define QCOW2_CHECK_H

#include <stdint.h>

#include "qcow2.h"

/* Counts under the names of qemu-img check's JSON output. */
struct qcow2_check_result {
  uint64_t corruptions;         /* references the refcounts do not cover,
                                   and tables or entries that are wrong */
  uint64_t leaks;               /* refcounts above the references */
  uint64_t check_errors;        /* the check itself could not go on */
  uint64_t corruptions_fixed;
  uint64_t leaks_fixed;
  uint64_t image_end_offset;    /* past the last cluster in use */
  uint64_t total_clusters;      /* of the virtual disk */
  uint64_t allocated_clusters;  /* of the active L1 table's disk */
  uint64_t fragmented_clusters;
  uint64_t compressed_clusters;
};

/* Check an image opened with backing QCOW2_BACKING_SKIP.  Each problem
 * is reported through diag_error as it is found (one line, qemu-img's
 * words).  Returns 0 with *r filled when the check ran to its end, or
 * -1 (r->check_errors counts why).
 */
extern int qcow2_check (struct qcow2_image *img, struct qcow2_check_result *r);

/* What a repair may fix (qemu-img check -r leaks = LEAKS, -r all =
 * LEAKS | ERRORS).
 */
#define QCOW2_FIX_LEAKS  1u     /* refcounts above the references */
#define QCOW2_FIX_ERRORS 2u     /* refcounts below them */

/* Check, repair what fix allows, and check again: *r is the second
 * check, with the counts of what was fixed.  The image must have been
 * opened writable (qcow2_options: readonly false, check true, backing
 * QCOW2_BACKING_SKIP).  Every step is made durable before the next, in
 * an order that leaves, after a crash at any point, an image no worse
 * than before: refcounts are raised before the COPIED flags that need
 * them, flags that claim too much are cleared before refcounts drop,
 * and the image is left unchanged when the repair cannot be done.
 * Returns 0 or -1 as qcow2_check: r->check_errors is not counted for
 * a repair refused before it began (reported, the image unchanged).
 */
extern int qcow2_check_repair (struct qcow2_image *img, unsigned fix,
                               struct qcow2_check_result *r);

#endif /* QCOW2_CHECK_H */
