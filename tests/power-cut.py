#!/usr/bin/python3
# The power-cut simulator (issue 9 section 4).  kill -9 keeps the page
# cache; a power cut loses every write the disk had not made durable.
#
#   power-cut.py run --uri URI --journal J --ops-file OPS [options]
#       A seeded workload on one connection: batches of up to 4
#       non-overlapping writes (random, patterned and zero data, some
#       FUA), zeroes and trims, and flushes, each flush issued alone.
#       The server runs with tests/io-shim.c recording into J; this
#       client appends its own marks to J (ISSUE before sending a
#       request, ACK after its reply, FLUSHED after a flush's reply),
#       so J orders every system call of the server against what the
#       client was told.  The requests go to OPS (pickle).
#
#   power-cut.py check --journal J --ops-file OPS --initial DIR
#                      --image NAME [--data-file NAME] [options]
#       DIR holds the image (and data file) as they were before the
#       run.  For many cut points in J it materialises in a scratch
#       directory what a power cut there leaves on disk, and checks it
#       with QEMU (the oracle):
#         - `qemu-img check` exits 0 or 3 (leaks only); with --lazy
#           (lazy refcounts: the cut leaves the image dirty, and QEMU
#           repairs a dirty image when it opens it) `qemu-img check -r
#           all` must exit 0 or 3, i.e. repair everything;
#         - the guest view (`qemu-img convert -O raw`) holds every byte
#           of a request acknowledged before the last completed flush,
#           or acknowledged with FUA, or a later request's byte; every
#           other byte holds a value some request issued before the cut
#           wrote there (or zero for a trim), or its earlier content.
#
# The disk model: after fdatasync(f) returns, every write to f that
# completed before the call is durable.  Any other write may or may not
# have reached the disk: the cut applies a chosen subset of them in
# journal order, and may tear a write at 512-byte sectors (a sector is
# the unit a disk writes atomically).  Cut points: every completed
# flush (with none, and with all, of the later writes), and random
# positions with random subsets.
#
# Exit status: 0 success, 1 a check failed, 2 usage or set-up error.

import hashlib
import os
import pickle
import random
import shutil
import struct
import subprocess
import sys
import time

from workload_cli import command_line, load, log, run

ww = None                       # write-workload.py, loaded when needed


def load_write_workload():
    global ww
    if ww is None:
        ww = load("write_workload", "write-workload.py")

KiB = 1024
SECTOR = 512

# Journal records (tests/io-shim.c).
MAGIC = 0x314a4350
WRITE, ZERO, TRUNCATE, SYNC, SYNCED, MARK, ALLOC, RANGE = range(1, 9)
# Marks: the `file` field says which.
M_ISSUE, M_ACK, M_FLUSHED = 1, 2, 3
HDR = struct.Struct("<IIIIQQ")


class CheckFailed(Exception):
    pass


# ----------------------------------------------------------------------
# The workload.

class Op:
    def __init__(self, no, kind, offset=0, length=0, fua=False, data=None):
        self.no = no
        self.kind = kind            # pwrite zero trim flush
        self.offset = offset
        self.length = length
        self.fua = fua
        self.data = data            # what the op leaves (trim: read back)
        self.flags = 0
        self.buf = None

    def end(self):
        return self.offset + self.length

    def __repr__(self):
        return "#%d %s offset=%d length=%d%s" % (
            self.no, self.kind, self.offset, self.length,
            " FUA" if self.fua else "")


def mark(jfd, kind, no):
    os.write(jfd, HDR.pack(MAGIC, MARK, kind, 0, no, 0))


