//! The OTLP/gRPC span exporter: the request body that [`super::otlp`] encodes for OTLP/HTTP, sent
//! as one unary `TraceService/Export` call over a tonic channel.
//!
//! The SDK's tonic exporter takes only `SpanData`: each request's spans were kept whole until the
//! export thread converted them, then went through the proto types and prost, which cost about
//! 6 µs more server CPU per request than OTLP/HTTP (`bench/serve_threads.py --modes grpc`, see
//! docs/benchmarks.md); and it only logs a partial success, where nobody sees it. Kept from its
//! behaviour: `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` sent as metadata, `..._TIMEOUT` for each call
//! and for the retries together, `..._COMPRESSION`, TLS for an `https` endpoint, and the OTLP
//! retry rules with the SDK's recommended policy, a collector's `RetryInfo` delay included.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Buf as _, BufMut as _, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prost::Message as _;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::export::{Queued, QueuedExporter, from_span_data};
use super::otlp;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// The SDK's recommended retry policy (`RetryPolicy::recommended`).
const MAX_RETRIES: u32 = 3;
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_millis(1600);
const MAX_JITTER_MS: u64 = 100;
/// The longest `RetryInfo` delay waited for, as the SDK's exporters cap it (the export timeout,
/// 10 s by default, is the tighter bound unless it was raised).
const MAX_THROTTLE: Duration = Duration::from_secs(30);

/// OTLP/gRPC span exporter (see the module documentation).
#[derive(Debug)]
pub struct GrpcExporter {
    channel: Channel,
    /// Where the calls go, for the warnings.
    target: String,
    metadata: MetadataMap,
    gzip: bool,
    timeout: Duration,
    /// The encoded `Resource` message and the resource's schema URL.
    resource: (Vec<u8>, String),
    encoder: otlp::SharedEncoder,
    rejected: Mutex<Option<(u64, String)>>,
}

