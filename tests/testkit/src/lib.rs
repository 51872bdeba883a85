//! Test-only stand-ins for what dropsync talks to, shared by its unit tests (`src/**/tests.rs`)
//! and its integration tests (`tests/*.rs`) as a dev-dependency, so none of it ships in the
//! dropsync crate.
//!
//! - Protocol fakes, each an HTTP server on 127.0.0.1 in its own thread that stops when
//!   dropped and can be told to misbehave: [`google`] (the OAuth token endpoint and service
//!   account keys the Google fakes share), [`drive`] (Drive v3), [`sheets`] (Sheets v4) and
//!   [`crm`] (a HubSpot-style bulk CRM API).
//! - Harnesses around real servers: [`postgres`] (a throwaway cluster, a database per test)
//!   [`sshd`] (a throwaway OpenSSH server for SFTP) and [`s3`] (moto's S3 server).
//! - [`drops`]: an independent reader and validator of generated dealer drops, to check the
//!   generator's manifest against the bytes it wrote.
//!
//! This crate does not depend on dropsync, on purpose: a fake must not share code with what
//! it checks (the Sheets fake parses A1 ranges its own way, the drop reader knows the export
//! contract from its own tables).

pub mod crm;
pub mod drive;
pub mod drops;
pub mod google;
pub mod postgres;
pub mod s3;
pub mod sheets;
pub mod sshd;

/// A port on 127.0.0.1 nothing listens on right now, for a server a harness starts.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port on 127.0.0.1")
}
