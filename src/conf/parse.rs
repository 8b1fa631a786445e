//! The stanza parser: job-file text in, [`JobClass`] or every error out.
//!
//! Each stanza is handled as Upstart's `init/parse_job.c` handles it, so a
//! file Upstart accepts gives the same job, and the first error reported is
//! the one Upstart would give. Unlike Upstart, after an error the parser
//! skips to the next stanza and goes on, so one run shows every mistake.

use super::error::{ErrorKind, ParseError};
use super::job_class::{
    Cgroup, Command, Console, Expect, JobClass, Limit, LogCapture, LogPeriod, NormalExit,
    ProcessType, Resource, RespawnLimit, DEFAULT_CGROUP_NAME,
};
use super::lexer::{Lexer, Result, Token};
use super::on::parse_on;
use super::signal;

/// After this many errors in one file the parser stops (binary garbage
/// would otherwise give one error per line).
pub const MAX_ERRORS: usize = 100;

/// Parses the job file `text` as the job `name`.
pub fn parse_job(name: &str, text: &[u8]) -> std::result::Result<JobClass, Vec<ParseError>> {
    let mut job = JobClass::new(name);
    let errors = parse_into(&mut job, text);
    if errors.is_empty() {
        Ok(job)
    } else {
        Err(errors)
    }
}

/// Applies an `.override` file on top of `base`, as if its lines were
/// appended to the `.conf`. All or nothing: an override with an error
/// changes nothing (Upstart's documented rule).
pub fn parse_override(
    base: &JobClass,
    text: &[u8],
) -> std::result::Result<JobClass, Vec<ParseError>> {
    let mut job = base.clone();
    let errors = parse_into(&mut job, text);
    if errors.is_empty() {
        Ok(job)
    } else {
        Err(errors)
    }
}

/// Rejects what is not text: invalid UTF-8 or a NUL byte.
fn check_text(text: &[u8]) -> Option<ParseError> {
    if let Some(i) = text.iter().position(|&b| b == 0) {
        return Some(ParseError::new(i, ErrorKind::NulByte));
    }
    if let Err(e) = std::str::from_utf8(text) {
        return Some(ParseError::new(e.valid_up_to(), ErrorKind::InvalidUtf8));
    }
    None
}

fn parse_into(job: &mut JobClass, text: &[u8]) -> Vec<ParseError> {
    if let Some(e) = check_text(text) {
        return vec![e];
    }
    let mut lx = Lexer::new(text);
    let mut errors = Vec::new();
    loop {
        lx.skip_ws();
        if lx.at_end() {
            break;
        }
        if !lx.has_token() {
            lx.next_line();
            continue;
        }
        if errors.len() >= MAX_ERRORS {
            errors.push(lx.err(ErrorKind::TooManyErrors { limit: MAX_ERRORS }));
            break;
        }
        let start = lx.pos;
        let (result, parens) = stanza(job, &mut lx);
        if let Err(e) = result {
            errors.push(e);
            lx.recover(start, parens);
        }
    }
    errors
}

/// Parses one stanza. Also says whether the stanza is an event expression
/// (whose parentheses may span lines), for error recovery.
fn stanza(job: &mut JobClass, lx: &mut Lexer) -> (Result<()>, bool) {
    let name = match lx.next_word() {
        Ok(t) => t,
        Err(e) => return (Err(e), false),
    };
    let parens = name.text == "start" || name.text == "stop";
    (stanza_body(job, lx, &name), parens)
}

