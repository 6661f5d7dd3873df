//! The application: shared state and the request handler (routing, the request span, metrics,
//! access log, errors as JSON). One copy of the model, however many worker threads.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use opentelemetry::context::FutureExt as _;
use pipeline::ModelFile;
use pipeline::telemetry::Telemetry;

use crate::client_text::bounded;
use crate::config::Config;
use crate::error::ApiError;
use crate::observe::{ModelMetrics, RequestMetrics, Route, Scrape, method_label};
use crate::trace_context::RequestTrace;

/// Response type of every handler.
pub type HttpResponse = Response<Full<Bytes>>;

/// Limits applied to requests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body accepted.
    pub max_body_bytes: u64,
    /// Time to receive a body.
    pub request_timeout: Duration,
    /// Concurrent /predict requests.
    pub max_concurrency: u32,
}

impl From<&Config> for Limits {
    fn from(c: &Config) -> Self {
        Self {
            max_body_bytes: c.max_body_bytes,
            request_timeout: c.request_timeout,
            max_concurrency: c.max_concurrency,
        }
    }
}

/// Shared state of the server.
#[derive(Debug)]
pub struct App {
    pub(crate) model: ModelFile,
    pub(crate) limits: Limits,
    pub(crate) permits: tokio::sync::Semaphore,
    pub(crate) requests: RequestMetrics,
    pub(crate) model_metrics: ModelMetrics,
    pub(crate) spans: Option<pipeline::telemetry::SpanSink>,
    pub(crate) span_values: crate::predict::SpanValues,
    ready: AtomicBool,
    health: Bytes,
    metrics: Option<(
        Scrape,
        pipeline::telemetry::MetricsHandle,
        pipeline::telemetry::LogDrops,
    )>,
}

impl App {
    /// Builds the state around a loaded model; `telemetry` provides `/metrics` (without it,
    /// `/metrics` answers 404, as when telemetry is off).
    pub fn new(model: ModelFile, limits: Limits, telemetry: Option<&Telemetry>) -> Arc<Self> {
        crate::observe::describe();
        metrics::gauge!(crate::observe::CONCURRENCY_LIMIT).set(f64::from(limits.max_concurrency));
        let model_metrics = ModelMetrics::new(&model.metadata);
        let span_values = crate::predict::SpanValues::new(&model);
        let health = Bytes::from(health_json(&model));
        let metrics = telemetry.map(|t| (Scrape::new(t), t.metrics.clone(), t.log_drops()));
        Arc::new(Self {
            permits: tokio::sync::Semaphore::new(limits.max_concurrency as usize),
            requests: RequestMetrics::default(),
            ready: AtomicBool::new(true),
            model,
            limits,
            model_metrics,
            spans: telemetry.and_then(Telemetry::span_sink),
            span_values,
            health,
            metrics,
        })
    }

    /// Readiness turns false: load balancers stop sending traffic while in-flight work finishes.
    pub fn begin_shutdown(&self) {
        self.ready.store(false, Ordering::SeqCst);
    }

    /// Content hash of the loaded model.
    pub fn model_version(&self) -> &str {
        &self.model.metadata.model_version
    }

    /// True from start until shutdown begins.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Handles one request; never fails (errors become JSON responses).
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> HttpResponse {
        let method = method_label(req.method());
        let route = Route::of(req.uri().path());
        let path = match route {
            Route::Unmatched => Cow::Owned(bounded(req.uri().path()).into_owned()),
            _ => Cow::Borrowed(route.template()),
        };
        let mut trace = self
            .spans
            .as_ref()
            .map(|sink| RequestTrace::start(sink, &req, method, route, || path.clone()));
        let context = trace.as_ref().map(RequestTrace::context);
        let active = self.requests.start(route);
        // Pinned in place: wrapping the future itself would copy all of it (hundreds of bytes)
        // into the wrapper on every request.
        let outcome = {
            let mut work = std::pin::pin!(self.dispatch(req, route, trace.as_mut()));
            match context.clone() {
                Some(cx) => work.as_mut().with_context(cx).await,
                None => work.await,
            }
        };
        // The access line below is written in the request's trace context too.
        let _in_trace = context.map(opentelemetry::Context::attach);
        let elapsed = active.elapsed();
        let status = match &outcome {
            Ok(r) => r.status().as_u16(),
            Err(e) => e.status(),
        };
        self.requests.finish(method, route, status, elapsed);
        let (mut response, error) = match outcome {
            Ok(response) => (response, None),
            Err(e) => {
                self.requests.error(route, status, e.reason());
                (error_response(&e), Some(e))
            }
        };
        access_log(method, route, &path, status, elapsed, error.as_ref());
        if let Some(trace) = trace {
            trace.response_headers(response.headers_mut());
            trace.finish(status, error.as_ref());
        }
        response
    }

