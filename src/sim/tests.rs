//! Engine tests against analytic answers, a naive reference implementation and
//! invariants.

use super::*;
use crate::network::Network;
use crate::network::{
    build_two_population, Distribution, EdgeSpec, NodeParams, NodeParamsSpec, NodeSpec, Population,
    TwoPopulationSpec, WeightSpec,
};
use crate::record::{ExternalActivation, RecordSpec, Recording};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

fn node(r: f64, theta: f64, tau: f64) -> NodeSpec {
    NodeSpec {
        position_um: [0.0; 3],
        population: Population::Recurrent,
        params: NodeParams {
            refractory_period_ms: r,
            threshold: theta,
            summation_tau_ms: tau,
        },
    }
}

fn edge(s: u32, t: u32, len: f64, v: f64, w: f64, plastic: bool) -> EdgeSpec {
    EdgeSpec {
        source: s,
        target: t,
        length_um: len,
        velocity_um_per_ms: v,
        weight: w,
        plastic,
    }
}

fn stim(list: &[(u32, f64)]) -> Vec<ExternalActivation> {
    list.iter()
        .map(|&(node, time_ms)| ExternalActivation { node, time_ms })
        .collect()
}

fn run(
    net: &Network,
    stdp: Option<StdpParams>,
    s: &[ExternalActivation],
    dur: f64,
) -> (Recording, Vec<f32>) {
    let spec = RecordSpec {
        activations: true,
        node_counts: true,
        ..Default::default()
    };
    simulate(net, &RunParams::new(dur, stdp).unwrap(), s, &spec).unwrap()
}

fn activations_of(rec: &Recording, node: u32) -> Vec<f64> {
    rec.activations
        .iter()
        .filter(|a| a.node == node)
        .map(|a| a.time_ms)
        .collect()
}

#[test]
fn single_edge_delivers_at_exactly_t_plus_d_over_v() {
    let (len, v, t0) = (123.4, 7.3, 1.25);
    let net = Network::from_edges(
        &[node(1.0, 1.0, 10.0), node(1.0, 1.0, 10.0)],
        &[edge(0, 1, len, v, 1.0, false)],
    )
    .unwrap();
    let (rec, _) = run(&net, None, &stim(&[(0, t0)]), 100.0);
    assert_eq!(activations_of(&rec, 1), vec![t0 + len / v]);
    assert_eq!(rec.activations[1].causal_edge, Some(0));
    assert_eq!(rec.activations[0].causal_edge, None);
    assert_eq!(rec.totals.arrivals, 1);
    // An arrival after the run's end is not delivered.
    let (rec, _) = run(&net, None, &stim(&[(0, t0)]), t0 + len / v - 1e-9);
    assert_eq!(rec.totals.arrivals, 0);
    // Small latencies (far below the bucket width) still come out exact.
    let net = Network::from_edges(
        &[node(0.0, 1.0, 10.0), node(0.0, 1.0, 10.0)],
        &[
            edge(0, 1, 0.003, 1.0, 1.0, false),
            edge(1, 0, 0.007, 1.0, 1.0, false),
        ],
    )
    .unwrap();
    let (rec, _) = run(&net, None, &stim(&[(0, 0.5)]), 0.52);
    let times: Vec<f64> = rec.activations.iter().map(|a| a.time_ms).collect();
    assert_eq!(times[..3], [0.5, 0.5 + 0.003, 0.5 + 0.003 + 0.007]);
}

#[test]
fn arrival_inside_refractory_period_is_lost_just_after_is_not() {
    // Node 2 is driven by node 0 (latency 1 ms) and node 1 (latency 1 ms);
    // its refractory period is 3 ms.
    let nodes = [
        node(0.0, 1.0, 10.0),
        node(0.0, 1.0, 10.0),
        node(3.0, 1.0, 10.0),
    ];
    let net = Network::from_edges(
        &nodes,
        &[
            edge(0, 2, 1.0, 1.0, 1.0, false),
            edge(1, 2, 1.0, 1.0, 1.0, false),
        ],
    )
    .unwrap();
    // Node 2 activates at 1.0; node 1's signal arrives at 3.999: lost.
    let (rec, _) = run(&net, None, &stim(&[(0, 0.0), (1, 2.999)]), 10.0);
    assert_eq!(activations_of(&rec, 2), vec![1.0]);
    assert_eq!(rec.totals.lost_arrivals, 1);
    assert_eq!(rec.lost_counts[2], 1);
    // Arriving at exactly 1 + R = 4.0: integrated, and it activates node 2.
    let (rec, _) = run(&net, None, &stim(&[(0, 0.0), (1, 3.0)]), 10.0);
    assert_eq!(activations_of(&rec, 2), vec![1.0, 4.0]);
    assert_eq!(rec.totals.lost_arrivals, 0);
    // A lost arrival does not wait: nothing happens later either.
    let (rec, _) = run(&net, None, &stim(&[(0, 0.0), (1, 1.5)]), 100.0);
    assert_eq!(activations_of(&rec, 2), vec![1.0]);
}

#[test]
fn stimulus_during_refractory_period_is_lost() {
    let net = Network::from_edges(&[node(2.0, 1.0, 10.0)], &[]).unwrap();
    let (rec, _) = run(&net, None, &stim(&[(0, 0.0), (0, 1.0), (0, 2.0)]), 10.0);
    assert_eq!(activations_of(&rec, 0), vec![0.0, 2.0]);
    assert_eq!(rec.totals.lost_external, 1);
}

