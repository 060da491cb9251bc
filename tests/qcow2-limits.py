#!/usr/bin/env python3
"""Push one field of a qcow2 image made by qemu-img to a chosen size,
for tests/test-qcow2-limits.bats.  Field offsets are from qcow2.txt
("Header", "Snapshots").  Every integer is big-endian.

  qcow2-limits.py l1 IMG N            l1_size N (the table grows in place)
  qcow2-limits.py reftable IMG N      N refcount table clusters, at the end
  qcow2-limits.py snapshots IMG COUNT NAME_LEN EXTRA_LEN [LAST_NAME_LEN]
                                      a snapshot table of COUNT entries
                                      sharing the active L1 table
  qcow2-limits.py snapshot-l1 IMG N   snapshot 0's L1 table: N entries,
                                      a copy of the active one at the end
  qcow2-limits.py fill-below-2-49 IMG every cluster below 2^49 in use
                                      but the last 8 (2M clusters, 1-bit
                                      refcounts); the file that long
  qcow2-limits.py share-l2 IMG N      L1 entries 0..N-1 all name the L2
                                      table of entry 0; the dirty bit set
"""
import os
import struct
import sys


def get(f, off, fmt):
    f.seek(off)
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def put(f, off, fmt, v):
    f.seek(off)
    f.write(struct.pack(fmt, v))


def cluster_size(f):
    return 1 << get(f, 20, ">I")


def end_cluster(f):
    cs = cluster_size(f)
    return (os.fstat(f.fileno()).st_size + cs - 1) // cs * cs


def grow(f, size):
    if os.fstat(f.fileno()).st_size < size:
        f.truncate(size)


def l1(f, n):
    put(f, 36, ">I", n)
    grow(f, get(f, 40, ">Q") + 8 * n)


def reftable(f, n):
    cs = cluster_size(f)
    old, old_n = get(f, 48, ">Q"), get(f, 56, ">I")
    f.seek(old)
    entries = f.read(old_n * cs)
    new = end_cluster(f)
    grow(f, new + n * cs)
    f.seek(new)
    f.write(entries[:n * cs])
    put(f, 48, ">Q", new)
    put(f, 56, ">I", n)
    # Refcounts (16-bit, all in the first block): the new table's
    # clusters are in use, the old one's free.
    assert get(f, 96, ">I") == 4, "16-bit refcounts only"
    block = get(f, new, ">Q")
    for c in range(new // cs, new // cs + n):
        put(f, block + 2 * c, ">H", 1)
    for c in range(old // cs, old // cs + old_n):
        put(f, block + 2 * c, ">H", 0)


def snapshots(f, count, name_len, extra_len, last_name_len=None):
    l1_offset, size = get(f, 40, ">Q"), get(f, 24, ">Q")
    table = end_cluster(f)
    f.seek(table)
    for i in range(count):
        ident = b"%08d" % (i + 1)
        nl = last_name_len if i == count - 1 and last_name_len else name_len
        extra = struct.pack(">QQ", 0, size) if extra_len >= 16 else b""
        extra += bytes(extra_len - len(extra))
        entry = struct.pack(">QIHHIIQII", l1_offset, 1, len(ident), nl,
                            0, 0, 0, 0, extra_len)
        entry += extra + ident + b"s" * nl
        entry += bytes(-len(entry) % 8)
        f.write(entry)
    put(f, 60, ">I", count)
    put(f, 64, ">Q", table)


def snapshot_l1(f, n):
    cs = cluster_size(f)
    entry = get(f, 64, ">Q")
    f.seek(get(f, 40, ">Q"))
    active = f.read(8 * get(f, 36, ">I"))
    table = end_cluster(f)
    grow(f, table + (8 * n + cs - 1) // cs * cs)
    f.seek(table)
    f.write(active[:8 * n])
    put(f, entry, ">Q", table)
    put(f, entry + 8, ">I", n)


def fill_below_2_49(f):
    cs = cluster_size(f)
    assert cs == 2 << 20 and get(f, 96, ">I") == 0, "2M clusters, 1-bit refcounts"
    reftable_offset = get(f, 48, ">Q")
    first = end_cluster(f) // cs
    # 16 blocks of 2^24 one-bit entries cover 2^28 clusters of 2M.
    for i in range(16):
        block = bytearray(b"\xff" * cs)
        if i == 15:
            block[-1] = 0
        f.seek((first + i) * cs)
        f.write(block)
        put(f, reftable_offset + 8 * i, ">Q", (first + i) * cs)
    f.truncate(1 << 49)


def share_l2(f, n):
    l1_offset = get(f, 40, ">Q")
    first = get(f, l1_offset, ">Q")
    assert first & 0x00FFFFFFFFFFFE00, "entry 0 has no L2 table"
    for i in range(n):
        put(f, l1_offset + 8 * i, ">Q", first)
    put(f, 72, ">Q", get(f, 72, ">Q") | 1)      # incompatible: dirty


def main():
    cmd, path, args = sys.argv[1], sys.argv[2], [int(a) for a in sys.argv[3:]]
    with open(path, "r+b") as f:
        {"l1": l1, "reftable": reftable, "snapshots": snapshots,
         "snapshot-l1": snapshot_l1, "share-l2": share_l2,
         "fill-below-2-49": fill_below_2_49}[cmd](f, *args)


main()
