//! Shell completions for bash, zsh and fish: the commands, each command's
//! options, and job names from the running daemon (`upkeep list`, through
//! the socket the command line names).

use crate::cli::args::Opt;
use crate::cli::{CommandInfo, COMMANDS, LINK_NAMES};

/// Whether a command's arguments are job names (or, for the offline
/// commands, job names and paths).
fn takes_jobs(c: &CommandInfo) -> bool {
    c.args.starts_with("JOB") || c.args.contains("|JOB")
}

/// Whether an option's value is a path (completed as files).
fn value_is_path(o: &Opt) -> bool {
    matches!(o.value, Some("DIR" | "PATH"))
}

fn all_names() -> String {
    let mut names = vec!["upkeep", "initctl"];
    names.extend(LINK_NAMES);
    names.join(" ")
}

fn long_and_short(o: &Opt) -> Vec<String> {
    let mut v = vec![format!("--{}", o.long)];
    if let Some(c) = o.short {
        v.push(format!("-{c}"));
    }
    v
}

/// bash: `complete -F` for upkeep, initctl and the link names.
pub fn bash() -> String {
    let mut s = String::from(
        "# bash completion for upkeep, initctl and start/stop/restart/reload/status.
# Made from upkeep's command table (src/manual/completions.rs); do not edit.

_upkeep_jobs() {
    local sock=() i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            --socket) sock=(--socket \"${COMP_WORDS[i + 1]}\") ;;
            --socket=*) sock=(\"${COMP_WORDS[i]}\") ;;
        esac
    done
    upkeep list \"${sock[@]}\" 2>/dev/null | awk '!/^\\t/ { print $1 }'
}

_upkeep() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local prog=${COMP_WORDS[0]##*/} cmd= i
    case $prog in
        start | stop | restart | reload | status) cmd=$prog ;;
        *)
            for ((i = 1; i < COMP_CWORD; i++)); do
                case ${COMP_WORDS[i]} in
                    --socket) ((i++)) ;;
                    -*) ;;
                    *) cmd=${COMP_WORDS[i]}; break ;;
                esac
            done
            ;;
    esac
    local opts= paths= values= jobs=
    case $cmd in
        '')
