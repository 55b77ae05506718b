//! Integration tests: the built binary against real servers started by `support`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod access;
mod agent;
mod agent_forward;
mod agent_health;
mod agent_life;
mod api_route;
mod bastion;
mod bastion_image;
mod bundle;
mod capacity;
mod config;
mod demo;
mod demo_bastion;
mod docs;
mod exit;
mod files;
mod forward;
mod health;
mod host_cert;
mod identity;
mod init;
mod known_hosts;
mod kube_credential;
mod logs;
mod passthrough;
mod ports;
mod rooms;
mod sandbox;
mod secret_service;
mod secrets;
mod ssh;
mod user_cert;
mod version;
