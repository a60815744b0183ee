//! The Open Inference Protocol v2 REST codec: inference requests in JSON (flat or nested data)
//! and in the binary tensor data extension, and responses in either form.

// Datatypes and JSON values: the catch-all arm is the refusal of every other kind.
#![allow(clippy::wildcard_enum_match_arm)]

use serde_json::Value as Json;
#[cfg(test)]
use serde_json::json;
use slipway_core::{DataType, Tensor, TensorData};

mod fast;

/// A bad request, with the text the client sees in `{"error": …}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

fn bad<T>(m: impl Into<String>) -> Result<T, BadRequest> {
    Err(BadRequest(m.into()))
}

/// One requested output: its name and whether it goes back as binary.
#[derive(Debug, Clone, PartialEq)]
pub struct Requested {
    pub name: String,
    pub binary: bool,
}

/// A decoded inference request.
#[derive(Debug, Clone, PartialEq)]
pub struct InferRequest {
    pub id: Option<String>,
    pub inputs: Vec<Tensor>,
    /// The datatype each input was sent as (its data is held as [`held`] of it).
    pub wire: Vec<DataType>,
    /// The outputs asked for, or `None` for all of them.
    pub outputs: Option<Vec<Requested>>,
    /// `parameters.binary_data_output`: all outputs binary unless one says otherwise.
    pub binary_output: bool,
}

/// The datatype named on the wire. Every protocol datatype is accepted here; whether it fits
/// the model's input is [`conform`]'s question.
pub fn datatype(name: &str) -> Result<DataType, BadRequest> {
    DataType::parse(name).ok_or_else(|| {
        BadRequest(format!(
            "unknown datatype `{name}` (the protocol's are BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES and BF16)"
        ))
    })
}

/// The in-memory form a wire datatype decodes to: floats of 32 bits or fewer become FP32
/// (exactly), integers INT64 (range-checked), the rest stay as they are.
pub fn held(dt: DataType) -> DataType {
    match dt {
        DataType::Fp16 | DataType::Bf16 | DataType::Fp32 => DataType::Fp32,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Uint8
        | DataType::Uint16
        | DataType::Uint32
        | DataType::Uint64 => DataType::Int64,
        other => other,
    }
}

/// The range of an integer datatype.
fn int_range(dt: DataType) -> (i128, i128) {
    match dt {
        DataType::Int8 => (i8::MIN.into(), i8::MAX.into()),
        DataType::Int16 => (i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => (i32::MIN.into(), i32::MAX.into()),
        DataType::Uint8 => (0, u8::MAX.into()),
        DataType::Uint16 => (0, u16::MAX.into()),
        DataType::Uint32 => (0, u32::MAX.into()),
        // UINT64 values are held as INT64, the models' integer type.
        DataType::Uint64 => (0, i64::MAX.into()),
        _ => (i64::MIN.into(), i64::MAX.into()),
    }
}

/// Element `i` of integer input `name`, checked against the range of its wire type `dt`.
pub fn narrow(name: &str, dt: DataType, i: usize, v: i128) -> Result<i64, BadRequest> {
    let (lo, hi) = int_range(dt);
    if v < lo || v > hi {
        return bad(format!(
            "input `{name}` element {i} is {v}, outside {dt}'s range {lo}..={hi}"
        ));
    }
    i64::try_from(v).map_err(|_| BadRequest(format!("input `{name}` element {i} is too large")))
}

/// A float rounded to what `dt` (FP16, BF16 or FP32) can hold.
fn round_float(dt: DataType, x: f64) -> f32 {
    match dt {
        DataType::Fp16 => half::f16::from_f64(x).to_f32(),
        DataType::Bf16 => half::bf16::from_f64(x).to_f32(),
        _ => x as f32,
    }
}

/// The fast path for numeric `data`, flat or nested: the text is valid JSON already (the
/// header parsed), so in row-major order the elements are the tokens between brackets and
/// commas. One pass over the bytes reads each number's digits; a number whose digits fit a
/// mantissa of at most 2^53 with a decimal exponent within ±22 is exact in one multiplication
/// or division (Clinger's fast path, the first step of every correct float parser), and
/// anything else goes to the standard library's exact parser. Returns false, leaving a partly
/// filled sink, at the first token that is not a plain number (a string, `true`, `null`…), a
/// number too large for an f64, or a count that does not match: the full parser then runs and
/// words the error.
fn numbers_fast<S: Sink>(text: &str, count: usize, sink: &mut S) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && matches!(b[i], b',' | b'[' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        if i == b.len() {
            return sink.len() == count;
        }
        if sink.len() == count {
            return false;
        }
        match push_number(b, i, sink) {
            Some(end) => i = end,
            None => return false,
        }
    }
}

/// Reads the number at `b[start..]` into `sink`; returns where it ends, or `None` when it is
/// not a number (or not followed by a separator) or the sink refuses it.
#[inline]
fn push_number<S: Sink>(b: &[u8], start: usize, sink: &mut S) -> Option<usize> {
    let (number, end) = scan_number(b, start)?;
    let ok = match number {
        Scanned::Int(v) => sink.i64(v).is_ok(),
        Scanned::Float(v) => sink.f64(v).is_ok(),
        // Too many digits or too large an exponent for the fast path: the exact parser.
        Scanned::Long { integer } => {
            let token = std::str::from_utf8(&b[start..end]).ok()?;
            let int = if integer {
                token.parse::<i128>().ok()
            } else {
                None
            };
            match int {
                Some(v) => sink.i64(v).is_ok(),
                // `1e400` is out of an f64's range: serde refuses it, and so does this.
                None => token
                    .parse::<f64>()
                    .is_ok_and(|v| v.is_finite() && sink.f64(v).is_ok()),
            }
        }
    };
    ok.then_some(end)
}

/// A number token read by [`scan_number`].
enum Scanned {
    /// No fraction and no exponent.
    Int(i128),
    /// Exact, by the fast path.
    Float(f64),
    /// Needs the exact parser.
    Long { integer: bool },
}

