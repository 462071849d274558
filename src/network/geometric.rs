//! The geometric builder: nodes scattered uniformly in a box (or on a sheet),
//! each ordered pair joined with a probability that falls with their
//! distance, the latency of each edge its straight-line length over its
//! conduction velocity (plus an optional fixed synaptic delay). This is the
//! regime of Silva's latency/refractoriness theory: space sets both who
//! connects and how long a signal takes.
//!
//! **Kernels.** Exponential, `p(d) = p_max exp(-d / lambda_um)`, or Gaussian,
//! `p(d) = p_max exp(-d^2 / (2 sigma_um^2))`, both zero beyond `cutoff_um`
//! (default: where the kernel has fallen to 1e-3 of `p_max`, `lambda ln 1000`
//! or `sigma sqrt(2 ln 1000)`). The cutoff is an approximation the user sets:
//! it is what makes the build O(E) instead of O(N^2).
//!
//! **Out-degree.** With `out_degree` set, `p_max` is chosen so that a node far
//! from the boundary expects that many out-edges: `p_max = k / (rho * I)`,
//! with `rho` the node density and `I` the kernel's integral over the ball
//! (box) or disc (sheet) of radius `cutoff_um`; nodes near a face of the box
//! have fewer neighbours and so fewer edges. The resulting `p_max` must be
//! at most 1.
//!
//! **Dale's law.** A node is inhibitory with probability
//! `inhibitory_fraction`; every out-edge of an excitatory node has weight
//! `weight_excitatory` (> 0), of an inhibitory node `weight_inhibitory`
//! (< 0): the sign belongs to the source.
//!
//! **Determinism.** Positions and node types come from one seeded stream;
//! each source's edges from a stream of its own (ChaCha8, stream number
//! source + 1), drawn over its candidates in a fixed order (cells in grid order,
//! nodes in index order within a cell). So the network is a function of the
//! spec alone, whatever the number of threads that build it.
//!
//! **Cell lists.** Nodes are bucketed in cubic cells of side `cutoff / 2`;
//! a source visits the 5 x 5 x 5 cells around its own (5 x 5 on a sheet),
//! which hold every node within the cutoff, and draws only for those within
//! it.

use super::{Network, NetworkError, NodeParams, Population};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// How connection probability falls with distance (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    Exponential { lambda_um: f64 },
    Gaussian { sigma_um: f64 },
}

impl Kernel {
    /// The kernel's shape at distance `d` (1 at d = 0).
    pub fn shape(&self, d: f64) -> f64 {
        match *self {
            Kernel::Exponential { lambda_um } => (-d / lambda_um).exp(),
            Kernel::Gaussian { sigma_um } => (-d * d / (2.0 * sigma_um * sigma_um)).exp(),
        }
    }

    /// Where the shape falls to 1e-3.
    fn default_cutoff_um(&self) -> f64 {
        let ln1000 = 1000f64.ln();
        match *self {
            Kernel::Exponential { lambda_um } => lambda_um * ln1000,
            Kernel::Gaussian { sigma_um } => sigma_um * (2.0 * ln1000).sqrt(),
        }
    }
}

/// A geometric network, as data; [`build_geometric`] checks it and builds.
#[derive(Clone, Debug, PartialEq)]
pub struct GeometricSpec {
    pub n_nodes: usize,
    /// Side lengths of the box, um; a zero third side makes a sheet (z = 0).
    pub size_um: [f64; 3],
    pub kernel: Kernel,
    /// Probability at distance 0; ignored when `out_degree` is set.
    pub p_max: f64,
    /// Expected out-degree of a node far from the boundary (sets `p_max`).
    pub out_degree: Option<f64>,
    /// Default: where the kernel falls to 1e-3 (see the module doc).
    pub cutoff_um: Option<f64>,
    pub inhibitory_fraction: f64,
    pub weight_excitatory: f64,
    pub weight_inhibitory: f64,
    /// Each edge's velocity, uniform in `[min, max]` (equal: constant), um/ms.
    pub velocity_um_per_ms: [f64; 2],
    /// Added to every latency, ms (default 0): it also sets the engine's
    /// epoch length, which is the smallest latency.
    pub synaptic_delay_ms: f64,
    pub node: NodeParams,
    pub seed: u64,
}

/// The checked spec and what follows from it.
struct Plan {
    cutoff: f64,
    p_max: f64,
    cell: f64,
    dims: [usize; 3],
}

fn bad(field: &'static str, value: f64, why: &str) -> NetworkError {
    NetworkError::BadSpec {
        field: format!("network.geometric.{field}"),
        value: value.to_string(),
        why: why.to_string(),
    }
}

fn positive(field: &'static str, v: f64) -> Result<f64, NetworkError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(bad(field, v, "must be finite and > 0"))
    }
}

