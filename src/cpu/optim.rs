//! Optimizers over (parameter, gradient) pairs with PyTorch's formulas and defaults —
//! the CPU path's, which `gpu::Optim` mirrors element for element.

use crate::error::{Error, Result};
use crate::real::Real;

/// An optimizer and its hyper-parameters (PyTorch's names; the constructors give
/// PyTorch's defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// `p −= lr·g` (the notebook's `update_parameters`).
    Sgd {
        /// Learning rate.
        lr: f32,
    },
    /// PyTorch's SGD with momentum (no dampening, not Nesterov): `b = μ·b + g` (`b = g`
    /// at the first step), `p −= lr·b`.
    Momentum {
        /// Learning rate.
        lr: f32,
        /// `μ`.
        momentum: f32,
    },
    /// PyTorch's Adam: `g += wd·p`; `m = β1·m + (1−β1)·g`, `v = β2·v + (1−β2)·g²`;
    /// `p −= lr·(m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)`.
    Adam {
        /// Learning rate.
        lr: f32,
        /// `β1`.
        beta1: f32,
        /// `β2`.
        beta2: f32,
        /// `ε`.
        eps: f32,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
    },
    /// PyTorch's AdamW: `p −= lr·wd·p` (decoupled), then Adam's step without the penalty.
    AdamW {
        /// Learning rate.
        lr: f32,
        /// `β1`.
        beta1: f32,
        /// `β2`.
        beta2: f32,
        /// `ε`.
        eps: f32,
        /// Decoupled weight decay.
        weight_decay: f32,
    },
}

/// Which update an [`Optimizer`] makes (the `kind` of `optim.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sgd = 0,
    Momentum = 1,
    Adam = 2,
    AdamW = 3,
}

/// An optimizer's hyper-parameters in one flat form (zeros where the kind has none).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hyper {
    pub kind: Kind,
    pub lr: f32,
    pub momentum: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub wd: f32,
}

impl Hyper {
    /// Adam's bias corrections `(1 − β1ᵗ, 1 − β2ᵗ)` at step `t` (1 for the others).
    pub fn corrections(&self, t: u64) -> (f64, f64) {
        match self.kind {
            Kind::Adam | Kind::AdamW => (
                1.0 - (self.beta1 as f64).powi(t as i32),
                1.0 - (self.beta2 as f64).powi(t as i32),
            ),
            _ => (1.0, 1.0),
        }
    }
}

