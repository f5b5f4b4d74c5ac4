-- lumpy SQLite mirror schema, mirror schema version 1.
-- Documented in docs/STORAGE.md, section "Mirror". Owned by src/mirror/.
--
-- Part 1 is hflow's `hflow` database (hflow2, dbschema version 3) translated
-- to SQLite: same tables, same column names in the same order, same primary
-- keys, unique keys and indexes, so that Walleye-style queries (including
-- SELECT *) see what they saw on MySQL. Translation rules:
--   * every MySQL integer type (INT/SMALLINT/TINYINT, signed or not, BOOL)
--     becomes INTEGER (64-bit signed): u32 values fit, including the
--     `sensor.access_via` addresses that overflowed MySQL's signed INT;
--   * CHAR/TINYTEXT/TEXT/ENUM become TEXT (no CHECK on the enum values: the
--     mirror stores what the origin sent), BLOB stays BLOB;
--   * AUTO_INCREMENT is dropped: ids are assigned by the origin node;
--   * MySQL key names are kept where the reference names them; SQLite index
--     names are global, so unnamed keys get a `<table>_..._idx` name.
-- Nothing in part 1 carries lumpy bookkeeping: that lives in part 2.
--
-- Every statement is idempotent (IF NOT EXISTS / OR IGNORE): opening an
-- existing mirror runs this script again without changing anything.

CREATE TABLE IF NOT EXISTS dbschema (
    version  INTEGER NOT NULL,
    comment  TEXT,
    PRIMARY KEY (version)
);
INSERT OR IGNORE INTO dbschema (version, comment) VALUES (3, 'initial hflow2 release 1.99.15');

CREATE TABLE IF NOT EXISTS sensor (
    sensor_id     INTEGER NOT NULL,
    install_sec   INTEGER NOT NULL,
    last_upd_sec  INTEGER NOT NULL,
    state         TEXT,              -- ENUM('offline','online','maint')
    name          TEXT,
    timezone      INTEGER,
    country_code  TEXT,              -- CHAR(2)
    latitude      INTEGER,
    longitude     INTEGER,
    notes         TEXT,
    network_type  TEXT,              -- ENUM('com','edu','gov','mil','home')
    access_via    INTEGER NOT NULL DEFAULT 0,  -- per node: 0 = local, else IPv4 (host order) of the next-lower node
    login         TEXT,              -- per node: CHAR(30)
    passwd        TEXT,              -- per node: CHAR(30)
    PRIMARY KEY (sensor_id)
);

-- WITHOUT ROWID: the row lives in the (sensor_id, flow_id) B-tree itself,
-- which saves one B-tree write per ingested flow. SELECT * is unaffected.
CREATE TABLE IF NOT EXISTS flow (
    sensor_id        INTEGER NOT NULL DEFAULT 0,
    flow_id          INTEGER NOT NULL,
    src_ip           INTEGER NOT NULL,   -- IPv4, host order (inet_aton value)
    dst_ip           INTEGER NOT NULL,
    src_port         INTEGER NOT NULL,
    dst_port         INTEGER NOT NULL,
    ip_proto         INTEGER NOT NULL,
    iface_in         INTEGER NOT NULL,
    marker_flags     INTEGER NOT NULL DEFAULT 0,
    src_start_sec    INTEGER NOT NULL,
    src_start_msec   INTEGER NOT NULL,
    src_end_sec      INTEGER NOT NULL,
    src_end_msec     INTEGER NOT NULL,
    src_packets      INTEGER NOT NULL,
    src_bytes        INTEGER NOT NULL,
    src_ip_flags     INTEGER NOT NULL,
    src_tcp_flags    INTEGER NOT NULL,
    src_icmp_packets INTEGER NOT NULL,
    src_icmp_seen    INTEGER NOT NULL,
    dst_start_sec    INTEGER NOT NULL,
    dst_start_msec   INTEGER NOT NULL,
    dst_end_sec      INTEGER NOT NULL,
    dst_end_msec     INTEGER NOT NULL,
    dst_packets      INTEGER NOT NULL,
    dst_bytes        INTEGER NOT NULL,
    dst_ip_flags     INTEGER NOT NULL,
    dst_tcp_flags    INTEGER NOT NULL,
    dst_icmp_packets INTEGER NOT NULL,
    dst_icmp_seen    INTEGER NOT NULL,
    client_os_id     INTEGER NOT NULL DEFAULT 0,
    server_os_id     INTEGER NOT NULL DEFAULT 0,
    is_local         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sensor_id, flow_id)
) WITHOUT ROWID;
-- Indexes (mirror 4). hflow's names, each extended by the flow's start
-- time, so a filter on one value (a host, a port, a sensor) reads its rows
-- in time order and a LIMIT stops early (the primary key's flow_id follows
-- in every SQLite index). hflow's UNIQUE natural key (5-tuple +
-- src_start_sec) is `src_ip_idx` itself, with the columns ordered
-- (sensor_id, src_ip, src_start_sec, ...): the set of columns is the
-- constraint, the order is free, and so one B-tree serves both the key and
-- the source-host lookups (mirror 3 had a separate src_ip_idx: one more
-- random-key insert per flow).
CREATE UNIQUE INDEX IF NOT EXISTS src_ip_idx
    ON flow (sensor_id, src_ip, src_start_sec, dst_ip, ip_proto, src_port, dst_port);
