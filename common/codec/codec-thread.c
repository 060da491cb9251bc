/* Per-thread codec contexts.
 *
 * Compression contexts are expensive to make (zlib's deflate state is
 * ~270 KiB, ISA-L's level buffer ~300 KiB), so each thread makes each
 * one on first use and keeps it until it exits.  One pthread key holds
 * a small table of slots; its destructor frees whatever the thread
 * made.
 */

#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "codec-internal.h"

struct thread_slot {
  void *ctx;
  void (*destroy) (void *);
};

struct thread_contexts {
  struct thread_slot slot[CODEC_NR_SLOTS];
};

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t key;
static int key_error;           /* errno from pthread_key_create, or 0 */
static bool key_created;

static void
free_thread_contexts (void *p)
{
  struct thread_contexts *t = p;
  size_t i;

  for (i = 0; i < CODEC_NR_SLOTS; ++i)
    if (t->slot[i].ctx)
      t->slot[i].destroy (t->slot[i].ctx);
  free (t);
}

static void
create_key (void)
{
  key_error = pthread_key_create (&key, free_thread_contexts);
  key_created = key_error == 0;
}

static struct thread_contexts *
get_thread_contexts (void)
{
  struct thread_contexts *t;
  int r;

  pthread_once (&key_once, create_key);
  if (!key_created) {
    errno = key_error;
    return NULL;
  }

  t = pthread_getspecific (key);
  if (t)
    return t;

  t = calloc (1, sizeof *t);
  if (t == NULL)
    return NULL;
  r = pthread_setspecific (key, t);
  if (r != 0) {
    free (t);
    errno = r;
    return NULL;
  }
  return t;
}

void *
codec_thread_context (enum codec_slot slot,
                      void *(*create) (void), void (*destroy) (void *))
{
  struct thread_contexts *t = get_thread_contexts ();

  if (t == NULL)
    return NULL;
  if (t->slot[slot].ctx == NULL) {
    t->slot[slot].ctx = create ();
    if (t->slot[slot].ctx == NULL)
      return NULL;
    t->slot[slot].destroy = destroy;
  }
  return t->slot[slot].ctx;
}

/* When the module is unloaded, a thread that still holds contexts would
 * later call a destructor that is no longer mapped.  Free the unloading
 * thread's contexts and delete the key so that cannot happen; contexts
 * of other live threads (normally none: nbdkit joins its threads before
 * unloading) are leaked rather than crashed on.
 */
__attribute__ ((destructor))
static void
codec_thread_unload (void)
{
  struct thread_contexts *t;

  if (!key_created)
    return;
  t = pthread_getspecific (key);
  if (t) {
    pthread_setspecific (key, NULL);
    free_thread_contexts (t);
  }
  pthread_key_delete (key);
  key_created = false;
}
