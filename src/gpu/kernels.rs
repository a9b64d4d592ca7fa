//! Recording helpers: each kernel's uniform parameters, bind group and dispatch size.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use super::context::{Context, Kernel, Pipeline, STEP_STRIDE};
use super::variant::{GemmVariant, StepShape};
use crate::error::{Error, Result};

/// A dispatch ready to record: pipeline, bind group (made once), workgroup counts.
pub(crate) struct Op {
    pipeline: Arc<Pipeline>,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
    /// Dispatches recorded right after this one (a long reduction split in chunks).
    more: Vec<Op>,
}

impl Op {
    /// Makes the bind group of `kernel` over `buffers`, in binding order. A dynamic
    /// uniform binding is bound 16 bytes wide, its offset chosen per dispatch.
    pub(crate) fn new(
        ctx: &Context,
        kernel: Kernel,
        buffers: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) -> Result<Self> {
        Self::variant(ctx, kernel, StepShape::default(), buffers, groups)
    }

    /// As [`Op::new`], for a step kernel built for `shape`.
    pub(crate) fn variant(
        ctx: &Context,
        kernel: Kernel,
        shape: StepShape,
        buffers: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) -> Result<Self> {
        let pipeline = ctx.pipeline(kernel, shape)?;
        let binds = kernel.bindings();
        debug_assert_eq!(binds.len(), buffers.len());
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .zip(binds)
            .enumerate()
            .map(|(i, (buf, bind))| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: match bind {
                    super::context::Bind::UniformDyn => {
                        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: buf,
                            offset: 0,
                            size: wgpu::BufferSize::new(STEP_BYTES),
                        })
                    }
                    _ => buf.as_entire_binding(),
                },
            })
            .collect();
        let bind_group = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.entry()),
            layout: &pipeline.layout,
            entries: &entries,
        });
        Ok(Op {
            pipeline,
            bind_group,
            groups,
            more: Vec::new(),
        })
    }

    /// The dispatches of `ops` recorded as one, in order (a long loop split in chunks).
    ///
    /// # Panics
    /// If `ops` is empty (a bug of the caller: every split has a first part).
    pub(crate) fn chain(mut ops: impl Iterator<Item = Result<Op>>) -> Result<Op> {
        let mut first = ops.next().expect("at least one dispatch")?;
        for op in ops {
            first.more.push(op?);
        }
        Ok(first)
    }

    /// Records one dispatch.
    pub(crate) fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.groups;
        pass.dispatch_workgroups(x, y, z);
        count_dispatches(1);
        for op in &self.more {
            op.record(pass);
        }
    }
}

/// The grid of a kernel with one invocation per element over `invocations` elements in
/// workgroups of 64: past 65535 workgroups the rest continue along y (the kernels fold
/// `gid.y` back in).
fn flat_grid(invocations: usize) -> [u32; 2] {
    let groups = div_ceil(invocations, 64);
    if groups > 65535 {
        [65535, groups.div_ceil(65535)]
    } else {
        [groups, 1]
    }
}

/// `ceil(a / b)`.
pub(crate) fn div_ceil(a: usize, b: usize) -> u32 {
    a.div_ceil(b) as u32
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GemmParams {
    m: u32,
    n: u32,
    k: u32,
    a_off: u32,
    b_off: u32,
    c_off: u32,
    bias_off: u32,
    flags: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    _pad: u32,
}

/// A GEMM operand: buffer and element offset.
pub(crate) type Operand<'a> = (&'a wgpu::Buffer, u64);

/// `C[M, N] (+)= op(A)[M, K] · op(B)[K, N] (+ bias[N])`: A stored `[K, M]` when
/// `trans_a`, B stored `[N, K]` when `trans_b`.
pub(crate) struct Gemm<'a> {
    /// The user argument whose size drives the grid's rows (`M`), for errors.
    pub arg: &'static str,
    /// The user argument whose size drives the grid's columns (`N`).
    pub arg_n: &'static str,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: Operand<'a>,
    pub b: Operand<'a>,
    pub bias: Option<Operand<'a>>,
    pub c: Operand<'a>,
    pub trans_a: bool,
    pub trans_b: bool,
    pub accumulate: bool,
    /// The stored rows' strides of A, B and C, `0` for packed (`K` or `M` for A, `N` or
    /// `K` for B, `N` for C).
    pub ld: [usize; 3],
}

/// [`Gemm::ld`] of packed operands.
pub(crate) const PACKED: [usize; 3] = [0; 3];

/// The most iterations of one kernel's long loop (the GEMM's `K`, a column sum's rows) a
/// dispatch takes; longer ones are split across dispatches. llvmpipe (lavapipe, GL)
/// stops a loop silently after 65535 iterations in all (a guard against endless
/// shaders), which cut `K = 70000` GEMMs short; a multiple of the GEMM's K steps (and
/// of 4, so a chunk keeps its operands' vec4 alignment).
pub(crate) const LOOP_CHUNK: usize = 32768;

