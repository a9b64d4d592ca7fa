//! A network on the GPU (`nn.RNN`/`nn.LSTM`/`nn.GRU`-like: stacked, bidirectional, bias
//! or not), forward and backward, each call one command encoder and one compute pass.
//!
//! Layout: every layer keeps its rows with the directions interleaved — row `(t, b)`
//! holds direction 0's `H` units then direction 1's, the layout of the layer's output
//! `[T, B, D·H]` — so layer `l + 1`'s input projection is one GEMM over all of layer
//! `l`'s steps, and one step dispatch advances both directions (grid z). The hidden
//! states of a layer are `[T + 2, B, D·H]`: slot `t + 1` holds both directions' `h_t`
//! (the layer's output is slots `1 … T`), slot 0 the forward direction's h0 and slot
//! `T + 1` the reverse direction's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::context::Buf;
use super::flat::{self, Move, Moves};
use super::kernels::{self, div_ceil, Gemm, Op, StepDims, StepDir, StepSlot, PACKED};
use super::layer::{phase_ops, step_groups, BackwardGemms, Bindings, DeviceWeights, Mode};
use super::tensor::{new_buffer, TENSOR_USAGE};
use super::{Context, Kernel, Tensor};
use crate::cell::{with_cell, CellDef, Role};
use crate::error::{Error, Result};
use crate::net::{NetConfig, NetParams};

/// One layer's weights on the device, both directions stacked: `w_ih [D·S·H, I_l]`,
/// `bias [D·S·H]`, the recurrent weights `[D, H, H, S]` in the forward and backward
/// step layouts, the recurrent bias kept apart `[D, H, S]` (the GRU's `b_hn`).
#[derive(Debug)]
struct NetLayer {
    input: usize,
    w_ih: Buf,
    bias: Buf,
    w_fwd: Buf,
    w_back: Buf,
    bias_hh: Option<Buf>,
}

/// A network whose weights live on the device.
///
/// # Training on the device
/// Besides the step kernels' layouts, the network keeps its parameters as one flat
/// tensor per layer in PyTorch's `state_dict` order and layout ([`Network::parameters`],
/// [`Network::named_parameters`]); [`NetGrads::flat`] has the gradients in the same
/// layout, so an optimizer ([`super::Optim`]) and a clipping
/// ([`super::clip_grad_norm`]) take the network as one tensor pair per layer. After
/// changing the parameters in place, [`Network::sync_weights`] re-derives the step
/// layouts on the device (a few dispatches, nothing read back). The weights carry a
/// version, as [`super::Layer`]'s do: a trace made before a `sync_weights` is refused by
/// [`Network::backward`].
#[derive(Debug)]
pub struct Network {
    ctx: Context,
    id: u64,
    config: NetConfig,
    layers: Vec<NetLayer>,
    /// The parameters, flat, one vector per layer, in PyTorch's order and layout
    /// (`flat::entries`).
    flat: Vec<Arc<Buf>>,
    /// The moves between `flat` and the layers' layouts.
    moves: Moves,
    /// The weights' version, bumped by [`Network::sync_weights`]; held for reading while
    /// a forward or backward records and submits.
    version: RwLock<u64>,
    /// The next training forward's dropout seed ([`Network::seed_dropout`]).
    seed: AtomicU64,
    /// A table for kernels that take one when the batch is not sorted.
    no_table: Buf,
}

/// The next network's identity.
static NEXT_NETWORK: AtomicU64 = AtomicU64::new(1);

/// What a training-mode forward keeps of one layer.
#[derive(Debug, Clone)]
struct LayerTrace {
    /// The layer's input `[T·B, I_l]`: the network's input, or the layer below's rows.
    x: Tensor,
    /// `[T + 2, B, D·H]`.
    hs: Arc<Buf>,
    /// `[T + 2, B, D·H]` (cells with a cell state).
    cs: Option<Arc<Buf>>,
    /// `[T, B, D·S·H]`: what the cell keeps.
    kept: Option<Arc<Buf>>,
}

/// What [`Network::forward`] keeps for [`Network::backward`].
#[derive(Debug, Clone)]
pub struct NetTrace {
    network: u64,
    version: u64,
    steps: usize,
    batch: usize,
    /// The seed of the dropout masks between layers (training with dropout).
    dropout_seed: Option<u64>,
    /// The lengths of a variable-length batch, sorted.
    sorted: Option<Arc<Sorted>>,
    layers: Vec<LayerTrace>,
}

impl NetTrace {
    /// The seed of the dropout masks between layers, when the forward trained with
    /// dropout.
    pub fn dropout_seed(&self) -> Option<u64> {
        self.dropout_seed
    }
}

/// The result of [`Network::forward`]; everything stays on the device until read.
#[derive(Debug)]
pub struct NetForward {
    /// The last layer's output `[T, B, D·H]`, forward direction first.
    pub output: Tensor,
    /// Final hidden states `[L·D, B, H]`.
    pub h_n: Tensor,
    /// Final cell states `[L·D, B, H]` (cells with a cell state).
    pub c_n: Option<Tensor>,
    /// What backward needs ([`Mode::Training`] only).
    pub trace: Option<NetTrace>,
}

/// Gradients of [`Network::backward`], on the device.
#[derive(Debug)]
pub struct NetGrads {
    /// `[T, B, I]`.
    pub dx: Tensor,
    /// `[L·D, B, H]`.
    pub dh0: Tensor,
    /// `[L·D, B, H]` (cells with a cell state).
    pub dc0: Option<Tensor>,
    config: NetConfig,
    /// The parameter gradients, flat per layer, in [`Network::parameters`]' layout.
    flat: Vec<Tensor>,
}

