//! Test-only fault injection for `sentmon run`, read once at start from `SENTMON_TEST_FAULT`.
//!
//! The failures supervision exists for (a stage that dies) cannot be caused from outside a real
//! process, and tests must run the real binary against a real broker. So the daemon takes one
//! fault from this variable. It is never set in production; docs/OPERATIONS.md says so. Forms:
//!
//! - `stage_panic:STAGE:FILE`: the named stage's task (`consume`, `batch`, `emit`, `aggregate`,
//!   ...; see [`Stage`]) panics once FILE exists, so the test chooses the moment.
//! - `inference_panic:MARKER`: the forward pass panics on every batch holding a text that
//!   contains MARKER, as a libtorch error would (tch reports those as panics); other batches
//!   classify normally. A model that fails on some inputs, without a broken bundle.

use std::path::PathBuf;

use anyhow::Context;

use crate::supervise::{Stage, StagePanicFault};

pub const ENV_VAR: &str = "SENTMON_TEST_FAULT";

/// The fault the environment asks for, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    pub stage_panic: Option<StagePanicFault>,
    pub inference_panic: Option<InferencePanicFault>,
}

/// See the module docs: `inference_panic:MARKER`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InferencePanicFault {
    pub marker: String,
}

impl InferencePanicFault {
    /// Panics when one of `texts` contains the marker; called where the forward pass starts.
    pub fn check<'a>(&self, mut texts: impl Iterator<Item = &'a str>) {
        if texts.any(|text| text.contains(&self.marker)) {
            panic!("injected fault (SENTMON_TEST_FAULT): the forward pass fails on this batch");
        }
    }
}

impl Faults {
    /// Reads [`ENV_VAR`]; unset or empty means no fault.
    pub fn from_env() -> anyhow::Result<Faults> {
        match std::env::var(ENV_VAR) {
            Ok(spec) if !spec.is_empty() => Faults::parse(&spec).with_context(|| format!("invalid {ENV_VAR}={spec:?}")),
            _ => Ok(Faults::default()),
        }
    }

    fn parse(spec: &str) -> anyhow::Result<Faults> {
        let stage_names = || Stage::ALL.map(Stage::as_str).join(", ");
        match spec.split_once(':') {
            Some(("stage_panic", rest)) => {
                let (stage, trigger) = rest.split_once(':').context("expected stage_panic:STAGE:FILE")?;
                let stage = Stage::parse(stage)
                    .with_context(|| format!("unknown stage {stage:?}; stages are {}", stage_names()))?;
                anyhow::ensure!(!trigger.is_empty(), "stage_panic needs a trigger file: stage_panic:STAGE:FILE");
                let stage_panic = Some(StagePanicFault { stage, trigger: PathBuf::from(trigger) });
                Ok(Faults { stage_panic, ..Faults::default() })
            }
            Some(("inference_panic", marker)) => {
                anyhow::ensure!(!marker.is_empty(), "inference_panic needs a marker: inference_panic:MARKER");
                let inference_panic = Some(InferencePanicFault { marker: marker.to_owned() });
                Ok(Faults { inference_panic, ..Faults::default() })
            }
            _ => anyhow::bail!("expected stage_panic:STAGE:FILE or inference_panic:MARKER"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stage_panic_and_rejects_what_it_does_not_know() {
        let faults = Faults::parse("stage_panic:aggregate:/tmp/trigger").unwrap();
        let expected = StagePanicFault { stage: Stage::Aggregate, trigger: PathBuf::from("/tmp/trigger") };
        assert_eq!(faults.stage_panic, Some(expected));
        let unknown = Faults::parse("stage_panic:windows:/tmp/x").unwrap_err().to_string();
        assert!(unknown.contains("unknown stage \"windows\"") && unknown.contains("aggregate"), "{unknown}");
        assert!(Faults::parse("stage_panic:emit:").is_err());
        assert!(Faults::parse("explode").is_err());
    }

    #[test]
    fn an_inference_panic_fires_only_on_batches_holding_its_marker() {
        let fault = Faults::parse("inference_panic:POISON").unwrap().inference_panic.unwrap();
        fault.check(["Fed holds rates", "Oil climbs"].into_iter());
        let fired = std::panic::catch_unwind(|| fault.check(["Fed holds rates", "a POISON pill"].into_iter()));
        assert!(fired.is_err());
        assert!(Faults::parse("inference_panic:").is_err());
    }
}