impl Gemm<'_> {
    fn lda(&self) -> usize {
        match (self.ld[0], self.trans_a) {
            (0, true) => self.m,
            (0, false) => self.k,
            (ld, _) => ld,
        }
    }
    fn ldb(&self) -> usize {
        match (self.ld[1], self.trans_b) {
            (0, true) => self.k,
            (0, false) => self.n,
            (ld, _) => ld,
        }
    }
    fn ldc(&self) -> usize {
        match self.ld[2] {
            0 => self.n,
            ld => ld,
        }
    }

    /// The dispatches of the GEMM: one, or one per [`LOOP_CHUNK`] of `K` (each after the
    /// first accumulating, without the bias), recorded together.
    pub(crate) fn op(&self, ctx: &Context) -> Result<Op> {
        let (lda, ldb) = (self.lda(), self.ldb());
        let chunks = (0..self.k.max(1)).step_by(LOOP_CHUNK).map(|k0| {
            let k = (self.k - k0).min(LOOP_CHUNK);
            // Where row (or column) k0 of op(A) and row k0 of op(B) start.
            let a_off = self.a.1 as usize + if self.trans_a { k0 * lda } else { k0 };
            let b_off = self.b.1 as usize + if self.trans_b { k0 } else { k0 * ldb };
            self.chunk(ctx, k, a_off, b_off, k0 == 0)
        });
        Op::chain(chunks)
    }

    /// One dispatch over `k` of `K` from the given offsets; `first` writes (or
    /// accumulates, as asked) and adds the bias, later ones accumulate.
    ///
    /// The GEMM kernels are compiled without runtime bounds checks
    /// ([`Kernel::trusted`](super::context::Kernel::trusted)); what makes that safe is
    /// checked here, for every dispatch: each operand's stored extent (`rows` × `cols`
    /// from `off` with stride `ld`: A `M × K` or `K × M`, B `K × N` or `N × K`, C
    /// `M × N`, the bias `N`) ends inside its buffer, `ld ≥ cols`, and every value fits
    /// in u32 (buffers are at most 2³¹ bytes, so no index the kernels form from them
    /// wraps). The kernels read A at `a_off + row·lda + col` only for `row < rows` and
    /// `col < cols` (the tiled kernel tests each quad, or element, of an edge tile and
    /// reads untested only where its tile lies inside M (N for B) and the K step inside
    /// K; the direct kernel clamps its rows and columns to the last), B likewise, the
    /// bias below `bias_off + N`, C only inside `M × N` (`store_row`), and their own
    /// arrays at constant-bounded indices. A vec4 read of elements `i … i+3` (`i` a
    /// multiple of 4, `i + 3` inside the extent, so `4·(i + 4)` ≤ the buffer's bytes) is
    /// element `i / 4 < ⌊bytes / 16⌋` of the vec4 view.
    fn chunk(
        &self,
        ctx: &Context,
        k: usize,
        a_off: usize,
        b_off: usize,
        first: bool,
    ) -> Result<Op> {
        let (lda, ldb, ldc) = (self.lda(), self.ldb(), self.ldc());
        let (m, n) = (self.m, self.n);
        let (a_rows, a_cols) = if self.trans_a { (k, m) } else { (m, k) };
        let (b_rows, b_cols) = if self.trans_b { (n, k) } else { (k, n) };
        check_extent(self.arg, "A", self.a.0, a_off, a_rows, a_cols, lda)?;
        check_extent(self.arg_n, "B", self.b.0, b_off, b_rows, b_cols, ldb)?;
        let c_off = self.c.1 as usize;
        check_extent(self.arg, "C", self.c.0, c_off, m, n, ldc)?;
        let bias_off = self.bias.map_or(0, |b| b.1 as usize);
        if let Some(bias) = self.bias {
            check_extent(self.arg_n, "bias", bias.0, bias_off, 1, n, n)?;
        }
        let fits = |v: usize, what: &str| {
            u32::try_from(v).map_err(|_| Error::Invalid {
                arg: self.arg,
                msg: format!("GEMM {what} = {v} does not fit in u32"),
            })
        };
        // Aligned vec4 loads of an operand: its rows start at multiples of 4.
        let vec4_a = a_off.is_multiple_of(4) && lda.is_multiple_of(4);
        let vec4_b = b_off.is_multiple_of(4) && ldb.is_multiple_of(4);
        let flags = self.trans_a as u32
            | (self.trans_b as u32) << 1
            | ((first && self.bias.is_some()) as u32) << 2
            | ((self.accumulate || !first) as u32) << 3
            | (vec4_a as u32) << 4
            | (vec4_b as u32) << 5;
        let params = GemmParams {
            m: fits(m, "M")?,
            n: fits(n, "N")?,
            k: fits(k, "K")?,
            a_off: fits(a_off, "A's offset")?,
            b_off: fits(b_off, "B's offset")?,
            c_off: fits(c_off, "C's offset")?,
            bias_off: fits(bias_off, "the bias' offset")?,
            flags,
            lda: fits(lda, "lda")?,
            ldb: fits(ldb, "ldb")?,
            ldc: fits(ldc, "ldc")?,
            _pad: 0,
        };
        let variant = ctx.gemm_variant();
        let kernel = match variant {
            GemmVariant::Tiled => Kernel::Gemm,
            GemmVariant::Direct => Kernel::GemmDirect,
        };
        let [tm, tn] = variant.tile();
        let gx = div_ceil(self.n, tn);
        let tiles = div_ceil(self.m, tm);
        // Row tiles past 65535 fold into z (the shader unfolds them).
        let (gy, gz) = if tiles > 65535 {
            (65535, tiles.div_ceil(65535))
        } else {
            (tiles, 1)
        };
        ctx.check_groups(self.arg_n, gx as u64)?;
        ctx.check_groups(self.arg, gy.max(gz) as u64)?;
        let u = ctx.uniform("gemm params", &params);
        let bias = self.bias.map_or(self.b.0, |b| b.0);
        Op::new(
            ctx,
            kernel,
            &[&u, self.a.0, self.b.0, bias, self.c.0, self.a.0, self.b.0],
            [gx, gy, gz],
        )
    }
}

/// Checks that a GEMM operand's stored extent, `rows` × `cols` elements from element
/// `off` with rows `ld` apart (`ld ≥ cols`), lies inside `buf`; `arg` is the user
/// argument to blame, `what` the operand. Empty extents are never read.
fn check_extent(
    arg: &'static str,
    what: &str,
    buf: &wgpu::Buffer,
    off: usize,
    rows: usize,
    cols: usize,
    ld: usize,
) -> Result<()> {
    extent_within(arg, what, (buf.size() / 4) as usize, off, rows, cols, ld)
}

