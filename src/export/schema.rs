//! The target schemas: hflow's `hflow` database (hflow2, dbschema 3, with
//! `is_local`) and roo 1.x's `walleye_0_3`, plus lumpy's two extension
//! tables, as MariaDB DDL; and the check of an existing target against them.
//!
//! Column names, order and types are the reference's (docs: the hflow notes,
//! sections 2 and 3). Deliberate differences, all documented in
//! docs/ARCHITECTURE.md (section `export`):
//! - no AUTO_INCREMENT: ids come from the origin node, never from the target
//!   (InnoDB also refuses AUTO_INCREMENT on the second column of a key);
//! - ENGINE=InnoDB: the watermark of a batch commits with its rows;
//! - `lumpy_flow6` (IPv6 and mixed-family flows), `lumpy_community_id`
//!   (each flow's Community ID) and `lumpy_export_state` (watermarks) are
//!   lumpy's; Walleye never reads them.

use std::fmt::Write as _;

use super::Flavor;

/// A column type, as created and as compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    U8,
    U16,
    U32,
    I32,
    U64,
    /// `BOOL`, i.e. TINYINT(1), signed.
    Bool,
    Char(u16),
    VarChar(u16),
    VarBinary(u16),
    TinyText,
    Text,
    Blob,
    Enum(&'static [&'static str]),
}

impl Ty {
    fn ddl(self) -> String {
        match self {
            Ty::U8 => "TINYINT UNSIGNED".into(),
            Ty::U16 => "SMALLINT UNSIGNED".into(),
            Ty::U32 => "INT UNSIGNED".into(),
            Ty::I32 => "INT".into(),
            Ty::U64 => "BIGINT UNSIGNED".into(),
            Ty::Bool => "BOOL".into(),
            Ty::Char(n) => format!("CHAR({n})"),
            Ty::VarChar(n) => format!("VARCHAR({n})"),
            Ty::VarBinary(n) => format!("VARBINARY({n})"),
            Ty::TinyText => "TINYTEXT".into(),
            Ty::Text => "TEXT".into(),
            Ty::Blob => "BLOB".into(),
            Ty::Enum(values) => format!("ENUM({})", enum_list(values)),
        }
    }

    /// The type as `information_schema.COLUMNS.COLUMN_TYPE` shows it, with
    /// integer display widths removed (MariaDB shows `int(10) unsigned`,
    /// MySQL 8 `int unsigned`).
    pub fn normalized(self) -> String {
        match self {
            Ty::U8 => "tinyint unsigned".into(),
            Ty::U16 => "smallint unsigned".into(),
            Ty::U32 => "int unsigned".into(),
            Ty::I32 => "int".into(),
            Ty::U64 => "bigint unsigned".into(),
            Ty::Bool => "tinyint".into(),
            Ty::Enum(values) => format!("enum({})", enum_list(values)),
            other => other.ddl().to_ascii_lowercase(),
        }
    }

    /// The integer range a value must be clamped to, if an integer type.
    pub fn int_range(self) -> Option<(i64, i64)> {
        match self {
            Ty::U8 => Some((0, 255)),
            Ty::U16 => Some((0, 65_535)),
            Ty::U32 => Some((0, 4_294_967_295)),
            Ty::I32 => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
            Ty::U64 => Some((0, i64::MAX)),
            Ty::Bool => Some((-128, 127)),
            _ => None,
        }
    }

    /// The longest text this column keeps: characters for CHAR/VARCHAR,
    /// bytes for the TEXT and BLOB types.
    pub fn max_len(self) -> Option<(usize, bool)> {
        match self {
            Ty::Char(n) | Ty::VarChar(n) => Some((usize::from(n), true)),
            Ty::VarBinary(n) => Some((usize::from(n), false)),
            Ty::TinyText => Some((255, false)),
            Ty::Text | Ty::Blob => Some((65_535, false)),
            _ => None,
        }
    }
}

