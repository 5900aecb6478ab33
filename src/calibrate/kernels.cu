// kvsim's own attention kernels, compiled at run time by NVRTC with -DHEAD_DIM=<d>.
// bf16 values are carried as unsigned short so that no CUDA header is needed.

__device__ __forceinline__ float bf2f(unsigned short x) {
    return __uint_as_float(((unsigned int)x) << 16);
}

__device__ __forceinline__ unsigned short f2bf(float f) {
    unsigned int u = __float_as_uint(f);
    u += 0x7FFFu + ((u >> 16) & 1u);  // round to nearest even
    return (unsigned short)(u >> 16);
}

#define DECODE_WARPS 4
#define PER_LANE (HEAD_DIM / 32)

// Paged decode attention, one query token per sequence (vLLM v1 paged-attention layout).
// Grid (query heads, sequences); block DECODE_WARPS warps. Tokens of the context are
// spread over the warps; each warp keeps an online softmax; warps are merged at the end.
// q: [seqs][q_heads][D]; k_cache, v_cache: [blocks][block_size][kv_heads][D];
// block_tables: [seqs][max_blocks]; context_lens: [seqs]; out: [seqs][q_heads][D].
extern "C" __global__ void paged_decode(
    const unsigned short* __restrict__ q,
    const unsigned short* __restrict__ k_cache,
    const unsigned short* __restrict__ v_cache,
    const int* __restrict__ block_tables,
    const int* __restrict__ context_lens,
    unsigned short* __restrict__ out,
    int q_heads, int kv_heads, int block_size, int max_blocks, float scale)
{
    const int h = blockIdx.x, s = blockIdx.y;
    const int kvh = h / (q_heads / kv_heads);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int len = context_lens[s];
    float qv[PER_LANE], acc[PER_LANE];
    const size_t qoff = ((size_t)s * q_heads + h) * HEAD_DIM + lane * PER_LANE;
    for (int i = 0; i < PER_LANE; i++) {
        qv[i] = bf2f(q[qoff + i]) * scale;
        acc[i] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    for (int t = warp; t < len; t += DECODE_WARPS) {
        const int blk = block_tables[(size_t)s * max_blocks + t / block_size];
        const size_t base =
            (((size_t)blk * block_size + t % block_size) * kv_heads + kvh) * HEAD_DIM + lane * PER_LANE;
        float dot = 0.f;
        for (int i = 0; i < PER_LANE; i++) dot += qv[i] * bf2f(k_cache[base + i]);
        for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        const float mn = fmaxf(m, dot);
        const float c = __expf(m - mn), p = __expf(dot - mn);
        l = l * c + p;
        for (int i = 0; i < PER_LANE; i++) acc[i] = acc[i] * c + p * bf2f(v_cache[base + i]);
        m = mn;
    }
    __shared__ float sm[DECODE_WARPS], sl[DECODE_WARPS];
    __shared__ float sacc[DECODE_WARPS * HEAD_DIM];
    if (lane == 0) { sm[warp] = m; sl[warp] = l; }
    for (int i = 0; i < PER_LANE; i++) sacc[warp * HEAD_DIM + lane * PER_LANE + i] = acc[i];
    __syncthreads();
    if (warp == 0) {
        float M = -INFINITY;
        for (int w = 0; w < DECODE_WARPS; w++) M = fmaxf(M, sm[w]);
        float L = 0.f, r[PER_LANE];
        for (int i = 0; i < PER_LANE; i++) r[i] = 0.f;
        for (int w = 0; w < DECODE_WARPS; w++) {
            if (sm[w] == -INFINITY) continue;
            const float c = __expf(sm[w] - M);
            L += sl[w] * c;
            for (int i = 0; i < PER_LANE; i++) r[i] += sacc[w * HEAD_DIM + lane * PER_LANE + i] * c;
        }
        for (int i = 0; i < PER_LANE; i++) out[qoff + i] = f2bf(r[i] / L);
    }
}

#define TILE 32

// Causal prefill attention of one chunk after a cached prefix, tiled flash-style: a block
// of TILE threads owns TILE query rows of one head; key/value tiles are staged in shared
// memory; each thread keeps its row's online softmax. Query row r (position prefix + r)
// sees keys 0 ..= prefix + r.
// q: [chunk][q_heads][D]; k, v: [prefix + chunk][kv_heads][D]; out: [chunk][q_heads][D].
extern "C" __global__ void prefill_attention(
    const unsigned short* __restrict__ q,
    const unsigned short* __restrict__ k,
    const unsigned short* __restrict__ v,
    unsigned short* __restrict__ out,
    int chunk, int prefix, int q_heads, int kv_heads, float scale)
{
    const int h = blockIdx.y;
    const int kvh = h / (q_heads / kv_heads);
    const int row = blockIdx.x * TILE + threadIdx.x;
    const bool active = row < chunk;
    __shared__ unsigned short ks[TILE * HEAD_DIM], vs[TILE * HEAD_DIM];
    float qv[HEAD_DIM], acc[HEAD_DIM];
    const size_t qoff = ((size_t)row * q_heads + h) * HEAD_DIM;
    for (int d = 0; d < HEAD_DIM; d++) {
        qv[d] = active ? bf2f(q[qoff + d]) * scale : 0.f;
        acc[d] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    const int last_row = min(chunk, (int)(blockIdx.x + 1) * TILE) - 1;
    const int keys = prefix + last_row + 1;
    for (int k0 = 0; k0 < keys; k0 += TILE) {
        for (int idx = threadIdx.x; idx < TILE * HEAD_DIM; idx += blockDim.x) {
            const int r = idx / HEAD_DIM, d = idx % HEAD_DIM, key = k0 + r;
            if (key < keys) {
                const size_t off = ((size_t)key * kv_heads + kvh) * HEAD_DIM + d;
                ks[idx] = k[off];
                vs[idx] = v[off];
            }
        }
        __syncthreads();
        if (active) {
            const int kend = min(TILE, prefix + row + 1 - k0);
            for (int j = 0; j < kend; j++) {
                float dot = 0.f;
                for (int d = 0; d < HEAD_DIM; d++) dot += qv[d] * bf2f(ks[j * HEAD_DIM + d]);
                const float mn = fmaxf(m, dot);
                const float c = __expf(m - mn), p = __expf(dot - mn);
                l = l * c + p;
                for (int d = 0; d < HEAD_DIM; d++) acc[d] = acc[d] * c + p * bf2f(vs[j * HEAD_DIM + d]);
                m = mn;
            }
        }
        __syncthreads();
    }
    if (active) {
        for (int d = 0; d < HEAD_DIM; d++) out[qoff + d] = f2bf(acc[d] / l);
    }
}
