//! Latency percentiles and the report.

use serde::Serialize;

/// The `p`-th percentile (0 < p <= 100) of `sorted` (ascending), nearest-rank method: the smallest value such that
/// at least `p` percent of the samples are at or below it. `None` for no samples.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    // The epsilon absorbs floating-point noise (99.9 / 100 * 1000 is 999.0000000000001, whose rank is 999).
    let rank = (p / 100.0 * n as f64 - 1e-6).ceil();
    // rank is in 0..=n for p in 0..=100; clamp anyway so any p is safe.
    let index = if rank.is_finite() && rank > 1.0 { (rank as usize).min(n) - 1 } else { 0 };
    sorted.get(index).copied()
}

/// What one run measured; printed as text or JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub op: String,
    pub endpoint: String,
    pub connections: usize,
    /// Measured time from the end of the warm-up to the last response, in seconds.
    pub duration_s: f64,
    pub warmup_s: f64,
    pub payload_bytes: usize,
    /// Successful, checked requests after the warm-up.
    pub requests: u64,
    /// Failed requests after the warm-up: transport errors, non-200 answers, wrong answers.
    pub errors: u64,
    pub requests_per_sec: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// The first error seen, if any (a sample, to say what went wrong).
    pub first_error: Option<String>,
    /// `--mix` runs: the spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mix: Option<String>,
    /// `--mix` runs: figures per operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ops: Option<std::collections::BTreeMap<String, OpReport>>,
}

/// The figures of one operation of a mix.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    pub requests: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

impl OpReport {
    /// From the latencies (microseconds) of the operation's successful requests.
    pub fn new(mut latencies_us: Vec<u64>, errors: u64) -> Self {
        latencies_us.sort_unstable();
        Self {
            requests: latencies_us.len() as u64,
            p50_ms: ms(percentile(&latencies_us, 50.0)),
            p99_ms: ms(percentile(&latencies_us, 99.0)),
            errors,
        }
    }
}

fn ms(us: Option<u64>) -> f64 {
    us.map_or(0.0, |v| v as f64 / 1000.0)
}

impl Report {
    /// Builds the report from the latencies (microseconds) of the successful requests.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        op: &str,
        endpoint: &str,
        connections: usize,
        duration_s: f64,
        warmup_s: f64,
        payload_bytes: usize,
        mut latencies_us: Vec<u64>,
        errors: u64,
        first_error: Option<String>,
    ) -> Self {
        latencies_us.sort_unstable();
        let requests = latencies_us.len() as u64;
        let sum: u128 = latencies_us.iter().map(|&v| u128::from(v)).sum();
        let mean_ms = if requests == 0 { 0.0 } else { sum as f64 / requests as f64 / 1000.0 };
        let requests_per_sec = if duration_s > 0.0 { requests as f64 / duration_s } else { 0.0 };
        Self {
            op: op.to_owned(),
            endpoint: endpoint.to_owned(),
            connections,
            duration_s,
            warmup_s,
            payload_bytes,
            requests,
            errors,
            requests_per_sec,
            mean_ms,
            p50_ms: ms(percentile(&latencies_us, 50.0)),
            p90_ms: ms(percentile(&latencies_us, 90.0)),
            p99_ms: ms(percentile(&latencies_us, 99.0)),
            p999_ms: ms(percentile(&latencies_us, 99.9)),
            max_ms: ms(latencies_us.last().copied()),
            first_error,
            mix: None,
            ops: None,
        }
    }

    pub fn text(&self) -> String {
        let mut s = format!(
            "{} against {}: {} connections, {:.2} s after {:.1} s warm-up, {}-byte payload\n\
             requests   {} ok, {} errors\n\
             rate       {:.1} requests/s\n\
             latency    p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms, mean {:.3} ms\n",
            self.op,
            self.endpoint,
            self.connections,
            self.duration_s,
            self.warmup_s,
            self.payload_bytes,
            self.requests,
            self.errors,
            self.requests_per_sec,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
            self.mean_ms,
        );
        if let Some(m) = &self.mix {
            s.push_str(&format!("mix        {m}\n"));
        }
        for (name, o) in self.ops.iter().flatten() {
            s.push_str(&format!(
                "  {name:<18} {} ok, {} errors, p50 {:.3} ms, p99 {:.3} ms\n",
                o.requests, o.errors, o.p50_ms, o.p99_ms
            ));
        }
        if let Some(e) = &self.first_error {
            s.push_str(&format!("first error: {e}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), Some(500));
        assert_eq!(percentile(&v, 90.0), Some(900));
        assert_eq!(percentile(&v, 99.0), Some(990));
        assert_eq!(percentile(&v, 99.9), Some(999));
        assert_eq!(percentile(&v, 100.0), Some(1000));
        assert_eq!(percentile(&v, 0.0), Some(1));
    }

    #[test]
    fn percentiles_small_and_empty() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.9), Some(7));
        assert_eq!(percentile(&[1, 2], 50.0), Some(1));
        assert_eq!(percentile(&[1, 2], 50.1), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99.9), Some(10));
        assert_eq!(percentile(&[1, 2, 3], 250.0), Some(3));
        assert_eq!(percentile(&[1, 2, 3], f64::NAN), Some(1));
    }

    #[test]
    fn report_from_unsorted_samples() {
        let mut v: Vec<u64> = (1..=100).map(|i| i * 10).collect();
        v.reverse();
        let r = Report::new("encrypt", "https://x", 2, 2.0, 1.0, 32, v, 3, Some("boom".into()));
        assert_eq!(r.requests, 100);
        assert_eq!(r.errors, 3);
        assert!((r.requests_per_sec - 50.0).abs() < 1e-9);
        assert!((r.p50_ms - 0.5).abs() < 1e-9);
        assert!((r.p99_ms - 0.99).abs() < 1e-9);
        assert!((r.p999_ms - 1.0).abs() < 1e-9);
        assert!((r.max_ms - 1.0).abs() < 1e-9);
        assert!((r.mean_ms - 0.505).abs() < 1e-9);
        let json = serde_json::to_value(&r).unwrap();
        for field in ["requests_per_sec", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "errors", "requests"] {
            assert!(json.get(field).is_some(), "{field}");
        }
        assert!(r.text().contains("first error: boom"));
        assert!(json.get("ops").is_none() && json.get("mix").is_none(), "single-op reports are unchanged");
    }

    #[test]
    fn per_operation_figures() {
        let o = OpReport::new(vec![3000, 1000, 2000], 1);
        assert_eq!((o.requests, o.errors), (3, 1));
        assert!((o.p50_ms - 2.0).abs() < 1e-9 && (o.p99_ms - 3.0).abs() < 1e-9);
        let mut r = Report::new("mix", "https://x", 1, 1.0, 0.0, 32, vec![1000], 0, None);
        r.mix = Some("encrypt=1".into());
        r.ops = Some([("encrypt".to_owned(), o)].into_iter().collect());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["ops"]["encrypt"]["requests"], 3);
        assert_eq!(json["ops"]["encrypt"]["errors"], 1);
        assert_eq!(json["mix"], "encrypt=1");
        assert!(r.text().contains("encrypt"));
    }
}