def gen_extent(rng, size, cluster, limit):
    n = min(limit, max(1, int(2 ** rng.uniform(0, 18))))
    if rng.random() < 0.3:
        n = rng.choice([cluster, 2 * cluster, cluster // 2, SECTOR, 4 * KiB])
    a = rng.choice([1, 1, SECTOR, 4 * KiB, cluster, cluster])
    if n >= a and rng.random() < 0.6:
        n -= n % a
    n = max(1, min(n, size))
    off = rng.randrange(0, size - n + 1)
    off -= off % a
    return off, n


def cmd_run(args):
    import nbd
    load_write_workload()
    rng = random.Random(args.seed)
    h = nbd.NBD()
    h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_ALIGN)
    h.connect_uri(args.uri)
    size = h.get_size()
    can_trim = h.can_trim() and not args.no_trim
    model = bytearray(h.pread(size, 0) if size <= 64 << 20 else b"")
    jfd = os.open(args.journal, os.O_WRONLY | os.O_APPEND)
    ops = []
    no = 0
    stats = {}

    def new_op(kind):
        nonlocal no
        no += 1
        stats[kind] = stats.get(kind, 0) + 1
        if kind == "flush":
            return Op(no, kind)
        off, n = gen_extent(rng, size, args.cluster_size,
                            256 * KiB if kind == "pwrite" else 1 << 20)
        fua = rng.random() < args.fua
        if kind == "pwrite":
            return Op(no, kind, off, n, fua, bytes(ww.make_data(rng, n, no)))
        op = Op(no, kind, off, n, fua, bytes(n) if kind == "zero" else None)
        if kind == "zero" and rng.random() < 0.5:
            op.flags = nbd.CMD_FLAG_NO_HOLE
        return op

    kinds = ["pwrite", "zero", "trim", "flush"]
    weights = [70, 12, 8 if can_trim else 0, 10]
    done = 0
    while done < args.ops:
        kind = rng.choices(kinds, weights)[0]
        if kind == "flush":
            op = new_op("flush")
            mark(jfd, M_ISSUE, op.no)
            h.flush()
            mark(jfd, M_FLUSHED, op.no)
            ops.append(op)
            done += 1
            continue
        batch = []
        for _ in range(rng.randint(1, 4)):
            k = rng.choices(kinds[:3], weights[:3])[0]
            op = new_op(k)
            if any(o.offset < op.end() and op.offset < o.end()
                   for o in batch):
                continue
            batch.append(op)
        cookies = {}
        for op in batch:
            fl = op.flags | (nbd.CMD_FLAG_FUA if op.fua else 0)
            mark(jfd, M_ISSUE, op.no)
            if op.kind == "pwrite":
                op.buf = nbd.Buffer.from_bytearray(bytearray(op.data))
                c = h.aio_pwrite(op.buf, op.offset, flags=fl)
            elif op.kind == "zero":
                c = h.aio_zero(op.length, op.offset, flags=fl)
            else:
                c = h.aio_trim(op.length, op.offset, flags=fl)
            cookies[c] = op
        while cookies:
            h.poll(-1)
            for c in list(cookies):
                if h.aio_command_completed(c):
                    mark(jfd, M_ACK, cookies.pop(c).no)
        for op in batch:
            op.buf = None
            if op.kind == "trim":
                # what a trimmed range holds is the server's choice
                op.data = h.pread(op.length, op.offset)
            if model:
                model[op.offset:op.end()] = op.data
        ops.extend(batch)
        done += len(batch)
    op = new_op("flush")
    mark(jfd, M_ISSUE, op.no)
    h.flush()
    mark(jfd, M_FLUSHED, op.no)
    ops.append(op)
    if model and h.pread(size, 0) != model:
        log("power-cut run: the export does not read back what was written")
        return 1
    h.shutdown()
    os.close(jfd)
    with open(args.ops_file, "wb") as f:
        pickle.dump({"size": size, "ops": ops}, f)
    log("power-cut run: seed %d, %s" % (
        args.seed, " ".join("%s=%d" % kv for kv in sorted(stats.items()))))
    return 0


# ----------------------------------------------------------------------
# The journal.

class Rec:
    __slots__ = ("type", "file", "offset", "length", "pos")

    def __init__(self, t, f, off, length, pos):
        self.type, self.file, self.offset, self.length, self.pos = \
            t, f, off, length, pos


def read_journal(path):
    with open(path, "rb") as f:
        buf = f.read()
    recs = []
    p = 0
    while p < len(buf):
        if p + HDR.size > len(buf):
            raise SystemExit("journal %s: truncated record at %d" % (path, p))
        magic, t, fi, _, off, length = HDR.unpack_from(buf, p)
        if magic != MAGIC:
            raise SystemExit("journal %s: bad magic at %d" % (path, p))
        p += HDR.size
        recs.append(Rec(t, fi, off, length, p))
        if t == WRITE:
            p += length
    return buf, recs


def apply_rec(content, buf, r, sectors=None):
    """Apply journal record r to bytearray content.  sectors: for a
    torn write, the set of sector indexes (of the file) that persist."""
    if r.type == WRITE:
        end = r.offset + r.length
        if len(content) < end:
            if sectors is not None and \
               not any(s * SECTOR + SECTOR > len(content) and s in sectors
                       for s in range(r.offset // SECTOR,
                                      (end - 1) // SECTOR + 1)):
                end = len(content)      # the tail did not persist
            content.extend(bytes(max(0, end - len(content))))
        if sectors is None:
            content[r.offset:end] = buf[r.pos:r.pos + (end - r.offset)]
            return
        for s in range(r.offset // SECTOR, (end - 1) // SECTOR + 1):
            if s in sectors:
                a = max(r.offset, s * SECTOR)
                b = min(end, s * SECTOR + SECTOR)
                content[a:b] = buf[r.pos + a - r.offset:r.pos + b - r.offset]
    elif r.type == ZERO:
        end = min(r.offset + r.length, len(content))
        if end > r.offset:
            content[r.offset:end] = bytes(end - r.offset)
    elif r.type == ALLOC:
        end = r.offset + r.length
        if len(content) < end:
            content.extend(bytes(end - len(content)))
    elif r.type == TRUNCATE:
        if len(content) > r.offset:
            del content[r.offset:]
        else:
            content.extend(bytes(r.offset - len(content)))


CHANGES = (WRITE, ZERO, ALLOC, TRUNCATE)


# ----------------------------------------------------------------------
# The oracle: what the guest may see after a cut at journal position k.

class Oracle:
    def __init__(self, ops, size, initial_view):
        self.ops = {op.no: op for op in ops}
        self.size = size
        self.initial = initial_view

    def allowed(self, issued, acked, flushed_before):
        """issued: op numbers issued before the cut, in order; acked:
        those acknowledged; flushed_before: ops acknowledged before the
        last completed flush.  Returns (floor image, candidates)."""
        required = [n for n in issued if n in flushed_before or
                    (n in acked and self.ops[n].fua)]
        floor = bytearray(self.initial)
        # paint: [lo, hi, op no] of the last required op over each byte
        paint = []
        for n in required:
            op = self.ops[n]
            if op.kind == "flush":
                continue
            floor[op.offset:op.end()] = op.data
            paint = cut_out(paint, op.offset, op.end()) + \
                [(op.offset, op.end(), n)]
        cands = [floor]
        reqset = set(required)
        for n in issued:
            op = self.ops[n]
            if op.kind == "flush" or n in reqset:
                continue
            # allowed where no later required op overwrote it
            pieces = [(op.offset, op.end())]
            for lo, hi, m in paint:
                if m > n:
                    pieces = subtract(pieces, lo, hi)
            values = [op.data] if op.data is not None else []
            if op.kind == "trim":
                values.append(bytes(op.length))
            for v in values:
                w = ww.Window(v, op.offset)
                for lo, hi in pieces:
                    cands.append((w, lo, hi))
        return floor, cands


def subtract(pieces, lo, hi):
    out = []
    for a, b in pieces:
        if b <= lo or hi <= a:
            out.append((a, b))
            continue
        if a < lo:
            out.append((a, lo))
        if hi < b:
            out.append((hi, b))
    return out


def cut_out(paint, lo, hi):
    out = []
    for a, b, n in paint:
        for x, y in subtract([(a, b)], lo, hi):
            out.append((x, y, n))
    return out


# ----------------------------------------------------------------------
# Cut points.

class Cut:
    def __init__(self, k, how, seed=0):
        self.k = k                  # records [0, k) happened
        self.how = how              # none | all | random
        self.seed = seed

    def __repr__(self):
        return "cut at record %d (%s%s)" % (
            self.k, self.how, "" if self.how in ("none", "all")
            else " seed %d" % self.seed)


def choose_cuts(recs, n_random, rng):
    """Every completed flush, with none and with all of the writes
    since; just before each flush completes (the most writes in the
    cache), one cut keeping only one of the cached writes and one
    dropping only one (an ordering bug between two writes shows in one
    of them); the rest at random positions with random subsets, half of
    them also just before a flush completes."""
    cuts = []
    before_sync = []
    for i, r in enumerate(recs):
        if r.type == SYNCED:
            cuts.append(Cut(i + 1, "none"))
            cuts.append(Cut(i + 1, "all"))
            before_sync.append(i)
    for i in before_sync:
        cuts.append(Cut(i, "keep-one", rng.randrange(1 << 30)))
        cuts.append(Cut(i, "drop-one", rng.randrange(1 << 30)))
    cuts.append(Cut(len(recs), "all"))
    for n in range(n_random):
        if n % 2 and before_sync:
            k = rng.choice(before_sync)
        else:
            k = rng.randrange(len(recs) + 1)
        cuts.append(Cut(k, "random", rng.randrange(1 << 30)))
    cuts.sort(key=lambda c: c.k)
    return cuts


class Checker:
    def __init__(self, args):
        load_write_workload()
        self.args = args
        self.buf, self.recs = read_journal(args.journal)
        with open(args.ops_file, "rb") as f:
            state = pickle.load(f)
        self.ops = state["ops"]
        self.size = state["size"]
        self.names = [args.image] + ([args.data_file] if args.data_file
                                     else [])
        self.scratch = args.scratch
        os.makedirs(self.scratch, exist_ok=True)
        self.initial = []
        for name in self.names:
            with open(os.path.join(args.initial, name), "rb") as f:
                self.initial.append(bytes(f.read()))
        # the guest view before the run
        for i, name in enumerate(self.names):
            with open(os.path.join(self.scratch, name), "wb") as f:
                f.write(self.initial[i])
        view = self.guest_view()
        self.oracle = Oracle(self.ops, self.size, view)
        self.seen = set()
        self.stats = {"cuts": 0, "distinct": 0, "torn": 0,
                      "volatile-dropped": 0}

    # -- QEMU ---------------------------------------------------------

    # qemu-img runs in the scratch directory: QEMU 7.2 opens a relative
    # data file name from the current directory.
    def image_args(self):
        img = self.args.image
        if self.args.secret:
            return ["--object", "secret,id=sec0,data=" + self.args.secret,
                    "--image-opts",
                    "driver=qcow2,file.filename=%s,encrypt.key-secret=sec0"
                    % img]
        return ["-f", "qcow2", img]

    def qemu_check(self):
        cmd = ["qemu-img", "check"]
        if self.args.lazy:
            cmd += ["-r", "all"]
        p = subprocess.run(cmd + self.image_args(), capture_output=True,
                           text=True, cwd=self.scratch)
        if p.returncode not in (0, 3):
            raise CheckFailed("qemu-img check%s exit %d:\n%s%s" % (
                " -r all" if self.args.lazy else "", p.returncode,
                p.stdout, p.stderr))
        return p.stdout

    def guest_view(self):
        out = os.path.join(self.scratch, "view.raw")
        if os.path.exists(out):
            os.unlink(out)
        p = subprocess.run(["qemu-img", "convert"] + self.image_args() +
                           ["-O", "raw", out],
                           capture_output=True, text=True, cwd=self.scratch)
        if p.returncode != 0:
            raise CheckFailed("qemu-img convert exit %d:\n%s" %
                              (p.returncode, p.stderr))
        with open(out, "rb") as f:
            return f.read()

    # -- the model ----------------------------------------------------

    def sanity(self):
        """A journal without the server's writes and syncs of every file,
        or without the client's marks, would make every check pass."""
        for f, name in enumerate(self.names):
            for t, what in ((WRITE, "write"), (SYNCED, "completed sync")):
                if not any(r.type == t and r.file == f for r in self.recs):
                    raise CheckFailed("the journal holds no %s of %s: is "
                                      "the shim preloaded and tracking it?"
                                      % (what, name))
        if not any(r.type == MARK and r.file == M_FLUSHED
                   for r in self.recs):
            raise CheckFailed("the journal holds no flush of the client")

    def run(self):
        self.sanity()
        rng = random.Random(self.args.seed)
        cuts = choose_cuts(self.recs, self.args.cuts, rng)
        # durable[f]: the file as of the journal prefix [0, applied[f])
        durable = [bytearray(c) for c in self.initial]
        applied = [0] * len(self.names)
        sync_start = {}             # sync number -> record index
        durable_upto = [0] * len(self.names)
        issued, acked, flushed = [], set(), set()
        i = 0
        t0 = time.monotonic()
        for cut in cuts:
            while i < cut.k:
                r = self.recs[i]
                if r.type == SYNC:
                    sync_start[r.length] = i
                elif r.type == SYNCED:
                    s = sync_start.pop(r.length)
                    durable_upto[r.file] = max(durable_upto[r.file], s)
                elif r.type == MARK:
                    if r.file == M_ISSUE:
                        issued.append(r.offset)
                    elif r.file == M_ACK:
                        acked.add(r.offset)
                    elif r.file == M_FLUSHED:
                        flushed = set(acked)
                        acked.add(r.offset)
                i += 1
            for f in range(len(self.names)):
                for j in range(applied[f], durable_upto[f]):
                    if self.recs[j].file == f and \
                       self.recs[j].type in CHANGES:
                        apply_rec(durable[f], self.buf, self.recs[j])
                applied[f] = max(applied[f], durable_upto[f])
            self.check_cut(cut, durable, applied, issued, acked, flushed)
        log("power-cut check: %d cut points, %d distinct states checked "
            "(%d with torn writes, %d writes not persisted) in %.1f s" %
            (self.stats["cuts"], self.stats["distinct"], self.stats["torn"],
             self.stats["volatile-dropped"], time.monotonic() - t0))
        print("cut points checked: %d (distinct states %d)" %
              (self.stats["cuts"], self.stats["distinct"]))

    def check_cut(self, cut, durable, applied, issued, acked, flushed):
        rng = random.Random(cut.seed)
        contents = []
        torn = False
        p_keep = rng.choice([0.1, 0.5, 0.9])
        cached = [j for f in range(len(self.names))
                  for j in range(applied[f], cut.k)
                  if self.recs[j].file == f and
                  self.recs[j].type in CHANGES]
        one = rng.choice(cached) if cached else None
        for f in range(len(self.names)):
            c = bytearray(durable[f])
            for j in range(applied[f], cut.k):
                r = self.recs[j]
                if r.file != f or r.type not in CHANGES:
                    continue
                if cut.how == "none" or \
                   (cut.how == "keep-one" and j != one) or \
                   (cut.how == "drop-one" and j == one):
                    self.stats["volatile-dropped"] += 1
                    continue
                if cut.how != "random":
                    apply_rec(c, self.buf, r)
                    continue
                if rng.random() >= p_keep:
                    self.stats["volatile-dropped"] += 1
                    continue
                first = r.offset // SECTOR
                last = (r.offset + r.length - 1) // SECTOR
                if r.type == WRITE and first < last and rng.random() < 0.3:
                    sectors = {s for s in range(first, last + 1)
                               if rng.random() < 0.5}
                    torn = True
                    apply_rec(c, self.buf, r, sectors)
                else:
                    apply_rec(c, self.buf, r)
            contents.append(c)
        self.stats["cuts"] += 1
        digest = hashlib.sha1(b"".join(hashlib.sha1(c).digest()
                                       for c in contents)).digest()
        if digest in self.seen:
            return
        self.seen.add(digest)
        self.stats["distinct"] += 1
        self.stats["torn"] += torn
        for f, name in enumerate(self.names):
            with open(os.path.join(self.scratch, name), "wb") as fh:
                fh.write(contents[f])
        try:
            self.qemu_check()
            actual = self.guest_view()
            floor, cands = self.oracle.allowed(issued, acked, flushed)
            if len(actual) != self.size:
                raise CheckFailed("guest view is %d bytes, not %d" %
                                  (len(actual), self.size))
            bad = ww.first_unexplained(actual, 0, self.size, cands)
            if bad is not None:
                who = [n for n in issued
                       if self.ops[n].kind != "flush" and
                       self.ops[n].offset <= bad < self.ops[n].end()]
                raise CheckFailed(
                    "guest byte %d reads %02x; it must read %02x%s "
                    "(requests issued over it: %s)" % (
                        bad, actual[bad], floor[bad],
                        " or a later request's value" if who else "",
                        ", ".join("%r%s" % (self.ops[n],
                                            " acked" if n in acked else "")
                                  for n in who) or "none"))
        except CheckFailed as e:
            keep = os.path.join(self.scratch, "failed")
            os.makedirs(keep, exist_ok=True)
            for name in self.names:
                shutil.copy(os.path.join(self.scratch, name),
                            os.path.join(keep, name))
            raise CheckFailed("%r, after %d flushes: %s\n(image kept in %s)" %
                              (cut, sum(1 for n in flushed
                                        if self.ops[n].kind == "flush"),
                               e, keep))


def cmd_check(args):
    try:
        Checker(args).run()
    except CheckFailed as e:
        log("power-cut check FAILED: %s" % e)
        return 1
    return 0


def main():
    p, sub, r = command_line(__doc__, ops=150)
    r.add_argument("--journal", required=True)
    r.add_argument("--ops-file", required=True)
    r.add_argument("--fua", type=float, default=0.1,
                   help="probability of FUA on a write or zero")
    r.add_argument("--no-trim", action="store_true")
    c = sub.add_parser("check")
    c.add_argument("--journal", required=True)
    c.add_argument("--ops-file", required=True)
    c.add_argument("--initial", required=True,
                   help="directory with the files before the run")
    c.add_argument("--image", required=True, help="image file name")
    c.add_argument("--data-file", help="external data file name")
    c.add_argument("--scratch", required=True)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--cuts", type=int, default=220,
                   help="random cut points (besides every flush)")
    c.add_argument("--lazy", action="store_true",
                   help="lazy refcounts: repair, as QEMU does on open")
    c.add_argument("--secret", help="passphrase of an encrypted image")
    return run(p, {"run": cmd_run, "check": cmd_check})


if __name__ == "__main__":
    sys.exit(main())
