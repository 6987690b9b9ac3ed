#!/bin/sh
# demo.sh: msgsock's main job in one go: start app-server on loopback, ask it
# a search and a binary request with app-client, show its connections and
# totals with msgsock stats, stop it. Usage: scripts/demo.sh [BUILD]
set -eu
bin="${1:-build}/msgsock"
dir=$(mktemp -d)
pid=
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
stats="unix:$dir/stats.sock"

: >"$dir/out"
"$bin" app-server --stats "$stats" 127.0.0.1 0 >"$dir/out" 2>"$dir/err" &
pid=$!
i=0
until grep -q '^listening on ' "$dir/out"; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "demo: server did not start" >&2; cat "$dir/err" >&2; exit 1; }
    sleep 0.05
done
addr=$(sed -n 's/^listening on //p' "$dir/out")
host=${addr%:*}
port=${addr##*:}
echo "\$ msgsock app-server --stats $stats 127.0.0.1 0 &"
echo "listening on $addr"
echo "\$ msgsock app-client $host $port search morpheus"
"$bin" app-client "$host" "$port" search morpheus
echo "\$ msgsock app-client $host $port hello 'binary bytes'"
"$bin" app-client "$host" "$port" hello 'binary bytes'
echo "\$ msgsock stats $stats"
"$bin" stats "$stats"
kill -TERM "$pid"
wait "$pid" && echo "(server stopped cleanly on SIGTERM)"
pid=
