//! The model package on disk: `slipway.json` (the manifest) and `model.safetensors` (the
//! weights), written atomically, and loaded back into a [`NativeModel`].

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, ArrayView2};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use sha2::{Digest, Sha256};
use slipway_core::{
    CoreError, DataType, FeatureKind, Framework, Manifest, Model, Signature, Task, Tensor,
    TensorData,
};

use crate::data::hex;
use crate::error::{LearnError, Result};
use crate::nn::{Dense, Network};
use crate::pipeline::{EncodeError, Field, RowEncoder};

use slipway_core::manifest::answer;
use slipway_core::manifest::files::{MANIFEST, NATIVE_PAYLOAD as PAYLOAD};

/// Writes a package into `dir` and returns the manifest as written, with the payload digest
/// filled in. The package is built whole in a sibling staging folder, synced, and renamed into
/// place, so `dir` always holds either the old package or the new one, never a mix. An existing
/// `dir` is replaced only if it is empty or a package; anything else is refused.
pub fn write(dir: &Path, manifest: &Manifest, network: &Network) -> Result<Manifest> {
    if dir.exists() && !dir.is_dir() {
        return Err(LearnError::package(
            dir,
            "is a file, and a package is a folder; choose another --out",
        ));
    }
    if dir.exists() {
        let entries = std::fs::read_dir(dir).map_err(|e| LearnError::io(dir, e))?;
        for entry in entries {
            let name = entry.map_err(|e| LearnError::io(dir, e))?.file_name();
            if name != MANIFEST && name != PAYLOAD {
                return Err(LearnError::package(
                    dir,
                    format!(
                        "exists and holds `{}`, so it is not a package to replace; choose another --out",
                        name.to_string_lossy()
                    ),
                ));
            }
        }
    }
    let base = dir
        .file_name()
        .map_or_else(|| "package".into(), |n| n.to_string_lossy().into_owned());
    let staging = dir.with_file_name(format!(".{base}.staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| LearnError::io(&staging, e))?;
    let written = write_files(&staging, manifest, network).and_then(|m| {
        let old = dir.with_file_name(format!(".{base}.old-{}", std::process::id()));
        if dir.exists() {
            std::fs::rename(dir, &old).map_err(|e| LearnError::io(dir, e))?;
        }
        std::fs::rename(&staging, dir).map_err(|e| LearnError::io(dir, e))?;
        let _ = std::fs::remove_dir_all(&old);
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Persist the renames.
            let _ = std::fs::File::open(parent).and_then(|f| f.sync_all());
        }
        Ok(m)
    });
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    written
}

fn write_files(dir: &Path, manifest: &Manifest, network: &Network) -> Result<Manifest> {
    let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for (i, layer) in network.layers.iter().enumerate() {
        tensors.push((
            format!("layers.{i}.weight"),
            f64_bytes(layer.w.iter()),
            layer.w.shape().to_vec(),
        ));
        tensors.push((
            format!("layers.{i}.bias"),
            f64_bytes(layer.b.iter()),
            vec![layer.b.len()],
        ));
    }
    let views = tensors
        .iter()
        .map(|(name, bytes, shape)| {
            TensorView::new(Dtype::F64, shape.clone(), bytes).map(|v| (name.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| LearnError::package(dir, format!("cannot encode weights: {e}")))?;
    let mut info = HashMap::new();
    info.insert("format".to_string(), "slipway".to_string());
    let payload = safetensors::serialize(views, Some(info))
        .map_err(|e| LearnError::package(dir, format!("cannot encode weights: {e}")))?;
    let mut manifest = manifest.clone();
    manifest.payload.file = PAYLOAD.into();
    manifest.payload.sha256 = hex(&Sha256::digest(&payload));
    write_atomic(&dir.join(PAYLOAD), &payload)?;
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| LearnError::package(dir, format!("cannot encode manifest: {e}")))?;
    write_atomic(&dir.join(MANIFEST), &json)?;
    Ok(manifest)
}

fn f64_bytes<'a>(values: impl Iterator<Item = &'a f64>) -> Vec<u8> {
    values.flat_map(|v| v.to_le_bytes()).collect()
}

/// Writes a file through a temporary sibling, fsyncs it and renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| LearnError::io(path, e))
}

/// Reads and checks a package's manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    if !dir.exists() {
        return Err(LearnError::package(
            dir,
            "no such folder; train one with `slipway train … --out DIR`",
        ));
    }
    if !dir.is_dir() {
        return Err(LearnError::package(dir, "is a file, not a package folder"));
    }
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            LearnError::package(
                dir,
                format!("has no {MANIFEST}; is this a Slipway package folder?"),
            )
        } else {
            LearnError::io(&path, e)
        }
    })?;
    Manifest::from_json(&text).map_err(|e| LearnError::package(dir, format!("{MANIFEST}: {e}")))
}

