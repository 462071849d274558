//! The `.npy` export of a network reads back to exactly the arrays the
//! network's accessors give (through the public API only, as a user would).

mod common;

use common::read_json;

use geodyn::network::{
    build_two_population, Distribution, EdgeClass, EdgeSpec, Network, NodeParams, NodeParamsSpec,
    NodeSpec, Population, TwoPopulationSpec, WeightSpec,
};
use ndarray::{Array1, Array2};
use ndarray_npy::read_npy;
use std::path::Path;

fn hand_made() -> Network {
    let node = |x: f64, population, r: f64| NodeSpec {
        position_um: [x, 2.0 * x, -x],
        population,
        params: NodeParams {
            refractory_period_ms: r,
            threshold: 1.0 + r,
            summation_tau_ms: 5.0 + x,
        },
    };
    let edge = |source, target, length_um, weight| EdgeSpec {
        source,
        target,
        length_um,
        velocity_um_per_ms: 40.0 + length_um,
        weight,
        plastic: false,
    };
    let nodes = [
        node(0.0, Population::Input, 0.0),
        node(1.5, Population::Input, 0.5),
        node(3.0, Population::Recurrent, 2.0),
        node(4.5, Population::Recurrent, 3.5),
    ];
    // Out of CSR order on purpose: the export is in the network's edge order.
    let edges = [
        edge(3, 2, 17.0, -0.75),
        edge(0, 2, 30.0, 0.5),
        edge(2, 3, 12.5, 1.25),
        edge(1, 0, 7.0, 0.125),
        edge(2, 1, 9.0, -2.0),
        edge(0, 3, 44.0, 0.0625),
    ];
    let mut net = Network::from_edges(&nodes, &edges).expect("valid network");
    net.set_plastic_classes(&[EdgeClass::RecurrentToRecurrent, EdgeClass::InputToRecurrent]);
    net
}

fn built() -> Network {
    let np = NodeParamsSpec {
        refractory_period_ms: Distribution::Uniform { min: 1.0, max: 4.0 },
        threshold: Distribution::Uniform { min: 1.0, max: 2.5 },
        summation_tau_ms: Distribution::Constant(10.0),
    };
    let w = WeightSpec {
        excitatory_fraction: 0.7,
        excitatory: (0.0, 1.0),
        inhibitory: (-1.0, 0.0),
        scale: 1.0,
    };
    let spec = TwoPopulationSpec {
        input_rows: 3,
        input_cols: 4,
        input_pitch_um: 20.0,
        n_recurrent: 9,
        recurrent_box_min_um: [0.0, 0.0, 30.0],
        recurrent_box_max_um: [100.0, 100.0, 130.0],
        connection_probability: [[0.1, 0.6], [0.2, 0.5]],
        tortuosity_min: 1.0,
        tortuosity_max: 1.3,
        velocity_um_per_ms: Distribution::Uniform {
            min: 20.0,
            max: 200.0,
        },
        input_nodes: np,
        recurrent_nodes: np,
        input_weights: w,
        recurrent_weights: w,
    };
    let mut net = build_two_population(&spec, 3).expect("valid spec");
    net.set_plastic_classes(&[EdgeClass::RecurrentToRecurrent]);
    net
}

fn read1<T: ndarray_npy::ReadableElement + Copy>(dir: &Path, name: &str) -> Vec<T> {
    let a: Array1<T> = read_npy(dir.join(format!("{name}.npy"))).expect(name);
    a.iter().copied().collect()
}

