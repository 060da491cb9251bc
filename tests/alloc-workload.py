#!/usr/bin/python3
# Random allocating writes for tests/test-qcow2-alloc-writes.bats,
# mirrored on a raw reference file (the guest view before the run).
#
#   alloc-workload.py URI REF.raw COUNT SEED [--unaligned N] [--block B]
#
# COUNT distinct blocks of B bytes (default 4096) at B-aligned random
# offsets, written
# with up to 16 requests in flight (distinct blocks never overlap, so
# the outcome is defined), then N writes of 1 byte .. 12 KiB at random
# offsets (whole blocks of the export's minimum block size) (crossing cluster boundaries), one at a time.  Flushes at the
# end and prints the guest bytes written.
import argparse
import os
import random

import nbd

p = argparse.ArgumentParser()
p.add_argument("uri")
p.add_argument("ref")
p.add_argument("count", type=int)
p.add_argument("seed", type=int)
p.add_argument("--unaligned", type=int, default=0)
p.add_argument("--block", type=int, default=4096)
a = p.parse_args()
uri, ref, count, seed, unaligned, bs = (a.uri, a.ref, a.count, a.seed,
                                        a.unaligned, a.block)

rng = random.Random(seed)
h = nbd.NBD()
h.connect_uri(uri)
size = h.get_size()
fd = os.open(ref, os.O_WRONLY)
guest = 0

blocks = rng.sample(range(size // bs), count)
in_flight = []
for b in blocks:
    data = bytes([rng.randrange(1, 256)]) * bs
    os.pwrite(fd, data, b * bs)
    buf = nbd.Buffer.from_bytearray(bytearray(data))
    in_flight.append((h.aio_pwrite(buf, b * bs), buf))
    guest += bs
    while len(in_flight) >= 16 or (in_flight and b == blocks[-1]):
        h.poll(-1)
        in_flight = [(c, buf) for c, buf in in_flight
                     if not h.aio_command_completed(c)]

# An encrypted image serves whole 512-byte blocks only.
align = max(h.get_block_size(nbd.SIZE_MINIMUM), 1)
for _ in range(unaligned):
    n = rng.randrange(1, 12 * 1024 // align + 1) * align
    off = rng.randrange(0, (size - n) // align + 1) * align
    data = os.urandom(n)
    os.pwrite(fd, data, off)
    h.pwrite(data, off)
    guest += n

h.flush()
h.shutdown()
os.close(fd)
print(guest)
