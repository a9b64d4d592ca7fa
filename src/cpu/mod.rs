//! The CPU reference path: the oracle every GPU kernel is checked against, and a usable
//! fallback. Generic over `f32` and `f64`; sequences are time-major `[T, B, F]`.
//!
//! The structure mirrors the GPU plan: one GEMM projects the inputs of all `T·B` rows,
//! then one fused step per time step (recurrent GEMM into the projection, activations and
//! state update in one loop); backward walks `t = T-1 … 0` computing the gate gradients
//! `dG`, then gets every weight gradient and `dX` from three GEMMs over all rows.
//! Nothing is allocated per element or per step beyond the outputs.

mod clip;
pub(crate) mod embedding;
#[doc(hidden)]
pub mod gemm;
pub(crate) mod head;
pub(crate) mod optim;
mod workers;

pub use clip::{clip_grad_norm, clip_grad_value};
pub use embedding::{embedding, embedding_backward};
pub use head::{
    head_forward, head_loss, head_loss_backward, softmax_last_axis, HeadGrads, HeadLoss, Reduction,
};
pub use optim::{optim_step, OptimState, Optimizer};

use ndarray::{s, Array1, Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, Axis};

use crate::cell::{with_cell, CellDef, LateBwd, RowBwd, RowFwd};
use crate::error::{check_shape, Error, Result};
use crate::host::{self, cache};
use crate::params::{Cell, Params};
use crate::real::Real;

/// What a forward pass keeps: the inputs, every hidden (and cell) state, and the
/// activated gates that backward needs.
///
/// Dropped, it gives its large buffers to the crate's cache of host buffers, from which
/// the next forward or backward allocates (a training loop reuses its memory instead of
/// faulting fresh pages in every step); to keep a field past the trace, take it
/// (`std::mem::take(&mut trace.h)`) or clone it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace<A> {
    /// The cell kind that produced the trace.
    pub cell: Cell,
    /// The input sequence `[T, B, I]`.
    pub x: Array3<A>,
    /// The initial hidden state `[B, H]`.
    pub h0: Array2<A>,
    /// The initial cell state `[B, H]` (cells with a cell state: the LSTM).
    pub c0: Option<Array2<A>>,
    /// Every hidden state `[T, B, H]`; `h[t]` is the state after consuming `x[t]`.
    pub h: Array3<A>,
    /// Every cell state `[T, B, H]` (cells with a cell state).
    pub c: Option<Array3<A>>,
    /// What the forward keeps for backward, `[T, B, kept]`: the LSTM's activated gates
    /// i, f, g, o (`4·H`), the GRU's r, z, n and `W_hn h + b_hn` (`4·H`); `None` for the
    /// tanh RNN, whose backward needs only `h`.
    pub gates: Option<Array3<A>>,
}

/// The trace's buffers go to the crate's cache of host buffers (see `host::cache`), for
/// the next forward to take.
impl<A> Drop for Trace<A> {
    fn drop(&mut self) {
        cache::give_array(&mut self.x);
        cache::give_array(&mut self.h);
        cache::give_opt(&mut self.c);
        cache::give_opt(&mut self.gates);
    }
}

impl<A: Real> Trace<A> {
    /// Number of time steps `T`.
    pub fn steps(&self) -> usize {
        self.h.len_of(Axis(0))
    }
    /// Batch size `B`.
    pub fn batch(&self) -> usize {
        self.h.len_of(Axis(1))
    }
    /// The last hidden state `h[T-1]`, `[B, H]` (`None` for an empty trace).
    pub fn h_last(&self) -> Option<ArrayView2<'_, A>> {
        let t = self.steps().checked_sub(1)?;
        Some(self.h.index_axis(Axis(0), t))
    }
    /// The last cell state `c[T-1]`, `[B, H]` (LSTM only; `None` for an empty trace).
    pub fn c_last(&self) -> Option<ArrayView2<'_, A>> {
        let t = self.c.as_ref()?.len_of(Axis(0)).checked_sub(1)?;
        self.c.as_ref().map(|c| c.index_axis(Axis(0), t))
    }
}

/// Gradients of a sequence backward pass, with respect to every input and parameter.
///
/// Dropped, it gives its large buffers to the crate's cache, as [`Trace`] does; to keep
/// a field past the gradients, take it (`std::mem::take(&mut grads.dw_ih)`) or clone
/// it.
#[derive(Debug, Clone, PartialEq)]
pub struct Grads<A> {
    /// Input gradient `[T, B, I]`.
    pub dx: Array3<A>,
    /// Gradient of the initial hidden state `[B, H]`.
    pub dh0: Array2<A>,
    /// Gradient of the initial cell state `[B, H]` (cells with a cell state).
    pub dc0: Option<Array2<A>>,
    /// `[G·H, I]`.
    pub dw_ih: Array2<A>,
    /// `[G·H, H]`.
    pub dw_hh: Array2<A>,
    /// `[G·H]`.
    pub db_ih: Array1<A>,
    /// `[G·H]` (equal to `db_ih` for the RNN and LSTM, whose biases enter the same sum;
    /// the GRU's `b_hn` block differs).
    pub db_hh: Array1<A>,
}

/// The gradients' buffers go to the crate's cache of host buffers (see `host::cache`).
impl<A> Drop for Grads<A> {
    fn drop(&mut self) {
        cache::give_array(&mut self.dx);
        cache::give_array(&mut self.dw_ih);
        cache::give_array(&mut self.dw_hh);
    }
}

/// The result of one cell step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOut<A> {
    /// The new hidden state `[B, H]`.
    pub h: Array2<A>,
    /// The new cell state `[B, H]` (cells with a cell state).
    pub c: Option<Array2<A>>,
    /// What the step keeps for backward `[B, kept]` (see [`Trace::gates`]).
    pub gates: Option<Array2<A>>,
}

/// Gradients of one cell step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepGrads<A> {
    /// `[B, I]`.
    pub dx: Array2<A>,
    /// Gradient of the previous hidden state `[B, H]`.
    pub dh_prev: Array2<A>,
    /// Gradient of the previous cell state `[B, H]` (cells with a cell state).
    pub dc_prev: Option<Array2<A>>,
    /// `[G·H, I]`.
    pub dw_ih: Array2<A>,
    /// `[G·H, H]`.
    pub dw_hh: Array2<A>,
    /// `[G·H]`: the gradient of `b_ih`.
    pub db: Array1<A>,
    /// `[G·H]`: the gradient of `b_hh` (equal to `db` for the RNN and LSTM, whose biases
    /// fold; the GRU's `b_hn` block differs).
    pub db_hh: Array1<A>,
}

/// Checks the optional initial state of a cell of kind `C`, returning owned zeros when
/// absent.
fn initial_state<C: CellDef, A: Real>(
    b: usize,
    h: usize,
    h0: Option<ArrayView2<A>>,
    c0: Option<ArrayView2<A>>,
) -> Result<(Array2<A>, Option<Array2<A>>)> {
    let h0 = match h0 {
        Some(v) => {
            check_shape("h0", "[B, H]", &[b, h], v.shape())?;
            host::copy("h0", &v)?
        }
        None => host::zeros("x", (b, h))?,
    };
    let c0 = cell_state::<C, A>("c0", "x", b, h, c0)?;
    Ok((h0, c0))
}