/// Exact powers of ten as f64 (10^22 is the largest).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Reads the JSON number at `b[start..]`: the value (or that it needs the exact parser) and
/// where the token ends. `None` when the token is not a number, or is followed by anything
/// but a separator.
#[inline]
fn scan_number(b: &[u8], start: usize) -> Option<(Scanned, usize)> {
    let mut i = start;
    let negative = *b.get(i)? == b'-';
    if negative {
        i += 1;
    }
    // Up to 19 significant digits fit a u64; past that the token needs the exact parser, and
    // so does a mantissa above 2^53 or an exponent beyond ±22.
    let mut mantissa: u64 = 0;
    let mut digits = 0u32;
    let mut exponent: i64 = 0;
    let mut long = false;
    let first = i;
    while i < b.len() && b[i].is_ascii_digit() {
        let d = u64::from(b[i] - b'0');
        if digits < 19 {
            mantissa = mantissa * 10 + d;
            digits += u32::from(mantissa != 0);
        } else {
            long = true;
        }
        i += 1;
    }
    // JSON's grammar, strictly: digits, no leading zero, digits after `.` and after `e`.
    if i == first || (b[first] == b'0' && i - first > 1) {
        return None;
    }
    let mut integer = true;
    if i < b.len() && b[i] == b'.' {
        integer = false;
        i += 1;
        if !b.get(i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        while i < b.len() && b[i].is_ascii_digit() {
            if digits < 19 {
                mantissa = mantissa * 10 + u64::from(b[i] - b'0');
                digits += u32::from(mantissa != 0);
                exponent -= 1;
            } else {
                long = true;
            }
            i += 1;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        integer = false;
        i += 1;
        let mut sign = 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            if b[i] == b'-' {
                sign = -1;
            }
            i += 1;
        }
        if !b.get(i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let mut e: i64 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            e = (e * 10 + i64::from(b[i] - b'0')).min(1 << 20);
            i += 1;
        }
        exponent += sign * e;
    }
    if i < b.len() && !matches!(b[i], b',' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
        return None;
    }
    let scanned = if long {
        Scanned::Long { integer }
    } else if integer {
        let v = i128::from(mantissa);
        Scanned::Int(if negative { -v } else { v })
    } else if mantissa <= 1 << 53 && (-22..=22).contains(&exponent) {
        // Both operands are exact, and IEEE multiplication and division round once.
        let m = mantissa as f64;
        let v = if exponent >= 0 {
            m * POW10[exponent as usize]
        } else {
            m / POW10[(-exponent) as usize]
        };
        Scanned::Float(if negative { -v } else { v })
    } else {
        Scanned::Long { integer }
    };
    Some((scanned, i))
}

/// Where the elements of a JSON `data` array go: straight into the typed buffer of the
/// input's held type, with no JSON tree in between. A sink takes the kinds of element its
/// type holds and refuses the others, naming what it wanted.
trait Sink {
    /// What an element must be, for the refusal: "a number", "a string"…
    fn wants(&self) -> &'static str;
    /// Whether every element is a number (the fast path applies).
    fn numeric(&self) -> bool {
        true
    }
    fn clear(&mut self);
    fn len(&self) -> usize;
    fn refuse(&self) -> Result<(), String> {
        Err(format!("element {} is not {}", self.len(), self.wants()))
    }
    fn f64(&mut self, _: f64) -> Result<(), String> {
        self.refuse()
    }
    fn i64(&mut self, _: i128) -> Result<(), String> {
        self.refuse()
    }
    fn bool(&mut self, _: bool) -> Result<(), String> {
        self.refuse()
    }
    fn str(&mut self, _: &str) -> Result<(), String> {
        self.refuse()
    }
}

struct Floats32(Vec<f32>, DataType);
impl Sink for Floats32 {
    fn wants(&self) -> &'static str {
        "a number"
    }
    fn clear(&mut self) {
        self.0.clear();
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    #[inline]
    fn f64(&mut self, v: f64) -> Result<(), String> {
        // FP32 is the common case: a cast, not the half-float conversions.
        self.0.push(if self.1 == DataType::Fp32 {
            v as f32
        } else {
            round_float(self.1, v)
        });
        Ok(())
    }
    fn i64(&mut self, v: i128) -> Result<(), String> {
        self.f64(v as f64)
    }
}

struct Floats64(Vec<f64>);
impl Sink for Floats64 {
    fn wants(&self) -> &'static str {
        "a number"
    }
    fn clear(&mut self) {
        self.0.clear();
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    #[inline]
    fn f64(&mut self, v: f64) -> Result<(), String> {
        self.0.push(v);
        Ok(())
    }
    fn i64(&mut self, v: i128) -> Result<(), String> {
        self.f64(v as f64)
    }
}

/// Integers, range-checked against the wire type; whole floats (`3.0`) are accepted, as
/// numpy-based clients send them.
struct Ints(Vec<i64>, DataType);
impl Sink for Ints {
    fn wants(&self) -> &'static str {
        "an integer"
    }
    fn clear(&mut self) {
        self.0.clear();
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn f64(&mut self, v: f64) -> Result<(), String> {
        if v.fract() == 0.0 && v.abs() < 1.8e19 {
            self.i64(v as i128)
        } else {
            self.refuse()
        }
    }
    fn i64(&mut self, v: i128) -> Result<(), String> {
        let (lo, hi) = int_range(self.1);
        if v < lo || v > hi {
            return Err(format!(
                "element {} is {v}, outside {}'s range {lo}..={hi}",
                self.0.len(),
                self.1
            ));
        }
        self.0.push(v as i64);
        Ok(())
    }
}

struct Bools(Vec<bool>);
impl Sink for Bools {
    fn wants(&self) -> &'static str {
        "true or false"
    }
    fn numeric(&self) -> bool {
        false
    }
    fn clear(&mut self) {
        self.0.clear();
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn bool(&mut self, v: bool) -> Result<(), String> {
        self.0.push(v);
        Ok(())
    }
}

struct Strings(Vec<Vec<u8>>);
impl Sink for Strings {
    fn wants(&self) -> &'static str {
        "a string"
    }
    fn numeric(&self) -> bool {
        false
    }
    fn clear(&mut self) {
        self.0.clear();
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn str(&mut self, v: &str) -> Result<(), String> {
        self.0.push(v.as_bytes().to_vec());
        Ok(())
    }
}

/// Reads a `data` value, flat or nested (depth ≤ 100), into a sink, in row-major order.
struct Flat<'s> {
    sink: &'s mut dyn Sink,
    depth: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for Flat<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Flat<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an element or an array of elements")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= 100 {
            return Err(serde::de::Error::custom(
                "`data` is nested more than 100 deep",
            ));
        }
        while seq
            .next_element_seed(Flat {
                sink: &mut *self.sink,
                depth: self.depth + 1,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.sink.f64(v).map_err(E::custom)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.sink.i64(v.into()).map_err(E::custom)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.sink.i64(v.into()).map_err(E::custom)
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.sink.bool(v).map_err(E::custom)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.sink.str(v).map_err(E::custom)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Err(E::custom(format!("element {} is null", self.sink.len())))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(serde::de::Error::custom(format!(
            "element {} is an object",
            self.sink.len()
        )))
    }
}

