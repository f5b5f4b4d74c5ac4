//! `lumpy repair`: verify, then put back damaged or missing segment files
//! from good copies elsewhere (src/repair.rs), then verify again.

use std::path::PathBuf;

use anyhow::bail;

use super::{DataDir, Status};
use crate::config::Config;
use crate::repair::{Source, damaged_segments, is_data_directory, repair};
use crate::store::Store;
use crate::store::verify::verify;

#[derive(clap::Args, Debug)]
pub struct RepairArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// Where good copies may be, tried in order: a child of this node (its
    /// name or URL), another node's data directory, or an archive bundle.
    /// Default: every child of this node.
    #[arg(long = "from", value_name = "CHILD|URL|DIR|BUNDLE")]
    pub from: Vec<String>,
    /// Drop the quarantined record segments whose records still cannot be
    /// read after the repair: their files go, their places stay known.
    #[arg(long)]
    pub drop_quarantined: bool,
}

/// Quarantined segments whose records now read (a repaired file) leave the
/// quarantine; with `drop`, the others are dropped. Prints what it did.
fn settle_quarantine(store: &Store, drop: bool) -> anyhow::Result<()> {
    for (id, why) in store.quarantined()? {
        let readable = store
            .read_segment(&id)
            .map_err(crate::node::NodeError::from)
            .and_then(|bytes| crate::node::decode_record_segment(&id, &bytes));
        if readable.is_ok() {
            store.release(&id)?;
            outln!("released {id} from quarantine: its records read again");
        } else if drop {
            store.drop_quarantined(&id)?;
            outln!(
                "dropped quarantined segment {id} ({}): {why}",
                store.segment_path(&id).display()
            );
        }
    }
    Ok(())
}

fn sources(config: &Config, from: &[String]) -> anyhow::Result<Vec<Source>> {
    if from.is_empty() {
        return Ok(config.children.iter().cloned().map(Source::Child).collect());
    }
    let mut out = Vec::new();
    for f in from {
        let trimmed = f.trim_end_matches('/');
        if let Some(c) = config
            .children
            .iter()
            .find(|c| c.name == *f || c.url.trim_end_matches('/') == trimmed)
        {
            out.push(Source::Child(c.clone()));
            continue;
        }
        let path = PathBuf::from(f);
        if path.is_dir() && is_data_directory(&path) {
            out.push(Source::Directory(path));
        } else if path.is_file() {
            out.push(Source::Bundle(path));
        } else {
            bail!(
                "--from {f}: neither a child of this node (see `lumpy child list`), a lumpy data directory nor an archive bundle"
            );
        }
    }
    Ok(out)
}

/// An index file that changed since its seal (§6.4 of docs/STORAGE.md) is
/// rewritten into a fresh file from its entries, which drops whatever the
/// change touched in unused pages. An index whose entries cannot all be read
/// is left as it is (the verify that follows reports it): a rewrite would
/// lose them.
fn rewrite_changed_index(store: Store) -> anyhow::Result<Store> {
    let Some(why) = crate::store::seal::damage(store.dir()) else {
        return Ok(store);
    };
    let index = store.index_path();
    match store.copy_index_to_fresh_file() {
        Ok((fresh, copied)) => {
            let store = store.replace_index_with(&fresh)?;
            outln!(
                "rewrote {} into a fresh file ({copied} entries): {why}",
                index.display()
            );
            Ok(store)
        }
        Err(e) => {
            outln!(
                "NOT rewritten {}: {e}; the index must be rebuilt by hand (re-ingest or pull into a new node)",
                index.display()
            );
            Ok(store)
        }
    }
}

pub fn run(a: RepairArgs) -> anyhow::Result<Status> {
    let config = Config::load(&a.dir.data)?;
    let sources = sources(&config, &a.from)?;
    if let Some(ctx) = crate::control::attached_node() {
        // A running serve holds the index open: it is not rewritten here
        // (a changed index is found at open, when serve is not running).
        let (ids, outcomes) = put_back(&ctx.store, &sources)?;
        return settle(&ctx.store, &ids, &outcomes, a.drop_quarantined);
    }
    let store = Store::open(&a.dir.data, false)?;
    let (ids, outcomes) = put_back(&store, &sources)?;
    let store = rewrite_changed_index(store)?;
    settle(&store, &ids, &outcomes, a.drop_quarantined)
}

/// Verifies, then fetches every damaged or missing segment from `sources`.
fn put_back(
    store: &Store,
    sources: &[Source],
) -> anyhow::Result<(Vec<crate::store::SegmentId>, Vec<crate::repair::Outcome>)> {
    let before = verify(store, |_| {})?;
    let ids = damaged_segments(store, &before);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcomes = repair(store, &ids, sources, rt.handle());
    for o in &outcomes {
        match &o.result {
            Ok(from) => outln!("repaired {} ({}) from {from}", o.id, o.path.display()),
            Err(why) => outln!("NOT repaired {} ({}): {why}", o.id, o.path.display()),
        }
    }
    Ok((ids, outcomes))
}

/// Settles the quarantine, verifies again and says what is left.
fn settle(
    store: &Store,
    ids: &[crate::store::SegmentId],
    outcomes: &[crate::repair::Outcome],
    drop_quarantined: bool,
) -> anyhow::Result<Status> {
    settle_quarantine(store, drop_quarantined)?;
    let after = verify(store, |_| {})?;
    for p in &after.problems {
        outln!("DAMAGED {p}");
    }
    let repaired = outcomes.iter().filter(|o| o.result.is_ok()).count();
    outln!(
        "{} damaged or missing segments, {repaired} repaired; {}",
        ids.len(),
        if after.is_clean() {
            "verify finds no problems".to_string()
        } else {
            format!("{} problems remain", after.problems.len())
        }
    );
    Ok(if after.is_clean() {
        Status::Ok
    } else {
        Status::Problems
    })
}
