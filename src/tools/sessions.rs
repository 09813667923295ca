//! The table of running tool sessions (docs/protocol.md "Unified-exec tools"): executor-owned integer
//! ids from 1, never reused, at most 64 running at once.

use crate::process::record::Record;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Sessions that may be running at once.
pub const MAX_RUNNING: usize = 64;

/// One running session: a silent process record `tool-<id>`.
pub struct Session {
    pub id: u64,
    pub process_id: String,
    pub rec: Arc<Record>,
    /// One call at a time per session. `true` once a call has reported the exit:
    /// the session is gone, and a call that was waiting for its turn finds that out.
    pub turn: tokio::sync::Mutex<bool>,
}

#[derive(Default)]
struct Table {
    last_id: u64,
    /// Slots taken by `exec_command` calls that are still starting their process.
    reserved: usize,
    live: HashMap<u64, Arc<Session>>,
}

#[derive(Default)]
pub struct Sessions {
    table: Mutex<Table>,
}

/// A reserved slot under the session limit; released on drop unless used.
pub struct Slot<'a> {
    sessions: &'a Sessions,
    used: bool,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take a slot for a new session; `None` when 64 are running (or starting).
    pub fn reserve(&self) -> Option<Slot<'_>> {
        let mut t = self.lock();
        if t.reserved + t.live.len() >= MAX_RUNNING {
            return None;
        }
        t.reserved += 1;
        Some(Slot {
            sessions: self,
            used: false,
        })
    }

    /// The next session id. Ids are never handed out twice, even when the start
    /// that took one fails or skips it.
    pub fn next_id(&self) -> u64 {
        let mut t = self.lock();
        t.last_id += 1;
        t.last_id
    }

    pub fn get(&self, id: u64) -> Option<Arc<Session>> {
        self.lock().live.get(&id).cloned()
    }

    /// Forget a session whose exit was reported.
    pub fn remove(&self, id: u64) {
        self.lock().live.remove(&id);
    }

    /// Running sessions, slots being started included.
    #[cfg(test)]
    pub fn running(&self) -> usize {
        let t = self.lock();
        t.reserved + t.live.len()
    }
}

impl Slot<'_> {
    /// Turn the slot into a live session.
    pub fn fill(mut self, s: Arc<Session>) {
        let mut t = self.sessions.lock();
        t.reserved -= 1;
        t.live.insert(s.id, s);
        self.used = true;
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if !self.used {
            self.sessions.lock().reserved -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_and_slots_are_bounded() {
        let s = Sessions::default();
        assert_eq!(s.next_id(), 1);
        assert_eq!(s.next_id(), 2);
        let slots: Vec<_> = (0..MAX_RUNNING).map(|_| s.reserve().unwrap()).collect();
        assert!(s.reserve().is_none());
        assert_eq!(s.running(), MAX_RUNNING);
        drop(slots);
        assert_eq!(s.running(), 0);
        assert!(s.reserve().is_some());
        assert_eq!(s.next_id(), 3);
    }
}
