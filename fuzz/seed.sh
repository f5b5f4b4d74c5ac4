#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the fixtures (run from anywhere; needs a
# built lumpy: cargo build). The corpus is generated, not committed.
set -euo pipefail
cd "$(dirname "$0")/.."
L=${LUMPY:-target/debug/lumpy}
C=fuzz/corpus
rm -rf "$C" && mkdir -p "$C"/{capture_reader,sebek_decode,segment,index_entries,peer_messages,archive_reader,auth_verify,record_segment}
cp fixtures/*.pcap fixtures/*.pcapng "$C/capture_reader/"
# Small captures keep the executions fast: the first 4 KiB of the big ones too.
for f in fixtures/honeynet.pcap fixtures/honeynet.pcapng fixtures/bigendian.pcap; do
  head -c 4096 "$f" > "$C/capture_reader/head-$(basename "$f")"
done
# Sebek payloads: the UDP payload of every packet of sebek.pcap.
python3 - "$C/sebek_decode" <<'PY'
import struct, sys
b = open("fixtures/sebek.pcap", "rb").read()
at, n = 24, 0
while at + 16 <= len(b):
    caplen = struct.unpack("<I", b[at + 8:at + 12])[0]
    pkt = b[at + 16:at + 16 + caplen]
    at += 16 + caplen
    if len(pkt) > 42:
        open(f"{sys.argv[1]}/sebek-{n}", "wb").write(pkt[42:])
        n += 1
PY
# Segments, index entries and a bundle from a node that ingested fixtures.
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$L" init --data "$T/n" --sensor-id 77 --installed 1700000000 --honeypot-net 192.0.2.0/24 >/dev/null
"$L" config set --data "$T/n" store.segment_target_bytes 65536 >/dev/null
"$L" ingest --data "$T/n" fixtures/cooked.pcap fixtures/sebek.pcap fixtures/qinq.pcap >/dev/null
for f in "$T"/n/segments/*/*; do
  [ "$(stat -c %s "$f")" -le 131072 ] && cp "$f" "$C/segment/"
done
"$L" archive create --data "$T/n" --sensor 77 "$C/archive_reader/cooked.lumpyarc" >/dev/null
head -c 100 /dev/zero > "$C/index_entries/zero-meta"
head -c 64 /dev/urandom > "$C/index_entries/random"
# Peer messages: the documented examples and a frame.
cat > "$C/peer_messages/summary.json" <<'J'
{"protocol": 1, "node_id": "00112233445566778899aabbccddeeff", "below": ["00112233445566778899aabbccddeeff"], "sensors": [{"sensor_id": 1001, "first_id": "ab", "max_seq": 42, "chain": "cd", "hops": 0, "pcap_held_to": 42, "newest_ns": 1795736440000000000}], "digest": "ef"}
J
echo '{"sensor_id": 1001, "entries": [{"seq": 43, "id": "00", "kind": 2, "stored_bytes": 1830, "held": true}], "more": false}' > "$C/peer_messages/catalog.json"
echo '{"ids": ["0000000000000000000000000000000000000000000000000000000000000000"]}' > "$C/peer_messages/fetch.json"
echo 'p 1795736440 AAAAAAAAAAAAAAAA c2lnbmF0dXJl' > "$C/peer_messages/auth"
echo 'sensor=1001&st=1&et=2000000000&ip_proto=6&sip=192.0.2.1&dport=80&net=192.0.2.0%2F24' > "$C/peer_messages/pcap-query"
python3 - "$C/peer_messages/frame" <<'PY'
import sys, struct
body = b"LUMPYSEG" + bytes(100)
open(sys.argv[1], "wb").write(bytes(32) + struct.pack("<Q", len(body)) + body)
PY
# Record segments as a child sends them; an auth header after an 8-byte clock.
cp "$C"/segment/* "$C/record_segment/"
{ printf '\x78\x56\x34\x12\x00\x00\x00\x00'; echo 'p 305419896 AAAAAAAAAAAAAAAA c2lnbmF0dXJl'; printf 'body'; } > "$C/auth_verify/header"
echo "seeded: $(find "$C" -type f | wc -l) files"
