/* Sector encryption as dm-crypt does it: each sector is one message for
 * the block cipher mode, with an IV made from the sector number (always
 * counted in 512-byte units, see luks.h).
 *
 * IV generators (dm-crypt names): plain (32-bit little-endian), plain64
 * (64-bit little-endian), plain64be (64-bit big-endian at the end),
 * null (zero), essiv:HASH (plain64 encrypted with the block cipher keyed
 * by HASH(volume key)).
 *
 * gnutls handles carry state (key schedule, IV), so each thread gets its
 * own, created on first use and kept in thread-specific data; the
 * destructor frees them when the thread exits, luks_cipher_free frees
 * the rest.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "byte-order.h"
#include "diag.h"
#include "kdf.h"
#include "keymem.h"
#include "internal.h"
#include "luks.h"
#include "minmax.h"

#define IV_LEN 16               /* both AES and Camellia have 16-byte blocks */

enum iv_kind { IV_PLAIN, IV_PLAIN64, IV_PLAIN64BE, IV_NULL, IV_ESSIV };

struct handles {
  struct handles *next, *prev;
  struct luks_cipher *owner;
  gnutls_cipher_hd_t data;
  gnutls_cipher_hd_t essiv;     /* NULL unless IV_ESSIV */
};

struct luks_cipher {
  char name[96];                /* "aes-xts-plain64", for messages */
  gnutls_cipher_algorithm_t alg;
  enum iv_kind iv;
  uint32_t sector_size;
  uint8_t *key;                 /* key memory */
  size_t key_len;
  gnutls_cipher_algorithm_t essiv_alg;
  uint8_t *essiv_key;           /* key memory: HASH(key) */
  size_t essiv_key_len;

  pthread_key_t tls;
  pthread_mutex_t lock;         /* protects the list of all handles */
  struct handles *all;
};

/* Which gnutls algorithm implements cipher + chaining mode + key size. */
static gnutls_cipher_algorithm_t
find_algorithm (const char *cipher, const char *chain, size_t key_len)
{
  static const struct {
    const char *cipher, *chain;
    size_t key_len;
    gnutls_cipher_algorithm_t alg;
  } table[] = {
    { "aes", "cbc", 16, GNUTLS_CIPHER_AES_128_CBC },
    { "aes", "cbc", 24, GNUTLS_CIPHER_AES_192_CBC },
    { "aes", "cbc", 32, GNUTLS_CIPHER_AES_256_CBC },
    { "aes", "xts", 32, GNUTLS_CIPHER_AES_128_XTS },
    { "aes", "xts", 64, GNUTLS_CIPHER_AES_256_XTS },
    { "camellia", "cbc", 16, GNUTLS_CIPHER_CAMELLIA_128_CBC },
    { "camellia", "cbc", 24, GNUTLS_CIPHER_CAMELLIA_192_CBC },
    { "camellia", "cbc", 32, GNUTLS_CIPHER_CAMELLIA_256_CBC },
  };
  size_t i;

  for (i = 0; i < sizeof table / sizeof table[0]; ++i)
    if (strcmp (cipher, table[i].cipher) == 0 &&
        strcmp (chain, table[i].chain) == 0 &&
        key_len == table[i].key_len)
      return table[i].alg;
  return GNUTLS_CIPHER_UNKNOWN;
}

/* Parse "cbc-essiv:sha256" into chain "cbc", IV kind and ESSIV hash. */
static int
parse_mode (const char *mode, char *chain, size_t chain_size,
            enum iv_kind *iv, const struct luks_hash **essiv_hash)
{
  const char *dash = strchr (mode, '-');
  const char *ivmode;

  if (dash == NULL || (size_t) (dash - mode) >= chain_size)
    return -1;
  memcpy (chain, mode, dash - mode);
  chain[dash - mode] = '\0';
  ivmode = dash + 1;
  *essiv_hash = NULL;

  if (strcmp (ivmode, "plain") == 0)
    *iv = IV_PLAIN;
  else if (strcmp (ivmode, "plain64") == 0)
    *iv = IV_PLAIN64;
  else if (strcmp (ivmode, "plain64be") == 0)
    *iv = IV_PLAIN64BE;
  else if (strcmp (ivmode, "null") == 0)
    *iv = IV_NULL;
  else if (strncmp (ivmode, "essiv:", 6) == 0) {
    *iv = IV_ESSIV;
    *essiv_hash = luks_hash_lookup (ivmode + 6);
    if (*essiv_hash == NULL)
      return -1;
  }
  else
    return -1;
  return 0;
}

static int
setup_essiv (struct luks_cipher *c, const char *cipher,
             const struct luks_hash *hash)
{
  int r;

  c->essiv_key_len = hash->len;
  c->essiv_alg = find_algorithm (cipher, "cbc", hash->len);
  if (c->essiv_alg == GNUTLS_CIPHER_UNKNOWN) {
    diag_error ("luks: cipher \"%s\": ESSIV with %s needs %s with a "
                "%zu-bit key, which is not supported",
                c->name, hash->name, cipher, hash->len * 8);
    errno = ENOTSUP;
    return -1;
  }
  c->essiv_key = keymem_alloc (hash->len);
  if (c->essiv_key == NULL)
    return -1;
  r = gnutls_hash_fast (hash->digest, c->key, c->key_len, c->essiv_key);
  if (r < 0) {
    diag_error ("luks: ESSIV %s: %s", hash->name, gnutls_strerror (r));
    errno = EIO;
    return -1;
  }
  return 0;
}

