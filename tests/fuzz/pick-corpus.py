#!/usr/bin/python3
# Cut a merged libFuzzer corpus to a byte budget (README, "LUKS fuzzing
# results"):
#
#   FUZZER -merge=1 -merge_control_file=CTL SCRATCH MERGED
#   tests/fuzz/pick-corpus.py CTL BUDGET OUTDIR   (in the merge's directory:
#                                               CTL names files relatively)
#
# greedy set cover of the features (FT and COV lines of the control
# file), most new features per byte first (4 KiB added to each size so
# that tiny inputs do not win on size alone).
import os, shutil, sys
ctl, budget, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = open(ctl).read().split("\n")
n = int(lines[0]); files = lines[2:2 + n]
feat = {}
for l in lines[2 + n:]:
    p = l.split()
    if len(p) >= 2 and p[0] in ("FT", "COV"):
        feat.setdefault(int(p[1]), set()).update((p[0], x) for x in p[2:])
size = {i: max(os.path.getsize(files[i]), 1) for i in feat}
covered, total, chosen = set(), 0, []
while True:
    best, score = None, 0
    for i, f in feat.items():
        new = len(f - covered)
        if new and size[i] + total <= budget and new / (size[i] + 4096) > score:
            best, score = i, new / (size[i] + 4096)
    if best is None:
        break
    covered |= feat.pop(best); total += size[best]; chosen.append(best)
os.makedirs(out, exist_ok=True)
for i in chosen:
    shutil.copy(files[i], out)
allf = set().union(*[set(v) for v in feat.values()], covered)
print(f"{len(chosen)} files, {total} bytes, {len(covered)}/{len(allf)} features")
