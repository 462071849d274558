//! Tests against independent answers (brute force, direct solves, hand-made cases).
#![allow(clippy::needless_range_loop)] // reference code indexes on purpose

use super::gram::Kernel;
use super::knn::knn_predict_splits;
use super::linear::{evaluate_linear_with, RidgeForm};
use super::*;
use crate::cpu_time::process_cpu_s;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn int_data(n: usize, d: usize, seed: u64) -> Array2<f32> {
    // Small integers: many exact ties, duplicates and zero rows.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Array2::from_shape_fn((n, d), |_| rng.gen_range(0..3) as f32);
    for r in [0, 7, 19] {
        x.row_mut(r).fill(0.0);
    }
    for r in 30..40 {
        let src = x.row(r - 10).to_owned();
        x.row_mut(r).assign(&src);
    }
    x
}

fn float_data(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| {
        if rng.gen_bool(0.5) {
            0.0
        } else {
            rng.gen_range(-1.0f32..1.0)
        }
    })
}

fn labels(n: usize, c: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(0..c) as u8).collect()
}

/// Straightforward O(n^2 d) kNN in f64 with a full sort.
fn brute_knn(x: &Array2<f32>, y: &[u8], nc: usize, sp: &Split, p: &KnnParams) -> Vec<u8> {
    let dist = |a: usize, b: usize| -> f64 {
        let (ra, rb) = (x.row(a), x.row(b));
        match p.metric {
            Metric::Euclidean => ra
                .iter()
                .zip(rb)
                .map(|(&u, &v)| (u as f64 - v as f64).powi(2))
                .sum::<f64>()
                .sqrt(),
            Metric::Cosine => {
                let na: f64 = ra.iter().map(|&u| (u as f64).powi(2)).sum();
                let nb: f64 = rb.iter().map(|&u| (u as f64).powi(2)).sum();
                if na == 0.0 || nb == 0.0 {
                    return 1.0;
                }
                let dot: f64 = ra.iter().zip(rb).map(|(&u, &v)| u as f64 * v as f64).sum();
                1.0 - (dot / (na * nb).sqrt()).clamp(-1.0, 1.0)
            }
        }
    };
    sp.query
        .iter()
        .map(|&q| {
            let mut all: Vec<(f64, usize)> = sp
                .reference
                .iter()
                .enumerate()
                .map(|(pos, &r)| (dist(q, r), pos))
                .collect();
            all.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let nn = &all[..p.k];
            let zero: Vec<_> = nn.iter().filter(|t| t.0 == 0.0).collect();
            let mut votes = vec![0f64; nc];
            let mut sums = vec![0f64; nc];
            for &(d, pos) in nn {
                let c = y[sp.reference[pos]] as usize;
                sums[c] += d;
                votes[c] += match p.weighting {
                    Weighting::Majority => 1.0,
                    Weighting::InverseDistance if !zero.is_empty() => {
                        if d == 0.0 {
                            1.0
                        } else {
                            0.0
                        }
                    }
                    Weighting::InverseDistance => 1.0 / d,
                };
            }
            let mut classes: Vec<usize> = (0..nc).collect();
            classes.sort_by(|&a, &b| {
                votes[b]
                    .partial_cmp(&votes[a])
                    .unwrap()
                    .then_with(|| match p.weighting {
                        Weighting::Majority => sums[a].partial_cmp(&sums[b]).unwrap(),
                        Weighting::InverseDistance => std::cmp::Ordering::Equal,
                    })
                    .then(a.cmp(&b))
            });
            classes[0] as u8
        })
        .collect()
}

#[test]
fn knn_matches_brute_force_all_variants() {
    for (di, x) in [int_data(150, 6, 3), float_data(150, 9, 4)]
        .iter()
        .enumerate()
    {
        let y = labels(150, 4, 5 + di as u64);
        let splits = random_splits(150, 110, 40, 3, 9).unwrap();
        for metric in [Metric::Euclidean, Metric::Cosine] {
            for weighting in [Weighting::Majority, Weighting::InverseDistance] {
                for k in [1, 2, 4, 7] {
                    let p = KnnParams {
                        k,
                        metric,
                        weighting,
                    };
                    let want: Vec<Vec<u8>> =
                        splits.iter().map(|s| brute_knn(x, &y, 4, s, &p)).collect();
                    let (_, got) = evaluate_knn_detailed(x.view(), &y, 4, &splits, &p).unwrap();
                    assert_eq!(got, want, "data {di} {p:?}");
                    for kernel in [Kernel::Dense, Kernel::Sparse] {
                        for cache in [true, false] {
                            let g = knn_predict_splits(x.view(), &y, 4, &splits, &p, kernel, cache);
                            assert_eq!(g, want, "data {di} {p:?} {kernel:?} cache {cache}");
                        }
                    }
                    let model = KnnClassifier::new(p.clone(), 4)
                        .fit(
                            x.select(ndarray::Axis(0), &splits[0].reference).view(),
                            &splits[0]
                                .reference
                                .iter()
                                .map(|&r| y[r])
                                .collect::<Vec<_>>(),
                        )
                        .unwrap();
                    let q = x.select(ndarray::Axis(0), &splits[0].query);
                    assert_eq!(model.predict(q.view()).unwrap(), want[0]);
                }
            }
        }
    }
}

