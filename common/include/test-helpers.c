/* Unit tests for the header-only helpers. */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "byte-order.h"
#include "checked-overflow.h"
#include "cleanup.h"
#include "is-zero.h"
#include "minmax.h"
#include "rounding.h"

/* The scoped read-write locks let go at the end of their scope. */
static void
test_scoped_rwlocks (void)
{
  pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;

  {
    SCOPED_RDLOCK (&lock);
    assert (pthread_rwlock_trywrlock (&lock) == EBUSY);
    assert (pthread_rwlock_tryrdlock (&lock) == 0);
    pthread_rwlock_unlock (&lock);
  }
  {
    SCOPED_WRLOCK (&lock);
    assert (pthread_rwlock_tryrdlock (&lock) != 0);
  }
  assert (pthread_rwlock_trywrlock (&lock) == 0);
  pthread_rwlock_unlock (&lock);
  pthread_rwlock_destroy (&lock);
}

int
main (void)
{
  unsigned char b[16];
  uint64_t r;
  char z[100] = { 0 };

  store_be64 (b, 0x0102030405060708ULL);
  assert (b[0] == 1 && b[7] == 8);
  assert (load_be64 (b) == 0x0102030405060708ULL);
  store_be32 (b, 0xdeadbeef);
  assert (b[0] == 0xde && load_be32 (b) == 0xdeadbeef);
  store_be16 (b, 0x1234);
  assert (b[1] == 0x34 && load_be16 (b) == 0x1234);
  store_le64 (b, 0x0102030405060708ULL);
  assert (b[0] == 8 && load_le64 (b) == 0x0102030405060708ULL);

  assert (!ADD_OVERFLOW (UINT64_MAX - 1, 1, &r) && r == UINT64_MAX);
  assert (ADD_OVERFLOW (UINT64_MAX, 1, &r));
  assert (MUL_OVERFLOW ((uint64_t) 1 << 40, (uint64_t) 1 << 40, &r));
  assert (range_within (10, 5, 15));
  assert (!range_within (10, 6, 15));
  assert (!range_within (UINT64_MAX, 2, UINT64_MAX));

  assert (ROUND_UP ((uint64_t) 65537, 65536) == 131072);
  assert (ROUND_DOWN ((uint64_t) 65537, 65536) == 65536);
  assert (IS_ALIGNED (4096, 512) && !IS_ALIGNED (4097, 512));
  assert (is_power_of_2 (1) && is_power_of_2 (1 << 21) && !is_power_of_2 (0) && !is_power_of_2 (6));
  assert (MIN (3, 4) == 3 && MAX (3, 4) == 4);

  assert (is_zero (z, sizeof z));
  assert (is_zero (z, 0));
  z[99] = 1;
  assert (!is_zero (z, sizeof z));
  z[99] = 0;
  z[3] = 1;
  assert (!is_zero (z, 10));

  test_scoped_rwlocks ();

  printf ("test-helpers: ok\n");
  return 0;
}
