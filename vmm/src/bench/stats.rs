//! Order statistics of a sample: median, p10/p90 (linear interpolation
//! between closest ranks, as numpy's default), min, max, mean.

use serde::{Deserialize, Serialize};

/// Summary of one sample (milliseconds, or any unit).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    /// 50th percentile.
    pub median: f64,
    /// 10th percentile.
    pub p10: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

/// The `q`-quantile (0..=1) of `sorted` (ascending, not empty): linear
/// interpolation between the two closest ranks.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let last = sorted.len().saturating_sub(1);
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let (Some(a), Some(b)) = (sorted.get(lo), sorted.get(hi)) else {
        return f64::NAN;
    };
    a + (b - a) * (pos - lo as f64)
}

impl Summary {
    /// Summarises `values`; `None` when there are none (NaNs are left out).
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        Some(Self {
            n,
            median: quantile(&sorted, 0.5),
            p10: quantile(&sorted, 0.1),
            p90: quantile(&sorted, 0.9),
            min: sorted[0],
            max: sorted[n - 1],
            mean: sorted.iter().sum::<f64>() / n as f64,
        })
    }
}

/// `peer / baseline` of two medians; `None` when the baseline is not a
/// positive number.
pub fn ratio(peer: f64, baseline: f64) -> Option<f64> {
    (baseline > 0.0 && baseline.is_finite() && peer.is_finite()).then(|| peer / baseline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_nan_only_samples_have_no_summary() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[f64::NAN]), None);
    }

    #[test]
    fn one_value_is_every_statistic() {
        let s = Summary::of(&[7.5]).unwrap();
        assert_eq!(
            (s.n, s.median, s.p10, s.p90, s.min, s.max, s.mean),
            (1, 7.5, 7.5, 7.5, 7.5, 7.5, 7.5)
        );
    }

    #[test]
    fn odd_and_even_medians_and_interpolated_percentiles() {
        let s = Summary::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.mean), (3.0, 1.0, 5.0, 3.0));
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.median, 2.5);
        // numpy.percentile([1,2,3,4], [10, 90]) == [1.3, 3.7]
        assert!((s.p10 - 1.3).abs() < 1e-12, "{}", s.p10);
        assert!((s.p90 - 3.7).abs() < 1e-12, "{}", s.p90);
    }

    #[test]
    fn percentiles_are_ordered_for_unsorted_input_with_nans() {
        let values = [9.0, f64::NAN, 2.0, 11.0, 4.0, 4.0, 30.0, 1.0, 8.0, 6.0, 5.0];
        let s = Summary::of(&values).unwrap();
        assert_eq!(s.n, 10);
        assert!(s.min <= s.p10 && s.p10 <= s.median && s.median <= s.p90 && s.p90 <= s.max);
        assert_eq!((s.min, s.max), (1.0, 30.0));
        // numpy.percentile([1,2,4,4,5,6,8,9,11,30], [10, 50, 90]) == [1.9, 5.5, 12.9]
        assert!(
            (s.p10 - 1.9).abs() < 1e-9
                && (s.median - 5.5).abs() < 1e-9
                && (s.p90 - 12.9).abs() < 1e-9
        );
    }

    #[test]
    fn ratios_need_a_positive_baseline() {
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(3.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 2.0), None);
    }
}
