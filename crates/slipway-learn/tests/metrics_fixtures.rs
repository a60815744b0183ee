//! Checks `slipway_learn::metrics` against scikit-learn/scipy reference values.
//!
//! The cases and their expected values live in `fixtures/metrics_cases.json`,
//! written by `fixtures/make_metrics_fixtures.py` (see its header for how to
//! regenerate it). Every metric must match within 1e-9 (NaN, written as `null`,
//! matches NaN) and confusion counts must match exactly.

use ndarray::Array2;
use serde_json::Value;
use slipway_learn::metrics::{self, Report};

const CASES: &str = include_str!("fixtures/metrics_cases.json");
const TOLERANCE: f64 = 1e-9;

/// Collects every mismatch of one case so a failure reports them all at once.
struct Checker<'a> {
    case: &'a str,
    failures: Vec<String>,
}

impl Checker<'_> {
    fn float(&mut self, what: &str, actual: f64, expected: &Value) {
        let ok = match expected {
            Value::Null => actual.is_nan(),
            Value::Number(n) => {
                let e = n.as_f64().expect("number");
                (actual - e).abs() <= TOLERANCE
            }
            Value::Bool(_) | Value::String(_) | Value::Array(_) | Value::Object(_) => false,
        };
        if !ok {
            self.failures.push(format!(
                "{}: {what}: got {actual:?}, sklearn says {expected}",
                self.case
            ));
        }
    }

    fn count(&mut self, what: &str, actual: u64, expected: &Value) {
        if expected.as_u64() != Some(actual) {
            self.failures.push(format!(
                "{}: {what}: got {actual}, sklearn says {expected}",
                self.case
            ));
        }
    }

    /// Every scalar of the report is in `expected`, and matches.
    fn scalars(&mut self, report: &Report, expected: &Value) {
        for (name, value) in report.scalars() {
            match expected.get(&name) {
                Some(e) => self.float(&name, value, e),
                None => self
                    .failures
                    .push(format!("{}: {name}: no expected value", self.case)),
            }
        }
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("float"))
        .collect()
}

fn check_binary(c: &mut Checker<'_>, case: &Value) -> usize {
    let y: Vec<bool> = case["y"]
        .as_array()
        .expect("y")
        .iter()
        .map(|v| v.as_bool().expect("bool label"))
        .collect();
    let p = floats(&case["p"]);
    let threshold = case["threshold"].as_f64().expect("threshold");
    let expected = &case["expected"];

    let r = metrics::binary(&y, &p, threshold);
    c.count("n", r.n, &expected["n"]);
    c.count("positives", r.positives, &expected["positives"]);
    let confusion = &expected["confusion"];
    c.count("confusion.tp", r.confusion.tp, &confusion["tp"]);
    c.count("confusion.fp", r.confusion.fp, &confusion["fp"]);
    c.count("confusion.tn", r.confusion.tn, &confusion["tn"]);
    c.count("confusion.fn", r.confusion.fn_, &confusion["fn"]);
    let report = Report::Binary(r);
    c.scalars(&report, expected);
    report.scalars().len()
}

fn check_multiclass(c: &mut Checker<'_>, case: &Value) -> usize {
    let classes: Vec<String> = case["classes"]
        .as_array()
        .expect("classes")
        .iter()
        .map(|v| v.as_str().expect("class name").to_owned())
        .collect();
    let y: Vec<usize> = case["y"]
        .as_array()
        .expect("y")
        .iter()
        .map(|v| usize::try_from(v.as_u64().expect("class index")).expect("usize"))
        .collect();
    let rows = case["proba"].as_array().expect("proba");
    let flat: Vec<f64> = rows.iter().flat_map(floats).collect();
    let proba = Array2::from_shape_vec((rows.len(), classes.len()), flat).expect("proba shape");
    let expected = &case["expected"];

    let r = metrics::multiclass(&y, proba.view(), &classes);
    c.count("n", r.n, &expected["n"]);
    let confusion: Vec<Vec<u64>> = expected["confusion"]
        .as_array()
        .expect("confusion")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("confusion row")
                .iter()
                .map(|v| v.as_u64().expect("count"))
                .collect()
        })
        .collect();
    if r.confusion != confusion {
        c.failures.push(format!(
            "{}: confusion: got {:?}, sklearn says {confusion:?}",
            c.case, r.confusion
        ));
    }
    let per_class = expected["per_class"].as_array().expect("per_class");
    assert_eq!(r.per_class.len(), per_class.len(), "{}: per_class", c.case);
    for (got, want) in r.per_class.iter().zip(per_class) {
        let label = format!("per_class[{}]", got.class);
        if want["class"].as_str() != Some(got.class.as_str()) {
            c.failures
                .push(format!("{}: {label}: wrong class name", c.case));
        }
        c.float(
            &format!("{label}.precision"),
            got.precision,
            &want["precision"],
        );
        c.float(&format!("{label}.recall"), got.recall, &want["recall"]);
        c.float(&format!("{label}.f1"), got.f1, &want["f1"]);
        c.count(&format!("{label}.support"), got.support, &want["support"]);
    }
    let report = Report::Multiclass(r);
    c.scalars(&report, expected);
    report.scalars().len()
}

fn check_regression(c: &mut Checker<'_>, case: &Value) -> usize {
    let y = floats(&case["y"]);
    let pred = floats(&case["pred"]);
    let expected = &case["expected"];
    let r = metrics::regression(&y, &pred);
    c.count("n", r.n, &expected["n"]);
    let report = Report::Regression(r);
    c.scalars(&report, expected);
    report.scalars().len()
}

#[test]
fn metrics_match_sklearn_fixtures() {
    let doc: Value = serde_json::from_str(CASES).expect("metrics_cases.json parses");
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() >= 12, "expected at least 12 cases");

    let mut failures = Vec::new();
    let mut checked = 0;
    let mut tasks = std::collections::BTreeSet::new();
    for case in cases {
        let name = case["name"].as_str().expect("case name");
        let task = case["task"].as_str().expect("case task");
        let mut checker = Checker {
            case: name,
            failures: Vec::new(),
        };
        checked += match task {
            "binary" => check_binary(&mut checker, case),
            "multiclass" => check_multiclass(&mut checker, case),
            "regression" => check_regression(&mut checker, case),
            other => panic!("{name}: unknown task {other:?}"),
        };
        tasks.insert(task.to_owned());
        failures.extend(checker.failures);
    }
    assert_eq!(tasks.len(), 3, "every task has fixtures");
    assert!(
        failures.is_empty(),
        "{} mismatches against {} (of {checked} scalar checks):\n{}",
        failures.len(),
        doc["versions"],
        failures.join("\n")
    );
}
