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
    let version = registry.add_copy(&args.bundle)?;
    println!("added {version} to {}", registry.root().display());
    if args.promote {
        registry.promote(&version, "manual")?;
        println!("promoted {version}");
    }
    Ok(())
}

fn promote(args: &ModelsPromoteArgs) -> anyhow::Result<()> {
    let promotion = Registry::open(&args.registry.registry)?.promote(&args.version, "manual")?;
    println!("promoted {} (previous: {})", promotion.version, promotion.previous.as_deref().unwrap_or("none"));
    Ok(())
}