/// The integral of the kernel's shape over the ball (3-D) or disc (2-D) of
/// radius `r`, by Simpson's rule on 4,000 intervals (the shapes are smooth).
fn shape_integral(kernel: &Kernel, r: f64, sheet: bool) -> f64 {
    let steps = 4000;
    let h = r / steps as f64;
    let f = |x: f64| {
        let area = if sheet {
            2.0 * std::f64::consts::PI * x
        } else {
            4.0 * std::f64::consts::PI * x * x
        };
        area * kernel.shape(x)
    };
    let mut sum = f(0.0) + f(r);
    for i in 1..steps {
        sum += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    sum * h / 3.0
}

impl GeometricSpec {
    fn plan(&self) -> Result<Plan, NetworkError> {
        if self.n_nodes == 0 || self.n_nodes > u32::MAX as usize - 1 {
            return Err(bad(
                "n_nodes",
                self.n_nodes as f64,
                "must be between 1 and 2^32 - 2",
            ));
        }
        for (i, &s) in self.size_um.iter().enumerate() {
            let ok = s.is_finite() && (s > 0.0 || (i == 2 && s == 0.0));
            if !ok {
                return Err(bad(
                    "size_um",
                    s,
                    "sides must be finite and > 0 (the third may be 0: a sheet)",
                ));
            }
        }
        match self.kernel {
            Kernel::Exponential { lambda_um } => {
                positive("lambda_um", lambda_um)?;
            }
            Kernel::Gaussian { sigma_um } => {
                positive("sigma_um", sigma_um)?;
            }
        }
        let cutoff = match self.cutoff_um {
            Some(c) => positive("cutoff_um", c)?,
            None => self.kernel.default_cutoff_um(),
        };
        let sheet = self.size_um[2] == 0.0;
        let p_max = match self.out_degree {
            Some(k) => {
                positive("out_degree", k)?;
                let volume = if sheet {
                    self.size_um[0] * self.size_um[1]
                } else {
                    self.size_um.iter().product()
                };
                let density = self.n_nodes as f64 / volume;
                let p = k / (density * shape_integral(&self.kernel, cutoff, sheet));
                if p.is_nan() || p > 1.0 {
                    return Err(bad(
                        "out_degree",
                        k,
                        &format!("needs p_max = {p:.3} > 1 at this density and kernel: widen the kernel or lower the out-degree"),
                    ));
                }
                p
            }
            None => {
                if !(self.p_max.is_finite() && self.p_max > 0.0 && self.p_max <= 1.0) {
                    return Err(bad("p_max", self.p_max, "must be in (0, 1]"));
                }
                self.p_max
            }
        };
        let f = self.inhibitory_fraction;
        if !(0.0..=1.0).contains(&f) {
            return Err(bad("inhibitory_fraction", f, "must be in [0, 1]"));
        }
        if !(self.weight_excitatory.is_finite() && self.weight_excitatory > 0.0) {
            return Err(bad(
                "weight_excitatory",
                self.weight_excitatory,
                "must be finite and > 0 (Dale's law: the source's sign)",
            ));
        }
        if !(self.weight_inhibitory.is_finite() && self.weight_inhibitory < 0.0) {
            return Err(bad(
                "weight_inhibitory",
                self.weight_inhibitory,
                "must be finite and < 0 (Dale's law: the source's sign)",
            ));
        }
        let [v_lo, v_hi] = self.velocity_um_per_ms;
        positive("velocity_um_per_ms", v_lo)?;
        positive("velocity_um_per_ms", v_hi)?;
        if v_lo > v_hi {
            return Err(bad("velocity_um_per_ms", v_lo, "min must be <= max"));
        }
        let d = self.synaptic_delay_ms;
        if !(d.is_finite() && d >= 0.0) {
            return Err(bad("synaptic_delay_ms", d, "must be finite and >= 0"));
        }
        let p = &self.node;
        // Every node may be on a cycle here, and with R = 0 activity around a
        // cycle of excitatory edges can grow without bound at one instant.
        if !(p.refractory_period_ms.is_finite() && p.refractory_period_ms > 0.0) {
            return Err(bad(
                "nodes.refractory_period_ms",
                p.refractory_period_ms,
                "must be finite and > 0 (a node on a cycle needs a refractory period)",
            ));
        }
        positive("nodes.threshold", p.threshold)?;
        positive("nodes.summation_tau_ms", p.summation_tau_ms)?;
        let cell = cutoff / 2.0;
        let dim = |s: f64| ((s / cell).ceil() as usize).max(1);
        let dims = [
            dim(self.size_um[0]),
            dim(self.size_um[1]),
            dim(self.size_um[2]),
        ];
        if dims.iter().map(|&d| d as u128).product::<u128>() > 1 << 28 {
            return Err(bad(
                "cutoff_um",
                cutoff,
                "is so small against the box that the cell grid would exceed 2^28 cells",
            ));
        }
        Ok(Plan {
            cutoff,
            p_max,
            cell,
            dims,
        })
    }

    /// `p_max` as the builder uses it (set from `out_degree` when given).
    pub fn effective_p_max(&self) -> Result<f64, NetworkError> {
        Ok(self.plan()?.p_max)
    }

    /// The cutoff as the builder uses it.
    pub fn effective_cutoff_um(&self) -> Result<f64, NetworkError> {
        Ok(self.plan()?.cutoff)
    }

    /// The expected number of edges, ignoring the boundary (an upper bound
    /// for sizing memory): nodes x the expected interior out-degree.
    pub fn expected_edges(&self) -> Result<usize, NetworkError> {
        let plan = self.plan()?;
        let sheet = self.size_um[2] == 0.0;
        let volume = if sheet {
            self.size_um[0] * self.size_um[1]
        } else {
            self.size_um.iter().product()
        };
        let density = self.n_nodes as f64 / volume;
        let k = plan.p_max * density * shape_integral(&self.kernel, plan.cutoff, sheet);
        Ok((self.n_nodes as f64 * k).ceil() as usize)
    }
}

/// One source's edges before assembly: (target, length um, velocity).
type SourceEdges = Vec<(u32, f64, f64)>;

/// Builds the network of `spec` (see the module doc). All nodes are
/// recurrent; no edge is plastic (`Network::set_plastic_classes` changes
/// that).
pub fn build_geometric(spec: &GeometricSpec) -> Result<Network, NetworkError> {
    let plan = spec.plan()?;
    let n = spec.n_nodes;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut position = Vec::with_capacity(n);
    let mut inhibitory = Vec::with_capacity(n);
    for _ in 0..n {
        let p: [f64; 3] = std::array::from_fn(|k| rng.gen::<f64>() * spec.size_um[k]);
        position.push(p);
        inhibitory.push(rng.gen::<f64>() < spec.inhibitory_fraction);
    }
    // Counting sort of the nodes into cells (node order kept within a cell).
    let [dx, dy, dz] = plan.dims;
    let cell_of = |p: &[f64; 3]| -> [usize; 3] {
        let c = |x: f64, d: usize| ((x / plan.cell) as usize).min(d - 1);
        [c(p[0], dx), c(p[1], dy), c(p[2], dz)]
    };
    let index = |c: [usize; 3]| (c[2] * dy + c[1]) * dx + c[0];
    let mut cell_start = vec![0u32; dx * dy * dz + 1];
    for p in &position {
        cell_start[index(cell_of(p)) + 1] += 1;
    }
    for i in 0..dx * dy * dz {
        cell_start[i + 1] += cell_start[i];
    }
    let mut fill = cell_start.clone();
    let mut cell_nodes = vec![0u32; n];
    for (i, p) in position.iter().enumerate() {
        let c = index(cell_of(p));
        cell_nodes[fill[c] as usize] = i as u32;
        fill[c] += 1;
    }
    let cutoff2 = plan.cutoff * plan.cutoff;
    let [v_lo, v_hi] = spec.velocity_um_per_ms;
    let sources: Vec<SourceEdges> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
            rng.set_stream(i as u64 + 1);
            let pi = position[i];
            let c = cell_of(&pi);
            let range = |c: usize, d: usize| c.saturating_sub(2)..(c + 3).min(d);
            let mut out: SourceEdges = Vec::new();
            for z in range(c[2], dz) {
                for y in range(c[1], dy) {
                    for x in range(c[0], dx) {
                        let cell = index([x, y, z]);
                        let members =
                            &cell_nodes[cell_start[cell] as usize..cell_start[cell + 1] as usize];
                        for &j in members {
                            if j as usize == i {
                                continue;
                            }
                            let pj = position[j as usize];
                            let d2 = (pi[0] - pj[0]).powi(2)
                                + (pi[1] - pj[1]).powi(2)
                                + (pi[2] - pj[2]).powi(2);
                            if d2 > cutoff2 {
                                continue;
                            }
                            let d = d2.sqrt();
                            if rng.gen::<f64>() < plan.p_max * spec.kernel.shape(d) {
                                let v = if v_lo == v_hi {
                                    v_lo
                                } else {
                                    v_lo + (v_hi - v_lo) * rng.gen::<f64>()
                                };
                                out.push((j, d, v));
                            }
                        }
                    }
                }
            }
            out.sort_unstable_by_key(|e| e.0);
            out
        })
        .collect();
    let m: usize = sources.iter().map(Vec::len).sum();
    if m > u32::MAX as usize - 1 {
        return Err(NetworkError::Other(format!(
            "{m} edges: too many for u32 edge ids"
        )));
    }
    let mut out_offsets = Vec::with_capacity(n + 1);
    out_offsets.push(0u32);
    let mut target = Vec::with_capacity(m);
    let mut length = Vec::with_capacity(m);
    let mut velocity = Vec::with_capacity(m);
    let mut weight = Vec::with_capacity(m);
    for (i, edges) in sources.into_iter().enumerate() {
        let w = if inhibitory[i] {
            spec.weight_inhibitory
        } else {
            spec.weight_excitatory
        };
        for (j, d, v) in edges {
            target.push(j);
            length.push(d);
            velocity.push(v);
            weight.push(w as f32);
        }
        out_offsets.push(target.len() as u32);
    }
    Network::from_csr(
        position,
        vec![Population::Recurrent; n],
        spec.node,
        out_offsets,
        target,
        length,
        velocity,
        weight,
        spec.synaptic_delay_ms,
    )
}

#[cfg(test)]
mod tests;
