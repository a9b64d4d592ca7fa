//! A network's parameters as flat vectors, one per layer (both directions), in PyTorch's
//! `state_dict` order and layout (the layout its gradients come back in, so an optimizer
//! and a clipping see each parameter once, under its own name), and the moves between
//! them and the step kernels' device layouts on the device (`shaders/relayout.wgsl`, by
//! index arithmetic: no tables). One vector per layer, not one for the network, so that
//! no buffer is larger than the layer's own weights, which `Network::new` checks
//! against the device's limits.

use super::kernels::NONE;
use crate::cell::{bias_apart, CellDef};
use crate::net::{state_dict, NetConfig, NetParams};

/// One tensor of the flat vectors: its PyTorch name, layer, offset in its layer's vector
/// and shape.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) layer: usize,
    pub(crate) offset: usize,
    pub(crate) shape: Vec<usize>,
}

impl Entry {
    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The tensors of a network of `config`, in PyTorch's order.
pub(crate) fn entries(config: &NetConfig) -> Vec<Entry> {
    let per_layer = state_dict::expected(config).len() / config.num_layers.max(1);
    let mut offset = 0;
    state_dict::expected(config)
        .into_iter()
        .enumerate()
        .map(|(k, (name, shape))| {
            if k % per_layer.max(1) == 0 {
                offset = 0;
            }
            let e = Entry {
                name,
                layer: k / per_layer.max(1),
                offset,
                shape,
            };
            offset += e.len();
            e
        })
        .collect()
}

/// The length of each layer's flat vector.
pub(crate) fn layer_lens(config: &NetConfig) -> Vec<usize> {
    let mut lens = vec![0; config.num_layers];
    for e in entries(config) {
        lens[e.layer] += e.len();
    }
    lens
}

/// The flat vectors of `params` end to end (PyTorch's order: layer by layer).
pub(crate) fn flatten(params: &NetParams<f32>) -> Vec<f32> {
    let c = &params.config;
    let mut out = Vec::new();
    for p in &params.layers {
        out.extend(p.w_ih.iter());
        out.extend(p.w_hh.iter());
        if c.bias {
            out.extend(p.b_ih.iter());
            out.extend(p.b_hh.iter());
        }
    }
    out
}

/// The parameters of the flat vectors of `config` end to end (the length checked by
/// the caller).
pub(crate) fn unflatten(config: NetConfig, flat: &[f32]) -> crate::error::Result<NetParams<f32>> {
    let mut params = NetParams::<f32>::init(config, 0)?;
    let mut at = 0;
    let mut take = |dst: &mut dyn Iterator<Item = &mut f32>| {
        for v in dst {
            *v = flat[at];
            at += 1;
        }
    };
    for p in &mut params.layers {
        take(&mut p.w_ih.iter_mut());
        take(&mut p.w_hh.iter_mut());
        if config.bias {
            take(&mut p.b_ih.iter_mut());
            take(&mut p.b_hh.iter_mut());
        }
    }
    Ok(params)
}

/// What one relayout dispatch does (`shaders/relayout.wgsl`): `n` elements of a
/// destination from a source by index arithmetic, accumulating or not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Move {
    /// 0: rows to the device; 1: `W_hh`'s forward layout; 2: its backward layout; 3: a
    /// gradient back to PyTorch's layout.
    pub(crate) kind: u32,
    pub(crate) n: usize,
    pub(crate) h: usize,
    pub(crate) s: usize,
    pub(crate) cols: usize,
    /// Per slot its gate (kinds 0–2), or per gate its slot (kind 3); NONE: nothing.
    pub(crate) map: [u32; 4],
    /// Per direction the source tensor's offset in the flat vector (kinds 0–2).
    pub(crate) off: [u32; 2],
    /// Offsets into the source (kind 3) and the destination.
    pub(crate) x_off: usize,
    pub(crate) y_off: usize,
    pub(crate) acc: bool,
}

/// Where a layer's device buffers come from in the flat vector.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToDevice {
    pub(crate) w_ih: Vec<Move>,
    pub(crate) bias: Vec<Move>,
    pub(crate) bias_hh: Vec<Move>,
    pub(crate) w_fwd: Vec<Move>,
    pub(crate) w_back: Vec<Move>,
}

/// Where the flat gradient comes from, per layer: moves from `dw_ih`, `dw_hh` and `db`.
#[derive(Debug, Clone, Default)]
pub(crate) struct FromGrads {
    pub(crate) dw_ih: Vec<Move>,
    pub(crate) dw_hh: Vec<Move>,
    pub(crate) db: Vec<Move>,
}

