//! `paragon-admin bundle`: glue from the options to `diagnose::bundle`, the progress
//! indicator and the printed summary (or, with `--preview`, the files and what the redactor
//! would hide in each).

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{BundleArgs, Globals};
use crate::diagnose::bundle::{self, Options, Outcome, Outcomes, Sources};
use crate::exit::Error;
use crate::health::Progress;
use crate::output::{self, Format};

/// The deadline of a bounded collector (a datastore, the bastion, the health checks).
const COLLECTOR_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(g: &Globals, args: &BundleArgs) -> Result<u8, Error> {
    let (profile, remote, client) = super::cluster(g).await?;
    let remote = Arc::new(remote);
    let dialer = remote.dialer();
    let target = super::health_target(
        &profile,
        Ok(client.clone()),
        dialer,
        None,
        crate::config::Via::Auto,
    );
    let sources = Sources {
        kube: client,
        health: target,
        bastion: Some(remote.clone()),
        doctor: Some(profile.clone()),
    };
    let timeout = Duration::from_secs(args.timeout);
    let output = (!args.preview).then(|| {
        args.file
            .clone()
            .unwrap_or_else(|| bundle::default_name(&profile.name, jiff::Timestamp::now()).into())
    });
    let options = Options {
        output,
        timeout,
        collector_timeout: COLLECTOR_TIMEOUT.min(timeout),
        since: Duration::from_secs(args.since.unsigned_abs()),
        namespace: args.namespace.clone(),
        include_values: args.include_values,
        profile: profile.name.clone(),
    };
    let bar = super::progress_bar(g, "collecting");
    let progress = |p: Progress<'_>| super::advance(bar.as_ref(), p);
    let made = bundle::make(sources, options, &progress).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let made = made?;
    print(g.output, &made, args.preview)?;
    Ok(made.exit_status())
}

fn print(format: Format, made: &Outcomes, preview: bool) -> std::io::Result<()> {
    if format == Format::Json {
        return output::print_json(made);
    }
    let mut out = std::io::stdout().lock();
    if preview {
        let mut t = output::table(["file", "bytes", "hidden"]);
        for f in &made.files {
            let hidden: Vec<String> = f
                .redactions
                .iter()
                .map(|(rule, n)| format!("{rule} {n}"))
                .collect();
            t.add_row([f.path.clone(), f.bytes.to_string(), hidden.join(", ")]);
        }
        writeln!(out, "{t}")?;
    }
    let mut t = output::table(["collector", "source", "result", "ms"]);
    for c in &made.manifest.collectors {
        let result = match c.outcome {
            Outcome::Ok => "ok".to_string(),
            Outcome::Failed => format!("failed: {}", c.errors.join("; ")),
            Outcome::TimedOut => format!("timed out: {}", c.errors.join("; ")),
        };
        t.add_row([
            c.name.to_string(),
            c.source.clone(),
            result,
            c.elapsed_ms.to_string(),
        ]);
    }
    writeln!(out, "{t}")?;
    let hidden: usize = made.files.iter().flat_map(|f| f.redactions.values()).sum();
    match &made.output {
        Some(path) => writeln!(
            out,
            "wrote {} ({} files, {hidden} values hidden)",
            path.display(),
            made.files.len()
        )?,
        None => writeln!(
            out,
            "preview: {} files, {hidden} values would be hidden; nothing written",
            made.files.len()
        )?,
    }
    out.flush()
}
