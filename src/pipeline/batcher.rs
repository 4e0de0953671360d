//! Size-or-deadline micro-batch cut logic: pure, with time passed in, so it is property-tested without a runtime.
//!
//! The async caller owns the clock. A typical loop:
//!
//! ```text
//! loop {
//!     let deadline = batcher.deadline();
//!     tokio::select! {
//!         Some(message) = messages.recv() => {
//!             if let Some(batch) = batcher.push(message, Instant::now()) { send(batch).await; }
//!         }
//!         _ = sleep_until_or_forever(deadline) => {
//!             if let Some(batch) = batcher.poll_deadline(Instant::now()) { send(batch).await; }
//!         }
//!     }
//! }
//! ```
//!
//! A batch is cut when it holds `max_size` items (by [`Batcher::push`]) or when `max_wait` has
//! passed since its first item arrived (by [`Batcher::poll_deadline`]), whichever comes first, as in
//! quickwit's Kafka source: a full batch goes at once, a trickle never waits longer than `max_wait`.

use std::time::{Duration, Instant};

/// When a batch is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Most items in one batch; a batch that reaches it is cut at once. A zero is treated as one
    /// (config validation rejects it): a batch always holds at least one item.
    pub max_size: usize,
    /// Longest an item waits, from the arrival of the batch's first item until the batch is cut.
    pub max_wait: Duration,
}

/// Pending items and the time the oldest of them arrived.
#[derive(Debug)]
pub struct Batcher<T> {
    max_size: usize,
    max_wait: Duration,
    pending: Vec<T>,
    /// When the pending batch must be cut: first arrival + `max_wait`. `None` when nothing is
    /// pending, or when that instant is not representable (an absurd `max_wait`), in which case only
    /// size and [`Batcher::flush`] cut.
    deadline: Option<Instant>,
}

impl<T> Batcher<T> {
    /// An empty batcher.
    pub fn new(policy: BatchPolicy) -> Self {
        Self { max_size: policy.max_size.max(1), max_wait: policy.max_wait, pending: Vec::new(), deadline: None }
    }

    /// Adds an item that arrived at `now`; returns the batch when this item filled it.
    pub fn push(&mut self, item: T, now: Instant) -> Option<Vec<T>> {
        if self.pending.is_empty() {
            self.deadline = now.checked_add(self.max_wait);
        }
        self.pending.push(item);
        if self.pending.len() < self.max_size {
            return None;
        }
        self.take_pending()
    }

    /// When the pending batch must be cut, for the caller to sleep until; `None` when empty.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Returns the pending batch when its deadline is at or before `now`.
    pub fn poll_deadline(&mut self, now: Instant) -> Option<Vec<T>> {
        let deadline = self.deadline?;
        if now < deadline {
            return None;
        }
        self.take_pending()
    }

    /// Returns whatever is pending regardless of time, for shutdown.
    pub fn flush(&mut self) -> Option<Vec<T>> {
        self.take_pending()
    }

