//! Export of a built network as `.npy` arrays, for analysis in Python or for
//! rebuilding it in another simulator.

use super::Network;
use ndarray::{Array1, Array2};
use ndarray_npy::write_npy;
use std::path::Path;

const README: &str = "# geodyn network export

One `.npy` file per array (NumPy: `np.load`). Units are in the names.
Nodes are indexed 0..n; edges 0..m in CSR order by source.

| file | shape | dtype | meaning |
|---|---|---|---|
| node_position_um.npy | n x 3 | float64 | node positions (um) |
| node_population.npy | n | uint8 | 0 = input, 1 = recurrent |
| node_refractory_period_ms.npy | n | float64 | refractory period R (ms) |
| node_threshold.npy | n | float64 | activation threshold |
| node_summation_tau_ms.npy | n | float64 | decay time constant of summation (ms) |
| edge_source.npy | m | uint32 | source node |
| edge_target.npy | m | uint32 | target node |
| edge_length_um.npy | m | float64 | path length (um), >= straight distance |
| edge_velocity_um_per_ms.npy | m | float64 | conduction velocity (um/ms; 1 m/s = 1000 um/ms) |
| edge_latency_ms.npy | m | float64 | latency = length / velocity (ms) |
| edge_weight.npy | m | float32 | initial weight (negative = inhibitory) |
| edge_plastic.npy | m | uint8 | 1 if STDP may change the edge |
| edge_class.npy | m | uint8 | 0 input->input, 1 input->recurrent, 2 recurrent->input, 3 recurrent->recurrent |

Rebuild in Python, e.g. with scipy: `scipy.sparse.csr_matrix((w, (src, tgt)), shape=(n, n))`.
The refraction ratio of an edge is `node_refractory_period_ms[edge_target] / edge_latency_ms`.
";

/// Writes the arrays and README into `dir` (created if missing). The README is
/// written last, so its presence marks a complete export.
pub fn export_npy(net: &Network, dir: &Path) -> Result<(), std::io::Error> {
    let io = |e: ndarray_npy::WriteNpyError| std::io::Error::other(e.to_string());
    std::fs::create_dir_all(dir)?;
    let _ = std::fs::remove_file(dir.join("README.md"));
    let n = net.n_nodes();
    let pos = Array2::from_shape_fn((n, 3), |(i, k)| net.position_um[i][k]);
    write_npy(dir.join("node_position_um.npy"), &pos).map_err(io)?;
    let f64s: [(&str, &Vec<f64>); 6] = [
        ("node_refractory_period_ms", &net.refractory_period_ms),
        ("node_threshold", &net.threshold),
        ("node_summation_tau_ms", &net.summation_tau_ms),
        ("edge_length_um", &net.edge_length_um),
        ("edge_velocity_um_per_ms", &net.edge_velocity_um_per_ms),
        ("edge_latency_ms", &net.edge_latency_ms),
    ];
    for (name, v) in f64s {
        write_npy(dir.join(format!("{name}.npy")), &Array1::from(v.clone())).map_err(io)?;
    }
    for (name, v) in [
        ("edge_source", &net.edge_source),
        ("edge_target", &net.edge_target),
    ] {
        write_npy(dir.join(format!("{name}.npy")), &Array1::from(v.clone())).map_err(io)?;
    }
    write_npy(
        dir.join("edge_weight.npy"),
        &Array1::from(net.edge_weight.clone()),
    )
    .map_err(io)?;
    let u8s: [(&str, Vec<u8>); 3] = [
        (
            "node_population",
            net.population.iter().map(|&p| p as u8).collect(),
        ),
        (
            "edge_plastic",
            net.edge_plastic.iter().map(|&p| p as u8).collect(),
        ),
        (
            "edge_class",
            net.edge_class.iter().map(|&c| c as u8).collect(),
        ),
    ];
    for (name, v) in u8s {
        write_npy(dir.join(format!("{name}.npy")), &Array1::from(v)).map_err(io)?;
    }
    std::fs::write(dir.join("README.md"), README)
}
