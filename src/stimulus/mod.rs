//! stimulus: the second stage of the pipeline (`dataset -> stimulus -> network
//! -> sim -> ...`). It turns one image into the activation trains of the
//! network's input nodes, as [`ExternalActivation`]s for the engine.
//!
//! # Encoding
//!
//! Input node `i` is pixel `i` of the image, row-major (the input nodes are
//! nodes `0..pixels.len()` of the network, 0..784 for MNIST).
//!
//! - **Intensity** `= pixel / 255`, in [0, 1].
//! - A pixel **drives** its input node only if its intensity is strictly above
//!   [`StimulusParams::intensity_threshold`]; it then drives it at rate
//!   `r = max_rate_hz * intensity` (Hz), i.e. a period of `1000 / r` ms, for
//!   spikes in `[0, duration_ms)`.
//! - **Refractory cap.** The input node's own refractory period `R` caps the
//!   rate: no two spikes of a node are closer than `R`. Were they closer, the
//!   engine would lose the second one anyway; capping here keeps the stimulus
//!   what it claims to be. `R` is taken per node from the network the stimulus
//!   drives (the caller passes the input nodes' refractory periods), so the
//!   engine and the stimulus never disagree about it.
//! - [`TrainKind::Regular`] (the default; deterministic, the seed is ignored):
//!   period `P = max(1000 / r, R)`, spikes at `P/2, P/2 + P, P/2 + 2P, ...`
//!   while `< duration_ms`. The phase `P/2` (rather than 0) is there so that
//!   the image does not start with every driven pixel firing in one
//!   synchronous volley at `t = 0`; pixels of equal intensity still fire
//!   together, pixels of different intensity drift apart. For example a pixel
//!   of 255 at 100 Hz over 600 ms gives 60 spikes at 5, 15, ..., 595 ms.
//! - [`TrainKind::Poisson`]: a Poisson process of rate `r` with dead time `R`
//!   (non-paralysable: a spike closer than `R` to the previous *kept* spike is
//!   dropped). By memorylessness this is drawn directly: the first spike after
//!   an exponential interval (mean `1000 / r` ms) from `t = 0`, each next one
//!   `R` plus an exponential interval after the previous. All draws come from
//!   one `ChaCha8Rng::seed_from_u64(seed)` stream per image, consumed in pixel
//!   order, so a (pixels, params, seed) triple always gives the same train; the
//!   caller derives the seed per image.
//!
//! - [`TrainKind::Latency`] (a timing code; deterministic): one spike per
//!   driving pixel, earlier for brighter, at `t = latency_window_ms * (1 -
//!   intensity)` (kept if `< duration_ms`): a pixel of 255 fires at 0, one
//!   of intensity 0.5 at half the window. The rate and `R` play no part.
//! - [`TrainKind::Volley`] (a timing code; deterministic): one spike per
//!   driving pixel at `t = 0`, so only the network's latencies and
//!   refractoriness shape what follows.
//!
//! Output is sorted by `(time_ms, node)`. Degenerate parameters give no
//! spikes rather than a panic: a non-positive or NaN rate, duration or
//! period; a NaN threshold; a negative or NaN `R` counts as 0. An infinite
//! rate with `R > 0` fires every `R` ms (Regular) or is dropped (Poisson).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::record::ExternalActivation;

mod background;
pub use background::{background_drive, background_drive_of, BackgroundError, BackgroundParams};

/// Shape of an input node's activation train.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainKind {
    /// Evenly spaced spikes, phase half a period (deterministic).
    #[default]
    Regular,
    /// Poisson spikes with the input refractory period as dead time (seeded).
    Poisson,
    /// One spike per driving pixel at `latency_window_ms * (1 - intensity)`.
    Latency,
    /// One spike per driving pixel at t = 0.
    Volley,
}

/// How pixels drive input nodes. Units: ms, Hz; intensity in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct StimulusParams {
    /// A pixel drives its node only if `pixel / 255 > intensity_threshold`.
    pub intensity_threshold: f64,
    /// Length of the stimulus; spikes lie in `[0, duration_ms)`.
    pub duration_ms: f64,
    /// Rate of a pixel of intensity 1; rate = `max_rate_hz * intensity`.
    pub max_rate_hz: f64,
    pub train: TrainKind,
    /// [`TrainKind::Latency`]: the spike time of a pixel of intensity 0;
    /// unused by the other trains.
    pub latency_window_ms: f64,
}