/// [`check_extent`] against a buffer of `len` elements.
fn extent_within(
    arg: &'static str,
    what: &str,
    len: usize,
    off: usize,
    rows: usize,
    cols: usize,
    ld: usize,
) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let end = (rows - 1)
        .checked_mul(ld)
        .and_then(|e| e.checked_add(off))
        .and_then(|e| e.checked_add(cols));
    match end {
        Some(end) if end <= len && (rows == 1 || ld >= cols) => Ok(()),
        _ => Err(Error::Invalid {
            arg,
            msg: format!(
                "GEMM operand {what}: {rows} × {cols} elements from element {off}, rows {ld} \
                 apart, do not fit its buffer of {len} elements"
            ),
        }),
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RowParams {
    rows: u32,
    cols: u32,
    extra: u32,
    /// The column sum's first element of `x` (unused by the softmax: its `_pad`).
    x_off: u32,
}

/// Softmax over the last axis of `y [rows, classes]` from element `off`, in place.
pub(crate) fn softmax(
    ctx: &Context,
    y: &wgpu::Buffer,
    off: u64,
    rows: usize,
    classes: usize,
) -> Result<Op> {
    let u = ctx.uniform(
        "softmax params",
        &RowParams {
            rows: rows as u32,
            cols: classes as u32,
            extra: off as u32,
            x_off: 0,
        },
    );
    let [gx, gy] = flat_grid(rows);
    Op::new(ctx, Kernel::Softmax, &[&u, y], [gx, gy, 1])
}

/// Rows per partial sum of a long column sum's first pass.
const SUM_ROWS: usize = 64;

/// `out[j] (+)= Σ_r x[r, j]` over `x [rows, cols]`; `arg` names the user argument whose
/// size drives the grid. Past `2·SUM_ROWS` rows in two passes: partial sums of
/// `SUM_ROWS` rows each (`⌈rows / SUM_ROWS⌉ × cols` invocations, all independent),
/// then their column sum. One invocation per column walking every row (`cols / 64`
/// workgroups on a whole GPU, each a chain of `rows` dependent loads) cost about 0.5 ms
/// of a T100 B64 backward on an H100 (bench/MODEL.md); in parts it is about
/// `SUM_ROWS + rows / SUM_ROWS` loads long. The order of the sums is fixed: the same bits
/// every run.
pub(crate) fn col_sum(
    ctx: &Context,
    arg: &'static str,
    x: &wgpu::Buffer,
    out: &wgpu::Buffer,
    rows: usize,
    cols: usize,
    accumulate: bool,
) -> Result<Op> {
    if rows <= 2 * SUM_ROWS || cols == 0 {
        return col_sum_rows(ctx, arg, x, out, rows, cols, accumulate);
    }
    // The second pass, made first: it checks the grid both passes share.
    let gx = div_ceil(cols, 64);
    let parts = rows.div_ceil(SUM_ROWS);
    // Made per call and dropped here, as the uniforms are: the bind groups keep it alive
    // until the dispatches are done (wgpu clears it once before first use).
    let partial = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("col_sum partial sums"),
        size: (parts * cols * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    // At most 65535 parts per dispatch (grid y), each dispatch's from part p0 on.
    const MOST: usize = 65535;
    let parts_ops = (0..parts).step_by(MOST).map(|p0| {
        let r0 = p0 * SUM_ROWS;
        let u = ctx.uniform(
            "col_sum_part params",
            &RowParams {
                rows: (rows - r0).min(MOST * SUM_ROWS) as u32,
                cols: cols as u32,
                extra: p0 as u32,
                x_off: (r0 * cols) as u32,
            },
        );
        let py = (parts - p0).min(MOST) as u32;
        Op::new(ctx, Kernel::ColSumPart, &[&u, x, &partial], [gx, py, 1])
    });
    let sum = col_sum_rows(ctx, arg, &partial, out, parts, cols, accumulate)?;
    Op::chain(parts_ops.chain(std::iter::once(Ok(sum))))
}

/// [`col_sum`] in one pass: one invocation per column over every row, in dispatches of
/// [`LOOP_CHUNK`] rows.
fn col_sum_rows(
    ctx: &Context,
    arg: &'static str,
    x: &wgpu::Buffer,
    out: &wgpu::Buffer,
    rows: usize,
    cols: usize,
    accumulate: bool,
) -> Result<Op> {
    let gx = div_ceil(cols, 64);
    ctx.check_groups(arg, gx as u64)?;
    // In chunks of LOOP_CHUNK rows, each after the first accumulating.
    let ops = (0..rows.max(1)).step_by(LOOP_CHUNK).map(|r0| {
        let u = ctx.uniform(
            "col_sum params",
            &RowParams {
                rows: (rows - r0).min(LOOP_CHUNK) as u32,
                cols: cols as u32,
                extra: (accumulate || r0 > 0) as u32,
                x_off: (r0 * cols) as u32,
            },
        );
        Op::new(ctx, Kernel::ColSum, &[&u, x, out], [gx, 1, 1])
    });
    Op::chain(ops)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct BlockParams {
    rows: u32,
    cols: u32,
    x_off: u32,
    x_stride: u32,
    y_off: u32,
    y_stride: u32,
    accumulate: u32,
    _pad: u32,
}

/// A strided block of a buffer: element offset and row stride.
pub(crate) type Strided<'a> = (&'a wgpu::Buffer, u64, usize);

/// `y[r, c] (+)= x[r, c]` for a `rows × cols` block of two strided matrices (`arg`
/// names the user argument whose size drives the grid).
pub(crate) fn block(
    ctx: &Context,
    arg: &'static str,
    x: Strided<'_>,
    y: Strided<'_>,
    rows: usize,
    cols: usize,
    accumulate: bool,
) -> Result<Op> {
    let u = ctx.uniform(
        "block params",
        &BlockParams {
            rows: rows as u32,
            cols: cols as u32,
            x_off: x.1 as u32,
            x_stride: x.2 as u32,
            y_off: y.1 as u32,
            y_stride: y.2 as u32,
            accumulate: accumulate as u32,
            _pad: 0,
        },
    );
    let [gx, gy] = flat_grid(rows * cols);
    ctx.check_groups(arg, gy as u64)?;
    Op::new(ctx, Kernel::Block, &[&u, x.0, y.0], [gx, gy, 1])
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GatherParams {
    blocks: u32,
    rows: u32,
    cols: u32,
    x_off: u32,
    y_off: u32,
    perm: u32,
    lens: u32,
    _pad: u32,
}

/// `y[t, r, :] = x[t, table[perm + r], :]` over `blocks × rows × cols`, zero where
/// `t ≥ table[lens + r]` when `lens` is given (packed `x` and `y` from their offsets).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gather(
    ctx: &Context,
    arg: &'static str,
    x: Operand<'_>,
    table: &wgpu::Buffer,
    y: Operand<'_>,
    [blocks, rows, cols]: [usize; 3],
    perm: usize,
    lens: Option<usize>,
) -> Result<Op> {
    let u = ctx.uniform(
        "gather params",
        &GatherParams {
            blocks: blocks as u32,
            rows: rows as u32,
            cols: cols as u32,
            x_off: x.1 as u32,
            y_off: y.1 as u32,
            perm: perm as u32,
            lens: lens.map_or(NONE, |l| l as u32),
            _pad: 0,
        },
    );
    let [gx, gy] = flat_grid(blocks * rows * cols);
    ctx.check_groups(arg, gy as u64)?;
    Op::new(ctx, Kernel::Gather, &[&u, x.0, table, y.0], [gx, gy, 1])
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RelayoutParams {
    n: u32,
    x_off: u32,
    y_off: u32,
    kind: u32,
    h: u32,
    s: u32,
    cols: u32,
    acc: u32,
    map0: u32,
    map1: u32,
    map2: u32,
    map3: u32,
    off0: u32,
    off1: u32,
    _pad0: u32,
    _pad1: u32,
}

/// One move between a network's flat parameters and its device layouts
/// (`shaders/relayout.wgsl`, by index arithmetic) from `x` into `y`.
pub(crate) fn relayout(
    ctx: &Context,
    m: &super::flat::Move,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
) -> Result<Op> {
    let u = ctx.uniform(
        "relayout params",
        &RelayoutParams {
            n: m.n as u32,
            x_off: m.x_off as u32,
            y_off: m.y_off as u32,
            kind: m.kind,
            h: m.h as u32,
            s: m.s as u32,
            cols: m.cols as u32,
            acc: m.acc as u32,
            map0: m.map[0],
            map1: m.map[1],
            map2: m.map[2],
            map3: m.map[3],
            off0: m.off[0],
            off1: m.off[1],
            _pad0: 0,
            _pad1: 0,
        },
    );
    let [gx, gy] = flat_grid(m.n);
    ctx.check_groups("params", gy as u64)?;
    Op::new(ctx, Kernel::Relayout, &[&u, x, y], [gx, gy, 1])
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct DropoutParams {
    count: u32,
    batch: u32,
    cols: u32,
    y_off: u32,
    perm: u32,
    layer: u32,
    seed_lo: u32,
    seed_hi: u32,
    p: f32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

/// Dropout in place over `y`'s rows `[T, B, cols]` from element `y.1`: the mask of
/// `crate::net::dropout_keep` for `layer` and `seed` (rows in sorted order map to the
/// caller's through `table[perm + r]` when `perm` is given), kept elements scaled by
/// `1 / (1 − p)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dropout(
    ctx: &Context,
    y: Operand<'_>,
    table: &wgpu::Buffer,
    [t, b, cols]: [usize; 3],
    perm: Option<usize>,
    layer: usize,
    seed: u64,
    p: f32,
) -> Result<Op> {
    let u = ctx.uniform(
        "dropout params",
        &DropoutParams {
            count: (t * b * cols) as u32,
            batch: b as u32,
            cols: cols as u32,
            y_off: y.1 as u32,
            perm: perm.map_or(NONE, |p| p as u32),
            layer: layer as u32,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            p,
            scale: 1.0 / (1.0 - p),
            _pad0: 0,
            _pad1: 0,
        },
    );
    let [gx, gy] = flat_grid(t * b * cols);
    ctx.check_groups("x", gy as u64)?;
    Op::new(ctx, Kernel::Dropout, &[&u, table, y.0], [gx, gy, 1])
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct XentParams {
    rows: u32,
    classes: u32,
    scale: f32,
    _pad: u32,
}

/// Softmax cross-entropy in place over the logits `z [rows, classes]` with `targets`
/// (`u32`, [`NONE`] ignored): each row's loss times `scale` into `loss [rows]`, and `z`
/// becomes the logits' gradient times `scale`.
pub(crate) fn xent(
    ctx: &Context,
    targets: &wgpu::Buffer,
    z: &wgpu::Buffer,
    loss: &wgpu::Buffer,
    rows: usize,
    classes: usize,
    scale: f32,
) -> Result<Op> {
    let u = ctx.uniform(
        "xent params",
        &XentParams {
            rows: rows as u32,
            classes: classes as u32,
            scale,
            _pad: 0,
        },
    );
    let [gx, gy] = flat_grid(rows);
    Op::new(ctx, Kernel::Xent, &[&u, targets, z, loss], [gx, gy, 1])
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct EmbedBackParams {
    vocab: u32,
    dim: u32,
    accumulate: u32,
    skip: u32,
    take: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

/// `dW [vocab, dim] (+)= Σ d_out[p]` over each token's positions, from the CSR `table`
/// (`vocab + 1` offsets, then the positions), the most frequent token's `most` positions
/// in slices of [`LOOP_CHUNK`] (one dispatch each, later ones accumulating).
#[allow(clippy::too_many_arguments)]
pub(crate) fn embed_back(
    ctx: &Context,
    table: &wgpu::Buffer,
    d_out: &wgpu::Buffer,
    dw: &wgpu::Buffer,
    vocab: usize,
    dim: usize,
    most: usize,
    accumulate: bool,
) -> Result<Op> {
    let [gx, gy] = flat_grid(vocab * dim);
    let ops = (0..most.max(1)).step_by(LOOP_CHUNK).map(|skip| {
        let u = ctx.uniform(
            "embed_back params",
            &EmbedBackParams {
                vocab: vocab as u32,
                dim: dim as u32,
                accumulate: (accumulate || skip > 0) as u32,
                skip: skip as u32,
                take: LOOP_CHUNK as u32,
                _pad0: 0,
                _pad1: 0,
                _pad2: 0,
            },
        );
        Op::new(ctx, Kernel::EmbedBack, &[&u, table, d_out, dw], [gx, gy, 1])
    });
    Op::chain(ops)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ClipParams {
    n: u32,
    off: u32,
    p_off: u32,
    mode: u32,
    max: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

/// Elements per partial sum of squares in `clip.wgsl`.
pub(crate) const CLIP_CHUNK: usize = 4096;

/// One pass of `clip.wgsl` (see its header for the modes) over `n` elements of `x` from
/// `x.1`, with the partial sums from `p_off`.
pub(crate) fn clip(
    ctx: &Context,
    x: Operand<'_>,
    partial: &wgpu::Buffer,
    n: usize,
    p_off: usize,
    mode: u32,
    max: f32,
) -> Result<Op> {
    let u = ctx.uniform(
        "clip params",
        &ClipParams {
            n: n as u32,
            off: x.1 as u32,
            p_off: p_off as u32,
            mode,
            max,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        },
    );
    let invocations = match mode {
        0 => n.div_ceil(CLIP_CHUNK),
        1 => 1,
        _ => n,
    };
    let [gx, gy] = flat_grid(invocations.max(1));
    Op::new(ctx, Kernel::Clip, &[&u, x.0, partial], [gx, gy, 1])
}

/// The uniform of `optim.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct OptimParams {
    pub n: u32,
    pub p_off: u32,
    pub g_off: u32,
    pub kind: u32,
    pub first: u32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub wd: f32,
    pub bc1: f32,
    pub bc2: f32,
    pub momentum: f32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// One optimizer step over `params.n` elements of `param` with `grad` and the state
/// `m`, `v` (see `optim.wgsl`).
pub(crate) fn optim(
    ctx: &Context,
    params: &OptimParams,
    param: &wgpu::Buffer,
    grad: &wgpu::Buffer,
    m: &wgpu::Buffer,
    v: &wgpu::Buffer,
) -> Result<Op> {
    let u = ctx.uniform("optim params", params);
    let [gx, gy] = flat_grid((params.n as usize).max(1));
    Op::new(ctx, Kernel::Optim, &[&u, param, grad, m, v], [gx, gy, 1])
}

/// The per-layer dimensions uniform of the step kernels (WGSL `Dims`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct StepDims {
    pub batch: u32,
    pub hidden: u32,
    /// Forward: training mode.
    pub train: u32,
    /// Directions per dispatch (grid z), interleaved within every buffer's rows.
    pub dirs: u32,
}

/// "No block": a [`StepDir::carry`] with nothing to carry from.
pub(crate) const NONE: u32 = u32::MAX;

/// One direction's entry of a step-schedule dispatch (WGSL `StepDir`): where it reads
/// and writes. Rows and slots count `[B, H]`-sized blocks of the direction's part of the
/// buffers they index.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub(crate) struct StepDir {
    /// The block of the step's projection, kept values, gate gradients, upstream
    /// gradient.
    pub row: u32,
    /// The slot of `h_{t-1}` in the hidden states.
    pub prev: u32,
    /// The slot of `h_t`.
    pub next: u32,
    /// Backward: the gate-gradient block the recurrent carry comes from, or [`NONE`].
    pub carry: u32,
    /// The slot of `c_{t-1}` in the cell states.
    pub c_prev: u32,
    /// The slot of `c_t`.
    pub c_next: u32,
    /// Batch rows (sorted by length) within their sequence at this step.
    pub live: u32,
    /// Backward: `active` of the carry's block (0 for none).
    pub live_carry: u32,
}

/// One dispatch of a step schedule (WGSL `Step`): an entry per direction.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub(crate) struct StepSlot {
    /// Direction 0's entry, and direction 1's (bidirectional layers).
    pub dirs: [StepDir; 2],
    /// Backward: 1 on the final dispatch, which writes `dh0`.
    pub last: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// Bytes of a [`StepSlot`]: the width its dynamic-offset binding is bound with.
pub(crate) const STEP_BYTES: u64 = std::mem::size_of::<StepSlot>() as u64;

impl StepDir {
    /// A direction's forward, `t = 0 … T-1`: block `t`, hidden slots `t` and `t + 1`
    /// (slot 0 holds h0); `reverse`: `t = T-1 … 0`, hidden slots `t + 1 + base` and
    /// `t + base` (slot `T + base` holds h0; `base` 1 puts both directions' h_t in slot
    /// t + 1, as a bidirectional layer's rows do). Cell-state slots the same when every
    /// state is kept (`keep_c`), else two ping-pong slots by dispatch. `active(t)`: the
    /// batch rows (sorted by length) within their sequence at time `t`.
    pub(crate) fn forward(
        steps: usize,
        keep_c: bool,
        reverse: bool,
        base: u32,
        active: &dyn Fn(u32) -> u32,
    ) -> Vec<StepDir> {
        let n = steps as u32;
        (0..n)
            .map(|i| {
                let t = if reverse { n - 1 - i } else { i };
                let (prev, next) = if reverse {
                    (t + 1 + base, t + base)
                } else {
                    (t, t + 1)
                };
                let (c_prev, c_next) = if keep_c {
                    (prev, next)
                } else {
                    (i % 2, (i + 1) % 2)
                };
                StepDir {
                    row: t,
                    prev,
                    next,
                    carry: NONE,
                    c_prev,
                    c_next,
                    live: active(t),
                    live_carry: 0,
                }
            })
            .collect()
    }

    /// A direction's backward: its forward's entries in the opposite order, each with
    /// the carry from the block processed before it (none for the first), then the final
    /// entry, whose carry is the block processed last (for `dh0`). `active(t)`: the batch
    /// rows (sorted by length) within their sequence at time `t`.
    pub(crate) fn backward(
        steps: usize,
        reverse: bool,
        base: u32,
        active: &dyn Fn(u32) -> u32,
    ) -> Vec<StepDir> {
        let mut slots = Self::forward(steps, true, reverse, base, active);
        slots.reverse();
        let (mut carry, mut carry_active) = (NONE, 0);
        for s in &mut slots {
            (s.carry, s.live_carry) = (carry, carry_active);
            (carry, carry_active) = (s.row, s.live);
        }
        slots.push(StepDir {
            carry,
            live_carry: carry_active,
            ..Default::default()
        });
        slots
    }
}

impl StepSlot {
    /// The dispatches of directions advancing together (one or two lists of the same
    /// length); `last_final` marks the last dispatch as the final `dh0` one.
    pub(crate) fn zip(dirs: &[Vec<StepDir>], last_final: bool) -> Vec<StepSlot> {
        let n = dirs.first().map_or(0, Vec::len);
        (0..n)
            .map(|i| StepSlot {
                dirs: [dirs[0][i], dirs.get(1).map_or(StepDir::default(), |d| d[i])],
                last: (last_final && i + 1 == n) as u32,
                ..Default::default()
            })
            .collect()
    }
}

/// Records a step schedule: for every entry the phases of a cell's step in order, each
/// entry selected by dynamic offset; `phases_last` of them (the first) for the final
/// entry, all for the others. With one phase the pipeline is set once.
pub(crate) fn record_schedule(
    pass: &mut wgpu::ComputePass<'_>,
    phases: &[Op],
    entries: usize,
    phases_last: usize,
) {
    for e in 0..entries {
        let n = if e + 1 == entries {
            phases_last
        } else {
            phases.len()
        };
        for (p, op) in phases.iter().take(n).enumerate() {
            if phases.len() > 1 || (e == 0 && p == 0) {
                pass.set_pipeline(&op.pipeline.pipeline);
            }
            pass.set_bind_group(0, &op.bind_group, &[e as u32 * STEP_STRIDE]);
            let [x, y, z] = op.groups;
            pass.dispatch_workgroups(x, y, z);
            count_dispatches(1);
        }
    }
}

thread_local! {
    /// Dispatches this thread has recorded (read by [`submit_pass`] for the context's
    /// [`super::Stats`]).
    static RECORDED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn count_dispatches(n: u64) {
    RECORDED.with(|r| r.set(r.get() + n));
}

/// `C = A · B` for `a [M, K]` and `b [K, N]` on the device (the crate's GEMM, in the
/// context's [`super::GemmVariant`]).
pub fn matmul(a: &super::Tensor, b: &super::Tensor) -> Result<super::Tensor> {
    use crate::error::fmt_shape;
    let (sa, sb) = (a.shape(), b.shape());
    if sa.len() != 2 || sa[0] == 0 || sa[1] == 0 {
        return Err(Error::Shape {
            arg: "a",
            expected: "[M, K] with M ≥ 1, K ≥ 1".into(),
            got: fmt_shape(sa),
        });
    }
    if sb.len() != 2 || sb[0] != sa[1] || sb[1] == 0 {
        return Err(Error::Shape {
            arg: "b",
            expected: format!("[K, N] with K = {}, N ≥ 1", sa[1]),
            got: fmt_shape(sb),
        });
    }
    let ctx = a.context();
    ctx.check_owner("b", b)?;
    let (m, k, n) = (sa[0], sa[1], sb[1]);
    // The output [M, N]: too large because of b's columns once a's rows are counted.
    ctx.check_elems("b", &[m, n])?;
    ctx.run("matmul", || {
        let c = std::sync::Arc::new(super::tensor::new_buffer(ctx, "b", &[m, n])?);
        let op = Gemm {
            arg: "a",
            arg_n: "b",
            m,
            n,
            k,
            a: (a.buffer(), a.offset()),
            b: (b.buffer(), b.offset()),
            bias: None,
            c: (&c, 0),
            trans_a: false,
            trans_b: false,
            accumulate: false,
            ld: PACKED,
        }
        .op(ctx)?;
        submit_pass(ctx, "matmul", |_| {}, |pass| op.record(pass))?;
        Ok(super::Tensor::view_of(ctx, &c, 0, &[m, n]))
    })
}

/// A GEMM over raw operands, for tests of the kernels' layouts (not part of the API):
/// `C (+)= op(A) · op(B) (+ bias)` as [`gemm_raw`] runs it.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct GemmSpec {
    /// Rows of `op(A)` and `C`.
    pub m: usize,
    /// Columns of `op(B)` and `C`.
    pub n: usize,
    /// Columns of `op(A)`, rows of `op(B)`.
    pub k: usize,
    /// Element offsets of A, B, C and the bias, from each tensor's own offset.
    pub off: [usize; 4],
    /// Row strides of A, B and C as stored; `0`: packed.
    pub ld: [usize; 3],
    /// A stored `[K, M]`.
    pub trans_a: bool,
    /// B stored `[N, K]`.
    pub trans_b: bool,
    /// Add to C instead of overwriting it.
    pub accumulate: bool,
}

/// Runs the context's GEMM kernel on raw operands as `spec` lays them out, writing into
/// `c`'s buffer (a test hook for the kernels' paths, not part of the API).
#[doc(hidden)]
pub fn gemm_raw(
    a: &super::Tensor,
    b: &super::Tensor,
    bias: Option<&super::Tensor>,
    c: &super::Tensor,
    spec: &GemmSpec,
) -> Result<()> {
    let ctx = a.context();
    ctx.check_owner("b", b)?;
    ctx.check_owner("c", c)?;
    if let Some(bias) = bias {
        ctx.check_owner("bias", bias)?;
    }
    // Each operand's stored extent inside its own tensor (not merely its buffer, which
    // other tensors may share): the element offset of its first element in the buffer.
    let (m, n, k) = (spec.m, spec.n, spec.k);
    let within = |arg: &'static str, t: &super::Tensor, off, (rows, cols), ld: usize| {
        let ld = if ld == 0 { cols } else { ld };
        extent_within(arg, arg, t.len(), off, rows, cols, ld).map(|()| t.offset() + off as u64)
    };
    let a_ext = if spec.trans_a { (k, m) } else { (m, k) };
    let b_ext = if spec.trans_b { (n, k) } else { (k, n) };
    let a_at = within("a", a, spec.off[0], a_ext, spec.ld[0])?;
    let b_at = within("b", b, spec.off[1], b_ext, spec.ld[1])?;
    let c_at = within("c", c, spec.off[2], (m, n), spec.ld[2])?;
    let bias_at = bias
        .map(|t| within("bias", t, spec.off[3], (1, n), 0).map(|at| (t.buffer(), at)))
        .transpose()?;
    ctx.run("gemm_raw", || {
        let op = Gemm {
            arg: "a",
            arg_n: "b",
            m,
            n,
            k,
            a: (a.buffer(), a_at),
            b: (b.buffer(), b_at),
            bias: bias_at,
            c: (c.buffer(), c_at),
            trans_a: spec.trans_a,
            trans_b: spec.trans_b,
            accumulate: spec.accumulate,
            ld: spec.ld,
        }
        .op(ctx)?;
        submit_pass(ctx, "gemm_raw", |_| {}, |pass| op.record(pass))
    })
}

/// The column sums `Σ_r x[r, j]` of `x` (its elements as rows of `cols`), through the
/// kernels the backward's bias gradients use (a test hook for their long-sum paths, not
/// part of the API): `[cols]`.
#[doc(hidden)]
pub fn col_sum_raw(x: &super::Tensor, cols: usize) -> Result<super::Tensor> {
    let ctx = x.context();
    if x.offset() != 0 || cols == 0 || !x.len().is_multiple_of(cols) {
        return Err(Error::Invalid {
            arg: "x",
            msg: format!(
                "{} elements from element {} as rows of {cols}: a whole tensor of whole rows",
                x.len(),
                x.offset()
            ),
        });
    }
    let out = super::Tensor::zeros(ctx, "cols", &[cols])?;
    ctx.run("col_sum_raw", || {
        let op = col_sum(
            ctx,
            "x",
            x.buffer(),
            out.buffer(),
            x.len() / cols,
            cols,
            false,
        )?;
        submit_pass(ctx, "col_sum_raw", |_| {}, |pass| op.record(pass))
    })?;
    Ok(out)
}

/// Records `pre` (copies, clears) then one compute pass filled by `body` into one command
/// encoder, with timestamp queries around the pass when the calling thread is profiling,
/// and submits it. Called inside a [`Context::run`].
pub(crate) fn submit_pass(
    ctx: &Context,
    label: &str,
    pre: impl FnOnce(&mut wgpu::CommandEncoder),
    body: impl FnOnce(&mut wgpu::ComputePass<'_>),
) -> Result<()> {
    let start = std::time::Instant::now();
    let before = RECORDED.with(|r| r.get());
    let mut enc = ctx
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
    pre(&mut enc);
    let stamp = ctx.pass_timestamps();
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(label),
            timestamp_writes: stamp.as_ref().map(|s| s.writes()),
        });
        body(&mut pass);
    }
    if let Some(stamp) = stamp {
        ctx.end_pass(&mut enc, stamp);
    }
    let commands = enc.finish();
    let dispatches = RECORDED.with(|r| r.get()) - before;
    ctx.count_pass(dispatches, start.elapsed());
    ctx.submit_commands(Some(commands))
}

#[cfg(test)]
mod tests {
    //! Every uniform layout is written twice, in Rust (here) and in WGSL: naga's
    //! reflection of each shader checks the two against each other, member by member.
    use std::mem::{offset_of, size_of};

    use super::extent_within;

    use super::{
        BlockParams, ClipParams, DropoutParams, EmbedBackParams, GatherParams, GemmParams,
        OptimParams, RelayoutParams, RowParams, StepDims, StepDir, StepSlot, XentParams,
    };
    use crate::gpu::Kernel;

    /// `(member, byte offset)` and the size of the WGSL struct `name` in `src`.
    fn wgsl_layout(src: &str, name: &str) -> (Vec<(String, u32)>, u32) {
        let module = naga::front::wgsl::parse_str(src).expect("the shader parses");
        for (_, ty) in module.types.iter() {
            if ty.name.as_deref() == Some(name) {
                if let naga::TypeInner::Struct { members, span } = &ty.inner {
                    let m = members
                        .iter()
                        .map(|m| (m.name.clone().unwrap_or_default(), m.offset))
                        .collect();
                    return (m, *span);
                }
            }
        }
        panic!("no struct {name} in the shader")
    }

    fn rust(members: &[(&str, usize)], size: usize) -> (Vec<(String, u32)>, u32) {
        let m = members
            .iter()
            .map(|(n, o)| (n.to_string(), *o as u32))
            .collect();
        (m, size as u32)
    }

    /// Every kernel's binding kinds (for the step kernels: derived from the cell's roles)
    /// against the shader's declarations, binding by binding.
    #[test]
    fn binding_kinds_match_the_shaders() {
        use crate::gpu::context::Bind;
        for k in Kernel::all() {
            let src = crate::shaders::expand(k.source(), 1).unwrap();
            let module = naga::front::wgsl::parse_str(&src).expect("the shader parses");
            let mut declared: Vec<(u32, Bind)> = module
                .global_variables
                .iter()
                .filter_map(|(_, g)| {
                    let b = g.binding.as_ref()?;
                    let kind = match g.space {
                        naga::AddressSpace::Uniform => Bind::Uniform,
                        naga::AddressSpace::Storage { access } => {
                            if access.contains(naga::StorageAccess::STORE) {
                                Bind::ReadWrite
                            } else {
                                Bind::Read
                            }
                        }
                        _ => return None,
                    };
                    Some((b.binding, kind))
                })
                .collect();
            declared.sort_by_key(|d| d.0);
            let want: Vec<(u32, Bind)> = k
                .bindings()
                .into_iter()
                .enumerate()
                .map(|(i, b)| {
                    // A dynamic-offset uniform is a uniform to the shader.
                    let b = if b == Bind::UniformDyn {
                        Bind::Uniform
                    } else {
                        b
                    };
                    (i as u32, b)
                })
                .collect();
            assert_eq!(declared, want, "{k:?}");
        }
    }

    #[test]
    fn uniform_layouts_match_the_shaders() {
        let step = rust(
            &[
                ("batch", offset_of!(StepDims, batch)),
                ("hidden", offset_of!(StepDims, hidden)),
                ("train", offset_of!(StepDims, train)),
                ("dirs", offset_of!(StepDims, dirs)),
            ],
            size_of::<StepDims>(),
        );
        let dir = rust(
            &[
                ("row", offset_of!(StepDir, row)),
                ("prev", offset_of!(StepDir, prev)),
                ("next", offset_of!(StepDir, next)),
                ("carry", offset_of!(StepDir, carry)),
                ("c_prev", offset_of!(StepDir, c_prev)),
                ("c_next", offset_of!(StepDir, c_next)),
                ("live", offset_of!(StepDir, live)),
                ("live_carry", offset_of!(StepDir, live_carry)),
            ],
            size_of::<StepDir>(),
        );
        let slot = rust(
            &[
                ("dirs", offset_of!(StepSlot, dirs)),
                ("last", offset_of!(StepSlot, last)),
                ("_pad0", offset_of!(StepSlot, _pad0)),
                ("_pad1", offset_of!(StepSlot, _pad1)),
                ("_pad2", offset_of!(StepSlot, _pad2)),
            ],
            size_of::<StepSlot>(),
        );
        for k in Kernel::all().into_iter().filter(|k| k.is_step()) {
            let src = crate::shaders::expand(k.source(), 1).unwrap();
            assert_eq!(wgsl_layout(&src, "Dims"), step, "{k:?}: Dims vs StepDims");
            assert_eq!(wgsl_layout(&src, "StepDir"), dir, "{k:?}: StepDir");
            assert_eq!(wgsl_layout(&src, "Step"), slot, "{k:?}: Step vs StepSlot");
            assert!(
                src.contains("const NONE: u32 = 0xffffffffu;") && super::NONE == u32::MAX,
                "{k:?}: NONE"
            );
        }
        let gemm = rust(
            &[
                ("m", offset_of!(GemmParams, m)),
                ("n", offset_of!(GemmParams, n)),
                ("k", offset_of!(GemmParams, k)),
                ("a_off", offset_of!(GemmParams, a_off)),
                ("b_off", offset_of!(GemmParams, b_off)),
                ("c_off", offset_of!(GemmParams, c_off)),
                ("bias_off", offset_of!(GemmParams, bias_off)),
                ("flags", offset_of!(GemmParams, flags)),
                ("lda", offset_of!(GemmParams, lda)),
                ("ldb", offset_of!(GemmParams, ldb)),
                ("ldc", offset_of!(GemmParams, ldc)),
                ("_pad", offset_of!(GemmParams, _pad)),
            ],
            size_of::<GemmParams>(),
        );
        assert_eq!(wgsl_layout(crate::shaders::GEMM, "Params"), gemm, "gemm");
        let block = rust(
            &[
                ("rows", offset_of!(BlockParams, rows)),
                ("cols", offset_of!(BlockParams, cols)),
                ("x_off", offset_of!(BlockParams, x_off)),
                ("x_stride", offset_of!(BlockParams, x_stride)),
                ("y_off", offset_of!(BlockParams, y_off)),
                ("y_stride", offset_of!(BlockParams, y_stride)),
                ("accumulate", offset_of!(BlockParams, accumulate)),
                ("_pad", offset_of!(BlockParams, _pad)),
            ],
            size_of::<BlockParams>(),
        );
        assert_eq!(wgsl_layout(crate::shaders::BLOCK, "Params"), block, "block");
        let gather = rust(
            &[
                ("blocks", offset_of!(GatherParams, blocks)),
                ("rows", offset_of!(GatherParams, rows)),
                ("cols", offset_of!(GatherParams, cols)),
                ("x_off", offset_of!(GatherParams, x_off)),
                ("y_off", offset_of!(GatherParams, y_off)),
                ("perm", offset_of!(GatherParams, perm)),
                ("lens", offset_of!(GatherParams, lens)),
                ("_pad", offset_of!(GatherParams, _pad)),
            ],
            size_of::<GatherParams>(),
        );
        assert_eq!(
            wgsl_layout(crate::shaders::GATHER, "Params"),
            gather,
            "gather"
        );
        let relayout = rust(
            &[
                ("n", offset_of!(RelayoutParams, n)),
                ("x_off", offset_of!(RelayoutParams, x_off)),
                ("y_off", offset_of!(RelayoutParams, y_off)),
                ("kind", offset_of!(RelayoutParams, kind)),
                ("h", offset_of!(RelayoutParams, h)),
                ("s", offset_of!(RelayoutParams, s)),
                ("cols", offset_of!(RelayoutParams, cols)),
                ("acc", offset_of!(RelayoutParams, acc)),
                ("map0", offset_of!(RelayoutParams, map0)),
                ("map1", offset_of!(RelayoutParams, map1)),
                ("map2", offset_of!(RelayoutParams, map2)),
                ("map3", offset_of!(RelayoutParams, map3)),
                ("off0", offset_of!(RelayoutParams, off0)),
                ("off1", offset_of!(RelayoutParams, off1)),
                ("_pad0", offset_of!(RelayoutParams, _pad0)),
                ("_pad1", offset_of!(RelayoutParams, _pad1)),
            ],
            size_of::<RelayoutParams>(),
        );
        assert_eq!(
            wgsl_layout(crate::shaders::RELAYOUT, "Params"),
            relayout,
            "relayout"
        );
        let dropout = rust(
            &[
                ("count", offset_of!(DropoutParams, count)),
                ("batch", offset_of!(DropoutParams, batch)),
                ("cols", offset_of!(DropoutParams, cols)),
                ("y_off", offset_of!(DropoutParams, y_off)),
                ("perm", offset_of!(DropoutParams, perm)),
                ("layer", offset_of!(DropoutParams, layer)),
                ("seed_lo", offset_of!(DropoutParams, seed_lo)),
                ("seed_hi", offset_of!(DropoutParams, seed_hi)),
                ("p", offset_of!(DropoutParams, p)),
                ("scale", offset_of!(DropoutParams, scale)),
                ("_pad0", offset_of!(DropoutParams, _pad0)),
                ("_pad1", offset_of!(DropoutParams, _pad1)),
            ],
            size_of::<DropoutParams>(),
        );
        assert_eq!(
            wgsl_layout(crate::shaders::DROPOUT, "Params"),
            dropout,
            "dropout"
        );
        let xent = rust(
            &[
                ("rows", offset_of!(XentParams, rows)),
                ("classes", offset_of!(XentParams, classes)),
                ("scale", offset_of!(XentParams, scale)),
                ("_pad", offset_of!(XentParams, _pad)),
            ],
            size_of::<XentParams>(),
        );
        assert_eq!(wgsl_layout(crate::shaders::XENT, "Params"), xent, "xent");
        let embed = rust(
            &[
                ("vocab", offset_of!(EmbedBackParams, vocab)),
                ("dim", offset_of!(EmbedBackParams, dim)),
                ("accumulate", offset_of!(EmbedBackParams, accumulate)),
                ("skip", offset_of!(EmbedBackParams, skip)),
                ("take", offset_of!(EmbedBackParams, take)),
                ("_pad0", offset_of!(EmbedBackParams, _pad0)),
                ("_pad1", offset_of!(EmbedBackParams, _pad1)),
                ("_pad2", offset_of!(EmbedBackParams, _pad2)),
            ],
            size_of::<EmbedBackParams>(),
        );
        assert_eq!(
            wgsl_layout(crate::shaders::EMBED_BACK, "Params"),
            embed,
            "embed_back"
        );
        let clip = rust(
            &[
                ("n", offset_of!(ClipParams, n)),
                ("off", offset_of!(ClipParams, off)),
                ("p_off", offset_of!(ClipParams, p_off)),
                ("mode", offset_of!(ClipParams, mode)),
                ("max", offset_of!(ClipParams, max)),
                ("_pad0", offset_of!(ClipParams, _pad0)),
                ("_pad1", offset_of!(ClipParams, _pad1)),
                ("_pad2", offset_of!(ClipParams, _pad2)),
            ],
            size_of::<ClipParams>(),
        );
        assert_eq!(wgsl_layout(crate::shaders::CLIP, "Params"), clip, "clip");
        let names = [
            "n", "p_off", "g_off", "kind", "first", "lr", "beta1", "beta2", "eps", "wd", "bc1",
            "bc2", "momentum", "_pad0", "_pad1", "_pad2",
        ];
        let optim = rust(
            &names
                .iter()
                .enumerate()
                .map(|(k, n)| (*n, 4 * k))
                .collect::<Vec<_>>(),
            size_of::<OptimParams>(),
        );
        assert_eq!(offset_of!(OptimParams, momentum), 48);
        assert_eq!(wgsl_layout(crate::shaders::OPTIM, "Params"), optim, "optim");
        // RowParams serves two shaders that name its third field after its use.
        for (src, third) in [
            (crate::shaders::HEAD, "off"),
            (crate::shaders::REDUCE, "accumulate"),
        ] {
            let want = rust(
                &[
                    ("rows", offset_of!(RowParams, rows)),
                    (
                        if third == "off" { "classes" } else { "cols" },
                        offset_of!(RowParams, cols),
                    ),
                    (third, offset_of!(RowParams, extra)),
                    (
                        if third == "off" { "_pad" } else { "x_off" },
                        offset_of!(RowParams, x_off),
                    ),
                ],
                size_of::<RowParams>(),
            );
            assert_eq!(wgsl_layout(src, "Params"), want, "{third}");
        }
    }

    /// The Rust and WGSL `SUM_ROWS` of the two-pass column sum agree.
    #[test]
    fn sum_rows_agree() {
        let decl = format!("const SUM_ROWS: u32 = {}u;", super::SUM_ROWS);
        assert!(crate::shaders::REDUCE.contains(&decl), "{decl}");
    }

    /// The extents the trusted GEMM kernels rely on: inside, at the end, one past, an
    /// offset past, a short leading dimension, and arithmetic that would overflow.
    #[test]
    fn gemm_extents_are_checked() {
        let ok = |len, off, rows, cols, ld| extent_within("a", "A", len, off, rows, cols, ld);
        assert!(ok(16, 0, 4, 4, 4).is_ok());
        assert!(ok(16, 4, 3, 4, 4).is_ok());
        assert!(ok(16, 1, 4, 4, 4).is_err());
        assert!(ok(16, 0, 4, 4, 5).is_err());
        assert!(ok(16, 0, 2, 4, 3).is_err(), "rows overlapping (ld < cols)");
        assert!(ok(16, 0, 1, 16, 0).is_ok(), "one row needs no stride");
        assert!(
            ok(16, 16, 0, 4, 4).is_ok() && ok(16, 99, 4, 0, 4).is_ok(),
            "empty"
        );
        assert!(ok(usize::MAX, usize::MAX, 2, 1, 1).is_err());
        assert!(ok(usize::MAX, 0, usize::MAX, 2, usize::MAX).is_err());
    }
}
