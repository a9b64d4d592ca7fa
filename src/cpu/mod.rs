//! The CPU reference path: the oracle every GPU kernel is checked against, and a usable
//! fallback. Generic over `f32` and `f64`; sequences are time-major `[T, B, F]`.
//!
//! The structure mirrors the GPU plan: one GEMM projects the inputs of all `T·B` rows,
//! then one fused step per time step (recurrent GEMM into the projection, activations and
//! state update in one loop); backward walks `t = T-1 … 0` computing the gate gradients
//! `dG`, then gets every weight gradient and `dX` from three GEMMs over all rows.
//! Nothing is allocated per element or per step beyond the outputs.

mod head;
mod lstm;
mod rnn;

pub use head::{head_forward, softmax_last_axis};

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array1, Array2, Array3, ArrayView2, ArrayView3, Axis};

use crate::error::{check_shape, Error, Result};
use crate::host;
use crate::params::{Cell, Params};
use crate::real::Real;

/// What a forward pass keeps: the inputs, every hidden (and cell) state, and the
/// activated gates that backward needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace<A> {
    /// The cell kind that produced the trace.
    pub cell: Cell,
    /// The input sequence `[T, B, I]`.
    pub x: Array3<A>,
    /// The initial hidden state `[B, H]`.
    pub h0: Array2<A>,
    /// The initial cell state `[B, H]` (LSTM only).
    pub c0: Option<Array2<A>>,
    /// Every hidden state `[T, B, H]`; `h[t]` is the state after consuming `x[t]`.
    pub h: Array3<A>,
    /// Every cell state `[T, B, H]` (LSTM only).
    pub c: Option<Array3<A>>,
    /// The activated gates `[T, B, 4·H]` in the order i, f, g, o (LSTM only; the tanh
    /// RNN's backward needs only `h`).
    pub gates: Option<Array3<A>>,
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
#[derive(Debug, Clone, PartialEq)]
pub struct Grads<A> {
    /// Input gradient `[T, B, I]`.
    pub dx: Array3<A>,
    /// Gradient of the initial hidden state `[B, H]`.
    pub dh0: Array2<A>,
    /// Gradient of the initial cell state `[B, H]` (LSTM only).
    pub dc0: Option<Array2<A>>,
    /// `[G·H, I]`.
    pub dw_ih: Array2<A>,
    /// `[G·H, H]`.
    pub dw_hh: Array2<A>,
    /// `[G·H]`.
    pub db_ih: Array1<A>,
    /// `[G·H]` (equal to `db_ih`: both biases enter the same sum).
    pub db_hh: Array1<A>,
}

/// The result of one cell step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOut<A> {
    /// The new hidden state `[B, H]`.
    pub h: Array2<A>,
    /// The new cell state `[B, H]` (LSTM only).
    pub c: Option<Array2<A>>,
    /// The activated gates `[B, 4·H]`, order i, f, g, o (LSTM only).
    pub gates: Option<Array2<A>>,
}

/// Gradients of one cell step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepGrads<A> {
    /// `[B, I]`.
    pub dx: Array2<A>,
    /// Gradient of the previous hidden state `[B, H]`.
    pub dh_prev: Array2<A>,
    /// Gradient of the previous cell state `[B, H]` (LSTM only).
    pub dc_prev: Option<Array2<A>>,
    /// `[G·H, I]`.
    pub dw_ih: Array2<A>,
    /// `[G·H, H]`.
    pub dw_hh: Array2<A>,
    /// `[G·H]`.
    pub db: Array1<A>,
}