impl NetGrads {
    /// Downloads the parameter gradients under PyTorch's `state_dict` names, in
    /// PyTorch's order and layout (no biases when the network has none), each flattened
    /// row-major, as [`crate::net::cpu::NetGrads::named`] has them.
    pub fn named(&self) -> Result<Vec<(String, Vec<f32>)>> {
        let all = self
            .flat
            .iter()
            .map(|t| Ok(t.to_array()?.iter().copied().collect()))
            .collect::<Result<Vec<Vec<f32>>>>()?;
        Ok(flat::entries(&self.config)
            .into_iter()
            .map(|e| {
                let v = all[e.layer][e.offset..e.offset + e.len()].to_vec();
                (e.name, v)
            })
            .collect())
    }

    /// The parameter gradients under PyTorch's `state_dict` names, each a view of
    /// [`NetGrads::flat`] in PyTorch's shape (pairs with [`Network::named_parameters`]).
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        flat::entries(&self.config)
            .into_iter()
            .map(|e| {
                let f = &self.flat[e.layer];
                let t = Tensor::view_of(f.context(), f.arc(), e.offset as u64, &e.shape);
                (e.name, t)
            })
            .collect()
    }

    /// The parameter gradients as one flat tensor per layer in [`Network::parameters`]'
    /// layout (PyTorch's `state_dict` order, each tensor row-major).
    pub fn flat(&self) -> &[Tensor] {
        &self.flat
    }
}

/// A batch of variable-length sequences as the step kernels run it: rows sorted longest
/// first (a stable sort), so the rows within their sequence at step t are the first
/// `live(t)`. The table on the device holds, `B` entries each: the sorted position's
/// original row, the sorted lengths, the original row's sorted position, the original
/// lengths.
#[derive(Debug)]
struct Sorted {
    lens: Vec<usize>,
    table: Buf,
}

/// Offsets of the [`Sorted`] table's four parts, in units of `B`.
const PERM: usize = 0;
const LENS_SORTED: usize = 1;
const INV: usize = 2;
const LENS: usize = 3;

impl Sorted {
    /// Checks `lengths` (one per batch row, each in `1..=T`) and uploads the table.
    fn new(ctx: &Context, lengths: &[usize], t: usize, b: usize) -> Result<Sorted> {
        if lengths.len() != b {
            return Err(Error::Shape {
                arg: "lengths",
                expected: format!("[B] = [{b}], one length per batch row"),
                got: crate::error::fmt_shape(&[lengths.len()]),
            });
        }
        if let Some((row, &len)) = lengths.iter().enumerate().find(|(_, &n)| n == 0 || n > t) {
            return Err(Error::Invalid {
                arg: "lengths",
                msg: format!("lengths[{row}] = {len}; each must be in 1..={t} (T)"),
            });
        }
        let mut perm: Vec<usize> = (0..b).collect();
        perm.sort_by_key(|&r| std::cmp::Reverse(lengths[r]));
        let mut inv = vec![0; b];
        for (pos, &row) in perm.iter().enumerate() {
            inv[row] = pos;
        }
        let lens: Vec<usize> = perm.iter().map(|&r| lengths[r]).collect();
        let table: Vec<u32> = [&perm, &lens, &inv, &lengths.to_vec()]
            .iter()
            .flat_map(|v| v.iter().map(|&x| x as u32))
            .collect();
        Ok(Sorted {
            lens,
            table: ctx.buf_init("lengths", &table, TENSOR_USAGE),
        })
    }

    /// Rows within their sequence at time `t`.
    fn live(&self, t: u32) -> u32 {
        self.lens.iter().filter(|&&n| n > t as usize).count() as u32
    }

    /// `(length, first sorted row, rows)` of each run of equal lengths.
    fn runs(&self) -> Vec<(usize, usize, usize)> {
        let mut runs: Vec<(usize, usize, usize)> = Vec::new();
        for (r, &n) in self.lens.iter().enumerate() {
            match runs.last_mut() {
                Some(last) if last.0 == n => last.2 += 1,
                _ => runs.push((n, r, 1)),
            }
        }
        runs
    }

    /// A gather of `[blocks, B, cols]` rows through the table's part `part` (PERM: into
    /// sorted order; INV: back), zeroing past each row's end with the lengths `lens`.
    #[allow(clippy::too_many_arguments)]
    fn gather(
        &self,
        ctx: &Context,
        arg: &'static str,
        x: kernels::Operand<'_>,
        y: kernels::Operand<'_>,
        blocks: usize,
        cols: usize,
        part: usize,
        lens: Option<usize>,
    ) -> Result<Op> {
        let b = self.lens.len();
        kernels::gather(
            ctx,
            arg,
            x,
            &self.table,
            y,
            [blocks, b, cols],
            part * b,
            lens.map(|l| l * b),
        )
    }
}

/// Concatenates the directions' device layouts of one layer.
fn stack(parts: &[DeviceWeights], pick: impl Fn(&DeviceWeights) -> &[f32]) -> Vec<f32> {
    parts.iter().flat_map(|p| pick(p).iter().copied()).collect()
}

