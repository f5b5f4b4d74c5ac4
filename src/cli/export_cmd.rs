//! `export mysql`: the node's walleye tables into MariaDB/MySQL, or a SQL
//! script; `export clickhouse`: its record tables into ClickHouse.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use super::{DataDir, Status, progress_bar};
use crate::export::{self, Access, ExportOptions, Flavor};
use crate::mysql::Target;

#[derive(clap::Subcommand, Debug)]
pub enum ExportCmd {
    /// Into a MariaDB/MySQL database (created when absent), incrementally:
    /// a repeated export sends only what changed. Or, with --sql, as a script.
    Mysql(MysqlArgs),
    /// Into ClickHouse over its HTTP interface (database and tables created
    /// when absent), incrementally: a repeated export sends only what changed.
    Clickhouse(ClickhouseArgs),
}

#[derive(clap::Args, Debug)]
pub struct ClickhouseArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// ClickHouse's HTTP interface: http(s)://HOST[:PORT] (port 8123 by
    /// default). Never put the password here: use --password-file.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The database (created when absent).
    #[arg(long, default_value = "lumpy", value_name = "NAME")]
    pub database: String,
    /// The ClickHouse user.
    #[arg(long, default_value = "default", value_name = "USER")]
    pub user: String,
    /// File holding the user's password (one line).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Only this sensor (repeatable); default every sensor in the mirror.
    #[arg(long = "sensor", value_name = "ID")]
    pub sensors: Vec<u32>,
    /// Scale out: export into this cluster (of the servers' <remote_servers>):
    /// local tables on every --shard, a Distributed table over them sharded
    /// by sensor_id, inserts through --url.
    #[arg(long, value_name = "NAME", requires = "shards")]
    pub cluster: Option<String>,
    /// HTTP URL of one shard of --cluster (repeat for each shard).
    #[arg(long = "shard", value_name = "URL", requires = "cluster")]
    pub shards: Vec<String>,
    /// Rows per INSERT (ClickHouse advises 10k to 100k).
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch_rows: u32,
    /// Ignore the watermarks and send every row again (rows are replaced
    /// by key: nothing is duplicated in FINAL reads).
    #[arg(long)]
    pub full: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlavorArg {
    /// hflow2's `hflow` database (schema version 3, with is_local).
    Hflow,
    /// roo 1.x's `walleye_0_3` (flows in `argus`, argus_id in ids and sys_socket).
    #[value(name = "walleye_0_3")]
    Walleye03,
}

#[derive(clap::Args, Debug)]
pub struct MysqlArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// Target database: mysql://USER@HOST[:PORT]/DATABASE[?socket=PATH].
    /// Never put the password here (process lists show it): use --password-file.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "sql",
        conflicts_with = "sql"
    )]
    pub url: Option<String>,
    /// File holding the database password (one line).
    #[arg(long, value_name = "FILE", requires = "url")]
    pub password_file: Option<PathBuf>,
    /// Write a SQL script (`mariadb DB < FILE` loads it) instead of connecting.
    #[arg(long, value_name = "FILE")]
    pub sql: Option<PathBuf>,
    /// The target schema: hflow (the Honeywall's) or walleye_0_3.
    #[arg(long, value_enum, default_value_t = FlavorArg::Hflow)]
    pub flavor: FlavorArg,
    /// Only this sensor (repeatable); default every sensor in the mirror.
    #[arg(long = "sensor", value_name = "ID")]
    pub sensors: Vec<u32>,
    /// Fill sensor.access_via with this IPv4 address (the node pcap_api.pl
    /// proxies pcap requests to; 0.0.0.0 = local). Untouched when not given.
    #[arg(long, value_name = "IPV4")]
    pub access_via: Option<Ipv4Addr>,
    /// sensor.login: the Walleye user on the --access-via node.
    #[arg(long, value_name = "USER", requires = "access_via")]
    pub access_login: Option<String>,
    /// File holding sensor.passwd: that Walleye user's password.
    #[arg(long, value_name = "FILE", requires = "access_via")]
    pub access_password_file: Option<PathBuf>,
    /// Rows per INSERT and per transaction.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_rows: u32,
    /// Ignore the watermarks and send every row again (upserts: nothing is duplicated).
    #[arg(long)]
    pub full: bool,
    /// Connections to the database: batches are written in parallel and
    /// committed in order.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub connections: u32,
}

pub fn run(cmd: ExportCmd) -> anyhow::Result<Status> {
    match cmd {
        ExportCmd::Mysql(a) => mysql(a),
        ExportCmd::Clickhouse(a) => clickhouse(a),
    }
}

