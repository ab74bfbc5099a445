//! The Debian package (`cargo deb`), the shell completions it ships, the
//! pipework-watch unit, and the static build that runs inside a busybox-only
//! container. `PIPEWORK_BLESS=1 cargo test --test it package::` rewrites the
//! committed completions under packaging/completions.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Each shell's script: the file committed under packaging/completions and
/// where the package installs it.
const COMPLETIONS: [(&str, &str, &str); 3] = [
    ("bash", "pipework.bash", "usr/share/bash-completion/completions/pipework"),
    ("zsh", "_pipework", "usr/share/zsh/vendor-completions/_pipework"),
    ("fish", "pipework.fish", "usr/share/fish/vendor_completions.d/pipework.fish"),
];
const UNIT: &str = "usr/lib/systemd/system/pipework-watch.service";
/// The unit's options (`watch --allow ...`), the operator's to edit.
const DEFAULTS: &str = "etc/default/pipework";
const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// The target directory the test binary was built in (CARGO_TARGET_DIR honoured).
fn target_dir() -> PathBuf {
    Path::new(PIPEWORK).ancestors().nth(2).expect("target/debug/pipework").to_path_buf()
}

/// `cargo <args>` in the project, which must succeed. Cargo's own lock
/// serialises the tests' builds.
fn cargo(args: &[&str], env: &[(&str, &str)]) {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(args).current_dir(ROOT).env_remove("CARGO_ENCODED_RUSTFLAGS").envs(env.iter().copied());
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run cargo {args:?}: {e}"));
    assert!(out.status.success(), "cargo {args:?} failed:\n{}", stderr(&out));
}

/// The release build the package is made from: one build, shared.
fn release_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            cargo(&["build", "--release", "--bin", "pipework"], &[]);
            target_dir().join("release/pipework")
        })
        .clone()
}

/// The static build, as the README gives it.
fn static_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let flags = [("RUSTFLAGS", "-C target-feature=+crt-static")];
            cargo(&["build", "--release", "--bin", "pipework", "--target", STATIC_TARGET], &flags);
            target_dir().join(STATIC_TARGET).join("release/pipework")
        })
        .clone()
}

/// The .deb built from the release binary, and its contents unpacked.
struct Package {
    deb: String,
    tree: TempDir,
    _dir: TempDir,
}

fn package() -> Package {
    release_binary();
    let dir = TempDir::new("deb");
    let deb = dir.join("pipework.deb");
    let has_cargo_deb = Command::new(env!("CARGO")).args(["deb", "--version"]).output();
    assert!(
        has_cargo_deb.is_ok_and(|o| o.status.success()),
        "cargo-deb is missing: cargo install cargo-deb --locked (tests/run.sh does)"
    );
    cargo(&["deb", "--no-build", "--output", &deb], &[]);
    let tree = TempDir::new("tree");
    run(&["dpkg-deb", "-x", &deb, tree.arg()]);
    Package { deb, tree, _dir: dir }
}

