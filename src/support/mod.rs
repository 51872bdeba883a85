//! What every layer above may lean on and that is not vocabulary: crash points for the fault
//! tests, progress bars, the process's peak memory, exact decimals' one text, frames read row by row and written into
//! SQLite, the shared Google client, and what every remote call shares (one retry policy, a
//! rate limit, downloads that are whole or absent, reports delivered after a run). Nothing here imports the pipeline's stages.

pub mod decimal;
pub mod deliver;
pub mod download;
pub mod failpoint;
pub mod frame_rows;
pub mod google;
pub mod host;
pub mod id_index;
pub mod memory;
pub mod parquet_file;
pub mod progress;
pub mod rate;
pub mod read_only_db;
pub mod retry;
pub mod sqlite_frames;
