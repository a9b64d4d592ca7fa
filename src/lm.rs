//! A token-level language model — embedding → recurrent network → linear head with
//! softmax cross-entropy — trained end to end on the CPU path ([`CpuLm`]) or on the
//! device ([`GpuLm`]: every step's forward, loss, backward, clipping, optimizer step and
//! weight sync recorded on the device, nothing read back but the loss when asked for),
//! sampled one token at a time, and checkpointed in safetensors under PyTorch's names
//! (`embedding.weight`, `rnn.weight_ih_l0`, …, `head.weight`, `head.bias`, the
//! `nn.Module` of `bench/torch_charlm.py`).
//!
//! The parameter order everywhere (optimizer state, checkpoints): `embedding.weight`,
//! the network's tensors in PyTorch's `state_dict` order under `rnn.`, `head.weight`,
//! `head.bias`.

use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array1, Array2, Array3, ArrayView2};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::cpu::{self, OptimState, Optimizer, Reduction};
use crate::error::{Error, Result};
use crate::gpu;
use crate::net::{self, NetConfig, NetParams};
use crate::params::{Cell, Head, SplitMix64};

/// The shape of a language model: `vocab` tokens, embeddings of `embed`, the network
/// (`net.input_size` = `embed`), a head from the network's `D·H` outputs to `vocab`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LmConfig {
    /// Vocabulary size `V`.
    pub vocab: usize,
    /// Embedding size `E`.
    pub embed: usize,
    /// The recurrent network (its `input_size` is `embed`).
    pub net: NetConfig,
}

impl LmConfig {
    /// A one-direction network of `layers` layers of `cell` with `hidden` units over
    /// embeddings of `embed` for `vocab` tokens.
    pub fn new(cell: Cell, vocab: usize, embed: usize, hidden: usize, layers: usize) -> Self {
        LmConfig {
            vocab,
            embed,
            net: NetConfig {
                num_layers: layers,
                ..NetConfig::new(cell, embed, hidden)
            },
        }
    }

    /// Checks the sizes.
    pub fn check(&self) -> Result<()> {
        self.net.check()?;
        if self.vocab == 0 || self.embed == 0 || self.net.input_size != self.embed {
            return Err(Error::Invalid {
                arg: "config",
                msg: format!(
                    "vocab = {}, embed = {}, net.input_size = {}: vocab and embed must be \
                     ≥ 1 and the network's input size must be embed",
                    self.vocab, self.embed, self.net.input_size
                ),
            });
        }
        Ok(())
    }

    /// The head's input size `D·H`.
    pub fn head_input(&self) -> usize {
        self.net.directions() * self.net.hidden_size
    }

    /// The parameters' names and shapes, in the parameter order (nothing allocated).
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = vec![("embedding.weight".to_string(), vec![self.vocab, self.embed])];
        out.extend(
            net::state_dict::expected(&self.net)
                .into_iter()
                .map(|(n, s)| (format!("rnn.{n}"), s)),
        );
        out.push(("head.weight".into(), vec![self.vocab, self.head_input()]));
        out.push(("head.bias".into(), vec![self.vocab]));
        out
    }
}

/// The parameters of a language model (f32).
#[derive(Debug, Clone, PartialEq)]
pub struct LmParams {
    /// The shape.
    pub config: LmConfig,
    /// `embedding.weight [V, E]`.
    pub embedding: Array2<f32>,
    /// `rnn.*`.
    pub net: NetParams<f32>,
    /// `head.weight [V, D·H]`, `head.bias [V]`.
    pub head: Head<f32>,
}

impl LmParams {
    /// PyTorch's default initialisation from a deterministic generator: the embedding
    /// `N(0, 1)` (`nn.Embedding`), the network as [`NetParams::init`], the head
    /// `U(−1/√(D·H), 1/√(D·H))` (`nn.Linear`).
    pub fn init(config: LmConfig, seed: u64) -> Result<Self> {
        config.check()?;
        let mut rng = SplitMix64(seed);
        let net = NetParams::init(config.net, rng.next_u64())?;
        let mut normal = || {
            // Box–Muller.
            let (u1, u2) = (1.0 - rng.next_f64(), rng.next_f64());
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        };
        let embedding = Array2::from_shape_simple_fn((config.vocab, config.embed), &mut normal);
        let k = 1.0 / (config.head_input() as f64).sqrt();
        let mut u = || (k * (2.0 * rng.next_f64() - 1.0)) as f32;
        let w_y = Array2::from_shape_simple_fn((config.vocab, config.head_input()), &mut u);
        let b_y = Array1::from_shape_simple_fn(config.vocab, &mut u);
        Ok(LmParams {
            config,
            embedding,
            net,
            head: Head::new(w_y, b_y)?,
        })
    }

