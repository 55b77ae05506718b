//! paragon-admin: operate an on-premise Paragon installation through its SSH bastion.
//!
//! The rooms and what each may use are drawn in `DESIGN.md`; the one idea is the `Dialer`
//! (`dial`): everything beyond a shell is a TCP stream opened as seen from the bastion.

pub mod access;
pub mod agent;
pub mod cli;
pub mod commands;
pub mod complete;
pub mod config;
pub mod diagnose;
pub mod dial;
pub mod docs;
pub mod exit;
pub mod files;
pub mod forward;
pub mod health;
pub mod kube;
pub mod monitoring;
pub mod openssh;
pub mod output;
pub mod prompt;
pub mod reconnect;
pub mod sandbox;
pub mod secrets;
pub mod signals;
pub mod ssh;
pub mod state;
pub mod text;
