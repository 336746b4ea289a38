# ferry: build, test, bench, install.
#
#   make                       build/ferry and build/plugins/*.so
#   make deps                  install missing Debian packages (apt-get)
#   make test                  unit + integration tests
#   make SANITIZER=address,undefined test
#   make bench-core | bench    benchmarks
#   make demo                  the Schematic -> Redis pipeline on loopback
#   make install PREFIX=/usr/local
#
# New files need no Makefile edit: core/*.c form the daemon,
# plugins/<kind>_<name>/*.c one plugin each (extra libraries in that folder's
# plugin.mk as <kind>_<name>_LIBS), plugins/lib/<name>/*.c a static library
# any plugin may link, tests/unit/test_*.c one cmocka binary each,
# tests/plugins/*.c one fixture plugin each, tests/oracle/*.c the test
# oracle library, tests/support/<tool>/*.c one helper program each.

PREFIX ?= /usr/local
BUILD ?= build
CC ?= cc
VERSION := 0.1.0

# libsystemd: sd_notify() for the unit's Type=notify (core/main.c).
PKGS := libwebsockets hiredis inih jansson libcurl openssl libsystemd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wformat=2 -Wvla -Wno-unused-parameter
OPT ?= -O2
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -MMD -MP \
               -Iinclude -pthread $(PKG_CFLAGS) \
               -DFERRY_VERSION=\"$(VERSION)\" \
               -DFERRY_PLUGIN_DIR=\"$(PREFIX)/lib/ferry/plugins\"
ifeq ($(WERROR),1)
CFLAGS_BASE += -Werror
endif

# -z defs proves a plugin needs nothing from the core but the host table;
# sanitizer runtimes leave their symbols undefined, so it goes there.
PLUGIN_LDFLAGS := -shared -Wl,-z,defs
ifneq ($(SANITIZER),)
CFLAGS_BASE += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer \
               -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZER)
PLUGIN_LDFLAGS := -shared
endif

CFLAGS_ALL = $(CFLAGS_BASE) $(CFLAGS)
PIC := -fPIC -fvisibility=hidden
# The core and the tests see core/; plugins never do.
CORE_CFLAGS_ALL = $(CFLAGS_ALL) -iquote core
PLUGIN_CFLAGS_ALL = $(CFLAGS_ALL) $(PLUGIN_CFLAGS)
TEST_CFLAGS_ALL = $(CFLAGS_ALL) -iquote core -Iplugins/lib -Itests/oracle
CORE_LIBS := $(PKG_LIBS) -ldl -lm -pthread

# ---- core -----------------------------------------------------------------

