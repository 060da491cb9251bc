/* LUKS2 JSON metadata (LUKS2 spec section 3), parsed with json-c.
 *
 * Every field used is checked for type and range; 64-bit numbers are
 * JSON strings of decimal digits, small ones JSON integers.  Features
 * this library cannot honour are refused by name: mandatory
 * requirements (online reencryption), more than one segment, integrity
 * protection.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "checked-overflow.h"
#include "diag.h"
#include "luks2.h"

#ifndef HAVE_JSONC

int
luks2_parse_metadata (const struct luks2_header *hdr, uint64_t header_offset,
                      uint64_t limit, struct luks2_metadata *md)
{
  diag_error ("luks: LUKS2 needs json-c, which this build does not have");
  errno = ENOTSUP;
  return -1;
}

#else /* HAVE_JSONC */

#include <json-c/json.h>

static int __attribute__ ((format (printf, 1, 2)))
bad (const char *fs, ...)
{
  char msg[256];
  va_list args;

  va_start (args, fs);
  vsnprintf (msg, sizeof msg, fs, args);
  va_end (args);
  diag_error ("luks: LUKS2 metadata: %s", msg);
  errno = EINVAL;
  return -1;
}

/* Member key of obj with the given type. */
static int
get (json_object *obj, const char *where, const char *key,
     json_type type, json_object **out)
{
  if (!json_object_object_get_ex (obj, key, out) ||
      !json_object_is_type (*out, type))
    return bad ("%s: \"%s\" is missing or not a%s %s", where, key,
                type == json_type_int || type == json_type_object ||
                type == json_type_array ? "n" : "",
                json_type_to_name (type));
  return 0;
}

static int
get_string (json_object *obj, const char *where, const char *key,
            char *out, size_t size)
{
  json_object *v;
  const char *s;

  if (get (obj, where, key, json_type_string, &v) == -1)
    return -1;
  s = json_object_get_string (v);
  if (strlen (s) >= size)
    return bad ("%s: \"%s\" is too long", where, key);
  strcpy (out, s);
  return 0;
}

/* A string of decimal digits (the spec's way to store 64-bit values). */
static int
parse_u64 (const char *s, uint64_t *out)
{
  uint64_t v = 0;

  if (*s == '\0')
    return -1;
  for (; *s; ++s) {
    if (*s < '0' || *s > '9' ||
        MUL_OVERFLOW (v, 10, &v) || ADD_OVERFLOW (v, (uint64_t) (*s - '0'), &v))
      return -1;
  }
  *out = v;
  return 0;
}

static int
get_u64_string (json_object *obj, const char *where, const char *key,
                uint64_t *out)
{
  json_object *v;

  if (get (obj, where, key, json_type_string, &v) == -1)
    return -1;
  if (parse_u64 (json_object_get_string (v), out) == -1)
    return bad ("%s: \"%s\" is not a decimal number", where, key);
  return 0;
}

static int
get_uint (json_object *obj, const char *where, const char *key,
          uint32_t min, uint32_t max, uint32_t *out)
{
  json_object *v;
  int64_t i;

  if (get (obj, where, key, json_type_int, &v) == -1)
    return -1;
  i = json_object_get_int64 (v);
  if (i < min || i > max)
    return bad ("%s: \"%s\" = %" PRIi64 " is out of range", where, key, i);
  *out = i;
  return 0;
}

static int
get_hash (json_object *obj, const char *where, const char *key,
          const struct luks_hash **out)
{
  char name[32];

  if (get_string (obj, where, key, name, sizeof name) == -1)
    return -1;
  *out = luks_hash_lookup (name);
  return *out ? 0 : -1;
}

static int
get_base64 (json_object *obj, const char *where, const char *key,
            uint8_t *out, size_t max, size_t *len)
{
  json_object *v;
  gnutls_datum_t in, dec = { NULL, 0 };
  int r;

  if (get (obj, where, key, json_type_string, &v) == -1)
    return -1;
  in.data = (unsigned char *) json_object_get_string (v);
  in.size = json_object_get_string_len (v);
  r = gnutls_base64_decode2 (&in, &dec);
  if (r < 0)
    return bad ("%s: \"%s\" is not valid base64", where, key);
  if (dec.size == 0 || dec.size > max) {
    gnutls_free (dec.data);
    return bad ("%s: \"%s\" has a bad length (%u bytes)", where, key, dec.size);
  }
  memcpy (out, dec.data, dec.size);
  *len = dec.size;
  gnutls_free (dec.data);
  return 0;
}

