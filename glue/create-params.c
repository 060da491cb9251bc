/* create=true's parameters, taken by the qcow2 plugin and filter alike.
 *
 * They are the -o options of `qemu-img create -f qcow2` with '-' for
 * '_', and mean the same.  This file only parses them: the rules about
 * which combinations are allowed, and the image itself, are in
 * common/qcow2/create.c.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "create-params.h"
#include "io.h"
#include "qcow2.h"

static bool create;
static bool pending;
static bool size_given;
static const char *option_given;       /* a creation option, for messages */
static struct qcow2_create_options copts;

/* An on/off option. */
static int
parse_switch (const char *value, bool *ret)
{
  int r = nbdkit_parse_bool (value);

  if (r == -1)
    return -1;
  *ret = r;
  return 0;
}

/* A parameter with a fixed set of values, each naming a number. */
struct choice {
  const char *name;
  unsigned value;
};

static const struct choice compat_choices[] = {
  { "0.10", 2 }, { "v2", 2 }, { "1.1", 3 }, { "v3", 3 }, { NULL, 0 },
};
static const struct choice compression_type_choices[] = {
  { "zlib", 0 }, { "zstd", 1 }, { NULL, 0 },
};
static const struct choice preallocation_choices[] = {
  { "off", QCOW2_PREALLOC_OFF }, { "metadata", QCOW2_PREALLOC_METADATA },
  { "falloc", QCOW2_PREALLOC_FALLOC }, { "full", QCOW2_PREALLOC_FULL },
  { NULL, 0 },
};
static const struct choice encrypt_format_choices[] = {
  { "luks", QCOW2_ENCRYPT_LUKS }, { "aes", QCOW2_ENCRYPT_AES }, { NULL, 0 },
};

/* The value of one of the choices, or an error listing them all. */
static int
parse_choice (const char *key, const char *value,
              const struct choice *choices, unsigned *ret)
{
  char list[128] = "";

  for (const struct choice *c = choices; c->name; c++) {
    if (strcmp (value, c->name) == 0) {
      *ret = c->value;
      return 0;
    }
    if (c != choices)
      strcat (list, c[1].name ? ", " : " or ");
    strcat (list, c->name);
  }
  nbdkit_error ("%s must be %s, not '%s'", key, list, value);
  return -1;
}

/* Sizes go through nbdkit_parse_size; the ranges are checked with the
 * other rules in create.c.
 */
static int
parse_cluster_size (const char *value)
{
  int64_t r = nbdkit_parse_size (value);

  if (r == -1)
    return -1;
  if (r == 0 || r > UINT32_MAX) {
    nbdkit_error ("Cluster size must be a power of two between 512 and 2048k");
    return -1;
  }
  copts.cluster_size = r;
  return 0;
}

/* 0 means "the default" in qcow2_create_options: refuse it here. */
static int
parse_refcount_bits (const char *value)
{
  if (nbdkit_parse_unsigned ("refcount-bits", value, &copts.refcount_bits) == -1)
    return -1;
  if (copts.refcount_bits == 0) {
    nbdkit_error ("Refcount width must be a power of two and may not exceed 64 bits");
    return -1;
  }
  return 0;
}

static int
parse_string (const char *value, const char **ret)
{
  *ret = nbdkit_strdup_intern (value);
  return *ret ? 0 : -1;
}

int
create_config (const char *key, const char *value)
{
  int r;

  if (strcmp (key, "create") == 0)
    return parse_switch (value, &create) == -1 ? -1 : 1;

  if (strcmp (key, "size") == 0) {
    int64_t size = nbdkit_parse_size (value);

    if (size == -1)
      return -1;
    copts.size = size;
    size_given = true;
    r = 0;
  }
  else if (strcmp (key, "cluster-size") == 0)
    r = parse_cluster_size (value);
  else if (strcmp (key, "compat") == 0)
    r = parse_choice (key, value, compat_choices, &copts.version);
  else if (strcmp (key, "compression-type") == 0)
    r = parse_choice (key, value, compression_type_choices,
                      &copts.compression_type);
  else if (strcmp (key, "extended-l2") == 0)
    r = parse_switch (value, &copts.extended_l2);
  else if (strcmp (key, "refcount-bits") == 0)
    r = parse_refcount_bits (value);
  else if (strcmp (key, "lazy-refcounts") == 0)
    r = parse_switch (value, &copts.lazy_refcounts);
  else if (strcmp (key, "backing-file") == 0)
    r = parse_string (value, &copts.backing_file);
  else if (strcmp (key, "backing-format") == 0)
    r = parse_string (value, &copts.backing_format);
  else if (strcmp (key, "data-file-raw") == 0)
    r = parse_switch (value, &copts.data_file_raw);
  else if (strcmp (key, "preallocation") == 0) {
    unsigned v = 0;

    r = parse_choice (key, value, preallocation_choices, &v);
    copts.preallocation = v;
  }
  else if (strcmp (key, "encrypt-format") == 0) {
    unsigned v = 0;

    r = parse_choice (key, value, encrypt_format_choices, &v);
    copts.encrypt = v;
  }
  else if (strcmp (key, "encrypt-iter-time") == 0)
    r = nbdkit_parse_uint32_t (key, value, &copts.encrypt_iter_time);
  else
    return 0;

  if (r == -1)
    return -1;
  option_given = nbdkit_strdup_intern (key);
  return 1;
}

int
create_config_check (void)
{
  if (!create) {
    if (option_given) {
      nbdkit_error ("%s= only applies to a new image: add create=true",
                    option_given);
      return -1;
    }
    return 0;
  }
  if (!size_given && copts.backing_file == NULL) {
    nbdkit_error ("create=true needs size= (or backing-file= to take its size)");
    return -1;
  }
  copts.size_from_backing = !size_given;
  return 0;
}

bool
create_requested (void)
{
  return create;
}

int
create_config_complete (const char *filename)
{
  if (create_config_check () == -1)
    return -1;
  if (!create)
    return 0;
  if (access (filename, F_OK) == 0) {
    nbdkit_debug ("%s exists: opening it as it is", filename);
    return 0;
  }
  if (errno != ENOENT) {
    nbdkit_error ("%s: %m", filename);
    return -1;
  }
  pending = true;
  return 0;
}

bool
create_pending (void)
{
  return pending;
}

int
create_image (const char *filename, const char *data_file,
              const char *passphrase)
{
  copts.filename = filename;
  copts.data_file = data_file;
  copts.passphrase = passphrase;
  if (qcow2_create (&copts) == -1)
    return -1;
  pending = false;
  return 0;
}

const char *
create_backing_file (void)
{
  return copts.backing_file;
}

int
create_image_on (struct io *image, struct io *backing, const char *passphrase)
{
  const struct qcow2_create_files files = {
    .image = image,
    .backing = backing,
  };

  copts.filename = image->name;
  copts.data_file = NULL;
  copts.passphrase = passphrase;
  return qcow2_create_on (&copts, &files);
}
