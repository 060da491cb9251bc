/* nbdkit qcow2 filter: the plugin below holds a qcow2 image, the
 * filter serves its guest view.  The same engine and glue as the qcow2
 * plugin (glue/glue.h); only where the files come from
 * differs.
 *
 * The image is opened once per nbdkit process, in .after_fork, over
 * contexts of its own into the layer below that every connection
 * shares (io_next_open_shared): one set of caches, one writer, and the
 * layer below opened once rather than per connection.  A connection
 * therefore opens nothing below itself (.open does not call next), and
 * every callback a connection reaches is answered here.
 *
 * The names an image records (its backing file, its external data
 * file) are not names on the layer below.  Nothing the image names is
 * opened unless the operator says how (backing=none or backing=local,
 * and data-file=): see files_open.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nbdkit-filter.h>

#include "cleanup.h"
#include "diag.h"
#include "glue.h"
#include "io-next.h"
#include "qcow2.h"

/* How the image is called in messages, and how files_open tells the
 * names this image records (which it takes as recorded, see
 * local_name) from those of local backing files.
 */
#define IMAGE_NAME "the qcow2 image on the layer below"

/* backing=: what becomes of the files the image names. */
static enum {
  FILES_REFUSE,                 /* not given: refuse an image that names one */
  FILES_NONE,                   /* backing=none: serve the image alone */
  FILES_LOCAL,                  /* backing=local: local paths */
} files_mode = FILES_REFUSE;
static char *backing_dir;       /* backing-dir=: for relative names */
static char *data_file;         /* data-file=, resolved */

static int thread_model;        /* the server's, from .get_ready */
static nbdkit_backend *backend; /* from .after_fork */
static struct qcow2_image *img;

static void
qcow2_filter_load (void)
{
  diag_set_handlers (nbdkit_verror, nbdkit_vdebug);
}

static void
qcow2_filter_unload (void)
{
  glue_unload ();
  free (backing_dir);
  free (data_file);
}

static int
parse_backing (const char *value)
{
  if (strcmp (value, "none") == 0)
    files_mode = FILES_NONE;
  else if (strcmp (value, "local") == 0)
    files_mode = FILES_LOCAL;
  else if (strcmp (value, "auto") == 0) {
    nbdkit_error ("backing=auto: the names an image records are not names "
                  "on the layer below; use backing=local (local files) "
                  "or backing=none");
    return -1;
  }
  else {
    nbdkit_error ("backing must be 'none' or 'local', not '%s'", value);
    return -1;
  }
  return 0;
}

static int
qcow2_filter_config (nbdkit_next_config *next, nbdkit_backend *nxdata,
                     const char *key, const char *value)
{
  int r;

  if (strcmp (key, "backing") == 0)
    return parse_backing (value);
  if (strcmp (key, "backing-dir") == 0) {
    free (backing_dir);
    backing_dir = nbdkit_realpath (value);
    return backing_dir ? 0 : -1;
  }
  r = glue_config (key, value);
  if (r == 0)
    return next (nxdata, key, value);
  return r == 1 ? 0 : -1;
}

static int
qcow2_filter_config_complete (nbdkit_next_config_complete *next,
                              nbdkit_backend *nxdata)
{
  const char *arg = glue_data_file_arg ();

  if (backing_dir && files_mode != FILES_LOCAL) {
    nbdkit_error ("backing-dir= only applies with backing=local");
    return -1;
  }
  if (create_config_check () == -1)
    return -1;
  if (create_requested () && arg) {
    nbdkit_error ("data-file= cannot be given with create=true: the filter "
                  "formats the layer below, not a local data file");
    return -1;
  }
  if (create_backing_file () && files_mode != FILES_LOCAL) {
    nbdkit_error ("backing-file= with create=true needs backing=local: "
                  "the filter must open the backing file to serve it");
    return -1;
  }
  if (arg) {
    data_file = nbdkit_realpath (arg);
    if (data_file == NULL)
      return -1;
    glue_opts.data_file = data_file;
  }
  glue_opts.backing = files_mode == FILES_NONE ? QCOW2_BACKING_NONE
    : QCOW2_BACKING_AUTO;
  glue_opts.filename = IMAGE_NAME;
  return next (nxdata);
}

