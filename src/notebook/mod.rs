//! The course notebook's eight functions, in its own layout and with its caches, built on
//! the CPU path ([`crate::cpu`]), and the lecture's GRU in the same style
//! ([`gru_cell_forward`], [`gru_forward`], [`gru_cell_backward`], [`gru_backward`]).
//!
//! Layout: feature-major with time last, `x (n_x, m, T)`, `a (n_a, m, T)`, column vectors
//! for biases `(n, 1)`. The LSTM weights act on `[a_prev; x_t]` (hidden rows first).
//! [`lstm_backward`] is true backpropagation through time, not the notebook's published
//! code, which drops both recurrent carries.

mod gru;

pub use gru::*;

use std::sync::Arc;

use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, Axis};

use crate::cpu::{self, StepOut, Trace};
use crate::error::{check_shape, fmt_shape, Error, Result};
use crate::host;
use crate::params::{Cell, Head, Params};
use crate::real::Real;

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

impl<A: Real> RnnParameters<A> {
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
}

impl<A: Real> LstmParameters<A> {
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

/// The library's names of a cell step's arguments → the notebook's.
fn cell_names(e: Error) -> Error {
    e.renamed(&[("x_t", "xt"), ("h_prev", "a_prev")])
}

/// `(n, m)` → `[m, n]` in standard layout.
/// `arg` names the argument whose size it is, for a failed allocation.
fn t2<A: Real>(arg: &'static str, a: ArrayView2<A>) -> Result<Array2<A>> {
    host::copy(arg, &a.t())
}

/// `(F, m, T)` ↔ `[T, m, F]` in standard layout.
fn t3<A: Real>(arg: &'static str, a: ArrayView3<A>) -> Result<Array3<A>> {
    host::copy(arg, &a.permuted_axes([2, 1, 0]))
}

/// Checks a notebook-layout argument `(rows, m[, T])`.
fn check_nb(arg: &'static str, what: &str, expected: &[usize], got: &[usize]) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::Shape {
            arg,
            expected: format!(
                "{what} = {}",
                fmt_shape(expected).replace('[', "(").replace(']', ")")
            ),
            got: fmt_shape(got).replace('[', "(").replace(']', ")"),
        })
    }
}

/// The head over one step `(n_a, m)` → `(n_y, m)`.
fn predict<A: Real>(head: &Head<A>, a: ArrayView2<A>) -> Result<Array2<A>> {
    let y = cpu::head_forward(head, a.t().insert_axis(Axis(0)))?;
    t2("a_next", y.index_axis(Axis(0), 0))
}

/// One tanh RNN step: `a_next = tanh(Wax xt + Waa a_prev + ba)`,
/// `yt_pred = softmax(Wya a_next + by)`. Returns `(a_next, yt_pred, cache)`.
pub fn rnn_cell_forward<A: Real>(
    xt: ArrayView2<A>,
    a_prev: ArrayView2<A>,
    parameters: &RnnParameters<A>,
) -> Result<(Array2<A>, Array2<A>, RnnCache<A>)> {
    let p = parameters.cell()?;
    let head = parameters.head()?;
    let m = xt.ncols();
    check_nb("xt", "(n_x, m)", &[p.input_size(), m], xt.shape())?;
    check_nb("a_prev", "(n_a, m)", &[p.hidden_size(), m], a_prev.shape())?;
    let out = cpu::step_forward(&p, t2("xt", xt)?.view(), t2("a_prev", a_prev)?.view(), None)
        .map_err(cell_names)?;
    let a_next = t2("xt", out.h.view())?;
    let yt = predict(&head, a_next.view())?;
    let cache = RnnCache {
        a_next: a_next.clone(),
        a_prev: host::copy("a_prev", &a_prev)?,
        xt: host::copy("xt", &xt)?,
        parameters: Arc::new(parameters.clone()),
    };
    Ok((a_next, yt, cache))
}

