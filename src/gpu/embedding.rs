//! Token input on the GPU: an embedding lookup (the gather kernel over the table's rows)
//! and its deterministic backward (per token, its positions summed in order: no float
//! atomics, the same bits run to run), mirroring [`crate::cpu::embedding`].

use std::sync::Arc;

use ndarray::ArrayView2;

use super::context::Buf;
use super::kernels;
use super::tensor::{new_buffer, TENSOR_USAGE};
use super::{Context, Tensor};
use crate::cpu::embedding::check_ids;
use crate::error::{Error, Result};

/// An embedding table `[V, E]` on the device.
#[derive(Debug)]
pub struct Embedding {
    ctx: Context,
    vocab: usize,
    dim: usize,
    weight: Arc<Buf>,
}

impl Embedding {
    /// Uploads `weight [V, E]`.
    pub fn new(ctx: &Context, weight: ArrayView2<f32>) -> Result<Self> {
        let (v, e) = weight.dim();
        if v == 0 || e == 0 {
            return Err(Error::Shape {
                arg: "weight",
                expected: "[V, E] with V ≥ 1, E ≥ 1".into(),
                got: crate::error::fmt_shape(weight.shape()),
            });
        }
        ctx.check_elems("weight", &[v, e])?;
        let w = crate::host::copy("weight", &weight)?;
        ctx.run("uploading the embedding", || {
            let weight =
                Arc::new(ctx.buf_init("embedding", w.as_slice().unwrap_or(&[]), TENSOR_USAGE));
            ctx.submit(None)?;
            Ok(Embedding {
                ctx: ctx.clone(),
                vocab: v,
                dim: e,
                weight,
            })
        })
    }

    /// The table `[V, E]` on the device (change it in place, as an optimizer step does;
    /// the next forward reads it).
    pub fn weight(&self) -> Tensor {
        Tensor::view_of(&self.ctx, &self.weight, 0, &[self.vocab, self.dim])
    }

    /// `[T, B, E]`: the table's rows for `ids [T, B]` (one dispatch).
    pub fn forward(&self, ids: ArrayView2<usize>) -> Result<Tensor> {
        let ctx = &self.ctx;
        check_ids(&ids, self.vocab)?;
        let (t, b) = ids.dim();
        ctx.check_elems("ids", &[t, b, self.dim])?;
        let table: Vec<u32> = ids.iter().map(|&v| v as u32).collect();
        ctx.run("embedding", || {
            let table = ctx.buf_init("ids", &table, TENSOR_USAGE);
            let out = Arc::new(new_buffer(ctx, "ids", &[t, b, self.dim])?);
            let op = kernels::gather(
                ctx,
                "ids",
                (&self.weight, 0),
                &table,
                (&out, 0),
                [1, t * b, self.dim],
                0,
                None,
            )?;
            kernels::submit_pass(ctx, "embedding", |_| {}, |pass| op.record(pass))?;
            Ok(Tensor::view_of(ctx, &out, 0, &[t, b, self.dim]))
        })
    }

    /// `dW [V, E]` for `ids [T, B]` and `d_out [T, B, E]`: each token's positions summed
    /// in position order, as [`crate::cpu::embedding_backward`] does (one dispatch; the
    /// host lists each token's positions).
    pub fn backward(&self, ids: ArrayView2<usize>, d_out: &Tensor) -> Result<Tensor> {
        let ctx = &self.ctx;
        check_ids(&ids, self.vocab)?;
        let (t, b) = ids.dim();
        ctx.check_owner("d_out", d_out)?;
        d_out.expect_shape("d_out", "[T, B, E]", &[t, b, self.dim])?;
        // CSR: offsets per token, then the positions of each token in order.
        let mut offsets = vec![0u32; self.vocab + 1];
        for &v in ids.iter() {
            offsets[v + 1] += 1;
        }
        for v in 0..self.vocab {
            offsets[v + 1] += offsets[v];
        }
        let mut next = offsets.clone();
        let mut positions = vec![0u32; t * b];
        for (p, &v) in ids.iter().enumerate() {
            positions[next[v] as usize] = p as u32;
            next[v] += 1;
        }
        let most = (0..self.vocab)
            .map(|v| (offsets[v + 1] - offsets[v]) as usize)
            .max()
            .unwrap_or(0);
        let table: Vec<u32> = offsets.into_iter().chain(positions).collect();
        ctx.run("embedding backward", || {
            let table = ctx.buf_init("ids", &table, TENSOR_USAGE);
            // d_out is read from element 0: copy a view that starts elsewhere.
            let src = if d_out.offset() == 0 {
                None
            } else {
                Some(new_buffer(ctx, "d_out", &[t, b, self.dim])?)
            };
            let dw = Arc::new(new_buffer(ctx, "d_out", &[self.vocab, self.dim])?);
            let d: &wgpu::Buffer = src.as_deref().unwrap_or(d_out.buffer());
            let op = kernels::embed_back(ctx, &table, d, &dw, self.vocab, self.dim, most, false)?;
            kernels::submit_pass(
                ctx,
                "embedding backward",
                |enc| {
                    if let Some(s) = &src {
                        let bytes = (t * b * self.dim * 4) as u64;
                        enc.copy_buffer_to_buffer(d_out.buffer(), d_out.offset() * 4, s, 0, bytes);
                    }
                },
                |pass| op.record(pass),
            )?;
            Ok(Tensor::view_of(ctx, &dw, 0, &[self.vocab, self.dim]))
        })
    }
}