/* Keyslot and digest references are object keys "0".."31". */
static int
parse_id (const char *key, int *id)
{
  uint64_t v;

  if (parse_u64 (key, &v) == -1 || v >= LUKS2_MAX_KEYSLOTS)
    return -1;
  *id = v;
  return 0;
}

static int
split_encryption (const char *spec, char *cipher, char *mode)
{
  return luks_split_cipher_spec (spec, cipher, LUKS2_CIPHER_LEN,
                                 mode, LUKS2_CIPHER_LEN);
}

/* config: sizes and mandatory requirements. */
static int
parse_config (json_object *root, const struct luks2_header *hdr)
{
  json_object *config, *req, *mandatory;
  uint64_t json_size;
  size_t i;

  if (get (root, "root", "config", json_type_object, &config) == -1 ||
      get_u64_string (config, "config", "json_size", &json_size) == -1)
    return -1;
  if (json_size != hdr->json_area_size)
    return bad ("config: json_size %" PRIu64 " does not match the header "
                "(%zu)", json_size, hdr->json_area_size);

  if (!json_object_object_get_ex (config, "requirements", &req))
    return 0;
  if (!json_object_object_get_ex (req, "mandatory", &mandatory))
    return 0;
  if (!json_object_is_type (mandatory, json_type_array))
    return bad ("config: requirements.mandatory is not an array");
  for (i = 0; i < json_object_array_length (mandatory); ++i) {
    json_object *r = json_object_array_get_idx (mandatory, i);
    const char *name;

    /* A null element has no string (json_object_get_string: NULL). */
    if (!json_object_is_type (r, json_type_string))
      return bad ("config: requirements.mandatory[%zu] is not a string", i);
    name = json_object_get_string (r);
    if (strncmp (name, "online-reencrypt", 16) == 0)
      diag_error ("luks: LUKS2 reencryption is in progress (requirement "
                  "\"%s\"): finish it with cryptsetup first", name);
    else
      diag_error ("luks: LUKS2 requirement \"%s\" is not supported", name);
    errno = ENOTSUP;
    return -1;
  }
  return 0;
}

static int
parse_segment (json_object *root, const struct luks2_header *hdr,
               struct luks2_metadata *md, char *seg_id, size_t seg_id_size)
{
  json_object *segments, *integrity;
  json_object *seg = NULL;
  char type[32], enc[2 * LUKS2_CIPHER_LEN], size[24];
  int n = 0;

  if (get (root, "root", "segments", json_type_object, &segments) == -1)
    return -1;
  json_object_object_foreach (segments, key, val) {
    if (++n == 1 && strlen (key) < seg_id_size) {
      strcpy (seg_id, key);
      seg = val;
    }
  }
  if (n == 0)
    return bad ("no data segment");
  if (n > 1) {
    diag_error ("luks: LUKS2 volume has %d data segments: reencryption "
                "is in progress or was interrupted, which is not supported",
                n);
    errno = ENOTSUP;
    return -1;
  }
  if (seg == NULL || !json_object_is_type (seg, json_type_object))
    return bad ("segment is not an object");

