//! The Debian package (packaging/): built by packaging/build-deb.sh from this
//! build's binary (cargo-deb strips it; no second, release build), its
//! contents, the installed binary, and the hardened systemd unit.
//! Needs cargo-deb, dpkg-deb, binutils and systemd-analyze (scripts/test.sh
//! installs them when missing).

use std::path::Path;
use std::process::Command;

use crate::util::*;

fn checked(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} does not run ({e}): run scripts/test.sh"));
    assert!(
        out.status.success(),
        "{cmd:?} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_debian_package_installs_a_working_binary_and_a_hardened_unit() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("deb");
    let bin =
        std::env::var("LUMPY_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lumpy").to_string());
    checked(
        Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/build-deb.sh"))
            .env("LUMPY_DEB_BIN", &bin)
            .env("LUMPY_DEB_OUT", &out)
            .env("LUMPY_DEB_FAST", "1"),
    );
    let deb = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("a .deb was written");

    let listing = checked(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/bin/lumpy",
        "./lib/systemd/system/lumpy.service",
        "./etc/lumpy/lumpy.env",
        "./usr/share/man/man1/lumpy.1.gz",
        "./usr/share/man/man1/lumpy-serve.1.gz",
        "./usr/share/man/man1/lumpy-flows.1.gz",
        "./usr/share/bash-completion/completions/lumpy",
        "./usr/share/zsh/vendor-completions/_lumpy",
        "./usr/share/fish/vendor_completions.d/lumpy.fish",
        "./usr/share/doc/lumpy/README.md",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} is not in the package:\n{listing}"
        );
    }
    assert!(
        !listing.contains("gen-sebek") && !listing.contains("generate-man"),
        "hidden commands get no man page"
    );
    let info = checked(Command::new("dpkg-deb").arg("-I").arg(&deb));
    assert!(info.contains("Package: lumpy"), "{info}");
    assert!(
        info.contains("postinst") && info.contains("prerm"),
        "{info}"
    );
    let conffiles = checked(
        Command::new("dpkg-deb")
            .args(["-I"])
            .arg(&deb)
            .arg("conffiles"),
    );
    assert_eq!(conffiles.trim(), "/etc/lumpy/lumpy.env");
    let postinst = checked(
        Command::new("dpkg-deb")
            .args(["-I"])
            .arg(&deb)
            .arg("postinst"),
    );
    assert!(
        postinst.contains("/var/lib/lumpy") && postinst.contains("useradd --system"),
        "{postinst}"
    );

    // Installed into a scratch root: the binary runs, stripped, and works.
    let root = work.path().join("root");
    checked(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let installed = root.join("usr/bin/lumpy");
    let version = checked(Command::new(&installed).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("lumpy {}", env!("CARGO_PKG_VERSION"))
    );
    let sections = checked(Command::new("readelf").arg("-S").arg(&installed));
    assert!(!sections.contains(".debug_info"), "not stripped");
    let data = work.path().join("node");
    checked(
        Command::new(&installed)
            .args(["init", "--sensor-id", "77", "--data"])
            .arg(&data),
    );
    let status = checked(
        Command::new(&installed)
            .args(["status", "--json", "--data"])
            .arg(&data),
    );
    assert!(status.contains("\"sensor_id\": 77"), "{status}");
    let bash =
        std::fs::read_to_string(root.join("usr/share/bash-completion/completions/lumpy")).unwrap();
    assert!(bash.contains("complete -F _lumpy"), "bash completion");

    // The unit, as systemd reads it in that root (the host's own units give
    // it the targets it names): no warning at all, and hardened.
    let units = root.join("lib/systemd/system");
    checked(
        Command::new("cp")
            .arg("-an")
            .arg("/lib/systemd/system/.")
            .arg(&units),
    );
    let mut verify = Command::new("systemd-analyze");
    verify
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.display()))
        .arg("lumpy.service");
    let out = verify.output().expect("systemd-analyze runs");
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
    let security = checked(
        Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(format!("--root={}", root.display()))
            .arg("lumpy.service"),
    );
    let exposure: f64 = security
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for lumpy.service:"))
        .and_then(|(_, v)| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{security}"));
    assert!(exposure <= 2.0, "unit exposure {exposure}:\n{security}");
}
