//! The notebook's `rnn_utils` for its next exercise, a character-level language model
//! (the course's "Dinosaurus Island"), and the exercise's `clip`, `sample` and
//! `optimize`: a tanh RNN over one-hot characters, one sequence at a time (`m = 1`), in the
//! notebook's layout (column vectors `(n, 1)`), built on the CPU path ([`crate::cpu`]).
//!
//! The parameters are the notebook's [`RnnParameters`]: `Wax (n_a, n_x)`,
//! `Waa (n_a, n_a)`, `Wya (n_y, n_a)`, `b (n_a, 1)` (the field `ba`) and `by (n_y, 1)`;
//! errors name them as the notebook does (`parameters["Waa"]`, `parameters["b"]`).
//! Sequences are lists of character indices: `X` as `&[Option<usize>]` (`None`, the
//! exercise's "no previous character", is a zero input: numpy's `x[None] = 1` would set
//! the whole vector to ones, which the exercise does not mean), `Y` as `&[usize]`.
//!
//! ```
//! use wgpu_rnn::notebook::rnn_utils::{initialize_parameters, optimize};
//! let mut parameters = initialize_parameters::<f64>(5, 4, 4).unwrap();
//! let x = [None, Some(1), Some(2)];
//! let y = [1, 2, 3];
//! let a0 = ndarray::Array2::<f64>::zeros((5, 1));
//! let (loss, _gradients, a_last) = optimize(&x, &y, a0.view(), &mut parameters, 0.01).unwrap();
//! assert!((loss - 3.0 * 4f64.ln()).abs() < 1e-3); // tiny weights: near-uniform guesses
//! assert_eq!(a_last.dim(), (5, 1));
//! ```

use std::collections::HashMap;

use ndarray::{s, Array2, Array3, ArrayView2, Axis};

use super::shared::{check_nb, t2};
use super::RnnParameters;
use crate::cpu::{self, StepOut, Trace};
use crate::error::{check_shape, Error, Result};
use crate::host;
use crate::numpy::RandomState;
use crate::params::{Cell, Head, Params};
use crate::real::Real;

/// The notebook's `gradients` dictionary: one gradient per parameter, and `da_next`, the
/// gradient carried to the previous hidden state.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients<A> {
    /// `gradients["dWax"]`, `(n_a, n_x)`.
    pub dwax: Array2<A>,
    /// `gradients["dWaa"]`, `(n_a, n_a)`.
    pub dwaa: Array2<A>,
    /// `gradients["dWya"]`, `(n_y, n_a)`.
    pub dwya: Array2<A>,
    /// `gradients["db"]`, `(n_a, 1)`.
    pub db: Array2<A>,
    /// `gradients["dby"]`, `(n_y, 1)`.
    pub dby: Array2<A>,
    /// `gradients["da_next"]`, `(n_a, m)`: after [`rnn_backward`], the gradient of the
    /// loss with respect to `a0`.
    pub da_next: Array2<A>,
}

