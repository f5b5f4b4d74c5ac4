//! Peer protocol messages, version 1 (docs/PROTOCOL.md).
//!
//! Owns the serde types a parent and a child exchange and the constants of
//! the wire format. The only types the client and the server share.
//! **Architecture invariant:** depends on neither warp nor reqwest.

use serde::{Deserialize, Serialize};

/// Protocol version spoken by this lumpy; the path prefix is `/v1`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest request body a node accepts on the peer API.
pub const MAX_REQUEST_BODY: u64 = 1024 * 1024;
/// Seconds a client has to send a request's head, and as long again for
/// its body, before the peer API gives up on it (slow senders).
pub const REQUEST_READ_SECS: u64 = 10;
/// Most catalogue entries in one page.
pub const MAX_CATALOG_PAGE: usize = 10_000;
/// Most segment ids in one fetch request.
pub const MAX_FETCH_IDS: usize = 512;
/// Bytes of a fetch frame header: 32-byte id and 8-byte little-endian length.
pub const FRAME_HEADER_LEN: usize = 40;
/// Name of the authentication header.
pub const AUTH_HEADER: &str = "x-lumpy-auth";
/// Accepted clock difference for a signed request, in seconds.
pub const REPLAY_WINDOW_SECS: i64 = 300;

/// What a node holds, per origin sensor: the answer to `GET /v1/summary`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub protocol: u32,
    /// The answering node's id (128-bit hex).
    pub node_id: String,
    /// Ids of every node at or below the answering node, itself included.
    pub below: Vec<String>,
    pub sensors: Vec<SensorSummary>,
    /// blake3 over everything above; also sent as the ETag.
    pub digest: String,
}

/// One origin sensor as a node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorSummary {
    pub sensor_id: u32,
    /// Id of the sensor's segment with origin sequence 1: names the incarnation.
    pub first_id: String,
    /// Highest sequence number up to which the node knows every entry.
    pub max_seq: u64,
    /// Chain hash over entries 1..=max_seq (docs/PROTOCOL.md §3).
    pub chain: String,
    /// 0 at the origin, else 1 + the nearest child's hops.
    pub hops: u32,
    /// Sequence numbers up to which the node holds every pcap segment.
    pub pcap_held_to: u64,
    /// Newest item time among held segments, ns since the epoch.
    pub newest_ns: u64,
    /// Which incarnation of a roo this sensor is (from the answering node's
    /// mirror); absent until its sensor row is there, and from older nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<IncarnationInfo>,
}

/// A sensor's incarnation as the peer API reports it (`mirror::incarnations`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncarnationInfo {
    pub name: String,
    pub install_sec: u32,
    /// The management address, when the origin recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manage_ip: Option<String>,
    /// Sensor ids of the incarnations at the same address installed before
    /// and after this one, oldest first.
    #[serde(default)]
    pub earlier: Vec<u32>,
    #[serde(default)]
    pub later: Vec<u32>,
}

/// One place in a sensor's sequence (`GET /v1/catalog/{sensor}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub seq: u64,
    pub id: String,
    /// 1 pcap, 2 records (as the segment header).
    pub kind: u8,
    pub stored_bytes: u64,
    /// Whether the answering node holds the file (it can be fetched there).
    pub held: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogPage {
    pub sensor_id: u32,
    pub entries: Vec<CatalogEntry>,
    /// More entries follow the last one returned.
    pub more: bool,
}

/// Body of `POST /v1/segments`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    pub ids: Vec<String>,
}

/// Error body of every non-2xx answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
