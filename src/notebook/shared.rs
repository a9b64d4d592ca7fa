//! What the notebook's cells share: checking arguments in the notebook's layout
//! `(n, m[, T])`, transposing them to the library's time-major `[T, m, n]` and back,
//! running the CPU path, and making and reading per-step caches. Each cell says only
//! what differs, through [`NbCell`]: its parameters, its cache, the notebook's names.

use std::sync::Arc;

use ndarray::{s, Array, Array1, Array2, Array3, ArrayView2, ArrayView3, Axis, Dimension};

use crate::cpu::{self, StepOut, Trace};
use crate::error::{check_shape, fmt_shape, Error, Result};
use crate::host;
use crate::params::{Head, Params};
use crate::real::Real;

/// The notebook's names of a cell's state arguments. (The LSTM's cell-state arguments
/// are `c_prev`, `c0`, `dc_next` and `dc` whatever the cell.)
pub(super) struct StateNames {
    /// A step's previous state: `a_prev`, `c_prev`.
    pub prev: &'static str,
    /// A sequence's initial state: `a0`, `c0`.
    pub init: &'static str,
    /// The gradient on a step's output: `da_next`, `dc_next`.
    pub d_next: &'static str,
    /// The gradient on every state of a sequence: `da`, `dc`.
    pub d_all: &'static str,
}

/// The states of one step in the notebook's layout, each `(n, m)`: what every cache
/// holds besides its gates. `S` is an owned array when a cache is made, a view when one
/// is read.
pub(super) struct Step<S> {
    /// The state after the step (`a_next`; the GRU's `c_next`).
    pub h_next: S,
    /// The state before the step (`a_prev`; the GRU's `c_prev`).
    pub h_prev: S,
    /// The cell state after the step (the LSTM only).
    pub c_next: Option<S>,
    /// The cell state before the step (the LSTM only).
    pub c_prev: Option<S>,
    /// The step's input.
    pub xt: S,
}

/// One of the notebook's cells, seen from its parameters: what differs between them.
pub(super) trait NbCell<A: Real>: Clone {
    /// One step's cache.
    type Cache;
    /// The notebook's names of the state arguments.
    const NAMES: StateNames;
    /// The parameters in the library's layout; errors name the notebook's parameters.
    fn cell(&self) -> Result<Params<A>>;
    /// The prediction head; errors name the notebook's parameters.
    fn head(&self) -> Result<Head<A>>;
    /// A step's cache from its states and what the library kept of it, `[m, kept]`
    /// (`None` for a cell that keeps nothing); `arg` names the argument whose size these
    /// have, for a failed allocation.
    fn cache(
        step: Step<Array2<A>>,
        kept: Option<ArrayView2<A>>,
        arg: &'static str,
        parameters: Arc<Self>,
    ) -> Result<Self::Cache>;
    /// The states a cache holds.
    fn step(cache: &Self::Cache) -> Step<ArrayView2<'_, A>>;
    /// The parameters a cache holds.
    fn parameters(cache: &Self::Cache) -> &Self;
    /// What the library keeps of a cached step, `[m, kept]` in standard layout (`None`
    /// for a cell that keeps nothing); gates of disagreeing shapes are an error naming
    /// `arg`.
    fn kept(cache: &Self::Cache, arg: &'static str) -> Result<Option<Array2<A>>>;
}

/// `(n, m)` → `[m, n]` in standard layout.
/// `arg` names the argument whose size it is, for a failed allocation.
pub(super) fn t2<A: Real>(arg: &'static str, a: ArrayView2<A>) -> Result<Array2<A>> {
    host::copy(arg, &a.t())
}

/// `(F, m, T)` ↔ `[T, m, F]` in standard layout.
pub(super) fn t3<A: Real>(arg: &'static str, a: ArrayView3<A>) -> Result<Array3<A>> {
    host::copy(arg, &a.permuted_axes([2, 1, 0]))
}

/// A shape as the notebook writes it: `[a, b]` → `(a, b)`.
fn nb_shape(shape: &str) -> String {
    shape.replace('[', "(").replace(']', ")")
}

/// Checks a notebook-layout argument `(rows, m[, T])`.
pub(super) fn check_nb(
    arg: &'static str,
    what: &str,
    expected: &[usize],
    got: &[usize],
) -> Result<()> {
    check_shape(arg, what, expected, got).map_err(|e| match e {
        Error::Shape { arg, expected, got } => Error::Shape {
            arg,
            expected: nb_shape(&expected),
            got: nb_shape(&got),
        },
        e => e,
    })
}

/// The head over one step `(n_a, m)` → `(n_y, m)`.
fn predict<A: Real>(head: &Head<A>, a: ArrayView2<A>) -> Result<Array2<A>> {
    let y = cpu::head_forward(head, a.t().insert_axis(Axis(0)))?;
    t2("a_next", y.index_axis(Axis(0), 0))
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
            got: nb_shape(&fmt_shape(x.shape())),
        });
    }
    Ok(())
}