#[test]
fn knn_tie_rules_by_hand() {
    // Reference: two identical rows of classes 1 and 0 at distance 1 from the query,
    // one class-2 row far away. k = 2 majority: 1 vote each, equal sums -> class 0.
    let x = ndarray::array![
        [0.0f32, 0.0],
        [1.0, 0.0],
        [1.0, 0.0],
        [5.0, 0.0],
        [0.0, 0.0]
    ];
    let y = [9u8, 1, 0, 2, 2];
    let y: Vec<u8> = y.iter().map(|&v| v.min(2)).collect();
    let sp = Split {
        reference: vec![1, 2, 3, 4],
        query: vec![0],
    };
    let maj = |k| KnnParams {
        k,
        metric: Metric::Euclidean,
        weighting: Weighting::Majority,
    };
    let (_, p) =
        evaluate_knn_detailed(x.view(), &y, 3, std::slice::from_ref(&sp), &maj(2)).unwrap();
    // Nearest: row 4 (d = 0, class 2), then row 1 (d = 1, class 1; smaller position than row 2).
    assert_eq!(p[0], vec![2]);
    // k = 3: classes 2 (d 0), 1 (d 1), 0 (d 1): one vote each, class 2 has the smallest sum.
    let (_, p) =
        evaluate_knn_detailed(x.view(), &y, 3, std::slice::from_ref(&sp), &maj(3)).unwrap();
    assert_eq!(p[0], vec![2]);
    // Inverse distance with an exact zero: only row 4 votes.
    let inv = KnnParams {
        k: 4,
        metric: Metric::Euclidean,
        weighting: Weighting::InverseDistance,
    };
    let (_, p) = evaluate_knn_detailed(x.view(), &y, 3, std::slice::from_ref(&sp), &inv).unwrap();
    assert_eq!(p[0], vec![2]);
    // Cosine: the zero query is at distance 1 from everything; k = 1 -> smallest position (row 1).
    let cos = KnnParams {
        k: 1,
        metric: Metric::Cosine,
        weighting: Weighting::Majority,
    };
    let (_, p) = evaluate_knn_detailed(x.view(), &y, 3, std::slice::from_ref(&sp), &cos).unwrap();
    assert_eq!(p[0], vec![1]);
}

#[test]
fn splits_are_disjoint_sized_reproducible() {
    let a = random_splits(100, 60, 25, 4, 7).unwrap();
    assert_eq!(a, random_splits(100, 60, 25, 4, 7).unwrap());
    assert_ne!(a, random_splits(100, 60, 25, 4, 8).unwrap());
    assert_ne!(a[0], a[1]);
    for s in &a {
        assert_eq!((s.reference.len(), s.query.len()), (60, 25));
        let mut all: Vec<usize> = s.reference.iter().chain(&s.query).copied().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 85);
        assert!(all.iter().all(|&i| i < 100));
    }
    // Repeat r does not depend on how many repeats were asked for.
    assert_eq!(random_splits(100, 60, 25, 2, 7).unwrap()[1], a[1]);
    let h = held_out_split(3, 2);
    assert_eq!(
        h,
        Split {
            reference: vec![0, 1, 2],
            query: vec![3, 4]
        }
    );
    assert!(random_splits(10, 8, 3, 1, 0).is_err());
    assert!(random_splits(10, 0, 3, 1, 0).is_err());
    assert!(random_splits(10, 3, 0, 1, 0).is_err());
    assert!(random_splits(10, 3, 3, 0, 0).is_err());
}

#[test]
fn bookkeeping_by_hand() {
    let y = [0u8, 1, 1, 2, 0, 1];
    let splits = vec![
        Split {
            reference: vec![0],
            query: vec![1, 2, 3],
        },
        Split {
            reference: vec![0],
            query: vec![4, 5],
        },
    ];
    let preds = vec![vec![1, 0, 2], vec![1, 1]];
    let e = summarize(&y, 4, &splits, &preds);
    assert_eq!(e.accuracies, vec![2.0 / 3.0, 0.5]);
    assert!((e.accuracy_mean - (2.0 / 3.0 + 0.5) / 2.0).abs() < 1e-15);
    let sd = ((2.0f64 / 3.0 - 0.5).powi(2) / 2.0).sqrt();
    assert!((e.accuracy_sd - sd).abs() < 1e-15);
    assert_eq!(
        e.confusion,
        vec![
            vec![0, 1, 0, 0],
            vec![1, 2, 0, 0],
            vec![0, 0, 1, 0],
            vec![0; 4]
        ]
    );
    assert_eq!(e.per_class, vec![0.0, 2.0 / 3.0, 1.0, 0.0]);
    let one = summarize(&y, 4, &splits[..1], &preds[..1]);
    assert_eq!(one.accuracy_sd, 0.0);
}

