#![forbid(unsafe_code)]

fn main() {
    std::process::exit(upkeep::cli::main());
}