/// A native package loaded for scoring.
#[derive(Debug, Clone)]
pub struct NativeModel {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub network: Network,
    pub encoder: RowEncoder,
}

impl NativeModel {
    /// Loads a package, checking the payload's digest and every tensor's shape.
    pub fn load(dir: &Path) -> Result<Self> {
        let manifest = read_manifest(dir)?;
        if manifest.framework != Framework::Native {
            return Err(LearnError::package(
                dir,
                "holds an ONNX model, which this command cannot run yet",
            ));
        }
        check_inputs(dir, &manifest)?;
        let path = dir.join(&manifest.payload.file);
        // Only a regular file: a link to a device or a folder never reaches `read`.
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if !meta.is_file() => {
                return Err(LearnError::package(
                    dir,
                    format!(
                        "the payload {} is not a regular file",
                        manifest.payload.file
                    ),
                ));
            }
            Ok(_) | Err(_) => {}
        }
        let bytes = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                LearnError::package(
                    dir,
                    format!("the payload {} is missing", manifest.payload.file),
                )
            } else {
                LearnError::io(&path, e)
            }
        })?;
        let digest = hex(&Sha256::digest(&bytes));
        if digest != manifest.payload.sha256 {
            return Err(LearnError::package(
                dir,
                format!(
                    "{} is corrupt: its SHA-256 is {digest}, the manifest says {}",
                    manifest.payload.file, manifest.payload.sha256
                ),
            ));
        }
        let tensors = SafeTensors::deserialize(&bytes)
            .map_err(|e| LearnError::package(dir, format!("{}: {e}", manifest.payload.file)))?;
        let mut layers = Vec::new();
        for (i, spec) in manifest.model.layers.iter().enumerate() {
            let w = read_tensor(
                dir,
                &tensors,
                &format!("layers.{i}.weight"),
                &[spec.inputs, spec.units],
            )?;
            let b = read_tensor(dir, &tensors, &format!("layers.{i}.bias"), &[spec.units])?;
            let w = Array2::from_shape_vec((spec.inputs, spec.units), w).expect("length checked");
            layers.push(Dense {
                w,
                b: Array1::from_vec(b),
                activation: spec.activation,
            });
        }
        let encoder = RowEncoder::new(&manifest.features);
        Ok(NativeModel {
            dir: dir.to_path_buf(),
            manifest,
            network: Network { layers },
            encoder,
        })
    }

    /// The decision threshold chosen at training (0.5 unless `--threshold` said otherwise).
    pub fn threshold(&self) -> f64 {
        self.manifest.threshold()
    }

    /// What the model predicts.
    pub fn task(&self) -> Task {
        self.manifest.task
    }

    /// Runs the network on encoded rows.
    pub fn forward(&self, x: ArrayView2<'_, f64>) -> Array2<f64> {
        self.network.forward(x)
    }

    /// The label for one row of outputs (the manifest's one rule).
    pub fn label<'a>(&'a self, out: &[f64], threshold: f64) -> &'a str {
        self.manifest.label(out, threshold)
    }
}

