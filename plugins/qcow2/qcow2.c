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
#include "create-params.h"
#include "diag.h"
#include "kdf-params.h"
#include "keymem.h"
#include "minmax.h"
#include "passphrase-param.h"
#include "qcow2.h"

static char *filename;
static char *data_file;
static const char *data_file_arg;      /* data-file= as given */
static char *passphrase;        /* key memory; wiped once the image is open */
static struct qcow2_options opts = {
  .opener = &qcow2_local_files,
  .backing = QCOW2_BACKING_AUTO,
};
static struct qcow2_image *img;

/* Set by the compress filter (filters/compress): store every write as
 * compressed clusters.
 */
static bool compressed_writes;
static int compression_level;   /* 0 = the codec's default */

static void
qcow2_plugin_load (void)
{
  diag_set_handlers (nbdkit_verror, nbdkit_vdebug);
}

/* The passphrase is needed only to open the image (encrypted images
 * are unlocked once, in .get_ready): wipe it as soon as possible.
 */
static void
forget_passphrase (void)
{
  keymem_free (passphrase);
  passphrase = NULL;
  opts.passphrase = NULL;
}

static int
set_passphrase (const char *value)
{
  opts.passphrase = NULL;
  if (passphrase_param (value, &passphrase, NULL) == -1)
    return -1;
  opts.passphrase = passphrase;
  return 0;
}

static void
qcow2_plugin_unload (void)
{
  forget_passphrase ();
  free (filename);
  free (data_file);
}

static int
qcow2_plugin_config (const char *key, const char *value)
{
  int kdf = kdf_params_config (&opts.kdf_limits, key, value);

  if (kdf != 0)
    return kdf == 1 ? 0 : -1;
  if (strcmp (key, "file") == 0) {
    /* Resolved in .config_complete: with create=true it may not exist. */
    free (filename);
    filename = nbdkit_absolute_path (value);
    if (filename == NULL)
      return -1;
  }
  else if (strcmp (key, "l2-cache-size") == 0) {
    int64_t r = nbdkit_parse_size (value);
    if (r == -1)
      return -1;
    if (r < 65536) {
      nbdkit_error ("l2-cache-size must be at least 64K");
      return -1;
    }
    opts.l2_cache_size = r;
  }
  else if (strcmp (key, "backing") == 0) {
    if (strcmp (value, "auto") == 0)
      opts.backing = QCOW2_BACKING_AUTO;
    else if (strcmp (value, "none") == 0)
      opts.backing = QCOW2_BACKING_NONE;
    else {
      nbdkit_error ("backing must be 'auto' or 'none', not '%s'", value);
      return -1;
    }
  }
  else if (strcmp (key, "max-chain-depth") == 0) {
    if (nbdkit_parse_unsigned ("max-chain-depth", value,
                               &opts.max_chain_depth) == -1)
      return -1;
    if (opts.max_chain_depth == 0) {
      nbdkit_error ("max-chain-depth must be at least 1");
      return -1;
    }
  }
  else if (strcmp (key, "data-file") == 0) {
    /* Like file=, relative to the directory nbdkit was started in;
     * resolved in .config_complete.
     */
    data_file_arg = nbdkit_strdup_intern (value);
    if (data_file_arg == NULL)
      return -1;
  }
  else if (strcmp (key, "passphrase") == 0) {
    if (set_passphrase (value) == -1)
      return -1;
  }
  else if (strcmp (key, "compressed-writes") == 0) {
    int r = nbdkit_parse_bool (value);
    if (r == -1)
      return -1;
    compressed_writes = r;
  }
  else if (strcmp (key, "compression-level") == 0) {
    if (nbdkit_parse_int ("compression-level", value, &compression_level) == -1)
      return -1;
    if (compression_level < 1) {
      nbdkit_error ("compression-level must be at least 1");
      return -1;
    }
  }
  else if (strcmp (key, "snapshot") == 0) {
    /* An internal snapshot is history: it is never written. */
    opts.snapshot = value;
    opts.readonly = true;
  }
  else {
    int r = create_config (key, value);

    if (r == -1)
      return -1;
    if (r == 0) {
      nbdkit_error ("unknown parameter '%s'", key);
      return -1;
    }
  }
  return 0;
}

static int
qcow2_plugin_config_complete (void)
{
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
    opts.data_file = data_file;
  }
  opts.filename = filename;
  return 0;
}

