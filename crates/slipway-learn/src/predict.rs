//! Streaming batch scoring: CSV in, scores out, in constant memory whatever the file's size.

use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use slipway_core::manifest::answer;
use slipway_core::{Manifest, Task};

use crate::data::{csv_error, csv_reader};
use crate::error::{LearnError, Result};
use crate::package::NativeModel;
use crate::pipeline::EncodeError;

/// Options of a scoring run.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// Where the scores go, for error messages (`-` for standard output).
    pub output: PathBuf,
    /// A column copied from input to output, to join scores back to their rows.
    pub id_column: Option<String>,
    /// Probability at or above which a binary prediction is the positive class.
    pub threshold: f64,
    /// Rows scored together.
    pub chunk_rows: usize,
    /// The input's field delimiter (default: sniffed from the header).
    pub delimiter: Option<u8>,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            output: PathBuf::from("-"),
            id_column: None,
            threshold: 0.5,
            chunk_rows: 4096,
            delimiter: None,
        }
    }
}

/// What a scoring run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PredictSummary {
    pub rows: u64,
    /// Cells whose category was not seen in training (encoded as all zeros).
    pub unseen_categories: u64,
}

/// The output columns for a model: an id column if asked, then the answer's parts (one shape
/// per task, [`answer`]), multiclass probabilities one column per class.
pub fn output_header(manifest: &Manifest, id: Option<&str>) -> Vec<String> {
    let mut header: Vec<String> = id.map(str::to_string).into_iter().collect();
    match manifest.task {
        Task::BinaryClassification => {
            header.push(answer::PROBABILITY.into());
            header.push(answer::LABEL.into());
        }
        Task::MulticlassClassification => {
            header.extend(
                manifest
                    .target
                    .classes
                    .iter()
                    .map(|c| format!("{}_{c}", answer::PROBABILITY)),
            );
            header.push(answer::LABEL.into());
        }
        Task::Regression => header.push(answer::PREDICTION.into()),
    }
    header
}

/// Scores every row of `input` and writes one output row per input row, in order.
pub fn predict_csv(
    model: &NativeModel,
    input: &Path,
    output: impl Write,
    options: &PredictOptions,
) -> Result<PredictSummary> {
    predict_csv_with_progress(model, input, output, options, &mut |_, _| {})
}

/// [`predict_csv`], calling `progress(rows, bytes)` after each chunk with the rows scored and the
/// input bytes read so far.
pub fn predict_csv_with_progress(
    model: &NativeModel,
    input: &Path,
    output: impl Write,
    options: &PredictOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PredictSummary> {
    let (mut reader, names) = csv_reader(input, options.delimiter)?;
    let features = &model.manifest.features;
    let mut columns = Vec::with_capacity(features.len());
    for f in features {
        let j = names.iter().position(|n| *n == f.name).ok_or_else(|| {
            LearnError::data(
                input,
                format!(
                    "the model needs a column named `{}`, which this file lacks; its columns are: {}",
                    f.name,
                    names.join(", ")
                ),
            )
        })?;
        columns.push(j);
    }
    let id = match &options.id_column {
        Some(name) => Some(names.iter().position(|n| n == name).ok_or_else(|| {
            LearnError::data(
                input,
                format!(
                    "no id column named `{name}`; the columns are: {}",
                    names.join(", ")
                ),
            )
        })?),
        None => None,
    };
    let mut writer = csv::WriterBuilder::new()
        .buffer_capacity(1 << 20)
        .from_writer(output);
    let out_err = |e: csv::Error| {
        let io = if let csv::ErrorKind::Io(io) = e.into_kind() {
            io
        } else {
            std::io::Error::other("the CSV writer failed")
        };
        LearnError::io(&options.output, io)
    };
    writer
        .write_record(output_header(&model.manifest, options.id_column.as_deref()))
        .map_err(out_err)?;

    let chunk = options.chunk_rows.max(1);
    let width = model.encoder.width();
    let mut x = Array2::<f64>::zeros((chunk, width));
    let mut ids: Vec<Vec<u8>> = vec![Vec::new(); chunk];
    let mut record = csv::ByteRecord::new();
    let mut summary = PredictSummary {
        rows: 0,
        unseen_categories: 0,
    };
    let mut filled = 0;
    let mut buf = ryu::Buffer::new();
    let mut flush = |x: &Array2<f64>,
                     ids: &[Vec<u8>],
                     filled: usize,
                     writer: &mut csv::Writer<_>|
     -> Result<()> {
        let out = model.forward(x.slice(ndarray::s![..filled, ..]));
        for (i, row) in out.rows().into_iter().enumerate() {
            if id.is_some() {
                writer.write_field(&ids[i]).map_err(out_err)?;
            }
            let row = row.as_slice().expect("forward returns standard layout");
            match model.task() {
                Task::BinaryClassification | Task::MulticlassClassification => {
                    for p in row {
                        writer.write_field(buf.format(*p)).map_err(out_err)?;
                    }
                    writer
                        .write_field(model.label(row, options.threshold))
                        .map_err(out_err)?;
                }
                Task::Regression => writer.write_field(buf.format(row[0])).map_err(out_err)?,
            }
            writer.write_record(None::<&[u8]>).map_err(out_err)?;
        }
        Ok(())
    };
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(input, e, names.len())),
        }
        let mut row = x.row_mut(filled);
        row.fill(0.0);
        let encoded = model
            .encoder
            .encode(columns.iter().map(|j| &record[*j]), row);
        match encoded {
            Ok(unseen) => summary.unseen_categories += u64::from(unseen),
            Err(EncodeError::NotNumeric { index }) => {
                return Err(LearnError::Data {
                    path: input.to_path_buf(),
                    line: record.position().map(|p| p.line()),
                    column: Some(features[index].name.clone()),
                    message: format!(
                        "`{}` is not a number",
                        String::from_utf8_lossy(&record[columns[index]])
                    ),
                });
            }
        }
        if let Some(j) = id {
            ids[filled].clear();
            ids[filled].extend_from_slice(&record[j]);
        }
        filled += 1;
        summary.rows += 1;
        if filled == chunk {
            flush(&x, &ids, filled, &mut writer)?;
            filled = 0;
            progress(summary.rows, record.position().map_or(0, |p| p.byte()));
        }
    }
    if filled > 0 {
        flush(&x, &ids, filled, &mut writer)?;
    }
    writer
        .flush()
        .map_err(|e| LearnError::io(&options.output, e))?;
    Ok(summary)
}
