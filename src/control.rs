//! The control socket: every command beside a running `lumpy serve`.
//!
//! Owns `DIR/lumpy.sock` (a unix socket, mode 0600, only for the daemon's
//! own user), the small framed protocol spoken over it, the daemon's side
//! (run a command line against the open node, stream its output back) and
//! the client's side (forward this process's command line, print what comes
//! back, exit with its status). Does not parse or run commands itself: that
//! is `cli::run`, called the same way in both processes (in the daemon
//! through the [`Runner`] `cli` hands to `serve`, so this module imports
//! nothing of `cli`), and the output is the same whether or not the daemon
//! runs.
//!
//! While a command runs inside the daemon, a thread-local [`Attached`]
//! holds the daemon's node (writes go through its one writer), where the
//! command's output goes (frames on the socket) and the flag that cancels
//! the command when its client goes away or the daemon stops.
//!
//! Protocol (docs/PROTOCOL.md, "Control socket"): the client sends `MAGIC`,
//! its working directory and its arguments as length-prefixed byte strings;
//! the daemon answers with frames `tag(1) len(u32 BE) bytes`: `o` standard
//! output, `e` standard error, `x` the exit status (one byte) as the last.

use std::cell::RefCell;
use std::ffi::OsString;
use std::io::{BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::sync::client::PullContext;

/// The socket's name inside the data directory.
pub const SOCKET_FILE: &str = "lumpy.sock";
/// First bytes of a request (and the protocol's version).
const MAGIC: &[u8; 10] = b"LUMPYCTL1\n";
/// Most arguments one request may carry, and bytes in one of them.
const MAX_ARGS: u32 = 4096;
const MAX_ARG_BYTES: u32 = 64 * 1024;
/// Largest frame either side sends or accepts.
const MAX_FRAME: usize = 64 * 1024;
/// Commands the daemon runs at once; past it a request is refused at once.
pub const MAX_RUNNING: usize = 8;
/// How long a client may take to send its request.
const REQUEST_READ: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("control request: {0}")]
    BadRequest(String),
}

/// The control socket of data directory `dir`.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET_FILE)
}

// ---------------------------------------------------------------- frames

fn write_frame(w: &mut impl Write, tag: u8, bytes: &[u8]) -> std::io::Result<()> {
    for chunk in bytes.chunks(MAX_FRAME) {
        let len = u32::try_from(chunk.len()).map_err(std::io::Error::other)?;
        w.write_all(&[tag])?;
        w.write_all(&len.to_be_bytes())?;
        w.write_all(chunk)?;
    }
    Ok(())
}

/// Reads one frame; `None` at a clean end of stream.
fn read_frame(r: &mut impl Read) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes (at most {MAX_FRAME})"),
        ));
    }
    let mut bytes = vec![0u8; len];
    r.read_exact(&mut bytes)?;
    Ok(Some((head[0], bytes)))
}

fn write_bytes(w: &mut impl Write, b: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(b.len()).map_err(std::io::Error::other)?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(b)
}

fn read_bytes(r: &mut impl Read, max: u32, what: &str) -> Result<Vec<u8>, ControlError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)
        .map_err(|e| ControlError::BadRequest(format!("{what}: {e}")))?;
    let len = u32::from_be_bytes(len);
    if len > max {
        return Err(ControlError::BadRequest(format!(
            "{what} of {len} bytes (at most {max})"
        )));
    }
    let mut b = vec![0u8; len as usize];
    r.read_exact(&mut b)
        .map_err(|e| ControlError::BadRequest(format!("{what}: {e}")))?;
    Ok(b)
}

/// A command line sent to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cwd: PathBuf,
    pub args: Vec<OsString>,
}

impl Request {
    fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(MAGIC)?;
        write_bytes(w, self.cwd.as_os_str().as_bytes())?;
        let n = u32::try_from(self.args.len()).map_err(std::io::Error::other)?;
        w.write_all(&n.to_be_bytes())?;
        for a in &self.args {
            write_bytes(w, a.as_bytes())?;
        }
        w.flush()
    }

    fn read_from(r: &mut impl Read) -> Result<Request, ControlError> {
        let mut magic = [0u8; MAGIC.len()];
        r.read_exact(&mut magic)
            .map_err(|e| ControlError::BadRequest(format!("greeting: {e}")))?;
        if &magic != MAGIC {
            return Err(ControlError::BadRequest(
                "not a lumpy control request (or another version of lumpy)".into(),
            ));
        }
        let cwd = PathBuf::from(OsString::from_vec(read_bytes(r, MAX_ARG_BYTES, "cwd")?));
        let mut n = [0u8; 4];
        r.read_exact(&mut n)
            .map_err(|e| ControlError::BadRequest(format!("argument count: {e}")))?;
        let n = u32::from_be_bytes(n);
        if n == 0 || n > MAX_ARGS {
            return Err(ControlError::BadRequest(format!(
                "{n} arguments (1 to {MAX_ARGS})"
            )));
        }
        let mut args = Vec::new();
        for _ in 0..n {
            args.push(OsString::from_vec(read_bytes(
                r,
                MAX_ARG_BYTES,
                "argument",
            )?));
        }
        Ok(Request { cwd, args })
    }
}