#[test]
fn temporal_summation_follows_the_decay() {
    // Two arrivals of 0.6 with theta = 1 and tau_s = 10 ms cross the threshold
    // iff 0.6 exp(-dt/10) + 0.6 >= 1, i.e. dt <= 10 ln 1.5 = 4.0547 ms.
    let nodes = [
        node(0.0, 1.0, 10.0),
        node(0.0, 1.0, 10.0),
        node(0.0, 1.0, 10.0),
    ];
    let net = Network::from_edges(
        &nodes,
        &[
            edge(0, 2, 1.0, 1.0, 0.6, false),
            edge(1, 2, 1.0, 1.0, 0.6, false),
        ],
    )
    .unwrap();
    let limit = 10.0 * 1.5f64.ln();
    for (dt, fires) in [
        (0.0, true),
        (3.0, true),
        (limit - 1e-6, true),
        (limit + 1e-6, false),
        (6.0, false),
    ] {
        let (rec, _) = run(&net, None, &stim(&[(0, 0.0), (1, dt)]), 50.0);
        assert_eq!(!activations_of(&rec, 2).is_empty(), fires, "dt = {dt}");
    }
}

#[test]
fn inhibition_cancels() {
    // +0.6 and -0.6 together, then +0.6: the sum stays below 1.
    let nodes = [
        node(0.0, 1.0, 1e9),
        node(0.0, 1.0, 1e9),
        node(0.0, 1.0, 1e9),
        node(0.0, 1.0, 1e9),
    ];
    let edges = [
        edge(0, 3, 1.0, 1.0, 0.6, false),
        edge(1, 3, 1.0, 1.0, -0.6, false),
        edge(2, 3, 1.0, 1.0, 0.6, false),
    ];
    let net = Network::from_edges(&nodes, &edges).unwrap();
    let (rec, _) = run(&net, None, &stim(&[(0, 0.0), (1, 0.0), (2, 0.1)]), 10.0);
    assert!(activations_of(&rec, 3).is_empty());
    let (rec, _) = run(&net, None, &stim(&[(0, 0.0), (2, 0.1)]), 10.0);
    assert_eq!(activations_of(&rec, 3), vec![1.1]);
}

fn stdp(a_plus: f64, a_minus: f64, w_min: f64, w_max: f64) -> StdpParams {
    StdpParams::new(a_plus, a_minus, 20.0, 30.0, w_min, w_max, true).unwrap()
}

/// Node 0 -> node 2 is the plastic, sub-threshold edge under test; node 1 -> 2
/// is a strong fixed edge that makes node 2 activate when node 1 is driven.
fn pair_network(w0: f64) -> Network {
    let nodes = [
        node(0.0, 1.0, 10.0),
        node(0.0, 1.0, 10.0),
        node(0.5, 1.0, 10.0),
    ];
    Network::from_edges(
        &nodes,
        &[
            edge(0, 2, 2.0, 1.0, w0, true),
            edge(1, 2, 1.0, 1.0, 5.0, false),
        ],
    )
    .unwrap()
}

#[test]
fn stdp_pre_before_post_potentiates_by_the_formula() {
    let net = pair_network(0.1);
    let p = stdp(0.01, 0.02, -1.0, 1.0);
    // Pre arrival at 2.0, post activation at 7.0 (node 1 driven at 6.0).
    let (rec, w) = run(&net, Some(p), &stim(&[(0, 0.0), (1, 6.0)]), 7.5);
    assert_eq!(activations_of(&rec, 2), vec![7.0]);
    let expected = 0.1 + 0.01 * (-5.0f64 / 20.0).exp();
    assert!(
        (w[0] as f64 - expected).abs() < 1e-7,
        "{} vs {expected}",
        w[0]
    );
    assert_eq!(w[1], 5.0, "non-plastic edge unchanged");
}

#[test]
fn stdp_post_before_pre_depresses_by_the_formula() {
    let net = pair_network(0.1);
    let p = stdp(0.01, 0.02, -1.0, 1.0);
    // Post activation at 1.0, pre arrival at 6.0.
    let (rec, w) = run(&net, Some(p), &stim(&[(1, 0.0), (0, 4.0)]), 10.0);
    assert_eq!(activations_of(&rec, 2), vec![1.0]);
    let expected = 0.1 - 0.02 * (-5.0f64 / 30.0).exp();
    assert!(
        (w[0] as f64 - expected).abs() < 1e-7,
        "{} vs {expected}",
        w[0]
    );
    // Without STDP nothing changes.
    let (_, w) = run(&net, None, &stim(&[(1, 0.0), (0, 4.0)]), 10.0);
    assert_eq!(w[0], 0.1);
}

#[test]
fn stdp_clips_and_flips_sign() {
    // Depression of 0.5 exp(-1/30) from 0.1 would go to -0.38: clipped at -0.2.
    let net = pair_network(0.1);
    let (_, w) = run(
        &net,
        Some(stdp(0.01, 0.5, -0.2, 1.0)),
        &stim(&[(1, 0.0), (0, 0.0)]),
        10.0,
    );
    assert_eq!(w[0], -0.2f32);
    // Within range, an excitatory edge becomes inhibitory.
    let (_, w) = run(
        &net,
        Some(stdp(0.01, 0.2, -1.0, 1.0)),
        &stim(&[(1, 0.0), (0, 0.0)]),
        10.0,
    );
    let expected = 0.1 - 0.2 * (-1.0f64 / 30.0).exp();
    assert!(expected < 0.0 && (w[0] as f64 - expected).abs() < 1e-7);
    // Potentiation is clipped at w_max.
    let (_, w) = run(
        &net,
        Some(stdp(5.0, 0.0, -1.0, 0.3)),
        &stim(&[(0, 0.0), (1, 6.0)]),
        10.0,
    );
    assert_eq!(w[0], 0.3f32);
}

#[test]
fn lost_arrival_counts_for_stdp_only_when_asked() {
    // Node 2 (R = 0.5) activates at 2.0; the plastic arrival at 2.2 is lost.
    let net = pair_network(0.1);
    let s = stim(&[(1, 1.0), (0, 0.2)]);
    let (rec, w) = run(&net, Some(stdp(0.01, 0.02, -1.0, 1.0)), &s, 10.0);
    assert_eq!(rec.totals.lost_arrivals, 1);
    assert!(w[0] < 0.1);
    let p = StdpParams::new(0.01, 0.02, 20.0, 30.0, -1.0, 1.0, false).unwrap();
    let (_, w) = run(&net, Some(p), &s, 10.0);
    assert_eq!(w[0], 0.1);
}

