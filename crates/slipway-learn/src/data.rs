//! CSV into a typed, column-major frame.
//!
//! The file is read twice, record by record: once to infer each column's kind and hash the
//! bytes, once to fill typed columns (numbers as `f64`, categories as `u32` codes). Raw text is
//! never held in memory, so a frame costs about eight bytes a cell whatever the file's size.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use crate::error::{LearnError, Result};
use crate::source;

/// Field values read as missing (after trimming spaces).
pub const MISSING_TOKENS: &[&str] = &["", "NA", "N/A", "NaN", "nan", "NULL", "null", "?"];

/// The code of a missing value in a categorical column.
pub const MISSING_CODE: u32 = u32::MAX;

/// True when a raw field is one of [`MISSING_TOKENS`].
pub fn is_missing(field: &[u8]) -> bool {
    let field = field.trim_ascii();
    MISSING_TOKENS.iter().any(|t| t.as_bytes() == field)
}

/// Parses a raw field as a finite number; `None` when it is not one.
pub fn parse_number(field: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(field.trim_ascii()).ok()?;
    let value: f64 = text.parse().ok()?;
    value.is_finite().then_some(value)
}

/// Whether a column holds numbers or categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Numeric,
    Categorical,
}

/// One typed column.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// `NaN` marks a missing value.
    Numeric(Vec<f64>),
    /// Codes index `levels`; [`MISSING_CODE`] marks a missing value. Levels are in order of
    /// first appearance.
    Categorical {
        codes: Vec<u32>,
        levels: Vec<String>,
    },
}

impl Column {
    /// The column's kind.
    pub fn kind(&self) -> ColumnKind {
        match self {
            Column::Numeric(_) => ColumnKind::Numeric,
            Column::Categorical { .. } => ColumnKind::Categorical,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Column::Numeric(v) => v.len(),
            Column::Categorical { codes, .. } => codes.len(),
        }
    }

    /// True when the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when row `i` is missing.
    pub fn is_missing(&self, i: usize) -> bool {
        match self {
            Column::Numeric(v) => v[i].is_nan(),
            Column::Categorical { codes, .. } => codes[i] == MISSING_CODE,
        }
    }

    /// Keeps only the rows where `keep` is true.
    fn retain(&mut self, keep: &[bool]) {
        match self {
            Column::Numeric(v) => retain_by(v, keep),
            Column::Categorical { codes, .. } => retain_by(codes, keep),
        }
    }
}

fn retain_by<T>(v: &mut Vec<T>, keep: &[bool]) {
    let mut i = 0;
    v.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

/// Column kinds to force instead of inferring them.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub kinds: HashMap<String, ColumnKind>,
    /// The field delimiter (default: sniffed from the header).
    pub delimiter: Option<u8>,
}

/// A typed table read from a CSV file.
#[derive(Debug, Clone)]
pub struct Frame {
    pub path: PathBuf,
    pub names: Vec<String>,
    pub columns: Vec<Column>,
    pub n_rows: usize,
    /// The 1-based line on which each row starts, for error messages.
    pub lines: Vec<u64>,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
}

impl Frame {
    /// The index of a column by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The index of a column, or an error that lists the columns there are (and, when the
    /// header is one column holding `;`, a tab or `|`, says the file is separated by that).
    pub fn require(&self, name: &str) -> Result<usize> {
        self.index_of(name).ok_or_else(|| {
            let separated = match self.names.as_slice() {
                [only] => [(';', "semicolon"), ('\t', "tab"), ('|', "pipe")]
                    .into_iter()
                    .find(|(c, _)| only.contains(*c)),
                _ => None,
            };
            let hint = separated.map_or(String::new(), |(c, what)| {
                format!(
                    "; the header is one column holding `{}`, so the file looks {what}-separated: pass --delimiter '{}'",
                    c.escape_default(),
                    source::name(c as u8)
                )
            });
            LearnError::data(
                &self.path,
                format!(
                    "no column named `{name}`; the columns are: {}{hint}",
                    self.names.join(", ")
                ),
            )
        })
    }

    /// Keeps only the rows where `keep` is true.
    pub fn retain_rows(&mut self, keep: &[bool]) {
        for c in &mut self.columns {
            c.retain(keep);
        }
        retain_by(&mut self.lines, keep);
        self.n_rows = keep.iter().filter(|k| **k).count();
    }
}

