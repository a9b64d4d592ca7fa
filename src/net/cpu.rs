//! A network on the CPU (generic over `f32` and `f64`): the oracle of the GPU network and
//! of PyTorch parity. Each layer and direction runs [`crate::cpu::forward`] over the
//! sequence, the reverse direction over the time-reversed sequence; with lengths, the
//! batch rows of each length run together over their own steps (the reverse direction
//! starting at each sequence's own end), outputs past a sequence's end are zero and its
//! final state is the one at its own last step.

use ndarray::{s, Array2, Array3, ArrayView3, Axis};

use super::{NetConfig, NetParams};
use crate::cpu::{self, Grads, Trace};
use crate::error::{check_shape, fmt_shape, Error, Result};
use crate::host;
use crate::real::Real;

/// One run of a layer's direction: the batch rows that share a length, over their steps.
#[derive(Debug, Clone)]
struct Run<A> {
    rows: Vec<usize>,
    steps: usize,
    trace: Trace<A>,
}

/// What a network forward keeps: its outputs, and per layer and direction the traces of
/// its runs, for [`backward`].
#[derive(Debug, Clone)]
pub struct NetTrace<A> {
    /// The last layer's output `[T, B, D·H]`, forward direction first (zero past each
    /// sequence's end).
    pub output: Array3<A>,
    /// Final hidden states `[L·D, B, H]` (each sequence's at its own last step).
    pub h_n: Array3<A>,
    /// Final cell states `[L·D, B, H]` (cells with a cell state).
    pub c_n: Option<Array3<A>>,
    config: NetConfig,
    batch: usize,
    steps: usize,
    /// The seed of the dropout masks between layers (training with dropout).
    dropout_seed: Option<u64>,
    /// `L·D` entries, each the runs of one layer's direction.
    runs: Vec<Vec<Run<A>>>,
}

impl<A> NetTrace<A> {
    /// The seed of the dropout masks between layers, when the forward trained with
    /// dropout ([`forward_train`]).
    pub fn dropout_seed(&self) -> Option<u64> {
        self.dropout_seed
    }
}

/// Dropout in place on layer `layer`'s output `[T, B, D·H]` (the caller's batch order):
/// the mask of [`super::dropout_keep`], kept elements scaled by `1 / (1 − p)`.
fn drop_out<A: Real>(a: &mut Array3<A>, layer: usize, seed: u64, p: f32) {
    let scale = A::from_f64((1.0 / (1.0 - p)) as f64);
    for (k, v) in a.iter_mut().enumerate() {
        *v = if super::dropout_keep(seed, layer as u32, k as u32, p) {
            *v * scale
        } else {
            A::zero()
        };
    }
}

/// Gradients of a network backward.
#[derive(Debug, Clone)]
pub struct NetGrads<A> {
    /// `[T, B, I]` (zero past each sequence's end).
    pub dx: Array3<A>,
    /// `[L·D, B, H]`.
    pub dh0: Array3<A>,
    /// `[L·D, B, H]` (cells with a cell state).
    pub dc0: Option<Array3<A>>,
    /// Per layer and direction (`l·D + d`), the parameter gradients in PyTorch's layout
    /// (`dx`, `dh0`, `dc0` of these are empty: see the fields above).
    pub layers: Vec<Grads<A>>,
    config: NetConfig,
}

impl<A: Real> NetGrads<A> {
    /// The parameter gradients under PyTorch's `state_dict` names (`weight_ih_l0`,
    /// `bias_hh_l1_reverse`, …; no biases when the network has none), in PyTorch's
    /// order, each flattened row-major.
    pub fn named(&self) -> Vec<(String, Vec<A>)> {
        let c = &self.config;
        let mut out = Vec::new();
        for (k, g) in self.layers.iter().enumerate() {
            let (l, d) = (k / c.directions(), k % c.directions());
            let key = |what| super::state_dict::key(what, l, d);
            out.push((key("weight_ih"), g.dw_ih.iter().copied().collect()));
            out.push((key("weight_hh"), g.dw_hh.iter().copied().collect()));
            if c.bias {
                out.push((key("bias_ih"), g.db_ih.to_vec()));
                out.push((key("bias_hh"), g.db_hh.to_vec()));
            }
        }
        out
    }
}

