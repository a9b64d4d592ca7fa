//! Optimizers on the device over (parameter, gradient) tensor pairs: one dispatch per
//! parameter tensor per step, the state (momentum buffers, Adam's moments) kept on the
//! device; the formulas are [`crate::cpu::optim_step`]'s, element for element.

use std::sync::{Arc, Mutex};

use super::context::Buf;
use super::kernels::{self, OptimParams};
use super::tensor::{new_buffer, TENSOR_USAGE};
use super::{Context, Tensor};
use crate::cpu::{OptimState, Optimizer};
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
type ParamState = (Arc<Buf>, Arc<Buf>, usize);

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

    /// An optimizer resuming from `state` (downloaded by [`Optim::state`], or the CPU
    /// path's [`crate::cpu::OptimState`] for the same parameter list): its step count
    /// and, per parameter, `m` and `v`, uploaded; the next [`Optim::step`] checks them
    /// against its parameters.
    pub fn with_state(ctx: &Context, opt: Optimizer, state: &OptimState<f32>) -> Result<Self> {
        let optim = Optim::new(ctx, opt)?;
        if state.step == 0 {
            return Ok(optim);
        }
        if state.m.len() != state.v.len()
            || state
                .m
                .iter()
                .zip(&state.v)
                .any(|(m, v)| m.len() != v.len())
        {
            return Err(Error::Invalid {
                arg: "state",
                msg: "one m and one v of the same size per parameter".into(),
            });
        }
        let bufs = ctx.run("uploading the optimizer state", || {
            let bufs = state
                .m
                .iter()
                .zip(&state.v)
                .map(|(m, v)| {
                    let up = |x: &[f32]| Arc::new(ctx.buf_init("state", x, TENSOR_USAGE));
                    (up(m), up(v), m.len())
                })
                .collect::<Vec<_>>();
            ctx.submit(None)?;
            Ok(bufs)
        })?;
        *optim.state.lock().unwrap_or_else(|p| p.into_inner()) = (state.step, bufs);
        Ok(optim)
    }

    /// Downloads the state: the step count and, per parameter, `m` and `v` (empty before
    /// the first step), as [`crate::cpu::OptimState`] holds them.
    pub fn state(&self) -> Result<OptimState<f32>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = OptimState {
            step: state.0,
            ..Default::default()
        };
        for (m, v, n) in &state.1 {
            let get = |b: &Arc<Buf>| -> Result<Vec<f32>> {
                let t = Tensor::view_of(&self.ctx, b, 0, &[*n]);
                Ok(t.to_array()?.iter().copied().collect())
            };
            out.m.push(get(m)?);
            out.v.push(get(v)?);
        }
        Ok(out)
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
                        Arc::new(new_buffer(ctx, "params", &[p.len()])?),
                        Arc::new(new_buffer(ctx, "params", &[p.len()])?),
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

/// Sets every element of every tensor of `grads` to zero in place (PyTorch's
/// `zero_grad`): one buffer clear per tensor, in one submission. The library's backward
/// passes return fresh gradients, so a training step needs this only where gradients
/// are accumulated into tensors kept across steps (`Layer::backward_into`).
pub fn zero_grad(grads: &[&Tensor]) -> Result<()> {
    let Some(first) = grads.first() else {
        return Ok(());
    };
    let ctx = first.context();
    for g in grads {
        ctx.check_owner("grads", g)?;
    }
    ctx.run("zero_grad", || {
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        for g in grads.iter().filter(|g| !g.is_empty()) {
            enc.clear_buffer(g.buffer(), g.offset() * 4, Some(g.len() as u64 * 4));
        }
        ctx.submit(Some(enc))
    })
}
