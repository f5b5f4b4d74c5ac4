//! Sensor incarnations: which sensor rows are the same roo reinstalled.
//!
//! A roo reinstalled at the same management address gets a new sensor id
//! (makesensor_id: day, address hash, random byte), so each install is a
//! sensor of its own everywhere; this module says, for each, when it was
//! installed, its management address where a node recorded it, and which
//! earlier and later incarnations share that address. Reads the mirror's
//! `sensor` and `x_sensor_address` tables only; the CLI (`lumpy sensors`),
//! the peer API's summary and the web UI call [`crate::mirror::Mirror::incarnations`].

use std::net::IpAddr;

use rusqlite::{Connection, Result};
use serde::Serialize;

use crate::sensor_id::{SensorId, ip_hash};

/// One sensor incarnation with its neighbours at the same address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Incarnation {
    pub sensor_id: u32,
    pub name: String,
    pub install_sec: u32,
    pub last_upd_sec: u32,
    pub state: String,
    /// The management address, when the origin recorded it (`lumpy init
    /// --manager-ip`, or HwMANAGE_IP with `--hw-conf`).
    pub manage_ip: Option<String>,
    /// The id's address-hash field (bits 15-8), or None for an id assigned
    /// by hand (bit 31 set), which carries no address.
    pub address_hash: Option<u8>,
    /// Incarnations at the same address installed before this one, oldest first.
    pub earlier: Vec<Neighbour>,
    /// Incarnations at the same address installed after this one, oldest first.
    pub later: Vec<Neighbour>,
}

/// Another incarnation at the same address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Neighbour {
    pub sensor_id: u32,
    pub install_sec: u32,
    /// `address`: both recorded the same management address; `id hash`:
    /// at least one did not, and both generated ids carry the same address
    /// hash (the same address, or one of 1 in 251 others).
    pub by: &'static str,
}

/// Why two incarnations are at the same address, if they are.
fn same_address(a: &Incarnation, b: &Incarnation) -> Option<&'static str> {
    let ip = |i: &Incarnation| i.manage_ip.as_ref().and_then(|s| s.parse::<IpAddr>().ok());
    match (ip(a), ip(b)) {
        (Some(x), Some(y)) => (x == y).then_some("address"),
        _ => {
            let hash = |i: &Incarnation| i.address_hash.or_else(|| ip(i).map(ip_hash));
            match (a.address_hash, b.address_hash, hash(a), hash(b)) {
                (Some(_), Some(_), Some(x), Some(y)) if x == y => Some("id hash"),
                _ => None,
            }
        }
    }
}

/// Fills `earlier` and `later` of every incarnation (ordered by install time).
pub fn link(mut all: Vec<Incarnation>) -> Vec<Incarnation> {
    all.sort_by_key(|i| (i.install_sec, i.sensor_id));
    let snapshot = all.clone();
    for (n, me) in all.iter_mut().enumerate() {
        for (m, other) in snapshot.iter().enumerate() {
            if m == n {
                continue;
            }
            if let Some(by) = same_address(&snapshot[n], other) {
                let nb = Neighbour {
                    sensor_id: other.sensor_id,
                    install_sec: other.install_sec,
                    by,
                };
                if m < n {
                    me.earlier.push(nb);
                } else {
                    me.later.push(nb);
                }
            }
        }
    }
    all
}

pub(super) fn incarnations(conn: &Connection) -> Result<Vec<Incarnation>> {
    let mut stmt = conn.prepare(
        "SELECT s.sensor_id, coalesce(s.name, ''), s.install_sec, s.last_upd_sec, \
         coalesce(s.state, ''), a.manage_ip \
         FROM sensor s LEFT JOIN x_sensor_address a ON a.sensor_id = s.sensor_id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            let id: u32 = r.get(0)?;
            let sid = SensorId(id);
            Ok(Incarnation {
                sensor_id: id,
                name: r.get(1)?,
                install_sec: r.get(2)?,
                last_upd_sec: r.get(3)?,
                state: r.get(4)?,
                manage_ip: r.get(5)?,
                address_hash: (!sid.is_manual()).then(|| sid.ip_hash_field()),
                earlier: Vec::new(),
                later: Vec::new(),
            })
        })?
        .collect::<Result<Vec<_>>>()?;
    Ok(link(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(id: u32, install: u32, ip: Option<&str>) -> Incarnation {
        let sid = SensorId(id);
        Incarnation {
            sensor_id: id,
            name: String::new(),
            install_sec: install,
            last_upd_sec: install,
            state: String::new(),
            manage_ip: ip.map(str::to_string),
            address_hash: (!sid.is_manual()).then(|| sid.ip_hash_field()),
            earlier: Vec::new(),
            later: Vec::new(),
        }
    }

    #[test]
    fn reinstalls_at_one_address_are_linked_in_install_order() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = crate::sensor_id::compose(14000, ip, 7).0;
        let b = crate::sensor_id::compose(14100, ip, 9).0;
        let c = crate::sensor_id::compose(14200, ip, 1).0;
        let other = crate::sensor_id::compose(14000, "10.0.0.2".parse().unwrap(), 7).0;
        let all = link(vec![
            inc(c, 300, None),
            inc(a, 100, Some("10.0.0.1")),
            inc(b, 200, Some("10.0.0.1")),
            inc(other, 150, Some("10.0.0.2")),
            inc(0x8000_0001, 50, None),
        ]);
        let by_id = |id: u32| all.iter().find(|i| i.sensor_id == id).unwrap();
        let ids = |v: &[Neighbour]| v.iter().map(|n| (n.sensor_id, n.by)).collect::<Vec<_>>();
        assert_eq!(ids(&by_id(a).later), [(b, "address"), (c, "id hash")]);
        assert!(by_id(a).earlier.is_empty());
        assert_eq!(ids(&by_id(b).earlier), [(a, "address")]);
        assert_eq!(ids(&by_id(c).earlier), [(a, "id hash"), (b, "id hash")]);
        assert!(by_id(other).earlier.is_empty() && by_id(other).later.is_empty());
        assert!(by_id(0x8000_0001).later.is_empty());
        // Different recorded addresses are different even when hashes agree.
        let d = crate::sensor_id::compose(14300, ip, 2).0;
        let all = link(vec![
            inc(a, 1, Some("10.0.0.1")),
            inc(d, 2, Some("10.9.9.9")),
        ]);
        assert!(all[0].later.is_empty());
    }
}
