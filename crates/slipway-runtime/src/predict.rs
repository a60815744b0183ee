//! Streaming batch scoring for any package: CSV in, one output row per input row, in chunks,
//! so memory stays bounded by a chunk whatever the file's size. Native packages run
//! `slipway_learn::predict`; ONNX packages read each chunk's feature columns as the graph's
//! inputs want them and score it with [`tabular::score`].

use std::io::Write;
use std::path::{Path, PathBuf};

use slipway_core::{Framework, Task};
use slipway_learn::LearnError;
use slipway_learn::data::{
    Column, Frame, MISSING_CODE, csv_error, csv_reader, is_missing, parse_number,
};
use slipway_learn::package::{NativeModel, read_manifest};
use slipway_learn::predict::{
    PredictOptions, PredictSummary, output_header, predict_csv_with_progress,
};

use crate::{Loaded, RuntimeError, load, tabular};

/// Options of a scoring run.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// Where the scores go, for error messages (`-` for standard output).
    pub output: PathBuf,
    /// A column copied from input to output, to join scores back to their rows.
    pub id_column: Option<String>,
    /// Overrides the package's decision threshold (binary models).
    pub threshold: Option<f64>,
    /// Rows scored together.
    pub chunk_rows: usize,
    /// The input's field delimiter (default: sniffed from the header).
    pub delimiter: Option<u8>,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        ScoreOptions {
            output: PathBuf::from("-"),
            id_column: None,
            threshold: None,
            chunk_rows: 4096,
            delimiter: None,
        }
    }
}