impl GrpcExporter {
    /// The exporter of `endpoint` (`http://` or `https://`, as resolved at start-up), with the
    /// headers, timeout and TLS files of the `OTEL_EXPORTER_OTLP_*` variables. The channel
    /// connects on the first export.
    pub fn from_env(endpoint: &str, gzip: bool) -> Result<Self, String> {
        let timeout = otlp::timeout_from_env();
        let mut channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| format!("invalid OTLP/gRPC endpoint {endpoint:?}: {e}"))?
            .timeout(timeout);
        if endpoint
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        {
            // Without a TLS config the channel trusts no root at all.
            let tls = super::tls::ExportTls::from_env()?;
            channel = channel
                .tls_config(tls.tonic_config())
                .map_err(|e| format!("cannot set up TLS for {endpoint}: {e}"))?;
        }
        let mut exporter = Self {
            channel: channel.connect_lazy(),
            target: format!("{}{EXPORT_PATH}", endpoint.trim_end_matches('/')),
            metadata: metadata(super::otel_env::headers_from_env()),
            gzip,
            timeout,
            resource: (Vec::new(), String::new()),
            encoder: otlp::SharedEncoder::default(),
            rejected: Mutex::new(None),
        };
        exporter.set_resource(&Resource::builder_empty().build());
        Ok(exporter)
    }

    async fn send(&self, batch: &[Queued]) -> OTelSdkResult {
        let body = self.encoder.request_of(batch, &self.resource)?;
        let response = self
            .call_with_retries(body)
            .await
            .map_err(|status| OTelSdkError::InternalFailure(self.describe(&status)))?;
        if let Ok(mut slot) = self.rejected.lock() {
            *slot = otlp::rejected_spans(response);
        }
        Ok(())
    }

    /// Retries what the OTLP specification says may succeed later, backing off, all within the
    /// export timeout. A collector's `RetryInfo` delay is waited for (it lengthens the backoff,
    /// never shortens it); a delay that does not fit in what is left of the timeout ends the
    /// export at once, rather than holding the export thread past it.
    async fn call_with_retries(&self, body: Bytes) -> Result<ExportTraceServiceResponse, Status> {
        let start = Instant::now();
        let mut delay = FIRST_DELAY;
        let mut cap = MAX_DELAY;
        let mut attempt = 0;
        loop {
            let status = match self.call(body.clone()).await {
                Ok(response) => return Ok(response),
                Err(status) => status,
            };
            let asked = match retry(&status) {
                Retry::Never => return Err(status),
                Retry::Backoff => None,
                Retry::After(asked) => Some(asked.min(MAX_THROTTLE)),
            };
            if let Some(asked) = asked {
                delay = delay.max(asked);
                cap = cap.max(asked);
            }
            let pause = (delay + jitter()).min(cap);
            if attempt == MAX_RETRIES || start.elapsed() + pause >= self.timeout {
                return Err(status);
            }
            attempt += 1;
            tokio::time::sleep(pause).await;
            delay = (delay * 2).min(cap);
        }
    }

    async fn call(&self, body: Bytes) -> Result<ExportTraceServiceResponse, Status> {
        let mut client = tonic::client::Grpc::new(self.channel.clone());
        if self.gzip {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        client
            .ready()
            .await
            .map_err(|e| Status::from_error(e.into()))?;
        let mut request =
            tonic::Request::from_parts(self.metadata.clone(), tonic::Extensions::default(), body);
        request.set_timeout(self.timeout);
        client
            .unary(
                request,
                http::uri::PathAndQuery::from_static(EXPORT_PATH),
                RequestCodec,
            )
            .await
            .map(tonic::Response::into_inner)
    }

    /// A failed call for the warning: where it went, the code, the transport's own error chain
    /// when the call never got an answer, and what to check. The collector's message is left
    /// out, as the SDK does: it may echo a credential.
    fn describe(&self, status: &Status) -> String {
        let cause = std::error::Error::source(status)
            .map(|e| format!(": {}", otlp::error_chain(e)))
            .unwrap_or_default();
        let hint = match status.code() {
            Code::Unauthenticated | Code::PermissionDenied => {
                "; check the credentials in OTEL_EXPORTER_OTLP_HEADERS"
            }
            Code::Unimplemented => {
                "; the endpoint does not serve the OTLP trace service (is it the OTLP/HTTP port, 4318?)"
            }
            Code::ResourceExhausted => {
                "; the collector is overloaded or takes smaller requests: lower OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
            }
            Code::DeadlineExceeded => "; no answer within OTEL_EXPORTER_OTLP_TIMEOUT",
            _ => "",
        };
        let asked = retry_delay(status)
            .filter(|d| !d.is_zero())
            .map(|d| {
                format!(
                    "; the collector asked for a retry after {:.1} s (OTEL_EXPORTER_OTLP_TIMEOUT \
                     bounds the wait, {:.1} s)",
                    d.as_secs_f64(),
                    self.timeout.as_secs_f64()
                )
            })
            .unwrap_or_default();
        format!(
            "gRPC call {} failed with {:?}{cause}{hint}{asked}",
            self.target,
            status.code()
        )
    }
}

/// Whether a failed call is tried again, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Never,
    /// On the exponential schedule.
    Backoff,
    /// Not before the delay the collector's `RetryInfo` asks for.
    After(Duration),
}

/// The OTLP specification's rules: the transient codes are retried, on the collector's
/// `RetryInfo` delay when it gives one; `RESOURCE_EXHAUSTED` only with a `RetryInfo` (the
/// collector saying it will recover); everything else never.
fn retry(status: &Status) -> Retry {
    let asked = retry_delay(status);
    match status.code() {
        Code::ResourceExhausted => asked.map_or(Retry::Never, Retry::After),
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => asked.map_or(Retry::Backoff, Retry::After),
        _ => Retry::Never,
    }
}

/// The delay of a `google.rpc.RetryInfo` in the status details (`grpc-status-details-bin`), if
/// any; a RetryInfo without a delay, or a zero one, is the next delay of the backoff.
fn retry_delay(status: &Status) -> Option<Duration> {
    use tonic_types::StatusExt as _;
    let info = status.get_details_retry_info()?;
    Some(info.retry_delay.unwrap_or_default())
}

