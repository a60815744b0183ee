//! One module per subcommand.

pub mod demo;
pub mod eval;
pub mod onnx;
pub mod predict;
pub mod registry;
pub mod serve;
pub mod train;
pub mod tune;

/// Parses a decision threshold: a probability strictly between 0 and 1.
pub fn threshold(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(t) if t > 0.0 && t < 1.0 => Ok(t),
        Ok(_) | Err(_) => Err(format!(
            "`{text}` is not a probability strictly between 0 and 1"
        )),
    }
}
