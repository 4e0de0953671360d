//! Backtesting: the daemon's own window store and spike detector run over a recorded stream in event time, as fast
//! as the messages can be read, recording every alert that would have fired (and when it would have resolved), each
//! scope's timeline of closes, and alerts per week per scope, so thresholds can be tuned before deploying. Scopes
//! are topics and, with a watchlist ([`crate::entity`]), the entities and cashtags the messages name: those get a
//! window store and detector of their own, with the same settings, so one story scattered over many topics still
//! surges on its name.
//!
//! Pure, like the windows and the detector it drives: the caller reads and classifies the messages
//! (`sentmon backtest`, in `src/commands/backtest.rs`) and hands them over in file order; [`html`] renders the report.
//!
//! Event time drives everything. The wall clock the window store takes is the highest event time seen so far, so a
//! bucket closes once the stream has moved `allowed_lateness` past its end, exactly as on a live stream that keeps
//! up; a message older than that is late, counted and left out, as the daemon would. A recorded stream should
//! therefore be in roughly event-time order (the stream archive is). Nothing is closed after the last message: the
//! last, partial bucket is not judged, and an alert still firing at the end is reported without a resolution.

pub mod html;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::alert::{AlertEvent, AlertKind, AlertScope, DetectorConfig, DetectorKind, SpikeDetector};
use crate::entity::EntityMatcher;
use crate::window::{ALL_TOPICS, ClosedBucket, Observation, ObserveOutcome, WindowConfig, WindowStore};

/// One week, the unit operators budget alerts in.
const WEEK_MS: i64 = 7 * 24 * 3_600_000;

/// One close of a topic's detection view, for the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// End of the closed bucket (and of the view), ms since the Unix epoch.
    pub end_ms: i64,
    /// Negative share of the view; `None` when it was empty.
    pub negative_rate: Option<f64>,
    pub negative_count: u64,
    pub total_count: u64,
    /// The rate baseline's mean; `None` before its first update.
    pub baseline_rate: Option<f64>,
    /// Negatives the count baseline expects in the view; `None` before its first update.
    pub expected_negative_count: Option<f64>,
}

/// An alert that would have fired: its firing event and, unless the stream ended first, its resolution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestAlert {
    pub scope: AlertScope,
    pub detector: DetectorKind,
    pub fired_at: String,
    pub fired_at_ms: i64,
    /// `None` when the alert was still firing at the end of the stream.
    pub resolved_at: Option<String>,
    pub resolved_at_ms: Option<i64>,
    /// The firing event's one-line summary.
    pub summary: String,
    pub firing: AlertEvent,
    pub resolution: Option<AlertEvent>,
}

/// Alerts of one scope over the stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScopeAlertRate {
    pub scope: AlertScope,
    pub alerts: u64,
    pub rate_alerts: u64,
    pub volume_alerts: u64,
    /// `alerts` divided by the stream's span in weeks; `None` for a stream without span.
    pub alerts_per_week: Option<f64>,
}

/// What a backtest found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestReport {
    /// Messages counted in the windows.
    pub messages: u64,
    /// Messages whose bucket had already closed when they came (the stream was out of event-time order by more than
    /// the allowed lateness); left out, as the daemon leaves them out.
    pub late_messages: u64,
    pub first_event_ms: Option<i64>,
    pub last_event_ms: Option<i64>,
    /// The stream's span, first to last event, in weeks.
    pub weeks: f64,
    /// Every alert, in firing order.
    pub alerts: Vec<BacktestAlert>,
    /// Scopes with at least one alert, most alerts first.
    pub alerts_per_week: Vec<ScopeAlertRate>,
    /// Closes of every scope that alerted, oldest first, keyed by [`scope_key`].
    pub timelines: BTreeMap<String, Vec<TimelinePoint>>,
}

