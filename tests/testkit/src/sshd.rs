//! A real, throwaway OpenSSH server on 127.0.0.1 for the tests of dropsync's SFTP source, with
//! its own ed25519 host key and a client key in `authorized_keys`, serving SFTP with
//! `internal-sftp`. It serves the real filesystem, so tests use absolute temp paths as
//! `remote_dir`. It must run as root (sshd's privilege separation); a missing
//! `/usr/sbin/sshd` fails the test, since CI installs it.

use crate::free_port;
use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

pub struct Sshd {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    /// Name of the environment variable that holds the client key path.
    pub key_env: String,
}

impl Sshd {
    /// Starts a server on a free port; panics with sshd's log when it cannot.
    pub fn start() -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: the SFTP tests need OpenSSH's server \
             (`apt-get install -y openssh-server`)"
        );
        fs::create_dir_all("/run/sshd").expect("create /run/sshd (sshd's privsep folder)");
        let mut dir = tempfile::tempdir().expect("temp dir for sshd");
        keygen(&dir.path().join("host_key"));
        keygen(&dir.path().join("client_key"));
        fs::copy(
            dir.path().join("client_key.pub"),
            dir.path().join("authorized_keys"),
        )
        .expect("write authorized_keys");
        let key_env = format!(
            "DROPSYNC_SFTP_TEST_KEY_{}_{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::SeqCst)
        );
        // Each fixture sets its own, never-changed variable; values are only read by std.
        std::env::set_var(&key_env, dir.path().join("client_key"));

        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut sshd = Sshd {
                dir,
                port,
                child: None,
                key_env: key_env.clone(),
            };
            sshd.write_config();
            match sshd.spawn() {
                Ok(()) => return sshd,
                Err(log) => {
                    last_log = log;
                    dir = sshd.take_dir();
                }
            }
        }
        panic!("sshd did not start after 5 tries; its last log:\n{last_log}");
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        self.stop();
        let dir = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_config(&self) {
        let d = self.dir.path().display();
        let config = format!(
            "Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {d}/host_key\n\
             PidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             StrictModes no\n\
             LogLevel VERBOSE\n\
             Subsystem sftp internal-sftp\n",
            port = self.port
        );
        fs::write(self.path("sshd_config"), config).expect("write sshd_config");
    }

    /// Starts sshd with the existing config and waits until its port accepts connections.
    fn spawn(&mut self) -> Result<(), String> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("sshd.log"))
            .expect("open sshd.log");
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(self.path("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {SSHD}: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("sshd exited with {status}:\n{}", self.log()));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Err(format!("sshd did not listen within 10 s:\n{}", self.log()))
    }

    /// Starts sshd again after [`Sshd::kill`], same port and host key.
    pub fn restart(&mut self) {
        self.stop();
        // The port may be held for a moment by the dying listener.
        for _ in 0..20 {
            match self.spawn() {
                Ok(()) => return,
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        panic!(
            "sshd did not restart on port {}:\n{}",
            self.port,
            self.log()
        );
    }

    /// Kills the listener and every session process it forked (SIGKILL): connections drop
    /// mid-transfer, as when a server dies.
    pub fn kill(&mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Collect the session processes before the listener dies and they are reparented.
        let pids = descendants(child.id());
        let _ = child.kill();
        let _ = child.wait();
        if !pids.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(pids.iter().map(|p| p.to_string()))
                .stderr(Stdio::null())
                .status();
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    /// `ssh-ed25519 AAAA...` of the host key.
    pub fn host_public_key(&self) -> String {
        let text = fs::read_to_string(self.path("host_key.pub")).expect("read host_key.pub");
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A known_hosts file that lists this server's key with its port.
    pub fn known_hosts(&self) -> PathBuf {
        let path = self.path("known_hosts");
        fs::write(
            &path,
            format!("[127.0.0.1]:{} {}\n", self.port, self.host_public_key()),
        )
        .expect("write known_hosts");
        path
    }

    /// The host key's fingerprint as `ssh-keygen -lf` prints it: `SHA256:...`.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.path("host_key.pub"))
    }

    /// A fresh ed25519 public key line that is NOT this server's key.
    pub fn other_public_key(&self) -> String {
        let path = self.path("other_key");
        if !path.exists() {
            keygen(&path);
        }
        let text = fs::read_to_string(self.path("other_key.pub")).expect("read other_key.pub");
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "dropsync-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen (package openssh-client)");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

fn fingerprint_of(pubkey: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(pubkey)
        .output()
        .expect("run ssh-keygen -l");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("no fingerprint in ssh-keygen output: {text}"))
        .to_string()
}

/// All processes below `root`, from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let mut stat = String::new();
            if fs::File::open(e.path().join("stat"))
                .and_then(|mut f| f.read_to_string(&mut stat))
                .is_err()
            {
                continue;
            }
            // "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}
