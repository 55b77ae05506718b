//! `paragon-admin logs`: glue from the options to `diagnose::logs`, and the printed lines
//! (a prefix per pod, one colour per pod on a terminal, or one JSON object per line).

use std::collections::HashMap;
use std::io::Write as _;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::{Globals, LogsArgs};
use crate::diagnose::logs::{self, Event, Request};
use crate::exit::Error;
use crate::output::{self, Format};
use crate::signals::Shutdown;

pub async fn run(g: &Globals, args: &LogsArgs) -> Result<u8, Error> {
    let mut shutdown = Shutdown::install()?;
    let (_profile, _remote, client) = super::cluster(g).await?;
    let req = Request {
        namespace: args.namespace.clone(),
        target: args.target.clone(),
        container: args.container.clone(),
        since_seconds: args.since,
        tail: args.tail,
        previous: args.previous,
        timestamps: args.timestamps,
    };
    let selection = logs::select(&client, &req.namespace, &req.target).await?;
    let (tx, mut rx) = mpsc::channel(1024);
    let stop = CancellationToken::new();
    let reader = {
        let (client, req, selection, stop) = (client.clone(), req.clone(), selection, stop.clone());
        let follow = args.follow;
        tokio::spawn(async move {
            if follow {
                logs::follow(&client, &req, &selection, tx, stop).await
            } else {
                logs::read(&client, &req, &selection, &tx).await
            }
        })
    };
    let mut printer = Printer::new(g.output, args.grep.clone());
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(e) => printer.print(&e)?,
                None => break,
            },
            _ = shutdown.requested() => {
                // Ctrl-C is how a follow ends: a clean stop, exit 0.
                stop.cancel();
                return Ok(0);
            }
        }
    }
    match reader.await {
        Ok(Ok(())) => Ok(0),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(Error::failed(format!("the log reader stopped: {e}"))),
    }
}

/// ANSI colours given to pods in the order they first print.
const COLOURS: [u8; 6] = [36, 33, 32, 35, 34, 31];

struct Printer {
    format: Format,
    grep: Option<regex::Regex>,
    colour: bool,
    assigned: HashMap<String, u8>,
}

impl Printer {
    fn new(format: Format, grep: Option<regex::Regex>) -> Printer {
        Printer {
            format,
            grep,
            colour: output::color_enabled(),
            assigned: HashMap::new(),
        }
    }

    fn colour_of(&mut self, pod: &str) -> u8 {
        let next = COLOURS[self.assigned.len() % COLOURS.len()];
        *self.assigned.entry(pod.to_string()).or_insert(next)
    }

    fn print(&mut self, event: &Event) -> std::io::Result<()> {
        match event {
            Event::Line(l) => {
                if self.grep.as_ref().is_some_and(|re| !re.is_match(&l.line)) {
                    return Ok(());
                }
                if self.format == Format::Json {
                    return output::print_json_line(l);
                }
                let prefix = if l.several {
                    format!("{}/{}", l.pod, l.container)
                } else {
                    l.pod.clone()
                };
                let prefix = if self.colour {
                    format!("\x1b[{}m{prefix}\x1b[0m", self.colour_of(&l.pod))
                } else {
                    prefix
                };
                let mut out = std::io::stdout().lock();
                match &l.time {
                    Some(t) => writeln!(out, "{prefix} {t} {}", l.line)?,
                    None => writeln!(out, "{prefix} {}", l.line)?,
                }
                out.flush()
            }
            // Notes about pods go to stderr: stdout carries the log lines only.
            Event::Started(pod) => note(&format!("+ {pod} started")),
            Event::Gone(pod) => note(&format!("- {pod} went away")),
            Event::Unreadable {
                pod,
                container,
                message,
            } => note(&format!("{pod}/{container}: {message}")),
        }
    }
}

fn note(text: &str) -> std::io::Result<()> {
    let mut err = std::io::stderr().lock();
    writeln!(err, "{text}")?;
    err.flush()
}