/// The tanh RNN over `x (n_x, m, T)` from `a0 (n_a, m)`. Returns `(a, y_pred, caches)`
/// with `a (n_a, m, T)` and `y_pred (n_y, m, T)`.
pub fn rnn_forward<A: Real>(
    x: ArrayView3<A>,
    a0: ArrayView2<A>,
    parameters: &RnnParameters<A>,
) -> Result<(Array3<A>, Array3<A>, RnnCaches<A>)> {
    let p = parameters.cell()?;
    let head = parameters.head()?;
    let (_, m, t) = x.dim();
    check_nb(
        "x",
        "(n_x, m, T)",
        &[p.input_size(), m, t.max(1)],
        x.shape(),
    )?;
    check_nb("a0", "(n_a, m)", &[p.hidden_size(), m], a0.shape())?;
    let tr = cpu::forward(&p, t3("x", x)?.view(), Some(t2("a0", a0)?.view()), None)
        .map_err(|e| e.renamed(&[("h0", "a0")]))?;
    let y = cpu::head_forward(&head, tr.h.view())?;
    let a = t3("x", tr.h.view())?;
    let shared = Arc::new(parameters.clone());
    let caches = (0..t)
        .map(|s| {
            Ok(RnnCache {
                a_next: host::copy("x", &a.slice(s![.., .., s]))?,
                a_prev: if s == 0 {
                    host::copy("a0", &a0)?
                } else {
                    host::copy("x", &a.slice(s![.., .., s - 1]))?
                },
                xt: host::copy("x", &x.slice(s![.., .., s]))?,
                parameters: shared.clone(),
            })
        })
        .collect::<Result<_>>()?;
    let caches = RnnCaches {
        caches,
        x: host::copy("x", &x)?,
    };
    Ok((a, t3("x", y.view())?, caches))
}

