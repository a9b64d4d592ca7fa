//! Networks like PyTorch's `nn.RNN`, `nn.LSTM` and `nn.GRU`: `num_layers` stacked
//! layers, each one or two directions, with or without biases, over sequences of one
//! length or of one length per batch row (PyTorch's packed sequences), and their weights
//! in and out of safetensors files under PyTorch's `state_dict` names.
//!
//! Shapes, as PyTorch has them (time-major; `batch_first` is an input convenience, see
//! [`batch_first`]): input `[T, B, I]`; initial and final states `h0`, `c0`, `h_n`, `c_n`
//! `[L·D, B, H]` (layer `l`, direction `d` at `l·D + d`); output `[T, B, D·H]` with the
//! forward direction's `H` features first. [`cpu`] is the oracle.

pub mod cpu;
pub(crate) mod state_dict;

use ndarray::{Array3, ArrayView3};

use crate::error::{Error, Result};
use crate::params::{Cell, Params, SplitMix64};
use crate::real::Real;

/// The shape of a network, as PyTorch's module arguments say it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetConfig {
    /// The cell of every layer.
    pub cell: Cell,
    /// Features of the input `I`.
    pub input_size: usize,
    /// Hidden units `H` of every layer and direction.
    pub hidden_size: usize,
    /// Stacked layers `L` (layer `l + 1` reads layer `l`'s output).
    pub num_layers: usize,
    /// Two directions per layer (`D = 2`): the second runs the sequence from its end.
    pub bidirectional: bool,
    /// Whether the layers have biases (`false`: they are zero and stay so).
    pub bias: bool,
    /// PyTorch's `dropout`: the probability of zeroing each element of every layer's
    /// output but the last's, in training ([`cpu::forward_train`],
    /// `gpu::Network::forward` in `Mode::Training`); in `[0, 1)`.
    pub dropout: f32,
}

impl NetConfig {
    /// A one-layer, one-direction network with biases, as PyTorch's defaults.
    pub fn new(cell: Cell, input_size: usize, hidden_size: usize) -> Self {
        NetConfig {
            cell,
            input_size,
            hidden_size,
            num_layers: 1,
            bidirectional: false,
            bias: true,
            dropout: 0.0,
        }
    }

    /// Directions per layer `D`.
    pub fn directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// Input features of layer `l`: `I` for the first, `D·H` above it.
    pub fn layer_input(&self, l: usize) -> usize {
        if l == 0 {
            self.input_size
        } else {
            self.directions() * self.hidden_size
        }
    }

    /// Checks the sizes: every one at least 1, and `D·H` and `L·D` without overflow.
    pub fn check(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Invalid { arg: "config", msg });
        if self.input_size == 0 || self.hidden_size == 0 || self.num_layers == 0 {
            return bad(format!(
                "input_size, hidden_size and num_layers must be at least 1, got {}, {} and {}",
                self.input_size, self.hidden_size, self.num_layers
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout = {}; it must be in [0, 1)", self.dropout));
        }
        crate::host::elems("config", &[self.directions(), self.hidden_size], 1)?;
        crate::host::elems("config", &[self.directions(), self.num_layers], 1)?;
        Ok(())
    }

    /// One line: `LSTM, 2 layers, bidirectional, I = 5, H = 4, no bias`.
    pub fn describe(&self) -> String {
        format!(
            "{}, {} layer{}, {}, I = {}, H = {}{}",
            self.cell.name(),
            self.num_layers,
            if self.num_layers == 1 { "" } else { "s" },
            if self.bidirectional {
                "bidirectional"
            } else {
                "one direction"
            },
            self.input_size,
            self.hidden_size,
            if self.bias { "" } else { ", no bias" }
        )
    }
}

/// The weights of a network: one [`Params`] per layer and direction, layer `l`'s
/// direction `d` at `l·D + d`, each in PyTorch's layout (zero biases when the config has
/// none).
#[derive(Debug, Clone, PartialEq)]
pub struct NetParams<A> {
    /// The network's shape.
    pub config: NetConfig,
    /// `L·D` layers.
    pub layers: Vec<Params<A>>,
}

impl<A: Real> NetParams<A> {
    /// PyTorch's default initialisation, `U(-1/√H, 1/√H)` for every weight and bias (no
    /// biases: zeros), from a deterministic generator seeded with `seed`.
    pub fn init(config: NetConfig, seed: u64) -> Result<Self> {
        config.check()?;
        let mut rng = SplitMix64(seed);
        let layers = (0..config.num_layers * config.directions())
            .map(|k| {
                let l = k / config.directions();
                let mut p = Params::init(
                    config.cell,
                    config.layer_input(l),
                    config.hidden_size,
                    rng.next_u64(),
                )?;
                if !config.bias {
                    p.b_ih.fill(A::zero());
                    p.b_hh.fill(A::zero());
                }
                Ok(p)
            })
            .collect::<Result<_>>()?;
        Ok(NetParams { config, layers })
    }

