//! Mini-batch SGD with classic or Nesterov momentum, and the learning-rate schedule (linear warm-up,
//! then cosine decay to zero over the remaining epochs).

use std::f32::consts::PI;

use super::params::Params;

/// Learning rate at a fractional epoch `t` (0-based, `t ∈ [0, epochs)`): linear ramp from
/// `peak / (warmup·…)` up to `peak` over the warm-up, then a half cosine from `peak` towards 0.
pub fn learning_rate_at(t: f32, peak: f32, warmup: usize, epochs: usize) -> f32 {
    let warm = warmup as f32;
    if t < warm {
        return peak * (t + 1.0 / 64.0).min(warm) / warm;
    }
    let span = (epochs as f32 - warm).max(1.0);
    let progress = ((t - warm) / span).clamp(0.0, 1.0);
    peak * 0.5 * (1.0 + (PI * progress).cos())
}

/// Momentum state for one set of parameters.
#[derive(Debug, Clone)]
pub struct Sgd {
    velocity: Params,
    momentum: f32,
    nesterov: bool,
}

impl Sgd {
    /// Zero velocity shaped like `params`.
    pub fn new(params: &Params, momentum: f32, nesterov: bool) -> Sgd {
        Sgd {
            velocity: params.zeros_like(),
            momentum,
            nesterov,
        }
    }

    /// `v ← μ v + g`; then `θ ← θ − lr · (g + μ v)` (Nesterov) or `θ ← θ − lr · v` (classic).
    pub fn step(&mut self, params: &mut Params, grad: &Params, lr: f32) {
        let mu = self.momentum;
        for ((p, g), v) in params
            .layers
            .iter_mut()
            .zip(&grad.layers)
            .zip(&mut self.velocity.layers)
        {
            update(&mut p.w, &g.w, &mut v.w, lr, mu, self.nesterov);
            update(&mut p.b, &g.b, &mut v.b, lr, mu, self.nesterov);
        }
    }
}

fn update<D: ndarray::Dimension>(
    p: &mut ndarray::Array<f32, D>,
    g: &ndarray::Array<f32, D>,
    v: &mut ndarray::Array<f32, D>,
    lr: f32,
    mu: f32,
    nesterov: bool,
) {
    ndarray::Zip::from(p).and(g).and(v).for_each(|p, &g, v| {
        *v = mu * *v + g;
        *p -= lr * if nesterov { g + mu * *v } else { *v };
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        let lr = |t| learning_rate_at(t, 1.0, 2, 10);
        assert!(lr(0.0) < lr(1.0) && lr(1.0) < lr(2.0));
        assert!((lr(2.0) - 1.0).abs() < 1e-6);
        assert!(lr(6.0) < lr(4.0));
        assert!(lr(10.0).abs() < 1e-6);
    }

    #[test]
    fn no_warmup_starts_at_peak() {
        assert!((learning_rate_at(0.0, 0.5, 0, 5) - 0.5).abs() < 1e-6);
    }
}