#define qcow2_filter_config_help \
  "backing=none|local    Serve the image without its backing file, or open\n" \
  "                      the files it names from the local file system.\n" \
  "backing-dir=<DIR>     backing=local: where relative names are found.\n" \
  glue_config_help

static int
qcow2_filter_get_ready (int model)
{
  thread_model = model;
  return 0;
}

/* ---------------------------------------------------------------- */
/* The engine's files. */

static const char *
role_noun (enum qcow2_file_role role)
{
  return role == QCOW2_FILE_BACKING ? "backing file" : "external data file";
}

/* The name to look for.  One the image on the layer below records
 * means nothing there: it is taken as recorded.  One a local backing
 * file records the engine resolved from that file's directory, as QEMU
 * does.
 */
static const char *
local_name (const struct qcow2_file_request *req)
{
  if (req->recorded && strcmp (req->named_by, IMAGE_NAME) == 0)
    return req->recorded;
  return req->name;
}

/* Under backing=local: an absolute name as it is, a relative one from
 * backing-dir.
 */
static char *
local_path (const struct qcow2_file_request *req)
{
  const char *name = local_name (req);
  char *path;

  if (name[0] == '/')
    return strdup (name);
  if (backing_dir == NULL) {
    nbdkit_error ("%s: %s %s is a relative name: give backing-dir=DIR to "
                  "say where it is", req->named_by, role_noun (req->role),
                  name);
    errno = EPERM;
    return NULL;
  }
  if (asprintf (&path, "%s/%s", backing_dir, name) == -1) {
    nbdkit_error ("asprintf: %m");
    return NULL;
  }
  return path;
}

static struct io *
open_local (const struct qcow2_file_request *req, const char *path)
{
  struct qcow2_file_request local = *req;

  local.name = path;
  return qcow2_local_files.open (qcow2_local_files.opaque, &local);
}

/* The image: contexts of its own into the layer below. */
static struct io *
open_layer (void)
{
  /* The default export: a plugin's own parameters choose another (the
   * nbd plugin's export=, which this filter must not take).
   */
  return io_next_open_shared (backend, "", IMAGE_NAME, thread_model);
}

static struct io *
files_open (void *opaque, const struct qcow2_file_request *req)
{
  char *path;
  struct io *io;

  if (req->role == QCOW2_FILE_IMAGE)
    return open_layer ();
  /* data-file= is the operator's own name for a local file. */
  if (req->role == QCOW2_FILE_DATA && req->recorded == NULL)
    return open_local (req, req->name);
  if (files_mode != FILES_LOCAL) {
    nbdkit_error ("%s names %s %s, which the filter does not look for (the "
                  "names in an image are not names on the layer below): "
                  "give %s, or backing=local to open it from the local file "
                  "system", req->named_by, role_noun (req->role),
                  req->recorded,
                  req->role == QCOW2_FILE_BACKING
                  ? "backing=none to serve the image without it"
                  : "data-file=PATH");
    errno = EPERM;
    return NULL;
  }
  path = local_path (req);
  if (path == NULL)
    return NULL;
  io = open_local (req, path);
  free (path);
  return io;
}

static const struct qcow2_opener filter_files = { .open = files_open };

/* ---------------------------------------------------------------- */
/* create=true: format the layer below as a new image, unless it holds
 * one already (the qcow magic, of qcow2 and qcow v1, at offset 0): that
 * is opened as it is, as the plugin opens a file that exists.
 *
 * Not before a client that may write connects: nbdkit tells a filter
 * about -r only then, and lets it open the layer below for writing
 * even under -r.  Until then the image is not open (layer_unformatted),
 * and a read-only client is refused.
 */

