//! Mini-batch SGD with classic or Nesterov momentum, and the learning-rate schedule (linear warm-up,
//! then cosine decay to zero over the remaining epochs).

use std::f32::consts::PI;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::params::Params;
use super::pool::{part_range, Pool, MAX_THREADS};

/// Weights of a layer from which [`Sgd::step_decayed`] splits its pass over the pool's threads
/// (the MLP's hidden layer has 163,840; the linear head's 5,120 are not worth a hand-over).
pub const PARALLEL_MIN_WEIGHTS: usize = 1 << 16;

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
    pool: Option<Arc<Pool>>,
}

impl Sgd {
    /// Zero velocity shaped like `params`.
    pub fn new(params: &Params, momentum: f32, nesterov: bool) -> Sgd {
        Sgd {
            velocity: params.zeros_like(),
            momentum,
            nesterov,
            pool: None,
        }
    }

    /// Splits the pass of [`Sgd::step_decayed`] over a layer of at least
    /// [`PARALLEL_MIN_WEIGHTS`] weights over `pool`'s threads: the same weights come out (each
    /// element's update is on its own); the returned penalty is summed in another order.
    pub fn set_pool(&mut self, pool: Option<Arc<Pool>>) {
        self.pool = pool;
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

impl Sgd {
    /// The training loop's step with its weight decay folded in: on the weights (not the biases)
    /// `g ← g + weight_decay · (W − T)`, with `T` the layer's weights in `target` (zero without
    /// one), then the momentum step of [`Sgd::step`], in one pass over each layer. Returns the
    /// decay's term of the loss at the weights before the step, `weight_decay / 2 · Σ ‖W − T‖²`
    /// (what `loss_and_grad` + `fewshot::pull_toward` + `step` compute in three passes).
    pub fn step_decayed(
        &mut self,
        params: &mut Params,
        grad: &Params,
        lr: f32,
        weight_decay: f32,
        target: Option<&Params>,
    ) -> f32 {
        let mu = self.momentum;
        let mut penalty = 0.0f32;
        for (i, ((p, g), v)) in params
            .layers
            .iter_mut()
            .zip(&grad.layers)
            .zip(&mut self.velocity.layers)
            .enumerate()
        {
            let t = target.and_then(|t| t.layers.get(i)).map(|t| &t.w);
            let nesterov = self.nesterov;
            let pool = self
                .pool
                .as_deref()
                .filter(|_| p.w.len() >= PARALLEL_MIN_WEIGHTS);
            let fused = match (
                p.w.as_slice_mut(),
                g.w.as_slice(),
                v.w.as_slice_mut(),
                t.map(|t| t.as_slice()),
            ) {
                (Some(ps), Some(gs), Some(vs), None) if ps.len() == gs.len() => {
                    penalty += decayed_update_parts::<false>(
                        pool,
                        ps,
                        gs,
                        vs,
                        gs,
                        [lr, mu, weight_decay],
                        nesterov,
                    );
                    true
                }
                (Some(ps), Some(gs), Some(vs), Some(Some(ts))) if ps.len() == ts.len() => {
                    penalty += decayed_update_parts::<true>(
                        pool,
                        ps,
                        gs,
                        vs,
                        ts,
                        [lr, mu, weight_decay],
                        nesterov,
                    );
                    true
                }
                _ => false,
            };
            if !fused {
                // Unusual layouts: the same step in ndarray's terms.
                let mut g = g.w.clone();
                g.scaled_add(weight_decay, &p.w);
                let mut diff = p.w.clone();
                if let Some(t) = t {
                    g.scaled_add(-weight_decay, t);
                    diff -= t;
                }
                penalty += diff.iter().map(|d| d * d).sum::<f32>();
                update(&mut p.w, &g, &mut v.w, lr, mu, self.nesterov);
            }
            update(&mut p.b, &g.b, &mut v.b, lr, mu, self.nesterov);
        }
        0.5 * weight_decay * penalty
    }
}

/// [`decayed_update`] with the elements cut into the parts of `pool` (on its threads), the parts'
/// penalties added in part order; without a pool, [`decayed_update`] itself.
fn decayed_update_parts<const TARGET: bool>(
    pool: Option<&Pool>,
    p: &mut [f32],
    g: &[f32],
    v: &mut [f32],
    t: &[f32],
    [lr, mu, wd]: [f32; 3],
    nesterov: bool,
) -> f32 {
    let Some(pool) = pool.filter(|pool| pool.parts() <= MAX_THREADS) else {
        return decayed_update::<TARGET>(p, g, v, t, lr, mu, wd, nesterov);
    };
    let n = p.len();
    assert!(g.len() == n && v.len() == n && t.len() == n);
    let (pp, vp) = (SharedMut(p.as_mut_ptr()), SharedMut(v.as_mut_ptr()));
    let sums: [AtomicU32; MAX_THREADS] = std::array::from_fn(|_| AtomicU32::new(0));
    pool.run(&|part| {
        let r = part_range(n, pool.parts(), part, 16);
        // SAFETY: each part takes its own range `r` of `p` and `v`, which outlive `Pool::run`.
        let (ps, vs) = unsafe {
            (
                std::slice::from_raw_parts_mut(pp.ptr().add(r.start), r.len()),
                std::slice::from_raw_parts_mut(vp.ptr().add(r.start), r.len()),
            )
        };
        let tr = if TARGET { &t[r.clone()] } else { &g[r.clone()] };
        let sum = decayed_update::<TARGET>(ps, &g[r.clone()], vs, tr, lr, mu, wd, nesterov);
        sums[part].store(sum.to_bits(), Ordering::Relaxed);
    });
    sums[..pool.parts()]
        .iter()
        .map(|s| f32::from_bits(s.load(Ordering::Relaxed)))
        .sum()
}

/// A buffer whose disjoint pieces the parts of a task write.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);

// SAFETY: the parts write disjoint elements, and `Pool::run` returns only when all are done.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer (a method, so that a closure captures the whole `Sync` wrapper).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// One layer's weights of [`Sgd::step_decayed`]; `t` is the target when `TARGET`, else ignored
/// (zero). Returns `Σ (w − t)²` before the step, in eight interleaved partial sums.
#[allow(clippy::too_many_arguments)]
fn decayed_update<const TARGET: bool>(
    p: &mut [f32],
    g: &[f32],
    v: &mut [f32],
    t: &[f32],
    lr: f32,
    mu: f32,
    wd: f32,
    nesterov: bool,
) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor has AVX2 (checked just above).
            return unsafe { x86::decayed_update::<TARGET>(p, g, v, t, lr, mu, wd, nesterov) };
        }
    }
    decayed_update_portable::<TARGET>(p, g, v, t, lr, mu, wd, nesterov)
}