    /// Checks every layer against the config: its cell and sizes, and zero biases where
    /// the config has none. Errors name `params.layers[k]`'s PyTorch key.
    pub fn check(&self) -> Result<()> {
        let c = &self.config;
        c.check()?;
        let want = c.num_layers * c.directions();
        if self.layers.len() != want {
            return Err(Error::Invalid {
                arg: "params",
                msg: format!(
                    "{} layers for {}: expected num_layers · directions = {want}",
                    self.layers.len(),
                    c.describe()
                ),
            });
        }
        for (k, p) in self.layers.iter().enumerate() {
            let l = k / c.directions();
            p.check()?;
            let (i, h) = (p.input_size(), p.hidden_size());
            if p.cell != c.cell || i != c.layer_input(l) || h != c.hidden_size {
                return Err(Error::Weights {
                    key: state_dict::key("weight_ih", l, k % c.directions()),
                    msg: format!(
                        "a {} with I = {i}, H = {h}; layer {l} of {} needs a {} with I = {}, H = {}",
                        p.cell.name(),
                        c.describe(),
                        c.cell.name(),
                        c.layer_input(l),
                        c.hidden_size
                    ),
                });
            }
            if !c.bias && (p.b_ih.iter().chain(&p.b_hh).any(|v| *v != A::zero())) {
                return Err(Error::Weights {
                    key: state_dict::key("bias_ih", l, k % c.directions()),
                    msg: format!("nonzero biases in {}, which has none", c.describe()),
                });
            }
        }
        Ok(())
    }

    /// The same weights in another float type.
    pub fn cast<B: Real>(&self) -> NetParams<B> {
        NetParams {
            config: self.config,
            layers: self.layers.iter().map(Params::cast).collect(),
        }
    }
}

/// PCG's output hash of one 32-bit state (the WGSL `pcg` of `shaders/dropout.wgsl`).
fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// Whether dropout keeps element `index` (row-major in layer `layer`'s output
/// `[T, B, D·H]`, the caller's batch order) for `seed` and probability `p`: a
/// counter-based hash, so the CPU path and the GPU kernel draw the same mask.
pub(crate) fn dropout_keep(seed: u64, layer: u32, index: u32, p: f32) -> bool {
    let h = pcg(index ^ pcg((seed as u32) ^ pcg(((seed >> 32) as u32) ^ pcg(layer))));
    ((h >> 8) as f32) * (1.0 / 16_777_216.0) >= p
}

/// `[B, T, F]` (PyTorch's `batch_first=True`) as the time-major `[T, B, F]` every
/// function here takes, and an output `[T, B, D·H]` back to `[B, T, D·H]`: the first two
/// axes swapped, in standard layout. (States stay `[L·D, B, H]`, as in PyTorch.)
pub fn batch_first<A: Real>(x: ArrayView3<A>) -> Result<Array3<A>> {
    let mut v = x;
    v.swap_axes(0, 1);
    crate::host::copy("x", &v)
}
