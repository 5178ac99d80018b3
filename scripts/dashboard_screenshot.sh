#!/usr/bin/env bash
# Screenshot the live dashboard with headless Chromium and check that it rendered.
#
#   scripts/dashboard_screenshot.sh LOGDIR OUT.png
#
# Starts `nanodecoder dashboard --logdir LOGDIR --port P` (binary from $NANODECODER_BIN, default
# .build/debug/nanodecoder; port from $DASHBOARD_PORT, default a free one), saves the page as OUT.png
# and its DOM as OUT.dom.html, and exits non-zero unless the DOM has data-ready="1" and a chart.
# Optional: DASHBOARD_HASH="runs=a,b&focus=a" picks the runs shown; DASHBOARD_WINDOW=1400,3000 a taller page.
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 LOGDIR OUT.png" >&2
    exit 2
fi
logdir=$1
out=$2
bin=${NANODECODER_BIN:-.build/debug/nanodecoder}
dom=${out%.png}.dom.html
log=${out%.png}.server.log

browser=""
for candidate in chromium chromium-browser google-chrome; do
    if command -v "$candidate" >/dev/null 2>&1; then browser=$candidate; break; fi
done
if [[ -z $browser ]]; then
    echo "error: no chromium found (apt-get install -y chromium)" >&2
    exit 1
fi
if [[ ! -x $bin ]]; then
    echo "error: $bin is not an executable (build it, or set NANODECODER_BIN)" >&2
    exit 1
fi

port=${DASHBOARD_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
url="http://127.0.0.1:$port/"
page=$url${DASHBOARD_HASH:+#$DASHBOARD_HASH}

"$bin" dashboard --logdir "$logdir" --port "$port" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "${url}api/runs" 2>/dev/null; then break; fi
    if ! kill -0 "$server" 2>/dev/null; then
        echo "error: dashboard exited early; its log:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.2
done

flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=8000 --window-size=${DASHBOARD_WINDOW:-1400,1000})
"$browser" "${flags[@]}" --screenshot="$out" "$page" >/dev/null 2>&1
"$browser" "${flags[@]}" --dump-dom "$page" >"$dom" 2>/dev/null

status=0
if ! grep -q 'data-ready="1"' "$dom"; then
    echo "error: the page never set data-ready=\"1\" (DOM in $dom)" >&2
    status=1
fi
charts=$(grep -o 'class="chart"' "$dom" | wc -l)
if [[ $charts -lt 1 ]]; then
    echo "error: no chart in the DOM ($dom)" >&2
    status=1
fi
[[ -s $out ]] || { echo "error: no screenshot written to $out" >&2; status=1; }
if [[ $status -eq 0 ]]; then
    echo "ok: $charts charts; screenshot $out, DOM $dom"
fi
exit $status
