//! `POST /predict`: read the document, run the four steps (each a child span and a timed step),
//! answer with the category.

use std::borrow::Cow;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use pipeline::preprocess::tokenize::decode_text;
use pipeline::{ModelFile, Prediction};
use serde::{Deserialize, Serialize};

use crate::app::{App, HttpResponse, json};
use crate::client_text::bounded;
use crate::error::ApiError;
use crate::observe::{Route, Step};
use crate::trace_context::{RequestTrace, StepFacts};

/// Span attribute values that are the same for many requests, made once per loaded model.
///
/// Leaked, so that spans hold them as `&'static str`: a few bytes per model (a server loads one),
/// where a shared `Arc<str>` had its count raised by a worker and lowered by the export thread
/// for every request, a cache line passed between cores each time.
#[derive(Debug)]
pub(crate) struct SpanValues {
    labels: Vec<&'static str>,
    weighting: &'static str,
}

impl SpanValues {
    pub(crate) fn new(model: &ModelFile) -> Self {
        let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
        Self {
            labels: model.model.categories().iter().map(|c| leak(c)).collect(),
            weighting: leak(&model.model.weighting().to_string()),
        }
    }
}

#[derive(Deserialize)]
struct PredictRequest {
    text: String,
}

/// Handles one prediction request.
pub(crate) async fn predict(
    app: &App,
    req: Request<Incoming>,
    trace: Option<&mut RequestTrace<'_>>,
) -> Result<HttpResponse, ApiError> {
    // Taken before the body is read: bounds the memory of bodies in flight, not just CPU.
    let _permit = app
        .permits
        .try_acquire()
        .map_err(|_| ApiError::Overloaded(app.limits.max_concurrency))?;
    let is_json = is_json(&req);
    let coding = content_coding(&req);
    let body = read_body(app, req).await?;
    app.requests.body_read(Route::Predict, body.len());
    // Checked once the body is read, so the connection stays clean for the next request.
    let body = decode_body(body, coding?, app.limits.max_body_bytes)?;
    let text = document(&body, is_json)?;
    let model = &app.model.model;
    let metrics = &app.model_metrics;

    let mut clock = StepClock::start();
    let tokens = model.tokenize(&text);
    clock.lap(Step::Tokenize, metrics);
    let counts = model.count(&tokens);
    clock.lap(Step::Vectorize, metrics);
    let features = model.weigh(&counts);
    clock.lap(Step::Weigh, metrics);
    let prediction = model.predict(&features);
    clock.lap(Step::Predict, metrics);

    metrics.prediction(
        prediction.label,
        prediction.confidence(),
        text.len(),
        counts.tokens,
        counts.out_of_vocabulary_ratio(),
    );
    if let Some(trace) = trace.filter(|t| t.records()) {
        let values = &app.span_values;
        let facts = StepFacts {
            bytes: text.len(),
            tokens: tokens.len(),
            terms: counts.indices.len(),
            oov_tokens: counts.out_of_vocabulary,
            oov_ratio: counts.out_of_vocabulary_ratio(),
            weighting: values.weighting,
            features: features.indices.len(),
            label: values.labels.get(prediction.label).copied().unwrap_or(""),
            confidence: prediction.confidence(),
        };
        trace.add_steps(clock.wall, clock.laps, &facts);
    }
    Ok(json(
        StatusCode::OK,
        Bytes::from(response_body(app, &prediction)),
    ))
}

fn is_json(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || m.ends_with("+json")
        })
}

/// The request content codings accepted (RFC 9110 §8.4.1), for `Accept-Encoding` on a 415.
pub(crate) const ACCEPTED_ENCODINGS: &str = "gzip, deflate";

/// How the body is encoded (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Identity,
    Gzip,
    /// RFC 9110's "deflate": zlib format.
    Deflate,
}

/// Unknown codings are refused: classifying compressed bytes as text would answer 200 with a
/// confident guess about noise.
fn content_coding(req: &Request<Incoming>) -> Result<Coding, ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_ENCODING) else {
        return Ok(Coding::Identity);
    };
    let name = String::from_utf8_lossy(value.as_bytes())
        .trim()
        .to_ascii_lowercase();
    match name.as_str() {
        "" | "identity" => Ok(Coding::Identity),
        "gzip" | "x-gzip" => Ok(Coding::Gzip),
        "deflate" => Ok(Coding::Deflate),
        _ => Err(ApiError::UnsupportedEncoding(bounded(&name).into_owned())),
    }
}

/// The decompressed body, held to the same limit as an uncompressed one (a small body must not
/// inflate into gigabytes).
fn decode_body(body: Bytes, coding: Coding, limit: u64) -> Result<Bytes, ApiError> {
    use std::io::Read as _;
    let (name, reader): (&'static str, Box<dyn std::io::Read + '_>) = match coding {
        Coding::Identity => return Ok(body),
        Coding::Gzip => (
            "gzip",
            Box::new(flate2::read::MultiGzDecoder::new(&body[..])),
        ),
        Coding::Deflate => (
            "deflate",
            Box::new(flate2::read::ZlibDecoder::new(&body[..])),
        ),
    };
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit as usize));
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadEncoding {
            coding: name,
            reason: e.to_string(),
        })?;
    if out.len() as u64 > limit {
        return Err(ApiError::TooLarge {
            limit,
            drained: true,
        });
    }
    Ok(Bytes::from(out))
}