/// Direct f64 normal equations with an unpenalised intercept, by Gaussian elimination.
fn direct_ridge(x: &Array2<f32>, y: &[u8], nc: usize, lambda: f64) -> (Array2<f64>, Vec<f64>) {
    let (n, d) = x.dim();
    let m = d + 1;
    let xa = |i: usize, j: usize| if j < d { x[[i, j]] as f64 } else { 1.0 };
    let mut a = vec![vec![0f64; m + nc]; m];
    for r in 0..m {
        for c in 0..m {
            a[r][c] = (0..n).map(|i| xa(i, r) * xa(i, c)).sum::<f64>()
                + if r == c && r < d { lambda } else { 0.0 };
        }
        for k in 0..nc {
            a[r][m + k] = (0..n)
                .map(|i| xa(i, r) * if y[i] as usize == k { 1.0 } else { -1.0 })
                .sum();
        }
    }
    for col in 0..m {
        let piv = (col..m)
            .max_by(|&p, &q| a[p][col].abs().partial_cmp(&a[q][col].abs()).unwrap())
            .unwrap();
        a.swap(col, piv);
        for r in 0..m {
            if r != col {
                let f = a[r][col] / a[col][col];
                for c in 0..m + nc {
                    a[r][c] -= f * a[col][c];
                }
            }
        }
    }
    let w = Array2::from_shape_fn((d, nc), |(j, k)| a[j][m + k] / a[j][j]);
    let b = (0..nc).map(|k| a[d][m + k] / a[d][d]).collect();
    (w, b)
}

#[test]
fn ridge_matches_direct_solve_primal_and_dual() {
    for (n, d) in [(40, 5), (12, 30)] {
        let x = float_data(n, d, 11);
        let y = labels(n, 3, 12);
        let (w0, b0) = direct_ridge(&x, &y, 3, 0.7);
        let m = RidgeClassifier {
            lambda: 0.7,
            standardize: false,
        }
        .fit(x.view(), &y, 3)
        .unwrap();
        for (a, b) in m.w.iter().zip(w0.iter()) {
            assert!((a - b).abs() < 1e-4, "n {n} d {d}: {a} vs {b}");
        }
        for (a, b) in m.b.iter().zip(&b0) {
            assert!((a - b).abs() < 1e-4);
        }
    }
}

#[test]
fn ridge_primal_equals_dual_in_protocol() {
    let x = float_data(90, 12, 21);
    let y = labels(90, 3, 22);
    let splits = random_splits(90, 60, 30, 2, 3).unwrap();
    for standardize in [false, true] {
        let p = LinearParams {
            kind: LinearKind::Ridge,
            lambdas: vec![0.01, 1.0, 30.0],
            cv_folds: 3,
            standardize,
            lambda_scale: LambdaScale::Absolute,
        };
        let (_, a) =
            evaluate_linear_with(x.view(), &y, 3, &splits, &p, Some(RidgeForm::Primal)).unwrap();
        let (_, b) =
            evaluate_linear_with(x.view(), &y, 3, &splits, &p, Some(RidgeForm::Dual)).unwrap();
        assert_eq!(a, b, "standardize {standardize}");
    }
}

#[test]
fn svm_separates_separable_toy_set() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let centres = [[4.0f32, 0.0], [-4.0, 0.0], [0.0, 4.0]];
    let n = 90;
    let y: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
    let x = Array2::from_shape_fn((n, 2), |(i, j)| {
        centres[i % 3][j] + rng.gen_range(-1.0f32..1.0)
    });
    let m = LinearSvm {
        c: 10.0,
        ..LinearSvm::default()
    }
    .fit(x.view(), &y, 3)
    .unwrap();
    assert_eq!(m.predict(x.view()).unwrap(), y);
    let splits = random_splits(n, 60, 30, 2, 1).unwrap();
    let e = evaluate_linear(x.view(), &y, 3, &splits, &LinearParams::svm()).unwrap();
    assert_eq!(e.accuracy_mean, 1.0);
}

#[test]
fn cv_never_looks_at_queries() {
    for (d, kind) in [
        (8, LinearKind::Ridge),
        (120, LinearKind::Ridge),
        (8, LinearKind::Svm),
    ] {
        for standardize in [false, true] {
            let x = float_data(100, d, 31);
            let y = labels(100, 3, 32);
            let splits = random_splits(100, 60, 40, 2, 4).unwrap();
            let p = LinearParams {
                kind,
                lambdas: vec![0.01, 1.0, 100.0],
                cv_folds: 3,
                standardize,
                lambda_scale: LambdaScale::Absolute,
            };
            let (_, base) = evaluate_linear_detailed(x.view(), &y, 3, &splits, &p).unwrap();
            // Garbage query rows: CV record unchanged.
            let mut xg = x.clone();
            for &q in &splits[0].query {
                xg.row_mut(q).fill(1e6);
            }
            let (_, g) = evaluate_linear_detailed(xg.view(), &y, 3, &splits[..1], &p).unwrap();
            assert_eq!(g[0].chosen_lambda, base[0].chosen_lambda, "{kind:?} d {d}");
            assert_eq!(g[0].cv_accuracy, base[0].cv_accuracy, "{kind:?} d {d}");
            // Garbage query labels: predictions unchanged.
            let mut yg = y.clone();
            for &q in &splits[0].query {
                yg[q] = (yg[q] + 1) % 3;
            }
            let (_, h) = evaluate_linear_detailed(x.view(), &yg, 3, &splits[..1], &p).unwrap();
            assert_eq!(h[0], base[0], "{kind:?} d {d}");
        }
    }
    // kNN: query labels never enter a prediction either.
    let x = float_data(60, 5, 1);
    let y = labels(60, 3, 2);
    let mut yg = y.clone();
    let splits = random_splits(60, 40, 20, 1, 0).unwrap();
    splits[0]
        .query
        .iter()
        .for_each(|&q| yg[q] = (yg[q] + 1) % 3);
    let p = KnnParams {
        k: 3,
        metric: Metric::Euclidean,
        weighting: Weighting::Majority,
    };
    assert_eq!(
        evaluate_knn_detailed(x.view(), &y, 3, &splits, &p)
            .unwrap()
            .1,
        evaluate_knn_detailed(x.view(), &yg, 3, &splits, &p)
            .unwrap()
            .1
    );
}

