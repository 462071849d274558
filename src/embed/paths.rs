//! The activation-path embedding (experiment 1 of the source; stage 6 of the
//! pipeline: `sim -> record -> embed -> eval`).
//!
//! A run's activation path is its time-ordered list of activation events, each
//! with the arrival that pushed the node over threshold (its *causal edge*,
//! [`Activation::causal_edge`]). Three fixed-length summaries of that temporal
//! graph are offered, selected by [`PathsMethod`]:
//!
//! - **`causal_edges`**: for every activation with a causal edge `e` at time
//!   `t`, the feature `(e, window = floor(t / window_ms))` counts once: how many
//!   times each edge carried the activation forward in each time window. The
//!   raw feature space (`n_edges x windows`, about 10^6) is mapped to `dim`
//!   columns by feature hashing, i.e. a seeded sparse random projection with
//!   one `+-1` entry per feature (Weinberger et al. 2009): feature `f` adds
//!   `sign(f) * sqrt(count_f)` to column `h(f) mod dim`, with `h` and `sign`
//!   from a seeded 64-bit mix of `(seed, e, window)`. The signed hash keeps
//!   inner products unbiased; `sqrt` is a variance-stabilising transform of
//!   counts (the Hellinger embedding), so a few edges that fire at a high rate
//!   do not swamp the cosine.
//! - **`node_timing`**: per recurrent (hidden) node, `sqrt` of its activation
//!   counts in each window plus its first-activation latency as an earliness
//!   score `1 - t_first / duration` (0 when the node never fires). Dimension
//!   `n_recurrent x (windows + 1)`. This keeps *when* each node joined the
//!   path, not *through which edge*.
//! - **`both`**: the two, each block scaled to unit L2 norm, concatenated (so
//!   under the cosine each block weighs the same).
//!
//! Input-node activations imposed by the stimulus have no causal edge and do
//! not enter `causal_edges`; an input node that a recurrent arrival drives over
//! threshold does (its causal edge is recorded like any other). The embedding
//! is a pure function of (network, recording, params, seed).

use super::{PathsMethod, PathsParams};
use crate::network::{Network, Population};
use crate::record::Recording;

#[derive(Debug)]
pub struct PathsEmbedder {
    method: PathsMethod,
    windows: usize,
    window_ms: f64,
    duration_ms: f64,
    hash_dim: usize,
    seed: u64,
    recurrent_nodes: Vec<usize>,
    /// Node id -> position among the recurrent nodes (usize::MAX for inputs).
    recurrent_pos: Vec<usize>,
}

/// SplitMix64 finaliser: a fast, well-mixed 64-bit hash step.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn l2_normalize(v: &mut [f32]) {
    let n = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x = (*x as f64 / n) as f32);
    }
}

impl PathsEmbedder {
    pub fn new(net: &Network, params: &PathsParams, duration_ms: f64, seed: u64) -> PathsEmbedder {
        // PathsParams checked window_ms > 0 and finite.
        let window_ms = params.window_ms();
        let windows = ((duration_ms / window_ms).ceil() as usize).max(1);
        let recurrent_nodes: Vec<usize> = (0..net.n_nodes())
            .filter(|&i| net.population[i] == Population::Recurrent)
            .collect();
        let mut recurrent_pos = vec![usize::MAX; net.n_nodes()];
        for (p, &j) in recurrent_nodes.iter().enumerate() {
            recurrent_pos[j] = p;
        }
        PathsEmbedder {
            method: params.method(),
            windows,
            window_ms,
            duration_ms,
            hash_dim: params.dim().max(1),
            seed,
            recurrent_nodes,
            recurrent_pos,
        }
    }

