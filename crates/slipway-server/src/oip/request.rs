//! Reading `/infer`'s body: the JSON header (by the one-pass [`fast`](super::fast) reader, or
//! by serde when the request is unusual), the row count handed to admission before any data is
//! decoded, each input's `data` or binary block into its typed buffer, and the requested
//! outputs. Both readers fill one [`Header`], so everything after the header is read once,
//! here. The one-pass reader took the 256-row body from 140 to 110 µs and a single row from
//! 1.3 to 0.7 µs (commit 51637c3).

use serde_json::Value as Json;
use slipway_core::{DataType, Tensor};

use super::binary::binary_data;
use super::datatype::datatype;
use super::sink::json_data;
use super::{BadRequest, bad, fast};

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
    /// The datatype each input was sent as (its data is held as [`held`](super::held) of it).
    pub wire: Vec<DataType>,
    /// The outputs asked for, or `None` for all of them; no name twice.
    pub outputs: Option<Vec<Requested>>,
    /// `parameters.binary_data_output`: all outputs binary unless one says otherwise.
    pub binary_output: bool,
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
pub(super) struct InputParameters {
    #[serde(default)]
    pub(super) binary_data_size: Option<u64>,
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

/// The rows a request carries: its first input's first dimension, 1 for a scalar.
pub(super) fn rows_of(shape: &[usize]) -> usize {
    shape.first().copied().unwrap_or(1)
}

/// An inference request's header as read by either reader: the one-pass [`fast`] reader or
/// serde ([`WireRequest`]).
#[derive(Default)]
pub(super) struct Header<'a> {
    pub(super) id: Option<String>,
    pub(super) inputs: Option<Vec<HeaderInput<'a>>>,
    pub(super) outputs: Option<Json>,
    pub(super) parameters: Option<Json>,
    /// The row count went to admission already (the one-pass reader asks before the first
    /// input's data).
    pub(super) admitted: bool,
}

#[derive(Default)]
pub(super) struct HeaderInput<'a> {
    pub(super) name: Option<std::borrow::Cow<'a, str>>,
    pub(super) datatype: Option<std::borrow::Cow<'a, str>>,
    pub(super) shape: Option<Vec<i64>>,
    pub(super) binary_size: Option<u64>,
    pub(super) data: Option<Data<'a>>,
}

/// An input's JSON `data`: its text, or already decoded by the one-pass reader.
pub(super) enum Data<'a> {
    Raw(&'a serde_json::value::RawValue),
    Decoded(slipway_core::TensorData),
}

/// The request `id` echoed back: a non-empty string; any other JSON is accepted and dropped.
pub(super) fn request_id(id: Option<Json>) -> Option<String> {
    match id {
        Some(Json::String(s)) if !s.is_empty() => Some(s),
        Some(_) | None => None,
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
            admitted: false,
        }
    }
}

/// Parses `/infer`'s body. `header_len` is `Inference-Header-Content-Length`, if sent.
///
/// Admission before allocation: `rows(n)` is called with the request's row count (the first
/// input's first dimension, 1 when that input is a scalar) once that input's shape is read and
/// before any input's data is allocated or decoded. If it returns an error, parsing stops there
/// and returns it, so a request declaring millions of rows is refused without reading them.
/// It may be called more than once for one body (the one-pass reader may ask, then give up and
/// leave the body to serde, which asks again), always with the same value; it is not called
/// when the body is refused before the first input's shape is known. Because the one-pass
/// reader asks before reading past the first input's `data`, a refusal can win over a syntax
/// error later in the body that [`parse_request_serde`] would report instead.
pub fn parse_request<E: From<BadRequest>>(
    body: &[u8],
    header_len: Option<usize>,
    mut rows: impl FnMut(usize) -> Result<(), E>,
) -> Result<InferRequest, E> {
    parse_with(body, header_len, true, &mut rows)
}

