//! Proof of work: the nonce search and the multi-threaded miner.
//!
//! The 92-byte header spans two SHA-256 blocks. The first 64 bytes (height, parent, most of the
//! transaction root) never change while mining, so their compression (the midstate) is computed
//! once per attempt; each nonce then costs one compression of the final padded block, and only
//! the first state word is looked at unless it already has enough leading zeros. A candidate is
//! always confirmed with [`BlockHeader::block_hash`] before it is reported, so a found block
//! passes [`meets_difficulty`] by construction.
//!
//! On x86-64 CPUs with the SHA extensions the compression runs on them (chosen at run time, once
//! per attempt), several nonces interleaved; elsewhere `sha2`'s compression function is used.
//! Mining runs one thread per core on disjoint nonce ranges and stops within milliseconds of a
//! cancel; it never runs on the caller's thread unless the caller asks for [`mine_blocking`].

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use super::block::{meets_difficulty, Block, BlockHeader};

/// Nonces scanned between two looks at the cancel flags: about a millisecond with SHA-NI.
const CHUNK: u64 = 1 << 16;

/// Offset of the nonce inside the final SHA-256 block.
const TAIL_NONCE_OFFSET: usize = BlockHeader::NONCE_OFFSET - 64;

/// Header bytes that fall into the final SHA-256 block.
const TAIL_LEN: usize = BlockHeader::ENCODED_LEN - 64;

// The midstate trick needs the nonce (and the padding) entirely in the second block.
const _: () = assert!(BlockHeader::ENCODED_LEN > 64 && TAIL_LEN + 9 <= 64);
const _: () = assert!(BlockHeader::NONCE_OFFSET + 8 == BlockHeader::ENCODED_LEN);

/// SHA-256 initial state.
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256 round constants.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Which SHA-256 compression the nonce search uses; [`HashBackend::detect`] picks the fastest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashBackend {
    /// x86 SHA extensions, several nonces interleaved: the fastest where the CPU has them.
    ShaNiInterleaved,
    /// x86 SHA extensions, one nonce at a time: kept to measure what interleaving buys.
    ShaNi,
    /// `sha2`'s compression function: runs on every CPU.
    Portable,
}

impl HashBackend {
    /// The fastest backend this CPU can run.
    pub fn detect() -> Self {
        if Self::ShaNiInterleaved.is_available() {
            Self::ShaNiInterleaved
        } else {
            Self::Portable
        }
    }

