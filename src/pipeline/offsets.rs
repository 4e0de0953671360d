//! Which offsets may be committed: a partition's "next offset to read" moves only past messages that are done.
//!
//! Batches may complete out of order (several model workers, producer acknowledgements in any order), but Kafka
//! keeps a single committed "next offset to read" per partition. Committing offset 11 after message 10 is done
//! while message 7 is still in flight would lose message 7 on a restart, so the committable offset of a partition is
//! its lowest still-pending offset, or, with nothing pending, its highest begun offset + 1. Offsets need not be
//! contiguous (compaction and transaction markers leave gaps): only offsets the consumer delivered are tracked.
//!
//! The caller calls [`OffsetTracker::begin`] for each message as it is consumed (in offset order per partition),
//! [`OffsetTracker::complete`] once its record is acknowledged and it is counted, commits
//! [`OffsetTracker::committable`] periodically and then marks each entry with
//! [`OffsetTracker::mark_committed`], and on revoke makes a final commit before [`OffsetTracker::forget_partition`].

use std::collections::{BTreeMap, BTreeSet};

/// One `(topic, partition, next offset to read)` to commit, the shape the ingest module turns into a Kafka
/// topic-partition list.
pub type CommittableOffset = (String, i32, i64);

/// In-flight offsets and committable positions of every assigned partition.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    /// Topic, then partition: looked up by `&str` without allocating a key per message.
    partitions: BTreeMap<String, BTreeMap<i32, PartitionOffsets>>,
}

#[derive(Debug)]
struct PartitionOffsets {
    /// Begun and not yet completed.
    pending: BTreeSet<i64>,
    highest_begun: i64,
    /// Every delivered offset below this is done. Starts at the first begun offset: the position the consumer
    /// resumed from, which needs no commit.
    next_offset: i64,
    /// The highest next offset known to be committed (or the starting position).
    committed_next_offset: i64,
}

impl PartitionOffsets {
    fn starting_at(offset: i64) -> Self {
        Self { pending: BTreeSet::new(), highest_begun: offset, next_offset: offset, committed_next_offset: offset }
    }
}

impl OffsetTracker {
    /// Records that a message was consumed and its work has begun.
    ///
    /// Offsets of a partition must begin in increasing order, as the consumer delivers them. To rewind (a seek after
    /// a failure), forget the partition first, or the committable offset could pass the re-read messages.
    pub fn begin(&mut self, topic: &str, partition: i32, offset: i64) {
        let topic_partitions = match self.partitions.get_mut(topic) {
            Some(topic_partitions) => topic_partitions,
            None => self.partitions.entry(topic.to_owned()).or_default(),
        };
        let Some(partition_offsets) = topic_partitions.get_mut(&partition) else {
            let mut first_offsets = PartitionOffsets::starting_at(offset);
            first_offsets.pending.insert(offset);
            topic_partitions.insert(partition, first_offsets);
            return;
        };
        debug_assert!(
            offset > partition_offsets.highest_begun,
            "offset {offset} of {topic}/{partition} begun after offset {}",
            partition_offsets.highest_begun
        );
        partition_offsets.highest_begun = partition_offsets.highest_begun.max(offset);
        partition_offsets.pending.insert(offset);
    }

    /// Records that a message's work is done (record acknowledged, counted); returns the partition's new committable
    /// next offset when this moved it forward.
    ///
    /// An offset that is not pending (already completed, or of a partition forgotten on revoke while its record was
    /// in flight) changes nothing: after a rebalance such late completions are expected, not bugs.
    pub fn complete(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let partition_offsets = self.partitions.get_mut(topic)?.get_mut(&partition)?;
        if !partition_offsets.pending.remove(&offset) {
            return None;
        }
        let candidate_next_offset = match partition_offsets.pending.first() {
            Some(lowest_pending) => *lowest_pending,
            None => partition_offsets.highest_begun.saturating_add(1),
        };
        if candidate_next_offset <= partition_offsets.next_offset {
            return None;
        }
        partition_offsets.next_offset = candidate_next_offset;
        Some(candidate_next_offset)
    }

    /// The next offsets of partitions that have moved forward since they were last marked committed, sorted by
    /// topic and partition.
    pub fn committable(&self) -> Vec<CommittableOffset> {
        let mut committable = Vec::new();
        for (topic, topic_partitions) in &self.partitions {
            for (partition, partition_offsets) in topic_partitions {
                if partition_offsets.next_offset > partition_offsets.committed_next_offset {
                    committable.push((topic.clone(), *partition, partition_offsets.next_offset));
                }
            }
        }
        committable
    }

