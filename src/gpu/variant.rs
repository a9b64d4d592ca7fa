//! How the step kernels lay a time step over the device: kernel variants as data.
//!
//! Every step kernel (every cell, forward and backward) is built from one template in
//! two shapes, chosen per context:
//!
//! - **unit** (`split = 1`): each invocation carries up to `cols` hidden units and `rows`
//!   batch rows and loops over all of the recurrent product's `K = H` (each state it
//!   loads serves its units, each weight its rows). Few, long invocations and no barrier:
//!   the fastest on CPU adapters (lavapipe, llvmpipe), which run a workgroup's
//!   invocations as SIMD lanes of one host thread and pay for every barrier.
//! - **split** (`split` = 2 … 32): a workgroup of 64 invocations owns `64 / split`
//!   lanes of `cols` consecutive units × `rows` batch rows; each of its `split` slices
//!   sums every `split`-th term of K, the partial sums meet in workgroup memory, and each
//!   (row, unit) pair's elementwise part runs once, on the lane that owns it. `split`
//!   times the invocations of the unit shape (32 768 at B = 64, H = 512, split 8, rows 8,
//!   cols 1), for GPUs.
//!
//! [`StepVariant::for_adapter`] picks one from the adapter's type; `ContextOptions::step`
//! or the environment variable `WGPU_RNN_STEP` (see [`StepVariant::parse`]) forces any,
//! so every variant can be tested on any adapter. Within a context, the pipelines are
//! keyed by kernel and by the rows and units per invocation a call's batch and hidden
//! size take (`StepShape`).
//!
//! The GEMM likewise ([`GemmVariant`]): tiles staged through workgroup memory for GPUs,
//! a direct register-blocked loop for CPU adapters; `ContextOptions::gemm` or
//! `WGPU_RNN_GEMM=tiled|direct` forces one.

use std::fmt;

use crate::error::{Error, Result};
use crate::shaders::{STEP_COLS, STEP_ROWS, STEP_SPLITS, STEP_WORKGROUP};

/// The layout of the step kernels' invocations: the part of a pipeline's key that a
/// context chooses (the kernel and the batch's row count are the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StepVariant {
    /// Invocations sharing one hidden unit's recurrent product (each summing every
    /// `split`-th term of K, reduced in workgroup memory); `1`: one invocation per unit,
    /// no reduction. One of 1, 2, 4, 8, 16, 32.
    pub split: u32,
    /// The most batch rows one invocation carries (each weight it loads serves them
    /// all): a batch of `B` rows uses the smallest of 1, 2, 4, 8 that covers it, at most
    /// this. One of 1, 2, 4, 8.
    pub rows: u32,
    /// The most hidden units one invocation carries (each state it loads serves them
    /// all); fewer where that leaves the adapter's threads without workgroups. One of
    /// 1, 2, 4; a split variant holds at most 8 (row, unit) pairs per lane (its
    /// reduction's workgroup memory).
    pub cols: u32,
}

impl StepVariant {
    /// K unsplit, up to 4 units and 8 rows per invocation: the kernels for CPU adapters.
    pub const UNIT: Self = Self {
        split: 1,
        rows: 8,
        cols: 4,
    };
    /// K split 8 ways, 1 unit and up to 8 rows per invocation: the kernels for GPUs.
    pub const SPLIT: Self = Self {
        split: 8,
        rows: 8,
        cols: 1,
    };
    /// The environment variable that forces a variant (see [`StepVariant::parse`]).
    pub const ENV: &'static str = "WGPU_RNN_STEP";

    /// The variant for an adapter: [`StepVariant::UNIT`] for a CPU adapter (a software
    /// rasteriser such as lavapipe or llvmpipe), [`StepVariant::SPLIT`] for anything else
    /// (discrete, integrated and virtual GPUs, and adapters that do not say).
    pub fn for_adapter(info: &wgpu::AdapterInfo) -> Self {
        match info.device_type {
            wgpu::DeviceType::Cpu => Self::UNIT,
            _ => Self::SPLIT,
        }
    }

