//! The text steps before the classifier, each callable on its own: tokenize, count, tf-idf.

pub mod tfidf;
pub mod tokenize;
pub mod vectorize;
