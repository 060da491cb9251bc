/* create=true parameters of the qcow2 plugin and filter (create-params.c). */
#ifndef QCOW2_GLUE_CREATE_PARAMS_H
#define QCOW2_GLUE_CREATE_PARAMS_H

#include <stdbool.h>

/* Handle one parameter: 1 if it is a creation parameter (taken),
 * 0 if it is not, -1 on error (reported).
 */
extern int create_config (const char *key, const char *value);

/* Check the creation parameters together. */
extern int create_config_check (void);

/* create=true was given (after create_config_check). */
extern bool create_requested (void);

/* create_config_check, then decide whether the image is to be made:
 * create=true and the file does not exist.
 */
extern int create_config_complete (const char *filename);

/* After create_config_complete: the image does not exist yet and will
 * be made by create_image (so its path cannot be resolved yet).
 */
extern bool create_pending (void);

/* Make the image (and its data file, named as the user gave it);
 * passphrase (NULL if none) is for encrypt-format=.
 */
extern int create_image (const char *filename, const char *data_file,
                         const char *passphrase);

/* The same into image, a writable file that cannot grow (the layer
 * below the qcow2 filter); backing (NULL if none) is the backing file
 * backing-file= names, opened by the caller.  No data file.
 */
struct io;
extern int create_image_on (struct io *image, struct io *backing,
                            const char *passphrase);

/* backing-file= as given, or NULL. */
extern const char *create_backing_file (void);

#define create_config_help \
  "create=true           Make the image if the file does not exist.\n" \
  "size=<SIZE>           Virtual size of a new image.\n" \
  "cluster-size=<SIZE>   New image: cluster size (512 to 2M, default 64K).\n" \
  "compat=0.10|1.1       New image: qcow2 version 2 or 3 (default 1.1).\n" \
  "compression-type=zlib|zstd  New image: compressed cluster format.\n" \
  "extended-l2=on|off    New image: subclusters (clusters >= 16K).\n" \
  "refcount-bits=<N>     New image: refcount width, 1 to 64 (default 16).\n" \
  "lazy-refcounts=on|off New image: lazy refcounts (compat 1.1).\n" \
  "backing-file=<NAME>   New image: backing file (with backing-format=).\n" \
  "backing-format=<FMT>  New image: format of the backing file.\n" \
  "data-file-raw=on|off  New image: the data file (data-file=) is raw.\n" \
  "preallocation=off|metadata|falloc|full  New image: allocate metadata\n" \
  "                      (and data clusters, in the file system too).\n" \
  "encrypt-format=luks|aes     New image: encrypted (with passphrase=).\n" \
  "encrypt-iter-time=<MS>      New image: LUKS key derivation time (2000)."

#endif /* QCOW2_GLUE_CREATE_PARAMS_H */