fn read(path: impl AsRef<Path>) -> Vec<u8> {
    let path = path.as_ref();
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn committed_completions_are_current() {
    for (shell, file, _) in COMPLETIONS {
        let out = quiet(&[PIPEWORK, "completions", shell]);
        assert_success(&out);
        let path = Path::new(ROOT).join("packaging/completions").join(file);
        if std::env::var_os("PIPEWORK_BLESS").is_some() {
            std::fs::write(&path, &out.stdout).unwrap();
        }
        assert!(
            std::fs::read(&path).unwrap_or_default() == out.stdout,
            "{} is stale: run PIPEWORK_BLESS=1 cargo test --test it package::",
            path.display()
        );
    }
}

#[test]
fn completions_refuse_an_unknown_shell() {
    let out = quiet(&[PIPEWORK, "completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    let first = stderr(&out).lines().next().unwrap_or_default().to_owned();
    assert_eq!(
        first,
        "pipework: invalid value 'tcsh' for '<SHELL>' [possible values: bash, elvish, fish, powershell, zsh] \
         For more information, try '--help'."
    );
}

/// What bash's completion offers for the words of `line` (the last one,
/// possibly empty, being completed), run inside `host` with the committed
/// script sourced: `ip netns exec` mounts that namespace's own /sys.
fn complete(host: &Netns, words: &[&str]) -> Vec<String> {
    let script = format!("{ROOT}/packaging/completions/pipework.bash");
    let body = r#"source "$0"
COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
_pipework_host_interface pipework "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}""#;
    let mut argv = vec!["bash", "--norc", "--noprofile", "-c", body, &script];
    argv.extend_from_slice(words);
    let mut reply: Vec<String> =
        host.must(&argv).lines().filter(|l| !l.is_empty()).map(str::to_owned).collect();
    reply.sort();
    reply
}

#[test]
fn bash_completes_subcommands_and_the_hosts_bridges() {
    let host = Netns::new("comp");
    let stem = unique("cb");
    let (br_a, br_b, veth, peer) =
        (format!("{stem}a"), format!("{stem}b"), format!("{stem}v"), format!("{stem}w"));
    host.add_bridge(&br_a, None);
    host.add_bridge(&br_b, None);
    host.ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
    // The oracle: what iproute2 calls a bridge in that namespace.
    let bridges: Vec<String> = host
        .ip_j(&["link", "show", "type", "bridge"])
        .as_array()
        .expect("ip -j array")
        .iter()
        .map(|l| l["ifname"].as_str().expect("ifname").to_owned())
        .collect();
    assert_eq!(bridges.len(), 2, "{bridges:?}");

    // Only bridges start with the stem among the offers: not the veths.
    let mut expected = bridges.clone();
    expected.sort();
    assert_eq!(complete(&host, &["pipework", &stem]), expected);
    // The same after options and their values.
    assert_eq!(complete(&host, &["pipework", "-v", "-i", "eth2", "--dry-run", &stem]), expected);

    let first = complete(&host, &["pipework", ""]);
    for word in ["mkbridge", "loop", "completions", "route", "rule", "tc", &br_a, &br_b] {
        assert!(first.contains(&word.to_string()), "{word} not offered: {first:?}");
    }
    assert!(!first.contains(&veth) && !first.contains(&"lo".to_string()), "{first:?}");
    assert_eq!(complete(&host, &["pipework", "mkb"]), ["mkbridge"]);

    // Past the host interface, and inside subcommands, clap's completion.
    let second = complete(&host, &["pipework", &br_a, ""]);
    assert!(!second.contains(&br_b), "bridges offered for GUEST: {second:?}");
    assert_eq!(complete(&host, &["pipework", "loop", ""]), ["--help", "-h", "ensure", "free"]);
    assert_eq!(complete(&host, &["pipework", "completions", "f"]), ["fish"]);
    assert_eq!(complete(&host, &["pipework", "--dry-r"]), ["--dry-run"]);
}

#[test]
fn the_package_holds_binary_manual_completions_unit_and_cni_link() {
    let pkg = package();
    let field = |name: &str| run(&["dpkg-deb", "-f", &pkg.deb, name]).trim().to_owned();
    assert_eq!(field("Package"), "pipework");
    assert_eq!(field("Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    assert_eq!(field("Architecture"), "amd64");

    // Depends is computed: every shared library the binary needs, by the
    // package that ships it (ldd and dpkg -S as the oracle), with a version.
    // A protected package (libgcc-s1), which dpkg never removes, may be left
    // out, as cargo-deb does.
    let depends = field("Depends");
    for lib in shared_libraries(&release_binary()) {
        let owner = package_of(&lib);
        let listed = depends.split(',').any(|d| d.trim().starts_with(&format!("{owner} (>=")));
        let protected = run(&["dpkg-query", "-W", "-f", "${Protected}", &owner]) == "yes";
        assert!(listed || protected, "{lib} comes from {owner}, which Depends lacks: {depends}");
    }
    assert!(depends.starts_with("libc6 (>= "), "{depends}");

    let listing = run(&["dpkg-deb", "-c", &pkg.deb]);
    let entry = |path: &str| {
        listing
            .lines()
            .find(|l| l.split_whitespace().nth(5) == Some(&format!("./{path}")))
            .unwrap_or_else(|| panic!("{path} not in the package:\n{listing}"))
            .to_owned()
    };
    assert!(entry("usr/bin/pipework").starts_with("-rwxr-xr-x 0/0"));
    assert!(entry("usr/share/man/man8/pipework.8.gz").starts_with("-rw-r--r-- 0/0"));
    assert!(entry(UNIT).starts_with("-rw-r--r-- 0/0"));
    assert!(entry("usr/lib/cni/pipework").ends_with("./usr/lib/cni/pipework -> ../../bin/pipework"));

    let tree = &pkg.tree.path;
    for (_, file, dest) in COMPLETIONS {
        assert!(entry(dest).starts_with("-rw-r--r-- 0/0"));
        assert!(read(tree.join(dest)) == read(Path::new(ROOT).join("packaging/completions").join(file)));
    }
    let manual = run(&["gzip", "-dc", &tree.join("usr/share/man/man8/pipework.8.gz").to_string_lossy()]);
    assert!(manual.as_bytes() == read(Path::new(ROOT).join("man/pipework.8")));
    assert!(read(tree.join(UNIT)) == read(Path::new(ROOT).join("packaging/pipework-watch.service")));
    assert!(entry(DEFAULTS).starts_with("-rw-r--r-- 0/0"));
    assert!(read(tree.join(DEFAULTS)) == read(Path::new(ROOT).join("packaging/pipework.default")));

    // The CNI link reaches the packaged binary, which runs.
    let cni = std::fs::canonicalize(tree.join("usr/lib/cni/pipework")).expect("CNI link resolves");
    assert_eq!(cni, std::fs::canonicalize(tree.join("usr/bin/pipework")).unwrap());
    let version = run(&[&cni.to_string_lossy(), "--version"]);
    assert_eq!(version.trim(), format!("pipework {}", env!("CARGO_PKG_VERSION")));

    // The unit is installed and reloaded, enabled or started only by the
    // operator (or again on upgrade if they had), stopped on removal.
    let control = TempDir::new("ctl");
    run(&["dpkg-deb", "-e", &pkg.deb, control.arg()]);
    let script = |name: &str| String::from_utf8(read(control.path.join(name))).unwrap();
    let postinst = script("postinst");
    assert!(postinst.contains("daemon-reload"), "{postinst}");
    assert!(postinst.contains("was-enabled pipework-watch.service"), "{postinst}");
    assert!(!postinst.contains("deb-systemd-invoke start"), "{postinst}");
    assert!(script("prerm").contains("deb-systemd-invoke stop pipework-watch.service"));
    // An upgrade keeps the operator's options: a conffile, listed once.
    let conffiles = script("conffiles");
    assert_eq!(
        conffiles.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>(),
        ["/etc/default/pipework"]
    );

    unit_is_valid(tree);
    defaults_are_valid(tree);
}

/// The options file as shipped: comments saying what --allow lets labels
/// do, and one setting that leaves labels unplumbed; read as systemd's
/// EnvironmentFile= (and a shell) reads it.
fn defaults_are_valid(tree: &Path) {
    let file = tree.join(DEFAULTS);
    let text = String::from_utf8(read(&file)).unwrap();
    let settings: Vec<&str> = text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).collect();
    assert_eq!(settings, ["PIPEWORK_WATCH_OPTS=\"\""], "{text}");
    for said in ["--allow HOSTIF", "not plumbed at all", "--direct-phys", "udhcpc", "Records"] {
        assert!(text.contains(said), "{said:?} not said in {DEFAULTS}:\n{text}");
    }
    let script = format!(". '{}'; printf '[%s]' \"$PIPEWORK_WATCH_OPTS\"", file.display());
    assert_eq!(run(&["sh", "-c", &script]), "[]");
}

/// The shared libraries `binary` loads, by path, as ldd resolves them.
fn shared_libraries(binary: &Path) -> Vec<String> {
    let out = run(&["ldd", &binary.to_string_lossy()]);
    let libs: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_once(" => ")?.1.split_whitespace().next().map(str::to_owned))
        .collect();
    assert!(!libs.is_empty(), "ldd found no libraries:\n{out}");
    libs
}

/// The Debian package that ships `path` (dpkg knows it under /lib or /usr/lib).
fn package_of(path: &str) -> String {
    let real = std::fs::canonicalize(path).expect("library path");
    let real = real.to_string_lossy();
    let candidates = [path.to_owned(), real.to_string(), real.trim_start_matches("/usr").to_owned()];
    for candidate in &candidates {
        let out = quiet(&["dpkg", "-S", candidate]);
        if out.status.success() {
            let owner = stdout(&out);
            return owner.split(':').next().expect("dpkg -S line").trim().to_owned();
        }
    }
    panic!("dpkg -S knows none of {candidates:?}");
}

/// The unit as shipped: the parts that make it a hardened service for
/// `pipework watch`, and `systemd-analyze verify` against the unpacked tree.
fn unit_is_valid(tree: &Path) {
    let unit = String::from_utf8(read(tree.join(UNIT))).unwrap();
    let settings: Vec<&str> = unit.lines().filter(|l| !l.starts_with('#') && l.contains('=')).collect();
    for wanted in [
        // The operator's --allow and --only, split into words by systemd.
        "EnvironmentFile=-/etc/default/pipework",
        "ExecStart=/usr/bin/pipework watch $PIPEWORK_WATCH_OPTS",
        "After=docker.service network.target",
        "Wants=docker.service",
        "Restart=on-failure",
        // DHCP agents outlive a stop or restart of the service (see the unit).
        "KillMode=process",
        "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE CAP_SYS_ADMIN CAP_SYS_PTRACE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=pipework",
        "ReadWritePaths=/run",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "WantedBy=multi-user.target",
    ] {
        assert!(settings.contains(&wanted), "{wanted} missing from the unit:\n{unit}");
    }
    // Left out on purpose: these would stop it writing /proc/sys/net in the
    // guests, opening /proc/PID/ns, or reaching setns at all.
    for unwanted in ["ProtectKernelTunables=yes", "ProtectProc=invisible", "PrivateNetwork=yes", "User="] {
        assert!(!settings.iter().any(|s| s.starts_with(unwanted)), "{unwanted} in the unit:\n{unit}");
    }

    let Ok(analyze) = Command::new("systemd-analyze").arg("--version").output() else {
        println!("skipping systemd-analyze verify: systemd-analyze is not installed (package systemd)");
        return;
    };
    assert!(analyze.status.success());
    // verify resolves ExecStart and the default dependencies (sysinit.target...)
    // inside --root: the machine's own units stand in for the system's.
    let units = tree.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    for entry in std::fs::read_dir("/usr/lib/systemd/system").expect("/usr/lib/systemd/system") {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), units.join(entry.file_name())).unwrap();
        }
    }
    let root = format!("--root={}", tree.display());
    let out = quiet(&["systemd-analyze", "verify", &root, "--man=no", &tree.join(UNIT).to_string_lossy()]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}\n{}",
        out.status,
        stderr(&out)
    );
}