    /// Number of pending items.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn take_pending(&mut self) -> Option<Vec<T>> {
        self.deadline = None;
        if self.pending.is_empty() {
            return None;
        }
        debug_assert!(self.pending.len() <= self.max_size, "a batch never grows past max_size");
        Some(std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(max_size: usize, max_wait_ms: u64) -> BatchPolicy {
        BatchPolicy { max_size, max_wait: Duration::from_millis(max_wait_ms) }
    }

    #[test]
    fn push_cuts_exactly_at_max_size() {
        let start = Instant::now();
        let mut batcher = Batcher::new(policy(3, 20));
        assert_eq!(batcher.push(1, start), None);
        assert_eq!(batcher.push(2, start), None);
        assert_eq!(batcher.len(), 2);
        assert_eq!(batcher.push(3, start), Some(vec![1, 2, 3]));
        assert!(batcher.is_empty());
        assert_eq!(batcher.deadline(), None);
    }

    #[test]
    fn deadline_counts_from_first_item_not_latest() {
        let start = Instant::now();
        let mut batcher = Batcher::new(policy(10, 20));
        batcher.push("a", start);
        batcher.push("b", start + Duration::from_millis(15));
        assert_eq!(batcher.deadline(), Some(start + Duration::from_millis(20)));
        assert_eq!(batcher.poll_deadline(start + Duration::from_millis(19)), None);
        assert_eq!(batcher.poll_deadline(start + Duration::from_millis(20)), Some(vec!["a", "b"]));
        assert_eq!(batcher.deadline(), None);
    }

    #[test]
    fn next_batch_gets_a_fresh_deadline() {
        let start = Instant::now();
        let mut batcher = Batcher::new(policy(5, 20));
        batcher.push(1, start);
        assert_eq!(batcher.poll_deadline(start + Duration::from_millis(20)), Some(vec![1]));
        let later = start + Duration::from_millis(100);
        batcher.push(2, later);
        assert_eq!(batcher.deadline(), Some(later + Duration::from_millis(20)));
    }

    #[test]
    fn empty_batcher_emits_nothing() {
        let start = Instant::now();
        let mut batcher: Batcher<u8> = Batcher::new(policy(4, 0));
        assert_eq!(batcher.deadline(), None);
        assert_eq!(batcher.poll_deadline(start + Duration::from_secs(3600)), None);
        assert_eq!(batcher.flush(), None);
    }

    #[test]
    fn flush_returns_partial_batch() {
        let mut batcher = Batcher::new(policy(4, 20));
        batcher.push('x', Instant::now());
        assert_eq!(batcher.flush(), Some(vec!['x']));
        assert_eq!(batcher.flush(), None);
    }

    #[test]
    fn zero_max_size_behaves_as_one() {
        let mut batcher = Batcher::new(policy(0, 20));
        assert_eq!(batcher.push(7, Instant::now()), Some(vec![7]));
    }

    #[test]
    fn zero_max_wait_is_due_immediately() {
        let start = Instant::now();
        let mut batcher = Batcher::new(policy(8, 0));
        batcher.push(1, start);
        assert_eq!(batcher.poll_deadline(start), Some(vec![1]));
    }

    #[test]
    fn unrepresentable_deadline_leaves_size_and_flush_cuts() {
        let mut batcher = Batcher::new(BatchPolicy { max_size: 2, max_wait: Duration::MAX });
        let start = Instant::now();
        batcher.push(1, start);
        assert_eq!(batcher.deadline(), None);
        assert_eq!(batcher.push(2, start), Some(vec![1, 2]));
    }

    /// One step of a caller: an item arrives, or the caller polls, `gap_ms` after the previous step.
    #[derive(Debug, Clone)]
    enum Step {
        Push { gap_ms: u64 },
        Poll { gap_ms: u64 },
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        let step = prop_oneof![
            3 => (0u64..40).prop_map(|gap_ms| Step::Push { gap_ms }),
            1 => (0u64..60).prop_map(|gap_ms| Step::Poll { gap_ms }),
        ];
        proptest::collection::vec(step, 0..200)
    }

    /// Every emitted batch, with the time it was emitted.
    struct Emitted {
        batches: Vec<(Instant, Vec<usize>)>,
    }

    impl Emitted {
        fn record(&mut self, at: Instant, batch: Option<Vec<usize>>) {
            if let Some(items) = batch {
                self.batches.push((at, items));
            }
        }
    }

    proptest! {
        /// Arbitrary callers: no batch is empty or oversized, every item comes out once in order,
        /// a deadline poll never cuts early, and a push cuts only a full batch.
        #[test]
        fn batches_are_bounded_complete_and_ordered(max_size in 1usize..10, max_wait_ms in 0u64..50, steps in steps()) {
            let mut batcher = Batcher::new(policy(max_size, max_wait_ms));
            let mut now = Instant::now();
            let mut next_item = 0usize;
            let mut emitted = Emitted { batches: Vec::new() };
            for step in steps {
                match step {
                    Step::Push { gap_ms } => {
                        now += Duration::from_millis(gap_ms);
                        let batch = batcher.push(next_item, now);
                        next_item += 1;
                        if let Some(items) = &batch {
                            prop_assert_eq!(items.len(), max_size);
                        }
                        emitted.record(now, batch);
                    }
                    Step::Poll { gap_ms } => {
                        now += Duration::from_millis(gap_ms);
                        let deadline_before = batcher.deadline();
                        let batch = batcher.poll_deadline(now);
                        if batch.is_some() {
                            prop_assert!(deadline_before.is_some_and(|deadline| deadline <= now));
                        }
                        emitted.record(now, batch);
                    }
                }
                prop_assert_eq!(batcher.deadline().is_some(), !batcher.is_empty());
            }
            emitted.record(now, batcher.flush());
            prop_assert!(batcher.is_empty());
            for (_, items) in &emitted.batches {
                prop_assert!(!items.is_empty());
                prop_assert!(items.len() <= max_size);
            }
            let all_items: Vec<usize> = emitted.batches.iter().flat_map(|(_, items)| items.iter().copied()).collect();
            prop_assert_eq!(all_items, (0..next_item).collect::<Vec<_>>());
        }

        /// A caller that polls exactly at `deadline()` before anything later happens never lets an
        /// item wait longer than `max_wait` between its push and its batch's emission.
        #[test]
        fn polling_at_deadline_bounds_every_wait(max_size in 1usize..10, max_wait_ms in 0u64..50, gaps_ms in proptest::collection::vec(0u64..40, 0..200)) {
            let max_wait = Duration::from_millis(max_wait_ms);
            let mut batcher = Batcher::new(policy(max_size, max_wait_ms));
            let mut now = Instant::now();
            let mut pushed_at = Vec::new();
            let mut emitted = Emitted { batches: Vec::new() };
            for gap_ms in gaps_ms {
                let arrival = now + Duration::from_millis(gap_ms);
                if let Some(deadline) = batcher.deadline().filter(|deadline| *deadline <= arrival) {
                    let batch = batcher.poll_deadline(deadline);
                    prop_assert!(batch.is_some());
                    emitted.record(deadline, batch);
                }
                now = arrival;
                let batch = batcher.push(pushed_at.len(), now);
                pushed_at.push(now);
                emitted.record(now, batch);
            }
            if let Some(deadline) = batcher.deadline() {
                let batch = batcher.poll_deadline(deadline);
                emitted.record(deadline, batch);
            }
            prop_assert!(batcher.is_empty());
            let mut emitted_count = 0;
            for (emitted_at, items) in &emitted.batches {
                for &item in items {
                    prop_assert!(*emitted_at - pushed_at[item] <= max_wait);
                    emitted_count += 1;
                }
            }
            prop_assert_eq!(emitted_count, pushed_at.len());
        }
    }
}