#[test]
fn weight_snapshots_hold_weights_at_their_times() {
    let net = pair_network(0.1);
    let spec = RecordSpec {
        weight_snapshots_ms: vec![6.5, 1.0, 7.0],
        snapshot_edges: vec![0],
        ..Default::default()
    };
    let mut w = net.edge_weight.clone();
    let params = RunParams::new(8.0, Some(stdp(0.01, 0.02, -1.0, 1.0))).unwrap();
    let rec = Simulator::new(&net, &params)
        .unwrap()
        .run(
            &mut Workspace::default(),
            &mut w,
            &stim(&[(0, 0.0), (1, 6.0)]),
            &spec,
        )
        .unwrap();
    let times: Vec<f64> = rec.snapshots.iter().map(|s| s.time_ms).collect();
    assert_eq!(times, vec![1.0, 6.5, 7.0]);
    assert_eq!(rec.snapshots[0].weights, vec![0.1]);
    assert_eq!(rec.snapshots[1].weights, vec![0.1]);
    // The post activation at exactly 7.0 is included in the 7.0 snapshot.
    assert_eq!(rec.snapshots[2].weights, vec![w[0]]);
    assert!(w[0] > 0.1);
}

#[test]
fn bad_inputs_are_errors() {
    let net = pair_network(0.1);
    let p = RunParams::new(10.0, None).unwrap();
    let spec = RecordSpec::default();
    let e = simulate(&net, &p, &stim(&[(9, 0.0)]), &spec).unwrap_err();
    assert!(e.to_string().contains("node 9"));
    let e = simulate(&net, &p, &stim(&[(0, f64::NAN)]), &spec).unwrap_err();
    assert!(e.to_string().contains("time_ms"));
    // A bad duration is refused when the parameters are made, before any run.
    let e = RunParams::new(-1.0, None).unwrap_err();
    assert!(e.to_string().contains("duration_ms"));
    let mut w = vec![0.0; 1];
    let sim = Simulator::new(&net, &p).unwrap();
    assert!(sim
        .run(&mut Workspace::default(), &mut w, &[], &spec)
        .is_err());
}

pub(crate) fn test_network(n_rec: usize, seed: u64) -> Network {
    let np = NodeParamsSpec {
        refractory_period_ms: Distribution::Uniform { min: 1.0, max: 4.0 },
        threshold: Distribution::Uniform { min: 1.0, max: 2.5 },
        summation_tau_ms: Distribution::Constant(10.0),
    };
    let spec = TwoPopulationSpec {
        input_rows: 6,
        input_cols: 6,
        input_pitch_um: 20.0,
        n_recurrent: n_rec,
        recurrent_box_min_um: [0.0, 0.0, 30.0],
        recurrent_box_max_um: [200.0, 200.0, 230.0],
        connection_probability: [[0.0, 0.6], [0.0, 0.5]],
        tortuosity_min: 1.0,
        tortuosity_max: 1.3,
        velocity_um_per_ms: Distribution::Uniform {
            min: 20.0,
            max: 200.0,
        },
        input_nodes: np,
        recurrent_nodes: np,
        input_weights: WeightSpec {
            excitatory_fraction: 0.7,
            excitatory: (0.0, 1.0),
            inhibitory: (-1.0, 0.0),
            scale: 1.0,
        },
        recurrent_weights: WeightSpec {
            excitatory_fraction: 0.7,
            excitatory: (0.0, 1.0),
            inhibitory: (-2.0, 0.0),
            scale: 0.8,
        },
    };
    let mut net = build_two_population(&spec, seed).unwrap();
    net.set_plastic_classes(&[
        crate::network::EdgeClass::RecurrentToRecurrent,
        crate::network::EdgeClass::InputToRecurrent,
    ]);
    net
}

pub(crate) fn test_stimulus(n_in: u32, seed: u64) -> Vec<ExternalActivation> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut s = Vec::new();
    for node in 0..n_in {
        if rng.gen::<f64>() < 0.5 {
            let period = 3.0 + 10.0 * rng.gen::<f64>();
            let mut t = rng.gen::<f64>() * period;
            while t < 100.0 {
                s.push(ExternalActivation { node, time_ms: t });
                t += period;
            }
        }
    }
    s
}