/// A cell-state argument `[B, H]` of a cell of kind `C`: copied, or zeros when absent;
/// `None` for cells without a cell state, which refuse one. `size_arg` names what sets
/// the size of the zeros.
fn cell_state<C: CellDef, A: Real>(
    arg: &'static str,
    size_arg: &'static str,
    b: usize,
    h: usize,
    v: Option<ArrayView2<A>>,
) -> Result<Option<Array2<A>>> {
    match (C::HAS_C, v) {
        (false, Some(_)) => Err(Error::Invalid {
            arg,
            msg: format!("a {} has no cell state: pass None", C::NAME),
        }),
        (false, None) => Ok(None),
        (true, Some(v)) => {
            check_shape(arg, "[B, H]", &[b, h], v.shape())?;
            Ok(Some(host::copy(arg, &v)?))
        }
        (true, None) => Ok(Some(host::zeros(size_arg, (b, h))?)),
    }
}

/// Checks `x [T, B, I]` against the parameters; returns `(T, B)`.
fn check_input<A: Real>(p: &Params<A>, x: &ArrayView3<A>) -> Result<(usize, usize)> {
    p.check()?;
    let (t, b, i) = x.dim();
    if t == 0 || b == 0 || i != p.input_size() {
        return Err(Error::Shape {
            arg: "x",
            expected: format!("[T, B, I] with T ≥ 1, B ≥ 1, I = {}", p.input_size()),
            got: crate::error::fmt_shape(x.shape()),
        });
    }
    Ok((t, b))
}

/// The rows of `width` entries of `data`, then empty rows without end (a state or a
/// product the cell does not have is an empty slice).
fn row_slices<A>(data: &[A], width: usize) -> impl Iterator<Item = &[A]> {
    data.chunks(width.max(1)).chain(std::iter::repeat(&[][..]))
}

/// [`row_slices`], mutable.
fn row_slices_mut<A>(data: &mut [A], width: usize) -> impl Iterator<Item = &mut [A]> {
    data.chunks_mut(width.max(1))
        .chain(std::iter::repeat_with(|| &mut [][..]))
}

/// `[T, B, G·H]` as `[T·B, G·H]` (an array the crate allocated).
fn as_rows<A>(a: &Array3<A>, rows: usize, gh: usize) -> ndarray::ArrayView2<'_, A> {
    a.view()
        .into_shape_with_order((rows, gh))
        .expect("standard layout")
}

/// The data of an array the crate allocated (always standard layout).
fn data<A, D: ndarray::Dimension>(a: &ndarray::Array<A, D>) -> &[A] {
    a.as_slice()
        .expect("arrays the crate allocates are standard layout")
}

/// Frees the host buffers the CPU path keeps for reuse: dropped traces, gradients and
/// outputs give their large buffers (at least 256 KiB each, at most 32 of them and
/// 128 MiB in all) to a cache shared by every thread, from which later calls allocate;
/// a program done with the CPU path, or short of memory, can hand them back to the
/// system here.
pub fn release_cached_memory() {
    cache::clear();
}

/// Sequence forward: runs the cell over `x [T, B, I]` from `h0` (and `c0`), zeros when
/// `None`, and returns the [`Trace`] with every state.
pub fn forward<A: Real>(
    p: &Params<A>,
    x: ArrayView3<A>,
    h0: Option<ArrayView2<A>>,
    c0: Option<ArrayView2<A>>,
) -> Result<Trace<A>> {
    with_cell!(p.cell, C => forward_with::<C, A>(p, x, h0, c0))
}

/// The outputs of an inference forward ([`forward_inference`]): the hidden states and
/// the last cell state, without what backward would need. Dropped, it gives its buffers
/// to the crate's cache, as [`Trace`] does; to keep `h` past the outputs, take it
/// (`std::mem::take(&mut out.h)`) or clone it.
#[derive(Debug, Clone)]
pub struct Outputs<A> {
    /// Hidden states `[T, B, H]`.
    pub h: Array3<A>,
    /// The last cell state `[B, H]` (LSTM only).
    pub c_last: Option<Array2<A>>,
}

/// The outputs' buffers go to the crate's cache of host buffers.
impl<A> Drop for Outputs<A> {
    fn drop(&mut self) {
        cache::give_array(&mut self.h);
    }
}

/// Sequence forward for inference: [`forward`]'s hidden states and last cell state, the
/// same bits, without keeping what backward needs — the LSTM's and the tanh RNN's gates
/// and cell states live in per-thread scratch reused step to step (as PyTorch's forward
/// under `no_grad` keeps nothing). Other cells run [`forward`] and drop the rest.
pub fn forward_inference<A: Real>(
    p: &Params<A>,
    x: ArrayView3<A>,
    h0: Option<ArrayView2<A>>,
    c0: Option<ArrayView2<A>>,
) -> Result<Outputs<A>> {
    with_cell!(p.cell, C => {
        if C::FOLD && C::LATE.is_none() {
            check_input(p, &x)?;
            let (h0, c0) = initial_state::<C, A>(x.dim().1, p.hidden_size(), h0, c0)?;
            let k = forward_stacked::<C, A>(p, x, h0, c0, false)?;
            Ok(Outputs {
                h: k.h,
                c_last: k.c_last,
            })
        } else {
            let mut tr = forward_with::<C, A>(p, x, h0, c0)?;
            let c_last = tr.c_last().map(|c| c.to_owned());
            Ok(Outputs {
                h: std::mem::take(&mut tr.h),
                c_last,
            })
        }
    })
}