/// Whether the file starts as gzip does.
fn gzip(path: &Path) -> bool {
    let mut head = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head == [0x1f, 0x8b]
}

/// When a file that should be a CSV starts like a known binary format, says which.
fn not_text_hint(path: &Path) -> Option<String> {
    let mut head = [0u8; 8];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .ok()?;
    let head = &head[..n];
    let what = if head.starts_with(b"PK\x03\x04") {
        "a zip archive (an Excel .xlsx?): export the sheet as CSV"
    } else if head.starts_with(b"PAR1") {
        "a Parquet file: export it as CSV"
    } else if head.starts_with(&[0xd0, 0xcf, 0x11, 0xe0]) {
        "an old Excel .xls: export the sheet as CSV"
    } else {
        return None;
    };
    Some(format!("; this is not a CSV: it is {what}"))
}

/// Maps a csv error to one line naming the file and line.
pub fn csv_error(path: &Path, err: csv::Error, header_len: usize) -> LearnError {
    let line = err.position().map(|p| p.line());
    // csv's ErrorKind is non-exhaustive: test the kinds we word ourselves, keep csv's text otherwise.
    let message = if let csv::ErrorKind::UnequalLengths { len, .. } = err.kind() {
        format!("this row has {len} fields but the header has {header_len}")
    } else if let csv::ErrorKind::Utf8 { err, .. } = err.kind() {
        format!(
            "invalid UTF-8 ({err}){}",
            not_text_hint(path).unwrap_or_else(|| {
                "; a CSV must be UTF-8 text (re-save it as UTF-8, e.g. iconv -f latin1 -t utf-8)"
                    .into()
            })
        )
    } else if let csv::ErrorKind::Io(e) = err.kind() {
        if gzip(path)
            && matches!(
                e.kind(),
                std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::InvalidInput
                    | std::io::ErrorKind::UnexpectedEof
            )
        {
            format!("it is gzip-compressed and does not decompress: {e}")
        } else {
            e.to_string()
        }
    } else {
        err.to_string()
    };
    LearnError::Data {
        path: path.to_path_buf(),
        line,
        column: None,
        message,
    }
}

/// A record reader over a CSV file's text.
pub type CsvReader = csv::Reader<Box<dyn BufRead>>;

/// A CSV reader over a file (gzip-compressed or not) with its header: fields separated by
/// `delimiter`, or by the one the header shows ([`source`]).
pub fn csv_reader(path: &Path, delimiter: Option<u8>) -> Result<(CsvReader, Vec<String>)> {
    reader_over(path, source::open(path, delimiter, None)?)
}

fn reader_over(path: &Path, source: source::Source) -> Result<(CsvReader, Vec<String>)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .delimiter(source.delimiter)
        .from_reader(source.text);
    let header = reader.headers().map_err(|e| csv_error(path, e, 0))?;
    let names: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
    if names.is_empty() || (names.len() == 1 && names[0].is_empty()) {
        return Err(LearnError::data(
            path,
            "the file is empty: it needs a header row and data rows",
        ));
    }
    let mut seen = HashMap::new();
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() {
            return Err(LearnError::Data {
                path: path.to_path_buf(),
                line: Some(1),
                column: None,
                message: format!("header field {} is empty; every column needs a name", i + 1),
            });
        }
        if let Some(first) = seen.insert(n.clone(), i) {
            return Err(LearnError::Data {
                path: path.to_path_buf(),
                line: Some(1),
                column: Some(n.clone()),
                message: format!(
                    "the name appears twice (fields {} and {})",
                    first + 1,
                    i + 1
                ),
            });
        }
    }
    Ok((reader, names))
}