#[test]
fn errors_name_the_bad_value() {
    let x = float_data(20, 3, 0);
    let y = labels(20, 2, 0);
    let sp = vec![held_out_split(15, 5)];
    let p = |k| KnnParams {
        k,
        metric: Metric::Euclidean,
        weighting: Weighting::Majority,
    };
    let msg = |e: EvalError| e.to_string();
    assert!(msg(evaluate_knn(x.view(), &y, 2, &sp, &p(0)).unwrap_err()).contains("k = 0"));
    assert!(msg(evaluate_knn(x.view(), &y, 2, &sp, &p(16)).unwrap_err())
        .contains("k = 16 > reference size 15"));
    assert!(
        msg(evaluate_knn(x.view(), &y[..19], 2, &sp, &p(1)).unwrap_err())
            .contains("labels length 19")
    );
    let mut xn = x.clone();
    xn[[7, 2]] = f32::NAN;
    assert!(
        msg(evaluate_knn(xn.view(), &y, 2, &sp, &p(1)).unwrap_err()).contains("row 7, column 2")
    );
    let mut yb = y.clone();
    yb[3] = 5;
    assert!(
        msg(evaluate_knn(x.view(), &yb, 2, &sp, &p(1)).unwrap_err()).contains("label 5 of row 3")
    );
    let bad = vec![Split {
        reference: vec![0, 1, 25],
        query: vec![2],
    }];
    assert!(msg(evaluate_knn(x.view(), &y, 2, &bad, &p(1)).unwrap_err()).contains("row index 25"));
    let dup = vec![Split {
        reference: vec![0, 1],
        query: vec![1],
    }];
    assert!(msg(evaluate_knn(x.view(), &y, 2, &dup, &p(1)).unwrap_err())
        .contains("row 1 appears twice"));
    assert!(matches!(
        evaluate_knn(x.view(), &y, 2, &[], &p(1)),
        Err(EvalError::NoSplits)
    ));
    assert!(msg(random_splits(10, 8, 3, 1, 0).unwrap_err())
        .contains("n_query = 3 + n_reference = 8 exceeds n = 10"));
    let lp = |l: Vec<f64>, f| LinearParams {
        kind: LinearKind::Ridge,
        lambdas: l,
        cv_folds: f,
        standardize: false,
        lambda_scale: LambdaScale::Absolute,
    };
    assert!(
        msg(evaluate_linear(x.view(), &y, 2, &sp, &lp(vec![1.0, -2.0], 3)).unwrap_err())
            .contains("lambda = -2")
    );
    assert!(
        msg(evaluate_linear(x.view(), &y, 2, &sp, &lp(vec![1.0, 2.0], 1)).unwrap_err())
            .contains("cv_folds = 1")
    );
    assert!(matches!(
        evaluate_linear(x.view(), &y, 2, &sp, &lp(vec![], 3)),
        Err(EvalError::NoLambdas)
    ));
    assert!(msg(try_pixels_to_f32(&[0; 5], 2, 3).unwrap_err()).contains("5 bytes"));
    assert!(RidgeClassifier {
        lambda: 1.0,
        standardize: false
    }
    .fit(x.view(), &y[..3], 2)
    .is_err());
}

#[test]
fn projection_and_pixels() {
    let x = float_data(30, 50, 3);
    let a = random_projection(x.view(), 20, 1);
    assert_eq!(a.dim(), (30, 20));
    assert_eq!(a, random_projection(x.view(), 20, 1));
    assert_ne!(a, random_projection(x.view(), 20, 2));
    // Norms are preserved on average (JL): ratio of total squared norms near 1.
    let big = random_projection(x.view(), 2000, 4);
    let r = big.iter().map(|v| v * v).sum::<f32>() / x.iter().map(|v| v * v).sum::<f32>();
    assert!((r - 1.0).abs() < 0.1, "{r}");
    let p = pixels_to_f32(&[0, 255, 51, 0], 2, 2);
    assert_eq!(p, ndarray::array![[0.0, 1.0], [0.2, 0.0]]);
}

