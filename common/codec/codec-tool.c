/* codec-tool: decompress or compress one cluster from stdin to stdout
 * with the codec library.  Used by test-codec-qemu.sh.
 *
 *   codec-tool d zlib|zstd CLUSTER_SIZE < payload > cluster
 *   codec-tool c zlib|zstd CLUSTER_SIZE [LEVEL] < cluster > payload
 *
 * Exit status 0 on success, 1 if the codec failed (message on stderr),
 * 2 on a usage or I/O error.  A cluster that does not compress into
 * CLUSTER_SIZE - 1 bytes (QEMU's limit) is an empty output.
 */

#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"

#define MAX_INPUT (4 << 20)

static size_t
read_all (unsigned char *buf, size_t cap)
{
  size_t n = 0, r;

  while ((r = fread (buf + n, 1, cap - n, stdin)) > 0)
    n += r;
  if (ferror (stdin)) {
    perror ("codec-tool: stdin");
    exit (2);
  }
  return n;
}

static void
write_all (const void *buf, size_t len)
{
  if (fwrite (buf, 1, len, stdout) != len || fflush (stdout) == EOF) {
    perror ("codec-tool: stdout");
    exit (2);
  }
}

static void
usage (void)
{
  fprintf (stderr, "usage: codec-tool d|c zlib|zstd CLUSTER_SIZE [LEVEL]\n");
  exit (2);
}

int
main (int argc, char *argv[])
{
  enum codec_type type;
  size_t cluster_size, in_len;
  unsigned char *in, *out;
  int level = -1;

  if (argc < 4 || argc > 5)
    usage ();
  if (strcmp (argv[2], "zlib") == 0)
    type = CODEC_ZLIB;
  else if (strcmp (argv[2], "zstd") == 0)
    type = CODEC_ZSTD;
  else
    usage ();
  cluster_size = strtoul (argv[3], NULL, 0);
  if (cluster_size < 512 || cluster_size > (2 << 20))
    usage ();
  if (argc == 5)
    level = atoi (argv[4]);

  in = malloc (MAX_INPUT);
  out = malloc (cluster_size);
  if (in == NULL || out == NULL) {
    perror ("malloc");
    exit (2);
  }
  in_len = read_all (in, MAX_INPUT);

  if (strcmp (argv[1], "d") == 0) {
    if (codec_decompress (type, in, in_len, out, cluster_size) == -1)
      exit (1);
    write_all (out, cluster_size);
  }
  else if (strcmp (argv[1], "c") == 0) {
    ssize_t r;

    if (in_len != cluster_size)
      usage ();
    r = codec_compress (type, level, in, in_len, out, cluster_size - 1);
    if (r == -1)
      exit (1);
    write_all (out, r);
  }
  else
    usage ();

  free (in);
  free (out);
  return 0;
}
