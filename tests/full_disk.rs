//! Full disk (issue #9): ingest and pull into a small tmpfs made by the test
//! until it fills; lumpy stops with a clear error and exit status 2, keeps
//! everything written before (verify clean), and completes after space is
//! freed, with the result of a run that never ran out.
//!
//! Needs root to mount a tmpfs (CI runs as root); without it the tests
//! fail, saying why: a test that cannot run must not pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sync::{free_port, link, serve};
use crate::util::*;

/// A tmpfs of `mb` MiB, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new(mb: u32) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount(8) for the full-disk tmpfs: {e}"));
        assert!(
            out.status.success(),
            "cannot mount a tmpfs for the full-disk test (it needs root, as in CI): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Frees space by making the filesystem bigger.
    fn grow(&self, mb: u32) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={mb}m")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn init_in(dir: &Path, id: u32) -> String {
    let data = init_node_in(dir, id);
    config_set(&data, "store.segment_target_bytes", "262144");
    data
}

fn assert_disk_full(out: &std::process::Output, what: &str) {
    assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(out));
    let e = stderr(out);
    assert!(
        e.contains("No space left on device") || e.contains("disk is full"),
        "{what}: the error does not say the disk is full: {e}"
    );
}

#[test]
fn ingest_into_a_full_disk_stops_clearly_keeps_its_work_and_resumes() {
    let fs = Tmpfs::new(8);
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big.pcap");
    replicate_pcap(&fixture("honeynet.pcap"), &big, 40, 1000);
    let big = big.to_str().unwrap();
    // The reference, on a disk with room.
    let reference = init_in(work.path(), 4901);
    ok(&["ingest", "--data", &reference, big]);

    let data = init_in(&fs.path(), 4901);
    let out = run(&["ingest", "--data", &data, big]);
    assert_disk_full(&out, "ingest");
    let kept = segment_files(&data).len();
    assert!(kept > 1, "nothing was kept before the disk filled");
    ok(&["verify", "--data", &data, "--deep"]);
    fs.grow(192);
    ok(&["ingest", "--data", &data, big]);
    ok(&["verify", "--data", &data, "--deep"]);
    assert_eq!(sensor_root(&data, 4901), sensor_root(&reference, 4901));
    assert_eq!(flows_json(&data, &[]), flows_json(&reference, &[]));
}

#[test]
fn a_pull_into_a_full_disk_stops_clearly_keeps_its_work_and_resumes() {
    let fs = Tmpfs::new(8);
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big.pcap");
    replicate_pcap(&fixture("honeynet.pcap"), &big, 40, 1000);
    let child = init_in(work.path(), 4902);
    ok(&["ingest", "--data", &child, big.to_str().unwrap()]);
    let parent = init_in(&fs.path(), 4903);
    let ip = "127.0.0.55";
    let port = free_port(ip);
    link(
        &parent,
        "p",
        &child,
        "roo",
        &format!("https://{ip}:{port}"),
        &["--pcap", "mirror"],
    );
    let served = serve(&child, ip, port);
    let out = run(&["pull", "--data", &parent]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "the pull did not notice the full disk"
    );
    let e = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        e.contains("No space left on device") || e.contains("disk is full"),
        "pull: the error does not say the disk is full: {e}"
    );
    assert!(segment_files(&parent).len() > 1, "nothing kept");
    ok(&["verify", "--data", &parent, "--deep"]);
    fs.grow(192);
    ok(&["pull", "--data", &parent]);
    served.stop();
    ok(&["verify", "--data", &parent, "--deep"]);
    assert_eq!(sensor_root(&parent, 4902), sensor_root(&child, 4902));
    let held = segment_files(&parent);
    assert!(segment_files(&child).iter().all(|s| held.contains(s)));
    assert_eq!(
        flows_json(&parent, &["--sensor", "4902"]),
        flows_json(&child, &[])
    );
}