fn stanza_body(job: &mut JobClass, lx: &mut Lexer, name: &Token) -> Result<()> {
    match name.text.as_str() {
        "instance" => job.instance = single_arg(lx)?,
        "description" => job.description = Some(single_arg(lx)?),
        "author" => job.author = Some(single_arg(lx)?),
        "version" => job.version = Some(single_arg(lx)?),
        "usage" => job.usage = Some(single_arg(lx)?),
        "env" => {
            let v = single_arg(lx)?;
            job.env.push(v);
        }
        "env-file" => {
            let t = lx.next_arg()?;
            lx.end_of_stanza()?;
            let (optional, path) = match t.text.strip_prefix('-') {
                Some(p) => (true, p),
                None => (false, t.text.as_str()),
            };
            if !path.starts_with('/') || path.contains('\0') {
                return Err(ParseError::new(t.start, ErrorKind::IllegalEnvFile));
            }
            job.env_files.push(super::EnvFile {
                path: path.to_string(),
                optional,
            });
        }
        "export" => job.export.extend(lx.args()?.into_iter().map(|t| t.text)),
        "emits" => job.emits.extend(lx.args()?.into_iter().map(|t| t.text)),
        "start" | "stop" => {
            let on = lx.next_word()?;
            if on.text != "on" {
                return Err(ParseError::new(on.start, ErrorKind::UnknownStanza));
            }
            let expr = parse_on(lx)?;
            if name.text == "start" {
                job.start_on = Some(expr);
            } else {
                job.stop_on = Some(expr);
            }
        }
        "manual" => {
            // Like Upstart, `manual` does not consume its line: a word
            // after it is read as the next stanza (`manual task` is both).
            job.start_on = None;
        }
        "debug" => job.debug = true,
        "log" => log_stanza(job, lx)?,
        "health" => health_stanza(job, lx)?,
        "ready" => {
            let which = lx.next_word()?;
            if which.text != "timeout" {
                return Err(ParseError::new(which.start, ErrorKind::UnknownStanza));
            }
            job.ready_timeout_secs = Some(interval(lx)?);
            lx.end_of_stanza()?;
        }
        "exec" => job.set_process(ProcessType::Main, Some(exec(lx)?)),
        "script" => job.set_process(ProcessType::Main, Some(script(lx)?)),
        "pre-start" => process(job, lx, ProcessType::PreStart)?,
        "post-start" => process(job, lx, ProcessType::PostStart)?,
        "pre-stop" => process(job, lx, ProcessType::PreStop)?,
        "post-stop" => process(job, lx, ProcessType::PostStop)?,
        "expect" => {
            let v = lx.next_arg()?;
            job.expect = match v.text.as_str() {
                "fork" => Expect::Fork,
                "daemon" => Expect::Daemon,
                "stop" => Expect::Stop,
                "notify" => Expect::Notify,
                "none" => Expect::None,
                _ => return Err(ParseError::new(v.start, ErrorKind::UnknownStanza)),
            };
            lx.end_of_stanza()?;
        }
        "task" => {
            lx.end_of_stanza()?;
            job.task = true;
        }
        "kill" => {
            let which = lx.next_word()?;
            match which.text.as_str() {
                "timeout" => job.kill_timeout_secs = interval(lx)?,
                "signal" => job.kill_signal = signal_arg(lx)?,
                _ => return Err(ParseError::new(which.start, ErrorKind::UnknownStanza)),
            }
            lx.end_of_stanza()?;
        }
        "reload" => {
            let which = lx.next_word()?;
            if which.text != "signal" {
                return Err(ParseError::new(which.start, ErrorKind::UnknownStanza));
            }
            job.reload_signal = signal_arg(lx)?;
            lx.end_of_stanza()?;
        }
        "respawn" => {
            if lx.has_token() {
                let which = lx.next_word()?;
                if which.text != "limit" {
                    return Err(ParseError::new(which.start, ErrorKind::UnknownStanza));
                }
                job.respawn_limit = respawn_limit(lx)?;
            } else {
                job.respawn = true;
            }
            lx.end_of_stanza()?;
        }
        "normal" => {
            let which = lx.next_word()?;
            if which.text != "exit" {
                return Err(ParseError::new(which.start, ErrorKind::UnknownStanza));
            }
            let args = lx.args()?;
            let mut values = Vec::with_capacity(args.len());
            for a in &args {
                values.push(normal_exit(a)?);
            }
            job.normal_exit.extend(values);
        }
        "console" => {
            let v = lx.next_arg()?;
            job.console = match v.text.as_str() {
                "none" => Console::None,
                "log" => Console::Log,
                "output" => Console::Output,
                "owner" => Console::Owner,
                _ => return Err(ParseError::new(v.start, ErrorKind::UnknownStanza)),
            };
            lx.end_of_stanza()?;
        }
        "umask" => {
            let v = lx.next_arg()?;
            job.umask =
                parse_umask(&v.text).ok_or(ParseError::new(v.start, ErrorKind::IllegalUmask))?;
            lx.end_of_stanza()?;
        }
        "nice" => {
            let v = lx.next_arg()?;
            job.nice = Some(
                parse_signed(&v.text)
                    .filter(|n| (-20..=19).contains(n))
                    .ok_or(ParseError::new(v.start, ErrorKind::IllegalNice))?
                    as i32,
            );
            lx.end_of_stanza()?;
        }
        "oom" => {
            job.oom_score = oom(lx)?;
            lx.end_of_stanza()?;
        }
        "limit" => {
            let res = lx.next_arg()?;
            let resource = Resource::from_name(&res.text)
                .ok_or(ParseError::new(res.start, ErrorKind::UnknownStanza))?;
            let soft = limit_value(lx)?;
            let hard = limit_value(lx)?;
            job.limits.insert(resource, Limit { soft, hard });
            lx.end_of_stanza()?;
        }
        "chroot" => job.chroot = Some(single_arg(lx)?),
        "chdir" => job.chdir = Some(single_arg(lx)?),
        "setuid" => job.setuid = Some(single_arg(lx)?),
        "setgid" => job.setgid = Some(single_arg(lx)?),
        "apparmor" => {
            let which = lx.next_word()?;
            let v = match which.text.as_str() {
                "load" | "switch" => lx.next_arg()?.text,
                _ => return Err(ParseError::new(which.start, ErrorKind::UnknownStanza)),
            };
            lx.end_of_stanza()?;
            if which.text == "load" {
                job.apparmor_load = Some(v);
            } else {
                job.apparmor_switch = Some(v);
            }
        }
        "memory" | "cpu" | "tasks" | "io" => cgroup_limit(job, name.text.as_str(), lx)?,
        "cgroup" => {
            let args = lx.args()?;
            if args.len() > 4 {
                return Err(ParseError::new(args[4].start, ErrorKind::UnexpectedToken));
            }
            let a: Vec<String> = args.into_iter().map(|t| t.text).collect();
            let (name, setting) = match a.len() {
                1 => (DEFAULT_CGROUP_NAME.to_string(), None),
                2 => (a[1].clone(), None),
                3 => (
                    DEFAULT_CGROUP_NAME.to_string(),
                    Some((a[1].clone(), a[2].clone())),
                ),
                _ => (a[1].clone(), Some((a[2].clone(), a[3].clone()))),
            };
            add_cgroup(&mut job.cgroups, &a[0], name, setting);
        }
        _ => return Err(ParseError::new(name.start, ErrorKind::UnknownStanza)),
    }
    Ok(())
}

