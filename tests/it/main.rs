//! Integration tests: the built binary against real servers started by `support`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod bastion_image;
mod config;
