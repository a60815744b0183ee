//! A package folder → `package::NativeModel::load`, then one scoring call on what loaded.
//! Errors are fine; a panic is a bug.
//!
//! The first input byte picks a mode (`byte % 3`):
//!
//! - 0, raw: bytes 1–2 (little-endian u16, modulo the rest's length + 1) split the rest into
//!   `slipway.json` and `model.safetensors`.
//! - 1, fuzzed payload: `slipway.json` is a valid manifest (trained once at start-up) whose
//!   `payload.sha256` is patched to the digest of the rest of the input, which becomes
//!   `model.safetensors`. This gets past the digest check into the safetensors parser and the
//!   tensor shape checks.
//! - 2, fuzzed manifest: the rest is the manifest; `model.safetensors` is the valid payload and,
//!   when the rest parses as a JSON object, its `payload` is set to point at it with the right
//!   digest. This reaches the checks that tie the manifest's layers to the payload's tensors.
//!
//! Set `SLIPWAY_FUZZ_WRITE_SEEDS=DIR` to have start-up write one seed per mode into DIR.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use slipway_core::{FeatureKind, Model, Tensor, TensorData};
use slipway_learn::dataset::DatasetSpec;
use slipway_learn::mlp::Optimizer;
use slipway_learn::package::{self, MANIFEST, NativeModel, PAYLOAD};
use slipway_learn::train::{self, ModelKind, TrainParams, TrainSpec};

/// A package trained once: its manifest as JSON, and its payload.
struct Valid {
    manifest: serde_json::Value,
    payload: Vec<u8>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn valid() -> &'static Valid {
    static VALID: OnceLock<Valid> = OnceLock::new();
    VALID.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let csv = dir.path().join("train.csv");
        let mut text = String::from("x,colour,label\n");
        for i in 0..48 {
            let x = f64::from(i) * 0.25 - 3.0;
            let colour = ["red", "green", "blue"][i as usize % 3];
            let label = if x + f64::from(i % 3) > 0.5 {
                "yes"
            } else {
                "no"
            };
            text.push_str(&format!("{x},{colour},{label}\n"));
        }
        text.push_str(",NA,no\n");
        std::fs::write(&csv, text).expect("write the training CSV");
        let spec = TrainSpec {
            data: csv,
            test_data: None,
            dataset: DatasetSpec {
                target: "label".into(),
                ..Default::default()
            },
            params: TrainParams {
                model: ModelKind::Mlp,
                hidden: vec![3],
                optimizer: Optimizer::Adam,
                epochs: 3,
                ..Default::default()
            },
            name: "fuzz".into(),
        };
        let trained = train::train(&spec, &mut |_| {}).expect("train the seed model");
        let out = dir.path().join("pkg");
        package::write(&out, &trained.manifest, &trained.network).expect("write the package");
        // The package must load as written, or every mode below tests nothing.
        NativeModel::load(&out).expect("the freshly written package loads");
        let manifest_text = std::fs::read_to_string(out.join(MANIFEST)).expect("read manifest");
        let payload = std::fs::read(out.join(PAYLOAD)).expect("read payload");
        let valid = Valid {
            manifest: serde_json::from_str(&manifest_text).expect("manifest is JSON"),
            payload,
        };
        if let Some(seeds) = std::env::var_os("SLIPWAY_FUZZ_WRITE_SEEDS") {
            write_seeds(Path::new(&seeds), &manifest_text, &valid.payload);
        }
        valid
    })
}

fn write_seeds(dir: &Path, manifest: &str, payload: &[u8]) {
    std::fs::create_dir_all(dir).expect("seed dir");
    let split = u16::try_from(manifest.len()).expect("a small manifest");
    let mut raw = vec![0u8];
    raw.extend_from_slice(&split.to_le_bytes());
    raw.extend_from_slice(manifest.as_bytes());
    raw.extend_from_slice(payload);
    std::fs::write(dir.join("seed_raw"), raw).expect("write seed");
    let mut fuzzed_payload = vec![1u8];
    fuzzed_payload.extend_from_slice(payload);
    std::fs::write(dir.join("seed_payload"), fuzzed_payload).expect("write seed");
    let mut fuzzed_manifest = vec![2u8];
    fuzzed_manifest.extend_from_slice(manifest.as_bytes());
    std::fs::write(dir.join("seed_manifest"), fuzzed_manifest).expect("write seed");
}

/// The manifest with its payload pointing at `payload` by name and digest.
fn manifest_for(mut manifest: serde_json::Value, payload: &[u8]) -> Vec<u8> {
    if let Some(object) = manifest.as_object_mut() {
        object.insert(
            "payload".into(),
            serde_json::json!({ "file": PAYLOAD, "sha256": hex(&Sha256::digest(payload)) }),
        );
    }
    serde_json::to_vec(&manifest).expect("JSON serialises")
}

fuzz_target!(|bytes: &[u8]| {
    let valid = valid();
    let Some((&mode, rest)) = bytes.split_first() else {
        return;
    };
    let (manifest, payload): (Vec<u8>, &[u8]) = match mode % 3 {
        0 => {
            let [lo, hi, rest @ ..] = rest else {
                return;
            };
            let at = usize::from(u16::from_le_bytes([*lo, *hi])) % (rest.len() + 1);
            let (manifest, payload) = rest.split_at(at);
            (manifest.to_vec(), payload)
        }
        1 => (manifest_for(valid.manifest.clone(), rest), rest),
        _ => {
            let manifest = match serde_json::from_slice::<serde_json::Value>(rest) {
                Ok(value) if value.is_object() => manifest_for(value, &valid.payload),
                Ok(_) | Err(_) => rest.to_vec(),
            };
            (manifest, valid.payload.as_slice())
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(MANIFEST), &manifest).expect("write manifest");
    std::fs::write(dir.path().join(PAYLOAD), payload).expect("write payload");
    let Ok(model) = NativeModel::load(dir.path()) else {
        return;
    };

    // What loads must score: one row, every numeric input missing, every category the first
    // one the model knows.
    let inputs: Vec<Tensor> = model
        .manifest
        .features
        .iter()
        .map(|f| {
            let data = match &f.kind {
                FeatureKind::Numeric { .. } => TensorData::Fp64(vec![f64::NAN]),
                FeatureKind::Categorical { categories, .. } => TensorData::Bytes(vec![
                    categories.first().cloned().unwrap_or_default().into_bytes(),
                ]),
            };
            Tensor::vector(f.name.clone(), data)
        })
        .collect();
    let _ = model.infer(&inputs);
});
