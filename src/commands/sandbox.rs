//! `paragon-admin sandbox`: serve the simulated API server until interrupted.

use std::path::PathBuf;

use serde::Serialize;

use crate::cli::{Globals, SandboxArgs};
use crate::exit::{Context as _, Error};
use crate::output::{self, Format};
use crate::sandbox::{Fault, Sandbox, SandboxOptions};
use crate::signals::Shutdown;

#[derive(Serialize)]
struct Started<'a> {
    /// Where clients connect (loopback when bound to every interface).
    listen: String,
    /// Where the listener is bound, as the system reports it.
    bound: String,
    server: String,
    kubeconfig: String,
    namespaces: usize,
    nodes: usize,
    pods: usize,
    objects: usize,
    faults: &'a [Fault],
}

pub async fn run(g: &Globals, args: SandboxArgs) -> Result<u8, Error> {
    let mut faults = args.faults.clone();
    faults.sort();
    faults.dedup();
    let opts = SandboxOptions {
        listen: args.listen,
        nodes: args.nodes as usize,
        pods: args.pods.unwrap_or(0) as usize,
        seed: args.seed,
        faults: faults.clone(),
        streaming_idle_timeout: args.streaming_idle_timeout,
        memory_use: args.memory_use.clone(),
        portforward_tunnel: true,
    };
    // Listen for signals before anyone can learn the address and send one.
    let mut stop = Shutdown::install()?;
    let sandbox = Sandbox::start(opts).await?;
    let path = match args.kubeconfig_out {
        Some(p) => p,
        None => default_kubeconfig_path(sandbox.addr().port())?,
    };
    crate::sandbox::write_kubeconfig(&sandbox, &path)?;
    let stats = sandbox.stats();
    // As `forward --bind` does: a warning is not silenced by --quiet.
    if !sandbox.bound().ip().is_loopback() {
        eprintln!(
            "paragon-admin: warning: listening on {}: anyone who reaches this address can read the generated installation with the kubeconfig's token",
            sandbox.bound()
        );
    }
    if !g.quiet {
        eprintln!(
            "sandbox: {} nodes, {} pods; kubeconfig {}\n  export KUBECONFIG={}",
            stats.nodes,
            stats.pods,
            path.display(),
            path.display()
        );
    }
    let printed = match g.output {
        Format::Json => output::print_json_line(&Started {
            listen: sandbox.addr().to_string(),
            bound: sandbox.bound().to_string(),
            server: sandbox.server_url(),
            kubeconfig: path.display().to_string(),
            namespaces: stats.namespaces,
            nodes: stats.nodes,
            pods: stats.pods,
            objects: stats.objects,
            faults: &faults,
        }),
        Format::Table => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", sandbox.addr()).and_then(|()| out.flush())
        }
    };
    let waited = match printed {
        Ok(()) => {
            stop.requested().await;
            Ok(())
        }
        Err(e) => Err(e),
    };
    sandbox.shutdown().await;
    let _ = std::fs::remove_file(&path);
    waited.context("sandbox")?;
    Ok(0)
}

fn default_kubeconfig_path(port: u16) -> Result<PathBuf, Error> {
    let base = dirs::cache_dir()
        .or_else(dirs::runtime_dir)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join("paragon-admin");
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir.join(format!("sandbox-{port}.kubeconfig")))
}