CREATE INDEX IF NOT EXISTS dst_ip_idx    ON flow (sensor_id, dst_ip, src_start_sec, src_start_msec);
CREATE INDEX IF NOT EXISTS src_port_idx  ON flow (sensor_id, src_port, src_start_sec, src_start_msec);
CREATE INDEX IF NOT EXISTS dst_port_idx  ON flow (sensor_id, dst_port, src_start_sec, src_start_msec);
-- hflow's own start_sec_idx, unchanged: the UI pages by (src_start_sec,
-- flow_id), which it gives exactly; `lumpy flows` orders by the msec too,
-- and SQLite sorts only within each second of it.
CREATE INDEX IF NOT EXISTS start_sec_idx ON flow (sensor_id, src_start_sec);

CREATE TABLE IF NOT EXISTS flow_perf (
    sensor_id  INTEGER NOT NULL DEFAULT 0,
    flow_id    INTEGER NOT NULL DEFAULT 0,
    sec        INTEGER NOT NULL,
    bytes      INTEGER NOT NULL DEFAULT 0,
    packets    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sensor_id, flow_id, sec)
);

-- walleye_0_3's flow table, a VIEW over `flow` since mirror 4 (mirror 3
-- stored every IPv4 flow twice: a table of its own with six indexes).
-- argus_id = flow_id; argus_dir `<->` when both ends sent, else `->`;
-- argus_status from the TCP flags each way (src/mirror/argus.rs::status_of,
-- the same rule in Rust; a unit test compares them); argus_ind NULL. A row
-- a legacy walleye_0_3 import brought keeps its own local, argus_dir,
-- argus_status, argus_ind and client_os_id (x_argus_legacy); its other
-- columns are its flow's (ArgusRecord::as_flow maps them one to one).
-- Every argus column but end_sec is a plain column of `flow`, so filters on
-- them use flow's indexes (start_sec -> start_sec_idx, src_ip ->
-- src_ip_idx, dst_ip -> dst_ip_idx).
CREATE VIEW IF NOT EXISTS argus AS
SELECT f.sensor_id AS sensor_id,
       f.flow_id AS argus_id,
       f.ip_proto AS ip_proto,
       CASE WHEN l.argus_id IS NULL THEN f.is_local ELSE l.local END AS local,
       f.src_ip AS src_ip,
       f.dst_ip AS dst_ip,
       f.src_port AS src_port,
       f.dst_port AS dst_port,
       f.src_packets AS src_pkts,
       f.dst_packets AS dst_pkts,
       f.src_bytes AS src_bytes,
       f.dst_bytes AS dst_bytes,
       f.src_start_sec AS start_sec,
       max(f.src_end_sec, f.dst_end_sec) AS end_sec,
       CASE WHEN l.argus_id IS NOT NULL THEN l.argus_dir
            WHEN f.src_packets > 0 AND f.dst_packets > 0 THEN '<->'
            ELSE '->' END AS argus_dir,
       CASE WHEN l.argus_id IS NOT NULL THEN l.argus_status
            WHEN f.ip_proto <> 6 THEN CASE WHEN f.dst_packets > 0 THEN 'CON' ELSE 'INT' END
            WHEN (f.src_tcp_flags | f.dst_tcp_flags) & 4 <> 0 THEN 'RST'
            WHEN (f.src_tcp_flags | f.dst_tcp_flags) & 1 <> 0 THEN 'FIN'
            WHEN f.dst_tcp_flags & 18 = 18 AND f.src_tcp_flags & 16 <> 0 THEN 'CON'
            WHEN f.dst_tcp_flags & 18 = 18 THEN 'ACC'
            WHEN f.src_tcp_flags & 2 <> 0 AND f.dst_packets = 0 THEN 'REQ'
            WHEN f.dst_packets > 0 THEN 'CON'
            ELSE 'INT' END AS argus_status,
       l.argus_ind AS argus_ind,
       CASE WHEN l.argus_id IS NULL THEN f.client_os_id ELSE l.client_os_id END AS client_os_id
