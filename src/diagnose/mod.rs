//! When health says something is wrong: which hop of the path broke (`doctor`), the logs of
//! a whole service across its pods (`logs`), and the support bundle with every secret
//! redacted (`bundle`, `redact`). Knows nothing of clap; `logs` and `bundle` take a
//! `kube::Client`, a `Dialer` and the bastion's command runner that already go through it,
//! and `doctor` walks the profile's path itself, hop by hop.

pub mod bundle;
pub mod doctor;
pub mod logs;
pub mod redact;
