//! Integration tests: the built binary against real servers started by `support`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod api_route;
mod bastion;
mod bastion_image;
mod config;
mod demo;
mod demo_bastion;
mod docs;
mod forward;
mod health;
mod init;
mod sandbox;
mod secrets;
mod ssh;
