//! The config of a large network run without images: a geometric network
//! (`[network] builder = "geometric"` with `[network.geometric]`), its
//! background drive (`[background]`) and the run (`[simulation]`). Used by
//! `geodyn bench large`; `configs/large.toml` is the shipped one. Unknown
//! keys are refused, and every bad value is reported with the file and the
//! field.

use super::ConfigError;
use crate::network::{GeometricSpec, Kernel, NetworkError, NodeParams};
use crate::sim::RunParams;
use crate::stimulus::BackgroundParams;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLarge {
    network: RawLargeNetwork,
    background: RawBackground,
    simulation: RawLargeSimulation,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLargeNetwork {
    builder: String,
    geometric: RawGeometric,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawKernel {
    Exponential,
    Gaussian,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGeometric {
    n_nodes: usize,
    size_um: [f64; 3],
    kernel: RawKernel,
    #[serde(default)]
    lambda_um: Option<f64>,
    #[serde(default)]
    sigma_um: Option<f64>,
    #[serde(default)]
    p_max: Option<f64>,
    #[serde(default)]
    out_degree: Option<f64>,
    #[serde(default)]
    cutoff_um: Option<f64>,
    #[serde(default)]
    inhibitory_fraction: f64,
    weight_excitatory: f64,
    weight_inhibitory: f64,
    velocity_um_per_ms: [f64; 2],
    #[serde(default)]
    synaptic_delay_ms: f64,
    seed: u64,
    nodes: RawGeoNodes,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGeoNodes {
    refractory_period_ms: f64,
    threshold: f64,
    summation_tau_ms: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackground {
    rate_hz: f64,
    seed: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLargeSimulation {
    duration_ms: f64,
}

/// A checked large-network config.
#[derive(Clone, Debug, PartialEq)]
pub struct LargeConfig {
    pub network: GeometricSpec,
    pub background: BackgroundParams,
    pub run: RunParams,
}

impl LargeConfig {
    /// Parses and checks `text` (`path` names the file in messages).
    pub fn parse(text: &str, path: &Path) -> Result<LargeConfig, ConfigError> {
        let raw: RawLarge = super::parse_toml(text, path)?;
        let invalid = |field: &str, value: String, why: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            field: field.to_string(),
            value,
            why: why.to_string(),
        };
        if raw.network.builder != "geometric" {
            return Err(invalid(
                "network.builder",
                raw.network.builder.clone(),
                "a large-network config needs builder = \"geometric\"",
            ));
        }
        let g = raw.network.geometric;
        let kernel = match g.kernel {
            RawKernel::Exponential => Kernel::Exponential {
                lambda_um: g.lambda_um.ok_or_else(|| {
                    invalid(
                        "network.geometric.lambda_um",
                        "(unset)".into(),
                        "kernel = \"exponential\" needs it",
                    )
                })?,
            },
            RawKernel::Gaussian => Kernel::Gaussian {
                sigma_um: g.sigma_um.ok_or_else(|| {
                    invalid(
                        "network.geometric.sigma_um",
                        "(unset)".into(),
                        "kernel = \"gaussian\" needs it",
                    )
                })?,
            },
        };
        if g.p_max.is_some() == g.out_degree.is_some() {
            return Err(invalid(
                "network.geometric.p_max",
                format!("{:?}", g.p_max),
                "set exactly one of p_max and out_degree",
            ));
        }
        let network = GeometricSpec {
            n_nodes: g.n_nodes,
            size_um: g.size_um,
            kernel,
            p_max: g.p_max.unwrap_or(1.0),
            out_degree: g.out_degree,
            cutoff_um: g.cutoff_um,
            inhibitory_fraction: g.inhibitory_fraction,
            weight_excitatory: g.weight_excitatory,
            weight_inhibitory: g.weight_inhibitory,
            velocity_um_per_ms: g.velocity_um_per_ms,
            synaptic_delay_ms: g.synaptic_delay_ms,
            node: NodeParams {
                refractory_period_ms: g.nodes.refractory_period_ms,
                threshold: g.nodes.threshold,
                summation_tau_ms: g.nodes.summation_tau_ms,
            },
            seed: g.seed,
        };
        // Checks the spec now, so a bad value is named before any build.
        network.expected_edges().map_err(|e| match e {
            NetworkError::BadSpec { field, value, why } => invalid(&field, value, &why),
            other => invalid("network.geometric", String::new(), &other.to_string()),
        })?;
        let duration = raw.simulation.duration_ms;
        let run = RunParams::new(duration, None).map_err(|e| {
            invalid(
                "simulation.duration_ms",
                duration.to_string(),
                &e.to_string(),
            )
        })?;
        let background =
            BackgroundParams::new(raw.background.rate_hz, duration, raw.background.seed).map_err(
                |e| {
                    invalid(
                        &format!("background.{}", e.field),
                        e.value.to_string(),
                        e.why,
                    )
                },
            )?;
        Ok(LargeConfig {
            network,
            background,
            run,
        })
    }

    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<LargeConfig, ConfigError> {
        LargeConfig::parse(&super::read_text(path)?, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../configs/large.toml");

    fn err(text: &str) -> String {
        LargeConfig::parse(text, Path::new("x.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_shipped_config_parses_and_a_small_copy_builds() {
        let c = LargeConfig::parse(SHIPPED, Path::new("configs/large.toml")).unwrap();
        assert_eq!(c.network.n_nodes, 100_000);
        let e = c.network.expected_edges().unwrap();
        assert!((9_000_000..=11_000_000).contains(&e), "{e} expected edges");
        // The same density in a box 1/1000 of the volume.
        let small = GeometricSpec {
            n_nodes: 2000,
            size_um: [271.4, 271.4, 271.4],
            ..c.network.clone()
        };
        let net = crate::network::build_geometric(&small).unwrap();
        assert!(net.n_edges() > 2000 * 20);
    }

    #[test]
    fn bad_values_name_the_file_and_field() {
        let m = err(&SHIPPED.replace("lambda_um = 40.0", "lambda_um = -40.0"));
        assert!(
            m.contains("x.toml") && m.contains("network.geometric.lambda_um"),
            "{m}"
        );
        let m = err(&SHIPPED.replace("rate_hz = 5.0", "rate_hz = -5.0"));
        assert!(m.contains("background.rate_hz"), "{m}");
        let m = err(&SHIPPED.replace("builder = \"geometric\"", "builder = \"sbm\""));
        assert!(m.contains("network.builder"), "{m}");
        let m = err(&SHIPPED.replace("out_degree = 100.0", "out_degree = 100.0\np_max = 0.5"));
        assert!(m.contains("p_max"), "{m}");
        let m = err(&SHIPPED.replace("threshold =", "thresold ="));
        assert!(m.contains("x.toml") && m.contains("thresold"), "{m}");
        let m = err(&SHIPPED.replace("refractory_period_ms = 2.0", "refractory_period_ms = 0.0"));
        assert!(m.contains("refractory_period_ms"), "{m}");
    }
}