/// Exactly one argument, then the end of the stanza.
fn single_arg(lx: &mut Lexer) -> Result<String> {
    let v = lx.next_arg()?;
    lx.end_of_stanza()?;
    Ok(v.text)
}

fn exec(lx: &mut Lexer) -> Result<Command> {
    Ok(Command::Exec(lx.command()?.text))
}

/// `script` then, on the following lines, the block up to `end script`.
fn script(lx: &mut Lexer) -> Result<Command> {
    // A word after `script` is an error, but the block still follows: read
    // it, so that its lines are not taken for stanzas. The word is the
    // error, as Upstart reports it, even when the block has no end.
    let trailing = lx.has_token().then(|| lx.err(ErrorKind::UnexpectedToken));
    lx.next_line();
    let body = lx.block(b"script");
    match trailing {
        Some(e) => Err(e),
        None => Ok(Command::Script(body?)),
    }
}

fn process(job: &mut JobClass, lx: &mut Lexer, which: ProcessType) -> Result<()> {
    let form = lx.next_word()?;
    let cmd = match form.text.as_str() {
        "exec" => exec(lx)?,
        "script" => script(lx)?,
        _ => return Err(ParseError::new(form.start, ErrorKind::UnknownStanza)),
    };
    job.set_process(which, Some(cmd));
    Ok(())
}

