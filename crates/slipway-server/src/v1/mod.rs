//! The V1 records codec: `{"instances": [{"col": value, …}, …]}` read in one pass straight
//! into the model's input buffers (no JSON tree), and the outputs written back as one
//! prediction object per record.
//!
//! Every record is checked as it is read: a field must be one of the model's columns (unless
//! the server ignores unknown columns), at most once, and of its column's type: a number (or
//! `null`) for a numeric column, a string or a number for a categorical one, an integer for an
//! INT64 input, `true`/`false` for a BOOL one. Anything else is refused with a 400 that names
//! the column and the record. A missing field or `null` follows the package's missing-value
//! rule: a native model imputes it (the training median, or the most frequent category); an
//! ONNX graph gets NaN for a float input and has no missing value for an integer, boolean or
//! string input, so there it is refused.
//!
//! Each record's row is claimed from the model's admission before it is stored, so a flood of
//! records (4 million `{}` in 12 MB) is refused once it passes the model's capacity, having
//! cost at most that many rows of buffers.

mod answer;

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use slipway_core::{DataType, Family, FeatureKind, Framework, Tensor, TensorData};
use slipway_engine::Served;

use crate::error::clip;
use crate::state::UnknownColumns;
use crate::{ApiError, pipeline::Claim};

pub use answer::predictions;

/// What a column takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A number; missing is NaN.
    Number,
    /// A whole number; no missing value.
    Integer,
    /// Text (a number is read as its text); missing is empty text.
    Text,
    /// Text; no missing value.
    Word,
    /// `true` or `false`; no missing value.
    Bool,
}

impl Kind {
    fn wants(self) -> &'static str {
        match self {
            Kind::Number => "a number or null",
            Kind::Integer => "a whole number",
            Kind::Text => "a string, a number or null",
            Kind::Word => "a string or a number",
            Kind::Bool => "true or false",
        }
    }

    fn missing_ok(self) -> bool {
        matches!(self, Kind::Number | Kind::Text)
    }
}

/// One column's values as they are read.
enum Buffer {
    F64(Vec<f64>),
    I64(Vec<i64>),
    Bytes(Vec<Vec<u8>>),
    Bool(Vec<bool>),
}

/// How the columns become the model's inputs.
enum Layout {
    /// One tensor per column: `(input name, its datatype, rank 2 ([rows, 1]) or 1)`.
    PerColumn(Vec<(String, DataType, bool)>),
    /// One `[rows, columns]` matrix of `datatype` (FP32 or FP64) named `input`.
    Matrix { input: String, datatype: DataType },
}

/// How a model's records are read: its columns and how they feed its inputs.
pub struct Plan {
    columns: Vec<(String, Kind)>,
    layout: Layout,
    unknown: UnknownColumns,
}

impl Plan {
    /// The plan for `served`'s package.
    pub fn of(served: &Served, unknown: UnknownColumns) -> Result<Plan, ApiError> {
        let m = &served.manifest;
        let sig = served.signature();
        let (columns, layout) = match m.framework {
            Framework::Native if slipway_runtime::matrix_width(sig).is_some() => {
                let input = &sig.inputs[0];
                (
                    m.features
                        .iter()
                        .map(|f| (f.name.clone(), Kind::Number))
                        .collect(),
                    Layout::Matrix {
                        input: input.name.clone(),
                        datatype: input.datatype,
                    },
                )
            }
            Framework::Native => {
                let columns: Vec<(String, Kind)> = m
                    .features
                    .iter()
                    .map(|f| {
                        let kind = match f.kind {
                            FeatureKind::Numeric { .. } => Kind::Number,
                            FeatureKind::Categorical { .. } => Kind::Text,
                        };
                        (f.name.clone(), kind)
                    })
                    .collect();
                let inputs = columns
                    .iter()
                    .map(|(name, kind)| {
                        let dt = if *kind == Kind::Number {
                            DataType::Fp64
                        } else {
                            DataType::Bytes
                        };
                        (name.clone(), dt, false)
                    })
                    .collect();
                (columns, Layout::PerColumn(inputs))
            }
            Framework::Onnx => {
                let spec = m.model.onnx.as_ref().ok_or_else(|| {
                    ApiError::Internal("the ONNX package has no onnx section".into())
                })?;
                if spec.input.is_empty() {
                    let mut columns = Vec::with_capacity(spec.features.len());
                    let mut inputs = Vec::with_capacity(spec.features.len());
                    for f in &spec.features {
                        let input = sig.inputs.iter().find(|i| i.name == *f).ok_or_else(|| {
                            ApiError::Internal(format!("the graph lacks input `{f}`"))
                        })?;
                        let kind = match input.datatype.family() {
                            Family::Float => Kind::Number,
                            Family::Bool => Kind::Bool,
                            Family::Bytes => Kind::Word,
                            Family::Integer => Kind::Integer,
                        };
                        columns.push((f.clone(), kind));
                        inputs.push((f.clone(), input.datatype, input.shape.len() == 2));
                    }
                    (columns, Layout::PerColumn(inputs))
                } else {
                    let input = sig
                        .inputs
                        .iter()
                        .find(|i| i.name == spec.input)
                        .ok_or_else(|| {
                            ApiError::Internal("the graph lacks its matrix input".into())
                        })?;
                    (
                        spec.features
                            .iter()
                            .map(|f| (f.clone(), Kind::Number))
                            .collect(),
                        Layout::Matrix {
                            input: input.name.clone(),
                            datatype: input.datatype,
                        },
                    )
                }
            }
        };
        Ok(Plan {
            columns,
            layout,
            unknown,
        })
    }

