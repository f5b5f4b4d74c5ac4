//! The Debian package (packaging/): built by packaging/build-deb.sh from this
//! build's binary (cargo-deb strips it; no second, release build), its
//! contents, the installed binary, and the hardened systemd unit.
//! Needs cargo-deb, dpkg-deb, binutils and systemd-analyze (scripts/test.sh
//! installs them when missing); the maintainer-script test needs `unshare`
//! (util-linux) and root, as the rest of the suite does.

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

/// Runs maintainer script `script` (packaging/debian/) with `args` as dpkg
/// would on this host, but in a private mount namespace: `var_lib` stands
/// for /var/lib, /run is empty but for /run/systemd/system (systemd is
/// "running"), and systemctl, useradd, getent, install and chown are stubs
/// that log their arguments to `log` (getent knows user lumpy when
/// `user_exists`). Gives the log.
fn maintainer_script(
    script: &str,
    args: &[&str],
    var_lib: &Path,
    stubs: &Path,
    user_exists: bool,
) -> String {
    let log = stubs.join("calls.log");
    let _ = std::fs::remove_file(&log);
    for tool in ["systemctl", "useradd", "getent", "install", "chown"] {
        let body = match tool {
            "getent" => format!(
                "echo \"getent $*\" >>'{}'; [ -n \"$LUMPY_USER_EXISTS\" ] && [ \"$2\" = lumpy ]",
                log.display()
            ),
            // The directory is made (its mode is in the logged arguments).
            "install" => format!(
                "echo \"install $*\" >>'{}'; for last; do :; done; mkdir -p \"$last\"",
                log.display()
            ),
            _ => format!("echo \"{tool} $*\" >>'{}'", log.display()),
        };
        let path = stubs.join(tool);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        checked(Command::new("chmod").arg("755").arg(&path));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/debian")
        .join(script);
    let inner = format!(
        "mount -t tmpfs none /run && mkdir -p /run/systemd/system && mount --bind '{}' /var/lib && exec sh '{}' {}",
        var_lib.display(),
        script.display(),
        args.join(" ")
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c", &inner]).env(
        "PATH",
        format!("{}:/usr/bin:/bin:/usr/sbin:/sbin", stubs.display()),
    );
    if user_exists {
        cmd.env("LUMPY_USER_EXISTS", "1");
    } else {
        cmd.env_remove("LUMPY_USER_EXISTS");
    }
    checked(&mut cmd);
    std::fs::read_to_string(&log).unwrap_or_default()
}

/// Every file under `dir` with its bytes, for "nothing changed".
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The package's upgrade as dpkg runs it (old prerm `upgrade`, new postinst
/// `configure OLD`): /var/lib/lumpy and the data in it are kept byte for
/// byte, no user is made again, the node is not stopped by the old package
/// and is restarted (`try-restart`: only if it ran) with the new binary.
/// A first install makes the user and an empty 0750 /var/lib/lumpy; a
/// removal stops the node and keeps /var/lib/lumpy even on purge.
/// What this does not test: dpkg itself unpacking over an installed package
/// in a real root, and a real systemd restarting the unit (no systemd in
/// the test machine); `systemd-analyze verify` checks the unit above.
#[test]
fn the_package_upgrade_keeps_var_lib_lumpy_and_restarts_the_node() {
    let work = tempfile::tempdir().unwrap();
    let var_lib = work.path().join("var-lib");
    let stubs = work.path().join("stubs");
    std::fs::create_dir_all(&var_lib).unwrap();
    std::fs::create_dir_all(&stubs).unwrap();

    let first = maintainer_script("postinst", &["configure"], &var_lib, &stubs, false);
    assert!(first.contains("useradd --system"), "{first}");
    assert!(
        first.contains("install -d -o lumpy -g lumpy -m 0750 /var/lib/lumpy"),
        "{first}"
    );
    assert!(var_lib.join("lumpy").is_dir());

    // A node lives there now (the previous release's data directory).
    checked(
        Command::new("cp")
            .arg("-a")
            .arg(fixtures().join("upgrade/7a94c98/node/."))
            .arg(var_lib.join("lumpy")),
    );
    let before = tree(&var_lib.join("lumpy"));
    assert!(!before.is_empty());

    let prerm = maintainer_script("prerm", &["upgrade", "0.1.1"], &var_lib, &stubs, true);
    assert!(
        !prerm.contains("stop"),
        "the old prerm stops the node: {prerm}"
    );
    let upgrade = maintainer_script("postinst", &["configure", "0.1.0"], &var_lib, &stubs, true);
    assert!(
        !upgrade.contains("useradd") && !upgrade.contains("install "),
        "{upgrade}"
    );
    assert!(upgrade.contains("systemctl daemon-reload"), "{upgrade}");
    assert!(
        upgrade.contains("systemctl try-restart lumpy.service"),
        "{upgrade}"
    );
    assert_eq!(
        tree(&var_lib.join("lumpy")),
        before,
        "the upgrade changed /var/lib/lumpy"
    );

    let remove = maintainer_script("prerm", &["remove"], &var_lib, &stubs, true);
    assert!(remove.contains("systemctl stop lumpy.service"), "{remove}");
    maintainer_script("postrm", &["purge"], &var_lib, &stubs, true);
    assert_eq!(tree(&var_lib.join("lumpy")), before, "a purge removed data");
}
