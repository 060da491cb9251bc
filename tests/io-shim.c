/* An LD_PRELOAD shim for the tests: it records, or makes fail, the
 * system calls a server makes on chosen files.  Not instrumented
 * itself; in the sanitizer build it comes after the ASan runtime in
 * LD_PRELOAD (ASan insists on being first), and ASan's interceptors
 * then reach this shim's functions as "the next" pwrite etc.
 *
 * Which files: IO_SHIM_FILES=PATH[:PATH...].  A file opened under any
 * name that resolves (realpath) to one of them is tracked, by file
 * descriptor, through open/openat/creat/dup/dup2/dup3/fcntl(F_DUPFD)
 * and close.  File number i is the i-th PATH (from 0).  Nothing else
 * is touched.
 *
 * Record mode: IO_SHIM_JOURNAL=FILE appends one record per call that
 * changes or syncs a tracked file, after the call succeeded (a sync:
 * one record before the call, one after it succeeded).  A record is a
 * 32-byte header, little endian:
 *     u32 magic "PCJ1"  u32 type  u32 file  u32 0
 *     u64 offset  u64 length
 * followed, for type WRITE only, by `length` bytes of data.  Types:
 *     1 WRITE     bytes written at offset (pwrite, pwritev, write, writev)
 *     2 ZERO      the range reads as zeroes (fallocate PUNCH_HOLE or
 *                 ZERO_RANGE); the size only grows without KEEP_SIZE
 *     3 TRUNCATE  the file is `offset` bytes long (ftruncate)
 *     4 SYNC      fdatasync/fsync called (offset 1 = fsync; length: a
 *                 number naming this call, unique in the process)
 *     5 SYNCED    ... and returned success (the same offset and number)
 *     6 MARK      written by the client, not by the shim (power-cut.py)
 *     7 ALLOC     fallocate mode 0 / posix_fallocate: the size grows to
 *                 at least offset + length, the bytes stay
 *     8 RANGE     sync_file_range (no durability: the disk cache stays)
 * Each record is one write(2) to a file opened O_APPEND, so records of
 * concurrent threads (and of a client appending its own marks) never
 * interleave, and a record's place in the file is after the call it
 * records took effect.
 *
 * Fault mode: IO_SHIM_FAULTS=RULE[,RULE...], each rule
 *     CLASS=WHEN[:ERRNO]
 * CLASS   read (pread, preadv, read, readv), write (pwrite, pwritev,
 *         write, writev, fallocate mode 0, posix_fallocate), flush
 *         (fdatasync, fsync, sync_file_range), punch (fallocate
 *         PUNCH_HOLE / ZERO_RANGE), truncate (ftruncate), or any.
 * WHEN    N     the Nth call of that class on tracked files (from 1)
 *         N+    the Nth and every later one
 *         N-M   the Nth to the Mth
 *         pP    each call with probability P (0..1), from the seed
 *               IO_SHIM_SEED (default 1): the same seed and sequence of
 *               calls fail the same calls
 * ERRNO   EIO (default), ENOSPC, EDQUOT or EROFS.
 * A failed call does nothing and returns -1 with that errno.  Calls are
 * counted per class (a call counts for its class and for "any").  With
 * IO_SHIM_ARM=FILE calls are counted (and fail) only once FILE exists,
 * so a client can start the count after the server's start-up.  Every
 * injected fault is reported on stderr as one line starting "io-shim:
 * fault", which the tests count.
 */
#include <config.h>

/* This file defines the libc entry points themselves. */
#undef _FORTIFY_SOURCE
#undef _FILE_OFFSET_BITS

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/uio.h>

#define MAX_FILES 8
#define MAX_FDS 65536
#define MAX_RULES 16

enum rec_type {
  REC_WRITE = 1, REC_ZERO, REC_TRUNCATE, REC_SYNC, REC_SYNCED, REC_MARK,
  REC_ALLOC, REC_RANGE,
};

enum op_class { C_READ, C_WRITE, C_FLUSH, C_PUNCH, C_TRUNCATE, C_ANY,
                NR_CLASSES };
static const char *const class_names[NR_CLASSES] = {
  "read", "write", "flush", "punch", "truncate", "any",
};