  if (get_string (seg, "segment", "type", type, sizeof type) == -1)
    return -1;
  if (strcmp (type, "crypt") != 0) {
    diag_error ("luks: LUKS2 segment type \"%s\" is not supported", type);
    errno = ENOTSUP;
    return -1;
  }
  if (json_object_object_get_ex (seg, "integrity", &integrity)) {
    json_object *t;
    const char *name = "?";

    if (json_object_object_get_ex (integrity, "type", &t) &&
        json_object_is_type (t, json_type_string))
      name = json_object_get_string (t);
    diag_error ("luks: LUKS2 integrity protection (\"%s\") is not supported",
                name);
    errno = ENOTSUP;
    return -1;
  }
  if (get_u64_string (seg, "segment", "offset", &md->seg_offset) == -1 ||
      get_u64_string (seg, "segment", "iv_tweak", &md->iv_tweak) == -1 ||
      get_string (seg, "segment", "size", size, sizeof size) == -1 ||
      get_string (seg, "segment", "encryption", enc, sizeof enc) == -1 ||
      get_uint (seg, "segment", "sector_size", 512, 4096,
                &md->sector_size) == -1)
    return -1;
  if ((md->sector_size & (md->sector_size - 1)) != 0)
    return bad ("segment: sector_size %" PRIu32 " is not a power of 2",
                md->sector_size);
  if (strcmp (size, "dynamic") == 0)
    md->seg_size = 0;
  else if (parse_u64 (size, &md->seg_size) == -1 || md->seg_size == 0 ||
           md->seg_size % md->sector_size != 0)
    return bad ("segment: bad size \"%s\"", size);
  if (md->seg_offset < 2 * hdr->hdr_size) {
    diag_error ("luks: LUKS2 data segment at offset %" PRIu64 " overlaps "
                "the headers: volumes with a detached header are not "
                "supported", md->seg_offset);
    errno = ENOTSUP;
    return -1;
  }
  if (md->seg_offset % 512 != 0)
    return bad ("segment: offset %" PRIu64 " is not sector-aligned",
                md->seg_offset);
  return split_encryption (enc, md->cipher, md->mode);
}

/* An array of id strings ("0", "1") as a bit mask. */
static int
get_id_mask (json_object *obj, const char *where, const char *key,
             uint32_t *mask)
{
  json_object *arr;
  size_t i;
  int id;

  if (get (obj, where, key, json_type_array, &arr) == -1)
    return -1;
  *mask = 0;
  for (i = 0; i < json_object_array_length (arr); ++i) {
    json_object *e = json_object_array_get_idx (arr, i);

    if (!json_object_is_type (e, json_type_string) ||
        parse_id (json_object_get_string (e), &id) == -1)
      return bad ("%s: bad id in \"%s\"", where, key);
    *mask |= UINT32_C (1) << id;
  }
  return 0;
}

static bool
string_in_array (json_object *arr, const char *s)
{
  size_t i;

  for (i = 0; i < json_object_array_length (arr); ++i) {
    json_object *e = json_object_array_get_idx (arr, i);
    if (json_object_is_type (e, json_type_string) &&
        strcmp (json_object_get_string (e), s) == 0)
      return true;
  }
  return false;
}

/* The pbkdf2 digest that covers the segment. */
static int
parse_digest (json_object *root, const char *seg_id, struct luks2_metadata *md)
{
  json_object *digests, *found = NULL;
  char type[32];

  if (get (root, "root", "digests", json_type_object, &digests) == -1)
    return -1;
  json_object_object_foreach (digests, key, val) {
    json_object *segs;

    (void) key;
    if (json_object_is_type (val, json_type_object) &&
        json_object_object_get_ex (val, "segments", &segs) &&
        json_object_is_type (segs, json_type_array) &&
        string_in_array (segs, seg_id)) {
      found = val;
      break;
    }
  }
  if (found == NULL)
    return bad ("no digest for segment %s", seg_id);

  if (get_string (found, "digest", "type", type, sizeof type) == -1)
    return -1;
  if (strcmp (type, "pbkdf2") != 0) {
    diag_error ("luks: LUKS2 digest type \"%s\" is not supported", type);
    errno = ENOTSUP;
    return -1;
  }
  return get_id_mask (found, "digest", "keyslots", &md->digest_keyslots) == -1 ||
    get_hash (found, "digest", "hash", &md->digest_hash) == -1 ||
    get_uint (found, "digest", "iterations", 1, UINT32_MAX,
              &md->digest_iterations) == -1 ||
    get_base64 (found, "digest", "salt", md->digest_salt,
                sizeof md->digest_salt, &md->digest_salt_len) == -1 ||
    get_base64 (found, "digest", "digest", md->digest,
                sizeof md->digest, &md->digest_len) == -1 ? -1 : 0;
}

