#!/usr/bin/python3
# A seeded random write workload for an NBD export, mirrored on a raw
# reference file, and the checks that go with it.
#
# Run it with /usr/bin/python3: the `nbd` module (libnbd) is only
# installed for the system python, and another python3 may come first
# on PATH.
#
#   write-workload.py run --uri URI --reference REF.raw [options]
#       Connect several times to URI and issue a seeded random mix of
#       pwrite (1 byte .. 4 MiB, random alignment, random / patterned /
#       all-zero data), zero (with and without NO_HOLE, sometimes
#       FAST_ZERO), trim, pread and flush, with many requests in flight
#       but never two overlapping ones, so the outcome is defined.  The
#       same operations are applied to REF.raw (the guest view before
#       the run; rewritten with the view after it).  A trimmed range is
#       read back from the export (it must hold zeroes, the old content
#       or the backing content) and that is what goes into REF.
#       At the end every connection flushes, the whole export is read
#       back and compared with REF, and the connections are closed.
#
#       --state DIR records the "crash model" there at the end: the
#       content as of the last completed flush (durable.raw) and every
#       request since then or still unanswered (pending.json,
#       pending.dat).  With --until-error the run stops at the first
#       connection loss (kill -9 of the server: --expect-crash) or
#       request error (--expect-errno ENOSPC) instead of failing.
#
#   write-workload.py verify --state DIR --image IMAGE.raw [--backing B.raw]
#       After a crash or an error: every byte of IMAGE.raw (the guest
#       view, from `qemu-img convert -O raw`) must hold its value at the
#       last completed flush or one written to it by a request that was
#       not yet covered by a flush (for a trim: also zero or the backing
#       file's byte).
#
# Exit status: 0 success, 1 a check failed, 2 usage or set-up error.

import errno
import json
import os
import random
import select
import sys
import time

import nbd

from workload_cli import command_line, log, run

KiB = 1024
MiB = 1024 * 1024
MAX_IO = 4 * MiB                # largest pwrite/pread payload
MAX_ZERO = 16 * MiB             # largest zero/trim request
HANG_SECONDS = 120              # a server silent this long is hung


class CheckFailed(Exception):
    pass


def fail(msg):
    raise CheckFailed(msg)


# ----------------------------------------------------------------------
# Matching content against a set of allowed values.

def first_unexplained(actual, lo, hi, candidates):
    """Return the first offset in [lo, hi) where actual[off] equals no
    candidate[off], or None.  Candidates are whole-disk byte sequences
    (or None for "zero"), or (candidate, clo, chi) for one that only
    holds [clo, chi).  Bisects, so a range that matches one candidate
    as a whole costs one comparison."""
    zero_cache = {}

    def matches(a, b):
        for c in candidates:
            if isinstance(c, tuple):
                c, clo, chi = c
                if a < clo or chi < b:
                    continue
            if c is None:
                n = b - a
                z = zero_cache.get(n)
                if z is None:
                    z = zero_cache[n] = bytes(n)
                if actual[a:b] == z:
                    return True
            elif actual[a:b] == c[a:b]:
                return True
        return False

    stack = [(lo, hi)]
    while stack:
        a, b = stack.pop()
        if matches(a, b):
            continue
        if b - a == 1:
            return a
        mid = (a + b) // 2
        stack.append((mid, b))     # popped second: report the lowest first
        stack.append((a, mid))
    return None


class Window:
    """Bytes held for [lo, lo + len) addressed by disk offset."""

    def __init__(self, buf, lo, start=0):
        self.buf = buf
        self.lo = lo
        self.start = start        # where disk offset lo is in buf

    def __getitem__(self, s):
        a = self.start + s.start - self.lo
        return self.buf[a:a + s.stop - s.start]


# ----------------------------------------------------------------------
# Data patterns.

