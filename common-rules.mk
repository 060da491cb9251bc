# Included by every Makefile.am: one set of flags for the whole tree.

AM_CPPFLAGS = \
	-I$(top_srcdir)/common/include \
	-I$(top_srcdir)/common/utils \
	-I$(top_srcdir)/common/io \
	-I$(top_srcdir)/common/codec \
	-I$(top_srcdir)/common/qcow2 \
	-I$(top_srcdir)/common/luks \
	-I$(top_builddir)

AM_CFLAGS = $(WARNINGS_CFLAGS) $(SANITIZER_CFLAGS) $(PTHREAD_CFLAGS)
AM_LDFLAGS = $(SANITIZER_CFLAGS) $(PTHREAD_LIBS)

# nbdkit modules: loadable, no version suffix, only the nbdkit entry point exported.
module_ldflags = -module -avoid-version -shared -no-undefined \
	-Wl,--version-script=$(top_srcdir)/common/module.syms

# nbdkit dlclose()s modules at exit, before LeakSanitizer runs; keep ours
# mapped in the sanitizer build so leak reports can name their frames.
if SANITIZERS
module_ldflags += -Wl,-z,nodelete
endif
