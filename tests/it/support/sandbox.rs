//! The simulated Kubernetes API server (`paragon_admin::sandbox`), run in-process on its own
//! runtime thread for one test, with its kubeconfig written to a temporary file. Stopped in
//! `Drop`.

use std::path::{Path, PathBuf};

use paragon_admin::sandbox::{Fault, Sandbox, SandboxOptions};

pub struct KubeSandbox {
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KubeSandbox {
    /// A natural-size installation (3 nodes) with `faults`.
    pub fn start(faults: &[Fault]) -> KubeSandbox {
        Self::start_with(SandboxOptions {
            faults: faults.to_vec(),
            ..SandboxOptions::default()
        })
    }

    pub fn start_with(options: SandboxOptions) -> KubeSandbox {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let path = kubeconfig.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let sandbox = match Sandbox::start(options).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let written = sandbox.write_kubeconfig(&path).map_err(|e| e.to_string());
                let _ = ready_tx.send(written);
                let _ = stop_rx.await;
                sandbox.shutdown().await;
            });
        });
        ready_rx
            .recv()
            .expect("sandbox thread")
            .unwrap_or_else(|e| panic!("sandbox did not start: {e}"));
        KubeSandbox {
            dir,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for KubeSandbox {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
