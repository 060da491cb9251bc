/* What local-files.c and local-create.c share (libqcow2-local). */
#ifndef QCOW2_LOCAL_FILES_H
#define QCOW2_LOCAL_FILES_H

/* Open a regular file or a block device read-only, never blocking: a
 * descriptor, or -1 with errno set and, for a file of the wrong type,
 * *type saying what it is ("a FIFO").  Nothing is reported.
 */
extern int local_open_fd (const char *path, const char **type);

#endif /* QCOW2_LOCAL_FILES_H */
