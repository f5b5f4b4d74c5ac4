//! Command line: clap definitions and dispatch, one file per command group.
//!
//! Owns turning arguments into calls on the library and results into text and
//! exit statuses. The only place (with `main.rs`) where `anyhow` is used.
//! Does no storage, capture or flow work of its own.
//!
//! Standard output is written through `out!`/`outln!`, which return the write
//! error instead of panicking as `println!` does: a reader that goes away
//! (`lumpy flows | head -1`) ends the command through the normal error path,
//! and `main` turns a broken pipe into a quiet exit 0 (see `is_broken_pipe`).

/// `print!` that hands a failed write (a closed pipe) back with `?`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))?
    };
}

/// `eprintln!` through the command's error sink: this process's stderr, or
/// the client's when the command runs inside `lumpy serve` (src/control.rs).
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `println!` that hands a failed write (a closed pipe) back with `?`.
macro_rules! outln {
    () => {
        $crate::cli::write_stdout(format_args!("\n"))?
    };
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

mod archive_cmd;
mod docs_cmd;
mod export_cmd;
mod import_cmd;
mod ingest_cmd;
mod links_cmd;
mod node_cmds;
mod p0f_cmd;
mod pcap_cmd;
mod query;
mod repair_cmd;
mod sebek_cmd;

mod user_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use crate::time_arg::parse_time;

const EXIT_STATUSES: &str = "Exit status:\n  0  success\n  1  finished, but found problems (damaged files, truncated or refused input): see the report\n  2  failed: nothing was changed beyond what was reported";

/// lumpy: a distributed, self-verifying archive for honeynet sensors.
#[derive(Parser, Debug)]
#[command(name = "lumpy", version, about, after_help = EXIT_STATUSES)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug); LUMPY_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log line format on stderr: text (colour only on a terminal) or json (one object per line).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Compute a sensor id with the makesensor_id rule, or read a HwSENSOR_ID file.
    SensorId(node_cmds::SensorIdArgs),
    /// Create a node (one roo incarnation) in a data directory.
    Init(node_cmds::InitArgs),
    /// Ingest capture files and directories (Honeywall /var/log/pcap layout too).
    Ingest(ingest_cmd::IngestArgs),
    /// List flows like Walleye's connection table.
    Flows(query::FlowsArgs),
    /// Show what a node holds.
    Status(node_cmds::DataArg),
    /// Every sensor incarnation: install time, management address, and the
    /// earlier and later incarnations at the same address.
    Sensors(node_cmds::DataArg),
    /// Re-hash every segment, check every index entry and the index file against its seal.
    Verify(node_cmds::VerifyArgs),
    /// Put back damaged or missing segments from a child, a data directory or a bundle; rewrite an index file changed since its seal.
    Repair(repair_cmd::RepairArgs),
    /// Show or change DIR/lumpy.toml.
    #[command(subcommand)]
    Config(node_cmds::ConfigCmd),
    /// Run the node: peer API, web UI, periodic pulls from children, follow ingest, live sebek.
    Serve(links_cmd::ServeArgs),
    /// Write a flow's (or a filter's) packets as a pcap file.
    Pcap(Box<pcap_cmd::PcapArgs>),
    /// Retire a sensor: pull all of it (pcap included) here, verify, mark it offline.
    Decommission(links_cmd::DecommissionArgs),
    /// Drop pcap (and flow rows) older than N days on this node.
    Prune(links_cmd::PruneArgs),
    /// Import data from legacy honeywalls.
    #[command(subcommand)]
    Import(import_cmd::ImportCmd),
    /// Offline bundles of one sensor: create, verify, import.
    #[command(subcommand)]
    Archive(archive_cmd::ArchiveCmd),
    /// Pull once from the children (for cron) and exit.
    Pull(links_cmd::PullArgs),
    /// Parents that may pull from this node (run on the child).
    #[command(subcommand)]
    Peer(links_cmd::PeerCmd),
    /// Children this node pulls from (run on the parent).
    #[command(subcommand)]
    Child(links_cmd::ChildCmd),
    /// Export the walleye tables (MariaDB/MySQL, hflow or walleye_0_3).
    #[command(subcommand)]
    Export(export_cmd::ExportCmd),
    /// Sebek processes with their tree, commands, opens and sockets.
    Processes(sebek_cmd::ProcessesArgs),
    /// What a process read from its terminal (sebek reads of fd 0).
    Keystrokes(sebek_cmd::KeystrokesArgs),
    /// A host's OS fingerprints over time and its flows.
    Hosts(sebek_cmd::HostsArgs),
    /// Passive OS fingerprints (p0f v3 signatures) of the TCP handshakes in
    /// capture files, printed in p0f's log format (like `p0f -r FILE`).
    Fingerprint(p0f_cmd::FingerprintArgs),
    /// Accounts of the web UI (add, list, remove).
    #[command(subcommand)]
    User(user_cmd::UserCmd),
    /// Write the sebek generator's scripted session as a pcap (fixtures).
    #[command(hide = true)]
    GenSebek(sebek_cmd::GenSebekArgs),
    /// Print a shell completion script (bash, zsh, fish, ...) on standard output.
    Completions(docs_cmd::CompletionsArgs),
    /// Write the man pages (one per command) into a directory (packaging).
    #[command(hide = true)]
    GenerateMan(docs_cmd::GenerateManArgs),
}

