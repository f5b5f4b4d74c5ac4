//! The integration test binary: drives the real `lumpy` executable against
//! real captures made by real tools (fixtures/, made by fixtures/make-fixtures.sh)
//! and compares with the tools an operator would otherwise use (argus, tcpdump).

mod util;

mod archive;
mod campaign;
mod cli;
mod clickhouse;
mod community_id;
mod daemon;
mod export;
mod flood;
mod flows_vs_argus;
mod full_disk;
mod hostile;
mod incarnations;
mod ingest;
mod legacy;
mod load;
mod p0f;
mod package;
mod pcap;
mod sebek;
mod sync;
mod trust;
mod verify;
mod web;