/// Checks the gradient `arg (n_a, m, T)` (`da`, `dc`) against the caches; returns `T`.
fn check_da<A: Real>(
    arg: &'static str,
    da: &ArrayView3<A>,
    n_a: usize,
    m: usize,
    steps: usize,
) -> Result<usize> {
    let t = da.len_of(Axis(2));
    if da.shape()[..2] != [n_a, m] || t == 0 || t > steps {
        return Err(Error::Shape {
            arg,
            expected: format!(
                "(n_a, m, T) = ({n_a}, {m}, T) with 1 ≤ T ≤ {steps} (the cached steps)"
            ),
            got: nb_shape(&fmt_shape(da.shape())),
        });
    }
    Ok(t)
}

/// Stacks per-step `(n, m)` arrays into time-major `[T, m, n]`.
fn stack_steps<'a, A: Real>(steps: impl Iterator<Item = ArrayView2<'a, A>>) -> Result<Array3<A>> {
    let views: Vec<_> = steps.map(|v| v.reversed_axes()).collect();
    ndarray::stack(Axis(0), &views).map_err(|e| Error::Invalid {
        arg: "caches",
        msg: format!("cached steps disagree in shape: {e}"),
    })
}

/// Packs cached gates, each `(n_a, m)`, side by side in the library's order into
/// `[m, k·n_a]` in standard layout; gates of disagreeing shapes are an error naming
/// `arg`, and `names` (`"it, ft, cct, ot"`) in its message.
pub(super) fn pack_gates<A: Real>(
    arg: &'static str,
    names: &str,
    gates: &[ArrayView2<A>],
) -> Result<Array2<A>> {
    let views: Vec<_> = gates.iter().map(|g| g.t()).collect();
    let g = ndarray::concatenate(Axis(1), &views).map_err(|e| Error::Invalid {
        arg,
        msg: format!("cached gates {names} disagree in shape: {e}"),
    })?;
    Ok(g.as_standard_layout().into_owned())
}

/// Step `s` of `all (n, m, T)` and the step before it, `first` (named `first_arg`) at
/// step 0: a step's `(next, prev)` states.
fn next_and_prev<A: Real>(
    all: &Array3<A>,
    s: usize,
    first_arg: &'static str,
    first: ArrayView2<A>,
) -> Result<(Array2<A>, Array2<A>)> {
    let next = host::copy("x", &all.slice(s![.., .., s]))?;
    let prev = match s.checked_sub(1) {
        None => host::copy(first_arg, &first)?,
        Some(p) => host::copy("x", &all.slice(s![.., .., p]))?,
    };
    Ok((next, prev))
}

/// What [`cell_forward`] returns: `(h_next, c_next, yt_pred, cache)`, `c_next` for the
/// LSTM only.
pub(super) type CellForward<A, C> = (Array2<A>, Option<Array2<A>>, Array2<A>, C);