fn check_round_trip(net: &Network) {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A directory that does not exist yet: the export creates it.
    let dir = tmp.path().join("net");
    geodyn::report::export_network_npy(net, &dir).expect("export");
    assert!(dir.join("README.md").is_file());

    let n = net.n_nodes();
    let pos: Array2<f64> = read_npy(dir.join("node_position_um.npy")).expect("positions");
    assert_eq!(pos.dim(), (n, 3));
    for (i, p) in net.position_um().iter().enumerate() {
        assert_eq!(pos.row(i).to_vec(), p.to_vec(), "node {i}");
    }
    let population: Vec<u8> = net.population().iter().map(|&p| p as u8).collect();
    assert_eq!(read1::<u8>(&dir, "node_population"), population);
    assert_eq!(
        read1::<f64>(&dir, "node_refractory_period_ms"),
        net.refractory_period_ms()
    );
    assert_eq!(read1::<f64>(&dir, "node_threshold"), net.threshold());
    assert_eq!(
        read1::<f64>(&dir, "node_summation_tau_ms"),
        net.summation_tau_ms()
    );

    assert_eq!(read1::<u32>(&dir, "edge_source"), net.edge_source());
    assert_eq!(read1::<u32>(&dir, "edge_target"), net.edge_target());
    assert_eq!(read1::<f64>(&dir, "edge_length_um"), net.edge_length_um());
    assert_eq!(
        read1::<f64>(&dir, "edge_velocity_um_per_ms"),
        net.edge_velocity_um_per_ms()
    );
    assert_eq!(read1::<f64>(&dir, "edge_latency_ms"), net.edge_latency_ms());
    assert_eq!(read1::<f32>(&dir, "edge_weight"), net.edge_weight());
    let plastic: Vec<u8> = net.edge_plastic().iter().map(|&p| p as u8).collect();
    assert_eq!(read1::<u8>(&dir, "edge_plastic"), plastic);
    let class: Vec<u8> = net.edge_class().iter().map(|&c| c as u8).collect();
    assert_eq!(read1::<u8>(&dir, "edge_class"), class);

    check_meta(net, &dir);

    // The files hold what the README says: edges in CSR order by source, and
    // the node arrays agree with node_params.
    let src = net.edge_source();
    assert!(src.windows(2).all(|w| w[0] <= w[1]));
    for i in 0..n as u32 {
        let p = net.node_params(i);
        assert_eq!(p.threshold, net.threshold()[i as usize]);
        for e in net.out_edges(i) {
            assert_eq!(src[e], i);
        }
    }
}

#[test]
fn export_reads_back_to_the_network_arrays() {
    let net = hand_made();
    assert_eq!((net.n_nodes(), net.n_edges()), (4, 6));
    assert!(net.edge_plastic().iter().any(|&p| p) && !net.edge_plastic().iter().all(|&p| p));
    check_round_trip(&net);
    let net = built();
    assert!(net.n_edges() > 20, "{} edges", net.n_edges());
    check_round_trip(&net);
}

