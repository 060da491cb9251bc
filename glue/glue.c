/* The parameters and request translation the qcow2 plugin and the
 * qcow2 filter share (see glue.h).
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "glue.h"
#include "keymem.h"
#include "minmax.h"
#include "passphrase-param.h"

struct qcow2_options glue_opts;

/* nbdkit's -D qcow2.cache=1, -D qcow2.alloc=1, -D qcow2.codec=1 (the
 * manuals' DEBUG FLAGS): nbdkit sets them before any parameter.
 */
NBDKIT_DLL_PUBLIC int qcow2_debug_cache;
NBDKIT_DLL_PUBLIC int qcow2_debug_alloc;
NBDKIT_DLL_PUBLIC int qcow2_debug_codec;

static const char *data_file_arg;       /* data-file= as given */
static char *passphrase;                /* key memory */

/* Set by the compress filter (filters/compress): store every write as
 * compressed clusters.
 */
static bool compressed_writes;
static int compression_level;           /* 0 = the codec's default */

void
glue_forget_passphrase (void)
{
  keymem_free (passphrase);
  passphrase = NULL;
  glue_opts.passphrase = NULL;
}

const char *
glue_passphrase (void)
{
  return passphrase;
}

void
glue_unload (void)
{
  glue_forget_passphrase ();
}

const char *
glue_data_file_arg (void)
{
  return data_file_arg;
}

static int
parse_l2_cache_size (const char *value)
{
  int64_t r = nbdkit_parse_size (value);

  if (r == -1)
    return -1;
  if (r < 65536) {
    nbdkit_error ("l2-cache-size must be at least 64K");
    return -1;
  }
  glue_opts.l2_cache_size = r;
  return 0;
}

static int
parse_max_chain_depth (const char *value)
{
  if (nbdkit_parse_unsigned ("max-chain-depth", value,
                             &glue_opts.max_chain_depth) == -1)
    return -1;
  if (glue_opts.max_chain_depth == 0) {
    nbdkit_error ("max-chain-depth must be at least 1");
    return -1;
  }
  return 0;
}

static int
parse_compressed_writes (const char *value)
{
  int r = nbdkit_parse_bool (value);

  if (r == -1)
    return -1;
  compressed_writes = r;
  return 0;
}

static int
parse_compression_level (const char *value)
{
  if (nbdkit_parse_int ("compression-level", value, &compression_level) == -1)
    return -1;
  if (compression_level < 1) {
    nbdkit_error ("compression-level must be at least 1");
    return -1;
  }
  return 0;
}

static int
parse_passphrase (const char *value)
{
  glue_opts.passphrase = NULL;
  if (passphrase_param (value, &passphrase, NULL) == -1)
    return -1;
  glue_opts.passphrase = passphrase;
  return 0;
}

int
glue_config (const char *key, const char *value)
{
  int r = kdf_params_config (&glue_opts.kdf_limits, key, value);

  if (r != 0)
    return r;
  if (strcmp (key, "l2-cache-size") == 0)
    r = parse_l2_cache_size (value);
  else if (strcmp (key, "max-chain-depth") == 0)
    r = parse_max_chain_depth (value);
  else if (strcmp (key, "data-file") == 0) {
    /* Like file=, relative to the directory nbdkit was started in;
     * the module resolves it in .config_complete.
     */
    data_file_arg = nbdkit_strdup_intern (value);
    r = data_file_arg ? 0 : -1;
  }
  else if (strcmp (key, "passphrase") == 0)
    r = parse_passphrase (value);
  else if (strcmp (key, "compressed-writes") == 0)
    r = parse_compressed_writes (value);
  else if (strcmp (key, "compression-level") == 0)
    r = parse_compression_level (value);
  else if (strcmp (key, "snapshot") == 0) {
    /* An internal snapshot is history: it is never written. */
    glue_opts.snapshot = value;
    glue_opts.readonly = true;
    r = 0;
  }
  else
    return create_config (key, value);
  return r == -1 ? -1 : 1;
}

static void
set_debug_flags (struct qcow2_debug *d)
{
  d->flags = (qcow2_debug_cache ? QCOW2_DEBUG_CACHE : 0) |
    (qcow2_debug_alloc ? QCOW2_DEBUG_ALLOC : 0) |
    (qcow2_debug_codec ? QCOW2_DEBUG_CODEC : 0);
  d->print = nbdkit_vdebug;
}

int
glue_open (struct qcow2_image **img)
{
  int r;

  set_debug_flags (&glue_opts.debug);
  r = qcow2_open (&glue_opts, img);

  glue_forget_passphrase ();
  if (r == 0 && compressed_writes)
    r = qcow2_enable_compressed_writes (*img, compression_level);
  return r;
}

void
glue_close (struct qcow2_image **img)
{
  qcow2_close (*img);
  *img = NULL;
}

int
glue_connect (struct qcow2_image *img, int readonly)
{
  /* readonly is nbdkit -r, which a module learns only here: under -r
   * nothing is ever opened for writing.
   */
  if (!readonly && qcow2_is_writable (img) &&
      qcow2_prepare_write (img) == -1 && qcow2_is_writable (img))
    return -1;
  return 0;
}

void
glue_block_size (struct qcow2_image *img, uint32_t *minimum,
                 uint32_t *preferred, uint32_t *maximum)
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
}

unsigned
glue_write_flags (uint32_t flags)
{
  unsigned f = flags & NBDKIT_FLAG_FUA ? QCOW2_FUA : 0;

  if (compressed_writes)
    f |= QCOW2_COMPRESSED;
  return f;
}

unsigned
glue_zero_flags (uint32_t flags)
{
  /* Zeroing part of a cluster writes data: compressed, like the rest
   * (glue_write_flags).
   */
  unsigned f = glue_write_flags (flags);

  if (flags & NBDKIT_FLAG_MAY_TRIM)
    f |= QCOW2_MAY_TRIM;
  if (flags & NBDKIT_FLAG_FAST_ZERO)
    f |= QCOW2_FAST_ZERO;
  return f;
}

unsigned
glue_trim_flags (uint32_t flags)
{
  return flags & NBDKIT_FLAG_FUA ? QCOW2_FUA : 0;
}

static int
add_extent (void *opaque, uint64_t offset, uint64_t length, uint32_t type)
{
  return nbdkit_add_extent (opaque, offset, length, type);
}

int
glue_extents (struct qcow2_image *img, uint32_t count, uint64_t offset,
              uint32_t flags, struct nbdkit_extents *extents)
{
  return qcow2_extents (img, count, offset, flags & NBDKIT_FLAG_REQ_ONE,
                        add_extent, extents);
}
