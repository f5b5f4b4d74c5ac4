#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine with Rust: installs and
# starts what the tests need when it is missing, then runs fmt, clippy and
# every test. Usage: bash scripts/test.sh   (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Debian packages the tests drive: real capture tools and argus for the flow
# comparison, MariaDB for the export tests, chromium for the web UI.
need_pkgs=()
command -v tcpdump   >/dev/null || need_pkgs+=(tcpdump)
command -v argus     >/dev/null || need_pkgs+=(argus-server)
command -v racluster >/dev/null || need_pkgs+=(argus-client)
command -v curl      >/dev/null || need_pkgs+=(curl)
command -v p0f       >/dev/null || need_pkgs+=(p0f)
command -v openssl   >/dev/null || need_pkgs+=(openssl)
/usr/bin/python3 -c 'import yaml' 2>/dev/null || need_pkgs+=(python3 python3-yaml)
# /metrics is parsed by the Prometheus project's own parser (tests/daemon.rs).
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null || need_pkgs+=(python3-prometheus-client)
# The web UI's browser tests drive Debian's chromium through chromedriver.
command -v chromium  >/dev/null || need_pkgs+=(chromium)
command -v chromedriver >/dev/null || need_pkgs+=(chromium-driver)
command -v mariadbd  >/dev/null || [ -x /usr/sbin/mariadbd ] || need_pkgs+=(mariadb-server mariadb-client)
# ClickHouse (18.16.1 in Debian 12) for the ClickHouse export tests: they
# start their own servers (tests/clickhouse.rs), as the clickhouse user when
# run as root, so nothing needs to be running here.
command -v clickhouse-server >/dev/null || [ -x /usr/sbin/clickhouse-server ] || need_pkgs+=(clickhouse-server)
command -v clickhouse-client >/dev/null || need_pkgs+=(clickhouse-client)
# Compressed captures (tests/ingest.rs) are made with the real tools.
command -v zstd      >/dev/null || need_pkgs+=(zstd)
command -v gzip      >/dev/null || need_pkgs+=(gzip)
# The Debian package test (tests/package.rs): strip/readelf for cargo-deb,
# systemd-analyze to verify the unit.
command -v readelf   >/dev/null || need_pkgs+=(binutils)
command -v systemd-analyze >/dev/null || need_pkgs+=(systemd)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "test.sh: installing ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# MariaDB: start it when it does not answer (the service machine starts it
# before a session; a fresh machine does not).
if ! mariadb-admin ping >/dev/null 2>&1; then
  echo "test.sh: starting MariaDB"
  $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld 2>/dev/null || true
  $SUDO start-stop-daemon --start --oknodo --background --make-pidfile \
    --pidfile /run/mysqld/mariadbd.pid --exec /usr/sbin/mariadbd -- --user=mysql
  for _ in $(seq 1 120); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 0.25; done
  mariadb-admin ping >/dev/null
fi

# cargo-deb builds the package in tests/package.rs (about 9 minutes to
# install on the 2-core build machine, once: 2.5 CPU-minutes).
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked 2>&1 | tee target/test.log
# One closing line that counts across every test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' target/test.log