/// Decodes input `name`'s JSON `data` (its raw text) as wire type `dt`, `count` elements.
fn json_data(
    name: &str,
    dt: DataType,
    data: &serde_json::value::RawValue,
    count: usize,
) -> Result<TensorData, BadRequest> {
    let cap = count.min(1 << 20);
    Ok(match held(dt) {
        DataType::Fp32 => {
            TensorData::Fp32(fill(name, data, count, Floats32(Vec::with_capacity(cap), dt))?.0)
        }
        DataType::Fp64 => {
            TensorData::Fp64(fill(name, data, count, Floats64(Vec::with_capacity(cap)))?.0)
        }
        DataType::Int64 => {
            TensorData::Int64(fill(name, data, count, Ints(Vec::with_capacity(cap), dt))?.0)
        }
        DataType::Bool => {
            TensorData::Bool(fill(name, data, count, Bools(Vec::with_capacity(cap)))?.0)
        }
        DataType::Bytes => {
            TensorData::Bytes(fill(name, data, count, Strings(Vec::with_capacity(cap)))?.0)
        }
        other => return bad(format!("datatype {other} is not supported")),
    })
}

/// Runs the `data` text through a sink and checks the element count.
fn fill<S: Sink>(
    name: &str,
    data: &serde_json::value::RawValue,
    count: usize,
    mut sink: S,
) -> Result<S, BadRequest> {
    if sink.numeric() && numbers_fast(data.get(), count, &mut sink) {
        return Ok(sink);
    }
    sink.clear();
    let mut de = serde_json::Deserializer::from_str(data.get());
    serde::de::DeserializeSeed::deserialize(
        Flat {
            sink: &mut sink,
            depth: 0,
        },
        &mut de,
    )
    .map_err(|e| {
        // serde_json appends the position within `data`, which would only confuse.
        let text = e.to_string();
        let text = text.split(" at line ").next().unwrap_or(&text).to_string();
        BadRequest(format!("input `{name}` {text}"))
    })?;
    if sink.len() != count {
        return bad(format!(
            "input `{name}` has {} elements in `data`, its shape needs {count}",
            sink.len()
        ));
    }
    Ok(sink)
}

/// Decodes one binary block (REST) or raw content (gRPC) of `count` elements of wire type
/// `dt`: little-endian, row-major, BYTES elements each a u32 length and the bytes.
pub fn binary_data(
    name: &str,
    dt: DataType,
    block: &[u8],
    count: usize,
) -> Result<TensorData, BadRequest> {
    let Some(width) = dt.width() else {
        return bytes_elements(name, block, count);
    };
    match count.checked_mul(width) {
        Some(n) if n == block.len() => {}
        _ => {
            return bad(format!(
                "input `{name}`: {} bytes of {dt} data, its shape needs {count} × {width}",
                block.len()
            ));
        }
    }
    let words = |c: &[u8]| -> [u8; 8] {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        w
    };
    let ints = |f: fn([u8; 8]) -> i128| -> Result<TensorData, BadRequest> {
        block
            .chunks_exact(width)
            .enumerate()
            .map(|(i, c)| narrow(name, dt, i, f(words(c))))
            .collect::<Result<_, _>>()
            .map(TensorData::Int64)
    };
    Ok(match dt {
        DataType::Fp32 => TensorData::Fp32(
            block
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        DataType::Fp16 => TensorData::Fp32(
            block
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        DataType::Bf16 => TensorData::Fp32(
            block
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        DataType::Fp64 => TensorData::Fp64(
            block
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(words(c)))
                .collect(),
        ),
        DataType::Int64 => TensorData::Int64(
            block
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(words(c)))
                .collect(),
        ),
        DataType::Bool => TensorData::Bool(block.iter().map(|&b| b != 0).collect()),
        DataType::Int8 => ints(|w| i8::from_le_bytes([w[0]]).into())?,
        DataType::Int16 => ints(|w| i16::from_le_bytes([w[0], w[1]]).into())?,
        DataType::Int32 => ints(|w| i32::from_le_bytes([w[0], w[1], w[2], w[3]]).into())?,
        DataType::Uint8 => ints(|w| w[0].into())?,
        DataType::Uint16 => ints(|w| u16::from_le_bytes([w[0], w[1]]).into())?,
        DataType::Uint32 => ints(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]).into())?,
        DataType::Uint64 => ints(|w| u64::from_le_bytes(w).into())?,
        other => return bad(format!("datatype {other} is not supported")),
    })
}

/// Length-prefixed BYTES elements.
fn bytes_elements(name: &str, block: &[u8], count: usize) -> Result<TensorData, BadRequest> {
    let mut out = Vec::with_capacity(count.min(block.len() / 4 + 1));
    let mut rest = block;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return bad(format!(
                "input `{name}`: a BYTES length prefix is cut short"
            ));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        if rest.len() < len {
            return bad(format!(
                "input `{name}`: a BYTES element declares {len} bytes, {} remain",
                rest.len()
            ));
        }
        out.push(rest[..len].to_vec());
        rest = &rest[len..];
    }
    if out.len() != count {
        return bad(format!(
            "input `{name}`: {} BYTES elements, its shape needs {count}",
            out.len()
        ));
    }
    Ok(TensorData::Bytes(out))
}

/// The wire datatypes that convert exactly, for every value, to a model's input type.
pub fn converts_to(model: DataType) -> &'static [DataType] {
    use DataType::*;
    match model {
        Fp32 => &[Fp16, Bf16, Int8, Int16, Uint8, Uint16],
        Fp64 => &[Fp16, Bf16, Fp32, Int8, Int16, Int32, Uint8, Uint16, Uint32],
        Int64 => &[Int8, Int16, Int32, Uint8, Uint16, Uint32, Uint64],
        _ => &[],
    }
}

/// Fits decoded inputs to the model's input types. A tensor sent in the model's own type is
/// left as it is; one sent in a type that converts exactly (FP16 to an FP32 input, INT32 to an
/// INT64 one, FP32 to FP64, …) is converted; any other is refused, saying what to send.
/// Inputs the model does not know are left for the signature check to name.
pub fn conform(
    inputs: &mut [Tensor],
    wire: &[DataType],
    signature: &slipway_core::Signature,
) -> Result<(), BadRequest> {
    for (t, &sent) in inputs.iter_mut().zip(wire) {
        let Some(spec) = signature.inputs.iter().find(|s| s.name == t.name) else {
            continue;
        };
        let want = spec.datatype;
        if sent == want {
            continue;
        }
        if !converts_to(want).contains(&sent) {
            let also: Vec<&str> = converts_to(want).iter().map(|d| d.as_str()).collect();
            let hint = if also.is_empty() {
                String::new()
            } else {
                format!(", or one that converts to it exactly: {}", also.join(", "))
            };
            return bad(format!(
                "input `{}` must be {want}{hint}; got {sent}",
                t.name
            ));
        }
        let data = std::mem::replace(&mut t.data, TensorData::Bool(Vec::new()));
        t.data = match (want, data) {
            (DataType::Fp32, TensorData::Int64(v)) => {
                TensorData::Fp32(v.into_iter().map(|x| x as f32).collect())
            }
            (DataType::Fp64, TensorData::Int64(v)) => {
                TensorData::Fp64(v.into_iter().map(|x| x as f64).collect())
            }
            (DataType::Fp64, TensorData::Fp32(v)) => {
                TensorData::Fp64(v.into_iter().map(f64::from).collect())
            }
            (_, same) => same,
        };
    }
    Ok(())
}

