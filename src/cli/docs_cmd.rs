//! `completions` and `generate-man`: shell completions and man pages, made
//! from the same clap definition as `--help`, for the Debian package
//! (packaging/build-deb.sh) and for operators who install by hand.
//! Reads nothing but the command definition; writes only where it is told.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;

use super::{Cli, Status};

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for (bash, zsh, fish, elvish or powershell).
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(clap::Args, Debug)]
pub struct GenerateManArgs {
    /// Directory to write the pages into (lumpy.1, lumpy-flows.1, ...); created if missing.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Writes the completion script for `shell` on standard output
/// (e.g. `lumpy completions bash > /etc/bash_completion.d/lumpy`).
pub fn completions(a: CompletionsArgs) -> anyhow::Result<Status> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "lumpy", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Ok(Status::Ok)
}

/// Writes one man page per command: `lumpy.1`, then `lumpy-<sub>.1` and
/// `lumpy-<sub>-<subsub>.1` (hidden commands left out), as git does.
pub fn generate_man(a: GenerateManArgs) -> anyhow::Result<Status> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let cmd = Cli::command();
    let mut written = 0;
    write_pages(&cmd, "lumpy", &a.dir, &mut written)?;
    outln!("wrote {written} man pages to {}", a.dir.display());
    Ok(Status::Ok)
}

fn write_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut usize,
) -> anyhow::Result<()> {
    let cmd = cmd
        .clone()
        .name(name.to_string())
        .version(env!("CARGO_PKG_VERSION"));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .with_context(|| format!("rendering the man page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    *written += 1;
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