fn enum_list(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Normalises a COLUMN_TYPE read from the server for comparison.
pub fn normalize_found(column_type: &str) -> String {
    let raw = column_type.trim();
    let t = raw.to_ascii_lowercase();
    if t.starts_with("enum(") || t.starts_with("set(") {
        // The values keep their case: ENUM('CLIENT') is not ENUM('client').
        let at = t.find('(').unwrap_or(0);
        return format!("{}{}", &t[..at], &raw[at..]);
    }
    for int in ["tinyint", "smallint", "mediumint", "bigint", "int"] {
        if let Some(rest) = t.strip_prefix(int)
            && let Some(rest) = rest.strip_prefix('(')
            && let Some((_, after)) = rest.split_once(')')
        {
            return format!("{int}{after}");
        }
    }
    t
}

/// One column: name, type, and the rest of its DDL (NOT NULL, DEFAULT).
#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub name: &'static str,
    pub ty: Ty,
    pub attrs: &'static str,
}

const fn c(name: &'static str, ty: Ty, attrs: &'static str) -> Col {
    Col { name, ty, attrs }
}

const NN: &str = "NOT NULL";
const STATES: &[&str] = &["offline", "online", "maint"];
const NETWORK_TYPES: &[&str] = &["com", "edu", "gov", "mil", "home"];

/// Where a target table's rows come from in the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Only the seed row written at creation (`dbschema`).
    Seed,
    /// The mirror's `sensor` rows, by `x_sensor_version`.
    Sensor,
    /// The mirror's flows (`flow`, or `x_flow6` when `v6`), by
    /// `x_flow_version`; `argus` maps them to walleye_0_3's argus columns.
    Flows { v6: bool, argus: bool },
    /// The mirror table of the same name, copied as is, per sensor, replaced
    /// whenever its content changed.
    Copy { mirror_table: &'static str },
    /// `lumpy_export_state` itself.
    State,
    /// Each flow's Community ID v1 (seed 0), computed at export from the
    /// mirror's `flow` and `x_flow6` rows, by `x_flow_version` like them.
    CommunityIds,
}

/// One target table.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub cols: &'static [Col],
    pub primary_key: &'static [&'static str],
    /// Other keys, as DDL lines (`KEY ...`, `UNIQUE KEY ...`).
    pub keys: &'static [&'static str],
    pub source: Source,
}

impl Table {
    /// `CREATE TABLE IF NOT EXISTS` for this table.
    pub fn create_sql(&self) -> String {
        let mut s = format!("CREATE TABLE IF NOT EXISTS `{}` (\n", self.name);
        for col in self.cols {
            let sep = if col.attrs.is_empty() { "" } else { " " };
            let _ = writeln!(s, "  `{}` {}{sep}{},", col.name, col.ty.ddl(), col.attrs);
        }
        let mut lines = Vec::new();
        if !self.primary_key.is_empty() {
            lines.push(format!("  PRIMARY KEY ({})", self.primary_key.join(", ")));
        }
        lines.extend(self.keys.iter().map(|k| format!("  {k}")));
        if lines.is_empty() {
            // Drop the trailing comma of the last column.
            s.truncate(s.trim_end_matches([',', '\n']).len());
            s.push('\n');
        } else {
            s.push_str(&lines.join(",\n"));
            s.push('\n');
        }
        s.push_str(") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4");
        s
    }

    /// The PK in `ORDER BY` form (every column for tables without one).
    pub fn order_by(&self) -> String {
        if self.primary_key.is_empty() {
            self.cols
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            self.primary_key.join(", ")
        }
    }