/// [`forward`] for the cell `C`: one GEMM projects the inputs of all `T·B` rows; each
/// step adds `h_{t-1}·W_hhᵀ` (into the projection when the cell folds, apart otherwise)
/// and runs the cell's elementwise forward row by row.
fn forward_with<C: CellDef, A: Real>(
    p: &Params<A>,
    x: ArrayView3<A>,
    h0: Option<ArrayView2<A>>,
    c0: Option<ArrayView2<A>>,
) -> Result<Trace<A>> {
    let (t, b) = check_input(p, &x)?;
    let hs = p.hidden_size();
    let gh = C::GATES * hs;
    let (h0, c0) = initial_state::<C, A>(b, hs, h0, c0)?;
    if C::FOLD && C::LATE.is_none() {
        let k = forward_stacked::<C, A>(p, x, h0.clone(), c0.clone(), true)?;
        return Ok(Trace {
            cell: p.cell,
            x: k.x.expect("kept"),
            h0,
            c0,
            h: k.h,
            c: k.c,
            gates: k.gates,
        });
    }
    let x = host::copy("x", &x)?;
    let x2 = x
        .view()
        .into_shape_with_order((t * b, p.input_size()))
        .expect("standard layout");

    // Input projection of all T·B rows at once into the first G·H columns of rows wide
    // enough for what the cell keeps: XW_ihᵀ + b_ih (+ b_hh when the cell folds).
    let width = gh.max(C::kept(hs));
    // In standard layout whatever the parameters' own (any layout is accepted).
    let bias = if C::FOLD { p.bias() } else { p.b_ih.clone() };
    let bias = bias.as_standard_layout();
    let rows = host::elems("x", &[t, b], 1)?;
    // Allocated untouched (zeros by the allocator); the product writes it, in parallel.
    let mut pre = host::zeros::<A, _, _>("x", (rows, width))?;
    A::gemm_bias(
        x2,
        p.w_ih.t(),
        bias.as_slice().expect("standard layout"),
        pre.slice_mut(s![.., ..gh]),
    );

    let mut h = host::zeros::<A, _, _>("x", (t, b, hs))?;
    let mut c = match &c0 {
        Some(_) => Some(host::zeros::<A, _, _>("x", (t, b, hs))?),
        None => None,
    };
    // Cells with a late gate: the rows of W_hh before it meet h_{t-1}, its own the gated
    // state ĥ the cell makes in between.
    let early = C::LATE.map_or(gh, |k| k * hs);
    // The recurrent weights prepared once for every step's product.
    let w_early = A::prepare(p.w_hh.slice(s![..early, ..]).t());
    let w_late = C::LATE.map(|_| A::prepare(p.w_hh.slice(s![early.., ..]).t()));
    // The batch rows are independent through time: each part of them runs every step
    // on its own thread (no synchronisation per step), with its own scratch: the
    // recurrent product for cells that keep it apart, the gated state for a late gate.
    let parts = batch_parts(b);
    let mut scratch = Vec::with_capacity(parts.len());
    for r in &parts {
        let hw = match C::FOLD {
            true => None,
            false => Some(host::tiled("x", r.len(), &p.b_hh)?),
        };
        let gated = match C::LATE {
            Some(_) => Some(host::zeros::<A, _, _>("x", (r.len(), hs))?),
            None => None,
        };
        scratch.push((hw, gated));
    }
    let sh = Shared {
        pre: Ptr(pre.as_mut_ptr()),
        h: Ptr(h.as_mut_ptr()),
        c: c.as_mut().map(|c| Ptr(c.as_mut_ptr())),
    };
    let run = |rows: std::ops::Range<usize>, scratch: (Option<Array2<A>>, Option<Array2<A>>)| {
        let (mut hw, mut gated) = scratch;
        let (r0, nb) = (rows.start, rows.len());
        for st in 0..t {
            // SAFETY: the parts' row ranges are disjoint, so rows r0..r0 + nb of step st
            // (contiguous in each [T, B, ·] array) are this thread's alone; the arrays
            // outlive the scope the threads run in.
            let g = unsafe { sh.pre.rows(st * b + r0, nb, width) };
            let (h_prev, h_t) = unsafe { sh.h_step(st, b, r0, nb, hs, &h0) };
            let (c_prev, c_t) = unsafe { sh.c_step(st, b, r0, nb, hs, c0.as_ref()) };
            let h_prev_v = ArrayView2::from_shape((nb, hs), h_prev).expect("[B, H]");
            match &mut hw {
                None => {
                    let mut gv = ArrayViewMut2::from_shape((nb, width), &mut *g).expect("[B, W]");
                    A::gemm_prepared(h_prev_v, &w_early, true, gv.slice_mut(s![.., ..early]));
                    if let Some(gated) = &mut gated {
                        for ((gated, g), h_prev) in gated
                            .rows_mut()
                            .into_iter()
                            .zip(gv.rows())
                            .zip(h_prev_v.rows())
                        {
                            let (g, h_prev) = (g.to_slice().expect("row"), h_prev.to_slice());
                            let gated = gated.into_slice().expect("row");
                            C::gate_state(&g[..early], h_prev.expect("row"), gated);
                        }
                        if let Some(w_late) = &w_late {
                            A::gemm_prepared(
                                gated.view(),
                                w_late,
                                true,
                                gv.slice_mut(s![.., early..gh]),
                            );
                        }
                    }
                }
                Some(hw) => {
                    for mut row in hw.rows_mut() {
                        row.assign(&p.b_hh);
                    }
                    A::gemm_prepared(h_prev_v, &w_early, true, hw.view_mut());
                }
            }
            fwd_rows::<C, A>(FwdRows {
                g,
                width,
                h_t,
                h_prev,
                hw: hw.as_ref().map_or(&[], data),
                gh,
                c_prev,
                c_t,
                hs,
            });
        }
    };
    in_parts(parts, scratch, &run);
    Ok(Trace {
        cell: p.cell,
        x,
        h0,
        c0,
        h,
        c,
        gates: trace_gates::<C, A>(pre, t, b, hs)?,
    })
}

