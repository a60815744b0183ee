//! Where a JSON `data` array goes: a [`Sink`] per held type (FP32, FP64, INT64, BOOL, BYTES)
//! that takes the elements straight into the typed buffer, with no JSON tree in between
//! (commit 3989a16), range-checking integers and rounding half floats as it goes. [`fill`] runs
//! the one-pass [`numbers_fast`] scanner first and, when it gives up, the serde [`Flat`]
//! visitor, which reads any nesting and words the error.

use slipway_core::{DataType, TensorData};

use super::datatype::{held, int_range, round_float};
use super::number::numbers_fast;
use super::{BadRequest, bad};

/// Where the elements of a JSON `data` array go: straight into the typed buffer of the
/// input's held type, with no JSON tree in between. A sink takes the kinds of element its
/// type holds and refuses the others, naming what it wanted.
pub(super) trait Sink {
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

pub(super) struct Floats32(pub(super) Vec<f32>, pub(super) DataType);
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

pub(super) struct Floats64(pub(super) Vec<f64>);
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
pub(super) struct Ints(pub(super) Vec<i64>, pub(super) DataType);
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
pub(super) struct Flat<'s> {
    pub(super) sink: &'s mut dyn Sink,
    pub(super) depth: usize,
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
pub(super) fn json_data(
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
        // `held` maps every other type to one of the above.
        other @ (DataType::Fp16
        | DataType::Bf16
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Uint8
        | DataType::Uint16
        | DataType::Uint32
        | DataType::Uint64) => return bad(format!("datatype {other} is not supported")),
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