    pub fn column_list(&self) -> String {
        self.cols
            .iter()
            .map(|c| format!("`{}`", c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The seed row of `dbschema`.
pub const DBSCHEMA_SEED: &str = "INSERT IGNORE INTO `dbschema` (`version`, `comment`) VALUES (3, 'initial hflow2 release 1.99.15')";

const DBSCHEMA: &[Col] = &[c("version", Ty::U32, NN), c("comment", Ty::Char(250), "")];

const SENSOR: &[Col] = &[
    c("sensor_id", Ty::U32, NN),
    c("install_sec", Ty::U32, NN),
    c("last_upd_sec", Ty::U32, NN),
    c("state", Ty::Enum(STATES), ""),
    c("name", Ty::TinyText, ""),
    c("timezone", Ty::I32, ""),
    c("country_code", Ty::Char(2), ""),
    c("latitude", Ty::I32, ""),
    c("longitude", Ty::I32, ""),
    c("notes", Ty::Text, ""),
    c("network_type", Ty::Enum(NETWORK_TYPES), ""),
    c("access_via", Ty::I32, "NOT NULL DEFAULT 0"),
    c("login", Ty::Char(30), ""),
    c("passwd", Ty::Char(30), ""),
];

/// flow's columns; `lumpy_flow6` differs in the address and counter types.
macro_rules! flow_cols {
    ($ip:expr, $count:expr) => {
        &[
            c("sensor_id", Ty::U32, "NOT NULL DEFAULT 0"),
            c("flow_id", Ty::U32, NN),
            c("src_ip", $ip, NN),
            c("dst_ip", $ip, NN),
            c("src_port", Ty::U16, NN),
            c("dst_port", Ty::U16, NN),
            c("ip_proto", Ty::U8, NN),
            c("iface_in", Ty::U8, NN),
            c("marker_flags", Ty::U32, "NOT NULL DEFAULT 0"),
            c("src_start_sec", Ty::U32, NN),
            c("src_start_msec", Ty::U16, NN),
            c("src_end_sec", Ty::U32, NN),
            c("src_end_msec", Ty::U16, NN),
            c("src_packets", $count, NN),
            c("src_bytes", $count, NN),
            c("src_ip_flags", Ty::U8, NN),
            c("src_tcp_flags", Ty::U8, NN),
            c("src_icmp_packets", Ty::U16, NN),
            c("src_icmp_seen", Ty::U16, NN),
            c("dst_start_sec", Ty::U32, NN),
            c("dst_start_msec", Ty::U16, NN),
            c("dst_end_sec", Ty::U32, NN),
            c("dst_end_msec", Ty::U16, NN),
            c("dst_packets", $count, NN),
            c("dst_bytes", $count, NN),
            c("dst_ip_flags", Ty::U8, NN),
            c("dst_tcp_flags", Ty::U8, NN),
            c("dst_icmp_packets", Ty::U16, NN),
            c("dst_icmp_seen", Ty::U16, NN),
            c("client_os_id", Ty::U32, "NOT NULL DEFAULT 0"),
            c("server_os_id", Ty::U32, "NOT NULL DEFAULT 0"),
            c("is_local", Ty::U8, "NOT NULL DEFAULT 0"),
        ]
    };
}

const FLOW: &[Col] = flow_cols!(Ty::U32, Ty::U32);
const FLOW6: &[Col] = flow_cols!(Ty::VarBinary(16), Ty::U64);

const FLOW_KEYS: &[&str] = &[
    "KEY src_ip_idx (sensor_id, src_ip)",
    "KEY dst_ip_idx (sensor_id, dst_ip)",
    "KEY src_port_idx (sensor_id, src_port)",
    "KEY dst_port_idx (sensor_id, dst_port)",
    "KEY start_sec_idx (sensor_id, src_start_sec)",
    "UNIQUE KEY natural_key (sensor_id, src_ip, dst_ip, ip_proto, src_port, dst_port, src_start_sec)",
];

const FLOW_PERF: &[Col] = &[
    c("sensor_id", Ty::U32, "NOT NULL DEFAULT 0"),
    c("flow_id", Ty::U32, "NOT NULL DEFAULT 0"),
    c("sec", Ty::U32, NN),
    c("bytes", Ty::U32, "NOT NULL DEFAULT 0"),
    c("packets", Ty::U32, "NOT NULL DEFAULT 0"),
];

const ARGUS: &[Col] = &[
    c("sensor_id", Ty::U32, NN),
    c("argus_id", Ty::U32, NN),
    c("ip_proto", Ty::U8, NN),
    c("local", Ty::Bool, "DEFAULT FALSE"),
    c("src_ip", Ty::U32, NN),
    c("dst_ip", Ty::U32, NN),
    c("src_port", Ty::U16, NN),
    c("dst_port", Ty::U16, NN),
    c("src_pkts", Ty::U32, NN),
    c("dst_pkts", Ty::U32, NN),
    c("src_bytes", Ty::U32, NN),
    c("dst_bytes", Ty::U32, NN),
    c("start_sec", Ty::U32, NN),
    c("end_sec", Ty::U32, NN),
    c("argus_dir", Ty::Char(3), ""),
    c("argus_status", Ty::Char(3), ""),
    c("argus_ind", Ty::Char(3), ""),
    c("client_os_id", Ty::U32, ""),
];

const ARGUS_KEYS: &[&str] = &[
    "KEY client_os_idx (sensor_id, client_os_id)",
    "KEY start_sec_idx (sensor_id, start_sec)",
    "KEY end_sec_idx (sensor_id, end_sec)",
    "KEY src_ip_idx (sensor_id, src_ip)",
    "KEY dst_ip_idx (sensor_id, dst_ip)",
    "KEY start_src_dst_idx (sensor_id, start_sec, src_ip, dst_ip)",
];

const OS: &[Col] = &[
    c("os_id", Ty::U32, NN),
    c("sensor_id", Ty::U32, NN),
    c("genre", Ty::Char(20), ""),
    c("detail", Ty::Char(40), ""),
];

macro_rules! ids_cols {
    ($flow:expr) => {
        &[
            c("ids_id", Ty::U32, NN),
            c("sensor_id", Ty::U32, NN),
            c("sig_id", Ty::I32, "NOT NULL DEFAULT 0"),
            c($flow, Ty::I32, "NOT NULL DEFAULT 0"),
            c("sec", Ty::I32, "NOT NULL DEFAULT 0"),
            c("usec", Ty::I32, "NOT NULL DEFAULT 0"),
            c("priority", Ty::I32, "NOT NULL DEFAULT 10"),
            c("sig_rev", Ty::I32, "NOT NULL DEFAULT 10"),
            c("sig_gen", Ty::I32, "NOT NULL DEFAULT 0"),
            c("classification", Ty::I32, "NOT NULL DEFAULT 0"),
            c("type", Ty::Enum(&["CLIENT", "SERVER"]), ""),
            c("to_be_deleted", Ty::U8, "NOT NULL DEFAULT 0"),
        ]
    };
}

const IDS: &[Col] = ids_cols!("flow_id");
const IDS_ARGUS: &[Col] = ids_cols!("argus_id");

const IDS_SIG: &[Col] = &[
    c("ids_sig_gen", Ty::U8, NN),
    c("ids_sig_id", Ty::U32, NN),
    c("sensor_id", Ty::U32, NN),
    c("sig_name", Ty::Char(255), ""),
    c("reference", Ty::Text, ""),
];

const PROCESS: &[Col] = &[
    c("sensor_id", Ty::U32, NN),
    c("process_id", Ty::U32, NN),
    c("src_ip", Ty::U32, NN),
    c("time_min", Ty::I32, NN),
    c("time_max", Ty::I32, NN),
    c("pcap_time_min", Ty::I32, NN),
    c("pcap_time_max", Ty::I32, NN),
    c("pid", Ty::U32, NN),
];

const PROCESS_TREE: &[Col] = &[
    c("sensor_id", Ty::U32, NN),
    c("child_process", Ty::U32, NN),
    c("parent_process", Ty::U32, NN),
    c("to_be_deleted", Ty::U8, "NOT NULL DEFAULT 0"),
];

const COMMAND: &[Col] = &[
    c("sensor_id", Ty::U32, NN),
    c("command_id", Ty::U32, NN),
    c("name", Ty::TinyText, NN),
];

const PROCESS_TO_COM: &[Col] = &[
    c("sensor_id", Ty::U32, NN),
    c("process_id", Ty::U32, NN),
    c("command_id", Ty::U32, NN),
    c("to_be_deleted", Ty::U8, "NOT NULL DEFAULT 0"),
];

macro_rules! sys_rw_cols {
    ($id:expr) => {
        &[
            c("sensor_id", Ty::U32, NN),
            c($id, Ty::U32, NN),
            c("process_id", Ty::U32, NN),
            c("uid", Ty::I32, NN),
            c("pcap_time", Ty::I32, ""),
            c("time", Ty::I32, NN),
            c("counter", Ty::U32, NN),
            c("filed", Ty::U32, NN),
            c("inode", Ty::U32, NN),
            c("length", Ty::U32, NN),
            c("data", Ty::Blob, ""),
            c("to_be_deleted", Ty::U8, "NOT NULL DEFAULT 0"),
        ]
    };
}

const SYS_READ: &[Col] = sys_rw_cols!("sys_read_id");
const SYS_WRITE: &[Col] = sys_rw_cols!("sys_write_id");

const SYS_OPEN: &[Col] = &[
    c("sensor_id", Ty::U32, NN),
    c("sys_open_id", Ty::U32, NN),
    c("process_id", Ty::U32, NN),
    c("uid", Ty::I32, ""),
    c("pcap_time", Ty::I32, ""),
    c("time", Ty::I32, ""),
    c("counter", Ty::U32, NN),
    c("filed", Ty::U32, NN),
    c("inode", Ty::U32, NN),
    c("length", Ty::U32, NN),
    c("to_be_deleted", Ty::U8, "NOT NULL DEFAULT 0"),
    c("filename", Ty::TinyText, ""),
];

macro_rules! sys_socket_cols {
    ($flow:expr) => {
        &[
            c("sensor_id", Ty::U32, NN),
            c("sys_socket_id", Ty::U32, NN),
            c("process_id", Ty::U32, NN),
            c("pcap_time", Ty::I32, ""),
            c("time", Ty::I32, NN),
            c("uid", Ty::I32, NN),
            c("counter", Ty::U32, NN),
            c("filed", Ty::U32, NN),
            c("inode", Ty::U32, NN),
            c($flow, Ty::U32, NN),
            c("call", Ty::U16, NN),
            c("type", Ty::TinyText, ""),
            c("to_be_deleted", Ty::U8, "NOT NULL DEFAULT 0"),
        ]
    };
}

const SYS_SOCKET: &[Col] = sys_socket_cols!("flow_id");
const SYS_SOCKET_ARGUS: &[Col] = sys_socket_cols!("argus_id");

const SBK_LOSS: &[Col] = &[
    c("sensor_id", Ty::U32, NN),
    c("src_ip", Ty::U32, NN),
    c("time", Ty::I32, NN),
    c("lost", Ty::U32, NN),
];

/// `lumpy_community_id`: each flow's Community ID v1 (seed 0; NULL when
/// the flow record cannot give the tuple: ICMPv4 errors, ICMPv6), so SQL
/// joins a flow (`flow` or `lumpy_flow6`) to Zeek, Suricata and Arkime records.
const COMMUNITY_ID: &[Col] = &[
    c("sensor_id", Ty::U32, NN),
    c("flow_id", Ty::U32, NN),
    c("community_id", Ty::VarChar(64), ""),
];

/// The watermark table: one row per (target table, sensor).
const STATE: &[Col] = &[
    c("table_name", Ty::VarChar(64), NN),
    c("sensor_id", Ty::U32, NN),
    c("flavor", Ty::VarChar(16), NN),
    c("version", Ty::U64, "NOT NULL DEFAULT 0"),
    c("row_id", Ty::U64, "NOT NULL DEFAULT 0"),
    c("digest", Ty::Char(64), ""),
    c("updated_sec", Ty::U64, NN),
];

const fn table(
    name: &'static str,
    cols: &'static [Col],
    primary_key: &'static [&'static str],
    keys: &'static [&'static str],
    source: Source,
) -> Table {
    Table {
        name,
        cols,
        primary_key,
        keys,
        source,
    }
}

const fn copy(
    name: &'static str,
    cols: &'static [Col],
    primary_key: &'static [&'static str],
    keys: &'static [&'static str],
) -> Table {
    table(
        name,
        cols,
        primary_key,
        keys,
        Source::Copy { mirror_table: name },
    )
}

