//! Registering a package folder: read and checked, compared with the model's versions (the
//! same package apart from its training time is the version there is), stored as blobs, then
//! inserted in one transaction.

use std::path::Path;

use crate::error::{RegistryError, Result};
use crate::meta::{FileEntry, NewVersion, VersionRecord};
use crate::{
    MANIFEST, PACKAGE_FILES, RegisterOptions, Registered, Registry, check_name, package_digest,
    sha256_hex,
};

impl Registry {
    /// Registers a package folder as the next version of a model. The files are stored as
    /// blobs first; the version appears, whole, in one database transaction after them.
    ///
    /// A package the model already has — the same files, apart from the time of training in
    /// its lineage (a deterministic retraining, or the same folder registered twice) — is not
    /// made a new version: the existing one is returned with `reused` set (and `alias`, if
    /// given, moved to it). Two processes registering the same package at the same instant may
    /// still both add a version; the numbering stays gapless either way.
    pub fn register(&mut self, dir: &Path, options: &RegisterOptions) -> Result<Registered> {
        check_name("model", &options.name)?;
        if let Some(a) = &options.alias {
            check_name("alias", a)?;
        }
        let (manifest, files, contents) = read_package(dir)?;
        self.check_stored_gates(&options.name, options.alias.as_deref(), &manifest)?;
        if let Some(existing) = self.same_package(&options.name, &manifest, &files)? {
            return self.reuse(existing, options.alias.as_deref(), &options.by);
        }
        for (f, bytes) in files.iter().zip(&contents) {
            self.blobs.put_hashed(bytes, &f.sha256)?;
        }
        drop(contents);
        let record = self.meta.insert_version(NewVersion {
            model: options.name.clone(),
            digest: package_digest(&files),
            manifest,
            files,
            description: options.description.clone(),
            tags: options.tags.clone(),
            by: options.by.clone(),
            alias: options.alias.clone(),
            action: "register".into(),
        })?;
        Ok(Registered {
            record,
            reused: false,
        })
    }

    /// Answers a registration with the version that already holds its package, moving `alias`
    /// to it when it points elsewhere.
    pub(crate) fn reuse(
        &mut self,
        existing: VersionRecord,
        alias: Option<&str>,
        by: &str,
    ) -> Result<Registered> {
        if let Some(alias) = alias {
            let here = self.meta.aliases(&existing.model)?.get(alias).copied();
            if here != Some(existing.version) {
                self.meta.move_alias(
                    &existing.model,
                    alias,
                    Some(existing.version),
                    by,
                    &format!(
                        "register with --alias (the package already is version {})",
                        existing.version
                    ),
                    "register",
                )?;
            }
        }
        Ok(Registered {
            record: existing,
            reused: true,
        })
    }

    /// The version of `model` holding the same package as `manifest` and `files`, apart from
    /// the training time in the lineage.
    pub(crate) fn same_package(
        &self,
        model: &str,
        manifest: &serde_json::Value,
        files: &[FileEntry],
    ) -> Result<Option<VersionRecord>> {
        let versions = match self.meta.versions(model) {
            Ok(v) => v,
            Err(RegistryError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let timeless = |m: &serde_json::Value| {
            let mut m = m.clone();
            if let Some(lineage) = m.get_mut("lineage").and_then(|l| l.as_object_mut()) {
                lineage.remove("created_at");
            }
            m
        };
        let others = |fs: &[FileEntry]| -> Vec<(String, String)> {
            let mut v: Vec<(String, String)> = fs
                .iter()
                .filter(|f| f.name != MANIFEST)
                .map(|f| (f.name.clone(), f.sha256.clone()))
                .collect();
            v.sort();
            v
        };
        let (want, want_files) = (timeless(manifest), others(files));
        Ok(versions
            .into_iter()
            .find(|v| others(&v.files) == want_files && timeless(&v.manifest) == want))
    }
}

/// A package folder's manifest, its files' entries and their bytes (in the same order), the
/// payload checked against the manifest's digest. Nothing is stored.
#[allow(clippy::type_complexity)]
fn read_package(dir: &Path) -> Result<(serde_json::Value, Vec<FileEntry>, Vec<Vec<u8>>)> {
    if !dir.is_dir() {
        return Err(RegistryError::NotFound(format!(
            "{} is not a package folder",
            dir.display()
        )));
    }
    let manifest_path = dir.join(MANIFEST);
    let text = std::fs::read(&manifest_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            RegistryError::Corrupt(format!(
                "{} has no slipway.json; is it a Slipway package folder?",
                dir.display()
            ))
        } else {
            RegistryError::Io {
                path: manifest_path.clone(),
                source: e,
            }
        }
    })?;
    let parsed = slipway_core::Manifest::from_json(&String::from_utf8_lossy(&text))
        .map_err(|e| RegistryError::Corrupt(format!("{}: {e}", manifest_path.display())))?;
    let manifest: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| RegistryError::Corrupt(format!("{}: {e}", manifest_path.display())))?;
    let mut files = Vec::new();
    let mut contents = Vec::new();
    for name in PACKAGE_FILES {
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| RegistryError::Io {
            path: path.clone(),
            source: e,
        })?;
        let sha256 = sha256_hex(&bytes);
        if *name == parsed.payload.file && sha256 != parsed.payload.sha256 {
            return Err(RegistryError::Corrupt(format!(
                "{}: the payload does not match the digest in slipway.json; the package is corrupt",
                path.display()
            )));
        }
        files.push(FileEntry {
            name: (*name).to_string(),
            sha256,
            size: bytes.len() as u64,
        });
        contents.push(bytes);
    }
    if !files.iter().any(|f| f.name == parsed.payload.file) {
        return Err(RegistryError::Invalid(format!(
            "{}: the payload {} is missing",
            dir.display(),
            parsed.payload.file
        )));
    }
    Ok((manifest, files, contents))
}