    /// Reads a V1 body into the model's inputs, claiming each record's row before storing it.
    /// Returns the inputs and their datatypes.
    pub fn decode(
        &self,
        body: &[u8],
        claim: &mut Claim<'_>,
    ) -> Result<(Vec<Tensor>, Vec<DataType>), ApiError> {
        let mut reader = Reader {
            plan: self,
            claim,
            buffers: self
                .columns
                .iter()
                .map(|(_, kind)| match kind {
                    Kind::Number => Buffer::F64(Vec::new()),
                    Kind::Integer => Buffer::I64(Vec::new()),
                    Kind::Text | Kind::Word => Buffer::Bytes(Vec::new()),
                    Kind::Bool => Buffer::Bool(Vec::new()),
                })
                .collect(),
            rows: 0,
            failure: None,
        };
        let mut de = serde_json::Deserializer::from_slice(body);
        let found = Body {
            reader: &mut reader,
        }
        .deserialize(&mut de)
        .and_then(|found| de.end().map(|()| found));
        if let Some(e) = reader.failure.take() {
            return Err(e);
        }
        match found {
            Ok(true) => {}
            Ok(false) => {
                return Err(ApiError::BadRequest(
                    "the request needs an `instances` array of records, e.g. {\"instances\": [{\"age\": 41}]}".into(),
                ));
            }
            Err(e) if e.is_data() => {
                return Err(ApiError::BadRequest(format!(
                    "the request must be an object with an `instances` array of records (JSON objects): {e}"
                )));
            }
            Err(e) => {
                return Err(ApiError::BadRequest(format!(
                    "the request is not valid JSON: {e}"
                )));
            }
        }
        Ok(self.tensors(reader.buffers, reader.rows))
    }

    fn tensors(&self, buffers: Vec<Buffer>, rows: usize) -> (Vec<Tensor>, Vec<DataType>) {
        match &self.layout {
            Layout::Matrix { input, datatype } => {
                let width = buffers.len();
                let column = |b: &Buffer, r: usize| match b {
                    Buffer::F64(v) => v[r],
                    Buffer::I64(_) | Buffer::Bytes(_) | Buffer::Bool(_) => f64::NAN,
                };
                let values = (0..rows).flat_map(|r| buffers.iter().map(move |b| column(b, r)));
                let (data, dt) = if *datatype == DataType::Fp32 {
                    (
                        TensorData::Fp32(values.map(|v| v as f32).collect()),
                        DataType::Fp32,
                    )
                } else {
                    (TensorData::Fp64(values.collect()), DataType::Fp64)
                };
                (
                    vec![Tensor {
                        name: input.clone(),
                        shape: vec![rows, width],
                        data,
                    }],
                    vec![dt],
                )
            }
            Layout::PerColumn(inputs) => inputs
                .iter()
                .zip(buffers)
                .map(|((name, dt, rank2), b)| {
                    let (data, wire) = match b {
                        Buffer::F64(v) if *dt == DataType::Fp64 => {
                            (TensorData::Fp64(v), DataType::Fp64)
                        }
                        // FP32: the only other float type a model's signature takes.
                        Buffer::F64(v) => (
                            TensorData::Fp32(v.into_iter().map(|x| x as f32).collect()),
                            DataType::Fp32,
                        ),
                        Buffer::I64(v) => (TensorData::Int64(v), DataType::Int64),
                        Buffer::Bytes(v) => (TensorData::Bytes(v), DataType::Bytes),
                        Buffer::Bool(v) => (TensorData::Bool(v), DataType::Bool),
                    };
                    let shape = if *rank2 { vec![rows, 1] } else { vec![rows] };
                    (
                        Tensor {
                            name: name.clone(),
                            shape,
                            data,
                        },
                        wire,
                    )
                })
                .unzip(),
        }
    }

    fn column(&self, key: &str) -> Option<usize> {
        self.columns.iter().position(|(name, _)| name == key)
    }

