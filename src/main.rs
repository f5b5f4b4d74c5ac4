//! The `lumpy` binary: parses the command line, sets up logging, runs the
//! command and maps its outcome to an exit status. Everything else is in the
//! library; see `lumpy::cli`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // One crypto provider for every TLS use (ring: no C build of aws-lc).
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let cli = lumpy::cli::Cli::parse();
    lumpy::cli::init_logging(cli.verbose);
    match lumpy::cli::run(cli) {
        Ok(status) => status.into(),
        Err(e) => {
            eprintln!("lumpy: error: {e:#}");
            lumpy::cli::Status::Failed.into()
        }
    }
}