    /// Every variant a context can be forced to, the adapter defaults first.
    pub fn all() -> Vec<Self> {
        let mut v = vec![Self::UNIT, Self::SPLIT];
        for split in STEP_SPLITS {
            for rows in STEP_ROWS {
                for cols in STEP_COLS {
                    let s = Self { split, rows, cols };
                    if s.check("all").is_ok() && !v.contains(&s) {
                        v.push(s);
                    }
                }
            }
        }
        v
    }

    /// Hidden units per workgroup at the most units per invocation: `cols` × 64 /
    /// `split` (the fewest workgroups a step of `H` units takes: `ceil(H / units)`).
    pub fn units(&self) -> u32 {
        self.units_with(self.cols)
    }

    /// The units per invocation for a step of `hidden` units over `groups_y` batch
    /// groups (and directions): the most, at most [`StepVariant::cols`], that still
    /// gives `min_groups` workgroups (an adapter's threads each run whole workgroups),
    /// else 1.
    pub(crate) fn cols_for(&self, hidden: usize, groups_y: usize, min_groups: usize) -> u32 {
        STEP_COLS
            .into_iter()
            .rev()
            .filter(|&c| c <= self.cols)
            .find(|&c| {
                let per = self.units_with(c) as usize;
                hidden.div_ceil(per) * groups_y >= min_groups
            })
            .unwrap_or(1)
    }

    /// Hidden units per workgroup with `cols` units per invocation.
    pub(crate) fn units_with(&self, cols: u32) -> u32 {
        cols * STEP_WORKGROUP / self.split.max(1)
    }

    /// The rows per invocation for a batch of `b` rows: the smallest of 1, 2, 4, 8 that
    /// covers it, at most [`StepVariant::rows`].
    pub fn rows_for(&self, b: usize) -> u32 {
        STEP_ROWS
            .into_iter()
            .find(|&r| r as usize >= b || r >= self.rows)
            .unwrap_or(self.rows)
    }

    /// `Ok` when `split`, `rows` and `cols` are among the built variants, else
    /// [`Error::Invalid`] naming `arg` (where the variant came from).
    pub fn check(&self, arg: &'static str) -> Result<()> {
        let built = STEP_SPLITS.contains(&self.split)
            && STEP_ROWS.contains(&self.rows)
            && STEP_COLS.contains(&self.cols)
            && (self.split == 1 || self.rows * self.cols <= 8);
        if built {
            Ok(())
        } else {
            Err(Error::Invalid {
                arg,
                msg: format!(
                    "step variant split {} rows {} cols {}: split one of {STEP_SPLITS:?}, rows \
                     one of {STEP_ROWS:?}, cols one of {STEP_COLS:?}, rows × cols ≤ 8 when split",
                    self.split, self.rows, self.cols
                ),
            })
        }
    }

    /// Parses `unit`, `split<N>` (N one of 2, 4, 8, 16, 32), optionally followed by
    /// `,rows=<R>` (R one of 1, 2, 4, 8; default 8, or 8 / C for a split) and `,cols=<C>`
    /// (C one of 1, 2, 4; default 4 for `unit`, 1 for a split): `"unit"`, `"split8"`, `"split4,rows=2"`,
    /// `"unit,rows=4,cols=1"` — the form [`StepVariant`]'s `Display` writes. Anything
    /// else is [`Error::Invalid`] naming `arg`.
    pub fn parse(s: &str, arg: &'static str) -> Result<Self> {
        let bad = || Error::Invalid {
            arg,
            msg: format!(
                "step variant {s:?}: expected unit or split<N> (N in 2, 4, 8, 16, 32), \
                 optionally followed by ,rows=<R> (R in 1, 2, 4, 8) and ,cols=<C> (C in 1, 2, \
                 4; rows × cols ≤ 8 when split)"
            ),
        };
        let mut parts = s.trim().split(',');
        let kind = parts.next().unwrap_or("").trim();
        let split = match kind {
            "unit" => 1,
            _ => kind
                .strip_prefix("split")
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|&n| n > 1)
                .ok_or_else(bad)?,
        };
        let (mut rows, mut cols) = (None, None);
        for p in parts {
            let (key, value) = p.trim().split_once('=').ok_or_else(bad)?;
            let value = value.trim().parse::<u32>().map_err(|_| bad())?;
            match key.trim() {
                "rows" => rows = Some(value),
                "cols" => cols = Some(value),
                _ => return Err(bad()),
            }
        }
        let cols = cols.unwrap_or(if split == 1 { Self::UNIT.cols } else { 1 });
        // A split lane holds at most 8 pairs: rows default to what fits beside `cols`.
        let rows = rows.unwrap_or(if split == 1 { 8 } else { (8 / cols).max(1) });
        let v = Self { split, rows, cols };
        v.check(arg).map_err(|_| bad())?;
        Ok(v)
    }

    /// The variant a context uses: `forced` (from its options) if any, else the one
    /// [`StepVariant::ENV`] names, else the adapter's.
    pub(crate) fn choose(forced: Option<Self>, info: &wgpu::AdapterInfo) -> Result<Self> {
        if let Some(v) = forced {
            v.check("ContextOptions::step")?;
            return Ok(v);
        }
        from_env(Self::ENV, Self::parse).unwrap_or_else(|| Ok(Self::for_adapter(info)))
    }
}

