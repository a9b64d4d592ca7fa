//! One `Layer` and one `Context` shared by 4 threads: forwards, backwards and
//! `set_params` at once. Every result equals the CPU result of one whole weight version;
//! a backward whose trace a `set_params` overtook is refused, never wrong; nothing hangs;
//! device memory stays bounded over 1000 `set_params` calls. The test binary has its own
//! context, so the device's counters see only this test's buffers.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::gpu::{fresh, within};
use common::{rel_err, NumpyRng};
use ndarray::Array3;
use wgpu_rnn::gpu::{Layer, Mode, Tensor};
use wgpu_rnn::{cpu, Cell, Error, Params};

#[test]
fn forward_backward_and_set_params_race_on_one_layer() {
    let Some(ctx) = fresh() else { return };
    within(300, "threads", move || {
        let (t, b, i, h) = (4, 3, 5, 8);
        let versions: Vec<Params<f64>> = (0..3)
            .map(|s| Params::init(Cell::Lstm, i, h, 10 + s).unwrap())
            .collect();
        let mut rng = NumpyRng::new(5);
        let x = rng.randn((t, b, i));
        let dh = rng.randn((t, b, h));
        let refs: Vec<_> = versions
            .iter()
            .map(|p| {
                let tr = cpu::forward(p, x.view(), None, None).unwrap();
                let g = cpu::backward(p, &tr, dh.view(), None).unwrap();
                (tr.h.clone(), g.dw_hh.clone(), g.dx.clone())
            })
            .collect();
        let layer = Layer::new(&ctx, &versions[0].cast()).unwrap();
        let xt = Tensor::from_array(&ctx, "x", &x.mapv(|v| v as f32)).unwrap();
        let dht = Tensor::from_array(&ctx, "dh", &dh.mapv(|v| v as f32)).unwrap();
        let stale = AtomicUsize::new(0);
        let checked = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..40 {
                        let out = layer.forward(&xt, None, None, Mode::Training).unwrap();
                        let got_h = out.h.to_array().unwrap();
                        let v = refs
                            .iter()
                            .position(|r| rel_err(&got_h, &r.0.clone().into_dyn()) <= 2e-4)
                            .unwrap_or_else(|| panic!("h matches no weight version"));
                        match layer.backward(out.trace.as_ref().unwrap(), &dht, None) {
                            Ok(g) => {
                                let g = g.to_cpu().unwrap();
                                // The gradients belong to the same version as h.
                                assert!(rel_err(&g.dw_hh, &refs[v].1) <= 2e-4, "dw_hh");
                                assert!(rel_err(&g.dx, &refs[v].2) <= 2e-4, "dx");
                                checked.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(Error::Invalid { arg: "trace", .. }) => {
                                // Refused only when the weights really changed since.
                                let tr = out.trace.as_ref().unwrap();
                                assert_ne!(tr.version(), layer.version(), "refused a fresh trace");
                                stale.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("backward: {e}"),
                        }
                    }
                });
            }
            // A fourth thread asks whether the device is lost all the while.
            s.spawn(|| {
                while checked.load(Ordering::Relaxed) + stale.load(Ordering::Relaxed) < 120 {
                    assert!(!ctx.is_lost());
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
            s.spawn(|| {
                for k in 1..=200 {
                    layer.set_params(&versions[k % 3].cast()).unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
        });
        eprintln!(
            "{} backwards checked, {} refused as stale",
            checked.load(Ordering::Relaxed),
            stale.load(Ordering::Relaxed)
        );
        assert!(checked.load(Ordering::Relaxed) > 0);
    });
}

/// 1000 `set_params` calls with no read in between keep device memory bounded (the
/// staging of each update is submitted at once and reclaimed; at most 16 submissions run
/// ahead of the host).
#[test]
fn set_params_keeps_memory_bounded() {
    let Some(ctx) = fresh() else { return };
    within(300, "1000 set_params", move || {
        let (i, h) = (256, 256);
        let p = Params::<f32>::init(Cell::Lstm, i, h, 1).unwrap();
        let q = Params::<f32>::init(Cell::Lstm, i, h, 2).unwrap();
        let layer = Layer::new(&ctx, &p).unwrap();
        // One forward first, so every pipeline and the step uniform exist.
        let x = Tensor::from_array(&ctx, "x", &Array3::<f32>::ones((2, 2, i))).unwrap();
        layer
            .forward(&x, None, None, Mode::Inference)
            .unwrap()
            .h
            .to_array()
            .unwrap();
        let counters = || ctx.device().get_internal_counters().hal;
        let (mem0, bufs0) = (counters().buffer_memory.read(), counters().buffers.read());
        // Vulkan counts live bytes; GL only live buffers (checked below either way).
        let counts_bytes = ctx.adapter_info().backend != wgpu::Backend::Gl;
        assert!(
            !counts_bytes || mem0 > 0,
            "the device counts no buffer memory"
        );
        let weights = 3 * 4 * h * (i.max(h)) * 4; // w_ih + two w_hh layouts, bytes
        for k in 0..1000 {
            layer.set_params(if k % 2 == 0 { &q } else { &p }).unwrap();
        }
        let (mem1, bufs1) = (counters().buffer_memory.read(), counters().buffers.read());
        eprintln!(
            "live buffer bytes {mem0} -> {mem1} ({} MB of weights written), buffers {bufs0} -> {bufs1}",
            1000 * weights / 1_000_000
        );
        // Unbounded staging would hold 1000 updates (≈ 3 GB); the bound is 32 updates.
        assert!(
            mem1 - mem0 <= (32 * weights) as isize,
            "device memory grew by {} bytes over 1000 set_params",
            mem1 - mem0
        );
        assert!(
            bufs1 - bufs0 <= 64,
            "{} buffers more after 1000 set_params",
            bufs1 - bufs0
        );
        // Uploads made and dropped in a loop, with nothing else submitted: bounded too.
        let big = Array3::<f32>::ones((16, 64, 1024)); // 4 MiB
        for _ in 0..200 {
            drop(Tensor::from_array(&ctx, "x", &big).unwrap());
        }
        let (mem2, bufs2) = (counters().buffer_memory.read(), counters().buffers.read());
        eprintln!("after 200 uploads of 4 MiB: live buffer bytes {mem2}, buffers {bufs2}");
        assert!(
            mem2 - mem0 <= ((32 << 22) + 32 * weights) as isize,
            "device memory grew by {} bytes over 200 uploads",
            mem2 - mem0
        );
        assert!(
            bufs2 - bufs0 <= 64,
            "{} buffers more after 200 uploads",
            bufs2 - bufs0
        );
        // And the last version is the one in place.
        let got = layer
            .forward(&x, None, None, Mode::Inference)
            .unwrap()
            .h
            .to_array()
            .unwrap();
        let want = cpu::forward(&p.cast::<f64>(), Array3::ones((2, 2, i)).view(), None, None)
            .unwrap()
            .h
            .clone();
        assert!(rel_err(&got, &want.into_dyn()) <= 2e-4);
    });
}