/// One step in the notebook's layout: checks `xt (n_x, m)`, the state `h_prev (n_a, m)`
/// (named `P::NAMES.prev`) and, for the LSTM, `c_prev (n_a, m)`; runs the step and its
/// prediction and makes its cache.
pub(super) fn cell_forward<A: Real, P: NbCell<A>>(
    xt: ArrayView2<A>,
    h_prev: ArrayView2<A>,
    c_prev: Option<ArrayView2<A>>,
    parameters: &P,
) -> Result<CellForward<A, P::Cache>> {
    let prev = P::NAMES.prev;
    let p = parameters.cell()?;
    let head = parameters.head()?;
    let (hs, m) = (p.hidden_size(), xt.ncols());
    check_nb("xt", "(n_x, m)", &[p.input_size(), m], xt.shape())?;
    check_nb(prev, "(n_a, m)", &[hs, m], h_prev.shape())?;
    if let Some(c_prev) = &c_prev {
        check_nb("c_prev", "(n_a, m)", &[hs, m], c_prev.shape())?;
    }
    let (xt_t, h_prev_t) = (t2("xt", xt)?, t2(prev, h_prev)?);
    let c_prev_t = c_prev.map(|c| t2("c_prev", c)).transpose()?;
    let out = cpu::step_forward(
        &p,
        xt_t.view(),
        h_prev_t.view(),
        c_prev_t.as_ref().map(|c| c.view()),
    )
    .map_err(|e| e.renamed(&[("x_t", "xt"), ("h_prev", prev)]))?;
    let h_next = t2("xt", out.h.view())?;
    let c_next = out.c.as_ref().map(|c| t2("xt", c.view())).transpose()?;
    let yt = predict(&head, h_next.view())?;
    let step = Step {
        h_next: h_next.clone(),
        h_prev: host::copy(prev, &h_prev)?,
        c_next: c_next.clone(),
        c_prev: c_prev.map(|c| host::copy("c_prev", &c)).transpose()?,
        xt: host::copy("xt", &xt)?,
    };
    let kept = out.gates.as_ref().map(|g| g.view());
    let cache = P::cache(step, kept, "xt", Arc::new(parameters.clone()))?;
    Ok((h_next, c_next, yt, cache))
}

/// What [`seq_forward`] returns, in the notebook's layout.
pub(super) struct SeqForward<A, C> {
    /// Every state `(n_a, m, T)`.
    pub h: Array3<A>,
    /// Every prediction `(n_y, m, T)`.
    pub y: Array3<A>,
    /// Every cell state `(n_a, m, T)` (the LSTM only).
    pub c: Option<Array3<A>>,
    /// One cache per step.
    pub caches: Vec<C>,
    /// A copy of the input `(n_x, m, T)`.
    pub x: Array3<A>,
}

/// A sequence in the notebook's layout: checks `x (n_x, m, T)`, the initial state
/// `h0 (n_a, m)` (named `P::NAMES.init`) and, for the LSTM, `c0 (n_a, m)` (zeros when
/// `None`); runs the cell and the head over every step and makes one cache per step.
pub(super) fn seq_forward<A: Real, P: NbCell<A>>(
    x: ArrayView3<A>,
    h0: ArrayView2<A>,
    c0: Option<ArrayView2<A>>,
    parameters: &P,
) -> Result<SeqForward<A, P::Cache>> {
    let init = P::NAMES.init;
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
    check_nb(init, "(n_a, m)", &[hs, m], h0.shape())?;
    if let Some(c0) = &c0 {
        check_nb("c0", "(n_a, m)", &[hs, m], c0.shape())?;
    }
    // The initial cell state `[m, n_a]`, time-major: zeros when the LSTM is given none.
    let c0 = match c0 {
        Some(c0) => Some(t2("c0", c0)?),
        None if p.cell.has_cell_state() => Some(host::zeros(init, (m, hs))?),
        None => None,
    };
    let tr = cpu::forward(
        &p,
        t3("x", x)?.view(),
        Some(t2(init, h0)?.view()),
        c0.as_ref().map(|c| c.view()),
    )
    .map_err(|e| e.renamed(&[("h0", init)]))?;
    let y = cpu::head_forward(&head, tr.h.view())?;
    let h = t3("x", tr.h.view())?;
    let c = tr.c.as_ref().map(|c| t3("x", c.view())).transpose()?;
    let shared = Arc::new(parameters.clone());
    let caches = (0..t)
        .map(|s| {
            let (h_next, h_prev) = next_and_prev(&h, s, init, h0)?;
            let (c_next, c_prev) = match (&c, &c0) {
                (Some(c), Some(c0)) => {
                    let (next, prev) = next_and_prev(c, s, "c0", c0.t())?;
                    (Some(next), Some(prev))
                }
                _ => (None, None),
            };
            let step = Step {
                h_next,
                h_prev,
                c_next,
                c_prev,
                xt: host::copy("x", &x.slice(s![.., .., s]))?,
            };
            let kept = tr.gates.as_ref().map(|g| g.index_axis(Axis(0), s));
            P::cache(step, kept, "x", shared.clone())
        })
        .collect::<Result<_>>()?;
    let x_copy = host::copy("x", &x)?;
    Ok(SeqForward {
        h,
        y: t3("x", y.view())?,
        c,
        caches,
        x: x_copy,
    })
}

