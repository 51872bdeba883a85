//! An S3 server for tests: moto's (PyPI `moto[s3]`, `python3 -m moto.server`), a local
//! implementation of the S3 REST API, on a free port of 127.0.0.1 with one bucket. No AWS
//! endpoint is reachable offline; `.ci/run` installs moto. Objects are read back over plain
//! HTTP (moto does not check request signatures), so what a test sees is what the server
//! stored, not what a client library says it sent.

use crate::free_port;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// moto answers an anonymous GetObject with 403 (a private object), and does not check
/// signatures: any credential in SigV4's form makes the request the account's.
const AUTHORIZATION: &str = "Authorization: AWS4-HMAC-SHA256 \
    Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";

pub struct S3 {
    child: Child,
    pub port: u16,
    pub bucket: String,
}

impl S3 {
    /// Starts the server and creates `bucket`; panics with moto's output when it cannot.
    /// A server that exits at once (its port taken meanwhile) is started again on another.
    pub fn start(bucket: &str) -> S3 {
        let log = tempfile::NamedTempFile::new().expect("a log file for moto");
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new("python3")
                .args([
                    "-m",
                    "moto.server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(log.reopen().expect("moto's log"))
                .spawn()
                .expect("start python3 -m moto.server (pip install \"moto[s3]\" flask flask-cors)");
            let mut s3 = S3 {
                child,
                port,
                bucket: bucket.to_string(),
            };
            // Importing moto takes seconds, more on a loaded machine.
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut up = false;
            while Instant::now() < deadline {
                if let Some((200, _)) = s3.request("GET", "/") {
                    up = true;
                    break;
                }
                if s3.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !up {
                s3.stop();
                continue;
            }
            let (status, body) = s3
                .request("PUT", &format!("/{bucket}"))
                .expect("create the bucket");
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            return s3;
        }
        panic!(
            "moto's S3 server did not start (is `moto[s3]` installed?): {}",
            std::fs::read_to_string(log.path()).unwrap_or_default()
        );
    }

    /// The endpoint URL a client is given (`AWS_ENDPOINT_URL`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment an S3 client needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// The object's bytes, if it exists.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self.request("GET", &format!("/{}/{key}", self.bucket))? {
            (200, body) => Some(body),
            _ => None,
        }
    }

    /// Every key in the bucket under `prefix`, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let (status, body) = self
            .request(
                "GET",
                &format!("/{}?list-type=2&max-keys=1000&prefix={prefix}", self.bucket),
            )
            .expect("list the bucket");
        assert_eq!(status, 200);
        let text = String::from_utf8_lossy(&body);
        let mut keys: Vec<String> = text
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next().map(str::to_string))
            .collect();
        keys.sort();
        keys
    }

    /// Stops the server (a store that is down).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// One HTTP/1.1 request with an empty body; (status, body), or `None` when the server
    /// cannot be reached.
    fn request(&self, method: &str, path: &str) -> Option<(u16, Vec<u8>)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{AUTHORIZATION}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).ok()?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let body = raw[split + 4..].to_vec();
        let chunked = head.lines().any(|l| {
            l.to_ascii_lowercase()
                .starts_with("transfer-encoding: chunked")
        });
        Some((status, if chunked { dechunk(&body) } else { body }))
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.stop();
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&body[..eol])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
    out
}