    /// Checks every part against the config.
    pub fn check(&self) -> Result<()> {
        let c = &self.config;
        c.check()?;
        self.net.check()?;
        self.head.check()?;
        let bad = |arg: &'static str, want: String, got: &[usize]| {
            Err(Error::Shape {
                arg,
                expected: want,
                got: crate::error::fmt_shape(got),
            })
        };
        if self.net.config != c.net {
            return Err(Error::Invalid {
                arg: "params.net",
                msg: format!(
                    "{}; the config says {}",
                    self.net.config.describe(),
                    c.net.describe()
                ),
            });
        }
        if self.embedding.dim() != (c.vocab, c.embed) {
            return bad(
                "params.embedding",
                format!("[V, E] = [{}, {}]", c.vocab, c.embed),
                self.embedding.shape(),
            );
        }
        if self.head.w_y.dim() != (c.vocab, c.head_input()) {
            return bad(
                "params.head",
                format!("[V, D·H] = [{}, {}]", c.vocab, c.head_input()),
                self.head.w_y.shape(),
            );
        }
        Ok(())
    }

    /// The tensors under their names, in the parameter order, with their shapes.
    pub fn named(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut values = vec![self.embedding.iter().copied().collect::<Vec<f32>>()];
        let flat = crate::gpu::flatten_net(&self.net);
        let mut at = 0;
        for (_, shape) in net::state_dict::expected(&self.config.net) {
            let n: usize = shape.iter().product();
            values.push(flat[at..at + n].to_vec());
            at += n;
        }
        values.push(self.head.w_y.iter().copied().collect());
        values.push(self.head.b_y.to_vec());
        self.config
            .shapes()
            .into_iter()
            .zip(values)
            .map(|((name, shape), v)| (name, shape, v))
            .collect()
    }

    /// The parameters from tensors in [`LmParams::named`]'s order, each of its shape
    /// (checked).
    fn from_named(config: LmConfig, tensors: Vec<Vec<f32>>) -> Result<Self> {
        config.check()?;
        let shapes = config.shapes();
        if tensors.len() != shapes.len() {
            return Err(invalid("tensors", "not the tensors of this config"));
        }
        for ((name, shape), t) in shapes.iter().zip(&tensors) {
            if t.len() != shape.iter().product::<usize>() {
                return Err(Error::Weights {
                    key: name.clone(),
                    msg: format!("{} values; the config's shape is {shape:?}", t.len()),
                });
            }
        }
        let mut it = tensors.into_iter();
        let mut next = || it.next().unwrap_or_default();
        let embedding = Array2::from_shape_vec((config.vocab, config.embed), next())
            .map_err(|e| invalid("tensors", e))?;
        let flat: Vec<f32> = (0..shapes.len() - 3).flat_map(|_| next()).collect();
        let net = crate::gpu::unflatten_net(config.net, &flat)?;
        let w_y = Array2::from_shape_vec((config.vocab, config.head_input()), next())
            .map_err(|e| invalid("tensors", e))?;
        let b_y = Array1::from_vec(next());
        let p = LmParams {
            config,
            embedding,
            net,
            head: Head::new(w_y, b_y)?,
        };
        p.check()?;
        Ok(p)
    }

    /// Mutable slices of every tensor, in the parameter order (arrays of another memory
    /// layout made standard first).
    fn slices_mut(&mut self) -> Vec<&mut [f32]> {
        fn standard<D: ndarray::Dimension>(a: &mut ndarray::Array<f32, D>) {
            if !a.is_standard_layout() {
                *a = a.as_standard_layout().into_owned();
            }
        }
        standard(&mut self.embedding);
        standard(&mut self.head.w_y);
        standard(&mut self.head.b_y);
        for p in &mut self.net.layers {
            standard(&mut p.w_ih);
            standard(&mut p.w_hh);
            standard(&mut p.b_ih);
            standard(&mut p.b_hh);
        }
        let bias = self.config.net.bias;
        let mut out: Vec<&mut [f32]> = vec![self.embedding.as_slice_mut().expect("standard")];
        for p in &mut self.net.layers {
            out.push(p.w_ih.as_slice_mut().expect("standard"));
            out.push(p.w_hh.as_slice_mut().expect("standard"));
            if bias {
                out.push(p.b_ih.as_slice_mut().expect("standard"));
                out.push(p.b_hh.as_slice_mut().expect("standard"));
            }
        }
        out.push(self.head.w_y.as_slice_mut().expect("standard"));
        out.push(self.head.b_y.as_slice_mut().expect("standard"));
        out
    }
}

fn invalid(arg: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Invalid {
        arg,
        msg: e.to_string(),
    }
}