/// The signature's inputs agree with the features: one per column in order, or one FP64
/// matrix as wide as the features, all numeric.
fn check_inputs(dir: &Path, manifest: &Manifest) -> Result<()> {
    let features = &manifest.features;
    let inputs = &manifest.signature.inputs;
    let fits = match inputs.as_slice() {
        [m] if m.shape.len() == 2 => {
            m.name == crate::native::MATRIX_INPUT
                && m.datatype == DataType::Fp64
                && m.shape == [-1, features.len() as i64]
                && features
                    .iter()
                    .all(|f| matches!(f.kind, FeatureKind::Numeric { .. }))
        }
        _ => {
            inputs.len() == features.len()
                && inputs.iter().zip(features).all(|(i, f)| {
                    let datatype = match f.kind {
                        FeatureKind::Numeric { .. } => DataType::Fp64,
                        FeatureKind::Categorical { .. } => DataType::Bytes,
                    };
                    i.name == f.name && i.datatype == datatype && i.shape == [-1]
                })
        }
    };
    if fits {
        Ok(())
    } else {
        Err(LearnError::package(
            dir,
            format!(
                "the signature's inputs do not match its {} features: one FP64 or BYTES `[-1]` tensor per feature, in order, or one FP64 `{}` matrix `[-1, {}]` over numeric features",
                features.len(),
                crate::native::MATRIX_INPUT,
                features.len()
            ),
        ))
    }
}

