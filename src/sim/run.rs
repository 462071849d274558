//! The run loop: checks a run's inputs, then walks the epochs in order,
//! gathering each epoch's events, grouping them by target and handing them to
//! the dynamics in phases split at snapshot times.

use super::dynamics::{Ctx, NodeState};
use super::events::{key, key_time, EdgeView, EventQueue, EXTERNAL};
use super::params::{RunParams, SimError, StdpParams};
use super::prepare::Simulator;
use crate::network::{Network, NodeId};
use crate::record::{ExternalActivation, RecordSpec, Recording, RunTotals, WeightSnapshot};

/// Largest exponent a stored factor may reach before the origin moves.
const REBASE_EXPONENT: f64 = 200.0;

/// Per-thread scratch of the engine: event queue and dynamic state. Reused
/// across runs (each run resets it), so a thread allocates once.
#[derive(Debug, Default)]
pub struct Workspace {
    pub(super) queue: EventQueue,
    pub(super) state: NodeState,
}

/// The weights of the recorded edge set at `time_ms`: a plastic edge's from
/// the run's state (where they live during a run), any other's from
/// `weights`.
fn snapshot(
    sim: &Simulator,
    ws: &Workspace,
    spec: &RecordSpec,
    weights: &[f32],
    time_ms: f64,
) -> WeightSnapshot {
    let plastic = &ws.state.plastic;
    WeightSnapshot {
        time_ms,
        weights: spec
            .snapshot_edges
            .iter()
            .map(
                |&e| match plastic.get(sim.plastic_index[e as usize] as usize) {
                    Some(x) => x.weight,
                    None => weights[e as usize],
                },
            )
            .collect(),
    }
}

/// The snapshot times of one run, sorted, and the next one to take.
struct SnapshotSchedule {
    times: Vec<f64>,
    next: usize,
}

impl SnapshotSchedule {
    fn new(spec: &RecordSpec, duration: f64) -> SnapshotSchedule {
        let mut times: Vec<f64> = spec.weight_snapshots_ms.clone();
        times.sort_by(f64::total_cmp);
        times.retain(|&t| t <= duration);
        SnapshotSchedule { times, next: 0 }
    }

    /// The next snapshot time if it is before `end`.
    fn due_before(&self, end: f64) -> Option<f64> {
        self.times.get(self.next).copied().filter(|&t| t < end)
    }
}

