//! The activation-path embedding (experiment 1). Placeholder with the final
//! interface: per recurrent node, the histogram of activation times in windows
//! of `window_ms`, weighted by nothing else. The full method lands with the
//! experiment-1 work.

use crate::config::{PathsMethod, PathsParams};
use crate::network::{Network, Population};
use crate::record::Recording;

#[derive(Debug)]
pub struct PathsEmbedder {
    method: PathsMethod,
    windows: usize,
    window_ms: f64,
    recurrent_nodes: Vec<usize>,
}

impl PathsEmbedder {
    pub fn new(net: &Network, params: &PathsParams, duration_ms: f64, _seed: u64) -> PathsEmbedder {
        let windows = ((duration_ms / params.window_ms).ceil() as usize).max(1);
        PathsEmbedder {
            method: params.method,
            windows,
            window_ms: params.window_ms,
            recurrent_nodes: (0..net.n_nodes())
                .filter(|&i| net.population[i] == Population::Recurrent)
                .collect(),
        }
    }

    pub fn method_name(&self) -> &'static str {
        match self.method {
            PathsMethod::CausalEdges => "causal_edges",
            PathsMethod::NodeTiming => "node_timing",
            PathsMethod::Both => "both",
        }
    }

    pub fn dim(&self) -> usize {
        self.recurrent_nodes.len() * self.windows
    }

    pub fn embed(&self, net: &Network, rec: &Recording) -> Vec<f32> {
        let n_in = net.n_input();
        let mut v = vec![0.0f32; self.dim()];
        for a in &rec.activations {
            let j = a.node as usize;
            if j >= n_in {
                let w = ((a.time_ms / self.window_ms) as usize).min(self.windows - 1);
                v[(j - n_in) * self.windows + w] += 1.0;
            }
        }
        v
    }
}
