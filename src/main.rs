//! The `lumpy` binary: parses the command line, sets up logging, runs the
//! command and maps its outcome to an exit status. Everything else is in the
//! library; see `lumpy::cli`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
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
