//! When health says something is wrong: the logs of a whole service across its pods
//! (`logs`), and the support bundle with every secret redacted (`bundle`, `redact`). Knows
//! nothing of clap or of how the bastion is reached: it takes a `kube::Client`, a `Dialer`
//! and the bastion's command runner that already go through it.

pub mod bundle;
pub mod logs;
pub mod redact;
