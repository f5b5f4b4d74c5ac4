//! `gen-sebek` (hidden): writes the sebek generator's scripted session as a
//! pcap file, for fixtures (fixtures/README.md).

use std::path::PathBuf;

use anyhow::Context;

use super::Status;
use crate::sebek::generate::{shell_session, write_pcap};

#[derive(clap::Args, Debug)]
pub struct GenSebekArgs {
    /// The pcap file to write.
    pub out: PathBuf,
    /// Sebek UDP port.
    #[arg(long, default_value_t = crate::sebek::DEFAULT_PORT)]
    pub port: u16,
}

pub fn gen_sebek(a: GenSebekArgs) -> anyhow::Result<Status> {
    let bytes = write_pcap(&shell_session(a.port));
    std::fs::write(&a.out, bytes).with_context(|| format!("writing {}", a.out.display()))?;
    Ok(Status::Ok)
}