/// Up to [`MAX_JITTER_MS`], so that many servers that lost their collector together do not
/// retry together. The standard library's per-process random hash keys are random enough.
fn jitter() -> Duration {
    use std::hash::{BuildHasher as _, Hasher as _};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    Duration::from_millis(random % (MAX_JITTER_MS + 1))
}

/// The export headers as gRPC metadata; an entry that is not valid metadata is left out (the
/// start-up refused those already, see `otel_env::check_headers_from_env`).
fn metadata(headers: Vec<(String, String)>) -> MetadataMap {
    let map: http::HeaderMap = headers
        .into_iter()
        .filter_map(|(key, value)| {
            Some((
                http::HeaderName::from_bytes(key.as_bytes()).ok()?,
                http::HeaderValue::from_str(&value).ok()?,
            ))
        })
        .collect();
    MetadataMap::from_headers(map)
}

impl QueuedExporter for GrpcExporter {
    fn takes_encoded(&self) -> bool {
        true
    }

    fn take_rejected(&self) -> Option<(u64, String)> {
        self.rejected.lock().ok()?.take()
    }

    async fn export_queued(&self, batch: Vec<Queued>) -> OTelSdkResult {
        self.send(&batch).await
    }
}

impl SpanExporter for GrpcExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.send(&from_span_data(batch)).await
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = otlp::encode_resource(resource);
    }
}

/// Sends a request already encoded, reads the `ExportTraceServiceResponse` answer.
struct RequestCodec;

impl Codec for RequestCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RequestCodec;
    type Decoder = RequestCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RequestCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestCodec
    }
}

impl Encoder for RequestCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RequestCodec {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        let response = ExportTraceServiceResponse::decode(src.copy_to_bytes(src.remaining()))
            .map_err(|e| Status::internal(format!("the collector's answer is not OTLP: {e}")))?;
        Ok(Some(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_retry_info(code: Code, delay: Option<Duration>) -> Status {
        use tonic_types::{ErrorDetails, StatusExt as _};
        Status::with_error_details(code, "slow down", ErrorDetails::with_retry_info(delay))
    }

    #[test]
    fn only_the_codes_the_otlp_specification_calls_transient_are_retried() {
        for code in [Code::Unavailable, Code::DeadlineExceeded, Code::Aborted] {
            assert_eq!(retry(&Status::new(code, "")), Retry::Backoff, "{code:?}");
        }
        for code in [
            Code::Unauthenticated,
            Code::InvalidArgument,
            Code::Unimplemented,
            Code::ResourceExhausted,
            Code::Internal,
        ] {
            assert_eq!(retry(&Status::new(code, "")), Retry::Never, "{code:?}");
        }
    }

    #[test]
    fn a_retry_info_delay_is_waited_for_and_makes_resource_exhausted_transient() {
        let two = Some(Duration::from_secs(2));
        for code in [Code::ResourceExhausted, Code::Unavailable] {
            assert_eq!(
                retry(&with_retry_info(code, two)),
                Retry::After(Duration::from_secs(2)),
                "{code:?}"
            );
            assert_eq!(
                retry(&with_retry_info(code, None)),
                Retry::After(Duration::ZERO),
                "{code:?}: a RetryInfo without a delay still says the call may succeed later"
            );
        }
        assert_eq!(
            retry(&with_retry_info(Code::InvalidArgument, two)),
            Retry::Never,
            "a RetryInfo does not make a permanent error transient"
        );
    }

    #[test]
    fn headers_become_metadata_and_binary_keys_stay_apart() {
        let map = metadata(vec![
            ("x-tenant".into(), "acme".into()),
            ("Authorization".into(), "Bearer t0ken".into()),
        ]);
        assert_eq!(
            map.get("x-tenant").and_then(|v| v.to_str().ok()),
            Some("acme")
        );
        assert_eq!(
            map.get("authorization").and_then(|v| v.to_str().ok()),
            Some("Bearer t0ken")
        );
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        for _ in 0..100 {
            assert!(jitter() <= Duration::from_millis(MAX_JITTER_MS));
        }
    }
}