CORE_SRC := $(wildcard core/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
CORE_LIB_OBJ := $(filter-out $(BUILD)/core/main.o,$(CORE_OBJ))

all: $(BUILD)/ferry plugins testsupport

$(BUILD)/ferry: $(CORE_OBJ)
	$(CC) $(CORE_CFLAGS_ALL) $(LDFLAGS) -o $@ $^ $(CORE_LIBS)

$(BUILD)/libferry-core.a: $(CORE_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/core/%.o: core/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CORE_CFLAGS_ALL) -c -o $@ $<

# ---- plugin libraries and plugins ----------------------------------------
#
# plugins/lib/<name>/*.c is one static library, libferry-<name>.a, that any
# plugin may link: json (the JSON reader and writer), schematic (the
# Schematic model, frames, keys), redis (connections, pipelines, lock and
# cursor), ws (the RFC 6455 client codec). Plugins and libraries see
# include/ and plugins/lib/ only, never core/: a plugin reaches the core
# through the host table alone (tests/integration/layout.sh checks it).

PLUGIN_CFLAGS := -Iplugins/lib $(PIC)

LIB_NAMES := $(notdir $(patsubst %/,%,$(wildcard plugins/lib/*/)))
# Link order: a library before the ones it uses.
LIB_ORDER := $(filter $(LIB_NAMES),schematic redis ws json) \
             $(filter-out schematic redis ws json,$(LIB_NAMES))
LIB_ARS := $(LIB_ORDER:%=$(BUILD)/plugins/lib/libferry-%.a)

define lib_rule
$(BUILD)/plugins/lib/libferry-$(1).a: $(patsubst %.c,$(BUILD)/%.o,$(wildcard plugins/lib/$(1)/*.c))
	@rm -f $$@
	@mkdir -p $$(dir $$@)
	ar rcs $$@ $$^
endef
$(foreach l,$(LIB_NAMES),$(eval $(call lib_rule,$(l))))

PLUGIN_DIRS := $(patsubst %/,%,$(wildcard plugins/*_*/))
PLUGIN_NAMES := $(notdir $(PLUGIN_DIRS))
PLUGIN_SOS := $(PLUGIN_NAMES:%=$(BUILD)/plugins/%.so)

-include $(wildcard plugins/*/plugin.mk)

$(BUILD)/plugins/%.o: plugins/%.c
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS_ALL) -c -o $@ $<

define plugin_rule
$(BUILD)/plugins/$(1).so: $(patsubst %.c,$(BUILD)/%.o,$(wildcard plugins/$(1)/*.c)) $(LIB_ARS)
	$$(CC) $$(PLUGIN_CFLAGS_ALL) $$(LDFLAGS) $(PLUGIN_LDFLAGS) -o $$@ \
	    $(patsubst %.c,$(BUILD)/%.o,$(wildcard plugins/$(1)/*.c)) \
	    $(LIB_ARS) $$($(1)_LIBS) -lc
endef
$(foreach p,$(PLUGIN_NAMES),$(eval $(call plugin_rule,$(p))))

plugins: $(PLUGIN_SOS)

# ---- test support: fixture plugins, the oracle, helper programs -----------

FIXTURE_SRC := $(wildcard tests/plugins/*.c)
FIXTURE_SOS := $(FIXTURE_SRC:tests/plugins/%.c=$(BUILD)/tests/plugins/%.so)

$(BUILD)/tests/plugins/%.so: tests/plugins/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(PIC) $(LDFLAGS) $(PLUGIN_LDFLAGS) -o $@ $< -lc

# tests/oracle/*.c: independent implementations the product is compared
# with (the jansson-tree Schematic normaliser and merge), for the unit
# tests, the fuzzers and the test server's expected state.
ORACLE_SRC := $(wildcard tests/oracle/*.c)
ORACLE_LIB := $(BUILD)/tests/liboracle.a

$(BUILD)/tests/oracle/%.o: tests/oracle/%.c
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS_ALL) -c -o $@ $<

$(ORACLE_LIB): $(ORACLE_SRC:%.c=$(BUILD)/%.o)
	@rm -f $@
	@mkdir -p $(dir $@)
	ar rcs $@ $^

# Only folders with C sources are programs (others hold scripts).
SUPPORT_DIRS := $(sort $(patsubst %/,%,$(dir $(wildcard tests/support/*/*.c))))
SUPPORT_BINS := $(SUPPORT_DIRS:tests/support/%=$(BUILD)/tests/%)

$(BUILD)/tests/support/%.o: tests/support/%.c
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS_ALL) -c -o $@ $<

