//! Reading `/infer` bodies: round trips, admission by row count, refusals.

use proptest::prelude::*;
use serde_json::{Value as Json, json};
use slipway_core::TensorData;

use crate::oip::binary::tensor_strategy;
use crate::oip::{
    BadRequest, admit_all, binary_block, parse_request, parse_request_serde, takes_fast_path,
};

/// A tensor's elements as a JSON array, as a client writes them.
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

proptest! {
    /// A request built from tensors (binary or JSON per input) parses back to them.
    #[test]
    fn requests_round_trip(ts in prop::collection::vec(tensor_strategy(), 1..4), binary in prop::collection::vec(any::<bool>(), 4)) {
        let mut inputs = Vec::new();
        let mut blocks = Vec::new();
        for (i, t) in ts.iter().enumerate() {
            let mut v = json!({"name": format!("in{i}"), "datatype": t.data.datatype().as_str(), "shape": t.shape});
            let utf8 = match &t.data { TensorData::Bytes(b) => b.iter().all(|e| std::str::from_utf8(e).is_ok()), TensorData::Bool(_) | TensorData::Int64(_) | TensorData::Fp32(_) | TensorData::Fp64(_) => true };
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
        let parsed = parse_request(&body, Some(header.len()), admit_all).unwrap();
        for (i, (got, want)) in parsed.inputs.iter().zip(&ts).enumerate() {
            prop_assert_eq!(&got.name, &format!("in{i}"));
            prop_assert_eq!(&got.shape, &want.shape);
            match (&got.data, &want.data) {
                (TensorData::Fp32(a), TensorData::Fp32(b)) => prop_assert!(a.iter().zip(b).all(|(x, y)| x == y)),
                (a, b) => prop_assert_eq!(a, b),
            }
        }
    }
}

#[test]
fn nested_and_flat_data_are_the_same() {
    let flat = br#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP64","data":[1,2,3,4]}]}"#;
    let nested =
        br#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP64","data":[[1,2],[3,4]]}]}"#;
    assert_eq!(
        parse_request(flat, None, admit_all).unwrap(),
        parse_request(nested, None, admit_all).unwrap()
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
        let err = parse_request(body, None, admit_all).unwrap_err();
        assert!(
            err.0.contains(want),
            "{}: {err}",
            String::from_utf8_lossy(body)
        );
    }
}

/// Parses `body` by the one-pass reader (or serde), recording each row count admission hears.
fn rows_heard(body: &[u8], header_len: Option<usize>, serde_only: bool) -> Vec<usize> {
    let mut heard = Vec::new();
    let rows = |n| {
        heard.push(n);
        Ok::<(), BadRequest>(())
    };
    let parsed = if serde_only {
        parse_request_serde(body, header_len, rows)
    } else {
        parse_request(body, header_len, rows)
    };
    parsed.unwrap();
    heard
}

#[test]
fn admission_hears_the_first_inputs_rows() {
    // JSON, by the one-pass reader: asked once, at the first input's data.
    let json = br#"{"inputs":[{"name":"x","datatype":"FP32","shape":[3,2],"data":[[1,2],[3,4],[5,6]]},{"name":"y","datatype":"INT64","shape":[7],"data":[1,2,3,4,5,6,7]}]}"#;
    assert!(takes_fast_path(json));
    assert_eq!(rows_heard(json, None, false), [3]);
    // The same by serde, and a body the one-pass reader leaves to serde (BYTES).
    assert_eq!(rows_heard(json, None, true), [3]);
    let text = br#"{"inputs":[{"name":"s","datatype":"BYTES","shape":[2],"data":["a","b"]}]}"#;
    assert!(!takes_fast_path(text));
    assert_eq!(rows_heard(text, None, false), [2]);
    // A scalar is one row.
    let scalar = br#"{"inputs":[{"name":"x","datatype":"FP64","shape":[],"data":[1.5]}]}"#;
    assert_eq!(rows_heard(scalar, None, false), [1]);
    assert_eq!(rows_heard(scalar, None, true), [1]);
    // The binary extension: the first input is a block, the second JSON; the first counts.
    let header = br#"{"inputs":[{"name":"x","datatype":"FP32","shape":[4,1],"parameters":{"binary_data_size":16}},{"name":"y","datatype":"FP32","shape":[9],"data":[1,2,3,4,5,6,7,8,9]}]}"#;
    let mut body = header.to_vec();
    body.extend_from_slice(&[0; 16]);
    for serde_only in [false, true] {
        assert_eq!(rows_heard(&body, Some(header.len()), serde_only), [4]);
    }
    // No inputs, no rows to admit.
    assert!(rows_heard(br#"{"inputs":[]}"#, None, false).is_empty());
}

/// An error that is not a `BadRequest`, as a server's admission would return.
#[derive(Debug, PartialEq)]
enum Refused {
    TooManyRows(usize),
    Bad(BadRequest),
}

impl From<BadRequest> for Refused {
    fn from(e: BadRequest) -> Self {
        Refused::Bad(e)
    }
}

#[test]
fn a_refusal_stops_the_reading_before_the_data() {
    let refuse = |n| {
        if n > 1000 {
            Err(Refused::TooManyRows(n))
        } else {
            Ok(())
        }
    };
    // 2^27 rows declared, and the data is not even JSON: the reader stops at the shape.
    let cut =
        br#"{"inputs":[{"name":"x","datatype":"FP32","shape":[134217728,1],"data":[1, 2, oops"#;
    assert_eq!(
        parse_request(cut, None, refuse),
        Err(Refused::TooManyRows(1 << 27))
    );
    // Admitted, the same body is refused for its data.
    let err = parse_request(cut, None, admit_all).unwrap_err();
    assert!(err.0.contains("not valid JSON"), "{err}");
    // serde reads the whole header first, so it is given valid JSON with the wrong data: the
    // refusal still comes before the data is decoded.
    let wrong =
        br#"{"inputs":[{"name":"x","datatype":"FP32","shape":[134217728,1],"data":[1,"a",true]}]}"#;
    let refused = Err(Refused::TooManyRows(1 << 27));
    assert_eq!(parse_request(wrong, None, refuse), refused);
    assert_eq!(parse_request_serde(wrong, None, refuse), refused);
    assert!(
        parse_request(wrong, None, admit_all)
            .unwrap_err()
            .0
            .contains("not a number")
    );
    // A binary block that is far too short: refused for its rows, not its size.
    let header = br#"{"inputs":[{"name":"x","datatype":"FP32","shape":[134217728],"parameters":{"binary_data_size":8}}]}"#;
    let mut body = header.to_vec();
    body.extend_from_slice(&[0; 8]);
    assert_eq!(
        parse_request(&body, Some(header.len()), refuse),
        Err(Refused::TooManyRows(1 << 27))
    );
    let err = parse_request(&body, Some(header.len()), admit_all).unwrap_err();
    assert!(err.0.contains("8 bytes of FP32 data"), "{err}");
    // The first input a block, the second JSON: the one-pass reader asks before the second's
    // data, with the first's rows.
    let header = br#"{"inputs":[{"name":"x","datatype":"FP32","shape":[134217728],"parameters":{"binary_data_size":8}},{"name":"y","datatype":"FP32","shape":[3],"data":[1, oops"#;
    let mut body = header.to_vec();
    body.extend_from_slice(&[0; 8]);
    assert_eq!(
        parse_request(&body, Some(header.len()), refuse),
        Err(Refused::TooManyRows(1 << 27))
    );
}

#[test]
fn an_output_requested_twice_is_refused() {
    let body = br#"{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"outputs":[{"name":"y"},{"name":"p"},{"name":"y","parameters":{"binary_data":true}}]}"#;
    let want = Err(BadRequest(r#"output "y" is requested twice"#.into()));
    assert_eq!(parse_request(body, None, admit_all), want);
    assert_eq!(parse_request_serde(body, None, admit_all), want);
}