    pub fn method_name(&self) -> &'static str {
        self.method.name()
    }

    pub fn method(&self) -> PathsMethod {
        self.method
    }

    /// Number of time windows of the run.
    pub fn windows(&self) -> usize {
        self.windows
    }

    fn timing_dim(&self) -> usize {
        self.recurrent_nodes.len() * (self.windows + 1)
    }

    pub fn dim(&self) -> usize {
        match self.method {
            PathsMethod::CausalEdges => self.hash_dim,
            PathsMethod::NodeTiming => self.timing_dim(),
            PathsMethod::Both => self.hash_dim + self.timing_dim(),
        }
    }

    fn window_of(&self, t: f64) -> usize {
        ((t / self.window_ms) as usize).min(self.windows - 1)
    }

    fn causal_edges(&self, rec: &Recording, out: &mut Vec<f32>) {
        let start = out.len();
        out.resize(start + self.hash_dim, 0.0);
        let v = &mut out[start..];
        let w = self.windows as u64;
        let mut keys: Vec<u64> = rec
            .activations
            .iter()
            .filter_map(|a| {
                a.causal_edge
                    .map(|e| e as u64 * w + self.window_of(a.time_ms) as u64)
            })
            .collect();
        keys.sort_unstable();
        let seed_mix = mix64(self.seed ^ 0x7061_7468_735f_6365); // "paths_ce"
        let mut i = 0;
        while i < keys.len() {
            let k = keys[i];
            let mut j = i + 1;
            while j < keys.len() && keys[j] == k {
                j += 1;
            }
            let h = mix64(k ^ seed_mix);
            let col = (h % self.hash_dim as u64) as usize;
            let val = ((j - i) as f32).sqrt();
            v[col] += if h >> 63 == 0 { val } else { -val };
            i = j;
        }
    }

    fn node_timing(&self, rec: &Recording, out: &mut Vec<f32>) {
        let start = out.len();
        let stride = self.windows + 1;
        out.resize(start + self.timing_dim(), 0.0);
        let v = &mut out[start..];
        let mut first = vec![f64::INFINITY; self.recurrent_nodes.len()];
        for a in &rec.activations {
            let p = self
                .recurrent_pos
                .get(a.node as usize)
                .copied()
                .unwrap_or(usize::MAX);
            if p == usize::MAX {
                continue;
            }
            v[p * stride + self.window_of(a.time_ms)] += 1.0;
            if a.time_ms < first[p] {
                first[p] = a.time_ms;
            }
        }
        for (p, &t) in first.iter().enumerate() {
            let row = &mut v[p * stride..(p + 1) * stride];
            row[..self.windows].iter_mut().for_each(|c| *c = c.sqrt());
            row[self.windows] = if t.is_finite() && self.duration_ms > 0.0 {
                (1.0 - t / self.duration_ms).max(0.0) as f32
            } else {
                0.0
            };
        }
    }

    /// The embedding of one run (length [`PathsEmbedder::dim`]).
    pub fn embed(&self, _net: &Network, rec: &Recording) -> Vec<f32> {
        let mut v = Vec::with_capacity(self.dim());
        match self.method {
            PathsMethod::CausalEdges => self.causal_edges(rec, &mut v),
            PathsMethod::NodeTiming => self.node_timing(rec, &mut v),
            PathsMethod::Both => {
                self.causal_edges(rec, &mut v);
                l2_normalize(&mut v);
                self.node_timing(rec, &mut v);
                l2_normalize(&mut v[self.hash_dim..]);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{EdgeSpec, NodeParams, NodeSpec};
    use crate::record::Activation;

    fn tiny() -> Network {
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
        let nodes = [
            node(0.0, Population::Input),
            node(10.0, Population::Recurrent),
            node(20.0, Population::Recurrent),
        ];
        let e = |s, t| EdgeSpec {
            source: s,
            target: t,
            length_um: 10.0,
            velocity_um_per_ms: 10.0,
            weight: 1.0,
            plastic: false,
        };
        Network::from_edges(&nodes, &[e(0, 1), e(1, 2), e(0, 2)]).unwrap()
    }

    fn rec(events: &[(u32, f64, Option<u32>)]) -> Recording {
        Recording {
            activations: events
                .iter()
                .map(|&(node, time_ms, causal_edge)| Activation {
                    node,
                    time_ms,
                    causal_edge,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn params(method: PathsMethod) -> PathsParams {
        PathsParams::new(method, 10.0, 64).unwrap()
    }

    #[test]
    fn node_timing_counts_windows_and_latency() {
        let net = tiny();
        let emb = PathsEmbedder::new(&net, &params(PathsMethod::NodeTiming), 20.0, 0);
        assert_eq!(emb.dim(), 2 * 3);
        let r = rec(&[
            (0, 0.5, None),
            (1, 2.0, Some(0)),
            (1, 5.0, Some(0)),
            (1, 15.0, Some(0)),
        ]);
        let v = emb.embed(&net, &r);
        // Node 1: 2 activations in window 0, 1 in window 1, first at 2 ms of 20.
        assert_eq!(v[0], 2f32.sqrt());
        assert_eq!(v[1], 1.0);
        assert!((v[2] - 0.9).abs() < 1e-6);
        // Node 2 never fired; the input node is not a row.
        assert_eq!(&v[3..], &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn causal_edges_hash_is_seeded_and_norm_preserving() {
        let net = tiny();
        let r = rec(&[
            (1, 1.0, Some(0)),
            (2, 2.0, Some(1)),
            (2, 12.0, Some(1)),
            (0, 0.0, None),
        ]);
        let wide = PathsParams::new(PathsMethod::CausalEdges, 10.0, 1 << 20).unwrap();
        let a = PathsEmbedder::new(&net, &wide, 20.0, 1);
        let b = PathsEmbedder::new(&net, &wide, 20.0, 1);
        let c = PathsEmbedder::new(&net, &wide, 20.0, 2);
        let (va, vb, vc) = (a.embed(&net, &r), b.embed(&net, &r), c.embed(&net, &r));
        assert_eq!(va, vb);
        assert_eq!(va.len(), 1 << 20);
        assert_ne!(va, vc);
        // Features (edge 0, w0) x1, (edge 1, w0) x1, (edge 1, w1) x1: with 2^20
        // columns they do not collide (for these seeds), so three entries of
        // +-1 and squared norm 3; the stimulus activation adds nothing.
        let sq = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>();
        assert_eq!(sq(&va), 3.0);
        assert_eq!(va.iter().filter(|x| x.abs() == 1.0).count(), 3);
        // A repeated feature adds sqrt(count).
        let r2 = rec(&[
            (1, 1.0, Some(0)),
            (1, 3.0, Some(0)),
            (1, 5.0, Some(0)),
            (1, 7.0, Some(0)),
        ]);
        let v2 = a.embed(&net, &r2);
        assert_eq!(v2.iter().filter(|x| x.abs() == 2.0).count(), 1);
        assert_eq!(sq(&v2), 4.0);
    }

    #[test]
    fn both_blocks_are_unit_norm() {
        let net = tiny();
        let emb = PathsEmbedder::new(&net, &params(PathsMethod::Both), 20.0, 3);
        assert_eq!(emb.dim(), 64 + 6);
        let r = rec(&[(1, 1.0, Some(0)), (2, 2.0, Some(1)), (1, 13.0, Some(0))]);
        let v = emb.embed(&net, &r);
        let sq = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>();
        assert!((sq(&v[..64]) - 1.0).abs() < 1e-5);
        assert!((sq(&v[64..]) - 1.0).abs() < 1e-5);
        assert_eq!(emb.method_name(), "both");
    }
}
