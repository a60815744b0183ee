//! The one-pass reader for the usual inference request: `{"inputs": [{"name", "datatype",
//! "shape", "data": [numbers…]}], …}` with `name`, `datatype` and `shape` before `data` (the
//! order tritonclient, KServe's clients and numpy-based code write). Numeric `data` is read straight
//! into its typed buffer as the reader goes, so the body is read once, not once to find where
//! `data` ends and again to read it.
//!
//! It gives up (`None`) at anything unusual: escapes in a key or string, `data` before its
//! name, datatype or shape, a negative dimension, text or booleans in `data`, a repeated field, a value out of range, any
//! syntax error. serde then reads the request and words the error, so both readers accept the
//! same requests and read them the same way (`parse_request_serde` is the reference; a
//! proptest and the `oip_request` fuzz target compare them).

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde_json::Value as Json;
use slipway_core::{DataType, TensorData};

use super::{
    Data, Floats32, Floats64, Header, HeaderInput, InputParameters, Ints, Scanned, Sink, datatype,
    element_count, held, push_number, request_id, scan_number, shape_of,
};

/// Nesting deeper than this is left to serde (which refuses past 128).
const MAX_DEPTH: u32 = 64;

/// Reads a request header in one pass, or `None` to leave it to serde.
pub(super) fn header(text: &[u8]) -> Option<Header<'_>> {
    let mut c = Cursor { b: text, i: 0 };
    let mut h = Header::default();
    let mut seen = [false; 4];
    c.object(|c, key| {
        match key {
            "id" => {
                once(&mut seen[3])?;
                h.id = request_id(c.parse::<Option<Json>>()?);
            }
            "inputs" => {
                once(&mut seen[0])?;
                h.inputs = Some(c.array(input)?);
            }
            "outputs" => {
                once(&mut seen[1])?;
                h.outputs = c.parse::<Option<Json>>()?;
            }
            "parameters" => {
                once(&mut seen[2])?;
                h.parameters = c.parse::<Option<Json>>()?;
            }
            _ => {
                c.parse::<IgnoredAny>()?;
            }
        }
        Some(())
    })?;
    c.ws();
    (c.i == text.len()).then_some(h)
}

/// A field seen for the first time (serde refuses a repeated field: so does the reader).
fn once(seen: &mut bool) -> Option<()> {
    (!std::mem::replace(seen, true)).then_some(())
}

fn input<'a>(c: &mut Cursor<'a>) -> Option<HeaderInput<'a>> {
    let mut input = HeaderInput::default();
    let mut seen = [false; 5];
    c.object(|c, key| {
        match key {
            "name" => {
                once(&mut seen[0])?;
                input.name = Some(Cow::Borrowed(c.string()?));
            }
            "datatype" => {
                once(&mut seen[1])?;
                input.datatype = Some(Cow::Borrowed(c.string()?));
            }
            "shape" => {
                once(&mut seen[2])?;
                input.shape = Some(c.array(|c| {
                    // A negative dimension is refused anyway, and serde reads `-0` as a float:
                    // serde words both.
                    if c.peek()? == b'-' {
                        return None;
                    }
                    match scan_number(c.b, c.i)? {
                        (Scanned::Int(v), end) => {
                            c.i = end;
                            i64::try_from(v).ok()
                        }
                        _ => None,
                    }
                })?);
            }
            "parameters" => {
                once(&mut seen[3])?;
                input.binary_size = c
                    .parse::<Option<InputParameters>>()?
                    .and_then(|p| p.binary_data_size);
            }
            "data" => {
                once(&mut seen[4])?;
                let name = input.name.as_deref()?;
                let dt = datatype(input.datatype.as_deref()?).ok()?;
                let shape = shape_of(name, input.shape.as_deref()?).ok()?;
                let count = element_count(name, &shape).ok()?;
                input.data = Some(Data::Decoded(data(c, dt, count)?));
            }
            _ => {
                c.parse::<IgnoredAny>()?;
            }
        }
        Some(())
    })?;
    Some(input)
}

/// Numeric `data` into the buffer of the held type; text and booleans are serde's.
fn data(c: &mut Cursor<'_>, dt: DataType, count: usize) -> Option<TensorData> {
    let cap = count.min(1 << 20);
    Some(match held(dt) {
        DataType::Fp32 => {
            TensorData::Fp32(c.numbers(count, Floats32(Vec::with_capacity(cap), dt))?.0)
        }
        DataType::Fp64 => TensorData::Fp64(c.numbers(count, Floats64(Vec::with_capacity(cap)))?.0),
        DataType::Int64 => {
            TensorData::Int64(c.numbers(count, Ints(Vec::with_capacity(cap), dt))?.0)
        }
        _ => return None,
    })
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.i += 1)
    }

    /// A string with no escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let len = self.b[start..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if self.b[start + len] != b'"' {
            return None;
        }
        self.i = start + len + 1;
        std::str::from_utf8(&self.b[start..start + len]).ok()
    }

    /// `{ "key": value, … }`, calling `field` with the cursor on each value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            field(self, key)?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `[ item, … ]`.
    fn array<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.eat(b'[')?;
        let mut out = Vec::new();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(out);
        }
        loop {
            out.push(item(self)?);
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(out);
                }
                _ => return None,
            }
        }
    }

    /// The next value, found by its brackets and quotes, then read (and so checked) by serde:
    /// for the small values around the data.
    fn parse<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        self.ws();
        let start = self.i;
        let mut depth = 0u32;
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b'"' => {
                    self.i += 1;
                    loop {
                        match *self.b.get(self.i)? {
                            b'\\' => self.i += 2,
                            b'"' => {
                                self.i += 1;
                                break;
                            }
                            _ => self.i += 1,
                        }
                    }
                }
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return None;
                    }
                    self.i += 1;
                }
                b']' | b'}' if depth == 0 => break,
                b']' | b'}' => {
                    depth -= 1;
                    self.i += 1;
                }
                b',' if depth == 0 => break,
                _ => self.i += 1,
            }
            if depth == 0 && matches!(self.b[self.i - 1], b'"' | b']' | b'}') {
                break;
            }
        }
        serde_json::from_slice(self.b.get(start..self.i)?).ok()
    }

    /// `count` numbers in (nested) arrays, row-major, into `sink`.
    fn numbers<S: Sink>(&mut self, count: usize, mut sink: S) -> Option<S> {
        self.eat(b'[')?;
        let mut depth = 1u32;
        // After `[` or `,` a value is due; `]` may also close a `[` at once.
        let mut value_due = true;
        let mut just_opened = true;
        loop {
            self.ws();
            match *self.b.get(self.i)? {
                b'[' if value_due => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return None;
                    }
                    self.i += 1;
                    just_opened = true;
                }
                b']' if just_opened || !value_due => {
                    self.i += 1;
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                    value_due = false;
                    just_opened = false;
                }
                b',' if !value_due => {
                    self.i += 1;
                    value_due = true;
                    just_opened = false;
                }
                b'-' | b'0'..=b'9' if value_due => {
                    if sink.len() == count {
                        return None;
                    }
                    self.i = push_number(self.b, self.i, &mut sink)?;
                    value_due = false;
                    just_opened = false;
                }
                _ => return None,
            }
        }
        (sink.len() == count).then_some(sink)
    }
}
