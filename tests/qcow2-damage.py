#!/usr/bin/env python3
# qcow2-damage.py IMAGE KIND: damage a qcow2 image the way a bug or a
# crash could, for tests/test-qcow2-tool-check.bats.  The image must be
# version 3 with 64 KiB clusters, 16-bit refcounts and one refcount
# block, made as that file's damaged_image makes it: data written at
# guest 0, 64 KiB and 1 MiB, then 64 KiB discarded (its host cluster is
# free, inside the file).  Field offsets are those of the "Header",
# "Host cluster management" and "Cluster mapping" sections of QEMU's
# docs/interop/qcow2.txt; everything is big-endian.

import struct
import sys

OFFSET_MASK = 0x00FFFFFFFFFFFE00
COPIED = 1 << 63


class Image:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.data = bytearray(f.read())
        self.cluster_bits = self.u32(20)
        self.cluster = 1 << self.cluster_bits
        assert self.cluster == 65536 and self.u32(96) == 4, "64K clusters, 16-bit refcounts"
        self.l1 = self.u64(40)
        self.reftable = self.u64(48)
        self.refblock = self.u64(self.reftable) & OFFSET_MASK

    def u32(self, off):
        return struct.unpack_from(">I", self.data, off)[0]

    def u64(self, off):
        return struct.unpack_from(">Q", self.data, off)[0]

    def put64(self, off, value):
        struct.pack_into(">Q", self.data, off, value)

    def refcount(self, host):
        return struct.unpack_from(">H", self.data, self.refblock + 2 * (host >> self.cluster_bits))[0]

    def set_refcount(self, host, value):
        struct.pack_into(">H", self.data, self.refblock + 2 * (host >> self.cluster_bits), value)

    def l2_table(self):
        return self.u64(self.l1) & OFFSET_MASK

    def l2_entry_offset(self, guest):
        return self.l2_table() + 8 * (guest >> self.cluster_bits)

    def host_of(self, guest):
        return self.u64(self.l2_entry_offset(guest)) & OFFSET_MASK

    def free_cluster(self):
        """The first cluster inside the file with refcount 0."""
        for host in range(self.cluster, len(self.data), self.cluster):
            if self.refcount(host) == 0:
                return host
        raise SystemExit("no free cluster inside the file")

    def save(self):
        with open(self.path, "wb") as f:
            f.write(self.data)


def leak(img):
    img.set_refcount(img.free_cluster(), 1)


def two_leaks(img):
    leak(img)
    end = len(img.data)
    img.data += bytes(img.cluster)
    img.set_refcount(end, 1)


def refcount_too_low(img):
    img.set_refcount(img.host_of(0), 0)


def refcount_too_high(img):
    img.set_refcount(img.host_of(0), 2)


def l2_at_free_cluster(img):
    img.put64(img.l2_entry_offset(3 * img.cluster), img.free_cluster() | COPIED)


def l2_at_shared_cluster(img):
    img.put64(img.l2_entry_offset(3 * img.cluster), img.host_of(0) | COPIED)


def data_over_l2_table(img):
    # A data cluster that is the L2 table mapping it.
    img.put64(img.l2_entry_offset(3 * img.cluster), img.l2_table() | COPIED)


def l2_table_over_refblock(img):
    # L1 entry 1 names the refcount block as its L2 table.
    img.put64(img.l1 + 8, img.refblock | COPIED)


def refblock_misaligned(img):
    img.put64(img.reftable, img.refblock + 512)


def copied_flag_wrong(img):
    off = img.l2_entry_offset(0)
    img.put64(off, img.u64(off) & ~COPIED)


def snapshot_l1_misaligned(img):
    # The first snapshot table entry's L1 table offset ("Snapshot table").
    snapshots = img.u64(64)
    img.put64(snapshots, img.u64(snapshots) + 512)


def main():
    path, kind = sys.argv[1:]
    img = Image(path)
    globals()[kind](img)
    img.save()


if __name__ == "__main__":
    main()
