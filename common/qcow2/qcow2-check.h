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

#endif /* QCOW2_CHECK_H */
