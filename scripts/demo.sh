#!/bin/sh
# demo.sh: msgsock's main job in one go: start a server on loopback, talk to it
# with the client, show what happened, stop the server. Usage: scripts/demo.sh [BUILD]
set -eu
bin="${1:-build}/msgsock"
out=$(mktemp)
trap 'kill "$pid" 2>/dev/null || true; rm -f "$out"' EXIT

"$bin" echo-server 127.0.0.1 0 >"$out" &
pid=$!
i=0
until grep -q '^listening on ' "$out"; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "demo: server did not start" >&2; exit 1; }
    sleep 0.05
done
addr=$(sed -n 's/^listening on //p' "$out")
echo "\$ msgsock echo-server 127.0.0.1 0"
echo "listening on $addr"
echo "\$ msgsock echo-client --connect $addr"
"$bin" echo-client --connect "$addr"
echo "\$ msgsock echo-client --connect $addr 'Messages, whole, every time.'"
"$bin" echo-client --connect "$addr" 'Messages, whole, every time.'
kill -TERM "$pid"
wait "$pid" && echo "(server stopped cleanly on SIGTERM)"
