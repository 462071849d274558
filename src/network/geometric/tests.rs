use super::*;
use crate::network::distance_um;

fn spec() -> GeometricSpec {
    GeometricSpec {
        n_nodes: 1500,
        size_um: [300.0, 300.0, 300.0],
        kernel: Kernel::Exponential { lambda_um: 40.0 },
        p_max: 0.5,
        out_degree: None,
        cutoff_um: Some(150.0),
        inhibitory_fraction: 0.2,
        weight_excitatory: 0.4,
        weight_inhibitory: -1.2,
        velocity_um_per_ms: [100.0, 300.0],
        synaptic_delay_ms: 0.5,
        node: NodeParams {
            refractory_period_ms: 2.0,
            threshold: 1.0,
            summation_tau_ms: 5.0,
        },
        seed: 11,
    }
}

/// Per distance bin: the number of edges against the sum of the formula's
/// probabilities over every ordered pair in the bin, within 4 binomial
/// standard errors; for both kernels.
#[test]
fn connection_probability_follows_the_kernel_binned_by_distance() {
    for kernel in [
        Kernel::Exponential { lambda_um: 40.0 },
        Kernel::Gaussian { sigma_um: 50.0 },
    ] {
        let s = GeometricSpec { kernel, ..spec() };
        let net = build_geometric(&s).unwrap();
        let pos = net.position_um();
        let n = pos.len();
        let bin_um = 15.0;
        let bins = 10; // up to the cutoff, 150 um
        let mut expected = vec![0.0; bins];
        let mut variance = vec![0.0; bins];
        let mut observed = vec![0.0; bins];
        for i in 0..n {
            for j in 0..n {
                let d = distance_um(pos[i], pos[j]);
                if i == j || d > 150.0 {
                    continue;
                }
                let b = ((d / bin_um) as usize).min(bins - 1);
                let p = s.p_max * kernel.shape(d);
                expected[b] += p;
                variance[b] += p * (1.0 - p);
            }
        }
        for (e, &t) in net.edge_target().iter().enumerate() {
            let s_ = net.edge_source()[e] as usize;
            let d = distance_um(pos[s_], pos[t as usize]);
            assert!(d <= 150.0, "an edge beyond the cutoff: {d} um");
            observed[((d / bin_um) as usize).min(bins - 1)] += 1.0;
        }
        for b in 0..bins {
            let sd = variance[b].sqrt();
            assert!(
                (observed[b] - expected[b]).abs() <= 4.0 * sd + 1.0,
                "{kernel:?} bin {b}: {} edges, expected {:.1} +- {sd:.1}",
                observed[b],
                expected[b]
            );
        }
    }
}

#[test]
fn dale_the_sign_belongs_to_the_source() {
    let net = build_geometric(&spec()).unwrap();
    let mut inhibitory = 0;
    for i in 0..net.n_nodes() {
        let w = &net.edge_weight()[net.out_edges(i as u32)];
        assert!(
            w.iter().all(|&x| x == 0.4) || w.iter().all(|&x| x == -1.2),
            "node {i} has out-edges of both signs"
        );
        inhibitory += usize::from(w.first().is_some_and(|&x| x < 0.0));
    }
    // About 20% of the nodes with out-edges.
    let frac = inhibitory as f64 / net.n_nodes() as f64;
    assert!((0.15..0.25).contains(&frac), "inhibitory fraction {frac}");
}

#[test]
fn the_network_is_the_same_at_any_thread_count_and_follows_the_seed() {
    let build = |threads: usize, s: &GeometricSpec| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| build_geometric(s).unwrap())
    };
    let one = build(1, &spec());
    assert_eq!(one, build(2, &spec()));
    assert_eq!(one, build(3, &spec()));
    let other = build(2, &GeometricSpec { seed: 12, ..spec() });
    assert_ne!(one.edge_target(), other.edge_target());
}