/// A whole-token decimal number with an optional sign, as `strtol` with the
/// "whole token must be numeric" check.
fn parse_signed(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

/// A whole-token non-negative decimal number.
fn parse_unsigned(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok()
}

fn parse_umask(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(s, 8).ok().filter(|&m| m <= 0o777)
}

/// Seconds for `kill timeout` and `respawn limit`.
fn interval(lx: &mut Lexer) -> Result<u32> {
    let v = lx.next_arg()?;
    parse_unsigned(&v.text)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n <= i32::MAX as u32)
        .ok_or(ParseError::new(v.start, ErrorKind::IllegalInterval))
}

fn signal_arg(lx: &mut Lexer) -> Result<i32> {
    let v = lx.next_arg()?;
    signal::parse(&v.text).ok_or(ParseError::new(v.start, ErrorKind::IllegalSignal))
}

fn respawn_limit(lx: &mut Lexer) -> Result<RespawnLimit> {
    let count = lx.next_arg()?;
    if count.text == "unlimited" {
        return Ok(RespawnLimit {
            count: 0,
            interval_secs: 0,
        });
    }
    let count = parse_unsigned(&count.text)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n <= i32::MAX as u32)
        .ok_or(ParseError::new(count.start, ErrorKind::IllegalLimit))?;
    let interval_secs = interval(lx)?;
    Ok(RespawnLimit {
        count,
        interval_secs,
    })
}

fn normal_exit(a: &Token) -> Result<NormalExit> {
    if let Some(sig) = signal::from_name(&a.text) {
        return Ok(NormalExit::Signal(sig));
    }
    signal::parse_decimal_i32(&a.text)
        .map(|n| NormalExit::Status(n as u32))
        .ok_or(ParseError::new(a.start, ErrorKind::IllegalExit))
}

/// `oom score N|never` (N in -1000..=1000) or the legacy `oom N|never`
/// (N in -17..=15, scaled to the score range as Upstart does).
fn oom(lx: &mut Lexer) -> Result<i32> {
    let v = lx.next_arg()?;
    if v.text == "score" {
        let n = lx.next_arg()?;
        if n.text == "never" {
            return Ok(-1000);
        }
        return parse_signed(&n.text)
            .filter(|n| (-1000..=1000).contains(n))
            .map(|n| n as i32)
            .ok_or(ParseError::new(n.start, ErrorKind::IllegalOomScore));
    }
    if v.text == "never" {
        return Ok(-1000);
    }
    let n = parse_signed(&v.text)
        .filter(|n| (-17..=15).contains(n))
        .ok_or(ParseError::new(v.start, ErrorKind::IllegalOom))? as i32;
    // C's integer division truncates toward zero, as Rust's does.
    Ok(if n >= 0 { n * 1000 / 15 } else { n * 1000 / 17 })
}

/// A `limit` value: `unlimited` or a non-negative integer. Upstart's
/// `strtoul` also took `-1` (wrapping to unlimited); upkeep rejects signs.
fn limit_value(lx: &mut Lexer) -> Result<Option<u64>> {
    let v = lx.next_arg()?;
    if v.text == "unlimited" {
        return Ok(None);
    }
    parse_unsigned(&v.text)
        .map(Some)
        .ok_or(ParseError::new(v.start, ErrorKind::IllegalLimit))
}