define support_rule
$(BUILD)/tests/$(1): $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/support/$(1)/*.c)) $(ORACLE_LIB) $(LIB_ARS)
	$$(CC) $$(CFLAGS_ALL) $$(LDFLAGS) -o $$@ $$^ $$(CORE_LIBS)
endef
$(foreach s,$(notdir $(SUPPORT_DIRS)),$(eval $(call support_rule,$(s))))

testsupport: $(FIXTURE_SOS) $(SUPPORT_BINS)

# ---- unit tests -----------------------------------------------------------

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

$(BUILD)/tests/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS_ALL) -c -o $@ $<

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(BUILD)/libferry-core.a $(ORACLE_LIB) $(LIB_ARS)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS) -o $@ $^ -lcmocka $(CORE_LIBS)

build-tests: all $(UNIT_BINS)

# ---- entry points ---------------------------------------------------------

deps:
	@tests/deps.sh

# Targets that run things install what they need first (deps is a no-op
# when everything is there).
test: deps
	@$(MAKE) --no-print-directory build-tests
	@BUILD=$(BUILD) SANITIZER=$(SANITIZER) tests/run.sh

# Redis topologies (TLS-only servers, a 3+3 cluster, sentinels, failover):
# each script in tests/topology starts its own servers on free loopback
# ports. Slower than make test; .ci/run runs it.
test-redis-topologies: deps
	@$(MAKE) --no-print-directory build-tests
	@BUILD=$(BUILD) SANITIZER=$(SANITIZER) FERRY_SCRIPTS=tests/topology tests/run.sh

bench-core: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/bench/core.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/bench/bench.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/demo.sh

reference: all
	@BUILD=$(BUILD) sh tests/update-readme.sh

metrics-reference: all
	@BUILD=$(BUILD) sh tests/gen-metrics.sh --update-readme

format-check:
	@clang-format --dry-run --Werror core/*.[ch] include/ferry/*.h \
	    plugins/*/*.[ch] plugins/lib/*/*.[ch] tests/unit/*.c

# make install [PREFIX=/usr/local] [DESTDIR=...]: the binary, the plugins,
# the headers, ferry-plugin.pc, the configuration and the systemd unit.
# The configuration goes to SYSCONFDIR/ferry: /etc for a system-wide
# PREFIX (/usr or /usr/local, where systemd and operators look), else
# PREFIX/etc, so that a private prefix is self-contained; an existing
# ferry.ini is kept (the new one goes beside it as ferry.ini.dist). The
# unit goes to PREFIX/lib/systemd/system (both /usr/lib and /usr/local/lib
# are on systemd's search path) with its paths rewritten for PREFIX and
# SYSCONFDIR. The binary finds PREFIX/lib/ferry/plugins from its own
# location, so any PREFIX works without a rebuild.
ifneq ($(filter /usr /usr/local,$(patsubst %/,%,$(PREFIX))),)
SYSCONFDIR ?= /etc
else
SYSCONFDIR ?= $(PREFIX)/etc
endif
UNITDIR ?= $(PREFIX)/lib/systemd/system

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/ferry/plugins \
	    $(DESTDIR)$(PREFIX)/include/ferry $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	    $(DESTDIR)$(SYSCONFDIR)/ferry $(DESTDIR)$(UNITDIR)
	install -m 755 $(BUILD)/ferry $(DESTDIR)$(PREFIX)/bin/ferry
	install -m 755 $(PLUGIN_SOS) $(DESTDIR)$(PREFIX)/lib/ferry/plugins/
	install -m 644 include/ferry/*.h $(DESTDIR)$(PREFIX)/include/ferry/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    ferry-plugin.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ferry-plugin.pc
	if [ -e $(DESTDIR)$(SYSCONFDIR)/ferry/ferry.ini ]; then \
	    install -m 644 etc/ferry.ini \
	        $(DESTDIR)$(SYSCONFDIR)/ferry/ferry.ini.dist; \
	else \
	    install -m 644 etc/ferry.ini $(DESTDIR)$(SYSCONFDIR)/ferry/ferry.ini; \
	fi
	sed -e 's|/usr/local/bin/|$(PREFIX)/bin/|g' \
	    -e 's|/etc/ferry/|$(SYSCONFDIR)/ferry/|g' \
	    etc/ferry.service > $(DESTDIR)$(UNITDIR)/ferry.service
	chmod 644 $(DESTDIR)$(UNITDIR)/ferry.service

# make image: the Dockerfile built with podman (or docker) as ferry:VERSION.
# make test-image: builds it and runs the demo pipeline in it
# (tests/image/run.sh; about a minute once the base image is there).
# IMAGE_BASE=localhost/ferry-debian:bookworm uses the base tests/image/base.sh
# builds where no registry is reachable.
ENGINE ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
IMAGE_BASE ?= debian:bookworm-slim
image:
	$(ENGINE) build $(if $(filter podman,$(ENGINE)),--format docker) \
	    --network=host --build-arg BASE=$(IMAGE_BASE) -t ferry:$(VERSION) .

test-image:
	@FERRY_DEPS_IMAGE=1 tests/deps.sh
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) ENGINE=$(ENGINE) sh tests/image/run.sh

.PHONY: image test-image

clean:
	rm -rf $(BUILD)

.PHONY: all plugins testsupport build-tests deps test test-redis-topologies bench-core bench demo \
        reference metrics-reference \
        format-check install clean
.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