/// Full-size timing (run by hand: `cargo test --release --lib eval -- --ignored timing --nocapture`).
#[test]
#[ignore]
fn timing_knn_full_protocol() {
    let n: usize = std::env::var("GEODYN_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let d: usize = std::env::var("GEODYN_D")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(39_800);
    let s = knn_timing_demo(n, d);
    println!("kNN protocol, 10 splits, n = {n}, d = {d}: {s:.2} s");
}

/// The built-in digits as the weights experiment's pixel baseline sees them
/// (pixels / 255, one row per image), and their labels.
fn builtin_pixels() -> (Array2<f32>, Vec<u8>) {
    let set = crate::dataset::ImageSet::builtin().expect("the built-in digits");
    let x = pixels_to_f32(&set.pixels, set.len(), set.pixels_per_image());
    (x, set.labels)
}

/// Sanity check on real MNIST-10k pixels (run by hand, release):
/// `cargo test --release --lib eval -- --ignored mnist --nocapture`.
#[test]
#[ignore]
fn mnist_pixel_baselines() {
    let (x, y) = builtin_pixels();
    let n = y.len();
    let splits = random_splits(n, 9000, 1000, 10, 0).unwrap();
    let t = std::time::Instant::now();
    let p = KnnParams {
        k: 5,
        metric: Metric::Euclidean,
        weighting: Weighting::InverseDistance,
    };
    let e = evaluate_knn(x.view(), &y, 10, &splits, &p).unwrap();
    println!(
        "knn k=5 distance-weighted: {:.4} +- {:.4} ({:.1} s)",
        e.accuracy_mean,
        e.accuracy_sd,
        t.elapsed().as_secs_f64()
    );
    for params in [LinearParams::ridge(), LinearParams::svm()] {
        let t = std::time::Instant::now();
        let (e, o) = evaluate_linear_detailed(x.view(), &y, 10, &splits, &params).unwrap();
        let lam: Vec<f64> = o.iter().map(|o| o.chosen_lambda).collect();
        println!(
            "{:?}: {:.4} +- {:.4} ({:.1} s) lambdas {lam:?}",
            params.kind,
            e.accuracy_mean,
            e.accuracy_sd,
            t.elapsed().as_secs_f64()
        );
    }
}

/// Every typed name: `name()`, `Display` and the serde name are one string, and
/// each value comes back from it through serde_json.
fn assert_named<T>(cases: &[(T, &str)], name: fn(T) -> &'static str)
where
    T: Copy + std::fmt::Debug + PartialEq + std::fmt::Display + serde::Serialize,
    T: serde::de::DeserializeOwned,
{
    for &(v, want) in cases {
        assert_eq!(name(v), want);
        assert_eq!(v.to_string(), want);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, format!("\"{want}\""));
        assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v);
    }
}

#[test]
fn names_round_trip_through_serde() {
    assert_named(
        &[(Metric::Euclidean, "euclidean"), (Metric::Cosine, "cosine")],
        Metric::name,
    );
    assert_named(
        &[
            (Weighting::Majority, "majority"),
            (Weighting::InverseDistance, "inverse_distance"),
        ],
        Weighting::name,
    );
    assert_named(
        &[(LinearKind::Ridge, "ridge"), (LinearKind::Svm, "svm")],
        LinearKind::name,
    );
    assert_named(
        &[
            (Classifier::Knn, "knn"),
            (Classifier::Ridge, "ridge"),
            (Classifier::LinearSvm, "linear_svm"),
        ],
        Classifier::name,
    );
    assert!(serde_json::from_str::<Metric>("\"manhattan\"").is_err());
}

#[test]
fn classifier_from_linear_kind() {
    assert_eq!(Classifier::from(LinearKind::Ridge), Classifier::Ridge);
    assert_eq!(Classifier::from(LinearKind::Svm), Classifier::LinearSvm);
    // The report's classifier column for the SVM is "linear_svm", not the config's "svm".
    assert_eq!(Classifier::from(LinearKind::Svm).name(), "linear_svm");
}

#[test]
fn config_spellings_still_deserialize_from_toml() {
    #[derive(serde::Deserialize)]
    struct Eval {
        metric: Metric,
        weighting: Weighting,
        linear: Vec<LinearKind>,
    }
    let e: Eval = toml::from_str(
        r#"metric = "cosine"
weighting = "inverse_distance"
linear = ["svm", "ridge"]"#,
    )
    .unwrap();
    assert_eq!(e.metric, Metric::Cosine);
    assert_eq!(e.weighting, Weighting::InverseDistance);
    assert_eq!(e.linear, [LinearKind::Svm, LinearKind::Ridge]);
}

#[test]
fn l2_normalize_rows_unit_norm_and_zero_rows_kept() {
    // Row 2: in f32, (1e-30)^2 underflows to 0 and the row would be left as it is.
    let mut x = ndarray::array![[3.0f32, 4.0], [0.0, 0.0], [1e-30, 0.0], [-2.0, 0.0]];
    l2_normalize_rows(&mut x);
    assert_eq!(
        x,
        ndarray::array![[0.6f32, 0.8], [0.0, 0.0], [1.0, 0.0], [-1.0, 0.0]]
    );
    let mut big = float_data(20, 300, 9);
    l2_normalize_rows(&mut big);
    for row in big.rows() {
        let n: f64 = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        assert!(n == 0.0 || (n - 1.0).abs() < 1e-6, "{n}");
    }
}

// ---- kernel-form readouts and the nonlinear controls ----

use super::linear::{kernel_svm_fit, ridge_fit, KsvmSettings, TrainBlock};

/// Labelled clusters with a large common offset: rows nearly parallel (the
/// f32 trap of uncentred Gram matrices), classes separable but not trivially.
fn offset_clusters(n: usize, d: usize, offset: f32, seed: u64) -> (Array2<f32>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres = Array2::from_shape_fn((3, d), |_| rng.gen_range(-1.0f32..1.0));
    let y: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
    let x = Array2::from_shape_fn((n, d), |(i, j)| {
        offset + centres[[i % 3, j]] + rng.gen_range(-1.5f32..1.5)
    });
    (x, y)
}

/// The rows of `x` centred by the mean of `rows`, in f64.
fn centred_rows(x: &Array2<f32>, rows: &[usize]) -> Array2<f64> {
    let d = x.ncols();
    let mut mu = vec![0f64; d];
    for &r in rows {
        for j in 0..d {
            mu[j] += x[[r, j]] as f64 / rows.len() as f64;
        }
    }
    Array2::from_shape_fn((rows.len(), d), |(i, j)| x[[rows[i], j]] as f64 - mu[j])
}

