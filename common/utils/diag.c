#include <config.h>

#include <stdio.h>

#include "diag.h"

static void
default_error (const char *fs, va_list args)
{
  vfprintf (stderr, fs, args);
  fputc ('\n', stderr);
}

static diag_fn error_fn = default_error;
static diag_fn debug_fn;

void
diag_set_handlers (diag_fn error, diag_fn debug)
{
  error_fn = error ? error : default_error;
  debug_fn = debug;
}

void
diag_error (const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  error_fn (fs, args);
  va_end (args);
}

void
diag_debug (const char *fs, ...)
{
  va_list args;

  if (!debug_fn)
    return;
  va_start (args, fs);
  debug_fn (fs, args);
  va_end (args);
}