",
    );
    let names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
    s.push_str(&format!(
        "            COMPREPLY=($(compgen -W \"{} --socket --help\" -- \"$cur\"))\n",
        names.join(" ")
    ));
    s.push_str(
        "            [[ $prev == --socket ]] && COMPREPLY=($(compgen -f -- \"$cur\"))\n            return\n            ;;\n",
    );
    for c in COMMANDS {
        let opts: Vec<String> = c
            .options
            .iter()
            .flat_map(long_and_short)
            .chain(["--help".to_string()])
            .collect();
        let paths: Vec<String> = c
            .options
            .iter()
            .filter(|o| value_is_path(o))
            .flat_map(long_and_short)
            .collect();
        let values: Vec<String> = c
            .options
            .iter()
            .filter(|o| o.value.is_some() && !value_is_path(o))
            .flat_map(long_and_short)
            .collect();
        s.push_str(&format!(
            "        {})\n            opts=\"{}\" paths=\"{}\" values=\"{}\" jobs={}\n            ;;\n",
            c.name,
            opts.join(" "),
            paths.join(" "),
            values.join(" "),
            if takes_jobs(c) { "1" } else { "" }
        ));
    }
    s.push_str(
        "        *) return ;;
    esac
    if [[ \" $paths \" == *\" $prev \"* ]]; then
        COMPREPLY=($(compgen -f -- \"$cur\"))
    elif [[ \" $values \" == *\" $prev \"* ]]; then
        COMPREPLY=()
    elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))
    elif [[ -n $jobs ]]; then
        COMPREPLY=($(compgen -W \"$(_upkeep_jobs)\" -- \"$cur\"))
    fi
}
",
    );
    s.push_str(&format!("complete -F _upkeep {}\n", all_names()));
    s
}

/// Text inside a zsh `_arguments` spec's brackets, and in single quotes.
fn zsh_text(s: &str) -> String {
    s.replace('\'', "'\\''")
        .replace('[', "\\[")
        .replace(']', "\\]")
        .replace(':', "\\:")
}

/// zsh: a `#compdef` function.
pub fn zsh() -> String {
    let mut s = format!(
        "#compdef {}
# zsh completion for upkeep; made from upkeep's command table
# (src/manual/completions.rs); do not edit.

_upkeep_jobs() {{
    local -a jobs
    jobs=(${{(f)\"$(upkeep list 2>/dev/null | awk '!/^\\t/ {{ print $1 }}')\"}})
    _describe -t jobs 'job' jobs
}}

_upkeep_command() {{
    local cmd=$1
    shift
    case $cmd in
",
        all_names()
    );
    for c in COMMANDS {
        s.push_str(&format!(
            "        {})\n            _arguments -s \\\n",
            c.name
        ));
        for o in c.options {
            let names = long_and_short(o);
            let exclusive = if names.len() > 1 {
                format!("({})", names.join(" "))
            } else {
                String::new()
            };
            let spell = if names.len() > 1 {
                format!("{{{}}}", names.join(","))
            } else {
                names[0].clone()
            };
            let value = match o.value {
                Some(v) if value_is_path(o) => format!(":{}:_files", zsh_text(v)),
                Some(v) => format!(":{}: ", zsh_text(v)),
                None => String::new(),
            };
            s.push_str(&format!(
                "                '{exclusive}'{spell}'[{}]{value}' \\\n",
                zsh_text(o.help)
            ));
        }
        let rest = if takes_jobs(c) {
            if c.args.contains("PATH") {
                "'*:job or path:{_upkeep_jobs; _files}'"
            } else {
                "'1:job:_upkeep_jobs' '*:KEY=VALUE: '"
            }
        } else if c.args.is_empty() {
            ""
        } else {
            "'*:argument: '"
        };
        s.push_str(&format!(
            "                '(- *)--help[show help]' {rest}\n            ;;\n"
        ));
    }
    s.push_str(
        "    esac
}

_upkeep() {
    local prog=${words[1]:t}
    case $prog in
        start|stop|restart|reload|status)
            _upkeep_command $prog
            return
            ;;
    esac
    local -a commands
    commands=(
",
    );
    for c in COMMANDS {
        s.push_str(&format!("        '{}:{}'\n", c.name, zsh_text(c.summary)));
    }
    s.push_str(
        "    )
    _arguments -C \\
        '--socket[the daemon'\\''s socket]:PATH:_files' \\
        '(- *)--help[show help]' \\
        '1:command:->command' \\
        '*::argument:->argument'
    case $state in
        command) _describe -t commands 'upkeep command' commands ;;
        argument) _upkeep_command $words[1] ;;
    esac
}

_upkeep \"$@\"
",
    );
    s
}

/// Text in fish's single quotes.
fn fish_text(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

/// fish: `complete` lines for each name.
pub fn fish() -> String {
    let mut s = String::from(
        "# fish completion for upkeep; made from upkeep's command table
# (src/manual/completions.rs); do not edit.

function __upkeep_jobs
    upkeep list 2>/dev/null | string match -rv '^\\t' | string split -f1 ' '
end

",
    );
    for prog in ["upkeep", "initctl"] {
        s.push_str(&format!(
            "complete -c {prog} -f\ncomplete -c {prog} -n __fish_use_subcommand -l socket -r -F -d 'the daemon'\\''s socket'\n"
        ));
        for c in COMMANDS {
            s.push_str(&format!(
                "complete -c {prog} -n __fish_use_subcommand -a {} -d '{}'\n",
                c.name,
                fish_text(c.summary)
            ));
            let cond = format!("-n '__fish_seen_subcommand_from {}'", c.name);
            options_fish(&mut s, prog, &cond, c);
        }
    }
    for link in LINK_NAMES {
        if let Some(c) = COMMANDS.iter().find(|c| c.name == *link) {
            s.push_str(&format!("complete -c {link} -f\n"));
            options_fish(&mut s, link, "", c);
        }
    }
    s
}

fn options_fish(s: &mut String, prog: &str, cond: &str, c: &CommandInfo) {
    let cond = if cond.is_empty() {
        String::new()
    } else {
        format!("{cond} ")
    };
    for o in c.options {
        let short = o.short.map(|c| format!(" -s {c}")).unwrap_or_default();
        let value = match o.value {
            Some(_) if value_is_path(o) => " -r -F",
            Some(_) => " -x",
            None => "",
        };
        s.push_str(&format!(
            "complete -c {prog} {cond}-l {}{short}{value} -d '{}'\n",
            o.long,
            fish_text(o.help)
        ));
    }
    if takes_jobs(c) {
        let files = if c.args.contains("PATH") { " -F" } else { "" };
        s.push_str(&format!(
            "complete -c {prog} {cond}-a '(__upkeep_jobs)'{files}\n"
        ));
    }
}
