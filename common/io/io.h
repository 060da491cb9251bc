/* "The file below": the bytes a format engine reads and writes.
 *
 * The qcow2 engine and the LUKS code work on a struct io, so they can sit
 * on a file descriptor (io-fd.c) or on nbdkit's next layer (io-next.c,
 * for filters).
 * Every call returns 0 on success, or -1 with errno set and a message
 * already reported through diag_error.
 */
#ifndef IO_H
#define IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct io;

struct io_ops {
  /* Read exactly count bytes; reading past the end of the file is EIO. */
  int (*pread) (struct io *io, void *buf, size_t count, uint64_t offset);
  int (*pwrite) (struct io *io, const void *buf, size_t count, uint64_t offset);
  int (*flush) (struct io *io);
  /* Current length of the file in bytes, or -1. */
  int64_t (*size) (struct io *io);
  int (*truncate) (struct io *io, uint64_t size);
  /* Give back the space of a range (it then reads as zeroes). Optional. */
  int (*punch) (struct io *io, uint64_t offset, uint64_t count);
  /* Make a range read as zeroes with its space allocated, growing the
   * file if it ends before the range does, without writing the zeroes.
   * Optional; -1 with errno ENOTSUP (and no message) where the file
   * cannot, and io_zero then writes them.
   */
  int (*zero) (struct io *io, uint64_t offset, uint64_t count);
  /* Bytes of storage the file really uses (st_blocks), or -1. Optional. */
  int64_t (*allocated) (struct io *io);
  /* Is offset in a hole of a sparse file, and for how many bytes (at
   * most count) does that last?  Optional.
   */
  int (*extent) (struct io *io, uint64_t offset, uint64_t count,
                 bool *hole, uint64_t *length);
  void (*close) (struct io *io);
  /* Switch a read-only io to writing the same file (see
   * io_make_writable).  Optional: without it the file stays read-only.
   */
  int (*make_writable) (struct io *io);
  /* Which file this is, for noticing the same file twice (a loop in
   * a backing chain).  Optional.
   */
  int (*identify) (struct io *io, uint64_t *dev, uint64_t *ino);
};

struct io {
  const struct io_ops *ops;
  const char *name;             /* for messages */
  bool readonly;
  /* The file cannot grow (a layer of nbdkit, a block device): writes
   * must stay below io_size, and io_truncate fails.
   */
  bool fixed_size;
};

static inline int
io_pread (struct io *io, void *buf, size_t count, uint64_t offset)
{
  return io->ops->pread (io, buf, count, offset);
}

static inline int
io_pwrite (struct io *io, const void *buf, size_t count, uint64_t offset)
{
  return io->ops->pwrite (io, buf, count, offset);
}

static inline int
io_flush (struct io *io)
{
  return io->ops->flush (io);
}

static inline int64_t
io_size (struct io *io)
{
  return io->ops->size (io);
}

static inline int
io_truncate (struct io *io, uint64_t size)
{
  return io->ops->truncate (io, size);
}

static inline void
io_close (struct io *io)
{
  if (io)
    io->ops->close (io);
}

/* Punch a hole; returns 0 and does nothing where the backend cannot. */
extern int io_punch (struct io *io, uint64_t offset, uint64_t count);

/* Make [offset, +count) read as zeroes, its space allocated and the
 * file at least offset + count long: cheaply where the backend can,
 * else by writing zeroes.
 */
extern int io_zero (struct io *io, uint64_t offset, uint64_t count);

/* Bytes the file really occupies; -1 with errno ENOTSUP if unknown. */
extern int64_t io_allocated (struct io *io);

/* Where the file below is sparse: sets *hole and the length (at most
 * count) of the run at offset.  Backends that cannot tell report data.
 */
extern int io_extent (struct io *io, uint64_t offset, uint64_t count,
                      bool *hole, uint64_t *length);

/* Read count bytes; the part past the end of the file reads as zeroes.
 * For ranges the format allows to run past EOF (compressed clusters).
 */
extern int io_pread_zero_padded (struct io *io, void *buf, size_t count,
                                 uint64_t offset);

/* Write to the file from now on (a no-op if io is writable already).
 * Calls running on io at the same time see the file either way, never
 * a closed one.  Fails with EROFS, unreported, where the file cannot be
 * written (permissions, a read-only file system or layer below); with
 * ESTALE, reported, if what io was opened from is now another file.
 */
extern int io_make_writable (struct io *io);

/* Sets *dev and *ino to tell the file apart from others; -1 with errno
 * ENOTSUP (unreported) where the backend cannot tell.
 */
extern int io_identify (struct io *io, uint64_t *dev, uint64_t *ino);

/* Open a file by name (relative names as given).  flags: O_RDONLY or
 * O_RDWR, optionally O_CREAT.
 */
extern struct io *io_open_file (const char *filename, int flags);

/* Wrap an already open descriptor; the io owns it afterwards.  path,
 * if not NULL, is where io_make_writable opens the file again: an
 * absolute path, so that a change of directory does not matter.
 */
extern struct io *io_fd_wrap (int fd, const char *name, bool readonly);
extern struct io *io_fd_wrap_path (int fd, const char *name,
                                   const char *path, bool readonly);

#endif /* IO_H */
