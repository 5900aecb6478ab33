//! Measurements on the GPU through cudarc (dynamic loading: nothing CUDA is needed to build
//! or test the crate; [`Device::open`] fails with a clear error on a machine without it).
//! GEMMs use cuBLAS (`cublasGemmEx`, bf16 in and out, fp32 accumulation); attention uses
//! the project's own kernels (`kernels.cu`) compiled by NVRTC. Times come from CUDA events
//! around each repetition after a warm-up; inputs rotate over enough copies that the
//! working set exceeds twice the L2 cache, so repeated runs do not hit in L2.

use super::plan::Shard;
use crate::cost::profile::Op;
use crate::cost::BatchShape;
use crate::error::{Error, Result};
use cudarc::cublas::{sys as cublas_sys, CudaBlas};
use cudarc::driver::{
    sys as cu_sys, CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut,
    LaunchConfig, PushKernelArg,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

/// Timing statistics of one measured point, microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Median.
    pub median_us: f64,
    /// 10th percentile.
    pub p10_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// Timed repetitions.
    pub reps: u32,
}

/// Median and percentiles of samples (microseconds).
pub fn stats(mut samples: Vec<f64>) -> Stats {
    samples.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let i = ((samples.len() - 1) as f64 * p).round() as usize;
        samples[i]
    };
    Stats {
        median_us: q(0.5),
        p10_us: q(0.1),
        p90_us: q(0.9),
        reps: samples.len() as u32,
    }
}

fn cu(e: impl std::fmt::Debug) -> Error {
    Error::failure(format!("CUDA error: {e:?}"))
}

/// Round an f32 to bf16 (nearest even), as the kernels do.
pub fn f32_to_bf16(f: f32) -> u16 {
    let u = f.to_bits();
    let r = u.wrapping_add(0x7FFF + ((u >> 16) & 1));
    (r >> 16) as u16
}

/// The f32 value of a bf16.
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// Static facts about the device and its software.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    /// Name as the driver reports it.
    pub name: String,
    /// SM count.
    pub sm_count: u32,
    /// Compute capability `major.minor`.
    pub compute_capability: String,
    /// Total memory, bytes.
    pub memory_total: u64,
    /// Free memory now, bytes.
    pub memory_free: u64,
    /// L2 cache, bytes.
    pub l2_bytes: u64,
    /// Driver API version, `major.minor`.
    pub driver_version: String,
    /// NVRTC version.
    pub nvrtc_version: String,
    /// cuBLAS version.
    pub cublas_version: String,
    /// Rated SM and memory clocks, MHz.
    pub rated_clocks_mhz: (u32, u32),
}

/// An open GPU with compiled kernels.
pub struct Device {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    decode: CudaFunction,
    prefill: CudaFunction,
    head_dim: u32,
    /// Facts read when opening.
    pub info: DeviceInfo,
    rng: StdRng,
}

/// Tokens per KV block of the decode kernel's paged layout (vLLM's default).
pub const KV_BLOCK: u64 = 16;

