#!/usr/bin/python3
# Drive one server over a compressed image so that its decompressed-
# cluster cache would serve stale data if any invalidation were missing
# (tests/test-qcow2-compressed-cache.bats).
#
#   compressed-cache-workload.py URI IMAGE REF CLUSTER_SIZE MODE
#
# REF is the guest view the image starts with; it is updated to the
# final guest view.  MODE:
#   reuse    4K reads of every cluster (filling the cache); trim all,
#            flush; whole clusters of new data written (the compress
#            filter packs them into the freed host space from the start,
#            so descriptors repeat); 4K reads again.  Fails unless at
#            least one new descriptor names an old one's host offset and
#            length (the cache's key), whichever guest cluster had it.
#            The new clusters are written in the order the old ones lie
#            in the file, whatever order the first copy left them in.
#   rewrite  4K reads; sub-cluster and whole-cluster rewrites of
#            compressed clusters; 4K reads after each.
# Every read is compared with REF.

import os
import random
import struct
import sys

import nbd

uri, image, ref_path, cs, mode = sys.argv[1:]
cs = int(cs)
ref = bytearray(open(ref_path, "rb").read())
size = len(ref)
nr = size // cs
rng = random.Random(7)
h = nbd.NBD()
h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_ALIGN)
h.connect_uri(uri)


def descriptors():
    """The compressed L2 entries of the image on disk (after a flush):
    {guest cluster: (host offset, sectors)} (qcow2.txt "Compressed
    Clusters Descriptor"; no extended L2 here)."""
    with open(image, "rb") as f:
        hdr = f.read(104)
        cluster_bits = struct.unpack(">I", hdr[20:24])[0]
        l1_size = struct.unpack(">I", hdr[36:40])[0]
        l1_offset = struct.unpack(">Q", hdr[40:48])[0]
        f.seek(l1_offset)
        l1 = struct.unpack(">%dQ" % l1_size, f.read(8 * l1_size))
        per_l2 = (1 << cluster_bits) // 8
        x = 62 - (cluster_bits - 8)
        out = {}
        for i, e in enumerate(l1):
            l2_off = e & 0x00fffffffffffe00
            if not l2_off:
                continue
            f.seek(l2_off)
            l2 = struct.unpack(">%dQ" % per_l2, f.read(8 * per_l2))
            for j, d in enumerate(l2):
                if d & (1 << 62):
                    out[i * per_l2 + j] = (d & ((1 << x) - 1),
                                           (d >> x) & ((1 << (62 - x)) - 1))
        return out


def check_reads(what):
    for c in range(nr):
        for off in (4096, cs - 4096, 0):
            got = h.pread(4096, c * cs + off)
            want = bytes(ref[c * cs + off:c * cs + off + 4096])
            if got != want:
                sys.exit("%s: 4K read at %#x differs from the reference"
                         % (what, c * cs + off))


def cluster_data():
    """A quarter of random bytes, the rest zeroes: every cluster
    compresses to about the same length."""
    return rng.randbytes(cs // 4) + bytes(cs - cs // 4)


def write(buf, offset):
    h.pwrite(buf, offset)
    ref[offset:offset + len(buf)] = buf


check_reads("first")
if mode == "reuse":
    h.flush()
    before = descriptors()
    if not before:
        sys.exit("no compressed clusters to start with")
    h.trim(size, 0)
    ref[:] = bytes(size)
    h.flush()
    check_reads("after trim")
    # In the order the old clusters lie in the file, so the new ones
    # (about as long) land on the same host ranges.
    for c in sorted(range(nr), key=lambda c: before.get(c, (1 << 64, 0))):
        write(cluster_data(), c * cs)
    h.flush()
    after = descriptors()
    old = set(before.values())
    same = [c for c in after if after[c] in old]
    print("%d of %d new descriptors name an old cluster's host range"
          % (len(same), len(after)))
    if not same:
        sys.exit("no descriptor was reused: the test proves nothing")
    check_reads("after reuse")
elif mode == "rewrite":
    for c in range(0, nr, 3):
        write(rng.randbytes(512) * 8, c * cs + 4096)
        check_reads("after sub-cluster rewrite of %d" % c)
    for c in range(1, nr, 3):
        write(cluster_data(), c * cs)
    h.flush()
    check_reads("after whole-cluster rewrites")
else:
    sys.exit("unknown mode " + mode)
h.shutdown()
with open(ref_path, "wb") as f:
    f.write(ref)
