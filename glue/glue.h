/* What the qcow2 plugin and the qcow2 filter share (glue.c): the
 * parameters that mean the same in both, and the translation of
 * nbdkit's requests into the engine's calls.  Each module keeps only
 * what differs: where the image comes from (file= or the layer below)
 * and what backing= may say.
 *
 * Built with create-params.c into libqcow2-glue.la, which both modules
 * link.
 */
#ifndef QCOW2_GLUE_H
#define QCOW2_GLUE_H

#include <stdbool.h>
#include <stdint.h>

#include "create-params.h"
#include "kdf-params.h"
#include "qcow2.h"

/* The engine's options as the shared parameters set them; the module
 * fills in opener, filename and backing.
 */
extern struct qcow2_options glue_opts;

/* Handle one shared parameter: 1 if taken, 0 if it is not one of
 * them, -1 on error (reported).
 */
extern int glue_config (const char *key, const char *value);

/* data-file= as given (relative to nbdkit's directory), or NULL. */
extern const char *glue_data_file_arg (void);

/* The passphrase (key memory) is needed only to open the image: wipe
 * it as soon as that is done.
 */
extern const char *glue_passphrase (void);
extern void glue_forget_passphrase (void);

/* Free what the parameters hold (.unload). */
extern void glue_unload (void);

/* Open the image as glue_opts say, once for every connection: wipes
 * the passphrase, and sets up compressed-writes=true (the compress
 * filter).  glue_close closes it (.cleanup).
 */
extern int glue_open (struct qcow2_image **img);
extern void glue_close (struct qcow2_image **img);

/* A client connects: the first writable one gets the image ready for
 * writing.  Files that refuse writing leave the image read-only
 * (can_write is then false); any other failure refuses the client.
 */
extern int glue_connect (struct qcow2_image *img, int readonly);

/* .block_size of the export. */
extern void glue_block_size (struct qcow2_image *img, uint32_t *minimum,
                             uint32_t *preferred, uint32_t *maximum);

/* nbdkit's request flags as the engine's. */
extern unsigned glue_write_flags (uint32_t flags);
extern unsigned glue_zero_flags (uint32_t flags);
extern unsigned glue_trim_flags (uint32_t flags);

/* nbdkit's .extents over qcow2_extents. */
struct nbdkit_extents;
extern int glue_extents (struct qcow2_image *img, uint32_t count,
                         uint64_t offset, uint32_t flags,
                         struct nbdkit_extents *extents);

/* The parameters' lines for .config_help. */
#define glue_config_help \
  "l2-cache-size=<SIZE>  Bytes of L2 tables to cache (default 32M).\n" \
  "max-chain-depth=<N>   Most backing files below the image (default 16).\n" \
  "data-file=<FILENAME>  The external data file (default: as the image says).\n" \
  "compressed-writes=true Store every write as compressed clusters\n" \
  "                      (what the compress filter sets).\n" \
  "compression-level=<N> Level for compressed writes (zlib 1-9, zstd 1-22).\n" \
  create_config_help "\n" \
  "snapshot=<ID|NAME>    Serve this internal snapshot, read-only.\n" \
  "passphrase=<PASSWORD> Unlocks an encrypted image (-, +FILE, -FD forms).\n" \
  kdf_params_help

#endif /* QCOW2_GLUE_H */
