//! The gateway's routes (`docs/http.md`): each request is checked (its
//! `Host`, then its token where one is needed), answered from the daemon's
//! answers to the gateway's own control requests, and written with the
//! security headers.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::{self, ReadError, Request, Response};
use super::hub::Item;
use super::{auth, metrics, page, Conn, Shared};
use crate::control::{
    client, Command, InstanceStatus, Response as Answer, Versioned, JSON_VERSION,
};

/// Serves one connection: one request, one response (or one stream).
pub fn handle(shared: &Arc<Shared>, mut conn: Conn, peer: &str) {
    let req = match http::read_request(&mut conn) {
        Ok(r) => r,
        Err(ReadError::Answer(status, why)) => {
            let _ = Response::error(status, why).write_to(&mut conn);
            return;
        }
        Err(ReadError::Gone) => return,
    };
    match route(shared, &req, peer) {
        Reply::Done(resp) => {
            let _ = resp.write_to(&mut conn);
        }
        Reply::Events { privileged } => events(shared, conn, privileged),
        Reply::Log(log) => log.serve(conn),
    }
}

/// What a route answers: a response, or a stream the connection keeps.
pub enum Reply {
    Done(Response),
    Events { privileged: bool },
    Log(super::logs::Follow),
}

impl From<Response> for Reply {
    fn from(r: Response) -> Reply {
        Reply::Done(r)
    }
}

/// What a request proved about its sender.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Holder {
    /// A valid token: logs, environments, and (when the gateway acts)
    /// actions.
    Token,
    Anyone,
}

fn route(shared: &Shared, req: &Request, peer: &str) -> Reply {
    // A page elsewhere cannot reach the gateway by a name it controls
    // (DNS rebinding): the Host must be one the gateway answers to.
    match &req.host {
        Some(h) if shared.hosts.iter().any(|a| a.eq_ignore_ascii_case(h)) => {}
        _ => return Response::error(403, "Host not allowed (docs/http.md: --allow-host)").into(),
    }
    let holder = match holder(shared, req, peer) {
        Ok(h) => h,
        Err(resp) => return resp.into(),
    };
    let segments: Option<Vec<String>> = req.path.split('/').skip(1).map(http::decode).collect();
    let Some(segments) = segments else {
        return Response::error(400, "bad percent-encoding in the path").into();
    };
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let get = req.method == "GET" || req.method == "HEAD";
    match (req.method.as_str(), seg.as_slice()) {
        (_, [""]) | (_, ["index.html"]) | (_, ["app.js"]) | (_, ["style.css"]) if get => {
            page::serve(seg[0]).into()
        }
        (_, ["healthz"]) if get => healthz(shared).into(),
        (_, ["api", "v1", "gateway"]) if get => gateway(shared, holder).into(),
        (_, ["readyz"]) if get => readyz(shared, &req.query_values("job")).into(),
        (_, ["metrics"]) if get => metrics(shared).into(),
        (_, ["api", "v1", "jobs"]) if get => {
            let costs = req.query_value("costs").is_some_and(|v| v == "1");
            jobs(shared, None, costs).into()
        }
        (_, ["api", "v1", "events"]) if get => Reply::Events {
            privileged: holder == Holder::Token,
        },
        (_, ["api", "v1", "jobs", job, "log"]) if get => log(shared, req, holder, job, None),
        (_, ["api", "v1", "jobs", job, instance, "log"]) if get => {
            log(shared, req, holder, job, Some(instance))
        }
        (_, ["api", "v1", "jobs", job]) if get => jobs(shared, Some((job, None)), true).into(),
        (_, ["api", "v1", "jobs", job, instance]) if get => {
            jobs(shared, Some((job, Some(instance))), true).into()
        }
        ("POST", ["api", "v1", "jobs", job, action]) => {
            act(shared, req, holder, peer, job, None, action).into()
        }
        ("POST", ["api", "v1", "jobs", job, instance, action]) => {
            act(shared, req, holder, peer, job, Some(instance), action).into()
        }
        (_, ["api", ..]) if !get && req.method != "POST" => {
            Response::error(405, "GET or POST only")
                .with("Allow", "GET, POST")
                .into()
        }
        _ => Response::error(404, "no such page").into(),
    }
}

