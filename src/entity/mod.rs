//! Entities: the names that matter to a risk team (a bank, an issuer, a regulator), found in a message by a
//! watchlist of names, aliases and tickers, and by cashtags (`$AAPL`). Pure.
//!
//! Matching is case and punctuation insensitive: names and texts are compared as their
//! [`crate::text::dedup_key`] (lower-case alphanumeric runs joined by single spaces, links dropped), so "Credit
//! Suisse", "CREDIT-SUISSE" and "credit suisse's" all match the name "Credit Suisse", and whole words only ("UBS"
//! does not match "subsidiary"). One Aho-Corasick automaton holds every name and alias, so the cost per message
//! does not grow with the watchlist (tested at 10,000 entries). [`labels`] bounds the Prometheus series entities get.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use aho_corasick::AhoCorasick;
use anyhow::Context;
use serde::Deserialize;

use crate::text::dedup_key;

pub mod labels;
pub mod settings;

pub use labels::{EntityLabels, OTHER_ENTITIES};

/// Longest ticker a cashtag may carry, share class included (`$BRK.B`): longer `$` words are amounts or noise.
const MAX_CASHTAG_CHARS: usize = 8;

/// One watched entity.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchedEntity {
    /// The entity's name, as alerts show it.
    pub name: String,
    /// Other spellings that mean it ("CS", "Credit Suisse Group").
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Tickers whose cashtags mean it ("CS" matches `$CS`), without the `$`.
    #[serde(default)]
    pub tickers: Vec<String>,
}

/// A watchlist file: `[[entity]]` tables (see `examples/watchlist.toml`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watchlist {
    #[serde(default, rename = "entity")]
    pub entities: Vec<WatchedEntity>,
}

impl Watchlist {
    /// Reads and checks a watchlist file.
    pub fn load(path: &Path) -> anyhow::Result<Watchlist> {
        let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
        let watchlist: Watchlist = toml::from_str(&text)
            .with_context(|| format!("{} is not a watchlist ([[entity]] tables)", path.display()))?;
        watchlist
            .validate()
            .map_err(|problems| anyhow::anyhow!("invalid watchlist {}: {}", path.display(), problems.join("; ")))?;
        Ok(watchlist)
    }