#define qcow2_plugin_config_help \
  "[file=]<FILENAME>     (required) The qcow2 image to serve.\n" \
  "l2-cache-size=<SIZE>  Bytes of L2 tables to cache (default 32M).\n" \
  "backing=auto|none     Follow the backing chain, or serve the top image alone.\n" \
  "max-chain-depth=<N>   Most backing files below the image (default 16).\n" \
  "data-file=<FILENAME>  The external data file (default: as the image says).\n" \
  "compressed-writes=true Store every write as compressed clusters\n" \
  "                      (what the compress filter sets).\n" \
  "compression-level=<N> Level for compressed writes (zlib 1-9, zstd 1-22).\n" \
  create_config_help "\n" \
  "snapshot=<ID|NAME>    Serve this internal snapshot, read-only.\n" \
  "passphrase=<PASSWORD> Unlocks an encrypted image (-, +FILE, -FD forms).\n" \
  kdf_params_help

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
      create_image (filename, data_file_arg, passphrase) == -1) {
    forget_passphrase ();
    return -1;
  }

  int r = qcow2_open (&opts, &img);

  forget_passphrase ();
  if (r == 0 && compressed_writes)
    r = qcow2_enable_compressed_writes (img, compression_level);
  return r;
}

static void
qcow2_plugin_cleanup (void)
{
  qcow2_close (img);
  img = NULL;
}

static void *
qcow2_plugin_open (int readonly)
{
  /* Every connection shares the one image.  The first writable one
   * gets it ready for writing (opens the files for writing, repair,
   * feature bits): readonly is nbdkit -r, which the plugin learns only
   * here, so under -r nothing is ever opened for writing.  Files that
   * refuse writing leave the image read-only (can_write is then false).
   */
  if (!readonly && qcow2_is_writable (img) &&
      qcow2_prepare_write (img) == -1 && qcow2_is_writable (img))
    return NULL;
  return img;
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
  /* An encrypted image stores whole 512-byte sectors: smaller writes
   * cost a read-modify-write.
   */
  *minimum = qcow2_is_encrypted (img) ? 512 : 1;
  /* Compressed writes are of whole clusters: the cluster size exactly
   * (the compress filter takes it from here).
   */
  *preferred = compressed_writes ? qcow2_cluster_size (img)
    : MAX (4096u, qcow2_cluster_size (img));
  *maximum = 0xffffffff;
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

static unsigned
fua_of (uint32_t flags)
{
  return flags & NBDKIT_FLAG_FUA ? QCOW2_FUA : 0;
}

static int
qcow2_plugin_pwrite (void *handle, const void *buf, uint32_t count,
                     uint64_t offset, uint32_t flags)
{
  unsigned f = fua_of (flags);

  if (compressed_writes)
    f |= QCOW2_COMPRESSED;
  return qcow2_pwrite (img, buf, count, offset, f);
}

static int
qcow2_plugin_zero (void *handle, uint32_t count, uint64_t offset,
                   uint32_t flags)
{
  unsigned f = fua_of (flags);

  if (flags & NBDKIT_FLAG_MAY_TRIM)
    f |= QCOW2_MAY_TRIM;
  if (flags & NBDKIT_FLAG_FAST_ZERO)
    f |= QCOW2_FAST_ZERO;
  /* Zeroing part of a cluster writes data: compressed, like the rest. */
  if (compressed_writes)
    f |= QCOW2_COMPRESSED;
  return qcow2_zero (img, count, offset, f);
}

static int
qcow2_plugin_trim (void *handle, uint32_t count, uint64_t offset,
                   uint32_t flags)
{
  return qcow2_trim (img, count, offset, fua_of (flags));
}

static int
qcow2_plugin_flush (void *handle, uint32_t flags)
{
  return qcow2_flush (img);
}

static int
add_extent (void *opaque, uint64_t offset, uint64_t length, uint32_t type)
{
  return nbdkit_add_extent (opaque, offset, length, type);
}

static int
qcow2_plugin_extents (void *handle, uint32_t count, uint64_t offset,
                      uint32_t flags, struct nbdkit_extents *extents)
{
  return qcow2_extents (img, count, offset, flags & NBDKIT_FLAG_REQ_ONE,
                        add_extent, extents);
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