def make_data(rng, n, opno):
    """A payload of n bytes: random, all zero, one repeated byte, a
    stamped repeating sector pattern, or data with zero runs in it."""
    kind = rng.choices(
        ["random", "zero", "byte", "stamp", "holey", "sparse"],
        weights=[40, 12, 10, 14, 14, 10])[0]
    if kind == "random":
        return bytearray(rng.randbytes(n))
    if kind == "zero":
        return bytearray(n)
    if kind == "byte":
        return bytearray([rng.randrange(1, 256)]) * n
    if kind == "stamp":
        unit = (b"op%08d-" % opno) + rng.randbytes(16)
        unit = (unit * (512 // len(unit) + 1))[:512]
        return bytearray((unit * (n // 512 + 1))[:n])
    if kind == "holey":
        # random data with zero runs inside (cluster-sized holes are
        # what a zero-detecting writer would skip)
        buf = bytearray(rng.randbytes(n))
        for _ in range(rng.randrange(1, 5)):
            a = rng.randrange(n)
            b = min(n, a + rng.choice([1, 511, 4096, 65536, 1 << 20]))
            buf[a:b] = bytes(b - a)
        return buf
    # sparse: zeroes with a few non-zero bytes
    buf = bytearray(n)
    for _ in range(rng.randrange(1, 8)):
        buf[rng.randrange(n)] = rng.randrange(1, 256)
    return buf


# ----------------------------------------------------------------------
# Requests.

class Op:
    __slots__ = ("no", "kind", "offset", "length", "flags", "data",
                 "conn", "cookie", "buf", "stage", "value")

    def __init__(self, no, kind, offset=0, length=0, flags=0, data=None):
        self.no = no
        self.kind = kind          # pwrite zero trim fastzero pread flush
        self.offset = offset
        self.length = length
        self.flags = flags
        self.data = data          # pwrite payload
        self.conn = None
        self.cookie = None
        self.buf = None
        self.stage = 0            # trim / fastzero: 1 = reading back
        self.value = None         # content this op leaves (None = zeroes)

    def end(self):
        return self.offset + self.length

    def __repr__(self):
        flags = []
        if self.flags & nbd.CMD_FLAG_NO_HOLE:
            flags.append("NO_HOLE")
        if self.flags & nbd.CMD_FLAG_FUA:
            flags.append("FUA")
        if self.flags & nbd.CMD_FLAG_FAST_ZERO:
            flags.append("FAST_ZERO")
        return "#%d %s offset=%d length=%d%s conn=%s" % (
            self.no, self.kind, self.offset, self.length,
            (" " + "|".join(flags)) if flags else "", self.conn)


class Generator:
    """The seeded sequence of requests.  The sequence depends on the
    seed and the disk geometry only, never on timing."""

    def __init__(self, args, size, nconns, can):
        self.rng = random.Random(args.seed)
        self.size = size
        self.nconns = nconns
        self.can = can
        self.cluster = args.cluster_size
        self.max_io = min(MAX_IO, args.max_size)
        self.max_zero = min(MAX_ZERO, args.max_size)
        self.no = 0
        kinds = {"pwrite": 50, "zero": 14, "trim": 9, "pread": 12,
                 "flush": 4, "fastzero": 2}
        if not can["trim"] or args.no_trim:
            kinds.pop("trim")
        if not can["zero"]:
            kinds.pop("zero")
        if not can["fast_zero"] or not can["zero"]:
            kinds.pop("fastzero")
        for k in args.without or []:
            kinds.pop(k, None)
        self.kinds = list(kinds)
        self.weights = [kinds[k] for k in self.kinds]

    def _alignment(self):
        return self.rng.choice([1, 1, 1, 512, 512, 4096, self.cluster,
                                self.cluster, 65536, MiB])

    def _extent(self, limit):
        rng = self.rng
        # log-uniform sizes, so 1-byte and multi-MiB requests both occur
        n = min(limit, self.size, int(2 ** rng.uniform(0, 23)) or 1)
        if rng.random() < 0.15:
            n = min(self.size, limit,
                    rng.choice([self.cluster, 2 * self.cluster,
                                self.cluster // 2 or 1, limit]))
        a = self._alignment()
        if rng.random() < 0.5 and n >= a:
            n -= n % a
        n = max(1, n)
        off = rng.randrange(0, self.size - n + 1)
        off -= off % a
        if rng.random() < 0.05:
            off = self.size - n           # the tail of the disk
        return off, n

    def next(self):
        rng = self.rng
        self.no += 1
        kind = rng.choices(self.kinds, weights=self.weights)[0]
        if kind == "flush":
            op = Op(self.no, kind)
        elif kind in ("pwrite", "pread"):
            off, n = self._extent(self.max_io)
            op = Op(self.no, kind, off, n)
            if kind == "pwrite":
                op.data = make_data(rng, n, self.no)
                if self.can["fua"] and rng.random() < 0.1:
                    op.flags |= nbd.CMD_FLAG_FUA
        else:
            off, n = self._extent(self.max_zero)
            op = Op(self.no, kind, off, n)
            if kind == "zero" and rng.random() < 0.5:
                op.flags |= nbd.CMD_FLAG_NO_HOLE
            if kind == "fastzero":
                op.flags |= nbd.CMD_FLAG_FAST_ZERO
                if rng.random() < 0.5:
                    op.flags |= nbd.CMD_FLAG_NO_HOLE
            if kind != "trim" and self.can["fua"] and rng.random() < 0.1:
                op.flags |= nbd.CMD_FLAG_FUA
        op.conn = rng.randrange(self.nconns)
        return op


# ----------------------------------------------------------------------
# The crash model: content at the last completed flush plus what may
# have reached the disk since.

class CrashModel:
    def __init__(self, initial):
        self.durable = bytearray(initial)
        self.completed = []       # ops completed since the durable point
        self.ncompleted = 0       # ops ever completed (their sequence)
        self.applied = 0          # completion sequence covered by durable

    def op_completed(self, op):
        self.completed.append((self.ncompleted, op))
        self.ncompleted += 1
        if op.flags & nbd.CMD_FLAG_FUA:
            # FUA: durable on return.  (Earlier unflushed ops on the
            # range stay allowed too; a later flush replays everything
            # in completion order, so this op lands in the right place.)
            apply(self.durable, op)

    def flush_issued(self):
        """A flush covers every op completed before it was issued."""
        return self.ncompleted

    def flush_completed(self, cover):
        keep = []
        for seq, op in self.completed:
            if seq < cover:
                apply(self.durable, op)
            else:
                keep.append((seq, op))
        self.completed = keep
        self.applied = max(self.applied, cover)

    def save(self, statedir, unanswered, extra):
        os.makedirs(statedir, exist_ok=True)
        with open(os.path.join(statedir, "durable.raw"), "wb") as f:
            f.write(self.durable)
        entries = []
        with open(os.path.join(statedir, "pending.dat"), "wb") as f:
            pos = 0
            for op in [op for _, op in self.completed] + unanswered:
                if op.kind in ("pread", "flush"):
                    continue
                e = {"no": op.no, "kind": op.kind, "offset": op.offset,
                     "length": op.length, "flags": op.flags,
                     "answered": op not in unanswered}
                if op.kind == "pwrite":
                    f.write(op.data)
                    e["data"] = pos
                    pos += op.length
                elif op.kind in ("trim", "fastzero") and op.value is not None:
                    # read back after the trim: the server's own view
                    f.write(op.value)
                    e["data"] = pos
                    pos += op.length
                entries.append(e)
        info = {"pending": entries}
        info.update(extra)
        with open(os.path.join(statedir, "pending.json"), "w") as f:
            json.dump(info, f, indent=1)


def apply(buf, op):
    """Apply a completed op to a disk image held in memory."""
    if op.kind == "pwrite":
        buf[op.offset:op.end()] = op.data
    elif op.kind == "zero":
        buf[op.offset:op.end()] = bytes(op.length)
    elif op.kind in ("trim", "fastzero"):
        buf[op.offset:op.end()] = op.value


# ----------------------------------------------------------------------
# The workload.

class ConnectionLost(Exception):
    pass


class Workload:
    def __init__(self, args):
        self.args = args
        with open(args.reference, "rb") as f:
            self.ref = bytearray(f.read())
        self.backing = None
        if args.backing:
            with open(args.backing, "rb") as f:
                self.backing = f.read()
            if len(self.backing) < len(self.ref):
                # a shorter backing file reads as zeroes past its end
                self.backing += bytes(len(self.ref) - len(self.backing))
        self.conns = []
        for i in range(args.connections):
            h = nbd.NBD()
            h.set_handle_name("conn%d" % i)
            # Requests of any alignment are part of the workload, also
            # where the server advertises a larger minimum block size
            # (encrypted qcow2: 512) but still serves smaller requests.
            h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_ALIGN)
            h.connect_uri(args.uri)
            self.conns.append(h)
        h = self.conns[0]
        self.size = h.get_size()
        if self.size != len(self.ref):
            raise SystemExit("export is %d bytes, reference %d" %
                             (self.size, len(self.ref)))
        if h.is_read_only():
            raise SystemExit("the export is read-only")
        self.can = {"trim": h.can_trim(), "zero": h.can_zero(),
                    "fast_zero": h.can_fast_zero(), "fua": h.can_fua(),
                    "multi_conn": h.can_multi_conn(),
                    "flush": h.can_flush()}
        log("write-workload: %d bytes, seed %d, %s" %
            (self.size, args.seed,
             " ".join(k for k, v in self.can.items() if v)))
        if args.ready_file:
            # connected: the caller may start its clock (e.g. to kill
            # the server at a random moment of the run)
            open(args.ready_file, "w").close()
        self.model = CrashModel(self.ref) if args.state else None
        self.inflight = {}        # (conn, cookie) -> op
        self.flushes = {}         # group id -> [remaining, cover]
        self.ngroups = 0
        self.outstanding = [0] * len(self.conns)
        self.error = None         # (op, errno) of a failed request
        self.failed_ops = []      # requests that failed as expected
        self.lost = []            # unanswered when the connection died
        self.stats = {}
        self.max_inflight = 0
        self.flushes_done = 0

    # -- issuing ------------------------------------------------------

    def overlaps(self, op):
        if op.kind == "flush":
            return False
        for o in self.inflight.values():
            if o.kind != "flush" and o.offset < op.end() and \
               op.offset < o.end():
                return True
        return False

    def submit(self, op, conn=None):
        if conn is not None:
            op.conn = conn
        h = self.conns[op.conn]
        if op.kind == "pwrite":
            op.buf = nbd.Buffer.from_bytearray(op.data)
            op.cookie = h.aio_pwrite(op.buf, op.offset, flags=op.flags)
        elif op.kind == "pread":
            op.buf = nbd.Buffer(op.length)
            op.cookie = h.aio_pread(op.buf, op.offset)
        elif op.kind in ("zero", "fastzero"):
            op.cookie = h.aio_zero(op.length, op.offset, flags=op.flags)
        elif op.kind == "trim":
            op.cookie = h.aio_trim(op.length, op.offset, flags=op.flags)
        elif op.kind == "flush":
            op.cookie = h.aio_flush()
        self.inflight[(op.conn, op.cookie)] = op
        self.outstanding[op.conn] += 1
        self.max_inflight = max(self.max_inflight, len(self.inflight))

    def issue_flush(self, op):
        """A flush on one connection covers every connection when the
        server offers multi-conn; otherwise flush them all."""
        self.ngroups += 1
        group = self.ngroups
        cover = self.model.flush_issued() if self.model else 0
        if self.can["multi_conn"]:
            targets = [op.conn]
        else:
            targets = range(len(self.conns))
        self.flushes[group] = [len(targets), cover]
        for c in targets:
            f = Op(op.no, "flush")
            f.value = group
            self.submit(f, c)

    def issue(self, op):
        if self.args.trace:
            log("issue %r" % op)
        self.stats[op.kind] = self.stats.get(op.kind, 0) + 1
        if op.kind == "flush":
            self.issue_flush(op)
        else:
            self.submit(op)

    # -- completion ---------------------------------------------------

    def wait(self):
        """Wait for the sockets, then retire what completed."""
        poller = select.poll()
        fds = {}
        for i, h in enumerate(self.conns):
            d = h.aio_get_direction()
            ev = 0
            if d & nbd.AIO_DIRECTION_READ:
                ev |= select.POLLIN
            if d & nbd.AIO_DIRECTION_WRITE:
                ev |= select.POLLOUT
            if ev:
                fd = h.aio_get_fd()
                poller.register(fd, ev)
                fds[fd] = h
        if not fds:
            # Nothing to wait for although requests are outstanding: the
            # connections are gone (libnbd closed them quietly).
            raise ConnectionLost("no connection left with %d requests "
                                 "outstanding" % len(self.inflight))
        ready = poller.poll(HANG_SECONDS * 1000)
        if not ready:
            fail("no reply for %d s with %d requests outstanding: %s" %
                 (HANG_SECONDS, len(self.inflight),
                  ", ".join(repr(o) for o in self.inflight.values())))
        for fd, ev in ready:
            h = fds[fd]
            if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                h.aio_notify_read()
            if ev & select.POLLOUT:
                h.aio_notify_write()
        self.retire()

    def retire(self):
        for i, h in enumerate(self.conns):
            while self.outstanding[i] > 0:
                cookie = h.aio_peek_command_completed()
                if cookie <= 0:
                    break
                op = self.inflight.pop((i, cookie))
                self.outstanding[i] -= 1
                err = None
                try:
                    h.aio_command_completed(cookie)
                except nbd.Error as e:
                    err = e
                self.completed(op, err)

    def completed(self, op, err):
        if err is not None:
            code = err.errnum or 0
            if code in (errno.ENOTCONN, errno.ECONNRESET, errno.EPIPE,
                        errno.ESHUTDOWN):
                self.lost.append(op)
                raise ConnectionLost("%r: %s" % (op, err))
            if op.kind == "flush":
                fail("%r failed: %s" % (op, err))
            if op.kind == "fastzero" and code == errno.ENOTSUP and \
               op.stage == 0:
                # refused without touching anything: read back to check
                self.stats["fastzero-refused"] = \
                    self.stats.get("fastzero-refused", 0) + 1
                return self.read_back(op)
            if self.args.expect_errno and self.error is None:
                self.error = (op, code)
                log("write-workload: %r failed: %s" % (op, err))
                self.failed_ops.append(op)
                return
            if self.args.expect_errno:
                self.failed_ops.append(op)
                return
            fail("%r failed: %s" % (op, err))

        if op.kind == "flush":
            g = self.flushes[op.value]
            g[0] -= 1
            if g[0] == 0:
                del self.flushes[op.value]
                self.flushes_done += 1
                if self.model:
                    self.model.flush_completed(g[1])
            return
        if op.kind == "pread":
            got = op.buf.to_bytearray()
            want = self.ref[op.offset:op.end()]
            if got != want:
                bad = next(i for i in range(op.length) if got[i] != want[i])
                fail("%r: byte %d reads %02x, expected %02x" %
                     (op, op.offset + bad, got[bad], want[bad]))
            op.buf = None
            return
        if op.kind in ("trim", "fastzero") and op.stage == 0:
            if op.kind == "trim":
                return self.read_back(op)
            op.value = bytes(op.length)
        elif op.kind in ("trim", "fastzero"):
            self.check_read_back(op)
        op.buf = None
        apply(self.ref, op)
        if self.model:
            self.model.op_completed(op)

    def read_back(self, op):
        """Trimmed content is unspecified: read what the server now
        holds (the range stays locked until then)."""
        op.stage = 1
        op.buf = nbd.Buffer(op.length)
        h = self.conns[op.conn]
        op.cookie = h.aio_pread(op.buf, op.offset)
        self.inflight[(op.conn, op.cookie)] = op
        self.outstanding[op.conn] += 1

    def check_read_back(self, op):
        got = bytes(op.buf.to_bytearray())
        lo, hi = op.offset, op.end()
        shifted = Window(got, lo)
        # A refused fast zero should change nothing (nbdkit-plugin(3):
        # "preferably without modifying the exported image"); a failed
        # request may have written part of its range, so zeroes are
        # allowed too, but counted.  qemu-nbd 7.2 zeroes the aligned
        # part of a request before refusing the rest.
        cands = [None, self.ref]
        if op.kind == "trim" and self.backing is not None:
            cands.append(self.backing)
        bad = first_unexplained(shifted, lo, hi, cands)
        if bad is not None:
            fail("%r: byte %d reads %02x after it; allowed: zero, "
                 "old %02x%s" % (op, bad, got[bad - lo], self.ref[bad],
                                 ", backing %02x" % self.backing[bad]
                                 if self.backing else ""))
        if op.kind == "fastzero" and got != self.ref[lo:hi]:
            self.stats["fastzero-refused-but-modified"] = \
                self.stats.get("fastzero-refused-but-modified", 0) + 1
        op.value = got

    # -- the run ------------------------------------------------------

    def run(self):
        args = self.args
        gen = Generator(args, self.size, len(self.conns), self.can)
        deadline = time.monotonic() + args.time_limit if args.time_limit \
            else None
        pending = None
        done = 0
        only = None
        if args.only:
            only = {int(n) for n in args.only.split(",")}
        try:
            while True:
                stop = done >= args.ops or self.error is not None or \
                    (deadline is not None and time.monotonic() > deadline)
                if stop:
                    break
                if pending is None:
                    pending = gen.next()
                    if only is not None and pending.no not in only:
                        pending = None      # minimising a failure
                        done += 1
                        continue
                if len(self.inflight) < args.inflight and \
                   not self.overlaps(pending):
                    self.issue(pending)
                    pending = None
                    done += 1
                    continue
                self.wait()
            while self.inflight:
                self.wait()
            if self.error is not None:
                return self.finish_after_error()
            if args.expect_errno:
                fail("no request failed with %s in %d requests" %
                     (args.expect_errno, done))
            self.finish()
        except (ConnectionLost, nbd.Error) as e:
            if not args.expect_crash:
                raise
            log("write-workload: connection lost after %d ops: %s" %
                (done, e))
            self.save_state(crashed=True, ops=done)
            return 0
        if args.expect_crash:
            log("write-workload: the server survived all %d ops" % done)
        return 0

    def flush_all(self):
        op = Op(0, "flush")
        for c in range(len(self.conns)):
            op.conn = c
            self.issue_flush(op)
        while self.inflight:
            self.wait()

    def finish(self):
        """Flush, read everything back, disconnect, write REF."""
        self.flush_all()
        h = self.conns[0]
        for off in range(0, self.size, MAX_IO):
            n = min(MAX_IO, self.size - off)
            got = h.pread(n, off)
            if got != self.ref[off:off + n]:
                bad = next(i for i in range(n) if got[i] != self.ref[off + i])
                fail("final read-back: byte %d reads %02x, expected %02x" %
                     (off + bad, got[bad], self.ref[off + bad]))
        for h in self.conns:
            h.shutdown()
        self.write_reference()
        self.save_state(crashed=False)
        log("write-workload: done: %s, %d flushes completed, up to %d "
            "requests in flight" %
            (" ".join("%s=%d" % kv for kv in sorted(self.stats.items())),
             self.flushes_done, self.max_inflight))

    def finish_after_error(self):
        """A request failed as expected (e.g. ENOSPC): flush what was
        acknowledged, record the model, disconnect."""
        op, code = self.error
        want = getattr(errno, self.args.expect_errno)
        print("error %s on %r" % (errno.errorcode.get(code, code), op))
        if code != want:
            fail("%r failed with %s, expected %s" %
                 (op, errno.errorcode.get(code, code),
                  self.args.expect_errno))
        self.flush_all()
        # the failed requests may have written all, part or nothing
        self.save_state(crashed=False, unanswered=self.failed_ops,
                        error=errno.errorcode.get(code, code))
        for h in self.conns:
            h.shutdown()
        log("write-workload: %d requests failed with %s; flushed" %
            (len(self.failed_ops), self.args.expect_errno))
        return 0

    def save_state(self, crashed, ops=None, unanswered=None, error=None):
        if not self.model:
            return
        if unanswered is None:
            unanswered = [o for o in list(self.inflight.values()) + self.lost
                          if o.kind != "flush"]
        self.model.save(self.args.state, unanswered,
                        {"crashed": crashed, "ops": ops, "error": error,
                         "flushes": self.flushes_done, "seed": self.args.seed})

    def write_reference(self):
        with open(self.args.reference, "r+b") as f:
            f.write(self.ref)


def cmd_run(args):
    if args.expect_crash or args.expect_errno:
        if not args.state:
            raise SystemExit("--expect-crash/--expect-errno need --state")
    w = Workload(args)
    return w.run()


# ----------------------------------------------------------------------
# Verifying the image after a crash or error.

def cmd_verify(args):
    with open(os.path.join(args.state, "pending.json")) as f:
        info = json.load(f)
    with open(os.path.join(args.state, "durable.raw"), "rb") as f:
        durable = f.read()
    with open(os.path.join(args.state, "pending.dat"), "rb") as f:
        dat = f.read()
    with open(args.image, "rb") as f:
        image = f.read()
    size = len(durable)
    if len(image) != size:
        fail("image is %d bytes, model %d" % (len(image), size))
    backing = None
    if args.backing:
        with open(args.backing, "rb") as f:
            backing = f.read()
        backing += bytes(max(0, size - len(backing)))

    # The value a pending op may have left, addressed by disk offset.
    ops = info["pending"]
    bounds = {0, size}
    for e in ops:
        bounds.add(e["offset"])
        bounds.add(e["offset"] + e["length"])
    bounds = sorted(bounds)

    def Shifted(e):
        return Window(dat, e["offset"], e["data"])

    cands_of = []
    for e in ops:
        c = []
        if e["kind"] == "pwrite":
            c.append(Shifted(e))
        elif e["kind"] == "zero":
            c.append(None)
        elif e["kind"] == "fastzero":
            c.append(None)
            if "data" in e:
                c.append(Shifted(e))
        elif e["kind"] == "trim":
            c.append(None)
            if backing is not None:
                c.append(backing)
            if "data" in e:
                c.append(Shifted(e))
        cands_of.append((e["offset"], e["offset"] + e["length"], c, e))

    C = args.allow_freed_reuse
    reused = set()

    def aliases(g):
        """What guest cluster g may show if its host cluster was freed
        by a pending trim or zero and handed to a pending write for
        another guest cluster before g's L2 entry reached the disk: any
        content that cluster had since the flush, at the same place in
        the cluster (the new data, or the old copied around it)."""
        base = g * C
        out = []
        for e in ops:
            if e["kind"] != "pwrite":
                continue
            first = e["offset"] // C
            last = (e["offset"] + e["length"] - 1) // C
            for h in range(first, last + 1):
                a = max(e["offset"], h * C) - h * C
                b = min(e["offset"] + e["length"], h * C + C) - h * C
                w = Window(dat, base + a, e["data"] + h * C + a - e["offset"])
                out.append((w, base + a, base + b))
                out.append((Window(durable, base, h * C), base, base + C))
        return out

    def frees(e):
        return e["kind"] == "trim" or \
            (e["kind"] == "zero" and not e.get("flags", 0) & nbd.CMD_FLAG_NO_HOLE)

    for i in range(len(bounds) - 1):
        lo, hi = bounds[i], bounds[i + 1]
        cands = [durable]
        who = []
        for a, b, c, e in cands_of:
            if a <= lo and hi <= b:
                cands.extend(c)
                who.append(e)
        while lo < hi:
            bad = first_unexplained(image, lo, hi, cands)
            if bad is None:
                break
            if C and any(frees(e) for e in who):
                g = bad // C
                end = min(hi, g * C + C)
                bad = first_unexplained(image, bad, end, cands + aliases(g))
                if bad is None:
                    reused.add(g)
                    lo = end
                    continue
            fail("byte %d reads %02x; durable value %02x; pending ops "
                 "there: %s" % (bad, image[bad], durable[bad],
                                ", ".join("#%d %s" % (e["no"], e["kind"])
                                          for e in who) or "none"))
    if reused:
        print("verify: guest clusters %s hold data of other clusters "
              "(a freed host cluster reused before the trim/zero that "
              "freed it was flushed; allowed by --allow-freed-reuse)" %
              ", ".join(str(g) for g in sorted(reused)))
    print("verify: %d pending requests, image consistent with the model "
          "(%d flushes completed)" % (len(ops), info.get("flushes", 0)))
    return 0


# ----------------------------------------------------------------------

def main():
    p, sub, r = command_line(__doc__, ops=300)
    r.add_argument("--reference", required=True,
                   help="raw file with the guest view; updated in place")
    r.add_argument("--backing", help="raw guest view of the backing file")
    r.add_argument("--time-limit", type=float, default=0,
                   help="stop issuing after this many seconds")
    r.add_argument("--inflight", type=int, default=8)
    r.add_argument("--connections", type=int, default=2)
    r.add_argument("--max-size", type=int, default=MAX_ZERO,
                   help="largest request (default 4 MiB for data, "
                   "16 MiB for zero and trim)")
    r.add_argument("--no-trim", action="store_true")
    r.add_argument("--without", action="append",
                   choices=["pwrite", "zero", "trim", "pread", "flush",
                            "fastzero"],
                   help="leave out a kind of request")
    r.add_argument("--only", metavar="N,N,...",
                   help="issue only these requests of the sequence (to "
                   "narrow down a failure)")
    r.add_argument("--trace", action="store_true",
                   help="log every request as it is issued")
    r.add_argument("--state", help="directory for the crash model")
    r.add_argument("--ready-file",
                   help="create this file once connected")
    r.add_argument("--expect-crash", action="store_true",
                   help="the server will be killed: stop at the first "
                   "connection loss and record the model")
    r.add_argument("--expect-errno",
                   help="stop at the first request error, which must be "
                   "this errno (e.g. ENOSPC); flush and record the model")

    v = sub.add_parser("verify")
    v.add_argument("--state", required=True)
    v.add_argument("--image", required=True, help="raw guest view")
    v.add_argument("--backing")
    v.add_argument("--allow-freed-reuse", type=int, metavar="CLUSTER_SIZE",
                   default=0,
                   help="accept a guest cluster under an unflushed trim or "
                   "zero showing another cluster's unflushed data (qemu-nbd "
                   "7.2 does this after a crash)")

    try:
        return run(p, {"run": cmd_run, "verify": cmd_verify})
    except CheckFailed as e:
        print("FAIL: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
