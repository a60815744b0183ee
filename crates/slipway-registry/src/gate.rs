//! Promotion gates: a metric floor or ceiling (`roc_auc>=0.75`), what each compared, and the
//! table a refused promotion prints.

use std::collections::BTreeMap;

use crate::error::{RegistryError, Result};

/// A metric floor or ceiling a version must meet to be promoted: `roc_auc>=0.75`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub metric: String,
    pub op: String,
    pub value: f64,
}

impl std::str::FromStr for Gate {
    type Err = RegistryError;
    fn from_str(text: &str) -> Result<Self> {
        for op in [">=", "<=", "==", ">", "<"] {
            if let Some((metric, value)) = text.split_once(op) {
                let metric = metric.trim();
                let value: f64 = value.trim().parse().map_err(|_| {
                    RegistryError::Invalid(format!(
                        "gate `{text}`: `{}` is not a number",
                        value.trim()
                    ))
                })?;
                if metric.is_empty()
                    || !metric
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    break;
                }
                return Ok(Gate {
                    metric: metric.to_string(),
                    op: op.to_string(),
                    value,
                });
            }
        }
        Err(RegistryError::Invalid(format!(
            "gate `{text}` is not METRIC>=VALUE (or >, <=, <, ==), e.g. roc_auc>=0.75"
        )))
    }
}

/// One compared figure of a promotion.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Check {
    /// What was checked, e.g. `roc_auc >= 0.75`.
    pub rule: String,
    /// The candidate's figure (None when it has no such metric).
    pub candidate: Option<f64>,
    /// What it was compared with (the floor, or the champion's figure).
    pub against: Option<f64>,
    pub passed: bool,
}

impl Gate {
    /// Checks the gate against a version's recorded metrics.
    pub fn check(&self, metrics: &BTreeMap<String, f64>) -> Check {
        let candidate = metrics.get(&self.metric).copied();
        let passed = candidate.is_some_and(|v| match self.op.as_str() {
            ">=" => v >= self.value,
            "<=" => v <= self.value,
            ">" => v > self.value,
            "<" => v < self.value,
            _ => v == self.value,
        });
        Check {
            rule: format!("{} {} {}", self.metric, self.op, self.value),
            candidate,
            against: Some(self.value),
            passed,
        }
    }
}

/// A table of what a promotion compared.
pub fn format_checks(model: &str, version: u32, alias: &str, checks: &[Check]) -> String {
    let mut out = format!("promotion of {model}:{version} to @{alias} refused; nothing moved:\n");
    out.push_str(&format!(
        "  {:<36} {:>10} {:>10}  result\n",
        "gate", "candidate", "against"
    ));
    for c in checks {
        let fmt = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.4}"));
        out.push_str(&format!(
            "  {:<36} {:>10} {:>10}  {}\n",
            c.rule,
            fmt(c.candidate),
            fmt(c.against),
            if c.passed { "pass" } else { "FAIL" }
        ));
    }
    out.trim_end().to_string()
}
