//! Misuse, as real programs commit it: property tests over random shapes (0 and 1
//! included, primes up to 67) and memory layouts (transposed, stepped, reversed,
//! broadcast) calling every public CPU, notebook and GPU entry point — each returns `Ok`
//! equal to the standard-layout call, or the same `Err`, and never panics; then stale and
//! foreign traces, foreign and aliasing gradients, and the per-call error scopes.

mod common;

use common::gpu::ctx;
use common::layout::{guard, same, Laid, Layout, LAYOUTS};
use common::{assert_close, NumpyRng};
use ndarray::{Array1, Array2, Array3, ArrayD, Ix2};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use wgpu_rnn::gpu::{matmul, GpuHead, Layer, Mode, Tensor};
use wgpu_rnn::{cpu, notebook, Cell, Error, Head, Params};

type Outs = wgpu_rnn::Result<Vec<ArrayD<f64>>>;

/// The argument an error names (errors of the GPU and CPU paths must agree on it).
fn arg_of(e: &Error) -> Option<&'static str> {
    match e {
        Error::Shape { arg, .. }
        | Error::Invalid { arg, .. }
        | Error::TooLarge { arg, .. }
        | Error::OutOfMemory { arg, .. } => Some(arg),
        _ => None,
    }
}

fn d<D: ndarray::Dimension>(a: ndarray::Array<f64, D>) -> ArrayD<f64> {
    a.into_dyn()
}

fn layout() -> impl Strategy<Value = Layout> {
    prop::sample::select(LAYOUTS.to_vec())
}

fn size() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![0usize, 1, 1, 2, 3, 5, 7, 13, 67])
}

/// Random sizes (each ≥ 0), a seed and a layout per argument.
#[derive(Debug, Clone)]
struct Shapes {
    cell: Cell,
    t: usize,
    b: usize,
    i: usize,
    h: usize,
    seed: u32,
    lay: [Layout; 8],
}

/// Random shapes and layouts for one of `cells`.
fn shapes(cells: &[Cell]) -> impl Strategy<Value = Shapes> {
    (
        prop::sample::select(cells.to_vec()),
        size(),
        size(),
        size(),
        size(),
        any::<u32>(),
        prop::array::uniform8(layout()),
    )
        .prop_filter("keep the f64 work small", |(_, t, b, i, h, _, _)| {
            t * b * (i + h) * h <= 200_000
        })
        .prop_map(|(cell, t, b, i, h, seed, lay)| Shapes {
            cell,
            t,
            b,
            i,
            h,
            seed,
            lay,
        })
}

/// Every gradient of a CPU backward, as arrays to compare.
fn grad_arrays(g: cpu::Grads<f64>) -> Vec<ArrayD<f64>> {
    let mut v = vec![
        d(g.dx.clone()),
        d(g.dh0.clone()),
        d(g.dw_ih.clone()),
        d(g.dw_hh.clone()),
        d(g.db_ih.clone()),
        d(g.db_hh.clone()),
    ];
    v.extend(g.dc0.clone().map(d));
    v
}

