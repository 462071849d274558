//! The evaluation on its own, on data whose answer is known.

use super::*;
use crate::config::EvalParams;
use crate::embed::Normalize;
use crate::eval::{KnnParams, Metric, Weighting};
use ndarray::Array2;

fn params(n_reference: Option<usize>, n_query: Option<usize>) -> EvalParams {
    EvalParams {
        knn: KnnParams {
            k: 3,
            metric: Metric::Euclidean,
            weighting: Weighting::Majority,
        },
        n_reference,
        n_query,
        repeats: 4,
        split_seed: 7,
        linear: vec![],
    }
}

/// Two classes far apart along the first axis, plus a little spread.
fn clusters(n: usize, d: usize) -> (Array2<f32>, Vec<u8>) {
    let labels: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
    let x = Array2::from_shape_fn((n, d), |(i, j)| {
        let c = if j == 0 {
            100.0 * labels[i] as f32
        } else {
            0.0
        };
        c + ((i * 31 + j * 17) % 7) as f32 * 0.1
    });
    (x, labels)
}

#[test]
fn separable_views_score_one_and_baselines_are_named_once() {
    let (x, labels) = clusters(40, 5);
    let p = params(Some(30), Some(10));
    let mut ev =
        Evaluator::new(&p, &labels, Protocol::RandomSplit, Normalize::None, &Quiet).unwrap();
    assert_eq!(
        (
            ev.protocol().n_reference,
            ev.protocol().n_query,
            ev.protocol().repeats
        ),
        (30, 10, 4)
    );
    assert_eq!(ev.protocol().kind, crate::report::ProtocolKind::RandomSplit);
    let rows = ev.score(&x, "v", Some(3), Some(50.0)).unwrap();
    assert_eq!(rows.len(), 1, "no linear readout configured");
    assert_eq!(rows[0].accuracy_mean, 1.0);
    assert_eq!(
        (rows[0].dim, rows[0].time_ms, rows[0].n_recurrent),
        (5, Some(50.0), Some(3))
    );
    let total: u64 = rows[0].confusion.iter().flatten().sum();
    assert_eq!(total, 40, "10 queries x 4 repeats");

    let base = ev
        .baselines(&x, &[8, 3, 8], None, Controls::default(), 1)
        .unwrap();
    let names: Vec<&str> = base.iter().map(|r| r.embedding.as_str()).collect();
    assert_eq!(
        names,
        ["raw_pixels", "random_projection_3", "random_projection_8"]
    );
    assert_eq!(
        Baseline::RandomProjection { dim: 3 }.name(),
        "random_projection_3"
    );
}

#[test]
fn split_sizes_that_do_not_fit_fall_back_to_90_10_with_a_note() {
    let (_, labels) = clusters(50, 2);
    let p = params(Some(9000), Some(1000));
    let ev = Evaluator::new(&p, &labels, Protocol::RandomSplit, Normalize::None, &Quiet).unwrap();
    assert_eq!((ev.protocol().n_reference, ev.protocol().n_query), (45, 5));
    assert!(
        ev.notes()[0].contains("do not fit 50 rows"),
        "{:?}",
        ev.notes()
    );
    let held = Evaluator::new(
        &p,
        &labels,
        Protocol::HeldOut {
            n_reference: 40,
            n_query: 10,
        },
        Normalize::None,
        &Quiet,
    )
    .unwrap();
    assert_eq!(held.protocol().kind, crate::report::ProtocolKind::HeldOut);
    assert_eq!(held.protocol().repeats, 1);
}

#[test]
fn a_matrix_with_the_wrong_row_count_is_refused() {
    let (x, labels) = clusters(20, 2);
    let p = params(None, None);
    let ev = Evaluator::new(
        &p,
        &labels[..10],
        Protocol::RandomSplit,
        Normalize::None,
        &Quiet,
    )
    .unwrap();
    let err = ev.knn(&x, "short", None, None).unwrap_err().to_string();
    assert!(err.contains("short: 20 rows for 10 labels"), "{err}");
}

#[test]
fn views_are_scored_in_order_with_trajectories_and_l2() {
    let (x, labels) = clusters(30, 4);
    let mut scaled = x.clone();
    scaled.mapv_inplace(|v| 3.0 * v);
    let info = |name: &str, t| ViewInfo {
        name: name.into(),
        dim: 4,
        time_ms: t,
        file: String::new(),
    };
    let views = MemoryViews {
        views: vec![
            info("w_a", Some(10.0)),
            info("w_b", Some(20.0)),
            info("act", None),
        ],
        matrices: vec![x.clone(), scaled, x.clone()],
    };
    let p = params(None, None);
    let mut ev = Evaluator::new(&p, &labels, Protocol::RandomSplit, Normalize::L2, &Quiet).unwrap();
    let s = score_views(&mut ev, &views, "_net", Some(2), true).unwrap();
    let names: Vec<&str> = s.rows.iter().map(|r| r.embedding.as_str()).collect();
    assert_eq!(
        names,
        ["w_a_net", "w_b_net", "trajectory_t20_net", "act_net"]
    );
    assert_eq!(s.rows[2].dim, 8);
    // After L2 normalisation a view and a multiple of it are the same data.
    assert_eq!(s.rows[0].accuracy_mean, s.rows[1].accuracy_mean);
    assert_eq!(s.rows[0].confusion, s.rows[1].confusion);
    assert_eq!(s.best, Some(0), "ties keep the first view");
}

#[test]
fn l2_rows_have_unit_norm_and_zero_rows_stay_zero() {
    let mut x = ndarray::arr2(&[[3.0f32, 4.0], [0.0, 0.0]]);
    crate::eval::l2_normalize_rows(&mut x);
    assert_eq!(x, ndarray::arr2(&[[0.6f32, 0.8], [0.0, 0.0]]));
}