/// [`decayed_update`] one lane at a time (eight interleaved partial sums of the penalty).
#[allow(clippy::too_many_arguments)]
fn decayed_update_portable<const TARGET: bool>(
    p: &mut [f32],
    g: &[f32],
    v: &mut [f32],
    t: &[f32],
    lr: f32,
    mu: f32,
    wd: f32,
    nesterov: bool,
) -> f32 {
    let mut acc = [0.0f32; 8];
    let one = |p: &mut f32, g: f32, v: &mut f32, t: f32, acc: &mut f32| {
        let diff = if TARGET { *p - t } else { *p };
        *acc += diff * diff;
        let g = g + wd * diff;
        *v = mu * *v + g;
        *p -= lr * if nesterov { g + mu * *v } else { *v };
    };
    let n = p.len();
    let full = n / 8 * 8;
    let (pc, pr) = p.split_at_mut(full);
    let (vc, vr) = v.split_at_mut(full);
    for (((p, g), v), t) in pc
        .chunks_exact_mut(8)
        .zip(g[..full].chunks_exact(8))
        .zip(vc.chunks_exact_mut(8))
        .zip(t[..full].chunks_exact(8))
    {
        for l in 0..8 {
            one(&mut p[l], g[l], &mut v[l], t[l], &mut acc[l]);
        }
    }
    let mut tail = 0.0f32;
    for (j, (p, v)) in pr.iter_mut().zip(vr.iter_mut()).enumerate() {
        one(p, g[full + j], v, t[full + j], &mut tail);
    }
    acc.iter().sum::<f32>() + tail
}

/// [`decayed_update`] in AVX2 registers: the same operations on each element (no fused
/// multiply-adds), so the weights come out as the portable loop's.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn decayed_update<const TARGET: bool>(
        p: &mut [f32],
        g: &[f32],
        v: &mut [f32],
        t: &[f32],
        lr: f32,
        mu: f32,
        wd: f32,
        nesterov: bool,
    ) -> f32 {
        let n = p.len();
        assert!(g.len() == n && v.len() == n && t.len() == n);
        let full = n / 8 * 8;
        let (lrv, muv, wdv) = (_mm256_set1_ps(lr), _mm256_set1_ps(mu), _mm256_set1_ps(wd));
        let mut acc = _mm256_setzero_ps();
        let mut j = 0;
        while j < full {
            // SAFETY: `j + 8 <= n` for all four slices.
            unsafe {
                let pj = _mm256_loadu_ps(p.as_ptr().add(j));
                let diff = if TARGET {
                    _mm256_sub_ps(pj, _mm256_loadu_ps(t.as_ptr().add(j)))
                } else {
                    pj
                };
                acc = _mm256_add_ps(acc, _mm256_mul_ps(diff, diff));
                let gj =
                    _mm256_add_ps(_mm256_loadu_ps(g.as_ptr().add(j)), _mm256_mul_ps(wdv, diff));
                let vj = _mm256_add_ps(_mm256_mul_ps(muv, _mm256_loadu_ps(v.as_ptr().add(j))), gj);
                _mm256_storeu_ps(v.as_mut_ptr().add(j), vj);
                let stepv = if nesterov {
                    _mm256_add_ps(gj, _mm256_mul_ps(muv, vj))
                } else {
                    vj
                };
                _mm256_storeu_ps(
                    p.as_mut_ptr().add(j),
                    _mm256_sub_ps(pj, _mm256_mul_ps(lrv, stepv)),
                );
            }
            j += 8;
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds eight floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
        let mut tail = 0.0f32;
        for j in full..n {
            let diff = if TARGET { p[j] - t[j] } else { p[j] };
            tail += diff * diff;
            let gj = g[j] + wd * diff;
            v[j] = mu * v[j] + gj;
            p[j] -= lr * if nesterov { gj + mu * v[j] } else { v[j] };
        }
        lanes.iter().sum::<f32>() + tail
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
