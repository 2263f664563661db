//! `set_many` and `delete_many`: many keys in one SET_MANY or DELETE_MANY request each (one
//! round trip, one turn of the daemon's writer), with a result per item.

use cachekit_proto::{
    set_many_item_len, DeleteMany, ItemResult, Reply, Request, Set, SetMany, HEADER_LEN,
    MAX_BATCH_ITEMS,
};

use crate::client::{unexpected, Client};
use crate::error::Error;
use crate::limits::check_key;
use crate::options::{duration_ms, set_ttl_ms, SetOptions};

/// What each item of a batch came to: `None` until it is known.
type Slots<T> = Vec<Option<Result<T, Error>>>;

impl Client {
    /// Stores each `(key, value)` of `items` as [`set`](Client::set) would, with the same
    /// `options`, in one request: one round trip, and the daemon applies every item within
    /// one turn of its writer. A batch of more than [`MAX_BATCH_ITEMS`] (1000) items, or one
    /// whose frame would pass the daemon's `max_frame_bytes`, is sent as several requests in
    /// order, each applied within one writer turn of its own.
    ///
    /// Returns one result per item, in order: an item over a limit is refused on its own
    /// (checked here, before sending), and so is one the daemon or Redis refuses, without
    /// losing the others. When the daemon is gone, each item takes the path of a single
    /// [`set`](Client::set) (the failed-write journal, or Redis directly). A daemon from before
    /// batch writes (its HELLO_OK says so) is sent one SET per item.
    ///
    /// # Errors
    /// For the batch as a whole: a bad tag list ([`Error::InvalidArgument`] /
    /// [`Error::TooLarge`]), [`Error::Unavailable`] when the daemon cannot be reached and no
    /// other path took the items, or a protocol error. The items of requests sent before the
    /// error are stored; sending the whole batch again is safe.
    pub fn set_many<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        items: &[(K, V)],
        options: &SetOptions,
    ) -> Result<Vec<Result<(), Error>>, Error> {
        let empty = SetMany {
            namespace: self.namespace.to_string(),
            ttl_ms: set_ttl_ms(options)?,
            grace_ms: duration_ms(options.grace),
            tags: options.tags.clone(),
            items: Vec::new(),
        };
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let limits = self.shared.limits();
        let base = frame_len(&Request::SetMany(empty.clone()));
        let mut slots: Slots<()> = (0..items.len()).map(|_| None).collect();
        let mut chunk = empty.clone();
        let mut chunk_index = Vec::new();
        let mut bytes = base;
        let mut checked = false;
        for (i, (key, value)) in items.iter().enumerate() {
            let set = match self.set_body(key.as_ref(), value.as_ref(), options) {
                Ok(set) => set,
                Err(e) => {
                    slots[i] = Some(Err(e));
                    continue;
                }
            };
            if !checked {
                // The namespace and the tags are the same for every item: check them once.
                Request::SetMany(empty.clone())
                    .validate(&self.shared.limits())
                    .map_err(Error::from_validation)?;
                checked = true;
            }
            let add = set_many_item_len(set.key.len(), set.value.len());
            if base + add > limits.max_frame_bytes as u64 {
                // Every field at its limit: SET_MANY's item count makes the frame 2 bytes
                // longer than the largest SET, which the daemon's frame limit is sized for.
                // The items before it go first, so a key earlier in the batch ends with the
                // later value, as in any order of single sets.
                if !chunk.items.is_empty() {
                    let full = std::mem::replace(&mut chunk, empty.clone());
                    self.send_set_many(full, &chunk_index, &mut slots)?;
                    chunk_index.clear();
                    bytes = base;
                }
                slots[i] = Some(self.write(&Request::Set(set)).and_then(|r| match r {
                    Reply::Ok => Ok(()),
                    other => Err(unexpected("SET", &other)),
                }));
                continue;
            }
            if !fits(chunk_index.len(), bytes + add, limits.max_frame_bytes) {
                let full = std::mem::replace(&mut chunk, empty.clone());
                self.send_set_many(full, &chunk_index, &mut slots)?;
                chunk_index.clear();
                bytes = base;
            }
            bytes += add;
            chunk.items.push((set.key, set.value));
            chunk_index.push(i);
        }
        if !chunk.items.is_empty() {
            self.send_set_many(chunk, &chunk_index, &mut slots)?;
        }
        Ok(finish(slots))
    }

    /// Removes each of `keys` as [`delete`](Client::delete) would, in one request (split as
    /// [`set_many`](Client::set_many) splits). Returns, per key in order, whether it was
    /// present, or why it could not be removed.
    ///
    /// # Errors
    /// As [`set_many`](Client::set_many).
    pub fn delete_many<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
    ) -> Result<Vec<Result<bool, Error>>, Error> {
        let empty = DeleteMany {
            namespace: self.namespace.to_string(),
            keys: Vec::new(),
        };
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let limits = self.shared.limits();
        let base = frame_len(&Request::DeleteMany(empty.clone()));
        let mut slots: Slots<bool> = (0..keys.len()).map(|_| None).collect();
        let mut chunk = empty.clone();
        let mut chunk_index = Vec::new();
        let mut bytes = base;
        for (i, key) in keys.iter().enumerate() {
            let key = self.wire_key(key.as_ref());
            if let Err(e) = check_key(&key, &limits) {
                slots[i] = Some(Err(e));
                continue;
            }
            let add = 4 + key.len() as u64;
            if !fits(chunk_index.len(), bytes + add, limits.max_frame_bytes) {
                let full = std::mem::replace(&mut chunk, empty.clone());
                self.send_delete_many(full, &chunk_index, &mut slots)?;
                chunk_index.clear();
                bytes = base;
            }
            bytes += add;
            chunk.keys.push(key.into_owned());
            chunk_index.push(i);
        }
        if !chunk.keys.is_empty() {
            self.send_delete_many(chunk, &chunk_index, &mut slots)?;
        }
        Ok(finish(slots))
    }

    fn send_set_many(
        &self,
        chunk: SetMany,
        index: &[usize],
        slots: &mut Slots<()>,
    ) -> Result<(), Error> {
        let req = Request::SetMany(chunk);
        match self.batch(&req, index.len())? {
            Some(results) => {
                for (&i, r) in index.iter().zip(results) {
                    slots[i] = Some(item(r).map(|_| ()));
                }
            }
            None => {
                let Request::SetMany(chunk) = req else {
                    unreachable!("built as SET_MANY above")
                };
                for (&i, (key, value)) in index.iter().zip(chunk.items) {
                    let set = Set {
                        namespace: chunk.namespace.clone(),
                        key,
                        value,
                        ttl_ms: chunk.ttl_ms,
                        grace_ms: chunk.grace_ms,
                        tags: chunk.tags.clone(),
                    };
                    slots[i] = Some(match self.write(&Request::Set(set)) {
                        Ok(Reply::Ok) => Ok(()),
                        Ok(other) => Err(unexpected("SET", &other)),
                        Err(e) => Err(e),
                    });
                }
            }
        }
        Ok(())
    }

    fn send_delete_many(
        &self,
        chunk: DeleteMany,
        index: &[usize],
        slots: &mut Slots<bool>,
    ) -> Result<(), Error> {
        let req = Request::DeleteMany(chunk);
        match self.batch(&req, index.len())? {
            Some(results) => {
                for (&i, r) in index.iter().zip(results) {
                    slots[i] = Some(item(r));
                }
            }
            None => {
                let Request::DeleteMany(chunk) = req else {
                    unreachable!("built as DELETE_MANY above")
                };
                for (&i, key) in index.iter().zip(chunk.keys) {
                    let req = Request::Delete {
                        namespace: chunk.namespace.clone(),
                        key,
                    };
                    slots[i] = Some(match self.write(&req) {
                        Ok(Reply::Deleted { existed }) => Ok(existed),
                        Ok(other) => Err(unexpected("DELETE", &other)),
                        Err(e) => Err(e),
                    });
                }
            }
        }
        Ok(())
    }

    /// Sends one batch request. `Ok(None)`: each item must take the path of a single write:
    /// the daemon is gone (the journal, or Redis directly), or it is from before batch writes
    /// (HELLO_OK without [`HELLO_FLAG_BATCH_WRITES`](cachekit_proto::HELLO_FLAG_BATCH_WRITES)).
    fn batch(&self, req: &Request, items: usize) -> Result<Option<Vec<ItemResult>>, Error> {
        if self.shared.direct_first() || !self.shared.batch_writes() {
            return Ok(None);
        }
        match self.shared.request(req) {
            Ok(Reply::BatchResults { results }) if results.len() == items => Ok(Some(results)),
            Ok(other) => Err(unexpected(req.kind().name(), &other)),
            Err(e) if e.is_daemon_gone() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn frame_len(req: &Request) -> u64 {
    HEADER_LEN as u64 + req.body_len()
}

/// Whether a request of `items` items may take one more, making its frame `frame` bytes (the
/// first always goes in: the caller sends an item that does not fit alone as a SET).
fn fits(items: usize, frame: u64, max_frame_bytes: usize) -> bool {
    items == 0 || (items < MAX_BATCH_ITEMS && frame <= max_frame_bytes as u64)
}

/// One item's result from the daemon.
fn item(r: ItemResult) -> Result<bool, Error> {
    match r.error {
        None => Ok(r.existed),
        Some(code) => Err(Error::from_daemon(code, r.message)),
    }
}

fn finish<T>(slots: Slots<T>) -> Vec<Result<T, Error>> {
    slots
        .into_iter()
        .map(|s| {
            s.unwrap_or_else(|| {
                Err(Error::Protocol {
                    message: "a batch item got no result".into(),
                })
            })
        })
        .collect()
}
