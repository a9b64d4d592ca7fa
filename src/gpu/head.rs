//! The output head on the GPU: `softmax(W_y h + b_y)` for all steps at once.

use super::kernels::{self, Gemm};
use super::tensor::new_buffer;
use super::{Context, Tensor};
use crate::error::{Error, Result};
use crate::params::Head;

/// An output head whose weights live on the device.
#[derive(Debug)]
pub struct GpuHead {
    ctx: Context,
    classes: usize,
    hidden: usize,
    w_y: super::context::Buf,
    b_y: super::context::Buf,
}

impl GpuHead {
    /// Uploads `head` (checked first).
    pub fn new(ctx: &Context, head: &Head<f32>) -> Result<Self> {
        head.check()?;
        let (c, h) = head.w_y.dim();
        ctx.check_elems("head", &[c, h])?;
        ctx.run("uploading the head", || {
            let w = crate::host::copy("head", &head.w_y)?;
            let b = crate::host::copy("head", &head.b_y)?;
            let usage = super::tensor::TENSOR_USAGE;
            let head = GpuHead {
                ctx: ctx.clone(),
                classes: c,
                hidden: h,
                w_y: ctx.buf_init("w_y", w.as_slice().unwrap_or(&[]), usage),
                b_y: ctx.buf_init("b_y", b.as_slice().unwrap_or(&[]), usage),
            };
            ctx.submit(None)?;
            Ok(head)
        })
    }

    /// `y [T, B, C] = softmax(h · W_yᵀ + b_y)` over the class axis, for `h [T, B, H]`:
    /// one GEMM over all `T·B` rows and one softmax dispatch, each row shifted by its max.
    pub fn forward(&self, h: &Tensor) -> Result<Tensor> {
        let ctx = &self.ctx;
        let s = h.shape();
        if s.len() != 3 || s[0] == 0 || s[1] == 0 || s[2] != self.hidden {
            return Err(Error::Shape {
                arg: "h",
                expected: format!("[T, B, H] with T ≥ 1, B ≥ 1, H = {}", self.hidden),
                got: crate::error::fmt_shape(s),
            });
        }
        ctx.check_owner("h", h)?;
        let rows = s[0] * s[1];
        ctx.check_elems("h", &[rows, self.classes])?;
        ctx.run("head", || {
            let y = std::sync::Arc::new(new_buffer(ctx, "h", &[rows, self.classes])?);
            let gemm = Gemm {
                arg: "h",
                arg_n: "h",
                m: rows,
                n: self.classes,
                k: self.hidden,
                a: (h.buffer(), h.offset()),
                b: (&self.w_y, 0),
                bias: Some((&self.b_y, 0)),
                c: (&y, 0),
                trans_a: false,
                trans_b: true,
                accumulate: false,
                ld: kernels::PACKED,
            }
            .op(ctx)?;
            let soft = kernels::softmax(ctx, &y, 0, rows, self.classes)?;
            kernels::submit_pass(
                ctx,
                "head",
                |_| {},
                |pass| {
                    gemm.record(pass);
                    soft.record(pass);
                },
            )?;
            Ok(Tensor::view_of(ctx, &y, 0, &[s[0], s[1], self.classes]))
        })
    }
}
