/* What a file that is not a qcow2 image is, when another format's
 * magic says so: the refusal names it and the module or tool that
 * reads it.  The magic numbers are those of each format's
 * specification (LUKS1/LUKS2 on-disk format, VMDK, VDI, VHDX, VHD).
 */
#include <config.h>

#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "io.h"

#define PROBE_BYTES 512

struct magic {
  uint64_t offset;              /* from the start of the file */
  const char *bytes;
  size_t len;
  const char *what;
};

static const struct magic magics[] = {
  { 0, "LUKS\xba\xbe", 6, "this is a LUKS volume: use the luks filter" },
  { 0, "KDMV", 4, "this is a VMDK image (qemu-nbd -f vmdk serves it)" },
  { 0, "# Disk DescriptorFile", 21,
    "this is a VMDK descriptor (qemu-nbd -f vmdk serves it)" },
  { 0, "vhdxfile", 8, "this is a VHDX image (qemu-nbd -f vhdx serves it)" },
  { 0, "conectix", 8,
    "this is a dynamic VHD image (qemu-nbd -f vpc serves it)" },
  /* VDI: the signature 0xbeda107f, little-endian, at byte 64. */
  { 64, "\x7f\x10\xda\xbe", 4,
    "this is a VDI image (qemu-nbd -f vdi serves it)" },
};

/* A fixed-size VHD has its footer only, in the last 512 bytes. */
static bool
is_fixed_vhd (struct io *file, uint64_t file_size)
{
  char footer[8];

  if (file_size < PROBE_BYTES ||
      io_pread (file, footer, sizeof footer, file_size - PROBE_BYTES) == -1)
    return false;
  return memcmp (footer, "conectix", sizeof footer) == 0;
}

const char *
foreign_format (struct io *file, uint64_t file_size)
{
  unsigned char head[PROBE_BYTES] = { 0 };

  if (io_pread (file, head, file_size < sizeof head ? file_size : sizeof head,
                0) == -1)
    return NULL;
  for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++) {
    const struct magic *m = &magics[i];
    if (m->offset + m->len <= file_size &&
        memcmp (head + m->offset, m->bytes, m->len) == 0)
      return m->what;
  }
  if (is_fixed_vhd (file, file_size))
    return "this is a fixed-size VHD image (qemu-nbd -f vpc serves it)";
  return "no image format known here: if it is a raw disk, nbdkit's file "
    "plugin serves it";
}
