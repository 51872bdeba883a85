//! A local stand-in for a HubSpot-style bulk CRM API (`crm/v3/objects/{object}/batch/*`), the
//! one dropsync's REST sink speaks.
//!
//! It keeps records in memory per object by external id, counts how many times each id was
//! received (processed, not merely requested), checks the bearer token and the 100-input limit,
//! and can be told to misbehave: 429 with `Retry-After`, 500, a late answer, per-record
//! refusals (207), or 503 forever after some batches (an outage).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    token: String,
    records: HashMap<String, HashMap<String, Map<String, Value>>>,
    /// The same properties as the JSON text received (object -> id -> name -> text): a
    /// number's exact digits, which `Value` would have turned into a double.
    raw: HashMap<String, HashMap<String, HashMap<String, String>>>,
    archived: HashMap<String, Vec<String>>,
    received: HashMap<(String, String), usize>,
    seen: Vec<Seen>,
    batches_ok: usize,
    fail_429: usize,
    fail_500: usize,
    slow_once: Option<Duration>,
    reject: HashMap<String, String>,
    down_after: Option<usize>,
}

pub struct FakeCrm {
    pub base_url: String,
    inner: Arc<Mutex<Inner>>,
    stop: Arc<AtomicBool>,
}

impl FakeCrm {
    /// Starts a fake on a free loopback port that accepts `token`.
    pub fn start(token: &str) -> FakeCrm {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local addr");
        let inner = Arc::new(Mutex::new(Inner {
            token: token.to_string(),
            ..Inner::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (state, stopping) = (inner.clone(), stop.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let app = Router::new()
                    .route("/crm/v3/objects/{object}/batch/{action}", post(batch))
                    .with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        while !stopping.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    })
                    .await
                    .expect("fake CRM server");
            });
        });
        FakeCrm {
            base_url: format!("http://{addr}/"),
            inner,
            stop,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("fake CRM state")
    }

    /// Answer the next `n` requests with 429 and `Retry-After: 1`.
    pub fn fail_429(&self, n: usize) {
        self.lock().fail_429 = n;
    }
    /// Answer the next `n` requests with 500.
    pub fn fail_500(&self, n: usize) {
        self.lock().fail_500 = n;
    }
    /// Process the next batch, then hold its answer for `delay`.
    pub fn slow_once(&self, delay: Duration) {
        self.lock().slow_once = Some(delay);
    }
    /// Refuse record `id` with a per-record error (HTTP 207).
    pub fn reject(&self, id: &str, message: &str) {
        self.lock()
            .reject
            .insert(id.to_string(), message.to_string());
    }
    /// After `k` processed batches (counted from the start), answer 503 to everything.
    pub fn down_after(&self, k: usize) {
        self.lock().down_after = Some(k);
    }
    /// End an outage.
    pub fn up(&self) {
        self.lock().down_after = None;
    }

    /// How many times `id` of `object` was received in a processed batch.
    pub fn received(&self, object: &str, id: &str) -> usize {
        let key = (object.to_string(), id.to_string());
        self.lock().received.get(&key).copied().unwrap_or(0)
    }
    /// The stored properties of a record.
    pub fn record(&self, object: &str, id: &str) -> Option<Map<String, Value>> {
        self.lock().records.get(object)?.get(id).cloned()
    }
    /// Property `name` of a stored record exactly as its JSON text arrived (`40850171.87`, or
    /// `"40850171.87"` with the quotes when sent as a string).
    pub fn raw_property(&self, object: &str, id: &str, name: &str) -> Option<String> {
        self.lock().raw.get(object)?.get(id)?.get(name).cloned()
    }
    /// Every stored record's property `name` as received, by id.
    pub fn raw_column(&self, object: &str, name: &str) -> HashMap<String, String> {
        let inner = self.lock();
        let Some(records) = inner.raw.get(object) else {
            return HashMap::new();
        };
        records
            .iter()
            .filter(|(id, _)| {
                inner
                    .records
                    .get(object)
                    .is_some_and(|r| r.contains_key(*id))
            })
            .filter_map(|(id, props)| Some((id.clone(), props.get(name)?.clone())))
            .collect()
    }
    pub fn stored(&self, object: &str) -> usize {
        self.lock().records.get(object).map_or(0, HashMap::len)
    }
    pub fn archived(&self, object: &str) -> Vec<String> {
        self.lock()
            .archived
            .get(object)
            .cloned()
            .unwrap_or_default()
    }
    /// Everything stored, in a stable order (object -> id -> properties), and the archived
    /// IDs per object as sets: what two CRMs are compared on (by `tests/kill_harness.rs`).
    pub fn dump(&self) -> String {
        let inner = self.lock();
        let mut out = Vec::new();
        let mut objects: Vec<&String> = inner.records.keys().collect();
        objects.sort();
        for object in objects {
            let mut ids: Vec<(&String, &Map<String, Value>)> =
                inner.records[object].iter().collect();
            ids.sort_by(|a, b| a.0.cmp(b.0));
            for (id, props) in ids {
                let mut props: Vec<(&String, &Value)> = props.iter().collect();
                props.sort_by(|a, b| a.0.cmp(b.0));
                out.push(format!("{object}/{id}: {props:?}"));
            }
        }
        let mut archived: Vec<String> = inner
            .archived
            .iter()
            .flat_map(|(o, ids)| ids.iter().map(move |id| format!("archived {o}/{id}")))
            .collect();
        archived.sort();
        archived.dedup();
        out.extend(archived);
        out.join("\n")
    }
    /// Every request received, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }
    pub fn batches_ok(&self) -> usize {
        self.lock().batches_ok
    }
}

impl Drop for FakeCrm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

