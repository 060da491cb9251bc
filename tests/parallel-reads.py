#!/usr/bin/env python3
# parallel-reads.py URI CONNECTIONS REQUESTS [SIZE [DEPTH]]
#
# Open CONNECTIONS connections to URI at once and make each read
# REQUESTS blocks of SIZE bytes (default 262144) with DEPTH requests
# in flight (default 16, what nbdkit serves at once per connection),
# at seeded random offsets in the extents block status calls data (or
# anywhere, if there are none).  A fixed amount of work, not a time:
# the caller reads the server's memory afterwards.  Prints the number
# of bytes read.
import random
import sys
import threading

import nbd

uri = sys.argv[1]
conns = int(sys.argv[2])
requests = int(sys.argv[3])
size = int(sys.argv[4]) if len(sys.argv) > 4 else 262144
depth = int(sys.argv[5]) if len(sys.argv) > 5 else 16


def data_extents(h):
    found = []
    end = h.get_size()
    pos = 0

    def cb(metacontext, offset, entries, err):
        nonlocal pos
        if metacontext != nbd.CONTEXT_BASE_ALLOCATION:
            return
        for i in range(0, len(entries), 2):
            length, flags = entries[i], entries[i + 1]
            if not flags & nbd.STATE_HOLE:
                found.append((pos, length))
            pos += length

    while pos < end:
        h.block_status(min(end - pos, 1 << 31), pos, cb)
    return found or [(0, end)]


def worker(h, extents, seed, barrier):
    rnd = random.Random(seed)
    end = h.get_size()
    barrier.wait()
    inflight = []
    submitted = done = 0
    while done < requests:
        while len(inflight) < depth and submitted < requests:
            start, length = rnd.choice(extents)
            off = start + rnd.randrange(0, max(1, length // 4096)) * 4096
            off = min(off, max(0, end - size))
            inflight.append(h.aio_pread(nbd.Buffer(size), off))
            submitted += 1
        h.poll(-1)
        left = []
        for c in inflight:
            if h.aio_command_completed(c):
                done += 1
            else:
                left.append(c)
        inflight = left
    h.shutdown()


handles = []
for i in range(conns):
    h = nbd.NBD()
    h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_uri(uri)
    handles.append(h)
extents = data_extents(handles[0])
barrier = threading.Barrier(conns)
threads = [threading.Thread(target=worker, args=(h, extents, i, barrier))
           for i, h in enumerate(handles)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(conns * requests * size)