/// One kind of scope's windows and detector (topics, or watched entities), and what they produced.
struct ScopeRun {
    store: WindowStore,
    detector: SpikeDetector,
    bucket_width_ms: i64,
    /// Event time from which the next call to the store's `advance` can close a bucket.
    next_close_check_ms: i64,
    timelines: BTreeMap<String, Vec<TimelinePoint>>,
    alerts: Vec<BacktestAlert>,
    /// Index in `alerts` of each scope's alert still firing.
    firing: BTreeMap<String, usize>,
}

impl ScopeRun {
    fn new(window: &WindowConfig, detector: SpikeDetector) -> Result<Self, Vec<String>> {
        Ok(Self {
            bucket_width_ms: window.bucket_width_ms,
            store: WindowStore::new(window.clone())?,
            detector,
            next_close_check_ms: i64::MIN,
            timelines: BTreeMap::new(),
            alerts: Vec::new(),
            firing: BTreeMap::new(),
        })
    }

    /// Counts one message at `now_ms` (the highest event time so far) and closes every bucket that lets close.
    fn observe(&mut self, observation: &Observation, now_ms: i64, model_version: &str) -> ObserveOutcome {
        let outcome = self.store.observe(observation, now_ms);
        // Asking the store to close only once event time has entered a new bucket keeps the cost per message at one
        // comparison; nothing can close in between.
        if now_ms >= self.next_close_check_ms {
            for bucket in self.store.advance(now_ms) {
                self.on_closed_bucket(&bucket, model_version);
            }
            self.next_close_check_ms = now_ms - now_ms.rem_euclid(self.bucket_width_ms) + self.bucket_width_ms;
        }
        outcome
    }

    fn on_closed_bucket(&mut self, bucket: &ClosedBucket, model_version: &str) {
        let event = self.detector.on_closed_bucket(bucket, model_version);
        if bucket.topic == ALL_TOPICS {
            return;
        }
        if let (Some(view), Some(state)) =
            (bucket.view(self.detector.config().view_width_ms), self.detector.state(&bucket.topic))
        {
            self.timelines.entry(bucket.topic.clone()).or_default().push(TimelinePoint {
                end_ms: bucket.bucket_end_ms,
                negative_rate: (view.counts.total > 0).then(|| view.counts.negative_rate()),
                negative_count: view.counts.negative,
                total_count: view.counts.total,
                baseline_rate: (state.baseline_updates > 0).then_some(state.baseline_mean),
                expected_negative_count: state.expected_negative_count,
            });
        }
        let Some(event) = event else {
            return;
        };
        match event.kind {
            AlertKind::Firing => {
                self.firing.insert(bucket.topic.clone(), self.alerts.len());
                self.alerts.push(BacktestAlert {
                    scope: event.scope.clone(),
                    detector: event.detector,
                    fired_at: event_time_text(event.at_ms),
                    fired_at_ms: event.at_ms,
                    resolved_at: None,
                    resolved_at_ms: None,
                    summary: event.summary(),
                    firing: event,
                    resolution: None,
                });
            }
            AlertKind::Resolved => {
                if let Some(alert) = self.firing.remove(&bucket.topic).and_then(|index| self.alerts.get_mut(index)) {
                    alert.resolved_at = Some(event_time_text(event.at_ms));
                    alert.resolved_at_ms = Some(event.at_ms);
                    alert.resolution = Some(event);
                }
            }
        }
    }
}

/// A backtest in progress: feed it messages in file order, then [`Backtest::finish`].
pub struct Backtest {
    topics: ScopeRun,
    /// Watched entities and cashtags, when a watchlist was given: their own windows and detector, keyed by entity.
    entities: Option<(EntityMatcher, ScopeRun)>,
    model_version: String,
    highest_event_ms: Option<i64>,
    first_event_ms: Option<i64>,
    messages: u64,
    late_messages: u64,
}