impl Network {
    /// Uploads `params` (checked first).
    pub fn new(ctx: &Context, params: &NetParams<f32>) -> Result<Self> {
        params.check()?;
        let c = params.config;
        let dirs = c.directions();
        let mut parts = Vec::with_capacity(c.num_layers);
        for l in 0..c.num_layers {
            let per_dir = (0..dirs)
                .map(|d| {
                    let p = &params.layers[l * dirs + d];
                    with_cell!(c.cell, C => DeviceWeights::from::<C>(ctx, p))
                })
                .collect::<Result<Vec<_>>>()?;
            parts.push(per_dir);
        }
        let sh = with_cell!(c.cell, C => C::SLOTS) * c.hidden_size;
        for l in 0..c.num_layers {
            ctx.check_elems("params", &[dirs * sh, c.layer_input(l)])?;
            ctx.check_elems("params", &[dirs * sh, c.hidden_size])?;
            for groups in [
                div_ceil(c.hidden_size, ctx.step_variant().units() as usize),
                div_ceil(dirs * sh, 64),
                div_ceil(c.layer_input(l), 64),
                div_ceil(dirs * sh, 128),
            ] {
                ctx.check_groups("params", groups as u64)?;
            }
        }
        let flat_host = flat::flatten(params);
        let lens = flat::layer_lens(&c);
        for &n in &lens {
            ctx.check_elems("params", &[n])?;
        }
        ctx.run("uploading the network's weights", || {
            let layers = parts
                .iter()
                .enumerate()
                .map(|(l, p)| NetLayer {
                    input: c.layer_input(l),
                    w_ih: ctx.buf_init("w_ih", &stack(p, |d| &d.w_ih), TENSOR_USAGE),
                    bias: ctx.buf_init("bias", &stack(p, |d| &d.bias), TENSOR_USAGE),
                    w_fwd: ctx.buf_init("w_hh (forward)", &stack(p, |d| &d.w_fwd), TENSOR_USAGE),
                    w_back: ctx.buf_init("w_hh (backward)", &stack(p, |d| &d.w_back), TENSOR_USAGE),
                    bias_hh: p[0].bias_hh.as_ref().map(|_| {
                        let b = stack(p, |d| d.bias_hh.as_deref().unwrap_or(&[]));
                        ctx.buf_init("b_hh (kept apart)", &b, TENSOR_USAGE)
                    }),
                })
                .collect();
            ctx.submit(None)?;
            Ok(Network {
                ctx: ctx.clone(),
                id: NEXT_NETWORK.fetch_add(1, Ordering::Relaxed),
                config: c,
                layers,
                seed: AtomicU64::new(0),
                no_table: ctx.buf_init("no table", &[0u32; 4], TENSOR_USAGE),
                flat: lens
                    .iter()
                    .scan(0, |at, &n| {
                        let part = &flat_host[*at..*at + n];
                        *at += n;
                        Some(Arc::new(ctx.buf_init("parameters", part, TENSOR_USAGE)))
                    })
                    .collect(),
                moves: with_cell!(c.cell, C => Moves::new::<C>(&c)),
                version: RwLock::new(0),
            })
        })
    }

    /// The network's shape.
    pub fn config(&self) -> NetConfig {
        self.config
    }

    /// The parameters as one flat tensor per layer on the device: PyTorch's
    /// `state_dict` tensors in its order ([`Network::named_parameters`] names them),
    /// each row-major. Change them in place (an optimizer step), then call
    /// [`Network::sync_weights`].
    pub fn parameters(&self) -> Vec<Tensor> {
        flat::layer_lens(&self.config)
            .iter()
            .zip(&self.flat)
            .map(|(&n, f)| Tensor::view_of(&self.ctx, f, 0, &[n]))
            .collect()
    }

