//! kNN protocol timing: 10 random 90%/10% splits, exact distance-weighted
//! Euclidean kNN (k = 5) on seeded data with 50% zeros.
//! `cargo bench --bench knn`; set GEODYN_BENCH_N / GEODYN_BENCH_D for the full
//! 10,000 x 39,800 check (defaults are small so the bench stays quick).

use criterion::{criterion_group, criterion_main, Criterion};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn knn(c: &mut Criterion) {
    let n = env("GEODYN_BENCH_N", 2_000);
    let d = env("GEODYN_BENCH_D", 784);
    let mut g = c.benchmark_group("knn_protocol");
    g.sample_size(10);
    g.bench_function(format!("n{n}_d{d}"), |b| {
        b.iter_custom(|iters| {
            let secs: f64 = (0..iters)
                .map(|_| geodyn::eval::knn_timing_demo(n, d))
                .sum();
            std::time::Duration::from_secs_f64(secs)
        })
    });
    g.finish();
}

criterion_group!(benches, knn);
criterion_main!(benches);