/// How a command ended, mapped to the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Problems,
    Failed,
}

impl Status {
    /// The exit status.
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Problems => 1,
            Status::Failed => 2,
        }
    }

    /// The status an exit code stands for (a forwarded command's).
    pub fn from_code(code: u8) -> Status {
        match code {
            0 => Status::Ok,
            1 => Status::Problems,
            _ => Status::Failed,
        }
    }
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> ExitCode {
        ExitCode::from(s.code())
    }
}

/// Writes to standard output (the client's, for a command run inside the
/// daemon), returning the error (a closed pipe) rather than panicking; used
/// by `out!` and `outln!`.
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    let text = match args.as_str() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(args.to_string()),
    };
    match crate::control::send(crate::control::STDOUT, text.as_bytes()) {
        Some(r) => r,
        None => std::io::stdout().lock().write_all(text.as_bytes()),
    }
}

/// Writes to standard error (the client's inside the daemon); a failure is
/// ignored as `eprintln!` would not be able to report it either.
pub(crate) fn write_stderr(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let text = args.to_string();
    if crate::control::send(crate::control::STDERR, text.as_bytes()).is_none() {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// Standard output as a `Write` (binary output such as `pcap -w -`).
pub(crate) fn stdout_writer() -> Box<dyn std::io::Write> {
    if crate::control::attached_node().is_some() {
        Box::new(crate::control::ClientStdout)
    } else {
        Box::new(std::io::stdout().lock())
    }
}

/// True when the command failed only because whoever read its standard
/// output went away (`| head`): the Unix convention is to end quietly.
/// Runs a command line a client sent to the daemon's control socket
/// (`control::Runner`): parsed with the same clap definition, run by the
/// same [`run`], errors to the client's stderr; gives the exit status.
pub fn run_forwarded(args: &[std::ffi::OsString]) -> u8 {
    use clap::Parser;
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = crate::control::send(crate::control::STDERR, e.render().to_string().as_bytes());
            return 2;
        }
    };
    match run(cli) {
        Ok(status) => status.code(),
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            let _ = crate::control::send(
                crate::control::STDERR,
                format!("lumpy: error: {e:#}\n").as_bytes(),
            );
            2
        }
    }
}

pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// How log lines on stderr are written.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event (colour only when stderr is a terminal).
    #[default]
    Text,
    /// One JSON object per line (for journald, ELK, Loki).
    Json,
}

/// Logs go to stderr; LUMPY_LOG (an env-filter directive) wins over -v.
/// The daemon (`serve`) also logs its own lifecycle (listening, stopping,
/// stopped cleanly) and each command a client runs on its control socket
/// at the default level, so a SIGTERM leaves a line.
/// Colour only when stderr is a terminal and NO_COLOR is unset, so a log
/// written to a file or the journal carries no escape codes.
pub fn init_logging(cli: &Cli) {
    use std::io::IsTerminal;
    let daemon = matches!(cli.command, Command::Serve(_));
    let default = match (cli.verbose, daemon) {
        (0, false) => "warn",
        (0, true) => "warn,lumpy::serve=info,lumpy::control=info",
        (1, _) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LUMPY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::control::LogWriter);
    let _ = match cli.log_format {
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(colour).try_init()
        }
    };
}

