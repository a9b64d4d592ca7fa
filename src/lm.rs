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
        let mut out = vec![(
            "embedding.weight".to_string(),
            self.embedding.shape().to_vec(),
            self.embedding.iter().copied().collect(),
        )];
        let shapes = net::state_dict::expected(&self.config.net);
        let flat = crate::gpu::flatten_net(&self.net);
        let mut at = 0;
        for (name, shape) in shapes {
            let n: usize = shape.iter().product();
            out.push((format!("rnn.{name}"), shape, flat[at..at + n].to_vec()));
            at += n;
        }
        out.push((
            "head.weight".into(),
            self.head.w_y.shape().to_vec(),
            self.head.w_y.iter().copied().collect(),
        ));
        out.push((
            "head.bias".into(),
            self.head.b_y.shape().to_vec(),
            self.head.b_y.to_vec(),
        ));
        out
    }

    /// The parameters from tensors in [`LmParams::named`]'s order and sizes.
    fn from_named(config: LmConfig, tensors: &[Vec<f32>]) -> Result<Self> {
        let mut p = LmParams::init(config, 0)?;
        let sizes: Vec<usize> = p.named().iter().map(|t| t.2.len()).collect();
        if tensors.len() != sizes.len() || tensors.iter().zip(&sizes).any(|(t, &n)| t.len() != n) {
            return Err(Error::Invalid {
                arg: "tensors",
                msg: "not the tensors of this config".into(),
            });
        }
        let n = tensors.len();
        p.embedding = Array2::from_shape_vec(p.embedding.dim(), tensors[0].clone())
            .map_err(|e| invalid("tensors", e))?;
        let flat: Vec<f32> = tensors[1..n - 2].concat();
        p.net = crate::gpu::unflatten_net(config.net, &flat)?;
        p.head.w_y = Array2::from_shape_vec(p.head.w_y.dim(), tensors[n - 2].clone())
            .map_err(|e| invalid("tensors", e))?;
        p.head.b_y = Array1::from_vec(tensors[n - 1].clone());
        p.check()?;
        Ok(p)
    }

    /// Mutable slices of every tensor, in the parameter order.
    fn slices_mut(&mut self) -> Vec<&mut [f32]> {
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
    /// optimizer's `m` and `v` under `optim.m.<name>` and `optim.v.<name>`, the config
    /// and the optimizer's step count in the metadata (with `meta`).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let named = self.params.named();
        let mut blobs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        for (k, (name, shape, v)) in named.iter().enumerate() {
            blobs.push((name.clone(), shape.clone(), bytes(v)));
            if let (Some(m), Some(s)) = (self.optim.m.get(k), self.optim.v.get(k)) {
                blobs.push((format!("optim.m.{name}"), shape.clone(), bytes(m)));
                blobs.push((format!("optim.v.{name}"), shape.clone(), bytes(s)));
            }
        }
        if let Some((h, c)) = &self.carry {
            blobs.push((
                "carry.h".into(),
                h.shape().to_vec(),
                bytes(&h.iter().copied().collect::<Vec<_>>()),
            ));
            if let Some(c) = c {
                blobs.push((
                    "carry.c".into(),
                    c.shape().to_vec(),
                    bytes(&c.iter().copied().collect::<Vec<_>>()),
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
            ("optim.step", self.optim.step.to_string()),
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

    /// Reads a checkpoint written by [`Checkpoint::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).map_err(|e| invalid("path", format!("{}: {e}", path.display())))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| invalid("path", e))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(&bytes).map_err(|e| invalid("path", e))?;
        let get = |k: &str| -> Result<String> {
            meta.get(k).cloned().ok_or_else(|| Error::Weights {
                key: k.into(),
                msg: "missing from the checkpoint's metadata".into(),
            })
        };
        let num = |k: &str| -> Result<usize> {
            get(k)?.parse().map_err(|e| Error::Weights {
                key: k.into(),
                msg: format!("{e}"),
            })
        };
        let cell = Cell::ALL
            .into_iter()
            .find(|c| c.name() == get("cell").unwrap_or_default())
            .ok_or_else(|| Error::Weights {
                key: "cell".into(),
                msg: "not a cell this library has".into(),
            })?;
        let mut config = LmConfig::new(cell, num("vocab")?, num("embed")?, num("hidden")?, 1);
        config.net.num_layers = num("layers")?;
        config.net.bidirectional = get("bidirectional")? == "true";
        config.net.bias = get("bias")? == "true";
        let names: Vec<String> = LmParams::init(config, 0)?
            .named()
            .into_iter()
            .map(|t| t.0)
            .collect();
        let read = |name: &str| -> Result<Vec<f32>> {
            let t = st.tensor(name).map_err(|_| Error::Weights {
                key: name.into(),
                msg: "missing".into(),
            })?;
            if t.dtype() != Dtype::F32 {
                return Err(Error::Weights {
                    key: name.into(),
                    msg: format!("{:?}; checkpoints are F32", t.dtype()),
                });
            }
            Ok(t.data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let tensors = names.iter().map(|n| read(n)).collect::<Result<Vec<_>>>()?;
        let params = LmParams::from_named(config, &tensors)?;
        let step: u64 = num("optim.step")? as u64;
        let mut optim = OptimState {
            step,
            ..Default::default()
        };
        if step > 0 {
            for n in &names {
                optim.m.push(read(&format!("optim.m.{n}"))?);
                optim.v.push(read(&format!("optim.v.{n}"))?);
            }
        }
        let state = |name: &str| -> Result<Option<Array3<f32>>> {
            let Ok(t) = st.tensor(name) else {
                return Ok(None);
            };
            let s = t.shape();
            if s.len() != 3 {
                return Err(Error::Weights {
                    key: name.into(),
                    msg: format!("shape {s:?}; [L·D, B, H] expected"),
                });
            }
            let v = read(name)?;
            Array3::from_shape_vec((s[0], s[1], s[2]), v)
                .map(Some)
                .map_err(|e| invalid("path", e))
        };
        let carry = match state("carry.h")? {
            Some(h) => Some((h, state("carry.c")?)),
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
pub fn pick(probs: &[f32], temperature: f32, top_k: Option<usize>, u: f64) -> usize {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    let keep = top_k.unwrap_or(probs.len()).clamp(1, probs.len().max(1));
    order.truncate(keep);
    if temperature <= 0.0 || order.len() == 1 {
        return order[0];
    }
    let top = probs[order[0]] as f64;
    let w: Vec<f64> = (0..probs.len())
        .map(|i| match order.contains(&i) {
            true if top > 0.0 => (probs[i] as f64 / top).powf(1.0 / temperature as f64),
            true => 1.0,
            false => 0.0,
        })
        .collect();
    let total: f64 = w.iter().sum();
    let mut acc = 0.0;
    for (i, wi) in w.iter().enumerate() {
        acc += wi;
        if wi > &0.0 && acc > u * total {
            return i;
        }
    }
    order[0]
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
        let tr = net::cpu::forward(&p.net, x.view(), h0, c0, None)?;
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
        check_sample(start, opts, p.config.vocab)?;
        let mut rng = SplitMix64(opts.seed);
        let (mut h, mut c) = (h0, c0);
        let (mut tok, mut out) = (start, Vec::new());
        while out.len() < opts.max_len {
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
            tok = pick(
                probs.as_slice().unwrap_or(&[]),
                opts.temperature,
                opts.top_k,
                rng.next_f64(),
            );
            out.push(tok);
            (h, c) = (Some(tr.h_n), tr.c_n);
            if Some(tok) == opts.stop {
                break;
            }
        }
        Ok(out)
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
        // The device optimizer holds the network as one tensor: its state likewise.
        let n = state.m.len();
        let state = match n {
            0 => state.clone(),
            n if n >= 4 => {
                let join = |v: &[Vec<f32>]| {
                    vec![
                        v[0].clone(),
                        v[1..n - 2].concat(),
                        v[n - 2].clone(),
                        v[n - 1].clone(),
                    ]
                };
                OptimState {
                    step: state.step,
                    m: join(&state.m),
                    v: join(&state.v),
                }
            }
            _ => {
                return Err(Error::Invalid {
                    arg: "state",
                    msg: format!("{n} tensors; the model has more"),
                })
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
                let ctx = self.net.parameters().context().clone();
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
        let f = self.net.forward(&x, h0, c0, None, gpu::Mode::Training)?;
        let trace = f.trace.as_ref().ok_or_else(|| invalid("ids", "no trace"))?;
        let loss = self.head.loss(&f.output, targets, None, Reduction::Mean)?;
        let g = self.net.backward(trace, &loss.dh, None, None)?;
        let demb = self.embedding.backward(ids, &g.dx)?;
        let grads = [&demb, g.flat(), &loss.dw_y, &loss.db_y];
        if let Some(m) = self.clip {
            gpu::clip_grad_norm(&grads, m)?;
        }
        let [w_y, b_y] = self.head.parameters();
        let params = [&self.embedding.weight(), &self.net.parameters(), &w_y, &b_y];
        self.optim.step(&params, &grads)?;
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
        if s.m.len() != 4 {
            return Ok(s);
        }
        let sizes: Vec<usize> = self
            .net
            .named_parameters()
            .iter()
            .map(|(_, t)| t.len())
            .collect();
        let split = |v: &[Vec<f32>]| {
            let mut out = vec![v[0].clone()];
            let mut at = 0;
            for n in &sizes {
                out.push(v[1][at..at + n].to_vec());
                at += n;
            }
            out.push(v[2].clone());
            out.push(v[3].clone());
            out
        };
        Ok(OptimState {
            step: s.step,
            m: split(&s.m),
            v: split(&s.v),
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
        check_sample(start, opts, self.config.vocab)?;
        let mut rng = SplitMix64(opts.seed);
        let (mut h, mut c) = (h0.cloned(), c0.cloned());
        let (mut tok, mut out) = (start, Vec::new());
        while out.len() < opts.max_len {
            let ids = Array2::from_elem((1, 1), tok);
            let x = self.embedding.forward(ids.view())?;
            let f = self
                .net
                .forward(&x, h.as_ref(), c.as_ref(), None, gpu::Mode::Inference)?;
            let probs = self.head.forward(&f.output)?.to_array()?;
            tok = pick(
                probs.as_slice().unwrap_or(&[]),
                opts.temperature,
                opts.top_k,
                rng.next_f64(),
            );
            out.push(tok);
            (h, c) = (Some(f.h_n), f.c_n);
            if Some(tok) == opts.stop {
                break;
            }
        }
        Ok(out)
    }
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
        if seq == 0 || batch == 0 || len < seq + 1 {
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
