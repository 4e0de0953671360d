//! `sentmon models list | add | promote | rollback`: the operator's view of the model registry.

use crate::cli::{ModelsAddArgs, ModelsCommand, ModelsPromoteArgs, RegistryArgs};
use crate::registry::{Registry, VersionEntry};

pub fn run(command: &ModelsCommand) -> anyhow::Result<()> {
    match command {
        ModelsCommand::List(args) => list(args),
        ModelsCommand::Add(args) => add(args),
        ModelsCommand::Promote(args) => promote(args),
        ModelsCommand::Rollback(args) => {
            let promotion = Registry::open(&args.registry)?.rollback()?;
            println!("promoted {} (rolled back from {})", promotion.version, promotion.previous.unwrap_or_default());
            Ok(())
        }
    }
}

fn list(args: &RegistryArgs) -> anyhow::Result<()> {
    let versions = Registry::open(&args.registry)?.versions()?;
    if versions.is_empty() {
        println!("no versions in {}", args.registry.display());
        return Ok(());
    }
    println!("  {:<26} {:<21} {:<26} {:>9} {:>9}  data", "version", "created", "parent", "topic F1", "sent. F1");
    for entry in &versions {
        println!("{}", format_entry(entry));
    }
    println!("(* promoted; F1 = validation macro-F1 recorded at training)");
    Ok(())
}

fn format_entry(entry: &VersionEntry) -> String {
    let f1 = |report: &Option<crate::evaluation::EvaluationReport>| {
        report.as_ref().map_or("-".to_string(), |report| format!("{:.4}", report.macro_f1))
    };
    let manifest = &entry.manifest;
    format!(
        "{} {:<26} {:<21} {:<26} {:>9} {:>9}  {}",
        if entry.promoted { "*" } else { " " },
        entry.version,
        manifest.created_at,
        manifest.parent_version.as_deref().unwrap_or("-"),
        f1(&manifest.validation.topic),
        f1(&manifest.validation.sentiment),
        &manifest.training.data_digest.get(..12).unwrap_or(&manifest.training.data_digest),
    )
}

fn add(args: &ModelsAddArgs) -> anyhow::Result<()> {
    let registry = Registry::open_or_create(&args.registry.registry)?;
    if args.if_absent {
        return seed(&registry, &args.bundle);
    }
    let version = registry.add_copy(&args.bundle)?;
    println!("added {version} to {}", registry.root().display());
    if args.promote {
        registry.promote(&version, "manual")?;
        println!("promoted {version}");
    }
    Ok(())
}

/// `add --promote --if-absent`: makes sure the registry serves something, and changes nothing
/// once it does. Several replicas may seed one shared volume at once, so a version that another
/// seeder added meanwhile counts as added.
fn seed(registry: &Registry, bundle: &std::path::Path) -> anyhow::Result<()> {
    if let Some(promoted) = registry.promoted()? {
        println!("{} already serves {promoted}; nothing to do", registry.root().display());
        return Ok(());
    }
    let version = crate::model::bundle::read_manifest(bundle)?.version;
    if registry.bundle_dir(&version).exists() {
        println!("{version} is already in {}", registry.root().display());
    } else if let Err(error) = registry.add_copy(bundle) {
        if !registry.bundle_dir(&version).exists() {
            return Err(error);
        }
    } else {
        println!("added {version} to {}", registry.root().display());
    }
    registry.promote(&version, "seed")?;
    println!("promoted {version}");
    Ok(())
}

fn promote(args: &ModelsPromoteArgs) -> anyhow::Result<()> {
    let promotion = Registry::open(&args.registry.registry)?.promote(&args.version, "manual")?;
    println!("promoted {} (previous: {})", promotion.version, promotion.previous.as_deref().unwrap_or("none"));
    Ok(())
}