fn read_tensor(
    dir: &Path,
    tensors: &SafeTensors<'_>,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f64>> {
    let view = tensors
        .tensor(name)
        .map_err(|_| LearnError::package(dir, format!("{PAYLOAD} lacks the tensor `{name}`")))?;
    if view.dtype() != Dtype::F64 || view.shape() != shape {
        return Err(LearnError::package(
            dir,
            format!(
                "tensor `{name}` is {:?} {:?}, the manifest says F64 {shape:?}",
                view.dtype(),
                view.shape()
            ),
        ));
    }
    Ok(view
        .data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

impl NativeModel {
    /// Encodes a `[n, width]` FP64 matrix, row by row, with no allocation per row.
    fn encode_matrix(
        &self,
        inputs: &[Tensor],
        width: usize,
    ) -> std::result::Result<Array2<f64>, CoreError> {
        let name = crate::native::MATRIX_INPUT;
        let t = match inputs {
            [t] if t.name == name => t,
            _ => {
                return Err(CoreError::InvalidInput(format!(
                    "the model takes one input, `{name}`, an FP64 matrix [rows, {width}]"
                )));
            }
        };
        let TensorData::Fp64(values) = &t.data else {
            return Err(CoreError::InvalidInput(format!(
                "input `{name}` must be FP64, got {}",
                t.data.datatype()
            )));
        };
        let n = match t.shape.as_slice() {
            [n, w] if *w == width && n.checked_mul(width) == Some(values.len()) => *n,
            shape => {
                return Err(CoreError::InvalidInput(format!(
                    "input `{name}` must have shape [rows, {width}] and as many elements, got {shape:?} and {}",
                    values.len()
                )));
            }
        };
        let mut x = Array2::zeros((n, self.encoder.width()));
        for (i, row) in values.chunks_exact(width.max(1)).take(n).enumerate() {
            self.encoder
                .encode_fields(row.iter().map(|&v| Field::Number(v)), x.row_mut(i))
                .map_err(|e| match e {
                    EncodeError::NotNumeric { index } => CoreError::InvalidInput(format!(
                        "input `{name}` holds a value that is not a finite number at row {i}, column {index} (`{}`)",
                        self.manifest.features[index].name
                    )),
                })?;
        }
        Ok(x)
    }

    /// Encodes one tensor per raw column.
    fn encode_columns(&self, inputs: &[Tensor]) -> std::result::Result<Array2<f64>, CoreError> {
        let features = &self.manifest.features;
        let mut columns: Vec<&Tensor> = Vec::with_capacity(features.len());
        for (i, f) in features.iter().enumerate() {
            // Usually at its own position (inputs in signature order); else searched for.
            let t = inputs
                .get(i)
                .filter(|t| t.name == f.name)
                .or_else(|| inputs.iter().find(|t| t.name == f.name))
                .ok_or_else(|| CoreError::InvalidInput(format!("missing input `{}`", f.name)))?;
            columns.push(t);
        }
        let n = columns.first().map_or(0, |t| t.data.len());
        for (f, t) in features.iter().zip(&columns) {
            let want = match f.kind {
                FeatureKind::Numeric { .. } => DataType::Fp64,
                FeatureKind::Categorical { .. } => DataType::Bytes,
            };
            if t.data.datatype() != want {
                return Err(CoreError::InvalidInput(format!(
                    "input `{}` must be {want}, got {}",
                    f.name,
                    t.data.datatype()
                )));
            }
            if t.data.len() != n {
                return Err(CoreError::InvalidInput(format!(
                    "input `{}` has {} elements, `{}` has {n}",
                    t.name,
                    t.data.len(),
                    features[0].name
                )));
            }
        }
        let mut x = Array2::zeros((n, self.encoder.width()));
        for i in 0..n {
            let fields = columns.iter().map(|t| match &t.data {
                TensorData::Fp64(v) => Field::Number(v[i]),
                TensorData::Bytes(v) if crate::data::is_missing(&v[i]) => Field::Missing,
                TensorData::Bytes(v) => Field::Text(&v[i]),
                TensorData::Bool(_) | TensorData::Int64(_) | TensorData::Fp32(_) => Field::Missing,
            });
            self.encoder
                .encode_fields(fields, x.row_mut(i))
                .map_err(|e| match e {
                    EncodeError::NotNumeric { index } => CoreError::InvalidInput(format!(
                        "input `{}` holds a value that is not a finite number at row {i}",
                        features[index].name
                    )),
                })?;
        }
        Ok(x)
    }
}

impl Model for NativeModel {
    fn signature(&self) -> &Signature {
        &self.manifest.signature
    }

    fn infer(&self, inputs: &[Tensor]) -> std::result::Result<Vec<Tensor>, CoreError> {
        let x = match crate::native::matrix_width(&self.manifest.signature) {
            Some(width) => self.encode_matrix(inputs, width)?,
            None => self.encode_columns(inputs)?,
        };
        let n = x.nrows();
        let out = self.network.forward(x.view());
        let labels = || {
            out.rows()
                .into_iter()
                .map(|r| {
                    // Rows of the forward pass's output are contiguous: no copy per row.
                    let label = match r.as_slice() {
                        Some(row) => self.label(row, self.threshold()),
                        None => self.label(&r.to_vec(), self.threshold()),
                    };
                    label.as_bytes().to_vec()
                })
                .collect::<Vec<_>>()
        };
        Ok(match self.manifest.task {
            Task::BinaryClassification => vec![
                Tensor::vector(
                    answer::PROBABILITY,
                    TensorData::Fp64(out.column(0).to_vec()),
                ),
                Tensor::vector(answer::LABEL, TensorData::Bytes(labels())),
            ],
            Task::MulticlassClassification => vec![
                Tensor {
                    name: answer::PROBABILITIES.into(),
                    shape: vec![n, out.ncols()],
                    data: TensorData::Fp64(out.iter().copied().collect()),
                },
                Tensor::vector(answer::LABEL, TensorData::Bytes(labels())),
            ],
            Task::Regression => vec![Tensor::vector(
                answer::PREDICTION,
                TensorData::Fp64(out.column(0).to_vec()),
            )],
        })
    }
}
