//! The course notebook's eight functions, in its own layout and with its caches, built on
//! the CPU path ([`crate::cpu`]), and the lecture's GRU in the same style
//! ([`gru_cell_forward`], [`gru_forward`], [`gru_cell_backward`], [`gru_backward`]).
//!
//! Layout: feature-major with time last, `x (n_x, m, T)`, `a (n_a, m, T)`, column vectors
//! for biases `(n, 1)`. The LSTM weights act on `[a_prev; x_t]` (hidden rows first).
//! [`lstm_backward`] is true backpropagation through time, not the notebook's published
//! code, which drops both recurrent carries.

mod gru;
pub mod rnn_utils;
mod shared;

pub use gru::*;

use std::sync::Arc;

use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, Axis};

use crate::error::{check_shape, Error, Result};
use crate::params::{Head, Params};
use crate::real::Real;
use shared::{
    cell_backward, cell_forward, pack_gates, seq_backward, seq_forward, t2, NbCell, NbGrads,
    SeqForward, StateNames, Step,
};

/// The notebook's tanh RNN parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct RnnParameters<A> {
    /// `(n_a, n_x)`.
    pub wax: Array2<A>,
    /// `(n_a, n_a)`.
    pub waa: Array2<A>,
    /// `(n_y, n_a)`.
    pub wya: Array2<A>,
    /// `(n_a, 1)`.
    pub ba: Array2<A>,
    /// `(n_y, 1)`.
    pub by: Array2<A>,
}

/// The notebook's LSTM parameters; each `W` is `(n_a, n_a + n_x)` acting on `[a; x]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmParameters<A> {
    /// Forget gate weights.
    pub wf: Array2<A>,
    /// Forget gate bias `(n_a, 1)`.
    pub bf: Array2<A>,
    /// Update (input) gate weights.
    pub wi: Array2<A>,
    /// Update gate bias.
    pub bi: Array2<A>,
    /// Candidate weights.
    pub wc: Array2<A>,
    /// Candidate bias.
    pub bc: Array2<A>,
    /// Output gate weights.
    pub wo: Array2<A>,
    /// Output gate bias.
    pub bo: Array2<A>,
    /// Prediction weights `(n_y, n_a)`.
    pub wy: Array2<A>,
    /// Prediction bias `(n_y, 1)`.
    pub by: Array2<A>,
}