struct rule {
  enum op_class class;
  uint64_t first, last;         /* 1-based, inclusive */
  double probability;           /* < 0: use first..last */
  int error;
};

static char *files[MAX_FILES];
static unsigned nr_files;
/* fd -> tracked file number + 1 (0: not tracked). */
static unsigned char fd_file[MAX_FDS];
static int journal_fd = -1;
static struct rule rules[MAX_RULES];
static unsigned nr_rules;
static uint64_t counts[NR_CLASSES];
static uint64_t rng_state = 1;
static char *arm_file;
static bool armed = true;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool initialized;

/* The real functions. */
#define REAL(name) \
  static __typeof__ (name) *real_##name; \
  if (real_##name == NULL) \
    real_##name = (__typeof__ (name) *) dlsym (RTLD_NEXT, #name)

/* Bad settings: say so and exit.  Writes with the real write(2): the
 * lock may be held.
 */
static void __attribute__ ((noreturn, format (printf, 1, 2)))
die (const char *fs, ...)
{
  char msg[512];
  va_list args;
  int n;

  n = snprintf (msg, sizeof msg, "io-shim: ");
  va_start (args, fs);
  n += vsnprintf (msg + n, sizeof msg - n - 1, fs, args);
  va_end (args);
  if (n > (int) sizeof msg - 2)
    n = sizeof msg - 2;
  msg[n++] = '\n';
  REAL (write);
  real_write (2, msg, n);
  _exit (2);
}

static int
parse_errno (const char *s)
{
  static const struct { const char *name; int value; } names[] = {
    { "EIO", EIO }, { "ENOSPC", ENOSPC }, { "EDQUOT", EDQUOT },
    { "EROFS", EROFS },
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp (s, names[i].name) == 0)
      return names[i].value;
  die ("unknown errno '%s' in IO_SHIM_FAULTS", s);
}

static void
parse_rule (char *s)
{
  struct rule *r = &rules[nr_rules];
  char *when = strchr (s, '='), *err, *end;
  unsigned c;

  if (nr_rules == MAX_RULES)
    die ("more than %d rules in IO_SHIM_FAULTS", MAX_RULES);
  if (when == NULL)
    die ("rule '%s' in IO_SHIM_FAULTS is not CLASS=WHEN[:ERRNO]", s);
  *when++ = '\0';
  for (c = 0; c < NR_CLASSES && strcmp (s, class_names[c]) != 0; c++)
    ;
  if (c == NR_CLASSES)
    die ("unknown class '%s' in IO_SHIM_FAULTS", s);
  r->class = c;
  r->error = EIO;
  err = strchr (when, ':');
  if (err) {
    *err++ = '\0';
    r->error = parse_errno (err);
  }
  r->probability = -1;
  if (when[0] == 'p') {
    r->probability = strtod (when + 1, &end);
    if (*end || r->probability < 0 || r->probability > 1)
      die ("bad probability '%s' in IO_SHIM_FAULTS", when);
  }
  else {
    r->first = r->last = strtoull (when, &end, 10);
    if (end == when || r->first == 0)
      die ("bad count '%s' in IO_SHIM_FAULTS", when);
    if (*end == '+' && end[1] == '\0')
      r->last = UINT64_MAX;
    else if (*end == '-') {
      r->last = strtoull (end + 1, &end, 10);
      if (*end || r->last < r->first)
        die ("bad range '%s' in IO_SHIM_FAULTS", when);
    }
    else if (*end)
      die ("bad count '%s' in IO_SHIM_FAULTS", when);
  }
  nr_rules++;
}

static void
init (void)
{
  const char *s;
  char *copy, *p, *save;

  if (initialized)
    return;
  pthread_mutex_lock (&lock);
  if (initialized)
    goto out;
  if ((s = getenv ("IO_SHIM_FILES")) != NULL && *s) {
    copy = strdup (s);
    for (p = strtok_r (copy, ":", &save); p; p = strtok_r (NULL, ":", &save)) {
      if (nr_files == MAX_FILES)
        die ("more than %d files in IO_SHIM_FILES", MAX_FILES);
      files[nr_files++] = strdup (p);
    }
    free (copy);
  }
  if ((s = getenv ("IO_SHIM_JOURNAL")) != NULL && *s) {
    REAL (open);
    journal_fd = real_open (s, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                            0644);
    if (journal_fd == -1)
      die ("cannot open the journal %s: %m", s);
  }
  if ((s = getenv ("IO_SHIM_ARM")) != NULL && *s) {
    arm_file = strdup (s);
    armed = false;
  }
  if ((s = getenv ("IO_SHIM_SEED")) != NULL && *s)
    rng_state = strtoull (s, NULL, 0) | 1;
  if ((s = getenv ("IO_SHIM_FAULTS")) != NULL && *s) {
    copy = strdup (s);
    for (p = strtok_r (copy, ",", &save); p; p = strtok_r (NULL, ",", &save))
      parse_rule (p);
    free (copy);
  }
  __atomic_store_n (&initialized, true, __ATOMIC_RELEASE);
 out:
  pthread_mutex_unlock (&lock);
}

/* The tracked file number of fd, or -1. */
static int
tracked (int fd)
{
  init ();
  if (fd < 0 || fd >= MAX_FDS)
    return -1;
  return (int) __atomic_load_n (&fd_file[fd], __ATOMIC_ACQUIRE) - 1;
}

static void
set_tracked (int fd, int file)
{
  if (fd >= 0 && fd < MAX_FDS)
    __atomic_store_n (&fd_file[fd], (unsigned char) (file + 1),
                      __ATOMIC_RELEASE);
}

/* Which tracked file path names, if any. */
static int
file_of_path (int dirfd, const char *path)
{
  char want[PATH_MAX], got[PATH_MAX], joined[PATH_MAX];

  init ();
  if (nr_files == 0 || path == NULL)
    return -1;
  if (path[0] != '/' && dirfd != AT_FDCWD) {
    char link[64];
    ssize_t n;
    snprintf (link, sizeof link, "/proc/self/fd/%d", dirfd);
    n = readlink (link, joined, sizeof joined - 1);
    if (n == -1)
      return -1;
    snprintf (joined + n, sizeof joined - n, "/%s", path);
    path = joined;
  }
  if (realpath (path, got) == NULL)
    return -1;
  for (unsigned i = 0; i < nr_files; i++)
    if (realpath (files[i], want) && strcmp (want, got) == 0)
      return i;
  return -1;
}

static void
journal (enum rec_type type, int file, uint64_t offset, uint64_t length,
         const struct iovec *data, int nr_data)
{
  struct iovec iov[1 + IOV_MAX];
  unsigned char hdr[32];
  uint32_t h32[4] = { 0x314a4350, type, (uint32_t) file, 0 };
  uint64_t h64[2] = { offset, length };
  int n = 0;

  if (journal_fd == -1)
    return;
  memcpy (hdr, h32, sizeof h32);        /* x86 and arm64: little endian */
  memcpy (hdr + 16, h64, sizeof h64);
  iov[n++] = (struct iovec) { hdr, sizeof hdr };
  for (int i = 0; i < nr_data && n < (int) (sizeof iov / sizeof iov[0]); i++)
    iov[n++] = data[i];
  /* One writev to an O_APPEND file is one atomic append.  Records of
   * more than 2 GiB do not occur in the tests.
   */
  REAL (writev);
  if (real_writev (journal_fd, iov, n) == -1)
    die ("journal write: %m");
}

static uint64_t
next_random (void)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Count a call of class c on tracked file `file`; 0 to let it happen,
 * or the errno to fail it with.
 */
static int
fault (enum op_class c, int file, const char *call, int fd)
{
  uint64_t n, nany;
  int error = 0;

  if (nr_rules == 0)
    return 0;
  if (!__atomic_load_n (&armed, __ATOMIC_ACQUIRE)) {
    if (access (arm_file, F_OK) == -1)
      return 0;
    __atomic_store_n (&armed, true, __ATOMIC_RELEASE);
  }
  pthread_mutex_lock (&lock);
  n = ++counts[c];
  nany = ++counts[C_ANY];
  for (unsigned i = 0; i < nr_rules && error == 0; i++) {
    const struct rule *r = &rules[i];
    uint64_t k = r->class == C_ANY ? nany : n;
    if (r->class != c && r->class != C_ANY)
      continue;
    if (r->probability >= 0) {
      if ((double) (next_random () >> 11) / (double) (1ULL << 53) <
          r->probability)
        error = r->error;
    }
    else if (k >= r->first && k <= r->last)
      error = r->error;
  }
  pthread_mutex_unlock (&lock);
  if (error)
    fprintf (stderr, "io-shim: fault %s #%" PRIu64 " (%s on file %d, fd %d): "
             "%s\n", class_names[c], n, call, file, fd, strerror (error));
  return error;
}

#define FAULT(class, call) \
  do { \
    int e_ = fault ((class), file, (call), fd); \
    if (e_) { errno = e_; return -1; } \
  } while (0)

/* ---------------------------------------------------------------- */
/* Opening and closing. */

static int
opened (int fd, int dirfd, const char *path)
{
  if (fd >= 0) {
    int e = errno;
    set_tracked (fd, file_of_path (dirfd, path));
    errno = e;
  }
  return fd;
}

#define MODE_ARG(flags, mode) \
  mode_t mode = 0; \
  if ((flags) & (O_CREAT | O_TMPFILE)) { \
    va_list ap; va_start (ap, flags); mode = va_arg (ap, mode_t); va_end (ap); \
  }

int
open (const char *path, int flags, ...)
{
  MODE_ARG (flags, mode);
  REAL (open);
  return opened (real_open (path, flags, mode), AT_FDCWD, path);
}

int
open64 (const char *path, int flags, ...)
{
  MODE_ARG (flags, mode);
  REAL (open64);
  return opened (real_open64 (path, flags, mode), AT_FDCWD, path);
}

int
openat (int dirfd, const char *path, int flags, ...)
{
  MODE_ARG (flags, mode);
  REAL (openat);
  return opened (real_openat (dirfd, path, flags, mode), dirfd, path);
}

int
openat64 (int dirfd, const char *path, int flags, ...)
{
  MODE_ARG (flags, mode);
  REAL (openat64);
  return opened (real_openat64 (dirfd, path, flags, mode), dirfd, path);
}

/* What _FORTIFY_SOURCE builds call (nbdkit's file plugin: __openat_2). */
int __open_2 (const char *path, int flags);
int __open64_2 (const char *path, int flags);
int __openat_2 (int dirfd, const char *path, int flags);
int __openat64_2 (int dirfd, const char *path, int flags);

int
__openat_2 (int dirfd, const char *path, int flags)
{
  return openat (dirfd, path, flags);
}

int
__openat64_2 (int dirfd, const char *path, int flags)
{
  return openat64 (dirfd, path, flags);
}

int
__open_2 (const char *path, int flags)
{
  return open (path, flags);
}

int
__open64_2 (const char *path, int flags)
{
  return open64 (path, flags);
}

int
creat (const char *path, mode_t mode)
{
  return open (path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

int
close (int fd)
{
  REAL (close);
  if (fd >= 0 && fd < MAX_FDS)
    set_tracked (fd, -1);
  return real_close (fd);
}

static int
duplicated (int old, int fd)
{
  if (fd >= 0 && fd != old)
    set_tracked (fd, tracked (old));
  return fd;
}

int
dup (int old)
{
  REAL (dup);
  return duplicated (old, real_dup (old));
}

int
dup2 (int old, int new)
{
  REAL (dup2);
  return duplicated (old, real_dup2 (old, new));
}

int
dup3 (int old, int new, int flags)
{
  REAL (dup3);
  return duplicated (old, real_dup3 (old, new, flags));
}

int
fcntl (int fd, int cmd, ...)
{
  va_list ap;
  long arg;
  int r;

  REAL (fcntl);
  va_start (ap, cmd);
  arg = va_arg (ap, long);      /* every command we pass on takes at most one */
  va_end (ap);
  r = real_fcntl (fd, cmd, arg);
  if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
    duplicated (fd, r);
  return r;
}

int fcntl64 (int fd, int cmd, ...);

int
fcntl64 (int fd, int cmd, ...)
{
  va_list ap;
  long arg;

  va_start (ap, cmd);
  arg = va_arg (ap, long);
  va_end (ap);
  return fcntl (fd, cmd, arg);
}

/* ---------------------------------------------------------------- */
/* Reads: only faults. */

ssize_t
pread (int fd, void *buf, size_t count, off_t offset)
{
  int file = tracked (fd);
  REAL (pread);
  if (file >= 0)
    FAULT (C_READ, "pread");
  return real_pread (fd, buf, count, offset);
}

ssize_t
pread64 (int fd, void *buf, size_t count, off64_t offset)
{
  int file = tracked (fd);
  REAL (pread64);
  if (file >= 0)
    FAULT (C_READ, "pread");
  return real_pread64 (fd, buf, count, offset);
}

ssize_t
preadv (int fd, const struct iovec *iov, int n, off_t offset)
{
  int file = tracked (fd);
  REAL (preadv);
  if (file >= 0)
    FAULT (C_READ, "preadv");
  return real_preadv (fd, iov, n, offset);
}

ssize_t
preadv64 (int fd, const struct iovec *iov, int n, off64_t offset)
{
  int file = tracked (fd);
  REAL (preadv64);
  if (file >= 0)
    FAULT (C_READ, "preadv");
  return real_preadv64 (fd, iov, n, offset);
}

ssize_t
read (int fd, void *buf, size_t count)
{
  int file = tracked (fd);
  REAL (read);
  if (file >= 0)
    FAULT (C_READ, "read");
  return real_read (fd, buf, count);
}

ssize_t
readv (int fd, const struct iovec *iov, int n)
{
  int file = tracked (fd);
  REAL (readv);
  if (file >= 0)
    FAULT (C_READ, "readv");
  return real_readv (fd, iov, n);
}

/* ---------------------------------------------------------------- */
/* Writes. */

/* Record r bytes of iov (a successful write of r bytes at offset). */
static ssize_t
written (int file, ssize_t r, const struct iovec *iov, int n, uint64_t offset)
{
  struct iovec part[IOV_MAX];
  size_t left;
  int k = 0;

  if (r <= 0 || journal_fd == -1)
    return r;
  left = r;
  for (int i = 0; i < n && left > 0 && k < IOV_MAX; i++) {
    size_t len = iov[i].iov_len < left ? iov[i].iov_len : left;
    part[k++] = (struct iovec) { iov[i].iov_base, len };
    left -= len;
  }
  journal (REC_WRITE, file, offset, r, part, k);
  return r;
}

ssize_t
pwrite (int fd, const void *buf, size_t count, off_t offset)
{
  int file = tracked (fd);
  struct iovec iov = { (void *) buf, count };
  REAL (pwrite);
  if (file < 0)
    return real_pwrite (fd, buf, count, offset);
  FAULT (C_WRITE, "pwrite");
  return written (file, real_pwrite (fd, buf, count, offset), &iov, 1, offset);
}

ssize_t
pwrite64 (int fd, const void *buf, size_t count, off64_t offset)
{
  return pwrite (fd, buf, count, offset);
}

ssize_t
pwritev (int fd, const struct iovec *iov, int n, off_t offset)
{
  int file = tracked (fd);
  REAL (pwritev);
  if (file < 0)
    return real_pwritev (fd, iov, n, offset);
  FAULT (C_WRITE, "pwritev");
  return written (file, real_pwritev (fd, iov, n, offset), iov, n, offset);
}

ssize_t
pwritev64 (int fd, const struct iovec *iov, int n, off64_t offset)
{
  return pwritev (fd, iov, n, offset);
}

/* write and writev: the offset is the file position before the call
 * (O_APPEND is not used on the files the tests track).
 */
ssize_t
writev (int fd, const struct iovec *iov, int n)
{
  int file = tracked (fd);
  off_t pos;
  REAL (writev);
  if (file < 0)
    return real_writev (fd, iov, n);
  FAULT (C_WRITE, "writev");
  pos = lseek (fd, 0, SEEK_CUR);
  return written (file, real_writev (fd, iov, n), iov, n, pos);
}

ssize_t
write (int fd, const void *buf, size_t count)
{
  int file = tracked (fd);
  struct iovec iov = { (void *) buf, count };
  off_t pos;
  REAL (write);
  if (file < 0)
    return real_write (fd, buf, count);
  FAULT (C_WRITE, "write");
  pos = lseek (fd, 0, SEEK_CUR);
  return written (file, real_write (fd, buf, count), &iov, 1, pos);
}

int
fallocate (int fd, int mode, off_t offset, off_t len)
{
  int file = tracked (fd);
  bool zeroes = mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE);
  int r;
  REAL (fallocate);
  if (file < 0)
    return real_fallocate (fd, mode, offset, len);
  FAULT (zeroes ? C_PUNCH : C_WRITE, "fallocate");
  r = real_fallocate (fd, mode, offset, len);
  if (r == 0 && !(mode & FALLOC_FL_KEEP_SIZE))
    journal (REC_ALLOC, file, offset, len, NULL, 0);
  if (r == 0 && zeroes)
    journal (REC_ZERO, file, offset, len, NULL, 0);
  return r;
}

int
fallocate64 (int fd, int mode, off64_t offset, off64_t len)
{
  return fallocate (fd, mode, offset, len);
}

int
posix_fallocate (int fd, off_t offset, off_t len)
{
  int file = tracked (fd), r, e;
  REAL (posix_fallocate);
  if (file < 0)
    return real_posix_fallocate (fd, offset, len);
  /* posix_fallocate returns the error instead of setting errno. */
  if ((e = fault (C_WRITE, file, "posix_fallocate", fd)) != 0)
    return e;
  r = real_posix_fallocate (fd, offset, len);
  if (r == 0)
    journal (REC_ALLOC, file, offset, len, NULL, 0);
  return r;
}

int
posix_fallocate64 (int fd, off64_t offset, off64_t len)
{
  return posix_fallocate (fd, offset, len);
}

int
ftruncate (int fd, off_t length)
{
  int file = tracked (fd), r;
  REAL (ftruncate);
  if (file < 0)
    return real_ftruncate (fd, length);
  FAULT (C_TRUNCATE, "ftruncate");
  r = real_ftruncate (fd, length);
  if (r == 0)
    journal (REC_TRUNCATE, file, length, 0, NULL, 0);
  return r;
}

int
ftruncate64 (int fd, off64_t length)
{
  return ftruncate (fd, length);
}

/* ---------------------------------------------------------------- */
/* Syncs. */

static uint64_t sync_calls;

/* Journal a sync call before it happens; its number. */
static uint64_t
syncing (int file, int full)
{
  uint64_t id = __atomic_add_fetch (&sync_calls, 1, __ATOMIC_RELAXED);

  journal (REC_SYNC, file, full, id, NULL, 0);
  return id;
}

static int
synced (int file, int r, int full, uint64_t id)
{
  if (r == 0)
    journal (REC_SYNCED, file, full, id, NULL, 0);
  return r;
}

int
fdatasync (int fd)
{
  int file = tracked (fd);
  uint64_t id;
  REAL (fdatasync);
  if (file < 0)
    return real_fdatasync (fd);
  FAULT (C_FLUSH, "fdatasync");
  id = syncing (file, 0);
  return synced (file, real_fdatasync (fd), 0, id);
}

int
fsync (int fd)
{
  int file = tracked (fd);
  uint64_t id;
  REAL (fsync);
  if (file < 0)
    return real_fsync (fd);
  FAULT (C_FLUSH, "fsync");
  id = syncing (file, 1);
  return synced (file, real_fsync (fd), 1, id);
}

int
sync_file_range (int fd, off64_t offset, off64_t nbytes, unsigned int flags)
{
  int file = tracked (fd), r;
  REAL (sync_file_range);
  if (file < 0)
    return real_sync_file_range (fd, offset, nbytes, flags);
  FAULT (C_FLUSH, "sync_file_range");
  r = real_sync_file_range (fd, offset, nbytes, flags);
  if (r == 0)
    journal (REC_RANGE, file, offset, nbytes, NULL, 0);
  return r;
}