    /// Records that a partition's next offset was committed (or stored for commit), typically one entry of what
    /// [`OffsetTracker::committable`] returned. A partition no longer tracked is skipped, and an older commit
    /// acknowledged after a newer one moves nothing back.
    pub fn mark_committed(&mut self, topic: &str, partition: i32, next_offset: i64) {
        let Some(partition_offsets) =
            self.partitions.get_mut(topic).and_then(|topic_partitions| topic_partitions.get_mut(&partition))
        else {
            return;
        };
        partition_offsets.committed_next_offset = partition_offsets.committed_next_offset.max(next_offset);
    }

    /// Drops a partition's state, on revoke after its final commit: its in-flight messages will be re-read by
    /// whichever consumer gets the partition next, and their late completions here are ignored.
    pub fn forget_partition(&mut self, topic: &str, partition: i32) {
        let Some(topic_partitions) = self.partitions.get_mut(topic) else {
            return;
        };
        topic_partitions.remove(&partition);
        if topic_partitions.is_empty() {
            self.partitions.remove(topic);
        }
    }

    /// Messages begun and not yet completed, over all partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions
            .values()
            .flat_map(|topic_partitions| topic_partitions.values())
            .map(|partition_offsets| partition_offsets.pending.len())
            .sum()
    }

    /// Messages of one partition begun and not yet completed.
    pub fn in_flight_for(&self, topic: &str, partition: i32) -> usize {
        self.partitions
            .get(topic)
            .and_then(|topic_partitions| topic_partitions.get(&partition))
            .map_or(0, |partition_offsets| partition_offsets.pending.len())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn commits_only_past_completed_prefix() {
        let mut tracker = OffsetTracker::default();
        for offset in [10, 11, 12] {
            tracker.begin("t", 0, offset);
        }
        assert_eq!(tracker.complete("t", 0, 11), None);
        assert_eq!(tracker.committable(), vec![]);
        assert_eq!(tracker.complete("t", 0, 10), Some(12));
        assert_eq!(tracker.committable(), vec![("t".to_owned(), 0, 12)]);
        assert_eq!(tracker.complete("t", 0, 12), Some(13));
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn gaps_in_offsets_are_skipped() {
        let mut tracker = OffsetTracker::default();
        tracker.begin("t", 0, 5);
        assert_eq!(tracker.complete("t", 0, 5), Some(6));
        tracker.begin("t", 0, 9);
        tracker.begin("t", 0, 20);
        assert_eq!(tracker.complete("t", 0, 9), Some(20));
        assert_eq!(tracker.complete("t", 0, 20), Some(21));
    }

    #[test]
    fn partitions_are_independent() {
        let mut tracker = OffsetTracker::default();
        tracker.begin("a", 0, 1);
        tracker.begin("a", 1, 100);
        tracker.begin("b", 0, 7);
        assert_eq!((tracker.in_flight(), tracker.in_flight_for("a", 1), tracker.in_flight_for("c", 0)), (3, 1, 0));
        assert_eq!(tracker.complete("a", 1, 100), Some(101));
        assert_eq!(tracker.complete("b", 0, 7), Some(8));
        assert_eq!(tracker.committable(), vec![("a".to_owned(), 1, 101), ("b".to_owned(), 0, 8)]);
        assert_eq!(tracker.in_flight_for("a", 0), 1);
    }

    #[test]
    fn mark_committed_hides_until_the_next_advance() {
        let mut tracker = OffsetTracker::default();
        tracker.begin("t", 3, 0);
        tracker.begin("t", 3, 1);
        tracker.complete("t", 3, 0);
        assert_eq!(tracker.committable(), vec![("t".to_owned(), 3, 1)]);
        tracker.mark_committed("t", 3, 1);
        assert_eq!(tracker.committable(), vec![]);
        tracker.complete("t", 3, 1);
        assert_eq!(tracker.committable(), vec![("t".to_owned(), 3, 2)]);
        tracker.mark_committed("t", 3, 2);
        // An older commit acknowledged late moves nothing back; an unknown partition is skipped.
        tracker.mark_committed("t", 3, 1);
        tracker.mark_committed("gone", 0, 9);
        assert_eq!(tracker.committable(), vec![]);
    }

    #[test]
    fn forgotten_partitions_ignore_late_completions_and_restart_cleanly() {
        let mut tracker = OffsetTracker::default();
        tracker.begin("t", 0, 50);
        tracker.begin("t", 0, 51);
        tracker.forget_partition("t", 0);
        tracker.forget_partition("never", 0);
        assert_eq!(tracker.in_flight(), 0);
        assert_eq!(tracker.complete("t", 0, 50), None);
        assert_eq!(tracker.committable(), vec![]);
        // Reassigned later, resuming from the last commit, lower than before.
        tracker.begin("t", 0, 40);
        assert_eq!(tracker.complete("t", 0, 51), None);
        assert_eq!(tracker.complete("t", 0, 40), Some(41));
    }

    #[test]
    fn duplicate_completion_changes_nothing() {
        let mut tracker = OffsetTracker::default();
        tracker.begin("t", 0, 0);
        tracker.begin("t", 0, 1);
        assert_eq!(tracker.complete("t", 0, 0), Some(1));
        assert_eq!(tracker.complete("t", 0, 0), None);
        assert_eq!(tracker.in_flight(), 1);
    }

    /// Offsets of one partition: a start and the gaps between consecutive delivered offsets.
    fn partition_offsets_strategy() -> impl Strategy<Value = Vec<i64>> {
        (0_i64..1_000_000, proptest::collection::vec(1_i64..4, 0..40)).prop_map(|(start, gaps)| {
            let mut offsets = vec![start];
            for gap in gaps {
                offsets.push(offsets[offsets.len() - 1] + gap);
            }
            offsets
        })
    }

    /// Each partition's delivered offsets; the completion order as (partition index, offset); whether to commit
    /// after each completion.
    type Scenario = (Vec<Vec<i64>>, Vec<(usize, i64)>, Vec<bool>);

    fn scenario_strategy() -> impl Strategy<Value = Scenario> {
        proptest::collection::vec(partition_offsets_strategy(), 1..4).prop_flat_map(|partitions| {
            let completions: Vec<(usize, i64)> = partitions
                .iter()
                .enumerate()
                .flat_map(|(index, offsets)| offsets.iter().map(move |offset| (index, *offset)))
                .collect();
            let completion_count = completions.len();
            (
                Just(partitions),
                Just(completions).prop_shuffle(),
                proptest::collection::vec(any::<bool>(), completion_count),
            )
        })
    }

    proptest! {
        #[test]
        fn committable_offset_is_safe_monotonic_and_complete(
            (partitions, completion_order, commit_after_step) in scenario_strategy(),
        ) {
            let topic = "t";
            let mut tracker = OffsetTracker::default();
            let mut begun_count = vec![0_usize; partitions.len()];
            let mut pending: Vec<BTreeSet<i64>> = vec![BTreeSet::new(); partitions.len()];
            let mut next_offsets: Vec<i64> = partitions.iter().map(|offsets| offsets[0]).collect();
            let mut committed_next_offsets = next_offsets.clone();

            for (step, (partition_index, offset)) in completion_order.iter().enumerate() {
                let partition = i32::try_from(*partition_index).unwrap();
                // Begin lazily, in order, up to the offset about to complete: begins and completions interleave.
                while partitions[*partition_index][..begun_count[*partition_index]].last() < Some(offset) {
                    let next_to_begin = partitions[*partition_index][begun_count[*partition_index]];
                    tracker.begin(topic, partition, next_to_begin);
                    pending[*partition_index].insert(next_to_begin);
                    begun_count[*partition_index] += 1;
                }

                let advanced = tracker.complete(topic, partition, *offset);
                pending[*partition_index].remove(offset);
                if let Some(new_next_offset) = advanced {
                    prop_assert!(new_next_offset > next_offsets[*partition_index], "not monotonic");
                    next_offsets[*partition_index] = new_next_offset;
                }
                if let Some(lowest_pending) = pending[*partition_index].first() {
                    prop_assert!(next_offsets[*partition_index] <= *lowest_pending, "passed a pending offset");
                }

                let expected_committable: Vec<CommittableOffset> = (0..partitions.len())
                    .filter(|index| next_offsets[*index] > committed_next_offsets[*index])
                    .map(|index| (topic.to_owned(), i32::try_from(index).unwrap(), next_offsets[index]))
                    .collect();
                let committable = tracker.committable();
                prop_assert_eq!(&committable, &expected_committable);
                if commit_after_step[step] {
                    for (committed_topic, committed_partition, committed_offset) in &committable {
                        tracker.mark_committed(committed_topic, *committed_partition, *committed_offset);
                        committed_next_offsets[usize::try_from(*committed_partition).unwrap()] = *committed_offset;
                    }
                }

                prop_assert_eq!(tracker.in_flight(), pending.iter().map(BTreeSet::len).sum::<usize>());
                for (index, partition_pending) in pending.iter().enumerate() {
                    prop_assert_eq!(tracker.in_flight_for(topic, i32::try_from(index).unwrap()), partition_pending.len());
                }
            }

            for (index, offsets) in partitions.iter().enumerate() {
                prop_assert_eq!(next_offsets[index], offsets[offsets.len() - 1] + 1);
            }
            prop_assert_eq!(tracker.in_flight(), 0);
        }
    }
}
