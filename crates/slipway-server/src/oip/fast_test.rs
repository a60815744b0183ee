//! The one-pass reader against serde: the same requests, the same tensors, the same errors,
//! and the same row count handed to admission.

use proptest::prelude::*;

use crate::oip::{BadRequest, admit_all, parse_request, parse_request_serde, takes_fast_path};

proptest! {
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
        let (mut fast_rows, mut serde_rows) = (Vec::new(), Vec::new());
        let fast = parse_request(&body, None, |n| {
            fast_rows.push(n);
            Ok::<(), BadRequest>(())
        });
        let serde = parse_request_serde(&body, None, |n| {
            serde_rows.push(n);
            Ok::<(), BadRequest>(())
        });
        prop_assert_eq!(&fast, &serde, "{}", String::from_utf8_lossy(&body));
        // Admission hears one row count, from both readers, whenever an input was read.
        let all: Vec<usize> = fast_rows.iter().chain(&serde_rows).copied().collect();
        prop_assert!(all.iter().all(|&n| n == all[0]), "{:?} {}", all, String::from_utf8_lossy(&body));
        if let Ok(r) = &serde {
            if let Some(first) = r.inputs.first() {
                let rows = first.shape.first().copied().unwrap_or(1);
                prop_assert_eq!(&fast_rows[..1], &[rows]);
                prop_assert_eq!(&serde_rows[..], &[rows]);
            }
        }
    }

    /// Arbitrary bodies and header lengths never panic the parser.
    #[test]
    fn any_body_is_answered(body in prop::collection::vec(any::<u8>(), 0..200), cut in prop::option::of(0usize..250)) {
        let _ = parse_request(&body, cut, admit_all);
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
            parse_request(body.as_bytes(), None, admit_all).unwrap(),
            parse_request_serde(body.as_bytes(), None, admit_all).unwrap(),
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
            parse_request(body.as_bytes(), None, admit_all),
            parse_request_serde(body.as_bytes(), None, admit_all),
            "{body}"
        );
    }
}
