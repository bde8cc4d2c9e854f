//! Locking shared by every layer: the bottom of the module graph, importing nothing of the
//! gateway's own.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a mutex, recovering from poisoning: the data stays usable after a panic elsewhere.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits until `flag` is set (or its sender is gone): for stop signals.
pub async fn until_set(flag: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, so callers can hold this across awaits.
    let _ = flag.wait_for(|set| *set).await;
}
