#!/usr/bin/env python3
# Make hostile qcow2 images by poking single fields of good ones.
#
#   make-bad-images.py GOOD_V3 GOOD_V3_EXTL2 GOOD_V2 OUTDIR
#
# The good images must be made as tests/test-qcow2-bad-images.bats does
# it: GOOD_V3 version 3, 4 KiB clusters, 8 MiB, data at guest 0 and
# 64 KiB (L1[0]), 2 MiB (L1[1]) and 4 MiB (L1[2]); GOOD_V3_EXTL2 the
# same with extended L2 entries and 64 KiB clusters; GOOD_V2 version 2.  One file OUTDIR/NAME.qcow2 is
# written per entry of BAD_IMAGES and its name printed; the expected
# outcome of each lives in the .bats file next to the test that uses it.
#
# Field offsets are those of the "Header" section of QEMU's
# docs/interop/qcow2.txt; everything is big-endian.

import os
import struct
import sys

# Header fields: (offset, struct format).
MAGIC = (0, ">I")
VERSION = (4, ">I")
BACKING_FILE_OFFSET = (8, ">Q")
BACKING_FILE_SIZE = (16, ">I")
CLUSTER_BITS = (20, ">I")
SIZE = (24, ">Q")
CRYPT_METHOD = (32, ">I")
L1_SIZE = (36, ">I")
L1_TABLE_OFFSET = (40, ">Q")
REFCOUNT_TABLE_OFFSET = (48, ">Q")
REFCOUNT_TABLE_CLUSTERS = (56, ">I")
NB_SNAPSHOTS = (60, ">I")
SNAPSHOTS_OFFSET = (64, ">Q")
INCOMPATIBLE_FEATURES = (72, ">Q")
REFCOUNT_ORDER = (96, ">I")
HEADER_LENGTH = (100, ">I")
COMPRESSION_TYPE = (104, ">B")

OFFSET_MASK = 0x00FFFFFFFFFFFE00   # bits 9-55 of L1 and L2 entries
COPIED = 1 << 63
COMPRESSED = 1 << 62

EXT_CRYPTO_HEADER = 0x0537BE77
EXT_UNKNOWN = 0x12345678


class Image:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = bytearray(f.read())

    def get(self, field):
        offset, fmt = field
        return struct.unpack_from(fmt, self.data, offset)[0]

    def set(self, field, value):
        offset, fmt = field
        struct.pack_into(fmt, self.data, offset, value)

    def get64(self, offset):
        return struct.unpack_from(">Q", self.data, offset)[0]

    def set64(self, offset, value):
        struct.pack_into(">Q", self.data, offset, value)

    @property
    def cluster_size(self):
        return 1 << self.get(CLUSTER_BITS)

    @property
    def eof_cluster(self):
        """The first cluster-aligned offset at or beyond the end of file."""
        c = self.cluster_size
        return (len(self.data) + c - 1) // c * c

    def l1_entry_offset(self, index):
        return self.get(L1_TABLE_OFFSET) + 8 * index

    def l2_entry_offset(self, l1_index, l2_index, entry_size=8):
        l2_table = self.get64(self.l1_entry_offset(l1_index)) & OFFSET_MASK
        assert l2_table != 0, "the good image must have this L2 table"
        return l2_table + entry_size * l2_index

    def header_end(self):
        """Where header extensions start."""
        return self.get(HEADER_LENGTH) if self.get(VERSION) >= 3 else 72

    def put_extension(self, magic, payload_length, payload=b""):
        """Replace the extension area with one extension (and the end
        marker after it if it fits)."""
        at = self.header_end()
        struct.pack_into(">II", self.data, at, magic, payload_length)
        self.data[at + 8:at + 8 + len(payload)] = payload

    def write(self, path):
        with open(path, "wb") as f:
            f.write(self.data)


def poke(field, value):
    return lambda img: img.set(field, value)


def poke_l1(index, fn):
    def f(img):
        at = img.l1_entry_offset(index)
        img.set64(at, fn(img, img.get64(at)))
    return f


def poke_l2(l1_index, l2_index, fn, entry_size=8):
    def f(img):
        at = img.l2_entry_offset(l1_index, l2_index, entry_size)
        img.set64(at, fn(img, img.get64(at)))
    return f


