//! A recurrent layer on the GPU: weights uploaded once, forward over a whole sequence
//! recorded in one command encoder and one compute pass, backward through time likewise.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayView3, Ix1, Ix2, Ix3};

use super::context::Buf;
use super::kernels::{self, div_ceil, Gemm, Op, StepDims, StepDir, StepSlot};
use super::tensor::new_buffer;
use super::variant::{min_step_groups, StepShape};
use super::{Context, Kernel, Tensor};
use crate::cell::{bias_apart, with_cell, CellDef, Role};
use crate::cpu;
use crate::error::{Error, Result};
use crate::params::{Cell, Params};

/// Whether a forward pass keeps what backward needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keep only the hidden states (the output) and the last cell state.
    Inference,
    /// Inference that also keeps every cell state ([`Forward::c`], LSTM).
    States,
    /// Also keep what backward needs (the activated gates, every cell state), for
    /// [`Layer::backward`].
    Training,
}

/// A recurrent layer whose weights live on the device.
///
/// # Threads and weight versions
/// A `Layer` is `Send + Sync`: [`Layer::forward`], [`Layer::backward`] and
/// [`Layer::set_params`] may be called from any thread at once. The weights carry a
/// version: `set_params` replaces all of them under a write lock and starts a new
/// version, while a forward or backward records and submits its whole sequence under a
/// read lock, so every result is computed from one whole version, never a mix. A
/// [`Trace`] remembers the layer and the version that made it: `backward` with a trace
/// of another layer, or of a version that `set_params` has since replaced, is an
/// [`Error::Invalid`] naming `trace` (its gradients would belong to weights that are
/// gone); run the forward again.
///
/// Device layouts (made once, at upload): `S` slots per hidden unit (the cell's
/// `CellDef::SLOTS`: 1 for the RNN, 4 for the LSTM and the GRU), slot `s` holding gate
/// `IH[s]` of the input side and `HH[s]` of the recurrent side (zeros where a gate sits
/// on one side only: the GRU's `n`), so a step kernel reads a unit's gates as one vec4.
/// The input weights and bias `[H, S, I]`; the recurrent weights twice, once laid out for
/// the forward step (`W_f[k, j, s] = W_hh[HH[s]·H + j, k]`) and once for the backward
/// step (`W_b[j', j, s] = W_hh[HH[s]·H + j', j]`), both coalesced along `j`; the recurrent
/// bias of slots where it does not fold (the GRU's `b_hn`) apart.
#[derive(Debug)]
pub struct Layer {
    ctx: Context,
    /// Unique per layer made in this process.
    id: u64,
    cell: Cell,
    input: usize,
    hidden: usize,
    /// The weights' version, bumped by `set_params`; held for reading by every call
    /// that records work using the weights.
    version: RwLock<u64>,
    w_ih: Buf,
    bias: Buf,
    w_fwd: Buf,
    w_back: Buf,
    /// The recurrent bias of slots where it does not fold (the GRU's `b_hn`).
    bias_hh: Option<Buf>,
}

/// The next layer's identity.
static NEXT_LAYER: AtomicU64 = AtomicU64::new(1);

/// The result of [`Layer::forward`]; everything stays on the device until downloaded.
#[derive(Debug)]
pub struct Forward {
    /// Every hidden state `[T, B, H]`.
    pub h: Tensor,
    /// The last hidden state `[B, H]` (a view of `h`).
    pub h_last: Tensor,
    /// The last cell state `[B, H]` (LSTM only).
    pub c_last: Option<Tensor>,
    /// Every cell state `[T, B, H]` ([`Mode::States`] and [`Mode::Training`], cells with
    /// a cell state).
    pub c: Option<Tensor>,
    /// What backward needs ([`Mode::Training`] only).
    pub trace: Option<Trace>,
}

/// What a training-mode forward keeps for backward.
///
/// Bytes kept per time step beyond the hidden states themselves: the LSTM keeps its four
/// activated gates and its cell state, `20·B·H` bytes; the GRU r, z, n and
/// `W_hn h + b_hn`, `16·B·H` bytes; the tanh RNN nothing (its backward needs only `h`).
/// All keep a reference to the input `x` (no copy).
#[derive(Debug, Clone)]
pub struct Trace {
    layer: u64,
    version: u64,
    cell: Cell,
    input: usize,
    hidden: usize,
    steps: usize,
    batch: usize,
    /// Made by [`Layer::forward_reversed`].
    reverse: bool,
    x: Tensor,
    /// `[T + 1, B, H]`: slot 0 = h0 and slot t + 1 = h_t (in reverse: h_t at slot t,
    /// h0 at slot T).
    hs: Arc<Buf>,
    /// `[T + 1, B, H]`, laid out as `hs` (cells with a cell state).
    cs: Option<Arc<Buf>>,
    /// `[T, B, H, S]` what the cell keeps (LSTM: activated gates; GRU: r, z, n, hn).
    gates: Option<Arc<Buf>>,
}

impl Trace {
    /// Number of time steps `T`.
    pub fn steps(&self) -> usize {
        self.steps
    }
    /// Batch size `B`.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// The version of the layer's weights the forward ran with ([`Layer::version`]).
    pub fn version(&self) -> u64 {
        self.version
    }
}

/// Gradients of the layer's parameters, on the device, in the device's gate layout.
///
/// Made only by [`Layer::zero_grads`] and [`Layer::backward`], so their shapes, context
/// and buffers (their own, shared with no input) are right by construction; read them
/// with the accessors or [`ParamGrads::to_host`].
#[derive(Debug)]
pub struct ParamGrads {
    cell: Cell,
    input: usize,
    hidden: usize,
    dw_ih: Tensor,
    dw_hh: Tensor,
    db: Tensor,
}

