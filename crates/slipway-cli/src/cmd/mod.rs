//! One module per subcommand.

pub mod demo;
pub mod eval;
pub mod example;
pub mod exchange;
pub mod keys;
pub mod models;
pub mod predict;
pub mod promote;
pub mod registry;
pub mod serve;
pub mod serve_auth;
pub mod train;
pub mod tune;

/// Splits a comma-separated list, dropping blanks.
pub fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

/// Parses `--delimiter`: one ASCII character, or `tab`.
pub fn delimiter(text: &str) -> Result<u8, String> {
    slipway_learn::source::parse_delimiter(text)
}

/// Parses a decision threshold: a probability strictly between 0 and 1.
pub fn threshold(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(t) if t > 0.0 && t < 1.0 => Ok(t),
        Ok(_) | Err(_) => Err(format!(
            "`{text}` is not a probability strictly between 0 and 1"
        )),
    }
}