impl Simulator<'_> {
    /// Runs one stimulus, starting from `weights` (one per edge, updated in
    /// place when STDP is on) and from rest (potentials 0, no node refractory,
    /// traces empty).
    pub fn run(
        &self,
        ws: &mut Workspace,
        weights: &mut [f32],
        stimulus: &[ExternalActivation],
        spec: &RecordSpec,
    ) -> Result<Recording, SimError> {
        self.check_inputs(ws, weights, stimulus, spec)?;
        self.reset(ws, weights);
        let mut rec = self.empty_recording(spec)?;
        let mut snapshots = SnapshotSchedule::new(spec, self.params.duration_ms());
        let mut ctx = Ctx {
            sim: self,
            weights,
            spec,
            rec: &mut rec,
            totals: RunTotals::default(),
            origin: 0.0,
            stdp: self.params.stdp().copied().unwrap_or(StdpParams::OFF),
            lost_count_stdp: self.params.stdp().is_some_and(|p| p.lost_arrivals_count()),
            node_counts: spec.node_counts,
            max_in_flight: self.params.limits().max_events_in_flight,
            in_flight_exceeded: None,
        };
        self.run_epochs(ws, &mut ctx, &mut snapshots)?;
        // Snapshots after the last processed epoch see the final weights.
        for &t in &snapshots.times[snapshots.next..] {
            ctx.rec
                .snapshots
                .push(snapshot(self, ws, spec, ctx.weights, t));
        }
        for (x, &e) in ws.state.plastic.iter().zip(&self.plastic_edge) {
            ctx.weights[e as usize] = x.weight;
        }
        self.check_weights(ctx.weights)?;
        let totals = ctx.totals;
        rec.totals = totals;
        Ok(rec)
    }

    /// Refuses a run that left a plastic weight NaN or infinite, so no such
    /// weight is ever written. A weight that is not finite stays so (clamp
    /// keeps NaN), so checking at the end also covers every snapshot. The
    /// arithmetic is meant to make this impossible (see `epoch_geometry`);
    /// this is the guard in case it does not.
    fn check_weights(&self, weights: &[f32]) -> Result<(), SimError> {
        if self.params.stdp().is_none() {
            return Ok(());
        }
        match self
            .plastic_edge
            .iter()
            .find(|&&e| !weights[e as usize].is_finite())
        {
            None => Ok(()),
            Some(&e) => Err(SimError::NonFiniteWeight {
                edge: e,
                source_node: self.net.edge_source[e as usize],
                target: self.net.edge_target[e as usize],
                value: weights[e as usize],
                duration_ms: self.params.duration_ms(),
            }),
        }
    }

    /// The error of a run that passed a limit at `time_ms`: which limit,
    /// and the node with the most activations so far.
    fn runaway(&self, ws: &Workspace, ctx: &Ctx, time_ms: f64) -> Option<SimError> {
        let lim = self.params.limits();
        let (what, key, count, limit) = if let Some(c) = ctx.in_flight_exceeded {
            (
                "events in flight",
                "max_events_in_flight",
                c,
                lim.max_events_in_flight,
            )
        } else if ctx.totals.activations > lim.max_activations {
            (
                "activations",
                "max_activations",
                ctx.totals.activations,
                lim.max_activations,
            )
        } else if ctx.totals.arrivals > lim.max_arrivals {
            (
                "arrivals",
                "max_arrivals",
                ctx.totals.arrivals,
                lim.max_arrivals,
            )
        } else {
            return None;
        };
        let counts = &ws.state.activation_count;
        // The first of the busiest nodes, so the message is deterministic.
        let node = (0..counts.len())
            .max_by_key(|&j| (counts[j], std::cmp::Reverse(j)))
            .unwrap_or(0);
        let node_activations = counts.get(node).copied().unwrap_or(0);
        let r = self
            .net
            .refractory_period_ms
            .get(node)
            .copied()
            .unwrap_or(0.0);
        Some(SimError::Runaway {
            what,
            key,
            count,
            limit,
            time_ms,
            node: node as NodeId,
            node_activations,
            rate_hz: node_activations as f64 / time_ms.max(f64::MIN_POSITIVE) * 1000.0,
            node_refractory_ms: r,
            max_rate_hz: if r > 0.0 {
                format!("{:.0} Hz", 1000.0 / r)
            } else {
                "any rate, even at one instant".to_string()
            },
        })
    }

    /// Checks the weights, the record spec and the stimulus against the
    /// network, and queues the stimulus in event order.
    fn check_inputs(
        &self,
        ws: &mut Workspace,
        weights: &[f32],
        stimulus: &[ExternalActivation],
        spec: &RecordSpec,
    ) -> Result<(), SimError> {
        let n = self.net.n_nodes();
        let m = self.net.n_edges();
        if weights.len() != m {
            return Err(SimError::WeightCount {
                got: weights.len(),
                expected: m,
            });
        }
        if let Some(&e) = spec.snapshot_edges.iter().find(|&&e| e as usize >= m) {
            return Err(SimError::SnapshotEdge(e));
        }
        if let Some(b) = spec.activity_bin_ms {
            if !(b.is_finite() && b > 0.0) {
                return Err(SimError::ActivityBin(b));
            }
        }
        let queued = &mut ws.queue.stimulus;
        queued.clear();
        crate::memory::try_reserve(queued, stimulus.len(), || {
            format!("queueing {} stimulus activations", stimulus.len())
        })?;
        for (index, s) in stimulus.iter().enumerate() {
            if s.node as usize >= n {
                return Err(SimError::StimulusNode {
                    index,
                    node: s.node,
                    n_nodes: n,
                });
            }
            if !(s.time_ms.is_finite() && s.time_ms >= 0.0) {
                return Err(SimError::StimulusTime {
                    index,
                    time: s.time_ms,
                });
            }
            // `+ 0.0` turns -0.0 into 0.0 so the bit order holds.
            queued.push(key(s.time_ms + 0.0, EXTERNAL, s.node));
        }
        queued.sort_unstable();
        Ok(())
    }

    /// A recording with the arrays the spec asks for, zeroed. The activity
    /// table is nodes x bins, and bins = duration / bin width comes from the
    /// config, so its size is checked before it is allocated.
    fn empty_recording(&self, spec: &RecordSpec) -> Result<Recording, SimError> {
        let n = self.net.n_nodes();
        let mut rec = Recording::default();
        if spec.node_counts {
            rec.activation_counts = vec![0; n];
            rec.lost_counts = vec![0; n];
        }
        if let Some(bw) = spec.activity_bin_ms {
            // Saturating float-to-int casts: a huge bin count stays huge.
            let bins = ((self.params.duration_ms() / bw).ceil() as u64).max(1);
            let cells = bins.saturating_mul(n as u64);
            let what = || {
                format!(
                    "activity of {n} nodes in {bins} bins of {bw} ms (duration {} ms)",
                    self.params.duration_ms()
                )
            };
            crate::memory::check(what, crate::memory::bytes_of::<u32>(cells))?;
            // Fits in memory, so in usize.
            let cells = cells as usize;
            crate::memory::try_reserve(&mut rec.activity, cells, what)?;
            rec.activity.resize(cells, 0);
            rec.activity_bins = bins as usize;
        }
        Ok(rec)
    }

    fn reset(&self, ws: &mut Workspace, weights: &[f32]) {
        ws.queue.reset(self.ring_len);
        ws.state.reset(self.net, &self.plastic_edge, weights);
    }

    /// The epoch of time `t`: the same product the queue uses when it
    /// writes arrivals (`self.inv_epoch`), so both agree on every boundary.
    #[inline(always)]
    fn epoch_of(&self, t: f64) -> u64 {
        (t * self.inv_epoch) as u64
    }

    /// Every epoch up to the end of the run, in order; empty stretches with
    /// nothing in flight are skipped. The limits are checked after each epoch
    /// (events in flight at each emission): an epoch's arrivals come from the
    /// queue, so the counts pass a limit by at most one queue's worth.
    fn run_epochs(
        &self,
        ws: &mut Workspace,
        ctx: &mut Ctx,
        snapshots: &mut SnapshotSchedule,
    ) -> Result<(), SimError> {
        let mask = (self.ring_len - 1) as u64;
        let last_epoch = self.epoch_of(self.params.duration_ms());
        let mut stim_cursor = 0usize;
        let mut epoch: u64 = 0;
        while epoch <= last_epoch {
            // Before the arrivals are written: they carry factors relative
            // to the origin (see `Ev`).
            let epoch_start = epoch as f64 * self.epoch_ms;
            if (epoch_start - ctx.origin) * self.max_inv_tau > REBASE_EXPONENT {
                ctx.rebase(ws, epoch_start);
            }
            if !self.gather(ws, ctx.weights, epoch, mask, &mut stim_cursor) {
                match self.next_epoch(ws, epoch, stim_cursor) {
                    Some(b) => epoch = b,
                    None => break,
                }
                continue;
            }
            ws.queue.sort_epoch();
            self.run_phases(ws, ctx, snapshots, epoch, mask);
            ctx.flush_activations(ws);
            epoch += 1;
            if let Some(e) = self.runaway(ws, ctx, epoch as f64 * self.epoch_ms) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Writes the events of `epoch` into the queue: the due emissions'
    /// arrivals and the stimulus up to it. False when there are none.
    fn gather(
        &self,
        ws: &mut Workspace,
        weights: &[f32],
        epoch: u64,
        mask: u64,
        stim_cursor: &mut usize,
    ) -> bool {
        let q = &mut ws.queue;
        let view = EdgeView {
            out: &self.out_edges,
            weights,
            factors: &ws.state.emission_factor,
            inv_epoch: self.inv_epoch,
        };
        if self.tables {
            q.gather_arrivals::<true>(view, epoch, mask);
        } else {
            q.gather_arrivals::<false>(view, epoch, mask);
        }
        while *stim_cursor < q.stimulus.len()
            && self.epoch_of(key_time(q.stimulus[*stim_cursor])) <= epoch
        {
            let k = q.stimulus[*stim_cursor];
            q.push_stimulus(k, self.inv_epoch);
            *stim_cursor += 1;
        }
        !q.epoch_is_empty()
    }

    /// The epoch to look at after the empty `epoch`: the next one while
    /// emissions wait in the wheel, else that of the next stimulus or parked
    /// emission; `None` when nothing is left.
    fn next_epoch(&self, ws: &Workspace, epoch: u64, stim_cursor: usize) -> Option<u64> {
        let q = &ws.queue;
        if q.ring_busy() {
            return Some(epoch + 1);
        }
        let next_stim = q
            .stimulus
            .get(stim_cursor)
            .map(|&k| self.epoch_of(key_time(k)));
        next_stim
            .into_iter()
            .chain(q.next_parked())
            .min()
            .map(|b| b.max(epoch + 1))
    }

    /// Processes the sorted epoch in phases split at snapshot times (and at
    /// the end of the run). The match picks one of four monomorphised loops.
    fn run_phases(
        &self,
        ws: &mut Workspace,
        ctx: &mut Ctx,
        snapshots: &mut SnapshotSchedule,
        epoch: u64,
        mask: u64,
    ) {
        let duration = self.params.duration_ms();
        let epoch_end = (epoch + 1) as f64 * self.epoch_ms;
        loop {
            let snap = snapshots.due_before(epoch_end);
            let limit = snap.unwrap_or(f64::INFINITY).min(duration);
            match (self.params.stdp().is_some(), self.tables) {
                (true, true) => ctx.phase::<true, true>(ws, limit, epoch, mask),
                (true, false) => ctx.phase::<true, false>(ws, limit, epoch, mask),
                (false, true) => ctx.phase::<false, true>(ws, limit, epoch, mask),
                (false, false) => ctx.phase::<false, false>(ws, limit, epoch, mask),
            }
            match snap {
                Some(t) if t <= duration => {
                    ctx.flush_activations(ws);
                    ctx.rec
                        .snapshots
                        .push(snapshot(self, ws, ctx.spec, ctx.weights, t));
                    snapshots.next += 1;
                }
                _ => break,
            }
        }
    }
}

/// Runs one stimulus from the network's initial weights; returns the recording
/// and the final weights.
pub fn simulate(
    net: &Network,
    params: &RunParams,
    stimulus: &[ExternalActivation],
    spec: &RecordSpec,
) -> Result<(Recording, Vec<f32>), SimError> {
    let mut weights = net.edge_weight.clone();
    let sim = Simulator::new(net, params)?;
    let rec = sim.run(&mut Workspace::default(), &mut weights, stimulus, spec)?;
    Ok((rec, weights))
}