FROM flow f LEFT JOIN x_argus_legacy l ON l.sensor_id = f.sensor_id AND l.argus_id = f.flow_id;

CREATE TABLE IF NOT EXISTS os (
    os_id      INTEGER NOT NULL,
    sensor_id  INTEGER NOT NULL,
    genre      TEXT,                   -- CHAR(20)
    detail     TEXT,                   -- CHAR(40)
    PRIMARY KEY (os_id, sensor_id)     -- sic: os_id first, as in hflow
);

CREATE TABLE IF NOT EXISTS ids (
    ids_id          INTEGER NOT NULL,
    sensor_id       INTEGER NOT NULL,
    sig_id          INTEGER NOT NULL DEFAULT 0,
    flow_id         INTEGER NOT NULL DEFAULT 0,
    sec             INTEGER NOT NULL DEFAULT 0,
    usec            INTEGER NOT NULL DEFAULT 0,
    priority        INTEGER NOT NULL DEFAULT 10,
    sig_rev         INTEGER NOT NULL DEFAULT 10,
    sig_gen         INTEGER NOT NULL DEFAULT 0,
    classification  INTEGER NOT NULL DEFAULT 0,
    type            TEXT,              -- ENUM('CLIENT','SERVER')
    to_be_deleted   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sensor_id, ids_id)
);
CREATE INDEX IF NOT EXISTS ids_flow_idx ON ids (sensor_id, flow_id);

CREATE TABLE IF NOT EXISTS ids_sig (
    ids_sig_gen  INTEGER NOT NULL,
    ids_sig_id   INTEGER NOT NULL,
    sensor_id    INTEGER NOT NULL,
    sig_name     TEXT,                 -- CHAR(255)
    reference    TEXT,
    PRIMARY KEY (sensor_id, ids_sig_gen, ids_sig_id)
);

CREATE TABLE IF NOT EXISTS process (
    sensor_id      INTEGER NOT NULL,
    process_id     INTEGER NOT NULL,
    src_ip         INTEGER NOT NULL,
    time_min       INTEGER NOT NULL,
    time_max       INTEGER NOT NULL,
    pcap_time_min  INTEGER NOT NULL,
    pcap_time_max  INTEGER NOT NULL,
    pid            INTEGER NOT NULL,
    PRIMARY KEY (sensor_id, process_id)
);
CREATE INDEX IF NOT EXISTS process_time_min_idx ON process (sensor_id, time_min);
CREATE INDEX IF NOT EXISTS process_time_max_idx ON process (sensor_id, time_max);
CREATE INDEX IF NOT EXISTS process_src_ip_idx   ON process (sensor_id, src_ip);
CREATE INDEX IF NOT EXISTS process_pid_idx      ON process (sensor_id, pid);