/// Scores every row of `input` with the package in `dir`, writing CSV to `output`, and calls
/// `progress(rows, bytes)` after each chunk.
pub fn predict_csv(
    dir: &Path,
    input: &Path,
    output: impl Write,
    options: &ScoreOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PredictSummary, RuntimeError> {
    match read_manifest(dir)?.framework {
        Framework::Native => {
            let model = NativeModel::load(dir)?;
            let native = PredictOptions {
                output: options.output.clone(),
                id_column: options.id_column.clone(),
                threshold: options.threshold.unwrap_or_else(|| model.threshold()),
                chunk_rows: options.chunk_rows,
                delimiter: options.delimiter,
            };
            Ok(predict_csv_with_progress(
                &model, input, output, &native, progress,
            )?)
        }
        Framework::Onnx => onnx(&load(dir)?, input, output, options, progress),
    }
}

fn onnx(
    loaded: &Loaded,
    input: &Path,
    output: impl Write,
    options: &ScoreOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PredictSummary, RuntimeError> {
    let m = &loaded.manifest;
    let spec = m
        .model
        .onnx
        .as_ref()
        .ok_or_else(|| LearnError::data(input, "the package is not an ONNX package"))?;
    let text: Vec<bool> = tabular::numeric_features(spec, &*loaded.model)
        .iter()
        .map(|f| matches!(f.kind, slipway_core::FeatureKind::Categorical { .. }))
        .collect();
    let (mut reader, names) = csv_reader(input, options.delimiter)?;
    let find = |name: &str, what: &str| {
        names.iter().position(|n| n == name).ok_or_else(|| {
            LearnError::data(
                input,
                format!(
                    "{what} `{name}`, which this file lacks; its columns are: {}",
                    names.join(", ")
                ),
            )
        })
    };
    let columns = spec
        .features
        .iter()
        .map(|f| find(f, "the model needs a column named"))
        .collect::<Result<Vec<_>, _>>()?;
    let id = options
        .id_column
        .as_deref()
        .map(|c| find(c, "no id column named"))
        .transpose()?;
    let out_err = |e: csv::Error| {
        let io = if let csv::ErrorKind::Io(io) = e.into_kind() {
            io
        } else {
            std::io::Error::other("the CSV writer failed")
        };
        LearnError::io(&options.output, io)
    };
    let mut writer = csv::WriterBuilder::new()
        .buffer_capacity(1 << 20)
        .from_writer(output);
    let header = output_header(m, options.id_column.as_deref());
    writer.write_record(&header).map_err(out_err)?;
    let threshold = options
        .threshold
        .unwrap_or(m.target.threshold.unwrap_or(0.5));
    let chunk = options.chunk_rows.max(1);
    let mut summary = PredictSummary {
        rows: 0,
        unseen_categories: 0,
    };
    let mut record = csv::ByteRecord::new();
    let mut block = Block::new(input, spec.features.clone(), &text);
    let mut ids: Vec<Vec<u8>> = Vec::new();
    loop {
        let more = reader
            .read_byte_record(&mut record)
            .map_err(|e| csv_error(input, e, names.len()))?;
        if more {
            block.push(&record, &columns)?;
            if let Some(j) = id {
                ids.push(record[j].to_vec());
            }
            summary.rows += 1;
        }
        if block.frame.n_rows == chunk || (!more && block.frame.n_rows > 0) {
            let rows: Vec<usize> = (0..block.frame.n_rows).collect();
            let all: Vec<usize> = (0..columns.len()).collect();
            let scored = tabular::score(m, &*loaded.model, &block.frame, &all, &rows)
                .map_err(|e| LearnError::data(input, e))?;
            for (i, row) in scored.out.rows().into_iter().enumerate() {
                if id.is_some() {
                    writer.write_field(&ids[i]).map_err(out_err)?;
                }
                for v in row {
                    writer.write_field(v.to_string()).map_err(out_err)?;
                }
                if m.task != Task::Regression {
                    let scores = row.to_vec();
                    writer
                        .write_field(m.label(&scores, threshold))
                        .map_err(out_err)?;
                }
                writer.write_record(None::<&[u8]>).map_err(out_err)?;
            }
            block.clear();
            ids.clear();
            progress(summary.rows, record.position().map_or(0, |p| p.byte()));
        }
        if !more {
            break;
        }
    }
    writer
        .flush()
        .map_err(|e| LearnError::io(&options.output, e))?;
    Ok(summary)
}

/// One chunk of rows as a frame of the feature columns: numbers for numeric inputs, text for
/// BYTES inputs.
struct Block<'a> {
    path: &'a Path,
    text: &'a [bool],
    frame: Frame,
}

impl<'a> Block<'a> {
    fn new(path: &'a Path, names: Vec<String>, text: &'a [bool]) -> Self {
        Block {
            path,
            text,
            frame: Frame {
                path: path.to_path_buf(),
                names,
                columns: empty(text),
                n_rows: 0,
                lines: Vec::new(),
                sha256: String::new(),
            },
        }
    }

    fn push(&mut self, record: &csv::ByteRecord, columns: &[usize]) -> Result<(), LearnError> {
        let line = record.position().map(csv::Position::line);
        for (k, &j) in columns.iter().enumerate() {
            let field = &record[j];
            match &mut self.frame.columns[k] {
                Column::Numeric(v) => v.push(if is_missing(field) {
                    f64::NAN
                } else {
                    parse_number(field).ok_or_else(|| LearnError::Data {
                        path: self.path.to_path_buf(),
                        line,
                        column: Some(self.frame.names[k].clone()),
                        message: format!("`{}` is not a number", String::from_utf8_lossy(field)),
                    })?
                }),
                Column::Categorical { codes, .. } if is_missing(field) => codes.push(MISSING_CODE),
                Column::Categorical { codes, levels } => {
                    // Each row its own level: the block is scored and dropped whole.
                    codes.push(u32::try_from(levels.len()).unwrap_or(MISSING_CODE));
                    levels.push(String::from_utf8_lossy(field).into_owned());
                }
            }
        }
        self.frame.n_rows += 1;
        self.frame.lines.push(line.unwrap_or(0));
        Ok(())
    }

    fn clear(&mut self) {
        self.frame.columns = empty(self.text);
        self.frame.n_rows = 0;
        self.frame.lines.clear();
    }
}

fn empty(text: &[bool]) -> Vec<Column> {
    text.iter()
        .map(|&t| {
            if t {
                Column::Categorical {
                    codes: Vec::new(),
                    levels: Vec::new(),
                }
            } else {
                Column::Numeric(Vec::new())
            }
        })
        .collect()
}
