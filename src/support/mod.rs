//! What every layer above may lean on and that is not vocabulary: crash points for the fault
//! tests, progress bars, the process's peak memory, frames read row by row and written into
//! SQLite, and the shared Google client. Nothing here imports the pipeline's stages.

pub mod failpoint;
pub mod frame_rows;
pub mod google;
pub mod memory;
pub mod progress;
pub mod sqlite_frames;