    fn names(&self) -> String {
        let all: Vec<&str> = self.columns.iter().map(|(n, _)| n.as_str()).collect();
        clip(&all.join(", "), 400)
    }
}

/// One decode's state.
struct Reader<'p, 'c, 'd> {
    plan: &'p Plan,
    claim: &'c mut Claim<'d>,
    buffers: Vec<Buffer>,
    rows: usize,
    /// The error to report, when the serde error is only how the reader stopped.
    failure: Option<ApiError>,
}

impl Reader<'_, '_, '_> {
    fn fail<E: de::Error>(&mut self, e: ApiError) -> E {
        let text = e.message();
        self.failure = Some(e);
        E::custom(text)
    }
}

/// The top-level object; `true` when it held `instances`.
struct Body<'r, 'p, 'c, 'd> {
    reader: &'r mut Reader<'p, 'c, 'd>,
}

impl<'de> DeserializeSeed<'de> for Body<'_, '_, '_, '_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Body<'_, '_, '_, '_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with an `instances` array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "instances" {
                if found {
                    return Err(de::Error::custom("`instances` appears twice"));
                }
                found = true;
                map.next_value_seed(Records {
                    reader: &mut *self.reader,
                })?;
            } else {
                // Other V1 fields (`signature_name`, `parameters`) are accepted and unused.
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// The `instances` array.
struct Records<'r, 'p, 'c, 'd> {
    reader: &'r mut Reader<'p, 'c, 'd>,
}

impl<'de> DeserializeSeed<'de> for Records<'_, '_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Records<'_, '_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let reader = self.reader;
        loop {
            let row = reader.rows;
            let mut seen = vec![false; reader.plan.columns.len()];
            // The record claims its row as it starts, before anything is stored for it.
            let got = seq.next_element_seed(Record {
                reader: &mut *reader,
                row,
                seen: &mut seen,
            })?;
            if got.is_none() {
                return Ok(());
            }
            // Columns the record left out: missing, where the column has a missing value.
            for (c, was) in seen.iter().enumerate() {
                if !was {
                    let (name, kind) = &reader.plan.columns[c];
                    if !kind.missing_ok() {
                        let e = ApiError::BadRequest(format!(
                            "record {row} has no `{name}`; this model's `{name}` has no missing value: send {}",
                            kind.wants()
                        ));
                        return Err(reader.fail(e));
                    }
                    push_missing(&mut reader.buffers[c]);
                }
            }
            reader.rows += 1;
        }
    }
}

fn push_missing(b: &mut Buffer) {
    match b {
        Buffer::F64(v) => v.push(f64::NAN),
        Buffer::Bytes(v) => v.push(Vec::new()),
        // Columns without a missing value never get here.
        Buffer::I64(v) => v.push(0),
        Buffer::Bool(v) => v.push(false),
    }
}

/// One record.
struct Record<'r, 'p, 'c, 'd> {
    reader: &'r mut Reader<'p, 'c, 'd>,
    row: usize,
    seen: &'r mut [bool],
}

impl<'de> DeserializeSeed<'de> for Record<'_, '_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Record<'_, '_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record {} as a JSON object", self.row)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let reader = self.reader;
        let row = self.row;
        if let Err(e) = (reader.claim)(row + 1) {
            return Err(reader.fail(e));
        }
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let Some(c) = reader.plan.column(&key) else {
                if reader.plan.unknown == UnknownColumns::Ignore {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                let e = ApiError::BadRequest(format!(
                    "record {row} has `{}`, which is not one of this model's columns ({}); fix the name, or start the server with --v1-unknown-columns ignore",
                    clip(&key, 64),
                    reader.plan.names()
                ));
                return Err(reader.fail(e));
            };
            if std::mem::replace(&mut self.seen[c], true) {
                let e = ApiError::BadRequest(format!(
                    "record {row} has `{}` twice",
                    reader.plan.columns[c].0
                ));
                return Err(reader.fail(e));
            }
            let kind = reader.plan.columns[c].1;
            let cell = map.next_value::<Cell>()?;
            let stored = store(&mut reader.buffers[c], kind, cell);
            if let Err(got) = stored {
                let e = ApiError::BadRequest(format!(
                    "record {row}: `{}` must be {}, not {got}",
                    reader.plan.columns[c].0,
                    kind.wants()
                ));
                return Err(reader.fail(e));
            }
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.reader.fail(not_a_record(self.row, "null")))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.reader.fail(not_a_record(self.row, "a boolean")))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.reader.fail(not_a_record(self.row, "a number")))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.reader.fail(not_a_record(self.row, "a number")))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.reader.fail(not_a_record(self.row, "a number")))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.reader.fail(not_a_record(self.row, "a string")))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.reader.fail(not_a_record(self.row, "an array")))
    }
}