/// A checkpoint: the parameters, the optimizer's state (in the parameter order), and
/// free-form metadata (the example keeps its vocabulary and step count there).
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The parameters.
    pub params: LmParams,
    /// The optimizer's state (`step` 0 and no tensors before the first step).
    pub optim: OptimState<f32>,
    /// The state carried into the next training chunk, `h` and `c` `[L·D, B, H]`
    /// (`carry.h`, `carry.c` in the file).
    pub carry: Option<Carry>,
    /// Metadata.
    pub meta: HashMap<String, String>,
}

/// A carried state: `h` and, for cells with one, `c`, each `[L·D, B, H]`.
pub type Carry = (Array3<f32>, Option<Array3<f32>>);

impl Checkpoint {
    /// Writes the checkpoint as safetensors: the parameters under PyTorch's names, the
    /// optimizer's `m` and `v` under `optim.m.<name>` and `optim.v.<name>`, the carried
    /// state under `carry.h`, `carry.c`, the config and the optimizer's step count in
    /// the metadata (with `meta`).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.params.check()?;
        let named = self.params.named();
        let o = &self.optim;
        let fits = |v: &[Vec<f32>]| {
            v.len() == named.len() && v.iter().zip(&named).all(|(x, t)| x.len() == t.2.len())
        };
        if o.step > 0 && !(fits(&o.m) && fits(&o.v)) {
            return Err(invalid(
                "optim",
                "after a step, one m and one v of each parameter's size, in the parameter order",
            ));
        }
        let mut blobs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let bytes = |v: &mut dyn Iterator<Item = f32>| v.flat_map(f32::to_le_bytes).collect();
        for (k, (name, shape, v)) in named.iter().enumerate() {
            blobs.push((name.clone(), shape.clone(), bytes(&mut v.iter().copied())));
            if o.step > 0 {
                let (m, s) = (&o.m[k], &o.v[k]);
                blobs.push((
                    format!("optim.m.{name}"),
                    shape.clone(),
                    bytes(&mut m.iter().copied()),
                ));
                blobs.push((
                    format!("optim.v.{name}"),
                    shape.clone(),
                    bytes(&mut s.iter().copied()),
                ));
            }
        }
        if let Some((h, c)) = &self.carry {
            blobs.push((
                "carry.h".into(),
                h.shape().to_vec(),
                bytes(&mut h.iter().copied()),
            ));
            if let Some(c) = c {
                blobs.push((
                    "carry.c".into(),
                    c.shape().to_vec(),
                    bytes(&mut c.iter().copied()),
                ));
            }
        }
        let c = &self.params.config;
        let mut meta = self.meta.clone();
        for (k, v) in [
            ("cell", c.net.cell.name().to_string()),
            ("vocab", c.vocab.to_string()),
            ("embed", c.embed.to_string()),
            ("hidden", c.net.hidden_size.to_string()),
            ("layers", c.net.num_layers.to_string()),
            ("bidirectional", c.net.bidirectional.to_string()),
            ("bias", c.net.bias.to_string()),
            ("dropout", c.net.dropout.to_string()),
            ("optim.step", o.step.to_string()),
        ] {
            meta.insert(k.into(), v);
        }
        let views = blobs
            .iter()
            .map(|(name, shape, b)| {
                TensorView::new(Dtype::F32, shape.clone(), b)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| invalid("checkpoint", e))
            })
            .collect::<Result<Vec<_>>>()?;
        let out =
            safetensors::serialize(views, Some(meta)).map_err(|e| invalid("checkpoint", e))?;
        let path = path.as_ref();
        std::fs::write(path, out).map_err(|e| invalid("path", format!("{}: {e}", path.display())))
    }

    /// Reads a checkpoint written by [`Checkpoint::save`]: the config from the metadata,
    /// then every tensor checked against the shape the config gives it (nothing is
    /// allocated from the metadata alone); a missing, mis-shaped or non-F32 tensor or a
    /// malformed metadata entry is an [`Error::Weights`] naming it.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).map_err(|e| invalid("path", format!("{}: {e}", path.display())))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| invalid("path", e))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(&bytes).map_err(|e| invalid("path", e))?;
        let bad = |k: &str, msg: String| Error::Weights { key: k.into(), msg };
        let get = |k: &str| -> Result<&String> {
            meta.get(k)
                .ok_or_else(|| bad(k, "missing from the checkpoint's metadata".into()))
        };
        fn parse<T: std::str::FromStr>(k: &str, v: &str) -> Result<T>
        where
            T::Err: std::fmt::Display,
        {
            v.parse().map_err(|e| Error::Weights {
                key: k.into(),
                msg: format!("{v:?}: {e}"),
            })
        }
        let num = |k: &str| -> Result<usize> { parse(k, get(k)?) };
        let cell = Cell::ALL
            .into_iter()
            .find(|c| Some(c.name()) == meta.get("cell").map(String::as_str))
            .ok_or_else(|| {
                bad(
                    "cell",
                    format!("{:?} is not a cell of this library", meta.get("cell")),
                )
            })?;
        let mut config = LmConfig::new(cell, num("vocab")?, num("embed")?, num("hidden")?, 1);
        config.net.num_layers = num("layers")?;
        config.net.bidirectional = parse("bidirectional", get("bidirectional")?)?;
        config.net.bias = parse("bias", get("bias")?)?;
        config.net.dropout = match meta.get("dropout") {
            Some(v) => parse("dropout", v)?,
            None => 0.0,
        };
        config.check()?;
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = st
                .tensor(name)
                .map_err(|_| bad(name, "missing from the checkpoint".into()))?;
            if t.dtype() != Dtype::F32 {
                return Err(bad(name, format!("{:?}; checkpoints are F32", t.dtype())));
            }
            if t.shape() != shape {
                return Err(bad(
                    name,
                    format!(
                        "shape {:?}; the checkpoint's config gives {shape:?}",
                        t.shape()
                    ),
                ));
            }
            Ok(t.data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let shapes = config.shapes();
        let tensors = shapes
            .iter()
            .map(|(n, s)| read(n, s))
            .collect::<Result<Vec<_>>>()?;
        let params = LmParams::from_named(config, tensors)?;
        let step: u64 = parse("optim.step", get("optim.step")?)?;
        let mut optim = OptimState {
            step,
            ..Default::default()
        };
        if step > 0 {
            for (n, s) in &shapes {
                optim.m.push(read(&format!("optim.m.{n}"), s)?);
                optim.v.push(read(&format!("optim.v.{n}"), s)?);
            }
        }
        // The carried state: [L·D, B, H] for some batch B.
        let ld = config.net.num_layers * config.net.directions();
        let state = |name: &str, b: Option<usize>| -> Result<Option<Array3<f32>>> {
            let Ok(t) = st.tensor(name) else {
                return Ok(None);
            };
            let s = t.shape().to_vec();
            let want_b = b.unwrap_or(s.get(1).copied().unwrap_or(0));
            let want = [ld, want_b, config.net.hidden_size];
            let v = read(name, &want)?;
            Array3::from_shape_vec((want[0], want[1], want[2]), v)
                .map(Some)
                .map_err(|e| invalid("path", e))
        };
        let carry = match state("carry.h", None)? {
            Some(h) => {
                let c = match cell.has_cell_state() {
                    true => Some(state("carry.c", Some(h.dim().1))?.ok_or_else(|| {
                        bad(
                            "carry.c",
                            "missing beside carry.h for a cell with a cell state".into(),
                        )
                    })?),
                    false => None,
                };
                Some((h, c))
            }
            None => None,
        };
        Ok(Checkpoint {
            params,
            optim,
            carry,
            meta,
        })
    }
}

