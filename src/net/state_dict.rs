//! A network's weights in and out of safetensors files under PyTorch's `state_dict`
//! names: `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`, with
//! `_reverse` for the second direction, after an optional key prefix (`encoder.rnn.`).

use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array1, Array2};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use super::{NetConfig, NetParams};
use crate::error::{fmt_shape, Error, Result};
use crate::params::Params;
use crate::real::Real;

/// PyTorch's name of a layer's tensor: `{what}_l{l}`, `_reverse` for direction 1.
pub(crate) fn key(what: &str, l: usize, d: usize) -> String {
    format!("{what}_l{l}{}", if d == 1 { "_reverse" } else { "" })
}

/// The keys a network of `config` has, with their shapes, in PyTorch's order.
pub(crate) fn expected(config: &NetConfig) -> Vec<(String, Vec<usize>)> {
    let gh = config.cell.gates() * config.hidden_size;
    let mut keys = Vec::new();
    for l in 0..config.num_layers {
        for d in 0..config.directions() {
            keys.push((key("weight_ih", l, d), vec![gh, config.layer_input(l)]));
            keys.push((key("weight_hh", l, d), vec![gh, config.hidden_size]));
            if config.bias {
                keys.push((key("bias_ih", l, d), vec![gh]));
                keys.push((key("bias_hh", l, d), vec![gh]));
            }
        }
    }
    keys
}

/// Why a key the network does not have is in the file, in the network's terms.
fn unexpected(config: &NetConfig, name: &str) -> String {
    let layer = name
        .rsplit_once("_l")
        .and_then(|(_, rest)| rest.trim_end_matches("_reverse").parse::<usize>().ok());
    let known = ["weight_ih_l", "weight_hh_l", "bias_ih_l", "bias_hh_l"]
        .iter()
        .any(|p| name.starts_with(p));
    match layer {
        Some(l) if known && l >= config.num_layers => format!(
            "the file has layer {l}; the network ({}) has num_layers = {}",
            config.describe(),
            config.num_layers
        ),
        Some(_) if known && name.ends_with("_reverse") && !config.bidirectional => format!(
            "the file is bidirectional; the network ({}) is not",
            config.describe()
        ),
        Some(_) if known && name.starts_with("bias") && !config.bias => format!(
            "the file has biases; the network ({}) has bias = false",
            config.describe()
        ),
        _ => format!("not a tensor of {}", config.describe()),
    }
}

/// A tensor's values as `A`, from f64, f32, f16 or bf16 little-endian data.
fn values<A: Real>(name: &str, t: &TensorView<'_>) -> Result<Vec<A>> {
    let data = t.data();
    let conv = |width: usize, f: &dyn Fn(&[u8]) -> f64| -> Vec<A> {
        data.chunks_exact(width)
            .map(|b| A::from_f64(f(b)))
            .collect()
    };
    Ok(match t.dtype() {
        Dtype::F64 => conv(8, &|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))),
        Dtype::F32 => conv(4, &|b| {
            f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64
        }),
        Dtype::F16 => conv(2, &|b| half::f16::from_le_bytes([b[0], b[1]]).to_f64()),
        Dtype::BF16 => conv(2, &|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f64()),
        other => {
            return Err(Error::Weights {
                key: name.to_string(),
                msg: format!("dtype {other:?}; expected F32, F16, BF16 or F64"),
            })
        }
    })
}

