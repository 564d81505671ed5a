//! The agent's journal: every member and key event, numbered, with a bounded history.
//!
//! It feeds `GET /v1/events` (Server-Sent Events whose `id:` a client resumes from with
//! `Last-Event-ID`) and blocking reads (`GET /v1/kv/{key}?index=N`). Ids start at 1 and grow by one
//! per event. The history keeps the newest `capacity` events: a client that asks for events older
//! than that is told so ([`Since::gap`]) and must read the state again.
//!
//! A `reset` event is journaled when the node itself reported that events were dropped before they
//! reached the agent ([`tidings::node::Event::Lagged`]): whoever mirrors the state re-reads it then.

use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::watch;

/// One numbered event.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Its id: 1 for the first, one more for each next.
    pub id: u64,
    /// `member`, `kv` or `reset`.
    pub kind: &'static str,
    /// Its JSON.
    pub data: Value,
    /// For a `kv` event, the key.
    pub key: Option<Vec<u8>>,
}

/// Events after an id, from [`Journal::since`].
#[derive(Debug, Default)]
pub struct Since {
    /// The events, oldest first.
    pub entries: Vec<Entry>,
    /// Some events after the id asked for are no longer in the history.
    pub gap: bool,
}

/// The numbered events of one agent.
#[derive(Debug)]
pub struct Journal {
    history: Mutex<VecDeque<Entry>>,
    capacity: usize,
    latest: watch::Sender<u64>,
}

impl Journal {
    /// An empty journal that keeps the newest `capacity` events (at least one).
    pub fn new(capacity: usize) -> Self {
        Journal {
            history: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            latest: watch::Sender::new(0),
        }
    }

    /// Appends an event and wakes every waiting reader. Returns its id.
    pub fn push(&self, kind: &'static str, data: Value, key: Option<Vec<u8>>) -> u64 {
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let id = self.latest().saturating_add(1);
        if h.len() >= self.capacity {
            h.pop_front();
        }
        h.push_back(Entry {
            id,
            kind,
            data,
            key,
        });
        self.latest.send_replace(id);
        id
    }

    /// The id of the newest event (0 before any).
    pub fn latest(&self) -> u64 {
        *self.latest.borrow()
    }

    /// A receiver that changes whenever an event is appended.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// Up to `max` events with ids above `after`, oldest first.
    pub fn since(&self, after: u64, max: usize) -> Since {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = h.front().map_or(self.latest().saturating_add(1), |e| e.id);
        Since {
            gap: after.saturating_add(1) < oldest && after < self.latest(),
            entries: h
                .iter()
                .filter(|e| e.id > after)
                .take(max)
                .cloned()
                .collect(),
        }
    }

    /// Whether `key` changed after event `after`: `None` when the history no longer reaches back
    /// that far (the caller cannot tell, and should answer).
    pub fn key_changed_after(&self, key: &[u8], after: u64) -> Option<bool> {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = h.front().map_or(u64::MAX, |e| e.id);
        if after.saturating_add(1) < oldest && after < self.latest() {
            return None;
        }
        Some(
            h.iter()
                .rev()
                .take_while(|e| e.id > after)
                .any(|e| e.key.as_deref() == Some(key)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_grow_by_one_and_the_history_is_bounded() {
        let j = Journal::new(3);
        for i in 0..5 {
            assert_eq!(j.push("kv", json!(i), Some(vec![i as u8])), i + 1);
        }
        assert_eq!(j.latest(), 5);
        let s = j.since(3, 10);
        assert!(!s.gap);
        assert_eq!(s.entries.iter().map(|e| e.id).collect::<Vec<_>>(), [4, 5]);
        // Events 2 and 3... only 3..=5 are kept: asking from 1 leaves a gap.
        let s = j.since(1, 10);
        assert!(s.gap);
        assert_eq!(
            s.entries.iter().map(|e| e.id).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert!(!j.since(2, 10).gap);
        assert!(!j.since(5, 10).gap && j.since(5, 10).entries.is_empty());
    }

    #[test]
    fn a_key_changed_after_an_index_only_if_its_event_is_newer() {
        let j = Journal::new(4);
        j.push("kv", json!(1), Some(b"a".to_vec()));
        j.push("member", json!(2), None);
        j.push("kv", json!(3), Some(b"b".to_vec()));
        assert_eq!(j.key_changed_after(b"a", 0), Some(true));
        assert_eq!(j.key_changed_after(b"a", 1), Some(false));
        assert_eq!(j.key_changed_after(b"b", 2), Some(true));
        for _ in 0..4 {
            j.push("member", json!(0), None);
        }
        assert_eq!(j.key_changed_after(b"a", 0), None);
        assert_eq!(j.key_changed_after(b"a", 6), Some(false));
    }

    #[tokio::test]
    async fn readers_wake_on_every_append() {
        let j = std::sync::Arc::new(Journal::new(8));
        let mut w = j.watch();
        let j2 = j.clone();
        let t = tokio::spawn(async move {
            w.changed().await.unwrap();
            *w.borrow()
        });
        tokio::task::yield_now().await;
        j2.push("kv", json!(1), None);
        assert_eq!(t.await.unwrap(), 1);
    }
}
