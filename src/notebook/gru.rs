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

use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3};

use super::shared::{
    cell_backward, cell_forward, pack_gates, seq_backward, seq_forward, t2, NbCell, NbGrads,
    SeqForward, StateNames, Step,
};
use super::{gate_grads, head_of};
use crate::error::{Error, Result};
use crate::params::{Head, Params};
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

/// The library's packed gradients as the lecture's (`Γ_u`'s negated, see
/// [`Params::gru_from_notebook`]).
fn split_gru<A: Real, D>(g: &NbGrads<A, D>) -> GruWeightGradients<A> {
    let (dwr, dbr) = gate_grads(g, 0, false);
    let (dwu, dbu) = gate_grads(g, 1, true);
    let (dwc, dbc) = gate_grads(g, 2, false);
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

/// The lecture GRU: states `c`, the gates r, z, n kept (in the cache as `Γ_r`,
/// `Γ_u = 1 − z`, `c̃`).
impl<A: Real> NbCell<A> for GruParameters<A> {
    type Cache = GruCache<A>;
    const NAMES: StateNames = StateNames {
        prev: "c_prev",
        init: "c0",
        d_next: "dc_next",
        d_all: "dc",
    };

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
    fn cache(
        step: Step<Array2<A>>,
        kept: Option<ArrayView2<A>>,
        arg: &'static str,
        parameters: Arc<Self>,
    ) -> Result<GruCache<A>> {
        let g = kept.ok_or_else(gates_missing)?;
        let [gr, gu, cct] = lecture_gates(arg, g, step.h_next.nrows())?;
        Ok(GruCache {
            c_next: step.h_next,
            c_prev: step.h_prev,
            gu,
            gr,
            cct,
            xt: step.xt,
            parameters,
        })
    }
    fn step(c: &GruCache<A>) -> Step<ArrayView2<'_, A>> {
        Step {
            h_next: c.c_next.view(),
            h_prev: c.c_prev.view(),
            c_next: None,
            c_prev: None,
            xt: c.xt.view(),
        }
    }
    fn parameters(c: &GruCache<A>) -> &Self {
        &c.parameters
    }
    /// The cached gates as the library keeps them: `[m, 3·n_a]` (r, z, n).
    fn kept(c: &GruCache<A>, arg: &'static str) -> Result<Option<Array2<A>>> {
        let z = c.gu.mapv(|u| A::one() - u);
        pack_gates(arg, "gr, gu, cct", &[c.gr.view(), z.view(), c.cct.view()]).map(Some)
    }
}

/// One lecture GRU step from `xt (n_x, m)` and `c_prev (n_a, m)`. Returns
/// `(c_next, yt_pred, cache)`.
pub fn gru_cell_forward<A: Real>(
    xt: ArrayView2<A>,
    c_prev: ArrayView2<A>,
    parameters: &GruParameters<A>,
) -> Result<GruCellForward<A>> {
    let (c_next, _, yt, cache) = cell_forward(xt, c_prev, None, parameters)?;
    Ok((c_next, yt, cache))
}

/// The lecture GRU over `x (n_x, m, T)` from `c0 (n_a, m)`. Returns `(c, y, caches)`
/// with `c (n_a, m, T)` and `y (n_y, m, T)`.
pub fn gru_forward<A: Real>(
    x: ArrayView3<A>,
    c0: ArrayView2<A>,
    parameters: &GruParameters<A>,
) -> Result<GruForward<A>> {
    let SeqForward {
        h: c, y, caches, x, ..
    } = seq_forward(x, c0, None, parameters)?;
    Ok((c, y, GruCaches { caches, x }))
}

/// Backward of one lecture GRU step, given `dc_next (n_a, m)`, the gradient on its
/// output (upstream plus any recurrent carry).
pub fn gru_cell_backward<A: Real>(
    dc_next: ArrayView2<A>,
    cache: &GruCache<A>,
) -> Result<GruCellGradients<A>> {
    let g = cell_backward::<A, GruParameters<A>>(dc_next, None, cache)?;
    let w = split_gru(&g);
    Ok(GruCellGradients {
        dxt: g.dx,
        dc_prev: g.dh,
        w,
    })
}

/// True BPTT for the lecture GRU from `dc (n_a, m, T)`, the upstream gradient of every
/// state. `T` is taken from `dc`: it covers the first `T` cached steps.
pub fn gru_backward<A: Real>(dc: ArrayView3<A>, caches: &GruCaches<A>) -> Result<GruGradients<A>> {
    let g = seq_backward::<A, GruParameters<A>>(dc, None, &caches.caches, &caches.x)?;
    let w = split_gru(&g);
    Ok(GruGradients {
        dx: g.dx,
        dc0: g.dh,
        w,
    })
}