const T_SENSOR: Table = table("sensor", SENSOR, &["sensor_id"], &[], Source::Sensor);
const T_FLOW6: Table = table(
    "lumpy_flow6",
    FLOW6,
    &["sensor_id", "flow_id"],
    FLOW_KEYS,
    Source::Flows {
        v6: true,
        argus: false,
    },
);
const T_COMMUNITY_ID: Table = table(
    "lumpy_community_id",
    COMMUNITY_ID,
    &["sensor_id", "flow_id"],
    &["KEY community_id_idx (community_id)"],
    Source::CommunityIds,
);
const T_STATE: Table = table(
    "lumpy_export_state",
    STATE,
    &["table_name", "sensor_id"],
    &[],
    Source::State,
);
const T_OS: Table = copy("os", OS, &["os_id", "sensor_id"], &[]);
const T_IDS_SIG: Table = copy(
    "ids_sig",
    IDS_SIG,
    &["sensor_id", "ids_sig_gen", "ids_sig_id"],
    &[],
);
const T_PROCESS: Table = copy(
    "process",
    PROCESS,
    &["sensor_id", "process_id"],
    &[
        "KEY time_min_idx (sensor_id, time_min)",
        "KEY time_max_idx (sensor_id, time_max)",
        "KEY src_ip_idx (sensor_id, src_ip)",
        "KEY pid_idx (sensor_id, pid)",
    ],
);
const T_PROCESS_TREE: Table = copy(
    "process_tree",
    PROCESS_TREE,
    &["sensor_id", "child_process", "parent_process"],
    &["KEY parent_idx (sensor_id, parent_process)"],
);
const T_COMMAND: Table = copy("command", COMMAND, &["sensor_id", "command_id"], &[]);
const T_PROCESS_TO_COM: Table = copy(
    "process_to_com",
    PROCESS_TO_COM,
    &["sensor_id", "command_id", "process_id"],
    &["KEY command_idx (sensor_id, command_id)"],
);
const T_SYS_READ: Table = copy(
    "sys_read",
    SYS_READ,
    &["sensor_id", "process_id", "sys_read_id"],
    &[],
);
const T_SYS_WRITE: Table = copy(
    "sys_write",
    SYS_WRITE,
    &["sensor_id", "process_id", "sys_write_id"],
    &[],
);
const T_SYS_OPEN: Table = copy(
    "sys_open",
    SYS_OPEN,
    &["sensor_id", "sys_open_id"],
    &["KEY process_idx (sensor_id, process_id)"],
);
const T_SBK_LOSS: Table = copy("sbk_loss", SBK_LOSS, &[], &[]);

