/* struct io over a file descriptor. */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "diag.h"
#include "io.h"
#include "minmax.h"

struct io_fd {
  struct io io;
  int fd;
  char *name;
  char *path;                   /* for fd_make_writable; may be NULL */
  bool no_zero_range;           /* FALLOC_FL_ZERO_RANGE refused once */
};

/* Report a failed system call on f (what it was doing, then %m) and
 * fail with its errno, which reporting must not clobber.
 */
static int __attribute__ ((format (printf, 2, 3)))
fd_fail (const struct io_fd *f, const char *fs, ...)
{
  int e = errno;
  char what[128];
  va_list args;

  va_start (args, fs);
  vsnprintf (what, sizeof what, fs, args);
  va_end (args);
  errno = e;
  diag_error ("%s: %s: %m", f->name, what);
  errno = e;
  return -1;
}

/* Move exactly count bytes, resuming after short transfers. */
static int
fd_transfer (struct io_fd *f, char *p, size_t count, uint64_t offset,
             bool write)
{
  while (count > 0) {
    ssize_t r = write ? pwrite (f->fd, p, count, offset)
      : pread (f->fd, p, count, offset);

    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return fd_fail (f, "%s at offset %" PRIu64, write ? "write" : "read",
                      offset);
    if (r == 0) {
      diag_error ("%s: read at offset %" PRIu64 " is beyond the end of the file",
                  f->name, offset);
      errno = EIO;
      return -1;
    }
    p += r;
    count -= r;
    offset += r;
  }
  return 0;
}

static int
fd_pread (struct io *io, void *buf, size_t count, uint64_t offset)
{
  return fd_transfer ((struct io_fd *) io, buf, count, offset, false);
}

static int
fd_pwrite (struct io *io, const void *buf, size_t count, uint64_t offset)
{
  return fd_transfer ((struct io_fd *) io, (char *) buf, count, offset, true);
}

static int
fd_flush (struct io *io)
{
  struct io_fd *f = (struct io_fd *) io;

  if (fdatasync (f->fd) == -1)
    return fd_fail (f, "fdatasync");
  return 0;
}

static int64_t
fd_size (struct io *io)
{
  struct io_fd *f = (struct io_fd *) io;
  struct stat st;

  if (fstat (f->fd, &st) == -1)
    return fd_fail (f, "fstat");
  if (S_ISBLK (st.st_mode)) {
    off_t end = lseek (f->fd, 0, SEEK_END);
    if (end == -1)
      return fd_fail (f, "lseek");
    return end;
  }
  return st.st_size;
}

static int
fd_truncate (struct io *io, uint64_t size)
{
  struct io_fd *f = (struct io_fd *) io;

  if (ftruncate (f->fd, size) == -1)
    return fd_fail (f, "ftruncate");
  return 0;
}

static int
fd_punch (struct io *io, uint64_t offset, uint64_t count)
{
  struct io_fd *f = (struct io_fd *) io;

  if (fallocate (f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                 offset, count) == -1) {
    /* Not every file system can punch: the caller's data is already
     * unreferenced, so this is only lost space.
     */
    if (errno == EOPNOTSUPP || errno == ENOSYS)
      return 0;
    return fd_fail (f, "punch hole");
  }
  return 0;
}

static bool
unsupported (int e)
{
  return e == EOPNOTSUPP || e == ENOSYS || e == EINVAL;
}

/* ZERO_RANGE, or where the file system lacks it (tmpfs) a punched hole
 * allocated again; neither moves the zeroes through the page cache.
 */
static int
fd_zero (struct io *io, uint64_t offset, uint64_t count)
{
  struct io_fd *f = (struct io_fd *) io;

  if (!f->no_zero_range) {
    if (fallocate (f->fd, FALLOC_FL_ZERO_RANGE, offset, count) == 0)
      return 0;
    if (!unsupported (errno))
      return fd_fail (f, "zero range at offset %" PRIu64, offset);
    f->no_zero_range = true;
  }
  if (fallocate (f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                 offset, count) == -1 ||
      fallocate (f->fd, 0, offset, count) == -1) {
    if (!unsupported (errno))
      return fd_fail (f, "zeroing at offset %" PRIu64, offset);
    errno = ENOTSUP;
    return -1;
  }
  return 0;
}