async fn batch(
    State(state): State<Arc<Mutex<Inner>>>,
    Path((object, action)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: String,
) -> Response {
    let at = Instant::now();
    let (status, answer, delay) = {
        let mut inner = state.lock().expect("fake CRM state");
        let (status, answer, delay) = decide(
            &mut inner,
            &object,
            &action,
            query.as_deref(),
            &headers,
            &body,
        );
        inner.seen.push(Seen {
            at,
            path: format!("/crm/v3/objects/{object}/batch/{action}"),
            query,
            status: status.as_u16(),
        });
        (status, answer, delay)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = match answer {
        Some(json) => (status, Json(json)).into_response(),
        None => status.into_response(),
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, "1".parse().expect("header value"));
    }
    response
}

/// A batch request read with every property kept as its JSON text.
#[derive(serde::Deserialize)]
struct RawRequest {
    inputs: Vec<RawInput>,
}

#[derive(serde::Deserialize)]
struct RawInput {
    #[serde(default)]
    properties: HashMap<String, Box<serde_json::value::RawValue>>,
}

fn error_body(message: &str) -> Option<Value> {
    Some(json!({"status": "error", "message": message}))
}

/// The fake's whole behaviour, under its lock: status, JSON body, and how long to hold it.
fn decide(
    inner: &mut Inner,
    object: &str,
    action: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &str,
) -> (StatusCode, Option<Value>, Option<Duration>) {
    let expected = format!("Bearer {}", inner.token);
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(expected.as_str())
    {
        return (
            StatusCode::UNAUTHORIZED,
            error_body("Authentication credentials not found"),
            None,
        );
    }
    if inner.down_after.is_some_and(|k| inner.batches_ok >= k) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            error_body("down for maintenance"),
            None,
        );
    }
    if inner.fail_429 > 0 {
        inner.fail_429 -= 1;
        return (
            StatusCode::TOO_MANY_REQUESTS,
            error_body("You have reached your secondly limit"),
            None,
        );
    }
    if inner.fail_500 > 0 {
        inner.fail_500 -= 1;
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            error_body("internal error"),
            None,
        );
    }
    let Ok(request) = serde_json::from_str::<Value>(body) else {
        return (StatusCode::BAD_REQUEST, error_body("invalid JSON"), None);
    };
    let Some(inputs) = request.get("inputs").and_then(Value::as_array) else {
        return (StatusCode::BAD_REQUEST, error_body("missing inputs"), None);
    };
    if inputs.len() > 100 {
        return (
            StatusCode::BAD_REQUEST,
            error_body("inputs: at most 100 per batch"),
            None,
        );
    }
    // The properties again, as raw JSON text, in input order.
    let raw_inputs: Vec<HashMap<String, String>> = serde_json::from_str::<RawRequest>(body)
        .map(|r| {
            r.inputs
                .into_iter()
                .map(|i| {
                    i.properties
                        .into_iter()
                        .map(|(k, v)| (k, v.get().to_string()))
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    match action {
        "upsert" => {
            for (k, input) in inputs.iter().enumerate() {
                let (Some(id), Some(_), Some(properties)) = (
                    input.get("id").and_then(Value::as_str),
                    input.get("idProperty").and_then(Value::as_str),
                    input.get("properties").and_then(Value::as_object),
                ) else {
                    return (
                        StatusCode::BAD_REQUEST,
                        error_body("each input needs id, idProperty, properties"),
                        None,
                    );
                };
                *inner
                    .received
                    .entry((object.to_string(), id.to_string()))
                    .or_default() += 1;
                if let Some(message) = inner.reject.get(id) {
                    errors.push(json!({"status": "error", "category": "VALIDATION_ERROR",
                        "message": message, "context": {"ids": [id]}}));
                    continue;
                }
                let stored = inner
                    .records
                    .entry(object.to_string())
                    .or_default()
                    .entry(id.to_string())
                    .or_default();
                for (key, value) in properties {
                    stored.insert(key.clone(), value.clone());
                }
                results.push(json!({"id": id, "properties": stored.clone()}));
                if let Some(raw) = raw_inputs.get(k) {
                    let kept = inner
                        .raw
                        .entry(object.to_string())
                        .or_default()
                        .entry(id.to_string())
                        .or_default();
                    kept.extend(raw.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        "archive" => {
            if !query.is_some_and(|q| q.starts_with("idProperty=")) {
                return (
                    StatusCode::BAD_REQUEST,
                    error_body("idProperty query parameter required"),
                    None,
                );
            }
            for input in inputs {
                let Some(id) = input.get("id").and_then(Value::as_str) else {
                    return (
                        StatusCode::BAD_REQUEST,
                        error_body("each input needs id"),
                        None,
                    );
                };
                *inner
                    .received
                    .entry((object.to_string(), id.to_string()))
                    .or_default() += 1;
                if let Some(records) = inner.records.get_mut(object) {
                    records.remove(id);
                }
                inner
                    .archived
                    .entry(object.to_string())
                    .or_default()
                    .push(id.to_string());
            }
            inner.batches_ok += 1;
            return (StatusCode::NO_CONTENT, None, inner.slow_once.take());
        }
        _ => return (StatusCode::NOT_FOUND, error_body("no such endpoint"), None),
    }
    inner.batches_ok += 1;
    let delay = inner.slow_once.take();
    if errors.is_empty() {
        (
            StatusCode::OK,
            Some(json!({"status": "COMPLETE", "results": results})),
            delay,
        )
    } else {
        let answer = json!({"status": "COMPLETE", "results": results, "numErrors": errors.len(), "errors": errors});
        (StatusCode::MULTI_STATUS, Some(answer), delay)
    }
}
