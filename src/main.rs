//! The `lumpy` binary: parses the command line, sets up logging, runs the
//! command and maps its outcome to an exit status. Everything else is in the
//! library; see `lumpy::cli`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // One crypto provider for every TLS use (ring: no C build of aws-lc).
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let cli = lumpy::cli::Cli::parse();
    lumpy::cli::init_logging(&cli);
    match lumpy::cli::run(cli) {
        Ok(status) => status.into(),
        // The reader of our output went away (`| head`): nothing to report.
        Err(e) if lumpy::cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lumpy: error: {e:#}");
            lumpy::cli::Status::Failed.into()
        }
    }
}
