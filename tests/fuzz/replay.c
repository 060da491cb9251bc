/* Replay fuzzing inputs through the same harnesses as the fuzzers
 * (harness.c, luks-harness.c), without libFuzzer: `make check` builds
 * this with the normal compiler (and the sanitizers in that build) and
 * runs it over tests/fuzz/regressions/ (test-fuzz-regressions.bats) and
 * the LUKS targets' regressions and corpora
 * (test-fuzz-luks-regressions.bats).
 *
 *   fuzz-replay [-v|-vv] [-t qcow2|qcow2-luks|luks] FILE|DIR...
 *
 * Every file (directories: every regular file in them, in name order)
 * goes through the target's harness: qcow2 (the default) the read mode,
 * then the write mode, then the tool mode; qcow2-luks the encrypted mode; luks the LUKS
 * harness.  Exit status 0 means nothing crashed; a bug aborts
 * (sanitizer report or harness check).
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

static unsigned nr_files;

enum target { TARGET_QCOW2, TARGET_QCOW2_LUKS, TARGET_LUKS };
static enum target target = TARGET_QCOW2;

static int
replay_input (const unsigned char *data, size_t size)
{
  switch (target) {
  case TARGET_QCOW2:
    return fuzz_qcow2_one (data, size, FUZZ_READ) == -1 ||
      fuzz_qcow2_one (data, size, FUZZ_WRITE) == -1 ||
      fuzz_qcow2_one (data, size, FUZZ_TOOL) == -1 ? -1 : 0;
  case TARGET_QCOW2_LUKS:
    return fuzz_qcow2_one (data, size, FUZZ_ENCRYPTED);
  case TARGET_LUKS:
    return fuzz_luks_one (data, size);
  }
  abort ();
}

static int
replay_file (const char *path)
{
  FILE *fp = fopen (path, "rb");
  unsigned char *data = NULL;
  size_t size = 0, cap = 0, n;

  if (fp == NULL) {
    perror (path);
    return -1;
  }
  do {
    if (size == cap) {
      unsigned char *p;
      cap = cap ? 2 * cap : 65536;
      p = realloc (data, cap);
      if (p == NULL) {
        perror ("realloc");
        free (data);
        fclose (fp);
        return -1;
      }
      data = p;
    }
    n = fread (data + size, 1, cap - size, fp);
    size += n;
  } while (n > 0);
  if (ferror (fp)) {
    perror (path);
    free (data);
    fclose (fp);
    return -1;
  }
  fclose (fp);

  printf ("%s (%zu bytes)\n", path, size);
  fflush (stdout);
  if (replay_input (data, size) == -1) {
    free (data);
    return -1;
  }
  free (data);
  nr_files++;
  return 0;
}

static int
compare_names (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static int
replay_dir (const char *dir)
{
  DIR *d = opendir (dir);
  struct dirent *e;
  char **names = NULL;
  size_t nr = 0;
  int r = 0;

  if (d == NULL) {
    perror (dir);
    return -1;
  }
  while ((e = readdir (d)) != NULL) {
    char **p;
    if (e->d_name[0] == '.')
      continue;
    p = realloc (names, (nr + 1) * sizeof *names);
    if (p == NULL || asprintf (&p[nr], "%s/%s", dir, e->d_name) == -1) {
      perror ("realloc");
      exit (EXIT_FAILURE);
    }
    names = p;
    nr++;
  }
  closedir (d);
  qsort (names, nr, sizeof *names, compare_names);
  for (size_t i = 0; i < nr; i++) {
    struct stat st;
    if (r == 0 && stat (names[i], &st) == 0 && S_ISREG (st.st_mode))
      r = replay_file (names[i]);
    free (names[i]);
  }
  free (names);
  return r;
}

int
main (int argc, char *argv[])
{
  int i = 1;

  fuzz_qcow2_verbose (0);
  if (i < argc && strcmp (argv[i], "-v") == 0) {
    fuzz_qcow2_verbose (1);
    i++;
  }
  else if (i < argc && strcmp (argv[i], "-vv") == 0) {
    fuzz_qcow2_verbose (2);
    i++;
  }
  if (i + 1 < argc && strcmp (argv[i], "-t") == 0) {
    if (strcmp (argv[i + 1], "qcow2") == 0)
      target = TARGET_QCOW2;
    else if (strcmp (argv[i + 1], "qcow2-luks") == 0)
      target = TARGET_QCOW2_LUKS;
    else if (strcmp (argv[i + 1], "luks") == 0)
      target = TARGET_LUKS;
    else
      i = argc;                 /* usage */
    i += 2;
  }
  if (i >= argc) {
    fprintf (stderr, "usage: %s [-v|-vv] [-t qcow2|qcow2-luks|luks] "
             "FILE|DIR...\n", argv[0]);
    exit (EXIT_FAILURE);
  }
  for (; i < argc; i++) {
    struct stat st;
    if (stat (argv[i], &st) == -1) {
      perror (argv[i]);
      exit (EXIT_FAILURE);
    }
    if ((S_ISDIR (st.st_mode) ? replay_dir (argv[i])
         : replay_file (argv[i])) == -1)
      exit (EXIT_FAILURE);
  }
  printf ("%u inputs replayed, no crash\n", nr_files);
  return EXIT_SUCCESS;
}