/// The obvious implementation: one global binary heap of (time, target, edge),
/// same model. The engine must agree with it bit for bit.
/// (Long on purpose: it is the model written out in one piece, to be read
/// against the module doc; split up it would no longer be obviously right.)
fn reference_simulation(
    net: &Network,
    p: &StdpParams,
    s: &[ExternalActivation],
    dur: f64,
) -> (Vec<(u32, f64)>, Vec<f32>) {
    #[derive(PartialEq)]
    struct Ev(f64, u32, u32);
    impl Eq for Ev {}
    impl PartialOrd for Ev {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Ev {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            self.0
                .total_cmp(&o.0)
                .then(self.1.cmp(&o.1))
                .then(self.2.cmp(&o.2))
        }
    }
    let n = net.n_nodes();
    let mut heap = BinaryHeap::new();
    for a in s {
        heap.push(Reverse(Ev(a.time_ms, a.node, u32::MAX)));
    }
    let mut w = net.edge_weight.clone();
    let mut u = vec![0.0f64; n];
    let mut tu = vec![0.0f64; n];
    let mut last = vec![f64::NEG_INFINITY; n];
    let mut y = vec![0.0f64; n];
    let mut ty = vec![0.0f64; n];
    let mut x = vec![0.0f64; net.n_edges()];
    let mut tx = vec![0.0f64; net.n_edges()];
    let mut acts = Vec::new();
    while let Some(Reverse(Ev(t, j, e))) = heap.pop() {
        if t > dur {
            break;
        }
        let j = j as usize;
        let refr = t - last[j] < net.refractory_period_ms[j];
        if e == u32::MAX {
            if refr {
                continue;
            }
        } else {
            let e = e as usize;
            let wv = w[e] as f64;
            if net.edge_plastic[e] && (!refr || p.lost_arrivals_count()) {
                let yv = y[j] * (-(t - ty[j]) / p.tau_minus_ms()).exp();
                if yv > 0.0 {
                    w[e] = (wv - p.a_minus() * yv).clamp(p.w_min(), p.w_max()) as f32;
                }
                x[e] = x[e] * (-(t - tx[e]) / p.tau_plus_ms()).exp() + 1.0;
                tx[e] = t;
            }
            if refr {
                continue;
            }
            let uv = if u[j] == 0.0 {
                wv
            } else {
                u[j] * (-(t - tu[j]) / net.summation_tau_ms[j]).exp() + wv
            };
            tu[j] = t;
            if uv < net.threshold[j] {
                u[j] = uv;
                continue;
            }
        }
        u[j] = 0.0;
        tu[j] = t;
        last[j] = t;
        acts.push((j as u32, t));
        for e in 0..net.n_edges() {
            if net.edge_plastic[e] && net.edge_target[e] as usize == j && x[e] > 0.0 {
                let xv = x[e] * (-(t - tx[e]) / p.tau_plus_ms()).exp();
                w[e] = (w[e] as f64 + p.a_plus() * xv).clamp(p.w_min(), p.w_max()) as f32;
            }
        }
        y[j] = y[j] * (-(t - ty[j]) / p.tau_minus_ms()).exp() + 1.0;
        ty[j] = t;
        for e in net.out_edges(j as u32) {
            heap.push(Reverse(Ev(
                t + net.edge_latency_ms[e],
                net.edge_target[e],
                e as u32,
            )));
        }
    }
    (acts, w)
}

/// Compares an engine run with the reference: the same activation events (the
/// times are exact sums of latencies in both, so they must agree bit for bit)
/// and weights equal up to floating-point rounding.
fn check_against_reference(
    net: &Network,
    p: &StdpParams,
    s: &[ExternalActivation],
    dur: f64,
    tables: bool,
) {
    check_given_weights_against_reference(net, net, p, s, dur, tables);
}

/// As [`check_against_reference`], with the engine prepared for `prepared`
/// but run from the weights of `given` (the same network otherwise), which
/// the reference runs.
fn check_given_weights_against_reference(
    prepared: &Network,
    given: &Network,
    p: &StdpParams,
    s: &[ExternalActivation],
    dur: f64,
    tables: bool,
) {
    let net = given;
    let (ref_acts, ref_w) = reference_simulation(net, p, s, dur);
    let params = RunParams::new(dur, Some(*p)).unwrap();
    let spec = RecordSpec {
        activations: true,
        ..Default::default()
    };
    // One part (the plain engine), then the targets cut into parts that
    // must give the same bits.
    let mut runs = [1, 2, 3].map(|parts| {
        let sim = if tables {
            Simulator::with_parts(prepared, &params, parts).unwrap()
        } else {
            Simulator::with_parts_without_tables(prepared, &params, parts).unwrap()
        };
        assert_eq!(sim.n_parts(), parts);
        let mut w = net.edge_weight.clone();
        let rec = sim
            .run(&mut Workspace::default(), &mut w, s, &spec)
            .unwrap();
        (rec, w)
    });
    let (rec, w) = std::mem::take(&mut runs[0]);
    for (parts, other) in runs.iter().enumerate().skip(1) {
        assert!(
            other.0 == rec && other.1 == w,
            "{} parts differ from one",
            parts + 1
        );
    }
    let acts: Vec<(u32, f64)> = rec
        .activations
        .iter()
        .map(|a| (a.node, a.time_ms))
        .collect();
    assert!(
        acts.len() > 300,
        "network too quiet for a meaningful test: {}",
        acts.len()
    );
    assert_eq!(acts.len(), ref_acts.len());
    assert_eq!(acts, ref_acts);
    let worst = w
        .iter()
        .zip(&ref_w)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "largest weight difference {worst}");
    assert!(ref_w != net.edge_weight, "STDP changed nothing");
}

fn reference_stdp_with(tau_plus_ms: f64, tau_minus_ms: f64, lost_count: bool) -> StdpParams {
    StdpParams::new(0.02, 0.04, tau_plus_ms, tau_minus_ms, -1.0, 1.0, lost_count).unwrap()
}

fn reference_stdp() -> StdpParams {
    reference_stdp_with(16.0, 32.0, true)
}

#[test]
fn engine_matches_naive_reference_implementation() {
    let net = test_network(40, 11);
    let s = test_stimulus(36, 5);
    check_against_reference(&net, &reference_stdp(), &s, 100.0, true);
    check_against_reference(&net, &reference_stdp(), &s, 100.0, false);
    let p = reference_stdp_with(16.0, 32.0, false);
    check_against_reference(&net, &p, &s, 100.0, true);
}

#[test]
fn long_runs_move_the_origin_and_stay_exact() {
    // tau = 0.5 ms makes the scaled factors pass exp(200) after 100 ms, so the
    // origin moves several times in this run.
    let mut net = test_network(30, 4);
    for t in net.summation_tau_ms.iter_mut() {
        *t = 0.5;
    }
    let p = reference_stdp_with(2.0, 4.0, true);
    let s: Vec<ExternalActivation> = (0..4)
        .flat_map(|k| {
            test_stimulus(36, 9)
                .into_iter()
                .map(move |a| ExternalActivation {
                    node: a.node,
                    time_ms: a.time_ms + 100.0 * k as f64,
                })
        })
        .collect();
    check_against_reference(&net, &p, &s, 400.0, true);
    check_against_reference(&net, &p, &s, 400.0, false);
}