// ------------------------------------------------- the running command

/// What a command running inside the daemon is attached to.
struct Attached {
    ctx: Arc<PullContext>,
    out: BufWriter<UnixStream>,
    cancel: Arc<AtomicBool>,
}

thread_local! {
    static ATTACHED: RefCell<Option<Attached>> = const { RefCell::new(None) };
}

/// The daemon's node context when this thread runs a command for a client.
pub fn attached_node() -> Option<Arc<PullContext>> {
    ATTACHED.with(|a| a.borrow().as_ref().map(|a| a.ctx.clone()))
}

/// The flag that stops this thread's command (client gone, daemon stopping).
pub fn cancel_flag() -> Option<Arc<AtomicBool>> {
    ATTACHED.with(|a| a.borrow().as_ref().map(|a| a.cancel.clone()))
}

fn gone() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "the client of this command went away",
    )
}

/// Sends output of this thread's command to its client; `None` when the
/// thread runs no client's command (write to the process's own streams).
/// A cancelled command gets a broken pipe, which ends it as `| head` does.
pub fn send(stream: u8, bytes: &[u8]) -> Option<std::io::Result<()>> {
    ATTACHED.with(|a| {
        let mut a = a.borrow_mut();
        let a = a.as_mut()?;
        if a.cancel.load(Ordering::Relaxed) {
            return Some(Err(gone()));
        }
        let mut r = write_frame(&mut a.out, stream, bytes);
        // Standard error is for the operator now (warnings, "following").
        if r.is_ok() && stream == b'e' {
            r = a.out.flush();
        }
        Some(r)
    })
}

/// The log writer of the process (`cli::init_logging`): every line goes to
/// the process's standard error, and a line logged by a command run for a
/// client goes to that client's standard error too (a warning the command
/// would print when run alone, e.g. an unreadable p0f database).
#[derive(Clone, Copy, Debug, Default)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        ATTACHED.with(|a| {
            if let Ok(mut a) = a.try_borrow_mut()
                && let Some(a) = a.as_mut()
                && !a.cancel.load(Ordering::Relaxed)
            {
                let _ = write_frame(&mut a.out, STDERR, buf).and_then(|()| a.out.flush());
            }
        });
        std::io::stderr().lock().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().lock().flush()
    }
}

/// Standard output's tag.
pub const STDOUT: u8 = b'o';
/// Standard error's tag.
pub const STDERR: u8 = b'e';
const EXIT: u8 = b'x';

/// A `Write` onto this thread's client's standard output (binary output,
/// e.g. `pcap -w -`).
pub struct ClientStdout;

