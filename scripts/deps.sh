#!/bin/sh
# deps.sh: installs the Debian packages a make target needs, when missing.
# Usage: scripts/deps.sh build|docs|test|fuzz|bench|reliability
# Prints what it installs; installs only as root (otherwise says what to run).
set -eu

pkgs_build="libjansson-dev libssl-dev liburing-dev pkg-config"
pkgs_docs="man-db groff-base" # make check-man: man --warnings and lexgrog on every page
pkgs_test="$pkgs_build $pkgs_docs libcmocka-dev python3 iproute2 openssl procps"
pkgs_test="$pkgs_test sslscan" # tests/cli/test_tls_scan.py scans the TLS defaults
pkgs_test="$pkgs_test python3-prometheus-client" # tests/cli/test_metrics.py parses /metrics (run by /usr/bin/python3)
pkgs_test="$pkgs_test haproxy" # test_proxy_protocol.py and test_drain.py run msgsock behind it
pkgs_test="$pkgs_test valgrind" # test_examples.py runs examples/many_clients under memcheck
pkgs_fuzz="$pkgs_test clang"
pkgs_bench="$pkgs_test libuv1-dev libevent-dev linux-perf util-linux"
pkgs_reliability="$pkgs_test nftables util-linux"

case "${1:-build}" in
build) want=$pkgs_build ;;
docs) want=$pkgs_docs ;;
test) want=$pkgs_test ;;
fuzz) want=$pkgs_fuzz ;;
bench) want=$pkgs_bench ;;
reliability) want=$pkgs_reliability ;;
*) echo "deps.sh: unknown set '$1'" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "deps.sh: missing Debian packages:$missing" >&2
    echo "deps.sh: run: sudo apt-get install$missing" >&2
    exit 1
fi
echo "deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || apt-get update
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