/// Every public CPU function on laid-out arguments against standard-layout copies.
fn cpu_any_layout(s: &Shapes) -> Result<(), TestCaseError> {
    let mut rng = NumpyRng::new(s.seed);
    let (cell, t, b, i, h) = (s.cell, s.t, s.b, s.i, s.h);
    let g = cell.gates();
    let lstm = cell.has_cell_state();
    let l = |k: usize| s.lay[k % 8];
    let w_ih = Laid::new(&rng.randn((g * h, i)), l(0));
    let w_hh = Laid::new(&rng.randn((g * h, h)), l(1));
    let b_ih = Laid::new(&rng.randn(g * h), l(2));
    let b_hh = Laid::new(&rng.randn(g * h), l(3));
    let x = Laid::new(&rng.randn((t, b, i)), l(4));
    let h0 = Laid::new(&rng.randn((b, h)), l(5));
    let c0 = Laid::new(&rng.randn((b, h)), l(6));
    let dh = Laid::new(&rng.randn((t, b, h)), l(7));
    let dc = Laid::new(&rng.randn((b, h)), l(0));

    let params = |std: bool| {
        let pick = |a: &Laid<f64, Ix2>| if std { a.standard() } else { a.owned() };
        let pick1 = |a: &Laid<f64, ndarray::Ix1>| if std { a.standard() } else { a.owned() };
        Params::new(cell, pick(&w_ih), pick(&w_hh), pick1(&b_ih), pick1(&b_hh))
    };
    let (p, p_std) = (
        guard("Params::new", || params(false))?,
        guard("Params::new", || params(true))?,
    );
    same(
        "Params::new",
        p.clone().map(|_| vec![]),
        p_std.clone().map(|_| vec![]),
        0.0,
    )?;
    let (Ok(p), Ok(p_std)) = (p, p_std) else {
        return Ok(());
    };
    let c0v = lstm.then(|| c0.view());
    let c0s = c0.standard();
    let c0sv = lstm.then(|| c0s.view());

    // forward
    let run_fwd = |p: &Params<f64>, x, h0, c0| -> Outs {
        let tr = cpu::forward(p, x, h0, c0)?;
        let mut v = vec![d(tr.h.clone())];
        v.extend(tr.c.clone().map(d));
        Ok(v)
    };
    let (xs, h0s) = (x.standard(), h0.standard());
    let got = guard("cpu::forward", || {
        run_fwd(&p, x.view(), Some(h0.view()), c0v)
    })?;
    let want = run_fwd(&p_std, xs.view(), Some(h0s.view()), c0sv);
    same("cpu::forward", got, want, 1e-12)?;

    // backward (the trace made from standard inputs: its fields are the user's too)
    if let Ok(tr) = cpu::forward(&p_std, xs.view(), Some(h0s.view()), c0sv) {
        let dcv = lstm.then(|| dc.view());
        let dcs = dc.standard();
        let run_bwd =
            |p: &Params<f64>, dh, dc| -> Outs { Ok(grad_arrays(cpu::backward(p, &tr, dh, dc)?)) };
        let got = guard("cpu::backward", || run_bwd(&p, dh.view(), dcv))?;
        let dhs = dh.standard();
        let want = run_bwd(&p_std, dhs.view(), lstm.then(|| dcs.view()));
        same("cpu::backward", got, want.clone(), 1e-12)?;
        // A trace whose own arrays are laid out every way an owned array can be (a
        // broadcast cannot be owned: reversed instead).
        let own = |k: usize| match l(k) {
            Layout::Broadcast => Layout::Reversed,
            other => other,
        };
        let laid_tr = cpu::Trace {
            cell,
            x: Laid::new(&tr.x, own(1)).owned(),
            h0: Laid::new(&tr.h0, own(2)).owned(),
            c0: tr.c0.as_ref().map(|a| Laid::new(a, own(3)).owned()),
            h: Laid::new(&tr.h, own(4)).owned(),
            c: tr.c.as_ref().map(|a| Laid::new(a, own(5)).owned()),
            gates: tr.gates.as_ref().map(|a| Laid::new(a, own(6)).owned()),
        };
        let got = guard("cpu::backward (laid-out trace)", || {
            Ok(grad_arrays(cpu::backward(&p, &laid_tr, dh.view(), dcv)?))
        })?;
        same("cpu::backward (laid-out trace)", got, want, 1e-12)?;
    }

    // one step, forward and backward
    if t > 0 {
        let xt = x.view().index_axis_move(ndarray::Axis(0), 0);
        let xts = xt.as_standard_layout().into_owned();
        let run_step = |p: &Params<f64>, xt, hp, cp, dhv, dcv| -> Outs {
            let out = cpu::step_forward(p, xt, hp, cp)?;
            let g = cpu::step_backward(p, xt, hp, cp, &out, dhv, dcv)?;
            let mut v = vec![d(out.h.clone()), d(g.dx), d(g.dh_prev), d(g.dw_hh)];
            v.extend(g.dc_prev.map(d));
            Ok(v)
        };
        let dh0 = dh.view().index_axis_move(ndarray::Axis(0), 0);
        let dh0s = dh0.as_standard_layout().into_owned();
        let dcs = dc.standard();
        let got = guard("cpu::step_forward/step_backward", || {
            run_step(&p, xt, h0.view(), c0v, dh0, lstm.then(|| dc.view()))
        })?;
        let want = run_step(
            &p_std,
            xts.view(),
            h0s.view(),
            c0sv,
            dh0s.view(),
            lstm.then(|| dcs.view()),
        );
        same("cpu::step_forward/step_backward", got, want, 1e-12)?;
    }

    // head and softmax
    let c = i.max(1);
    let wy = Laid::new(&rng.randn((c, h)), l(1));
    let by = Laid::new(&rng.randn(c), l(2));
    let head = guard("Head::new", || Head::new(wy.owned(), by.owned()))?;
    let head_std = Head::new(wy.standard(), by.standard());
    if let (Ok(head), Ok(head_std)) = (head, head_std) {
        let hin = Laid::new(&rng.randn((t, b, h)), l(3));
        let got = guard("cpu::head_forward", || {
            cpu::head_forward(&head, hin.view()).map(|y| vec![d(y)])
        })?;
        let want = cpu::head_forward(&head_std, hin.standard().view()).map(|y| vec![d(y)]);
        same("cpu::head_forward", got, want, 1e-12)?;
    }
    let mut z = Laid::new(&rng.randn((b, i)), l(4));
    let mut zs = z.standard();
    guard("cpu::softmax_last_axis", || {
        cpu::softmax_last_axis(z.view_mut())
    })?;
    cpu::softmax_last_axis(zs.view_mut());
    same(
        "cpu::softmax_last_axis",
        Ok(vec![d(z.owned())]),
        Ok(vec![d(zs)]),
        1e-12,
    )?;
    Ok(())
}

