//! Timing loops and percentiles.
//!
//! Latency is measured one operation at a time with a pair of `Instant::now()` (a vDSO
//! `clock_gettime(CLOCK_MONOTONIC)`), after a tenth as many untimed operations. The figures
//! include the cost of reading the clock once; [`timer_overhead`] measures it so that reports
//! can show it next to them. Each series is run in several rounds interleaved with the other
//! subjects, and [`Summary::median_of`] takes each percentile's median over the rounds, so a
//! burst of load elsewhere on the machine hits every subject alike.

use serde_json::{json, Value};
use std::time::Instant;

/// Percentiles of one series, in nanoseconds per operation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// Timed operations (per round).
    pub ops: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    /// Summary of unsorted samples.
    pub fn of(mut ns: Vec<u64>) -> Summary {
        assert!(!ns.is_empty(), "no samples");
        ns.sort_unstable();
        let q = |p: f64| ns[((ns.len() - 1) as f64 * p).round() as usize] as f64;
        Summary {
            ops: ns.len(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: *ns.last().unwrap() as f64,
            mean: ns.iter().sum::<u64>() as f64 / ns.len() as f64,
        }
    }

    /// Each field's median over rounds.
    pub fn median_of(rounds: &[Summary]) -> Summary {
        assert!(!rounds.is_empty());
        let m = |f: fn(&Summary) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
        Summary {
            ops: rounds[0].ops,
            p50: m(|s| s.p50),
            p90: m(|s| s.p90),
            p99: m(|s| s.p99),
            p999: m(|s| s.p999),
            max: m(|s| s.max),
            mean: m(|s| s.mean),
        }
    }

    /// Divides every figure by `k` (a batch of `k` operations timed as one).
    pub fn per_op(self, k: usize) -> Summary {
        let k = k as f64;
        Summary {
            p50: self.p50 / k,
            p90: self.p90 / k,
            p99: self.p99 / k,
            p999: self.p999 / k,
            max: self.max / k,
            mean: self.mean / k,
            ..self
        }
    }

    /// As JSON (nanoseconds).
    pub fn json(&self) -> Value {
        json!({
            "ops": self.ops, "p50_ns": self.p50, "p90_ns": self.p90, "p99_ns": self.p99,
            "p999_ns": self.p999, "max_ns": self.max, "mean_ns": self.mean,
        })
    }
}

/// The median of `xs` (the mean of the middle two for an even count).
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Times `n` single calls of `op` (after `n / 10` untimed ones), one clock pair each.
pub fn time_ops(n: usize, mut op: impl FnMut()) -> Summary {
    for _ in 0..n / 10 {
        op();
    }
    let mut ns = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        op();
        ns.push(t.elapsed().as_nanos() as u64);
    }
    Summary::of(ns)
}

/// The clock pair's own cost: [`time_ops`] of nothing.
pub fn timer_overhead(n: usize) -> Summary {
    time_ops(n, || {})
}

/// Mean nanoseconds per call of `n` calls in one plain loop (no clock per call).
pub fn loop_mean(n: usize, mut op: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        op();
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

/// [`loop_mean`] in CPU time of the calling thread: nanoseconds per call of `n` calls in one
/// plain loop, not counting time the thread spent descheduled (on a machine shared with other
/// work, the wall-clock mean of a long loop is mostly other processes' time slices).
pub fn loop_mean_cpu(n: usize, mut op: impl FnMut()) -> f64 {
    let cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        t.tv_sec as f64 * 1e9 + t.tv_nsec as f64
    };
    let t = cpu();
    for _ in 0..n {
        op();
    }
    (cpu() - t) / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let s = Summary::of((1..=1000).rev().collect());
        assert_eq!((s.p50, s.p99, s.max), (501.0, 990.0, 1000.0));
        let m = Summary::median_of(&[s, s.per_op(10), s.per_op(2)]);
        assert_eq!(m.p50, 250.5);
        assert_eq!(median(&[3.0, 1.0]), 2.0);
    }
}
