//! Background drive: Poisson external activations at every node, so a large
//! network runs without images (the spontaneous-activity regime of large
//! spatial network models). Node i's train comes from a ChaCha8 stream of
//! its own (stream i + 1 of the seed), so it does not depend on the number
//! of nodes, their order, or the thread count.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::record::ExternalActivation;

/// A background drive, checked: made only by [`BackgroundParams::new`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackgroundParams {
    rate_hz: f64,
    duration_ms: f64,
    seed: u64,
}

/// A bad background parameter: the field and its value.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("background.{field} = {value} is invalid: {why}")]
pub struct BackgroundError {
    pub field: &'static str,
    pub value: f64,
    pub why: &'static str,
}

impl BackgroundParams {
    /// `rate_hz` (per node) finite and >= 0, `duration_ms` finite and >= 0.
    pub fn new(rate_hz: f64, duration_ms: f64, seed: u64) -> Result<Self, BackgroundError> {
        let check = |field, value: f64| {
            if value.is_finite() && value >= 0.0 {
                Ok(value)
            } else {
                Err(BackgroundError {
                    field,
                    value,
                    why: "must be finite and >= 0",
                })
            }
        };
        Ok(BackgroundParams {
            rate_hz: check("rate_hz", rate_hz)?,
            duration_ms: check("duration_ms", duration_ms)?,
            seed,
        })
    }

    pub fn rate_hz(&self) -> f64 {
        self.rate_hz
    }

    pub fn duration_ms(&self) -> f64 {
        self.duration_ms
    }

    /// Expected number of activations over `n_nodes` nodes.
    pub fn expected_count(&self, n_nodes: usize) -> f64 {
        self.rate_hz * self.duration_ms * 1e-3 * n_nodes as f64
    }
}

/// Node `node`'s Poisson train over `[0, duration_ms)`, in time order:
/// exponential gaps of mean 1 / rate.
pub fn background_drive_of(params: &BackgroundParams, node: u32) -> Vec<f64> {
    let mut out = Vec::new();
    if params.rate_hz <= 0.0 {
        return out;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    rng.set_stream(node as u64 + 1);
    let mean_gap_ms = 1e3 / params.rate_hz;
    let mut t = 0.0;
    loop {
        // 1 - U is in (0, 1], so the log is finite.
        t += -(1.0 - rng.gen::<f64>()).ln() * mean_gap_ms;
        if t >= params.duration_ms || t.is_nan() {
            return out;
        }
        out.push(t);
    }
}

/// Every node's train, as external activations sorted by (time, node) as
/// the engine takes them.
pub fn background_drive(params: &BackgroundParams, n_nodes: usize) -> Vec<ExternalActivation> {
    let mut out: Vec<ExternalActivation> = (0..n_nodes as u32)
        .flat_map(|node| {
            background_drive_of(params, node)
                .into_iter()
                .map(move |time_ms| ExternalActivation { node, time_ms })
        })
        .collect();
    out.sort_by(|a, b| a.time_ms.total_cmp(&b.time_ms).then(a.node.cmp(&b.node)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_train_does_not_depend_on_the_number_of_nodes() {
        let p = BackgroundParams::new(20.0, 1000.0, 5).unwrap();
        let small = background_drive(&p, 10);
        let large = background_drive(&p, 20);
        let of = |v: &[ExternalActivation], n: u32| -> Vec<f64> {
            v.iter()
                .filter(|a| a.node == n)
                .map(|a| a.time_ms)
                .collect()
        };
        for n in 0..10 {
            assert_eq!(of(&small, n), of(&large, n));
            assert_eq!(of(&small, n), background_drive_of(&p, n));
        }
        assert_eq!(small, background_drive(&p, 10));
        assert_ne!(
            small,
            background_drive(&BackgroundParams::new(20.0, 1000.0, 6).unwrap(), 10)
        );
    }

    #[test]
    fn the_drive_is_sorted_in_range_and_at_its_rate() {
        let p = BackgroundParams::new(5.0, 1000.0, 1).unwrap();
        let n = 4000;
        let v = background_drive(&p, n);
        assert!(v
            .windows(2)
            .all(|w| (w[0].time_ms, w[0].node) <= (w[1].time_ms, w[1].node)));
        assert!(v.iter().all(|a| a.time_ms > 0.0 && a.time_ms < 1000.0));
        // Poisson count: mean = variance = 20,000; 4 standard errors.
        let expected = p.expected_count(n);
        assert!(
            (v.len() as f64 - expected).abs() < 4.0 * expected.sqrt(),
            "{} activations, expected {expected}",
            v.len()
        );
    }

    #[test]
    fn bad_parameters_name_the_field() {
        let e = BackgroundParams::new(-1.0, 10.0, 0).unwrap_err();
        assert_eq!(e.field, "rate_hz");
        let e = BackgroundParams::new(1.0, f64::NAN, 0).unwrap_err();
        assert!(e.to_string().contains("background.duration_ms"));
        assert!(background_drive(&BackgroundParams::new(0.0, 10.0, 0).unwrap(), 5).is_empty());
    }
}