/// How to sample: `temperature` (0: greedy, the most likely token), the `top_k` most
/// likely tokens only, at most `max_len` tokens, stopping after `stop`, drawing from
/// `seed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleOptions {
    /// Divides the logits; 0 takes the most likely token.
    pub temperature: f32,
    /// Only the `k` most likely tokens (ties: the lower id first).
    pub top_k: Option<usize>,
    /// The most tokens drawn.
    pub max_len: usize,
    /// The token that ends a sample (it is included).
    pub stop: Option<usize>,
    /// The generator's seed.
    pub seed: u64,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            temperature: 1.0,
            top_k: None,
            max_len: 50,
            stop: None,
            seed: 0,
        }
    }
}

/// One draw from the distribution `probs` reshaped by `temperature` and `top_k`, with
/// the uniform number `u` in `[0, 1)`: the first token whose cumulative weight exceeds
/// `u` times the total, the weights `(p / p_max)^(1/temperature)` in f64 (the softmax of
/// the logits over the temperature); temperature 0 takes the first most likely token.
/// Entries that are not finite or not positive weigh nothing; `None` when none is left.
pub fn pick(probs: &[f32], temperature: f32, top_k: Option<usize>, u: f64) -> Option<usize> {
    let ok = |p: f32| p.is_finite() && p > 0.0;
    let mut order: Vec<usize> = (0..probs.len()).filter(|&i| ok(probs[i])).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    order.truncate(top_k.unwrap_or(usize::MAX).max(1));
    let first = *order.first()?;
    if temperature.is_nan() || temperature <= 0.0 || order.len() == 1 {
        return Some(first);
    }
    let top = probs[first] as f64;
    let mut w = vec![0f64; probs.len()];
    for &i in &order {
        w[i] = (probs[i] as f64 / top).powf(1.0 / temperature as f64);
    }
    let total: f64 = w.iter().sum();
    let mut acc = 0.0;
    for (i, wi) in w.iter().enumerate() {
        acc += wi;
        if *wi > 0.0 && acc > u * total {
            return Some(i);
        }
    }
    Some(first)
}