/// [`forward_with`] for a cell whose recurrent product folds into the input
/// projection with nothing in between (no [`CellDef::LATE`] gate): each step's
/// pre-activations come from one product `[x_t h_{t-1}]·[W_ih W_hh]ᵀ + b_ih + b_hh`,
/// the weights stacked and prepared once, so that the batch parts run the whole
/// sequence, projection included, on their threads with no pass over all rows before
/// the steps and no synchronisation between them. With `keep` the whole trace is kept
/// (`x`, every gate and cell state); without, each part's gates and cell states live
/// in scratch reused step to step, and only `h` and the last cell state come back.
fn forward_stacked<C: CellDef, A: Real>(
    p: &Params<A>,
    x: ArrayView3<A>,
    h0: Array2<A>,
    c0: Option<Array2<A>>,
    keep: bool,
) -> Result<Stacked<A>> {
    let (t, b, is) = x.dim();
    let hs = p.hidden_size();
    let gh = C::GATES * hs;
    let width = gh.max(C::kept(hs));
    // The trace's copy of x, which the parts fill as they read it (any layout).
    let mut x_own = match keep {
        true => Some(host::zeros::<A, _, _>("x", (t, b, is))?),
        false => None,
    };
    let bias = p.bias();
    let bias = bias.as_standard_layout();
    let bias = bias.as_slice().expect("standard layout");
    let w = A::prepare_stacked(&[p.w_ih.t(), p.w_hh.t()]);
    // Allocated untouched (zeros by the allocator); each part writes its rows.
    let mut pre = match keep {
        true => Some(host::zeros::<A, _, _>("x", (t * b, width))?),
        false => None,
    };
    let mut h = host::zeros::<A, _, _>("x", (t, b, hs))?;
    let mut c = match (&c0, keep) {
        (Some(_), true) => Some(host::zeros::<A, _, _>("x", (t, b, hs))?),
        _ => None,
    };
    let mut c_last = match (&c0, keep) {
        (Some(_), false) => Some(host::zeros::<A, _, _>("x", (b, hs))?),
        _ => None,
    };
    let parts = batch_parts(b);
    // Each part's step operand [x_t h_{t-1}] `[rows, I + H]`; without `keep`, its gates
    // `[rows, W]` and two cell states `[rows, H]` taken in turn.
    let mut scratch = Vec::with_capacity(parts.len());
    for r in &parts {
        let xh = host::zeros::<A, _, _>("x", (r.len(), is + hs))?;
        let own = match keep {
            true => None,
            false => Some((
                host::zeros::<A, _, _>("x", (r.len(), width))?,
                host::zeros::<A, _, _>("x", (2, r.len() * hs))?,
            )),
        };
        scratch.push((xh, own));
    }
    let sh = Shared {
        pre: Ptr(pre
            .as_mut()
            .map_or(std::ptr::null_mut(), |a| a.as_mut_ptr())),
        h: Ptr(h.as_mut_ptr()),
        c: c.as_mut().map(|c| Ptr(c.as_mut_ptr())),
    };
    let xo = x_own.as_mut().map(|a| Ptr(a.as_mut_ptr()));
    let cl = c_last.as_mut().map(|a| Ptr(a.as_mut_ptr()));
    type Own<A> = Option<(Array2<A>, Array2<A>)>;
    let run = |rows: std::ops::Range<usize>, (mut xh, mut own): (Array2<A>, Own<A>)| {
        let (r0, nb) = (rows.start, rows.len());
        let nh = nb * hs;
        for st in 0..t {
            // SAFETY (every `rows` below): the parts' row ranges are disjoint, so rows
            // r0..r0 + nb of step st (contiguous in each [T, B, ·] array, and of the
            // [B, ·] ones) are this thread's alone; the arrays outlive the threads.
            let (h_prev, h_t) = unsafe { sh.h_step(st, b, r0, nb, hs, &h0) };
            let (g, c_prev, c_t): (&mut [A], &[A], &mut [A]) = match &mut own {
                None => {
                    let g = unsafe { sh.pre.rows(st * b + r0, nb, width) };
                    let (c_prev, c_t) = unsafe { sh.c_step(st, b, r0, nb, hs, c0.as_ref()) };
                    (g, c_prev, c_t)
                }
                Some((g, cs)) => {
                    let g = g.as_slice_mut().expect("standard layout");
                    let cs = cs.as_slice_mut().expect("standard layout");
                    // Step st writes slot st % 2 and reads the other (c0 at step 0).
                    let (a, bb) = cs.split_at_mut(nh);
                    let (c_t, c_other) = if st % 2 == 0 { (a, &*bb) } else { (bb, &*a) };
                    match &c0 {
                        Some(c0) => {
                            let c_prev = match st {
                                0 => &data(c0)[r0 * hs..r0 * hs + nh],
                                _ => c_other,
                            };
                            (g, c_prev, c_t)
                        }
                        None => (g, &[][..], &mut [][..]),
                    }
                }
            };
            let xh_rows = xh.as_slice_mut().expect("standard layout");
            match &xo {
                Some(xo) => {
                    // SAFETY: as above (x_own is [T, B, I]).
                    let x_t = unsafe { xo.rows(st * b + r0, nb, is) };
                    ArrayViewMut2::from_shape((nb, is), &mut *x_t)
                        .expect("[B, I]")
                        .assign(&x.slice(s![st, r0..r0 + nb, ..]));
                    let x_t = &*x_t;
                    // H ≥ 1 (checked), so every row has a width; I may be 0.
                    for (r, row) in xh_rows.chunks_mut(is + hs).enumerate() {
                        row[..is].copy_from_slice(&x_t[r * is..(r + 1) * is]);
                        row[is..].copy_from_slice(&h_prev[r * hs..(r + 1) * hs]);
                    }
                }
                None => {
                    let x_t = x.slice(s![st, r0..r0 + nb, ..]);
                    for ((row, x_r), r) in xh_rows.chunks_mut(is + hs).zip(x_t.rows()).zip(0..) {
                        for (o, v) in row[..is].iter_mut().zip(x_r.iter()) {
                            *o = *v;
                        }
                        row[is..].copy_from_slice(&h_prev[r * hs..(r + 1) * hs]);
                    }
                }
            }
            let mut gv = ArrayViewMut2::from_shape((nb, width), &mut *g).expect("[B, W]");
            A::gemm_prepared_bias(xh.view(), &w, bias, gv.slice_mut(s![.., ..gh]));
            fwd_rows::<C, A>(FwdRows {
                g,
                width,
                h_t,
                h_prev,
                hw: &[],
                gh,
                c_prev,
                c_t,
                hs,
            });
        }
        // Without `keep`: the last cell state into its rows of c_last.
        if let (Some((_, cs)), Some(cl)) = (&own, &cl) {
            let last = (t - 1) % 2;
            let cs = cs.as_slice().expect("standard layout");
            // SAFETY: as above (c_last is [B, H]).
            let out = unsafe { cl.rows(r0, nb, hs) };
            out.copy_from_slice(&cs[last * nh..(last + 1) * nh]);
        }
    };
    in_parts(parts, scratch, &run);
    let gates = match pre {
        Some(pre) => trace_gates::<C, A>(pre, t, b, hs)?,
        None => None,
    };
    Ok(Stacked {
        x: x_own,
        h,
        c,
        c_last,
        gates,
    })
}

/// What [`forward_stacked`] gives back: with `keep`, `x`, `c` and `gates` of the trace;
/// without, `h` and `c_last` alone.
struct Stacked<A> {
    x: Option<Array3<A>>,
    h: Array3<A>,
    c: Option<Array3<A>>,
    c_last: Option<Array2<A>>,
    gates: Option<Array3<A>>,
}

/// What a forward keeps for backward, from the rows `[T·B, W]` the steps filled.
fn trace_gates<C: CellDef, A: Real>(
    mut pre: Array2<A>,
    t: usize,
    b: usize,
    hs: usize,
) -> Result<Option<Array3<A>>> {
    let width = pre.ncols();
    let kept = match C::kept(hs) {
        0 => None,
        k if k == width => {
            return Ok(Some(
                pre.into_shape_with_order((t, b, width))
                    .expect("standard layout"),
            ))
        }
        k => Some(
            host::copy("x", &pre.slice(s![.., ..k]))?
                .into_shape_with_order((t, b, k))
                .expect("standard layout"),
        ),
    };
    // The rows the steps wrote, no longer needed: to the cache for the next call.
    cache::give_array(&mut pre);
    Ok(kept)
}

/// A raw pointer into an array whose disjoint row blocks threads fill (see [`Shared`]).
struct Ptr<A>(*mut A);

// SAFETY: used only for disjoint row blocks of arrays that outlive the threads (the
// engines' scoped threads or workers), each block touched by one thread; `Ptr::view`
// hands out shared `&A` to several threads at once, hence `Sync` as well as `Send`.
unsafe impl<A: Send + Sync> Send for Ptr<A> {}
// SAFETY: as above.
unsafe impl<A: Send + Sync> Sync for Ptr<A> {}

impl<A> Ptr<A> {
    /// Rows `row .. row + n` of `width` elements.
    ///
    /// # Safety
    /// The rows lie inside the array, and no other live reference touches them.
    #[allow(clippy::mut_from_ref)]
    unsafe fn rows(&self, row: usize, n: usize, width: usize) -> &mut [A] {
        // SAFETY: the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(row * width), n * width) }
    }

    /// The whole array as a view `[rows, width]`.
    ///
    /// # Safety
    /// The array holds `rows · width` elements, and no one writes them while the view
    /// lives.
    unsafe fn view<'a>(&self, rows: usize, width: usize) -> ArrayView2<'a, A> {
        // SAFETY: the caller's promise.
        unsafe { ArrayView2::from_shape_ptr((rows, width), self.0) }
    }

    /// Rows `lo .. hi` of `width` elements as a view.
    ///
    /// # Safety
    /// As [`Ptr::rows`].
    unsafe fn rows_view<'a>(&self, lo: usize, hi: usize, width: usize) -> ArrayViewMut2<'a, A> {
        // SAFETY: the caller's promise.
        unsafe { ArrayViewMut2::from_shape_ptr((hi - lo, width), self.0.add(lo * width)) }
    }
}

/// Waits at a barrier when dropped, unless it already did (`.1`).
struct Arrive<'a>(&'a std::sync::Barrier, bool);

impl Drop for Arrive<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.wait();
        }
    }
}

/// The arrays a forward's threads fill: the gates `[T, B, W]`, the hidden and cell
/// states `[T, B, H]`.
struct Shared<A> {
    pre: Ptr<A>,
    h: Ptr<A>,
    c: Option<Ptr<A>>,
}

