//! Percentiles and the pass/fail thresholds.

use serde::Serialize;

/// Summary of a sample set (milliseconds or any unit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Nearest-rank percentile (`p` in 0..=100) of already sorted samples; `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Summarises samples (NaN dropped); `None` when there are none.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let sum: f64 = v.iter().sum();
    Some(Summary {
        count: v.len(),
        min: v[0],
        mean: sum / v.len() as f64,
        p50: percentile(&v, 50.0)?,
        p95: percentile(&v, 95.0)?,
        p99: percentile(&v, 99.0)?,
        max: v[v.len() - 1],
    })
}

/// Limits the run must meet (each optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Thresholds {
    pub max_loss_pct: Option<f64>,
    pub max_delay_p99_ms: Option<f64>,
    pub max_join_p99_ms: Option<f64>,
    pub max_part_latency_p99_ms: Option<f64>,
    pub max_hls_stalls: Option<u64>,
    /// Every publisher and subscriber must have connected.
    pub require_all_joined: bool,
}

/// The measured values the thresholds are checked against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured {
    pub loss_pct: f64,
    pub delay_p99_ms: Option<f64>,
    pub join_p99_ms: Option<f64>,
    pub part_latency_p99_ms: Option<f64>,
    pub hls_stalls: u64,
    pub joined: usize,
    pub expected_joins: usize,
}

/// Every threshold missed, as one line each; empty when the run passed. A limit on a value that
/// was never measured (no delay samples, say) is a miss: the run cannot show it held.
pub fn check(t: &Thresholds, m: &Measured) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(max) = t.max_loss_pct {
        if m.loss_pct > max {
            out.push(format!("loss {:.2}% > {max}%", m.loss_pct));
        }
    }
    let mut limit = |name: &str, max: Option<f64>, got: Option<f64>| {
        if let Some(max) = max {
            match got {
                None => out.push(format!("{name}: not measured (limit {max} ms)")),
                Some(v) if v > max => out.push(format!("{name} {v:.1} ms > {max} ms")),
                Some(_) => {}
            }
        }
    };
    limit("delay p99", t.max_delay_p99_ms, m.delay_p99_ms);
    limit("join p99", t.max_join_p99_ms, m.join_p99_ms);
    limit(
        "part latency p99",
        t.max_part_latency_p99_ms,
        m.part_latency_p99_ms,
    );
    if let Some(max) = t.max_hls_stalls {
        if m.hls_stalls > max {
            out.push(format!("HLS stalls {} > {max}", m.hls_stalls));
        }
    }
    if t.require_all_joined && m.joined < m.expected_joins {
        out.push(format!("only {} of {} joined", m.joined, m.expected_joins));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    }

    #[test]
    fn summary() {
        let s = summarize(&[3.0, 1.0, 2.0, f64::NAN, 4.0]).unwrap();
        assert_eq!(s.count, 4);
        assert_eq!((s.min, s.max, s.mean), (1.0, 4.0, 2.5));
        assert_eq!(s.p50, 2.0);
        assert_eq!(s.p99, 4.0);
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[f64::NAN]).is_none());
    }

    #[test]
    fn thresholds() {
        let t = Thresholds {
            max_loss_pct: Some(1.0),
            max_delay_p99_ms: Some(50.0),
            max_join_p99_ms: None,
            max_part_latency_p99_ms: Some(500.0),
            max_hls_stalls: Some(0),
            require_all_joined: true,
        };
        let good = Measured {
            loss_pct: 0.5,
            delay_p99_ms: Some(20.0),
            join_p99_ms: Some(5000.0),
            part_latency_p99_ms: Some(100.0),
            hls_stalls: 0,
            joined: 6,
            expected_joins: 6,
        };
        assert!(check(&t, &good).is_empty());
        let bad = Measured {
            loss_pct: 2.0,
            delay_p99_ms: None,
            part_latency_p99_ms: Some(900.0),
            hls_stalls: 2,
            joined: 5,
            ..good.clone()
        };
        let misses = check(&t, &bad);
        assert_eq!(misses.len(), 5, "{misses:?}");
        assert!(misses[0].starts_with("loss 2.00%"));
        assert!(misses[1].contains("not measured"));
        assert!(check(&Thresholds::default(), &bad).is_empty());
    }

    proptest! {
        #[test]
        fn percentiles_are_ordered(v in proptest::collection::vec(-1e6f64..1e6, 1..200)) {
            let s = summarize(&v).unwrap();
            prop_assert!(s.min <= s.p50 && s.p50 <= s.p95 && s.p95 <= s.p99 && s.p99 <= s.max);
            prop_assert!(v.contains(&s.p50) && v.contains(&s.p99));
        }
    }
}