/// hflow (hflow2, dbschema 3): the reference's tables in its order, then lumpy's.
pub const HFLOW: &[Table] = &[
    table("dbschema", DBSCHEMA, &["version"], &[], Source::Seed),
    T_SENSOR,
    table(
        "flow",
        FLOW,
        &["sensor_id", "flow_id"],
        FLOW_KEYS,
        Source::Flows {
            v6: false,
            argus: false,
        },
    ),
    copy(
        "flow_perf",
        FLOW_PERF,
        &["sensor_id", "flow_id", "sec"],
        &[],
    ),
    // hflow2 kept argus "not used"; lumpy fills it from the flows (as the
    // mirror does), incrementally by flow version like the flow table.
    table(
        "argus",
        ARGUS,
        &["sensor_id", "argus_id"],
        ARGUS_KEYS,
        Source::Flows {
            v6: false,
            argus: true,
        },
    ),
    T_OS,
    copy(
        "ids",
        IDS,
        &["sensor_id", "ids_id"],
        &["KEY flow_idx (sensor_id, flow_id)"],
    ),
    T_IDS_SIG,
    T_PROCESS,
    T_PROCESS_TREE,
    T_COMMAND,
    T_PROCESS_TO_COM,
    T_SYS_READ,
    T_SYS_WRITE,
    T_SYS_OPEN,
    copy(
        "sys_socket",
        SYS_SOCKET,
        &["sensor_id", "sys_socket_id"],
        &[
            "KEY flow_idx (sensor_id, flow_id)",
            "KEY process_idx (sensor_id, process_id)",
        ],
    ),
    T_SBK_LOSS,
    T_FLOW6,
    T_COMMUNITY_ID,
    T_STATE,
];