#[test]
fn kernel_ridge_equals_primal_ridge() {
    // d < n and d > n; offset 30 makes the rows nearly parallel. The reference
    // is the f64 normal-equation solve (the library's own d > n ridge works
    // from an uncentred f32 Gram matrix and is off by 0.3% on the last case).
    for (n, d, offset) in [(60, 7, 0.0), (60, 7, 30.0), (40, 90, 30.0)] {
        let (x, y) = offset_clusters(n, d, offset, 3);
        let lambda = 0.5;
        let (w0, b0) = direct_ridge(&x, &y, 3, lambda);
        let gram = ViewGram::of_rows(x.view());
        let rows: Vec<usize> = (0..n).collect();
        let block = TrainBlock::new(&gram, rows.clone());
        let model = ridge_fit(&block.centred(), n, &y, 3, &[lambda])
            .unwrap()
            .pop()
            .unwrap();
        let xc = centred_rows(&x, &rows);
        let w = model.weights(xc.view());
        let scale = w0.iter().fold(0f64, |a, v| a.max(v.abs()));
        for (a, b) in w.iter().zip(w0.iter()) {
            assert!(
                (a - b).abs() < 1e-4 * scale,
                "n {n} d {d} offset {offset}: {a} vs {b}"
            );
        }
        // Same predictions on the training rows and on fresh rows.
        let (q, _) = offset_clusters(30, d, offset, 4);
        let both = ndarray::concatenate(ndarray::Axis(0), &[x.view(), q.view()]).unwrap();
        let g2 = ViewGram::of_rows(both.view());
        let b2 = TrainBlock::new(&g2, rows.clone());
        let queries: Vec<usize> = (0..n + 30).collect();
        let kernel_pred = model.predict(&b2.cross(&queries), n);
        let direct_pred: Vec<u8> = (0..n + 30)
            .map(|i| {
                let s: Vec<f64> = (0..3)
                    .map(|k| {
                        b0[k]
                            + (0..d)
                                .map(|j| both[[i, j]] as f64 * w0[[j, k]])
                                .sum::<f64>()
                    })
                    .collect();
                (0..3).fold(0, |best, k| if s[k] > s[best] { k } else { best }) as u8
            })
            .collect();
        assert_eq!(kernel_pred, direct_pred, "n {n} d {d} offset {offset}");
    }
}

#[test]
fn kernel_svm_equals_primal_svm_on_centred_rows() {
    for (n, d) in [(90, 6), (45, 80)] {
        let (x, y) = offset_clusters(n, d, 5.0, 7);
        let rows: Vec<usize> = (0..n).collect();
        let xc = centred_rows(&x, &rows);
        let xc32 = xc.mapv(|v| v as f32);
        let c = 0.5;
        let tight = (5000, 1e-7);
        let primal = LinearSvm {
            c,
            standardize: false,
            max_epochs: tight.0,
            tol: tight.1,
            seed: 1,
        }
        .fit(xc32.view(), &y, 3)
        .unwrap();
        let gram = ViewGram::of_rows(x.view());
        let block = TrainBlock::new(&gram, rows.clone());
        let settings = KsvmSettings {
            max_epochs: tight.0,
            tol: tight.1,
            seed: 2,
        };
        let model = kernel_svm_fit(&block.centred(), n, &y, 3, &[1.0 / c], settings)
            .pop()
            .unwrap();
        let w = model.weights(xc.view());
        // The bias is the weight of the constant feature: sum of coef.
        let b: Vec<f64> = (0..3)
            .map(|k| (0..n).map(|i| model.coef[i * 3 + k]).sum())
            .collect();
        let scale = primal.w.iter().fold(0f64, |a, v| a.max(v.abs()));
        for (a, p) in w.iter().zip(primal.w.iter()) {
            assert!((a - p).abs() < 2e-3 * scale, "n {n} d {d}: w {a} vs {p}");
        }
        for (a, p) in b.iter().zip(&primal.b) {
            assert!(
                (a - p).abs() < 2e-3 * scale.max(1.0),
                "n {n} d {d}: b {a} vs {p}"
            );
        }
        let kernel_pred = model.predict(&block.cross(&rows), n);
        assert_eq!(
            kernel_pred,
            primal.predict(xc32.view()).unwrap(),
            "n {n} d {d}"
        );
    }
}

#[test]
fn kernel_protocol_matches_primal_protocol() {
    // One lambda (no CV): the kernel ridge's query predictions are the primal's.
    let (x, y) = offset_clusters(120, 10, 20.0, 9);
    let splits = random_splits(120, 80, 40, 3, 5).unwrap();
    let p = LinearParams {
        kind: LinearKind::Ridge,
        lambdas: vec![2.0],
        cv_folds: 3,
        standardize: false,
        lambda_scale: LambdaScale::Absolute,
    };
    let (_, primal) = evaluate_linear_detailed(x.view(), &y, 3, &splits, &p).unwrap();
    let gram = ViewGram::of_rows(x.view());
    let (_, kernel) = evaluate_kernel(&gram, &y, 3, &splits, &p).unwrap();
    for (a, b) in primal.iter().zip(&kernel) {
        assert_eq!(a.predictions, b.predictions);
    }
}

