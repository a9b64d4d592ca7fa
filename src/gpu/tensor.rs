//! Device tensors: a storage buffer (or a view into one) with a shape.

use std::sync::Arc;

use ndarray::{ArrayBase, ArrayD, Data, Dimension, IxDyn};

use super::Context;
use crate::error::{fmt_shape, Error, Result};

/// An `f32` tensor on the device: a buffer, an element offset into it, and a row-major
/// shape. Views (the hidden states of a sequence, its last step) share the buffer.
#[derive(Debug, Clone)]
pub struct Tensor {
    ctx: Context,
    buffer: Arc<wgpu::Buffer>,
    offset: u64,
    shape: Vec<usize>,
}

/// Usage of every tensor buffer: bound as storage, copied either way.
pub(crate) const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Tensor {
    /// Uploads an array (any layout; it is read in logical row-major order).
    pub fn from_array<S, D>(ctx: &Context, arg: &'static str, a: &ArrayBase<S, D>) -> Result<Self>
    where
        S: Data<Elem = f32>,
        D: Dimension,
    {
        ctx.check_size(arg, (a.len() * 4) as u64)?;
        let data: Vec<f32> = a.iter().copied().collect();
        let buffer = ctx.buffer_init(arg, &data, TENSOR_USAGE);
        Ok(Tensor {
            ctx: ctx.clone(),
            buffer: Arc::new(buffer),
            offset: 0,
            shape: a.shape().to_vec(),
        })
    }

    /// A new device tensor of `shape`, zero-filled (NaN-filled where the context poisons
    /// outputs).
    pub fn zeros(ctx: &Context, arg: &'static str, shape: &[usize]) -> Result<Self> {
        let n: usize = shape.iter().product();
        let buffer = Arc::new(new_buffer(ctx, arg, n as u64)?);
        Ok(Tensor {
            ctx: ctx.clone(),
            buffer,
            offset: 0,
            shape: shape.to_vec(),
        })
    }

    /// A tensor viewing `shape` elements of `buffer` from element `offset`.
    pub(crate) fn view_of(
        ctx: &Context,
        buffer: &Arc<wgpu::Buffer>,
        offset: u64,
        shape: &[usize],
    ) -> Self {
        Tensor {
            ctx: ctx.clone(),
            buffer: buffer.clone(),
            offset,
            shape: shape.to_vec(),
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
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
        let bytes = (self.len() * 4) as u64;
        let shape = IxDyn(&self.shape);
        if bytes == 0 {
            return Ok(ArrayD::zeros(shape));
        }
        let staging = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("download"),
            });
        enc.copy_buffer_to_buffer(&self.buffer, self.offset * 4, &staging, 0, bytes);
        ctx.submit(enc, "download")?;
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        ctx.device()
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Device(format!("poll: {e}")))?;
        ctx.check("download")?;
        match rx.receive().await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(Error::Device(format!("map_async: {e}"))),
            None => return Err(Error::Device("map_async: callback dropped".into())),
        }
        let data: Vec<f32> = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Device(format!("get_mapped_range: {e}")))?;
            bytemuck::cast_slice(&view).to_vec()
        };
        staging.unmap();
        ArrayD::from_shape_vec(shape, data).map_err(|e| Error::Shape {
            arg: "tensor",
            expected: fmt_shape(&self.shape),
            got: e.to_string(),
        })
    }
}

/// A new storage buffer of `elems` f32, checked against the device's limits; filled with
/// NaN where the context poisons outputs (wgpu zero-fills it otherwise).
pub(crate) fn new_buffer(ctx: &Context, arg: &'static str, elems: u64) -> Result<wgpu::Buffer> {
    let bytes = elems * 4;
    ctx.check_size(arg, bytes)?;
    let size = bytes.max(16).next_multiple_of(16);
    let buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some(arg),
        size,
        usage: TENSOR_USAGE,
        mapped_at_creation: false,
    });
    if ctx.poisons_outputs() {
        let nan = vec![f32::NAN; (size / 4) as usize];
        ctx.queue()
            .write_buffer(&buffer, 0, bytemuck::cast_slice(&nan));
    }
    ctx.check(arg)?;
    Ok(buffer)
}
