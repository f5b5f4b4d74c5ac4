//! The open-file limit a serving node needs, checked at start.
//!
//! Owns only the process's `RLIMIT_NOFILE` soft limit. Each accepted
//! connection holds a descriptor, so `serve.max_connections` +
//! `ui.max_connections` plus the node's own files (segments being written,
//! redb, SQLite connections, pulls, the control socket) must fit under it;
//! past it `accept` fails with EMFILE, which refuses everyone, not only the
//! excess. The soft limit is raised towards the hard one when short (as
//! nginx's `worker_rlimit_nofile` does); when even the hard limit is short, a
//! warning names the settings and systemd's `LimitNOFILE`.

/// Descriptors the node uses besides its connections: store and index files,
/// the mirror's query pool, pull streams, listeners, logs.
pub const RESERVED_FDS: u64 = 256;

/// What the check found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdLimit {
    /// The soft limit already covers the need.
    Enough { soft: u64 },
    /// The soft limit was raised to cover it.
    Raised { from: u64, to: u64 },
    /// Even the hard limit is below the need.
    Short { limit: u64, needed: u64 },
}

/// Makes the soft `RLIMIT_NOFILE` at least `needed` if the hard limit allows.
pub fn ensure(needed: u64) -> std::io::Result<FdLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let (soft, hard) = (lim.rlim_cur, lim.rlim_max);
    if soft >= needed {
        return Ok(FdLimit::Enough { soft });
    }
    let target = needed.min(hard);
    if target > soft {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own; lowering nothing.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    if target < needed {
        return Ok(FdLimit::Short {
            limit: target.max(soft),
            needed,
        });
    }
    Ok(FdLimit::Raised {
        from: soft,
        to: target,
    })
}

/// Checks the limit for the configured connection caps and logs the outcome.
pub fn check(serve_max: usize, ui_max: usize) {
    let needed = serve_max as u64 + ui_max as u64 + RESERVED_FDS;
    match ensure(needed) {
        Ok(FdLimit::Enough { .. }) => {}
        Ok(FdLimit::Raised { from, to }) => {
            tracing::info!(
                from,
                to,
                "raised the open-file limit for the connection caps"
            );
        }
        Ok(FdLimit::Short { limit, needed }) => tracing::warn!(
            limit,
            needed,
            "open-file limit below serve.max_connections + ui.max_connections + {RESERVED_FDS}: \
             past it every new connection fails; lower the caps or raise LimitNOFILE (systemd) / ulimit -n"
        ),
        Err(e) => tracing::warn!(error = %e, "open-file limit not checked"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_need_under_the_soft_limit_changes_nothing_and_one_over_the_hard_limit_is_short() {
        assert!(matches!(ensure(1), Ok(FdLimit::Enough { .. })));
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        if lim.rlim_max != libc::RLIM_INFINITY {
            let over = lim.rlim_max + 1;
            assert_eq!(
                ensure(over).unwrap(),
                FdLimit::Short {
                    limit: lim.rlim_max,
                    needed: over
                }
            );
        }
    }
}