/// One line of a secret file, without its line end.
pub(super) fn read_secret_file(path: &Path, what: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{what} {}: cannot read", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(file = %path.display(), "{what} is readable by other users; chmod 600 it");
        }
    }
    let line = text.lines().next().unwrap_or("").to_string();
    Ok(line)
}

fn mysql(a: MysqlArgs) -> anyhow::Result<Status> {
    let flavor = match a.flavor {
        FlavorArg::Hflow => Flavor::Hflow,
        FlavorArg::Walleye03 => Flavor::Walleye03,
    };
    let password = a
        .password_file
        .as_deref()
        .map(|p| read_secret_file(p, "--password-file"))
        .transpose()?
        .filter(|p| !p.is_empty());
    let access = match a.access_via {
        None => None,
        Some(via) => {
            let passwd = a
                .access_password_file
                .as_deref()
                .map(|p| read_secret_file(p, "--access-password-file"))
                .transpose()?
                .unwrap_or_default();
            let access = Access {
                via,
                login: a.access_login.clone().unwrap_or_default(),
                passwd,
            };
            access.check(&a.dir.data, password.as_deref())?;
            Some(access)
        }
    };
    let opts = ExportOptions {
        flavor,
        sensors: a.sensors.clone(),
        access,
        batch_rows: a.batch_rows as usize,
        full: a.full,
        connections: a.connections as usize,
    };
    let bar = rows_bar();
    let on_total = |n: u64| bar.set_length(n);
    let progress = |n: u64| bar.inc(n);
    let start = Instant::now();
    let (stats, shown) = match (&a.url, &a.sql) {
        (_, Some(file)) => (
            export::export_sql(&a.dir.data, file, &opts, &on_total, &progress)?,
            file.display().to_string(),
        ),
        (Some(url), None) => {
            let target = Target::parse(url, password)?;
            tracing::info!(target = %target.shown, flavor = flavor.name(), "export");
            (
                export::export_mysql(&a.dir.data, &target, &opts, &on_total, &progress)?,
                target.shown.clone(),
            )
        }
        (None, None) => anyhow::bail!("give --url or --sql"),
    };
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    if stats.rows == 0 && a.sql.is_none() {
        outln!(
            "{shown} ({}) is up to date: nothing to export",
            flavor.name()
        );
    } else {
        outln!(
            "exported {} rows to {shown} ({}) in {secs:.2} s ({:.0} rows/s)",
            stats.rows,
            flavor.name(),
            stats.rows as f64 / secs.max(1e-9)
        );
        for s in &stats.sent {
            outln!("  {} sensor {}: {} rows", s.table, s.sensor, s.rows);
        }
    }
    if stats.adjusted > 0 {
        eprintln!(
            "lumpy: warning: {} values did not fit their legacy column and were clamped or cut (see docs/ARCHITECTURE.md, export)",
            stats.adjusted
        );
    }
    Ok(Status::Ok)
}

fn clickhouse(a: ClickhouseArgs) -> anyhow::Result<Status> {
    let password = a
        .password_file
        .as_deref()
        .map(|p| read_secret_file(p, "--password-file"))
        .transpose()?
        .filter(|p| !p.is_empty());
    let mut target = export::ChTarget::parse(&a.url, &a.database, &a.user, password)?;
    if let Some(cluster) = &a.cluster {
        target = target.with_cluster(cluster, &a.shards)?;
    }
    let opts = export::ChOptions {
        sensors: a.sensors.clone(),
        batch_rows: a.batch_rows as usize,
        full: a.full,
    };
    let bar = rows_bar();
    let on_total = |n: u64| bar.set_length(n);
    let progress = |n: u64| bar.inc(n);
    let start = Instant::now();
    tracing::info!(target = %target.shown, "export");
    let stats = export::export_clickhouse(&a.dir.data, &target, &opts, &on_total, &progress)?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let shown = &target.shown;
    if stats.rows == 0 && stats.sent.is_empty() {
        outln!("{shown} is up to date: nothing to export");
    } else {
        outln!(
            "exported {} rows to {shown} in {secs:.2} s ({:.0} rows/s)",
            stats.rows,
            stats.rows as f64 / secs.max(1e-9)
        );
        for s in &stats.sent {
            outln!("  {} sensor {}: {} rows", s.table, s.sensor, s.rows);
        }
    }
    Ok(Status::Ok)
}

/// The progress bar of an export: rows sent of rows to send.
fn rows_bar() -> indicatif::ProgressBar {
    let bar = progress_bar(0, "export");
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:40}] {pos}/{len} rows {per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
