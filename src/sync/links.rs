//! Links: the parent-side record of each child (secret file, health) and
//! the child-side peers that may pull.
//!
//! Owns `DIR/children/<name>.secret` (mode 0600) and the JSON link state kept
//! in the store's `link_state` table. Does no networking.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::auth::Secret;
use super::protocol::Summary;
use crate::store::{Store, StoreError};

/// Health and bookkeeping of one pull link, as the parent sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkState {
    pub last_attempt: u64,
    pub last_success: u64,
    pub last_error: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub segments_fetched: u64,
    /// ETag of the child's last summary: a no-op pull sends it back.
    pub etag: String,
    pub summary: Option<Summary>,
    /// Sensors this child offers that conflict with what we hold.
    pub conflicts: Vec<String>,
    /// On a mirror link: per sensor, the sequence up to which this node has
    /// committed every pcap segment, as last told to the child (its `prune`
    /// waits for it).
    #[serde(default)]
    pub pcap_marks: BTreeMap<u32, u64>,
}

pub fn load_state(store: &Store, name: &str) -> Result<LinkState, StoreError> {
    Ok(store
        .link_state(name)?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default())
}

pub fn save_state(store: &Store, name: &str, state: &LinkState) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(state).unwrap_or_default();
    store.set_link_state(name, &bytes)
}

/// Per sensor the fewest hops any child reports, and every node id below.
pub fn children_view(store: &Store) -> Result<(BTreeMap<u32, u32>, Vec<String>), StoreError> {
    let mut hops: BTreeMap<u32, u32> = BTreeMap::new();
    let mut below = Vec::new();
    for (_, bytes) in store.all_link_states()? {
        let Ok(state) = serde_json::from_slice::<LinkState>(&bytes) else {
            continue;
        };
        let Some(summary) = state.summary else {
            continue;
        };
        below.extend(summary.below.iter().cloned());
        for s in &summary.sensors {
            let e = hops.entry(s.sensor_id).or_insert(u32::MAX);
            *e = (*e).min(s.hops);
        }
    }
    Ok((hops, below))
}

/// Every child's last summary, by child name.
pub fn children_view_full(store: &Store) -> Result<Vec<(String, Summary)>, StoreError> {
    let mut out = Vec::new();
    for (name, bytes) in store.all_link_states()? {
        if let Ok(LinkState {
            summary: Some(s), ..
        }) = serde_json::from_slice::<LinkState>(&bytes)
        {
            out.push((name, s));
        }
    }
    Ok(out)
}

/// The child whose summary lists the sensor with pcap held and the fewest hops.
pub fn nearest_pcap_holder(store: &Store, sensor: u32) -> Result<Option<String>, StoreError> {
    let mut best: Option<(u32, u64, String)> = None;
    for (name, summary) in children_view_full(store)? {
        for s in summary
            .sensors
            .iter()
            .filter(|s| s.sensor_id == sensor && s.pcap_held_to > 0)
        {
            let better = match &best {
                None => true,
                Some((hops, held, _)) => {
                    (s.hops, std::cmp::Reverse(s.pcap_held_to)) < (*hops, std::cmp::Reverse(*held))
                }
            };
            if better {
                best = Some((s.hops, s.pcap_held_to, name.clone()));
            }
        }
    }
    Ok(best.map(|(_, _, name)| name))
}

pub fn secret_path(dir: &Path, child: &str) -> PathBuf {
    dir.join("children").join(format!("{child}.secret"))
}

/// Stores a child's link secret readable by the owner only.
pub fn write_secret(dir: &Path, child: &str, secret: &Secret) -> std::io::Result<PathBuf> {
    let path = secret_path(dir, child);
    crate::durable::write(&path, secret.to_text().as_bytes(), None, Some(0o600))?;
    Ok(path)
}

/// Why a link secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: super::auth::AuthError,
    },
}

pub fn read_secret(dir: &Path, child: &str) -> Result<Secret, SecretFileError> {
    let path = secret_path(dir, child);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(source) => return Err(SecretFileError::Read { path, source }),
    };
    Secret::parse(&text).map_err(|source| SecretFileError::Parse { path, source })
}

/// A link name: letters, digits, '-', '_' and '.', 1 to 64 characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
}