impl Optimizer {
    /// The hyper-parameters in one flat form.
    pub(crate) fn hyper(&self) -> Hyper {
        let mut h = Hyper {
            kind: Kind::Sgd,
            lr: 0.0,
            momentum: 0.0,
            beta1: 0.0,
            beta2: 0.0,
            eps: 0.0,
            wd: 0.0,
        };
        match *self {
            Optimizer::Sgd { lr } => h.lr = lr,
            Optimizer::Momentum { lr, momentum } => {
                (h.kind, h.lr, h.momentum) = (Kind::Momentum, lr, momentum)
            }
            Optimizer::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            }
            | Optimizer::AdamW {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                h.kind = if matches!(self, Optimizer::AdamW { .. }) {
                    Kind::AdamW
                } else {
                    Kind::Adam
                };
                (h.lr, h.beta1, h.beta2, h.eps, h.wd) = (lr, beta1, beta2, eps, weight_decay);
            }
        }
        h
    }

    /// Adam with PyTorch's defaults: `β = (0.9, 0.999)`, `ε = 1e-8`, no weight decay.
    pub fn adam(lr: f32) -> Self {
        Optimizer::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// AdamW with PyTorch's defaults: `β = (0.9, 0.999)`, `ε = 1e-8`, weight decay 0.01.
    pub fn adamw(lr: f32) -> Self {
        Optimizer::AdamW {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }

    /// Checks the hyper-parameters (finite; `lr`, `ε` above 0 where used; `β` in
    /// `[0, 1)`; momentum and weight decay at least 0).
    pub fn check(&self) -> Result<()> {
        let h = self.hyper();
        let bad = |msg: String| {
            Err(Error::Invalid {
                arg: "optimizer",
                msg,
            })
        };
        if !(h.lr.is_finite() && h.lr > 0.0) {
            return bad(format!("lr = {}; it must be finite and above 0", h.lr));
        }
        let adam = matches!(h.kind, Kind::Adam | Kind::AdamW);
        let rest = [
            ("momentum", h.momentum, false, h.kind == Kind::Momentum),
            ("beta1", h.beta1, true, adam),
            ("beta2", h.beta2, true, adam),
            ("eps", h.eps, false, adam),
            ("weight_decay", h.wd, false, adam),
        ];
        for (name, v, beta, used) in rest {
            let ok = v.is_finite() && v >= 0.0 && (!beta || v < 1.0);
            if used && !ok {
                let range = if beta {
                    "[0, 1)"
                } else {
                    "finite and at least 0"
                };
                return bad(format!("{name} = {v}; it must be {range}"));
            }
        }
        Ok(())
    }
}

/// The state of an optimizer over a list of parameters (created by the first step).
#[derive(Debug, Clone, Default)]
pub struct OptimState<A> {
    /// Steps taken.
    pub step: u64,
    /// Per parameter: the momentum buffer, or Adam's first moment.
    pub m: Vec<Vec<A>>,
    /// Per parameter: Adam's second moment.
    pub v: Vec<Vec<A>>,
}

/// One optimizer step over `params` and their `grads` (the same sizes, pair by pair),
/// updating `state`.
pub fn optim_step<A: Real>(
    opt: &Optimizer,
    state: &mut OptimState<A>,
    params: &mut [&mut [A]],
    grads: &[&[A]],
) -> Result<()> {
    opt.check()?;
    if params.len() != grads.len() || params.iter().zip(grads).any(|(p, g)| p.len() != g.len()) {
        return Err(Error::Invalid {
            arg: "grads",
            msg: "one gradient of each parameter's size, in the parameters' order".into(),
        });
    }
    if state.step == 0 {
        state.m = params.iter().map(|p| vec![A::zero(); p.len()]).collect();
        state.v = state.m.clone();
    } else if state.m.len() != params.len()
        || state
            .m
            .iter()
            .zip(params.iter())
            .any(|(m, p)| m.len() != p.len())
    {
        return Err(Error::Invalid {
            arg: "state",
            msg: "made for other parameters".into(),
        });
    }
    state.step += 1;
    let t = state.step;
    let h = opt.hyper();
    let f = |v: f32| A::from_f64(v as f64);
    let (lr, mu, b1, b2, eps, wd) = (
        f(h.lr),
        f(h.momentum),
        f(h.beta1),
        f(h.beta2),
        f(h.eps),
        f(h.wd),
    );
    let (bc1, bc2) = h.corrections(t);
    let (bc1, bc2) = (A::from_f64(bc1), A::from_f64(bc2));
    for (k, (p, g)) in params.iter_mut().zip(grads).enumerate() {
        let (m, v) = (&mut state.m[k], &mut state.v[k]);
        for i in 0..p.len() {
            match h.kind {
                Kind::Sgd => p[i] -= lr * g[i],
                Kind::Momentum => {
                    m[i] = if t == 1 { g[i] } else { mu * m[i] + g[i] };
                    p[i] -= lr * m[i];
                }
                Kind::Adam | Kind::AdamW => {
                    let mut gi = g[i];
                    if h.kind == Kind::AdamW {
                        p[i] -= lr * wd * p[i];
                    } else {
                        gi += wd * p[i];
                    }
                    m[i] = b1 * m[i] + (A::one() - b1) * gi;
                    v[i] = b2 * v[i] + (A::one() - b2) * gi * gi;
                    let denom = A::from_f64((v[i] / bc2).to_f64().sqrt()) + eps;
                    p[i] -= lr * (m[i] / bc1) / denom;
                }
            }
        }
    }
    Ok(())
}
