//! Host-side weights in PyTorch's layout, and converters from the notebook's layout.

use ndarray::{s, Array1, Array2, ArrayView2};

use crate::cell::CellDef;
use crate::error::{check_shape, fmt_shape, Error, Result};
use crate::host;
use crate::real::Real;

/// The kind of recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cell {
    /// Elman RNN: `h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`.
    Rnn,
    /// LSTM with PyTorch's gate order i, f, g, o.
    Lstm,
    /// GRU, gate order r, z, n, `h' = (1 − z) ⊙ n + z ⊙ h`, weights packed as PyTorch
    /// packs them. `reset_after: true` is PyTorch's `nn.GRU` (and Keras's default): the
    /// reset gate acts after the recurrent product, `n = tanh(W_in x + b_in + r ⊙ (W_hn h
    /// + b_hn))`. `reset_after: false` is the lecture's GRU (Keras's
    /// `reset_after=False`): `n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)`; see
    /// [`Params::gru_from_notebook`]. On the GPU that variant takes two dispatches per
    /// step, forward and backward (the candidate needs the whole row of `r ⊙ h`).
    Gru {
        /// Whether the reset gate acts after the recurrent product (PyTorch) or before
        /// it (the lecture).
        reset_after: bool,
    },
}

impl Cell {
    /// Every cell kind.
    pub const ALL: [Cell; 4] = [
        Cell::Rnn,
        Cell::Lstm,
        Cell::Gru { reset_after: true },
        Cell::Gru { reset_after: false },
    ];

    /// PyTorch's `nn.GRU` (the reset gate after the product).
    pub const GRU: Cell = Cell::Gru { reset_after: true };

    /// Number of gate blocks `G` stacked in the weights: 1 for the RNN, 4 for the LSTM,
    /// 3 for the GRU.
    pub fn gates(self) -> usize {
        crate::cell::with_cell!(self, C => C::GATES)
    }

    /// Lower-case name (`"rnn"`, `"lstm"`, `"gru"`, `"gru_reset_before"`).
    pub fn name(self) -> &'static str {
        crate::cell::with_cell!(self, C => C::NAME)
    }

    /// Whether the cell has a cell state `c` beside `h` (the LSTM).
    pub fn has_cell_state(self) -> bool {
        crate::cell::with_cell!(self, C => C::HAS_C)
    }
}

/// The weights of one recurrent layer, in PyTorch's layout, so trained models move both
/// ways: `w_ih [G·H, I]`, `w_hh [G·H, H]`, `b_ih [G·H]`, `b_hh [G·H]`, with `G` from
/// [`Cell::gates`], the LSTM gates stacked in the order i, f, g, o and the GRU's r, z, n.
///
/// The fields are public; every function that takes a `Params` checks it again with
/// [`Params::check`], so inconsistent edits come back as an [`Error`], never a panic.
#[derive(Debug, Clone, PartialEq)]
pub struct Params<A> {
    /// The cell kind.
    pub cell: Cell,
    /// Input weights `[G·H, I]`.
    pub w_ih: Array2<A>,
    /// Recurrent weights `[G·H, H]`.
    pub w_hh: Array2<A>,
    /// Input bias `[G·H]`.
    pub b_ih: Array1<A>,
    /// Recurrent bias `[G·H]`.
    pub b_hh: Array1<A>,
}

impl<A: Real> Params<A> {
    /// Builds parameters, checking that all sizes agree with `w_hh`'s `[G·H, H]`.
    pub fn new(
        cell: Cell,
        w_ih: Array2<A>,
        w_hh: Array2<A>,
        b_ih: Array1<A>,
        b_hh: Array1<A>,
    ) -> Result<Self> {
        let p = Params {
            cell,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
        };
        p.check()?;
        Ok(p)
    }

    /// Checks that the four arrays agree with each other and with the cell kind.
    pub fn check(&self) -> Result<()> {
        let g = self.cell.gates();
        let (rows, h) = self.w_hh.dim();
        // G·H checked: a wrapped product must not pass for a small `rows`.
        if h == 0 || g.checked_mul(h) != Some(rows) {
            return Err(Error::Shape {
                arg: "w_hh",
                expected: format!("[G·H, H] with G = {g} and H ≥ 1"),
                got: fmt_shape(self.w_hh.shape()),
            });
        }
        let i = self.w_ih.ncols();
        if i == 0 {
            return Err(Error::Shape {
                arg: "w_ih",
                expected: format!("[G·H, I] = [{}, I] with I ≥ 1", g * h),
                got: fmt_shape(self.w_ih.shape()),
            });
        }
        check_shape("w_ih", "[G·H, I]", &[g * h, i], self.w_ih.shape())?;
        check_shape("b_ih", "[G·H]", &[g * h], self.b_ih.shape())?;
        check_shape("b_hh", "[G·H]", &[g * h], self.b_hh.shape())?;
        Ok(())
    }

    /// Input size `I`.
    pub fn input_size(&self) -> usize {
        self.w_ih.ncols()
    }