/// Gradients of a step (`D = Ix2`) or a sequence (`D = Ix3`): those of the input and
/// the states in the notebook's layout, those of the weights packed as the library has
/// them.
pub(super) struct NbGrads<A, D> {
    /// `(n_x, m)` for a step, `(n_x, m, T)` for a sequence.
    pub dx: Array<A, D>,
    /// The gradient reaching the previous (initial) state `(n_a, m)`.
    pub dh: Array2<A>,
    /// The gradient reaching the previous (initial) cell state `(n_a, m)` (the LSTM).
    pub dc: Option<Array2<A>>,
    /// `[G·n_a, n_x]`.
    pub dw_ih: Array2<A>,
    /// `[G·n_a, n_a]`.
    pub dw_hh: Array2<A>,
    /// `[G·n_a]`.
    pub db: Array1<A>,
}

/// The tanh RNN's gradients `(dx, dh, dWax, dWaa, dba)`, see [`NbGrads::into_rnn`].
pub(super) type RnnParts<A, D> = (Array<A, D>, Array2<A>, Array2<A>, Array2<A>, Array2<A>);

impl<A: Real, D: Dimension> NbGrads<A, D> {
    /// From the library's gradients: `dx [.., m, n_x]` and the states' `[m, n_a]`
    /// transposed to the notebook's layout (`arg` names their size, for a failed
    /// allocation), the weights' as they are.
    fn from_library(
        arg: &'static str,
        dx: Array<A, D>,
        dh: Array2<A>,
        dc: Option<Array2<A>>,
        dw_ih: Array2<A>,
        dw_hh: Array2<A>,
        db: Array1<A>,
    ) -> Result<Self> {
        Ok(NbGrads {
            dx: host::copy(arg, &dx.reversed_axes())?,
            dh: t2(arg, dh.view())?,
            dc: dc.map(|d| t2(arg, d.view())).transpose()?,
            dw_ih,
            dw_hh,
            db,
        })
    }

    /// The tanh RNN's `(dx, dh, dWax, dWaa, dba)`, `dba (n_a, 1)`.
    pub fn into_rnn(self) -> RnnParts<A, D> {
        let dba = self.db.insert_axis(Axis(1));
        (self.dx, self.dh, self.dw_ih, self.dw_hh, dba)
    }
}