/// [`parse_request`] without the one-pass reader: what it must agree with (for tests and the
/// fuzz target). `rows` is called as [`parse_request`] calls it, once the header has parsed.
#[doc(hidden)]
pub fn parse_request_serde<E: From<BadRequest>>(
    body: &[u8],
    header_len: Option<usize>,
    mut rows: impl FnMut(usize) -> Result<(), E>,
) -> Result<InferRequest, E> {
    parse_with(body, header_len, false, &mut rows)
}

/// Whether the one-pass reader took `body` (`false`: serde read it).
#[doc(hidden)]
pub fn takes_fast_path(body: &[u8]) -> bool {
    matches!(
        fast::header(body, &mut |_| Ok::<(), BadRequest>(())),
        Ok(Some(_))
    )
}

fn parse_with<E: From<BadRequest>>(
    body: &[u8],
    header_len: Option<usize>,
    fast: bool,
    rows: &mut dyn FnMut(usize) -> Result<(), E>,
) -> Result<InferRequest, E> {
    let (text, rest) = split(body, header_len)?;
    // The usual request in one pass; anything unusual (and every error) goes through serde.
    let read = if fast {
        fast::header(text, rows)?
    } else {
        None
    };
    let header = match read {
        Some(h) => h,
        None => serde_header(text)?,
    };
    if !header.admitted {
        let first = header.inputs.as_ref().and_then(|i| i.first());
        if let Some(n) = first.and_then(|i| i.shape.as_deref()).and_then(first_rows) {
            rows(n)?;
        }
    }
    Ok(decode(header, rest)?)
}

/// The row count of a wire shape, or `None` when the shape is refused anyway.
pub(super) fn first_rows(dims: &[i64]) -> Option<usize> {
    let all = dims.iter().all(|&d| d >= 0);
    all.then(|| dims.first().map_or(Some(1), |&d| usize::try_from(d).ok()))
        .flatten()
}

/// The JSON header and the binary blocks after it.
fn split(body: &[u8], header_len: Option<usize>) -> Result<(&[u8], &[u8]), BadRequest> {
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
    Ok(body.split_at(header_len))
}

fn serde_header(text: &[u8]) -> Result<Header<'_>, BadRequest> {
    let wire = serde_json::from_slice::<WireRequest<'_>>(text).map_err(|e| {
        if e.is_data() {
            BadRequest(format!(
                "the request must be a JSON object with an `inputs` array of tensors: {e}"
            ))
        } else {
            BadRequest(format!("the request is not valid JSON: {e}"))
        }
    })?;
    Ok(Header::from(wire))
}

/// Everything after the header: each input's data (JSON, or its binary block from `rest`), and
/// the requested outputs.
fn decode(header: Header<'_>, mut rest: &[u8]) -> Result<InferRequest, BadRequest> {
    let Some(inputs_json) = header.inputs else {
        return bad("the request has no `inputs` array");
    };
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
    let outputs = match header.outputs {
        None | Some(Json::Null) => None,
        Some(Json::Array(list)) => Some(requested(&list, binary_output)?),
        Some(Json::Bool(_) | Json::Number(_) | Json::String(_) | Json::Object(_)) => {
            return bad("`outputs` must be an array");
        }
    };
    Ok(InferRequest {
        id: header.id,
        inputs,
        wire,
        outputs,
        binary_output,
    })
}

/// The requested outputs, in order, each named once (a name asked twice would be answered
/// once and then reported missing, after the model ran).
fn requested(list: &[Json], binary_output: bool) -> Result<Vec<Requested>, BadRequest> {
    let mut out: Vec<Requested> = Vec::with_capacity(list.len());
    for (k, o) in list.iter().enumerate() {
        let name = o
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| BadRequest(format!("requested output {k} has no `name`")))?;
        if out.iter().any(|r| r.name == name) {
            return bad(format!("output {name:?} is requested twice"));
        }
        let binary = o
            .get("parameters")
            .and_then(|p| p.get("binary_data"))
            .and_then(Json::as_bool)
            .unwrap_or(binary_output);
        out.push(Requested {
            name: name.to_string(),
            binary,
        });
    }
    Ok(out)
}

#[cfg(test)]
#[path = "request_test.rs"]
mod tests;
