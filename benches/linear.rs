//! Linear protocol timing: 10 random 90%/10% splits, one-vs-rest ridge and
//! linear SVM with their default lambda grids and 3-fold CV, on seeded data with
//! 50% zeros (the recipe of the kNN timing demo, so the numbers compare).
//! `cargo bench --bench linear`; set GEODYN_BENCH_N / GEODYN_BENCH_D for other
//! sizes (e.g. 10,000 x 784 for MNIST pixels; defaults keep the bench quick).
//! Data and splits are built once, outside the timed loop.

use criterion::{criterion_group, criterion_main, Criterion};
use geodyn::eval::{evaluate_linear, random_splits, LinearKind, LinearParams};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const N_CLASSES: usize = 10;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Seeded n x d data, half zeros (like weight-change embeddings): row i from
/// `ChaCha8Rng(seed)` on stream i; labels cycle through the classes.
fn demo_data(n: usize, d: usize, seed: u64) -> (Array2<f32>, Vec<u8>) {
    let mut x = Array2::<f32>::zeros((n, d));
    for (i, mut row) in x.rows_mut().into_iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(i as u64);
        row.iter_mut().for_each(|v| {
            let u: f32 = rng.gen();
            *v = if u < 0.5 { 0.0 } else { 2.0 * u - 1.0 };
        });
    }
    let labels = (0..n).map(|i| (i % N_CLASSES) as u8).collect();
    (x, labels)
}

fn linear(c: &mut Criterion) {
    let n = env("GEODYN_BENCH_N", 1_000).max(20);
    let d = env("GEODYN_BENCH_D", 256).max(1);
    let (x, labels) = demo_data(n, d, 0x5eed);
    let n_query = n / 10;
    let splits = random_splits(n, n - n_query, n_query, 10, 1).expect("sizes valid");
    let mut g = c.benchmark_group("linear_protocol");
    g.sample_size(10);
    for kind in [LinearKind::Ridge, LinearKind::Svm] {
        let params = match kind {
            LinearKind::Ridge => LinearParams::ridge(),
            LinearKind::Svm => LinearParams::svm(),
        };
        g.bench_function(format!("{kind}_n{n}_d{d}"), |b| {
            b.iter(|| {
                evaluate_linear(x.view(), &labels, N_CLASSES, &splits, &params)
                    .expect("valid bench input")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, linear);
criterion_main!(benches);
