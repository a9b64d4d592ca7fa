//! A network's parameters as one flat vector in PyTorch's `state_dict` order and layout
//! (the layout its gradients come back in, so an optimizer and a clipping see each
//! parameter once, under its own name), and the index tables that move numbers between
//! that vector and the step kernels' device layouts on the device
//! (`shaders/relayout.wgsl`).

use super::kernels::NONE;
use crate::cell::{bias_apart, CellDef};
use crate::net::{state_dict, NetConfig, NetParams};

/// One tensor of the flat vector: its PyTorch name, offset and shape.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) name: String,
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
    let mut offset = 0;
    state_dict::expected(config)
        .into_iter()
        .map(|(name, shape)| {
            let e = Entry {
                name,
                offset,
                shape,
            };
            offset += e.len();
            e
        })
        .collect()
}

/// The flat vector of `params`.
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

/// The parameters of a flat vector of `config` (its length checked by the caller).
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

/// One relayout dispatch: `n` elements of a destination from a source through the
/// table at `t_off`, accumulating or not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Move {
    pub(crate) t_off: usize,
    pub(crate) n: usize,
    pub(crate) acc: bool,
    /// Offset into the destination.
    pub(crate) y_off: usize,
}

/// Where a layer's device buffers come from ([`Tables::to_device`]) in the flat vector.
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

/// All of a network's index tables (one `u32` array) and the moves that read them.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    pub(crate) table: Vec<u32>,
    pub(crate) to_device: Vec<ToDevice>,
    pub(crate) from_grads: Vec<FromGrads>,
}

impl Tables {
    /// Appends a table of `n` entries from `f` and returns its move into `y_off`.
    fn push(&mut self, n: usize, y_off: usize, acc: bool, f: impl Fn(usize) -> u32) -> Move {
        let t_off = self.table.len();
        self.table.extend((0..n).map(f));
        Move {
            t_off,
            n,
            acc,
            y_off,
        }
    }

    /// The tables of a network of `config` and cell `C`. Device layouts as
    /// `DeviceWeights::from` makes them, directions stacked: `w_ih [D, H, S, I]`, `bias`
    /// and `bias_hh [D, H, S]`, `w_fwd[d, k, j, s] = W_hh[HH[s]·H + j, k]`,
    /// `w_back[d, j', j, s] = W_hh[HH[s]·H + j', j]`; gradients `dw_ih [D, H, S, I]`,
    /// `dw_hh [D, H, S, H]`, `db [D, H, S]`.
    pub(crate) fn new<C: CellDef>(config: &NetConfig) -> Tables {
        let c = config;
        let (h, sl, dirs) = (c.hidden_size, C::SLOTS, c.directions());
        let entries = entries(c);
        let find = |what: &str, l, d| {
            let key = state_dict::key(what, l, d);
            entries.iter().find(|e| e.name == key).map(|e| e.offset)
        };
        let slot =
            |map: &[Option<usize>], g: usize| map.iter().position(|&m| m == Some(g)).unwrap_or(0);
        let none = |v: Option<usize>| v.map_or(NONE, |v| v as u32);
        let mut t = Tables::default();
        for l in 0..c.num_layers {
            let i = c.layer_input(l);
            let off = |what| (0..dirs).map(|d| find(what, l, d)).collect::<Vec<_>>();
            let (w_ih, w_hh, b_ih, b_hh) = (
                off("weight_ih"),
                off("weight_hh"),
                off("bias_ih"),
                off("bias_hh"),
            );
            // Device row r of direction d: unit j = r / S, slot s = r % S.
            let sh = sl * h;
            let row = |r: usize| ((r % sh) / sl, r % sl, r / sh);
            let mut dev = ToDevice {
                w_ih: vec![t.push(dirs * sh * i, 0, false, |e| {
                    let (j, s, d) = row(e / i);
                    none(
                        C::IH[s]
                            .zip(w_ih[d])
                            .map(|(g, o)| o + (g * h + j) * i + e % i),
                    )
                })],
                bias: vec![t.push(dirs * sh, 0, false, |r| {
                    let (j, s, d) = row(r);
                    none(C::IH[s].zip(b_ih[d]).map(|(g, o)| o + g * h + j))
                })],
                ..Default::default()
            };
            dev.bias.push(t.push(dirs * sh, 0, true, |r| {
                let (j, s, d) = row(r);
                let folded = C::HH[s].filter(|_| C::HH[s] == C::IH[s]);
                none(folded.zip(b_hh[d]).map(|(g, o)| o + g * h + j))
            }));
            if bias_apart::<C>() {
                dev.bias_hh.push(t.push(dirs * sh, 0, false, |r| {
                    let (j, s, d) = row(r);
                    let apart = C::HH[s].filter(|_| C::HH[s] != C::IH[s]);
                    none(apart.zip(b_hh[d]).map(|(g, o)| o + g * h + j))
                }));
            }
            // [d, a, j, s] over D·H·H·S.
            let quad = |e: usize| {
                let (s, j) = (e % sl, (e / sl) % h);
                let (a, d) = ((e / (sl * h)) % h, e / (sl * h * h));
                (d, a, j, s)
            };
            dev.w_fwd.push(t.push(dirs * h * h * sl, 0, false, |e| {
                let (d, a, j, s) = quad(e);
                none(C::HH[s].zip(w_hh[d]).map(|(g, o)| o + (g * h + j) * h + a))
            }));
            dev.w_back.push(t.push(dirs * h * h * sl, 0, false, |e| {
                let (d, a, j, s) = quad(e);
                none(C::HH[s].zip(w_hh[d]).map(|(g, o)| o + (g * h + a) * h + j))
            }));
            t.to_device.push(dev);
            // The gradients: PyTorch row g·H + j of direction d is device row
            // d·S·H + j·S + slot(g).
            let gh = C::GATES * h;
            let mut from = FromGrads::default();
            for d in 0..dirs {
                let src =
                    |map: &[Option<usize>], r: usize| d * sh + (r % h) * sl + slot(map, r / h);
                if let Some(o) = w_ih[d] {
                    from.dw_ih
                        .push(t.push(gh * i, o, false, |e| (src(C::IH, e / i) * i + e % i) as u32));
                }
                if let Some(o) = w_hh[d] {
                    from.dw_hh
                        .push(t.push(gh * h, o, false, |e| (src(C::HH, e / h) * h + e % h) as u32));
                }
                if let Some(o) = b_ih[d] {
                    from.db.push(t.push(gh, o, false, |r| src(C::IH, r) as u32));
                }
                if let Some(o) = b_hh[d] {
                    from.db.push(t.push(gh, o, false, |r| src(C::HH, r) as u32));
                }
            }
            t.from_grads.push(from);
        }
        t
    }
}
