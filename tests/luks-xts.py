#!/usr/bin/python3
# An independent AES-XTS-plain64 sector cipher (python3-cryptography, i.e.
# OpenSSL), the oracle for data written through the luks filter to LUKS2.
#
#   luks-xts.py encrypt|decrypt KEYFILE SECTOR_SIZE IV_TWEAK IN OUT
#
# IN/OUT hold payload bytes; sector i of them uses the tweak
# IV_TWEAK + i * SECTOR_SIZE / 512 (dm-crypt counts 512-byte units).
import sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

op, keyfile, sector_size, iv_tweak, src, dst = sys.argv[1:7]
sector_size = int(sector_size)
iv_tweak = int(iv_tweak)
key = open(keyfile, "rb").read()
data = open(src, "rb").read()
assert len(data) % sector_size == 0, "not whole sectors"

out = bytearray()
for i in range(len(data) // sector_size):
    tweak = (iv_tweak + i * (sector_size // 512)).to_bytes(16, "little")
    c = Cipher(algorithms.AES(key), modes.XTS(tweak))
    ctx = c.encryptor() if op == "encrypt" else c.decryptor()
    out += ctx.update(data[i * sector_size:(i + 1) * sector_size])
    out += ctx.finalize()
open(dst, "wb").write(out)
