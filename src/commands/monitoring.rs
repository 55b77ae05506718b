//! `paragon-admin monitoring`: the alert rules and the dashboard for the capacity signals, at
//! the profile's thresholds (the defaults when there is no config file).

use std::io::Write;

use crate::cli::{Globals, MonitoringAction, RulesFormat};
use crate::exit::Error;
use crate::monitoring::{dashboard, rules};

pub fn run(g: &Globals, action: &MonitoringAction) -> Result<u8, Error> {
    let thresholds = super::resolve_optional_profile(g)?
        .map(|p| p.thresholds())
        .unwrap_or_default();
    let text = match action {
        MonitoringAction::Rules { format, hold } => {
            let format = match format {
                RulesFormat::Prometheus => rules::Format::Prometheus,
                RulesFormat::Kubernetes => rules::Format::Kubernetes,
            };
            rules::render(&rules::rules(&thresholds, hold), format)
                .map_err(|e| Error::failed(format!("cannot write the rules as YAML: {e}")))?
        }
        MonitoringAction::Dashboard => {
            let mut json = serde_json::to_string_pretty(&dashboard::dashboard(&thresholds))
                .map_err(|e| Error::failed(format!("cannot write the dashboard: {e}")))?;
            json.push('\n');
            json
        }
    };
    let mut out = std::io::stdout().lock();
    // A closed stdout (`| head`) keeps its io error: main exits quietly on it.
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(0)
}