static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;
static bool layer_unformatted;

static bool
holds_image (struct io *layer, bool *ret)
{
  static const unsigned char qcow_magic[4] = { 'Q', 'F', 'I', 0xfb };
  unsigned char magic[4];

  if (io_pread_zero_padded (layer, magic, sizeof magic, 0) == -1)
    return false;
  *ret = memcmp (magic, qcow_magic, sizeof magic) == 0;
  return true;
}

static struct io *
open_new_backing (void)
{
  const struct qcow2_file_request req = {
    .role = QCOW2_FILE_BACKING,
    .name = create_backing_file (),
    .recorded = create_backing_file (),
    .named_by = "create=true",
  };
  char *path = local_path (&req);
  struct io *io;

  if (path == NULL)
    return NULL;
  io = open_local (&req, path);
  free (path);
  return io;
}

/* At start-up: does the layer below need formatting? */
static int
check_layer (void)
{
  struct io *layer = open_layer ();
  bool image;
  int r = -1;

  if (layer && holds_image (layer, &image)) {
    layer_unformatted = !image;
    nbdkit_debug ("create=true: the layer below %s", image
                  ? "holds an image: opening it as it is"
                  : "holds no image: formatting it when a client that may "
                  "write connects");
    r = 0;
  }
  io_close (layer);
  return r;
}

static int
format_layer (void)
{
  struct io *layer = open_layer (), *backing = NULL;
  int r = -1;

  if (layer == NULL)
    goto out;
  if (io_make_writable (layer) == -1) {
    nbdkit_error ("create=true: the layer below cannot be written");
    goto out;
  }
  if (create_backing_file () && (backing = open_new_backing ()) == NULL)
    goto out;
  r = create_image_on (layer, backing, glue_passphrase ());
 out:
  io_close (backing);
  io_close (layer);
  return r;
}

/* .open: the first client that may write formats the layer and opens
 * the image.  Failures are final (the passphrase is gone), so every
 * later client is refused too.
 */
static int
create_on_connect (int readonly)
{
  static bool failed;
  SCOPED_LOCK (&create_lock);

  if (!layer_unformatted)
    return 0;
  if (failed || readonly) {
    nbdkit_error ("create=true: the layer below holds no image%s",
                  failed ? " (formatting it failed)"
                  : ": it is formatted when a client that may write "
                  "connects, and nbdkit -r never lets one");
    return -1;
  }
  if (format_layer () == -1 || glue_open (&img) == -1) {
    glue_forget_passphrase ();
    failed = true;
    return -1;
  }
  layer_unformatted = false;
  return 0;
}

/* ---------------------------------------------------------------- */
/* The image, opened once for every connection. */

static int
qcow2_filter_after_fork (nbdkit_backend *b)
{
  backend = b;
  glue_opts.opener = &filter_files;
  if (create_requested () && check_layer () == -1) {
    glue_forget_passphrase ();
    return -1;
  }
  if (layer_unformatted)
    return 0;
  return glue_open (&img);
}

static void
qcow2_filter_cleanup (nbdkit_backend *b)
{
  glue_close (&img);
}