    /// Hidden size `H`.
    pub fn hidden_size(&self) -> usize {
        self.w_hh.ncols()
    }

    /// All-zero parameters. Sizes are checked ([`Error::TooLarge`] when `G·H·(I + H)`
    /// overflows) and the memory is allocated fallibly ([`Error::OutOfMemory`]).
    pub fn zeros(cell: Cell, input: usize, hidden: usize) -> Result<Self> {
        let gh = gate_rows(cell, hidden)?;
        Ok(Params {
            cell,
            w_ih: host::zeros("input", (gh, input))?,
            w_hh: host::zeros("hidden", (gh, hidden))?,
            b_ih: host::zeros("hidden", gh)?,
            b_hh: host::zeros("hidden", gh)?,
        })
    }

    /// PyTorch's default initialisation, `U(-1/√H, 1/√H)` for every weight and bias,
    /// from a deterministic generator seeded with `seed`. Sizes are checked and allocated
    /// as in [`Params::zeros`].
    pub fn init(cell: Cell, input: usize, hidden: usize, seed: u64) -> Result<Self> {
        let mut p = Self::zeros(cell, input, hidden)?;
        let mut rng = SplitMix64(seed);
        let k = 1.0 / (hidden.max(1) as f64).sqrt();
        let mut u = || A::from_f64(k * (2.0 * rng.next_f64() - 1.0));
        // Same draw order as before: w_ih, w_hh, b_ih, b_hh, each row-major.
        p.w_ih.iter_mut().for_each(|v| *v = u());
        p.w_hh.iter_mut().for_each(|v| *v = u());
        p.b_ih.iter_mut().for_each(|v| *v = u());
        p.b_hh.iter_mut().for_each(|v| *v = u());
        Ok(p)
    }

    /// The same parameters in another float type.
    pub fn cast<B: Real>(&self) -> Params<B> {
        let c = |v: &A| B::from_f64(v.to_f64());
        Params {
            cell: self.cell,
            w_ih: self.w_ih.map(c),
            w_hh: self.w_hh.map(c),
            b_ih: self.b_ih.map(c),
            b_hh: self.b_hh.map(c),
        }
    }

    /// The combined bias `b_ih + b_hh`.
    pub fn bias(&self) -> Array1<A> {
        &self.b_ih + &self.b_hh
    }

    /// From the notebook's tanh RNN weights: `Wax [H, I]`, `Waa [H, H]`, `ba [H, 1]`.
    /// The bias goes to `b_ih`; `b_hh` is zero.
    pub fn rnn_from_notebook(
        wax: ArrayView2<A>,
        waa: ArrayView2<A>,
        ba: ArrayView2<A>,
    ) -> Result<Self> {
        let h = waa.nrows();
        check_shape("Waa", "[n_a, n_a]", &[h, h], waa.shape())?;
        check_shape("Wax", "[n_a, n_x]", &[h, wax.ncols()], wax.shape())?;
        check_shape("ba", "[n_a, 1]", &[h, 1], ba.shape())?;
        Params::new(
            Cell::Rnn,
            host::copy("Wax", &wax)?,
            host::copy("Waa", &waa)?,
            host::copy("ba", &ba.column(0))?,
            host::zeros("ba", h)?,
        )
    }

    /// From the notebook's LSTM weights, each `W [H, H + I]` acting on `[a; x]` (the
    /// hidden rows first) and each bias `[H, 1]`. The bias goes to `b_ih`; `b_hh` is zero.
    #[allow(clippy::too_many_arguments)]
    pub fn lstm_from_notebook(
        wf: ArrayView2<A>,
        bf: ArrayView2<A>,
        wi: ArrayView2<A>,
        bi: ArrayView2<A>,
        wc: ArrayView2<A>,
        bc: ArrayView2<A>,
        wo: ArrayView2<A>,
        bo: ArrayView2<A>,
    ) -> Result<Self> {
        // PyTorch order i, f, g, o.
        Self::from_gate_blocks(
            Cell::Lstm,
            &[
                ("Wi", wi, "bi", bi, false),
                ("Wf", wf, "bf", bf, false),
                ("Wc", wc, "bc", bc, false),
                ("Wo", wo, "bo", bo, false),
            ],
        )
    }

    /// From the lecture's GRU weights (the reset gate before the product: the result is
    /// a `Cell::Gru { reset_after: false }`), each `W [H, H + I]` acting on `[c; x]`
    /// (the state rows first) and each bias `[H, 1]`:
    /// `Γ_u = σ(W_u [c; x] + b_u)`, `Γ_r = σ(W_r [c; x] + b_r)`,
    /// `c̃ = tanh(W_c [Γ_r ⊙ c; x] + b_c)`, `c' = Γ_u ⊙ c̃ + (1 − Γ_u) ⊙ c`.
    /// PyTorch's update gate weighs the *old* state (`h' = (1 − z) ⊙ n + z ⊙ h`), so
    /// `z = 1 − Γ_u = σ(−(W_u [c; x] + b_u))`: the update gate's weights and bias are
    /// stored negated. The biases go to `b_ih`; `b_hh` is zero.
    pub fn gru_from_notebook(
        wu: ArrayView2<A>,
        bu: ArrayView2<A>,
        wr: ArrayView2<A>,
        br: ArrayView2<A>,
        wc: ArrayView2<A>,
        bc: ArrayView2<A>,
    ) -> Result<Self> {
        // Gate order r, z, n.
        Self::from_gate_blocks(
            Cell::Gru { reset_after: false },
            &[
                ("Wr", wr, "br", br, false),
                ("Wu", wu, "bu", bu, true),
                ("Wc", wc, "bc", bc, false),
            ],
        )
    }

