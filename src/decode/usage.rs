//! omp's (and pi's) `Usage` object → Langfuse usage and cost buckets.
//!
//! omp 18 (`@oh-my-pi/pi-ai` types): `input`, `output`, `cacheRead`, `cacheWrite`,
//! `totalTokens`, `reasoningTokens?`, `orchestration? {input, output, cacheRead}` (Codex
//! orchestration, counted in `totalTokens`), `credits?`, and `cost {input, output,
//! cacheRead, cacheWrite, total}` in USD. Every token bucket becomes a Langfuse usage key and
//! `total` is omp's own `totalTokens`, so Langfuse's total equals omp's. A cost omp could not
//! compute (zero: a model missing from its price table, a subscription login) is not sent,
//! so Langfuse prices the call from its own model table; a nonzero cost is sent as is.

use serde_json::Value;

/// The buckets of one call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Langfuse usage keys, `total` last.
    pub usage: Vec<(&'static str, u64)>,
    /// Langfuse cost keys with `total`, or empty when omp reported no cost.
    pub cost: Vec<(&'static str, f64)>,
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub total_tokens: u64,
    pub cost_total: f64,
}

/// Read a `usage` object (absent or malformed: all zero).
pub fn read(usage: Option<&Value>) -> Usage {
    let usage = usage.unwrap_or(&Value::Null);
    let n = |p: &str| usage.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let c = |k: &str| {
        usage
            .pointer(&format!("/cost/{k}"))
            .and_then(Value::as_f64)
            .filter(|f| f.is_finite())
            .unwrap_or(0.0)
    };
    let (input, output, cache_read, cache_write) =
        (n("/input"), n("/output"), n("/cacheRead"), n("/cacheWrite"));
    let mut buckets = vec![
        ("input", input),
        ("output", output),
        ("input_cache_read", cache_read),
        ("input_cache_creation", cache_write),
        ("orchestration_input", n("/orchestration/input")),
        ("orchestration_output", n("/orchestration/output")),
        (
            "orchestration_input_cache_read",
            n("/orchestration/cacheRead"),
        ),
        // Part of `output` already (OpenAI, Anthropic): a detail, not added to the total.
        ("output_reasoning", n("/reasoningTokens")),
    ];
    // Saturating: a corrupt line with absurd counts must not panic or wrap.
    let summed = buckets
        .iter()
        .filter(|(k, _)| *k != "output_reasoning")
        .fold(0u64, |a, (_, v)| a.saturating_add(*v));
    let total_tokens = usage
        .get("totalTokens")
        .and_then(Value::as_u64)
        .filter(|t| *t > 0)
        .unwrap_or(summed);
    buckets.retain(|(_, v)| *v > 0);
    buckets.push(("total", total_tokens));
    let cost_total = c("total");
    let mut cost = vec![
        ("input", c("input")),
        ("output", c("output")),
        ("input_cache_read", c("cacheRead")),
        ("input_cache_creation", c("cacheWrite")),
    ];
    cost.retain(|(_, v)| *v > 0.0);
    // Unpriced by omp (no bucket, no total): no cost at all, so Langfuse prices it.
    if !cost.is_empty() || cost_total > 0.0 {
        cost.push(("total", cost_total));
    }
    Usage {
        usage: buckets,
        cost,
        input,
        output,
        cache_read,
        cache_write,
        total_tokens,
        cost_total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_bucket_and_omps_own_total() {
        let u = read(Some(&json!({
            "input": 100, "output": 50, "cacheRead": 1000, "cacheWrite": 10,
            "reasoningTokens": 20,
            "orchestration": {"input": 5, "output": 3, "cacheRead": 2},
            "totalTokens": 1170,
            "cost": {"input": 0.1, "output": 0.2, "cacheRead": 0.01, "cacheWrite": 0.0, "total": 0.31}
        })));
        assert_eq!(
            u.usage,
            vec![
                ("input", 100),
                ("output", 50),
                ("input_cache_read", 1000),
                ("input_cache_creation", 10),
                ("orchestration_input", 5),
                ("orchestration_output", 3),
                ("orchestration_input_cache_read", 2),
                ("output_reasoning", 20),
                ("total", 1170),
            ]
        );
        assert_eq!(
            u.cost,
            vec![
                ("input", 0.1),
                ("output", 0.2),
                ("input_cache_read", 0.01),
                ("total", 0.31)
            ]
        );
    }

    #[test]
    fn zero_cost_is_left_to_langfuse_and_a_missing_total_is_summed() {
        let u = read(Some(&json!({
            "input": 7, "output": 3,
            "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0, "total": 0}
        })));
        assert!(u.cost.is_empty());
        assert_eq!(u.usage.last(), Some(&("total", 10)));
        assert_eq!(read(None).usage, vec![("total", 0)]);
        let huge = read(Some(&json!({"input": u64::MAX, "output": 5})));
        assert_eq!(huge.total_tokens, u64::MAX);
    }
}
