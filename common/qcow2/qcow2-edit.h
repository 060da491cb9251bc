/* The qcow2 format engine: operations that edit an image's structure
 * (internal snapshots, resizing, committing into the backing file), as
 * qemu-img does them.  Each takes an image opened writable with
 * qcow2_open, needs no other user of it meanwhile, and either completes
 * or leaves the image as it was; a crash part way leaves the old or the
 * new state, at worst with leaked clusters.  Each returns 0, or -1 with
 * errno set after reporting the cause.
 */
#ifndef QCOW2_EDIT_PUBLIC_H
#define QCOW2_EDIT_PUBLIC_H

#include <stdbool.h>
#include <stdint.h>

#include "qcow2.h"

/* Snapshots are listed by qcow2_get_info (qcow2-info.h). */

/* A snapshot of the active state named name (at most
 * QCOW2_SNAPSHOT_NAME_MAX bytes), with the next free numeric ID.
 */
#define QCOW2_SNAPSHOT_NAME_MAX 255
extern int qcow2_snapshot_create (struct qcow2_image *img, const char *name);
/* Delete the first snapshot with this name (as qemu-img -d). */
extern int qcow2_snapshot_delete (struct qcow2_image *img, const char *name);
/* Make a snapshot (by ID, else by name) the active state, with its disk
 * size; the snapshot stays.
 */
extern int qcow2_snapshot_apply (struct qcow2_image *img, const char *id_or_name);

/* Change the virtual size (a multiple of 512, as QEMU requires).  Shrinking is
 * refused while data lives past the new end, unless discard is set.
 */
extern int qcow2_resize (struct qcow2_image *img, uint64_t size, bool discard);

/* Write every cluster the image holds into its backing file (qcow2 or
 * raw), make that durable, then empty the image so that it reads
 * through to the backing file again.
 */
extern int qcow2_commit (struct qcow2_image *img);

#endif /* QCOW2_EDIT_PUBLIC_H */