    /// Whether this CPU can run the backend; an unavailable one is replaced by `Portable`.
    pub fn is_available(self) -> bool {
        match self {
            Self::Portable => true,
            Self::ShaNi | Self::ShaNiInterleaved => shani_available(),
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn shani_available() -> bool {
    x86::available()
}

#[cfg(not(target_arch = "x86_64"))]
fn shani_available() -> bool {
    false
}

/// `bytes` read as big-endian 32-bit words, as SHA-256 reads its message and writes its digest.
#[cfg_attr(not(any(target_arch = "x86_64", test)), allow(dead_code))]
fn be_words<const N: usize>(bytes: &[u8]) -> [u32; N] {
    let mut w = [0u32; N];
    for (word, b) in w.iter_mut().zip(bytes.chunks_exact(4)) {
        *word = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    }
    w
}

/// Everything a thread needs to test nonces for one header: the midstate and the final block.
struct Template {
    /// The header being mined; its nonce is ignored.
    header: BlockHeader,
    /// The SHA-256 state after the first 64 header bytes.
    midstate: [u32; 8],
    /// The final padded block with the nonce bytes zeroed.
    tail: [u8; 64],
    /// Largest first state word that may still meet the difficulty.
    threshold: u32,
    /// The backend, after the availability check.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    backend: HashBackend,
    /// Nonce-independent SHA-NI work, present when the backend uses SHA-NI.
    #[cfg(target_arch = "x86_64")]
    pre: Option<x86::Pre>,
}

impl Template {
    /// Splits `header` into midstate and final block, checking CPU support for `backend` once.
    fn new(header: &BlockHeader, backend: HashBackend) -> Self {
        let backend = if backend.is_available() {
            backend
        } else {
            HashBackend::Portable
        };
        let bytes = header.encoded();
        let mut first = [0u8; 64];
        first.copy_from_slice(&bytes[..64]);
        let mut tail = [0u8; 64];
        tail[..TAIL_LEN].copy_from_slice(&bytes[64..]);
        tail[TAIL_NONCE_OFFSET..TAIL_LEN].fill(0);
        tail[TAIL_LEN] = 0x80;
        let bit_len = (BlockHeader::ENCODED_LEN as u64) * 8;
        tail[56..].copy_from_slice(&bit_len.to_be_bytes());

        let need = header.difficulty.min(32);
        let threshold = u32::MAX.checked_shr(need).unwrap_or(0);
        let mut midstate = H0;
        #[cfg(target_arch = "x86_64")]
        let pre = match backend {
            HashBackend::Portable => {
                sha2::block_api::compress256(&mut midstate, &[first]);
                None
            }
            HashBackend::ShaNi | HashBackend::ShaNiInterleaved => {
                // SAFETY: `backend` is a SHA-NI one only after `is_available` said so above.
                unsafe {
                    x86::compress(&mut midstate, &first);
                    Some(x86::Pre::new(&midstate, &tail, threshold))
                }
            }
        };
        #[cfg(not(target_arch = "x86_64"))]
        sha2::block_api::compress256(&mut midstate, &[first]);
        Self {
            header: header.clone(),
            midstate,
            tail,
            threshold,
            backend,
            #[cfg(target_arch = "x86_64")]
            pre,
        }
    }

    /// True when `nonce` really meets the difficulty: the reference hash has the last word.
    fn confirm(&self, nonce: u64) -> bool {
        let mut h = self.header.clone();
        h.nonce = nonce;
        meets_difficulty(&h.block_hash(), h.difficulty)
    }

    /// The first nonce in `start..start + count` (wrapping) that meets the difficulty.
    fn scan(&self, start: u64, count: u64) -> Option<u64> {
        #[cfg(target_arch = "x86_64")]
        if let Some(pre) = &self.pre {
            let accept = |n| self.confirm(n);
            // SAFETY: `pre` exists only when `Template::new` found SHA-NI available.
            return unsafe {
                match self.backend {
                    HashBackend::ShaNi => x86::scan::<1>(pre, start, count, accept),
                    _ => x86::scan::<{ x86::LANES }>(pre, start, count, accept),
                }
            };
        }
        self.scan_portable(start, count)
    }

    fn scan_portable(&self, start: u64, count: u64) -> Option<u64> {
        let mut block = self.tail;
        for i in 0..count {
            let nonce = start.wrapping_add(i);
            block[TAIL_NONCE_OFFSET..TAIL_LEN].copy_from_slice(&nonce.to_le_bytes());
            let mut state = self.midstate;
            sha2::block_api::compress256(&mut state, &[block]);
            if state[0] <= self.threshold && self.confirm(nonce) {
                return Some(nonce);
            }
        }
        None
    }
}

/// The first nonce in `start..start + count` (wrapping past `u64::MAX`) whose header meets its
/// difficulty, on this thread with the fastest backend; for benchmarks, tests and tools.
pub fn scan_nonces(header: &BlockHeader, start: u64, count: u64) -> Option<u64> {
    scan_nonces_with(HashBackend::detect(), header, start, count)
}

/// [`scan_nonces`] with a chosen backend (`Portable` if this CPU cannot run it), so benchmarks
/// can compare them.
pub fn scan_nonces_with(
    backend: HashBackend,
    header: &BlockHeader,
    start: u64,
    count: u64,
) -> Option<u64> {
    Template::new(header, backend).scan(start, count)
}

/// The number of mining threads to use by default: one per available core.
pub fn default_threads() -> usize {
    thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Searches `len` nonces from `start` in chunks, looking at the flags between chunks; when the
/// range is exhausted, moves the timestamp on by 1 ms and searches it again.
fn mine_range(
    mut header: BlockHeader,
    start: u64,
    len: u64,
    backend: HashBackend,
    stop: &AtomicBool,
    cancel: &AtomicBool,
) -> Option<BlockHeader> {
    loop {
        let template = Template::new(&header, backend);
        let mut next = start;
        let mut remaining = len;
        while remaining > 0 {
            if stop.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed) {
                return None;
            }
            let n = remaining.min(CHUNK);
            if let Some(nonce) = template.scan(next, n) {
                header.nonce = nonce;
                return Some(header);
            }
            next = next.wrapping_add(n);
            remaining -= n;
        }
        header.timestamp = header.timestamp.saturating_add(1);
    }
}

/// Mines `block` on `threads` threads (at least one) on the calling thread's time, until a nonce
/// is found (`Some`, the block with its nonce and possibly a later timestamp) or `cancel` is set
/// (`None`).
///
/// # Panics
/// If the operating system cannot start a thread.
pub fn mine_blocking(block: Block, threads: usize, cancel: &AtomicBool) -> Option<Block> {
    mine_blocking_with(HashBackend::detect(), block, threads, cancel)
}

/// [`mine_blocking`] with a chosen backend.
///
/// # Panics
/// If the operating system cannot start a thread.
pub fn mine_blocking_with(
    backend: HashBackend,
    mut block: Block,
    threads: usize,
    cancel: &AtomicBool,
) -> Option<Block> {
    let threads = threads.max(1);
    let backend = if backend.is_available() {
        backend
    } else {
        HashBackend::Portable
    };
    let span = u64::MAX / threads as u64;
    let stop = AtomicBool::new(false);
    let found = thread::scope(|s| {
        let workers: Vec<_> = (0..threads as u64)
            .map(|i| {
                let header = block.header.clone();
                let stop = &stop;
                s.spawn(move || {
                    let found = mine_range(header, i * span, span, backend, stop, cancel);
                    if found.is_some() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    found
                })
            })
            .collect();
        let results: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        let mut found = None;
        for result in results {
            match result {
                Ok(Some(header)) => found = found.or(Some(header)),
                Ok(None) => {}
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        found
    });
    found.map(|header| {
        block.header = header;
        block
    })
}

/// How a mining attempt ended.
#[derive(Debug)]
pub enum MiningOutcome {
    /// A nonce was found: the block is valid proof of work.
    Found(Block),
    /// Cancelled before a nonce was found.
    Cancelled,
}

/// A running mining attempt; dropping it does not stop it, `cancel` does.
#[derive(Debug)]
pub struct MiningHandle {
    cancel: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl MiningHandle {
    /// Stops the attempt within milliseconds; `on_done` then receives `Cancelled`.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Whether the attempt has ended and `on_done` has returned.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Blocks until the attempt has ended and `on_done` has returned, for orderly shutdown;
    /// a panic in `on_done` is passed on.
    pub fn wait(self) {
        if let Err(panic) = self.thread.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Starts mining `block` on `threads` threads and returns at once; `on_done` runs on a miner
/// thread with the outcome.
///
/// # Panics
/// If the operating system cannot start a thread.
pub fn start_mining(
    block: Block,
    threads: usize,
    on_done: impl FnOnce(MiningOutcome) + Send + 'static,
) -> MiningHandle {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    let thread = thread::Builder::new()
        .name("miner".into())
        .spawn(move || {
            let outcome = match mine_blocking(block, threads, &flag) {
                Some(block) => MiningOutcome::Found(block),
                None => MiningOutcome::Cancelled,
            };
            on_done(outcome);
        })
        .unwrap_or_else(|e| panic!("cannot start the miner thread: {e}"));
    MiningHandle { cancel, thread }
}

/// SHA-256 on the x86 SHA extensions.
///
/// The state lives in two registers in the order `sha256rnds2` wants: ABEF (lane 3 = A) and
/// CDGH. Each group of four rounds adds four schedule words to their round constants, runs two
/// double rounds and advances the schedule with `sha256msg1`/`sha256msg2`.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_extract_epi32, _mm_set_epi32,
        _mm_setzero_si128, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32,
        _mm_shuffle_epi32,
    };

    use super::{be_words, K};

    /// Nonces hashed side by side by the interleaved backend.
    pub(super) const LANES: usize = 2;

    /// Whether the CPU has everything the functions below are compiled for.
    pub(super) fn available() -> bool {
        is_x86_feature_detected!("sha")
            && is_x86_feature_detected!("sse2")
            && is_x86_feature_detected!("ssse3")
            && is_x86_feature_detected!("sse4.1")
    }

    /// A SHA-256 state in the register layout of `sha256rnds2`.
    #[derive(Clone, Copy)]
    pub(super) struct Regs {
        abef: __m128i,
        cdgh: __m128i,
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn vec4(w: &[u32]) -> __m128i {
        // Lane 0 holds w[0]; `_mm_set_epi32` takes lanes from high to low.
        _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32)
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn to_regs(s: &[u32; 8]) -> Regs {
        Regs {
            abef: vec4(&[s[5], s[4], s[1], s[0]]),
            cdgh: vec4(&[s[7], s[6], s[3], s[2]]),
        }
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn from_regs(r: Regs) -> [u32; 8] {
        let x = |v: __m128i, lane: i32| -> u32 {
            match lane {
                0 => _mm_extract_epi32::<0>(v) as u32,
                1 => _mm_extract_epi32::<1>(v) as u32,
                2 => _mm_extract_epi32::<2>(v) as u32,
                _ => _mm_extract_epi32::<3>(v) as u32,
            }
        };
        [
            x(r.abef, 3),
            x(r.abef, 2),
            x(r.cdgh, 3),
            x(r.cdgh, 2),
            x(r.abef, 1),
            x(r.abef, 0),
            x(r.cdgh, 1),
            x(r.cdgh, 0),
        ]
    }

    /// Rounds `4G..4G+4` on every lane: `m[l][G % 4]` holds the lane's schedule words for them;
    /// the schedule words twelve and sixteen rounds ahead are advanced on the way.
    macro_rules! group {
        ($g:expr, $r:ident, $m:ident) => {{
            const G: usize = $g;
            let k = _mm_set_epi32(
                K[4 * G + 3] as i32,
                K[4 * G + 2] as i32,
                K[4 * G + 1] as i32,
                K[4 * G] as i32,
            );
            for l in 0..$r.len() {
                let cur = $m[l][G % 4];
                let wk = _mm_add_epi32(cur, k);
                $r[l].cdgh = _mm_sha256rnds2_epu32($r[l].cdgh, $r[l].abef, wk);
                if (3..=14).contains(&G) {
                    let t = _mm_alignr_epi8::<4>(cur, $m[l][(G + 3) % 4]);
                    let next = _mm_add_epi32($m[l][(G + 1) % 4], t);
                    $m[l][(G + 1) % 4] = _mm_sha256msg2_epu32(next, cur);
                }
                $r[l].abef =
                    _mm_sha256rnds2_epu32($r[l].abef, $r[l].cdgh, _mm_shuffle_epi32::<0x0E>(wk));
                if (1..=12).contains(&G) {
                    $m[l][(G + 3) % 4] = _mm_sha256msg1_epu32($m[l][(G + 3) % 4], cur);
                }
            }
        }};
    }

    /// One SHA-256 compression of `block` into `state`, on SHA-NI.
    ///
    /// # Safety
    /// The CPU must support the enabled features ([`available`]).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
        let w: [u32; 16] = be_words(block);
        let mut r = [to_regs(state)];
        let mut m = [[
            vec4(&w[0..4]),
            vec4(&w[4..8]),
            vec4(&w[8..12]),
            vec4(&w[12..16]),
        ]];
        group!(0, r, m);
        group!(1, r, m);
        group!(2, r, m);
        group!(3, r, m);
        group!(4, r, m);
        group!(5, r, m);
        group!(6, r, m);
        group!(7, r, m);
        group!(8, r, m);
        group!(9, r, m);
        group!(10, r, m);
        group!(11, r, m);
        group!(12, r, m);
        group!(13, r, m);
        group!(14, r, m);
        group!(15, r, m);
        let out = from_regs(r[0]);
        for (s, o) in state.iter_mut().zip(out) {
            *s = s.wrapping_add(o);
        }
    }

    /// The nonce-independent part of the final block's compression, computed once per header.
    ///
    /// Of the final block's sixteen words only W5 and W6 (the nonce) vary, so rounds 0..4 and
    /// the schedule words W16..W19 (and the partial sums that only involve fixed words) are
    /// precomputed.
    #[derive(Clone, Copy)]
    pub(super) struct Pre {
        /// The midstate, to add back at the end.
        mid: [u32; 8],
        /// The state after rounds 0..4.
        r4: Regs,
        /// W4 and W7, the fixed words around the nonce.
        w4: u32,
        w7: u32,
        /// W8..W12 and W12..W16 as they enter rounds 8..16, with their constants added.
        wk2: __m128i,
        wk3: __m128i,
        /// W16..W20, plus constants.
        m0: __m128i,
        wk4: __m128i,
        /// The raw W8..W12 the schedule of W20.. needs.
        m2_raw: __m128i,
        /// `alignr(W16..W20, W12..W16)`: W13..W17, added into W20..W24.
        t4: __m128i,
        /// The schedule registers 2 and 3 after round 16 (they do not depend on the nonce).
        m2: __m128i,
        m3: __m128i,
        /// Largest final first word that may meet the difficulty.
        threshold: u32,
    }

    impl Pre {
        /// # Safety
        /// The CPU must support the enabled features ([`available`]).
        #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
        pub(super) unsafe fn new(mid: &[u32; 8], tail: &[u8; 64], threshold: u32) -> Self {
            let w: [u32; 16] = be_words(tail);
            // Run the first five groups on one lane with the nonce words at zero: everything
            // kept from them below involves only W4 of the nonce vector, which is fixed.
            let mut r = [to_regs(mid)];
            let mut m = [[
                vec4(&w[0..4]),
                vec4(&w[4..8]),
                vec4(&w[8..12]),
                vec4(&w[12..16]),
            ]];
            let m2_raw = m[0][2];
            let m3_raw = m[0][3];
            group!(0, r, m);
            let r4 = r[0];
            group!(1, r, m);
            group!(2, r, m);
            group!(3, r, m);
            let m0 = m[0][0];
            let add_k = |v: __m128i, g: usize| {
                _mm_add_epi32(
                    v,
                    vec4(&[K[4 * g], K[4 * g + 1], K[4 * g + 2], K[4 * g + 3]]),
                )
            };
            Self {
                mid: *mid,
                r4,
                w4: w[4],
                w7: w[7],
                wk2: add_k(m2_raw, 2),
                wk3: add_k(m3_raw, 3),
                m0,
                wk4: add_k(m0, 4),
                m2_raw,
                t4: _mm_alignr_epi8::<4>(m0, m3_raw),
                m2: m[0][2],
                m3: _mm_sha256msg1_epu32(m3_raw, m0),
                threshold,
            }
        }
    }

    /// The final-block compression (without the midstate added) for `N` nonces side by side.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    #[inline]
    fn hash_lanes<const N: usize>(p: &Pre, nonces: &[u64; N]) -> [Regs; N] {
        let mut r = [p.r4; N];
        let mut m = [[_mm_setzero_si128(); 4]; N];
        let k1 = vec4(&K[4..8]);
        for l in 0..N {
            // The nonce is little endian in bytes 20..28 of the block: W5 and W6 big endian.
            let w5 = (nonces[l] as u32).swap_bytes();
            let w6 = ((nonces[l] >> 32) as u32).swap_bytes();
            let m1 = vec4(&[p.w4, w5, w6, p.w7]);
            // Rounds 4..8.
            let wk = _mm_add_epi32(m1, k1);
            r[l].cdgh = _mm_sha256rnds2_epu32(r[l].cdgh, r[l].abef, wk);
            r[l].abef = _mm_sha256rnds2_epu32(r[l].abef, r[l].cdgh, _mm_shuffle_epi32::<0x0E>(wk));
            // Rounds 8..12.
            r[l].cdgh = _mm_sha256rnds2_epu32(r[l].cdgh, r[l].abef, p.wk2);
            r[l].abef =
                _mm_sha256rnds2_epu32(r[l].abef, r[l].cdgh, _mm_shuffle_epi32::<0x0E>(p.wk2));
            let m1 = _mm_sha256msg1_epu32(m1, p.m2_raw);
            // Rounds 12..16.
            r[l].cdgh = _mm_sha256rnds2_epu32(r[l].cdgh, r[l].abef, p.wk3);
            r[l].abef =
                _mm_sha256rnds2_epu32(r[l].abef, r[l].cdgh, _mm_shuffle_epi32::<0x0E>(p.wk3));
            // Rounds 16..20; W20..W24 from the nonce words.
            r[l].cdgh = _mm_sha256rnds2_epu32(r[l].cdgh, r[l].abef, p.wk4);
            let m1 = _mm_sha256msg2_epu32(_mm_add_epi32(m1, p.t4), p.m0);
            r[l].abef =
                _mm_sha256rnds2_epu32(r[l].abef, r[l].cdgh, _mm_shuffle_epi32::<0x0E>(p.wk4));
            m[l] = [p.m0, m1, p.m2, p.m3];
        }
        group!(5, r, m);
        group!(6, r, m);
        group!(7, r, m);
        group!(8, r, m);
        group!(9, r, m);
        group!(10, r, m);
        group!(11, r, m);
        group!(12, r, m);
        group!(13, r, m);
        group!(14, r, m);
        group!(15, r, m);
        r
    }

    /// The full SHA-256 state of the header with `nonces[l]`, for each lane; for tests.
    ///
    /// # Safety
    /// The CPU must support the enabled features ([`available`]).
    #[cfg(test)]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn final_states<const N: usize>(p: &Pre, nonces: &[u64; N]) -> [[u32; 8]; N] {
        let regs = hash_lanes(p, nonces);
        let mut out = [[0u32; 8]; N];
        for (o, r) in out.iter_mut().zip(regs) {
            *o = from_regs(r);
            for (w, mid) in o.iter_mut().zip(p.mid) {
                *w = w.wrapping_add(mid);
            }
        }
        out
    }

    /// The first nonce of `start..start + count` (wrapping) whose first hash word is under the
    /// threshold and that `accept` confirms, hashing `N` nonces at a time.
    ///
    /// # Safety
    /// The CPU must support the enabled features ([`available`]).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn scan<const N: usize>(
        p: &Pre,
        start: u64,
        count: u64,
        accept: impl Fn(u64) -> bool,
    ) -> Option<u64> {
        let mut base = start;
        for _ in 0..count / N as u64 {
            let nonces: [u64; N] = core::array::from_fn(|l| base.wrapping_add(l as u64));
            let regs = hash_lanes(p, &nonces);
            for (r, nonce) in regs.iter().zip(nonces) {
                let a = (_mm_extract_epi32::<3>(r.abef) as u32).wrapping_add(p.mid[0]);
                if a <= p.threshold && accept(nonce) {
                    return Some(nonce);
                }
            }
            base = base.wrapping_add(N as u64);
        }
        for _ in 0..count % N as u64 {
            let [r] = hash_lanes(p, &[base]);
            let a = (_mm_extract_epi32::<3>(r.abef) as u32).wrapping_add(p.mid[0]);
            if a <= p.threshold && accept(base) {
                return Some(base);
            }
            base = base.wrapping_add(1);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::ledger::block::compute_tx_root;
    use crate::ledger::hash::{Address, BlockHash, TxRoot};
    use crate::ledger::params::NetworkParams;
    use crate::ledger::transaction::Transaction;

    fn random_header(rng: &mut StdRng) -> BlockHeader {
        BlockHeader {
            height: rng.gen(),
            prev_hash: BlockHash(rng.gen()),
            tx_root: TxRoot(rng.gen()),
            timestamp: rng.gen(),
            difficulty: rng.gen_range(0..70),
            nonce: 0,
        }
    }

    /// A nonce near the interesting edges (the 32-bit halves) or anywhere.
    fn random_nonce(rng: &mut StdRng) -> u64 {
        match rng.gen_range(0..4) {
            0 => u64::from(u32::MAX) - rng.gen_range(0..4),
            1 => u64::MAX - rng.gen_range(0..4),
            _ => rng.gen(),
        }
    }

    fn reference(header: &BlockHeader, nonce: u64) -> [u32; 8] {
        let mut h = header.clone();
        h.nonce = nonce;
        be_words(&h.block_hash().0)
    }

    /// A real block on the test network at `difficulty`: coinbase, root, parent all correct.
    fn candidate(params: &NetworkParams) -> Block {
        let genesis = params.genesis();
        let coinbase = Transaction::coinbase(1, Address([7; 20]), 50);
        Block {
            header: BlockHeader {
                height: 1,
                prev_hash: genesis.block_hash(),
                tx_root: compute_tx_root(&[coinbase.compute_txid()]),
                timestamp: genesis.header.timestamp + 1,
                difficulty: params.difficulty,
                nonce: 0,
            },
            transactions: vec![coinbase],
        }
    }

    #[test]
    fn portable_midstate_and_final_block_equal_the_block_hash() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..300 {
            let header = random_header(&mut rng);
            let t = Template::new(&header, HashBackend::Portable);
            for _ in 0..4 {
                let nonce = random_nonce(&mut rng);
                let mut block = t.tail;
                block[TAIL_NONCE_OFFSET..TAIL_LEN].copy_from_slice(&nonce.to_le_bytes());
                let mut state = t.midstate;
                sha2::block_api::compress256(&mut state, &[block]);
                assert_eq!(state, reference(&header, nonce));
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sha_ni_compression_equals_sha2_on_random_blocks() {
        if !x86::available() {
            return;
        }
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..500 {
            let block: [u8; 64] = core::array::from_fn(|_| rng.gen());
            let start: [u32; 8] = rng.gen();
            let mut ours = start;
            let mut theirs = start;
            // SAFETY: checked `available` above.
            unsafe { x86::compress(&mut ours, &block) };
            sha2::block_api::compress256(&mut theirs, &[block]);
            assert_eq!(ours, theirs);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sha_ni_single_and_interleaved_lanes_equal_the_block_hash() {
        if !x86::available() {
            return;
        }
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..300 {
            let header = random_header(&mut rng);
            let t = Template::new(&header, HashBackend::ShaNiInterleaved);
            let pre = t.pre.as_ref().expect("sha-ni template has precomputation");
            for _ in 0..4 {
                let a = random_nonce(&mut rng);
                let b = a.wrapping_add(1);
                let c = random_nonce(&mut rng);
                // SAFETY: checked `available` above.
                let (one, two, four) = unsafe {
                    (
                        x86::final_states(pre, &[a]),
                        x86::final_states(pre, &[a, b]),
                        x86::final_states(pre, &[c, a, b, c.wrapping_add(7)]),
                    )
                };
                assert_eq!(one[0], reference(&header, a));
                assert_eq!(two, [reference(&header, a), reference(&header, b)]);
                assert_eq!(four[0], reference(&header, c));
                assert_eq!(four[3], reference(&header, c.wrapping_add(7)));
            }
        }
    }

    #[test]
    fn every_backend_finds_the_same_first_nonce_and_it_meets_the_difficulty() {
        let mut rng = StdRng::seed_from_u64(4);
        for _ in 0..20 {
            let mut header = random_header(&mut rng);
            header.difficulty = rng.gen_range(0..9);
            // Odd starts and counts exercise the lanes' remainder and the 2^32 carry.
            let start = u64::from(u32::MAX) - rng.gen_range(0..300);
            let count = 3001;
            let found = scan_nonces_with(HashBackend::Portable, &header, start, count);
            let nonce = found.expect("a nonce at difficulty < 9 within 3001 tries");
            header.nonce = nonce;
            assert!(meets_difficulty(&header.block_hash(), header.difficulty));
            for backend in [HashBackend::ShaNi, HashBackend::ShaNiInterleaved] {
                assert_eq!(scan_nonces_with(backend, &header, start, count), found);
            }
            // Nothing before it qualifies.
            for earlier in start..nonce {
                header.nonce = earlier;
                assert!(!meets_difficulty(&header.block_hash(), header.difficulty));
            }
        }
    }

    #[test]
    fn an_impossible_difficulty_finds_nothing_on_any_backend() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut header = random_header(&mut rng);
        header.difficulty = 200;
        for backend in [
            HashBackend::Portable,
            HashBackend::ShaNi,
            HashBackend::ShaNiInterleaved,
        ] {
            assert_eq!(scan_nonces_with(backend, &header, 0, 5000), None);
        }
    }

    #[test]
    fn an_exhausted_range_moves_the_timestamp_on_and_keeps_the_nonce_in_range() {
        let mut rng = StdRng::seed_from_u64(6);
        let mut header = random_header(&mut rng);
        header.difficulty = 7;
        header.timestamp = 1_000;
        let never = AtomicBool::new(false);
        for backend in [HashBackend::Portable, HashBackend::ShaNiInterleaved] {
            let found = mine_range(header.clone(), 500, 3, backend, &never, &never)
                .expect("found within a few hundred timestamps");
            assert!(found.timestamp > header.timestamp);
            assert!((500..503).contains(&found.nonce));
            assert!(meets_difficulty(&found.block_hash(), 7));
            assert_eq!(found.tx_root, header.tx_root);
            assert_eq!(found.prev_hash, header.prev_hash);
        }
    }

    #[test]
    fn mining_blocking_on_two_threads_finds_a_block_that_passes_the_structure_checks() {
        let params = NetworkParams::for_tests("pow", 10);
        let block = candidate(&params);
        let never = AtomicBool::new(false);
        let mined = mine_blocking(block.clone(), 2, &never).expect("not cancelled");
        assert_eq!(mined.check_structure(&params), Ok(()));
        // Only the nonce (and, after an exhausted range, the timestamp) may have changed.
        assert_eq!(mined.transactions, block.transactions);
        assert_eq!(mined.header.tx_root, block.header.tx_root);
        assert_eq!(mined.header.prev_hash, block.header.prev_hash);
    }

    #[test]
    fn start_mining_with_two_threads_reports_a_valid_block_without_blocking() {
        let params = NetworkParams::for_tests("pow", 8);
        let (tx, rx) = mpsc::channel();
        let handle = start_mining(candidate(&params), 2, move |outcome| {
            let _ = tx.send(outcome);
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(MiningOutcome::Found(block)) => {
                assert_eq!(block.check_structure(&params), Ok(()));
                assert!(meets_difficulty(&block.block_hash(), 8));
            }
            other => panic!("expected a found block, got {other:?}"),
        }
        handle.wait();
    }

    #[test]
    fn cancelling_an_impossible_attempt_reports_cancelled_promptly() {
        let params = NetworkParams::for_tests("pow", 60);
        let (tx, rx) = mpsc::channel();
        let handle = start_mining(candidate(&params), 2, move |outcome| {
            let _ = tx.send(outcome);
        });
        thread::sleep(Duration::from_millis(50));
        assert!(!handle.is_finished());
        let cancelled_at = Instant::now();
        handle.cancel();
        let outcome = rx.recv_timeout(Duration::from_secs(2));
        assert!(
            matches!(outcome, Ok(MiningOutcome::Cancelled)),
            "{outcome:?}"
        );
        assert!(cancelled_at.elapsed() < Duration::from_secs(2));
        handle.wait();
    }

    #[test]
    fn a_cancel_set_before_mining_stops_it_without_finding() {
        let params = NetworkParams::for_tests("pow", 60);
        let cancel = AtomicBool::new(true);
        assert_eq!(mine_blocking(candidate(&params), 3, &cancel), None);
    }

    #[test]
    fn default_threads_is_at_least_one() {
        assert!(default_threads() >= 1);
    }
}