/// [`pick`] for a sampler: no token to pick (probabilities that are not finite) is an
/// error naming the parameters.
fn pick_next(probs: &[f32], opts: &SampleOptions, u: f64) -> Result<usize> {
    pick(probs, opts.temperature, opts.top_k, u).ok_or_else(|| {
        invalid(
            "params",
            "the head's probabilities are not finite or all zero: the weights diverged?",
        )
    })
}

/// Checks sampling options against a vocabulary of `vocab`.
fn check_sample(start: usize, opts: &SampleOptions, vocab: usize) -> Result<()> {
    if start >= vocab || opts.stop.is_some_and(|s| s >= vocab) {
        return Err(Error::Invalid {
            arg: "start",
            msg: format!(
                "start {start} / stop {:?}: tokens must be below the vocabulary size {vocab}",
                opts.stop
            ),
        });
    }
    if !(opts.temperature.is_finite() && opts.temperature >= 0.0) || opts.top_k == Some(0) {
        return Err(Error::Invalid {
            arg: "opts",
            msg: format!(
                "temperature {} (finite, ≥ 0), top_k {:?} (≥ 1)",
                opts.temperature, opts.top_k
            ),
        });
    }
    Ok(())
}

/// The sampling loop both paths share: feeds `start`, draws each next token with
/// [`pick`] from the head's probabilities that `step` returns for the token fed (the
/// model carrying its own state), uniform numbers from `SplitMix64(opts.seed)`, until
/// `opts.stop` or `opts.max_len` tokens.
fn sample_with(
    start: usize,
    opts: &SampleOptions,
    vocab: usize,
    mut step: impl FnMut(usize) -> Result<Vec<f32>>,
) -> Result<Vec<usize>> {
    check_sample(start, opts, vocab)?;
    let mut rng = SplitMix64(opts.seed);
    let (mut tok, mut out) = (start, Vec::new());
    while out.len() < opts.max_len {
        let probs = step(tok)?;
        tok = pick_next(&probs, opts, rng.next_f64())?;
        out.push(tok);
        if Some(tok) == opts.stop {
            break;
        }
    }
    Ok(out)
}

/// A language model trained on the CPU path: the parameters, the optimizer and its
/// state, the clipping, and the state carried from one training chunk to the next
/// (truncated backpropagation through time).
#[derive(Debug, Clone)]
pub struct CpuLm {
    /// The parameters.
    pub params: LmParams,
    /// The optimizer.
    pub opt: Optimizer,
    /// Its state, in the parameter order.
    pub state: OptimState<f32>,
    /// Clip the gradients' global norm to this before each step.
    pub clip: Option<f32>,
    carry: Option<(Array3<f32>, Option<Array3<f32>>)>,
}

impl CpuLm {
    /// A model from `params` (checked), trained with `opt` and global-norm clipping
    /// `clip`, the optimizer state `state` (a checkpoint's, or the default).
    pub fn new(
        params: LmParams,
        opt: Optimizer,
        clip: Option<f32>,
        state: OptimState<f32>,
    ) -> Result<Self> {
        params.check()?;
        opt.check()?;
        Ok(CpuLm {
            params,
            opt,
            state,
            clip,
            carry: None,
        })
    }

    /// Forgets the carried state (the next step starts from zeros).
    pub fn reset_state(&mut self) {
        self.carry = None;
    }

    /// The state carried into the next step.
    pub fn carry(&self) -> Option<Carry> {
        self.carry.clone()
    }

    /// Sets the state carried into the next step (a checkpoint's).
    pub fn set_carry(&mut self, carry: Option<Carry>) {
        self.carry = carry;
    }

    /// One training step on `ids [T, B]` predicting `targets [T, B]`: forward from the
    /// carried state, the mean cross-entropy, backward, clipping, the optimizer step;
    /// the final state is carried to the next step without its gradient. Returns the
    /// loss (nats per token) before the step.
    pub fn step(&mut self, ids: ArrayView2<usize>, targets: ArrayView2<usize>) -> Result<f32> {
        let p = &self.params;
        let x = cpu::embedding(p.embedding.view(), ids)?;
        let (h0, c0) = match &self.carry {
            Some((h, c)) if h.dim().1 == ids.dim().1 => {
                (Some(h.view()), c.as_ref().map(|c| c.view()))
            }
            _ => (None, None),
        };
        // Dropout masks from the step count, as the device draws them.
        let tr = net::cpu::forward_train(&p.net, x.view(), h0, c0, None, self.state.step)?;
        let out = cpu::head_loss(&p.head, tr.output.view(), targets, None, Reduction::Mean)?;
        let hg = cpu::head_loss_backward(
            &p.head,
            tr.output.view(),
            targets,
            None,
            Reduction::Mean,
            &out,
        )?;
        let ng = net::cpu::backward(&p.net, &tr, hg.dh.view(), None, None)?;
        let demb = cpu::embedding_backward(p.config.vocab, ids, ng.dx.view())?;
        let mut grads: Vec<Vec<f32>> = vec![demb.iter().copied().collect()];
        grads.extend(ng.named().into_iter().map(|g| g.1));
        grads.push(hg.dw_y.iter().copied().collect());
        grads.push(hg.db_y.to_vec());
        if let Some(m) = self.clip {
            let mut g: Vec<&mut [f32]> = grads.iter_mut().map(|g| g.as_mut_slice()).collect();
            cpu::clip_grad_norm(&mut g, m)?;
        }
        let g: Vec<&[f32]> = grads.iter().map(|g| g.as_slice()).collect();
        cpu::optim_step(
            &self.opt,
            &mut self.state,
            &mut self.params.slices_mut(),
            &g,
        )?;
        self.carry = Some((tr.h_n, tr.c_n));
        Ok(out.loss)
    }

