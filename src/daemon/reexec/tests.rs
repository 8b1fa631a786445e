use super::*;
use crate::conf::ProcessType;
use crate::job::{Goal, State, Waiting};

/// A state the first release with re-exec wrote (a daemon with a job
/// running, one crash-looping in its back-off, one in its kill timeout,
/// one waiting for readiness, one in pre-start with a client waiting for
/// it, and `c` half-way through `started a and started b`): every later
/// release must still read it.
const FORMAT_1: &str = include_str!("../../../tests/fixtures/handover-1.json");

/// The same daemon as written by the release that brought format 2: the
/// lock is the socket dir, a private listener, and byte buffers after the
/// document (a half-sent request and an unread answer of a client, a half
/// line of a job's output).
const FORMAT_2: &[u8] = include_bytes!("../../../tests/fixtures/handover-2.json");

/// The job table and the event bus of a state, rebuilt without any
/// descriptor (pure).
fn rebuild(h: Handover) -> Result<(jobs::JobTable, events::EventBus), String> {
    let stop_held: std::collections::HashMap<Key, Option<Vec<Option<u64>>>> = h
        .jobs
        .instances
        .iter()
        .map(|s| (s.key(), s.stop_matcher.clone()))
        .collect();
    let mut table = jobs::JobTable::default();
    table.restore(h.jobs)?;
    let mut bus = events::EventBus::default();
    let held = |k: &Key| stop_held.get(k).cloned().flatten();
    bus.restore(h.bus, &table.classes, &table.instances, &held)?;
    Ok((table, bus))
}

/// A field of the fixture's JSON, as a span.
fn span(v: &serde_json::Value) -> Option<Span> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn both_formats_are_read_whole() {
    for (format, data) in [(1, FORMAT_1.as_bytes()), (2, FORMAT_2)] {
        let (h, blob) = parse_state(data).unwrap();
        assert_eq!(h.format, format);
        if format == 2 {
            assert_eq!(h.priv_listener_fd, Some(104));
            let json = serde_json::to_value(&h).unwrap();
            let c = json["clients"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["token"] == 13)
                .unwrap()
                .clone();
            assert_eq!(
                blob.get(span(&c["inbuf_at"]), Vec::new()).unwrap(),
                br#"{"v":1,"cmd":"status","jo"#
            );
            assert_eq!(
                blob.get(span(&c["outbuf_at"]), Vec::new()).unwrap(),
                b"{\"result\":\"ok\",\"instances\":[]}\n"
            );
            assert_eq!(
                blob.get(span(&json["readers"][0]["partial_at"]), Vec::new())
                    .unwrap(),
                b"half a line without its end"
            );
            assert!(blob.get(Some((80, 10)), Vec::new()).is_err());
        }
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["waiters"].as_array().unwrap().len(), 1);
        assert_eq!(json["answer"].as_array().unwrap().len(), 1);
        check_format_1_daemon(h);
    }
    // A format this release does not read is refused, by number.
    let mut v: serde_json::Value = serde_json::from_str(FORMAT_1).unwrap();
    v["format"] = 3.into();
    let e = parse_state(v.to_string().as_bytes()).err().unwrap();
    assert!(e.contains("state format 3"), "{e}");
}

fn check_format_1_daemon(h: Handover) {
    let (table, bus) = rebuild(h).unwrap();
    assert_eq!(table.classes.len(), 7);
    let c = bus.start_matcher("c").unwrap();
    assert!(c.is_partial());
    assert_eq!(c.pending().as_deref(), Some("started b"));
    let get = |j: &str| &table.instances[&(j.to_string(), String::new())];
    assert_eq!(
        (get("stubborn").state, get("stubborn").waiting),
        (State::Killed, Waiting::Kill)
    );
    assert_eq!(
        (get("crashy").state, get("crashy").waiting),
        (State::PostStop, Waiting::Delay)
    );
    assert_eq!(get("crashy").goal, Goal::Start);
    assert_eq!(get("ready").waiting, Waiting::Ready);
    assert_eq!(get("slow").waiting, Waiting::Exit(ProcessType::PreStart));
    assert_eq!(get("stubborn").class.kill_timeout_secs, 20);
}

#[test]
fn an_unknown_state_or_a_misfit_matcher_is_refused_and_a_missing_one_made() {
    let mut v: serde_json::Value = serde_json::from_str(FORMAT_1).unwrap();
    v["instances"][0]["state"] = "levitating".into();
    let h: Handover = serde_json::from_value(v).unwrap();
    assert!(rebuild(h).err().unwrap().contains("levitating"));
    let mut v: serde_json::Value = serde_json::from_str(FORMAT_1).unwrap();
    v["start_matchers"][0][1] = serde_json::json!([null]);
    let h: Handover = serde_json::from_value(v).unwrap();
    assert!(rebuild(h).err().unwrap().contains("start on"));
    // A state that names no matcher for a job still gives it a fresh one.
    let mut v: serde_json::Value = serde_json::from_str(FORMAT_1).unwrap();
    v["start_matchers"] = serde_json::json!([]);
    let h: Handover = serde_json::from_value(v).unwrap();
    let (_, bus) = rebuild(h).unwrap();
    assert!(!bus.start_matcher("c").unwrap().is_partial());
}
