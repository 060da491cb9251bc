/* nbdkit compress filter: store every write as compressed clusters.
 *
 * The nbdkit counterpart of QEMU's `compress` block driver (what
 * virt-v2v's `-oo compressed` uses).  The work is done by the plugin
 * below: this filter asks it, through the one channel a filter has
 * before any connection (configuration parameters), to store writes
 * compressed, and advertises the block size that suits whole-cluster
 * writes.  Zero, trim and everything else pass through.
 *
 * The qcow2 plugin of this project understands the request
 * (compressed-writes=true, see plugins/qcow2); a plugin that does not
 * rejects the parameter, and the filter then stops nbdkit with a
 * message saying why.
 */
#include <config.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <nbdkit-filter.h>

#include "minmax.h"

/* The parameter the plugin below receives. */
#define COMPRESSED_WRITES_KEY "compressed-writes"

/* Largest request advertised: QEMU's compress driver says 32 MiB too. */
#define MAX_REQUEST (32 * 1024 * 1024)

/* NBD's largest minimum block size. */
#define MAX_MINIMUM 65536

static bool asked;              /* the plugin has been asked */
static bool asking;             /* ... and has not answered yet */

#define REFUSAL_MESSAGE \
  "compress: the plugin below cannot store compressed writes (it " \
  "rejects the '" COMPRESSED_WRITES_KEY "' parameter); use a plugin " \
  "that can, such as qcow2"

/* nbdkit 1.32 exits from inside next() when a plugin rejects a
 * parameter, so a message printed after next() returns would never be
 * seen.  This exit handler says it instead, while the question is open.
 * (Registered from a module, it runs at dlclose on a normal shutdown,
 * when `asking` is false.)
 */
static void
explain_refusal (void)
{
  if (asking)
    nbdkit_error (REFUSAL_MESSAGE);
}

static void
compress_load (void)
{
  atexit (explain_refusal);
}

/* Ask the plugin below, once, before its first parameter of its own.
 * (The filter's .config is the only place that can talk to the
 * plugin's .config.)
 */
static int
ask_for_compressed_writes (nbdkit_next_config *next, nbdkit_backend *nxdata)
{
  int r;

  if (asked)
    return 0;
  asked = asking = true;
  r = next (nxdata, COMPRESSED_WRITES_KEY, "true");
  asking = false;
  if (r == -1) {
    nbdkit_error (REFUSAL_MESSAGE);
    return -1;
  }
  return 0;
}

/* compression-level=N is the plugin's own parameter: it passes down
 * with every other one.
 */
static int
compress_config (nbdkit_next_config *next, nbdkit_backend *nxdata,
                 const char *key, const char *value)
{
  if (ask_for_compressed_writes (next, nxdata) == -1)
    return -1;
  return next (nxdata, key, value);
}

static int
compress_config_complete (nbdkit_next_config_complete *next,
                          nbdkit_backend *nxdata)
{
  /* A plugin given no parameters at all never heard from us. */
  if (!asked) {
    nbdkit_error ("compress: the plugin below was given no parameters, so "
                  "it could not be asked to store compressed writes");
    return -1;
  }
  return next (nxdata);
}

#define compress_config_help \
  "compression-level=<N>   Compression level (zlib 1-9, zstd 1-22;\n" \
  "                        default: the plugin's)."

/* Whole clusters: the plugin's preferred size, which the qcow2 plugin
 * sets to the cluster size when writing compressed.  Smaller and
 * unaligned writes still work (the plugin merges them into whole
 * clusters), they just cost a read.
 *
 * The minimum must also divide the export size, or a client that
 * honours it (libnbd does) could not write the last, partial cluster.
 */
static int
compress_block_size (nbdkit_next *next, void *handle,
                     uint32_t *minimum, uint32_t *preferred,
                     uint32_t *maximum)
{
  int64_t size;

  if (next->block_size (next, minimum, preferred, maximum) == -1)
    return -1;
  if (*preferred == 0)          /* the plugin states nothing */
    return 0;
  size = next->get_size (next);
  if (size == -1)
    return -1;
  *minimum = MIN (*preferred, (uint32_t) MAX_MINIMUM);
  while (*minimum > 1 && size % *minimum)
    *minimum /= 2;
  *maximum = MAX (*preferred, (uint32_t) MAX_REQUEST);
  return 0;
}

static struct nbdkit_filter filter = {
  .name = "compress",
  .longname = "nbdkit compress filter",
  .load = compress_load,
  .config = compress_config,
  .config_complete = compress_config_complete,
  .config_help = compress_config_help,
  .block_size = compress_block_size,
};

NBDKIT_REGISTER_FILTER (filter)