/// The data directory of a command that a running `lumpy serve` runs for
/// us when it holds that directory (every command that reads or writes a
/// node; not `serve` and `init`, and not the ones that never open the store:
/// `user` reads a password from this terminal, `config show` only reads,
/// `export` reads the mirror beside the daemon).
fn forwarded_dir(c: &Command) -> Option<&std::path::Path> {
    use archive_cmd::ArchiveCmd as A;
    use links_cmd::{ChildCmd as C, PeerCmd as P};
    fn d(d: &DataDir) -> Option<&std::path::Path> {
        Some(d.data.as_path())
    }
    match c {
        Command::Ingest(a) => d(&a.dir),
        Command::Flows(a) => d(&a.dir),
        Command::Status(a) | Command::Sensors(a) => d(&a.dir),
        Command::Verify(a) => d(&a.dir),
        Command::Repair(a) => d(&a.dir),
        Command::Config(node_cmds::ConfigCmd::Set { dir, .. }) => d(dir),
        Command::Pcap(a) => a.data.as_deref(),
        Command::Import(
            import_cmd::ImportCmd::Legacy { dir, .. }
            | import_cmd::ImportCmd::P0fLog(p0f_cmd::ImportP0fArgs { dir, .. }),
        ) => d(dir),
        Command::Decommission(a) => d(&a.dir),
        Command::Prune(a) => d(&a.dir),
        Command::Archive(A::Create { dir, .. } | A::Import { dir, .. }) => d(dir),
        Command::Pull(a) => d(&a.dir),
        Command::Peer(P::Add { dir, .. } | P::Remove { dir, .. } | P::List(dir)) => d(dir),
        Command::Child(
            C::Add { dir, .. }
            | C::Remove { dir, .. }
            | C::List(dir)
            | C::ClearConflicts { dir, .. },
        ) => d(dir),
        Command::Processes(a) => d(&a.dir),
        Command::Keystrokes(a) => d(&a.dir),
        Command::Hosts(a) => d(&a.dir),
        _ => None,
    }
}

/// Runs the command: in the `lumpy serve` that holds its data directory
/// when one answers on the directory's control socket (src/control.rs),
/// here otherwise. Both run `dispatch`, so the output is the same.
pub fn run(cli: Cli) -> anyhow::Result<Status> {
    if crate::control::attached_node().is_none()
        && let Some(dir) = forwarded_dir(&cli.command)
        && let Some(code) = crate::control::forward(dir)
    {
        return Ok(Status::from_code(code?));
    }
    dispatch(cli)
}

fn dispatch(cli: Cli) -> anyhow::Result<Status> {
    match cli.command {
        Command::SensorId(a) => node_cmds::sensor_id(a),
        Command::Init(a) => node_cmds::init(a),
        Command::Ingest(a) => ingest_cmd::run(a),
        Command::Flows(a) => query::flows(a),
        Command::Status(a) => node_cmds::status(a),
        Command::Sensors(a) => node_cmds::sensors(a),
        Command::Verify(a) => node_cmds::verify(a),
        Command::Config(c) => node_cmds::config(c),
        Command::Repair(a) => repair_cmd::run(a),
        Command::Serve(a) => links_cmd::serve(a),
        Command::Pull(a) => links_cmd::pull(a),
        Command::Archive(c) => archive_cmd::run(c),
        Command::Import(c) => import_cmd::run(c),
        Command::Prune(a) => links_cmd::prune(a),
        Command::Decommission(a) => links_cmd::decommission(a),
        Command::Pcap(a) => pcap_cmd::run(*a),
        Command::Peer(c) => links_cmd::peer(c),
        Command::Child(c) => links_cmd::child(c),
        Command::Export(c) => export_cmd::run(c),
        Command::GenSebek(a) => sebek_cmd::gen_sebek(a),
        Command::Fingerprint(a) => p0f_cmd::fingerprint(a),
        Command::Processes(a) => sebek_cmd::processes(a),
        Command::Keystrokes(a) => sebek_cmd::keystrokes(a),
        Command::Hosts(a) => sebek_cmd::hosts(a),
        Command::User(c) => user_cmd::run(c),
        Command::Completions(a) => docs_cmd::completions(a),
        Command::GenerateMan(a) => docs_cmd::generate_man(a),
    }
}

/// The `--data DIR` argument shared by most commands.
#[derive(clap::Args, Debug, Clone)]
pub struct DataDir {
    /// The node's data directory.
    #[arg(long = "data", value_name = "DIR")]
    pub data: PathBuf,
}

/// Runs `f` on the node of `dir`: the daemon's own (under its node lock,
/// so writes go through its one writer) when the command runs inside
/// `lumpy serve`, else the node opened here.
pub(crate) fn with_node<T>(
    dir: &std::path::Path,
    f: impl FnOnce(&mut crate::node::Node) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    with_node_opened(dir, crate::node::open, f)
}