static void *
qcow2_filter_open (nbdkit_next_open *next, nbdkit_context *nxdata,
                   int readonly, const char *exportname, int is_tls)
{
  /* next is not called: the layer below is reached through the shared
   * contexts, and the callbacks below get NULL for next.
   */
  if (create_on_connect (readonly) == -1 ||
      glue_connect (img, readonly) == -1)
    return NULL;
  return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t
qcow2_filter_get_size (nbdkit_next *next, void *handle)
{
  return qcow2_size (img);
}

static const char *
qcow2_filter_export_description (nbdkit_next *next, void *handle)
{
  return qcow2_description (img);
}

static int
qcow2_filter_block_size (nbdkit_next *next, void *handle, uint32_t *minimum,
                         uint32_t *preferred, uint32_t *maximum)
{
  glue_block_size (img, minimum, preferred, maximum);
  return 0;
}

static int
qcow2_filter_can_write (nbdkit_next *next, void *handle)
{
  return qcow2_is_writable (img);
}

/* As in the plugin: flush, block status and fast zero always work, and
 * one image behind every connection makes multi-conn safe.
 */
static int
qcow2_filter_true (nbdkit_next *next, void *handle)
{
  return 1;
}

static int
qcow2_filter_false (nbdkit_next *next, void *handle)
{
  return 0;
}

static int
qcow2_filter_can_fua (nbdkit_next *next, void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

static int
qcow2_filter_can_zero (nbdkit_next *next, void *handle)
{
  return qcow2_is_writable (img) ? NBDKIT_ZERO_NATIVE : NBDKIT_ZERO_NONE;
}

static int
qcow2_filter_can_cache (nbdkit_next *next, void *handle)
{
  return NBDKIT_CACHE_NONE;
}

/* The engine's calls report their cause and set errno. */
static int
result (int r, int *err)
{
  if (r == -1)
    *err = errno ? errno : EIO;
  return r;
}

static int
qcow2_filter_pread (nbdkit_next *next, void *handle, void *buf,
                    uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  return result (qcow2_pread (img, buf, count, offset), err);
}

static int
qcow2_filter_pwrite (nbdkit_next *next, void *handle, const void *buf,
                     uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  return result (qcow2_pwrite (img, buf, count, offset,
                               glue_write_flags (flags)), err);
}

static int
qcow2_filter_zero (nbdkit_next *next, void *handle, uint32_t count,
                   uint64_t offset, uint32_t flags, int *err)
{
  return result (qcow2_zero (img, count, offset, glue_zero_flags (flags)),
                 err);
}

static int
qcow2_filter_trim (nbdkit_next *next, void *handle, uint32_t count,
                   uint64_t offset, uint32_t flags, int *err)
{
  return result (qcow2_trim (img, count, offset, glue_trim_flags (flags)),
                 err);
}

static int
qcow2_filter_flush (nbdkit_next *next, void *handle, uint32_t flags,
                    int *err)
{
  return result (qcow2_flush (img), err);
}

static int
qcow2_filter_extents (nbdkit_next *next, void *handle, uint32_t count,
                      uint64_t offset, uint32_t flags,
                      struct nbdkit_extents *extents, int *err)
{
  return result (glue_extents (img, count, offset, flags, extents), err);
}

static struct nbdkit_filter filter = {
  .name = "qcow2",
  .longname = "nbdkit qcow2 filter",
  .load = qcow2_filter_load,
  .unload = qcow2_filter_unload,
  .config = qcow2_filter_config,
  .config_complete = qcow2_filter_config_complete,
  .config_help = qcow2_filter_config_help,
  .get_ready = qcow2_filter_get_ready,
  .after_fork = qcow2_filter_after_fork,
  .cleanup = qcow2_filter_cleanup,
  .open = qcow2_filter_open,
  .get_size = qcow2_filter_get_size,
  .export_description = qcow2_filter_export_description,
  .block_size = qcow2_filter_block_size,
  .can_write = qcow2_filter_can_write,
  .can_flush = qcow2_filter_true,
  .is_rotational = qcow2_filter_false,
  .can_trim = qcow2_filter_can_write,
  .can_zero = qcow2_filter_can_zero,
  .can_fast_zero = qcow2_filter_true,
  .can_extents = qcow2_filter_true,
  .can_fua = qcow2_filter_can_fua,
  .can_multi_conn = qcow2_filter_true,
  .can_cache = qcow2_filter_can_cache,
  .pread = qcow2_filter_pread,
  .pwrite = qcow2_filter_pwrite,
  .zero = qcow2_filter_zero,
  .trim = qcow2_filter_trim,
  .flush = qcow2_filter_flush,
  .extents = qcow2_filter_extents,
};

NBDKIT_REGISTER_FILTER (filter)