/// An inference request's JSON header. Tensor `data` stays raw text until the datatype is
/// known, then goes straight into a typed buffer.
#[derive(serde::Deserialize)]
struct WireRequest<'a> {
    #[serde(default)]
    id: Option<Json>,
    #[serde(default, borrow)]
    inputs: Option<Vec<WireInput<'a>>>,
    #[serde(default)]
    outputs: Option<Json>,
    #[serde(default)]
    parameters: Option<Json>,
}

#[derive(serde::Deserialize)]
struct WireInput<'a> {
    #[serde(default, borrow)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    datatype: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    shape: Option<Vec<i64>>,
    #[serde(default)]
    parameters: Option<InputParameters>,
    #[serde(default, borrow)]
    data: Option<&'a serde_json::value::RawValue>,
}

/// The input parameters Slipway reads; the others are accepted and ignored.
#[derive(serde::Deserialize)]
struct InputParameters {
    #[serde(default)]
    binary_data_size: Option<u64>,
}

/// An input's shape from the wire, every dimension non-negative.
pub fn shape_of(name: &str, dims: &[i64]) -> Result<Vec<usize>, BadRequest> {
    dims.iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<_>>()
        .ok_or_else(|| {
            BadRequest(format!(
                "input `{name}`: `shape` must hold non-negative integers, got {dims:?}"
            ))
        })
}

/// Elements of an input's shape, within the bound every Slipway allocation keeps.
pub fn element_count(name: &str, shape: &[usize]) -> Result<usize, BadRequest> {
    slipway_runtime::bounded_elements(shape).map_err(|e| BadRequest(format!("input `{name}`: {e}")))
}

/// An inference request's header as read by either reader: the one-pass [`fast`] reader or
/// serde ([`WireRequest`]).
#[derive(Default)]
struct Header<'a> {
    id: Option<String>,
    inputs: Option<Vec<HeaderInput<'a>>>,
    outputs: Option<Json>,
    parameters: Option<Json>,
}

#[derive(Default)]
struct HeaderInput<'a> {
    name: Option<std::borrow::Cow<'a, str>>,
    datatype: Option<std::borrow::Cow<'a, str>>,
    shape: Option<Vec<i64>>,
    binary_size: Option<u64>,
    data: Option<Data<'a>>,
}

/// An input's JSON `data`: its text, or already decoded by the one-pass reader.
enum Data<'a> {
    Raw(&'a serde_json::value::RawValue),
    Decoded(TensorData),
}

/// The request `id` echoed back: a non-empty string; any other JSON is accepted and dropped.
fn request_id(id: Option<Json>) -> Option<String> {
    match id {
        Some(Json::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

impl<'a> From<WireRequest<'a>> for Header<'a> {
    fn from(w: WireRequest<'a>) -> Self {
        Header {
            id: request_id(w.id),
            inputs: w.inputs.map(|inputs| {
                inputs
                    .into_iter()
                    .map(|i| HeaderInput {
                        name: i.name,
                        datatype: i.datatype,
                        shape: i.shape,
                        binary_size: i.parameters.and_then(|p| p.binary_data_size),
                        data: i.data.map(Data::Raw),
                    })
                    .collect()
            }),
            outputs: w.outputs,
            parameters: w.parameters,
        }
    }
}

/// Parses `/infer`'s body. `header_len` is `Inference-Header-Content-Length`, if sent.
pub fn parse_request(body: &[u8], header_len: Option<usize>) -> Result<InferRequest, BadRequest> {
    parse_with(body, header_len, true)
}

/// [`parse_request`] without the one-pass reader: what it must agree with (for tests and the
/// fuzz target).
#[doc(hidden)]
pub fn parse_request_serde(
    body: &[u8],
    header_len: Option<usize>,
) -> Result<InferRequest, BadRequest> {
    parse_with(body, header_len, false)
}

/// Whether the one-pass reader took `body` (`false`: serde read it).
#[doc(hidden)]
pub fn takes_fast_path(body: &[u8]) -> bool {
    fast::header(body).is_some()
}

fn parse_with(
    body: &[u8],
    header_len: Option<usize>,
    fast: bool,
) -> Result<InferRequest, BadRequest> {
    let header_len = header_len.unwrap_or(body.len());
    if header_len > body.len() {
        return bad(format!(
            "Inference-Header-Content-Length is {header_len} but the body has {} bytes",
            body.len()
        ));
    }
    if header_len == 0 {
        return bad(
            "a raw binary request (Inference-Header-Content-Length: 0) is not supported; send a JSON header",
        );
    }
    let text = &body[..header_len];
    // The usual request in one pass; anything unusual (and every error) goes through serde.
    let header = match fast.then(|| fast::header(text)).flatten() {
        Some(h) => h,
        None => Header::from(
            serde_json::from_slice::<WireRequest<'_>>(text).map_err(|e| {
                if e.is_data() {
                    BadRequest(format!(
                        "the request must be a JSON object with an `inputs` array of tensors: {e}"
                    ))
                } else {
                    BadRequest(format!("the request is not valid JSON: {e}"))
                }
            })?,
        ),
    };
    let id = header.id;
    let Some(inputs_json) = header.inputs else {
        return bad("the request has no `inputs` array");
    };
    let mut rest = &body[header_len..];
    let mut inputs = Vec::with_capacity(inputs_json.len());
    let mut wire = Vec::with_capacity(inputs_json.len());
    for (k, input) in inputs_json.into_iter().enumerate() {
        let name = input
            .name
            .as_deref()
            .ok_or_else(|| BadRequest(format!("input {k} has no `name`")))?
            .to_string();
        let dt = datatype(
            input
                .datatype
                .as_deref()
                .ok_or_else(|| BadRequest(format!("input `{name}` has no `datatype`")))?,
        )?;
        let shape = shape_of(
            &name,
            input
                .shape
                .as_deref()
                .ok_or_else(|| BadRequest(format!("input `{name}` has no `shape`")))?,
        )?;
        let count = element_count(&name, &shape)?;
        let data = match (input.data, input.binary_size) {
            (Some(Data::Raw(d)), None) => json_data(&name, dt, d, count)?,
            (Some(Data::Decoded(d)), None) => d,
            (None, Some(n)) => {
                let n = usize::try_from(n).map_err(|_| {
                    BadRequest(format!("input `{name}`: binary_data_size is too large"))
                })?;
                if rest.len() < n {
                    return bad(format!(
                        "unexpected size for input `{name}`, expecting {n} additional bytes, {} remain",
                        rest.len()
                    ));
                }
                let (block, tail) = rest.split_at(n);
                rest = tail;
                binary_data(&name, dt, block, count)?
            }
            (Some(_), Some(_)) | (None, None) => {
                return bad(format!(
                    "input `{name}` must set exactly one of `data` and `parameters.binary_data_size`"
                ));
            }
        };
        inputs.push(Tensor { name, shape, data });
        wire.push(dt);
    }
    if !rest.is_empty() {
        return bad(format!(
            "{} bytes of binary data follow the last input that asked for some",
            rest.len()
        ));
    }
    let binary_output = header
        .parameters
        .as_ref()
        .and_then(|p| p.get("binary_data_output"))
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let outputs = match header.outputs.as_ref() {
        None | Some(Json::Null) => None,
        Some(Json::Array(list)) => Some(
            list.iter()
                .enumerate()
                .map(|(k, o)| {
                    let name = o
                        .get("name")
                        .and_then(Json::as_str)
                        .ok_or_else(|| BadRequest(format!("requested output {k} has no `name`")))?;
                    let binary = o
                        .get("parameters")
                        .and_then(|p| p.get("binary_data"))
                        .and_then(Json::as_bool)
                        .unwrap_or(binary_output);
                    Ok(Requested {
                        name: name.to_string(),
                        binary,
                    })
                })
                .collect::<Result<_, BadRequest>>()?,
        ),
        Some(_) => return bad("`outputs` must be an array"),
    };
    Ok(InferRequest {
        id,
        inputs,
        wire,
        outputs,
        binary_output,
    })
}