impl<A: Real> NetParams<A> {
    /// Loads the weights of a network of `config` from safetensors bytes holding
    /// PyTorch's `state_dict` names after `prefix` (`""`, or `"encoder.rnn."` for a
    /// module saved inside another); f32, f16, bf16 and f64 tensors are accepted.
    /// Keys outside the prefix belong to other modules and are ignored; within it, as
    /// PyTorch's `load_state_dict(strict=True)`, a missing, unexpected or mis-shaped key
    /// is an [`Error::Weights`] naming it (a file of another `num_layers`, direction
    /// count or bias setting says so).
    pub fn from_safetensors(config: NetConfig, bytes: &[u8], prefix: &str) -> Result<Self> {
        config.check()?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::Invalid {
            arg: "bytes",
            msg: format!("not a safetensors file: {e}"),
        })?;
        let want = expected(&config);
        let mut names: Vec<String> = st
            .names()
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .map(str::to_string)
            .collect();
        names.sort();
        for name in &names {
            let short = &name[prefix.len()..];
            if !want.iter().any(|(k, _)| k == short) {
                // A known name after more of a prefix: the caller's prefix is short.
                let hint = want
                    .iter()
                    .find(|(k, _)| short.ends_with(&format!(".{k}")))
                    .map(|(k, _)| {
                        let p = &name[..name.len() - k.len()];
                        format!(" (a prefix `{p}`?)")
                    })
                    .unwrap_or_default();
                return Err(Error::Weights {
                    key: name.clone(),
                    msg: format!("unexpected: {}{hint}", unexpected(&config, short)),
                });
            }
        }
        let mut tensors: HashMap<String, Vec<A>> = HashMap::new();
        for (k, shape) in &want {
            let full = format!("{prefix}{k}");
            let t = st.tensor(&full).map_err(|_| Error::Weights {
                key: full.clone(),
                msg: format!(
                    "missing: {} has it, of shape {}",
                    config.describe(),
                    fmt_shape(shape)
                ),
            })?;
            if t.shape() != shape.as_slice() {
                return Err(Error::Weights {
                    key: full,
                    msg: format!(
                        "shape {}; {} needs {}",
                        fmt_shape(t.shape()),
                        config.describe(),
                        fmt_shape(shape)
                    ),
                });
            }
            tensors.insert(k.clone(), values(&full, &t)?);
        }
        let gh = config.cell.gates() * config.hidden_size;
        let mut take = |k: String, shape: (usize, usize)| -> Array2<A> {
            let v = tensors.remove(&k).unwrap_or_default();
            Array2::from_shape_vec(shape, v).unwrap_or_else(|_| Array2::zeros(shape))
        };
        let mut layers = Vec::with_capacity(config.num_layers * config.directions());
        for l in 0..config.num_layers {
            for d in 0..config.directions() {
                let w_ih = take(key("weight_ih", l, d), (gh, config.layer_input(l)));
                let w_hh = take(key("weight_hh", l, d), (gh, config.hidden_size));
                let (b_ih, b_hh) = if config.bias {
                    (
                        take(key("bias_ih", l, d), (1, gh)).remove_axis(ndarray::Axis(0)),
                        take(key("bias_hh", l, d), (1, gh)).remove_axis(ndarray::Axis(0)),
                    )
                } else {
                    (Array1::zeros(gh), Array1::zeros(gh))
                };
                layers.push(Params::new(config.cell, w_ih, w_hh, b_ih, b_hh)?);
            }
        }
        let p = NetParams { config, layers };
        p.check()?;
        Ok(p)
    }

    /// [`NetParams::from_safetensors`] from a file.
    pub fn load(config: NetConfig, path: impl AsRef<Path>, prefix: &str) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::Invalid {
            arg: "path",
            msg: format!("{}: {e}", path.display()),
        })?;
        Self::from_safetensors(config, &bytes, prefix)
    }

    /// The weights as safetensors bytes under PyTorch's `state_dict` names after
    /// `prefix`, in this type's precision (F32 for `f32`, F64 for `f64`); no bias keys
    /// when the config has none. PyTorch reads them with `safetensors.torch.load_file`
    /// and `load_state_dict(strict=True)`.
    pub fn to_safetensors(&self, prefix: &str) -> Result<Vec<u8>> {
        self.check()?;
        let c = &self.config;
        let f32s = std::mem::size_of::<A>() == 4;
        let dtype = if f32s { Dtype::F32 } else { Dtype::F64 };
        let mut blobs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (k, p) in self.layers.iter().enumerate() {
            let (l, d) = (k / c.directions(), k % c.directions());
            let mut put = |what: &str, shape: &[usize], vals: &mut dyn Iterator<Item = &A>| {
                let bytes: Vec<u8> = vals
                    .flat_map(|v| {
                        let x = v.to_f64();
                        if f32s {
                            (x as f32).to_le_bytes().to_vec()
                        } else {
                            x.to_le_bytes().to_vec()
                        }
                    })
                    .collect();
                blobs.push((
                    format!("{prefix}{}", key(what, l, d)),
                    shape.to_vec(),
                    bytes,
                ));
            };
            put("weight_ih", p.w_ih.shape(), &mut p.w_ih.iter());
            put("weight_hh", p.w_hh.shape(), &mut p.w_hh.iter());
            if c.bias {
                put("bias_ih", p.b_ih.shape(), &mut p.b_ih.iter());
                put("bias_hh", p.b_hh.shape(), &mut p.b_hh.iter());
            }
        }
        let views = blobs
            .iter()
            .map(|(name, shape, bytes)| {
                TensorView::new(dtype, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| Error::Weights {
                        key: name.clone(),
                        msg: format!("cannot be written: {e}"),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        safetensors::serialize(views, None).map_err(|e| Error::Invalid {
            arg: "prefix",
            msg: format!("the safetensors file cannot be written: {e}"),
        })
    }

    /// [`NetParams::to_safetensors`] into a file.
    pub fn save(&self, path: impl AsRef<Path>, prefix: &str) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_safetensors(prefix)?).map_err(|e| Error::Invalid {
            arg: "path",
            msg: format!("{}: {e}", path.display()),
        })
    }
}
