//! MariaDB/MySQL connections, shared by `export` (the target of `lumpy
//! export mysql`) and `legacy` (the source of `lumpy import legacy`): the
//! connection URL, connecting (with the errors an operator can act on) and
//! the session settings.
//!
//! The password comes only from `--password-file`: a URL with a password is
//! refused, because command lines are visible to every local user (ps,
//! /proc/PID/cmdline) and end up in shell history. Nothing here logs or
//! formats the password; the target is always shown as
//! `mysql://USER@HOST:PORT/DB`.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

/// Why a MariaDB/MySQL connection failed, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum MysqlError {
    #[error("--url {shown}: {reason}")]
    BadUrl { shown: String, reason: String },
    #[error("cannot reach the database server at {addr} ({target}): {detail}; nothing was written")]
    Unreachable {
        target: String,
        addr: String,
        detail: String,
    },
    #[error(
        "{target}: the server refused user '{user}' (wrong password, unknown user, or no access from this host): {detail}; nothing was written"
    )]
    Auth {
        target: String,
        user: String,
        detail: String,
    },
    #[error("{target}: {what}: {detail}")]
    Server {
        target: String,
        what: String,
        detail: String,
    },
}

/// Session settings of every export, also at the top of a `--sql` file:
/// utf8mb4, and a non-strict sql_mode without NO_BACKSLASH_ESCAPES (the
/// literals use backslash escapes; values are fitted to their columns before
/// they are sent, see `sql`, so nothing is left for the server to adjust,
/// except `''` into an ENUM, which the mirror uses for "unset" and MariaDB
/// stores as its `''` error value only outside strict mode).
pub const SESSION_SQL: &[&str] = &[
    "SET NAMES utf8mb4",
    "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'",
];

/// MariaDB error codes the export explains.
const ER_ACCESS_DENIED: u16 = 1045;
const ER_ACCESS_DENIED_NO_PASSWORD: u16 = 1698;
const ER_DBACCESS_DENIED: u16 = 1044;
const ER_BAD_DB: u16 = 1049;

/// A parsed `--url` with the password from its file.
pub struct Target {
    pub(crate) opts: Opts,
    pub db: String,
    pub user: String,
    /// `mysql://USER@HOST:PORT/DB` (with `?socket=...` if given): no password.
    pub shown: String,
    /// `HOST:PORT` or the socket path.
    pub addr: String,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Opts holds the password: never print it.
        f.write_str(&self.shown)
    }
}

