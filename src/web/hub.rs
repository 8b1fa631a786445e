//! One monitor subscription for every event-stream reader. A thread holds
//! the daemon's stream while anyone reads it and hands each entry to every
//! reader's bounded queue; a reader whose queue is full is dropped (as the
//! daemon drops a slow subscriber). Each time the subscription is in place
//! (at first, and again after the daemon dropped the gateway or restarted)
//! every reader is told to send a fresh snapshot, so that a snapshot is
//! only ever followed by what happened after it: a reader that joins while
//! the subscription is live sends its snapshot at once, one that joins
//! before waits for the word. With no reader left, the subscription is
//! closed, so the daemon makes no news for nobody.

use std::io::BufRead;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::control::{client, Command};

/// Event-stream readers served at once.
pub const MAX_READERS: usize = 32;
/// Entries queued for one reader before it is dropped.
pub const QUEUE: usize = 4096;

/// What a reader is handed.
#[derive(Debug, Clone)]
pub enum Item {
    Entry(Arc<Value>),
    /// The subscription is in place (again): what happened before it is
    /// not in the queue, so the reader sends a fresh snapshot.
    Subscribed,
}

#[derive(Default)]
struct Inner {
    readers: Vec<(u64, SyncSender<Item>)>,
    next_id: u64,
    thread: bool,
    /// The daemon stream in use, to close it when the last reader goes.
    stream: Option<UnixStream>,
}

pub struct Hub {
    socket: PathBuf,
    inner: Arc<(Mutex<Inner>, Condvar)>,
}

impl Hub {
    pub fn new(socket: PathBuf) -> Hub {
        Hub {
            socket,
            inner: Arc::new((Mutex::new(Inner::default()), Condvar::new())),
        }
    }

    /// A new reader: its id, its queue, and whether the subscription is
    /// live (so that the reader may send its snapshot at once; otherwise
    /// [`Item::Subscribed`] comes first); `None` when [`MAX_READERS`] read
    /// already.
    pub fn join(&self) -> Option<(u64, Receiver<Item>, bool)> {
        let (lock, cv) = &*self.inner;
        let mut inner = lock.lock().ok()?;
        if inner.readers.len() >= MAX_READERS {
            return None;
        }
        let (tx, rx) = sync_channel(QUEUE);
        let id = inner.next_id;
        inner.next_id += 1;
        inner.readers.push((id, tx));
        if !inner.thread {
            inner.thread = true;
            let shared = self.inner.clone();
            let socket = self.socket.clone();
            let _ = std::thread::Builder::new()
                .name("hub".into())
                .spawn(move || run(&socket, &shared));
        }
        cv.notify_all();
        Some((id, rx, inner.stream.is_some()))
    }

    /// A reader left.
    pub fn leave(&self, id: u64) {
        let (lock, _) = &*self.inner;
        if let Ok(mut inner) = lock.lock() {
            inner.readers.retain(|(i, _)| *i != id);
            if inner.readers.is_empty() {
                if let Some(s) = inner.stream.take() {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
            }
        }
    }

    pub fn readers(&self) -> usize {
        self.inner.0.lock().map(|i| i.readers.len()).unwrap_or(0)
    }
}

fn run(socket: &std::path::Path, shared: &(Mutex<Inner>, Condvar)) {
    let (lock, cv) = shared;
    let mut backoff = Duration::from_millis(100);
    loop {
        // Wait for a reader.
        {
            let Ok(mut inner) = lock.lock() else { return };
            while inner.readers.is_empty() {
                inner = match cv.wait(inner) {
                    Ok(i) => i,
                    Err(_) => return,
                };
            }
        }
        let mut reader = match client::subscribe(socket, Command::Monitor { jobs: Vec::new() }) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("upkeep web: monitor: {e}; trying again in {backoff:?}");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        {
            let Ok(mut inner) = lock.lock() else { return };
            inner.stream = reader.get_ref().try_clone().ok();
            if inner.readers.is_empty() {
                continue;
            }
            broadcast(&mut inner, Item::Subscribed);
        }
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let Ok(v) = serde_json::from_slice::<Value>(&line) else {
                break;
            };
            if v["type"] == "missed" {
                eprintln!(
                    "upkeep web: the daemon dropped the monitor subscription ({} entries missed); subscribing again",
                    v["count"]
                );
                break;
            }
            let Ok(mut inner) = lock.lock() else { return };
            broadcast(&mut inner, Item::Entry(Arc::new(v)));
        }
        if let Ok(mut inner) = lock.lock() {
            inner.stream = None;
        }
    }
}

/// Hands `item` to every reader; one whose queue is full is dropped.
fn broadcast(inner: &mut Inner, item: Item) {
    inner
        .readers
        .retain(|(_, tx)| match tx.try_send(item.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        });
}
