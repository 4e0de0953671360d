//! HTTP endpoints: /metrics, /healthz, /readyz, and the `[http]` section of the config that places them.
//!
//! `/healthz` answers whether the process is alive (a restart would help), `/readyz` whether this
//! replica should be counted as serving (a restart would not help: wait). `/metrics` stays up through
//! a drain, so the caller stops the server only once the final numbers have been scraped.

use std::future::Future;
use std::net::{AddrParseError, SocketAddr};
use std::sync::Arc;

use crate::config::ConfigIssue;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

/// Content type of the Prometheus text exposition format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `[http]`: `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address, an IP literal and port (no host names: nothing is resolved at bind).
    /// Default `"127.0.0.1:9898"`: loopback, because metrics reveal topic names and volumes;
    /// expose deliberately with `0.0.0.0:9898` when Prometheus scrapes from elsewhere.
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:9898".to_owned() }
    }
}

impl HttpConfig {
    /// Adds every problem of this section to `issues`.
    pub(crate) fn check(&self, issues: &mut Vec<ConfigIssue>) {
        if self.listen_addr().is_err() {
            issues.push(ConfigIssue::new(
                "http.listen",
                &self.listen,
                "not a socket address like 127.0.0.1:9898 (an IP literal and a port)",
            ));
        }
    }

    /// `listen` parsed; cannot fail on a validated config.
    pub fn listen_addr(&self) -> Result<SocketAddr, AddrParseError> {
        self.listen.parse()
    }
}

#[derive(Clone)]
struct ServerState {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

/// Serves the endpoints on `listener` until `shutdown` completes, then finishes in-flight requests
/// and returns.
///
/// The shutdown future is a parameter so the caller (and tests) choose the moment: the app fires it
/// at the very end of a drain, after the last metrics update.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz_handler))
        .route("/readyz", get(readyz_handler))
        .with_state(ServerState { metrics, readiness });
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

async fn metrics_handler(State(state): State<ServerState>) -> Response {
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], state.metrics.encode_text()).into_response()
}

/// Alive unless a stage has failed: then a restart is what helps, and the body says which stage
/// and why (the same words as the log line).
async fn healthz_handler(State(state): State<ServerState>) -> Response {
    match state.readiness.stage_failure() {
        None => "ok\n".into_response(),
        Some(failure) => (StatusCode::SERVICE_UNAVAILABLE, format!("{failure}\n")).into_response(),
    }
}

