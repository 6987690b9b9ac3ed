# reliability.mk: the reliability suite (tests/reliability/, docs/reliability.md).
#   make test-reliability   hostile input, slowloris, resets, half-close, descriptor
#                           exhaustion, slow readers, network faults in namespaces,
#                           against $(BUILD)/msgsock (BUILD=build-san: the ASan build)
#   make soak               mixed traffic with misbehaving clients for SOAK_SECONDS
#                           (default 600); fails on any loss or leak
#   make test-tsan          the multi-threaded server tests on the ThreadSanitizer build
#   make test-valgrind      integration tests with every server under memcheck;
#                           a leak or error at exit after SIGTERM fails the test
# REL_ARGS adds run.py options (e.g. REL_ARGS="-k slowloris").

SOAK_SECONDS ?= 600
SOAK_ARGS ?=
REL_ARGS ?=
# Module names with their dot: "-k" matches substrings of test ids, and a
# bare "test_multiconn" would also pick test_tls.*.test_multiconn.
VALGRIND_TESTS ?= test_app. test_multiconn. test_echo.

rel-deps:
	$(Q)scripts/deps.sh reliability

test-reliability: all rel-deps
	$(Q)$(PYTHON) tests/reliability/run.py --build $(BUILD) $(REL_ARGS)

soak: all
	$(Q)$(PYTHON) tests/reliability/soak.py --build $(BUILD) --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

# Threads race only where more than one loop runs: the loop's unit tests,
# servers on the caller's loops (two loops on two threads), the connection tests (each server on its own thread beside the test's),
# the CLI tests of the threaded servers and a short soak (both its servers
# run two loops; a client's name lookup runs on a worker thread). Any
# report makes the process exit 66, which the tests see as a failure.
TSAN_UNIT := test_loop test_conn test_server_loops
# What each -k above also matches (test_loop: test_loop_teardown; test_conn:
# test_conn_proxy, test_connect) is built too: the runner fails a unit test
# it was asked for that was never built.
TSAN_UNIT_BINS := test_loop test_loop_teardown test_conn test_conn_proxy test_connect \
	test_server_loops

test-tsan:
	$(Q)$(MAKE) --no-print-directory TSAN=1 all
	$(Q)$(MAKE) --no-print-directory TSAN=1 $(TSAN_UNIT_BINS:%=build-tsan/tests/%)
	$(Q)set -e; for k in $(TSAN_UNIT); do \
	    TSAN_OPTIONS="halt_on_error=1 exitcode=66 $(TSAN_OPTIONS)" \
	    $(PYTHON) tests/run.py --build build-tsan --only unit -k $$k; done
	$(Q)set -e; for k in threads many_clients; do \
	    TSAN_OPTIONS="halt_on_error=1 exitcode=66 $(TSAN_OPTIONS)" \
	    $(PYTHON) tests/run.py --build build-tsan --only cli -k $$k; done
	$(Q)TSAN_OPTIONS="halt_on_error=1 exitcode=66 $(TSAN_OPTIONS)" \
	    $(PYTHON) tests/reliability/soak.py --build build-tsan --seconds 20

# MSGSOCK_BIN points at a wrapper that execs the server under memcheck
# (same pid, so /proc checks still hold); its exit status is 99 on any
# error or definite/possible leak, and the tests require 0 after SIGTERM.
# Every memcheck log must end in a clean ERROR SUMMARY: a process killed by
# SIGKILL writes none and fails the run (rel.kill_on_purpose excuses one).
# Memcheck runs the servers on epoll: under valgrind 3.19 a second io_uring
# loop thread starves (app-server --threads 2 answered 26 of 50 clients on
# io_uring, 50 of 50 on epoll; natively io_uring answers them all), so the
# ring path is checked by the ASan/UBSan suite instead.
test-valgrind: all
	$(Q)scripts/deps.sh reliability
	$(Q)set -e; for t in $(VALGRIND_TESTS); do \
	    $(PYTHON) tests/reliability/run.py --build $(BUILD) --valgrind --backend epoll \
	        --suite cli -k $$t; done
	$(Q)$(PYTHON) tests/reliability/run.py --build $(BUILD) --valgrind --backend epoll -k test_resets

.PHONY: rel-deps test-tsan test-valgrind

# The short soak CI runs.
soak-ci:
	$(Q)$(MAKE) --no-print-directory soak SOAK_SECONDS=60

.PHONY: soak-ci
