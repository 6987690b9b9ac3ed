# fuzz.mk: libFuzzer targets for the framing codecs (tests/fuzz/fuzz_*.c).
# `make fuzz` builds every target into build-fuzz/ and runs each for
# FUZZ_SECONDS (default 60), one after the other, new inputs going to
# build-fuzz/corpus/<target>/ and crashes to build-fuzz/<target>-crash-*.
# `make fuzz-replay` runs each target once over its committed seeds.
# FUZZ_ARGS adds libFuzzer options (e.g. FUZZ_ARGS=-jobs=2).
# Each input may take FUZZ_TIMEOUT seconds (a slower one is reported as a
# timeout artifact and fails the run). Inputs are at most FUZZ_MAX_LEN bytes,
# the app target's FUZZ_APP_MAX_LEN: enough for a 65535-byte JSON header,
# its 2-byte length, the 3 configuration bytes and some content.

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_MAX_LEN ?= 1024
FUZZ_APP_MAX_LEN ?= 70000
FUZZ_TIMEOUT ?= 10
FUZZ_ARGS ?=
FUZZ_DIR := build-fuzz
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BINS := $(FUZZ_NAMES:%=$(FUZZ_DIR)/fuzz_%)
# Shell: sets ml to target $$t's max_len.
FUZZ_ML = case $$t in app) ml=$(FUZZ_APP_MAX_LEN) ;; *) ml=$(FUZZ_MAX_LEN) ;; esac
# The codec sources themselves, not the library, plus the error table.
FUZZ_CODEC_SRCS := $(sort $(wildcard src/codec/*.c)) src/common/error.c
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O2 -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fsanitize=fuzzer -fno-sanitize-recover=undefined \
	-DMSF_LIBFUZZER -DMS_BUILDING -Iinclude -Isrc -Itests/fuzz $(WARN)

# The driver is built without coverage instrumentation: it is not what is
# being explored, and its comparisons would otherwise dominate the run time.
$(FUZZ_DIR)/driver.o: tests/fuzz/driver.c tests/fuzz/driver.h $(wildcard include/msgsock/*.h)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(filter-out -fsanitize=fuzzer%,$(FUZZ_CFLAGS)) -c -o $@ $<

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_DIR)/driver.o tests/fuzz/driver.h \
		$(FUZZ_CODEC_SRCS) $(wildcard src/codec/*.h) $(wildcard include/msgsock/*.h)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_DIR)/driver.o $(FUZZ_CODEC_SRCS) -ljansson

fuzz-build:
	$(Q)scripts/deps.sh fuzz
	$(Q)$(MAKE) --no-print-directory $(FUZZ_BINS)

fuzz: fuzz-build
	$(Q)set -e; for t in $(FUZZ_NAMES); do \
	    mkdir -p $(FUZZ_DIR)/corpus/$$t; $(FUZZ_ML); \
	    echo "  FUZZ    $$t ($(FUZZ_SECONDS)s, max_len $$ml, log in $(FUZZ_DIR)/$$t.log)"; \
	    $(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=$$ml \
	        -timeout=$(FUZZ_TIMEOUT) -artifact_prefix=$(FUZZ_DIR)/$$t- -print_final_stats=1 $(FUZZ_ARGS) \
	        $(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t >$(FUZZ_DIR)/$$t.log 2>&1 \
	        || { tail -n 40 $(FUZZ_DIR)/$$t.log; exit 1; }; \
	    grep -h -E "stat::number_of_executed_units|Done [0-9]+ runs" $(FUZZ_DIR)/$$t.log; \
	done

fuzz-replay: fuzz-build
	$(Q)set -e; for t in $(FUZZ_NAMES); do $(FUZZ_ML); \
	    $(FUZZ_DIR)/fuzz_$$t -runs=0 -max_len=$$ml -timeout=$(FUZZ_TIMEOUT) \
	        -artifact_prefix=$(FUZZ_DIR)/$$t-replay- tests/fuzz/corpus/$$t \
	        >$(FUZZ_DIR)/$$t-replay.log 2>&1 \
	        || { tail -n 40 $(FUZZ_DIR)/$$t-replay.log; \
	             echo "fuzz-replay: $$t fails; log in $(FUZZ_DIR)/$$t-replay.log"; exit 1; }; \
	    echo "  REPLAY  $$t ok"; \
	done

.PHONY: fuzz-build