#[test]
fn the_static_build_is_static_and_waits_inside_a_busybox_container() {
    let binary = static_binary();
    let path = binary.to_string_lossy().into_owned();
    let headers = run(&["readelf", "-lW", &path]);
    assert!(!headers.contains("INTERP"), "a program interpreter:\n{headers}");
    let dynamic = run(&["readelf", "-dW", &path]);
    assert!(!dynamic.contains("(NEEDED)"), "shared libraries needed:\n{dynamic}");
    let kind = run(&["file", "-b", &path]);
    assert!(kind.contains("static-pie linked") || kind.contains("statically linked"), "{kind}");

    // The container's own root is busybox alone; the binary is its process.
    let host = Netns::new("stat");
    let bridge = unique("br");
    host.add_bridge(&bridge, None);
    let mount = format!("{path}:/pipework:ro");
    let waiter = Container::create("stat", &["-v", &mount], &["/pipework", "--wait", "--timeout", "60"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(waiter.inspect("{{.State.Running}}"), "true", "the waiter ended before eth1 came");
    assert!(waiter.link("eth1").is_none());

    let out = pipework(&host, &[&bridge, &waiter.name, "192.168.77.2/24"]);
    assert_success(&out);
    let started = Instant::now();
    let code = run(&["timeout", "30", "docker", "wait", &waiter.name]);
    assert_eq!(code.trim(), "0", "the waiter's exit status; its log: {}", docker_logs(&waiter.name));
    assert!(started.elapsed() < Duration::from_secs(5), "the waiter took {:?}", started.elapsed());
}

fn docker_logs(name: &str) -> String {
    let out = quiet(&["docker", "logs", name]);
    format!("{}{}", stdout(&out), stderr(&out))
}