static void free_thread_handles (void *hp);

static struct luks_cipher *
cipher_create (const char *cipher, const char *mode,
               const uint8_t *key, size_t key_len, uint32_t sector_size)
{
  struct luks_cipher *c;
  const struct luks_hash *essiv_hash;
  char chain[16];
  int e;

  /* dm-crypt's range of sector sizes. */
  if (sector_size < 512 || sector_size > 4096 ||
      (sector_size & (sector_size - 1)) != 0) {
    diag_error ("luks: sector size %" PRIu32 " is not supported "
                "(powers of two from 512 to 4096 are)", sector_size);
    errno = ENOTSUP;
    return NULL;
  }

  c = calloc (1, sizeof *c);
  if (c == NULL) {
    diag_error ("luks: calloc: %m");
    return NULL;
  }
  snprintf (c->name, sizeof c->name, "%s-%s", cipher, mode);
  c->sector_size = sector_size;
  c->key_len = key_len;

  if (parse_mode (mode, chain, sizeof chain, &c->iv, &essiv_hash) == -1) {
    diag_error ("luks: cipher mode \"%s\" is not supported "
                "(cipher \"%s\")", mode, c->name);
    free (c);
    errno = ENOTSUP;
    return NULL;
  }
  c->alg = find_algorithm (cipher, chain, key_len);
  if (c->alg == GNUTLS_CIPHER_UNKNOWN) {
    diag_error ("luks: cipher \"%s\" with a %zu-bit key is not supported",
                c->name, key_len * 8);
    free (c);
    errno = ENOTSUP;
    return NULL;
  }
  c->key = keymem_dup (key, key_len);
  if (c->key == NULL)
    goto err;
  if (c->iv == IV_ESSIV && setup_essiv (c, cipher, essiv_hash) == -1)
    goto err;

  pthread_mutex_init (&c->lock, NULL);
  e = pthread_key_create (&c->tls, free_thread_handles);
  if (e != 0) {
    pthread_mutex_destroy (&c->lock);
    errno = e;
    diag_error ("luks: pthread_key_create: %m");
    goto err;
  }
  return c;

 err:
  e = errno;
  keymem_free (c->essiv_key);
  keymem_free (c->key);
  free (c);
  errno = e;
  return NULL;
}

struct luks_cipher *
luks_cipher_new (const char *cipher, const char *mode,
                 const uint8_t *key, size_t key_len, uint32_t sector_size)
{
  return cipher_create (cipher, mode, key, key_len, sector_size);
}

struct luks_cipher *
luks_cipher_new_qcow_aes (const char *passphrase, size_t passphrase_len)
{
  uint8_t key[16] = { 0 };
  struct luks_cipher *c;

  memcpy (key, passphrase, MIN (passphrase_len, sizeof key));
  c = cipher_create ("aes", "cbc-plain64", key, sizeof key, 512);
  explicit_bzero (key, sizeof key);
  return c;
}

static void
destroy_handles (struct handles *h)
{
  if (h->data)
    gnutls_cipher_deinit (h->data);
  if (h->essiv)
    gnutls_cipher_deinit (h->essiv);
  free (h);
}

/* Thread exit: unlink this thread's handles from the owner's list. */
static void
free_thread_handles (void *hp)
{
  struct handles *h = hp;
  struct luks_cipher *c = h->owner;

  pthread_mutex_lock (&c->lock);
  if (h->prev)
    h->prev->next = h->next;
  else
    c->all = h->next;
  if (h->next)
    h->next->prev = h->prev;
  pthread_mutex_unlock (&c->lock);
  destroy_handles (h);
}

/* The caller guarantees no other thread still uses the cipher. */
void
luks_cipher_free (struct luks_cipher *c)
{
  struct handles *h, *next;

  if (c == NULL)
    return;
  pthread_key_delete (c->tls);
  for (h = c->all; h != NULL; h = next) {
    next = h->next;
    destroy_handles (h);
  }
  pthread_mutex_destroy (&c->lock);
  keymem_free (c->essiv_key);
  keymem_free (c->key);
  free (c);
}

uint32_t
luks_cipher_sector_size (const struct luks_cipher *c)
{
  return c->sector_size;
}

static int
init_handle (gnutls_cipher_hd_t *hd, gnutls_cipher_algorithm_t alg,
             uint8_t *key, size_t key_len, const char *name)
{
  gnutls_datum_t k = { .data = key, .size = key_len };
  uint8_t zero_iv[IV_LEN] = { 0 };
  gnutls_datum_t iv = { .data = zero_iv, .size = IV_LEN };
  int r;

  r = gnutls_cipher_init (hd, alg, &k, &iv);
  if (r < 0) {
    diag_error ("luks: cipher \"%s\": %s", name, gnutls_strerror (r));
    *hd = NULL;
    errno = r == GNUTLS_E_MEMORY_ERROR ? ENOMEM : EINVAL;
    return -1;
  }
  return 0;
}