impl Target {
    /// Parses `url` (`mysql://USER@HOST[:PORT]/DATABASE[?socket=PATH]`).
    pub fn parse(url: &str, password: Option<String>) -> Result<Target, MysqlError> {
        let parsed = url::Url::parse(url).map_err(|e| MysqlError::BadUrl {
            shown: redact(url),
            reason: e.to_string(),
        })?;
        let bad = |reason: &str| MysqlError::BadUrl {
            shown: redact(url),
            reason: reason.to_string(),
        };
        if parsed.scheme() != "mysql" {
            return Err(bad("the scheme must be mysql://"));
        }
        if parsed.password().is_some() {
            return Err(bad(
                "the URL holds a password, which every local user can read in the process list: \
                 remove it and pass --password-file FILE",
            ));
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .to_string();
        let user = parsed.username().to_string();
        if user.is_empty() {
            return Err(bad("no user (mysql://USER@HOST/DATABASE)"));
        }
        let db = parsed.path().trim_start_matches('/').to_string();
        if db.is_empty() {
            return Err(bad("no database (mysql://USER@HOST/DATABASE)"));
        }
        if db.len() > 64
            || !db
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        {
            return Err(bad(
                "the database name must be 1-64 characters of A-Z, a-z, 0-9, _ and $",
            ));
        }
        let opts = Opts::from_url(url).map_err(|e| bad(&e.to_string()))?;
        let socket = opts.socket().map(str::to_string);
        let port = opts.tcp_port();
        let explicit_prefer_socket = parsed.query_pairs().any(|(k, _)| k == "prefer_socket");
        let mut builder = OptsBuilder::from_opts(opts)
            .pass(password)
            .db_name(Some(db.clone()))
            .client_found_rows(false);
        if !explicit_prefer_socket {
            // What the URL says is what is used: no silent switch from
            // TCP to the local socket (which authenticates differently).
            builder = builder.prefer_socket(false);
        }
        let (shown, addr) = match &socket {
            Some(s) => (format!("mysql://{user}@{host}/{db}?socket={s}"), s.clone()),
            None => (
                format!("mysql://{user}@{host}:{port}/{db}"),
                format!("{host}:{port}"),
            ),
        };
        Ok(Target {
            opts: builder.into(),
            db,
            user,
            shown,
            addr,
            connect_timeout: Duration::from_secs(15),
        })
    }

    fn opts_without_db(&self) -> Opts {
        OptsBuilder::from_opts(self.opts.clone())
            .db_name(None::<String>)
            .into()
    }

    /// Connects, creating the database when it does not exist, and sets the
    /// session up.
    pub async fn connect(&self) -> Result<Conn, MysqlError> {
        let mut conn = match self.connect_with(self.opts.clone()).await {
            Ok(c) => c,
            Err(mysql_async::Error::Server(e)) if e.code == ER_BAD_DB => {
                let mut c = self
                    .connect_with(self.opts_without_db())
                    .await
                    .map_err(|e| self.connect_error(e))?;
                c.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{}`", self.db))
                    .await
                    .map_err(|e| self.server(format!("create database {}", self.db), e))?;
                tracing::info!(target = %self.shown, "created database");
                c.query_drop(format!("USE `{}`", self.db))
                    .await
                    .map_err(|e| self.server(format!("use database {}", self.db), e))?;
                c
            }
            Err(e) => return Err(self.connect_error(e)),
        };
        for s in SESSION_SQL {
            conn.query_drop(*s)
                .await
                .map_err(|e| self.server("set up the session".into(), e))?;
        }
        Ok(conn)
    }

    /// Connects to a database that must already exist (a legacy import's
    /// source): nothing is created, and the session is only read from.
    pub async fn connect_existing(&self) -> Result<Conn, MysqlError> {
        let mut conn = self
            .connect_with(self.opts.clone())
            .await
            .map_err(|e| self.connect_error(e))?;
        conn.query_drop("SET NAMES utf8mb4")
            .await
            .map_err(|e| self.server("set up the session".into(), e))?;
        Ok(conn)
    }

    async fn connect_with(&self, opts: Opts) -> Result<Conn, mysql_async::Error> {
        match tokio::time::timeout(self.connect_timeout, Conn::new(opts)).await {
            Ok(r) => r,
            Err(_) => Err(mysql_async::Error::Io(mysql_async::IoError::Io(
                std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"),
            ))),
        }
    }

    fn connect_error(&self, e: mysql_async::Error) -> MysqlError {
        match e {
            mysql_async::Error::Server(s)
                if matches!(
                    s.code,
                    ER_ACCESS_DENIED | ER_ACCESS_DENIED_NO_PASSWORD | ER_DBACCESS_DENIED
                ) =>
            {
                MysqlError::Auth {
                    target: self.shown.clone(),
                    user: self.user.clone(),
                    detail: s.message,
                }
            }
            mysql_async::Error::Server(s) => MysqlError::Server {
                target: self.shown.clone(),
                what: "connect".into(),
                detail: s.to_string(),
            },
            mysql_async::Error::Url(u) => MysqlError::BadUrl {
                shown: self.shown.clone(),
                reason: u.to_string(),
            },
            other => MysqlError::Unreachable {
                target: self.shown.clone(),
                addr: self.addr.clone(),
                detail: io_detail(&other),
            },
        }
    }

    pub fn server(&self, what: String, e: mysql_async::Error) -> MysqlError {
        MysqlError::Server {
            target: self.shown.clone(),
            what,
            detail: match e {
                mysql_async::Error::Server(s) => s.to_string(),
                other => io_detail(&other),
            },
        }
    }
}

/// The URL with any password replaced by `****`, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("****"));
            }
            u.to_string()
        }
        // Unparseable: cut any userinfo, which may hold a password.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}://****{}", &url[..s], &url[at..]),
            _ => url.to_string(),
        },
    }
}

/// The most useful part of a connection error (the io error's text).
fn io_detail(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => io.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("mysql://walleye@127.0.0.1:3307/hflow", Some("pw".into())).unwrap();
        assert_eq!(t.shown, "mysql://walleye@127.0.0.1:3307/hflow");
        assert_eq!(t.db, "hflow");
        assert!(!format!("{t:?}").contains("pw"));
        let t = Target::parse(
            "mysql://root@localhost/x?socket=/run/mysqld/mysqld.sock",
            None,
        )
        .unwrap();
        assert_eq!(t.addr, "/run/mysqld/mysqld.sock");
        for bad in [
            "http://u@h/db",
            "mysql://u@h",
            "mysql://h/db",
            "mysql://u@h/a-b",
            "not a url",
            "mysql://u@h/db?bogus=1",
        ] {
            assert!(Target::parse(bad, None).is_err(), "{bad}");
        }
        let e = Target::parse("mysql://u:secret@h/db", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("password-file") && !e.contains("secret"), "{e}");
        assert_eq!(redact("mysql://u:secret@h/db"), "mysql://u:****@h/db");
        let r = redact("mysql://u:sec ret@h/d b");
        assert!(r.contains("****") && !r.contains("sec"), "{r}");
        assert_eq!(redact("mysql://u:p@[bad/x"), "mysql://****@[bad/x");
    }
}