/// How long an oversized body may take to be discarded before the connection is closed instead.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Reads the body up to the limit. An oversized body is answered with 413 at once when it is
/// announced as more than twice the limit; a smaller excess is read and discarded first (like
/// nginx's lingering close), because closing a socket with unread data resets it and the client
/// would lose the 413 to a "connection reset" instead of reading it.
async fn read_body(app: &App, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let limit = app.limits.max_body_bytes;
    let drain_cap = limit.saturating_mul(2);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = req.into_body();
    if let Some(n) = declared.filter(|&n| n > limit) {
        let drained = n <= drain_cap && drain(&mut body, n, DRAIN_TIME).await;
        return Err(ApiError::TooLarge { limit, drained });
    }
    let read = async {
        let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(limit) as usize);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiError::BodyRead(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if (buf.len() + data.len()) as u64 > limit {
                let seen = (buf.len() + data.len()) as u64;
                let drained = drain(&mut body, drain_cap.saturating_sub(seen), DRAIN_TIME).await;
                return Err(ApiError::TooLarge { limit, drained });
            }
            buf.extend_from_slice(&data);
        }
        Ok(Bytes::from(buf))
    };
    tokio::time::timeout(app.limits.request_timeout, read)
        .await
        .map_err(|_| ApiError::Timeout(app.limits.request_timeout))?
}

/// Discards the rest of a body; true when it ended within `max_bytes` and `within`, so the
/// connection is clean and can stay open.
async fn drain(body: &mut Incoming, max_bytes: u64, within: Duration) -> bool {
    let discard = async {
        let mut seen = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > max_bytes {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(within, discard).await.unwrap_or(false)
}

/// The document: the `text` of a JSON body, or the whole body as text (what `curl --data` sends,
/// whatever its content type). Invalid UTF-8 is read as Latin-1, like the training data.
fn document(body: &[u8], is_json: bool) -> Result<Cow<'_, str>, ApiError> {
    let text = if is_json {
        let parsed: PredictRequest =
            serde_json::from_slice(body).map_err(|e| ApiError::BadJson(e.to_string()))?;
        Cow::Owned(parsed.text)
    } else {
        decode_text(body)
    };
    if text.trim().is_empty() {
        return Err(ApiError::EmptyBody);
    }
    Ok(text)
}

/// Times the steps for the histograms; when the request is traced, the same timestamps become
/// one child span per step (built after the work: no bookkeeping around steps that take
/// microseconds).
struct StepClock {
    wall: SystemTime,
    origin: Instant,
    laps: [(Duration, Duration); 4],
    last: Duration,
}

impl StepClock {
    fn start() -> Self {
        Self {
            wall: SystemTime::now(),
            origin: Instant::now(),
            laps: [(Duration::ZERO, Duration::ZERO); 4],
            last: Duration::ZERO,
        }
    }

    fn lap(&mut self, step: Step, metrics: &crate::observe::ModelMetrics) {
        let now = self.origin.elapsed();
        self.laps[step as usize] = (self.last, now);
        metrics.step(step, now.saturating_sub(self.last));
        self.last = now;
    }
}

/// The response, serialized straight from borrowed fields (no intermediate JSON tree).
#[derive(Serialize)]
struct PredictResponse<'a> {
    result: Option<&'a String>,
    confidence: f64,
    probabilities: Probabilities<'a>,
    model_version: &'a str,
}

/// `{"<category>": p, ...}` in the model's category order.
struct Probabilities<'a>(&'a [String], &'a [f64]);

impl Serialize for Probabilities<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().zip(self.1))
    }
}

fn response_body(app: &App, prediction: &Prediction) -> Vec<u8> {
    let categories = app.model.model.categories();
    let response = PredictResponse {
        result: categories.get(prediction.label),
        confidence: prediction.confidence(),
        probabilities: Probabilities(categories, &prediction.probabilities),
        model_version: &app.model.metadata.model_version,
    };
    // Serializing these types cannot fail (string keys, finite or null floats).
    serde_json::to_vec(&response).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_plain_text_and_latin1_are_documents() {
        assert_eq!(
            document(br#"{"text": "puck"}"#, true).ok().as_deref(),
            Some("puck")
        );
        assert_eq!(
            document(b"{\"text\": \"puck\"}", false).ok().as_deref(),
            Some("{\"text\": \"puck\"}")
        );
        assert_eq!(document(b"caf\xe9", false).ok().as_deref(), Some("café"));
    }

    #[test]
    fn compressed_bodies_decode_within_the_limit() {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&[b'x'; 100]).expect("gzip");
        let gz = Bytes::from(e.finish().expect("gzip"));
        let decoded = decode_body(gz.clone(), Coding::Gzip, 100).expect("within the limit");
        assert_eq!(&decoded[..], &[b'x'; 100][..]);
        assert!(matches!(
            decode_body(gz.clone(), Coding::Gzip, 99),
            Err(ApiError::TooLarge { limit: 99, .. })
        ));
        assert!(matches!(
            decode_body(gz.clone(), Coding::Deflate, 1000),
            Err(ApiError::BadEncoding {
                coding: "deflate",
                ..
            })
        ));
        let cut = gz.slice(..gz.len() - 4);
        assert!(matches!(
            decode_body(cut, Coding::Gzip, 1000),
            Err(ApiError::BadEncoding { coding: "gzip", .. })
        ));
        assert_eq!(
            decode_body(gz.clone(), Coding::Identity, 1).expect("as is"),
            gz
        );
    }

    #[test]
    fn empty_and_malformed_bodies_are_rejected() {
        assert!(matches!(document(b"", false), Err(ApiError::EmptyBody)));
        assert!(matches!(document(b"  \n", false), Err(ApiError::EmptyBody)));
        assert!(matches!(
            document(br#"{"text": ""}"#, true),
            Err(ApiError::EmptyBody)
        ));
        assert!(matches!(
            document(b"{not json", true),
            Err(ApiError::BadJson(_))
        ));
        assert!(matches!(
            document(br#"{"txt": "x"}"#, true),
            Err(ApiError::BadJson(_))
        ));
    }
}
