//! Device tensors: a storage buffer (or a view into one) with a shape.

use std::sync::Arc;

use ndarray::{ArrayBase, ArrayD, Data, Dimension, IxDyn};

use super::context::Buf;
use super::Context;
use crate::error::{fmt_shape, Error, Result};

/// An `f32` tensor on the device: a buffer, an element offset into it, and a row-major
/// shape. Views (the hidden states of a sequence, its last step) share the buffer.
#[derive(Debug, Clone)]
pub struct Tensor {
    ctx: Context,
    buffer: Arc<Buf>,
    offset: u64,
    shape: Vec<usize>,
}

/// Usage of every tensor buffer: bound as storage, copied either way.
pub(crate) const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Tensor {
    /// Uploads an array (any layout; it is read in logical row-major order). Its size is
    /// checked against the device's limits first ([`Error::TooLarge`] naming `arg`).
    pub fn from_array<S, D>(ctx: &Context, arg: &'static str, a: &ArrayBase<S, D>) -> Result<Self>
    where
        S: Data<Elem = f32>,
        D: Dimension,
    {
        ctx.check_elems(arg, a.shape())?;
        ctx.run(arg, || {
            let buffer = match a.as_slice() {
                Some(data) => ctx.buf_init(arg, data, TENSOR_USAGE),
                None => {
                    let data = crate::host::copy(arg, a)?;
                    ctx.buf_init(arg, data.as_slice().unwrap_or(&[]), TENSOR_USAGE)
                }
            };
            // Submit the upload now: its staging memory is freed once it is done,
            // however many uploads follow without other work.
            ctx.submit(None)?;
            Ok(Tensor {
                ctx: ctx.clone(),
                buffer: Arc::new(buffer),
                offset: 0,
                shape: a.shape().to_vec(),
            })
        })
    }

    /// A new device tensor of `shape`, zero-filled (NaN-filled where the context poisons
    /// outputs). Its size is checked first ([`Error::TooLarge`] naming `arg`).
    pub fn zeros(ctx: &Context, arg: &'static str, shape: &[usize]) -> Result<Self> {
        ctx.run(arg, || {
            let buffer = Arc::new(new_buffer(ctx, arg, shape)?);
            if ctx.poisons_outputs() {
                ctx.submit(None)?;
            }
            Ok(Tensor {
                ctx: ctx.clone(),
                buffer,
                offset: 0,
                shape: shape.to_vec(),
            })
        })
    }

    /// A tensor viewing `shape` elements of `buffer` from element `offset`.
    pub(crate) fn view_of(ctx: &Context, buffer: &Arc<Buf>, offset: u64, shape: &[usize]) -> Self {
        Tensor {
            ctx: ctx.clone(),
            buffer: buffer.clone(),
            offset,
            shape: shape.to_vec(),
        }
    }

    /// The shared buffer (for views of this tensor's buffer).
    pub(crate) fn arc(&self) -> &Arc<Buf> {
        &self.buffer
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        // Shapes are checked when a tensor is made: a non-zero product fits.
        if self.shape.contains(&0) {
            0
        } else {
            self.shape.iter().product()
        }
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The context the tensor lives in.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The underlying buffer.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Offset into the buffer, in elements.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether the two tensors view the same device buffer (possibly different ranges).
    pub fn shares_buffer(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.buffer, &other.buffer)
    }

    /// Checks the shape, naming `arg` and the axes `what` (`"[T, B, I]"`) if it differs.
    pub(crate) fn expect_shape(&self, arg: &'static str, what: &str, want: &[usize]) -> Result<()> {
        crate::error::check_shape(arg, what, want, &self.shape)
    }

    /// Downloads to the host, blocking until the GPU is done.
    pub fn to_array(&self) -> Result<ArrayD<f32>> {
        pollster::block_on(self.to_array_async())
    }

    /// Downloads to the host: copy to a staging buffer, `map_async`, a futures-intrusive
    /// channel, and a poll of the device.
    pub async fn to_array_async(&self) -> Result<ArrayD<f32>> {
        let ctx = &self.ctx;
        let shape = IxDyn(&self.shape);
        let n = crate::host::elems("tensor", &self.shape, 4)?;
        if n == 0 {
            // Nothing to read, but a lost device is still an error.
            ctx.run("download", || Ok(()))?;
            return crate::host::zeros("tensor", shape);
        }
        let bytes = (n * 4) as u64;
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        let staging = ctx.run("download", || {
            let staging = ctx.wrap(ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
            let mut enc = ctx
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("download"),
                });
            enc.copy_buffer_to_buffer(&self.buffer, self.offset * 4, &staging, 0, bytes);
            ctx.submit(Some(enc))?;
            staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
            ctx.poll_wait()?;
            Ok(staging)
        })?;
        let mapped = match rx.receive().await {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(Error::Device(format!("map_async: {e}"))),
            None => Err(Error::Device("map_async: callback dropped".into())),
        };
        if mapped.is_err() {
            // A failed map after a device loss reports the loss.
            ctx.run("download", || Ok(()))?;
        }
        mapped?;
        let data = ctx.run("download", || {
            let data = {
                let view = staging
                    .slice(..)
                    .get_mapped_range()
                    .map_err(|e| Error::Device(format!("get_mapped_range: {e}")))?;
                let mut data = crate::host::vec_of("tensor", n, 0f32)?;
                data.copy_from_slice(bytemuck::cast_slice(&view));
                data
            };
            staging.unmap();
            drop(staging);
            Ok(data)
        })?;
        ArrayD::from_shape_vec(shape, data).map_err(|e| Error::Shape {
            arg: "tensor",
            expected: fmt_shape(&self.shape),
            got: e.to_string(),
        })
    }
}

/// A new storage buffer of `shape` f32, checked against the device's limits (an error
/// naming `arg`); filled with NaN where the context poisons outputs (wgpu zero-fills it
/// otherwise). Called inside a [`Context::run`].
pub(crate) fn new_buffer(ctx: &Context, arg: &'static str, shape: &[usize]) -> Result<Buf> {
    let bytes = ctx.check_elems(arg, shape)? * 4;
    let size = bytes.max(16).next_multiple_of(16);
    let buffer = ctx.wrap(ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some(arg),
        size,
        usage: TENSOR_USAGE,
        mapped_at_creation: false,
    }));
    if ctx.poisons_outputs() {
        let nan = crate::host::vec_of(arg, (size / 4) as usize, f32::NAN)?;
        ctx.queue()
            .write_buffer(&buffer, 0, bytemuck::cast_slice(&nan));
    }
    Ok(buffer)
}