CREATE TABLE IF NOT EXISTS process_tree (
    sensor_id       INTEGER NOT NULL,
    child_process   INTEGER NOT NULL,
    parent_process  INTEGER NOT NULL,
    to_be_deleted   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sensor_id, child_process, parent_process)
);
CREATE INDEX IF NOT EXISTS process_tree_parent_idx ON process_tree (sensor_id, parent_process);

CREATE TABLE IF NOT EXISTS command (
    sensor_id   INTEGER NOT NULL,
    command_id  INTEGER NOT NULL,
    name        TEXT NOT NULL,
    PRIMARY KEY (sensor_id, command_id)
);

CREATE TABLE IF NOT EXISTS process_to_com (
    sensor_id     INTEGER NOT NULL,
    process_id    INTEGER NOT NULL,
    command_id    INTEGER NOT NULL,
    to_be_deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sensor_id, command_id, process_id)
);
CREATE INDEX IF NOT EXISTS process_to_com_command_idx ON process_to_com (sensor_id, command_id);

CREATE TABLE IF NOT EXISTS sys_read (
    sensor_id     INTEGER NOT NULL,
    sys_read_id   INTEGER NOT NULL,
    process_id    INTEGER NOT NULL,
    uid           INTEGER NOT NULL,
    pcap_time     INTEGER,
    time          INTEGER NOT NULL,
    counter       INTEGER NOT NULL,
    filed         INTEGER NOT NULL,
    inode         INTEGER NOT NULL,
    length        INTEGER NOT NULL,
    data          BLOB,
    to_be_deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sensor_id, process_id, sys_read_id)
);

CREATE TABLE IF NOT EXISTS sys_write (
    sensor_id     INTEGER NOT NULL,
    sys_write_id  INTEGER NOT NULL,
    process_id    INTEGER NOT NULL,
    uid           INTEGER NOT NULL,
    pcap_time     INTEGER,
    time          INTEGER NOT NULL,
    counter       INTEGER NOT NULL,
    filed         INTEGER NOT NULL,
    inode         INTEGER NOT NULL,
    length        INTEGER NOT NULL,
    data          BLOB,
    to_be_deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sensor_id, process_id, sys_write_id)
);

CREATE TABLE IF NOT EXISTS sys_open (
    sensor_id     INTEGER NOT NULL,
    sys_open_id   INTEGER NOT NULL,
    process_id    INTEGER NOT NULL,
    uid           INTEGER,
    pcap_time     INTEGER,
    time          INTEGER,
    counter       INTEGER NOT NULL,
    filed         INTEGER NOT NULL,
    inode         INTEGER NOT NULL,
    length        INTEGER NOT NULL,
    to_be_deleted INTEGER NOT NULL DEFAULT 0,
    filename      TEXT,                -- TINYTEXT
    PRIMARY KEY (sensor_id, sys_open_id)
);
CREATE INDEX IF NOT EXISTS sys_open_process_idx ON sys_open (sensor_id, process_id);

CREATE TABLE IF NOT EXISTS sys_socket (
    sensor_id     INTEGER NOT NULL,
    sys_socket_id INTEGER NOT NULL,
    process_id    INTEGER NOT NULL,
    pcap_time     INTEGER,
    time          INTEGER NOT NULL,
    uid           INTEGER NOT NULL,
    counter       INTEGER NOT NULL,
    filed         INTEGER NOT NULL,
    inode         INTEGER NOT NULL,
    flow_id       INTEGER NOT NULL,
    "call"        INTEGER NOT NULL,
    type          TEXT,                -- TINYTEXT
    to_be_deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sensor_id, sys_socket_id)
);
CREATE INDEX IF NOT EXISTS sys_socket_flow_idx    ON sys_socket (sensor_id, flow_id);
CREATE INDEX IF NOT EXISTS sys_socket_process_idx ON sys_socket (sensor_id, process_id);

-- No primary key, as in hflow.
CREATE TABLE IF NOT EXISTS sbk_loss (
    sensor_id  INTEGER NOT NULL,
    src_ip     INTEGER NOT NULL,
    time       INTEGER NOT NULL,
    lost       INTEGER NOT NULL
);

