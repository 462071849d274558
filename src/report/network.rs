//! Reports on a built network: the per-edge-class geometry table (latency and
//! refraction-ratio quantiles), the JSON summary that goes into `report.json`,
//! and the `.npy` export for analysis in Python or for rebuilding the network
//! in another simulator. They live here rather than in `network` because the
//! simulation core knows nothing of files or report formats.

use super::ReportError;
use crate::network::{EdgeClass, Network};
use ndarray::{Array1, Array2};
use ndarray_npy::write_npy;
use std::path::Path;

/// Geometry of the edges of one class.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeClassStats {
    pub class: EdgeClass,
    pub edges: usize,
    /// Latency (ms) at each of [`EdgeClassStats::QUANTILE_LEVELS`].
    pub latency_ms_quantiles: [f64; 5],
    /// Refraction ratio R_target / latency at each of the same levels.
    pub refraction_ratio_quantiles: [f64; 5],
    /// Share of the class's edges with refraction ratio <= 1 (Silva 2019:
    /// signalling is efficient near or below 1).
    pub share_refraction_ratio_at_most_1: f64,
    /// Share with a positive initial weight.
    pub excitatory_share: f64,
    /// Number of plastic edges.
    pub plastic: usize,
}

impl EdgeClassStats {
    /// The edge classes in the order the table lists them (the feed-forward
    /// and recurrent classes first: they are the ones every network has).
    pub const CLASS_ORDER: [EdgeClass; 4] = [
        EdgeClass::InputToRecurrent,
        EdgeClass::RecurrentToRecurrent,
        EdgeClass::InputToInput,
        EdgeClass::RecurrentToInput,
    ];
    /// The quantile levels of the table: min, p10, median, p90, max.
    pub const QUANTILE_LEVELS: [f64; 5] = [0.0, 0.1, 0.5, 0.9, 1.0];

    /// The geometry table: one row per edge class present, in
    /// [`EdgeClassStats::CLASS_ORDER`]. Both the `network` command and
    /// [`network_summary`] are built from it.
    pub fn table(net: &Network) -> Vec<EdgeClassStats> {
        let rr = net.refraction_ratio();
        let mut rows = Vec::new();
        for class in EdgeClassStats::CLASS_ORDER {
            let idx: Vec<usize> = (0..net.n_edges())
                .filter(|&e| net.edge_class[e] == class)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let lat: Vec<f64> = idx.iter().map(|&e| net.edge_latency_ms[e]).collect();
            let r: Vec<f64> = idx.iter().map(|&e| rr[e]).collect();
            let below = r.iter().filter(|&&x| x <= 1.0).count() as f64 / r.len() as f64;
            let excitatory = idx.iter().filter(|&&e| net.edge_weight[e] > 0.0).count();
            rows.push(EdgeClassStats {
                class,
                edges: idx.len(),
                latency_ms_quantiles: at_levels(&lat),
                refraction_ratio_quantiles: at_levels(&r),
                share_refraction_ratio_at_most_1: below,
                excitatory_share: excitatory as f64 / idx.len() as f64,
                plastic: idx.iter().filter(|&&e| net.edge_plastic[e]).count(),
            });
        }
        rows
    }
}

/// The element of sorted `s` at quantile `q` (nearest rank; NaN if empty).
fn quantile_of_sorted(s: &[f64], q: f64) -> f64 {
    if s.is_empty() {
        f64::NAN
    } else {
        s[((q * (s.len() - 1) as f64).round() as usize).min(s.len() - 1)]
    }
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// The sample's quantiles at [`EdgeClassStats::QUANTILE_LEVELS`].
fn at_levels(v: &[f64]) -> [f64; 5] {
    let s = sorted(v);
    EdgeClassStats::QUANTILE_LEVELS.map(|q| quantile_of_sorted(&s, q))
}

/// Quantiles of a sample at levels `qs` (nearest rank on a sorted copy; NaN
/// for an empty sample).
pub fn quantiles(v: &[f64], qs: &[f64]) -> Vec<f64> {
    let s = sorted(v);
    qs.iter().map(|&q| quantile_of_sorted(&s, q)).collect()
}

/// A JSON summary of the network (the `network` field of `report.json`):
/// sizes and, per edge class, the rows of [`EdgeClassStats::table`].
pub fn network_summary(net: &Network) -> serde_json::Value {
    let mut by_class = serde_json::Map::new();
    for row in EdgeClassStats::table(net) {
        by_class.insert(
            format!("{:?}", row.class),
            serde_json::json!({
                "edges": row.edges,
                "latency_ms_quantiles_0_10_50_90_100": row.latency_ms_quantiles,
                "refraction_ratio_quantiles_0_10_50_90_100": row.refraction_ratio_quantiles,
                "share_refraction_ratio_at_most_1": row.share_refraction_ratio_at_most_1,
                "excitatory_share": row.excitatory_share,
                "plastic": row.plastic,
            }),
        );
    }
    serde_json::json!({
        "nodes": net.n_nodes(),
        "input_nodes": net.n_input(),
        "recurrent_nodes": net.n_recurrent(),
        "edges": net.n_edges(),
        "by_class": by_class,
        "network_bytes": net.memory_bytes(),
    })
}

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

/// Writes one array as `dir/name.npy`.
fn write_array<T: ndarray_npy::WriteNpyExt>(
    dir: &Path,
    name: &str,
    array: &T,
) -> Result<(), ReportError> {
    let path = dir.join(format!("{name}.npy"));
    write_npy(&path, array).map_err(|e| ReportError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })
}

