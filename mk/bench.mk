# bench.mk: `make bench` (about 10 minutes) and `make bench-quick` (under a
# minute): builds the libuv and libevent echo peers into $(BUILD)/bench/ and
# runs bench/run.py, which prints one table and writes
# bench/results/latest.json. Fails only on errors (a wrong byte, a drop, a
# crash), never on the figures. BENCH_ARGS adds run.py options (e.g.
# BENCH_ARGS='--only echo,app'). `make bench-app` runs only the app protocol
# section: msgsock app-server against bench/peers/py_app.py (Python selectors).

BENCH_ARGS ?=
BENCH_PEER_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g $(WARN)
BENCH_PEERS := $(BUILD)/bench/uv_echo $(BUILD)/bench/ev_echo

$(BUILD)/bench/uv_echo: bench/peers/uv_echo.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(BENCH_PEER_CFLAGS) -o $@ $< -luv

$(BUILD)/bench/ev_echo: bench/peers/ev_echo.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(BENCH_PEER_CFLAGS) -o $@ $< -levent_core

bench-peers: all
	$(Q)scripts/deps.sh bench
	$(Q)$(MAKE) --no-print-directory $(BENCH_PEERS)

bench: bench-peers
	$(Q)$(PYTHON) bench/run.py --build $(BUILD) $(BENCH_ARGS)

bench-quick: bench-peers
	$(Q)$(PYTHON) bench/run.py --build $(BUILD) --quick $(BENCH_ARGS)

bench-app: all
	$(Q)$(PYTHON) bench/run.py --build $(BUILD) --only app $(BENCH_ARGS)

# What HAProxy in front of msgsock costs: req/s direct, through HAProxy to
# one backend and to two, and HAProxy's CPU per request (bench/haproxy.py).
bench-haproxy: all
	$(Q)scripts/deps.sh test
	$(Q)$(PYTHON) bench/haproxy.py --build $(BUILD)

.PHONY: bench-peers bench-app bench-haproxy
