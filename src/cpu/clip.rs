//! Gradient clipping on the CPU, in place (mirrors `gpu::clip_grad_norm` and
//! `gpu::clip_grad_value`, summing in the same order).

use crate::error::{Error, Result};
use crate::real::Real;

/// Scales every slice of `grads` in place by `min(1, max_norm / (‖g‖ + 1e-6))`, `‖g‖` the
/// L2 norm of all their elements together (PyTorch's `clip_grad_norm_`), and returns
/// that norm before clipping. Sums of squares run over chunks of 4096 elements, then
/// over the chunks in order, as on the GPU.
pub fn clip_grad_norm<A: Real>(grads: &mut [&mut [A]], max_norm: A) -> Result<A> {
    if !(max_norm.is_finite() && max_norm > A::zero()) {
        return Err(Error::Invalid {
            arg: "max_norm",
            msg: format!("{}; it must be finite and above 0", max_norm.to_f64()),
        });
    }
    let mut total = A::zero();
    for g in grads.iter() {
        for chunk in g.chunks(4096) {
            total += chunk.iter().fold(A::zero(), |s, &v| s + v * v);
        }
    }
    let norm = A::from_f64(total.to_f64().sqrt());
    let factor = max_norm / (norm + A::from_f64(1e-6));
    let factor = if factor < A::one() { factor } else { A::one() };
    for g in grads.iter_mut() {
        g.iter_mut().for_each(|v| *v *= factor);
    }
    Ok(norm)
}

/// Clips every element of every slice of `grads` to `[−max, max]` in place (the
/// notebook's `clip`).
pub fn clip_grad_value<A: Real>(grads: &mut [&mut [A]], max: A) -> Result<()> {
    if !(max.is_finite() && max >= A::zero()) {
        return Err(Error::Invalid {
            arg: "max",
            msg: format!("{}; it must be finite and at least 0", max.to_f64()),
        });
    }
    for g in grads.iter_mut() {
        for v in g.iter_mut() {
            *v = if *v > max {
                max
            } else if *v < -max {
                -max
            } else {
                *v
            };
        }
    }
    Ok(())
}