/// The prediction head `softmax(wy a + by)` of a notebook cell with `n_a` units; `wy_arg`
/// names `wy` as the notebook does (`parameters["Wya"]`, `parameters["Wy"]`).
fn head_of<A: Real>(
    wy: &Array2<A>,
    by: &Array2<A>,
    n_a: usize,
    wy_arg: &'static str,
) -> Result<Head<A>> {
    check_shape(wy_arg, "(n_y, n_a)", &[wy.nrows(), n_a], wy.shape())?;
    Head::from_notebook(wy.view(), by.view()).map_err(|e| {
        e.renamed(&[
            ("Wy", wy_arg),
            ("w_y", wy_arg),
            ("by", r#"parameters["by"]"#),
            ("b_y", r#"parameters["by"]"#),
        ])
    })
}

/// One step's cache of [`rnn_cell_forward`]: `(a_next, a_prev, xt, parameters)`.
#[derive(Debug, Clone)]
pub struct RnnCache<A> {
    /// `(n_a, m)`.
    pub a_next: Array2<A>,
    /// `(n_a, m)`.
    pub a_prev: Array2<A>,
    /// `(n_x, m)`.
    pub xt: Array2<A>,
    /// The parameters, shared by every step.
    pub parameters: Arc<RnnParameters<A>>,
}

/// The caches of [`rnn_forward`]: one per step, and `x`.
#[derive(Debug, Clone)]
pub struct RnnCaches<A> {
    /// One cache per step.
    pub caches: Vec<RnnCache<A>>,
    /// The input `(n_x, m, T)`.
    pub x: Array3<A>,
}

/// One step's cache of [`lstm_cell_forward`]:
/// `(a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)`.
#[derive(Debug, Clone)]
pub struct LstmCache<A> {
    /// `(n_a, m)`.
    pub a_next: Array2<A>,
    /// `(n_a, m)`.
    pub c_next: Array2<A>,
    /// `(n_a, m)`.
    pub a_prev: Array2<A>,
    /// `(n_a, m)`.
    pub c_prev: Array2<A>,
    /// Forget gate `(n_a, m)`.
    pub ft: Array2<A>,
    /// Update gate `(n_a, m)`.
    pub it: Array2<A>,
    /// Candidate `(n_a, m)`.
    pub cct: Array2<A>,
    /// Output gate `(n_a, m)`.
    pub ot: Array2<A>,
    /// `(n_x, m)`.
    pub xt: Array2<A>,
    /// The parameters, shared by every step.
    pub parameters: Arc<LstmParameters<A>>,
}

/// The caches of [`lstm_forward`]: one per step, and `x`.
#[derive(Debug, Clone)]
pub struct LstmCaches<A> {
    /// One cache per step.
    pub caches: Vec<LstmCache<A>>,
    /// The input `(n_x, m, T)`.
    pub x: Array3<A>,
}

/// Gradients of [`rnn_cell_backward`] (`dba` is `(n_a, 1)`).
#[derive(Debug, Clone, PartialEq)]
pub struct RnnCellGradients<A> {
    /// `(n_x, m)`.
    pub dxt: Array2<A>,
    /// `(n_a, m)`.
    pub da_prev: Array2<A>,
    /// `(n_a, n_x)`.
    pub dwax: Array2<A>,
    /// `(n_a, n_a)`.
    pub dwaa: Array2<A>,
    /// `(n_a, 1)`.
    pub dba: Array2<A>,
}

/// Gradients of [`rnn_backward`].
#[derive(Debug, Clone, PartialEq)]
pub struct RnnGradients<A> {
    /// `(n_x, m, T)`.
    pub dx: Array3<A>,
    /// `(n_a, m)`.
    pub da0: Array2<A>,
    /// `(n_a, n_x)`.
    pub dwax: Array2<A>,
    /// `(n_a, n_a)`.
    pub dwaa: Array2<A>,
    /// `(n_a, 1)`.
    pub dba: Array2<A>,
}

/// The weight and bias gradients of the four LSTM gates, in the notebook's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmWeightGradients<A> {
    /// `(n_a, n_a + n_x)`.
    pub dwf: Array2<A>,
    /// `(n_a, n_a + n_x)`.
    pub dwi: Array2<A>,
    /// `(n_a, n_a + n_x)`.
    pub dwc: Array2<A>,
    /// `(n_a, n_a + n_x)`.
    pub dwo: Array2<A>,
    /// `(n_a, 1)`.
    pub dbf: Array2<A>,
    /// `(n_a, 1)`.
    pub dbi: Array2<A>,
    /// `(n_a, 1)`.
    pub dbc: Array2<A>,
    /// `(n_a, 1)`.
    pub dbo: Array2<A>,
}

/// Gradients of [`lstm_cell_backward`].
#[derive(Debug, Clone, PartialEq)]
pub struct LstmCellGradients<A> {
    /// `(n_x, m)`.
    pub dxt: Array2<A>,
    /// `(n_a, m)`.
    pub da_prev: Array2<A>,
    /// `(n_a, m)`.
    pub dc_prev: Array2<A>,
    /// Weight and bias gradients.
    pub w: LstmWeightGradients<A>,
}

/// Gradients of [`lstm_backward`].
#[derive(Debug, Clone, PartialEq)]
pub struct LstmGradients<A> {
    /// `(n_x, m, T)`.
    pub dx: Array3<A>,
    /// `(n_a, m)`.
    pub da0: Array2<A>,
    /// `(n_a, m)`: the gradient reaching `c0` (the notebook does not return it).
    pub dc0: Array2<A>,
    /// Weight and bias gradients.
    pub w: LstmWeightGradients<A>,
}

/// What [`lstm_cell_forward`] returns: `(a_next, c_next, yt_pred, cache)`.
pub type LstmCellForward<A> = (Array2<A>, Array2<A>, Array2<A>, LstmCache<A>);

/// What [`lstm_forward`] returns: `(a, y, c, caches)`.
pub type LstmForward<A> = (Array3<A>, Array3<A>, Array3<A>, LstmCaches<A>);

/// An LSTM result without its cell state: cannot happen for parameters made by
/// `Params::lstm_from_notebook`; an error rather than a panic all the same.
fn lstm_only() -> Error {
    Error::Invalid {
        arg: "parameters",
        msg: "the LSTM path returned no cell state".into(),
    }
}

/// The notebook's names of the RNN's and the LSTM's states `a`.
const A_NAMES: StateNames = StateNames {
    prev: "a_prev",
    init: "a0",
    d_next: "da_next",
    d_all: "da",
};

/// The tanh RNN: states `a`, nothing kept but the states.
impl<A: Real> NbCell<A> for RnnParameters<A> {
    type Cache = RnnCache<A>;
    const NAMES: StateNames = A_NAMES;

    fn cell(&self) -> Result<Params<A>> {
        Params::rnn_from_notebook(self.wax.view(), self.waa.view(), self.ba.view()).map_err(|e| {
            e.renamed(&[
                ("Wax", r#"parameters["Wax"]"#),
                ("w_ih", r#"parameters["Wax"]"#),
                ("Waa", r#"parameters["Waa"]"#),
                ("w_hh", r#"parameters["Waa"]"#),
                ("ba", r#"parameters["ba"]"#),
            ])
        })
    }
    fn head(&self) -> Result<Head<A>> {
        head_of(
            &self.wya,
            &self.by,
            self.waa.nrows(),
            r#"parameters["Wya"]"#,
        )
    }
    fn cache(
        step: Step<Array2<A>>,
        _kept: Option<ArrayView2<A>>,
        _arg: &'static str,
        parameters: Arc<Self>,
    ) -> Result<RnnCache<A>> {
        Ok(RnnCache {
            a_next: step.h_next,
            a_prev: step.h_prev,
            xt: step.xt,
            parameters,
        })
    }
    fn step(c: &RnnCache<A>) -> Step<ArrayView2<'_, A>> {
        Step {
            h_next: c.a_next.view(),
            h_prev: c.a_prev.view(),
            c_next: None,
            c_prev: None,
            xt: c.xt.view(),
        }
    }
    fn parameters(c: &RnnCache<A>) -> &Self {
        &c.parameters
    }
    fn kept(_: &RnnCache<A>, _: &'static str) -> Result<Option<Array2<A>>> {
        Ok(None)
    }
}

/// The LSTM: states `a`, cell states `c`, the gates i, f, g, o kept (in the cache as
/// `it`, `ft`, `cct`, `ot`).
impl<A: Real> NbCell<A> for LstmParameters<A> {
    type Cache = LstmCache<A>;
    const NAMES: StateNames = A_NAMES;

    fn cell(&self) -> Result<Params<A>> {
        Params::lstm_from_notebook(
            self.wf.view(),
            self.bf.view(),
            self.wi.view(),
            self.bi.view(),
            self.wc.view(),
            self.bc.view(),
            self.wo.view(),
            self.bo.view(),
        )
        .map_err(|e| {
            e.renamed(&[
                ("Wf", r#"parameters["Wf"]"#),
                ("w_ih", r#"parameters["Wf"]"#),
                ("w_hh", r#"parameters["Wf"]"#),
                ("Wi", r#"parameters["Wi"]"#),
                ("Wc", r#"parameters["Wc"]"#),
                ("Wo", r#"parameters["Wo"]"#),
                ("bf", r#"parameters["bf"]"#),
                ("bi", r#"parameters["bi"]"#),
                ("bc", r#"parameters["bc"]"#),
                ("bo", r#"parameters["bo"]"#),
            ])
        })
    }
    fn head(&self) -> Result<Head<A>> {
        head_of(&self.wy, &self.by, self.wf.nrows(), r#"parameters["Wy"]"#)
    }
    fn cache(
        step: Step<Array2<A>>,
        kept: Option<ArrayView2<A>>,
        arg: &'static str,
        parameters: Arc<Self>,
    ) -> Result<LstmCache<A>> {
        let (Some(c_next), Some(c_prev), Some(g)) = (step.c_next, step.c_prev, kept) else {
            return Err(lstm_only());
        };
        let hs = step.h_next.nrows();
        let gate = |k: usize| t2(arg, g.slice(s![.., k * hs..(k + 1) * hs]));
        Ok(LstmCache {
            a_next: step.h_next,
            c_next,
            a_prev: step.h_prev,
            c_prev,
            ft: gate(1)?,
            it: gate(0)?,
            cct: gate(2)?,
            ot: gate(3)?,
            xt: step.xt,
            parameters,
        })
    }
    fn step(c: &LstmCache<A>) -> Step<ArrayView2<'_, A>> {
        Step {
            h_next: c.a_next.view(),
            h_prev: c.a_prev.view(),
            c_next: Some(c.c_next.view()),
            c_prev: Some(c.c_prev.view()),
            xt: c.xt.view(),
        }
    }
    fn parameters(c: &LstmCache<A>) -> &Self {
        &c.parameters
    }
    /// The cached gates in PyTorch's order i, f, g, o: `[m, 4·n_a]`.
    fn kept(c: &LstmCache<A>, arg: &'static str) -> Result<Option<Array2<A>>> {
        let gates = [c.it.view(), c.ft.view(), c.cct.view(), c.ot.view()];
        pack_gates(arg, "it, ft, cct, ot", &gates).map(Some)
    }
}

/// One tanh RNN step: `a_next = tanh(Wax xt + Waa a_prev + ba)`,
/// `yt_pred = softmax(Wya a_next + by)`. Returns `(a_next, yt_pred, cache)`.
pub fn rnn_cell_forward<A: Real>(
    xt: ArrayView2<A>,
    a_prev: ArrayView2<A>,
    parameters: &RnnParameters<A>,
) -> Result<(Array2<A>, Array2<A>, RnnCache<A>)> {
    let (a_next, _, yt, cache) = cell_forward(xt, a_prev, None, parameters)?;
    Ok((a_next, yt, cache))
}

/// The tanh RNN over `x (n_x, m, T)` from `a0 (n_a, m)`. Returns `(a, y_pred, caches)`
/// with `a (n_a, m, T)` and `y_pred (n_y, m, T)`.
pub fn rnn_forward<A: Real>(
    x: ArrayView3<A>,
    a0: ArrayView2<A>,
    parameters: &RnnParameters<A>,
) -> Result<(Array3<A>, Array3<A>, RnnCaches<A>)> {
    let SeqForward {
        h: a, y, caches, x, ..
    } = seq_forward(x, a0, None, parameters)?;
    Ok((a, y, RnnCaches { caches, x }))
}

/// One LSTM step. Returns `(a_next, c_next, yt_pred, cache)`.
pub fn lstm_cell_forward<A: Real>(
    xt: ArrayView2<A>,
    a_prev: ArrayView2<A>,
    c_prev: ArrayView2<A>,
    parameters: &LstmParameters<A>,
) -> Result<LstmCellForward<A>> {
    let (a_next, c_next, yt, cache) = cell_forward(xt, a_prev, Some(c_prev), parameters)?;
    Ok((a_next, c_next.ok_or_else(lstm_only)?, yt, cache))
}

/// The LSTM over `x (n_x, m, T)` from `a0 (n_a, m)` and `c0 = 0`, as the notebook has
/// it. Returns `(a, y, c, caches)` with `a, c (n_a, m, T)` and `y (n_y, m, T)`.
pub fn lstm_forward<A: Real>(
    x: ArrayView3<A>,
    a0: ArrayView2<A>,
    parameters: &LstmParameters<A>,
) -> Result<LstmForward<A>> {
    lstm_forward_from(x, a0, None, parameters)
}

/// [`lstm_forward`] from a given initial cell state `c0 (n_a, m)` too.
pub fn lstm_forward_c0<A: Real>(
    x: ArrayView3<A>,
    a0: ArrayView2<A>,
    c0: ArrayView2<A>,
    parameters: &LstmParameters<A>,
) -> Result<LstmForward<A>> {
    lstm_forward_from(x, a0, Some(c0), parameters)
}

/// [`lstm_forward`] from `c0`, zeros when `None`.
fn lstm_forward_from<A: Real>(
    x: ArrayView3<A>,
    a0: ArrayView2<A>,
    c0: Option<ArrayView2<A>>,
    parameters: &LstmParameters<A>,
) -> Result<LstmForward<A>> {
    let SeqForward {
        h: a,
        y,
        c,
        caches,
        x,
    } = seq_forward(x, a0, c0, parameters)?;
    Ok((a, y, c.ok_or_else(lstm_only)?, LstmCaches { caches, x }))
}

/// Backward of one tanh RNN step, given `da_next (n_a, m)`, the gradient on its output.
pub fn rnn_cell_backward<A: Real>(
    da_next: ArrayView2<A>,
    cache: &RnnCache<A>,
) -> Result<RnnCellGradients<A>> {
    let g = cell_backward::<A, RnnParameters<A>>(da_next, None, cache)?;
    let (dxt, da_prev, dwax, dwaa, dba) = g.into_rnn();
    Ok(RnnCellGradients {
        dxt,
        da_prev,
        dwax,
        dwaa,
        dba,
    })
}

/// True BPTT for the tanh RNN, from `da (n_a, m, T)`, the upstream gradient of every
/// hidden state. `T` is taken from `da`: it covers the first `T` cached steps.
pub fn rnn_backward<A: Real>(da: ArrayView3<A>, caches: &RnnCaches<A>) -> Result<RnnGradients<A>> {
    let g = seq_backward::<A, RnnParameters<A>>(da, None, &caches.caches, &caches.x)?;
    let (dx, da0, dwax, dwaa, dba) = g.into_rnn();
    Ok(RnnGradients {
        dx,
        da0,
        dwax,
        dwaa,
        dba,
    })
}

/// Gate block `k` of packed `dw_ih [G·H, I]`, `dw_hh [G·H, H]`, `db [G·H]` as the
/// notebook's `dW (n_a, n_a + n_x)` on `[a; x]` and `db (n_a, 1)`, negated where the
/// notebook's gate is the negation of the library's (the lecture GRU's update gate).
fn gate_grads<A: Real, D>(g: &NbGrads<A, D>, k: usize, negate: bool) -> (Array2<A>, Array2<A>) {
    let hs = g.dw_hh.ncols();
    let sign = if negate { -A::one() } else { A::one() };
    let rows = s![k * hs..(k + 1) * hs, ..];
    let w = ndarray::concatenate![Axis(1), g.dw_hh.slice(rows), g.dw_ih.slice(rows)];
    let b =
        g.db.slice(s![k * hs..(k + 1) * hs])
            .to_owned()
            .insert_axis(Axis(1));
    (w.mapv(|v| sign * v), b.mapv(|v| sign * v))
}

/// Splits packed LSTM gradients into the notebook's per-gate ones.
fn split_lstm<A: Real, D>(g: &NbGrads<A, D>) -> LstmWeightGradients<A> {
    let [(dwi, dbi), (dwf, dbf), (dwc, dbc), (dwo, dbo)] =
        [0, 1, 2, 3].map(|k| gate_grads(g, k, false));
    LstmWeightGradients {
        dwi,
        dwf,
        dwc,
        dwo,
        dbi,
        dbf,
        dbc,
        dbo,
    }
}

/// Backward of one LSTM step, given `da_next` and `dc_next (n_a, m)`.
pub fn lstm_cell_backward<A: Real>(
    da_next: ArrayView2<A>,
    dc_next: ArrayView2<A>,
    cache: &LstmCache<A>,
) -> Result<LstmCellGradients<A>> {
    let g = cell_backward::<A, LstmParameters<A>>(da_next, Some(dc_next), cache)?;
    let w = split_lstm(&g);
    Ok(LstmCellGradients {
        dxt: g.dx,
        da_prev: g.dh,
        dc_prev: g.dc.ok_or_else(lstm_only)?,
        w,
    })
}

/// True BPTT for the LSTM from `da (n_a, m, T)` (and zero gradient on the last cell
/// state). `T` is taken from `da`: it covers the first `T` cached steps.
pub fn lstm_backward<A: Real>(
    da: ArrayView3<A>,
    caches: &LstmCaches<A>,
) -> Result<LstmGradients<A>> {
    lstm_backward_from(da, None, caches)
}

/// [`lstm_backward`] with a gradient `dc (n_a, m)` on the cell state of the last step
/// `da` covers too.
pub fn lstm_backward_dc<A: Real>(
    da: ArrayView3<A>,
    dc: ArrayView2<A>,
    caches: &LstmCaches<A>,
) -> Result<LstmGradients<A>> {
    lstm_backward_from(da, Some(dc), caches)
}

/// [`lstm_backward`] with `dc` on the last cell state, zero when `None`.
fn lstm_backward_from<A: Real>(
    da: ArrayView3<A>,
    dc: Option<ArrayView2<A>>,
    caches: &LstmCaches<A>,
) -> Result<LstmGradients<A>> {
    let g = seq_backward::<A, LstmParameters<A>>(da, dc, &caches.caches, &caches.x)?;
    let w = split_lstm(&g);
    Ok(LstmGradients {
        dx: g.dx,
        da0: g.dh,
        dc0: g.dc.ok_or_else(lstm_only)?,
        w,
    })
}
