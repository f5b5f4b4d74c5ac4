//! `user add|list|remove`: accounts of the web UI (`DIR/ui-users.json`).
//! Works while `lumpy serve` runs: the server re-reads the file.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};

use super::{DataDir, Status};
use crate::web::users;

#[derive(clap::Subcommand, Debug)]
pub enum UserCmd {
    /// Create a UI account; the password comes from a prompt (or stdin).
    Add {
        #[command(flatten)]
        dir: DataDir,
        /// The account name (the UI's login).
        name: String,
        /// Read the password from the first line of stdin instead of a prompt.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the UI accounts.
    List {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Remove a UI account; its sessions end at their next request.
    Remove {
        #[command(flatten)]
        dir: DataDir,
        /// The account name (the UI's login).
        name: String,
    },
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    let first = rpassword::prompt_password("Password: ").context("reading the password")?;
    let again = rpassword::prompt_password("Again: ").context("reading the password")?;
    if first != again {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

fn check_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if !dir.join("index.redb").exists() {
        bail!(
            "{}: not a lumpy data directory (run `lumpy init` first)",
            dir.display()
        );
    }
    Ok(())
}

pub fn run(cmd: UserCmd) -> anyhow::Result<Status> {
    match cmd {
        UserCmd::Add {
            dir,
            name,
            password_stdin,
        } => {
            check_dir(&dir.data)?;
            if !users::valid_name(&name) {
                return Err(users::UserError::BadName(name).into());
            }
            let password = read_password(password_stdin)?;
            users::add(&dir.data, &name, &password)?;
            outln!("added UI user '{name}'");
        }
        UserCmd::List { dir } => {
            check_dir(&dir.data)?;
            for u in users::load(&dir.data)? {
                outln!(
                    "{}\tcreated {}",
                    u.name,
                    super::query::fmt_epoch(u.created as u32)
                );
            }
        }
        UserCmd::Remove { dir, name } => {
            check_dir(&dir.data)?;
            users::remove(&dir.data, &name)?;
            outln!("removed UI user '{name}'");
        }
    }
    Ok(Status::Ok)
}