/// Checks the token a request carries, if any: a wrong one is 401 (and
/// counts against its address), too many wrong ones 429.
fn holder(shared: &Shared, req: &Request, peer: &str) -> Result<Holder, Response> {
    let Some(given) = auth::bearer(req.authorization.as_deref()) else {
        return Ok(Holder::Anyone);
    };
    let addr = peer.rsplit_once(':').map_or(peer, |(a, _)| a);
    let now = Instant::now();
    let mut failures = shared
        .failures
        .lock()
        .map_err(|_| Response::error(500, "poisoned"))?;
    if !failures.allowed(addr, now) {
        return Err(
            Response::error(429, "too many wrong tokens; try again later")
                .with("Retry-After", auth::FAILURE_WINDOW.as_secs().to_string()),
        );
    }
    match &shared.token {
        Some(t) if auth::same(t, given) => Ok(Holder::Token),
        _ => {
            failures.failed(addr, now);
            eprintln!("upkeep web: {peer}: wrong token");
            Err(Response::error(401, "wrong token").with("WWW-Authenticate", "Bearer"))
        }
    }
}

/// The daemon's answer to `command`, or the response that says why not.
fn ask(shared: &Shared, command: Command) -> Result<Answer, Response> {
    match client::call(&shared.socket, command) {
        Ok(Answer::Error { message }) => Err(daemon_error(&message)),
        Ok(a) => Ok(a),
        Err(e) => Err(Response::error(502, &e)),
    }
}

/// A daemon's refusal as HTTP: an unknown job is 404, a refusal of
/// authority 403, anything else 409.
pub(super) fn daemon_error(message: &str) -> Response {
    let status = if message.starts_with("Unknown job") || message.starts_with("Unknown instance") {
        404
    } else if message.contains("ermission") || message.contains("not allowed") {
        403
    } else {
        409
    };
    Response::error(status, message)
}

/// An instance as `--json` prints it (`docs/json.md`).
pub fn instance_json(s: &InstanceStatus) -> Value {
    serde_json::to_value(Versioned::new(s)).unwrap_or(Value::Null)
}

/// Every job (`list --json`), one job's instances, or one instance.
fn jobs(shared: &Shared, which: Option<(&str, Option<&str>)>, costs: bool) -> Response {
    match jobs_value(shared, which, costs) {
        Ok(v) => Response::json(200, &v),
        Err(r) => r,
    }
}

fn jobs_value(
    shared: &Shared,
    which: Option<(&str, Option<&str>)>,
    costs: bool,
) -> Result<Value, Response> {
    let command = match which {
        Some((job, Some(instance))) => Command::Status {
            job: job.to_string(),
            instance: Some(instance.to_string()),
            env: Vec::new(),
            costs,
        },
        _ => Command::List { costs },
    };
    let (instances, broken) = match ask(shared, command)? {
        Answer::Ok { instances, broken } => (instances, broken),
        _ => return Err(Response::error(502, "unexpected answer from the daemon")),
    };
    match which {
        None => {
            let mut all: Vec<Value> = instances.iter().map(instance_json).collect();
            all.extend(broken.iter().map(|b| {
                json!({ "v": JSON_VERSION, "job": b.job, "file_errors": [b.error], "broken": true })
            }));
            Ok(Value::Array(all))
        }
        Some((job, None)) => {
            let mine: Vec<Value> = instances
                .iter()
                .filter(|i| i.job == job)
                .map(instance_json)
                .collect();
            if mine.is_empty() {
                if let Some(b) = broken.iter().find(|b| b.job == job) {
                    let e = format!("job file has errors: {}", b.error);
                    return Err(Response::error(409, &e));
                }
                return Err(Response::error(404, &format!("Unknown job: {job}")));
            }
            Ok(Value::Array(mine))
        }
        Some((_, Some(_))) => match instances.first() {
            Some(i) => Ok(instance_json(i)),
            None => Err(Response::error(404, "no such instance")),
        },
    }
}

