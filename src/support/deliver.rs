//! Handing a finished run's report to a collector over HTTP (a Prometheus Pushgateway, an
//! OpenLineage endpoint): a few attempts with backoff, because a scheduled run has ended by
//! then and this is its only word to the monitoring; never on a 4xx, which no retry changes.
//! Addresses are shown without their `user:password@`, and a failure is the caller's warning,
//! never the run's outcome.

use std::time::Duration;

/// Attempts in all (the first and two retries).
const ATTEMPTS: u32 = 3;

/// One request to send.
pub struct Delivery<'a> {
    pub method: reqwest::Method,
    pub url: &'a str,
    pub content_type: &'a str,
    /// Sent as `Authorization: Bearer …` when set.
    pub bearer: Option<&'a str>,
    pub body: String,
}

/// Why a delivery did not land, with the address as logs may show it.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {message}")]
pub struct DeliveryError {
    pub url: String,
    pub message: String,
}

/// Sends `d`, retried with backoff on connection errors and 5xx answers.
pub fn send(d: Delivery) -> Result<(), DeliveryError> {
    let shown = hide_credentials(d.url);
    let err = |message: String| DeliveryError {
        url: shown.clone(),
        message,
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| err(e.to_string()))?;
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(250 << attempt));
        }
        let mut req = client
            .request(d.method.clone(), d.url)
            .header(reqwest::header::CONTENT_TYPE, d.content_type)
            .body(d.body.clone());
        if let Some(token) = d.bearer {
            req = req.bearer_auth(token);
        }
        match req.send() {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) if resp.status().is_client_error() => {
                return Err(err(format!("answered {}", resp.status())));
            }
            Ok(resp) => last = format!("answered {}", resp.status()),
            Err(e) => last = e.without_url().to_string(),
        }
    }
    Err(err(last))
}

/// A URL as logs may show it: `user:password@` taken out.
pub fn hide_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}