#[test]
fn kernel_cv_never_touches_the_queries() {
    let (x, y) = offset_clusters(150, 12, 2.0, 11);
    // Shuffle a third of the labels so the lambdas score differently.
    let mut y = y;
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for v in y.iter_mut().step_by(3) {
        *v = rng.gen_range(0..3);
    }
    let splits = random_splits(150, 100, 50, 2, 6).unwrap();
    let gram = ViewGram::of_rows(x.view());
    for (kind, lambdas) in [
        (LinearKind::Ridge, vec![1e-3, 0.1, 10.0, 1e3]),
        (LinearKind::Svm, vec![1e-2, 1.0, 100.0]),
    ] {
        let p = LinearParams {
            kind,
            lambdas,
            cv_folds: 3,
            standardize: false,
            lambda_scale: LambdaScale::MeanSquare,
        };
        let (_, base) = evaluate_kernel(&gram, &y, 3, &splits, &p).unwrap();
        assert!(base.iter().all(|o| o.cv_accuracy.len() == p.lambdas.len()));
        for (s, sp) in splits.iter().enumerate() {
            let mut poisoned = y.clone();
            for &q in &sp.query {
                poisoned[q] = (poisoned[q] + 1) % 3;
            }
            let (_, o) = evaluate_kernel(&gram, &poisoned, 3, &splits[s..=s], &p).unwrap();
            assert_eq!(o[0], base[s], "{kind:?} split {s}");
        }
    }
}

#[test]
fn relative_lambda_is_scale_free() {
    let (x, y) = offset_clusters(120, 30, 1.0, 13);
    let splits = random_splits(120, 90, 30, 2, 7).unwrap();
    let p = LinearParams {
        kind: LinearKind::Ridge,
        lambdas: vec![1e-3, 1e-1, 10.0],
        cv_folds: 3,
        standardize: false,
        lambda_scale: LambdaScale::MeanSquare,
    };
    let g1 = ViewGram::of_rows(x.view());
    let big = x.mapv(|v| v * 64.0);
    let g2 = ViewGram::of_rows(big.view());
    let (_, a) = evaluate_kernel(&g1, &y, 3, &splits, &p).unwrap();
    let (_, b) = evaluate_kernel(&g2, &y, 3, &splits, &p).unwrap();
    assert_eq!(a, b);
    // Absolute lambdas are not: the same grid regularises the big rows less.
    let abs = LinearParams {
        lambda_scale: LambdaScale::Absolute,
        lambdas: vec![1e3],
        ..p.clone()
    };
    let (_, c) = evaluate_kernel(&g1, &y, 3, &splits, &abs).unwrap();
    let (_, d) = evaluate_kernel(&g2, &y, 3, &splits, &abs).unwrap();
    assert_ne!(c, d);
    // The primal SVM refuses a scale it cannot apply; the primal ridge (30
    // columns, 60 training rows per fold) applies it, scale-free too.
    let svm = LinearParams {
        kind: LinearKind::Svm,
        ..p.clone()
    };
    assert!(matches!(
        evaluate_linear(x.view(), &y, 3, &splits, &svm),
        Err(EvalError::ScaleNeedsKernel(LambdaScale::MeanSquare))
    ));
    let (_, pa) = evaluate_linear_detailed(x.view(), &y, 3, &splits, &p).unwrap();
    let (_, pb) = evaluate_linear_detailed(big.view(), &y, 3, &splits, &p).unwrap();
    assert_eq!(pa, pb);
}

#[test]
fn primal_ridge_with_relative_lambdas_equals_kernel_ridge() {
    // The evaluator solves the ridge of a view with fewer dimensions than CV
    // training rows in primal form: the same folds, relative lambdas, chosen
    // lambda, CV record and query predictions as the kernel form. Offset rows
    // (nearly parallel) and a noisy third of the labels, so that the lambdas
    // score differently and the choice is not trivial.
    for (n, d, offset) in [(150, 12, 2.0), (180, 25, 30.0)] {
        let (x, mut y) = offset_clusters(n, d, offset, 21);
        let mut rng = ChaCha8Rng::seed_from_u64(22);
        for v in y.iter_mut().step_by(3) {
            *v = rng.gen_range(0..3);
        }
        let splits = random_splits(n, n * 2 / 3, n / 3, 3, 23).unwrap();
        let p = LinearParams {
            kind: LinearKind::Ridge,
            lambdas: vec![1e-3, 1e-2, 0.1, 1.0, 10.0],
            cv_folds: 3,
            standardize: false,
            lambda_scale: LambdaScale::MeanSquare,
        };
        let (ep, primal) = evaluate_linear_detailed(x.view(), &y, 3, &splits, &p).unwrap();
        let gram = ViewGram::of_rows(x.view());
        let (ek, kernel) = evaluate_kernel(&gram, &y, 3, &splits, &p).unwrap();
        assert_eq!(primal, kernel, "n {n} d {d} offset {offset}");
        assert_eq!(ep.accuracies, ek.accuracies);
        let chosen: Vec<f64> = primal.iter().map(|o| o.chosen_lambda).collect();
        assert!(
            primal.iter().any(|o| {
                let cv = &o.cv_accuracy;
                cv.iter().any(|a| *a != cv[0])
            }),
            "the lambdas all score alike (chosen {chosen:?}): the test checks nothing"
        );
    }
}

