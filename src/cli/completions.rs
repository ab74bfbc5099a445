//! `pipework completions SHELL`: clap_complete's scripts, from the same clap
//! definition as parsing and the man page, so new subcommands and options
//! appear in them without a hand-kept list. Bash also completes the host
//! interface, the attach grammar's first word, with the host's bridges.

use clap::Command;
use clap_complete::Shell;

use super::TOOLS;

pub fn script(shell: Shell) -> String {
    let mut cmd = super::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "pipework", &mut out);
    let mut text = String::from_utf8(out).expect("clap_complete writes UTF-8");
    if shell == Shell::Bash {
        text.push_str(&bash_host_interface(&cmd));
    }
    text
}

/// A function in front of clap's `_pipework`: at the first word that is not
/// an option it offers the subcommands, the passthrough words and the names
/// of the bridges in /sys/class/net (the namespace's own, as the attach sees
/// them); everywhere else it hands over to clap's. Registered last, it
/// replaces clap's registration.
fn bash_host_interface(cmd: &Command) -> String {
    let words: Vec<&str> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(Command::get_name)
        .chain(TOOLS.iter().map(|(word, _)| *word))
        .collect();
    // Options whose value is the next word, which is not the host interface.
    let valued: Vec<String> = cmd
        .get_arguments()
        .filter(|a| !a.is_positional() && a.get_action().takes_values())
        .flat_map(|a| {
            let short = a.get_short().map(|s| format!("-{s}"));
            short.into_iter().chain(a.get_long().map(|l| format!("--{l}")))
        })
        .collect();
    format!(
        r#"
_pipework_host_interface() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" i dev words
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in
            {valued}) ((i++)) ;;
            -*) ;;
            *) _pipework "$@"; return ;;
        esac
    done
    if ((i > COMP_CWORD)) || [[ ${{cur}} == -* ]]; then
        _pipework "$@"
        return
    fi
    words="{words}"
    for dev in /sys/class/net/*/bridge; do
        [[ -d ${{dev}} ]] || continue
        dev="${{dev%/bridge}}"
        words+=" ${{dev##*/}}"
    done
    COMPREPLY=( $(compgen -W "${{words}}" -- "${{cur}}") )
}}

complete -F _pipework_host_interface -o bashdefault -o default pipework
"#,
        valued = valued.join("|"),
        words = words.join(" "),
    )
}
