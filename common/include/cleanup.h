/* Scope-bound cleanup, as in nbdkit: CLEANUP_FREE char *p = ...; */
#ifndef CLEANUP_H
#define CLEANUP_H

#include <pthread.h>
#include <stdlib.h>

static inline void
cleanup_free (void *ptr)
{
  free (*(void **) ptr);
}
#define CLEANUP_FREE __attribute__ ((cleanup (cleanup_free)))

static inline void
cleanup_unlock (pthread_mutex_t **mp)
{
  if (*mp)
    pthread_mutex_unlock (*mp);
}

/* Hold a mutex until the end of the enclosing scope. */
#define LOCK_GUARD_NAME_(line) lock_guard_##line
#define LOCK_GUARD_NAME(line) LOCK_GUARD_NAME_ (line)
#define SCOPED_LOCK(mutex) \
  __attribute__ ((cleanup (cleanup_unlock))) pthread_mutex_t *LOCK_GUARD_NAME (__LINE__) = \
    (pthread_mutex_lock (mutex), (mutex))

#endif /* CLEANUP_H */
