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

/* Hold a mutex until the end of the enclosing scope.  The guard is
 * never named, so it is marked unused (clang warns otherwise).
 */
#define LOCK_GUARD_NAME_(line) lock_guard_##line
#define LOCK_GUARD_NAME(line) LOCK_GUARD_NAME_ (line)
#define SCOPED_LOCK(mutex) \
  __attribute__ ((cleanup (cleanup_unlock), unused)) \
  pthread_mutex_t *LOCK_GUARD_NAME (__LINE__) = \
    (pthread_mutex_lock (mutex), (mutex))

/* The same for a read-write lock, held shared (SCOPED_RDLOCK) or
 * exclusively (SCOPED_WRLOCK) until the end of the enclosing scope.
 * The lock expression is evaluated once.  A callee may drop and retake
 * the lock meanwhile, as long as it holds it again when it returns.
 */
static inline void
cleanup_rwlock_unlock (pthread_rwlock_t **lp)
{
  if (*lp)
    pthread_rwlock_unlock (*lp);
}

static inline pthread_rwlock_t *
rwlock_take_shared (pthread_rwlock_t *lock)
{
  pthread_rwlock_rdlock (lock);
  return lock;
}

static inline pthread_rwlock_t *
rwlock_take_exclusive (pthread_rwlock_t *lock)
{
  pthread_rwlock_wrlock (lock);
  return lock;
}

#define SCOPED_RWLOCK_(lock, take) \
  __attribute__ ((cleanup (cleanup_rwlock_unlock), unused)) \
  pthread_rwlock_t *LOCK_GUARD_NAME (__LINE__) = take (lock)
#define SCOPED_RDLOCK(lock) SCOPED_RWLOCK_ (lock, rwlock_take_shared)
#define SCOPED_WRLOCK(lock) SCOPED_RWLOCK_ (lock, rwlock_take_exclusive)

#endif /* CLEANUP_H */