#[test]
fn edges_are_geometric_sorted_without_self_loops() {
    let s = spec();
    let net = build_geometric(&s).unwrap();
    assert!(net.n_edges() > 1000);
    let pos = net.position_um();
    for i in 0..net.n_nodes() {
        let r = net.out_edges(i as u32);
        let t = &net.edge_target()[r.clone()];
        assert!(
            t.windows(2).all(|w| w[0] < w[1]),
            "targets of {i} unsorted or repeated"
        );
        assert!(!t.contains(&(i as u32)), "self-edge at {i}");
        for e in r {
            let (l, v) = (net.edge_length_um()[e], net.edge_velocity_um_per_ms()[e]);
            assert_eq!(l, distance_um(pos[i], pos[net.edge_target()[e] as usize]));
            assert!((100.0..=300.0).contains(&v));
            assert_eq!(net.edge_latency_ms()[e], l / v + 0.5);
            assert!(!net.edge_plastic()[e]);
        }
    }
    assert!(pos
        .iter()
        .all(|p| (0..3).all(|k| (0.0..300.0).contains(&p[k]))));
}

#[test]
fn the_out_degree_target_holds_away_from_the_boundary() {
    let s = GeometricSpec {
        n_nodes: 12000,
        size_um: [600.0, 600.0, 600.0],
        out_degree: Some(40.0),
        cutoff_um: Some(160.0),
        ..spec()
    };
    let default = GeometricSpec {
        cutoff_um: None,
        ..s.clone()
    };
    let cutoff_default = default.effective_cutoff_um().unwrap();
    assert!((cutoff_default - 40.0 * 1000f64.ln()).abs() < 1e-9);
    let cutoff = s.effective_cutoff_um().unwrap();
    let net = build_geometric(&s).unwrap();
    let pos = net.position_um();
    let interior: Vec<usize> = (0..net.n_nodes())
        .filter(|&i| (0..3).all(|k| pos[i][k] > cutoff && pos[i][k] < 600.0 - cutoff))
        .collect();
    assert!(interior.len() > 10);
    let mean = interior
        .iter()
        .map(|&i| net.out_edges(i as u32).len() as f64)
        .sum::<f64>()
        / interior.len() as f64;
    // Poisson-like count: sd about sqrt(40 / interior nodes) * ...; 10%.
    assert!((mean - 40.0).abs() < 4.0, "interior mean out-degree {mean}");
    assert!(net.n_edges() <= s.expected_edges().unwrap());
}

#[test]
fn a_sheet_keeps_every_node_at_z_zero() {
    let s = GeometricSpec {
        size_um: [500.0, 500.0, 0.0],
        ..spec()
    };
    let net = build_geometric(&s).unwrap();
    assert!(net.position_um().iter().all(|p| p[2] == 0.0));
    assert!(net.n_edges() > 0);
}

#[test]
fn bad_specs_name_the_field() {
    let msg = |s: GeometricSpec| build_geometric(&s).unwrap_err().to_string();
    assert!(msg(GeometricSpec {
        n_nodes: 0,
        ..spec()
    })
    .contains("network.geometric.n_nodes"));
    assert!(msg(GeometricSpec {
        kernel: Kernel::Exponential { lambda_um: -1.0 },
        ..spec()
    })
    .contains("network.geometric.lambda_um"));
    assert!(msg(GeometricSpec {
        p_max: 1.5,
        ..spec()
    })
    .contains("network.geometric.p_max"));
    assert!(msg(GeometricSpec {
        weight_inhibitory: 0.3,
        ..spec()
    })
    .contains("network.geometric.weight_inhibitory"));
    assert!(msg(GeometricSpec {
        velocity_um_per_ms: [300.0, 100.0],
        ..spec()
    })
    .contains("network.geometric.velocity_um_per_ms"));
    assert!(msg(GeometricSpec {
        synaptic_delay_ms: f64::NAN,
        ..spec()
    })
    .contains("network.geometric.synaptic_delay_ms"));
    let m = msg(GeometricSpec {
        out_degree: Some(1e6),
        ..spec()
    });
    assert!(
        m.contains("network.geometric.out_degree") && m.contains("p_max"),
        "{m}"
    );
}
