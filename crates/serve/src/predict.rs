//! `POST /predict`: read the document, run the four steps (each a child span and a timed step),
//! answer with the category.

use std::borrow::Cow;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use pipeline::preprocess::tfidf::SparseVector;
use pipeline::preprocess::tokenize::{Tokens, decode_text};
use pipeline::preprocess::vectorize::TermCounts;
use pipeline::{Model, Prediction};
use serde::Deserialize;
use tracing::instrument;

use crate::app::{App, HttpResponse, json};
use crate::error::ApiError;
use crate::observe::{Route, Step};

#[derive(Deserialize)]
struct PredictRequest {
    text: String,
}

/// Handles one prediction request.
pub(crate) async fn predict(app: &App, req: Request<Incoming>) -> Result<HttpResponse, ApiError> {
    // Taken before the body is read: bounds the memory of bodies in flight, not just CPU.
    let _permit = app
        .permits
        .try_acquire()
        .map_err(|_| ApiError::Overloaded(app.limits.max_concurrency))?;
    let is_json = is_json(&req);
    let body = read_body(app, req).await?;
    app.requests.body_read(Route::Predict, body.len());
    let text = document(&body, is_json)?;
    let model = &app.model.model;
    let metrics = &app.model_metrics;

    let t = Instant::now();
    let tokens = tokenize(model, &text);
    metrics.step(Step::Tokenize, t.elapsed());
    let t = Instant::now();
    let counts = vectorize(model, &tokens);
    metrics.step(Step::Vectorize, t.elapsed());
    let t = Instant::now();
    let features = weigh(model, &counts);
    metrics.step(Step::Weigh, t.elapsed());
    let t = Instant::now();
    let prediction = predict_step(model, &features);
    metrics.step(Step::Predict, t.elapsed());

    metrics.prediction(
        prediction.label,
        prediction.confidence(),
        text.len(),
        counts.tokens,
        counts.out_of_vocabulary_ratio(),
    );
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

async fn read_body(app: &App, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let limit = app.limits.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let limited = Limited::new(
        req.into_body(),
        usize::try_from(limit).unwrap_or(usize::MAX),
    );
    match tokio::time::timeout(app.limits.request_timeout, limited.collect()).await {
        Err(_) => Err(ApiError::Timeout(app.limits.request_timeout)),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::TooLarge { limit })
        }
        Ok(Err(e)) => Err(ApiError::BodyRead(e.to_string())),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
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

#[instrument(name = "tokenize", skip_all, fields(document.bytes = text.len(), document.tokens))]
fn tokenize(model: &Model, text: &str) -> Tokens {
    let tokens = model.tokenize(text);
    tracing::Span::current().record("document.tokens", tokens.len());
    tokens
}

#[instrument(name = "vectorize", skip_all, fields(document.tokens = tokens.len(), document.terms, document.oov_tokens, document.oov_ratio))]
fn vectorize(model: &Model, tokens: &Tokens) -> TermCounts {
    let counts = model.count(tokens);
    let span = tracing::Span::current();
    span.record("document.terms", counts.indices.len());
    span.record("document.oov_tokens", counts.out_of_vocabulary);
    span.record("document.oov_ratio", counts.out_of_vocabulary_ratio());
    counts
}

#[instrument(name = "weigh", skip_all, fields(model.weighting = %model.weighting(), document.features = counts.indices.len()))]
fn weigh(model: &Model, counts: &TermCounts) -> SparseVector {
    model.weigh(counts)
}

#[instrument(name = "predict", skip_all, fields(model.label, model.confidence))]
fn predict_step(model: &Model, features: &SparseVector) -> Prediction {
    let prediction = model.predict(features);
    let span = tracing::Span::current();
    if let Some(label) = model.categories().get(prediction.label) {
        span.record("model.label", label.as_str());
    }
    span.record("model.confidence", prediction.confidence());
    prediction
}

fn response_body(app: &App, prediction: &Prediction) -> String {
    let categories = app.model.model.categories();
    let probabilities: serde_json::Map<String, serde_json::Value> = categories
        .iter()
        .zip(&prediction.probabilities)
        .map(|(c, p)| (c.clone(), serde_json::Value::from(*p)))
        .collect();
    serde_json::json!({
        "result": categories.get(prediction.label),
        "confidence": prediction.confidence(),
        "probabilities": probabilities,
        "model_version": app.model.metadata.model_version,
    })
    .to_string()
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