impl<A: Real> Gradients<A> {
    /// All-zero gradients for `parameters`, `da_next` of `(n_a, 1)`, as
    /// [`rnn_backward`] starts them (`np.zeros_like` of each parameter).
    pub fn zeros(parameters: &RnnParameters<A>) -> Result<Self> {
        let p = parameters;
        let z = |arg: &'static str, a: &Array2<A>| host::zeros(arg, a.raw_dim());
        Ok(Gradients {
            dwax: z(r#"parameters["Wax"]"#, &p.wax)?,
            dwaa: z(r#"parameters["Waa"]"#, &p.waa)?,
            dwya: z(r#"parameters["Wya"]"#, &p.wya)?,
            db: z(r#"parameters["b"]"#, &p.ba)?,
            dby: z(r#"parameters["by"]"#, &p.by)?,
            da_next: host::zeros(r#"parameters["Waa"]"#, (p.waa.nrows(), 1))?,
        })
    }
}

/// The cache of [`rnn_forward`], the notebook's `(y_hat, a, x)`, each a list over the
/// steps `t = 0 … T−1` of column vectors; the notebook's `a[-1]` is [`Cache::a0`].
#[derive(Debug, Clone, PartialEq)]
pub struct Cache<A> {
    /// `y_hat[t]`, the softmax prediction `(n_y, 1)` of each step.
    pub y_hat: Vec<Array2<A>>,
    /// `a[t]`, the hidden state `(n_a, 1)` after each step.
    pub a: Vec<Array2<A>>,
    /// `a[-1]`, the initial hidden state `(n_a, 1)`.
    pub a0: Array2<A>,
    /// `x[t]`, the one-hot input `(vocab_size, 1)` of each step (zeros for `None`).
    pub x: Vec<Array2<A>>,
}

/// The parameters in the library's layout: the cell and its prediction head.
struct Lm<A> {
    cell: Params<A>,
    head: Head<A>,
}

impl<A: Real> Lm<A> {
    /// Checks `parameters` and converts them; errors name `parameters["…"]`.
    fn new(parameters: &RnnParameters<A>) -> Result<Self> {
        let names = [
            ("Wax", r#"parameters["Wax"]"#),
            ("w_ih", r#"parameters["Wax"]"#),
            ("Waa", r#"parameters["Waa"]"#),
            ("w_hh", r#"parameters["Waa"]"#),
            ("ba", r#"parameters["b"]"#),
            ("Wy", r#"parameters["Wya"]"#),
            ("w_y", r#"parameters["Wya"]"#),
            ("by", r#"parameters["by"]"#),
            ("b_y", r#"parameters["by"]"#),
        ];
        let p = parameters;
        let cell = Params::rnn_from_notebook(p.wax.view(), p.waa.view(), p.ba.view())
            .map_err(|e| e.renamed(&names))?;
        let n_a = cell.hidden_size();
        check_shape(
            r#"parameters["Wya"]"#,
            "(n_y, n_a)",
            &[p.wya.nrows(), n_a],
            p.wya.shape(),
        )?;
        let head = Head::from_notebook(p.wya.view(), p.by.view()).map_err(|e| e.renamed(&names))?;
        Ok(Lm { cell, head })
    }

    fn n_a(&self) -> usize {
        self.cell.hidden_size()
    }
    fn n_x(&self) -> usize {
        self.cell.input_size()
    }
    fn n_y(&self) -> usize {
        self.head.classes()
    }

    /// One step in the library's layout: `x [m, n_x]`, `a_prev [m, n_a]` →
    /// `(a [m, n_a], y [m, n_y])`.
    fn step(&self, a_prev: ArrayView2<A>, x: ArrayView2<A>) -> Result<(Array2<A>, Array2<A>)> {
        let out = cpu::step_forward(&self.cell, x, a_prev, None)
            .map_err(|e| e.renamed(&[("x_t", "x"), ("h_prev", "a_prev")]))?;
        let y = cpu::head_forward(&self.head, out.h.view().insert_axis(Axis(0)))?;
        Ok((out.h, y.index_axis_move(Axis(0), 0)))
    }
}

/// Column `k` of `a [r, n]` as an owned column vector `(n, 1)`.
fn column<A: Real>(a: ArrayView2<A>, k: usize) -> Array2<A> {
    a.row(k).to_owned().insert_axis(Axis(1))
}

/// `ln v` (through `f64` for `f32`).
fn ln<A: Real>(v: A) -> A {
    A::from_f64(v.to_f64().ln())
}

/// The notebook's `softmax(x)` over axis 0: every column `e^(x − max) / Σ e^(x − max)`.
/// The notebook shifts by the global max; each column is shifted here by its own, which
/// is the same softmax and never underflows a whole column. An `x` with no rows is an
/// error naming `x`.
pub fn softmax<A: Real>(x: ArrayView2<A>) -> Result<Array2<A>> {
    if x.nrows() == 0 {
        return Err(Error::Invalid {
            arg: "x",
            msg: "softmax over an axis of length 0".into(),
        });
    }
    let mut z = t2("x", x)?;
    cpu::softmax_last_axis(z.view_mut());
    t2("x", z.view())
}

/// The notebook's `smooth(loss, cur_loss) = 0.999·loss + 0.001·cur_loss`, the running
/// loss it prints.
pub fn smooth<A: Real>(loss: A, cur_loss: A) -> A {
    loss * A::from_f64(0.999) + cur_loss * A::from_f64(0.001)
}

/// The notebook's `get_initial_loss(vocab_size, seq_length) = −ln(1/vocab_size)·seq_length`,
/// the loss of uniform guesses (where the smoothed loss starts). A `vocab_size` of 0 is an
/// error naming it.
pub fn get_initial_loss<A: Real>(vocab_size: usize, seq_length: usize) -> Result<A> {
    if vocab_size == 0 {
        return Err(Error::Invalid {
            arg: "vocab_size",
            msg: "must be at least 1".into(),
        });
    }
    let v = -(1.0 / vocab_size as f64).ln() * seq_length as f64;
    Ok(A::from_f64(v))
}

/// The notebook's `initialize_parameters(n_a, n_x, n_y)`: `np.random.seed(1)`, then, in
/// this order, `Wax = randn(n_a, n_x)·0.01`, `Waa = randn(n_a, n_a)·0.01`,
/// `Wya = randn(n_y, n_a)·0.01` (drawn in `f64` by [`RandomState`], numpy's own
/// generator, scaled in `f64`, then rounded to `A`); `b` and `by` are zeros. A size of 0
/// is an error naming it; sizes too large for the host are [`Error::TooLarge`].
pub fn initialize_parameters<A: Real>(
    n_a: usize,
    n_x: usize,
    n_y: usize,
) -> Result<RnnParameters<A>> {
    for (arg, n) in [("n_a", n_a), ("n_x", n_x), ("n_y", n_y)] {
        if n == 0 {
            return Err(Error::Invalid {
                arg,
                msg: "must be at least 1".into(),
            });
        }
    }
    // Every size is checked before any draw.
    for (arg, d) in [
        ("n_x", [n_a, n_x]),
        ("n_a", [n_a, n_a]),
        ("n_y", [n_y, n_a]),
    ] {
        host::elems(arg, &d, std::mem::size_of::<f64>())?;
    }
    let mut rng = RandomState::new(1);
    let mut draw = |arg: &'static str, shape: (usize, usize)| -> Result<Array2<A>> {
        let w = rng.randn_array(arg, shape)?;
        Ok(w.mapv(|v| A::from_f64(v * 0.01)))
    };
    let wax = draw("n_x", (n_a, n_x))?;
    let waa = draw("n_a", (n_a, n_a))?;
    let wya = draw("n_y", (n_y, n_a))?;
    Ok(RnnParameters {
        wax,
        waa,
        wya,
        ba: host::zeros("n_a", (n_a, 1))?,
        by: host::zeros("n_y", (n_y, 1))?,
    })
}

/// The notebook's `rnn_step_forward(parameters, a_prev, x)`:
/// `a_next = tanh(Wax x + Waa a_prev + b)`, `p_t = softmax(Wya a_next + by)`, for
/// `a_prev (n_a, m)` and `x (n_x, m)` (`m ≥ 1`). Returns `(a_next, p_t)`.
pub fn rnn_step_forward<A: Real>(
    parameters: &RnnParameters<A>,
    a_prev: ArrayView2<A>,
    x: ArrayView2<A>,
) -> Result<(Array2<A>, Array2<A>)> {
    let lm = Lm::new(parameters)?;
    let m = x.ncols().max(1);
    check_nb("x", "(n_x, m) with m ≥ 1", &[lm.n_x(), m], x.shape())?;
    check_nb("a_prev", "(n_a, m)", &[lm.n_a(), m], a_prev.shape())?;
    let (a, y) = lm.step(t2("a_prev", a_prev)?.view(), t2("x", x)?.view())?;
    Ok((t2("x", a.view())?, t2("x", y.view())?))
}

/// Checks `X`, `Y` against each other and the sizes: indices in range, one target per
/// input, at least one step.
fn check_sequence(x: &[Option<usize>], y: &[usize], vocab_size: usize, n_y: usize) -> Result<()> {
    if x.is_empty() {
        return Err(Error::Invalid {
            arg: "X",
            msg: "needs at least one character".into(),
        });
    }
    if y.len() != x.len() {
        return Err(Error::Shape {
            arg: "Y",
            expected: format!("one target per input: len(Y) = len(X) = {}", x.len()),
            got: format!("len(Y) = {}", y.len()),
        });
    }
    if let Some((t, i)) = x
        .iter()
        .enumerate()
        .find_map(|(t, i)| i.filter(|&i| i >= vocab_size).map(|i| (t, i)))
    {
        return Err(Error::Invalid {
            arg: "X",
            msg: format!("X[{t}] = {i} is not below vocab_size = {vocab_size}"),
        });
    }
    if let Some((t, &i)) = y.iter().enumerate().find(|(_, &i)| i >= n_y) {
        return Err(Error::Invalid {
            arg: "Y",
            msg: format!("Y[{t}] = {i} is not below n_y = {n_y}"),
        });
    }
    Ok(())
}

/// The notebook's `rnn_forward(X, Y, a0, parameters, vocab_size)`: step `t` takes the
/// one-hot `x[t] (vocab_size, 1)` of `X[t]` (zeros for `None`) from `a[t−1]` (`a0` at
/// `t = 0`); `loss = −Σ_t ln y_hat[t][Y[t]]`, summed over the steps. Returns
/// `(loss, cache)`.
///
/// `vocab_size` must equal `n_x` (the columns of `parameters["Wax"]`; the notebook's
/// default is 27); `a0` is `(n_a, 1)`; `X` needs at least one character, `Y` one target
/// per input, every index in range (`X[t] < vocab_size`, `Y[t] < n_y`).
pub fn rnn_forward<A: Real>(
    x: &[Option<usize>],
    y: &[usize],
    a0: ArrayView2<A>,
    parameters: &RnnParameters<A>,
    vocab_size: usize,
) -> Result<(A, Cache<A>)> {
    let lm = Lm::new(parameters)?;
    if vocab_size != lm.n_x() {
        return Err(Error::Invalid {
            arg: "vocab_size",
            msg: format!(
                "{vocab_size} differs from n_x = {} (the columns of parameters[\"Wax\"])",
                lm.n_x()
            ),
        });
    }
    check_sequence(x, y, vocab_size, lm.n_y())?;
    check_nb("a0", "(n_a, 1)", &[lm.n_a(), 1], a0.shape())?;
    let t = x.len();
    let mut xs = host::zeros::<A, _, _>("X", (t, 1, vocab_size))?;
    for (s, i) in x.iter().enumerate() {
        if let Some(i) = *i {
            xs[[s, 0, i]] = A::one();
        }
    }
    let tr = cpu::forward(&lm.cell, xs.view(), Some(t2("a0", a0)?.view()), None)
        .map_err(|e| e.renamed(&[("x", "X"), ("h0", "a0")]))?;
    let yh = cpu::head_forward(&lm.head, tr.h.view())?;
    let mut loss = A::zero();
    for (s, &target) in y.iter().enumerate() {
        loss -= ln(yh[[s, 0, target]]);
    }
    let steps = |a: &Array3<A>| {
        (0..t)
            .map(|s| column(a.index_axis(Axis(1), 0), s))
            .collect()
    };
    let cache = Cache {
        y_hat: steps(&yh),
        a: steps(&tr.h),
        a0: host::copy("a0", &a0)?,
        x: steps(&xs),
    };
    Ok((loss, cache))
}

/// Checks the shapes of `gradients` against `lm`'s parameters (`da_next` against
/// `(n_a, m)`).
fn check_gradients<A: Real>(g: &Gradients<A>, lm: &Lm<A>, m: usize) -> Result<()> {
    let (n_a, n_x, n_y) = (lm.n_a(), lm.n_x(), lm.n_y());
    check_nb(
        r#"gradients["dWax"]"#,
        "(n_a, n_x)",
        &[n_a, n_x],
        g.dwax.shape(),
    )?;
    check_nb(
        r#"gradients["dWaa"]"#,
        "(n_a, n_a)",
        &[n_a, n_a],
        g.dwaa.shape(),
    )?;
    check_nb(
        r#"gradients["dWya"]"#,
        "(n_y, n_a)",
        &[n_y, n_a],
        g.dwya.shape(),
    )?;
    check_nb(r#"gradients["db"]"#, "(n_a, 1)", &[n_a, 1], g.db.shape())?;
    check_nb(r#"gradients["dby"]"#, "(n_y, 1)", &[n_y, 1], g.dby.shape())?;
    check_nb(
        r#"gradients["da_next"]"#,
        "(n_a, m)",
        &[n_a, m],
        g.da_next.shape(),
    )
}

/// The notebook's `rnn_step_backward(dy, gradients, parameters, x, a, a_prev)`, for one
/// step made from `x (n_x, m)` and `a_prev (n_a, m)` into `a (n_a, m)`, given
/// `dy (n_y, m)` on its logits `Wya a + by`. Accumulates into `gradients`:
/// `dWya += dy aᵀ`, `dby += dy`, then with `da = Wyaᵀ dy + da_next` and
/// `daraw = (1 − a²) ⊙ da` (the cell's backward, on the CPU path): `db += daraw`,
/// `dWax += daraw xᵀ`, `dWaa += daraw a_prevᵀ`; and sets `da_next = Waaᵀ daraw`. For
/// `m > 1` the bias gradients sum over the columns.
pub fn rnn_step_backward<A: Real>(
    dy: ArrayView2<A>,
    gradients: &mut Gradients<A>,
    parameters: &RnnParameters<A>,
    x: ArrayView2<A>,
    a: ArrayView2<A>,
    a_prev: ArrayView2<A>,
) -> Result<()> {
    let lm = Lm::new(parameters)?;
    let m = x.ncols().max(1);
    check_nb("x", "(n_x, m) with m ≥ 1", &[lm.n_x(), m], x.shape())?;
    check_nb("dy", "(n_y, m)", &[lm.n_y(), m], dy.shape())?;
    check_nb("a", "(n_a, m)", &[lm.n_a(), m], a.shape())?;
    check_nb("a_prev", "(n_a, m)", &[lm.n_a(), m], a_prev.shape())?;
    check_gradients(gradients, &lm, m)?;
    let da = parameters.wya.t().dot(&dy) + &gradients.da_next;
    let out = StepOut {
        h: t2("a", a)?,
        c: None,
        gates: None,
    };
    let g = cpu::step_backward(
        &lm.cell,
        t2("x", x)?.view(),
        t2("a_prev", a_prev)?.view(),
        None,
        &out,
        t2("dy", da.view())?.view(),
        None,
    )
    .map_err(|e| e.renamed(&[("x_t", "x"), ("h_prev", "a_prev"), ("dh", "dy")]))?;
    gradients.dwya += &dy.dot(&a.t());
    gradients.dby += &dy.sum_axis(Axis(1)).insert_axis(Axis(1));
    gradients.dwax += &g.dw_ih;
    gradients.dwaa += &g.dw_hh;
    gradients.db += &g.db.insert_axis(Axis(1));
    gradients.da_next = t2("a", g.dh_prev.view())?;
    Ok(())
}

/// `cache`'s per-step columns, each checked to be `(n, 1)`, stacked into `[T, 1, n]`.
fn stack<A: Real>(name: &'static str, cols: &[Array2<A>], n: usize) -> Result<Array3<A>> {
    let mut out = host::zeros("cache", (cols.len(), 1, n))?;
    for (t, c) in cols.iter().enumerate() {
        check_nb("cache", name, &[n, 1], c.shape())?;
        out.slice_mut(s![t, 0, ..]).assign(&c.column(0));
    }
    Ok(out)
}

/// The notebook's `rnn_backward(X, Y, parameters, cache)`: from zero gradients, walks
/// `t = T−1 … 0` with `dy = y_hat[t] − onehot(Y[t])` through [`rnn_step_backward`]'s
/// equations (the whole walk as one BPTT on the CPU path; the sums are the same).
/// Returns `(gradients, a)`, `a` the cached hidden states `a[t]`; `gradients.da_next`
/// ends as the gradient of the loss with respect to `a0`.
///
/// The inputs are read from the cache, as the notebook does; `X` and `Y` must be the
/// sequence the cache was made from (one step per cached step, indices in range).
pub fn rnn_backward<A: Real>(
    x: &[Option<usize>],
    y: &[usize],
    parameters: &RnnParameters<A>,
    cache: &Cache<A>,
) -> Result<(Gradients<A>, Vec<Array2<A>>)> {
    let lm = Lm::new(parameters)?;
    let (n_a, n_x, n_y) = (lm.n_a(), lm.n_x(), lm.n_y());
    check_sequence(x, y, n_x, n_y)?;
    let t = x.len();
    let lens = [cache.y_hat.len(), cache.a.len(), cache.x.len()];
    if lens != [t; 3] {
        return Err(Error::Shape {
            arg: "cache",
            expected: format!("(y_hat, a, x) of len(X) = {t} steps each"),
            got: format!("{lens:?} steps"),
        });
    }
    check_nb("cache", "a[-1] of (n_a, 1)", &[n_a, 1], cache.a0.shape())?;
    let xs = stack("x[t] of (n_x, 1)", &cache.x, n_x)?;
    let hs = stack("a[t] of (n_a, 1)", &cache.a, n_a)?;
    let mut dy = stack("y_hat[t] of (n_y, 1)", &cache.y_hat, n_y)?;
    for (s, &target) in y.iter().enumerate() {
        dy[[s, 0, target]] -= A::one();
    }
    let dy2 = dy.index_axis(Axis(1), 0);
    let dwya = dy2.t().dot(&hs.index_axis(Axis(1), 0));
    let dby = dy2.sum_axis(Axis(0)).insert_axis(Axis(1));
    let dh = dy2.dot(&lm.head.w_y).insert_axis(Axis(1));
    let trace = Trace {
        cell: Cell::Rnn,
        x: xs,
        h0: t2("cache", cache.a0.view())?,
        c0: None,
        h: hs,
        c: None,
        gates: None,
    };
    let g = cpu::backward(&lm.cell, &trace, dh.view(), None).map_err(|e| {
        e.renamed(&[
            ("trace.x", "cache"),
            ("trace.h0", "cache"),
            ("trace.h", "cache"),
        ])
    })?;
    let mut g = g;
    let gradients = Gradients {
        dwax: std::mem::take(&mut g.dw_ih),
        dwaa: std::mem::take(&mut g.dw_hh),
        dwya,
        db: std::mem::take(&mut g.db_ih).insert_axis(Axis(1)),
        dby,
        da_next: t2("cache", g.dh0.view())?,
    };
    Ok((gradients, cache.a.clone()))
}

/// The notebook's `update_parameters(parameters, gradients, lr)`: plain SGD,
/// `W −= lr·dW` for `Wax`, `Waa`, `Wya`, `b`, `by`, in place. A gradient whose shape
/// differs from its parameter's is an error naming it (`gradients["dWax"]`), and nothing
/// is updated.
pub fn update_parameters<A: Real>(
    parameters: &mut RnnParameters<A>,
    gradients: &Gradients<A>,
    lr: A,
) -> Result<()> {
    let p = parameters;
    let g = gradients;
    let pairs = [
        (r#"gradients["dWax"]"#, &p.wax, &g.dwax),
        (r#"gradients["dWaa"]"#, &p.waa, &g.dwaa),
        (r#"gradients["dWya"]"#, &p.wya, &g.dwya),
        (r#"gradients["db"]"#, &p.ba, &g.db),
        (r#"gradients["dby"]"#, &p.by, &g.dby),
    ];
    for (arg, w, dw) in pairs {
        check_nb(arg, "the shape of its parameter", w.shape(), dw.shape())?;
    }
    for (w, dw) in [
        (&mut p.wax, &g.dwax),
        (&mut p.waa, &g.dwaa),
        (&mut p.wya, &g.dwya),
        (&mut p.ba, &g.db),
        (&mut p.by, &g.dby),
    ] {
        w.zip_mut_with(dw, |w, &d| *w -= lr * d);
    }
    Ok(())
}

/// The exercise's `clip(gradients, maxValue)`: clips `dWaa`, `dWax`, `dWya`, `db` and
/// `dby` element-wise to `[−maxValue, maxValue]` in place (`np.clip(..., out=...)`);
/// `da_next` is left as it is, and NaN stays NaN. A negative or NaN `max_value` is an
/// error naming `maxValue`.
pub fn clip<A: Real>(gradients: &mut Gradients<A>, max_value: A) -> Result<()> {
    if matches!(
        max_value.partial_cmp(&A::zero()),
        None | Some(std::cmp::Ordering::Less)
    ) {
        return Err(Error::Invalid {
            arg: "maxValue",
            msg: format!("must be non-negative, got {max_value}"),
        });
    }
    let g = gradients;
    for d in [&mut g.dwaa, &mut g.dwax, &mut g.dwya, &mut g.db, &mut g.dby] {
        d.mapv_inplace(|v| {
            if v > max_value {
                max_value
            } else if v < -max_value {
                -max_value
            } else {
                v
            }
        });
    }
    Ok(())
}

/// The exercise's `sample(parameters, char_to_ix, seed)`: from `x = 0` and `a_prev = 0`,
/// steps the RNN (`vocab_size = n_y`, the rows of `parameters["by"]`, which must equal
/// `n_x`), and at each step re-seeds numpy's generator with `counter + seed` and draws
/// the next index with `np.random.choice(range(vocab_size), p = y.ravel())`
/// ([`RandomState::choice`]), feeding its one-hot back; stops after drawing the index of
/// `'\n'` in `char_to_ix` or after 50 draws; after 50 draws it appends the newline index
/// (as the exercise does, even when the 50th draw was the newline). Returns the indices.
///
/// `char_to_ix` is the exercise's map from characters to indices; only its `'\n'` entry
/// is read. The exercise increments both `seed` and `counter` each step, so draw `k`
/// (from 0) uses seed `seed + 2k`; a seed past `2^32 − 1` (numpy's limit) is an error
/// naming `seed`. A `char_to_ix` without `'\n'`, or with it out of range, is an error
/// naming `char_to_ix`.
pub fn sample<A: Real>(
    parameters: &RnnParameters<A>,
    char_to_ix: &HashMap<char, usize>,
    seed: u32,
) -> Result<Vec<usize>> {
    let lm = Lm::new(parameters)?;
    let (n_a, vocab_size) = (lm.n_a(), lm.n_y());
    check_nb(
        r#"parameters["Wax"]"#,
        "(n_a, vocab_size) with vocab_size = by.shape[0]",
        &[n_a, vocab_size],
        parameters.wax.shape(),
    )?;
    let newline = *char_to_ix.get(&'\n').ok_or_else(|| Error::Invalid {
        arg: "char_to_ix",
        msg: "has no entry for '\\n'".into(),
    })?;
    if newline >= vocab_size {
        return Err(Error::Invalid {
            arg: "char_to_ix",
            msg: format!("char_to_ix['\\n'] = {newline} is not below vocab_size = {vocab_size}"),
        });
    }
    // numpy's tolerance on the probabilities' sum: sqrt(eps) of their dtype.
    let atol = if std::mem::size_of::<A>() == 4 {
        f64::from(f32::EPSILON).sqrt()
    } else {
        f64::EPSILON.sqrt()
    };
    let mut x = host::zeros::<A, _, _>("parameters", (1, vocab_size))?;
    let mut a_prev = host::zeros::<A, _, _>("parameters", (1, n_a))?;
    let mut rng = RandomState::new(0);
    let mut indices = Vec::new();
    let mut idx = None;
    let (mut counter, mut seed) = (0u64, u64::from(seed));
    while idx != Some(newline) && counter != 50 {
        let (a, y) = lm.step(a_prev.view(), x.view())?;
        let s = u32::try_from(counter + seed).map_err(|_| Error::Invalid {
            arg: "seed",
            msg: format!("np.random.seed({}) is past 2^32 - 1", counter + seed),
        })?;
        rng.seed(s);
        let p: Vec<f64> = y.iter().map(|v| v.to_f64()).collect();
        let i = rng
            .choice(&p, atol)
            .map_err(|e| e.renamed(&[("p", "parameters")]))?;
        indices.push(i);
        x.fill(A::zero());
        x[[0, i]] = A::one();
        a_prev = a;
        idx = Some(i);
        seed += 1;
        counter += 1;
    }
    if counter == 50 {
        indices.push(newline);
    }
    Ok(indices)
}

/// The exercise's `optimize(X, Y, a_prev, parameters, learning_rate)`: one step of
/// training: [`rnn_forward`] (`vocab_size = n_x`) from `a_prev (n_a, 1)`,
/// [`rnn_backward`], [`clip`] to 5, [`update_parameters`] in place. Returns
/// `(loss, gradients, a[len(X) − 1])`: the loss before the update, the clipped
/// gradients, and the last hidden state (to carry to the next example).
pub fn optimize<A: Real>(
    x: &[Option<usize>],
    y: &[usize],
    a_prev: ArrayView2<A>,
    parameters: &mut RnnParameters<A>,
    learning_rate: A,
) -> Result<(A, Gradients<A>, Array2<A>)> {
    let n_x = parameters.wax.ncols();
    let (loss, cache) =
        rnn_forward(x, y, a_prev, parameters, n_x).map_err(|e| e.renamed(&[("a0", "a_prev")]))?;
    let (mut gradients, a) = rnn_backward(x, y, parameters, &cache)?;
    clip(&mut gradients, A::from_f64(5.0))?;
    update_parameters(parameters, &gradients, learning_rate)?;
    let last = a.into_iter().next_back().ok_or_else(|| Error::Invalid {
        arg: "X",
        msg: "needs at least one character".into(),
    })?;
    Ok((loss, gradients, last))
}
