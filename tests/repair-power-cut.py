#!/usr/bin/env python3
# repair-power-cut.py MODE JOURNAL INITIAL REFERENCE SCRATCH: what a
# power cut during `qcow2-tool check -r MODE` leaves on disk, checked
# with qemu-img (tests/test-qcow2-tool-check.bats).
#
# The repair ran with tests/io-shim.c recording its system calls on the
# image into JOURNAL; INITIAL is the image before it.  The disk model
# and the cut points are power-cut.py's: after fdatasync returns, every
# write that completed before the call is durable; any later write may
# or may not have reached the disk.  At each cut the image must be no
# worse than before the repair:
#   leaks: `qemu-img check` exits 0 or 3 (leaks at most: the image had
#          nothing else);
#   all:   `qemu-img check -r all` exits 0 (qemu-img can still repair
#          it), and the guest data then equals REFERENCE (a raw image
#          of what qemu-img's own repair of INITIAL holds).
# Exit status: 0 success, 1 a cut failed.

import os
import random
import subprocess
import sys

from workload_cli import load

pc = load("power_cut", "power-cut.py")


def last_durable(recs, k):
    """Index of the SYNC record of the last sync that returned before
    record k: every write before it is durable."""
    started = {}
    durable = 0
    for i, r in enumerate(recs[:k]):
        if r.type == pc.SYNC:
            started[r.length] = i
        elif r.type == pc.SYNCED and r.length in started:
            durable = started[r.length]
    return durable


def materialise(initial, buf, recs, cut):
    content = bytearray(initial)
    durable = last_durable(recs, cut.k)
    pending = [r for r in recs[durable:cut.k] if r.type in pc.CHANGES]
    rng = random.Random(cut.seed)
    if cut.how == "none":
        keep = set()
    elif cut.how == "all":
        keep = set(range(len(pending)))
    elif cut.how == "keep-one":
        keep = {rng.randrange(len(pending))} if pending else set()
    elif cut.how == "drop-one":
        keep = set(range(len(pending))) - (
            {rng.randrange(len(pending))} if pending else set())
    else:
        keep = {i for i in range(len(pending)) if rng.random() < 0.5}
    for r in recs[:durable]:
        if r.type in pc.CHANGES:
            pc.apply_rec(content, buf, r)
    for i, r in enumerate(pending):
        if i in keep:
            pc.apply_rec(content, buf, r)
    return content


def check_cut(mode, image, reference):
    if mode == "leaks":
        status = subprocess.run(["qemu-img", "check", "-q", image]).returncode
        return status in (0, 3), "qemu-img check exit %d" % status
    status = subprocess.run(["qemu-img", "check", "-q", "-r", "all", image],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL).returncode
    if status != 0:
        return False, "qemu-img check -r all exit %d" % status
    status = subprocess.run(["qemu-img", "compare", "-q", "-f", "qcow2",
                             "-F", "raw", image, reference]).returncode
    return status == 0, "guest data differs (qemu-img compare %d)" % status


def main():
    mode, journal, initial_path, reference, scratch = sys.argv[1:]
    buf, recs = pc.read_journal(journal)
    with open(initial_path, "rb") as f:
        initial = f.read()
    cuts = pc.choose_cuts(recs, 12, random.Random(1))
    image = os.path.join(scratch, "cut.qcow2")
    failed = 0
    for cut in cuts:
        with open(image, "wb") as f:
            f.write(materialise(initial, buf, recs, cut))
        ok, why = check_cut(mode, image, reference)
        if not ok:
            print("%r: %s" % (cut, why))
            failed += 1
    print("%d cuts, %d failed" % (len(cuts), failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