/// upkeep's `log` extension (see [`LogSettings`](super::LogSettings)).
fn log_stanza(job: &mut JobClass, lx: &mut Lexer) -> Result<()> {
    let which = lx.next_word()?;
    let bad = |t: &Token| ParseError::new(t.start, ErrorKind::IllegalLogValue);
    match which.text.as_str() {
        "pty" => job.log.capture = Some(LogCapture::Pty),
        "pipe" => job.log.capture = Some(LogCapture::Pipe),
        "size" => {
            let v = lx.next_arg()?;
            job.log.size = Some(parse_size(&v.text).ok_or_else(|| bad(&v))?);
        }
        "keep" => {
            let v = lx.next_arg()?;
            let n = parse_unsigned(&v.text)
                .filter(|&n| n <= 100_000)
                .ok_or_else(|| bad(&v))?;
            job.log.keep = Some(n as u32);
        }
        "rotate" => {
            let v = lx.next_arg()?;
            job.log.rotate = Some(match v.text.as_str() {
                "daily" => LogPeriod::Daily,
                "never" => LogPeriod::Never,
                _ => return Err(bad(&v)),
            });
        }
        "compress" | "timestamps" => {
            let v = lx.next_arg()?;
            let yes = match v.text.as_str() {
                "yes" => true,
                "no" => false,
                _ => return Err(bad(&v)),
            };
            if which.text == "compress" {
                job.log.compress = Some(yes);
            } else {
                job.log.timestamps = Some(yes);
            }
        }
        _ => return Err(ParseError::new(which.start, ErrorKind::UnknownStanza)),
    }
    lx.end_of_stanza()
}

/// `health ready|alive exec CMD…`, `… tcp ADDR`, `… http://ADDR/PATH [host
/// NAME] [status LOW-HIGH]`, or `… SETTING VALUE…` after the role's probe
/// (`conf::health`).
fn health_stanza(job: &mut JobClass, lx: &mut Lexer) -> Result<()> {
    use super::health::{self, Check, Probe, Role};
    let role = lx.next_word()?;
    let role = match role.text.as_str() {
        "ready" => Role::Ready,
        "alive" => Role::Alive,
        _ => return Err(ParseError::new(role.start, ErrorKind::UnknownStanza)),
    };
    let slot = match role {
        Role::Ready => &mut job.health.ready,
        Role::Alive => &mut job.health.alive,
    };
    let bad = |t: &Token, why| ParseError::new(t.start, ErrorKind::IllegalHealth(why));
    let what = lx.next_arg()?;
    match what.text.as_str() {
        "exec" => {
            *slot = Some(Box::new(Probe::new(Check::Exec(lx.command()?.text))));
            return Ok(());
        }
        "tcp" => {
            let a = lx.next_arg()?;
            let addr = health::parse_addr(&a.text).map_err(|why| bad(&a, why))?;
            *slot = Some(Box::new(Probe::new(Check::Tcp(addr))));
        }
        url if url.contains("://") => {
            let (addr, path) = health::parse_url(url).map_err(|why| bad(&what, why))?;
            let (mut host, mut status) = (None, health::DEFAULT_STATUS);
            while lx.has_token() {
                let key = lx.next_word()?;
                let v = lx.next_arg()?;
                match key.text.as_str() {
                    "host" if !v.text.is_empty() && !v.text.contains(['\r', '\n']) => {
                        host = Some(v.text)
                    }
                    "host" => return Err(bad(&v, "expected a host name")),
                    "status" => {
                        status = health::parse_status(&v.text).map_err(|why| bad(&v, why))?
                    }
                    _ => return Err(bad(&key, "expected host NAME or status LOW-HIGH")),
                }
            }
            *slot = Some(Box::new(Probe::new(Check::Http {
                addr,
                path,
                host,
                status,
            })));
        }
        _ => {
            let Some(probe) = slot.as_mut() else {
                return Err(bad(
                    &what,
                    "expected exec, tcp or http://…; a settings line comes after its role's probe",
                ));
            };
            let mut key = what;
            loop {
                let v = lx.next_arg()?;
                let secs = || health::parse_secs(&v.text).map_err(|why| bad(&v, why));
                let count = || health::parse_count(&v.text).map_err(|why| bad(&v, why));
                match key.text.as_str() {
                    "initial-delay" => probe.initial_delay_ms = secs()?,
                    "period" => probe.period_ms = secs()?.max(1),
                    "timeout" => probe.timeout_ms = secs()?.max(1),
                    "failure-threshold" => probe.failure_threshold = count()?,
                    "success-threshold" => probe.success_threshold = count()?,
                    _ => return Err(bad(
                        &key,
                        "expected initial-delay, period, timeout, failure-threshold or success-threshold",
                    )),
                }
                if !lx.has_token() {
                    break;
                }
                key = lx.next_word()?;
            }
        }
    }
    lx.end_of_stanza()
}

