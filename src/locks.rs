//! Locking the daemon's shared state without letting one panic cascade.
//!
//! `lock().expect(..)` turns a panic while a lock was held into a panic in every later user of
//! that lock: one bug in the emit path would then also kill the aggregate tick, the revoke
//! callback and the final commit of the drain, which is exactly when the offsets done so far must
//! still be committed. These helpers take the data of a poisoned lock as it is (what parking_lot's
//! locks do). That is sound here because the panic itself is not lost: it fails its stage, the
//! supervisor (`crate::supervise`) takes the process down, and the only later users are the
//! drain's. And the guarded types keep themselves consistent at every panic point: the offset
//! tracker checks before it mutates, and a window or detector update cut short can at worst leave
//! one message uncounted.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, taking its data as it is if a holder panicked (see the module docs for why).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads `lock`, taking its data as it is if a writer panicked.
pub fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Writes `lock`, taking its data as it is if a holder panicked.
pub fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pipeline::offsets::OffsetTracker;

    #[test]
    fn a_panic_while_the_offset_tracker_is_locked_does_not_stop_later_commits() {
        let tracker = Arc::new(Mutex::new(OffsetTracker::default()));
        lock(&tracker).begin("news", 0, 10);
        let panicking = Arc::clone(&tracker);
        let panicked = std::thread::spawn(move || {
            let _guard = lock(&panicking);
            panic!("a bug while the tracker is locked");
        })
        .join();
        assert!(panicked.is_err());
        assert!(tracker.is_poisoned(), "the std mutex is poisoned; `lock().expect` would panic from here on");
        assert_eq!(lock(&tracker).complete("news", 0, 10), Some(11));
        assert_eq!(lock(&tracker).committable(), vec![("news".to_owned(), 0, 11)]);
    }

    #[test]
    fn a_poisoned_rwlock_still_reads_and_writes() {
        let identity = Arc::new(RwLock::new(1));
        let panicking = Arc::clone(&identity);
        let _ = std::thread::spawn(move || {
            let _guard = write(&panicking);
            panic!("a bug while writing");
        })
        .join();
        *write(&identity) = 2;
        assert_eq!(*read(&identity), 2);
    }
}