/// One LSTM step. Returns `(a_next, c_next, yt_pred, cache)`.
pub fn lstm_cell_forward<A: Real>(
    xt: ArrayView2<A>,
    a_prev: ArrayView2<A>,
    c_prev: ArrayView2<A>,
    parameters: &LstmParameters<A>,
) -> Result<LstmCellForward<A>> {
    let p = parameters.cell()?;
    let head = parameters.head()?;
    let (hs, m) = (p.hidden_size(), xt.ncols());
    check_nb("xt", "(n_x, m)", &[p.input_size(), m], xt.shape())?;
    check_nb("a_prev", "(n_a, m)", &[hs, m], a_prev.shape())?;
    check_nb("c_prev", "(n_a, m)", &[hs, m], c_prev.shape())?;
    let out = cpu::step_forward(
        &p,
        t2("xt", xt)?.view(),
        t2("a_prev", a_prev)?.view(),
        Some(t2("c_prev", c_prev)?.view()),
    )
    .map_err(cell_names)?;
    let a_next = t2("xt", out.h.view())?;
    let (Some(c), Some(g)) = (&out.c, &out.gates) else {
        return Err(lstm_only());
    };
    let c_next = t2("xt", c.view())?;
    let yt = predict(&head, a_next.view())?;
    let gate = |k: usize| t2("xt", g.slice(s![.., k * hs..(k + 1) * hs]));
    let cache = LstmCache {
        a_next: a_next.clone(),
        c_next: c_next.clone(),
        a_prev: host::copy("a_prev", &a_prev)?,
        c_prev: host::copy("c_prev", &c_prev)?,
        ft: gate(1)?,
        it: gate(0)?,
        cct: gate(2)?,
        ot: gate(3)?,
        xt: host::copy("xt", &xt)?,
        parameters: Arc::new(parameters.clone()),
    };
    Ok((a_next, c_next, yt, cache))
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

fn lstm_forward_from<A: Real>(
    x: ArrayView3<A>,
    a0: ArrayView2<A>,
    c0: Option<ArrayView2<A>>,
    parameters: &LstmParameters<A>,
) -> Result<LstmForward<A>> {
    let p = parameters.cell()?;
    let head = parameters.head()?;
    let (_, m, t) = x.dim();
    let hs = p.hidden_size();
    check_nb(
        "x",
        "(n_x, m, T)",
        &[p.input_size(), m, t.max(1)],
        x.shape(),
    )?;
    check_nb("a0", "(n_a, m)", &[hs, m], a0.shape())?;
    if let Some(c0) = &c0 {
        check_nb("c0", "(n_a, m)", &[hs, m], c0.shape())?;
    }
    let c0 = match c0 {
        Some(c0) => t2("c0", c0)?,
        None => host::zeros("a0", (m, hs))?,
    };
    let tr = cpu::forward(
        &p,
        t3("x", x)?.view(),
        Some(t2("a0", a0)?.view()),
        Some(c0.view()),
    )
    .map_err(|e| e.renamed(&[("h0", "a0")]))?;
    let y = cpu::head_forward(&head, tr.h.view())?;
    let a = t3("x", tr.h.view())?;
    let (Some(c), Some(gates)) = (&tr.c, &tr.gates) else {
        return Err(lstm_only());
    };
    let c = t3("x", c.view())?;
    let shared = Arc::new(parameters.clone());
    let caches = (0..t)
        .map(|s| {
            let gate = |k: usize| t2("x", gates.slice(s![s, .., k * hs..(k + 1) * hs]));
            let prev = |arr: &Array3<A>, init: Result<Array2<A>>| {
                if s == 0 {
                    init
                } else {
                    host::copy("x", &arr.slice(s![.., .., s - 1]))
                }
            };
            Ok(LstmCache {
                a_next: host::copy("x", &a.slice(s![.., .., s]))?,
                c_next: host::copy("x", &c.slice(s![.., .., s]))?,
                a_prev: prev(&a, host::copy("a0", &a0))?,
                c_prev: prev(&c, host::copy("c0", &c0.t()))?,
                ft: gate(1)?,
                it: gate(0)?,
                cct: gate(2)?,
                ot: gate(3)?,
                xt: host::copy("x", &x.slice(s![.., .., s]))?,
                parameters: shared.clone(),
            })
        })
        .collect::<Result<_>>()?;
    let caches = LstmCaches {
        caches,
        x: host::copy("x", &x)?,
    };
    Ok((a, t3("x", y.view())?, c, caches))
}

/// Backward of one tanh RNN step, given `da_next (n_a, m)`, the gradient on its output.
pub fn rnn_cell_backward<A: Real>(
    da_next: ArrayView2<A>,
    cache: &RnnCache<A>,
) -> Result<RnnCellGradients<A>> {
    let p = cache.parameters.cell()?;
    check_nb("da_next", "(n_a, m)", cache.a_next.shape(), da_next.shape())?;
    let out = StepOut {
        h: t2("cache", cache.a_next.view())?,
        c: None,
        gates: None,
    };
    let g = cpu::step_backward(
        &p,
        t2("cache", cache.xt.view())?.view(),
        t2("cache", cache.a_prev.view())?.view(),
        None,
        &out,
        t2("da_next", da_next)?.view(),
        None,
    )
    .map_err(|e| cache_error(e, "cache"))?;
    Ok(RnnCellGradients {
        dxt: t2("da_next", g.dx.view())?,
        da_prev: t2("da_next", g.dh_prev.view())?,
        dwax: g.dw_ih,
        dwaa: g.dw_hh,
        dba: g.db.insert_axis(Axis(1)),
    })
}

/// Any shape error inside a cache is the cache's.
fn cache_error(e: Error, arg: &'static str) -> Error {
    match e {
        Error::Shape { expected, got, .. } => Error::Shape { arg, expected, got },
        Error::Invalid { msg, .. } => Error::Invalid { arg, msg },
        e => e,
    }
}

/// Checks the cached input `x (n_x, m, T')` covers `t` steps of `m` columns.
fn check_cached_x<A: Real>(x: &Array3<A>, m: usize, t: usize) -> Result<()> {
    let (_, xm, xt) = x.dim();
    if xm != m || xt < t {
        return Err(Error::Shape {
            arg: "caches",
            expected: format!("x of (n_x, m, T) = (n_x, {m}, ≥ {t})"),
            got: fmt_shape(x.shape()).replace('[', "(").replace(']', ")"),
        });
    }
    Ok(())
}

/// Checks `da (n_a, m, T)` against the caches; returns `T`.
fn check_da<A: Real>(da: &ArrayView3<A>, n_a: usize, m: usize, steps: usize) -> Result<usize> {
    let t = da.len_of(Axis(2));
    if da.shape()[..2] != [n_a, m] || t == 0 || t > steps {
        return Err(Error::Shape {
            arg: "da",
            expected: format!(
                "(n_a, m, T) = ({n_a}, {m}, T) with 1 ≤ T ≤ {steps} (the cached steps)"
            ),
            got: fmt_shape(da.shape()).replace('[', "(").replace(']', ")"),
        });
    }
    Ok(t)
}

/// True BPTT for the tanh RNN, from `da (n_a, m, T)`, the upstream gradient of every
/// hidden state. `T` is taken from `da`: it covers the first `T` cached steps.
pub fn rnn_backward<A: Real>(da: ArrayView3<A>, caches: &RnnCaches<A>) -> Result<RnnGradients<A>> {
    let first = caches.caches.first().ok_or(Error::Invalid {
        arg: "caches",
        msg: "no cached steps".into(),
    })?;
    let p = first.parameters.cell()?;
    let (n_a, m) = first.a_prev.dim();
    let t = check_da(&da, n_a, m, caches.caches.len())?;
    check_cached_x(&caches.x, m, t)?;
    let trace = Trace {
        cell: Cell::Rnn,
        x: t3("caches", caches.x.slice(s![.., .., ..t]))?,
        h0: t2("caches", first.a_prev.view())?,
        c0: None,
        h: stack_steps(caches.caches[..t].iter().map(|c| c.a_next.view()))?,
        c: None,
        gates: None,
    };
    let g = cpu::backward(&p, &trace, t3("da", da)?.view(), None)
        .map_err(|e| cache_error(e, "caches"))?;
    Ok(RnnGradients {
        dx: t3("da", g.dx.view())?,
        da0: t2("da", g.dh0.view())?,
        dwax: g.dw_ih,
        dwaa: g.dw_hh,
        dba: g.db_ih.insert_axis(Axis(1)),
    })
}

/// Stacks per-step `(n, m)` arrays into time-major `[T, m, n]`.
fn stack_steps<'a, A: Real>(steps: impl Iterator<Item = ArrayView2<'a, A>>) -> Result<Array3<A>> {
    let views: Vec<_> = steps.map(|v| v.reversed_axes()).collect();
    ndarray::stack(Axis(0), &views).map_err(|e| Error::Invalid {
        arg: "caches",
        msg: format!("cached steps disagree in shape: {e}"),
    })
}

