//! The output head on the GPU: `softmax(W_y h + b_y)` for all steps at once.

use super::kernels::{self, Gemm};
use super::tensor::new_buffer;
use super::{Context, Tensor};
use crate::cpu::head::check_targets;
use crate::cpu::Reduction;
use crate::error::{Error, Result};
use crate::params::Head;

/// The result of [`GpuHead::loss`], on the device.
#[derive(Debug)]
pub struct GpuHeadLoss {
    /// The reduced loss `[1]`.
    pub loss: Tensor,
    /// `[T, B, H]`: the network's output gradient.
    pub dh: Tensor,
    /// `[C, H]`.
    pub dw_y: Tensor,
    /// `[C]`.
    pub db_y: Tensor,
    /// Positions that count (targets other than the ignore index).
    pub counted: usize,
}

/// An output head whose weights live on the device.
#[derive(Debug)]
pub struct GpuHead {
    ctx: Context,
    classes: usize,
    hidden: usize,
    w_y: std::sync::Arc<super::context::Buf>,
    b_y: std::sync::Arc<super::context::Buf>,
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
                w_y: std::sync::Arc::new(ctx.buf_init("w_y", w.as_slice().unwrap_or(&[]), usage)),
                b_y: std::sync::Arc::new(ctx.buf_init("b_y", b.as_slice().unwrap_or(&[]), usage)),
            };
            ctx.submit(None)?;
            Ok(head)
        })
    }

    /// The weights `W_y [C, H]` and bias `b_y [C]` on the device (change them in place,
    /// as an optimizer step does; the next call reads them).
    pub fn parameters(&self) -> [Tensor; 2] {
        [
            Tensor::view_of(&self.ctx, &self.w_y, 0, &[self.classes, self.hidden]),
            Tensor::view_of(&self.ctx, &self.b_y, 0, &[self.classes]),
        ]
    }

    /// Checks `h [T, B, H]` (this head's `H`, this context); returns its shape.
    fn check_h<'t>(&self, h: &'t Tensor) -> Result<&'t [usize]> {
        let s = h.shape();
        if s.len() != 3 || s[0] == 0 || s[1] == 0 || s[2] != self.hidden {
            return Err(Error::Shape {
                arg: "h",
                expected: format!("[T, B, H] with T ≥ 1, B ≥ 1, H = {}", self.hidden),
                got: crate::error::fmt_shape(s),
            });
        }
        self.ctx.check_owner("h", h)?;
        Ok(s)
    }

    /// `y [T, B, C] = softmax(h · W_yᵀ + b_y)` over the class axis, for `h [T, B, H]`:
    /// one GEMM over all `T·B` rows and one softmax dispatch, each row shifted by its max.
    pub fn forward(&self, h: &Tensor) -> Result<Tensor> {
        let ctx = &self.ctx;
        let s = self.check_h(h)?;
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
                b: (&*self.w_y, 0),
                bias: Some((&*self.b_y, 0)),
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

    /// The head fused with softmax cross-entropy, forward and backward at once, for
    /// `h [T, B, H]` and `targets [T, B]` (class ids; positions whose target is
    /// `ignore_index` left out): the loss reduced as [`Reduction`] says (finite for logits
    /// of any finite size), and `dh` (the network's output gradient), `dW_y`, `db_y`.
    /// One GEMM for the logits, one kernel for the losses and `dlogits = (softmax −
    /// onehot) · scale` in place, three GEMMs and two column sums, in one compute pass;
    /// nothing is read back. [`crate::cpu::head_loss`] and
    /// [`crate::cpu::head_loss_backward`] are the CPU path's.
    pub fn loss(
        &self,
        h: &Tensor,
        targets: ndarray::ArrayView2<usize>,
        ignore_index: Option<usize>,
        reduction: Reduction,
    ) -> Result<GpuHeadLoss> {
        let ctx = &self.ctx;
        let s = self.check_h(h)?;
        let (c, hs) = (self.classes, self.hidden);
        let counted = check_targets(&targets, s[0], s[1], c, ignore_index)?;
        let rows = s[0] * s[1];
        ctx.check_elems("h", &[rows, c])?;
        let scale = match reduction {
            Reduction::Mean if counted > 0 => 1.0 / counted as f32,
            _ => 1.0,
        };
        let ids: Vec<u32> = targets
            .iter()
            .map(|&k| {
                if Some(k) == ignore_index {
                    u32::MAX
                } else {
                    k as u32
                }
            })
            .collect();
        ctx.run("head loss", || {
            use std::sync::Arc;
            let table = ctx.buf_init("targets", &ids, super::tensor::TENSOR_USAGE);
            let z = new_buffer(ctx, "h", &[rows, c])?;
            let per_row = new_buffer(ctx, "h", &[rows])?;
            let make = |shape: &[usize]| -> Result<Tensor> {
                let buf = Arc::new(new_buffer(ctx, "h", shape)?);
                Ok(Tensor::view_of(ctx, &buf, 0, shape))
            };
            let (loss, dh, dw_y, db_y) = (
                make(&[1])?,
                make(&[s[0], s[1], hs])?,
                make(&[c, hs])?,
                make(&[c])?,
            );
            let gemm = |m, n, k, a, b, c_out, trans_a, trans_b, bias| {
                Gemm {
                    arg: "h",
                    arg_n: "h",
                    m,
                    n,
                    k,
                    a,
                    b,
                    bias,
                    c: c_out,
                    trans_a,
                    trans_b,
                    accumulate: false,
                    ld: kernels::PACKED,
                }
                .op(ctx)
            };
            let hb = (h.buffer(), h.offset());
            let ops = [
                gemm(
                    rows,
                    c,
                    hs,
                    hb,
                    (&*self.w_y, 0),
                    (&z, 0),
                    false,
                    true,
                    Some((&*self.b_y, 0)),
                )?,
                kernels::xent(ctx, &table, &z, &per_row, rows, c, scale)?,
                kernels::col_sum(ctx, "h", &per_row, loss.buffer(), rows, 1, false)?,
                gemm(
                    c,
                    hs,
                    rows,
                    (&z, 0),
                    hb,
                    (dw_y.buffer(), 0),
                    true,
                    false,
                    None,
                )?,
                kernels::col_sum(ctx, "h", &z, db_y.buffer(), rows, c, false)?,
                gemm(
                    rows,
                    hs,
                    c,
                    (&z, 0),
                    (&*self.w_y, 0),
                    (dh.buffer(), 0),
                    false,
                    false,
                    None,
                )?,
            ];
            kernels::submit_pass(
                ctx,
                "head loss",
                |_| {},
                |pass| {
                    for op in &ops {
                        op.record(pass);
                    }
                },
            )?;
            Ok(GpuHeadLoss {
                loss,
                dh,
                dw_y,
                db_y,
                counted,
            })
        })
    }
}