/// Writes the network's arrays and a README of the layout into `dir`
/// (created if missing). The README is written last, so its presence marks a
/// complete export.
pub fn export_network_npy(net: &Network, dir: &Path) -> Result<(), ReportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let readme = dir.join("README.md");
    // A stale README would mark a half-written export as complete.
    let _ = std::fs::remove_file(&readme);
    let n = net.n_nodes();
    let pos = Array2::from_shape_fn((n, 3), |(i, k)| net.position_um[i][k]);
    write_array(dir, "node_position_um", &pos)?;
    let f64s: [(&str, &Vec<f64>); 6] = [
        ("node_refractory_period_ms", &net.refractory_period_ms),
        ("node_threshold", &net.threshold),
        ("node_summation_tau_ms", &net.summation_tau_ms),
        ("edge_length_um", &net.edge_length_um),
        ("edge_velocity_um_per_ms", &net.edge_velocity_um_per_ms),
        ("edge_latency_ms", &net.edge_latency_ms),
    ];
    for (name, v) in f64s {
        write_array(dir, name, &Array1::from(v.clone()))?;
    }
    for (name, v) in [
        ("edge_source", &net.edge_source),
        ("edge_target", &net.edge_target),
    ] {
        write_array(dir, name, &Array1::from(v.clone()))?;
    }
    write_array(dir, "edge_weight", &Array1::from(net.edge_weight.clone()))?;
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
        write_array(dir, name, &Array1::from(v))?;
    }
    std::fs::write(&readme, README).map_err(io(&readme))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{EdgeSpec, NodeParams, NodeSpec, Population};

    fn tiny() -> Network {
        let node = |population, r| NodeSpec {
            position_um: [0.0; 3],
            population,
            params: NodeParams {
                refractory_period_ms: r,
                threshold: 1.0,
                summation_tau_ms: 10.0,
            },
        };
        let edge = |source, target, length_um, weight| EdgeSpec {
            source,
            target,
            length_um,
            velocity_um_per_ms: 10.0,
            weight,
            plastic: false,
        };
        let nodes = [
            node(Population::Input, 0.0),
            node(Population::Recurrent, 2.0),
            node(Population::Recurrent, 1.0),
        ];
        let edges = [
            edge(0, 1, 10.0, 0.5),
            edge(0, 2, 40.0, -0.5),
            edge(1, 2, 20.0, 1.0),
            edge(2, 1, 5.0, 1.0),
        ];
        let mut net = Network::from_edges(&nodes, &edges).expect("valid");
        net.set_plastic_classes(&[EdgeClass::RecurrentToRecurrent]);
        net
    }

    #[test]
    fn table_rows_follow_the_class_order_and_skip_empty_classes() {
        let rows = EdgeClassStats::table(&tiny());
        let classes: Vec<EdgeClass> = rows.iter().map(|r| r.class).collect();
        assert_eq!(
            classes,
            [EdgeClass::InputToRecurrent, EdgeClass::RecurrentToRecurrent]
        );
        // Input -> recurrent: latencies 1 and 4 ms into R = 2 and 1.
        let r = &rows[0];
        assert_eq!(r.edges, 2);
        assert_eq!(r.latency_ms_quantiles, [1.0, 1.0, 4.0, 4.0, 4.0]);
        assert_eq!(r.refraction_ratio_quantiles, [0.25, 0.25, 2.0, 2.0, 2.0]);
        assert_eq!(r.share_refraction_ratio_at_most_1, 0.5);
        assert_eq!((r.excitatory_share, r.plastic), (0.5, 0));
        assert_eq!(rows[1].plastic, 2);
        assert!(quantiles(&[], &[0.5])[0].is_nan());
    }

    /// The summary is the `network` field of report.json: its text is pinned.
    #[test]
    fn summary_json_is_stable() {
        let got = network_summary(&tiny()).to_string();
        let want = concat!(
            r#"{"by_class":{"InputToRecurrent":{"edges":2,"excitatory_share":0.5,"#,
            r#""latency_ms_quantiles_0_10_50_90_100":[1.0,1.0,4.0,4.0,4.0],"plastic":0,"#,
            r#""refraction_ratio_quantiles_0_10_50_90_100":[0.25,0.25,2.0,2.0,2.0],"#,
            r#""share_refraction_ratio_at_most_1":0.5},"RecurrentToRecurrent":{"edges":2,"#,
            r#""excitatory_share":1.0,"latency_ms_quantiles_0_10_50_90_100":[0.5,0.5,2.0,2.0,2.0],"#,
            r#""plastic":2,"refraction_ratio_quantiles_0_10_50_90_100":[0.5,0.5,4.0,4.0,4.0],"#,
            r#""share_refraction_ratio_at_most_1":0.5}},"edges":4,"input_nodes":1,"#,
            r#""network_bytes":"#
        );
        assert!(got.starts_with(want), "{got}");
        assert!(got.ends_with(r#","nodes":3,"recurrent_nodes":2}"#), "{got}");
    }
}