/// Backward of one step in the notebook's layout, given `dh (n_a, m)` (named
/// `P::NAMES.d_next`) on its output and, for the LSTM, `dc (n_a, m)` (`dc_next`) on its
/// cell state; errors inside the cache name `cache`.
pub(super) fn cell_backward<A: Real, P: NbCell<A>>(
    dh: ArrayView2<A>,
    dc: Option<ArrayView2<A>>,
    cache: &P::Cache,
) -> Result<NbGrads<A, ndarray::Ix2>> {
    let d_next = P::NAMES.d_next;
    let step = P::step(cache);
    let p = P::parameters(cache).cell()?;
    check_nb(d_next, "(n_a, m)", step.h_next.shape(), dh.shape())?;
    if let Some(dc) = &dc {
        check_nb("dc_next", "(n_a, m)", step.h_next.shape(), dc.shape())?;
    }
    let out = StepOut {
        h: t2("cache", step.h_next)?,
        c: step.c_next.map(|c| t2("cache", c)).transpose()?,
        gates: P::kept(cache, "cache")?,
    };
    let (xt, h_prev) = (t2("cache", step.xt)?, t2("cache", step.h_prev)?);
    let c_prev = step.c_prev.map(|c| t2("cache", c)).transpose()?;
    let dh = t2(d_next, dh)?;
    let dc = dc.map(|d| t2("dc_next", d)).transpose()?;
    let g = cpu::step_backward(
        &p,
        xt.view(),
        h_prev.view(),
        c_prev.as_ref().map(|c| c.view()),
        &out,
        dh.view(),
        dc.as_ref().map(|d| d.view()),
    )
    .map_err(|e| cache_error(e, "cache"))?;
    NbGrads::from_library(d_next, g.dx, g.dh_prev, g.dc_prev, g.dw_ih, g.dw_hh, g.db)
}

/// True BPTT in the notebook's layout from `dh (n_a, m, T)` (named `P::NAMES.d_all`),
/// the upstream gradient of every state, over the first `T` of `caches` (with their
/// input `x`), and, for the LSTM, `dc (n_a, m)` on the last cell state (zero when
/// `None`): rebuilds the library's [`Trace`] from the cached steps and runs it backward.
/// Errors inside the caches name `caches`.
pub(super) fn seq_backward<A: Real, P: NbCell<A>>(
    dh: ArrayView3<A>,
    dc: Option<ArrayView2<A>>,
    caches: &[P::Cache],
    x: &Array3<A>,
) -> Result<NbGrads<A, ndarray::Ix3>> {
    let d_all = P::NAMES.d_all;
    let first = caches.first().ok_or(Error::Invalid {
        arg: "caches",
        msg: "no cached steps".into(),
    })?;
    let p = P::parameters(first).cell()?;
    let first = P::step(first);
    let (n_a, m) = first.h_prev.dim();
    let t = check_da(d_all, &dh, n_a, m, caches.len())?;
    check_cached_x(x, m, t)?;
    let cached = &caches[..t];
    let kept = cached
        .iter()
        .map(|c| P::kept(c, "caches"))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .collect::<Option<Vec<Array2<A>>>>();
    let steps: Vec<_> = cached.iter().map(P::step).collect();
    let trace = Trace {
        cell: p.cell,
        x: t3("caches", x.slice(s![.., .., ..t]))?,
        h0: t2("caches", first.h_prev)?,
        c0: first.c_prev.map(|c| t2("caches", c)).transpose()?,
        h: stack_steps(steps.iter().map(|s| s.h_next.view()))?,
        c: steps
            .iter()
            .map(|s| s.c_next.as_ref().map(|c| c.view()))
            .collect::<Option<Vec<_>>>()
            .map(|c| stack_steps(c.into_iter()))
            .transpose()?,
        gates: kept
            .map(|kept| {
                let views: Vec<_> = kept.iter().map(|g| g.view()).collect();
                ndarray::stack(Axis(0), &views).map_err(|e| Error::Invalid {
                    arg: "caches",
                    msg: format!("cached gates disagree in shape: {e}"),
                })
            })
            .transpose()?,
    };
    if let Some(dc) = &dc {
        check_nb("dc", "(n_a, m)", &[n_a, m], dc.shape())?;
    }
    let dc = dc.map(|d| t2("dc", d)).transpose()?;
    let g = cpu::backward(
        &p,
        &trace,
        t3(d_all, dh)?.view(),
        dc.as_ref().map(|d| d.view()),
    )
    .map_err(|e| cache_error(e, "caches"))?;
    let mut g = g;
    NbGrads::from_library(
        d_all,
        std::mem::take(&mut g.dx),
        std::mem::take(&mut g.dh0),
        g.dc0.take(),
        std::mem::take(&mut g.dw_ih),
        std::mem::take(&mut g.dw_hh),
        std::mem::take(&mut g.db_ih),
    )
}
