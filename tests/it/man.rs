//! `man/pipework.8` is rendered from the CLI definition and `src/manual.rs`;
//! this test fails when it is stale. `PIPEWORK_BLESS=1 cargo test --test it man::`
//! rewrites it.

use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;

fn render() -> String {
    let cmd = pipework::cli::command();
    let man = Man::new(cmd)
        .section("8")
        .manual("System Manager's Manual")
        .source(format!("pipework {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    section(&mut out, "DESCRIPTION", pipework::cli::manual::DESCRIPTION);
    man.render_options_section(&mut out).unwrap();
    for sub in cmd_companions() {
        companion(&mut out, &sub, "pipework");
    }
    for (title, body) in pipework::cli::manual::SECTIONS {
        section(&mut out, title, body);
    }
    String::from_utf8(out).unwrap()
}

fn cmd_companions() -> Vec<clap::Command> {
    pipework::cli::command().get_subcommands().cloned().collect()
}

/// A companion's synopsis and options, from the same clap definition.
fn companion(out: &mut Vec<u8>, sub: &clap::Command, parent: &str) {
    let name = format!("{parent} {}", sub.get_name());
    if sub.has_subcommands() {
        for inner in sub.get_subcommands() {
            companion(out, inner, &name);
        }
        return;
    }
    let mut roff = Roff::default();
    roff.control("SH", [name.to_uppercase().as_str()]);
    let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
    roff.control("PP", []).text([roman(about)]);
    let usage = sub.clone().bin_name(&name).render_usage().to_string();
    roff.control("PP", []).text([bold(usage.trim_start_matches("Usage: "))]);
    for arg in
        sub.get_arguments().filter(|a| !a.is_hide_set() && a.get_id() != "help" && a.get_id() != "verbose")
    {
        let value = arg.get_action().takes_values().then(|| arg.get_value_names()).flatten();
        let flag = match (arg.get_long(), value) {
            (Some(long), Some(v)) => format!("--{long} {}", v[0]),
            (Some(long), None) => format!("--{long}"),
            (None, _) => arg.get_value_names().map(|v| v[0].to_string()).unwrap_or_default(),
        };
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        roff.control("TP", []).text([bold(flag)]).text([roman(help)]);
    }
    roff.to_writer(out).unwrap();
}

/// Paragraphs become `.PP`; two-space-indented lines are kept verbatim;
/// a paragraph opening with `= TAG` is a tagged item (`.TP`).
fn section(out: &mut Vec<u8>, title: &str, body: &str) {
    let mut roff = Roff::default();
    roff.control("SH", [title]);
    for para in body.split("\n\n") {
        if let Some((tag, text)) = para.strip_prefix("= ").and_then(|p| p.split_once('\n')) {
            roff.control("TP", []).text([bold(tag)]).text([roman(text.replace('\n', " "))]);
        } else if para.lines().all(|l| l.starts_with("  ")) {
            roff.control("PP", []).control("nf", []).control("RS", ["4"]);
            for line in para.lines() {
                roff.text([roman(&line[2..])]);
            }
            roff.control("RE", []).control("fi", []);
        } else {
            roff.control("PP", []).text([roman(para.replace('\n', " "))]);
        }
    }
    roff.to_writer(out).unwrap();
}

#[test]
fn man_page_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/man/pipework.8");
    let fresh = render();
    if std::env::var_os("PIPEWORK_BLESS").is_some() {
        std::fs::write(path, &fresh).unwrap();
    }
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert!(on_disk == fresh, "man/pipework.8 is stale: run PIPEWORK_BLESS=1 cargo test --test it man::");
}

/// The page as man(1) shows it: every section's layout, not only its
/// presence. A verbatim line must stay a line of its own, and a tagged
/// item's tag must stand alone with its text indented below it.
#[test]
fn man_page_renders_as_laid_out() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/man/pipework.8");
    let page = rendered(path);
    let lines: Vec<&str> = page.lines().collect();
    let section = |title: &str| -> Vec<&str> {
        let start = lines
            .iter()
            .position(|l| *l == title)
            .unwrap_or_else(|| panic!("no {title} section in:\n{page}"));
        lines[start + 1..].iter().take_while(|l| l.is_empty() || l.starts_with(' ')).copied().collect()
    };
    for title in [
        "DESCRIPTION",
        "OPTIONS",
        "GUESTS",
        "WATCH",
        "RECORDS",
        "CNI PLUGIN",
        "FILES",
        "ENVIRONMENT",
        "EXIT STATUS",
    ] {
        assert!(section(title).iter().any(|l| !l.trim().is_empty()), "{title} is empty");
    }
    // Tagged lists: each tag on a line of its own, its text indented deeper.
    let tagged = |title: &str, tags: &[&str]| {
        let body = section(title);
        for tag in tags {
            let at = body.iter().position(|l| l.trim() == *tag).unwrap_or_else(|| {
                panic!("{title}: {tag} is not on a line of its own:\n{}", body.join("\n"))
            });
            let indent = |l: &str| l.len() - l.trim_start().len();
            let next = body[at + 1..].iter().find(|l| !l.trim().is_empty()).expect("text after the tag");
            assert!(indent(next) > indent(body[at]), "{title}: {tag}'s text is not indented under it");
        }
    };
    tagged(
        "ENVIRONMENT",
        &["DOCKER_HOST", "DB_SOCK", "OVS_RUNDIR", "PIPEWORK_STATE_DIR", "RUST_LOG", "CNI_COMMAND"],
    );
    tagged("FILES", &["/var/lib/pipework", "/etc/default/pipework", "/usr/lib/cni/pipework"]);
    // Verbatim blocks keep their lines: each GUESTS form starts a line.
    let guests = section("GUESTS");
    for form in ["pid:PID", "netns:NAME", "/PATH"] {
        assert!(
            guests.iter().any(|l| l.trim_start().starts_with(form)),
            "GUESTS: {form} does not start a line"
        );
    }
}

/// `man -l` with a wide terminal and no hyphenation noise, as plain text.
fn rendered(path: &str) -> String {
    let out = std::process::Command::new("man")
        .args(["-l", path])
        .env("MANWIDTH", "200")
        .env("MAN_KEEP_FORMATTING", "")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("LANG", "C.UTF-8")
        .output()
        .expect("man(1) runs (tests/run.sh installs man-db)");
    assert!(out.status.success(), "man -l failed: {}", String::from_utf8_lossy(&out.stderr));
    // Strip overstrike bold/underline, should a pager-less man keep it.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut clean = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            clean.pop();
        } else {
            clean.push(c);
        }
    }
    clean
}