fn not_a_record(row: usize, got: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "record {row} is {got}, not a record: each instance must be a JSON object of column: value"
    ))
}

/// One field's value, read without building a JSON tree (nested values are skipped, not
/// kept).
enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Text(String),
    Nested(&'static str),
}

impl<'de> de::Deserialize<'de> for Cell {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Cell, D::Error> {
        d.deserialize_any(CellVisitor)
    }
}

struct CellVisitor;

impl<'de> Visitor<'de> for CellVisitor {
    type Value = Cell;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }
    fn visit_unit<E>(self) -> Result<Cell, E> {
        Ok(Cell::Null)
    }
    fn visit_none<E>(self) -> Result<Cell, E> {
        Ok(Cell::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Cell, E> {
        Ok(Cell::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Cell, E> {
        Ok(Cell::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Cell, E> {
        Ok(Cell::Uint(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Cell, E> {
        Ok(Cell::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Cell, E> {
        Ok(Cell::Text(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Cell, E> {
        Ok(Cell::Text(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cell, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Cell::Nested("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cell, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Cell::Nested("an object"))
    }
}

/// Stores `cell` in a column of `kind`; `Err` describes what was sent instead.
fn store(b: &mut Buffer, kind: Kind, cell: Cell) -> Result<(), String> {
    let described = |cell: &Cell| -> String {
        match cell {
            Cell::Null => "null".into(),
            Cell::Bool(v) => format!("{v}"),
            Cell::Int(_) | Cell::Uint(_) | Cell::Float(_) => "a number".into(),
            Cell::Text(t) => format!("the string \"{}\"", clip(t, 64)),
            Cell::Nested(what) => (*what).into(),
        }
    };
    match (b, kind, cell) {
        (Buffer::F64(v), Kind::Number, Cell::Null) => v.push(f64::NAN),
        (Buffer::F64(v), Kind::Number, Cell::Int(x)) => v.push(x as f64),
        (Buffer::F64(v), Kind::Number, Cell::Uint(x)) => v.push(x as f64),
        (Buffer::F64(v), Kind::Number, Cell::Float(x)) => v.push(x),
        (Buffer::I64(v), Kind::Integer, Cell::Int(x)) => v.push(x),
        (Buffer::I64(v), Kind::Integer, Cell::Uint(x)) => {
            v.push(i64::try_from(x).map_err(|_| "a number beyond INT64".to_string())?);
        }
        (Buffer::I64(v), Kind::Integer, Cell::Float(x))
            if x.fract() == 0.0 && x.abs() < 9.007_199_254_740_992e15 =>
        {
            v.push(x as i64);
        }
        (Buffer::Bytes(v), Kind::Text, Cell::Null) => v.push(Vec::new()),
        (Buffer::Bytes(v), Kind::Text | Kind::Word, Cell::Text(t)) => v.push(t.into_bytes()),
        (Buffer::Bytes(v), Kind::Text | Kind::Word, Cell::Int(x)) => {
            v.push(x.to_string().into_bytes());
        }
        (Buffer::Bytes(v), Kind::Text | Kind::Word, Cell::Uint(x)) => {
            v.push(x.to_string().into_bytes());
        }
        (Buffer::Bytes(v), Kind::Text | Kind::Word, Cell::Float(x)) => {
            v.push(x.to_string().into_bytes());
        }
        (Buffer::Bool(v), Kind::Bool, Cell::Bool(x)) => v.push(x),
        (_, _, cell) => return Err(described(&cell)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_stored_by_kind_or_refused() {
        let mut b = Buffer::F64(Vec::new());
        assert!(store(&mut b, Kind::Number, Cell::Int(3)).is_ok());
        assert!(store(&mut b, Kind::Number, Cell::Null).is_ok());
        assert_eq!(
            store(&mut b, Kind::Number, Cell::Text("old".into())).unwrap_err(),
            "the string \"old\""
        );
        assert_eq!(
            store(&mut b, Kind::Number, Cell::Bool(true)).unwrap_err(),
            "true"
        );
        assert_eq!(
            store(&mut b, Kind::Number, Cell::Nested("an array")).unwrap_err(),
            "an array"
        );
        let mut i = Buffer::I64(Vec::new());
        assert!(store(&mut i, Kind::Integer, Cell::Float(2.0)).is_ok());
        assert!(store(&mut i, Kind::Integer, Cell::Float(2.5)).is_err());
        assert!(store(&mut i, Kind::Integer, Cell::Uint(u64::MAX)).is_err());
        let mut t = Buffer::Bytes(Vec::new());
        assert!(store(&mut t, Kind::Text, Cell::Int(4)).is_ok());
        assert!(store(&mut t, Kind::Word, Cell::Null).is_err());
        if let Buffer::Bytes(v) = t {
            assert_eq!(v, vec![b"4".to_vec()]);
        }
    }
}
