//! Batches back in input order: the inference workers finish batches in whatever order their work
//! takes, and emit must write records in input order, because Kafka keeps a key's order only in the
//! order records are handed to the producer. Pure.
//!
//! Each message handed to the batcher gets the next sequence number; a batch holds a contiguous run
//! of them, so a batch is identified by its first number and its length. [`InOrder`] holds batches
//! that arrive early and releases each as soon as every batch before it has been released.

use std::collections::BTreeMap;

/// See the module documentation.
#[derive(Debug)]
pub struct InOrder<T> {
    /// The first sequence number of the next batch to release.
    next: u64,
    /// Batches that arrived before their turn, by first sequence number, with their lengths.
    waiting: BTreeMap<u64, (usize, T)>,
}

impl<T> Default for InOrder<T> {
    fn default() -> Self {
        Self { next: 0, waiting: BTreeMap::new() }
    }
}

impl<T> InOrder<T> {
    /// Takes a batch whose messages are numbered `first..first + len` and returns every batch that
    /// is now in turn, in input order (none while an earlier batch is still out).
    pub fn push(&mut self, first: u64, len: usize, batch: T) -> Vec<T> {
        self.waiting.insert(first, (len, batch));
        let mut released = Vec::new();
        while let Some((len, batch)) = self.waiting.remove(&self.next) {
            self.next += len as u64;
            released.push(batch);
        }
        released
    }

    /// Batches held back, waiting for an earlier one.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_batch_that_finishes_early_waits_for_the_ones_before_it() {
        let mut in_order = InOrder::default();
        assert!(in_order.push(3, 2, "c").is_empty());
        assert!(in_order.push(2, 1, "b").is_empty());
        assert_eq!(in_order.waiting(), 2);
        assert_eq!(in_order.push(0, 2, "a"), ["a", "b", "c"]);
        assert_eq!(in_order.push(5, 4, "d"), ["d"]);
        assert_eq!(in_order.waiting(), 0);
    }

    proptest! {
        /// Whatever order contiguous batches arrive in, they come out in input order, each once.
        #[test]
        fn batches_come_out_in_input_order(
            lengths in proptest::collection::vec(1usize..70, 1..40),
            shuffle_seed in any::<u64>(),
        ) {
            let mut batches = Vec::new();
            let mut first = 0u64;
            for (index, len) in lengths.iter().enumerate() {
                batches.push((first, *len, index));
                first += *len as u64;
            }
            let mut arrival = batches.clone();
            // A deterministic shuffle from the seed (Fisher-Yates with a small LCG).
            let mut state = shuffle_seed | 1;
            for index in (1..arrival.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                arrival.swap(index, (state >> 33) as usize % (index + 1));
            }
            let mut in_order = InOrder::default();
            let mut released = Vec::new();
            for (first, len, index) in arrival {
                released.extend(in_order.push(first, len, index));
            }
            prop_assert_eq!(released, (0..batches.len()).collect::<Vec<_>>());
        }
    }
}
