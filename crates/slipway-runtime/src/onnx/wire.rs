//! A structural walk of a protobuf message's top-level fields, used to say *where* a file that
//! does not decode goes wrong (a truncated download, a file that is not ONNX).

/// Returns a description of the first structural problem, with its byte offset, or `None`
/// when every top-level field is well formed.
pub fn first_problem(bytes: &[u8]) -> Option<String> {
    let mut pos = 0usize;
    while pos < bytes.len() {
        let start = pos;
        let Some((key, n)) = varint(&bytes[pos..]) else {
            return Some(format!(
                "byte {start}: a field key runs past the end of the file"
            ));
        };
        pos += n;
        let field = key >> 3;
        if field == 0 {
            return Some(format!(
                "byte {start}: field number 0 is not valid protobuf"
            ));
        }
        match key & 7 {
            0 => match varint(&bytes[pos..]) {
                Some((_, n)) => pos += n,
                None => {
                    return Some(format!(
                        "byte {start}: field {field} (a number) runs past the end of the file"
                    ));
                }
            },
            1 | 5 => {
                let width = if key & 7 == 1 { 8 } else { 4 };
                if bytes.len() - pos < width {
                    return Some(format!(
                        "byte {start}: field {field} needs {width} bytes, {} remain",
                        bytes.len() - pos
                    ));
                }
                pos += width;
            }
            2 => {
                let Some((len, n)) = varint(&bytes[pos..]) else {
                    return Some(format!(
                        "byte {start}: the length of field {field} runs past the end of the file"
                    ));
                };
                pos += n;
                let remain = (bytes.len() - pos) as u64;
                if len > remain {
                    return Some(format!(
                        "byte {start}: field {field}{} declares {len} bytes but the file ends {remain} bytes later \
                         (truncated at byte {})",
                        field_name(field),
                        bytes.len()
                    ));
                }
                pos += usize::try_from(len).unwrap_or(usize::MAX);
            }
            other => {
                return Some(format!(
                    "byte {start}: field {field} has wire type {other}, which ONNX never uses"
                ));
            }
        }
    }
    None
}

fn field_name(field: u64) -> &'static str {
    match field {
        2 => " (producer_name)",
        7 => " (graph)",
        8 => " (opset_import)",
        14 => " (metadata_props)",
        _ => "",
    }
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_is_located() {
        // field 7 (graph), length 10, only 3 bytes follow.
        let bytes = [0x08, 0x07, 0x3a, 0x0a, 1, 2, 3];
        let p = first_problem(&bytes).unwrap();
        assert!(
            p.contains("byte 2") && p.contains("graph") && p.contains("declares 10 bytes"),
            "{p}"
        );
        assert_eq!(first_problem(&[0x08, 0x07, 0x3a, 0x01, 0x00]), None);
    }
}