impl<A> Shared<A> {
    /// A part's rows `r0 .. r0 + nb` of step `st` (of `b` rows) in the hidden states:
    /// `(h_{t-1}, h_t)`, `h_{t-1}` from `h0 [B, H]` at step 0.
    ///
    /// # Safety
    /// The part's rows are its thread's alone, and the arrays outlive the borrows.
    #[allow(clippy::mut_from_ref, clippy::too_many_arguments)]
    unsafe fn h_step<'a>(
        &'a self,
        st: usize,
        b: usize,
        r0: usize,
        nb: usize,
        hs: usize,
        h0: &'a Array2<A>,
    ) -> (&'a [A], &'a mut [A]) {
        let prev: &[A] = match st {
            0 => &data(h0)[r0 * hs..(r0 + nb) * hs],
            // SAFETY: the caller's promise.
            _ => unsafe { self.h.rows((st - 1) * b + r0, nb, hs) },
        };
        // SAFETY: the caller's promise.
        (prev, unsafe { self.h.rows(st * b + r0, nb, hs) })
    }

    /// As [`Shared::h_step`] for the cell states, `(c_{t-1}, c_t)` from `c0`; empty for a
    /// cell without them.
    ///
    /// # Safety
    /// As [`Shared::h_step`].
    #[allow(clippy::mut_from_ref, clippy::too_many_arguments)]
    unsafe fn c_step<'a>(
        &'a self,
        st: usize,
        b: usize,
        r0: usize,
        nb: usize,
        hs: usize,
        c0: Option<&'a Array2<A>>,
    ) -> (&'a [A], &'a mut [A]) {
        match (&self.c, c0) {
            (Some(cp), Some(c0)) => (
                match st {
                    0 => &data(c0)[r0 * hs..(r0 + nb) * hs],
                    // SAFETY: the caller's promise.
                    _ => unsafe { cp.rows((st - 1) * b + r0, nb, hs) },
                },
                // SAFETY: the caller's promise.
                unsafe { cp.rows(st * b + r0, nb, hs) },
            ),
            _ => (&[], &mut []),
        }
    }
}

/// Batch rows per thread at least (below this a part's per-step product is too small to
/// pay for a thread).
const ROWS_PER_THREAD: usize = 4;

