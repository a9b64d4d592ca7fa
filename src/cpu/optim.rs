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

impl Optimizer {
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
        let bad = |msg: String| {
            Err(Error::Invalid {
                arg: "optimizer",
                msg,
            })
        };
        let (lr, rest): (f32, Vec<(&str, f32, bool)>) = match *self {
            Optimizer::Sgd { lr } => (lr, vec![]),
            Optimizer::Momentum { lr, momentum } => (lr, vec![("momentum", momentum, false)]),
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
            } => (
                lr,
                vec![
                    ("beta1", beta1, true),
                    ("beta2", beta2, true),
                    ("eps", eps, false),
                    ("weight_decay", weight_decay, false),
                ],
            ),
        };
        if !(lr.is_finite() && lr > 0.0) {
            return bad(format!("lr = {lr}; it must be finite and above 0"));
        }
        for (name, v, beta) in rest {
            let ok = v.is_finite() && v >= 0.0 && (!beta || v < 1.0);
            if !ok {
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
    let f = |v: f32| A::from_f64(v as f64);
    for (k, (p, g)) in params.iter_mut().zip(grads).enumerate() {
        let (m, v) = (&mut state.m[k], &mut state.v[k]);
        for i in 0..p.len() {
            match *opt {
                Optimizer::Sgd { lr } => p[i] -= f(lr) * g[i],
                Optimizer::Momentum { lr, momentum } => {
                    m[i] = if t == 1 {
                        g[i]
                    } else {
                        f(momentum) * m[i] + g[i]
                    };
                    p[i] -= f(lr) * m[i];
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
                    let decoupled = matches!(opt, Optimizer::AdamW { .. });
                    let mut gi = g[i];
                    if decoupled {
                        p[i] -= f(lr) * f(weight_decay) * p[i];
                    } else {
                        gi += f(weight_decay) * p[i];
                    }
                    m[i] = f(beta1) * m[i] + (A::one() - f(beta1)) * gi;
                    v[i] = f(beta2) * v[i] + (A::one() - f(beta2)) * gi * gi;
                    let bc1 = A::from_f64(1.0 - (beta1 as f64).powi(t as i32));
                    let bc2 = A::from_f64(1.0 - (beta2 as f64).powi(t as i32));
                    let denom = A::from_f64((v[i] / bc2).to_f64().sqrt()) + f(eps);
                    p[i] -= f(lr) * (m[i] / bc1) / denom;
                }
            }
        }
    }
    Ok(())
}