/// R of input node `node` (the least allowed inter-spike interval of its
/// train), with a missing, negative or NaN value read as 0 (no cap).
fn refractory_ms(input_refractory_ms: &[f64], node: usize) -> f64 {
    // f64::max returns the non-NaN operand, so NaN becomes 0.
    input_refractory_ms
        .get(node)
        .copied()
        .unwrap_or(0.0)
        .max(0.0)
}

impl StimulusParams {
    /// The rate (Hz) at which `pixel` drives its node, or `None` if it does not.
    fn drive_rate_hz(&self, pixel: u8) -> Option<f64> {
        let intensity = f64::from(pixel) / 255.0;
        let rate = self.max_rate_hz * intensity;
        // `rate > 0.0` is false for NaN too.
        (intensity > self.intensity_threshold && rate > 0.0).then_some(rate)
    }

    /// Period of the regular train at `rate_hz`, refractory cap applied; `None`
    /// when no usable (positive, finite) period results.
    fn regular_period_ms(&self, rate_hz: f64, refractory_ms: f64) -> Option<f64> {
        let period = (1000.0 / rate_hz).max(refractory_ms);
        (period > 0.0 && period.is_finite()).then_some(period)
    }
}

/// The times of a regular train: `phase + k * period < duration` with
/// `phase = period / 2`. Computed as `phase + k * period` (no accumulated
/// drift), then nudged up by an ulp where rounding would put two spikes
/// closer than `min_gap` (so the engine never sees a spike inside R).
fn regular_times(period: f64, duration: f64, min_gap: f64) -> impl Iterator<Item = f64> {
    let phase = period / 2.0;
    let mut k = 0u64;
    let mut prev: Option<f64> = None;
    std::iter::from_fn(move || {
        let mut t = phase + k as f64 * period;
        if let Some(p) = prev {
            t = not_closer_than(p, min_gap, t);
        }
        if t < duration {
            k += 1;
            prev = Some(t);
            Some(t)
        } else {
            None
        }
    })
}

/// Smallest `t' >= t` with `t' - prev >= gap` and `t' >= prev + gap` in f64
/// (either way an engine might test refractoriness). A few ulps at most.
fn not_closer_than(prev: f64, gap: f64, mut t: f64) -> f64 {
    while t - prev < gap || t < prev + gap {
        t = t.next_up();
    }
    t
}