impl ParamGrads {
    /// `[S·H, I]` in the device layout: `S` slots per hidden unit (the cell's gates
    /// interleaved, see `CellDef::IH`), device row `j·S + s`.
    pub fn dw_ih(&self) -> &Tensor {
        &self.dw_ih
    }
    /// `[S·H, H]` in the device layout.
    pub fn dw_hh(&self) -> &Tensor {
        &self.dw_hh
    }
    /// `[S·H]` in the device layout: the column sums of the gate gradients, which give
    /// `db_ih` and `db_hh` (the same for cells whose biases fold; the GRU's `b_hn` has
    /// its own slot).
    pub fn db(&self) -> &Tensor {
        &self.db
    }
    /// Whether any of the three shares a device buffer with `t`.
    fn aliases(&self, t: &Tensor) -> bool {
        [&self.dw_ih, &self.dw_hh, &self.db]
            .iter()
            .any(|g| g.shares_buffer(t))
    }

    /// Downloads `(dw_ih, dw_hh, db_ih, db_hh)` in PyTorch's layout (gate blocks i, f,
    /// g, o for the LSTM; r, z, n for the GRU).
    pub fn to_host(&self) -> Result<HostGrads> {
        with_cell!(self.cell, C => self.to_host_with::<C>())
    }

    fn to_host_with<C: CellDef>(&self) -> Result<HostGrads> {
        let dw_ih = dim::<Ix2>(self.dw_ih.to_array()?)?;
        let dw_hh = dim::<Ix2>(self.dw_hh.to_array()?)?;
        let db = dim::<Ix1>(self.db.to_array()?)?;
        Ok(to_pytorch::<C>(
            dw_ih.view(),
            dw_hh.view(),
            db.view(),
            self.input,
            self.hidden,
        ))
    }
}

/// Parameter gradients of one direction in the device layout (`[S·H, I]`, `[S·H, H]`,
/// `[S·H]`, slots interleaved per unit) as PyTorch lays them out (gate blocks).
pub(super) fn to_pytorch<C: CellDef>(
    dw_ih: ndarray::ArrayView2<f32>,
    dw_hh: ndarray::ArrayView2<f32>,
    db: ndarray::ArrayView1<f32>,
    input: usize,
    h: usize,
) -> HostGrads {
    let (g, sl) = (C::GATES, C::SLOTS);
    // PyTorch row gate·H + j is device row j·S + s, for the slot s holding `gate`.
    let slot = |map: &[Option<usize>], r: usize| {
        let gate = r / h;
        let s = map.iter().position(|&m| m == Some(gate)).unwrap_or(0);
        (r % h) * sl + s
    };
    let dw_ih = Array2::from_shape_fn((g * h, input), |(r, c)| dw_ih[(slot(C::IH, r), c)]);
    let dw_hh = Array2::from_shape_fn((g * h, h), |(r, c)| dw_hh[(slot(C::HH, r), c)]);
    let db_ih = Array1::from_shape_fn(g * h, |r| db[slot(C::IH, r)]);
    let db_hh = Array1::from_shape_fn(g * h, |r| db[slot(C::HH, r)]);
    (dw_ih, dw_hh, db_ih, db_hh)
}

/// Parameter gradients on the host, PyTorch's layout: `(dw_ih, dw_hh, db_ih, db_hh)`.
pub type HostGrads = (Array2<f32>, Array2<f32>, Array1<f32>, Array1<f32>);

/// The result of [`Layer::backward`].
#[derive(Debug)]
pub struct Grads {
    /// Input gradient `[T, B, I]`.
    pub dx: Tensor,
    /// Gradient of the initial hidden state `[B, H]`.
    pub dh0: Tensor,
    /// Gradient of the initial cell state `[B, H]` (LSTM only).
    pub dc0: Option<Tensor>,
    /// Parameter gradients.
    pub params: ParamGrads,
}

impl Grads {
    /// Downloads everything into the CPU path's [`cpu::Grads`] (PyTorch layout).
    pub fn to_cpu(&self) -> Result<cpu::Grads<f32>> {
        let (dw_ih, dw_hh, db_ih, db_hh) = self.params.to_host()?;
        Ok(cpu::Grads {
            dx: dim::<Ix3>(self.dx.to_array()?)?,
            dh0: dim::<Ix2>(self.dh0.to_array()?)?,
            dc0: match &self.dc0 {
                Some(t) => Some(dim::<Ix2>(t.to_array()?)?),
                None => None,
            },
            dw_ih,
            dw_hh,
            db_ih,
            db_hh,
        })
    }
}

/// Input gradients of [`Layer::backward_into`].
#[derive(Debug)]
pub struct InputGrads {
    /// `[T, B, I]`.
    pub dx: Tensor,
    /// `[B, H]`.
    pub dh0: Tensor,
    /// `[B, H]` (LSTM only).
    pub dc0: Option<Tensor>,
}

pub(super) fn dim<D: ndarray::Dimension>(
    a: ndarray::ArrayD<f32>,
) -> Result<ndarray::Array<f32, D>> {
    a.into_dimensionality::<D>()
        .map_err(|e| Error::Device(format!("downloaded tensor: {e}")))
}

/// The layer's weights in the device layouts (see [`Layer`]), on the host.
pub(super) struct DeviceWeights {
    pub(super) w_ih: Vec<f32>,
    pub(super) bias: Vec<f32>,
    /// The recurrent bias of slots where it does not fold (the GRU's `b_hn`).
    pub(super) bias_hh: Option<Vec<f32>>,
    pub(super) w_fwd: Vec<f32>,
    pub(super) w_back: Vec<f32>,
}

