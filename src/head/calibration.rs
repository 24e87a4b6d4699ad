//! Calibration of a head's outputs on held-out data: a softmax temperature fitted by minimising the
//! validation negative log-likelihood, and the "unknown" threshold set so that a chosen share
//! (default 95 %) of in-distribution validation samples is accepted.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use super::loss::cross_entropy;

/// What calibration fitted, stored with the head.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Calibration {
    /// Softmax temperature: probabilities are `softmax(logits / temperature)`.
    pub temperature: f32,
    /// Inputs whose unknown score exceeds this are reported unknown. `f32::INFINITY` until calibrated.
    pub unknown_threshold: f32,
    /// Share of the calibration samples the threshold accepts.
    pub accepted_fraction: f32,
    /// Mean validation NLL at temperature 1 (NaN when not fitted on data).
    pub nll_before: f32,
    /// Mean validation NLL at the fitted temperature (NaN when not fitted on data).
    pub nll_after: f32,
    /// Number of samples the calibration was fitted on (0 = defaults).
    pub samples: usize,
}

/// Field by field, the floats by their bits: "not measured" (NaN) equals itself, so a head
/// compares equal to its own copy.
impl PartialEq for Calibration {
    fn eq(&self, other: &Self) -> bool {
        let bits = |c: &Calibration| {
            [
                c.temperature,
                c.unknown_threshold,
                c.accepted_fraction,
                c.nll_before,
                c.nll_after,
            ]
            .map(f32::to_bits)
        };
        bits(self) == bits(other) && self.samples == other.samples
    }
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            temperature: 1.0,
            unknown_threshold: f32::INFINITY,
            accepted_fraction: 1.0,
            nll_before: f32::NAN,
            nll_after: f32::NAN,
            samples: 0,
        }
    }
}

/// Mean unweighted NLL of `logits / t`.
fn nll(logits: ArrayView2<f32>, labels: &[usize], t: f32) -> f32 {
    let k = logits.ncols();
    let scaled = logits.mapv(|v| v / t);
    cross_entropy(scaled.view(), labels, &vec![1.0; k])
}

/// The temperature in [0.05, 20] minimising validation NLL (golden-section search on `ln t`; the NLL
/// is unimodal in `1/t`), with the NLL before and after.
pub fn fit_temperature(logits: ArrayView2<f32>, labels: &[usize]) -> (f32, f32, f32) {
    let before = nll(logits, labels, 1.0);
    let f = |lt: f32| nll(logits, labels, lt.exp());
    let (mut a, mut b) = (0.05f32.ln(), 20f32.ln());
    let g = 0.618_034f32;
    let mut c = b - g * (b - a);
    let mut d = a + g * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..40 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    let t = (0.5 * (a + b)).exp();
    let after = nll(logits, labels, t);
    // Never report a temperature that is worse than leaving the logits alone.
    if after.is_finite() && after <= before {
        (t, before, after)
    } else {
        (1.0, before, before)
    }
}

/// The smallest threshold that accepts at least `target` of `scores` (accept ⇔ score ≤ threshold),
/// and the share it actually accepts. `INFINITY` for no scores.
pub fn acceptance_threshold(scores: &[f32], target: f32) -> (f32, f32) {
    let mut s: Vec<f32> = scores.iter().copied().filter(|v| v.is_finite()).collect();
    if s.is_empty() {
        return (f32::INFINITY, 1.0);
    }
    s.sort_unstable_by(f32::total_cmp);
    let need = ((target * s.len() as f32).ceil() as usize).clamp(1, s.len());
    let threshold = s[need - 1];
    let accepted = s.iter().filter(|&&v| v <= threshold).count();
    (threshold, accepted as f32 / s.len() as f32)
}

/// The calibration of a head whose held-out `logits`/`labels` give the temperature and whose held-out
/// unknown `scores` give the threshold accepting `target` of them.
pub(super) fn calibration_from(
    logits: ArrayView2<f32>,
    labels: &[usize],
    scores: &[f32],
    target: f32,
) -> Calibration {
    let (temperature, nll_before, nll_after) = fit_temperature(logits, labels);
    let (unknown_threshold, accepted_fraction) = acceptance_threshold(scores, target);
    Calibration {
        temperature,
        unknown_threshold,
        accepted_fraction,
        nll_before,
        nll_after,
        samples: labels.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn threshold_accepts_the_target_share() {
        let scores: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        let (t, acc) = acceptance_threshold(&scores, 0.95);
        assert!(acc >= 0.95);
        assert!(scores.iter().filter(|&&s| s > t).count() <= 5);
    }

    #[test]
    fn overconfident_logits_get_a_temperature_above_one() {
        // Right 3 times out of 4 but with huge margins: softening must lower the NLL.
        let logits = array![[10.0f32, 0.0], [10.0, 0.0], [10.0, 0.0], [10.0, 0.0]];
        let (t, before, after) = fit_temperature(logits.view(), &[0, 0, 0, 1]);
        assert!(t > 1.0);
        assert!(after < before);
    }
}