/// Encodes one image (`pixels`, row-major; pixel `i` drives input node `i`)
/// as input activations over `[0, params.duration_ms)`, sorted by
/// `(time_ms, node)`. `input_refractory_ms[i]` is the refractory period of
/// input node `i` in the network driven (it caps the rate). `seed` is used
/// only by [`TrainKind::Poisson`]. See the module documentation for the exact
/// semantics.
pub fn encode_image(
    pixels: &[u8],
    params: &StimulusParams,
    input_refractory_ms: &[f64],
    seed: u64,
) -> Vec<ExternalActivation> {
    let duration = params.duration_ms;
    let mut out = Vec::new();
    match params.train {
        TrainKind::Latency | TrainKind::Volley => {
            out.extend(pixels.iter().enumerate().filter_map(|(node, &p)| {
                params.drive_rate_hz(p)?;
                let time_ms = single_spike_ms(params, p);
                // `< duration` is false for NaN too.
                (time_ms < duration).then_some(ExternalActivation {
                    node: node as u32,
                    time_ms,
                })
            }));
        }
        TrainKind::Regular => {
            let period_of = |node: usize, p: u8| {
                let r = refractory_ms(input_refractory_ms, node);
                params
                    .drive_rate_hz(p)
                    .and_then(|rate| params.regular_period_ms(rate, r))
                    .map(|period| (period, r))
            };
            // Exact count first, so the output is allocated once.
            let count: usize = pixels
                .iter()
                .enumerate()
                .filter_map(|(node, &p)| period_of(node, p))
                .map(|(period, r)| regular_times(period, duration, r).count())
                .sum();
            out.reserve_exact(count);
            for (node, &p) in pixels.iter().enumerate() {
                let Some((period, refractory)) = period_of(node, p) else {
                    continue;
                };
                out.extend(regular_times(period, duration, refractory).map(|time_ms| {
                    ExternalActivation {
                        node: node as u32,
                        time_ms,
                    }
                }));
            }
        }
        TrainKind::Poisson => {
            // The count is random: reserve the expectation plus a margin.
            let expected = expected_spike_count(pixels, params, input_refractory_ms);
            out.reserve((expected + 4.0 * expected.sqrt()).ceil() as usize);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for (node, &p) in pixels.iter().enumerate() {
                let Some(rate_hz) = params.drive_rate_hz(p) else {
                    continue;
                };
                let refractory = refractory_ms(input_refractory_ms, node);
                // An infinite rate is a zero mean interval: only the dead time
                // would space the spikes, which is not a Poisson train; skip it.
                if !rate_hz.is_finite() {
                    continue;
                }
                let mean_interval_ms = 1000.0 / rate_hz;
                // Inverse-CDF exponential; 1 - u is in (0, 1], abs() turns -0 into 0.
                let mut exp_interval = || (-(1.0 - rng.gen::<f64>()).ln() * mean_interval_ms).abs();
                let mut t = exp_interval();
                let mut prev: Option<f64> = None;
                loop {
                    if let Some(p) = prev {
                        t = not_closer_than(p, refractory, t);
                    }
                    // Also ends the train on a NaN duration.
                    if t >= duration || duration.is_nan() {
                        break;
                    }
                    out.push(ExternalActivation {
                        node: node as u32,
                        time_ms: t,
                    });
                    prev = Some(t);
                    t += refractory + exp_interval();
                }
            }
        }
    }
    // Unstable sort: sorts in place without allocating; (time, node) keys are
    // distinct in practice (a node's spikes are strictly increasing in time).
    out.sort_unstable_by(|a, b| a.time_ms.total_cmp(&b.time_ms).then(a.node.cmp(&b.node)));
    out
}

/// The one spike of a pixel under the timing codes.
fn single_spike_ms(params: &StimulusParams, pixel: u8) -> f64 {
    match params.train {
        TrainKind::Latency => {
            let intensity = f64::from(pixel) / 255.0;
            // + 0.0: a full-intensity pixel gives 0, never -0.
            params.latency_window_ms * (1.0 - intensity) + 0.0
        }
        _ => 0.0,
    }
}

/// Expected number of activations [`encode_image`] produces for `pixels`.
/// Regular: the exact count. Poisson: the sum over driven pixels of
/// `r * D / (1 + r * R)` (rate in per ms), the stationary count of a Poisson
/// process with dead time R; exact for R = 0, otherwise off by well under one
/// spike per pixel (the train starts outside dead time).
pub fn expected_spike_count(
    pixels: &[u8],
    params: &StimulusParams,
    input_refractory_ms: &[f64],
) -> f64 {
    let duration = params.duration_ms;
    // (rate, R) of every driven pixel.
    let rates = pixels.iter().enumerate().filter_map(|(node, &p)| {
        params
            .drive_rate_hz(p)
            .map(|r| (r, refractory_ms(input_refractory_ms, node)))
    });
    match params.train {
        TrainKind::Latency | TrainKind::Volley => pixels
            .iter()
            .filter(|&&p| {
                params.drive_rate_hz(p).is_some() && single_spike_ms(params, p) < duration
            })
            .count() as f64,
        TrainKind::Regular => rates
            .filter_map(|(r, refractory)| {
                params
                    .regular_period_ms(r, refractory)
                    .map(|period| regular_times(period, duration, refractory).count() as f64)
            })
            .sum(),
        TrainKind::Poisson => {
            if duration <= 0.0 || duration.is_nan() {
                return 0.0;
            }
            rates
                .filter(|(r, _)| r.is_finite())
                .map(|(r_hz, refractory)| {
                    let r = r_hz / 1000.0;
                    r * duration / (1.0 + r * refractory)
                })
                .sum()
        }
    }
}

#[cfg(test)]
mod tests;