impl DeviceWeights {
    /// Checks `params` and lays them out for the device: `S = C::SLOTS` slots per hidden
    /// unit, slot `s` of unit `j` holding gate `C::IH[s]` of the input side and
    /// `C::HH[s]` of the recurrent side (zeros where `None`).
    pub(super) fn from<C: CellDef>(ctx: &Context, params: &Params<f32>) -> Result<Self> {
        params.check()?;
        let (sl, h, i) = (C::SLOTS, params.hidden_size(), params.input_size());
        let sh = crate::host::elems("params", &[sl, h], 1)?;
        ctx.check_elems("params", &[sh, i])?;
        ctx.check_elems("params", &[sh, h])?;
        let mut w_ih = crate::host::vec_of("params", sh * i, 0f32)?;
        let mut bias = crate::host::vec_of("params", sh, 0f32)?;
        let mut bias_hh = crate::host::vec_of("params", sh, 0f32)?;
        for r in 0..sh {
            let (j, s) = (r / sl, r % sl);
            if let Some(g) = C::IH[s] {
                let src = g * h + j;
                for (o, v) in w_ih[r * i..(r + 1) * i]
                    .iter_mut()
                    .zip(params.w_ih.row(src))
                {
                    *o = *v;
                }
                bias[r] = params.b_ih[src];
            }
            match (C::HH[s], C::HH[s] == C::IH[s]) {
                (Some(g), true) => bias[r] += params.b_hh[g * h + j],
                (Some(g), false) => bias_hh[r] = params.b_hh[g * h + j],
                (None, _) => {}
            }
        }
        let w = &params.w_hh;
        let mut w_fwd = crate::host::vec_of("params", sh * h, 0f32)?;
        let mut w_back = crate::host::vec_of("params", sh * h, 0f32)?;
        for a in 0..h {
            for j in 0..h {
                for (s, gate) in C::HH.iter().enumerate() {
                    if let Some(g) = gate {
                        w_fwd[(a * h + j) * sl + s] = w[(g * h + j, a)];
                        w_back[(a * h + j) * sl + s] = w[(g * h + a, j)];
                    }
                }
            }
        }
        Ok(DeviceWeights {
            w_ih,
            bias,
            bias_hh: bias_apart::<C>().then_some(bias_hh),
            w_fwd,
            w_back,
        })
    }
}

impl Layer {
    /// Uploads `params` to the device (checked first).
    pub fn new(ctx: &Context, params: &Params<f32>) -> Result<Self> {
        let d = with_cell!(params.cell, C => DeviceWeights::from::<C>(ctx, params))?;
        // Grids whose size the weights alone set: the step kernels' units, the GEMMs'
        // columns over G·H, I and H, and their rows over G·H (the weight gradients).
        let (gh, i, h) = (d.bias.len(), params.input_size(), params.hidden_size());
        for groups in [
            div_ceil(h, ctx.step_variant().units() as usize),
            div_ceil(gh, 64),
            div_ceil(i, 64),
            div_ceil(gh, 128),
        ] {
            ctx.check_groups("params", groups as u64)?;
        }
        ctx.run("uploading the layer's weights", || {
            let usage = super::tensor::TENSOR_USAGE;
            let layer = Layer {
                ctx: ctx.clone(),
                id: NEXT_LAYER.fetch_add(1, Ordering::Relaxed),
                cell: params.cell,
                input: params.input_size(),
                hidden: params.hidden_size(),
                version: RwLock::new(0),
                w_ih: ctx.buf_init("w_ih", &d.w_ih, usage),
                bias: ctx.buf_init("bias", &d.bias, usage),
                w_fwd: ctx.buf_init("w_hh (forward layout)", &d.w_fwd, usage),
                w_back: ctx.buf_init("w_hh (backward layout)", &d.w_back, usage),
                bias_hh: d
                    .bias_hh
                    .as_ref()
                    .map(|b| ctx.buf_init("b_hh (kept apart)", b, usage)),
            };
            ctx.submit(None)?;
            Ok(layer)
        })
    }

    /// Replaces the layer's weights in place (a training step's update), without new
    /// buffers: `params` must be of the same cell kind and sizes. Work already submitted
    /// keeps the weights it was recorded with; traces made before this call are refused
    /// by [`Layer::backward`] (see "Threads and weight versions" above). The update is
    /// submitted at once, so staging memory does not pile up over many calls.
    pub fn set_params(&self, params: &Params<f32>) -> Result<()> {
        if params.cell != self.cell
            || params.input_size() != self.input
            || params.hidden_size() != self.hidden
        {
            return Err(Error::Invalid {
                arg: "params",
                msg: format!(
                    "a {} with I = {}, H = {}; this layer is a {} with I = {}, H = {}",
                    params.cell.name(),
                    params.input_size(),
                    params.hidden_size(),
                    self.cell.name(),
                    self.input,
                    self.hidden
                ),
            });
        }
        let d = with_cell!(params.cell, C => DeviceWeights::from::<C>(&self.ctx, params))?;
        let mut version = self.version.write().unwrap_or_else(|p| p.into_inner());
        self.ctx.run("updating the layer's weights", || {
            // From here on the weights may change, even if a write fails: traces made
            // before are stale either way.
            *version += 1;
            let q = self.ctx.queue();
            q.write_buffer(&self.w_ih, 0, bytemuck::cast_slice(&d.w_ih));
            q.write_buffer(&self.bias, 0, bytemuck::cast_slice(&d.bias));
            q.write_buffer(&self.w_fwd, 0, bytemuck::cast_slice(&d.w_fwd));
            q.write_buffer(&self.w_back, 0, bytemuck::cast_slice(&d.w_back));
            if let (Some(buf), Some(b)) = (&self.bias_hh, &d.bias_hh) {
                q.write_buffer(buf, 0, bytemuck::cast_slice(b));
            }
            self.ctx.submit(None)
        })
    }

