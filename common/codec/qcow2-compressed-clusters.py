#!/usr/bin/env python3
"""Extract the compressed cluster payloads of a qcow2 image.

    qcow2-compressed-clusters.py IMAGE OUTDIR

Writes OUTDIR/<guest cluster index>.bin for every compressed L2 entry
(the bytes the descriptor names, zero-padded past end of file, exactly
what a reader hands to the decompressor) and prints
"<compression type> <cluster size>".  Written for test-codec-qemu.sh,
from the qcow2 spec (QEMU's docs/interop/qcow2.txt, "Cluster mapping":
the Compressed Clusters Descriptor).
"""

import os
import struct
import sys


def main():
    image, outdir = sys.argv[1], sys.argv[2]
    with open(image, "rb") as f:
        data = f.read()

    (magic, version, _bfo, _bfs, cluster_bits, size, _crypt, l1_size,
     l1_offset) = struct.unpack_from(">4sIQIIQIIQ", data, 0)
    assert magic == b"QFI\xfb", "not a qcow2 image"
    compression_type = 0
    incompatible = 0
    if version >= 3:
        incompatible = struct.unpack_from(">Q", data, 72)[0]
        header_length = struct.unpack_from(">I", data, 100)[0]
        if header_length > 104:
            compression_type = data[104]
    extended_l2 = bool(incompatible & (1 << 4))
    cluster_size = 1 << cluster_bits
    entry_size = 16 if extended_l2 else 8
    l2_entries = cluster_size // entry_size

    x = 62 - (cluster_bits - 8)
    offset_mask = (1 << x) - 1
    sectors_mask = (1 << (cluster_bits - 8)) - 1

    for i in range(l1_size):
        l1 = struct.unpack_from(">Q", data, l1_offset + 8 * i)[0]
        l2_offset = l1 & 0x00fffffffffffe00
        if l2_offset == 0:
            continue
        for j in range(l2_entries):
            entry = struct.unpack_from(">Q", data, l2_offset + entry_size * j)[0]
            if not entry & (1 << 62):
                continue
            host = entry & offset_mask
            nb_sectors = ((entry >> x) & sectors_mask) + 1
            length = nb_sectors * 512 - (host & 511)
            payload = data[host:host + length]
            payload += bytes(length - len(payload))
            guest_index = i * l2_entries + j
            with open(os.path.join(outdir, "%d.bin" % guest_index), "wb") as f:
                f.write(payload)

    print(("zlib", "zstd")[compression_type], cluster_size)


if __name__ == "__main__":
    main()