static int64_t
fd_allocated (struct io *io)
{
  struct io_fd *f = (struct io_fd *) io;
  struct stat st;

  if (fstat (f->fd, &st) == -1)
    return fd_fail (f, "fstat");
  return (int64_t) st.st_blocks * 512;
}

static int
fd_extent (struct io *io, uint64_t offset, uint64_t count, bool *hole,
           uint64_t *length)
{
  struct io_fd *f = (struct io_fd *) io;
  off_t data = lseek (f->fd, offset, SEEK_DATA), end;

  if (data == -1 && errno == ENXIO) {   /* a hole up to the end of file */
    *hole = true;
    *length = count;
    return 0;
  }
  if (data == -1) {                     /* no SEEK_DATA here: say data */
    *hole = false;
    *length = count;
    return 0;
  }
  if ((uint64_t) data > offset) {
    *hole = true;
    *length = MIN ((uint64_t) data - offset, count);
    return 0;
  }
  end = lseek (f->fd, offset, SEEK_HOLE);
  *hole = false;
  *length = end == -1 ? count : MIN ((uint64_t) end - offset, count);
  return 0;
}

static void
fd_close (struct io *io)
{
  struct io_fd *f = (struct io_fd *) io;

  close (f->fd);
  free (f->name);
  free (f->path);
  free (f);
}

static int
fd_identify (struct io *io, uint64_t *dev, uint64_t *ino)
{
  struct io_fd *f = (struct io_fd *) io;
  struct stat st;

  if (fstat (f->fd, &st) == -1)
    return fd_fail (f, "fstat");
  *dev = st.st_dev;
  *ino = st.st_ino;
  return 0;
}

/* Is st the file f has open? */
static int
same_file (struct io_fd *f, const struct stat *st)
{
  uint64_t dev, ino;

  if (fd_identify (&f->io, &dev, &ino) == -1)
    return -1;
  if (dev == (uint64_t) st->st_dev && ino == (uint64_t) st->st_ino)
    return 0;
  diag_error ("%s: the file was replaced by another since it was opened",
              f->name);
  errno = ESTALE;
  return -1;
}

static bool
refuses_writing (int e)
{
  return e == EACCES || e == EROFS || e == EPERM;
}

/* Open f->path again for writing: the same file (checked before the
 * open, so nothing else is ever opened, and after it, against a swap
 * in between), without blocking or taking a terminal.  dup3 then swaps
 * the file behind the descriptor in one step, so reads in flight on
 * other threads never meet a closed descriptor.
 */
static int
fd_make_writable (struct io *io)
{
  struct io_fd *f = (struct io_fd *) io;
  struct stat st;
  int fd, flags, r = -1;

  if (f->path == NULL) {
    errno = EROFS;
    return -1;
  }
  if (stat (f->path, &st) == -1)
    return fd_fail (f, "stat %s", f->path);
  if (same_file (f, &st) == -1)
    return -1;
  fd = open (f->path, O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd == -1 && refuses_writing (errno)) {
    errno = EROFS;
    return -1;
  }
  if (fd == -1)
    return fd_fail (f, "open %s for writing", f->path);
  if (fstat (fd, &st) == -1)
    fd_fail (f, "fstat");
  else if (same_file (f, &st) == -1)
    ;
  else if ((flags = fcntl (fd, F_GETFL)) == -1 ||
           fcntl (fd, F_SETFL, flags & ~O_NONBLOCK) == -1)
    fd_fail (f, "fcntl");
  else if (dup3 (fd, f->fd, O_CLOEXEC) == -1)
    fd_fail (f, "dup3");
  else {
    io->readonly = false;
    r = 0;
  }
  {
    int e = errno;
    close (fd);
    errno = e;
  }
  return r;
}

