//! The application: what an operator asks of dropsync, each built from the stages below.
//! `run` is one run told as the pipeline's stages; `watch` drives runs from drops and a
//! schedule; `alerts` is the one policy both use; `explain`, `check`, `serve` and `bench`
//! read or exercise what runs leave; `gen` makes synthetic drops for tests and benchmarks.

pub mod alerts;
pub mod bench;
pub mod check;
pub mod explain;
pub mod gen;
pub mod run;
pub mod serve;
pub mod watch;
