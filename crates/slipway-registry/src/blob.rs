//! The content-addressed blob store: a folder of files named by their SHA-256.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{RegistryError, Result};

/// Where package files live, by digest. Implementations must never return bytes whose
/// SHA-256 is not the digest asked for.
pub trait BlobStore: Send + Sync {
    /// Stores bytes and returns their lower-case hex SHA-256. Storing the same bytes twice is a
    /// no-op.
    fn put(&self, bytes: &[u8]) -> Result<String> {
        let digest = sha256_hex(bytes);
        self.put_hashed(bytes, &digest)?;
        Ok(digest)
    }
    /// Stores bytes whose SHA-256 the caller has just computed (saves hashing large payloads
    /// twice). `digest` must be `sha256_hex(bytes)`.
    fn put_hashed(&self, bytes: &[u8], digest: &str) -> Result<()>;
    /// The bytes of a digest, checked; `context` names what the blob belongs to in errors.
    fn get(&self, digest: &str, context: &str) -> Result<Vec<u8>>;
    /// Checks a blob without returning it: `Ok(())`, or the problem.
    fn check(&self, digest: &str, context: &str) -> Result<()> {
        self.get(digest, context).map(|_| ())
    }
    /// Every digest stored.
    fn list(&self) -> Result<Vec<String>>;
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Blobs as files `blobs/sha256/ab/cdef…`, each written to a temporary file, synced and renamed.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// A store under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsBlobStore { root: root.into() }
    }

    fn path(&self, digest: &str) -> Result<PathBuf> {
        if digest.len() != 64
            || !digest
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(RegistryError::Corrupt(format!(
                "`{digest}` is not a SHA-256 digest"
            )));
        }
        Ok(self
            .root
            .join("sha256")
            .join(&digest[..2])
            .join(&digest[2..]))
    }
}

fn io(path: &Path, e: std::io::Error) -> RegistryError {
    RegistryError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

impl BlobStore for FsBlobStore {
    fn put_hashed(&self, bytes: &[u8], digest: &str) -> Result<()> {
        let path = self.path(digest)?;
        // An existing blob is kept only if it is intact; a damaged one is rewritten.
        if path.is_file() && self.check(digest, "").is_ok() {
            return Ok(());
        }
        let dir = path.parent().expect("blob paths have a parent");
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let tmp = dir.join(format!(".{}.tmp-{}", &digest[2..], std::process::id()));
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&path, e));
        }
        Ok(())
    }

    fn get(&self, digest: &str, context: &str) -> Result<Vec<u8>> {
        let path = self.path(digest)?;
        let bytes = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                RegistryError::Corrupt(format!(
                    "{context}: blob {digest} is missing from {}",
                    self.root.display()
                ))
            } else {
                io(&path, e)
            }
        })?;
        let found = sha256_hex(&bytes);
        if found != digest {
            return Err(RegistryError::Corrupt(format!(
                "{context}: blob {digest} is corrupt ({} bytes hash to {found}); restore it or re-register the package",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    fn list(&self) -> Result<Vec<String>> {
        let base = self.root.join("sha256");
        let mut out = Vec::new();
        let Ok(dirs) = std::fs::read_dir(&base) else {
            return Ok(out);
        };
        for dir in dirs {
            let dir = dir.map_err(|e| io(&base, e))?;
            let prefix = dir.file_name().to_string_lossy().into_owned();
            let files = std::fs::read_dir(dir.path()).map_err(|e| io(&dir.path(), e))?;
            for f in files {
                let name = f
                    .map_err(|e| io(&dir.path(), e))?
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                if !name.starts_with('.') {
                    out.push(format!("{prefix}{name}"));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_detect_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::new(dir.path());
        let d = store.put(b"hello").unwrap();
        assert_eq!(d, sha256_hex(b"hello"));
        assert_eq!(store.put(b"hello").unwrap(), d);
        assert_eq!(store.get(&d, "x").unwrap(), b"hello");
        assert_eq!(store.list().unwrap(), vec![d.clone()]);
        let path = store.path(&d).unwrap();
        std::fs::write(&path, b"hellO").unwrap();
        let err = store
            .get(&d, "credit:1 model.safetensors")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("credit:1 model.safetensors: blob") && err.contains("is corrupt"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        assert!(
            store
                .get(&d, "c")
                .unwrap_err()
                .to_string()
                .contains("is missing")
        );
        assert!(
            store
                .get("../../etc", "c")
                .unwrap_err()
                .to_string()
                .contains("not a SHA-256")
        );
    }
}
