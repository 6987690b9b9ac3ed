# msgsock: one GNU Makefile. `make`, `make test`, `make install`.
# Variables: CC, PREFIX (/usr/local), DESTDIR, SANITIZE=1 (ASan+UBSan, own
# build folder), TSAN=1 (ThreadSanitizer, own build folder), V=1 (verbose).

VERSION_MAJOR := 0
VERSION_MINOR := 3
VERSION_PATCH := 0
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
PYTHON ?= python3

ifeq ($(SANITIZE),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT ?= -O1
else ifeq ($(TSAN),1)
BUILD ?= build-tsan
SANFLAGS := -fsanitize=thread
OPT ?= -O1
else
BUILD ?= build
SANFLAGS :=
OPT ?= -O2
endif

WARN := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes
CFLAGS ?= $(OPT) -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SANFLAGS) -fPIC \
	-fvisibility=hidden -DMS_BUILDING -Iinclude -Isrc -MMD -MP
LDFLAGS ?=
LIBS := -ljansson -lssl -lcrypto -luring -lpthread
TEST_LIBS := -lcmocka

LIB_SRCS := $(sort $(wildcard src/*/*.c))
CLI_SRCS := $(sort $(wildcard cli/*.c))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
TEST_HELPER_SRCS := $(sort $(wildcard tests/unit/helper_*.c))

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
TEST_HELPER_OBJS := $(TEST_HELPER_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

STATIC := $(BUILD)/libmsgsock.a
# Before 1.0 a minor release may change the ABI (a public struct grew in
# 0.2, the connection and server API in 0.3), so the SONAME carries the
# minor version too: libmsgsock.so.0.3.
ifeq ($(VERSION_MAJOR),0)
SONAME := libmsgsock.so.$(VERSION_MAJOR).$(VERSION_MINOR)
else
SONAME := libmsgsock.so.$(VERSION_MAJOR)
endif
SHARED := $(BUILD)/libmsgsock.so.$(VERSION)
BIN := $(BUILD)/msgsock
PC := $(BUILD)/msgsock.pc
MAN3 := $(sort $(wildcard man/*.3))
MAN7 := $(sort $(wildcard man/*.7))

ifneq ($(V),1)
Q := @
endif

.PHONY: run all deps test test-unit test-cli sanitize install uninstall clean \
	fuzz fuzz-replay bench bench-quick test-reliability soak

all: deps $(STATIC) $(SHARED) $(BIN) $(PC)

deps:
	$(Q)scripts/deps.sh build

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(SHARED): $(LIB_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-soname,$(SONAME) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)
	$(Q)ln -sf libmsgsock.so.$(VERSION) $(BUILD)/$(SONAME)
	$(Q)ln -sf $(SONAME) $(BUILD)/libmsgsock.so

$(BIN): $(CLI_OBJS) $(STATIC)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJS) $(STATIC) $(LIBS) -lm

PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' msgsock.pc.in

$(PC): msgsock.pc.in Makefile
	$(Q)$(PC_SED) > $@

$(BUILD)/tests/%: tests/unit/%.c $(TEST_HELPER_OBJS) $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(TEST_HELPER_OBJS) $(STATIC) $(TEST_LIBS) $(LIBS) -lm

# The whole suite: the layer check (mk/layers.mk), the man pages
# (mk/docs.mk), unit tests (cmocka) and black-box tests of the command and
# the examples.
test: all
	$(Q)scripts/deps.sh test
	$(Q)$(MAKE) --no-print-directory check-layers
	$(Q)$(MAKE) --no-print-directory check-man
	$(Q)$(MAKE) --no-print-directory $(UNIT_BINS)
	$(Q)$(PYTHON) tests/run.py --build $(BUILD)

test-unit: all
	$(Q)$(MAKE) --no-print-directory $(UNIT_BINS)
	$(Q)$(PYTHON) tests/run.py --build $(BUILD) --only unit

test-cli: all
	$(Q)$(PYTHON) tests/run.py --build $(BUILD) --only cli

# The same suite under AddressSanitizer and UndefinedBehaviorSanitizer.
sanitize:
	$(Q)$(MAKE) --no-print-directory SANITIZE=1 test

install: all
	install -d $(DESTDIR)$(INCLUDEDIR)/msgsock $(DESTDIR)$(LIBDIR)/pkgconfig \
	    $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
	    $(DESTDIR)$(MANDIR)/man7
	install -m 644 include/msgsock.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 include/msgsock/*.h $(DESTDIR)$(INCLUDEDIR)/msgsock/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libmsgsock.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libmsgsock.so
	$(PC_SED) > $(DESTDIR)$(LIBDIR)/pkgconfig/msgsock.pc
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/
	install -m 644 man/msgsock.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(MAN3) $(DESTDIR)$(MANDIR)/man3/
	install -m 644 $(MAN7) $(DESTDIR)$(MANDIR)/man7/

uninstall:
	rm -rf $(DESTDIR)$(INCLUDEDIR)/msgsock.h $(DESTDIR)$(INCLUDEDIR)/msgsock
	rm -f $(DESTDIR)$(LIBDIR)/libmsgsock.* $(DESTDIR)$(LIBDIR)/pkgconfig/msgsock.pc
	rm -f $(DESTDIR)$(BINDIR)/msgsock $(DESTDIR)$(MANDIR)/man1/msgsock.1
	rm -f $(MAN3:man/%=$(DESTDIR)$(MANDIR)/man3/%) $(MAN7:man/%=$(DESTDIR)$(MANDIR)/man7/%)

clean:
	rm -rf build build-san build-tsan build-fuzz

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(TEST_HELPER_OBJS:.o=.d)
-include mk/*.mk

# The main job, end to end: a server on loopback and a client talking to it.
run: all
	$(Q)scripts/demo.sh $(BUILD)
