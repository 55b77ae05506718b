//! The simulated installation on loopback: the embedded demo bastion and the demo web page.

pub mod bastion;
pub mod web;
