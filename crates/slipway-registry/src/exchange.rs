//! Moving a version between registries: `export` writes its files and the registry's record
//! as a tar; `read_export` checks one without touching any registry; `import` registers it.
//! Nothing a tar says about its files is trusted that can be recomputed from their bytes.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{RegistryError, Result};
use crate::meta::{FileEntry, NewVersion, VersionRecord};
use crate::{
    MANIFEST, PACKAGE_FILES, Registered, Registry, check_name, check_record, package_digest,
    printable, sha256_hex,
};

/// The registry's record inside an exported package tar.
const EXPORT_RECORD: &str = "registry.json";

impl Registry {
    /// Writes a version as a portable tar: its files plus `registry.json` (model, version,
    /// digest, file digests, description, tags). Written to a temporary file and renamed.
    pub fn export(&self, version: &VersionRecord, out: &Path) -> Result<()> {
        let io = |path: &Path, e: std::io::Error| RegistryError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        check_record(version)?;
        let tmp = out.with_extension(format!("partial.{}", std::process::id()));
        let written = (|| -> Result<()> {
            let file = std::fs::File::create(&tmp).map_err(|e| io(out, e))?;
            let mut builder = tar::Builder::new(file);
            let record = serde_json::json!({
                "model": version.model,
                "version": version.version,
                "digest": version.digest,
                "files": version.files,
                "description": version.description,
                "tags": version.tags,
            });
            let mut entries: Vec<(String, Vec<u8>)> = vec![(
                EXPORT_RECORD.into(),
                serde_json::to_vec_pretty(&record).unwrap_or_default(),
            )];
            for f in &version.files {
                let context = format!("{}:{} {}", version.model, version.version, f.name);
                entries.push((f.name.clone(), self.blobs.get(&f.sha256, &context)?));
            }
            for (name, bytes) in entries {
                let mut header = tar::Header::new_gnu();
                header.set_size(bytes.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                builder
                    .append_data(&mut header, &name, bytes.as_slice())
                    .map_err(|e| io(&tmp, e))?;
            }
            let file = builder.into_inner().map_err(|e| io(&tmp, e))?;
            file.sync_all().map_err(|e| io(&tmp, e))?;
            std::fs::rename(&tmp, out).map_err(|e| io(out, e))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// Registers a checked export (see [`read_export`]) as the next version of `name`
    /// (default: the exported model's name).
    pub fn import(
        &mut self,
        exported: Exported,
        name: Option<&str>,
        alias: Option<&str>,
        by: &str,
    ) -> Result<Registered> {
        let Exported {
            record,
            contents,
            files,
            digest,
            manifest,
        } = exported;
        let name = name
            .map(str::to_string)
            .or_else(|| record["model"].as_str().map(str::to_string))
            .unwrap_or_default();
        check_name("model", &name)?;
        if let Some(a) = alias {
            check_name("alias", a)?;
        }
        self.check_stored_gates(&name, alias, &manifest)?;
        if let Some(existing) = self.same_package(&name, &manifest, &files)? {
            return self.reuse(existing, alias, by);
        }
        for f in &files {
            // read_export checked every file against this digest.
            self.blobs.put_hashed(&contents[&f.name], &f.sha256)?;
        }
        let tags = serde_json::from_value(record["tags"].clone()).unwrap_or_default();
        let record = self.meta.insert_version(NewVersion {
            model: name,
            digest,
            manifest,
            files,
            description: record["description"].as_str().unwrap_or("").to_string(),
            tags,
            by: by.to_string(),
            alias: alias.map(str::to_string),
            action: "import".into(),
        })?;
        Ok(Registered {
            record,
            reused: false,
        })
    }
}

/// A package read from a `slipway export` tar, every file checked against its recorded digest.
#[derive(Debug, Clone)]
pub struct Exported {
    record: serde_json::Value,
    contents: BTreeMap<String, Vec<u8>>,
    files: Vec<FileEntry>,
    digest: String,
    manifest: serde_json::Value,
}

/// Reads and checks an export tar without touching any registry: a tar that fails a check is
/// refused before anything is stored.
pub fn read_export(tar_path: &Path) -> Result<Exported> {
    let file = std::fs::File::open(tar_path).map_err(|e| RegistryError::Io {
        path: tar_path.to_path_buf(),
        source: e,
    })?;
    let bad = |m: String| RegistryError::Corrupt(format!("{}: {m}", tar_path.display()));
    let mut archive = tar::Archive::new(file);
    let mut contents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a tar archive ({e})")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("unreadable entry ({e})")))?;
        let path = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if path != EXPORT_RECORD && !PACKAGE_FILES.contains(&path.as_str()) {
            return Err(bad(format!(
                "unexpected entry `{}`; is this a `slipway export` tar?",
                printable(&path)
            )));
        }
        const MAX_ENTRY: u64 = 4 << 30;
        if entry.size() > MAX_ENTRY {
            return Err(bad(format!(
                "entry `{}` is larger than 4 GiB",
                printable(&path)
            )));
        }
        if contents.contains_key(&path) {
            return Err(bad(format!("entry `{}` appears twice", printable(&path))));
        }
        // Never trust the header's size for an allocation: read at most the cap.
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut entry, MAX_ENTRY), &mut bytes)
            .map_err(|e| bad(format!("entry `{}`: {e}", printable(&path))))?;
        contents.insert(path, bytes);
    }
    let record: serde_json::Value = contents
        .get(EXPORT_RECORD)
        .and_then(|b| serde_json::from_slice(b).ok())
        .ok_or_else(|| {
            bad(format!(
                "no readable {EXPORT_RECORD}; is this a `slipway export` tar?"
            ))
        })?;
    let mut files: Vec<FileEntry> =
        serde_json::from_value(record["files"].clone()).map_err(|e| bad(e.to_string()))?;
    for f in &mut files {
        let bytes = contents
            .get(&f.name)
            .ok_or_else(|| bad(format!("`{}` is missing", printable(&f.name))))?;
        if sha256_hex(bytes) != f.sha256 {
            return Err(bad(format!(
                "`{}` does not match its recorded digest",
                printable(&f.name)
            )));
        }
        // The size recorded is the size of the bytes, whatever the tar's record claims.
        f.size = bytes.len() as u64;
    }
    let digest = package_digest(&files);
    if record["digest"].as_str() != Some(digest.as_str()) {
        return Err(bad("the package digest does not match its files".into()));
    }
    let manifest_bytes = contents
        .get(MANIFEST)
        .ok_or_else(|| bad("`slipway.json` is missing".into()))?;
    let parsed = slipway_core::Manifest::from_json(&String::from_utf8_lossy(manifest_bytes))
        .map_err(|e| bad(e.to_string()))?;
    let manifest: serde_json::Value =
        serde_json::from_slice(manifest_bytes).map_err(|e| bad(e.to_string()))?;
    // The same rules as a registration: the manifest and its payload are both among the
    // digested files, and the payload is the one the manifest names.
    let listed = |name: &str| files.iter().find(|f| f.name == name);
    let payload = listed(&parsed.payload.file);
    if listed(MANIFEST).is_none() || payload.is_none_or(|p| p.sha256 != parsed.payload.sha256) {
        return Err(bad(
            "slipway.json and its payload must both be listed, with the digest the manifest gives"
                .into(),
        ));
    }
    Ok(Exported {
        record,
        contents,
        files,
        digest,
        manifest,
    })
}