/// The notebook's functions on laid-out arguments (its own layout `(n, m[, T])`).
fn notebook_any_layout(s: &Shapes) -> Result<(), TestCaseError> {
    let mut rng = NumpyRng::new(s.seed);
    let (t, m, n_x, n_a) = (s.t, s.b, s.i, s.h);
    let n_y = 2;
    let l = |k: usize| s.lay[k % 8];
    let x = Laid::new(&rng.randn((n_x, m, t)), l(0));
    let a0 = Laid::new(&rng.randn((n_a, m)), l(1));
    let da = Laid::new(&rng.randn((n_a, m, t)), l(2));
    let da1 = Laid::new(&rng.randn((n_a, m)), l(3));
    // The reference takes the standard copy of the laid-out array (a broadcast repeats
    // its first row).
    let lay2 = |a: Array2<f64>, k, std: bool| {
        let laid = Laid::new(&a, l(k));
        if std {
            laid.standard()
        } else {
            laid.owned()
        }
    };
    if s.cell == Cell::Rnn {
        let params = |std: bool| {
            let mut r = NumpyRng::new(s.seed ^ 1);
            let mut w = |shape: (usize, usize), k| lay2(r.randn(shape), k, std);
            notebook::RnnParameters {
                wax: w((n_a, n_x), 3),
                waa: w((n_a, n_a), 4),
                wya: w((n_y, n_a), 5),
                ba: w((n_a, 1), 6),
                by: w((n_y, 1), 7),
            }
        };
        let (p, ps) = (params(false), params(true));
        let fwd = |xv, av, p: &notebook::RnnParameters<f64>| -> Outs {
            let (a, y, caches) = notebook::rnn_forward(xv, av, p)?;
            let g = notebook::rnn_backward(a.view(), &caches)?;
            Ok(vec![
                d(a),
                d(y),
                d(g.dx),
                d(g.da0),
                d(g.dwax),
                d(g.dwaa),
                d(g.dba),
            ])
        };
        let (xs, a0s) = (x.standard(), a0.standard());
        let got = guard("notebook::rnn_forward/rnn_backward", || {
            fwd(x.view(), a0.view(), &p)
        })?;
        same(
            "notebook::rnn_forward/rnn_backward",
            got,
            fwd(xs.view(), a0s.view(), &ps),
            1e-12,
        )?;
        let got = guard("notebook::rnn_backward(da)", || {
            let (_, _, caches) = notebook::rnn_forward(xs.view(), a0s.view(), &ps)?;
            notebook::rnn_backward(da.view(), &caches).map(|g| vec![d(g.dx), d(g.dwaa)])
        })?;
        let want = notebook::rnn_forward(xs.view(), a0s.view(), &ps).and_then(|(_, _, c)| {
            notebook::rnn_backward(da.standard().view(), &c).map(|g| vec![d(g.dx), d(g.dwaa)])
        });
        same("notebook::rnn_backward(da)", got, want, 1e-12)?;
        if t > 0 {
            let xt = x.view().index_axis_move(ndarray::Axis(2), 0);
            let xts = xt.as_standard_layout().into_owned();
            let cell = |xv, av, dav, p: &notebook::RnnParameters<f64>| -> Outs {
                let (a, y, cache) = notebook::rnn_cell_forward(xv, av, p)?;
                let g = notebook::rnn_cell_backward(dav, &cache)?;
                Ok(vec![d(a), d(y), d(g.dxt), d(g.da_prev), d(g.dwax)])
            };
            let got = guard("notebook::rnn_cell_forward/backward", || {
                cell(xt, a0.view(), da1.view(), &p)
            })?;
            let want = cell(xts.view(), a0s.view(), da1.standard().view(), &ps);
            same("notebook::rnn_cell_forward/backward", got, want, 1e-12)?;
        }
    } else {
        let params = |std: bool| {
            let mut r = NumpyRng::new(s.seed ^ 2);
            let mut w = |shape: (usize, usize), k| lay2(r.randn(shape), k, std);
            let wshape = (n_a, n_a + n_x);
            notebook::LstmParameters {
                wf: w(wshape, 0),
                bf: w((n_a, 1), 1),
                wi: w(wshape, 2),
                bi: w((n_a, 1), 3),
                wc: w(wshape, 4),
                bc: w((n_a, 1), 5),
                wo: w(wshape, 6),
                bo: w((n_a, 1), 7),
                wy: w((n_y, n_a), 0),
                by: w((n_y, 1), 1),
            }
        };
        let (p, ps) = (params(false), params(true));
        let fwd = |xv, av, dav, p: &notebook::LstmParameters<f64>| -> Outs {
            let (a, y, c, caches) = notebook::lstm_forward(xv, av, p)?;
            let g = notebook::lstm_backward(dav, &caches)?;
            Ok(vec![
                d(a),
                d(y),
                d(c),
                d(g.dx),
                d(g.da0),
                d(g.dc0),
                d(g.w.dwf),
                d(g.w.dbo),
            ])
        };
        let (xs, a0s) = (x.standard(), a0.standard());
        let got = guard("notebook::lstm_forward/lstm_backward", || {
            fwd(x.view(), a0.view(), da.view(), &p)
        })?;
        let want = fwd(xs.view(), a0s.view(), da.standard().view(), &ps);
        same("notebook::lstm_forward/lstm_backward", got, want, 1e-12)?;
        if t > 0 {
            let c_prev = Laid::new(&rng.randn((n_a, m)), l(5));
            let dc1 = Laid::new(&rng.randn((n_a, m)), l(6));
            let xt = x.view().index_axis_move(ndarray::Axis(2), 0);
            let xts = xt.as_standard_layout().into_owned();
            let cell = |xv, av, cv, dav, dcv, p: &notebook::LstmParameters<f64>| -> Outs {
                let (a, c, y, cache) = notebook::lstm_cell_forward(xv, av, cv, p)?;
                let g = notebook::lstm_cell_backward(dav, dcv, &cache)?;
                Ok(vec![d(a), d(c), d(y), d(g.dxt), d(g.dc_prev), d(g.w.dwi)])
            };
            let got = guard("notebook::lstm_cell_forward/backward", || {
                cell(xt, a0.view(), c_prev.view(), da1.view(), dc1.view(), &p)
            })?;
            let want = cell(
                xts.view(),
                a0s.view(),
                c_prev.standard().view(),
                da1.standard().view(),
                dc1.standard().view(),
                &ps,
            );
            same("notebook::lstm_cell_forward/backward", got, want, 1e-12)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn cpu_entry_points_take_any_shape_and_layout(s in shapes(&Cell::ALL)) {
        cpu_any_layout(&s)?;
    }

    #[test]
    fn notebook_entry_points_take_any_shape_and_layout(s in shapes(&[Cell::Rnn, Cell::Lstm])) {
        notebook_any_layout(&s)?;
    }
}

/// The GPU entry points on laid-out host arrays, against the f64 CPU path (2e-4).
fn gpu_any_layout(s: &Shapes) -> Result<(), TestCaseError> {
    let Some(ctx) = ctx() else { return Ok(()) };
    let mut rng = NumpyRng::new(s.seed);
    let (cell, t, b, i, h) = (s.cell, s.t, s.b, s.i, s.h);
    let g = cell.gates();
    let lstm = cell.has_cell_state();
    let l = |k: usize| s.lay[k % 8];
    let f = |a: ndarray::ArrayD<f64>| a.mapv(|v| v as f32);
    // PyTorch's scale, U(-1/√H, 1/√H) (saturating inputs have their own tests).
    let k = 1.0 / (h.max(1) as f64).sqrt();
    let p64 = Params::new(
        cell,
        rng.uniform_array((g * h, i), -k, k),
        rng.uniform_array((g * h, h), -k, k),
        rng.uniform_array(g * h, -k, k),
        rng.uniform_array(g * h, -k, k),
    );
    // Inputs scaled by 1/√I so pre-activations stay O(1): in f32, 1 - tanh² of a
    // saturated unit has no correct digits left, in any implementation.
    let xs = 1.0 / (i.max(1) as f64).sqrt();
    let x = Laid::new(&rng.randn((t, b, i)).mapv(|v| (v * xs) as f32), l(0));
    let h0 = Laid::new(&rng.randn((b, h)).mapv(|v| v as f32), l(1));
    let c0 = Laid::new(&rng.randn((b, h)).mapv(|v| v as f32), l(2));
    let dh = Laid::new(&rng.randn((t, b, h)).mapv(|v| v as f32), l(3));

    // Upload and download of any layout.
    let up = guard("Tensor::from_array", || {
        Tensor::from_array(ctx, "x", &x.view())
    })?;
    let down = guard("Tensor::to_array", || up.and_then(|t| t.to_array()))?;
    same(
        "Tensor::from_array/to_array",
        down.map(|a| vec![a.mapv(|v| v as f64)]),
        Ok(vec![x.standard().into_dyn().mapv(|v| v as f64)]),
        0.0,
    )?;
    let z = guard("Tensor::zeros", || {
        Tensor::zeros(ctx, "z", &[t, b, i]).and_then(|t| t.to_array())
    })?;
    prop_assert!(z.is_ok(), "Tensor::zeros: {z:?}");

    let Ok(p64) = p64 else { return Ok(()) };
    // A layer made from laid-out weights; the reference from their standard copies.
    let (w_ih, w_hh) = (Laid::new(&p64.w_ih, l(4)), Laid::new(&p64.w_hh, l(5)));
    let p64 = Params::new(cell, w_ih.standard(), w_hh.standard(), p64.b_ih, p64.b_hh)
        .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let laid_p = Params::new(
        cell,
        w_ih.owned().mapv(|v| v as f32),
        w_hh.owned().mapv(|v| v as f32),
        p64.b_ih.mapv(|v| v as f32),
        p64.b_hh.mapv(|v| v as f32),
    )
    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let layer = guard("Layer::new", || Layer::new(ctx, &laid_p))?
        .map_err(|e| TestCaseError::fail(format!("Layer::new: {e}")))?;
    let xs = x.standard().mapv(|v| v as f64);
    let h0s = h0.standard().mapv(|v| v as f64);
    let c0s = c0.standard().mapv(|v| v as f64);
    let want = cpu::forward(&p64, xs.view(), Some(h0s.view()), lstm.then(|| c0s.view()));
    let got = guard("Layer::forward", || -> wgpu_rnn::Result<_> {
        let xt = Tensor::from_array(ctx, "x", &x.view())?;
        let h0t = Tensor::from_array(ctx, "h0", &h0.view())?;
        let c0t = Tensor::from_array(ctx, "c0", &c0.view())?;
        let out = layer.forward(&xt, Some(&h0t), lstm.then_some(&c0t), Mode::Training)?;
        let hh = out.h.to_array()?;
        let dht = Tensor::from_array(ctx, "dh", &dh.view())?;
        let gr = layer.backward(out.trace.as_ref().unwrap(), &dht, None)?;
        Ok((hh, gr.to_cpu()?))
    })?;
    match (got, want) {
        (Err(g), Err(w)) => prop_assert_eq!(arg_of(&g), arg_of(&w), "GPU {:?} vs CPU {:?}", g, w),
        (Ok((hh, gr)), Ok(tr)) => {
            prop_assert!(common::rel_err(&hh, &tr.h.clone().into_dyn()) <= 2e-4);
            let w =
                cpu::backward(&p64, &tr, dh.standard().mapv(|v| v as f64).view(), None).unwrap();
            prop_assert!(common::rel_err(&gr.dx, &w.dx) <= 2e-4, "dx");
            prop_assert!(common::rel_err(&gr.dh0, &w.dh0) <= 2e-4, "dh0");
            prop_assert!(common::rel_err(&gr.dw_ih, &w.dw_ih) <= 2e-4, "dw_ih");
            prop_assert!(common::rel_err(&gr.dw_hh, &w.dw_hh) <= 2e-4, "dw_hh");
            prop_assert!(common::rel_err(&gr.db_ih, &w.db_ih) <= 2e-4, "db_ih");
            prop_assert!(common::rel_err(&gr.db_hh, &w.db_hh) <= 2e-4, "db_hh");
        }
        (g, w) => {
            return Err(TestCaseError::fail(format!(
                "Layer::forward: GPU {:?} vs CPU {:?}",
                g.err(),
                w.err()
            )))
        }
    }

    // Head and matmul on laid-out arrays.
    let c = i.max(1);
    let wy = rng.randn((c, h));
    let head = Head::new(
        Laid::new(&wy.mapv(|v| v as f32), l(6)).owned(),
        Array1::zeros(c),
    );
    if let Ok(head) = head {
        let hin = Laid::new(&rng.randn((t, b, h)).mapv(|v| v as f32), l(7));
        let got = guard("GpuHead", || -> wgpu_rnn::Result<_> {
            let gh = GpuHead::new(ctx, &head)?;
            gh.forward(&Tensor::from_array(ctx, "h", &hin.view())?)?
                .to_array()
        })?;
        let want = cpu::head_forward(
            &head.cast::<f64>(),
            hin.standard().mapv(|v| v as f64).view(),
        );
        match (got, want) {
            (Ok(y), Ok(w)) => prop_assert!(common::rel_err(&y, &w.into_dyn()) <= 2e-4),
            (Err(g), Err(w)) => {
                prop_assert_eq!(arg_of(&g), arg_of(&w), "GPU {:?} vs CPU {:?}", g, w)
            }
            (g, w) => {
                return Err(TestCaseError::fail(format!(
                    "GpuHead: {:?} vs CPU {:?}",
                    g.err(),
                    w.err()
                )))
            }
        }
    }
    let a = Laid::new(&rng.randn((b, i)).mapv(|v| v as f32), l(1));
    let bm = Laid::new(&rng.randn((i, h)).mapv(|v| v as f32), l(2));
    let got = guard("matmul", || -> wgpu_rnn::Result<_> {
        matmul(
            &Tensor::from_array(ctx, "a", &a.view())?,
            &Tensor::from_array(ctx, "b", &bm.view())?,
        )?
        .to_array()
    })?;
    if b > 0 && i > 0 && h > 0 {
        let want = a
            .standard()
            .mapv(|v| v as f64)
            .dot(&bm.standard().mapv(|v| v as f64));
        let got = got.map_err(|e| TestCaseError::fail(format!("matmul: {e}")))?;
        prop_assert!(common::rel_err(&got, &f(want.into_dyn()).mapv(|v| v as f64)) <= 2e-4);
    } else {
        prop_assert!(got.is_err(), "matmul of an empty matrix must be an error");
    }
    Ok(())
}

proptest! {
    // Bounded to well under a minute on lavapipe.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn gpu_entry_points_take_any_shape_and_layout(s in shapes(&Cell::ALL).prop_filter(
        "GPU shapes stay small", |s| s.t <= 13 && s.b <= 13 && s.i <= 67 && s.h <= 67)) {
        gpu_any_layout(&s)?;
    }
}