/// [`with_node`] with the opener to use when no daemon runs (e.g.
/// `node::open_lagging`, which skips the mirror's catch-up); the daemon's
/// node is used as it is.
pub(crate) fn with_node_opened<T, E>(
    dir: &std::path::Path,
    open: fn(&std::path::Path) -> Result<crate::node::Node, E>,
    f: impl FnOnce(&mut crate::node::Node) -> anyhow::Result<T>,
) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match crate::control::attached_node() {
        Some(ctx) => {
            let mut node = ctx
                .node
                .lock()
                .map_err(|_| anyhow::anyhow!("the running node's lock is poisoned"))?;
            f(&mut node)
        }
        None => f(&mut open(dir)?),
    }
}

/// After a command inside `lumpy serve` rewrote lumpy.toml: the daemon's
/// node takes the new file (what reads the config per use sees the change;
/// listeners and pull loops take theirs at serve's start). Not under
/// `with_node`, whose lock this takes.
pub(crate) fn daemon_config_changed(dir: &std::path::Path) {
    if let Some(ctx) = crate::control::attached_node()
        && let Ok(cfg) = crate::config::Config::load(dir)
        && let Ok(mut node) = ctx.node.lock()
    {
        node.config = cfg;
    }
}

/// Runs `f` on the store of `dir`: the daemon's (no node lock: the store
/// takes concurrent readers) inside `lumpy serve`, else opened here.
pub(crate) fn with_store<T>(
    dir: &std::path::Path,
    f: impl FnOnce(&crate::store::Store) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    match crate::control::attached_node() {
        Some(ctx) => f(&ctx.store),
        None => f(&crate::store::Store::open(dir, false)?),
    }
}

/// The pull context of `dir`: the daemon's inside `lumpy serve`, else a
/// new one on the node opened here (with a progress bar on a terminal).
pub(crate) fn pull_context(
    dir: &std::path::Path,
    progress: &str,
) -> anyhow::Result<std::sync::Arc<crate::sync::client::PullContext>> {
    if let Some(ctx) = crate::control::attached_node() {
        return Ok(ctx);
    }
    let mut ctx = crate::sync::client::PullContext::new(crate::node::open(dir)?)?;
    ctx.progress = progress_bar(0, progress);
    Ok(std::sync::Arc::new(ctx))
}

/// The node's SQLite mirror for a read-only command: through the node when
/// the data directory is free (so the mirror is caught up first), or on its
/// own while another lumpy (a running `serve`) holds the directory, since
/// SQLite lets readers beside a writer.
pub(crate) fn reading_mirror(dir: &std::path::Path) -> anyhow::Result<crate::mirror::Mirror> {
    // Inside the daemon, which keeps its mirror caught up.
    if crate::control::attached_node().is_some() {
        return Ok(crate::mirror::Mirror::open_reader(
            &dir.join(crate::node::MIRROR_FILE),
        )?);
    }
    match crate::node::open(dir) {
        Ok(node) => Ok(node.mirror),
        Err(crate::node::NodeError::Store(crate::store::StoreError::InUse { .. })) => Ok(
            crate::mirror::Mirror::open_reader(&dir.join(crate::node::MIRROR_FILE))?,
        ),
        Err(e) => Err(e.into()),
    }
}

/// A progress bar on stderr when it is a terminal, hidden otherwise.
pub(crate) fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    // Inside the daemon, stderr is the daemon's (the journal), not the client's.
    if !std::io::stderr().is_terminal() || crate::control::attached_node().is_some() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every argument of every command (hidden ones included) has a help
    /// line, and every command says what it does: `--help` leaves nothing
    /// for the operator to guess.
    #[test]
    fn every_option_of_every_command_is_described() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let here = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() && cmd.get_long_about().is_none() {
                missing.push(format!("{here}: no description"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{here}: argument '{id}' has no help"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" {
                    walk(sub, &here, missing);
                }
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "undocumented:\n{}", missing.join("\n"));
    }

    #[test]
    fn parses_init_forms() {
        let c = Cli::try_parse_from(["lumpy", "init", "--data", "/x", "--sensor-id", "5"]).unwrap();
        assert!(matches!(c.command, Command::Init(_)));
        assert!(Cli::try_parse_from(["lumpy", "init", "--data", "/x"]).is_err());
        assert!(
            Cli::try_parse_from([
                "lumpy",
                "init",
                "--data",
                "/x",
                "--sensor-id",
                "5",
                "--manager-ip",
                "10.0.0.1"
            ])
            .is_ok(),
            "a given id with the management address it runs at"
        );
    }
}
