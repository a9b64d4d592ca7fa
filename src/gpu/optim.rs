//! Optimizers on the device over (parameter, gradient) tensor pairs: one dispatch per
//! parameter tensor per step, the state (momentum buffers, Adam's moments) kept on the
//! device; the formulas are [`crate::cpu::optim_step`]'s, element for element.

use std::sync::Mutex;

use super::context::Buf;
use super::kernels::{self, OptimParams};
use super::tensor::new_buffer;
use super::{Context, Tensor};
use crate::cpu::Optimizer;
use crate::error::{Error, Result};

/// An optimizer with its state on the device, for one fixed list of parameters (the
/// first [`Optim::step`] sets it).
#[derive(Debug)]
pub struct Optim {
    ctx: Context,
    opt: Optimizer,
    /// Steps taken, and per parameter its state `(m, v)` and size.
    state: Mutex<(u64, Vec<ParamState>)>,
}

/// One parameter's optimizer state on the device: `m`, `v` and the size.
type ParamState = (Buf, Buf, usize);

impl Optim {
    /// An optimizer (checked) on `ctx`.
    pub fn new(ctx: &Context, opt: Optimizer) -> Result<Self> {
        opt.check()?;
        Ok(Optim {
            ctx: ctx.clone(),
            opt,
            state: Mutex::new((0, Vec::new())),
        })
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// One step: every tensor of `params` updated in place from the same-sized tensor of
    /// `grads`, one dispatch each, all in one compute pass. The parameters must be the
    /// same list (sizes) at every step.
    pub fn step(&self, params: &[&Tensor], grads: &[&Tensor]) -> Result<()> {
        let ctx = &self.ctx;
        if params.len() != grads.len() || params.is_empty() {
            return Err(Error::Invalid {
                arg: "grads",
                msg: format!("{} gradients for {} parameters", grads.len(), params.len()),
            });
        }
        for (p, g) in params.iter().zip(grads) {
            ctx.check_owner("params", p)?;
            ctx.check_owner("grads", g)?;
            g.expect_shape("grads", "the parameter's shape", p.shape())?;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        ctx.run("optimizer step", || {
            if state.0 == 0 {
                let mut bufs = Vec::with_capacity(params.len());
                let mut enc = ctx.device().create_command_encoder(&Default::default());
                for p in params {
                    let (m, v) = (
                        new_buffer(ctx, "params", &[p.len()])?,
                        new_buffer(ctx, "params", &[p.len()])?,
                    );
                    enc.clear_buffer(&m, 0, None);
                    enc.clear_buffer(&v, 0, None);
                    bufs.push((m, v, p.len()));
                }
                ctx.submit(Some(enc))?;
                state.1 = bufs;
            } else if state.1.len() != params.len()
                || state.1.iter().zip(params).any(|(s, p)| s.2 != p.len())
            {
                return Err(Error::Invalid {
                    arg: "params",
                    msg: "not the parameters of this optimizer's earlier steps".into(),
                });
            }
            let t = state.0 + 1;
            let h = self.opt.hyper();
            let (bc1, bc2) = h.corrections(t);
            let u = OptimParams {
                n: 0,
                p_off: 0,
                g_off: 0,
                kind: h.kind as u32,
                first: (t == 1) as u32,
                lr: h.lr,
                beta1: h.beta1,
                beta2: h.beta2,
                eps: h.eps,
                wd: h.wd,
                bc1: bc1 as f32,
                bc2: bc2 as f32,
                momentum: h.momentum,
                _pad0: 0,
                _pad1: 0,
                _pad2: 0,
            };
            let ops = params
                .iter()
                .zip(grads)
                .zip(&state.1)
                .map(|((p, g), (m, v, n))| {
                    let w = OptimParams {
                        n: *n as u32,
                        p_off: p.offset() as u32,
                        g_off: g.offset() as u32,
                        ..u
                    };
                    kernels::optim(ctx, &w, p.buffer(), g.buffer(), m, v)
                })
                .collect::<Result<Vec<_>>>()?;
            kernels::submit_pass(
                ctx,
                "optimizer step",
                |_| {},
                |pass| {
                    for op in &ops {
                        op.record(pass);
                    }
                },
            )?;
            state.0 = t;
            Ok(())
        })
    }
}
