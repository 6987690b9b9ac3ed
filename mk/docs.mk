# docs.mk: `make check-man` formats every page in man/ with all of groff's
# warnings on (man --warnings) and fails on any line it writes to stderr:
# a bad macro, a line that cannot be broken, a .so target that is missing.
# lexgrog must also find each page's NAME line, or whatis and apropos would
# not list it. `make test` runs it. Pages are read from a tree of man1/,
# man3/, man7/ links to man/, so a ".so man3/ms_loop.3" resolves as it will
# once installed.

MAN_PAGES := $(sort $(wildcard man/*.[1-8]))
MAN_CHECK_DIR := $(BUILD)/man-check

check-man:
	$(Q)scripts/deps.sh docs
	$(Q)rm -rf $(MAN_CHECK_DIR) && mkdir -p $(MAN_CHECK_DIR) && \
	    for s in 1 3 7; do ln -s $(CURDIR)/man $(MAN_CHECK_DIR)/man$$s; done
	$(Q)cd $(MAN_CHECK_DIR) && bad=0; for p in $(MAN_PAGES:man/%=%); do \
	    page=man$${p##*.}/$$p; \
	    out=$$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z $$page 2>&1 >/dev/null); \
	    [ -z "$$out" ] || { echo "$$page:"; echo "$$out"; bad=1; }; \
	    lexgrog $$page >/dev/null 2>&1 || { echo "$$page: lexgrog finds no NAME section"; bad=1; }; \
	done; \
	[ $$bad = 0 ] || { echo "check-man: fix the pages above"; exit 1; }
	@echo "  MAN     $(words $(MAN_PAGES)) pages clean"

.PHONY: check-man