/// Reads a CSV file into a typed frame.
pub fn read_csv(path: &Path, options: &ReadOptions) -> Result<Frame> {
    // Pass 1: kinds, row count, digest.
    let hasher = Rc::new(RefCell::new(Sha256::new()));
    let (mut reader, names) = reader_over(
        path,
        source::open(path, options.delimiter, Some(Rc::clone(&hasher)))?,
    )?;
    for name in options.kinds.keys() {
        if !names.contains(name) {
            return Err(LearnError::data(
                path,
                format!(
                    "no column named `{name}` to set the type of; the columns are: {}",
                    names.join(", ")
                ),
            ));
        }
    }
    let width = names.len();
    let mut numeric = vec![true; width];
    let mut present = vec![false; width];
    let mut rows = 0usize;
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(path, e, width)),
        }
        rows += 1;
        for (j, field) in record.iter().enumerate() {
            if is_missing(field) {
                continue;
            }
            present[j] = true;
            if numeric[j] && parse_number(field).is_none() {
                numeric[j] = false;
            }
        }
    }
    // Drain what the csv reader did not need (a final line without a newline is read already).
    let mut inner = reader.into_inner();
    std::io::copy(&mut inner, &mut std::io::sink()).map_err(|e| LearnError::io(path, e))?;
    drop(inner);
    let sha256 = hex(&hasher.replace(Sha256::new()).finalize());
    if rows == 0 {
        return Err(LearnError::data(
            path,
            "the file has a header but no data rows",
        ));
    }
    let kinds: Vec<ColumnKind> = names
        .iter()
        .enumerate()
        .map(|(j, n)| match options.kinds.get(n) {
            Some(k) => *k,
            None if numeric[j] && present[j] => ColumnKind::Numeric,
            None => ColumnKind::Categorical,
        })
        .collect();

    // Pass 2: typed columns.
    let (mut reader, _) = csv_reader(path, options.delimiter)?;
    let mut columns: Vec<Column> = kinds
        .iter()
        .map(|k| match k {
            ColumnKind::Numeric => Column::Numeric(Vec::with_capacity(rows)),
            ColumnKind::Categorical => Column::Categorical {
                codes: Vec::with_capacity(rows),
                levels: Vec::new(),
            },
        })
        .collect();
    let mut lookups: Vec<HashMap<Box<[u8]>, u32>> = vec![HashMap::new(); width];
    let mut lines = Vec::with_capacity(rows);
    while reader
        .read_byte_record(&mut record)
        .map_err(|e| csv_error(path, e, width))?
    {
        lines.push(record.position().map_or(0, |p| p.line()));
        for (j, field) in record.iter().enumerate() {
            match &mut columns[j] {
                Column::Numeric(values) => {
                    if is_missing(field) {
                        values.push(f64::NAN);
                    } else if let Some(v) = parse_number(field) {
                        values.push(v);
                    } else {
                        return Err(LearnError::Data {
                            path: path.to_path_buf(),
                            line: record.position().map(|p| p.line()),
                            column: Some(names[j].clone()),
                            message: format!(
                                "`{}` is not a number, but the column was declared numeric",
                                String::from_utf8_lossy(field)
                            ),
                        });
                    }
                }
                Column::Categorical { codes, levels } => {
                    if is_missing(field) {
                        codes.push(MISSING_CODE);
                        continue;
                    }
                    let field = field.trim_ascii();
                    let code = match lookups[j].get(field) {
                        Some(code) => *code,
                        None => {
                            let text =
                                std::str::from_utf8(field).map_err(|_| LearnError::Data {
                                    path: path.to_path_buf(),
                                    line: record.position().map(|p| p.line()),
                                    column: Some(names[j].clone()),
                                    message: "the value is not valid UTF-8".into(),
                                })?;
                            let code = u32::try_from(levels.len()).unwrap_or(MISSING_CODE - 1);
                            levels.push(text.to_string());
                            lookups[j].insert(field.into(), code);
                            code
                        }
                    };
                    codes.push(code);
                }
            }
        }
    }
    let n_rows = columns.first().map_or(0, Column::len);
    if n_rows != rows {
        return Err(LearnError::data(
            path,
            "the file changed while it was being read; read it again",
        ));
    }
    Ok(Frame {
        path: path.to_path_buf(),
        names,
        columns,
        n_rows,
        lines,
        sha256,
    })
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The canonical text of a class label: integral numbers lose their decimals (`1.0` → `1`),
/// so a numeric target and the same labels read as text agree.
pub fn canonical_label(raw: &str) -> String {
    let raw = raw.trim();
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
        Ok(_) | Err(_) => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn infers_kinds_missing_values_and_quotes() {
        let (_d, path) = write("a,b,c\n1,x,\"p, q\"\nNA,y,r\n3.5,?,p, q\n");
        let err = read_csv(&path, &ReadOptions::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains(":4: this row has 4 fields but the header has 3"),
            "{err}"
        );

        let (_d, path) = write("a,b,c\n1,x,\"p, q\"\nNA,y,r\n3.5,?,\"p, q\"\n");
        let f = read_csv(&path, &ReadOptions::default()).unwrap();
        assert_eq!(f.n_rows, 3);
        let Column::Numeric(a) = &f.columns[0] else {
            panic!("a should be numeric")
        };
        assert_eq!(a[0], 1.0);
        assert!(a[1].is_nan());
        let Column::Categorical { codes, levels } = &f.columns[1] else {
            panic!("b categorical")
        };
        assert_eq!(levels, &["x", "y"]);
        assert_eq!(codes, &[0, 1, MISSING_CODE]);
        let Column::Categorical { codes, levels } = &f.columns[2] else {
            panic!("c categorical")
        };
        assert_eq!(levels, &["p, q", "r"]);
        assert_eq!(codes, &[0, 1, 0]);
        assert_eq!(f.sha256.len(), 64);
    }

    #[test]
    fn kind_override_forces_categorical_and_checks_numeric() {
        let (_d, path) = write("zip,v\n01000,1\n02000,x\n");
        let mut options = ReadOptions::default();
        options.kinds.insert("zip".into(), ColumnKind::Categorical);
        let f = read_csv(&path, &options).unwrap();
        assert_eq!(f.columns[0].kind(), ColumnKind::Categorical);
        options.kinds.insert("v".into(), ColumnKind::Numeric);
        let err = read_csv(&path, &options).unwrap_err().to_string();
        assert!(
            err.ends_with(
                ":3: column `v`: `x` is not a number, but the column was declared numeric"
            ),
            "{err}"
        );
        options.kinds.insert("nope".into(), ColumnKind::Numeric);
        assert!(
            read_csv(&path, &options)
                .unwrap_err()
                .to_string()
                .contains("no column named `nope`")
        );
    }

    #[test]
    fn empty_and_header_only_files_are_refused() {
        let (_d, path) = write("");
        assert!(
            read_csv(&path, &ReadOptions::default())
                .unwrap_err()
                .to_string()
                .contains("the file is empty")
        );
        let (_d, path) = write("a,b\n");
        assert!(
            read_csv(&path, &ReadOptions::default())
                .unwrap_err()
                .to_string()
                .contains("no data rows")
        );
        let (_d, path) = write("a,a\n1,2\n");
        assert!(
            read_csv(&path, &ReadOptions::default())
                .unwrap_err()
                .to_string()
                .contains("appears twice")
        );
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let err = read_csv(Path::new("/no/such/file.csv"), &ReadOptions::default()).unwrap_err();
        assert!(matches!(err, LearnError::Io { .. }));
        assert!(err.to_string().starts_with("/no/such/file.csv: "), "{err}");
    }

    #[test]
    fn canonical_labels() {
        assert_eq!(canonical_label("1.0"), "1");
        assert_eq!(canonical_label(" 0 "), "0");
        assert_eq!(canonical_label("0.5"), "0.5");
        assert_eq!(canonical_label("bad"), "bad");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn numbers_and_labels_round_trip_through_csv(
            rows in proptest::collection::vec((proptest::num::f64::NORMAL, "[a-z ,\"]{1,8}"), 1..40)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p.csv");
            let mut w = csv::Writer::from_path(&path).unwrap();
            w.write_record(["x", "label"]).unwrap();
            for (x, l) in &rows {
                w.write_record([x.to_string(), format!("L{l}")]).unwrap();
            }
            w.flush().unwrap();
            let f = read_csv(&path, &ReadOptions::default()).unwrap();
            let Column::Numeric(xs) = &f.columns[0] else { panic!("numeric") };
            let Column::Categorical { codes, levels } = &f.columns[1] else { panic!("categorical") };
            for (i, (x, l)) in rows.iter().enumerate() {
                proptest::prop_assert_eq!(xs[i], *x);
                proptest::prop_assert_eq!(&levels[codes[i] as usize], &format!("L{l}").trim().to_string());
            }
        }
    }
}
