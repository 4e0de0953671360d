//! The bound on the `entity` label values a replica exports to Prometheus: every watched entity, the `top_cashtags`
//! unwatched cashtags most mentioned in the detection view at the latest bucket close, and [`OTHER_ENTITIES`] for
//! all the rest. Pure.
//!
//! Cashtags are open-ended (anyone can write `$ANYTHING`), and every label value is a time series Prometheus keeps
//! for hours; so the series count is capped at `watched + top_cashtags + 1` per metric and view, whatever the stream
//! mentions. A cashtag that drops out of the top has its series removed, so the cap holds over time as well.

use std::collections::{BTreeSet, HashSet};

/// The label value under which every entity without series of its own is counted.
pub const OTHER_ENTITIES: &str = "__other__";

/// Which entities get series of their own; see the module documentation.
#[derive(Debug, Clone)]
pub struct EntityLabels {
    watched: HashSet<String>,
    top_cashtags: usize,
    /// Unwatched entities with series of their own since the latest re-ranking.
    exported: BTreeSet<String>,
}

impl EntityLabels {
    pub fn new(watched: impl IntoIterator<Item = String>, top_cashtags: usize) -> Self {
        Self { watched: watched.into_iter().collect(), top_cashtags, exported: BTreeSet::new() }
    }

    /// Re-ranks the unwatched entities of one bucket close by their messages in the detection view (ties by name,
    /// so the choice is stable) and keeps the top ones. Returns the entities that lost their series, for the
    /// caller to remove them.
    pub fn rerank<'a>(&mut self, view_counts: impl IntoIterator<Item = (&'a str, u64)>) -> Vec<String> {
        let mut ranked: Vec<(&str, u64)> = view_counts
            .into_iter()
            .filter(|(entity, count)| *count > 0 && !self.watched.contains(*entity) && *entity != OTHER_ENTITIES)
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let top: BTreeSet<String> =
            ranked.into_iter().take(self.top_cashtags).map(|(entity, _)| entity.to_owned()).collect();
        let dropped = self.exported.difference(&top).cloned().collect();
        self.exported = top;
        dropped
    }

    /// The label value an entity's series carry: its own name, or [`OTHER_ENTITIES`].
    pub fn label<'a>(&self, entity: &'a str) -> &'a str {
        if self.watched.contains(entity) || self.exported.contains(entity) { entity } else { OTHER_ENTITIES }
    }

    /// The most label values in use at once: the documented bound.
    pub fn max_labels(&self) -> usize {
        self.watched.len() + self.top_cashtags + 1
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn watched_entities_always_have_their_own_label_and_the_busiest_cashtags_join_them() {
        let mut labels = EntityLabels::new(["UBS".to_owned()], 2);
        assert!(labels.rerank([("UBS", 0), ("$TSLA", 9), ("$AAPL", 5), ("$GME", 1)]).is_empty());
        assert_eq!(labels.label("UBS"), "UBS", "watched, even when unmentioned");
        assert_eq!((labels.label("$TSLA"), labels.label("$AAPL")), ("$TSLA", "$AAPL"));
        assert_eq!(labels.label("$GME"), OTHER_ENTITIES);
        // $GME surges past $AAPL: $AAPL's series must go.
        assert_eq!(labels.rerank([("$TSLA", 9), ("$AAPL", 5), ("$GME", 40)]), ["$AAPL"]);
        assert_eq!((labels.label("$GME"), labels.label("$AAPL")), ("$GME", OTHER_ENTITIES));
        // Ties go by name, so a steady stream does not swap series back and forth.
        let mut tied = EntityLabels::new([], 1);
        let _ = tied.rerank([("$B", 3), ("$A", 3)]);
        assert_eq!((tied.label("$A"), tied.label("$B")), ("$A", OTHER_ENTITIES));
    }

    proptest! {
        /// Whatever the stream mentions, the label values in use never exceed the bound, and every value that was
        /// in use and is no longer is reported for removal.
        #[test]
        fn label_values_stay_within_the_bound(
            closes in proptest::collection::vec(proptest::collection::vec((0u8..40, 0u64..50), 0..30), 1..20),
            top in 0usize..5,
        ) {
            let watched: Vec<String> = (0..3).map(|index| format!("E{index}")).collect();
            let mut labels = EntityLabels::new(watched.clone(), top);
            let mut live: BTreeSet<String> = BTreeSet::new();
            for close in closes {
                let names: Vec<(String, u64)> = close
                    .into_iter()
                    .map(|(id, count)| (if id < 3 { format!("E{id}") } else { format!("${id}") }, count))
                    .collect();
                for dropped in labels.rerank(names.iter().map(|(name, count)| (name.as_str(), *count))) {
                    prop_assert!(live.remove(&dropped), "{dropped} reported dropped but never exported");
                }
                for (name, _) in &names {
                    live.insert(labels.label(name).to_owned());
                }
                live.remove(OTHER_ENTITIES);
                let cashtags = live.iter().filter(|name| !watched.contains(name)).count();
                prop_assert!(cashtags <= top, "{live:?}");
                prop_assert!(live.len() < labels.max_labels());
            }
        }
    }
}