impl Backtest {
    /// Builds the daemon's window store and detector from these settings, or returns every problem with them.
    /// With a matcher, entities get windows and a detector of their own, with the same settings.
    pub fn new(
        window: WindowConfig,
        detector: DetectorConfig,
        entities: Option<EntityMatcher>,
    ) -> Result<Self, Vec<String>> {
        let mut problems = window.validate().err().unwrap_or_default();
        problems.extend(detector.validate_with_window(&window).err().unwrap_or_default());
        if !problems.is_empty() {
            return Err(problems);
        }
        let entities = match entities {
            Some(matcher) => Some((matcher, ScopeRun::new(&window, SpikeDetector::for_entities(detector.clone())?)?)),
            None => None,
        };
        Ok(Self {
            topics: ScopeRun::new(&window, SpikeDetector::new(detector)?)?,
            entities,
            model_version: String::new(),
            highest_event_ms: None,
            first_event_ms: None,
            messages: 0,
            late_messages: 0,
        })
    }

    /// The model version stamped on the alerts that follow (the archive's, or the bundle that classified).
    pub fn set_model_version(&mut self, model_version: &str) {
        if self.model_version != model_version {
            model_version.clone_into(&mut self.model_version);
        }
    }

    pub fn messages(&self) -> u64 {
        self.messages
    }

    pub fn alert_count(&self) -> usize {
        self.topics.alerts.len() + self.entities.as_ref().map_or(0, |(_, run)| run.alerts.len())
    }

    /// Counts one message, under its topic and under each entity it names, and closes every bucket its event time
    /// lets close.
    pub fn observe(&mut self, observation: &Observation) {
        let now_ms =
            self.highest_event_ms.map_or(observation.event_time_ms, |highest| highest.max(observation.event_time_ms));
        self.highest_event_ms = Some(now_ms);
        self.first_event_ms.get_or_insert(observation.event_time_ms);
        match self.topics.observe(observation, now_ms, &self.model_version) {
            ObserveOutcome::Counted => self.messages += 1,
            ObserveOutcome::Late => self.late_messages += 1,
        }
        if let Some((matcher, run)) = &mut self.entities {
            for entity in matcher.entities(&observation.example.text) {
                let mentioned = Observation { topic: entity, ..observation.clone() };
                // Lateness is the same decision as for the topic, already counted there.
                let _ = run.observe(&mentioned, now_ms, &self.model_version);
            }
        }
    }

    /// The report: every alert, alerts per week per scope, and the timelines of the scopes that alerted.
    pub fn finish(self) -> BacktestReport {
        let span_ms = match (self.first_event_ms, self.highest_event_ms) {
            (Some(first), Some(last)) => last - first,
            _ => 0,
        };
        let weeks = span_ms as f64 / WEEK_MS as f64;
        let mut alerts = Vec::new();
        let mut timelines = BTreeMap::new();
        for run in std::iter::once(self.topics).chain(self.entities.map(|(_, run)| run)) {
            for (name, points) in run.timelines {
                if let Some(alert) = run.alerts.iter().find(|alert| alert.scope.name() == name) {
                    timelines.insert(scope_key(&alert.scope), points);
                }
            }
            alerts.extend(run.alerts);
        }
        alerts.sort_by_key(|alert| alert.fired_at_ms);
        let mut per_scope: BTreeMap<String, ScopeAlertRate> = BTreeMap::new();
        for alert in &alerts {
            let rate = per_scope.entry(scope_key(&alert.scope)).or_insert_with(|| ScopeAlertRate {
                scope: alert.scope.clone(),
                alerts: 0,
                rate_alerts: 0,
                volume_alerts: 0,
                alerts_per_week: None,
            });
            rate.alerts += 1;
            match alert.detector {
                DetectorKind::Rate => rate.rate_alerts += 1,
                DetectorKind::Volume => rate.volume_alerts += 1,
            }
        }
        let mut alerts_per_week: Vec<ScopeAlertRate> = per_scope
            .into_values()
            .map(|rate| ScopeAlertRate { alerts_per_week: (weeks > 0.0).then(|| rate.alerts as f64 / weeks), ..rate })
            .collect();
        alerts_per_week
            .sort_by(|a, b| b.alerts.cmp(&a.alerts).then_with(|| scope_key(&a.scope).cmp(&scope_key(&b.scope))));
        BacktestReport {
            messages: self.messages,
            late_messages: self.late_messages,
            first_event_ms: self.first_event_ms,
            last_event_ms: self.highest_event_ms,
            weeks,
            alerts,
            alerts_per_week,
            timelines,
        }
    }
}