    /// The parameters under PyTorch's `state_dict` names, each a view of
    /// [`Network::parameters`] in PyTorch's shape.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        flat::entries(&self.config)
            .into_iter()
            .map(|e| {
                let f = &self.flat[e.layer];
                let t = Tensor::view_of(&self.ctx, f, e.offset as u64, &e.shape);
                (e.name, t)
            })
            .collect()
    }

    /// Downloads the parameters ([`Network::parameters`], as they are now).
    pub fn to_params(&self) -> Result<NetParams<f32>> {
        let mut all = Vec::new();
        for t in self.parameters() {
            all.extend(t.to_array()?.iter().copied());
        }
        flat::unflatten(self.config, &all)
    }

    /// Replaces the parameters with `params` (checked; the same config) and syncs the
    /// step layouts from them ([`Network::sync_weights`]): a checkpoint's weights into a
    /// network that already exists.
    pub fn set_params(&self, params: &NetParams<f32>) -> Result<()> {
        params.check()?;
        if params.config != self.config {
            return Err(Error::Invalid {
                arg: "params",
                msg: format!(
                    "weights of {}; this network is {}",
                    params.config.describe(),
                    self.config.describe()
                ),
            });
        }
        let host = flat::flatten(params);
        self.ctx.run("writing the network's parameters", || {
            let mut at = 0;
            for (f, n) in self.flat.iter().zip(flat::layer_lens(&self.config)) {
                let part = &host[at..at + n];
                self.ctx
                    .queue()
                    .write_buffer(f, 0, bytemuck::cast_slice(part));
                at += n;
            }
            Ok(())
        })?;
        self.sync_weights()
    }

    /// The weights' version: 0 after [`Network::new`], one more after each
    /// [`Network::sync_weights`].
    pub fn version(&self) -> u64 {
        *self.version.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-derives the step kernels' weight layouts from [`Network::parameters`] after
    /// they changed in place (an optimizer step): one compute pass of moves on the
    /// device (six dispatches per layer, by index arithmetic), nothing read back. Starts a new weight
    /// version: traces made before are refused by [`Network::backward`].
    pub fn sync_weights(&self) -> Result<()> {
        let ctx = &self.ctx;
        let mut version = self.version.write().unwrap_or_else(|p| p.into_inner());
        ctx.run("syncing the network's weights", || {
            *version += 1;
            let mut ops = Vec::new();
            for ((layer, dev), flat) in self
                .layers
                .iter()
                .zip(&self.moves.to_device)
                .zip(&self.flat)
            {
                let mut moves = |dst: &wgpu::Buffer, list: &[Move]| -> Result<()> {
                    for m in list {
                        ops.push(kernels::relayout(ctx, m, flat, dst)?);
                    }
                    Ok(())
                };
                moves(&layer.w_ih, &dev.w_ih)?;
                moves(&layer.bias, &dev.bias)?;
                if let Some(b) = &layer.bias_hh {
                    moves(b, &dev.bias_hh)?;
                }
                moves(&layer.w_fwd, &dev.w_fwd)?;
                moves(&layer.w_back, &dev.w_back)?;
            }
            kernels::submit_pass(
                ctx,
                "syncing the network's weights",
                |_| {},
                |pass| {
                    for op in &ops {
                        op.record(pass);
                    }
                },
            )
        })
    }

    /// Sets the seed of the next training forward's dropout masks; each training forward
    /// with dropout takes the current seed and leaves the next one (its trace says which
    /// it took, [`NetTrace::dropout_seed`]). `crate::net::cpu::forward_train` with the
    /// same seed draws the same masks.
    pub fn seed_dropout(&self, seed: u64) {
        self.seed.store(seed, Ordering::Relaxed);
    }

    /// Checks a state argument `[L·D, B, H]` (and a cell state's cell).
    fn check_state(
        &self,
        arg: &'static str,
        v: Option<&Tensor>,
        b: usize,
        cell: bool,
    ) -> Result<()> {
        let c = &self.config;
        let Some(v) = v else { return Ok(()) };
        if cell && !c.cell.has_cell_state() {
            return Err(Error::Invalid {
                arg,
                msg: format!("a {} has no cell state: pass None", c.cell.name()),
            });
        }
        self.ctx.check_owner(arg, v)?;
        v.expect_shape(
            arg,
            "[L·D, B, H]",
            &[c.num_layers * c.directions(), b, c.hidden_size],
        )
    }

    /// Runs the network over `x [T, B, I]` from `h0` (and `c0`) `[L·D, B, H]`, zeros when
    /// `None`: per layer one input-projection GEMM and one step dispatch per time step
    /// for both directions (two for the lecture's GRU), all in one compute pass.
    /// `lengths` (one per batch row, each in `1..=T`; PyTorch's packed sequences, in any
    /// order) makes it a batch of variable-length sequences: outputs past a sequence's
    /// end are zero, `h_n`/`c_n` are each sequence's state at its own last step, and the
    /// reverse direction starts at each sequence's own end.
    pub fn forward(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        lengths: Option<&[usize]>,
        mode: Mode,
    ) -> Result<NetForward> {
        let ctx = &self.ctx;
        let c = self.config;
        let shape = x.shape();
        if shape.len() != 3 || shape[0] == 0 || shape[1] == 0 || shape[2] != c.input_size {
            return Err(Error::Shape {
                arg: "x",
                expected: format!("[T, B, I] with T ≥ 1, B ≥ 1, I = {}", c.input_size),
                got: crate::error::fmt_shape(shape),
            });
        }
        ctx.check_owner("x", x)?;
        let (t, b) = (shape[0], shape[1]);
        self.check_state("h0", h0, b, false)?;
        self.check_state("c0", c0, b, true)?;
        let (h, dirs) = (c.hidden_size, c.directions());
        let dh = dirs * h;
        let sh = with_cell!(c.cell, C => C::SLOTS) * h;
        let (rows_per, groups) = step_groups(ctx, h, b, dirs as u32)?;
        let train = mode == Mode::Training;
        // Cell states: every one kept (training, States), or two ping-pong slots.
        let c_slots = if mode == Mode::Inference { 2 } else { t + 2 };
        ctx.check_elems("x", &[t, b, dirs * sh])?;
        ctx.check_elems("x", &[t + 2, b, dh])?;
        let ld = c.num_layers * dirs;
        let version = self.version.read().unwrap_or_else(|p| p.into_inner());
        ctx.run("network forward", || {
            let sorted = match lengths {
                Some(l) => Some(Arc::new(Sorted::new(ctx, l, t, b)?)),
                None => None,
            };
            let h_n = Arc::new(new_buffer(ctx, "x", &[ld, b, h])?);
            let c_n = match c.cell.has_cell_state() {
                true => Some(Arc::new(new_buffer(ctx, "x", &[ld, b, h])?)),
                false => None,
            };
            // Sorted by length: the input, h0 and c0 in sorted row order first; the final
            // states into sorted buffers, gathered back at the end.
            let mut pre_all = Vec::new();
            let mut post_all = Vec::new();
            let mut x = x.clone();
            let (mut h0, mut c0) = (h0.cloned(), c0.cloned());
            let (mut h_fin, mut c_fin) = (h_n.clone(), c_n.clone());
            if let Some(s) = &sorted {
                let into_sorted = |v: &Tensor, blocks: usize, cols: usize, lens| -> Result<(Tensor, Op)> {
                    let buf = Arc::new(new_buffer(ctx, "x", &[blocks, b, cols])?);
                    let op = s.gather(ctx, "x", (v.buffer(), v.offset()), (&buf, 0), blocks, cols, PERM, lens)?;
                    Ok((Tensor::view_of(ctx, &buf, 0, &[blocks, b, cols]), op))
                };
                // The input zero past each end: padding (NaN, say) must not reach dW_ih.
                let (xs, op) = into_sorted(&x, t, c.input_size, Some(LENS_SORTED))?;
                pre_all.push(op);
                x = xs;
                for v in [&mut h0, &mut c0] {
                    if let Some(t0) = v.as_ref() {
                        let (sv, op) = into_sorted(t0, ld, h, None)?;
                        pre_all.push(op);
                        *v = Some(sv);
                    }
                }
                h_fin = Arc::new(new_buffer(ctx, "x", &[ld, b, h])?);
                post_all.push(s.gather(ctx, "x", (&h_fin, 0), (&h_n, 0), ld, h, INV, None)?);
                if let Some(c_n) = &c_n {
                    let cf = Arc::new(new_buffer(ctx, "x", &[ld, b, h])?);
                    post_all.push(s.gather(ctx, "x", (&cf, 0), (c_n, 0), ld, h, INV, None)?);
                    c_fin = Some(cf);
                }
            }
            let (h0, c0) = (h0.as_ref(), c0.as_ref());
            let live = |t: u32| sorted.as_ref().map_or(b as u32, |s| s.live(t));
            let dropout_seed = (train && c.dropout > 0.0 && c.num_layers > 1)
                .then(|| self.seed.fetch_add(1, Ordering::Relaxed));
            let (table, perm): (&wgpu::Buffer, Option<usize>) = match &sorted {
                Some(s) => (&s.table, Some(PERM * b)),
                None => (&self.no_table, None),
            };
            let dims = ctx.uniform(
                "step dims",
                &StepDims {
                    batch: b as u32,
                    hidden: h as u32,
                    train: train as u32,
                    dirs: dirs as u32,
                },
            );
            let schedule = StepSlot::zip(
                &(0..dirs)
                    .map(|d| StepDir::forward(t, mode != Mode::Inference, d == 1, 1, &live))
                    .collect::<Vec<_>>(),
                false,
            );
            let steps = ctx.schedule("x", &schedule)?;
            let phases = with_cell!(c.cell, C => C::STEP.len());
            let last = schedule.last().copied().unwrap_or_default();
            let mut recorded: Vec<LayerOps> = Vec::new();
            let mut traces = Vec::with_capacity(c.num_layers);
            let mut input = x.clone();
            for (l, layer) in self.layers.iter().enumerate() {
                let mut ops = Vec::new();
                let xw = Arc::new(new_buffer(ctx, "x", &[t, b, dirs * sh])?);
                let hs = Arc::new(new_buffer(ctx, "x", &[t + 2, b, dh])?);
                let cs = match c.cell.has_cell_state() {
                    true => Some(Arc::new(new_buffer(ctx, "x", &[c_slots, b, dh])?)),
                    false => None,
                };
                let gated = match with_cell!(c.cell, C => C::STEP.iter().any(|p| p.binds.contains(&Role::Gated))) {
                    true => Some(new_buffer(ctx, "x", &[b, dh])?),
                    false => None,
                };
                ops.push(
                    Gemm {
                        arg: "x",
                        arg_n: "x",
                        m: t * b,
                        n: dirs * sh,
                        k: layer.input,
                        a: (input.buffer(), input.offset()),
                        b: (&layer.w_ih, 0),
                        bias: Some((&layer.bias, 0)),
                        c: (&xw, 0),
                        trans_a: false,
                        trans_b: true,
                        accumulate: false,
                        ld: PACKED,
                    }
                    .op(ctx)?,
                );
                // The initial states into their slots: h0 (c0) of direction d, rows b,
                // into slot 0 (forward) or the reverse direction's first slot.
                for d in 0..dirs {
                    let k = l * dirs + d;
                    let first = |e: &StepDir| e.prev as usize;
                    let slot0 = first(&schedule[0].dirs[d]);
                    let c_slot0 = schedule[0].dirs[d].c_prev as usize;
                    for (src, dst, slot) in [(h0, Some(&hs), slot0), (c0, cs.as_ref(), c_slot0)] {
                        let Some(dst) = dst else { continue };
                        let y = (&***dst, (slot * b * dh + d * h) as u64, dh);
                        match src {
                            Some(s) => ops.push(kernels::block(
                                ctx,
                                "x",
                                (s.buffer(), s.offset() + (k * b * h) as u64, h),
                                y,
                                b,
                                h,
                                false,
                            )?),
                            None => ops.push(zero_block(ctx, y, b, h)?),
                        }
                    }
                }
                let kernels = (0..phases as u8).map(|p| Kernel::Step(c.cell, p));
                let bind = Bindings {
                    dims: Some(&dims),
                    steps: Some(&steps),
                    xw: Some(&xw),
                    w_fwd: Some(&layer.w_fwd),
                    hs: Some(&hs),
                    cs: cs.as_deref().map(|b| &**b),
                    bias_hh: layer.bias_hh.as_deref(),
                    gated: gated.as_deref(),
                    ..Default::default()
                };
                let steps_ops = phase_ops(ctx, kernels, rows_per, groups, &bind)?;
                // h_n, c_n: each direction's last state.
                let mut fin = Vec::new();
                for d in 0..dirs {
                    let k = l * dirs + d;
                    let out = |slot: usize| (slot * b * dh + d * h) as u64;
                    fin.push(kernels::block(
                        ctx,
                        "x",
                        (&hs, out(last.dirs[d].next as usize), dh),
                        (&h_fin, (k * b * h) as u64, h),
                        b,
                        h,
                        false,
                    )?);
                    if let (Some(cs), Some(c_n)) = (&cs, &c_fin) {
                        fin.push(kernels::block(
                            ctx,
                            "x",
                            (cs, out(last.dirs[d].c_next as usize), dh),
                            (c_n, (k * b * h) as u64, h),
                            b,
                            h,
                            false,
                        )?);
                    }
                }
                recorded.push(LayerOps {
                    pre: ops,
                    steps: steps_ops,
                    post: fin,
                });
                traces.push(LayerTrace {
                    x: input.clone(),
                    hs: hs.clone(),
                    cs: cs.clone(),
                    kept: with_cell!(c.cell, C => C::kept(h) > 0).then(|| xw.clone()),
                });
                input = Tensor::view_of(ctx, &hs, (b * dh) as u64, &[t, b, dh]);
                // Dropout on the way to the next layer, on a copy (backward needs the
                // layer's own states).
                if let Some(seed) = dropout_seed.filter(|_| l + 1 < c.num_layers) {
                    let dropped = Arc::new(new_buffer(ctx, "x", &[t, b, dh])?);
                    let post = &mut recorded.last_mut().expect("this layer").post;
                    post.push(kernels::block(ctx, "x", (&hs, (b * dh) as u64, dh), (&dropped, 0, dh), t * b, dh, false)?);
                    post.push(kernels::dropout(ctx, (&dropped, 0), table, [t, b, dh], perm, l, seed, c.dropout)?);
                    input = Tensor::view_of(ctx, &dropped, 0, &[t, b, dh]);
                }
            }
            // The output in the caller's row order, zero past each sequence's end.
            if let Some(s) = &sorted {
                let out = Arc::new(new_buffer(ctx, "x", &[t, b, dh])?);
                post_all.push(s.gather(ctx, "x", (input.buffer(), input.offset()), (&out, 0), t, dh, INV, Some(LENS))?);
                input = Tensor::view_of(ctx, &out, 0, &[t, b, dh]);
            }
            kernels::submit_pass(
                ctx,
                "network forward",
                |_| {},
                |pass| {
                    for op in &pre_all {
                        op.record(pass);
                    }
                    for layer in &recorded {
                        layer.record(pass, schedule.len(), phases);
                    }
                    for op in &post_all {
                        op.record(pass);
                    }
                },
            )?;
            Ok(NetForward {
                output: input,
                h_n: Tensor::view_of(ctx, &h_n, 0, &[ld, b, h]),
                c_n: c_n.map(|c| Tensor::view_of(ctx, &c, 0, &[ld, b, h])),
                trace: train.then(|| NetTrace {
                    network: self.id,
                    version: *version,
                    steps: t,
                    batch: b,
                    dropout_seed,
                    sorted: sorted.clone(),
                    layers: traces,
                }),
            })
        })
    }
}

