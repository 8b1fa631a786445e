//! A command's arguments, parsed against its entry in the command table:
//! an option the table does not list is refused, so the table (which also
//! writes `--help`, the man pages and the completions) cannot drift from
//! what a command accepts.

use std::ffi::OsString;

/// One option of a command.
#[derive(Debug, PartialEq, Eq)]
pub struct Opt {
    pub long: &'static str,
    pub short: Option<char>,
    /// The value's name (`DIR`), or `None` for a flag.
    pub value: Option<&'static str>,
    pub help: &'static str,
}

impl Opt {
    /// `-n, --no-wait` / `    --socket PATH`, as help shows it.
    pub fn shown(&self) -> String {
        let short = self.short.map_or("    ".to_string(), |c| format!("-{c}, "));
        match self.value {
            Some(v) => format!("{short}--{} {v}", self.long),
            None => format!("{short}--{}", self.long),
        }
    }
}

/// The options every command that talks to the daemon takes.
pub const SOCKET: Opt = Opt {
    long: "socket",
    short: None,
    value: Some("PATH"),
    help: "the daemon's socket (default: $UPKEEP_SOCKET, else /run/upkeep/upkeep.sock for root, else $XDG_RUNTIME_DIR/upkeep.sock)",
};

/// What a command line said, in the table's terms.
#[derive(Debug)]
pub struct Args {
    table: &'static [Opt],
    /// (option, value) in the order given; a flag's value is empty.
    given: Vec<(&'static str, OsString)>,
    /// The arguments that are not options, in order.
    pub positional: Vec<OsString>,
}

impl Args {
    /// Parses `args` against `table` (`--opt=value`, `-x value`, `--` ends
    /// the options). The error is lexopt's wording (`invalid option '--x'`).
    pub fn parse(table: &'static [Opt], args: Vec<OsString>) -> Result<Args, lexopt::Error> {
        use lexopt::Arg;
        let mut out = Args {
            table,
            given: Vec::new(),
            positional: Vec::new(),
        };
        let mut parser = lexopt::Parser::from_args(args);
        while let Some(arg) = parser.next()? {
            let opt = match &arg {
                Arg::Value(_) => None,
                Arg::Long(l) => table.iter().find(|o| o.long == *l),
                Arg::Short(c) => table.iter().find(|o| o.short == Some(*c)),
            };
            match (arg, opt) {
                (Arg::Value(v), _) => out.positional.push(v),
                (_, Some(o)) if o.value.is_some() => out.given.push((o.long, parser.value()?)),
                (_, Some(o)) => out.given.push((o.long, OsString::new())),
                (other, None) => return Err(other.unexpected()),
            }
        }
        Ok(out)
    }

    fn known(&self, long: &str) {
        debug_assert!(
            self.table.iter().any(|o| o.long == long),
            "--{long} is not in the command's table"
        );
    }

    /// Whether the command takes this option at all (for handlers that
    /// serve several commands).
    pub fn options_include(&self, long: &str) -> bool {
        self.table.iter().any(|o| o.long == long)
    }

    /// Whether the flag was given.
    pub fn flag(&self, long: &str) -> bool {
        self.known(long);
        self.given.iter().any(|(l, _)| *l == long)
    }

    /// Every value the option was given, in order.
    pub fn values<'a>(&'a self, long: &'a str) -> impl Iterator<Item = &'a OsString> + 'a {
        self.known(long);
        self.given
            .iter()
            .filter(move |(l, _)| *l == long)
            .map(|(_, v)| v)
    }

    /// The option's last value.
    pub fn value(&self, long: &str) -> Option<&OsString> {
        self.known(long);
        let mut given = self.given.iter().filter(|(l, _)| *l == long);
        given.next_back().map(|(_, v)| v)
    }

    /// The options given, in order (for options whose order matters).
    pub fn given(&self) -> impl Iterator<Item = (&'static str, &OsString)> {
        self.given.iter().map(|(l, v)| (*l, v))
    }

    /// `--socket PATH`, or the default socket.
    pub fn socket(&self) -> std::path::PathBuf {
        self.value("socket")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(crate::paths::default_socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &[Opt] = &[
        Opt {
            long: "no-wait",
            short: Some('n'),
            value: None,
            help: "",
        },
        SOCKET,
    ];

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::parse(T, args.iter().map(OsString::from).collect()).map_err(|e| e.to_string())
    }

    #[test]
    fn options_and_values_in_any_order() {
        let a = parse(&["web", "-n", "--socket=/s", "A=1", "--", "--x"]).unwrap();
        assert!(a.flag("no-wait"));
        assert_eq!(a.value("socket").unwrap(), "/s");
        assert_eq!(a.positional, ["web", "A=1", "--x"]);
    }

    #[test]
    fn an_option_not_in_the_table_is_refused() {
        assert_eq!(parse(&["--json"]).unwrap_err(), "invalid option '--json'");
        assert_eq!(parse(&["-q"]).unwrap_err(), "invalid option '-q'");
        assert!(parse(&["--socket"])
            .unwrap_err()
            .contains("missing argument"));
        assert!(parse(&["--no-wait=1"]).is_err());
    }
}