    /// The weights' version: 0 after [`Layer::new`], one more after each
    /// [`Layer::set_params`] that reached the device (one refused before writing, for a
    /// wrong size or a lost device, leaves it as it was).
    pub fn version(&self) -> u64 {
        *self.version.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The cell kind.
    pub fn cell(&self) -> Cell {
        self.cell
    }
    /// Input size `I`.
    pub fn input_size(&self) -> usize {
        self.input
    }
    /// Hidden size `H`.
    pub fn hidden_size(&self) -> usize {
        self.hidden
    }
    /// The context the layer lives in.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Device slots of all hidden units, `S·H`.
    fn gh(&self) -> usize {
        with_cell!(self.cell, C => C::SLOTS) * self.hidden
    }

    /// The step kernels' shape for batch `b` and their grid ([`step_groups`]).
    fn step_groups(&self, b: usize) -> Result<(StepShape, [u32; 3])> {
        step_groups(&self.ctx, self.hidden, b, 1)
    }

    /// Runs the layer over `x [T, B, I]` from `h0` (and `c0` for the LSTM), zeros when
    /// `None`. Records the input projection (one GEMM over all `T·B` rows) and one fused
    /// step dispatch per time step (two for the lecture's GRU) into one command encoder
    /// and one compute pass, and submits it; nothing is read back.
    pub fn forward(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        mode: Mode,
    ) -> Result<Forward> {
        self.run_forward(x, h0, c0, mode, false)
    }

    /// [`Layer::forward`] in reverse time order, as the reverse direction of a
    /// bidirectional PyTorch layer runs: `x[T-1]` first, from `h0` (and `c0`). `h[t]` is
    /// the state after consuming `x[t]` (so `h[T-1]` comes first), and `h_last` the
    /// state after `x[0]`, the last one made. The same kernels, another step schedule;
    /// [`Layer::backward`] of its trace runs backward in the matching order.
    pub fn forward_reversed(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        mode: Mode,
    ) -> Result<Forward> {
        self.run_forward(x, h0, c0, mode, true)
    }

    fn run_forward(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        mode: Mode,
        reverse: bool,
    ) -> Result<Forward> {
        let ctx = &self.ctx;
        let shape = x.shape();
        if shape.len() != 3 || shape[0] == 0 || shape[1] == 0 || shape[2] != self.input {
            return Err(Error::Shape {
                arg: "x",
                expected: format!("[T, B, I] with T ≥ 1, B ≥ 1, I = {}", self.input),
                got: crate::error::fmt_shape(shape),
            });
        }
        let (t, b) = (shape[0], shape[1]);
        let (h, gh) = (self.hidden, self.gh());
        let bh = b * h;
        ctx.check_owner("x", x)?;
        for (arg, s) in [("h0", h0), ("c0", c0)] {
            if let Some(s) = s {
                ctx.check_owner(arg, s)?;
            }
        }
        if let Some(h0) = h0 {
            h0.expect_shape("h0", "[B, H]", &[b, h])?;
        }
        self.check_cell_state("c0", c0, b)?;
        let (rows_per, groups) = self.step_groups(b)?;
        let train = mode == Mode::Training;
        // Every cell state is kept unless plain inference: then two ping-pong slots.
        let slots = if mode == Mode::Inference { 2 } else { t + 1 };
        ctx.check_elems("x", &[t, b, gh])?;
        ctx.check_elems("x", &[t + 1, b, h])?;
        let version = self.version.read().unwrap_or_else(|p| p.into_inner());
        ctx.run("forward", || {
            let xw = Arc::new(new_buffer(ctx, "x", &[t, b, gh])?);
            let hs = Arc::new(new_buffer(ctx, "x", &[t + 1, b, h])?);
            let cs = match self.cell.has_cell_state() {
                true => Some(Arc::new(new_buffer(ctx, "x", &[slots, b, h])?)),
                false => None,
            };

            let gemm = Gemm {
                arg: "x",
                arg_n: "x",
                m: t * b,
                n: gh,
                k: self.input,
                a: (x.buffer(), x.offset()),
                b: (&self.w_ih, 0),
                bias: Some((&self.bias, 0)),
                c: (&xw, 0),
                trans_a: false,
                trans_b: true,
                accumulate: false,
                ld: kernels::PACKED,
            }
            .op(ctx)?;
            let dims = ctx.uniform(
                "step dims",
                &StepDims {
                    batch: b as u32,
                    hidden: h as u32,
                    train: train as u32,
                    dirs: 1,
                },
            );
            // The gated state of a cell with a late gate (scratch between its phases).
            let binds =
                |role| with_cell!(self.cell, C => C::STEP.iter().any(|p| p.binds.contains(&role)));
            let gated = match binds(Role::Gated) {
                true => Some(new_buffer(ctx, "x", &[b, h])?),
                false => None,
            };
            let schedule = StepSlot::zip(
                &[StepDir::forward(t, slots == t + 1, reverse, 0, &|_| {
                    b as u32
                })],
                false,
            );
            // Where the states start: slot 0 in time order; in reverse h0 at slot T (every
            // h_t at slot t), c0 likewise when every cell state is kept.
            let h_init = if reverse { t } else { 0 };
            let c_init = if reverse && slots == t + 1 { t } else { 0 };
            let steps = ctx.schedule("x", &schedule)?;
            let phases = with_cell!(self.cell, C => C::STEP.len());
            let kernels = (0..phases as u8).map(|p| Kernel::Step(self.cell, p));
            let bind = Bindings {
                dims: Some(&dims),
                steps: Some(&steps),
                xw: Some(&xw),
                w_fwd: Some(&self.w_fwd),
                hs: Some(&hs),
                cs: cs.as_deref().map(|b| &**b),
                bias_hh: self.bias_hh.as_deref(),
                gated: gated.as_deref(),
                ..Default::default()
            };
            let step = phase_ops(ctx, kernels, rows_per, groups, &bind)?;

            kernels::submit_pass(
                ctx,
                "forward",
                |enc| {
                    init_slot(enc, &hs, h0, h_init, bh);
                    if let Some(cs) = &cs {
                        init_slot(enc, cs, c0, c_init, bh);
                    }
                },
                |pass| {
                    gemm.record(pass);
                    kernels::record_schedule(pass, &step, schedule.len(), phases);
                },
            )?;

            // The states in time order start at slot 1 (time order) or 0 (reverse); the
            // last made is the last entry's.
            let first = if reverse { 0 } else { bh as u64 };
            let last = schedule.last().map_or(0, |e| e.dirs[0].next as usize);
            let c_last = schedule.last().map_or(0, |e| e.dirs[0].c_next as usize);
            Ok(Forward {
                h: Tensor::view_of(ctx, &hs, first, &[t, b, h]),
                h_last: Tensor::view_of(ctx, &hs, (last * bh) as u64, &[b, h]),
                c_last: cs
                    .as_ref()
                    .map(|cs| Tensor::view_of(ctx, cs, (c_last * bh) as u64, &[b, h])),
                c: cs
                    .as_ref()
                    .filter(|_| slots == t + 1)
                    .map(|cs| Tensor::view_of(ctx, cs, first, &[t, b, h])),
                trace: train.then(|| Trace {
                    layer: self.id,
                    version: *version,
                    cell: self.cell,
                    input: self.input,
                    hidden: h,
                    steps: t,
                    batch: b,
                    reverse,
                    x: x.clone(),
                    hs: hs.clone(),
                    cs: cs.clone(),
                    gates: with_cell!(self.cell, C => C::kept(h) > 0).then(|| xw.clone()),
                }),
            })
        })
    }

    /// Backward through time from `dh [T, B, H]`, the upstream gradient of every hidden
    /// state, and `dc_last [B, H]`, an optional gradient on the final cell state (LSTM).
    /// Returns fresh gradients on the device.
    pub fn backward(&self, trace: &Trace, dh: &Tensor, dc_last: Option<&Tensor>) -> Result<Grads> {
        // Everything about the arguments is checked before any gradient is allocated.
        self.check_backward(trace, dh, dc_last)?;
        // Written, not accumulated: no need to zero them first.
        let mut params = self.ctx.run("backward", || self.alloc_grads())?;
        let inputs = self.backward_into(trace, dh, dc_last, &mut params, false)?;
        Ok(Grads {
            dx: inputs.dx,
            dh0: inputs.dh0,
            dc0: inputs.dc0,
            params,
        })
    }

    /// Zero parameter gradients of this layer's shape, to accumulate into.
    pub fn zero_grads(&self) -> Result<ParamGrads> {
        self.ctx.run("zeroing gradients", || {
            let g = self.alloc_grads()?;
            let mut enc = self
                .ctx
                .device()
                .create_command_encoder(&Default::default());
            for t in [&g.dw_ih, &g.dw_hh, &g.db] {
                enc.clear_buffer(t.buffer(), 0, None);
            }
            self.ctx.submit(Some(enc))?;
            Ok(g)
        })
    }

    /// Parameter gradient buffers, uninitialised (NaN where outputs are poisoned).
    /// Called inside a [`Context::run`].
    fn alloc_grads(&self) -> Result<ParamGrads> {
        let (gh, i, h) = (self.gh(), self.input, self.hidden);
        let make = |shape: &[usize]| -> Result<Tensor> {
            let buf = Arc::new(new_buffer(&self.ctx, "params", shape)?);
            Ok(Tensor::view_of(&self.ctx, &buf, 0, shape))
        };
        Ok(ParamGrads {
            cell: self.cell,
            input: i,
            hidden: h,
            dw_ih: make(&[gh, i])?,
            dw_hh: make(&[gh, h])?,
            db: make(&[gh])?,
        })
    }

    /// Checks a cell-state argument `arg` (`[B, H]` for cells that have one; refused by
    /// the others).
    fn check_cell_state(&self, arg: &'static str, v: Option<&Tensor>, b: usize) -> Result<()> {
        match (self.cell.has_cell_state(), v) {
            (false, Some(_)) => Err(Error::Invalid {
                arg,
                msg: format!("a {} has no cell state: pass None", self.cell.name()),
            }),
            (true, Some(v)) => v.expect_shape(arg, "[B, H]", &[b, self.hidden]),
            _ => Ok(()),
        }
    }

    /// Checks that `trace` was made by this layer, with sizes this layer has. (Its
    /// version is checked under the weights' lock, when the backward is recorded.)
    fn check_trace(&self, trace: &Trace) -> Result<()> {
        if trace.layer != self.id {
            return Err(Error::Invalid {
                arg: "trace",
                msg: format!(
                    "made by another layer (a {} with I = {}, H = {}); a trace is only \
                     valid for the layer whose forward made it",
                    trace.cell.name(),
                    trace.input,
                    trace.hidden
                ),
            });
        }
        self.ctx.check_owner("trace", &trace.x)
    }

    /// Checks the arguments of a backward other than the gradients it writes: the trace
    /// (this layer's), `dh [T, B, H]` and `dc_last [B, H]` (LSTM only), their context,
    /// and the batch's grid. (The trace's weight version is checked under the weights'
    /// lock, when the backward is recorded.)
    fn check_backward(&self, trace: &Trace, dh: &Tensor, dc_last: Option<&Tensor>) -> Result<()> {
        self.check_trace(trace)?;
        self.ctx.check_owner("dh", dh)?;
        if let Some(d) = dc_last {
            self.ctx.check_owner("dc_last", d)?;
        }
        let (t, b, h) = (trace.steps, trace.batch, self.hidden);
        dh.expect_shape("dh", "[T, B, H]", &[t, b, h])?;
        self.check_cell_state("dc_last", dc_last, b)?;
        self.step_groups(b).map(|_| ())
    }

    /// Backward through time into existing parameter gradients: with `accumulate` they
    /// become `grads += ∂L/∂θ` (minibatch loops), else `grads = ∂L/∂θ`. The input
    /// gradients are returned fresh. One dispatch per time step, then three GEMMs
    /// (`dW_ih = dGᵀ·X`, `dW_hh = dGᵀ·H_prev`, `dX = dG·W_ih`) and one column sum (`db`),
    /// all in one command encoder and one compute pass.
    ///
    /// Errors (before anything is recorded): a `trace` of another layer, or made before
    /// [`Layer::set_params`] replaced the weights; `grads` of another layer's shape or
    /// context; `grads` sharing a buffer with an input (the trace's `x`, `dh`,
    /// `dc_last`), which the GEMMs would overwrite.
    pub fn backward_into(
        &self,
        trace: &Trace,
        dh: &Tensor,
        dc_last: Option<&Tensor>,
        grads: &mut ParamGrads,
        accumulate: bool,
    ) -> Result<InputGrads> {
        let ctx = &self.ctx;
        self.check_backward(trace, dh, dc_last)?;
        if grads.cell != self.cell || grads.hidden != self.hidden || grads.input != self.input {
            return Err(Error::Invalid {
                arg: "grads",
                msg: format!(
                    "gradients of a {} with I = {}, H = {}; this layer is a {} with I = {}, H = {}",
                    grads.cell.name(),
                    grads.input,
                    grads.hidden,
                    self.cell.name(),
                    self.input,
                    self.hidden
                ),
            });
        }
        ctx.check_owner("grads", &grads.db)?;
        for (what, t) in [
            ("the trace's input x", Some(&trace.x)),
            ("dh", Some(dh)),
            ("dc_last", dc_last),
        ] {
            if let Some(t) = t {
                if grads.aliases(t) {
                    return Err(Error::Invalid {
                        arg: "grads",
                        msg: format!(
                            "shares a device buffer with {what}, which backward reads while it \
                             writes the gradients: use gradients from Layer::zero_grads"
                        ),
                    });
                }
            }
        }
        let (t, b, h, gh, i) = (trace.steps, trace.batch, self.hidden, self.gh(), self.input);
        let bh = b * h;
        let (rows_per, groups) = self.step_groups(b)?;
        let version = self.version.read().unwrap_or_else(|p| p.into_inner());
        ctx.run("backward", || {
            if trace.version != *version {
                return Err(Error::Invalid {
                    arg: "trace",
                    msg: format!(
                        "made with weights version {}, but set_params has since replaced \
                         them (now version {}): run the forward again",
                        trace.version, *version
                    ),
                });
            }
            let dg = new_buffer(ctx, "dh", &[t, b, gh])?;
            let dh0 = Arc::new(new_buffer(ctx, "dh", &[b, h])?);
            let dx = Arc::new(new_buffer(ctx, "dh", &[t, b, i])?);
            // The cell's own carry (the LSTM's c̄, the GRU's direct part), when it has one.
            let binds = |role| with_cell!(self.cell, C => C::STEP_BACK.iter().any(|p| p.binds.contains(&role)));
            let carry = match binds(Role::Carry) {
                true => Some(Arc::new(new_buffer(ctx, "dh", &[b, h])?)),
                false => None,
            };
            // A late gate's weight gradient: dG masked to it, and ĥ − h_{t-1}.
            let (dg_gated, delta) = match binds(Role::DgGated) {
                true => (
                    Some(new_buffer(ctx, "dh", &[t, b, gh])?),
                    Some(new_buffer(ctx, "dh", &[t, b, h])?),
                ),
                false => (None, None),
            };
            // The step kernel reads dh from element 0: copy a view that starts elsewhere.
            let dh_copy = if dh.offset() == 0 {
                None
            } else {
                Some(new_buffer(ctx, "dh", &[t, b, h])?)
            };
            let dh_ref: &wgpu::Buffer = match &dh_copy {
                Some(c) => c,
                None => dh.buffer(),
            };
            let dims = ctx.uniform(
                "step dims",
                &StepDims {
                    batch: b as u32,
                    hidden: h as u32,
                    train: 0,
                    dirs: 1,
                },
            );
            let schedule = StepSlot::zip(&[StepDir::backward(t, trace.reverse, 0, &|_| b as u32)], true);
            let steps = ctx.schedule("dh", &schedule)?;
            let phases = with_cell!(self.cell, C => C::STEP_BACK.len());
            let kernels = (0..phases as u8).map(|p| Kernel::StepBack(self.cell, p));
            let bind = Bindings {
                dims: Some(&dims),
                steps: Some(&steps),
                kept: trace.gates.as_deref().map(|b| &**b),
                cs: trace.cs.as_deref().map(|b| &**b),
                hs: Some(&trace.hs),
                dh: Some(dh_ref),
                w_back: Some(&self.w_back),
                dg: Some(&dg),
                carry: carry.as_deref().map(|b| &**b),
                dh0: Some(&dh0),
                dg_gated: dg_gated.as_deref(),
                gated_delta: delta.as_deref(),
                ..Default::default()
            };
            let step = phase_ops(ctx, kernels, rows_per, groups, &bind)?;
            let x = &trace.x;
            let ops = BackwardGemms {
                arg: "dh",
                dg: &dg,
                late: dg_gated.as_ref().zip(delta.as_ref()).map(|(a, b)| (&**a, &**b)),
                x: (x.buffer(), x.offset()),
                hs: &trace.hs,
                // H_prev: h_{t-1} of block t is slot t (time order) or t + 1.
                prev0: [trace.reverse as usize, 0],
                w_ih: &self.w_ih,
                dx: &dx,
                dw_ih: (grads.dw_ih.buffer(), grads.dw_ih.offset()),
                dw_hh: (grads.dw_hh.buffer(), grads.dw_hh.offset()),
                db: grads.db.buffer(),
                rows: t * b,
                batch: b,
                input: i,
                hidden: h,
                sh: gh,
                dirs: 1,
                accumulate,
            }
            .ops(ctx)?;
            kernels::submit_pass(
                ctx,
                "backward",
                |enc| {
                    if let Some(copy) = &dh_copy {
                        enc.copy_buffer_to_buffer(
                            dh.buffer(),
                            dh.offset() * 4,
                            copy,
                            0,
                            (t * bh * 4) as u64,
                        );
                    }
                    if let Some(carry) = &carry {
                        // c̄ starts at dc_last (or zero); a carry of another kind at zero.
                        init_slot(enc, carry, dc_last, 0, bh);
                    }
                },
                |pass| {
                    kernels::record_schedule(pass, &step, schedule.len(), 1);
                    for op in &ops {
                        op.record(pass);
                    }
                },
            )?;
            Ok(InputGrads {
                dx: Tensor::view_of(ctx, &dx, 0, &[t, b, i]),
                dh0: Tensor::view_of(ctx, &dh0, 0, &[b, h]),
                dc0: carry
                    .filter(|_| self.cell.has_cell_state())
                    .map(|dc| Tensor::view_of(ctx, &dc, 0, &[b, h])),
            })
        })
    }
}

/// What a layer's backward multiplies after its steps, from the gate gradients
/// `dg [T·B, D·S·H]`: `dW_ih = dGᵀ·X` (both directions in one GEMM), `dW_hh = dG_dᵀ·H_prev`
/// per direction (strided blocks of the interleaved rows; plus `dG_lateᵀ·(Ĥ − H_prev)`
/// for a cell with a late gate), `dX = dG·W_ih` (both directions summed) and
/// `db = Σ dG`.
pub(super) struct BackwardGemms<'a> {
    /// The user argument whose size drives the grids, for errors.
    pub arg: &'static str,
    pub dg: &'a wgpu::Buffer,
    /// A late gate's masked gate gradients and `ĥ − h_{t-1}` (`[T·B, D·H]`).
    pub late: Option<(&'a wgpu::Buffer, &'a wgpu::Buffer)>,
    /// The layer's input `[T·B, I]`.
    pub x: kernels::Operand<'a>,
    /// Hidden states `[slots, B, D·H]`.
    pub hs: &'a wgpu::Buffer,
    /// Per direction, the slot of block 0's `h_{t-1}` (blocks follow one slot apart).
    pub prev0: [usize; 2],
    pub w_ih: &'a wgpu::Buffer,
    /// Where `dX [T·B, I]` goes.
    pub dx: &'a wgpu::Buffer,
    pub dw_ih: kernels::Operand<'a>,
    pub dw_hh: kernels::Operand<'a>,
    pub db: &'a wgpu::Buffer,
    pub rows: usize,
    pub batch: usize,
    pub input: usize,
    pub hidden: usize,
    /// Device slots of one direction, `S·H`.
    pub sh: usize,
    pub dirs: usize,
    /// Add to the parameter gradients rather than write them.
    pub accumulate: bool,
}

