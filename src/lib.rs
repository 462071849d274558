//! geodyn: exact event-driven simulation of geometric dynamic networks, and
//! classification from their dynamics with no gradient descent.
//!
//! The modules follow the data flow of an experiment:
//!
//! ```text
//! dataset -> stimulus -> network (geometry) -> sim (dynamics + plasticity)
//!         -> record -> embed -> eval (classifiers, protocols, baselines) -> report
//! ```
//!
//! The simulation core (`network`, `sim`, `record`) knows nothing of datasets,
//! files or the command line. Above the stages, [`pipeline`] is the one
//! runner (the encode loop, the resumable `.npy` store, the evaluation beside
//! the baselines), [`experiments`] are the source's three experiments as
//! short recipes over it, and [`cli`] is the `geodyn` command line. The
//! library prints nothing: progress goes to a [`pipeline::Observer`].

pub mod cli;
pub mod config;
pub mod cpu_time;
pub mod dataset;
pub mod embed;
pub mod eval;
pub mod experiments;
pub mod memory;
pub mod network;
pub mod pipeline;
pub mod record;
pub mod report;
pub mod sim;
pub mod stimulus;
