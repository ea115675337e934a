//! Reports: latency percentiles from a histogram, and the two renderings of any report
//! value, a one-line JSON (`--json`, for pasting into BENCHMARKS.md) or indented text.

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

/// Percentiles of a microsecond histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

fn ms(us: u64) -> f64 {
    round3(us as f64 / 1000.0)
}

/// Round to three decimals, enough for milliseconds and rates alike.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Percentiles {
    pub fn from_us(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: round3(h.mean() / 1000.0),
        }
    }
}

/// Print `report` as one JSON line, or as indented `key: value` text.
pub fn print<T: Serialize>(report: &T, json: bool) {
    let value = serde_json::to_value(report).unwrap_or(Value::Null);
    if json {
        println!("{value}");
    } else {
        print!("{}", human(&value));
    }
}

/// Indented text of a JSON value: objects as `key: value` lines, short arrays inline.
pub fn human(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0);
    out
}

fn write_value(out: &mut String, value: &Value, depth: usize) {
    let pad = "  ".repeat(depth);
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match v {
                    Value::Object(inner) if inner.is_empty() => {
                        out.push_str(&format!("{pad}{key}: none\n"));
                    }
                    Value::Object(_) => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        write_value(out, v, depth + 1);
                    }
                    Value::Array(items) if items.iter().any(|i| i.is_object()) => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        for (i, item) in items.iter().enumerate() {
                            out.push_str(&format!("{pad}  [{i}]\n"));
                            write_value(out, item, depth + 2);
                        }
                    }
                    _ => out.push_str(&format!("{pad}{key}: {}\n", scalar(v))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).unwrap();
        for us in 1..=1000u64 {
            h.record(us * 10).unwrap(); // 10 us .. 10 ms
        }
        let p = Percentiles::from_us(&h);
        assert_eq!(p.count, 1000);
        assert!((p.p50_ms - 5.0).abs() < 0.01, "{p:?}");
        assert!((p.p99_ms - 9.9).abs() < 0.02, "{p:?}");
        assert!((p.max_ms - 10.0).abs() < 0.01, "{p:?}");
    }

    #[test]
    fn empty_histogram_is_all_zero() {
        let h = Histogram::<u64>::new(3).unwrap();
        assert_eq!(Percentiles::from_us(&h), Percentiles::default());
    }

    #[test]
    fn human_rendering_nests_objects() {
        let v = json!({"scenario": "fanout", "latency": {"p99_ms": 1.5}, "errors": {}});
        let text = human(&v);
        assert!(text.contains("scenario: fanout\n"));
        assert!(text.contains("latency:\n  p99_ms: 1.5\n"));
        assert!(text.contains("errors: none\n"));
    }
}