    async fn dispatch(
        &self,
        req: Request<Incoming>,
        route: Route,
        trace: Option<&mut RequestTrace<'_>>,
    ) -> Result<HttpResponse, ApiError> {
        let get = matches!(*req.method(), Method::GET | Method::HEAD);
        match (route, get, req.method() == Method::POST) {
            (Route::Predict, _, true) => crate::predict::predict(self, req, trace).await,
            (Route::Predict, _, false) => Err(not_allowed(&req, route, "POST")),
            (Route::Unmatched, _, _) => Err(ApiError::NotFound),
            (_, false, _) => Err(not_allowed(&req, route, "GET, HEAD")),
            (Route::Livez, true, _) => Ok(json(
                StatusCode::OK,
                Bytes::from_static(b"{\"status\":\"alive\"}"),
            )),
            (Route::Readyz, true, _) if self.is_ready() => Ok(json(
                StatusCode::OK,
                Bytes::from_static(b"{\"status\":\"ready\"}"),
            )),
            (Route::Readyz, true, _) => Err(ApiError::ShuttingDown),
            (Route::Healthz | Route::Root, true, _) => {
                Ok(json(StatusCode::OK, self.health.clone()))
            }
            (Route::Metrics, true, _) => self.metrics_response(),
        }
    }

    fn metrics_response(&self) -> Result<HttpResponse, ApiError> {
        let Some((scrape, handle, log_drops)) = &self.metrics else {
            return Err(ApiError::NotFound);
        };
        self.requests.publish_active();
        let body = scrape.render(log_drops.total(), handle);
        let mut response = Response::new(Full::new(Bytes::from(body)));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        Ok(response)
    }
}

fn access_log(
    method: &str,
    route: Route,
    path: &str,
    status: u16,
    elapsed: Duration,
    error: Option<&ApiError>,
) {
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    let route = route.template();
    match error {
        // `message` as a plain string field: a trailing message is recorded as `format_args!`,
        // which the log layer can only print through `core::fmt`.
        None => tracing::info!(
            http.request.method = method,
            http.route = route,
            url.path = path,
            http.response.status_code = status,
            duration_ms,
            message = "request served"
        ),
        Some(e) if status >= 500 => tracing::error!(
            http.request.method = method, http.route = route, url.path = path,
            http.response.status_code = status, duration_ms,
            error.type = e.reason().as_str(), error.message = %e, "request failed"
        ),
        Some(e) => tracing::warn!(
            http.request.method = method, http.route = route, url.path = path,
            http.response.status_code = status, duration_ms,
            error.type = e.reason().as_str(), error.message = %e, "request rejected"
        ),
    }
}

fn not_allowed(req: &Request<Incoming>, route: Route, allowed: &'static str) -> ApiError {
    ApiError::MethodNotAllowed {
        method: bounded(req.method().as_str()).into_owned(),
        path: route.template(),
        allowed,
    }
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: Bytes) -> HttpResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(e: &ApiError) -> HttpResponse {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json(status, Bytes::from(e.body()));
    let headers = response.headers_mut();
    match e {
        ApiError::Overloaded(_) | ApiError::ShuttingDown => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        ApiError::MethodNotAllowed { allowed, .. } => {
            headers.insert(header::ALLOW, HeaderValue::from_static(allowed));
        }
        // RFC 9110 §15.5.16: say which codings would do.
        ApiError::UnsupportedEncoding(_) => {
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static(crate::predict::ACCEPTED_ENCODINGS),
            );
        }
        _ => {}
    }
    if e.closes_connection() {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn health_json(model: &ModelFile) -> String {
    let m = &model.metadata;
    serde_json::json!({
        "status": "ok",
        "model": {
            "model_version": m.model_version,
            "categories": m.categories,
            "vocabulary_size": m.vocabulary_size,
            "weighting": m.config.weighting.to_string(),
            "test_accuracy": m.test.accuracy,
            "test_macro_f1": m.test.macro_f1,
            "train_documents": m.train_documents,
            "dataset_sha256": m.dataset_sha256,
            "trained_by": format!("pipeline {}", m.crate_version),
            "created_at": m.created_at,
        },
        "server_version": env!("CARGO_PKG_VERSION"),
    })
    .to_string()
}