impl Write for ClientStdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match send(STDOUT, buf) {
            Some(r) => r.map(|()| buf.len()),
            None => std::io::stdout().write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------- daemon

/// The daemon's listener: accepts on `DIR/lumpy.sock` until `stop`.
/// What runs a client's command line in the daemon (`cli::run_forwarded`,
/// handed down by `cli` so this module never imports it): the argv, the
/// exit status.
pub type Runner = fn(&[OsString]) -> u8;

pub struct Server {
    path: PathBuf,
    runner: Runner,
    running: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Binds `DIR/lumpy.sock` (mode 0600). The caller holds the store lock,
    /// so a socket file already there was left by a daemon that did not stop
    /// cleanly: it is removed first.
    pub fn bind(
        dir: &Path,
        runner: Runner,
    ) -> Result<(Server, tokio::net::UnixListener), ControlError> {
        use std::os::unix::fs::PermissionsExt;
        let path = socket_path(dir);
        let io = |source| ControlError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!(path = %path.display(), "removed a stale control socket"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let listener = tokio::net::UnixListener::bind(&path).map_err(io)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        Ok((
            Server {
                path,
                runner,
                running: Arc::new(AtomicUsize::new(0)),
                stop: Arc::new(AtomicBool::new(false)),
            },
            listener,
        ))
    }

    /// Accepts clients until `shutdown`, each command on a thread of its own.
    pub async fn run(
        &self,
        listener: tokio::net::UnixListener,
        ctx: Arc<PullContext>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.wait_for(|s| *s) => break,
            };
            let stream = match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // The socket's mode already keeps others out; a peer of another
            // user (root aside) is refused all the same.
            match stream.peer_cred() {
                Ok(c) if c.uid() == me || c.uid() == 0 => {}
                other => {
                    tracing::warn!(peer = ?other.map(|c| c.uid()), "control socket: a client of another user refused");
                    continue;
                }
            }
            let Ok(stream) = stream.into_std() else {
                continue;
            };
            self.start(stream, ctx.clone());
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    fn start(&self, stream: UnixStream, ctx: Arc<PullContext>) {
        let running = self.running.clone();
        if running.fetch_add(1, Ordering::SeqCst) >= MAX_RUNNING {
            running.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.set_nonblocking(false);
            let mut w = BufWriter::new(stream);
            let _ = write_frame(
                &mut w,
                STDERR,
                format!("lumpy: error: the running serve is busy with {MAX_RUNNING} commands; try again shortly\n").as_bytes(),
            );
            let _ = write_frame(&mut w, EXIT, &[2]);
            let _ = w.flush();
            return;
        }
        let stop = self.stop.clone();
        let runner = self.runner;
        let spawned = std::thread::Builder::new()
            .name("lumpy-control".into())
            .spawn(move || {
                serve_client(stream, ctx, stop, runner);
                running.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            self.running.fetch_sub(1, Ordering::SeqCst);
            tracing::error!(error = %e, "control socket: no thread for a command");
        }
    }

    /// Cancels the commands still running (each stops at its next output or
    /// commit), waits up to `patience` for them, and removes the socket.
    pub fn finish(&self, patience: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let deadline = std::time::Instant::now() + patience;
        while self.running.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = self.running.load(Ordering::SeqCst);
        if left > 0 {
            tracing::warn!(
                commands = left,
                "stopping with client commands still running"
            );
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One client: read its request, run it attached to the node, answer.
fn serve_client(stream: UnixStream, ctx: Arc<PullContext>, stop: Arc<AtomicBool>, runner: Runner) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(REQUEST_READ));
    let mut reader = match stream.try_clone() {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "control socket");
            return;
        }
    };
    let mut out = BufWriter::with_capacity(MAX_FRAME, stream);
    let request = match Request::read_from(&mut reader) {
        Ok(r) => r,
        Err(e) => {
            let _ = write_frame(&mut out, STDERR, format!("lumpy: error: {e}\n").as_bytes());
            let _ = write_frame(&mut out, EXIT, &[2]);
            let _ = out.flush();
            return;
        }
    };
    let cancel = Arc::new(AtomicBool::new(false));
    watch_client(reader, cancel.clone(), stop);
    tracing::info!(args = ?request.args.get(1..), "control: command from a client");
    ATTACHED.with(|a| {
        *a.borrow_mut() = Some(Attached {
            ctx,
            out,
            cancel: cancel.clone(),
        })
    });
    let code = run_request(&request, runner);
    let attached = ATTACHED.with(|a| a.borrow_mut().take());
    // Detached first: this line is the daemon's, not the client's.
    tracing::info!(
        code,
        cancelled = cancel.load(Ordering::Relaxed),
        "control: command ended"
    );
    if let Some(mut a) = attached {
        let _ = write_frame(&mut a.out, EXIT, &[code]);
        let _ = a.out.flush();
    }
}

/// Sets `cancel` when the client closes its end (it sends nothing after its
/// request, so any read that returns means it went away) or the daemon stops.
fn watch_client(mut reader: UnixStream, cancel: Arc<AtomicBool>, stop: Arc<AtomicBool>) {
    let _ = reader.set_read_timeout(Some(Duration::from_millis(200)));
    let spawned = std::thread::Builder::new()
        .name("lumpy-control-watch".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            loop {
                if stop.load(Ordering::Relaxed) {
                    cancel.store(true, Ordering::Relaxed);
                    return;
                }
                match reader.read(&mut byte) {
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        // The command ended: its end of the socket is shut.
                        if Arc::strong_count(&cancel) == 1 {
                            return;
                        }
                    }
                    _ => {
                        cancel.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            }
        });
    if spawned.is_err() {
        tracing::warn!("control socket: no watcher thread; the command runs to its end");
    }
}

/// Runs the request's command line in this thread, in the client's working
/// directory; gives the exit status.
fn run_request(request: &Request, runner: Runner) -> u8 {
    // A directory the daemon may not enter (an operator's home under the
    // unit's ProtectHome=) still runs the command; only relative paths
    // would be read elsewhere, and the client is told so.
    if let Err(note) = enter_directory(&request.cwd) {
        let _ = send(STDERR, format!("lumpy: note: {note}\n").as_bytes());
    }
    runner(&request.args)
}

/// Gives this thread a working directory of its own (Linux keeps it per
/// thread once the thread leaves the process's shared file-system context)
/// and enters `dir`, so relative paths mean what they meant to the client.
/// On failure says where relative paths are read from instead.
fn enter_directory(dir: &Path) -> Result<(), CwdNote> {
    // SAFETY: unshare(CLONE_FS) only detaches this thread's cwd/umask/root
    // from the other threads'; it touches no memory of ours.
    if unsafe { libc::unshare(libc::CLONE_FS) } != 0 {
        return Err(CwdNote::Shared(std::io::Error::last_os_error()));
    }
    match std::env::set_current_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::env::set_current_dir("/");
            Err(CwdNote::Root {
                dir: dir.to_path_buf(),
                source: e,
            })
        }
    }
}