#[cfg(test)]
thread_local! {
    /// Tests: the most parts a call on this thread cuts its batch into.
    static MAX_PARTS: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// The batch's rows cut into one contiguous part per thread.
fn batch_parts(b: usize) -> Vec<std::ops::Range<usize>> {
    let n = gemm::threads().min(b / ROWS_PER_THREAD).max(1);
    #[cfg(test)]
    let n = n.min(MAX_PARTS.with(|m| m.get())).max(1);
    let per = b.div_ceil(n);
    (0..n)
        .map(|k| k * per..((k + 1) * per).min(b))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Runs `run` over every part, each with its scratch: the first part on this thread,
/// the others on the workers (see [`workers`]), each part's products on its thread.
fn in_parts<S: Send>(
    parts: Vec<std::ops::Range<usize>>,
    scratch: Vec<S>,
    run: &(impl Fn(std::ops::Range<usize>, S) + Sync),
) {
    let work: Vec<_> = parts
        .into_iter()
        .zip(scratch)
        .map(|w| std::sync::Mutex::new(Some(w)))
        .collect();
    workers::run(work.len(), &|k| {
        let taken = work[k].lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((r, s)) = taken {
            run(r, s);
        }
    });
}

/// Calls `$rows::<C, A>($r)` (an `#[inline(always)]` function over the step's rows)
/// through a copy compiled for this processor's vector extensions — AVX-512, AVX2 + FMA,
/// or the baseline — so that the cell's gate loops vectorize at its width.
macro_rules! simd_rows {
    ($rows:ident, $args:ident, $r:expr) => {{
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
        fn avx512<C: CellDef, A: Real>(r: $args<'_, A>) {
            $rows::<C, A>(r)
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn avx2<C: CellDef, A: Real>(r: $args<'_, A>) {
            $rows::<C, A>(r)
        }
        match gemm::isa() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the processor has these features (detected).
            gemm::Isa::Avx512 => unsafe { avx512::<C, A>($r) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: likewise.
            gemm::Isa::Avx2 => unsafe { avx2::<C, A>($r) },
            _ => $rows::<C, A>($r),
        }
    }};
}

/// One step's batch rows for the cell's elementwise forward: the gates `g` (rows of
/// `width`), the states, the recurrent product `hw` (rows of `gh`; empty when it folds).
struct FwdRows<'a, A> {
    g: &'a mut [A],
    width: usize,
    h_t: &'a mut [A],
    h_prev: &'a [A],
    hw: &'a [A],
    gh: usize,
    c_prev: &'a [A],
    c_t: &'a mut [A],
    hs: usize,
}

/// One step's batch rows for the cell's elementwise backward.
struct BwdRows<'a, A> {
    dg: &'a mut [A],
    gh: usize,
    kept: &'a [A],
    kw: usize,
    h_t: &'a [A],
    h_prev: &'a [A],
    c_t: &'a [A],
    c_prev: &'a [A],
    up: &'a [A],
    dc: &'a mut [A],
    dgh: &'a mut [A],
    direct: &'a mut [A],
    hs: usize,
}

/// Runs the cell's elementwise forward over one step's rows, compiled for this
/// processor's vector extensions.
fn fwd_rows<C: CellDef, A: Real>(r: FwdRows<'_, A>) {
    #[inline(always)]
    fn rows<C: CellDef, A: Real>(r: FwdRows<'_, A>) {
        let hs = r.hs;
        let batch_rows =
            r.g.chunks_mut(r.width.max(1))
                .zip(r.h_t.chunks_mut(hs.max(1)))
                .zip(r.h_prev.chunks(hs.max(1)))
                .zip(row_slices(r.hw, r.gh))
                .zip(row_slices(r.c_prev, hs))
                .zip(row_slices_mut(r.c_t, hs));
        for (((((g, h), h_prev), hw), c_prev), c) in batch_rows {
            C::forward_row(RowFwd {
                g,
                hw,
                h_prev,
                c_prev,
                c,
                h,
            });
        }
    }
    simd_rows!(rows, FwdRows, r)
}

/// Runs the cell's elementwise backward over one step's rows, compiled for this
/// processor's vector extensions.
fn bwd_rows<C: CellDef, A: Real>(r: BwdRows<'_, A>) {
    #[inline(always)]
    fn rows<C: CellDef, A: Real>(r: BwdRows<'_, A>) {
        let hs = r.hs;
        let batch_rows =
            r.dg.chunks_mut(r.gh.max(1))
                .zip(row_slices(r.kept, r.kw))
                .zip(r.h_t.chunks(hs.max(1)))
                .zip(r.h_prev.chunks(hs.max(1)))
                .zip(row_slices(r.c_t, hs).zip(row_slices(r.c_prev, hs)))
                .zip(r.up.chunks(hs.max(1)))
                .zip(row_slices_mut(r.dc, hs))
                .zip(row_slices_mut(r.dgh, r.gh).zip(row_slices_mut(r.direct, hs)));
        for (((((((dg, kept), h), h_prev), (c, c_prev)), dh), dc), (dgh, direct)) in batch_rows {
            C::backward_row(RowBwd {
                kept,
                h,
                h_prev,
                c,
                c_prev,
                dh,
                dc,
                dg,
                dgh,
                direct,
            });
        }
    }
    simd_rows!(rows, BwdRows, r)
}

/// Sequence backward by true backpropagation through time.
///
/// `dh [T, B, H]` is the upstream gradient of every hidden state; `dc_last [B, H]` an
/// optional gradient on the final cell state (cells with a cell state). Returns the gradients of the
/// inputs, the initial state and every parameter.
pub fn backward<A: Real>(
    p: &Params<A>,
    trace: &Trace<A>,
    dh: ArrayView3<A>,
    dc_last: Option<ArrayView2<A>>,
) -> Result<Grads<A>> {
    with_cell!(p.cell, C => backward_with::<C, A>(p, trace, dh, dc_last))
}

/// [`backward`] for the cell `C`: walks `t = T-1 … 0` with the cell's elementwise
/// backward row by row and one GEMM for the recurrent carry, then gets every weight
/// gradient and `dX` from GEMMs over all rows.
fn backward_with<C: CellDef, A: Real>(
    p: &Params<A>,
    trace: &Trace<A>,
    dh: ArrayView3<A>,
    dc_last: Option<ArrayView2<A>>,
) -> Result<Grads<A>> {
    check_trace::<C, A>(p, trace)?;
    let (t, b) = (trace.steps(), trace.batch());
    let (hs, is) = (p.hidden_size(), p.input_size());
    let gh = C::GATES * hs;
    check_shape("dh", "[T, B, H]", &[t, b, hs], dh.shape())?;
    let mut dc = cell_state::<C, A>("dc_last", "trace", b, hs, dc_last)?;

    // The loops walk rows as slices: the trace's arrays in standard layout (no copy when
    // they already are, as every trace made by `forward` is).
    let kept = match C::kept(hs) {
        0 => None,
        _ => trace.gates.as_ref().map(|g| g.as_standard_layout()),
    };
    let c = trace.c.as_ref().map(|c| c.as_standard_layout());
    let c0 = trace.c0.as_ref().map(|c| c.as_standard_layout());
    let h = trace.h.as_standard_layout();
    let h0 = trace.h0.as_standard_layout();
    let std = "standard layout";
    let kw = kept.as_ref().map_or(0, |k| k.len_of(Axis(2)));
    let mut dg = host::zeros::<A, _, _>("trace", (t, b, gh))?;
    let mut dgh = if C::FOLD {
        None
    } else {
        Some(host::zeros::<A, _, _>("trace", (t, b, gh))?)
    };
    // Cells with a late gate: its gradient meets the gated state ĥ, made again here.
    let early = C::LATE.map_or(gh, |k| k * hs);
    let mut gated = match C::LATE {
        Some(_) => Some(host::zeros::<A, _, _>("trace", (t, b, hs))?),
        None => None,
    };
    // The part of ∂L/∂h_{t-1} that does not pass through W_hh, where the cell has one.
    let has_direct = !C::FOLD || C::LATE.is_some();
    // The recurrent weights prepared once for every step's products: dG_t·W_hh (the rows
    // before a late gate) and the late gate's m = dG_late·W_hh[late rows].
    let w_early = A::prepare(p.w_hh.slice(s![..early, ..]));
    let w_late = C::LATE.map(|_| A::prepare(p.w_hh.slice(s![early.., ..])));
    let h_all = h.as_slice().expect(std);
    let h0_all = h0.as_slice().expect(std);
    let c_all = c.as_ref().map(|c| c.as_slice().expect(std));
    let c0_all = c0.as_ref().map(|c| c.as_slice().expect(std));
    let kept_all = kept.as_ref().map(|k| k.as_slice().expect(std));
    let dh = dh.as_standard_layout();
    let dh_all = dh.as_slice().expect(std);
    let mut dh0 = host::zeros::<A, _, _>("trace", (b, hs))?;
    // The batch rows are independent through time: each part runs every step on its own
    // thread, with its own carry, as the forward does.
    let parts = batch_parts(b);
    let mut scratch = Vec::with_capacity(parts.len());
    for r in &parts {
        let z = |w| host::zeros::<A, _, _>("trace", (r.len(), w));
        // The part's index; carry, next, upstream, m.
        scratch.push((
            scratch.len(),
            [
                z(hs)?,
                z(hs)?,
                z(hs)?,
                z(if C::LATE.is_some() { hs } else { 0 })?,
            ],
        ));
    }
    let out = Shared {
        pre: Ptr(dg.as_mut_ptr()),
        h: Ptr(dh0.as_mut_ptr()),
        c: dc.as_mut().map(|d| Ptr(d.as_mut_ptr())),
    };
    let (dgh_p, gated_p) = (
        dgh.as_mut().map(|d| Ptr(d.as_mut_ptr())),
        gated.as_mut().map(|d| Ptr(d.as_mut_ptr())),
    );
    // After the steps, the parts share the products over all rows: dW_ih = dGᵀ·X,
    // dW_hh = dRᵀ·[h0; h] (and a late gate's dG_lateᵀ·Ĥ), dX = dG·W_ih, each part
    // preparing some of their right operands, then (all dG written: a barrier) taking
    // chunks of the products' rows in turn. Each element comes from one product over
    // all of K, as on one thread.
    let nparts = parts.len();
    let rows_all = t * b;
    let (mut dw_ih, mut dw_hh, mut dx) = (
        host::zeros::<A, _, _>("trace", (gh, is))?,
        host::zeros::<A, _, _>("trace", (gh, hs))?,
        host::zeros::<A, _, _>("trace", (rows_all, is))?,
    );
    let wout = (
        Ptr(dw_ih.as_mut_ptr()),
        Ptr(dw_hh.as_mut_ptr()),
        Ptr(dx.as_mut_ptr()),
    );
    let x = trace.x.as_standard_layout();
    let x2 = x
        .view()
        .into_shape_with_order((rows_all, is))
        .expect("standard");
    let h_prev = h
        .slice(s![..t - 1, .., ..])
        .into_shape_with_order(((t - 1) * b, hs))
        .expect("standard");
    // X, [h0; h], W_ih (made before the barrier: the steps write none of them); Ĥ (a
    // late gate's, after it).
    let operands: [std::sync::OnceLock<A::Prepared>; 3] = Default::default();
    let prepare = |j: usize| match j {
        0 => Some(A::prepare(x2)),
        1 => Some(A::prepare_stacked(&[h0.view(), h_prev])),
        2 => Some(A::prepare(p.w_ih.view())),
        // SAFETY: called after the barrier: the steps, which wrote ĥ, are done.
        _ => gated_p
            .as_ref()
            .map(|g| A::prepare(unsafe { g.view(rows_all, hs) })),
    };
    // Every part must start for the barrier to open: the workers start them all; on
    // `workers::run`'s scoped fallback a thread the system refuses to create panics the
    // spawn, and the parts already running wait here for ever. (Parts on other threads
    // also run with the default FPU flags: a caller's FTZ/DAZ do not carry over.)
    let barrier = std::sync::Barrier::new(nparts);
    // Rows per chunk of the products after the barrier (whole blocks of a transposed
    // A's packing): dW_ih's, dW_hh's before a late gate, dX's.
    const CHUNK: usize = 64;
    let chunks = [
        gh.div_ceil(CHUNK),
        early.div_ceil(CHUNK),
        rows_all.div_ceil(CHUNK),
    ];
    let next_chunk = std::sync::atomic::AtomicUsize::new(0);
    let run = |rows: std::ops::Range<usize>, (part, scratch): (usize, [Array2<A>; 4])| {
        // Reaches the barrier however this part ends (a panic must not leave the other
        // parts waiting for it).
        let mut arrive = Arrive(&barrier, false);
        let [mut carry, mut next, mut upstream, mut m] = scratch;
        let (r0, nb) = (rows.start, rows.len());
        let nh = nb * hs;
        let at = |st: usize| (st * b + r0) * hs;
        // SAFETY (every `rows` below): the parts' row ranges are disjoint, so rows
        // r0..r0 + nb of a step (contiguous in each [T, B, ·] array, and of dh0 and dc
        // [B, H]) are this thread's alone; the arrays outlive the scope.
        let dc_rows: &mut [A] = match &out.c {
            Some(d) => unsafe { d.rows(r0, nb, hs) },
            None => &mut [],
        };
        for st in (0..t).rev() {
            // The gradient reaching h_t: upstream plus the carry.
            let up = upstream.as_slice_mut().expect(std);
            for ((u, &d), &k) in up
                .iter_mut()
                .zip(&dh_all[at(st)..at(st) + nh])
                .zip(carry.as_slice().expect(std))
            {
                *u = d + k;
            }
            let h_t = &h_all[at(st)..at(st) + nh];
            let h_prev = match st {
                0 => &h0_all[r0 * hs..r0 * hs + nh],
                _ => &h_all[at(st - 1)..at(st - 1) + nh],
            };
            let kept_t: &[A] =
                kept_all.map_or(&[], |k| &k[(st * b + r0) * kw..(st * b + r0 + nb) * kw]);
            let (c_t, c_prev): (&[A], &[A]) = match (c_all, c0_all) {
                (Some(c), Some(c0)) => (
                    &c[at(st)..at(st) + nh],
                    match st {
                        0 => &c0[r0 * hs..r0 * hs + nh],
                        _ => &c[at(st - 1)..at(st - 1) + nh],
                    },
                ),
                _ => (&[], &[]),
            };
            let dg_t = unsafe { out.pre.rows(st * b + r0, nb, gh) };
            let dgh_t: &mut [A] = match &dgh_p {
                Some(d) => unsafe { d.rows(st * b + r0, nb, gh) },
                None => &mut [],
            };
            let direct: &mut [A] = if !has_direct {
                &mut []
            } else {
                // Zeroed for the cell, which adds its direct part to ∂L/∂h_{t-1} here.
                next.fill(A::zero());
                next.as_slice_mut().expect(std)
            };
            bwd_rows::<C, A>(BwdRows {
                dg: &mut *dg_t,
                gh,
                kept: kept_t,
                kw,
                h_t,
                h_prev,
                c_t,
                c_prev,
                up: upstream.as_slice().expect(std),
                dc: &mut *dc_rows,
                dgh: &mut *dgh_t,
                direct,
                hs,
            });
            // A late gate: m = ∂L/∂ĥ through its rows of W_hh, then the gradients of
            // the gates that made ĥ.
            if let (Some(gp), Some(w)) = (&gated_p, &w_late) {
                {
                    let dg_v = ArrayView2::from_shape((nb, gh), &*dg_t).expect("[B, G·H]");
                    A::gemm_prepared(dg_v.slice(s![.., early..gh]), w, false, m.view_mut());
                }
                let gated_t = unsafe { gp.rows(st * b + r0, nb, hs) };
                let direct = next.as_slice_mut().expect(std);
                let late_rows = dg_t
                    .chunks_mut(gh.max(1))
                    .zip(row_slices(kept_t, kw))
                    .zip(h_prev.chunks(hs.max(1)))
                    .zip(m.as_slice().expect(std).chunks(hs.max(1)))
                    .zip(
                        direct
                            .chunks_mut(hs.max(1))
                            .zip(gated_t.chunks_mut(hs.max(1))),
                    );
                for ((((dg, kept), h_prev), m), (direct, gated)) in late_rows {
                    C::backward_late(LateBwd {
                        kept,
                        h_prev,
                        m,
                        dg,
                        direct,
                        gated,
                    });
                }
            }
            // The carry to h_{t-1}: dG_t·W_hh (the recurrent side's; the rows before a
            // late gate), plus the cell's direct part where it has one.
            let src: &[A] = if dgh_p.is_some() { dgh_t } else { dg_t };
            let src = ArrayView2::from_shape((nb, gh), src).expect("[B, G·H]");
            if has_direct {
                A::gemm_prepared(src.slice(s![.., ..early]), &w_early, true, next.view_mut());
                std::mem::swap(&mut carry, &mut next);
            } else {
                A::gemm_prepared(src, &w_early, false, carry.view_mut());
            }
        }
        unsafe { out.h.rows(r0, nb, hs) }.copy_from_slice(carry.as_slice().expect(std));
        for (j, slot) in operands.iter().enumerate().skip(part).step_by(nparts) {
            if let Some(op) = prepare(j) {
                let _ = slot.set(op);
            }
        }
        arrive.1 = true;
        barrier.wait();
        // SAFETY (the views below): every part's steps are done (the barrier), so dG,
        // dR and Ĥ are written and no one writes them any more.
        let dg2 = unsafe { out.pre.view(rows_all, gh) };
        let dr2 = dgh_p
            .as_ref()
            .map_or(dg2, |d| unsafe { d.view(rows_all, gh) });
        let got = |j: usize| operands[j].get().expect("prepared before the barrier");
        // A late gate's rows meet Ĥ, which the steps wrote: one part prepares it now
        // and makes them all.
        if part == 3 % nparts {
            if let Some(op) = prepare(3) {
                // SAFETY: rows early .. gh of dW_hh are this part's alone (the chunks
                // below cover rows before early).
                A::gemm_prepared(dr2.slice(s![.., early..]).t(), &op, false, unsafe {
                    wout.1.rows_view(early, gh, hs)
                });
            }
        }
        // The rest in chunks of rows taken in turn by whichever part is free (a part
        // the system holds back leaves its share to the others).
        loop {
            let task = next_chunk.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (j, lo) = match task {
                k if k < chunks[0] => (0, k * CHUNK),
                k if k < chunks[0] + chunks[1] => (1, (k - chunks[0]) * CHUNK),
                k if k < chunks[0] + chunks[1] + chunks[2] => {
                    (2, (k - chunks[0] - chunks[1]) * CHUNK)
                }
                _ => break,
            };
            // SAFETY (the outputs' rows): each chunk is one task's, taken once; the
            // outputs outlive the scope.
            match j {
                0 => {
                    let hi = (lo + CHUNK).min(gh);
                    A::gemm_prepared(dg2.slice(s![.., lo..hi]).t(), got(0), false, unsafe {
                        wout.0.rows_view(lo, hi, is)
                    });
                }
                1 => {
                    let hi = (lo + CHUNK).min(early);
                    A::gemm_prepared(dr2.slice(s![.., lo..hi]).t(), got(1), false, unsafe {
                        wout.1.rows_view(lo, hi, hs)
                    });
                }
                _ => {
                    let hi = (lo + CHUNK).min(rows_all);
                    A::gemm_prepared(dg2.slice(s![lo..hi, ..]), got(2), false, unsafe {
                        wout.2.rows_view(lo, hi, is)
                    });
                }
            }
        }
    };
    in_parts(parts, scratch, &run);

    let dg2 = as_rows(&dg, rows_all, gh);
    let dr2 = dgh
        .as_ref()
        .map_or(dg2.view(), |d| as_rows(d, rows_all, gh));
    let db_ih = dg2.sum_axis(Axis(0));
    let db_hh = match &dgh {
        None => db_ih.clone(),
        Some(_) => dr2.sum_axis(Axis(0)),
    };
    // The temporaries over all rows go to the cache for the next call.
    cache::give_array(&mut dg);
    cache::give_opt(&mut dgh);
    cache::give_opt(&mut gated);
    Ok(Grads {
        dx: dx.into_shape_with_order((t, b, is)).expect("standard"),
        dh0,
        dc0: dc,
        dw_ih,
        dw_hh,
        db_ih,
        db_hh,
    })
}

/// Checks that a trace belongs to parameters of this kind and size.
fn check_trace<C: CellDef, A: Real>(p: &Params<A>, tr: &Trace<A>) -> Result<()> {
    p.check()?;
    if tr.cell != p.cell {
        return Err(Error::Invalid {
            arg: "trace",
            msg: format!(
                "made by a {} cell, the parameters are for a {} cell",
                tr.cell.name(),
                p.cell.name()
            ),
        });
    }
    let (t, b, hs) = tr.h.dim();
    if t == 0 || b == 0 || hs != p.hidden_size() {
        return Err(Error::Shape {
            arg: "trace.h",
            expected: format!("[T, B, H] with T ≥ 1, B ≥ 1, H = {}", p.hidden_size()),
            got: crate::error::fmt_shape(tr.h.shape()),
        });
    }
    check_shape(
        "trace.x",
        "[T, B, I]",
        &[t, b, p.input_size()],
        tr.x.shape(),
    )?;
    check_shape("trace.h0", "[B, H]", &[b, hs], tr.h0.shape())?;
    let missing = || Error::Invalid {
        arg: "trace",
        msg: format!(
            "a {} trace needs {}",
            C::NAME,
            if C::HAS_C { "c0, c and gates" } else { "gates" }
        ),
    };
    if !C::HAS_C && (tr.c0.is_some() || tr.c.is_some()) {
        return Err(Error::Invalid {
            arg: "trace",
            msg: format!("a {} has no cell state: c0 and c must be None", C::NAME),
        });
    }
    if C::HAS_C {
        let (Some(c0), Some(c)) = (&tr.c0, &tr.c) else {
            return Err(missing());
        };
        check_shape("trace.c0", "[B, H]", &[b, hs], c0.shape())?;
        check_shape("trace.c", "[T, B, H]", &[t, b, hs], c.shape())?;
    }
    let k = C::kept(hs);
    if k > 0 {
        let Some(g) = &tr.gates else {
            return Err(missing());
        };
        check_shape("trace.gates", "[T, B, kept]", &[t, b, k], g.shape())?;
    }
    Ok(())
}

/// One cell step: `x_t [B, I]` from `h_prev [B, H]` (and `c_prev [B, H]` for the LSTM).
pub fn step_forward<A: Real>(
    p: &Params<A>,
    x_t: ArrayView2<A>,
    h_prev: ArrayView2<A>,
    c_prev: Option<ArrayView2<A>>,
) -> Result<StepOut<A>> {
    if p.cell.has_cell_state() && c_prev.is_none() {
        return Err(Error::Invalid {
            arg: "c_prev",
            msg: format!("a {} step needs the previous cell state", p.cell.name()),
        });
    }
    let mut tr = forward(p, x_t.insert_axis(Axis(0)), Some(h_prev), c_prev)
        .map_err(|e| e.renamed(&[("x", "x_t"), ("h0", "h_prev"), ("c0", "c_prev")]))?;
    Ok(StepOut {
        h: std::mem::take(&mut tr.h).index_axis_move(Axis(0), 0),
        c: tr.c.take().map(|c| c.index_axis_move(Axis(0), 0)),
        gates: tr.gates.take().map(|g| g.index_axis_move(Axis(0), 0)),
    })
}

/// One cell step backward: the gradients of a step made by [`step_forward`] from the
/// same `x_t`, `h_prev`, `c_prev`, given `dh [B, H]` on its output (upstream plus any
/// recurrent carry) and, for the LSTM, `dc [B, H]` on its cell state.
pub fn step_backward<A: Real>(
    p: &Params<A>,
    x_t: ArrayView2<A>,
    h_prev: ArrayView2<A>,
    c_prev: Option<ArrayView2<A>>,
    out: &StepOut<A>,
    dh: ArrayView2<A>,
    dc: Option<ArrayView2<A>>,
) -> Result<StepGrads<A>> {
    if p.cell.has_cell_state() && c_prev.is_none() {
        return Err(Error::Invalid {
            arg: "c_prev",
            msg: format!("a {} step needs the previous cell state", p.cell.name()),
        });
    }
    let trace = Trace {
        cell: p.cell,
        x: host::copy("x_t", &x_t.insert_axis(Axis(0)))?,
        h0: host::copy("h_prev", &h_prev)?,
        c0: c_prev.map(|c| host::copy("c_prev", &c)).transpose()?,
        h: out.h.clone().insert_axis(Axis(0)),
        c: out.c.clone().map(|c| c.insert_axis(Axis(0))),
        gates: out.gates.clone().map(|g| g.insert_axis(Axis(0))),
    };
    let g = backward(p, &trace, dh.insert_axis(Axis(0)), dc).map_err(|e| {
        e.renamed(&[
            ("trace.x", "x_t"),
            ("trace.h0", "h_prev"),
            ("trace.c0", "c_prev"),
            ("dc_last", "dc"),
        ])
    })?;
    let mut g = g;
    Ok(StepGrads {
        dx: std::mem::take(&mut g.dx).index_axis_move(Axis(0), 0),
        dh_prev: std::mem::take(&mut g.dh0),
        dc_prev: g.dc0.take(),
        dw_ih: std::mem::take(&mut g.dw_ih),
        dw_hh: std::mem::take(&mut g.dw_hh),
        db: std::mem::take(&mut g.db_ih),
        db_hh: std::mem::take(&mut g.db_hh),
    })
}

#[cfg(test)]
mod tests {
    use ndarray::Array3;

    use crate::{Cell, Params, SplitMix64};

    /// Forward and backward cut into parts (the processor's threads: the steps, and the
    /// products after them in chunks taken in turn) give bit for bit what one part
    /// gives, for every cell, at sizes with partial tiles and chunks.
    #[test]
    fn parts_equal_one_part() {
        let (t, b, i, h) = (5, 37, 9, 70);
        for cell in Cell::ALL {
            let p = Params::<f32>::init(cell, i, h, 7).unwrap();
            let mut rng = SplitMix64(11);
            let x = Array3::from_shape_simple_fn((t, b, i), || rng.next_f64() as f32 - 0.5);
            let dh = Array3::from_shape_simple_fn((t, b, h), || rng.next_f64() as f32 - 0.5);
            let run = |max: usize| {
                super::MAX_PARTS.with(|m| m.set(max));
                let tr = super::forward(&p, x.view(), None, None).unwrap();
                let g = super::backward(&p, &tr, dh.view(), None).unwrap();
                super::MAX_PARTS.with(|m| m.set(usize::MAX));
                (tr, g)
            };
            let (tr1, g1) = run(1);
            let (tr, g) = run(usize::MAX);
            assert_eq!(tr, tr1, "{cell:?} trace");
            assert_eq!(g, g1, "{cell:?} gradients");
        }
    }
}