    /// Every problem: names and aliases that match nothing once normalised, and names given twice.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let mut names = BTreeSet::new();
        for (index, entity) in self.entities.iter().enumerate() {
            if dedup_key(&entity.name).is_empty() {
                problems.push(format!(
                    "entity {} has name {:?}, which has no letters or digits",
                    index + 1,
                    entity.name
                ));
            } else if !names.insert(entity.name.as_str()) {
                problems.push(format!(
                    "entity {} repeats the name {:?}: merge the two entries",
                    index + 1,
                    entity.name
                ));
            }
            for alias in entity.aliases.iter().filter(|alias| dedup_key(alias).is_empty()) {
                problems.push(format!("entity {:?} has alias {alias:?}, which has no letters or digits", entity.name));
            }
            for ticker in entity.tickers.iter().filter(|ticker| cashtag_ticker(ticker).is_none()) {
                problems.push(format!(
                    "entity {:?} has ticker {ticker:?}: give letters only, up to {MAX_CASHTAG_CHARS} with a share \
                     class like BRK.B, without the $",
                    entity.name
                ));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

/// Finds watched entities and cashtags in texts.
#[derive(Debug, Clone)]
pub struct EntityMatcher {
    names: Vec<String>,
    /// Pattern index -> entity index.
    pattern_entity: Vec<usize>,
    automaton: AhoCorasick,
    /// Upper-case ticker -> entity index.
    tickers: HashMap<String, usize>,
    /// Whether cashtags of no watched entity count as entities of their own (`$TSLA`).
    unwatched_cashtags: bool,
}

impl EntityMatcher {
    /// Builds the matcher of a validated watchlist; with `unwatched_cashtags`, every other cashtag is an entity too.
    pub fn new(watchlist: &Watchlist, unwatched_cashtags: bool) -> anyhow::Result<EntityMatcher> {
        let mut patterns = Vec::new();
        let mut pattern_entity = Vec::new();
        let mut tickers = HashMap::new();
        for (index, entity) in watchlist.entities.iter().enumerate() {
            for spelling in std::iter::once(&entity.name).chain(&entity.aliases) {
                // Spaces around the key make every match whole words; the text is padded the same way.
                patterns.push(format!(" {} ", dedup_key(spelling)));
                pattern_entity.push(index);
            }
            for ticker in &entity.tickers {
                if let Some(ticker) = cashtag_ticker(ticker) {
                    tickers.insert(ticker, index);
                }
            }
        }
        let automaton = AhoCorasick::new(&patterns).context("failed to build the watchlist matcher")?;
        let names = watchlist.entities.iter().map(|entity| entity.name.clone()).collect();
        Ok(EntityMatcher { names, pattern_entity, automaton, tickers, unwatched_cashtags })
    }

    /// The watched entities' names, in watchlist order.
    pub fn watched_names(&self) -> &[String] {
        &self.names
    }

    /// The entities of a text, sorted and each once: watched names (by name, alias or ticker cashtag), then, when
    /// unwatched cashtags count, cashtags of no watched entity as `$TICKER`.
    pub fn entities(&self, text: &str) -> Vec<String> {
        let mut watched = BTreeSet::new();
        let haystack = format!(" {} ", dedup_key(text));
        // Overlapping search: adjacent names share the space between them, and a short alias inside a long name
        // still counts for its own entity.
        for found in self.automaton.find_overlapping_iter(&haystack) {
            watched.insert(self.pattern_entity[found.pattern().as_usize()]);
        }
        let mut unwatched = BTreeSet::new();
        for ticker in cashtags(text) {
            match self.tickers.get(&ticker) {
                Some(&index) => {
                    watched.insert(index);
                }
                None if self.unwatched_cashtags => {
                    unwatched.insert(format!("${ticker}"));
                }
                None => {}
            }
        }
        let mut names: Vec<String> = watched.into_iter().map(|index| self.names[index].clone()).collect();
        names.sort();
        names.extend(unwatched);
        names
    }
}

/// The tickers of a text's cashtags, upper-case: `$` at the start or after a non-alphanumeric character, then
/// letters (up to [`MAX_CASHTAG_CHARS`] with an optional `.` share class), then the end or a non-alphanumeric
/// character. `$5`, `US$` and `$AAPL2` are not cashtags.
pub fn cashtags(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut previous: Option<char> = None;
    for (position, character) in text.char_indices() {
        if character == '$' && previous.is_none_or(|before| !before.is_alphanumeric()) {
            let rest = &text[position + 1..];
            let length = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.')).unwrap_or(rest.len());
            if let Some(ticker) = cashtag_ticker(rest[..length].trim_end_matches('.')) {
                found.push(ticker);
            }
        }
        previous = Some(character);
    }
    found
}

/// A ticker in canonical form (upper-case), if it is one: letters, optionally `.` and a letter class.
fn cashtag_ticker(candidate: &str) -> Option<String> {
    let (symbol, class) = candidate.split_once('.').unwrap_or((candidate, ""));
    let letters_only = |part: &str| part.chars().all(|c| c.is_ascii_alphabetic());
    let valid = !symbol.is_empty()
        && candidate.len() <= MAX_CASHTAG_CHARS
        && letters_only(symbol)
        && letters_only(class)
        // A dot needs a share class after it.
        && class.is_empty() != candidate.contains('.');
    valid.then(|| candidate.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watchlist() -> Watchlist {
        toml::from_str(
            r#"
            [[entity]]
            name = "Credit Suisse"
            aliases = ["CS Group"]
            tickers = ["CS"]

            [[entity]]
            name = "UBS"
            tickers = ["UBS"]

            [[entity]]
            name = "Bank of America"
            aliases = ["BofA"]
            tickers = ["BAC"]
            "#,
        )
        .unwrap()
    }

    #[test]
    fn names_aliases_and_tickers_match_whatever_the_case_and_punctuation() {
        let matcher = EntityMatcher::new(&watchlist(), true).unwrap();
        assert_eq!(matcher.entities("CREDIT-SUISSE shares slump; UBS steps in"), ["Credit Suisse", "UBS"]);
        assert_eq!(matcher.entities("credit suisse's bonds"), ["Credit Suisse"]);
        assert_eq!(matcher.entities("$BAC and $cs fall, $TSLA rises"), ["Bank of America", "Credit Suisse", "$TSLA"]);
        assert_eq!(matcher.entities("B.of.A? No: BofA cuts jobs"), ["Bank of America"]);
        // Whole words only, and amounts are not cashtags.
        assert!(matcher.entities("a subsidiary raised $5 billion, US$3").is_empty());
        assert_eq!(matcher.entities("UBS CS Group deal"), ["Credit Suisse", "UBS"], "adjacent names both count");
    }

    #[test]
    fn unwatched_cashtags_count_only_when_asked() {
        let matcher = EntityMatcher::new(&watchlist(), false).unwrap();
        assert_eq!(matcher.entities("$BAC and $cs fall, $TSLA rises"), ["Bank of America", "Credit Suisse"]);
        let cashtags_only = EntityMatcher::new(&Watchlist::default(), true).unwrap();
        assert_eq!(cashtags_only.entities("UBS and $TSLA"), ["$TSLA"]);
    }

    #[test]
    fn cashtags_are_letters_after_a_boundary() {
        assert_eq!(cashtags("$AAPL, $brk.b and ($msft)."), ["AAPL", "BRK.B", "MSFT"]);
        assert!(cashtags("US$100 $AAPL2 a$b $TOOLONGTICKER $").is_empty());
    }

    #[test]
    fn validation_names_each_bad_entry() {
        let watchlist: Watchlist = toml::from_str(
            r#"
            [[entity]]
            name = "UBS"
            tickers = ["$UBS"]
            [[entity]]
            name = "UBS"
            [[entity]]
            name = "--"
            aliases = ["?"]
            "#,
        )
        .unwrap();
        let problems = watchlist.validate().unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("\"$UBS\"") && problems[1].contains("repeats the name \"UBS\""), "{problems:?}");
    }

    #[test]
    fn the_example_watchlist_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/watchlist.toml");
        let watchlist = Watchlist::load(&path).unwrap();
        assert!(watchlist.entities.len() >= 10);
        let matcher = EntityMatcher::new(&watchlist, true).unwrap();
        assert!(matcher.entities("Fed's Powell says rates stay high").contains(&"Federal Reserve".to_owned()));
    }

    #[test]
    fn ten_thousand_entries_stay_fast() {
        let entities = (0..10_000)
            .map(|index| WatchedEntity {
                name: format!("Issuer {index} Holdings"),
                aliases: vec![format!("Issuer{index}")],
                tickers: vec![format!("I{}", char::from(b'A' + (index % 26) as u8))],
            })
            .collect();
        let matcher = EntityMatcher::new(&Watchlist { entities }, true).unwrap();
        let text = "Issuer 4711 Holdings warns on profit as issuer9999 slides; $IB down";
        let started = std::time::Instant::now();
        for _ in 0..10_000 {
            assert_eq!(matcher.entities(text).len(), 3);
        }
        // 10,000 texts: well under a second even in a test build on a busy machine (about 40 ms here).
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    }
}