impl Network {
    /// Backward through time and through the stack from `d_output [T, B, D·H]` and
    /// optional gradients on the final states `d_h_n`, `d_c_n` `[L·D, B, H]`: per layer one
    /// dispatch per step for both directions, then the weight-gradient GEMMs over all
    /// steps (`dW_ih`, `dW_hh` of each direction, `dX` into the layer below), all in one
    /// compute pass. Returns fresh gradients on the device.
    pub fn backward(
        &self,
        trace: &NetTrace,
        d_output: &Tensor,
        d_h_n: Option<&Tensor>,
        d_c_n: Option<&Tensor>,
    ) -> Result<NetGrads> {
        let ctx = &self.ctx;
        let c = self.config;
        if trace.network != self.id {
            return Err(Error::Invalid {
                arg: "trace",
                msg: "made by another network; a trace is only valid for the network whose \
                      forward made it"
                    .into(),
            });
        }
        let version = self.version.read().unwrap_or_else(|p| p.into_inner());
        if trace.version != *version {
            return Err(Error::Invalid {
                arg: "trace",
                msg: format!(
                    "made with weight version {}; sync_weights has since made it {}: run \
                     the forward again",
                    trace.version, *version
                ),
            });
        }
        let (t, b, h, dirs) = (trace.steps, trace.batch, c.hidden_size, c.directions());
        let dh = dirs * h;
        ctx.check_owner("d_output", d_output)?;
        d_output.expect_shape("d_output", "[T, B, D·H]", &[t, b, dh])?;
        self.check_state("d_h_n", d_h_n, b, false)?;
        self.check_state("d_c_n", d_c_n, b, true)?;
        let sh = with_cell!(c.cell, C => C::SLOTS) * h;
        let (rows_per, groups) = step_groups(ctx, h, b, dirs as u32)?;
        let ld = c.num_layers * dirs;
        let binds =
            |role| with_cell!(c.cell, C => C::STEP_BACK.iter().any(|p| p.binds.contains(&role)));
        ctx.run("network backward", || {
            let sorted = trace.sorted.as_deref();
            let live = |t: u32| sorted.map_or(b as u32, |s| s.live(t));
            let dims = ctx.uniform(
                "step dims",
                &StepDims {
                    batch: b as u32,
                    hidden: h as u32,
                    train: 0,
                    dirs: dirs as u32,
                },
            );
            let schedule = StepSlot::zip(
                &(0..dirs)
                    .map(|d| StepDir::backward(t, d == 1, 1, &live))
                    .collect::<Vec<_>>(),
                true,
            );
            let steps = ctx.schedule("d_output", &schedule)?;
            let phases = with_cell!(c.cell, C => C::STEP_BACK.len());
            let lens = flat::layer_lens(&c);
            let flat_grads = lens
                .iter()
                .map(|&n| Ok(Arc::new(new_buffer(ctx, "params", &[n])?)))
                .collect::<Result<Vec<_>>>()?;
            let dx = Arc::new(new_buffer(ctx, "d_output", &[t, b, c.input_size])?);
            let dh0 = Arc::new(new_buffer(ctx, "d_output", &[ld, b, h])?);
            let dc0 = match c.cell.has_cell_state() {
                true => Some(Arc::new(new_buffer(ctx, "d_output", &[ld, b, h])?)),
                false => None,
            };
            let mut params = Vec::with_capacity(c.num_layers);
            for layer in &self.layers {
                let make = |shape: &[usize]| -> Result<Tensor> {
                    let buf = Arc::new(new_buffer(ctx, "d_output", shape)?);
                    Ok(Tensor::view_of(ctx, &buf, 0, shape))
                };
                params.push((
                    make(&[dirs * sh, layer.input])?,
                    make(&[dirs * sh, h])?,
                    make(&[dirs * sh])?,
                ));
            }
            // The upstream gradient of each layer's rows: the top's is d_output, each
            // lower one's the dX of the layer above.
            let mut upstream: Vec<Arc<Buf>> = Vec::with_capacity(c.num_layers);
            for _ in 0..c.num_layers {
                upstream.push(Arc::new(new_buffer(ctx, "d_output", &[t, b, dh])?));
            }
            // Sorted by length: the final states' gradients in sorted row order first;
            // dx, dh0, dc0 gathered back to the caller's order at the end.
            let mut pre_all = Vec::new();
            let mut post_all = Vec::new();
            let (mut d_h_n, mut d_c_n) = (d_h_n.cloned(), d_c_n.cloned());
            let (mut dx_s, mut dh0_s, mut dc0_s) = (dx.clone(), dh0.clone(), dc0.clone());
            if let Some(s) = sorted {
                for v in [&mut d_h_n, &mut d_c_n] {
                    if let Some(g) = v.as_ref() {
                        let buf = Arc::new(new_buffer(ctx, "d_output", &[ld, b, h])?);
                        pre_all.push(s.gather(
                            ctx,
                            "d_output",
                            (g.buffer(), g.offset()),
                            (&buf, 0),
                            ld,
                            h,
                            PERM,
                            None,
                        )?);
                        *v = Some(Tensor::view_of(ctx, &buf, 0, &[ld, b, h]));
                    }
                }
                dx_s = Arc::new(new_buffer(ctx, "d_output", &[t, b, c.input_size])?);
                post_all.push(s.gather(
                    ctx,
                    "d_output",
                    (&dx_s, 0),
                    (&dx, 0),
                    t,
                    c.input_size,
                    INV,
                    Some(LENS),
                )?);
                dh0_s = Arc::new(new_buffer(ctx, "d_output", &[ld, b, h])?);
                post_all.push(s.gather(
                    ctx,
                    "d_output",
                    (&dh0_s, 0),
                    (&dh0, 0),
                    ld,
                    h,
                    INV,
                    None,
                )?);
                if let Some(dc0) = &dc0 {
                    let buf = Arc::new(new_buffer(ctx, "d_output", &[ld, b, h])?);
                    post_all.push(s.gather(
                        ctx,
                        "d_output",
                        (&buf, 0),
                        (dc0, 0),
                        ld,
                        h,
                        INV,
                        None,
                    )?);
                    dc0_s = Some(buf);
                }
            }
            let (d_h_n, d_c_n) = (d_h_n.as_ref(), d_c_n.as_ref());
            let mut recorded = Vec::with_capacity(c.num_layers);
            for l in (0..c.num_layers).rev() {
                let (layer, tr) = (&self.layers[l], &trace.layers[l]);
                let dhl = &upstream[l];
                let mut pre = Vec::new();
                if l + 1 == c.num_layers {
                    let d_out = (d_output.buffer(), d_output.offset());
                    pre.push(match sorted {
                        // Sorted, and zero past each sequence's end.
                        Some(s) => s.gather(
                            ctx,
                            "d_output",
                            d_out,
                            (dhl, 0),
                            t,
                            dh,
                            PERM,
                            Some(LENS_SORTED),
                        )?,
                        None => kernels::block(
                            ctx,
                            "d_output",
                            (d_out.0, d_out.1, dh),
                            (dhl, 0, dh),
                            t * b,
                            dh,
                            false,
                        )?,
                    });
                }
                let carry = match binds(Role::Carry) {
                    true => Some(new_buffer(ctx, "d_output", &[b, dh])?),
                    false => None,
                };
                for d in 0..dirs {
                    let k = l * dirs + d;
                    // d_h_n reaches the direction's last step: t = 0 in reverse; forward,
                    // t = T-1, or each sequence's own last step (rows of one length
                    // together).
                    if let Some(g) = d_h_n {
                        let runs = match (d, sorted) {
                            (0, Some(s)) => s.runs(),
                            (0, None) => vec![(t, 0, b)],
                            _ => vec![(1, 0, b)],
                        };
                        for (len, r0, n) in runs {
                            pre.push(kernels::block(
                                ctx,
                                "d_h_n",
                                (g.buffer(), g.offset() + ((k * b + r0) * h) as u64, h),
                                (dhl, (((len - 1) * b + r0) * dh + d * h) as u64, dh),
                                n,
                                h,
                                true,
                            )?);
                        }
                    }
                    // The cell's own carry starts at d_c_n (or zero).
                    if let Some(carry) = &carry {
                        let y = (&**carry, (d * h) as u64, dh);
                        match d_c_n {
                            Some(g) => pre.push(kernels::block(
                                ctx,
                                "d_c_n",
                                (g.buffer(), g.offset() + (k * b * h) as u64, h),
                                y,
                                b,
                                h,
                                false,
                            )?),
                            None => pre.push(zero_block(ctx, y, b, h)?),
                        }
                    }
                }
                let dg = new_buffer(ctx, "d_output", &[t, b, dirs * sh])?;
                let dh0_l = new_buffer(ctx, "d_output", &[b, dh])?;
                let (dgn, delta) = match binds(Role::DgGated) {
                    true => (
                        Some(new_buffer(ctx, "d_output", &[t, b, dirs * sh])?),
                        Some(new_buffer(ctx, "d_output", &[t, b, dh])?),
                    ),
                    false => (None, None),
                };
                let kernels = (0..phases as u8).map(|p| Kernel::StepBack(c.cell, p));
                let bind = Bindings {
                    dims: Some(&dims),
                    steps: Some(&steps),
                    kept: tr.kept.as_deref().map(|b| &**b),
                    cs: tr.cs.as_deref().map(|b| &**b),
                    hs: Some(&tr.hs),
                    dh: Some(dhl),
                    w_back: Some(&layer.w_back),
                    dg: Some(&dg),
                    carry: carry.as_deref(),
                    dh0: Some(&dh0_l),
                    dg_gated: dgn.as_deref(),
                    gated_delta: delta.as_deref(),
                    ..Default::default()
                };
                let steps_ops = phase_ops(ctx, kernels, rows_per, groups, &bind)?;
                let (dw_ih, dw_hh, db) = &params[l];
                let below: &wgpu::Buffer = if l == 0 { &dx_s } else { &upstream[l - 1] };
                let mut post = BackwardGemms {
                    arg: "d_output",
                    dg: &dg,
                    late: dgn.as_ref().zip(delta.as_ref()).map(|(a, b)| (&**a, &**b)),
                    x: (tr.x.buffer(), tr.x.offset()),
                    hs: &tr.hs,
                    // H_prev of block t: slot t (forward) or t + 2 (reverse).
                    prev0: [0, 2],
                    w_ih: &layer.w_ih,
                    dx: below,
                    dw_ih: (dw_ih.buffer(), dw_ih.offset()),
                    dw_hh: (dw_hh.buffer(), dw_hh.offset()),
                    db: db.buffer(),
                    rows: t * b,
                    batch: b,
                    input: layer.input,
                    hidden: h,
                    sh,
                    dirs,
                    accumulate: false,
                }
                .ops(ctx)?;
                // Layer l's input was layer l − 1's output after dropout: the same mask.
                if let Some(seed) = trace.dropout_seed.filter(|_| l > 0) {
                    let (table, perm): (&wgpu::Buffer, Option<usize>) = match sorted {
                        Some(s) => (&s.table, Some(PERM * b)),
                        None => (&self.no_table, None),
                    };
                    post.push(kernels::dropout(
                        ctx,
                        (below, 0),
                        table,
                        [t, b, dh],
                        perm,
                        l - 1,
                        seed,
                        c.dropout,
                    )?);
                }
                for d in 0..dirs {
                    let k = l * dirs + d;
                    post.push(kernels::block(
                        ctx,
                        "d_output",
                        (&dh0_l, (d * h) as u64, dh),
                        (&dh0_s, (k * b * h) as u64, h),
                        b,
                        h,
                        false,
                    )?);
                    if let (Some(carry), Some(dc0)) = (&carry, &dc0_s) {
                        post.push(kernels::block(
                            ctx,
                            "d_output",
                            (carry, (d * h) as u64, dh),
                            (dc0, (k * b * h) as u64, h),
                            b,
                            h,
                            false,
                        )?);
                    }
                }
                recorded.push(LayerOps {
                    pre,
                    steps: steps_ops,
                    post,
                });
            }
            // The parameter gradients into the flat layout.
            for (((dw_ih, dw_hh, db), from), dst) in
                params.iter().zip(&self.moves.from_grads).zip(&flat_grads)
            {
                for (src, list) in [(dw_ih, &from.dw_ih), (dw_hh, &from.dw_hh), (db, &from.db)] {
                    for m in list {
                        // The gradient tensors are whole buffers of their own (offset 0).
                        debug_assert_eq!(src.offset(), 0);
                        post_all.push(kernels::relayout(ctx, m, src.buffer(), dst)?);
                    }
                }
            }
            kernels::submit_pass(
                ctx,
                "network backward",
                |_| {},
                |pass| {
                    for op in &pre_all {
                        op.record(pass);
                    }
                    for layer in &recorded {
                        layer.record(pass, schedule.len(), 1);
                    }
                    for op in &post_all {
                        op.record(pass);
                    }
                },
            )?;
            Ok(NetGrads {
                dx: Tensor::view_of(ctx, &dx, 0, &[t, b, c.input_size]),
                dh0: Tensor::view_of(ctx, &dh0, 0, &[ld, b, h]),
                dc0: dc0.map(|d| Tensor::view_of(ctx, &d, 0, &[ld, b, h])),
                config: c,
                flat: flat_grads
                    .iter()
                    .zip(&lens)
                    .map(|(f, &n)| Tensor::view_of(ctx, f, 0, &[n]))
                    .collect(),
            })
        })
    }
}

/// Zeroes a `rows × cols` block of a strided matrix (a [`kernels::block`] from an
/// all-zero source would need one; a clear of each row is as many commands): a block
/// copy from the destination onto itself times nothing is not available, so a tiny
/// zero buffer is read with stride 0.
fn zero_block(ctx: &Context, y: kernels::Strided<'_>, rows: usize, cols: usize) -> Result<Op> {
    let zeros = ctx.buf_init("zeros", &vec![0f32; cols], TENSOR_USAGE);
    kernels::block(ctx, "x", (&zeros, 0, 0), y, rows, cols, false)
}

/// One layer's part of a network call: what runs before its steps, the steps' phases,
/// and what runs after them.
struct LayerOps {
    pre: Vec<Op>,
    steps: Vec<Op>,
    post: Vec<Op>,
}

impl LayerOps {
    /// Records the layer: `pre`, the schedule's `entries` (`last_phases` phases for the
    /// final one), `post`.
    fn record(&self, pass: &mut wgpu::ComputePass<'_>, entries: usize, last_phases: usize) {
        for op in &self.pre {
            op.record(pass);
        }
        kernels::record_schedule(pass, &self.steps, entries, last_phases);
        for op in &self.post {
            op.record(pass);
        }
    }
}