impl fmt::Display for StepVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.split == 1 {
            write!(f, "unit,rows={},cols={}", self.rows, self.cols)
        } else {
            write!(
                f,
                "split{},rows={},cols={}",
                self.split, self.rows, self.cols
            )
        }
    }
}

/// How the GEMMs (input projections, weight gradients, `dX`, the head) are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GemmVariant {
    /// 128×64 tiles of C per workgroup of 256, K in steps of 16 (8 where the adapter
    /// lacks the workgroup memory; `ContextOptions::gemm_k_step`) double-buffered in
    /// workgroup memory, vec4 loads where aligned (`gemm.wgsl`): for GPUs.
    Tiled,
    /// 64×64 tiles of C per workgroup of 64, each invocation an 8×8 block reading its
    /// operands straight from the buffers, no barrier (`gemm_direct.wgsl`): for CPU
    /// adapters.
    Direct,
}

impl GemmVariant {
    /// The environment variable that forces a variant: `tiled` or `direct`.
    pub const ENV: &'static str = "WGPU_RNN_GEMM";

    /// [`GemmVariant::Direct`] for a CPU adapter, [`GemmVariant::Tiled`] for anything
    /// else.
    pub fn for_adapter(info: &wgpu::AdapterInfo) -> Self {
        match info.device_type {
            wgpu::DeviceType::Cpu => Self::Direct,
            _ => Self::Tiled,
        }
    }

    /// The tile of C one workgroup owns, rows × columns.
    pub(crate) fn tile(self) -> [usize; 2] {
        match self {
            Self::Tiled => [128, 64],
            Self::Direct => [64, 64],
        }
    }

    /// Parses `tiled` or `direct` ([`Error::Invalid`] naming `arg` otherwise).
    pub fn parse(s: &str, arg: &'static str) -> Result<Self> {
        match s.trim() {
            "tiled" => Ok(Self::Tiled),
            "direct" => Ok(Self::Direct),
            _ => Err(Error::Invalid {
                arg,
                msg: format!("GEMM variant {s:?}: expected tiled or direct"),
            }),
        }
    }

    /// The variant a context uses: `forced` if any, else the one [`GemmVariant::ENV`]
    /// names, else the adapter's.
    pub(crate) fn choose(forced: Option<Self>, info: &wgpu::AdapterInfo) -> Result<Self> {
        if let Some(v) = forced {
            return Ok(v);
        }
        from_env(Self::ENV, Self::parse).unwrap_or_else(|| Ok(Self::for_adapter(info)))
    }
}

impl fmt::Display for GemmVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tiled => "tiled",
            Self::Direct => "direct",
        })
    }
}

/// The workgroups a step should have to keep the adapter busy, for choosing the units
/// per invocation: a CPU adapter runs each workgroup whole on one of its threads
/// (llvmpipe's `LP_NUM_THREADS`, else one per host core, read once); a GPU has far more
/// room than the unit counts here change, so 1.
pub(crate) fn min_step_groups(info: &wgpu::AdapterInfo) -> usize {
    static CPU: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    match info.device_type {
        wgpu::DeviceType::Cpu => *CPU.get_or_init(|| {
            std::env::var("LP_NUM_THREADS")
                .ok()
                .and_then(|n| n.trim().parse::<usize>().ok())
                .filter(|&n| n > 0)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        }),
        _ => 1,
    }
}

