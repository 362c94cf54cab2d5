//! The shared org: store, sessions, faults and the request log behind one `Arc`.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use crate::config::SimConfig;
use crate::faults::Faults;
use crate::oauth::Sessions;
use crate::store::Store;

const LOG_CAPACITY: usize = 10_000;

/// One request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
}

pub struct Sim {
    pub config: SimConfig,
    pub base_url: String,
    pub store: Mutex<Store>,
    pub sessions: Mutex<Sessions>,
    pub faults: Mutex<Faults>,
    pub log: Mutex<VecDeque<LoggedRequest>>,
}

impl Sim {
    pub fn new(config: SimConfig, base_url: String, store: Store) -> Self {
        Sim {
            sessions: Mutex::new(Sessions::new(config.seed)),
            faults: Mutex::new(Faults::new(&config)),
            store: Mutex::new(store),
            log: Mutex::new(VecDeque::new()),
            config,
            base_url,
        }
    }

    pub fn record(&self, entry: LoggedRequest) {
        let mut log = lock(&self.log);
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(entry);
    }
}

/// Locks a mutex, recovering the data if a handler panicked while holding it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