def truncate(length):
    def f(img):
        del img.data[length:]
    return f


def both(*fns):
    def f(img):
        for fn in fns:
            fn(img)
    return f


def backing_name(offset, size):
    def f(img):
        img.set(BACKING_FILE_OFFSET, offset)
        img.set(BACKING_FILE_SIZE, size)
        end = min(offset + size, img.cluster_size)
        img.data[offset:end] = b"b" * (end - offset)
    return f


def zstd_type(value):
    return both(poke(COMPRESSION_TYPE, value),
                lambda img: img.set(INCOMPATIBLE_FEATURES,
                                    img.get(INCOMPATIBLE_FEATURES) | 1 << 3))


# Guest 64 KiB is L2 entry 16 of L1[0] with 4 KiB clusters; guest 2 MiB
# is the first cluster of L1[1].
BAD_CLUSTER = (0, 16)

# name -> (base image, how to spoil it)
BAD_IMAGES = {
    # --- the fixed header: refused at open ---
    "magic": ("v3", poke(MAGIC, 0x514649FA)),
    "version-1": ("v3", poke(VERSION, 1)),
    "version-4": ("v3", poke(VERSION, 4)),
    "cluster-bits-8": ("v3", poke(CLUSTER_BITS, 8)),
    "cluster-bits-22": ("v3", poke(CLUSTER_BITS, 22)),
    "cluster-bits-huge": ("v3", poke(CLUSTER_BITS, 0xFFFFFFFF)),
    "header-length-96": ("v3", poke(HEADER_LENGTH, 96)),
    "header-length-108": ("v3", poke(HEADER_LENGTH, 108)),
    "header-length-past-cluster": ("v3", poke(HEADER_LENGTH, 4096 + 8)),
    "header-length-huge": ("v3", poke(HEADER_LENGTH, 0xFFFFFFF8)),
    "empty-file": ("v3", truncate(0)),
    "truncated-header": ("v3", truncate(50)),
    "truncated-v3-header": ("v3", truncate(100)),
    "size-near-2-64": ("v3", poke(SIZE, (1 << 64) - 512)),
    "size-2-63": ("v3", poke(SIZE, 1 << 63)),
    "l1-size-0": ("v3", poke(L1_SIZE, 0)),
    "l1-size-too-small": ("v3", poke(L1_SIZE, 3)),
    "l1-size-times-8-overflows": ("v3", poke(L1_SIZE, 0x20000000)),
    "l1-size-max": ("v3", poke(L1_SIZE, 0xFFFFFFFF)),
    "l1-size-past-eof": ("v3", poke(L1_SIZE, 1 << 20)),
    "l1-offset-unaligned": ("v3", lambda img: img.set(
        L1_TABLE_OFFSET, img.get(L1_TABLE_OFFSET) + 8)),
    "l1-offset-past-eof": ("v3", lambda img: img.set(
        L1_TABLE_OFFSET, img.eof_cluster + (1 << 20))),
    "l1-offset-0": ("v3", poke(L1_TABLE_OFFSET, 0)),
    "l1-offset-overflow": ("v3", poke(L1_TABLE_OFFSET, 0xFFFFFFFFFFFFF000)),
    "refcount-table-offset-unaligned": ("v3", lambda img: img.set(
        REFCOUNT_TABLE_OFFSET, img.get(REFCOUNT_TABLE_OFFSET) + 512)),
    "refcount-table-offset-past-eof": ("v3", lambda img: img.set(
        REFCOUNT_TABLE_OFFSET, img.eof_cluster + (1 << 20))),
    "refcount-table-clusters-0": ("v3", poke(REFCOUNT_TABLE_CLUSTERS, 0)),
    "refcount-table-clusters-huge": ("v3", poke(REFCOUNT_TABLE_CLUSTERS,
                                                0xFFFFFFFF)),
    "refcount-order-7": ("v3", poke(REFCOUNT_ORDER, 7)),
    "nb-snapshots-huge": ("v3", poke(NB_SNAPSHOTS, 0xFFFFFFFF)),
    "snapshots-offset-unaligned": ("v3", both(poke(NB_SNAPSHOTS, 1),
                                              poke(SNAPSHOTS_OFFSET, 4096 + 8))),
    "snapshots-offset-past-eof": ("v3", both(
        poke(NB_SNAPSHOTS, 1),
        lambda img: img.set(SNAPSHOTS_OFFSET, img.eof_cluster + (1 << 20)))),
    "incompatible-bit-5": ("v3", poke(INCOMPATIBLE_FEATURES, 1 << 5)),
    "incompatible-bit-63": ("v3", poke(INCOMPATIBLE_FEATURES, 1 << 63)),
    "crypt-method-3": ("v3", poke(CRYPT_METHOD, 3)),
    "luks-without-header-extension": ("v3", poke(CRYPT_METHOD, 2)),
    "compression-type-2": ("v3", zstd_type(2)),
    "compression-type-without-bit": ("v3", poke(COMPRESSION_TYPE, 1)),
    "extended-l2-small-clusters": ("v3", poke(INCOMPATIBLE_FEATURES, 1 << 4)),
    "backing-file-size-1024": ("v3", backing_name(512, 1024)),
    "backing-file-past-cluster": ("v3", backing_name(4096 - 16, 100)),
    "header-extension-past-cluster": ("v3", lambda img: img.put_extension(
        EXT_UNKNOWN, 0xFFFFFFF0)),
    "header-extension-v2-past-cluster": ("v2", lambda img: img.put_extension(
        EXT_UNKNOWN, 4096)),
    "crypto-extension-length-8": ("v3", both(
        poke(CRYPT_METHOD, 2),
        lambda img: img.put_extension(EXT_CRYPTO_HEADER, 8, bytes(8)))),

    # --- L1 entries: the read that needs them fails ---
    "l1-entry-reserved-bit-0": ("v3", poke_l1(1, lambda img, e: e | 1)),
    "l1-entry-reserved-bit-56": ("v3", poke_l1(1, lambda img, e: e | 1 << 56)),
    "l1-entry-unaligned": ("v3", poke_l1(1, lambda img, e: e + 512)),
    "l1-entry-past-eof": ("v3", poke_l1(
        1, lambda img, e: COPIED | img.eof_cluster + (1 << 30))),

    # --- L2 entries: the read of that cluster fails ---
    "l2-entry-reserved-bit-1": ("v3", poke_l2(*BAD_CLUSTER,
                                              lambda img, e: e | 2)),
    "l2-entry-reserved-bit-61": ("v3", poke_l2(*BAD_CLUSTER,
                                               lambda img, e: e | 1 << 61)),
    "l2-entry-unaligned": ("v3", poke_l2(*BAD_CLUSTER,
                                         lambda img, e: e + 512)),
    "l2-entry-past-eof": ("v3", poke_l2(
        *BAD_CLUSTER, lambda img, e: COPIED | img.eof_cluster + (1 << 30))),
    "l2-entry-at-eof": ("v3", poke_l2(
        *BAD_CLUSTER, lambda img, e: COPIED | img.eof_cluster)),
    # A compressed descriptor pointing at the header: not deflate data.
    "l2-entry-compressed-garbage": ("v3", poke_l2(
        *BAD_CLUSTER, lambda img, e: COMPRESSED | 0)),

    # --- extended L2 (64 KiB clusters): guest 64 KiB is entry 1 of L1[0]
    # and guest 128 KiB entry 2, unallocated.  An entry is two words, so
    # word 2 * i is the cluster descriptor, word 2 * i + 1 the bitmap ---
    "extl2-alloc-and-zero": ("extl2", poke_l2(
        0, 1 * 2 + 1, lambda img, e: 0xFFFFFFFFFFFFFFFF, entry_size=8)),
    "extl2-alloc-without-cluster": ("extl2", both(
        poke_l2(0, 2 * 2, lambda img, e: 0, entry_size=8),
        poke_l2(0, 2 * 2 + 1, lambda img, e: 1, entry_size=8))),
}


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: make-bad-images.py GOOD_V3 GOOD_V3_EXTL2 GOOD_V2 OUTDIR")
    bases = {"v3": sys.argv[1], "extl2": sys.argv[2], "v2": sys.argv[3]}
    outdir = sys.argv[4]
    os.makedirs(outdir, exist_ok=True)
    for name, (base, spoil) in BAD_IMAGES.items():
        img = Image(bases[base])
        spoil(img)
        img.write(os.path.join(outdir, name + ".qcow2"))
        print(name)


if __name__ == "__main__":
    main()
