//! Mining throughput: header hashes per second on one and on two threads, per SHA-256 backend.
//!
//! Each thread scans its own nonce range of a header at an impossible difficulty, exactly as a
//! miner thread does between two looks at the cancel flag.
//!
//! Figures on a quiet machine (2026-11-21 11:30, load average 0.2, `cargo bench --bench mining`):
//! sha-ni-interleaved 66.6 M/s on 1 thread, 129.1 M/s on 2 threads (1.94x); sha-ni one lane
//! 47.1 / 89.7 M/s; portable 22.8 / 44.3 M/s.
//!
//! Earlier figures (AMD EPYC with SHA-NI, 2 cores, no SMT; the machine was shared with other builds the
//! whole time, load average 3 to 11, so wall-clock figures are lower bounds):
//!
//! `cargo bench --bench mining` (11:03, load average about 3), median throughput:
//! - sha-ni-interleaved: 1 thread 54.1 M hashes/s, 2 threads 71.4 M hashes/s (ratio 1.32, the
//!   second core was busy with other work)
//! - sha-ni (one lane): 1 thread 35.5 M/s, 2 threads 36.2 M/s
//! - portable (`sha2::block_api::compress256`, which itself uses SHA-NI on this CPU): 1 thread
//!   17.0 M/s, 2 threads 21.1 M/s
//!
//! Load-independent check: the same scans (10^8 nonces per thread) under
//! `perf stat -e task-clock`, hashes per CPU-second of each thread:
//! - sha-ni-interleaved: 66.4 M (1 thread), 66.2 M per thread (2 threads): ratio 1.99 on two
//!   free cores, so the threads share nothing that slows them down
//! - sha-ni: 47.0 M, 46.5 M per thread; portable: 22.4 M, 22.5 M per thread
//! - 3 and 4 interleaved lanes measured 63.5 M and 64.7 M, so 2 lanes are kept

use std::hint::black_box;
use std::thread;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gossipchain::ledger::hash::{BlockHash, TxRoot};
use gossipchain::ledger::pow::{scan_nonces_with, HashBackend};
use gossipchain::ledger::BlockHeader;

fn header() -> BlockHeader {
    BlockHeader {
        height: 12_345,
        prev_hash: BlockHash([0x5a; 32]),
        tx_root: TxRoot([0xc3; 32]),
        timestamp: 1_767_225_600_000,
        // Never met, so every nonce of the range is hashed.
        difficulty: 250,
        nonce: 0,
    }
}

/// Scans `per_thread` nonces on each of `threads` threads, on disjoint ranges.
fn scan(backend: HashBackend, header: &BlockHeader, threads: u64, per_thread: u64) {
    thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || black_box(scan_nonces_with(backend, header, t << 40, per_thread)));
        }
    });
}

fn mining(c: &mut Criterion) {
    let header = header();
    let mut group = c.benchmark_group("mining");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let backends = [
        ("sha-ni-interleaved", HashBackend::ShaNiInterleaved),
        ("sha-ni", HashBackend::ShaNi),
        ("portable", HashBackend::Portable),
    ];
    for (name, backend) in backends {
        if !backend.is_available() {
            eprintln!("{name}: not available on this CPU, skipped");
            continue;
        }
        let per_thread: u64 = if backend == HashBackend::Portable {
            1 << 20
        } else {
            1 << 22
        };
        for threads in [1u64, 2] {
            group.throughput(Throughput::Elements(per_thread * threads));
            group.bench_function(BenchmarkId::new(name, format!("{threads}-thread")), |b| {
                b.iter(|| scan(backend, &header, threads, per_thread))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, mining);
criterion_main!(benches);