/// The variant the environment variable `name` names, parsed (`None` when it is unset
/// or blank; a value that is not Unicode is parsed as far as it reads).
fn from_env<T>(
    name: &'static str,
    parse: fn(&str, &'static str) -> Result<T>,
) -> Option<Result<T>> {
    let value = match std::env::var(name) {
        Ok(s) => s,
        Err(std::env::VarError::NotUnicode(s)) => s.to_string_lossy().into_owned(),
        Err(std::env::VarError::NotPresent) => return None,
    };
    (!value.trim().is_empty()).then(|| parse(&value, name))
}

/// What one step pipeline is built for within its context's [`StepVariant`]: the batch
/// rows and hidden units one invocation carries (zero for the other kernels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct StepShape {
    pub rows: u32,
    pub cols: u32,
}

#[cfg(test)]
mod tests {
    use super::{GemmVariant, StepVariant};

    #[test]
    fn parse_and_display_round_trip() {
        for v in StepVariant::all() {
            assert_eq!(StepVariant::parse(&v.to_string(), "x").unwrap(), v);
        }
        assert_eq!(
            StepVariant::parse("split4", "x").unwrap(),
            StepVariant {
                split: 4,
                rows: 8,
                cols: 1
            }
        );
        assert_eq!(
            StepVariant::parse(" unit , rows=2 ", "x").unwrap(),
            StepVariant {
                split: 1,
                rows: 2,
                cols: 4
            }
        );
        for bad in [
            "",
            "split",
            "split1",
            "split3",
            "split64",
            "unit,rows=3",
            "tiled",
            "unit,r=2",
        ] {
            let e = StepVariant::parse(bad, "WGPU_RNN_STEP").unwrap_err();
            assert!(e.to_string().contains("WGPU_RNN_STEP"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn split_rows_default_to_what_fits() {
        let v = StepVariant::parse("split8,cols=2", "x").unwrap();
        assert_eq!((v.rows, v.cols), (4, 2));
        let v = StepVariant::parse("split2,cols=4", "x").unwrap();
        assert_eq!((v.rows, v.cols), (2, 4));
    }

    #[test]
    fn gemm_variants_parse() {
        for v in [GemmVariant::Tiled, GemmVariant::Direct] {
            assert_eq!(GemmVariant::parse(&v.to_string(), "x").unwrap(), v);
        }
        let e = GemmVariant::parse("fast", "WGPU_RNN_GEMM").unwrap_err();
        assert!(e.to_string().contains("WGPU_RNN_GEMM"), "{e}");
    }

    #[test]
    fn rows_cover_the_batch_up_to_the_limit() {
        let v = StepVariant {
            split: 8,
            rows: 4,
            cols: 1,
        };
        let got: Vec<u32> = [1, 2, 3, 4, 5, 9, 64].map(|b| v.rows_for(b)).to_vec();
        assert_eq!(got, [1, 2, 4, 4, 4, 4, 4]);
        let u = StepVariant::UNIT;
        let got: Vec<u32> = [1, 2, 3, 5, 8, 9].map(|b| u.rows_for(b)).to_vec();
        assert_eq!(got, [1, 2, 4, 8, 8, 8]);
        assert_eq!(StepVariant::SPLIT.units(), 8);
        assert_eq!(StepVariant::UNIT.units(), 256);
        // The most units per invocation that leave two workgroups, else one.
        let u = StepVariant::UNIT;
        assert_eq!(u.cols_for(256, 2, 2), 4);
        assert_eq!(u.cols_for(256, 1, 2), 2);
        assert_eq!(u.cols_for(256, 1, 4), 1);
        assert_eq!(u.cols_for(3, 1, 2), 1);
        assert_eq!(StepVariant::SPLIT.cols_for(512, 8, 64), 1);
    }
}