/// POST …/start|stop|restart|reload: with the token, when the gateway
/// acts; the body may carry `{"env": ["KEY=VALUE", …]}`.
fn act(
    shared: &Shared,
    req: &Request,
    holder: Holder,
    peer: &str,
    job: &str,
    instance: Option<&str>,
    action: &str,
) -> Response {
    if !shared.acting {
        return Response::error(403, "this gateway is read-only");
    }
    if holder != Holder::Token {
        return Response::error(401, "actions need the token (Authorization: Bearer TOKEN)")
            .with("WWW-Authenticate", "Bearer");
    }
    let env = match body_env(&req.body) {
        Ok(e) => e,
        Err(e) => return Response::error(400, &e),
    };
    let shown = match instance {
        Some(i) => format!("{job} ({i})"),
        None => job.to_string(),
    };
    let (job, instance) = (job.to_string(), instance.map(str::to_string));
    let command = match action {
        "start" => Command::Start {
            job: job.clone(),
            instance,
            env,
            wait: true,
        },
        "stop" => Command::Stop {
            job: job.clone(),
            instance,
            env,
            wait: true,
        },
        "restart" => Command::Restart {
            job: job.clone(),
            instance,
            env,
            wait: true,
        },
        "reload" => Command::Reload {
            job: job.clone(),
            instance,
            env,
        },
        _ => return Response::error(404, "actions: start, stop, restart, reload"),
    };
    let result = ask(shared, command);
    let said = match &result {
        Ok(_) => "ok".to_string(),
        Err(r) => serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(crate::control::one_line))
            .unwrap_or_default(),
    };
    eprintln!(
        "upkeep web: {peer}: {action} {}: {said}",
        crate::control::one_line(&shown)
    );
    match result {
        Ok(Answer::Ok { instances, .. }) => {
            let v: Vec<Value> = instances.iter().map(instance_json).collect();
            Response::json(200, &Value::Array(v))
        }
        Ok(_) => Response::json(200, &json!([])),
        Err(r) => r,
    }
}

fn body_env(body: &[u8]) -> Result<Vec<String>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("body: {e}"))?;
    let Some(list) = v.get("env") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or("body: env is a list of KEY=VALUE strings")?;
    list.iter()
        .map(|e| {
            e.as_str()
                .filter(|s| crate::control::valid_assignment(s))
                .map(str::to_string)
                .ok_or_else(|| "body: env is a list of KEY=VALUE strings".to_string())
        })
        .collect()
}

/// What the page needs to know of the gateway: whether it acts, whether
/// the request's token was good, the daemon's version.
fn gateway(shared: &Shared, holder: Holder) -> Response {
    let daemon = match client::call(&shared.socket, Command::Version) {
        Ok(Answer::Version { version, .. }) => Some(version),
        _ => None,
    };
    Response::json(
        200,
        &json!({
            "acting": shared.acting,
            "token": holder == Holder::Token,
            "daemon": daemon,
            "version": crate::VERSION,
        }),
    )
}

/// 200 when the daemon answers.
fn healthz(shared: &Shared) -> Response {
    match client::call(&shared.socket, Command::Version) {
        Ok(Answer::Version { version, .. }) => {
            Response::json(200, &json!({ "ok": true, "daemon": version }))
        }
        Ok(_) => Response::error(503, "unexpected answer from the daemon"),
        Err(e) => Response::error(503, &e),
    }
}

/// 200 when every instance whose goal is start is running (and healthy,
/// if it has a probe) and no job is at rest after a failure; with `jobs`,
/// only those. The body says what is not ready.
fn readyz(shared: &Shared, only: &[String]) -> Response {
    let instances = match client::call(&shared.socket, Command::List { costs: false }) {
        Ok(Answer::Ok { instances, .. }) => instances,
        Ok(Answer::Error { message }) => return Response::error(503, &message),
        Ok(_) => return Response::error(503, "unexpected answer from the daemon"),
        Err(e) => return Response::error(503, &e),
    };
    for j in only {
        if !instances.iter().any(|i| &i.job == j) {
            return Response::error(404, &format!("Unknown job: {j}"));
        }
    }
    let not_ready: Vec<String> = instances
        .iter()
        .filter(|i| only.is_empty() || only.contains(&i.job))
        .filter_map(not_ready)
        .collect();
    let body = json!({ "ready": not_ready.is_empty(), "not_ready": not_ready });
    Response::json(if not_ready.is_empty() { 200 } else { 503 }, &body)
}

