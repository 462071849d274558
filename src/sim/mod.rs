//! sim: the event-driven engine (dynamics and plasticity). Stub until the engine lands.

/// One activation imposed from outside the network (a stimulus spike): node
/// `node` is driven to activate at `time_ms`, subject to its refractory period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExternalActivation {
    pub node: u32,
    pub time_ms: f64,
}
