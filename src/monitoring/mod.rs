//! What an installation without monitoring of its own gets to install: Prometheus alerting
//! rules and a Grafana dashboard, both generated from the capacity signals of
//! `health::signals` and the profile's thresholds, so the report, the alerts and the panels
//! judge by the same queries and the same levels; `status` says which of those rules an
//! installation's Prometheus has loaded and which fire; `install` the objects that put them into
//! the cluster. Knows nothing of clap or of SSH.

pub mod dashboard;
pub mod install;
pub mod rules;
pub mod status;