async fn readyz_handler(State(state): State<ServerState>) -> Response {
    let status = state.readiness.status();
    let code = if status.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(status)).into_response()
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    use super::*;
    use crate::readiness::PartitionState;
    use crate::supervise::StageFailure;

    struct TestServer {
        address: SocketAddr,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        stop: oneshot::Sender<()>,
        task: JoinHandle<std::io::Result<()>>,
    }

    async fn start_server() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new().unwrap());
        let readiness = Arc::new(Readiness::new(metrics.clone()));
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            // A dropped sender stops the server too, so a failing test does not leave it running.
            let _ = stopped.await;
        };
        let task = tokio::spawn(serve(listener, metrics.clone(), readiness.clone(), shutdown));
        TestServer { address, metrics, readiness, stop, task }
    }

    struct RawResponse {
        status_line: String,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl RawResponse {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
        }
    }

    /// A minimal HTTP/1.1 client: `Connection: close` makes the body run to EOF, so no chunked or
    /// length parsing is needed.
    async fn get_path(address: SocketAddr, path: &str) -> RawResponse {
        let mut stream = TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = String::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut raw)).await.unwrap().unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("response has a header/body separator");
        let mut head_lines = head.split("\r\n");
        let status_line = head_lines.next().unwrap().to_owned();
        let headers = head_lines
            .map(|line| {
                let (name, value) = line.split_once(':').expect("header line has a colon");
                (name.trim().to_owned(), value.trim().to_owned())
            })
            .collect();
        RawResponse { status_line, headers, body: body.to_owned() }
    }

    async fn stop_server(server: TestServer) {
        server.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server.task)
            .await
            .expect("serve returns after shutdown fires")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn metrics_endpoint_serves_the_text_format() {
        let server = start_server().await;
        server.metrics.ingest.commits.inc();
        let response = get_path(server.address, "/metrics").await;
        assert_eq!(response.status_line, "HTTP/1.1 200 OK");
        assert_eq!(response.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
        assert!(response.body.contains("# TYPE sentmon_build_info gauge"), "{}", response.body);
        assert!(response.body.contains("sentmon_offset_commits_total 1\n"), "{}", response.body);
        stop_server(server).await;
    }

    #[tokio::test]
    async fn healthz_answers_ok_even_when_not_ready() {
        let server = start_server().await;
        let response = get_path(server.address, "/healthz").await;
        assert_eq!(response.status_line, "HTTP/1.1 200 OK");
        assert_eq!(response.body, "ok\n");
        stop_server(server).await;
    }

    #[tokio::test]
    async fn a_failed_stage_fails_healthz_with_its_name_and_readyz_with_stage_failed() {
        let server = start_server().await;
        server.readiness.set_model_loaded(true);
        server.readiness.set_broker_reachable(true);
        let failure = StageFailure { stage: crate::supervise::Stage::Emit, cause: "panicked: boom".to_owned() };
        server.readiness.set_stage_failed(&failure);
        let health = get_path(server.address, "/healthz").await;
        assert_eq!(health.status_line, "HTTP/1.1 503 Service Unavailable");
        assert_eq!(health.body, "stage emit failed: panicked: boom\n");
        let ready = get_path(server.address, "/readyz").await;
        let body: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
        assert_eq!(body["failing"], serde_json::json!(["stage_failed"]));
        assert_eq!(server.metrics.process.ready.get(), 0);
        stop_server(server).await;
    }

    #[tokio::test]
    async fn readyz_follows_the_flags_and_names_failing_checks() {
        let server = start_server().await;

        let initial = get_path(server.address, "/readyz").await;
        assert_eq!(initial.status_line, "HTTP/1.1 503 Service Unavailable");
        assert_eq!(initial.header("content-type"), Some("application/json"));
        let body: serde_json::Value = serde_json::from_str(&initial.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "ready": false,
                "failing": ["model_not_loaded", "broker_unreachable"],
                "partitions": "waiting",
            })
        );
        assert_eq!(server.metrics.process.ready.get(), 0);

        server.readiness.set_model_loaded(true);
        let model_only = get_path(server.address, "/readyz").await;
        assert_eq!(model_only.status_line, "HTTP/1.1 503 Service Unavailable");
        let body: serde_json::Value = serde_json::from_str(&model_only.body).unwrap();
        assert_eq!(body["failing"], serde_json::json!(["broker_unreachable"]));

        // Ready without partitions: a spare replica is not a broken one.
        server.readiness.set_broker_reachable(true);
        let ready = get_path(server.address, "/readyz").await;
        assert_eq!(ready.status_line, "HTTP/1.1 200 OK");
        let body: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
        assert_eq!(body, serde_json::json!({ "ready": true, "failing": [], "partitions": "waiting" }));
        assert_eq!(server.metrics.process.ready.get(), 1);

        server.readiness.set_partitions(PartitionState::Assigned);
        let assigned = get_path(server.address, "/readyz").await;
        assert_eq!(assigned.status_line, "HTTP/1.1 200 OK");
        let body: serde_json::Value = serde_json::from_str(&assigned.body).unwrap();
        assert_eq!(body["partitions"], "assigned");

        server.readiness.set_alert_publish_failing(true);
        let alert_failing = get_path(server.address, "/readyz").await;
        assert_eq!(alert_failing.status_line, "HTTP/1.1 503 Service Unavailable");
        let body: serde_json::Value = serde_json::from_str(&alert_failing.body).unwrap();
        assert_eq!(body["failing"], serde_json::json!(["alert_publish_failing"]));
        server.readiness.set_alert_publish_failing(false);
        assert_eq!(get_path(server.address, "/readyz").await.status_line, "HTTP/1.1 200 OK");

        server.readiness.set_draining();
        let draining = get_path(server.address, "/readyz").await;
        assert_eq!(draining.status_line, "HTTP/1.1 503 Service Unavailable");
        let body: serde_json::Value = serde_json::from_str(&draining.body).unwrap();
        assert_eq!(body["failing"], serde_json::json!(["draining"]));
        assert_eq!(server.metrics.process.ready.get(), 0);

        // Metrics stay available through the drain so the final numbers can be scraped.
        let metrics = get_path(server.address, "/metrics").await;
        assert_eq!(metrics.status_line, "HTTP/1.1 200 OK");
        assert!(metrics.body.contains("sentmon_ready 0\n"), "{}", metrics.body);

        stop_server(server).await;
    }

    #[tokio::test]
    async fn unknown_paths_are_not_found() {
        let server = start_server().await;
        let response = get_path(server.address, "/nope").await;
        assert_eq!(response.status_line, "HTTP/1.1 404 Not Found");
        stop_server(server).await;
    }

    #[tokio::test]
    async fn serve_returns_after_shutdown_and_stops_accepting() {
        let server = start_server().await;
        let address = server.address;
        assert_eq!(get_path(address, "/healthz").await.status_line, "HTTP/1.1 200 OK");
        stop_server(server).await;
        assert!(TcpStream::connect(address).await.is_err(), "listener is closed after serve returns");
    }
}
