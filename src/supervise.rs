//! Supervision of the daemon's long-lived tasks ("stages"): each runs in one `JoinSet` under its
//! name, so the app can wait for the first to exit alongside the shutdown signal.
//!
//! Before shutdown no stage ends on its own: the consumer polls, the batcher and emit wait on
//! their queues, the timers tick. So any exit then, a return, an error or a panic, is a failure,
//! and the process must go down loudly (not ready, `/healthz` failing with the stage's name, a
//! drain, exit [`EXIT_CODE_STAGE_FAILED`]) for systemd or Kubernetes to restart it. Without this a
//! dead stage left the others running or stopping quietly while every probe stayed green.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio::task::{Id, JoinSet};

/// Exit status of `sentmon run` after a stage failed (sysexits' `EX_SOFTWARE`: an internal
/// error). Distinct from 1 (start-up errors) and 64 (config) so an operator can tell a crash of a
/// running daemon from a daemon that never started; systemd and Kubernetes restart on it.
pub const EXIT_CODE_STAGE_FAILED: u8 = 70;

/// How often a stage-panic fault looks for its trigger file (tests only; see [`StagePanicFault`]).
const FAULT_TRIGGER_POLL: Duration = Duration::from_millis(100);

/// The daemon's long-lived tasks, named as `/healthz`, the log and
/// `sentmon_stage_failures_total{stage}` name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Http,
    Consume,
    Batch,
    Emit,
    Aggregate,
    AlertPublish,
    BrokerCheck,
    Reload,
    Retrain,
}

impl Stage {
    /// Every stage, so the failure counter can start at 0 for each.
    pub const ALL: [Stage; 9] = [
        Stage::Http,
        Stage::Consume,
        Stage::Batch,
        Stage::Emit,
        Stage::Aggregate,
        Stage::AlertPublish,
        Stage::BrokerCheck,
        Stage::Reload,
        Stage::Retrain,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Http => "http",
            Stage::Consume => "consume",
            Stage::Batch => "batch",
            Stage::Emit => "emit",
            Stage::Aggregate => "aggregate",
            Stage::AlertPublish => "alert_publish",
            Stage::BrokerCheck => "broker_check",
            Stage::Reload => "reload",
            Stage::Retrain => "retrain",
        }
    }

    pub fn parse(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|stage| stage.as_str() == name)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A stage that ended when it should not have, and why. As an error out of `app::run` it makes
/// the process exit [`EXIT_CODE_STAGE_FAILED`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stage {stage} failed: {cause}")]
pub struct StageFailure {
    pub stage: Stage,
    pub cause: String,
}

/// How one stage ended.
#[derive(Debug)]
pub struct StageExit {
    pub stage: Stage,
    /// `Err` with the cause when the stage returned an error or panicked.
    pub outcome: Result<(), String>,
}

impl StageExit {
    /// The failure this exit is when it happens before shutdown, where even a clean return is one.
    pub fn unexpected(self) -> StageFailure {
        let cause = match self.outcome {
            Ok(()) => "it stopped before shutdown".to_owned(),
            Err(cause) => cause,
        };
        StageFailure { stage: self.stage, cause }
    }

    /// The failure this exit is during a drain, where stages are expected to return.
    pub fn failure(self) -> Option<StageFailure> {
        self.outcome.err().map(|cause| StageFailure { stage: self.stage, cause })
    }
}

/// Test-only (`SENTMON_TEST_FAULT`, see `crate::faults`): the named stage's task panics once the
/// trigger file exists, as a bug in it would, so tests can kill a stage of a real process at a
/// moment they choose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagePanicFault {
    pub stage: Stage,
    pub trigger: PathBuf,
}

/// The supervised set of stages.
#[derive(Default)]
pub struct Stages {
    tasks: JoinSet<anyhow::Result<()>>,
    names: HashMap<Id, Stage>,
    running: Vec<Stage>,
    fault: Option<StagePanicFault>,
}

impl Stages {
    pub fn new(fault: Option<StagePanicFault>) -> Stages {
        Stages { fault, ..Stages::default() }
    }

    /// Runs `future` as `stage` on the runtime.
    pub fn spawn<F>(&mut self, stage: Stage, future: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let handle = match self.fault.clone().filter(|fault| fault.stage == stage) {
            Some(fault) => self.tasks.spawn(async move {
                tokio::select! {
                    result = future => result,
                    () = file_appears(fault.trigger) => panic!("injected fault (SENTMON_TEST_FAULT): stage {stage} panics"),
                }
            }),
            None => self.tasks.spawn(future),
        };
        self.names.insert(handle.id(), stage);
        self.running.push(stage);
    }