#[test]
fn heterogeneous_time_constants_use_the_direct_path() {
    let mut net = test_network(30, 6);
    for (i, t) in net.summation_tau_ms.iter_mut().enumerate() {
        *t = 4.0 + (i % 7) as f64;
    }
    let s = test_stimulus(36, 2);
    check_against_reference(&net, &reference_stdp(), &s, 100.0, true);
}

#[test]
fn same_seed_same_bits_at_one_and_two_threads() {
    use rayon::prelude::*;
    let net = test_network(40, 3);
    let p = RunParams::new(100.0, Some(stdp(0.02, 0.04, -1.0, 1.0))).unwrap();
    let spec = RecordSpec {
        activations: true,
        node_counts: true,
        activity_bin_ms: Some(25.0),
        weight_snapshots_ms: vec![50.0, 100.0],
        snapshot_edges: net.plastic_edges(),
    };
    let sim = Simulator::new(&net, &p).unwrap();
    let stimuli: Vec<_> = (0..8).map(|i| test_stimulus(36, i)).collect();
    let go = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                stimuli
                    .par_iter()
                    .map_init(Workspace::default, |ws, s| {
                        let mut w = net.edge_weight.clone();
                        (sim.run(ws, &mut w, s, &spec).unwrap(), w)
                    })
                    .collect::<Vec<_>>()
            })
    };
    let alone: Vec<_> = stimuli
        .iter()
        .map(|s| {
            let mut w = net.edge_weight.clone();
            (
                sim.run(&mut Workspace::default(), &mut w, s, &spec)
                    .unwrap(),
                w,
            )
        })
        .collect();
    assert!(alone[0].0.totals.activations > 100);
    assert_eq!(alone[0].0.snapshots.len(), 2);
    assert_eq!(go(1), alone);
    assert_eq!(go(2), alone);
}

#[test]
fn snapshots_inside_an_epoch_do_not_change_the_dynamics() {
    // A snapshot time inside an epoch splits it into phases; every event must
    // still be processed once, at its own target. (A phase used to take the
    // next group's resume cursor as this group's end, replaying events.)
    let net = test_network(40, 7);
    let p = RunParams::new(100.0, Some(reference_stdp())).unwrap();
    let plain = RecordSpec {
        activations: true,
        node_counts: true,
        ..Default::default()
    };
    let snapped = RecordSpec {
        weight_snapshots_ms: (1..40).map(|i| 2.4567 * i as f64).collect(),
        snapshot_edges: net.plastic_edges(),
        ..plain.clone()
    };
    for tables in [true, false] {
        let sim = if tables {
            Simulator::new(&net, &p)
        } else {
            Simulator::new_without_tables(&net, &p)
        }
        .unwrap();
        for seed in 0..4 {
            let s = test_stimulus(36, seed);
            let (mut w0, mut w1) = (net.edge_weight.clone(), net.edge_weight.clone());
            let r0 = sim
                .run(&mut Workspace::default(), &mut w0, &s, &plain)
                .unwrap();
            let mut r1 = sim
                .run(&mut Workspace::default(), &mut w1, &s, &snapped)
                .unwrap();
            assert!(r0.totals.activations > 100);
            assert_eq!(r1.snapshots.len(), 39);
            assert_eq!(r1.snapshots.last().unwrap().time_ms, 2.4567 * 39.0);
            r1.snapshots.clear();
            assert_eq!(r0, r1, "tables {tables}, stimulus {seed}");
            assert_eq!(w0, w1);
        }
    }
}

#[test]
fn parameters_are_checked_when_made_and_errors_name_them() {
    let ok = StdpParams::new(0.01, 0.02, 20.0, 30.0, -1.0, 1.0, true).unwrap();
    assert_eq!(
        (
            ok.a_plus(),
            ok.a_minus(),
            ok.tau_plus_ms(),
            ok.tau_minus_ms()
        ),
        (0.01, 0.02, 20.0, 30.0)
    );
    assert_eq!(
        (ok.w_min(), ok.w_max(), ok.lost_arrivals_count()),
        (-1.0, 1.0, true)
    );
    let bad = |e: SimError| match e {
        SimError::Param { name, value, .. } => (name, value),
        other => panic!("not a parameter error: {other}"),
    };
    let e = StdpParams::new(-0.5, 0.02, 20.0, 30.0, -1.0, 1.0, true).unwrap_err();
    assert_eq!(e.to_string(), "a_plus = -0.5: must be finite and >= 0");
    let e = StdpParams::new(0.01, 0.02, 0.0, 30.0, -1.0, 1.0, true).unwrap_err();
    assert_eq!(bad(e), ("tau_plus_ms", 0.0));
    let e = StdpParams::new(0.01, 0.02, 20.0, f64::INFINITY, -1.0, 1.0, true).unwrap_err();
    assert_eq!(bad(e), ("tau_minus_ms", f64::INFINITY));
    let e = StdpParams::new(0.01, 0.02, 20.0, 30.0, 2.0, 1.0, true).unwrap_err();
    assert_eq!(e.to_string(), "w_min = 2: must be <= w_max = 1");
    let e = StdpParams::new(0.01, 0.02, 20.0, 30.0, -1.0, f64::NAN, true).unwrap_err();
    assert_eq!(bad(e).0, "w_max");
    let run = RunParams::new(50.0, Some(ok)).unwrap();
    assert_eq!((run.duration_ms(), run.stdp()), (50.0, Some(&ok)));
    assert_eq!(
        bad(RunParams::new(f64::NAN, None).unwrap_err()).0,
        "duration_ms"
    );
}

