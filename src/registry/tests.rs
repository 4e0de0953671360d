use std::path::Path;

use super::*;

const SHIPPED_BUNDLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default");

/// Stages a bundle holding only a manifest (registry operations never read weights) with the
/// shipped manifest's contents under a new version.
fn stage_manifest_only_bundle(registry: &Registry, version: &str, created_at: &str) -> PathBuf {
    let mut manifest = bundle::read_manifest(Path::new(SHIPPED_BUNDLE)).unwrap();
    manifest.version = version.to_string();
    manifest.created_at = created_at.to_string();
    let staged = registry.staging_dir().unwrap();
    std::fs::write(staged.join(bundle::MANIFEST_FILE), serde_json::to_string(&manifest).unwrap()).unwrap();
    staged
}

fn registry_with(versions: &[&str]) -> (tempfile::TempDir, Registry) {
    let scratch = tempfile::tempdir().unwrap();
    let registry = Registry::open_or_create(&scratch.path().join("registry")).unwrap();
    for (index, version) in versions.iter().enumerate() {
        let staged = stage_manifest_only_bundle(&registry, version, &format!("2026-11-2{index}T00:00:00Z"));
        assert_eq!(registry.add_staged(&staged).unwrap(), *version);
    }
    (scratch, registry)
}

#[test]
fn promote_moves_the_pointer_and_rollback_returns_to_the_previous_version() {
    let (_scratch, registry) = registry_with(&["v1", "v2", "v3"]);
    assert_eq!(registry.promoted().unwrap(), None);
    registry.promote("v1", "initial").unwrap();
    registry.promote("v2", "manual").unwrap();
    let third = registry.promote("v3", "retrain: gate passed").unwrap();
    assert_eq!(third.previous.as_deref(), Some("v2"));
    assert_eq!(registry.promoted().unwrap().as_deref(), Some("v3"));

    let rollback = registry.rollback().unwrap();
    assert_eq!((rollback.version.as_str(), rollback.reason.as_str()), ("v2", "rollback from v3"));
    assert_eq!(registry.rollback().unwrap().version, "v1");
    let error = registry.rollback().unwrap_err().to_string();
    assert!(error.contains("v1 is the first promoted version"), "{error}");
    assert_eq!(registry.history().unwrap().len(), 5);
}

#[test]
fn versions_are_listed_oldest_first_with_the_promoted_one_marked_and_staging_skipped() {
    let (_scratch, registry) = registry_with(&["b", "a"]);
    registry.staging_dir().unwrap();
    registry.promote("a", "manual").unwrap();
    let listed: Vec<(String, bool)> =
        registry.versions().unwrap().into_iter().map(|entry| (entry.version, entry.promoted)).collect();
    assert_eq!(listed, vec![("b".to_string(), false), ("a".to_string(), true)]);
}

#[test]
fn promoting_an_unknown_version_or_adding_a_duplicate_is_refused_with_the_fix() {
    let (_scratch, registry) = registry_with(&["v1"]);
    let unknown = registry.promote("v9", "manual").unwrap_err().to_string();
    assert!(unknown.contains("\"v9\" is not in the registry") && unknown.contains("sentmon models list"), "{unknown}");
    assert_eq!(registry.promoted().unwrap(), None, "a refused promotion leaves the pointer alone");

    let staged = stage_manifest_only_bundle(&registry, "v1", "2026-11-26T00:00:00Z");
    let duplicate = registry.add_staged(&staged).unwrap_err().to_string();
    assert!(duplicate.contains("already in the registry"), "{duplicate}");
}

#[test]
fn a_bundle_directory_resolves_to_itself_and_a_registry_to_its_promoted_version() {
    let (version, directory) = resolve_model_path(Path::new(SHIPPED_BUNDLE)).unwrap();
    assert_eq!(directory, Path::new(SHIPPED_BUNDLE));
    assert_eq!(version, bundle::read_manifest(Path::new(SHIPPED_BUNDLE)).unwrap().version);

    let (_scratch, registry) = registry_with(&["v1"]);
    let error = resolve_model_path(registry.root()).unwrap_err().to_string();
    assert!(error.contains("has no promoted version") && error.contains("sentmon models promote"), "{error}");
    registry.promote("v1", "initial").unwrap();
    assert_eq!(resolve_model_path(registry.root()).unwrap(), ("v1".to_string(), registry.bundle_dir("v1")));
}

#[test]
fn add_copy_brings_a_whole_bundle_in_under_its_version() {
    let scratch = tempfile::tempdir().unwrap();
    let registry = Registry::open_or_create(&scratch.path().join("registry")).unwrap();
    let version = registry.add_copy(Path::new(SHIPPED_BUNDLE)).unwrap();
    for file in [bundle::MANIFEST_FILE, bundle::TOKENIZER_FILE, bundle::WEIGHTS_FILE] {
        assert!(registry.bundle_dir(&version).join(file).is_file(), "{file} was not copied");
    }
    assert!(Registry::open(registry.root()).is_ok());
    let not_registry = Registry::open(scratch.path()).unwrap_err().to_string();
    assert!(not_registry.contains("is not a model registry") && not_registry.contains("sentmon models add"));
}