/// `1048576`, `512K`, `100M`, `2G` (powers of 1024), or `unlimited` (0).
pub fn parse_size(s: &str) -> Option<u64> {
    if s == "unlimited" {
        return Some(0);
    }
    let (digits, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1u64 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    parse_unsigned(digits)?.checked_mul(mult)
}

/// upkeep's direct limits: `memory max|high SIZE`, `cpu quota P%`, `cpu
/// weight N`, `tasks max N`, `io weight N`.
fn cgroup_limit(job: &mut JobClass, word: &str, lx: &mut Lexer) -> Result<()> {
    let which = lx.next_word()?;
    let v = lx.next_arg()?;
    let bad = |why| ParseError::new(v.start, ErrorKind::IllegalCgroupLimit(why));
    let weight = |t: &str| parse_unsigned(t).filter(|n| (1..=10_000).contains(n));
    let l = &mut job.cgroup_limits;
    match (word, which.text.as_str()) {
        ("memory", "max" | "high") => {
            let bytes = parse_size(&v.text)
                .filter(|&n| n > 0)
                .ok_or(bad("expected a size in bytes, such as 512M or 2G"))?;
            if which.text == "max" {
                l.memory_max = Some(bytes);
            } else {
                l.memory_high = Some(bytes);
            }
        }
        ("cpu", "quota") => {
            let pct = v
                .text
                .strip_suffix('%')
                .and_then(parse_unsigned)
                .filter(|n| (1..=100_000).contains(n))
                .ok_or(bad("expected a percentage of one CPU, such as 50% or 200%"))?;
            l.cpu_quota_percent = Some(pct as u32);
        }
        ("cpu", "weight") => {
            l.cpu_weight =
                Some(weight(&v.text).ok_or(bad("expected a weight from 1 to 10000"))? as u32)
        }
        ("io", "weight") => {
            l.io_weight =
                Some(weight(&v.text).ok_or(bad("expected a weight from 1 to 10000"))? as u32)
        }
        ("tasks", "max") => {
            l.tasks_max = Some(
                parse_unsigned(&v.text)
                    .filter(|&n| n > 0)
                    .ok_or(bad("expected a number of tasks"))?,
            )
        }
        _ => return Err(ParseError::new(which.start, ErrorKind::UnknownStanza)),
    }
    lx.end_of_stanza()
}

/// Upstart's cgroup merging: an identical line adds nothing, a new key is
/// added, the same key gets the new value.
fn add_cgroup(
    cgroups: &mut Vec<Cgroup>,
    controller: &str,
    name: String,
    setting: Option<(String, String)>,
) {
    let idx = match cgroups
        .iter()
        .position(|c| c.controller == controller && c.name == name)
    {
        Some(i) => i,
        None => {
            cgroups.push(Cgroup {
                controller: controller.to_string(),
                name,
                settings: Vec::new(),
            });
            cgroups.len() - 1
        }
    };
    if let Some((key, value)) = setting {
        let settings = &mut cgroups[idx].settings;
        match settings.iter_mut().find(|(k, _)| *k == key) {
            Some(s) => s.1 = value,
            None => settings.push((key, value)),
        }
    }
}
