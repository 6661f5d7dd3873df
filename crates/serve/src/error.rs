//! Request errors and their one mapping to HTTP: status, metric reason, JSON body.

use crate::observe::ErrorReason;

/// Everything a request can fail with; the message is what the client reads.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No document.
    #[error(
        "the request body is empty; send the document as the body (plain text or JSON {{\"text\": ...}})"
    )]
    EmptyBody,
    /// Body over the limit.
    #[error("the request body is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
        /// Whether the rest of the body was read and discarded (the connection can stay open).
        drained: bool,
    },
    /// A `Content-Encoding` other than gzip, deflate or identity.
    #[error(
        "content-encoding {0:?} is not supported; send the body uncompressed, or with gzip or deflate"
    )]
    UnsupportedEncoding(String),
    /// A compressed body that does not decompress.
    #[error("the request body is not valid {coding}: {reason}")]
    BadEncoding {
        /// `gzip` or `deflate`.
        coding: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// JSON that does not parse or lacks `text`.
    #[error("malformed JSON: {0}; expected {{\"text\": \"...\"}}")]
    BadJson(String),
    /// The body did not arrive in time.
    #[error("the request body did not arrive within {0:?}")]
    Timeout(std::time::Duration),
    /// The body could not be read.
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    /// Concurrency limit reached.
    #[error("the server is at its concurrency limit of {0} requests; retry shortly")]
    Overloaded(u32),
    /// Known path, wrong method.
    #[error("method {method} is not allowed on {path}; use {allowed}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The route.
        path: &'static str,
        /// The methods accepted.
        allowed: &'static str,
    },
    /// Unknown path.
    #[error("no such endpoint; try POST /predict, GET /metrics, /livez, /readyz or /healthz")]
    NotFound,
    /// Shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl ApiError {
    /// HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Self::EmptyBody | Self::BadJson(_) | Self::BodyRead(_) | Self::BadEncoding { .. } => {
                400
            }
            Self::UnsupportedEncoding(_) => 415,
            Self::NotFound => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::Timeout(_) => 408,
            Self::TooLarge { .. } => 413,
            Self::Overloaded(_) | Self::ShuttingDown => 503,
        }
    }

    /// The `reason` label.
    pub fn reason(&self) -> ErrorReason {
        match self {
            Self::EmptyBody
            | Self::BadJson(_)
            | Self::BodyRead(_)
            | Self::BadEncoding { .. }
            | Self::UnsupportedEncoding(_) => ErrorReason::BadInput,
            Self::TooLarge { .. } => ErrorReason::TooLarge,
            Self::Timeout(_) => ErrorReason::Timeout,
            Self::Overloaded(_) => ErrorReason::Overloaded,
            Self::MethodNotAllowed { .. } => ErrorReason::MethodNotAllowed,
            Self::NotFound => ErrorReason::NotFound,
            Self::ShuttingDown => ErrorReason::Unavailable,
        }
    }

    /// The JSON body: `{"error": "<reason>", "message": "..."}`.
    pub fn body(&self) -> String {
        serde_json::json!({ "error": self.reason().as_str(), "message": self.to_string() })
            .to_string()
    }

    /// Whether the connection must close because the body was left unread.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Self::TooLarge { drained: false, .. } | Self::Timeout(_) | Self::BodyRead(_)
        )
    }
}
