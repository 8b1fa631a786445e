// upkeep's dashboard. Every job and instance name, and every log line, is
// put in the page as text (textContent), never as markup. The token lives
// in this page's memory only: sent in an Authorization header by fetch(),
// never in a URL, never in a cookie. Updates come from the gateway's event
// stream, read with fetch() (EventSource cannot send the header).
"use strict";

let token = null;
let acting = false;
let jobs = [];
let stream = null;
let refreshTimer = null;
let logReader = null;

const $ = (id) => document.getElementById(id);

function headers() {
  return token ? { Authorization: "Bearer " + token } : {};
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function duration(secs) {
  if (secs === null || secs === undefined) return "";
  const d = Math.floor(secs / 86400), h = Math.floor(secs % 86400 / 3600);
  const m = Math.floor(secs % 3600 / 60), s = secs % 60;
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  if (m) return m + "m " + s + "s";
  return s + "s";
}

function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function mainPid(j) {
  const p = (j.processes || []).find((p) => p.process === "main");
  return p ? p.pid : "";
}

function why(j) {
  if (j.failure) return "failed: " + j.failure.message;
  if (j.last_exit) {
    const e = j.last_exit;
    const how = e.status !== null ? "status " + e.status : e.signal ? "signal " + e.signal : "unknown";
    return "last exit: " + (e.process === "main" ? "" : e.process + " ") + how;
  }
  if (j.file_errors && j.file_errors.length) return "job file has errors: " + j.file_errors[0];
  return "";
}

function health(j) {
  if (!j.health) return "";
  const h = j.health;
  if (h.state === "unhealthy") return "unhealthy (" + h.failures + ": " + (h.last_error || "") + ")";
  return h.state;
}

function render() {
  const body = $("jobs").querySelector("tbody");
  const rows = [];
  for (const j of jobs) {
    const tr = el("tr");
    tr.dataset.job = j.job;
    tr.dataset.instance = j.instance || "";
    const name = el("td");
    const link = el("button", j.job, "job-link");
    link.type = "button";
    link.title = "show the log";
    link.addEventListener("click", () => showLog(j.job, j.instance || ""));
    name.appendChild(link);
    tr.appendChild(name);
    tr.appendChild(el("td", j.instance || "", "instance"));
    const state = j.broken ? "file has errors" : j.goal + "/" + j.state;
    tr.appendChild(el("td", state, j.failure ? "state-failed" : "state-" + j.state));
    tr.appendChild(el("td", mainPid(j), "pid num"));
    tr.appendChild(el("td", j.costs ? duration(j.costs.uptime_seconds) : "", "num"));
    tr.appendChild(el("td", j.respawns === undefined ? "" : j.respawns, "num"));
    const h = health(j);
    tr.appendChild(el("td", h, h.startsWith("unhealthy") ? "unhealthy" : ""));
    tr.appendChild(el("td", why(j), "why"));
    tr.appendChild(el("td", j.costs ? j.costs.cpu_seconds.toFixed(2) : "", "num"));
    const live = j.costs && j.costs.processes > 0;
    tr.appendChild(el("td", live ? bytes(j.costs.pss_bytes ?? j.costs.rss_bytes) : "", "num"));
    const actions = el("td", null, "actions");
    if (acting && token && !j.broken) {
      for (const a of ["start", "stop", "restart", "reload"]) {
        const b = el("button", a, "act-" + a);
        b.type = "button";
        b.addEventListener("click", () => act(j.job, j.instance || "", a));
        actions.appendChild(b);
      }
    }
    tr.appendChild(actions);
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  $("empty").hidden = jobs.length > 0;
  for (const c of document.querySelectorAll(".actions-col")) c.hidden = !(acting && token);
  for (const td of document.querySelectorAll("td.actions")) td.hidden = !(acting && token);
}

function showError(text) {
  $("error").textContent = text || "";
  $("error").hidden = !text;
}

async function refresh() {
  try {
    const r = await fetch("/api/v1/jobs?costs=1", { headers: headers() });
    if (r.ok) { jobs = await r.json(); render(); showError(""); }
    else showError("jobs: " + (await r.json()).error);
  } catch (e) { showError("jobs: " + e); }
}

function refreshSoon() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, 300);
}

// One entry of the stream: a state change is applied at once (state and
// pid), and the whole table is fetched again shortly (costs, failures).
function apply(entry) {
  if (entry.type === "state") {
    const j = jobs.find((j) => j.job === entry.job && (j.instance || "") === entry.instance);
    if (j) {
      j.goal = entry.goal;
      j.state = entry.to;
      j.processes = entry.pid ? [{ process: "main", pid: entry.pid }] : [];
      render();
    }
  }
  if (entry.type !== "event") refreshSoon();
}

async function follow() {
  if (stream) stream.abort();
  const ctl = new AbortController();
  stream = ctl;
  for (;;) {
    try {
      const r = await fetch("/api/v1/events", { headers: headers(), signal: ctl.signal });
      if (!r.ok) throw new Error("events: HTTP " + r.status);
      $("live").textContent = "live";
      $("live").className = "on";
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let at;
        while ((at = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          let kind = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) kind = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (!data) continue;
          if (kind === "snapshot") { jobs = JSON.parse(data); render(); }
          else if (kind === "message") apply(JSON.parse(data));
          else if (kind === "error") showError(data);
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
      showError(String(e));
    }
    $("live").textContent = "reconnecting…";
    $("live").className = "off";
    await new Promise((res) => setTimeout(res, 2000));
    if (ctl.signal.aborted) return;
  }
}

function path(job, instance) {
  let p = "/api/v1/jobs/" + encodeURIComponent(job);
  if (instance) p += "/" + encodeURIComponent(instance);
  return p;
}

async function act(job, instance, action) {
  const r = await fetch(path(job, instance) + "/" + action, { method: "POST", headers: headers() });
  if (!r.ok) showError(action + " " + job + ": " + (await r.json()).error);
  refreshSoon();
}

async function showLog(job, instance) {
  if (logReader) { logReader.abort(); logReader = null; }
  $("log").hidden = false;
  $("log-name").textContent = instance ? job + " (" + instance + ")" : job;
  const text = $("log-text");
  if (!token) { text.textContent = "The log needs the token."; return; }
  text.textContent = "";
  const ctl = new AbortController();
  logReader = ctl;
  const logPath = instance ? path(job, instance) + "/log" : path(job, "") + "/log";
  try {
    const r = await fetch(logPath + "?lines=200&follow=1", { headers: headers(), signal: ctl.signal });
    if (!r.ok) { text.textContent = (await r.json()).error; return; }
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text.appendChild(document.createTextNode(dec.decode(value, { stream: true })));
      text.scrollTop = text.scrollHeight;
    }
  } catch (e) {
    if (!ctl.signal.aborted) text.appendChild(document.createTextNode("\n" + e));
  }
}

async function gateway() {
  const r = await fetch("/api/v1/gateway", { headers: headers() });
  const g = await r.json();
  if (r.status === 401) {
    token = null;
    $("auth-state").textContent = "wrong token";
  } else {
    $("auth-state").textContent = token ? "token accepted" : "";
  }
  acting = !!g.acting;
  $("daemon").textContent = g.daemon ? "daemon " + g.daemon : "";
  return r.ok;
}

$("auth").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  token = $("token").value.trim() || null;
  $("token").value = "";
  await gateway();
  render();
  follow();
});

$("log-close").addEventListener("click", () => {
  if (logReader) { logReader.abort(); logReader = null; }
  $("log").hidden = true;
});

gateway().then(() => follow());