#[test]
fn tiny_time_constants_match_the_reference() {
    // tau_s and the STDP taus far below the epoch length (latencies here are
    // >= 0.15 ms): the scaled factors exp((t - origin)/tau) used to pass
    // exp's range within one epoch, giving inf/inf = NaN (weights) and
    // activations from nothing. Thresholds at 0.5 so single arrivals fire.
    let mut net = test_network(40, 11);
    for t in net.summation_tau_ms.iter_mut() {
        *t = 1e-4;
    }
    for th in net.threshold.iter_mut() {
        *th = 0.5;
    }
    let s = test_stimulus(36, 5);
    // w in [-2, 2] holds every initial weight: an update too small for f64
    // (y ~ e^-800) still clamps a weight that starts outside [w_min, w_max],
    // and where such a y underflows to 0 differs between the two engines.
    let p = StdpParams::new(0.02, 0.04, 1e-4, 5e-4, -2.0, 2.0, true).unwrap();
    check_against_reference(&net, &p, &s, 100.0, true);
    check_against_reference(&net, &p, &s, 100.0, false);
}

#[test]
fn tiny_tau_sums_only_simultaneous_arrivals() {
    // tau_s = 1e-4 ms: arrivals 0.08 ms apart decay by e^-800 and do not add
    // up; arrivals at the same instant do. (0.08 ms into a 1 ms epoch, the
    // scaled factor exp(800) used to overflow and the node fired.)
    let nodes = [
        node(0.0, 1.0, 1e-4),
        node(0.0, 1.0, 1e-4),
        node(0.0, 1.0, 1e-4),
    ];
    let net = Network::from_edges(
        &nodes,
        &[
            edge(0, 2, 1.0, 1.0, 0.6, false),
            edge(1, 2, 1.0, 1.0, 0.6, false),
        ],
    )
    .unwrap();
    for (dt, fires) in [(0.0, true), (0.01, false), (0.08, false), (5.0, false)] {
        let (rec, _) = run(&net, None, &stim(&[(0, 0.0), (1, dt)]), 50.0);
        assert_eq!(!activations_of(&rec, 2).is_empty(), fires, "dt = {dt}");
    }
}

#[test]
fn a_time_constant_too_small_for_the_run_is_refused_naming_it() {
    let nodes = [node(1.0, 1.0, 1e-12), node(1.0, 1.0, 1e-12)];
    let net = Network::from_edges(&nodes, &[edge(0, 1, 1.0, 1.0, 0.6, false)]).unwrap();
    let e = Simulator::new(&net, &RunParams::new(1000.0, None).unwrap()).unwrap_err();
    assert!(matches!(e, SimError::TooLong { .. }), "{e}");
    assert!(
        e.to_string().contains("time constant, 0.000000000001 ms"),
        "{e}"
    );
}

/// Three nodes joined both ways with equal latencies and weights above
/// threshold: every activation makes two, so activity doubles each 1 ms.
fn runaway_triangle(r: f64) -> Network {
    let nodes = [node(r, 1.0, 10.0), node(r, 1.0, 10.0), node(r, 1.0, 10.0)];
    let mut edges = Vec::new();
    for s in 0..3 {
        for t in 0..3 {
            if s != t {
                edges.push(edge(s, t, 1.0, 1.0, 2.0, false));
            }
        }
    }
    Network::from_edges(&nodes, &edges).unwrap()
}

fn limited(max_events_in_flight: u64, max_activations: u64, max_arrivals: u64) -> RunParams {
    RunParams::new(1e6, None)
        .unwrap()
        .with_limits(RunLimits {
            max_events_in_flight,
            max_activations,
            max_arrivals,
        })
        .unwrap()
}