    /// Packs the notebook's per-gate `W [H, H + I]` on `[state; x]` and `b [H, 1]`, in
    /// the cell's gate order, negated where asked; the first weight sets `H` and `I`.
    fn from_gate_blocks(cell: Cell, gates: &[NotebookGate<'_, A>]) -> Result<Self> {
        let (first, w0) = (gates[0].0, &gates[0].1);
        let (h, cols) = w0.dim();
        if h == 0 || cols <= h {
            return Err(Error::Shape {
                arg: first,
                expected: "[n_a, n_a + n_x] with n_a ≥ 1, n_x ≥ 1".into(),
                got: fmt_shape(w0.shape()),
            });
        }
        for (name, w, b_name, b, _) in gates {
            check_shape(name, "[n_a, n_a + n_x]", &[h, cols], w.shape())?;
            check_shape(b_name, "[n_a, 1]", &[h, 1], b.shape())?;
        }
        let n_x = cols - h;
        let gh = gate_rows(cell, h)?;
        let mut w_ih = host::zeros(first, (gh, n_x))?;
        let mut w_hh = host::zeros(first, (gh, h))?;
        let mut b_ih = host::zeros(first, gh)?;
        for (k, (_, w, _, b, negate)) in gates.iter().enumerate() {
            let sign = if *negate { -A::one() } else { A::one() };
            let rows = s![k * h..(k + 1) * h, ..];
            w_hh.slice_mut(rows)
                .assign(&w.slice(s![.., ..h]).mapv(|v| sign * v));
            w_ih.slice_mut(rows)
                .assign(&w.slice(s![.., h..]).mapv(|v| sign * v));
            b_ih.slice_mut(s![k * h..(k + 1) * h])
                .assign(&b.column(0).mapv(|v| sign * v));
        }
        Params::new(cell, w_ih, w_hh, b_ih, host::zeros(first, gh)?)
    }
}

/// One gate of a notebook-layout cell: the weight's name and `W [H, H + I]`, the bias's
/// name and `b [H, 1]`, and whether the library's gate is its negation.
type NotebookGate<'a, A> = (
    &'static str,
    ArrayView2<'a, A>,
    &'static str,
    ArrayView2<'a, A>,
    bool,
);

/// `G·H`, checked.
fn gate_rows(cell: Cell, hidden: usize) -> Result<usize> {
    host::elems("hidden", &[cell.gates(), hidden], 1)
}

/// An output head `y = softmax(W_y h + b_y)` over the class axis, applied to every step.
#[derive(Debug, Clone, PartialEq)]
pub struct Head<A> {
    /// Output weights `[C, H]`.
    pub w_y: Array2<A>,
    /// Output bias `[C]`.
    pub b_y: Array1<A>,
}

impl<A: Real> Head<A> {
    /// Builds a head, checking that `b_y` has one entry per row of `w_y`.
    pub fn new(w_y: Array2<A>, b_y: Array1<A>) -> Result<Self> {
        let h = Head { w_y, b_y };
        h.check()?;
        Ok(h)
    }

    /// Checks that the sizes agree.
    pub fn check(&self) -> Result<()> {
        let (c, h) = self.w_y.dim();
        if c == 0 || h == 0 {
            return Err(Error::Shape {
                arg: "w_y",
                expected: "[C, H] with C ≥ 1, H ≥ 1".into(),
                got: fmt_shape(self.w_y.shape()),
            });
        }
        check_shape("b_y", "[C]", &[c], self.b_y.shape())
    }

    /// From the notebook's `Wya` (or `Wy`) `[n_y, n_a]` and `by [n_y, 1]`.
    pub fn from_notebook(wy: ArrayView2<A>, by: ArrayView2<A>) -> Result<Self> {
        check_shape("by", "[n_y, 1]", &[wy.nrows(), 1], by.shape())?;
        Head::new(host::copy("Wy", &wy)?, host::copy("by", &by.column(0))?)
    }

    /// Number of classes `C`.
    pub fn classes(&self) -> usize {
        self.w_y.nrows()
    }

    /// The same head in another float type.
    pub fn cast<B: Real>(&self) -> Head<B> {
        let c = |v: &A| B::from_f64(v.to_f64());
        Head {
            w_y: self.w_y.map(c),
            b_y: self.b_y.map(c),
        }
    }
}

/// A small deterministic generator (SplitMix64) for initialisation and benchmarks.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform double in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
