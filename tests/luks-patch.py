#!/usr/bin/python3
# Damage or alter LUKS headers for the error tests of the luks filter.
#
#   luks-patch.py FILE luks1-cipher NAME      set the LUKS1 cipher name
#   luks-patch.py FILE damage primary|secondary|both
#                                             flip a byte of the LUKS2 JSON
#                                             (checksums then fail)
#   luks-patch.py FILE json integrity|twofish|requirement
#                                             change the LUKS2 metadata in
#                                             both headers, checksums fixed
#   luks-patch.py FILE luks1-iter SLOT|mk [N]  print, or set to N, the PBKDF2
#                                             iterations of a LUKS1 key slot
#                                             or of the master key digest
#                                             (the first LUKS1 header in
#                                             FILE: raw or inside qcow2)
#   luks-patch.py FILE json-int PATH N        set a number in the LUKS2
#                                             metadata of both headers, e.g.
#                                             keyslots.0.kdf.time
#   luks-patch.py FILE json-set PATH JSON     the same with any JSON value
#   luks-patch.py FILE json-move PATH KEY     rename the last member of PATH
#                                             to KEY (e.g. keyslots.0 32)
#   luks-patch.py FILE luks2-hdr-size N       the hdr_size field of both
#                                             binary headers
#   luks-patch.py FILE luks1-stripes SLOT N   a LUKS1 slot's stripe count
import hashlib
import json
import struct
import sys

path, op = sys.argv[1], sys.argv[2]
f = open(path, "r+b")


def headers():
    """Offsets and sizes of the two LUKS2 headers."""
    f.seek(0)
    b = f.read(4096)
    assert b[:6] == b"LUKS\xba\xbe" and struct.unpack(">H", b[6:8])[0] == 2
    size = struct.unpack(">Q", b[8:16])[0]
    return [(0, size), (size, size)]


def rewrite(off, size, meta):
    f.seek(off)
    hdr = bytearray(f.read(size))
    text = json.dumps(meta, separators=(",", ":")).encode()
    area = size - 4096
    assert len(text) < area
    hdr[4096:] = text + b"\0" * (area - len(text))
    hdr[448:512] = b"\0" * 64
    hdr[448:480] = hashlib.sha256(hdr).digest()
    f.seek(off)
    f.write(hdr)


if op == "luks1-cipher":
    name = sys.argv[3].encode()
    f.seek(8)
    f.write(name + b"\0" * (32 - len(name)))
elif op == "damage":
    which = {"primary": [0], "secondary": [1], "both": [0, 1]}[sys.argv[3]]
    hs = headers()
    for i in which:
        off = hs[i][0] + 4096 + 10
        f.seek(off)
        c = f.read(1)
        f.seek(off)
        f.write(bytes([c[0] ^ 0x55]))
elif op == "json":
    what = sys.argv[3]
    for off, size in headers():
        f.seek(off + 4096)
        meta = json.loads(f.read(size - 4096).rstrip(b"\0"))
        seg = meta["segments"]["0"]
        if what == "integrity":
            seg["integrity"] = {"type": "hmac(sha256)",
                                "journal_encryption": "none",
                                "journal_integrity": "none"}
        elif what == "twofish":
            seg["encryption"] = "twofish-xts-plain64"
        elif what == "requirement":
            meta["config"]["requirements"] = {"mandatory": ["future-feature"]}
        rewrite(off, size, meta)
elif op == "luks1-iter":
    # LUKS1 spec section 2.1: mkDigestIterations at 164, key slots of
    # 48 bytes from 208 with their iterations at +4.
    f.seek(0)
    base = f.read(64 << 20).find(b"LUKS\xba\xbe\x00\x01")
    assert base >= 0, "no LUKS1 header"
    which = sys.argv[3]
    off = base + (164 if which == "mk" else 208 + 48 * int(which) + 4)
    if len(sys.argv) > 4:
        f.seek(off)
        f.write(struct.pack(">I", int(sys.argv[4])))
    else:
        f.seek(off)
        print(struct.unpack(">I", f.read(4))[0])
elif op in ("json-int", "json-set", "json-move"):
    keys = sys.argv[3].split(".")
    for off, size in headers():
        f.seek(off + 4096)
        meta = json.loads(f.read(size - 4096).rstrip(b"\0"))
        obj = meta
        for k in keys[:-1]:
            obj = obj[k]
        assert keys[-1] in obj, sys.argv[3] + " not in the metadata"
        if op == "json-int":
            obj[keys[-1]] = int(sys.argv[4])
        elif op == "json-set":
            obj[keys[-1]] = json.loads(sys.argv[4])
        else:
            obj[sys.argv[4]] = obj.pop(keys[-1])
        rewrite(off, size, meta)
elif op == "luks2-hdr-size":
    for off, size in headers():
        f.seek(off + 8)
        f.write(struct.pack(">Q", int(sys.argv[3])))
elif op == "luks1-stripes":
    f.seek(208 + 48 * int(sys.argv[3]) + 44)
    f.write(struct.pack(">I", int(sys.argv[4])))
else:
    sys.exit("unknown operation " + op)
f.close()