static int
parse_kdf (json_object *ks, struct luks2_keyslot *k)
{
  json_object *kdf;
  char type[32];

  if (get (ks, "keyslot", "kdf", json_type_object, &kdf) == -1 ||
      get_string (kdf, "kdf", "type", type, sizeof type) == -1 ||
      get_base64 (kdf, "kdf", "salt", k->salt, sizeof k->salt,
                  &k->salt_len) == -1)
    return -1;
  if (strcmp (type, "pbkdf2") == 0) {
    k->kdf = LUKS2_KDF_PBKDF2;
    return get_hash (kdf, "kdf", "hash", &k->kdf_hash) == -1 ||
      get_uint (kdf, "kdf", "iterations", 1, UINT32_MAX,
                &k->iterations) == -1 ? -1 : 0;
  }
  if (strcmp (type, "argon2i") == 0 || strcmp (type, "argon2id") == 0) {
    k->kdf = strcmp (type, "argon2id") == 0 ? LUKS2_KDF_ARGON2ID
                                                : LUKS2_KDF_ARGON2I;
    /* cryptsetup's own limits: 4 GiB of memory, 16 threads. */
    return get_uint (kdf, "kdf", "time", 1, UINT32_MAX, &k->time) == -1 ||
      get_uint (kdf, "kdf", "memory", 8, 4 * 1024 * 1024, &k->memory) == -1 ||
      get_uint (kdf, "kdf", "cpus", 1, 16, &k->cpus) == -1 ? -1 : 0;
  }
  diag_error ("luks: LUKS2 key derivation \"%s\" is not supported", type);
  errno = ENOTSUP;
  return -1;
}

static int
parse_keyslot (json_object *ks, int id, uint64_t header_offset,
               uint64_t limit, const struct luks2_header *hdr,
               uint64_t md_seg_offset, struct luks2_keyslot *k)
{
  json_object *af, *area, *prio;
  char type[32], enc[2 * LUKS2_CIPHER_LEN];
  uint64_t need;

  if (get_uint (ks, "keyslot", "key_size", 1, LUKS_MAX_KEY_BYTES,
                &k->key_size) == -1 ||
      get (ks, "keyslot", "af", json_type_object, &af) == -1 ||
      get (ks, "keyslot", "area", json_type_object, &area) == -1 ||
      get_string (af, "af", "type", type, sizeof type) == -1)
    return -1;
  if (strcmp (type, "luks1") != 0) {
    diag_error ("luks: LUKS2 keyslot %d: anti-forensic type \"%s\" is not "
                "supported", id, type);
    errno = ENOTSUP;
    return -1;
  }
  if (get_uint (af, "af", "stripes", LUKS_STRIPES, LUKS_STRIPES,
                &k->stripes) == -1 ||
      get_hash (af, "af", "hash", &k->af_hash) == -1 ||
      get_string (area, "area", "type", type, sizeof type) == -1)
    return -1;
  if (strcmp (type, "raw") != 0) {
    diag_error ("luks: LUKS2 keyslot %d: area type \"%s\" is not supported",
                id, type);
    errno = ENOTSUP;
    return -1;
  }
  if (get_u64_string (area, "area", "offset", &k->area_offset) == -1 ||
      get_u64_string (area, "area", "size", &k->area_size) == -1 ||
      get_string (area, "area", "encryption", enc, sizeof enc) == -1 ||
      get_uint (area, "area", "key_size", 1, LUKS_MAX_KEY_BYTES,
                &k->area_key_size) == -1 ||
      split_encryption (enc, k->area_cipher, k->area_mode) == -1)
    return -1;

  need = luks_keyslot_area_length (k->key_size, k->stripes);
  if (k->area_size < need)
    return bad ("keyslot %d: area of %" PRIu64 " bytes is too small "
                "(%" PRIu64 " needed)", id, k->area_size, need);
  if (k->area_offset < 2 * hdr->hdr_size || k->area_offset % LUKS_SECTOR)
    return bad ("keyslot %d: area offset %" PRIu64 " is invalid",
                id, k->area_offset);
  if (!range_within (k->area_offset, need, md_seg_offset))
    return bad ("keyslot %d: area at %" PRIu64 " overlaps the data segment",
                id, k->area_offset);
  if (!range_within (header_offset, k->area_offset, limit) ||
      !range_within (header_offset + k->area_offset, need, limit)) {
    diag_error ("luks: LUKS2 keyslot %d: key material (%" PRIu64 " bytes at "
                "offset %" PRIu64 ") lies beyond the end of the device: "
                "is it truncated?", id, need, k->area_offset);
    errno = EINVAL;
    return -1;
  }

  k->priority = 1;
  if (json_object_object_get_ex (ks, "priority", &prio)) {
    if (!json_object_is_type (prio, json_type_int) ||
        json_object_get_int64 (prio) < 0 || json_object_get_int64 (prio) > 2)
      return bad ("keyslot %d: bad priority", id);
    k->priority = json_object_get_int64 (prio);
  }
  if (parse_kdf (ks, k) == -1)
    return -1;
  k->present = true;
  return 0;
}

