//! # pipeline
//!
//! Everything the binaries share about the model, and nothing about serving it: reading the
//! 20 Newsgroups corpus ([`dataset`]), the preprocessing steps ([`preprocess`]), the linear
//! classifier ([`classifier`]), the trained [`Model`] with its named steps, its evaluation, and
//! the versioned model file ([`artifact`]). No async runtime, no HTTP server, no telemetry: the
//! core stays fast to build and easy to test.
//!
//! ```
//! use pipeline::{Model, TrainConfig, dataset::{Dataset, Document}};
//!
//! let doc = |text: &str, label| Document { id: String::new(), text: text.into(), label };
//! let dataset = Dataset {
//!     categories: vec!["rec.autos".into(), "rec.sport.hockey".into()],
//!     train: vec![doc("engine brakes car", 0), doc("puck goalie ice", 1)],
//!     test: vec![],
//!     sha256: String::new(),
//! };
//! let model = Model::train(&dataset, &TrainConfig::default())?;
//!
//! // The four steps, one by one, as the server runs and traces them...
//! let tokens = model.tokenize("The goalie stopped the puck");
//! let counts = model.count(&tokens);
//! let features = model.weigh(&counts);
//! let prediction = model.predict(&features);
//! assert_eq!(model.categories()[prediction.label], "rec.sport.hockey");
//! // ...or all at once.
//! assert_eq!(model.classify("new brakes for my car").label, 0);
//! # Ok::<(), pipeline::classifier::FitError>(())
//! ```

pub mod artifact;
pub mod classifier;
pub mod dataset;
pub mod evaluation;
pub mod model;
pub mod preprocess;
pub mod progress;
#[cfg(feature = "telemetry")]
pub mod telemetry;

pub use artifact::{ArtifactError, Metadata, ModelFile};
pub use model::{Model, Prediction, TrainConfig, Weighting};