/// Why an instance keeps the service from being ready, if it does.
pub fn not_ready(i: &InstanceStatus) -> Option<String> {
    let name = if i.instance.is_empty() {
        i.job.clone()
    } else {
        format!("{} ({})", i.job, i.instance)
    };
    if let Some(f) = i.failure.as_ref().filter(|f| f.kind != "kill-timeout") {
        return Some(format!("{name}: failed: {}", f.message));
    }
    if i.goal != "start" {
        return None;
    }
    if i.state != "running" {
        return Some(format!("{name}: {}/{}", i.goal, i.state));
    }
    match &i.health {
        Some(h) if h.state != "healthy" => Some(format!("{name}: {}", h.describe())),
        _ => None,
    }
}

fn metrics(shared: &Shared) -> Response {
    let mut errors = false;
    let instances = match client::call(&shared.socket, Command::List { costs: true }) {
        Ok(Answer::Ok { instances, .. }) => instances,
        _ => {
            errors = true;
            Vec::new()
        }
    };
    let daemon = match client::call(&shared.socket, Command::Stats) {
        Ok(Answer::Stats(s)) => Some(metrics::DaemonFigures {
            jobs: s.jobs,
            events_emitted: s.events_emitted,
            clients: s.clients,
            fds: s.fds,
            rss_bytes: s.rss_bytes,
            started_at: s.started_at,
            version: s.version,
        }),
        _ => {
            errors = true;
            None
        }
    };
    Response::new(
        200,
        metrics::CONTENT_TYPE,
        metrics::render(&instances, daemon.as_ref(), errors),
    )
}

/// `…/log?lines=N&follow=1`: with the token only; the daemon opens the
/// file with the gateway's authority and passes the descriptor.
fn log(shared: &Shared, req: &Request, holder: Holder, job: &str, instance: Option<&str>) -> Reply {
    if holder != Holder::Token {
        return Response::error(
            401,
            "log lines need the token (Authorization: Bearer TOKEN)",
        )
        .with("WWW-Authenticate", "Bearer")
        .into();
    }
    let lines = match req.query_value("lines").map(|v| v.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if n <= super::logs::MAX_LINES => n,
        Some(_) => {
            return Response::error(
                400,
                &format!("lines: a number up to {}", super::logs::MAX_LINES),
            )
            .into()
        }
    };
    let follow = req.query_value("follow").is_some_and(|v| v == "1");
    match super::logs::open(&shared.socket, job, instance, lines, follow) {
        Ok(f) => Reply::Log(f),
        Err(r) => r.into(),
    }
}

/// `/api/v1/events`: server-sent events. First the jobs as they are
/// (`event: snapshot`, once the gateway's subscription is live), then each
/// monitor entry as it comes (`data:`), a new snapshot whenever the
/// gateway had to subscribe again, and a comment
/// every 15 s so that a reader that went away is noticed. Without the
/// token, events carry no environment.
fn events(shared: &Arc<Shared>, mut conn: Conn, privileged: bool) {
    let Some((id, rx, live)) = shared.hub.join() else {
        let _ = Response::error(503, "too many event-stream readers").write_to(&mut conn);
        return;
    };
    let head = Response::new(200, "text/event-stream", Vec::new()).head(None);
    let mut ok = conn.write_all(&head).is_ok() && (!live || snapshot(shared, &mut conn));
    while ok {
        ok = match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(Item::Entry(v)) => {
                let mut v = (*v).clone();
                if !privileged {
                    if let Some(o) = v.as_object_mut() {
                        o.remove("env");
                    }
                }
                let line = serde_json::to_string(&v).unwrap_or_default();
                conn.write_all(format!("data: {line}\n\n").as_bytes())
                    .is_ok()
            }
            Ok(Item::Subscribed) => snapshot(shared, &mut conn),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                conn.write_all(b": keep-alive\n\n").is_ok()
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => false,
        };
    }
    shared.hub.leave(id);
}

/// The jobs as they are now, as an `event: snapshot` (or, when the daemon
/// cannot say, an `event: error`).
fn snapshot(shared: &Shared, conn: &mut Conn) -> bool {
    let text = match jobs_value(shared, None, true) {
        Ok(v) => format!("event: snapshot\ndata: {v}\n\n"),
        Err(r) => {
            let e = String::from_utf8_lossy(&r.body).replace('\n', " ");
            format!("event: error\ndata: {e}\n\n")
        }
    };
    conn.write_all(text.as_bytes()).is_ok()
}