-- ---------------------------------------------------------------------------
-- Part 2: lumpy extension tables (prefix x_). Walleye never reads them.
-- ---------------------------------------------------------------------------

-- Mirror schema version (this file's version, not hflow's dbschema). A mirror
-- whose highest version is newer than the binary's is refused on open.
CREATE TABLE IF NOT EXISTS x_schema (
    version  INTEGER NOT NULL PRIMARY KEY,
    comment  TEXT NOT NULL
);
INSERT OR IGNORE INTO x_schema (version, comment) VALUES (1, 'lumpy mirror 1: hflow 3 tables + x_ bookkeeping');
INSERT OR IGNORE INTO x_schema (version, comment) VALUES (2, 'lumpy mirror 2: p0f fingerprints (x_os_fingerprint), flow OS ids kept across flow versions');
INSERT OR IGNORE INTO x_schema (version, comment) VALUES (3, 'lumpy mirror 3: x_os_fingerprint keyed by time after the sensor');
INSERT OR IGNORE INTO x_schema (version, comment) VALUES (4, 'lumpy mirror 4: argus a view over flow, flow indexes in time order');
INSERT OR IGNORE INTO x_schema (version, comment) VALUES (5, 'lumpy mirror 5: x_flow_count kept by apply, not by triggers');

-- Segments whose records are in the mirror: apply() is a no-op for them.
CREATE TABLE IF NOT EXISTS x_applied_segment (
    segment_id  BLOB NOT NULL PRIMARY KEY,  -- 32-byte blake3 SegmentId
    applied_at  INTEGER NOT NULL,           -- unix seconds, local clock
    records     INTEGER NOT NULL            -- records in the segment
) WITHOUT ROWID;

-- The origin version of every flow row, whichever table holds it: the one
-- place apply() checks before overwriting, so flow and x_flow6 share one
-- guard and a flow can never be in both tables.
CREATE TABLE IF NOT EXISTS x_flow_version (
    sensor_id  INTEGER NOT NULL,
    flow_id    INTEGER NOT NULL,
    version    INTEGER NOT NULL,            -- origin version, higher wins
    closed     INTEGER NOT NULL,            -- 1 once the flow timed out
    in_flow6   INTEGER NOT NULL,            -- 0: row is in flow, 1: in x_flow6
    PRIMARY KEY (sensor_id, flow_id)
) WITHOUT ROWID;

-- The argus columns of the rows a walleye_0_3 import brought (record kind
-- `argus`) that flow cannot derive: the `argus` view shows these instead
-- of its rule. A row here lives as long as the flow row it came with: a
-- newer version of the flow (a native record) or its deletion removes it.
CREATE TABLE IF NOT EXISTS x_argus_legacy (
    sensor_id     INTEGER NOT NULL,
    argus_id      INTEGER NOT NULL,
    local         INTEGER,
    argus_dir     TEXT,
    argus_status  TEXT,
    argus_ind     TEXT,
    client_os_id  INTEGER,
    PRIMARY KEY (sensor_id, argus_id)
) WITHOUT ROWID;

