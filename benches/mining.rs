//! Mining throughput: header hashes per second on one and on two threads, per SHA-256 backend.
//!
//! Each thread scans its own nonce range of a header at an impossible difficulty, exactly as a
//! miner thread does between two looks at the cancel flag.
//!
//! Figures (`cargo bench --bench mining`, AMD EPYC with SHA-NI, 2 cores, shared machine):
//! FIGURES

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