/// walleye_0_3 (roo 1.x): flows in `argus`, `argus_id` in ids and sys_socket.
pub const WALLEYE_0_3: &[Table] = &[
    T_SENSOR,
    table(
        "argus",
        ARGUS,
        &["sensor_id", "argus_id"],
        ARGUS_KEYS,
        Source::Flows {
            v6: false,
            argus: true,
        },
    ),
    T_OS,
    table(
        "ids",
        IDS_ARGUS,
        &["sensor_id", "ids_id"],
        &["KEY argus_idx (sensor_id, argus_id)"],
        Source::Copy {
            mirror_table: "ids",
        },
    ),
    T_IDS_SIG,
    T_PROCESS,
    T_PROCESS_TREE,
    T_COMMAND,
    T_PROCESS_TO_COM,
    T_SYS_READ,
    T_SYS_WRITE,
    T_SYS_OPEN,
    table(
        "sys_socket",
        SYS_SOCKET_ARGUS,
        &["sensor_id", "sys_socket_id"],
        &[
            "KEY argus_idx (sensor_id, argus_id)",
            "KEY process_idx (sensor_id, process_id)",
        ],
        Source::Copy {
            mirror_table: "sys_socket",
        },
    ),
    T_SBK_LOSS,
    T_FLOW6,
    T_COMMUNITY_ID,
    T_STATE,
];

