//! sim: the event-driven engine, dynamics and plasticity (stage 4 of the pipeline).
//!
//! Time is continuous (`f64` milliseconds). A signal that node i emits at t
//! arrives at j at exactly `t + latency_ij`; nothing is rounded to a grid.
//!
//! **Dynamics.** An arrival at j while j is refractory (`t - last_activation <
//! R_j`) is *lost*: it neither adds to j's sum nor waits; it is counted. An
//! arrival at or after the end of the refractory period is integrated:
//! `u_j <- u_j * exp(-(t - t_last)/tau_s) + w_ij`. If `u_j >= theta_j` the node
//! activates at t: `u_j` resets to 0, j is refractory for R_j, and a signal
//! leaves on every out-edge. A stimulus activation (an
//! [`ExternalActivation`](crate::record::ExternalActivation))
//! forces an activation unless the node is refractory, in which case it is lost.
//!
//! **Order.** The result is that of processing events in increasing (time,
//! target node, edge id), with stimulus activations after arrivals of the same
//! (time, node): a total order, so a run is a pure function of (network,
//! weights, parameters, stimulus), whatever the thread count.
//!
//! **STDP** (pair-based, all-to-all, with exponential traces; timing taken at the
//! target, i.e. at arrival times, so latencies matter). Each plastic edge keeps a
//! pre trace of its arrivals, each node a post trace of its activations. At an
//! arrival, `w -= A- * y_post(t)` (post before pre: depression) and the pre trace
//! steps by 1; at an activation, every incoming plastic edge gets
//! `w += A+ * x_pre(t)` (pre before post: potentiation; the causal arrival itself
//! has dt = 0 and gets the full A+) and the post trace steps by 1. Weights are
//! clipped to `[w_min, w_max]`; `w_min < 0` lets an edge change sign. The arrival
//! itself is weighted by the weight before its own update.
//!
//! *Lost arrivals and STDP:* by default a lost arrival still counts for STDP
//! timing (`lost_arrivals_count = true`). Refractoriness blocks the target's
//! integration, but the signal did reach the synapse, and STDP is a function of
//! pre and post spike times at the synapse; the option exists so the other
//! reading can be measured.
//!
//! **How it is fast.** (1) *Epochs.* Time is cut into epochs no longer than the
//! smallest latency, so nothing emitted in an epoch arrives in the same epoch:
//! within an epoch the targets are independent, and the epoch's events can be
//! sorted once, by time, and processed in that order. Signals are not queued
//! one by one: an activation queues one *emission* (a cursor into its
//! out-edges sorted by latency) in a wheel of per-epoch buckets; each epoch,
//! the due emissions write their arrivals of that epoch sequentially and move
//! to the bucket of their next one. The epoch's events are then ordered by a
//! counting sort on a fine time slot plus an insertion pass for the few that
//! share a slot (see `events`). This gives exactly the result of the global
//! order above. An emission with no plastic edge among its out-edges (an
//! input node's) writes its arrivals without reading the STDP array.
//! (2) *No exponential per arrival.* Decaying quantities (potential, traces) are
//! stored scaled by `exp((t - origin)/tau)`; the factor of an arrival is the
//! product of its emission's factor (one `exp` per activation) and its edge's
//! `exp(latency/tau)` (computed once per network). This is the same arithmetic
//! rearranged, not an approximation; it differs from the direct formula only by
//! floating-point rounding (a test checks the two agree). The origin moves
//! forward before the factors could overflow, and networks whose
//! latency/tau ratios are too large for the tables use `exp` per arrival.
//! (3) *Prefetch.* Writing an arrival prefetches the target's state and the
//! plastic edge's, which processing reads after the epoch's sort: in a
//! network whose state exceeds the cache these are the random accesses (in
//! one whose state fits in 1 MiB the hints only cost instructions, and are
//! left out). Each emission prefetches the out-edges its next epoch will
//! read. In an epoch too long for those lines to stay cached until their
//! turn (a large network's, tens of thousands of events), processing asks
//! for them again a few events ahead.
//!
//! **Where things are.** `params`: the checked run and STDP parameters and the
//! errors; `events`: event keys, the out-edge table, the wheel of emissions
//! and the epoch sort; `prepare`: the per-edge tables ([`Simulator::new`]); `run`: the epoch
//! loop ([`Simulator::run`]); `dynamics`: arrival, activation and STDP, the hot
//! path.

mod dynamics;
mod events;
mod params;
mod prepare;
mod run;

pub use params::{RunLimits, RunParams, SimError, StdpParams};
pub use prepare::{estimate_state_bytes, Simulator};
pub use run::{simulate, Workspace};

#[cfg(test)]
mod tests;
