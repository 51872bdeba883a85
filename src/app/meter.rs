//! Each stage of an entity timed into the run's [`Timings`](crate::model::Timings) and shown on
//! its progress bar, in one call: a stage of the run is then one line, and none of them can
//! forget its clock or its bar.

use std::time::Instant;

use polars::prelude::*;

use super::error::{frame_err, PipelineError};
use crate::diff::Diffed;
use crate::read::RawTable;
use crate::support::progress::{Progress, Stage};
use crate::validate::Validated;

/// The rows a stage carried, for its progress bar.
pub(super) trait Carried {
    fn rows(&self) -> usize;
}

impl Carried for DataFrame {
    fn rows(&self) -> usize {
        self.height()
    }
}

impl Carried for RawTable {
    fn rows(&self) -> usize {
        self.frame.height()
    }
}

impl Carried for super::records::Typed {
    fn rows(&self) -> usize {
        self.frame.height()
    }
}

impl Carried for Validated {
    fn rows(&self) -> usize {
        self.counts.accepted
    }
}

impl Carried for Diffed {
    fn rows(&self) -> usize {
        let c = &self.changes;
        c.inserted.len() + c.updated.len() + c.deleted.len()
    }
}

/// One entity's way through the stages of one run.
pub(super) struct Meter<'a> {
    progress: &'a Progress,
    run_id: &'a str,
    entity: &'a str,
}

impl<'a> Meter<'a> {
    pub(super) fn new(progress: &'a Progress, run_id: &'a str, entity: &'a str) -> Meter<'a> {
        Meter {
            progress,
            run_id,
            entity,
        }
    }

    /// Runs one stage: its seconds are added to `secs` whether it failed or not (a quarantined
    /// file took its time too); its bar advances only when it succeeded.
    pub(super) fn timed<T: Carried, E>(
        &self,
        secs: &mut f64,
        stage: Stage,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.progress.begin(stage, self.entity);
        let t = Instant::now();
        let out = f();
        *secs += t.elapsed().as_secs_f64();
        if let Ok(done) = &out {
            self.progress.end(stage, self.entity, done.rows());
        }
        out
    }

    /// [`Meter::timed`] for a stage of frame operations, whose errors name this run and entity.
    pub(super) fn frames<T: Carried>(
        &self,
        secs: &mut f64,
        stage: Stage,
        f: impl FnOnce() -> PolarsResult<T>,
    ) -> Result<T, PipelineError> {
        self.timed(secs, stage, f)
            .map_err(frame_err(self.run_id, self.entity))
    }
}
