//! `man/pipework.8` is rendered from the CLI definition and `src/manual.rs`;
//! this test fails when it is stale. `PIPEWORK_BLESS=1 cargo test --test man`
//! rewrites it.

use clap_mangen::roff::{roman, Roff};
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
    section(&mut out, "DESCRIPTION", pipework::manual::DESCRIPTION);
    man.render_options_section(&mut out).unwrap();
    for (title, body) in pipework::manual::SECTIONS {
        section(&mut out, title, body);
    }
    String::from_utf8(out).unwrap()
}

/// Paragraphs become `.PP`; two-space-indented lines are kept verbatim.
fn section(out: &mut Vec<u8>, title: &str, body: &str) {
    let mut roff = Roff::default();
    roff.control("SH", [title]);
    for para in body.split("\n\n") {
        if para.lines().all(|l| l.starts_with("  ")) {
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
    assert!(on_disk == fresh, "man/pipework.8 is stale: run PIPEWORK_BLESS=1 cargo test --test man");
}
