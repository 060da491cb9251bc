#!/usr/bin/env python3
# Hostile seeds for the write path: a good image whose refcounts or
# mappings lie about the metadata, so that allocation, copy-on-write,
# the overlap check and refcount repair meet what they must refuse.
#
#   craft-seeds.py GOOD OUTDIR
#   craft-seeds.py --good GOOD         make GOOD with qemu-img
#   craft-seeds.py --host-of-guest0 IMAGE
#
# GOOD: version 3, 4 KiB clusters, 16-bit refcounts, two L1 entries in
# use (data below and above 2 MiB) and at least one internal snapshot
# (make-seeds.sh makes it; --good makes one the same way).  Writes
# OUTDIR/rc-*.qcow2 and prints names.  --host-of-guest0 prints where the
# L2 entry of guest cluster 0 points (for the tests to check what is
# there).  Offsets are those of qcow2.txt; everything is big-endian.

import os
import struct
import subprocess
import sys

OFFSET_MASK = 0x00FFFFFFFFFFFE00
COPIED = 1 << 63


class Image:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.d = bytearray(f.read())
        self.cb = self.u32(20)
        self.cs = 1 << self.cb
        self.l1 = self.u64(40)
        self.reftable = self.u64(48)
        self.snapshots = self.u64(64)
        assert self.u32(96) == 4, "16-bit refcounts expected"

    def u32(self, off):
        return struct.unpack_from(">I", self.d, off)[0]

    def u64(self, off):
        return struct.unpack_from(">Q", self.d, off)[0]

    def put64(self, off, v):
        struct.pack_into(">Q", self.d, off, v)

    def refcount_off(self, host):
        """File offset of the 16-bit refcount of the cluster at host."""
        c = host // self.cs
        per_block = self.cs // 2
        rb = self.u64(self.reftable + 8 * (c // per_block))
        assert rb, "no refcount block"
        return rb + 2 * (c % per_block)

    def set_refcount(self, host, v):
        struct.pack_into(">H", self.d, self.refcount_off(host), v)

    def l2_table(self, i):
        return self.u64(self.l1 + 8 * i) & OFFSET_MASK

    def l2_entry_off(self, l1_index, index):
        return self.l2_table(l1_index) + 8 * index

    def first_data(self, l1_index=0):
        """(entry offset, host) of the first allocated entry of an L2."""
        for i in range(self.cs // 8):
            off = self.l2_entry_off(l1_index, i)
            host = self.u64(off) & OFFSET_MASK
            if host:
                return off, host
        raise AssertionError("no data cluster")

    def snapshot_l1(self):
        return self.u64(self.snapshots)

    def dirty(self):
        self.put64(72, self.u64(72) | 1)
        self.put64(80, self.u64(80) | 1)     # lazy refcounts

    def write(self, path):
        with open(path, "wb") as f:
            f.write(self.d)


def rc(what):
    def f(img):
        img.set_refcount(what(img), 0)
    return f


def points_to(target):
    """The first data entry of L1[0] now maps the target cluster."""
    def f(img):
        off, _ = img.first_data()
        img.put64(off, COPIED | target(img))
    return f


def both(*fns):
    def f(img):
        for fn in fns:
            fn(img)
    return f


def rb0(img):
    return img.u64(img.reftable)


def share_data(img):
    off, host = img.first_data()
    img.put64(off + 8, COPIED | host)      # two entries, one cluster


def share_l2(img):
    img.put64(img.l1 + 8, img.u64(img.l1))  # L1[1] = L1[0]


def refcount_2(img):
    _, host = img.first_data()
    img.set_refcount(host, 2)


def no_refblock(img):
    img.put64(img.reftable, 0)


def refblock_is_l2(img):
    img.put64(img.reftable, img.l2_table(0))


def zero_refblock(img):
    rb = rb0(img)
    img.d[rb:rb + img.cs] = bytes(img.cs)


def snapshot_l1_is_active(img):
    img.put64(img.snapshots, img.l1)


SEEDS = {
    "rc0-header": rc(lambda img: 0),
    "rc0-l1": rc(lambda img: img.l1),
    "rc0-reftable": rc(lambda img: img.reftable),
    "rc0-refblock": rc(rb0),
    "rc0-l2": rc(lambda img: img.l2_table(0)),
    "rc0-snapshot-table": rc(lambda img: img.snapshots),
    "rc0-snapshot-l1": rc(lambda img: img.snapshot_l1()),
    "rc0-all": zero_refblock,
    "rc2-data": refcount_2,
    "no-refblock": no_refblock,
    "refblock-is-l2": refblock_is_l2,
    "data-is-header": points_to(lambda img: 0),
    "data-is-l1": points_to(lambda img: img.l1),
    "data-is-l2": points_to(lambda img: img.l2_table(0)),
    "data-is-other-l2": points_to(lambda img: img.l2_table(1)),
    "data-is-refblock": points_to(rb0),
    "data-is-reftable": points_to(lambda img: img.reftable),
    "data-is-snapshot-table": points_to(lambda img: img.snapshots),
    "data-shared": share_data,
    "l2-shared": share_l2,
    "snapshot-l1-is-active": snapshot_l1_is_active,
}


def make_good(path):
    def run(*args):
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096",
        path, "4M")
    run("qemu-io", "-f", "qcow2", "-c", "write -P 0x31 0 12k",
        "-c", "write -P 0x32 2M 4k", path)
    run("qemu-img", "snapshot", "-c", "one", path)
    run("qemu-io", "-f", "qcow2", "-c", "write -P 0x33 4k 4k", path)


def main():
    if sys.argv[1] == "--good":
        make_good(sys.argv[2])
        return
    if sys.argv[1] == "--host-of-guest0":
        img = Image(sys.argv[2])
        print(img.u64(img.l2_entry_off(0, 0)) & OFFSET_MASK)
        return
    good, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    for name, spoil in SEEDS.items():
        for dirty in (False, True):
            img = Image(good)
            spoil(img)
            if dirty:
                img.dirty()            # repair rebuilds from the lies
            full = ("dirty-" if dirty else "") + "rc-" + name
            img.write(os.path.join(outdir, full + ".qcow2"))
            print(full)


if __name__ == "__main__":
    main()