/// Checks `lengths` (one per batch row, each in `1..=T`) and groups the rows by length:
/// `(length, rows)` in increasing length; without lengths, one group of every row.
fn groups(lengths: Option<&[usize]>, t: usize, b: usize) -> Result<Vec<(usize, Vec<usize>)>> {
    let Some(lengths) = lengths else {
        return Ok(vec![(t, (0..b).collect())]);
    };
    if lengths.len() != b {
        return Err(Error::Shape {
            arg: "lengths",
            expected: format!("[B] = [{b}], one length per batch row"),
            got: fmt_shape(&[lengths.len()]),
        });
    }
    if let Some((row, &len)) = lengths.iter().enumerate().find(|(_, &n)| n == 0 || n > t) {
        return Err(Error::Invalid {
            arg: "lengths",
            msg: format!("lengths[{row}] = {len}; each must be in 1..={t} (T)"),
        });
    }
    let mut by_len: Vec<(usize, Vec<usize>)> = Vec::new();
    for (row, &len) in lengths.iter().enumerate() {
        match by_len.iter_mut().find(|(n, _)| *n == len) {
            Some((_, rows)) => rows.push(row),
            None => by_len.push((len, vec![row])),
        }
    }
    by_len.sort_by_key(|(n, _)| *n);
    Ok(by_len)
}

/// `a[..steps, rows, cols]` in standard layout, in reverse time order when `reverse`.
fn gather<A: Real>(
    a: &ArrayView3<A>,
    steps: usize,
    rows: &[usize],
    cols: std::ops::Range<usize>,
    reverse: bool,
) -> Result<Array3<A>> {
    let mut v = a.slice(s![..steps, .., cols]);
    if reverse {
        v.invert_axis(Axis(0));
    }
    let picked = v.select(Axis(1), rows);
    host::copy("x", &picked)
}

/// Adds `src [steps, rows, F]` (in reverse time order when `reverse`) into
/// `dst[..steps, rows, cols]`.
fn scatter_add<A: Real>(
    dst: &mut Array3<A>,
    src: &Array3<A>,
    rows: &[usize],
    cols: std::ops::Range<usize>,
    reverse: bool,
) {
    let steps = src.len_of(Axis(0));
    for (k, &row) in rows.iter().enumerate() {
        for t in 0..steps {
            let from = if reverse { steps - 1 - t } else { t };
            let mut d = dst.slice_mut(s![t, row, cols.clone()]);
            d += &src.slice(s![from, k, ..]);
        }
    }
}

/// Checks a state argument `[L·D, B, H]`.
fn check_state<A>(
    arg: &'static str,
    v: &Option<ArrayView3<A>>,
    c: &NetConfig,
    b: usize,
) -> Result<()> {
    match v {
        Some(v) => check_shape(
            arg,
            "[L·D, B, H]",
            &[c.num_layers * c.directions(), b, c.hidden_size],
            v.shape(),
        ),
        None => Ok(()),
    }
}

/// The rows `rows` of block `k` of a state `[L·D, B, H]`.
fn state_rows<A: Real>(v: &Option<ArrayView3<A>>, k: usize, rows: &[usize]) -> Option<Array2<A>> {
    v.as_ref()
        .map(|v| v.index_axis(Axis(0), k).select(Axis(0), rows))
}

/// Network forward over `x [T, B, I]` from `h0` (and `c0`) `[L·D, B, H]`, zeros when
/// `None`; `lengths` (one per batch row, each in `1..=T`) makes it a batch of
/// variable-length sequences. No dropout (PyTorch's evaluation mode).
pub fn forward<A: Real>(
    p: &NetParams<A>,
    x: ArrayView3<A>,
    h0: Option<ArrayView3<A>>,
    c0: Option<ArrayView3<A>>,
    lengths: Option<&[usize]>,
) -> Result<NetTrace<A>> {
    run(p, x, h0, c0, lengths, None)
}

