//! The `[entities]` section of the daemon config: the watchlist and cashtag tracking, with its
//! defaults, docs and checks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::ConfigIssue;

/// `[entities]`: windows, spike detection and metrics per entity as well as per topic, so one story scattered over
/// many topics still surges on its name. Off unless a watchlist is given or `cashtags` is on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EntitiesConfig {
    /// Watchlist file of names, aliases and tickers (`[[entity]]` tables, see `examples/watchlist.toml`); read at
    /// start. Each watched entity gets its own Prometheus series. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watchlist: Option<PathBuf>,
    /// Track every cashtag (`$AAPL`) as an entity too, watched or not. Default false.
    pub cashtags: bool,
    /// Cashtags outside the watchlist that get Prometheus series of their own: the most mentioned in the detection
    /// view at each bucket close; the others share the series of entity `__other__`. Count, at most
    /// [`MAX_TOP_CASHTAGS`]. Default 10.
    pub top_cashtags: usize,
}

/// Bound on `entities.top_cashtags`: the entity series a replica exports are the watchlist, this many cashtags and
/// `__other__`, whatever the stream mentions.
pub const MAX_TOP_CASHTAGS: usize = 100;

impl Default for EntitiesConfig {
    fn default() -> Self {
        Self { watchlist: None, cashtags: false, top_cashtags: 10 }
    }
}

impl EntitiesConfig {
    /// Checks the entity settings and reads the watchlist, so `check-config` fails on a watchlist `run` would refuse.
    pub(crate) fn check(&self, issues: &mut Vec<ConfigIssue>) {
        let entities = self;
        if entities.top_cashtags > MAX_TOP_CASHTAGS {
            let requirement = format!("must be at most {MAX_TOP_CASHTAGS}: each one is a Prometheus series per view");
            issues.push(ConfigIssue::new("entities.top_cashtags", entities.top_cashtags, requirement));
        }
        match &entities.watchlist {
            Some(path) if path.as_os_str().is_empty() => issues.push(ConfigIssue::new(
                "entities.watchlist",
                "",
                "must not be empty: give a watchlist file, or leave the key out",
            )),
            Some(path) => {
                if let Err(error) = crate::entity::Watchlist::load(path) {
                    let requirement = format!("{error:#} (see examples/watchlist.toml for the format)");
                    issues.push(ConfigIssue::new("entities.watchlist", path, requirement));
                }
            }
            None => {}
        }
    }

    /// Whether any entity is tracked.
    pub fn enabled(&self) -> bool {
        self.watchlist.is_some() || self.cashtags
    }

    /// The matcher of the configured watchlist (an empty one when only cashtags are tracked); `None` when entity
    /// tracking is off. Reads the watchlist file.
    pub fn matcher(&self) -> anyhow::Result<Option<crate::entity::EntityMatcher>> {
        if !self.enabled() {
            return Ok(None);
        }
        let watchlist = match &self.watchlist {
            Some(path) => crate::entity::Watchlist::load(path)?,
            None => crate::entity::Watchlist::default(),
        };
        crate::entity::EntityMatcher::new(&watchlist, self.cashtags).map(Some)
    }
}