/// A response's JSON header, written straight from the tensors (no JSON tree).
#[derive(serde::Serialize)]
struct OutHead<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<OutTensor<'a>>,
}

#[derive(serde::Serialize)]
struct OutTensor<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinarySize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Elements<'a>>,
}

#[derive(serde::Serialize)]
struct BinarySize {
    binary_data_size: usize,
}

/// A tensor's elements as a flat JSON array; NaN and infinities, which JSON cannot hold,
/// become `null` (serde_json's rule).
struct Elements<'a>(&'a TensorData);

impl serde::Serialize for Elements<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            TensorData::Bool(v) => v.serialize(s),
            TensorData::Int64(v) => v.serialize(s),
            TensorData::Fp32(v) => v.serialize(s),
            TensorData::Fp64(v) => v.serialize(s),
            TensorData::Bytes(v) => {
                use serde::ser::SerializeSeq;
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for b in v {
                    seq.serialize_element(&String::from_utf8_lossy(b))?;
                }
                seq.end()
            }
        }
    }
}

#[cfg(test)]
fn json_elements(d: &TensorData) -> Json {
    match d {
        TensorData::Bool(v) => json!(v),
        TensorData::Int64(v) => json!(v),
        // NaN and infinities have no JSON form: they become null.
        TensorData::Fp32(v) => Json::Array(
            v.iter()
                .map(|&x| {
                    serde_json::Number::from_f64(f64::from(x)).map_or(Json::Null, Json::Number)
                })
                .collect(),
        ),
        TensorData::Fp64(v) => Json::Array(
            v.iter()
                .map(|&x| serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number))
                .collect(),
        ),
        TensorData::Bytes(v) => Json::Array(
            v.iter()
                .map(|b| Json::String(String::from_utf8_lossy(b).into_owned()))
                .collect(),
        ),
    }
}

/// The binary block of a tensor.
pub fn binary_block(d: &TensorData) -> Vec<u8> {
    match d {
        TensorData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
        TensorData::Int64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::Fp32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::Fp64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::Bytes(v) => {
            let mut out = Vec::with_capacity(v.iter().map(|b| b.len() + 4).sum());
            for b in v {
                out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
                out.extend_from_slice(b);
            }
            out
        }
    }
}

/// An encoded response: the body, and the JSON header's length when binary blocks follow.
pub struct Encoded {
    pub body: Vec<u8>,
    pub header_len: Option<usize>,
}