/// `meta.json` lists exactly the `.npy` files of the export, each with the
/// shape and dtype its own header gives, and the counts of the network.
fn check_meta(net: &Network, dir: &Path) {
    let meta = read_json(&dir.join("meta.json"));
    assert_eq!(meta["n_nodes"], net.n_nodes());
    assert_eq!(meta["n_edges"], net.n_edges());
    assert_eq!(meta["n_plastic_edges"], net.plastic_edges().len());
    let arrays = meta["arrays"].as_object().unwrap();
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".npy"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = arrays
        .values()
        .map(|a| a["file"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(files, listed);
    for a in arrays.values() {
        let bytes = std::fs::read(dir.join(a["file"].as_str().unwrap())).unwrap();
        let header = String::from_utf8_lossy(&bytes[10..bytes.len().min(200)]).to_string();
        let dtype = a["dtype"].as_str().unwrap();
        assert!(header.contains(&format!("'descr': '{dtype}'")), "{header}");
        let dims: Vec<String> = a["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.to_string())
            .collect();
        let shape = if dims.len() == 1 {
            format!("({},)", dims[0])
        } else {
            format!("({})", dims.join(", "))
        };
        assert!(
            header.contains(&format!("'shape': {shape}")),
            "{header} vs {shape}"
        );
    }
}

/// Runs the geodyn binary with `args` followed by `dir`; it must succeed.
fn geodyn_into(args: &[&str], dir: &Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_geodyn"))
        .args(args)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cli_export_meta_carries_the_run_rules_of_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    geodyn_into(
        &["network", "weights", "--n-recurrent", "10", "--export"],
        &dir,
    );
    let meta = read_json(&dir.join("meta.json"));
    let cfg: toml::Value = toml::from_str(include_str!("../configs/weights.toml")).unwrap();
    for key in [
        "a_plus",
        "a_minus",
        "tau_plus_ms",
        "tau_minus_ms",
        "w_min",
        "w_max",
    ] {
        assert_eq!(
            meta["stdp"][key].as_f64(),
            cfg["stdp"][key].as_float(),
            "stdp.{key}"
        );
    }
    assert_eq!(meta["simulation"]["duration_ms"].as_f64(), Some(600.0));
    assert_eq!(meta["stimulus"]["train"], "regular");
    assert_eq!(meta["seed"], 1);
    assert_eq!(meta["config_hash"].as_str().map(str::len), Some(64));
    assert_eq!(meta["n_recurrent"], 10);
    assert_eq!(meta["format_version"], 1);
}

#[test]
fn a_run_export_is_consistent_with_itself_and_with_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    geodyn_into(
        &[
            "simulate",
            "weights",
            "--n-recurrent",
            "20",
            "--image",
            "3",
            "--export-run",
        ],
        &dir,
    );
    let run = read_json(&dir.join("run.json"));
    let net_dir = dir.join("network");
    let src: Vec<u32> = read1(&net_dir, "edge_source");
    let tgt: Vec<u32> = read1(&net_dir, "edge_target");
    let lat: Vec<f64> = read1(&net_dir, "edge_latency_ms");
    let plastic: Vec<u8> = read1(&net_dir, "edge_plastic");
    let node: Vec<u32> = read1(&dir, "activation_node");
    let time: Vec<f64> = read1(&dir, "activation_time_ms");
    let cause: Vec<i64> = read1(&dir, "activation_causal_edge");
    let counts: Vec<u32> = read1(&dir, "node_activation_count");
    let in_node: Vec<u32> = read1(&dir, "input_node");
    let in_time: Vec<f64> = read1(&dir, "input_time_ms");
    let w0: Vec<f32> = read1(&dir, "edge_weight_initial");
    let w1: Vec<f32> = read1(&dir, "edge_weight_final");
    assert_eq!(run["totals"]["activations"], node.len());
    assert_eq!(run["image"], 3);
    assert!(node.len() > 100 && cause.iter().any(|&c| c >= 0));
    // Counts are the activations, node by node.
    let mut recount = vec![0u32; counts.len()];
    for &j in &node {
        recount[j as usize] += 1;
    }
    assert_eq!(recount, counts);
    assert!(time.windows(2).all(|w| w[0] <= w[1]), "time order");
    // Every activation is explained: a stimulus activation by an input at
    // that node and time; any other by its causal edge, whose source
    // activated exactly one latency earlier (continuous time: the same f64
    // sum the engine computed) and whose target is the node.
    let inputs: std::collections::HashSet<(u32, u64)> = in_node
        .iter()
        .zip(&in_time)
        .map(|(&n, &t)| (n, t.to_bits()))
        .collect();
    let fired: std::collections::HashSet<(u32, u64)> = node
        .iter()
        .zip(&time)
        .map(|(&n, &t)| (n, t.to_bits()))
        .collect();
    for i in 0..node.len() {
        if cause[i] < 0 {
            assert!(
                inputs.contains(&(node[i], time[i].to_bits())),
                "activation {i}"
            );
        } else {
            let e = cause[i] as usize;
            assert_eq!(tgt[e], node[i], "activation {i}: edge {e}");
            let emitted = fired
                .iter()
                .any(|&(n, t)| n == src[e] && f64::from_bits(t) + lat[e] == time[i]);
            assert!(
                emitted,
                "activation {i}: no activation of node {} one latency before",
                src[e]
            );
        }
    }
    // STDP changes only plastic edges, and it changed some.
    for e in 0..w0.len() {
        if plastic[e] == 0 {
            assert_eq!(w0[e], w1[e], "edge {e} is not plastic");
        }
    }
    assert!(w0 != w1);
}
