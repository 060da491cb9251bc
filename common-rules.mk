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

# nbdkit loads the .so files alone: libtool's .la files have no place in
# its directories.  Without them libtool's uninstall removes only the
# .la name, so the .so goes by hand.
install-data-hook:
	@for la in $(plugin_LTLIBRARIES); do rm -f "$(DESTDIR)$(plugindir)/$$la"; done
	@for la in $(filter_LTLIBRARIES); do rm -f "$(DESTDIR)$(filterdir)/$$la"; done
uninstall-hook:
	@for la in $(plugin_LTLIBRARIES); do rm -f "$(DESTDIR)$(plugindir)/$${la%.la}.so"; done
	@for la in $(filter_LTLIBRARIES); do rm -f "$(DESTDIR)$(filterdir)/$${la%.la}.so"; done

# `make check TESTS="test-luks test-foo.bats"` from the top: a TESTS on
# the command line reaches every directory, and each runs only the tests
# of that list that are its own (programs it builds, scripts it has).
# Without a TESTS on the command line, configure's CHECK_TESTS (make
# distcheck's quick subset) narrows make check in the same way.
# ($(eval) rather than ifneq, which automake would take for its own if.)
tests_from_command_line := $(filter command line,$(origin TESTS))
tests_selected := $(strip $(if $(tests_from_command_line),$(TESTS),$(CHECK_TESTS)))
$(if $(tests_selected),$(eval override TESTS = $$(filter \
	$$(check_PROGRAMS) $$(check_SCRIPTS) $$(notdir $$(wildcard $$(srcdir)/*)), \
	$$(tests_selected))))
