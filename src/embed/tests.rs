//! The embedder against hand-built recordings: which views, what each holds,
//! and a clear error (not a panic) for a recording that lacks a view's data.

use super::*;
use crate::network::{EdgeClass, EdgeSpec, NodeParams, NodeSpec};
use crate::record::WeightSnapshot;

/// Input 0 -> recurrent 1, 2; recurrent 1 <-> 2 (the two plastic edges).
fn net() -> Network {
    let p = NodeParams {
        refractory_period_ms: 1.0,
        threshold: 1.0,
        summation_tau_ms: 10.0,
    };
    let node = |x: f64, population| NodeSpec {
        position_um: [x, 0.0, 0.0],
        population,
        params: p,
    };
    let e = |s, t, w| EdgeSpec {
        source: s,
        target: t,
        length_um: 10.0,
        velocity_um_per_ms: 10.0,
        weight: w,
        plastic: false,
    };
    let mut n = Network::from_edges(
        &[
            node(0.0, Population::Input),
            node(10.0, Population::Recurrent),
            node(20.0, Population::Recurrent),
        ],
        &[e(0, 1, 0.5), e(0, 2, 0.5), e(1, 2, 0.25), e(2, 1, -0.25)],
    )
    .unwrap();
    n.set_plastic_classes(&[EdgeClass::RecurrentToRecurrent]);
    n
}

fn weights_params(times: &[f64]) -> EmbeddingParams {
    let paths = PathsParams::new(PathsMethod::Both, 10.0, 16).unwrap();
    EmbeddingParams::new(
        EmbeddingKind::Weights,
        times,
        vec![EdgeClass::RecurrentToRecurrent],
        10.0,
        paths,
    )
    .unwrap()
}

#[test]
fn weights_views_are_changes_of_the_plastic_edges_at_each_snapshot() {
    let net = net();
    let e = Embedder::new(&net, &weights_params(&[20.0, 10.0]), 20.0, 0).unwrap();
    let names: Vec<&str> = e.views().iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["weights_t10", "weights_t20", "activity"]);
    assert_eq!(e.views()[0].dim, 2);
    assert_eq!(
        e.views()[2].dim,
        2 * 2,
        "two recurrent nodes x two 10 ms bins"
    );
    let spec = e.record_spec();
    assert_eq!(spec.weight_snapshots_ms, [10.0, 20.0]);
    assert_eq!(spec.snapshot_edges, net.plastic_edges());
    assert!(!spec.activations);

    let w0 = net.edge_weight.clone();
    let plastic = net.plastic_edges();
    let snap = |t: f64, d: f32| WeightSnapshot {
        time_ms: t,
        weights: plastic.iter().map(|&p| w0[p as usize] + d).collect(),
    };
    let rec = Recording {
        snapshots: vec![snap(10.0, 0.5), snap(20.0, -1.0)],
        // Row-major nodes x bins: node 0 (input) is skipped by the view.
        activity: vec![9, 9, 1, 2, 3, 4],
        activity_bins: 2,
        ..Default::default()
    };
    let mut out = vec![Vec::new(); 3];
    e.embed(&net, &w0, &rec, &mut out).unwrap();
    assert_eq!(out[0], [0.5, 0.5]);
    assert_eq!(out[1], [-1.0, -1.0]);
    assert_eq!(out[2], [1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn a_recording_without_the_snapshots_is_an_error_not_a_panic() {
    let net = net();
    let e = Embedder::new(&net, &weights_params(&[10.0]), 20.0, 0).unwrap();
    let rec = Recording {
        activity: vec![0; 6],
        activity_bins: 2,
        ..Default::default()
    };
    let mut out = vec![Vec::new(); 2];
    let err = e.embed(&net, &net.edge_weight, &rec, &mut out).unwrap_err();
    assert!(err.to_string().contains("weights_t10"), "{err}");
    // Nor without the binned activity.
    let rec = Recording {
        snapshots: vec![WeightSnapshot {
            time_ms: 10.0,
            weights: vec![0.0; 2],
        }],
        ..Default::default()
    };
    let err = e.embed(&net, &net.edge_weight, &rec, &mut out).unwrap_err();
    assert_eq!(err.field, "activity_bin_ms");
}

#[test]
fn snapshots_after_the_end_of_the_run_are_refused() {
    let err = Embedder::new(&net(), &weights_params(&[10.0, 30.0]), 20.0, 0).unwrap_err();
    assert_eq!(err.field, "snapshot_times_ms");
    assert_eq!(err.value, "30");
}

#[test]
fn paths_views_one_per_method_primary_first() {
    let net = net();
    let paths = PathsParams::new(PathsMethod::NodeTiming, 10.0, 16).unwrap();
    let p = EmbeddingParams::new(EmbeddingKind::Paths, &[], vec![], 10.0, paths)
        .unwrap()
        .with_all_paths_methods(true);
    let e = Embedder::new(&net, &p, 20.0, 7).unwrap();
    let names: Vec<&str> = e.views().iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "paths_node_timing",
            "paths_causal_edges",
            "paths_both",
            "activity"
        ]
    );
    // node timing: 2 recurrent nodes x (2 windows + first-activation score).
    assert_eq!(e.views()[0].dim, 6);
    assert_eq!(e.views()[1].dim, 16);
    assert_eq!(e.views()[2].dim, 22);
    assert!(e.record_spec().activations);
}
