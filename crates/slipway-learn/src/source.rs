//! Where a CSV's bytes come from: a file, gzip-compressed or not (known by its first bytes,
//! whatever its name: `applicants.csv.gz` reads as `applicants.csv` does), and the delimiter
//! its fields are separated by — given with `--delimiter`, or sniffed from the header line:
//! whichever of `,`, `;`, tab and `|` it holds most outside quotes (a comma on a tie, or when
//! it holds none: a one-column file).

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use flate2::bufread::MultiGzDecoder;
use sha2::{Digest, Sha256};

use crate::error::{LearnError, Result};

/// The delimiters sniffed, with their names, comma first.
pub const DELIMITERS: [(u8, &str); 4] = [
    (b',', "comma"),
    (b';', "semicolon"),
    (b'\t', "tab"),
    (b'|', "pipe"),
];

/// How far into the (decompressed) text the header line is looked for.
const SNIFF_BYTES: usize = 1 << 16;

/// Parses `--delimiter`: one ASCII character, or `tab` / `\t`.
pub fn parse_delimiter(text: &str) -> std::result::Result<u8, String> {
    match text {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        t if t.len() == 1 && t.is_ascii() && t != "\"" && t != "\n" && t != "\r" => {
            Ok(t.as_bytes()[0])
        }
        _ => Err(format!(
            "`{text}` is not a delimiter: give one ASCII character such as ';' or '|', or 'tab'"
        )),
    }
}

/// An opened CSV source: its text and its delimiter.
pub struct Source {
    pub text: Box<dyn BufRead>,
    pub delimiter: u8,
}

/// A reader that hashes the file's bytes as they pass (before any decompression).
struct Hashing<R> {
    inner: R,
    hasher: Rc<RefCell<Sha256>>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.borrow_mut().update(&buf[..n]);
        Ok(n)
    }
}

/// Opens `path` for CSV reading: decompresses gzip, and sniffs the delimiter unless one is
/// given. With `hasher`, every byte of the file as stored is hashed into it as it is read.
pub fn open(
    path: &Path,
    delimiter: Option<u8>,
    hasher: Option<Rc<RefCell<Sha256>>>,
) -> Result<Source> {
    let file = std::fs::File::open(path).map_err(|e| LearnError::io(path, e))?;
    if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(LearnError::data(path, "is a folder, not a CSV file"));
    }
    let raw: Box<dyn Read> = match hasher {
        Some(hasher) => Box::new(Hashing {
            inner: file,
            hasher,
        }),
        None => Box::new(file),
    };
    let mut raw = BufReader::with_capacity(1 << 20, raw);
    let head = raw.fill_buf().map_err(|e| LearnError::io(path, e))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let mut text: Box<dyn BufRead> = if gzip {
        Box::new(BufReader::with_capacity(1 << 20, MultiGzDecoder::new(raw)))
    } else {
        Box::new(raw)
    };
    let delimiter = match delimiter {
        Some(d) => d,
        None => {
            let head = text.fill_buf().map_err(|e| {
                if gzip {
                    LearnError::data(
                        path,
                        format!("it is gzip-compressed and does not decompress: {e}"),
                    )
                } else {
                    LearnError::io(path, e)
                }
            })?;
            sniff(&head[..head.len().min(SNIFF_BYTES)])
        }
    };
    Ok(Source { text, delimiter })
}

/// About how many bytes of text `path` holds, for a progress bar: its size, or for a gzip file
/// the size its trailer records (modulo 4 GiB, as gzip keeps it; a bar over a larger file
/// stops at its end).
pub fn text_size(path: &Path) -> u64 {
    use std::io::{Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return 0;
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let mut magic = [0u8; 2];
    let mut isize = [0u8; 4];
    let gzip = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    if gzip
        && len >= 18
        && file.seek(SeekFrom::End(-4)).is_ok()
        && file.read_exact(&mut isize).is_ok()
    {
        return u64::from(u32::from_le_bytes(isize)).max(len);
    }
    len
}

/// The delimiter of the header line at the start of `head`: the most frequent of
/// [`DELIMITERS`] outside quotes, a comma on a tie or when there is none.
pub fn sniff(head: &[u8]) -> u8 {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(head);
    let mut counts = [0usize; DELIMITERS.len()];
    let mut quoted = false;
    for &b in line {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(i) = DELIMITERS.iter().position(|(d, _)| *d == b) {
            counts[i] += 1;
        }
    }
    let best = counts
        .iter()
        .enumerate()
        .fold(0, |b, (i, &n)| if n > counts[b] { i } else { b });
    DELIMITERS[best].0
}

/// A delimiter as people name it (`;`, `tab`).
pub fn name(delimiter: u8) -> String {
    match delimiter {
        b'\t' => "tab".into(),
        d => (d as char).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_says_the_delimiter() {
        assert_eq!(sniff(b"a,b;c\n1;2,3\n"), b',');
        assert_eq!(sniff(b"income, net;age;city\n"), b';');
        assert_eq!(sniff(b"a;b;c\n1,5;2;3\n"), b';');
        assert_eq!(sniff(b"a\tb\n"), b'\t');
        assert_eq!(sniff(b"a|b|c"), b'|');
        assert_eq!(sniff(b"\"x,y\";b\n"), b';');
        assert_eq!(sniff(b"only\n1\n"), b',');
        assert_eq!(sniff(b""), b',');
    }

    #[test]
    fn gzip_reads_as_its_text_and_knows_its_size() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let text = "a;b\n".to_string() + &"1;2\n".repeat(5000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let path = dir.path().join("x.csv.gz");
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() < text.len() as u64 / 10);
        assert_eq!(text_size(&path), text.len() as u64);
        let hasher = Rc::new(RefCell::new(Sha256::new()));
        let mut source = open(&path, None, Some(Rc::clone(&hasher))).unwrap();
        assert_eq!(source.delimiter, b';');
        let mut read = String::new();
        source.text.read_to_string(&mut read).unwrap();
        assert_eq!(read, text);
        drop(source);
        // The digest is of the file as stored.
        let stored = std::fs::read(&path).unwrap();
        assert_eq!(
            hasher.borrow().clone().finalize().to_vec(),
            Sha256::digest(&stored).to_vec()
        );
        let plain = dir.path().join("x.csv");
        std::fs::write(&plain, &text).unwrap();
        assert_eq!(text_size(&plain), text.len() as u64);
    }

    #[test]
    fn delimiters_parse_or_say_why_not() {
        assert_eq!(parse_delimiter(";"), Ok(b';'));
        assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
        assert_eq!(parse_delimiter("\\t"), Ok(b'\t'));
        assert!(parse_delimiter(";;").is_err());
        assert!(parse_delimiter("\"").is_err());
        assert!(parse_delimiter("é").is_err());
    }
}