/// The key of a scope's timeline in the report: its kind and name, e.g. `topic Markets` or `entity UBS`.
pub fn scope_key(scope: &AlertScope) -> String {
    format!("{} {}", scope.kind(), scope.name())
}

/// RFC 3339 in UTC with milliseconds, as alert events write times.
pub fn event_time_text(time_ms: i64) -> String {
    crate::alert::format_rfc3339_ms(time_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::{ExampleText, Sentiment};

    const MINUTE_MS: i64 = 60_000;

    fn observation(topic: &str, minute_ms: i64, index: u64, negative: bool) -> Observation {
        Observation {
            source: "backtest".to_owned(),
            topic: topic.to_owned(),
            event_time_ms: minute_ms + (index as i64 * 997) % MINUTE_MS,
            sentiment: if negative { Sentiment::Negative } else { Sentiment::Neutral },
            negative_probability: if negative { 0.9 } else { 0.1 },
            example: ExampleText { id: None, text: format!("{topic} message {index}") },
        }
    }

    /// Two topics for four hours at 40 messages a minute, 15% negative; "Banks" gets ten times the messages (same
    /// share) in minutes 120-129.
    fn run(minutes: i64) -> BacktestReport {
        run_with(minutes, None, |topic, minute| {
            (topic == "Banks" && (120..130).contains(&minute)).then_some((360, "Banks news"))
        })
    }

    /// As [`run`], with a watchlist and extra messages per minute from `extra(topic, minute)`.
    fn run_with(
        minutes: i64,
        matcher: Option<EntityMatcher>,
        extra: impl Fn(&str, i64) -> Option<(u64, &'static str)>,
    ) -> BacktestReport {
        // 30 s of allowed lateness, which these tests' event times are laid out for.
        let window = WindowConfig { allowed_lateness_ms: 30_000, ..WindowConfig::default() };
        let mut backtest = Backtest::new(window, DetectorConfig::default(), matcher).unwrap();
        backtest.set_model_version("test-model");
        let start_ms = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE_MS;
        for minute in 0..minutes {
            let minute_ms = start_ms + minute * MINUTE_MS;
            for topic in ["Banks", "Earnings"] {
                let mut messages: Vec<Observation> =
                    (0..40).map(|index| observation(topic, minute_ms, index, index % 20 < 3)).collect();
                if let Some((count, text)) = extra(topic, minute) {
                    messages.extend((0..count).map(|index| {
                        // Negative at the same 15% share, but none of a lone extra message.
                        let mut extra_message = observation(topic, minute_ms, 1_000 + index, (index + 3) % 20 < 3);
                        extra_message.example.text = format!("{text} {index}");
                        extra_message
                    }));
                }
                messages.sort_by_key(|message| message.event_time_ms);
                for message in &messages {
                    backtest.observe(message);
                }
            }
        }
        backtest.finish()
    }

    #[test]
    fn a_volume_surge_is_reported_with_its_resolution_and_timeline() {
        let report = run(240);
        assert_eq!(report.late_messages, 0);
        assert_eq!(report.messages, 2 * 40 * 240 + 360 * 10);
        assert_eq!(report.alerts.len(), 1, "{:#?}", report.alerts);
        let alert = &report.alerts[0];
        assert_eq!((&alert.scope, alert.detector), (&AlertScope::Topic("Banks".to_owned()), DetectorKind::Volume));
        let start_ms = report.first_event_ms.unwrap() - report.first_event_ms.unwrap() % MINUTE_MS;
        let fired_minute = (alert.fired_at_ms - start_ms) / MINUTE_MS;
        assert!((121..=123).contains(&fired_minute), "fired at minute {fired_minute}");
        let resolved_minute = (alert.resolved_at_ms.unwrap() - start_ms) / MINUTE_MS;
        assert!((131..=140).contains(&resolved_minute), "resolved at minute {resolved_minute}");
        assert_eq!(alert.firing.model_version, "test-model");
        assert_eq!(report.alerts_per_week.len(), 1);
        let weeks = report.weeks;
        assert!((weeks - 240.0 / (7.0 * 24.0 * 60.0)).abs() < 1e-3, "{weeks}");
        assert!((report.alerts_per_week[0].alerts_per_week.unwrap() - 1.0 / weeks).abs() < 1e-9);
        // Only the scope that alerted has a timeline, one point per closed minute.
        assert_eq!(report.timelines.keys().collect::<Vec<_>>(), ["topic Banks"]);
        let timeline = &report.timelines["topic Banks"];
        assert!(timeline.len() >= 238 && timeline.windows(2).all(|pair| pair[1].end_ms - pair[0].end_ms == MINUTE_MS));
        let peak = timeline.iter().map(|point| point.negative_count).max().unwrap();
        assert_eq!(peak, 5 * 60, "a 5-minute view inside the surge holds 5 x 60 negatives");
    }

    /// Issue 13: one bank's story scattered over topics moved no topic enough to alert. Here "Acme Bank" goes from
    /// one neutral mention a minute on each of two topics to 30 (a 1.75x rise per topic, at 10% negative, under
    /// the topics' 15%): only the entity alerts, on its volume.
    #[test]
    fn a_story_scattered_over_topics_alerts_on_its_entity() {
        let watchlist: crate::entity::Watchlist =
            toml::from_str("[[entity]]\nname = \"Acme Bank\"\ntickers = [\"ACME\"]\n").unwrap();
        let matcher = EntityMatcher::new(&watchlist, true).unwrap();
        let report = run_with(240, Some(matcher), |topic, minute| match topic {
            "Banks" | "Earnings" if (120..130).contains(&minute) => Some((30, "ACME BANK: losses widen, $ACME")),
            "Banks" | "Earnings" => Some((1, "Acme Bank's results")),
            _ => None,
        });
        let scopes: Vec<(&AlertScope, DetectorKind)> =
            report.alerts.iter().map(|alert| (&alert.scope, alert.detector)).collect();
        assert_eq!(
            scopes,
            [(&AlertScope::Entity("Acme Bank".to_owned()), DetectorKind::Volume)],
            "{:#?}",
            report.alerts
        );
        assert!(report.alerts[0].summary.starts_with("negative volume surge on entity Acme Bank: "));
        assert_eq!(report.timelines.keys().collect::<Vec<_>>(), ["entity Acme Bank"]);
        // Each message is counted once, under its topic; mentions add no messages.
        assert_eq!(report.messages, 2 * 40 * 240 + 2 * 230 + 2 * 30 * 10);
    }

    #[test]
    fn an_alert_firing_at_the_end_has_no_resolution() {
        let report = run(125);
        assert_eq!(report.alerts.len(), 1);
        assert_eq!((report.alerts[0].resolved_at.as_ref(), report.alerts[0].resolution.as_ref()), (None, None));
    }

    #[test]
    fn invalid_settings_are_all_reported() {
        let detector = DetectorConfig { view_width_ms: 120_000, z_threshold: -1.0, ..DetectorConfig::default() };
        let problems = Backtest::new(WindowConfig::default(), detector, None).err().unwrap();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("z_threshold = -1") && problems[2].starts_with("view_width_ms = 120000"));
    }
}