static const struct io_ops fd_ops = {
  .pread = fd_pread,
  .pwrite = fd_pwrite,
  .flush = fd_flush,
  .size = fd_size,
  .truncate = fd_truncate,
  .punch = fd_punch,
  .zero = fd_zero,
  .extent = fd_extent,
  .allocated = fd_allocated,
  .close = fd_close,
  .make_writable = fd_make_writable,
  .identify = fd_identify,
};

struct io *
io_fd_wrap_path (int fd, const char *name, const char *path, bool readonly)
{
  struct io_fd *f = calloc (1, sizeof *f);

  if (f == NULL || (f->name = strdup (name)) == NULL ||
      (path && (f->path = strdup (path)) == NULL)) {
    diag_error ("calloc: %m");
    if (f)
      free (f->name);
    free (f);
    errno = ENOMEM;
    return NULL;
  }
  f->fd = fd;
  f->io.ops = &fd_ops;
  f->io.name = f->name;
  f->io.readonly = readonly;
  return &f->io;
}

struct io *
io_fd_wrap (int fd, const char *name, bool readonly)
{
  return io_fd_wrap_path (fd, name, NULL, readonly);
}

struct io *
io_open_file (const char *filename, int flags)
{
  int fd = open (filename, flags | O_CLOEXEC, 0644);
  struct io *io;

  if (fd == -1) {
    int e = errno;
    diag_error ("open: %s: %m", filename);
    errno = e;
    return NULL;
  }
  io = io_fd_wrap (fd, filename, (flags & O_ACCMODE) == O_RDONLY);
  if (io == NULL)
    close (fd);
  return io;
}

int
io_make_writable (struct io *io)
{
  if (!io->readonly)
    return 0;
  if (io->ops->make_writable == NULL) {
    errno = EROFS;
    return -1;
  }
  return io->ops->make_writable (io);
}

int
io_identify (struct io *io, uint64_t *dev, uint64_t *ino)
{
  if (io->ops->identify == NULL) {
    errno = ENOTSUP;
    return -1;
  }
  return io->ops->identify (io, dev, ino);
}

int
io_punch (struct io *io, uint64_t offset, uint64_t count)
{
  if (io->ops->punch == NULL)
    return 0;
  return io->ops->punch (io, offset, count);
}

int
io_zero (struct io *io, uint64_t offset, uint64_t count)
{
  static const char zeroes[65536];

  if (io->ops->zero) {
    if (io->ops->zero (io, offset, count) == 0)
      return 0;
    if (errno != ENOTSUP)
      return -1;
  }
  while (count > 0) {
    size_t n = MIN (count, sizeof zeroes);

    if (io_pwrite (io, zeroes, n, offset) == -1)
      return -1;
    offset += n;
    count -= n;
  }
  return 0;
}

int64_t
io_allocated (struct io *io)
{
  if (io->ops->allocated == NULL) {
    errno = ENOTSUP;
    return -1;
  }
  return io->ops->allocated (io);
}

int
io_extent (struct io *io, uint64_t offset, uint64_t count, bool *hole,
           uint64_t *length)
{
  if (io->ops->extent == NULL) {
    *hole = false;
    *length = count;
    return 0;
  }
  return io->ops->extent (io, offset, count, hole, length);
}

int
io_pread_zero_padded (struct io *io, void *buf, size_t count, uint64_t offset)
{
  int64_t size = io_size (io);
  size_t avail;

  if (size == -1)
    return -1;
  avail = (uint64_t) size > offset ? MIN ((uint64_t) size - offset, (uint64_t) count) : 0;
  if (avail > 0 && io_pread (io, buf, avail, offset) == -1)
    return -1;
  memset ((char *) buf + avail, 0, count - avail);
  return 0;
}
