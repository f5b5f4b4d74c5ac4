#!/usr/bin/env bash
# Makes fixtures/upgrade/<commit>/: a small data directory written by an
# earlier lumpy (the release before a change), and what that lumpy printed
# about it, for tests/daemon.rs's upgrade test (issue 17, point 7): the new
# binary must open it (mirror migrated), keep its segments and links, verify
# it clean and answer the same queries.
#
#   scripts/make-upgrade-fixture.sh COMMIT          # builds COMMIT in a scratch worktree
#   LUMPY_OLD_BIN=/path/to/lumpy scripts/make-upgrade-fixture.sh COMMIT
#                                                   # a binary already built from COMMIT
#
# The directory is made deterministic where lumpy allows it (a fixed sensor
# id and install time); link secrets and the node id are random, so the
# test compares what does not depend on them.
set -euo pipefail
commit=${1:?usage: $0 COMMIT}
repo=$(cd "$(dirname "$0")/.." && pwd)
full=$(git -C "$repo" rev-parse "$commit^{commit}")
short=${full:0:7}
out="$repo/fixtures/upgrade/$short"

bin=${LUMPY_OLD_BIN:-}
if [ -z "$bin" ]; then
  scratch=$(mktemp -d)
  trap 'git -C "$repo" worktree remove --force "$scratch/src" >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
  git -C "$repo" worktree add --detach "$scratch/src" "$full" >/dev/null
  (cd "$scratch/src" && cargo build --locked --bin lumpy)
  bin="$scratch/src/target/debug/lumpy"
fi

rm -rf "$out"
mkdir -p "$out/expected"
work=$(mktemp -d)
data="$work/node"
run() { "$bin" "$@"; }
run init --data "$data" --sensor-id 4600 --installed 1700000000 --honeypot-net 192.0.2.0/24 >/dev/null
run config set --data "$data" capture.p0f_fp "" >/dev/null
cp "$repo/fixtures/vlan.pcap" "$repo/fixtures/sebek.pcap" "$repo/fixtures/cooked.pcap" "$work/"
(cd "$work" && run ingest --data node vlan.pcap sebek.pcap cooked.pcap >/dev/null)
# Links: a parent allowed to pull, a child to pull from (never reachable:
# the warning is expected) with its stored secret.
run peer add --data "$data" parent1 --allow 10.0.0.0/8 >"$work/parent.secret" 2>/dev/null
run child add --data "$data" child1 http://127.0.0.1:9 --secret-file "$work/parent.secret" --interval 5m 2>/dev/null >/dev/null
run user add --data "$data" --password-stdin ana <<<"upgrade test" >/dev/null

(cd "$work" && run flows --data node --format json) >"$out/expected/flows.json"
(cd "$work" && run processes --data node) >"$out/expected/processes.txt"
(cd "$work" && run sensors --data node) >"$out/expected/sensors.txt"
(cd "$work" && run peer list --data node) >"$out/expected/peer-list.txt"
(cd "$work" && run user list --data node | cut -f1) >"$out/expected/user-list.txt"
(cd "$work" && run pcap --data node --sensor 4600 --flow 1 -o -) >"$out/expected/flow1.pcap" 2>/dev/null
(cd "$work" && run status --data node --json) >"$out/expected/status.json"
(cd "$work" && run verify --data node) >"$out/expected/verify.txt"
run --version >"$out/expected/version.txt"
echo "$full" >"$out/COMMIT"

# The directory as a clean stop leaves it (sealed index, no lock holder).
cp -a "$data" "$out/node"
rm -f "$out/node/store.lock" "$out/node/lumpy.sock"
rm -rf "$work"
du -sh "$out"
