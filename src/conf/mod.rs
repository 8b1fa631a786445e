//! Upstart job files: text in, [`JobClass`] or diagnostics out.
//!
//! Pure: this room reads no files and knows nothing of processes, sockets or
//! the clock. `confdir` finds and reads the files; the daemon and the CLI
//! use what this room returns.
//!
//! * [`lexer`]: Upstart's lexical rules (quoting, continuation lines,
//!   comments, script blocks);
//! * [`parse`]: the stanza table and each stanza's rules;
//! * [`on`]: `start on` / `stop on` expressions;
//! * [`print`](mod@print): a [`JobClass`] back to normalised job-file text;
//! * [`job_class`]: the typed result, with Upstart's defaults.

pub mod error;
pub mod health;
pub mod job_class;
pub mod lexer;
pub mod on;
pub mod parse;
pub mod print;
pub mod signal;
pub mod stanzas;

pub use error::{line_col, ErrorKind, ParseError};
pub use job_class::*;
pub use parse::{parse_job, parse_override};
