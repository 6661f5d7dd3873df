//! End-to-end tests of `serve`: each starts the real binary on an ephemeral loopback port.

mod deploy_config;
mod faults;
mod grafana;
mod helpers;
mod lifecycle;
mod metrics;
mod predict;
mod tls;
mod traces;
