//! The lecture's GRU in the notebook's style: layout `(n, m[, T])`, column biases,
//! per-step caches, each `W (n_a, n_a + n_x)` acting on `[c; x]` (the state rows first),
//! and the lecture's names: the memory cell `c` (which is the hidden state, `c = a`),
//! the update gate `Γ_u`, the relevance (reset) gate `Γ_r`, the candidate `c̃`:
//!
//! `Γ_u = σ(W_u [c⟨t−1⟩; x⟨t⟩] + b_u)`, `Γ_r = σ(W_r [c⟨t−1⟩; x⟨t⟩] + b_r)`,
//! `c̃⟨t⟩ = tanh(W_c [Γ_r ⊙ c⟨t−1⟩; x⟨t⟩] + b_c)`,
//! `c⟨t⟩ = Γ_u ⊙ c̃⟨t⟩ + (1 − Γ_u) ⊙ c⟨t−1⟩`, `ŷ⟨t⟩ = softmax(W_y c⟨t⟩ + b_y)`.
//!
//! Built on the CPU path's `Cell::Gru { reset_after: false }` through
//! [`Params::gru_from_notebook`] (whose update gate is `z = 1 − Γ_u`); backward is true
//! backpropagation through time.

use std::sync::Arc;

use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, Axis};

use super::{
    cache_error, check_cached_x, check_da, check_nb, gate_grads, head_of, predict, t2, t3,
};
use crate::cpu::{self, StepOut, Trace};
use crate::error::{Error, Result};
use crate::host;
use crate::params::{Cell, Head, Params};
use crate::real::Real;

/// The lecture GRU's parameters; each `W` is `(n_a, n_a + n_x)` acting on `[c; x]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GruParameters<A> {
    /// Update gate weights.
    pub wu: Array2<A>,
    /// Update gate bias `(n_a, 1)`.
    pub bu: Array2<A>,
    /// Relevance (reset) gate weights.
    pub wr: Array2<A>,
    /// Relevance gate bias `(n_a, 1)`.
    pub br: Array2<A>,
    /// Candidate weights (acting on `[Γ_r ⊙ c; x]`).
    pub wc: Array2<A>,
    /// Candidate bias `(n_a, 1)`.
    pub bc: Array2<A>,
    /// Prediction weights `(n_y, n_a)`.
    pub wy: Array2<A>,
    /// Prediction bias `(n_y, 1)`.
    pub by: Array2<A>,
}