#[test]
fn knn_from_the_shared_gram_equals_plain_knn() {
    let (x, y) = offset_clusters(200, 20, 40.0, 15);
    let splits = random_splits(200, 150, 50, 3, 8).unwrap();
    let gram = ViewGram::of_rows(x.view());
    for weighting in [Weighting::Majority, Weighting::InverseDistance] {
        let p = KnnParams {
            k: 5,
            metric: Metric::Euclidean,
            weighting,
        };
        let (_, plain) = evaluate_knn_detailed(x.view(), &y, 3, &splits, &p).unwrap();
        let (_, shared) = evaluate_knn_gram(x.view(), &gram, &y, 3, &splits, &p).unwrap();
        assert_eq!(plain, shared, "{weighting:?}");
    }
}

#[test]
fn random_features_are_seeded_and_thread_independent() {
    let x = float_data(300, 20, 17).mapv(|v| v.abs());
    let run = |threads: usize, seed: u64| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| random_features(x.view(), 70, seed))
    };
    let a = run(1, 5);
    assert_eq!(a.dim(), (300, 70));
    assert!(a.iter().all(|&v| v >= 0.0), "ReLU output");
    assert!(a.iter().any(|&v| v > 0.0) && a.iter().any(|&v| v == 0.0));
    for threads in [2, 3] {
        let b = run(threads, 5);
        assert!(
            a.iter()
                .zip(b.iter())
                .all(|(u, v)| u.to_bits() == v.to_bits()),
            "{threads} threads"
        );
    }
    assert_ne!(a, run(1, 6), "another seed, other features");
}

#[test]
fn rate_product_by_hand() {
    let x = float_data(4, 6, 19).mapv(|v| v.abs());
    let f = random_features(x.view(), 3, 21);
    let p = rate_product(x.view(), 3, 21);
    assert_eq!(p.dim(), (4, 6), "N (N - 1) columns");
    let pairs = [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)];
    for r in 0..4 {
        for (k, &(i, j)) in pairs.iter().enumerate() {
            assert_eq!(p[[r, k]], f[[r, i]] * f[[r, j]], "row {r} pair {i}->{j}");
        }
    }
    assert_eq!(rate_product(x.view(), 200, 1).ncols(), 39_800);
}

/// The cost of one kernel-ridge fit of m training rows (one lambda: one
/// Cholesky of the centred m x m Gram matrix), by hand:
/// `GEODYN_M=6000 cargo test --release --lib -- --ignored --exact
/// eval::tests::timing_kernel_ridge_fold --nocapture`.
#[test]
#[ignore]
fn timing_kernel_ridge_fold() {
    let m: usize = std::env::var("GEODYN_M")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6_000);
    let x = float_data(m, 200, 23);
    let y = labels(m, 10, 24);
    let gram = ViewGram::of_rows(x.view());
    let block = TrainBlock::new(&gram, (0..m).collect());
    let kc = block.centred();
    let (t, c) = (std::time::Instant::now(), process_cpu_s());
    ridge_fit(&kc, m, &y, 10, &[1.0]).unwrap();
    println!(
        "kernel ridge, {m} training rows, one lambda: {:.2} s wall, {:.2} CPU s",
        t.elapsed().as_secs_f64(),
        process_cpu_s() - c
    );
}

/// One split of the kernel ridge as the weights experiment runs it (9,000 /
/// 1,000 of the built-in digits, raw pixels / 255, the shipped grid relative to
/// the mean square, 3-fold CV): CPU time, accuracy, chosen lambda and a digest
/// of the predictions, to compare solvers by hand:
/// `cargo test --release --lib -- --ignored --exact
/// eval::tests::timing_kernel_ridge_mnist_split --nocapture`.
#[test]
#[ignore]
fn timing_kernel_ridge_mnist_split() {
    let (x, y) = builtin_pixels();
    let n = y.len();
    let splits = random_splits(n, 9000, 1000, 1, 0).unwrap();
    let gram = ViewGram::of_rows(x.view());
    let params = LinearParams {
        lambdas: vec![0.001, 0.01, 0.1, 1.0, 10.0],
        lambda_scale: LambdaScale::MeanSquare,
        ..LinearParams::ridge()
    };
    // One timed solve: wall and CPU time, accuracy, chosen lambda, CV record
    // and an FNV-1a digest of the predictions (equal digests, equal predictions).
    let timed = |what: &str, solve: &dyn Fn() -> (Evaluation, Vec<SplitOutcome>)| {
        let (t, c) = (std::time::Instant::now(), process_cpu_s());
        let (e, o) = solve();
        let (wall, cpu) = (t.elapsed().as_secs_f64(), process_cpu_s() - c);
        let digest = o[0]
            .predictions
            .iter()
            .fold(0xcbf29ce484222325u64, |h, &p| {
                (h ^ p as u64).wrapping_mul(0x100000001b3)
            });
        println!(
            "{what}: {wall:.1} s wall, {cpu:.1} CPU s; \
             accuracy {:.4}, lambda {}, cv {:?}, predictions {digest:016x}",
            e.accuracy_mean, o[0].chosen_lambda, o[0].cv_accuracy
        );
    };
    timed("kernel ridge, one split 9000/1000 of mnist-10k", &|| {
        evaluate_kernel(&gram, &y, 10, &splits, &params).unwrap()
    });
    // The same readout in primal form (784 x 784 systems), as the evaluator
    // solves a view with fewer dimensions than CV training rows.
    timed("primal ridge, the same split", &|| {
        evaluate_linear_detailed(x.view(), &y, 10, &splits, &params).unwrap()
    });
}