/// [`forward`] in training: dropout of probability `config.dropout` on every layer's
/// output but the last's, the masks drawn from `seed` — the same masks as the GPU
/// network's for that seed ([`backward`] applies them again).
pub fn forward_train<A: Real>(
    p: &NetParams<A>,
    x: ArrayView3<A>,
    h0: Option<ArrayView3<A>>,
    c0: Option<ArrayView3<A>>,
    lengths: Option<&[usize]>,
    seed: u64,
) -> Result<NetTrace<A>> {
    run(p, x, h0, c0, lengths, Some(seed))
}

fn run<A: Real>(
    p: &NetParams<A>,
    x: ArrayView3<A>,
    h0: Option<ArrayView3<A>>,
    c0: Option<ArrayView3<A>>,
    lengths: Option<&[usize]>,
    seed: Option<u64>,
) -> Result<NetTrace<A>> {
    p.check()?;
    let c = p.config;
    let (t, b, i) = x.dim();
    if t == 0 || b == 0 || i != c.input_size {
        return Err(Error::Shape {
            arg: "x",
            expected: format!("[T, B, I] with T ≥ 1, B ≥ 1, I = {}", c.input_size),
            got: fmt_shape(x.shape()),
        });
    }
    check_state("h0", &h0, &c, b)?;
    if c0.is_some() && !c.cell.has_cell_state() {
        return Err(Error::Invalid {
            arg: "c0",
            msg: format!("a {} has no cell state: pass None", c.cell.name()),
        });
    }
    check_state("c0", &c0, &c, b)?;
    let groups = groups(lengths, t, b)?;
    let (hs, dirs) = (c.hidden_size, c.directions());
    let ld = c.num_layers * dirs;
    let mut h_n = host::zeros::<A, _, _>("x", (ld, b, hs))?;
    let mut c_n = match c.cell.has_cell_state() {
        true => Some(host::zeros::<A, _, _>("x", (ld, b, hs))?),
        false => None,
    };
    let mut input = host::copy("x", &x)?;
    let mut runs = Vec::with_capacity(ld);
    for l in 0..c.num_layers {
        let mut out = host::zeros::<A, _, _>("x", (t, b, dirs * hs))?;
        for d in 0..dirs {
            let k = l * dirs + d;
            let mut layer_runs = Vec::with_capacity(groups.len());
            for (steps, rows) in &groups {
                let xs = gather(
                    &input.view(),
                    *steps,
                    rows,
                    0..input.len_of(Axis(2)),
                    d == 1,
                )?;
                let h0r = state_rows(&h0, k, rows);
                let c0r = state_rows(&c0, k, rows);
                let tr = cpu::forward(
                    &p.layers[k],
                    xs.view(),
                    h0r.as_ref().map(|a| a.view()),
                    c0r.as_ref().map(|a| a.view()),
                )?;
                scatter_add(&mut out, &tr.h, rows, d * hs..(d + 1) * hs, d == 1);
                for (j, &row) in rows.iter().enumerate() {
                    if let Some(last) = tr.h_last() {
                        h_n.slice_mut(s![k, row, ..]).assign(&last.row(j));
                    }
                    if let (Some(c_n), Some(last)) = (&mut c_n, tr.c_last()) {
                        c_n.slice_mut(s![k, row, ..]).assign(&last.row(j));
                    }
                }
                layer_runs.push(Run {
                    rows: rows.clone(),
                    steps: *steps,
                    trace: tr,
                });
            }
            runs.push(layer_runs);
        }
        input = out;
        if let Some(seed) = seed.filter(|_| c.dropout > 0.0 && l + 1 < c.num_layers) {
            drop_out(&mut input, l, seed, c.dropout);
        }
    }
    Ok(NetTrace {
        output: input,
        h_n,
        c_n,
        config: c,
        batch: b,
        steps: t,
        dropout_seed: seed.filter(|_| c.dropout > 0.0 && c.num_layers > 1),
        runs,
    })
}

