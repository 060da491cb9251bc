#!/usr/bin/env python3
# json-compare.py OURS QEMU [KEY...] [--ignore=KEY...]: compare
# qcow2-tool's JSON output with qemu-img's for the same command.  Every
# field either prints must be printed by the other with the same value,
# except the KEYs named, which qemu-img may print and we do not, and the
# --ignore KEYs, whose values may differ (both must print them or
# neither).  Prints each difference and exits 1 if there is one.
import json
import sys

ours_path, qemu_path, *keys = sys.argv[1:]
ignored = [k[len("--ignore="):] for k in keys if k.startswith("--ignore=")]
qemu_only = [k for k in keys if not k.startswith("--ignore=")]
differences = []


def compare(ours, qemu, where):
    if isinstance(ours, dict) and isinstance(qemu, dict):
        for key in sorted(set(ours) | set(qemu)):
            here = f"{where}.{key}"
            if key not in qemu:
                differences.append(f"{here}: only ours prints it")
            elif key not in ours:
                if key not in qemu_only:
                    differences.append(f"{here}: only qemu-img prints it")
            elif key not in ignored:
                compare(ours[key], qemu[key], here)
    elif isinstance(ours, list) and isinstance(qemu, list):
        if len(ours) != len(qemu):
            differences.append(f"{where}: {len(ours)} entries, qemu-img "
                               f"has {len(qemu)}")
        for i, (a, b) in enumerate(zip(ours, qemu)):
            compare(a, b, f"{where}[{i}]")
    elif ours != qemu or type(ours) is not type(qemu):
        differences.append(f"{where}: ours {ours!r}, qemu-img {qemu!r}")


with open(ours_path) as f:
    ours = json.load(f)
with open(qemu_path) as f:
    qemu = json.load(f)
compare(ours, qemu, "")
for d in differences:
    print(d)
sys.exit(1 if differences else 0)