    /// Waits for the next stage to exit; pending for ever when none is running (so it can sit in a
    /// `select!` beside the shutdown signal).
    pub async fn next_exit(&mut self) -> StageExit {
        let Some(joined) = self.tasks.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (id, outcome) = match joined {
            Ok((id, Ok(()))) => (id, Ok(())),
            Ok((id, Err(error))) => (id, Err(format!("{error:#}"))),
            Err(error) if error.is_panic() => {
                let id = error.id();
                (id, Err(format!("panicked: {}", panic_message(&*error.into_panic()))))
            }
            Err(error) => (error.id(), Err(format!("cancelled: {error}"))),
        };
        let stage = self.names.remove(&id).expect("every task of the set was spawned by Stages::spawn");
        self.running.retain(|running| *running != stage);
        StageExit { stage, outcome }
    }

    /// Waits until none of `stages` is running any more (a stage never spawned counts as ended)
    /// and returns every exit seen meanwhile, of these stages or others.
    pub async fn wait_for(&mut self, stages: &[Stage]) -> Vec<StageExit> {
        let mut exits = Vec::new();
        while self.running.iter().any(|running| stages.contains(running)) {
            exits.push(self.next_exit().await);
        }
        exits
    }
}

/// The text of a panic's payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}

async fn file_appears(path: PathBuf) {
    while !path.exists() {
        tokio::time::sleep(FAULT_TRIGGER_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_stage_is_reported_with_its_name_and_message() {
        let mut stages = Stages::new(None);
        stages.spawn(Stage::Emit, std::future::pending());
        stages.spawn(Stage::Aggregate, async { panic!("window store exploded") });
        let failure = stages.next_exit().await.unexpected();
        assert_eq!(failure.stage, Stage::Aggregate);
        assert_eq!(failure.cause, "panicked: window store exploded");
        assert_eq!(failure.to_string(), "stage aggregate failed: panicked: window store exploded");
    }

    #[tokio::test]
    async fn an_error_or_a_clean_return_before_shutdown_is_a_failure() {
        let mut stages = Stages::new(None);
        stages.spawn(Stage::Batch, async { Err(anyhow::anyhow!("every inference worker has stopped")) });
        let failure = stages.next_exit().await.unexpected();
        assert_eq!((failure.stage, failure.cause.as_str()), (Stage::Batch, "every inference worker has stopped"));
        stages.spawn(Stage::Reload, async { Ok(()) });
        let failure = stages.next_exit().await.unexpected();
        assert_eq!((failure.stage, failure.cause.as_str()), (Stage::Reload, "it stopped before shutdown"));
    }

    #[tokio::test]
    async fn wait_for_returns_once_the_named_stages_are_done_and_leaves_the_others() {
        let mut stages = Stages::new(None);
        stages.spawn(Stage::Http, std::future::pending());
        stages.spawn(Stage::Consume, async { Ok(()) });
        stages.spawn(Stage::Emit, async { Err(anyhow::anyhow!("broken")) });
        let exits = stages.wait_for(&[Stage::Consume, Stage::Emit, Stage::Retrain]).await;
        let failures: Vec<StageFailure> = exits.into_iter().filter_map(StageExit::failure).collect();
        assert_eq!(failures, vec![StageFailure { stage: Stage::Emit, cause: "broken".to_owned() }]);
        assert_eq!(stages.running, vec![Stage::Http]);
    }

    #[tokio::test]
    async fn a_stage_panic_fault_fires_when_its_trigger_file_appears() {
        let directory = tempfile::tempdir().unwrap();
        let trigger = directory.path().join("kill-aggregate");
        let mut stages = Stages::new(Some(StagePanicFault { stage: Stage::Aggregate, trigger: trigger.clone() }));
        stages.spawn(Stage::Aggregate, std::future::pending());
        stages.spawn(Stage::Emit, std::future::pending());
        let early = tokio::time::timeout(Duration::from_millis(300), stages.next_exit()).await;
        assert!(early.is_err(), "no stage may fail before the trigger exists");
        std::fs::write(&trigger, "").unwrap();
        let failure = stages.next_exit().await.unexpected();
        assert_eq!(failure.stage, Stage::Aggregate);
        assert!(failure.cause.contains("injected fault"), "{}", failure.cause);
    }
}