/// Network backward from `d_output [T, B, D·H]` (entries past a sequence's end are
/// ignored) and optional gradients on the final states `d_h_n`, `d_c_n` `[L·D, B, H]`.
pub fn backward<A: Real>(
    p: &NetParams<A>,
    trace: &NetTrace<A>,
    d_output: ArrayView3<A>,
    d_h_n: Option<ArrayView3<A>>,
    d_c_n: Option<ArrayView3<A>>,
) -> Result<NetGrads<A>> {
    p.check()?;
    let c = p.config;
    if trace.config != c {
        return Err(Error::Invalid {
            arg: "trace",
            msg: format!(
                "made by a network of {}; these parameters are of {}",
                trace.config.describe(),
                c.describe()
            ),
        });
    }
    let (t, b, hs, dirs) = (trace.steps, trace.batch, c.hidden_size, c.directions());
    check_shape(
        "d_output",
        "[T, B, D·H]",
        &[t, b, dirs * hs],
        d_output.shape(),
    )?;
    check_state("d_h_n", &d_h_n, &c, b)?;
    if d_c_n.is_some() && !c.cell.has_cell_state() {
        return Err(Error::Invalid {
            arg: "d_c_n",
            msg: format!("a {} has no cell state: pass None", c.cell.name()),
        });
    }
    check_state("d_c_n", &d_c_n, &c, b)?;
    let ld = c.num_layers * dirs;
    let mut dh0 = host::zeros::<A, _, _>("trace", (ld, b, hs))?;
    let mut dc0 = match c.cell.has_cell_state() {
        true => Some(host::zeros::<A, _, _>("trace", (ld, b, hs))?),
        false => None,
    };
    let mut layers: Vec<Option<Grads<A>>> = vec![None; ld];
    let mut d_out = host::copy("d_output", &d_output)?;
    for l in (0..c.num_layers).rev() {
        let mut d_in = host::zeros::<A, _, _>("trace", (t, b, c.layer_input(l)))?;
        for d in 0..dirs {
            let k = l * dirs + d;
            let mut sum: Option<Grads<A>> = None;
            for run in &trace.runs[k] {
                let mut dh = gather(
                    &d_out.view(),
                    run.steps,
                    &run.rows,
                    d * hs..(d + 1) * hs,
                    d == 1,
                )?;
                // The final state is the last processed step's.
                if let Some(dn) = state_rows(&d_h_n, k, &run.rows) {
                    let mut last = dh.index_axis_mut(Axis(0), run.steps - 1);
                    last += &dn;
                }
                let dcl = state_rows(&d_c_n, k, &run.rows);
                let g = cpu::backward(
                    &p.layers[k],
                    &run.trace,
                    dh.view(),
                    dcl.as_ref().map(|a| a.view()),
                )?;
                let cols = d_in.len_of(Axis(2));
                scatter_add(&mut d_in, &g.dx, &run.rows, 0..cols, d == 1);
                for (j, &row) in run.rows.iter().enumerate() {
                    dh0.slice_mut(s![k, row, ..]).assign(&g.dh0.row(j));
                    if let (Some(dc0), Some(g0)) = (&mut dc0, &g.dc0) {
                        dc0.slice_mut(s![k, row, ..]).assign(&g0.row(j));
                    }
                }
                sum = Some(match sum {
                    None => g,
                    Some(mut acc) => {
                        acc.dw_ih += &g.dw_ih;
                        acc.dw_hh += &g.dw_hh;
                        acc.db_ih += &g.db_ih;
                        acc.db_hh += &g.db_hh;
                        acc
                    }
                });
            }
            layers[k] = sum.map(|mut g| {
                crate::host::cache::give_array(&mut g.dx);
                g.dh0 = Array2::zeros((0, 0));
                g.dc0 = None;
                g
            });
        }
        // Layer l's input was layer l − 1's output after dropout: its gradient goes
        // through the same mask.
        if let Some(seed) = trace.dropout_seed.filter(|_| l > 0) {
            drop_out(&mut d_in, l - 1, seed, c.dropout);
        }
        d_out = d_in;
    }
    let layers = layers
        .into_iter()
        .map(|g| g.ok_or_else(|| Error::Device("internal: a layer ran no batch rows".into())))
        .collect::<Result<_>>()?;
    Ok(NetGrads {
        dx: d_out,
        dh0,
        dc0,
        layers,
        config: c,
    })
}
