//! Who may open one more connection: decided at accept, from the peer's credentials
//! (SO_PEERCRED), before a thread is spawned for it. Three limits, checked in this order:
//!
//! 1. `max_connections` for everyone;
//! 2. the last `writer_reserved_connections` of them only for peers that may write;
//! 3. `max_connections_per_uid` for each uid that may not write.
//!
//! Writers are limited by `max_connections` alone: they are trusted with the cache already
//! (they may clear it), and one writer application with many processes is the common
//! deployment. So a read-only uid can neither fill the daemon for another uid nor take the
//! connections a writer needs.

use crate::config::{Config, Connections};
use crate::peer::Peer;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The open connections, in total and per uid that may not write.
#[derive(Default)]
pub struct Admission {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    open: usize,
    /// Connections held by each uid that may not write (no entry: none).
    readers: HashMap<u32, usize>,
}

/// One admitted connection: gives its place back when dropped.
pub struct Ticket {
    admission: Arc<Admission>,
    uid: Option<u32>,
}

/// The limits [`Admission::admit`] checks, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub connections: Connections,
}

impl Limits {
    pub fn of(cfg: &Config) -> Limits {
        Limits {
            max_connections: cfg.max_connections,
            connections: cfg.connections,
        }
    }
}

impl Admission {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change is one step under the lock: a panic elsewhere cannot leave it half done.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().open
    }

    /// Admits one more connection from `peer`, or says which limit refuses it, with its
    /// value and the setting that raises it (the text of the ERROR the peer gets).
    pub fn admit(self: &Arc<Self>, peer: &Peer, limits: Limits) -> Result<Ticket, String> {
        let max = limits.max_connections;
        let reserved = limits.connections.writer_reserved;
        let per_uid = limits.connections.per_uid;
        let mut state = self.lock();
        if state.open >= max {
            return Err(format!(
                "cachekitd has {max} connections open, its max_connections; raise it \
                 (--max-connections) or close idle clients"
            ));
        }
        if !peer.may_write {
            if state.open >= max - reserved {
                return Err(format!(
                    "cachekitd has {} of its {max} connections (max_connections) open, and keeps \
                     the last {reserved} (writer_reserved_connections) for peers that may write; \
                     uid {} may not: raise --max-connections, lower \
                     --writer-reserved-connections, or close idle clients",
                    state.open, peer.uid
                ));
            }
            let held = state.readers.get(&peer.uid).copied().unwrap_or(0);
            if held >= per_uid {
                return Err(format!(
                    "uid {} already holds {held} connections, max_connections_per_uid = {per_uid} \
                     for uids that may not write; raise it with --max-connections-per-uid, or \
                     close idle clients of this uid",
                    peer.uid
                ));
            }
            state.readers.insert(peer.uid, held + 1);
        }
        state.open += 1;
        Ok(Ticket {
            admission: self.clone(),
            uid: (!peer.may_write).then_some(peer.uid),
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.admission.lock();
        state.open -= 1;
        if let Some(uid) = self.uid {
            if let Some(held) = state.readers.get_mut(&uid) {
                *held -= 1;
                if *held == 0 {
                    state.readers.remove(&uid);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(max: usize, per_uid: usize, reserved: usize) -> Limits {
        Limits {
            max_connections: max,
            connections: Connections {
                per_uid,
                writer_reserved: reserved,
                idle_timeout: Some(Duration::from_secs(60)),
            },
        }
    }

    fn peer(uid: u32, may_write: bool) -> Peer {
        Peer {
            conn: 0,
            pid: 1,
            uid,
            gid: uid,
            may_write,
        }
    }

    #[test]
    fn a_reader_uid_stops_at_its_cap_and_others_still_get_in() {
        let a = Arc::new(Admission::default());
        let l = limits(10, 3, 2);
        let held: Vec<_> = (0..3)
            .map(|_| a.admit(&peer(7, false), l).unwrap())
            .collect();
        let e = a.admit(&peer(7, false), l).err().unwrap();
        assert!(
            e.contains("max_connections_per_uid = 3") && e.contains("uid 7"),
            "{e}"
        );
        let other = a.admit(&peer(8, false), l).unwrap();
        let writer = a.admit(&peer(0, true), l).unwrap();
        assert_eq!(a.open(), 5);
        drop(held);
        assert_eq!(a.open(), 2);
        let again = a.admit(&peer(7, false), l).unwrap();
        drop((other, writer, again));
        assert_eq!(a.open(), 0);
        assert!(
            a.lock().readers.is_empty(),
            "no entry is left for a uid with none"
        );
    }

    #[test]
    fn the_reserved_connections_are_for_writers_only() {
        let a = Arc::new(Admission::default());
        let l = limits(4, 4, 2);
        let readers: Vec<_> = (0..2)
            .map(|i| a.admit(&peer(i, false), l).unwrap())
            .collect();
        let e = a.admit(&peer(9, false), l).err().unwrap();
        assert!(
            e.contains("writer_reserved_connections") && e.contains("2 of its 4"),
            "{e}"
        );
        let writers: Vec<_> = (0..2)
            .map(|_| a.admit(&peer(0, true), l).unwrap())
            .collect();
        let e = a.admit(&peer(0, true), l).err().unwrap();
        assert!(e.contains("4 connections open, its max_connections"), "{e}");
        drop((readers, writers));
        assert_eq!(a.open(), 0);
    }

    #[test]
    fn writers_have_no_per_uid_cap() {
        let a = Arc::new(Admission::default());
        let l = limits(5, 1, 1);
        let all: Vec<_> = (0..5)
            .map(|_| a.admit(&peer(0, true), l).unwrap())
            .collect();
        assert_eq!(all.len(), 5);
    }
}
