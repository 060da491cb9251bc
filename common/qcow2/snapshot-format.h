/* A snapshot table entry ("Snapshots" in qcow2.txt): the fixed part,
 * then extra data, the ID and the name; entries are padded to 8 bytes.
 * Read by snapshot.c, written by snapshot-edit.c.
 */
#ifndef QCOW2_SNAPSHOT_FORMAT_H
#define QCOW2_SNAPSHOT_FORMAT_H

#define SN_L1_OFFSET         0
#define SN_L1_SIZE           8
#define SN_ID_LEN           12
#define SN_NAME_LEN         14
#define SN_DATE_SEC         16
#define SN_DATE_NSEC        20
#define SN_VM_CLOCK_NSEC    24
#define SN_VM_STATE_SIZE    32
#define SN_EXTRA_SIZE       36
#define SN_FIXED_LENGTH     40

#define SN_EXTRA_VM_STATE_SIZE 0
#define SN_EXTRA_DISK_SIZE     8
#define SN_EXTRA_ICOUNT       16
#define SN_EXTRA_LENGTH       24    /* all three: what QEMU 7.2 writes */

#define MAX_SNAPSHOT_EXTRA   1024
#define MAX_SNAPSHOT_TABLE   (64 * 1024 * 1024)    /* QEMU's limit */

#endif /* QCOW2_SNAPSHOT_FORMAT_H */
