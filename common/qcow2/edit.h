/* Shared by the operations that edit an image's structure
 * (snapshot-edit.c, resize.c, commit.c): walks over whole L1 trees,
 * new tables, header switches.  Called with meta_lock held exclusively
 * and the write state set up.
 *
 * Every operation follows the write path's ordering (writeback.c):
 * the new tables and raised refcounts are made durable first, one
 * header write switches to them (the commit point: a crash before it
 * leaves the old image, at worst with leaked clusters), and refcounts
 * are lowered only after.
 */
#ifndef QCOW2_EDIT_H
#define QCOW2_EDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Start an edit (after qcow2_prepare_write, under the lock): refuse
 * what the edits do not handle, make everything so far durable.
 */
extern int edit_begin (struct qcow2_image *img, const char *what);

/* An L1 table from the file, host byte order (*l1 = NULL when n = 0). */
extern int l1_table_read (struct qcow2_image *img, uint64_t offset,
                          uint32_t n, uint64_t **l1);

/* Add one reference to every L2 table and cluster an L1 table names
 * (now, in memory: the next checkpoint writes them).
 */
extern int tree_raise (struct qcow2_image *img, const uint64_t *l1,
                       uint32_t n);
/* Drop one reference from each (deferred to the checkpoint after next,
 * as every release).
 */
extern int tree_release (struct qcow2_image *img, const uint64_t *l1,
                         uint32_t n);
/* Make the COPIED flags of an L1 table and its L2 tables say exactly
 * "refcount is 1" ("Cluster mapping" in qcow2.txt).  active: l1 is
 * img->l1 (its changes are written at the next checkpoint); else the
 * caller writes l1 itself.
 */
extern int tree_sync_copied (struct qcow2_image *img, uint64_t *l1,
                             uint32_t n, bool active);

/* Put a new table of `bytes` in new clusters; the rest of its last
 * cluster reads as zeroes.  Durable at the next checkpoint.
 */
extern int table_place (struct qcow2_image *img, const void *buf,
                        uint64_t bytes, uint64_t *offset);
/* Write header bytes [field, field + len) and make them durable: the
 * switch from the old tables to the new ones.  Callers keep len within
 * one 512-byte sector, which a disk writes atomically.
 */
extern int header_switch (struct qcow2_image *img, unsigned field,
                          const void *buf, size_t len);

/* Refill the overlap index after a header switch changed the set of
 * tables (before anything is allocated again).
 */
extern int overlap_index_rebuild (struct qcow2_image *img);

#endif /* QCOW2_EDIT_H */