impl<A: Real> GruParameters<A> {
    fn cell(&self) -> Result<Params<A>> {
        Params::gru_from_notebook(
            self.wu.view(),
            self.bu.view(),
            self.wr.view(),
            self.br.view(),
            self.wc.view(),
            self.bc.view(),
        )
        .map_err(|e| {
            e.renamed(&[
                ("Wu", r#"parameters["Wu"]"#),
                ("Wr", r#"parameters["Wr"]"#),
                ("Wc", r#"parameters["Wc"]"#),
                ("w_ih", r#"parameters["Wr"]"#),
                ("w_hh", r#"parameters["Wr"]"#),
                ("bu", r#"parameters["bu"]"#),
                ("br", r#"parameters["br"]"#),
                ("bc", r#"parameters["bc"]"#),
            ])
        })
    }
    fn head(&self) -> Result<Head<A>> {
        head_of(&self.wy, &self.by, self.wu.nrows(), r#"parameters["Wy"]"#)
    }
}

/// One step's cache of [`gru_cell_forward`]:
/// `(c_next, c_prev, Γ_u, Γ_r, c̃, xt, parameters)`.
#[derive(Debug, Clone)]
pub struct GruCache<A> {
    /// `(n_a, m)`.
    pub c_next: Array2<A>,
    /// `(n_a, m)`.
    pub c_prev: Array2<A>,
    /// Update gate `Γ_u (n_a, m)`.
    pub gu: Array2<A>,
    /// Relevance gate `Γ_r (n_a, m)`.
    pub gr: Array2<A>,
    /// Candidate `c̃ (n_a, m)`.
    pub cct: Array2<A>,
    /// `(n_x, m)`.
    pub xt: Array2<A>,
    /// The parameters, shared by every step.
    pub parameters: Arc<GruParameters<A>>,
}

/// The caches of [`gru_forward`]: one per step, and `x`.
#[derive(Debug, Clone)]
pub struct GruCaches<A> {
    /// One cache per step.
    pub caches: Vec<GruCache<A>>,
    /// The input `(n_x, m, T)`.
    pub x: Array3<A>,
}

/// The weight and bias gradients of the three GRU blocks, in the lecture's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct GruWeightGradients<A> {
    /// `(n_a, n_a + n_x)`.
    pub dwu: Array2<A>,
    /// `(n_a, n_a + n_x)`.
    pub dwr: Array2<A>,
    /// `(n_a, n_a + n_x)`.
    pub dwc: Array2<A>,
    /// `(n_a, 1)`.
    pub dbu: Array2<A>,
    /// `(n_a, 1)`.
    pub dbr: Array2<A>,
    /// `(n_a, 1)`.
    pub dbc: Array2<A>,
}

/// Gradients of [`gru_cell_backward`].
#[derive(Debug, Clone, PartialEq)]
pub struct GruCellGradients<A> {
    /// `(n_x, m)`.
    pub dxt: Array2<A>,
    /// `(n_a, m)`.
    pub dc_prev: Array2<A>,
    /// Weight and bias gradients.
    pub w: GruWeightGradients<A>,
}

/// Gradients of [`gru_backward`].
#[derive(Debug, Clone, PartialEq)]
pub struct GruGradients<A> {
    /// `(n_x, m, T)`.
    pub dx: Array3<A>,
    /// `(n_a, m)`.
    pub dc0: Array2<A>,
    /// Weight and bias gradients.
    pub w: GruWeightGradients<A>,
}

/// What [`gru_cell_forward`] returns: `(c_next, yt_pred, cache)`.
pub type GruCellForward<A> = (Array2<A>, Array2<A>, GruCache<A>);

/// What [`gru_forward`] returns: `(c, y, caches)`.
pub type GruForward<A> = (Array3<A>, Array3<A>, GruCaches<A>);

/// The cell kind behind the lecture's GRU.
const LECTURE: Cell = Cell::Gru { reset_after: false };

/// The library's kept gates `[m, 3·n_a]` (r, z, n) as the lecture's `(Γ_r, Γ_u, c̃)`,
/// each `(n_a, m)`.
fn lecture_gates<A: Real>(
    arg: &'static str,
    g: ArrayView2<A>,
    hs: usize,
) -> Result<[Array2<A>; 3]> {
    let block = |k: usize| g.slice(s![.., k * hs..(k + 1) * hs]);
    Ok([
        t2(arg, block(0))?,
        t2(arg, block(1).mapv(|z| A::one() - z).view())?,
        t2(arg, block(2))?,
    ])
}

/// The cached gates of one step as the library keeps them: `[m, 3·n_a]` (r, z, n) in
/// standard layout; gates of disagreeing shapes are an error naming `arg`.
fn cached_gates<A: Real>(c: &GruCache<A>, arg: &'static str) -> Result<Array2<A>> {
    let z = c.gu.mapv(|u| A::one() - u);
    let g = ndarray::concatenate(Axis(1), &[c.gr.t(), z.t(), c.cct.t()]).map_err(|e| {
        Error::Invalid {
            arg,
            msg: format!("cached gates gr, gu, cct disagree in shape: {e}"),
        }
    })?;
    Ok(g.as_standard_layout().into_owned())
}

/// The library's packed gradients as the lecture's (`Γ_u`'s negated, see
/// [`Params::gru_from_notebook`]).
fn split_gru<A: Real>(
    dw_ih: &Array2<A>,
    dw_hh: &Array2<A>,
    db: &ndarray::Array1<A>,
) -> GruWeightGradients<A> {
    let (dwr, dbr) = gate_grads(dw_ih, dw_hh, db, 0, false);
    let (dwu, dbu) = gate_grads(dw_ih, dw_hh, db, 1, true);
    let (dwc, dbc) = gate_grads(dw_ih, dw_hh, db, 2, false);
    GruWeightGradients {
        dwu,
        dwr,
        dwc,
        dbu,
        dbr,
        dbc,
    }
}

/// A GRU result without its kept gates: cannot happen for the lecture's cell; an error
/// rather than a panic all the same.
fn gates_missing() -> Error {
    Error::Device("internal: a GRU step kept no gates".into())
}

/// One lecture GRU step from `xt (n_x, m)` and `c_prev (n_a, m)`. Returns
/// `(c_next, yt_pred, cache)`.
pub fn gru_cell_forward<A: Real>(
    xt: ArrayView2<A>,
    c_prev: ArrayView2<A>,
    parameters: &GruParameters<A>,
) -> Result<GruCellForward<A>> {
    let p = parameters.cell()?;
    let head = parameters.head()?;
    let (hs, m) = (p.hidden_size(), xt.ncols());
    check_nb("xt", "(n_x, m)", &[p.input_size(), m], xt.shape())?;
    check_nb("c_prev", "(n_a, m)", &[hs, m], c_prev.shape())?;
    let out = cpu::step_forward(&p, t2("xt", xt)?.view(), t2("c_prev", c_prev)?.view(), None)
        .map_err(|e| e.renamed(&[("x_t", "xt"), ("h_prev", "c_prev")]))?;
    let c_next = t2("xt", out.h.view())?;
    let gates = out.gates.as_ref().ok_or_else(gates_missing)?;
    let [gr, gu, cct] = lecture_gates("xt", gates.view(), hs)?;
    let yt = predict(&head, c_next.view())?;
    let cache = GruCache {
        c_next: c_next.clone(),
        c_prev: host::copy("c_prev", &c_prev)?,
        gu,
        gr,
        cct,
        xt: host::copy("xt", &xt)?,
        parameters: Arc::new(parameters.clone()),
    };
    Ok((c_next, yt, cache))
}

/// The lecture GRU over `x (n_x, m, T)` from `c0 (n_a, m)`. Returns `(c, y, caches)`
/// with `c (n_a, m, T)` and `y (n_y, m, T)`.
pub fn gru_forward<A: Real>(
    x: ArrayView3<A>,
    c0: ArrayView2<A>,
    parameters: &GruParameters<A>,
) -> Result<GruForward<A>> {
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
    check_nb("c0", "(n_a, m)", &[hs, m], c0.shape())?;
    let tr = cpu::forward(&p, t3("x", x)?.view(), Some(t2("c0", c0)?.view()), None)
        .map_err(|e| e.renamed(&[("h0", "c0")]))?;
    let y = cpu::head_forward(&head, tr.h.view())?;
    let c = t3("x", tr.h.view())?;
    let gates = tr.gates.as_ref().ok_or_else(gates_missing)?;
    let shared = Arc::new(parameters.clone());
    let caches = (0..t)
        .map(|st| {
            let [gr, gu, cct] = lecture_gates("x", gates.index_axis(Axis(0), st), hs)?;
            Ok(GruCache {
                c_next: host::copy("x", &c.slice(s![.., .., st]))?,
                c_prev: if st == 0 {
                    host::copy("c0", &c0)?
                } else {
                    host::copy("x", &c.slice(s![.., .., st - 1]))?
                },
                gu,
                gr,
                cct,
                xt: host::copy("x", &x.slice(s![.., .., st]))?,
                parameters: shared.clone(),
            })
        })
        .collect::<Result<_>>()?;
    let caches = GruCaches {
        caches,
        x: host::copy("x", &x)?,
    };
    Ok((c, t3("x", y.view())?, caches))
}

/// Backward of one lecture GRU step, given `dc_next (n_a, m)`, the gradient on its
/// output (upstream plus any recurrent carry).
pub fn gru_cell_backward<A: Real>(
    dc_next: ArrayView2<A>,
    cache: &GruCache<A>,
) -> Result<GruCellGradients<A>> {
    let p = cache.parameters.cell()?;
    check_nb("dc_next", "(n_a, m)", cache.c_next.shape(), dc_next.shape())?;
    let out = StepOut {
        h: t2("cache", cache.c_next.view())?,
        c: None,
        gates: Some(cached_gates(cache, "cache")?),
    };
    let g = cpu::step_backward(
        &p,
        t2("cache", cache.xt.view())?.view(),
        t2("cache", cache.c_prev.view())?.view(),
        None,
        &out,
        t2("dc_next", dc_next)?.view(),
        None,
    )
    .map_err(|e| cache_error(e, "cache"))?;
    Ok(GruCellGradients {
        dxt: t2("dc_next", g.dx.view())?,
        dc_prev: t2("dc_next", g.dh_prev.view())?,
        w: split_gru(&g.dw_ih, &g.dw_hh, &g.db),
    })
}

/// True BPTT for the lecture GRU from `dc (n_a, m, T)`, the upstream gradient of every
/// state. `T` is taken from `dc`: it covers the first `T` cached steps.
pub fn gru_backward<A: Real>(dc: ArrayView3<A>, caches: &GruCaches<A>) -> Result<GruGradients<A>> {
    let first = caches.caches.first().ok_or(Error::Invalid {
        arg: "caches",
        msg: "no cached steps".into(),
    })?;
    let p = first.parameters.cell()?;
    let (n_a, m) = first.c_prev.dim();
    let t = check_da(&dc, n_a, m, caches.caches.len()).map_err(|e| e.renamed(&[("da", "dc")]))?;
    check_cached_x(&caches.x, m, t)?;
    let steps = &caches.caches[..t];
    let gates = steps
        .iter()
        .map(|c| cached_gates(c, "caches"))
        .collect::<Result<Vec<Array2<A>>>>()?;
    let gate_views: Vec<_> = gates.iter().map(|g| g.view()).collect();
    let trace = Trace {
        cell: LECTURE,
        x: t3("caches", caches.x.slice(s![.., .., ..t]))?,
        h0: t2("caches", first.c_prev.view())?,
        c0: None,
        h: super::stack_steps(steps.iter().map(|c| c.c_next.view()))?,
        c: None,
        gates: Some(
            ndarray::stack(Axis(0), &gate_views).map_err(|e| Error::Invalid {
                arg: "caches",
                msg: format!("cached gates disagree in shape: {e}"),
            })?,
        ),
    };
    let g = cpu::backward(&p, &trace, t3("dc", dc)?.view(), None)
        .map_err(|e| cache_error(e, "caches"))?;
    Ok(GruGradients {
        dx: t3("dc", g.dx.view())?,
        dc0: t2("dc", g.dh0.view())?,
        w: split_gru(&g.dw_ih, &g.dw_hh, &g.db_ih),
    })
}
