#!/usr/bin/env bash
# Runs a lumpy node on its embedded default (redb + SQLite, no MySQL) with the
# demo captures in fixtures/. Usage: bash scripts/demo.sh [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-demo-data}"
cargo build --release --locked
LUMPY=target/release/lumpy
if [ ! -e "$DATA/index.redb" ]; then
  # A hand-assigned id (bit 31 set) so the demo never collides with a real roo.
  "$LUMPY" init --data "$DATA" --sensor-id 2147483649 --name "demo roo" \
    --honeypot-net 192.0.2.0/24 --honeypot-net 2001:db8:1::/64
fi
"$LUMPY" ingest --data "$DATA" fixtures/honeynet.pcap fixtures/sebek.pcap fixtures/honeywall-multi
"$LUMPY" status --data "$DATA"
"$LUMPY" flows --data "$DATA" --limit 20
"$LUMPY" processes --data "$DATA" | head -40
"$LUMPY" verify --data "$DATA"
# A web UI account for the demo (only on localhost; never use this password elsewhere).
if ! "$LUMPY" user list --data "$DATA" | grep -q '^demo'; then
  echo "lumpy-demo" | "$LUMPY" user add --data "$DATA" demo --password-stdin
fi
echo "web UI: http://${LUMPY_UI_LISTEN:-127.0.0.1:7780}/  (user demo, password lumpy-demo)"
# The node itself: its peer API and web UI on localhost until Ctrl-C
# (SIGINT/SIGTERM stop it cleanly).
exec "$LUMPY" serve --data "$DATA" --listen "${LUMPY_LISTEN:-127.0.0.1:7700}" \
  --ui-listen "${LUMPY_UI_LISTEN:-127.0.0.1:7780}"
