//! `GET /metrics` of `lumpy serve`: the node's state in the Prometheus /
//! OpenMetrics text format (crate prometheus-client), on a listener of its
//! own (`metrics.listen`, docs/CONFIG.md).
//!
//! Owns the counters the daemon keeps while it runs (HTTP answers by
//! listener and status, peer authentication failures) and turning the
//! store, the mirror and the link states into metrics at each scrape (the
//! same sources `lumpy status` reads, so the two agree). Does not write
//! anything, and does not serve: `serve` wires the listener.

use std::path::Path;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::config::Config;
use crate::store::{Kind, Store};

/// Label pairs of one series.
type Labels = Vec<(String, String)>;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Mirror(#[from] crate::mirror::MirrorError),
    #[error(transparent)]
    Ingest(#[from] crate::ingest::IngestError),
    #[error("encoding the metrics: {0}")]
    Encode(std::fmt::Error),
}

/// The media type of the answer (OpenMetrics 1.0 text, which Prometheus
/// prefers and parses).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the daemon counts while it runs.
#[derive(Debug, Default)]
pub struct Metrics {
    http: Family<Labels, Counter>,
    auth_failures: Counter,
}

impl Metrics {
    /// Counts one HTTP answer of `listener` ("peer", "ui", "metrics"); on
    /// the peer API a 401 or 403 is a refused link signature or source.
    pub fn answered(&self, listener: &str, status: u16) {
        self.http
            .get_or_create(&vec![
                ("listener".to_string(), listener.to_string()),
                ("code".to_string(), status.to_string()),
            ])
            .inc();
        if listener == "peer" && matches!(status, 401 | 403) {
            self.auth_failures.inc();
        }
    }

    /// The text of one scrape: the live counters and the node's state now.
    pub fn render(
        &self,
        store: &Store,
        dir: &Path,
        config: &Config,
    ) -> Result<String, MetricsError> {
        let mut r = Registry::with_prefix("lumpy");
        r.register(
            "http_responses",
            "HTTP answers since serve started, by listener and status code",
            self.http.clone(),
        );
        r.register(
            "peer_auth_failures",
            "Peer API requests refused since serve started (401 bad or unknown link signature, 403 source outside the link's networks)",
            self.auth_failures.clone(),
        );
        store_metrics(&mut r, store)?;
        mirror_metrics(&mut r, store, dir)?;
        child_metrics(&mut r, store, config)?;
        let mut text = String::new();
        encode(&mut text, &r).map_err(MetricsError::Encode)?;
        Ok(text)
    }
}

fn gauge(r: &mut Registry, name: &str, help: &str, v: u64) {
    let g: Gauge = Gauge::default();
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    r.register(name, help, g);
}

fn labels(pairs: &[(&str, String)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

/// Segments, bytes and packets held, per sensor and in all.
fn store_metrics(r: &mut Registry, store: &Store) -> Result<(), MetricsError> {
    let totals = store.totals()?;
    let segments: Family<Labels, Gauge> = Family::default();
    segments
        .get_or_create(&labels(&[("kind", "pcap".into())]))
        .set(i64::try_from(totals.pcap_segments).unwrap_or(i64::MAX));
    segments
        .get_or_create(&labels(&[("kind", "records".into())]))
        .set(i64::try_from(totals.record_segments).unwrap_or(i64::MAX));
    r.register(
        "segments",
        "Segments held, by kind (status: pcap_segments, record_segments)",
        segments,
    );
    gauge(
        r,
        "stored_bytes",
        "Bytes of the segment files held (status: bytes_stored)",
        totals.stored_bytes,
    );
    gauge(
        r,
        "quarantined_segments",
        "Record segments whose records cannot be read (status: quarantined)",
        store.quarantined()?.len() as u64,
    );
    let packets: Family<Labels, Counter> = Family::default();
    let bytes: Family<Labels, Counter> = Family::default();
    let evicted: Family<Labels, Counter> = Family::default();
    let mut sensors = std::collections::BTreeSet::new();
    for m in store.all_segments()? {
        sensors.insert(m.sensor_id);
        if m.kind != Kind::Pcap {
            continue;
        }
        let l = labels(&[("sensor", m.sensor_id.to_string())]);
        packets.get_or_create(&l).inc_by(m.item_count);
        // As `Store::totals` counts raw bytes: pcap records, not items.
        bytes
            .get_or_create(&l)
            .inc_by(m.raw_bytes.saturating_sub(m.item_count.saturating_mul(4)));
    }
    for sensor in sensors {
        if let Some(t) = crate::ingest::flow_table_report(store, sensor)? {
            evicted
                .get_or_create(&labels(&[("sensor", sensor.to_string())]))
                .inc_by(t.evicted);
        }
    }
    r.register(
        "ingested_packets",
        "Packets held, per sensor (their sum is status: packets)",
        packets,
    );
    r.register(
        "ingested_bytes",
        "Bytes of packets held as pcap records, per sensor (their sum is status: bytes_raw)",
        bytes,
    );
    r.register("flows_evicted", "Flows closed early because the open-flow table was full, per sensor (status: sensors[].flows_evicted)", evicted);
    Ok(())
}

/// Flows per sensor in the mirror, and the record segments it has not
/// applied yet.
fn mirror_metrics(r: &mut Registry, store: &Store, dir: &Path) -> Result<(), MetricsError> {
    let mirror = crate::mirror::Mirror::open_reader(&dir.join(crate::node::MIRROR_FILE))?;
    let flows: Family<Labels, Gauge> = Family::default();
    for (sensor, n) in mirror.flow_counts_by_sensor()? {
        flows
            .get_or_create(&labels(&[("sensor", sensor.to_string())]))
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    r.register(
        "flows",
        "Flows in the mirror, per sensor (their sum is status: flows)",
        flows,
    );
    let mut lag = 0u64;
    for m in store.all_segments()? {
        if m.kind == Kind::Records && !mirror.is_applied(&m.id)? {
            lag += 1;
        }
    }
    gauge(
        r,
        "mirror_lag_segments",
        "Record segments held but not yet applied to the SQLite mirror",
        lag,
    );
    Ok(())
}

/// Per child: last successful pull, lag, bytes moved, last error.
fn child_metrics(r: &mut Registry, store: &Store, config: &Config) -> Result<(), MetricsError> {
    let now = crate::clock::now_secs();
    let last: Family<Labels, Gauge> = Family::default();
    let lag: Family<Labels, Gauge> = Family::default();
    let bytes_in: Family<Labels, Counter> = Family::default();
    let bytes_out: Family<Labels, Counter> = Family::default();
    let fetched: Family<Labels, Counter> = Family::default();
    let failing: Family<Labels, Gauge> = Family::default();
    let error: Family<Labels, Gauge> = Family::default();
    for c in &config.children {
        let st = crate::sync::links::load_state(store, &c.name)?;
        let l = labels(&[("child", c.name.clone())]);
        last.get_or_create(&l)
            .set(i64::try_from(st.last_success).unwrap_or(i64::MAX));
        if st.last_success > 0 {
            lag.get_or_create(&l)
                .set(i64::try_from(now.saturating_sub(st.last_success)).unwrap_or(i64::MAX));
        }
        bytes_in.get_or_create(&l).inc_by(st.bytes_in);
        bytes_out.get_or_create(&l).inc_by(st.bytes_out);
        fetched.get_or_create(&l).inc_by(st.segments_fetched);
        failing
            .get_or_create(&l)
            .set(i64::from(!st.last_error.is_empty()));
        if !st.last_error.is_empty() {
            // The message as a label, cut: an info-style series.
            let text: String = st.last_error.chars().take(200).collect();
            error
                .get_or_create(&labels(&[("child", c.name.clone()), ("error", text)]))
                .set(1);
        }
    }
    r.register(
        "child_last_success_timestamp_seconds",
        "Unix time of the last successful pull of each child (0: never)",
        last,
    );
    r.register(
        "child_lag_seconds",
        "Seconds since the last successful pull of each child (absent: never pulled)",
        lag,
    );
    r.register(
        "child_bytes_in",
        "Bytes received from each child (status: children[].bytes_in)",
        bytes_in,
    );
    r.register(
        "child_bytes_out",
        "Bytes sent to each child (status: children[].bytes_out)",
        bytes_out,
    );
    r.register(
        "child_segments_fetched",
        "Segments fetched from each child",
        fetched,
    );
    r.register(
        "child_failing",
        "1 when the last pull of the child failed",
        failing,
    );
    r.register(
        "child_last_error",
        "1 for a failing child, its last pull error in the error label (cut at 200 characters)",
        error,
    );
    Ok(())
}