    /// Samples from a zero state (or `h0`, `c0` `[L·D, 1, H]`): feeds `start`, draws the
    /// next token from the head's softmax as [`pick`] does with uniform numbers from
    /// `SplitMix64(opts.seed)`, feeds it, and so on. Returns the drawn tokens.
    pub fn sample(
        &self,
        start: usize,
        h0: Option<Array3<f32>>,
        c0: Option<Array3<f32>>,
        opts: &SampleOptions,
    ) -> Result<Vec<usize>> {
        let p = &self.params;
        let (mut h, mut c) = (h0, c0);
        sample_with(start, opts, p.config.vocab, |tok| {
            let ids = Array2::from_elem((1, 1), tok);
            let x = cpu::embedding(p.embedding.view(), ids.view())?;
            let tr = net::cpu::forward(
                &p.net,
                x.view(),
                h.as_ref().map(|v| v.view()),
                c.as_ref().map(|v| v.view()),
                None,
            )?;
            let probs = cpu::head_forward(&p.head, tr.output.view())?;
            (h, c) = (Some(tr.h_n), tr.c_n);
            Ok(probs.into_iter().collect())
        })
    }
}

/// A language model trained on the device: embedding, network and head with their
/// weights on the device, an optimizer with its state there, and the state carried
/// between training chunks as device tensors.
#[derive(Debug)]
pub struct GpuLm {
    config: LmConfig,
    embedding: gpu::Embedding,
    net: gpu::Network,
    head: gpu::GpuHead,
    optim: gpu::Optim,
    clip: Option<f32>,
    carry: Option<(gpu::Tensor, Option<gpu::Tensor>)>,
}

impl GpuLm {
    /// Uploads `params` (checked) and `state` (a checkpoint's optimizer state in the
    /// parameter order, or the default), training with `opt` and global-norm clipping
    /// `clip`.
    pub fn new(
        ctx: &gpu::Context,
        params: &LmParams,
        opt: Optimizer,
        clip: Option<f32>,
        state: &OptimState<f32>,
    ) -> Result<Self> {
        params.check()?;
        let shapes = params.config.shapes();
        let fits = |v: &[Vec<f32>]| {
            v.len() == shapes.len()
                && v.iter()
                    .zip(&shapes)
                    .all(|(x, (_, s))| x.len() == s.iter().product::<usize>())
        };
        if state.step > 0 && !(fits(&state.m) && fits(&state.v)) {
            return Err(invalid(
                "state",
                format!(
                    "after a step, one m and one v of each parameter's size, in the parameter \
                     order ({} tensors)",
                    shapes.len()
                ),
            ));
        }
        // The device optimizer holds each layer of the network as one tensor: its state
        // likewise.
        let state = match state.step {
            0 => OptimState::default(),
            _ => {
                let groups = device_groups(&params.config);
                OptimState {
                    step: state.step,
                    m: join(&state.m, &groups),
                    v: join(&state.v, &groups),
                }
            }
        };
        Ok(GpuLm {
            config: params.config,
            embedding: gpu::Embedding::new(ctx, params.embedding.view())?,
            net: gpu::Network::new(ctx, &params.net)?,
            head: gpu::GpuHead::new(ctx, &params.head)?,
            optim: gpu::Optim::with_state(ctx, opt, &state)?,
            clip,
            carry: None,
        })
    }

    /// The shape.
    pub fn config(&self) -> LmConfig {
        self.config
    }

    /// Forgets the carried state (the next step starts from zeros).
    pub fn reset_state(&mut self) {
        self.carry = None;
    }

    /// Downloads the state carried into the next step.
    pub fn carry(&self) -> Result<Option<Carry>> {
        let Some((h, c)) = &self.carry else {
            return Ok(None);
        };
        let get = |t: &gpu::Tensor| -> Result<Array3<f32>> {
            t.to_array()?
                .into_dimensionality()
                .map_err(|e| invalid("carry", e))
        };
        Ok(Some((
            get(h)?,
            match c {
                Some(c) => Some(get(c)?),
                None => None,
            },
        )))
    }

