//! The fuzz targets of `gossipchain::fuzzing`, driven on stable so every CI run exercises them:
//! for each target, seeded random byte strings and mutations of valid encodings (bit flips,
//! interesting bytes, truncations, insertions, deletions, duplicated ranges, length prefixes and
//! counts overwritten, splices of two seeds). Any panic is a failure; the seed and the input
//! that caused it are printed so the case can become a regression test.
//!
//! The iteration counts keep the file to a few seconds in a debug build. `FUZZ_ITERATIONS`
//! overrides the number of mutated inputs per target for a longer local run.

use std::panic::{catch_unwind, AssertUnwindSafe};

use gossipchain::fuzzing::{Target, TARGETS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Mutated inputs per target.
const MUTATED: usize = 100_000;
/// Purely random inputs per target.
const RANDOM: usize = 5_000;

/// Values that sit on the edges of length prefixes, counts and enum tags.
const INTERESTING: [u64; 14] = [
    0,
    1,
    2,
    3,
    4,
    36,
    92,
    128,
    129,
    2_001,
    1 << 20,
    u32::MAX as u64,
    i64::MAX as u64,
    u64::MAX,
];

fn random_bytes(rng: &mut StdRng, max_len: usize) -> Vec<u8> {
    let len = rng.gen_range(0..=max_len);
    (0..len).map(|_| rng.gen()).collect()
}

/// One random change to `data`; `other` is another seed to splice from.
fn mutate_once(rng: &mut StdRng, data: &mut Vec<u8>, other: &[u8]) {
    let len = data.len();
    match rng.gen_range(0..9) {
        // Flip one bit.
        0 if len > 0 => {
            let i = rng.gen_range(0..len);
            data[i] ^= 1 << rng.gen_range(0..8);
        }
        // Set a byte to an edge value.
        1 if len > 0 => {
            let i = rng.gen_range(0..len);
            data[i] = [0, 1, 0x7f, 0x80, 0xff][rng.gen_range(0..5)];
        }
        // Truncate.
        2 if len > 0 => data.truncate(rng.gen_range(0..len)),
        // Insert random bytes.
        3 => {
            let at = rng.gen_range(0..=len);
            let extra = random_bytes(rng, 16);
            data.splice(at..at, extra);
        }
        // Delete a range.
        4 if len > 0 => {
            let from = rng.gen_range(0..len);
            let to = rng.gen_range(from..=len.min(from + 64));
            data.drain(from..to);
        }
        // Duplicate a range (a list element repeated, say).
        5 if len > 0 => {
            let from = rng.gen_range(0..len);
            let to = rng.gen_range(from..=len.min(from + 200));
            let copy = data[from..to].to_vec();
            let at = rng.gen_range(0..=data.len());
            data.splice(at..at, copy);
        }
        // Overwrite a u64 length prefix or a u32 tag or count with an edge value, or with the
        // value there plus or minus one.
        6 if len >= 4 => {
            let width = if len >= 8 && rng.gen() { 8 } else { 4 };
            let at = rng.gen_range(0..=len - width);
            let mut old = [0u8; 8];
            old[..width].copy_from_slice(&data[at..at + width]);
            let old = u64::from_le_bytes(old);
            let value = match rng.gen_range(0..3) {
                0 => INTERESTING[rng.gen_range(0..INTERESTING.len())],
                1 => old.wrapping_add(1),
                _ => old.wrapping_sub(1),
            };
            data[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
        }
        // Splice: the start of this input and the end of another.
        7 => {
            let keep = rng.gen_range(0..=len);
            let from = rng.gen_range(0..=other.len());
            data.truncate(keep);
            data.extend_from_slice(&other[from..]);
        }
        // Append a few bytes (trailing data).
        _ => {
            let extra = random_bytes(rng, 4);
            data.extend(extra);
        }
    }
}

/// A seed with one to four random changes.
fn mutated(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.gen_range(0..seeds.len())].clone();
    let other = &seeds[rng.gen_range(0..seeds.len())];
    for _ in 0..rng.gen_range(1..=4) {
        mutate_once(rng, &mut data, other);
    }
    data
}

/// Runs `target` on one input, turning a panic into a report naming the input.
fn run_one(target: &Target, input: &[u8], what: &str) {
    let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    if let Err(panic) = outcome {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        panic!(
            "fuzz target {} panicked on {what} ({} bytes): {message}\ninput (hex): {}",
            target.name,
            input.len(),
            hex::encode(input)
        );
    }
}

fn iterations() -> usize {
    std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MUTATED)
}

/// Seeds, then random inputs, then mutations of the seeds, for one target.
fn drive(name: &str) {
    let target = TARGETS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"));
    let seeds = (target.seeds)();
    assert!(!seeds.is_empty(), "{name} has no seeds");
    // One seed per target, fixed, so a failure replays exactly.
    let seed = name.bytes().fold(0x5eed_u64, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    let mut rng = StdRng::seed_from_u64(seed);
    for (i, input) in seeds.iter().enumerate() {
        run_one(target, input, &format!("seed {i}"));
    }
    for i in 0..RANDOM {
        let input = random_bytes(&mut rng, 256);
        run_one(
            target,
            &input,
            &format!("random input {i} (rng seed {seed})"),
        );
    }
    for i in 0..iterations() {
        let input = mutated(&mut rng, &seeds);
        run_one(target, &input, &format!("mutation {i} (rng seed {seed})"));
    }
}

#[test]
fn every_target_is_driven_here() {
    let driven = [
        "gossip_block",
        "gossip_transfer",
        "sync_request",
        "sync_response",
        "stored_block",
        "stored_undo",
        "stored_record",
        "console_line",
    ];
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(names, driven, "a new target needs a test below");
}

#[test]
fn gossip_block_survives_random_and_mutated_input() {
    drive("gossip_block");
}

#[test]
fn gossip_transfer_survives_random_and_mutated_input() {
    drive("gossip_transfer");
}

#[test]
fn sync_request_survives_random_and_mutated_input() {
    drive("sync_request");
}

#[test]
fn sync_response_survives_random_and_mutated_input() {
    drive("sync_response");
}

#[test]
fn stored_block_survives_random_and_mutated_input() {
    drive("stored_block");
}

#[test]
fn stored_undo_survives_random_and_mutated_input() {
    drive("stored_undo");
}

#[test]
fn stored_record_survives_random_and_mutated_input() {
    drive("stored_record");
}

#[test]
fn console_line_survives_random_and_mutated_input() {
    drive("console_line");
}

/// Writes each target's seeds to `fuzz/corpus/<target>/seed-<n>`, the starting corpus of
/// `cargo fuzz run`: `cargo test --test fuzz_decoders -- --ignored write_corpus_seeds`.
#[test]
#[ignore = "writes files; run by hand when the seeds change"]
fn write_corpus_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for target in TARGETS {
        let dir = root.join(target.name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in (target.seeds)().iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
        }
    }
}
