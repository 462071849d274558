//! The run loop: checks a run's inputs, then walks the epochs in order,
//! gathering each epoch's events, grouping them by target and handing them to
//! the dynamics in phases split at snapshot times.

use super::dynamics::{Ctx, NodeState};
use super::events::{key, key_time, Ev, EventQueue, EXTERNAL, NOT_PLASTIC};
use super::params::{RunParams, SimError, StdpParams};
use super::prepare::Simulator;
use crate::network::Network;
use crate::record::{ExternalActivation, RecordSpec, Recording, RunTotals, WeightSnapshot};
use std::cmp::Reverse;

/// Largest exponent a stored factor may reach before the origin moves.
const REBASE_EXPONENT: f64 = 200.0;

/// Per-thread scratch of the engine: event queue and dynamic state. Reused
/// across runs (each run resets it), so a thread allocates once.
#[derive(Debug, Default)]
pub struct Workspace {
    pub(super) queue: EventQueue,
    pub(super) state: NodeState,
}

/// The weights of the recorded edge set at `time_ms`.
fn snapshot(spec: &RecordSpec, weights: &[f32], time_ms: f64) -> WeightSnapshot {
    WeightSnapshot {
        time_ms,
        weights: spec
            .snapshot_edges
            .iter()
            .map(|&e| weights[e as usize])
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
        self.reset(ws);
        let mut rec = self.empty_recording(spec);
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
        };
        self.run_epochs(ws, &mut ctx, &mut snapshots);
        // Snapshots after the last processed epoch see the final weights.
        for &t in &snapshots.times[snapshots.next..] {
            ctx.rec.snapshots.push(snapshot(spec, ctx.weights, t));
        }
        let totals = ctx.totals;
        rec.totals = totals;
        Ok(rec)
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

    /// A recording with the arrays the spec asks for, zeroed.
    fn empty_recording(&self, spec: &RecordSpec) -> Recording {
        let n = self.net.n_nodes();
        let mut rec = Recording::default();
        if spec.node_counts {
            rec.activation_counts = vec![0; n];
            rec.lost_counts = vec![0; n];
        }
        if let Some(bw) = spec.activity_bin_ms {
            rec.activity_bins = ((self.params.duration_ms() / bw).ceil() as usize).max(1);
            rec.activity = vec![0; n * rec.activity_bins];
        }
        rec
    }

    fn reset(&self, ws: &mut Workspace) {
        let n = self.net.n_nodes();
        ws.queue.reset(n, self.ring_len);
        ws.state.reset(n, self.plastic_edge.len());
    }

    #[inline(always)]
    fn epoch_of(&self, t: f64) -> u64 {
        (t * (1.0 / self.epoch_ms)) as u64
    }

    /// Every epoch up to the end of the run, in order; empty stretches with
    /// nothing in flight are skipped.
    fn run_epochs(&self, ws: &mut Workspace, ctx: &mut Ctx, snapshots: &mut SnapshotSchedule) {
        let mask = (self.ring_len - 1) as u64;
        let last_epoch = self.epoch_of(self.params.duration_ms());
        let mut stim_cursor = 0usize;
        let mut pending = 0usize;
        let mut epoch: u64 = 0;
        while epoch <= last_epoch {
            if !self.gather(ws, epoch, mask, &mut stim_cursor, &mut pending) {
                match self.next_epoch(ws, epoch, stim_cursor, pending) {
                    Some(b) => epoch = b,
                    None => break,
                }
                continue;
            }
            let epoch_start = epoch as f64 * self.epoch_ms;
            if (epoch_start - ctx.origin) * self.max_inv_tau > REBASE_EXPONENT {
                ctx.rebase(ws, epoch_start);
            }
            ws.queue.group_by_target();
            self.run_phases(ws, ctx, snapshots, epoch, mask, &mut pending);
            ctx.flush_activations(ws);
            ws.queue.current.clear();
            epoch += 1;
        }
    }

    /// Moves the events of `epoch` into `queue.current`: its ring bucket, the
    /// stimulus up to it and the due overflow events. False (and the bucket
    /// left in place) when there are none.
    fn gather(
        &self,
        ws: &mut Workspace,
        epoch: u64,
        mask: u64,
        stim_cursor: &mut usize,
        pending: &mut usize,
    ) -> bool {
        let q = &mut ws.queue;
        let slot = (epoch & mask) as usize;
        std::mem::swap(&mut q.current, &mut q.ring[slot]);
        *pending -= q.current.len();
        while *stim_cursor < q.stimulus.len()
            && self.epoch_of(key_time(q.stimulus[*stim_cursor])) <= epoch
        {
            let k = q.stimulus[*stim_cursor];
            q.current.push(Ev::new(k, k as u32, NOT_PLASTIC));
            *stim_cursor += 1;
        }
        while let Some(&Reverse(k)) = q.overflow.peek() {
            if self.epoch_of(k.t()) > epoch {
                break;
            }
            q.current.push(k);
            q.overflow.pop();
        }
        if q.current.is_empty() {
            std::mem::swap(&mut q.current, &mut q.ring[slot]);
            return false;
        }
        true
    }

    /// The epoch to look at after the empty `epoch`: the next one while
    /// signals are in flight, else that of the next stimulus or overflow
    /// event; `None` when nothing is left.
    fn next_epoch(
        &self,
        ws: &Workspace,
        epoch: u64,
        stim_cursor: usize,
        pending: usize,
    ) -> Option<u64> {
        if pending > 0 {
            return Some(epoch + 1);
        }
        let q = &ws.queue;
        let next_stim = q
            .stimulus
            .get(stim_cursor)
            .map(|&k| self.epoch_of(key_time(k)));
        let next_over = q.overflow.peek().map(|&Reverse(k)| self.epoch_of(k.t()));
        next_stim
            .into_iter()
            .chain(next_over)
            .min()
            .map(|b| b.max(epoch + 1))
    }

    /// Processes the grouped epoch in phases split at snapshot times (and at
    /// the end of the run): every target is processed up to a limit before any
    /// goes past it. The match picks one of four monomorphised loops.
    fn run_phases(
        &self,
        ws: &mut Workspace,
        ctx: &mut Ctx,
        snapshots: &mut SnapshotSchedule,
        epoch: u64,
        mask: u64,
        pending: &mut usize,
    ) {
        let duration = self.params.duration_ms();
        let epoch_end = (epoch + 1) as f64 * self.epoch_ms;
        loop {
            let snap = snapshots.due_before(epoch_end);
            let limit = snap.unwrap_or(f64::INFINITY).min(duration);
            match (self.params.stdp().is_some(), self.tables) {
                (true, true) => ctx.phase::<true, true>(ws, limit, epoch, mask, pending),
                (true, false) => ctx.phase::<true, false>(ws, limit, epoch, mask, pending),
                (false, true) => ctx.phase::<false, true>(ws, limit, epoch, mask, pending),
                (false, false) => ctx.phase::<false, false>(ws, limit, epoch, mask, pending),
            }
            match snap {
                Some(t) if t <= duration => {
                    ctx.flush_activations(ws);
                    ctx.rec.snapshots.push(snapshot(ctx.spec, ctx.weights, t));
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