/// A network's moves, per layer, both ways.
#[derive(Debug, Default)]
pub(crate) struct Moves {
    pub(crate) to_device: Vec<ToDevice>,
    pub(crate) from_grads: Vec<FromGrads>,
}

impl Moves {
    /// The moves of a network of `config` and cell `C`. Device layouts as
    /// `DeviceWeights::from` makes them, directions stacked: `w_ih [D, H, S, I]`, `bias`
    /// and `bias_hh [D, H, S]`, `w_fwd[d, k, j, s] = W_hh[HH[s]·H + j, k]`,
    /// `w_back[d, j', j, s] = W_hh[HH[s]·H + j', j]`; gradients `dw_ih [D, H, S, I]`,
    /// `dw_hh [D, H, S, H]`, `db [D, H, S]` (`to_pytorch`'s reading).
    pub(crate) fn new<C: CellDef>(config: &NetConfig) -> Moves {
        let c = config;
        let (h, sl, dirs) = (c.hidden_size, C::SLOTS, c.directions());
        let entries = entries(c);
        let find = |what: &str, l, d| {
            let key = state_dict::key(what, l, d);
            entries.iter().find(|e| e.name == key).map(|e| e.offset)
        };
        let gates = |f: &dyn Fn(usize) -> Option<usize>| {
            let mut m = [NONE; 4];
            for (s, v) in m.iter_mut().enumerate().take(sl) {
                *v = f(s).map_or(NONE, |g| g as u32);
            }
            m
        };
        let slots = |map: &[Option<usize>]| {
            let mut m = [NONE; 4];
            for (g, v) in m.iter_mut().enumerate().take(C::GATES) {
                *v = map.iter().position(|&x| x == Some(g)).unwrap_or(0) as u32;
            }
            m
        };
        let ih = gates(&|s| C::IH[s]);
        let hh = gates(&|s| C::HH[s]);
        let folded = gates(&|s| C::HH[s].filter(|_| C::HH[s] == C::IH[s]));
        let apart = gates(&|s| C::HH[s].filter(|_| C::HH[s] != C::IH[s]));
        let mut m = Moves::default();
        for l in 0..c.num_layers {
            let i = c.layer_input(l);
            let off = |what: &str| {
                let o: Vec<Option<usize>> = (0..dirs).map(|d| find(what, l, d)).collect();
                o.iter().all(Option::is_some).then(|| {
                    [
                        o[0].unwrap_or(0) as u32,
                        o.get(1).copied().flatten().unwrap_or(0) as u32,
                    ]
                })
            };
            let (w_ih, w_hh, b_ih, b_hh) = (
                off("weight_ih"),
                off("weight_hh"),
                off("bias_ih"),
                off("bias_hh"),
            );
            let mv = |kind, n, cols, map, off: Option<[u32; 2]>, acc| Move {
                kind,
                n,
                h,
                s: sl,
                cols,
                // No such tensor (no biases): every slot holds nothing.
                map: if off.is_some() { map } else { [NONE; 4] },
                off: off.unwrap_or([0; 2]),
                x_off: 0,
                y_off: 0,
                acc,
            };
            let rows = dirs * sl * h;
            let mut dev = ToDevice {
                w_ih: vec![mv(0, rows * i, i, ih, w_ih, false)],
                bias: vec![
                    mv(0, rows, 1, ih, b_ih, false),
                    mv(0, rows, 1, folded, b_hh, true),
                ],
                w_fwd: vec![mv(1, rows * h, 1, hh, w_hh, false)],
                w_back: vec![mv(2, rows * h, 1, hh, w_hh, false)],
                ..Default::default()
            };
            if bias_apart::<C>() {
                dev.bias_hh.push(mv(0, rows, 1, apart, b_hh, false));
            }
            m.to_device.push(dev);
            // The gradients: PyTorch row g·H + j of direction d is device row
            // d·S·H + j·S + slot(g).
            let gh = C::GATES * h;
            let mut from = FromGrads::default();
            for d in 0..dirs {
                let back = |cols: usize, map, what: &str| {
                    find(what, l, d).map(|o| Move {
                        kind: 3,
                        n: gh * cols,
                        h,
                        s: sl,
                        cols,
                        map,
                        off: [0; 2],
                        x_off: d * sl * h * cols,
                        y_off: o,
                        acc: false,
                    })
                };
                from.dw_ih.extend(back(i, slots(C::IH), "weight_ih"));
                from.dw_hh.extend(back(h, slots(C::HH), "weight_hh"));
                from.db.extend(back(1, slots(C::IH), "bias_ih"));
                from.db.extend(back(1, slots(C::HH), "bias_hh"));
            }
            m.from_grads.push(from);
        }
        m
    }
}