    /// Uploads the state carried into the next step (a checkpoint's).
    pub fn set_carry(&mut self, carry: Option<&Carry>) -> Result<()> {
        self.carry = match carry {
            None => None,
            Some((h, c)) => {
                let ctx = self.embedding.weight().context().clone();
                let h = gpu::Tensor::from_array(&ctx, "carry", h)?;
                let c = match c {
                    Some(c) => Some(gpu::Tensor::from_array(&ctx, "carry", c)?),
                    None => None,
                };
                Some((h, c))
            }
        };
        Ok(())
    }

    /// One training step, as [`CpuLm::step`], all on the device: the embedding gather,
    /// the network forward, the fused head and loss, the network and embedding
    /// backward, global-norm clipping, the optimizer step over the four parameter
    /// tensors (embedding, the network's flat parameters, head weight and bias) and the
    /// network's weight sync — a few submissions, nothing read back. Returns the loss
    /// (nats per token, before the step) as a `[1]` tensor on the device: reading it is
    /// the only wait for the device.
    pub fn step(
        &mut self,
        ids: ArrayView2<usize>,
        targets: ArrayView2<usize>,
    ) -> Result<gpu::Tensor> {
        let x = self.embedding.forward(ids)?;
        let b = ids.dim().1;
        let (h0, c0) = match &self.carry {
            Some((h, c)) if h.shape()[1] == b => (Some(h), c.as_ref()),
            _ => (None, None),
        };
        // Dropout masks from the step count, as the CPU path draws them.
        self.net.seed_dropout(self.optim.steps());
        let f = self.net.forward(&x, h0, c0, None, gpu::Mode::Training)?;
        let trace = f.trace.as_ref().ok_or_else(|| invalid("ids", "no trace"))?;
        let loss = self.head.loss(&f.output, targets, None, Reduction::Mean)?;
        let g = self.net.backward(trace, &loss.dh, None, None)?;
        let demb = self.embedding.backward(ids, &g.dx)?;
        let mut grads = vec![&demb];
        grads.extend(g.flat());
        grads.extend([&loss.dw_y, &loss.db_y]);
        if let Some(m) = self.clip {
            gpu::clip_grad_norm(&grads, m)?;
        }
        let mut params = vec![self.embedding.weight()];
        params.extend(self.net.parameters());
        params.extend(self.head.parameters());
        self.optim
            .step(&params.iter().collect::<Vec<_>>(), &grads)?;
        self.net.sync_weights()?;
        self.carry = Some((f.h_n, f.c_n));
        Ok(loss.loss)
    }

    /// Downloads the parameters.
    pub fn params(&self) -> Result<LmParams> {
        let [w_y, b_y] = self.head.parameters();
        let v = self.config.vocab;
        let get =
            |t: &gpu::Tensor| -> Result<Vec<f32>> { Ok(t.to_array()?.iter().copied().collect()) };
        let p = LmParams {
            config: self.config,
            embedding: Array2::from_shape_vec(
                (v, self.config.embed),
                get(&self.embedding.weight())?,
            )
            .map_err(|e| invalid("params", e))?,
            net: self.net.to_params()?,
            head: Head::new(
                Array2::from_shape_vec((v, self.config.head_input()), get(&w_y)?)
                    .map_err(|e| invalid("params", e))?,
                Array1::from_vec(get(&b_y)?),
            )?,
        };
        Ok(p)
    }

    /// Downloads the optimizer state in the parameter order (the network's split by
    /// name), as [`CpuLm::state`] and [`Checkpoint::optim`] hold it.
    pub fn optim_state(&self) -> Result<OptimState<f32>> {
        let s = self.optim.state()?;
        if s.step == 0 {
            return Ok(OptimState::default());
        }
        let sizes: Vec<usize> = self
            .config
            .shapes()
            .iter()
            .map(|(_, s)| s.iter().product())
            .collect();
        Ok(OptimState {
            step: s.step,
            m: split(&s.m, &sizes),
            v: split(&s.v, &sizes),
        })
    }

    /// Samples as [`CpuLm::sample`] does, the model running on the device one token at a
    /// time (the head's probabilities read back to choose each next token).
    pub fn sample(
        &self,
        start: usize,
        h0: Option<&gpu::Tensor>,
        c0: Option<&gpu::Tensor>,
        opts: &SampleOptions,
    ) -> Result<Vec<usize>> {
        let (mut h, mut c) = (h0.cloned(), c0.cloned());
        sample_with(start, opts, self.config.vocab, |tok| {
            let ids = Array2::from_elem((1, 1), tok);
            let x = self.embedding.forward(ids.view())?;
            let f = self
                .net
                .forward(&x, h.as_ref(), c.as_ref(), None, gpu::Mode::Inference)?;
            let probs = self.head.forward(&f.output)?.to_array()?;
            (h, c) = (Some(f.h_n), f.c_n);
            Ok(probs.into_iter().collect())
        })
    }
}

