//! `upkeep web`: runs the gateway (`src/web/`, `docs/http.md`) with the
//! command line's settings.

use super::Call;
use crate::web::{Listen, Options, DEFAULT_PORT};

pub(super) fn run(call: &Call) -> i32 {
    let (prog, args) = (call.prog, &call.args);
    if !args.positional.is_empty() {
        return prog.usage_error("web takes no arguments");
    }
    let listen = match args.value("listen") {
        None => Listen::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))),
        Some(v) => match Listen::parse(&v.to_string_lossy()) {
            Ok(l) => l,
            Err(e) => return prog.usage_error(format!("--listen {e}")),
        },
    };
    let opts = Options {
        listen,
        token_file: args.value("token-file").map(Into::into),
        read_only: args.flag("read-only"),
        allow_hosts: args
            .values("allow-host")
            .map(|v| v.to_string_lossy().into_owned())
            .collect(),
        socket: args.socket(),
    };
    crate::web::run(opts, &|m| eprintln!("upkeep web: {m}"))
}
