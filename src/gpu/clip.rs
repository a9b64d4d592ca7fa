//! Gradient clipping on the device, in place, both ways the course and PyTorch do it:
//! element-wise to `[−m, m]` (the notebook's `clip`) and by the global L2 norm of all the
//! gradients together (`torch.nn.utils.clip_grad_norm_`), the norm computed on the device
//! in a fixed order (the same bits run to run) and returned. [`crate::cpu::clip_grad_norm`]
//! and [`crate::cpu::clip_grad_value`] are the CPU path's.

use std::sync::Arc;

use super::kernels::{self, CLIP_CHUNK};
use super::tensor::new_buffer;
use super::Tensor;
use crate::error::{Error, Result};

/// The context of a non-empty list of tensors, each checked to belong to it.
fn context_of<'a>(grads: &'a [&Tensor]) -> Result<&'a super::Context> {
    let first = grads.first().ok_or(Error::Invalid {
        arg: "grads",
        msg: "no tensors".into(),
    })?;
    let ctx = first.context();
    for g in grads {
        ctx.check_owner("grads", g)?;
    }
    Ok(ctx)
}

/// Scales every tensor of `grads` in place by `min(1, max_norm / (‖g‖ + 1e-6))`, where
/// `‖g‖` is the L2 norm of all their elements together (PyTorch's `clip_grad_norm_`),
/// and returns that norm, before clipping, as a `[1]` tensor on the device. A few
/// dispatches in all: partial sums of squares per tensor, one sum, one scaling per tensor.
pub fn clip_grad_norm(grads: &[&Tensor], max_norm: f32) -> Result<Tensor> {
    let ctx = context_of(grads)?;
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(Error::Invalid {
            arg: "max_norm",
            msg: format!("{max_norm}; it must be finite and above 0"),
        });
    }
    let chunks: Vec<usize> = grads.iter().map(|g| g.len().div_ceil(CLIP_CHUNK)).collect();
    let parts: usize = chunks.iter().sum();
    ctx.run("clip_grad_norm", || {
        let partial = Arc::new(new_buffer(ctx, "grads", &[parts + 2])?);
        let mut ops = Vec::with_capacity(2 * grads.len() + 1);
        let mut at = 0;
        for (g, &n) in grads.iter().zip(&chunks) {
            let x = (g.buffer(), g.offset());
            ops.push(kernels::clip(ctx, x, &partial, g.len(), at, 0, 0.0)?);
            at += n;
        }
        ops.push(kernels::clip(
            ctx,
            (&partial, 0),
            &partial,
            parts,
            0,
            1,
            max_norm,
        )?);
        for g in grads {
            let x = (g.buffer(), g.offset());
            ops.push(kernels::clip(ctx, x, &partial, g.len(), parts + 1, 2, 0.0)?);
        }
        kernels::submit_pass(
            ctx,
            "clip_grad_norm",
            |_| {},
            |pass| {
                for op in &ops {
                    op.record(pass);
                }
            },
        )?;
        Ok(Tensor::view_of(ctx, &partial, parts as u64, &[1]))
    })
}

/// Clips every element of every tensor of `grads` to `[−max, max]` in place (the
/// notebook's `clip(gradients, maxValue)`; PyTorch's `clip_grad_value_`).
pub fn clip_grad_value(grads: &[&Tensor], max: f32) -> Result<()> {
    let ctx = context_of(grads)?;
    if !(max.is_finite() && max >= 0.0) {
        return Err(Error::Invalid {
            arg: "max",
            msg: format!("{max}; it must be finite and at least 0"),
        });
    }
    ctx.run("clip_grad_value", || {
        let scratch = new_buffer(ctx, "grads", &[1])?;
        let ops = grads
            .iter()
            .map(|g| kernels::clip(ctx, (g.buffer(), g.offset()), &scratch, g.len(), 0, 3, max))
            .collect::<Result<Vec<_>>>()?;
        kernels::submit_pass(
            ctx,
            "clip_grad_value",
            |_| {},
            |pass| {
                for op in &ops {
                    op.record(pass);
                }
            },
        )
    })
}