/// The tables of `flavor`, in creation order.
pub fn tables(flavor: Flavor) -> &'static [Table] {
    match flavor {
        Flavor::Hflow => HFLOW,
        Flavor::Walleye03 => WALLEYE_0_3,
    }
}

/// One difference between an existing table and the expected one.
pub fn column_problems(
    table: &Table,
    found: &[(String, String)],
    found_pk: &[String],
    engine: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for col in table.cols {
        match found.iter().find(|(n, _)| n.eq_ignore_ascii_case(col.name)) {
            None => out.push(format!(
                "table {}: column {} is missing (expected {})",
                table.name,
                col.name,
                col.ty.normalized()
            )),
            Some((_, ty)) => {
                let got = normalize_found(ty);
                if got != col.ty.normalized() {
                    out.push(format!(
                        "table {}: column {} is {got}, expected {}",
                        table.name,
                        col.name,
                        col.ty.normalized()
                    ));
                }
            }
        }
    }
    let want_pk: Vec<&str> = table.primary_key.to_vec();
    let same_pk = want_pk.len() == found_pk.len()
        && want_pk
            .iter()
            .zip(found_pk)
            .all(|(a, b)| a.eq_ignore_ascii_case(b));
    if !same_pk {
        out.push(format!(
            "table {}: primary key is ({}), expected ({})",
            table.name,
            found_pk.join(", "),
            want_pk.join(", ")
        ));
    }
    if !engine.eq_ignore_ascii_case("InnoDB") {
        out.push(format!(
            "table {}: engine is {engine}, expected InnoDB (a batch and its watermark must commit together)",
            table.name
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_types_normalise() {
        assert_eq!(normalize_found("int(10) unsigned"), "int unsigned");
        assert_eq!(normalize_found("INT UNSIGNED"), "int unsigned");
        assert_eq!(normalize_found("tinyint(1)"), "tinyint");
        assert_eq!(normalize_found("bigint(20) unsigned"), "bigint unsigned");
        assert_eq!(normalize_found("char(30)"), "char(30)");
        assert_eq!(
            normalize_found("enum('offline','online','maint')"),
            Ty::Enum(STATES).normalized()
        );
    }

    #[test]
    fn ddl_is_well_formed() {
        for flavor in [Flavor::Hflow, Flavor::Walleye03] {
            for t in tables(flavor) {
                let sql = t.create_sql();
                assert!(!sql.contains(",\n)"), "{sql}");
                assert!(sql.ends_with("ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"));
            }
        }
        assert!(
            T_SBK_LOSS
                .create_sql()
                .contains("`lost` INT UNSIGNED NOT NULL\n)")
        );
    }

    #[test]
    fn mismatches_are_named() {
        let found: Vec<(String, String)> = SENSOR
            .iter()
            .filter(|c| c.name != "login")
            .map(|c| {
                let ty = if c.name == "install_sec" {
                    "bigint(20)".to_string()
                } else {
                    c.ty.normalized()
                };
                (c.name.to_string(), ty)
            })
            .collect();
        let p = column_problems(&T_SENSOR, &found, &["sensor_id".into()], "InnoDB");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("install_sec is bigint, expected int unsigned"));
        assert!(p[1].contains("login is missing"));
        let p = column_problems(&T_SENSOR, &found[..0], &[], "MyISAM");
        assert!(p.iter().any(|l| l.contains("engine is MyISAM")));
    }
}
