//! Digest-tree throughput: updates per second on the hashbrown backend, with and without a sketch,
//! a from-scratch build of 1,000,000 keys, and decoding a sketch.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use tidings::data::{
    alloc_tree, AllocData, DataConfig, WireEntry, WireValue, DEFAULT_SKETCH_CAPACITY,
};
use tidings::store::HashTable;
use tidings::tree::{depth_for, Tree};
use tidings::{ClusterId, DigestKey, Instant, NodeId, Version};

const KEYS: u64 = 1_000_000;

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

/// A map of `n` keys whose tree keeps a sketch of `capacity` differing keys (0: none).
fn build(n: u64, capacity: usize) -> AllocData {
    let dk = DigestKey::from_cluster(ClusterId(*b"bnch"));
    let mut m = AllocData::new(
        DataConfig::default(),
        NodeId(1),
        0,
        dk,
        HashTable::with_limit(usize::MAX),
        alloc_tree(depth_for(n, 16), capacity),
    )
    .unwrap();
    for i in 0..n {
        let e = WireEntry {
            key: &key(i),
            version: Version::new(i + 1, 2, 0),
            value: WireValue::Live(b"0123456789abcdef"),
        };
        m.merge(Instant::ZERO, &e).unwrap();
    }
    m
}

fn updates(c: &mut Criterion) {
    let dk = DigestKey::from_cluster(ClusterId(*b"bnch"));
    let mut g = c.benchmark_group("tree_update");
    g.throughput(Throughput::Elements(1));

    // The tree alone: re-version one entry (remove old digest, add new) in a depth-4 tree.
    let mut tree = Tree::new(vec![0u64; tidings::tree::tree_size(4)]).unwrap();
    let mut i = 0u64;
    g.bench_function("digest_tree_replace_depth4", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let old = dk.entry_digest(h, Version::new(i, 1, 0));
            let new = dk.entry_digest(h, Version::new(i + 1, 1, 0));
            tree.replace(black_box(h), old, new);
        })
    });

    // A whole local write: key hash, table lookup, new version, digest, tree update, and the
    // sketch (the default capacity, 16 keys: 33 syndromes), beside the same write without one.
    for (name, capacity) in [
        ("data_set_existing_key_1m", DEFAULT_SKETCH_CAPACITY),
        ("data_set_existing_key_1m_no_sketch", 0),
    ] {
        let mut map = build(KEYS, capacity);
        let mut n = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                n = (n + 7919) % KEYS;
                map.set(Instant::ZERO, &key(n), b"fedcba9876543210")
                    .unwrap();
            })
        });
    }
    g.finish();
}

fn full_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree_build");
    g.sample_size(10);
    g.throughput(Throughput::Elements(KEYS));
    g.bench_function("build_1m_keys", |b| {
        b.iter_batched(
            || (),
            |_| black_box(build(KEYS, DEFAULT_SKETCH_CAPACITY)).root(),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// Decoding a difference of a full sketch: 16 differing keys in 33 syndromes, and 4.
fn sketch_decode(c: &mut Criterion) {
    use tidings::sketch::{add, decode, syndromes_for, Difference};
    let mut g = c.benchmark_group("sketch_decode");
    for d in [4u64, 16] {
        let mut s = vec![0u64; syndromes_for(16)];
        for i in 1..=d {
            add(
                &mut s,
                i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                i.wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1,
            );
        }
        let mut out = [Difference::default(); 16];
        let mut seed = 0u64;
        g.bench_function(format!("differences_{d}_of_capacity_16"), |b| {
            b.iter(|| {
                seed += 1;
                assert_eq!(decode(black_box(&s), seed, &mut out), Ok(d as usize));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, updates, full_build, sketch_decode);
criterion_main!(benches);
