//! Test-only fault injection for `sentmon run`, read once at start from `SENTMON_TEST_FAULT`.
//!
//! The failures supervision exists for (a stage that dies) cannot be caused from outside a real
//! process, and tests must run the real binary against a real broker. So the daemon takes one
//! fault from this variable. It is never set in production; docs/OPERATIONS.md says so. Forms:
//!
//! - `stage_panic:STAGE:FILE`: the named stage's task (`consume`, `batch`, `emit`, `aggregate`,
//!   ...; see [`Stage`]) panics once FILE exists, so the test chooses the moment.

use std::path::PathBuf;

use anyhow::Context;

use crate::supervise::{Stage, StagePanicFault};

pub const ENV_VAR: &str = "SENTMON_TEST_FAULT";

/// The fault the environment asks for, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    pub stage_panic: Option<StagePanicFault>,
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
                Ok(Faults { stage_panic: Some(StagePanicFault { stage, trigger: PathBuf::from(trigger) }) })
            }
            _ => anyhow::bail!("expected stage_panic:STAGE:FILE"),
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
}