/// Why a forwarded command does not run in its client's directory (told
/// to the client as a note; the command runs all the same).
#[derive(Debug, thiserror::Error)]
enum CwdNote {
    #[error(
        "the running serve cannot give this command a working directory of its own ({0}): relative paths are read from serve's"
    )]
    Shared(#[source] std::io::Error),
    #[error("the running serve cannot enter {} ({source}): relative paths are read from /", dir.display())]
    Root {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

// ---------------------------------------------------------------- client

/// Runs this process's command line in the daemon serving `dir`, if one
/// answers on its socket; gives its exit status, or `None` when no daemon
/// answers (run the command here).
pub fn forward(dir: &Path) -> Option<Result<u8, ControlError>> {
    let path = socket_path(dir);
    // A stale socket (the daemon was killed) refuses: run here.
    let stream = UnixStream::connect(&path).ok()?;
    Some(forward_on(stream, &path))
}

fn forward_on(stream: UnixStream, path: &Path) -> Result<u8, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let cwd = std::env::current_dir().map_err(io)?;
    let request = Request {
        cwd,
        args: std::env::args_os().collect(),
    };
    let mut w = BufWriter::new(stream.try_clone().map_err(io)?);
    request.write_to(&mut w).map_err(io)?;
    // Our end stays open for writing: closing it is how the daemon learns
    // we went away (and cancels the command).
    let mut r = std::io::BufReader::with_capacity(MAX_FRAME + 5, stream);
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    loop {
        let Some((tag, bytes)) = read_frame(&mut r).map_err(io)? else {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the running serve ended the command without an exit status (did it stop?)",
            )));
        };
        match tag {
            STDOUT => {
                let mut o = stdout.lock();
                // Our reader went away (`| head`): end quietly; the daemon
                // sees us go and cancels the command.
                if o.write_all(&bytes).and_then(|()| o.flush()).is_err() {
                    return Ok(0);
                }
            }
            STDERR => {
                let _ = stderr.lock().write_all(&bytes);
            }
            EXIT => return Ok(bytes.first().copied().unwrap_or(2)),
            other => {
                return Err(ControlError::BadRequest(format!(
                    "the daemon sent an unknown frame {other:#04x}"
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_back_as_written() {
        let r = Request {
            cwd: "/tmp/x y".into(),
            args: vec![
                "lumpy".into(),
                "status".into(),
                OsString::from_vec(vec![0xff, b'a']),
            ],
        };
        let mut b = Vec::new();
        r.write_to(&mut b).unwrap();
        assert_eq!(Request::read_from(&mut b.as_slice()).unwrap(), r);
    }

    #[test]
    fn requests_and_frames_are_bounded() {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(Request::read_from(&mut b.as_slice()).is_err());
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&(MAX_ARGS + 1).to_be_bytes());
        assert!(Request::read_from(&mut b.as_slice()).is_err());
        assert!(Request::read_from(&mut &b"HTTP/1.1 GET"[..]).is_err());
        let mut f = vec![STDOUT];
        f.extend_from_slice(&(MAX_FRAME as u32 + 1).to_be_bytes());
        assert!(read_frame(&mut f.as_slice()).is_err());
        let mut big = Vec::new();
        write_frame(&mut big, STDOUT, &vec![7u8; MAX_FRAME * 2 + 1]).unwrap();
        let mut r = big.as_slice();
        let mut total = 0;
        while let Some((tag, bytes)) = read_frame(&mut r).unwrap() {
            assert_eq!(tag, STDOUT);
            total += bytes.len();
        }
        assert_eq!(total, MAX_FRAME * 2 + 1);
    }
}