-- Flows that do not fit hflow's IPv4-only flow table. Same columns, keys and
-- indexes as flow, except src_ip/dst_ip: BLOB of the address octets in
-- network order, 16 bytes for IPv6 (4 bytes for the IPv4 side of a
-- mixed-family flow, so records round-trip). Blobs compare with memcmp, so a
-- CIDR prefix is a BETWEEN range on equal-length blobs.
CREATE TABLE IF NOT EXISTS x_flow6 (
    sensor_id        INTEGER NOT NULL DEFAULT 0,
    flow_id          INTEGER NOT NULL,
    src_ip           BLOB NOT NULL,
    dst_ip           BLOB NOT NULL,
    src_port         INTEGER NOT NULL,
    dst_port         INTEGER NOT NULL,
    ip_proto         INTEGER NOT NULL,
    iface_in         INTEGER NOT NULL,
    marker_flags     INTEGER NOT NULL DEFAULT 0,
    src_start_sec    INTEGER NOT NULL,
    src_start_msec   INTEGER NOT NULL,
    src_end_sec      INTEGER NOT NULL,
    src_end_msec     INTEGER NOT NULL,
    src_packets      INTEGER NOT NULL,
    src_bytes        INTEGER NOT NULL,
    src_ip_flags     INTEGER NOT NULL,
    src_tcp_flags    INTEGER NOT NULL,
    src_icmp_packets INTEGER NOT NULL,
    src_icmp_seen    INTEGER NOT NULL,
    dst_start_sec    INTEGER NOT NULL,
    dst_start_msec   INTEGER NOT NULL,
    dst_end_sec      INTEGER NOT NULL,
    dst_end_msec     INTEGER NOT NULL,
    dst_packets      INTEGER NOT NULL,
    dst_bytes        INTEGER NOT NULL,
    dst_ip_flags     INTEGER NOT NULL,
    dst_tcp_flags    INTEGER NOT NULL,
    dst_icmp_packets INTEGER NOT NULL,
    dst_icmp_seen    INTEGER NOT NULL,
    client_os_id     INTEGER NOT NULL DEFAULT 0,
    server_os_id     INTEGER NOT NULL DEFAULT 0,
    is_local         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sensor_id, flow_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS x_flow6_src_ip_idx    ON x_flow6 (sensor_id, src_ip);
CREATE INDEX IF NOT EXISTS x_flow6_dst_ip_idx    ON x_flow6 (sensor_id, dst_ip);
CREATE INDEX IF NOT EXISTS x_flow6_src_port_idx  ON x_flow6 (sensor_id, src_port);
CREATE INDEX IF NOT EXISTS x_flow6_dst_port_idx  ON x_flow6 (sensor_id, dst_port);
CREATE INDEX IF NOT EXISTS x_flow6_start_sec_idx ON x_flow6 (sensor_id, src_start_sec);
CREATE UNIQUE INDEX IF NOT EXISTS x_flow6_natural_key
    ON x_flow6 (sensor_id, src_ip, dst_ip, ip_proto, src_port, dst_port, src_start_sec);

-- Rows in flow and x_flow6, so `status` answers without counting 10 M
-- rows (mirror 4). Since mirror 5 apply keeps it, adding each segment's
-- inserts and deletions in one UPDATE per table (mirror 4 had a trigger
-- per inserted row: a second statement program run for every flow), and so
-- does every other writer of the two tables (Mirror::purge_flows_before).
-- A file made before the table is counted once when it is created
-- (schema.rs, in one transaction).
CREATE TABLE IF NOT EXISTS x_flow_count (
    tbl  TEXT NOT NULL PRIMARY KEY,
    n    INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO x_flow_count (tbl, n) VALUES ('flow', 0), ('x_flow6', 0);
DROP TRIGGER IF EXISTS x_flow_count_ins;
DROP TRIGGER IF EXISTS x_flow_count_del;
DROP TRIGGER IF EXISTS x_flow6_count_ins;
DROP TRIGGER IF EXISTS x_flow6_count_del;

-- The origin version of each sensor row (the sensor table keeps exactly the
-- hflow columns).
CREATE TABLE IF NOT EXISTS x_sensor_version (
    sensor_id  INTEGER NOT NULL PRIMARY KEY,
    version    INTEGER NOT NULL
) WITHOUT ROWID;

-- The management address of a sensor incarnation, when its origin recorded
-- one (SensorRecord.manage_ip): tells reinstalls at one address apart from
-- roos elsewhere (mirror::incarnations).
CREATE TABLE IF NOT EXISTS x_sensor_address (
    sensor_id  INTEGER NOT NULL PRIMARY KEY,
    manage_ip  TEXT NOT NULL
) WITHOUT ROWID;

-- Sensors this node has decommissioned (lumpy.toml `decommissioned`, the
-- source of truth; `Mirror::sync_retired` copies it here at every open, so a
-- rebuilt mirror has it too). Their `sensor.state` stays 'offline' whatever
-- state their origin's sensor records carry.
CREATE TABLE IF NOT EXISTS x_retired_sensor (
    sensor_id  INTEGER NOT NULL PRIMARY KEY
) WITHOUT ROWID;

-- The origin version of each process row (its time ranges grow).
CREATE TABLE IF NOT EXISTS x_process_version (
    sensor_id   INTEGER NOT NULL,
    process_id  INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    PRIMARY KEY (sensor_id, process_id)
) WITHOUT ROWID;

-- sys_socket rows whose flow was not in the mirror when they were applied
-- (flow_id 0 meanwhile): each flow version applied later is checked against
-- them, and the first that matches (5-tuple either way, hflow2's time window)
-- sets sys_socket.flow_id and removes the row here. Addresses as in `flow`.
CREATE TABLE IF NOT EXISTS x_pending_socket (
    sensor_id      INTEGER NOT NULL,
    sys_socket_id  INTEGER NOT NULL,
    proto          INTEGER NOT NULL,
    local_ip       INTEGER NOT NULL,
    local_port     INTEGER NOT NULL,
    remote_ip      INTEGER NOT NULL,
    remote_port    INTEGER NOT NULL,
    pcap_time      INTEGER NOT NULL,
    PRIMARY KEY (sensor_id, sys_socket_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS x_pending_socket_ports_idx
    ON x_pending_socket (sensor_id, proto, local_port, remote_port);

-- p0f fingerprints (records "os_fingerprint", docs/STORAGE.md section 4): one
-- row per fingerprinted SYN (role 0, the client) or SYN+ACK (role 1, the
-- server), from lumpy's own matching (source 0) or a p0f log (source 1).
-- Addresses as in `flow` (IPv4: integer) or `x_flow6` (blob). flow_id is the
-- flow it joined, 0 while it waits for it; os_id names its `os` row.
CREATE TABLE IF NOT EXISTS x_os_fingerprint (
    sensor_id       INTEGER NOT NULL,
    role            INTEGER NOT NULL,
    host_ip         NOT NULL,
    host_port       INTEGER NOT NULL,
    peer_ip         NOT NULL,
    peer_port       INTEGER NOT NULL,
    time            INTEGER NOT NULL,
    source          INTEGER NOT NULL,
    origin_flow_id  INTEGER NOT NULL,
    flow_id         INTEGER NOT NULL,
    os_id           INTEGER NOT NULL,
    class           TEXT NOT NULL,
    generic         INTEGER NOT NULL,
    fuzzy           INTEGER NOT NULL,
    dist            INTEGER NOT NULL,
    raw_sig         TEXT NOT NULL,
    -- Time second: fingerprints arrive in time order, so new rows land at
    -- the end of the B-tree instead of anywhere in it (mirror 3; mirror 2
    -- had host_ip there, and a large mirror's inserts missed the cache).
    -- Every lookup names the whole key, so the order serves them all.
    PRIMARY KEY (sensor_id, time, role, host_ip, host_port, peer_ip, peer_port, source)
) WITHOUT ROWID;
-- Covers the per-flow winner query (apply_os::set_flow_os): its ORDER BY
-- and os_id come from the index alone, with no lookup in the wide table.
-- (It replaced x_os_fingerprint_flow_idx on (sensor_id, flow_id, role).)
DROP INDEX IF EXISTS x_os_fingerprint_flow_idx;
CREATE INDEX IF NOT EXISTS x_os_fingerprint_flow_os_idx
    ON x_os_fingerprint (sensor_id, flow_id, role, source, time, os_id);
-- No index by host: nothing queries fingerprints by host alone, and each
-- index costs every fingerprint insert (the first schema had one).
DROP INDEX IF EXISTS x_os_fingerprint_host_idx;
CREATE INDEX IF NOT EXISTS x_os_fingerprint_pending_idx
    ON x_os_fingerprint (sensor_id, host_port, peer_port) WHERE flow_id = 0;

-- Each sys_socket row's ends as sebek saw them (sys_socket keeps only the
-- joined flow_id, 0 when none): `processes` and the web UI show the remote
-- address, port and protocol even when no flow was seen. Addresses as in `flow`.
CREATE TABLE IF NOT EXISTS x_socket_addr (
    sensor_id      INTEGER NOT NULL,
    sys_socket_id  INTEGER NOT NULL,
    proto          INTEGER NOT NULL,
    local_ip       INTEGER NOT NULL,
    local_port     INTEGER NOT NULL,
    remote_ip      INTEGER NOT NULL,
    remote_port    INTEGER NOT NULL,
    PRIMARY KEY (sensor_id, sys_socket_id)
) WITHOUT ROWID;

-- Each process row's parent pid (sebek header of its newest record), which
-- walleye's `process` table does not keep; known even when the parent never
-- sent a record (and so has no row). Absent for rows imported from a legacy
-- database.
CREATE TABLE IF NOT EXISTS x_process_parent (
    sensor_id   INTEGER NOT NULL,
    process_id  INTEGER NOT NULL,
    ppid        INTEGER NOT NULL,
    PRIMARY KEY (sensor_id, process_id)
) WITHOUT ROWID;

-- The ICMP or ICMPv6 type and code of an ICMP flow's first packet (records'
-- `icmp_first`), which hflow's `flow` keeps nowhere: the flow's Community ID
-- hashes them. Absent for flows whose records did not carry them (made before
-- lumpy kept them, or legacy imports). Written once: the value never changes.
CREATE TABLE IF NOT EXISTS x_flow_icmp (
    sensor_id   INTEGER NOT NULL,
    flow_id     INTEGER NOT NULL,
    icmp_type   INTEGER NOT NULL,
    icmp_code   INTEGER NOT NULL,
    PRIMARY KEY (sensor_id, flow_id)
) WITHOUT ROWID;

-- Sebek records cut by the capture's snaplen (records' `truncated`), kept with
-- their header fields and the bytes captured: `tbl` names the walleye table
-- of the row ('sys_read', 'sys_write', 'sys_open' or 'sys_socket') and `id`
-- its id there. `processes`, `keystrokes` and the UI's sessions mark them.
CREATE TABLE IF NOT EXISTS x_sebek_truncated (
    sensor_id  INTEGER NOT NULL,
    tbl        TEXT NOT NULL,
    id         INTEGER NOT NULL,
    PRIMARY KEY (sensor_id, tbl, id)
) WITHOUT ROWID;

-- The zero-length read that marked a process's fork (process records'
-- `fork`): its uid, descriptor, inode and command, which sbk_ks_log.pl joins
-- into the first keystroke line of the same descriptor (`keystrokes`).
CREATE TABLE IF NOT EXISTS x_process_fork (
    sensor_id   INTEGER NOT NULL,
    process_id  INTEGER NOT NULL,
    uid         INTEGER NOT NULL,
    filed       INTEGER NOT NULL,
    inode       INTEGER NOT NULL,
    command_id  INTEGER NOT NULL,
    PRIMARY KEY (sensor_id, process_id)
) WITHOUT ROWID;

-- Every byte of a read of 60 to 100 bytes (sys_read.data keeps hflow2's
-- first 59): sbk_ks_log.pl takes reads of up to 100 bytes as keystrokes.
CREATE TABLE IF NOT EXISTS x_sys_read_data (
    sensor_id    INTEGER NOT NULL,
    sys_read_id  INTEGER NOT NULL,
    data         BLOB NOT NULL,
    PRIMARY KEY (sensor_id, sys_read_id)
) WITHOUT ROWID;

-- The command a read carried, where it differs from its process's previous
-- read's (sys_io records' `command_id`): `keystrokes` names each read's
-- command as sbk_ks_log.pl does (the latest row at or before the read).
CREATE TABLE IF NOT EXISTS x_sys_read_com (
    sensor_id    INTEGER NOT NULL,
    process_id   INTEGER NOT NULL,
    sys_read_id  INTEGER NOT NULL,
    command_id   INTEGER NOT NULL,
    PRIMARY KEY (sensor_id, process_id, sys_read_id)
) WITHOUT ROWID;