/// A trace of another layer, or of weights `set_params` has replaced, is refused;
/// gradients of another layer, or sharing a buffer with an input, are refused.
#[test]
fn stale_and_foreign_traces_and_gradients_are_errors() {
    let Some(ctx) = ctx() else { return };
    let p = Params::<f32>::init(Cell::Lstm, 3, 4, 1).unwrap();
    let a = Layer::new(ctx, &p).unwrap();
    let b = Layer::new(ctx, &p).unwrap();
    let x = Tensor::from_array(ctx, "x", &Array3::<f32>::ones((2, 2, 3))).unwrap();
    let dh = Tensor::from_array(ctx, "dh", &Array3::<f32>::ones((2, 2, 4))).unwrap();
    let out = a.forward(&x, None, None, Mode::Training).unwrap();
    let tr = out.trace.as_ref().unwrap();
    // Foreign: same sizes and weights, another layer.
    common::expect_err(b.backward(tr, &dh, None), "trace");
    // Stale: the weights changed after the forward.
    assert!(a.backward(tr, &dh, None).is_ok());
    a.set_params(&Params::init(Cell::Lstm, 3, 4, 2).unwrap())
        .unwrap();
    assert_eq!(a.version(), 1);
    common::expect_err(a.backward(tr, &dh, None), "trace");
    // A fresh forward is fine again and right for the new weights.
    let out = a.forward(&x, None, None, Mode::Training).unwrap();
    let tr = out.trace.as_ref().unwrap();
    let g = a.backward(tr, &dh, None).unwrap().to_cpu().unwrap();
    let p2 = Params::<f64>::init(Cell::Lstm, 3, 4, 2).unwrap();
    let ctr = cpu::forward(
        &p2.cast::<f64>(),
        Array3::ones((2, 2, 3)).view(),
        None,
        None,
    )
    .unwrap();
    let want = cpu::backward(&p2, &ctr, Array3::ones((2, 2, 4)).view(), None).unwrap();
    assert_close(
        "dw_hh after set_params",
        &g.dw_hh,
        &want.dw_hh.mapv(|v| v as f32),
        2e-4,
    );

    // Gradients of another layer's shape.
    let other = Layer::new(ctx, &Params::init(Cell::Lstm, 3, 5, 1).unwrap()).unwrap();
    let mut wrong = other.zero_grads().unwrap();
    common::expect_err(a.backward_into(tr, &dh, None, &mut wrong, true), "grads");
    // Gradients that alias an input, with every shape right: dc_last is the recurrent
    // weight gradient itself ([4H, H] = [B, H] for B = 4H = 16).
    let x16 = Tensor::from_array(ctx, "x", &Array3::<f32>::ones((2, 16, 3))).unwrap();
    let dh16 = Tensor::from_array(ctx, "dh", &Array3::<f32>::ones((2, 16, 4))).unwrap();
    let o16 = a.forward(&x16, None, None, Mode::Training).unwrap();
    let tr16 = o16.trace.as_ref().unwrap();
    let mut grads = a.zero_grads().unwrap();
    let alias = grads.dw_hh().clone();
    assert_eq!(alias.shape(), &[16, 4]);
    let before = alias.to_array().unwrap();
    let r = a.backward_into(tr16, &dh16, Some(&alias), &mut grads, true);
    common::expect_err(r, "grads");
    assert_eq!(
        grads.dw_hh().to_array().unwrap(),
        before,
        "nothing was written"
    );
    // Without the alias the same call is fine.
    let dc = Tensor::zeros(ctx, "dc", &[16, 4]).unwrap();
    assert!(a
        .backward_into(tr16, &dh16, Some(&dc), &mut grads, true)
        .is_ok());
    // A trace made by a layer of another context.
    if let Some(gl) = common::gpu::gl_ctx() {
        if !gl.same(ctx) {
            let la = Layer::new(gl, &p).unwrap();
            let xg = Tensor::from_array(gl, "x", &Array3::<f32>::ones((2, 2, 3))).unwrap();
            let o = la.forward(&xg, None, None, Mode::Training).unwrap();
            common::expect_err(a.backward(o.trace.as_ref().unwrap(), &dh, None), "trace");
            // A foreign dh.
            let dhg = Tensor::from_array(gl, "dh", &Array3::<f32>::ones((2, 2, 4))).unwrap();
            common::expect_err(a.backward(tr, &dhg, None), "dh");
        }
    }
}

