#!/usr/bin/python3
# The client side of the fault tests (tests/test-qcow2-faults.bats): a
# seeded serial workload while the layer below the server fails chosen
# calls (tests/io-shim.c, or nbdkit's error filter).
#
#   fault-workload.py run --uri URI --initial RAW --state FILE
#                         [--arm FILE] [--sticky] [--seed N] [--ops N]
#       Connects, creates the --arm file (the shim or the error filter
#       starts failing calls from then on), then issues writes (some
#       FUA), zeroes, trims, reads and flushes one at a time.  Checks:
#         - a request either succeeds or fails with an NBD error; the
#           connection survives (a lost connection is a server crash);
#         - a read that succeeds returns what the model holds, except
#           where a failed request may have left part of its data and
#           no successful one has written since;
#         - with --sticky: once a write, zero, trim or flush has
#           failed, every later flush fails too;
#         - at least one request failed (else the fault never reached
#           the client, or landed outside the workload: the test is
#           wrong).
#       Saves to FILE what a check after the run needs: the guest view
#       at the last successful flush (with FUA writes since), and every
#       request since then, failed or not.
#
#   fault-workload.py verify --state FILE --image RAW
#       RAW (the guest view read back by QEMU after the server stopped)
#       holds at every byte the value at the last successful flush, or
#       one a later request wrote there, or zero where a later trim
#       covered it, or what a failed request (at any time) wrote there.
#
# Exit status: 0 success, 1 a check failed, 2 usage or set-up error.

import pickle
import random
import sys

from workload_cli import command_line, load, log, run


def fail(msg):
    log("fault-workload: FAILED: " + msg)
    sys.exit(1)


def mismatch(got, current, off, uncertain):
    """The first offset where got (read at off) differs from current,
    outside the uncertain ranges, or None."""
    n = len(got)
    if got == current[off:off + n]:
        return None
    skip = [(max(lo, off), min(hi, off + n)) for lo, hi in uncertain
            if lo < off + n and off < hi]
    for i in range(n):
        if got[i] != current[off + i] and \
           not any(lo <= off + i < hi for lo, hi in skip):
            return off + i
    return None


def cmd_run(args):
    import nbd
    ww = load("write_workload", "write-workload.py")
    pc = load("power_cut", "power-cut.py")
    rng = random.Random(args.seed)
    with open(args.initial, "rb") as f:
        current = bytearray(f.read())
    h = nbd.NBD()
    h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_ALIGN)
    h.connect_uri(args.uri)
    size = h.get_size()
    if size != len(current):
        fail("export is %d bytes, the initial view %d" % (size, len(current)))
    if args.arm:
        open(args.arm, "w").close()
    durable = bytearray(current)
    since = []                  # (offset, value) of requests since
    failed = []                 # (offset, value) of every failed request
    uncertain = []              # [lo, hi) a failed request left undefined
    broken = False              # a write or flush failed
    errors = {}
    ok = {}
    cluster = args.cluster_size
    kinds = ["pwrite", "zero", "trim", "pread", "flush"]
    weights = [50, 10, 8 if h.can_trim() else 0, 17, 15]
    for no in range(1, args.ops + 1):
        kind = rng.choices(kinds, weights)[0]
        off, n = pc.gen_extent(rng, size, cluster,
                               256 * 1024 if kind != "zero" else 1 << 20)
        fua = kind in ("pwrite", "zero") and rng.random() < 0.15
        flags = nbd.CMD_FLAG_FUA if fua else 0
        data = None
        mark = len(since)
        try:
            if kind == "pwrite":
                data = bytes(ww.make_data(rng, n, no))
                since.append((off, data))
                h.pwrite(data, off, flags)
            elif kind == "zero":
                data = bytes(n)
                since.append((off, data))
                h.zero(n, off, flags)
            elif kind == "trim":
                since.append((off, bytes(n)))
                since.append((off, bytes(current[off:off + n])))
                h.trim(n, off)
                data = h.pread(n, off)
                since.append((off, data))
            elif kind == "pread":
                got = h.pread(n, off)
                bad = mismatch(got, current, off, uncertain)
                if bad is not None:
                    bad -= off
                    fail("#%d pread offset=%d length=%d: byte %d reads %02x,"
                         " expected %02x" % (no, off, n, off + bad,
                                             got[bad], current[off + bad]))
            else:
                h.flush()
                if broken and args.sticky:
                    fail("#%d: a flush succeeded after an earlier write or "
                         "flush failed" % no)
                durable = bytearray(current)
                since = []
            ok[kind] = ok.get(kind, 0) + 1
        except nbd.Error as e:
            if not h.aio_is_ready() or "connect" in str(e).lower():
                fail("#%d %s: the connection is gone (server crash?): %s" %
                     (no, kind, e))
            errors[kind] = errors.get(kind, 0) + 1
            if kind != "pread":
                broken = True
                failed.extend(since[mark:])
            if kind in ("pwrite", "zero", "trim"):
                uncertain.append((off, off + n))
            continue
        if data is not None:
            uncertain = pc.subtract(uncertain, off, off + n)
            current[off:off + n] = data
            if fua:
                durable[off:off + n] = data
    log("fault-workload: seed %d; succeeded: %s; failed: %s" % (
        args.seed, " ".join("%s=%d" % kv for kv in sorted(ok.items())),
        " ".join("%s=%d" % kv for kv in sorted(errors.items())) or "none"))
    print("requests failed: %d" % sum(errors.values()))
    if not errors and not args.may_not_fail:
        fail("no request failed: the fault never reached the client")
    try:
        h.shutdown()
    except nbd.Error:
        pass
    with open(args.state, "wb") as f:
        pickle.dump({"durable": bytes(durable), "since": since + failed}, f)
    return 0


def cmd_verify(args):
    ww = load("write_workload", "write-workload.py")
    with open(args.state, "rb") as f:
        st = pickle.load(f)
    with open(args.image, "rb") as f:
        actual = f.read()
    durable = st["durable"]
    if len(actual) != len(durable):
        fail("the image holds %d bytes, not %d" % (len(actual), len(durable)))
    cands = [durable]
    for off, value in st["since"]:
        cands.append((ww.Window(value, off), off, off + len(value)))
    bad = ww.first_unexplained(actual, 0, len(actual), cands)
    if bad is not None:
        fail("byte %d reads %02x; at the last successful flush it held %02x "
             "and no later request wrote what it holds" %
             (bad, actual[bad], durable[bad]))
    log("fault-workload: everything flushed is intact (%d requests since "
        "the last successful flush)" % len(st["since"]))
    return 0


def main():
    p, sub, r = command_line(__doc__, ops=200)
    r.add_argument("--initial", required=True)
    r.add_argument("--state", required=True)
    r.add_argument("--arm")
    r.add_argument("--sticky", action="store_true")
    r.add_argument("--may-not-fail", action="store_true")
    v = sub.add_parser("verify")
    v.add_argument("--state", required=True)
    v.add_argument("--image", required=True)
    return run(p, {"run": cmd_run, "verify": cmd_verify})


if __name__ == "__main__":
    sys.exit(main())
