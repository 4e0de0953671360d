//! `sentmon retrain`: train on `[retrain] data` into the registry, score the candidate and the
//! promoted model on the fixed evaluation set, and promote the candidate only if the gate passes.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};

use crate::cli::{self, DataArgs, RetrainArgs};
use crate::config::Config;
use crate::model::Classifier;
use crate::registry::Registry;
use crate::registry::gate::{self, GateDecision, HeadScores};

/// Written beside each candidate bundle: the gate's decision with both sets of figures.
pub const GATE_FILE: &str = "gate.json";

pub fn run(args: &RetrainArgs) -> anyhow::Result<()> {
    let config = Config::load(Some(&args.config))?;
    let retrain = &config.retrain;
    let config_file = args.config.display();
    ensure!(!retrain.data.is_empty(), "retrain.data is empty in {config_file}: list the labelled archives to train on");
    ensure!(
        !retrain.evaluation_data.is_empty(),
        "retrain.evaluation_data is empty in {config_file}: name the fixed labelled set the gate scores models on"
    );
    let registry = open_registry(&config.model.path)?;
    let promoted = registry.promoted()?;

    let staging = StagingDir(registry.staging_dir()?);
    let train_args = cli::parse_train_options(
        &retrain.data,
        &staging.0,
        retrain.threads,
        retrain.init_from.as_deref(),
        &retrain.train_options,
    )
    .map_err(|error| anyhow::anyhow!("retrain.train_options in {config_file}: {error}"))?;
    tracing::info!(parent = ?promoted, data = ?retrain.data, "retrain: training a candidate");
    super::train::train_bundle(&train_args, promoted.clone())?;
    let candidate = registry.add_staged(&staging.0)?;

    let evaluation_args = DataArgs { paths: retrain.evaluation_data.clone(), strict: false, ..train_args.data };
    let evaluation = super::load_corpus(&evaluation_args)?;
    let score = |version: &str| -> anyhow::Result<HeadScores> {
        let classifier = Classifier::load(&registry.bundle_dir(version))?;
        super::eval::head_scores(&classifier, &evaluation.examples)
            .with_context(|| format!("failed to score {version} on retrain.evaluation_data"))
    };
    let candidate_scores = score(&candidate)?;
    let promoted_scores = match &promoted {
        Some(version) => Some((version.as_str(), score(version)?)),
        None => None,
    };
    let evaluation_files = evaluation.files.iter().map(|path| path.display().to_string()).collect();
    let decision =
        gate::decide(&candidate, candidate_scores, promoted_scores, retrain.max_macro_f1_drop, evaluation_files);
    write_decision(&registry.bundle_dir(&candidate), &decision)?;
    report(&decision);
    if decision.passed {
        registry.promote(&candidate, "retrain: gate passed")?;
        println!("promoted {candidate} (previous: {})", promoted.as_deref().unwrap_or("none"));
    } else {
        println!(
            "kept {}: candidate {candidate} stays in the registry unpromoted",
            promoted.as_deref().unwrap_or("none")
        );
    }
    Ok(())
}

/// The registry `[model] path` names, created if the path does not exist yet; a single bundle
/// directory there is refused with the way to turn it into a registry.
fn open_registry(model_path: &Path) -> anyhow::Result<Registry> {
    if model_path.join(crate::model::bundle::MANIFEST_FILE).is_file() {
        bail!(
            "model.path = {} is a single bundle, not a registry; retrain promotes into a registry: run \
             `sentmon models add {} --registry REGISTRY_DIR --promote` and set model.path = REGISTRY_DIR",
            model_path.display(),
            model_path.display()
        );
    }
    Registry::open_or_create(model_path)
}

fn write_decision(bundle_dir: &Path, decision: &GateDecision) -> anyhow::Result<()> {
    let path = bundle_dir.join(GATE_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(decision)? + "\n")
        .with_context(|| format!("failed to write {}", path.display()))
}

fn report(decision: &GateDecision) {
    let outcome = if decision.passed { "passed" } else { "failed" };
    let figures = serde_json::json!({ "candidate": decision.candidate, "promoted": decision.promoted });
    if decision.passed {
        tracing::info!(candidate = %decision.candidate_version, promoted = ?decision.promoted_version, %figures, "quality gate {outcome}");
    } else {
        tracing::warn!(candidate = %decision.candidate_version, promoted = ?decision.promoted_version, %figures, "quality gate {outcome}");
    }
    for reason in &decision.reasons {
        eprintln!("gate: {reason}");
    }
}

/// Removes a half-written candidate if training fails (the registry lists only complete versions
/// either way; this keeps the directory tidy). Once `add_staged` has moved the bundle into place
/// the path no longer exists and the removal does nothing.
struct StagingDir(PathBuf);

impl Drop for StagingDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
