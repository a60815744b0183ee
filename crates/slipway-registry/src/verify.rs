//! `registry verify`: the database, every blob against its digest and recorded size, and the
//! database's copy of each manifest against the package's own.

use crate::error::Result;
use crate::{Registry, check_record, printable};

impl Registry {
    /// Checks the whole registry: the database, and every file of every version against its
    /// digest. Returns the problems found, each naming the model version and blob.
    pub fn verify(&self) -> Result<Verification> {
        let mut problems = self.meta.integrity_check()?;
        let mut versions = 0;
        // One model at a time, so memory stays bounded by the largest model, not the registry;
        // a blob shared by many versions is hashed once.
        let mut checked: std::collections::HashMap<String, std::result::Result<u64, String>> =
            std::collections::HashMap::new();
        for model in self.meta.list_models()? {
            for v in self.meta.versions(&model.name)? {
                versions += 1;
                if let Err(e) = check_record(&v) {
                    problems.push(e.to_string());
                    continue;
                }
                for f in &v.files {
                    let context = format!("{}:{} {}", v.model, v.version, f.name);
                    let outcome = checked.entry(f.sha256.clone()).or_insert_with(|| {
                        self.blobs
                            .get(&f.sha256, "")
                            .map(|b| b.len() as u64)
                            .map_err(|e| e.to_string())
                    });
                    match outcome {
                        Ok(size) if *size != f.size => problems.push(format!(
                            "{context}: registry.db records {} bytes, the stored file has {size}",
                            f.size
                        )),
                        Ok(_) => {}
                        // Re-check to word the problem with this version's name.
                        Err(_) => {
                            if let Err(e) = self.blobs.check(&f.sha256, &context) {
                                problems.push(e.to_string());
                            }
                        }
                    }
                }
                // The database's copy of the manifest must be the package's: listings show it.
                match self.manifest(&v) {
                    Ok(stored) if stored != v.manifest => problems.push(format!(
                        "{}:{} slipway.json: registry.db's copy of the manifest differs from the package's (metrics {} in the database, {} in the package); gates read the package",
                        v.model,
                        v.version,
                        printable(&v.manifest.get("metrics").map_or("none".into(), ToString::to_string)),
                        printable(&stored.get("metrics").map_or("none".into(), ToString::to_string)),
                    )),
                    Ok(_) | Err(_) => {} // a missing or damaged blob is reported above
                }
            }
        }
        Ok(Verification { versions, problems })
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verification {
    /// Versions checked.
    pub versions: usize,
    /// Each problem, naming the model version and blob.
    pub problems: Vec<String>,
}
