//! The pool: `connections_per_broker` connections (1 by default) per (logical broker, physical
//! address), shared by every producer, consumer and lookup of a client; each use takes the next
//! of them at random. A closed connection (the broker went away, or it was unused for the max
//! idle time) is evicted and replaced on next use; concurrent users of a new address wait for
//! one connection attempt instead of racing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::driver;
use super::{Connection, ConnectionConfig};
use crate::error::ConnectionError;
use crate::url::BrokerAddress;

/// Logical broker, physical address, and which of the connections to them.
type Key = (BrokerAddress, BrokerAddress, usize);

/// Connections of one client, keyed by logical and physical broker address.
#[derive(Debug)]
pub(crate) struct Pool {
    config: ConnectionConfig,
    connections: Mutex<HashMap<Key, Arc<OnceCell<Connection>>>>,
    per_broker: usize,
    next_slot: AtomicUsize,
}

impl Pool {
    /// A pool keeping up to `per_broker` connections (at least 1) to each broker.
    pub fn new(config: ConnectionConfig, per_broker: usize) -> Self {
        Pool {
            config,
            connections: Mutex::new(HashMap::new()),
            per_broker: per_broker.max(1),
            next_slot: AtomicUsize::new(0),
        }
    }

    /// The live connection to `logical` through `physical`, opened if needed.
    pub async fn get(
        &self,
        logical: &BrokerAddress,
        physical: &BrokerAddress,
    ) -> Result<Connection, ConnectionError> {
        let slot = if self.per_broker == 1 {
            0
        } else {
            // Scrambled, not in turn: a producer's lookup and its own connection are
            // consecutive uses, and a plain rotation would put every producer on one slot.
            let n = self.next_slot.fetch_add(1, Ordering::Relaxed) as u64;
            (splitmix64(n) % self.per_broker as u64) as usize
        };
        let key = (logical.clone(), physical.clone(), slot);
        loop {
            let cell = {
                let mut map = self
                    .connections
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                map.entry(key.clone()).or_default().clone()
            };
            let result = cell
                .get_or_try_init(|| driver::connect(logical, physical, &self.config))
                .await;
            match result {
                Ok(conn) if !conn.is_closed() => return Ok(conn.clone()),
                Ok(_) => self.evict(&key, &cell),
                Err(e) => {
                    self.evict(&key, &cell);
                    return Err(e);
                }
            }
        }
    }

    fn evict(&self, key: &Key, cell: &Arc<OnceCell<Connection>>) {
        let mut map = self
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.get(key).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            map.remove(key);
        }
    }

    /// Live connections (for tests and stats).
    pub fn live_connections(&self) -> usize {
        let map = self
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.values()
            .filter(|c| c.get().is_some_and(|c| !c.is_closed()))
            .count()
    }

    /// Closes every connection.
    pub fn close_all(&self) {
        let map = std::mem::take(
            &mut *self
                .connections
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for cell in map.values() {
            if let Some(conn) = cell.get() {
                conn.close();
            }
        }
    }
}

/// A well-mixed 64-bit function of `x` (SplitMix64's finalizer).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
