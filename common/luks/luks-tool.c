/* luks-tool: drive common/luks from the command line, so the bats tests
 * can check the library against qemu-img and cryptsetup.
 *
 *   luks-tool [-e] [-o HDR_OFFSET] [-l HDR_LENGTH] [-s SLOT] COMMAND ...
 *     info FILE PASS                     print version, payload offset/length
 *     read FILE PASS OFFSET LEN IV       decrypt LEN bytes at OFFSET to stdout
 *     write FILE PASS OFFSET IV          encrypt stdin into FILE at OFFSET
 *     format FILE PASS SIZE [ITER [CIPHER MODE KEYBYTES HASH]]
 *                                        new raw LUKS1 file with SIZE bytes
 *                                        of payload (zero plaintext)
 *     aes-read FILE PASS OFFSET LEN IV   qcow2 legacy AES decrypt
 * -e: the header is embedded (qcow2), -o/-l: where it is.
 * OFFSET is absolute in FILE; IV is the IV sector number of its start.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "luks.h"

static struct luks_open_params params = { .key_slot = -1 };

static uint64_t
num (const char *s)
{
  char *end;
  unsigned long long v;

  errno = 0;
  v = strtoull (s, &end, 0);
  if (errno || *end || end == s) {
    fprintf (stderr, "luks-tool: bad number: %s\n", s);
    exit (2);
  }
  return v;
}

static struct io *
open_io (const char *file, int flags)
{
  struct io *io = io_open_file (file, flags);

  if (io == NULL)
    exit (1);
  return io;
}

static struct luks_volume *
open_volume (struct io *io, const char *pass)
{
  struct luks_volume *v = luks_open (io, &params, pass, strlen (pass));

  if (v == NULL)
    exit (1);
  return v;
}

static uint8_t *
read_all_stdin (size_t *len)
{
  size_t cap = 1 << 20, n = 0;
  uint8_t *buf = malloc (cap);
  ssize_t r;

  while (buf && (r = read (0, buf + n, cap - n)) > 0) {
    n += r;
    if (n == cap)
      buf = realloc (buf, cap *= 2);
  }
  if (buf == NULL) {
    perror ("luks-tool");
    exit (1);
  }
  *len = n;
  return buf;
}

static int
crypt_file (struct io *io, struct luks_cipher *c, bool encrypt,
            uint64_t offset, uint8_t *buf, size_t len, uint64_t iv)
{
  if (encrypt)
    return luks_cipher_encrypt (c, iv, buf, len) == -1 ||
      io_pwrite (io, buf, len, offset) == -1 ? -1 : 0;
  return io_pread (io, buf, len, offset) == -1 ||
    luks_cipher_decrypt (c, iv, buf, len) == -1 ? -1 : 0;
}

static void
write_stdout (const uint8_t *buf, size_t len)
{
  if (fwrite (buf, 1, len, stdout) != len || fflush (stdout) != 0) {
    perror ("luks-tool: stdout");
    exit (1);
  }
}

static int
cmd_info (char **argv)
{
  struct io *io = open_io (argv[0], O_RDONLY);
  struct luks_volume *v = open_volume (io, argv[1]);
  uint64_t off, len;

  if (luks_payload_range (v, io_size (io), &off, &len) == -1)
    return 1;
  printf ("version %d\npayload_offset %" PRIu64 "\npayload_length %" PRIu64
          "\nsector_size %" PRIu32 "\n", luks_version (v), off, len,
          luks_sector_size (v));
  luks_close (v);
  io_close (io);
  return 0;
}

static int
cmd_read_write (char **argv, bool write, bool legacy_aes)
{
  struct io *io = open_io (argv[0], write ? O_RDWR : O_RDONLY);
  struct luks_volume *v = NULL;
  struct luks_cipher *c;
  uint64_t offset = num (argv[2]), iv;
  size_t len;
  uint8_t *buf;
  int r;

  if (legacy_aes)
    c = luks_cipher_new_qcow_aes (argv[1], strlen (argv[1]));
  else {
    v = open_volume (io, argv[1]);
    c = luks_volume_cipher (v);
  }
  if (c == NULL)
    return 1;
  if (write) {
    iv = num (argv[3]);
    buf = read_all_stdin (&len);
  }
  else {
    len = num (argv[3]);
    iv = num (argv[4]);
    buf = malloc (len);
  }
  r = crypt_file (io, c, write, offset, buf, len, iv);
  if (r == 0 && !write)
    write_stdout (buf, len);
  free (buf);
  if (legacy_aes)
    luks_cipher_free (c);
  luks_close (v);
  io_close (io);
  return r == 0 ? 0 : 1;
}

static int
cmd_format (int argc, char **argv)
{
  struct luks_format_params fp = { 0 };
  struct io *io = open_io (argv[0], O_RDWR | O_CREAT);
  struct luks_volume *v;
  uint64_t size = num (argv[2]), off, len, pos;
  static uint8_t buf[1 << 20];

  if (argc >= 4)
    fp.iterations = num (argv[3]);
  if (argc >= 8) {
    fp.cipher = argv[4];
    fp.mode = argv[5];
    fp.key_bytes = num (argv[6]);
    fp.hash = argv[7];
  }
  v = luks_format (io, 0, &fp, argv[1], strlen (argv[1]));
  if (v == NULL)
    return 1;
  if (luks_payload_range (v, UINT64_MAX, &off, &len) == -1 ||
      io_truncate (io, off + size) == -1)
    return 1;
  /* Encrypted zeroes, so the volume reads as zeroes. */
  for (pos = 0; pos < size; pos += sizeof buf) {
    size_t n = size - pos < sizeof buf ? size - pos : sizeof buf;

    memset (buf, 0, n);
    if (luks_encrypt_payload (v, pos, buf, n) == -1 ||
        io_pwrite (io, buf, n, off + pos) == -1)
      return 1;
  }
  luks_close (v);
  if (io_flush (io) == -1)
    return 1;
  io_close (io);
  return 0;
}

static void
usage (void)
{
  fprintf (stderr, "usage: luks-tool [-e] [-o HDR_OFFSET] [-l HDR_LENGTH] "
           "[-s SLOT] info|read|write|format|aes-read FILE PASS ...\n");
  exit (2);
}

int
main (int argc, char **argv)
{
  int opt;
  const char *cmd;

  while ((opt = getopt (argc, argv, "eo:l:s:")) != -1) {
    switch (opt) {
    case 'e': params.embedded = true; break;
    case 'o': params.header_offset = num (optarg); break;
    case 'l': params.length = num (optarg); break;
    case 's': params.key_slot = num (optarg); break;
    default: usage ();
    }
  }
  argc -= optind;
  argv += optind;
  if (argc < 3)
    usage ();
  cmd = argv[0];
  argc--;
  argv++;
  if (strcmp (cmd, "info") == 0)
    return cmd_info (argv);
  if (strcmp (cmd, "read") == 0 && argc == 5)
    return cmd_read_write (argv, false, false);
  if (strcmp (cmd, "write") == 0 && argc == 4)
    return cmd_read_write (argv, true, false);
  if (strcmp (cmd, "aes-read") == 0 && argc == 5)
    return cmd_read_write (argv, false, true);
  if (strcmp (cmd, "format") == 0 && argc >= 3)
    return cmd_format (argc, argv);
  usage ();
}
