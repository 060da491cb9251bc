/* nbdkit qcow2 plugin: thin glue between nbdkit and common/qcow2.
 *
 * The image is opened once per nbdkit process (in .get_ready, so a bad
 * image stops the server at start-up with its message) and shared by
 * every connection.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "codec.h"
#include "diag.h"
#include "glue.h"
#include "qcow2.h"

static char *filename;
static char *data_file;
static struct qcow2_image *img;

static void
qcow2_plugin_load (void)
{
  diag_set_handlers (nbdkit_verror, nbdkit_vdebug);
  glue_opts.opener = &qcow2_local_files;
  glue_opts.backing = QCOW2_BACKING_AUTO;
}

static void
qcow2_plugin_unload (void)
{
  glue_unload ();
  free (filename);
  free (data_file);
}

static int
qcow2_plugin_config (const char *key, const char *value)
{
  int r;

  if (strcmp (key, "file") == 0) {
    /* Resolved in .config_complete: with create=true it may not exist. */
    free (filename);
    filename = nbdkit_absolute_path (value);
    return filename ? 0 : -1;
  }
  if (strcmp (key, "backing") == 0) {
    if (strcmp (value, "auto") == 0)
      glue_opts.backing = QCOW2_BACKING_AUTO;
    else if (strcmp (value, "none") == 0)
      glue_opts.backing = QCOW2_BACKING_NONE;
    else {
      nbdkit_error ("backing must be 'auto' or 'none', not '%s'", value);
      return -1;
    }
    return 0;
  }
  r = glue_config (key, value);
  if (r == 0)
    nbdkit_error ("unknown parameter '%s'", key);
  return r == 1 ? 0 : -1;
}

static int
qcow2_plugin_config_complete (void)
{
  const char *data_file_arg = glue_data_file_arg ();

  if (filename == NULL) {
    nbdkit_error ("you must supply the file=<FILENAME> parameter");
    return -1;
  }
  if (create_config_complete (filename) == -1)
    return -1;

  /* An image that create=true is about to make (and its data file)
   * cannot be resolved yet: their absolute paths serve.
   */
  if (!create_pending ()) {
    char *path = nbdkit_realpath (filename);

    if (path == NULL)
      return -1;
    free (filename);
    filename = path;
  }
  if (data_file_arg) {
    data_file = create_pending () ? nbdkit_absolute_path (data_file_arg)
                                  : nbdkit_realpath (data_file_arg);
    if (data_file == NULL)
      return -1;
    glue_opts.data_file = data_file;
  }
  glue_opts.filename = filename;
  return 0;
}

#define qcow2_plugin_config_help \
  "[file=]<FILENAME>     (required) The qcow2 image to serve.\n" \
  "backing=auto|none     Follow the backing chain, or serve the top image alone.\n" \
  glue_config_help

static void
qcow2_plugin_dump_plugin (void)
{
  printf ("qcow2_zlib_decoder=%s\n", codec_inflate_backend ());
  printf ("qcow2_zlib_encoder=%s\n", codec_deflate_backend ());
  printf ("qcow2_zstd=yes\n");
}

static int
qcow2_plugin_get_ready (void)
{
  if (create_pending () &&
      create_image (filename, glue_data_file_arg (), glue_passphrase ()) == -1) {
    glue_forget_passphrase ();
    return -1;
  }
  return glue_open (&img);
}

static void
qcow2_plugin_cleanup (void)
{
  glue_close (&img);
}

static void *
qcow2_plugin_open (int readonly)
{
  /* Every connection shares the one image. */
  return glue_connect (img, readonly) == -1 ? NULL : img;
}

static int64_t
qcow2_plugin_get_size (void *handle)
{
  return qcow2_size (img);
}

static const char *
qcow2_plugin_export_description (void *handle)
{
  return qcow2_description (img);
}

static int
qcow2_plugin_block_size (void *handle, uint32_t *minimum, uint32_t *preferred,
                         uint32_t *maximum)
{
  glue_block_size (img, minimum, preferred, maximum);
  return 0;
}

static int
qcow2_plugin_can_write (void *handle)
{
  return qcow2_is_writable (img);
}

/* Flush, block status and fast zero always work; and one image sits
 * behind every connection, so a flush on any of them covers all and all
 * see the same data (multi-conn).
 */
static int
qcow2_plugin_true (void *handle)
{
  return 1;
}

static int
qcow2_plugin_can_fua (void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

static int
qcow2_plugin_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
                    uint32_t flags)
{
  return qcow2_pread (img, buf, count, offset);
}

static int
qcow2_plugin_pwrite (void *handle, const void *buf, uint32_t count,
                     uint64_t offset, uint32_t flags)
{
  return qcow2_pwrite (img, buf, count, offset, glue_write_flags (flags));
}

static int
qcow2_plugin_zero (void *handle, uint32_t count, uint64_t offset,
                   uint32_t flags)
{
  return qcow2_zero (img, count, offset, glue_zero_flags (flags));
}

static int
qcow2_plugin_trim (void *handle, uint32_t count, uint64_t offset,
                   uint32_t flags)
{
  return qcow2_trim (img, count, offset, glue_trim_flags (flags));
}

static int
qcow2_plugin_flush (void *handle, uint32_t flags)
{
  return qcow2_flush (img);
}

static int
qcow2_plugin_extents (void *handle, uint32_t count, uint64_t offset,
                      uint32_t flags, struct nbdkit_extents *extents)
{
  return glue_extents (img, count, offset, flags, extents);
}

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static struct nbdkit_plugin plugin = {
  .name = "qcow2",
  .longname = "nbdkit qcow2 plugin",
  .version = PACKAGE_VERSION,
  .load = qcow2_plugin_load,
  .unload = qcow2_plugin_unload,
  .config = qcow2_plugin_config,
  .config_complete = qcow2_plugin_config_complete,
  .config_help = qcow2_plugin_config_help,
  .magic_config_key = "file",
  .dump_plugin = qcow2_plugin_dump_plugin,
  .get_ready = qcow2_plugin_get_ready,
  .cleanup = qcow2_plugin_cleanup,
  .open = qcow2_plugin_open,
  .get_size = qcow2_plugin_get_size,
  .export_description = qcow2_plugin_export_description,
  .block_size = qcow2_plugin_block_size,
  .can_write = qcow2_plugin_can_write,
  .can_multi_conn = qcow2_plugin_true,
  .can_fua = qcow2_plugin_can_fua,
  .can_flush = qcow2_plugin_true,
  .can_trim = qcow2_plugin_can_write,
  .can_zero = qcow2_plugin_can_write,
  .can_extents = qcow2_plugin_true,
  .can_fast_zero = qcow2_plugin_true,
  .pread = qcow2_plugin_pread,
  .pwrite = qcow2_plugin_pwrite,
  .zero = qcow2_plugin_zero,
  .trim = qcow2_plugin_trim,
  .flush = qcow2_plugin_flush,
  .extents = qcow2_plugin_extents,
  .errno_is_preserved = 1,
};

NBDKIT_REGISTER_PLUGIN (plugin)