/// How many tensors of the parameter order each of the device's optimizer tensors
/// joins: the embedding, one per layer (its directions' weights and biases), the head's
/// weight and bias.
fn device_groups(config: &LmConfig) -> Vec<usize> {
    let n = config.net.num_layers;
    let per_layer = net::state_dict::expected(&config.net).len() / n.max(1);
    let mut g = vec![1];
    g.extend(std::iter::repeat_n(per_layer, n));
    g.extend([1, 1]);
    g
}

/// Concatenates runs of `groups` tensors.
fn join(v: &[Vec<f32>], groups: &[usize]) -> Vec<Vec<f32>> {
    let mut at = 0;
    groups
        .iter()
        .map(|&k| {
            let part = v[at..at + k].concat();
            at += k;
            part
        })
        .collect()
}

/// Splits the concatenation of `v` into tensors of `sizes`.
fn split(v: &[Vec<f32>], sizes: &[usize]) -> Vec<Vec<f32>> {
    let all: Vec<f32> = v.concat();
    let mut at = 0;
    sizes
        .iter()
        .map(|&n| {
            let part = all.get(at..at + n).unwrap_or_default().to_vec();
            at += n;
            part
        })
        .collect()
}

/// A text as tokens: its sorted distinct characters are the vocabulary.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The vocabulary: token `i` is `chars[i]`.
    pub chars: Vec<char>,
    /// The text's tokens.
    pub tokens: Vec<usize>,
}

impl Corpus {
    /// Tokenizes `text` over its own characters.
    pub fn new(text: &str) -> Result<Self> {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Self::with_vocab(text, chars)
    }

    /// Tokenizes `text` over the vocabulary `chars` (a checkpoint's); a character
    /// outside it is an error.
    pub fn with_vocab(text: &str, chars: Vec<char>) -> Result<Self> {
        let index: HashMap<char, usize> = chars.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        let tokens = text
            .chars()
            .map(|c| {
                index.get(&c).copied().ok_or_else(|| Error::Invalid {
                    arg: "text",
                    msg: format!("{c:?} is not in the vocabulary"),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if tokens.len() < 2 {
            return Err(Error::Invalid {
                arg: "text",
                msg: "fewer than two characters".into(),
            });
        }
        Ok(Corpus { chars, tokens })
    }

    /// The characters of `tokens`.
    pub fn decode(&self, tokens: &[usize]) -> String {
        tokens.iter().filter_map(|&t| self.chars.get(t)).collect()
    }

    /// The token of `c`, if in the vocabulary.
    pub fn token(&self, c: char) -> Option<usize> {
        self.chars.iter().position(|&x| x == c)
    }
}

/// Training chunks from a token stream: the stream cut into `batch` contiguous streams
/// of equal length, each step the next `seq` positions of every stream (inputs) and the
/// positions one later (targets), time-major `[seq, batch]`; at the end it wraps to the
/// start (and says so: the carried state should be reset).
#[derive(Debug, Clone)]
pub struct Batches {
    streams: Array2<usize>,
    seq: usize,
    pos: usize,
}

impl Batches {
    /// Chunks of `seq` steps over `batch` streams of `tokens`.
    pub fn new(tokens: &[usize], seq: usize, batch: usize) -> Result<Self> {
        let len = tokens.len() / batch.max(1);
        if seq == 0 || batch == 0 || len <= seq {
            return Err(Error::Invalid {
                arg: "seq",
                msg: format!(
                    "seq = {seq}, batch = {batch} over {} tokens: each of the batch's \
                     streams needs at least seq + 1 tokens",
                    tokens.len()
                ),
            });
        }
        let streams = Array2::from_shape_fn((batch, len), |(b, i)| tokens[b * len + i]);
        Ok(Batches {
            streams,
            seq,
            pos: 0,
        })
    }

    /// The next `(ids, targets, wrapped)`; `wrapped` is true when this chunk starts the
    /// streams over.
    pub fn next_chunk(&mut self) -> (Array2<usize>, Array2<usize>, bool) {
        let len = self.streams.ncols();
        let wrapped = self.pos + self.seq + 1 > len;
        if wrapped {
            self.pos = 0;
        }
        let (s, p) = (&self.streams, self.pos);
        let ids = Array2::from_shape_fn((self.seq, s.nrows()), |(t, b)| s[(b, p + t)]);
        let targets = Array2::from_shape_fn((self.seq, s.nrows()), |(t, b)| s[(b, p + t + 1)]);
        self.pos += self.seq;
        (ids, targets, wrapped)
    }
}
