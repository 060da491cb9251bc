#!/usr/bin/python3
# Overwrites through an export whose writes are stored compressed,
# mirrored on a raw reference file:
#
#   compress-overwrite.py URI REF.raw CLUSTER-SIZE SEED
#
# Cases (each at several places): whole aligned clusters with
# compressible, random (incompressible) and all-zero data; unaligned
# ranges crossing cluster boundaries; pieces inside one cluster (start,
# middle, end, single bytes); the image's last, partial cluster; and
# many small writes into the same clusters at once, all in flight
# together (they touch different bytes, so every one must survive: the
# server's read-merge-compress of a cluster must not lose a neighbour's
# write).  Run with /usr/bin/python3 (the nbd module).

import random
import sys

import nbd


def main():
    uri, ref_path, cs, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    h = nbd.NBD()
    # Small and unaligned writes on purpose, below the advertised minimum.
    h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_ALIGN)
    h.connect_uri(uri)
    size = h.get_size()
    ref = open(ref_path, "r+b")

    def text(n):
        words = [b"qcow2", b"cluster", b"compressed", b"nbdkit", b"data\n",
                 b"refcount", b"\0\0\0\0", b"L2 table"]
        out = bytearray()
        while len(out) < n:
            out += rng.choice(words)
        return bytes(out[:n])

    def data(n):
        kind = rng.choice(["text", "random", "zero"])
        if kind == "text":
            return text(n)
        if kind == "random":
            return rng.randbytes(n)
        return bytes(n)

    def write(off, buf):
        h.pwrite(buf, off)
        ref.seek(off)
        ref.write(buf)

    nclusters = size // cs

    def somewhere(n):
        return rng.randrange(0, size - n + 1)

    # Whole aligned clusters, one and several at a time.
    for _ in range(12):
        n = rng.randrange(1, 5) * cs
        c = rng.randrange(0, max(1, nclusters - n // cs))
        if c * cs + n <= size:
            write(c * cs, data(n))
    # Unaligned ranges crossing cluster boundaries.
    for _ in range(12):
        n = rng.randrange(1, 3 * cs)
        write(somewhere(n), data(n))
    # Pieces inside one cluster: start, middle, end, single bytes.
    for _ in range(8):
        c = rng.randrange(0, nclusters) * cs
        write(c, data(rng.randrange(1, cs // 2)))
        n = rng.randrange(1, cs // 2)
        write(c + cs // 4, data(n))
        n = rng.randrange(1, cs // 4)
        write(c + cs - n, data(n))
        write(c + rng.randrange(0, cs), data(1))
    # The last cluster (partial if the size is not a multiple).
    last = (size - 1) // cs * cs
    write(last, data(size - last))
    write(size - 1, b"\x7f")
    write(max(0, size - 700), data(min(size, 700)))

    # Concurrent small writes into the same few clusters.
    piece = max(1, cs // 16)
    for _ in range(4):
        c = rng.randrange(0, nclusters - 1) * cs
        span = min(2 * cs, size - c)
        pending = []
        for off in range(c, c + span - piece + 1, piece):
            buf = data(piece)
            pending.append(h.aio_pwrite(buf, off))
            ref.seek(off)
            ref.write(buf)
        while pending:
            pending = [c for c in pending if not h.aio_command_completed(c)]
            if pending:
                h.poll(-1)

    h.flush()
    # The server's view must already match.
    ref.flush()
    ref.seek(0)
    pos = 0
    while pos < size:
        n = min(4 << 20, size - pos)
        if h.pread(n, pos) != ref.read(n):
            print("compress-overwrite: mismatch in [%d, %d)" % (pos, pos + n),
                  file=sys.stderr)
            return 1
        pos += n
    h.shutdown()
    ref.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
