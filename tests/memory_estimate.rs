//! The memory estimates against the real allocation: a counting global
//! allocator measures the live bytes a built network and a prepared
//! simulator (with one workspace after a run) hold, and the estimates made
//! from the sizes alone must be within 10% of them. One test in this binary,
//! so no other test's allocations are counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use geodyn::network::{
    build_geometric, EdgeSpec, GeometricSpec, Kernel, Network, NodeParams, NodeSpec, Population,
};
use geodyn::record::{ExternalActivation, RecordSpec};
use geodyn::sim::{estimate_state_bytes, RunParams, Simulator, StdpParams, Workspace};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The system allocator, counting the bytes live at any moment.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter is only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn within(what: &str, estimate: usize, measured: usize, tolerance: f64) {
    let err = (estimate as f64 - measured as f64).abs() / measured as f64;
    assert!(
        err <= tolerance,
        "{what}: estimate {estimate} B, allocated {measured} B ({:.1}% off)",
        err * 100.0
    );
}

/// A sparse random network: `n` nodes, each with `k` out-edges to random
/// targets, a tenth of the nodes inputs (no plastic in-edges).
fn random_network(n: usize, k: usize) -> (Vec<NodeSpec>, Vec<EdgeSpec>) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let nodes: Vec<NodeSpec> = (0..n)
        .map(|i| NodeSpec {
            position_um: [i as f64, 0.0, 0.0],
            population: if i < n / 10 {
                Population::Input
            } else {
                Population::Recurrent
            },
            params: NodeParams {
                refractory_period_ms: 2.0,
                threshold: 3.0,
                summation_tau_ms: 5.0,
            },
        })
        .collect();
    let mut edges = Vec::with_capacity(n * k);
    for s in 0..n {
        for _ in 0..k {
            let t = rng.gen_range(0..n);
            if t == s || t < n / 10 {
                continue;
            }
            edges.push(EdgeSpec {
                source: s as u32,
                target: t as u32,
                length_um: rng.gen_range(50.0..500.0),
                velocity_um_per_ms: 100.0,
                weight: 0.5,
                plastic: true,
            });
        }
    }
    (nodes, edges)
}

#[test]
fn the_memory_estimates_are_within_ten_percent_of_the_allocation() {
    let (nodes, edges) = random_network(3_000, 60);
    let before = live();
    let net = Network::from_edges(&nodes, &edges).expect("a valid network");
    let net_bytes = live() - before;
    within("network", net.memory_bytes(), net_bytes, 0.10);

    // The geometric builder's network against the estimate made from its
    // size alone (the one `bench large` checks before building).
    let spec = GeometricSpec {
        n_nodes: 4000,
        size_um: [400.0, 400.0, 400.0],
        kernel: Kernel::Exponential { lambda_um: 40.0 },
        p_max: 0.5,
        out_degree: None,
        cutoff_um: Some(150.0),
        inhibitory_fraction: 0.2,
        weight_excitatory: 0.1,
        weight_inhibitory: -0.4,
        velocity_um_per_ms: [200.0, 200.0],
        synaptic_delay_ms: 0.5,
        node: NodeParams {
            refractory_period_ms: 2.0,
            threshold: 1.0,
            summation_tau_ms: 5.0,
        },
        seed: 3,
    };
    let before = live();
    let geo = build_geometric(&spec).expect("a valid spec");
    let geo_bytes = live() - before;
    let estimate = Network::estimate_bytes(geo.n_nodes(), geo.n_edges());
    eprintln!("geometric network: estimate {estimate} B, allocated {geo_bytes} B");
    within("geometric network", estimate, geo_bytes, 0.10);
    drop(geo);

    let stdp = StdpParams::new(0.01, 0.012, 20.0, 20.0, 0.0, 1.0, false).expect("valid STDP");
    let params = RunParams::new(50.0, Some(stdp)).expect("valid run");
    // A few input activations: the run sizes the workspace without filling
    // the event buffers, which the estimate leaves out.
    let stimulus: Vec<ExternalActivation> = (0..20)
        .map(|i| ExternalActivation {
            node: i,
            time_ms: i as f64,
        })
        .collect();
    for parts in [1, 2, 3] {
        let mut w = net.edge_weight().to_vec();
        let before = live();
        let sim = Simulator::with_parts(&net, &params, parts).expect("prepared");
        let mut ws = Workspace::default();
        sim.run(&mut ws, &mut w, &stimulus, &RecordSpec::default())
            .expect("a run");
        let measured = live() - before;
        let n_plastic = net.edge_plastic().iter().filter(|&&p| p).count();
        let estimate = estimate_state_bytes(net.n_nodes(), net.n_edges(), n_plastic, parts);
        assert_eq!(estimate, sim.state_bytes());
        eprintln!("simulator, {parts} parts: estimate {estimate} B, allocated {measured} B");
        within(
            &format!("simulator, {parts} parts"),
            estimate,
            measured,
            0.10,
        );
        drop(ws);
        drop(sim);
    }
}
