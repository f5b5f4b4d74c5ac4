#!/usr/bin/env bash
# Builds the Debian package: the stripped release binary, its man pages and
# shell completions (generated from the binary's own command definition),
# the systemd unit and /etc/lumpy/lumpy.env, by cargo-deb.
#   bash packaging/build-deb.sh            # release build + package (target/debian/)
# For the test suite, which must not build a second time: package a binary
# already built (any profile; cargo-deb strips it) from a scratch target dir:
#   LUMPY_DEB_BIN=target/debug/lumpy LUMPY_DEB_OUT=DIR LUMPY_DEB_FAST=1 bash packaging/build-deb.sh
# Needs cargo-deb (cargo install cargo-deb --locked) and binutils (strip).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${LUMPY_DEB_OUT:-target/debian}"
if [ -n "${LUMPY_DEB_BIN:-}" ]; then
  # cargo-deb takes target/release/lumpy from its target dir: a scratch one
  # holding a copy, so a real release build is never overwritten.
  bin="$(realpath "$LUMPY_DEB_BIN")"
  [ -x "$bin" ] || { echo "build-deb.sh: $bin is missing (build it first)" >&2; exit 2; }
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  mkdir -p "$scratch/release"
  cp "$bin" "$scratch/release/lumpy"
  export CARGO_TARGET_DIR="$scratch"
else
  cargo build --locked --release --bin lumpy
  bin=target/release/lumpy
fi

assets=target/packaging
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
"$bin" generate-man "$assets/man" >/dev/null
"$bin" completions bash >"$assets/completions/lumpy.bash"
"$bin" completions zsh >"$assets/completions/_lumpy"
"$bin" completions fish >"$assets/completions/lumpy.fish"

mkdir -p "$out"
fast=()
[ -z "${LUMPY_DEB_FAST:-}" ] || fast=(--fast)
cargo deb --no-build --locked "${fast[@]}" --output "$out"