impl Device {
    /// Open GPU 0 and compile the attention kernels for `head_dim`. Fails with a clear
    /// message when the CUDA driver, cuBLAS or NVRTC libraries are missing.
    pub fn open(head_dim: u32, seed: u64) -> Result<Device> {
        // SAFETY: only probes whether the shared libraries can be loaded.
        let (has_cuda, has_blas, has_nvrtc) = unsafe {
            (
                cu_sys::is_culib_present(),
                cublas_sys::is_culib_present(),
                cudarc::nvrtc::sys::is_culib_present(),
            )
        };
        let missing: Vec<&str> = [
            (has_cuda, "the CUDA driver (libcuda.so)"),
            (has_blas, "cuBLAS (libcublas.so)"),
            (has_nvrtc, "NVRTC (libnvrtc.so)"),
        ]
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, n)| *n)
        .collect();
        if !missing.is_empty() {
            return Err(Error::failure(format!(
                "kvsim calibrate needs an NVIDIA GPU with CUDA; cannot load {} (set LD_LIBRARY_PATH to the CUDA libraries). `kvsim calibrate --dry-run` shows the plan without a GPU",
                missing.join(", ")
            )));
        }
        if !head_dim.is_multiple_of(32) || head_dim > 256 {
            return Err(Error::input(format!(
                "head size {head_dim}: the attention kernels need a multiple of 32 up to 256"
            )));
        }
        if CudaContext::device_count().map_err(cu)? < 1 {
            return Err(Error::failure("no CUDA device found"));
        }
        let ctx = CudaContext::new(0).map_err(cu)?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(cu)?;
        let (major, minor) = ctx.compute_capability().map_err(cu)?;
        let opts = cudarc::nvrtc::CompileOptions {
            options: vec![
                format!("-DHEAD_DIM={head_dim}"),
                format!("--gpu-architecture=compute_{major}{minor}"),
                "-default-device".into(),
            ],
            use_fast_math: Some(false),
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(include_str!("kernels.cu"), opts)
            .map_err(|e| Error::failure(format!("NVRTC could not compile the kernels: {e:?}")))?;
        let module = ctx.load_module(ptx).map_err(cu)?;
        let decode = module.load_function("paged_decode").map_err(cu)?;
        let prefill = module.load_function("prefill_attention").map_err(cu)?;
        let attr = |a| ctx.attribute(a).map_err(cu);
        use cu_sys::CUdevice_attribute as A;
        let (free, total) = ctx.mem_get_info().map_err(cu)?;
        // SAFETY: plain version queries into local integers.
        let (driver, nvrtc, cublas) = unsafe {
            let mut d = 0;
            cu_sys::cuDriverGetVersion(&mut d);
            let (mut a, mut b) = (0, 0);
            cudarc::nvrtc::sys::nvrtcVersion(&mut a, &mut b);
            let mut c = 0;
            cublas_sys::cublasGetVersion_v2(*blas.handle(), &mut c);
            (
                format!("{}.{}", d / 1000, (d % 1000) / 10),
                format!("{a}.{b}"),
                format!("{}.{}.{}", c / 10000, (c / 100) % 100, c % 100),
            )
        };
        let info = DeviceInfo {
            name: ctx.name().map_err(cu)?,
            sm_count: attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32,
            compute_capability: format!("{major}.{minor}"),
            memory_total: total as u64,
            memory_free: free as u64,
            l2_bytes: attr(A::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)? as u64,
            driver_version: driver,
            nvrtc_version: nvrtc,
            cublas_version: cublas,
            rated_clocks_mhz: (
                attr(A::CU_DEVICE_ATTRIBUTE_CLOCK_RATE)? as u32 / 1000,
                attr(A::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE)? as u32 / 1000,
            ),
        };
        Ok(Device {
            ctx,
            stream,
            blas,
            decode,
            prefill,
            head_dim,
            info,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// How many rotating copies of a working set of `bytes` keep repeated runs out of L2.
    fn copies_for(&self, bytes: u64) -> usize {
        (2 * self.info.l2_bytes).div_ceil(bytes.max(1)).clamp(1, 16) as usize
    }

    fn random_host(&mut self, n: usize) -> Vec<u16> {
        (0..n)
            .map(|_| f32_to_bf16(self.rng.gen_range(-1.0f32..1.0)))
            .collect()
    }

    /// A device buffer of `n` bf16 values, random in [-1, 1) (a random 4M-value pattern
    /// repeated, so that gigabytes fill quickly).
    fn random_device(&mut self, n: usize) -> Result<CudaSlice<u16>> {
        const PATTERN: usize = 1 << 22;
        let pat = self.random_host(n.min(PATTERN));
        let mut d = self.stream.alloc_zeros::<u16>(n.max(1)).map_err(cu)?;
        let mut off = 0;
        while off < n {
            let len = (n - off).min(pat.len());
            let mut view = d.slice_mut(off..off + len);
            self.stream
                .memcpy_htod(&pat[..len], &mut view)
                .map_err(cu)?;
            off += len;
        }
        Ok(d)
    }

    /// Time `f(i)` (i = repetition, for rotation) with CUDA events.
    fn time<F: FnMut(&Self, usize) -> Result<()>>(
        &self,
        warmup: u32,
        reps: u32,
        mut f: F,
    ) -> Result<Stats> {
        for i in 0..warmup as usize {
            f(self, i)?;
        }
        self.stream.synchronize().map_err(cu)?;
        let flags = Some(cu_sys::CUevent_flags::CU_EVENT_DEFAULT);
        let mut samples = Vec::with_capacity(reps as usize);
        for i in 0..reps as usize {
            let start = self.stream.record_event(flags).map_err(cu)?;
            f(self, warmup as usize + i)?;
            let end = self.stream.record_event(flags).map_err(cu)?;
            samples.push(start.elapsed_ms(&end).map_err(cu)? as f64 * 1e3);
        }
        Ok(stats(samples))
    }

    /// `y[m x n] = x[m x k] w[k x n]`, row-major bf16, fp32 accumulation.
    fn gemm(
        &self,
        m: u64,
        k: u64,
        n: u64,
        x: &CudaSlice<u16>,
        w: &CudaSlice<u16>,
        y: &mut CudaSlice<u16>,
    ) -> Result<()> {
        let (alpha, beta) = (1.0f32, 0.0f32);
        let (xp, _gx) = x.device_ptr(&self.stream);
        let (wp, _gw) = w.device_ptr(&self.stream);
        let (yp, _gy) = y.device_ptr_mut(&self.stream);
        // Column-major view: y^T (n x m) = w^T (n x k) x^T (k x m).
        // SAFETY: the buffers hold at least m k, k n and m n elements (checked by callers).
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *self.blas.handle(),
                cublas_sys::cublasOperation_t::CUBLAS_OP_N,
                cublas_sys::cublasOperation_t::CUBLAS_OP_N,
                n as i32,
                m as i32,
                k as i32,
                &alpha as *const f32 as *const _,
                wp as *const _,
                cublas_sys::cudaDataType::CUDA_R_16BF,
                n as i32,
                xp as *const _,
                cublas_sys::cudaDataType::CUDA_R_16BF,
                k as i32,
                &beta as *const f32 as *const _,
                yp as *mut _,
                cublas_sys::cudaDataType::CUDA_R_16BF,
                n as i32,
                cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
            )
        }
        .map_err(cu)
    }

    /// Median time of one GEMM of `m` tokens against a `k x n` weight.
    pub fn time_gemm(&mut self, m: u64, k: u64, n: u64, warmup: u32, reps: u32) -> Result<Stats> {
        let set = (k * n + m * k + m * n) * 2;
        let copies = self.copies_for(set);
        let mut ws = Vec::new();
        let mut xs = Vec::new();
        for _ in 0..copies {
            ws.push(self.random_device((k * n) as usize)?);
            xs.push(self.random_device((m * k) as usize)?);
        }
        let mut y = self
            .stream
            .alloc_zeros::<u16>((m * n) as usize)
            .map_err(cu)?;
        self.time(warmup, reps, |d, i| {
            d.gemm(m, k, n, &xs[i % copies], &ws[i % copies], &mut y)
        })
    }

    /// Check the GEMM against a CPU reference on fresh random inputs; returns the relative
    /// error `max |gpu - cpu| / max |cpu|`.
    pub fn check_gemm(&mut self, m: u64, k: u64, n: u64) -> Result<f64> {
        let xh = self.random_host((m * k) as usize);
        let wh = self.random_host((k * n) as usize);
        let x = self.stream.clone_htod(&xh).map_err(cu)?;
        let w = self.stream.clone_htod(&wh).map_err(cu)?;
        let mut y = self
            .stream
            .alloc_zeros::<u16>((m * n) as usize)
            .map_err(cu)?;
        self.gemm(m, k, n, &x, &w, &mut y)?;
        let got = self.stream.clone_dtoh(&y).map_err(cu)?;
        let (m, k, n) = (m as usize, k as usize, n as usize);
        let wf: Vec<f32> = wh.iter().map(|&b| bf16_to_f32(b)).collect();
        let mut want = vec![0f32; m * n];
        for r in 0..m {
            let row = &mut want[r * n..(r + 1) * n];
            for kk in 0..k {
                let a = bf16_to_f32(xh[r * k + kk]);
                let wrow = &wf[kk * n..(kk + 1) * n];
                for (o, &b) in row.iter_mut().zip(wrow) {
                    *o += a * b;
                }
            }
        }
        Ok(rel_error(&got, &want))
    }

    fn launch_decode(&self, shard: &Shard, inp: &mut DecodeInputs, copy: usize) -> Result<()> {
        let (seqs, max_blocks) = (inp.seqs, inp.max_blocks);
        let cfg = LaunchConfig {
            grid_dim: (shard.heads, seqs, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let (qh, kvh, bs) = (shard.heads as i32, shard.kv_heads as i32, KV_BLOCK as i32);
        let scale = 1.0f32 / (self.head_dim as f32).sqrt();
        let mut b = self.stream.launch_builder(&self.decode);
        b.arg(&inp.q)
            .arg(&inp.kc)
            .arg(&inp.vc)
            .arg(&inp.tables[copy % inp.tables.len()])
            .arg(&inp.lens)
            .arg(&mut inp.out)
            .arg(&qh)
            .arg(&kvh)
            .arg(&bs)
            .arg(&max_blocks)
            .arg(&scale);
        // SAFETY: argument types and order match `paged_decode` in kernels.cu; buffers are
        // sized by the callers for these shapes.
        unsafe { b.launch(cfg) }.map(|_| ()).map_err(cu)
    }

    /// Decode attention inputs for sequences with these contexts: random q, a KV pool of
    /// `copies` disjoint block sets, shuffled block tables.
    fn decode_inputs(
        &mut self,
        shard: &Shard,
        contexts: &[u64],
        copies: usize,
    ) -> Result<DecodeInputs> {
        let d = self.head_dim as u64;
        let per_tok = shard.kv_heads as u64 * d;
        let blocks_each: Vec<u64> = contexts.iter().map(|c| c.div_ceil(KV_BLOCK)).collect();
        let max_blocks = *blocks_each.iter().max().unwrap_or(&1) as usize;
        let needed: u64 = blocks_each.iter().sum();
        let pool = needed as usize * copies;
        let kc = self.random_device(pool * (KV_BLOCK * per_tok) as usize)?;
        let vc = self.random_device(pool * (KV_BLOCK * per_tok) as usize)?;
        let mut ids: Vec<i32> = (0..pool as i32).collect();
        for i in (1..ids.len()).rev() {
            let j = self.rng.gen_range(0..=i);
            ids.swap(i, j);
        }
        let mut tables = Vec::new();
        let mut next = 0;
        for _ in 0..copies {
            let mut t = vec![0i32; contexts.len() * max_blocks];
            for (s, &nb) in blocks_each.iter().enumerate() {
                for b in 0..nb as usize {
                    t[s * max_blocks + b] = ids[next];
                    next += 1;
                }
            }
            tables.push(self.stream.clone_htod(&t).map_err(cu)?);
        }
        let lens: Vec<i32> = contexts.iter().map(|&c| c as i32).collect();
        let q_len = contexts.len() * (shard.heads as u64 * d) as usize;
        Ok(DecodeInputs {
            q: self.random_device(q_len)?,
            out: self.stream.alloc_zeros::<u16>(q_len).map_err(cu)?,
            kc,
            vc,
            tables,
            lens: self.stream.clone_htod(&lens).map_err(cu)?,
            max_blocks: max_blocks as i32,
            seqs: contexts.len() as u32,
        })
    }

    /// Time one layer of decode attention over sequences with these contexts.
    pub fn time_decode(
        &mut self,
        shard: &Shard,
        contexts: &[u64],
        warmup: u32,
        reps: u32,
    ) -> Result<Stats> {
        let kv_bytes: u64 =
            contexts.iter().sum::<u64>() * shard.kv_heads as u64 * self.head_dim as u64 * 4;
        let copies = self.copies_for(kv_bytes);
        let mut inp = self.decode_inputs(shard, contexts, copies)?;
        self.time(warmup, reps, |d, i| d.launch_decode(shard, &mut inp, i))
    }

    /// Check decode attention against a CPU reference; returns the relative error.
    pub fn check_decode(&mut self, shard: &Shard) -> Result<f64> {
        let contexts = [17u64, 100, 333];
        let mut inp = self.decode_inputs(shard, &contexts, 1)?;
        self.launch_decode(shard, &mut inp, 0)?;
        let got = self.stream.clone_dtoh(&inp.out).map_err(cu)?;
        let q = self.stream.clone_dtoh(&inp.q).map_err(cu)?;
        let kc = self.stream.clone_dtoh(&inp.kc).map_err(cu)?;
        let vc = self.stream.clone_dtoh(&inp.vc).map_err(cu)?;
        let tables = self.stream.clone_dtoh(&inp.tables[0]).map_err(cu)?;
        let d = self.head_dim as usize;
        let (qh, kvh) = (shard.heads as usize, shard.kv_heads as usize);
        let mb = inp.max_blocks as usize;
        let mut want = vec![0f32; got.len()];
        for (s, &len) in contexts.iter().enumerate() {
            for h in 0..qh {
                let g = h / (qh / kvh);
                let qv: Vec<f32> = (0..d)
                    .map(|i| bf16_to_f32(q[(s * qh + h) * d + i]))
                    .collect();
                let at = |t: usize| {
                    let blk = tables[s * mb + t / KV_BLOCK as usize] as usize;
                    ((blk * KV_BLOCK as usize + t % KV_BLOCK as usize) * kvh + g) * d
                };
                let keys: Vec<usize> = (0..len as usize).map(at).collect();
                let o = attend(&qv, &keys, &kc, &vc, d);
                want[(s * qh + h) * d..(s * qh + h + 1) * d].copy_from_slice(&o);
            }
        }
        Ok(rel_error(&got, &want))
    }

    fn launch_prefill(&self, shard: &Shard, inp: &mut PrefillInputs, copy: usize) -> Result<()> {
        let tile = 32u32;
        let cfg = LaunchConfig {
            grid_dim: ((inp.chunk as u32).div_ceil(tile), shard.heads, 1),
            block_dim: (tile, 1, 1),
            shared_mem_bytes: 0,
        };
        let (c, p) = (inp.chunk as i32, inp.prefix as i32);
        let (qh, kvh) = (shard.heads as i32, shard.kv_heads as i32);
        let scale = 1.0f32 / (self.head_dim as f32).sqrt();
        let mut b = self.stream.launch_builder(&self.prefill);
        b.arg(&inp.q[copy])
            .arg(&inp.k[copy])
            .arg(&inp.v[copy])
            .arg(&mut inp.out)
            .arg(&c)
            .arg(&p)
            .arg(&qh)
            .arg(&kvh)
            .arg(&scale);
        // SAFETY: argument types and order match `prefill_attention` in kernels.cu.
        unsafe { b.launch(cfg) }.map(|_| ()).map_err(cu)
    }

    fn prefill_inputs(
        &mut self,
        shard: &Shard,
        chunk: u64,
        prefix: u64,
        copies: usize,
    ) -> Result<PrefillInputs> {
        let d = self.head_dim as u64;
        let kv_len = ((prefix + chunk) * shard.kv_heads as u64 * d) as usize;
        let q_len = (chunk * shard.heads as u64 * d) as usize;
        let mut inp = PrefillInputs {
            q: Vec::new(),
            k: Vec::new(),
            v: Vec::new(),
            out: self.stream.alloc_zeros::<u16>(q_len).map_err(cu)?,
            chunk,
            prefix,
        };
        for _ in 0..copies {
            inp.q.push(self.random_device(q_len)?);
            inp.k.push(self.random_device(kv_len)?);
            inp.v.push(self.random_device(kv_len)?);
        }
        Ok(inp)
    }

    /// Time one layer of causal prefill attention: `chunk` new tokens after `prefix`.
    pub fn time_prefill(
        &mut self,
        shard: &Shard,
        chunk: u64,
        prefix: u64,
        warmup: u32,
        reps: u32,
    ) -> Result<Stats> {
        let bytes = (prefix + chunk) * shard.kv_heads as u64 * self.head_dim as u64 * 4;
        let copies = self.copies_for(bytes);
        let mut inp = self.prefill_inputs(shard, chunk, prefix, copies)?;
        self.time(warmup, reps, |d, i| {
            d.launch_prefill(shard, &mut inp, i % copies)
        })
    }

    /// Check prefill attention against a CPU reference; returns the relative error.
    pub fn check_prefill(&mut self, shard: &Shard) -> Result<f64> {
        let (chunk, prefix) = (45u64, 70u64);
        let mut inp = self.prefill_inputs(shard, chunk, prefix, 1)?;
        self.launch_prefill(shard, &mut inp, 0)?;
        let got = self.stream.clone_dtoh(&inp.out).map_err(cu)?;
        let q = self.stream.clone_dtoh(&inp.q[0]).map_err(cu)?;
        let k = self.stream.clone_dtoh(&inp.k[0]).map_err(cu)?;
        let v = self.stream.clone_dtoh(&inp.v[0]).map_err(cu)?;
        let d = self.head_dim as usize;
        let (qh, kvh) = (shard.heads as usize, shard.kv_heads as usize);
        let mut want = vec![0f32; got.len()];
        for r in 0..chunk as usize {
            for h in 0..qh {
                let g = h / (qh / kvh);
                let qv: Vec<f32> = (0..d)
                    .map(|i| bf16_to_f32(q[(r * qh + h) * d + i]))
                    .collect();
                let keys: Vec<usize> = (0..=prefix as usize + r)
                    .map(|t| (t * kvh + g) * d)
                    .collect();
                let o = attend(&qv, &keys, &k, &v, d);
                want[(r * qh + h) * d..(r * qh + h + 1) * d].copy_from_slice(&o);
            }
        }
        Ok(rel_error(&got, &want))
    }

    /// Time a copy of `bytes`: device to device, or between pinned host memory and the
    /// device.
    pub fn time_copy(&mut self, op: Op, bytes: u64, warmup: u32, reps: u32) -> Result<Stats> {
        let n = (bytes / 2) as usize;
        let src = self.random_device(n)?;
        let mut dst = self.stream.alloc_zeros::<u16>(n).map_err(cu)?;
        match op {
            Op::CopyD2D => self.time(warmup, reps, |d, _| {
                d.stream.memcpy_dtod(&src, &mut dst).map_err(cu)
            }),
            Op::CopyH2D | Op::CopyD2H => {
                // SAFETY: the pinned buffer is written (by a device-to-host copy) before any
                // read of its contents; timing does not read it.
                let mut host = unsafe { self.ctx.alloc_pinned::<u16>(n) }.map_err(cu)?;
                self.stream.memcpy_dtoh(&src, &mut host).map_err(cu)?;
                if op == Op::CopyH2D {
                    self.time(warmup, reps, |d, _| {
                        d.stream.memcpy_htod(&host, &mut dst).map_err(cu)
                    })
                } else {
                    let mut host2 = unsafe { self.ctx.alloc_pinned::<u16>(n) }.map_err(cu)?;
                    self.time(warmup, reps, |d, _| {
                        d.stream.memcpy_dtoh(&src, &mut host2).map_err(cu)
                    })
                }
            }
            _ => Err(Error::failure(format!("{} is not a copy", op.name()))),
        }
    }

    /// A composed engine step on the GPU: for every layer the four GEMMs over all tokens,
    /// prefill attention per chunk and decode attention over the decodes, then the LM
    /// head over the sampling sequences. Per-layer weights are distinct buffers; KV pools
    /// alternate between two copies. Returns the measured time of the whole step.
    pub fn time_step(
        &mut self,
        weights: &LayerWeights,
        shard: &Shard,
        layers: u32,
        shape: &BatchShape,
        warmup: u32,
        reps: u32,
    ) -> Result<Stats> {
        let tokens = shape.total_tokens().max(1);
        let sampled = shape.sampled as u64;
        let lm = shard.gemms[4];
        // Activations: every layer GEMM reads tokens x k and writes tokens x n; the LM head
        // reads sampled x hidden and writes sampled x vocabulary.
        let layer_width = shard.gemms[..4]
            .iter()
            .map(|g| g.1.max(g.2))
            .max()
            .unwrap_or(lm.1);
        let len = (tokens * layer_width).max(sampled * lm.2) as usize;
        let x = self.random_device(len)?;
        let mut y = self.stream.alloc_zeros::<u16>(len).map_err(cu)?;
        let contexts: Vec<u64> = shape.decodes.iter().map(|s| s.context as u64 + 1).collect();
        let mut decode = if contexts.is_empty() {
            None
        } else {
            Some(self.decode_inputs(shard, &contexts, 2)?)
        };
        let mut prefills = Vec::new();
        for s in &shape.prefills {
            prefills.push(self.prefill_inputs(shard, s.new_tokens as u64, s.context as u64, 2)?);
        }
        self.time(warmup, reps, |d, _| {
            for l in 0..layers as usize {
                for (g, w) in weights.layers[l % weights.layers.len()].iter().enumerate() {
                    let (_, k, n) = shard.gemms[g];
                    d.gemm(tokens, k, n, &x, w, &mut y)?;
                }
                for p in prefills.iter_mut() {
                    d.launch_prefill(shard, p, l % 2)?;
                }
                if let Some(inp) = decode.as_mut() {
                    d.launch_decode(shard, inp, l)?;
                }
            }
            if sampled > 0 {
                d.gemm(sampled, lm.1, lm.2, &x, &weights.lm_head, &mut y)?;
            }
            Ok(())
        })
    }

    /// Allocate the weights of `layers` layers (distinct per layer) and the LM head.
    pub fn layer_weights(&mut self, shard: &Shard, layers: u32) -> Result<LayerWeights> {
        let mut all = Vec::new();
        for _ in 0..layers {
            let mut one = Vec::new();
            for &(_, k, n) in &shard.gemms[..4] {
                one.push(self.random_device((k * n) as usize)?);
            }
            all.push(one);
        }
        let (_, k, n) = shard.gemms[4];
        Ok(LayerWeights {
            layers: all,
            lm_head: self.random_device((k * n) as usize)?,
        })
    }

    /// Free device memory now, bytes.
    pub fn free_memory(&self) -> Result<u64> {
        Ok(self.ctx.mem_get_info().map_err(cu)?.0 as u64)
    }
}

/// Weights of a composed step.
pub struct LayerWeights {
    layers: Vec<Vec<CudaSlice<u16>>>,
    lm_head: CudaSlice<u16>,
}

struct DecodeInputs {
    q: CudaSlice<u16>,
    out: CudaSlice<u16>,
    kc: CudaSlice<u16>,
    vc: CudaSlice<u16>,
    tables: Vec<CudaSlice<i32>>,
    lens: CudaSlice<i32>,
    max_blocks: i32,
    seqs: u32,
}

struct PrefillInputs {
    q: Vec<CudaSlice<u16>>,
    k: Vec<CudaSlice<u16>>,
    v: Vec<CudaSlice<u16>>,
    out: CudaSlice<u16>,
    chunk: u64,
    prefix: u64,
}

/// Softmax attention of one query over the keys at element offsets `keys` (f32 reference).
fn attend(q: &[f32], keys: &[usize], k: &[u16], v: &[u16], d: usize) -> Vec<f32> {
    let scale = 1.0 / (d as f32).sqrt();
    let scores: Vec<f32> = keys
        .iter()
        .map(|&o| (0..d).map(|i| q[i] * bf16_to_f32(k[o + i])).sum::<f32>() * scale)
        .collect();
    let m = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let w: Vec<f32> = scores.iter().map(|s| (s - m).exp()).collect();
    let l: f32 = w.iter().sum();
    let mut out = vec![0f32; d];
    for (&o, &wt) in keys.iter().zip(&w) {
        for i in 0..d {
            out[i] += wt / l * bf16_to_f32(v[o + i]);
        }
    }
    out
}

/// `max |got - want| / max |want|`, with `got` in bf16.
pub fn rel_error(got: &[u16], want: &[f32]) -> f64 {
    let scale = want.iter().fold(0f32, |a, &b| a.max(b.abs())).max(1e-20);
    let err = got
        .iter()
        .zip(want)
        .fold(0f32, |a, (&g, &w)| a.max((bf16_to_f32(g) - w).abs()));
    (err / scale) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_round_trip_and_rounding() {
        for v in [0.0f32, 1.0, -2.5, 0.15625, 3.0e-3] {
            let b = f32_to_bf16(v);
            assert!((bf16_to_f32(b) - v).abs() <= v.abs() / 128.0);
        }
        // 1 + 2^-8 is halfway between two bf16 values; ties go to even (1.0).
        assert_eq!(bf16_to_f32(f32_to_bf16(1.0 + 1.0 / 256.0)), 1.0);
    }

    #[test]
    fn stats_are_order_statistics() {
        let s = stats((1..=11).map(|v| v as f64).collect());
        assert_eq!(
            (s.p10_us, s.median_us, s.p90_us, s.reps),
            (2.0, 6.0, 10.0, 11)
        );
    }

    #[test]
    fn reference_attention_of_equal_keys_averages_the_values() {
        let d = 32;
        let q: Vec<f32> = (0..d).map(|i| i as f32 / 10.0).collect();
        let k = vec![f32_to_bf16(0.5); 2 * d];
        let mut v = vec![f32_to_bf16(1.0); d];
        v.extend(vec![f32_to_bf16(3.0); d]);
        let o = attend(&q, &[0, d], &k, &v, d);
        assert!(o.iter().all(|&x| (x - 2.0).abs() < 1e-6));
        let got: Vec<u16> = o.iter().map(|&x| f32_to_bf16(x)).collect();
        assert_eq!(rel_error(&got, &o), 0.0);
    }

    #[test]
    fn opening_without_cuda_is_a_clear_failure() {
        // On machines without the CUDA driver this must fail cleanly, never panic.
        // SAFETY: probes a shared library.
        if unsafe { cu_sys::is_culib_present() } {
            return;
        }
        let err = Device::open(128, 1).err().expect("no CUDA here");
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains("needs an NVIDIA GPU"));
    }
}