impl BackwardGemms<'_> {
    pub(super) fn ops(&self, ctx: &Context) -> Result<Vec<Op>> {
        let (arg, rows, h, sh, dirs) = (self.arg, self.rows, self.hidden, self.sh, self.dirs);
        let dh = dirs * h;
        let gemm = |m, n, k, a, b, c, trans_a, acc, ld| {
            Gemm {
                arg,
                arg_n: arg,
                m,
                n,
                k,
                a,
                b,
                bias: None,
                c,
                trans_a,
                trans_b: false,
                accumulate: acc,
                ld,
            }
            .op(ctx)
        };
        let mut ops = vec![gemm(
            dirs * sh,
            self.input,
            rows,
            (self.dg, 0),
            self.x,
            self.dw_ih,
            true,
            self.accumulate,
            kernels::PACKED,
        )?];
        for d in 0..dirs {
            let dw_hh = (self.dw_hh.0, self.dw_hh.1 + (d * sh * h) as u64);
            let at = (self.prev0[d] * self.batch * dh + d * h) as u64;
            let ld = [dirs * sh, dh, 0];
            ops.push(gemm(
                sh,
                h,
                rows,
                (self.dg, (d * sh) as u64),
                (self.hs, at),
                dw_hh,
                true,
                self.accumulate,
                ld,
            )?);
            if let Some((dgn, delta)) = self.late {
                let b = (delta, (d * h) as u64);
                ops.push(gemm(
                    sh,
                    h,
                    rows,
                    (dgn, (d * sh) as u64),
                    b,
                    dw_hh,
                    true,
                    true,
                    ld,
                )?);
            }
        }
        ops.push(gemm(
            rows,
            self.input,
            dirs * sh,
            (self.dg, 0),
            (self.w_ih, 0),
            (self.dx, 0),
            false,
            false,
            kernels::PACKED,
        )?);
        ops.push(kernels::col_sum(
            ctx,
            arg,
            self.dg,
            self.db,
            rows,
            dirs * sh,
            self.accumulate,
        )?);
        Ok(ops)
    }
}