/// Encodes the model's outputs, selecting and ordering them as requested.
pub fn encode_response(
    model: &str,
    version: &str,
    request: &InferRequest,
    outputs: Vec<Tensor>,
) -> Result<Encoded, BadRequest> {
    let chosen: Vec<(Tensor, bool)> = match &request.outputs {
        None => outputs
            .into_iter()
            .map(|t| (t, request.binary_output))
            .collect(),
        Some(list) => {
            let mut all = outputs;
            let mut chosen = Vec::with_capacity(list.len());
            for r in list {
                let Some(i) = all.iter().position(|t| t.name == r.name) else {
                    return bad(format!("the model has no output `{}`", r.name));
                };
                chosen.push((all.swap_remove(i), r.binary));
            }
            chosen
        }
    };
    let mut blocks = Vec::new();
    let mut outs = Vec::with_capacity(chosen.len());
    for (t, binary) in &chosen {
        if *binary {
            let block = binary_block(&t.data);
            outs.push(OutTensor {
                name: &t.name,
                datatype: t.data.datatype().as_str(),
                shape: &t.shape,
                parameters: Some(BinarySize {
                    binary_data_size: block.len(),
                }),
                data: None,
            });
            blocks.push(block);
        } else {
            outs.push(OutTensor {
                name: &t.name,
                datatype: t.data.datatype().as_str(),
                shape: &t.shape,
                parameters: None,
                data: Some(Elements(&t.data)),
            });
        }
    }
    let head = OutHead {
        model_name: model,
        model_version: version,
        id: request.id.as_deref(),
        outputs: outs,
    };
    let mut body = serde_json::to_vec(&head).map_err(|e| BadRequest(e.to_string()))?;
    let header_len = body.len();
    let binary = blocks.iter().any(|b| !b.is_empty());
    for b in blocks {
        body.extend_from_slice(&b);
    }
    Ok(Encoded {
        body,
        header_len: binary.then_some(header_len),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn tensor_strategy() -> impl Strategy<Value = Tensor> {
        let shape = prop::collection::vec(0usize..4, 1..3);
        shape.prop_flat_map(|shape| {
            let n: usize = shape.iter().product();
            let data = prop_oneof![
                prop::collection::vec(any::<bool>(), n).prop_map(TensorData::Bool),
                prop::collection::vec(any::<i64>(), n).prop_map(TensorData::Int64),
                prop::collection::vec(-1e6f32..1e6, n).prop_map(TensorData::Fp32),
                prop::collection::vec(-1e12f64..1e12, n).prop_map(TensorData::Fp64),
                prop::collection::vec(prop::collection::vec(any::<u8>(), 0..6), n)
                    .prop_map(TensorData::Bytes),
            ];
            (Just(shape), data).prop_map(|(shape, data)| Tensor {
                name: "x".into(),
                shape,
                data,
            })
        })
    }

    proptest! {
        /// A tensor sent as a binary block decodes to itself.
        #[test]
        fn binary_blocks_round_trip(t in tensor_strategy()) {
            let block = binary_block(&t.data);
            let count = t.shape.iter().product();
            let back = binary_data("x", t.data.datatype(), &block, count).unwrap();
            prop_assert_eq!(back, t.data);
        }

        /// A request built from tensors (binary or JSON per input) parses back to them.
        #[test]
        fn requests_round_trip(ts in prop::collection::vec(tensor_strategy(), 1..4), binary in prop::collection::vec(any::<bool>(), 4)) {
            let mut inputs = Vec::new();
            let mut blocks = Vec::new();
            for (i, t) in ts.iter().enumerate() {
                let mut v = json!({"name": format!("in{i}"), "datatype": t.data.datatype().as_str(), "shape": t.shape});
                let utf8 = match &t.data { TensorData::Bytes(b) => b.iter().all(|e| std::str::from_utf8(e).is_ok()), _ => true };
                if binary[i] || !utf8 {
                    let b = binary_block(&t.data);
                    v["parameters"] = json!({"binary_data_size": b.len()});
                    blocks.push(b);
                } else {
                    v["data"] = json_elements(&t.data);
                }
                inputs.push(v);
            }
            let header = serde_json::to_vec(&json!({"inputs": inputs})).unwrap();
            let mut body = header.clone();
            for b in &blocks { body.extend_from_slice(b); }
            let parsed = parse_request(&body, Some(header.len())).unwrap();
            for (i, (got, want)) in parsed.inputs.iter().zip(&ts).enumerate() {
                prop_assert_eq!(&got.name, &format!("in{i}"));
                prop_assert_eq!(&got.shape, &want.shape);
                match (&got.data, &want.data) {
                    (TensorData::Fp32(a), TensorData::Fp32(b)) => prop_assert!(a.iter().zip(b).all(|(x, y)| x == y)),
                    (a, b) => prop_assert_eq!(a, b),
                }
            }
        }

        /// Every integer wire type decodes from its little-endian bytes (binary) and from JSON
        /// to the same INT64 values, and refuses values outside its range.
        #[test]
        fn integer_wire_types_decode(values in prop::collection::vec(any::<i64>(), 0..8), k in 0usize..7) {
            let dt = [DataType::Int8, DataType::Int16, DataType::Int32, DataType::Uint8, DataType::Uint16, DataType::Uint32, DataType::Uint64][k];
            let width = dt.width().unwrap();
            let (lo, hi) = int_range(dt);
            // Fold each value into the type's range, then write it as the type's bytes.
            let span = hi - lo + 1;
            let inside: Vec<i64> = values.iter().map(|&v| i64::try_from(lo + (i128::from(v) - lo).rem_euclid(span)).unwrap_or(i64::MAX)).collect();
            let block: Vec<u8> = inside.iter().flat_map(|&v| v.to_le_bytes()[..width].to_vec()).collect();
            let back = binary_data("x", dt, &block, inside.len()).unwrap();
            prop_assert_eq!(&back, &TensorData::Int64(inside.clone()));
            let body = serde_json::to_vec(&json!({"inputs": [{"name": "x", "datatype": dt.as_str(), "shape": [inside.len()], "data": inside}]})).unwrap();
            prop_assert_eq!(&parse_request(&body, None).unwrap().inputs[0].data, &back);
            if dt != DataType::Uint64 {
                let body = serde_json::to_vec(&json!({"inputs": [{"name": "x", "datatype": dt.as_str(), "shape": [1], "data": [hi + 1]}]})).unwrap();
                prop_assert!(parse_request(&body, None).unwrap_err().0.contains("range"));
            }
        }

        /// FP16 and BF16 decode exactly to FP32, from bits (binary) and from numbers (JSON,
        /// rounded to the type first).
        #[test]
        fn half_floats_decode(values in prop::collection::vec(-6e4f32..6e4, 0..8)) {
            let h: Vec<u8> = values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
            let b: Vec<u8> = values.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect();
            let want_h = TensorData::Fp32(values.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect());
            let want_b = TensorData::Fp32(values.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect());
            prop_assert_eq!(&binary_data("x", DataType::Fp16, &h, values.len()).unwrap(), &want_h);
            prop_assert_eq!(&binary_data("x", DataType::Bf16, &b, values.len()).unwrap(), &want_b);
            let body = serde_json::to_vec(&json!({"inputs": [{"name": "x", "datatype": "FP16", "shape": [values.len()], "data": values}]})).unwrap();
            prop_assert_eq!(&parse_request(&body, None).unwrap().inputs[0].data, &want_h);
        }

        /// The fast path for numeric `data` reads exactly what the full parser reads, for any
        /// values and any nesting, integers and floats, for every numeric held type.
        #[test]
        fn the_numeric_fast_path_agrees_with_the_full_parser(
            values in prop::collection::vec(prop_oneof![any::<f64>().prop_filter("finite", |v| v.is_finite()), (-1e6f64..1e6).prop_map(f64::trunc)], 0..24),
            split in 1usize..5,
        ) {
            // Nest the values in rows of `split` (a ragged last row is fine: order is what counts).
            let nested: Vec<Json> = values.chunks(split).map(|c| Json::from(c.to_vec())).collect();
            let text = serde_json::to_string(&Json::Array(nested)).unwrap();
            let raw: Box<serde_json::value::RawValue> = serde_json::value::RawValue::from_string(text.clone()).unwrap();
            let full = |sink: &mut dyn Sink| {
                let mut de = serde_json::Deserializer::from_str(&text);
                serde::de::DeserializeSeed::deserialize(Flat { sink, depth: 0 }, &mut de).is_ok()
            };
            let mut fast = Floats64(Vec::new());
            let fast_ok = numbers_fast(raw.get(), values.len(), &mut fast);
            let mut slow = Floats64(Vec::new());
            prop_assert!(full(&mut slow));
            prop_assert!(fast_ok);
            prop_assert_eq!(&fast.0, &slow.0);
            let mut fast = Floats32(Vec::new(), DataType::Fp32);
            prop_assert!(numbers_fast(raw.get(), values.len(), &mut fast));
            let mut slow = Floats32(Vec::new(), DataType::Fp32);
            prop_assert!(full(&mut slow));
            prop_assert_eq!(fast.0.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), slow.0.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            // Integers: the same refusals (fractions) and the same values.
            let mut fast = Ints(Vec::new(), DataType::Int64);
            let fast_ok = numbers_fast(raw.get(), values.len(), &mut fast);
            let mut slow = Ints(Vec::new(), DataType::Int64);
            let slow_ok = full(&mut slow);
            prop_assert_eq!(fast_ok, slow_ok);
            if fast_ok {
                prop_assert_eq!(&fast.0, &slow.0);
            }
        }

        /// Short decimals as people and numpy write them (`17.99`, `-0.006399`, `1.5e-7`,
        /// `12345678901234567890.5`) take the one-pass path, or fall back, and read exactly
        /// what the standard library's exact parser reads.
        #[test]
        fn short_decimals_read_exactly(
            numbers in prop::collection::vec(
                (any::<bool>(), "[0-9]{1,22}", prop::option::of("[0-9]{1,22}"), prop::option::of((prop_oneof![Just(""), Just("-"), Just("+")], 0u32..400))),
                1..16,
            ),
        ) {
            let tokens: Vec<String> = numbers
                .iter()
                .map(|(neg, int, frac, exp)| {
                    // JSON forbids leading zeros: drop them, keeping one digit.
                    let int = int.trim_start_matches('0');
                    let int = if int.is_empty() { "0" } else { int };
                    let mut t = format!("{}{int}", if *neg { "-" } else { "" });
                    if let Some(f) = frac {
                        t.push('.');
                        t.push_str(f);
                    }
                    if let Some((sign, e)) = exp {
                        t.push_str(&format!("e{sign}{e}"));
                    }
                    t
                })
                .collect();
            let text = format!("[{}]", tokens.join(", "));
            // An integer token is read as an integer (so `-0` is 0), then widened.
            let want: Vec<f64> = tokens
                .iter()
                .map(|t| t.parse::<i128>().map_or_else(|_| t.parse::<f64>().unwrap(), |v| v as f64))
                .collect();
            let mut fast = Floats64(Vec::new());
            if want.iter().any(|v| v.is_infinite()) {
                // Out of an f64's range: refused, as serde refuses it.
                prop_assert!(!numbers_fast(&text, tokens.len(), &mut fast), "{}", text);
                return Ok(());
            }
            prop_assert!(numbers_fast(&text, tokens.len(), &mut fast), "{}", text);
            prop_assert_eq!(
                fast.0.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{}", text
            );
            let mut fast = Floats32(Vec::new(), DataType::Fp32);
            prop_assert!(numbers_fast(&text, tokens.len(), &mut fast));
            prop_assert_eq!(
                fast.0.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|&v| (v as f32).to_bits()).collect::<Vec<_>>()
            );
        }

        /// The one-pass reader and serde read every request the same way: the same tensors
        /// from the same requests, and (since the one-pass reader leaves every doubt to serde)
        /// the same errors. Bodies are built from the pieces clients send, in any order, with
        /// near-misses (bad numbers, repeated fields, escapes, `data` before `datatype`), and
        /// then one byte is changed.
        #[test]
        fn the_one_pass_reader_agrees_with_serde(
            top_order in Just([0usize, 1, 2, 3, 4]).prop_shuffle(),
            inputs in prop::collection::vec(
                (
                    Just([0usize, 1, 2, 3, 4, 5]).prop_shuffle(),
                    prop::sample::select(vec!["FP32", "FP64", "INT64", "INT8", "UINT16", "FP16", "BOOL", "BYTES", "XX"]),
                    prop::collection::vec(0usize..4, 1..3),
                    prop::collection::vec(prop::sample::select(vec![
                        "1", "-2", "0", "-0", "3.25", "1e3", "-1.5E-3", "17.99", "0.006399", "1e400",
                        "123456789012345678901234", "01", "1.", "-", "1e", ".5", "\"a\"", "true", "null", "[]", "2.5e+2",
                    ]), 0..9),
                    0usize..4,
                    any::<bool>(),
                ),
                0..3,
            ),
            spaces in any::<bool>(),
            edit in prop::option::of((any::<prop::sample::Index>(), prop::sample::select(vec![b'[', b']', b'{', b'}', b',', b':', b'"', b'\\', b' ', b'1', b'-', b'.', b'e', b'x']))),
        ) {
            let sp = if spaces { " " } else { "" };
            let input_text: Vec<String> = inputs
                .iter()
                .enumerate()
                .map(|(k, (order, dt, shape, cells, nest, params))| {
                    let n: usize = shape.iter().product();
                    let mut data: Vec<String> = cells.iter().map(|c| c.to_string()).collect();
                    data.truncate(n.max(1));
                    let data = if *nest > 1 && data.len() > 1 {
                        let mid = data.len() / 2;
                        format!("[[{}],{sp}[{}]]", data[..mid].join(","), data[mid..].join(&format!(",{sp}")))
                    } else {
                        format!("[{}]", data.join(&format!(",{sp}")))
                    };
                    let fields = [
                        format!("\"name\":{sp}\"in{k}\""),
                        format!("\"datatype\":\"{dt}\""),
                        format!("\"shape\":{shape:?}"),
                        format!("\"data\":{sp}{data}"),
                        if *params { "\"parameters\":{\"binary_data_size\":null,\"x\":[1]}".to_string() } else { format!("\"x{k}\":{{\"a\":[1,{sp}\"]\"]}}") },
                        if *nest == 3 { "\"name\":\"again\"".to_string() } else { "\"note\":\"t\\u00e9\"".to_string() },
                    ];
                    format!("{{{}}}", order.iter().map(|&i| fields[i].clone()).collect::<Vec<_>>().join(&format!(",{sp}")))
                })
                .collect();
            let top = [
                format!("\"inputs\":{sp}[{}]", input_text.join(",")),
                "\"id\":\"r-1\"".to_string(),
                "\"outputs\":[{\"name\":\"probability\",\"parameters\":{\"binary_data\":false}}]".to_string(),
                "\"parameters\":{\"binary_data_output\":false}".to_string(),
                "\"extra\":[null,{\"k\":\"v\\\"\"}]".to_string(),
            ];
            let body = format!("{{{sp}{}{sp}}}", top_order.iter().map(|&i| top[i].clone()).collect::<Vec<_>>().join(","));
            let mut body = body.into_bytes();
            if let Some((at, byte)) = edit {
                let at = at.index(body.len());
                body[at] = byte;
            }
            prop_assert_eq!(parse_request(&body, None), parse_request_serde(&body, None), "{}", String::from_utf8_lossy(&body));
        }

        /// Arbitrary bodies and header lengths never panic the parser.
        #[test]
        fn any_body_is_answered(body in prop::collection::vec(any::<u8>(), 0..200), cut in prop::option::of(0usize..250)) {
            let _ = parse_request(&body, cut);
        }
    }

    /// The usual requests take the one-pass reader and read as serde reads them; the unusual
    /// ones are left to serde.
    #[test]
    fn usual_requests_take_the_one_pass_reader() {
        let taken = [
            // tritonclient (nested data, parameters, outputs), KServe, compact and spaced.
            r#"{"inputs":[{"name":"X","shape":[2,3],"datatype":"FP32","parameters":{},"data":[[1.5,2,-3e2],[0.1,17.99,0]]}],"outputs":[{"name":"p","parameters":{"binary_data":true}}],"parameters":{"binary_data_output":false},"id":"42"}"#,
            r#"{ "id" : "a", "inputs" : [ { "name" : "a" , "datatype" : "INT64" , "shape" : [ 3 ] , "data" : [ 1 , -2 , 3.0 ] } ] }"#,
            "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[0],\"data\":[]}]}",
            r#"{"inputs":[{"name":"x","datatype":"FP16","shape":[1],"data":[0.1]},{"name":"y","datatype":"INT8","shape":[1,1],"data":[[-128]]}],"extra":{"z":[1,"]"]}}"#,
        ];
        for body in taken {
            assert!(takes_fast_path(body.as_bytes()), "{body}");
            assert_eq!(
                parse_request(body.as_bytes(), None).unwrap(),
                parse_request_serde(body.as_bytes(), None).unwrap(),
                "{body}"
            );
        }
        let left = [
            r#"{"inputs":[{"name":"x","data":[1],"datatype":"FP32","shape":[1]}]}"#,
            r#"{"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"data":["a"]}]}"#,
            r#"{"inputs":[{"name":"x\u0031","datatype":"FP32","shape":[1],"data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[01]}]}"#,
            r#"{"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[1,]}]}"#,
            r#"{"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[300]}]}"#,
            r#"{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"inputs":[]}"#,
            r#"{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]} x"#,
            // serde reads `-0` as a float, which a shape refuses.
            r#"{"inputs":[{"name":"x","datatype":"FP32","shape":[-0],"data":[]}]}"#,
            r#"{"inputs":[{"name":"x","datatype":"FP32","shape":[1.0],"data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","datatype":"FP32","shape":[99999999999999999999],"data":[1]}]}"#,
            // Out of an f64's range.
            r#"{"inputs":[{"name":"x","datatype":"FP64","shape":[1],"data":[1e400]}]}"#,
            r#"{"inputs":[{"name":"x","datatype":"FP64","shape":[1],"data":[-1e400]}]}"#,
            // `name` after `data`.
            r#"{"inputs":[{"datatype":"FP32","shape":[1],"data":[1],"name":"x"}]}"#,
            // Found by the fuzzer: the header ends inside `shape`, after whitespace.
            "{\"inputs\":[{\"name\":\"x\",\"shape\":[0,\r\r",
            "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1, ",
        ];
        for body in left {
            assert!(!takes_fast_path(body.as_bytes()), "{body}");
            assert_eq!(
                parse_request(body.as_bytes(), None),
                parse_request_serde(body.as_bytes(), None),
                "{body}"
            );
        }
    }

    #[test]
    fn conform_converts_exactly_or_says_what_to_send() {
        use slipway_core::{Signature, TensorSpec};
        let spec = |name: &str, datatype| TensorSpec {
            name: name.into(),
            datatype,
            shape: vec![-1],
        };
        let sig = Signature {
            inputs: vec![
                spec("f32", DataType::Fp32),
                spec("f64", DataType::Fp64),
                spec("i64", DataType::Int64),
            ],
            outputs: vec![],
        };
        let body = br#"{"inputs":[
            {"name":"f32","shape":[2],"datatype":"UINT16","data":[1,65535]},
            {"name":"f64","shape":[2],"datatype":"FP16","data":[0.1,2]},
            {"name":"i64","shape":[2],"datatype":"INT32","data":[-5,7]}]}"#;
        let mut r = parse_request(body, None).unwrap();
        conform(&mut r.inputs, &r.wire, &sig).unwrap();
        assert_eq!(r.inputs[0].data, TensorData::Fp32(vec![1.0, 65535.0]));
        let tenth = f64::from(half::f16::from_f64(0.1).to_f32());
        assert_eq!(r.inputs[1].data, TensorData::Fp64(vec![tenth, 2.0]));
        assert_eq!(r.inputs[2].data, TensorData::Int64(vec![-5, 7]));
        sig.check_inputs(&r.inputs).unwrap();

        // Lossy conversions are refused, naming what would do.
        for (input, sent, want) in [
            (
                "f32",
                "FP64",
                "must be FP32, or one that converts to it exactly: FP16, BF16",
            ),
            ("f32", "INT32", "got INT32"),
            ("i64", "FP32", "must be INT64"),
            ("f64", "INT64", "got INT64"),
        ] {
            let body = format!(
                r#"{{"inputs":[{{"name":"{input}","shape":[1],"datatype":"{sent}","data":[1]}}]}}"#
            );
            let mut r = parse_request(body.as_bytes(), None).unwrap();
            let err = conform(&mut r.inputs, &r.wire, &sig).unwrap_err();
            assert!(err.0.contains(want), "{input} {sent}: {err}");
        }
    }

    #[test]
    fn nested_and_flat_data_are_the_same() {
        let flat = br#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP64","data":[1,2,3,4]}]}"#;
        let nested =
            br#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP64","data":[[1,2],[3,4]]}]}"#;
        assert_eq!(
            parse_request(flat, None).unwrap(),
            parse_request(nested, None).unwrap()
        );
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let cases: [(&[u8], &str); 7] = [
            (b"{", "not valid JSON"),
            (br#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2]}]}"#, "needs 3"),
            (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT64","data":[1.5]}]}"#, "not an integer"),
            (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[300]}]}"#, "outside INT8's range"),
            (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#, "exactly one"),
            (br#"{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[1]}]}"#, "non-negative"),
            (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}"#, "expecting 4 additional bytes"),
        ];
        for (body, want) in cases {
            let err = parse_request(body, None).unwrap_err();
            assert!(
                err.0.contains(want),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
