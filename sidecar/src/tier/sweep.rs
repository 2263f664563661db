//! The sweep task: one step of the Redis sweep (`cachekit_redis::sweep`: dead counters and
//! invalidated records deleted, old records restamped, the floor raised at the end of each
//! pass) per followed namespace every `redis_sweep_ms`. The pass's position lives in Redis,
//! so every host's steps advance one shared pass per namespace. It runs only while the
//! breaker is closed, and a failure ends the round (the next round tries again).

use super::breaker::State;
use super::Tier;
use cachekit_redis::SWEEP_COUNT;
use std::sync::atomic::Ordering;
use tracing::debug;

impl Tier {
    pub(super) async fn sweep(&self) {
        let Some(every) = self.cfg.sweep else {
            return;
        };
        loop {
            tokio::time::sleep(every).await;
            if self.breaker.state() != State::Closed {
                continue;
            }
            let namespaces: Vec<String> = self.follows().keys().cloned().collect();
            for ns in namespaces {
                match self.store.sweep_step(&ns, SWEEP_COUNT).await {
                    Ok(s) => {
                        let c = &self.c;
                        c.sweep_steps.fetch_add(1, Ordering::Relaxed);
                        c.sweep_passes
                            .fetch_add(u64::from(s.pass_done), Ordering::Relaxed);
                        c.swept_records
                            .fetch_add(s.records_deleted, Ordering::Relaxed);
                        c.restamped_records
                            .fetch_add(s.records_restamped, Ordering::Relaxed);
                        c.swept_counters
                            .fetch_add(s.counters_deleted, Ordering::Relaxed);
                    }
                    Err(e) => {
                        self.failed(&e);
                        debug!(namespace = %ns, error = %e, "sweep step failed; trying again next round");
                        break;
                    }
                }
            }
        }
    }
}