/// The step kernels' shape for batch `b` — rows per invocation (the smallest that covers
/// it, at most the context's [`super::StepVariant::rows`]: more rows reuse each weight
/// load more) and units per invocation (the most that still leave a workgroup for each
/// of a CPU adapter's threads) — and their grid over
/// `hidden` units, the batch and `dirs` directions. (The units' groups were checked when
/// the weights were made; the batch is the caller's.)
pub(super) fn step_groups(
    ctx: &Context,
    hidden: usize,
    b: usize,
    dirs: u32,
) -> Result<(StepShape, [u32; 3])> {
    let variant = ctx.step_variant();
    let rows = variant.rows_for(b);
    let gy = div_ceil(b, rows as usize);
    let min_groups = min_step_groups(ctx.adapter_info());
    let cols = variant.cols_for(hidden, gy as usize * dirs as usize, min_groups);
    let gx = div_ceil(hidden, variant.units_with(cols) as usize);
    ctx.check_groups("x", gy as u64)?;
    Ok((StepShape { rows, cols }, [gx, gy, dirs]))
}

/// The buffers one call can give a step's kernels, by [`Role`] (`None`: this call has
/// none of that role, an internal error if a kernel asks for it).
#[derive(Default)]
pub(super) struct Bindings<'a> {
    pub dims: Option<&'a wgpu::Buffer>,
    pub steps: Option<&'a wgpu::Buffer>,
    pub xw: Option<&'a wgpu::Buffer>,
    pub w_fwd: Option<&'a wgpu::Buffer>,
    pub hs: Option<&'a wgpu::Buffer>,
    pub cs: Option<&'a wgpu::Buffer>,
    pub bias_hh: Option<&'a wgpu::Buffer>,
    pub gated: Option<&'a wgpu::Buffer>,
    pub kept: Option<&'a wgpu::Buffer>,
    pub dh: Option<&'a wgpu::Buffer>,
    pub w_back: Option<&'a wgpu::Buffer>,
    pub dg: Option<&'a wgpu::Buffer>,
    pub carry: Option<&'a wgpu::Buffer>,
    pub dh0: Option<&'a wgpu::Buffer>,
    pub dg_gated: Option<&'a wgpu::Buffer>,
    pub gated_delta: Option<&'a wgpu::Buffer>,
}

