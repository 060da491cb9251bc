/* Replay fuzzing inputs through the same harness as the fuzzers
 * (harness.c), without libFuzzer: `make check` builds this with the
 * normal compiler (and the sanitizers in that build) and runs it over
 * tests/fuzz/regressions/ (test-fuzz-regressions.bats).
 *
 *   fuzz-replay [-v|-vv] FILE|DIR...
 *
 * Every file (directories: every regular file in them, in name order)
 * goes through the read mode, then the write mode.  Exit status 0 means
 * nothing crashed; a bug aborts (sanitizer report or harness check).
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
  if (fuzz_qcow2_one (data, size, FUZZ_READ) == -1 ||
      fuzz_qcow2_one (data, size, FUZZ_WRITE) == -1) {
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

  if (argc > 1 && strcmp (argv[1], "-v") == 0) {
    fuzz_qcow2_verbose (1);
    i++;
  }
  else if (argc > 1 && strcmp (argv[1], "-vv") == 0) {
    fuzz_qcow2_verbose (2);
    i++;
  }
  if (i >= argc) {
    fprintf (stderr, "usage: %s [-v|-vv] FILE|DIR...\n", argv[0]);
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