#[test]
fn runaway_activity_stops_with_an_error_naming_the_busiest_node() {
    // R = 0: two arrivals at one instant make two activations, so the events
    // in flight double every ms (this used to run until memory ran out).
    let net = runaway_triangle(0.0);
    let spec = RecordSpec::default();
    let s = stim(&[(0, 0.0)]);
    let e = simulate(&net, &limited(1000, u64::MAX, u64::MAX), &s, &spec).unwrap_err();
    match &e {
        SimError::Runaway {
            key, count, limit, ..
        } => {
            assert_eq!(*key, "max_events_in_flight");
            assert!(*count > 1000 && *limit == 1000, "{e}");
        }
        other => panic!("expected Runaway, got {other}"),
    }
    let msg = e.to_string();
    assert!(msg.contains("node 0 is the busiest") && msg.contains("even at one instant"));
    // R > 0 caps the rate at 1/R, but with a tiny R the run is still far
    // too busy: stopped by the arrival and activation counts instead.
    let net = runaway_triangle(1e-3);
    let e = simulate(&net, &limited(1 << 20, u64::MAX, 50_000), &s, &spec).unwrap_err();
    assert!(
        matches!(
            e,
            SimError::Runaway {
                key: "max_arrivals",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("allows up to 1000000 Hz"), "{e}");
    let e = simulate(&net, &limited(1 << 20, 20_000, u64::MAX), &s, &spec).unwrap_err();
    assert!(
        matches!(
            e,
            SimError::Runaway {
                key: "max_activations",
                ..
            }
        ),
        "{e}"
    );
    // A limit of 0 is refused when the parameters are made.
    let e = RunParams::new(1.0, None)
        .unwrap()
        .with_limits(RunLimits {
            max_arrivals: 0,
            ..RunLimits::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("max_arrivals"), "{e}");
}

#[test]
fn a_run_within_its_limits_is_unchanged_by_them() {
    let net = test_network(40, 3);
    let s = test_stimulus(36, 1);
    let spec = RecordSpec {
        activations: true,
        ..Default::default()
    };
    let p = RunParams::new(100.0, Some(stdp(0.02, 0.04, -1.0, 1.0))).unwrap();
    let (a, wa) = simulate(&net, &p, &s, &spec).unwrap();
    let t = a.totals;
    let tight = p
        .clone()
        .with_limits(RunLimits {
            max_events_in_flight: u64::MAX,
            max_activations: t.activations,
            max_arrivals: t.arrivals,
        })
        .unwrap();
    let (b, wb) = simulate(&net, &tight, &s, &spec).unwrap();
    assert_eq!((a.activations, wa), (b.activations, wb));
}

#[test]
fn a_non_finite_weight_is_never_returned() {
    // The guard behind the arithmetic: a NaN plastic weight stays NaN, and
    // the run refuses to hand it back, naming the edge.
    let net = pair_network(0.1);
    let p = RunParams::new(10.0, Some(stdp(0.02, 0.04, -1.0, 1.0))).unwrap();
    let sim = Simulator::new(&net, &p).unwrap();
    let mut w = net.edge_weight.clone();
    let e0 = net.plastic_edges()[0];
    w[e0 as usize] = f32::NAN;
    let e = sim
        .run(
            &mut Workspace::default(),
            &mut w,
            &stim(&[(0, 0.0)]),
            &RecordSpec::default(),
        )
        .unwrap_err();
    assert!(
        matches!(e, SimError::NonFiniteWeight { edge, .. } if edge == e0),
        "{e}"
    );
}

#[test]
fn an_activity_table_too_big_for_memory_is_an_error_not_an_abort() {
    let net = pair_network(0.1);
    let p = RunParams::new(1e6, None).unwrap();
    let spec = RecordSpec {
        activity_bin_ms: Some(1e-9),
        ..Default::default()
    };
    let e = simulate(&net, &p, &stim(&[(0, 0.0)]), &spec).unwrap_err();
    assert!(matches!(e, SimError::Memory(_)), "{e}");
    assert!(e.to_string().contains("activity of 3 nodes"), "{e}");
}

#[test]
fn count_limits_are_rates_so_long_healthy_runs_are_not_runaways() {
    let short = RunParams::new(600.0, None).unwrap();
    assert_eq!(*short.limits(), RunLimits::default());
    let long = RunParams::new(1e7, None).unwrap();
    let d = RunLimits::default();
    assert_eq!(long.limits().max_arrivals, d.max_arrivals * 10_000);
    assert_eq!(long.limits().max_activations, d.max_activations * 10_000);
    // Memory does not grow with the run, so neither does its bound.
    assert_eq!(long.limits().max_events_in_flight, d.max_events_in_flight);
}

#[test]
fn emissions_beyond_the_wheel_wait_parked_and_stay_exact() {
    // One edge of 1e-4 ms makes the epoch that short, so the longest
    // latencies (several ms) are more than the wheel's 65,536 epochs ahead:
    // those emissions wait in the heap, and must arrive exactly as the
    // reference says.
    let mut net = test_network(30, 12);
    let (lo, hi) = (f64::INFINITY, 0.0f64);
    let (lat_min, lat_max) = net
        .edge_latency_ms
        .iter()
        .fold((lo, hi), |(a, b), &l| (a.min(l), b.max(l)));
    assert!(lat_max / 1e-4 > 65536.0, "latencies {lat_min}..{lat_max}");
    net.edge_latency_ms[0] = 1e-4;
    let s = test_stimulus(36, 8);
    let p = reference_stdp();
    check_against_reference(&net, &p, &s, 100.0, true);
    let sim = Simulator::new(&net, &RunParams::new(100.0, Some(p)).unwrap()).unwrap();
    assert_eq!(sim.ring_len, 1 << 16, "the test must overflow the wheel");
}

#[test]
fn simultaneous_arrivals_are_ordered_by_edge_even_in_a_crowd() {
    // Every input node fires at the same instants and every input edge has
    // the same latency, so each recurrent node gets dozens of arrivals at
    // one time: the epoch sort's crowded-slot path, where only the edge id
    // (then the emission) orders them. The reference orders (time, target,
    // edge) with a heap; the activations must be the same bit for bit.
    let mut net = test_network(40, 13);
    let n_in = 36u32;
    for e in 0..net.n_edges() {
        if net.edge_source[e] < n_in {
            net.edge_latency_ms[e] = 1.25;
        }
    }
    let s: Vec<ExternalActivation> = (0..10)
        .flat_map(|k| {
            (0..n_in).map(move |node| ExternalActivation {
                node,
                time_ms: 0.5 + 9.0 * k as f64,
            })
        })
        .collect();
    check_against_reference(&net, &reference_stdp(), &s, 100.0, true);
    check_against_reference(&net, &reference_stdp(), &s, 100.0, false);
}

#[test]
fn a_run_uses_the_weights_it_is_given_not_the_networks() {
    // Arrivals on non-plastic edges carry w * g from the moment they are
    // written, so that weight must be the run's (experiment 2 runs learned
    // weights on the original network), not the network's initial one.
    let mut net = test_network(40, 14);
    // Input edges not plastic: those are the ones whose w * g is written early.
    net.set_plastic_classes(&[crate::network::EdgeClass::RecurrentToRecurrent]);
    let s = test_stimulus(36, 3);
    let p = reference_stdp();
    let mut given = net.clone();
    for (e, w) in given.edge_weight.iter_mut().enumerate() {
        *w *= if e % 3 == 0 { 1.3 } else { 0.8 };
    }
    check_given_weights_against_reference(&net, &given, &p, &s, 100.0, true);
}

/// A full recording (activations with causes, counts, activity, snapshots
/// inside epochs) and the final weights of one run with the targets cut into
/// `parts`, inside a rayon pool of `threads`.
fn run_in_parts(
    net: &Network,
    params: &RunParams,
    s: &[ExternalActivation],
    parts: usize,
    threads: usize,
    tables: bool,
) -> Result<(Recording, Vec<f32>), SimError> {
    let spec = RecordSpec {
        activations: true,
        node_counts: true,
        activity_bin_ms: Some(7.5),
        weight_snapshots_ms: vec![3.3, 25.0, 25.0, 61.7, 99.99],
        snapshot_edges: (0..net.n_edges() as u32).rev().step_by(3).collect(),
    };
    let sim = if tables {
        Simulator::with_parts(net, params, parts)
    } else {
        Simulator::with_parts_without_tables(net, params, parts)
    }?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut w = net.edge_weight.clone();
        let mut ws = Workspace::default();
        // Twice through one workspace: a reused workspace starts from rest.
        sim.run(&mut ws, &mut w, s, &spec)?;
        let mut w = net.edge_weight.clone();
        let rec = sim.run(&mut ws, &mut w, s, &spec)?;
        Ok((rec, w))
    })
}

#[test]
fn one_network_in_parts_gives_the_same_bits_at_any_part_and_thread_count() {
    // Integer latencies on a third of the edges make ties (equal arrival
    // times at one target, from several edges), R up to 4 ms refractory loss.
    let mut net = test_network(50, 21);
    for e in (0..net.n_edges()).step_by(3) {
        net.edge_latency_ms[e] = 1.0 + (e % 4) as f64;
    }
    let s = test_stimulus(36, 17);
    for stdp in [Some(reference_stdp()), None] {
        let params = RunParams::new(100.0, stdp).unwrap();
        for tables in [true, false] {
            let one = run_in_parts(&net, &params, &s, 1, 1, tables).unwrap();
            assert!(one.0.totals.lost_arrivals > 100, "{:?}", one.0.totals);
            assert!(one.0.activations.len() > 300);
            assert_eq!(one.0.snapshots.len(), 5);
            for (parts, threads) in [(2, 1), (2, 2), (3, 2), (7, 2), (1000, 2)] {
                let other = run_in_parts(&net, &params, &s, parts, threads, tables).unwrap();
                assert!(
                    other == one,
                    "{parts} parts on {threads} threads differ (stdp {}, tables {tables})",
                    stdp.is_some()
                );
            }
        }
    }
}

#[test]
fn parts_balance_in_edges_and_cover_every_node_once() {
    let net = test_network(50, 22);
    let p = RunParams::new(10.0, None).unwrap();
    for parts in [1, 2, 3, 8] {
        let sim = Simulator::with_parts(&net, &p, parts).unwrap();
        assert_eq!(sim.n_parts(), parts);
        assert_eq!(sim.parts[0].lo, 0);
        assert_eq!(sim.parts[parts - 1].hi as usize, net.n_nodes());
        for w in sim.parts.windows(2) {
            assert_eq!(w[0].hi, w[1].lo);
        }
        // Every edge in exactly one part's table, the part of its target.
        let total: usize = sim.parts.iter().map(|p| p.out_edges.len()).sum();
        assert_eq!(total, net.n_edges());
        for part in &sim.parts {
            assert!(part.out_edges.iter().all(|oe| part.owns(oe.target)));
        }
        // In-edges per part within a factor of two of the mean (50 recurrent
        // nodes with about 40 in-edges each, so a node is a small step).
        let mean = net.n_edges() as f64 / parts as f64;
        for part in &sim.parts {
            let m = part.out_edges.len() as f64;
            assert!(
                m > 0.5 * mean && m < 1.5 * mean,
                "{m} in-edges, mean {mean}"
            );
        }
    }
    // More parts than nodes: one per node.
    let tiny = runaway_triangle(1.0);
    let sim = Simulator::with_parts(&tiny, &p, 10).unwrap();
    assert_eq!(sim.n_parts(), 3);
}

#[test]
fn a_runaway_in_parts_stops_with_the_same_error() {
    let net = runaway_triangle(0.0);
    let s = stim(&[(0, 0.0)]);
    for limits in [(1000, u64::MAX, u64::MAX), (1 << 20, 20_000, u64::MAX)] {
        let params = limited(limits.0, limits.1, limits.2);
        let one = run_in_parts(&net, &params, &s, 1, 1, true)
            .unwrap_err()
            .to_string();
        for parts in [2, 3] {
            let other = run_in_parts(&net, &params, &s, parts, 2, true)
                .unwrap_err()
                .to_string();
            assert_eq!(other, one);
        }
    }
}

#[test]
fn set_thresholds_runs_as_a_network_built_with_them() {
    // Thresholds set on a prepared simulator give the same run, bit for bit,
    // as a simulator prepared from a network that has them; they reach only
    // the runs after the call; a bad set is refused and changes nothing.
    let net = test_network(40, 5);
    let s = test_stimulus(36, 9);
    let p = StdpParams::new(0.01, 0.012, 20.0, 20.0, -2.0, 2.0, true).unwrap();
    let params = RunParams::new(100.0, Some(p)).unwrap();
    let spec = RecordSpec {
        activations: true,
        node_counts: true,
        ..Default::default()
    };
    let raised: Vec<f64> = net
        .threshold
        .iter()
        .enumerate()
        .map(|(j, h)| h * (0.7 + 0.05 * (j % 11) as f64))
        .collect();
    let mut other = net.clone();
    other.threshold = raised.clone();
    let run_on = |sim: &Simulator| {
        let mut w = net.edge_weight.clone();
        let rec = sim
            .run(&mut Workspace::default(), &mut w, &s, &spec)
            .unwrap();
        (rec, w)
    };
    let want = run_on(&Simulator::new(&other, &params).unwrap());
    let mut sim = Simulator::new(&net, &params).unwrap();
    let before = run_on(&sim);
    assert_ne!(before.0, want.0, "the thresholds must matter here");
    assert_eq!(sim.thresholds(), &net.threshold[..]);
    sim.set_thresholds(&raised).unwrap();
    assert_eq!(run_on(&sim), want);
    let e = sim.set_thresholds(&raised[1..]).unwrap_err();
    assert!(matches!(e, SimError::ThresholdCount { .. }), "{e}");
    let mut bad = raised.clone();
    bad[7] = 0.0;
    let e = sim.set_thresholds(&bad).unwrap_err();
    assert!(matches!(e, SimError::Threshold { node: 7, .. }), "{e}");
    bad[7] = f64::NAN;
    assert!(sim.set_thresholds(&bad).is_err());
    assert_eq!(
        sim.thresholds(),
        &raised[..],
        "a refused set changes nothing"
    );
}