/// Gate block `k` of packed `dw_ih [G·H, I]`, `dw_hh [G·H, H]`, `db [G·H]` as the
/// notebook's `dW (n_a, n_a + n_x)` on `[a; x]` and `db (n_a, 1)`, negated where the
/// notebook's gate is the negation of the library's (the lecture GRU's update gate).
fn gate_grads<A: Real>(
    dw_ih: &Array2<A>,
    dw_hh: &Array2<A>,
    db: &ndarray::Array1<A>,
    k: usize,
    negate: bool,
) -> (Array2<A>, Array2<A>) {
    let hs = dw_hh.ncols();
    let sign = if negate { -A::one() } else { A::one() };
    let rows = s![k * hs..(k + 1) * hs, ..];
    let w = ndarray::concatenate![Axis(1), dw_hh.slice(rows), dw_ih.slice(rows)];
    let b = db
        .slice(s![k * hs..(k + 1) * hs])
        .to_owned()
        .insert_axis(Axis(1));
    (w.mapv(|v| sign * v), b.mapv(|v| sign * v))
}

/// Splits packed LSTM gradients into the notebook's per-gate ones.
fn split_lstm<A: Real>(
    dw_ih: &Array2<A>,
    dw_hh: &Array2<A>,
    db: &ndarray::Array1<A>,
) -> LstmWeightGradients<A> {
    let [(dwi, dbi), (dwf, dbf), (dwc, dbc), (dwo, dbo)] =
        [0, 1, 2, 3].map(|k| gate_grads(dw_ih, dw_hh, db, k, false));
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

/// Stacks the cached gates of one step into PyTorch order i, f, g, o: `[m, 4·n_a]`,
/// in standard layout; gates of disagreeing shapes are an error naming `arg`.
fn cached_gates<A: Real>(c: &LstmCache<A>, arg: &'static str) -> Result<Array2<A>> {
    let g =
        ndarray::concatenate(Axis(1), &[c.it.t(), c.ft.t(), c.cct.t(), c.ot.t()]).map_err(|e| {
            Error::Invalid {
                arg,
                msg: format!("cached gates it, ft, cct, ot disagree in shape: {e}"),
            }
        })?;
    Ok(g.as_standard_layout().into_owned())
}

/// Backward of one LSTM step, given `da_next` and `dc_next (n_a, m)`.
pub fn lstm_cell_backward<A: Real>(
    da_next: ArrayView2<A>,
    dc_next: ArrayView2<A>,
    cache: &LstmCache<A>,
) -> Result<LstmCellGradients<A>> {
    let p = cache.parameters.cell()?;
    check_nb("da_next", "(n_a, m)", cache.a_next.shape(), da_next.shape())?;
    check_nb("dc_next", "(n_a, m)", cache.a_next.shape(), dc_next.shape())?;
    let out = StepOut {
        h: t2("cache", cache.a_next.view())?,
        c: Some(t2("cache", cache.c_next.view())?),
        gates: Some(cached_gates(cache, "cache")?),
    };
    let g = cpu::step_backward(
        &p,
        t2("cache", cache.xt.view())?.view(),
        t2("cache", cache.a_prev.view())?.view(),
        Some(t2("cache", cache.c_prev.view())?.view()),
        &out,
        t2("da_next", da_next)?.view(),
        Some(t2("dc_next", dc_next)?.view()),
    )
    .map_err(|e| cache_error(e, "cache"))?;
    Ok(LstmCellGradients {
        dxt: t2("da_next", g.dx.view())?,
        da_prev: t2("da_next", g.dh_prev.view())?,
        dc_prev: t2("da_next", g.dc_prev.ok_or_else(lstm_only)?.view())?,
        w: split_lstm(&g.dw_ih, &g.dw_hh, &g.db),
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

fn lstm_backward_from<A: Real>(
    da: ArrayView3<A>,
    dc: Option<ArrayView2<A>>,
    caches: &LstmCaches<A>,
) -> Result<LstmGradients<A>> {
    let first = caches.caches.first().ok_or(Error::Invalid {
        arg: "caches",
        msg: "no cached steps".into(),
    })?;
    let p = first.parameters.cell()?;
    let (n_a, m) = first.a_prev.dim();
    let t = check_da(&da, n_a, m, caches.caches.len())?;
    check_cached_x(&caches.x, m, t)?;
    let steps = &caches.caches[..t];
    let gates = steps
        .iter()
        .map(|c| cached_gates(c, "caches"))
        .collect::<Result<Vec<Array2<A>>>>()?;
    let gate_views: Vec<_> = gates.iter().map(|g| g.view()).collect();
    let trace = Trace {
        cell: Cell::Lstm,
        x: t3("caches", caches.x.slice(s![.., .., ..t]))?,
        h0: t2("caches", first.a_prev.view())?,
        c0: Some(t2("caches", first.c_prev.view())?),
        h: stack_steps(steps.iter().map(|c| c.a_next.view()))?,
        c: Some(stack_steps(steps.iter().map(|c| c.c_next.view()))?),
        gates: Some(
            ndarray::stack(Axis(0), &gate_views).map_err(|e| Error::Invalid {
                arg: "caches",
                msg: format!("cached gates disagree in shape: {e}"),
            })?,
        ),
    };
    if let Some(dc) = &dc {
        check_nb("dc", "(n_a, m)", &[n_a, m], dc.shape())?;
    }
    let dc = dc.map(|d| t2("dc", d)).transpose()?;
    let g = cpu::backward(
        &p,
        &trace,
        t3("da", da)?.view(),
        dc.as_ref().map(|d| d.view()),
    )
    .map_err(|e| cache_error(e, "caches"))?;
    Ok(LstmGradients {
        dx: t3("da", g.dx.view())?,
        da0: t2("da", g.dh0.view())?,
        dc0: t2("da", g.dc0.ok_or_else(lstm_only)?.view())?,
        w: split_lstm(&g.dw_ih, &g.dw_hh, &g.db_ih),
    })
}
