# examples.mk: every examples/*.c is a whole program that includes only
# <msgsock.h>; `make` builds each into $(BUILD)/examples/<name>, compiled as
# a user would (no -D_GNU_SOURCE, no internal headers) and linked against
# the static library the way the command is. tests/cli/test_examples.py
# runs them; examples/Makefile builds them against an installed library.

EXAMPLE_SRCS := $(sort $(wildcard examples/*.c))
EXAMPLE_BINS := $(EXAMPLE_SRCS:examples/%.c=$(BUILD)/examples/%)
EXAMPLE_CFLAGS := -std=c11 $(WARN) $(CFLAGS) $(SANFLAGS) -Iinclude -MMD -MP

all: $(EXAMPLE_BINS)

$(BUILD)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  EXAMPLE $@")
	$(Q)$(CC) $(EXAMPLE_CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LIBS) -lm

-include $(EXAMPLE_BINS:=.d)