/* Only keyslots of type "luks2" hold the volume key; others
 * ("reencrypt") are skipped.
 */
static int
parse_keyslots (json_object *root, uint64_t header_offset, uint64_t limit,
                const struct luks2_header *hdr, struct luks2_metadata *md)
{
  json_object *keyslots;

  if (get (root, "root", "keyslots", json_type_object, &keyslots) == -1)
    return -1;
  json_object_object_foreach (keyslots, key, val) {
    json_object *t;
    int id;

    if (parse_id (key, &id) == -1 ||
        !json_object_is_type (val, json_type_object))
      return bad ("bad keyslot \"%s\"", key);
    if (!json_object_object_get_ex (val, "type", &t) ||
        !json_object_is_type (t, json_type_string))
      return bad ("keyslot %d: no type", id);
    if (strcmp (json_object_get_string (t), "luks2") != 0) {
      diag_debug ("luks: LUKS2 keyslot %d of type \"%s\" skipped",
                  id, json_object_get_string (t));
      continue;
    }
    if (parse_keyslot (val, id, header_offset, limit, hdr, md->seg_offset,
                       &md->keyslots[id]) == -1)
      return -1;
  }
  return 0;
}

static void
parse_tokens (json_object *root, struct luks2_metadata *md)
{
  json_object *tokens;

  md->n_tokens = 0;
  if (!json_object_object_get_ex (root, "tokens", &tokens) ||
      !json_object_is_type (tokens, json_type_object))
    return;
  json_object_object_foreach (tokens, key, val) {
    json_object *t;

    (void) key;
    if (md->n_tokens++ == 0 &&
        json_object_object_get_ex (val, "type", &t) &&
        json_object_is_type (t, json_type_string))
      snprintf (md->token_type, sizeof md->token_type, "%s",
                json_object_get_string (t));
  }
}

/* json-c switches the thread to a copy of its current locale with
 * LC_NUMERIC "C" for every parse, which takes glibc's global locale
 * lock unless the thread already uses the "C" locale object.  Run the
 * parse in that object: JSON is locale-independent anyway, and this
 * keeps clear of that lock, which is left broken in processes where
 * libasan is preloaded (p11-kit's constructor calls newlocale before
 * ASan has initialised, and ASan's lazy start-up re-enters the lock).
 * newlocale (LC_ALL_MASK, "C", 0) returns the static object and
 * takes no lock.
 */
static json_object *
parse_in_c_locale (json_tokener *tok, const char *text)
{
  locale_t c = newlocale (LC_ALL_MASK, "C", (locale_t) 0);
  locale_t old = c ? uselocale (c) : (locale_t) 0;
  json_object *root;

  root = json_tokener_parse_ex (tok, text, strlen (text));
  if (c) {
    uselocale (old);
    freelocale (c);
  }
  return root;
}

int
luks2_parse_metadata (const struct luks2_header *hdr, uint64_t header_offset,
                      uint64_t limit, struct luks2_metadata *md)
{
  json_tokener *tok;
  json_object *root;
  char seg_id[16];
  int r = -1;

  memset (md, 0, sizeof *md);
  tok = json_tokener_new ();
  if (tok == NULL) {
    diag_error ("luks: json_tokener_new failed");
    errno = ENOMEM;
    return -1;
  }
  root = parse_in_c_locale (tok, hdr->json);
  if (root == NULL || json_tokener_get_error (tok) != json_tokener_success) {
    bad ("not valid JSON: %s",
         json_tokener_error_desc (json_tokener_get_error (tok)));
    goto out;
  }
  if (!json_object_is_type (root, json_type_object)) {
    bad ("the top level is not an object");
    goto out;
  }
  if (parse_config (root, hdr) == -1 ||
      parse_segment (root, hdr, md, seg_id, sizeof seg_id) == -1 ||
      parse_digest (root, seg_id, md) == -1 ||
      parse_keyslots (root, header_offset, limit, hdr, md) == -1)
    goto out;
  parse_tokens (root, md);
  r = 0;
 out:
  json_object_put (root);
  json_tokener_free (tok);
  return r;
}

#endif /* HAVE_JSONC */
