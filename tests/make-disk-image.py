#!/usr/bin/python3
# Make a raw disk image that looks like a used disk, for the compressed
# write tests and benchmarks:
#
#   make-disk-image.py [--seed N] [--compressible] SIZE OUT.raw
#
# The image is a seeded sequence of extents:
#   - file data: files from /usr (sorted by name, so the same machine
#     always gives the same bytes), each starting on a 4 KiB boundary
#     with zero padding up to it, as a file system lays them out; with
#     --compressible, files that are already compressed (.gz, images,
#     ...) are skipped;
#   - random data (already-compressed or encrypted files), unless
#     --compressible;
#   - zero runs, half of them written as zeroes, half left as holes.
# SIZE may have a K/M/G suffix; it is rounded down to 512 bytes.

import argparse
import os
import random
import sys
import zlib

KiB = 1024
MiB = 1024 * KiB
BLOCK = 4 * KiB


def parse_size(s):
    units = {"K": KiB, "M": MiB, "G": 1024 * MiB}
    if s[-1:].upper() in units:
        return int(s[:-1]) * units[s[-1:].upper()]
    return int(s)


def compresses(data):
    """Does deflate make it at least 20 % smaller?"""
    return len(zlib.compress(data, 1)) < len(data) * 0.8


def usr_files(compressible_only):
    """Regular files under /usr, in a fixed order, forever."""
    while True:
        for top in ("/usr/lib", "/usr/bin", "/usr/share"):
            for root, dirs, files in os.walk(top):
                dirs.sort()
                for name in sorted(files):
                    path = os.path.join(root, name)
                    if os.path.islink(path) or not os.path.isfile(path):
                        continue
                    try:
                        with open(path, "rb") as f:
                            data = f.read(8 * MiB)
                    except OSError:
                        continue
                    if data and (not compressible_only or compresses(data)):
                        yield data


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--compressible", action="store_true",
                   help="no random-data extents")
    p.add_argument("size")
    p.add_argument("out")
    a = p.parse_args()

    size = parse_size(a.size) // 512 * 512
    rng = random.Random(a.seed)
    files = usr_files(a.compressible)
    kinds = ["files"] * 6 + ["zero"] * 2 + ([] if a.compressible else ["random"] * 2)

    with open(a.out, "wb") as out:
        out.truncate(0)
        pos = 0
        while pos < size:
            kind = rng.choice(kinds)
            if kind == "files":
                length = rng.randrange(1, 9) * MiB
                end = min(size, pos + length)
                while pos < end:
                    data = next(files)[: end - pos]
                    out.seek(pos)
                    out.write(data)
                    pos += (len(data) + BLOCK - 1) // BLOCK * BLOCK
                    if pos < end:       # the padding is part of the image
                        out.seek(pos - 1)
                        out.write(b"\0")
                pos = min(pos, end)
            elif kind == "random":
                length = min(size - pos, rng.randrange(1, 17) * 128 * KiB)
                out.seek(pos)
                out.write(rng.randbytes(length))
                pos += length
            else:
                length = min(size - pos, rng.randrange(1, 33) * 128 * KiB)
                if rng.random() < 0.5:
                    out.seek(pos)
                    out.write(bytes(length))
                pos += length
        out.truncate(size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