impl<'a> Bindings<'a> {
    fn get(&self, kernel: Kernel, role: Role) -> Result<&'a wgpu::Buffer> {
        match role {
            Role::Dims => self.dims,
            Role::Steps => self.steps,
            Role::Xw => self.xw,
            Role::WFwd => self.w_fwd,
            Role::Hs => self.hs,
            Role::Cs => self.cs,
            Role::BiasHh => self.bias_hh,
            Role::Gated => self.gated,
            Role::Kept => self.kept,
            Role::Dh => self.dh,
            Role::WBack => self.w_back,
            Role::Dg => self.dg,
            Role::Carry => self.carry,
            Role::Dh0 => self.dh0,
            Role::DgGated => self.dg_gated,
            Role::GatedDelta => self.gated_delta,
        }
        .ok_or_else(|| unbound(kernel, &role))
    }
}

/// The dispatches of a step's phases (`kernels`, in order), each bound by role from
/// `bind`, built for `rows` (the step shape) over `groups`.
pub(super) fn phase_ops(
    ctx: &Context,
    kernels: impl Iterator<Item = Kernel>,
    rows: StepShape,
    groups: [u32; 3],
    bind: &Bindings<'_>,
) -> Result<Vec<Op>> {
    kernels
        .map(|kernel| {
            let buffers = kernel
                .roles()
                .iter()
                .map(|&role| bind.get(kernel, role))
                .collect::<Result<Vec<_>>>()?;
            Op::variant(ctx, kernel, rows, &buffers, groups)
        })
        .collect()
}