/* This thread's handles, created on first use. */
static struct handles *
get_handles (struct luks_cipher *c)
{
  struct handles *h = pthread_getspecific (c->tls);
  int e;

  if (h)
    return h;
  h = calloc (1, sizeof *h);
  if (h == NULL) {
    diag_error ("luks: calloc: %m");
    return NULL;
  }
  h->owner = c;
  if (init_handle (&h->data, c->alg, c->key, c->key_len, c->name) == -1 ||
      (c->iv == IV_ESSIV &&
       init_handle (&h->essiv, c->essiv_alg, c->essiv_key, c->essiv_key_len,
                    c->name) == -1)) {
    e = errno;
    destroy_handles (h);
    errno = e;
    return NULL;
  }
  e = pthread_setspecific (c->tls, h);
  if (e != 0) {
    destroy_handles (h);
    errno = e;
    diag_error ("luks: pthread_setspecific: %m");
    return NULL;
  }
  pthread_mutex_lock (&c->lock);
  h->next = c->all;
  if (c->all)
    c->all->prev = h;
  c->all = h;
  pthread_mutex_unlock (&c->lock);
  return h;
}

static int
make_iv (const struct luks_cipher *c, struct handles *h, uint64_t sector,
         uint8_t iv[IV_LEN])
{
  memset (iv, 0, IV_LEN);
  switch (c->iv) {
  case IV_PLAIN:
    store_le32 (iv, (uint32_t) sector);
    break;
  case IV_PLAIN64:
    store_le64 (iv, sector);
    break;
  case IV_PLAIN64BE:
    store_be64 (iv + IV_LEN - 8, sector);
    break;
  case IV_NULL:
    break;
  case IV_ESSIV: {
    /* One block in CBC mode with a zero IV is one ECB block. */
    uint8_t zero[IV_LEN] = { 0 };
    int r;

    store_le64 (iv, sector);
    gnutls_cipher_set_iv (h->essiv, zero, IV_LEN);
    r = gnutls_cipher_encrypt2 (h->essiv, iv, IV_LEN, iv, IV_LEN);
    if (r < 0) {
      diag_error ("luks: ESSIV: %s", gnutls_strerror (r));
      errno = EIO;
      return -1;
    }
    break;
  }
  }
  return 0;
}

static int
crypt_sectors (struct luks_cipher *c, bool encrypt, uint64_t iv_sector,
               void *buf, size_t len)
{
  const uint64_t iv_step = c->sector_size / 512;
  struct handles *h;
  uint8_t *p = buf;
  uint8_t iv[IV_LEN];
  size_t pos;

  if (len % c->sector_size != 0) {
    diag_error ("luks: internal error: %zu bytes is not a whole number "
                "of %" PRIu32 "-byte sectors", len, c->sector_size);
    errno = EINVAL;
    return -1;
  }
  h = get_handles (c);
  if (h == NULL)
    return -1;

  for (pos = 0; pos < len; pos += c->sector_size, iv_sector += iv_step) {
    int r;

    if (make_iv (c, h, iv_sector, iv) == -1)
      return -1;
    gnutls_cipher_set_iv (h->data, iv, IV_LEN);
    if (encrypt)
      r = gnutls_cipher_encrypt2 (h->data, p + pos, c->sector_size,
                                  p + pos, c->sector_size);
    else
      r = gnutls_cipher_decrypt2 (h->data, p + pos, c->sector_size,
                                  p + pos, c->sector_size);
    if (r < 0) {
      diag_error ("luks: %s: %s", c->name, gnutls_strerror (r));
      errno = EIO;
      return -1;
    }
  }
  return 0;
}

int
luks_cipher_encrypt (struct luks_cipher *c, uint64_t iv_sector,
                     void *buf, size_t len)
{
  return crypt_sectors (c, true, iv_sector, buf, len);
}

int
luks_cipher_decrypt (struct luks_cipher *c, uint64_t iv_sector,
                     void *buf, size_t len)
{
  return crypt_sectors (c, false, iv_sector, buf, len);
}

int
luks_cipher_check (const char *cipher, const char *mode, size_t key_len)
{
  uint8_t zero_key[LUKS_MAX_KEY_BYTES] = { 0 };
  struct luks_cipher *c;

  if (key_len == 0 || key_len > sizeof zero_key) {
    diag_error ("luks: cipher \"%s-%s\" with a %zu-bit key is not supported",
                cipher, mode, key_len * 8);
    errno = ENOTSUP;
    return -1;
  }
  /* Creating a cipher checks everything and touches no gnutls handle. */
  c = cipher_create (cipher, mode, zero_key, key_len, 512);
  if (c == NULL)
    return -1;
  luks_cipher_free (c);
  return 0;
}