/// A library call that fails on the device returns its own error inside a user's error
/// scope (which pops empty), while valid calls on another thread meanwhile return `Ok`.
#[test]
fn each_call_captures_its_own_device_errors() {
    let Some(ctx) = ctx() else { return };
    let p = Params::<f32>::init(Cell::Rnn, 3, 4, 1).unwrap();
    let layer = Layer::new(ctx, &p).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let x = Tensor::from_array(ctx, "x", &Array3::<f32>::ones((3, 2, 3))).unwrap();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 20 {
                let out = layer.forward(&x, None, None, Mode::Inference);
                let h = out.and_then(|o| o.h.to_array());
                assert!(h.is_ok(), "valid call on another thread failed: {h:?}");
                n += 1;
            }
            n
        });
        for _ in 0..20 {
            // A destroyed input buffer: the submit fails validation inside the call.
            let x = Tensor::from_array(ctx, "x", &Array3::<f32>::ones((3, 2, 3))).unwrap();
            x.buffer().destroy();
            let scope = ctx.device().push_error_scope(wgpu::ErrorFilter::Validation);
            let r = layer.forward(&x, None, None, Mode::Inference);
            let user = pollster::block_on(scope.pop());
            assert!(
                matches!(r, Err(Error::Device(_))),
                "the failing call returns its error: {r:?}"
            );
            assert!(user.is_none(), "the user's scope stays empty: {user:?}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(worker.join().unwrap() >= 20);
    });
}