/// A binding role a step kernel asks for that this call cannot give: a mismatch between
/// a cell's definition and the engine, never the caller's doing.
pub(super) fn unbound(kernel: Kernel, role: &Role) -> Error {
    Error::Device(format!(
        "internal: the {kernel:?} kernel binds {role:?}, which this layer or trace lacks"
    ))
}

/// Fills slot `slot` of `buf` (the `len` elements of one `[B, H]` state from element
/// `slot·len`) with `src`, or zeros; the rest of the buffer is left as it is (NaN where
/// outputs are poisoned).
pub(super) fn init_slot(
    enc: &mut wgpu::CommandEncoder,
    buf: &wgpu::Buffer,
    src: Option<&Tensor>,
    slot: usize,
    len: usize,
) {
    let (at, bytes) = ((slot * len * 4) as u64, (len * 4) as u64);
    match src {
        Some(s) => enc.copy_buffer_to_buffer(s.buffer(), s.offset() * 4, buf, at, bytes),
        None => enc.clear_buffer(buf, at, Some(bytes)),
    }
}

/// Runs a layer on host arrays (views of any layout): upload, forward, download (a
/// convenience for tests and small jobs). Returns `(h [T, B, H], c_last)`.
pub fn forward_host(
    layer: &Layer,
    x: ArrayView3<f32>,
    h0: Option<ArrayView2<f32>>,
    c0: Option<ArrayView2<f32>>,
) -> Result<(Array3<f32>, Option<Array2<f32>>)> {
    let ctx = layer.context();
    let x = Tensor::from_array(ctx, "x", &x)?;
    let h0 = h0.map(|a| Tensor::from_array(ctx, "h0", &a)).transpose()?;
    let c0 = c0.map(|a| Tensor::from_array(ctx, "c0", &a)).transpose()?;
    let out = layer.forward(&x, h0.as_ref(), c0.as_ref(), Mode::Inference)?;
    let h = dim::<Ix3>(out.h.to_array()?)?;
    let c = match out.c_last {
        Some(c) => Some(dim::<Ix2>(c.to_array()?)?),
        None => None,
    };
    Ok((h, c))
}