/// Checks the optional initial state of a cell of kind `cell`, returning owned zeros when
/// absent.
fn initial_state<A: Real>(
    cell: Cell,
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
    let c0 = match (cell, c0) {
        (Cell::Rnn, Some(_)) => {
            return Err(Error::Invalid {
                arg: "c0",
                msg: "a tanh RNN has no cell state: pass None".into(),
            })
        }
        (Cell::Rnn, None) => None,
        (Cell::Lstm, Some(v)) => {
            check_shape("c0", "[B, H]", &[b, h], v.shape())?;
            Some(host::copy("c0", &v)?)
        }
        (Cell::Lstm, None) => Some(host::zeros("x", (b, h))?),
    };
    Ok((h0, c0))
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

/// Sequence forward: runs the cell over `x [T, B, I]` from `h0` (and `c0`), zeros when
/// `None`, and returns the [`Trace`] with every state.
pub fn forward<A: Real>(
    p: &Params<A>,
    x: ArrayView3<A>,
    h0: Option<ArrayView2<A>>,
    c0: Option<ArrayView2<A>>,
) -> Result<Trace<A>> {
    let (t, b) = check_input(p, &x)?;
    let hs = p.hidden_size();
    let gh = p.cell.gates() * hs;
    let (h0, c0) = initial_state(p.cell, b, hs, h0, c0)?;
    let x = host::copy("x", &x)?;
    let x2 = x
        .view()
        .into_shape_with_order((t * b, p.input_size()))
        .expect("standard layout");

    // Input projection of all T·B rows at once: pre = X·W_ihᵀ + b_ih + b_hh.
    let bias = p.bias();
    let rows = host::elems("x", &[t, b], 1)?;
    let mut pre = host::tiled("x", rows, &bias)?;
    general_mat_mul(A::one(), &x2, &p.w_ih.t(), A::one(), &mut pre);
    let mut pre = pre
        .into_shape_with_order((t, b, gh))
        .expect("standard layout");

    let mut h = host::zeros::<A, _, _>("x", (t, b, hs))?;
    let mut c = match &c0 {
        Some(_) => Some(host::zeros::<A, _, _>("x", (t, b, hs))?),
        None => None,
    };
    for s in 0..t {
        let (before, mut after) = h.view_mut().split_at(Axis(0), s);
        let prev_slot;
        let h_prev = if s == 0 {
            h0.view()
        } else {
            prev_slot = before.index_axis_move(Axis(0), s - 1);
            prev_slot.view()
        };
        let mut g = pre.index_axis_mut(Axis(0), s);
        general_mat_mul(A::one(), &h_prev, &p.w_hh.t(), A::one(), &mut g);
        let h_t = after.index_axis_mut(Axis(0), 0);
        match (&mut c, &c0) {
            (Some(c), Some(c0)) => {
                let (cb, mut ca) = c.view_mut().split_at(Axis(0), s);
                let c_slot;
                let c_prev = if s == 0 {
                    c0.view()
                } else {
                    c_slot = cb.index_axis_move(Axis(0), s - 1);
                    c_slot.view()
                };
                lstm::step_forward(g, c_prev, ca.index_axis_mut(Axis(0), 0), h_t);
            }
            _ => rnn::step_forward(g.view(), h_t),
        }
    }
    let gates = match p.cell {
        Cell::Lstm => Some(pre),
        Cell::Rnn => None,
    };
    Ok(Trace {
        cell: p.cell,
        x,
        h0,
        c0,
        h,
        c,
        gates,
    })
}

/// Sequence backward by true backpropagation through time.
///
/// `dh [T, B, H]` is the upstream gradient of every hidden state; `dc_last [B, H]` an
/// optional gradient on the final cell state (LSTM only). Returns the gradients of the
/// inputs, the initial state and every parameter.
pub fn backward<A: Real>(
    p: &Params<A>,
    trace: &Trace<A>,
    dh: ArrayView3<A>,
    dc_last: Option<ArrayView2<A>>,
) -> Result<Grads<A>> {
    check_trace(p, trace)?;
    let (t, b) = (trace.steps(), trace.batch());
    let (hs, is) = (p.hidden_size(), p.input_size());
    let gh = p.cell.gates() * hs;
    check_shape("dh", "[T, B, H]", &[t, b, hs], dh.shape())?;
    let mut dc = match (p.cell, dc_last) {
        (Cell::Rnn, Some(_)) => {
            return Err(Error::Invalid {
                arg: "dc_last",
                msg: "a tanh RNN has no cell state: pass None".into(),
            })
        }
        (Cell::Rnn, None) => None,
        (Cell::Lstm, Some(v)) => {
            check_shape("dc_last", "[B, H]", &[b, hs], v.shape())?;
            Some(host::copy("dc_last", &v)?)
        }
        (Cell::Lstm, None) => Some(host::zeros("trace", (b, hs))?),
    };

    // The fused loops walk rows as slices: make sure the trace is in standard layout
    // (no copy when it already is, as every trace made by `forward` is).
    let gates = trace.gates.as_ref().map(|g| g.as_standard_layout());
    let c = trace.c.as_ref().map(|c| c.as_standard_layout());
    let c0 = trace.c0.as_ref().map(|c| c.as_standard_layout());
    let mut dg = host::zeros::<A, _, _>("trace", (t, b, gh))?;
    let mut carry = host::zeros::<A, _, _>("trace", (b, hs))?;
    for s in (0..t).rev() {
        let dh_t = dh.index_axis(Axis(0), s);
        let mut dg_t = dg.index_axis_mut(Axis(0), s);
        match (&mut dc, &gates, &c, &c0) {
            (Some(dc), Some(gates), Some(c), Some(c0)) => {
                let c_prev = if s == 0 {
                    c0.view()
                } else {
                    c.index_axis(Axis(0), s - 1)
                };
                lstm::step_backward(
                    gates.index_axis(Axis(0), s),
                    c.index_axis(Axis(0), s),
                    c_prev,
                    dh_t,
                    carry.view(),
                    dc.view_mut(),
                    dg_t.view_mut(),
                );
            }
            _ => rnn::step_backward(
                trace.h.index_axis(Axis(0), s),
                dh_t,
                carry.view(),
                dg_t.view_mut(),
            ),
        }
        // carry = dG_t · W_hh, the gradient reaching h_{t-1}.
        general_mat_mul(A::one(), &dg_t, &p.w_hh, A::zero(), &mut carry);
    }

    let rows = t * b;
    let dg2 = dg
        .view()
        .into_shape_with_order((rows, gh))
        .expect("standard");
    let x = trace.x.as_standard_layout();
    let x2 = x
        .view()
        .into_shape_with_order((rows, is))
        .expect("standard");
    let mut dw_ih = Array2::<A>::zeros((gh, is));
    general_mat_mul(A::one(), &dg2.t(), &x2, A::zero(), &mut dw_ih);
    // dW_hh = Σ_t dG_tᵀ·h_{t-1}: h0 for t = 0, then h[0 .. T-1].
    let mut dw_hh = Array2::<A>::zeros((gh, hs));
    general_mat_mul(
        A::one(),
        &dg.index_axis(Axis(0), 0).t(),
        &trace.h0,
        A::zero(),
        &mut dw_hh,
    );
    if t > 1 {
        let dg_rest = dg2.slice(s![b.., ..]);
        let h = trace.h.as_standard_layout();
        let h_prev = h
            .slice(s![..t - 1, .., ..])
            .into_shape_with_order(((t - 1) * b, hs))
            .expect("standard");
        general_mat_mul(A::one(), &dg_rest.t(), &h_prev, A::one(), &mut dw_hh);
    }
    let mut dx = host::zeros::<A, _, _>("trace", (rows, is))?;
    general_mat_mul(A::one(), &dg2, &p.w_ih, A::zero(), &mut dx);
    let db = dg2.sum_axis(Axis(0));
    Ok(Grads {
        dx: dx.into_shape_with_order((t, b, is)).expect("standard"),
        dh0: carry,
        dc0: dc,
        dw_ih,
        dw_hh,
        db_ih: db.clone(),
        db_hh: db,
    })
}

/// Checks that a trace belongs to parameters of this kind and size.
fn check_trace<A: Real>(p: &Params<A>, tr: &Trace<A>) -> Result<()> {
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
    let ok = match p.cell {
        Cell::Rnn => true,
        Cell::Lstm => match (&tr.c0, &tr.c, &tr.gates) {
            (Some(c0), Some(c), Some(g)) => {
                check_shape("trace.c0", "[B, H]", &[b, hs], c0.shape())?;
                check_shape("trace.c", "[T, B, H]", &[t, b, hs], c.shape())?;
                check_shape("trace.gates", "[T, B, 4·H]", &[t, b, 4 * hs], g.shape())?;
                true
            }
            _ => false,
        },
    };
    if !ok {
        return Err(Error::Invalid {
            arg: "trace",
            msg: "an LSTM trace needs c0, c and gates".into(),
        });
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
    if p.cell == Cell::Lstm && c_prev.is_none() {
        return Err(Error::Invalid {
            arg: "c_prev",
            msg: "an LSTM step needs the previous cell state".into(),
        });
    }
    let tr = forward(p, x_t.insert_axis(Axis(0)), Some(h_prev), c_prev)
        .map_err(|e| e.renamed(&[("x", "x_t"), ("h0", "h_prev"), ("c0", "c_prev")]))?;
    Ok(StepOut {
        h: tr.h.index_axis_move(Axis(0), 0),
        c: tr.c.map(|c| c.index_axis_move(Axis(0), 0)),
        gates: tr.gates.map(|g| g.index_axis_move(Axis(0), 0)),
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
    if p.cell == Cell::Lstm && c_prev.is_none() {
        return Err(Error::Invalid {
            arg: "c_prev",
            msg: "an LSTM step needs the previous cell state".into(),
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
    Ok(StepGrads {
        dx: g.dx.index_axis_move(Axis(0), 0),
        dh_prev: g.dh0,
        dc_prev: g.dc0,
        dw_ih: g.dw_ih,
        dw_hh: g.dw_hh,
        db: g.db_ih,
    })
}
